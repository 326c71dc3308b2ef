//! Models and helpers shared by the SPNN integration tests: an SPNN MLP and the plaintext Burn
//! MLP of the same architecture, on the embedded breast-cancer data.
#![allow(dead_code)]

use std::time::Duration;

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::nn::loss::BinaryCrossEntropyLossConfig;
use burn::optim::{GradientsParams, SgdConfig};
use burn::tensor::activation::{relu, sigmoid};
use burn::tensor::{Device, Int, Tensor, TensorData};
use spnn_burn::metrics::roc_auc;
use spnn_burn::simulation::{self, HolderSpec, Simulation};
use spnn_burn::tensor::{matrix, to_vec};
use spnn_burn::{
    HolderLabels, LabelDefence, LabelMode, LabelReports, PartyPolicy, PrivateLinear,
    PrivateLinearConfig, SessionSpec, SpnnConfig, TopLayers,
};
use spnn_data::packaged::Partitioned;
use spnn_data::{Table, embedded::breast_cancer};
use spnn_net::NetworkConfig;

pub const HIDDEN: [usize; 2] = [64, 32];

/// `ids → PrivateLinear(d, 64) → ReLU → Linear(64, 32) → ReLU → Linear(32, 1)`.
#[derive(Module, Debug)]
pub struct SpnnMlp {
    pub first: PrivateLinear,
    pub hidden: Linear,
    pub out: Linear,
}

impl SpnnMlp {
    pub fn forward(&self, ids: &[u64]) -> Tensor<2> {
        self.out.forward(self.activations(ids))
    }

    /// The server's part in label-holder mode: up to the 32 activations the label holder's
    /// top layer takes (`out` stays unused there).
    pub fn activations(&self, ids: &[u64]) -> Tensor<2> {
        relu(self.hidden.forward(relu(self.first.forward(ids))))
    }
}

/// A `Linear(d_in, d_out)` with fixed initial weights (uniform in ±1/√d_in from a generator
/// seeded with `seed`): Burn's own initialiser draws from a global generator that tests running
/// in parallel share, so it is not reproducible.
pub fn seeded_linear(d_in: usize, d_out: usize, seed: u64, device: &Device) -> Linear {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let bound = 1.0 / (d_in as f32).sqrt();
    let w: Vec<f32> = (0..d_in * d_out)
        .map(|_| rng.random_range(-bound..bound))
        .collect();
    let b: Vec<f32> = (0..d_out)
        .map(|_| rng.random_range(-bound..bound))
        .collect();
    Linear {
        weight: Param::from_tensor(matrix(w, d_in, d_out, device)),
        bias: Some(Param::from_tensor(Tensor::from_data(
            TensorData::new(b, [d_out]),
            device,
        ))),
    }
}

/// The output layer `Linear(32, 1)`, the same in every test, so the label holder's top layer
/// and the plaintext twin start equal.
pub fn out_layer(device: &Device) -> Linear {
    seeded_linear(HIDDEN[1], 1, 32, device)
}

/// The label holder of the crypto tests: the top layer, **undefended** and reporting
/// everything, so the session computes exactly what plaintext training computes (the label
/// tests use the defaults).
pub fn test_labels(data: &Data, config: SpnnConfig) -> HolderLabels {
    let top = TopLayers::new(
        out_layer(&device()),
        config.optimizer_config().init(),
        device(),
    );
    HolderLabels::new(data.0.labels.clone(), top)
        .with_defence(LabelDefence::undefended())
        .with_reports(LabelReports::everything())
}

/// The same architecture in plaintext Burn.
#[derive(Module, Debug)]
pub struct PlainMlp {
    pub first: Linear,
    pub hidden: Linear,
    pub out: Linear,
}

impl PlainMlp {
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        self.out
            .forward(relu(self.hidden.forward(relu(self.first.forward(x)))))
    }
}

pub fn device() -> Device {
    Device::flex().autodiff()
}

/// The breast-cancer data split 80/20 and partitioned evenly among `k` holders, each holder
/// standardising its own columns on the training rows (the fixture the benchmarks use too).
pub struct Data(Partitioned);

impl std::ops::Deref for Data {
    type Target = Partitioned;
    fn deref(&self) -> &Partitioned {
        &self.0
    }
}

impl std::ops::DerefMut for Data {
    fn deref_mut(&mut self) -> &mut Partitioned {
        &mut self.0
    }
}

impl Data {
    pub fn new(k: usize) -> Self {
        Self(Partitioned::even(&breast_cancer(), k, 0.2, 42).unwrap())
    }

    /// Breast cancer as a regression: a sample's mean smoothness, standardised over all rows,
    /// is its label; the 27 columns that do not measure smoothness are the features, split and
    /// partitioned as in [`Data::new`].
    pub fn regression(k: usize) -> Self {
        let t = breast_cancer();
        let target = t
            .select_columns(&["mean_smoothness".into()], false)
            .unwrap();
        let n = target.data().len() as f64;
        let mean = target.data().iter().map(|&v| f64::from(v)).sum::<f64>() / n;
        let var = target
            .data()
            .iter()
            .map(|&v| (f64::from(v) - mean).powi(2))
            .sum::<f64>()
            / n;
        let y = target
            .data()
            .iter()
            .map(|&v| ((f64::from(v) - mean) / var.sqrt()) as f32)
            .collect();
        let keep: Vec<String> = t
            .columns()
            .iter()
            .filter(|c| !c.contains("smoothness"))
            .cloned()
            .collect();
        let features = t.select_columns(&keep, false).unwrap();
        let table = Table::new(t.ids().to_vec(), keep, features.data().to_vec(), Some(y)).unwrap();
        Self(Partitioned::even(&table, k, 0.2, 42).unwrap())
    }

    /// The 1,000 embedded MNIST digits (ten classes, 100 each) as a multiclass task: 784 pixels
    /// scaled to `[0, 1]` (not standardised: most pixels are almost always 0), split 80/20
    /// and partitioned evenly among `k` holders.
    pub fn digits(k: usize) -> Self {
        let table = spnn_data::embedded::mnist_1000_table();
        Self(Partitioned::even_unscaled(&table, k, 0.2, 42).unwrap())
    }

    /// The full standardised feature rows of `ids` (holders' blocks side by side): what a
    /// centralised plaintext trainer would see.
    pub fn plain_features(&self, ids: &[u64]) -> Vec<f32> {
        Table::join_columns(&self.holders)
            .unwrap()
            .gather(ids)
            .unwrap()
    }

    pub fn d(&self) -> usize {
        self.holders.iter().map(Table::cols).sum()
    }

    pub fn labels(&self, ids: &[u64]) -> Vec<f32> {
        self.labels_of(ids).unwrap()
    }

    /// Epoch `epoch`'s shuffled training batches.
    pub fn epoch(&self, epoch: usize, batch: usize) -> Vec<Vec<u64>> {
        self.0.batches(1000 + epoch as u64, batch)
    }
}

/// The policy of a test holder: the secure default, accepting seeded randomness when the test
/// asks for it, the 512-bit Paillier keys the HE tests use to stay fast, and no noise on `Z`
/// where a test needs the exact `Z`.
pub fn test_policy(config: SpnnConfig) -> PartyPolicy {
    let mut p = PartyPolicy::default()
        .allowing_key_bits(config.he_key_bits.min(2048))
        .allowing_z_noise(config.z_noise.min(spnn_burn::config::DEFAULT_Z_NOISE))
        .allowing_sgld(config.sgld);
    if config.randomness.is_insecure() {
        p = p.allowing_insecure_randomness();
    }
    p
}

pub fn start(data: &Data, config: SpnnConfig, reveal: bool) -> Simulation {
    start_with(
        data,
        config,
        reveal,
        NetworkConfig::new(1).with_timeout(Duration::from_secs(60)),
    )
}

pub fn start_with(data: &Data, config: SpnnConfig, reveal: bool, net: NetworkConfig) -> Simulation {
    let holders = data
        .holders
        .iter()
        .enumerate()
        .map(|(i, t)| HolderSpec {
            allow_insecure_reveal: reveal,
            policy: test_policy(config),
            labels: (config.labels == LabelMode::Holder(i as u16))
                .then(|| test_labels(data, config)),
            ..HolderSpec::new(t.clone())
        })
        .collect();
    simulation::start(
        holders,
        SessionSpec::new(HIDDEN[0]).with_config(config),
        net,
    )
    .unwrap()
}

/// One step with labels at a holder: the server sends its activations, the label holder's top
/// layer computes the loss. Returns the loss the label holder reports (NaN if it reports none).
pub fn spnn_step_label_holder(
    m: SpnnMlp,
    optim: &mut burn::optim::ModuleOptimizer,
    ids: &[u64],
    lr: f64,
) -> (SpnnMlp, f32) {
    let session = m.first.session().clone();
    let (grads, loss) =
        spnn_burn::train::backward_from_label_holder(&session, m.activations(ids)).unwrap();
    let grads = GradientsParams::from_grads(grads, &m);
    (
        optim.step(lr, m, grads),
        loss.map_or(f32::NAN, |l| l as f32),
    )
}

/// Test AUC computed by the label holder, reported to the server (the test fixture's label
/// holder reports metrics).
pub fn label_holder_auc(m: &SpnnMlp, data: &Data) -> f64 {
    let valid = m.clone().valid();
    let session = m.first.session().clone();
    spnn_burn::train::evaluate_at_label_holder(&session, valid.activations(&data.test)).unwrap();
    session
        .label_holder_metrics()
        .unwrap()
        .expect("the test label holder reports metrics")
        .auc
}

/// The SPNN model, its server layers from fixed seeds (Burn's initialiser draws from a generator
/// shared by the tests running in parallel).
pub fn spnn_model(sim: &Simulation, device: &Device) -> SpnnMlp {
    let mut first = PrivateLinearConfig::new().init(sim.session(), device);
    first.bias = seeded_linear(1, HIDDEN[0], 65, device).bias;
    SpnnMlp {
        first,
        hidden: seeded_linear(HIDDEN[0], HIDDEN[1], 64, device),
        out: out_layer(device),
    }
}

/// The plaintext twin of `m`: the first layer's weight is the reconstructed `W`, everything
/// else is a copy of `m`'s parameters.
pub fn plain_twin(m: &SpnnMlp, w: Vec<f32>, d: usize, device: &Device) -> PlainMlp {
    let first = Linear {
        weight: Param::from_tensor(matrix(w, d, HIDDEN[0], device)),
        bias: m.first.bias.clone(),
    };
    PlainMlp {
        first,
        hidden: m.hidden.clone(),
        out: m.out.clone(),
    }
}

pub fn targets(y: &[f32], device: &Device) -> Tensor<2, Int> {
    let ints: Vec<i64> = y.iter().map(|&v| i64::from(v > 0.5)).collect();
    Tensor::from_data(TensorData::new(ints, [y.len(), 1]), device)
}

pub fn bce(logits: Tensor<2>, y: &[f32], device: &Device) -> Tensor<1> {
    BinaryCrossEntropyLossConfig::new()
        .with_logits(true)
        .init(device)
        .forward(logits, targets(y, device))
}

/// One SGD step of the SPNN model (labels at the server); returns the updated model and loss.
pub fn spnn_step(
    m: SpnnMlp,
    optim: &mut burn::optim::ModuleOptimizer,
    ids: &[u64],
    y: &[f32],
    lr: f64,
    device: &Device,
) -> (SpnnMlp, f32) {
    let loss = bce(m.forward(ids), y, device);
    let value = to_vec(loss.clone()).unwrap()[0];
    let grads = GradientsParams::from_grads(loss.backward(), &m);
    (optim.step(lr, m, grads), value)
}

/// One SGD step of the plaintext model.
pub fn plain_step(
    m: PlainMlp,
    optim: &mut burn::optim::ModuleOptimizer,
    x: Vec<f32>,
    y: &[f32],
    lr: f64,
    device: &Device,
) -> (PlainMlp, f32) {
    let d = x.len() / y.len();
    let loss = bce(m.forward(matrix(x, y.len(), d, device)), y, device);
    let value = to_vec(loss.clone()).unwrap()[0];
    let grads = GradientsParams::from_grads(loss.backward(), &m);
    (optim.step(lr, m, grads), value)
}

pub fn sgd() -> burn::optim::ModuleOptimizer {
    SgdConfig::new().init()
}

pub fn spnn_auc(m: &SpnnMlp, data: &Data) -> f64 {
    let valid = m.clone().valid();
    let scores = to_vec(sigmoid(valid.forward(&data.test))).unwrap();
    roc_auc(&scores, &data.labels(&data.test))
}

pub fn plain_auc(m: &PlainMlp, data: &Data, device: &Device) -> f64 {
    let valid = m.clone().valid();
    let x = matrix(
        data.plain_features(&data.test),
        data.test.len(),
        data.d(),
        &device.clone().inner(),
    );
    let scores = to_vec(sigmoid(valid.forward(x))).unwrap();
    roc_auc(&scores, &data.labels(&data.test))
}
