//! Matrices over the ring Z_2^64.
//!
//! Elements are `u64` and every operation wraps, which is exactly arithmetic modulo 2^64. A
//! [`RingMatrix`] is row-major. It knows nothing of fixed point or shares; those are layers on top
//! ([`crate::fixed`], [`crate::share`]).
//!
//! The matrix product is the hot kernel of SPNN-SS (two per Beaver multiplication). It is
//! cache-blocked (a panel of `KC` rows of the right operand stays in L2 while a block of output
//! rows streams over it), unrolled four-deep over the inner dimension so each output element is
//! loaded and stored once per four multiply-adds, and parallel over output row blocks with rayon.
//! [`RingMatrix::matmul_naive`] is the reference it is tested against bit for bit.

use rand::RngCore;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{CryptoError, Result};

/// Rows of the inner dimension kept hot per block (KC × n × 8 bytes of the right operand).
const KC: usize = 128;
/// Output rows per rayon task.
const ROW_BLOCK: usize = 8;
/// Below this many multiply-adds the product runs on the calling thread.
const PARALLEL_THRESHOLD: usize = 1 << 20;

/// A row-major matrix over Z_2^64.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RingMatrix {
    rows: usize,
    cols: usize,
    data: Vec<u64>,
}

impl std::fmt::Debug for RingMatrix {
    // Ring matrices usually hold shares or masked values: print the shape, never the content.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RingMatrix({}x{})", self.rows, self.cols)
    }
}

impl RingMatrix {
    /// The all-zero matrix.
    pub fn zeros(rows: usize, cols: usize) -> Self {
        Self {
            rows,
            cols,
            data: vec![0; rows * cols],
        }
    }

    /// Wraps a row-major buffer; fails unless it holds exactly `rows * cols` elements.
    pub fn from_vec(rows: usize, cols: usize, data: Vec<u64>) -> Result<Self> {
        crate::error::check_len(rows, cols, data.len())?;
        Ok(Self { rows, cols, data })
    }

    /// A matrix of independent uniform ring elements.
    pub fn random(rows: usize, cols: usize, rng: &mut impl RngCore) -> Self {
        // One bulk fill is markedly faster than a call per element.
        let mut bytes = vec![0u8; rows * cols * 8];
        rng.fill_bytes(&mut bytes);
        let data = bytes
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("chunks of 8")))
            .collect();
        Self { rows, cols, data }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// (rows, cols).
    pub fn shape(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    /// The elements, row-major.
    pub fn as_slice(&self) -> &[u64] {
        &self.data
    }

    /// The elements, row-major, mutable.
    pub fn as_mut_slice(&mut self) -> &mut [u64] {
        &mut self.data
    }

    /// Consumes the matrix and returns its row-major buffer.
    pub fn into_vec(self) -> Vec<u64> {
        self.data
    }

    /// Element (r, c); `None` when out of bounds.
    pub fn get(&self, r: usize, c: usize) -> Option<u64> {
        (r < self.rows && c < self.cols).then(|| self.data[r * self.cols + c])
    }

    fn same_shape(&self, op: &'static str, rhs: &Self) -> Result<()> {
        if self.shape() != rhs.shape() {
            return Err(CryptoError::ShapeMismatch {
                op,
                left: self.shape(),
                right: rhs.shape(),
            });
        }
        Ok(())
    }

    /// Element-wise `self + rhs`.
    pub fn add(&self, rhs: &Self) -> Result<Self> {
        let mut out = self.clone();
        out.add_assign(rhs)?;
        Ok(out)
    }

    /// Element-wise `self += rhs`.
    pub fn add_assign(&mut self, rhs: &Self) -> Result<()> {
        self.same_shape("add", rhs)?;
        self.data
            .iter_mut()
            .zip(&rhs.data)
            .for_each(|(a, b)| *a = a.wrapping_add(*b));
        Ok(())
    }

    /// Element-wise `self - rhs`.
    pub fn sub(&self, rhs: &Self) -> Result<Self> {
        let mut out = self.clone();
        out.sub_assign(rhs)?;
        Ok(out)
    }

    /// Element-wise `self -= rhs`.
    pub fn sub_assign(&mut self, rhs: &Self) -> Result<()> {
        self.same_shape("sub", rhs)?;
        self.data
            .iter_mut()
            .zip(&rhs.data)
            .for_each(|(a, b)| *a = a.wrapping_sub(*b));
        Ok(())
    }

    /// Element-wise (Hadamard) product `self ∘ rhs`.
    pub fn hadamard(&self, rhs: &Self) -> Result<Self> {
        self.same_shape("hadamard", rhs)?;
        let mut out = self.clone();
        out.data
            .iter_mut()
            .zip(&rhs.data)
            .for_each(|(a, b)| *a = a.wrapping_mul(*b));
        Ok(out)
    }

    /// Element-wise negation.
    pub fn neg(&self) -> Self {
        self.map(u64::wrapping_neg)
    }

    /// Every element multiplied by `k`.
    pub fn scalar_mul(&self, k: u64) -> Self {
        self.map(|x| x.wrapping_mul(k))
    }

    /// Applies `f` to every element.
    pub fn map(&self, f: impl Fn(u64) -> u64) -> Self {
        Self {
            rows: self.rows,
            cols: self.cols,
            data: self.data.iter().map(|&x| f(x)).collect(),
        }
    }

    /// The inverse modulo `2^64` of a square matrix, if it has one (exactly when it is invertible
    /// modulo 2): Gauss–Jordan elimination with odd pivots, each inverted by Newton's iteration.
    /// The attacks of the adversary tests solve the linear systems a party's view gives with it.
    pub fn inverse(&self) -> Option<Self> {
        let n = self.rows;
        if self.cols != n {
            return None;
        }
        let mut m: Vec<Vec<u64>> = (0..n)
            .map(|r| {
                let mut row = self.data[r * n..(r + 1) * n].to_vec();
                row.extend((0..n).map(|c| u64::from(c == r)));
                row
            })
            .collect();
        for col in 0..n {
            let p = (col..n).find(|&r| m[r][col] & 1 == 1)?;
            m.swap(col, p);
            let x = m[col][col];
            let mut inv: u64 = 1;
            for _ in 0..6 {
                inv = inv.wrapping_mul(2u64.wrapping_sub(x.wrapping_mul(inv)));
            }
            for v in m[col].iter_mut() {
                *v = v.wrapping_mul(inv);
            }
            let pivot = m[col].clone();
            for (r, row) in m.iter_mut().enumerate() {
                if r != col && row[col] != 0 {
                    let f = row[col];
                    for (v, p) in row.iter_mut().zip(&pivot) {
                        *v = v.wrapping_sub(f.wrapping_mul(*p));
                    }
                }
            }
        }
        Some(Self {
            rows: n,
            cols: n,
            data: m.into_iter().flat_map(|row| row[n..].to_vec()).collect(),
        })
    }

    /// The transpose.
    pub fn transpose(&self) -> Self {
        let mut data = vec![0; self.data.len()];
        // Blocked so both reads and writes stay within a few cache lines per tile.
        const T: usize = 32;
        for r0 in (0..self.rows).step_by(T) {
            for c0 in (0..self.cols).step_by(T) {
                for r in r0..(r0 + T).min(self.rows) {
                    for c in c0..(c0 + T).min(self.cols) {
                        data[c * self.rows + r] = self.data[r * self.cols + c];
                    }
                }
            }
        }
        Self {
            rows: self.cols,
            cols: self.rows,
            data,
        }
    }

    /// Rows `start..end` as a new matrix.
    pub fn slice_rows(&self, start: usize, end: usize) -> Result<Self> {
        if start > end || end > self.rows {
            return Err(CryptoError::ShapeMismatch {
                op: "slice_rows",
                left: self.shape(),
                right: (start, end),
            });
        }
        Self::from_vec(
            end - start,
            self.cols,
            self.data[start * self.cols..end * self.cols].to_vec(),
        )
    }

    /// Columns `start..end` as a new matrix.
    pub fn slice_cols(&self, start: usize, end: usize) -> Result<Self> {
        if start > end || end > self.cols {
            return Err(CryptoError::ShapeMismatch {
                op: "slice_cols",
                left: self.shape(),
                right: (start, end),
            });
        }
        let data = self
            .data
            .chunks_exact(self.cols.max(1))
            .take(self.rows)
            .flat_map(|row| row[start..end].iter().copied())
            .collect();
        Self::from_vec(self.rows, end - start, data)
    }

    /// Stacks `parts` side by side (same rows, columns concatenated).
    pub fn hstack(parts: &[&Self]) -> Result<Self> {
        let rows = parts.first().map_or(0, |p| p.rows);
        if let Some(bad) = parts.iter().find(|p| p.rows != rows) {
            return Err(CryptoError::ShapeMismatch {
                op: "hstack",
                left: parts[0].shape(),
                right: bad.shape(),
            });
        }
        let cols = parts.iter().map(|p| p.cols).sum();
        let mut data = Vec::with_capacity(rows * cols);
        for r in 0..rows {
            for p in parts {
                data.extend_from_slice(&p.data[r * p.cols..(r + 1) * p.cols]);
            }
        }
        Self::from_vec(rows, cols, data)
    }

    /// Stacks `parts` on top of each other (same columns, rows concatenated).
    pub fn vstack(parts: &[&Self]) -> Result<Self> {
        let cols = parts.first().map_or(0, |p| p.cols);
        if let Some(bad) = parts.iter().find(|p| p.cols != cols) {
            return Err(CryptoError::ShapeMismatch {
                op: "vstack",
                left: parts[0].shape(),
                right: bad.shape(),
            });
        }
        let data: Vec<u64> = parts.iter().flat_map(|p| p.data.iter().copied()).collect();
        Self::from_vec(data.len() / cols.max(1), cols, data)
    }

    fn check_matmul(&self, rhs: &Self) -> Result<()> {
        if self.cols != rhs.rows {
            return Err(CryptoError::ShapeMismatch {
                op: "matmul",
                left: self.shape(),
                right: rhs.shape(),
            });
        }
        Ok(())
    }

    /// The ring product `self · rhs`: cache-blocked and rayon-parallel.
    pub fn matmul(&self, rhs: &Self) -> Result<Self> {
        self.check_matmul(rhs)?;
        let (m, k, n) = (self.rows, self.cols, rhs.cols);
        let mut out = vec![0u64; m * n];
        if n == 0 || m == 0 {
            return Self::from_vec(m, n, out);
        }
        let block = |(bi, chunk): (usize, &mut [u64])| {
            let rows = &self.data[bi * ROW_BLOCK * k..];
            matmul_block(rows, chunk, &rhs.data, k, n);
        };
        if m * k * n < PARALLEL_THRESHOLD {
            out.chunks_mut(ROW_BLOCK * n).enumerate().for_each(block);
        } else {
            out.par_chunks_mut(ROW_BLOCK * n)
                .enumerate()
                .for_each(block);
        }
        Self::from_vec(m, n, out)
    }

    /// The ring product by the textbook triple loop: the reference for tests and benchmarks.
    pub fn matmul_naive(&self, rhs: &Self) -> Result<Self> {
        self.check_matmul(rhs)?;
        let (m, k, n) = (self.rows, self.cols, rhs.cols);
        let mut out = vec![0u64; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut acc = 0u64;
                for t in 0..k {
                    acc = acc.wrapping_add(self.data[i * k + t].wrapping_mul(rhs.data[t * n + j]));
                }
                out[i * n + j] = acc;
            }
        }
        Self::from_vec(m, n, out)
    }
}

/// `c += a · b` for a block of output rows, with the widest SIMD the CPU offers.
///
/// The kernel is written once ([`matmul_block_portable`]) and compiled three times: for the
/// baseline target, with AVX2, and with AVX-512 (whose `vpmullq` multiplies eight 64-bit lanes
/// at once — about 4× the scalar rate here). The choice is made once, at run time.
fn matmul_block(a: &[u64], c: &mut [u64], b: &[u64], k: usize, n: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static LEVEL: OnceLock<u8> = OnceLock::new();
        let level = *LEVEL.get_or_init(|| {
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512dq")
                && std::arch::is_x86_feature_detected!("avx512vl")
            {
                2
            } else if std::arch::is_x86_feature_detected!("avx2") {
                1
            } else {
                0
            }
        });
        // SAFETY: the `target_feature` functions below are only called after the CPU was
        // detected, at run time, to support every feature they are compiled with. That is the
        // whole obligation of calling them; their bodies are the same safe code as the portable
        // kernel. `unsafe` is needed because the 2024 edition makes such calls unsafe.
        #[allow(unsafe_code)]
        match level {
            2 => return unsafe { matmul_block_avx512(a, c, b, k, n) },
            1 => return unsafe { matmul_block_avx2(a, c, b, k, n) },
            _ => {}
        }
    }
    matmul_block_portable(a, c, b, k, n)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq,avx512vl")]
fn matmul_block_avx512(a: &[u64], c: &mut [u64], b: &[u64], k: usize, n: usize) {
    matmul_block_portable(a, c, b, k, n)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn matmul_block_avx2(a: &[u64], c: &mut [u64], b: &[u64], k: usize, n: usize) {
    matmul_block_portable(a, c, b, k, n)
}

/// `c += a · b` for a block of output rows `c` (row-major, `n` columns), the matching rows of
/// `a` (row-major, `k` columns; only the first `c.len() / n` rows are used) and all of `b`.
#[inline(always)]
fn matmul_block_portable(a: &[u64], c: &mut [u64], b: &[u64], k: usize, n: usize) {
    let rows = c.len() / n;
    for k0 in (0..k).step_by(KC) {
        let k1 = (k0 + KC).min(k);
        for r in 0..rows {
            let a_row = &a[r * k..r * k + k];
            let c_row = &mut c[r * n..(r + 1) * n];
            let mut t = k0;
            while t + 4 <= k1 {
                let (a0, a1, a2, a3) = (a_row[t], a_row[t + 1], a_row[t + 2], a_row[t + 3]);
                let b0 = &b[t * n..(t + 1) * n];
                let b1 = &b[(t + 1) * n..(t + 2) * n];
                let b2 = &b[(t + 2) * n..(t + 3) * n];
                let b3 = &b[(t + 3) * n..(t + 4) * n];
                for ((((cj, &x0), &x1), &x2), &x3) in
                    c_row.iter_mut().zip(b0).zip(b1).zip(b2).zip(b3)
                {
                    *cj = cj
                        .wrapping_add(a0.wrapping_mul(x0))
                        .wrapping_add(a1.wrapping_mul(x1))
                        .wrapping_add(a2.wrapping_mul(x2))
                        .wrapping_add(a3.wrapping_mul(x3));
                }
                t += 4;
            }
            for t in t..k1 {
                let at = a_row[t];
                for (cj, &x) in c_row.iter_mut().zip(&b[t * n..(t + 1) * n]) {
                    *cj = cj.wrapping_add(at.wrapping_mul(x));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SecureRng;
    use proptest::prelude::*;

    fn rand_mat(r: usize, c: usize, seed: u64) -> RingMatrix {
        RingMatrix::random(r, c, &mut SecureRng::insecure_from_seed_for_tests(seed))
    }

    #[test]
    fn an_inverse_mod_2_64_undoes_the_matrix_and_an_even_determinant_has_none() {
        let identity = |n: usize| {
            RingMatrix::from_vec(
                n,
                n,
                (0..n * n).map(|i| u64::from(i % (n + 1) == 0)).collect(),
            )
            .unwrap()
        };
        // Random 6 × 6 matrices: about a third are invertible mod 2; every inverse found works
        // on both sides, and every refusal is a matrix singular mod 2 (checked by brute force
        // over its rows' GF(2) combinations).
        let (mut found, mut refused) = (0, 0);
        for seed in 0..30 {
            let a = rand_mat(6, 6, seed);
            match a.inverse() {
                Some(inv) => {
                    found += 1;
                    assert_eq!(a.matmul(&inv).unwrap(), identity(6));
                    assert_eq!(inv.matmul(&a).unwrap(), identity(6));
                }
                None => {
                    refused += 1;
                    let rows: Vec<u64> = (0..6)
                        .map(|r| (0..6).fold(0, |acc, c| acc | (a.as_slice()[r * 6 + c] & 1) << c))
                        .collect();
                    assert!(
                        (1u32..64).any(|mask| (0..6)
                            .filter(|r| mask >> r & 1 == 1)
                            .fold(0, |acc, r| acc ^ rows[r])
                            == 0),
                        "seed {seed}: refused a matrix invertible mod 2"
                    );
                }
            }
        }
        assert!(found > 0 && refused > 0, "{found} found, {refused} refused");
        assert!(rand_mat(2, 3, 1).inverse().is_none(), "not square");
    }

    #[test]
    fn matmul_matches_naive_on_odd_and_large_shapes() {
        for &(m, k, n) in &[
            (1, 1, 1),
            (3, 5, 7),
            (9, 131, 17),
            (64, 257, 33),
            (130, 300, 70),
        ] {
            let a = rand_mat(m, k, 1);
            let b = rand_mat(k, n, 2);
            assert_eq!(
                a.matmul(&b).unwrap(),
                a.matmul_naive(&b).unwrap(),
                "{m}x{k}x{n}"
            );
        }
    }

    #[test]
    fn wrapping_identities_hold() {
        let a = rand_mat(4, 6, 3);
        let b = rand_mat(4, 6, 4);
        assert_eq!(a.add(&b).unwrap().sub(&b).unwrap(), a);
        assert_eq!(a.add(&a.neg()).unwrap(), RingMatrix::zeros(4, 6));
        assert_eq!(a.scalar_mul(3), a.add(&a).unwrap().add(&a).unwrap());
        assert_eq!(a.transpose().transpose(), a);
        let c = rand_mat(6, 5, 5);
        // (AB)^T = B^T A^T holds in any commutative ring.
        assert_eq!(
            a.matmul(&c).unwrap().transpose(),
            c.transpose().matmul(&a.transpose()).unwrap()
        );
    }

    #[test]
    fn shape_errors_are_reported_not_panicked() {
        let a = rand_mat(2, 3, 1);
        assert!(matches!(
            a.matmul(&a),
            Err(CryptoError::ShapeMismatch { op: "matmul", .. })
        ));
        assert!(a.add(&rand_mat(3, 2, 1)).is_err());
        assert!(RingMatrix::from_vec(2, 2, vec![0; 3]).is_err());
        assert!(RingMatrix::from_vec(usize::MAX, 2, vec![]).is_err());
        assert!(a.slice_rows(1, 3).is_err());
        assert!(a.slice_cols(2, 1).is_err());
    }

    #[test]
    fn stacking_and_slicing_invert_each_other() {
        let a = rand_mat(5, 7, 9);
        let (l, r) = (a.slice_cols(0, 3).unwrap(), a.slice_cols(3, 7).unwrap());
        assert_eq!(RingMatrix::hstack(&[&l, &r]).unwrap(), a);
        let (t, b) = (a.slice_rows(0, 2).unwrap(), a.slice_rows(2, 5).unwrap());
        assert_eq!(RingMatrix::vstack(&[&t, &b]).unwrap(), a);
    }

    proptest! {
        #[test]
        fn matmul_is_bit_exact_for_random_shapes(m in 1usize..40, k in 1usize..70, n in 1usize..40, seed: u64) {
            let a = rand_mat(m, k, seed);
            let b = rand_mat(k, n, seed ^ 0xabc);
            prop_assert_eq!(a.matmul(&b).unwrap(), a.matmul_naive(&b).unwrap());
        }

        #[test]
        fn matmul_distributes_over_add(m in 1usize..12, k in 1usize..12, n in 1usize..12, seed: u64) {
            let a = rand_mat(m, k, seed);
            let b = rand_mat(k, n, seed ^ 1);
            let c = rand_mat(k, n, seed ^ 2);
            prop_assert_eq!(
                a.matmul(&b.add(&c).unwrap()).unwrap(),
                a.matmul(&b).unwrap().add(&a.matmul(&c).unwrap()).unwrap()
            );
        }
    }
}
