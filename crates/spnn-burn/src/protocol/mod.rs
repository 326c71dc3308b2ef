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

/// The shape of one dealt item: the weights' `d × h`, or a single value (the scalar steps of
/// clipping by norm, [`clip`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ItemShape {
    /// The weights' `d × h`.
    Weights,
    /// One value.
    Scalar,
}

impl ItemShape {
    /// The matrix shape of this item for weights of `d × h`.
    pub fn dims(self, d: usize, h: usize) -> (usize, usize) {
        match self {
            Self::Weights => (d, h),
            Self::Scalar => (1, 1),
        }
    }
}

/// The dealer's material for one backward or update command, in the order the holders use
/// it: truncation triples (with their shifts), element-wise triples, comparisons' material.
/// It depends only on the public configuration, the learning rate and the update's number.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dealing {
    /// The truncations' shapes and shifts.
    pub truncations: Vec<(ItemShape, u32)>,
    /// The element-wise products' shapes.
    pub products: Vec<ItemShape>,
    /// The secure comparisons' shapes.
    pub comparisons: Vec<ItemShape>,
}

/// A [`Dealing`]'s items as matrix shapes for weights of `d × h`, part by part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DealtShapes {
    /// The truncations' shapes.
    pub truncations: Vec<(usize, usize)>,
    /// The element-wise products' shapes.
    pub products: Vec<(usize, usize)>,
    /// The comparisons' shapes.
    pub comparisons: Vec<(usize, usize)>,
}

impl Dealing {
    /// The items' matrix shapes for weights of `d × h` (what the dealer deals, the holders
    /// receive and the cost model counts).
    pub fn dims(&self, d: usize, h: usize) -> DealtShapes {
        let dims = |s: ItemShape| s.dims(d, h);
        DealtShapes {
            truncations: self.truncations.iter().map(|&(s, _)| dims(s)).collect(),
            products: self.products.iter().map(|&s| dims(s)).collect(),
            comparisons: self.comparisons.iter().map(|&s| dims(s)).collect(),
        }
    }

    /// Whether there is nothing to deal.
    pub fn is_empty(&self) -> bool {
        self.truncations.is_empty() && self.products.is_empty() && self.comparisons.is_empty()
    }

    /// The backward step's: truncations of `Xᵀ·cG` at `2f` times `1/c` into `f`.
    pub fn backward(config: &SpnnConfig, scale: f64) -> crate::error::Result<Self> {
        let f = config.frac_bits;
        Ok(Self {
            truncations: weights(truncation_shifts(2 * f, f, &PublicScale::of(1.0 / scale)?)),
            ..Self::default()
        })
    }

    /// Update `t`'s (from 1) with learning rate `lr`, in the holders' order: gradient
    /// clipping's ([`clip`]), then weight decay, momentum, dampening, the Nesterov step, the
    /// learning rate (module [`holder`]'s SPNN-SS update), or Adam's ([`adam::Plan`]).
    pub fn update(config: &SpnnConfig, lr: f64, t: u64) -> crate::error::Result<Self> {
        let mut dealing = clip::dealing(config)?;
        if config.adam.is_some() {
            let plan = adam::Plan::new(config, lr, t)?;
            dealing.truncations.extend(weights(plan.shifts()?));
            dealing
                .products
                .extend(vec![ItemShape::Weights; plan.products()]);
            return Ok(dealing);
        }
        let f = config.frac_bits;
        let by = |c: f64| -> crate::error::Result<Vec<(ItemShape, u32)>> {
            Ok(weights(truncation_shifts(f, f, &PublicScale::of(c)?)))
        };
        let shifts = &mut dealing.truncations;
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
        Ok(dealing)
    }
}

/// Shifts of weight-shaped truncations.
fn weights(shifts: Vec<u32>) -> Vec<(ItemShape, u32)> {
    shifts
        .into_iter()
        .map(|s| (ItemShape::Weights, s))
        .collect()
}

/// Whether holders need dealt truncation triples: SPNN-SS weights, any number of holders.
pub(crate) fn needs_truncations(config: &SpnnConfig, kind: LayerKind) -> bool {
    kind == LayerKind::PrivateLinear && config.protocol == Protocol::SecretSharing
}
