//! # spnn-crypto
//!
//! The cryptographic core of spnn: math only, no I/O. Protocol steps in `spnn-burn` combine
//! these pure functions with message exchanges over `spnn-net` channels.
//!
//! - [`fixed`]: fixed-point encoding of reals into Z_2^64, its range and error bounds.
//! - [`ring`]: [`RingMatrix`], row-major matrices over Z_2^64 with a blocked, parallel product.
//! - [`share`]: additive secret sharing among `n ≥ 2` parties, with seed-derived shares.
//! - [`beaver`]: the dealer's Beaver triples and truncation triples, the share-side algebra of
//!   a secure product, and an exact truncation of values below a public bound.
//! - [`integer`]: additive shares over Z that truncate exactly (SPNN-HE's gradient path).
//! - [`paillier`]: Paillier with DJN fixed-base encryption, CRT decryption and packing.
//! - [`mod@derive`]: named streams from one secret seed, and zero-sharing masks.
//! - [`psi`]: ECDH private set intersection over ristretto255 (hash to the group, blinding).
//! - [`rng`]: ChaCha20 from OS entropy for everything secret.
//!
//! Everything that can receive data from another party or a file returns [`CryptoError`]
//! instead of panicking.

pub mod beaver;
pub mod compare;
pub mod derive;
pub mod error;
pub mod fixed;
pub mod integer;
pub mod ou;
pub mod paillier;
pub mod psi;
pub mod ring;
pub mod rng;
pub mod share;

pub use error::{CryptoError, Result};
pub use fixed::FixedPoint;
pub use integer::IntMatrix;
pub use ring::RingMatrix;
pub use rng::{SecretSeed, SecureRng};
pub use share::Share;
