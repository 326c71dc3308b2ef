//! The server's model from the deployment file: `PrivateLinear` then an MLP.

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::{relu, sigmoid, tanh};
use burn::tensor::{Device, Tensor};
use spnn_burn::{PrivateLinear, PrivateLinearConfig, ServerSession};

use crate::config::Activation;

/// `ids → PrivateLinear(d, hidden[0]) → act → Linear → act … → Linear(·, 1)`.
#[derive(Module, Debug)]
pub struct Mlp {
    first: PrivateLinear,
    layers: Vec<Linear>,
    #[module(skip)]
    activation: Activation,
}

impl Mlp {
    /// Builds the model on `device` for an established session.
    pub fn new(
        session: &ServerSession,
        hidden: &[usize],
        activation: Activation,
        device: &Device,
    ) -> spnn_burn::Result<Self> {
        let first = PrivateLinearConfig::new().init(session, device);
        let mut widths = hidden.to_vec();
        widths.push(1);
        let layers = widths
            .windows(2)
            .map(|w| LinearConfig::new(w[0], w[1]).init(device))
            .collect();
        Ok(Self {
            first,
            layers,
            activation,
        })
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
        for layer in &self.layers {
            x = layer.forward(self.act(x));
        }
        Ok(x)
    }

    /// The private layer (for its secure update).
    pub fn first(&self) -> &PrivateLinear {
        &self.first
    }
}
