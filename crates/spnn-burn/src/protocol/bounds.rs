//! Public bounds on every value the holders truncate.
//!
//! The exact truncation of [`spnn_crypto::beaver`] needs a public `ℓ` with `|z| < 2^ℓ ≤ 2^62`.
//! Every value SPNN-SS truncates is a function of clipped inputs and public counts, so its bound
//! is public too:
//!
//! - features: holders clip to `|x| ≤ x_c` ([`crate::SpnnConfig::feature_clip`]), so an encoded
//!   feature is at most `X̃ = x_c·2^f + ½`;
//! - the scaled boundary gradient: the server clips to `|c·G| ≤ g_c`, so `G̃ = g_c·2^f + ½`;
//! - the backward product `Xᵀ·(c·G)` of a batch of `B` rows (scale `2^{2f}`): `B·X̃·G̃`;
//! - a multiplication by a public `m·2^{−s}` after a truncation by `t`: `(M/2^t + 1)·m`, then
//!   `/2^s + 1` (each truncation may round up by one unit);
//! - the pending gradient: the sum of the backward bounds since the last update; the velocity:
//!   `μ`-scaled previous bound plus the pending bound.
//!
//! [`ring_bits`] turns a magnitude into `ℓ` and refuses anything above 62: a run whose bound
//! would exceed the ring **stops with an error** instead of corrupting a weight. With the
//! defaults (`f = 16`, `x_c = 32`, `g_c = 16`) the backward product needs `41 + log2 B` bits, so
//! training batches up to `2^21` fit ([`Bounds::headroom_bits`]).

use spnn_crypto::beaver::MAX_TRUNCATION_BITS;

use crate::config::SpnnConfig;
use crate::error::{Result, SpnnError};
use crate::protocol::he::STATISTICAL_BITS;

/// The smallest `ℓ` with `magnitude < 2^ℓ`, or an error naming `what` if `ℓ > 62`. The
/// magnitude is computed in `f64`, whose rounding could land a few units below the exact bound:
/// it is enlarged by a relative `2^{−40}` and 16 units first, so the check errs on the safe side.
pub fn ring_bits(magnitude: f64, what: &str) -> Result<u32> {
    let bits = bits_of(magnitude * (1.0 + 2f64.powi(-40)) + 16.0);
    if bits > MAX_TRUNCATION_BITS {
        return Err(SpnnError::Config(format!(
            "{what} may reach 2^{bits} in the ring, beyond the 2^{MAX_TRUNCATION_BITS} an exact \
             truncation allows: use a smaller batch, smaller clips, fewer fractional bits or \
             fewer gradient accumulations per update"
        )));
    }
    Ok(bits)
}

/// The smallest `ℓ` with `magnitude < 2^ℓ` (at least 1).
pub fn bits_of(magnitude: f64) -> u32 {
    if !magnitude.is_finite() {
        return u32::MAX;
    }
    let mut bits = 1;
    while bits < 1024 && 2f64.powi(bits as i32) <= magnitude {
        bits += 1;
    }
    bits
}

/// The public bound on `W` after a plain-SGD update with weight decay (no momentum, no
/// Langevin noise): `W' = W − η·(g + λ·W + e₀) − e₁ = (1 − η·λ)·W − η·g − η·e₀ − e₁`, with
/// `η`, `λ` the multipliers the holders actually use ([`crate::protocol::scale::PublicScale`])
/// and `|e₀|, |e₁| ≤ 1` unit the two truncations' errors, so
/// `|W'| ≤ |1 − η·λ|·w + η·(g + 1) + 1`. It contracts: over a run it stays below about
/// `(g + 1)/λ + 1/(η·λ)` instead of growing with every step.
pub fn decayed_weight_bound(w: f64, lr: f64, decay: f64, g: f64) -> f64 {
    (1.0 - lr * decay).abs() * w + lr * (g + 1.0) + 1.0
}

/// The public bounds of one session (module docs).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bounds {
    frac_bits: u32,
    /// `X̃`, the largest encoded feature.
    pub feature: f64,
    /// `G̃`, the largest encoded entry of `c·G`.
    pub gradient: f64,
}

impl Bounds {
    /// The bounds a configuration implies.
    pub fn of(config: &SpnnConfig) -> Result<Self> {
        let scale = 2f64.powi(config.frac_bits as i32);
        Ok(Self {
            frac_bits: config.frac_bits,
            feature: f64::from(config.feature_clip) * scale + 0.5,
            gradient: f64::from(config.gradient_clip) * scale + 0.5,
        })
    }

    /// Bits of an encoded feature's magnitude: the public plaintext bound of SPNN-HE's products.
    pub fn feature_bits(&self) -> u32 {
        bits_of(self.feature)
    }

    /// The bound on the backward product `Xᵀ·(c·G)` of a batch of `batch` rows, at `2^{2f}`.
    pub fn backward_product(&self, batch: usize) -> f64 {
        batch as f64 * self.feature * self.gradient
    }

    /// `log2` of the largest training batch whose backward product fits an exact truncation.
    pub fn headroom_bits(&self) -> u32 {
        let per_row = self.feature * self.gradient;
        let room = 2f64.powi(MAX_TRUNCATION_BITS as i32) / per_row;
        if room < 1.0 {
            0
        } else {
            room.log2().floor() as u32
        }
    }

    /// Bits of a share of `c·G` in SPNN-HE among `holders` holders, where the server shares over
    /// the integers with masks `R_i < 2^{bits(G̃) + σ}` (module [`spnn_crypto::integer`]):
    /// holder 0's share `c·G + Σ_{i≥1} R_i` lies in `[−G̃, G̃ + (k − 1)·(2^{bits(G̃)+σ} − 1)]`,
    /// whose bit length must fit a signed 64-bit word (63 bits).
    pub fn he_gradient_share_bits(&self, holders: usize) -> Result<u32> {
        let others = holders.max(2) as u128 - 1;
        let largest =
            self.gradient.ceil() as u128 + others * ((1u128 << self.he_gradient_mask_bits()) - 1);
        let bits = 128 - largest.leading_zeros();
        if bits > 63 {
            return Err(SpnnError::Config(format!(
                "SPNN-HE shares c·G over the integers in 64-bit words: {holders} holders, {} \
                 fractional bits and a gradient clip of {:.1} need {bits} bits; lower the clip \
                 or the fractional bits",
                self.frac_bits,
                (self.gradient - 0.5) / 2f64.powi(self.frac_bits as i32)
            )));
        }
        Ok(bits)
    }

    /// Bits of each mask `R_i` of SPNN-HE's shares of `c·G`: `bits(G̃) + σ`.
    pub fn he_gradient_mask_bits(&self) -> u32 {
        bits_of(self.gradient) + STATISTICAL_BITS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_are_the_smallest_power_above() {
        assert_eq!(bits_of(0.0), 1);
        assert_eq!(bits_of(1.0), 1);
        assert_eq!(bits_of(1.5), 1);
        assert_eq!(bits_of(2.0), 2);
        assert_eq!(bits_of(2f64.powi(40) - 1.0), 40);
        assert_eq!(bits_of(f64::NAN), u32::MAX);
        assert!(ring_bits(2f64.powi(62), "x").is_err());
        assert!(
            ring_bits(2f64.powi(62) - 1024.0, "x").is_err(),
            "no slack left"
        );
        assert_eq!(ring_bits(2f64.powi(61), "x").unwrap(), 62);
    }

    #[test]
    fn the_weight_bound_under_decay_settles_instead_of_growing() {
        use crate::protocol::scale::PublicScale;
        // Breast-cancer scale: a pending gradient bound of 2^25 units, lr 0.1, decay 1e-3.
        let (lr, decay) = (
            PublicScale::of(0.1).unwrap().value(),
            PublicScale::of(1e-3).unwrap().value(),
        );
        let g = 2f64.powi(25);
        let mut w = 2f64.powi(16);
        for _ in 0..1_000_000 {
            w = decayed_weight_bound(w, lr, decay, g);
        }
        let limit = (g + 1.0) / decay + 1.0 / (lr * decay);
        assert!(w <= limit * (1.0 + 1e-9), "{w} > {limit}");
        // λ·W stays far inside an exact truncation: |λ̃·W|·2^16 < 2^62.
        assert!(ring_bits(w * f64::from(PublicScale::of(1e-3).unwrap().m as u32), "λW").is_ok());
    }

    #[test]
    fn default_bounds_leave_room_for_large_batches() {
        let b = Bounds::of(&SpnnConfig::default()).unwrap();
        assert_eq!(b.feature_bits(), 22);
        assert_eq!(b.headroom_bits(), 20);
        assert!(ring_bits(b.backward_product(1 << 20), "backward").is_ok());
        assert!(ring_bits(b.backward_product(1 << 21), "backward").is_err());
        assert_eq!(
            b.he_gradient_share_bits(2).unwrap(),
            21 + STATISTICAL_BITS + 1
        );
        assert_eq!(b.he_gradient_mask_bits(), 21 + STATISTICAL_BITS);
        // Holder 0's share carries the masks of every other holder.
        assert_eq!(
            b.he_gradient_share_bits(3).unwrap(),
            b.he_gradient_share_bits(2).unwrap() + 1
        );
        // Up to four holders fit at the defaults (3·2^61 + G̃ < 2^63); five need 64 bits and
        // are refused, with what to lower.
        assert_eq!(b.he_gradient_share_bits(4).unwrap(), 63);
        let e = b.he_gradient_share_bits(5).unwrap_err().to_string();
        assert!(e.contains("lower"), "{e}");
        let narrower = Bounds::of(&SpnnConfig::default().with_clips(32.0, 8.0)).unwrap();
        assert_eq!(narrower.he_gradient_share_bits(8).unwrap(), 63);
    }
}
