//! # spnn
//!
//! Privacy-preserving deep learning on [Burn](https://burn.dev): several organisations train one
//! network on data none of them may hand over.
//!
//! This facade re-exports the workspace crates:
//!
//! - [`crypto`] (`spnn-crypto`): fixed point in Z_2^64, ring matrices, additive secret sharing,
//!   Beaver triples, truncation and Paillier.
//! - [`net`] (`spnn-net`): parties, roles, bounded codecs and frames, in-memory and mutual-TLS
//!   transports, meters.
//! - [`data`] (`spnn-data`): tables, vertical partitions, packaged and embedded data sets.
//! - [`burn`] (`spnn-burn`): `PrivateLinear`, `SecureAggregation`, the SPNN-SS and SPNN-HE
//!   protocols, simulation, checkpoints.
//! - [`privynet`] (`spnn-privynet`): PrivyNet's frozen local extractor, channel selection,
//!   reconstruction attack and topology optimiser.
//! - [`cli`] (`spnn-cli`): the `spnn` command.
//!
//! Start with the guide in `book/` and the examples in `examples/`.

pub mod bench;
pub mod report;

pub use spnn_burn as burn;
pub use spnn_cli as cli;
pub use spnn_crypto as crypto;
pub use spnn_data as data;
pub use spnn_net as net;
pub use spnn_privynet as privynet;

/// The names most programs need.
pub mod prelude {
    pub use spnn_crypto::{FixedPoint, RingMatrix, SecureRng, Share};
}
