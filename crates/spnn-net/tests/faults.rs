//! Bad peers and bad bytes: wrong certificates, vanished and stalled peers, malformed frames.
//! Every case must end in a clear error naming the peer, never a panic or a hang.

mod common;

use std::time::{Duration, Instant};

use common::*;
use spnn_crypto::RingMatrix;
use spnn_net::certs::DeploymentCerts;
use spnn_net::frame::{PROTOCOL_VERSION, encode_frame};
use spnn_net::transport::tls::{
    DEFAULT_HANDSHAKE_TIMEOUT, TlsConfig, TlsTransport, loopback_listener,
};
use spnn_net::{IdList, NetError, Network, NetworkConfig, PartyId};

fn two_party_tls(
    certs0: &DeploymentCerts,
    certs1: &DeploymentCerts,
    as_name1: &str,
) -> (
    Result<TlsTransport, NetError>,
    Result<TlsTransport, NetError>,
    Duration,
) {
    let r = roster(2);
    let (l0, a0) = loopback_listener().unwrap();
    let (l1, a1) = loopback_listener().unwrap();
    let addrs = vec![a0, a1];
    let mut c0 = TlsConfig::new(
        PartyId(0),
        r.clone(),
        addrs.clone(),
        certs0.identity("server").unwrap(),
    );
    c0.connect_timeout = Duration::from_secs(3);
    let identity1 = certs1.identity(as_name1).unwrap();
    let start = Instant::now();
    let h0 = std::thread::spawn(move || TlsTransport::establish_with_listener(c0, l0));
    let h1 = std::thread::spawn(move || {
        // Build the config by hand so the identity check of the constructor is bypassed the
        // way a misconfigured deployment would (same name, wrong CA).
        let mut c1 = TlsConfig::new(PartyId(1), r, addrs, identity1);
        c1.connect_timeout = Duration::from_secs(3);
        TlsTransport::establish_with_listener(c1, l1)
    });
    let (r0, r1) = (h0.join().unwrap(), h1.join().unwrap());
    (r0, r1, start.elapsed())
}

#[test]
fn certificate_of_another_deployment_is_refused_on_both_sides() {
    let r = roster(2);
    let ours = DeploymentCerts::generate("ours", &names(&r)).unwrap();
    let theirs = DeploymentCerts::generate("theirs", &names(&r)).unwrap();
    let (r0, r1, elapsed) = two_party_tls(&ours, &theirs, "holder-0");
    let e1 = r1.unwrap_err().to_string();
    assert!(
        e1.contains("server"),
        "dialer error should name the server: {e1}"
    );
    let e0 = r0.unwrap_err().to_string();
    assert!(
        e0.contains("holder-0") && e0.contains("did not connect"),
        "acceptor error: {e0}"
    );
    // Not a stray connection: the acceptor says a certificate was the reason.
    assert!(
        e0.contains("refused this party's certificate"),
        "acceptor error: {e0}"
    );
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
}

#[test]
fn a_party_presenting_another_partys_certificate_is_refused() {
    // Three parties; holder-1 (party 2) tries to pass with holder-0's certificate.
    let r = roster(3);
    let certs = DeploymentCerts::generate("d", &names(&r)).unwrap();
    let listeners: Vec<_> = (0..3).map(|_| loopback_listener().unwrap()).collect();
    let addrs: Vec<_> = listeners.iter().map(|l| l.1).collect();
    let mut handles = vec![];
    for (i, (l, _)) in listeners.into_iter().enumerate() {
        let me = PartyId(i as u16);
        let name = if i == 2 {
            "holder-0".to_string()
        } else {
            r.name(me).unwrap()
        };
        let mut cfg = TlsConfig::new(me, r.clone(), addrs.clone(), certs.identity(&name).unwrap());
        cfg.connect_timeout = Duration::from_secs(3);
        handles.push(std::thread::spawn(move || {
            TlsTransport::establish_with_listener(cfg, l).map(|_| ())
        }));
    }
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let e2 = results[2].as_ref().unwrap_err().to_string();
    assert!(e2.contains("identity of holder-0 used by party 2"), "{e2}");
    let e0 = results[0].as_ref().unwrap_err().to_string();
    assert!(
        e0.contains("holder-1"),
        "the server must report the missing holder-1: {e0}"
    );
}

fn check_peer_loss(nets: Vec<Network>) {
    let mut nets = nets.into_iter();
    let (a, b) = (nets.next().unwrap(), nets.next().unwrap());
    a.send(PartyId(1), &IdList(vec![1])).unwrap();
    let _: IdList = b.recv(PartyId(0)).unwrap();
    drop(b);
    let start = Instant::now();
    let err = a.recv::<IdList>(PartyId(1)).unwrap_err();
    assert!(
        matches!(
            err,
            NetError::PeerLost {
                peer: PartyId(1),
                ..
            }
        ),
        "{err}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "loss detected after {:?}",
        start.elapsed()
    );
    assert!(err.to_string().contains("party 1"));
}

#[test]
fn a_vanished_peer_is_reported_promptly() {
    let r = roster(2);
    let cfg = NetworkConfig::new(1).with_timeout(Duration::from_secs(30));
    check_peer_loss(Network::in_memory(&r, cfg));
    let certs = DeploymentCerts::generate("d", &names(&r)).unwrap();
    check_peer_loss(tls_mesh(&r, &certs, cfg));
}

#[test]
fn a_stalled_peer_times_out_within_the_timeout() {
    let r = roster(2);
    let timeout = Duration::from_millis(300);
    let certs = DeploymentCerts::generate("d", &names(&r)).unwrap();
    for nets in [
        Network::in_memory(&r, NetworkConfig::new(1).with_timeout(timeout)),
        tls_mesh(&r, &certs, NetworkConfig::new(1).with_timeout(timeout)),
    ] {
        let start = Instant::now();
        let err = nets[0].recv::<IdList>(PartyId(1)).unwrap_err();
        let waited = start.elapsed();
        assert!(
            matches!(
                err,
                NetError::Timeout {
                    peer: PartyId(1),
                    ..
                }
            ),
            "{err}"
        );
        assert!(waited >= timeout && waited < timeout * 4, "{waited:?}");
    }
}

fn check_bad_frames(nets: &[Network]) {
    let (a, b) = (&nets[0], &nets[1]);
    let from = PartyId(0);
    let session = a.config().session;
    let msg = IdList(vec![1, 2, 3]);
    // Each bad frame is refused with its own error, and the connection stays usable for the
    // checks that do not consume a step.
    a.send_raw_frame_for_tests(PartyId(1), vec![1, 2, 3])
        .unwrap();
    assert!(
        matches!(b.recv::<IdList>(from), Err(NetError::Codec { .. })),
        "truncated header"
    );
    let mut wrong_version = encode_frame(session, 0, &msg);
    wrong_version[0] = PROTOCOL_VERSION + 1;
    a.send_raw_frame_for_tests(PartyId(1), wrong_version)
        .unwrap();
    assert!(matches!(
        b.recv::<IdList>(from),
        Err(NetError::UnknownVersion { found: 2, .. })
    ));
    a.send_raw_frame_for_tests(PartyId(1), encode_frame(session ^ 1, 0, &msg))
        .unwrap();
    assert!(matches!(
        b.recv::<IdList>(from),
        Err(NetError::ForeignSession { .. })
    ));
    a.send_raw_frame_for_tests(PartyId(1), encode_frame(session, 5, &msg))
        .unwrap();
    assert!(matches!(
        b.recv::<IdList>(from),
        Err(NetError::OutOfOrder {
            expected: 0,
            found: 5,
            ..
        })
    ));
    // A valid frame of the wrong kind.
    a.send(PartyId(1), &msg).unwrap();
    let err = b.recv::<RingMatrix>(from).unwrap_err();
    assert!(
        matches!(
            err,
            NetError::UnexpectedKind {
                expected: "ring matrix",
                ..
            }
        ),
        "{err}"
    );
    // A replay of step 0 after it was consumed.
    a.send_raw_frame_for_tests(PartyId(1), encode_frame(session, 0, &msg))
        .unwrap();
    assert!(matches!(
        b.recv::<IdList>(from),
        Err(NetError::OutOfOrder {
            expected: 1,
            found: 0,
            ..
        })
    ));
    // Garbage payload behind a valid header (step 1 is next): a codec error, no panic.
    let mut garbage = encode_frame(session, 1, &IdList(vec![]));
    garbage.truncate(19);
    garbage.extend_from_slice(&u64::MAX.to_le_bytes());
    a.send_raw_frame_for_tests(PartyId(1), garbage).unwrap();
    assert!(matches!(
        b.recv::<IdList>(from),
        Err(NetError::Codec { .. })
    ));
    // Trailing bytes after a valid payload (step 2).
    let mut trailing = encode_frame(session, 2, &msg);
    trailing.push(0);
    a.send_raw_frame_for_tests(PartyId(1), trailing).unwrap();
    let err = b.recv::<IdList>(from).unwrap_err();
    assert!(err.to_string().contains("trailing"), "{err}");
}

#[test]
fn malformed_frames_are_refused_with_typed_errors() {
    let r = roster(2);
    let cfg = NetworkConfig::new(0x5eed).with_timeout(Duration::from_secs(10));
    check_bad_frames(&Network::in_memory(&r, cfg));
    let certs = DeploymentCerts::generate("d", &names(&r)).unwrap();
    check_bad_frames(&tls_mesh(&r, &certs, cfg));
}

#[test]
fn oversized_frames_are_refused_on_send_and_on_receive() {
    let r = roster(2);
    let small = NetworkConfig::new(3)
        .with_timeout(Duration::from_secs(10))
        .with_max_frame(1024);
    let certs = DeploymentCerts::generate("d", &names(&r)).unwrap();
    for nets in [Network::in_memory(&r, small), tls_mesh(&r, &certs, small)] {
        let big = RingMatrix::zeros(1, 200);
        let err = nets[0].send(PartyId(1), &big).unwrap_err();
        assert!(
            matches!(
                err,
                NetError::FrameTooLarge {
                    len: 1627,
                    max: 1024,
                    ..
                }
            ),
            "{err}"
        );
        // Bypass the sender's check: the receiver refuses it too.
        nets[0]
            .send_raw_frame_for_tests(PartyId(1), vec![0; 4096])
            .unwrap();
        let err = nets[1].recv::<RingMatrix>(PartyId(0)).unwrap_err();
        assert!(
            matches!(
                err,
                NetError::FrameTooLarge {
                    len: 4096,
                    max: 1024,
                    ..
                }
            ),
            "{err}"
        );
    }
}

#[test]
fn unknown_peers_are_errors() {
    let nets = Network::in_memory(&roster(2), NetworkConfig::new(0));
    assert!(matches!(
        nets[0].send(PartyId(0), &IdList(vec![])),
        Err(NetError::UnknownPeer(_))
    ));
    assert!(matches!(
        nets[0].recv::<IdList>(PartyId(9)),
        Err(NetError::UnknownPeer(_))
    ));
}

/// Bytes that are not TLS (a fixed xorshift stream).
fn garbage(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// `idle` connections that never send a byte and `noisy` ones that send random bytes, to `addr`;
/// they stay open while the returned sockets live.
fn stall(addr: std::net::SocketAddr, idle: usize, noisy: usize) -> Vec<std::net::TcpStream> {
    use std::io::Write;
    let mut held = Vec::new();
    for i in 0..idle + noisy {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        if i >= idle {
            // A reset by the acceptor is fine: it has read enough to refuse.
            let _ = s.write_all(&garbage(i as u64, 4096));
        }
        held.push(s);
    }
    held
}

#[test]
fn idle_and_garbage_connections_do_not_delay_the_real_parties() {
    let r = roster(3);
    let certs = DeploymentCerts::generate("d", &names(&r)).unwrap();
    let listeners: Vec<_> = (0..3).map(|_| loopback_listener().unwrap()).collect();
    let addrs: Vec<_> = listeners.iter().map(|l| l.1).collect();
    // The server (party 0) and holder-0 (party 1) accept; both are stalled before anyone dials.
    let _held: Vec<_> = [addrs[0], addrs[1]]
        .into_iter()
        .flat_map(|a| stall(a, 50, 10))
        .collect();
    let start = Instant::now();
    let handles: Vec<_> = listeners
        .into_iter()
        .enumerate()
        .map(|(i, (l, _))| {
            let me = PartyId(i as u16);
            let identity = certs.identity(&r.name(me).unwrap()).unwrap();
            let cfg = TlsConfig::new(me, r.clone(), addrs.clone(), identity);
            let r = r.clone();
            std::thread::spawn(move || {
                let t = TlsTransport::establish_with_listener(cfg, l)?;
                Network::new(me, r, NetworkConfig::new(4), t)
            })
        })
        .collect();
    let nets: Vec<Network> = handles
        .into_iter()
        .map(|h| h.join().unwrap().unwrap())
        .collect();
    let elapsed = start.elapsed();
    // An idle connection would have held a one-at-a-time acceptor for its whole handshake
    // timeout (10 s) and a 30 s connect timeout's worth of them would have failed the mesh.
    assert!(
        elapsed < DEFAULT_HANDSHAKE_TIMEOUT / 2,
        "the mesh took {elapsed:?}"
    );
    let handles: Vec<_> = nets
        .into_iter()
        .map(|net| std::thread::spawn(move || all_to_all(&net, 16, 16)))
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

#[test]
fn a_refused_connection_says_which_step_failed() {
    let r = roster(2);
    let certs = DeploymentCerts::generate("d", &names(&r)).unwrap();
    for (idle, noisy, expected) in [
        (
            0,
            1,
            "TLS handshake failed, not a TLS client of this deployment",
        ),
        (1, 0, "no TLS handshake within 300ms (an idle connection)"),
    ] {
        let (l, addr) = loopback_listener().unwrap();
        let other = loopback_listener().unwrap().1;
        let mut cfg = TlsConfig::new(
            PartyId(0),
            r.clone(),
            vec![addr, other],
            certs.identity("server").unwrap(),
        );
        cfg.connect_timeout = Duration::from_millis(1500);
        cfg.handshake_timeout = Duration::from_millis(300);
        let _held = stall(addr, idle, noisy);
        let err = TlsTransport::establish_with_listener(cfg, l)
            .unwrap_err()
            .to_string();
        assert!(err.contains(expected), "{err}");
        assert!(err.contains("holder-0 did not connect"), "{err}");
    }
}

#[test]
fn what_a_peer_sends_ahead_is_bounded_by_the_receive_queue() {
    use spnn_net::transport::Transport;
    let r = roster(2);
    let certs = DeploymentCerts::generate("d", &names(&r)).unwrap();
    let listeners: Vec<_> = (0..2).map(|_| loopback_listener().unwrap()).collect();
    let addrs: Vec<_> = listeners.iter().map(|l| l.1).collect();
    let queue = 64 << 10;
    let handles: Vec<_> = listeners
        .into_iter()
        .enumerate()
        .map(|(i, (l, _))| {
            let me = PartyId(i as u16);
            let identity = certs.identity(&r.name(me).unwrap()).unwrap();
            let mut cfg = TlsConfig::new(me, r.clone(), addrs.clone(), identity);
            cfg.max_frame = 16 << 10;
            cfg.max_queued_bytes = queue;
            std::thread::spawn(move || TlsTransport::establish_with_listener(cfg, l).unwrap())
        })
        .collect();
    let mut ends: Vec<TlsTransport> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let (receiver, sender) = (ends.remove(0), ends.remove(0));
    // 200 frames of 10 000 bytes (2 MB) sent at once; the receiver takes none for a while.
    let frames = 200;
    for i in 0..frames {
        sender.send(PartyId(0), vec![i as u8; 10_000]).unwrap();
    }
    let mut queued = 0;
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(50));
        queued = receiver.queued_bytes(PartyId(1)).unwrap();
    }
    assert!(queued > 0 && queued <= queue, "{queued} bytes queued");
    // Nothing is lost or reordered by the back-pressure.
    for i in 0..frames {
        let frame = receiver.recv(PartyId(1), Duration::from_secs(10)).unwrap();
        assert_eq!(frame, vec![i as u8; 10_000], "frame {i}");
    }
    assert_eq!(receiver.queued_bytes(PartyId(1)).unwrap(), 0);
}
