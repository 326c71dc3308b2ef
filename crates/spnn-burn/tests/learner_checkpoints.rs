//! burn-train's Learner checkpoints a model with a private layer — the holders' shares with
//! the server's records — and a run resumed from them continues bit for bit.

mod common;

use std::path::Path;
use std::time::Duration;

use burn::data::dataloader::DataLoaderBuilder;
use burn::module::Module;
use burn::nn::Linear;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::tensor::Tensor;
use burn::tensor::activation::relu;
use burn::train::metric::LossMetric;
use burn::train::{
    ClassificationOutput, InferenceStep, Learner, SupervisedTraining, TrainOutput, TrainStep,
};
use common::*;
use spnn_burn::batch::{IdBatch, IdBatcher, id_dataset};
use spnn_burn::learner::PrivateCheckpointing;
use spnn_burn::simulation::{self, HolderSpec, Simulation};
use spnn_burn::{
    AdamParams, PrivateLinear, PrivateLinearConfig, Randomness, SessionSpec, SpnnConfig,
};
use spnn_net::NetworkConfig;

#[derive(Module, Debug)]
struct Classifier {
    first: PrivateLinear,
    out: Linear,
}

impl Classifier {
    fn output(&self, batch: IdBatch) -> ClassificationOutput {
        let logits: Tensor<2> = self.out.forward(relu(self.first.forward(&batch.ids)));
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

/// Reproducible randomness (insecure, tests only) with momentum, or Adam, so the optimiser's
/// state (at the server and as shares at the holders) matters to the continuation.
fn config(adam: bool) -> SpnnConfig {
    let config = SpnnConfig::default().with_randomness(Randomness::InsecureSeededForTests(41));
    if adam {
        SpnnConfig {
            adam: Some(AdamParams::default()),
            ..config
        }
    } else {
        config.with_momentum(0.5)
    }
}

fn start(data: &Data, shares: &Path, resume: Option<String>, adam: bool) -> Simulation {
    try_start(data, shares, resume, adam).unwrap()
}

fn try_start(
    data: &Data,
    shares: &Path,
    resume: Option<String>,
    adam: bool,
) -> spnn_burn::Result<Simulation> {
    let holders = data
        .holders
        .iter()
        .map(|t| HolderSpec {
            checkpoint_dir: Some(shares.to_path_buf()),
            allow_insecure_reveal: true,
            policy: test_policy(config(adam)),
            ..HolderSpec::new(t.clone())
        })
        .collect();
    let mut spec = SessionSpec::new(HIDDEN[0]).with_config(config(adam));
    if let Some(tag) = resume {
        spec = spec.resuming(tag);
    }
    let net = NetworkConfig::new(9).with_timeout(Duration::from_secs(60));
    simulation::start(holders, spec, net)
}

/// Trains up to epoch `until` with the Learner, resuming at `from` if given; returns `W` and
/// the output layer's weights after training.
fn learn(
    data: &Data,
    dir: &Path,
    from: Option<usize>,
    until: usize,
    adam: bool,
) -> (Vec<f32>, Vec<f32>) {
    let sim = start(data, dir, from.map(PrivateCheckpointing::tag), adam);
    let session = sim.session().clone();
    let device = device();
    let model = Classifier {
        first: PrivateLinearConfig::new()
            .with_bias(false)
            .init(&session, &device),
        out: seeded_linear(HIDDEN[0], 2, 3, &device),
    };
    // No shuffling: the resumed run's second epoch sees the batches the uninterrupted one saw.
    let train = DataLoaderBuilder::new(IdBatcher)
        .batch_size(64)
        .build(id_dataset(&data.labels, &data.train).unwrap());
    let valid = DataLoaderBuilder::new(IdBatcher)
        .batch_size(128)
        .build(id_dataset(&data.labels, &data.test).unwrap());
    let learner = Learner::new(model, session.optimizer(), if adam { 0.01 } else { 0.1 });
    // ANCHOR: checkpointing
    let mut training = SupervisedTraining::new(dir, train, valid)
        .metrics((LossMetric::new(),))
        .with_default_checkpointers()
        .with_checkpointing_strategy(PrivateCheckpointing::new(&session, dir))
        .num_epochs(until);
    if let Some(epoch) = from {
        // Every party started with SessionSpec::resuming(PrivateCheckpointing::tag(epoch)).
        PrivateCheckpointing::resume(&session, dir, epoch).unwrap();
        training = training.checkpoint(epoch);
    }
    // ANCHOR_END: checkpointing
    let result = training.launch(learner);
    session.check().unwrap();
    let w = session.reveal_weights_insecure_for_tests().unwrap();
    let out = spnn_burn::tensor::to_vec(result.model.out.weight.val()).unwrap();
    drop(result);
    sim.finish().unwrap();
    (w, out)
}

#[test]
fn a_learner_resumed_from_its_checkpoint_continues_bit_for_bit() {
    // SGD with momentum, and Adam (its moments and update count are shares and a counter at
    // each holder).
    for adam in [false, true] {
        resumed_bit_for_bit(adam);
    }
}

fn resumed_bit_for_bit(adam: bool) {
    let data = Data::new(2);
    let (whole, resumed) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (w_whole, out_whole) = learn(&data, whole.path(), None, 2, adam);
    // Epoch 1, then every party stops; a new session resumes the Learner at its checkpoint.
    let (w_one, _) = learn(&data, resumed.path(), None, 1, adam);
    assert_ne!(w_one, w_whole, "the second epoch changes W");
    for party in ["holder-0", "holder-1"] {
        assert!(
            resumed
                .path()
                .join(format!("{party}-epoch-1.ckpt"))
                .exists(),
            "{party} saved its shares with the Learner's epoch 1"
        );
    }
    let (w_resumed, out_resumed) = learn(&data, resumed.path(), Some(1), 2, adam);
    assert_eq!(w_resumed, w_whole, "the private weights continue exactly");
    assert_eq!(
        out_resumed, out_whole,
        "the server's layers continue exactly"
    );
}

#[test]
fn resuming_needs_the_sessions_shares_of_that_epoch() {
    let data = Data::new(2);
    let dir = tempfile::tempdir().unwrap();
    let sim = start(&data, dir.path(), None, false);
    let e = PrivateCheckpointing::resume(sim.session(), dir.path(), 3)
        .unwrap_err()
        .to_string();
    assert!(e.contains("SessionSpec::resuming(\"epoch-3\")"), "{e}");
    sim.finish().unwrap();
}

#[test]
fn shares_saved_under_sgd_do_not_resume_under_adam() {
    // SGD's velocity is not Adam's first moment: a holder refuses the checkpoint.
    let data = Data::new(2);
    let dir = tempfile::tempdir().unwrap();
    learn(&data, dir.path(), None, 1, false);
    let e = match try_start(&data, dir.path(), Some(PrivateCheckpointing::tag(1)), true) {
        Ok(sim) => sim
            .finish()
            .expect_err("an SGD checkpoint resumed under Adam"),
        Err(e) => e,
    }
    .to_string();
    assert!(e.contains("written with Adam None"), "{e}");
}
