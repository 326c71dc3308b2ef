//! SPNN-SS at a holder: one-sided Beaver products with a dealer ([`crate::protocol::pairwise`]).
//!
//! The holder keeps its features and its additive share `⟨W⟩_m` of the first-layer weights.
//! It never sees another holder's features, `W`, or the boundary gradient `G` in the clear.
//!
//! **Initial weights.** Each holder draws a random part `R_m` with variance `1/(3dk)` and shares
//! it with the pair seeds, so `W = Σ R_m` has the variance of Linear's default initialisation
//! and nobody holds `W`.
//!
//! **Forward** (`Command::Forward`):
//! 1. *receive material*: a seed and explicit product shares from the dealer;
//! 2. *open E, F*: `E_m = X_m − U_m` to every other holder, `F_{o,m} = ⟨W_o⟩_m − V_{o,m}` to
//!    holder `o`;
//! 3. *Z share*: `X_m·(⟨W_m⟩_m + Σ_o F_{m,o}) + Σ_o E_o·V_{o,m} + product shares` at scale
//!    `2^{2f}`, returned to the party loop, which masks it before it goes to the server.
//!
//! **Backward** (`Command::Backward`):
//! 1. *receive gradient share* `⟨cG⟩_m` from the server;
//! 2. *open F'*: `⟨cG⟩_m − V'_{o,m}` to holder `o`;
//! 3. *weight gradient*: block `m` rows `X_mᵀ·(⟨cG⟩_m + Σ_o F'_{m,o})`, block `o` rows
//!    `E_oᵀ·V'_{o,m}`, plus product shares; then `×1/c` with exact truncation (one opening per
//!    truncation, with the dealer's truncation triples), added to the pending gradient.
//!
//! **Update** (`Command::Update`): Burn's SGD on shares, every constant public
//! ([`crate::SpnnConfig`]'s SGD fields, the step's learning rate `η`): `g ← g + λ·W` (weight
//! decay), `v ← g` at the first update and `v ← μ·v + (1 − τ)·g` after it (momentum `μ`,
//! dampening `τ`), the step `s = v` or, with Nesterov momentum, `s = g + μ·v`, and
//! `⟨W⟩ ← ⟨W⟩ − η·s`; each product by a public constant truncated exactly. Every update
//! performs the same truncations (the dampened gradient is computed at the first update too),
//! so the dealer foresees them from the configuration alone ([`update_shifts`]).
//!
//! Every truncation's input has a public bound ([`crate::protocol::bounds`]) that the holder
//! tracks and checks: a run that would exceed the ring stops with an error.

use std::collections::VecDeque;

use rand::Rng;
use spnn_crypto::beaver::{
    MAX_TRUNCATION_BITS, TruncationShare, truncation_finish, truncation_open,
};
use spnn_crypto::derive::derive_matrix;
use spnn_crypto::{RingMatrix, Share};
use spnn_net::codec::{Blob, Codec, Reader};

use super::record::ShareRecord;
use super::{Engine, GradientPart, Party};
use crate::error::{Result, protocol};
use crate::messages::{DealerBundle, DealerSeed};
use crate::protocol::bounds::{Bounds, decayed_weight_bound, ring_bits};
use crate::protocol::bundle;
use crate::protocol::pairwise::{Material, StepShape};
use crate::protocol::scale::{PublicScale, truncation_shifts};
use crate::protocol::{backward_shifts, update_shifts};

/// What a training forward leaves for its backward.
struct Saved {
    step: u64,
    /// This holder's encoded features `X_m`.
    x: RingMatrix,
    /// The openings `E_o = X_o − U_o` of the other holders, by holder.
    e: Vec<Option<RingMatrix>>,
    /// The step's correlated randomness.
    material: Material,
}

/// An SPNN-SS holder's checkpointed state.
pub(crate) struct State {
    w: RingMatrix,
    velocity: RingMatrix,
    pending: RingMatrix,
    pending_bound: f64,
    velocity_bound: f64,
    w_bound: f64,
    velocity_started: bool,
}

/// Parses a state written by [`SsEngine`]'s `save` for weights of `shape`; refuses anything
/// malformed, including a bound that is not a finite non-negative number.
pub(crate) fn parse_state(
    payload: &[u8],
    shape: (usize, usize),
) -> std::result::Result<State, String> {
    let mut r = Reader::new(payload);
    let ((pending_bound, velocity_bound), (w_bound, velocity_started), Blob(record)) =
        <((f64, f64), (f64, bool), Blob)>::read(&mut r).map_err(|e| e.to_string())?;
    r.finish().map_err(|e| e.to_string())?;
    for b in [pending_bound, velocity_bound, w_bound] {
        if !(b.is_finite() && b >= 0.0) {
            return Err(format!("a magnitude bound of {b}"));
        }
    }
    let mut shares = ShareRecord::load(&record, 3, shape)?.into_iter();
    let mut next = || shares.next().ok_or("three shares");
    Ok(State {
        w: next()?,
        velocity: next()?,
        pending: next()?,
        pending_bound,
        velocity_bound,
        w_bound,
        velocity_started,
    })
}

pub(super) struct SsEngine {
    w: Share,
    velocity: Share,
    pending: Share,
    /// Public bounds (ring units at scale `2^f`) of the pending gradient, the velocity and `W`.
    pending_bound: f64,
    velocity_bound: f64,
    w_bound: f64,
    /// Whether an update has set the velocity (Burn's first momentum step takes `g` undamped).
    velocity_started: bool,
    bounds: Bounds,
    saved: Option<Saved>,
    truncations: VecDeque<[RingMatrix; 3]>,
}

impl SsEngine {
    /// A fresh engine with the initial weight share.
    pub(super) fn new(p: &Party) -> Result<Self> {
        let zero = Share::new(p.me, p.k(), p.fp.frac_bits(), RingMatrix::zeros(p.d, p.h))?;
        let mut engine = Self {
            w: zero.clone(),
            velocity: zero.clone(),
            pending: zero,
            pending_bound: 0.0,
            velocity_bound: 0.0,
            w_bound: initial_weight_bound(p),
            velocity_started: false,
            bounds: Bounds::of(&p.config)?,
            saved: None,
            truncations: VecDeque::new(),
        };
        engine.w = engine.w.with_value(initial_weights(p)?);
        Ok(engine)
    }

    /// Receives this holder's material for one step from the dealer: a seed, then explicit
    /// shares ([`crate::protocol::pairwise`]).
    fn receive_material(&self, p: &Party, shape: &StepShape<'_>) -> Result<Material> {
        let DealerSeed(seed) = p.net.recv(p.dealer)?;
        let DealerBundle(explicit) = p.net.recv(p.dealer)?;
        Material::from_dealt(shape, p.me, &seed, explicit)
            .map_err(|e| protocol(p.dealer, e.to_string()))
    }

    /// Receives the truncation triples of one command ([`bundle::deal_truncations`]): a seed,
    /// and for holder 0 its explicit shares of `⌊r/2^s⌋` and `b`.
    fn receive_truncations(&mut self, p: &Party, shifts: &[u32]) -> Result<()> {
        if shifts.is_empty() {
            return Ok(());
        }
        let DealerSeed(seed) = p.net.recv(p.dealer)?;
        let explicit = if p.me == 0 {
            let DealerBundle(mats) = p.net.recv(p.dealer)?;
            let got: Vec<_> = mats.iter().map(RingMatrix::shape).collect();
            let want = vec![(p.d, p.h); 2 * shifts.len()];
            if got != want {
                return Err(protocol(
                    p.dealer,
                    format!("truncation bundle of shapes {got:?}, expected {want:?}"),
                ));
            }
            mats
        } else {
            Vec::new()
        };
        self.truncations.extend(bundle::truncation_shares(
            &seed,
            p.me,
            explicit,
            (p.d, p.h),
            shifts.len(),
        ));
        Ok(())
    }

    /// Exact truncation of `z` by `shift` (module [`spnn_crypto::beaver`]): one opening of
    /// `z + 2^62 + r` among the holders.
    fn truncate(&mut self, p: &Party, z: &Share, shift: u32) -> Result<Share> {
        let [r, high, danger] = self
            .truncations
            .pop_front()
            .ok_or_else(|| protocol(p.dealer, "ran out of truncation triples"))?;
        let share = |v, frac| Share::new(p.me, p.k(), frac, v);
        let t = TruncationShare {
            r: share(r, z.frac_bits())?,
            r_high: share(high, z.frac_bits().saturating_sub(shift))?,
            danger: share(danger, 0)?,
            shift,
            bound_bits: MAX_TRUNCATION_BITS,
        };
        let c = p.open(vec![truncation_open(z, &t)?])?;
        Ok(truncation_finish(&c[0], &t)?)
    }

    /// `a · c` for a public `c`, returned at scale `2^f` (see [`crate::protocol::scale`]),
    /// with the public bound of the result. `bound` bounds `|a|` in ring units. Performs
    /// exactly the truncations of [`truncation_shifts`], for which the dealer dealt triples.
    fn mul_public(
        &mut self,
        p: &Party,
        a: Share,
        bound: f64,
        c: f64,
        what: &str,
    ) -> Result<(Share, f64)> {
        let f = p.fp.frac_bits();
        let c = PublicScale::of(c)?;
        let shifts = truncation_shifts(a.frac_bits(), f, &c);
        let (mut a, mut bound) = (a, bound);
        if c.m != 1 && a.frac_bits() > f {
            // Down to 2^f first, so the product with m stays inside the ring.
            let shift = a.frac_bits() - f;
            ring_bits(bound, what)?;
            a = self.truncate(p, &a, shift)?;
            bound = bound / 2f64.powi(shift as i32) + 1.0;
        }
        let a = a.with_value_and_scale(a.value().scalar_mul(c.m), a.frac_bits() + c.shift);
        bound *= c.m as f64;
        ring_bits(bound, what)?;
        match shifts.last() {
            Some(&shift) if a.frac_bits() > f => {
                debug_assert_eq!(a.frac_bits() - f, shift);
                let t = self.truncate(p, &a, shift)?;
                Ok((t, bound / 2f64.powi(shift as i32) + 1.0))
            }
            _ => Ok((a, bound)),
        }
    }
}

/// A public bound (ring units) on the initial `W = Σ_i R_i` of [`initial_weights`]: each of
/// the `k` parts is below `a` and encoded with at most half a unit of rounding.
fn initial_weight_bound(p: &Party) -> f64 {
    let k = p.k() as f64;
    let a = 1.0 / ((p.d * p.k()) as f64).sqrt();
    k * (a * 2f64.powi(p.fp.frac_bits() as i32) + 1.0)
}

/// The initial weight share: `W = Σ_i R_i` with `R_i ~ U(−a, a)`, `a = 1/√(dk)`, so `W` has the
/// variance `1/(3d)` of Burn's default `Linear` initialisation. Holder `i` keeps
/// `R_i − Σ_j PRG(s_ij)` and every other holder `j` holds `PRG(s_ij)`.
pub(super) fn initial_weights(p: &Party) -> Result<RingMatrix> {
    let (d, h, k) = (p.d, p.h, p.k());
    let a = 1.0 / ((d * k) as f64).sqrt();
    let mut rng = p.config.randomness.rng(p.id(), 0, "w-init");
    let r: Vec<f32> = (0..d * h).map(|_| rng.random_range(-a..a) as f32).collect();
    let mut w = p.fp.encode_matrix(d, h, &r)?;
    for (j, _) in p.others() {
        w.sub_assign(&derive_matrix(p.seed(j)?, "w-init", p.me as u64, 0, (d, h)))?;
        w.add_assign(&derive_matrix(p.seed(j)?, "w-init", j as u64, 0, (d, h)))?;
    }
    Ok(w)
}

impl Engine for SsEngine {
    fn forward(&mut self, p: &Party, step: u64, ids: &[u64], train: bool) -> Result<RingMatrix> {
        let (b, h, me) = (ids.len(), p.h, p.me);
        // 1. receive material
        let shape = StepShape {
            widths: &p.widths,
            batch: b,
            h,
            train,
        };
        let material = self.receive_material(p, &shape)?;
        // 2. open E, F: E_m to everyone, F_{o,m} = ⟨W_o⟩_m − V_{o,m} to holder o only
        let x = p.encoded_features(ids)?;
        let e_m = x.sub(&material.u)?;
        let w = self.w.value();
        let received = p.exchange(|o| {
            let (r0, r1) = p.block(o);
            let f = w.slice_rows(r0, r1)?.sub(material.v_of(o)?)?;
            Ok(vec![e_m.clone(), f])
        })?;
        // 3. Z share: X_m·(⟨W_m⟩_m + Σ_o F_{m,o}) + Σ_o E_o·V_{o,m} + dealt product shares
        let (r0, r1) = p.block(me);
        let mut w_plus_f = w.slice_rows(r0, r1)?;
        let mut z = material.w.clone();
        let mut e = vec![None; p.k()];
        for (o, parts) in received {
            let [e_o, f_mo]: [RingMatrix; 2] = parts
                .try_into()
                .map_err(|_| protocol(p.holders[o], "an opening of the wrong length"))?;
            if e_o.shape() != (b, p.widths[o]) || f_mo.shape() != (p.widths[me], h) {
                return Err(protocol(p.holders[o], "an opening of the wrong shape"));
            }
            w_plus_f.add_assign(&f_mo)?;
            z.add_assign(&e_o.matmul(material.v_of(o)?)?)?;
            e[o] = Some(e_o);
        }
        z.add_assign(&x.matmul(&w_plus_f)?)?;
        self.saved = train.then_some(Saved {
            step,
            x,
            e,
            material,
        });
        Ok(z)
    }

    fn backward(&mut self, p: &Party, step: u64, scale: f64) -> Result<()> {
        let saved = self
            .saved
            .take()
            .filter(|s| s.step == step)
            .ok_or_else(|| {
                protocol(
                    p.server,
                    format!("backward of step {step} without its training forward"),
                )
            })?;
        let (b, h, me) = (saved.x.rows(), p.h, p.me);
        // 1. receive gradient share (uniform in the ring)
        let g = match p.gradient_part((b, h))? {
            GradientPart::Explicit(g) => g,
            GradientPart::Seed(seed) => bundle::derive(&seed, &[(b, h)]).remove(0),
        };
        self.receive_truncations(p, &backward_shifts(&p.config, scale)?)?;
        // 2. open F': ⟨cG⟩_m − V'_{o,m} to holder o
        let m = &saved.material;
        let received = p.exchange(|o| Ok(vec![g.sub(m.v2_of(o)?)?]))?;
        // 3. weight-gradient shares, block by block (rows of W)
        let mut g_plus_f = g.clone();
        let mut blocks: Vec<RingMatrix> = (0..p.k())
            .map(|j| RingMatrix::zeros(p.widths[j], h))
            .collect();
        for (o, parts) in received {
            let [f_mo]: [RingMatrix; 1] = parts
                .try_into()
                .map_err(|_| protocol(p.holders[o], "an opening of the wrong length"))?;
            if f_mo.shape() != (b, h) {
                return Err(protocol(p.holders[o], "an opening of the wrong shape"));
            }
            g_plus_f.add_assign(&f_mo)?;
            let e_o = saved.e[o]
                .as_ref()
                .ok_or_else(|| protocol(p.holders[o], "no opening E in the forward"))?;
            blocks[o] = e_o.transpose().matmul(m.v2_of(o)?)?;
            blocks[o].add_assign(m.other_w2_of(o)?)?;
        }
        blocks[me] = saved.x.transpose().matmul(&g_plus_f)?;
        blocks[me].add_assign(m.own_w2()?)?;
        let grad = RingMatrix::vstack(&blocks.iter().collect::<Vec<_>>())?;
        let s = Share::new(p.me, p.k(), 2 * p.fp.frac_bits(), grad)?;
        let (grad, bound) = self.mul_public(
            p,
            s,
            self.bounds.backward_product(b),
            1.0 / scale,
            "the weight gradient Xᵀ·cG",
        )?;
        self.pending = self.pending.add(&grad)?;
        self.pending_bound += bound;
        Ok(())
    }

    fn update(&mut self, p: &Party, step: u64, lr: f64) -> Result<()> {
        let c = p.config;
        self.receive_truncations(p, &update_shifts(&c, lr)?)?;
        let zero = self.w.with_value(RingMatrix::zeros(p.d, p.h));
        let mut g = std::mem::replace(&mut self.pending, zero);
        let mut g_bound = std::mem::take(&mut self.pending_bound);
        let g_bound_before_decay = g_bound;
        if c.weight_decay > 0.0 {
            let w = self.w.clone();
            let (decay, bound) =
                self.mul_public(p, w, self.w_bound, c.weight_decay, "the weight decay")?;
            g = g.add(&decay)?;
            g_bound += bound;
        }
        let (s, s_bound) = if c.momentum > 0.0 {
            let v = self.velocity.clone();
            let (decayed, v_bound) = self.mul_public(
                p,
                v,
                self.velocity_bound,
                c.momentum,
                "the momentum velocity",
            )?;
            let (fresh, fresh_bound) = if c.dampening > 0.0 {
                self.mul_public(
                    p,
                    g.clone(),
                    g_bound,
                    1.0 - c.dampening,
                    "the dampened gradient",
                )?
            } else {
                (g.clone(), g_bound)
            };
            (self.velocity, self.velocity_bound) = if self.velocity_started {
                (decayed.add(&fresh)?, v_bound + fresh_bound)
            } else {
                (g.clone(), g_bound)
            };
            self.velocity_started = true;
            if c.nesterov {
                let v = self.velocity.clone();
                let (ahead, a_bound) =
                    self.mul_public(p, v, self.velocity_bound, c.momentum, "the Nesterov step")?;
                (g.add(&ahead)?, g_bound + a_bound)
            } else {
                (self.velocity.clone(), self.velocity_bound)
            }
        } else {
            (g, g_bound)
        };
        let (delta, d_bound) = self.mul_public(p, s, s_bound, lr, "the weight update")?;
        self.w = p.with_sgld_noise(self.w.sub(&delta)?, step, lr)?;
        self.w_bound = if c.sgld > 0.0 {
            // Gaussian noise has no bound: weight decay (which needs one) is refused with it,
            // and a checkpoint of this run cannot be resumed with it.
            f64::MAX
        } else if c.weight_decay > 0.0 {
            // Plain SGD (weight decay excludes momentum): the contraction of the exact algebra.
            decayed_weight_bound(
                self.w_bound,
                PublicScale::of(lr)?.value(),
                PublicScale::of(c.weight_decay)?.value(),
                g_bound_before_decay,
            )
        } else {
            self.w_bound + d_bound
        };
        Ok(())
    }

    fn save(&self) -> Result<Vec<u8>> {
        let record =
            ShareRecord::to_bytes(&[self.w.value(), self.velocity.value(), self.pending.value()])?;
        let mut out = Vec::new();
        (
            (self.pending_bound, self.velocity_bound),
            (self.w_bound, self.velocity_started),
            Blob(record),
        )
            .encode(&mut out);
        Ok(out)
    }

    fn load(&mut self, p: &Party, payload: &[u8]) -> std::result::Result<(), String> {
        let state = parse_state(payload, (p.d, p.h))?;
        self.w = self.w.with_value(state.w);
        self.velocity = self.velocity.with_value(state.velocity);
        self.pending = self.pending.with_value(state.pending);
        self.pending_bound = state.pending_bound;
        self.velocity_bound = state.velocity_bound;
        self.w_bound = state.w_bound;
        self.velocity_started = state.velocity_started;
        Ok(())
    }

    #[cfg(feature = "insecure-test-hooks")]
    fn weight_share(&self) -> Option<&RingMatrix> {
        Some(self.w.value())
    }
}
