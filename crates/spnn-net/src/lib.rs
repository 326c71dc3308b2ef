//! # spnn-net
//!
//! How the parties of an SPNN deployment talk: typed party ids and roles ([`party`]),
//! explicit bounded codecs ([`codec`]), frames with version, session, step and kind
//! ([`frame`]), meters ([`meter`]), and two transports with one API ([`transport`]): in-memory
//! channels for simulation and mutual TLS 1.3 over TCP for deployments, with certificates from
//! [`certs`] (the TLS transport and `certs` need the `tls` feature; a program that only
//! simulates in one process builds none of tokio or rustls).
//!
//! [`Network`] is what protocols use: `send(peer, &msg)` and `recv::<M>(peer)`, full mesh, so
//! holder-to-holder traffic never passes through the server. Every failure — a malformed,
//! oversized, foreign or out-of-order frame, a peer that vanishes or stalls, a wrong
//! certificate — is a [`NetError`] naming the peer, never a panic or a hang.
//!
//! This crate knows nothing of Burn.

#[cfg(feature = "tls")]
pub mod certs;
pub mod codec;
pub mod error;
pub mod files;
pub mod frame;
pub mod meter;
pub mod network;
pub mod party;
pub mod transport;

pub use codec::{Blob, Codec, FloatMatrix, IdList, Message, Reader};
pub use error::{CodecError, NetError, Result};
pub use meter::{MeterSnapshot, Traffic};
pub use network::{Network, NetworkConfig, Received, Sent};
pub use party::{PartyId, Role, Roster};
