//! SPNN against its baselines, in one run on the same data, model and batches: plaintext Burn,
//! plain split learning, SPNN-SS in-memory, SPNN-SS over mutual TLS on loopback, SPNN-HE.
//!
//! - `cargo bench -p spnn-bench --bench spnn_ss` — breast cancer, two holders with 15 + 15 features,
//!   MLP 30-64-32-1, batch 64, 10 epochs, all five systems.
//! - `cargo bench -p spnn-bench --bench spnn_ss -- --synthetic` — 20,000 × 40 synthetic, one epoch, batch
//!   256: SPNN-SS against SPNN-HE.
//! - `--holders K` (with the breast-cancer or `--synthetic` run): the features split among `K`
//!   holders instead of two; `--epochs N`: N epochs instead of the default.
//! - `cargo bench -p spnn-bench --bench spnn_ss -- --adam` — breast cancer with Burn's Adam
//!   (defaults, learning rate 0.001) for plaintext Burn, split learning and SPNN-SS (in-memory
//!   and TLS), then SPNN-SS with the default SGD in the same run: what Adam on shares costs.
//! - `cargo bench -p spnn-bench --bench spnn_ss -- --clip` — breast cancer with Burn's SGD and
//!   gradient clipping by value (0.01), then by norm (0.1), for plaintext Burn, split learning
//!   and SPNN-SS (in-memory and TLS), then SPNN-SS unclipped in the same run: what clipping on
//!   shares costs.
//! - `cargo bench -p spnn-bench --bench spnn_ss -- --census DATA_DIR` — Census-Income (from
//!   `scripts/fetch-data.sh DATA_DIR`), batch 256, one epoch, without SPNN-HE (hours).
//!   With `--adam`: plaintext Burn's Adam against SPNN-SS's Adam on shares (in-memory), the
//!   test AUCs side by side — Adam's parity on Census, run by hand (an epoch of Adam on shares
//!   takes minutes there, beyond CI).
//!
//! - `cargo bench -p spnn-bench --bench spnn_ss -- --suite OUT_DIR [--census DATA_DIR]` — the whole suite:
//!   breast cancer (all five systems), Census-Income if given, and SPNN-SS against plain split
//!   learning while rows, features, first-layer width and holders vary; writes `results.md`,
//!   `results.json` and `scalability-*.png` into OUT_DIR.
//!
//! Prints a markdown table. Relative paths are taken from the workspace root, where these
//! commands are typed (cargo runs a benchmark from its package's directory).

use spnn_bench::systems::{Data, Setup, markdown, run, spnn, spnn_he};

use spnn_bench::user_path;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let flag = |f: &str| args.iter().position(|a| a == f);
    if let Some(i) = flag("--suite") {
        let out = user_path(args.get(i + 1).expect("--suite needs an output directory"));
        let setup = Setup::default();
        let data =
            Data::new(spnn::data::embedded::breast_cancer(), setup.holders).expect("embedded data");
        let mut breast = run(&data, &setup);
        breast.push(spnn_he(&data, &setup));
        let mut tables = vec![(
            "Breast cancer (15 + 15 features, 30-64-32-1, batch 64, 10 epochs)".to_string(),
            breast,
        )];
        if let Some(c) = flag("--census") {
            let dir = args.get(c + 1).expect("--census needs a data directory");
            tables.push((
                "Census-Income (two holders, d-64-32-1, batch 256, 1 epoch)".to_string(),
                census(dir),
            ));
        }
        let report = spnn_bench::report::Report {
            tables,
            scalability: spnn_bench::report::scalability(),
        };
        spnn_bench::report::write(&report, &out).expect("writing the report");
        println!(
            "{}",
            std::fs::read_to_string(out.join("results.md")).expect("just written")
        );
        return;
    }
    let value = |f: &str| {
        flag(f).map(|i| {
            args.get(i + 1)
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or_else(|| panic!("{f} needs a whole number"))
        })
    };
    let holders = value("--holders").unwrap_or(2);
    let epochs = value("--epochs");
    let rows = if let Some(i) = flag("--census") {
        let dir = args.get(i + 1).expect("--census needs a data directory");
        if flag("--adam").is_some() {
            census_adam(dir)
        } else {
            census(dir)
        }
    } else if flag("--synthetic").is_some() {
        let setup = Setup {
            batch: 256,
            epochs: epochs.unwrap_or(1),
            holders,
            ..Default::default()
        };
        let data = Data::synthetic(20_000, 40, holders, 7).expect("synthetic data");
        let roster = spnn::net::Roster::spnn(holders as u16, false).expect("k ≥ 2 holders");
        let net =
            spnn::net::NetworkConfig::new(23).with_timeout(std::time::Duration::from_secs(3600));
        vec![
            spnn(
                &data,
                &setup,
                "SPNN-SS, in-memory",
                Default::default(),
                spnn::net::Network::in_memory(&roster, net),
            ),
            spnn_he(&data, &setup),
        ]
    } else if flag("--adam").is_some() {
        adam(holders, epochs.unwrap_or(Setup::default().epochs))
    } else if flag("--clip").is_some() {
        clipping(holders, epochs.unwrap_or(Setup::default().epochs))
    } else {
        let defaults = Setup::default();
        let setup = Setup {
            holders,
            epochs: epochs.unwrap_or(defaults.epochs),
            ..defaults
        };
        let data =
            Data::new(spnn::data::embedded::breast_cancer(), setup.holders).expect("embedded data");
        let mut rows = run(&data, &setup);
        rows.push(spnn_he(&data, &setup));
        rows
    };
    println!("{}", markdown(&rows));
}

/// `setup` with Burn's default Adam at learning rate 0.001 for every system.
fn with_adam(setup: Setup) -> Setup {
    Setup {
        lr: 0.001,
        adam: Some(spnn::burn::AdamParams::default()),
        ..setup
    }
}

/// Breast cancer with Burn's Adam under every system but SPNN-HE (which refuses it), then
/// SPNN-SS with SGD on the same data.
fn adam(holders: usize, epochs: usize) -> Vec<spnn_bench::systems::Row> {
    let setup = with_adam(Setup {
        holders,
        epochs,
        ..Default::default()
    });
    let data = Data::new(spnn::data::embedded::breast_cancer(), holders).expect("embedded data");
    let mut rows = run(&data, &setup);
    for row in &mut rows {
        row.system = format!("{}, Adam", row.system);
    }
    rows.push(in_memory_sgd(&data, epochs, "SPNN-SS, in-memory, SGD", 24));
    rows
}

/// SPNN-SS in memory with the default SGD for `epochs` on `data`: a run's reference row.
fn in_memory_sgd(data: &Data, epochs: usize, label: &str, seed: u64) -> spnn_bench::systems::Row {
    let holders = data.holders.len();
    let roster = spnn::net::Roster::spnn(holders as u16, false).expect("k ≥ 2 holders");
    let net = spnn::net::NetworkConfig::new(seed).with_timeout(std::time::Duration::from_secs(600));
    let sgd = Setup {
        holders,
        epochs,
        ..Setup::default()
    };
    spnn(
        data,
        &sgd,
        label,
        Default::default(),
        spnn::net::Network::in_memory(&roster, net),
    )
}

/// Breast cancer with Burn's SGD and gradient clipping, by value then by norm, under every
/// system but SPNN-HE (which refuses it), then SPNN-SS unclipped on the same data.
fn clipping(holders: usize, epochs: usize) -> Vec<spnn_bench::systems::Row> {
    let data = Data::new(spnn::data::embedded::breast_cancer(), holders).expect("embedded data");
    let mut rows = Vec::new();
    for (clipping, what) in [
        ((0.01, 0.0), "clip by value 0.01"),
        ((0.0, 0.1), "clip by norm 0.1"),
    ] {
        let setup = Setup {
            holders,
            epochs,
            clipping,
            ..Default::default()
        };
        for mut row in run(&data, &setup) {
            row.system = format!("{}, {what}", row.system);
            rows.push(row);
        }
    }
    rows.push(in_memory_sgd(
        &data,
        epochs,
        "SPNN-SS, in-memory, unclipped",
        26,
    ));
    rows
}

/// Census-Income with Burn's Adam: plaintext against SPNN-SS in-memory, one epoch.
fn census_adam(dir: &str) -> Vec<spnn_bench::systems::Row> {
    let setup = with_adam(Setup {
        batch: 256,
        epochs: 1,
        ..Default::default()
    });
    let p =
        spnn::data::packaged::census::load(&user_path(dir), setup.holders).expect("census data");
    let data = Data::from_partitioned(p);
    let roster = spnn::net::Roster::spnn(2, false).expect("two holders");
    let net = spnn::net::NetworkConfig::new(25).with_timeout(std::time::Duration::from_secs(3600));
    vec![
        spnn_bench::systems::plaintext(&data, &setup),
        spnn(
            &data,
            &setup,
            "SPNN-SS, in-memory, Adam",
            Default::default(),
            spnn::net::Network::in_memory(&roster, net),
        ),
    ]
}

/// Census-Income under every system: two holders, batch 256, one epoch.
fn census(dir: &str) -> Vec<spnn_bench::systems::Row> {
    let setup = Setup {
        batch: 256,
        epochs: 1,
        lr: 0.05,
        ..Default::default()
    };
    let p =
        spnn::data::packaged::census::load(&user_path(dir), setup.holders).expect("census data");
    let data = Data::from_partitioned(p);
    let rows = run(&data, &setup);
    let ss = rows
        .iter()
        .find(|r| r.system == "SPNN-SS, in-memory")
        .expect("an SPNN-SS row");
    let (seconds, fraction) = spnn_bench::systems::mask_overhead(&data, &setup, ss);
    println!(
        "zero-sharing masks of the Z shares: {seconds:.4} s per epoch, {:.2} % of SPNN-SS in-memory",
        100.0 * fraction
    );
    rows
}
