//! What the server learns about the label holder's labels, against the label holder's
//! defences: one SPNN-SS training run per defence setting (labels at holder 0, its own top layer
//! `Linear(w1, 1)`, nothing reported to the server), the server's whole view of the returned
//! gradients attacked after every step, the model's test AUC as the label holder records it.
//! Used by `cargo run -p spnn-bench --release --example label_leakage`.

use std::fmt::Write as _;
use std::path::Path;

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::optim::{GradientsParams, SgdConfig};
use burn::tensor::Tensor;
use burn::tensor::activation::relu;
use spnn_burn::attack::labels::{LabelLeakage, LeakageReport};
use spnn_burn::messages::Metrics;
use spnn_burn::simulation::{self, HolderSpec};
use spnn_burn::train::{backward_from_label_holder, evaluate_at_label_holder};
use spnn_burn::{
    HolderLabels, LabelDefence, LabelMode, PartyPolicy, PrivateLinear, PrivateLinearConfig,
    Randomness, SessionSpec, SpnnConfig, TopLayers,
};
use spnn_net::NetworkConfig;

use crate::report::{TradeoffSeries, tradeoff_chart};
use crate::systems::{Data, Setup};

/// The server's layers: the private first layer and one hidden layer, up to `w1` activations.
#[derive(Module, Debug)]
struct ServerPart {
    first: PrivateLinear,
    hidden: Linear,
}

impl ServerPart {
    fn forward(&self, ids: &[u64]) -> Tensor<2> {
        relu(self.hidden.forward(relu(self.first.forward(ids))))
    }
}

/// One training run under one defence.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Point {
    /// The defence family ("fresh noise", "persistent noise", "max-norm + fresh noise",
    /// "randomised response").
    pub family: String,
    /// The knob's value (the noise multiplier, or ε).
    pub level: f64,
    /// Test AUC after the last epoch, as the label holder recorded it.
    pub test_auc: f64,
    /// Attack AUCs per epoch.
    pub epochs: Vec<Leak>,
    /// Attack AUCs over every gradient of the run.
    pub whole_run: Leak,
}

/// One epoch's attacks.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Leak {
    /// Norm attack AUC.
    pub norm: f64,
    /// Direction attack AUC.
    pub direction: f64,
    /// Projection attack AUC.
    pub projection: f64,
    /// Projection attack averaged per sample over its releases.
    pub averaged: f64,
}

impl Leak {
    fn of(r: LeakageReport) -> Self {
        Self {
            norm: r.norm,
            direction: r.direction,
            projection: r.projection,
            averaged: r.averaged,
        }
    }
}

impl Point {
    /// The strongest attack: the best of norm, direction and projection in their best epoch,
    /// and the projection averaged per sample over the run.
    pub fn strongest(&self) -> f64 {
        self.worst_of(|l| l.norm.max(l.direction).max(l.projection))
            .max(self.whole_run.averaged)
    }

    fn worst_of(&self, f: impl Fn(&Leak) -> f64) -> f64 {
        self.epochs.iter().map(f).fold(0.5, f64::max)
    }
}

/// The defence settings of one family, weakest first.
pub fn grid() -> Vec<(String, f64, LabelDefence)> {
    let mut out = Vec::new();
    let none = LabelDefence::undefended();
    out.push(("undefended".to_string(), 0.0, none));
    for level in [0.5, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0] {
        out.push(("fresh noise".into(), level, none.with_gradient_noise(level)));
    }
    for level in [2.0, 4.0] {
        out.push((
            "persistent noise".into(),
            level,
            none.with_gradient_noise(level).with_persistent_noise(true),
        ));
    }
    for level in [0.0, 4.0, 8.0] {
        out.push((
            "max-norm + fresh noise".into(),
            level,
            none.with_max_norm(true).with_gradient_noise(level),
        ));
    }
    for eps in [4.0, 2.0, 1.0, 0.5, 0.25] {
        out.push((
            "randomised response".into(),
            eps,
            none.with_randomised_response(eps),
        ));
    }
    out
}

/// Trains under `defence` and attacks the server's view after every step.
pub fn run(data: &Data, setup: &Setup, family: &str, level: f64, defence: LabelDefence) -> Point {
    let mut epochs = Vec::new();
    let mut whole = LabelLeakage::default();
    let metrics = train(data, setup, 1, defence, |views| {
        let mut leak = LabelLeakage::default();
        for (ids, g, y) in views {
            leak.observe(ids, g, setup.widths[1], y);
            whole.observe(ids, g, setup.widths[1], y);
        }
        epochs.push(Leak::of(leak.report()));
    })
    .unwrap_or_else(|e| panic!("{family} {level}: {e}"));
    Point {
        family: family.into(),
        level,
        test_auc: metrics.auc,
        epochs,
        whole_run: Leak::of(whole.report()),
    }
}

/// One epoch's server view: each training batch's ids, the gradient it received and (for
/// scoring only) the true labels.
type EpochView = [(Vec<u64>, Vec<f32>, Vec<f32>)];

/// Trains SPNN-SS with the labels at holder 0 behind `defence` — top layer
/// `Linear(widths[1], classes)` (binary for one) — handing each epoch's server view to
/// `epoch_done`; returns the label holder's test metrics, or why the session failed (a run
/// whose noise drives the model to non-finite values stops at the label holder).
fn train(
    data: &Data,
    setup: &Setup,
    classes: usize,
    defence: LabelDefence,
    mut epoch_done: impl FnMut(&EpochView),
) -> Result<Metrics, String> {
    let device = burn::tensor::Device::flex().autodiff();
    device.seed(42);
    let layer = LinearConfig::new(setup.widths[1], classes).init(&device);
    let top = if classes > 1 {
        TopLayers::multiclass(layer, SgdConfig::new().init(), device.clone(), classes)
    } else {
        TopLayers::new(layer, SgdConfig::new().init(), device.clone())
    };
    let labels = HolderLabels::new(data.labels.clone(), top).with_defence(defence);
    let record = labels.metrics();
    // Seeded randomness so that a re-run reproduces the committed numbers exactly.
    let config = SpnnConfig::default()
        .with_labels(LabelMode::Holder(0))
        .with_randomness(Randomness::InsecureSeededForTests(5));
    let policy = PartyPolicy::default().allowing_insecure_randomness();
    let mut holders: Vec<HolderSpec> = data
        .holders
        .iter()
        .map(|t| HolderSpec::new(t.clone()).with_policy(policy.clone()))
        .collect();
    holders[0].labels = Some(labels);
    let sim = simulation::start(
        holders,
        SessionSpec::new(setup.widths[0]).with_config(config),
        NetworkConfig::new(31).with_timeout(std::time::Duration::from_secs(60)),
    )
    .map_err(|e| e.to_string())?;
    let session = sim.session().clone();
    let mut model = ServerPart {
        first: PrivateLinearConfig::new().init(&session, &device),
        hidden: LinearConfig::new(setup.widths[0], setup.widths[1]).init(&device),
    };
    let mut optim = session.optimizer();
    for e in 0..setup.epochs {
        let mut views = Vec::new();
        for ids in data.batches(e as u64, setup.batch) {
            let (grads, _) = backward_from_label_holder(&session, model.forward(&ids))
                .map_err(|e| e.to_string())?;
            let y = data.labels_of(&ids).map_err(|e| e.to_string())?;
            views.push((ids, session.view().head_gradient, y));
            let grads = GradientsParams::from_grads(grads, &model);
            model = optim.step(setup.lr, model, grads);
        }
        epoch_done(&views);
    }
    let valid = model.clone().valid();
    for ids in data.test.chunks(spnn_burn::EVALUATION_ROWS) {
        evaluate_at_label_holder(&session, valid.forward(ids)).map_err(|e| e.to_string())?;
    }
    session.label_holder_metrics().map_err(|e| e.to_string())?;
    drop((model, valid));
    sim.finish().map_err(|e| e.to_string())?;
    record
        .last()
        .ok_or_else(|| "no evaluation recorded".to_string())
}

/// One training run over `C > 2` classes under one defence.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ClassPoint {
    /// The defence family.
    pub family: String,
    /// The knob's value (the noise multiplier, or ε).
    pub level: f64,
    /// Test accuracy after the last epoch, as the label holder recorded it.
    pub test_accuracy: f64,
    /// The clustering attack's accuracy in its best epoch.
    pub best_epoch: f64,
    /// The clustering attack on each sample's releases averaged over the run.
    pub averaged: f64,
    /// The largest class's share (guessing it for every row).
    pub chance: f64,
    /// Why the run stopped early, if it did (its attack numbers then cover the epochs before).
    pub failed: Option<String>,
}

/// The defence settings measured over classes, weakest first: no defence, fresh noise,
/// persistent noise, randomised response.
pub fn class_grid() -> Vec<(String, f64, LabelDefence)> {
    let none = LabelDefence::undefended();
    let mut out = vec![("undefended".to_string(), 0.0, none)];
    for level in [0.5, 1.0, 2.0, 4.0] {
        out.push(("fresh noise".into(), level, none.with_gradient_noise(level)));
    }
    for level in [1.0, 2.0, 4.0] {
        out.push((
            "persistent noise".into(),
            level,
            none.with_gradient_noise(level).with_persistent_noise(true),
        ));
    }
    for eps in [2.0, 1.0] {
        out.push((
            "randomised response".into(),
            eps,
            none.with_randomised_response(eps),
        ));
    }
    out
}

/// Every setting of [`class_grid`] on `data` with `classes` classes, after the attack's blind
/// floor ([`blind_baseline`]): the clustering attack ([`LabelLeakage::clustering`]) on every
/// epoch's view, and averaged per sample over the whole run's, printing each point as it
/// finishes.
pub fn sweep_classes(data: &Data, setup: &Setup, classes: usize) -> Vec<ClassPoint> {
    let mut points = vec![blind_baseline(data, setup, classes)];
    points.extend(class_grid().into_iter().map(|(family, level, defence)| {
        let mut attack = Clustering::new(classes, setup.widths[1]);
        let metrics = train(data, setup, classes, defence, |views| attack.epoch(views));
        attack.point(
            family,
            level,
            metrics.as_ref().map_or(f64::NAN, |m| m.accuracy),
            metrics.err(),
        )
    }));
    points
}

/// The clustering attack over a run, epoch by epoch.
struct Clustering {
    classes: usize,
    cols: usize,
    best_epoch: f64,
    whole: LabelLeakage,
}

impl Clustering {
    fn new(classes: usize, cols: usize) -> Self {
        Self {
            classes,
            cols,
            best_epoch: 0.0,
            whole: LabelLeakage::default(),
        }
    }

    /// Attacks one epoch's view and keeps it for the run.
    fn epoch(&mut self, views: &EpochView) {
        let mut leak = LabelLeakage::default();
        for (ids, g, y) in views {
            leak.observe(ids, g, self.cols, y);
            self.whole.observe(ids, g, self.cols, y);
        }
        self.best_epoch = self.best_epoch.max(leak.clustering(self.classes));
    }

    /// The run's point, printed.
    fn point(
        self,
        family: String,
        level: f64,
        accuracy: f64,
        failed: Option<String>,
    ) -> ClassPoint {
        let p = ClassPoint {
            family,
            level,
            test_accuracy: accuracy,
            best_epoch: self.best_epoch,
            averaged: self.whole.averaged_clustering(self.classes),
            chance: self.whole.class_chance(self.classes),
            failed,
        };
        println!(
            "{} {}: test accuracy {:.4}, clustering in its best epoch {:.4}, averaged over the run {:.4} (chance {:.4}){}",
            p.family,
            p.level,
            p.test_accuracy,
            p.best_epoch,
            p.averaged,
            p.chance,
            p.failed
                .as_ref()
                .map_or(String::new(), |e| format!("; stopped: {e}"))
        );
        p
    }
}

/// The clustering attack's floor: the same batches of rows drawn from a standard normal (no
/// signal at all), scored the same way — what the best matching and the best of the epochs
/// give a blind attacker. No model is trained (its accuracy is reported as 0).
fn blind_baseline(data: &Data, setup: &Setup, classes: usize) -> ClassPoint {
    let mut rng = spnn_crypto::SecureRng::insecure_from_seed_for_tests(7);
    let cols = setup.widths[1];
    let mut attack = Clustering::new(classes, cols);
    for e in 0..setup.epochs {
        let views: Vec<_> = data
            .batches(e as u64, setup.batch)
            .into_iter()
            .map(|ids| {
                let g = (0..ids.len() * cols)
                    .map(|_| spnn_crypto::rng::standard_normal(&mut rng) as f32)
                    .collect();
                let y = data.labels_of(&ids).expect("labelled ids");
                (ids, g, y)
            })
            .collect();
        attack.epoch(&views);
    }
    attack.point("blind (pure noise rows)".into(), 0.0, 0.0, None)
}

/// [`sweep_classes`] as a markdown table.
pub fn class_markdown(points: &[ClassPoint]) -> String {
    let base = points
        .iter()
        .find(|p| p.family == "undefended")
        .map_or(f64::NAN, |p| p.test_accuracy);
    let mut md = String::from(
        "| defence | level | test accuracy | Δ vs undefended | clustering, best epoch | clustering averaged over the run | chance |\n|---|---|---|---|---|---|---|\n",
    );
    for p in points {
        // The blind baseline trains no model: its accuracy columns are empty.
        let (accuracy, delta) = if p.family.starts_with("blind") {
            ("—".to_string(), "—".to_string())
        } else if p.failed.is_some() {
            ("diverged".to_string(), "—".to_string())
        } else {
            (
                format!("{:.4}", p.test_accuracy),
                format!("{:+.4}", p.test_accuracy - base),
            )
        };
        let _ = writeln!(
            md,
            "| {} | {} | {accuracy} | {delta} | {:.4} | {:.4} | {:.4} |",
            p.family, p.level, p.best_epoch, p.averaged, p.chance
        );
    }
    md
}

/// Every setting of [`grid`] on `data`, printing each point as it finishes.
pub fn sweep(data: &Data, setup: &Setup) -> Vec<Point> {
    grid()
        .into_iter()
        .map(|(family, level, defence)| {
            let p = run(data, setup, &family, level, defence);
            println!(
                "{family} {level}: test AUC {:.4}, worst epoch: norm {:.4}, direction {:.4}, projection {:.4}; averaged over the run {:.4}",
                p.test_auc,
                p.worst_of(|l| l.norm),
                p.worst_of(|l| l.direction),
                p.worst_of(|l| l.projection),
                p.whole_run.averaged
            );
            p
        })
        .collect()
}

/// The sweep as a markdown table: per setting, test AUC, each attack's AUC in its best epoch,
/// and the per-sample averaged projection over the whole run.
pub fn markdown(points: &[Point]) -> String {
    let base = points
        .iter()
        .find(|p| p.family == "undefended")
        .map_or(f64::NAN, |p| p.test_auc);
    let mut md = String::from(
        "| defence | level | test AUC | Δ vs undefended | norm | direction | projection | projection averaged over the run |\n|---|---|---|---|---|---|---|---|\n",
    );
    for p in points {
        let _ = writeln!(
            md,
            "| {} | {} | {:.4} | {:+.4} | {:.4} | {:.4} | {:.4} | {:.4} |",
            p.family,
            p.level,
            p.test_auc,
            p.test_auc - base,
            p.worst_of(|l| l.norm),
            p.worst_of(|l| l.direction),
            p.worst_of(|l| l.projection),
            p.whole_run.averaged
        );
    }
    md
}

/// Test AUC against the strongest attack's AUC, one series per defence family.
pub fn plot(points: &[Point], title: &str, path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let mut families: Vec<&str> = points.iter().map(|p| p.family.as_str()).collect();
    families.dedup();
    let series: Vec<TradeoffSeries> = families
        .into_iter()
        .map(|family| TradeoffSeries {
            name: family.to_string(),
            points: points
                .iter()
                .filter(|p| p.family == family)
                .map(|p| (p.strongest(), p.test_auc, p.level.to_string()))
                .collect(),
        })
        .collect();
    tradeoff_chart(
        title,
        ("strongest label attack's AUC (0.5 = chance)", 0.45..1.02),
        "model test AUC",
        &series,
        path,
    )
}
