//! Multiplying shares by a public real: the learning rate, `1/c`, the momentum.
//!
//! A public `c > 0` is written `c ≈ m · 2^{−e}` with an integer `m` of [`SCALE_BITS`] bits
//! (relative error below `2^{−SCALE_BITS}`). A share at scale `2^f` times `m` is at scale
//! `2^{f+e}`; truncating by `e` returns it to `2^f`. A share at `2^{2f}` (a fresh product) is
//! first truncated by `f`, so the product with `m` stays far inside the ring
//! (`|a|·2^f·m < 2^{15+16+16}` for `|a| < 2^15` at `f = 16`).

use crate::error::{Result, SpnnError};

/// Bits of precision of a public multiplier.
pub const SCALE_BITS: u32 = 16;

/// A public multiplier `m · 2^{−shift}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PublicScale {
    /// The integer mantissa.
    pub m: u64,
    /// The truncation that follows the multiplication.
    pub shift: u32,
}

impl PublicScale {
    /// The representation of `c ≥ 0` (at most `2^{SCALE_BITS}`).
    pub fn of(c: f64) -> Result<Self> {
        if !c.is_finite() || c < 0.0 || c > 2f64.powi(SCALE_BITS as i32) {
            return Err(SpnnError::Config(format!(
                "public multiplier {c} must be in [0, 2^{SCALE_BITS}]"
            )));
        }
        if c == 0.0 {
            return Ok(Self { m: 0, shift: 0 });
        }
        // Choose the shift so that m has exactly SCALE_BITS bits, but never a negative shift.
        let shift = (SCALE_BITS as i32 - 1 - c.log2().floor() as i32).clamp(0, 62) as u32;
        Ok(Self {
            m: (c * 2f64.powi(shift as i32)).round() as u64,
            shift,
        })
    }

    /// The real number it stands for.
    pub fn value(&self) -> f64 {
        self.m as f64 / 2f64.powi(self.shift as i32)
    }
}

/// The truncations (shift amounts, in order) that multiplying a share at scale `2^{from}` by
/// `c` into scale `2^{to}` performs. The dealer deals one truncation pair per entry when more
/// than two holders need them.
pub fn truncation_shifts(from: u32, to: u32, c: &PublicScale) -> Vec<u32> {
    let mut shifts = Vec::new();
    if from > to {
        shifts.push(from - to);
    }
    if c.shift > 0 {
        shifts.push(c.shift);
    }
    shifts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipliers_keep_sixteen_bits_of_precision() {
        for c in [
            1.0,
            0.5,
            0.1,
            1.0 / 64.0,
            1.0 / 256.0,
            1e-4,
            0.9,
            3.0,
            1000.0,
        ] {
            let s = PublicScale::of(c).unwrap();
            assert!(s.m < 1 << SCALE_BITS, "{c}: m = {}", s.m);
            assert!(
                ((s.value() - c) / c).abs() <= 2f64.powi(-(SCALE_BITS as i32)),
                "{c}"
            );
        }
        assert_eq!(PublicScale::of(0.0).unwrap().m, 0);
        assert!(PublicScale::of(-1.0).is_err());
        assert!(PublicScale::of(f64::NAN).is_err());
        assert_eq!(
            truncation_shifts(32, 16, &PublicScale::of(1.0 / 64.0).unwrap()),
            vec![16, 21]
        );
    }
}
