//! A data holder: the party loop, and one engine per way of computing the first layer.
//!
//! The loop ([`run_holder`], [`run_bottom_holder`]) does what every mode shares:
//!
//! 1. **Set-up.** `Hello` to the server, `Setup` back — a *proposal* the holder checks against
//!    its own [`PartyPolicy`] before anything else; then a pair seed with every other holder,
//!    exchanged holder to holder (never through the server or a dealer).
//! 2. **Serve** the server's commands until `Shutdown`: `Forward`, `Backward` and `Update` go to
//!    the engine; `Save` writes the engine's state; `Evaluate` is for the label holder.
//! 3. **Mask what goes to the server.** The engine's contribution to `Z` (or its bottom model's
//!    output) leaves the holder only after adding a zero-sharing mask from the pair seeds
//!    ([`spnn_crypto::derive::zero_sharing_mask`], fresh per step): the masks cancel in the sum,
//!    so the server learns `Σ` of the contributions and nothing about any one of them — in
//!    particular not the `X_j·(W_j − V)` terms a dealing server could otherwise strip of its own
//!    triples and solve for `X` and `W`.
//!
//! The engines, each owning its state:
//!
//! - `ss.rs`: SPNN-SS, one-sided Beaver products with a dealer, exact truncation;
//! - `he.rs`: SPNN-HE, Paillier cross terms, the gradient path over the integers;
//! - `bottom.rs`: the holder's own Burn bottom model.

mod bottom;
pub(crate) mod he;
pub(crate) mod record;
pub(crate) mod ss;

use std::path::PathBuf;

use burn::tensor::Device;
use spnn_crypto::derive::zero_sharing_mask;
use spnn_crypto::paillier::Keypair;
use spnn_crypto::{FixedPoint, RingMatrix, SecretSeed, Share};
use spnn_data::Table;
use spnn_net::codec::{Blob, Codec, Reader};
use spnn_net::{Network, PartyId, Role};

use super::he::HeCounters;
use super::policy::PartyPolicy;
use crate::checkpoint;
use crate::config::{DealerMode, LabelMode, Protocol, SpnnConfig};
use crate::error::{Result, SpnnError, protocol};
use crate::head::{LabelDefence, LabelHead, LabelReports, MetricsLog, ScoreLog};
use crate::local::{LocalModel, LocalRunner, Runner};
use crate::messages::*;

/// How a holder runs, besides its data.
#[derive(Default)]
pub struct HolderOptions {
    /// Where `Command::Save` writes and a resumed session reads this holder's state. Without
    /// one, the holder refuses to save or resume.
    pub checkpoint_dir: Option<PathBuf>,
    /// After each save, keep only this many numbered checkpoints (tags `epoch-N`, the newest
    /// by N) of this holder; other tags stay. 0 keeps every checkpoint.
    pub keep_checkpoints: usize,
    /// Answer `Command::RevealSharesForTests` by sending the weight share to the server.
    /// **Insecure**: only for tests that reconstruct `W`.
    #[cfg(feature = "insecure-test-hooks")]
    pub allow_insecure_reveal: bool,
    /// The labels and the loss head, for the label holder.
    pub labels: Option<HolderLabels>,
    /// This holder's Paillier key pair for SPNN-HE (made once per deployment, e.g. with
    /// `spnn keygen`). Without one, an SPNN-HE session generates a fresh pair at set-up.
    pub paillier: Option<Keypair>,
    /// What this holder accepts from the server's proposal (default: the secure policy).
    pub policy: PartyPolicy,
    /// The file in which this holder keeps, across sessions, how many forwards it has served
    /// of each sample, for [`PartyPolicy::max_forwards_per_sample_overall`] (sealed like a
    /// checkpoint; created on first use). Required when that budget is set.
    pub forward_ledger: Option<PathBuf>,
}

/// The label holder's labels, its top layers, and what it lets the server learn.
pub struct HolderLabels {
    /// A table whose labels are looked up by sample id.
    pub table: Table,
    /// The top layers and the loss.
    pub head: Box<dyn LabelHead>,
    /// How the gradient is perturbed before it goes to the server (default: the secure
    /// default, [`LabelDefence::default`]).
    pub defence: LabelDefence,
    /// What is reported to the server besides the gradient (default: nothing).
    pub reports: LabelReports,
    /// The label holder's own record of its evaluation metrics.
    pub metrics: MetricsLog,
    /// The label holder's own record of its latest score of each sample scored outside
    /// training.
    pub scores: ScoreLog,
    /// The label holder's held-out samples, if it knows the split: it refuses a training
    /// forward of any of them, and computes its metrics only over evaluation batches made of
    /// them (any other batch is scored, not measured).
    pub test_ids: Option<std::collections::HashSet<u64>>,
    /// The only learning rate the label holder accepts in an update, if it knows the schedule
    /// (a tiny rate freezes its top layers, so the server could query them again and average
    /// the noise away).
    pub learning_rate: Option<f64>,
    /// The width of the activations the top layers take, if known: other widths are refused
    /// with an error naming the server, not a failure inside Burn.
    pub input_width: Option<usize>,
}

impl HolderLabels {
    /// Labels from `table`, the loss from `head`, the default defence, no reports.
    pub fn new(table: Table, head: impl LabelHead + 'static) -> Self {
        Self {
            table,
            head: Box::new(head),
            defence: LabelDefence::default(),
            reports: LabelReports::default(),
            metrics: MetricsLog::default(),
            scores: ScoreLog::default(),
            test_ids: None,
            learning_rate: None,
            input_width: None,
        }
    }

    /// The same knowing the held-out samples (see [`HolderLabels::test_ids`]).
    pub fn with_test_ids(mut self, ids: &[u64]) -> Self {
        self.test_ids = Some(ids.iter().copied().collect());
        self
    }

    /// The same accepting updates at `lr` only (see [`HolderLabels::learning_rate`]).
    pub fn with_learning_rate(mut self, lr: f64) -> Self {
        self.learning_rate = Some(lr);
        self
    }

    /// The same checking the activations' width (see [`HolderLabels::input_width`]).
    pub fn with_input_width(mut self, width: usize) -> Self {
        self.input_width = Some(width);
        self
    }

    /// Refuses a label table that misses some of the holder's samples — found mid-session,
    /// the gap would end the session at the first such id and tell the server which ids have
    /// no label.
    fn check_covers(&self, features: &Table) -> Result<()> {
        let classes = self.head.classes();
        if classes.is_none() && self.defence.randomised_response.is_some() {
            return Err(SpnnError::Config(
                "randomised response replaces a label by another class, and a regression's \
                 labels have none: the label holder's defence of a regression is the gradient \
                 noise"
                    .into(),
            ));
        }
        let Some(labels) = self.table.labels() else {
            return Ok(());
        };
        // Every label a class of the head (a bounded number for a regression), checked before
        // any training: a label found bad mid-run would stop the session at the batch holding
        // it, and tell the server which.
        if let Some((i, y)) = labels
            .iter()
            .enumerate()
            .find(|(_, y)| !crate::head::label_fits(classes, **y))
        {
            return Err(SpnnError::Config(format!(
                "the label of sample {} is {y}, not {}",
                self.table.ids()[i],
                crate::head::expected_label(classes)
            )));
        }
        match features
            .ids()
            .iter()
            .find(|&&id| self.table.row_of(id).is_err())
        {
            Some(id) => Err(SpnnError::Config(format!(
                "the label holder has features of sample {id} and no label for it: its label \
                 table must cover every sample it serves"
            ))),
            None => Ok(()),
        }
    }

    /// Logs the defence in force, and warns when it is weaker than the default.
    fn announce(&self) {
        let d = &self.defence;
        tracing::info!(
            "label holder: gradient noise {} (persistent: {}), max-norm {}, randomised response \
             {}; reports to the server: losses {}, metrics {}",
            d.gradient_noise,
            d.persistent_noise,
            d.max_norm,
            d.randomised_response
                .map_or("off".to_string(), |e| format!("ε = {e}")),
            self.reports.loss,
            self.reports.metrics
        );
        let weaker = d.gradient_noise < crate::head::DEFAULT_GRADIENT_NOISE
            && d.randomised_response.is_none();
        if weaker || self.reports.loss || self.reports.metrics {
            tracing::warn!(
                "label holder: this defence is weaker than the default (noise {}, no randomised \
                 response, or reports on): the server can learn more about the labels",
                crate::head::DEFAULT_GRADIENT_NOISE
            );
        }
    }

    /// The same with another defence.
    pub fn with_defence(mut self, defence: LabelDefence) -> Self {
        self.defence = defence;
        self
    }

    /// The same reporting `reports` to the server.
    pub fn with_reports(mut self, reports: LabelReports) -> Self {
        self.reports = reports;
        self
    }

    /// A handle on the label holder's own metrics record.
    pub fn metrics(&self) -> MetricsLog {
        self.metrics.clone()
    }

    /// A handle on the label holder's own record of its scores.
    pub fn scores(&self) -> ScoreLog {
        self.scores.clone()
    }
}

/// The label holder's state during a session.
struct LabelState {
    labels: HolderLabels,
    /// The label holder's secret for the run: fixes each sample's randomised-response coin and
    /// its persistent noise direction.
    secret: SecretSeed,
    /// A training batch was released and its update has not come yet.
    pending_update: bool,
}

/// What a holder reports when its session ends.
#[derive(Clone, Debug, PartialEq)]
pub struct HolderSummary {
    /// Forward steps served.
    pub forwards: u64,
    /// Updates applied.
    pub updates: u64,
    /// Feature values clipped to the session's `feature_clip` before encoding.
    pub clipped_features: u64,
    /// Paillier work (SPNN-HE sessions; zero otherwise).
    pub he: HeCounters,
}

/// What every engine can see of its holder: who is who, the session, the features and the
/// pair seeds. Engines get it by reference and keep their own state.
pub(crate) struct Party {
    pub(crate) net: Network,
    pub(crate) me: usize,
    pub(crate) holders: Vec<PartyId>,
    pub(crate) server: PartyId,
    pub(crate) dealer: PartyId,
    pub(crate) widths: Vec<usize>,
    pub(crate) d: usize,
    pub(crate) h: usize,
    pub(crate) fp: FixedPoint,
    pub(crate) config: SpnnConfig,
    pub(crate) kind: LayerKind,
    features: Table,
    seeds: Vec<Option<SecretSeed>>,
    clipped: std::cell::Cell<u64>,
}

impl Party {
    pub(crate) fn k(&self) -> usize {
        self.holders.len()
    }

    pub(crate) fn id(&self) -> PartyId {
        self.net.me()
    }

    /// The other holders, as `(index, party id)`.
    pub(crate) fn others(&self) -> impl Iterator<Item = (usize, PartyId)> + '_ {
        self.holders
            .iter()
            .copied()
            .enumerate()
            .filter(move |(i, _)| *i != self.me)
    }

    /// The seed this holder shares with holder `j`.
    pub(crate) fn seed(&self, j: usize) -> Result<&SecretSeed> {
        self.seeds
            .get(j)
            .and_then(Option::as_ref)
            .ok_or_else(|| SpnnError::Config(format!("no pair seed with holder {j}")))
    }

    /// The rows of `W` that belong to holder `j`'s columns.
    pub(crate) fn block(&self, j: usize) -> (usize, usize) {
        let start: usize = self.widths[..j].iter().sum();
        (start, start + self.widths[j])
    }

    /// This holder's part of the session's noise on `Z` (`N(0, z_noise²/k)` per entry, at the
    /// Z shares' scale `2^{2f}`), fresh for each step; the parts of all holders add up to noise
    /// of standard deviation `z_noise` that no single party knows.
    pub(crate) fn z_noise(&self, step: u64, shape: (usize, usize)) -> Result<RingMatrix> {
        let f = self.fp.frac_bits();
        self.gaussian_part(
            f64::from(self.config.z_noise),
            2 * f,
            step,
            "z-noise",
            shape,
        )
    }

    /// This holder's weight share `w` after its part of the session's Langevin noise on the
    /// update of step `step` with learning rate `lr` ([`crate::SpnnConfig::sgld`]):
    /// `N(0, 2·|lr|·sgld²/k)` per weight, at the weight shares' scale `2^f`; `w` itself when
    /// the session has none.
    pub(crate) fn with_sgld_noise(&self, w: Share, step: u64, lr: f64) -> Result<Share> {
        let sd = f64::from(self.config.sgld) * (2.0 * lr.abs()).sqrt();
        if sd == 0.0 {
            return Ok(w);
        }
        let part = self.gaussian_part(sd, self.fp.frac_bits(), step, "sgld", (self.d, self.h))?;
        Ok(w.add(&w.with_value(part))?)
    }

    /// This holder's part of Gaussian noise of standard deviation `sd` per entry that the `k`
    /// holders add up to (each draws `N(0, sd²/k)` from its own generator), encoded at scale
    /// `2^frac_bits`; refuses a spread whose draws could leave a signed 64-bit word.
    fn gaussian_part(
        &self,
        sd: f64,
        frac_bits: u32,
        step: u64,
        purpose: &str,
        (rows, cols): (usize, usize),
    ) -> Result<RingMatrix> {
        let sd = sd / (self.k() as f64).sqrt();
        let scale = 2f64.powi(frac_bits as i32);
        if !(sd.is_finite() && sd * scale * 64.0 < 2f64.powi(62)) {
            return Err(SpnnError::Config(format!(
                "{purpose} of standard deviation {sd} does not fit the ring at 2^{frac_bits}"
            )));
        }
        let mut rng = self.config.randomness.rng(self.id(), step, purpose);
        let data = (0..rows * cols)
            .map(|_| {
                ((sd * spnn_crypto::rng::standard_normal(&mut rng) * scale).round() as i64) as u64
            })
            .collect();
        Ok(RingMatrix::from_vec(rows, cols, data)?)
    }

    /// This holder's features of `ids`, as they are (bottom models).
    pub(crate) fn raw_features(&self, ids: &[u64]) -> Result<Vec<f32>> {
        Ok(self.features.gather(ids)?)
    }

    /// This holder's features of `ids`, clipped to the session's `feature_clip` and encoded:
    /// the public bound every truncation relies on holds by construction.
    pub(crate) fn encoded_features(&self, ids: &[u64]) -> Result<RingMatrix> {
        let clip = self.config.feature_clip;
        let mut x = self.features.gather(ids)?;
        let mut clipped = 0;
        for v in &mut x {
            if v.abs() > clip {
                *v = v.clamp(-clip, clip);
                clipped += 1;
            }
        }
        self.clipped.set(self.clipped.get() + clipped);
        Ok(self.fp.encode_matrix(ids.len(), self.widths[self.me], &x)?)
    }

    /// Sends each other holder `o` its own openings `parts_for(o)` and returns what every other
    /// holder sent back, by holder index.
    pub(crate) fn exchange(
        &self,
        parts_for: impl Fn(usize) -> Result<Vec<RingMatrix>>,
    ) -> Result<Vec<(usize, Vec<RingMatrix>)>> {
        for (o, p) in self.others() {
            self.net.send(p, &Opening(parts_for(o)?))?;
        }
        self.others()
            .map(|(o, p)| {
                let Opening(parts) = self.net.recv(p)?;
                Ok((o, parts))
            })
            .collect()
    }

    /// Sends this holder's contributions to every other holder and returns the opened sums,
    /// checking every contribution's count and shape.
    pub(crate) fn open(&self, parts: Vec<RingMatrix>) -> Result<Vec<RingMatrix>> {
        let shapes: Vec<_> = parts.iter().map(RingMatrix::shape).collect();
        let msg = Opening(parts);
        for (_, p) in self.others() {
            self.net.send(p, &msg)?;
        }
        let Opening(mut sums) = msg;
        for (_, p) in self.others() {
            let Opening(theirs) = self.net.recv(p)?;
            let got: Vec<_> = theirs.iter().map(RingMatrix::shape).collect();
            if got != shapes {
                return Err(protocol(
                    p,
                    format!("opened values of shapes {got:?}, expected {shapes:?}"),
                ));
            }
            for (s, t) in sums.iter_mut().zip(&theirs) {
                s.add_assign(t)?;
            }
        }
        Ok(sums)
    }

    /// This holder's part of the server's sharing of `c·G`: the explicit share for holder 0,
    /// the seed of its share for the others.
    pub(crate) fn gradient_part(&self, shape: (usize, usize)) -> Result<GradientPart> {
        if self.me == 0 {
            let GradShare(g) = self.net.recv(self.server)?;
            if g.shape() != shape {
                return Err(protocol(
                    self.server,
                    format!(
                        "gradient share of shape {:?}, expected {shape:?}",
                        g.shape()
                    ),
                ));
            }
            Ok(GradientPart::Explicit(g))
        } else {
            let GradSeed(seed) = self.net.recv(self.server)?;
            Ok(GradientPart::Seed(seed))
        }
    }

    /// This holder's zero-sharing mask for what it sends the server at `step`.
    fn server_mask(&self, purpose: &str, step: u64, shape: (usize, usize)) -> Result<RingMatrix> {
        Ok(zero_sharing_mask(
            self.me,
            &self.seeds,
            purpose,
            step,
            shape,
        )?)
    }
}

/// What a holder receives of the server's sharing of `c·G`.
pub(crate) enum GradientPart {
    /// Holder 0's share, in full.
    Explicit(RingMatrix),
    /// The seed another holder derives its share from.
    Seed(SecretSeed),
}

/// A way of computing this holder's part of the first layer. Each owns its saved forward
/// state, its weights or model, and its checkpoint format.
pub(crate) trait Engine: Send {
    /// This holder's contribution to the layer's output for `ids` (`B × h`), unmasked.
    fn forward(&mut self, p: &Party, step: u64, ids: &[u64], train: bool) -> Result<RingMatrix>;
    /// The backward of the training forward of `step`, with the server's gradient scale.
    fn backward(&mut self, p: &Party, step: u64, scale: f64) -> Result<()>;
    /// Applies the accumulated gradient with learning rate `lr`.
    fn update(&mut self, p: &Party, step: u64, lr: f64) -> Result<()>;
    /// The engine's state for a checkpoint.
    fn save(&self) -> Result<Vec<u8>>;
    /// Restores a state written by [`Engine::save`]; a message on anything malformed.
    fn load(&mut self, p: &Party, payload: &[u8]) -> std::result::Result<(), String>;
    /// The weight share, for the insecure test reveal (engines without one return `None`).
    #[cfg(feature = "insecure-test-hooks")]
    fn weight_share(&self) -> Option<&RingMatrix>;
    /// Paillier work done so far.
    fn he_counters(&self) -> HeCounters {
        HeCounters::default()
    }
}

/// Runs holder `net.role()` of an SPNN session ([`crate::PrivateLinear`]) until the server ends
/// it.
///
/// `features` holds this holder's columns (already preprocessed) for every sample id the
/// server may ask for.
pub fn run_holder(net: Network, features: Table, options: HolderOptions) -> Result<HolderSummary> {
    start(net, features, options, None)
}

/// Runs holder `net.role()` of a bottom-model session ([`crate::SecureAggregation`]): its own
/// Burn `model` (on the autodiff `device`) maps its features to the shared output width and
/// is trained by `optim` with the gradient the server returns.
pub fn run_bottom_holder<M: LocalModel>(
    net: Network,
    features: Table,
    model: M,
    optim: burn::optim::ModuleOptimizer,
    device: Device,
    options: HolderOptions,
) -> Result<HolderSummary> {
    start(
        net,
        features,
        options,
        Some(Box::new(Runner::new(model, optim, device))),
    )
}

fn start(
    net: Network,
    features: Table,
    options: HolderOptions,
    bottom: Option<Box<dyn LocalRunner>>,
) -> Result<HolderSummary> {
    let Role::Holder(index) = net.role() else {
        return Err(SpnnError::Config(format!("{} is not a holder", net.me())));
    };
    if let Some(labels) = &options.labels {
        labels.defence.validate()?;
        labels.check_covers(&features)?;
        labels.announce();
    }
    let roster = net.roster().clone();
    // With one holder the zero-sharing mask would be zero: its output would reach the server
    // as it is.
    if roster.holders().len() < 2 {
        return Err(SpnnError::Config(format!(
            "{} holders in the roster; SPNN needs at least 2",
            roster.holders().len()
        )));
    }
    let server = roster.id_of(Role::Server)?;
    net.send(
        server,
        &Hello {
            version: SPNN_PROTOCOL_VERSION,
            holder: index,
            width: features.cols() as u32,
            has_labels: options.labels.is_some(),
        },
    )?;
    let setup: Setup = net.recv(server)?;
    let fp = setup.config.validate()?;
    options
        .policy
        .check(&setup, options.checkpoint_dir.is_some())?;
    let widths: Vec<usize> = setup.widths.iter().map(|&w| w as usize).collect();
    let me = index as usize;
    if widths.len() != roster.holders().len()
        || widths.get(me) != Some(&features.cols())
        || setup.kind.has_bottom_models() != bottom.is_some()
    {
        return Err(protocol(
            server,
            "set-up does not match this holder's width, the roster or the layer kind",
        ));
    }
    let is_label_holder = setup.config.labels == LabelMode::Holder(index);
    if is_label_holder != options.labels.is_some() {
        return Err(SpnnError::Config(format!(
            "holder {index}: the session {} labels here, but this holder was started {} labels",
            if is_label_holder {
                "expects"
            } else {
                "does not expect"
            },
            if options.labels.is_some() {
                "with"
            } else {
                "without"
            }
        )));
    }
    let dealer = match setup.config.dealer {
        DealerMode::Server => server,
        DealerMode::Separate => roster.id_of(Role::Dealer)?,
    };
    let holders = roster.holders();
    let d = widths.iter().sum();
    let mut party = Party {
        net,
        me,
        holders,
        server,
        dealer,
        widths,
        d,
        h: setup.output as usize,
        fp,
        config: setup.config,
        kind: setup.kind,
        features,
        seeds: Vec::new(),
        clipped: std::cell::Cell::new(0),
    };
    party.seeds = exchange_pair_seeds(&party)?;
    let mut engine: Box<dyn Engine> = match (bottom, party.config.protocol) {
        (Some(runner), _) => Box::new(bottom::BottomEngine::new(runner)),
        (None, Protocol::SecretSharing) => Box::new(ss::SsEngine::new(&party)?),
        (None, Protocol::Paillier) => Box::new(he::HeEngine::establish(
            &party,
            options.paillier,
            &options.policy,
        )?),
    };
    if options
        .labels
        .as_ref()
        .is_some_and(|l| l.table.labels().is_none())
        && setup.resume.is_none()
    {
        return Err(SpnnError::Config(
            "the label holder scores new records only with a trained model: the session must \
             resume from a checkpoint"
                .into(),
        ));
    }
    let labels = match options.labels {
        Some(labels) => {
            let secret = party
                .config
                .randomness
                .rng(party.id(), 0, "randomised-response")
                .secret_seed();
            Some(LabelState {
                labels,
                secret,
                pending_update: false,
            })
        }
        None => None,
    };
    let ledger = match (
        options.policy.max_forwards_per_sample_overall,
        options.forward_ledger,
    ) {
        (None, _) => None,
        (Some(budget), Some(path)) => Some(Ledger::open(
            path,
            budget,
            options.policy.max_forwards_per_sample,
            party.features.ids(),
            setup.resume.is_some(),
        )?),
        (Some(_), None) => {
            return Err(SpnnError::Config(
                "a forward budget over sessions (max_forwards_per_sample_overall) needs a \
                 forward ledger file (HolderOptions::forward_ledger)"
                    .into(),
            ));
        }
    };
    let mut holder = Holder {
        checkpoint_dir: options.checkpoint_dir,
        forward_budget: options
            .policy
            .max_forwards_per_sample
            .map(|n| (n, std::collections::HashMap::new())),
        ledger,
        keep_checkpoints: options.keep_checkpoints,
        max_learning_rate: options.policy.max_learning_rate,
        #[cfg(feature = "insecure-test-hooks")]
        allow_reveal: options.allow_insecure_reveal,
        labels,
        forwards: 0,
        updates: 0,
        last_step: None,
    };
    if let Some(tag) = &setup.resume {
        holder.load(&party, engine.as_mut(), tag)?;
    }
    let served = holder.serve(&party, engine.as_mut());
    // Whatever ended the session — the schedule, an error, a server that vanished — the
    // forwards it served replace the reservation (a killed process leaves the reservation).
    let recorded = holder.ledger.as_ref().map_or(Ok(()), Ledger::save);
    let summary = served?;
    recorded?;
    Ok(summary)
}

/// A holder's count of forwards served per sample over every session that shares the ledger
/// file ([`PartyPolicy::max_forwards_per_sample_overall`]).
///
/// It fails closed: at the start of a session the file is charged, for every sample this
/// holder has, with what the session could spend — the per-session budget, or the whole
/// remaining budget without one — and only a session that ends with the holder process alive
/// (on schedule, on an error, or because the server vanished) writes back what it actually
/// served. A holder killed mid-session therefore loses its reservation, never its count. The
/// file is locked for the session: two sessions on one ledger cannot run at once.
struct Ledger {
    path: PathBuf,
    budget: u32,
    served: std::collections::HashMap<u64, u32>,
    /// Held for the session (an OS lock, released if the process dies).
    _lock: std::fs::File,
}

impl Ledger {
    /// Locks and reads the ledger at `path` (or starts an empty one, except for a resumed
    /// session, which must find the ledger its first session wrote), then writes the
    /// reservation of a session that may serve `per_session` forwards of each of `ids`.
    fn open(
        path: PathBuf,
        budget: u32,
        per_session: Option<u32>,
        ids: &[u64],
        resume: bool,
    ) -> Result<Self> {
        let persistence = |reason: String| SpnnError::Persistence {
            path: path.display().to_string(),
            reason,
        };
        let lock_path = PathBuf::from(format!("{}.lock", path.display()));
        if let Some(dir) = lock_path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| persistence(e.to_string()))?;
        }
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| persistence(format!("cannot open its lock: {e}")))?;
        lock.try_lock().map_err(|e| {
            persistence(format!(
                "another session is using this forward ledger ({e}); sessions that share a \
                 ledger run one at a time"
            ))
        })?;
        let served = if path.exists() {
            let bytes = checkpoint::read_sealed(&path)?;
            let entries: Vec<(u64, u32)> = spnn_net::codec::decode_exact(&bytes)
                .map_err(|e| persistence(format!("not a forward ledger: {e}")))?;
            entries.into_iter().collect()
        } else if resume {
            return Err(persistence(
                "a resumed session needs the forward ledger its earlier sessions wrote; it is \
                 missing"
                    .into(),
            ));
        } else {
            std::collections::HashMap::new()
        };
        let ledger = Self {
            path,
            budget,
            served,
            _lock: lock,
        };
        let reserve = per_session.unwrap_or(budget);
        let reserved: std::collections::HashMap<u64, u32> = ids
            .iter()
            .map(|&id| {
                let now = ledger.served.get(&id).copied().unwrap_or(0);
                (id, now.saturating_add(reserve).min(budget.max(now)))
            })
            .collect();
        ledger.write(&reserved)?;
        Ok(ledger)
    }

    /// Writes what was actually served.
    fn save(&self) -> Result<()> {
        self.write(&self.served)
    }

    /// Writes `counts` (sorted by sample id).
    fn write(&self, counts: &std::collections::HashMap<u64, u32>) -> Result<()> {
        let mut entries: Vec<(u64, u32)> = counts.iter().map(|(&k, &v)| (k, v)).collect();
        entries.sort_unstable();
        checkpoint::write_sealed(&self.path, &spnn_net::codec::encode_to_vec(&entries))
    }
}

/// Set-up: holder `i` draws the seed it shares with every holder `j > i` and sends it to `j`
/// directly; the server and the dealer never see one.
fn exchange_pair_seeds(p: &Party) -> Result<Vec<Option<SecretSeed>>> {
    let mut seeds: Vec<Option<SecretSeed>> = vec![None; p.k()];
    for (j, seed) in seeds.iter_mut().enumerate().skip(p.me + 1) {
        let s = p
            .config
            .randomness
            .rng(p.id(), 0, &format!("pair-seed-{j}"))
            .secret_seed();
        p.net.send(p.holders[j], &PairSeed(s.clone()))?;
        *seed = Some(s);
    }
    for (j, seed) in seeds.iter_mut().enumerate().take(p.me) {
        let PairSeed(s) = p.net.recv(p.holders[j])?;
        *seed = Some(s);
    }
    Ok(seeds)
}

/// Adds one forward of each of `ids` to `served`, or refuses (changing nothing) if a sample
/// would exceed `budget`; `scope` names the budget and its rule in the refusal.
fn spend(
    served: &mut std::collections::HashMap<u64, u32>,
    budget: u32,
    ids: &[u64],
    scope: impl FnOnce() -> String,
) -> Result<()> {
    let mut after: std::collections::HashMap<u64, u32> = std::collections::HashMap::new();
    for &id in ids {
        let n = after
            .entry(id)
            .or_insert_with(|| served.get(&id).copied().unwrap_or(0));
        *n += 1;
        if *n > budget {
            return Err(SpnnError::Policy(format!(
                "the server asks for sample {id} a forward beyond this holder's budget of \
                 {budget} {} — repeated forwards average the noise on Z down",
                scope()
            )));
        }
    }
    served.extend(after);
    Ok(())
}

/// A holder checkpoint's payload: `(holder, forwards, updates, engine state, the label holder's
/// top layers and randomised-response seed)`.
pub(crate) type CheckpointParts = (u64, u64, u64, Vec<u8>, Option<(Blob, SecretSeed)>);

/// Splits a holder checkpoint's payload.
pub(crate) fn parse_checkpoint(payload: &[u8]) -> std::result::Result<CheckpointParts, String> {
    let mut r = Reader::new(payload);
    let (me, forwards, updates) = <(u64, u64, u64)>::read(&mut r).map_err(|e| e.to_string())?;
    let Blob(state) = Blob::read(&mut r).map_err(|e| e.to_string())?;
    let labels = Option::<(Blob, SecretSeed)>::read(&mut r).map_err(|e| e.to_string())?;
    r.finish().map_err(|e| e.to_string())?;
    Ok((me, forwards, updates, state, labels))
}

/// The party loop's own state.
struct Holder {
    checkpoint_dir: Option<PathBuf>,
    /// The policy's forward budget per sample, and the forwards served so far per sample id.
    forward_budget: Option<(u32, std::collections::HashMap<u64, u32>)>,
    /// The budget over sessions and its ledger.
    ledger: Option<Ledger>,
    keep_checkpoints: usize,
    /// The policy's cap on an update's learning rate.
    max_learning_rate: Option<f64>,
    #[cfg(feature = "insecure-test-hooks")]
    allow_reveal: bool,
    labels: Option<LabelState>,
    forwards: u64,
    updates: u64,
    /// The last forward step of this session.
    last_step: Option<u64>,
}

impl Holder {
    fn serve(&mut self, p: &Party, engine: &mut dyn Engine) -> Result<HolderSummary> {
        loop {
            let cmd: Command = p.net.recv(p.server)?;
            match cmd {
                Command::Forward { step, ids, train } => {
                    // A step the server repeats would repeat this holder's mask: two shares
                    // under one mask differ by the masks' absence. Steps only move forward.
                    if self.last_step.is_some_and(|last| step <= last) {
                        return Err(protocol(
                            p.server,
                            format!(
                                "forward step {step} after step {}: steps must increase",
                                self.last_step.unwrap_or_default()
                            ),
                        ));
                    }
                    self.last_step = Some(step);
                    // Ids this holder does not have are refused before anything is counted.
                    if let Some(&id) = ids.iter().find(|&&id| p.features.row_of(id).is_err()) {
                        return Err(protocol(
                            p.server,
                            format!("a forward of sample {id}, which this holder does not have"),
                        ));
                    }
                    self.spend_forwards(&ids)?;
                    let out = engine.forward(p, step, &ids, train)?;
                    let bottom = p.kind.has_bottom_models();
                    let purpose = if bottom { "bottom-output" } else { "z-share" };
                    let mut masked = out;
                    if !bottom && p.config.z_noise > 0.0 {
                        masked.add_assign(&p.z_noise(step, masked.shape())?)?;
                    }
                    if p.kind.masks_outputs() {
                        masked.add_assign(&p.server_mask(purpose, step, masked.shape())?)?;
                    }
                    if bottom {
                        p.net.send(p.server, &MaskedOutput(masked))?;
                    } else {
                        p.net.send(p.server, &ZShare(masked))?;
                    }
                    self.forwards += 1;
                    self.head(p, step, &ids, train)?;
                }
                Command::Backward { step, scale } => engine.backward(p, step, scale)?,
                Command::Deal { .. } => {
                    return Err(protocol(p.server, "a dealer's command sent to a holder"));
                }
                Command::Update { step, lr } => {
                    if let Some(cap) = self.max_learning_rate
                        && (lr.is_nan() || lr > cap)
                    {
                        return Err(SpnnError::Policy(format!(
                            "the server asks for an update at learning rate {lr}; this holder \
                             applies at most {cap} (a huge rate lets the next Z reveal the \
                             inner products of the last batch's features with the next) \
                             (policy: max_learning_rate)"
                        )));
                    }
                    // A zero, negative or tiny rate freezes or reverses the top layers, so the
                    // server could query the same model again and average its gradients.
                    if let Some(l) = &self.labels {
                        let expected = l.labels.learning_rate;
                        if !(lr.is_finite() && lr > 0.0) || expected.is_some_and(|e| e != lr) {
                            return Err(protocol(
                                p.server,
                                match expected {
                                    Some(e) => format!(
                                        "learning rate {lr}: the label holder's schedule says {e}"
                                    ),
                                    None => format!(
                                        "learning rate {lr}: the label holder needs a finite \
                                         rate > 0"
                                    ),
                                },
                            ));
                        }
                    }
                    engine.update(p, step, lr)?;
                    if let Some(l) = self.labels.as_mut() {
                        l.labels.head.update(lr)?;
                        l.pending_update = false;
                    }
                    self.updates += 1;
                }
                Command::Evaluate => {
                    let l = self.labels.as_mut().ok_or_else(|| {
                        protocol(p.server, "Evaluate sent to a holder without labels")
                    })?;
                    let metrics = l.labels.head.take_metrics();
                    // The label holder's own log, on its own host.
                    if metrics.count > 0 {
                        tracing::info!(
                            "label holder: evaluation {}: {}, loss {:.4} over {} samples{}",
                            l.labels.metrics.all().len() + 1,
                            metrics.quality(),
                            metrics.loss,
                            metrics.count,
                            if l.labels.reports.metrics {
                                " (reported to the server)"
                            } else {
                                ""
                            }
                        );
                    }
                    l.labels.metrics.push(metrics);
                    let report = l.labels.reports.metrics.then_some(metrics);
                    p.net.send(p.server, &MetricsReport(report))?;
                }
                Command::Save { tag } => {
                    self.save(p, engine, &tag)?;
                    if let Some(dir) = &self.checkpoint_dir {
                        let prefix = format!("holder-{}-", p.me);
                        checkpoint::retain_numbered(dir, &prefix, self.keep_checkpoints)?;
                    }
                    p.net.send(p.server, &Ack)?;
                }
                #[cfg(feature = "insecure-test-hooks")]
                Command::RevealSharesForTests => {
                    let share = engine.weight_share().filter(|_| self.allow_reveal);
                    let Some(share) = share else {
                        return Err(protocol(
                            p.server,
                            "asked to reveal the weight share; this holder does not allow it",
                        ));
                    };
                    p.net.send(p.server, &RevealedShare(share.clone()))?;
                }
                Command::Shutdown => {
                    return Ok(HolderSummary {
                        forwards: self.forwards,
                        updates: self.updates,
                        clipped_features: p.clipped.get(),
                        he: engine.he_counters(),
                    });
                }
            }
        }
    }

    /// Counts a forward of `ids` against the policy's budgets per sample (in this session, and
    /// over sessions in the ledger); refuses the whole forward, before computing anything, if
    /// one of them has used a budget.
    fn spend_forwards(&mut self, ids: &[u64]) -> Result<()> {
        if let Some((budget, served)) = self.forward_budget.as_mut() {
            spend(served, *budget, ids, || {
                "per session (policy: max_forwards_per_sample)".into()
            })?;
        }
        if let Some(l) = self.ledger.as_mut() {
            let path = &l.path;
            spend(&mut l.served, l.budget, ids, || {
                format!(
                    "over every session recorded in {} (policy: \
                     max_forwards_per_sample_overall)",
                    path.display()
                )
            })?;
        }
        Ok(())
    }

    /// The label holder's part of a forward: activations in; for training, the defended
    /// gradient out; then the report its `LabelReports` allow.
    fn head(&mut self, p: &Party, step: u64, ids: &[u64], train: bool) -> Result<()> {
        let Some(LabelState {
            labels,
            secret,
            pending_update,
        }) = self.labels.as_mut()
        else {
            return Ok(());
        };
        let Activations(act) = p.net.recv(p.server)?;
        if act.rows != ids.len() || labels.input_width.is_some_and(|w| w != act.cols) {
            return Err(protocol(
                p.server,
                format!(
                    "activations {}x{} for {} samples; the label holder's top layers take {} \
                     columns",
                    act.rows,
                    act.cols,
                    ids.len(),
                    labels
                        .input_width
                        .map_or("any number of".to_string(), |w| w.to_string())
                ),
            ));
        }
        if train {
            // Two releases from the same top layers let the server average their noise.
            if std::mem::replace(pending_update, true) {
                return Err(protocol(
                    p.server,
                    "a training batch before the update of the last: the label holder's top \
                     layers move between releases",
                ));
            }
            if let Some(id) = labels
                .test_ids
                .as_ref()
                .and_then(|t| ids.iter().find(|id| t.contains(id)))
            {
                return Err(protocol(
                    p.server,
                    format!("a training forward of sample {id}, which the label holder holds out"),
                ));
            }
            // One id k times in a batch averages k noise draws of one gradient in a step.
            let mut seen = std::collections::HashSet::with_capacity(ids.len());
            if let Some(id) = ids.iter().find(|&&id| !seen.insert(id)) {
                return Err(protocol(
                    p.server,
                    format!("sample {id} twice in one training batch"),
                ));
            }
        }
        let loss = if train {
            let truth = labels.table.gather_labels(ids)?;
            // A regression has no classes to draw from: refused with randomised response.
            let y = match labels.head.classes() {
                Some(c) => labels.defence.training_labels(secret, ids, &truth, c),
                None => truth,
            };
            let step_out = labels.head.train_batch(&act, &y)?;
            let mut rng = p.config.randomness.rng(p.id(), step, "label-defence");
            let grad =
                labels
                    .defence
                    .perturb(step_out.gradient, ids, secret, &mut rng, step_out.bound)?;
            p.net.send(p.server, &HeadGradient(grad))?;
            Some(step_out.loss)
        } else {
            // Metrics only over the label holder's own held-out samples (all of them, when it
            // does not know the split); new records have no labels. Others are scored only.
            let measured = labels.table.labels().is_some()
                && labels
                    .test_ids
                    .as_ref()
                    .is_none_or(|t| ids.iter().all(|id| t.contains(id)));
            let truth = if measured {
                Some(labels.table.gather_labels(ids)?)
            } else {
                None
            };
            let (scores, loss) = labels.head.eval_batch(&act, truth.as_deref())?;
            labels.scores.record(ids, &scores);
            loss
        };
        let loss = loss.filter(|_| labels.reports.loss);
        p.net.send(p.server, &HeadReport { loss })?;
        Ok(())
    }

    fn checkpoint_path(&self, p: &Party, tag: &str) -> Result<PathBuf> {
        let dir = self.checkpoint_dir.as_ref().ok_or_else(|| {
            SpnnError::Policy(format!(
                "holder {} was asked to save or resume, and has no checkpoint directory",
                p.me
            ))
        })?;
        if tag.is_empty()
            || tag.len() > 128
            || !tag
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(protocol(
                p.server,
                format!("invalid checkpoint tag {tag:?}"),
            ));
        }
        Ok(dir.join(format!("holder-{}-{tag}.ckpt", p.me)))
    }

    fn save(&self, p: &Party, engine: &dyn Engine, tag: &str) -> Result<()> {
        let path = self.checkpoint_path(p, tag)?;
        let mut payload = Vec::new();
        (p.me as u64, self.forwards, self.updates).encode(&mut payload);
        Blob(engine.save()?).encode(&mut payload);
        let labels = match &self.labels {
            Some(l) => Some((Blob(l.labels.head.save()?), l.secret.clone())),
            None => None,
        };
        labels.encode(&mut payload);
        checkpoint::write_sealed(&path, &payload)
    }

    fn load(&mut self, p: &Party, engine: &mut dyn Engine, tag: &str) -> Result<()> {
        let path = self.checkpoint_path(p, tag)?;
        let payload = checkpoint::read_sealed(&path)?;
        let bad = |reason: String| SpnnError::Persistence {
            path: path.display().to_string(),
            reason,
        };
        let (me, forwards, updates, state, head) = parse_checkpoint(&payload).map_err(bad)?;
        if me != p.me as u64 {
            return Err(bad(format!(
                "checkpoint of holder {me}, this is holder {}",
                p.me
            )));
        }
        engine.load(p, &state).map_err(bad)?;
        match (self.labels.as_mut(), head) {
            (Some(l), Some((Blob(head), seed))) => {
                l.labels.head.load(head)?;
                l.secret = seed;
            }
            (None, None) => {}
            (Some(_), None) => return Err(bad("the checkpoint has no top layers".into())),
            (None, Some(_)) => {
                return Err(bad("the checkpoint has a label holder's top layers".into()));
            }
        }
        self.forwards = forwards;
        self.updates = updates;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::head::TopLayers;
    use burn::nn::LinearConfig;

    /// A label that is not a class of the head stops the label holder before it trains (found
    /// mid-run, it would end the session at the batch holding it and tell the server which).
    #[test]
    fn every_label_must_be_a_class_of_the_head() {
        let device = burn::tensor::Device::flex().autodiff();
        let ids: Vec<u64> = (0..4).collect();
        let features = Table::new(ids.clone(), vec!["x".into()], vec![0.0; 4], None).unwrap();
        let head = |classes| {
            TopLayers::multiclass(
                LinearConfig::new(2, classes).init(&device),
                burn::optim::SgdConfig::new().init(),
                device.clone(),
                classes,
            )
        };
        let labelled =
            |labels: Vec<f32>| Table::new(ids.clone(), vec![], vec![], Some(labels)).unwrap();
        assert!(
            HolderLabels::new(labelled(vec![0.0, 1.0, 2.0, 0.0]), head(3))
                .check_covers(&features)
                .is_ok()
        );
        for bad in [3.0, 1.5, -1.0, f32::NAN] {
            let e = HolderLabels::new(labelled(vec![0.0, 1.0, bad, 0.0]), head(3))
                .check_covers(&features)
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("sample 2") && e.contains("not a class 0 … 2"),
                "{e}"
            );
        }
        // A binary head takes 0 and 1 only.
        let binary = TopLayers::new(
            LinearConfig::new(2, 1).init(&device),
            burn::optim::SgdConfig::new().init(),
            device.clone(),
        );
        assert!(
            HolderLabels::new(labelled(vec![0.0, 1.0, 2.0, 0.0]), binary)
                .check_covers(&features)
                .is_err()
        );
    }
}
