//! Private sample alignment (`spnn_burn::align`) on in-memory networks: the exact intersection
//! against a plain set intersection, one shared order, what the last relay of a list can learn
//! from its whole view with and without the one-time masks, and refusals of malformed input.

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use spnn_burn::align::{AlignSpec, Alignment, align};
use spnn_burn::messages::{PsiCount, PsiPoints};
use spnn_crypto::psi::POINT_BYTES;
use spnn_net::codec::{Blob, Message};
use spnn_net::{Network, NetworkConfig, PartyId, Roster};

const SESSION: u64 = 41;

type Aligner = fn(&Network, &AlignSpec, Option<&[u64]>) -> spnn_burn::Result<Alignment>;

/// Runs an alignment: `sets[i]` for holder i, and `server` for the server if it holds ids.
/// Returns every party's result (server first) and its network, for its transcript.
fn run(
    sets: &[Vec<u64>],
    server: Option<Vec<u64>>,
) -> Vec<(spnn_burn::Result<Alignment>, Network)> {
    run_with(sets, server, align)
}

/// The same with another implementation of a party's side.
fn run_with(
    sets: &[Vec<u64>],
    server: Option<Vec<u64>>,
    aligner: Aligner,
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
            std::thread::spawn(move || (aligner(&net, &spec, ids.as_deref()), net))
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
    // A participant that also aggregates (the plain protocol; the label owner uses
    // `align_with_owner`, below).
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

/// The lists of points `net` sent to `to`, in order (each a `PsiCount` and its frames).
fn lists_sent(net: &Network, to: PartyId) -> Vec<HashSet<[u8; POINT_BYTES]>> {
    let mut lists: Vec<HashSet<[u8; POINT_BYTES]>> = Vec::new();
    for sent in net.sent().into_iter().filter(|s| s.to == to) {
        if sent.kind == PsiCount::KIND {
            lists.push(HashSet::new());
        } else if sent.kind == PsiPoints::KIND {
            let Blob(bytes) = spnn_net::codec::decode_exact::<Blob>(&sent.payload).unwrap();
            let list = lists.last_mut().unwrap();
            list.extend(
                bytes
                    .chunks_exact(POINT_BYTES)
                    .map(|c| <[u8; 32]>::try_from(c).unwrap()),
            );
        }
    }
    lists
}

/// The last relay's attack, from its whole view: in the final pass it sends the next
/// participant's list raised by its own key, and it knows its own tags (it sent them to the
/// aggregator). Without the origin's one-time mask, the overlap of the two is exactly the ids
/// the two of them share — more than the intersection of all three; with the mask, nothing.
#[test]
fn the_last_relay_cannot_compare_a_list_with_its_own_tags_but_could_without_masks() {
    let sets = random_sets(3, 1500, 3000, 5);
    let pair: HashSet<u64> = sets[0]
        .iter()
        .copied()
        .filter(|id| sets[1].contains(id))
        .collect();
    let all = plain_intersection(&sets);
    assert!(
        pair.len() > all.len() + 100,
        "the pair shares more than all three"
    );
    let overlap = |results: &[(spnn_burn::Result<Alignment>, Network)]| {
        let relay = &results[1].1; // holder-0 (party 1); the next participant is party 2.
        let final_pass = lists_sent(relay, PartyId(2)).pop().unwrap();
        let own_tags = lists_sent(relay, PartyId(0)).pop().unwrap();
        final_pass.intersection(&own_tags).count()
    };
    let masked = run(&sets, None);
    check(&masked, &all, false);
    assert_eq!(overlap(&masked), 0);
    let unmasked = run_with(
        &sets,
        None,
        spnn_burn::align::align_unmasked_insecure_for_tests,
    );
    check(&unmasked, &all, false);
    assert_eq!(overlap(&unmasked), pair.len());
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

/// With the label owner aggregating (`align_with_owner`): every party gets the intersection of
/// all sets in one order; the owner's whole view — the holders' tag lists in the first stage,
/// in which it takes part with no ids, and its exchange with holder-0 in the second — carries
/// holder-0's common samples only, never the rest of any holder's set, and no point of the
/// first stage returns in the second.
#[test]
fn a_label_owning_server_sees_only_the_holders_common_samples() {
    let sets = random_sets(3, 1500, 2500, 6);
    let (holders, owner_ids) = (&sets[..2], sets[2].clone());
    let expected = plain_intersection(&sets);
    let holders_common = plain_intersection(holders);
    assert!(holders_common.len() > expected.len() + 100);
    let roster = Roster::spnn(2, false).unwrap();
    let cfg = NetworkConfig::new(SESSION)
        .with_timeout(Duration::from_secs(20))
        .with_transcript();
    let nets = Network::in_memory(&roster, cfg);
    let inputs = [owner_ids, sets[0].clone(), sets[1].clone()];
    let results: Vec<_> = nets
        .into_iter()
        .zip(inputs)
        .map(|(net, ids)| {
            std::thread::spawn(move || {
                let r = spnn_burn::align::align_with_owner(
                    &net,
                    &[PartyId(1), PartyId(2)],
                    PartyId(0),
                    &ids,
                );
                (r, net)
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    check(&results, &expected, true);
    // The owner's view: the lists it received, per sender, in order.
    let owner = &results[0].1;
    let mut lists: Vec<(PartyId, Vec<[u8; POINT_BYTES]>)> = Vec::new();
    for r in owner.transcript() {
        if r.kind == PsiCount::KIND {
            lists.push((r.from, Vec::new()));
        } else if r.kind == PsiPoints::KIND {
            let Blob(bytes) = spnn_net::codec::decode_exact::<Blob>(&r.payload).unwrap();
            let list = &mut lists.last_mut().unwrap().1;
            list.extend(
                bytes
                    .chunks_exact(POINT_BYTES)
                    .map(|c| <[u8; 32]>::try_from(c).unwrap()),
            );
        }
    }
    let distinct = |s: &[u64]| s.iter().collect::<HashSet<_>>().len();
    // First stage: each holder's tags (its whole set, blinded); second stage, from holder-0
    // only: the owner's masked list back, then holder-0's common samples as it relays them.
    let sizes: Vec<(u16, usize)> = lists.iter().map(|(p, l)| (p.0, l.len())).collect();
    assert_eq!(
        sizes[..2],
        [(1, distinct(&sets[0])), (2, distinct(&sets[1]))],
        "{sizes:?}"
    );
    assert!(sizes[2..].iter().all(|&(p, _)| p == 1), "{sizes:?}");
    assert!(
        sizes[2..].iter().any(|&(_, n)| n == holders_common.len()),
        "the owner meets holder-0's common samples: {sizes:?}"
    );
    assert!(
        sizes[2..].iter().all(|&(_, n)| n != distinct(&sets[0])),
        "never holder-0's whole set: {sizes:?}"
    );
    let first: HashSet<_> = lists[..2].iter().flat_map(|(_, l)| l.iter()).collect();
    assert!(
        lists[2..]
            .iter()
            .all(|(_, l)| l.iter().all(|p| !first.contains(p)))
    );
    // Holder-0's whole view of the second stage: it finishes the owner's list (the final pass,
    // raised by its key) and knows its own tags there (sent to the owner, which aggregates);
    // the owner's one-time mask keeps the two apart, so holder-0 cannot tell which of its
    // common samples the owner has labels for before the result says so.
    let to_owner = lists_sent(&results[1].1, PartyId(0));
    assert_eq!(
        to_owner.len(),
        4,
        "stage-1 tags, stage-2 ring pass, final pass, stage-2 tags"
    );
    assert_eq!(to_owner[2].intersection(&to_owner[3]).count(), 0);
    // The other holders hear from holder-0 only which common samples remain: positions they
    // map to their own ids, as many as the result.
    let positions: Vec<_> = results[2]
        .1
        .transcript()
        .into_iter()
        .filter(|r| r.from == PartyId(1) && r.kind == spnn_net::IdList::KIND)
        .collect();
    assert_eq!(positions.len(), 1);
    let spnn_net::IdList(p) = spnn_net::codec::decode_exact(&positions[0].payload).unwrap();
    assert_eq!(p.len(), expected.len());
}
