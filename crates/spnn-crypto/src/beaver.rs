//! Beaver matrix triples, truncation pairs, and the share-side algebra of a secure product.
//!
//! **Beaver product.** To multiply shared `X` (m×k) and `Y` (k×n), the parties use a triple
//! `(U, V, W = U·V)` from a dealer. Each party publishes `E_i = X_i − U_i` and `F_i = Y_i − V_i`
//! ([`beaver_masks`]); the opened `E = X − U`, `F = Y − V` are uniform and reveal nothing. Then
//!
//! ```text
//! X·Y = (E + U)(F + V) = E·F + E·V + U·F + W
//! Z_i = E·V_i + U_i·F + W_i  (+ E·F for party 0)          [beaver_product]
//! ```
//!
//! is a sharing of `X·Y`, exact in the ring. Party 0 folds `E·F` into `E·(V_0 + F)`, so every
//! party does two matrix products.
//!
//! **Truncation.** A product of two values at scale `2^f` is at scale `2^{2f}`; truncation brings
//! it back. Both methods below return `t` with `t − ⌊z / 2^f⌋ ∈ {0, 1}` (so `|t − z/2^f| < 1` unit
//! of `2^{−f}`) **except with probability at most `2^{ℓ+1−64}`** for `|z| < 2^ℓ`, in which case
//! the result is garbage. The fixed-point budget ([`crate::fixed::FixedPoint::product_bits`])
//! keeps `ℓ` small: at `ℓ = 40`, the failure probability is `2^{−23}` per element.
//!
//! - [`truncate_two_party`] (SecureML, two parties, no communication): party 0 shifts its share,
//!   party 1 shifts the negation of its share and negates back. Let `z_0` be uniform and
//!   `z_1 = z − z_0`. Unless `z_0` falls in a window of width `|z|` next to the wrap-around
//!   point, `⌊z_0/2^f⌋ − ⌊(z_0 − z)/2^f⌋ ∈ {⌊z/2^f⌋, ⌊z/2^f⌋ + 1}`; the window has probability
//!   `|z|/2^64 < 2^{ℓ−64}`.
//! - Dealer truncation pairs for any number of parties: the dealer shares a uniform `r` and
//!   `r' = r ≫ f` (arithmetic shift). The parties open `c = z + r` ([`truncation_mask`]; uniform,
//!   so it hides `z`) and set `t = (c ≫ f) − r'` ([`truncation_finish`], party 0 holds the public
//!   part). Because `c − r = z` exactly unless the signed sum `z + r` wraps (probability
//!   `|z|/2^64`), `⌊c/2^f⌋ − ⌊r/2^f⌋ ∈ {⌊z/2^f⌋, ⌊z/2^f⌋ + 1}`. One opening round.

use serde::{Deserialize, Serialize};

use crate::error::{CryptoError, Result};
use crate::ring::RingMatrix;
use crate::rng::SecureRng;
use crate::share::{Share, reconstruct, share};

/// One party's share of a Beaver matrix triple `(U, V, W = U·V)`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TripleShare {
    /// Share of the left mask `U` (m×k).
    pub u: Share,
    /// Share of the right mask `V` (k×n).
    pub v: Share,
    /// Share of the product `W = U·V` (m×n).
    pub w: Share,
}

impl TripleShare {
    /// The holder of this triple share.
    pub fn party(&self) -> usize {
        self.u.party()
    }

    /// Checks that the three shares belong to one party and have product-compatible shapes.
    pub fn validate(&self) -> Result<()> {
        let (m, k) = self.u.shape();
        let (k2, n) = self.v.shape();
        if k != k2 || self.w.shape() != (m, n) {
            return Err(CryptoError::ShapeMismatch {
                op: "beaver triple",
                left: (m, k),
                right: (k2, n),
            });
        }
        let ids = |s: &Share| (s.party(), s.parties());
        if ids(&self.u) != ids(&self.v) || ids(&self.u) != ids(&self.w) {
            return Err(CryptoError::InconsistentShares(
                "triple shares of different parties".into(),
            ));
        }
        Ok(())
    }
}

/// One party's share of a truncation pair `(r, r ≫ shift)`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TruncationPairShare {
    /// Share of the uniform mask `r`.
    pub r: Share,
    /// Share of `r ≫ shift` (arithmetic).
    pub r_shifted: Share,
    /// The number of bits the pair truncates by.
    pub shift: u32,
}

/// The trusted dealer of SPNN-SS: produces correlated randomness, never sees data.
#[derive(Debug)]
pub struct Dealer {
    rng: SecureRng,
}

impl Dealer {
    /// A dealer drawing from `rng` (use [`SecureRng::from_os_entropy`] outside tests).
    pub fn new(rng: SecureRng) -> Self {
        Self { rng }
    }

    /// A triple for an (m×k)·(k×n) product among `parties`. The masks are labelled with the
    /// scales of the operands they will hide (`lhs_frac`, `rhs_frac`); `W` with their sum.
    pub fn matrix_triple(
        &mut self,
        parties: usize,
        (m, k, n): (usize, usize, usize),
        (lhs_frac, rhs_frac): (u32, u32),
    ) -> Result<Vec<TripleShare>> {
        let u = RingMatrix::random(m, k, &mut self.rng);
        let v = RingMatrix::random(k, n, &mut self.rng);
        let w = u.matmul(&v)?;
        let us = share(&u, lhs_frac, parties, &mut self.rng)?;
        let vs = share(&v, rhs_frac, parties, &mut self.rng)?;
        let ws = share(&w, lhs_frac + rhs_frac, parties, &mut self.rng)?;
        Ok(us
            .into_iter()
            .zip(vs)
            .zip(ws)
            .map(|((u, v), w)| TripleShare { u, v, w })
            .collect())
    }

    /// Truncation pairs for a `rows × cols` matrix at scale `2^frac_bits`, truncating by `shift`.
    pub fn truncation_pairs(
        &mut self,
        parties: usize,
        (rows, cols): (usize, usize),
        frac_bits: u32,
        shift: u32,
    ) -> Result<Vec<TruncationPairShare>> {
        if shift >= 64 || shift > frac_bits {
            return Err(CryptoError::InvalidFixedPoint(format!(
                "cannot truncate a value at scale 2^{frac_bits} by {shift} bits"
            )));
        }
        let r = RingMatrix::random(rows, cols, &mut self.rng);
        let r_shifted = r.map(|x| ((x as i64) >> shift) as u64);
        let rs = share(&r, frac_bits, parties, &mut self.rng)?;
        let ts = share(&r_shifted, frac_bits - shift, parties, &mut self.rng)?;
        Ok(rs
            .into_iter()
            .zip(ts)
            .map(|(r, r_shifted)| TruncationPairShare {
                r,
                r_shifted,
                shift,
            })
            .collect())
    }
}

/// A party's contributions to the opened `E = X − U` and `F = Y − V`.
pub fn beaver_masks(x: &Share, y: &Share, t: &TripleShare) -> Result<(RingMatrix, RingMatrix)> {
    t.validate()?;
    if x.party() != t.party() || y.party() != t.party() {
        return Err(CryptoError::InconsistentShares(format!(
            "operands of party {}/{} with a triple share of party {}",
            x.party(),
            y.party(),
            t.party()
        )));
    }
    Ok((x.value().sub(t.u.value())?, y.value().sub(t.v.value())?))
}

/// Sums the parties' contributions to an opened value.
pub fn open(contributions: &[RingMatrix]) -> Result<RingMatrix> {
    let first = contributions
        .first()
        .ok_or_else(|| CryptoError::InconsistentShares("nothing to open".into()))?;
    let mut sum = first.clone();
    for c in &contributions[1..] {
        sum.add_assign(c)?;
    }
    Ok(sum)
}

/// The party's share of `X·Y` given the opened `E`, `F` (module docs). Exact in the ring.
pub fn beaver_product(e: &RingMatrix, f: &RingMatrix, t: &TripleShare) -> Result<Share> {
    t.validate()?;
    if e.shape() != t.u.shape() || f.shape() != t.v.shape() {
        return Err(CryptoError::ShapeMismatch {
            op: "beaver_product",
            left: e.shape(),
            right: f.shape(),
        });
    }
    let ev = if t.party() == 0 {
        e.matmul(&t.v.value().add(f)?)?
    } else {
        e.matmul(t.v.value())?
    };
    let mut z = ev;
    z.add_assign(&t.u.value().matmul(f)?)?;
    z.add_assign(t.w.value())?;
    Ok(t.w.with_value(z))
}

/// Two-party local truncation by `shift` bits (module docs). No communication.
pub fn truncate_two_party(z: &Share, shift: u32) -> Result<Share> {
    if z.parties() != 2 {
        return Err(CryptoError::WrongPartyCount {
            op: "truncate_two_party",
            expected: 2,
            found: z.parties(),
        });
    }
    if shift > z.frac_bits() || shift >= 64 {
        return Err(CryptoError::InvalidFixedPoint(format!(
            "cannot truncate a value at scale 2^{} by {shift} bits",
            z.frac_bits()
        )));
    }
    let value = if z.party() == 0 {
        z.value().map(|v| v >> shift)
    } else {
        z.value()
            .map(|v| (v.wrapping_neg() >> shift).wrapping_neg())
    };
    Ok(z.with_value_and_scale(value, z.frac_bits() - shift))
}

fn check_pair(z: &Share, pair: &TruncationPairShare) -> Result<()> {
    if (pair.r.party(), pair.r.parties(), pair.r.frac_bits())
        != (z.party(), z.parties(), z.frac_bits())
    {
        return Err(CryptoError::InconsistentShares(
            "truncation pair of another party, sharing or scale".into(),
        ));
    }
    Ok(())
}

/// A party's contribution to the opened `c = z + r` of dealer-pair truncation.
pub fn truncation_mask(z: &Share, pair: &TruncationPairShare) -> Result<RingMatrix> {
    check_pair(z, pair)?;
    z.value().add(pair.r.value())
}

/// The party's share of the truncated value, given the opened `c` (module docs).
pub fn truncation_finish(c: &RingMatrix, pair: &TruncationPairShare) -> Result<Share> {
    let neg_r = pair.r_shifted.value().neg();
    let value = if pair.r_shifted.party() == 0 {
        c.map(|v| ((v as i64) >> pair.shift) as u64).add(&neg_r)?
    } else if c.shape() != neg_r.shape() {
        return Err(CryptoError::ShapeMismatch {
            op: "truncation_finish",
            left: c.shape(),
            right: neg_r.shape(),
        });
    } else {
        neg_r
    };
    Ok(pair.r_shifted.with_value(value))
}

/// Reconstructs and checks a set of triple shares: `Σ W_i = (Σ U_i)(Σ V_i)`. For tests and
/// audits; a real party never holds all shares.
pub fn verify_triple(shares: &[TripleShare]) -> Result<bool> {
    let us: Vec<_> = shares.iter().map(|t| t.u.clone()).collect();
    let vs: Vec<_> = shares.iter().map(|t| t.v.clone()).collect();
    let ws: Vec<_> = shares.iter().map(|t| t.w.clone()).collect();
    Ok(reconstruct(&us)?.matmul(&reconstruct(&vs)?)? == reconstruct(&ws)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixed::FixedPoint;
    use crate::share::reconstruct;
    use proptest::prelude::*;
    use rand::Rng;

    fn rng(seed: u64) -> SecureRng {
        SecureRng::insecure_from_seed_for_tests(seed)
    }

    /// Runs the whole Beaver product among `parties` in one place, as the protocol layer would.
    fn secure_matmul(xs: &[Share], ys: &[Share], triples: &[TripleShare]) -> Vec<Share> {
        let masks: Vec<_> = xs
            .iter()
            .zip(ys)
            .zip(triples)
            .map(|((x, y), t)| beaver_masks(x, y, t).unwrap())
            .collect();
        let e = open(&masks.iter().map(|m| m.0.clone()).collect::<Vec<_>>()).unwrap();
        let f = open(&masks.iter().map(|m| m.1.clone()).collect::<Vec<_>>()).unwrap();
        triples
            .iter()
            .map(|t| beaver_product(&e, &f, t).unwrap())
            .collect()
    }

    proptest! {
        #[test]
        fn beaver_product_equals_ring_product_exactly(
            m in 1usize..8, k in 1usize..12, n in 1usize..8, parties in 2usize..5, seed: u64
        ) {
            let x = RingMatrix::random(m, k, &mut rng(seed));
            let y = RingMatrix::random(k, n, &mut rng(seed ^ 1));
            let xs = share(&x, 16, parties, &mut rng(seed ^ 2)).unwrap();
            let ys = share(&y, 16, parties, &mut rng(seed ^ 3)).unwrap();
            let triples = Dealer::new(rng(seed ^ 4)).matrix_triple(parties, (m, k, n), (16, 16)).unwrap();
            prop_assert!(verify_triple(&triples).unwrap());
            let zs = secure_matmul(&xs, &ys, &triples);
            prop_assert_eq!(zs[0].frac_bits(), 32);
            prop_assert_eq!(reconstruct(&zs).unwrap(), x.matmul(&y).unwrap());
        }
    }

    #[test]
    fn mismatched_triples_are_errors() {
        let mut d = Dealer::new(rng(1));
        let t = d.matrix_triple(2, (2, 3, 4), (16, 16)).unwrap();
        let x = share(&RingMatrix::zeros(2, 3), 16, 2, &mut rng(2)).unwrap();
        let y = share(&RingMatrix::zeros(3, 5), 16, 2, &mut rng(3)).unwrap();
        assert!(
            beaver_masks(&x[0], &y[0], &t[0]).is_err(),
            "wrong shape of Y"
        );
        let y = share(&RingMatrix::zeros(3, 4), 16, 2, &mut rng(3)).unwrap();
        assert!(beaver_masks(&x[1], &y[1], &t[0]).is_err(), "wrong party");
        let bad = TripleShare {
            w: t[1].w.clone(),
            ..t[0].clone()
        };
        assert!(bad.validate().is_err());
        assert!(beaver_product(&RingMatrix::zeros(3, 3), &RingMatrix::zeros(3, 4), &t[0]).is_err());
    }

    /// Values `|z| < 2^bits` at scale 2^32, shared among `parties`.
    fn random_scaled(n: usize, bits: u32, seed: u64) -> Vec<i64> {
        let mut r = rng(seed);
        (0..n)
            .map(|_| r.random_range(-(1i64 << bits)..(1i64 << bits)))
            .collect()
    }

    /// Measures over 10^5 samples how often each truncation misses `{⌊z/2^f⌋, ⌊z/2^f⌋ + 1}`.
    fn failures(bits: u32, parties: usize, seed: u64) -> (usize, usize) {
        const N: usize = 100_000;
        let f = 16;
        let zs = random_scaled(N, bits, seed);
        let z = RingMatrix::from_vec(1, N, zs.iter().map(|&v| v as u64).collect()).unwrap();
        let shares = share(&z, 2 * f, parties, &mut SecureRng::from_os_entropy()).unwrap();
        let truncated = if parties == 2 {
            shares
                .iter()
                .map(|s| truncate_two_party(s, f).unwrap())
                .collect::<Vec<_>>()
        } else {
            let pairs = Dealer::new(SecureRng::from_os_entropy())
                .truncation_pairs(parties, (1, N), 2 * f, f)
                .unwrap();
            let masks: Vec<_> = shares
                .iter()
                .zip(&pairs)
                .map(|(s, p)| truncation_mask(s, p).unwrap())
                .collect();
            let c = open(&masks).unwrap();
            pairs
                .iter()
                .map(|p| truncation_finish(&c, p).unwrap())
                .collect()
        };
        assert_eq!(truncated[0].frac_bits(), f);
        let t = reconstruct(&truncated).unwrap();
        let bad = zs
            .iter()
            .zip(t.as_slice())
            .filter(|&(&z, &t)| !matches!((t as i64) - (z >> f), 0 | 1))
            .count();
        (bad, N)
    }

    #[test]
    fn truncation_error_is_at_most_one_unit_for_budgeted_values() {
        // ℓ = 40: the failure probability bound is 2^-23, so 10^5 samples see none.
        for parties in [2, 3, 4] {
            let (bad, n) = failures(40, parties, parties as u64);
            assert_eq!(bad, 0, "{parties} parties: {bad} of {n} outside {{0, +1}}");
        }
        // The bound in fixed-point terms: a decoded truncated product is within one unit.
        let fp = FixedPoint::default();
        assert!(1.0 / fp.scale() <= fp.matmul_error_bound(1, 0.0, 0.0));
    }

    #[test]
    fn truncation_failure_rate_stays_below_the_derived_bound() {
        // ℓ = 60: the derived bound is 2^(ℓ+1−64) = 1/8; for |z| uniform below 2^60 the exact
        // rate is E|z|/2^64 = 1/32. The test shows failures exist at this size (so the bound is
        // about something real) and that their rate respects the bound.
        for parties in [2, 3] {
            let (bad, n) = failures(60, parties, 7 + parties as u64);
            let rate = bad as f64 / n as f64;
            assert!(bad > 0, "{parties} parties: no failures at ℓ = 60");
            assert!(
                rate <= 1.0 / 8.0,
                "{parties} parties: rate {rate} above 2^-3"
            );
            assert!(
                (rate - 1.0 / 32.0).abs() < 0.005,
                "{parties} parties: rate {rate} not ≈ 1/32"
            );
        }
    }

    #[test]
    fn truncation_rejects_wrong_inputs() {
        let z = share(&RingMatrix::zeros(1, 4), 32, 3, &mut rng(1)).unwrap();
        assert!(truncate_two_party(&z[0], 16).is_err(), "three parties");
        let z2 = share(&RingMatrix::zeros(1, 4), 8, 2, &mut rng(1)).unwrap();
        assert!(
            truncate_two_party(&z2[0], 16).is_err(),
            "shift beyond scale"
        );
        let pairs = Dealer::new(rng(2))
            .truncation_pairs(3, (1, 4), 32, 16)
            .unwrap();
        assert!(
            truncation_mask(&z[0], &pairs[1]).is_err(),
            "pair of another party"
        );
        assert!(
            Dealer::new(rng(2))
                .truncation_pairs(3, (1, 4), 8, 16)
                .is_err()
        );
    }
}
