//! The crate's error type.

use spnn_crypto::CryptoError;
use spnn_data::DataError;
use spnn_net::{NetError, PartyId};

/// Everything that can go wrong in an SPNN session.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum SpnnError {
    /// A cryptographic operation failed (shapes, scales, keys, ranges).
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// The network failed: a peer vanished, stalled or sent something malformed.
    #[error(transparent)]
    Net(#[from] NetError),
    /// Local data is unusable (unknown ids, bad shapes).
    #[error(transparent)]
    Data(#[from] DataError),
    /// A peer broke the protocol: an unexpected command, inconsistent shapes or sizes.
    #[error("protocol violation by {peer}: {reason}")]
    Protocol {
        /// The party at fault.
        peer: PartyId,
        /// What it did.
        reason: String,
    },
    /// A configuration that cannot work.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The server proposed something this party's own policy refuses.
    #[error("refused by this party's policy: {0}")]
    Policy(String),
    /// A checkpoint or key file that cannot be written or read.
    #[error("{path}: {reason}")]
    Persistence {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// A value that is not finite reached a protocol boundary.
    #[error("non-finite value in {0}")]
    NonFinite(&'static str),
    /// Burn failed to produce or read a tensor.
    #[error("tensor error: {0}")]
    Tensor(String),
}

/// Result alias of spnn-burn.
pub type Result<T> = std::result::Result<T, SpnnError>;

pub(crate) fn protocol(peer: PartyId, reason: impl Into<String>) -> SpnnError {
    SpnnError::Protocol {
        peer,
        reason: reason.into(),
    }
}
