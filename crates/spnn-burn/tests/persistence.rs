//! Every party saves and loads its state; a resumed run continues exactly.

mod common;

use std::time::Duration;

use burn::module::Module;
use common::*;
use spnn_burn::checkpoint::server as server_ckpt;
use spnn_burn::simulation::{self, HolderSpec, Simulation};
use spnn_burn::{
    HolderLabels, LabelDefence, LabelMode, Randomness, SessionSpec, SpnnConfig, TopLayers,
};
use spnn_net::NetworkConfig;

fn config() -> SpnnConfig {
    // Reproducible randomness: the continuation after a resume draws exactly what the
    // uninterrupted run draws. Insecure, for tests only.
    SpnnConfig::default()
        .with_momentum(0.5)
        .with_randomness(Randomness::InsecureSeededForTests(77))
}

/// Labels at the server, or at holder 0 behind its top layer with the default defence plus
/// randomised response (so its checkpoint must carry the top layer and the response seed).
#[derive(Clone, Copy, PartialEq)]
enum Labels {
    Server,
    Holder,
}

impl Labels {
    fn config(self) -> SpnnConfig {
        match self {
            Labels::Server => config(),
            Labels::Holder => config().with_labels(LabelMode::Holder(0)),
        }
    }
}

fn optimizer() -> burn::optim::ModuleOptimizer {
    config().optimizer_config().init()
}

fn start_at(
    data: &Data,
    dir: &std::path::Path,
    resume: Option<&str>,
    labels: Labels,
) -> Simulation {
    let config = labels.config();
    let holders = data
        .holders
        .iter()
        .enumerate()
        .map(|(i, t)| HolderSpec {
            checkpoint_dir: Some(dir.to_path_buf()),
            allow_insecure_reveal: true,
            policy: test_policy(config),
            labels: (labels == Labels::Holder && i == 0).then(|| {
                let top = TopLayers::new(out_layer(&device()), optimizer(), device());
                HolderLabels::new(data.labels.clone(), top)
                    .with_defence(LabelDefence::default().with_randomised_response(2.0))
            }),
            ..HolderSpec::new(t.clone())
        })
        .collect();
    let mut spec = SessionSpec::new(HIDDEN[0]).with_config(config);
    if let Some(tag) = resume {
        spec = spec.resuming(tag);
    }
    simulation::start(
        holders,
        spec,
        NetworkConfig::new(5).with_timeout(Duration::from_secs(30)),
    )
    .unwrap()
}

/// Trains on `batches`; returns the model and every gradient the label holder returned.
fn train(
    mut m: SpnnMlp,
    optim: &mut burn::optim::ModuleOptimizer,
    data: &Data,
    batches: &[Vec<u64>],
    labels: Labels,
) -> (SpnnMlp, Vec<f32>) {
    let device = device();
    let mut head_gradients = vec![];
    for ids in batches {
        m = match labels {
            Labels::Server => spnn_step(m, optim, ids, &data.labels(ids), 0.1, &device).0,
            Labels::Holder => {
                let m = spnn_step_label_holder(m, optim, ids, 0.1).0;
                head_gradients.extend(m.first.session().view().head_gradient);
                m
            }
        };
    }
    (m, head_gradients)
}

fn params(m: &SpnnMlp) -> Vec<f32> {
    let mut out = vec![];
    for p in [m.hidden.weight.val(), m.out.weight.val()] {
        out.extend(spnn_burn::tensor::to_vec(p).unwrap());
    }
    out
}

#[test]
fn a_resumed_run_continues_exactly() {
    resumes_exactly(Labels::Server);
}

#[test]
fn a_resumed_label_holder_continues_exactly() {
    resumes_exactly(Labels::Holder);
}

fn resumes_exactly(labels: Labels) {
    let data = Data::new(2);
    let device = device();
    let batches = data.epoch(0, 64);
    let dir = tempfile::tempdir().unwrap();

    // Uninterrupted: 6 steps. Both runs start from the same server layers (a record of the
    // first model; Burn's global RNG is shared with tests running in parallel).
    let sim = start_at(&data, dir.path(), None, labels);
    let mut optim = sim.session().optimizer();
    let first = spnn_model(&sim, &device);
    let initial = first.clone().into_record();
    let (m, g_full) = train(first, &mut optim, &data, &batches[..6], labels);
    let (w_full, p_full) = (
        sim.session().reveal_weights_insecure_for_tests().unwrap(),
        params(&m),
    );
    drop(m);
    sim.finish().unwrap();

    // Interrupted after 3 steps, saved, everything dropped, resumed for 3 more.
    let sim = start_at(&data, dir.path(), None, labels);
    let mut optim = sim.session().optimizer();
    let (m, _) = train(
        spnn_model(&sim, &device).load_record(initial),
        &mut optim,
        &data,
        &batches[..3],
        labels,
    );
    // ANCHOR: save_load
    server_ckpt::save(&m, &optim, sim.session(), dir.path(), "step-3").unwrap();
    drop(m);
    sim.finish().unwrap();

    // Every party starts again; the session resumes at "step-3" (SessionSpec::resuming).
    let sim = start_at(&data, dir.path(), Some("step-3"), labels);
    let fresh = spnn_model(&sim, &device);
    let (m, mut optim) = server_ckpt::load(
        fresh,
        sim.session().optimizer(),
        sim.session(),
        dir.path(),
        "step-3",
    )
    .unwrap();
    // ANCHOR_END: save_load
    let (m, g_resumed) = train(m, &mut optim, &data, &batches[3..6], labels);
    let (w_resumed, p_resumed) = (
        sim.session().reveal_weights_insecure_for_tests().unwrap(),
        params(&m),
    );
    drop(m);
    sim.finish().unwrap();

    let differ = |a: &[f32], b: &[f32]| {
        a.iter()
            .zip(b)
            .filter(|(x, y)| x.to_bits() != y.to_bits())
            .count()
    };
    assert_eq!(w_full.len(), w_resumed.len());
    assert_eq!(
        differ(&w_full, &w_resumed),
        0,
        "weight entries differ after resuming"
    );
    assert_eq!(
        differ(&p_full, &p_resumed),
        0,
        "server parameters differ after resuming"
    );
    // The label holder's top layer and defence continue too: the gradients it returns after
    // the resume are those of the uninterrupted run's last three steps.
    let tail = &g_full[g_full.len() - g_resumed.len()..];
    assert_eq!(labels == Labels::Holder, !g_resumed.is_empty());
    assert_eq!(
        differ(tail, &g_resumed),
        0,
        "head gradients differ after resuming"
    );
}

#[test]
fn corrupted_checkpoints_are_refused() {
    let data = Data::new(2);
    let device = device();
    let dir = tempfile::tempdir().unwrap();
    let sim = start_at(&data, dir.path(), None, Labels::Server);
    let optim = sim.session().optimizer();
    let m = spnn_model(&sim, &device);
    server_ckpt::save(&m, &optim, sim.session(), dir.path(), "t").unwrap();
    sim.finish().unwrap();

    // Flip one byte of holder 1's checkpoint: its resume must fail with a checksum error.
    let path = dir.path().join("holder-1-t.ckpt");
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&path, bytes).unwrap();
    let holders = data
        .holders
        .iter()
        .map(|t| HolderSpec {
            checkpoint_dir: Some(dir.path().to_path_buf()),
            policy: test_policy(config()),
            ..HolderSpec::new(t.clone())
        })
        .collect();
    let sim = simulation::start(
        holders,
        SessionSpec::new(HIDDEN[0])
            .with_config(config())
            .resuming("t"),
        NetworkConfig::new(5).with_timeout(Duration::from_secs(5)),
    )
    .unwrap();
    let err = sim.finish().unwrap_err().to_string();
    assert!(err.contains("MAC mismatch"), "{err}");

    // The server's own file, truncated, is refused too.
    let server_file = dir.path().join("server-t.ckpt");
    let bytes = std::fs::read(&server_file).unwrap();
    std::fs::write(&server_file, &bytes[..bytes.len() - 10]).unwrap();
    let err = spnn_burn::checkpoint::read_sealed(&server_file)
        .unwrap_err()
        .to_string();
    assert!(err.contains("truncated"), "{err}");
    drop(m);
}

#[test]
fn records_hold_the_server_layers() {
    let data = Data::new(2);
    let device = device();
    let sim = start_at(
        &data,
        tempfile::tempdir().unwrap().path(),
        None,
        Labels::Server,
    );
    let m = spnn_model(&sim, &device);
    // anchor, bias, hidden weight + bias, out weight + bias: the shares are not in the server's record.
    assert_eq!(m.clone().into_record().len(), 6);
    drop(m);
    sim.finish().unwrap();
}
