//! # spnn-cli
//!
//! The `spnn` command as a library, so a program with its own Burn model can do the same in a
//! few lines: [`config::Deployment`] reads the deployment file, [`party::run`] runs one party over
//! mutual TLS, [`party::simulate`] every party in one process, [`server::train`] and
//! [`server::predict`] are the server's side.

pub mod config;
pub mod data;
pub mod error;
pub mod model;
pub mod party;
pub mod server;

pub use error::{CliError, Result};
