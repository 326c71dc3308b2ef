//! The data owner's side: a frozen local feature extractor with a secret channel selection, and
//! the upload it sends to the cloud.
//!
//! The extractor is the first ℓ stages of a pre-trained network, frozen: it is built on a device
//! without autodiff and its parameters never require gradients, so nothing trains it. Its last
//! stage computes only the `c` output channels of the owner's [`ChannelSelection`], so the local
//! cost shrinks with `c` and the index list never leaves the owner: an [`Upload`] carries the
//! feature values and their shape, nothing else.

use burn::module::Module;
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::seq::index::sample;
use rand::{CryptoRng, RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

use crate::error::{PrivyError, Result};
use crate::images::{ImageSet, SIDE};
use crate::source::Stage;

/// How the owner's grayscale images in [0, 1] are presented to the first stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum InputFormat {
    /// One channel, pixels in [0, 1] (the networks trained here).
    UnitGray,
    /// Three channels in BGR order, pixels in 0..255 minus the ImageNet channel means of the
    /// Caffe/Keras VGG16 ([`crate::vgg16::BGR_MEAN`]); a grayscale image is repeated.
    VggBgr,
}

impl InputFormat {
    /// Images `[b, 1, 28, 28]` in [0, 1] → the first stage's input.
    pub fn prepare(self, x: Tensor<4>) -> Tensor<4> {
        match self {
            Self::UnitGray => x,
            Self::VggBgr => {
                let device = x.device();
                let mean = Tensor::<1>::from_data(
                    TensorData::new(crate::vgg16::BGR_MEAN.to_vec(), [3]),
                    &device,
                )
                .reshape([1, 3, 1, 1]);
                x.mul_scalar(255.0).repeat_dim(1, 3) - mean
            }
        }
    }

    /// Channels of the first stage's input.
    pub fn channels(self) -> usize {
        match self {
            Self::UnitGray => 1,
            Self::VggBgr => 3,
        }
    }
}

/// The owner's secret choice of `c` of a layer's output channels, in upload order.
///
/// It stays on the owner's machine: the cloud receives features, never this list. Its `Debug`
/// output hides the indices so that logging a selection cannot leak it.
#[derive(Clone, PartialEq, Eq)]
pub struct ChannelSelection {
    indices: Vec<usize>,
    total: usize,
}

impl std::fmt::Debug for ChannelSelection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ChannelSelection {{ {} of {} channels, indices: <secret> }}",
            self.indices.len(),
            self.total
        )
    }
}

impl ChannelSelection {
    /// `c` of `total` channels drawn uniformly without replacement, in random order, from `rng`.
    pub fn random<R: RngCore + CryptoRng>(total: usize, c: usize, rng: &mut R) -> Result<Self> {
        check_count(total, c)?;
        Ok(Self {
            indices: sample(rng, total, c).into_vec(),
            total,
        })
    }

    /// A random selection from a fresh ChaCha20 generator seeded by the operating system: the
    /// default for a real owner.
    pub fn from_os_entropy(total: usize, c: usize) -> Result<Self> {
        Self::random(total, c, &mut ChaCha20Rng::from_os_rng())
    }

    /// A random selection derived from the owner's 32-byte secret seed (reproducible: the
    /// same seed always gives the same selection, so keep the seed as secret as the selection).
    pub fn from_secret_seed(total: usize, c: usize, seed: [u8; 32]) -> Result<Self> {
        Self::random(total, c, &mut ChaCha20Rng::from_seed(seed))
    }

    /// The `c` channels with the highest `scores` (ties by lower index), highest first. This is
    /// a deterministic, public rule: anyone with the same scores knows the selection.
    pub fn ranked(scores: &[f64], c: usize) -> Result<Self> {
        check_count(scores.len(), c)?;
        let mut order: Vec<usize> = (0..scores.len()).collect();
        order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
        order.truncate(c);
        Ok(Self {
            indices: order,
            total: scores.len(),
        })
    }

    /// Every channel, in order (the unselected layer output).
    pub fn all(total: usize) -> Self {
        Self {
            indices: (0..total).collect(),
            total,
        }
    }

    /// The selected channel indices, in upload order. Owner-side only.
    pub fn indices(&self) -> &[usize] {
        &self.indices
    }

    /// Number of channels the layer has.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Number of selected channels.
    pub fn len(&self) -> usize {
        self.indices.len()
    }

    /// Whether no channel is selected (never true for a constructed selection).
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }
}

fn check_count(total: usize, c: usize) -> Result<()> {
    if c == 0 || c > total {
        return Err(PrivyError::Config(format!(
            "cannot select {c} of {total} channels (need 1 ≤ c ≤ {total})"
        )));
    }
    Ok(())
}

/// What running the extractor costs the owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LocalCost {
    /// Multiply-adds per image (convolutions; pooling and ReLU are not counted).
    pub macs_per_image: u64,
    /// Bytes of parameters the owner stores (f32 weights and biases).
    pub param_bytes: u64,
}

/// The first ℓ stages of a pre-trained network, frozen, computing the selected channels only.
#[derive(Module, Debug)]
pub struct LocalExtractor {
    stages: Vec<Stage>,
    #[module(skip)]
    input: InputFormat,
    #[module(skip)]
    cost: LocalCost,
}

impl LocalExtractor {
    /// The first `layers` of `stages`, keeping the `selection` of the last one's output
    /// channels, frozen on `device` (a device without autodiff: the extractor never trains).
    pub fn new(
        stages: &[Stage],
        layers: usize,
        selection: &ChannelSelection,
        input: InputFormat,
        device: &Device,
    ) -> Result<Self> {
        if layers == 0 || layers > stages.len() {
            return Err(PrivyError::Config(format!(
                "the network has {} stages; cannot keep {layers}",
                stages.len()
            )));
        }
        let out = stages[layers - 1].channels()[1];
        if selection.total() != out {
            return Err(PrivyError::Config(format!(
                "selection over {} channels for a layer with {out}",
                selection.total()
            )));
        }
        if stages[0].channels()[0] != input.channels() {
            return Err(PrivyError::Config(format!(
                "first stage takes {} channels, input format {input:?} gives {}",
                stages[0].channels()[0],
                input.channels()
            )));
        }
        let mut kept: Vec<Stage> = stages[..layers]
            .iter()
            .map(|s| s.valid().to_device(device).freeze())
            .collect();
        let last = kept.last_mut().expect("layers ≥ 1");
        let picks = Tensor::<1, Int>::from_data(
            TensorData::new(
                selection.indices().iter().map(|&i| i as i64).collect(),
                [selection.len()],
            ),
            device,
        );
        last.conv.weight = last.conv.weight.clone().map(|w| w.select(0, picks.clone()));
        last.conv.bias = last.conv.bias.take().map(|b| b.map(|b| b.select(0, picks)));
        let cost = cost_of(&kept);
        Ok(Self {
            stages: kept,
            input,
            cost,
        })
    }

    /// Local compute and storage.
    pub fn cost(&self) -> LocalCost {
        self.cost
    }

    /// Number of stages kept (ℓ).
    pub fn layers(&self) -> usize {
        self.stages.len()
    }

    /// Shape of one image's features: `[c, h, w]`.
    pub fn output_shape(&self) -> [usize; 3] {
        let side = self
            .stages
            .iter()
            .fold(SIDE, |s, st| if st.pool { s / 2 } else { s });
        [
            self.stages.last().expect("≥ 1 stage").channels()[1],
            side,
            side,
        ]
    }

    /// Features `[b, c, h, w]` of images `[b, 1, 28, 28]` in [0, 1].
    pub fn forward(&self, images: Tensor<4>) -> Tensor<4> {
        let mut x = self.input.prepare(images);
        for stage in &self.stages {
            x = stage.forward(x);
        }
        x
    }

    /// Runs the extractor over every image of `images` (256 at a time): the upload.
    pub fn extract(&self, images: &ImageSet, device: &Device) -> Upload {
        let [c, h, w] = self.output_shape();
        let mut values = Vec::with_capacity(images.len() * c * h * w);
        for start in (0..images.len()).step_by(256) {
            let end = (start + 256).min(images.len());
            let features = self.forward(images.tensor(start..end, device));
            values.extend(features.into_data().iter::<f32>());
        }
        Upload {
            shape: [images.len(), c, h, w],
            values,
        }
    }
}

fn cost_of(stages: &[Stage]) -> LocalCost {
    let mut side = SIDE as u64;
    let mut cost = LocalCost {
        macs_per_image: 0,
        param_bytes: 0,
    };
    for stage in stages {
        let [inp, out] = stage.channels().map(|c| c as u64);
        cost.macs_per_image += out * inp * 9 * side * side;
        cost.param_bytes += (out * inp * 9 + out) * 4;
        if stage.pool {
            side /= 2;
        }
    }
    cost
}

/// What the owner sends to the cloud: features `[n, c, h, w]` as f32, and nothing else (no
/// channel indices, no seed).
#[derive(Clone, Debug, PartialEq)]
pub struct Upload {
    shape: [usize; 4],
    values: Vec<f32>,
}

/// First bytes of an encoded [`Upload`].
pub const UPLOAD_MAGIC: [u8; 4] = *b"PVU1";

impl Upload {
    /// Features of shape `[n, c, h, w]` (row-major values).
    pub fn new(shape: [usize; 4], values: Vec<f32>) -> Result<Self> {
        let expected = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        if expected != Some(values.len()) || shape.contains(&0) {
            return Err(PrivyError::Upload(format!(
                "shape {shape:?} does not hold {} values",
                values.len()
            )));
        }
        if values.iter().any(|v| !v.is_finite()) {
            return Err(PrivyError::Upload("non-finite feature value".into()));
        }
        Ok(Self { shape, values })
    }

    /// `[n, c, h, w]`.
    pub fn shape(&self) -> [usize; 4] {
        self.shape
    }

    /// The feature values, row-major.
    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// Mean and standard deviation of all values (the standard deviation floored at 1e-6):
    /// what a receiver uses to standardise features whose scale depends on the extractor
    /// (VGG16's are in the hundreds, the networks trained here near 1).
    pub fn mean_std(&self) -> (f32, f32) {
        let n = self.values.len() as f64;
        let mean = self.values.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = self
            .values
            .iter()
            .map(|&v| (v as f64 - mean).powi(2))
            .sum::<f64>()
            / n;
        (mean as f32, var.sqrt().max(1e-6) as f32)
    }

    /// Features of `items` (indices into the upload) as a tensor `[items.len(), c, h, w]` on
    /// `device`. Panics on an index `≥ n`.
    pub fn tensor(&self, items: &[usize], device: &Device) -> Tensor<4> {
        let [_, c, h, w] = self.shape;
        let per = c * h * w;
        let mut data = Vec::with_capacity(items.len() * per);
        for &i in items {
            data.extend_from_slice(&self.values[i * per..(i + 1) * per]);
        }
        Tensor::from_data(TensorData::new(data, [items.len(), c, h, w]), device)
    }

    /// The wire encoding: `"PVU1"`, four u32 little-endian dimensions, then the f32
    /// little-endian values.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(20 + 4 * self.values.len());
        out.extend_from_slice(&UPLOAD_MAGIC);
        for d in self.shape {
            out.extend_from_slice(&(d as u32).to_le_bytes());
        }
        for v in &self.values {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out
    }

    /// Decodes [`Upload::to_bytes`], refusing anything longer than `max_bytes`, a wrong magic,
    /// a shape that does not match the length, or non-finite values.
    pub fn from_bytes(bytes: &[u8], max_bytes: usize) -> Result<Self> {
        if bytes.len() > max_bytes {
            return Err(PrivyError::Upload(format!(
                "{} bytes exceeds the limit of {max_bytes}",
                bytes.len()
            )));
        }
        if bytes.len() < 20 || bytes[..4] != UPLOAD_MAGIC {
            return Err(PrivyError::Upload("missing header".into()));
        }
        let mut shape = [0usize; 4];
        for (i, d) in shape.iter_mut().enumerate() {
            let b = &bytes[4 + 4 * i..8 + 4 * i];
            *d = u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize;
        }
        let body = &bytes[20..];
        if !body.len().is_multiple_of(4) {
            return Err(PrivyError::Upload("body is not whole f32 values".into()));
        }
        let values = body
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
            .collect();
        Self::new(shape, values)
    }
}
