//! End to end: SPNN-SS training reaches the test AUC of plaintext Burn training of the same
//! architecture, from the same initial weights, on the same batches, within 0.005.

mod common;

use common::*;
use spnn_burn::{AdamParams, DealerMode, LabelMode, Protocol, SpnnConfig};

const EPOCHS: usize = 10;
/// SPNN-HE costs about a second per step with 2048-bit keys: the CI variant trains fewer epochs
/// (the benchmark runs the full ten).
const HE_EPOCHS: usize = 3;
const LR: f64 = 0.1;
/// Adam's learning rate: Burn's Adam at 0.005 here ends between AUC 0.981 and 0.991 depending
/// on the initial weights alone (three runs), a spread that swamps the comparison; at 0.001
/// it settles.
const ADAM_LR: f64 = 0.001;

fn parity(k: usize, config: SpnnConfig) {
    parity_at(k, config, LR);
}

/// [`parity`] at learning rate `lr`; the plaintext twin runs Burn's optimiser of the session's
/// configuration (SGD, Adam or AdamW) with the same hyper-parameters.
fn parity_at(k: usize, config: SpnnConfig, lr: f64) {
    // The same computation as plaintext: no noise on Z (its cost is measured by the
    // feature-leakage benchmark).
    let config = config.with_z_noise(0.0);
    let epochs = if config.protocol == Protocol::Paillier {
        HE_EPOCHS
    } else {
        EPOCHS
    };
    let data = Data::new(k);
    let device = device();
    let sim = start(&data, config, true);
    let mut spnn = spnn_model(&sim, &device);
    let w0 = sim.session().reveal_weights_insecure_for_tests().unwrap();
    let mut plain = plain_twin(&spnn, w0, data.d(), &device);
    let (mut o1, mut o2) = (sim.session().optimizer(), config.optimizer_config().init());
    let mut max_z_diff = 0f32;
    for epoch in 0..epochs {
        for ids in data.epoch(epoch, 64) {
            let y = data.labels(&ids);
            spnn = match config.labels {
                LabelMode::Server => spnn_step(spnn, &mut o1, &ids, &y, lr, &device).0,
                LabelMode::Holder(_) => spnn_step_label_holder(spnn, &mut o1, &ids, lr).0,
            };
            // The plaintext first-layer output before its update, for the divergence report.
            let x =
                spnn_burn::tensor::matrix(data.plain_features(&ids), ids.len(), data.d(), &device);
            let z_plain = spnn_burn::tensor::to_vec(
                plain.first.forward(x.clone())
                    - plain.first.bias.as_ref().unwrap().val().unsqueeze(),
            )
            .unwrap();
            let z_spnn = sim.session().view().z;
            max_z_diff = z_plain
                .iter()
                .zip(&z_spnn)
                .fold(max_z_diff, |m, (a, b)| m.max((a - b).abs()));
            plain = plain_step(plain, &mut o2, data.plain_features(&ids), &y, lr, &device).0;
        }
    }
    let auc_plain = plain_auc(&plain, &data, &device);
    let auc_spnn = match config.labels {
        LabelMode::Server => spnn_auc(&spnn, &data),
        LabelMode::Holder(_) => label_holder_auc(&spnn, &data),
    };
    println!(
        "k = {k} {config:?}: AUC spnn {auc_spnn:.5} plain {auc_plain:.5}; max |ΔZ| over training {max_z_diff:.2e}"
    );
    assert!(
        auc_plain > 0.95,
        "the plaintext baseline itself must learn: {auc_plain}"
    );
    assert!(
        (auc_spnn - auc_plain).abs() <= 0.005,
        "AUC {auc_spnn} vs plaintext {auc_plain}"
    );
    drop(spnn);
    sim.finish().unwrap();
}

#[test]
fn two_holders_labels_at_server() {
    parity(2, SpnnConfig::default());
}

#[test]
fn three_holders_separate_dealer_with_momentum() {
    parity(
        3,
        SpnnConfig::default()
            .with_dealer(DealerMode::Separate)
            .with_momentum(0.9),
    );
}

#[test]
fn two_holders_labels_at_a_holder() {
    parity(2, SpnnConfig::default().with_labels(LabelMode::Holder(0)));
}

#[test]
fn spnn_he_with_2048_bit_keys() {
    parity(2, SpnnConfig::default().with_protocol(Protocol::Paillier));
}

#[test]
fn spnn_he_with_three_holders() {
    // Every ordered pair of the three holders runs the Paillier link; insecure 1024-bit test
    // keys keep the test's six links fast (the key size does not change what is computed).
    parity(
        3,
        SpnnConfig::default()
            .with_protocol(Protocol::Paillier)
            .with_he_key_bits(1024),
    );
}

#[test]
fn three_holders_labels_at_a_holder() {
    parity(3, SpnnConfig::default().with_labels(LabelMode::Holder(2)));
}

#[test]
fn burns_whole_sgd_on_shares_reaches_plaintext_burns_auc() {
    // Momentum with Burn's default dampening and Nesterov, then weight decay: the plaintext
    // twin runs Burn's own `Sgd` with the same configuration.
    let nesterov = SpnnConfig {
        dampening: 0.1,
        nesterov: true,
        ..SpnnConfig::default().with_momentum(0.9)
    };
    parity(2, nesterov);
    // Burn's clipping by value on every gradient (the plaintext twin's first layer through
    // Burn's own clamp), at a threshold that clips about a third of W's entries early on.
    parity(
        2,
        SpnnConfig {
            grad_clip_value: 0.003,
            ..nesterov
        },
    );
    // By norm: a threshold below the gradient's norm at every early step.
    parity(
        2,
        SpnnConfig {
            grad_clip_norm: 0.05,
            ..nesterov
        },
    );
    let decay = SpnnConfig {
        weight_decay: 0.01,
        ..SpnnConfig::default()
    };
    parity(2, decay);
}

#[test]
fn burns_adam_on_shares_reaches_plaintext_burns_auc() {
    // Burn's defaults; the plaintext twin runs Burn's own Adam (ε = 1e-5, where the shares use
    // their floor 2^-16: module `spnn_burn::protocol::adam`).
    let adam = AdamParams::default();
    parity_at(
        2,
        SpnnConfig {
            adam: Some(adam),
            ..SpnnConfig::default()
        },
        ADAM_LR,
    );
    // AdamW's decoupled weight decay, labels at a holder, three holders.
    parity_at(
        3,
        SpnnConfig {
            adam: Some(adam),
            weight_decay: 0.01,
            ..SpnnConfig::default().with_labels(LabelMode::Holder(1))
        },
        ADAM_LR,
    );
}
