//! # spnn-burn
//!
//! Burn modules whose first layer is private, and the SPNN protocols behind them.
//!
//! - [`PrivateLinear`]: `O = X·W + b` with `X` split by columns among data holders and `W`
//!   secret-shared among them (SPNN-SS). A Burn model uses it like `burn::nn::Linear`, with a
//!   batch of sample ids as input.
//! - [`SecureAggregation`]: the server learns only the sum of the holders' contributions —
//!   `PrivateLinear`'s output shares, or the outputs of the holders' own Burn bottom models.
//! - [`ServerSession`], [`run_holder`], [`run_dealer`]: the parties.
//! - [`simulation`]: every party in one process over in-memory channels.

pub mod align;
pub mod attack;
#[cfg(feature = "train")]
pub mod batch;
pub mod checkpoint;
pub mod config;
pub mod cost;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod head;
#[cfg(feature = "train")]
pub mod learner;
pub mod local;
pub mod messages;
pub mod metrics;
pub mod ops;
pub mod optim;
pub mod private_linear;
pub mod protocol;
pub mod simulation;
pub mod tensor;
pub mod train;

pub use config::{
    AdamParams, DealerMode, GradientScale, LabelMode, Protocol, Randomness, SpnnConfig,
};
pub use error::{Result, SpnnError};
pub use head::{HeadStep, LabelDefence, LabelHead, LabelReports, MetricsLog, ScoreLog, TopLayers};
pub use local::LocalModel;
pub use private_linear::{
    PrivateLinear, PrivateLinearConfig, SecureAggregation, SecureAggregationConfig,
};
pub use protocol::dealer::run_dealer;
pub use protocol::holder::{
    HolderLabels, HolderOptions, HolderSummary, run_bottom_holder, run_holder,
};
pub use protocol::policy::PartyPolicy;
pub use protocol::server::{EVALUATION_ROWS, ServerSession, ServerView, SessionSpec};
