//! Batches of sample ids for burn's data loaders and burn-train's `Learner` (feature `train`).
//!
//! A private model's input is a list of sample ids — the features stay at the holders — so the
//! server's dataset holds ids and labels only. [`id_dataset`] builds it from the server's label
//! table; [`IdBatcher`] turns a minibatch of [`IdSample`]s into an [`IdBatch`]: the ids for the
//! private layer and the class targets as a tensor on the training device.

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::InMemDataset;
use burn::tensor::{Device, Int, Tensor, TensorData};
use spnn_data::Table;

use crate::error::{Result, SpnnError};

/// One sample as the server knows it: its id and its class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdSample {
    /// The sample's id (every holder has its features).
    pub id: u64,
    /// Its class index.
    pub label: i64,
}

/// A minibatch: the ids for the private layer and their classes.
#[derive(Clone, Debug)]
pub struct IdBatch {
    /// Sample ids, in batch order.
    pub ids: Vec<u64>,
    /// Class indices `[batch]`, on the device the loader batches for.
    pub targets: Tensor<1, Int>,
}

/// Batches [`IdSample`]s into [`IdBatch`]es.
#[derive(Clone, Copy, Debug, Default)]
pub struct IdBatcher;

impl Batcher<IdSample, IdBatch> for IdBatcher {
    fn batch(&self, items: Vec<IdSample>, device: &Device) -> IdBatch {
        let labels: Vec<i64> = items.iter().map(|s| s.label).collect();
        let n = labels.len();
        IdBatch {
            ids: items.iter().map(|s| s.id).collect(),
            targets: Tensor::from_data(TensorData::new(labels, [n]), device),
        }
    }
}

/// Batches bare sample ids — for a server that has no labels (they are at a label holder,
/// [`crate::LabelMode::Holder`]): a minibatch is the ids in batch order.
#[derive(Clone, Copy, Debug, Default)]
pub struct IdsOnlyBatcher;

impl Batcher<u64, Vec<u64>> for IdsOnlyBatcher {
    fn batch(&self, items: Vec<u64>, _device: &Device) -> Vec<u64> {
        items
    }
}

/// The sample ids as a dataset for [`IdsOnlyBatcher`].
pub fn ids_dataset(ids: &[u64]) -> InMemDataset<u64> {
    InMemDataset::new(ids.to_vec())
}

/// The samples `ids` of `table` with their labels as class indices, as a dataset for burn's
/// `DataLoaderBuilder`. A label that is not a whole number ≥ 0, or an id the table lacks, is an
/// error naming it.
pub fn id_dataset(table: &Table, ids: &[u64]) -> Result<InMemDataset<IdSample>> {
    let labels = table.gather_labels(ids)?;
    let samples = ids
        .iter()
        .zip(labels)
        .map(|(&id, y)| {
            if y.is_finite() && y >= 0.0 && y.fract() == 0.0 && y < i64::MAX as f32 {
                Ok(IdSample {
                    id,
                    label: y as i64,
                })
            } else {
                Err(SpnnError::Config(format!(
                    "sample {id} has label {y}: class labels must be whole numbers >= 0"
                )))
            }
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(InMemDataset::new(samples))
}

#[cfg(test)]
mod tests {
    use burn::data::dataset::Dataset;

    use super::*;

    #[test]
    fn ids_and_classes_travel_together() {
        let table = spnn_data::embedded::breast_cancer();
        let ids = [5u64, 0, 568];
        let data = id_dataset(&table, &ids).unwrap();
        let labels = table.gather_labels(&ids).unwrap();
        let items: Vec<IdSample> = (0..data.len()).map(|i| data.get(i).unwrap()).collect();
        assert_eq!(items.iter().map(|s| s.id).collect::<Vec<_>>(), ids);
        let batch = IdBatcher.batch(items, &Device::flex());
        assert_eq!(batch.ids, ids);
        let targets: Vec<i64> = batch.targets.into_data().iter::<i64>().collect();
        assert_eq!(
            targets,
            labels.iter().map(|&y| y as i64).collect::<Vec<_>>()
        );
    }

    #[test]
    fn labels_that_are_not_classes_and_unknown_ids_are_refused() {
        let table = Table::new(
            vec![1, 2],
            vec!["x".into()],
            vec![0.0, 0.0],
            Some(vec![0.5, 1.0]),
        )
        .unwrap();
        let e = id_dataset(&table, &[1]).err().unwrap().to_string();
        assert!(e.contains("sample 1 has label 0.5"), "{e}");
        assert!(id_dataset(&table, &[2]).is_ok());
        assert!(id_dataset(&table, &[3]).is_err());
    }
}
