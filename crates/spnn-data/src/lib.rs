//! # spnn-data
//!
//! Data for spnn, without Burn: [`Table`]s of samples with ids and named columns, the embedded
//! breast-cancer data ([`embedded::breast_cancer`]), and vertical partitions with per-holder
//! standardisation ([`partition`]).

pub mod embedded;
pub mod error;
pub mod partition;
pub mod table;

pub use error::{DataError, Result};
pub use partition::{Standardizer, VerticalPartition};
pub use table::Table;
