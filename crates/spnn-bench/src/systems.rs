//! SPNN against its baselines, in one run on the same data, model and batches: plaintext Burn,
//! plain split learning (a bottom-model session whose holders send their first-layer outputs
//! unmasked), SPNN-SS over in-memory channels and over mutual TLS on loopback, SPNN-HE. Used by
//! `cargo bench -p spnn-bench --bench spnn_ss`.

use std::time::{Duration, Instant};

use burn::module::Module;
use burn::nn::loss::BinaryCrossEntropyLossConfig;
use burn::nn::{Linear, LinearConfig};
use burn::optim::GradientsParams;
use burn::tensor::activation::{relu, sigmoid};
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::SeedableRng;
use spnn_burn::metrics::roc_auc;
use spnn_burn::simulation::{self, HolderSpec, Simulation};
use spnn_burn::tensor::{matrix, to_vec};
use spnn_burn::{
    AdamParams, PartyPolicy, PrivateLinear, PrivateLinearConfig, Protocol, SecureAggregation,
    SecureAggregationConfig, ServerSession, SessionSpec, SpnnConfig,
};
use spnn_data::Table;
use spnn_data::packaged::Partitioned;
use spnn_net::certs::DeploymentCerts;
use spnn_net::transport::tls::loopback_mesh;
use spnn_net::{MeterSnapshot, Network, NetworkConfig, Roster};

/// The benchmark's settings.
#[derive(Clone, Debug)]
pub struct Setup {
    /// Hidden widths after the first layer's input: `d → widths[0] → widths[1] → 1`.
    pub widths: [usize; 2],
    /// Batch size.
    pub batch: usize,
    /// Epochs.
    pub epochs: usize,
    /// Learning rate.
    pub lr: f64,
    /// Data holders.
    pub holders: usize,
    /// Burn's Adam with these parameters instead of SGD, for every system (SPNN-SS runs it on
    /// shares; SPNN-HE refuses it).
    pub adam: Option<AdamParams>,
    /// Burn's gradient clipping `(by value, by norm)` for every system (zeros: none; SPNN-SS
    /// runs it on shares; SPNN-HE refuses it).
    pub clipping: (f64, f64),
}

impl Setup {
    /// The session configuration `config` with this setup's optimiser.
    pub fn session_config(&self, config: SpnnConfig) -> SpnnConfig {
        SpnnConfig {
            adam: self.adam,
            grad_clip_value: self.clipping.0,
            grad_clip_norm: self.clipping.1,
            ..config
        }
    }

    /// Burn's optimiser of this setup, for the plaintext and split-learning baselines.
    pub fn optimizer(&self) -> burn::optim::ModuleOptimizer {
        self.session_config(SpnnConfig::default())
            .optimizer_config()
            .init()
    }
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            widths: [64, 32],
            batch: 64,
            epochs: 10,
            lr: 0.1,
            holders: 2,
            adam: None,
            clipping: (0.0, 0.0),
        }
    }
}

/// One row of the result table.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Row {
    /// The system.
    pub system: String,
    /// Mean wall-clock seconds per epoch.
    pub seconds_per_epoch: f64,
    /// Test AUC after the last epoch.
    pub auc: f64,
    /// Bytes sent by all parties per epoch (0 for centralised training).
    pub bytes_per_epoch: u64,
    /// Largest number of rounds of any party per epoch.
    pub rounds_per_epoch: u64,
    /// SPNN-HE: Paillier encryptions and decryptions per batch, summed over the holders.
    pub paillier_per_batch: Option<(f64, f64)>,
    /// Peak resident memory of the process while this system ran (MB; all parties share the
    /// process in these benchmarks).
    pub peak_rss_mb: f64,
}

/// The data of a run: holders' standardised tables, labels, splits — the same fixture the
/// crates' tests use ([`Partitioned`]).
pub struct Data(Partitioned);

impl std::ops::Deref for Data {
    type Target = Partitioned;
    fn deref(&self) -> &Partitioned {
        &self.0
    }
}

impl Data {
    /// Splits `table` 80/20 and partitions its columns evenly among `holders`.
    pub fn new(table: Table, holders: usize) -> spnn_data::Result<Self> {
        Ok(Self(Partitioned::even(&table, holders, 0.2, 42)?))
    }

    /// `rows × cols` standard-normal features split evenly among `holders`, labels from a fixed
    /// random linear rule with noise (about half positive). For scaling measurements.
    pub fn synthetic(
        rows: usize,
        cols: usize,
        holders: usize,
        seed: u64,
    ) -> spnn_data::Result<Self> {
        use rand::Rng;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut normal = || -> f32 {
            // Box–Muller from two uniforms.
            let (u, v): (f64, f64) = (rng.random_range(1e-12..1.0), rng.random_range(0.0..1.0));
            ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
        };
        let w: Vec<f32> = (0..cols).map(|_| normal()).collect();
        let data: Vec<f32> = (0..rows * cols).map(|_| normal()).collect();
        let labels = (0..rows)
            .map(|r| {
                let s: f32 = (0..cols).map(|c| data[r * cols + c] * w[c]).sum::<f32>() + normal();
                f32::from(u8::from(s > 0.0))
            })
            .collect();
        let names = (0..cols).map(|c| format!("x{c}")).collect();
        Self::new(
            Table::new((0..rows as u64).collect(), names, data, Some(labels))?,
            holders,
        )
    }

    /// A packaged data set (`spnn_data::packaged`), already partitioned and encoded.
    pub fn from_partitioned(p: Partitioned) -> Self {
        Self(p)
    }

    /// The largest magnitude of any holder's (standardised) feature.
    pub fn max_abs_feature(&self) -> f32 {
        self.holders
            .iter()
            .flat_map(|t| t.data().iter())
            .fold(0f32, |m, v| m.max(v.abs()))
    }

    fn labels(&self, ids: &[u64]) -> Vec<f32> {
        self.labels_of(ids).expect("labelled ids")
    }

    fn epoch(&self, epoch: usize, batch: usize) -> Vec<Vec<u64>> {
        self.batches(epoch as u64, batch)
    }
}

/// The layers after the first one, shared by every system.
#[derive(Module, Debug)]
struct Head {
    hidden: Linear,
    out: Linear,
}

impl Head {
    fn forward(&self, z: Tensor<2>) -> Tensor<2> {
        self.out.forward(relu(self.hidden.forward(relu(z))))
    }
}

pub(crate) fn bce(logits: Tensor<2>, y: &[f32], device: &Device) -> Tensor<1> {
    let ints: Vec<i64> = y.iter().map(|&v| i64::from(v > 0.5)).collect();
    let targets = Tensor::<2, Int>::from_data(TensorData::new(ints, [y.len(), 1]), device);
    BinaryCrossEntropyLossConfig::new()
        .with_logits(true)
        .init(device)
        .forward(logits, targets)
}

/// The autodiff device, with Burn's initialisation seeded so every system starts its server
/// layers from the same weights.
pub(crate) fn device() -> Device {
    let device = Device::flex().autodiff();
    device.seed(42);
    device
}

/// Sums sent bytes and the largest round count over every party's meters.
fn traffic(meters: &[MeterSnapshot]) -> (u64, u64) {
    let bytes = meters.iter().map(|m| m.total.bytes_sent).sum();
    let rounds = meters.iter().map(|m| m.total.rounds).max().unwrap_or(0);
    (bytes, rounds)
}

/// Sigmoid scores of the test ids (an SPNN session runs a large evaluation batch in steps
/// itself).
fn scores(ids: &[u64], logits: impl Fn(&[u64]) -> Tensor<2>) -> Vec<f32> {
    to_vec(sigmoid(logits(ids))).expect("finite scores")
}

fn timed_epochs(setup: &Setup, mut epoch: impl FnMut(usize)) -> f64 {
    let start = Instant::now();
    for e in 0..setup.epochs {
        epoch(e);
    }
    start.elapsed().as_secs_f64() / setup.epochs as f64
}

/// Centralised plaintext Burn training of the same MLP, on the holders' columns joined.
pub fn plaintext(data: &Data, setup: &Setup) -> Row {
    crate::report::reset_peak_rss();
    let joined = Table::join_columns(&data.holders).expect("aligned holders");
    let d = joined.cols();
    let features = |ids: &[u64], device: &Device| {
        matrix(joined.gather(ids).expect("known ids"), ids.len(), d, device)
    };
    let device = device();
    let mut model = (
        LinearConfig::new(d, setup.widths[0]).init(&device),
        Head {
            hidden: LinearConfig::new(setup.widths[0], setup.widths[1]).init(&device),
            out: LinearConfig::new(setup.widths[1], 1).init(&device),
        },
    );
    let mut optim = setup.optimizer();
    let secs = timed_epochs(setup, |e| {
        for ids in data.epoch(e, setup.batch) {
            let loss = bce(
                model.1.forward(model.0.forward(features(&ids, &device))),
                &data.labels(&ids),
                &device,
            );
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(setup.lr, model.clone(), grads);
        }
    });
    let valid = model.clone().valid();
    let scores = scores(&data.test, |ids| {
        let x = features(ids, &device.clone().inner());
        valid.1.forward(valid.0.forward(x))
    });
    Row {
        system: "plaintext Burn (centralised)".into(),
        seconds_per_epoch: secs,
        auc: roc_auc(&scores, &data.labels(&data.test)),
        bytes_per_epoch: 0,
        rounds_per_epoch: 0,
        paillier_per_batch: None,
        peak_rss_mb: crate::report::peak_rss_mb(),
    }
}

/// Plain split learning: holder `j` keeps its own `W_j` (a bias-free Burn `Linear`, trained by
/// its own SGD) and sends `X_j·W_j` to the server **unmasked**; the server adds them and
/// returns `G` to every holder. A bottom-model session without the masks
/// ([`simulation::start_unmasked_bottom_models_for_baselines`]): the traffic and time baseline
/// the cryptography is measured against.
pub fn split_learning(data: &Data, setup: &Setup) -> Row {
    let roster = Roster::spnn(data.holders.len() as u16, false).expect("k ≥ 2");
    let networks = Network::in_memory(
        &roster,
        NetworkConfig::new(3).with_timeout(Duration::from_secs(600)),
    );
    let h = setup.widths[0];
    let holders = data
        .holders
        .iter()
        .map(|t| {
            let device = device();
            // The bottom model: one bias-free linear map.
            let w = LinearConfig::new(t.cols(), h)
                .with_bias(false)
                .init(&device);
            HolderSpec::new(t.clone())
                .with_policy(PartyPolicy {
                    allow_unmasked_outputs: true,
                    ..PartyPolicy::default()
                })
                .with_bottom_model(w, setup.optimizer(), device)
        })
        .collect();
    let sim = simulation::start_unmasked_bottom_models_for_baselines(
        networks,
        holders,
        SessionSpec::new(h),
    )
    .expect("parties start");
    let first = SecureAggregationConfig::new().init(sim.session(), &device());
    simulated(
        data,
        setup,
        "plain split learning (no crypto)",
        sim,
        First::Sum(first),
    )
}

/// The first layer of a simulated system.
#[derive(Module, Debug)]
enum First {
    /// SPNN's private layer (SPNN-SS or SPNN-HE).
    Private(PrivateLinear),
    /// The sum of the holders' bottom models.
    Sum(SecureAggregation),
}

impl First {
    fn forward(&self, ids: &[u64]) -> Tensor<2> {
        match self {
            Self::Private(l) => l.forward(ids),
            Self::Sum(l) => l.forward(ids),
        }
    }

    fn session(&self) -> &ServerSession {
        match self {
            Self::Private(l) => l.session(),
            Self::Sum(l) => l.session(),
        }
    }
}

/// A simulated system's model: its first layer, then the shared head.
#[derive(Module, Debug)]
struct SpnnModel {
    first: First,
    head: Head,
}

/// SPNN-SS (or, with `config`, SPNN-HE) on networks built by `networks` (in-memory or TLS).
pub fn spnn(
    data: &Data,
    setup: &Setup,
    label: &str,
    config: SpnnConfig,
    networks: Vec<Network>,
) -> Row {
    let holders = data.holders.iter().cloned().map(HolderSpec::new).collect();
    let sim = simulation::start_on(
        networks,
        holders,
        SessionSpec::new(setup.widths[0]).with_config(setup.session_config(config)),
    )
    .expect("parties start");
    let first = PrivateLinearConfig::new().init(sim.session(), &device());
    simulated(data, setup, label, sim, First::Private(first))
}

/// Trains the shared head on top of `first` with every party of `sim` and measures the run.
fn simulated(data: &Data, setup: &Setup, label: &str, sim: Simulation, first: First) -> Row {
    crate::report::reset_peak_rss();
    let config = sim.session().config();
    // The synchronisation forwards' cost has a closed form for SPNN-SS only.
    let ss = matches!(first, First::Private(_)) && config.protocol == Protocol::SecretSharing;
    let device = device();
    let mut model = SpnnModel {
        first,
        head: Head {
            hidden: LinearConfig::new(setup.widths[0], setup.widths[1]).init(&device),
            out: LinearConfig::new(setup.widths[1], 1).init(&device),
        },
    };
    let mut optim = sim.session().optimizer();
    // Holders run in their own threads: a one-sample inference forward, whose output shares the
    // server waits for, marks a point where every party has processed everything before it.
    // Both snapshots follow one; its own cost is subtracted below.
    let sync = |m: &SpnnModel| {
        m.first
            .session()
            .forward(&data.test[..1], false)
            .expect("sync forward")
    };
    sync(&model);
    let before: Vec<MeterSnapshot> = sim.networks().iter().map(Network::meters).collect();
    let secs = timed_epochs(setup, |e| {
        for ids in data.epoch(e, setup.batch) {
            let loss = bce(
                model.head.forward(model.first.forward(&ids)),
                &data.labels(&ids),
                &device,
            );
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(setup.lr, model.clone(), grads);
        }
    });
    sync(&model);
    let after: Vec<MeterSnapshot> = sim.networks().iter().map(Network::meters).collect();
    let valid = model.clone().valid();
    let scores = scores(&data.test, |ids| {
        valid.head.forward(valid.first.forward(ids))
    });
    drop((model, valid));
    let summaries = sim.finish().expect("parties end cleanly");
    let batches = (setup.epochs * data.train.len().div_ceil(setup.batch)) as f64;
    let paillier_per_batch = (config.protocol == Protocol::Paillier).then(|| {
        let enc: u64 = summaries.iter().map(|s| s.he.encryptions).sum();
        let dec: u64 = summaries.iter().map(|s| s.he.decryptions).sum();
        // The counts include the two synchronisation forwards of one sample each.
        (enc as f64 / batches, dec as f64 / batches)
    });
    let delta: Vec<MeterSnapshot> = after.iter().zip(&before).map(|(a, b)| a.since(b)).collect();
    let (bytes, rounds) = traffic(&delta);
    let (bytes, rounds) = if ss {
        let sync = spnn_burn::cost::inference_step(&spnn_burn::cost::StepShape {
            widths: data.holders.iter().map(Table::cols).collect(),
            batch: 1,
            h: setup.widths[0],
            update: Default::default(),
        });
        (
            bytes - sync.server_sent - sync.holder_sent.iter().sum::<u64>(),
            rounds - sync.holder_rounds,
        )
    } else {
        // SPNN-HE and split learning: the two one-sample synchronisation forwards stay in the
        // count (no closed form; a few kB against an epoch's traffic).
        (bytes, rounds)
    };
    Row {
        system: label.into(),
        seconds_per_epoch: secs,
        auc: roc_auc(&scores, &data.labels(&data.test)),
        bytes_per_epoch: bytes / setup.epochs as u64,
        rounds_per_epoch: rounds / setup.epochs as u64,
        paillier_per_batch,
        peak_rss_mb: crate::report::peak_rss_mb(),
    }
}

/// All four systems on `data`.
pub fn run(data: &Data, setup: &Setup) -> Vec<Row> {
    let roster = Roster::spnn(setup.holders as u16, false).expect("k ≥ 2");
    let config = NetworkConfig::new(21).with_timeout(Duration::from_secs(600));
    let names: Vec<String> = roster
        .ids()
        .map(|p| roster.name(p).expect("roster"))
        .collect();
    let certs = DeploymentCerts::generate("bench", &names).expect("certificates");
    vec![
        plaintext(data, setup),
        split_learning(data, setup),
        spnn(
            data,
            setup,
            "SPNN-SS, in-memory",
            SpnnConfig::default(),
            Network::in_memory(&roster, config),
        ),
        spnn(
            data,
            setup,
            "SPNN-SS, mutual TLS on loopback",
            SpnnConfig::default(),
            loopback_mesh(&roster, &certs, config).expect("TLS mesh"),
        ),
    ]
}

/// SPNN-HE (Paillier-2048, in-memory) on `data`: the row to add to [`run`]'s.
pub fn spnn_he(data: &Data, setup: &Setup) -> Row {
    let roster = Roster::spnn(setup.holders as u16, false).expect("k ≥ 2");
    let config = NetworkConfig::new(22).with_timeout(Duration::from_secs(3600));
    let he = SpnnConfig::default().with_protocol(Protocol::Paillier);
    spnn(
        data,
        setup,
        "SPNN-HE (Paillier-2048), in-memory",
        he,
        Network::in_memory(&roster, config),
    )
}

/// What the holders' zero-sharing masks cost in an SPNN-SS epoch of `row` on `data`: the
/// time to derive one holder's mask for a batch (`B × h`, from `k − 1` pair seeds), measured
/// here over 200 repetitions, times the forward steps of an epoch (holders derive theirs in
/// parallel, so one mask per step is on the critical path). Returns (seconds per epoch,
/// fraction of the row's epoch time).
pub fn mask_overhead(data: &Data, setup: &Setup, row: &Row) -> (f64, f64) {
    let k = setup.holders;
    let mut rng = spnn_crypto::SecureRng::from_os_entropy();
    let seeds: Vec<Option<spnn_crypto::SecretSeed>> = (0..k)
        .map(|j| (j != 0).then(|| rng.secret_seed()))
        .collect();
    let shape = (setup.batch, setup.widths[0]);
    let reps = 200;
    let start = Instant::now();
    for step in 0..reps {
        std::hint::black_box(
            spnn_crypto::derive::zero_sharing_mask(0, &seeds, "z-share", step, shape)
                .expect("seeds for every other holder"),
        );
    }
    let per_mask = start.elapsed().as_secs_f64() / reps as f64;
    let steps = data.train.len().div_ceil(setup.batch) as f64;
    let per_epoch = per_mask * steps;
    (per_epoch, per_epoch / row.seconds_per_epoch)
}

/// The rows as a markdown table, with the ratio to plaintext time.
pub fn markdown(rows: &[Row]) -> String {
    let base = rows.first().map_or(1.0, |r| r.seconds_per_epoch);
    let mut out = String::from(
        "| system | s / epoch | × first row | test AUC | bytes / epoch | rounds / epoch | Paillier enc / dec per batch | peak MB |\n|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let he = r
            .paillier_per_batch
            .map_or("—".to_string(), |(e, d)| format!("{e:.0} / {d:.0}"));
        out += &format!(
            "| {} | {:.4} | {:.1} | {:.4} | {} | {} | {he} | {:.0} |\n",
            r.system,
            r.seconds_per_epoch,
            r.seconds_per_epoch / base,
            r.auc,
            r.bytes_per_epoch,
            r.rounds_per_epoch,
            r.peak_rss_mb
        );
    }
    out
}
