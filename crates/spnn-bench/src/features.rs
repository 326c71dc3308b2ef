//! What the server learns about the holders' features from a run's `Z`s and `G`s
//! (`spnn_burn::attack::features`: the Gram attack, and the learned inversion of a server that
//! holds 1 % of the training rows), against the two defences — noise on `Z` and Langevin noise
//! on the weight updates, both added as shares by the holders: one SPNN-SS training run per
//! level (labels at the server, plain SGD), the server's record attacked after the run, the
//! model's test AUC beside it. Used by `cargo run -p spnn-bench --release --example
//! feature_leakage`.

use std::fmt::Write as _;

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;
use burn::tensor::activation::{relu, sigmoid};
pub use spnn_burn::attack::features::chance_r2;
use spnn_burn::attack::features::{
    Auxiliary, Record, Step, aligned_r2, embed, feature_r2, gram, inversion,
};
use spnn_burn::metrics::roc_auc;
use spnn_burn::simulation::{self, HolderSpec};
use spnn_burn::tensor::to_vec;
use spnn_burn::{
    PartyPolicy, PrivateLinear, PrivateLinearConfig, Randomness, SessionSpec, SpnnConfig,
};
use spnn_data::Table;
use spnn_net::NetworkConfig;

use crate::report::{TradeoffSeries, tradeoff_chart};
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

/// The defence of one run: both noises are added as shares by the holders.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Defence {
    /// `SpnnConfig::z_noise`.
    pub z_noise: f32,
    /// `SpnnConfig::sgld`.
    pub sgld: f32,
}

/// One run at one defence level.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Point {
    /// The defence.
    pub defence: Defence,
    /// Test AUC after the last epoch.
    pub test_auc: f64,
    /// The Gram attack's R² on the training rows, aligned up to rotation and scale (`None`
    /// when the run was not attacked that way).
    pub attack_r2: Option<f64>,
    /// Seconds the Gram attack took.
    pub attack_seconds: f64,
    /// The learned inversion's R² (mean over features) on the training rows the server does
    /// not hold, from [`AUX_FRACTION`] of them.
    pub inversion_r2: f64,
    /// The same for the auxiliary rows' mean as the guess for every row.
    pub inversion_baseline: f64,
}

/// The holders' training rows as the server would have to reconstruct them.
pub fn truth(data: &Data) -> Vec<f64> {
    rows(data, &data.train)
}

/// All holders' columns of the samples `ids`, row-major.
fn rows(data: &Data, ids: &[u64]) -> Vec<f64> {
    Table::join_columns(&data.holders)
        .expect("aligned holders")
        .gather(ids)
        .expect("training ids")
        .into_iter()
        .map(f64::from)
        .collect()
}

/// The share of the training rows the inverting server holds in the clear.
pub const AUX_FRACTION: f64 = 0.01;

/// The first [`AUX_FRACTION`] of the training rows (at least two, the rows being shuffled by
/// the split) as the server's auxiliary rows, and the rest as its targets.
pub fn auxiliary(data: &Data) -> (Auxiliary, Vec<u64>) {
    let n_aux = ((data.train.len() as f64 * AUX_FRACTION).round() as usize).max(2);
    let (aux, targets) = data.train.split_at(n_aux);
    (
        Auxiliary {
            ids: aux.to_vec(),
            rows: rows(data, aux),
            d: data.holders.iter().map(Table::cols).sum(),
        },
        targets.to_vec(),
    )
}

/// Trains with `defence` and attacks the server's record: the learned inversion always, the
/// Gram attack if `gram_attack` (its cost grows with the square of the training rows: breast
/// cancer yes, census no).
pub fn run(data: &Data, setup: &Setup, defence: Defence, gram_attack: bool) -> Point {
    let config = SpnnConfig::default()
        .with_z_noise(defence.z_noise)
        .with_sgld(defence.sgld)
        .with_randomness(Randomness::InsecureSeededForTests(13));
    let policy = PartyPolicy::default()
        .allowing_insecure_randomness()
        .allowing_z_noise(0.0)
        .allowing_sgld(defence.sgld);
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
        first: PrivateLinearConfig::new().init(sim.session(), &device),
        hidden: LinearConfig::new(setup.widths[0], setup.widths[1]).init(&device),
        out: LinearConfig::new(setup.widths[1], 1).init(&device),
    };
    let mut optim = sim.session().optimizer();
    let mut record = Record {
        h: setup.widths[0],
        steps: Vec::new(),
    };
    for e in 0..setup.epochs {
        for ids in data.batches(e as u64, setup.batch) {
            let y = data.labels_of(&ids).expect("labelled ids");
            let loss = bce(model.forward(&ids), &y, &device);
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            let view = sim.session().view();
            record.steps.push(Step {
                ids: ids.clone(),
                z: view.z,
                g: view.g,
                lr: setup.lr,
            });
            model = optim.step(setup.lr, model, grads);
        }
    }
    let valid = model.clone().valid();
    let scores = to_vec(sigmoid(valid.forward(&data.test))).expect("finite scores");
    let test_auc = roc_auc(&scores, &data.labels_of(&data.test).expect("labelled"));
    drop((model, valid));
    sim.finish().expect("parties end cleanly");
    let (aux, targets) = auxiliary(data);
    let (n, d) = (targets.len(), aux.d);
    let target_truth = rows(data, &targets);
    let mean_r2 = |estimate: &[f64]| {
        let r2 = feature_r2(estimate, &target_truth, n, d);
        r2.iter().sum::<f64>() / d as f64
    };
    let inversion_r2 = mean_r2(&inversion(&record, &aux, &targets, INVERSION_RIDGE));
    let inversion_baseline = mean_r2(&aux.mean().repeat(n));
    let start = std::time::Instant::now();
    let n = data.train.len();
    let attack_r2 = gram_attack.then(|| {
        gram(&record, &data.train, 1e-9).map_or(f64::NAN, |k| {
            aligned_r2(&embed(&k, n, d), &truth(data), n, d)
        })
    });
    Point {
        defence,
        test_auc,
        attack_r2,
        attack_seconds: start.elapsed().as_secs_f64(),
        inversion_r2,
        inversion_baseline,
    }
}

/// The inverting server's ridge, relative to the mean squared norm of the centred `Z`s.
pub const INVERSION_RIDGE: f64 = 1e-3;

/// The sweep as a markdown table (with the unrelated guesses' R², if the runs were attacked).
pub fn markdown(points: &[Point], baseline: Option<(f64, f64)>) -> String {
    let base = points.first().map_or(f64::NAN, |p| p.test_auc);
    let mut md = String::new();
    if let Some((mean, sd)) = baseline {
        let _ = writeln!(
            md,
            "Unrelated guesses score Gram R² {mean:.4} ± {sd:.4} (mean ± sd of 200). The inverting \
             server's guess of its auxiliary rows' mean scores inversion R² {:.4}.\n",
            points.first().map_or(f64::NAN, |p| p.inversion_baseline)
        );
    }
    md.push_str(
        "| z_noise | sgld | test AUC | Δ vs none | Gram attack R² | inversion R² (1 % rows) |\n|---|---|---|---|---|---|\n",
    );
    for p in points {
        let r2 = p.attack_r2.map_or("—".into(), |r2| format!("{r2:.4}"));
        let _ = writeln!(
            md,
            "| {} | {} | {:.4} | {:+.4} | {r2} | {:.4} |",
            p.defence.z_noise,
            p.defence.sgld,
            p.test_auc,
            p.test_auc - base,
            p.inversion_r2,
        );
    }
    md
}

/// Test AUC against each attack's R², one series per defence and attack (the undefended run
/// starts every series).
pub fn plot(
    points: &[Point],
    title: &str,
    path: &std::path::Path,
) -> Result<(), Box<dyn std::error::Error>> {
    type Level = fn(&Defence) -> f32;
    type Score = fn(&Point) -> Option<f64>;
    let defences: [(&str, Level); 2] = [("z_noise", |d| d.z_noise), ("sgld", |d| d.sgld)];
    let attacks: [(&str, Score); 2] = [
        ("Gram attack", |p| p.attack_r2),
        ("inversion, 1 % rows", |p| Some(p.inversion_r2)),
    ];
    let mut series = Vec::new();
    for (defence, level) in defences {
        for (attack, score) in attacks {
            let pts: Vec<(f64, f64, String)> = points
                .iter()
                .filter(|p| {
                    let other = p.defence.z_noise + p.defence.sgld - level(&p.defence);
                    other == 0.0
                })
                .filter_map(|p| Some((score(p)?, p.test_auc, level(&p.defence).to_string())))
                .collect();
            if pts.len() > 1 {
                series.push(TradeoffSeries {
                    name: format!("{defence} against the {attack}"),
                    points: pts,
                });
            }
        }
    }
    let x0 = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .fold(0.0, f64::min);
    tradeoff_chart(
        title,
        (
            "attack's R² on the features (≤ 0 = no better than a guess)",
            (x0 - 0.05)..1.02,
        ),
        "model test AUC",
        &series,
        path,
    )
}
