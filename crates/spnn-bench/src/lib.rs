//! # spnn-bench
//!
//! What spnn's benchmarks and workspace-level tests share (not published):
//!
//! - `systems`: one model trained by every system on the same data and batches — plaintext
//!   Burn, plain split learning (a bottom-model session whose holders send their outputs
//!   unmasked), SPNN-SS in memory and over mutual TLS, SPNN-HE — each measured in time, AUC,
//!   traffic and peak memory;
//! - `report`: the suite's scalability grid, markdown and JSON results and PNG plots;
//! - `labels`: label leakage to the server against the label holder's defences (trade-off
//!   tables and plots);
//! - `features`: the Gram attack on a run's `Z`s and `G`s against noise on `Z`.
//!
//! Its targets live in the workspace's `benches/`, `tests/` and `examples/` directories:
//! `cargo bench -p spnn-bench --bench spnn_ss`, `cargo run -p spnn-bench --release --example
//! privynet_fashion`.
//!
//! Both modules need the `insecure-baselines` feature (spnn-burn's test hooks, for the unmasked
//! split-learning baseline), which only this crate's own targets turn on; built as a plain
//! dependency — as `cargo build --workspace` builds it — the library is empty, and the hooks
//! stay out of every other binary of the workspace.

#[cfg(feature = "insecure-baselines")]
pub mod features;
#[cfg(feature = "insecure-baselines")]
pub mod labels;
#[cfg(feature = "insecure-baselines")]
pub mod report;
#[cfg(feature = "insecure-baselines")]
pub mod systems;

/// A path argument of a benchmark or example as the user meant it: relative paths from the
/// workspace root (where the README's commands run), whatever directory cargo runs the target
/// in.
pub fn user_path(arg: &str) -> std::path::PathBuf {
    let path = std::path::Path::new(arg);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(path)
    }
}

/// Writes a run's results into `dir`: the table as `{stem}.md` and the data as pretty JSON in
/// `{stem}.json`, the files the guide's tables include and the checks read.
pub fn write_results(
    dir: &std::path::Path,
    stem: &str,
    md: &str,
    data: &impl serde::Serialize,
) -> std::io::Result<()> {
    std::fs::write(dir.join(format!("{stem}.md")), md)?;
    let json = serde_json::to_string_pretty(data).map_err(std::io::Error::other)?;
    std::fs::write(dir.join(format!("{stem}.json")), json)
}

/// What the leakage sweeps were asked for ([`sweep_args`]).
#[cfg(feature = "insecure-baselines")]
pub struct SweepArgs {
    /// The output directory (created).
    pub out: std::path::PathBuf,
    /// The census data and schedule, with `--census DATA`.
    pub census: Option<(systems::Data, systems::Setup)>,
}

/// The arguments of the leakage sweeps, `OUT_DIR [--census DATA]`: the output directory
/// (created) and, with `--census`, the census data with the sweeps' census schedule (batch 256,
/// one epoch, learning rate 0.05). `name` is the example's, for the usage line.
#[cfg(feature = "insecure-baselines")]
pub fn sweep_args(name: &str) -> Result<SweepArgs, Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let out = user_path(
        args.first()
            .ok_or_else(|| format!("usage: {name} OUT_DIR [--census DATA]"))?,
    );
    std::fs::create_dir_all(&out)?;
    let census = match args.iter().position(|a| a == "--census") {
        Some(i) => {
            let dir = args.get(i + 1).ok_or("--census needs a data directory")?;
            let data = systems::Data::from_partitioned(spnn::data::packaged::census::load(
                &user_path(dir),
                2,
            )?);
            let setup = systems::Setup {
                batch: 256,
                epochs: 1,
                lr: 0.05,
                ..systems::Setup::default()
            };
            Some((data, setup))
        }
        None => None,
    };
    Ok(SweepArgs { out, census })
}
