//! PrivyNet on Burn: a data owner with little compute keeps the first layers of a pre-trained
//! network locally, frozen, and uploads only a secret subset of their output channels; the cloud
//! trains the rest (Li, Lai, Suda, Chandra, Pan, arXiv 1709.06161).
//!
//! - [`source`]: the pre-trained network (a VGG-style CNN trained on public digits) and
//!   [`vgg16`]: the front of the real VGG16, loaded from safetensors.
//! - [`extractor`]: the owner's [`LocalExtractor`] with its secret [`ChannelSelection`], its
//!   [`LocalCost`], and the [`Upload`] it sends.
//! - [`cloud`]: the cloud network, trained with burn-train's `Learner` on the uploads.
//! - [`attack`]: the [`ReconstructionAttack`] that measures privacy loss, with [`quality`]'s
//!   PSNR and SSIM.
//! - [`optimizer`]: the topology optimiser (hierarchical and brute force), and [`experiment`]:
//!   the characterisation of a grid of topologies on real data.

pub mod attack;
pub mod cloud;
pub mod error;
pub mod experiment;
pub mod extractor;
pub mod images;
pub mod optimizer;
pub mod quality;
pub mod source;
pub mod vgg16;

pub use attack::{Quality, ReconstructionAttack};
pub use error::{PrivyError, Result};
pub use extractor::{ChannelSelection, InputFormat, LocalCost, LocalExtractor, Upload};
pub use images::ImageSet;
pub use optimizer::{Budget, Decision, Topology};
pub use source::{SourceConfig, SourceNet, TrainConfig};
