//! Each party's table, from the deployment file. Every party computes the same public split
//! (sample ids sorted, shuffled by `training.split_seed`) and fits its preprocessing on its own
//! training rows only.

use spnn_data::csv::{
    CsvOptions, FeatureEncoder, RawTable, binary_labels, numeric_labels, read_csv,
};
use spnn_data::embedded::breast_cancer;
use spnn_data::{Standardizer, Table};

use std::path::Path;

use crate::config::{Data, Deployment, Labels};

/// The embedded breast-cancer data, usable as `path = "embedded:breast_cancer"`.
pub const EMBEDDED_BREAST_CANCER: &str = "embedded:breast_cancer";

/// The train/test split of `ids`, the same at every party: sorted, then shuffled by `seed`.
pub fn split(
    ids: &[u64],
    test_fraction: f64,
    seed: u64,
) -> spnn_data::Result<(Vec<u64>, Vec<u64>)> {
    let mut sorted = ids.to_vec();
    sorted.sort_unstable();
    let probe = Table::new(sorted, vec![], vec![], None)?;
    Ok(probe.split_ids(test_fraction, seed))
}

fn options(d: &Data) -> CsvOptions {
    CsvOptions {
        header: d.header,
        names: d.names.clone(),
        id_column: d.id_column.clone(),
        ..Default::default()
    }
}

/// The source ids of an alignment file `spnn align` wrote (`id,source_id`, ids `0 … n−1` in
/// order), by position.
pub fn read_alignment(path: &Path) -> spnn_data::Result<Vec<u64>> {
    let opts = CsvOptions {
        id_column: Some("id".into()),
        ..Default::default()
    };
    let column = "source_id".to_string();
    let raw = read_csv(path, &opts, std::slice::from_ref(&column))?;
    if let Some(row) = raw
        .ids
        .iter()
        .enumerate()
        .position(|(i, &id)| id != i as u64)
    {
        return Err(spnn_data::DataError::Invalid(format!(
            "{}: row {} has id {}, expected {row}: an alignment numbers its rows 0, 1, …",
            path.display(),
            row + 1,
            raw.ids[row]
        )));
    }
    raw.columns[&column]
        .iter()
        .enumerate()
        .map(|(i, v)| {
            v.trim().parse().map_err(|_| {
                spnn_data::DataError::Invalid(format!(
                    "{}: row {}: source_id {v:?} is not an id",
                    path.display(),
                    i + 1
                ))
            })
        })
        .collect()
}

/// The source ids `data` is aligned to, if it names an alignment file.
fn alignment(dep: &Deployment, data: &Data) -> spnn_data::Result<Option<Vec<u64>>> {
    data.aligned
        .as_deref()
        .map(|p| read_alignment(&dep.resolve(Path::new(p))))
        .transpose()
}

/// A table read from `data`, re-numbered by its alignment if it has one.
fn aligned_table(dep: &Deployment, data: &Data, table: Table) -> spnn_data::Result<Table> {
    match alignment(dep, data)? {
        Some(source) => table.realigned(&source),
        None => Ok(table),
    }
}

/// The ids `data` holds before any alignment (what `spnn align` intersects).
pub fn source_ids(dep: &Deployment, data: &Data) -> spnn_data::Result<Vec<u64>> {
    if data.path == EMBEDDED_BREAST_CANCER {
        return Ok(breast_cancer().ids().to_vec());
    }
    record_ids(data, &dep.resolve(data.path.as_ref()))
}

/// A holder's preprocessed features: its columns of every sample (of the aligned samples,
/// renumbered, if its data names an alignment).
pub fn holder_table(dep: &Deployment, data: &Data) -> spnn_data::Result<Table> {
    let t = &dep.training;
    if data.path == EMBEDDED_BREAST_CANCER {
        let all = breast_cancer();
        let own = aligned_table(dep, data, all.select_columns(&data.columns, false)?)?;
        let (train, _) = split(own.ids(), t.test_fraction, t.split_seed)?;
        return Standardizer::fit(&own, &train)?.transform(&own);
    }
    let (raw, encoder) = csv_encoder(dep, data)?;
    encoder.transform(&raw)
}

/// A holder's CSV data and the encoder fitted on its training rows.
fn csv_encoder(dep: &Deployment, data: &Data) -> spnn_data::Result<(RawTable, FeatureEncoder)> {
    let t = &dep.training;
    let opts = options(data);
    let mut raw = read_csv(&dep.resolve(data.path.as_ref()), &opts, &data.columns)?;
    if let Some(source) = alignment(dep, data)? {
        raw = raw.realigned(&source)?;
    }
    let (train, _) = split(&raw.ids, t.test_fraction, t.split_seed)?;
    let encoder = FeatureEncoder::fit(&raw, &data.columns, &data.categorical, &train, &opts)?;
    Ok((raw, encoder))
}

/// A holder's new, unlabelled records at `path` (a CSV with its data's columns and id column),
/// preprocessed exactly as its training data: the encoder is fitted on the training rows of
/// the data the model was trained on and applied to the new rows.
pub fn holder_scoring_table(
    dep: &Deployment,
    data: &Data,
    path: &std::path::Path,
) -> crate::Result<Table> {
    if data.path == EMBEDDED_BREAST_CANCER {
        return Err(crate::CliError::Usage(
            "scoring new records needs the holder's training data in a CSV file (its encoder \
             is fitted on it), not embedded:breast_cancer"
                .into(),
        ));
    }
    let (_, encoder) = csv_encoder(dep, data)?;
    let new = read_csv(path, &options(data), &data.columns)?;
    Ok(encoder.transform(&new)?)
}

/// The ids of a holder's new records at `path` (read with its data's CSV options), what
/// `spnn align --score` intersects.
pub fn record_ids(data: &Data, path: &Path) -> spnn_data::Result<Vec<u64>> {
    Ok(read_csv(path, &options(data), &[])?.ids)
}

/// The sample ids listed in the `id` column of the CSV file at `path` (the records to score).
pub fn ids_to_score(path: &std::path::Path) -> crate::Result<Vec<u64>> {
    let opts = CsvOptions {
        id_column: Some("id".into()),
        ..Default::default()
    };
    Ok(read_csv(path, &opts, &[])?.ids)
}

/// The label owner's sample ids and labels (a table without feature columns).
pub fn label_table(dep: &Deployment) -> crate::Result<Table> {
    let l = dep.labels()?;
    Ok(read_labels(dep, l)?)
}

/// The sample ids the server trains on: the label table's with the labels at the server, else
/// its own ids file (`parties.server.ids`). A table without columns or labels.
pub fn server_ids(dep: &Deployment) -> crate::Result<Table> {
    if dep.label_mode()? == spnn_burn::LabelMode::Server {
        let labels = label_table(dep)?;
        return Ok(Table::new(labels.ids().to_vec(), vec![], vec![], None)?);
    }
    let d = dep.server_ids()?;
    Ok(Table::new(source_ids(dep, d)?, vec![], vec![], None)?)
}

/// The labels `l` describes.
fn read_labels(dep: &Deployment, l: &Labels) -> spnn_data::Result<Table> {
    if l.data.path == EMBEDDED_BREAST_CANCER {
        let all = breast_cancer();
        let labels = all.labels().expect("labelled").to_vec();
        let table = Table::new(all.ids().to_vec(), vec![], vec![], Some(labels))?;
        return aligned_table(dep, &l.data, table);
    }
    let mut raw = read_csv(
        &dep.resolve(l.data.path.as_ref()),
        &options(&l.data),
        std::slice::from_ref(&l.column),
    )?;
    if let Some(source) = alignment(dep, &l.data)? {
        raw = raw.realigned(&source)?;
    }
    let y = match &l.positive {
        Some(positive) => binary_labels(&raw, &l.column, positive)?,
        None => numeric_labels(&raw, &l.column)?,
    };
    Table::new(raw.ids, vec![], vec![], Some(y))
}
