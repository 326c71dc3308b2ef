//! PrivyNet on the digits the repository ships, with nothing to download: pre-train a small
//! VGG-style CNN on public digits 0–4, use its first ℓ layers as the owner's frozen extractor
//! with a secret random choice of c channels, train the cloud network on the owner's private
//! digits 5–9, attack the uploads with a learned decoder, and let the topology optimiser pick
//! (ℓ, c) under a budget.
//!
//! ```text
//! cargo run --release --features privynet --example privynet_quickstart
//! ```
//!
//! The full experiment on Fashion-MNIST is `examples/privynet_fashion.rs`.

use std::path::Path;

use burn::tensor::Device;
use spnn::privynet::experiment::{
    Characterisation, Experiment, ExperimentConfig, ExperimentData, Limits, Strategy,
};
use spnn::privynet::optimizer::{self, Budget, Decision, Outcome};
use spnn::privynet::source::pretrain;
use spnn::privynet::{InputFormat, Result};

/// What the quick start measured and decided.
pub struct QuickStart {
    /// The characterised (ℓ, c) grid.
    pub grid: Characterisation,
    /// The budget the optimiser worked under.
    pub budget: Budget,
    /// PrivyNet's hierarchical search over the grid.
    pub outcome: Outcome,
}

// ANCHOR: run
/// Runs the quick start for `config` (normally [`ExperimentConfig::embedded`]); the cloud
/// Learner's logs go under `artifacts`.
pub fn run(config: &ExperimentConfig, artifacts: &Path) -> Result<QuickStart> {
    let local = Device::flex(); // the owner's extractor: no autodiff, nothing trains it
    let train = Device::flex().autodiff(); // source network, cloud network, attack decoder

    // 1. The data compiled into the library: digits 0–4 are public, 5–9 the owner's.
    let data = ExperimentData::embedded(config)?;

    // 2. The pre-trained network, trained on the public digits only.
    let source = pretrain(&config.source, &data.pretrain, &config.pretrain, &train)?;
    let source_accuracy = source.accuracy(&data.pretrain_held_out, &train);
    println!(
        "source network: {:.1} % on held-out public digits",
        100.0 * source_accuracy
    );

    // 3. For each (ℓ, c): the owner's uploads, the cloud's accuracy, the attack, the cost.
    let experiment = Experiment::new(
        source.stages,
        InputFormat::UnitGray,
        data,
        config.clone(),
        artifacts,
        local,
        train,
    );
    println!("| ℓ | c | accuracy | PSNR, channels known | PSNR, guessed | MACs/image |");
    let grid = experiment.characterise(Some(source_accuracy), |cell| {
        println!(
            "| {} | {} | {:.3} | {:.2} dB | {:.2} dB | {} |",
            cell.topology.layers,
            cell.topology.channels,
            cell.accuracy,
            cell.known.psnr,
            cell.unknown.psnr,
            cell.cost.macs_per_image
        );
    })?;
    println!("mean-image baseline: {:.2} dB", grid.baseline.psnr);

    // 4. The topology optimiser under the default budget.
    let budget = grid.default_budget(&Limits::default());
    let candidates = experiment.candidates();
    let outcome = optimizer::hierarchical(&candidates, &budget, &mut grid.table(Strategy::Random))?;
    match &outcome.decision {
        Decision::Chosen(p) => println!(
            "run ℓ = {} layers locally and upload c = {} channels: accuracy {:.3}, privacy loss \
             {:.2} dB (budget {:.2} dB)",
            p.topology.layers, p.topology.channels, p.accuracy, p.psnr, budget.max_psnr
        ),
        Decision::NoFeasibleTopology { reason } => println!("no topology fits: {reason}"),
    }
    Ok(QuickStart {
        grid,
        budget,
        outcome,
    })
}
// ANCHOR_END: run

#[allow(dead_code)]
fn main() {
    let start = std::time::Instant::now();
    let artifacts = Path::new("target/privynet-quickstart");
    if let Err(e) = run(&ExperimentConfig::embedded(), artifacts) {
        eprintln!("privynet_quickstart: {e}");
        std::process::exit(1);
    }
    println!("{:.0} s", start.elapsed().as_secs_f64());
}
