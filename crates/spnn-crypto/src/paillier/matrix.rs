//! Whole matrices under Paillier: row-packed encryption, masking into additive shares,
//! decryption back into the ring, and the wire form of a packed matrix.
//!
//! A `rows × cols` ring matrix (entries read as signed `i64`) is encrypted row by row, each row
//! cut into `⌈cols / slots⌉` packed ciphertexts — the dimension a plaintext-matrix product keeps
//! together, so `P ⊗ Enc(M)` needs no repacking. Work runs on rayon; each cell draws its
//! randomness from its own ChaCha20 stream seeded from the caller's generator.

use rand::RngCore;
use rayon::prelude::*;
use rug::Integer;

use super::keys::{PublicKey, SecretKey};
use super::packing::{PackedCiphertext, PackedMatrix, Packing};
use crate::error::{CryptoError, Result};
use crate::integer::IntMatrix;
use crate::ring::RingMatrix;
use crate::rng::SecureRng;

fn cell_rngs(n: usize, rng: &mut impl RngCore) -> Vec<SecureRng> {
    (0..n)
        .map(|_| {
            let mut seed = [0u8; 32];
            rng.fill_bytes(&mut seed);
            SecureRng::from_secret_seed(&crate::rng::SecretSeed::from_bytes(seed))
        })
        .collect()
}

impl PublicKey {
    /// Encrypts `m` row by row into a `rows × ⌈cols / slots⌉` packed matrix.
    pub fn encrypt_rows(
        &self,
        packing: &Packing,
        m: &RingMatrix,
        rng: &mut impl RngCore,
    ) -> Result<PackedMatrix> {
        let (rows, cols) = m.shape();
        let blocks = cols.div_ceil(packing.slots());
        let rngs = cell_rngs(rows * blocks, rng);
        let cells = rngs
            .into_par_iter()
            .enumerate()
            .map(|(i, mut r)| {
                let (row, blk) = (i / blocks, i % blocks);
                let start = blk * packing.slots();
                let end = (start + packing.slots()).min(cols);
                let values: Vec<Integer> = m.as_slice()[row * cols + start..row * cols + end]
                    .iter()
                    .map(|&v| Integer::from(v as i64))
                    .collect();
                self.encrypt_packed(packing, &values, &mut r)
            })
            .collect::<Result<Vec<_>>>()?;
        PackedMatrix::new(rows, blocks, cells)
    }

    /// Adds a statistically hiding mask (`σ = statistical_bits`) to every slot, re-randomises
    /// every cell for circuit privacy ([`PublicKey::mask_packed`]) and returns the masked
    /// matrix with the masker's additive share of the result: `−mask`, over the integers, as a
    /// `rows × cols` matrix (the decrypting party's share is `value + mask`). Reduce both mod
    /// `2^64` for ring shares ([`IntMatrix::to_ring`]).
    pub fn mask_rows(
        &self,
        m: &PackedMatrix,
        cols: usize,
        statistical_bits: u32,
        rng: &mut impl RngCore,
    ) -> Result<(PackedMatrix, IntMatrix)> {
        let (rows, blocks) = m.shape();
        let rngs = cell_rngs(rows * blocks, rng);
        let masked: Vec<(PackedCiphertext, Vec<Integer>)> = m
            .cells()
            .par_iter()
            .zip(rngs)
            .map(|(cell, mut r)| self.mask_packed(cell, statistical_bits, &mut r))
            .collect::<Result<_>>()?;
        let mut share = vec![Integer::new(); rows * cols];
        let slots = masked.first().map_or(1, |(c, _)| c.packing().slots());
        for (i, (_, masks)) in masked.iter().enumerate() {
            let (row, blk) = (i / blocks, i % blocks);
            for (s, mask) in masks.iter().enumerate() {
                let col = blk * slots + s;
                if col < cols {
                    share[row * cols + col] = -mask.clone();
                }
            }
        }
        Ok((
            PackedMatrix::new(rows, blocks, masked.into_iter().map(|(c, _)| c).collect())?,
            IntMatrix::from_vec(rows, cols, share)?,
        ))
    }

    /// The wire form: every cell's ciphertext bytes, row-major (the layout travels separately).
    pub fn packed_matrix_to_bytes(&self, m: &PackedMatrix) -> Result<Vec<Vec<u8>>> {
        m.cells()
            .iter()
            .map(|c| c.ciphertext().to_bytes(self))
            .collect()
    }

    /// Parses and validates `rows × blocks` ciphertexts (this key's, each in Z*_{n²}) carrying
    /// `count` values per cell with the protocol's `bound_bits`, in `packing`.
    pub fn packed_matrix_from_bytes(
        &self,
        (rows, blocks): (usize, usize),
        cells: &[Vec<u8>],
        packing: &Packing,
        cols: usize,
        bound_bits: u32,
    ) -> Result<PackedMatrix> {
        if cells.len() != rows * blocks || blocks != cols.div_ceil(packing.slots()) {
            return Err(CryptoError::InvalidPacking(format!(
                "{} ciphertexts for a {rows}x{cols} matrix in {}-value slots",
                cells.len(),
                packing.slots()
            )));
        }
        let parsed = cells
            .par_iter()
            .enumerate()
            .map(|(i, bytes)| {
                let blk = i % blocks;
                let count = (cols - blk * packing.slots()).min(packing.slots());
                PackedCiphertext::from_parts(
                    self.ciphertext_from_bytes(bytes)?,
                    count,
                    bound_bits,
                    *packing,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        PackedMatrix::new(rows, blocks, parsed)
    }
}

impl SecretKey {
    /// Decrypts a row-packed matrix into `rows × cols` signed integers. Every slot must lie in
    /// `[−2^{max_bits}, 2^{max_bits})`: a value outside means a tampered or overflowing
    /// ciphertext and is an error.
    pub fn decrypt_rows(&self, m: &PackedMatrix, cols: usize, max_bits: u32) -> Result<IntMatrix> {
        let (rows, blocks) = m.shape();
        let limit = Integer::from(1) << max_bits;
        let decrypted: Vec<Vec<Integer>> = m
            .cells()
            .par_iter()
            .map(|c| self.decrypt_packed(c))
            .collect::<Result<_>>()?;
        let mut out = vec![Integer::new(); rows * cols];
        for (i, values) in decrypted.into_iter().enumerate() {
            let (row, blk) = (i / blocks, i % blocks);
            let slots = m.cells()[i].packing().slots();
            for (s, v) in values.into_iter().enumerate() {
                if v >= limit || v < -limit.clone() {
                    return Err(CryptoError::SlotOverflow {
                        needed_bits: v.significant_bits() + 1,
                        slot_bits: max_bits + 1,
                    });
                }
                let col = blk * slots + s;
                if col >= cols {
                    return Err(CryptoError::InvalidPacking(format!(
                        "slot {s} beyond column {cols}"
                    )));
                }
                out[row * cols + col] = v;
            }
        }
        IntMatrix::from_vec(rows, cols, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paillier::Keypair;

    #[test]
    fn encrypted_product_masked_into_shares_reconstructs_the_ring_product() {
        let mut rng = SecureRng::insecure_from_seed_for_tests(1);
        let kp = Keypair::generate_insecure_for_tests(1024, &mut rng).unwrap();
        let (b, d, h) = (5, 3, 7);
        // Small plaintext (features) times a uniform ring matrix (a weight share).
        let x = RingMatrix::from_vec(
            b,
            d,
            (0..b * d).map(|i| ((i as i64 - 7) * 1000) as u64).collect(),
        )
        .unwrap();
        let w = RingMatrix::random(d, h, &mut rng);
        let packing = Packing::new(&kp.public, 64 + 16 + 2 + 40 + 3).unwrap();
        let enc = kp.public.encrypt_rows(&packing, &w, &mut rng).unwrap();
        let bytes = kp.public.packed_matrix_to_bytes(&enc).unwrap();
        let enc = kp
            .public
            .packed_matrix_from_bytes(enc.shape(), &bytes, &packing, h, 64)
            .unwrap();
        let prod = kp.public.plain_matmul_packed(&x, 15, &enc).unwrap();
        let (masked, mine) = kp.public.mask_rows(&prod, h, 40, &mut rng).unwrap();
        let theirs = kp
            .secret
            .decrypt_rows(&masked, h, packing.slot_bits() - 1)
            .unwrap();
        let mut sum = theirs.clone();
        sum.add_assign(&mine).unwrap();
        // Over the integers the shares add up to the product of the signed entries; mod 2^64
        // to the ring product.
        assert_eq!(
            sum,
            IntMatrix::signed_transpose_product(&x.transpose(), &w).unwrap()
        );
        assert_eq!(
            theirs.to_ring().add(&mine.to_ring()).unwrap(),
            x.matmul(&w).unwrap()
        );
        // Without the mask the decryption is the product itself; the mask hides it.
        assert_ne!(theirs.to_ring(), x.matmul(&w).unwrap());
        // The plaintext bound is public and enforced, never measured from the data.
        assert!(matches!(
            kp.public.plain_matmul_packed(&x, 12, &enc),
            Err(CryptoError::PlaintextOutOfRange(_))
        ));
        // A tight bound at the decryptor catches values beyond it.
        assert!(matches!(
            kp.secret.decrypt_rows(&masked, h, 60),
            Err(CryptoError::SlotOverflow { .. })
        ));
        // Wrong counts are refused.
        assert!(
            kp.public
                .packed_matrix_from_bytes((d, 2), &bytes, &packing, h, 64)
                .is_err()
        );
        assert!(
            kp.public
                .packed_matrix_from_bytes((d, 1), &bytes[1..], &packing, h, 64)
                .is_err()
        );
    }
}
