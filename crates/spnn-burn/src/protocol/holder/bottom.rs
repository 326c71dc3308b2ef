//! A holder's own Burn bottom model ([`crate::SecureAggregation`] without private weights).
//!
//! The model maps the holder's features to the shared output width; the party loop masks the
//! output with the pair seeds before it goes to the server, so the server learns only the sum
//! over holders. The gradient comes back **in the clear** for the model's local backward.

use spnn_crypto::RingMatrix;

use super::{Engine, Party};
use crate::error::{Result, SpnnError, protocol};
use crate::local::LocalRunner;
use crate::messages::BottomGradient;

pub(super) struct BottomEngine {
    runner: Box<dyn LocalRunner>,
    /// The step of the training forward awaiting its backward.
    saved_step: Option<u64>,
}

impl BottomEngine {
    pub(super) fn new(runner: Box<dyn LocalRunner>) -> Self {
        Self {
            runner,
            saved_step: None,
        }
    }
}

impl Engine for BottomEngine {
    fn forward(&mut self, p: &Party, step: u64, ids: &[u64], train: bool) -> Result<RingMatrix> {
        let (b, h) = (ids.len(), p.h);
        let x = p.raw_features(ids)?;
        let out = self.runner.forward(x, b, p.widths[p.me], train)?;
        if out.len() != b * h {
            return Err(SpnnError::Config(format!(
                "the bottom model produced {} values for a {b}x{h} output",
                out.len()
            )));
        }
        self.saved_step = train.then_some(step);
        Ok(p.fp.encode_matrix(b, h, &out)?)
    }

    fn backward(&mut self, p: &Party, step: u64, _scale: f64) -> Result<()> {
        if self.saved_step.take() != Some(step) {
            return Err(protocol(
                p.server,
                format!("backward of step {step} without its training forward"),
            ));
        }
        let BottomGradient(g) = p.net.recv(p.server)?;
        self.runner.backward(g)
    }

    fn update(&mut self, _p: &Party, _step: u64, lr: f64) -> Result<()> {
        self.runner.update(lr)
    }

    fn save(&self) -> Result<Vec<u8>> {
        self.runner.save()
    }

    fn load(&mut self, _p: &Party, payload: &[u8]) -> std::result::Result<(), String> {
        self.runner.load(payload).map_err(|e| e.to_string())
    }

    #[cfg(feature = "insecure-test-hooks")]
    fn weight_share(&self) -> Option<&RingMatrix> {
        None
    }
}
