//! Helpers shared by the network integration tests.
#![allow(dead_code)]

use spnn_crypto::{RingMatrix, SecureRng};
use spnn_net::certs::DeploymentCerts;
use spnn_net::{Network, NetworkConfig, PartyId, Roster};

/// A roster of `n` parties: the server and `n − 1` holders.
pub fn roster(n: usize) -> Roster {
    Roster::spnn((n - 1) as u16, false).unwrap()
}

pub fn names(roster: &Roster) -> Vec<String> {
    roster.ids().map(|p| roster.name(p).unwrap()).collect()
}

/// The matrix `from` sends to `to`: derived from both ids so the receiver can recompute it.
pub fn payload(from: PartyId, to: PartyId, rows: usize, cols: usize) -> RingMatrix {
    let seed = (from.0 as u64) << 16 | to.0 as u64;
    RingMatrix::random(
        rows,
        cols,
        &mut SecureRng::insecure_from_seed_for_tests(seed),
    )
}

/// Every party sends a matrix to every other, then receives and checks one from each.
pub fn all_to_all(net: &Network, rows: usize, cols: usize) {
    let me = net.me();
    let peers: Vec<PartyId> = net.roster().ids().filter(|p| *p != me).collect();
    // ANCHOR: send_recv
    for &p in &peers {
        net.send(p, &payload(me, p, rows, cols)).unwrap(); // any type implementing `Message`
    }
    let received: Vec<RingMatrix> = peers
        .iter()
        .map(|&p| net.recv(p).unwrap()) // each waits at most the network's timeout
        .collect();
    // ANCHOR_END: send_recv
    for (&p, got) in peers.iter().zip(received) {
        assert_eq!(got, payload(p, me, rows, cols), "{me} from {p}");
    }
}

/// TLS networks for every party of `roster`, established in threads on loopback.
pub fn tls_mesh(roster: &Roster, certs: &DeploymentCerts, config: NetworkConfig) -> Vec<Network> {
    spnn_net::transport::tls::loopback_mesh(roster, certs, config).unwrap()
}
