//! # spnn
//!
//! Privacy-preserving deep learning on [Burn](https://burn.dev): several organisations train one
//! network on data none of them may hand over.
//!
//! This facade re-exports the workspace crates:
//!
//! - [`crypto`] (`spnn-crypto`): fixed point in Z_2^64, ring matrices, additive secret sharing,
//!   Beaver triples, truncation and Paillier.
//!
//! Start with the guide in `book/` and the examples in `examples/`.

pub use spnn_crypto as crypto;

/// The names most programs need.
pub mod prelude {
    pub use spnn_crypto::{FixedPoint, RingMatrix, SecureRng, Share};
}
