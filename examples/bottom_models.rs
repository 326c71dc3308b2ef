//! Holders with their own Burn bottom models, combined by `SecureAggregation`: the server learns
//! only the sum of their outputs (pairwise masks cancel in it).
//!
//! `cargo run --example bottom_models`

use std::time::Duration;

use burn::module::Module;
use burn::nn::loss::BinaryCrossEntropyLossConfig;
use burn::nn::{Linear, LinearConfig};
use burn::optim::{GradientsParams, SgdConfig};
use burn::tensor::activation::{relu, sigmoid};
use burn::tensor::{Device, Int, Tensor, TensorData};
use spnn::burn::metrics::roc_auc;
use spnn::burn::simulation::{self, HolderSpec};
use spnn::burn::tensor::to_vec;
use spnn::burn::{LocalModel, SecureAggregation, SecureAggregationConfig, SessionSpec};
use spnn::data::{VerticalPartition, embedded::breast_cancer};
use spnn::net::NetworkConfig;

// ANCHOR: bottom
/// Each holder's own model: its columns → 16 features.
#[derive(Module, Debug)]
struct Bottom {
    layer: Linear,
}

impl LocalModel for Bottom {
    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        relu(self.layer.forward(x))
    }
}

/// The server: the securely aggregated sum of the bottoms, then one layer.
#[derive(Module, Debug)]
struct Top {
    sum: SecureAggregation,
    out: Linear,
}
// ANCHOR_END: bottom

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let table = breast_cancer();
    let (train, test) = table.split_ids(0.2, 42);
    let device = Device::flex().autodiff();
    // ANCHOR: start
    let holders = VerticalPartition::even(table.columns(), 2)?
        .standardized_tables(&table, &train)?
        .into_iter()
        .map(|t| {
            let bottom = Bottom {
                layer: LinearConfig::new(t.cols(), 16).init(&device),
            };
            HolderSpec::new(t).with_bottom_model(bottom, SgdConfig::new().init(), device.clone())
        })
        .collect();
    let sim = simulation::start(
        holders,
        SessionSpec::new(16),
        NetworkConfig::new(1).with_timeout(Duration::from_secs(60)),
    )?;
    let mut top = Top {
        sum: SecureAggregationConfig::new().init(sim.session(), &device),
        out: LinearConfig::new(16, 1).init(&device),
    };
    // ANCHOR_END: start
    // One optimiser: its step also tells every holder to step its own bottom model's.
    let mut optim = sim.session().optimizer();
    let bce = BinaryCrossEntropyLossConfig::new()
        .with_logits(true)
        .init(&device);
    for epoch in 1..=10 {
        for ids in train.chunks(64) {
            let y: Vec<i64> = table
                .gather_labels(ids)?
                .iter()
                .map(|&v| v as i64)
                .collect();
            let targets = Tensor::<2, Int>::from_data(TensorData::new(y, [ids.len(), 1]), &device);
            let loss = bce.forward(top.out.forward(top.sum.forward(ids)), targets);
            let grads = GradientsParams::from_grads(loss.backward(), &top);
            top = optim.step(0.1, top, grads);
        }
        let valid = top.clone().valid();
        let scores = to_vec(sigmoid(valid.out.forward(valid.sum.forward(&test))))?;
        println!(
            "epoch {epoch:>2}: test AUC {:.4}",
            roc_auc(&scores, &table.gather_labels(&test)?)
        );
    }
    sim.finish()?;
    Ok(())
}
