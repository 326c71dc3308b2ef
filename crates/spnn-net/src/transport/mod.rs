//! Transports move opaque frames between two parties. [`crate::Network`] adds headers,
//! ordering, kinds and meters on top, identically for every transport.
//!
//! - [`memory`]: threads and channels in one process (simulation and tests).
//! - [`tls`]: TCP with mutual TLS 1.3 (tokio + rustls), one connection per pair of parties.

use std::time::Duration;

use crate::error::Result;
use crate::party::PartyId;

pub mod memory;
#[cfg(feature = "tls")]
pub mod tls;

/// Moves frames to and from peers. Sending never blocks on the peer (frames are queued), so
/// two parties may send to each other at the same time without deadlock.
pub trait Transport: Send + Sync + std::fmt::Debug {
    /// Queues a frame for `to`.
    fn send(&self, to: PartyId, frame: Vec<u8>) -> Result<()>;
    /// The next frame from `from`, waiting at most `timeout`.
    fn recv(&self, from: PartyId, timeout: Duration) -> Result<Vec<u8>>;
    /// Closes this party's end for every peer, as a process exiting would: peers waiting for it
    /// learn at once that it is gone. Later sends fail. A no-op where the end closes with the
    /// process anyway.
    fn close(&self) {}
}
