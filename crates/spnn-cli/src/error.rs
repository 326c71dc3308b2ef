//! The command's errors.

/// What can stop a party.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// The deployment file.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The protocol or the session.
    #[error(transparent)]
    Spnn(#[from] spnn_burn::SpnnError),
    /// Data files.
    #[error(transparent)]
    Data(#[from] spnn_data::DataError),
    /// Networking and certificates.
    #[error(transparent)]
    Net(#[from] spnn_net::NetError),
    /// Keys.
    #[error(transparent)]
    Crypto(#[from] spnn_crypto::CryptoError),
    /// A checkpoint index that cannot be read.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// Local files.
    #[error("{0}")]
    Io(String),
    /// Command-line usage.
    #[error("{0}")]
    Usage(String),
}

/// Result alias of the command.
pub type Result<T> = std::result::Result<T, CliError>;
