//! A user-defined Burn model with `PrivateLinear` first, trained with burn-train's `Learner`.
//!
//! `cargo run --example custom_model --features train`
//!
//! Two simulated data holders own 15 + 15 columns of the breast-cancer data; the server's model
//! is an ordinary `#[derive(Module)]` struct whose first layer is private. The Learner drives
//! training: `TrainStep::step` runs forward and `loss.backward()` (which reaches the holders),
//! and the session's optimiser — Burn's Adam, stated once in the `SessionSpec` — updates every
//! parameter, the private weights on shares at the holders (their moments are shares too), so
//! the learning-rate schedule and gradient accumulation cover them too.

use std::time::Duration;

use burn::data::dataloader::DataLoaderBuilder;
use burn::grad_clipping::GradientClippingConfig;
use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::{Linear, LinearConfig};
use burn::optim::AdamConfig;
use burn::tensor::activation::relu;
use burn::tensor::{Device, Int, Tensor, TensorData};
use burn::train::metric::{AccuracyMetric, LossMetric};
use burn::train::{
    ClassificationOutput, InferenceStep, Learner, SupervisedTraining, TrainOutput, TrainStep,
};
use spnn::burn::batch::{IdBatch, IdBatcher, id_dataset};
use spnn::burn::simulation::{self, HolderSpec};
use spnn::burn::{PrivateLinear, PrivateLinearConfig, SessionSpec};
use spnn::data::{VerticalPartition, embedded::breast_cancer};
use spnn::net::NetworkConfig;

// ANCHOR: model
/// The server's model: a private first layer, then ordinary Burn layers.
#[derive(Module, Debug)]
pub struct Classifier {
    first: PrivateLinear,
    hidden: Linear,
    out: Linear,
}

impl Classifier {
    /// Class logits `[batch, 2]` for a batch of sample ids.
    pub fn forward(&self, ids: &[u64]) -> Tensor<2> {
        let x = relu(self.first.forward(ids));
        self.out.forward(relu(self.hidden.forward(x)))
    }

    fn output(&self, batch: IdBatch) -> ClassificationOutput {
        let logits = self.forward(&batch.ids);
        let loss = CrossEntropyLossConfig::new()
            .init(&logits.device())
            .forward(logits.clone(), batch.targets.clone());
        ClassificationOutput::new(loss, logits, batch.targets)
    }
}

impl TrainStep for Classifier {
    type Input = IdBatch;
    type Output = ClassificationOutput;

    fn step(&self, batch: IdBatch) -> TrainOutput<ClassificationOutput> {
        let item = self.output(batch);
        // The backward pass runs the secure backward protocol on the holders.
        TrainOutput::new(self, item.loss.backward(), item)
    }
}

impl InferenceStep for Classifier {
    type Input = IdBatch;
    type Output = ClassificationOutput;

    fn step(&self, batch: IdBatch) -> ClassificationOutput {
        self.output(batch)
    }
}
// ANCHOR_END: model

/// Trains for `epochs` with gradient accumulation over `accumulation` batches; returns the
/// test accuracy of the trained model (in percent) and the number of secure updates holder 0
/// applied.
pub fn run(epochs: usize, accumulation: usize, artifacts: &std::path::Path) -> (f64, u64) {
    // ANCHOR: parties
    let table = breast_cancer();
    let (train, test) = table.split_ids(0.2, 42);
    let partition = VerticalPartition::even(table.columns(), 2).expect("30 columns split in two");
    let holders = partition
        .standardized_tables(&table, &train)
        .expect("embedded data")
        .into_iter()
        .map(HolderSpec::new)
        .collect();
    let sim = simulation::start(
        holders,
        // ANCHOR: optimizer
        // Burn's Adam with gradient clipping by norm: the holders clip W's gradient on shares.
        SessionSpec::new(32).with_optimizer(
            AdamConfig::new().with_grad_clipping(Some(GradientClippingConfig::Norm(1.0))),
        ),
        // ANCHOR_END: optimizer
        NetworkConfig::new(1).with_timeout(Duration::from_secs(60)),
    )
    .expect("in-process parties");
    // ANCHOR_END: parties

    // ANCHOR: learner
    let device = Device::flex().autodiff();
    let model = Classifier {
        first: PrivateLinearConfig::new().init(sim.session(), &device),
        hidden: LinearConfig::new(32, 16).init(&device),
        out: LinearConfig::new(16, 2).init(&device),
    };
    // The server's datasets are ids and labels; the features stay at the holders.
    let train_loader = DataLoaderBuilder::new(IdBatcher)
        .batch_size(32)
        .shuffle(7)
        .build(id_dataset(&table, &train).expect("labelled ids"));
    let valid_loader = DataLoaderBuilder::new(IdBatcher)
        .batch_size(128)
        .build(id_dataset(&table, &test).expect("labelled ids"));
    // The session's optimiser: Burn's Adam for the server's layers and, on shares, for W.
    let learner = Learner::new(model, sim.session().optimizer(), 0.005);
    let result = SupervisedTraining::new(artifacts, train_loader, valid_loader)
        .metrics((AccuracyMetric::new(), LossMetric::new()))
        .grads_accumulation(accumulation)
        .num_epochs(epochs)
        .launch(learner);
    // ANCHOR_END: learner

    let model = result.model;
    let valid = model.clone().valid();
    let logits = valid.forward(&test);
    let predicted = logits.argmax(1).flatten::<1>(0, 1);
    let labels: Vec<i64> = table
        .gather_labels(&test)
        .expect("known ids")
        .iter()
        .map(|&y| y as i64)
        .collect();
    let truth =
        Tensor::<1, Int>::from_data(TensorData::new(labels, [test.len()]), &predicted.device());
    let correct = predicted.equal(truth).int().sum().into_scalar::<i64>();
    let summaries = sim.finish().expect("every party ends cleanly");
    (
        100.0 * correct as f64 / test.len() as f64,
        summaries[0].updates,
    )
}

#[allow(dead_code)]
fn main() {
    let artifacts = std::env::temp_dir().join("spnn-custom-model");
    let (accuracy, _) = run(8, 2, &artifacts);
    println!("test accuracy of the private model: {accuracy:.1}%");
}
