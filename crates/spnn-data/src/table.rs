//! [`Table`]: samples with ids, named feature columns and optional labels.

use std::collections::HashMap;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::error::{DataError, Result};

/// A dense table: one row per sample id, `f32` features in named columns, optional labels.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    ids: Vec<u64>,
    columns: Vec<String>,
    data: Vec<f32>,
    labels: Option<Vec<f32>>,
    index: HashMap<u64, usize>,
}

impl Table {
    /// Builds a table; checks shapes, duplicate ids and column names, and non-finite values.
    pub fn new(
        ids: Vec<u64>,
        columns: Vec<String>,
        data: Vec<f32>,
        labels: Option<Vec<f32>>,
    ) -> Result<Self> {
        if ids.len() * columns.len() != data.len() {
            return Err(DataError::Invalid(format!(
                "{} ids x {} columns but {} values",
                ids.len(),
                columns.len(),
                data.len()
            )));
        }
        if let Some(l) = &labels
            && l.len() != ids.len()
        {
            return Err(DataError::Invalid(format!(
                "{} labels for {} ids",
                l.len(),
                ids.len()
            )));
        }
        let mut index = HashMap::with_capacity(ids.len());
        for (row, &id) in ids.iter().enumerate() {
            if index.insert(id, row).is_some() {
                return Err(DataError::Invalid(format!("duplicate sample id {id}")));
            }
        }
        for (i, c) in columns.iter().enumerate() {
            if columns[..i].contains(c) {
                return Err(DataError::Invalid(format!("duplicate column {c:?}")));
            }
        }
        if let Some(pos) = data.iter().position(|v| !v.is_finite()) {
            return Err(DataError::Invalid(format!(
                "non-finite value in row {} column {:?}",
                pos / columns.len().max(1),
                columns[pos % columns.len().max(1)]
            )));
        }
        Ok(Self {
            ids,
            columns,
            data,
            labels,
            index,
        })
    }

    /// Sample ids, in row order.
    pub fn ids(&self) -> &[u64] {
        &self.ids
    }

    /// Column names.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.ids.len()
    }

    /// Number of feature columns.
    pub fn cols(&self) -> usize {
        self.columns.len()
    }

    /// The features, row-major.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// The labels, if this table has them.
    pub fn labels(&self) -> Option<&[f32]> {
        self.labels.as_deref()
    }

    /// The row of sample `id`.
    pub fn row_of(&self, id: u64) -> Result<usize> {
        self.index.get(&id).copied().ok_or(DataError::UnknownId(id))
    }

    /// The features of sample `id`.
    pub fn features(&self, id: u64) -> Result<&[f32]> {
        let r = self.row_of(id)?;
        Ok(&self.data[r * self.cols()..(r + 1) * self.cols()])
    }

    /// Features of `ids`, row-major (`ids.len() × cols`).
    pub fn gather(&self, ids: &[u64]) -> Result<Vec<f32>> {
        let mut out = Vec::with_capacity(ids.len() * self.cols());
        for &id in ids {
            out.extend_from_slice(self.features(id)?);
        }
        Ok(out)
    }

    /// The rows of `source_ids`, in that order, renumbered `0, 1, …` — a table aligned by
    /// private set intersection (`spnn align`), whose position `i` is the same sample at every
    /// party. Refuses an id this table lacks, and an id listed twice (it would shift every
    /// later row against the other parties').
    pub fn realigned(&self, source_ids: &[u64]) -> Result<Table> {
        crate::csv::check_distinct(source_ids)?;
        let data = self.gather(source_ids)?;
        let labels = match &self.labels {
            Some(_) => Some(self.gather_labels(source_ids)?),
            None => None,
        };
        Table::new(
            (0..source_ids.len() as u64).collect(),
            self.columns.clone(),
            data,
            labels,
        )
    }

    /// Labels of `ids`.
    pub fn gather_labels(&self, ids: &[u64]) -> Result<Vec<f32>> {
        let labels = self
            .labels
            .as_ref()
            .ok_or_else(|| DataError::Invalid("this table has no labels".into()))?;
        ids.iter().map(|&id| Ok(labels[self.row_of(id)?])).collect()
    }

    /// The tables side by side: the columns of every table, in order, for the ids of the first
    /// (which every other table must have), with the first table's labels. The centralised view
    /// of a vertical partition — what no party of a deployment has; for plaintext references.
    pub fn join_columns(tables: &[Table]) -> Result<Table> {
        let first = tables
            .first()
            .ok_or_else(|| DataError::Invalid("no tables to join".into()))?;
        let ids = first.ids.clone();
        let columns = tables.iter().flat_map(|t| t.columns.clone()).collect();
        let blocks = tables
            .iter()
            .map(|t| t.gather(&ids))
            .collect::<Result<Vec<_>>>()
            .map_err(|e| DataError::Misaligned(e.to_string()))?;
        let mut data = Vec::with_capacity(blocks.iter().map(Vec::len).sum());
        for r in 0..ids.len() {
            for (t, b) in tables.iter().zip(&blocks) {
                data.extend_from_slice(&b[r * t.cols()..(r + 1) * t.cols()]);
            }
        }
        Table::new(ids, columns, data, first.labels.clone())
    }

    /// The table restricted to `names`, in that order; labels dropped unless `keep_labels`.
    pub fn select_columns(&self, names: &[String], keep_labels: bool) -> Result<Table> {
        let idx: Vec<usize> = names
            .iter()
            .map(|n| {
                self.columns
                    .iter()
                    .position(|c| c == n)
                    .ok_or_else(|| DataError::UnknownColumn(n.clone()))
            })
            .collect::<Result<_>>()?;
        let data = (0..self.rows())
            .flat_map(|r| idx.iter().map(move |&c| (r, c)))
            .map(|(r, c)| self.data[r * self.cols() + c])
            .collect();
        Table::new(
            self.ids.clone(),
            names.to_vec(),
            data,
            if keep_labels {
                self.labels.clone()
            } else {
                None
            },
        )
    }

    /// Deterministic train/test split of the ids: a ChaCha8 shuffle by `seed`, the last
    /// `⌈test_fraction · n⌉` ids form the test set.
    pub fn split_ids(&self, test_fraction: f64, seed: u64) -> (Vec<u64>, Vec<u64>) {
        let mut ids = self.ids.clone();
        ids.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
        let test = ((ids.len() as f64) * test_fraction.clamp(0.0, 1.0)).ceil() as usize;
        let train = ids.split_off(ids.len() - test);
        (ids, train)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> Table {
        Table::new(
            vec![10, 11, 12],
            vec!["a".into(), "b".into()],
            vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            Some(vec![0.0, 1.0, 0.0]),
        )
        .unwrap()
    }

    #[test]
    fn realigned_rows_follow_the_alignment_and_refuse_repeats_and_strangers() {
        let t = small();
        let r = t.realigned(&[12, 10]).unwrap();
        assert_eq!(r.ids(), &[0, 1]);
        assert_eq!(r.data(), &[5.0, 6.0, 1.0, 2.0]);
        assert_eq!(r.labels().unwrap(), &[0.0, 0.0]);
        let twice = t.realigned(&[12, 10, 12]).unwrap_err().to_string();
        assert!(twice.contains("sample 12 is listed twice"), "{twice}");
        assert_eq!(t.realigned(&[99]).unwrap_err(), DataError::UnknownId(99));
        let raw = crate::csv::RawTable {
            source: "x.csv".into(),
            ids: vec![10, 11],
            columns: [("a".to_string(), vec!["p".to_string(), "q".to_string()])].into(),
        };
        assert_eq!(
            raw.realigned(&[11]).unwrap().columns["a"],
            vec!["q".to_string()]
        );
        assert!(raw.realigned(&[11, 11]).is_err() && raw.realigned(&[7]).is_err());
    }

    #[test]
    fn gather_and_select() {
        let t = small();
        assert_eq!(t.gather(&[12, 10]).unwrap(), vec![5.0, 6.0, 1.0, 2.0]);
        assert_eq!(t.gather_labels(&[11]).unwrap(), vec![1.0]);
        assert_eq!(t.gather(&[99]).unwrap_err(), DataError::UnknownId(99));
        let b = t.select_columns(&["b".into()], false).unwrap();
        assert_eq!(b.data(), &[2.0, 4.0, 6.0]);
        assert!(b.labels().is_none());
        assert!(t.select_columns(&["z".into()], false).is_err());
    }

    #[test]
    fn joined_columns_are_the_selections_side_by_side() {
        let t = small();
        let a = t.select_columns(&["a".into()], true).unwrap();
        // The second table in another row order: rows are matched by id, not position.
        let b = Table::new(
            vec![12, 10, 11],
            vec!["b".into()],
            vec![6.0, 2.0, 4.0],
            None,
        )
        .unwrap();
        assert_eq!(Table::join_columns(&[a.clone(), b]).unwrap(), t);
        let missing = Table::new(vec![10], vec!["c".into()], vec![0.0], None).unwrap();
        assert!(matches!(
            Table::join_columns(&[a, missing]),
            Err(DataError::Misaligned(_))
        ));
        assert!(Table::join_columns(&[]).is_err());
    }

    #[test]
    fn invalid_tables_are_refused() {
        assert!(Table::new(vec![1, 1], vec!["a".into()], vec![0.0, 0.0], None).is_err());
        assert!(Table::new(vec![1], vec!["a".into()], vec![f32::NAN], None).is_err());
        assert!(Table::new(vec![1], vec!["a".into(), "a".into()], vec![0.0, 0.0], None).is_err());
        assert!(Table::new(vec![1], vec!["a".into()], vec![0.0], Some(vec![])).is_err());
    }

    #[test]
    fn split_is_a_deterministic_partition() {
        let t = Table::new((0..100).collect(), vec!["a".into()], vec![0.0; 100], None).unwrap();
        let (tr, te) = t.split_ids(0.2, 5);
        assert_eq!((tr.len(), te.len()), (80, 20));
        assert_eq!(t.split_ids(0.2, 5), (tr.clone(), te.clone()));
        let mut all: Vec<u64> = tr.into_iter().chain(te).collect();
        all.sort();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
    }
}
