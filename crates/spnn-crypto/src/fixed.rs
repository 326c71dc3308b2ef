//! Fixed-point encoding of reals into Z_2^64.
//!
//! A real `x` is encoded as `round(x · 2^f)` in two's complement, where `f` is the number of
//! fractional bits (default [`DEFAULT_FRAC_BITS`] = 16). Decoding reads the element as an `i64`
//! and divides by `2^f`.
//!
//! **Range.** [`FixedPoint::encode`] accepts `|x| < 2^I` with `I = ⌊(63 − 2f) / 2⌋` integer bits
//! ([`FixedPoint::int_bits`]; 15 for `f = 16`, so `|x| < 32768`). An encoded value then has fewer
//! than `31.5` significant bits, and the product of any two encoded values (scale `2^{2f}`) is
//! exact in the ring. NaN, infinities and values outside the range are errors, never a wrap.
//!
//! **Overflow budget of a product.** A matrix product with inner dimension `d` and inputs bounded
//! by `X` and `W` yields ring values `|z| ≤ d·X·W·2^{2f}`. [`FixedPoint::product_bits`] checks
//! that this stays below `2^62` and returns `ℓ = ⌈log2(d·X·W·2^{2f})⌉`, the public bound the
//! exact truncation of [`crate::beaver`] needs (`ℓ ≤ 62`).
//!
//! **Error of a fixed-point product.** Encoding rounds to the nearest multiple of `2^{-f}`, so
//! `|x̃ − x| ≤ 2^{−f−1}`; each product term then errs by at most
//! `(|x| + |w|)·2^{−f−1} + 2^{−2f−2}`, the ring sum is exact, and truncation back to `f` bits adds
//! at most one unit `2^{−f}`. Hence, for `|x| ≤ X`, `|w| ≤ W`,
//!
//! ```text
//! |decode(trunc(x̃·w̃)) − x·w| ≤ d·((X + W)·2^{−f−1} + 2^{−2f−2}) + 2^{−f}
//! ```
//!
//! which [`FixedPoint::matmul_error_bound`] returns and the tests check against `f64`.

use serde::{Deserialize, Serialize};

use crate::error::{CryptoError, Result};
use crate::ring::RingMatrix;

/// Default number of fractional bits.
pub const DEFAULT_FRAC_BITS: u32 = 16;

/// A fixed-point encoding with `frac_bits` fractional bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FixedPoint {
    frac_bits: u32,
}

impl Default for FixedPoint {
    fn default() -> Self {
        Self {
            frac_bits: DEFAULT_FRAC_BITS,
        }
    }
}

impl FixedPoint {
    /// An encoding with `frac_bits` fractional bits, `1 ≤ frac_bits ≤ 28` (so at least three
    /// integer bits remain after a product).
    pub fn new(frac_bits: u32) -> Result<Self> {
        if !(1..=28).contains(&frac_bits) {
            return Err(CryptoError::InvalidFixedPoint(format!(
                "{frac_bits} fractional bits; supported are 1..=28"
            )));
        }
        Ok(Self { frac_bits })
    }

    /// Fractional bits `f`.
    pub fn frac_bits(&self) -> u32 {
        self.frac_bits
    }

    /// Integer bits `I = ⌊(63 − 2f)/2⌋`: the encoder accepts `|x| < 2^I`.
    pub fn int_bits(&self) -> u32 {
        (63 - 2 * self.frac_bits) / 2
    }

    /// The exclusive bound on `|x|` accepted by [`FixedPoint::encode`].
    pub fn max_abs(&self) -> f64 {
        2f64.powi(self.int_bits() as i32)
    }

    /// `2^f`.
    pub fn scale(&self) -> f64 {
        2f64.powi(self.frac_bits as i32)
    }

    /// Encodes one real.
    pub fn encode(&self, x: f64) -> Result<u64> {
        if !x.is_finite() {
            return Err(CryptoError::NonFinite {
                value: x.to_string(),
            });
        }
        if x.abs() >= self.max_abs() {
            return Err(CryptoError::OutOfRange {
                value: x.to_string(),
                max_abs: self.max_abs().to_string(),
                frac_bits: self.frac_bits,
            });
        }
        Ok(((x * self.scale()).round() as i64) as u64)
    }

    /// Decodes one element at this encoding's scale.
    pub fn decode(&self, v: u64) -> f64 {
        decode_at(v, self.frac_bits)
    }

    /// Encodes a row-major `rows × cols` buffer of `f32`.
    pub fn encode_matrix(&self, rows: usize, cols: usize, values: &[f32]) -> Result<RingMatrix> {
        // The hot path of every batch: scale and range once, then a plain loop; the first value
        // out of range is reported by `encode`.
        let (scale, max) = (self.scale(), self.max_abs());
        let mut data = Vec::with_capacity(values.len());
        for &v in values {
            let x = v as f64;
            if !x.is_finite() || x.abs() >= max {
                return Err(self.encode(x).expect_err("non-finite or out of range"));
            }
            data.push(((x * scale).round() as i64) as u64);
        }
        RingMatrix::from_vec(rows, cols, data)
    }

    /// Decodes every element at this encoding's scale, row-major.
    pub fn decode_matrix(&self, m: &RingMatrix) -> Vec<f32> {
        m.as_slice()
            .iter()
            .map(|&v| self.decode(v) as f32)
            .collect()
    }

    /// Plaintext truncation of a value at scale `2^{2f}` back to `2^f` (arithmetic shift: floor).
    pub fn truncate(&self, v: u64) -> u64 {
        ((v as i64) >> self.frac_bits) as u64
    }

    /// Checks the overflow budget of a product with inner dimension `inner` and inputs bounded
    /// by `max_lhs`, `max_rhs`; returns `ℓ`, the bit length of the largest possible ring value.
    pub fn product_bits(&self, inner: usize, max_lhs: f64, max_rhs: f64) -> Result<u32> {
        let bound =
            inner.max(1) as f64 * max_lhs.abs() * max_rhs.abs() * self.scale() * self.scale();
        if !bound.is_finite() || bound >= 2f64.powi(62) {
            return Err(CryptoError::BudgetExceeded(format!(
                "inner dimension {inner} with |lhs| ≤ {max_lhs} and |rhs| ≤ {max_rhs} needs \
                 log2 ≈ {:.1} bits at scale 2^{}, the ring leaves 62",
                bound.log2(),
                2 * self.frac_bits
            )));
        }
        Ok(bound.max(1.0).log2().ceil() as u32)
    }

    /// The derived bound on `|decode(trunc(x̃·w̃)) − x·w|` per output element (module docs).
    pub fn matmul_error_bound(&self, inner: usize, max_lhs: f64, max_rhs: f64) -> f64 {
        let u = 2f64.powi(-(self.frac_bits as i32));
        inner as f64 * ((max_lhs + max_rhs) * u / 2.0 + u * u / 4.0) + u
    }
}

/// Decodes a ring element holding a value at scale `2^frac_bits`.
pub fn decode_at(v: u64, frac_bits: u32) -> f64 {
    (v as i64) as f64 / 2f64.powi(frac_bits as i32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SecureRng;
    use rand::Rng;

    #[test]
    fn round_trip_within_half_a_unit() {
        let fp = FixedPoint::default();
        for &x in &[0.0, 1.0, -1.0, 2.71, -2.5e-5, 32767.99, -32767.99] {
            let back = fp.decode(fp.encode(x).unwrap());
            assert!((back - x).abs() <= 0.5 / fp.scale(), "{x} -> {back}");
        }
    }

    #[test]
    fn non_finite_and_out_of_range_are_errors() {
        let fp = FixedPoint::default();
        assert!(matches!(
            fp.encode(f64::NAN),
            Err(CryptoError::NonFinite { .. })
        ));
        assert!(matches!(
            fp.encode(f64::INFINITY),
            Err(CryptoError::NonFinite { .. })
        ));
        assert!(matches!(
            fp.encode(32768.0),
            Err(CryptoError::OutOfRange { .. })
        ));
        assert!(matches!(
            fp.encode(-1e30),
            Err(CryptoError::OutOfRange { .. })
        ));
        assert!(fp.encode_matrix(1, 2, &[1.0, f32::NAN]).is_err());
        assert!(FixedPoint::new(0).is_err());
        assert!(FixedPoint::new(29).is_err());
    }

    #[test]
    fn products_of_range_extremes_fit_the_ring() {
        for f in 1..=28 {
            let fp = FixedPoint::new(f).unwrap();
            let m = fp.encode(fp.max_abs() * 0.999_999).unwrap() as i64 as i128;
            assert!(m * m < (1i128 << 63), "f = {f}");
        }
    }

    #[test]
    fn fixed_point_matmul_is_within_the_derived_bound_of_f64() {
        let fp = FixedPoint::default();
        let mut rng = SecureRng::insecure_from_seed_for_tests(11);
        let (m, d, n) = (16, 200, 8);
        let (xmax, wmax) = (4.0, 0.5);
        let x: Vec<f32> = (0..m * d).map(|_| rng.random_range(-xmax..xmax)).collect();
        let w: Vec<f32> = (0..d * n).map(|_| rng.random_range(-wmax..wmax)).collect();
        fp.product_bits(d, xmax as f64, wmax as f64).unwrap();
        let z = fp
            .encode_matrix(m, d, &x)
            .unwrap()
            .matmul(&fp.encode_matrix(d, n, &w).unwrap())
            .unwrap()
            .map(|v| fp.truncate(v));
        let bound = fp.matmul_error_bound(d, xmax as f64, wmax as f64);
        let mut worst = 0f64;
        for i in 0..m {
            for j in 0..n {
                let exact: f64 = (0..d)
                    .map(|t| x[i * d + t] as f64 * w[t * n + j] as f64)
                    .sum();
                worst = worst.max((fp.decode(z.get(i, j).unwrap()) - exact).abs());
            }
        }
        assert!(worst <= bound, "worst error {worst} exceeds bound {bound}");
        assert!(
            worst > 0.0,
            "an exact result would mean the test exercised nothing"
        );
    }

    #[test]
    fn budget_check_rejects_products_that_could_wrap() {
        let fp = FixedPoint::default();
        assert!(fp.product_bits(1000, 10.0, 10.0).unwrap() < 62);
        assert!(matches!(
            fp.product_bits(1 << 20, 1000.0, 1000.0),
            Err(CryptoError::BudgetExceeded(_))
        ));
    }
}
