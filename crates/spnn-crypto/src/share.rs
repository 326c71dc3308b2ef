//! Additive secret sharing over Z_2^64 among `n ≥ 2` parties.
//!
//! A secret matrix `S` is split into `S_0 + … + S_{n−1} = S (mod 2^64)`, where `S_1 … S_{n−1}`
//! are uniform and `S_0` is the correction. Any `n − 1` shares are jointly uniform and reveal
//! nothing about `S`.
//!
//! A [`Share`] knows which party holds it, how many parties the sharing has and the fixed-point
//! scale of the shared value, so shares of different sharings or scales cannot be combined by
//! mistake: the operations check and return [`CryptoError`] instead.
//!
//! **Seeded shares.** The uniform shares need not be sent: the dealer draws a [`SecretSeed`] per
//! party, expands it with ChaCha20 into that party's share and sends the 32-byte seed instead
//! ([`share_seeded`], [`Share::from_seed`]). Only party 0's correction share travels in full.

use serde::{Deserialize, Serialize};

use crate::error::{CryptoError, Result};
use crate::ring::RingMatrix;
use crate::rng::{SecretSeed, SecureRng};

/// One party's additive share of a matrix.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Share {
    party: usize,
    parties: usize,
    frac_bits: u32,
    value: RingMatrix,
}

fn check_parties(parties: usize) -> Result<()> {
    if !(2..=u16::MAX as usize).contains(&parties) {
        return Err(CryptoError::PartyCount(parties));
    }
    Ok(())
}

impl Share {
    /// Wraps a share received from elsewhere; checks the party index against the party count.
    /// `frac_bits` is the fixed-point scale of the shared value (0 for plain ring values).
    pub fn new(party: usize, parties: usize, frac_bits: u32, value: RingMatrix) -> Result<Self> {
        check_parties(parties)?;
        if party >= parties {
            return Err(CryptoError::InconsistentShares(format!(
                "party index {party} in a {parties}-party sharing"
            )));
        }
        Ok(Self {
            party,
            parties,
            frac_bits,
            value,
        })
    }

    /// Re-derives the share that `seed` expands to (see the module docs).
    pub fn from_seed(
        seed: &SecretSeed,
        party: usize,
        parties: usize,
        frac_bits: u32,
        (rows, cols): (usize, usize),
    ) -> Result<Self> {
        let value = RingMatrix::random(rows, cols, &mut SecureRng::from_secret_seed(seed));
        Self::new(party, parties, frac_bits, value)
    }

    /// The holder's index, `0 ≤ party < parties`.
    pub fn party(&self) -> usize {
        self.party
    }

    /// Number of parties in the sharing.
    pub fn parties(&self) -> usize {
        self.parties
    }

    /// Fixed-point scale (fractional bits) of the shared value.
    pub fn frac_bits(&self) -> u32 {
        self.frac_bits
    }

    /// The share's ring matrix.
    pub fn value(&self) -> &RingMatrix {
        &self.value
    }

    /// Consumes the share, returning its ring matrix.
    pub fn into_value(self) -> RingMatrix {
        self.value
    }

    /// (rows, cols) of the shared matrix.
    pub fn shape(&self) -> (usize, usize) {
        self.value.shape()
    }

    fn compatible(&self, op: &'static str, rhs: &Self) -> Result<()> {
        if (self.party, self.parties) != (rhs.party, rhs.parties) {
            return Err(CryptoError::InconsistentShares(format!(
                "{op}: share of party {}/{} meets share of party {}/{}",
                self.party, self.parties, rhs.party, rhs.parties
            )));
        }
        if self.frac_bits != rhs.frac_bits {
            return Err(CryptoError::InconsistentShares(format!(
                "{op}: scales 2^{} and 2^{} differ",
                self.frac_bits, rhs.frac_bits
            )));
        }
        Ok(())
    }

    /// Share of the sum of two shared values (local, no communication).
    pub fn add(&self, rhs: &Self) -> Result<Self> {
        self.compatible("add", rhs)?;
        Ok(self.with_value(self.value.add(&rhs.value)?))
    }

    /// Share of the difference of two shared values (local).
    pub fn sub(&self, rhs: &Self) -> Result<Self> {
        self.compatible("sub", rhs)?;
        Ok(self.with_value(self.value.sub(&rhs.value)?))
    }

    /// Share of `S + P` for a public `P` at the same scale: only party 0 adds it.
    pub fn add_public(&self, public: &RingMatrix) -> Result<Self> {
        if self.party == 0 {
            Ok(self.with_value(self.value.add(public)?))
        } else if public.shape() != self.shape() {
            Err(CryptoError::ShapeMismatch {
                op: "add_public",
                left: self.shape(),
                right: public.shape(),
            })
        } else {
            Ok(self.clone())
        }
    }

    /// Share of `k·S` (local).
    pub fn scalar_mul(&self, k: u64) -> Self {
        self.with_value(self.value.scalar_mul(k))
    }

    /// The same party and sharing with another value (and the same scale).
    pub fn with_value(&self, value: RingMatrix) -> Self {
        Self { value, ..*self }
    }

    /// The same party and sharing with another value at another scale.
    pub fn with_value_and_scale(&self, value: RingMatrix, frac_bits: u32) -> Self {
        Self {
            value,
            frac_bits,
            ..*self
        }
    }
}

/// Splits `secret` (at scale `frac_bits`) into `parties` shares; share `i` is for party `i`.
pub fn share(
    secret: &RingMatrix,
    frac_bits: u32,
    parties: usize,
    rng: &mut SecureRng,
) -> Result<Vec<Share>> {
    check_parties(parties)?;
    let (rows, cols) = secret.shape();
    let mut correction = secret.clone();
    let mut shares = Vec::with_capacity(parties);
    for party in 1..parties {
        let r = RingMatrix::random(rows, cols, rng);
        correction.sub_assign(&r)?;
        shares.push(Share::new(party, parties, frac_bits, r)?);
    }
    shares.insert(0, Share::new(0, parties, frac_bits, correction)?);
    Ok(shares)
}

/// A sharing in which parties `1..n` receive 32-byte seeds instead of their shares.
#[derive(Debug)]
pub struct SeededSharing {
    /// Party 0's share, sent in full.
    pub explicit: Share,
    /// Seeds of parties `1..n`, in order: `seeds[i − 1]` belongs to party `i`.
    pub seeds: Vec<SecretSeed>,
}

/// Shares `secret` so that only party 0's share is a full matrix (module docs).
pub fn share_seeded(
    secret: &RingMatrix,
    frac_bits: u32,
    parties: usize,
    rng: &mut SecureRng,
) -> Result<SeededSharing> {
    check_parties(parties)?;
    let mut correction = secret.clone();
    let mut seeds = Vec::with_capacity(parties - 1);
    for party in 1..parties {
        let seed = rng.secret_seed();
        let s = Share::from_seed(&seed, party, parties, frac_bits, secret.shape())?;
        correction.sub_assign(s.value())?;
        seeds.push(seed);
    }
    Ok(SeededSharing {
        explicit: Share::new(0, parties, frac_bits, correction)?,
        seeds,
    })
}

/// Adds up all parties' shares. Fails unless every party of one sharing appears exactly once,
/// with equal shapes and scales.
pub fn reconstruct(shares: &[Share]) -> Result<RingMatrix> {
    let first = shares
        .first()
        .ok_or_else(|| CryptoError::InconsistentShares("no shares given".into()))?;
    if shares.len() != first.parties {
        return Err(CryptoError::InconsistentShares(format!(
            "{} shares given for a {}-party sharing",
            shares.len(),
            first.parties
        )));
    }
    let mut seen = vec![false; first.parties];
    let mut sum = RingMatrix::zeros(first.shape().0, first.shape().1);
    for s in shares {
        if s.parties != first.parties || s.frac_bits != first.frac_bits {
            return Err(CryptoError::InconsistentShares(
                "shares of different sharings or scales".into(),
            ));
        }
        if std::mem::replace(&mut seen[s.party], true) {
            return Err(CryptoError::InconsistentShares(format!(
                "party {} appears twice",
                s.party
            )));
        }
        sum.add_assign(&s.value)?;
    }
    Ok(sum)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rng(seed: u64) -> SecureRng {
        SecureRng::insecure_from_seed_for_tests(seed)
    }

    proptest! {
        #[test]
        fn share_then_reconstruct_is_identity(rows in 0usize..9, cols in 0usize..9, parties in 2usize..7, seed: u64) {
            let secret = RingMatrix::random(rows, cols, &mut rng(seed));
            let shares = share(&secret, 16, parties, &mut rng(seed ^ 1)).unwrap();
            prop_assert_eq!(reconstruct(&shares).unwrap(), secret.clone());
            let seeded = share_seeded(&secret, 16, parties, &mut rng(seed ^ 2)).unwrap();
            let mut all = vec![seeded.explicit.clone()];
            for (i, s) in seeded.seeds.iter().enumerate() {
                all.push(Share::from_seed(s, i + 1, parties, 16, (rows, cols)).unwrap());
            }
            prop_assert_eq!(reconstruct(&all).unwrap(), secret);
        }

        #[test]
        fn local_linear_operations_commute_with_reconstruction(parties in 2usize..5, k: u64, seed: u64) {
            let a = RingMatrix::random(3, 4, &mut rng(seed));
            let b = RingMatrix::random(3, 4, &mut rng(seed ^ 9));
            let sa = share(&a, 0, parties, &mut rng(seed ^ 3)).unwrap();
            let sb = share(&b, 0, parties, &mut rng(seed ^ 4)).unwrap();
            let sum: Vec<_> = sa.iter().zip(&sb).map(|(x, y)| x.add(y).unwrap()).collect();
            prop_assert_eq!(reconstruct(&sum).unwrap(), a.add(&b).unwrap());
            let scaled: Vec<_> = sa.iter().map(|x| x.scalar_mul(k).add_public(&b).unwrap()).collect();
            prop_assert_eq!(reconstruct(&scaled).unwrap(), a.scalar_mul(k).add(&b).unwrap());
        }
    }

    #[test]
    fn inconsistent_share_sets_are_refused() {
        let secret = RingMatrix::random(2, 2, &mut rng(1));
        let shares = share(&secret, 16, 3, &mut rng(2)).unwrap();
        assert!(reconstruct(&shares[..2]).is_err(), "missing share");
        assert!(reconstruct(&[shares[0].clone(), shares[1].clone(), shares[1].clone()]).is_err());
        let other_scale = shares[2].with_value_and_scale(shares[2].value().clone(), 32);
        assert!(reconstruct(&[shares[0].clone(), shares[1].clone(), other_scale]).is_err());
        assert!(shares[0].add(&shares[1]).is_err(), "different parties");
        assert!(share(&secret, 16, 1, &mut rng(3)).is_err());
        assert!(Share::new(3, 3, 0, secret.clone()).is_err());
        assert!(reconstruct(&[]).is_err());
    }

    /// A chi-square test on the bytes of one share of a constant secret. For a uniform share the
    /// statistic has 255 degrees of freedom (mean 255, sd ≈ 22.6); 400 is beyond 6 sd. A
    /// generator that sets any bit with probability 0.51 instead of 0.5 fails it.
    fn chi_square_bytes(words: &[u64]) -> f64 {
        let mut counts = [0f64; 256];
        for w in words {
            for b in w.to_le_bytes() {
                counts[b as usize] += 1.0;
            }
        }
        let expected = words.len() as f64 * 8.0 / 256.0;
        counts
            .iter()
            .map(|c| (c - expected).powi(2) / expected)
            .sum()
    }

    #[test]
    fn shares_are_statistically_uniform() {
        let secret = RingMatrix::zeros(256, 256);
        let shares = share(&secret, 0, 3, &mut SecureRng::from_os_entropy()).unwrap();
        for s in &shares {
            let chi = chi_square_bytes(s.value().as_slice());
            assert!(chi < 400.0, "party {}: chi-square {chi}", s.party());
        }
        // The same statistic on a biased generator (each bit set with probability 0.51) fails,
        // so the test can tell.
        let mut r = rng(5);
        let biased: Vec<u64> = (0..65536)
            .map(|_| {
                (0..64).fold(0u64, |acc, bit| {
                    acc | (u64::from(rand::Rng::random_bool(&mut r, 0.51)) << bit)
                })
            })
            .collect();
        assert!(chi_square_bytes(&biased) > 400.0);
    }
}
