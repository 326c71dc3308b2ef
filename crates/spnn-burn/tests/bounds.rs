//! The public bounds that keep every truncation exact are enforced, not assumed: a batch whose
//! weight gradient could exceed the ring is refused with an error before any share moves, and
//! holders refuse a proposal that leaves less headroom than their policy asks.

mod common;

use common::*;
use spnn_burn::simulation::{self, HolderSpec};
use spnn_burn::{PartyPolicy, SessionSpec, SpnnConfig};
use spnn_net::NetworkConfig;

/// Clips so wide that a batch of 2^2 rows already fills the ring (2^30 · 2^30 per row).
fn cramped() -> SpnnConfig {
    SpnnConfig::default().with_clips(16384.0, 16384.0)
}

fn start_cramped(policy: PartyPolicy) -> simulation::Simulation {
    let data = Data::new(2);
    let holders = data
        .holders
        .iter()
        .map(|t| HolderSpec::new(t.clone()).with_policy(policy.clone()))
        .collect();
    simulation::start(
        holders,
        SessionSpec::new(HIDDEN[0]).with_config(cramped()),
        NetworkConfig::new(3).with_timeout(std::time::Duration::from_secs(10)),
    )
    .unwrap()
}

#[test]
fn holders_refuse_a_proposal_without_headroom() {
    let sim = start_cramped(PartyPolicy::default());
    let e = sim.finish().unwrap_err().to_string();
    assert!(e.contains("headroom"), "{e}");
}

#[test]
fn a_batch_beyond_the_ring_is_refused_before_its_backward() {
    let policy = PartyPolicy {
        min_headroom_bits: 0,
        ..PartyPolicy::default()
    };
    let sim = start_cramped(policy);
    let session = sim.session();
    let h = HIDDEN[0];
    // Four rows: 4 · 2^60 ≥ 2^62, refused with the reason.
    session.forward(&[0, 1, 2, 3], true).unwrap();
    let e = session
        .backward(&vec![0.01; 4 * h])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("may reach 2^") && e.contains("batch of 4"),
        "{e}"
    );
    // Two rows fit: the session goes on.
    session.forward(&[4, 5], true).unwrap();
    session.backward(&vec![0.01; 2 * h]).unwrap();
    session.update(0.1).unwrap();
    sim.finish().unwrap();
}
