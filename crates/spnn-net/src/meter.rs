//! Traffic meters: bytes, messages and rounds, per peer and in total.
//!
//! Bytes count whole frames including the 4-byte length prefix, the same for every transport,
//! so in-memory simulations report what a TLS deployment would carry above TLS itself.
//!
//! A **round** is a burst of sending: it is counted when a party sends after its previous
//! operation was a receive (or at its first send). For a protocol that alternates "everyone
//! sends, then everyone receives", rounds per party equal the protocol's round count.

use std::sync::Mutex;

use serde::Serialize;

use crate::party::PartyId;

/// Counters of one direction pair (this party ↔ one peer), or their total.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Traffic {
    /// Bytes sent, framing included.
    pub bytes_sent: u64,
    /// Bytes received, framing included.
    pub bytes_received: u64,
    /// Messages sent.
    pub messages_sent: u64,
    /// Messages received.
    pub messages_received: u64,
    /// Sending rounds (see the module docs).
    pub rounds: u64,
}

impl Traffic {
    /// Counter-wise difference `self − earlier`.
    pub fn since(&self, earlier: &Traffic) -> Traffic {
        Traffic {
            bytes_sent: self.bytes_sent - earlier.bytes_sent,
            bytes_received: self.bytes_received - earlier.bytes_received,
            messages_sent: self.messages_sent - earlier.messages_sent,
            messages_received: self.messages_received - earlier.messages_received,
            rounds: self.rounds - earlier.rounds,
        }
    }

    /// Counter-wise sum.
    pub fn plus(&self, other: &Traffic) -> Traffic {
        Traffic {
            bytes_sent: self.bytes_sent + other.bytes_sent,
            bytes_received: self.bytes_received + other.bytes_received,
            messages_sent: self.messages_sent + other.messages_sent,
            messages_received: self.messages_received + other.messages_received,
            rounds: self.rounds + other.rounds,
        }
    }
}

/// A copy of a party's meters at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct MeterSnapshot {
    /// Traffic with each peer, indexed by party id (our own entry stays zero).
    pub per_peer: Vec<Traffic>,
    /// All traffic of this party; `rounds` counts the party's own rounds.
    pub total: Traffic,
}

impl MeterSnapshot {
    /// Traffic with `peer`.
    pub fn peer(&self, peer: PartyId) -> Traffic {
        self.per_peer
            .get(peer.0 as usize)
            .copied()
            .unwrap_or_default()
    }

    /// Differences since `earlier`.
    pub fn since(&self, earlier: &MeterSnapshot) -> MeterSnapshot {
        MeterSnapshot {
            per_peer: self
                .per_peer
                .iter()
                .zip(&earlier.per_peer)
                .map(|(a, b)| a.since(b))
                .collect(),
            total: self.total.since(&earlier.total),
        }
    }
}

#[derive(Debug, Default)]
struct State {
    snapshot: MeterSnapshot,
    last_was_send: Vec<bool>,
    any_last_was_send: bool,
}

/// Live meters of one party; shared by its network handle's clones.
#[derive(Debug)]
pub struct Meters {
    state: Mutex<State>,
}

impl Meters {
    /// Meters for a deployment of `parties` parties.
    pub fn new(parties: usize) -> Self {
        Self {
            state: Mutex::new(State {
                snapshot: MeterSnapshot {
                    per_peer: vec![Traffic::default(); parties],
                    total: Traffic::default(),
                },
                last_was_send: vec![false; parties],
                any_last_was_send: false,
            }),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        // A poisoned lock only means another thread panicked mid-update of plain counters.
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut s)
    }

    pub(crate) fn sent(&self, peer: PartyId, bytes: u64) {
        self.with(|s| {
            let p = peer.0 as usize;
            let new_round = !s.last_was_send[p];
            let new_total_round = !s.any_last_was_send;
            let t = &mut s.snapshot.per_peer[p];
            t.bytes_sent += bytes;
            t.messages_sent += 1;
            t.rounds += u64::from(new_round);
            s.snapshot.total.bytes_sent += bytes;
            s.snapshot.total.messages_sent += 1;
            s.snapshot.total.rounds += u64::from(new_total_round);
            s.last_was_send[p] = true;
            s.any_last_was_send = true;
        })
    }

    pub(crate) fn received(&self, peer: PartyId, bytes: u64) {
        self.with(|s| {
            let p = peer.0 as usize;
            let t = &mut s.snapshot.per_peer[p];
            t.bytes_received += bytes;
            t.messages_received += 1;
            s.snapshot.total.bytes_received += bytes;
            s.snapshot.total.messages_received += 1;
            s.last_was_send[p] = false;
            s.any_last_was_send = false;
        })
    }

    /// The counters now.
    pub fn snapshot(&self) -> MeterSnapshot {
        self.with(|s| s.snapshot.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_count_bursts_of_sending() {
        let m = Meters::new(3);
        m.sent(PartyId(1), 10);
        m.sent(PartyId(2), 10);
        m.received(PartyId(1), 5);
        m.received(PartyId(2), 5);
        m.sent(PartyId(1), 10);
        let s = m.snapshot();
        assert_eq!(s.total.rounds, 2);
        assert_eq!(s.peer(PartyId(1)).rounds, 2);
        assert_eq!(s.peer(PartyId(2)).rounds, 1);
        assert_eq!(s.total.bytes_sent, 30);
        assert_eq!(s.total.bytes_received, 10);
        let later = {
            m.sent(PartyId(2), 1);
            m.snapshot()
        };
        assert_eq!(later.since(&s).total.bytes_sent, 1);
    }
}
