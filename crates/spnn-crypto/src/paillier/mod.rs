//! Paillier encryption on GMP (through `rug`), with the speed-ups SPNN-HE relies on.
//!
//! - **Keys** ([`Keypair::generate`]): a modulus `n = p·q` of [`KeySize::Bits2048`] (default) or
//!   [`KeySize::Bits3072`]. Anything smaller is refused ([`CryptoError::KeyTooSmall`]) except by
//!   [`Keypair::generate_insecure_for_tests`] and [`PublicKey::from_data_insecure_for_tests`].
//!   Public and secret keys serialise separately; deserialising validates them.
//! - **Encryption** uses `g = n + 1`, so `g^m = 1 + m·n mod n²`, and DJN-style randomness: the
//!   public key carries `h_s = h^n mod n²` for `h = −x² mod n`, and a ciphertext is
//!   `(1 + m·n)·h_s^a mod n²` with a short random exponent `a` of
//!   [`KeySize::randomness_bits`] bits (4× the security level, so Pollard-λ style attacks on
//!   the exponent cost as much as factoring `n`). `h_s^a` comes from a fixed-base table of
//!   `h_s^{j·2^{8i}}` (8-bit windows), so an encryption is about `bits/8` multiplications mod
//!   `n²`. [`PublicKey::encrypt_textbook`] (`r^n mod n²`) is kept for comparison.
//! - **Decryption** by CRT: two half-size exponentiations mod `p²` and `q²`.
//! - **Ciphertexts carry their key's [`KeyId`]**; combining ciphertexts of different keys is an
//!   error. Bytes from outside become a ciphertext only through
//!   [`PublicKey::ciphertext_from_bytes`], which checks `0 < c < n²` and `gcd(c, n) = 1`.
//! - **Packing** ([`Packing`]) places several signed values in one plaintext; a
//!   [`PackedCiphertext`] tracks the largest magnitude its slots may hold and refuses any
//!   operation that could overflow a slot.
//!
//! Timing side channels (table lookups indexed by the secret exponent, GMP's variable-time
//! exponentiation in decryption) are outside the semi-honest, remote threat model of spnn.

mod ciphertext;
pub(crate) mod fixed_base;
mod keys;
mod matrix;
mod packing;

pub use ciphertext::Ciphertext;
pub(crate) use keys::random_prime;
pub use keys::{
    CIRCUIT_PRIVACY_MARGIN_BITS, KeyId, KeySize, Keypair, MIN_SECURE_BITS, PublicKey,
    PublicKeyData, SecretKey, SecretKeyData,
};
pub use packing::{PackedCiphertext, PackedMatrix, Packing, straus_window};

#[cfg(doc)]
use crate::error::CryptoError;
