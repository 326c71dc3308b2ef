//! The server's side of an SPNN session: it drives every step, deals by default, and learns the
//! aggregated first-layer output `Z = X·W` per batch and nothing about the holders' data beyond
//! it.
//!
//! [`ServerSession`] is a cheap handle (`Arc`): Burn modules keep a clone, and clones drive the
//! same session. Protocol calls serialise on an internal lock.

use std::sync::{Arc, Mutex, MutexGuard};

use spnn_crypto::{FixedPoint, RingMatrix};
use spnn_net::{FloatMatrix, MeterSnapshot, Network, PartyId, Role};

use super::bounds::Bounds;
use super::bundle;
use super::dealer::{DealerEngine, DealerParams};
use crate::config::{DealerMode, LabelMode, Protocol, SpnnConfig};
use crate::error::{Result, SpnnError, protocol};
use crate::messages::*;
use crate::optim::OptimizerConfig;
use burn::optim::ModuleOptimizer;

/// What the server asks of a session at set-up.
#[derive(Clone, Debug)]
pub struct SessionSpec {
    /// Output width `h` of the private first layer.
    pub output: usize,
    /// The protocol configuration, sent to every party.
    pub config: SpnnConfig,
    /// Resume every party from this checkpoint tag instead of initialising.
    pub resume: Option<String>,
    /// The model's Burn optimiser, if stated here: its update on the shares replaces the
    /// configuration's SGD fields at set-up ([`SessionSpec::with_optimizer`]).
    pub optimizer: Option<OptimizerConfig>,
}

impl SessionSpec {
    /// A fresh session with output width `output` and the default configuration.
    pub fn new(output: usize) -> Self {
        Self {
            output,
            config: SpnnConfig::default(),
            resume: None,
            optimizer: None,
        }
    }

    /// The same with the model's Burn optimiser, stated once for every parameter:
    /// [`ServerSession::optimizer`] returns it for the server's layers, and the holders run its
    /// update on the private weights' shares (module [`crate::optim`]). Session set-up refuses
    /// what the holders cannot compute on shares (Adam, gradient clipping), with the reason.
    pub fn with_optimizer(mut self, optimizer: impl Into<OptimizerConfig>) -> Self {
        self.optimizer = Some(optimizer.into());
        self
    }

    /// The same with another configuration.
    pub fn with_config(mut self, config: SpnnConfig) -> Self {
        self.config = config;
        self
    }

    /// The same, resuming from checkpoint `tag`.
    pub fn resuming(mut self, tag: impl Into<String>) -> Self {
        self.resume = Some(tag.into());
        self
    }
}

/// What the server may inspect after a step: only values it legitimately learns.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServerView {
    /// The last aggregated first-layer output `Z` (B × h, row-major; of the last step when
    /// an evaluation batch was run in steps).
    pub z: Vec<f32>,
    /// The last boundary gradient `G = ∂L/∂Z` (B × h, row-major).
    pub g: Vec<f32>,
    /// The last gradient the label holder returned for the top activations (label-holder
    /// mode; B × a, row-major; empty otherwise).
    pub head_gradient: Vec<f32>,
    /// The label holder's last reported batch loss, if it reports losses.
    pub head_loss: Option<f64>,
}

struct State {
    net: Network,
    holders: Vec<PartyId>,
    separate_dealer: Option<PartyId>,
    label_holder: Option<PartyId>,
    dealer: DealerEngine,
    widths: Vec<usize>,
    h: usize,
    fp: FixedPoint,
    config: SpnnConfig,
    step: u64,
    updates: u64,
    awaiting_backward: Option<(u64, usize)>,
    /// Backward passes of this session, against which a run that never updates is caught.
    backwards: u64,
    clipped_gradients: u64,
    error: Option<SpnnError>,
    view: ServerView,
    /// The checkpoint tag every party resumed from, if any.
    resumed_from: Option<String>,
}

impl State {
    /// Refuses to evaluate or save a session that trained without ever updating the private
    /// weights: the model's optimiser is not the session's ([`ServerSession::optimizer`]).
    fn check_updated(&self) -> Result<()> {
        if self.backwards > 0 && self.updates == 0 {
            return Err(SpnnError::Config(format!(
                "{} backward passes but no update of the private weights: train with the \
                 session's optimiser (ServerSession::optimizer), whose step updates them",
                self.backwards
            )));
        }
        Ok(())
    }
}

/// Most rows of one evaluation step: [`ServerSession::forward`] runs a larger evaluation batch
/// in steps of this size, so every message stays far below the network's frame limit and the
/// parties' memory stays bounded (SPNN-HE's packed ciphertexts are the largest: about
/// 4096 × ⌈h / slots⌉ × 512 bytes).
pub const EVALUATION_ROWS: usize = 4096;

/// The server's handle on an SPNN session.
#[derive(Clone)]
pub struct ServerSession {
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for ServerSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.lock();
        write!(
            f,
            "ServerSession({} holders, {}→{})",
            s.holders.len(),
            s.widths.iter().sum::<usize>(),
            s.h
        )
    }
}

impl ServerSession {
    /// Runs the set-up of an SPNN-SS session ([`crate::PrivateLinear`]) with every holder (and
    /// the dealer): receives their hellos, checks them, and sends the session parameters.
    pub fn establish(net: Network, spec: SessionSpec) -> Result<Self> {
        Self::establish_kind(net, spec, LayerKind::PrivateLinear)
    }

    /// Runs the set-up of a bottom-model session ([`crate::SecureAggregation`] of the holders'
    /// own models, each with `spec.output` outputs).
    pub fn establish_bottom_models(net: Network, spec: SessionSpec) -> Result<Self> {
        Self::establish_kind(net, spec, LayerKind::BottomModels)
    }

    /// Runs the set-up of a bottom-model session whose holders send their outputs
    /// **unmasked**: plain split learning, for baselines only (see
    /// [`LayerKind::UnmaskedBottomModelsForBaselines`]).
    #[cfg(feature = "insecure-test-hooks")]
    pub fn establish_unmasked_bottom_models_for_baselines(
        net: Network,
        spec: SessionSpec,
    ) -> Result<Self> {
        Self::establish_kind(net, spec, LayerKind::UnmaskedBottomModelsForBaselines)
    }

    /// The layer kind of this session.
    pub fn kind(&self) -> LayerKind {
        self.lock().dealer.params.kind
    }

    fn establish_kind(net: Network, mut spec: SessionSpec, kind: LayerKind) -> Result<Self> {
        if net.role() != Role::Server {
            return Err(SpnnError::Config(format!("{} is not the server", net.me())));
        }
        if let Some(optimizer) = spec.optimizer.take() {
            spec.config = optimizer.apply_to(spec.config)?;
        }
        let fp = spec.config.validate()?;
        if spec.output == 0 {
            return Err(SpnnError::Config(
                "the private layer needs at least one output".into(),
            ));
        }
        let roster = net.roster().clone();
        let holders = roster.holders();
        if holders.len() < 2 {
            return Err(SpnnError::Config(format!(
                "{} holders; SPNN needs at least 2",
                holders.len()
            )));
        }
        if spec.config.protocol == crate::config::Protocol::Paillier {
            // Holder 0's integer share of c·G must fit a 64-bit word with every holder's mask.
            crate::protocol::bounds::Bounds::of(&spec.config)?
                .he_gradient_share_bits(holders.len())?;
        }
        let separate_dealer = match spec.config.dealer {
            DealerMode::Server => None,
            DealerMode::Separate => Some(roster.id_of(Role::Dealer)?),
        };
        let label_holder =
            match spec.config.labels {
                LabelMode::Server => None,
                LabelMode::Holder(i) => Some(*holders.get(i as usize).ok_or_else(|| {
                    SpnnError::Config(format!("label holder {i} does not exist"))
                })?),
            };
        let mut widths = Vec::with_capacity(holders.len());
        for (i, &p) in holders.iter().enumerate() {
            let hello: Hello = net.recv(p)?;
            if hello.version != SPNN_PROTOCOL_VERSION {
                return Err(protocol(
                    p,
                    format!(
                        "speaks SPNN protocol {}, the server {}",
                        hello.version, SPNN_PROTOCOL_VERSION
                    ),
                ));
            }
            if hello.holder as usize != i || hello.width == 0 {
                return Err(protocol(
                    p,
                    format!(
                        "introduced itself as holder {} with {} columns",
                        hello.holder, hello.width
                    ),
                ));
            }
            if hello.has_labels != (label_holder == Some(p)) {
                return Err(protocol(
                    p,
                    "disagrees with the server about who holds the labels",
                ));
            }
            widths.push(hello.width as usize);
        }
        let setup = Setup {
            widths: widths.iter().map(|&w| w as u32).collect(),
            output: spec.output as u32,
            kind,
            config: spec.config,
            resume: spec.resume.clone(),
        };
        net.broadcast(&holders, &setup)?;
        if let Some(d) = separate_dealer {
            net.send(d, &setup)?;
        }
        let dealer = DealerEngine::new(DealerParams {
            me: net.me(),
            holders: holders.clone(),
            widths: widths.clone(),
            d: widths.iter().sum(),
            h: spec.output,
            config: spec.config,
            kind,
        });
        Ok(Self {
            state: Arc::new(Mutex::new(State {
                net,
                holders,
                separate_dealer,
                label_holder,
                dealer,
                widths,
                h: spec.output,
                fp,
                config: spec.config,
                step: 0,
                updates: 0,
                awaiting_backward: None,
                backwards: 0,
                clipped_gradients: 0,
                error: None,
                view: ServerView::default(),
                resumed_from: spec.resume.clone(),
            })),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere cannot leave the protocol state half-updated in a way a later call
        // could misread: every step checks its preconditions.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Input width `d = Σ d_i` of the private layer.
    pub fn input_width(&self) -> usize {
        self.lock().widths.iter().sum()
    }

    /// Output width `h` of the private layer.
    pub fn output_width(&self) -> usize {
        self.lock().h
    }

    /// Number of data holders.
    pub fn holders(&self) -> usize {
        self.lock().holders.len()
    }

    /// The protocol configuration.
    pub fn config(&self) -> SpnnConfig {
        self.lock().config
    }

    /// The server's traffic so far.
    pub fn meters(&self) -> MeterSnapshot {
        self.lock().net.meters()
    }

    /// What the server has legitimately seen at the last step (for tests and audits).
    pub fn view(&self) -> ServerView {
        self.lock().view.clone()
    }

    /// Burn's optimiser for a model whose private layers run on this session: the session's
    /// SGD ([`SessionSpec::with_optimizer`]) for the server's parameters, and for the private
    /// layers' anchors [`crate::optim::SecureUpdate`], which applies the holders' secure update
    /// with the learning rate Burn's scheduler gives the step. Hand it to the Learner, or call
    /// `optim.step(lr, model, grads)` in a loop; nothing else updates the private weights.
    /// A model holds one private layer (its anchor has a fixed id, [`crate::optim::ANCHOR_ID`],
    /// so the optimiser finds it after a record is loaded).
    pub fn optimizer(&self) -> ModuleOptimizer {
        crate::optim::module_optimizer(self)
    }

    /// The checkpoint tag every party resumed from at set-up (`SessionSpec::resuming`), if any.
    pub fn resumed_from(&self) -> Option<String> {
        self.lock().resumed_from.clone()
    }

    /// Stores an error raised inside a Burn op (which cannot return one) for [`Self::check`].
    pub(crate) fn record_error(&self, e: SpnnError) {
        let mut s = self.lock();
        if s.error.is_none() {
            s.error = Some(e);
        }
    }

    /// Returns (and clears) the first error raised inside a Burn op since the last check.
    pub fn check(&self) -> Result<()> {
        match self.lock().error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Sends `cmd` to every holder, and to a separate dealer what it needs of it: a forward
    /// becomes `Command::Deal`, which carries the batch size but not the sample ids.
    fn command_all(s: &State, cmd: &Command) -> Result<()> {
        s.net.broadcast(&s.holders, cmd)?;
        if let Some(d) = s.separate_dealer {
            match cmd {
                Command::Forward { step, ids, train } => s.net.send(
                    d,
                    &Command::Deal {
                        step: *step,
                        batch: ids.len() as u64,
                        train: *train,
                    },
                )?,
                cmd => s.net.send(d, cmd)?,
            }
        }
        Ok(())
    }

    /// The first-layer output `Z` (ids.len() × h, row-major) for a batch of sample ids.
    /// With `train`, a [`Self::backward`] may follow. An evaluation batch of any size is run
    /// in steps of at most [`EVALUATION_ROWS`] rows when the labels are at the server (at a
    /// label holder each forward pairs with one [`Self::head`], so the caller splits); a
    /// training batch is one step, bounded by the ring's headroom.
    pub fn forward(&self, ids: &[u64], train: bool) -> Result<Vec<f32>> {
        if !train {
            self.lock().check_updated()?;
        }
        let split = !train && ids.len() > EVALUATION_ROWS && self.lock().label_holder.is_none();
        if !split {
            return self.forward_step(ids, train);
        }
        let mut out = Vec::with_capacity(ids.len() * self.lock().h);
        for chunk in ids.chunks(EVALUATION_ROWS) {
            out.extend(self.forward_step(chunk, false)?);
        }
        Ok(out)
    }

    /// One forward step.
    fn forward_step(&self, ids: &[u64], train: bool) -> Result<Vec<f32>> {
        let mut s = self.lock();
        if let Some(e) = s.error.take() {
            return Err(e);
        }
        if ids.is_empty() {
            return Err(SpnnError::Config("empty batch".into()));
        }
        let step = s.step;
        s.step += 1;
        let cmd = Command::Forward {
            step,
            ids: ids.to_vec(),
            train,
        };
        Self::command_all(&s, &cmd)?;
        if s.separate_dealer.is_none() {
            let st = &mut *s;
            st.dealer.handle(&st.net, &cmd)?;
        }
        let (b, h) = (ids.len(), s.h);
        let bottom = s.dealer.params.kind.has_bottom_models();
        let mut z = RingMatrix::zeros(b, h);
        for &p in &s.holders {
            let share = if bottom {
                s.net.recv::<MaskedOutput>(p)?.0
            } else {
                s.net.recv::<ZShare>(p)?.0
            };
            if share.shape() != (b, h) {
                return Err(protocol(
                    p,
                    format!(
                        "output share of shape {:?}, expected {:?}",
                        share.shape(),
                        (b, h)
                    ),
                ));
            }
            z.add_assign(&share)?;
        }
        // SPNN-SS shares are products at scale 2^{2f}; masked bottom outputs are at 2^f.
        let scale = if bottom {
            s.fp.frac_bits()
        } else {
            2 * s.fp.frac_bits()
        };
        let inv = 1.0 / 2f64.powi(scale as i32);
        let out: Vec<f32> = z
            .as_slice()
            .iter()
            .map(|&v| ((v as i64) as f64 * inv) as f32)
            .collect();
        s.awaiting_backward = train.then_some((step, b));
        s.view.z = out.clone();
        Ok(out)
    }

    /// Sends the boundary gradient `G = ∂L/∂Z` (B × h, row-major) back as random additive
    /// shares, scaled by the public factor of [`crate::GradientScale`].
    pub fn backward(&self, grad: &[f32]) -> Result<()> {
        let mut s = self.lock();
        let (step, b) = s
            .awaiting_backward
            .take()
            .ok_or_else(|| SpnnError::Config("backward without a training forward".into()))?;
        s.backwards += 1;
        if grad.len() != b * s.h {
            return Err(SpnnError::Config(format!(
                "gradient of {} values for a {b}x{} output",
                grad.len(),
                s.h
            )));
        }
        if grad.iter().any(|g| !g.is_finite()) {
            return Err(SpnnError::NonFinite("boundary gradient"));
        }
        s.view.g = grad.to_vec();
        if s.dealer.params.kind.has_bottom_models() {
            // Bottom models: every holder gets G itself for its local backward.
            Self::command_all(&s, &Command::Backward { step, scale: 1.0 })?;
            let g = FloatMatrix::new(b, s.h, grad.to_vec())
                .map_err(|_| SpnnError::NonFinite("boundary gradient"))?;
            for &p in &s.holders {
                s.net.send(p, &BottomGradient(g.clone()))?;
            }
            return Ok(());
        }
        let scale = s.config.gradient_scale.factor(b);
        // The holders would stop at this batch's backward: say so here, before any message.
        if s.config.protocol == Protocol::SecretSharing {
            super::bounds::ring_bits(
                Bounds::of(&s.config)?.backward_product(b),
                &format!("the weight gradient of a batch of {b}"),
            )?;
        }
        // Clip c·G to the public bound the holders' truncations rely on.
        let clip = s.config.gradient_clip;
        let mut clipped = 0;
        let scaled: Vec<f32> = grad
            .iter()
            .map(|&g| {
                let v = (g as f64 * scale) as f32;
                if v.abs() > clip {
                    clipped += 1;
                }
                v.clamp(-clip, clip)
            })
            .collect();
        s.clipped_gradients += clipped;
        let g = s.fp.encode_matrix(b, s.h, &scaled)?;
        let cmd = Command::Backward { step, scale };
        Self::command_all(&s, &cmd)?;
        let mut rng = s.config.randomness.rng(s.net.me(), step, "gradient-share");
        let (explicit, seeds) = match s.config.protocol {
            Protocol::SecretSharing => bundle::deal(vec![g], s.holders.len(), &mut rng)?,
            Protocol::Paillier => {
                let bounds = Bounds::of(&s.config)?;
                let (g, seeds) = bundle::deal_integer(
                    &g,
                    s.holders.len(),
                    bounds.he_gradient_mask_bits(),
                    &mut rng,
                );
                (vec![g], seeds)
            }
        };
        s.net.send(
            s.holders[0],
            &GradShare(explicit.into_iter().next().expect("one matrix")),
        )?;
        for (seed, &p) in seeds.into_iter().zip(&s.holders[1..]) {
            s.net.send(p, &GradSeed(seed))?;
        }
        if s.separate_dealer.is_none() {
            let st = &mut *s;
            st.dealer.handle(&st.net, &cmd)?;
        }
        Ok(())
    }

    /// Applies the gradients accumulated since the last update to the weight shares, with
    /// learning rate `lr` and the session's SGD. [`Self::optimizer`]'s step calls it; call it
    /// directly only in a loop without a Burn optimiser.
    pub fn update(&self, lr: f64) -> Result<()> {
        let mut s = self.lock();
        if let Some(e) = s.error.take() {
            return Err(e);
        }
        let step = s.updates;
        s.updates += 1;
        let cmd = Command::Update { step, lr };
        Self::command_all(&s, &cmd)?;
        if s.separate_dealer.is_none() {
            let st = &mut *s;
            st.dealer.handle(&st.net, &cmd)?;
        }
        Ok(())
    }

    /// Label-holder mode: sends the top activations to the label holder and returns the
    /// gradient with respect to them (for training) and the batch loss, if the label holder
    /// reports losses.
    pub fn head(
        &self,
        activations: FloatMatrix,
        train: bool,
    ) -> Result<(Option<FloatMatrix>, Option<f64>)> {
        let mut s = self.lock();
        let lh = s.label_holder.ok_or_else(|| {
            SpnnError::Config("the labels are at the server in this session".into())
        })?;
        let (rows, cols) = (activations.rows, activations.cols);
        s.net.send(lh, &Activations(activations))?;
        let grad = if train {
            let HeadGradient(g) = s.net.recv(lh)?;
            if (g.rows, g.cols) != (rows, cols) {
                return Err(protocol(lh, "head gradient of the wrong shape"));
            }
            s.view.head_gradient = g.data.clone();
            Some(g)
        } else {
            None
        };
        let HeadReport { loss } = s.net.recv(lh)?;
        s.view.head_loss = loss;
        Ok((grad, loss))
    }

    /// Label-holder mode: ends an evaluation round. The label holder records the metrics of
    /// the evaluation batches since the last round on its side, and returns them only if its
    /// `LabelReports` allow it (`None` otherwise).
    pub fn label_holder_metrics(&self) -> Result<Option<Metrics>> {
        let s = self.lock();
        let lh = s.label_holder.ok_or_else(|| {
            SpnnError::Config("the labels are at the server in this session".into())
        })?;
        s.net.send(lh, &Command::Evaluate)?;
        let MetricsReport(m) = s.net.recv(lh)?;
        Ok(m)
    }

    /// Asks every party to save its state under `tag` and waits until all have.
    pub fn save(&self, tag: &str) -> Result<()> {
        let s = self.lock();
        s.check_updated()?;
        let cmd = Command::Save { tag: tag.into() };
        Self::command_all(&s, &cmd)?;
        for &p in s.holders.iter().chain(s.separate_dealer.iter()) {
            let Ack = s.net.recv(p)?;
        }
        Ok(())
    }

    /// The session counters `(forward steps, updates)`, for the server's own checkpoint.
    pub fn counters(&self) -> (u64, u64) {
        let s = self.lock();
        (s.step, s.updates)
    }

    /// Restores the counters after resuming from a checkpoint: only on a session that has not
    /// run a step yet (a counter moved back would make the holders refuse the next step).
    pub fn set_counters(&self, (step, updates): (u64, u64)) -> Result<()> {
        let mut s = self.lock();
        if s.step != 0 || s.updates != 0 {
            return Err(SpnnError::Config(
                "session counters can only be restored before the first step".into(),
            ));
        }
        s.step = step;
        s.updates = updates;
        Ok(())
    }

    /// Entries of `c·G` clipped to the session's `gradient_clip` so far.
    pub fn clipped_gradients(&self) -> u64 {
        self.lock().clipped_gradients
    }

    /// Reconstructs `W` (d × h, row-major) from the holders' shares. **Insecure**: exists only
    /// with the `insecure-test-hooks` feature, and every holder must have been started with
    /// `allow_insecure_reveal`.
    #[cfg(feature = "insecure-test-hooks")]
    pub fn reveal_weights_insecure_for_tests(&self) -> Result<Vec<f32>> {
        let s = self.lock();
        s.net
            .broadcast(&s.holders, &Command::RevealSharesForTests)?;
        let mut w = RingMatrix::zeros(s.widths.iter().sum(), s.h);
        for &p in &s.holders {
            let RevealedShare(share) = s.net.recv(p)?;
            w.add_assign(&share)?;
        }
        Ok(s.fp.decode_matrix(&w))
    }

    /// Ends the session for every party.
    pub fn shutdown(&self) -> Result<()> {
        let s = self.lock();
        Self::command_all(&s, &Command::Shutdown)
    }
}
