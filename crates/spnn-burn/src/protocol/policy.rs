//! A party's own rules for the sessions it joins.
//!
//! The server's [`Setup`] is a **proposal**. A holder that followed it blindly would let the
//! server pick weak keys, reproducible "randomness" it knows the seed of, or a fixed-point
//! layout whose truncations can fail — and learn the holder's data that way. So every holder
//! (and a separate dealer) checks the proposal against a [`PartyPolicy`] configured on its own
//! side and refuses, with an error that names the rule, anything outside it. Parties that run
//! from a deployment file also pin the whole configuration ([`PartyPolicy::expect`]): any
//! difference from their own copy is refused.

use crate::config::{DEFAULT_Z_NOISE, MIN_FRAC_BITS, Protocol, SpnnConfig};
use crate::error::{Result, SpnnError};
use crate::messages::{LayerKind, Setup};
use crate::protocol::bounds::Bounds;
use spnn_crypto::paillier::MIN_SECURE_BITS;

/// Least ring headroom a holder accepts by default: training batches up to `2^10` must fit an
/// exact truncation ([`Bounds::headroom_bits`]).
pub const MIN_HEADROOM_BITS: u32 = 10;
/// Largest weight decay a holder accepts by default ([`PartyPolicy::max_weight_decay`]): the
/// usual values (1e-4 to 1e-2) pass.
pub const DEFAULT_MAX_WEIGHT_DECAY: f64 = 0.01;

/// What a holder or dealer accepts from the server's proposal. The default is the secure one.
#[derive(Clone, Debug, PartialEq)]
pub struct PartyPolicy {
    /// Accept seeded, reproducible randomness (`Randomness::InsecureSeededForTests`). Off by
    /// default; when on, the holder logs a warning at set-up.
    pub allow_insecure_randomness: bool,
    /// Smallest Paillier modulus accepted, for the session and for the peer's key (default
    /// 2048).
    pub min_he_key_bits: u32,
    /// Accept a session whose holders send their outputs to the server unmasked (plain split
    /// learning, `LayerKind::UnmaskedBottomModelsForBaselines`, a benchmark baseline). Off by
    /// default. **Insecure**: the server sees this holder's output.
    pub allow_unmasked_outputs: bool,
    /// Least noise on `Z` accepted in a session with private weights (default
    /// [`DEFAULT_Z_NOISE`]): without it, a run's `Z`s give the server the data's Gram matrix.
    pub min_z_noise: f32,
    /// Fewest fractional bits accepted (default [`MIN_FRAC_BITS`]).
    pub min_frac_bits: u32,
    /// Least headroom accepted, in bits of training batch size (default
    /// [`MIN_HEADROOM_BITS`]).
    pub min_headroom_bits: u32,
    /// The protocols this holder takes part in (default: both).
    pub protocols: Vec<Protocol>,
    /// The exact configuration this holder expects, if it has one of its own (a deployment
    /// file): any other proposal is refused.
    pub expected: Option<SpnnConfig>,
    /// Most forwards of one sample this holder serves in a session (training and evaluation
    /// alike; `None`, the default: no limit). Each forward releases a fresh noisy `Z` of the
    /// sample — and, at the label holder, a gradient — so repeated forwards average the noise
    /// down; a budget of the schedule's epochs plus its evaluation passes bounds that within a
    /// session. A session resumed from a checkpoint starts a new count.
    pub max_forwards_per_sample: Option<u32>,
    /// Most forwards of one sample this holder serves over **every** session that shares its
    /// forward ledger ([`crate::HolderOptions::forward_ledger`]; `None`, the default: no
    /// limit). A server that ends sessions and starts them again — from the same checkpoint,
    /// or from scratch — draws fresh noise on `Z` each time; this bounds how far it can
    /// average it down over the deployment's life. Set it above the per-session budget to
    /// leave room for a resume after a crash and for predictions.
    pub max_forwards_per_sample_overall: Option<u32>,
    /// Most Langevin noise on the weight updates accepted ([`SpnnConfig::sgld`]; default 0:
    /// none). Measured, SGLD noise reaches the server as `X·N`, which keeps the features'
    /// inner products: it never stops the Gram attack and, beside noise on `Z`, undoes part of
    /// that noise's protection (the guide's security chapter), so a holder refuses it unless
    /// its own policy allows it.
    pub max_sgld: f32,
    /// Largest learning rate of an update this holder applies (`None`, the default: any; the
    /// library does not know the schedule — `spnn` sets it to the rate of each holder's own copy
    /// of the deployment file). The server picks every update's rate: one update at a huge rate
    /// makes `W` all but `−η·Xᵀ·G` of the last batch, and the next `Z` then gives the server the
    /// inner products of that batch's features with the next one's, through the noise on `Z`
    /// (measured: `tests/gram.rs`). An update above the cap stops the session.
    pub max_learning_rate: Option<f64>,
    /// Largest weight decay accepted ([`SpnnConfig::weight_decay`]; default
    /// [`DEFAULT_MAX_WEIGHT_DECAY`]). The server picks the learning rate `η` of each update; at
    /// `λ·η = 1` an update replaces `W` by `−η·g` exactly, erasing its history, so the next
    /// `Z = X·W` gives the server inner products of the current batch with the last one without
    /// the differencing the Gram attack otherwise needs. A cap on `λ` makes that need a large
    /// `η` — which gets close to it with or without decay; the noise on `Z` is the defence.
    pub max_weight_decay: f64,
}

impl Default for PartyPolicy {
    fn default() -> Self {
        Self {
            allow_insecure_randomness: false,
            allow_unmasked_outputs: false,
            min_he_key_bits: MIN_SECURE_BITS,
            min_z_noise: DEFAULT_Z_NOISE,
            min_frac_bits: MIN_FRAC_BITS,
            min_headroom_bits: MIN_HEADROOM_BITS,
            protocols: vec![Protocol::SecretSharing, Protocol::Paillier],
            expected: None,
            max_forwards_per_sample: None,
            max_forwards_per_sample_overall: None,
            max_sgld: 0.0,
            max_weight_decay: DEFAULT_MAX_WEIGHT_DECAY,
            max_learning_rate: None,
        }
    }
}

fn refuse(rule: &str, reason: String) -> SpnnError {
    SpnnError::Policy(format!("{reason} (policy: {rule})"))
}

impl PartyPolicy {
    /// The same, also requiring exactly `config`.
    pub fn expect(mut self, config: SpnnConfig) -> Self {
        self.expected = Some(config);
        self
    }

    /// The same, accepting seeded test randomness. **Insecure**.
    pub fn allowing_insecure_randomness(mut self) -> Self {
        self.allow_insecure_randomness = true;
        self
    }

    /// The same, accepting noise on `Z` down to `sd`. Below [`DEFAULT_Z_NOISE`] the Gram attack
    /// on a run's `Z`s gets back in (0 gives it the data up to rotation).
    pub fn allowing_z_noise(mut self, sd: f32) -> Self {
        self.min_z_noise = sd;
        self
    }

    /// The same, accepting Langevin noise on the updates up to `sgld`; it weakens the noise on
    /// `Z` against the Gram attack (see [`PartyPolicy::max_sgld`]).
    pub fn allowing_sgld(mut self, sgld: f32) -> Self {
        self.max_sgld = sgld;
        self
    }

    /// The same, applying no update whose learning rate exceeds `lr`.
    pub fn with_max_learning_rate(mut self, lr: f64) -> Self {
        self.max_learning_rate = Some(lr);
        self
    }

    /// The same, serving at most `n` forwards of any one sample in a session.
    pub fn with_max_forwards_per_sample(mut self, n: u32) -> Self {
        self.max_forwards_per_sample = Some(n);
        self
    }

    /// The same, serving at most `n` forwards of any one sample over every session that shares
    /// the holder's forward ledger.
    pub fn with_max_forwards_per_sample_overall(mut self, n: u32) -> Self {
        self.max_forwards_per_sample_overall = Some(n);
        self
    }

    /// The same, accepting Paillier keys down to `bits`. **Insecure** below 2048.
    pub fn allowing_key_bits(mut self, bits: u32) -> Self {
        self.min_he_key_bits = bits;
        self
    }

    /// Checks the server's proposal; `resumable` says whether this party can resume from a
    /// checkpoint (a holder with a checkpoint directory, or the dealer, which keeps no state).
    pub fn check(&self, setup: &Setup, resumable: bool) -> Result<()> {
        let c = &setup.config;
        if c.randomness.is_insecure() {
            if !self.allow_insecure_randomness {
                return Err(refuse(
                    "allow_insecure_randomness",
                    "the server proposes seeded, reproducible randomness, which anyone who \
                     knows the seed can recompute"
                        .into(),
                ));
            }
            tracing::warn!(
                "INSECURE: this party accepted seeded randomness; every share it draws can be \
                 recomputed by anyone who knows the seed. Use it only for tests."
            );
        }
        if !setup.kind.masks_outputs() && !self.allow_unmasked_outputs {
            return Err(refuse(
                "allow_unmasked_outputs",
                "the server proposes a session in which this party's outputs reach it unmasked"
                    .into(),
            ));
        }
        if !self.protocols.contains(&c.protocol) {
            return Err(refuse(
                "protocols",
                format!("the server proposes {:?}", c.protocol),
            ));
        }
        if c.protocol == Protocol::Paillier && c.he_key_bits < self.min_he_key_bits {
            return Err(refuse(
                "min_he_key_bits",
                format!(
                    "the server proposes {}-bit Paillier keys; this holder requires at least {}",
                    c.he_key_bits, self.min_he_key_bits
                ),
            ));
        }
        if !setup.kind.has_bottom_models() && c.z_noise < self.min_z_noise {
            return Err(refuse(
                "min_z_noise",
                format!(
                    "the server proposes noise {} on Z; this holder requires at least {} (less \
                     lets a run's Z reveal the data's Gram matrix)",
                    c.z_noise, self.min_z_noise
                ),
            ));
        }
        if setup.kind.has_bottom_models() && c.sgld > 0.0 {
            return Err(refuse(
                "max_sgld",
                format!(
                    "the server proposes Langevin noise {} in a session with bottom models, \
                     which have no private weights to add it to",
                    c.sgld
                ),
            ));
        }
        if c.sgld > self.max_sgld {
            return Err(refuse(
                "max_sgld",
                format!(
                    "the server proposes Langevin noise {} on the weight updates; this holder \
                     accepts at most {} (that noise reaches the server as X·N, which keeps the \
                     features' inner products and weakens the noise on Z)",
                    c.sgld, self.max_sgld
                ),
            ));
        }
        if c.weight_decay > self.max_weight_decay {
            return Err(refuse(
                "max_weight_decay",
                format!(
                    "the server proposes weight decay {}; this holder accepts at most {} (with the \
                     learning rate the server picks, a large decay erases W's history in one \
                     update, which sharpens the Gram attack)",
                    c.weight_decay, self.max_weight_decay
                ),
            ));
        }
        if c.frac_bits < self.min_frac_bits {
            return Err(refuse(
                "min_frac_bits",
                format!(
                    "the server proposes {} fractional bits; this holder requires at least {}",
                    c.frac_bits, self.min_frac_bits
                ),
            ));
        }
        if setup.kind == LayerKind::PrivateLinear {
            let headroom = Bounds::of(c)?.headroom_bits();
            if headroom < self.min_headroom_bits {
                return Err(refuse(
                    "min_headroom_bits",
                    format!(
                        "the proposal leaves {headroom} bits of ring headroom (training batches \
                         up to 2^{headroom}); this holder requires {}",
                        self.min_headroom_bits
                    ),
                ));
            }
        }
        if setup.resume.is_some() && !resumable {
            return Err(refuse(
                "checkpoint_dir",
                "the server asks to resume from a checkpoint, and this holder has no checkpoint \
                 directory"
                    .into(),
            ));
        }
        if let Some(expected) = &self.expected
            && expected != c
        {
            return Err(refuse(
                "expected configuration",
                format!(
                    "the server proposes {c:?}, which differs from this holder's own \
                     configuration {expected:?}"
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(config: SpnnConfig) -> Setup {
        Setup {
            widths: vec![3, 3],
            output: 4,
            kind: LayerKind::PrivateLinear,
            config,
            resume: None,
        }
    }

    #[test]
    fn the_default_policy_refuses_weak_proposals_and_names_the_rule() {
        let p = PartyPolicy::default();
        p.check(&setup(SpnnConfig::default()), false).unwrap();
        let weak_keys = SpnnConfig::default()
            .with_protocol(Protocol::Paillier)
            .with_he_key_bits(1024);
        let e = p.check(&setup(weak_keys), false).unwrap_err().to_string();
        assert!(
            e.contains("1024-bit") && e.contains("min_he_key_bits"),
            "{e}"
        );
        let few_bits = SpnnConfig::default().with_frac_bits(8);
        let e = p.check(&setup(few_bits), false).unwrap_err().to_string();
        assert!(e.contains("min_frac_bits"), "{e}");
        let no_noise = SpnnConfig::default().with_z_noise(0.0);
        let e = p.check(&setup(no_noise), false).unwrap_err().to_string();
        assert!(e.contains("min_z_noise"), "{e}");
        p.clone()
            .allowing_z_noise(0.0)
            .check(&setup(no_noise), false)
            .unwrap();
        let decay = SpnnConfig {
            weight_decay: 0.5,
            ..SpnnConfig::default()
        };
        let e = p.check(&setup(decay), false).unwrap_err().to_string();
        assert!(e.contains("max_weight_decay"), "{e}");
        let langevin = SpnnConfig::default().with_sgld(0.01);
        let e = p.check(&setup(langevin), false).unwrap_err().to_string();
        assert!(e.contains("max_sgld"), "{e}");
        p.clone()
            .allowing_sgld(0.01)
            .check(&setup(langevin), false)
            .unwrap();
        let no_room = SpnnConfig::default()
            .with_frac_bits(20)
            .with_clips(512.0, 256.0);
        let e = p.check(&setup(no_room), false).unwrap_err().to_string();
        assert!(e.contains("headroom"), "{e}");
        let mut resume = setup(SpnnConfig::default());
        resume.resume = Some("epoch-1".into());
        assert!(p.check(&resume, false).is_err());
        p.check(&resume, true).unwrap();
        let pinned = PartyPolicy::default().expect(SpnnConfig::default().with_momentum(0.5));
        let e = pinned
            .check(&setup(SpnnConfig::default()), false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("differs"), "{e}");
        let ss_only = PartyPolicy {
            protocols: vec![Protocol::SecretSharing],
            ..PartyPolicy::default()
        };
        let he = SpnnConfig::default().with_protocol(Protocol::Paillier);
        assert!(ss_only.check(&setup(he), false).is_err());
    }

    #[cfg(feature = "insecure-test-hooks")]
    #[test]
    fn seeded_randomness_needs_the_holders_own_consent() {
        use crate::config::Randomness;
        let seeded = SpnnConfig::default().with_randomness(Randomness::InsecureSeededForTests(3));
        let e = PartyPolicy::default()
            .check(&setup(seeded), false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("allow_insecure_randomness"), "{e}");
        PartyPolicy::default()
            .allowing_insecure_randomness()
            .check(&setup(seeded), false)
            .unwrap();
        let mut unmasked = setup(SpnnConfig::default());
        unmasked.kind = LayerKind::UnmaskedBottomModelsForBaselines;
        let e = PartyPolicy::default()
            .check(&unmasked, false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("allow_unmasked_outputs"), "{e}");
        let consenting = PartyPolicy {
            allow_unmasked_outputs: true,
            ..PartyPolicy::default()
        };
        consenting.check(&unmasked, false).unwrap();
    }
}
