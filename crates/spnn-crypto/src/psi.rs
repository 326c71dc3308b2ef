//! The group side of ECDH private set intersection over ristretto255.
//!
//! Each party hashes its ids to the group (`H(id)`, SHA-512 of a domain separator and the id,
//! mapped by ristretto255's uniform-bytes map) and raises them to its secret scalar `a`; every
//! other party raises what it receives to its own scalar. Exponentiation commutes, so after all
//! `k` scalars an id becomes the same **tag** `H(id)^{a_1⋯a_k}` whoever held it, while a point
//! blinded by at least one scalar a party does not know looks random to it (decisional
//! Diffie–Hellman in ristretto255). The protocol that moves the points is in `spnn-burn`'s
//! `align` module.
//!
//! Points travel as their 32-byte canonical encodings. [`PsiKey::reblind`] accepts only
//! canonical encodings of points other than the identity; anything else is an error, never a
//! panic. Both kernels run on every core (rayon).

use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::Identity;
use rand::RngCore;
use rayon::prelude::*;
use sha2::{Digest, Sha512};

use crate::error::{CryptoError, Result};
use crate::rng::SecureRng;

/// Bytes of an encoded point.
pub const POINT_BYTES: usize = 32;

/// An encoded ristretto255 point.
pub type Point = [u8; POINT_BYTES];

/// The hash of `id` to the group under `domain` (which binds it to one run).
pub fn hash_to_group(domain: &[u8], id: u64) -> RistrettoPoint {
    let digest = Sha512::new()
        .chain_update((domain.len() as u64).to_le_bytes())
        .chain_update(domain)
        .chain_update(id.to_le_bytes())
        .finalize();
    let mut wide = [0u8; 64];
    wide.copy_from_slice(&digest);
    RistrettoPoint::from_uniform_bytes(&wide)
}

/// A party's secret exponent for one run. Zeroed when dropped (each clone too).
#[derive(Clone)]
pub struct PsiKey(Scalar);

impl Drop for PsiKey {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

impl std::fmt::Debug for PsiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PsiKey(<secret>)")
    }
}

impl PsiKey {
    /// A fresh uniform non-zero scalar from `rng` (the CSPRNG).
    pub fn random(rng: &mut SecureRng) -> Self {
        loop {
            let mut wide = [0u8; 64];
            rng.fill_bytes(&mut wide);
            let s = Scalar::from_bytes_mod_order_wide(&wide);
            zeroize::Zeroize::zeroize(&mut wide);
            if s != Scalar::ZERO {
                return Self(s);
            }
        }
    }

    /// `P^a` for every point of a chunk, encoded. Computes `Q = P^{a/2}` and encodes `2Q` with
    /// dalek's batch doubling-and-compression, which shares one field inversion per chunk
    /// instead of one per point.
    fn raise_and_encode(&self, half: &Scalar, chunk: &[RistrettoPoint]) -> Vec<Point> {
        let raised: Vec<RistrettoPoint> = chunk.iter().map(|p| p * half).collect();
        RistrettoPoint::double_and_compress_batch(&raised)
            .into_iter()
            .map(|c| c.to_bytes())
            .collect()
    }

    /// `a/2`, itself a secret: a key, so it is zeroed when dropped.
    fn half(&self) -> PsiKey {
        PsiKey(self.0 * Scalar::from(2u8).invert())
    }

    /// The key that raises by this key's exponent and removes `mask`'s: `a · b⁻¹`. A party
    /// blinds its own ids with a one-time `mask` and, when they come back blinded by every
    /// other party, finishes them with this, so no other party ever holds its ids blinded by
    /// every party's key.
    pub fn unmasking(&self, mask: &PsiKey) -> PsiKey {
        PsiKey(self.0 * mask.0.invert())
    }

    /// `H(id)^a` for every id, in order.
    pub fn blind_ids(&self, domain: &[u8], ids: &[u64]) -> Vec<Point> {
        let half = self.half();
        ids.par_chunks(CHUNK)
            .flat_map_iter(|chunk| {
                let hashed: Vec<RistrettoPoint> =
                    chunk.iter().map(|&id| hash_to_group(domain, id)).collect();
                self.raise_and_encode(&half.0, &hashed)
            })
            .collect()
    }

    /// `P^a` for every encoded point `P`, in order. Refuses an encoding that is not canonical
    /// or is the identity, naming its position.
    pub fn reblind(&self, points: &[Point]) -> Result<Vec<Point>> {
        let half = self.half();
        let chunks = points
            .par_chunks(CHUNK)
            .enumerate()
            .map(|(c, chunk)| {
                let decoded = chunk
                    .iter()
                    .enumerate()
                    .map(|(i, bytes)| {
                        CompressedRistretto(*bytes)
                            .decompress()
                            .filter(|p| *p != RistrettoPoint::identity())
                            .ok_or_else(|| {
                                CryptoError::InvalidPoint(format!(
                                    "element {} is not a ristretto255 point other than the \
                                     identity",
                                    c * CHUNK + i
                                ))
                            })
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(self.raise_and_encode(&half.0, &decoded))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(chunks.concat())
    }
}

/// Points per unit of parallel work (and per shared inversion).
const CHUNK: usize = 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blinding_commutes_so_equal_ids_meet_and_others_do_not() {
        let mut rng = SecureRng::from_os_entropy();
        let (a, b) = (PsiKey::random(&mut rng), PsiKey::random(&mut rng));
        let ids: Vec<u64> = (0..200).collect();
        let ab = b.reblind(&a.blind_ids(b"run", &ids)).unwrap();
        let ba = a.reblind(&b.blind_ids(b"run", &ids)).unwrap();
        assert_eq!(ab, ba);
        // Distinct ids, distinct tags; another domain, other tags.
        let distinct: std::collections::HashSet<_> = ab.iter().collect();
        assert_eq!(distinct.len(), ids.len());
        let other = b.reblind(&a.blind_ids(b"other run", &ids)).unwrap();
        assert!(other.iter().all(|t| !distinct.contains(t)));
        // One scalar is not enough: a party's own blinding of an id differs from the tag.
        assert_ne!(a.blind_ids(b"run", &ids), ab);
        // The batched encoding of 2·(P·a/2) is P·a's own encoding, across chunk boundaries.
        let many: Vec<u64> = (0..2500).collect();
        let direct: Vec<Point> = many
            .iter()
            .map(|&id| (hash_to_group(b"run", id) * a.0).compress().to_bytes())
            .collect();
        assert_eq!(a.blind_ids(b"run", &many), direct);
    }

    #[test]
    fn malformed_points_and_the_identity_are_refused() {
        let mut rng = SecureRng::from_os_entropy();
        let key = PsiKey::random(&mut rng);
        let good = key.blind_ids(b"d", &[1, 2, 3]);
        assert!(key.reblind(&good).is_ok());
        let identity = RistrettoPoint::identity().compress().to_bytes();
        let mut flipped = good[1];
        flipped[0] ^= 1;
        let non_canonical = [0xffu8; 32];
        for bad in [identity, flipped, non_canonical] {
            let mut v = good.clone();
            v[1] = bad;
            let err = key.reblind(&v);
            // A flipped bit may land on another valid point; then the result is just different.
            if bad == flipped && err.is_ok() {
                continue;
            }
            assert!(
                matches!(&err, Err(CryptoError::InvalidPoint(m)) if m.contains("element 1")),
                "{err:?}"
            );
        }
    }
}
