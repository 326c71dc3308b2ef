//! The dealer: Beaver triples and truncation triples for the holders.
//!
//! The dealer is the server by default ([`crate::config::DealerMode::Server`]) or a separate
//! party ([`run_dealer`]). Either way it sends material to holders only and never receives a
//! value derived from data: the openings `E`, `F` travel between holders.

use std::thread::JoinHandle;

use spnn_net::{Network, PartyId, Role};

use super::policy::PartyPolicy;
use super::{Dealing, bundle, needs_truncations, pairwise};
use crate::config::{Protocol, SpnnConfig};
use crate::error::{Result, SpnnError, protocol};
use crate::messages::{Ack, Command, DealerBundle, DealerSeed, LayerKind, Setup};

/// The dealer's knowledge: shapes and configuration, no data.
#[derive(Clone, Debug)]
pub(crate) struct DealerParams {
    pub(crate) me: PartyId,
    pub(crate) holders: Vec<PartyId>,
    pub(crate) widths: Vec<usize>,
    pub(crate) d: usize,
    pub(crate) h: usize,
    pub(crate) config: SpnnConfig,
    pub(crate) kind: LayerKind,
}

/// A triple being prepared in the background for the step `key` will describe.
#[derive(Debug)]
struct Prefetch {
    key: (u64, usize, bool),
    handle: JoinHandle<Result<pairwise::Dealt>>,
}

/// A command's material being prepared in the background for (purpose, step, dealing).
type TruncationKey = (&'static str, u64, Dealing);
/// One dealt bundle: a seed per holder and holder 0's explicit matrices.
type Dealt = (Vec<spnn_crypto::SecretSeed>, Vec<spnn_crypto::RingMatrix>);
/// The truncation triples of one command, then its element-wise triples and its comparisons'
/// material (each if any).
type DealtTruncations = Vec<Dealt>;

#[derive(Debug)]
struct TruncationPrefetch {
    key: TruncationKey,
    handle: JoinHandle<Result<DealtTruncations>>,
}

/// The dealer: its parameters and material being prepared on other threads — after each
/// forward, the next step's triple and this step's backward truncation triples; after each
/// update, the next update's (for the same learning rate). Material depends only on shapes,
/// steps and the public schedule, never on data, so the dealer can work while the holders and
/// the server do, and its random generation leaves the critical path.
#[derive(Debug)]
pub(crate) struct DealerEngine {
    pub(crate) params: DealerParams,
    prefetch: Option<Prefetch>,
    truncations: Vec<TruncationPrefetch>,
}

const BACKWARD: &str = "backward-truncations";
const UPDATE: &str = "update-truncations";

impl DealerParams {
    /// The material of one backward or update command ([`Dealing`]), for values below `2^62`
    /// (module [`spnn_crypto::beaver`]; the holders check their own, tighter bounds against
    /// it): its truncation triples `[r, ⌊r/2^s⌋, b]` ([`bundle::deal_truncations`]), its
    /// element-wise triples ([`bundle::deal_products`], for gradient clipping and Adam) and its
    /// comparisons' material ([`bundle::deal_comparisons`], for gradient clipping), each a seed
    /// per holder and holder 0's explicit shares, and each only if it is not empty, as the
    /// holders receive them.
    fn deal(&self, purpose: &str, step: u64, dealing: &Dealing) -> Result<DealtTruncations> {
        let mut rng = self.config.randomness.rng(self.me, step, purpose);
        let shapes = dealing.dims(self.d, self.h);
        let k = self.holders.len();
        let mut dealt = Vec::new();
        if !shapes.truncations.is_empty() {
            let shifts = dealing.truncations.iter().map(|&(_, shift)| shift);
            let items: Vec<_> = shapes.truncations.into_iter().zip(shifts).collect();
            dealt.push(bundle::deal_truncations(&items, k, &mut rng)?);
        }
        if !shapes.products.is_empty() {
            dealt.push(bundle::deal_products(&shapes.products, k, &mut rng)?);
        }
        if !shapes.comparisons.is_empty() {
            dealt.push(bundle::deal_comparisons(&shapes.comparisons, k, &mut rng)?);
        }
        Ok(dealt)
    }

    /// The material of one forward of `batch` samples (and its backward, when `train`): the
    /// one-sided triples of [`super::pairwise`].
    fn triple(&self, step: u64, batch: usize, train: bool) -> Result<pairwise::Dealt> {
        let mut rng = self.config.randomness.rng(self.me, step, "triple");
        let widths = &self.widths;
        pairwise::deal(
            &pairwise::StepShape {
                widths,
                batch,
                h: self.h,
                train,
            },
            &mut rng,
        )
    }

    fn send_material(&self, net: &Network, dealt: pairwise::Dealt) -> Result<()> {
        for ((seed, explicit), &holder) in dealt.into_iter().zip(&self.holders) {
            net.send(holder, &DealerSeed(seed))?;
            net.send(holder, &DealerBundle(explicit))?;
        }
        Ok(())
    }
}

impl DealerEngine {
    pub(crate) fn new(params: DealerParams) -> Self {
        Self {
            params,
            prefetch: None,
            truncations: Vec::new(),
        }
    }

    /// Starts preparing the truncation triples of `key` on another thread.
    fn prefetch_truncations(&mut self, key: TruncationKey) {
        let p = &self.params;
        if !needs_truncations(&p.config, p.kind) || key.2.is_empty() {
            return;
        }
        let params = p.clone();
        let (purpose, step, dealing) = key.clone();
        self.truncations.push(TruncationPrefetch {
            key,
            handle: std::thread::spawn(move || params.deal(purpose, step, &dealing)),
        });
    }

    /// Sends the triple of one forward, then starts preparing the next step's (same shape).
    pub(crate) fn forward(
        &mut self,
        net: &Network,
        step: u64,
        batch: usize,
        train: bool,
    ) -> Result<()> {
        if self.params.kind != LayerKind::PrivateLinear
            || self.params.config.protocol == Protocol::Paillier
        {
            return Ok(());
        }
        let key = (step, batch, train);
        let dealt = match self.prefetch.take() {
            Some(p) if p.key == key => p.handle.join().map_err(|_| {
                SpnnError::Config("the dealer's background thread panicked".into())
            })??,
            stale => {
                // A prepared triple for another shape is discarded (after its thread ends).
                if let Some(p) = stale {
                    let _ = p.handle.join();
                }
                self.params.triple(step, batch, train)?
            }
        };
        self.params.send_material(net, dealt)?;
        let params = self.params.clone();
        let next = step + 1;
        self.prefetch = Some(Prefetch {
            key: (next, batch, train),
            handle: std::thread::spawn(move || params.triple(next, batch, train)),
        });
        if train {
            let scale = self.params.config.gradient_scale.factor(batch);
            let dealing = Dealing::backward(&self.params.config, scale)?;
            self.prefetch_truncations((BACKWARD, step, dealing));
        }
        Ok(())
    }

    /// Sends the material of `(purpose, step, dealing)` ([`DealerParams::deal`]): prepared in
    /// the background if it was foreseen, dealt now otherwise.
    fn truncations(
        &mut self,
        net: &Network,
        purpose: &'static str,
        step: u64,
        dealing: Dealing,
    ) -> Result<()> {
        let p = &self.params;
        if !needs_truncations(&p.config, p.kind) || dealing.is_empty() {
            return Ok(());
        }
        let key = (purpose, step, dealing);
        // What was prepared for this purpose is used if it is for this step and these shifts,
        // and stale otherwise (another step, or a learning rate that changed).
        let mut ready = None;
        for t in std::mem::take(&mut self.truncations) {
            if t.key == key {
                ready = Some(t.handle);
            } else if t.key.0 != purpose {
                self.truncations.push(t);
            } else {
                let _ = t.handle.join();
            }
        }
        let dealt = match ready {
            Some(h) => h.join().map_err(|_| {
                SpnnError::Config("the dealer's background thread panicked".into())
            })??,
            None => p.deal(purpose, step, &key.2)?,
        };
        for (seeds, explicit) in dealt {
            for (seed, &holder) in seeds.into_iter().zip(&p.holders) {
                net.send(holder, &DealerSeed(seed))?;
            }
            // In messages of bundle::message_sizes, which holder 0 expects.
            let shapes: Vec<_> = explicit.iter().map(|m| m.shape()).collect();
            let mut rest = explicit.into_iter();
            for size in bundle::message_sizes(&shapes) {
                net.send(
                    p.holders[0],
                    &DealerBundle(rest.by_ref().take(size).collect()),
                )?;
            }
        }
        Ok(())
    }

    /// Handles one command as the dealer.
    pub(crate) fn handle(&mut self, net: &Network, cmd: &Command) -> Result<()> {
        match cmd {
            Command::Forward { step, ids, train } => self.forward(net, *step, ids.len(), *train),
            Command::Deal { step, batch, train } => {
                let batch = usize::try_from(*batch)
                    .map_err(|_| SpnnError::Config(format!("a batch of {batch}")))?;
                self.forward(net, *step, batch, *train)
            }
            Command::Backward { step, scale } => {
                let dealing = Dealing::backward(&self.params.config, *scale)?;
                self.truncations(net, BACKWARD, *step, dealing)
            }
            Command::Update { step, lr } => {
                // Update `step` (from 0) is the `step + 1`-th: Adam's bias corrections.
                let c = self.params.config;
                let (t, next) = (step + 1, step + 2);
                self.truncations(net, UPDATE, *step, Dealing::update(&c, *lr, t)?)?;
                // The next update most likely has the same learning rate.
                self.prefetch_truncations((UPDATE, step + 1, Dealing::update(&c, *lr, next)?));
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// Runs a separate dealer party until the server ends the session. The dealer checks the
/// server's proposal against its own `policy` first (seeded randomness would make every triple
/// it deals predictable).
pub fn run_dealer(net: Network, policy: &PartyPolicy) -> Result<()> {
    if net.role() != Role::Dealer {
        return Err(SpnnError::Config(format!("{} is not the dealer", net.me())));
    }
    let server = net.roster().id_of(Role::Server)?;
    let setup: Setup = net.recv(server)?;
    setup.config.validate()?;
    policy.check(&setup, true)?;
    let mut engine = DealerEngine::new(DealerParams {
        me: net.me(),
        holders: net.roster().holders(),
        widths: setup.widths.iter().map(|&w| w as usize).collect(),
        d: setup.widths.iter().map(|&w| w as usize).sum(),
        h: setup.output as usize,
        config: setup.config,
        kind: setup.kind,
    });
    loop {
        let cmd: Command = net.recv(server)?;
        match cmd {
            Command::Shutdown => return Ok(()),
            Command::Save { .. } => net.send(server, &Ack)?,
            Command::Evaluate | Command::Forward { .. } => {
                return Err(protocol(server, "command not meant for the dealer"));
            }
            #[cfg(feature = "insecure-test-hooks")]
            Command::RevealSharesForTests => {
                return Err(protocol(server, "command not meant for the dealer"));
            }
            cmd => engine.handle(&net, &cmd)?,
        }
    }
}
