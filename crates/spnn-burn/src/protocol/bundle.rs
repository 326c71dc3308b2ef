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

/// The sizes of the messages that carry explicit matrices of `shapes`, in order: as many
/// matrices as fit [`MESSAGE_BYTES`], at least one per message.
pub(crate) fn message_sizes(shapes: &[(usize, usize)]) -> Vec<usize> {
    let mut sizes = Vec::new();
    let (mut count, mut bytes) = (0usize, 0usize);
    for &(rows, cols) in shapes {
        let size = rows * cols * 8;
        if count > 0 && bytes + size > MESSAGE_BYTES {
            sizes.push(count);
            (count, bytes) = (0, 0);
        }
        count += 1;
        bytes += size;
    }
    if count > 0 {
        sizes.push(count);
    }
    sizes
}

/// Explicit matrices holder 0 receives per truncation triple (`⌊r/2^s⌋` and `b`).
pub(crate) const TRUNCATION_EXPLICIT: usize = 2;
/// Explicit matrices holder 0 receives per element-wise triple (`a∘b`).
pub(crate) const PRODUCT_EXPLICIT: usize = 1;
/// Explicit matrices holder 0 receives per comparison (the mask's 63 bits).
pub(crate) const COMPARISON_EXPLICIT: usize = spnn_crypto::compare::COMPARISON_MATRICES - 1;

/// The shapes of holder 0's explicit matrices for items of `shapes`, `per` matrices each.
pub(crate) fn explicit_shapes(shapes: &[(usize, usize)], per: usize) -> Vec<(usize, usize)> {
    shapes
        .iter()
        .flat_map(|&s| std::iter::repeat_n(s, per))
        .collect()
}

/// Shapes of the matrices of a bundle, in order.
pub(crate) type Shapes = Vec<(usize, usize)>;

/// One holder's matrices of a bundle, item by item.
type Items = Vec<Vec<RingMatrix>>;

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

/// The truncation triples `[r, ⌊r/2^s⌋, b]` of one command, one per `(shape, shift)`, for
/// values below `2^62` (module [`spnn_crypto::beaver`]). Every holder derives its share of `r`
/// from a seed, so `r` itself never travels; holders `i ≥ 1` derive their shares of the other
/// two as well, and holder 0 receives its shares of `⌊r/2^s⌋` and `b` explicitly. Returns one
/// seed per holder and holder 0's explicit matrices.
pub(crate) fn deal_truncations(
    items: &[((usize, usize), u32)],
    holders: usize,
    rng: &mut SecureRng,
) -> Result<(Vec<SecretSeed>, Vec<RingMatrix>)> {
    use spnn_crypto::beaver::{MAX_TRUNCATION_BITS, truncation_material};
    let shapes: Shapes = items.iter().map(|&(shape, _)| shape).collect();
    deal_items(&shapes, (3, 1), holders, rng, |t, derived| {
        let r = derived.into_iter().next().expect("one derived matrix");
        let [_, high, danger] = truncation_material(r, items[t].1, MAX_TRUNCATION_BITS)?;
        Ok(vec![high, danger])
    })
}

/// Deals items of `shapes`, `per` matrices each (`(per, derived)`): the first `derived` of
/// each item are the sums of what every holder derives from its seed, so they never travel;
/// `rest(t, those sums)` gives item `t`'s other matrices, of which holder 0 receives the value
/// minus what the other holders derive. Returns one seed per holder and holder 0's explicit
/// matrices.
fn deal_items(
    shapes: &[(usize, usize)],
    (per, derived): (usize, usize),
    holders: usize,
    rng: &mut SecureRng,
    rest: impl Fn(usize, Vec<RingMatrix>) -> Result<Vec<RingMatrix>>,
) -> Result<(Vec<SecretSeed>, Vec<RingMatrix>)> {
    let (seeds, all) = derive_items(shapes, per, derived, holders, rng);
    let mut explicit = Vec::with_capacity((per - derived) * shapes.len());
    for t in 0..shapes.len() {
        let mut sums = all[0][t].clone();
        for (j, sum) in sums.iter_mut().enumerate() {
            for other in &all[1..] {
                sum.add_assign(&other[t][j])?;
            }
        }
        let mut values = rest(t, sums)?;
        for (j, value) in values.iter_mut().enumerate() {
            for other in &all[1..] {
                value.sub_assign(&other[t][derived + j])?;
            }
        }
        explicit.extend(values);
    }
    Ok((seeds, explicit))
}

/// Holder `me`'s shares `[r, ⌊r/2^s⌋, b]` of the truncation triples of `shapes`, from its seed
/// and (holder 0) the explicit matrices of [`deal_truncations`].
pub(crate) fn truncation_shares(
    seed: &SecretSeed,
    me: usize,
    explicit: Vec<RingMatrix>,
    shapes: &[(usize, usize)],
) -> Vec<[RingMatrix; 3]> {
    triples(seeded_items(seed, me, explicit, shapes, 3, 1))
}

/// One seed per holder and, by holder, the matrices each derives from it for items of
/// `shapes` with `per` matrices each: holder 0 the first `first_derives` of each item, every
/// other holder all of them.
fn derive_items(
    shapes: &[(usize, usize)],
    per: usize,
    first_derives: usize,
    holders: usize,
    rng: &mut SecureRng,
) -> (Vec<SecretSeed>, Vec<Items>) {
    let seeds: Vec<SecretSeed> = (0..holders).map(|_| rng.secret_seed()).collect();
    let derived = seeds
        .iter()
        .enumerate()
        .map(|(i, seed)| {
            let derives = if i == 0 { first_derives } else { per };
            seeded_items(seed, i, Vec::new(), shapes, derives, derives)
        })
        .collect();
    (seeds, derived)
}

/// Holder `me`'s shares of seeded items of `shapes`, `per` matrices of the item's shape each:
/// holder 0 derives the first `first_derives` matrices of each item from its seed (one stream,
/// item by item) and received the rest explicitly; every other holder derives all of them.
fn seeded_items(
    seed: &SecretSeed,
    me: usize,
    explicit: Vec<RingMatrix>,
    shapes: &[(usize, usize)],
    per: usize,
    first_derives: usize,
) -> Vec<Vec<RingMatrix>> {
    let derives = if me == 0 { first_derives } else { per };
    let mut derived = derive(seed, &explicit_shapes(shapes, derives)).into_iter();
    let mut explicit = explicit.into_iter();
    shapes
        .iter()
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

/// Items of three matrices as arrays.
fn triples(items: Vec<Vec<RingMatrix>>) -> Vec<[RingMatrix; 3]> {
    items
        .into_iter()
        .map(|item| item.try_into().expect("three matrices per triple"))
        .collect()
}

/// The element-wise triples `(a, b, c = a∘b)` of one update, one per shape of `shapes`: every
/// holder derives its shares of `a` and `b` from a seed, holders `i ≥ 1` their share of `c` as
/// well, and holder 0 receives its share of `c` explicitly. Returns one seed per holder and
/// holder 0's explicit matrices.
pub(crate) fn deal_products(
    shapes: &[(usize, usize)],
    holders: usize,
    rng: &mut SecureRng,
) -> Result<(Vec<SecretSeed>, Vec<RingMatrix>)> {
    deal_items(shapes, (3, 2), holders, rng, |_, ab| {
        Ok(vec![ab[0].hadamard(&ab[1])?])
    })
}

/// Holder `me`'s shares `[a, b, c]` of the element-wise triples of [`deal_products`].
pub(crate) fn product_shares(
    seed: &SecretSeed,
    me: usize,
    explicit: Vec<RingMatrix>,
    shapes: &[(usize, usize)],
) -> Vec<[RingMatrix; 3]> {
    triples(seeded_items(seed, me, explicit, shapes, 3, 2))
}

/// The material of the comparisons of `shapes` ([`spnn_crypto::compare`]): every holder
/// derives its share of the mask `r` from a seed, holders `i ≥ 1` their shares of `r`'s bits
/// as well, and holder 0 receives its shares of the bits explicitly. Returns one seed per
/// holder and holder 0's explicit matrices.
pub(crate) fn deal_comparisons(
    shapes: &[(usize, usize)],
    holders: usize,
    rng: &mut SecureRng,
) -> Result<(Vec<SecretSeed>, Vec<RingMatrix>)> {
    use spnn_crypto::compare::{COMPARISON_MATRICES, comparison_material};
    deal_items(shapes, (COMPARISON_MATRICES, 1), holders, rng, |_, r| {
        let r = r.into_iter().next().expect("one derived matrix");
        Ok(comparison_material(r).into_iter().skip(1).collect())
    })
}

/// Holder `me`'s shares `[r, r_0, …, r_62]` of the comparisons of [`deal_comparisons`].
pub(crate) fn comparison_shares(
    seed: &SecretSeed,
    me: usize,
    explicit: Vec<RingMatrix>,
    shapes: &[(usize, usize)],
) -> Vec<Vec<RingMatrix>> {
    let per = spnn_crypto::compare::COMPARISON_MATRICES;
    seeded_items(seed, me, explicit, shapes, per, 1)
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
            let items: Vec<_> = shifts.iter().map(|&s| ((2, 3), s)).collect();
            let (seeds, explicit) = deal_truncations(&items, k, &mut rng).unwrap();
            assert_eq!(explicit.len(), 2 * shifts.len());
            let shares: Vec<Vec<[RingMatrix; 3]>> = (0..k)
                .map(|i| {
                    let e = if i == 0 { explicit.clone() } else { vec![] };
                    truncation_shares(&seeds[i], i, e, &[(2, 3); 3])
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
            // Mixed shapes, as clipping by norm deals them.
            let shapes = [(3, 2), (1, 1), (3, 2)];
            let (seeds, explicit) = deal_products(&shapes, k, &mut rng).unwrap();
            assert_eq!(explicit.len(), 3);
            let shares: Vec<Vec<[RingMatrix; 3]>> = (0..k)
                .map(|i| {
                    let e = if i == 0 { explicit.clone() } else { vec![] };
                    product_shares(&seeds[i], i, e, &shapes)
                })
                .collect();
            for (t, &(rows, cols)) in shapes.iter().enumerate() {
                let sum = |j: usize| {
                    let mut s = RingMatrix::zeros(rows, cols);
                    for h in &shares {
                        s.add_assign(&h[t][j]).unwrap();
                    }
                    s
                };
                let (a, b, c) = (sum(0), sum(1), sum(2));
                assert_eq!(c, a.hadamard(&b).unwrap(), "k = {k}, triple {t}");
                assert_ne!(a, RingMatrix::zeros(rows, cols));
            }
        }
    }

    #[test]
    fn comparison_material_reconstructs_to_a_mask_and_its_bits() {
        let mut rng = SecureRng::insecure_from_seed_for_tests(6);
        for k in 2..=4 {
            let (seeds, explicit) = deal_comparisons(&[(2, 2); 2], k, &mut rng).unwrap();
            let shares: Vec<Vec<Vec<RingMatrix>>> = (0..k)
                .map(|i| {
                    let e = if i == 0 { explicit.clone() } else { vec![] };
                    comparison_shares(&seeds[i], i, e, &[(2, 2); 2])
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
        assert_eq!(message_sizes(&[]), Vec::<usize>::new());
        assert_eq!(message_sizes(&[(30, 64); 476]), vec![476]);
        // 510 × 64 weights (census): 128 matrices per 32 MiB message.
        let sizes = message_sizes(&[(510, 64); 476]);
        assert_eq!(sizes.iter().sum::<usize>(), 476);
        assert!(sizes.iter().all(|&s| s * 510 * 64 * 8 <= MESSAGE_BYTES));
        assert_eq!(sizes[0], 128);
        // A matrix larger than a message still travels, alone.
        assert_eq!(message_sizes(&[(4096, 4096); 2]), vec![1, 1]);
        // Single values fill a message with the weight-shaped matrices around them.
        let mixed = [vec![(510, 64); 127], vec![(1, 1); 3], vec![(510, 64); 2]].concat();
        assert_eq!(message_sizes(&mixed), vec![131, 1]);
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
