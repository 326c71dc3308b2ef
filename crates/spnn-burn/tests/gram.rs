//! What SPNN reveals by design, attacked: the server's `Z`s, `G`s and learning rates over a run
//! give the Gram matrix of the training rows, hence the features up to a rotation
//! (`spnn_burn::attack::features`). The attack is run on a real SPNN-SS session's server view;
//! it recovers `X` without noise (a test of the attack), and each defence at its documented
//! level — noise on `Z`, or Langevin noise on the weight updates, both added as shares by the
//! holders — brings it down to the level of a reconstruction unrelated to the data. A server
//! that holds a few raw rows needs no Gram matrix: its learned inversion recovers the others'
//! features, and the default noise does not stop it (what the guide says).

mod common;

use std::time::Duration;

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::optim::GradientsParams;
use burn::tensor::Tensor;
use burn::tensor::activation::relu;
use common::{bce, device, seeded_linear, test_policy};
use rand::SeedableRng;
use spnn_burn::attack::features::{
    Auxiliary, Record, Step, aligned_r2, chance_r2, embed, feature_r2, gram,
    gram_block_after_one_update, inversion,
};
use spnn_burn::simulation::{self, HolderSpec, Simulation};
use spnn_burn::{
    PartyPolicy, PrivateLinear, PrivateLinearConfig, Randomness, SessionSpec, SpnnConfig,
};
use spnn_data::Table;
use spnn_data::packaged::Partitioned;
use spnn_net::NetworkConfig;

const N: usize = 64;
const D: usize = 6;
const H: usize = 16;
const BATCH: usize = 16;
const EPOCHS: u64 = 8;
const LR: f64 = 0.2;

#[derive(Module, Debug)]
struct Model {
    first: PrivateLinear,
    out: Linear,
}

impl Model {
    fn forward(&self, ids: &[u64]) -> Tensor<2> {
        self.out.forward(relu(self.first.forward(ids)))
    }
}

/// `N × D` standard-normal features split between two holders, labels from a linear rule.
fn data() -> Partitioned {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let mut normal = || spnn_crypto::rng::standard_normal(&mut rng) as f32;
    let x: Vec<f32> = (0..N * D).map(|_| normal()).collect();
    let labels = (0..N)
        .map(|r| f32::from(u8::from(x[r * D] - x[r * D + 4] + 0.5 * normal() > 0.0)))
        .collect();
    let names = (0..D).map(|c| format!("x{c}")).collect();
    let table = Table::new((0..N as u64).collect(), names, x, Some(labels)).unwrap();
    Partitioned::even(&table, 2, 0.25, 3).unwrap()
}

/// A session on `data` whose holders keep `policy` (a silent party is an error after
/// `timeout`), and the server's model on it.
fn start(
    data: &Partitioned,
    config: SpnnConfig,
    policy: PartyPolicy,
    timeout: Duration,
) -> (Simulation, Model) {
    let holders = data
        .holders
        .iter()
        .map(|t| HolderSpec::new(t.clone()).with_policy(policy.clone()))
        .collect();
    let sim = simulation::start(
        holders,
        SessionSpec::new(H).with_config(config),
        NetworkConfig::new(1).with_timeout(timeout),
    )
    .unwrap();
    let device = device();
    let mut first = PrivateLinearConfig::new().init(sim.session(), &device);
    // Burn initialises the bias from a global generator that parallel tests share: a zero bias
    // keeps the runs (and the attacks' scores) reproducible.
    first.bias = Some(Param::from_tensor(Tensor::zeros([H], &device)));
    let m = Model {
        first,
        out: seeded_linear(H, 1, 4, &device),
    };
    (sim, m)
}

/// Trains with `config` and returns the server's record and the training rows the holders used.
fn run(data: &Partitioned, config: SpnnConfig) -> (Record, Vec<f64>) {
    let config = config.with_randomness(Randomness::InsecureSeededForTests(9));
    let (sim, mut m) = start(data, config, test_policy(config), Duration::from_secs(30));
    let device = device();
    let mut optim = sim.session().optimizer();
    let mut record = Record {
        h: H,
        steps: Vec::new(),
    };
    for epoch in 0..EPOCHS {
        for ids in data.batches(epoch, BATCH) {
            let y = data.labels_of(&ids).unwrap();
            let loss = bce(m.forward(&ids), &y, &device);
            let grads = GradientsParams::from_grads(loss.backward(), &m);
            let view = sim.session().view();
            record.steps.push(Step {
                ids: ids.clone(),
                z: view.z,
                g: view.g,
                lr: LR,
            });
            m = optim.step(LR, m, grads);
        }
    }
    drop(m);
    sim.finish().unwrap();
    let x = Table::join_columns(&data.holders)
        .unwrap()
        .gather(&data.train)
        .unwrap();
    (record, x.into_iter().map(f64::from).collect())
}

/// The attack's R² (aligned up to rotation) on the training rows.
fn attack(data: &Partitioned, record: &Record, x: &[f64]) -> f64 {
    let n = data.train.len();
    let k = gram(record, &data.train, 1e-9).expect("every sample seen twice");
    aligned_r2(&embed(&k, n, D), x, n, D)
}

/// Unrelated reconstructions scored the same way: the mean plus three standard deviations of
/// 200 random guesses' R² (the fitted rotation and scale alone explain some of the variance).
fn baseline(n: usize, x: &[f64]) -> f64 {
    let (mean, sd) = chance_r2(x, n, D, 200, 5);
    mean + 3.0 * sd
}

#[test]
fn the_servers_view_of_a_run_gives_the_features_up_to_rotation() {
    let data = data();
    let (record, x) = run(&data, SpnnConfig::default().with_z_noise(0.0));
    let r2 = attack(&data, &record, &x);
    let base = baseline(data.train.len(), &x);
    println!("no defence: R² {r2:.4} (baseline {base:.4})");
    assert!(
        r2 > 0.99,
        "the Gram attack recovers X up to rotation: R² {r2}"
    );
}

#[test]
fn noise_on_z_as_shares_brings_the_attack_to_its_baseline() {
    let data = data();
    let (record, x) = run(&data, SpnnConfig::default().with_z_noise(Z_NOISE));
    let r2 = attack(&data, &record, &x);
    let base = baseline(data.train.len(), &x);
    println!("z_noise {Z_NOISE}: R² {r2:.4} (baseline {base:.4})");
    assert!(r2 <= base, "R² {r2} against the baseline {base}");
}

/// The level at which this data's attack is below its baseline. The signal the attack reads
/// grows with the learning rate (0.2 here, 0.1 in the breast-cancer sweep): at the default 0.1
/// this set sits on its baseline (R² 0.07–0.16 against 0.14 over five initialisations of the
/// bias, measured by hand), at 0.2 too (0.17 with the zero bias used here), at 0.3 below it
/// (0.11). The guide says so.
const Z_NOISE: f32 = 0.3;

/// Langevin noise on the updates (SGLD, as shares) is not a defence against this attack: the
/// noise `N` added to `W` reaches the server as `X·N`, a random projection of the features that
/// keeps their inner products, so the attack stays above its baseline at every level, even one
/// that wrecks the model, and beside noise on `Z` it undoes some of that noise's protection.
/// (The guide states both.)
#[test]
fn langevin_noise_leaves_the_attack_above_its_baseline() {
    let data = data();
    let base = baseline(data.train.len(), &run(&data, SpnnConfig::default()).1);
    for (z_noise, sgld) in [(0.0, 0.01), (0.0, 0.1), (0.0, 1.0), (Z_NOISE, 0.1)] {
        let config = SpnnConfig::default().with_z_noise(z_noise).with_sgld(sgld);
        let (record, x) = run(&data, config);
        let r2 = attack(&data, &record, &x);
        println!("z_noise {z_noise}, sgld {sgld}: R² {r2:.4} (baseline {base:.4})");
        assert!(
            r2 > base,
            "z_noise {z_noise}, sgld {sgld}: R² {r2} against {base}"
        );
    }
}

/// The learned inversion of a server holding `AUX` raw training rows: mean per-feature R² on
/// the other training rows, and the same for guessing the auxiliary rows' mean.
fn inversion_r2(data: &Partitioned, record: &Record, x: &[f64]) -> (f64, f64) {
    let (aux_ids, targets) = data.train.split_at(AUX);
    let aux = Auxiliary {
        ids: aux_ids.to_vec(),
        rows: x[..AUX * D].to_vec(),
        d: D,
    };
    let truth = &x[AUX * D..];
    let n = targets.len();
    let mean = |r2: Vec<f64>| r2.iter().sum::<f64>() / D as f64;
    let attack = mean(feature_r2(
        &inversion(record, &aux, targets, 1e-3),
        truth,
        n,
        D,
    ));
    let guess = mean(feature_r2(&aux.mean().repeat(n), truth, n, D));
    (attack, guess)
}

/// Raw rows the inverting server holds: 8 of 48 (a server needs about `d` of them).
const AUX: usize = 8;

/// A server that holds a few raw rows needs no Gram matrix: `Z = X·W + N` is linear in `x`, and
/// a regression fitted on its own rows inverts everyone's. Noise that stops the Gram attack
/// does not stop this one (the guide says so).
#[test]
fn a_server_with_a_few_raw_rows_inverts_z_and_the_noise_that_stops_the_gram_attack_does_not() {
    let data = data();
    let (record, x) = run(&data, SpnnConfig::default().with_z_noise(0.0));
    let (r2, guess) = inversion_r2(&data, &record, &x);
    println!("no defence: inversion R² {r2:.4} (auxiliary mean {guess:.4})");
    assert!(r2 > 0.95, "the inversion recovers X: R² {r2}");
    assert!(
        guess < 0.05,
        "a guess of the mean explains nothing: {guess}"
    );
    let (record, x) = run(&data, SpnnConfig::default().with_z_noise(Z_NOISE));
    let (r2, guess) = inversion_r2(&data, &record, &x);
    println!("z_noise {Z_NOISE}: inversion R² {r2:.4} (auxiliary mean {guess:.4})");
    assert!(r2 > guess + 0.3, "R² {r2} against the guess's {guess}");
}

/// The noise is on every forward, evaluation included (or the server would ask for clean `Z`s
/// between steps), with the configured spread (the policy test in `protocol/policy.rs` checks
/// that a holder refuses a session without it unless its own policy allows that).
#[test]
fn every_forward_carries_the_noise() {
    let data = data();
    let start = |config: SpnnConfig, policy: spnn_burn::PartyPolicy| {
        let holders = data
            .holders
            .iter()
            .map(|t| HolderSpec::new(t.clone()).with_policy(policy.clone()))
            .collect();
        simulation::start(
            holders,
            SessionSpec::new(H).with_config(config),
            NetworkConfig::new(1).with_timeout(Duration::from_secs(30)),
        )
    };
    let ids = &data.train[..BATCH];
    let sim = start(SpnnConfig::default(), spnn_burn::PartyPolicy::default()).unwrap();
    let session = sim.session().clone();
    let (a, b) = (
        session.forward(ids, false).unwrap(),
        session.forward(ids, false).unwrap(),
    );
    sim.finish().unwrap();
    let diff: Vec<f64> = a.iter().zip(&b).map(|(x, y)| f64::from(x - y)).collect();
    let sd = (diff.iter().map(|d| d * d).sum::<f64>() / diff.len() as f64).sqrt();
    // Two independent draws of N(0, 0.1²) differ with sd 0.1·√2 ≈ 0.141 (256 values).
    assert!((sd - 0.1414).abs() < 0.03, "sd of the difference {sd}");
    // With the holders' consent, no noise: the same bits twice.
    let sim = start(
        SpnnConfig::default().with_z_noise(0.0),
        spnn_burn::PartyPolicy::default().allowing_z_noise(0.0),
    )
    .unwrap();
    let session = sim.session().clone();
    assert_eq!(
        session.forward(ids, false).unwrap(),
        session.forward(ids, false).unwrap()
    );
    sim.finish().unwrap();
}

/// Averaging needs many forwards of the same samples; a holder with a forward budget per
/// sample serves that many and then refuses the session, whatever the server's schedule.
#[test]
fn a_holder_serves_each_sample_at_most_its_forward_budget() {
    let data = common::Data::new(2);
    let config = SpnnConfig::default();
    let holders = data
        .holders
        .iter()
        .map(|t| HolderSpec {
            policy: test_policy(config).with_max_forwards_per_sample(2),
            ..HolderSpec::new(t.clone())
        })
        .collect();
    let sim = simulation::start(
        holders,
        SessionSpec::new(common::HIDDEN[0]).with_config(config),
        // A refusing holder leaves the simulated server waiting out its receive timeout.
        NetworkConfig::new(1).with_timeout(Duration::from_secs(2)),
    )
    .unwrap();
    let layer = common::spnn_model(&sim, &device()).first.valid();
    // Two evaluation forwards of 0..3 and one of 3..5 are within the budget.
    layer.try_forward(&[0, 1, 2]).unwrap();
    layer.try_forward(&[0, 1, 2]).unwrap();
    layer.try_forward(&[3, 4]).unwrap();
    // A third forward of sample 1, even beside a fresh sample, is refused.
    assert!(layer.try_forward(&[7, 1]).is_err());
    let err = sim.finish().unwrap_err().to_string();
    assert!(
        err.contains("sample 1") && err.contains("budget of 2"),
        "{err}"
    );
}

/// A server that ends a session and starts another draws fresh noise for the same samples; a
/// holder with a ledger counts forwards over every session that shares it and refuses once a
/// sample has had its budget, whatever the session; a ledger that does not verify is an
/// error, never a fresh budget.
#[test]
fn a_holder_with_a_ledger_keeps_its_forward_budget_across_sessions() {
    let data = common::Data::new(2);
    let config = SpnnConfig::default();
    let dir = tempfile::tempdir().unwrap();
    let start = || {
        let holders = data
            .holders
            .iter()
            .enumerate()
            .map(|(i, t)| HolderSpec {
                policy: test_policy(config).with_max_forwards_per_sample_overall(3),
                forward_ledger: Some(dir.path().join(format!("holder-{i}.ledger"))),
                ..HolderSpec::new(t.clone())
            })
            .collect();
        simulation::start(
            holders,
            SessionSpec::new(common::HIDDEN[0]).with_config(config),
            NetworkConfig::new(1).with_timeout(Duration::from_secs(2)),
        )
    };
    let session = || start().unwrap();
    // What stopped a session that a holder refused at its start.
    let refusal = |started: spnn_burn::Result<simulation::Simulation>| match started {
        Ok(sim) => sim.finish().unwrap_err().to_string(),
        Err(e) => e.to_string(),
    };
    // Session 1: two forwards of samples 0..3 (the budget is 3 overall).
    let sim = session();
    let layer = common::spnn_model(&sim, &device()).first.valid();
    layer.try_forward(&[0, 1, 2]).unwrap();
    layer.try_forward(&[0, 1, 2]).unwrap();
    drop(layer);
    sim.finish().unwrap();
    // Session 2: one more of sample 1 is within it; a fourth is refused.
    let sim = session();
    let layer = common::spnn_model(&sim, &device()).first.valid();
    layer.try_forward(&[1, 5]).unwrap();
    // While it runs, the file charges every sample what the session could spend (no
    // per-session budget here: all that is left), so a holder killed now loses nothing of
    // its count...
    let on_disk = |i: usize| -> std::collections::HashMap<u64, u32> {
        let bytes =
            spnn_burn::checkpoint::read_sealed(&dir.path().join(format!("holder-{i}.ledger")))
                .unwrap();
        spnn_net::codec::decode_exact::<Vec<(u64, u32)>>(&bytes)
            .unwrap()
            .into_iter()
            .collect()
    };
    assert_eq!((on_disk(0)[&0], on_disk(0)[&7]), (3, 3));
    // ...and a second session on the same ledger cannot start.
    let err = refusal(start());
    assert!(err.contains("another session"), "{err}");
    assert!(layer.try_forward(&[1]).is_err());
    drop(layer);
    let err = sim.finish().unwrap_err().to_string();
    assert!(
        err.contains("sample 1") && err.contains("budget of 3 over every session"),
        "{err}"
    );
    // The refused session's forwards were recorded too (and the reservation returned):
    // sample 5 has one left, sample 7 all three.
    assert_eq!((on_disk(0)[&5], on_disk(0).get(&7)), (1, None));
    let sim = session();
    let layer = common::spnn_model(&sim, &device()).first.valid();
    layer.try_forward(&[5, 5]).unwrap();
    assert!(layer.try_forward(&[5]).is_err());
    drop(layer);
    assert!(sim.finish().is_err());
    // A tampered ledger is refused at start.
    let ledger = dir.path().join("holder-0.ledger");
    let mut bytes = std::fs::read(&ledger).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&ledger, bytes).unwrap();
    let err = refusal(start());
    assert!(err.contains("holder-0.ledger"), "{err}");
}

/// The Langevin noise is applied as configured: an update with no gradient moves the (revealed,
/// test-only) weights by `N(0, 2·lr·sgld²)` per entry in total over the `k` holders' parts, for
/// two and three holders; without `sgld` the same update leaves them bit for bit.
#[test]
fn langevin_noise_moves_the_weights_by_its_configured_spread() {
    for k in [2, 3] {
        let data = common::Data::new(k);
        let (lr, sgld): (f64, f32) = (0.02, 0.5);
        for (level, want_sd) in [(sgld, sgld as f64 * (2.0 * lr).sqrt()), (0.0, 0.0)] {
            let sim = common::start(&data, SpnnConfig::default().with_sgld(level), true);
            let session = sim.session().clone();
            let before = session.reveal_weights_insecure_for_tests().unwrap();
            session.update(lr).unwrap();
            let after = session.reveal_weights_insecure_for_tests().unwrap();
            sim.finish().unwrap();
            let diff: Vec<f64> = after
                .iter()
                .zip(&before)
                .map(|(a, b)| f64::from(a - b))
                .collect();
            let n = diff.len() as f64;
            let mean = diff.iter().sum::<f64>() / n;
            let sd = (diff.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / n).sqrt();
            println!("k {k}, sgld {level}: mean {mean:.5}, sd {sd:.5} (want {want_sd:.5})");
            if level == 0.0 {
                assert!(
                    diff.iter().all(|&d| d == 0.0),
                    "k {k}: W moved without noise"
                );
            } else {
                // 1920 entries: the sample sd is within 10 % of the truth with overwhelming
                // probability (its relative standard error is 1.6 %).
                assert!(
                    (sd / want_sd - 1.0).abs() < 0.1,
                    "k {k}: sd {sd} against {want_sd}"
                );
                assert!(mean.abs() < 4.0 * want_sd / n.sqrt(), "k {k}: mean {mean}");
            }
        }
    }
}

/// One update at learning rate `lr` on batch `b`, then one evaluation forward on the next batch
/// `b2`: the server's [`gram_block_after_one_update`] on what it saw. Returns the R² of its estimate against
/// the true block, or the session's error if a holder refuses.
fn learning_rate_attack(lr: f64, policy_cap: Option<f64>) -> spnn_burn::Result<f64> {
    let data = data();
    let config = SpnnConfig::default().with_randomness(Randomness::InsecureSeededForTests(9));
    let mut policy = test_policy(config);
    if let Some(cap) = policy_cap {
        policy = policy.with_max_learning_rate(cap);
    }
    // A short timeout: with the cap, the holders stop at the update and the forward waits.
    let (sim, m) = start(&data, config, policy, Duration::from_secs(5));
    let device = device();
    let mut optim = sim.session().optimizer();
    let batches = data.batches(0, BATCH);
    let (b, b2) = (&batches[0], &batches[1]);
    let loss = bce(m.forward(b), &data.labels_of(b).unwrap(), &device);
    let grads = GradientsParams::from_grads(loss.backward(), &m);
    let g = sim.session().view().g;
    let m = optim.step(lr, m, grads);
    let z = match sim.session().forward(b2, false) {
        Ok(z) => z,
        Err(e) => {
            // The holders' own reason, not the server's lost connection.
            drop(m);
            return Err(sim.finish().err().unwrap_or(e));
        }
    };
    drop(m);
    sim.finish().unwrap();
    let n = BATCH;
    let estimate = gram_block_after_one_update(&z, &g, H, lr, 1e-12).expect("the block");
    let x = Table::join_columns(&data.holders).unwrap();
    let (xb, xb2) = (x.gather(b).unwrap(), x.gather(b2).unwrap());
    let truth: Vec<f64> = (0..n)
        .flat_map(|i| (0..n).map(move |j| (i, j)))
        .map(|(i, j)| {
            (0..D)
                .map(|c| f64::from(xb2[i * D + c]) * f64::from(xb[j * D + c]))
                .sum()
        })
        .collect();
    let mean = truth.iter().sum::<f64>() / truth.len() as f64;
    let total: f64 = truth.iter().map(|t| (t - mean).powi(2)).sum();
    let residual: f64 = truth
        .iter()
        .zip(&estimate)
        .map(|(t, e)| (t - e).powi(2))
        .sum();
    Ok(1.0 - residual / total)
}

#[test]
fn one_update_at_a_huge_learning_rate_reveals_a_gram_block_through_the_noise() {
    // The honest rate: the unknown X·W drowns the signal.
    let honest = learning_rate_attack(LR, None).unwrap();
    // A rate the server picks for one update: X·W shrinks beside lr·K·G, and the default noise
    // on Z (0.1) with it.
    let huge = learning_rate_attack(1e4, None).unwrap();
    println!("Gram block R²: honest rate {honest:.4}, rate 10^4 {huge:.4}");
    assert!(honest < 0.5, "the honest rate reveals the block: {honest}");
    assert!(huge > 0.95, "the attack should work at a huge rate: {huge}");
    // A holder that caps the rate at its schedule's refuses the update; nothing is revealed.
    let e = learning_rate_attack(1e4, Some(LR)).unwrap_err().to_string();
    assert!(e.contains("max_learning_rate"), "{e}");
}
