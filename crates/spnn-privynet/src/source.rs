//! The pre-trained source network whose first layers become the local feature extractor.
//!
//! A small VGG-style CNN: stages of 3×3 convolution + ReLU (with 2×2 max-pooling after some of
//! them), then a linear classifier. It is trained on public data (the 5000-digit MNIST set) and
//! saved as a Burn record; [`crate::vgg16`] loads the real VGG16 front instead.

use std::path::Path;

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::pool::MaxPool2dConfig;
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha20Rng;

use crate::error::{PrivyError, Result};
use crate::images::{ImageSet, SIDE};

/// One stage of a convolutional network: a 3×3 convolution (padding 1), ReLU, and an optional
/// 2×2 max-pool.
#[derive(Module, Debug)]
pub struct Stage {
    /// The convolution, weights `[out, in, 3, 3]`.
    pub conv: Conv2d,
    /// Whether a 2×2 max-pool (stride 2) follows the ReLU.
    pub pool: bool,
}

impl Stage {
    /// A freshly initialised stage `in → out` channels.
    pub fn new(channels: [usize; 2], pool: bool, device: &Device) -> Self {
        Self {
            conv: Conv2dConfig::new(channels, [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(device),
            pool,
        }
    }

    /// `[b, in, h, w] → [b, out, h', w']` (h' = h/2 when pooling).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let y = relu(self.conv.forward(x));
        if self.pool {
            MaxPool2dConfig::new([2, 2]).init().forward(y)
        } else {
            y
        }
    }

    /// The convolution's weights (`[out, in, 3, 3]` row-major) and biases, as plain values.
    pub fn values(&self) -> (Vec<f32>, Vec<f32>) {
        let read = |t: Tensor<4>| t.to_data().iter::<f32>().collect();
        let bias = match &self.conv.bias {
            Some(b) => b.val().to_data().iter::<f32>().collect(),
            None => Vec::new(),
        };
        (read(self.conv.weight.val()), bias)
    }

    /// Input and output channel counts.
    pub fn channels(&self) -> [usize; 2] {
        let [out, inp, _, _] = self.conv.weight.dims();
        [inp, out]
    }
}

/// Architecture of the source network: output channels and pooling of each stage.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SourceConfig {
    /// `(out_channels, pool_after)` per stage, first stage first; the input has one channel.
    pub stages: Vec<(usize, bool)>,
    /// Number of classes of the pre-training task.
    pub classes: usize,
}

impl Default for SourceConfig {
    /// Four stages: 16, 16 (pool), 32, 32 (pool) channels; 10 classes.
    fn default() -> Self {
        Self {
            stages: vec![(16, false), (16, true), (32, false), (32, true)],
            classes: 10,
        }
    }
}

impl SourceConfig {
    /// A freshly initialised network on `device`.
    pub fn init(&self, device: &Device) -> Result<SourceNet> {
        if self.stages.is_empty() || self.stages.iter().any(|&(c, _)| c == 0) || self.classes < 2 {
            return Err(PrivyError::Config(format!(
                "source network needs ≥ 1 stage with ≥ 1 channel and ≥ 2 classes: {self:?}"
            )));
        }
        let mut inp = 1;
        let mut side = SIDE;
        let mut stages = Vec::new();
        for &(out, pool) in &self.stages {
            stages.push(Stage::new([inp, out], pool, device));
            inp = out;
            if pool {
                side /= 2;
            }
        }
        if side == 0 {
            return Err(PrivyError::Config(
                "too many pooling stages for 28×28".into(),
            ));
        }
        Ok(SourceNet {
            stages,
            head: LinearConfig::new(inp * side * side, self.classes).init(device),
        })
    }
}

/// The pre-trained network: convolutional stages, then a linear classifier.
#[derive(Module, Debug)]
pub struct SourceNet {
    /// The convolutional stages; the local extractor keeps the first ℓ of them.
    pub stages: Vec<Stage>,
    /// The classifier over the flattened last stage.
    pub head: Linear,
}

impl SourceNet {
    /// Class logits `[b, classes]` for images `[b, 1, 28, 28]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let mut x = x;
        for stage in &self.stages {
            x = stage.forward(x);
        }
        self.head.forward(x.flatten(1, 3))
    }

    /// Saves the weights as a Burn record (burnpack) at `path`.
    pub fn save(&self, path: &Path) -> Result<()> {
        self.clone()
            .save_file(path)
            .map_err(|e| PrivyError::Weights {
                path: path.display().to_string(),
                reason: e.to_string(),
            })
    }

    /// Loads weights saved by [`SourceNet::save`] into a network of architecture `config`.
    pub fn load(config: &SourceConfig, path: &Path, device: &Device) -> Result<Self> {
        config
            .init(device)?
            .try_load_file(path)
            .map_err(|e| PrivyError::Weights {
                path: path.display().to_string(),
                reason: e.to_string(),
            })
    }

    /// Fraction of `images` classified correctly.
    pub fn accuracy(&self, images: &ImageSet, device: &Device) -> f64 {
        let model = self.valid();
        let mut correct = 0;
        for start in (0..images.len()).step_by(256) {
            let end = (start + 256).min(images.len());
            let logits = model.forward(images.tensor(start..end, device));
            let predicted = logits.argmax(1).into_data();
            correct += predicted
                .iter::<i64>()
                .zip(&images.labels()[start..end])
                .filter(|&(p, &y)| p == y as i64)
                .count();
        }
        correct as f64 / images.len().max(1) as f64
    }
}

/// Settings of a minibatch training run.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrainConfig {
    /// Passes over the data.
    pub epochs: usize,
    /// Images per step.
    pub batch: usize,
    /// Adam learning rate.
    pub lr: f64,
    /// Seed of the shuffling.
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 3,
            batch: 64,
            lr: 1e-3,
            seed: 0,
        }
    }
}

/// Minimises `loss(model, batch_indices)` with Adam over shuffled minibatches of `0..n`.
pub(crate) fn fit<M: Module>(
    mut model: M,
    n: usize,
    config: &TrainConfig,
    loss: impl Fn(&M, &[usize]) -> Tensor<1>,
) -> M {
    let mut optim = AdamConfig::new().init();
    let mut rng = ChaCha20Rng::seed_from_u64(config.seed);
    let mut order: Vec<usize> = (0..n).collect();
    for _ in 0..config.epochs {
        order.shuffle(&mut rng);
        for batch in order.chunks(config.batch.max(1)) {
            let grads = GradientsParams::from_grads(loss(&model, batch).backward(), &model);
            model = optim.step(config.lr, model, grads);
        }
    }
    model
}

/// Trains a source network of architecture `config` on public `images` (on `device`, which
/// must have autodiff) and returns it.
pub fn pretrain(
    config: &SourceConfig,
    images: &ImageSet,
    train: &TrainConfig,
    device: &Device,
) -> Result<SourceNet> {
    device.seed(train.seed);
    let model = config.init(device)?;
    let ce = CrossEntropyLossConfig::new().init(device);
    Ok(fit(model, images.len(), train, |m, batch| {
        let subset = images.select(batch);
        let logits = m.forward(subset.tensor(0..batch.len(), device));
        let labels: Vec<i64> = subset.labels().iter().map(|&y| y as i64).collect();
        let targets = Tensor::<1, Int>::from_data(TensorData::new(labels, [batch.len()]), device);
        ce.forward(logits, targets)
    }))
}
