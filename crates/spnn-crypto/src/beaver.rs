//! Beaver matrix triples, truncation triples, and the share-side algebra of a secure product.
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
//! **Truncation** (exact, dealer-assisted, any number of parties). A product of two values at
//! scale `2^f` is at scale `2^{2f}`; truncation by `s` bits brings it back. The input must be
//! bounded by a **public** `|z| < 2^ℓ` with `s ≤ ℓ ≤ 62` ([`MAX_TRUNCATION_BITS`]); the protocol
//! layer derives `ℓ` from clipped inputs and refuses to run when it cannot. The dealer draws a
//! uniform `r ∈ Z_2^64` and shares three values ([`truncation_material`]):
//!
//! ```text
//! r,    r_h = ⌊r / 2^s⌋ (logical shift),    b = [r ≥ 2^64 − 2^{ℓ+1}]   (the "danger" bit)
//! ```
//!
//! The parties open `c = z + 2^ℓ + r` ([`truncation_open`]; uniform because `r` is, so it
//! reveals nothing) and set ([`truncation_finish`])
//!
//! ```text
//! t = ⌊c / 2^s⌋ − r_h + β·b·2^{64−s} − 2^{ℓ−s},    β = [c < 2^{ℓ+1}]  (public)
//! ```
//!
//! **Why it is exact.** `z' = z + 2^ℓ ∈ (0, 2^{ℓ+1})`, so `z' + r` wraps past `2^64` at most
//! once, and only if `r` lies in the top `2^{ℓ+1}` of the ring (`b = 1`). When `b = 1`, a wrap
//! leaves `c < z' < 2^{ℓ+1}` and no wrap leaves `c ≥ r ≥ 2^64 − 2^{ℓ+1} ≥ 2^{ℓ+1}` (as
//! `ℓ ≤ 62`), so the wrap bit is `w = b·β`, linear in the shares of `b` because `β` is public.
//! Then `z' = c − r + w·2^64` over the integers, and splitting `c` and `r` at bit `s` gives
//! `⌊z'/2^s⌋ = ⌊c/2^s⌋ − r_h + w·2^{64−s} + ⌊(c mod 2^s − r mod 2^s)/2^s⌋`, whose last term is
//! `−1` or `0`. Hence `t − ⌊z/2^s⌋ ∈ {0, 1}` **always** — no failure probability, for any `r`
//! — as long as the bound `|z| < 2^ℓ` holds. (The SecureML local truncation and the plain
//! `(r, r ≫ s)` pairs this replaces fail with probability `≈ |z|/2^63` per element, which over
//! the `2^30` truncations of a long run is a certainty.)

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

/// Largest `ℓ` for which [`truncation_finish`] is exact (module docs).
pub const MAX_TRUNCATION_BITS: u32 = 62;

/// One party's share of a truncation triple `(r, ⌊r/2^s⌋, b)` (module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TruncationShare {
    /// Share of the uniform mask `r`.
    pub r: Share,
    /// Share of `⌊r / 2^shift⌋` (logical shift of the unsigned `r`).
    pub r_high: Share,
    /// Share of the danger bit `b = [r ≥ 2^64 − 2^{bound_bits+1}]`.
    pub danger: Share,
    /// The number of bits the triple truncates by.
    pub shift: u32,
    /// The public bound: the value truncated satisfies `|z| < 2^bound_bits`.
    pub bound_bits: u32,
}

fn check_truncation(shift: u32, bound_bits: u32) -> Result<()> {
    if shift == 0 || shift > bound_bits || bound_bits > MAX_TRUNCATION_BITS {
        return Err(CryptoError::InvalidFixedPoint(format!(
            "truncating by {shift} bits a value below 2^{bound_bits}: need 1 ≤ shift ≤ bound \
             ≤ {MAX_TRUNCATION_BITS}"
        )));
    }
    Ok(())
}

/// The three values a dealer shares for one truncation by `shift` of values below
/// `2^bound_bits`, for the mask `r`: `[r, ⌊r/2^shift⌋, b]` (module docs).
pub fn truncation_material(r: RingMatrix, shift: u32, bound_bits: u32) -> Result<[RingMatrix; 3]> {
    check_truncation(shift, bound_bits)?;
    let danger_from = 0u64.wrapping_sub(1u64 << (bound_bits + 1));
    let high = r.map(|x| x >> shift);
    let danger = r.map(|x| u64::from(x >= danger_from));
    Ok([r, high, danger])
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

    /// Truncation triples for a `rows × cols` matrix at scale `2^frac_bits`, truncating by
    /// `shift` values below `2^bound_bits`.
    pub fn truncation_triples(
        &mut self,
        parties: usize,
        (rows, cols): (usize, usize),
        frac_bits: u32,
        shift: u32,
        bound_bits: u32,
    ) -> Result<Vec<TruncationShare>> {
        if shift > frac_bits {
            return Err(CryptoError::InvalidFixedPoint(format!(
                "cannot truncate a value at scale 2^{frac_bits} by {shift} bits"
            )));
        }
        let [r, high, danger] = truncation_material(
            RingMatrix::random(rows, cols, &mut self.rng),
            shift,
            bound_bits,
        )?;
        let rs = share(&r, frac_bits, parties, &mut self.rng)?;
        let hs = share(&high, frac_bits - shift, parties, &mut self.rng)?;
        let ds = share(&danger, 0, parties, &mut self.rng)?;
        Ok(rs
            .into_iter()
            .zip(hs)
            .zip(ds)
            .map(|((r, r_high), danger)| TruncationShare {
                r,
                r_high,
                danger,
                shift,
                bound_bits,
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

/// A party's share of the element-wise product `x ∘ y` from its share `(a, b, c)` of an
/// element-wise triple `c = a ∘ b` and the opened `e = x − a`, `f = y − b`: the matrix-product
/// algebra of the module docs entry by entry, `c + e∘b + a∘f (+ e∘f for party 0)`. Exact in the
/// ring; the result is at the sum of the operands' scales.
pub fn hadamard_product(
    e: &RingMatrix,
    f: &RingMatrix,
    [a, b, c]: [&RingMatrix; 3],
    first: bool,
) -> Result<RingMatrix> {
    let mut z = c.add(&e.hadamard(b)?)?;
    z.add_assign(&a.hadamard(f)?)?;
    if first {
        z.add_assign(&e.hadamard(f)?)?;
    }
    Ok(z)
}

fn check_triple(z: &Share, t: &TruncationShare) -> Result<()> {
    check_truncation(t.shift, t.bound_bits)?;
    let ids = |s: &Share| (s.party(), s.parties());
    if (ids(&t.r), t.r.frac_bits()) != (ids(z), z.frac_bits())
        || ids(&t.r_high) != ids(z)
        || ids(&t.danger) != ids(z)
    {
        return Err(CryptoError::InconsistentShares(
            "truncation triple of another party, sharing or scale".into(),
        ));
    }
    if t.r.shape() != z.shape() || t.r_high.shape() != z.shape() || t.danger.shape() != z.shape() {
        return Err(CryptoError::ShapeMismatch {
            op: "truncation",
            left: z.shape(),
            right: t.r.shape(),
        });
    }
    Ok(())
}

/// A party's contribution to the opened `c = z + 2^ℓ + r` (module docs): uniform, so it may be
/// sent to every other party.
pub fn truncation_open(z: &Share, t: &TruncationShare) -> Result<RingMatrix> {
    check_triple(z, t)?;
    let mut c = z.value().add(t.r.value())?;
    if z.party() == 0 {
        let offset = 1u64 << t.bound_bits;
        c = c.map(|v| v.wrapping_add(offset));
    }
    Ok(c)
}

/// The party's share of `⌊z / 2^shift⌋` (or one more), given the opened `c` (module docs).
pub fn truncation_finish(c: &RingMatrix, t: &TruncationShare) -> Result<Share> {
    check_truncation(t.shift, t.bound_bits)?;
    if c.shape() != t.r_high.shape() || c.shape() != t.danger.shape() {
        return Err(CryptoError::ShapeMismatch {
            op: "truncation_finish",
            left: c.shape(),
            right: t.r_high.shape(),
        });
    }
    let (s, low) = (t.shift, 1u64 << (t.bound_bits + 1));
    let wrap_unit = 1u64 << (64 - s);
    let first = t.r_high.party() == 0;
    let offset = 1u64 << (t.bound_bits - s);
    let value: Vec<u64> = c
        .as_slice()
        .iter()
        .zip(t.r_high.value().as_slice())
        .zip(t.danger.value().as_slice())
        .map(|((&c, &rh), &b)| {
            let mut v = rh.wrapping_neg();
            if c < low {
                v = v.wrapping_add(b.wrapping_mul(wrap_unit));
            }
            if first {
                v = v.wrapping_add(c >> s).wrapping_sub(offset);
            }
            v
        })
        .collect();
    let (rows, cols) = c.shape();
    Ok(t.r_high
        .with_value(RingMatrix::from_vec(rows, cols, value)?))
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
        fn hadamard_product_equals_ring_product_exactly(
            rows in 1usize..5, cols in 1usize..5, parties in 2usize..5, seed: u64
        ) {
            let mut g = rng(seed);
            let x = RingMatrix::random(rows, cols, &mut g);
            let y = RingMatrix::random(rows, cols, &mut g);
            let (a, b) = (RingMatrix::random(rows, cols, &mut g), RingMatrix::random(rows, cols, &mut g));
            let c = a.hadamard(&b).unwrap();
            let split = |v: &RingMatrix, g: &mut SecureRng| {
                share(v, 16, parties, g).unwrap().into_iter().map(Share::into_value).collect::<Vec<_>>()
            };
            let (xs, ys) = (split(&x, &mut g), split(&y, &mut g));
            let (as_, bs, cs) = (split(&a, &mut g), split(&b, &mut g), split(&c, &mut g));
            let e = open(&xs.iter().zip(&as_).map(|(x, a)| x.sub(a).unwrap()).collect::<Vec<_>>()).unwrap();
            let f = open(&ys.iter().zip(&bs).map(|(y, b)| y.sub(b).unwrap()).collect::<Vec<_>>()).unwrap();
            let z: Vec<_> = (0..parties)
                .map(|i| hadamard_product(&e, &f, [&as_[i], &bs[i], &cs[i]], i == 0).unwrap())
                .collect();
            prop_assert_eq!(open(&z).unwrap(), x.hadamard(&y).unwrap());
            // Without party 0's e∘f term the sum is off: the term is needed.
            let mut wrong = z.clone();
            wrong[0] = hadamard_product(&e, &f, [&as_[0], &bs[0], &cs[0]], false).unwrap();
            prop_assert_eq!(open(&wrong).unwrap().add(&e.hadamard(&f).unwrap()).unwrap(), x.hadamard(&y).unwrap());
        }

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

    /// Truncates `zs` (each `|z| < 2^bound`, at scale 2^32) by 16 bits among `parties` with
    /// dealer triples whose masks are `r`; returns the reconstructed results.
    fn truncate_all(zs: &[i64], r: RingMatrix, parties: usize, bound: u32) -> Vec<i64> {
        let n = zs.len();
        let z = RingMatrix::from_vec(1, n, zs.iter().map(|&v| v as u64).collect()).unwrap();
        let mut rng = SecureRng::from_os_entropy();
        let shares = share(&z, 32, parties, &mut rng).unwrap();
        let [r, high, danger] = truncation_material(r, 16, bound).unwrap();
        let triples: Vec<TruncationShare> = share(&r, 32, parties, &mut rng)
            .unwrap()
            .into_iter()
            .zip(share(&high, 16, parties, &mut rng).unwrap())
            .zip(share(&danger, 0, parties, &mut rng).unwrap())
            .map(|((r, r_high), danger)| TruncationShare {
                r,
                r_high,
                danger,
                shift: 16,
                bound_bits: bound,
            })
            .collect();
        let opened: Vec<_> = shares
            .iter()
            .zip(&triples)
            .map(|(s, t)| truncation_open(s, t).unwrap())
            .collect();
        let c = open(&opened).unwrap();
        let t: Vec<Share> = triples
            .iter()
            .map(|t| truncation_finish(&c, t).unwrap())
            .collect();
        assert_eq!(t[0].frac_bits(), 16);
        reconstruct(&t)
            .unwrap()
            .as_slice()
            .iter()
            .map(|&v| v as i64)
            .collect()
    }

    fn uniform_below(n: usize, bits: u32, seed: u64) -> Vec<i64> {
        let mut r = rng(seed);
        let m = 1i64 << bits;
        (0..n).map(|_| r.random_range(-m + 1..m)).collect()
    }

    fn misses(zs: &[i64], ts: &[i64]) -> usize {
        zs.iter()
            .zip(ts)
            .filter(|&(&z, &t)| !matches!(t - (z >> 16), 0 | 1))
            .count()
    }

    #[test]
    fn truncation_is_exact_at_the_edge_of_the_ring() {
        // ℓ = 60, where the replaced SecureML truncation failed for 1 element in 32: the exact
        // triple never misses, with uniform masks and with every mask in the danger zone.
        const N: usize = 50_000;
        for parties in [2, 3, 4] {
            let zs = uniform_below(N, 60, parties as u64);
            let uniform = RingMatrix::random(1, N, &mut rng(99));
            let ts = truncate_all(&zs, uniform, parties, 60);
            assert_eq!(misses(&zs, &ts), 0, "{parties} parties, uniform masks");
            // Masks in [2^64 − 2^61, 2^64): every element has b = 1 and half of them wrap.
            let mut r = rng(100 + parties as u64);
            let danger = RingMatrix::from_vec(
                1,
                N,
                (0..N)
                    .map(|_| 0u64.wrapping_sub(1 + r.random_range(0..1u64 << 61)))
                    .collect(),
            )
            .unwrap();
            let ts = truncate_all(&zs, danger, parties, 60);
            assert_eq!(misses(&zs, &ts), 0, "{parties} parties, danger-zone masks");
        }
        // Extreme values at the bound, and the largest supported bound.
        let m = (1i64 << 62) - 1;
        let zs = vec![m, -m, 0, -1, 1, m >> 1, -(m >> 1)];
        for r0 in [0u64, 1, u64::MAX, u64::MAX - (1 << 63), 1 << 63] {
            let r = RingMatrix::from_vec(1, zs.len(), vec![r0; zs.len()]).unwrap();
            let ts = truncate_all(&zs, r, 2, 62);
            assert_eq!(misses(&zs, &ts), 0, "mask {r0:#x}");
        }
    }

    #[test]
    fn the_bound_is_what_makes_it_exact() {
        // A value beyond the stated bound falls outside what the danger bit accounts for: the
        // public bound is a precondition, which is why the protocol layer clips its inputs.
        let zs = vec![1i64 << 50; 64];
        let r = RingMatrix::from_vec(1, 64, vec![0u64.wrapping_sub(1 << 45); 64]).unwrap();
        let ts = truncate_all(&zs, r, 2, 40);
        assert_eq!(misses(&zs, &ts), 64);
    }

    #[test]
    fn the_opened_value_is_the_mask_shifted() {
        // c − r − 2^ℓ reconstructs z: the opening hides z exactly as well as r is uniform.
        let mut d = Dealer::new(rng(5));
        let triples = d.truncation_triples(3, (2, 2), 32, 16, 40).unwrap();
        let z = RingMatrix::from_vec(2, 2, vec![5, (-7i64) as u64, 1 << 39, 0]).unwrap();
        let zs = share(&z, 32, 3, &mut rng(6)).unwrap();
        let c = open(
            &zs.iter()
                .zip(&triples)
                .map(|(s, t)| truncation_open(s, t).unwrap())
                .collect::<Vec<_>>(),
        )
        .unwrap();
        let r = reconstruct(&triples.iter().map(|t| t.r.clone()).collect::<Vec<_>>()).unwrap();
        let back = c.sub(&r).unwrap().map(|v| v.wrapping_sub(1 << 40));
        assert_eq!(back, z);
    }

    #[test]
    fn truncation_rejects_wrong_inputs() {
        let z = share(&RingMatrix::zeros(1, 4), 32, 3, &mut rng(1)).unwrap();
        let mut d = Dealer::new(rng(2));
        let triples = d.truncation_triples(3, (1, 4), 32, 16, 40).unwrap();
        assert!(
            truncation_open(&z[0], &triples[1]).is_err(),
            "triple of another party"
        );
        let wide = share(&RingMatrix::zeros(1, 5), 32, 3, &mut rng(1)).unwrap();
        assert!(truncation_open(&wide[0], &triples[0]).is_err(), "shape");
        assert!(
            d.truncation_triples(3, (1, 4), 8, 16, 40).is_err(),
            "shift > scale"
        );
        assert!(
            d.truncation_triples(3, (1, 4), 32, 16, 63).is_err(),
            "bound > 62"
        );
        assert!(
            d.truncation_triples(3, (1, 4), 32, 16, 8).is_err(),
            "bound < shift"
        );
        assert!(truncation_finish(&RingMatrix::zeros(2, 2), &triples[0]).is_err());
    }
}
