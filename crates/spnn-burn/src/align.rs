//! Private sample alignment: ECDH private set intersection over ristretto255 among the parties
//! that hold ids, through one aggregator.
//!
//! Every **participant** (the data holders, and the label owner) holds a set of sample ids; the
//! **aggregator** (the server) may be one of them. The run:
//!
//! 1. Each participant draws two fresh secret scalars (CSPRNG), its key `a_j` and a one-time
//!    mask `b_j`, shuffles its ids, and masks them: `H(id)^{b_j}`, with `H` bound to the session
//!    id ([`spnn_crypto::psi`]).
//! 2. The participants form a ring in roster order. In each of `k − 1` rounds every participant
//!    passes the list it holds to the next and raises the list it receives from the previous to
//!    its key, keeping the order; a last pass returns every list to its origin, which raises it
//!    by `a_j · b_j⁻¹` and so holds the **tag** `H(id)^{a_1⋯a_k}` of each of its ids. No other
//!    party ever holds a list raised by every key: the last relay's still carries the origin's
//!    mask instead of its key, so it cannot compare it with its own tags.
//! 3. Each participant sends its tags, sorted (so their order says nothing of its ids), to the
//!    aggregator, which keeps the tags every participant sent and returns them sorted to each.
//! 4. Each participant maps the returned tags back to its ids: the **intersection, in one
//!    order all participants share** (the sorted tags: a pseudo-random permutation of the
//!    common ids, fresh per run). Position `i` in that order is the same sample everywhere.
//!
//! What each party learns (semi-honest, non-colluding; the guide's deployment chapter): a
//! participant, the intersection and every other participant's set size (the lengths of the
//! lists it relays); every point it holds of another's list lacks that party's key or mask,
//! so under DDH the lists look random and unordered (the origin shuffled them). The aggregator,
//! every participant's set size and — from which tags recur — the size of every region of the
//! participants' Venn diagram (for two participants, just the intersection's size), but no id
//! unless it is a participant itself; an aggregator that is also a participant learns, for
//! each of its own ids, which participants have it. Ids are deduplicated first.
//!
//! **A label owner that aggregates** (the server holding the labels) should not learn which
//! holders have each of its labelled ids, only which ones they all have. [`align_with_owner`]
//! runs the holders' alignment first, with the owner aggregating only (it learns the holders'
//! set sizes and Venn-region sizes, no id), then a two-party alignment of the owner's ids with
//! the first holder's **common** ids — so all the owner can learn about its ids is which are
//! common to every holder; the first holder learns how many ids the owner has — and the first
//! holder tells the others, over their own links, which of their common samples remain and in
//! what order.
//!
//! Lists travel in frames of at most [`CHUNK_POINTS`] points; a party refuses more than
//! [`MAX_ALIGN_IDS`] points, malformed points, lists of the wrong length, tags it never sent
//! and common lists that are unsorted or repeat a tag.

use std::collections::{HashMap, HashSet};

use spnn_crypto::SecureRng;
use spnn_crypto::psi::{POINT_BYTES, Point, PsiKey};
use spnn_net::codec::{Blob, IdList};
use spnn_net::{Network, PartyId};

use crate::error::{Result, SpnnError, protocol};
use crate::messages::{PsiCount, PsiPoints};

/// Points per frame (2 MiB).
pub const CHUNK_POINTS: usize = 1 << 16;

/// The most ids a party aligns, and the most points it accepts in one list (512 MiB of points).
pub const MAX_ALIGN_IDS: usize = 1 << 24;

/// Who takes part in an alignment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlignSpec {
    /// The parties that hold ids, at least two, in ring order (every party must give the same).
    pub participants: Vec<PartyId>,
    /// The party that intersects the tags (it may be a participant).
    pub aggregator: PartyId,
}

impl AlignSpec {
    fn check(&self, me: PartyId) -> Result<()> {
        let distinct: HashSet<_> = self.participants.iter().collect();
        if self.participants.len() < 2 || distinct.len() != self.participants.len() {
            return Err(SpnnError::Config(format!(
                "alignment needs at least two distinct participants, got {:?}",
                self.participants
            )));
        }
        if me != self.aggregator && !self.participants.contains(&me) {
            return Err(SpnnError::Config(format!(
                "party {me} neither holds ids nor aggregates in this alignment"
            )));
        }
        Ok(())
    }
}

/// What an alignment gave this party.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alignment {
    /// The number of common ids.
    pub size: usize,
    /// A participant's ids of the intersection in the shared order (none for an aggregator
    /// that holds no ids).
    pub ids: Option<Vec<u64>>,
}

fn send_points(net: &Network, to: PartyId, points: &[Point]) -> Result<()> {
    net.send(to, &PsiCount(points.len() as u64))?;
    for chunk in points.chunks(CHUNK_POINTS) {
        net.send(to, &PsiPoints(Blob(chunk.concat())))?;
    }
    Ok(())
}

/// Receives a list of points from `from`: exactly `expected` if given, else at most
/// [`MAX_ALIGN_IDS`], in frames of at most [`CHUNK_POINTS`].
fn recv_points(net: &Network, from: PartyId, expected: Option<usize>) -> Result<Vec<Point>> {
    let PsiCount(n) = net.recv(from)?;
    let n = usize::try_from(n).unwrap_or(usize::MAX);
    if n > MAX_ALIGN_IDS || expected.is_some_and(|e| e != n) {
        return Err(protocol(
            from,
            match expected {
                Some(e) => format!("a list of {n} points where {e} were sent out"),
                None => format!("a list of {n} points, more than {MAX_ALIGN_IDS}"),
            },
        ));
    }
    // Grown as frames arrive: a count alone reserves nothing.
    let mut points = Vec::with_capacity(n.min(CHUNK_POINTS));
    while points.len() < n {
        let PsiPoints(Blob(bytes)) = net.recv(from)?;
        let want = (n - points.len()).min(CHUNK_POINTS);
        if bytes.len() != want * POINT_BYTES {
            return Err(protocol(
                from,
                format!(
                    "a frame of {} bytes where {want} points ({} bytes) were due",
                    bytes.len(),
                    want * POINT_BYTES
                ),
            ));
        }
        points.extend(bytes.chunks_exact(POINT_BYTES).map(|c| {
            let mut p = [0u8; POINT_BYTES];
            p.copy_from_slice(c);
            p
        }));
    }
    Ok(points)
}

fn domain(net: &Network) -> Vec<u8> {
    let mut d = b"spnn-align-v1:".to_vec();
    d.extend_from_slice(&net.config().session.to_le_bytes());
    d
}

/// Runs this party's side of an alignment: `ids` for a participant, `None` for an aggregator
/// that holds none. Every party of `spec` must call it with the same `spec`.
pub fn align(net: &Network, spec: &AlignSpec, ids: Option<&[u64]>) -> Result<Alignment> {
    run(net, spec, ids, true)
}

/// [`align`] **without the one-time masks**: the last relay of each list holds it raised by
/// every key and learns which of its own ids the list's origin has. Insecure; for the test
/// that shows what the masks stop.
#[cfg(feature = "insecure-test-hooks")]
pub fn align_unmasked_insecure_for_tests(
    net: &Network,
    spec: &AlignSpec,
    ids: Option<&[u64]>,
) -> Result<Alignment> {
    run(net, spec, ids, false)
}

fn run(net: &Network, spec: &AlignSpec, ids: Option<&[u64]>, masked: bool) -> Result<Alignment> {
    let me = net.me();
    spec.check(me)?;
    let position = spec.participants.iter().position(|&p| p == me);
    let tags = match (position, ids) {
        (Some(at), Some(ids)) => Some(participate(net, spec, at, ids, masked)?),
        (None, None) => None,
        (Some(_), None) => {
            return Err(SpnnError::Config(format!(
                "party {me} is a participant and gave no ids"
            )));
        }
        (None, Some(_)) => {
            return Err(SpnnError::Config(format!(
                "party {me} only aggregates and holds no ids"
            )));
        }
    };
    let common: Vec<Point> = if me == spec.aggregator {
        let common = intersect(net, spec, tags.as_ref().map(|t| &t.0))?;
        for &p in spec.participants.iter().filter(|&&p| p != me) {
            send_points(net, p, &common)?;
        }
        common
    } else {
        let (sorted, by_tag) = tags.as_ref().expect("a participant has tags");
        send_points(net, spec.aggregator, sorted)?;
        let common = recv_points(net, spec.aggregator, None)?;
        // Sorted and distinct, as the aggregator makes it, and no longer than this party's own
        // list: a repeated or reordered tag would misalign this party's rows.
        if !strictly_increasing(&common) || common.len() > by_tag.len() {
            return Err(protocol(
                spec.aggregator,
                "a common list that is not sorted, repeats a tag, or is longer than this \
                 party's own",
            ));
        }
        common
    };
    let ids = match tags {
        None => None,
        Some((_, by_tag)) => Some(
            common
                .iter()
                .map(|t| {
                    by_tag.get(t).copied().ok_or_else(|| {
                        protocol(spec.aggregator, "a common tag this party never sent")
                    })
                })
                .collect::<Result<Vec<u64>>>()?,
        ),
    };
    Ok(Alignment {
        size: common.len(),
        ids,
    })
}

/// Alignment with the label owner aggregating (module docs): `holders` hold `ids` each, in
/// roster order; `owner` holds its labelled ids. Every party of `holders` and `owner` calls it
/// with the same arguments but its own `ids`. The result is the common samples of all of them,
/// in one order.
pub fn align_with_owner(
    net: &Network,
    holders: &[PartyId],
    owner: PartyId,
    ids: &[u64],
) -> Result<Alignment> {
    let me = net.me();
    let first = *holders.first().ok_or_else(|| {
        SpnnError::Config("alignment with a label owner needs at least one holder".into())
    })?;
    let holders_only = AlignSpec {
        participants: holders.to_vec(),
        aggregator: owner,
    };
    let with_owner = AlignSpec {
        participants: vec![owner, first],
        aggregator: owner,
    };
    if me == owner {
        align(net, &holders_only, None)?;
        return align(net, &with_owner, Some(ids));
    }
    let common = align(net, &holders_only, Some(ids))?;
    let common_ids = common.ids.expect("a participant's ids");
    if me == first {
        let last = align(net, &with_owner, Some(&common_ids))?;
        let final_ids = last.ids.as_deref().expect("a participant's ids");
        let at: HashMap<u64, u64> = common_ids
            .iter()
            .enumerate()
            .map(|(i, &id)| (id, i as u64))
            .collect();
        let positions = IdList(final_ids.iter().map(|id| at[id]).collect());
        for &h in &holders[1..] {
            net.send(h, &positions)?;
        }
        return Ok(last);
    }
    // The common samples that remain, as positions in the holders' shared order.
    let IdList(positions) = net.recv(first)?;
    let mut seen = HashSet::with_capacity(positions.len());
    let ids = positions
        .iter()
        .map(|&p| {
            let id = usize::try_from(p)
                .ok()
                .and_then(|p| common_ids.get(p))
                .filter(|_| seen.insert(p));
            id.copied().ok_or_else(|| {
                protocol(
                    first,
                    format!("position {p} is not a distinct common sample"),
                )
            })
        })
        .collect::<Result<Vec<u64>>>()?;
    Ok(Alignment {
        size: ids.len(),
        ids: Some(ids),
    })
}

/// The participant's tags: sorted, and by tag its id.
type Tags = (Vec<Point>, HashMap<Point, u64>);

fn strictly_increasing(points: &[Point]) -> bool {
    points.windows(2).all(|w| w[0] < w[1])
}

/// Steps 1 and 2 for the participant at ring position `at`.
fn participate(
    net: &Network,
    spec: &AlignSpec,
    at: usize,
    ids: &[u64],
    masked: bool,
) -> Result<Tags> {
    let mut own: Vec<u64> = ids.to_vec();
    own.sort_unstable();
    own.dedup();
    let mut rng = SecureRng::from_os_entropy();
    // The order the list travels in says nothing of the ids.
    rand::seq::SliceRandom::shuffle(own.as_mut_slice(), &mut rng);
    if own.len() > MAX_ALIGN_IDS {
        return Err(SpnnError::Config(format!(
            "{} ids to align, more than {MAX_ALIGN_IDS}",
            own.len()
        )));
    }
    let k = spec.participants.len();
    let next = spec.participants[(at + 1) % k];
    let prev = spec.participants[(at + k - 1) % k];
    let key = PsiKey::random(&mut rng);
    let mask = PsiKey::random(&mut rng);
    // Masked: out with `b`, back with `a·b⁻¹`. Unmasked (tests): out with `a`, back with 1.
    let (first, last) = if masked {
        let finish = key.unmasking(&mask);
        (mask, finish)
    } else {
        (key.clone(), key.unmasking(&key))
    };
    let mut held = first.blind_ids(&domain(net), &own);
    for _ in 1..k {
        send_points(net, next, &held)?;
        let received = recv_points(net, prev, None)?;
        held = key
            .reblind(&received)
            .map_err(|e| protocol(prev, e.to_string()))?;
    }
    send_points(net, next, &held)?;
    let returned = recv_points(net, prev, Some(own.len()))?;
    let tags = last
        .reblind(&returned)
        .map_err(|e| protocol(prev, e.to_string()))?;
    let by_tag: HashMap<Point, u64> = tags.iter().copied().zip(own.iter().copied()).collect();
    if by_tag.len() != own.len() {
        return Err(protocol(
            prev,
            "two of this party's ids came back with one tag",
        ));
    }
    let mut sorted = tags;
    sorted.sort_unstable();
    Ok((sorted, by_tag))
}

/// Step 3 at the aggregator: the tags every participant sent, sorted. `own` are its own tags
/// if it participates. Each list arrives sorted and distinct (refused otherwise) and is merged
/// into the running intersection, so the aggregator holds at most two lists at a time.
fn intersect(net: &Network, spec: &AlignSpec, own: Option<&Vec<Point>>) -> Result<Vec<Point>> {
    let me = net.me();
    let mut common: Option<Vec<Point>> = None;
    for &p in &spec.participants {
        let list = if p == me {
            own.cloned().unwrap_or_default()
        } else {
            recv_points(net, p, None)?
        };
        if !strictly_increasing(&list) {
            return Err(protocol(p, "tags that are not sorted or repeat"));
        }
        common = Some(match common {
            None => list,
            Some(running) => merge_common(&running, &list),
        });
    }
    Ok(common.unwrap_or_default())
}

/// The points in both sorted lists, sorted.
fn merge_common(a: &[Point], b: &[Point]) -> Vec<Point> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::with_capacity(a.len().min(b.len()));
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}
