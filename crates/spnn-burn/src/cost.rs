//! The traffic of SPNN-SS in closed form: bytes and rounds per step and party.
//!
//! These are the formulas of the guide's protocol chapter; the tests check them against the
//! meters of a running session. Every frame costs [`FRAME_OVERHEAD`] bytes (4-byte length
//! prefix, 19-byte header) on top of its payload; a ring matrix costs `8 + 8·rows·cols` bytes and
//! a list of them `8` more. The dealer is the server and labels are at the server.

use spnn_net::frame::{HEADER_LEN, LENGTH_PREFIX};

/// Bytes of framing around every message.
pub const FRAME_OVERHEAD: u64 = (LENGTH_PREFIX + HEADER_LEN) as u64;

fn matrix(rows: usize, cols: usize) -> u64 {
    8 + 8 * (rows * cols) as u64
}

fn frame(payload: u64) -> u64 {
    FRAME_OVERHEAD + payload
}

fn list(mats: &[(usize, usize)]) -> u64 {
    8 + mats.iter().map(|&(r, c)| matrix(r, c)).sum::<u64>()
}

const SEED: u64 = 32;

/// Shape of one training or inference step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepShape {
    /// Feature widths `d_j` of the holders.
    pub widths: Vec<usize>,
    /// Batch size `B`.
    pub batch: usize,
    /// Output width `h`.
    pub h: usize,
    /// Exact truncations per update: one per public factor of the session's SGD that is not a
    /// whole number ([`crate::SpnnConfig::update_truncations`]).
    pub update_truncations: u64,
    /// Element-wise products per update: gradient clipping's and Adam's
    /// ([`crate::SpnnConfig::update_products`]); 0 for plain SGD.
    pub update_products: u64,
    /// Secure comparisons per update: two with gradient clipping by value
    /// ([`crate::protocol::update_comparisons`]), else 0.
    pub update_comparisons: u64,
}

/// Bytes and rounds of one step, per party.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StepCost {
    /// Bytes the server sends.
    pub server_sent: u64,
    /// Bytes the server receives.
    pub server_received: u64,
    /// Bytes each holder sends, by holder.
    pub holder_sent: Vec<u64>,
    /// Bytes each holder receives, by holder.
    pub holder_received: Vec<u64>,
    /// The holders' rounds (bursts of sending) per step.
    pub holder_rounds: u64,
    /// The server's rounds per step in a sequence of steps.
    pub server_rounds: u64,
}

fn step(s: &StepShape, train: bool) -> StepCost {
    let (k, b, h) = (s.widths.len(), s.batch, s.h);
    let d: usize = s.widths.iter().sum();
    let others = |m: usize| (0..k).filter(move |&j| j != m);
    let forward_cmd = frame(18 + 8 * b as u64);
    let short_cmd = frame(17);
    let z = frame(matrix(b, h));
    // The dealer's material: a seed and one explicit list per holder.
    let material = |m: usize| {
        let mut mats = vec![(b, h)];
        if train {
            mats.extend(others(m).map(|j| (s.widths[j], h)));
        }
        frame(SEED) + frame(list(&mats))
    };
    // Exact truncations, each one opening among the holders and a triple [r, ⌊r/2^s⌋, b] from
    // the dealer: in the backward, 2f → f and × 1/c — one truncation when c = B is a power of
    // two, two otherwise; one per public factor in the update.
    let backward = if b.is_power_of_two() { 1 } else { 2 };
    let (backward_truncs, update_truncs) = if train {
        (backward, s.update_truncations as usize)
    } else {
        (0, 0)
    };
    let truncs = backward_truncs + update_truncs;
    // Every holder derives its share of r from a seed; holder 0 gets its shares of ⌊r/2^s⌋
    // and b explicitly.
    // Holder 0's explicit matrices travel in messages of bounded size.
    let explicit = |n: usize| -> u64 {
        crate::protocol::bundle::message_sizes(n, (d, h))
            .into_iter()
            .map(|size| frame(list(&vec![(d, h); size])))
            .sum()
    };
    let triples = |n: usize, m: usize| match (n, m) {
        (0, _) => 0,
        (_, 0) => frame(SEED) + explicit(2 * n),
        _ => frame(SEED),
    };
    // Adam's element-wise triples: a seed per holder, holder 0's shares of a∘b explicitly.
    let products = if train { s.update_products as usize } else { 0 };
    let product_triples = |m: usize| match (products, m) {
        (0, _) => 0,
        (_, 0) => frame(SEED) + explicit(products),
        _ => frame(SEED),
    };
    // Comparisons: a seed per holder, holder 0's shares of the mask's 63 bits explicitly; one
    // opening of x + 2^62 + r each among the holders.
    let comparisons = if train {
        s.update_comparisons as usize
    } else {
        0
    };
    let comparison_material = |m: usize| match (comparisons, m) {
        (0, _) => 0,
        (_, 0) => {
            frame(SEED) + explicit((spnn_crypto::compare::COMPARISON_MATRICES - 1) * comparisons)
        }
        _ => frame(SEED),
    };
    let grad = |m: usize| {
        if m == 0 {
            frame(matrix(b, h))
        } else {
            frame(SEED)
        }
    };
    // Openings from holder m to holder o.
    let opening = |m: usize, o: usize| {
        let mut bytes = frame(list(&[(b, s.widths[m]), (s.widths[o], h)]));
        if train {
            bytes += frame(list(&[(b, h)]));
        }
        bytes
            + truncs as u64 * frame(list(&[(d, h)]))
            + products as u64 * frame(list(&[(d, h), (d, h)]))
            + comparisons as u64 * frame(list(&[(d, h)]))
    };
    let commands = forward_cmd + if train { 2 * short_cmd } else { 0 };
    let from_server = |m: usize| {
        commands
            + material(m)
            + if train {
                grad(m)
                    + triples(backward_truncs, m)
                    + triples(update_truncs, m)
                    + product_triples(m)
                    + comparison_material(m)
            } else {
                0
            }
    };
    StepCost {
        server_sent: (0..k).map(from_server).sum(),
        server_received: k as u64 * z,
        holder_sent: (0..k)
            .map(|m| z + others(m).map(|o| opening(m, o)).sum::<u64>())
            .collect(),
        holder_received: (0..k)
            .map(|m| from_server(m) + others(m).map(|o| opening(o, m)).sum::<u64>())
            .collect(),
        holder_rounds: if train { 3 } else { 2 }
            + truncs as u64
            + products as u64
            + comparisons as u64,
        server_rounds: 1,
    }
}

/// One training step: forward, backward and update.
pub fn training_step(s: &StepShape) -> StepCost {
    step(s, true)
}

/// One inference step (a forward without backward): the cost of a prediction batch.
pub fn inference_step(s: &StepShape) -> StepCost {
    step(s, false)
}
