//! Bottom models: each holder runs its own ordinary Burn model on its own features, and
//! [`crate::SecureAggregation`] gives the server only the sum of their outputs.
//!
//! Holder `i` sends `enc(H_i) + M_i` where the pairwise masks
//! `M_i = Σ_{j>i} PRG(s_ij) − Σ_{j<i} PRG(s_ji)` cancel in the sum. The server learns
//! `Σ_i H_i`; the gradient `G` comes back to every holder **in the clear** for its local
//! backward — weaker than `PrivateLinear` (holders see `G`) and more flexible (any Burn model).

use burn::module::Module;
use burn::optim::{GradientsAccumulator, GradientsParams, ModuleOptimizer};
use burn::store::ModuleRecord;
use burn::tensor::{Bytes, Device, Tensor};
use spnn_net::FloatMatrix;

use crate::error::{Result, SpnnError};
use crate::tensor::{matrix, to_vec};

/// A holder's bottom model: any Burn module mapping its features `[B, d_i]` to `[B, h]`.
pub trait BottomModel: Module + Send + 'static {
    /// The forward pass.
    fn forward(&self, x: Tensor<2>) -> Tensor<2>;
}

/// The holder-side runner of a bottom model (object-safe, so the holder loop needs no generic).
pub(crate) trait BottomRunner: Send {
    fn forward(&mut self, x: Vec<f32>, rows: usize, cols: usize, train: bool) -> Result<Vec<f32>>;
    fn backward(&mut self, g: FloatMatrix) -> Result<()>;
    fn update(&mut self, lr: f64) -> Result<()>;
    fn to_bytes(&self) -> Result<(Vec<u8>, Vec<u8>)>;
    fn load_bytes(&mut self, model: Vec<u8>, optim: Vec<u8>) -> Result<()>;
}

pub(crate) struct Runner<M: BottomModel> {
    model: Option<M>,
    optim: Option<ModuleOptimizer>,
    device: Device,
    output: Option<Tensor<2>>,
    accumulated: GradientsAccumulator<M>,
    pending: bool,
}

impl<M: BottomModel> Runner<M> {
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
}

fn persist_err(e: impl std::fmt::Debug) -> SpnnError {
    SpnnError::Persistence {
        path: "bottom model".into(),
        reason: format!("{e:?}"),
    }
}

impl<M: BottomModel> BottomRunner for Runner<M> {
    fn forward(&mut self, x: Vec<f32>, rows: usize, cols: usize, train: bool) -> Result<Vec<f32>> {
        let out = if train {
            let x = matrix(x, rows, cols, &self.device);
            let out = self.model().forward(x);
            self.output = Some(out.clone());
            out
        } else {
            let valid = self.model().clone().valid();
            valid.forward(matrix(x, rows, cols, &self.device.clone().inner()))
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
        let grads = GradientsParams::from_grads((out * upstream).sum().backward(), self.model());
        let model = self.model.take().expect("present");
        self.accumulated.accumulate(&model, grads);
        self.model = Some(model);
        self.pending = true;
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

    fn to_bytes(&self) -> Result<(Vec<u8>, Vec<u8>)> {
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
        Ok((model.to_vec(), optim.to_vec()))
    }

    fn load_bytes(&mut self, model: Vec<u8>, optim: Vec<u8>) -> Result<()> {
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
