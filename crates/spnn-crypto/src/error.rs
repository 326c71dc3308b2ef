//! The crate's single error type.

use crate::paillier::KeyId;

/// Everything that can go wrong in spnn-crypto.
///
/// Every variant is reachable from data that may come from another party or a file, so none of
/// them is a panic: callers get a message that says what failed and with which values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// A NaN or an infinity was given to the fixed-point encoder.
    #[error("cannot encode the non-finite value {value} as fixed point")]
    NonFinite {
        /// The offending value, printed with `{}`.
        value: String,
    },
    /// A finite value is too large in magnitude for the fixed-point range.
    #[error(
        "value {value} is outside the fixed-point range (|x| < {max_abs}) with {frac_bits} fractional bits"
    )]
    OutOfRange {
        /// The offending value.
        value: String,
        /// The largest magnitude the encoding accepts (exclusive).
        max_abs: String,
        /// The fractional bits of the encoding.
        frac_bits: u32,
    },
    /// A fixed-point configuration that cannot work.
    #[error("invalid fixed-point configuration: {0}")]
    InvalidFixedPoint(String),
    /// A fixed-point computation would leave the ring's overflow budget.
    #[error("fixed-point overflow budget exceeded: {0}")]
    BudgetExceeded(String),
    /// Two matrices with incompatible shapes met in an operation.
    #[error("shape mismatch in {op}: left is {left:?}, right is {right:?}")]
    ShapeMismatch {
        /// The operation, such as `matmul`.
        op: &'static str,
        /// (rows, cols) of the left operand.
        left: (usize, usize),
        /// (rows, cols) of the right operand.
        right: (usize, usize),
    },
    /// A buffer does not hold rows × cols elements.
    #[error("a {rows}x{cols} matrix needs {} elements, got {len}", rows.saturating_mul(*cols))]
    BadLength {
        /// Declared rows.
        rows: usize,
        /// Declared columns.
        cols: usize,
        /// Elements actually present.
        len: usize,
    },
    /// Sharing needs at least two parties, and at most `u16::MAX`.
    #[error("invalid number of parties {0}: sharing needs 2..=65535")]
    PartyCount(usize),
    /// A set of shares that does not reconstruct: missing, duplicated or foreign parties.
    #[error("inconsistent shares: {0}")]
    InconsistentShares(String),
    /// An operation that is only defined for a particular number of parties.
    #[error("{op} needs exactly {expected} parties, the share belongs to a {found}-party sharing")]
    WrongPartyCount {
        /// The operation.
        op: &'static str,
        /// Parties the operation supports.
        expected: usize,
        /// Parties in the sharing.
        found: usize,
    },
    /// A Paillier modulus below the secure minimum, outside the insecure test constructors.
    #[error("Paillier modulus of {bits} bits refused: at least {min} bits are required")]
    KeyTooSmall {
        /// Size of the offered modulus.
        bits: u32,
        /// Smallest size accepted.
        min: u32,
    },
    /// A malformed Paillier key.
    #[error("invalid Paillier key: {0}")]
    InvalidKey(String),
    /// Two ciphertexts (or a ciphertext and a key) from different keys met.
    #[error("ciphertext under key {found} used with key {expected}")]
    KeyMismatch {
        /// The key the operation runs under.
        expected: KeyId,
        /// The key the ciphertext carries.
        found: KeyId,
    },
    /// A ciphertext that is not an element of Z*_{n²}, or bytes that do not encode one.
    #[error("invalid ciphertext: {0}")]
    InvalidCiphertext(String),
    /// Bytes that do not encode a ristretto255 point, or encode the identity (private set
    /// intersection).
    #[error("invalid group element: {0}")]
    InvalidPoint(String),
    /// A plaintext outside the range the key can encrypt.
    #[error("plaintext out of range: {0}")]
    PlaintextOutOfRange(String),
    /// A packed value, or the result of an operation on packed values, would not fit its slot.
    #[error("packed slot overflow: values may need {needed_bits} bits, slots hold {slot_bits}")]
    SlotOverflow {
        /// Bits the values may need (sign included).
        needed_bits: u32,
        /// Slot width.
        slot_bits: u32,
    },
    /// A packing layout that cannot work with a key.
    #[error("invalid packing: {0}")]
    InvalidPacking(String),
}

/// Result alias of spnn-crypto.
pub type Result<T> = std::result::Result<T, CryptoError>;

/// `Ok` if a row-major buffer of `len` elements is exactly a `rows × cols` matrix — the one
/// check behind every matrix constructor of this crate.
pub(crate) fn check_len(rows: usize, cols: usize, len: usize) -> Result<()> {
    if rows.checked_mul(cols) == Some(len) {
        Ok(())
    } else {
        Err(CryptoError::BadLength { rows, cols, len })
    }
}
