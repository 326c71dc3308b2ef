//! Characterising topologies on real data: for each (ℓ, c) and channel-selection strategy, the
//! cloud's accuracy, the attacker's reconstruction quality with and without knowledge of the
//! selected channels, and the local cost.
//!
//! Data roles (all Fashion-MNIST images are 28×28 grayscale):
//!
//! | role | data |
//! |---|---|
//! | pre-training (public) | the 5000-digit MNIST set |
//! | owner's private training images | the first `owner_train` Fashion-MNIST training images |
//! | attacker's public images | the next `attacker_public` training images (disjoint) |
//! | owner's private test images | the first `owner_test` Fashion-MNIST test images |
//!
//! The attacker draws from the same distribution as the owner: the strongest attacker the
//! owner has to plan for.

use std::path::{Path, PathBuf};

use burn::tensor::Device;

use crate::attack::{Quality, ReconstructionAttack};
use crate::cloud::{CloudData, train_cloud};
use crate::error::{PrivyError, Result};
use crate::extractor::{ChannelSelection, InputFormat, LocalCost, LocalExtractor, Upload};
use crate::images::ImageSet;
use crate::optimizer::{Budget, Pick, TableEvaluator, Topology};
use crate::source::{SourceConfig, Stage, TrainConfig};

/// How the owner picks its `c` channels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Strategy {
    /// Uniformly at random from the owner's secret seed (PrivyNet's choice): the attacker must
    /// guess which channels it sees.
    Random,
    /// The `c` channels with the highest mean activation on public data: a public rule, so the
    /// attacker knows the channels.
    Ranked,
}

/// Sizes and settings of a characterisation.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ExperimentConfig {
    /// Architecture of the source network.
    pub source: SourceConfig,
    /// MNIST digits used for pre-training (at most 5000).
    pub pretrain_images: usize,
    /// Pre-training settings.
    pub pretrain: TrainConfig,
    /// Owner's private training images.
    pub owner_train: usize,
    /// Owner's private test images (accuracy and privacy loss are measured on them).
    pub owner_test: usize,
    /// Attacker's public images.
    pub attacker_public: usize,
    /// Cloud network training.
    pub cloud: TrainConfig,
    /// Attack decoder training.
    pub attack: TrainConfig,
    /// Candidate ℓ.
    pub layers: Vec<usize>,
    /// Candidate c (those above a layer's width are skipped).
    pub channels: Vec<usize>,
    /// Strategies to characterise (the optimiser uses [`Strategy::Random`]).
    pub strategies: Vec<Strategy>,
    /// Seed of everything random in the experiment (selections included: an experiment must
    /// be reproducible; a real owner uses [`ChannelSelection::from_os_entropy`]).
    pub seed: u64,
}

impl ExperimentConfig {
    /// The CI-sized setting (a few minutes on two cores).
    pub fn quick() -> Self {
        Self {
            source: SourceConfig::default(),
            pretrain_images: 2000,
            pretrain: TrainConfig {
                epochs: 2,
                ..TrainConfig::default()
            },
            owner_train: 1000,
            owner_test: 300,
            attacker_public: 1000,
            cloud: TrainConfig {
                epochs: 5,
                batch: 32,
                lr: 2e-3,
                seed: 0,
            },
            attack: TrainConfig {
                epochs: 3,
                lr: 3e-3,
                ..TrainConfig::default()
            },
            layers: vec![1, 2, 3],
            channels: vec![1, 4, 16],
            strategies: vec![Strategy::Random],
            seed: 1,
        }
    }

    /// The full setting documented in the guide.
    pub fn full() -> Self {
        Self {
            pretrain_images: 4500,
            pretrain: TrainConfig {
                epochs: 4,
                ..TrainConfig::default()
            },
            owner_train: 10000,
            owner_test: 2000,
            attacker_public: 5000,
            cloud: TrainConfig {
                epochs: 4,
                ..TrainConfig::default()
            },
            attack: TrainConfig {
                epochs: 4,
                lr: 3e-3,
                ..TrainConfig::default()
            },
            layers: vec![1, 2, 3, 4],
            channels: vec![1, 2, 4, 8, 16, 32],
            strategies: vec![Strategy::Random, Strategy::Ranked],
            ..Self::quick()
        }
    }

    /// The quick start's setting on the digits the repository ships
    /// ([`ExperimentData::embedded`]): 400 public digits to pre-train on, 250 private training
    /// images, 150 for the attacker, 100 to test, ℓ ∈ {1, 2}, c ∈ {2, 8}, random selection.
    pub fn embedded() -> Self {
        Self {
            pretrain_images: 400,
            pretrain: TrainConfig {
                epochs: 4,
                batch: 32,
                lr: 2e-3,
                seed: 0,
            },
            owner_train: 250,
            owner_test: 100,
            attacker_public: 150,
            cloud: TrainConfig {
                epochs: 6,
                batch: 25,
                lr: 2e-3,
                seed: 0,
            },
            attack: TrainConfig {
                epochs: 6,
                batch: 25,
                lr: 3e-3,
                seed: 0,
            },
            layers: vec![1, 2],
            channels: vec![2, 8],
            ..Self::quick()
        }
    }

    /// The (ℓ, c) candidates for a network whose layers have `widths` output channels: every
    /// listed c up to the width of layer ℓ.
    pub fn candidates(&self, widths: &[usize]) -> Vec<Topology> {
        let mut out = Vec::new();
        for &layers in &self.layers {
            let Some(&width) = widths.get(layers.wrapping_sub(1)) else {
                continue;
            };
            for &channels in &self.channels {
                if channels >= 1 && channels <= width {
                    out.push(Topology { layers, channels });
                }
            }
        }
        out
    }
}

/// The images an experiment uses, split into their roles.
#[derive(Clone, Debug)]
pub struct ExperimentData {
    /// Public pre-training digits.
    pub pretrain: ImageSet,
    /// The remaining digits, to check the source network on.
    pub pretrain_held_out: ImageSet,
    /// Owner's private training images.
    pub owner_train: ImageSet,
    /// Owner's private test images.
    pub owner_test: ImageSet,
    /// Attacker's public images.
    pub attacker_public: ImageSet,
}

impl ExperimentData {
    /// Loads MNIST-5k and Fashion-MNIST from `data_dir` (as `scripts/fetch-data.sh` lays them
    /// out) and splits them for `config`.
    pub fn load(data_dir: &Path, config: &ExperimentConfig) -> Result<Self> {
        let mnist = ImageSet::mnist_5k(data_dir)?;
        let (train, test) = ImageSet::fashion_mnist(data_dir)?;
        Self::split(&mnist, &train, &test, config)
    }

    /// The digits compiled into the library ([`ImageSet::mnist_1000`]), with no file to fetch:
    /// digits 0–4 are the public pre-training task, and the owner's private task is digits 5–9
    /// (shuffled, then owner training, attacker, owner test images in that order), so the
    /// pre-trained network has never seen a digit of the owner's classes. The attacker still
    /// draws from the owner's distribution, as in [`ExperimentData::load`].
    pub fn embedded(config: &ExperimentConfig) -> Result<Self> {
        let digits = ImageSet::mnist_1000();
        let public = digits.filter_labels(|y| y < 5);
        let private = digits.filter_labels(|y| y >= 5);
        // The seed's complement keeps this shuffle apart from the pre-training one in `split`.
        let private = private.sample(private.len(), !config.seed);
        let (train, test) = private.split_at(config.owner_train + config.attacker_public);
        Self::split(&public, &train, &test, config)
    }

    /// Splits already-loaded sets for `config`.
    pub fn split(
        mnist: &ImageSet,
        train: &ImageSet,
        test: &ImageSet,
        config: &ExperimentConfig,
    ) -> Result<Self> {
        let need = config.owner_train + config.attacker_public;
        if mnist.len() < config.pretrain_images
            || train.len() < need
            || test.len() < config.owner_test
        {
            return Err(PrivyError::Config(format!(
                "need {} digits, {need} training and {} test images; have {}, {} and {}",
                config.pretrain_images,
                config.owner_test,
                mnist.len(),
                train.len(),
                test.len()
            )));
        }
        // The digit file is sorted by class: shuffle before splitting.
        let digits = mnist.sample(mnist.len(), config.seed);
        let (pretrain, pretrain_held_out) = digits.split_at(config.pretrain_images);
        Ok(Self {
            pretrain,
            pretrain_held_out,
            owner_train: train.slice(0..config.owner_train),
            attacker_public: train.slice(config.owner_train..need),
            owner_test: test.slice(0..config.owner_test),
        })
    }
}

/// Everything measured about one topology and strategy.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Cell {
    /// (ℓ, c).
    pub topology: Topology,
    /// How the channels were picked.
    pub strategy: Strategy,
    /// Cloud accuracy on the owner's test images.
    pub accuracy: f64,
    /// Reconstruction quality when the attacker knows the selected channels.
    pub known: Quality,
    /// Reconstruction quality when it has to guess them (equal to `known` for a public rule).
    pub unknown: Quality,
    /// Local cost.
    pub cost: LocalCost,
}

impl Cell {
    /// The privacy loss the owner faces: the unknown-channel attack for a secret random
    /// selection, the known-channel one for a public rule.
    pub fn privacy_loss(&self) -> Quality {
        match self.strategy {
            Strategy::Random => self.unknown,
            Strategy::Ranked => self.known,
        }
    }
}

/// Number of the owner's test images whose reconstructions are kept per cell (for the grid).
pub const SAMPLE_IMAGES: usize = 8;

/// The attacker's reconstructions of the owner's first [`SAMPLE_IMAGES`] test images.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Reconstructions {
    /// (ℓ, c).
    pub topology: Topology,
    /// Selection strategy.
    pub strategy: Strategy,
    /// Knowing the channels (`PIXELS` per image).
    pub known: Vec<f32>,
    /// Guessing them.
    pub unknown: Vec<f32>,
}

/// A characterised grid.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Characterisation {
    /// The source network's accuracy on its own (MNIST) pre-training task, on held-out digits
    /// (`None` for imported weights such as VGG16).
    pub source_accuracy: Option<f64>,
    /// The trivial reconstruction (the attacker's public mean image) scored on the owner's
    /// test images: any attack worth the name beats it.
    pub baseline: Quality,
    /// One cell per (topology, strategy).
    pub cells: Vec<Cell>,
    /// Sample reconstructions, one entry per cell.
    pub reconstructions: Vec<Reconstructions>,
}

impl Characterisation {
    /// The cells of `strategy` as optimiser measurements. A cell's privacy loss is its attack's
    /// PSNR, but never below the mean-image baseline: an attacker can always answer the mean
    /// image, so an attack that does worse only shows that this decoder failed.
    pub fn table(&self, strategy: Strategy) -> TableEvaluator {
        TableEvaluator {
            picks: self
                .cells
                .iter()
                .filter(|c| c.strategy == strategy)
                .map(|c| Pick {
                    topology: c.topology,
                    accuracy: c.accuracy,
                    psnr: c.privacy_loss().psnr.max(self.baseline.psnr),
                    cost: c.cost,
                })
                .collect(),
        }
    }

    /// The default budget: PSNR half-way between the mean-image baseline and the strongest
    /// attack on a random selection, and the local cost of the largest random-selection cell
    /// with ℓ ≤ 2; what `limits` give overrides.
    pub fn default_budget(&self, limits: &Limits) -> Budget {
        let random = || self.cells.iter().filter(|c| c.strategy == Strategy::Random);
        let best = random()
            .map(|c| c.privacy_loss().psnr)
            .fold(self.baseline.psnr, f64::max);
        let at_two = random()
            .filter(|c| c.topology.layers <= 2)
            .map(|c| c.cost)
            .max_by_key(|c| c.macs_per_image);
        Budget {
            max_psnr: limits.max_psnr.unwrap_or((self.baseline.psnr + best) / 2.0),
            max_macs: limits
                .max_macs
                .unwrap_or(at_two.map_or(u64::MAX, |c| c.macs_per_image)),
            max_param_bytes: limits
                .max_bytes
                .unwrap_or(at_two.map_or(u64::MAX, |c| c.param_bytes)),
        }
    }
}

/// Budget limits an owner states; what it leaves out comes from
/// [`Characterisation::default_budget`].
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Limits {
    /// Largest attacker PSNR, dB.
    pub max_psnr: Option<f64>,
    /// Largest multiply-adds per image.
    pub max_macs: Option<u64>,
    /// Largest parameter bytes.
    pub max_bytes: Option<u64>,
}

/// A running experiment: the pre-trained stages, the data and the devices.
pub struct Experiment {
    stages: Vec<Stage>,
    input: InputFormat,
    data: ExperimentData,
    config: ExperimentConfig,
    artifacts: PathBuf,
    /// Where the frozen extractor runs (no autodiff).
    local: Device,
    /// Where the cloud network and the attack decoder train (with autodiff).
    train: Device,
}

impl Experiment {
    /// Sets up an experiment over the `stages` of a pre-trained network, fed images as
    /// `input`. The Learner's logs go under `artifacts`.
    pub fn new(
        stages: Vec<Stage>,
        input: InputFormat,
        data: ExperimentData,
        config: ExperimentConfig,
        artifacts: &Path,
        local: Device,
        train: Device,
    ) -> Self {
        Self {
            stages,
            input,
            data,
            config,
            artifacts: artifacts.to_path_buf(),
            local,
            train,
        }
    }

    /// The data.
    pub fn data(&self) -> &ExperimentData {
        &self.data
    }

    /// The configuration's (ℓ, c) candidates for this network.
    pub fn candidates(&self) -> Vec<Topology> {
        let widths: Vec<usize> = self.stages.iter().map(|s| s.channels()[1]).collect();
        self.config.candidates(&widths)
    }

    fn extractor(&self, layers: usize, selection: &ChannelSelection) -> Result<LocalExtractor> {
        LocalExtractor::new(&self.stages, layers, selection, self.input, &self.local)
    }

    fn width(&self, layers: usize) -> Result<usize> {
        self.stages
            .get(layers.wrapping_sub(1))
            .map(|s| s.channels()[1])
            .ok_or_else(|| PrivyError::Config(format!("no layer {layers}")))
    }

    /// The owner's selection seed at topology `t`, derived from the experiment's seed.
    fn selection_seed(&self, t: Topology) -> [u8; 32] {
        let mut seed = [0u8; 32];
        seed[..8].copy_from_slice(&self.config.seed.to_le_bytes());
        seed[8] = 1; // domain separation: this seed is for selections
        seed[9..17].copy_from_slice(&(t.layers as u64).to_le_bytes());
        seed[17..25].copy_from_slice(&(t.channels as u64).to_le_bytes());
        seed
    }

    /// The owner's selection for `t` under `strategy`.
    pub fn owner_selection(&self, t: Topology, strategy: Strategy) -> Result<ChannelSelection> {
        let width = self.width(t.layers)?;
        match strategy {
            Strategy::Random => {
                ChannelSelection::from_secret_seed(width, t.channels, self.selection_seed(t))
            }
            Strategy::Ranked => {
                let all = self.extractor(t.layers, &ChannelSelection::all(width))?;
                let features = all.extract(&self.data.attacker_public, &self.local);
                ChannelSelection::ranked(&channel_means(&features), t.channels)
            }
        }
    }

    /// Trains an attack decoder on the attacker's public images through an extractor with the
    /// owner's `selection` if the attacker knows it, or with every channel if it must guess;
    /// scores it on the owner's test upload.
    fn attack(
        &self,
        t: Topology,
        known: Option<&ChannelSelection>,
        test: &Upload,
    ) -> Result<(Quality, Vec<f32>)> {
        let public = &self.data.attacker_public;
        let attack = match known {
            Some(selection) => {
                let features = self
                    .extractor(t.layers, selection)?
                    .extract(public, &self.local);
                ReconstructionAttack::train(public, &features, &self.config.attack, &self.train)?
            }
            None => {
                let all = ChannelSelection::all(self.width(t.layers)?);
                let features = self.extractor(t.layers, &all)?.extract(public, &self.local);
                ReconstructionAttack::train_unknown_channels(
                    public,
                    &features,
                    t.channels,
                    &self.config.attack,
                    &self.train,
                )?
            }
        };
        let quality = attack.evaluate(&self.data.owner_test, test, &self.train)?;
        let shown = SAMPLE_IMAGES.min(test.shape()[0]);
        let items: Vec<usize> = (0..shown).collect();
        let sample = Upload::new(
            [shown, test.shape()[1], test.shape()[2], test.shape()[3]],
            test.tensor(&items, &self.local)
                .into_data()
                .iter::<f32>()
                .collect(),
        )?;
        Ok((quality, attack.reconstruct(&sample, &self.train)))
    }

    /// Measures one cell: owner uploads, cloud training with the Learner, both attacks.
    pub fn measure(&self, t: Topology, strategy: Strategy) -> Result<(Cell, Reconstructions)> {
        let selection = self.owner_selection(t, strategy)?;
        let extractor = self.extractor(t.layers, &selection)?;
        let train = extractor.extract(&self.data.owner_train, &self.local);
        let test = extractor.extract(&self.data.owner_test, &self.local);
        let artifacts = self
            .artifacts
            .join(format!("cloud-l{}-c{}-{strategy:?}", t.layers, t.channels));
        let (_, accuracy) = train_cloud(
            &CloudData {
                train: &train,
                train_labels: self.data.owner_train.labels(),
                valid: &test,
                valid_labels: self.data.owner_test.labels(),
            },
            10,
            &self.config.cloud,
            &artifacts,
            &self.train,
        )?;
        let (known, known_images) = self.attack(t, Some(&selection), &test)?;
        let (unknown, unknown_images) = match strategy {
            Strategy::Ranked => (known, known_images.clone()),
            Strategy::Random => self.attack(t, None, &test)?,
        };
        let cell = Cell {
            topology: t,
            strategy,
            accuracy,
            known,
            unknown,
            cost: extractor.cost(),
        };
        let images = Reconstructions {
            topology: t,
            strategy,
            known: known_images,
            unknown: unknown_images,
        };
        Ok((cell, images))
    }

    /// The mean-image baseline on the owner's test images.
    pub fn baseline(&self) -> Result<Quality> {
        Quality::of_constant(
            &self.data.owner_test,
            &self.data.attacker_public.mean_image(),
        )
    }

    /// Measures every candidate under every strategy, calling `progress` after each cell.
    pub fn characterise(
        &self,
        source_accuracy: Option<f64>,
        mut progress: impl FnMut(&Cell),
    ) -> Result<Characterisation> {
        let mut cells = Vec::new();
        let mut reconstructions = Vec::new();
        for strategy in &self.config.strategies {
            for t in self.candidates() {
                let (cell, images) = self.measure(t, *strategy)?;
                progress(&cell);
                cells.push(cell);
                reconstructions.push(images);
            }
        }
        Ok(Characterisation {
            source_accuracy,
            baseline: self.baseline()?,
            cells,
            reconstructions,
        })
    }
}

/// Mean activation of each channel over every item and position of an upload.
pub fn channel_means(upload: &Upload) -> Vec<f64> {
    let [n, c, h, w] = upload.shape();
    let mut sums = vec![0f64; c];
    for item in upload.values().chunks(c * h * w) {
        for (ch, plane) in item.chunks(h * w).enumerate() {
            sums[ch] += plane.iter().map(|&v| v as f64).sum::<f64>();
        }
    }
    sums.iter().map(|s| s / (n * h * w) as f64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optimizer::Evaluator;

    #[test]
    fn the_embedded_split_keeps_the_public_and_private_digits_apart() {
        let config = ExperimentConfig::embedded();
        let data = ExperimentData::embedded(&config).unwrap();
        let public = [&data.pretrain, &data.pretrain_held_out];
        let private = [&data.owner_train, &data.attacker_public, &data.owner_test];
        assert!(public.iter().all(|s| s.labels().iter().all(|&y| y < 5)));
        assert!(private.iter().all(|s| s.labels().iter().all(|&y| y >= 5)));
        assert_eq!(
            [data.pretrain.len(), data.owner_train.len()],
            [config.pretrain_images, config.owner_train]
        );
        assert_eq!(
            [data.attacker_public.len(), data.owner_test.len()],
            [config.attacker_public, config.owner_test]
        );
        // No image is in two private roles (the 500 private digits are distinct images).
        let mut seen: Vec<&[f32]> = private
            .iter()
            .flat_map(|s| (0..s.len()).map(|i| s.image(i)))
            .collect();
        let n = seen.len();
        seen.sort_by(|a, b| a.partial_cmp(b).unwrap());
        seen.dedup();
        assert_eq!(seen.len(), n);
        // Every private class is present in the owner's test images (the shuffle mixed them).
        assert!((5..10).all(|c| data.owner_test.labels().contains(&c)));
        let too_many = ExperimentConfig {
            owner_train: 400,
            ..config
        };
        assert!(ExperimentData::embedded(&too_many).is_err());
    }

    #[test]
    fn an_attack_worse_than_the_mean_image_counts_as_the_mean_image() {
        let cell = |channels, psnr| Cell {
            topology: Topology {
                layers: 1,
                channels,
            },
            strategy: Strategy::Random,
            accuracy: 0.8,
            known: Quality {
                psnr: 30.0,
                ssim: 0.9,
            },
            unknown: Quality { psnr, ssim: 0.1 },
            cost: LocalCost {
                macs_per_image: 1,
                param_bytes: 1,
            },
        };
        let grid = Characterisation {
            source_accuracy: None,
            baseline: Quality {
                psnr: 11.0,
                ssim: 0.1,
            },
            cells: vec![cell(1, 7.0), cell(2, 14.0)],
            reconstructions: Vec::new(),
        };
        let mut table = grid.table(Strategy::Random);
        let at = |c| Topology {
            layers: 1,
            channels: c,
        };
        assert_eq!(table.privacy_loss(at(1)).unwrap(), 11.0);
        assert_eq!(table.privacy_loss(at(2)).unwrap(), 14.0);
        // The default budget lies half-way between the baseline and the strongest attack.
        assert_eq!(grid.default_budget(&Limits::default()).max_psnr, 12.5);
    }
}
