//! Dealing a list of matrices to the holders: holder 0 receives its shares in full, every other
//! holder a 32-byte seed from which it derives its shares itself.
//!
//! For true values `T_1 … T_n`, holder `i ≥ 1` derives `S_i,1 … S_i,n` from its seed (one
//! ChaCha20 stream, matrices in order, row-major), and holder 0 receives
//! `T_j − Σ_{i≥1} S_i,j`. The dealer's traffic is one full share set plus `32·(k−1)` bytes.

use spnn_crypto::{RingMatrix, SecretSeed, SecureRng};

use crate::error::Result;

/// Shapes of the matrices of a bundle, in order.
pub(crate) type Shapes = Vec<(usize, usize)>;

/// Derives the matrices of `shapes` from `seed` (what holder `i ≥ 1` does).
pub(crate) fn derive(seed: &SecretSeed, shapes: &[(usize, usize)]) -> Vec<RingMatrix> {
    let mut rng = SecureRng::from_secret_seed(seed);
    shapes
        .iter()
        .map(|&(r, c)| RingMatrix::random(r, c, &mut rng))
        .collect()
}

/// Derives one `rows × cols` matrix of values uniform in `[0, 2^bits)` from `seed`: a holder's
/// mask for a sharing over the integers (module [`spnn_crypto::integer`]).
pub(crate) fn derive_bounded(
    seed: &SecretSeed,
    (rows, cols): (usize, usize),
    bits: u32,
) -> RingMatrix {
    let keep = if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    RingMatrix::random(rows, cols, &mut SecureRng::from_secret_seed(seed)).map(|v| v & keep)
}

/// Shares `values` among `holders` holders: holder 0's explicit matrices and the seeds of holders
/// `1..holders`.
pub(crate) fn deal(
    values: Vec<RingMatrix>,
    holders: usize,
    rng: &mut SecureRng,
) -> Result<(Vec<RingMatrix>, Vec<SecretSeed>)> {
    let shapes: Shapes = values.iter().map(RingMatrix::shape).collect();
    let mut explicit = values;
    let mut seeds = Vec::with_capacity(holders.saturating_sub(1));
    for _ in 1..holders {
        let seed = rng.secret_seed();
        for (e, s) in explicit.iter_mut().zip(derive(&seed, &shapes)) {
            e.sub_assign(&s)?;
        }
        seeds.push(seed);
    }
    Ok((explicit, seeds))
}

/// Shares an integer matrix `value` (entries read as signed) over the integers among `holders`
/// holders: holder `i ≥ 1` derives `R_i` uniform in `[0, 2^mask_bits)` from its seed and holds
/// `−R_i`; holder 0 receives `value + Σ R_i` (module [`spnn_crypto::integer`]).
pub(crate) fn deal_integer(
    value: &RingMatrix,
    holders: usize,
    mask_bits: u32,
    rng: &mut SecureRng,
) -> (RingMatrix, Vec<SecretSeed>) {
    let mut explicit = value.clone();
    let mut seeds = Vec::with_capacity(holders.saturating_sub(1));
    for _ in 1..holders {
        let seed = rng.secret_seed();
        let r = derive_bounded(&seed, value.shape(), mask_bits);
        explicit = explicit.add(&r).expect("same shape");
        seeds.push(seed);
    }
    (explicit, seeds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dealt_bundles_reconstruct() {
        let mut rng = SecureRng::insecure_from_seed_for_tests(1);
        let values = vec![
            RingMatrix::random(2, 3, &mut rng),
            RingMatrix::random(4, 1, &mut rng),
        ];
        for k in 2..5 {
            let (explicit, seeds) = deal(values.clone(), k, &mut rng).unwrap();
            assert_eq!(seeds.len(), k - 1);
            let shapes: Vec<_> = values.iter().map(RingMatrix::shape).collect();
            let mut sum = explicit.clone();
            for s in &seeds {
                for (acc, m) in sum.iter_mut().zip(derive(s, &shapes)) {
                    acc.add_assign(&m).unwrap();
                }
            }
            assert_eq!(sum, values);
            assert_ne!(explicit, values, "holder 0's shares must not be the values");
        }
    }

    #[test]
    fn integer_sharing_adds_up_over_the_integers() {
        let mut rng = SecureRng::insecure_from_seed_for_tests(2);
        let value = RingMatrix::from_vec(1, 3, vec![5, (-9i64) as u64, 1 << 20]).unwrap();
        let (explicit, seeds) = deal_integer(&value, 2, 61, &mut rng);
        let other = derive_bounded(&seeds[0], (1, 3), 61);
        for i in 0..3 {
            let (a, r) = (explicit.as_slice()[i] as i64, other.as_slice()[i] as i64);
            assert!((0..1i64 << 61).contains(&r));
            assert_eq!(a as i128 - r as i128, value.as_slice()[i] as i64 as i128);
        }
    }
}
