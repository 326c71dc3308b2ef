//! PrivyNet end to end on real data: pre-train a VGG-style CNN on public MNIST digits, keep its
//! first ℓ layers as the owner's frozen local extractor with a secret random choice of c
//! channels, train the cloud network on Fashion-MNIST uploads with burn-train's Learner, attack
//! the uploads with a learned decoder, characterise the (ℓ, c) grid, and let the topology
//! optimiser pick under budgets.
//!
//! ```text
//! scripts/fetch-data.sh data                                   # once: MNIST-5k, Fashion-MNIST
//! cargo run --release --example privynet_fashion -- --quick data
//! cargo run --release --example privynet_fashion -- data       # the full grid
//! ```
//!
//! Writes `results.json`, `results.md`, `tradeoff.png` and `reconstructions.png` into
//! `target/privynet-{quick,full}/` (or the directory given with `--out`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::Device;
use spnn::privynet::experiment::{
    Characterisation, Experiment, ExperimentConfig, ExperimentData, Strategy,
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
    out: &Path,
) -> Result<Summary> {
    let start = Instant::now();
    std::fs::create_dir_all(out).map_err(|e| io(out, e))?;
    let local = Device::flex(); // the owner's extractor: no autodiff, nothing trains it
    let train = Device::flex().autodiff(); // cloud network and attack decoder

    // 1. The pre-trained network: a VGG-style CNN trained on public digits (cached as a Burn
    //    record), or the imported VGG16 front.
    let digits = ImageSet::mnist_5k(data_dir)?;
    let (fashion_train, fashion_test) = ImageSet::fashion_mnist(data_dir)?;
    let data = ExperimentData::split(&digits, &fashion_train, &fashion_test, config)?;
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

    // 3. The optimiser: the budget allows half the PSNR gain of the best attack over the
    //    baseline, and the local cost of two layers at full width.
    let budget = default_budget(&grid);
    let candidates = experiment.candidates();
    let hierarchical =
        optimizer::hierarchical(&candidates, &budget, &mut grid.table(Strategy::Random))?;
    let brute_force =
        optimizer::brute_force(&candidates, &budget, &mut grid.table(Strategy::Random))?;
    // ANCHOR_END: pipeline

    spnn::report::privynet(
        &grid,
        &budget,
        &hierarchical,
        &experiment.data().owner_test,
        out,
    )
    .map_err(|e| io(out, e))?;
    let summary = Summary {
        grid,
        budget,
        hierarchical,
        brute_force,
        seconds: start.elapsed().as_secs_f64(),
    };
    println!("budget: {:?}", summary.budget);
    for (name, o) in [
        ("hierarchical", &summary.hierarchical),
        ("brute force", &summary.brute_force),
    ] {
        println!(
            "{name}: {} ({} attack and {} cloud trainings)",
            describe(&o.decision),
            o.privacy_evaluations,
            o.accuracy_evaluations
        );
    }
    println!("{:.0} s; results in {}", summary.seconds, out.display());
    Ok(summary)
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

/// Half-way between the baseline's PSNR and the best attack's, and the cost of ℓ = 2.
pub fn default_budget(grid: &Characterisation) -> Budget {
    let best = grid
        .cells
        .iter()
        .map(|c| c.privacy_loss().psnr)
        .fold(grid.baseline.psnr, f64::max);
    let at_two = grid
        .cells
        .iter()
        .filter(|c| c.topology.layers <= 2)
        .map(|c| c.cost)
        .max_by_key(|c| c.macs_per_image);
    Budget {
        max_psnr: (grid.baseline.psnr + best) / 2.0,
        max_macs: at_two.map_or(u64::MAX, |c| c.macs_per_image),
        max_param_bytes: at_two.map_or(u64::MAX, |c| c.param_bytes),
    }
}

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

fn io(path: &Path, e: std::io::Error) -> spnn::privynet::PrivyError {
    spnn::privynet::PrivyError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

#[allow(dead_code)]
fn main() {
    let mut quick = false;
    let mut data: Option<PathBuf> = None;
    let mut out: Option<PathBuf> = None;
    let mut vgg16: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => quick = true,
            "--out" => out = args.next().map(PathBuf::from),
            "--vgg16" => vgg16 = args.next().map(PathBuf::from),
            "-h" | "--help" => {
                println!(
                    "usage: privynet_fashion [--quick] [--vgg16 FILE.safetensors] [--out DIR] [DATA_DIR]"
                );
                return;
            }
            other => data = Some(PathBuf::from(other)),
        }
    }
    let data = data
        .or_else(|| std::env::var_os("SPNN_DATA_DIR").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("data"));
    let (config, name) = if quick {
        (ExperimentConfig::quick(), "quick")
    } else {
        (ExperimentConfig::full(), "full")
    };
    let out = out.unwrap_or_else(|| PathBuf::from(format!("target/privynet-{name}")));
    if let Err(e) = run(&config, &data, vgg16.as_deref(), &out) {
        eprintln!("privynet_fashion: {e}");
        eprintln!(
            "(the data come from scripts/fetch-data.sh {})",
            data.display()
        );
        std::process::exit(1);
    }
}
