//! The label holder's side of the model: its own top layers, the loss, and the defences of its
//! labels.
//!
//! In label-holder mode the server computes up to some activations `A = f(Z)` and sends them to
//! the label holder, whose [`TopLayers`] (an ordinary Burn module with its own optimiser)
//! compute the logits and the loss, keep their own gradients, and return only `∂L/∂A`. The
//! server never receives a label, a prediction, a loss or a metric unless the label holder's
//! [`LabelReports`] say so.
//!
//! `∂L/∂A` itself still carries the labels: for binary cross-entropy it is
//! `(σ(s_i) − y_i)/B · ∂s_i/∂a_i`, whose sign (a parameterless head), direction (a linear top
//! layer) and norm (imbalanced classes) separate the classes. [`LabelDefence`] perturbs it
//! before it leaves, and [`crate::attack::labels`] measures what is left.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use burn::nn::loss::{
    BinaryCrossEntropyLoss, BinaryCrossEntropyLossConfig, CrossEntropyLoss, CrossEntropyLossConfig,
    HuberLoss, HuberLossConfig, Reduction,
};
use burn::optim::ModuleOptimizer;
use burn::tensor::{Device, Tensor, TensorData, activation::sigmoid, activation::softmax};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use spnn_crypto::derive::derive_seed;
use spnn_crypto::rng::{standard_normal, uniform01};
use spnn_crypto::{SecretSeed, SecureRng};
use spnn_net::FloatMatrix;

use crate::error::{Result, SpnnError};
use crate::local::{LocalModel, LocalRunner, Runner};
use crate::messages::Metrics;
use crate::metrics::roc_auc;

/// One training batch at the label holder.
#[derive(Clone, Debug, PartialEq)]
pub struct HeadStep {
    /// The batch's loss.
    pub loss: f64,
    /// `∂L/∂A`, one row per sample.
    pub gradient: FloatMatrix,
    /// The largest norm a row of `gradient` could have **whatever the labels** — for binary
    /// cross-entropy on a logit `s_i` (mean over `B` rows), `max_i ‖∂s_i/∂a_i‖ / B`, since
    /// `|σ(s_i) − y_i| ≤ 1`; for cross-entropy over `C` logits, the row is
    /// `J_iᵀ(p_i − e_{y_i})/B` with `J_i = ∂s_i/∂a_i` and `p_i` the softmax, and the bound the
    /// largest distance between two rows of `J_i`, `max_i max_{k,c} ‖J_iᵀ(e_k − e_c)‖ / B`
    /// (`p_i − e_c` is a convex combination of the `e_k − e_c`; no prediction enters);
    /// for Huber loss with threshold `δ` on a prediction `ŷ_i`, `max_i ‖∂ŷ_i/∂a_i‖·δ / B`,
    /// since Huber's derivative is the residual clamped to `[−δ, δ]`. A function of the
    /// activations and the top layers only — not of this batch's labels given those, nor of
    /// the predictions (earlier labels trained the top layers, as they trained the server's
    /// own): the isotropic noise is scaled to it, so the noise level says nothing of them, and
    /// a batch whose rows the model gets exactly right (a zero gradient) still gets noise.
    pub bound: f64,
}

/// Computes the loss on the label holder. [`TopLayers`] is the one spnn ships; implement this
/// trait for another loss.
pub trait LabelHead: Send {
    /// Loss, gradient with respect to `activations` and its label-independent bound for a
    /// training batch; the head keeps its own parameters' gradients for [`LabelHead::update`].
    fn train_batch(&mut self, activations: &FloatMatrix, labels: &[f32]) -> Result<HeadStep>;
    /// Scores (the positive class's probability, every class's, or a regression's prediction,
    /// row by row) of an evaluation batch and, given its labels, its loss; with labels, the
    /// predictions are kept for [`LabelHead::take_metrics`].
    /// Without labels (new records being scored) only the scores are computed.
    fn eval_batch(
        &mut self,
        activations: &FloatMatrix,
        labels: Option<&[f32]>,
    ) -> Result<(Vec<f32>, Option<f64>)>;
    /// Applies the head's own parameter update with the session's learning rate.
    fn update(&mut self, lr: f64) -> Result<()>;
    /// Metrics of the evaluation batches since the last call.
    fn take_metrics(&mut self) -> Metrics;
    /// The head's state (parameters and optimiser), for the label holder's checkpoint.
    fn save(&self) -> Result<Vec<u8>>;
    /// Restores a state written by [`LabelHead::save`].
    fn load(&mut self, state: Vec<u8>) -> Result<()>;
    /// The number of classes (2 for a binary head): the labels must be the class numbers
    /// `0 … classes − 1`, and randomised response draws from them. `None` for a regression:
    /// the labels are finite numbers, and randomised response is refused (it has no classes
    /// to draw from).
    fn classes(&self) -> Option<usize>;
}

/// The label holder's top layers: a Burn model `M` from the server's activations `[B, a]` to
/// one logit `[B, 1]` (binary: sigmoid and binary cross-entropy), `C` logits `[B, C]`
/// ([`TopLayers::multiclass`]: softmax and cross-entropy) or one prediction `[B, 1]`
/// ([`TopLayers::regression`]: Huber loss with a public threshold `δ`), the loss a mean over
/// the batch, trained by the label holder's own Burn optimiser with the session's learning
/// rate. Scores are the positive class's probability, every class's, or the prediction.
///
/// The defence's bound ([`HeadStep::bound`]) takes the Jacobian of each row's outputs in its
/// own activations: `M` must compute every row on its own and deterministically in training
/// (no batch normalisation, no dropout in the top layers); rows beyond the bound are clipped
/// to it before they leave ([`LabelDefence::perturb`]), so the noise's scale never depends on
/// the labels.
pub struct TopLayers<M: LocalModel> {
    runner: Runner<M>,
    task: HeadTask,
    scores: Vec<f32>,
    labels: Vec<f32>,
    loss_sum: f64,
}

/// What a [`TopLayers`] predicts, with its loss.
enum HeadTask {
    /// One logit, binary cross-entropy.
    Binary(BinaryCrossEntropyLoss),
    /// One logit per class, cross-entropy.
    Classes(usize, CrossEntropyLoss),
    /// One prediction, Huber loss.
    Regression(HuberLoss),
}

impl HeadTask {
    /// Outputs per sample.
    fn width(&self) -> usize {
        match self {
            Self::Binary(_) | Self::Regression(_) => 1,
            Self::Classes(c, _) => *c,
        }
    }

    /// A bound on the norm of a sample's gradient row `J_iᵀ·∂L_i/∂s_i` (before the batch mean)
    /// whatever its label, from its Jacobian `j` (`width × cols`, row-major) alone — not from
    /// its prediction, which the noise scale would otherwise show the server: `‖J_i‖` for a
    /// binary logit (`|σ(s) − y| ≤ 1`); `δ·‖J_i‖` for a regression (`|clamp(r)| ≤ δ`); over
    /// classes, the largest distance between two rows of `J_i`, `max_{k,c} ‖J_iᵀ(e_k − e_c)‖`,
    /// since `p − e_c = Σ_k p_k (e_k − e_c)` is a convex combination (`O(C²·cols)` per row). `NaN`
    /// if any entry is not finite.
    fn row_bound(&self, j: &[f32], cols: usize) -> f64 {
        if j.iter().any(|v| !v.is_finite()) {
            return f64::NAN;
        }
        let norm = || j.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>().sqrt();
        match self {
            Self::Binary(_) => norm(),
            Self::Regression(h) => f64::from(h.delta) * norm(),
            Self::Classes(..) => {
                let rows: Vec<&[f32]> = j.chunks(cols.max(1)).collect();
                let mut widest: f64 = 0.0;
                for (k, a) in rows.iter().enumerate() {
                    for b in &rows[k + 1..] {
                        let d: f64 = a
                            .iter()
                            .zip(*b)
                            .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
                            .sum();
                        widest = widest.max(d);
                    }
                }
                widest.sqrt()
            }
        }
    }

    /// Checks `labels` as this task's ([`label_fits`]; a binary head reads `y > 0.5` as
    /// class 1), and refuses an empty batch (its mean loss is not a number).
    fn check_labels(&self, labels: &[f32]) -> Result<()> {
        if labels.is_empty() {
            return Err(SpnnError::Config(
                "an empty batch at the label holder".into(),
            ));
        }
        let classes = match self {
            Self::Binary(_) => return Ok(()),
            Self::Classes(c, _) => Some(*c),
            Self::Regression(_) => None,
        };
        match labels.iter().find(|&&y| !label_fits(classes, y)) {
            Some(&y) => Err(SpnnError::Config(format!(
                "label {y} is not {}",
                expected_label(classes)
            ))),
            None => Ok(()),
        }
    }

    /// The batch loss (a mean) of `outputs` against `labels`, checked by
    /// [`HeadTask::check_labels`] beforehand.
    fn loss(&self, outputs: Tensor<2>, labels: &[f32]) -> Tensor<1> {
        let device = outputs.device();
        let n = labels.len();
        match self {
            Self::Binary(bce) => {
                let ints: Vec<i64> = labels.iter().map(|&y| i64::from(y > 0.5)).collect();
                bce.forward(
                    outputs,
                    Tensor::from_data(TensorData::new(ints, [n, 1]), &device),
                )
            }
            Self::Classes(_, ce) => {
                let ints: Vec<i64> = labels.iter().map(|&y| y as i64).collect();
                ce.forward(
                    outputs,
                    Tensor::from_data(TensorData::new(ints, [n]), &device),
                )
            }
            Self::Regression(huber) => {
                let t = Tensor::<2>::from_data(TensorData::new(labels.to_vec(), [n, 1]), &device);
                huber.forward(outputs, t, Reduction::Mean)
            }
        }
    }
}

/// The largest label magnitude a regression head accepts (and the largest Huber threshold):
/// beyond it the residuals' squares and sums, computed in `f32`, may overflow, and a session
/// would stop at the batch holding such a label.
pub const MAX_REGRESSION_LABEL: f64 = 1e15;

/// Whether `y` is a label of a head with `classes` classes (one of `0 … classes − 1`) or, for
/// `None`, of a regression (finite, at most [`MAX_REGRESSION_LABEL`] in magnitude).
pub(crate) fn label_fits(classes: Option<usize>, y: f32) -> bool {
    match classes {
        Some(c) => y >= 0.0 && y.fract() == 0.0 && (y as usize) < c,
        None => y.is_finite() && f64::from(y.abs()) <= MAX_REGRESSION_LABEL,
    }
}

/// What [`label_fits`] expects, for error messages.
pub(crate) fn expected_label(classes: Option<usize>) -> String {
    match classes {
        Some(c) => format!("a class 0 … {} of the label holder's head", c - 1),
        None => format!("a finite number within ±{MAX_REGRESSION_LABEL:e} (a regression)"),
    }
}

/// Burn's Huber loss with threshold `delta`, checked: positive, normal in `f32` (a tiny `δ`
/// would round to 0 and silently stop training) and at most [`MAX_REGRESSION_LABEL`].
pub fn huber_loss(delta: f64) -> Result<HuberLoss> {
    let ok = delta > 0.0 && delta <= MAX_REGRESSION_LABEL && (delta as f32).is_normal();
    if !ok {
        return Err(SpnnError::Config(format!(
            "the Huber threshold δ must be a positive number that f32 represents, at most \
             {MAX_REGRESSION_LABEL:e}; got {delta}"
        )));
    }
    Ok(HuberLossConfig::new(delta as f32).init())
}

impl<M: LocalModel> TopLayers<M> {
    /// Binary top layers `model` (one logit), trained by `optim` on the autodiff `device` (as
    /// for a bottom model).
    pub fn new(model: M, optim: ModuleOptimizer, device: Device) -> Self {
        let plain = device.clone().inner();
        let loss = BinaryCrossEntropyLossConfig::new()
            .with_logits(true)
            .init(&plain);
        Self::with_task(model, optim, device, HeadTask::Binary(loss))
    }

    /// Top layers with `classes ≥ 2` logits, softmax and cross-entropy; labels are the class
    /// numbers `0 … classes − 1`.
    pub fn multiclass(model: M, optim: ModuleOptimizer, device: Device, classes: usize) -> Self {
        let ce = CrossEntropyLossConfig::new().init(&device.clone().inner());
        Self::with_task(model, optim, device, HeadTask::Classes(classes.max(2), ce))
    }

    /// Regression top layers: one prediction per sample, Huber loss with threshold `delta` (in
    /// the labels' units; half the squared error for residuals within `delta`, linear beyond),
    /// labels finite numbers within ±[`MAX_REGRESSION_LABEL`]. `delta` is public — it sets the
    /// defence's noise scale ([`HeadStep::bound`]); a squared error has no label-independent
    /// bound, which is why a regression at the label holder trains on Huber loss. Refused as
    /// [`huber_loss`] refuses it.
    pub fn regression(
        model: M,
        optim: ModuleOptimizer,
        device: Device,
        delta: f64,
    ) -> Result<Self> {
        let huber = huber_loss(delta)?;
        Ok(Self::with_task(
            model,
            optim,
            device,
            HeadTask::Regression(huber),
        ))
    }

    fn with_task(model: M, optim: ModuleOptimizer, device: Device, task: HeadTask) -> Self {
        Self {
            runner: Runner::new(model, optim, device),
            task,
            scores: Vec::new(),
            labels: Vec::new(),
            loss_sum: 0.0,
        }
    }

    fn check_rows(activations: &FloatMatrix, labels: &[f32]) -> Result<()> {
        if activations.rows != labels.len() {
            return Err(SpnnError::Config(format!(
                "{} activation rows for {} labels",
                activations.rows,
                labels.len()
            )));
        }
        Ok(())
    }

    fn width_error(&self, rows: usize, cols: usize) -> SpnnError {
        SpnnError::Config(format!(
            "the top layers must give {} output(s) per sample, gave {rows}x{cols}",
            self.task.width()
        ))
    }
}

impl<M: LocalModel> LabelHead for TopLayers<M> {
    fn train_batch(&mut self, activations: &FloatMatrix, labels: &[f32]) -> Result<HeadStep> {
        Self::check_rows(activations, labels)?;
        // Refuse a bad label before anything trains on it.
        self.task.check_labels(labels)?;
        let (task, width) = (&self.task, self.task.width());
        let mut shape = None;
        let out = self.runner.train_top(activations.clone(), |outputs| {
            if let [rows, cols] = outputs.dims()
                && cols != width
            {
                shape = Some((rows, cols));
                // No loss on outputs of the wrong width: the error is returned below.
                return outputs.sum().mul_scalar(0.0);
            }
            task.loss(outputs, labels)
        });
        if let Some((rows, cols)) = shape {
            return Err(self.width_error(rows, cols));
        }
        let (loss, gradient) = out?;
        // A row is J_iᵀ·∂L_i/∂s_i / B with J_i = ∂s_i/∂a_i: the batch's bound is the largest
        // row bound over its rows, for the batch mean.
        let cols = activations.cols;
        let jacobians = self.runner.output_jacobians(activations)?;
        if jacobians.len() != activations.rows * width * cols {
            return Err(SpnnError::Tensor(format!(
                "{} Jacobian entries for {} rows of {width} outputs and {cols} inputs",
                jacobians.len(),
                activations.rows
            )));
        }
        let mut largest: f64 = 0.0;
        for j in jacobians.chunks((width * cols).max(1)) {
            let b = self.task.row_bound(j, cols);
            if !b.is_finite() {
                return Err(SpnnError::NonFinite("label-independent gradient bound"));
            }
            largest = largest.max(b);
        }
        Ok(HeadStep {
            loss,
            gradient,
            bound: largest / labels.len().max(1) as f64,
        })
    }

    fn eval_batch(
        &mut self,
        activations: &FloatMatrix,
        labels: Option<&[f32]>,
    ) -> Result<(Vec<f32>, Option<f64>)> {
        if let Some(labels) = labels {
            Self::check_rows(activations, labels)?;
            self.task.check_labels(labels)?;
        }
        let outputs =
            self.runner
                .infer(activations.data.clone(), activations.rows, activations.cols);
        if let [rows, cols] = outputs.dims()
            && cols != self.task.width()
        {
            return Err(self.width_error(rows, cols));
        }
        let scores = match self.task {
            HeadTask::Binary(_) => crate::tensor::to_vec(sigmoid(outputs.clone()))?,
            HeadTask::Classes(..) => crate::tensor::to_vec(softmax(outputs.clone(), 1))?,
            HeadTask::Regression(_) => crate::tensor::to_vec(outputs.clone())?,
        };
        let Some(labels) = labels else {
            return Ok((scores, None));
        };
        let loss = crate::tensor::scalar(self.task.loss(outputs, labels))?;
        self.scores.extend_from_slice(&scores);
        self.labels.extend_from_slice(labels);
        self.loss_sum += loss * labels.len() as f64;
        Ok((scores, Some(loss)))
    }

    fn update(&mut self, lr: f64) -> Result<()> {
        self.runner.update(lr)
    }

    fn take_metrics(&mut self) -> Metrics {
        let (scores, labels) = (
            std::mem::take(&mut self.scores),
            std::mem::take(&mut self.labels),
        );
        let loss_sum = std::mem::take(&mut self.loss_sum);
        let count = labels.len() as u64;
        let mean = |total: f64| if count > 0 { total / count as f64 } else { 0.0 };
        // No RMSE of nothing: a 0 would read as a perfect model.
        let mut m = Metrics {
            auc: 0.5,
            accuracy: 0.0,
            rmse: None,
            loss: mean(loss_sum),
            count,
        };
        match &self.task {
            HeadTask::Binary(_) => {
                m.auc = roc_auc(&scores, &labels);
                let right = scores
                    .iter()
                    .zip(&labels)
                    .filter(|(p, y)| f32::from(**p > 0.5) == **y);
                m.accuracy = mean(right.count() as f64);
            }
            HeadTask::Classes(width, _) => {
                let rows = || scores.chunks(*width);
                let right = rows()
                    .zip(&labels)
                    .filter(|(row, y)| crate::metrics::argmax(row) as f32 == **y);
                m.accuracy = mean(right.count() as f64);
                // One class against the rest, averaged over the classes present in and out
                // (macro; an absent class has no AUC): for two classes, the binary AUC.
                let aucs: Vec<f64> = (0..*width)
                    .filter_map(|c| {
                        let is_c: Vec<f32> =
                            labels.iter().map(|&y| f32::from(y == c as f32)).collect();
                        let n = is_c.iter().filter(|&&v| v > 0.5).count();
                        (n > 0 && n < is_c.len()).then(|| {
                            let p: Vec<f32> = rows().map(|r| r[c]).collect();
                            roc_auc(&p, &is_c)
                        })
                    })
                    .collect();
                if !aucs.is_empty() {
                    m.auc = aucs.iter().sum::<f64>() / aucs.len() as f64;
                }
            }
            HeadTask::Regression(_) => {
                let se: f64 = scores
                    .iter()
                    .zip(&labels)
                    .map(|(p, y)| (f64::from(*p) - f64::from(*y)).powi(2))
                    .sum();
                m.rmse = (count > 0).then(|| mean(se).sqrt());
            }
        }
        m
    }

    fn save(&self) -> Result<Vec<u8>> {
        self.runner.save()
    }

    fn load(&mut self, state: Vec<u8>) -> Result<()> {
        self.runner.load(&state)
    }

    fn classes(&self) -> Option<usize> {
        match self.task {
            HeadTask::Binary(_) => Some(2),
            HeadTask::Classes(c, _) => Some(c),
            HeadTask::Regression(_) => None,
        }
    }
}

/// How the label holder perturbs what it sends the server during training. Each knob trades
/// model quality for label privacy; [`crate::attack::labels`] measures the trade, and the
/// guide's security chapter shows the curves.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LabelDefence {
    /// Isotropic Gaussian noise added to every row of `∂L/∂A`, with standard deviation per
    /// coordinate `gradient_noise · bound / √a`, where `bound` is the largest norm a row of
    /// the batch's gradient could have whatever the labels ([`HeadStep::bound`]; so the noise
    /// vector's norm is about `gradient_noise` times it). `0` adds none.
    pub gradient_noise: f64,
    /// Draw each sample's noise direction once for the whole run (from the label holder's
    /// secret and the sample id) instead of afresh at every release. Fresh noise averages away
    /// when the server averages one sample's gradients over epochs (by `√T` over `T`
    /// releases); a fixed direction, scaled anew each time, does not. Off by default: the
    /// server's layers fit the fixed per-sample noise, which costs accuracy (at the default
    /// level −0.0066 test AUC on breast cancer against +0.0003 with fresh noise; the guide's
    /// label chapter).
    pub persistent_noise: bool,
    /// The max-norm heuristic of Li et al. (ICLR 2022): every row gets extra Gaussian noise
    /// whose expected squared norm lifts it to the batch's largest, so row norms no longer
    /// separate the classes.
    pub max_norm: bool,
    /// Randomised response with this `ε`: before training, each sample's label is replaced
    /// by another class with probability `(C − 1)/(e^ε + C − 1)` (flipped with `1/(1 + e^ε)`
    /// for two classes), uniformly among the others, once per sample for the whole run, and
    /// training sees only those labels. Everything the server receives during training is then a function of
    /// the features and the flipped labels, so it is `ε`-label-differentially private
    /// (post-processing); evaluation uses the true labels and reports nothing unless
    /// [`LabelReports`] say so.
    pub randomised_response: Option<f64>,
}

impl Default for LabelDefence {
    /// The default defence: isotropic noise at [`DEFAULT_GRADIENT_NOISE`], the smallest level
    /// of the label-leakage benchmark that held both attacks at or under 0.6 AUC on both data
    /// sets (the guide's security chapter shows the measurement and its cost).
    fn default() -> Self {
        Self {
            gradient_noise: DEFAULT_GRADIENT_NOISE,
            persistent_noise: false,
            max_norm: false,
            randomised_response: None,
        }
    }
}

/// The default [`LabelDefence::gradient_noise`].
pub const DEFAULT_GRADIENT_NOISE: f64 = 4.0;

impl LabelDefence {
    /// No perturbation. **Leaks labels**: the server recovers them from the gradients it
    /// receives (the sign, direction and norm attacks of [`crate::attack::labels`]). For
    /// baselines and for label holders who accept that.
    pub fn undefended() -> Self {
        Self {
            gradient_noise: 0.0,
            persistent_noise: false,
            max_norm: false,
            randomised_response: None,
        }
    }

    /// The same with isotropic gradient noise `multiplier` (see
    /// [`LabelDefence::gradient_noise`]).
    pub fn with_gradient_noise(mut self, multiplier: f64) -> Self {
        self.gradient_noise = multiplier;
        self
    }

    /// The same with persistent noise on or off (see [`LabelDefence::persistent_noise`]).
    pub fn with_persistent_noise(mut self, on: bool) -> Self {
        self.persistent_noise = on;
        self
    }

    /// The same with the max-norm heuristic on or off.
    pub fn with_max_norm(mut self, on: bool) -> Self {
        self.max_norm = on;
        self
    }

    /// The same with randomised response at `epsilon`.
    pub fn with_randomised_response(mut self, epsilon: f64) -> Self {
        self.randomised_response = Some(epsilon);
        self
    }

    /// Refuses values that would not protect or would not compute.
    pub fn validate(&self) -> Result<()> {
        if !(self.gradient_noise.is_finite() && self.gradient_noise >= 0.0) {
            return Err(SpnnError::Config(format!(
                "label defence: gradient_noise must be finite and ≥ 0, got {}",
                self.gradient_noise
            )));
        }
        if let Some(e) = self.randomised_response
            && !(e.is_finite() && e > 0.0)
        {
            return Err(SpnnError::Config(format!(
                "label defence: randomised_response ε must be finite and > 0, got {e}"
            )));
        }
        Ok(())
    }

    /// The probability that randomised response flips a binary label (`0` without it).
    pub fn flip_probability(&self) -> f64 {
        self.flip_probability_among(2)
    }

    /// The probability that randomised response over `classes` classes replaces a label by
    /// another (`(C − 1)/(e^ε + C − 1)`: `ε`-label-DP; `1/(1 + e^ε)` for two classes).
    pub fn flip_probability_among(&self, classes: usize) -> f64 {
        let others = classes.max(2) as f64 - 1.0;
        self.randomised_response
            .map_or(0.0, |e| others / (e.exp() + others))
    }

    /// The labels training sees: `labels` of `ids`, each replaced by randomised response over
    /// `classes` classes with a coin fixed per sample by `seed` (the label holder's secret): a
    /// binary label flips, a class becomes one of the others, uniformly.
    pub fn training_labels(
        &self,
        seed: &SecretSeed,
        ids: &[u64],
        labels: &[f32],
        classes: usize,
    ) -> Vec<f32> {
        let p = self.flip_probability_among(classes);
        if p == 0.0 {
            return labels.to_vec();
        }
        ids.iter()
            .zip(labels)
            .map(|(&id, &y)| {
                let mut coin =
                    SecureRng::from_secret_seed(&derive_seed(seed, "randomised-response", id, 0));
                if uniform01(&mut coin) >= p {
                    y
                } else if classes <= 2 {
                    1.0 - f32::from(y > 0.5)
                } else {
                    // One of the other classes, uniformly: skip y's own number.
                    let other =
                        ((uniform01(&mut coin) * (classes - 1) as f64) as usize).min(classes - 2);
                    let other = if other as f32 >= y { other + 1 } else { other };
                    other as f32
                }
            })
            .collect()
    }

    /// The gradient as it leaves the label holder: `g` (rows for samples `ids`), each row
    /// clipped to `bound`, plus the configured noise, isotropic at `gradient_noise · bound`
    /// (see [`HeadStep::bound`]: a label-independent bound on the rows' norms, which must be
    /// finite); persistent noise is derived from `secret`, fresh noise from `rng`.
    pub fn perturb(
        &self,
        g: FloatMatrix,
        ids: &[u64],
        secret: &SecretSeed,
        rng: &mut impl RngCore,
        bound: f64,
    ) -> Result<FloatMatrix> {
        if self.gradient_noise == 0.0 && !self.max_norm {
            return Ok(g);
        }
        let cols = g.cols.max(1);
        let norms: Vec<f64> = g
            .data
            .chunks(cols)
            .map(|r| r.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>())
            .collect();
        if !(bound.is_finite() && bound >= 0.0) {
            return Err(SpnnError::NonFinite("label-independent gradient bound"));
        }
        // A row beyond the bound (a head whose bound falls short, or rounding) is clipped to
        // it, so the noise's scale is the bound's alone, whatever the labels.
        let mut g = g;
        let mut norms = norms;
        for (row, sq) in g.data.chunks_mut(cols).zip(norms.iter_mut()) {
            if *sq > bound * bound {
                let shrink = if *sq > 0.0 { bound / sq.sqrt() } else { 0.0 };
                row.iter_mut()
                    .for_each(|v| *v = (f64::from(*v) * shrink) as f32);
                *sq = bound * bound;
            }
        }
        let max_sq = norms.iter().copied().fold(0.0, f64::max);
        let scale_sq = bound * bound;
        let dim = cols as f64;
        let iso_var = self.gradient_noise * self.gradient_noise * scale_sq / dim;
        if ids.len() != g.rows {
            return Err(SpnnError::Config(format!(
                "{} ids for a gradient of {} rows",
                ids.len(),
                g.rows
            )));
        }
        let mut data = g.data;
        for ((row, sq), &id) in data.chunks_mut(cols).zip(&norms).zip(ids) {
            let lift = if self.max_norm {
                (max_sq - sq).max(0.0) / dim
            } else {
                0.0
            };
            let sd = (iso_var + lift).sqrt();
            let z: Vec<f64> = if self.persistent_noise {
                let mut own =
                    SecureRng::from_secret_seed(&derive_seed(secret, "label-noise", id, 0));
                (0..cols).map(|_| standard_normal(&mut own)).collect()
            } else {
                (0..cols).map(|_| standard_normal(rng)).collect()
            };
            for (v, z) in row.iter_mut().zip(z) {
                *v += (sd * z) as f32;
            }
        }
        FloatMatrix::new(g.rows, g.cols, data).map_err(|_| SpnnError::NonFinite("head gradient"))
    }
}

/// What the label holder tells the server besides the gradient. Both off by default: a batch
/// loss is a function of that batch's labels, and metrics over ids the server chooses (two
/// samples, say) reveal how their labels compare.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelReports {
    /// Send each batch's mean loss.
    pub loss: bool,
    /// Send the evaluation metrics (AUC and accuracy, or RMSE; loss, sample count) when the server asks
    /// (`Command::Evaluate`).
    pub metrics: bool,
}

impl LabelReports {
    /// Report losses and metrics to the server. **Leaks** label information (see
    /// [`LabelReports`]).
    pub fn everything() -> Self {
        Self {
            loss: true,
            metrics: true,
        }
    }
}

/// The evaluation metrics the label holder computed, in order: its own record, whatever it
/// reports to the server. Clone the handle to read it from the label holder's program.
#[derive(Clone, Debug, Default)]
pub struct MetricsLog(Arc<Mutex<Vec<Metrics>>>);

impl MetricsLog {
    pub(crate) fn push(&self, m: Metrics) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(m);
    }

    /// Every evaluation so far.
    pub fn all(&self) -> Vec<Metrics> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The latest evaluation.
    pub fn last(&self) -> Option<Metrics> {
        self.all().last().copied()
    }
}

/// The label holder's latest scores of every sample it scored outside training — the test set
/// at each evaluation, the records of a prediction session — by sample id: the positive class's
/// probability (binary), or every class's. Only the label holder has them. Clone the handle to
/// read them.
#[derive(Clone, Debug, Default)]
pub struct ScoreLog(Arc<Mutex<BTreeMap<u64, Vec<f32>>>>);

impl ScoreLog {
    /// Records `scores`, `scores.len() / ids.len()` per id in order.
    pub(crate) fn record(&self, ids: &[u64], scores: &[f32]) {
        let width = (scores.len() / ids.len().max(1)).max(1);
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.extend(
            ids.iter()
                .copied()
                .zip(scores.chunks(width).map(<[f32]>::to_vec)),
        );
    }

    /// `(id, scores)` of every sample scored so far, by id.
    pub fn all(&self) -> Vec<(u64, Vec<f32>)> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.iter().map(|(&id, s)| (id, s.clone())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn randomised_response_flips_at_its_rate_and_once_per_sample() {
        let d = LabelDefence::undefended().with_randomised_response(1.0);
        let p = d.flip_probability();
        assert!((p - 1.0 / (1.0 + 1f64.exp())).abs() < 1e-15);
        let seed = SecureRng::from_os_entropy().secret_seed();
        let ids: Vec<u64> = (0..20_000).collect();
        let y: Vec<f32> = ids.iter().map(|&i| (i % 2) as f32).collect();
        let a = d.training_labels(&seed, &ids, &y, 2);
        let flipped = a.iter().zip(&y).filter(|(a, y)| a != y).count() as f64;
        // Binomial(20000, p): four standard deviations.
        let sd = (20_000.0 * p * (1.0 - p)).sqrt();
        assert!((flipped - 20_000.0 * p).abs() < 4.0 * sd, "{flipped} flips");
        // The same coin for the same sample, in any batch order: epochs cannot be averaged.
        let rev: Vec<u64> = ids.iter().rev().copied().collect();
        let yrev: Vec<f32> = y.iter().rev().copied().collect();
        let b = d.training_labels(&seed, &rev, &yrev, 2);
        assert!(b.iter().rev().eq(a.iter()));
        // Without randomised response, the labels are untouched.
        assert_eq!(
            LabelDefence::default().training_labels(&seed, &ids, &y, 2),
            y
        );
    }

    /// A batch of one that the top layer saturates has an exactly zero gradient when its label
    /// agrees: scaled to the released rows, the noise would vanish and a zero would give the
    /// label away. Scaled to the label-independent bound, the noise is the same for either
    /// label, and never zero.
    #[test]
    fn a_saturated_batch_still_gets_noise_and_its_scale_ignores_the_label() {
        use burn::nn::LinearConfig;
        let device = Device::flex().autodiff();
        let top = LinearConfig::new(4, 1).init(&device);
        let w: Vec<f32> = crate::tensor::to_vec(top.weight.val().clone().inner()).unwrap();
        let w_norm = w.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>().sqrt();
        let mut head = TopLayers::new(top, burn::optim::SgdConfig::new().init(), device);
        // Activations far along w: the logit saturates, σ(s) = 1 in f32.
        let act = FloatMatrix::new(1, 4, w.iter().map(|v| v * 1e4).collect()).unwrap();
        let agree = head.train_batch(&act, &[1.0]).unwrap();
        let disagree = head.train_batch(&act, &[0.0]).unwrap();
        assert!(agree.gradient.data.iter().all(|&v| v == 0.0), "{agree:?}");
        assert!(disagree.gradient.data.iter().any(|&v| v != 0.0));
        assert_eq!(agree.bound, disagree.bound);
        assert!(
            (agree.bound - w_norm).abs() < 1e-4 * w_norm,
            "{} vs {w_norm}",
            agree.bound
        );
        let mut rng = SecureRng::from_os_entropy();
        let secret = rng.secret_seed();
        let sent = LabelDefence::default()
            .perturb(agree.gradient, &[3], &secret, &mut rng, agree.bound)
            .unwrap();
        let norm = sent
            .data
            .iter()
            .map(|v| f64::from(*v).powi(2))
            .sum::<f64>()
            .sqrt();
        // ‖noise‖ ≈ 8·‖w‖ in 4 dimensions (χ with 4 degrees of freedom: above 0.05·mean
        // with probability > 1 − 10⁻⁵).
        assert!(norm > 0.4 * w_norm, "noise {norm} for bound {w_norm}");
        // A row beyond the bound is clipped to it: with no noise, exactly the bound's norm.
        let g = FloatMatrix::new(1, 4, vec![3.0, 4.0, 0.0, 0.0]).unwrap();
        let sent = LabelDefence::undefended()
            .with_max_norm(true)
            .perturb(g, &[1], &secret, &mut rng, 1.0)
            .unwrap();
        assert_eq!(sent.data, vec![0.6, 0.8, 0.0, 0.0]);
        let bad = LabelDefence::default().perturb(
            FloatMatrix::new(1, 1, vec![0.0]).unwrap(),
            &[1],
            &secret,
            &mut rng,
            f64::NAN,
        );
        assert!(bad.is_err());
    }

    /// Over `C = 3` classes the returned rows are `J_iᵀ(p_i − e_{y_i})/B`: the bound covers
    /// every row for every label, is the same whatever the labels, and through a linear top is
    /// the largest distance between two columns of its weight over `B` — whatever the
    /// activations, so it says nothing of the predictions either.
    #[test]
    fn the_multiclass_bound_covers_every_label_and_ignores_them() {
        use burn::nn::LinearConfig;
        let device = Device::flex().autodiff();
        let top = LinearConfig::new(4, 3).init(&device);
        // Burn's weight is [inputs, outputs]: output k's Jacobian row is column k.
        let w: Vec<f32> = crate::tensor::to_vec(top.weight.val().clone().inner()).unwrap();
        let column = |k: usize| -> Vec<f64> { (0..4).map(|i| f64::from(w[i * 3 + k])).collect() };
        let diameter = [(0, 1), (0, 2), (1, 2)]
            .iter()
            .map(|&(k, c)| {
                column(k)
                    .iter()
                    .zip(column(c))
                    .map(|(a, b)| (a - b).powi(2))
                    .sum::<f64>()
                    .sqrt()
            })
            .fold(0.0, f64::max);
        let mut head = TopLayers::multiclass(top, burn::optim::SgdConfig::new().init(), device, 3);
        assert_eq!(head.classes(), Some(3));
        let act = FloatMatrix::new(2, 4, vec![0.5, -1.0, 2.0, 0.1, -0.3, 0.8, 0.0, 1.5]).unwrap();
        let mut bounds = Vec::new();
        let mut largest: f64 = 0.0;
        for a in 0..3 {
            for b in 0..3 {
                let step = head.train_batch(&act, &[a as f32, b as f32]).unwrap();
                largest = largest.max(largest_row_within_bound(&step));
                bounds.push(step.bound);
            }
        }
        assert!(bounds.windows(2).all(|w| w[0] == w[1]), "{bounds:?}");
        assert!(largest > 0.0);
        assert!(
            (bounds[0] - diameter / 2.0).abs() <= 1e-6 * diameter,
            "{} vs {diameter}/2",
            bounds[0]
        );
        // Other activations, confident or not: the same bound.
        let far = FloatMatrix::new(2, 4, act.data.iter().map(|v| v * 1e3).collect()).unwrap();
        assert_eq!(
            head.train_batch(&far, &[0.0, 1.0]).unwrap().bound,
            bounds[0]
        );
        // Labels that are not classes are refused before anything trains.
        assert!(head.train_batch(&act, &[0.0, 3.0]).is_err());
        assert!(head.train_batch(&act, &[0.5, 1.0]).is_err());
        // Scores: every class's probability, summing to 1.
        let (scores, loss) = head.eval_batch(&act, Some(&[0.0, 2.0])).unwrap();
        assert_eq!(scores.len(), 6);
        assert!(
            scores
                .chunks(3)
                .all(|r| (r.iter().sum::<f32>() - 1.0).abs() < 1e-5)
        );
        assert!(loss.unwrap() > 0.0);
        let m = head.take_metrics();
        assert!((0.0..=1.0).contains(&m.auc) && (0.0..=1.0).contains(&m.accuracy) && m.count == 2);
    }

    /// A two-layer ReLU top, `4 → 6 → outputs`: its Jacobian depends on the row.
    #[derive(burn::module::Module, Debug)]
    struct Two {
        a: burn::nn::Linear,
        b: burn::nn::Linear,
    }

    impl LocalModel for Two {
        fn forward(&self, x: Tensor<2>) -> Tensor<2> {
            self.b
                .forward(burn::tensor::activation::relu(self.a.forward(x)))
        }
    }

    /// A [`Two`] with `outputs` outputs and five random rows of activations for it.
    fn two_layer_top(outputs: usize, device: &Device) -> (Two, FloatMatrix) {
        use burn::nn::LinearConfig;
        let model = Two {
            a: LinearConfig::new(4, 6).init(device),
            b: LinearConfig::new(6, outputs).init(device),
        };
        let mut rng = SecureRng::insecure_from_seed_for_tests(5);
        let x: Vec<f32> = (0..20)
            .map(|_| (uniform01(&mut rng) * 4.0 - 2.0) as f32)
            .collect();
        (model, FloatMatrix::new(5, 4, x).unwrap())
    }

    /// The largest bound of `act`'s rows, each on its own as a batch of one labelled `label`
    /// (the bound ignores it): what the batch's bound must be times the batch size.
    fn row_by_row(head: &mut TopLayers<Two>, act: &FloatMatrix, label: f32) -> f64 {
        act.data
            .chunks(act.cols)
            .map(|r| {
                let one = FloatMatrix::new(1, act.cols, r.to_vec()).unwrap();
                head.train_batch(&one, &[label]).unwrap().bound
            })
            .fold(0.0, f64::max)
    }

    /// Through a two-layer ReLU top the batch's bound equals the one computed row by row on
    /// batches of one, and covers every row under every labelling tried.
    #[test]
    fn the_multiclass_bound_holds_through_a_nonlinear_top() {
        let device = Device::flex().autodiff();
        let (model, act) = two_layer_top(3, &device);
        let mut head =
            TopLayers::multiclass(model, burn::optim::SgdConfig::new().init(), device, 3);
        let expected = row_by_row(&mut head, &act, 0.0) / 5.0;
        let mut rng = SecureRng::insecure_from_seed_for_tests(6);
        for _ in 0..20 {
            let y: Vec<f32> = (0..5)
                .map(|_| (uniform01(&mut rng) * 3.0).floor() as f32)
                .collect();
            bound_is(&head.train_batch(&act, &y).unwrap(), expected);
        }
    }

    /// A regression's rows are `∂ŷ_i/∂a_i · clamp(ŷ_i − y_i, ±δ)/B`: the bound
    /// `max_i ‖∂ŷ_i/∂a_i‖·δ/B` is the same whatever the labels, covers every row, and is reached
    /// by labels far enough from the predictions (the clamp is active); bad labels and
    /// thresholds are refused; evaluation gives the predictions and their RMSE.
    #[test]
    fn the_regression_bound_covers_every_label_and_ignores_them() {
        let device = Device::flex().autodiff();
        let (model, act) = two_layer_top(1, &device);
        let optim = || burn::optim::SgdConfig::new().init();
        // A δ that rounds to 0 in f32, or beyond the label range, is refused too.
        for delta in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e-50, 1e16] {
            assert!(TopLayers::regression(model.clone(), optim(), device.clone(), delta).is_err());
        }
        let delta = 0.5;
        let mut head = TopLayers::regression(model, optim(), device, delta).unwrap();
        assert_eq!(head.classes(), None);
        let expected = row_by_row(&mut head, &act, 0.0) / 5.0;
        let mut rng = SecureRng::insecure_from_seed_for_tests(7);
        let mut largest: f64 = 0.0;
        for spread in [0.1, 1.0, 100.0, 1e6] {
            let y: Vec<f32> = (0..5)
                .map(|_| ((uniform01(&mut rng) * 2.0 - 1.0) * spread) as f32)
                .collect();
            largest = largest.max(bound_is(&head.train_batch(&act, &y).unwrap(), expected));
        }
        // Labels a million away clamp every residual at ±δ: the widest row reaches the bound.
        assert!(
            largest >= expected * (1.0 - 1e-4),
            "{largest} vs {expected}"
        );
        assert!(
            head.train_batch(&act, &[0.0, 1.0, f32::NAN, 0.0, 0.0])
                .is_err()
        );
        assert!(head.train_batch(&act, &[0.0; 4]).is_err());
        // Scores are the predictions; the metrics their RMSE against the labels.
        let y = [1.0, -2.0, 0.5, 3.0, 0.0];
        let (pred, loss) = head.eval_batch(&act, Some(&y)).unwrap();
        assert_eq!(pred.len(), 5);
        assert!(loss.unwrap() > 0.0);
        let rmse = (pred
            .iter()
            .zip(y)
            .map(|(p, y)| (f64::from(*p) - f64::from(y)).powi(2))
            .sum::<f64>()
            / 5.0)
            .sqrt();
        let m = head.take_metrics();
        assert_eq!(m.count, 5);
        assert!((m.rmse.unwrap() - rmse).abs() < 1e-12, "{m:?} vs {rmse}");
    }

    /// The largest row norm of `step`'s gradient, after checking its bound is `expected` and
    /// every row within it.
    fn bound_is(step: &HeadStep, expected: f64) -> f64 {
        assert!(
            (step.bound - expected).abs() <= 1e-6 * expected,
            "{} vs {expected}",
            step.bound
        );
        largest_row_within_bound(step)
    }

    /// The largest row norm of `step`'s gradient, after checking every row is within its bound.
    fn largest_row_within_bound(step: &HeadStep) -> f64 {
        let cols = step.gradient.cols.max(1);
        step.gradient
            .data
            .chunks(cols)
            .map(|row| {
                let norm = row
                    .iter()
                    .map(|&v| f64::from(v).powi(2))
                    .sum::<f64>()
                    .sqrt();
                assert!(norm <= step.bound * (1.0 + 1e-5), "{norm} > {}", step.bound);
                norm
            })
            .fold(0.0, f64::max)
    }

    #[test]
    fn randomised_response_over_classes_moves_to_another_class_at_its_rate() {
        let d = LabelDefence::undefended().with_randomised_response(1.0);
        let p = d.flip_probability_among(4);
        assert!((p - 3.0 / (1f64.exp() + 3.0)).abs() < 1e-15);
        assert_eq!(d.flip_probability_among(2), d.flip_probability());
        let seed = SecureRng::from_os_entropy().secret_seed();
        let ids: Vec<u64> = (0..20_000).collect();
        let y: Vec<f32> = ids.iter().map(|&i| (i % 4) as f32).collect();
        let a = d.training_labels(&seed, &ids, &y, 4);
        let moved: Vec<(f32, f32)> = a
            .iter()
            .zip(&y)
            .filter(|(a, y)| a != y)
            .map(|(a, y)| (*a, *y))
            .collect();
        let sd = (20_000.0 * p * (1.0 - p)).sqrt();
        assert!(
            (moved.len() as f64 - 20_000.0 * p).abs() < 4.0 * sd,
            "{} moved",
            moved.len()
        );
        assert!(
            a.iter()
                .all(|&c| c.fract() == 0.0 && (0.0..4.0).contains(&c))
        );
        // Every other class is reached about equally: a third of the moves each.
        for target in 0..4 {
            let from_zero = moved
                .iter()
                .filter(|(a, y)| *y == 0.0 && *a == target as f32)
                .count();
            if target == 0 {
                assert_eq!(from_zero, 0);
            } else {
                let all_zero = moved.iter().filter(|(_, y)| *y == 0.0).count() as f64;
                assert!(
                    (from_zero as f64 - all_zero / 3.0).abs() < 4.0 * (all_zero / 3.0).sqrt() + 1.0
                );
            }
        }
    }

    #[test]
    fn max_norm_lifts_every_row_to_the_largest_and_noise_scales_with_it() {
        let cols = 4096;
        let mut data = vec![0.0f32; 2 * cols];
        data[0] = 1.0; // row 0: norm 1
        data[cols] = 10.0; // row 1: norm 10
        let g = FloatMatrix::new(2, cols, data).unwrap();
        let mut rng = SecureRng::from_os_entropy();
        let secret = rng.secret_seed();
        let ids = [7, 8];
        let sq = |m: &FloatMatrix, r: usize| {
            m.data[r * cols..(r + 1) * cols]
                .iter()
                .map(|v| f64::from(*v) * f64::from(*v))
                .sum::<f64>()
        };
        let out = LabelDefence::undefended()
            .with_max_norm(true)
            .perturb(g.clone(), &ids, &secret, &mut rng, 10.0)
            .unwrap();
        // E‖row 0‖² = 1 + 99; the largest row gets no lift.
        assert!((sq(&out, 0) - 100.0).abs() < 10.0, "{}", sq(&out, 0));
        assert_eq!(sq(&out, 1), 100.0);
        // Isotropic noise at multiplier 2: E‖n‖² = 4 · max‖g‖² = 400 on every row.
        let out = LabelDefence::undefended()
            .with_gradient_noise(2.0)
            .perturb(g.clone(), &ids, &secret, &mut rng, 10.0)
            .unwrap();
        assert!((sq(&out, 0) - 401.0).abs() < 40.0, "{}", sq(&out, 0));
        assert!((sq(&out, 1) - 500.0).abs() < 50.0, "{}", sq(&out, 1));
        // Persistent noise: the same draw for the same sample at every release, scaled anew;
        // other samples get other draws.
        let persistent = LabelDefence::undefended()
            .with_gradient_noise(2.0)
            .with_persistent_noise(true);
        let a = persistent
            .perturb(g.clone(), &ids, &secret, &mut rng, 10.0)
            .unwrap();
        let b = persistent
            .perturb(g.clone(), &ids, &secret, &mut rng, 10.0)
            .unwrap();
        assert_eq!(a, b);
        let c = persistent
            .perturb(g.clone(), &[9, 10], &secret, &mut rng, 10.0)
            .unwrap();
        assert_ne!(a, c);
        // Undefended: bit for bit the same.
        let out = LabelDefence::undefended()
            .perturb(g.clone(), &ids, &secret, &mut rng, 10.0)
            .unwrap();
        assert_eq!(out, g);
    }
}
