//! burn-train's `Learner` on a server that has no labels: they stay at a label holder, which
//! owns the top of the model and the loss.
//!
//! `cargo run --example label_holder_learner --features train`
//!
//! Two simulated data holders own 15 + 15 columns of the breast-cancer data; holder 0 also has
//! the labels and trains the top layer `Linear(16, 1)` with binary cross-entropy under the
//! default label defence, reporting nothing. The server's model ends at 16 activations. Its
//! dataset is bare sample ids; in `TrainStep::step` it sends its activations to the label
//! holder and back-propagates the gradient that comes back (through its layers and, via
//! `PrivateLinear`, to the holders). The server cannot compute a metric, so its validation step
//! does nothing: after training it sends the test set's activations once and closes an
//! evaluation round, whose metrics only the label holder records.

use std::time::Duration;

use burn::data::dataloader::DataLoaderBuilder;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::optim::SgdConfig;
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};
use burn::train::{InferenceStep, Learner, SupervisedTraining, TrainOutput, TrainStep};
use spnn::burn::batch::{IdsOnlyBatcher, ids_dataset};
use spnn::burn::simulation::{self, HolderSpec};
use spnn::burn::train::{backward_from_label_holder, evaluate_at_label_holder};
use spnn::burn::{
    HolderLabels, LabelMode, PrivateLinear, PrivateLinearConfig, SessionSpec, SpnnConfig, TopLayers,
};
use spnn::data::{VerticalPartition, embedded::breast_cancer};
use spnn::net::NetworkConfig;

/// The server's part of the model: a private first layer and one hidden layer, up to 16
/// activations.
#[derive(Module, Debug)]
pub struct ServerPart {
    first: PrivateLinear,
    hidden: Linear,
}

impl ServerPart {
    /// Activations `[batch, 16]` for a batch of sample ids.
    pub fn forward(&self, ids: &[u64]) -> Tensor<2> {
        relu(self.hidden.forward(relu(self.first.forward(ids))))
    }
}

// ANCHOR: steps
impl TrainStep for ServerPart {
    type Input = Vec<u64>;
    type Output = ();

    fn step(&self, ids: Vec<u64>) -> TrainOutput<()> {
        // The label holder computes the loss and returns ∂L/∂activations (defended); the
        // backward continues through the server's layers to the holders.
        let (grads, _loss) = backward_from_label_holder(self.first.session(), self.forward(&ids))
            .unwrap_or_else(|e| panic!("label holder step failed: {e}"));
        TrainOutput::new(self, grads, ())
    }
}

impl InferenceStep for ServerPart {
    type Input = Vec<u64>;
    type Output = ();

    /// Nothing to measure without labels: evaluation happens at the label holder, once.
    fn step(&self, _ids: Vec<u64>) {}
}
// ANCHOR_END: steps

/// Trains for `epochs` and returns the test AUC the label holder recorded and the number of
/// metric reports the server received (0: the label holder reports nothing by default).
pub fn run(epochs: usize, artifacts: &std::path::Path) -> (f64, usize) {
    let table = breast_cancer();
    let (train, test) = table.split_ids(0.2, 42);
    let partition = VerticalPartition::even(table.columns(), 2).expect("30 columns split in two");
    let device = Device::flex().autodiff();
    // ANCHOR: label_holder
    let top = TopLayers::new(
        LinearConfig::new(16, 1).init(&device),
        SgdConfig::new().init(),
        device.clone(),
    );
    let labels = HolderLabels::new(table.clone(), top);
    let metrics = labels.metrics();
    let mut holders: Vec<HolderSpec> = partition
        .standardized_tables(&table, &train)
        .expect("embedded data")
        .into_iter()
        .map(HolderSpec::new)
        .collect();
    holders[0].labels = Some(labels);
    let sim = simulation::start(
        holders,
        SessionSpec::new(32).with_config(SpnnConfig::default().with_labels(LabelMode::Holder(0))),
        NetworkConfig::new(1).with_timeout(Duration::from_secs(60)),
    )
    .expect("in-process parties");
    // ANCHOR_END: label_holder

    // ANCHOR: learner
    let model = ServerPart {
        first: PrivateLinearConfig::new().init(sim.session(), &device),
        hidden: LinearConfig::new(32, 16).init(&device),
    };
    // The server's datasets are bare ids: it has no labels.
    let train_loader = DataLoaderBuilder::new(IdsOnlyBatcher)
        .batch_size(32)
        .shuffle(7)
        .build(ids_dataset(&train));
    let valid_loader = DataLoaderBuilder::new(IdsOnlyBatcher)
        .batch_size(128)
        .build(ids_dataset(&test));
    // One optimiser: Burn's SGD for the server's layers and, on shares, the private weights.
    let learner = Learner::new(model, sim.session().optimizer(), 0.1);
    let result = SupervisedTraining::new(artifacts, train_loader, valid_loader)
        .num_epochs(epochs)
        .launch(learner);
    // One evaluation round at the label holder, on the test set.
    let valid = result.model.valid();
    let session = valid.first.session().clone();
    evaluate_at_label_holder(&session, valid.forward(&test)).expect("test activations");
    let reported = session.label_holder_metrics().expect("evaluation round");
    // ANCHOR_END: learner
    drop(valid);
    sim.finish().expect("every party ends cleanly");
    let auc = metrics
        .last()
        .expect("the label holder recorded the round")
        .auc;
    (auc, usize::from(reported.is_some()))
}

#[allow(dead_code)]
fn main() {
    let artifacts = std::env::temp_dir().join("spnn-label-holder-learner");
    let (auc, _) = run(8, &artifacts);
    println!("test AUC at the label holder: {auc:.4}");
}
