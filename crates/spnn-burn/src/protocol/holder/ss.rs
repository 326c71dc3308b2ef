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
//! **Clipping** (first in every update, as Burn clips before its optimiser's step; module
//! [`crate::protocol::clip`]): by value, `g ← g + [g > τ]·(τ − g) + [g < −τ]·(−τ − g)`, each
//! bracket a secure comparison with zero ([`spnn_crypto::compare`]: one opening of
//! `x + 2^62 + r` and a chain of 62 element-wise products of shared bits); by norm,
//! `g ← g·(b·τ/‖g‖ + 1 − b)` with `b = [‖g‖² > τ²]` and Adam's inverse square root.
//!
//! **Update** (`Command::Update`): Burn's SGD on shares, every constant public
//! ([`crate::SpnnConfig`]'s SGD fields, the step's learning rate `η`): `g ← g + λ·W` (weight
//! decay), `v ← g` at the first update and `v ← μ·v + (1 − τ)·g` after it (momentum `μ`,
//! dampening `τ`), the step `s = v` or, with Nesterov momentum, `s = g + μ·v`, and
//! `⟨W⟩ ← ⟨W⟩ − η·s`; each product by a public constant truncated exactly. Every update
//! performs the same truncations (the dampened gradient is computed at the first update too),
//! so the dealer foresees them from the configuration alone ([`Dealing::update`]).
//!
//! Every truncation's input has a public bound ([`crate::protocol::bounds`]) that the holder
//! tracks and checks: a run that would exceed the ring stops with an error.

use std::collections::VecDeque;

use rand::Rng;
use spnn_crypto::beaver::{
    MAX_TRUNCATION_BITS, TruncationShare, hadamard_product, truncation_finish, truncation_open,
};
use spnn_crypto::derive::derive_matrix;
use spnn_crypto::{RingMatrix, SecretSeed, Share};
use spnn_net::codec::{Blob, Codec, Reader};

use super::record::ShareRecord;
use super::{Engine, GradientPart, Party};
use crate::config::AdamParams;
use crate::error::{Result, SpnnError, protocol};
use crate::messages::{DealerBundle, DealerSeed};
use crate::protocol::Dealing;
use crate::protocol::adam::{Pieces, Plan, split_factor, value_of};
use crate::protocol::bounds::{Bounds, decayed_weight_bound, ring_bits};
use crate::protocol::bundle;
use crate::protocol::bundle::{COMPARISON_EXPLICIT, PRODUCT_EXPLICIT, TRUNCATION_EXPLICIT};
use crate::protocol::clip::NormPlan;
use crate::protocol::pairwise::{Material, StepShape};
use crate::protocol::scale::{PublicScale, truncation_shifts};

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
    second: RingMatrix,
    pending_bound: f64,
    velocity_bound: f64,
    w_bound: f64,
    second_bound: f64,
    velocity_started: bool,
    updates: u64,
    /// The Adam configuration the state was written under (`None`: SGD).
    adam: Option<AdamParams>,
}

/// Parses a state written by [`SsEngine`]'s `save` for weights of `shape`; refuses anything
/// malformed, including a bound that is not a finite non-negative number.
pub(crate) fn parse_state(
    payload: &[u8],
    shape: (usize, usize),
) -> std::result::Result<State, String> {
    let mut r = Reader::new(payload);
    type Fields = (
        (f64, f64),
        (f64, f64),
        ((bool, u64), (Option<AdamParams>, Blob)),
    );
    let (
        (pending_bound, velocity_bound),
        (w_bound, second_bound),
        ((velocity_started, updates), (adam, Blob(record))),
    ) = <Fields>::read(&mut r).map_err(|e| e.to_string())?;
    r.finish().map_err(|e| e.to_string())?;
    for b in [pending_bound, velocity_bound, w_bound, second_bound] {
        if !(b.is_finite() && b >= 0.0) {
            return Err(format!("a magnitude bound of {b}"));
        }
    }
    let mut shares = ShareRecord::load(&record, 4, shape)?.into_iter();
    let mut next = || shares.next().ok_or("four shares");
    Ok(State {
        w: next()?,
        velocity: next()?,
        pending: next()?,
        second: next()?,
        pending_bound,
        velocity_bound,
        w_bound,
        second_bound,
        velocity_started,
        updates,
        adam,
    })
}

pub(super) struct SsEngine {
    w: Share,
    /// SGD's velocity, or Adam's first moment `m`.
    velocity: Share,
    pending: Share,
    /// Adam's second moment `v`, at scale `2^{2f}` (zero under SGD).
    second: Share,
    /// Public bounds (ring units at scale `2^f`) of the pending gradient, the velocity and `W`.
    pending_bound: f64,
    velocity_bound: f64,
    w_bound: f64,
    /// Public bound of `v` (ring units at `2^{2f}`).
    second_bound: f64,
    /// Whether an update has set the velocity (Burn's first momentum step takes `g` undamped).
    velocity_started: bool,
    /// Updates applied (Adam's bias corrections count them).
    updates: u64,
    /// The session's Adam parameters (`None`: SGD), recorded in every checkpoint.
    adam: Option<AdamParams>,
    bounds: Bounds,
    saved: Option<Saved>,
    /// Dealt truncation triples, each with the shift it was dealt for.
    truncations: VecDeque<(u32, [RingMatrix; 3])>,
    /// Dealt element-wise triples `[a, b, a∘b]` (Adam).
    products: VecDeque<[RingMatrix; 3]>,
    /// Comparison material dealt for the current update: `[r, r_0, …, r_62]` each.
    comparisons: VecDeque<Vec<RingMatrix>>,
}

impl SsEngine {
    /// A fresh engine with the initial weight share.
    pub(super) fn new(p: &Party) -> Result<Self> {
        let zero = Share::new(p.me, p.k(), p.fp.frac_bits(), RingMatrix::zeros(p.d, p.h))?;
        let mut engine = Self {
            w: zero.clone(),
            velocity: zero.clone(),
            pending: zero.clone(),
            second: zero.with_value_and_scale(RingMatrix::zeros(p.d, p.h), 2 * p.fp.frac_bits()),
            pending_bound: 0.0,
            velocity_bound: 0.0,
            w_bound: initial_weight_bound(p),
            second_bound: 0.0,
            velocity_started: false,
            updates: 0,
            adam: p.config.adam,
            bounds: Bounds::of(&p.config)?,
            saved: None,
            truncations: VecDeque::new(),
            products: VecDeque::new(),
            comparisons: VecDeque::new(),
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

    /// Receives the dealer's material for one backward or update command ([`Dealing`]), in the
    /// dealer's order: truncation triples ([`bundle::deal_truncations`]), element-wise triples
    /// ([`bundle::deal_products`]), comparisons' material ([`bundle::deal_comparisons`]) —
    /// each a seed, and for holder 0 its explicit shares — each only if not empty.
    fn receive_dealing(&mut self, p: &Party, dealing: &Dealing) -> Result<()> {
        let shapes = dealing.dims(p.d, p.h);
        if !shapes.truncations.is_empty() {
            let (seed, explicit) =
                Self::receive_part(p, &shapes.truncations, TRUNCATION_EXPLICIT, "truncation")?;
            let triples = bundle::truncation_shares(&seed, p.me, explicit, &shapes.truncations);
            let shifts = dealing.truncations.iter().map(|&(_, shift)| shift);
            self.truncations.extend(shifts.zip(triples));
        }
        if !shapes.products.is_empty() {
            let (seed, explicit) =
                Self::receive_part(p, &shapes.products, PRODUCT_EXPLICIT, "product")?;
            self.products.extend(bundle::product_shares(
                &seed,
                p.me,
                explicit,
                &shapes.products,
            ));
        }
        if !shapes.comparisons.is_empty() {
            let (seed, explicit) =
                Self::receive_part(p, &shapes.comparisons, COMPARISON_EXPLICIT, "comparison")?;
            self.comparisons.extend(bundle::comparison_shares(
                &seed,
                p.me,
                explicit,
                &shapes.comparisons,
            ));
        }
        Ok(())
    }

    /// One part of a command's material: its seed, and for holder 0 its `per` explicit matrices
    /// per item of `shapes`, in the messages of [`bundle::message_sizes`], each checked.
    fn receive_part(
        p: &Party,
        shapes: &[(usize, usize)],
        per: usize,
        what: &str,
    ) -> Result<(SecretSeed, Vec<RingMatrix>)> {
        let DealerSeed(seed) = p.net.recv(p.dealer)?;
        if p.me != 0 {
            return Ok((seed, Vec::new()));
        }
        let expected = bundle::explicit_shapes(shapes, per);
        let mut all = Vec::with_capacity(expected.len());
        let mut offset = 0;
        for size in bundle::message_sizes(&expected) {
            let DealerBundle(mats) = p.net.recv(p.dealer)?;
            let want = &expected[offset..offset + size];
            if mats.len() != size || mats.iter().zip(want).any(|(m, &s)| m.shape() != s) {
                return Err(protocol(
                    p.dealer,
                    format!(
                        "a {what} bundle of {} matrices, expected {size} of the dealt shapes",
                        mats.len()
                    ),
                ));
            }
            offset += size;
            all.extend(mats);
        }
        Ok((seed, all))
    }

    /// The element-wise product `x ∘ y` of two shared matrices of the same shape (the dealt
    /// triple's), at the sum of their scales: one opening of `x − a`, `y − b` among the holders.
    fn mul_shares(&mut self, p: &Party, x: &Share, y: &Share) -> Result<Share> {
        let [a, b, c] = self
            .products
            .pop_front()
            .ok_or_else(|| protocol(p.dealer, "ran out of element-wise triples"))?;
        let opened = p.open(vec![x.value().sub(&a)?, y.value().sub(&b)?])?;
        let z = hadamard_product(&opened[0], &opened[1], [&a, &b, &c], p.me == 0)?;
        Ok(x.with_value_and_scale(z, x.frac_bits() + y.frac_bits()))
    }

    /// Shares of `[x ≥ 0]` (ring values 0 or 1, scale 1) for every entry of `x`, whose public
    /// bound `bound` (ring units) the caller passes: one opening of `x + 2^62 + r`, then the
    /// borrow chain's products (module [`spnn_crypto::compare`]).
    fn non_negative(&mut self, p: &Party, x: &Share, bound: f64, what: &str) -> Result<Share> {
        use spnn_crypto::compare::{COMPARISON_BITS, comparison_open, non_negative};
        // A comparison takes what an exact truncation takes: |x| < 2^62, which ring_bits checks.
        const _: () = assert!(COMPARISON_BITS == MAX_TRUNCATION_BITS);
        ring_bits(bound, what)?;
        let material = self
            .comparisons
            .pop_front()
            .ok_or_else(|| protocol(p.dealer, "ran out of comparison material"))?;
        let mut material = material.into_iter();
        let r = material
            .next()
            .ok_or_else(|| protocol(p.dealer, "empty comparison"))?;
        let bits = material
            .map(|b| Share::new(p.me, p.k(), 0, b))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let r = x.with_value(r);
        let c = p.open(vec![comparison_open(x, &r)?])?;
        non_negative(&c[0], &bits, |a, b| self.mul_shares(p, a, b))
    }

    /// Burn's gradient clipping by value on the shares: every entry of `g` (bound `g_bound`,
    /// ring units at `2^f`) clamped to `[−τ, τ]`, `τ` in ring units, as
    /// `g + [g > τ]·(τ − g) + [g < −τ]·(−τ − g)` — exact, so the result is bounded by
    /// `min(g_bound, τ)`.
    fn clip_values(&mut self, p: &Party, g: Share, g_bound: f64, tau: f64) -> Result<(Share, f64)> {
        let f = p.fp.frac_bits();
        let t = (tau * 2f64.powi(f as i32)).round();
        let what = "the weight gradient clipped by value";
        let threshold = self.constant(p, (p.d, p.h), t as u64, f)?;
        let one = self.constant(p, (p.d, p.h), 1, f)?;
        let zero = self.constant(p, (p.d, p.h), 0, f)?;
        // [g > τ] = [g − τ − 1 ≥ 0] and [g < −τ] = [−g − τ − 1 ≥ 0]: integers in ring units.
        let bound = g_bound + t + 1.0;
        let above = g.sub(&threshold)?.sub(&one)?;
        let above = self.non_negative(p, &above, bound, what)?;
        let below = zero.sub(&g)?.sub(&threshold)?.sub(&one)?;
        let below = self.non_negative(p, &below, bound, what)?;
        let down = self.mul_shares(p, &above, &threshold.sub(&g)?)?;
        let up = self.mul_shares(p, &below, &zero.sub(&threshold)?.sub(&g)?)?;
        Ok((g.add(&down)?.add(&up)?, g_bound.min(t)))
    }

    /// Exact truncation of `z` by `shift` (module [`spnn_crypto::beaver`]): one opening of
    /// `z + 2^62 + r` among the holders.
    fn truncate(&mut self, p: &Party, z: &Share, shift: u32) -> Result<Share> {
        let (dealt_for, [r, high, danger]) = self
            .truncations
            .pop_front()
            .ok_or_else(|| protocol(p.dealer, "ran out of truncation triples"))?;
        if dealt_for != shift {
            return Err(SpnnError::Config(format!(
                "a truncation by {shift} bits met a triple dealt for {dealt_for}: the holders' \
                 update and the dealer's plan disagree"
            )));
        }
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

impl SsEngine {
    /// A share of the public constant `value` (ring units at scale `2^frac`) in every entry of
    /// a `rows × cols` matrix:
    /// holder 0 holds it, the others zero.
    fn constant(
        &self,
        p: &Party,
        (rows, cols): (usize, usize),
        value: u64,
        frac: u32,
    ) -> Result<Share> {
        let zero = Share::new(p.me, p.k(), frac, RingMatrix::zeros(rows, cols))?;
        Ok(zero.add_public(&RingMatrix::from_vec(rows, cols, vec![value; rows * cols])?)?)
    }

    /// `a · c` for a public `c` given as 8-bit [`Pieces`], at `a`'s own scale, with the public
    /// bound of the result: one truncation per piece (each errs by up to a unit).
    fn mul_pieces(
        &mut self,
        p: &Party,
        a: &Share,
        bound: f64,
        pieces: &Pieces,
        what: &str,
    ) -> Result<(Share, f64)> {
        let mut sum = a.with_value(RingMatrix::zeros(p.d, p.h));
        let mut sum_bound = 0.0;
        for &(m, shift) in pieces {
            ring_bits(bound * m as f64, what)?;
            let piece = a.with_value_and_scale(a.value().scalar_mul(m), a.frac_bits() + shift);
            let piece = if shift > 0 {
                self.truncate(p, &piece, shift)?
            } else {
                piece
            };
            sum = sum.add(&piece)?;
            sum_bound += bound * m as f64 / 2f64.powi(shift as i32) + 1.0;
        }
        Ok((sum, sum_bound))
    }

    /// `y ≈ 1/√x` at scale `2^f` for `x` at `2^{2f}`, by Newton's `y ← y·(3 − x·y²)/2` from the
    /// public start `2^{−c}` in `iterations` steps (module [`crate::protocol::adam`], step 2):
    /// three products and three truncations per step. The caller checks the bounds first.
    fn rsqrt(&mut self, p: &Party, x: &Share, c: u32, iterations: u32) -> Result<Share> {
        let f = p.fp.frac_bits();
        let three = self.constant(p, x.shape(), 3 << f, f)?;
        let mut y = self.constant(p, x.shape(), 1 << (f - c), f)?;
        for _ in 0..iterations {
            let xy = self.mul_shares(p, x, &y)?;
            let xy = self.truncate(p, &xy, f)?;
            let xyy = self.mul_shares(p, &xy, &y)?;
            let xyy = self.truncate(p, &xyy, 2 * f)?;
            let y3 = self.mul_shares(p, &y, &three.sub(&xyy)?)?;
            // Truncating by f + 1 also halves: the result is y at 2^f.
            let y_half = self.truncate(p, &y3, f + 1)?;
            y = y3.with_value_and_scale(y_half.into_value(), f);
        }
        Ok(y)
    }

    /// Burn's gradient clipping by norm on the shares (module [`crate::protocol::clip`]):
    /// `g·min(1, τ/‖g‖)` for `g` with bound `g_bound` (ring units at `2^f`). Every bound is
    /// checked before anything is computed; the result's bound is `g_bound` times the largest
    /// factor rounding allows ([`NormPlan::max_factor`], at most `1 + 2^{−8}`), plus a unit.
    fn clip_norm(
        &mut self,
        p: &Party,
        plan: &NormPlan,
        g: Share,
        g_bound: f64,
    ) -> Result<(Share, f64)> {
        let f = plan.frac_bits;
        let unit = |bits: u32| 2f64.powi(bits as i32);
        let n = (p.d * p.h) as f64;
        let s_bound = n * g_bound * g_bound;
        let t = plan.tau_squared_units as f64;
        let y_max = plan.max_rsqrt() * unit(f);
        // s/2^{2k} stays inside the square root's domain 4^c (in units at 2^{2f}).
        let v_bound = s_bound / unit(2 * plan.k) + 1.0;
        if v_bound > unit(2 * (plan.c + f)) {
            return Err(SpnnError::Config(format!(
                "the squared norm of the weight gradient may reach {:.3e}, beyond the square \
                 root's domain at {f} fractional bits",
                s_bound / unit(2 * f)
            )));
        }
        for (bound, what) in [
            (s_bound + t + 1.0, "the squared norm of the weight gradient"),
            (
                2.0 * v_bound.sqrt() * unit(2 * f),
                "x·y in the norm's square root",
            ),
            (
                3.0 * y_max * unit(f),
                "y·(3 − x·y²) in the norm's square root",
            ),
            (y_max * 256.0 * 256.0, "the clipping factor"),
            (
                g_bound * plan.max_factor() * unit(f),
                "the clipped gradient",
            ),
        ] {
            ring_bits(bound, what)?;
        }
        // s = ‖g‖² at 2^{2f}, a single value: each holder sums its own share of g∘g.
        let g2 = self.mul_shares(p, &g, &g)?;
        let total = g2
            .value()
            .as_slice()
            .iter()
            .fold(0u64, |a, &v| a.wrapping_add(v));
        let s = g2.with_value(RingMatrix::from_vec(1, 1, vec![total])?);
        // b = [s > τ²] = [s − τ² − 1 ≥ 0]
        let above = s
            .sub(&self.constant(p, (1, 1), plan.tau_squared_units, 2 * f)?)?
            .sub(&self.constant(p, (1, 1), 1, 2 * f)?)?;
        let b = self.non_negative(p, &above, s_bound + t + 1.0, "the squared norm")?;
        // y ≈ 2^k/‖g‖ from s/2^{2k}, read at 2^{2f}.
        let v = if plan.k > 0 {
            let v = self.truncate(p, &s, 2 * plan.k)?;
            s.with_value(v.into_value())
        } else {
            s
        };
        let y = self.rsqrt(p, &v, plan.c, plan.rsqrt_iterations)?;
        // factor = b·(τ·2^{−k})·y + (1 − b), at 2^f; every holder spreads its share of it over
        // the weights' shape (a sharing of the factor in every entry).
        let by = self.mul_shares(p, &b, &y)?;
        let (scaled, _) = self.mul_public(p, by, y_max, plan.factor(), "the clipping factor")?;
        let keep = self.constant(p, (1, 1), 1, 0)?.sub(&b)?;
        let factor = scaled.add(&keep.with_value_and_scale(keep.value().scalar_mul(1 << f), f))?;
        let spread = vec![factor.value().as_slice()[0]; p.d * p.h];
        let factor = factor.with_value(RingMatrix::from_vec(p.d, p.h, spread)?);
        let clipped = self.mul_shares(p, &g, &factor)?;
        let clipped = self.truncate(p, &clipped, f)?;
        Ok((clipped, g_bound * plan.max_factor() + 1.0))
    }

    /// Adam's update on the shares (module [`crate::protocol::adam`]): AdamW's decay, the
    /// moments, `q ≈ 1/(√v + ε')` by two Newton iterations, `W ← W − η·κ_t·m∘q`. Every
    /// truncation's input is checked against its public bound, derived from the iterations'
    /// never overshooting their fixed points (module docs) — all of them before any state
    /// changes, for the moments' steady state under this gradient bound, so a run that fits
    /// its first update fits every later one with gradients bounded alike.
    fn adam_update(
        &mut self,
        p: &Party,
        plan: &Plan,
        g: Share,
        g_bound: f64,
        step: u64,
        lr: f64,
    ) -> Result<()> {
        let f = plan.frac_bits;
        let unit = |bits: u32| 2f64.powi(bits as i32);
        let [b1, nb1, b2, nb2] = &plan.betas;
        // Public bounds: m' ≤ β̃₁·m + (1 − β̃₁)·g + one unit per piece, so m never exceeds
        // max(m, g) + (pieces)/(1 − β̃₁); likewise v with g². Checked up front.
        let (step_pieces, decay_pieces) =
            (split_factor(plan.step_factor)?, split_factor(plan.decay)?);
        let g2_bound = g_bound * g_bound;
        let largest = |pieces: &Pieces| pieces.iter().map(|&(m, _)| m as f64).fold(0.0, f64::max);
        let slack = |b: &Pieces, nb: &Pieces| (b.len() + nb.len()) as f64 / value_of(nb);
        let m_limit = self.velocity_bound.max(g_bound) + slack(b1, nb1);
        let v_limit = self.second_bound.max(g2_bound) + slack(b2, nb2);
        if v_limit > plan.max_second_moment() {
            return Err(SpnnError::Config(format!(
                "Adam's second moment may reach {:.3e}, beyond the 4^{} its square root on shares \
                 covers at {f} fractional bits: use smaller clips, batches or fewer accumulated \
                 batches, or 16 fractional bits",
                v_limit / unit(2 * f),
                plan.c
            )));
        }
        let root_bound = 2.0 * (v_limit / unit(2 * f)).sqrt() + 1.0;
        let q_max = plan.max_reciprocal() * unit(f);
        let step_bound = m_limit * q_max;
        for (bound, what) in [
            (g2_bound, "the squared gradient"),
            (m_limit * 256.0, "Adam's first moment"),
            (v_limit * 256.0, "Adam's second moment"),
            (root_bound * unit(3 * f), "v·y in Adam's square root"),
            (3.0 * plan.max_rsqrt() * unit(2 * f), "y·(3 − v·y²)"),
            (2.0 * q_max * unit(f), "q·(2 − u·q)"),
            (step_bound, "Adam's step m/(√v + ε)"),
            (
                (step_bound / unit(f) + 1.0) * largest(&step_pieces),
                "Adam's weight update",
            ),
        ] {
            ring_bits(bound, what)?;
        }
        if plan.decay > 0.0 {
            // W's bound grows by the step's bound every update (Adam's step is not a
            // contraction): at the defaults a run stops with this error after about 4·10⁶
            // updates at η = 10⁻³.
            ring_bits(
                self.w_bound * largest(&decay_pieces),
                "AdamW's weight decay",
            )?;
        }
        // AdamW: W ← W − η·λ·W (of the weights before this step, as Burn).
        let mut w_bound = self.w_bound;
        if plan.decay > 0.0 {
            let pieces = decay_pieces;
            let w = self.w.clone();
            let (decay, _) = self.mul_pieces(p, &w, w_bound, &pieces, "AdamW's weight decay")?;
            self.w = self.w.sub(&decay)?;
            w_bound = (1.0 - value_of(&pieces)).abs() * w_bound + pieces.len() as f64;
        }
        // m ← β₁·m + (1 − β₁)·g
        let m = self.velocity.clone();
        let (m, m_bound) =
            self.mul_pieces(p, &m, self.velocity_bound, b1, "Adam's first moment")?;
        let (fresh, fresh_bound) = self.mul_pieces(p, &g, g_bound, nb1, "Adam's gradient")?;
        self.velocity = m.add(&fresh)?;
        self.velocity_bound = m_bound + fresh_bound;
        // v ← β₂·v + (1 − β₂)·g∘g, at 2^{2f}
        let g2 = self.mul_shares(p, &g, &g)?;
        let v = self.second.clone();
        let (v, v_bound) = self.mul_pieces(p, &v, self.second_bound, b2, "Adam's second moment")?;
        let (fresh, fresh_bound) =
            self.mul_pieces(p, &g2, g2_bound, nb2, "the squared gradient")?;
        self.second = v.add(&fresh)?;
        self.second_bound = v_bound + fresh_bound;
        // y ≈ 1/√v from below; v·y ≤ 2·√v, v·y² ≤ 2, y ≤ max_rsqrt.
        let x = self.second.clone();
        let y = self.rsqrt(p, &x, plan.c, plan.rsqrt_iterations)?;
        // u = √v + ε' at 2^{2f}; q ≈ 1/u from below: u·q ≤ 2, q ≤ max_reciprocal.
        let root = self.mul_shares(p, &x, &y)?;
        let root = self.truncate(p, &root, f)?;
        let u = root.add(&self.constant(p, (p.d, p.h), plan.epsilon_units, 2 * f)?)?;
        let two = self.constant(p, (p.d, p.h), 2 << f, f)?;
        let mut q = self.constant(p, (p.d, p.h), 1 << (f - plan.c - 2), f)?;
        for _ in 0..plan.reciprocal_iterations {
            let uq = self.mul_shares(p, &u, &q)?;
            let uq = self.truncate(p, &uq, 2 * f)?;
            let q2 = self.mul_shares(p, &q, &two.sub(&uq)?)?;
            q = self.truncate(p, &q2, f)?;
        }
        // W ← W − η·κ_t·m∘q
        let m = self.velocity.clone();
        let r = self.mul_shares(p, &m, &q)?;
        let r = self.truncate(p, &r, f)?;
        let (delta, d_bound) = self.mul_pieces(
            p,
            &r,
            self.velocity_bound * q_max / unit(f) + 1.0,
            &step_pieces,
            "Adam's weight update",
        )?;
        self.w = p.with_sgld_noise(self.w.sub(&delta)?, step, lr)?;
        self.w_bound = if p.config.sgld > 0.0 {
            f64::MAX
        } else {
            w_bound + d_bound
        };
        Ok(())
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
        self.receive_dealing(p, &Dealing::backward(&p.config, scale)?)?;
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
        if c.adam.is_some() && step != self.updates {
            // Adam's bias corrections count updates: the server's count must be this holder's.
            return Err(protocol(
                p.server,
                format!(
                    "update {step} after {} updates (a resumed server restores its counters \
                     with ServerSession::set_counters)",
                    self.updates
                ),
            ));
        }
        let t = step + 1;
        self.receive_dealing(p, &Dealing::update(&c, lr, t)?)?;
        let zero = self.w.with_value(RingMatrix::zeros(p.d, p.h));
        let mut g = std::mem::replace(&mut self.pending, zero);
        let mut g_bound = std::mem::take(&mut self.pending_bound);
        self.updates += 1;
        // As Burn: the gradient is clipped before the optimiser's step uses it.
        if c.grad_clip_value > 0.0 {
            (g, g_bound) = self.clip_values(p, g, g_bound, c.grad_clip_value)?;
        } else if c.grad_clip_norm > 0.0 {
            (g, g_bound) = self.clip_norm(p, &NormPlan::new(&c)?, g, g_bound)?;
        }
        if c.adam.is_some() {
            return self.adam_update(p, &Plan::new(&c, lr, t)?, g, g_bound, step, lr);
        }
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
        let record = ShareRecord::to_bytes(&[
            self.w.value(),
            self.velocity.value(),
            self.pending.value(),
            self.second.value(),
        ])?;
        let mut out = Vec::new();
        (
            (self.pending_bound, self.velocity_bound),
            (self.w_bound, self.second_bound),
            (
                (self.velocity_started, self.updates),
                (self.adam, Blob(record)),
            ),
        )
            .encode(&mut out);
        Ok(out)
    }

    fn load(&mut self, p: &Party, payload: &[u8]) -> std::result::Result<(), String> {
        let state = parse_state(payload, (p.d, p.h))?;
        if state.adam != self.adam {
            // Adam's moments, or SGD's velocity, mean nothing to the other optimiser.
            return Err(format!(
                "the checkpoint was written with Adam {:?}, this session runs {:?}",
                state.adam, self.adam
            ));
        }
        self.w = self.w.with_value(state.w);
        self.velocity = self.velocity.with_value(state.velocity);
        self.pending = self.pending.with_value(state.pending);
        self.second = self.second.with_value(state.second);
        self.pending_bound = state.pending_bound;
        self.velocity_bound = state.velocity_bound;
        self.w_bound = state.w_bound;
        self.second_bound = state.second_bound;
        self.velocity_started = state.velocity_started;
        self.updates = state.updates;
        Ok(())
    }

    #[cfg(feature = "insecure-test-hooks")]
    fn weight_share(&self) -> Option<&RingMatrix> {
        Some(self.w.value())
    }
}
