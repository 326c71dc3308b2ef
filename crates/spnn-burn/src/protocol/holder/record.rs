//! How engines store shares in checkpoints.
//!
//! Ring shares are a Burn record of `I64` parameters (bit-identical to the `u64` ring
//! elements, never touched by an optimiser). Integer shares (SPNN-HE's gradient path) are
//! written as sign and magnitude bytes per entry, with the magnitude bounded on reading.

use burn::module::{Module, Param, ParamId};
use burn::tensor::{DType, Device, Int, Tensor, TensorData};
use rug::Integer;
use rug::integer::Order;
use spnn_crypto::{IntMatrix, RingMatrix};
use spnn_net::codec::{Blob, Codec, Reader};

use crate::error::{Result, SpnnError};

/// Largest integer share a checkpoint may hold, in bytes of magnitude (4096 bits).
const MAX_INT_BYTES: usize = 512;

/// Shares stored as a Burn record.
#[derive(Module, Debug)]
pub(crate) struct ShareRecord {
    shares: Vec<Param<Tensor<2, Int>>>,
}

impl ShareRecord {
    fn device() -> Device {
        Device::flex()
    }

    fn from_shares(shares: &[&RingMatrix]) -> Self {
        let device = Self::device();
        let shares = shares
            .iter()
            .map(|m| {
                let data = TensorData::new(
                    m.as_slice().iter().map(|&x| x as i64).collect::<Vec<i64>>(),
                    [m.rows(), m.cols()],
                );
                Param::initialized(
                    ParamId::new(),
                    Tensor::<2, Int>::from_data(data, (&device, DType::I64)),
                )
            })
            .collect();
        Self { shares }
    }

    /// The record's bytes.
    pub(crate) fn to_bytes(shares: &[&RingMatrix]) -> Result<Vec<u8>> {
        Ok(Self::from_shares(shares)
            .into_record()
            .into_bytes()
            .map_err(|e| SpnnError::Persistence {
                path: "share record".into(),
                reason: format!("{e:?}"),
            })?
            .to_vec())
    }

    /// Reads `count` shares of `shape` back.
    pub(crate) fn load(
        bytes: &[u8],
        count: usize,
        shape: (usize, usize),
    ) -> std::result::Result<Vec<RingMatrix>, String> {
        let record = burn::store::ModuleRecord::from_bytes(burn::tensor::Bytes::from_bytes_vec(
            bytes.to_vec(),
        ))
        .map_err(|e| format!("{e:?}"))?;
        let empty = Self::from_shares(&vec![&RingMatrix::zeros(shape.0, shape.1); count]);
        let loaded = empty
            .try_load_record(record)
            .map_err(|e| format!("{e:?}"))?;
        loaded
            .shares
            .into_iter()
            .map(|p| {
                let data = p.val().try_into_data().map_err(|e| format!("{e:?}"))?;
                // Burn's conversion panics on values it cannot cast: shares are I64 or refused.
                if data.dtype() != DType::I64 {
                    return Err(format!(
                        "a share of {:?} elements, expected I64",
                        data.dtype()
                    ));
                }
                let dims = data.shape().clone();
                let values: Vec<i64> = data
                    .try_into_vec_as::<i64>()
                    .map_err(|e| format!("{e:?}"))?;
                if values.len() != shape.0 * shape.1 {
                    return Err(format!("share of {dims:?} elements, expected {shape:?}"));
                }
                RingMatrix::from_vec(
                    shape.0,
                    shape.1,
                    values.into_iter().map(|x| x as u64).collect(),
                )
                .map_err(|e| e.to_string())
            })
            .collect()
    }
}

/// Appends an integer matrix: per entry a sign byte and the magnitude's bytes.
pub(crate) fn encode_int_matrix(m: &IntMatrix, out: &mut Vec<u8>) {
    (m.shape().0 as u64, m.shape().1 as u64).encode(out);
    for v in m.as_slice() {
        out.push(u8::from(*v < 0));
        Blob(v.as_abs().to_digits::<u8>(Order::Lsf)).encode(out);
    }
}

/// Reads an integer matrix of `shape` written by [`encode_int_matrix`].
pub(crate) fn read_int_matrix(
    r: &mut Reader<'_>,
    shape: (usize, usize),
) -> std::result::Result<IntMatrix, String> {
    let (rows, cols) = <(u64, u64)>::read(r).map_err(|e| e.to_string())?;
    if (rows, cols) != (shape.0 as u64, shape.1 as u64) {
        return Err(format!(
            "integer shares of {rows}x{cols}, expected {shape:?}"
        ));
    }
    let mut data = Vec::with_capacity(shape.0 * shape.1);
    for _ in 0..shape.0 * shape.1 {
        let negative = match r.u8("sign").map_err(|e| e.to_string())? {
            0 => false,
            1 => true,
            t => return Err(format!("sign byte {t}")),
        };
        let Blob(bytes) = Blob::read(r).map_err(|e| e.to_string())?;
        if bytes.len() > MAX_INT_BYTES {
            return Err(format!("an integer share of {} bytes", bytes.len()));
        }
        let v = Integer::from_digits(&bytes, Order::Lsf);
        data.push(if negative { -v } else { v });
    }
    IntMatrix::from_vec(shape.0, shape.1, data).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use spnn_crypto::SecureRng;

    #[test]
    fn share_records_round_trip_bit_exactly() {
        let mut rng = SecureRng::insecure_from_seed_for_tests(3);
        let mats: Vec<RingMatrix> = (0..3).map(|_| RingMatrix::random(5, 7, &mut rng)).collect();
        let bytes = ShareRecord::to_bytes(&mats.iter().collect::<Vec<_>>()).unwrap();
        let back = ShareRecord::load(&bytes, 3, (5, 7)).unwrap();
        assert_eq!(back, mats);
        assert!(
            ShareRecord::load(&bytes, 3, (7, 5)).is_err(),
            "wrong shape must be refused"
        );
        assert!(ShareRecord::load(&bytes[..bytes.len() / 2], 3, (5, 7)).is_err());
    }

    #[test]
    fn integer_shares_round_trip_and_malformed_ones_are_refused() {
        let m = IntMatrix::from_vec(
            2,
            2,
            vec![
                Integer::from(-5),
                Integer::from(1) << 200u32,
                Integer::new(),
                -(Integer::from(3) << 100u32),
            ],
        )
        .unwrap();
        let mut bytes = Vec::new();
        encode_int_matrix(&m, &mut bytes);
        let mut r = Reader::new(&bytes);
        assert_eq!(read_int_matrix(&mut r, (2, 2)).unwrap(), m);
        r.finish().unwrap();
        assert!(read_int_matrix(&mut Reader::new(&bytes), (1, 4)).is_err());
        for cut in 0..bytes.len() {
            assert!(read_int_matrix(&mut Reader::new(&bytes[..cut]), (2, 2)).is_err());
        }
        let mut bad_sign = bytes.clone();
        bad_sign[16] = 7;
        assert!(read_int_matrix(&mut Reader::new(&bad_sign), (2, 2)).is_err());
    }
}
