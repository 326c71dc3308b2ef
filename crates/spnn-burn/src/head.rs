//! The label holder's head: where the loss is computed when labels stay with a data holder.
//!
//! In SPNN's label-private setting the server sends its top activations to the label holder,
//! whose [`LabelHead`] computes the loss against the labels, returns `∂L/∂activations`, and
//! keeps evaluation metrics. The server never sees a label.

use burn::nn::loss::{BinaryCrossEntropyLoss, BinaryCrossEntropyLossConfig};
use burn::tensor::{Device, Int, Tensor, TensorData, activation::sigmoid};
use spnn_net::FloatMatrix;

use crate::error::{Result, SpnnError};
use crate::messages::Metrics;
use crate::metrics::roc_auc;

/// Computes the loss on the label holder.
pub trait LabelHead: Send {
    /// Loss and gradient with respect to `activations` for a training batch.
    fn train_batch(
        &mut self,
        activations: &FloatMatrix,
        labels: &[f32],
    ) -> Result<(f64, FloatMatrix)>;
    /// Loss of an evaluation batch; predictions are kept for [`LabelHead::take_metrics`].
    fn eval_batch(&mut self, activations: &FloatMatrix, labels: &[f32]) -> Result<f64>;
    /// Applies the head's own parameter update, if it has parameters.
    fn update(&mut self, lr: f64) -> Result<()>;
    /// Metrics of the evaluation batches since the last call.
    fn take_metrics(&mut self) -> Metrics;
}

/// Binary classification: one logit per sample, sigmoid and binary cross-entropy (mean over
/// the batch), computed with Burn's autodiff on `device`.
#[derive(Debug)]
pub struct BinaryCrossEntropyHead {
    device: Device,
    loss: BinaryCrossEntropyLoss,
    scores: Vec<f32>,
    labels: Vec<f32>,
    loss_sum: f64,
}

impl BinaryCrossEntropyHead {
    /// A head computing on `device` (plain, autodiff is added internally).
    pub fn new(device: Device) -> Self {
        let loss = BinaryCrossEntropyLossConfig::new()
            .with_logits(true)
            .init(&device);
        Self {
            device,
            loss,
            scores: Vec::new(),
            labels: Vec::new(),
            loss_sum: 0.0,
        }
    }

    fn check(activations: &FloatMatrix, labels: &[f32]) -> Result<()> {
        if activations.cols != 1 || activations.rows != labels.len() {
            return Err(SpnnError::Config(format!(
                "binary head expects {}x1 logits, got {}x{}",
                labels.len(),
                activations.rows,
                activations.cols
            )));
        }
        Ok(())
    }

    fn targets(&self, labels: &[f32], device: &Device) -> Tensor<2, Int> {
        let ints: Vec<i64> = labels.iter().map(|&y| i64::from(y > 0.5)).collect();
        Tensor::from_data(TensorData::new(ints, [labels.len(), 1]), device)
    }
}

impl LabelHead for BinaryCrossEntropyHead {
    fn train_batch(
        &mut self,
        activations: &FloatMatrix,
        labels: &[f32],
    ) -> Result<(f64, FloatMatrix)> {
        Self::check(activations, labels)?;
        let device = self.device.clone().autodiff();
        let logits = Tensor::<2>::from_data(
            TensorData::new(activations.data.clone(), [activations.rows, 1]),
            &device,
        )
        .require_grad();
        let loss = self
            .loss
            .forward(logits.clone(), self.targets(labels, &device));
        let value = crate::tensor::scalar(loss.clone())?;
        let grads = loss.backward();
        let grad = logits
            .grad(&grads)
            .ok_or_else(|| SpnnError::Tensor("no gradient for the head's logits".into()))?;
        let data = crate::tensor::to_vec(grad)?;
        let grad = FloatMatrix::new(activations.rows, 1, data)
            .map_err(|_| SpnnError::NonFinite("head gradient"))?;
        Ok((value, grad))
    }

    fn eval_batch(&mut self, activations: &FloatMatrix, labels: &[f32]) -> Result<f64> {
        Self::check(activations, labels)?;
        let logits = Tensor::<2>::from_data(
            TensorData::new(activations.data.clone(), [activations.rows, 1]),
            &self.device,
        );
        let loss = crate::tensor::scalar(
            self.loss
                .forward(logits.clone(), self.targets(labels, &self.device)),
        )?;
        self.scores.extend(crate::tensor::to_vec(sigmoid(logits))?);
        self.labels.extend_from_slice(labels);
        self.loss_sum += loss * labels.len() as f64;
        Ok(loss)
    }

    fn update(&mut self, _lr: f64) -> Result<()> {
        Ok(())
    }

    fn take_metrics(&mut self) -> Metrics {
        let count = self.labels.len() as u64;
        let m = Metrics {
            auc: roc_auc(&self.scores, &self.labels),
            loss: if count > 0 {
                self.loss_sum / count as f64
            } else {
                0.0
            },
            count,
        };
        self.scores.clear();
        self.labels.clear();
        self.loss_sum = 0.0;
        m
    }
}
