//! The traffic of SPNN-SS in closed form: bytes and rounds per step and party.
//!
//! These are the formulas of the guide's protocol chapter; the tests check them against the
//! meters of a running session. Every frame costs [`FRAME_OVERHEAD`] bytes (4-byte length
//! prefix, 19-byte header) on top of its payload; a ring matrix costs `8 + 8·rows·cols` bytes.
//! The dealer is the server and labels are at the server.

use spnn_net::frame::{HEADER_LEN, LENGTH_PREFIX};

/// Bytes of framing around every message.
pub const FRAME_OVERHEAD: u64 = (LENGTH_PREFIX + HEADER_LEN) as u64;

fn matrix(rows: usize, cols: usize) -> u64 {
    8 + 8 * (rows * cols) as u64
}

fn frame(payload: u64) -> u64 {
    FRAME_OVERHEAD + payload
}

fn bundle(mats: &[(usize, usize)]) -> u64 {
    8 + mats.iter().map(|&(r, c)| matrix(r, c)).sum::<u64>()
}

const SEED: u64 = 32;

/// Shape of one training or inference step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StepShape {
    /// Holders `k`.
    pub holders: usize,
    /// Batch size `B`.
    pub batch: usize,
    /// Input width `d`.
    pub d: usize,
    /// Output width `h`.
    pub h: usize,
    /// Momentum in use (two truncations per update instead of one, for `k > 2`).
    pub momentum: bool,
}

/// Bytes and rounds of one step, per party.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StepCost {
    /// Bytes the server sends.
    pub server_sent: u64,
    /// Bytes the server receives.
    pub server_received: u64,
    /// Bytes holder 0 sends (every holder sends the same).
    pub holder_sent: u64,
    /// Bytes holder 0 receives.
    pub holder0_received: u64,
    /// Bytes each holder `i ≥ 1` receives.
    pub holder_received: u64,
    /// The holders' rounds (bursts of sending) per step.
    pub holder_rounds: u64,
    /// The server's rounds per step in a sequence of steps.
    pub server_rounds: u64,
}

/// One training step: forward, backward and update.
pub fn training_step(s: StepShape) -> StepCost {
    let StepShape {
        holders: k,
        batch: b,
        d,
        h,
        momentum,
    } = s;
    let k64 = k as u64;
    let others = k64 - 1;
    let forward_cmd = frame(18 + 8 * b as u64);
    let short_cmd = frame(17);
    let triple = frame(bundle(&[(b, d), (d, h), (b, h), (b, h), (d, h)]));
    let seeds = others * frame(SEED);
    let grad = frame(matrix(b, h));
    let z = frame(matrix(b, h));
    // Truncation pairs and their openings exist only with more than two holders.
    let (backward_truncs, update_truncs) = if k > 2 {
        (2, if momentum { 2 } else { 1 })
    } else {
        (0, 0)
    };
    let pairs = |n: usize| {
        if n == 0 {
            0
        } else {
            frame(bundle(&vec![(d, h); 2 * n]))
        }
    };
    let pair_msgs = |n: usize| if n == 0 { 0 } else { others * frame(SEED) };
    let open_fwd = frame(8 + matrix(b, d) + matrix(d, h));
    let open_bwd = frame(8 + matrix(b, h));
    let open_trunc = frame(8 + matrix(d, h));
    let holder_sent =
        z + others * (open_fwd + open_bwd + (backward_truncs + update_truncs) as u64 * open_trunc);
    let commands = forward_cmd + 2 * short_cmd;
    StepCost {
        server_sent: k64 * commands
            + triple
            + seeds
            + grad
            + others * frame(SEED)
            + pairs(backward_truncs)
            + pair_msgs(backward_truncs)
            + pairs(update_truncs)
            + pair_msgs(update_truncs),
        server_received: k64 * z,
        holder_sent,
        holder0_received: commands
            + triple
            + grad
            + pairs(backward_truncs)
            + pairs(update_truncs)
            + holder_sent
            - z,
        holder_received: commands
            + 2 * frame(SEED)
            + if backward_truncs > 0 { frame(SEED) } else { 0 }
            + if update_truncs > 0 { frame(SEED) } else { 0 }
            + holder_sent
            - z,
        holder_rounds: 3 + (backward_truncs + update_truncs) as u64,
        server_rounds: 1,
    }
}

/// One inference step (a forward without backward): the cost of a prediction batch.
pub fn inference_step(s: StepShape) -> StepCost {
    let StepShape {
        holders: k,
        batch: b,
        d,
        h,
        ..
    } = s;
    let (k64, others) = (k as u64, k as u64 - 1);
    let forward_cmd = frame(18 + 8 * b as u64);
    let triple = frame(bundle(&[(b, d), (d, h), (b, h)]));
    let z = frame(matrix(b, h));
    let open_fwd = frame(8 + matrix(b, d) + matrix(d, h));
    let holder_sent = z + others * open_fwd;
    StepCost {
        server_sent: k64 * forward_cmd + triple + others * frame(SEED),
        server_received: k64 * z,
        holder_sent,
        holder0_received: forward_cmd + triple + holder_sent - z,
        holder_received: forward_cmd + frame(SEED) + holder_sent - z,
        holder_rounds: 2,
        server_rounds: 1,
    }
}
