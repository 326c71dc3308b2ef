//! Small conversions between Burn tensors and host vectors, with errors instead of panics.

use burn::tensor::{Device, Tensor, TensorData};

use crate::error::{Result, SpnnError};

/// The elements of a float tensor, row-major, as `f32`.
pub fn to_vec<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>> {
    let data = t
        .try_into_data()
        .map_err(|e| SpnnError::Tensor(format!("reading a tensor: {e:?}")))?;
    data.try_into_vec_as::<f32>()
        .map_err(|e| SpnnError::Tensor(format!("{e:?}")))
}

/// The single value of a one-element tensor.
pub fn scalar<const D: usize>(t: Tensor<D>) -> Result<f64> {
    let v = to_vec(t)?;
    match v.as_slice() {
        [x] => Ok(*x as f64),
        _ => Err(SpnnError::Tensor(format!(
            "expected one element, got {}",
            v.len()
        ))),
    }
}

/// A `rows × cols` float tensor on `device` from row-major values.
pub fn matrix(values: Vec<f32>, rows: usize, cols: usize, device: &Device) -> Tensor<2> {
    Tensor::from_data(TensorData::new(values, [rows, cols]), device)
}
