//! [`SecureAggregation`] and [`PrivateLinear`]: the Burn modules of a private first layer.

use std::sync::Arc;

use burn::config::Config;
use burn::module::{Content, DisplaySettings, Module, ModuleDisplay, Param, ParamId};
use burn::nn::Initializer;
use burn::tensor::{Device, Tensor};

use crate::error::SpnnError;
use crate::messages::LayerKind;
use crate::ops::{PrivateCall, PrivateOps};
use crate::protocol::server::ServerSession;

/// Configuration of a [`SecureAggregation`] module. Its width is the session's
/// ([`crate::SessionSpec::new`] states it once).
#[derive(Config, Debug)]
pub struct SecureAggregationConfig {}

/// The server learns only the sum of the holders' contributions for a batch of sample ids:
/// `[batch, h]`.
///
/// - In an SPNN-SS session the contributions are the holders' shares `⟨X·W⟩_i` of the private
///   first layer (use it through [`PrivateLinear`]); backward returns `G` to them as random
///   additive shares.
/// - In a bottom-model session the contributions are the outputs of the holders' own Burn
///   models, masked with pairwise masks that cancel in the sum; backward returns `G` to every
///   holder for its local backward (`run_bottom_holder`).
///
/// `loss.backward()` reaches the protocol through a custom Burn operation; the module's one
/// parameter, `anchor`, exists only to make that operation tracked and always gets a zero
/// gradient; [`ServerSession::optimizer`] steps it by applying the holders' update with the
/// step's learning rate.
#[derive(Module, Debug)]
#[module(custom_display)]
pub struct SecureAggregation {
    /// One trainable element that makes the private operation tracked by autodiff.
    pub anchor: Param<Tensor<1>>,
    #[module(skip)]
    session: ServerSession,
    d_output: usize,
}

impl SecureAggregationConfig {
    /// Builds the module on `device` for an established session, of the session's width.
    pub fn init(&self, session: &ServerSession, device: &Device) -> SecureAggregation {
        let mut anchor = Param::from_tensor(Tensor::<1>::zeros([1], device));
        anchor.id = ParamId::from(crate::optim::ANCHOR_ID);
        SecureAggregation {
            anchor,
            session: session.clone(),
            d_output: session.output_width(),
        }
    }
}

impl SecureAggregation {
    /// `[ids.len(), h]`: the aggregated output. Panics with the protocol error if the session
    /// fails; [`Self::try_forward`] returns it instead.
    pub fn forward(&self, ids: &[u64]) -> Tensor<2> {
        self.try_forward(ids)
            .unwrap_or_else(|e| panic!("secure aggregation failed: {e}"))
    }

    /// [`Self::forward`], returning protocol errors.
    pub fn try_forward(&self, ids: &[u64]) -> crate::error::Result<Tensor<2>> {
        let call = PrivateCall {
            session: self.session.clone(),
            ids: Arc::new(ids.to_vec()),
            width: self.d_output,
        };
        let z = Tensor::<2>::from_dispatch(
            <burn::backend::Dispatch as PrivateOps>::private_first_layer(
                self.anchor.val().into_dispatch(),
                call,
            ),
        );
        self.session.check()?;
        Ok(z)
    }

    /// The session this module runs on.
    pub fn session(&self) -> &ServerSession {
        &self.session
    }
}

/// Configuration of a [`PrivateLinear`] layer. Its widths are the session's: `d` is the sum of
/// the holders' columns, `h` what [`crate::SessionSpec::new`] states.
#[derive(Config, Debug)]
pub struct PrivateLinearConfig {
    /// Whether the layer adds a (plaintext, server-side) bias. Default: true.
    #[config(default = true)]
    pub bias: bool,
    /// How the bias is initialised (default: Kaiming-uniform as Burn's `Linear`). `W` is
    /// initialised by the holders jointly, with the variance of that default.
    #[config(
        default = "Initializer::KaimingUniform { gain: 1.0 / 3f64.sqrt(), fan_out_only: false }"
    )]
    pub initializer: Initializer,
}

/// `O = X·W + b` where the rows of `X` are the features of a batch of samples split by columns
/// among the data holders, and `W` (`d × h`) exists only as additive shares at the holders.
///
/// - **Input**: a batch of sample ids (every holder has those samples).
/// - **Output**: `[batch, h]` on the layer's device: the server learns `Z = X·W`.
/// - **Weights**: `W` is initialised by the holders jointly (variance `1/(3d)`, as Burn's
///   `Linear`), never held by anyone, and updated on shares by the model's one optimiser,
///   [`ServerSession::optimizer`], with the learning rate of each step. The bias `b` (`[h]`,
///   Kaiming-uniform like `Linear`) is an ordinary parameter of the server.
/// - **Backward**: `loss.backward()` reaches the layer through [`SecureAggregation`]'s custom
///   operation and runs the secure backward protocol; the holders accumulate `∇W` as shares.
#[derive(Module, Debug)]
#[module(custom_display)]
pub struct PrivateLinear {
    /// The aggregation of the holders' output shares.
    pub aggregation: SecureAggregation,
    /// The plaintext bias, `[d_output]`.
    pub bias: Option<Param<Tensor<1>>>,
    d_input: usize,
}

impl PrivateLinearConfig {
    /// Builds the layer on `device` for an established SPNN session. Panics on a bottom-model
    /// session, as Burn's `init` does on a configuration that cannot work;
    /// [`Self::try_init`] returns the error instead.
    pub fn init(&self, session: &ServerSession, device: &Device) -> PrivateLinear {
        self.try_init(session, device)
            .unwrap_or_else(|e| panic!("PrivateLinearConfig::init: {e}"))
    }

    /// [`Self::init`], returning an error for a bottom-model session.
    pub fn try_init(
        &self,
        session: &ServerSession,
        device: &Device,
    ) -> crate::error::Result<PrivateLinear> {
        if session.kind() != LayerKind::PrivateLinear {
            return Err(SpnnError::Config(
                "PrivateLinear needs an SPNN session with private weights, not a bottom-model one"
                    .into(),
            ));
        }
        let aggregation = SecureAggregationConfig::new().init(session, device);
        let (d, h) = (session.input_width(), session.output_width());
        let bias = self
            .bias
            .then(|| self.initializer.init_with([h], Some(d), Some(h), device));
        Ok(PrivateLinear {
            aggregation,
            bias,
            d_input: d,
        })
    }
}

impl PrivateLinear {
    /// `[ids.len(), h]`: the first-layer output of the batch. Panics with the protocol error if
    /// the session fails; [`Self::try_forward`] returns it instead.
    pub fn forward(&self, ids: &[u64]) -> Tensor<2> {
        self.try_forward(ids)
            .unwrap_or_else(|e| panic!("PrivateLinear forward failed: {e}"))
    }

    /// [`Self::forward`], returning protocol errors.
    pub fn try_forward(&self, ids: &[u64]) -> crate::error::Result<Tensor<2>> {
        let z = self.aggregation.try_forward(ids)?;
        Ok(match &self.bias {
            Some(b) => z + b.val().unsqueeze(),
            None => z,
        })
    }

    /// The session this layer runs on.
    pub fn session(&self) -> &ServerSession {
        self.aggregation.session()
    }

    /// Input width `d`.
    pub fn d_input(&self) -> usize {
        self.d_input
    }

    /// Output width `h`.
    pub fn d_output(&self) -> usize {
        self.aggregation.d_output
    }
}

/// The session's part of both modules' display: who computes the layer and how.
fn session_content(content: Content, session: &ServerSession) -> Content {
    let scheme = match (session.kind(), session.config().protocol) {
        (LayerKind::PrivateLinear, crate::config::Protocol::SecretSharing) => "secret sharing",
        (LayerKind::PrivateLinear, crate::config::Protocol::Paillier) => "paillier",
        (LayerKind::BottomModels, _) => "masked bottom models",
        #[allow(unreachable_patterns)]
        _ => "unmasked bottom models (insecure baseline)",
    };
    content
        .add("holders", &session.holders())
        .add("scheme", &scheme.to_string())
}

/// One line, like burn-nn's `Linear`.
fn inline() -> Option<DisplaySettings> {
    DisplaySettings::new()
        .with_new_line_after_attribute(false)
        .optional()
}

impl ModuleDisplay for SecureAggregation {
    fn custom_settings(&self) -> Option<DisplaySettings> {
        inline()
    }

    fn custom_content(&self, content: Content) -> Option<Content> {
        session_content(content.add("d_output", &self.d_output), &self.session).optional()
    }
}

impl ModuleDisplay for PrivateLinear {
    fn custom_settings(&self) -> Option<DisplaySettings> {
        inline()
    }

    fn custom_content(&self, content: Content) -> Option<Content> {
        let content = content
            .add("d_input", &self.d_input)
            .add("d_output", &self.aggregation.d_output)
            .add("bias", &self.bias.is_some());
        session_content(content, &self.aggregation.session).optional()
    }
}
