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
//! (module [`crate::protocol::holder`]). What is refused at start, with an error that says why:
//! gradient clipping (a norm of secret values), Adam / AdamW (an elementwise inverse square
//! root of secret second moments, which spnn does not compute on shares yet), and the
//! combinations [`SpnnConfig::validate`] refuses (weight decay with momentum, with SGLD or under
//! SPNN-HE).

use burn::module::{ParamGroup, ParamId};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, AdamWConfig, LearningRate, ModuleOptimizer, Optimizer, SgdConfig};
use burn::tensor::{Device, Tensor};
use serde::Deserialize;

use crate::config::SpnnConfig;
use crate::error::{Result, SpnnError};
use crate::protocol::server::ServerSession;

/// The Burn optimiser configuration of a model with private layers
/// ([`crate::SessionSpec::with_optimizer`]).
#[derive(Clone, Debug)]
pub enum OptimizerConfig {
    /// Burn's SGD: runs on shares (momentum, dampening, Nesterov, weight decay).
    Sgd(SgdConfig),
    /// Burn's Adam: refused at start (module docs).
    Adam(AdamConfig),
    /// Burn's AdamW: refused at start (module docs).
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
            Self::Adam(_) | Self::AdamW(_) => Err(SpnnError::Config(
                "Adam and AdamW divide by the square root of secret second moments, which the \
                 holders cannot compute on their shares yet: use SgdConfig (momentum, Nesterov \
                 and weight decay run on shares)"
                    .into(),
            )),
        }
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
    /// The fields of Burn's `config`; refuses gradient clipping.
    pub fn of(config: &SgdConfig) -> Result<Self> {
        let unreadable = |e: serde_json::Error| SpnnError::Config(format!("Burn's SgdConfig: {e}"));
        let s: SgdSerde = serde_json::from_value(serde_json::to_value(config).map_err(unreadable)?)
            .map_err(unreadable)?;
        if s.gradient_clipping.is_some() {
            return Err(SpnnError::Config(
                "gradient clipping needs the norm (or the sign) of the private weights' secret \
                 gradient, which the holders cannot compute on shares: configure the optimiser \
                 without it (SpnnConfig::gradient_clip bounds the boundary gradient instead)"
                    .into(),
            ));
        }
        let (momentum, dampening, nesterov) = s
            .momentum
            .map_or((0.0, 0.0, false), |m| (m.momentum, m.dampening, m.nesterov));
        Ok(Self {
            momentum,
            dampening,
            nesterov,
            weight_decay: s.weight_decay.map_or(0.0, |d| f64::from(d.penalty)),
        })
    }

    /// The fields of a session's configuration.
    pub fn of_session(config: &SpnnConfig) -> Self {
        Self {
            momentum: config.momentum,
            dampening: config.dampening,
            nesterov: config.nesterov,
            weight_decay: config.weight_decay,
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
    session.config().sgd_config().init().with_group(
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
            .with_weight_decay(Some(WeightDecayConfig::new(0.5)));
        let fields = SgdFields::of(&burn).unwrap();
        assert_eq!(
            fields,
            SgdFields {
                momentum: 0.8,
                dampening: 0.25,
                nesterov: true,
                weight_decay: 0.5,
            }
        );
        assert_eq!(SgdFields::of(&fields.to_burn()).unwrap(), fields);
        let plain = SgdFields::of(&SgdConfig::new()).unwrap();
        assert_eq!(plain, SgdFields::of_session(&SpnnConfig::default()));
    }

    #[test]
    fn what_shares_cannot_run_is_refused_with_the_reason() {
        let clipped =
            SgdConfig::new().with_gradient_clipping(Some(GradientClippingConfig::Norm(1.0)));
        let e = OptimizerConfig::from(clipped)
            .apply_to(SpnnConfig::default())
            .unwrap_err();
        assert!(e.to_string().contains("gradient clipping"), "{e}");
        for adam in [
            OptimizerConfig::from(AdamConfig::new()),
            OptimizerConfig::from(AdamWConfig::new()),
        ] {
            let e = adam.apply_to(SpnnConfig::default()).unwrap_err();
            assert!(e.to_string().contains("square root"), "{e}");
        }
        let sgd = OptimizerConfig::from(
            SgdConfig::new().with_momentum(Some(MomentumConfig::new().with_nesterov(true))),
        )
        .apply_to(SpnnConfig::default())
        .unwrap();
        assert!(sgd.nesterov && sgd.momentum == 0.9 && sgd.dampening == 0.1);
    }
}
