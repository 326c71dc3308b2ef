//! What the server learns about the holders' features from a run's `Z`s and `G`s (the Gram
//! attack of `spnn_burn::attack::features`), against the `z_noise` defence: one SPNN-SS training
//! run per noise level (labels at the server, plain SGD), the server's record attacked after the
//! run, the model's test AUC beside it. Used by `cargo run -p spnn-bench --release --example
//! feature_leakage`.

use std::fmt::Write as _;

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::optim::{GradientsParams, SgdConfig};
use burn::tensor::Tensor;
use burn::tensor::activation::{relu, sigmoid};
pub use spnn_burn::attack::features::chance_r2;
use spnn_burn::attack::features::{Record, Step, aligned_r2, embed, gram};
use spnn_burn::metrics::roc_auc;
use spnn_burn::simulation::{self, HolderSpec};
use spnn_burn::tensor::to_vec;
use spnn_burn::{
    PartyPolicy, PrivateLinear, PrivateLinearConfig, Randomness, SessionSpec, SpnnConfig,
};
use spnn_data::Table;
use spnn_net::NetworkConfig;

use crate::systems::{Data, Setup, bce};

/// The suite's model: `PrivateLinear(d, w0) → ReLU → Linear(w0, w1) → ReLU → Linear(w1, 1)`.
#[derive(Module, Debug)]
struct Model {
    first: PrivateLinear,
    hidden: Linear,
    out: Linear,
}

impl Model {
    fn forward(&self, ids: &[u64]) -> Tensor<2> {
        self.out
            .forward(relu(self.hidden.forward(relu(self.first.forward(ids)))))
    }
}

/// One run at one noise level.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Point {
    /// `z_noise`.
    pub z_noise: f32,
    /// Test AUC after the last epoch.
    pub test_auc: f64,
    /// The Gram attack's R² on the training rows, aligned up to rotation and scale (`None`
    /// when the run was not attacked).
    pub attack_r2: Option<f64>,
    /// Seconds the attack took.
    pub attack_seconds: f64,
}

/// The holders' training rows as the server would have to reconstruct them.
pub fn truth(data: &Data) -> Vec<f64> {
    Table::join_columns(&data.holders)
        .expect("aligned holders")
        .gather(&data.train)
        .expect("training ids")
        .into_iter()
        .map(f64::from)
        .collect()
}

/// Trains with noise `z_noise` on `Z` and, if `attack`, attacks the server's record (its cost
/// grows with the square of the training rows: breast cancer yes, census no).
pub fn run(data: &Data, setup: &Setup, z_noise: f32, attack: bool) -> Point {
    let config = SpnnConfig::default()
        .with_z_noise(z_noise)
        .with_randomness(Randomness::InsecureSeededForTests(13));
    let policy = PartyPolicy::default().allowing_insecure_randomness();
    let holders = data
        .holders
        .iter()
        .map(|t| HolderSpec::new(t.clone()).with_policy(policy.clone()))
        .collect();
    let sim = simulation::start(
        holders,
        SessionSpec::new(setup.widths[0]).with_config(config),
        NetworkConfig::new(41).with_timeout(std::time::Duration::from_secs(600)),
    )
    .expect("parties start");
    let device = crate::systems::device();
    let mut model = Model {
        first: PrivateLinearConfig::new(setup.widths[0])
            .init(sim.session(), &device)
            .expect("width"),
        hidden: LinearConfig::new(setup.widths[0], setup.widths[1]).init(&device),
        out: LinearConfig::new(setup.widths[1], 1).init(&device),
    };
    let mut optim = SgdConfig::new().init();
    let mut record = Record {
        h: setup.widths[0],
        steps: Vec::new(),
    };
    for e in 0..setup.epochs {
        for ids in data.batches(e as u64, setup.batch) {
            let y = data.labels_of(&ids).expect("labelled ids");
            let loss = bce(model.forward(&ids), &y, &device);
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            if attack {
                let view = sim.session().view();
                record.steps.push(Step {
                    ids: ids.clone(),
                    z: view.z,
                    g: view.g,
                    lr: setup.lr,
                });
            }
            model.first.apply_update(setup.lr).expect("secure update");
            model = optim.step(setup.lr, model, grads);
        }
    }
    let valid = model.clone().valid();
    let scores: Vec<f32> = data
        .test
        .chunks(4096)
        .flat_map(|c| to_vec(sigmoid(valid.forward(c))).expect("finite scores"))
        .collect();
    let test_auc = roc_auc(&scores, &data.labels_of(&data.test).expect("labelled"));
    drop((model, valid));
    sim.finish().expect("parties end cleanly");
    let start = std::time::Instant::now();
    let n = data.train.len();
    let d: usize = data.holders.iter().map(Table::cols).sum();
    let attack_r2 = attack.then(|| {
        gram(&record, &data.train, 1e-9).map_or(f64::NAN, |k| {
            aligned_r2(&embed(&k, n, d), &truth(data), n, d)
        })
    });
    Point {
        z_noise,
        test_auc,
        attack_r2,
        attack_seconds: start.elapsed().as_secs_f64(),
    }
}

/// The sweep as a markdown table (with the unrelated guesses' R², if the runs were attacked).
pub fn markdown(points: &[Point], baseline: Option<(f64, f64)>) -> String {
    let base = points.first().map_or(f64::NAN, |p| p.test_auc);
    let mut md = String::new();
    if let Some((mean, sd)) = baseline {
        let _ = writeln!(
            md,
            "Unrelated guesses score R² {mean:.4} ± {sd:.4} (mean ± sd of 200).\n"
        );
    }
    md.push_str(
        "| z_noise | test AUC | Δ vs no noise | Gram attack R² | attack seconds |\n|---|---|---|---|---|\n",
    );
    for p in points {
        let (r2, secs) = match p.attack_r2 {
            Some(r2) => (format!("{r2:.4}"), format!("{:.1}", p.attack_seconds)),
            None => ("—".into(), "—".into()),
        };
        let _ = writeln!(
            md,
            "| {} | {:.4} | {:+.4} | {r2} | {secs} |",
            p.z_noise,
            p.test_auc,
            p.test_auc - base,
        );
    }
    md
}
