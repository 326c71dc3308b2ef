//! Fixed-base exponentiation with a precomputed window table.
//!
//! For a base `g` and exponents of at most `windows · 8` bits, the table holds
//! `g^{j·2^{8i}} mod m` for every window `i` and digit `1 ≤ j ≤ 255`. Then
//! `g^a = Π_i table[i][a_i]` where `a_i` is byte `i` of `a`: at most one multiplication per
//! window and no squarings. Building the table costs `255 · windows` multiplications, once per
//! key (≈ 7 MB for a 2048-bit key with 448-bit exponents).

use rayon::prelude::*;
use rug::Integer;

const WINDOW_BITS: u32 = 8;
const DIGITS: usize = (1 << WINDOW_BITS) - 1;

/// `g^{j·2^{8i}} mod m` for `i < windows`, `1 ≤ j ≤ 255`.
pub(crate) struct FixedBaseTable {
    modulus: Integer,
    rows: Vec<Vec<Integer>>,
}

impl FixedBaseTable {
    /// Precomputes the table for exponents of up to `exponent_bits` bits.
    pub(crate) fn new(base: &Integer, modulus: &Integer, exponent_bits: u32) -> Self {
        let windows = exponent_bits.div_ceil(WINDOW_BITS) as usize;
        // The window bases g^{2^{8i}} by repeated squaring, then each row in parallel.
        let mut bases = Vec::with_capacity(windows);
        let mut b = base.clone() % modulus;
        for _ in 0..windows {
            bases.push(b.clone());
            for _ in 0..WINDOW_BITS {
                b.square_mut();
                b %= modulus;
            }
        }
        let rows = bases
            .par_iter()
            .map(|g| {
                let mut row = Vec::with_capacity(DIGITS);
                let mut acc = g.clone();
                row.push(acc.clone());
                for _ in 1..DIGITS {
                    acc *= g;
                    acc %= modulus;
                    row.push(acc.clone());
                }
                row
            })
            .collect();
        Self {
            modulus: modulus.clone(),
            rows,
        }
    }

    /// Largest exponent size, in bits, the table covers.
    pub(crate) fn exponent_bits(&self) -> u32 {
        self.rows.len() as u32 * WINDOW_BITS
    }

    /// `g^a mod m` for `0 ≤ a < 2^exponent_bits` given as little-endian bytes.
    pub(crate) fn pow(&self, exponent_le: &[u8]) -> Integer {
        debug_assert!(exponent_le.len() as u32 * WINDOW_BITS <= self.exponent_bits());
        let mut acc = Integer::from(1);
        for (row, &digit) in self.rows.iter().zip(exponent_le) {
            if digit != 0 {
                acc *= &row[digit as usize - 1];
                acc %= &self.modulus;
            }
        }
        acc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_power_equals_pow_mod() {
        let m = Integer::from(1_000_000_007u64) * Integer::from(998_244_353u64);
        let g = Integer::from(123_456_789u64);
        let t = FixedBaseTable::new(&g, &m, 40);
        assert_eq!(t.exponent_bits(), 40);
        for e in [0u64, 1, 255, 256, 0xdead_beef, (1 << 40) - 1] {
            let bytes = e.to_le_bytes();
            let expected = g.clone().pow_mod(&Integer::from(e), &m).unwrap();
            assert_eq!(t.pow(&bytes[..5]), expected, "exponent {e}");
        }
    }
}
