//! PrivyNet end to end on real data: pre-train a VGG-style CNN on public MNIST digits, keep its
//! first ℓ layers as the owner's frozen local extractor with a secret random choice of c
//! channels, train the cloud network on Fashion-MNIST uploads with burn-train's Learner, attack
//! the uploads with a learned decoder, characterise the (ℓ, c) grid, and let the topology
//! optimiser pick under budgets.
//!
//! ```text
//! scripts/fetch-data.sh data                                   # once: MNIST-5k, Fashion-MNIST
//! cargo run -p spnn-bench --release --example privynet_fashion -- --quick data
//! cargo run -p spnn-bench --release --example privynet_fashion -- data       # the full grid
//! ```
//!
//! Writes `results.json`, `results.md`, `tradeoff.png` and `reconstructions.png` into
//! `target/privynet-{quick,full}/` (or the directory given with `--out`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::Device;
use spnn::privynet::experiment::{
    Characterisation, Experiment, ExperimentConfig, ExperimentData, Limits, Strategy,
};
use spnn::privynet::optimizer::{self, Budget, Decision, Outcome};
use spnn::privynet::source::{SourceNet, pretrain};
use spnn::privynet::vgg16::Vgg16Front;
use spnn::privynet::{ChannelSelection, ImageSet, InputFormat, LocalExtractor, Result};

/// What one run produced.
pub struct Summary {
    /// The characterised grid.
    pub grid: Characterisation,
    /// The budget the optimiser worked under.
    pub budget: Budget,
    /// PrivyNet's hierarchical search.
    pub hierarchical: Outcome,
    /// Brute force over the grid.
    pub brute_force: Outcome,
    /// Wall-clock seconds of the whole run.
    pub seconds: f64,
}

// ANCHOR: pipeline
/// Runs the pipeline for `config` on the data under `data_dir`; writes the results to `out`.
/// With `vgg16`, the extractor is VGG16's front loaded from that safetensors file instead of
/// the network pre-trained here.
pub fn run(
    config: &ExperimentConfig,
    data_dir: &Path,
    vgg16: Option<&Path>,
    limits: &Limits,
    out: &Path,
) -> Result<Summary> {
    let start = Instant::now();
    std::fs::create_dir_all(out).map_err(|e| io(out, e))?;
    let local = Device::flex(); // the owner's extractor: no autodiff, nothing trains it
    let train = Device::flex().autodiff(); // cloud network and attack decoder

    // 1. The pre-trained network: a VGG-style CNN trained on public digits (cached as a Burn
    //    record), or the imported VGG16 front.
    let data = ExperimentData::load(data_dir, config)?;
    let (stages, input, source_accuracy) = match vgg16 {
        Some(path) => (
            Vgg16Front::load(path, &train)?.stages,
            InputFormat::VggBgr,
            None,
        ),
        None => {
            let weights = out.join("source.bpk");
            let source = match SourceNet::load(&config.source, &weights, &train) {
                Ok(net) => net,
                Err(_) => {
                    let net = pretrain(&config.source, &data.pretrain, &config.pretrain, &train)?;
                    net.save(&weights)?;
                    net
                }
            };
            let accuracy = source.accuracy(&data.pretrain_held_out, &train);
            println!(
                "source network: {:.1} % on {} held-out digits",
                100.0 * accuracy,
                data.pretrain_held_out.len()
            );
            (source.stages, InputFormat::UnitGray, Some(accuracy))
        }
    };

    // 2. Characterise every (ℓ, c) and strategy: cloud accuracy, attacks, local cost.
    let experiment = Experiment::new(
        stages,
        input,
        data,
        config.clone(),
        &out.join("learner"),
        local,
        train,
    );
    println!(
        "| ℓ | c | strategy | accuracy | PSNR known | PSNR guessed | SSIM guessed | MACs/image | bytes |"
    );
    let grid = experiment.characterise(source_accuracy, |cell| {
        println!(
            "| {} | {} | {:?} | {:.3} | {:.2} | {:.2} | {:.3} | {} | {} |",
            cell.topology.layers,
            cell.topology.channels,
            cell.strategy,
            cell.accuracy,
            cell.known.psnr,
            cell.unknown.psnr,
            cell.unknown.ssim,
            cell.cost.macs_per_image,
            cell.cost.param_bytes
        );
    })?;
    println!(
        "mean-image baseline: PSNR {:.2} dB, SSIM {:.3}",
        grid.baseline.psnr, grid.baseline.ssim
    );

    // 3. The optimiser over the random-selection cells (PrivyNet's strategy).
    let budget = grid.default_budget(limits);
    decide(grid, budget, &experiment.data().owner_test, out, start)
}
// ANCHOR_END: pipeline

/// Runs PrivyNet's hierarchical search and brute force on a characterised `grid` under
/// `budget`, writes the outputs into `out` and prints the decisions.
pub fn decide(
    grid: Characterisation,
    budget: Budget,
    originals: &ImageSet,
    out: &Path,
    start: Instant,
) -> Result<Summary> {
    let candidates: Vec<_> = grid
        .cells
        .iter()
        .filter(|c| c.strategy == Strategy::Random)
        .map(|c| c.topology)
        .collect();
    let hierarchical =
        optimizer::hierarchical(&candidates, &budget, &mut grid.table(Strategy::Random))?;
    let brute_force =
        optimizer::brute_force(&candidates, &budget, &mut grid.table(Strategy::Random))?;
    spnn_bench::report::privynet(&grid, &budget, &hierarchical, originals, out)
        .map_err(|e| io(out, e))?;
    println!("budget: {budget:?}");
    for (name, o) in [
        ("hierarchical", &hierarchical),
        ("brute force", &brute_force),
    ] {
        println!(
            "{name}: {} ({} attack and {} cloud trainings)",
            describe(&o.decision),
            o.privacy_evaluations,
            o.accuracy_evaluations
        );
    }
    let seconds = start.elapsed().as_secs_f64();
    println!("{seconds:.0} s; results in {}", out.display());
    Ok(Summary {
        grid,
        budget,
        hierarchical,
        brute_force,
        seconds,
    })
}

/// Re-runs the optimiser and the plots on the grid saved in `results` (a `results.json` this
/// example wrote), without training anything.
pub fn replay(
    results: &Path,
    config: &ExperimentConfig,
    data_dir: &Path,
    limits: &Limits,
    out: &Path,
) -> Result<Summary> {
    let start = Instant::now();
    let text = std::fs::read(results).map_err(|e| io(results, e))?;
    let saved: serde_json::Value = serde_json::from_slice(&text).map_err(|e| bad(results, e))?;
    let grid: Characterisation =
        serde_json::from_value(saved["grid"].clone()).map_err(|e| bad(results, e))?;
    let (_, test) = ImageSet::fashion_mnist(data_dir)?;
    let originals = test.slice(0..config.owner_test.min(test.len()));
    let budget = grid.default_budget(limits);
    std::fs::create_dir_all(out).map_err(|e| io(out, e))?;
    decide(grid, budget, &originals, out, start)
}

// ANCHOR: owner
/// What a real owner runs: the first `layers` stages of a pre-trained network, frozen, with a
/// fresh secret selection of `channels` channels (ChaCha20 seeded from the OS), over its
/// private images; returns the bytes to upload. The selection never leaves this function.
pub fn owner_upload(
    stages: &[spnn::privynet::source::Stage],
    layers: usize,
    channels: usize,
    images: &ImageSet,
) -> Result<Vec<u8>> {
    let device = Device::flex(); // no autodiff: nothing here can train
    let width = stages
        .get(layers.wrapping_sub(1))
        .ok_or_else(|| spnn::privynet::PrivyError::Config(format!("no layer {layers}")))?
        .channels()[1];
    let selection = ChannelSelection::from_os_entropy(width, channels)?;
    let extractor =
        LocalExtractor::new(stages, layers, &selection, InputFormat::UnitGray, &device)?;
    let cost = extractor.cost();
    println!(
        "local cost: {} multiply-adds per image, {} bytes of weights",
        cost.macs_per_image, cost.param_bytes
    );
    Ok(extractor.extract(images, &device).to_bytes())
}
// ANCHOR_END: owner

fn describe(d: &Decision) -> String {
    match d {
        Decision::Chosen(p) => format!(
            "ℓ = {}, c = {}: accuracy {:.3}, PSNR {:.2} dB, {} MACs, {} bytes",
            p.topology.layers,
            p.topology.channels,
            p.accuracy,
            p.psnr,
            p.cost.macs_per_image,
            p.cost.param_bytes
        ),
        Decision::NoFeasibleTopology { reason } => format!("no feasible topology: {reason}"),
    }
}

fn bad(path: &Path, e: serde_json::Error) -> spnn::privynet::PrivyError {
    spnn::privynet::PrivyError::Io {
        path: path.display().to_string(),
        reason: format!("not a results.json of this example: {e}"),
    }
}

fn io(path: &Path, e: std::io::Error) -> spnn::privynet::PrivyError {
    spnn::privynet::PrivyError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// PrivyNet on Fashion-MNIST: characterise (ℓ, c), attack, optimise, plot.
#[derive(clap::Parser, Debug)]
struct Args {
    /// The CI-sized setting (about a minute in release mode) instead of the full grid.
    #[arg(long)]
    quick: bool,
    /// Use VGG16's front from this safetensors file (scripts/fetch-data.sh --vgg16).
    #[arg(long, value_name = "FILE")]
    vgg16: Option<PathBuf>,
    /// Re-run only the optimiser and plots on a results.json this example wrote.
    #[arg(long, value_name = "RESULTS_JSON")]
    replay: Option<PathBuf>,
    /// Output directory [default: target/privynet-quick or target/privynet-full].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Budget: largest attacker PSNR in dB.
    #[arg(long)]
    max_psnr: Option<f64>,
    /// Budget: largest local multiply-adds per image.
    #[arg(long)]
    max_macs: Option<u64>,
    /// Budget: largest local parameter bytes.
    #[arg(long)]
    max_bytes: Option<u64>,
    /// Data directory [default: $SPNN_DATA_DIR, else ./data].
    data: Option<PathBuf>,
}

#[allow(dead_code)]
fn main() {
    let args = <Args as clap::Parser>::parse();
    let data = args
        .data
        .or_else(|| std::env::var_os("SPNN_DATA_DIR").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("data"));
    let (config, name) = if args.quick {
        (ExperimentConfig::quick(), "quick")
    } else {
        (ExperimentConfig::full(), "full")
    };
    let out = args
        .out
        .unwrap_or_else(|| PathBuf::from(format!("target/privynet-{name}")));
    let limits = Limits {
        max_psnr: args.max_psnr,
        max_macs: args.max_macs,
        max_bytes: args.max_bytes,
    };
    let result = match &args.replay {
        Some(results) => replay(results, &config, &data, &limits, &out),
        None => run(&config, &data, args.vgg16.as_deref(), &limits, &out),
    };
    if let Err(e) = result {
        eprintln!("privynet_fashion: {e}");
        eprintln!(
            "(the data come from scripts/fetch-data.sh {})",
            data.display()
        );
        std::process::exit(1);
    }
}
