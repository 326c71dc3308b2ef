//! The SPNN protocols, one party per module. Each step reads top to bottom with the step names
//! of the guide (`book/src/protocols.md`).
//!
//! - [`holder`]: a data holder's side of SPNN-SS (sharing its features, Beaver products with the
//!   other holders, the weight update) and of bottom-model aggregation.
//! - [`dealer`]: correlated randomness, at the server or at a separate dealer party.
//! - [`server`]: the server's side: it drives every step and learns only `Z` and what follows.

pub(crate) mod bundle;
pub mod dealer;
pub mod he;
pub mod holder;
pub mod pairwise;
pub mod scale;
pub mod server;

use sha2::{Digest, Sha256};
use spnn_crypto::{RingMatrix, SecretSeed, SecureRng};

use crate::config::SpnnConfig;
use crate::messages::LayerKind;
use scale::{PublicScale, truncation_shifts};

/// A generator derived from a seed two holders share, for one purpose, owner and step. Both
/// holders derive the same stream; nobody else can.
pub(crate) fn pair_prg(
    seed: &SecretSeed,
    purpose: &str,
    owner: usize,
    step: u64,
    shape: (usize, usize),
) -> RingMatrix {
    let mut h = Sha256::new();
    h.update(seed.to_bytes());
    h.update(purpose.as_bytes());
    h.update((owner as u64).to_le_bytes());
    h.update(step.to_le_bytes());
    let mut bytes = [0u8; 32];
    bytes.copy_from_slice(&h.finalize());
    RingMatrix::random(
        shape.0,
        shape.1,
        &mut SecureRng::from_secret_seed(&SecretSeed::from_bytes(bytes)),
    )
}

/// Truncation shifts of the backward step (`Xᵀ·cG` at `2f` times `1/c` into `f`).
pub(crate) fn backward_shifts(config: &SpnnConfig, scale: f64) -> crate::error::Result<Vec<u32>> {
    let f = config.frac_bits;
    Ok(truncation_shifts(2 * f, f, &PublicScale::of(1.0 / scale)?))
}

/// Truncation shifts of an update with learning rate `lr`.
pub(crate) fn update_shifts(config: &SpnnConfig, lr: f64) -> crate::error::Result<Vec<u32>> {
    let f = config.frac_bits;
    let mut shifts = Vec::new();
    if config.momentum > 0.0 {
        shifts.extend(truncation_shifts(f, f, &PublicScale::of(config.momentum)?));
    }
    shifts.extend(truncation_shifts(f, f, &PublicScale::of(lr)?));
    Ok(shifts)
}

/// Whether holders need dealer truncation pairs (more than two holders, SPNN-SS weights).
pub(crate) fn needs_pairs(holders: usize, kind: LayerKind) -> bool {
    holders > 2 && kind == LayerKind::PrivateLinear
}
