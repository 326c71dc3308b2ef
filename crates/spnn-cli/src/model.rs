//! The server's model from the deployment file: `PrivateLinear` then an MLP.

use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::activation::{relu, sigmoid, tanh};
use burn::tensor::{Device, Tensor};
use spnn_burn::{PrivateLinear, PrivateLinearConfig, ServerSession};

use crate::config::{Activation, Model, Norm};

/// `ids → PrivateLinear(d, hidden[0]) → [norm] → act → [dropout] → Linear → … → Linear(·, 1)`.
#[derive(Module, Debug)]
pub struct Mlp {
    first: PrivateLinear,
    layers: Vec<Linear>,
    /// One per hidden layer, with `norm = "layer"`.
    norms: Vec<LayerNorm>,
    dropout: Dropout,
    #[module(skip)]
    activation: Activation,
}

impl Mlp {
    /// Builds the model `[model]` describes on `device` for an established session.
    pub fn new(session: &ServerSession, model: &Model, device: &Device) -> Self {
        let first = PrivateLinearConfig::new().init(session, device);
        let mut widths = model.hidden.clone();
        widths.push(1);
        let layers = widths
            .windows(2)
            .map(|w| LinearConfig::new(w[0], w[1]).init(device))
            .collect();
        let norms = match model.norm {
            Norm::None => Vec::new(),
            Norm::Layer => model
                .hidden
                .iter()
                .map(|&w| LayerNormConfig::new(w).init(device))
                .collect(),
        };
        Self {
            first,
            layers,
            norms,
            dropout: DropoutConfig::new(model.dropout).init(),
            activation: model.activation,
        }
    }

    fn act(&self, x: Tensor<2>) -> Tensor<2> {
        match self.activation {
            Activation::Relu => relu(x),
            Activation::Tanh => tanh(x),
            Activation::Sigmoid => sigmoid(x),
        }
    }

    /// Logits `[ids.len(), 1]`.
    pub fn forward(&self, ids: &[u64]) -> spnn_burn::Result<Tensor<2>> {
        let mut x = self.first.try_forward(ids)?;
        for (i, layer) in self.layers.iter().enumerate() {
            if let Some(norm) = self.norms.get(i) {
                x = norm.forward(x);
            }
            x = layer.forward(self.dropout.forward(self.act(x)));
        }
        Ok(x)
    }

    /// The private layer (for its secure update).
    pub fn first(&self) -> &PrivateLinear {
        &self.first
    }
}
