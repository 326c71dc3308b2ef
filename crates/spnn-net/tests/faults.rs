//! Bad peers and bad bytes: wrong certificates, vanished and stalled peers, malformed frames.
//! Every case must end in a clear error naming the peer, never a panic or a hang.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use spnn_crypto::RingMatrix;
use spnn_net::certs::DeploymentCerts;
use spnn_net::frame::{PROTOCOL_VERSION, encode_frame};
use spnn_net::transport::tls::{
    DEFAULT_HANDSHAKE_TIMEOUT, FRAME_COST, TlsConfig, TlsTransport, loopback_listener,
};
use spnn_net::{IdList, NetError, Network, NetworkConfig, PartyId, Roster};

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

/// A loopback listener and a configuration for every party of `r`, holding the certificate of
/// `identity(party)` and changed by `tune`; the parties' addresses.
fn configs(
    r: &Roster,
    certs: &DeploymentCerts,
    identity: impl Fn(PartyId) -> String,
    tune: impl Fn(&mut TlsConfig),
) -> (Vec<(TlsConfig, std::net::TcpListener)>, Vec<SocketAddr>) {
    let listeners: Vec<_> = r.ids().map(|_| loopback_listener().unwrap()).collect();
    let addrs: Vec<SocketAddr> = listeners.iter().map(|l| l.1).collect();
    let configs = r
        .ids()
        .zip(listeners)
        .map(|(me, (l, _))| {
            let id = certs.identity(&identity(me)).unwrap();
            let mut cfg = TlsConfig::new(me, r.clone(), addrs.clone(), id);
            tune(&mut cfg);
            (cfg, l)
        })
        .collect();
    (configs, addrs)
}

/// Establishes every configured party, each in its own thread.
fn establish(
    configs: Vec<(TlsConfig, std::net::TcpListener)>,
) -> Vec<Result<TlsTransport, NetError>> {
    let handles: Vec<_> = configs
        .into_iter()
        .map(|(cfg, l)| std::thread::spawn(move || TlsTransport::establish_with_listener(cfg, l)))
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
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
    let name = |me: PartyId| match me.0 {
        2 => "holder-0".to_string(),
        _ => r.name(me).unwrap(),
    };
    let (configs, _) = configs(&r, &certs, name, |c| {
        c.connect_timeout = Duration::from_secs(3)
    });
    let results = establish(configs);
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
    assert_lost_party_1(&err);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "loss detected after {:?}",
        start.elapsed()
    );
    assert!(err.to_string().contains("party 1"));
}

fn assert_lost_party_1(err: &NetError) {
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
}

#[test]
fn a_vanished_peer_is_reported_promptly() {
    let r = roster(2);
    let cfg = NetworkConfig::new(1).with_timeout(Duration::from_secs(30));
    check_peer_loss(Network::in_memory(&r, cfg));
    let certs = DeploymentCerts::generate("d", &names(&r)).unwrap();
    check_peer_loss(tls_mesh(&r, &certs, cfg));
}

/// In one process a party that stops early may leave other handles of its network alive (the
/// simulation keeps them for transcripts): closing its end tells its peers at once, and its own
/// later sends fail, instead of every peer waiting out the receive timeout.
#[test]
fn a_closed_end_is_reported_as_lost_while_other_handles_live() {
    let nets = Network::in_memory(
        &roster(2),
        NetworkConfig::new(1).with_timeout(Duration::from_secs(30)),
    );
    let kept = nets[1].clone();
    nets[1].close();
    assert_lost_party_1(&nets[0].recv::<IdList>(PartyId(1)).unwrap_err());
    assert!(matches!(
        kept.send(PartyId(0), &IdList(vec![1])),
        Err(NetError::PeerLost { .. })
    ));
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
    let (configs, addrs) = configs(&r, &certs, |me| r.name(me).unwrap(), |_| {});
    // The server (party 0) and holder-0 (party 1) accept; both are stalled before anyone dials,
    // with more connections than they handshake at once (the oldest are evicted).
    let _held: Vec<_> = [addrs[0], addrs[1]]
        .into_iter()
        .flat_map(|a| stall(a, 100, 10))
        .collect();
    let start = Instant::now();
    let transports = establish(configs);
    let elapsed = start.elapsed();
    let nets: Vec<Network> = r
        .ids()
        .zip(transports)
        .map(|(me, t)| Network::new(me, r.clone(), NetworkConfig::new(4), t.unwrap()).unwrap())
        .collect();
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

/// Two parties over TLS with small queue limits: `(party 0, party 1)`.
fn two_ends(max_queued: usize, max_unsent: usize) -> (TlsTransport, TlsTransport) {
    let r = roster(2);
    let certs = DeploymentCerts::generate("d", &names(&r)).unwrap();
    let (configs, _) = configs(
        &r,
        &certs,
        |me| r.name(me).unwrap(),
        |c| {
            c.max_frame = 16 << 10;
            c.max_queued_bytes = max_queued;
            c.max_unsent_bytes = max_unsent;
        },
    );
    let mut ends = establish(configs).into_iter().map(Result::unwrap);
    let first = ends.next().unwrap();
    (first, ends.next().unwrap())
}

/// Waits until `f` holds (up to 10 s); says whether it did.
fn eventually(f: impl Fn() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn a_receiver_that_falls_behind_holds_the_sender_back_without_losing_frames() {
    use spnn_net::transport::Transport;
    let queue = 64 << 10;
    let (receiver, sender) = two_ends(queue, 1 << 30);
    // 10 MB of frames, more than the loopback socket buffers hold, some of them empty; the
    // receiver takes none for a while.
    let frames: Vec<Vec<u8>> = (0..2000)
        .map(|i| vec![i as u8; if i % 2 == 0 { 10_000 } else { 0 }])
        .collect();
    for f in &frames {
        sender.send(PartyId(0), f.clone()).unwrap();
    }
    std::thread::sleep(Duration::from_millis(500));
    let queued = receiver.queued_bytes(PartyId(1)).unwrap();
    assert!(queued > 0 && queued <= queue, "{queued} bytes queued");
    // The rest waits at the sender: TCP flow control, not the receiver's memory.
    let unsent = sender.unsent_bytes(PartyId(0)).unwrap();
    assert!(
        unsent > 1 << 20,
        "only {unsent} bytes held back at the sender"
    );
    // Nothing is lost or reordered by the back-pressure.
    for (i, f) in frames.iter().enumerate() {
        let got = receiver.recv(PartyId(1), Duration::from_secs(10)).unwrap();
        assert!(&got == f, "frame {i}");
    }
    assert!(eventually(|| sender.unsent_bytes(PartyId(0)).unwrap() == 0));
    assert_eq!(receiver.queued_bytes(PartyId(1)).unwrap(), 0);
}

#[test]
fn empty_frames_fill_the_receive_queue_too() {
    use spnn_net::transport::Transport;
    let queue = 64 << 10;
    let (receiver, sender) = two_ends(queue, 1 << 30);
    // A million empty frames: about 26 MB of TLS records. Were they free, the receiver would
    // take them all into memory; charged FRAME_COST each, it holds about a thousand.
    let n = 1_000_000;
    for _ in 0..n {
        sender.send(PartyId(0), Vec::new()).unwrap();
    }
    // Wait until the sender's writer stops making progress: it is blocked on the socket.
    let mut unsent = sender.unsent_bytes(PartyId(0)).unwrap();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(500));
        let now = sender.unsent_bytes(PartyId(0)).unwrap();
        if now == unsent {
            break;
        }
        unsent = now;
    }
    let queued = receiver.queued_bytes(PartyId(1)).unwrap();
    assert!(queued <= queue, "{queued} bytes queued");
    assert!(
        unsent > n / 2 * FRAME_COST,
        "only {unsent} bytes held back at the sender: the receiver read the empty frames freely"
    );
    drop(receiver); // first, so the sender's writer is not left waiting to flush
}

#[test]
fn a_peer_that_stops_reading_fails_the_link_instead_of_filling_memory() {
    use spnn_net::transport::Transport;
    let max_unsent = 256 << 10;
    let (receiver, sender) = two_ends(64 << 10, max_unsent);
    // The receiver never reads: its queue fills, then the sockets, then the sender's queue.
    let mut sent = 0usize;
    let err = loop {
        match sender.send(PartyId(0), vec![7; 10_000]) {
            Ok(()) => sent += 10_000,
            Err(e) => break e,
        }
        assert!(
            sent < 200 << 20,
            "200 MB accepted for a peer that reads nothing"
        );
        if sent.is_multiple_of(1_000_000) {
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    assert!(
        matches!(
            &err,
            NetError::PeerLost {
                peer: PartyId(0),
                reason
            } if reason.contains("stopped reading")
        ),
        "{err}"
    );
    assert!(sender.unsent_bytes(PartyId(0)).unwrap() <= max_unsent);
    drop(receiver);
}

#[test]
fn a_party_that_dials_again_replaces_its_earlier_connection() {
    let r = roster(3);
    let certs = DeploymentCerts::generate("d", &names(&r)).unwrap();
    let (mut configs, addrs) = configs(
        &r,
        &certs,
        |me| r.name(me).unwrap(),
        |c| c.connect_timeout = Duration::from_secs(20),
    );
    let (holder1, holder0, server) = (
        configs.pop().unwrap(),
        configs.pop().unwrap(),
        configs.pop().unwrap(),
    );
    let server =
        std::thread::spawn(move || TlsTransport::establish_with_listener(server.0, server.1));
    // holder-0's first attempt reaches the server, then gives up (holder-1 never dials it in
    // time), dropping its connection; the server keeps waiting for holder-1.
    let (mut first, listener) = holder0;
    let second = first.clone();
    first.connect_timeout = Duration::from_millis(800);
    let err = TlsTransport::establish_with_listener(first, listener).unwrap_err();
    assert!(err.to_string().contains("holder-1"), "{err}");
    // holder-0 starts again on the same address and reaches the server (a loopback handshake
    // takes milliseconds; holder-1 comes a second later, so the server is still accepting:
    // a dialer that comes back after the acceptor has finished finds the port closed, and the
    // acceptor learns of the dead connection at its first receive).
    let listener = std::net::TcpListener::bind(addrs[1]).unwrap();
    let again = std::thread::spawn(move || TlsTransport::establish_with_listener(second, listener));
    std::thread::sleep(Duration::from_secs(1));
    let h1 =
        std::thread::spawn(move || TlsTransport::establish_with_listener(holder1.0, holder1.1));
    let transports: Vec<TlsTransport> = [server, again, h1]
        .into_iter()
        .map(|h| h.join().unwrap().unwrap())
        .collect();
    // The server talks to holder-0 over the new connection.
    let nets: Vec<Network> = r
        .ids()
        .zip(transports)
        .map(|(me, t)| Network::new(me, r.clone(), NetworkConfig::new(5), t).unwrap())
        .collect();
    let handles: Vec<_> = nets
        .into_iter()
        .map(|net| std::thread::spawn(move || all_to_all(&net, 8, 8)))
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}
