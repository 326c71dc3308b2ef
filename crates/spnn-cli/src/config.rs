//! The deployment file: one TOML file describes every party of a deployment; each party process
//! reads it and runs the part named by `--party`.
//!
//! Relative paths are resolved against the file's directory. Every problem is reported with the
//! file and the dotted name of the field (`training.batch_size: must be at least 1`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use spnn_burn::{DealerMode, Randomness, SpnnConfig};
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
    /// Reproducible randomness for demonstrations and tests. **Insecure**: anyone who knows it
    /// knows every share. Also seeds the server's model initialisation.
    #[serde(default)]
    pub insecure_seed: Option<u64>,
}

fn default_timeout() -> u64 {
    60
}

/// `[protocol]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Protocol {
    /// `"ss"` (secret sharing with a dealer, default) or `"he"` (Paillier between two holders).
    #[serde(default = "default_kind")]
    pub kind: String,
    /// Paillier modulus size for `"he"` (default 2048; 3072 for more margin).
    #[serde(default = "default_he_bits")]
    pub he_key_bits: u32,
    /// Fixed-point fractional bits (default 16).
    #[serde(default = "default_frac")]
    pub frac_bits: u32,
    /// Momentum of the secure SGD and of the server's optimiser (default 0).
    #[serde(default)]
    pub momentum: f64,
    /// `"server"` (default) or `"separate"` (then a `dealer` party is required).
    #[serde(default = "default_dealer")]
    pub dealer: String,
}

fn default_kind() -> String {
    "ss".into()
}
fn default_frac() -> u32 {
    16
}
fn default_he_bits() -> u32 {
    2048
}
fn default_dealer() -> String {
    "server".into()
}

impl Default for Protocol {
    fn default() -> Self {
        Self {
            kind: default_kind(),
            he_key_bits: default_he_bits(),
            frac_bits: default_frac(),
            momentum: 0.0,
            dealer: default_dealer(),
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
    /// SGD learning rate.
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

/// `[model]`: the server's MLP after the private layer.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Model {
    /// Widths of the hidden layers; the first is the private layer's output.
    pub hidden: Vec<usize>,
    /// `"relu"` (default), `"tanh"` or `"sigmoid"`.
    #[serde(default = "default_activation")]
    pub activation: String,
}

fn default_activation() -> String {
    "relu".into()
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
}

fn default_true() -> bool {
    true
}

/// `[labels]`: the server's ids and labels.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Labels {
    /// The source, as for [`Data`].
    #[serde(flatten)]
    pub data: Data,
    /// The label column.
    pub column: String,
    /// The value that means the positive class.
    pub positive: String,
}

/// `[parties.<name>]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Party {
    /// Where the party listens.
    pub address: SocketAddr,
    /// The party's features (holders only).
    #[serde(default)]
    pub data: Option<Data>,
    /// SPNN-HE: the directory holding this holder's key pair from `spnn keygen --name <party>`
    /// (`<party>.paillier.pub.json`, `<party>.paillier.key.json`). Without it a fresh pair is
    /// generated when the session starts.
    #[serde(default)]
    pub paillier_keys: Option<PathBuf>,
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
    /// `[labels]`.
    pub labels: Labels,
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
        let file = path.display().to_string();
        let err = |field: &str, reason: String| ConfigError {
            file: file.clone(),
            field: field.into(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err("file", e.to_string()))?;
        let mut d: Deployment = toml::from_str(&text).map_err(|e| {
            // toml's message names the offending key and its line; keep it whole.
            err("toml", e.to_string().replace('\n', " "))
        })?;
        d.base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        d.file = file;
        d.validate()?;
        Ok(d)
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
        if !["relu", "tanh", "sigmoid"].contains(&self.model.activation.as_str()) {
            return Err(self.error(
                "model.activation",
                format!("{:?}: use relu, tanh or sigmoid", self.model.activation),
            ));
        }
        if !["ss", "he"].contains(&self.protocol.kind.as_str()) {
            return Err(self.error(
                "protocol.kind",
                format!("{:?}: use \"ss\" or \"he\"", self.protocol.kind),
            ));
        }
        if self.protocol.kind == "he" && self.protocol.he_key_bits < 2048 {
            return Err(self.error(
                "protocol.he_key_bits",
                "Paillier keys need at least 2048 bits",
            ));
        }
        if !["server", "separate"].contains(&self.protocol.dealer.as_str()) {
            return Err(self.error(
                "protocol.dealer",
                format!("{:?}: use \"server\" or \"separate\"", self.protocol.dealer),
            ));
        }
        self.spnn_config()
            .validate()
            .map_err(|e| self.error("protocol", e.to_string()))?;
        if self.session.timeout_secs == 0 {
            return Err(self.error("session.timeout_secs", "must be at least 1"));
        }
        let k = self.holders();
        if k < 2 {
            return Err(self.error("parties", "needs at least holder-0 and holder-1"));
        }
        if self.protocol.kind == "he" && k != 2 {
            return Err(self.error(
                "parties",
                format!("protocol \"he\" runs with two holders, not {k}"),
            ));
        }
        let separate = self.protocol.dealer == "separate";
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
            match &p.data {
                None => {
                    return Err(
                        self.error(&format!("parties.{name}.data"), "a holder needs its data")
                    );
                }
                Some(d) if d.columns.is_empty() => {
                    return Err(
                        self.error(&format!("parties.{name}.data.columns"), "lists no column")
                    );
                }
                Some(_) => {}
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
        Roster::spnn(self.holders() as u16, self.protocol.dealer == "separate").expect("validated")
    }

    /// Addresses by party id.
    pub fn addresses(&self) -> Vec<SocketAddr> {
        let roster = self.roster();
        roster
            .ids()
            .map(|id| self.parties[&roster.name(id).expect("roster id")].address)
            .collect()
    }

    /// The protocol configuration every party will agree on.
    pub fn spnn_config(&self) -> SpnnConfig {
        let mut c = SpnnConfig::default()
            .with_frac_bits(self.protocol.frac_bits)
            .with_momentum(self.protocol.momentum)
            .with_dealer(if self.protocol.dealer == "separate" {
                DealerMode::Separate
            } else {
                DealerMode::Server
            });
        if let Some(seed) = self.session.insecure_seed {
            c = c.with_randomness(Randomness::InsecureSeededForTests(seed));
        }
        if self.protocol.kind == "he" {
            c = c
                .with_protocol(spnn_burn::Protocol::Paillier)
                .with_he_key_bits(self.protocol.he_key_bits);
        }
        c
    }

    /// A path from the file, resolved against the file's directory.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        }
    }

    /// The checkpoint directory of `party`, if checkpoints are configured.
    pub fn checkpoint_dir(&self, party: &str) -> Option<PathBuf> {
        self.training
            .checkpoint_dir
            .as_ref()
            .map(|d| self.resolve(d).join(party))
    }
}
