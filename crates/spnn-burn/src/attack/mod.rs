//! Attacks on a party's view, to measure what SPNN reveals and what a defence buys.
//!
//! - [`labels`]: the server against the label holder's labels, from the gradients it receives;
//! - [`features`]: the server against the holders' features, from the `Z`s and `G`s of a run
//!   (the Gram-matrix leak SPNN has by design).
//!
//! These are measurement tools: they run on what a party legitimately received (for the
//! server, [`crate::ServerView`]) plus the ground truth, which only the evaluation knows.

pub mod features;
pub mod labels;
