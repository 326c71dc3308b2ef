//! Dealing a list of matrices to the holders: holder 0 receives its shares in full, every other
//! holder a 32-byte seed from which it derives its shares itself.
//!
//! For true values `T_1 … T_n`, holder `i ≥ 1` derives `S_i,1 … S_i,n` from its seed (one
//! ChaCha20 stream, matrices in order, row-major), and holder 0 receives
//! `T_j − Σ_{i≥1} S_i,j`. The dealer's traffic is one full share set plus `32·(k−1)` bytes.

use spnn_crypto::{RingMatrix, SecretSeed, SecureRng};

use crate::error::Result;

/// The largest explicit bundle one `DealerBundle` message carries, in bytes: far below the
/// network's frame limit, however many triples an update needs (Adam's are hundreds).
pub(crate) const MESSAGE_BYTES: usize = 32 << 20;

/// The sizes of the messages that carry `n` explicit matrices of `shape` (at least one matrix
/// per message), in order.
pub(crate) fn message_sizes(n: usize, (rows, cols): (usize, usize)) -> Vec<usize> {
    let per = (MESSAGE_BYTES / (rows * cols * 8).max(1)).max(1);
    (0..n.div_ceil(per)).map(|i| per.min(n - i * per)).collect()
}

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

/// Shapes of one holder's seeded truncation shares for `n` triples of `shape`: holder 0
/// derives its share of each `r`; every other holder its shares of `r`, `⌊r/2^s⌋` and `b`
/// ([`seeded_triples`] with one derived matrix per triple at holder 0).
fn truncation_shapes(first: bool, shape: (usize, usize), n: usize) -> Shapes {
    vec![shape; if first { n } else { 3 * n }]
}

/// The truncation triples `[r, ⌊r/2^s⌋, b]` of one command, one per shift, for values of
/// `shape` below `2^62` (module [`spnn_crypto::beaver`]). Every holder derives its share of
/// `r` from a seed, so `r` itself never travels; holders `i ≥ 1` derive their shares of the
/// other two as well, and holder 0 receives its shares of `⌊r/2^s⌋` and `b` explicitly.
/// Returns one seed per holder and holder 0's explicit matrices.
pub(crate) fn deal_truncations(
    shape: (usize, usize),
    shifts: &[u32],
    holders: usize,
    rng: &mut SecureRng,
) -> Result<(Vec<SecretSeed>, Vec<RingMatrix>)> {
    use spnn_crypto::beaver::{MAX_TRUNCATION_BITS, truncation_material};
    let n = shifts.len();
    let seeds: Vec<SecretSeed> = (0..holders).map(|_| rng.secret_seed()).collect();
    let derived: Vec<Vec<RingMatrix>> = seeds
        .iter()
        .enumerate()
        .map(|(i, s)| derive(s, &truncation_shapes(i == 0, shape, n)))
        .collect();
    let mut explicit = Vec::with_capacity(2 * n);
    for (t, &shift) in shifts.iter().enumerate() {
        let mut r = derived[0][t].clone();
        for d in &derived[1..] {
            r.add_assign(&d[3 * t])?;
        }
        let [_, mut high, mut danger] = truncation_material(r, shift, MAX_TRUNCATION_BITS)?;
        for d in &derived[1..] {
            high.sub_assign(&d[3 * t + 1])?;
            danger.sub_assign(&d[3 * t + 2])?;
        }
        explicit.extend([high, danger]);
    }
    Ok((seeds, explicit))
}

/// Holder `me`'s shares of `n` truncation triples of `shape`, as `[r, ⌊r/2^s⌋, b]` per triple,
/// from its seed and (holder 0) the explicit matrices of [`deal_truncations`].
pub(crate) fn truncation_shares(
    seed: &SecretSeed,
    me: usize,
    explicit: Vec<RingMatrix>,
    shape: (usize, usize),
    n: usize,
) -> Vec<[RingMatrix; 3]> {
    seeded_triples(seed, me, explicit, shape, n, 1)
}

/// Holder `me`'s shares of `n` seeded triples of `shape`: holder 0 derives the first
/// `first_derives` matrices of each triple from its seed and received the rest explicitly;
/// every other holder derives all three ([`seeded_items`]).
fn seeded_triples(
    seed: &SecretSeed,
    me: usize,
    explicit: Vec<RingMatrix>,
    shape: (usize, usize),
    n: usize,
    first_derives: usize,
) -> Vec<[RingMatrix; 3]> {
    seeded_items(seed, me, explicit, shape, (n, 3), first_derives)
        .into_iter()
        .map(|item| item.try_into().expect("three matrices per triple"))
        .collect()
}

/// Holder `me`'s shares of `n` seeded items of `per` matrices of `shape` each: holder 0
/// derives the first `first_derives` matrices of each item from its seed (one stream, item by
/// item) and received the rest explicitly; every other holder derives all of them.
fn seeded_items(
    seed: &SecretSeed,
    me: usize,
    explicit: Vec<RingMatrix>,
    shape: (usize, usize),
    (n, per): (usize, usize),
    first_derives: usize,
) -> Vec<Vec<RingMatrix>> {
    let derives = if me == 0 { first_derives } else { per };
    let mut derived = derive(seed, &vec![shape; derives * n]).into_iter();
    let mut explicit = explicit.into_iter();
    (0..n)
        .map(|_| {
            (0..per)
                .map(|i| {
                    if i < derives {
                        derived.next().expect("derived matrices for every item")
                    } else {
                        explicit.next().expect("explicit matrices for every item")
                    }
                })
                .collect()
        })
        .collect()
}

/// The material of `n` comparisons of `shape` ([`spnn_crypto::compare`]): every holder derives
/// its share of the mask `r` from a seed, holders `i ≥ 1` their shares of `r`'s bits as well,
/// and holder 0 receives its shares of the bits explicitly. Returns one seed per holder and
/// holder 0's explicit matrices.
pub(crate) fn deal_comparisons(
    shape: (usize, usize),
    n: usize,
    holders: usize,
    rng: &mut SecureRng,
) -> Result<(Vec<SecretSeed>, Vec<RingMatrix>)> {
    use spnn_crypto::compare::{COMPARISON_MATRICES, comparison_material};
    let per = COMPARISON_MATRICES;
    let seeds: Vec<SecretSeed> = (0..holders).map(|_| rng.secret_seed()).collect();
    let derived: Vec<Vec<RingMatrix>> = seeds
        .iter()
        .enumerate()
        .map(|(i, s)| derive(s, &vec![shape; if i == 0 { n } else { per * n }]))
        .collect();
    let mut explicit = Vec::with_capacity((per - 1) * n);
    for t in 0..n {
        let mut r = derived[0][t].clone();
        for d in &derived[1..] {
            r.add_assign(&d[per * t])?;
        }
        let mut bits = comparison_material(r)
            .into_iter()
            .skip(1)
            .collect::<Vec<_>>();
        for (j, bit) in bits.iter_mut().enumerate() {
            for d in &derived[1..] {
                bit.sub_assign(&d[per * t + 1 + j])?;
            }
        }
        explicit.extend(bits);
    }
    Ok((seeds, explicit))
}

/// Holder `me`'s shares `[r, r_0, …, r_62]` of the `n` comparisons of [`deal_comparisons`].
pub(crate) fn comparison_shares(
    seed: &SecretSeed,
    me: usize,
    explicit: Vec<RingMatrix>,
    shape: (usize, usize),
    n: usize,
) -> Vec<Vec<RingMatrix>> {
    let per = spnn_crypto::compare::COMPARISON_MATRICES;
    seeded_items(seed, me, explicit, shape, (n, per), 1)
}

/// The element-wise triples `(a, b, c = a∘b)` of one update, `n` of `shape`: every holder
/// derives its shares of `a` and `b` from a seed, holders `i ≥ 1` their share of `c` as well,
/// and holder 0 receives its share of `c` explicitly. Returns one seed per holder and holder
/// 0's explicit matrices.
pub(crate) fn deal_products(
    shape: (usize, usize),
    n: usize,
    holders: usize,
    rng: &mut SecureRng,
) -> Result<(Vec<SecretSeed>, Vec<RingMatrix>)> {
    let seeds: Vec<SecretSeed> = (0..holders).map(|_| rng.secret_seed()).collect();
    let derived: Vec<Vec<RingMatrix>> = seeds
        .iter()
        .enumerate()
        .map(|(i, s)| derive(s, &vec![shape; if i == 0 { 2 * n } else { 3 * n }]))
        .collect();
    let mut explicit = Vec::with_capacity(n);
    for t in 0..n {
        let (mut a, mut b) = (derived[0][2 * t].clone(), derived[0][2 * t + 1].clone());
        for d in &derived[1..] {
            a.add_assign(&d[3 * t])?;
            b.add_assign(&d[3 * t + 1])?;
        }
        let mut c = a.hadamard(&b)?;
        for d in &derived[1..] {
            c.sub_assign(&d[3 * t + 2])?;
        }
        explicit.push(c);
    }
    Ok((seeds, explicit))
}

/// Holder `me`'s shares `[a, b, c]` of the `n` element-wise triples of [`deal_products`].
pub(crate) fn product_shares(
    seed: &SecretSeed,
    me: usize,
    explicit: Vec<RingMatrix>,
    shape: (usize, usize),
    n: usize,
) -> Vec<[RingMatrix; 3]> {
    seeded_triples(seed, me, explicit, shape, n, 2)
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
    fn truncation_triples_reconstruct_to_consistent_values() {
        let mut rng = SecureRng::insecure_from_seed_for_tests(3);
        let shifts = [16, 21, 5];
        for k in 2..=4 {
            let (seeds, explicit) = deal_truncations((2, 3), &shifts, k, &mut rng).unwrap();
            assert_eq!(explicit.len(), 2 * shifts.len());
            let shares: Vec<Vec<[RingMatrix; 3]>> = (0..k)
                .map(|i| {
                    let e = if i == 0 { explicit.clone() } else { vec![] };
                    truncation_shares(&seeds[i], i, e, (2, 3), shifts.len())
                })
                .collect();
            for (t, &shift) in shifts.iter().enumerate() {
                let sum = |j: usize| {
                    let mut s = RingMatrix::zeros(2, 3);
                    for h in &shares {
                        s.add_assign(&h[t][j]).unwrap();
                    }
                    s
                };
                let (r, high, danger) = (sum(0), sum(1), sum(2));
                assert_eq!(high, r.map(|x| x >> shift), "k = {k}, triple {t}");
                assert_eq!(danger, r.map(|x| x >> 63), "k = {k}, triple {t}");
            }
        }
    }

    #[test]
    fn product_triples_reconstruct_to_element_wise_products() {
        let mut rng = SecureRng::insecure_from_seed_for_tests(4);
        for k in 2..=4 {
            let (seeds, explicit) = deal_products((3, 2), 3, k, &mut rng).unwrap();
            assert_eq!(explicit.len(), 3);
            let shares: Vec<Vec<[RingMatrix; 3]>> = (0..k)
                .map(|i| {
                    let e = if i == 0 { explicit.clone() } else { vec![] };
                    product_shares(&seeds[i], i, e, (3, 2), 3)
                })
                .collect();
            for t in 0..3 {
                let sum = |j: usize| {
                    let mut s = RingMatrix::zeros(3, 2);
                    for h in &shares {
                        s.add_assign(&h[t][j]).unwrap();
                    }
                    s
                };
                let (a, b, c) = (sum(0), sum(1), sum(2));
                assert_eq!(c, a.hadamard(&b).unwrap(), "k = {k}, triple {t}");
                assert_ne!(a, RingMatrix::zeros(3, 2));
            }
        }
    }

    #[test]
    fn comparison_material_reconstructs_to_a_mask_and_its_bits() {
        let mut rng = SecureRng::insecure_from_seed_for_tests(6);
        for k in 2..=4 {
            let (seeds, explicit) = deal_comparisons((2, 2), 2, k, &mut rng).unwrap();
            let shares: Vec<Vec<Vec<RingMatrix>>> = (0..k)
                .map(|i| {
                    let e = if i == 0 { explicit.clone() } else { vec![] };
                    comparison_shares(&seeds[i], i, e, (2, 2), 2)
                })
                .collect();
            for t in 0..2 {
                let sum = |j: usize| {
                    let mut s = RingMatrix::zeros(2, 2);
                    for h in &shares {
                        s.add_assign(&h[t][j]).unwrap();
                    }
                    s
                };
                let r = sum(0);
                assert_ne!(r, RingMatrix::zeros(2, 2));
                for bit in 0..63 {
                    assert_eq!(
                        sum(bit + 1),
                        r.map(|v| (v >> bit) & 1),
                        "k = {k}, bit {bit}"
                    );
                }
            }
        }
    }

    #[test]
    fn explicit_bundles_are_split_into_bounded_messages() {
        assert_eq!(message_sizes(0, (30, 64)), Vec::<usize>::new());
        assert_eq!(message_sizes(476, (30, 64)), vec![476]);
        // 510 × 64 weights (census): 128 matrices per 32 MiB message.
        let sizes = message_sizes(476, (510, 64));
        assert_eq!(sizes.iter().sum::<usize>(), 476);
        assert!(sizes.iter().all(|&s| s * 510 * 64 * 8 <= MESSAGE_BYTES));
        // A matrix larger than a message still travels, alone.
        assert_eq!(message_sizes(2, (4096, 4096)), vec![1, 1]);
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
