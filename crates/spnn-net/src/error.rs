//! The crate's error types: [`CodecError`] for bytes that do not decode, [`NetError`] for
//! everything else that can go wrong between parties.

use std::time::Duration;

use crate::party::PartyId;

/// A payload or header that does not decode. Every variant is data from outside; none panics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The buffer ended while `need` more bytes were expected for `what`.
    #[error("missing data: {what} needs {need} more bytes, {have} left")]
    MissingData {
        /// What was being read.
        what: &'static str,
        /// Bytes needed.
        need: usize,
        /// Bytes left in the buffer.
        have: usize,
    },
    /// Bytes remained after the message was complete.
    #[error("{0} trailing bytes after the message")]
    TrailingData(usize),
    /// A length prefix above its maximum.
    #[error("{what} of length {len} exceeds the maximum {max}")]
    TooLong {
        /// What the length counts.
        what: &'static str,
        /// Declared length.
        len: u64,
        /// Largest accepted.
        max: u64,
    },
    /// A value that is well-formed bytes but not a valid instance.
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// The type or field.
        what: &'static str,
        /// Why it was refused.
        reason: String,
    },
}

/// Errors of the network layer. Messages name the peer (and its party id) involved.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// A message from `peer` did not decode.
    #[error("malformed message from {peer}: {source}")]
    Codec {
        /// The sender.
        peer: PartyId,
        /// What was wrong.
        source: CodecError,
    },
    /// A frame header with a protocol version this build does not speak.
    #[error("frame from {peer} has protocol version {found}, this build speaks {expected}")]
    UnknownVersion {
        /// The sender.
        peer: PartyId,
        /// Our version.
        expected: u8,
        /// Theirs.
        found: u8,
    },
    /// A frame of another session.
    #[error("frame from {peer} belongs to session {found:016x}, this is session {expected:016x}")]
    ForeignSession {
        /// The sender.
        peer: PartyId,
        /// Our session.
        expected: u64,
        /// The frame's.
        found: u64,
    },
    /// A frame out of order: a replay, a drop or a desynchronised protocol.
    #[error("frame from {peer} has step {found}, expected step {expected}")]
    OutOfOrder {
        /// The sender.
        peer: PartyId,
        /// The step we expected.
        expected: u64,
        /// The frame's step.
        found: u64,
    },
    /// A message of another kind than the protocol step expects.
    #[error("expected a {expected} message from {peer}, got kind {found:#06x}")]
    UnexpectedKind {
        /// The sender.
        peer: PartyId,
        /// The expected message type.
        expected: &'static str,
        /// The kind found in the header.
        found: u16,
    },
    /// A frame larger than the configured maximum (refused before it is read into memory).
    #[error("frame of {len} bytes from {peer} exceeds the maximum of {max} bytes")]
    FrameTooLarge {
        /// The sender (or the destination, when sending).
        peer: PartyId,
        /// Declared size.
        len: u64,
        /// Configured maximum.
        max: u64,
    },
    /// Nothing arrived from `peer` within the timeout.
    #[error("no message from {peer} within {waited:?}")]
    Timeout {
        /// The silent peer.
        peer: PartyId,
        /// How long we waited.
        waited: Duration,
    },
    /// The connection to `peer` is gone.
    #[error("lost connection to {peer}: {reason}")]
    PeerLost {
        /// The vanished peer.
        peer: PartyId,
        /// What happened.
        reason: String,
    },
    /// A party id that is not part of this deployment, or ourselves.
    #[error("{0} is not a peer of this party")]
    UnknownPeer(PartyId),
    /// Connection set-up failed (connect, TLS handshake, identity check).
    #[error("could not connect to {peer}: {reason}")]
    Connect {
        /// The peer.
        peer: PartyId,
        /// Why.
        reason: String,
    },
    /// Certificates or keys that cannot be used.
    #[error("certificate error: {0}")]
    Certificate(String),
    /// Local I/O (files, sockets) failed.
    #[error("I/O error: {0}")]
    Io(String),
    /// A configuration that cannot work.
    #[error("invalid network configuration: {0}")]
    Config(String),
}

impl From<std::io::Error> for NetError {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e.to_string())
    }
}

/// Result alias of spnn-net.
pub type Result<T> = std::result::Result<T, NetError>;
