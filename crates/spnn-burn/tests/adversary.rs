//! Attacks on each party's **whole view**: every message it received plus every seed it
//! generated (which, for a dealer, is everything it sent) — assembled from real sessions'
//! transcripts and attacked with exact linear algebra over Z_2^64.
//!
//! Each attack is tested too: on the same view with one protection removed (the holders'
//! zero-sharing masks, or a dealer's seeds given to a holder) it must recover the secret
//! **bit for bit**, so an attack that silently does nothing cannot make a test pass.
//!
//! **The server's attack** (dealing server, issue 13). A dealer knows `U_j`, `V_{j,m}` and the
//! product shares, so from holder `m`'s Z share it can compute
//! `Y_m = z_m − w_m + Σ_o U_o·V_{o,m} = X·M_m`, where column block `M_m` has rows
//! `W_m − Σ_o V_{m,o}` for holder `m` and `V_{o,m}` for each other holder. All of `M` but its
//! diagonal blocks is known. When `B ≥ d` and `(k − 1)·h ≥ d`, the rows of `Y = [Y_0 … Y_{k−1}]`
//! span the same module as the rows of `M`; normalising that span on `d` known columns gives
//! every row of `M` from its known part, hence `W`, and then `X = Y_J·M_J^{-1}` (all mod 2^64).
//! [`ring_attack`] implements it; with the masks in place `Y` is uniform and the attack's output
//! is noise.

mod common;

use std::collections::HashMap;

use common::*;
use spnn_burn::messages::{
    Command, DealerBundle, DealerSeed, GradSeed, GradShare, Opening, PairSeed, Setup, ZShare,
};
use spnn_burn::protocol::pairwise::{Material, StepShape};
use spnn_burn::simulation::Simulation;
use spnn_burn::{DealerMode, Randomness, SpnnConfig};
use spnn_crypto::derive::zero_sharing_mask;
use spnn_crypto::{FixedPoint, RingMatrix, SecretSeed};
use spnn_net::codec::{Message, decode_exact};
use spnn_net::{Network, NetworkConfig, PartyId};

// ---------------------------------------------------------------------------------------------
// Linear algebra over Z_2^64 (a matrix is invertible iff it is invertible mod 2).

/// Indices of `want` rows of `m` (restricted to `cols`) independent over GF(2), if there are.
fn independent_rows(m: &RingMatrix, cols: &[usize], want: usize) -> Option<Vec<usize>> {
    let mut basis: Vec<Vec<u8>> = Vec::new();
    let mut pivots: Vec<usize> = Vec::new();
    let mut chosen = Vec::new();
    for r in 0..m.rows() {
        let mut v: Vec<u8> = cols
            .iter()
            .map(|&c| (m.as_slice()[r * m.cols() + c] & 1) as u8)
            .collect();
        for (b, &p) in basis.iter().zip(&pivots) {
            if v[p] == 1 {
                v.iter_mut().zip(b).for_each(|(x, y)| *x ^= y);
            }
        }
        if let Some(p) = v.iter().position(|&x| x == 1) {
            basis.push(v);
            pivots.push(p);
            chosen.push(r);
            if chosen.len() == want {
                return Some(chosen);
            }
        }
    }
    None
}

/// The submatrix of `m` on `rows` × `cols`.
fn sub(m: &RingMatrix, rows: &[usize], cols: &[usize]) -> RingMatrix {
    let data = rows
        .iter()
        .flat_map(|&r| cols.iter().map(move |&c| m.as_slice()[r * m.cols() + c]))
        .collect();
    RingMatrix::from_vec(rows.len(), cols.len(), data).unwrap()
}

/// What the ring attack recovers.
struct Recovered {
    /// `X` (`B × d`), encoded.
    x: RingMatrix,
    /// `W` (`d × h`), encoded.
    w: RingMatrix,
}

/// The server's attack (module docs): from `Y = X·M` (`B × kh`) with the off-diagonal blocks of
/// `M` known (`known[j][m]` = block (j, m) for `j ≠ m`), recovers `M`, then `W` and `X`.
fn ring_attack(
    y: &RingMatrix,
    known: &[Vec<Option<RingMatrix>>],
    widths: &[usize],
    h: usize,
) -> Option<Recovered> {
    let k = widths.len();
    let d: usize = widths.iter().sum();
    let start = |j: usize| widths[..j].iter().sum::<usize>();
    let mut m_rows = RingMatrix::zeros(d, k * h);
    for j in 0..k {
        // Columns where holder j's rows of M are known: every block but its own.
        let candidates: Vec<usize> = (0..k * h).filter(|c| c / h != j).collect();
        let rows = independent_rows(y, &candidates, d)?;
        let square = sub(y, &rows, &candidates);
        let local = independent_rows(&square.transpose(), &(0..d).collect::<Vec<_>>(), d)?;
        let cols: Vec<usize> = local.iter().map(|&i| candidates[i]).collect();
        // N = Y[I, J]^{-1}·Y[I, :] spans the rows of M with identity on J.
        let n = sub(y, &rows, &cols)
            .inverse()?
            .matmul(&sub(y, &rows, &(0..k * h).collect::<Vec<_>>()))
            .ok()?;
        for r in 0..widths[j] {
            // Row r of holder j's block of M, known on J: M[row, J]·N.
            let known_at_j: Vec<u64> = cols
                .iter()
                .map(|&c| {
                    let (mb, cc) = (c / h, c % h);
                    known[j][mb].as_ref().unwrap().as_slice()[r * h + cc]
                })
                .collect();
            let row = RingMatrix::from_vec(1, d, known_at_j)
                .unwrap()
                .matmul(&n)
                .ok()?;
            m_rows.as_mut_slice()[(start(j) + r) * k * h..(start(j) + r + 1) * k * h]
                .copy_from_slice(row.as_slice());
        }
    }
    // W_m = M_mm + Σ_{o≠m} V_{m,o}.
    let mut w = RingMatrix::zeros(d, h);
    for m in 0..k {
        for r in 0..widths[m] {
            for c in 0..h {
                let mut v = m_rows.as_slice()[(start(m) + r) * k * h + m * h + c];
                for o in (0..k).filter(|&o| o != m) {
                    v = v.wrapping_add(known[m][o].as_ref().unwrap().as_slice()[r * h + c]);
                }
                w.as_mut_slice()[(start(m) + r) * h + c] = v;
            }
        }
    }
    // X = Y_J·M_J^{-1} on d columns where M is invertible.
    let all: Vec<usize> = (0..d).collect();
    let cols = independent_rows(&m_rows.transpose(), &all, d)?;
    let x = sub(y, &(0..y.rows()).collect::<Vec<_>>(), &cols)
        .matmul(&sub(&m_rows, &all, &cols).inverse()?)
        .ok()?;
    Some(Recovered { x, w })
}

// ---------------------------------------------------------------------------------------------
// Views.

fn decode<M: Message>(payload: &[u8]) -> M {
    decode_exact(payload).unwrap()
}

/// Every message of kind `M` that party `net` received from `from`, in order.
fn received<M: Message>(net: &Network, from: PartyId) -> Vec<M> {
    net.transcript()
        .into_iter()
        .filter(|r| r.from == from && r.kind == M::KIND)
        .map(|r| decode(&r.payload))
        .collect()
}

/// Every message of kind `M` that party `net` sent to `to`, in order.
fn sent<M: Message>(net: &Network, to: PartyId) -> Vec<M> {
    net.sent()
        .into_iter()
        .filter(|r| r.to == to && r.kind == M::KIND)
        .map(|r| decode(&r.payload))
        .collect()
}

fn holder(i: usize) -> PartyId {
    PartyId(i as u16 + 1)
}

/// Runs one training step and one evaluation forward on a recording simulation, revealing the
/// initial `W` first (the attack targets the first forward, before any update).
struct Run {
    data: Data,
    nets: Vec<Network>,
    /// The initial weights, decoded.
    w0: Vec<f32>,
    /// The batch of the first forward.
    ids: Vec<u64>,
    /// The boundary gradient the server computed for it.
    g: Vec<f32>,
    config: SpnnConfig,
}

fn run(k: usize, config: SpnnConfig, features: impl Fn(Data) -> Data) -> Run {
    // These tests isolate the masks: noise on Z (a separate defence, tests/gram.rs) would also
    // blur the exact ring attack that shows what the masks protect.
    let config = config.with_z_noise(0.0);
    let data = features(Data::new(k));
    let net = NetworkConfig::new(11)
        .with_timeout(std::time::Duration::from_secs(60))
        .with_transcript();
    let sim: Simulation = start_with(&data, config, true, net);
    let w0 = sim.session().reveal_weights_insecure_for_tests().unwrap();
    let device = device();
    let model = spnn_model(&sim, &device);
    let ids = data.epoch(0, 64).remove(0);
    let mut optim = sim.session().optimizer();
    let model = spnn_step(model, &mut optim, &ids, &data.labels(&ids), 0.1, &device).0;
    let g = sim.session().view().g;
    let nets = sim.networks().to_vec();
    drop(model);
    sim.finish().unwrap();
    Run {
        data,
        nets,
        w0,
        ids,
        g,
        config,
    }
}

impl Run {
    fn k(&self) -> usize {
        self.data.holders.len()
    }

    fn widths(&self) -> Vec<usize> {
        self.data.holders.iter().map(|t| t.cols()).collect()
    }

    fn shape<'a>(&self, widths: &'a [usize]) -> StepShape<'a> {
        StepShape {
            widths,
            batch: self.ids.len(),
            h: HIDDEN[0],
            train: true,
        }
    }

    /// Holder `m`'s first-forward material, from what the dealer `dealer` sent it.
    fn material(&self, dealer: PartyId, m: usize) -> Material {
        let widths = self.widths();
        let net = &self.nets[dealer.0 as usize];
        let DealerSeed(seed) = sent::<DealerSeed>(net, holder(m)).remove(0);
        let DealerBundle(explicit) = sent::<DealerBundle>(net, holder(m)).remove(0);
        Material::from_dealt(&self.shape(&widths), m, &seed, explicit).unwrap()
    }

    /// The Z shares the server received in the first forward.
    fn z_shares(&self) -> Vec<RingMatrix> {
        (0..self.k())
            .map(|m| received::<ZShare>(&self.nets[0], holder(m)).remove(0).0)
            .collect()
    }

    /// Holder `m`'s pair seeds, from the holders' transcripts (the ablation's extra knowledge).
    fn pair_seeds(&self, m: usize) -> Vec<Option<SecretSeed>> {
        (0..self.k())
            .map(|j| match j.cmp(&m) {
                std::cmp::Ordering::Equal => None,
                // Holder min(j, m) drew the seed and sent it to the other.
                std::cmp::Ordering::Less => Some(
                    received::<PairSeed>(&self.nets[holder(m).0 as usize], holder(j))[0]
                        .0
                        .clone(),
                ),
                std::cmp::Ordering::Greater => Some(
                    sent::<PairSeed>(&self.nets[holder(m).0 as usize], holder(j))[0]
                        .0
                        .clone(),
                ),
            })
            .collect()
    }

    /// The encoded, clipped features of the first batch (what an attack must not recover).
    fn true_x(&self) -> RingMatrix {
        let fp = FixedPoint::new(self.config.frac_bits).unwrap();
        let clip = self.config.feature_clip;
        let x: Vec<f32> = self
            .data
            .plain_features(&self.ids)
            .into_iter()
            .map(|v| v.clamp(-clip, clip))
            .collect();
        fp.encode_matrix(self.ids.len(), self.data.d(), &x).unwrap()
    }

    /// `Y = [Y_0 … Y_{k−1}]` as a server that knows `materials` computes it from `z`, and the
    /// blocks of `M` it knows.
    fn server_view(
        &self,
        z: &[RingMatrix],
        materials: &[Material],
    ) -> (RingMatrix, Vec<Vec<Option<RingMatrix>>>) {
        let k = self.k();
        let mut blocks = Vec::new();
        for m in 0..k {
            let mut y = z[m].sub(&materials[m].w).unwrap();
            for o in (0..k).filter(|&o| o != m) {
                y.add_assign(
                    &materials[o]
                        .u
                        .matmul(materials[m].v[o].as_ref().unwrap())
                        .unwrap(),
                )
                .unwrap();
            }
            blocks.push(y);
        }
        let y = RingMatrix::hstack(&blocks.iter().collect::<Vec<_>>()).unwrap();
        // Block (j, m) of M for j ≠ m is V_{j,m}, holder m's material.
        let known = (0..k)
            .map(|j| {
                (0..k)
                    .map(|m| (j != m).then(|| materials[m].v[j].clone().unwrap()))
                    .collect()
            })
            .collect();
        (y, known)
    }
}

// ---------------------------------------------------------------------------------------------
// Scoring against the no-information baseline.

/// How well `guess` (encoded, `B × d`) reconstructs `truth`: exact entries, and the pooled
/// correlation and R² of the decoded values (clipped to the features' range, as any attacker
/// would) against the baseline that guesses the mean.
struct Score {
    exact: usize,
    correlation: f64,
    r2: f64,
    n: usize,
}

fn score(guess: Option<&RingMatrix>, truth: &RingMatrix, config: &SpnnConfig) -> Score {
    let fp = FixedPoint::new(config.frac_bits).unwrap();
    let clip = config.feature_clip as f64;
    let t: Vec<f64> = truth.as_slice().iter().map(|&v| fp.decode(v)).collect();
    let g: Vec<f64> = match guess {
        Some(g) => g
            .as_slice()
            .iter()
            .map(|&v| fp.decode(v).clamp(-clip, clip))
            .collect(),
        None => vec![0.0; t.len()],
    };
    let exact = guess.map_or(0, |g| {
        g.as_slice()
            .iter()
            .zip(truth.as_slice())
            .filter(|(a, b)| a == b)
            .count()
    });
    let n = t.len() as f64;
    let (mt, mg) = (t.iter().sum::<f64>() / n, g.iter().sum::<f64>() / n);
    let cov: f64 = t.iter().zip(&g).map(|(a, b)| (a - mt) * (b - mg)).sum();
    let (vt, vg) = (
        t.iter().map(|a| (a - mt).powi(2)).sum::<f64>(),
        g.iter().map(|b| (b - mg).powi(2)).sum::<f64>(),
    );
    let correlation = if vg == 0.0 {
        0.0
    } else {
        cov / (vt * vg).sqrt()
    };
    let sse: f64 = t.iter().zip(&g).map(|(a, b)| (a - b).powi(2)).sum();
    Score {
        exact,
        correlation,
        r2: 1.0 - sse / vt,
        n: t.len(),
    }
}

/// No better than guessing: no exact entry beyond chance, correlation within five standard
/// errors of zero (`5/√n`), and an R² no better than the mean's (0).
fn assert_baseline(s: &Score, what: &str) {
    let limit = 5.0 / (s.n as f64).sqrt();
    assert!(
        s.exact <= s.n / 100,
        "{what}: {} of {} entries recovered exactly",
        s.exact,
        s.n
    );
    assert!(
        s.correlation.abs() < limit,
        "{what}: correlation {:.3} beyond {limit:.3}",
        s.correlation
    );
    assert!(s.r2 <= 0.0, "{what}: R² {:.3} beats the mean", s.r2);
}

fn assert_recovers(guess: Option<&RingMatrix>, truth: &RingMatrix, what: &str) {
    assert_eq!(
        guess,
        Some(truth),
        "{what}: the attack failed on the unprotected view"
    );
}

fn decoded(m: &RingMatrix, config: &SpnnConfig) -> Vec<f32> {
    FixedPoint::new(config.frac_bits).unwrap().decode_matrix(m)
}

fn seeded() -> SpnnConfig {
    // Seeded randomness only so the two runs of the dealer-independence test match; every
    // attack below uses only what the attacked party has.
    SpnnConfig::default().with_randomness(Randomness::InsecureSeededForTests(21))
}

// ---------------------------------------------------------------------------------------------
// The server.

fn server_attack(k: usize, config: SpnnConfig) {
    let r = run(k, config, |d| d);
    let truth = r.true_x();
    let widths = r.widths();
    let dealer = match config.dealer {
        DealerMode::Server => PartyId(0),
        DealerMode::Separate => PartyId(k as u16 + 1),
    };
    let materials: Vec<Material> = (0..k).map(|m| r.material(dealer, m)).collect();
    let z = r.z_shares();
    // What the server knows of the material: everything if it dealt, nothing otherwise (then
    // its best guess of every dealt matrix is zero).
    let known_materials: Vec<Material> = if dealer == PartyId(0) {
        materials.clone()
    } else {
        materials
            .iter()
            .map(|m| Material {
                u: RingMatrix::zeros(m.u.rows(), m.u.cols()),
                v: m.v
                    .iter()
                    .map(|v| v.as_ref().map(|v| RingMatrix::zeros(v.rows(), v.cols())))
                    .collect(),
                w: RingMatrix::zeros(m.w.rows(), m.w.cols()),
                ..m.clone()
            })
            .collect()
    };
    let (y, known) = r.server_view(&z, &known_materials);
    let attack = ring_attack(&y, &known, &widths, HIDDEN[0]);
    assert_baseline(
        &score(attack.as_ref().map(|a| &a.x), &truth, &config),
        &format!("server, k = {k}, {:?} dealer", config.dealer),
    );

    // The attack is real: remove the holders' masks (and give a non-dealing server the
    // dealer's seeds) and it recovers X and W bit for bit.
    let unmasked: Vec<RingMatrix> = (0..k)
        .map(|m| {
            let mask = zero_sharing_mask(m, &r.pair_seeds(m), "z-share", 0, z[m].shape()).unwrap();
            z[m].sub(&mask).unwrap()
        })
        .collect();
    let (y, known) = r.server_view(&unmasked, &materials);
    let attack = ring_attack(&y, &known, &widths, HIDDEN[0]).expect("the algebra applies");
    assert_recovers(Some(&attack.x), &truth, "server without masks");
    assert_eq!(
        decoded(&attack.w, &config),
        r.w0,
        "W from the unmasked view"
    );
}

#[test]
fn a_dealing_server_learns_nothing_from_the_z_shares_k2() {
    server_attack(2, SpnnConfig::default());
}

#[test]
fn a_dealing_server_learns_nothing_from_the_z_shares_k3_k4() {
    server_attack(3, SpnnConfig::default());
    server_attack(4, SpnnConfig::default());
}

#[test]
fn a_server_beside_a_separate_dealer_learns_nothing_either() {
    server_attack(3, SpnnConfig::default().with_dealer(DealerMode::Separate));
}

#[test]
fn a_session_cannot_rewind_its_steps() {
    // A repeated step would repeat the holders' masks; the server refuses to move its counters
    // once a step has run (and holders refuse a step that does not increase).
    let r = Data::new(2);
    let sim = start(&r, SpnnConfig::default(), false);
    sim.session().forward(&[0, 1], false).unwrap();
    assert!(sim.session().set_counters((0, 0)).is_err());
    sim.finish().unwrap();
}

/// A holder's bottom model for the raw-server test: one linear map.
#[derive(burn::module::Module, Debug)]
struct OneLinear {
    w: burn::nn::Linear,
}

impl spnn_burn::LocalModel for OneLinear {
    fn forward(&self, x: burn::tensor::Tensor<2>) -> burn::tensor::Tensor<2> {
        self.w.forward(x)
    }
}

/// A server played by hand over the wire against two real bottom-model holders of `data`,
/// each with a seeded `OneLinear` of `h` outputs whose copy the test keeps (to know the truth);
/// set up with `kind`. Returns the server's network, the holders' threads and their models.
struct RawBottomSession {
    server: Network,
    holders: Vec<PartyId>,
    threads: Vec<std::thread::JoinHandle<spnn_burn::Result<spnn_burn::HolderSummary>>>,
    models: Vec<OneLinear>,
}

fn raw_bottom_session(
    data: &Data,
    h: usize,
    kind: spnn_burn::messages::LayerKind,
    policy: spnn_burn::PartyPolicy,
) -> RawBottomSession {
    use spnn_burn::messages::Hello;
    let roster = spnn_net::Roster::spnn(2, false).unwrap();
    let nets = Network::in_memory(
        &roster,
        NetworkConfig::new(31).with_timeout(std::time::Duration::from_secs(20)),
    );
    let seeded = device();
    seeded.seed(5);
    let models: Vec<OneLinear> = data
        .holders
        .iter()
        .map(|t| OneLinear {
            w: burn::nn::LinearConfig::new(t.cols(), h).init(&seeded),
        })
        .collect();
    let threads = data
        .holders
        .iter()
        .cloned()
        .zip(nets[1..].iter().cloned())
        .zip(models.clone())
        .map(|((t, net), model)| {
            let options = spnn_burn::HolderOptions {
                policy: policy.clone(),
                ..Default::default()
            };
            std::thread::spawn(move || {
                spnn_burn::run_bottom_holder(
                    net,
                    t,
                    model,
                    burn::optim::SgdConfig::new().init(),
                    device(),
                    options,
                )
            })
        })
        .collect();
    let server = nets[0].clone();
    let holders: Vec<PartyId> = (1..=2).map(PartyId).collect();
    let widths: Vec<u32> = holders
        .iter()
        .map(|&p| server.recv::<Hello>(p).unwrap().width)
        .collect();
    let setup = Setup {
        widths,
        output: h as u32,
        kind,
        config: SpnnConfig::default(),
        resume: None,
    };
    server.broadcast(&holders, &setup).unwrap();
    RawBottomSession {
        server,
        holders,
        threads,
        models,
    }
}

#[test]
fn holders_refuse_a_forward_step_that_does_not_increase() {
    // A server that repeated a step would get two outputs under one mask, whose difference is
    // the masks' absence. Played here by hand over the wire, against real holders.
    use spnn_burn::messages::{LayerKind, MaskedOutput};
    let r = Data::new(2);
    let s = raw_bottom_session(&r, 4, LayerKind::BottomModels, Default::default());
    let forward = |step| Command::Forward {
        step,
        ids: r.test[..3].to_vec(),
        train: false,
    };
    s.server.broadcast(&s.holders, &forward(5)).unwrap();
    for &p in &s.holders {
        assert_eq!(s.server.recv::<MaskedOutput>(p).unwrap().0.shape(), (3, 4));
    }
    s.server.broadcast(&s.holders, &forward(5)).unwrap();
    for h in s.threads {
        let e = h.join().unwrap().unwrap_err().to_string();
        assert!(e.contains("steps must increase"), "{e}");
    }
}

/// The server's whole view of one bottom-model forward of `ids`: what each holder sent, next to
/// each holder's true output (encoded), computed from the test's copy of its model.
fn bottom_view(
    kind: spnn_burn::messages::LayerKind,
    policy: spnn_burn::PartyPolicy,
) -> (Vec<RingMatrix>, Vec<RingMatrix>) {
    use spnn_burn::messages::MaskedOutput;
    let r = Data::new(2);
    let (h, ids) = (16, r.test[..64].to_vec());
    let s = raw_bottom_session(&r, h, kind, policy);
    let fp = FixedPoint::new(SpnnConfig::default().frac_bits).unwrap();
    let truth: Vec<RingMatrix> = r
        .holders
        .iter()
        .zip(&s.models)
        .map(|(t, m)| {
            let x = spnn_burn::tensor::matrix(
                t.gather(&ids).unwrap(),
                ids.len(),
                t.cols(),
                &device().inner(),
            );
            let out =
                spnn_burn::tensor::to_vec(burn::module::Module::valid(m).w.forward(x)).unwrap();
            fp.encode_matrix(ids.len(), h, &out).unwrap()
        })
        .collect();
    let cmd = Command::Forward {
        step: 1,
        ids,
        train: false,
    };
    s.server.broadcast(&s.holders, &cmd).unwrap();
    let view = s
        .holders
        .iter()
        .map(|&p| s.server.recv::<MaskedOutput>(p).unwrap().0)
        .collect();
    s.server.broadcast(&s.holders, &Command::Shutdown).unwrap();
    for t in s.threads {
        t.join().unwrap().unwrap();
    }
    (view, truth)
}

#[test]
fn a_server_learns_only_the_sum_of_the_bottom_model_outputs() {
    use spnn_burn::messages::LayerKind;
    let config = SpnnConfig::default();
    let fp = FixedPoint::new(config.frac_bits).unwrap();
    let sum = |m: &[RingMatrix]| {
        let mut s = m[0].clone();
        s.add_assign(&m[1]).unwrap();
        fp.decode_matrix(&s)
    };
    // Masked: each holder's message, read as its output, is no better than a guess; their sum
    // is the sum of the outputs (to the encoding's rounding).
    let (view, truth) = bottom_view(LayerKind::BottomModels, Default::default());
    for (j, (v, t)) in view.iter().zip(&truth).enumerate() {
        assert_baseline(
            &score(Some(v), t, &config),
            &format!("holder {j}'s output from its masked message"),
        );
    }
    for (a, b) in sum(&view).iter().zip(sum(&truth)) {
        assert!((a - b).abs() < 1e-3, "sum {a} against {b}");
    }
    // The same view with the protection removed (the split-learning baseline's unmasked
    // kind, which the holders accept only because their policy says so): the message is the
    // output.
    let consenting = spnn_burn::PartyPolicy {
        allow_unmasked_outputs: true,
        ..Default::default()
    };
    let (view, truth) = bottom_view(LayerKind::UnmaskedBottomModelsForBaselines, consenting);
    for (j, (v, t)) in view.iter().zip(&truth).enumerate() {
        let (got, want) = (fp.decode_matrix(v), fp.decode_matrix(t));
        let worst = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(
            worst < 1e-3,
            "holder {j}: the unmasked message is its output ({worst})"
        );
    }
}

#[test]
fn the_server_receives_nothing_but_hellos_and_z_shares() {
    let r = run(3, SpnnConfig::default(), |d| d);
    for rec in r.nets[0].transcript() {
        let name = spnn_burn::messages::kind_name(rec.kind).unwrap_or("unknown");
        assert!(
            [
                spnn_burn::messages::Hello::KIND,
                ZShare::KIND,
                spnn_burn::messages::RevealedShare::KIND
            ]
            .contains(&rec.kind),
            "the server received a {name} from {}",
            rec.from
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The holders.

/// Holder `o`'s attack on holder `m`'s features: the opening `E_m = X_m − U_m` it received,
/// minus its best knowledge of `U_m`.
fn holder_feature_attack(r: &Run, o: usize, m: usize, u_m: Option<&RingMatrix>) -> RingMatrix {
    let Opening(parts) = received::<Opening>(&r.nets[holder(o).0 as usize], holder(m)).remove(0);
    let e = parts[0].clone();
    match u_m {
        Some(u) => e.add(u).unwrap(),
        None => e,
    }
}

/// Holder `o`'s attack on `c·G`: its own share plus what the others opened to it in the
/// backward (`⟨cG⟩_m − V'_{o,m}`), minus its best knowledge of the `V'_{o,m}`.
fn holder_gradient_attack(r: &Run, o: usize, v2: Option<&[Material]>) -> RingMatrix {
    let net = &r.nets[holder(o).0 as usize];
    let (b, h) = (r.ids.len(), HIDDEN[0]);
    let mut g = if o == 0 {
        received::<GradShare>(net, PartyId(0)).remove(0).0
    } else {
        let GradSeed(seed) = received::<GradSeed>(net, PartyId(0)).remove(0);
        // A holder ≥ 1 derives its share from the seed as one ChaCha20 stream.
        let mut rng = spnn_crypto::SecureRng::from_secret_seed(&seed);
        RingMatrix::random(b, h, &mut rng)
    };
    for m in (0..r.k()).filter(|&m| m != o) {
        // The backward openings come after the forward's (E, F) from the same holder.
        let Opening(parts) = received::<Opening>(net, holder(m)).remove(1);
        g.add_assign(&parts[0]).unwrap();
        if let Some(materials) = v2 {
            g.add_assign(materials[m].v2[o].as_ref().unwrap()).unwrap();
        }
    }
    g
}

/// `c·G` as the server shared it: clipped, encoded.
fn true_scaled_gradient(r: &Run) -> RingMatrix {
    let fp = FixedPoint::new(r.config.frac_bits).unwrap();
    let c = r.ids.len() as f32;
    let clip = r.config.gradient_clip;
    let g: Vec<f32> = r.g.iter().map(|&v| (v * c).clamp(-clip, clip)).collect();
    fp.encode_matrix(r.ids.len(), HIDDEN[0], &g).unwrap()
}

fn holder_attacks(k: usize) {
    let r = run(k, SpnnConfig::default(), |d| d);
    let widths = r.widths();
    let materials: Vec<Material> = (0..k).map(|m| r.material(PartyId(0), m)).collect();
    let x = r.true_x();
    let start = |j: usize| widths[..j].iter().sum::<usize>();
    for o in 0..k {
        for m in (0..k).filter(|&m| m != o) {
            let truth = sub(
                &x,
                &(0..r.ids.len()).collect::<Vec<_>>(),
                &(start(m)..start(m) + widths[m]).collect::<Vec<_>>(),
            );
            let guess = holder_feature_attack(&r, o, m, None);
            assert_baseline(
                &score(Some(&guess), &truth, &r.config),
                &format!("holder {o} on holder {m}'s X"),
            );
            // With the dealer's seed of holder m (collusion), the opening gives X_m exactly.
            let guess = holder_feature_attack(&r, o, m, Some(&materials[m].u));
            assert_recovers(Some(&guess), &truth, "holder with U_m");
        }
        let truth = true_scaled_gradient(&r);
        let guess = holder_gradient_attack(&r, o, None);
        let s = score(Some(&guess), &truth, &SpnnConfig::default());
        assert_baseline(&s, &format!("holder {o} on c·G"));
        let guess = holder_gradient_attack(&r, o, Some(&materials));
        assert_recovers(Some(&guess), &truth, "holder with the others' V'");
    }
}

#[test]
fn a_holder_learns_nothing_of_other_features_or_the_gradient() {
    holder_attacks(2);
    holder_attacks(3);
}

// ---------------------------------------------------------------------------------------------
// A separate dealer.

#[test]
fn a_separate_dealers_whole_view_does_not_depend_on_the_data() {
    // Two runs with the same seeds and shapes but different features: everything the dealer
    // received and everything it sent is byte for byte the same, so no attack on its view can
    // learn anything about X, W or G.
    let config = seeded().with_dealer(DealerMode::Separate);
    let view = |r: &Run| {
        let dealer = &r.nets[r.k() + 1];
        let kinds: HashMap<u16, usize> =
            dealer.transcript().iter().fold(HashMap::new(), |mut m, x| {
                *m.entry(x.kind).or_default() += 1;
                m
            });
        (dealer.transcript(), dealer.sent(), kinds)
    };
    let a = run(3, config, |d| d);
    let b = run(3, config, |mut d| {
        for t in &mut d.holders {
            *t = spnn_data::Table::new(
                t.ids().to_vec(),
                t.columns().to_vec(),
                t.data().iter().map(|v| -v * 0.5 + 0.25).collect(),
                None,
            )
            .unwrap();
        }
        d
    });
    assert_ne!(
        a.true_x(),
        b.true_x(),
        "the two runs must differ in their data"
    );
    assert_ne!(a.g, b.g);
    let (va, vb) = (view(&a), view(&b));
    assert_eq!(va.0, vb.0, "the dealer received different bytes");
    assert_eq!(va.1, vb.1, "the dealer sent different bytes");
    // It never learns which samples a batch holds: its commands carry sizes, not ids.
    for rec in a.nets[a.k() + 1].transcript() {
        if rec.kind == Command::KIND {
            let cmd: Command = decode(&rec.payload);
            assert!(
                !matches!(cmd, Command::Forward { .. }),
                "the dealer received sample ids"
            );
        }
    }
    // What it received: the proposal and the commands, nothing from a holder.
    assert_eq!(
        va.2.keys()
            .copied()
            .collect::<std::collections::HashSet<_>>(),
        [Setup::KIND, Command::KIND].into()
    );
}

// ---------------------------------------------------------------------------------------------
// Adam's element-wise products.

/// The first matrix of the stream of the last seed the dealer (the server) sent holder `m` in
/// this run — the update's last material: every holder's share of Adam's first `a`, or of the
/// last comparison's mask `r`, is that matrix.
fn last_dealt(r: &Run, m: usize) -> RingMatrix {
    let seeds = sent::<DealerSeed>(&r.nets[0], holder(m));
    let mut rng = spnn_crypto::SecureRng::from_secret_seed(&seeds.last().unwrap().0);
    RingMatrix::random(r.data.d(), HIDDEN[0], &mut rng)
}

/// Holder `o`'s whole view of one opening among the holders: its own part and every other
/// holder's, the `n`-th opening `pick` selects from the holder's sequence, summed.
fn opened_sum(r: &Run, o: usize, pick: impl Fn(&[Opening]) -> Vec<usize>, n: usize) -> RingMatrix {
    let net = &r.nets[holder(o).0 as usize];
    let part = |list: Vec<Opening>| {
        let at = pick(&list)[n];
        list.into_iter().nth(at).unwrap().0.remove(0)
    };
    let mut sum = part(sent::<Opening>(net, holder((o + 1) % r.k())));
    for m in (0..r.k()).filter(|&m| m != o) {
        sum.add_assign(&part(received::<Opening>(net, holder(m))))
            .unwrap();
    }
    sum
}

/// Holder `o`'s attack on the weight gradient `g` from its whole view of one Adam update: the
/// first element-wise product is `g∘g`, for which every holder `m` opens `g_m − a_m` to the
/// others. Holder `o` sums what it received and what it sent and adds its own `a_o` (from its
/// product seed): `g − Σ_{m≠o} a_m`. With `others` (the other holders' product seeds, which only
/// the dealer has) it also adds their `a_m` and gets `g` itself.
fn holder_adam_gradient_attack(r: &Run, o: usize, others: bool) -> RingMatrix {
    let (d, h) = (r.data.d(), HIDDEN[0]);
    // The product openings are the only two-part openings of weight-shaped matrices.
    let products = |list: &[Opening]| -> Vec<usize> {
        (0..list.len())
            .filter(|&i| list[i].0.len() == 2 && list[i].0.iter().all(|p| p.shape() == (d, h)))
            .collect()
    };
    let mut g = opened_sum(r, o, products, 0);
    for m in (0..r.k()).filter(|&m| others || m == o) {
        g.add_assign(&last_dealt(r, m)).unwrap();
    }
    g
}

/// Holder `o`'s attack on a comparison's input from its whole view of clipping: the `n`-th
/// comparison of the update opens `c = x + 2^62 + r` (each holder its part), a single
/// weight-shaped opening right before the borrow chain's two-part product openings. Holder `o`
/// subtracts `2^62` and its share of `r` (the first matrix of its comparison seed, the last
/// the dealer sent it): `x + Σ_{m≠o} r_m`. With `others` (the other holders' comparison seeds,
/// which only the dealer has) it gets `x`.
fn holder_comparison_attack(
    r: &Run,
    o: usize,
    (shape, n): ((usize, usize), usize),
    others: bool,
) -> RingMatrix {
    let shaped = |o: &Opening, n: usize| o.0.len() == n && o.0.iter().all(|p| p.shape() == shape);
    let comparisons = |list: &[Opening]| -> Vec<usize> {
        (0..list.len().saturating_sub(1))
            .filter(|&i| shaped(&list[i], 1) && shaped(&list[i + 1], 2))
            .collect()
    };
    let mut x = opened_sum(r, o, comparisons, n);
    x = x.map(|v| v.wrapping_sub(1 << spnn_crypto::compare::COMPARISON_BITS));
    for m in (0..r.k()).filter(|&m| others || m == o) {
        // The mask's share is the first matrix of the comparison seed's stream.
        let dealt = last_dealt(r, m).as_slice()[..shape.0 * shape.1].to_vec();
        x.sub_assign(&RingMatrix::from_vec(shape.0, shape.1, dealt).unwrap())
            .unwrap();
    }
    x
}

/// The weight gradient `Xᵀ·G` of the first batch in plaintext, encoded (what the holders share
/// at the update, up to the fixed-point rounding of the backward).
fn plaintext_weight_gradient(r: &Run) -> RingMatrix {
    let (d, h, b) = (r.data.d(), HIDDEN[0], r.ids.len());
    let x = r.data.plain_features(&r.ids);
    let g: Vec<f32> = (0..d * h)
        .map(|i| {
            let (t, j) = (i / h, i % h);
            (0..b).map(|s| x[s * d + t] * r.g[s * h + j]).sum()
        })
        .collect();
    FixedPoint::new(r.config.frac_bits)
        .unwrap()
        .encode_matrix(d, h, &g)
        .unwrap()
}

/// Every holder's `attack` on `truth` from its own whole view (`others` false) is at the
/// no-information baseline; given the other holders' seeds (`others` true) the same view gives
/// `truth`, up to the backward's rounding (a unit or two of `2^-16` against gradients of order
/// `10^-2`).
fn hidden_unless_seeds(
    r: &Run,
    truth: &RingMatrix,
    what: &str,
    attack: impl Fn(usize, bool) -> RingMatrix,
) {
    let k = r.k();
    for o in 0..k {
        assert_baseline(
            &score(Some(&attack(o, false)), truth, &r.config),
            &format!("holder {o} on g from {what} (k = {k})"),
        );
        let s = score(Some(&attack(o, true)), truth, &r.config);
        assert!(
            s.r2 > 0.999 && s.correlation > 0.999,
            "holder {o} with the others' seeds, {what} (k = {k}): R² {}, correlation {}",
            s.r2,
            s.correlation
        );
    }
}

#[test]
fn a_holder_learns_nothing_of_the_gradient_from_adams_products() {
    for k in [2, 3] {
        let adam = SpnnConfig {
            adam: Some(spnn_burn::AdamParams::default()),
            ..SpnnConfig::default()
        };
        let r = run(k, adam, |d| d);
        let truth = plaintext_weight_gradient(&r);
        let attack = |o, others| holder_adam_gradient_attack(&r, o, others);
        hidden_unless_seeds(&r, &truth, "Adam's openings", attack);
    }
}

#[test]
fn a_holder_learns_nothing_of_the_gradient_from_clippings_comparisons() {
    for k in [2, 3] {
        // A threshold that clips about a third of the entries (tests/tracking.rs); the first
        // comparison's input is the whole gradient either way.
        let clipped = SpnnConfig {
            grad_clip_value: 0.003,
            ..SpnnConfig::default()
        };
        let r = run(k, clipped, |d| d);
        let truth = plaintext_weight_gradient(&r);
        // The first comparison's input is g − τ − 1.
        let tau = (r.config.grad_clip_value * 2f64.powi(r.config.frac_bits as i32)).round() as u64;
        let attack = |o, others| {
            holder_comparison_attack(&r, o, ((r.data.d(), HIDDEN[0]), 0), others)
                .map(|v| v.wrapping_add(tau + 1))
        };
        hidden_unless_seeds(&r, &truth, "the clipping's comparison", attack);
    }
}

/// Clipping by norm opens one comparison of `‖g‖² − τ² − 1`, a single value: from a holder's
/// whole view its estimate is a uniform ring value, nowhere near the squared norm; with the
/// other holders' comparison seeds it is the exact squared norm.
#[test]
fn a_holder_learns_nothing_of_the_gradients_norm_from_clipping() {
    for k in [2, 3] {
        let by_norm = SpnnConfig {
            grad_clip_norm: 0.05,
            ..SpnnConfig::default()
        };
        let r = run(k, by_norm, |d| d);
        let f = r.config.frac_bits as i32;
        let g = plaintext_weight_gradient(&r);
        let norm2: f64 = FixedPoint::new(r.config.frac_bits)
            .unwrap()
            .decode_matrix(&g)
            .iter()
            .map(|&v| f64::from(v) * f64::from(v))
            .sum();
        let tau2 = (0.05f64 * 0.05 * 2f64.powi(2 * f)).round() as u64;
        // The norm's comparison is the update's first single-value opening.
        let estimate = |o, others| {
            let x = holder_comparison_attack(&r, o, ((1, 1), 0), others);
            x.as_slice()[0].wrapping_add(tau2 + 1) as i64 as f64 / 2f64.powi(2 * f)
        };
        for o in 0..k {
            let alone = estimate(o, false);
            assert!(
                (alone - norm2).abs() > 100.0 * norm2,
                "holder {o} (k = {k}): {alone} near ‖g‖² = {norm2}"
            );
            let with_seeds = estimate(o, true);
            assert!(
                (with_seeds - norm2).abs() <= 1e-3 * norm2,
                "holder {o} with the others' seeds (k = {k}): {with_seeds} vs ‖g‖² = {norm2}"
            );
        }
    }
}
