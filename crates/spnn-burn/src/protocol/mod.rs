//! The SPNN protocols, one party per module. Each step reads top to bottom with the step names
//! of the guide (`book/src/protocols.md`).
//!
//! - [`holder`]: a data holder's side of SPNN-SS (sharing its features, Beaver products with the
//!   other holders, the weight update) and of bottom-model aggregation.
//! - [`dealer`]: correlated randomness, at the server or at a separate dealer party.
//! - [`server`]: the server's side: it drives every step and learns only `Z` and what follows.

pub mod adam;
pub mod bounds;
pub(crate) mod bundle;
pub mod clip;
pub mod dealer;
pub mod he;
pub mod holder;
pub mod pairwise;
pub mod policy;
pub mod scale;
pub mod server;

use crate::config::{Protocol, SpnnConfig};
use crate::messages::LayerKind;
use scale::{PublicScale, truncation_shifts};

/// Truncation shifts of the backward step (`Xᵀ·cG` at `2f` times `1/c` into `f`).
pub(crate) fn backward_shifts(config: &SpnnConfig, scale: f64) -> crate::error::Result<Vec<u32>> {
    let f = config.frac_bits;
    Ok(truncation_shifts(2 * f, f, &PublicScale::of(1.0 / scale)?))
}

/// Truncation shifts of update `t` (from 1) with learning rate `lr`, in the holders' order:
/// gradient clipping's ([`clip::shifts`]), then weight decay, momentum, dampening, the
/// Nesterov step, the learning rate (module [`holder`]'s SPNN-SS update), or Adam's
/// ([`adam::Plan::shifts`]).
pub(crate) fn update_shifts(
    config: &SpnnConfig,
    lr: f64,
    t: u64,
) -> crate::error::Result<Vec<u32>> {
    let mut shifts = clip::shifts(config)?;
    if config.adam.is_some() {
        shifts.extend(adam::Plan::new(config, lr, t)?.shifts()?);
        return Ok(shifts);
    }
    let f = config.frac_bits;
    let by = |c: f64| -> crate::error::Result<Vec<u32>> {
        Ok(truncation_shifts(f, f, &PublicScale::of(c)?))
    };
    if config.weight_decay > 0.0 {
        shifts.extend(by(config.weight_decay)?);
    }
    if config.momentum > 0.0 {
        shifts.extend(by(config.momentum)?);
        if config.dampening > 0.0 {
            shifts.extend(by(1.0 - config.dampening)?);
        }
        if config.nesterov {
            shifts.extend(by(config.momentum)?);
        }
    }
    shifts.extend(by(lr)?);
    Ok(shifts)
}

/// Element-wise products of update `t`, in the holders' order: gradient clipping's
/// ([`clip::products`]), then Adam's ([`adam::Plan::products`]; none for SGD).
pub(crate) fn update_products(config: &SpnnConfig, lr: f64, t: u64) -> crate::error::Result<usize> {
    let adam = match config.adam {
        Some(_) => adam::Plan::new(config, lr, t)?.products(),
        None => 0,
    };
    Ok(clip::products(config)? + adam)
}

/// Secure comparisons of one update: gradient clipping's ([`clip::comparisons`]).
pub fn update_comparisons(config: &SpnnConfig) -> usize {
    clip::comparisons(config)
}

/// Whether holders need dealt truncation triples: SPNN-SS weights, any number of holders.
pub(crate) fn needs_truncations(config: &SpnnConfig, kind: LayerKind) -> bool {
    kind == LayerKind::PrivateLinear && config.protocol == Protocol::SecretSharing
}
