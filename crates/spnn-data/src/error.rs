//! The crate's error type.

/// Errors of data loading and partitioning. Messages name the file, line or column involved.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// A malformed line in a data file.
    #[error("{file}:{line}: {reason}")]
    Parse {
        /// The file (or embedded source) name.
        file: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// A column that the table does not have.
    #[error("unknown column {0:?}")]
    UnknownColumn(String),
    /// A sample id that the table does not have.
    #[error("unknown sample id {0}")]
    UnknownId(u64),
    /// Holders whose ids do not align.
    #[error("ids do not align across holders: {0}")]
    Misaligned(String),
    /// Anything else that makes the data unusable.
    #[error("invalid data: {0}")]
    Invalid(String),
    /// A file that cannot be read.
    #[error("{path}: {reason}")]
    Io {
        /// The path.
        path: String,
        /// The operating system's message.
        reason: String,
    },
}

/// Result alias of spnn-data.
pub type Result<T> = std::result::Result<T, DataError>;
