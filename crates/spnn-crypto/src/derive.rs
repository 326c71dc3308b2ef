//! Key derivation: one secret seed, many independent streams.
//!
//! Parties that share a [`SecretSeed`] (two holders after set-up, a dealer and the holder it
//! dealt to) derive every later value from it instead of exchanging more bytes. Each stream is
//! named by a **purpose**, an **owner** and a **step**, hashed with a version tag:
//!
//! ```text
//! child = SHA-256("spnn-derive-v1" ‖ seed ‖ len(purpose) ‖ purpose ‖ owner ‖ step)
//! ```
//!
//! so streams of different purposes, owners or steps are independent (the length prefix keeps
//! two purposes from ever hashing the same bytes). A stream is used once: the protocol names
//! each use with a fresh (purpose, step) pair.
//!
//! **Zero sharing.** Holders `0 … k−1` with a seed `s_ij` per pair derive masks
//! `M_i = Σ_{j>i} PRG(s_ij) − Σ_{j<i} PRG(s_ji)` ([`zero_sharing_mask`]); they add up to zero,
//! and any `k − 1` of them are jointly uniform to whoever lacks the seeds. A holder that adds
//! `M_i` to a value it sends the server therefore reveals only what the sum over all holders
//! reveals.

use sha2::{Digest, Sha256};

use crate::error::{CryptoError, Result};
use crate::ring::RingMatrix;
use crate::rng::{SecretSeed, SecureRng};

const TAG: &[u8] = b"spnn-derive-v1";

/// The child seed of `seed` for `purpose`, `owner` and `step`.
pub fn derive_seed(seed: &SecretSeed, purpose: &str, owner: u64, step: u64) -> SecretSeed {
    let mut h = Sha256::new();
    h.update(TAG);
    h.update(seed.to_bytes());
    h.update((purpose.len() as u64).to_le_bytes());
    h.update(purpose.as_bytes());
    h.update(owner.to_le_bytes());
    h.update(step.to_le_bytes());
    SecretSeed::from_bytes(h.finalize().into())
}

/// A uniform `rows × cols` matrix from the stream of `seed` for `purpose`, `owner`, `step`.
pub fn derive_matrix(
    seed: &SecretSeed,
    purpose: &str,
    owner: u64,
    step: u64,
    (rows, cols): (usize, usize),
) -> RingMatrix {
    let child = derive_seed(seed, purpose, owner, step);
    RingMatrix::random(rows, cols, &mut SecureRng::from_secret_seed(&child))
}

/// Holder `me`'s zero-sharing mask for `purpose` and `step` (module docs). `pair_seeds[j]` is
/// the seed `me` shares with holder `j` (`None` at `me` itself).
pub fn zero_sharing_mask(
    me: usize,
    pair_seeds: &[Option<SecretSeed>],
    purpose: &str,
    step: u64,
    shape: (usize, usize),
) -> Result<RingMatrix> {
    let mut mask = RingMatrix::zeros(shape.0, shape.1);
    for (j, seed) in pair_seeds.iter().enumerate().filter(|(j, _)| *j != me) {
        let seed = seed.as_ref().ok_or_else(|| {
            CryptoError::InconsistentShares(format!("no pair seed between {me} and {j}"))
        })?;
        // Both holders of a pair derive the same stream: the owner is the smaller index.
        let prg = derive_matrix(seed, purpose, me.min(j) as u64, step, shape);
        if me < j {
            mask.add_assign(&prg)?;
        } else {
            mask.sub_assign(&prg)?;
        }
    }
    Ok(mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Holder `i`'s pair seeds, for `k` holders: `table[i][j] = table[j][i]`.
    fn seeds(k: usize, rng: &mut SecureRng) -> Vec<Vec<Option<SecretSeed>>> {
        let pairs: Vec<Vec<SecretSeed>> = (0..k)
            .map(|i| (0..i).map(|_| rng.secret_seed()).collect())
            .collect();
        (0..k)
            .map(|i| {
                (0..k)
                    .map(|j| match j.cmp(&i) {
                        std::cmp::Ordering::Less => Some(pairs[i][j].clone()),
                        std::cmp::Ordering::Greater => Some(pairs[j][i].clone()),
                        std::cmp::Ordering::Equal => None,
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn masks_add_up_to_zero_and_differ_by_purpose_and_step() {
        let mut rng = SecureRng::insecure_from_seed_for_tests(1);
        for k in 2..=5 {
            let table = seeds(k, &mut rng);
            let masks: Vec<RingMatrix> = (0..k)
                .map(|i| zero_sharing_mask(i, &table[i], "z", 3, (4, 5)).unwrap())
                .collect();
            let mut sum = RingMatrix::zeros(4, 5);
            for m in &masks {
                sum.add_assign(m).unwrap();
                assert_ne!(*m, RingMatrix::zeros(4, 5));
            }
            assert_eq!(sum, RingMatrix::zeros(4, 5), "k = {k}");
            let other_step = zero_sharing_mask(0, &table[0], "z", 4, (4, 5)).unwrap();
            let other_purpose = zero_sharing_mask(0, &table[0], "mask", 3, (4, 5)).unwrap();
            assert_ne!(masks[0], other_step);
            assert_ne!(masks[0], other_purpose);
        }
        let table = seeds(2, &mut rng);
        let mut missing = table[0].clone();
        missing[1] = None;
        assert!(zero_sharing_mask(0, &missing, "z", 0, (1, 1)).is_err());
    }

    #[test]
    fn derivation_separates_its_inputs() {
        let seed = SecureRng::insecure_from_seed_for_tests(2).secret_seed();
        let base = derive_seed(&seed, "ab", 1, 2);
        assert_eq!(base, derive_seed(&seed, "ab", 1, 2));
        for other in [
            derive_seed(&seed, "a", 1, 2),
            derive_seed(&seed, "ab", 2, 2),
            derive_seed(&seed, "ab", 1, 3),
            derive_seed(
                &SecureRng::insecure_from_seed_for_tests(3).secret_seed(),
                "ab",
                1,
                2,
            ),
        ] {
            assert_ne!(base, other);
        }
    }
}
