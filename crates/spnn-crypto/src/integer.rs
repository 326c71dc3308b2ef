//! Additive shares over the integers, for the gradient path of SPNN-HE.
//!
//! Shares in `Z_2^64` cannot be truncated exactly without help: the sum of two shares wraps
//! past `2^64` at a point neither party knows. SPNN-SS gets that help from its dealer
//! ([`crate::beaver`]); SPNN-HE has no dealer, so its gradient shares live in **Z** instead:
//! a value `v` with `|v| < 2^L` is split as `v + R` and `−R` with `R` uniform below
//! `2^{L + σ}`, which hides `v` within statistical distance `2^{−σ}` ([`IntMatrix`] holds
//! either side). Over the integers every party can truncate on its own, rounding to nearest:
//!
//! ```text
//! [a/2^s] + [b/2^s] = (a + b)/2^s + ε,   |ε| ≤ k/2   for k parties' shares a, b, …
//! ```
//!
//! so a public multiplier `m·2^{−s}` ([`IntMatrix::scale_round`]) is exact up to `k/2` units
//! of the last place (one unit for two holders, as SPNN-SS's exact ring truncation) and can
//! never fail. Reducing every share mod `2^64` ([`IntMatrix::to_ring`])
//! is a ring homomorphism, so the result joins the ring shares of the weights.
//!
//! The cost is size: shares carry `σ` extra bits per masking, so they are GMP integers.

use rayon::prelude::*;
use rug::{Complete, Integer};

use crate::error::{CryptoError, Result};
use crate::ring::RingMatrix;

/// A row-major matrix of arbitrary-precision integers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IntMatrix {
    rows: usize,
    cols: usize,
    data: Vec<Integer>,
}

impl IntMatrix {
    /// The zero matrix.
    pub fn zeros(rows: usize, cols: usize) -> Self {
        Self {
            rows,
            cols,
            data: vec![Integer::new(); rows * cols],
        }
    }

    /// Wraps row-major data.
    pub fn from_vec(rows: usize, cols: usize, data: Vec<Integer>) -> Result<Self> {
        crate::error::check_len(rows, cols, data.len())?;
        Ok(Self { rows, cols, data })
    }

    /// The ring matrix's entries read as signed 64-bit integers.
    pub fn from_signed(m: &RingMatrix) -> Self {
        Self {
            rows: m.rows(),
            cols: m.cols(),
            data: m
                .as_slice()
                .iter()
                .map(|&v| Integer::from(v as i64))
                .collect(),
        }
    }

    /// `(rows, cols)`.
    pub fn shape(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    /// The entries, row-major.
    pub fn as_slice(&self) -> &[Integer] {
        &self.data
    }

    /// Bit length of the largest magnitude (0 for the zero matrix).
    pub fn max_bits(&self) -> u32 {
        self.data
            .iter()
            .map(Integer::significant_bits)
            .max()
            .unwrap_or(0)
    }

    fn same_shape(&self, rhs: &Self, op: &'static str) -> Result<()> {
        if self.shape() != rhs.shape() {
            return Err(CryptoError::ShapeMismatch {
                op,
                left: self.shape(),
                right: rhs.shape(),
            });
        }
        Ok(())
    }

    /// `self += rhs`.
    pub fn add_assign(&mut self, rhs: &Self) -> Result<()> {
        self.same_shape(rhs, "IntMatrix::add")?;
        for (a, b) in self.data.iter_mut().zip(&rhs.data) {
            *a += b;
        }
        Ok(())
    }

    /// `x · m / 2^shift` rounded to the nearest integer (ties up) for every entry: a public
    /// multiplier applied to a share (module docs).
    pub fn scale_round(&self, m: u64, shift: u32) -> Self {
        let half = if shift == 0 {
            Integer::new()
        } else {
            Integer::from(1) << (shift - 1)
        };
        Self {
            rows: self.rows,
            cols: self.cols,
            data: self
                .data
                .par_iter()
                .map(|x| ((x * m).complete() + &half) >> shift)
                .collect(),
        }
    }

    /// Every entry reduced mod `2^64`: a share of the same value in the ring.
    pub fn to_ring(&self) -> RingMatrix {
        RingMatrix::from_vec(
            self.rows,
            self.cols,
            self.data.iter().map(Integer::to_u64_wrapping).collect(),
        )
        .expect("same shape")
    }

    /// `Pᵀ·Q` for ring matrices read as signed integers (`P`: `n × a`, `Q`: `n × b`), exact over
    /// the integers as long as `n · max|P| · max|Q| < 2^127` (checked): the holder's own term
    /// `X_jᵀ·⟨G⟩_j` of the weight gradient.
    pub fn signed_transpose_product(p: &RingMatrix, q: &RingMatrix) -> Result<Self> {
        if p.rows() != q.rows() {
            return Err(CryptoError::ShapeMismatch {
                op: "signed_transpose_product",
                left: p.shape(),
                right: q.shape(),
            });
        }
        let bits = |m: &RingMatrix| {
            m.as_slice()
                .iter()
                .map(|&v| 64 - (v as i64).unsigned_abs().leading_zeros())
                .max()
                .unwrap_or(0)
        };
        let log_n = (p.rows().max(1) as u64).next_power_of_two().ilog2();
        if bits(p) + bits(q) + log_n >= 127 {
            return Err(CryptoError::BudgetExceeded(format!(
                "a {}x{} product of {}- and {}-bit entries exceeds 127 bits",
                p.cols(),
                q.cols(),
                bits(p),
                bits(q)
            )));
        }
        let (n, a, b) = (p.rows(), p.cols(), q.cols());
        let data = (0..a * b)
            .into_par_iter()
            .map(|idx| {
                let (i, j) = (idx / b, idx % b);
                let mut acc: i128 = 0;
                for r in 0..n {
                    let x = p.as_slice()[r * a + i] as i64 as i128;
                    let y = q.as_slice()[r * b + j] as i64 as i128;
                    acc += x * y;
                }
                Integer::from(acc)
            })
            .collect();
        Ok(Self {
            rows: a,
            cols: b,
            data,
        })
    }

    /// Stacks matrices with equal column counts on top of each other.
    pub fn vstack(parts: &[&Self]) -> Result<Self> {
        let cols = parts.first().map_or(0, |p| p.cols);
        let mut data = Vec::new();
        let mut rows = 0;
        for p in parts {
            if p.cols != cols {
                return Err(CryptoError::ShapeMismatch {
                    op: "IntMatrix::vstack",
                    left: (rows, cols),
                    right: p.shape(),
                });
            }
            rows += p.rows;
            data.extend(p.data.iter().cloned());
        }
        Ok(Self { rows, cols, data })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SecureRng;
    use rand::Rng;

    #[test]
    fn statistical_shares_truncate_within_half_a_unit_per_party() {
        let mut rng = SecureRng::insecure_from_seed_for_tests(1);
        for parties in 2..=4 {
            let n = 2000;
            let values: Vec<i64> = (0..n)
                .map(|_| rng.random_range(-(1i64 << 50)..1 << 50))
                .collect();
            // Shares: masks of 50 + 40 bits for parties 1.., the correction for party 0.
            let mut shares = vec![IntMatrix::zeros(1, n); parties];
            for (i, &v) in values.iter().enumerate() {
                let mut rest = Integer::from(v);
                for s in shares.iter_mut().skip(1) {
                    let bits = rng.random_range(0u128..1 << 90);
                    let r = Integer::from(bits) - (Integer::from(1) << 89);
                    rest -= &r;
                    s.data[i] = r;
                }
                shares[0].data[i] = rest;
            }
            // × 0.75 (m = 3, shift = 2), then reduce to the ring.
            let scaled: Vec<IntMatrix> = shares.iter().map(|s| s.scale_round(3, 2)).collect();
            let mut ring = RingMatrix::zeros(1, n);
            for s in &scaled {
                ring.add_assign(&s.to_ring()).unwrap();
            }
            for (&v, &got) in values.iter().zip(ring.as_slice()) {
                // |got − v·3/4| ≤ k/2, in quarters: |4·got − 3v| ≤ 2k.
                let err = 4 * got as i64 as i128 - 3 * v as i128;
                assert!(
                    err.abs() <= 2 * parties as i128,
                    "{parties} parties: {v}·3/4 ≈ {}, got {}",
                    v as f64 * 0.75,
                    got as i64
                );
            }
        }
    }

    #[test]
    fn the_transpose_product_is_exact_and_refuses_overflow() {
        let mut rng = SecureRng::insecure_from_seed_for_tests(2);
        let p = RingMatrix::from_vec(
            3,
            2,
            (0..6)
                .map(|_| rng.random_range(-(1i64 << 30)..1 << 30) as u64)
                .collect(),
        )
        .unwrap();
        let q = RingMatrix::from_vec(
            3,
            4,
            (0..12)
                .map(|_| rng.random_range(-(1i64 << 60)..1 << 60) as u64)
                .collect(),
        )
        .unwrap();
        let t = IntMatrix::signed_transpose_product(&p, &q).unwrap();
        assert_eq!(t.shape(), (2, 4));
        for i in 0..2 {
            for j in 0..4 {
                let want: i128 = (0..3)
                    .map(|r| {
                        p.as_slice()[r * 2 + i] as i64 as i128
                            * q.as_slice()[r * 4 + j] as i64 as i128
                    })
                    .sum();
                assert_eq!(t.as_slice()[i * 4 + j], want);
            }
        }
        // Reduced mod 2^64 it equals the ring product.
        assert_eq!(t.to_ring(), p.transpose().matmul(&q).unwrap());
        let huge = RingMatrix::from_vec(3, 1, vec![i64::MAX as u64; 3]).unwrap();
        assert!(IntMatrix::signed_transpose_product(&huge, &huge).is_err());
    }
}
