//! Multiplying shares by a public real: the learning rate, `1/c`, the momentum.
//!
//! A public `c > 0` is written `c ≈ m · 2^{−e}` with an integer `m` of at most [`SCALE_BITS`]
//! bits (relative error below `2^{−SCALE_BITS}`), odd unless `e = 0`. A share at scale `2^f`
//! times `m` is at scale `2^{f+e}`; truncating by `e` returns it to `2^f`. A share at `2^{2f}` (a
//! fresh product) is first truncated by `f`, so the product with `m` stays far inside the ring —
//! except when `c` is a power of two (`m = 1`, as `1/c` for a batch of 64 or 256): then the two
//! truncations are one, by `f + e`, and a step saves an opening ([`truncation_shifts`]).

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
        // Choose the shift so that m has exactly SCALE_BITS bits, but never a negative shift;
        // then drop the factors of two m does not need (the value is unchanged).
        let mut shift = (SCALE_BITS as i32 - 1 - c.log2().floor() as i32).clamp(0, 62) as u32;
        let mut m = (c * 2f64.powi(shift as i32)).round() as u64;
        while m.is_multiple_of(2) && shift > 0 {
            m >>= 1;
            shift -= 1;
        }
        Ok(Self { m, shift })
    }

    /// The real number it stands for.
    pub fn value(&self) -> f64 {
        self.m as f64 / 2f64.powi(self.shift as i32)
    }
}

/// The truncations (shift amounts, in order) that multiplying a share at scale `2^{from}` by
/// `c` into scale `2^{to}` performs: one, by `from − to + e`, when `c = 2^{−e}`; otherwise one
/// by `from − to` (if any) and one by `e` (if any). The dealer deals one truncation triple per
/// entry.
pub fn truncation_shifts(from: u32, to: u32, c: &PublicScale) -> Vec<u32> {
    let down = from.saturating_sub(to);
    if c.m == 1 {
        return (down + c.shift > 0)
            .then_some(down + c.shift)
            .into_iter()
            .collect();
    }
    [down, c.shift].into_iter().filter(|&s| s > 0).collect()
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
            assert!(s.m % 2 == 1 || s.shift == 0, "{c}: m = {} is even", s.m);
            assert!(
                ((s.value() - c) / c).abs() <= 2f64.powi(-(SCALE_BITS as i32)),
                "{c}"
            );
        }
        assert_eq!(PublicScale::of(0.0).unwrap().m, 0);
        assert!(PublicScale::of(-1.0).is_err());
        assert!(PublicScale::of(f64::NAN).is_err());
        // 1/64 is 2^-6: one truncation by 16 + 6.
        assert_eq!(
            PublicScale::of(1.0 / 64.0).unwrap(),
            PublicScale { m: 1, shift: 6 }
        );
        assert_eq!(
            truncation_shifts(32, 16, &PublicScale::of(1.0 / 64.0).unwrap()),
            vec![22]
        );
        // 1/7 is not: a truncation to 2^16, then one by the multiplier's shift.
        let seventh = PublicScale::of(1.0 / 7.0).unwrap();
        assert_eq!(truncation_shifts(32, 16, &seventh), vec![16, seventh.shift]);
        assert_eq!(
            truncation_shifts(16, 16, &PublicScale::of(1.0).unwrap()),
            Vec::<u32>::new()
        );
    }
}
