//! The Burn backend extension that puts the SPNN protocol inside Burn's autodiff graph.
//!
//! `private_first_layer(anchor, call)` is a custom operation whose forward runs the secure
//! forward protocol and whose backward — reached by an ordinary `loss.backward()` — sends the
//! boundary gradient back to the holders as shares. The `anchor` is a one-element trainable
//! parameter of the layer: Burn only tracks an operation with a tracked input, and a first
//! layer's real input (sample ids) is not a tensor. The anchor's gradient is always zero.
//!
//! The operation is marked compute-bound, so gradient checkpointing never re-runs a network
//! protocol as a "retro-forward". Backward runs under the autodiff graph's lock: it only uses
//! inner-backend operations and host data.
//!
//! Errors cannot leave a Burn operation; they are stored in the session and surface at
//! [`crate::ServerSession::check`] (which `PrivateLinear::try_forward` and `apply_update` call).

use std::sync::Arc;

use burn::backend::autodiff::{
    Autodiff,
    checkpoint::{base::Checkpointer, strategy::CheckpointStrategy},
    grads::Gradients,
    ops::{Backward, Ops, OpsKind},
};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Flex, TensorMetadata, backend_extension};
use burn::tensor::{Shape, TensorData, try_read_sync};

use crate::error::SpnnError;
use crate::protocol::server::ServerSession;

/// One call of the private first layer: the session and the batch.
#[derive(Clone, Debug)]
pub struct PrivateCall {
    /// The session that runs the protocol.
    pub session: ServerSession,
    /// Sample ids of the batch.
    pub ids: Arc<Vec<u64>>,
    /// Output width `h`.
    pub width: usize,
}

/// Backends that can run the private first layer.
#[backend_extension(Flex, Autodiff, Cube: cfg(feature = "cuda"))]
pub trait PrivateOps: Backend {
    /// `Z = X·W` for the batch in `call`, computed by the holders; `anchor` selects the device
    /// and makes the operation tracked.
    fn private_first_layer(anchor: FloatTensor<Self>, call: PrivateCall) -> FloatTensor<Self>;
}

/// Runs the secure forward and writes `Z` to the anchor's device. On error the session keeps
/// the error and a zero tensor of the right shape is returned.
fn host_forward<B: Backend>(
    anchor: &FloatTensor<B>,
    call: &PrivateCall,
    train: bool,
) -> FloatTensor<B> {
    let rows = call.ids.len();
    let values = call.session.forward(&call.ids, train).unwrap_or_else(|e| {
        call.session.record_error(e);
        vec![0.0; rows * call.width]
    });
    B::float_from_data(
        TensorData::new(values, [rows, call.width]),
        &anchor.device(),
    )
}

impl PrivateOps for Flex {
    fn private_first_layer(anchor: FloatTensor<Self>, call: PrivateCall) -> FloatTensor<Self> {
        host_forward::<Self>(&anchor, &call, false)
    }
}

#[cfg(feature = "cuda")]
impl PrivateOps for burn::backend::Cube {
    fn private_first_layer(anchor: FloatTensor<Self>, call: PrivateCall) -> FloatTensor<Self> {
        host_forward::<Self>(&anchor, &call, false)
    }
}

#[derive(Debug)]
struct PrivateBackward;

impl<B: Backend> Backward<B, 1> for PrivateBackward {
    type State = (PrivateCall, Shape);

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let grad = grads.consume::<B>(&ops.node);
        let device = grad.device();
        let dtype = grad.dtype();
        let (call, anchor_shape) = ops.state;
        let host = try_read_sync(B::float_into_data(grad))
            .ok_or_else(|| {
                SpnnError::Tensor("cannot read the boundary gradient synchronously".into())
            })
            .and_then(|r| r.map_err(|e| SpnnError::Tensor(format!("{e:?}"))))
            .and_then(|d| {
                d.try_into_vec_as::<f32>()
                    .map_err(|e| SpnnError::Tensor(format!("{e:?}")))
            });
        if let Err(e) = host.and_then(|g| call.session.backward(&g)) {
            call.session.record_error(e);
        }
        if let Some(node) = &ops.parents[0] {
            grads.register::<B>(node.id, B::float_zeros(anchor_shape, &device, dtype.into()));
        }
    }
}

impl<B: Backend + PrivateOps, C: CheckpointStrategy> PrivateOps for Autodiff<B, C> {
    fn private_first_layer(anchor: FloatTensor<Self>, call: PrivateCall) -> FloatTensor<Self> {
        match PrivateBackward
            .prepare::<C>([anchor.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let inner = anchor.primitive().clone();
                let shape = inner.shape();
                let out = host_forward::<B>(&inner, &call, true);
                prep.finish((call, shape), out)
            }
            OpsKind::UnTracked(prep) => {
                let inner = anchor.into_primitive();
                prep.finish(host_forward::<B>(&inner, &call, false))
            }
        }
    }
}
