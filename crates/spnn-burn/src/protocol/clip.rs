//! Burn's gradient clipping on the weight shares: the public plan of each kind.
//!
//! Burn clips a parameter's gradient before its optimiser's step (`GradientClippingConfig`);
//! the holders do the same with the accumulated gradient `g` of `W`, first in every update,
//! before SGD or Adam uses it. Nobody sees `g` or whether an entry was clipped.
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
//! 4. the factor `b·(τ·2^{−k})·y + (1 − b)` — `τ/‖g‖` when the norm exceeds `τ`, exactly 1
//!    otherwise — one product and one public multiplication; then `g ← g∘factor`, one product
//!    and one truncation.
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
        Ok(plan)
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
            assert!(NormPlan::new(&config).is_err(), "f {f}, τ {tau}");
        }
    }
}
