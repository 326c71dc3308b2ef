//! The models from the deployment file: the server's `PrivateLinear` then an MLP, and with the
//! labels at a holder, that holder's top layers.

use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::activation::{relu, sigmoid, tanh};
use burn::tensor::{Device, Tensor};
use spnn_burn::{LocalModel, PrivateLinear, PrivateLinearConfig, ServerSession};

use crate::config::{Activation, Model, Norm};

fn activate(activation: Activation, x: Tensor<2>) -> Tensor<2> {
    match activation {
        Activation::Relu => relu(x),
        Activation::Tanh => tanh(x),
        Activation::Sigmoid => sigmoid(x),
    }
}

/// `ids → PrivateLinear(d, hidden[0]) → [norm] → act → [dropout] → Linear → …`: with the labels
/// at the server, on to `Linear(·, 1)` (the logit); with them at a holder, it stops after the
/// last hidden layer's activation (and dropout) and those activations go to the label holder.
#[derive(Module, Debug)]
pub struct Mlp {
    first: PrivateLinear,
    layers: Vec<Linear>,
    /// One per hidden layer, with `norm = "layer"`.
    norms: Vec<LayerNorm>,
    dropout: Dropout,
    #[module(skip)]
    activation: Activation,
    #[module(skip)]
    hidden: usize,
}

impl Mlp {
    /// Builds the server's model `[model]` describes on `device` for an established session;
    /// `logit` says whether it ends with the output layer (labels at the server):
    /// [`Model::outputs`] logits or values.
    pub fn new(session: &ServerSession, model: &Model, logit: bool, device: &Device) -> Self {
        let first = PrivateLinearConfig::new().init(session, device);
        let mut widths = model.hidden.clone();
        if logit {
            widths.push(model.outputs());
        }
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
            hidden: model.hidden.len(),
        }
    }

    /// Outputs `[ids.len(), outputs]` (logits, or values for a regression), or with the labels
    /// at a holder the activations it receives.
    pub fn forward(&self, ids: &[u64]) -> spnn_burn::Result<Tensor<2>> {
        let mut x = self.first.try_forward(ids)?;
        for i in 0..self.hidden {
            if let Some(norm) = self.norms.get(i) {
                x = norm.forward(x);
            }
            x = self.dropout.forward(activate(self.activation, x));
            if let Some(layer) = self.layers.get(i) {
                x = layer.forward(x);
            }
        }
        Ok(x)
    }

    /// The private layer (for its secure update).
    pub fn first(&self) -> &PrivateLinear {
        &self.first
    }
}

/// The label holder's top layers: `Linear(hidden.last, top[0]) → act → … → Linear(·, 1)`.
#[derive(Module, Debug)]
pub struct Top {
    layers: Vec<Linear>,
    #[module(skip)]
    activation: Activation,
}

impl Top {
    /// The top layers `[model]` describes, on `device`.
    pub fn new(model: &Model, device: &Device) -> Self {
        let mut widths = vec![*model.hidden.last().expect("validated: at least one width")];
        widths.extend(&model.top);
        widths.push(1);
        Self {
            layers: widths
                .windows(2)
                .map(|w| LinearConfig::new(w[0], w[1]).init(device))
                .collect(),
            activation: model.activation,
        }
    }
}

impl LocalModel for Top {
    fn forward(&self, mut x: Tensor<2>) -> Tensor<2> {
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(x);
            if i < last {
                x = activate(self.activation, x);
            }
        }
        x
    }
}
