//! Mutual TLS 1.3 over TCP: tokio + rustls, one connection per pair of parties.
//!
//! **Mesh set-up.** Every party listens on its address; party `i` dials every party `j < i` and
//! accepts from every `j > i`. The dialer checks that the acceptor's certificate names party
//! `j`; the acceptor requires a client certificate from the deployment's CA, reads a hello with
//! the dialer's claimed party id, and checks that the certificate names that party. A connection
//! that fails any check is dropped and the acceptor keeps waiting for the real peer until the
//! connect timeout, which then reports the last failure. Accepted connections handshake
//! concurrently, each within its own [`TlsConfig::handshake_timeout`], at most
//! [`MAX_PENDING_HANDSHAKES`] at once; a new connection beyond that evicts the oldest pending
//! one. An idle or garbage connection therefore holds a slot only until the handshake timeout
//! or until 64 newer connections arrive, and a real peer (whose handshake takes milliseconds)
//! is not delayed unless connections arrive faster than that. A dialer whose connection is
//! dropped before the verdict dials again until the connect timeout; a TLS error (a
//! certificate, an incompatible peer) is final.
//!
//! **Data path.** Each connection is split into a reader task, which reads length-prefixed
//! frames (refusing any above the maximum before reading it) into a channel, and a writer task,
//! which drains a queue. Sending therefore never blocks on the peer, and two parties can send
//! large messages to each other at once. What a peer sent but this party has not received yet is
//! bounded by [`TlsConfig::max_queued_bytes`] per peer (each frame counted with
//! [`FRAME_COST`] bytes of bookkeeping, so empty frames count too): beyond it the reader stops
//! reading and TCP flow control holds the peer back. What this party sent but a peer has not
//! taken is bounded by [`TlsConfig::max_unsent_bytes`]: past it the link fails with
//! [`NetError::PeerLost`] (the peer stopped reading) instead of growing. When a connection fails or closes, the reader reports
//! [`NetError::PeerLost`] to whoever waits for that peer.
//!
//! **Shutdown.** Dropping the transport closes the queues, lets the writers flush what was
//! queued and send TLS `close_notify` (bounded by [`FLUSH_TIMEOUT`]), then stops the runtime.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crossbeam_channel::RecvTimeoutError;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::sync::{Semaphore, mpsc};
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
/// Connections accepted but not yet through their handshake, at most; more are closed at once.
pub const MAX_PENDING_HANDSHAKES: usize = 64;
/// Default of [`TlsConfig::handshake_timeout`].
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default of [`TlsConfig::max_queued_bytes`]: 512 MiB, two frames of the default maximum.
pub const DEFAULT_MAX_QUEUED_BYTES: usize = 2 * DEFAULT_MAX_FRAME;
/// Default of [`TlsConfig::max_unsent_bytes`]: 1 GiB.
pub const DEFAULT_MAX_UNSENT_BYTES: usize = 4 * DEFAULT_MAX_FRAME;
/// Bytes a queued frame is charged beyond its length (its slot and allocation), so that a
/// stream of empty frames fills the receive queue too.
pub const FRAME_COST: usize = 64;
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
    /// How long one accepted connection may take for its TLS handshake and hello.
    pub handshake_timeout: Duration,
    /// Bytes received from one peer and not yet taken by [`Transport::recv`], at most, each
    /// frame counted with [`FRAME_COST`] more (never less than one frame of `max_frame`).
    pub max_queued_bytes: usize,
    /// Bytes sent to one peer and not yet written to its connection, at most, each frame counted
    /// with [`FRAME_COST`] more (never less than one frame of `max_frame`); a send beyond it
    /// fails with [`NetError::PeerLost`].
    pub max_unsent_bytes: usize,
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
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            max_queued_bytes: DEFAULT_MAX_QUEUED_BYTES,
            max_unsent_bytes: DEFAULT_MAX_UNSENT_BYTES,
        }
    }
}

type Incoming = crossbeam_channel::Receiver<Result<Vec<u8>>>;

#[derive(Debug)]
struct Link {
    out: mpsc::UnboundedSender<Vec<u8>>,
    incoming: Incoming,
    /// One permit per byte the reader may still queue; `recv` returns a frame's permits.
    room: Arc<Semaphore>,
    /// Bytes handed to `send` and not yet written by the writer task.
    unsent: Arc<AtomicUsize>,
    writer: JoinHandle<()>,
}

/// One party's end of a mutual-TLS full mesh.
#[derive(Debug)]
pub struct TlsTransport {
    runtime: Option<Runtime>,
    links: Vec<Option<Link>>,
    queue_limit: usize,
    unsent_limit: usize,
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
        if config.max_frame > u32::MAX as usize - FRAME_COST {
            return Err(NetError::Config(format!(
                "max_frame {} does not fit the 32-bit length prefix",
                config.max_frame
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
        let queue = config
            .max_queued_bytes
            .max(config.max_frame + FRAME_COST)
            .min(Semaphore::MAX_PERMITS);
        let unsent_limit = config.max_unsent_bytes.max(config.max_frame + FRAME_COST);
        for (peer, stream) in streams {
            let (rd, wr) = tokio::io::split(stream);
            let (in_tx, in_rx) = crossbeam_channel::unbounded();
            let (out_tx, out_rx) = mpsc::unbounded_channel();
            let room = Arc::new(Semaphore::new(queue));
            let unsent = Arc::new(AtomicUsize::new(0));
            runtime.spawn(read_frames(peer, rd, in_tx, config.max_frame, room.clone()));
            let writer = runtime.spawn(write_frames(wr, out_rx, unsent.clone()));
            links[peer.0 as usize] = Some(Link {
                out: out_tx,
                incoming: in_rx,
                room,
                unsent,
                writer,
            });
        }
        Ok(Self {
            runtime: Some(runtime),
            links,
            queue_limit: queue,
            unsent_limit,
        })
    }

    /// Bytes received from `peer` and waiting for [`Transport::recv`], with [`FRAME_COST`] per
    /// frame, plus the room already reserved for the frame being read.
    pub fn queued_bytes(&self, peer: PartyId) -> Result<usize> {
        let link = self.link(peer)?;
        Ok(self.queue_limit - link.room.available_permits())
    }

    /// Bytes sent to `peer` and not yet written to its connection, with [`FRAME_COST`] per frame.
    pub fn unsent_bytes(&self, peer: PartyId) -> Result<usize> {
        Ok(self.link(peer)?.unsent.load(Ordering::Acquire))
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
        let link = self.link(to)?;
        let len = frame.len() + FRAME_COST;
        let before = link.unsent.fetch_add(len, Ordering::AcqRel);
        if before + len > self.unsent_limit {
            link.unsent.fetch_sub(len, Ordering::AcqRel);
            return Err(NetError::PeerLost {
                peer: to,
                reason: format!(
                    "{before} bytes sent to it are still unwritten (limit {}): it stopped reading",
                    self.unsent_limit
                ),
            });
        }
        link.out.send(frame).map_err(|_| {
            link.unsent.fetch_sub(len, Ordering::AcqRel);
            NetError::PeerLost {
                peer: to,
                reason: "the connection is closed".into(),
            }
        })
    }

    fn recv(&self, from: PartyId, timeout: Duration) -> Result<Vec<u8>> {
        let link = self.link(from)?;
        match link.incoming.recv_timeout(timeout) {
            Ok(frame) => {
                if let Ok(frame) = &frame {
                    link.room.add_permits(frame.len() + FRAME_COST);
                }
                frame
            }
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
    room: Arc<Semaphore>,
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
        // Wait for room before reading the frame: while the receiver is behind, nothing more is
        // read and TCP flow control stops the peer. `len + FRAME_COST ≤ the queue`, and it fits
        // a u32 because `max_frame` is checked against u32 at set-up.
        match room.acquire_many((len + FRAME_COST) as u32).await {
            Ok(permits) => permits.forget(),
            // Only a closed semaphore fails, and nothing closes it.
            Err(_) => return,
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

async fn write_frames(
    mut wr: WriteHalf<Stream>,
    mut rx: mpsc::UnboundedReceiver<Vec<u8>>,
    unsent: Arc<AtomicUsize>,
) {
    while let Some(frame) = rx.recv().await {
        let Ok(len) = u32::try_from(frame.len()) else {
            tracing::error!("frame of {} bytes cannot be length-prefixed", frame.len());
            break;
        };
        let ok = wr.write_all(&len.to_le_bytes()).await.is_ok()
            && wr.write_all(&frame).await.is_ok()
            && wr.flush().await.is_ok();
        unsent.fetch_sub(frame.len() + FRAME_COST, Ordering::AcqRel);
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
    let name = config.roster.name(peer)?;
    loop {
        match dial_once(config, &connector, peer, &name, deadline).await {
            Ok(stream) => return Ok((peer, stream)),
            // Dropped before the verdict: the acceptor may have been full or restarting.
            Err(Dial::Dropped(why)) if Instant::now() + RETRY_PAUSE < deadline => {
                tracing::debug!("{name}: {why}; dialling again");
                tokio::time::sleep(RETRY_PAUSE).await;
            }
            Err(Dial::Dropped(why)) | Err(Dial::Failed(why)) => {
                return Err(NetError::Connect { peer, reason: why });
            }
        }
    }
}

/// Pause between two dials of the same peer.
const RETRY_PAUSE: Duration = Duration::from_millis(100);

/// Why one dial did not give a connection.
enum Dial {
    /// The connection broke before the acceptor's verdict: worth dialling again.
    Dropped(String),
    /// A refusal or a certificate that does not verify, or the deadline: final.
    Failed(String),
}

async fn dial_once(
    config: &TlsConfig,
    connector: &TlsConnector,
    peer: PartyId,
    name: &str,
    deadline: Instant,
) -> std::result::Result<Stream, Dial> {
    let addr = config.addresses[peer.0 as usize];
    let server_name = ServerName::try_from(name.to_string())
        .map_err(|e| Dial::Failed(format!("{name} is not a valid server name: {e}")))?;
    let tcp = loop {
        match tokio::time::timeout_at(deadline, TcpStream::connect(addr)).await {
            Err(_) => {
                return Err(Dial::Failed(format!(
                    "{name} at {addr} did not accept within the connect timeout"
                )));
            }
            Ok(Ok(s)) => break s,
            Ok(Err(_)) if Instant::now() + Duration::from_millis(50) < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Ok(Err(e)) => return Err(Dial::Failed(format!("{name} at {addr}: {e}"))),
        }
    };
    tcp.set_nodelay(true)
        .map_err(|e| Dial::Dropped(format!("{name} at {addr}: {e}")))?;
    let mut tls = match tokio::time::timeout_at(deadline, connector.connect(server_name, tcp)).await
    {
        Err(_) => return Err(Dial::Failed(format!("TLS handshake with {name} timed out"))),
        Ok(Err(e)) if refused_certificate(&e) == Some(Refused::Ours) => {
            return Err(Dial::Failed(format!(
                "{name} at {addr} refused this party's certificate: {e}"
            )));
        }
        Ok(Err(e)) if is_tls_error(&e) => {
            return Err(Dial::Failed(format!(
                "TLS handshake with {name} at {addr}: {e}"
            )));
        }
        // The socket closed or reset under us: the acceptor was full, or restarting.
        Ok(Err(e)) => {
            return Err(Dial::Dropped(format!(
                "TLS handshake with {name} at {addr}: {e}"
            )));
        }
        Ok(Ok(tls)) => tls,
    };
    let mut hello = HELLO_MAGIC.to_vec();
    hello.extend_from_slice(&config.me.0.to_le_bytes());
    let sent = async {
        tls.write_all(&hello).await?;
        tls.flush().await
    };
    sent.await
        .map_err(|e| Dial::Dropped(format!("hello to {name}: {e}")))?;
    // Wait for the acceptor's one-byte verdict, so a refused identity fails here, not later.
    let mut verdict = [0u8; 1];
    match tokio::time::timeout_at(deadline, tls.read_exact(&mut verdict)).await {
        Ok(Ok(_)) if verdict[0] == 1 => Ok(Stream::Client(tls)),
        Ok(Ok(_)) => Err(Dial::Failed(format!(
            "{name} refused this party's identity"
        ))),
        // In TLS 1.3 the acceptor checks our certificate after our side of the handshake
        // is done: its refusal arrives here, as an alert.
        Ok(Err(e)) if refused_certificate(&e).is_some() => Err(Dial::Failed(format!(
            "{name} refused this party's certificate: {e}"
        ))),
        Ok(Err(e)) if is_tls_error(&e) => {
            Err(Dial::Failed(format!("{name} ended the connection: {e}")))
        }
        Ok(Err(e)) => Err(Dial::Dropped(format!(
            "{name} closed the connection before confirming it: {e}"
        ))),
        Err(_) => Err(Dial::Failed(format!(
            "{name} did not confirm the connection in time"
        ))),
    }
}

/// Whose certificate a failed TLS handshake refused, if a certificate was the reason.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Refused {
    /// This party refused the peer's certificate (or its lack of one).
    Theirs,
    /// The peer refused ours: its alert says so.
    Ours,
}

/// Whether an I/O error carries a TLS error (an alert, a certificate, an incompatible peer):
/// final, unlike a socket that merely closed.
fn is_tls_error(e: &std::io::Error) -> bool {
    e.get_ref()
        .is_some_and(|i| i.downcast_ref::<rustls::Error>().is_some())
}

fn refused_certificate(e: &std::io::Error) -> Option<Refused> {
    use rustls::AlertDescription as A;
    match e.get_ref()?.downcast_ref::<rustls::Error>()? {
        rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented => {
            Some(Refused::Theirs)
        }
        rustls::Error::AlertReceived(
            A::BadCertificate
            | A::UnknownCA
            | A::CertificateRequired
            | A::CertificateUnknown
            | A::CertificateRevoked
            | A::CertificateExpired
            | A::UnsupportedCertificate
            | A::DecryptError
            | A::AccessDenied,
        ) => Some(Refused::Ours),
        _ => None,
    }
}

async fn accept_peers(
    config: &TlsConfig,
    listener: TcpListener,
    acceptor: TlsAcceptor,
    mut expected: Vec<PartyId>,
    deadline: Instant,
) -> Result<Vec<(PartyId, Stream)>> {
    // Every party that dials this one; a party already connected may connect again (its dial
    // broke before our verdict reached it, and it dialled anew): its new connection replaces
    // the old one, which it has given up.
    let dialers = expected.clone();
    let mut streams: Vec<(PartyId, Stream)> = Vec::new();
    let mut last_error = String::from("no connection attempt");
    // Dropping the set (on return) aborts the handshakes still running.
    let mut pending = tokio::task::JoinSet::new();
    // The running handshakes, oldest first, to evict when a new connection finds no slot.
    let mut running: std::collections::VecDeque<(tokio::task::AbortHandle, SocketAddr)> =
        std::collections::VecDeque::new();
    while !expected.is_empty() {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, from)) => {
                    running.retain(|(h, _)| !h.is_finished());
                    if running.len() >= MAX_PENDING_HANDSHAKES
                        && let Some((oldest, who)) = running.pop_front()
                    {
                        oldest.abort();
                        last_error = format!(
                            "{who}: evicted by a newer connection ({MAX_PENDING_HANDSHAKES} \
                             handshakes were running)"
                        );
                        tracing::warn!("refused a connection from {last_error}");
                    }
                    let limit = deadline.min(Instant::now() + config.handshake_timeout);
                    let handshake = handshake(acceptor.clone(), tcp, config.handshake_timeout, limit);
                    let handle = pending.spawn(async move { (from, handshake.await) });
                    running.push_back((handle, from));
                }
                Err(e) => {
                    // Out of file descriptors, say: wait a little instead of spinning.
                    last_error = format!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            Some(done) = pending.join_next(), if !pending.is_empty() => {
                let Ok((from, result)) = done else {
                    continue; // a handshake task panicked or was cancelled: nothing to accept
                };
                let outcome = match result {
                    Ok((claimed, tls)) => admit(config, &dialers, claimed, tls).await,
                    Err(e) => Err(e),
                };
                match outcome {
                    Ok((peer, stream)) => {
                        expected.retain(|p| *p != peer);
                        streams.retain(|(p, _)| *p != peer);
                        streams.push((peer, stream));
                    }
                    Err(reason) => {
                        tracing::warn!("refused a connection from {from}: {reason}");
                        last_error = format!("{from}: {reason}");
                    }
                }
            },
            _ = tokio::time::sleep_until(deadline) => {
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
        }
    }
    Ok(streams)
}

/// One accepted connection up to the dialer's hello: the TLS handshake with a client
/// certificate from the deployment's CA, then the claimed party id. Every failure says which
/// step failed.
async fn handshake(
    acceptor: TlsAcceptor,
    tcp: TcpStream,
    timeout: Duration,
    limit: Instant,
) -> std::result::Result<(PartyId, tokio_rustls::server::TlsStream<TcpStream>), String> {
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut tls = match tokio::time::timeout_at(limit, acceptor.accept(tcp)).await {
        Err(_) => {
            return Err(format!(
                "no TLS handshake within {timeout:?} (an idle connection)"
            ));
        }
        Ok(Err(e)) => {
            return Err(match refused_certificate(&e) {
                Some(Refused::Theirs) => format!("client certificate refused: {e}"),
                Some(Refused::Ours) => format!("the dialer refused this party's certificate: {e}"),
                None => format!("TLS handshake failed, not a TLS client of this deployment: {e}"),
            });
        }
        Ok(Ok(tls)) => tls,
    };
    let mut hello = [0u8; 6];
    match tokio::time::timeout_at(limit, tls.read_exact(&mut hello)).await {
        Err(_) => return Err(format!("no hello within {timeout:?} of connecting")),
        Ok(Err(e)) => return Err(format!("hello: {e}")),
        Ok(Ok(_)) if &hello[..4] != HELLO_MAGIC => {
            return Err("the hello is not an spnn party's".into());
        }
        Ok(Ok(_)) => {}
    }
    Ok((PartyId(u16::from_le_bytes([hello[4], hello[5]])), tls))
}

/// Checks a handshaken connection's claim against the parties that dial this one and its
/// certificate, and tells the dialer the verdict.
async fn admit(
    config: &TlsConfig,
    dialers: &[PartyId],
    claimed: PartyId,
    mut tls: tokio_rustls::server::TlsStream<TcpStream>,
) -> std::result::Result<(PartyId, Stream), String> {
    let verdict = (|| {
        if !dialers.contains(&claimed) {
            return Err(format!(
                "claims to be {claimed}, which does not dial this party"
            ));
        }
        let cert = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .ok_or_else(|| "no client certificate".to_string())?;
        let name = config.roster.name(claimed).map_err(|e| e.to_string())?;
        certificate_names(cert, &name).map_err(|e| e.to_string())
    })();
    // One byte into a fresh connection's send buffer; bounded anyway, so a peer that stops
    // reading cannot hold the accept loop.
    let reply = async {
        tls.write_all(&[u8::from(verdict.is_ok())]).await?;
        tls.flush().await
    };
    let sent = tokio::time::timeout(Duration::from_secs(1), reply).await;
    verdict?;
    match sent {
        Ok(Ok(())) => Ok((claimed, Stream::Server(tls))),
        Ok(Err(e)) => Err(format!("verdict to {claimed}: {e}")),
        Err(_) => Err(format!("verdict to {claimed} not taken within 1 s")),
    }
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
