//! # spnn
//!
//! Privacy-preserving deep learning on [Burn](https://burn.dev): several organisations train one
//! network on data none of them may hand over.
//!
//! This facade re-exports the workspace crates:
//!
//! - [`crypto`] (`spnn-crypto`): fixed point in Z_2^64, ring matrices, additive secret sharing,
//!   Beaver triples, truncation and Paillier.
//! - [`net`] (`spnn-net`): parties, roles, bounded codecs and frames, in-memory transport,
//!   meters; with the `tls` feature, the mutual-TLS transport and certificates.
//! - [`data`] (`spnn-data`): tables, vertical partitions, packaged and embedded data sets.
//! - [`burn`] (`spnn-burn`): `PrivateLinear`, `SecureAggregation`, the SPNN-SS and SPNN-HE
//!   protocols, simulation, checkpoints.
//! - `privynet` (`spnn-privynet`, with the `privynet` feature): PrivyNet's frozen local
//!   extractor, channel selection, reconstruction attack and topology optimiser.
//!
//! The `spnn` command is the `spnn-cli` crate. Features: `tls`, `privynet`, `train` (burn-train's
//! `Learner`, for the `custom_model` example) and `cuda`; none is on by default, so a program that
//! simulates a session in one process builds neither tokio, rustls nor burn-train.
//!
//! Start with the guide in `book/` and the examples in `examples/`.

pub use spnn_burn as burn;
pub use spnn_crypto as crypto;
pub use spnn_data as data;
pub use spnn_net as net;
#[cfg(feature = "privynet")]
pub use spnn_privynet as privynet;

/// The names most programs need.
pub mod prelude {
    pub use spnn_crypto::{FixedPoint, RingMatrix, SecureRng, Share};
}
