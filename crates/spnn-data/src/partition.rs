//! Vertical partitions: which holder owns which feature columns, and per-holder preprocessing.
//!
//! Every holder standardises its own columns with statistics computed on its own training rows
//! only ([`Standardizer::fit`]); no party sees another's statistics.

use crate::error::{DataError, Result};
use crate::table::Table;

/// The column lists of the holders, in holder order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerticalPartition {
    holders: Vec<Vec<String>>,
}

impl VerticalPartition {
    /// A partition from explicit column lists; a column may belong to one holder only.
    pub fn new(holders: Vec<Vec<String>>) -> Result<Self> {
        if holders.len() < 2 {
            return Err(DataError::Invalid(format!(
                "{} holders; SPNN needs at least 2",
                holders.len()
            )));
        }
        let mut seen = std::collections::HashSet::new();
        for (h, cols) in holders.iter().enumerate() {
            if cols.is_empty() {
                return Err(DataError::Invalid(format!("holder {h} has no columns")));
            }
            for c in cols {
                if !seen.insert(c) {
                    return Err(DataError::Invalid(format!(
                        "column {c:?} given to two holders"
                    )));
                }
            }
        }
        Ok(Self { holders })
    }

    /// Splits `columns` into `k` contiguous blocks whose sizes differ by at most one.
    pub fn even(columns: &[String], k: usize) -> Result<Self> {
        if k == 0 || k > columns.len() {
            return Err(DataError::Invalid(format!(
                "cannot split {} columns among {k} holders",
                columns.len()
            )));
        }
        let (q, r) = (columns.len() / k, columns.len() % k);
        let mut start = 0;
        let holders = (0..k)
            .map(|h| {
                let len = q + usize::from(h < r);
                let block = columns[start..start + len].to_vec();
                start += len;
                block
            })
            .collect();
        Self::new(holders)
    }

    /// Number of holders.
    pub fn holders(&self) -> usize {
        self.holders.len()
    }

    /// The columns of holder `h`.
    pub fn columns(&self, h: usize) -> &[String] {
        &self.holders[h]
    }

    /// Widths `d_h` of the holders' blocks.
    pub fn widths(&self) -> Vec<usize> {
        self.holders.iter().map(Vec::len).collect()
    }

    /// Holder `h`'s part of `table` (labels dropped).
    pub fn holder_table(&self, table: &Table, h: usize) -> Result<Table> {
        table.select_columns(&self.holders[h], false)
    }

    /// Every holder's part of `table`, standardised by that holder's own statistics over the
    /// rows `fit_ids` (its training rows). This is what each holder computes locally.
    pub fn standardized_tables(&self, table: &Table, fit_ids: &[u64]) -> Result<Vec<Table>> {
        (0..self.holders())
            .map(|h| {
                let own = self.holder_table(table, h)?;
                Standardizer::fit(&own, fit_ids)?.transform(&own)
            })
            .collect()
    }
}

/// Per-column mean and standard deviation of one holder's own columns.
#[derive(Clone, Debug, PartialEq)]
pub struct Standardizer {
    mean: Vec<f32>,
    std: Vec<f32>,
}

impl Standardizer {
    /// Statistics of `table`'s columns over the rows `ids` (the holder's training ids).
    /// Constant columns get a standard deviation of 1.
    pub fn fit(table: &Table, ids: &[u64]) -> Result<Self> {
        if ids.is_empty() {
            return Err(DataError::Invalid("cannot standardise on zero rows".into()));
        }
        let d = table.cols();
        let mut sum = vec![0f64; d];
        let mut sq = vec![0f64; d];
        for &id in ids {
            for (j, &v) in table.features(id)?.iter().enumerate() {
                sum[j] += v as f64;
                sq[j] += (v as f64) * (v as f64);
            }
        }
        let n = ids.len() as f64;
        let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
        let std = sq
            .iter()
            .zip(&mean)
            .map(|(s, m)| {
                let var = (s / n - m * m).max(0.0);
                if var > 1e-12 { var.sqrt() as f32 } else { 1.0 }
            })
            .collect();
        Ok(Self {
            mean: mean.into_iter().map(|m| m as f32).collect(),
            std,
        })
    }

    /// `(x − mean) / std` applied to every row of `table`.
    pub fn transform(&self, table: &Table) -> Result<Table> {
        if table.cols() != self.mean.len() {
            return Err(DataError::Invalid(format!(
                "standardiser for {} columns applied to {}",
                self.mean.len(),
                table.cols()
            )));
        }
        let d = table.cols();
        let data = table
            .data()
            .iter()
            .enumerate()
            .map(|(i, v)| (v - self.mean[i % d]) / self.std[i % d])
            .collect();
        Table::new(
            table.ids().to_vec(),
            table.columns().to_vec(),
            data,
            table.labels().map(<[f32]>::to_vec),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embedded::breast_cancer;

    #[test]
    fn even_partition_covers_every_column_once() {
        let t = breast_cancer();
        for k in 2..=4 {
            let p = VerticalPartition::even(t.columns(), k).unwrap();
            let mut all: Vec<String> = (0..k).flat_map(|h| p.columns(h).to_vec()).collect();
            assert_eq!(all.len(), 30);
            all.dedup();
            assert_eq!(all.len(), 30);
            assert!(p.widths().iter().all(|&w| w == 30 / k || w == 30 / k + 1));
        }
        assert!(VerticalPartition::even(t.columns(), 31).is_err());
        assert!(VerticalPartition::new(vec![vec!["a".into()], vec!["a".into()]]).is_err());
    }

    #[test]
    fn standardised_training_columns_have_zero_mean_and_unit_variance() {
        let t = breast_cancer();
        let p = VerticalPartition::even(t.columns(), 2).unwrap();
        let h = p.holder_table(&t, 1).unwrap();
        let (train, _) = t.split_ids(0.2, 1);
        let s = Standardizer::fit(&h, &train)
            .unwrap()
            .transform(&h)
            .unwrap();
        let x = s.gather(&train).unwrap();
        for j in 0..s.cols() {
            let col: Vec<f64> = x
                .iter()
                .skip(j)
                .step_by(s.cols())
                .map(|&v| v as f64)
                .collect();
            let mean = col.iter().sum::<f64>() / col.len() as f64;
            let var = col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / col.len() as f64;
            assert!(
                mean.abs() < 1e-4 && (var - 1.0).abs() < 1e-3,
                "column {j}: {mean} {var}"
            );
        }
    }
}
