//! Grayscale image sets (pixels in [0, 1]) and their Burn tensors.

use std::path::Path;

use burn::tensor::{Device, Tensor, TensorData};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha20Rng;
use spnn_data::idx::read_idx;
use spnn_data::packaged;

use crate::error::{PrivyError, Result};

/// Side of the square images every PrivyNet component here works on (MNIST, Fashion-MNIST).
pub const SIDE: usize = 28;
/// Pixels per image.
pub const PIXELS: usize = SIDE * SIDE;

/// Labelled grayscale 28×28 images with pixels in [0, 1], row-major, one after another.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageSet {
    pixels: Vec<f32>,
    labels: Vec<u8>,
}

impl ImageSet {
    /// Builds a set from bytes (0..=255 per pixel, `PIXELS` per image) and one label per image.
    pub fn from_bytes(bytes: &[u8], labels: Vec<u8>) -> Result<Self> {
        if bytes.len() != labels.len() * PIXELS {
            return Err(PrivyError::Shape(format!(
                "{} pixel bytes for {} labels (need {PIXELS} per image)",
                bytes.len(),
                labels.len()
            )));
        }
        Ok(Self {
            pixels: bytes.iter().map(|&b| b as f32 / 255.0).collect(),
            labels,
        })
    }

    /// Builds a set from pixels already in [0, 1].
    pub fn from_pixels(pixels: Vec<f32>, labels: Vec<u8>) -> Result<Self> {
        if pixels.len() != labels.len() * PIXELS {
            return Err(PrivyError::Shape(format!(
                "{} pixels for {} labels (need {PIXELS} per image)",
                pixels.len(),
                labels.len()
            )));
        }
        if let Some(p) = pixels.iter().find(|p| !(0.0..=1.0).contains(*p)) {
            return Err(PrivyError::NonFinite(format!(
                "pixel {p} is outside [0, 1]"
            )));
        }
        Ok(Self { pixels, labels })
    }

    /// The 5000-digit MNIST CSV under `data_dir` (public pre-training data).
    pub fn mnist_5k(data_dir: &Path) -> Result<Self> {
        let (bytes, labels) = packaged::mnist_5k(data_dir)?;
        Self::from_bytes(&bytes, labels)
    }

    /// The 1000 MNIST digits compiled into `spnn-data` (100 per class, sorted by class;
    /// `spnn_data::embedded::mnist_1000`): the data of the quick start, no download needed.
    pub fn mnist_1000() -> Self {
        let (bytes, labels) = spnn_data::embedded::mnist_1000();
        Self::from_bytes(&bytes, labels).expect("the embedded digits are 784 bytes per label")
    }

    /// The images whose label satisfies `keep`, in their order.
    pub fn filter_labels(&self, keep: impl Fn(u8) -> bool) -> Self {
        let indices: Vec<usize> = (0..self.len()).filter(|&i| keep(self.labels[i])).collect();
        self.select(&indices)
    }

    /// Fashion-MNIST `(train, test)` from its IDX files under `data_dir`.
    pub fn fashion_mnist(data_dir: &Path) -> Result<(Self, Self)> {
        let [train_x, train_y, test_x, test_y] = packaged::fashion_mnist_files(data_dir)?;
        let load = |x: &Path, y: &Path| -> Result<Self> {
            let images = read_idx(x)?;
            let labels = read_idx(y)?;
            if images.dims.len() != 3 || images.item_len() != PIXELS {
                return Err(PrivyError::Shape(format!(
                    "{}: dimensions {:?}, expected [n, 28, 28]",
                    x.display(),
                    images.dims
                )));
            }
            Self::from_bytes(&images.data, labels.data)
        };
        Ok((load(&train_x, &train_y)?, load(&test_x, &test_y)?))
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the set holds no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The labels, one per image.
    pub fn labels(&self) -> &[u8] {
        &self.labels
    }

    /// Image `i`'s pixels (`PIXELS` values, row-major). Panics if `i ≥ len()`.
    pub fn image(&self, i: usize) -> &[f32] {
        &self.pixels[i * PIXELS..(i + 1) * PIXELS]
    }

    /// All pixels, image after image.
    pub fn pixels(&self) -> &[f32] {
        &self.pixels
    }

    /// The images at `indices`, in that order. Panics on an index `≥ len()`.
    pub fn select(&self, indices: &[usize]) -> Self {
        let mut pixels = Vec::with_capacity(indices.len() * PIXELS);
        for &i in indices {
            pixels.extend_from_slice(self.image(i));
        }
        Self {
            pixels,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
        }
    }

    /// Images `range` as a new set.
    pub fn slice(&self, range: std::ops::Range<usize>) -> Self {
        let indices: Vec<usize> = range.collect();
        self.select(&indices)
    }

    /// A random sample of `n` images (without replacement), reproducible from `seed`.
    pub fn sample(&self, n: usize, seed: u64) -> Self {
        let mut order: Vec<usize> = (0..self.len()).collect();
        order.shuffle(&mut ChaCha20Rng::seed_from_u64(seed));
        order.truncate(n);
        self.select(&order)
    }

    /// Splits into the first `n` images and the rest.
    pub fn split_at(&self, n: usize) -> (Self, Self) {
        let n = n.min(self.len());
        (self.slice(0..n), self.slice(n..self.len()))
    }

    /// The mean image (`PIXELS` values): the trivial reconstruction baseline.
    pub fn mean_image(&self) -> Vec<f32> {
        let mut mean = vec![0f64; PIXELS];
        for i in 0..self.len() {
            for (m, &p) in mean.iter_mut().zip(self.image(i)) {
                *m += p as f64;
            }
        }
        mean.iter()
            .map(|m| (m / self.len().max(1) as f64) as f32)
            .collect()
    }

    /// Images `range` as a `[n, 1, 28, 28]` tensor on `device`. Panics if `range` goes past
    /// [`ImageSet::len`] (the caller's indexing error, not bad data).
    pub fn tensor(&self, range: std::ops::Range<usize>, device: &Device) -> Tensor<4> {
        let n = range.len();
        let data = self.pixels[range.start * PIXELS..range.end * PIXELS].to_vec();
        Tensor::from_data(TensorData::new(data, [n, 1, SIDE, SIDE]), device)
    }
}
