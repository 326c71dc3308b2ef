//! A party's own Burn model, trained on its side with its own Burn optimiser.
//!
//! Two places use one:
//!
//! - **Bottom models**: each holder runs a model on its own features, and
//!   [`crate::SecureAggregation`] gives the server only the sum of their outputs. Holder `i`
//!   sends `enc(H_i) + M_i` where the pairwise masks `M_i = Σ_{j>i} PRG(s_ij) − Σ_{j<i} PRG(s_ji)`
//!   cancel in the sum. The server learns `Σ_i H_i`; the gradient `G` comes back to every holder
//!   **in the clear** for its local backward — weaker than `PrivateLinear` (holders see `G`) and
//!   more flexible (any Burn model).
//! - **Top layers** at the label holder ([`crate::head::TopLayers`]): the server's last
//!   activations in, logits out, the loss against the labels computed where the labels are.

use burn::module::Module;
use burn::optim::{GradientsAccumulator, GradientsParams, ModuleOptimizer};
use burn::store::ModuleRecord;
use burn::tensor::{Bytes, Device, Tensor};
use spnn_net::FloatMatrix;
use spnn_net::codec::{Blob, Codec, Reader};

use crate::error::{Result, SpnnError};
use crate::tensor::{matrix, to_vec};

/// A party's own model: any Burn module mapping `[B, in]` to `[B, out]` — a holder's features
/// to the shared width (bottom model), or the server's activations to logits (top layers).
pub trait LocalModel: Module + Send + 'static {
    /// The forward pass.
    fn forward(&self, x: Tensor<2>) -> Tensor<2>;
}

/// A single Burn `Linear` layer is a party's model as it stands (a linear bottom model, or one
/// top layer to a logit).
impl LocalModel for burn::nn::Linear {
    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        burn::nn::Linear::forward(self, x)
    }
}

/// The runner of a party's own model (object-safe, so the holder loop needs no generic).
pub(crate) trait LocalRunner: Send {
    fn forward(&mut self, x: Vec<f32>, rows: usize, cols: usize, train: bool) -> Result<Vec<f32>>;
    fn backward(&mut self, g: FloatMatrix) -> Result<()>;
    fn update(&mut self, lr: f64) -> Result<()>;
    /// The model's record and the optimiser's state, as one checkpoint blob.
    fn save(&self) -> Result<Vec<u8>>;
    /// Restores a blob written by [`LocalRunner::save`].
    fn load(&mut self, state: &[u8]) -> Result<()>;
}

pub(crate) struct Runner<M: LocalModel> {
    model: Option<M>,
    optim: Option<ModuleOptimizer>,
    device: Device,
    output: Option<Tensor<2>>,
    accumulated: GradientsAccumulator<M>,
    pending: bool,
}

impl<M: LocalModel> Runner<M> {
    pub(crate) fn new(model: M, optim: ModuleOptimizer, device: Device) -> Self {
        Self {
            // Fresh autodiff leaves: a model cloned from one trained elsewhere in this process
            // (a plaintext reference, another holder) shares its parameters' graph nodes, and
            // burn-autodiff 0.22.1 locks a graph and its global locator in opposite orders in
            // `backward` and in graph merging, so two threads on shared nodes can deadlock.
            model: Some(model.valid().train()),
            optim: Some(optim),
            device,
            output: None,
            accumulated: GradientsAccumulator::new(),
            pending: false,
        }
    }

    fn model(&self) -> &M {
        self.model
            .as_ref()
            .expect("the model is only taken during an update")
    }

    fn accumulate(&mut self, grads: burn::tensor::Gradients) {
        let model = self.model.take().expect("present");
        let params = GradientsParams::from_grads(grads, &model);
        self.accumulated.accumulate(&model, params);
        self.model = Some(model);
        self.pending = true;
    }

    /// Top layers, training: the loss `loss(model(x))` (a scalar tensor) and its gradient with
    /// respect to the input `x`; the parameters' gradients are kept for the next update.
    pub(crate) fn train_top(
        &mut self,
        x: FloatMatrix,
        loss: impl FnOnce(Tensor<2>) -> Tensor<1>,
    ) -> Result<(f64, FloatMatrix)> {
        let (rows, cols) = (x.rows, x.cols);
        let x = matrix(x.data, rows, cols, &self.device).require_grad();
        let loss = loss(self.model().forward(x.clone()));
        let value = crate::tensor::scalar(loss.clone())?;
        let grads = loss.backward();
        let dx = x
            .grad(&grads)
            .ok_or_else(|| SpnnError::Tensor("no gradient for the top layers' input".into()))?;
        let dx = FloatMatrix::new(rows, cols, to_vec(dx)?)
            .map_err(|_| SpnnError::NonFinite("top layers' input gradient"))?;
        self.accumulate(grads);
        Ok((value, dx))
    }

    /// The Jacobians `J_i = ∂s_i/∂x_i` of the model's outputs `s_i` of every row `i` of `x`
    /// (`[rows, C, cols]`: row `i`'s `C × cols` block), rows computed independently: one
    /// backward pass per output. Keeps no gradient.
    pub(crate) fn output_jacobians(&self, x: &FloatMatrix) -> Result<Vec<f32>> {
        let (rows, cols) = (x.rows, x.cols);
        let pass = || {
            let x = matrix(x.data.clone(), rows, cols, &self.device).require_grad();
            let out = self.model().forward(x.clone());
            (x, out)
        };
        // The first pass also gives the number of outputs; each output takes one backward.
        let (x0, out0) = pass();
        let outputs = out0.dims()[1];
        let mut jacobians = vec![0f32; rows * outputs * cols];
        let mut first = Some((x0, out0));
        for c in 0..outputs {
            let (x, out) = first.take().unwrap_or_else(pass);
            let grads = out.slice([0..rows, c..c + 1]).sum().backward();
            let dx = x
                .grad(&grads)
                .ok_or_else(|| SpnnError::Tensor("no gradient for the top layers' input".into()))?;
            for (i, r) in to_vec(dx)?.chunks(cols.max(1)).enumerate().take(rows) {
                let at = (i * outputs + c) * cols;
                jacobians[at..at + r.len()].copy_from_slice(r);
            }
        }
        Ok(jacobians)
    }

    /// Top layers, evaluation: the model's output without autodiff.
    pub(crate) fn infer(&self, x: Vec<f32>, rows: usize, cols: usize) -> Tensor<2> {
        let valid = self.model().clone().valid();
        valid.forward(matrix(x, rows, cols, &self.device.clone().inner()))
    }
}

fn persist_err(e: impl std::fmt::Debug) -> SpnnError {
    SpnnError::Persistence {
        path: "a party's own model".into(),
        reason: format!("{e:?}"),
    }
}

impl<M: LocalModel> LocalRunner for Runner<M> {
    fn forward(&mut self, x: Vec<f32>, rows: usize, cols: usize, train: bool) -> Result<Vec<f32>> {
        let out = if train {
            let x = matrix(x, rows, cols, &self.device);
            let out = self.model().forward(x);
            self.output = Some(out.clone());
            out
        } else {
            self.infer(x, rows, cols)
        };
        to_vec(out)
    }

    fn backward(&mut self, g: FloatMatrix) -> Result<()> {
        let out = self.output.take().ok_or_else(|| {
            SpnnError::Config("bottom-model backward without a training forward".into())
        })?;
        let [rows, cols] = out.dims();
        if (g.rows, g.cols) != (rows, cols) {
            return Err(SpnnError::Config(format!(
                "gradient {}x{} for an output {rows}x{cols}",
                g.rows, g.cols
            )));
        }
        let upstream = matrix(g.data, rows, cols, &out.device()).detach();
        self.accumulate((out * upstream).sum().backward());
        Ok(())
    }

    fn update(&mut self, lr: f64) -> Result<()> {
        if !std::mem::take(&mut self.pending) {
            return Ok(());
        }
        let grads = self.accumulated.grads();
        let model = self.model.take().expect("present");
        let optim = self.optim.as_mut().expect("present");
        self.model = Some(optim.step(lr, model, grads));
        Ok(())
    }

    fn save(&self) -> Result<Vec<u8>> {
        let model = self
            .model()
            .clone()
            .into_record()
            .into_bytes()
            .map_err(persist_err)?;
        let optim = self
            .optim
            .as_ref()
            .expect("present")
            .into_bytes()
            .map_err(persist_err)?;
        let mut out = Vec::new();
        (Blob(model.to_vec()), Blob(optim.to_vec())).encode(&mut out);
        Ok(out)
    }

    fn load(&mut self, state: &[u8]) -> Result<()> {
        let mut r = Reader::new(state);
        let (Blob(model), Blob(optim)) = <(Blob, Blob)>::read(&mut r).map_err(persist_err)?;
        r.finish().map_err(persist_err)?;
        let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(model)).map_err(persist_err)?;
        let m = self.model.take().expect("present");
        self.model = Some(m.try_load_record(record).map_err(persist_err)?);
        let o = self.optim.take().expect("present");
        self.optim = Some(
            o.from_bytes(Bytes::from_bytes_vec(optim))
                .map_err(persist_err)?,
        );
        Ok(())
    }
}
