//! Burn's Adam on the weight shares: the public plan of one update.
//!
//! Burn 0.22's Adam (and AdamW, the same algebra) updates a weight by
//!
//! ```text
//! m ← β₁·m + (1 − β₁)·g          v ← β₂·v + (1 − β₂)·g∘g
//! W ← W − η·κ_t · m / (√v + ε_t),   κ_t = √(1 − β₂^t)/(1 − β₁^t),   ε_t = ε·√(1 − β₂^t)
//! ```
//!
//! (AdamW first decays `W ← (1 − η·λ)·W`). The holders run it on additive shares of `g`, `m`,
//! `v` and `W`; nobody sees a moment or a gradient. Linear steps are products by public
//! constants with exact truncation, as for SGD. The rest uses the dealer's **element-wise
//! triples** `(a, b, a∘b)` (one opening of `x − a`, `y − b` among the holders per product,
//! [`spnn_crypto::beaver::hadamard_product`]):
//!
//! 1. `g∘g`, exactly, at scale `2^{2f}`; `v` stays at `2^{2f}` (resolution `2^{−2f}`).
//! 2. **Inverse square root** `y ≈ 1/√v` by Newton's iteration `y ← y·(3 − v·y²)/2` from the
//!    public start `y₀ = 2^{−c}`, `c = 60 − 3f`, below `1/√v` for every `v ≤ 4^c` (the holders
//!    check their public bound on `v` against it). From below the iteration never overshoots:
//!    `y(3 − v y²)/2 ≤ 1/√v` for every `y ≥ 0`, so `v·y² ≤ 1` up to rounding, which bounds every
//!    product; far below it grows by `3/2` per step, so [`Plan::rsqrt_iterations`] steps reach
//!    `1/√v` for every `v ≥ 2^{−2f}` with five steps of quadratic convergence to spare.
//! 3. `√v = v·y` (kept at `2^{2f}`), `u = √v + ε'_t` with the public `ε'_t = max(ε_t, 2^{−f})`.
//! 4. **Reciprocal** `q ≈ 1/u` by `q ← q·(2 − u·q)` from `q₀ = 2^{−(c+2)} < 1/u`: doubles when far
//!    below, never overshoots; [`Plan::reciprocal_iterations`] steps reach `1/ε'_t`.
//! 5. `m∘q`, times the public `η·κ_t`, subtracted from `W`.
//!
//! **The floor `ε'_t ≥ 2^{−f}`.** The weight gradient arrives at scale `2^{−f}` with a rounding
//! error of up to one unit per truncation, so `m` carries errors of a few units wherever the true
//! gradient is tiny. Burn's `ε_t` at the first steps is `ε·√(1 − β₂)` (3·10⁻⁷ at the defaults),
//! and a unit of rounding divided by it would move a weight by tens of learning rates; with the
//! floor, rounding moves a weight by a few learning rates at most — what Burn's own Adam does
//! with a gradient of that size. In Burn's terms the floor is an `ε` of
//! `max(ε, 2^{−f}/√(1 − β₂^t))`: 4.8·10⁻⁴ at `t = 1`, 5·10⁻⁵ at `t = 100` and 1.9·10⁻⁵ at
//! `t = 1000` with `f = 16` and `β₂ = 0.999`. Where `√v̂` is well above it (every weight that
//! learns) the update is Burn's; the tracking test measures the difference step by step.
//!
//! **Factors.** `β` and `1 − β` are rounded to complementary multiples of `2^{−24}`
//! ([`moment_factors`]), so each moment is an exact convex combination; each factor is applied
//! in 8-bit pieces, one truncation each, so `v` (up to `2^{54}` ring units) times a piece stays in
//! the ring. The bias corrections use the rounded `β̃`.
//!
//! **Limits.** The holders check, before an update changes anything, that the moments' steady
//! state under the update's gradient bound stays inside every bound above; at 16 fractional bits
//! the default clips fit, at 17 they need narrower clips (the tests use 16 and 4), and at 18 or
//! 19 the first update stops with the reason. With AdamW's decay the public bound on `W` grows by
//! the step's bound every update (Adam's step is no contraction): at the defaults and `η = 10⁻³` a
//! run stops with an error after about `4·10⁶` updates (`4·10⁵` at `10⁻²`).
//!
//! **Cost.** Every product and every truncation is one opening among the holders:
//! [`Plan::products`] element-wise products (each `d × h`) and about as many truncations per
//! update — 232 and 244 at `f = 16`, 476 rounds — independent of the batch.

use super::scale::PublicScale;
use crate::config::SpnnConfig;
use crate::error::{Result, SpnnError};

/// A public factor as pieces `(m_i, s_i)`, `c = Σ m_i·2^{−s_i}` with every `m_i ≤ 2^8`: a value
/// bounded by `2^54` ring units times a piece stays inside the ring. Each piece with `s_i > 0` is
/// one exact truncation by `s_i`.
pub type Pieces = Vec<(u64, u32)>;

/// The real number `pieces` stand for.
pub fn value_of(pieces: &Pieces) -> f64 {
    pieces
        .iter()
        .map(|&(m, s)| m as f64 / 2f64.powi(s as i32))
        .sum()
}

/// The 8-bit pieces of the integer `m ≤ 2^shift` at shift `shift`, highest first (the highest
/// is 256 when `m = 2^shift`, a factor of exactly 1).
fn pieces_of(m: u64, shift: u32) -> Pieces {
    let n = shift.div_ceil(8);
    (0..n)
        .rev()
        .map(|i| {
            let piece = if i + 1 == n {
                m >> (8 * i)
            } else {
                (m >> (8 * i)) & 0xff
            };
            (piece, shift - 8 * i)
        })
        .filter(|&(piece, _)| piece > 0)
        .collect()
}

/// `c` (at most 1) with the 16-bit mantissa of [`PublicScale`], in 8-bit pieces: AdamW's
/// decay `η·λ` and the step factor `η·κ_t`.
pub fn split_factor(c: f64) -> Result<Pieces> {
    let PublicScale { m, shift } = PublicScale::of(c)?;
    if m >= 1 << shift {
        // c ≥ 1 (a huge learning rate): one piece per 8 bits of the integer part as well.
        return Ok(vec![(m, shift)]);
    }
    Ok(pieces_of(m, shift))
}

/// Bits of the moments' factors: `β` rounds to a multiple of `2^{−24}`.
pub const MOMENT_BITS: u32 = 24;

/// `β` and `1 − β` as complementary pieces that add up to exactly 1 (`β̃ = m·2^{−24}` and
/// `(2^{24} − m)·2^{−24}`), so `β̃·v + (1 − β̃)·x` is a convex combination however close `β` is
/// to 1; and `β̃` itself, which the bias corrections use.
pub fn moment_factors(beta: f64) -> (Pieces, Pieces, f64) {
    let one = 1u64 << MOMENT_BITS;
    let m = ((beta * one as f64).round() as u64).min(one);
    (
        pieces_of(m, MOMENT_BITS),
        pieces_of(one - m, MOMENT_BITS),
        m as f64 / one as f64,
    )
}

/// The public start and length of the inverse square root on shares at `f` fractional bits
/// (module docs, step 2): `c = 60 − 3f` (the start `2^{−c}`, the domain `v ≤ 4^c`) and the
/// Newton steps that reach `1/√v` for every `v ≥ 2^{−2f}` with five steps to spare. For
/// `16 ≤ f ≤ 19`, which the callers check.
pub fn rsqrt_plan(f: u32) -> (u32, u32) {
    let c = 60u32.saturating_sub(3 * f);
    let growth = 1.5f64.log2();
    (c, (f64::from(c + f) / growth).ceil() as u32 + 5)
}

/// The largest value (real) the inverse square root of [`rsqrt_plan`] reaches from `2^{−c}`
/// in `iterations` steps at `f` fractional bits: where `v = 0` it grows by `3/2` per step, each
/// step's truncation adding up to a unit `2^{−f}` that the next steps multiply as well.
pub fn max_rsqrt(f: u32, c: u32, iterations: u32) -> f64 {
    (2f64.powi(-(c as i32)) + 2f64.powi(1 - f as i32)) * 1.5f64.powi(iterations as i32)
}

/// The public constants of one Adam update (module docs).
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// Fractional bits `f` of the weights and moments.
    pub frac_bits: u32,
    /// `c`: the square root's start is `2^{−c}`, its domain `v ≤ 4^c`.
    pub c: u32,
    /// Newton steps of the inverse square root.
    pub rsqrt_iterations: u32,
    /// Newton steps of the reciprocal.
    pub reciprocal_iterations: u32,
    /// `β₁`, `1 − β₁`, `β₂`, `1 − β₂` as pieces ([`moment_factors`]).
    pub betas: [Pieces; 4],
    /// `ε'_t` in ring units at scale `2^{2f}` (module docs).
    pub epsilon_units: u64,
    /// `η·κ_t`.
    pub step_factor: f64,
    /// AdamW's `η·λ` (0 without weight decay).
    pub decay: f64,
}

impl Plan {
    /// The plan of update `t` (from 1) at learning rate `lr` under `config`, whose
    /// [`SpnnConfig::adam`] must be set.
    pub fn new(config: &SpnnConfig, lr: f64, t: u64) -> Result<Self> {
        let adam = config
            .adam
            .ok_or_else(|| SpnnError::Config("an Adam plan for a session without Adam".into()))?;
        let f = config.frac_bits;
        if !(16..=19).contains(&f) {
            return Err(SpnnError::Config(format!(
                "Adam on shares keeps v at 2^{{2f}} and its square root's products at 2^{{3f}}: \
                 it needs 16 to 19 fractional bits, not {f}"
            )));
        }
        let (c, rsqrt_iterations) = rsqrt_plan(f);
        if adam.epsilon > 2f64.powi(c as i32) {
            return Err(SpnnError::Config(format!(
                "Adam's epsilon {} is above 2^{c}, where the reciprocal on shares starts",
                adam.epsilon
            )));
        }
        let (b1, nb1, beta_1) = moment_factors(adam.beta_1);
        let (b2, nb2, beta_2) = moment_factors(adam.beta_2);
        if beta_2 >= 1.0 || nb1.is_empty() {
            return Err(SpnnError::Config(format!(
                "Adam's betas ({}, {}) round to 1 at 2^-{MOMENT_BITS}: the moments would never \
                 take a gradient in",
                adam.beta_1, adam.beta_2
            )));
        }
        // The bias corrections of the betas the holders actually use.
        let t = i32::try_from(t.max(1)).unwrap_or(i32::MAX);
        let bias2 = (1.0 - beta_2.powi(t)).sqrt();
        let step_factor = lr * bias2 / (1.0 - beta_1.powi(t));
        let floor = 2f64.powi(f as i32);
        let epsilon_units = (adam.epsilon * bias2 * floor * floor).round().max(floor) as u64;
        Ok(Self {
            frac_bits: f,
            c,
            rsqrt_iterations,
            reciprocal_iterations: c + 2 + f + 5,
            betas: [b1, nb1, b2, nb2],
            epsilon_units,
            step_factor,
            decay: lr * config.weight_decay,
        })
    }

    /// Element-wise products of one update: `g∘g`, three per square-root step, `v·y`, two per
    /// reciprocal step, `m∘q`.
    pub fn products(&self) -> usize {
        3 + 3 * self.rsqrt_iterations as usize + 2 * self.reciprocal_iterations as usize
    }

    /// The truncation shifts of one update in the holders' order (module docs): AdamW's decay,
    /// the moments' factors (piece by piece), three per square-root step, the square root, two
    /// per reciprocal step, `m∘q`, the step factor.
    pub fn shifts(&self) -> Result<Vec<u32>> {
        // Keep in step with the holders' `adam_update` (each truncation checks the shift it
        // was dealt for).
        let f = self.frac_bits;
        let of = |pieces: &Pieces| -> Vec<u32> {
            pieces.iter().map(|&(_, s)| s).filter(|&s| s > 0).collect()
        };
        let mut shifts = Vec::new();
        if self.decay > 0.0 {
            shifts.extend(of(&split_factor(self.decay)?));
        }
        for pieces in &self.betas {
            shifts.extend(of(pieces));
        }
        for _ in 0..self.rsqrt_iterations {
            shifts.extend([f, 2 * f, f + 1]);
        }
        shifts.push(f);
        for _ in 0..self.reciprocal_iterations {
            shifts.extend([2 * f, f]);
        }
        shifts.push(f);
        shifts.extend(of(&split_factor(self.step_factor)?));
        Ok(shifts)
    }

    /// The largest second moment (ring units at `2^{2f}`) the square root covers: `4^c`.
    pub fn max_second_moment(&self) -> f64 {
        2f64.powi(2 * (self.c + self.frac_bits) as i32)
    }

    /// The largest value `y` reaches (real): where `v = 0` it grows by `3/2` per step, each
    /// step's truncation adding up to a unit `2^{−f}` that the next steps multiply as well:
    /// `(2^{−c} + 2^{1−f})·(3/2)^N`.
    pub fn max_rsqrt(&self) -> f64 {
        max_rsqrt(self.frac_bits, self.c, self.rsqrt_iterations)
    }

    /// The largest value `q` reaches (real): `1/ε'_t ≤ 2^f`, doubled for rounding.
    pub fn max_reciprocal(&self) -> f64 {
        2f64.powi(self.frac_bits as i32 + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AdamParams;

    fn config() -> SpnnConfig {
        SpnnConfig {
            adam: Some(AdamParams::default()),
            ..SpnnConfig::default()
        }
    }

    /// The plan's iterations, run in f64 from its public starts, reach Burn's `1/(√v + ε')`
    /// within 10⁻⁶ relative over the whole domain `2^{−2f} ≤ v ≤ 4^c`; with five fewer steps
    /// the smallest `v` are far off, so the count is not padding.
    #[test]
    fn the_iterations_cover_the_whole_domain() {
        let plan = Plan::new(&config(), 1e-3, 1).unwrap();
        let f = plan.frac_bits as i32;
        let eps = plan.epsilon_units as f64 / 2f64.powi(2 * f);
        let run = |v: f64, ny: u32, nz: u32| {
            let mut y = 2f64.powi(-(plan.c as i32));
            for _ in 0..ny {
                assert!(v * y * y <= 1.0 + 1e-12, "overshoot at v = {v}");
                y = y * (3.0 - v * y * y) / 2.0;
            }
            let u = v * y + eps;
            let mut q = 2f64.powi(-(plan.c as i32 + 2));
            for _ in 0..nz {
                q *= 2.0 - u * q;
            }
            q
        };
        let mut worst: f64 = 0.0;
        let mut e = -2 * f;
        while e <= 2 * plan.c as i32 {
            let v = 2f64.powi(e);
            let exact = 1.0 / (v.sqrt() + eps);
            worst = worst.max(
                (run(v, plan.rsqrt_iterations, plan.reciprocal_iterations) - exact).abs() / exact,
            );
            e += 1;
        }
        assert!(worst < 1e-6, "{worst}");
        let v = 2f64.powi(-2 * f);
        let short = run(v, plan.rsqrt_iterations - 5, plan.reciprocal_iterations);
        assert!((short - 1.0 / (v.sqrt() + eps)).abs() * (v.sqrt() + eps) > 0.1);
        assert!(plan.max_rsqrt() * 2f64.powi(f) * 3.0 * 2f64.powi(f) < 2f64.powi(62));
    }

    #[test]
    fn the_plan_has_one_truncation_per_product_and_factor() {
        let plan = Plan::new(&config(), 1e-3, 1).unwrap();
        let shifts = plan.shifts().unwrap();
        // One truncation per piece of the moments' factors and of the step factor.
        let pieces: usize = plan.betas.iter().map(Vec::len).sum::<usize>()
            + split_factor(plan.step_factor).unwrap().len();
        assert_eq!(shifts.len(), plan.products() - 1 + pieces);
        for c in [0.999, 0.001, 0.5, 0.37, 1e-7] {
            let pieces = split_factor(c).unwrap();
            assert!(((value_of(&pieces) - c) / c).abs() <= 2f64.powi(-16), "{c}");
            assert!(pieces.iter().all(|&(m, _)| m <= 256));
        }
        for beta in [0.9, 0.999, 0.99999, 0.0] {
            let (b, nb, rounded) = moment_factors(beta);
            assert_eq!(
                value_of(&b) + value_of(&nb),
                1.0,
                "β̃ + (1 − β̃) is exactly 1"
            );
            assert_eq!(value_of(&b), rounded);
            assert!((rounded - beta).abs() <= 2f64.powi(-25));
            assert!(b.iter().chain(&nb).all(|&(m, _)| m <= 256));
        }
        assert!(plan.epsilon_units >= 1 << 16, "ε' has the 2^-f floor");
        let later = Plan::new(&config(), 1e-3, 10_000).unwrap();
        assert!((later.step_factor - 1e-3).abs() < 1e-6, "κ_t → 1");
        // Burn's default ε = 1e-5 is below 2^-16: the floor; a larger ε is Burn's ε_t.
        assert_eq!(later.epsilon_units, 1 << 16);
        let mut wide = config();
        wide.adam.as_mut().unwrap().epsilon = 1e-3;
        let bias2 = (1.0 - 0.999f64.powi(10_000)).sqrt();
        assert_eq!(
            Plan::new(&wide, 1e-3, 10_000).unwrap().epsilon_units,
            (1e-3 * bias2 * 2f64.powi(32)).round() as u64
        );
        for f in [12, 15, 20] {
            let e = Plan::new(&config().with_frac_bits(f), 1e-3, 1).unwrap_err();
            assert!(e.to_string().contains("16 to 19"), "{e}");
        }
    }
}
