//! Criterion benchmarks of spnn-net: in-memory against mutual TLS on loopback, in one run.
//!
//! `cargo bench -p spnn-bench --bench net` — throughput of 8 MiB ring-matrix messages (each answered by a
//! tiny acknowledgement) and round-trip latency of small messages between two parties.

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use spnn_crypto::{RingMatrix, SecureRng};
use spnn_net::certs::DeploymentCerts;
use spnn_net::transport::tls::loopback_mesh;
use spnn_net::{IdList, Network, NetworkConfig, PartyId, Roster};

fn tls_pair(roster: &Roster, config: NetworkConfig) -> Vec<Network> {
    let names: Vec<String> = roster.ids().map(|p| roster.name(p).unwrap()).collect();
    let certs = DeploymentCerts::generate("bench", &names).unwrap();
    loopback_mesh(roster, &certs, config).unwrap()
}

/// Party 1 answers every message of type `M` with a one-id acknowledgement until party 0 leaves.
fn echo<M: spnn_net::Message + Send + 'static>(net: Network) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        while net.recv::<M>(PartyId(0)).is_ok() {
            if net.send(PartyId(0), &IdList(vec![0])).is_err() {
                break;
            }
        }
    })
}

fn transports() -> Vec<(&'static str, Vec<Network>, Vec<Network>)> {
    let roster = Roster::spnn(1, false).unwrap();
    let config = NetworkConfig::new(1).with_timeout(Duration::from_secs(60));
    vec![
        (
            "in-memory",
            Network::in_memory(&roster, config),
            Network::in_memory(&roster, config),
        ),
        (
            "tls-loopback",
            tls_pair(&roster, config),
            tls_pair(&roster, config),
        ),
    ]
}

fn bench(c: &mut Criterion) {
    let big = RingMatrix::random(1024, 1024, &mut SecureRng::insecure_from_seed_for_tests(1));
    let mut throughput = c.benchmark_group("net_8MiB_message");
    throughput.throughput(Throughput::Bytes((1024 * 1024 * 8) as u64));
    throughput.sample_size(20);
    let mut latency_nets = vec![];
    for (name, mut bulk, small) in transports() {
        let peer = bulk.pop().unwrap();
        let me = bulk.pop().unwrap();
        let h = echo::<RingMatrix>(peer);
        throughput.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                me.send(PartyId(1), &big).unwrap();
                me.recv::<IdList>(PartyId(1)).unwrap()
            })
        });
        drop(me);
        h.join().unwrap();
        latency_nets.push((name, small));
    }
    throughput.finish();

    let mut latency = c.benchmark_group("net_round_trip_small");
    for (name, mut nets) in latency_nets {
        let peer = nets.pop().unwrap();
        let me = nets.pop().unwrap();
        let h = echo::<IdList>(peer);
        let msg = IdList(vec![7; 4]);
        latency.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                me.send(PartyId(1), &msg).unwrap();
                me.recv::<IdList>(PartyId(1)).unwrap()
            })
        });
        drop(me);
        h.join().unwrap();
    }
    latency.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
