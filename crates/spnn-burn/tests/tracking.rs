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
//!
//! SPNN-HE rounds each of the `k` holders' integer shares instead of truncating a ring share:
//! each rounding errs by up to `k/2` units, so there `u` becomes `max(1, k/2)·u` in the two
//! rounding terms.

mod common;

use common::*;
use spnn_burn::{LabelMode, Protocol, SpnnConfig};

/// A session of `k` holders whose weights can be revealed, its model and its optimiser: what
/// every step-by-step comparison starts from.
struct Lockstep {
    data: Data,
    device: burn::tensor::Device,
    sim: spnn_burn::simulation::Simulation,
    session: spnn_burn::ServerSession,
    model: SpnnMlp,
    optim: burn::optim::ModuleOptimizer,
}

impl Lockstep {
    fn start(k: usize, config: SpnnConfig) -> Self {
        let data = Data::new(k);
        let device = device();
        let sim = start(&data, config, true);
        let session = sim.session().clone();
        let model = spnn_model(&sim, &device);
        let optim = session.optimizer();
        Self {
            data,
            device,
            sim,
            session,
            model,
            optim,
        }
    }
}

fn max_abs(v: &[f32]) -> f64 {
    v.iter().fold(0f64, |m, &x| m.max((x as f64).abs()))
}

fn lockstep(k: usize, config: SpnnConfig, steps: usize) {
    // The step-by-step comparison with plaintext needs the exact Z: no noise on it.
    let config = config.with_z_noise(0.0);
    let Lockstep {
        data,
        device,
        sim,
        session,
        mut model,
        mut optim,
    } = Lockstep::start(k, config);
    let (d, h, lr) = (data.d(), HIDDEN[0], 0.1);
    let u = 2f64.powi(-(config.frac_bits as i32));
    // A truncation errs by at most one unit; SPNN-HE's rounding of each of the k integer
    // shares by half a unit each, so k/2 units in all (module `spnn_crypto::integer`).
    let unit = if config.protocol == Protocol::Paillier {
        (k as f64 / 2.0).max(1.0) * u
    } else {
        u
    };
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
                    + unit / c
                    + g.abs() * 2f64.powi(-16)
                    + unit;
                let bound = lr * (err_g + g.abs() * 2f64.powi(-16)) + unit;
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
    // Three holders: every ordered pair's cross terms, under the key of its share's owner.
    lockstep(3, config, 2);
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

/// Burn's whole SGD on shares — weight decay, momentum with dampening, Nesterov — follows
/// Burn's formulas (`burn-optim`'s `Sgd`, `Momentum`, `WeightDecay`) applied in f64 to the same
/// boundary gradients, within a bound derived from the encodings and the truncations:
///
/// - the gradient `g` as in the module docs (`err_g`);
/// - each product by a public constant `c` (decay, momentum, `1 − τ`, the Nesterov term, `η`)
///   adds at most `|c·value|·2^{−16} + u` (a 16-bit multiplier, one truncation) besides `c`
///   times its input's error;
/// - `λ·W` multiplies the private `W`, whose distance `δ` from the reference is the bound
///   carried from the previous step.
///
/// Negative control: the same bound does not hold for plain SGD (the test can fail).
fn sgd_lockstep(config: SpnnConfig, steps: usize) {
    let config = config.with_z_noise(0.0);
    let Lockstep {
        data,
        device,
        sim,
        session,
        mut model,
        mut optim,
    } = Lockstep::start(2, config);
    let (d, h, lr) = (data.d(), HIDDEN[0], 0.1);
    let (mu, tau, lambda) = (config.momentum, config.dampening, config.weight_decay);
    let u = 2f64.powi(-(config.frac_bits as i32));
    let rel = 2f64.powi(-16);
    let mut w_ref: Vec<f64> = session
        .reveal_weights_insecure_for_tests()
        .unwrap()
        .iter()
        .map(|&v| f64::from(v))
        .collect();
    let mut w_plain_sgd = w_ref.clone();
    let mut v_ref: Option<Vec<f64>> = None;
    // Bounds carried across steps: |W − W_ref|, |v − v_ref|.
    let (mut delta, mut eps_v) = (0f64, 0f64);
    let (mut worst, mut plain_sgd_excess) = (0f64, 0f64);
    let mut clip_counts = [0usize; 2];
    for ids in data.epoch(0, 64).iter().take(steps) {
        let b = ids.len();
        model = spnn_step(model, &mut optim, ids, &data.labels(ids), lr, &device).0;
        let view = session.view();
        let x = data.plain_features(ids);
        let (x_max, g_max) = (max_abs(&x), max_abs(&view.g));
        let c = b as f64;
        let mut g = vec![0f64; d * h];
        for t in 0..d {
            for j in 0..h {
                g[t * h + j] = (0..b)
                    .map(|i| f64::from(x[i * d + t]) * f64::from(view.g[i * h + j]))
                    .sum();
            }
        }
        let g_abs = g.iter().fold(0f64, |m, v| m.max(v.abs()));
        let mut err_g = c * (x_max * u / (2.0 * c) + g_max * u / 2.0 + u * u / (4.0 * c))
            + u / c
            + g_abs * rel
            + u;
        let g_unclipped = g.clone();
        if config.grad_clip_value > 0.0 {
            (g, err_g) = clipped(&g, err_g, config.grad_clip_value, u, &mut clip_counts);
        } else if config.grad_clip_norm > 0.0 {
            (g, err_g) = norm_clipped(&g, err_g, &config, u, &mut clip_counts);
        }
        // Burn's SGD in f64: g ← g + λW; v ← g (first) or μv + (1 − τ)g; s ← g + μv or v.
        let w_abs = w_ref.iter().fold(0f64, |m, v| m.max(v.abs()));
        let g: Vec<f64> = g.iter().zip(&w_ref).map(|(g, w)| g + lambda * w).collect();
        let mut err = err_g;
        if lambda > 0.0 {
            err += lambda * (delta + w_abs * rel) + u;
        }
        let g_abs = g.iter().fold(0f64, |m, v| m.max(v.abs()));
        let s: Vec<f64> = if mu > 0.0 {
            let v: Vec<f64> = match &v_ref {
                None => {
                    eps_v = err;
                    g.clone()
                }
                Some(v) => {
                    let v_abs = v.iter().fold(0f64, |m, x| m.max(x.abs()));
                    eps_v = mu * eps_v
                        + mu * v_abs * rel
                        + u
                        + (1.0 - tau) * err
                        + (1.0 - tau) * g_abs * rel
                        + u;
                    v.iter()
                        .zip(&g)
                        .map(|(v, g)| mu * v + (1.0 - tau) * g)
                        .collect()
                }
            };
            let v_abs = v.iter().fold(0f64, |m, x| m.max(x.abs()));
            let s = if config.nesterov {
                err += mu * eps_v + mu * v_abs * rel + u;
                v.iter().zip(&g).map(|(v, g)| g + mu * v).collect()
            } else {
                err = eps_v;
                v.clone()
            };
            v_ref = Some(v);
            s
        } else {
            g.clone()
        };
        let s_abs = s.iter().fold(0f64, |m, x| m.max(x.abs()));
        delta += lr * (err + s_abs * rel) + u;
        for (w, s) in w_ref.iter_mut().zip(&s) {
            *w -= lr * s;
        }
        let w_spnn = session.reveal_weights_insecure_for_tests().unwrap();
        for (i, w) in w_spnn.iter().enumerate() {
            let e = (f64::from(*w) - w_ref[i]).abs();
            assert!(e <= delta, "W[{i}]: |{w} − {}| = {e} > {delta}", w_ref[i]);
            worst = worst.max(e / delta);
        }
        // Plain SGD from the same start on the same gradients (unclipped), for the negative
        // control.
        for (i, w) in w_plain_sgd.iter_mut().enumerate() {
            *w -= lr * g_unclipped[i];
            plain_sgd_excess = plain_sgd_excess.max((f64::from(w_spnn[i]) - *w).abs() / delta);
        }
    }
    println!(
        "{config:?}: worst |W − W_Burn| / bound {worst:.3}; plain SGD is off by {plain_sgd_excess:.1}× the bound; clipped {} of {} {}",
        clip_counts[0],
        clip_counts[1],
        clipped_what(&config)
    );
    assert!(worst > 0.0, "the comparison must be sensitive");
    check_clip_counts(&config, clip_counts);
    assert!(
        plain_sgd_excess > 1.0,
        "plain SGD would pass too: the test could not tell the optimisers apart"
    );
    drop(model);
    sim.finish().unwrap();
}

#[test]
fn burns_whole_sgd_runs_on_shares_step_by_step() {
    let nesterov = SpnnConfig {
        dampening: 0.1,
        nesterov: true,
        ..SpnnConfig::default().with_momentum(0.9)
    };
    sgd_lockstep(nesterov, 6);
    // Weight decay (plain SGD: with momentum it is refused), large enough to matter here.
    sgd_lockstep(
        SpnnConfig {
            weight_decay: 0.01,
            ..SpnnConfig::default()
        },
        6,
    );
    // Burn's clipping by value before Nesterov momentum: two comparisons per entry on the
    // shares; the plain-SGD control is unclipped.
    sgd_lockstep(
        SpnnConfig {
            grad_clip_value: 0.003,
            ..nesterov
        },
        4,
    );
    sgd_lockstep(
        SpnnConfig {
            grad_clip_value: 0.003,
            ..SpnnConfig::default()
        },
        4,
    );
    // Burn's clipping by norm, plain SGD (the control is unclipped SGD) and Nesterov.
    sgd_lockstep(
        SpnnConfig {
            grad_clip_norm: 0.05,
            ..SpnnConfig::default()
        },
        4,
    );
    sgd_lockstep(
        SpnnConfig {
            grad_clip_norm: 0.05,
            ..nesterov
        },
        4,
    );
    // Dampening without Nesterov, no decay.
    sgd_lockstep(
        SpnnConfig {
            dampening: 0.5,
            ..SpnnConfig::default().with_momentum(0.8)
        },
        4,
    );
}

#[test]
fn spnn_he_runs_burns_momentum_on_shares_step_by_step() {
    // SPNN-HE's update rounds integer shares instead of truncating ring shares: within the
    // same bound. Weight decay is refused there (it needs a dealer).
    let sgd = SpnnConfig {
        dampening: 0.1,
        nesterov: true,
        ..SpnnConfig::default()
            .with_momentum(0.9)
            .with_protocol(Protocol::Paillier)
            .with_he_key_bits(1024)
    };
    sgd_lockstep(sgd, 3);
}

/// Burn's clipping by value in f64 (`clamp(g, −τ, τ)`), and the error bound after it: the
/// holders clamp at `τ` rounded to `2^{−f}` (half a unit off at most), and the clamp is
/// 1-Lipschitz, so the gradient's error grows by `u/2`. Counts the entries clipped and seen.
fn clipped(g: &[f64], err_g: f64, tau: f64, u: f64, counts: &mut [usize; 2]) -> (Vec<f64>, f64) {
    counts[0] += g.iter().filter(|v| v.abs() > tau).count();
    counts[1] += g.len();
    (
        g.iter().map(|v| v.clamp(-tau, tau)).collect(),
        err_g + u / 2.0,
    )
}

/// Burn's clipping by norm in f64 (`g·min(1, τ/‖g‖)`), and the error bound after it. The
/// holders' `g̃` is within `e` of `g` per entry, so `‖g̃ − g‖ ≤ √n·e`, and `min(1, τ/x)` moves
/// by at most `τ/max(τ, x_min)²` per unit of `x` (`x_min = ‖g‖ − √n·e`). Computing the factor
/// adds the square root's rounding (each truncation a unit, which moves `y ≈ 2^k/‖g̃‖` by at
/// most `8·u·(1 + y)`) times `τ·2^{−k}`, the 16-bit multiplier's relative `2^{−16}`, the
/// relative `u²·2^{2k}/‖g‖²` of `‖g‖²/2^{2k}`'s rounding and a unit; the last product one
/// more unit. Counts the updates clipped and seen.
fn norm_clipped(
    g: &[f64],
    err_g: f64,
    config: &SpnnConfig,
    u: f64,
    counts: &mut [usize; 2],
) -> (Vec<f64>, f64) {
    let plan = spnn_burn::protocol::clip::NormPlan::new(config).unwrap();
    let tau = config.grad_clip_norm;
    let norm = g.iter().map(|v| v * v).sum::<f64>().sqrt();
    let e_norm = (g.len() as f64).sqrt() * err_g;
    let factor = (tau / norm).min(1.0);
    let y = 2f64.powi(plan.k as i32) / (norm - e_norm).max(tau);
    let lipschitz = tau * e_norm / (norm - e_norm).max(tau).powi(2);
    let coarse = factor * u * u * 2f64.powi(2 * plan.k as i32) / (norm - e_norm).max(tau).powi(2);
    let computed = plan.factor() * 8.0 * u * (1.0 + y) + factor * 2f64.powi(-16) + 2.0 * u + coarse;
    let delta = lipschitz + computed;
    let g_abs = g.iter().fold(0f64, |m, v| m.max(v.abs()));
    counts[0] += usize::from(norm > tau);
    counts[1] += 1;
    (
        g.iter().map(|v| v * factor).collect(),
        err_g * (factor + delta) + g_abs * delta + u,
    )
}

/// What the clip counts count: updates by norm, entries by value.
fn clipped_what(config: &SpnnConfig) -> &'static str {
    if config.grad_clip_norm > 0.0 {
        "updates"
    } else {
        "entries"
    }
}

/// A clipped run must have clipped some entries and left others, or it tested nothing (by
/// norm: clipped some updates).
fn check_clip_counts(config: &SpnnConfig, [clipped, seen]: [usize; 2]) {
    if config.grad_clip_norm > 0.0 {
        assert!(
            clipped > 0,
            "τ = {} clipped none of {seen} updates",
            config.grad_clip_norm
        );
    }
    if config.grad_clip_value > 0.0 {
        assert!(
            clipped > seen / 20 && clipped < seen - seen / 20,
            "τ = {} clipped {clipped} of {seen} entries: choose one that bites partly",
            config.grad_clip_value
        );
    }
}

fn max_of(v: &[f64]) -> f64 {
    v.iter().fold(0f64, |m, x| m.max(x.abs()))
}

/// Burn's Adam on shares (module `spnn_burn::protocol::adam`) follows Burn's formulas
/// (`burn-optim`'s `AdaptiveMomentum`, AdamW's decoupled decay) applied in f64 to the same
/// boundary gradients, with the protocol's `ε' = max(ε_t, 2^{−f})`: each step's increment
/// `W_t − W_{t+1}` (both revealed) against `η·λ·W_t + η·κ_t·m/(√v + ε')`, element by element,
/// within a bound derived from the inputs' errors:
///
/// - the gradient's error `e_g` as for SGD; `m`'s carried as `e_m ← β₁·e_m + (1 − β₁)·e_g` plus,
///   per product by a public constant, `|value|·2^{−16} + u`; `v`'s (at `2^{−2f}` units `u²`)
///   as `e_v ← β₂·e_v + (1 − β₂)·(2|g|·e_g + e_g²)` plus the same;
/// - `q = 1/(√v + ε')` lies in `[1/(√(v + e_v) + ε'), 1/(√(v − e_v) + ε')]` for the computed `v`;
///   the two Newton iterations end in rounding only (five steps of quadratic convergence to
///   spare): each truncation errs by a unit, which moves `q` by at most `8·u·(1 + q)`;
/// - the increment: `η·κ·(e_m·q_hi + |m|·(q_hi − q_lo) + |m|·8u(1 + q_hi)) + 5u` (the last
///   product's truncation and up to two pieces each of the step factor and the decay) plus the
///   16-bit multipliers' relative error, twice for `κ_t` (computed from the betas rounded to
///   `2^{−24}`).
///
/// Negative controls: Adam without the bias corrections, and plain SGD, exceed the bound.
fn adam_lockstep(k: usize, config: SpnnConfig, steps: usize) {
    let config = config.with_z_noise(0.0);
    let adam = config.adam.expect("an Adam configuration");
    let Lockstep {
        data,
        device,
        sim,
        session,
        mut model,
        mut optim,
    } = Lockstep::start(k, config);
    let (d, h, lr) = (data.d(), HIDDEN[0], 0.01);
    let (b1, b2, lambda) = (adam.beta_1, adam.beta_2, config.weight_decay);
    let u = 2f64.powi(-(config.frac_bits as i32));
    let rel = 2f64.powi(-16);
    let eps_floor = u;
    let (mut m, mut v) = (vec![0f64; d * h], vec![0f64; d * h]);
    let (mut e_m, mut e_v) = (0f64, 0f64);
    let (mut worst, mut unbiased_excess, mut sgd_excess) = (0f64, 0f64, 0f64);
    let mut clip_counts = [0usize; 2];
    let mut w_before: Vec<f64> = session
        .reveal_weights_insecure_for_tests()
        .unwrap()
        .iter()
        .map(|&w| f64::from(w))
        .collect();
    for (step, ids) in data.epoch(0, 64).iter().take(steps).enumerate() {
        let t = step as i32 + 1;
        let b = ids.len();
        model = spnn_step(model, &mut optim, ids, &data.labels(ids), lr, &device).0;
        let view = session.view();
        let x = data.plain_features(ids);
        let (x_max, g_max, c) = (max_abs(&x), max_abs(&view.g), b as f64);
        let mut g = vec![0f64; d * h];
        for r in 0..d {
            for j in 0..h {
                g[r * h + j] = (0..b)
                    .map(|i| f64::from(x[i * d + r]) * f64::from(view.g[i * h + j]))
                    .sum();
            }
        }
        let mut e_g = c * (x_max * u / (2.0 * c) + g_max * u / 2.0 + u * u / (4.0 * c))
            + u / c
            + max_of(&g) * rel
            + u;
        let g_unclipped = g.clone();
        if config.grad_clip_value > 0.0 {
            (g, e_g) = clipped(&g, e_g, config.grad_clip_value, u, &mut clip_counts);
        } else if config.grad_clip_norm > 0.0 {
            (g, e_g) = norm_clipped(&g, e_g, &config, u, &mut clip_counts);
        }
        let g_abs = max_of(&g);
        let (m_abs, v_abs) = (max_of(&m), max_of(&v));
        // Each factor is at most three 8-bit pieces at 2^-24, each piece one truncation.
        e_m = b1 * e_m + (1.0 - b1) * e_g + b1 * m_abs * rel + (1.0 - b1) * g_abs * rel + 6.0 * u;
        e_v = b2 * e_v
            + (1.0 - b2) * (2.0 * g_abs * e_g + e_g * e_g)
            + b2 * v_abs * rel
            + (1.0 - b2) * g_abs * g_abs * rel
            + 6.0 * u * u;
        for i in 0..d * h {
            m[i] = b1 * m[i] + (1.0 - b1) * g[i];
            v[i] = b2 * v[i] + (1.0 - b2) * g[i] * g[i];
        }
        let bias2 = (1.0 - b2.powi(t)).sqrt();
        let kappa = bias2 / (1.0 - b1.powi(t));
        let eps = (adam.epsilon * bias2).max(eps_floor);
        let w_after: Vec<f64> = session
            .reveal_weights_insecure_for_tests()
            .unwrap()
            .iter()
            .map(|&w| f64::from(w))
            .collect();
        for i in 0..d * h {
            let q = 1.0 / (v[i].sqrt() + eps);
            let q_hi = 1.0 / ((v[i] - e_v).max(0.0).sqrt() + eps);
            let q_lo = 1.0 / ((v[i] + e_v).sqrt() + eps);
            let decay = lr * lambda * w_before[i];
            let expected = decay + lr * kappa * m[i] * q;
            let bound = lr
                * kappa
                * (e_m * q_hi + m[i].abs() * (q_hi - q_lo) + m[i].abs() * 8.0 * u * (1.0 + q_hi))
                * (1.0 + rel)
                + lr * kappa * m[i].abs() * q * 2.0 * rel
                + decay.abs() * rel
                + 5.0 * u;
            let got = w_before[i] - w_after[i];
            let err = (got - expected).abs();
            assert!(
                err <= bound,
                "step {t}, W[{i}]: increment {got} vs Burn's {expected}: {err} > {bound}"
            );
            worst = worst.max(err / bound);
            let unbiased = decay + lr * m[i] / (v[i].sqrt() + adam.epsilon);
            unbiased_excess = unbiased_excess.max((got - unbiased).abs() / bound);
            sgd_excess = sgd_excess.max((got - lr * g_unclipped[i]).abs() / bound);
        }
        w_before = w_after;
    }
    println!(
        "{config:?}: worst |ΔW − ΔW_Burn| / bound {worst:.3}; without bias correction {unbiased_excess:.1}×, plain SGD {sgd_excess:.1}× the bound; clipped {} of {} {}",
        clip_counts[0],
        clip_counts[1],
        clipped_what(&config)
    );
    assert!(worst > 0.0, "the comparison must be sensitive");
    check_clip_counts(&config, clip_counts);
    assert!(
        unbiased_excess > 1.0 && sgd_excess > 1.0,
        "the test could not tell optimisers apart"
    );
    drop(model);
    sim.finish().unwrap();
}

#[test]
fn burns_adam_runs_on_shares_step_by_step() {
    let adam = spnn_burn::AdamParams::default();
    adam_lockstep(
        2,
        SpnnConfig {
            adam: Some(adam),
            ..SpnnConfig::default()
        },
        5,
    );
    // Three holders, 17 fractional bits (narrower clips: at 17 bits the square root covers
    // v ≤ 4^9, below the default clips' bound).
    adam_lockstep(
        3,
        SpnnConfig {
            adam: Some(adam),
            ..SpnnConfig::default()
                .with_frac_bits(17)
                .with_clips(16.0, 4.0)
        },
        4,
    );
    // Adam after Burn's clipping by value, then by norm.
    adam_lockstep(
        2,
        SpnnConfig {
            adam: Some(adam),
            grad_clip_value: 0.003,
            ..SpnnConfig::default()
        },
        4,
    );
    adam_lockstep(
        2,
        SpnnConfig {
            adam: Some(adam),
            grad_clip_norm: 0.05,
            ..SpnnConfig::default()
        },
        4,
    );
    // AdamW: decoupled decay, large enough to matter here; a large ε (Burn's ε_t, no floor).
    adam_lockstep(
        2,
        SpnnConfig {
            adam: Some(spnn_burn::AdamParams {
                epsilon: 1e-3,
                ..adam
            }),
            weight_decay: 0.01,
            ..SpnnConfig::default()
        },
        4,
    );
}
