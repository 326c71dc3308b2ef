//! [`Network`]: typed, ordered, metered messages between the parties of one session.
//!
//! Each directed pair of parties has a step counter. A frame carries the sender's counter; the
//! receiver accepts it only if it is exactly the step it expects next, so replays, drops and
//! desynchronised protocols surface as [`NetError::OutOfOrder`] instead of wrong results. The
//! header's session id and message kind are checked before the payload is decoded.
//!
//! A `Network` is a cheap handle (`Arc` inside): clones share counters, meters and transport.
//! One party should receive from a given peer on one thread at a time.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::codec::{Message, decode_exact};
use crate::error::{NetError, Result};
use crate::frame::{
    DEFAULT_MAX_FRAME, HEADER_LEN, LENGTH_PREFIX, PROTOCOL_VERSION, decode_header, encode_frame,
};
use crate::meter::{MeterSnapshot, Meters};
use crate::party::{PartyId, Role, Roster};
use crate::transport::Transport;
use crate::transport::memory;

/// Session-wide settings every party of a session must share.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetworkConfig {
    /// The session id stamped on every frame.
    pub session: u64,
    /// How long a receive waits before [`NetError::Timeout`].
    pub timeout: Duration,
    /// Largest frame sent or accepted.
    pub max_frame: usize,
    /// Keep a copy of every frame received and sent, for transcript audits and the adversary
    /// tests, which rebuild a party's whole view from what it received and what it generated
    /// and sent. Off by default.
    pub record_transcript: bool,
}

impl NetworkConfig {
    /// A session with a 60 s receive timeout and 256 MiB frames.
    pub fn new(session: u64) -> Self {
        Self {
            session,
            timeout: Duration::from_secs(60),
            max_frame: DEFAULT_MAX_FRAME,
            record_transcript: false,
        }
    }

    /// The same with another receive timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The same, recording every frame received ([`Network::transcript`]) and sent
    /// ([`Network::sent`]).
    pub fn with_transcript(mut self) -> Self {
        self.record_transcript = true;
        self
    }

    /// The same with another maximum frame size.
    pub fn with_max_frame(mut self, max_frame: usize) -> Self {
        self.max_frame = max_frame;
        self
    }
}

/// One received message, as recorded for audits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    /// The sender.
    pub from: PartyId,
    /// The message kind.
    pub kind: u16,
    /// The payload bytes.
    pub payload: Vec<u8>,
}

/// One sent message, as recorded for audits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sent {
    /// The receiver.
    pub to: PartyId,
    /// The message kind.
    pub kind: u16,
    /// The payload bytes.
    pub payload: Vec<u8>,
}

#[derive(Debug)]
struct Steps {
    send: Vec<u64>,
    recv: Vec<u64>,
}

#[derive(Debug)]
struct Inner {
    me: PartyId,
    roster: Roster,
    config: NetworkConfig,
    transport: Box<dyn Transport>,
    steps: Mutex<Steps>,
    meters: Meters,
    transcript: Mutex<Vec<Received>>,
    sent: Mutex<Vec<Sent>>,
}

/// One party's handle on its session's network.
#[derive(Clone, Debug)]
pub struct Network {
    inner: Arc<Inner>,
}

impl Network {
    /// Wraps a transport for party `me` of `roster`.
    pub fn new(
        me: PartyId,
        roster: Roster,
        config: NetworkConfig,
        transport: impl Transport + 'static,
    ) -> Result<Self> {
        roster.role(me)?;
        let n = roster.len();
        Ok(Self {
            inner: Arc::new(Inner {
                me,
                config,
                transport: Box::new(transport),
                steps: Mutex::new(Steps {
                    send: vec![0; n],
                    recv: vec![0; n],
                }),
                meters: Meters::new(n),
                transcript: Mutex::new(Vec::new()),
                sent: Mutex::new(Vec::new()),
                roster,
            }),
        })
    }

    /// A full in-memory mesh for simulation: element `i` is party `i`'s handle.
    pub fn in_memory(roster: &Roster, config: NetworkConfig) -> Vec<Network> {
        memory::mesh(roster.len())
            .into_iter()
            .map(|t| {
                let me = t.me();
                Network::new(me, roster.clone(), config, t).expect("mesh ids come from the roster")
            })
            .collect()
    }

    /// This party.
    pub fn me(&self) -> PartyId {
        self.inner.me
    }

    /// This party's role.
    pub fn role(&self) -> Role {
        self.inner
            .roster
            .role(self.inner.me)
            .expect("checked at construction")
    }

    /// The deployment.
    pub fn roster(&self) -> &Roster {
        &self.inner.roster
    }

    /// The session settings.
    pub fn config(&self) -> NetworkConfig {
        self.inner.config
    }

    /// Closes this party's end for every peer, as its process exiting would: a peer waiting
    /// for it gets [`NetError::PeerLost`] at once instead of its receive timeout. For a party
    /// that stops early while other handles of its network live on (the in-process simulation
    /// keeps them for the transcripts); over TLS the end closes when the process exits.
    pub fn close(&self) {
        self.inner.transport.close();
    }

    fn check_peer(&self, peer: PartyId) -> Result<()> {
        if peer == self.inner.me || peer.0 as usize >= self.inner.roster.len() {
            return Err(NetError::UnknownPeer(peer));
        }
        Ok(())
    }

    fn steps(&self) -> std::sync::MutexGuard<'_, Steps> {
        // Counters stay consistent even if a thread panicked while holding the lock.
        self.inner.steps.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends `msg` to `to`.
    pub fn send<M: Message>(&self, to: PartyId, msg: &M) -> Result<()> {
        self.check_peer(to)?;
        let mut steps = self.steps();
        let step = steps.send[to.0 as usize];
        let frame = encode_frame(self.inner.config.session, step, msg);
        if frame.len() > self.inner.config.max_frame {
            return Err(NetError::FrameTooLarge {
                peer: to,
                len: frame.len() as u64,
                max: self.inner.config.max_frame as u64,
            });
        }
        // Counted before the hand-over, so a peer that already holds the message never sees
        // this party's meters lag behind it.
        self.inner
            .meters
            .sent(to, (frame.len() + LENGTH_PREFIX) as u64);
        if self.inner.config.record_transcript {
            self.inner
                .sent
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(Sent {
                    to,
                    kind: M::KIND,
                    payload: frame[HEADER_LEN..].to_vec(),
                });
        }
        self.inner.transport.send(to, frame)?;
        steps.send[to.0 as usize] += 1;
        Ok(())
    }

    /// Receives the next message from `from`, which must be an `M`.
    pub fn recv<M: Message>(&self, from: PartyId) -> Result<M> {
        self.check_peer(from)?;
        let frame = self.inner.transport.recv(from, self.inner.config.timeout)?;
        // Stream transports refuse oversized frames before reading them; this check makes the
        // limit hold for every transport.
        if frame.len() > self.inner.config.max_frame {
            return Err(NetError::FrameTooLarge {
                peer: from,
                len: frame.len() as u64,
                max: self.inner.config.max_frame as u64,
            });
        }
        let codec = |source| NetError::Codec { peer: from, source };
        let (h, payload) = decode_header(&frame).map_err(codec)?;
        if h.version != PROTOCOL_VERSION {
            return Err(NetError::UnknownVersion {
                peer: from,
                expected: PROTOCOL_VERSION,
                found: h.version,
            });
        }
        if h.session != self.inner.config.session {
            return Err(NetError::ForeignSession {
                peer: from,
                expected: self.inner.config.session,
                found: h.session,
            });
        }
        {
            let mut steps = self.steps();
            let expected = steps.recv[from.0 as usize];
            if h.step != expected {
                return Err(NetError::OutOfOrder {
                    peer: from,
                    expected,
                    found: h.step,
                });
            }
            steps.recv[from.0 as usize] += 1;
        }
        if h.kind != M::KIND {
            return Err(NetError::UnexpectedKind {
                peer: from,
                expected: M::NAME,
                found: h.kind,
            });
        }
        let msg = decode_exact(payload).map_err(codec)?;
        self.inner
            .meters
            .received(from, (frame.len() + LENGTH_PREFIX) as u64);
        if self.inner.config.record_transcript {
            self.inner
                .transcript
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(Received {
                    from,
                    kind: h.kind,
                    payload: payload.to_vec(),
                });
        }
        Ok(msg)
    }

    /// Sends the same message to every party in `to`.
    pub fn broadcast<M: Message>(&self, to: &[PartyId], msg: &M) -> Result<()> {
        to.iter().try_for_each(|p| self.send(*p, msg))
    }

    /// Receives one `M` from each party in `from`, in order.
    pub fn gather<M: Message>(&self, from: &[PartyId]) -> Result<Vec<M>> {
        from.iter().map(|p| self.recv(*p)).collect()
    }

    /// Every message received so far, if the session records transcripts.
    pub fn transcript(&self) -> Vec<Received> {
        self.inner
            .transcript
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Every message sent so far, if the session records transcripts.
    pub fn sent(&self) -> Vec<Sent> {
        self.inner
            .sent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// This party's traffic so far.
    pub fn meters(&self) -> MeterSnapshot {
        self.inner.meters.snapshot()
    }

    /// Sends a raw frame, bypassing encoding: only for tests of the receiving side's checks.
    #[doc(hidden)]
    pub fn send_raw_frame_for_tests(&self, to: PartyId, frame: Vec<u8>) -> Result<()> {
        self.inner.transport.send(to, frame)
    }
}
