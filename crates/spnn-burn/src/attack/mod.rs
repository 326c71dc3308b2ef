//! Attacks on a party's view, to measure what SPNN reveals and what a defence buys.
//!
//! - [`labels`]: the server against the label holder's labels, from the gradients it receives.
//!
//! These are measurement tools: they run on what a party legitimately received (for the
//! server, [`crate::ServerView`]) plus the ground truth, which only the evaluation knows.

pub mod labels;
