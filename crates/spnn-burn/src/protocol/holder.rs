//! A data holder's side of SPNN-SS.
//!
//! The holder keeps its features and its additive share `⟨W⟩_i` of the first-layer weights. It
//! never sees another holder's features, `W`, or the boundary gradient `G` in the clear.
//!
//! **Set-up.** `Hello` to the server, `Setup` back; a pair seed with every other holder; the
//! initial weight share (each holder draws a random part `R_i` with variance `1/(3dk)` and
//! shares it with the pair seeds, so `W = Σ R_i ~ Linear's default initialisation` and nobody
//! holds `W`).
//!
//! **Forward** (`Command::Forward`), with the one-sided triples of [`super::pairwise`]:
//! 1. *receive material*: a seed and explicit product shares from the dealer;
//! 2. *open E, F*: `E_m = X_m − U_m` to every other holder, `F_{o,m} = ⟨W_o⟩_m − V_{o,m}` to
//!    holder `o`;
//! 3. *Z share*: `X_m·(⟨W_m⟩_m + Σ_o F_{m,o}) + Σ_o E_o·V_{o,m} + product shares` at scale
//!    `2^{2f}`, to the server (**SecureAggregation forward**: the server learns `Z` only);
//! 4. *head* (label holder only): activations in, loss gradient out.
//!
//! **Backward** (`Command::Backward`):
//! 1. *receive gradient share* `⟨cG⟩_m` from the server (**SecureAggregation backward**);
//! 2. *open F'*: `⟨cG⟩_m − V'_{o,m}` to holder `o`;
//! 3. *weight gradient*: block `m` rows `X_mᵀ·(⟨cG⟩_m + Σ_o F'_{m,o})`, block `o` rows
//!    `E_oᵀ·V'_{o,m}`, plus product shares; then `×1/c` with truncation, added to the pending
//!    gradient.
//!
//! **Update** (`Command::Update`): `v ← μ·v + g`, `⟨W⟩ ← ⟨W⟩ − η·v` on shares (momentum `μ`
//! and learning rate `η` are public).

use std::collections::VecDeque;
use std::path::PathBuf;

use burn::module::{Module, Param, ParamId};
use burn::tensor::{DType, Device, Int, Tensor, TensorData};
use rand::Rng;
use spnn_crypto::beaver::{
    TruncationPairShare, truncate_two_party, truncation_finish, truncation_mask,
};
use spnn_crypto::{FixedPoint, RingMatrix, SecretSeed, Share};
use spnn_data::Table;
use spnn_net::codec::{Blob, Codec, Reader};
use spnn_net::{Network, PartyId, Role};

use super::he::{HeCounters, HeEngine};
use super::pairwise::{Material, StepShape};
use super::scale::PublicScale;
use super::{backward_shifts, bundle, needs_pairs, pair_prg, update_shifts};
use crate::bottom::{BottomModel, BottomRunner, Runner};
use crate::checkpoint;
use crate::config::Protocol;
use crate::config::{DealerMode, LabelMode, SpnnConfig};
use crate::error::{Result, SpnnError, protocol};
use crate::head::LabelHead;
use crate::messages::*;
use spnn_crypto::paillier::{KeySize, Keypair, MIN_SECURE_BITS};

/// How a holder runs, besides its data.
#[derive(Default)]
pub struct HolderOptions {
    /// Where `Command::Save` writes and a resumed session reads this holder's state.
    pub checkpoint_dir: Option<PathBuf>,
    /// Answer `Command::RevealSharesForTests` by sending the weight share to the server.
    /// **Insecure**: only for tests that reconstruct `W`.
    pub allow_insecure_reveal: bool,
    /// The labels and the loss head, for the label holder.
    pub labels: Option<HolderLabels>,
    /// This holder's Paillier key pair for SPNN-HE (made once per deployment, e.g. with
    /// `spnn keygen`). Without one, an SPNN-HE session generates a fresh pair at set-up.
    pub paillier: Option<Keypair>,
}

/// The label holder's labels and head.
pub struct HolderLabels {
    /// A table whose labels are looked up by sample id.
    pub table: Table,
    /// Computes the loss.
    pub head: Box<dyn LabelHead>,
}

/// What a holder reports when its session ends.
#[derive(Clone, Debug, PartialEq)]
pub struct HolderSummary {
    /// Forward steps served.
    pub forwards: u64,
    /// Updates applied.
    pub updates: u64,
    /// Paillier work (SPNN-HE sessions; zero otherwise).
    pub he: HeCounters,
}

struct Saved {
    step: u64,
    /// This holder's encoded features `X_m`.
    x: RingMatrix,
    /// The openings `E_o = X_o − U_o` of the other holders, by holder.
    e: Vec<Option<RingMatrix>>,
    /// The step's correlated randomness.
    material: Material,
}

/// A running holder.
struct Holder {
    net: Network,
    me: usize,
    holders: Vec<PartyId>,
    server: PartyId,
    dealer: PartyId,
    widths: Vec<usize>,
    d: usize,
    h: usize,
    fp: FixedPoint,
    config: SpnnConfig,
    features: Table,
    seeds: Vec<Option<SecretSeed>>,
    w: Share,
    velocity: Share,
    pending: Share,
    saved: Option<Saved>,
    /// Bottom-model mode: the step of the training forward awaiting its backward.
    saved_step: Option<u64>,
    pairs: VecDeque<(RingMatrix, RingMatrix)>,
    labels: Option<HolderLabels>,
    options_dir: Option<PathBuf>,
    allow_reveal: bool,
    forwards: u64,
    updates: u64,
    /// Bottom-model mode: the holder's own Burn model. `None` in SPNN-SS mode.
    bottom: Option<Box<dyn BottomRunner>>,
    /// SPNN-HE: keys and counters. `None` with a dealer.
    he: Option<HeEngine>,
    /// SPNN-HE: the encoded features of the last training forward.
    he_saved: Option<(u64, RingMatrix)>,
}

/// Runs holder `net.role()` of an SPNN-SS session until the server ends it.
///
/// `features` holds this holder's columns (already preprocessed) for every sample id the
/// server may ask for.
pub fn run_holder(net: Network, features: Table, options: HolderOptions) -> Result<HolderSummary> {
    start(net, features, options, None)
}

/// Runs holder `net.role()` of a bottom-model session ([`crate::SecureAggregation`]): its own
/// Burn `model` (on the autodiff `device`) maps its features to the shared output width and
/// is trained by `optim` with the gradient the server returns.
pub fn run_bottom_holder<M: BottomModel>(
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
    bottom: Option<Box<dyn BottomRunner>>,
) -> Result<HolderSummary> {
    let kind = if bottom.is_some() {
        LayerKind::BottomModels
    } else {
        LayerKind::PrivateLinear
    };
    let Role::Holder(index) = net.role() else {
        return Err(SpnnError::Config(format!("{} is not a holder", net.me())));
    };
    let roster = net.roster().clone();
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
    let widths: Vec<usize> = setup.widths.iter().map(|&w| w as usize).collect();
    let me = index as usize;
    if widths.get(me) != Some(&features.cols()) || setup.kind != kind {
        return Err(protocol(
            server,
            "set-up does not match this holder's width or layer kind",
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
    let (d, h) = (widths.iter().sum::<usize>(), setup.output as usize);
    let zero = Share::new(me, holders.len(), fp.frac_bits(), RingMatrix::zeros(d, h))?;
    let mut holder = Holder {
        net,
        me,
        holders,
        server,
        dealer,
        widths,
        d,
        h,
        fp,
        config: setup.config,
        features,
        seeds: Vec::new(),
        w: zero.clone(),
        velocity: zero.clone(),
        pending: zero,
        saved: None,
        saved_step: None,
        pairs: VecDeque::new(),
        labels: options.labels,
        options_dir: options.checkpoint_dir,
        allow_reveal: options.allow_insecure_reveal,
        forwards: 0,
        updates: 0,
        bottom,
        he: None,
        he_saved: None,
    };
    holder.exchange_pair_seeds()?;
    if holder.config.protocol == Protocol::Paillier {
        if holder.k() != 2 || holder.bottom.is_some() {
            return Err(SpnnError::Config(
                "SPNN-HE runs PrivateLinear with exactly two holders".into(),
            ));
        }
        let keys = match options.paillier {
            Some(k) => k,
            None => {
                let mut rng = holder
                    .config
                    .randomness
                    .rng(holder.party(), 0, "paillier-keygen");
                let bits = holder.config.he_key_bits;
                if bits >= MIN_SECURE_BITS {
                    Keypair::generate(
                        if bits >= 3072 {
                            KeySize::Bits3072
                        } else {
                            KeySize::Bits2048
                        },
                        &mut rng,
                    )
                } else {
                    Keypair::generate_insecure_for_tests(bits, &mut rng)?
                }
            }
        };
        let peer = holder.holders[1 - holder.me];
        holder.he = Some(HeEngine::establish(
            &holder.net,
            peer,
            keys,
            &holder.config,
        )?);
    }
    match &setup.resume {
        Some(tag) => holder.load(tag)?,
        None if holder.bottom.is_none() => holder.init_weights()?,
        None => {}
    }
    holder.serve()
}

impl Holder {
    fn k(&self) -> usize {
        self.holders.len()
    }

    fn party(&self) -> PartyId {
        self.net.me()
    }

    fn others(&self) -> impl Iterator<Item = (usize, PartyId)> + '_ {
        self.holders
            .iter()
            .copied()
            .enumerate()
            .filter(move |(i, _)| *i != self.me)
    }

    /// Set-up: holder `i` draws the seed it shares with every holder `j > i`.
    fn exchange_pair_seeds(&mut self) -> Result<()> {
        let mut seeds: Vec<Option<SecretSeed>> = vec![None; self.k()];
        for (j, seed) in seeds.iter_mut().enumerate().skip(self.me + 1) {
            let s = self
                .config
                .randomness
                .rng(self.party(), 0, &format!("pair-seed-{j}"))
                .secret_seed();
            self.net.send(self.holders[j], &PairSeed(s.clone()))?;
            *seed = Some(s);
        }
        for (j, seed) in seeds.iter_mut().enumerate().take(self.me) {
            let PairSeed(s) = self.net.recv(self.holders[j])?;
            *seed = Some(s);
        }
        self.seeds = seeds;
        Ok(())
    }

    fn seed(&self, j: usize) -> &SecretSeed {
        self.seeds[j]
            .as_ref()
            .expect("seeds exist for every other holder")
    }

    /// This holder's share of a value `owner` contributes, derived from the pair seeds: the
    /// owner keeps `value − Σ_j PRG_j`, every other holder `j` holds `PRG_j`.
    fn share_contribution(
        &self,
        owner: usize,
        value: Option<RingMatrix>,
        purpose: &str,
        step: u64,
        shape: (usize, usize),
    ) -> Result<RingMatrix> {
        if owner == self.me {
            let mut own = value.expect("the owner supplies the value");
            for (j, _) in self.others() {
                own.sub_assign(&pair_prg(self.seed(j), purpose, self.me, step, shape))?;
            }
            Ok(own)
        } else {
            Ok(pair_prg(self.seed(owner), purpose, owner, step, shape))
        }
    }

    /// The initial weight share: `W = Σ_i R_i` with `R_i ~ U(−a, a)`, `a = 1/√(dk)`, so `W` has
    /// the variance `1/(3d)` of Burn's default `Linear` initialisation.
    fn init_weights(&mut self) -> Result<()> {
        let (d, h, k) = (self.d, self.h, self.k());
        let a = 1.0 / ((d * k) as f64).sqrt();
        let mut rng = self.config.randomness.rng(self.party(), 0, "w-init");
        let r: Vec<f32> = (0..d * h).map(|_| rng.random_range(-a..a) as f32).collect();
        let mut w = RingMatrix::zeros(d, h);
        for owner in 0..k {
            let value = (owner == self.me)
                .then(|| self.fp.encode_matrix(d, h, &r))
                .transpose()?;
            w.add_assign(&self.share_contribution(owner, value, "w-init", 0, (d, h))?)?;
        }
        self.w = self.w.with_value(w);
        Ok(())
    }

    fn serve(mut self) -> Result<HolderSummary> {
        loop {
            let cmd: Command = self.net.recv(self.server)?;
            match cmd {
                Command::Forward { step, ids, train } => self.forward(step, ids, train)?,
                Command::Backward { step, scale } => self.backward(step, scale)?,
                Command::Update { step, lr } => self.update(step, lr)?,
                Command::Evaluate => {
                    let labels = self.labels.as_mut().ok_or_else(|| {
                        protocol(self.server, "Evaluate sent to a holder without labels")
                    })?;
                    self.net.send(self.server, &labels.head.take_metrics())?;
                }
                Command::Save { tag } => {
                    self.save(&tag)?;
                    self.net.send(self.server, &Ack)?;
                }
                Command::RevealSharesForTests => {
                    if !self.allow_reveal || self.bottom.is_some() {
                        return Err(protocol(
                            self.server,
                            "asked to reveal the weight share; this holder does not allow it",
                        ));
                    }
                    self.net
                        .send(self.server, &RevealedShare(self.w.value().clone()))?;
                }
                Command::Shutdown => {
                    return Ok(HolderSummary {
                        forwards: self.forwards,
                        updates: self.updates,
                        he: self.he.as_ref().map(|h| h.counters).unwrap_or_default(),
                    });
                }
            }
        }
    }

    /// Receives a dealer bundle of `shapes`: in full for holder 0, as a seed for the others.
    fn receive_bundle(&self, shapes: &[(usize, usize)]) -> Result<Vec<RingMatrix>> {
        if self.me == 0 {
            let DealerBundle(mats) = self.net.recv(self.dealer)?;
            let got: Vec<_> = mats.iter().map(RingMatrix::shape).collect();
            if got != shapes {
                return Err(protocol(
                    self.dealer,
                    format!("bundle of shapes {got:?}, expected {shapes:?}"),
                ));
            }
            Ok(mats)
        } else {
            let DealerSeed(seed) = self.net.recv(self.dealer)?;
            Ok(bundle::derive(&seed, shapes))
        }
    }

    /// Receives this holder's material for one step from the dealer: a seed, then explicit
    /// shares ([`super::pairwise`]).
    fn receive_material(&self, shape: &StepShape<'_>) -> Result<Material> {
        let DealerSeed(seed) = self.net.recv(self.dealer)?;
        let DealerBundle(explicit) = self.net.recv(self.dealer)?;
        let expected = shape.explicit(self.me);
        let got: Vec<_> = explicit.iter().map(RingMatrix::shape).collect();
        if got != expected {
            return Err(protocol(
                self.dealer,
                format!("explicit material of shapes {got:?}, expected {expected:?}"),
            ));
        }
        Material::assemble(
            shape,
            self.me,
            bundle::derive(&seed, &shape.seeded(self.me)),
            explicit,
        )
    }

    /// Sends each other holder `o` its own openings `parts_for(o)` and returns what every other
    /// holder sent back, by holder index.
    fn exchange(
        &self,
        parts_for: impl Fn(usize, &Self) -> Result<Vec<RingMatrix>>,
    ) -> Result<Vec<(usize, Vec<RingMatrix>)>> {
        for (o, p) in self.others() {
            self.net.send(p, &Opening(parts_for(o, self)?))?;
        }
        self.others()
            .map(|(o, p)| {
                let Opening(parts) = self.net.recv(p)?;
                Ok((o, parts))
            })
            .collect()
    }

    /// Sends this holder's contributions to every other holder and returns the opened sums.
    fn open(&self, parts: Vec<RingMatrix>) -> Result<Vec<RingMatrix>> {
        let msg = Opening(parts);
        for (_, p) in self.others() {
            self.net.send(p, &msg)?;
        }
        let Opening(mut sums) = msg;
        for (_, p) in self.others() {
            let Opening(theirs) = self.net.recv(p)?;
            if theirs.len() != sums.len() {
                return Err(protocol(
                    p,
                    format!("{} opened values, expected {}", theirs.len(), sums.len()),
                ));
            }
            for (s, t) in sums.iter_mut().zip(&theirs) {
                s.add_assign(t).map_err(|e| protocol(p, e.to_string()))?;
            }
        }
        Ok(sums)
    }

    fn share(&self, value: RingMatrix, frac_bits: u32) -> Result<Share> {
        Ok(Share::new(self.me, self.k(), frac_bits, value)?)
    }

    /// The pairwise mask of bottom-model mode: `Σ_{j>i} PRG(s_ij) − Σ_{j<i} PRG(s_ji)`; the
    /// masks of all holders add up to zero.
    fn pairwise_mask(&self, step: u64, shape: (usize, usize)) -> Result<RingMatrix> {
        let mut mask = RingMatrix::zeros(shape.0, shape.1);
        for (j, _) in self.others() {
            let prg = pair_prg(self.seed(j), "mask", self.me.min(j), step, shape);
            if self.me < j {
                mask.add_assign(&prg)?;
            } else {
                mask.sub_assign(&prg)?;
            }
        }
        Ok(mask)
    }

    /// Bottom-model forward: the holder's own model, masked output to the server.
    fn forward_bottom(&mut self, step: u64, ids: &[u64], train: bool) -> Result<()> {
        let (b, h) = (ids.len(), self.h);
        let x = self.features.gather(ids)?;
        let runner = self.bottom.as_mut().expect("bottom mode");
        let out = runner.forward(x, b, self.widths[self.me], train)?;
        if out.len() != b * h {
            return Err(SpnnError::Config(format!(
                "the bottom model produced {} values for a {b}x{h} output",
                out.len()
            )));
        }
        let mut masked = self.fp.encode_matrix(b, h, &out)?;
        masked.add_assign(&self.pairwise_mask(step, (b, h))?)?;
        self.net.send(self.server, &MaskedOutput(masked))?;
        Ok(())
    }

    /// The label holder's part of a forward: activations in, loss (and gradient) out.
    fn head(&mut self, ids: &[u64], train: bool) -> Result<()> {
        let Some(labels) = self.labels.as_mut() else {
            return Ok(());
        };
        let Activations(act) = self.net.recv(self.server)?;
        let y = labels.table.gather_labels(ids)?;
        let loss = if train {
            let (loss, grad) = labels.head.train_batch(&act, &y)?;
            self.net.send(self.server, &HeadGradient(grad))?;
            loss
        } else {
            labels.head.eval_batch(&act, &y)?
        };
        self.net.send(self.server, &HeadReport { loss })?;
        Ok(())
    }

    /// The rows of `W` that belong to holder `j`'s columns.
    fn block(&self, j: usize) -> (usize, usize) {
        let start: usize = self.widths[..j].iter().sum();
        (start, start + self.widths[j])
    }

    /// SPNN-HE forward: local term plus the two cross terms (module [`super::he`]).
    fn forward_he(&mut self, step: u64, ids: &[u64], train: bool) -> Result<()> {
        let (b, h, me) = (ids.len(), self.h, self.me);
        let other = 1 - me;
        let x = self
            .fp
            .encode_matrix(b, self.widths[me], &self.features.gather(ids)?)?;
        let (mine, theirs) = (self.block(me), self.block(other));
        let w = self.w.value();
        let mut rng = self
            .config
            .randomness
            .rng(self.net.me(), step, "he-forward");
        let he = self.he.as_mut().expect("HE session");
        he.send_encrypted(
            &self.net,
            &w.slice_rows(theirs.0, theirs.1)?,
            self.widths[other],
            &mut rng,
        )?;
        let cross_mine = he.multiply_and_mask(&self.net, &x, h, &mut rng)?;
        let cross_theirs = he.receive_product(&self.net, (b, h), self.widths[other])?;
        let mut z = x.matmul(&w.slice_rows(mine.0, mine.1)?)?;
        z.add_assign(&cross_mine)?;
        z.add_assign(&cross_theirs)?;
        self.net.send(self.server, &ZShare(z))?;
        self.forwards += 1;
        self.he_saved = train.then_some((step, x));
        self.head(ids, train)
    }

    /// SPNN-HE backward: `Xᵀ·cG` with the cross terms under Paillier, then `× 1/c`.
    fn backward_he(&mut self, step: u64, scale: f64, g: RingMatrix) -> Result<()> {
        let (x_step, x) = self.he_saved.take().ok_or_else(|| {
            protocol(
                self.server,
                format!("backward of step {step} without its training forward"),
            )
        })?;
        if x_step != step {
            return Err(protocol(
                self.server,
                format!("backward of step {step}, the last training forward was {x_step}"),
            ));
        }
        let (b, h, me) = (x.rows(), self.h, self.me);
        let other = 1 - me;
        let xt = x.transpose();
        let mut rng = self
            .config
            .randomness
            .rng(self.net.me(), step, "he-backward");
        let he = self.he.as_mut().expect("HE session");
        he.send_encrypted(&self.net, &g, b, &mut rng)?;
        let cross_mine = he.multiply_and_mask(&self.net, &xt, h, &mut rng)?;
        let cross_theirs = he.receive_product(&self.net, (self.widths[other], h), b)?;
        let mut own = xt.matmul(&g)?;
        own.add_assign(&cross_mine)?;
        let blocks = if me == 0 {
            [&own, &cross_theirs]
        } else {
            [&cross_theirs, &own]
        };
        let grad = RingMatrix::vstack(&blocks)?;
        let s = self.share(grad, 2 * self.fp.frac_bits())?;
        let grad = self.mul_public(s, 1.0 / scale)?;
        self.pending = self.pending.add(&grad)?;
        Ok(())
    }

    fn forward(&mut self, step: u64, ids: Vec<u64>, train: bool) -> Result<()> {
        if self.he.is_some() {
            return self.forward_he(step, &ids, train);
        }
        if self.bottom.is_some() {
            self.forward_bottom(step, &ids, train)?;
            self.forwards += 1;
            self.saved_step = train.then_some(step);
            return self.head(&ids, train);
        }
        let (b, h, me) = (ids.len(), self.h, self.me);
        // 1. receive material
        let shape = StepShape {
            widths: &self.widths,
            batch: b,
            h,
            train,
        };
        let material = self.receive_material(&shape)?;
        // 2. open E, F: E_m to everyone, F_{o,m} = ⟨W_o⟩_m − V_{o,m} to holder o only
        let x = self
            .fp
            .encode_matrix(b, self.widths[me], &self.features.gather(&ids)?)?;
        let e_m = x.sub(&material.u)?;
        let received = self.exchange(|o, this| {
            let (r0, r1) = this.block(o);
            let f = this
                .w
                .value()
                .slice_rows(r0, r1)?
                .sub(material.v[o].as_ref().expect("other holder"))?;
            Ok(vec![e_m.clone(), f])
        })?;
        // 3. Z share: X_m·(⟨W_m⟩_m + Σ_o F_{m,o}) + Σ_o E_o·V_{o,m} + dealt product shares
        let (r0, r1) = self.block(me);
        let mut w_plus_f = self.w.value().slice_rows(r0, r1)?;
        let mut z = material.w.clone();
        let mut e = vec![None; self.k()];
        for (o, parts) in received {
            let [e_o, f_mo]: [RingMatrix; 2] = parts
                .try_into()
                .map_err(|_| protocol(self.holders[o], "an opening of the wrong length"))?;
            if e_o.shape() != (b, self.widths[o]) || f_mo.shape() != (self.widths[me], h) {
                return Err(protocol(self.holders[o], "an opening of the wrong shape"));
            }
            w_plus_f.add_assign(&f_mo)?;
            z.add_assign(&e_o.matmul(material.v[o].as_ref().expect("other holder"))?)?;
            e[o] = Some(e_o);
        }
        z.add_assign(&x.matmul(&w_plus_f)?)?;
        self.net.send(self.server, &ZShare(z))?;
        self.forwards += 1;
        self.saved = train.then_some(Saved {
            step,
            x,
            e,
            material,
        });
        // 5. head
        self.head(&ids, train)
    }

    fn truncate(&mut self, z: &Share, shift: u32) -> Result<Share> {
        if self.k() == 2 {
            return Ok(truncate_two_party(z, shift)?);
        }
        let (r, rs) = self
            .pairs
            .pop_front()
            .ok_or_else(|| protocol(self.dealer, "ran out of truncation pairs"))?;
        let pair = TruncationPairShare {
            r: self.share(r, z.frac_bits())?,
            r_shifted: self.share(rs, z.frac_bits() - shift)?,
            shift,
        };
        let c = self.open(vec![truncation_mask(z, &pair)?])?;
        Ok(truncation_finish(&c[0], &pair)?)
    }

    /// `a · c` for a public `c`, returned at scale `2^f` (see [`super::scale`]).
    fn mul_public(&mut self, a: Share, c: f64) -> Result<Share> {
        let f = self.fp.frac_bits();
        let c = PublicScale::of(c)?;
        let mut a = a;
        if a.frac_bits() > f {
            a = self.truncate(&a, a.frac_bits() - f)?;
        }
        let a = a.with_value_and_scale(a.value().scalar_mul(c.m), f + c.shift);
        if c.shift > 0 {
            self.truncate(&a, c.shift)
        } else {
            Ok(a)
        }
    }

    fn receive_pairs(&mut self, shifts: &[u32]) -> Result<()> {
        if !needs_pairs(self.k(), LayerKind::PrivateLinear) || shifts.is_empty() {
            return Ok(());
        }
        let shapes = vec![(self.d, self.h); 2 * shifts.len()];
        let mut mats = self.receive_bundle(&shapes)?.into_iter();
        while let (Some(r), Some(rs)) = (mats.next(), mats.next()) {
            self.pairs.push_back((r, rs));
        }
        Ok(())
    }

    /// The share of `c·G` from the server: in full for holder 0, from a seed for the others.
    fn receive_gradient(&self, (b, h): (usize, usize)) -> Result<RingMatrix> {
        if self.me == 0 {
            let GradShare(g) = self.net.recv(self.server)?;
            if g.shape() != (b, h) {
                return Err(protocol(
                    self.server,
                    format!(
                        "gradient share of shape {:?}, expected {:?}",
                        g.shape(),
                        (b, h)
                    ),
                ));
            }
            Ok(g)
        } else {
            let GradSeed(seed) = self.net.recv(self.server)?;
            Ok(bundle::derive(&seed, &[(b, h)]).remove(0))
        }
    }

    fn backward(&mut self, step: u64, scale: f64) -> Result<()> {
        if self.he.is_some() {
            let b = self
                .he_saved
                .as_ref()
                .map(|(_, x)| x.rows())
                .ok_or_else(|| {
                    protocol(
                        self.server,
                        format!("backward of step {step} without its training forward"),
                    )
                })?;
            let g = self.receive_gradient((b, self.h))?;
            return self.backward_he(step, scale, g);
        }
        if let Some(runner) = self.bottom.as_mut() {
            if self.saved_step.take() != Some(step) {
                return Err(protocol(
                    self.server,
                    format!("backward of step {step} without its training forward"),
                ));
            }
            let BottomGradient(g) = self.net.recv(self.server)?;
            return runner.backward(g);
        }
        let saved = self
            .saved
            .take()
            .filter(|s| s.step == step)
            .ok_or_else(|| {
                protocol(
                    self.server,
                    format!("backward of step {step} without its training forward"),
                )
            })?;
        let (b, h, me) = (saved.x.rows(), self.h, self.me);
        // 1. receive gradient share
        let g = self.receive_gradient((b, h))?;
        self.receive_pairs(&backward_shifts(&self.config, scale)?)?;
        // 2. open F': ⟨cG⟩_m − V'_{o,m} to holder o
        let m = &saved.material;
        let received =
            self.exchange(|o, _| Ok(vec![g.sub(m.v2[o].as_ref().expect("training material"))?]))?;
        // 3. weight-gradient shares, block by block (rows of W)
        let mut g_plus_f = g.clone();
        let mut blocks: Vec<RingMatrix> = (0..self.k())
            .map(|j| RingMatrix::zeros(self.widths[j], h))
            .collect();
        for (o, parts) in received {
            let [f_mo]: [RingMatrix; 1] = parts
                .try_into()
                .map_err(|_| protocol(self.holders[o], "an opening of the wrong length"))?;
            if f_mo.shape() != (b, h) {
                return Err(protocol(self.holders[o], "an opening of the wrong shape"));
            }
            g_plus_f.add_assign(&f_mo)?;
            let e_o = saved.e[o].as_ref().expect("opened in the forward");
            blocks[o] = e_o
                .transpose()
                .matmul(m.v2[o].as_ref().expect("training material"))?;
            blocks[o].add_assign(m.other_w2[o].as_ref().expect("training material"))?;
        }
        blocks[me] = saved.x.transpose().matmul(&g_plus_f)?;
        blocks[me].add_assign(m.own_w2.as_ref().expect("training material"))?;
        let grad = RingMatrix::vstack(&blocks.iter().collect::<Vec<_>>())?;
        let s = self.share(grad, 2 * self.fp.frac_bits())?;
        let grad = self.mul_public(s, 1.0 / scale)?;
        self.pending = self.pending.add(&grad)?;
        Ok(())
    }

    fn update(&mut self, _step: u64, lr: f64) -> Result<()> {
        if let Some(runner) = self.bottom.as_mut() {
            runner.update(lr)?;
            if let Some(labels) = self.labels.as_mut() {
                labels.head.update(lr)?;
            }
            self.updates += 1;
            return Ok(());
        }
        self.receive_pairs(&update_shifts(&self.config, lr)?)?;
        let zero = self.w.with_value(RingMatrix::zeros(self.d, self.h));
        let g = std::mem::replace(&mut self.pending, zero);
        let delta = if self.config.momentum > 0.0 {
            let decayed = self.mul_public(self.velocity.clone(), self.config.momentum)?;
            self.velocity = decayed.add(&g)?;
            self.mul_public(self.velocity.clone(), lr)?
        } else {
            self.mul_public(g, lr)?
        };
        self.w = self.w.sub(&delta)?;
        if let Some(labels) = self.labels.as_mut() {
            labels.head.update(lr)?;
        }
        self.updates += 1;
        Ok(())
    }

    fn checkpoint_path(&self, tag: &str) -> Result<PathBuf> {
        let dir = self.options_dir.as_ref().ok_or_else(|| {
            SpnnError::Config(format!("holder {} has no checkpoint directory", self.me))
        })?;
        if tag.is_empty()
            || !tag
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(protocol(
                self.server,
                format!("invalid checkpoint tag {tag:?}"),
            ));
        }
        Ok(dir.join(format!("holder-{}-{tag}.ckpt", self.me)))
    }

    fn save(&self, tag: &str) -> Result<()> {
        let path = self.checkpoint_path(tag)?;
        if let Some(runner) = &self.bottom {
            let (model, optim) = runner.to_bytes()?;
            let mut payload = Vec::new();
            (self.me as u64, self.forwards, self.updates).encode(&mut payload);
            (Blob(model), Blob(optim)).encode(&mut payload);
            return checkpoint::write_atomic(&path, &payload);
        }
        let record = ShareRecord::from_shares(&[
            self.w.value(),
            self.velocity.value(),
            self.pending.value(),
        ]);
        let bytes = record
            .into_record()
            .into_bytes()
            .map_err(|e| SpnnError::Persistence {
                path: path.display().to_string(),
                reason: format!("{e:?}"),
            })?;
        let mut payload = Vec::new();
        (self.me as u64, self.forwards, self.updates).encode(&mut payload);
        Blob(bytes.to_vec()).encode(&mut payload);
        checkpoint::write_atomic(&path, &payload)
    }

    fn load(&mut self, tag: &str) -> Result<()> {
        let path = self.checkpoint_path(tag)?;
        let payload = checkpoint::read_verified(&path)?;
        let bad = |reason: String| SpnnError::Persistence {
            path: path.display().to_string(),
            reason,
        };
        let mut r = Reader::new(&payload);
        let (me, forwards, updates) =
            <(u64, u64, u64)>::read(&mut r).map_err(|e| bad(e.to_string()))?;
        if me != self.me as u64 {
            return Err(bad(format!(
                "checkpoint of holder {me}, this is holder {}",
                self.me
            )));
        }
        self.forwards = forwards;
        self.updates = updates;
        if let Some(runner) = self.bottom.as_mut() {
            let (Blob(model), Blob(optim)) =
                <(Blob, Blob)>::read(&mut r).map_err(|e| bad(e.to_string()))?;
            r.finish().map_err(|e| bad(e.to_string()))?;
            return runner.load_bytes(model, optim);
        }
        let Blob(record) = Blob::read(&mut r).map_err(|e| bad(e.to_string()))?;
        r.finish().map_err(|e| bad(e.to_string()))?;
        let shares = ShareRecord::load(&record, 3, (self.d, self.h)).map_err(bad)?;
        let mut it = shares.into_iter();
        self.w = self.w.with_value(it.next().expect("three shares"));
        self.velocity = self.velocity.with_value(it.next().expect("three shares"));
        self.pending = self.pending.with_value(it.next().expect("three shares"));
        Ok(())
    }
}

/// Shares stored as a Burn record: `I64` parameters (bit-identical to the `u64` ring elements),
/// never touched by an optimiser.
#[derive(Module, Debug)]
struct ShareRecord {
    shares: Vec<Param<Tensor<2, Int>>>,
}

impl ShareRecord {
    fn device() -> Device {
        Device::flex()
    }

    fn from_shares(shares: &[&RingMatrix]) -> Self {
        let device = Self::device();
        let shares = shares
            .iter()
            .map(|m| {
                let data = TensorData::new(
                    m.as_slice().iter().map(|&x| x as i64).collect::<Vec<i64>>(),
                    [m.rows(), m.cols()],
                );
                Param::initialized(
                    ParamId::new(),
                    Tensor::<2, Int>::from_data(data, (&device, DType::I64)),
                )
            })
            .collect();
        Self { shares }
    }

    fn load(
        bytes: &[u8],
        count: usize,
        shape: (usize, usize),
    ) -> std::result::Result<Vec<RingMatrix>, String> {
        let record = burn::store::ModuleRecord::from_bytes(burn::tensor::Bytes::from_bytes_vec(
            bytes.to_vec(),
        ))
        .map_err(|e| format!("{e:?}"))?;
        let empty = Self::from_shares(&vec![&RingMatrix::zeros(shape.0, shape.1); count]);
        let loaded = empty
            .try_load_record(record)
            .map_err(|e| format!("{e:?}"))?;
        loaded
            .shares
            .into_iter()
            .map(|p| {
                let data = p.val().try_into_data().map_err(|e| format!("{e:?}"))?;
                let dims = data.shape().clone();
                let values: Vec<i64> = data
                    .try_into_vec_as::<i64>()
                    .map_err(|e| format!("{e:?}"))?;
                if values.len() != shape.0 * shape.1 {
                    return Err(format!("share of {dims:?} elements, expected {shape:?}"));
                }
                RingMatrix::from_vec(
                    shape.0,
                    shape.1,
                    values.into_iter().map(|x| x as u64).collect(),
                )
                .map_err(|e| e.to_string())
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spnn_crypto::SecureRng;

    #[test]
    fn share_records_round_trip_bit_exactly() {
        let mut rng = SecureRng::insecure_from_seed_for_tests(3);
        let mats: Vec<RingMatrix> = (0..3).map(|_| RingMatrix::random(5, 7, &mut rng)).collect();
        let bytes = ShareRecord::from_shares(&mats.iter().collect::<Vec<_>>())
            .into_record()
            .into_bytes()
            .unwrap();
        let back = ShareRecord::load(&bytes, 3, (5, 7)).unwrap();
        assert_eq!(back, mats);
        assert!(
            ShareRecord::load(&bytes, 3, (7, 5)).is_err(),
            "wrong shape must be refused"
        );
        assert!(ShareRecord::load(&bytes[..bytes.len() / 2], 3, (5, 7)).is_err());
    }
}
