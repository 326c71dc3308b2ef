//! Reading a holder's columns from a CSV file, and turning them into model features.
//!
//! **Reading** ([`read_csv`]): a delimiter, an optional header (or given column names), fields
//! trimmed of spaces. The id column names each sample; without one, sample ids are row numbers
//! (0-based), which only align across holders whose files list the same samples in the same
//! order. A row with the wrong number of fields, an id that is not an integer or that repeats,
//! and a requested column that the file does not have are errors naming the file and line.
//!
//! **Encoding** ([`FeatureEncoder`]), the documented policy:
//! - A column is *numeric* unless it is listed as categorical or one of its (non-missing)
//!   training values does not parse as a number; otherwise it is *categorical*.
//! - Numeric: standardised with the mean and standard deviation of the holder's own training
//!   rows (a constant column gets a standard deviation of 1); a missing value becomes the
//!   training mean, i.e. 0 after standardisation.
//! - Categorical: one-hot over the levels seen in the training rows, sorted; a missing value is
//!   its own level (`?`-like tokens are listed in [`CsvOptions::missing`]); a level never seen
//!   in training encodes as all zeros.
//!
//! Every statistic is computed by the holder on its own columns and training rows; no party sees
//! another's.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::BufRead;
use std::path::Path;

use crate::error::{DataError, Result};
use crate::table::Table;

/// How to read a CSV file.
#[derive(Clone, Debug, PartialEq)]
pub struct CsvOptions {
    /// Field delimiter (default `,`).
    pub delimiter: char,
    /// Whether the first line holds the column names (default true).
    pub header: bool,
    /// Column names for a file without header.
    pub names: Option<Vec<String>>,
    /// The id column; `None` numbers the rows from 0.
    pub id_column: Option<String>,
    /// Tokens that mean "missing" (default `""`, `?`, `NA`).
    pub missing: Vec<String>,
}

impl Default for CsvOptions {
    fn default() -> Self {
        Self {
            delimiter: ',',
            header: true,
            names: None,
            id_column: None,
            missing: vec![String::new(), "?".into(), "NA".into()],
        }
    }
}

/// Raw string columns of a CSV file, with sample ids.
#[derive(Clone, Debug, PartialEq)]
pub struct RawTable {
    /// The file it came from (for messages).
    pub source: String,
    /// Sample ids in row order.
    pub ids: Vec<u64>,
    /// The columns that were read, by name, values in row order.
    pub columns: BTreeMap<String, Vec<String>>,
}

impl RawTable {
    /// The rows of `source_ids`, in that order, renumbered `0, 1, …` (see
    /// [`crate::Table::realigned`]). Refuses an id the file lacks, and an id listed twice.
    pub fn realigned(&self, source_ids: &[u64]) -> Result<RawTable> {
        check_distinct(source_ids)?;
        let index: std::collections::HashMap<u64, usize> = self
            .ids
            .iter()
            .enumerate()
            .map(|(r, &id)| (id, r))
            .collect();
        let rows = source_ids
            .iter()
            .map(|id| index.get(id).copied().ok_or(DataError::UnknownId(*id)))
            .collect::<Result<Vec<usize>>>()?;
        Ok(RawTable {
            source: self.source.clone(),
            ids: (0..rows.len() as u64).collect(),
            columns: self
                .columns
                .iter()
                .map(|(name, values)| {
                    (
                        name.clone(),
                        rows.iter().map(|&r| values[r].clone()).collect(),
                    )
                })
                .collect(),
        })
    }
}

/// Refuses a list of sample ids that names one twice.
pub(crate) fn check_distinct(ids: &[u64]) -> Result<()> {
    let mut seen = std::collections::HashSet::with_capacity(ids.len());
    match ids.iter().find(|id| !seen.insert(**id)) {
        Some(id) => Err(DataError::Invalid(format!(
            "sample {id} is listed twice in an alignment: every later row would be shifted \
             against the other parties'"
        ))),
        None => Ok(()),
    }
}

/// Reads `wanted` columns (and the id column) of a CSV file, plain or gzip-compressed (`.gz`).
pub fn read_csv(path: &Path, options: &CsvOptions, wanted: &[String]) -> Result<RawTable> {
    let file = std::fs::File::open(path).map_err(|e| DataError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    let reader: Box<dyn BufRead> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(std::io::BufReader::new(flate2::read::GzDecoder::new(file)))
    } else {
        Box::new(std::io::BufReader::new(file))
    };
    parse_csv(reader, &path.display().to_string(), options, wanted)
}

/// [`read_csv`] from any reader; `source` names it in errors.
pub fn parse_csv(
    reader: impl BufRead,
    source: &str,
    options: &CsvOptions,
    wanted: &[String],
) -> Result<RawTable> {
    let mut lines = reader.lines().enumerate();
    let err = |line: usize, reason: String| DataError::Parse {
        file: source.into(),
        line,
        reason,
    };
    let split = |s: &str| -> Vec<String> {
        s.split(options.delimiter)
            .map(|f| f.trim().to_string())
            .collect()
    };
    let names: Vec<String> = match (&options.names, options.header) {
        (Some(n), false) => n.clone(),
        (None, true) | (Some(_), true) => {
            let (_, first) = lines.next().ok_or_else(|| err(1, "empty file".into()))?;
            let header = split(&first.map_err(|e| err(1, e.to_string()))?);
            options.names.clone().unwrap_or(header)
        }
        (None, false) => {
            return Err(DataError::Invalid(format!(
                "{source}: no header and no column names given"
            )));
        }
    };
    let index = |name: &str| {
        names
            .iter()
            .position(|n| n == name)
            .ok_or_else(|| DataError::UnknownColumn(format!("{name} (in {source})")))
    };
    let wanted_idx: Vec<(String, usize)> = wanted
        .iter()
        .map(|w| Ok((w.clone(), index(w)?)))
        .collect::<Result<_>>()?;
    let id_idx = options.id_column.as_deref().map(index).transpose()?;
    let mut columns: BTreeMap<String, Vec<String>> =
        wanted.iter().map(|w| (w.clone(), Vec::new())).collect();
    let mut ids = Vec::new();
    let mut seen = HashSet::new();
    let mut row = 0u64;
    for (i, line) in lines {
        let line_no = i + 1;
        let line = line.map_err(|e| err(line_no, e.to_string()))?;
        if line.trim().is_empty() {
            continue;
        }
        let fields = split(&line);
        if fields.len() != names.len() {
            return Err(err(
                line_no,
                format!("{} fields, expected {}", fields.len(), names.len()),
            ));
        }
        let id = match id_idx {
            Some(c) => fields[c].parse::<u64>().map_err(|_| {
                err(
                    line_no,
                    format!("id {:?} is not a non-negative integer", fields[c]),
                )
            })?,
            None => row,
        };
        if !seen.insert(id) {
            return Err(err(line_no, format!("sample id {id} appears twice")));
        }
        ids.push(id);
        for (name, c) in &wanted_idx {
            columns
                .get_mut(name)
                .expect("initialised")
                .push(fields[*c].clone());
        }
        row += 1;
    }
    Ok(RawTable {
        source: source.into(),
        ids,
        columns,
    })
}

/// Checks that every holder's file lists the same sample ids (in any order).
pub fn check_aligned(tables: &[&RawTable]) -> Result<()> {
    let Some(first) = tables.first() else {
        return Ok(());
    };
    let reference: HashSet<u64> = first.ids.iter().copied().collect();
    for t in &tables[1..] {
        if t.ids.len() != first.ids.len() {
            return Err(DataError::Misaligned(format!(
                "{} has {} samples, {} has {}",
                first.source,
                first.ids.len(),
                t.source,
                t.ids.len()
            )));
        }
        if let Some(id) = t.ids.iter().find(|id| !reference.contains(id)) {
            return Err(DataError::Misaligned(format!(
                "sample id {id} of {} is missing from {}",
                t.source, first.source
            )));
        }
    }
    Ok(())
}

/// How one column is encoded.
#[derive(Clone, Debug, PartialEq)]
pub enum ColumnEncoding {
    /// Standardised number.
    Numeric {
        /// Training mean.
        mean: f64,
        /// Training standard deviation (1 for a constant column).
        std: f64,
    },
    /// One-hot over the training levels.
    Categorical {
        /// The levels, sorted.
        levels: Vec<String>,
    },
}

/// The per-column encodings a holder fitted on its own training rows.
#[derive(Clone, Debug, PartialEq)]
pub struct FeatureEncoder {
    columns: Vec<(String, ColumnEncoding)>,
    missing: HashSet<String>,
}

const MISSING_LEVEL: &str = "<missing>";

impl FeatureEncoder {
    /// Fits the encodings of `columns` of `raw` on the rows `train_ids` (module docs for the
    /// policy). `categorical` forces columns to be one-hot even if they look numeric.
    pub fn fit(
        raw: &RawTable,
        columns: &[String],
        categorical: &[String],
        train_ids: &[u64],
        options: &CsvOptions,
    ) -> Result<Self> {
        let missing: HashSet<String> = options.missing.iter().cloned().collect();
        let row_of: HashMap<u64, usize> =
            raw.ids.iter().enumerate().map(|(r, &id)| (id, r)).collect();
        let rows: Vec<usize> = train_ids
            .iter()
            .map(|id| row_of.get(id).copied().ok_or(DataError::UnknownId(*id)))
            .collect::<Result<_>>()?;
        if rows.is_empty() {
            return Err(DataError::Invalid(
                "no training rows to fit the encoding on".into(),
            ));
        }
        let encodings = columns
            .iter()
            .map(|name| {
                let values = raw
                    .columns
                    .get(name)
                    .ok_or_else(|| DataError::UnknownColumn(name.clone()))?;
                let present: Vec<&String> = rows
                    .iter()
                    .map(|&r| &values[r])
                    .filter(|v| !missing.contains(*v))
                    .collect();
                let numbers: Option<Vec<f64>> = present
                    .iter()
                    .map(|v| v.parse::<f64>().ok().filter(|x| x.is_finite()))
                    .collect();
                let enc = match numbers {
                    Some(nums) if !categorical.contains(name) && !nums.is_empty() => {
                        let n = nums.len() as f64;
                        let mean = nums.iter().sum::<f64>() / n;
                        let var = nums.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
                        ColumnEncoding::Numeric {
                            mean,
                            std: if var > 1e-12 { var.sqrt() } else { 1.0 },
                        }
                    }
                    _ => {
                        let mut levels: Vec<String> = rows
                            .iter()
                            .map(|&r| {
                                if missing.contains(&values[r]) {
                                    MISSING_LEVEL.to_string()
                                } else {
                                    values[r].clone()
                                }
                            })
                            .collect::<HashSet<_>>()
                            .into_iter()
                            .collect();
                        levels.sort();
                        ColumnEncoding::Categorical { levels }
                    }
                };
                Ok((name.clone(), enc))
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            columns: encodings,
            missing,
        })
    }

    /// The encodings, in column order.
    pub fn columns(&self) -> &[(String, ColumnEncoding)] {
        &self.columns
    }

    /// Names of the encoded features (`name` for numbers, `name=level` for one-hot levels).
    pub fn feature_names(&self) -> Vec<String> {
        self.columns
            .iter()
            .flat_map(|(name, enc)| match enc {
                ColumnEncoding::Numeric { .. } => vec![name.clone()],
                ColumnEncoding::Categorical { levels } => {
                    levels.iter().map(|l| format!("{name}={l}")).collect()
                }
            })
            .collect()
    }

    /// Encodes every row of `raw` into a [`Table`] of features (no labels).
    pub fn transform(&self, raw: &RawTable) -> Result<Table> {
        let names = self.feature_names();
        let n = raw.ids.len();
        let mut data = vec![0f32; n * names.len()];
        let width = names.len();
        let mut offset = 0;
        for (name, enc) in &self.columns {
            let values = raw
                .columns
                .get(name)
                .ok_or_else(|| DataError::UnknownColumn(format!("{name} (in {})", raw.source)))?;
            match enc {
                ColumnEncoding::Numeric { mean, std } => {
                    for (r, v) in values.iter().enumerate() {
                        let x = if self.missing.contains(v) {
                            *mean
                        } else {
                            v.parse::<f64>()
                                .ok()
                                .filter(|x| x.is_finite())
                                .ok_or_else(|| DataError::Parse {
                                    file: raw.source.clone(),
                                    line: r + 1,
                                    reason: format!("column {name}: {v:?} is not a number"),
                                })?
                        };
                        data[r * width + offset] = ((x - mean) / std) as f32;
                    }
                    offset += 1;
                }
                ColumnEncoding::Categorical { levels } => {
                    for (r, v) in values.iter().enumerate() {
                        let level = if self.missing.contains(v) {
                            MISSING_LEVEL
                        } else {
                            v.as_str()
                        };
                        if let Ok(pos) = levels.binary_search_by(|l| l.as_str().cmp(level)) {
                            data[r * width + offset + pos] = 1.0;
                        }
                    }
                    offset += levels.len();
                }
            }
        }
        Table::new(raw.ids.clone(), names, data, None)
    }
}

/// Binary labels from a column: 1 where the value equals `positive`, else 0.
pub fn binary_labels(raw: &RawTable, column: &str, positive: &str) -> Result<Vec<f32>> {
    let values = raw
        .columns
        .get(column)
        .ok_or_else(|| DataError::UnknownColumn(format!("{column} (in {})", raw.source)))?;
    Ok(values
        .iter()
        .map(|v| f32::from(u8::from(v == positive)))
        .collect())
}

/// The labels in `column`, read as numbers (class indices or real values); a value that is not
/// a finite number is an error naming its sample.
pub fn numeric_labels(raw: &RawTable, column: &str) -> Result<Vec<f32>> {
    let values = raw
        .columns
        .get(column)
        .ok_or_else(|| DataError::UnknownColumn(format!("{column} (in {})", raw.source)))?;
    values
        .iter()
        .zip(&raw.ids)
        .map(|(v, id)| match v.trim().parse::<f32>() {
            Ok(y) if y.is_finite() => Ok(y),
            _ => Err(DataError::Invalid(format!(
                "{}: sample {id}: label {v:?} in column {column} is not a finite number",
                raw.source
            ))),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_labels_name_the_sample_that_is_not_a_number() {
        let raw = parse_csv(
            "id,y\n1,2\n2,0.5\n3,x\n".as_bytes(),
            "t.csv",
            &opts(),
            &cols(&["y"]),
        )
        .unwrap();
        let e = numeric_labels(&raw, "y").unwrap_err().to_string();
        assert!(e.contains("sample 3") && e.contains("\"x\""), "{e}");
        let ok = parse_csv(
            "id,y\n1,2\n2,-0.5\n".as_bytes(),
            "t.csv",
            &opts(),
            &cols(&["y"]),
        )
        .unwrap();
        assert_eq!(numeric_labels(&ok, "y").unwrap(), vec![2.0, -0.5]);
    }

    const CSV: &str =
        "id,age,city,income,label\n3,30,Paris,1.5,yes\n1,?,Lyon,2.5,no\n2,50,?,x,yes\n";

    fn opts() -> CsvOptions {
        CsvOptions {
            id_column: Some("id".into()),
            ..Default::default()
        }
    }

    fn cols(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn reads_encodes_and_labels_by_the_documented_policy() {
        let raw = parse_csv(
            CSV.as_bytes(),
            "t.csv",
            &opts(),
            &cols(&["age", "city", "income", "label"]),
        )
        .unwrap();
        assert_eq!(raw.ids, vec![3, 1, 2]);
        let enc =
            FeatureEncoder::fit(&raw, &cols(&["age", "city"]), &[], &[3, 1, 2], &opts()).unwrap();
        assert_eq!(
            enc.feature_names(),
            cols(&["age", "city=<missing>", "city=Lyon", "city=Paris"])
        );
        let t = enc.transform(&raw).unwrap();
        // age: mean of 30 and 50 = 40, std 10; the missing age becomes 0.
        assert_eq!(t.features(3).unwrap(), &[-1.0, 0.0, 0.0, 1.0]);
        assert_eq!(t.features(1).unwrap(), &[0.0, 0.0, 1.0, 0.0]);
        assert_eq!(t.features(2).unwrap(), &[1.0, 1.0, 0.0, 0.0]);
        assert_eq!(
            binary_labels(&raw, "label", "yes").unwrap(),
            vec![1.0, 0.0, 1.0]
        );
        // A non-numeric value makes `income` categorical when fitted on all rows...
        let enc = FeatureEncoder::fit(&raw, &cols(&["income"]), &[], &[3, 1, 2], &opts()).unwrap();
        assert!(matches!(
            enc.columns()[0].1,
            ColumnEncoding::Categorical { .. }
        ));
        // ...but numeric when fitted on rows where it is numeric, and then the bad value is an
        // error naming the line.
        let enc = FeatureEncoder::fit(&raw, &cols(&["income"]), &[], &[3, 1], &opts()).unwrap();
        let e = enc.transform(&raw).unwrap_err().to_string();
        assert!(e.contains("t.csv:3") && e.contains("income"), "{e}");
        // Forced categorical; an unseen level encodes as zeros.
        let enc =
            FeatureEncoder::fit(&raw, &cols(&["age"]), &cols(&["age"]), &[3], &opts()).unwrap();
        assert_eq!(enc.transform(&raw).unwrap().features(2).unwrap(), &[0.0]);
    }

    #[test]
    fn malformed_input_names_file_and_line() {
        let bad = "id,a\n1,2\n2\n";
        let e = parse_csv(bad.as_bytes(), "b.csv", &opts(), &cols(&["a"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("b.csv:3"), "{e}");
        let e = parse_csv("id,a\nx,2\n".as_bytes(), "c.csv", &opts(), &cols(&["a"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("c.csv:2") && e.contains("id"), "{e}");
        let e = parse_csv(
            "id,a\n1,2\n1,3\n".as_bytes(),
            "d.csv",
            &opts(),
            &cols(&["a"]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("twice"), "{e}");
        let e = parse_csv(CSV.as_bytes(), "e.csv", &opts(), &cols(&["zip"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("zip") && e.contains("e.csv"), "{e}");
    }

    #[test]
    fn misaligned_holders_are_refused() {
        let a = parse_csv(
            "id,x\n1,0\n2,0\n".as_bytes(),
            "a.csv",
            &opts(),
            &cols(&["x"]),
        )
        .unwrap();
        let b = parse_csv(
            "id,y\n1,0\n3,0\n".as_bytes(),
            "b.csv",
            &opts(),
            &cols(&["y"]),
        )
        .unwrap();
        let c = parse_csv(
            "id,y\n2,0\n1,0\n".as_bytes(),
            "c.csv",
            &opts(),
            &cols(&["y"]),
        )
        .unwrap();
        assert!(
            check_aligned(&[&a, &b])
                .unwrap_err()
                .to_string()
                .contains("sample id 3")
        );
        check_aligned(&[&a, &c]).unwrap();
    }
}
