//! One optimiser for every parameter: the session's `optimizer()` steps the private weights'
//! shares with the learning rate Burn gives the step, and set-up refuses what shares cannot run.

mod common;

use std::time::Duration;

use burn::grad_clipping::GradientClippingConfig;
use burn::optim::{AdamConfig, AdamWConfig, GradientsParams, SgdConfig};
use common::*;
use spnn_burn::simulation::{self, HolderSpec};
use spnn_burn::{Protocol, SessionSpec, SpnnConfig};
use spnn_net::NetworkConfig;

fn start_refused(spec: SessionSpec) -> String {
    let data = Data::new(2);
    let holders = data
        .holders
        .iter()
        .map(|t| HolderSpec::new(t.clone()))
        .collect();
    let net = NetworkConfig::new(5).with_timeout(Duration::from_secs(20));
    match simulation::start(holders, spec, net) {
        Ok(_) => panic!("the session started"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn set_up_refuses_what_the_holders_cannot_run_on_shares() {
    // Adam runs on shares, but not what needs a comparison of secret values, not Adam's L2
    // decay (use AdamW's), and not under SPNN-HE (no dealer for its products).
    for (adam, why) in [
        (
            SessionSpec::new(HIDDEN[0]).with_optimizer(AdamConfig::new().with_amsgrad(true)),
            "AMSGrad",
        ),
        (
            SessionSpec::new(HIDDEN[0]).with_optimizer(
                AdamConfig::new()
                    .with_weight_decay(Some(burn::optim::decay::WeightDecayConfig::new(1e-3))),
            ),
            "AdamWConfig",
        ),
        (
            SessionSpec::new(HIDDEN[0])
                .with_config(SpnnConfig::default().with_protocol(Protocol::Paillier))
                .with_optimizer(AdamWConfig::new().with_weight_decay(0.0)),
            "SPNN-HE (no dealer) cannot run it",
        ),
    ] {
        let e = start_refused(adam);
        assert!(e.contains(why), "{e}");
    }
    // Clipping runs on shares (tests/tracking.rs), but not under SPNN-HE, and by norm not at
    // 20 fractional bits (its square root's range).
    for clipping in [
        GradientClippingConfig::Value(1.0),
        GradientClippingConfig::Norm(1.0),
    ] {
        let clipped = SgdConfig::new().with_gradient_clipping(Some(clipping));
        let e = start_refused(
            SessionSpec::new(HIDDEN[0])
                .with_config(SpnnConfig::default().with_protocol(Protocol::Paillier))
                .with_optimizer(clipped),
        );
        assert!(e.contains("SPNN-HE (no dealer) cannot run it"), "{e}");
    }
    let clipped = SgdConfig::new().with_gradient_clipping(Some(GradientClippingConfig::Norm(1.0)));
    let e = start_refused(
        SessionSpec::new(HIDDEN[0])
            .with_config(SpnnConfig::default().with_frac_bits(20))
            .with_optimizer(clipped),
    );
    assert!(e.contains("16 to 19 fractional bits"), "{e}");
    let decay =
        SgdConfig::new().with_weight_decay(Some(burn::optim::decay::WeightDecayConfig::new(1e-3)));
    let e = start_refused(
        SessionSpec::new(HIDDEN[0])
            .with_config(SpnnConfig::default().with_protocol(Protocol::Paillier))
            .with_optimizer(decay),
    );
    assert!(e.contains("SPNN-HE cannot run it"), "{e}");
}

#[test]
fn a_run_whose_optimiser_never_updates_the_private_weights_is_stopped() {
    let data = Data::new(2);
    let device = device();
    let sim = start(&data, SpnnConfig::default(), false);
    let session = sim.session().clone();
    let model = spnn_model(&sim, &device);
    let ids = &data.epoch(0, 64)[0];
    // Burn's SGD alone: the server's layers move, W never does.
    let model = spnn_step(model, &mut sgd(), ids, &data.labels(ids), 0.1, &device).0;
    let e = session.forward(&data.test, false).unwrap_err().to_string();
    assert!(e.contains("ServerSession::optimizer"), "{e}");
    assert!(
        session
            .save("t")
            .unwrap_err()
            .to_string()
            .contains("no update")
    );
    drop(model);
    drop(sim);
}

#[test]
fn the_optimisers_step_carries_its_learning_rate_to_the_shares() {
    let data = Data::new(2);
    let device = device();
    let sim = start(&data, SpnnConfig::default().with_z_noise(0.0), true);
    let session = sim.session().clone();
    let mut model = spnn_model(&sim, &device);
    let mut optim = session.optimizer();
    let batches = data.epoch(0, 64);
    let reveal = || session.reveal_weights_insecure_for_tests().unwrap();
    // A step at learning rate 0 leaves W exactly as it was; one at 0.1 moves it; a step of
    // the server's own optimiser without the session's (plain Burn SGD) leaves W behind.
    let w0 = reveal();
    model = spnn_step(
        model,
        &mut optim,
        &batches[0],
        &data.labels(&batches[0]),
        0.0,
        &device,
    )
    .0;
    assert_eq!(reveal(), w0, "learning rate 0 reached the shares as 0");
    model = spnn_step(
        model,
        &mut optim,
        &batches[1],
        &data.labels(&batches[1]),
        0.1,
        &device,
    )
    .0;
    let w1 = reveal();
    assert_ne!(w1, w0, "the secure update ran");
    let loss = bce(
        model.forward(&batches[2]),
        &data.labels(&batches[2]),
        &device,
    );
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    model = sgd().step(0.1, model, grads);
    assert_eq!(
        reveal(),
        w1,
        "Burn's optimiser alone does not reach the shares"
    );
    assert_eq!(sim.session().counters().1, 2, "two secure updates");
    drop(model);
    sim.finish().unwrap();
}

/// Adam's square root on shares covers `v ≤ 4^c`, `c = 60 − 3f`: at 18 fractional bits the
/// default clips' gradient bound is beyond it, and the first update stops with the reason —
/// before any share changes — instead of failing part-way through a run.
#[test]
fn adam_beyond_its_square_roots_domain_stops_at_the_first_update_with_the_reason() {
    let data = Data::new(2);
    let device = device();
    let config = SpnnConfig {
        adam: Some(spnn_burn::AdamParams::default()),
        ..SpnnConfig::default().with_frac_bits(18)
    };
    let sim = start(&data, config, false);
    let session = sim.session().clone();
    let model = spnn_model(&sim, &device);
    let mut optim = session.optimizer();
    let ids = &data.epoch(0, 64)[0];
    let model = spnn_step(model, &mut optim, ids, &data.labels(ids), 0.001, &device).0;
    drop(model);
    let e = sim.finish().unwrap_err().to_string();
    assert!(e.contains("square root on shares covers"), "{e}");
}
