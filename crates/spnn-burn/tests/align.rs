//! Private sample alignment (`spnn_burn::align`) on in-memory networks: the exact intersection
//! against a plain set intersection, one shared order, what the aggregator and a relaying
//! participant can find in their whole view, and refusals of malformed input.

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use spnn_burn::align::{AlignSpec, Alignment, align};
use spnn_burn::messages::{PsiCount, PsiPoints};
use spnn_crypto::psi::{POINT_BYTES, hash_to_group};
use spnn_net::codec::{Blob, Message};
use spnn_net::{Network, NetworkConfig, PartyId, Roster};

const SESSION: u64 = 41;

/// Runs an alignment: `sets[i]` for holder i, and `server` for the server if it holds ids.
/// Returns every party's result (server first) and its network, for its transcript.
fn run(
    sets: &[Vec<u64>],
    server: Option<Vec<u64>>,
) -> Vec<(spnn_burn::Result<Alignment>, Network)> {
    let roster = Roster::spnn(sets.len() as u16, false).unwrap();
    let cfg = NetworkConfig::new(SESSION)
        .with_timeout(Duration::from_secs(20))
        .with_transcript();
    let nets = Network::in_memory(&roster, cfg);
    let holders: Vec<PartyId> = (1..=sets.len() as u16).map(PartyId).collect();
    let mut participants = holders.clone();
    if server.is_some() {
        participants.insert(0, PartyId(0));
    }
    let spec = AlignSpec {
        participants,
        aggregator: PartyId(0),
    };
    let mut inputs: Vec<Option<Vec<u64>>> = vec![server];
    inputs.extend(sets.iter().cloned().map(Some));
    let threads: Vec<_> = nets
        .into_iter()
        .zip(inputs)
        .map(|(net, ids)| {
            let spec = spec.clone();
            std::thread::spawn(move || (align(&net, &spec, ids.as_deref()), net))
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

fn random_sets(k: usize, n: usize, universe: u64, seed: u64) -> Vec<Vec<u64>> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..k)
        .map(|_| (0..n).map(|_| rng.random_range(0..universe)).collect())
        .collect()
}

fn plain_intersection(sets: &[Vec<u64>]) -> BTreeSet<u64> {
    let mut common: BTreeSet<u64> = sets[0].iter().copied().collect();
    for s in &sets[1..] {
        let s: HashSet<u64> = s.iter().copied().collect();
        common.retain(|id| s.contains(id));
    }
    common
}

/// Every participant gets the plain intersection, all in one order; the aggregator its size.
fn check(
    results: &[(spnn_burn::Result<Alignment>, Network)],
    expected: &BTreeSet<u64>,
    server_holds: bool,
) {
    let mut order = None;
    for (i, (r, _)) in results.iter().enumerate() {
        let a = r.as_ref().unwrap_or_else(|e| panic!("party {i}: {e}"));
        assert_eq!(a.size, expected.len(), "party {i}");
        match (&a.ids, i == 0 && !server_holds) {
            (None, true) => {}
            (Some(ids), false) => {
                let set: BTreeSet<u64> = ids.iter().copied().collect();
                assert_eq!(&set, expected, "party {i}");
                let first = order.get_or_insert_with(|| ids.clone());
                assert_eq!(first, ids, "party {i}'s order");
            }
            (ids, _) => panic!("party {i}: ids {ids:?}"),
        }
    }
}

#[test]
fn two_and_three_holders_get_the_exact_intersection_in_one_order() {
    for (k, n, universe, seed) in [(2, 3000, 6000, 1), (3, 2000, 3000, 2)] {
        let sets = random_sets(k, n, universe, seed);
        let expected = plain_intersection(&sets);
        assert!(!expected.is_empty() && expected.len() < n);
        check(&run(&sets, None), &expected, false);
    }
    // The label owner at the server: it aggregates and holds ids.
    let sets = random_sets(3, 1000, 1500, 3);
    let expected = plain_intersection(&sets);
    let server = sets[2].clone();
    check(&run(&sets[..2], Some(server)), &expected, true);
}

#[test]
fn duplicates_empty_sets_and_disjoint_sets() {
    // Duplicates count once.
    let sets = vec![vec![5, 5, 7, 9, 9, 9], vec![9, 5, 5, 11]];
    check(&run(&sets, None), &[5, 9].into_iter().collect(), false);
    // An empty set, and disjoint sets: an empty intersection, no error.
    for sets in [vec![vec![], vec![1, 2, 3]], vec![vec![1, 2], vec![3, 4]]] {
        check(&run(&sets, None), &BTreeSet::new(), false);
    }
}

#[test]
fn the_order_is_fresh_per_run_and_says_nothing_of_the_ids() {
    let sets = vec![(0..500).collect::<Vec<u64>>(), (0..500).collect()];
    let order = |r: &[(spnn_burn::Result<Alignment>, Network)]| {
        r[1].0.as_ref().unwrap().ids.clone().unwrap()
    };
    let (a, b) = (order(&run(&sets, None)), order(&run(&sets, None)));
    assert_ne!(a, b, "two runs, the same order");
    let sorted: Vec<u64> = (0..500).collect();
    assert_ne!(a, sorted);
}

/// The dictionary attack: hash every candidate id as the protocol does and look for it among
/// the points a party received. `points` are the PSI points in its transcript.
fn dictionary(points: &HashSet<[u8; POINT_BYTES]>, candidates: std::ops::Range<u64>) -> usize {
    let mut domain = b"spnn-align-v1:".to_vec();
    domain.extend_from_slice(&SESSION.to_le_bytes());
    candidates
        .filter(|&c| points.contains(&hash_to_group(&domain, c).compress().to_bytes()))
        .count()
}

fn received_points(net: &Network) -> HashSet<[u8; POINT_BYTES]> {
    net.transcript()
        .into_iter()
        .filter(|r| r.kind == PsiPoints::KIND)
        .flat_map(|r| {
            let Blob(bytes) = spnn_net::codec::decode_exact::<Blob>(&r.payload).unwrap();
            bytes
                .chunks_exact(POINT_BYTES)
                .map(|c| c.try_into().unwrap())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Neither the aggregator nor a relaying holder finds a single id in its whole view by hashing
/// the whole id universe; the same attack finds every id once the blinding is removed (the
/// points a protocol without secret scalars would send).
#[test]
fn no_party_finds_another_partys_ids_in_its_view_but_would_without_blinding() {
    let universe = 0..4000u64;
    let sets = random_sets(2, 1500, universe.end, 4);
    let results = run(&sets, None);
    check(&results, &plain_intersection(&sets), false);
    for (who, net) in [("aggregator", &results[0].1), ("holder-0", &results[1].1)] {
        let view = received_points(net);
        assert!(view.len() >= 1000, "{who} received {} points", view.len());
        assert_eq!(dictionary(&view, universe.clone()), 0, "{who}");
    }
    // Without blinding, holder-0 would receive holder-1's H(id): every one is found.
    let mut domain = b"spnn-align-v1:".to_vec();
    domain.extend_from_slice(&SESSION.to_le_bytes());
    let unblinded: HashSet<_> = sets[1]
        .iter()
        .map(|&id| hash_to_group(&domain, id).compress().to_bytes())
        .collect();
    let distinct: HashSet<u64> = sets[1].iter().copied().collect();
    assert_eq!(dictionary(&unblinded, universe), distinct.len());
}

/// A participant that sends a malformed point, a list longer than it announced, or a count
/// beyond the limit is refused with an error naming it; nobody hangs or panics.
#[test]
fn malformed_lists_are_refused() {
    let roster = Roster::spnn(2, false).unwrap();
    let cfg = NetworkConfig::new(SESSION).with_timeout(Duration::from_secs(5));
    for attack in 0..3 {
        let nets = Network::in_memory(&roster, cfg);
        let spec = AlignSpec {
            participants: vec![PartyId(1), PartyId(2)],
            aggregator: PartyId(0),
        };
        let honest = {
            let (net, spec) = (nets[1].clone(), spec.clone());
            std::thread::spawn(move || align(&net, &spec, Some(&[1, 2, 3])))
        };
        let server = {
            let (net, spec) = (nets[0].clone(), spec.clone());
            std::thread::spawn(move || align(&net, &spec, None))
        };
        // Holder 2 misbehaves in its first round.
        let evil = &nets[2];
        let to = PartyId(1);
        match attack {
            0 => {
                evil.send(to, &PsiCount(1)).unwrap();
                evil.send(to, &PsiPoints(Blob(vec![0xff; POINT_BYTES])))
                    .unwrap();
            }
            1 => {
                evil.send(to, &PsiCount(1)).unwrap();
                evil.send(to, &PsiPoints(Blob(vec![0; 2 * POINT_BYTES])))
                    .unwrap();
            }
            _ => evil.send(to, &PsiCount(u64::MAX)).unwrap(),
        }
        let err = honest.join().unwrap().unwrap_err().to_string();
        let expected = [
            "not a ristretto255 point",
            "a frame of 64 bytes",
            "more than",
        ][attack];
        assert!(err.contains(expected), "attack {attack}: {err}");
        drop(nets);
        // The aggregator fails too (its participants left), without hanging.
        assert!(server.join().unwrap().is_err());
    }
}
