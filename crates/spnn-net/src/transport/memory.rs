//! An in-process transport: one unbounded channel per direction between every two parties.
//!
//! Dropping a party's [`MemoryTransport`], or closing it ([`Transport::close`]: in one process
//! other handles may keep it alive), closes its channels; peers waiting for it get
//! [`NetError::PeerLost`] immediately, as they would from a closed TCP connection.

use std::sync::Mutex;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, unbounded};

use super::Transport;
use crate::error::{NetError, Result};
use crate::party::PartyId;

/// One party's end of an in-memory full mesh.
#[derive(Debug)]
pub struct MemoryTransport {
    me: PartyId,
    /// Senders to every peer; emptied by [`Transport::close`].
    to: Mutex<Vec<Option<Sender<Vec<u8>>>>>,
    from: Vec<Option<Receiver<Vec<u8>>>>,
}

/// Builds a full mesh of `parties` in-memory transports; element `i` belongs to party `i`.
pub fn mesh(parties: usize) -> Vec<MemoryTransport> {
    let mut ends: Vec<MemoryTransport> = (0..parties)
        .map(|i| MemoryTransport {
            me: PartyId(i as u16),
            to: Mutex::new((0..parties).map(|_| None).collect()),
            from: (0..parties).map(|_| None).collect(),
        })
        .collect();
    for a in 0..parties {
        for b in 0..parties {
            if a != b {
                let (tx, rx) = unbounded();
                ends[a].to.get_mut().unwrap_or_else(|e| e.into_inner())[b] = Some(tx);
                ends[b].from[a] = Some(rx);
            }
        }
    }
    ends
}

impl MemoryTransport {
    /// The party this end belongs to.
    pub fn me(&self) -> PartyId {
        self.me
    }
}

impl Transport for MemoryTransport {
    fn send(&self, to: PartyId, frame: Vec<u8>) -> Result<()> {
        let senders = self.to.lock().unwrap_or_else(|e| e.into_inner());
        let tx = match senders.get(to.0 as usize) {
            None => return Err(NetError::UnknownPeer(to)),
            Some(None) if to != self.me => {
                return Err(NetError::PeerLost {
                    peer: to,
                    reason: "this party's endpoint was closed".into(),
                });
            }
            Some(tx) => tx.as_ref().ok_or(NetError::UnknownPeer(to))?,
        };
        tx.send(frame).map_err(|_| NetError::PeerLost {
            peer: to,
            reason: "the peer's endpoint was dropped".into(),
        })
    }

    fn recv(&self, from: PartyId, timeout: Duration) -> Result<Vec<u8>> {
        let rx = self
            .from
            .get(from.0 as usize)
            .and_then(Option::as_ref)
            .ok_or(NetError::UnknownPeer(from))?;
        rx.recv_timeout(timeout).map_err(|e| match e {
            RecvTimeoutError::Timeout => NetError::Timeout {
                peer: from,
                waited: timeout,
            },
            RecvTimeoutError::Disconnected => NetError::PeerLost {
                peer: from,
                reason: "the peer's endpoint was dropped".into(),
            },
        })
    }

    fn close(&self) {
        let mut senders = self.to.lock().unwrap_or_else(|e| e.into_inner());
        senders.iter_mut().for_each(|tx| *tx = None);
    }
}
