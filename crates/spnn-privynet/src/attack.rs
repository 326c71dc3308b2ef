//! The reconstruction attack that measures privacy loss.
//!
//! The attacker (the cloud, or anyone who sees the uploads) knows the pre-trained network and how
//! many layers and channels the owner uses. It passes public images through its own copy of the
//! extractor and trains a decoder of transposed convolutions to map features back to images; then
//! it applies the decoder to the owner's uploads. If it knows which channels the owner selected,
//! its copy computes the same features ([`ReconstructionAttack::train`]). If not, it trains the
//! decoder on a fresh random selection of `c` of the layer's channels for every minibatch
//! ([`ReconstructionAttack::train_unknown_channels`]), so that the decoder learns to invert
//! whatever `c` channels it is shown: the best it can do without the owner's seed. The PSNR and
//! SSIM of the reconstructions of the owner's private images against the originals are the
//! privacy loss.

use burn::module::Module;
use burn::nn::conv::{ConvTranspose2d, ConvTranspose2dConfig};
use burn::tensor::activation::{relu, sigmoid};
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

use crate::error::{PrivyError, Result};
use crate::extractor::{ChannelSelection, Upload};
use crate::images::{ImageSet, PIXELS, SIDE};
use crate::quality::mean_quality;
use crate::source::{TrainConfig, fit};

/// Width of the decoder's hidden layers.
pub const DECODER_WIDTH: usize = 32;

/// Features `[b, c, h, w]` → images `[b, 1, 28, 28]` in (0, 1): a 3×3 transposed convolution,
/// one 4×4 stride-2 transposed convolution per halving of the side, and a final 3×3 one with a
/// sigmoid.
#[derive(Module, Debug)]
pub struct Decoder {
    first: ConvTranspose2d,
    ups: Vec<ConvTranspose2d>,
    last: ConvTranspose2d,
}

impl Decoder {
    /// A fresh decoder for features with `channels` channels of side `side` (28, 14 or 7).
    pub fn new(channels: usize, side: usize, device: &Device) -> Result<Self> {
        if channels == 0
            || side == 0
            || !SIDE.is_multiple_of(side)
            || !(SIDE / side).is_power_of_two()
        {
            return Err(PrivyError::Shape(format!(
                "decoder for {channels} channels of side {side}: the side must be 28 / 2^k"
            )));
        }
        let same = |c: [usize; 2]| {
            ConvTranspose2dConfig::new(c, [3, 3])
                .with_padding([1, 1])
                .init(device)
        };
        let ups = (0..(SIDE / side).trailing_zeros())
            .map(|_| {
                ConvTranspose2dConfig::new([DECODER_WIDTH, DECODER_WIDTH], [4, 4])
                    .with_stride([2, 2])
                    .with_padding([1, 1])
                    .init(device)
            })
            .collect();
        Ok(Self {
            first: same([channels, DECODER_WIDTH]),
            ups,
            last: same([DECODER_WIDTH, 1]),
        })
    }

    /// Reconstructed images `[b, 1, 28, 28]`.
    pub fn forward(&self, features: Tensor<4>) -> Tensor<4> {
        let mut x = relu(self.first.forward(features));
        for up in &self.ups {
            x = relu(up.forward(x));
        }
        sigmoid(self.last.forward(x))
    }
}

/// Mean PSNR (dB) and SSIM of reconstructions against the originals.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Quality {
    /// Mean peak signal-to-noise ratio, dB (peak 1).
    pub psnr: f64,
    /// Mean structural similarity.
    pub ssim: f64,
}

impl Quality {
    /// The quality of `reconstructions` (one after another, `PIXELS` each) of `originals`.
    pub fn of(originals: &ImageSet, reconstructions: &[f32]) -> Result<Self> {
        let (psnr, ssim) = mean_quality(originals.pixels(), reconstructions, SIDE)?;
        Ok(Self { psnr, ssim })
    }

    /// The trivial baseline: every image "reconstructed" as `mean` (e.g. the public mean image).
    pub fn of_constant(originals: &ImageSet, mean: &[f32]) -> Result<Self> {
        let guess: Vec<f32> = mean
            .iter()
            .copied()
            .cycle()
            .take(originals.len() * PIXELS)
            .collect();
        Self::of(originals, &guess)
    }
}

/// A trained decoder: the attacker's inverse of the extractor. Features are standardised by
/// the mean and standard deviation of the attacker's public features before decoding.
#[derive(Debug, Clone)]
pub struct ReconstructionAttack {
    decoder: Decoder,
    offset: f32,
    scale: f32,
}

impl ReconstructionAttack {
    /// Trains the decoder (mean squared error, Adam) on public `images` and the features
    /// `features` the attacker computed from them with its copy of the extractor, on `device`
    /// (with autodiff).
    pub fn train(
        images: &ImageSet,
        features: &Upload,
        config: &TrainConfig,
        device: &Device,
    ) -> Result<Self> {
        Self::fit_decoder(images, features, features.shape()[1], config, device, |x| x)
    }

    /// Trains the decoder for an unknown selection of `channels` channels: `features` are the
    /// public images' features with **every** channel of the layer, and each minibatch shows
    /// the decoder a fresh random ordered choice of `channels` of them (from `config.seed`).
    pub fn train_unknown_channels(
        images: &ImageSet,
        features: &Upload,
        channels: usize,
        config: &TrainConfig,
        device: &Device,
    ) -> Result<Self> {
        let total = features.shape()[1];
        if channels == 0 || channels > total {
            return Err(PrivyError::Config(format!(
                "cannot guess {channels} of {total} channels"
            )));
        }
        let mut rng = ChaCha20Rng::seed_from_u64(config.seed ^ 0x5eed);
        Self::fit_decoder(images, features, channels, config, device, |x| {
            let guess =
                ChannelSelection::random(total, channels, &mut rng).expect("1 ≤ channels ≤ total");
            let picks = Tensor::<1, Int>::from_data(
                TensorData::new(
                    guess.indices().iter().map(|&i| i as i64).collect(),
                    [channels],
                ),
                device,
            );
            x.select(1, picks)
        })
    }

    /// Fits a decoder for `channels` input channels; `choose` turns each minibatch of
    /// `features` into the decoder's input.
    fn fit_decoder(
        images: &ImageSet,
        features: &Upload,
        channels: usize,
        config: &TrainConfig,
        device: &Device,
        choose: impl FnMut(Tensor<4>) -> Tensor<4>,
    ) -> Result<Self> {
        let [n, _, h, _] = features.shape();
        if n != images.len() {
            return Err(PrivyError::Shape(format!(
                "{n} feature items for {} images",
                images.len()
            )));
        }
        device.seed(config.seed);
        let (offset, scale) = features.mean_std();
        let decoder = Decoder::new(channels, h, device)?;
        let choose = std::cell::RefCell::new(choose);
        let decoder = fit(decoder, n, config, |d, batch| {
            let input = (choose.borrow_mut())(features.tensor(batch, device));
            let target = images.select(batch).tensor(0..batch.len(), device);
            let out = d.forward(input.sub_scalar(offset).div_scalar(scale));
            (out - target).powi_scalar(2).mean()
        });
        Ok(Self {
            decoder: decoder.valid(),
            offset,
            scale,
        })
    }

    /// Reconstructions of every uploaded item, `PIXELS` values each.
    pub fn reconstruct(&self, upload: &Upload, device: &Device) -> Vec<f32> {
        let n = upload.shape()[0];
        let mut out = Vec::with_capacity(n * PIXELS);
        for start in (0..n).step_by(256) {
            let items: Vec<usize> = (start..(start + 256).min(n)).collect();
            let input = upload.tensor(&items, device);
            out.extend(
                self.decoder
                    .forward(input.sub_scalar(self.offset).div_scalar(self.scale))
                    .into_data()
                    .iter::<f32>(),
            );
        }
        out
    }

    /// Reconstructs `upload` (the features of `originals`) and measures the privacy loss.
    pub fn evaluate(
        &self,
        originals: &ImageSet,
        upload: &Upload,
        device: &Device,
    ) -> Result<Quality> {
        if upload.shape()[0] != originals.len() {
            return Err(PrivyError::Shape(format!(
                "{} uploaded items for {} originals",
                upload.shape()[0],
                originals.len()
            )));
        }
        let decoder_channels = self.decoder.first.weight.dims()[0];
        if upload.shape()[1] != decoder_channels {
            return Err(PrivyError::Shape(format!(
                "decoder for {decoder_channels} channels, upload has {}",
                upload.shape()[1]
            )));
        }
        Quality::of(originals, &self.reconstruct(upload, device))
    }
}
