//! Secure comparison with zero: shares of the bit `[x ≥ 0]` from additive shares of `x`.
//!
//! **Material.** The dealer draws a uniform `r ∈ Z_2^64` and shares `r` and its low 63 bits
//! `r_0 … r_62`, each bit as an additive sharing of 0 or 1 in the ring
//! ([`comparison_material`]).
//!
//! **Opening.** With the public bound `|x| < 2^62` ([`COMPARISON_BITS`]), `z = x + 2^62` lies in
//! `(0, 2^63)`, so `[x ≥ 0]` is bit 62 of `z`. The parties open `c = z + r` ([`comparison_open`]:
//! uniform because `r` is, so it reveals nothing, like a Beaver opening).
//!
//! **The borrow chain** ([`non_negative`]). `z = c − r` in the ring, and bit 62 of `z` is
//! `c_62 ⊕ r_62 ⊕ β`, with `β = [c mod 2^62 < r mod 2^62]` the borrow into bit 62. With `c`
//! public, the borrow into bit `i + 1` is
//!
//! ```text
//! β_1 = (1 − c_0)·r_0,     β_{i+1} = c_i ? r_i·β_i : r_i + β_i − r_i·β_i
//! ```
//!
//! (bit `i` of `c` below bit `i` of `r`, or equal and a borrow from below), so every step is one
//! element-wise product `r_i·β_i` of two shared bits and a local selection by the public bit
//! `c_i`; the last step, `r_62 ⊕ β = r_62 + β − 2·r_62·β`, one more. A comparison costs
//! [`COMPARISON_PRODUCTS`] products in as many rounds, every value a bit (no truncation), and is
//! **exact**: no failure probability, for any `r`, as long as `|x| < 2^62`.
//!
//! **What a party sees.** The opened `c`, uniform, and the openings of the products, masked by
//! their triples like any Beaver product: the result stays shared.

use crate::error::{CryptoError, Result};
use crate::ring::RingMatrix;
use crate::share::Share;

/// The public bound of a comparison's input: `|x| < 2^62`.
pub const COMPARISON_BITS: u32 = 62;

/// Element-wise products of one comparison (module docs): 61 borrow steps and the final XOR.
pub const COMPARISON_PRODUCTS: usize = COMPARISON_BITS as usize;

/// Matrices of one comparison's material: `r` and its bits `r_0 … r_62`.
pub const COMPARISON_MATRICES: usize = COMPARISON_BITS as usize + 2;

/// The values a dealer shares for one comparison with mask `r`: `[r, r_0, …, r_62]`, the bits
/// as ring values 0 or 1 (module docs).
pub fn comparison_material(r: RingMatrix) -> Vec<RingMatrix> {
    let mut out = Vec::with_capacity(COMPARISON_MATRICES);
    out.extend((0..=COMPARISON_BITS).map(|i| r.map(|v| (v >> i) & 1)));
    out.insert(0, r);
    out
}

/// A party's contribution to the opened `c = x + 2^62 + r` (module docs): uniform, so it may
/// be sent to every other party. `r` is the party's share of the mask, at `x`'s scale.
pub fn comparison_open(x: &Share, r: &Share) -> Result<RingMatrix> {
    let mut c = x.value().add(r.value())?;
    if x.party() == 0 {
        c = c.map(|v| v.wrapping_add(1 << COMPARISON_BITS));
    }
    Ok(c)
}

/// `s + p − 2·p·s` for a shared bit `s` and public bits `p` (0 or 1 per element): `s ⊕ p`,
/// local (party 0 adds `p`).
fn xor_public(s: &Share, p: &RingMatrix) -> Result<Share> {
    let first = s.party() == 0;
    let value: Vec<u64> = s
        .value()
        .as_slice()
        .iter()
        .zip(p.as_slice())
        .map(|(&v, &bit)| match (bit, first) {
            (0, _) => v,
            (_, true) => 1u64.wrapping_sub(v),
            (_, false) => v.wrapping_neg(),
        })
        .collect();
    Ok(s.with_value(RingMatrix::from_vec(p.rows(), p.cols(), value)?))
}

/// This party's share (at scale 1, a ring value 0 or 1) of `[x ≥ 0]` for every element, given
/// the opened `c` ([`comparison_open`]), its shares `bits` of `r_0 … r_62` and `mul`, an
/// element-wise product of two shared matrices (a Beaver product among the parties, one
/// round each). Every party calls it with the same `c`.
pub fn non_negative<E: From<CryptoError>>(
    c: &RingMatrix,
    bits: &[Share],
    mut mul: impl FnMut(&Share, &Share) -> std::result::Result<Share, E>,
) -> std::result::Result<Share, E> {
    if bits.len() != COMPARISON_BITS as usize + 1
        || bits
            .iter()
            .any(|b| b.shape() != c.shape() || b.frac_bits() != 0)
    {
        return Err(CryptoError::InconsistentShares(format!(
            "a comparison needs {} bit shares of shape {:?} at scale 1",
            COMPARISON_BITS + 1,
            c.shape()
        ))
        .into());
    }
    let bit = |i: u32| c.map(|v| (v >> i) & 1);
    // β_1 = (1 − c_0)·r_0: r_0 where c_0 = 0, zero where c_0 = 1.
    let c0 = bit(0);
    let mut beta = bits[0].with_value(bits[0].value().hadamard(&c0.map(|b| 1 - b))?);
    for i in 1..COMPARISON_BITS {
        let r = &bits[i as usize];
        let product = mul(r, &beta)?;
        // c_i = 1: r_i·β_i;  c_i = 0: r_i + β_i − r_i·β_i.
        let either = r.add(&beta)?.sub(&product)?;
        let ci = bit(i);
        let value: Vec<u64> = product
            .value()
            .as_slice()
            .iter()
            .zip(either.value().as_slice())
            .zip(ci.as_slice())
            .map(|((&p, &e), &b)| if b == 1 { p } else { e })
            .collect();
        beta = beta.with_value(RingMatrix::from_vec(c.rows(), c.cols(), value)?);
    }
    let top = &bits[COMPARISON_BITS as usize];
    let product = mul(top, &beta)?;
    let r_xor_beta = top.add(&beta)?.sub(&product.scalar_mul(2))?;
    Ok(xor_public(&r_xor_beta, &bit(COMPARISON_BITS))?)
}

#[cfg(test)]
mod tests {
    use std::sync::{Barrier, Mutex};

    use super::*;
    use crate::rng::SecureRng;
    use crate::share::{reconstruct, share};

    /// Runs one comparison among `k` parties on threads, each product through a board every
    /// party posts its two factors to (the test's stand-in for a Beaver product: the product
    /// is reconstructed and party 0 holds it). Returns the reconstructed result.
    fn compare(x: &RingMatrix, k: usize, seed: u64) -> RingMatrix {
        let mut rng = SecureRng::insecure_from_seed_for_tests(seed);
        let (rows, cols) = x.shape();
        let material = comparison_material(RingMatrix::random(rows, cols, &mut rng));
        let shared: Vec<Vec<Share>> = material
            .iter()
            .map(|m| share(m, 0, k, &mut rng).unwrap())
            .collect();
        let xs = share(x, 0, k, &mut rng).unwrap();
        let board: Mutex<Vec<Option<(Share, Share)>>> = Mutex::new(vec![None; k]);
        let barrier = Barrier::new(k);
        let opened: Mutex<Vec<RingMatrix>> = Mutex::new(Vec::new());
        let results: Vec<Share> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..k)
                .map(|i| {
                    let (board, barrier, opened) = (&board, &barrier, &opened);
                    let mine: Vec<Share> = shared.iter().map(|s| s[i].clone()).collect();
                    let x = xs[i].clone();
                    scope.spawn(move || {
                        opened
                            .lock()
                            .unwrap()
                            .push(comparison_open(&x, &mine[0]).unwrap());
                        barrier.wait();
                        let c = opened
                            .lock()
                            .unwrap()
                            .iter()
                            .fold(RingMatrix::zeros(rows, cols), |a, b| a.add(b).unwrap());
                        let mul = |a: &Share, b: &Share| -> Result<Share> {
                            board.lock().unwrap()[i] = Some((a.clone(), b.clone()));
                            barrier.wait();
                            let posted = board.lock().unwrap().clone();
                            barrier.wait();
                            let (xa, xb): (Vec<Share>, Vec<Share>) =
                                posted.into_iter().map(Option::unwrap).unzip();
                            let p = reconstruct(&xa)?.hadamard(&reconstruct(&xb)?)?;
                            let mine = if i == 0 {
                                p
                            } else {
                                RingMatrix::zeros(rows, cols)
                            };
                            Ok(a.with_value_and_scale(mine, a.frac_bits() + b.frac_bits()))
                        };
                        non_negative(&c, &mine[1..], mul).unwrap()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        reconstruct(&results).unwrap()
    }

    #[test]
    fn the_sign_is_exact_at_the_edges_and_at_random() {
        let limit = (1i64 << COMPARISON_BITS) - 1;
        let mut values = vec![0, 1, -1, 2, -2, limit, -limit, 1 << 40, -(1 << 40), 12345];
        let mut rng = SecureRng::insecure_from_seed_for_tests(7);
        for _ in 0..22 {
            let v = RingMatrix::random(1, 1, &mut rng).as_slice()[0] as i64;
            values.push(v >> (64 - COMPARISON_BITS));
        }
        let x = RingMatrix::from_vec(4, 8, values.iter().map(|&v| v as u64).collect()).unwrap();
        for (k, seed) in [(2, 1), (3, 2), (2, 3), (4, 4)] {
            let got = compare(&x, k, seed);
            for (v, b) in values.iter().zip(got.as_slice()) {
                assert_eq!(*b, u64::from(*v >= 0), "x = {v}, k = {k}");
            }
        }
    }

    #[test]
    fn the_material_is_the_mask_and_its_bits() {
        let mut rng = SecureRng::insecure_from_seed_for_tests(5);
        let r = RingMatrix::random(2, 3, &mut rng);
        let m = comparison_material(r.clone());
        assert_eq!(m.len(), COMPARISON_MATRICES);
        let rebuilt = m[1..]
            .iter()
            .enumerate()
            .fold(RingMatrix::zeros(2, 3), |acc, (i, b)| {
                acc.add(&b.scalar_mul(1 << i)).unwrap()
            });
        assert_eq!(rebuilt, r.map(|v| v & ((1 << 63) - 1)));
        assert_eq!(m[0], r);
    }

    #[test]
    fn wrong_material_is_refused() {
        let c = RingMatrix::zeros(1, 2);
        let bit = Share::new(0, 2, 0, RingMatrix::zeros(1, 2)).unwrap();
        let mul = |a: &Share, _: &Share| -> Result<Share> { Ok(a.clone()) };
        assert!(non_negative(&c, &vec![bit.clone(); 10], mul).is_err());
        let scaled = bit.with_value_and_scale(RingMatrix::zeros(1, 2), 16);
        assert!(non_negative(&c, &vec![scaled; 63], mul).is_err());
    }
}
