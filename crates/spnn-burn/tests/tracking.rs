//! Step by step, SPNN-SS computes what plaintext training computes, within derived bounds.
//!
//! Before each step the test reconstructs `W_t` (insecure reveal, tests only). After it, it
//! checks (1) the server's `Z` against `X·W_t` in f64 and (2) the new `W_{t+1}` against the
//! plaintext SGD update `W_t − η·Xᵀ·G` computed in f64 from the server's gradient `G`.
//!
//! Bounds (units of the fixed-point encoding `u = 2^{-f}`; `X` encoded with error ≤ u/2, `W`
//! is exactly its ring value, `c = B` the gradient scale):
//! - forward: `|Z − X·W_t| ≤ d·(u/2)·max|W_t| + |Z|·2^{-22}` (the exact ring product of the
//!   encoded `X̃` and `W̃`, decoded at `2^{2f}`, then rounded to f32);
//! - weight gradient `g = X̃ᵀ·(cG)~ / c`: `|g − XᵀG| ≤ B·(X·u/(2c) + G·u/2 + u²/(4c))` from the
//!   encodings, `+ u/c + |g|·2^{-16} + u` from the two truncations and the 16-bit multiplier;
//! - update: `|W_{t+1} − (W_t − η·XᵀG)| ≤ η·(err_g + |g|·2^{-16}) + u`.

mod common;

use common::*;
use spnn_burn::{LabelMode, Protocol, SpnnConfig};

fn max_abs(v: &[f32]) -> f64 {
    v.iter().fold(0f64, |m, &x| m.max((x as f64).abs()))
}

fn lockstep(k: usize, config: SpnnConfig, steps: usize) {
    // The step-by-step comparison with plaintext needs the exact Z: no noise on it.
    let config = config.with_z_noise(0.0);
    let data = Data::new(k);
    let device = device();
    let sim = start(&data, config, true);
    let session = sim.session().clone();
    let mut model = spnn_model(&sim, &device);
    let mut optim = sgd();
    let (d, h, lr) = (data.d(), HIDDEN[0], 0.1);
    let u = 2f64.powi(-(config.frac_bits as i32));
    let mut worst = (0f64, 0f64);
    for ids in data.epoch(0, 64).iter().take(steps) {
        let b = ids.len();
        let w = session.reveal_weights_insecure_for_tests().unwrap();
        model = match config.labels {
            LabelMode::Server => {
                spnn_step(model, &mut optim, ids, &data.labels(ids), lr, &device).0
            }
            LabelMode::Holder(_) => spnn_step_label_holder(model, &mut optim, ids, lr).0,
        };
        let view = session.view();
        let x = data.plain_features(ids);
        // (1) forward
        let w_max = max_abs(&w);
        for i in 0..b {
            for j in 0..h {
                let exact: f64 = (0..d)
                    .map(|t| x[i * d + t] as f64 * w[t * h + j] as f64)
                    .sum();
                let got = view.z[i * h + j] as f64;
                let bound = d as f64 * u / 2.0 * w_max + got.abs() * 2f64.powi(-22);
                let err = (got - exact).abs();
                assert!(
                    err <= bound,
                    "step Z[{i},{j}]: |{got} − {exact}| = {err} > {bound}"
                );
                worst.0 = worst.0.max(err / bound);
            }
        }
        // (2) update
        let w_next = session.reveal_weights_insecure_for_tests().unwrap();
        let c = b as f64;
        let (x_max, g_max) = (max_abs(&x), max_abs(&view.g));
        for t in 0..d {
            for j in 0..h {
                let g: f64 = (0..b)
                    .map(|i| x[i * d + t] as f64 * view.g[i * h + j] as f64)
                    .sum();
                let err_g = b as f64
                    * (x_max * u / (2.0 * c) + g_max * u / 2.0 + u * u / (4.0 * c))
                    + u / c
                    + g.abs() * 2f64.powi(-16)
                    + u;
                let bound = lr * (err_g + g.abs() * 2f64.powi(-16)) + u;
                let expected = w[t * h + j] as f64 - lr * g;
                let err = (w_next[t * h + j] as f64 - expected).abs();
                assert!(
                    err <= bound,
                    "W[{t},{j}]: |{} − {expected}| = {err} > {bound}",
                    w_next[t * h + j]
                );
                worst.1 = worst.1.max(err / bound);
            }
        }
    }
    println!(
        "k = {k}: worst error / bound: forward {:.3}, update {:.3}",
        worst.0, worst.1
    );
    // The comparison must have been sensitive: errors exist and use a visible part of the bound.
    assert!(worst.0 > 0.0 && worst.1 > 0.0);
    drop(model);
    sim.finish().unwrap();
}

#[test]
fn two_holders_labels_at_server_track_plaintext_sgd_step_by_step() {
    lockstep(2, SpnnConfig::default(), 7);
}

#[test]
fn three_holders_with_dealer_pairs_track_plaintext_sgd_step_by_step() {
    lockstep(3, SpnnConfig::default(), 7);
}

#[test]
fn spnn_he_tracks_plaintext_sgd_step_by_step() {
    // Paillier products are exact in the ring, so the SS bounds hold unchanged. Insecure
    // 1024-bit test keys keep the test fast; the parity test uses 2048 bits.
    let config = SpnnConfig::default()
        .with_protocol(Protocol::Paillier)
        .with_he_key_bits(1024);
    lockstep(2, config, 3);
    lockstep(2, config.with_labels(LabelMode::Holder(1)), 2);
}

#[test]
fn labels_at_a_holder_track_plaintext_sgd_step_by_step() {
    lockstep(
        2,
        SpnnConfig::default().with_labels(LabelMode::Holder(1)),
        5,
    );
    lockstep(
        3,
        SpnnConfig::default().with_labels(LabelMode::Holder(0)),
        3,
    );
}
