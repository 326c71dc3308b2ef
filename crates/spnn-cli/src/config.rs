//! The deployment file: one TOML file describes every party of a deployment; each party process
//! reads it and runs the part named by `--party`.
//!
//! What only one party needs — its data and columns, its key directory, its policy, its listen
//! address, and the server's `[labels]` — may instead live in that party's **private file**
//! ([`PrivateFile`], `--private` on the command line), which never leaves its host; the shared
//! file then holds the roster, the addresses, the protocol, the schedule and the model. A field
//! in both is an error, and relative paths in a private file are resolved against its own
//! directory.
//!
//! Relative paths are resolved against the file's directory. Every problem is reported with the
//! file and the dotted name of the field (`training.batch_size: must be at least 1`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use spnn_burn::{AdamParams, DealerMode, LabelMode, PartyPolicy, Protocol as Kind, SpnnConfig};
use spnn_net::{Role, Roster};

/// A configuration problem, naming the file and the field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{file}: {field}: {reason}")]
pub struct ConfigError {
    /// The configuration file.
    pub file: String,
    /// The dotted field name (or `toml` for syntax errors).
    pub field: String,
    /// What is wrong.
    pub reason: String,
}

/// `[session]`: what every party must agree on.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Session {
    /// Session id stamped on every frame.
    pub id: u64,
    /// Receive timeout in seconds (default 60): a silent peer is reported after it.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// How long to wait for every party to connect (default 60).
    #[serde(default = "default_timeout")]
    pub connect_timeout_secs: u64,
    /// `spnn align`'s receive timeout in seconds (default 3600): the server waits for the
    /// holders' whole ring before its first message, about 90 µs per id and holder on two
    /// cores. A party that vanishes is reported at once; this bounds one that stays silent.
    #[serde(default = "default_align_timeout")]
    pub align_timeout_secs: u64,
    /// Reproducible randomness for demonstrations and tests. **Insecure**: anyone who knows it
    /// knows every share. Also seeds the server's model initialisation. Only builds with the
    /// `insecure-test-hooks` feature accept it, and every party refuses it unless its own
    /// `policy.allow_insecure_seed` says otherwise.
    #[serde(default)]
    pub insecure_seed: Option<u64>,
}

fn default_timeout() -> u64 {
    60
}

fn default_align_timeout() -> u64 {
    3600
}

/// `[protocol]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Protocol {
    /// `"ss"` (secret sharing with a dealer, default) or `"he"` (Paillier between every pair of
    /// holders, no dealer).
    #[serde(default)]
    pub kind: Kind,
    /// Paillier modulus size for `"he"` (default 2048; 3072 for more margin).
    #[serde(default = "default_he_bits")]
    pub he_key_bits: u32,
    /// Fixed-point fractional bits (default 16).
    #[serde(default = "default_frac")]
    pub frac_bits: u32,
    /// Momentum of the SGD on the private weights' shares and on the server's layers
    /// (default 0).
    #[serde(default)]
    pub momentum: f64,
    /// Dampening of the momentum, as Burn's `MomentumConfig` (default 0; needs momentum).
    #[serde(default)]
    pub dampening: f64,
    /// Nesterov momentum (default false; needs momentum).
    #[serde(default)]
    pub nesterov: bool,
    /// Weight decay of every weight, the private ones on shares (default 0; `"ss"` only): SGD's
    /// L2 penalty (without momentum), or AdamW's decoupled decay with `optimizer = "adam"`.
    #[serde(default)]
    pub weight_decay: f64,
    /// Burn's optimiser for every weight, the private ones on shares: `"sgd"` (default, with
    /// the momentum fields above) or `"adam"` (`"ss"` only; the momentum fields stay 0).
    #[serde(default)]
    pub optimizer: OptimizerKind,
    /// Burn's gradient clipping by value of every weight's gradient, the private ones on shares
    /// (`GradientClippingConfig::Value`; default 0: off; `"ss"` only).
    #[serde(default)]
    pub grad_clip_value: f64,
    /// Burn's gradient clipping by norm, `g·min(1, τ/‖g‖)` for each weight's gradient, the
    /// private ones on shares (`GradientClippingConfig::Norm`; default 0: off; `"ss"` only;
    /// not with `grad_clip_value`).
    #[serde(default)]
    pub grad_clip_norm: f64,
    /// Adam's `β₁` (default 0.9, Burn's).
    #[serde(default = "default_beta_1")]
    pub beta_1: f64,
    /// Adam's `β₂` (default 0.999, Burn's).
    #[serde(default = "default_beta_2")]
    pub beta_2: f64,
    /// Adam's `ε` (default 1e-5, Burn's; on shares at least `2^−frac_bits`).
    #[serde(default = "default_epsilon")]
    pub epsilon: f64,
    /// `"server"` (default) or `"separate"` (then a `dealer` party is required).
    #[serde(default = "default_dealer")]
    pub dealer: DealerMode,
    /// Holders clip each standardised feature to `±feature_clip` (default 32).
    #[serde(default = "default_feature_clip")]
    pub feature_clip: f32,
    /// The server clips each entry of the scaled boundary gradient to `±gradient_clip`
    /// (default 16).
    #[serde(default = "default_gradient_clip")]
    pub gradient_clip: f32,
    /// Standard deviation of the noise the holders add to `Z` as shares (default 0.1): blurs
    /// the Gram-matrix leak of a run at some cost in accuracy.
    #[serde(default = "default_z_noise")]
    pub z_noise: f32,
    /// Langevin (SGLD) noise scale on the private weights' updates, added as shares by the
    /// holders (default 0: off; `N(0, 2·lr·sgld²)` per weight per update).
    #[serde(default)]
    pub sgld: f32,
    /// Who owns the labels and the loss: `"server"` (default) or a holder, `"holder-0"` …. A
    /// label holder computes the top layers (`model.top`) and the loss on its own host; the
    /// server then never receives a label, a prediction, a loss or a metric unless the label
    /// holder's `[labels]` says so.
    #[serde(default = "default_labels_at")]
    pub labels_at: String,
}

/// `[protocol] optimizer`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// Burn's SGD (momentum, dampening, Nesterov, weight decay).
    #[default]
    Sgd,
    /// Burn's Adam (AdamW with weight decay).
    Adam,
}

fn default_beta_1() -> f64 {
    AdamParams::default().beta_1
}
fn default_beta_2() -> f64 {
    AdamParams::default().beta_2
}
fn default_epsilon() -> f64 {
    AdamParams::default().epsilon
}

fn default_labels_at() -> String {
    "server".into()
}

fn default_frac() -> u32 {
    16
}
fn default_he_bits() -> u32 {
    2048
}
fn default_dealer() -> DealerMode {
    DealerMode::Server
}
fn default_feature_clip() -> f32 {
    spnn_burn::config::DEFAULT_FEATURE_CLIP
}
fn default_gradient_clip() -> f32 {
    spnn_burn::config::DEFAULT_GRADIENT_CLIP
}
fn default_z_noise() -> f32 {
    spnn_burn::config::DEFAULT_Z_NOISE
}

impl Default for Protocol {
    fn default() -> Self {
        Self {
            kind: Kind::default(),
            he_key_bits: default_he_bits(),
            frac_bits: default_frac(),
            momentum: 0.0,
            dampening: 0.0,
            nesterov: false,
            weight_decay: 0.0,
            grad_clip_value: 0.0,
            grad_clip_norm: 0.0,
            optimizer: OptimizerKind::default(),
            beta_1: default_beta_1(),
            beta_2: default_beta_2(),
            epsilon: default_epsilon(),
            dealer: default_dealer(),
            feature_clip: default_feature_clip(),
            gradient_clip: default_gradient_clip(),
            z_noise: default_z_noise(),
            sgld: 0.0,
            labels_at: default_labels_at(),
        }
    }
}

/// `[training]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Training {
    /// Epochs.
    pub epochs: usize,
    /// Batch size.
    pub batch_size: usize,
    /// Learning rate (of SGD or Adam).
    pub learning_rate: f64,
    /// Share of the samples held out for testing (default 0.2).
    #[serde(default = "default_test_fraction")]
    pub test_fraction: f64,
    /// Seed of the train/test split and of the batch order (public; default 42).
    #[serde(default = "default_split_seed")]
    pub split_seed: u64,
    /// Where every party keeps its checkpoints (a subdirectory per party).
    #[serde(default)]
    pub checkpoint_dir: Option<PathBuf>,
    /// Save a checkpoint every this many epochs (0: only the final model; default 1).
    #[serde(default = "default_every")]
    pub checkpoint_every: usize,
    /// Keep this many of the newest `epoch-N` checkpoints at every party (0: all; default 3).
    /// `best` (the best test AUC so far) and `final` are kept besides.
    #[serde(default = "default_keep")]
    pub keep_checkpoints: usize,
}

fn default_keep() -> usize {
    3
}

fn default_test_fraction() -> f64 {
    0.2
}
fn default_split_seed() -> u64 {
    42
}
fn default_every() -> usize {
    1
}

/// The activation between layers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// `max(0, x)`, the default.
    #[default]
    Relu,
    /// `tanh(x)`.
    Tanh,
    /// `1 / (1 + e^{−x})`.
    Sigmoid,
}

/// `[model]`: the server's MLP after the private layer.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Model {
    /// Widths of the hidden layers; the first is the private layer's output.
    pub hidden: Vec<usize>,
    /// `"relu"` (default), `"tanh"` or `"sigmoid"`.
    #[serde(default)]
    pub activation: Activation,
    /// Dropout probability after each hidden activation, in training only (default 0: none).
    #[serde(default)]
    pub dropout: f64,
    /// `"none"` (default) or `"layer"`: layer normalisation of each hidden layer's output,
    /// before its activation.
    #[serde(default)]
    pub norm: Norm,
    /// With `protocol.labels_at` naming a holder: the widths of the label holder's own hidden
    /// layers between the server's last hidden layer and the output layer (default none: one
    /// linear layer from the server's activations to the outputs). The server's part then ends with the
    /// last hidden layer's activation.
    #[serde(default)]
    pub top: Vec<usize>,
    /// What the model predicts: `"binary"` (default: one logit, binary cross-entropy, test
    /// AUC), `"multiclass"` (`classes` logits, cross-entropy, test accuracy) or `"regression"`
    /// (one output, mean squared error or Huber loss, test RMSE).
    #[serde(default)]
    pub task: Task,
    /// The number of classes of a `"multiclass"` task (labels `0 … classes − 1`).
    #[serde(default)]
    pub classes: Option<usize>,
    /// A regression's Huber threshold `δ`, in the labels' units: the loss is half the squared
    /// error for residuals within `δ` and linear beyond. Default none: mean squared error. Required with
    /// the labels at a holder, whose defence scales its noise to the gradient's
    /// label-independent bound, which Huber loss has (`δ` times the top layers' Jacobian) and a
    /// squared error does not; `δ` is then public.
    #[serde(default)]
    pub huber_delta: Option<f64>,
    /// Bottom models instead of the private first layer: each holder trains its own MLP
    /// `d_j → bottom[0] → … → hidden[0]` on its columns (activation between its layers) and the
    /// server learns only the sum of their outputs; the boundary gradient goes back to every
    /// holder **in the clear**. Default none: SPNN's `PrivateLinear`. Secret sharing only.
    #[serde(default)]
    pub bottom: Option<Vec<usize>>,
}

impl Model {
    /// Width of the model's output: `classes` logits for a multi-class task, else one.
    pub fn outputs(&self) -> usize {
        match self.task {
            Task::Multiclass => self.classes.unwrap_or(0),
            Task::Binary | Task::Regression => 1,
        }
    }
}

/// What the model predicts (`[model] task`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// Labels 0 or 1; one logit, binary cross-entropy; test AUC. The default.
    #[default]
    Binary,
    /// Labels `0 … classes − 1`; a logit per class, cross-entropy; test accuracy.
    Multiclass,
    /// Real labels; one output, mean squared error; test RMSE (lower is better).
    Regression,
}

impl Task {
    /// The test metric's name.
    pub fn metric(self) -> &'static str {
        match self {
            Self::Binary => "AUC",
            Self::Multiclass => "accuracy",
            Self::Regression => "RMSE",
        }
    }

    /// Whether test metric `a` is better than `b`.
    pub fn better(self, a: f64, b: f64) -> bool {
        match self {
            Self::Binary | Self::Multiclass => a > b,
            Self::Regression => a < b,
        }
    }
}

/// Normalisation of the hidden layers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Norm {
    /// None, the default.
    #[default]
    None,
    /// Burn's `LayerNorm` over each hidden layer's width.
    Layer,
}

/// `[certs]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Certs {
    /// The directory written by `spnn certs`.
    pub dir: PathBuf,
}

/// Where a party's table comes from.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Data {
    /// A CSV file (plain or `.gz`), or `embedded:breast_cancer`.
    pub path: String,
    /// The columns this party owns (features), or for `[labels]` unused.
    #[serde(default)]
    pub columns: Vec<String>,
    /// The id column; without one, ids are row numbers.
    #[serde(default)]
    pub id_column: Option<String>,
    /// Columns to one-hot encode even if they look numeric.
    #[serde(default)]
    pub categorical: Vec<String>,
    /// Whether the file has a header line (default true).
    #[serde(default = "default_true")]
    pub header: bool,
    /// Column names of a file without header.
    #[serde(default)]
    pub names: Option<Vec<String>>,
    /// The file `spnn align` wrote at this party (`id,source_id`): the rows are then the
    /// samples every party has, renumbered `0 … n−1` in the order the alignment fixed.
    #[serde(default)]
    pub aligned: Option<String>,
}

fn default_true() -> bool {
    true
}

/// `[labels]`: the label owner's ids and labels (the server's, or with `protocol.labels_at`
/// a holder's), and for a label holder what it lets the server learn.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Labels {
    /// The source, as for [`Data`].
    #[serde(flatten)]
    pub data: Data,
    /// The label column.
    pub column: String,
    /// The value that means the positive class (`task = "binary"`; needed there, refused
    /// otherwise: multiclass labels are class numbers `0 … classes − 1`, regression labels
    /// numbers).
    #[serde(default)]
    pub positive: Option<String>,
    /// Label holder: Gaussian noise on the gradient it returns, as a multiple of the largest
    /// norm a row of the batch's gradient could have whatever the labels (default 4, the level
    /// the guide's label-leakage measurement chose; `0` sends the gradient as it is, which
    /// reveals the labels).
    #[serde(default = "default_gradient_noise")]
    pub gradient_noise: f64,
    /// Label holder: the max-norm heuristic of Li et al. on top (default false).
    #[serde(default)]
    pub max_norm: bool,
    /// Label holder: one noise direction per sample for the whole run (default false).
    #[serde(default)]
    pub persistent_noise: bool,
    /// Label holder: randomised response with this ε, flipping each label once before
    /// training (default none).
    #[serde(default)]
    pub randomised_response: Option<f64>,
    /// Label holder: send the server the loss of each batch it computes — training batches and
    /// evaluation batches over ids the server picks (default false; a loss is a function of
    /// the batch's labels).
    #[serde(default)]
    pub report_loss: bool,
    /// Label holder: send the server each evaluation's metrics — AUC and accuracy, or a
    /// regression's RMSE — and loss (default false).
    #[serde(default)]
    pub report_metrics: bool,
}

fn default_gradient_noise() -> f64 {
    spnn_burn::head::DEFAULT_GRADIENT_NOISE
}

impl Labels {
    /// The label holder's defence of its labels, as this section sets it.
    pub fn defence(&self) -> spnn_burn::LabelDefence {
        spnn_burn::LabelDefence {
            gradient_noise: self.gradient_noise,
            persistent_noise: self.persistent_noise,
            max_norm: self.max_norm,
            randomised_response: self.randomised_response,
        }
    }

    /// What the label holder reports to the server.
    pub fn reports(&self) -> spnn_burn::LabelReports {
        spnn_burn::LabelReports {
            loss: self.report_loss,
            metrics: self.report_metrics,
        }
    }

    /// Whether any field that only a label holder uses differs from its default.
    fn sets_label_holder_fields(&self) -> bool {
        self.defence() != spnn_burn::LabelDefence::default()
            || self.reports() != spnn_burn::LabelReports::default()
    }
}

/// `[parties.<name>.policy]`: what this party accepts from the server's proposal, on top of
/// requiring exactly the configuration its own copy of this file describes.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Accept `session.insecure_seed` (default false). **Insecure**: for tests and demos.
    #[serde(default)]
    pub allow_insecure_seed: bool,
    /// Smallest Paillier modulus accepted (default 2048).
    #[serde(default = "default_he_bits")]
    pub min_he_key_bits: u32,
    /// Fewest fractional bits accepted (default 12).
    #[serde(default = "default_min_frac")]
    pub min_frac_bits: u32,
    /// Most forwards of one sample a holder serves in a session (default: `epochs` of this
    /// party's own copy of the file — one forward per epoch, a training step or a test
    /// sample's evaluation; the final fingerprint reuses the last evaluation).
    #[serde(default)]
    pub max_forwards_per_sample: Option<u32>,
    /// Most forwards of one sample a holder serves over every session of this deployment,
    /// counted in `forwards.ledger` in its checkpoint directory (default, when checkpoints are
    /// configured: `2 × epochs` — a resume after a crash and predictions fit; a server
    /// that restarts sessions to average the noise on Z down gains at most a factor √2).
    #[serde(default)]
    pub max_forwards_per_sample_overall: Option<u32>,
}

fn default_min_frac() -> u32 {
    spnn_burn::config::MIN_FRAC_BITS
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            allow_insecure_seed: false,
            min_he_key_bits: default_he_bits(),
            min_frac_bits: default_min_frac(),
            max_forwards_per_sample: None,
            max_forwards_per_sample_overall: None,
        }
    }
}

/// `[parties.<name>]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Party {
    /// Where the other parties reach this party (it also listens there unless `listen` says
    /// otherwise).
    pub address: SocketAddr,
    /// The fields only this party's own host needs (here, or in its private file).
    #[serde(flatten)]
    pub own: PartyFields,
}

/// The fields of a party's section that only its own host needs: in the shared file, or in
/// the party's private file ([`PrivateFile`]), never both.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartyFields {
    /// Where this party binds its listener, when that differs from `address` — behind NAT or a
    /// container's port mapping, or `0.0.0.0:<port>` for every interface. Only the party itself
    /// uses it.
    #[serde(default)]
    pub listen: Option<SocketAddr>,
    /// The party's features (holders only).
    #[serde(default)]
    pub data: Option<Data>,
    /// The server, with the labels at a holder: the sample ids it trains on (`path` and
    /// `id_column` of a file every party's rows are aligned with; no `columns`).
    #[serde(default)]
    pub ids: Option<Data>,
    /// SPNN-HE: the directory holding this holder's key pair from `spnn keygen --name <party>`
    /// (`<party>.paillier.pub.json`, `<party>.paillier.key.json`). Without it a fresh pair is
    /// generated when the session starts.
    #[serde(default)]
    pub paillier_keys: Option<PathBuf>,
    /// This party's policy (module docs of [`Policy`]; default: the secure one).
    #[serde(default)]
    pub policy: Option<Policy>,
}

/// A party's private file: its [`PartyFields`] at the top level, and for the label owner its
/// `[labels]` (module docs).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivateFile {
    /// The party's own fields.
    #[serde(flatten)]
    pub own: PartyFields,
    /// As [`Deployment::labels`] (the label owner's).
    #[serde(default)]
    pub labels: Option<Labels>,
}

#[cfg(feature = "insecure-test-hooks")]
fn insecure_randomness(seed: u64) -> std::result::Result<spnn_burn::Randomness, String> {
    Ok(spnn_burn::Randomness::InsecureSeededForTests(seed))
}

#[cfg(not(feature = "insecure-test-hooks"))]
fn insecure_randomness(_seed: u64) -> std::result::Result<spnn_burn::Randomness, String> {
    Err("this build of spnn has no insecure test hooks; remove insecure_seed".into())
}

/// The whole deployment file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deployment {
    /// `[session]`.
    pub session: Session,
    /// `[protocol]`.
    #[serde(default)]
    pub protocol: Protocol,
    /// `[training]`.
    pub training: Training,
    /// `[model]`.
    pub model: Model,
    /// `[certs]`.
    pub certs: Certs,
    /// `[labels]`: the label owner's ids and labels (here or in its private file).
    #[serde(default)]
    pub labels: Option<Labels>,
    /// `[parties.*]`: `server`, `holder-0 … holder-{k−1}`, and `dealer` if separate.
    pub parties: BTreeMap<String, Party>,
    /// The file's directory (filled in by [`Deployment::load`]).
    #[serde(skip)]
    pub base: PathBuf,
    /// The file (for messages).
    #[serde(skip)]
    pub file: String,
}

impl Deployment {
    /// Reads, parses and validates a deployment file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.display().to_string(),
            field: "file".into(),
            reason: e.to_string(),
        })?;
        Self::parse(&text, path)
    }

    /// Parses and validates the text of the deployment file at `path` (relative paths in it
    /// are resolved against `path`'s directory).
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let file = path.display().to_string();
        let err = |field: &str, reason: String| ConfigError {
            file: file.clone(),
            field: field.into(),
            reason,
        };
        let mut d: Deployment = toml::from_str(text).map_err(|e| {
            // toml's message names the offending key and its line; keep it whole.
            err("toml", e.to_string().replace('\n', " "))
        })?;
        d.base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        d.file = file;
        d.validate()?;
        Ok(d)
    }

    /// Reads `party`'s private file at `path` and moves its fields into this deployment; a
    /// field set in both files is an error, and relative paths in the private file are made
    /// absolute against its own directory.
    pub fn with_private(mut self, party: &str, path: &Path) -> Result<Self, ConfigError> {
        let file = path.display().to_string();
        let err = |field: &str, reason: String| ConfigError {
            file: file.clone(),
            field: field.into(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err("file", e.to_string()))?;
        let private: PrivateFile =
            toml::from_str(&text).map_err(|e| err("toml", e.to_string().replace('\n', " ")))?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let absolute = |p: &str| -> String {
            if p.starts_with("embedded:") || Path::new(p).is_absolute() {
                p.to_string()
            } else {
                base.join(p).display().to_string()
            }
        };
        let is_label_owner = party == self.protocol.labels_at;
        let entry = self.parties.get_mut(party).ok_or_else(|| {
            err(
                "file",
                format!(
                    "{party} is not a party of the deployment file {}",
                    self.file
                ),
            )
        })?;
        let both = |field: &str| {
            err(
                field,
                format!(
                    "set in this private file and in the shared file {}: keep {party}'s own \
                     fields in one place, its private file",
                    self.file
                ),
            )
        };
        // Moves one field over; a field in both files is refused.
        fn fill<T>(
            slot: &mut Option<T>,
            value: Option<T>,
            name: &str,
            both: &dyn Fn(&str) -> ConfigError,
        ) -> Result<(), ConfigError> {
            if let Some(v) = value {
                if slot.is_some() {
                    return Err(both(name));
                }
                *slot = Some(v);
            }
            Ok(())
        }
        let resolve = |mut d: Data| {
            d.path = absolute(&d.path);
            d.aligned = d.aligned.as_deref().map(absolute);
            d
        };
        let own = private.own;
        let slot = &mut entry.own;
        fill(&mut slot.listen, own.listen, "listen", &both)?;
        fill(&mut slot.data, own.data.map(resolve), "data", &both)?;
        fill(&mut slot.ids, own.ids.map(resolve), "ids", &both)?;
        let keys = own.paillier_keys.map(|k| base.join(k));
        fill(&mut slot.paillier_keys, keys, "paillier_keys", &both)?;
        fill(&mut slot.policy, own.policy, "policy", &both)?;
        if private.labels.is_some() && !is_label_owner {
            return Err(err(
                "labels",
                format!(
                    "only the label owner's file has labels ({}, protocol.labels_at), not {party}'s",
                    self.protocol.labels_at
                ),
            ));
        }
        let labels = private.labels.map(|mut l| {
            l.data = resolve(l.data);
            l
        });
        fill(&mut self.labels, labels, "labels", &both)?;
        self.validate()?;
        Ok(self)
    }

    /// `party`'s data, from the shared file or its private file.
    pub fn data_of(&self, party: &str) -> Result<&Data, ConfigError> {
        self.parties
            .get(party)
            .and_then(|p| p.own.data.as_ref())
            .ok_or_else(|| {
                self.error(
                    &format!("parties.{party}.data"),
                    "a holder needs its data (in the deployment file or its private file)",
                )
            })
    }

    /// The label owner's labels, from the shared file or its private file.
    pub fn labels(&self) -> Result<&Labels, ConfigError> {
        self.labels.as_ref().ok_or_else(|| {
            self.error(
                "labels",
                format!(
                    "the label owner ({}) needs [labels] (in the deployment file or its private \
                     file)",
                    self.protocol.labels_at
                ),
            )
        })
    }

    /// Where the labels are, from `protocol.labels_at`.
    pub fn label_mode(&self) -> Result<LabelMode, ConfigError> {
        let at = &self.protocol.labels_at;
        let bad = || {
            self.error(
                "protocol.labels_at",
                format!(
                    "{at:?}: expected \"server\" or a holder of this deployment (\"holder-0\" …)"
                ),
            )
        };
        match Role::from_name(at) {
            Ok(Role::Server) => Ok(LabelMode::Server),
            Ok(Role::Holder(i)) if (i as usize) < self.holders() => Ok(LabelMode::Holder(i)),
            _ => Err(bad()),
        }
    }

    /// The server's sample ids with the labels at a holder (`parties.server.ids`).
    pub fn server_ids(&self) -> Result<&Data, ConfigError> {
        self.parties
            .get("server")
            .and_then(|p| p.own.ids.as_ref())
            .ok_or_else(|| {
                self.error(
                    "parties.server.ids",
                    "with the labels at a holder the server needs the sample ids it trains on \
                     (in the deployment file or its private file)",
                )
            })
    }

    fn error(&self, field: &str, reason: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.clone(),
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Checks the values (types were checked by parsing).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let t = &self.training;
        if t.epochs == 0 {
            return Err(self.error("training.epochs", "must be at least 1"));
        }
        if t.batch_size == 0 {
            return Err(self.error("training.batch_size", "must be at least 1"));
        }
        if !(t.learning_rate.is_finite() && t.learning_rate > 0.0) {
            return Err(self.error("training.learning_rate", "must be a positive number"));
        }
        if !(t.test_fraction > 0.0 && t.test_fraction < 1.0) {
            return Err(self.error("training.test_fraction", "must be strictly between 0 and 1"));
        }
        if self.model.hidden.is_empty() || self.model.hidden.contains(&0) {
            return Err(self.error("model.hidden", "needs at least one width, all positive"));
        }
        if !(0.0..1.0).contains(&self.model.dropout) {
            return Err(self.error("model.dropout", "must be in [0, 1)"));
        }
        if let Some(b) = &self.model.bottom {
            if b.contains(&0) {
                return Err(self.error("model.bottom", "widths must be positive"));
            }
            if self.protocol.kind == Kind::Paillier {
                return Err(self.error(
                    "model.bottom",
                    "bottom models have no private weights: protocol \"he\" has nothing to do",
                ));
            }
            if self.protocol.sgld > 0.0 {
                return Err(self.error("protocol.sgld", "bottom models have no private weights"));
            }
        }
        match (self.model.task, self.model.classes) {
            (Task::Multiclass, Some(c)) if c >= 2 => {}
            (Task::Multiclass, _) => {
                return Err(self.error("model.classes", "a multiclass task needs classes ≥ 2"));
            }
            (_, Some(_)) => {
                return Err(self.error("model.classes", "only for task = \"multiclass\""));
            }
            (_, None) => {}
        }
        if let Some(l) = &self.labels
            && (self.model.task == Task::Binary) != l.positive.is_some()
        {
            return Err(self.error(
                "labels.positive",
                "the value of class 1, for task = \"binary\" only (multiclass and regression \
                 labels are numbers)",
            ));
        }
        let mode = self.label_mode()?;
        match (self.model.task, self.model.huber_delta) {
            (Task::Regression, Some(d)) => {
                spnn_burn::head::huber_loss(d)
                    .map_err(|e| self.error("model.huber_delta", e.to_string()))?;
            }
            (Task::Regression, None) if mode != LabelMode::Server => {
                return Err(self.error(
                    "model.huber_delta",
                    "a regression with the labels at a holder trains on Huber loss with a public \
                     threshold δ (in the labels' units): the holder's defence scales its noise to \
                     the returned gradient's label-independent bound, which a squared error does \
                     not have (it grows with the label)",
                ));
            }
            (Task::Binary | Task::Multiclass, Some(_)) => {
                return Err(self.error("model.huber_delta", "only for task = \"regression\""));
            }
            _ => {}
        }
        if mode != LabelMode::Server
            && self.model.task == Task::Regression
            && self
                .labels
                .as_ref()
                .is_some_and(|l| l.randomised_response.is_some())
        {
            return Err(self.error(
                "labels.randomised_response",
                "replaces a label by another class, and a regression's labels have none",
            ));
        }
        if mode == LabelMode::Server && !self.model.top.is_empty() {
            return Err(self.error(
                "model.top",
                "the label holder's layers: set protocol.labels_at to a holder, or list them in \
                 model.hidden",
            ));
        }
        if self.model.top.contains(&0) {
            return Err(self.error("model.top", "widths must be positive"));
        }
        if let Some(l) = &self.labels {
            if mode == LabelMode::Server && l.sets_label_holder_fields() {
                return Err(self.error(
                    "labels",
                    "gradient_noise, max_norm, persistent_noise, randomised_response and \
                     report_* apply to a label holder: set protocol.labels_at to a holder",
                ));
            }
            l.defence()
                .validate()
                .map_err(|e| self.error("labels", e.to_string()))?;
        }
        for (name, p) in &self.parties {
            if p.own.ids.is_some() && (name != "server" || mode == LabelMode::Server) {
                return Err(self.error(
                    &format!("parties.{name}.ids"),
                    "only the server has ids of its own, and only with the labels at a holder",
                ));
            }
            if p.own.ids.as_ref().is_some_and(|d| !d.columns.is_empty()) {
                return Err(self.error(
                    &format!("parties.{name}.ids.columns"),
                    "the server's ids file lends it ids only, no columns",
                ));
            }
        }
        if self.protocol.kind == Kind::Paillier && self.protocol.he_key_bits < 2048 {
            return Err(self.error(
                "protocol.he_key_bits",
                "Paillier keys need at least 2048 bits",
            ));
        }
        self.spnn_config()
            .map_err(|reason| self.error("session.insecure_seed", reason))?
            .validate()
            .map_err(|e| self.error("protocol", e.to_string()))?;
        if self.session.timeout_secs == 0 {
            return Err(self.error("session.timeout_secs", "must be at least 1"));
        }
        if self.session.align_timeout_secs == 0 {
            return Err(self.error("session.align_timeout_secs", "must be at least 1"));
        }
        let k = self.holders();
        if k < 2 {
            return Err(self.error("parties", "needs at least holder-0 and holder-1"));
        }
        if self.protocol.kind == Kind::Paillier {
            let config = self
                .spnn_config()
                .map_err(|reason| self.error("session.insecure_seed", reason))?;
            spnn_burn::protocol::bounds::Bounds::of(&config)
                .and_then(|b| b.he_gradient_share_bits(k))
                .map_err(|e| self.error("protocol.gradient_clip", e.to_string()))?;
        }
        let separate = self.protocol.dealer == DealerMode::Separate;
        for name in self.parties.keys() {
            let ok = match Role::from_name(name) {
                Ok(Role::Server) => true,
                Ok(Role::Holder(i)) => (i as usize) < k,
                Ok(Role::Dealer) => separate,
                Err(_) => false,
            };
            if !ok {
                return Err(self.error(
                    &format!("parties.{name}"),
                    "not a party of this deployment (server, holder-0 … holder-k−1 numbered without gaps, dealer if protocol.dealer = \"separate\")",
                ));
            }
        }
        for needed in ["server"].into_iter().chain(separate.then_some("dealer")) {
            if !self.parties.contains_key(needed) {
                return Err(self.error(&format!("parties.{needed}"), "missing"));
            }
        }
        for i in 0..k {
            let name = format!("holder-{i}");
            let p = self
                .parties
                .get(&name)
                .ok_or_else(|| self.error(&format!("parties.{name}"), "missing"))?;
            // A holder's data may be in its private file; where it is given it must list columns.
            if p.own.data.as_ref().is_some_and(|d| d.columns.is_empty()) {
                return Err(self.error(&format!("parties.{name}.data.columns"), "lists no column"));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for (name, p) in &self.parties {
            if !seen.insert(p.address) {
                return Err(self.error(
                    &format!("parties.{name}.address"),
                    format!("{} is used twice", p.address),
                ));
            }
        }
        Ok(())
    }

    /// Number of holders.
    pub fn holders(&self) -> usize {
        self.parties
            .keys()
            .filter(|n| n.starts_with("holder-"))
            .count()
    }

    /// The roster the deployment describes.
    pub fn roster(&self) -> Roster {
        Roster::spnn(
            self.holders() as u16,
            self.protocol.dealer == DealerMode::Separate,
        )
        .expect("validated")
    }

    /// Addresses by party id.
    pub fn addresses(&self) -> Vec<SocketAddr> {
        let roster = self.roster();
        roster
            .ids()
            .map(|id| self.parties[&roster.name(id).expect("roster id")].address)
            .collect()
    }

    /// The protocol configuration every party will agree on, or why this build cannot run it.
    pub fn spnn_config(&self) -> std::result::Result<SpnnConfig, String> {
        let mut c = SpnnConfig {
            dampening: self.protocol.dampening,
            nesterov: self.protocol.nesterov,
            weight_decay: self.protocol.weight_decay,
            grad_clip_value: self.protocol.grad_clip_value,
            grad_clip_norm: self.protocol.grad_clip_norm,
            adam: (self.protocol.optimizer == OptimizerKind::Adam).then_some(AdamParams {
                beta_1: self.protocol.beta_1,
                beta_2: self.protocol.beta_2,
                epsilon: self.protocol.epsilon,
            }),
            ..SpnnConfig::default()
        }
        .with_frac_bits(self.protocol.frac_bits)
        .with_momentum(self.protocol.momentum)
        .with_dealer(self.protocol.dealer)
        .with_protocol(self.protocol.kind)
        .with_he_key_bits(self.protocol.he_key_bits)
        .with_clips(self.protocol.feature_clip, self.protocol.gradient_clip)
        .with_z_noise(self.protocol.z_noise)
        .with_sgld(self.protocol.sgld)
        .with_labels(self.label_mode().map_err(|e| e.to_string())?);
        if let Some(seed) = self.session.insecure_seed {
            c = c.with_randomness(insecure_randomness(seed)?);
        }
        Ok(c)
    }

    /// The configuration `party` runs — or proposes, for the server — after checking it
    /// against the party's own policy ([`Deployment::policy`]).
    pub fn config_for(&self, party: &str) -> Result<SpnnConfig, ConfigError> {
        let policy = self.policy(party)?;
        Ok(policy
            .expected
            .expect("a deployment policy pins its configuration"))
    }

    /// `party`'s policy: its own `[parties.<party>.policy]`, and exactly this file's
    /// configuration. Refuses an insecure seed the party has not allowed itself.
    pub fn policy(&self, party: &str) -> Result<PartyPolicy, ConfigError> {
        let own = self
            .parties
            .get(party)
            .and_then(|p| p.own.policy.clone())
            .unwrap_or_default();
        let field = format!("parties.{party}.policy");
        if self.session.insecure_seed.is_some() && !own.allow_insecure_seed {
            return Err(self.error(
                "session.insecure_seed",
                format!(
                    "reproducible, insecure randomness: {party} refuses it unless its own \
                     `{field}.allow_insecure_seed = true`"
                ),
            ));
        }
        let config = self
            .spnn_config()
            .map_err(|reason| self.error("session.insecure_seed", reason))?;
        if own.max_forwards_per_sample_overall.is_some() && self.forward_ledger(party).is_none() {
            return Err(self.error(
                &format!("parties.{party}.policy.max_forwards_per_sample_overall"),
                "a budget over sessions is counted in forwards.ledger in the party's checkpoint \
                 directory: set training.checkpoint_dir",
            ));
        }
        // One run of this party's own copy of the schedule: a forward per epoch (a training
        // step, or a test sample's evaluation, whose outputs the final fingerprint reuses).
        let one_run = u32::try_from(self.training.epochs).unwrap_or(u32::MAX);
        Ok(PartyPolicy {
            allow_insecure_randomness: own.allow_insecure_seed,
            min_he_key_bits: own.min_he_key_bits,
            min_frac_bits: own.min_frac_bits,
            // What this party's own copy of the schedule needs, unless it says otherwise: more
            // forwards of a sample would only average the noise on Z down.
            max_forwards_per_sample: Some(own.max_forwards_per_sample.unwrap_or(one_run)),
            // Over sessions (with a ledger beside the checkpoints): twice one run's budget.
            max_forwards_per_sample_overall: self.forward_ledger(party).map(|_| {
                own.max_forwards_per_sample_overall
                    .unwrap_or(one_run.saturating_mul(2))
            }),
            // The party's own copy of the file sets the noise on Z (and is pinned below).
            min_z_noise: config.z_noise,
            max_sgld: config.sgld,
            max_weight_decay: config
                .weight_decay
                .max(spnn_burn::protocol::policy::DEFAULT_MAX_WEIGHT_DECAY),
            // The schedule's rate, from the party's own copy: no update above it.
            max_learning_rate: Some(self.training.learning_rate),
            ..PartyPolicy::default()
        }
        .expect(config))
    }

    /// A path from the file, resolved against the file's directory.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        }
    }

    /// The forward ledger of `party` (`forwards.ledger` in its checkpoint directory), if
    /// checkpoints are configured.
    pub fn forward_ledger(&self, party: &str) -> Option<PathBuf> {
        self.checkpoint_dir(party)
            .map(|d| d.join("forwards.ledger"))
    }

    /// The checkpoint directory of `party`, if checkpoints are configured.
    pub fn checkpoint_dir(&self, party: &str) -> Option<PathBuf> {
        self.training
            .checkpoint_dir
            .as_ref()
            .map(|d| self.resolve(d).join(party))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example deployment without holder-0's data and without the labels.
    fn shared() -> Deployment {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/breast_cancer.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let start = text.find("[parties.holder-0]").unwrap();
        let data = start + text[start..].find("data = ").unwrap();
        let end = data + text[data..].find("] }\n").unwrap() + 4;
        let text = format!("{}{}", &text[..data], &text[end..]);
        let labels = text.find("[labels]").unwrap();
        let server = text.find("[parties.server]").unwrap();
        let text = format!("{}{}", &text[..labels], &text[server..]);
        Deployment::parse(&text, &path).unwrap()
    }

    #[test]
    fn private_files_fill_their_partys_fields_and_nothing_else() {
        let dep = shared();
        assert!(dep.data_of("holder-0").is_err() && dep.labels().is_err());
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        // Relative paths are the private file's own; the labels go to the server.
        let holder = write(
            "holder.toml",
            "data = { path = \"bank.csv\", columns = [\"age\"] }\npolicy = { min_frac_bits = 16 }\n",
        );
        let dep = dep.with_private("holder-0", &holder).unwrap();
        let data = dep.data_of("holder-0").unwrap();
        assert_eq!(Path::new(&data.path), dir.path().join("bank.csv"));
        assert_eq!(dep.policy("holder-0").unwrap().min_frac_bits, 16);
        let server = write(
            "server.toml",
            "[labels]\npath = \"labels.csv\"\ncolumn = \"y\"\npositive = \"1\"\n",
        );
        let dep = dep.with_private("server", &server).unwrap();
        assert_eq!(
            Path::new(&dep.labels().unwrap().data.path),
            dir.path().join("labels.csv")
        );
        // Refused, naming the field: a field in both files, labels at a holder, unknown keys,
        // a party the shared file does not have.
        let both = dep.clone().with_private("holder-0", &holder).unwrap_err();
        assert_eq!(both.field, "data");
        let at_holder = shared().with_private("holder-1", &server).unwrap_err();
        assert_eq!(at_holder.field, "labels");
        let unknown = write("unknown.toml", "epochs = 3\n");
        assert_eq!(
            shared()
                .with_private("holder-0", &unknown)
                .unwrap_err()
                .field,
            "toml"
        );
        assert!(shared().with_private("holder-7", &holder).is_err());
    }

    #[test]
    fn every_party_caps_an_updates_learning_rate_at_its_own_schedules() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/breast_cancer.toml");
        let dep = Deployment::load(&path).unwrap();
        for party in ["holder-0", "holder-1"] {
            assert_eq!(
                dep.policy(party).unwrap().max_learning_rate,
                Some(dep.training.learning_rate)
            );
        }
    }

    #[test]
    fn gradient_clipping_reaches_the_configuration_and_one_kind_at_a_time() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/breast_cancer.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let with = |line: &str| {
            let text = text.replace("[protocol]\n", &format!("[protocol]\n{line}\n"));
            Deployment::parse(&text, &path)
        };
        let dep = with("grad_clip_norm = 0.5").unwrap();
        let c = dep.spnn_config().unwrap();
        assert_eq!((c.grad_clip_value, c.grad_clip_norm), (0.0, 0.5));
        let dep = with("grad_clip_value = 0.25").unwrap();
        assert_eq!(dep.spnn_config().unwrap().grad_clip_value, 0.25);
        let both = with("grad_clip_value = 0.25\ngrad_clip_norm = 0.5");
        let e = both
            .map_err(|e| e.to_string())
            .and_then(|d| d.config_for("server").map_err(|e| e.to_string()))
            .unwrap_err();
        assert!(e.contains("one or the other"), "{e}");
    }

    #[test]
    fn the_shipped_label_holder_deployment_names_holder_0_and_the_servers_ids() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../deploy/breast_cancer_label_holder.toml");
        let dep = Deployment::load(&path).unwrap();
        assert_eq!(dep.label_mode().unwrap(), LabelMode::Holder(0));
        assert_eq!(dep.server_ids().unwrap().path, "embedded:breast_cancer");
        assert_eq!(
            dep.labels().unwrap().defence(),
            spnn_burn::LabelDefence::default()
        );
    }

    #[test]
    fn with_the_labels_at_a_holder_its_private_file_has_them_and_the_servers_has_its_ids() {
        let mut dep = shared();
        dep.protocol.labels_at = "holder-1".into();
        dep.model.top = vec![4];
        dep.validate().unwrap();
        assert_eq!(dep.label_mode().unwrap(), LabelMode::Holder(1));
        assert!(dep.server_ids().is_err() && dep.labels().is_err());
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let labels = write(
            "labels.toml",
            "[labels]\npath = \"y.csv\"\ncolumn = \"y\"\npositive = \"1\"\n\
             gradient_noise = 4.0\nrandomised_response = 2.0\n",
        );
        let ids = write(
            "ids.toml",
            "ids = { path = \"ids.csv\", id_column = \"id\" }\n",
        );
        // Only the label owner's file may have labels; only the server's, ids.
        assert_eq!(
            dep.clone()
                .with_private("server", &labels)
                .unwrap_err()
                .field,
            "labels"
        );
        let err = dep.clone().with_private("holder-0", &ids).unwrap_err();
        assert_eq!(err.field, "parties.holder-0.ids");
        let dep = dep
            .with_private("holder-1", &labels)
            .unwrap()
            .with_private("server", &ids)
            .unwrap();
        let l = dep.labels().unwrap();
        assert_eq!(Path::new(&l.data.path), dir.path().join("y.csv"));
        assert_eq!(
            l.defence(),
            spnn_burn::LabelDefence::default()
                .with_gradient_noise(4.0)
                .with_randomised_response(2.0)
        );
        assert_eq!(l.reports(), spnn_burn::LabelReports::default());
        assert_eq!(
            Path::new(&dep.server_ids().unwrap().path),
            dir.path().join("ids.csv")
        );
        assert_eq!(
            dep.spnn_config().unwrap().labels,
            LabelMode::Holder(1),
            "every party proposes or expects the label holder"
        );
    }
}
