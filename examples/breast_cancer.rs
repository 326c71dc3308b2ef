//! SPNN-SS on the embedded breast-cancer data: two data holders with 15 + 15 features and a
//! server, all in this process. Prints per-epoch progress and the final test AUC next to that of
//! the same MLP trained centrally in plaintext Burn on the same split.
//!
//! `cargo run --example breast_cancer`

use std::time::{Duration, Instant};

use burn::module::Module;
use burn::nn::loss::BinaryCrossEntropyLossConfig;
use burn::nn::{Linear, LinearConfig};
use burn::optim::{GradientsParams, SgdConfig};
use burn::tensor::activation::{relu, sigmoid};
use burn::tensor::{Device, Int, Tensor, TensorData};
use spnn::burn::metrics::roc_auc;
use spnn::burn::simulation::{self, HolderSpec};
use spnn::burn::tensor::to_vec;
use spnn::burn::{PrivateLinear, PrivateLinearConfig, SessionSpec, SpnnConfig};
use spnn::data::{Table, VerticalPartition, embedded::breast_cancer};
use spnn::net::NetworkConfig;

// ANCHOR: model
/// The server's model: 30 private inputs → 64 → 32 → 1.
#[derive(Module, Debug)]
struct Mlp {
    first: PrivateLinear,
    hidden: Linear,
    out: Linear,
}

impl Mlp {
    fn forward(&self, ids: &[u64]) -> Tensor<2> {
        let x = relu(self.first.forward(ids));
        self.out.forward(relu(self.hidden.forward(x)))
    }
}
// ANCHOR_END: model

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (epochs, batch, lr) = (10, 64, 0.1);

    // ANCHOR: parties
    // The data: 569 samples; each holder owns 15 columns and standardises them itself.
    let table = breast_cancer();
    let (train, test) = table.split_ids(0.2, 42);
    let partition = VerticalPartition::even(table.columns(), 2)?;
    let holder_tables = partition.standardized_tables(&table, &train)?;
    let holders = holder_tables.iter().cloned().map(HolderSpec::new).collect();
    // Two holder threads and the server's session, over in-memory channels.
    let sim = simulation::start(
        holders,
        SessionSpec::new(64).with_config(SpnnConfig::default()),
        NetworkConfig::new(1).with_timeout(Duration::from_secs(60)),
    )?;
    // ANCHOR_END: parties

    // ANCHOR: train
    let device = Device::flex().autodiff();
    let mut model = Mlp {
        first: PrivateLinearConfig::new().init(sim.session(), &device),
        hidden: LinearConfig::new(64, 32).init(&device),
        out: LinearConfig::new(32, 1).init(&device),
    };
    // One Burn optimiser for every parameter: its step updates the server's layers and has
    // the holders update their shares of W with the same learning rate.
    let mut optim = sim.session().optimizer();
    let bce = BinaryCrossEntropyLossConfig::new()
        .with_logits(true)
        .init(&device);
    let targets = |ids: &[u64], device: &Device| -> Result<Tensor<2, Int>, spnn::data::DataError> {
        let y: Vec<i64> = table
            .gather_labels(ids)?
            .iter()
            .map(|&v| v as i64)
            .collect();
        Ok(Tensor::from_data(
            TensorData::new(y, [ids.len(), 1]),
            device,
        ))
    };
    for epoch in 1..=epochs {
        let start = Instant::now();
        let mut loss_sum = 0.0;
        let batches: Vec<&[u64]> = train.chunks(batch).collect();
        for ids in &batches {
            let loss = bce.forward(model.forward(ids), targets(ids, &device)?);
            loss_sum += to_vec(loss.clone())?[0];
            // Backward reaches the holders: they compute ∇W as shares.
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(lr, model, grads);
        }
        let valid = model.clone().valid();
        let scores = to_vec(sigmoid(valid.forward(&test)))?;
        let auc = roc_auc(&scores, &table.gather_labels(&test)?);
        let traffic = sim.session().meters().total;
        println!(
            "epoch {epoch:>2}  loss {:.4}  test AUC {auc:.4}  {:.2}s  server traffic {:.1} MB",
            loss_sum / batches.len() as f32,
            start.elapsed().as_secs_f64(),
            (traffic.bytes_sent + traffic.bytes_received) as f64 / 1e6
        );
    }
    // ANCHOR_END: train

    // ANCHOR: inference
    // Inference: the same forward without autodiff; the holders keep no state for a backward.
    let valid = model.clone().valid();
    let scores = to_vec(sigmoid(valid.forward(&test)))?;
    let auc = roc_auc(&scores, &table.gather_labels(&test)?);
    // Every party stops cleanly; the holders report what they did.
    for (j, summary) in sim.finish()?.iter().enumerate() {
        println!(
            "holder {j}: {} forward steps, {} updates",
            summary.forwards, summary.updates
        );
    }
    // ANCHOR_END: inference

    // The same MLP trained centrally in plaintext Burn on the joined columns, for comparison.
    let joined = Table::join_columns(&holder_tables)?;
    let mut plain = PlainMlp {
        first: LinearConfig::new(joined.cols(), 64).init(&device),
        hidden: LinearConfig::new(64, 32).init(&device),
        out: LinearConfig::new(32, 1).init(&device),
    };
    let mut optim = SgdConfig::new().init();
    let rows = |ids: &[u64], device: &Device| -> Result<Tensor<2>, spnn::data::DataError> {
        let x = joined.gather(ids)?;
        Ok(Tensor::from_data(
            TensorData::new(x, [ids.len(), joined.cols()]),
            device,
        ))
    };
    for _ in 0..epochs {
        for ids in train.chunks(batch) {
            let loss = bce.forward(plain.forward(rows(ids, &device)?), targets(ids, &device)?);
            let grads = GradientsParams::from_grads(loss.backward(), &plain);
            plain = optim.step(lr, plain, grads);
        }
    }
    let plain = plain.valid();
    let plain_auc = roc_auc(
        &to_vec(sigmoid(
            plain.forward(rows(&test, &device.clone().inner())?),
        ))?,
        &table.gather_labels(&test)?,
    );
    println!("\nSPNN-SS test AUC {auc:.4}   plaintext Burn test AUC {plain_auc:.4}");
    Ok(())
}

/// The same MLP with an ordinary first layer, for the plaintext comparison.
#[derive(Module, Debug)]
struct PlainMlp {
    first: Linear,
    hidden: Linear,
    out: Linear,
}

impl PlainMlp {
    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let x = relu(self.first.forward(x));
        self.out.forward(relu(self.hidden.forward(x)))
    }
}
