//! Session configuration shared by every party, where randomness comes from, and the public
//! magnitude bounds that keep every truncation exact.
//!
//! Each enum carries its wire encoding next to its definition (one tag byte, then its payload),
//! so the [`crate::messages::Setup`] message only strings them together.

use serde::{Deserialize, Serialize};
use spnn_crypto::{FixedPoint, SecureRng};
use spnn_net::codec::{Codec, Reader};
use spnn_net::{CodecError, PartyId};

use crate::error::{Result, SpnnError};

fn bad_tag(what: &'static str, t: u8) -> CodecError {
    CodecError::Invalid {
        what,
        reason: format!("tag {t}"),
    }
}

/// How the server scales the boundary gradient `G = ∂L/∂Z` before sharing it.
///
/// With 16 fractional bits, a mean-loss gradient (entries ≈ 1/B) shared as-is underflows:
/// at batch 256 most entries round to a handful of units of `2^{-16}`. The server therefore
/// shares `c·G` for a public `c` and the holders divide by `c` after the secure product
/// `Xᵀ·(c·G)`, where the value is large again.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GradientScale {
    /// `c = B`, the batch size: the shared values are per-sample gradients. The default.
    BatchSize,
    /// A fixed `c` (1.0 reproduces the naive scheme, for the precision test).
    Fixed(f32),
}

impl GradientScale {
    /// The public factor `c` for a batch of `batch` samples: what the server multiplies `G`
    /// by, and what the dealer foresees its truncation triples for.
    pub fn factor(self, batch: usize) -> f64 {
        match self {
            Self::BatchSize => batch as f64,
            Self::Fixed(c) => f64::from(c),
        }
    }
}

impl Codec for GradientScale {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Self::BatchSize => out.push(0),
            Self::Fixed(v) => {
                out.push(1);
                v.encode(out);
            }
        }
    }
    fn read(r: &mut Reader<'_>) -> std::result::Result<Self, CodecError> {
        match r.u8("gradient scale")? {
            0 => Ok(Self::BatchSize),
            1 => Ok(Self::Fixed(f32::read(r)?)),
            t => Err(bad_tag("gradient scale", t)),
        }
    }
}

/// Who deals Beaver triples and truncation triples.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DealerMode {
    /// The server deals. It never sees the values opened between holders, and the holders
    /// mask what they send it with randomness it does not know. The default.
    Server,
    /// A separate dealer party (the last party of the roster).
    Separate,
}

impl Codec for DealerMode {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(match self {
            Self::Server => 0,
            Self::Separate => 1,
        });
    }
    fn read(r: &mut Reader<'_>) -> std::result::Result<Self, CodecError> {
        match r.u8("dealer mode")? {
            0 => Ok(Self::Server),
            1 => Ok(Self::Separate),
            t => Err(bad_tag("dealer mode", t)),
        }
    }
}

/// How the holders compute the private first layer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Protocol {
    /// SPNN-SS: Beaver triples from a dealer (the server or a separate party). The default.
    #[default]
    #[serde(rename = "ss")]
    SecretSharing,
    /// SPNN-HE: cross terms between every pair of holders with Paillier; no dealer.
    #[serde(rename = "he")]
    Paillier,
}

impl Codec for Protocol {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(match self {
            Self::SecretSharing => 0,
            Self::Paillier => 1,
        });
    }
    fn read(r: &mut Reader<'_>) -> std::result::Result<Self, CodecError> {
        match r.u8("protocol")? {
            0 => Ok(Self::SecretSharing),
            1 => Ok(Self::Paillier),
            t => Err(bad_tag("protocol", t)),
        }
    }
}

/// Where the labels are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LabelMode {
    /// The server holds the labels and computes the loss. The default.
    Server,
    /// Holder `i` (0-based) holds the labels; its head computes the loss (SPNN's setting).
    Holder(u16),
}

impl Codec for LabelMode {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Self::Server => out.push(0),
            Self::Holder(h) => {
                out.push(1);
                h.encode(out);
            }
        }
    }
    fn read(r: &mut Reader<'_>) -> std::result::Result<Self, CodecError> {
        match r.u8("label mode")? {
            0 => Ok(Self::Server),
            1 => Ok(Self::Holder(u16::read(r)?)),
            t => Err(bad_tag("label mode", t)),
        }
    }
}

/// The source of every random value a party draws.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Randomness {
    /// ChaCha20 seeded from the operating system for every draw. The default, and the only
    /// source a build without the `insecure-test-hooks` feature knows.
    OsEntropy,
    /// ChaCha20 seeded from `SHA-256(seed, party, step, purpose)`. Reproducible runs (identical
    /// results in simulation and across processes, exact resumption) — and **insecure**: anyone
    /// who knows the seed knows every share. Exists only with the `insecure-test-hooks`
    /// feature, and every holder refuses it unless its own policy allows it.
    #[cfg(feature = "insecure-test-hooks")]
    InsecureSeededForTests(u64),
}

impl Randomness {
    /// A generator for `party` at protocol `step` for `purpose`.
    pub fn rng(&self, party: PartyId, step: u64, purpose: &str) -> SecureRng {
        match self {
            Self::OsEntropy => {
                let _ = (party, step, purpose);
                SecureRng::from_os_entropy()
            }
            #[cfg(feature = "insecure-test-hooks")]
            Self::InsecureSeededForTests(seed) => {
                let root = spnn_crypto::SecretSeed::from_bytes(
                    sha2::Digest::finalize(sha2::Digest::chain_update(
                        <sha2::Sha256 as sha2::Digest>::new(),
                        seed.to_le_bytes(),
                    ))
                    .into(),
                );
                let child =
                    spnn_crypto::derive::derive_seed(&root, purpose, u64::from(party.0), step);
                SecureRng::from_secret_seed(&child)
            }
        }
    }

    /// Whether this source is reproducible and therefore insecure.
    pub fn is_insecure(&self) -> bool {
        !matches!(self, Self::OsEntropy)
    }
}

impl Codec for Randomness {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Self::OsEntropy => out.push(0),
            #[cfg(feature = "insecure-test-hooks")]
            Self::InsecureSeededForTests(s) => {
                out.push(1);
                s.encode(out);
            }
        }
    }
    fn read(r: &mut Reader<'_>) -> std::result::Result<Self, CodecError> {
        match r.u8("randomness")? {
            0 => Ok(Self::OsEntropy),
            #[cfg(feature = "insecure-test-hooks")]
            1 => Ok(Self::InsecureSeededForTests(u64::read(r)?)),
            t => Err(CodecError::Invalid {
                what: "randomness",
                reason: format!(
                    "tag {t}{}",
                    if t == 1 {
                        " (seeded test randomness; this build has no insecure-test-hooks)"
                    } else {
                        ""
                    }
                ),
            }),
        }
    }
}

/// Default bound on a standardised feature, in standard deviations.
pub const DEFAULT_FEATURE_CLIP: f32 = 32.0;
/// Default bound on an entry of the scaled boundary gradient `c·G`.
pub const DEFAULT_GRADIENT_CLIP: f32 = 16.0;
/// Default [`SpnnConfig::z_noise`]: the level at which the Gram attack on breast cancer is no
/// better than an unrelated guess, at a measured cost of 0.0019 test AUC on census (the guide's
/// security chapter).
pub const DEFAULT_Z_NOISE: f32 = 0.1;
/// Largest [`SpnnConfig::sgld`] a session accepts, far beyond any useful level (an update whose
/// learning rate would push the noise out of the ring is refused when it comes).
pub const MAX_SGLD: f32 = 1000.0;
/// Fewest fractional bits a holder accepts by default (gradients underflow below it).
pub const MIN_FRAC_BITS: u32 = 12;

/// The hyper-parameters of Burn's `AdamConfig` / `AdamWConfig` the holders run on their weight
/// shares ([`SpnnConfig::adam`], module [`crate::protocol::adam`]).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdamParams {
    /// Decay of the first moment (Burn's default 0.9).
    pub beta_1: f64,
    /// Decay of the second moment (Burn's default 0.999).
    pub beta_2: f64,
    /// Added to `√v̂` before dividing (Burn's default 1e-5). The holders use at least `2^−f`,
    /// the resolution of the weight gradient ([`crate::protocol::adam`]).
    pub epsilon: f64,
}

impl Default for AdamParams {
    /// Burn's `AdamConfig` defaults: `β₁ = 0.9`, `β₂ = 0.999`, `ε = 10⁻⁵`.
    fn default() -> Self {
        Self {
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon: 1e-5,
        }
    }
}

impl AdamParams {
    /// Checks the ranges: `β₁ ∈ [0, 1)`, `β₂ ∈ (0, 1)`, `ε ≥ 0`, every public factor
    /// representable.
    pub fn validate(&self) -> Result<()> {
        if !((0.0..1.0).contains(&self.beta_1) && self.beta_2 > 0.0 && self.beta_2 < 1.0) {
            return Err(SpnnError::Config(format!(
                "Adam's betas ({}, {}) must be in [0, 1) and (0, 1)",
                self.beta_1, self.beta_2
            )));
        }
        if !(self.epsilon.is_finite() && self.epsilon >= 0.0) {
            return Err(SpnnError::Config(format!(
                "Adam's epsilon {} must be finite and at least 0",
                self.epsilon
            )));
        }
        for (name, c) in [
            ("beta_1", self.beta_1),
            ("1 − beta_1", 1.0 - self.beta_1),
            ("beta_2", self.beta_2),
            ("1 − beta_2", 1.0 - self.beta_2),
        ] {
            if c > 0.0 && crate::protocol::scale::PublicScale::of(c)?.m == 0 {
                return Err(SpnnError::Config(format!(
                    "Adam's {name} {c} rounds to 0 as a public multiplier"
                )));
            }
        }
        Ok(())
    }
}

impl Codec for AdamParams {
    fn encode(&self, out: &mut Vec<u8>) {
        self.beta_1.encode(out);
        self.beta_2.encode(out);
        self.epsilon.encode(out);
    }
    fn read(r: &mut Reader<'_>) -> std::result::Result<Self, CodecError> {
        Ok(Self {
            beta_1: f64::read(r)?,
            beta_2: f64::read(r)?,
            epsilon: f64::read(r)?,
        })
    }
}

/// The protocol configuration of one SPNN session. The server proposes it to every party at
/// set-up; each holder checks it against its own [`crate::PartyPolicy`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SpnnConfig {
    /// Fractional bits of the fixed-point encoding (default 16).
    pub frac_bits: u32,
    /// Scaling of the boundary gradient before sharing (default [`GradientScale::BatchSize`]).
    pub gradient_scale: GradientScale,
    /// Momentum of the secure SGD on the weight shares (default 0: plain SGD). With the
    /// three fields after it, the SGD of Burn's `SgdConfig` the holders run on their shares
    /// ([`SpnnConfig::with_sgd`]).
    pub momentum: f64,
    /// Dampening of the momentum, as Burn's `MomentumConfig`: from the second update on the
    /// velocity is `μ·v + (1 − dampening)·g` (the first is `g`). Default 0.
    pub dampening: f64,
    /// Nesterov momentum, as Burn's: the step is `g + μ·v` instead of `v`. Default false.
    pub nesterov: bool,
    /// Weight decay (L2 penalty), as Burn's `WeightDecayConfig`: the gradient becomes
    /// `g + weight_decay·W`, computed on the shares of `W`. It truncates `W`'s shares exactly,
    /// which needs a public bound on `W` that stays put over a run: SPNN-SS only (a dealer's
    /// truncation), without momentum (the bound's contraction `|1 − η·λ|` is derived for plain
    /// SGD only; with the velocity coupled in, the simple bound grows every step) and without
    /// [`SpnnConfig::sgld`] (Gaussian noise, unbounded). Default 0.
    pub weight_decay: f64,
    /// Burn's Adam on the weight shares instead of SGD ([`AdamParams`]; default `None`: SGD).
    /// With it, [`SpnnConfig::weight_decay`] is AdamW's decoupled decay `W ← (1 − η·λ)·W`, and
    /// the SGD fields above must be 0. SPNN-SS only (its products need the dealer's triples).
    pub adam: Option<AdamParams>,
    /// Who deals correlated randomness (default [`DealerMode::Server`]).
    pub dealer: DealerMode,
    /// Where the labels are (default [`LabelMode::Server`]).
    pub labels: LabelMode,
    /// Where randomness comes from (default [`Randomness::OsEntropy`]).
    pub randomness: Randomness,
    /// Secret sharing with a dealer, or Paillier (default [`Protocol::SecretSharing`]).
    pub protocol: Protocol,
    /// Paillier modulus size every holder must use (default 2048). Below 2048 is insecure and
    /// refused by every holder's default policy.
    pub he_key_bits: u32,
    /// Holders clip each feature to `[−feature_clip, feature_clip]` before encoding it
    /// (default [`DEFAULT_FEATURE_CLIP`]; features are standardised, so this is in standard
    /// deviations). Part of the public bound every truncation relies on.
    pub feature_clip: f32,
    /// The server clips each entry of `c·G` to `[−gradient_clip, gradient_clip]` before sharing
    /// it (default [`DEFAULT_GRADIENT_CLIP`]). The other half of the bound.
    pub gradient_clip: f32,
    /// Standard deviation of Gaussian noise added to every entry of `Z` **as shares**: each of
    /// the `k` holders adds its own `N(0, z_noise²/k)` to its share of every forward (training
    /// and evaluation), so the server sees `X·W + N` and no party knows `N`. The noise is fresh
    /// at every forward: a server that asks for the same samples many times averages it down
    /// (the guide's security chapter says what the measured level assumes). Blurs the
    /// differences of `Z` across steps that reveal the data's Gram matrix
    /// ([`crate::attack::features`]). Default [`DEFAULT_Z_NOISE`]; 0 turns it off.
    pub z_noise: f32,
    /// Langevin noise on the private weights (stochastic gradient Langevin dynamics), added
    /// **as shares**: after every secure update each of the `k` holders adds its own
    /// `N(0, 2·η·sgld²/k)` to every entry of its share of `W` (`η` the update's learning rate),
    /// so `W` moves by `−η·g + N(0, 2·η·sgld²)` and no party knows the noise. With
    /// `sgld² = T/N` for `N` training rows this is SGLD sampling the posterior at temperature
    /// `T` (with the honest learning rate and no momentum: the noise is added outside the
    /// velocity). Measured, it does **not** protect the features from the server: the noise
    /// reaches it as `X·N`, which keeps the inner products the Gram attack
    /// ([`crate::attack::features`]) estimates, and beside `z_noise` it weakens that defence
    /// (the guide's security chapter); holders refuse it by default
    /// ([`crate::PartyPolicy::max_sgld`]). Each holder's part is rounded to the weights' scale
    /// `2^−f`, so a part below about half a unit (`sd·2^f/√k < ½`) adds less than configured.
    /// Applies to private weights; a session with bottom models refuses it. Default 0: off.
    pub sgld: f32,
    /// Burn's gradient clipping by value (`GradientClippingConfig::Value(τ)`) on the private
    /// weights' gradient: every entry clamped to `[−τ, τ]` on the shares, before the optimiser
    /// uses it, with two secure comparisons per entry ([`spnn_crypto::compare`]); 0 turns it
    /// off (the default). `τ` is rounded to the weights' scale `2^−f`. SPNN-SS only (the
    /// comparisons need the dealer's material).
    pub grad_clip_value: f64,
    /// Burn's gradient clipping by norm (`GradientClippingConfig::Norm(τ)`) on the private
    /// weights' gradient: `g·min(1, τ/‖g‖)` on the shares, with one secure comparison and an
    /// inverse square root ([`crate::protocol::clip`]); 0 turns it off (the default). Needs 16
    /// to 19 fractional bits and a public bound on `‖g‖²` inside the ring. SPNN-SS only; not
    /// with [`SpnnConfig::grad_clip_value`] (Burn configures one or the other).
    pub grad_clip_norm: f64,
}

impl Default for SpnnConfig {
    fn default() -> Self {
        Self {
            frac_bits: spnn_crypto::fixed::DEFAULT_FRAC_BITS,
            gradient_scale: GradientScale::BatchSize,
            momentum: 0.0,
            dampening: 0.0,
            nesterov: false,
            weight_decay: 0.0,
            adam: None,
            dealer: DealerMode::Server,
            labels: LabelMode::Server,
            randomness: Randomness::OsEntropy,
            protocol: Protocol::SecretSharing,
            he_key_bits: spnn_crypto::paillier::MIN_SECURE_BITS,
            feature_clip: DEFAULT_FEATURE_CLIP,
            gradient_clip: DEFAULT_GRADIENT_CLIP,
            z_noise: DEFAULT_Z_NOISE,
            sgld: 0.0,
            grad_clip_value: 0.0,
            grad_clip_norm: 0.0,
        }
    }
}

impl Codec for SpnnConfig {
    fn encode(&self, out: &mut Vec<u8>) {
        self.frac_bits.encode(out);
        self.gradient_scale.encode(out);
        self.momentum.encode(out);
        self.dampening.encode(out);
        self.nesterov.encode(out);
        self.weight_decay.encode(out);
        self.adam.encode(out);
        self.dealer.encode(out);
        self.labels.encode(out);
        self.randomness.encode(out);
        self.protocol.encode(out);
        self.he_key_bits.encode(out);
        self.feature_clip.encode(out);
        self.gradient_clip.encode(out);
        self.z_noise.encode(out);
        self.sgld.encode(out);
        self.grad_clip_value.encode(out);
        self.grad_clip_norm.encode(out);
    }
    fn read(r: &mut Reader<'_>) -> std::result::Result<Self, CodecError> {
        Ok(Self {
            frac_bits: u32::read(r)?,
            gradient_scale: GradientScale::read(r)?,
            momentum: f64::read(r)?,
            dampening: f64::read(r)?,
            nesterov: bool::read(r)?,
            weight_decay: f64::read(r)?,
            adam: Option::<AdamParams>::read(r)?,
            dealer: DealerMode::read(r)?,
            labels: LabelMode::read(r)?,
            randomness: Randomness::read(r)?,
            protocol: Protocol::read(r)?,
            he_key_bits: u32::read(r)?,
            feature_clip: f32::read(r)?,
            gradient_clip: f32::read(r)?,
            z_noise: f32::read(r)?,
            sgld: f32::read(r)?,
            grad_clip_value: f64::read(r)?,
            grad_clip_norm: f64::read(r)?,
        })
    }
}

impl SpnnConfig {
    /// Checks the values and returns the fixed-point encoding.
    pub fn validate(&self) -> Result<FixedPoint> {
        let fp = FixedPoint::new(self.frac_bits)?;
        if !(0.0..1.0).contains(&self.momentum) {
            return Err(SpnnError::Config(format!(
                "momentum {} must be in [0, 1)",
                self.momentum
            )));
        }
        if !(0.0..1.0).contains(&self.dampening) {
            return Err(SpnnError::Config(format!(
                "dampening {} must be in [0, 1) (1 would freeze the velocity)",
                self.dampening
            )));
        }
        for (name, c) in [
            ("momentum", self.momentum),
            ("1 − dampening", 1.0 - self.dampening),
            ("weight decay", self.weight_decay),
        ] {
            if c > 0.0 && crate::protocol::scale::PublicScale::of(c)?.m == 0 {
                return Err(SpnnError::Config(format!(
                    "{name} {c} rounds to 0 as a public multiplier"
                )));
            }
        }
        if self.momentum == 0.0 && (self.dampening > 0.0 || self.nesterov) {
            return Err(SpnnError::Config(
                "dampening and Nesterov momentum act on a velocity: they need momentum > 0".into(),
            ));
        }
        if !(self.weight_decay.is_finite() && (0.0..=1.0).contains(&self.weight_decay)) {
            return Err(SpnnError::Config(format!(
                "weight decay {} must be in [0, 1]",
                self.weight_decay
            )));
        }
        if self.weight_decay > 0.0 && self.protocol == Protocol::Paillier {
            return Err(SpnnError::Config(
                "weight decay on the private weights needs an exact truncation of W's shares, \
                 which needs a dealer: SPNN-HE cannot run it (use SPNN-SS, or no weight decay)"
                    .into(),
            ));
        }
        if let Some(adam) = &self.adam {
            adam.validate()?;
            if self.protocol == Protocol::Paillier {
                return Err(SpnnError::Config(
                    "Adam squares the gradient and divides by a square root on the shares, with \
                     the dealer's element-wise triples: SPNN-HE (no dealer) cannot run it (use \
                     SPNN-SS, or SGD)"
                        .into(),
                ));
            }
            if self.momentum > 0.0 || self.nesterov || self.dampening > 0.0 {
                return Err(SpnnError::Config(
                    "Adam keeps its own moments: the SGD momentum fields must be 0".into(),
                ));
            }
            crate::protocol::adam::Plan::new(self, 0.0, 1)?;
        }
        if self.weight_decay > 0.0 && self.momentum > 0.0 {
            return Err(SpnnError::Config(
                "weight decay with momentum: the public bound on W that keeps its truncation \
                 exact is derived for plain SGD only (use one or the other)"
                    .into(),
            ));
        }
        if self.weight_decay > 0.0 && self.sgld > 0.0 {
            return Err(SpnnError::Config(
                "weight decay truncates W's shares, which needs a public bound on W; Langevin \
                 noise (sgld) leaves it unbounded: use one or the other"
                    .into(),
            ));
        }
        let clip = self.grad_clip_value;
        if !(clip.is_finite() && clip >= 0.0 && clip < fp.max_abs()) {
            return Err(SpnnError::Config(format!(
                "gradient clipping by value {clip} must be finite, at least 0 (off) and below {}",
                fp.max_abs()
            )));
        }
        if clip > 0.0 && (clip * 2f64.powi(fp.frac_bits() as i32)).round() < 1.0 {
            return Err(SpnnError::Config(format!(
                "gradient clipping by value {clip} rounds to 0 at {} fractional bits",
                fp.frac_bits()
            )));
        }
        let norm = self.grad_clip_norm;
        if !(norm.is_finite() && norm >= 0.0) {
            return Err(SpnnError::Config(format!(
                "gradient clipping by norm {norm} must be finite and at least 0 (off)"
            )));
        }
        if norm > 0.0 && clip > 0.0 {
            return Err(SpnnError::Config(
                "gradient clipping by value and by norm at once: Burn configures one or the other"
                    .into(),
            ));
        }
        if norm > 0.0 {
            crate::protocol::clip::NormPlan::new(self)?;
        }
        if (clip > 0.0 || norm > 0.0) && self.protocol == Protocol::Paillier {
            return Err(SpnnError::Config(
                "gradient clipping compares the secret gradient with the threshold on shares, \
                 with the dealer's material: SPNN-HE (no dealer) cannot run it (use SPNN-SS, or \
                 no clipping)"
                    .into(),
            ));
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
        for (name, clip) in [
            ("feature_clip", self.feature_clip),
            ("gradient_clip", self.gradient_clip),
        ] {
            if !(clip.is_finite() && clip >= 1.0 && f64::from(clip) < fp.max_abs()) {
                return Err(SpnnError::Config(format!(
                    "{name} {clip} must be at least 1 and below {}",
                    fp.max_abs()
                )));
            }
        }
        // Z is decoded from the ring at scale 2^{2f}: six standard deviations of noise must stay
        // far inside it (2^{62 − 2f}).
        let room = 2f64.powi(62 - 2 * fp.frac_bits() as i32);
        if !(self.z_noise.is_finite()
            && self.z_noise >= 0.0
            && f64::from(self.z_noise) * 64.0 < room)
        {
            return Err(SpnnError::Config(format!(
                "z_noise {} must be finite, at least 0 and below {} at {} fractional bits",
                self.z_noise,
                room / 64.0,
                fp.frac_bits()
            )));
        }
        if !(self.sgld.is_finite() && (0.0..=MAX_SGLD).contains(&self.sgld)) {
            return Err(SpnnError::Config(format!(
                "sgld {} must be finite, at least 0 and at most {MAX_SGLD}",
                self.sgld
            )));
        }
        let bounds = crate::protocol::bounds::Bounds::of(self)?;
        if bounds.headroom_bits() == 0 {
            return Err(SpnnError::Config(format!(
                "{} fractional bits with clips {} and {} leave no ring headroom for a training batch",
                self.frac_bits, self.feature_clip, self.gradient_clip
            )));
        }
        if self.protocol == Protocol::Paillier {
            bounds.he_gradient_share_bits(2)?;
        }
        Ok(fp)
    }

    /// The same with another momentum.
    pub fn with_momentum(mut self, momentum: f64) -> Self {
        self.momentum = momentum;
        self
    }

    /// Burn's configuration of the optimiser the holders run on the weight shares (SGD with
    /// this configuration's fields, or Adam / AdamW): the one
    /// [`crate::ServerSession::optimizer`] uses for the server's layers too, and a label holder's
    /// top layers or a holder's bottom model should use (`.init()`).
    pub fn optimizer_config(&self) -> crate::optim::OptimizerConfig {
        crate::optim::OptimizerConfig::of_session(self)
    }

    /// The exact truncations the first SPNN-SS update with learning rate `lr` performs (one per
    /// public factor of the SGD that is not a whole number, Adam's of
    /// [`crate::protocol::adam::Plan::shifts`]; each is one opening among the holders and one
    /// dealt triple).
    pub fn update_truncations(&self, lr: f64) -> Result<u64> {
        Ok(self.update_dealing(lr)?.truncations.len() as u64)
    }

    /// The element-wise products (each one opening among the holders and one dealt triple) an
    /// SPNN-SS update performs: gradient clipping's ([`crate::protocol::clip::dealing`]) and
    /// Adam's ([`crate::protocol::adam::Plan::products`]); none for plain SGD.
    pub fn update_products(&self, lr: f64) -> Result<u64> {
        Ok(self.update_dealing(lr)?.products.len() as u64)
    }

    /// The dealer's material for the first SPNN-SS update with learning rate `lr`: its
    /// truncations, element-wise products and comparisons, with their shapes
    /// ([`crate::protocol::Dealing::update`]; the cost model counts their bytes).
    pub fn update_dealing(&self, lr: f64) -> Result<crate::protocol::Dealing> {
        crate::protocol::Dealing::update(self, lr, 1)
    }

    /// The same with the SGD of Burn's `config` on the weight shares: its momentum, dampening,
    /// Nesterov flag, weight decay and gradient clipping (by value or by norm).
    pub fn with_sgd(mut self, config: &burn::optim::SgdConfig) -> Result<Self> {
        let sgd = crate::optim::SgdFields::of(config)?;
        self.momentum = sgd.momentum;
        self.dampening = sgd.dampening;
        self.nesterov = sgd.nesterov;
        self.weight_decay = sgd.weight_decay;
        (self.grad_clip_value, self.grad_clip_norm) = sgd.grad_clipping;
        Ok(self)
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

    /// The same with Gaussian noise of standard deviation `sd` on `Z`, added as shares by the
    /// holders (see [`SpnnConfig::z_noise`]).
    pub fn with_z_noise(mut self, sd: f32) -> Self {
        self.z_noise = sd;
        self
    }

    /// The same with Langevin noise of scale `sgld` on the private weights' updates, added as
    /// shares by the holders (see [`SpnnConfig::sgld`]).
    pub fn with_sgld(mut self, sgld: f32) -> Self {
        self.sgld = sgld;
        self
    }

    /// The same with other clipping bounds for the features and for `c·G`.
    pub fn with_clips(mut self, feature_clip: f32, gradient_clip: f32) -> Self {
        self.feature_clip = feature_clip;
        self.gradient_clip = gradient_clip;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spnn_net::codec::{decode_exact, encode_to_vec};

    #[test]
    fn configs_round_trip_and_bad_tags_are_refused() {
        let mut configs = vec![
            SpnnConfig::default(),
            SpnnConfig {
                dampening: 0.1,
                nesterov: true,
                weight_decay: 1e-3,
                ..SpnnConfig::default()
            },
            SpnnConfig::default()
                .with_momentum(0.9)
                .with_labels(LabelMode::Holder(1))
                .with_dealer(DealerMode::Separate)
                .with_gradient_scale(GradientScale::Fixed(1.0))
                .with_clips(8.0, 4.0)
                .with_z_noise(0.25)
                .with_sgld(0.01),
            SpnnConfig::default()
                .with_protocol(Protocol::Paillier)
                .with_he_key_bits(512),
        ];
        #[cfg(feature = "insecure-test-hooks")]
        configs.push(SpnnConfig::default().with_randomness(Randomness::InsecureSeededForTests(7)));
        for c in configs.drain(..) {
            let bytes = encode_to_vec(&c);
            assert_eq!(decode_exact::<SpnnConfig>(&bytes).unwrap(), c);
            for cut in 0..bytes.len() {
                assert!(decode_exact::<SpnnConfig>(&bytes[..cut]).is_err());
            }
        }
        assert!(decode_exact::<Protocol>(&[2]).is_err());
        assert!(decode_exact::<DealerMode>(&[9]).is_err());
        assert!(decode_exact::<Randomness>(&[7]).is_err());
    }

    #[test]
    fn clips_and_scales_are_validated() {
        assert!(SpnnConfig::default().validate().is_ok());
        assert!(SpnnConfig::default().with_z_noise(0.1).validate().is_ok());
        for bad in [
            SpnnConfig::default().with_clips(0.5, 16.0),
            SpnnConfig::default().with_clips(32.0, f32::NAN),
            SpnnConfig::default().with_clips(1e6, 16.0),
            SpnnConfig::default().with_momentum(1.0),
            SpnnConfig::default().with_gradient_scale(GradientScale::Fixed(0.0)),
            // 28 fractional bits leave no room for a product of two clipped values.
            SpnnConfig::default().with_frac_bits(28),
            SpnnConfig::default().with_z_noise(-0.1),
            SpnnConfig::default().with_z_noise(f32::INFINITY),
            SpnnConfig::default().with_sgld(-0.01),
            SpnnConfig::default().with_sgld(f32::NAN),
            SpnnConfig::default().with_sgld(MAX_SGLD * 2.0),
            SpnnConfig {
                dampening: 1.5,
                ..SpnnConfig::default()
            },
            SpnnConfig {
                weight_decay: f64::NAN,
                ..SpnnConfig::default()
            },
            SpnnConfig {
                weight_decay: 1e-4,
                ..SpnnConfig::default().with_protocol(Protocol::Paillier)
            },
            SpnnConfig {
                weight_decay: 1e-4,
                ..SpnnConfig::default().with_sgld(0.01)
            },
            SpnnConfig {
                weight_decay: 1e-4,
                ..SpnnConfig::default().with_momentum(0.9)
            },
            SpnnConfig {
                dampening: 1.0,
                ..SpnnConfig::default().with_momentum(0.9)
            },
            SpnnConfig::default().with_momentum(1e-30),
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
