//! # spnn-burn
//!
//! Burn modules whose first layer is private, and the SPNN protocols behind them.
//!
//! - [`PrivateLinear`]: `O = X·W + b` with `X` split by columns among data holders and `W`
//!   secret-shared among them (SPNN-SS). A Burn model uses it like `burn::nn::Linear`, with a
//!   batch of sample ids as input.
//! - [`ServerSession`], [`run_holder`], [`run_dealer`]: the parties.
//! - [`simulation`]: every party in one process over in-memory channels.

pub mod checkpoint;
pub mod config;
pub mod cost;
pub mod error;
pub mod head;
pub mod messages;
pub mod metrics;
pub mod ops;
pub mod private_linear;
pub mod protocol;
pub mod simulation;
pub mod tensor;
pub mod train;

pub use config::{DealerMode, GradientScale, LabelMode, Randomness, SpnnConfig};
pub use error::{Result, SpnnError};
pub use head::{BinaryCrossEntropyHead, LabelHead};
pub use private_linear::{PrivateLinear, PrivateLinearConfig};
pub use protocol::dealer::run_dealer;
pub use protocol::holder::{HolderLabels, HolderOptions, HolderSummary, run_holder};
pub use protocol::server::{ServerSession, ServerView, SessionSpec};
