//! # spnn-data
//!
//! Data for spnn, without Burn: [`Table`]s of samples with ids and named columns, the embedded
//! breast-cancer data ([`embedded::breast_cancer`]), vertical partitions with per-holder
//! standardisation ([`partition`]), CSV files of one holder's columns with a documented encoding
//! policy ([`csv`]), MNIST-style IDX files ([`idx`]) and the packaged data sets fetched by
//! `scripts/fetch-data.sh` ([`packaged`]).

pub mod csv;
pub mod embedded;
pub mod error;
pub mod idx;
pub mod packaged;
pub mod partition;
pub mod table;

pub use error::{DataError, Result};
pub use partition::{Standardizer, VerticalPartition};
pub use table::Table;
