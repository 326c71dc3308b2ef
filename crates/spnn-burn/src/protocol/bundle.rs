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
}
