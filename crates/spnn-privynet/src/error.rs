//! Errors of the PrivyNet crate.

use thiserror::Error;

/// What can go wrong building, loading or running PrivyNet components.
#[derive(Debug, Error)]
pub enum PrivyError {
    /// A configuration that cannot work (zero channels, more channels than the layer has, ...).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Tensors or images whose shapes do not fit together.
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// Pixel or feature values that are not finite.
    #[error("non-finite value: {0}")]
    NonFinite(String),
    /// Loading or saving weights failed.
    #[error("weights {path}: {reason}")]
    Weights {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {reason}")]
    Io {
        /// The file or directory.
        path: String,
        /// The operating system's message.
        reason: String,
    },
    /// A malformed upload message.
    #[error("malformed upload: {0}")]
    Upload(String),
    /// Reading a data set failed.
    #[error(transparent)]
    Data(#[from] spnn_data::DataError),
}

/// `Result` with [`PrivyError`].
pub type Result<T> = std::result::Result<T, PrivyError>;
