//! The traffic of SPNN-SS in closed form: bytes and rounds per step and party.
//!
//! These are the formulas of the guide's protocol chapter; the tests check them against the
//! meters of a running session. Every frame costs [`FRAME_OVERHEAD`] bytes (4-byte length
//! prefix, 19-byte header) on top of its payload; a ring matrix costs `8 + 8·rows·cols` bytes and
//! a list of them `8` more. The dealer is the server and labels are at the server.

use spnn_net::frame::{HEADER_LEN, LENGTH_PREFIX};

use crate::protocol::{Dealing, DealtShapes, bundle};

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
    /// The dealer's material for each update, with its shapes
    /// ([`crate::SpnnConfig::update_dealing`]): one truncation per public factor of the
    /// session's SGD that is not a whole number, gradient clipping's and Adam's products,
    /// truncations and comparisons.
    pub update: Dealing,
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
    let weights = (d, h);
    let no_update = Dealing::default();
    let update = if train { &s.update } else { &no_update };
    let backward_truncs = if train { backward } else { 0 };
    let truncs = backward_truncs + update.truncations.len();
    // Holder 0's explicit matrices travel in messages of bounded size.
    let explicit = |shapes: Vec<(usize, usize)>| -> u64 {
        let sizes = crate::protocol::bundle::message_sizes(&shapes);
        let mut rest = shapes.into_iter();
        sizes
            .into_iter()
            .map(|size| frame(list(&rest.by_ref().take(size).collect::<Vec<_>>())))
            .sum()
    };
    // One part of a command's material: a seed to every holder; holder 0 also its explicit
    // shares, `per` matrices of each item's shape — for a truncation `⌊r/2^s⌋` and `b` (every
    // holder derives its share of `r`), for an element-wise triple `a∘b`, for a comparison the
    // mask's 63 bits.
    let part = |shapes: &[(usize, usize)], per: usize, m: usize| match (shapes.len(), m) {
        (0, _) => 0,
        (_, 0) => frame(SEED) + explicit(bundle::explicit_shapes(shapes, per)),
        _ => frame(SEED),
    };
    let DealtShapes {
        truncations: update_truncs,
        products,
        comparisons,
    } = update.dims(d, h);
    let material_of_commands = |m: usize| {
        part(
            &vec![weights; backward_truncs],
            bundle::TRUNCATION_EXPLICIT,
            m,
        ) + part(&update_truncs, bundle::TRUNCATION_EXPLICIT, m)
            + part(&products, bundle::PRODUCT_EXPLICIT, m)
            + part(&comparisons, bundle::COMPARISON_EXPLICIT, m)
    };
    let grad = |m: usize| {
        if m == 0 {
            frame(matrix(b, h))
        } else {
            frame(SEED)
        }
    };
    // Openings from holder m to holder o: one per truncation (`z + 2^62 + r`) and comparison
    // (`x + 2^62 + r`), two matrices per element-wise product.
    let opening = |m: usize, o: usize| {
        let mut bytes = frame(list(&[(b, s.widths[m]), (s.widths[o], h)]));
        if train {
            bytes += frame(list(&[(b, h)]));
        }
        bytes
            + backward_truncs as u64 * frame(list(&[weights]))
            + update_truncs
                .iter()
                .map(|&t| frame(list(&[t])))
                .sum::<u64>()
            + products.iter().map(|&t| frame(list(&[t, t]))).sum::<u64>()
            + comparisons.iter().map(|&t| frame(list(&[t]))).sum::<u64>()
    };
    let commands = forward_cmd + if train { 2 * short_cmd } else { 0 };
    let from_server = |m: usize| {
        commands
            + material(m)
            + if train {
                grad(m) + material_of_commands(m)
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
            + (truncs + products.len() + comparisons.len()) as u64,
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
