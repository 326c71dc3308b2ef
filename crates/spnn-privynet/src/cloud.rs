//! The cloud's side: an ordinary Burn network trained with burn-train's `Learner` on the
//! uploaded features for the owner's task.

use std::path::Path;
use std::sync::Arc;

use burn::data::dataloader::DataLoaderBuilder;
use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::InMemDataset;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::optim::AdamConfig;
use burn::tensor::activation::relu;
use burn::tensor::{Device, Int, Tensor, TensorData};
use burn::train::logger::{EvaluationProgressLogger, TrainingProgressLogger};
use burn::train::metric::{AccuracyMetric, LossMetric, MetricDefinition};
use burn::train::renderer::{
    EvaluationName, MetricState, MetricsRenderer, MetricsRendererEvaluation,
    MetricsRendererTraining,
};
use burn::train::{
    ClassificationOutput, InferenceStep, Learner, SupervisedTraining, TrainOutput, TrainStep,
};

use crate::error::{PrivyError, Result};
use crate::extractor::Upload;
use crate::source::TrainConfig;

/// The cloud network: standardisation by the training uploads' mean and standard deviation,
/// two 3×3 convolutions (the second with stride 2), average pooling to 4×4, and two linear
/// layers. It takes whatever `[c, h, w]` the owner uploads.
#[derive(Module, Debug)]
pub struct CloudNet {
    offset: f32,
    scale: f32,
    conv1: Conv2d,
    conv2: Conv2d,
    pool: AdaptiveAvgPool2d,
    hidden: Linear,
    out: Linear,
}

impl CloudNet {
    /// A fresh network for `channels` input channels and `classes` outputs, standardising
    /// its input as `(x − offset) / scale` (see [`Upload::mean_std`]).
    pub fn new(
        channels: usize,
        classes: usize,
        (offset, scale): (f32, f32),
        device: &Device,
    ) -> Self {
        let conv = |c: [usize; 2], stride| {
            Conv2dConfig::new(c, [3, 3])
                .with_stride([stride, stride])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(device)
        };
        Self {
            offset,
            scale,
            conv1: conv([channels, 32], 1),
            conv2: conv([32, 32], 2),
            pool: AdaptiveAvgPool2dConfig::new([4, 4]).init(),
            hidden: LinearConfig::new(32 * 16, 64).init(device),
            out: LinearConfig::new(64, classes).init(device),
        }
    }

    /// Class logits `[b, classes]` for features `[b, c, h, w]`.
    pub fn forward(&self, features: Tensor<4>) -> Tensor<2> {
        let x = features.sub_scalar(self.offset).div_scalar(self.scale);
        let x = relu(self.conv1.forward(x));
        let x = self.pool.forward(relu(self.conv2.forward(x)));
        self.out.forward(relu(self.hidden.forward(x.flatten(1, 3))))
    }

    fn output(&self, batch: FeatureBatch) -> ClassificationOutput {
        let logits = self.forward(batch.features);
        let loss = CrossEntropyLossConfig::new()
            .init(&logits.device())
            .forward(logits.clone(), batch.targets.clone());
        ClassificationOutput::new(loss, logits, batch.targets)
    }

    /// Fraction of the uploaded items classified as `labels` says.
    pub fn accuracy(&self, upload: &Upload, labels: &[u8], device: &Device) -> f64 {
        let model = self.valid();
        let n = upload.shape()[0];
        let mut correct = 0;
        for start in (0..n).step_by(256) {
            let items: Vec<usize> = (start..(start + 256).min(n)).collect();
            let predicted = model
                .forward(upload.tensor(&items, device))
                .argmax(1)
                .into_data();
            correct += predicted
                .iter::<i64>()
                .zip(&items)
                .filter(|&(p, &i)| p == labels[i] as i64)
                .count();
        }
        correct as f64 / n.max(1) as f64
    }
}

/// A minibatch of uploaded features and their labels.
#[derive(Clone, Debug)]
pub struct FeatureBatch {
    features: Tensor<4>,
    targets: Tensor<1, Int>,
}

/// Builds [`FeatureBatch`]es from item indices into an upload.
#[derive(Clone)]
struct UploadBatcher {
    upload: Arc<Upload>,
    labels: Arc<Vec<u8>>,
}

impl Batcher<usize, FeatureBatch> for UploadBatcher {
    fn batch(&self, items: Vec<usize>, device: &Device) -> FeatureBatch {
        let labels: Vec<i64> = items.iter().map(|&i| self.labels[i] as i64).collect();
        FeatureBatch {
            features: self.upload.tensor(&items, device),
            targets: Tensor::from_data(TensorData::new(labels, [items.len()]), device),
        }
    }
}

impl TrainStep for CloudNet {
    type Input = FeatureBatch;
    type Output = ClassificationOutput;

    fn step(&self, batch: FeatureBatch) -> TrainOutput<ClassificationOutput> {
        let item = self.output(batch);
        TrainOutput::new(self, item.loss.backward(), item)
    }
}

impl InferenceStep for CloudNet {
    type Input = FeatureBatch;
    type Output = ClassificationOutput;

    fn step(&self, batch: FeatureBatch) -> ClassificationOutput {
        self.output(batch)
    }
}

/// The owner's labelled uploads for the cloud: training and validation features.
pub struct CloudData<'a> {
    /// Training features.
    pub train: &'a Upload,
    /// One label per training item.
    pub train_labels: &'a [u8],
    /// Validation features.
    pub valid: &'a Upload,
    /// One label per validation item.
    pub valid_labels: &'a [u8],
}

/// Trains a [`CloudNet`] with burn-train's `Learner` (Adam) on `device` (with autodiff),
/// writing the Learner's logs under `artifacts`; returns it with its validation accuracy.
pub fn train_cloud(
    data: &CloudData<'_>,
    classes: usize,
    config: &TrainConfig,
    artifacts: &Path,
    device: &Device,
) -> Result<(CloudNet, f64)> {
    let [n, c, h, w] = data.train.shape();
    if data.valid.shape()[1..] != [c, h, w] {
        return Err(PrivyError::Shape(format!(
            "training features {:?}, validation features {:?}",
            data.train.shape(),
            data.valid.shape()
        )));
    }
    if data.train_labels.len() != n || data.valid_labels.len() != data.valid.shape()[0] {
        return Err(PrivyError::Shape(
            "one label per uploaded item is needed".into(),
        ));
    }
    if let Some(&y) = data
        .train_labels
        .iter()
        .chain(data.valid_labels)
        .find(|&&y| y as usize >= classes)
    {
        return Err(PrivyError::Config(format!(
            "label {y} with {classes} classes"
        )));
    }
    device.seed(config.seed);
    let model = CloudNet::new(c, classes, data.train.mean_std(), device);
    let loader = |upload: &Upload, labels: &[u8], shuffle: Option<u64>| {
        let batcher = UploadBatcher {
            upload: Arc::new(upload.clone()),
            labels: Arc::new(labels.to_vec()),
        };
        let builder = DataLoaderBuilder::new(batcher).batch_size(config.batch);
        let builder = match shuffle {
            Some(seed) => builder.shuffle(seed),
            None => builder,
        };
        builder.build(InMemDataset::new((0..labels.len()).collect::<Vec<_>>()))
    };
    let learner = Learner::new(model, AdamConfig::new().init(), config.lr);
    let result = SupervisedTraining::new(
        artifacts,
        loader(data.train, data.train_labels, Some(config.seed)),
        loader(data.valid, data.valid_labels, None),
    )
    .metrics((AccuracyMetric::new(), LossMetric::new()))
    .renderer(Box::new(QuietRenderer))
    .num_epochs(config.epochs)
    .launch(learner);
    let model = result.model;
    let accuracy = model.accuracy(data.valid, data.valid_labels, device);
    Ok((model, accuracy))
}

/// A Learner renderer that prints nothing: a characterisation trains dozens of cloud networks
/// and reports their accuracy itself. (The Learner still logs metrics under its artefact
/// directory.)
struct QuietRenderer;

impl MetricsRendererTraining for QuietRenderer {
    fn update_train(&mut self, _: MetricState) {}
    fn update_valid(&mut self, _: MetricState) {}
    fn on_train_end(
        &mut self,
        _: Option<burn::train::LearnerSummary>,
    ) -> std::result::Result<(), Box<dyn std::error::Error>> {
        Ok(())
    }
}

impl MetricsRendererEvaluation for QuietRenderer {
    fn update_test(&mut self, _: EvaluationName, _: MetricState) {}
    fn on_test_end(
        &mut self,
        _: Option<burn::train::LearnerSummary>,
    ) -> std::result::Result<(), Box<dyn std::error::Error>> {
        Ok(())
    }
}

impl TrainingProgressLogger for QuietRenderer {
    fn start(&mut self, _: usize, _: usize, _: Option<usize>, _: Option<&str>) {}
    fn update_epoch(&mut self, _: usize) {}
    fn start_split(&mut self, _: &str, _: usize) {}
    fn update_split(&mut self, _: usize) {}
    fn end_split(&mut self) {}
    fn end(&mut self) {}
    fn log_event_training(&mut self, _: String) {}
}

impl EvaluationProgressLogger for QuietRenderer {
    fn start_global_progress(&mut self, _: usize) {}
    fn start_test(&mut self, _: &str, _: usize) {}
    fn update_test_progress(&mut self, _: usize) {}
    fn end_test(&mut self) {}
    fn end_global_progress(&mut self) {}
    fn log_event_evaluation(&mut self, _: String) {}
}

impl MetricsRenderer for QuietRenderer {
    fn manual_close(&mut self) {}
    fn register_metric(&mut self, _: MetricDefinition) {}
}
