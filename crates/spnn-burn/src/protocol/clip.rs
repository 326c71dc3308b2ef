//! Burn's gradient clipping on the weight shares: the public plan of each kind.
//!
//! Burn clips a parameter's gradient before its optimiser's step (`GradientClippingConfig`);
//! the holders do the same with the accumulated gradient `g` of `W`, first in every update,
//! before SGD or Adam uses it. Every opening is masked by a fresh dealt value no single holder
//! has, and the server receives nothing new: no holder learns `g`, `‖g‖` or whether an entry
//! (or the norm) was clipped (what the next `Z` reflects is the security chapter's question).
//!
//! **By value** (`Value(τ)`): `g ← g + [g > τ]·(τ − g) + [g < −τ]·(−τ − g)`, each bracket a
//! secure comparison with zero ([`spnn_crypto::compare`]) per entry, the two selections one
//! element-wise product each. Exact: the result is Burn's clamp of the fixed-point gradient at
//! `τ` rounded to `2^{−f}`, and its bound `min(bound, τ)`.
//!
//! **By norm** (`Norm(τ)`, Burn's `g·min(1, τ/‖g‖)`):
//! 1. `s = ‖g‖²`: the element-wise square (one product) summed by every holder over its own
//!    share, exact at scale `2^{2f}`; its public bound `d·h·G²` must fit the ring (the holders
//!    check it, and stop with the reason otherwise);
//! 2. `b = [s > τ²]`: one secure comparison of the exact `s` with `τ²` rounded to `2^{−2f}`;
//! 3. `y ≈ 2^k/√s`: Adam's Newton inverse square root ([`super::adam`], its start and length
//!    from [`super::adam::rsqrt_plan`]) of `s/2^{2k}`, `k = max(0, 2f − 29)`, which puts every
//!    `s` the ring holds inside the iteration's domain `4^c`;
//! 4. the factor `b·(τ·2^{−k})·y + (1 − b)` — `τ/‖g‖` when the norm exceeds `τ`, 1 otherwise
//!    (each up to rounding: [`NormPlan::max_factor`] bounds it, and a `τ` whose rounding could
//!    push it more than [`MAX_FACTOR_EXCESS`] above 1 is refused) — one product and one public
//!    multiplication; then `g ← g∘factor`, one product and one truncation.
//!
//! Steps 2–4 run on single values (the dealer's material for them is `1 × 1`): clipping by norm
//! adds two weight-shaped products and one weight-shaped truncation to an update, and about
//! 220 scalar products, mostly one round each ([`NormPlan::dealing`]).

use spnn_crypto::compare::COMPARISON_PRODUCTS;

use super::Dealing;
use super::ItemShape::{self, Scalar, Weights};
use super::adam::{max_rsqrt, rsqrt_plan};
use super::scale::{PublicScale, truncation_shifts};
use crate::config::SpnnConfig;
use crate::error::{Result, SpnnError};

/// The dealer's material for one update's clipping, in the holders' order: by value, two
/// weight-shaped comparisons, their products and the two selections; by norm,
/// [`NormPlan::dealing`]; nothing without clipping.
pub fn dealing(config: &SpnnConfig) -> Result<Dealing> {
    if config.grad_clip_norm > 0.0 {
        return NormPlan::new(config)?.dealing();
    }
    if config.grad_clip_value > 0.0 {
        return Ok(Dealing {
            truncations: Vec::new(),
            products: vec![Weights; 2 * COMPARISON_PRODUCTS + 2],
            comparisons: vec![Weights; 2],
        });
    }
    Ok(Dealing::default())
}

/// How far above 1 the computed factor of clipping by norm may be ([`NormPlan::max_factor`]):
/// a threshold whose rounding could amplify a gradient by more is refused.
pub const MAX_FACTOR_EXCESS: f64 = 1.0 / 256.0;

/// The public constants of clipping by norm (module docs).
#[derive(Clone, Debug, PartialEq)]
pub struct NormPlan {
    /// Fractional bits `f`.
    pub frac_bits: u32,
    /// `τ`.
    pub tau: f64,
    /// `τ²` in ring units at `2^{2f}`.
    pub tau_squared_units: u64,
    /// `k`: the square root runs on `s/2^{2k}`.
    pub k: u32,
    /// The square root's start `2^{−c}`.
    pub c: u32,
    /// Newton steps of the square root.
    pub rsqrt_iterations: u32,
}

impl NormPlan {
    /// The plan of `config`'s clipping by norm ([`SpnnConfig::grad_clip_norm`], which must be
    /// positive); needs 16 to 19 fractional bits, as Adam's square root.
    pub fn new(config: &SpnnConfig) -> Result<Self> {
        let (f, tau) = (config.frac_bits, config.grad_clip_norm);
        if !(16..=19).contains(&f) {
            return Err(SpnnError::Config(format!(
                "gradient clipping by norm takes an inverse square root on shares, which needs \
                 16 to 19 fractional bits, not {f}"
            )));
        }
        let units = (tau * tau * 2f64.powi(2 * f as i32)).round();
        if !(tau.is_finite() && tau > 0.0 && units >= 1.0 && units < 2f64.powi(60)) {
            return Err(SpnnError::Config(format!(
                "gradient clipping by norm {tau}: τ² must be at least 2^-{} and below 2^{}",
                2 * f,
                60 - 2 * f
            )));
        }
        let (c, rsqrt_iterations) = rsqrt_plan(f);
        let plan = Self {
            frac_bits: f,
            tau,
            tau_squared_units: units as u64,
            k: (2 * f).saturating_sub(29),
            c,
            rsqrt_iterations,
        };
        PublicScale::of(plan.factor())?;
        let largest = plan.max_factor();
        if largest.is_nan() || largest > 1.0 + MAX_FACTOR_EXCESS {
            // Near a small τ, ‖g‖²/2^{2k} keeps few units; a large τ·2^{−k} multiplies the
            // square root's rounding.
            let small = plan.tau * 2f64.powi(-(plan.k as i32)) < 2f64.powi(-(f as i32) / 2);
            return Err(SpnnError::Config(format!(
                "gradient clipping by norm {tau} at {f} fractional bits: the factor τ/‖g‖ on \
                 shares could reach {largest:.4}, more than {MAX_FACTOR_EXCESS:.4} above 1, \
                 because {}: use {}",
                if small {
                    "its square root runs on ‖g‖²/2^{2k}, which keeps too few units near so \
                     small a τ"
                } else {
                    "so large a τ multiplies the square root's rounding"
                },
                if small {
                    "a larger τ or fewer fractional bits"
                } else {
                    "a smaller τ or more fractional bits"
                }
            )));
        }
        Ok(plan)
    }

    /// The largest factor the holders can compute (module docs, step 4), rounding included.
    /// Where the norm is below `τ` it is 1 plus at most a unit `u = 2^{−f}` (the truncation of
    /// `b·y = 0` may round up). Where it is above, `s > τ²`, so `s/2^{2k}`, truncated, is at
    /// least `v = τ²·2^{−2k} − u²`; the square root from below ends within `8u·(1 + y)` of
    /// `1/√v` (a unit per truncation, as Adam's tracking bound); the public factor `τ·2^{−k}`
    /// is a 16-bit multiplier (relative `2^{−16}`) and its truncation another unit.
    pub fn max_factor(&self) -> f64 {
        let u = 2f64.powi(-(self.frac_bits as i32));
        let v = self.tau * self.tau * 2f64.powi(-2 * self.k as i32) - u * u;
        if v <= 0.0 {
            return f64::INFINITY;
        }
        let y = 1.0 / v.sqrt();
        let y = y + 8.0 * u * (1.0 + y);
        (self.factor() * y * (1.0 + 2f64.powi(-16)) + u).max(1.0 + u)
    }

    /// The public factor `τ·2^{−k}` that turns `y ≈ 2^k/‖g‖` into `τ/‖g‖`.
    pub fn factor(&self) -> f64 {
        self.tau * 2f64.powi(-(self.k as i32))
    }

    /// Element-wise products: `g∘g`, the comparison's, three per square-root step, `b·y`,
    /// `g∘factor` — all but the first and the last on single values.
    pub fn products(&self) -> Vec<ItemShape> {
        let scalars = COMPARISON_PRODUCTS + 3 * self.rsqrt_iterations as usize + 1;
        let mut products = vec![Weights];
        products.extend(vec![Scalar; scalars]);
        products.push(Weights);
        products
    }

    /// Truncation shifts in the holders' order: `s/2^{2k}`, three per square-root step, the
    /// public factor's (single values), `g∘factor` (the weights' shape).
    pub fn shifts(&self) -> Result<Vec<(ItemShape, u32)>> {
        let f = self.frac_bits;
        let mut shifts = Vec::new();
        if self.k > 0 {
            shifts.push(2 * self.k);
        }
        for _ in 0..self.rsqrt_iterations {
            shifts.extend([f, 2 * f, f + 1]);
        }
        shifts.extend(truncation_shifts(f, f, &PublicScale::of(self.factor())?));
        let mut shaped: Vec<(ItemShape, u32)> = shifts.into_iter().map(|s| (Scalar, s)).collect();
        shaped.push((Weights, f));
        Ok(shaped)
    }

    /// The dealer's material: [`NormPlan::shifts`], [`NormPlan::products`] and one comparison
    /// of a single value.
    pub fn dealing(&self) -> Result<Dealing> {
        Ok(Dealing {
            truncations: self.shifts()?,
            products: self.products(),
            comparisons: vec![Scalar],
        })
    }

    /// The largest value (real) the square root's iterate reaches.
    pub fn max_rsqrt(&self) -> f64 {
        max_rsqrt(self.frac_bits, self.c, self.rsqrt_iterations)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plan's square root of `s/2^{2k}`, run in f64, gives Burn's factor `min(1, τ/‖g‖)`
    /// within 10⁻⁶ relative for every `s` from just above `τ²` to the ring's `2^{62−2f}`.
    #[test]
    fn the_factor_covers_every_norm_the_ring_holds() {
        for (f, tau) in [(16, 1.0), (16, 0.01), (17, 5.0), (19, 0.1)] {
            let config = SpnnConfig {
                grad_clip_norm: tau,
                ..SpnnConfig::default().with_frac_bits(f)
            };
            let plan = NormPlan::new(&config).unwrap();
            let mut s = tau * tau * 1.001;
            while s < 2f64.powi(62 - 2 * f as i32) {
                let v = s * 2f64.powi(-2 * plan.k as i32);
                assert!(
                    v <= 2f64.powi(2 * plan.c as i32),
                    "s = {s} beyond the domain"
                );
                let mut y = 2f64.powi(-(plan.c as i32));
                for _ in 0..plan.rsqrt_iterations {
                    y = y * (3.0 - v * y * y) / 2.0;
                }
                let factor = plan.factor() * y;
                let burn = (tau / s.sqrt()).min(1.0);
                assert!(
                    ((factor - burn) / burn).abs() < 1e-6,
                    "f {f}, τ {tau}, s {s}"
                );
                s *= 3.0;
            }
            assert_eq!(
                plan.shifts().unwrap().len(),
                3 * plan.rsqrt_iterations as usize + 3
            );
        }
    }

    /// The holders' scalar steps simulated in integers (every truncation a floor, rounded up
    /// by one unit at random, as the exact truncation may), for norms from just above `τ` to
    /// far above: the factor never exceeds [`NormPlan::max_factor`], and stays within
    /// `8u·(τ·2^{−k} + τ/‖g‖) + 2u` (`u = 2^{−f}`), the multiplier's relative `2^{−16}` and the
    /// relative `u²·2^{2k}/‖g‖²` of `‖g‖²/2^{2k}`'s rounding, of Burn's `τ/‖g‖`.
    #[test]
    fn the_factor_in_fixed_point_stays_below_its_bound() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for (f, tau) in [(16, 0.002), (16, 1.0), (16, 200.0), (17, 0.01), (19, 4.0)] {
            let config = SpnnConfig {
                grad_clip_norm: tau,
                ..SpnnConfig::default().with_frac_bits(f)
            };
            let plan = NormPlan::new(&config).unwrap();
            let one = 1i128 << f;
            let mut trunc = |v: i128, s: u32| (v >> s) + i128::from(rng.random_bool(0.5));
            for ratio in [1.0 + 1e-9, 1.0001, 1.01, 1.5, 10.0, 1e3] {
                let norm = tau * ratio;
                let s = (norm * norm * 2f64.powi(2 * f as i32)).round() as i128;
                if s >= 1 << 62 {
                    continue;
                }
                let v = trunc(s, 2 * plan.k);
                let mut y = 1i128 << (f - plan.c);
                for _ in 0..plan.rsqrt_iterations {
                    let xy = trunc(v * y, f);
                    let xyy = trunc(xy * y, 2 * f);
                    y = trunc(y * (3 * one - xyy), f + 1);
                }
                let scale = PublicScale::of(plan.factor()).unwrap();
                let factor = trunc(y * scale.m as i128, scale.shift) as f64 / one as f64;
                assert!(
                    factor <= plan.max_factor(),
                    "f {f}, τ {tau}, ‖g‖/τ {ratio}: {factor} > {}",
                    plan.max_factor()
                );
                let burn = (tau / norm).min(1.0);
                let u = 1.0 / one as f64;
                let coarse = burn * u * u * 2f64.powi(2 * plan.k as i32) / (norm * norm);
                let within =
                    8.0 * u * (plan.factor() + burn) + burn * 2f64.powi(-16) + 2.0 * u + coarse;
                assert!(
                    (factor - burn).abs() <= within,
                    "f {f}, τ {tau}, ‖g‖/τ {ratio}: {factor} vs Burn's {burn}"
                );
            }
        }
    }

    #[test]
    fn bad_thresholds_and_scales_are_refused() {
        for (f, tau) in [
            (16, 1e-12),
            (16, f64::NAN),
            (16, -1.0),
            (16, 1e10),
            (20, 1.0),
        ] {
            let config = SpnnConfig {
                grad_clip_norm: tau,
                ..SpnnConfig::default().with_frac_bits(f)
            };
            let e = NormPlan::new(&config).unwrap_err().to_string();
            assert!(e.contains("norm"), "f {f}, τ {tau}: {e}");
        }
    }
}
