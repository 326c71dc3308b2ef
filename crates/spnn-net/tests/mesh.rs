//! Three and four parties exchanging large matrices, in threads, over both transports.

mod common;

use std::time::Duration;

use common::*;
use spnn_net::NetworkConfig;
use spnn_net::certs::DeploymentCerts;

fn run_in_threads(nets: Vec<spnn_net::Network>, rows: usize, cols: usize) {
    let handles: Vec<_> = nets
        .into_iter()
        .map(|net| {
            std::thread::spawn(move || {
                all_to_all(&net, rows, cols);
                // A second round checks the step counters stay in sync.
                all_to_all(&net, 3, 5);
                net.meters()
            })
        })
        .collect();
    let parties = handles.len() as u64;
    for h in handles {
        let m = h.join().unwrap();
        // Two rounds of sending to each of the other parties.
        assert_eq!(m.total.messages_sent, 2 * (parties - 1));
        assert_eq!(m.total.messages_received, 2 * (parties - 1));
        assert_eq!(m.total.rounds, 2);
        // 8 MiB payload + 8 bytes of shape + 19 of header + 4 of length prefix.
        let big = (rows * cols * 8 + 8 + 19 + 4) as u64;
        let small = (3 * 5 * 8 + 8 + 19 + 4) as u64;
        assert_eq!(m.total.bytes_sent, (parties - 1) * (big + small));
        let senders: Vec<_> = m.per_peer.iter().filter(|t| t.bytes_received > 0).collect();
        assert_eq!(senders.len() as u64, parties - 1);
        assert!(senders.iter().all(|t| t.bytes_received == big + small));
    }
}

#[test]
fn four_parties_in_memory_exchange_8_mib_matrices() {
    let r = roster(4);
    run_in_threads(
        spnn_net::Network::in_memory(&r, NetworkConfig::new(7)),
        1024,
        1024,
    );
}

#[test]
fn three_parties_over_mutual_tls_exchange_8_mib_matrices() {
    let r = roster(3);
    let certs = DeploymentCerts::generate("mesh", &names(&r)).unwrap();
    let nets = tls_mesh(
        &r,
        &certs,
        NetworkConfig::new(9).with_timeout(Duration::from_secs(30)),
    );
    run_in_threads(nets, 1024, 1024);
}

#[test]
fn four_parties_over_mutual_tls() {
    let r = roster(4);
    let certs = DeploymentCerts::generate("mesh4", &names(&r)).unwrap();
    let nets = tls_mesh(&r, &certs, NetworkConfig::new(10));
    run_in_threads(nets, 64, 64);
}
