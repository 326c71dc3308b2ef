//! Session configuration shared by every party, and where randomness comes from.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use spnn_crypto::{FixedPoint, SecretSeed, SecureRng};
use spnn_net::PartyId;

use crate::error::{Result, SpnnError};

/// How the server scales the boundary gradient `G = ∂L/∂Z` before sharing it.
///
/// With 16 fractional bits, a mean-loss gradient (entries ≈ 1/B) shared as-is underflows:
/// at batch 256 most entries round to a handful of units of `2^{-16}`. The server therefore
/// shares `c·G` for a public `c` and the holders divide by `c` after the secure product
/// `Xᵀ·(c·G)`, where the value is large again.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum GradientScale {
    /// `c = B`, the batch size: the shared values are per-sample gradients. The default.
    BatchSize,
    /// A fixed `c` (1.0 reproduces the naive scheme, for the precision test).
    Fixed(f32),
}

/// Who deals Beaver triples and truncation pairs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DealerMode {
    /// The server deals. It never sees the values opened between holders. The default.
    Server,
    /// A separate dealer party (the last party of the roster).
    Separate,
}

/// How the holders compute the private first layer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Protocol {
    /// SPNN-SS: Beaver triples from a dealer (the server or a separate party). The default.
    #[default]
    SecretSharing,
    /// SPNN-HE: cross terms between holders with Paillier; no dealer. Two holders.
    Paillier,
}

/// Where the labels are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LabelMode {
    /// The server holds the labels and computes the loss. The default.
    Server,
    /// Holder `i` (0-based) holds the labels; its head computes the loss (SPNN's setting).
    Holder(u16),
}

/// The source of every random value a party draws.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Randomness {
    /// ChaCha20 seeded from the operating system for every draw. The default.
    OsEntropy,
    /// ChaCha20 seeded from `SHA-256(seed, party, step, purpose)`. Reproducible runs (identical
    /// results in simulation and across processes, exact resumption) — and **insecure**: anyone
    /// who knows the seed knows every share. For tests and benchmarks only.
    InsecureSeededForTests(u64),
}

impl Randomness {
    /// A generator for `party` at protocol `step` for `purpose`.
    pub fn rng(&self, party: PartyId, step: u64, purpose: &str) -> SecureRng {
        match self {
            Self::OsEntropy => SecureRng::from_os_entropy(),
            Self::InsecureSeededForTests(seed) => {
                let mut h = Sha256::new();
                h.update(seed.to_le_bytes());
                h.update(party.0.to_le_bytes());
                h.update(step.to_le_bytes());
                h.update(purpose.as_bytes());
                let mut bytes = [0u8; 32];
                bytes.copy_from_slice(&h.finalize());
                SecureRng::from_secret_seed(&SecretSeed::from_bytes(bytes))
            }
        }
    }
}

/// The protocol configuration of one SPNN session. The server sends it to every party at set-up,
/// so all parties agree.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SpnnConfig {
    /// Fractional bits of the fixed-point encoding (default 16).
    pub frac_bits: u32,
    /// Scaling of the boundary gradient before sharing (default [`GradientScale::BatchSize`]).
    pub gradient_scale: GradientScale,
    /// Momentum of the secure SGD on the weight shares (default 0: plain SGD).
    pub momentum: f64,
    /// Who deals correlated randomness (default [`DealerMode::Server`]).
    pub dealer: DealerMode,
    /// Where the labels are (default [`LabelMode::Server`]).
    pub labels: LabelMode,
    /// Where randomness comes from (default [`Randomness::OsEntropy`]).
    pub randomness: Randomness,
    /// Secret sharing with a dealer, or Paillier (default [`Protocol::SecretSharing`]).
    pub protocol: Protocol,
    /// Paillier modulus size every holder must use (default 2048). Below 2048 is insecure and
    /// accepted only for tests.
    pub he_key_bits: u32,
}

impl Default for SpnnConfig {
    fn default() -> Self {
        Self {
            frac_bits: spnn_crypto::fixed::DEFAULT_FRAC_BITS,
            gradient_scale: GradientScale::BatchSize,
            momentum: 0.0,
            dealer: DealerMode::Server,
            labels: LabelMode::Server,
            randomness: Randomness::OsEntropy,
            protocol: Protocol::SecretSharing,
            he_key_bits: spnn_crypto::paillier::MIN_SECURE_BITS,
        }
    }
}

impl SpnnConfig {
    /// Checks the values and returns the fixed-point encoding.
    pub fn validate(&self) -> Result<FixedPoint> {
        if !(0.0..1.0).contains(&self.momentum) {
            return Err(SpnnError::Config(format!(
                "momentum {} must be in [0, 1)",
                self.momentum
            )));
        }
        if let GradientScale::Fixed(c) = self.gradient_scale
            && !(c.is_finite() && c > 0.0)
        {
            return Err(SpnnError::Config(format!(
                "gradient scale {c} must be positive"
            )));
        }
        if self.protocol == Protocol::Paillier && self.dealer == DealerMode::Separate {
            return Err(SpnnError::Config(
                "SPNN-HE needs no dealer: use DealerMode::Server".into(),
            ));
        }
        if self.he_key_bits < 256 || !self.he_key_bits.is_multiple_of(2) {
            return Err(SpnnError::Config(format!(
                "Paillier keys of {} bits",
                self.he_key_bits
            )));
        }
        FixedPoint::new(self.frac_bits).map_err(SpnnError::from)
    }

    /// The same with another momentum.
    pub fn with_momentum(mut self, momentum: f64) -> Self {
        self.momentum = momentum;
        self
    }

    /// The same with labels at `labels`.
    pub fn with_labels(mut self, labels: LabelMode) -> Self {
        self.labels = labels;
        self
    }

    /// The same with another dealer mode.
    pub fn with_dealer(mut self, dealer: DealerMode) -> Self {
        self.dealer = dealer;
        self
    }

    /// The same with another randomness source.
    pub fn with_randomness(mut self, randomness: Randomness) -> Self {
        self.randomness = randomness;
        self
    }

    /// The same with another gradient scale.
    pub fn with_gradient_scale(mut self, scale: GradientScale) -> Self {
        self.gradient_scale = scale;
        self
    }

    /// The same with another protocol.
    pub fn with_protocol(mut self, protocol: Protocol) -> Self {
        self.protocol = protocol;
        self
    }

    /// The same with Paillier keys of `bits` bits. **Insecure** below 2048: tests only.
    pub fn with_he_key_bits(mut self, bits: u32) -> Self {
        self.he_key_bits = bits;
        self
    }

    /// The same with another number of fractional bits.
    pub fn with_frac_bits(mut self, frac_bits: u32) -> Self {
        self.frac_bits = frac_bits;
        self
    }
}
