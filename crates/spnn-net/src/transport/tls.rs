//! Mutual TLS 1.3 over TCP: tokio + rustls, one connection per pair of parties.
//!
//! **Mesh set-up.** Every party listens on its address; party `i` dials every party `j < i` and
//! accepts from every `j > i`. The dialer checks that the acceptor's certificate names party
//! `j`; the acceptor requires a client certificate from the deployment's CA, reads a hello with
//! the dialer's claimed party id, and checks that the certificate names that party. A connection
//! that fails any check is dropped and the acceptor keeps waiting for the real peer until the
//! connect timeout, which then reports the last failure.
//!
//! **Data path.** Each connection is split into a reader task, which reads length-prefixed
//! frames (refusing any above the maximum before reading it) into a channel, and a writer task,
//! which drains a queue. Sending therefore never blocks on the peer, and two parties can send
//! large messages to each other at once. When a connection fails or closes, the reader reports
//! [`NetError::PeerLost`] to whoever waits for that peer.
//!
//! **Shutdown.** Dropping the transport closes the queues, lets the writers flush what was
//! queued and send TLS `close_notify` (bounded by [`FLUSH_TIMEOUT`]), then stops the runtime.

use std::net::SocketAddr;
use std::time::Duration;

use crossbeam_channel::RecvTimeoutError;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::Transport;
use crate::certs::{Identity, certificate_names};
use crate::error::{NetError, Result};
use crate::frame::{DEFAULT_MAX_FRAME, LENGTH_PREFIX};
use crate::party::{PartyId, Roster};

/// How long a dropped transport waits for its queued frames to be written.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);
const HELLO_MAGIC: &[u8; 4] = b"SPNN";

/// Everything a party needs to join a TLS mesh.
#[derive(Clone, Debug)]
pub struct TlsConfig {
    /// This party.
    pub me: PartyId,
    /// The deployment.
    pub roster: Roster,
    /// Addresses of all parties, indexed by party id (ours is where we listen).
    pub addresses: Vec<SocketAddr>,
    /// This party's certificate, key and the deployment CA.
    pub identity: Identity,
    /// How long to wait for the whole mesh to come up.
    pub connect_timeout: Duration,
    /// Largest frame accepted from a peer.
    pub max_frame: usize,
}

impl TlsConfig {
    /// A configuration with a 30 s connect timeout and the default maximum frame size.
    pub fn new(
        me: PartyId,
        roster: Roster,
        addresses: Vec<SocketAddr>,
        identity: Identity,
    ) -> Self {
        Self {
            me,
            roster,
            addresses,
            identity,
            connect_timeout: Duration::from_secs(30),
            max_frame: DEFAULT_MAX_FRAME,
        }
    }
}

type Incoming = crossbeam_channel::Receiver<Result<Vec<u8>>>;

#[derive(Debug)]
struct Link {
    out: mpsc::UnboundedSender<Vec<u8>>,
    incoming: Incoming,
    writer: JoinHandle<()>,
}

/// One party's end of a mutual-TLS full mesh.
#[derive(Debug)]
pub struct TlsTransport {
    runtime: Option<Runtime>,
    links: Vec<Option<Link>>,
}

type Stream = tokio_rustls::TlsStream<TcpStream>;

impl TlsTransport {
    /// Binds `config.addresses[me]` and establishes the mesh.
    pub fn establish(config: TlsConfig) -> Result<Self> {
        let addr = *config
            .addresses
            .get(config.me.0 as usize)
            .ok_or_else(|| NetError::Config(format!("no address for {}", config.me)))?;
        let listener = std::net::TcpListener::bind(addr)
            .map_err(|e| NetError::Io(format!("bind {addr}: {e}")))?;
        Self::establish_with_listener(config, listener)
    }

    /// Establishes the mesh on an already bound listener (useful with port 0).
    pub fn establish_with_listener(
        config: TlsConfig,
        listener: std::net::TcpListener,
    ) -> Result<Self> {
        if config.addresses.len() != config.roster.len() {
            return Err(NetError::Config(format!(
                "{} addresses for {} parties",
                config.addresses.len(),
                config.roster.len()
            )));
        }
        let expected_name = config.roster.name(config.me)?;
        if config.identity.name() != expected_name {
            return Err(NetError::Config(format!(
                "identity of {} used by {} ({expected_name})",
                config.identity.name(),
                config.me
            )));
        }
        listener.set_nonblocking(true)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("spnn-net")
            .enable_all()
            .build()?;
        let streams = runtime.block_on(connect_mesh(&config, listener))?;
        let mut links: Vec<Option<Link>> = (0..config.roster.len()).map(|_| None).collect();
        for (peer, stream) in streams {
            let (rd, wr) = tokio::io::split(stream);
            let (in_tx, in_rx) = crossbeam_channel::unbounded();
            let (out_tx, out_rx) = mpsc::unbounded_channel();
            runtime.spawn(read_frames(peer, rd, in_tx, config.max_frame));
            let writer = runtime.spawn(write_frames(wr, out_rx));
            links[peer.0 as usize] = Some(Link {
                out: out_tx,
                incoming: in_rx,
                writer,
            });
        }
        Ok(Self {
            runtime: Some(runtime),
            links,
        })
    }

    fn link(&self, peer: PartyId) -> Result<&Link> {
        self.links
            .get(peer.0 as usize)
            .and_then(Option::as_ref)
            .ok_or(NetError::UnknownPeer(peer))
    }
}

impl Transport for TlsTransport {
    fn send(&self, to: PartyId, frame: Vec<u8>) -> Result<()> {
        self.link(to)?
            .out
            .send(frame)
            .map_err(|_| NetError::PeerLost {
                peer: to,
                reason: "the connection is closed".into(),
            })
    }

    fn recv(&self, from: PartyId, timeout: Duration) -> Result<Vec<u8>> {
        match self.link(from)?.incoming.recv_timeout(timeout) {
            Ok(frame) => frame,
            Err(RecvTimeoutError::Timeout) => Err(NetError::Timeout {
                peer: from,
                waited: timeout,
            }),
            Err(RecvTimeoutError::Disconnected) => Err(NetError::PeerLost {
                peer: from,
                reason: "the connection is closed".into(),
            }),
        }
    }
}

impl Drop for TlsTransport {
    fn drop(&mut self) {
        let Some(runtime) = self.runtime.take() else {
            return;
        };
        let writers: Vec<JoinHandle<()>> = self
            .links
            .drain(..)
            .flatten()
            .map(|l| {
                drop(l.out);
                l.writer
            })
            .collect();
        runtime.block_on(async {
            let _ = tokio::time::timeout(FLUSH_TIMEOUT, async {
                for w in writers {
                    let _ = w.await;
                }
            })
            .await;
        });
        runtime.shutdown_timeout(Duration::from_secs(1));
    }
}

async fn read_frames(
    peer: PartyId,
    mut rd: ReadHalf<Stream>,
    tx: crossbeam_channel::Sender<Result<Vec<u8>>>,
    max_frame: usize,
) {
    let lost = |e: std::io::Error| NetError::PeerLost {
        peer,
        reason: if e.kind() == std::io::ErrorKind::UnexpectedEof {
            "connection closed by the peer".into()
        } else {
            e.to_string()
        },
    };
    loop {
        let mut len = [0u8; LENGTH_PREFIX];
        if let Err(e) = rd.read_exact(&mut len).await {
            let _ = tx.send(Err(lost(e)));
            return;
        }
        let len = u32::from_le_bytes(len) as usize;
        if len > max_frame {
            // The stream cannot be resynchronised after an oversized frame: report and close.
            let _ = tx.send(Err(NetError::FrameTooLarge {
                peer,
                len: len as u64,
                max: max_frame as u64,
            }));
            return;
        }
        let mut frame = vec![0u8; len];
        if let Err(e) = rd.read_exact(&mut frame).await {
            let _ = tx.send(Err(lost(e)));
            return;
        }
        if tx.send(Ok(frame)).is_err() {
            return;
        }
    }
}

async fn write_frames(mut wr: WriteHalf<Stream>, mut rx: mpsc::UnboundedReceiver<Vec<u8>>) {
    while let Some(frame) = rx.recv().await {
        let Ok(len) = u32::try_from(frame.len()) else {
            tracing::error!("frame of {} bytes cannot be length-prefixed", frame.len());
            break;
        };
        let ok = wr.write_all(&len.to_le_bytes()).await.is_ok()
            && wr.write_all(&frame).await.is_ok()
            && wr.flush().await.is_ok();
        if !ok {
            return;
        }
    }
    let _ = wr.shutdown().await;
}

async fn connect_mesh(
    config: &TlsConfig,
    listener: std::net::TcpListener,
) -> Result<Vec<(PartyId, Stream)>> {
    let deadline = Instant::now() + config.connect_timeout;
    let listener = TcpListener::from_std(listener)?;
    let acceptor = TlsAcceptor::from(config.identity.server_config()?);
    let connector = TlsConnector::from(config.identity.client_config()?);
    let me = config.me;
    let inbound: Vec<PartyId> = config.roster.ids().filter(|p| *p > me).collect();
    let accept = accept_peers(config, listener, acceptor, inbound, deadline);
    // Accept and dial concurrently; the dials themselves go one after another, which is fine
    // because every peer accepts in any order until the deadline.
    let dials = async {
        let mut out = Vec::new();
        for peer in config.roster.ids().filter(|p| *p < me) {
            out.push(dial_peer(config, connector.clone(), peer, deadline).await?);
        }
        Ok::<_, NetError>(out)
    };
    let (mut streams, dialed) = tokio::try_join!(accept, dials)?;
    streams.extend(dialed);
    Ok(streams)
}

async fn dial_peer(
    config: &TlsConfig,
    connector: TlsConnector,
    peer: PartyId,
    deadline: Instant,
) -> Result<(PartyId, Stream)> {
    let addr = config.addresses[peer.0 as usize];
    let name = config.roster.name(peer)?;
    let server_name =
        ServerName::try_from(name.clone()).map_err(|e| NetError::Config(e.to_string()))?;
    let fail = |reason: String| NetError::Connect { peer, reason };
    let tcp = loop {
        match tokio::time::timeout_at(deadline, TcpStream::connect(addr)).await {
            Err(_) => {
                return Err(fail(format!(
                    "{name} at {addr} did not accept within the connect timeout"
                )));
            }
            Ok(Ok(s)) => break s,
            Ok(Err(_)) if Instant::now() + Duration::from_millis(50) < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Ok(Err(e)) => return Err(fail(format!("{name} at {addr}: {e}"))),
        }
    };
    tcp.set_nodelay(true)?;
    let mut tls = tokio::time::timeout_at(deadline, connector.connect(server_name, tcp))
        .await
        .map_err(|_| fail(format!("TLS handshake with {name} timed out")))?
        .map_err(|e| fail(format!("TLS handshake with {name} at {addr}: {e}")))?;
    let mut hello = HELLO_MAGIC.to_vec();
    hello.extend_from_slice(&config.me.0.to_le_bytes());
    tls.write_all(&hello)
        .await
        .map_err(|e| fail(format!("hello: {e}")))?;
    tls.flush().await.map_err(|e| fail(format!("hello: {e}")))?;
    // Wait for the acceptor's one-byte verdict, so a refused identity fails here, not later.
    let mut verdict = [0u8; 1];
    match tokio::time::timeout_at(deadline, tls.read_exact(&mut verdict)).await {
        Ok(Ok(_)) if verdict[0] == 1 => Ok((peer, Stream::Client(tls))),
        Ok(_) => Err(fail(format!("{name} refused this party's identity"))),
        Err(_) => Err(fail(format!(
            "{name} did not confirm the connection in time"
        ))),
    }
}

async fn accept_peers(
    config: &TlsConfig,
    listener: TcpListener,
    acceptor: TlsAcceptor,
    mut expected: Vec<PartyId>,
    deadline: Instant,
) -> Result<Vec<(PartyId, Stream)>> {
    let mut streams = Vec::new();
    let mut last_error = String::from("no connection attempt");
    while !expected.is_empty() {
        let (tcp, from) = match tokio::time::timeout_at(deadline, listener.accept()).await {
            Ok(Ok(x)) => x,
            Ok(Err(e)) => {
                last_error = e.to_string();
                continue;
            }
            Err(_) => {
                let missing: Vec<String> = expected
                    .iter()
                    .map(|p| config.roster.name(*p).unwrap_or_else(|_| p.to_string()))
                    .collect();
                return Err(NetError::Connect {
                    peer: expected[0],
                    reason: format!(
                        "{} did not connect within the connect timeout (last failure: {last_error})",
                        missing.join(", ")
                    ),
                });
            }
        };
        match accept_one(config, &acceptor, tcp, &expected, deadline).await {
            Ok((peer, stream)) => {
                expected.retain(|p| *p != peer);
                streams.push((peer, stream));
            }
            Err(e) => {
                tracing::warn!("refused a connection from {from}: {e}");
                last_error = format!("{from}: {e}");
            }
        }
    }
    Ok(streams)
}

async fn accept_one(
    config: &TlsConfig,
    acceptor: &TlsAcceptor,
    tcp: TcpStream,
    expected: &[PartyId],
    deadline: Instant,
) -> Result<(PartyId, Stream)> {
    tcp.set_nodelay(true)?;
    let cfail = |reason: String| NetError::Certificate(reason);
    let mut tls = tokio::time::timeout_at(deadline, acceptor.accept(tcp))
        .await
        .map_err(|_| cfail("TLS handshake timed out".into()))?
        .map_err(|e| cfail(format!("TLS handshake: {e}")))?;
    let mut hello = [0u8; 6];
    tokio::time::timeout_at(deadline, tls.read_exact(&mut hello))
        .await
        .map_err(|_| cfail("no hello".into()))?
        .map_err(|e| cfail(format!("hello: {e}")))?;
    if &hello[..4] != HELLO_MAGIC {
        return Err(cfail("bad hello".into()));
    }
    let claimed = PartyId(u16::from_le_bytes([hello[4], hello[5]]));
    let verdict = (|| {
        if !expected.contains(&claimed) {
            return Err(cfail(format!(
                "unexpected connection claiming to be {claimed}"
            )));
        }
        let cert = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .ok_or_else(|| cfail("no client certificate".into()))?;
        certificate_names(cert, &config.roster.name(claimed)?)
    })();
    let _ = tls.write_all(&[u8::from(verdict.is_ok())]).await;
    let _ = tls.flush().await;
    verdict?;
    Ok((claimed, Stream::Server(tls)))
}

/// Binds a listener on `127.0.0.1:0` for tests and returns it with its address.
pub fn loopback_listener() -> Result<(std::net::TcpListener, SocketAddr)> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = l.local_addr()?;
    Ok((l, addr))
}

/// Every party of `roster` on this machine: binds loopback listeners, establishes the mutual-TLS
/// mesh in one thread per party and returns the networks, by party id. For tests, benchmarks
/// and single-machine demonstrations of the real transport.
pub fn loopback_mesh(
    roster: &Roster,
    certs: &crate::certs::DeploymentCerts,
    config: crate::NetworkConfig,
) -> Result<Vec<crate::Network>> {
    let listeners = roster
        .ids()
        .map(|_| loopback_listener())
        .collect::<Result<Vec<_>>>()?;
    let addrs: Vec<SocketAddr> = listeners.iter().map(|l| l.1).collect();
    let handles: Vec<_> = roster
        .ids()
        .zip(listeners)
        .map(|(me, (listener, _))| {
            let identity = certs.identity(&roster.name(me)?)?;
            let mut cfg = TlsConfig::new(me, roster.clone(), addrs.clone(), identity);
            cfg.max_frame = config.max_frame;
            let roster = roster.clone();
            Ok(std::thread::spawn(move || {
                let t = TlsTransport::establish_with_listener(cfg, listener)?;
                crate::Network::new(me, roster, config, t)
            }))
        })
        .collect::<Result<_>>()?;
    handles
        .into_iter()
        .map(|h| {
            h.join()
                .map_err(|_| NetError::Config("a mesh thread panicked".into()))?
        })
        .collect()
}
