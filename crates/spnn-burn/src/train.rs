//! Helpers for training loops on the server.

use burn::tensor::{Gradients, Tensor};
use spnn_net::FloatMatrix;

use crate::error::{Result, SpnnError};
use crate::protocol::server::ServerSession;
use crate::tensor::{matrix, to_vec};

/// Label-holder mode, training: sends the model's top activations (`[B, c]`, on an autodiff
/// device) to the label holder, and back-propagates the gradient it returns through the
/// server's layers — and from there, through `PrivateLinear`, to the holders. Returns the
/// gradients (for `GradientsParams::from_grads`) and the batch loss if the label holder reports
/// losses.
pub fn backward_from_label_holder(
    session: &ServerSession,
    activations: Tensor<2>,
) -> Result<(Gradients, Option<f64>)> {
    let [rows, cols] = activations.dims();
    let host = FloatMatrix::new(rows, cols, to_vec(activations.clone())?)
        .map_err(|_| SpnnError::NonFinite("activations"))?;
    let (grad, loss) = session.head(host, true)?;
    let grad =
        grad.ok_or_else(|| SpnnError::Config("the label holder returned no gradient".into()))?;
    let upstream = matrix(grad.data, rows, cols, &activations.device()).detach();
    // d(sum(a ⊙ g))/da = g: the surrogate carries the label holder's gradient into Burn.
    let grads = (activations * upstream).sum().backward();
    session.check()?;
    Ok((grads, loss))
}

/// Label-holder mode, evaluation: sends activations for the label holder to score. The
/// predictions stay with the label holder; the loss comes back if it reports losses.
pub fn evaluate_at_label_holder(
    session: &ServerSession,
    activations: Tensor<2>,
) -> Result<Option<f64>> {
    let [rows, cols] = activations.dims();
    let host = FloatMatrix::new(rows, cols, to_vec(activations)?)
        .map_err(|_| SpnnError::NonFinite("activations"))?;
    Ok(session.head(host, false)?.1)
}
