//! Parties as separate operating-system processes over mutual TLS on loopback.
//!
//! The test binary re-executes itself: the `party_process` test is a no-op unless the
//! environment variable `SPNN_NET_PARTY` is set, in which case it acts as one party and exits
//! with a status the parent checks.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use spnn_net::certs::{DeploymentCerts, Identity};
use spnn_net::transport::tls::{TlsConfig, TlsTransport};
use spnn_net::{IdList, NetError, Network, NetworkConfig, PartyId};

const EXIT_PEER_LOST: i32 = 3;

/// What a child does, from `SPNN_NET_PARTY="<me>;<n>;<scenario>;<cert dir>;<addr,addr,…>"`.
#[test]
fn party_process() {
    let Ok(spec) = std::env::var("SPNN_NET_PARTY") else {
        return;
    };
    let parts: Vec<&str> = spec.split(';').collect();
    let me = PartyId(parts[0].parse().unwrap());
    let r = roster(parts[1].parse().unwrap());
    let scenario = parts[2];
    let identity = Identity::load(std::path::Path::new(parts[3]), &r.name(me).unwrap()).unwrap();
    let addrs: Vec<SocketAddr> = parts[4].split(',').map(|a| a.parse().unwrap()).collect();
    let mut cfg = TlsConfig::new(me, r.clone(), addrs, identity);
    cfg.connect_timeout = Duration::from_secs(20);
    let net = Network::new(
        me,
        r,
        NetworkConfig::new(42).with_timeout(Duration::from_secs(20)),
        TlsTransport::establish(cfg).unwrap(),
    )
    .unwrap();
    all_to_all(&net, 512, 256);
    println!("READY");
    if scenario == "kill" {
        // Wait for a second message from the last party, which the parent kills meanwhile.
        let last = PartyId(net.roster().len() as u16 - 1);
        if me == last {
            std::thread::sleep(Duration::from_secs(60));
        }
        match net.recv::<IdList>(last) {
            Err(e @ NetError::PeerLost { .. }) => {
                eprintln!("{me}: {e}");
                std::process::exit(EXIT_PEER_LOST);
            }
            other => panic!("expected a lost peer, got {other:?}"),
        }
    }
    drop(net);
    std::process::exit(0);
}

fn spawn_parties(n: usize, scenario: &str, dir: &std::path::Path) -> Vec<Child> {
    // Ports chosen by the OS, released, then bound again by the children.
    let addrs: Vec<String> = (0..n)
        .map(|_| {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().to_string()
        })
        .collect();
    let exe = std::env::current_exe().unwrap();
    (0..n)
        .map(|i| {
            Command::new(&exe)
                .args([
                    "--exact",
                    "party_process",
                    "--nocapture",
                    "--test-threads",
                    "1",
                ])
                .env(
                    "SPNN_NET_PARTY",
                    format!("{i};{n};{scenario};{};{}", dir.display(), addrs.join(",")),
                )
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect()
}

fn certs_dir(n: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    DeploymentCerts::generate("procs", &names(&roster(n)))
        .unwrap()
        .write_to(dir.path())
        .unwrap();
    dir
}

fn wait_ready(child: &mut Child) {
    let out = child.stdout.take().unwrap();
    let mut lines = BufReader::new(out).lines();
    assert!(
        lines.any(|l| l.map(|l| l.contains("READY")).unwrap_or(false)),
        "child never became ready"
    );
}

#[test]
fn three_processes_exchange_matrices_over_tls() {
    let dir = certs_dir(3);
    let children = spawn_parties(3, "exchange", dir.path());
    for (i, c) in children.into_iter().enumerate() {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "party {i} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The child really ran the exchange (not an empty test filter).
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("READY"),
            "party {i} did not run"
        );
    }
}

#[test]
fn a_killed_process_is_detected_by_every_other_party() {
    let dir = certs_dir(3);
    let mut children = spawn_parties(3, "kill", dir.path());
    for c in children.iter_mut() {
        wait_ready(c);
    }
    let killed_at = Instant::now();
    children[2].kill().unwrap();
    children[2].wait().unwrap();
    for (i, c) in children.into_iter().take(2).enumerate() {
        let out = c.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(EXIT_PEER_LOST),
            "party {i}: {stderr}"
        );
        assert!(
            stderr.contains("lost connection to party 2"),
            "party {i}: {stderr}"
        );
    }
    // The receive timeout is 20 s; loss must be noticed well before it.
    assert!(
        killed_at.elapsed() < Duration::from_secs(10),
        "{:?}",
        killed_at.elapsed()
    );
}
