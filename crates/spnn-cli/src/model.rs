//! The models from the deployment file: the server's `PrivateLinear` (or the sum of the holders'
//! bottom models) then an MLP; with the labels at a holder, that holder's top layers; with
//! bottom models, each holder's own.

use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::activation::{relu, sigmoid, tanh};
use burn::tensor::{Device, Tensor};
use spnn_burn::{
    LocalModel, PrivateLinear, PrivateLinearConfig, SecureAggregation, SecureAggregationConfig,
    ServerSession,
};

use crate::config::{Activation, Model, Norm};

fn activate(activation: Activation, x: Tensor<2>) -> Tensor<2> {
    match activation {
        Activation::Relu => relu(x),
        Activation::Tanh => tanh(x),
        Activation::Sigmoid => sigmoid(x),
    }
}

/// The server's first layer: SPNN's private layer, or the sum of the holders' bottom models.
#[derive(Module, Debug)]
pub enum First {
    /// `X·W + b` with `W` secret-shared at the holders.
    Private(PrivateLinear),
    /// `Σ_j bottom_j(X_j)`, each holder's own model's output, masked so only the sum is seen.
    Sum(SecureAggregation),
}

impl First {
    fn forward(&self, ids: &[u64]) -> spnn_burn::Result<Tensor<2>> {
        match self {
            Self::Private(l) => l.try_forward(ids),
            Self::Sum(l) => l.try_forward(ids),
        }
    }

    /// The session the layer runs on.
    pub fn session(&self) -> &ServerSession {
        match self {
            Self::Private(l) => l.session(),
            Self::Sum(l) => l.session(),
        }
    }
}

/// `ids → PrivateLinear(d, hidden[0]) (or the sum of the bottom models) → [norm] → act →
/// [dropout] → Linear → …`: with the labels at the server, on to the output layer; with them at a
/// holder, it stops after the last hidden layer's activation (and dropout) and those
/// activations go to the label holder.
#[derive(Module, Debug)]
pub struct Mlp {
    first: First,
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
        let first = match model.bottom {
            None => First::Private(PrivateLinearConfig::new().init(session, device)),
            Some(_) => First::Sum(SecureAggregationConfig::new().init(session, device)),
        };
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
        let mut x = self.first.forward(ids)?;
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

    /// The first layer (and through it, the session).
    pub fn first(&self) -> &First {
        &self.first
    }
}

/// A party's own MLP: `Linear(widths[0], widths[1]) → act → … → Linear(·, widths.last)`, no
/// activation after the last layer — the label holder's top layers, or a holder's bottom model.
#[derive(Module, Debug)]
pub struct LocalMlp {
    layers: Vec<Linear>,
    #[module(skip)]
    activation: Activation,
}

impl LocalMlp {
    /// The label holder's top layers `[model]` describes: the server's last hidden width,
    /// `model.top`, the outputs (one logit, a logit per class, or one prediction).
    pub fn top(model: &Model, device: &Device) -> Self {
        let mut widths = vec![*model.hidden.last().expect("validated: at least one width")];
        widths.extend(&model.top);
        widths.push(model.outputs());
        Self::new(&widths, model.activation, device)
    }

    /// A holder's bottom model on its `columns` features: `columns`, `model.bottom`, then the
    /// first hidden width, which every holder's output shares.
    pub fn bottom(model: &Model, columns: usize, device: &Device) -> Self {
        let mut widths = vec![columns];
        widths.extend(model.bottom.iter().flatten());
        widths.push(model.hidden[0]);
        Self::new(&widths, model.activation, device)
    }

    /// The layers, initialised now: Burn draws a parameter's initial value lazily, at its first
    /// use, so a forward pass on zeros makes the draws happen here, in the caller's order
    /// ([`crate::server::init_alone`]) and not in the first training step.
    fn new(widths: &[usize], activation: Activation, device: &Device) -> Self {
        let mlp = Self {
            layers: widths
                .windows(2)
                .map(|w| LinearConfig::new(w[0], w[1]).init(device))
                .collect(),
            activation,
        };
        let _ = mlp.forward(Tensor::zeros([1, widths[0]], device));
        mlp
    }
}

impl LocalModel for LocalMlp {
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
