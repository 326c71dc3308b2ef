//! One optimiser for every parameter: Burn's, with the private weights' update inside its step.
//!
//! A model with a private first layer has two kinds of parameters: Burn's own (the server's
//! layers, the bias) and the weights `W` that exist only as shares at the holders. The user
//! chooses one Burn optimiser configuration for both:
//!
//! - [`crate::SessionSpec::with_optimizer`] states it once, before the session starts; the
//!   server proposes its hyper-parameters to every holder as part of the public
//!   [`SpnnConfig`] (each holder's policy can pin them), so every party runs the same update;
//! - [`crate::ServerSession::optimizer`] returns Burn's [`ModuleOptimizer`] for that
//!   configuration, with one more parameter group: the private layer's `anchor` parameter
//!   ([`ANCHOR_ID`]), stepped by [`SecureUpdate`]. When Burn's optimiser reaches the anchor,
//!   the holders apply the accumulated secure gradient to their shares with **the learning
//!   rate Burn's scheduler gives that step** — so LR schedules, the Learner's gradient accumulation and custom loops
//!   (`optim.step(lr, model, grads)`) drive the private weights like any other parameter, with
//!   no protocol call in user code.
//!
//! What runs on shares: SGD with momentum, dampening, Nesterov momentum, or weight decay —
//! every one linear in the shares, each product by a public constant truncated exactly
//! (module [`crate::protocol::holder`]) — and Adam / AdamW, whose element-wise square, inverse
//! square root and reciprocal run with the dealer's element-wise triples (module
//! [`crate::protocol::adam`]). Burn's gradient clipping, by value or by norm, runs on the
//! shares before either optimiser uses the gradient, as Burn clips before its step (module
//! [`crate::protocol::clip`]). What is refused at start, with an error that says why: AMSGrad
//! and cautious weight decay (comparisons of the moments or weights), Adam's L2 decay (use
//! AdamW's), and the combinations [`SpnnConfig::validate`] refuses (weight decay with momentum,
//! with SGLD or under SPNN-HE; Adam or clipping under SPNN-HE).

use burn::grad_clipping::GradientClippingConfig;
use burn::module::{ParamGroup, ParamId};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, AdamWConfig, LearningRate, ModuleOptimizer, Optimizer, SgdConfig};
use burn::tensor::{Device, Tensor};
use serde::Deserialize;

use crate::config::{AdamParams, SpnnConfig};
use crate::error::{Result, SpnnError};
use crate::protocol::server::ServerSession;

/// The Burn optimiser configuration of a model with private layers
/// ([`crate::SessionSpec::with_optimizer`]).
#[derive(Clone, Debug)]
pub enum OptimizerConfig {
    /// Burn's SGD: runs on shares (momentum, dampening, Nesterov, weight decay).
    Sgd(SgdConfig),
    /// Burn's Adam: runs on shares without weight decay (module docs).
    Adam(AdamConfig),
    /// Burn's AdamW: runs on shares, its decoupled weight decay included.
    AdamW(AdamWConfig),
}

impl From<SgdConfig> for OptimizerConfig {
    fn from(config: SgdConfig) -> Self {
        Self::Sgd(config)
    }
}

impl From<AdamConfig> for OptimizerConfig {
    fn from(config: AdamConfig) -> Self {
        Self::Adam(config)
    }
}

impl From<AdamWConfig> for OptimizerConfig {
    fn from(config: AdamWConfig) -> Self {
        Self::AdamW(config)
    }
}

impl OptimizerConfig {
    /// `config` with this optimiser's update on the shares, or the reason the holders cannot
    /// run it.
    pub fn apply_to(&self, config: SpnnConfig) -> Result<SpnnConfig> {
        match self {
            Self::Sgd(sgd) => config.with_sgd(sgd),
            Self::Adam(_) | Self::AdamW(_) => {
                let (adam, weight_decay, (grad_clip_value, grad_clip_norm)) = AdamFields::of(self)?;
                Ok(SpnnConfig {
                    adam: Some(adam),
                    momentum: 0.0,
                    dampening: 0.0,
                    nesterov: false,
                    weight_decay,
                    grad_clip_value,
                    grad_clip_norm,
                    ..config
                })
            }
        }
    }

    /// Burn's optimiser for this configuration (the server's layers, a label holder's top
    /// layers, the holders' bottom models).
    pub fn init(&self) -> ModuleOptimizer {
        match self {
            Self::Sgd(c) => c.init(),
            Self::Adam(c) => c.init(),
            Self::AdamW(c) => c.init(),
        }
    }

    /// The Burn configuration of a session's optimiser: SGD with its fields, or Adam (AdamW when
    /// it has weight decay).
    pub fn of_session(config: &SpnnConfig) -> Self {
        let clipping = burn_clipping((config.grad_clip_value, config.grad_clip_norm));
        match config.adam {
            None => Self::Sgd(SgdFields::of_session(config).to_burn()),
            Some(a) if config.weight_decay > 0.0 => Self::AdamW(
                AdamWConfig::new()
                    .with_beta_1(a.beta_1 as f32)
                    .with_beta_2(a.beta_2 as f32)
                    .with_epsilon(a.epsilon as f32)
                    .with_weight_decay(config.weight_decay as f32)
                    .with_grad_clipping(clipping),
            ),
            Some(a) => Self::Adam(
                AdamConfig::new()
                    .with_beta_1(a.beta_1 as f32)
                    .with_beta_2(a.beta_2 as f32)
                    .with_epsilon(a.epsilon as f32)
                    .with_grad_clipping(clipping),
            ),
        }
    }
}

/// Burn's clipping of a session's `(by value, by norm)` thresholds (none for zeros).
fn burn_clipping((value, norm): (f64, f64)) -> Option<GradientClippingConfig> {
    if value > 0.0 {
        Some(GradientClippingConfig::Value(value as f32))
    } else if norm > 0.0 {
        Some(GradientClippingConfig::Norm(norm as f32))
    } else {
        None
    }
}

/// The `(by value, by norm)` thresholds of Burn's serialised gradient clipping (zeros without
/// it).
fn clipping_of(clipping: Option<serde_json::Value>) -> Result<(f64, f64)> {
    let Some(clipping) = clipping.filter(|c| !c.is_null()) else {
        return Ok((0.0, 0.0));
    };
    let threshold = |v: &serde_json::Value| {
        v.as_f64().ok_or_else(|| {
            SpnnError::Config(format!(
                "Burn's gradient clipping {clipping} is not a number"
            ))
        })
    };
    match (clipping.get("Value"), clipping.get("Norm")) {
        (Some(v), None) => Ok((threshold(v)?, 0.0)),
        (None, Some(v)) => Ok((0.0, threshold(v)?)),
        _ => Err(SpnnError::Config(format!(
            "Burn's gradient clipping {clipping} is not one this version knows"
        ))),
    }
}

/// The fields of Burn's `AdamConfig` / `AdamWConfig` (private, read through serde; a field this
/// version does not know is an error, never ignored).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AdamFields {
    beta_1: f32,
    beta_2: f32,
    epsilon: f32,
    #[serde(default)]
    amsgrad: bool,
    /// Adam's L2 penalty (`{ "penalty": λ }`) or AdamW's decoupled `λ`.
    #[serde(default)]
    weight_decay: Option<serde_json::Value>,
    #[serde(default)]
    cautious_weight_decay: bool,
    #[serde(default)]
    grad_clipping: Option<serde_json::Value>,
}

impl AdamFields {
    /// Adam's parameters and the decoupled weight decay of `config` (an Adam or AdamW); refuses
    /// what needs a comparison of secret values or an unbounded `W`.
    fn of(config: &OptimizerConfig) -> Result<(AdamParams, f64, (f64, f64))> {
        let unreadable = |e: serde_json::Error| SpnnError::Config(format!("Burn's Adam: {e}"));
        let value = match config {
            OptimizerConfig::Adam(c) => serde_json::to_value(c),
            OptimizerConfig::AdamW(c) => serde_json::to_value(c),
            OptimizerConfig::Sgd(_) => return Err(SpnnError::Config("SGD is not Adam".into())),
        }
        .map_err(unreadable)?;
        let s: Self = serde_json::from_value(value).map_err(unreadable)?;
        let refuse = |what: &str| {
            Err(SpnnError::Config(format!(
                "{what} needs comparisons of Adam's secret moments or weights, which the holders \
                 do not run on shares (they compare only the gradient, for clipping): configure \
                 Adam without it"
            )))
        };
        let clip = clipping_of(s.grad_clipping)?;
        if s.amsgrad {
            return refuse("AMSGrad (the running maximum of v)");
        }
        if s.cautious_weight_decay {
            return refuse("cautious weight decay (the signs of W and m)");
        }
        let weight_decay = match (config, &s.weight_decay) {
            (OptimizerConfig::AdamW(_), Some(v)) => v.as_f64().ok_or_else(|| {
                SpnnError::Config(format!("AdamW's weight decay {v} is not a number"))
            })?,
            (OptimizerConfig::Adam(_), Some(v)) if !v.is_null() => {
                return Err(SpnnError::Config(
                    "Adam's L2 weight decay adds λ·W to the gradient before the division, which \
                     leaves W without a public bound that stays put: use AdamWConfig (decoupled \
                     decay) instead"
                        .into(),
                ));
            }
            _ => 0.0,
        };
        let params = AdamParams {
            beta_1: f64::from(s.beta_1),
            beta_2: f64::from(s.beta_2),
            epsilon: f64::from(s.epsilon),
        };
        params.validate()?;
        Ok((params, weight_decay, clip))
    }
}

/// The SGD hyper-parameters of Burn's `SgdConfig`, read through its serialised form (its
/// fields are private).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct SgdFields {
    pub momentum: f64,
    pub dampening: f64,
    pub nesterov: bool,
    pub weight_decay: f64,
    /// Burn's gradient clipping: `(by value, by norm)`, zeros without.
    pub grad_clipping: (f64, f64),
}

#[derive(Deserialize)]
struct SgdSerde {
    weight_decay: Option<DecaySerde>,
    momentum: Option<MomentumSerde>,
    gradient_clipping: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct DecaySerde {
    penalty: f32,
}

#[derive(Deserialize)]
struct MomentumSerde {
    momentum: f64,
    dampening: f64,
    nesterov: bool,
}

impl SgdFields {
    /// The fields of Burn's `config`.
    pub fn of(config: &SgdConfig) -> Result<Self> {
        let unreadable = |e: serde_json::Error| SpnnError::Config(format!("Burn's SgdConfig: {e}"));
        let s: SgdSerde = serde_json::from_value(serde_json::to_value(config).map_err(unreadable)?)
            .map_err(unreadable)?;
        let grad_clipping = clipping_of(s.gradient_clipping)?;
        let (momentum, dampening, nesterov) = s
            .momentum
            .map_or((0.0, 0.0, false), |m| (m.momentum, m.dampening, m.nesterov));
        Ok(Self {
            momentum,
            dampening,
            nesterov,
            weight_decay: s.weight_decay.map_or(0.0, |d| f64::from(d.penalty)),
            grad_clipping,
        })
    }

    /// The fields of a session's configuration.
    pub fn of_session(config: &SpnnConfig) -> Self {
        Self {
            momentum: config.momentum,
            dampening: config.dampening,
            nesterov: config.nesterov,
            weight_decay: config.weight_decay,
            grad_clipping: (config.grad_clip_value, config.grad_clip_norm),
        }
    }

    /// Burn's configuration with these fields.
    pub fn to_burn(self) -> SgdConfig {
        let momentum = (self.momentum > 0.0 || self.nesterov).then(|| {
            MomentumConfig::new()
                .with_momentum(self.momentum)
                .with_dampening(self.dampening)
                .with_nesterov(self.nesterov)
        });
        let decay =
            (self.weight_decay > 0.0).then(|| WeightDecayConfig::new(self.weight_decay as f32));
        SgdConfig::new()
            .with_momentum(momentum)
            .with_weight_decay(decay)
            .with_gradient_clipping(burn_clipping(self.grad_clipping))
    }
}

/// The "optimiser" of a private layer's anchor parameter: stepping it applies the holders'
/// secure update with the step's learning rate, and leaves the anchor (always zero) as it is.
///
/// Burn's `Optimizer::step` cannot return an error: one from the protocol is recorded in the
/// session, and the next forward (or [`ServerSession::check`]) returns it.
#[derive(Clone, Debug)]
pub struct SecureUpdate {
    session: ServerSession,
}

impl Optimizer for SecureUpdate {
    type State<const D: usize> = ();

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        _grad: Tensor<D>,
        _state: Option<()>,
    ) -> (Tensor<D>, Option<()>) {
        if let Err(e) = self.session.update(lr) {
            self.session.record_error(e);
        }
        (tensor, None)
    }

    fn to_device<const D: usize>(_state: (), _device: &Device) {}
}

/// The parameter id of every private layer's anchor ([`crate::SecureAggregation`]). Burn
/// restores a parameter's id from a loaded record, so a fixed id is what lets the optimiser
/// find the anchor after `load_record` or a resumed checkpoint. One model holds one private
/// layer.
pub const ANCHOR_ID: u64 = u64::from_be_bytes(*b"spnn-anc");

/// Burn's optimiser for the session's configuration, the private layer's anchor stepped by
/// [`SecureUpdate`] (called by [`ServerSession::optimizer`]).
pub(crate) fn module_optimizer(session: &ServerSession) -> ModuleOptimizer {
    OptimizerConfig::of_session(&session.config())
        .init()
        .with_group(
            ParamGroup::from_ids(vec![ParamId::from(ANCHOR_ID)]),
            SecureUpdate {
                session: session.clone(),
            },
            None,
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::grad_clipping::GradientClippingConfig;

    #[test]
    fn burns_sgd_fields_are_read_and_written_back() {
        let burn = SgdConfig::new()
            .with_momentum(Some(
                MomentumConfig::new()
                    .with_momentum(0.8)
                    .with_dampening(0.25)
                    .with_nesterov(true),
            ))
            .with_weight_decay(Some(WeightDecayConfig::new(0.5)))
            .with_gradient_clipping(Some(GradientClippingConfig::Value(0.75)));
        let fields = SgdFields::of(&burn).unwrap();
        assert_eq!(
            fields,
            SgdFields {
                momentum: 0.8,
                dampening: 0.25,
                nesterov: true,
                weight_decay: 0.5,
                grad_clipping: (0.75, 0.0),
            }
        );
        assert_eq!(SgdFields::of(&fields.to_burn()).unwrap(), fields);
        let plain = SgdFields::of(&SgdConfig::new()).unwrap();
        assert_eq!(plain, SgdFields::of_session(&SpnnConfig::default()));
    }

    #[test]
    fn what_shares_cannot_run_is_refused_with_the_reason() {
        for (refused, why) in [
            (
                OptimizerConfig::from(AdamConfig::new().with_amsgrad(true)),
                "AMSGrad",
            ),
            (
                OptimizerConfig::from(
                    AdamConfig::new().with_weight_decay(Some(WeightDecayConfig::new(1e-3))),
                ),
                "AdamWConfig",
            ),
            (
                OptimizerConfig::from(AdamWConfig::new().with_cautious_weight_decay(true)),
                "cautious",
            ),
        ] {
            let e = refused.apply_to(SpnnConfig::default()).unwrap_err();
            assert!(e.to_string().contains(why), "{e}");
        }
        let adamw = OptimizerConfig::from(AdamWConfig::new().with_beta_2(0.99))
            .apply_to(SpnnConfig::default().with_momentum(0.5))
            .unwrap();
        let a = adamw.adam.unwrap();
        assert_eq!((a.beta_1, a.beta_2), (0.9f32 as f64, 0.99f32 as f64));
        assert_eq!(adamw.weight_decay, 1e-4f32 as f64);
        assert_eq!(adamw.momentum, 0.0);
        assert!(adamw.validate().is_ok());
        assert!(matches!(
            OptimizerConfig::of_session(&adamw),
            OptimizerConfig::AdamW(_)
        ));
        let sgd = OptimizerConfig::from(
            SgdConfig::new().with_momentum(Some(MomentumConfig::new().with_nesterov(true))),
        )
        .apply_to(SpnnConfig::default())
        .unwrap();
        assert!(sgd.nesterov && sgd.momentum == 0.9 && sgd.dampening == 0.1);
        // Clipping by value runs on shares, and the server's layers get Burn's own.
        let clipped = OptimizerConfig::from(
            AdamConfig::new().with_grad_clipping(Some(GradientClippingConfig::Value(0.5))),
        )
        .apply_to(SpnnConfig::default())
        .unwrap();
        assert_eq!(
            (clipped.grad_clip_value, clipped.grad_clip_norm),
            (0.5, 0.0)
        );
        let OptimizerConfig::Adam(burn) = OptimizerConfig::of_session(&clipped) else {
            panic!("Adam");
        };
        let json = serde_json::to_value(&burn).unwrap();
        assert_eq!(json["grad_clipping"], serde_json::json!({ "Value": 0.5 }));
        let by_norm = OptimizerConfig::from(
            SgdConfig::new().with_gradient_clipping(Some(GradientClippingConfig::Norm(2.0))),
        )
        .apply_to(SpnnConfig::default())
        .unwrap();
        assert_eq!(
            (by_norm.grad_clip_value, by_norm.grad_clip_norm),
            (0.0, 2.0)
        );
        let json = match OptimizerConfig::of_session(&by_norm) {
            OptimizerConfig::Sgd(burn) => serde_json::to_value(&burn).unwrap(),
            _ => panic!("SGD"),
        };
        assert_eq!(
            json["gradient_clipping"],
            serde_json::json!({ "Norm": 2.0 })
        );
        let both = SpnnConfig {
            grad_clip_norm: 1.0,
            ..clipped
        };
        assert!(
            both.validate()
                .unwrap_err()
                .to_string()
                .contains("one or the other")
        );
        let he = SpnnConfig {
            protocol: crate::config::Protocol::Paillier,
            ..clipped
        };
        assert!(he.validate().unwrap_err().to_string().contains("SPNN-HE"));
        for bad in [-1.0, f64::NAN, f64::INFINITY, 1e-9] {
            let e = SpnnConfig {
                grad_clip_value: bad,
                ..SpnnConfig::default()
            }
            .validate()
            .unwrap_err();
            assert!(e.to_string().contains("clipping by value"), "{bad}: {e}");
        }
    }
}
