//! The event loop: one thread, one `mio` poll, owning every socket and the
//! [`Server`]. Each iteration drains every ready socket (reading and
//! dispatching all complete frames), then encodes all queued responses and
//! flushes each connection once, so pipelined requests are batched into few
//! system calls.
//!
//! With `-tlscert`, a client connection (and a slave's follow stream, with
//! `-tlsca`) carries a rustls session between its plaintext buffers and
//! the socket ([`crate::tls`]); everything above the buffers (frames,
//! output caps, pausing) is the same as for plain TCP. The web viewer is
//! plain HTTP.

use std::io::{self, Read};
use std::net::SocketAddr;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use doozer_proto::{encode_frame, FrameDecoder, Request, Response};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use prost::Message;

use crate::attach::{self, Attach, AttachError, Followed};
use crate::boot::{Boot, BootError, Plan, Registrar};
use crate::cluster::NodeInfo;
use crate::config::Config;
use crate::server::{ClusterConfig, ConnId, RoleChange, Secrets, Server, ServerConfig};
use crate::store::Rev;
use crate::tls::{self, NodeTls};
use crate::transport::{PeerKey, PeerTransport};
use crate::web;

const CLIENT_LISTENER: Token = Token(usize::MAX - 1);
const WEB_LISTENER: Token = Token(usize::MAX - 2);
const PEER_SOCKET: Token = Token(usize::MAX - 3);
const FOLLOW_STREAM: Token = Token(usize::MAX - 4);
const ATTACHED: Token = Token(usize::MAX - 5);
/// Shortest silence of a follow stream after which the slave attaches
/// elsewhere (see `Node::follow_idle`).
const FOLLOW_IDLE_MIN: Duration = Duration::from_secs(5);
/// Wait between attempts to attach again after losing the followed node.
const REATTACH_INTERVAL: Duration = Duration::from_secs(1);

/// Most client and web connections open at once; more are refused.
pub const MAX_CONNECTIONS: usize = 20_000;
/// Above this many bytes of unsent responses a connection is not read
/// from until it drains, so a client that never reads cannot grow memory.
pub const MAX_PENDING_OUTPUT: usize = 8 << 20;
/// Above this many bytes of unsent output a connection is closed. Reading
/// pauses at [`MAX_PENDING_OUTPUT`], but answers that need no request (a
/// follower's stream of changes) keep coming; this bounds them. Room for a
/// store copy of about 1.5 million 100-byte files.
pub const MAX_UNSENT_OUTPUT: usize = 256 << 20;
/// Bytes read from one socket per wake-up before moving on to others.
const READ_CHUNK: usize = 64 << 10;
/// How often event streams get a keep-alive comment.
const PING_INTERVAL: Duration = Duration::from_secs(15);
/// Bytes read from one connection before the others get a turn.
const READ_BUDGET: usize = 1 << 20;

const LISTEN_HINT: &str = "pick another with -l ADDR";

/// A start-up failure, reported as one line.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// A listen address could not be bound.
    #[error("cannot listen on {addr} ({what}): {source}; {hint}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Which listener.
        what: &'static str,
        /// The OS error.
        source: io::Error,
        /// Which flag picks another address.
        hint: &'static str,
    },
    /// The poll could not be created or waited on.
    #[error("event loop: {0}")]
    Poll(#[from] io::Error),
    /// No `-a` member could be attached to.
    #[error("cannot attach to the cluster: {0}")]
    Attach(#[from] AttachError),
    /// Booting through the name service (`-b`) failed.
    #[error("cannot boot through the name service -b {uri}: {why}")]
    Boot {
        /// The name service's URI, without its secret.
        uri: String,
        /// What went wrong.
        why: String,
    },
    /// The TLS files could not be used.
    #[error("{0}")]
    Tls(String),
}

enum Kind {
    Client,
    Web,
}

struct Conn {
    stream: TcpStream,
    /// The TLS session of a client connection on a TLS node.
    tls: Option<Box<rustls::ServerConnection>>,
    kind: Kind,
    rbuf: BytesMut,
    wbuf: BytesMut,
    /// WRITABLE interest is registered (output is waiting on the socket).
    want_write: bool,
    /// Reading paused because too much output is waiting.
    paused: bool,
    /// Close once the output is flushed (web responses, or the peer
    /// finished sending).
    close_after_flush: bool,
    /// Close now.
    dead: bool,
    /// A web connection serving an event stream.
    events: Option<Box<web::EventStream>>,
}

/// The connection a slave follows its CAL on.
struct FollowConn {
    stream: TcpStream,
    /// The TLS session, when the cluster serves TLS.
    tls: Option<Box<rustls::ClientConnection>>,
    rbuf: BytesMut,
    /// Requests of this node to the CAL (slot claims, catch-up NOPs).
    wbuf: BytesMut,
    /// WRITABLE interest is registered.
    want_write: bool,
    /// When bytes last arrived: every CAL pulses, so a silent stream means
    /// the followed node is stopped or cut off.
    last_data: Instant,
}

impl FollowConn {
    /// Makes the attached (blocking) stream part of the loop, keeping the
    /// bytes already read from it.
    fn register(poll: &Poll, followed: Followed) -> io::Result<FollowConn> {
        followed.stream.set_nonblocking(true)?;
        let mut stream = TcpStream::from_std(followed.stream);
        poll.registry()
            .register(&mut stream, FOLLOW_STREAM, Interest::READABLE)?;
        Ok(FollowConn {
            stream,
            tls: followed.tls,
            rbuf: followed.rbuf,
            wbuf: BytesMut::new(),
            want_write: false,
            last_data: Instant::now(),
        })
    }

    /// Writes what it can of the queued requests.
    fn flush(&mut self, poll: &Poll) -> io::Result<()> {
        tls::write_maybe(self.tls.as_deref_mut(), &mut self.stream, &mut self.wbuf)?;
        let want_write =
            !self.wbuf.is_empty() || self.tls.as_ref().is_some_and(|t| t.wants_write());
        if want_write != self.want_write {
            let interest = if want_write {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            poll.registry()
                .reregister(&mut self.stream, FOLLOW_STREAM, interest)?;
            self.want_write = want_write;
        }
        Ok(())
    }
}

/// A running node: sockets, connections and the server state.
pub struct Node {
    poll: Poll,
    listener: TcpListener,
    peers: PeerTransport,
    /// Peer messages dropped: from an unknown sender, not decodable, or
    /// arriving while this node is not a CAL.
    peer_messages_ignored: u64,
    /// When consensus next wants a tick (ms since start), as of the last
    /// poll.
    consensus_deadline: Option<u64>,
    /// Peer messages to send this iteration.
    peer_out: Vec<(SocketAddr, doozer_proto::peer::PeerMsg)>,
    web_listener: Option<TcpListener>,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    open: usize,
    server: Server,
    decoder: FrameDecoder,
    scratch: Vec<u8>,
    /// Connections with output to flush this iteration.
    dirty: Vec<usize>,
    /// Connections not read from until their output drains.
    paused: Vec<usize>,
    responses: Vec<(ConnId, Response)>,
    node_id: String,
    cluster: String,
    started: Instant,
    /// Event-stream connections.
    streams: Vec<usize>,
    /// The head rev the streams were last fed up to.
    streamed_rev: Rev,
    change_cache: web::ChangeCache,
    next_ping: Instant,
    /// A slave's stream from the node it follows.
    follow: Option<FollowConn>,
    /// `-a` members.
    attach_addrs: Vec<SocketAddr>,
    /// A follow stream silent this long is given up (a few pulses).
    follow_idle: Duration,
    /// The member whose stream broke last: tried last.
    lost_member: Option<SocketAddr>,
    attach: Attach,
    /// When to try attaching again after losing the followed node.
    reattach_at: Option<Instant>,
    reattach_failures: u32,
    /// An attach handshake running on a helper thread.
    attaching: Option<mpsc::Receiver<Result<Followed, AttachError>>>,
    /// Wakes the loop when the handshake is done.
    waker: Arc<Waker>,
    /// Keeps this node's name-service entry (`-b`), if any.
    registrar: Option<Registrar>,
    /// What the registrar was last told: this node is a CAL.
    ns_cal: bool,
    /// TLS on the client port (`-tlscert`).
    tls: Option<Arc<rustls::ServerConfig>>,
}

/// How long start-up keeps trying the name service (`-b`) before it gives
/// up: nodes started at once may find each other's advertisements before
/// the seed serves.
const BOOT_DEADLINE: Duration = Duration::from_secs(60);

/// Joins a cluster at start-up: attaches to `-a` (if given), else boots
/// through the name service (if given), else seeds a new cluster. Returns
/// the stream to follow (`None`: this node seeded) and the members to
/// re-attach to later.
fn join(
    config: &Config,
    attach: &Attach,
    boot: Option<&Boot>,
    server: &mut Server,
) -> Result<(Option<Followed>, Vec<SocketAddr>), NodeError> {
    if !config.attach.is_empty() {
        server.start_following();
        match attach.first_of(&config.attach, server) {
            Ok(f) => return Ok((Some(f), config.attach.clone())),
            Err(e) if boot.is_none() => return Err(e.into()),
            Err(e) => log::warn!("cannot attach to -a: {e}; trying the name service"),
        }
    }
    let Some(boot) = boot else {
        server.seed(&config.cluster_name, &attach.info);
        return Ok((None, Vec::new()));
    };
    let failed = |why: String| NodeError::Boot {
        uri: boot.uri.to_string(),
        why,
    };
    let deadline = Instant::now() + BOOT_DEADLINE;
    let mut pause = Duration::from_millis(50);
    loop {
        let why = match boot.plan() {
            Ok(Plan::Seed) => {
                server.seed(&config.cluster_name, &attach.info);
                return Ok((None, Vec::new()));
            }
            Ok(Plan::Attach(addrs)) => {
                server.start_following();
                match attach.first_of(&addrs, server) {
                    Ok(f) => return Ok((Some(f), addrs)),
                    Err(e) => e.to_string(),
                }
            }
            Err(e @ BootError::Orphaned { .. }) => return Err(failed(e.to_string())),
            // Nothing answers there: say so now rather than in a minute.
            Err(BootError::NameService(e)) if e.is_connection_error() => {
                return Err(failed(e.to_string()))
            }
            Err(e) => e.to_string(),
        };
        if Instant::now() >= deadline {
            return Err(failed(why));
        }
        // Nodes started together: the seed may not serve yet.
        log::info!("boot: {why}; trying again");
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}

impl Node {
    /// Binds the listeners and joins a cluster (attaching, booting through
    /// the name service, or seeding a new one); does not serve yet.
    pub fn bind(config: &Config, info: NodeInfo) -> Result<Node, NodeError> {
        // Files are read before anything is bound or attached.
        let tls = match &config.tls {
            Some(files) => Some(NodeTls::load(files).map_err(NodeError::Tls)?),
            None => None,
        };
        let poll = Poll::new()?;
        let mut listener = TcpListener::bind(config.listen).map_err(|source| NodeError::Bind {
            addr: config.listen,
            what: "clients",
            source,
            hint: LISTEN_HINT,
        })?;
        poll.registry()
            .register(&mut listener, CLIENT_LISTENER, Interest::READABLE)?;
        // Peers talk UDP on the same host:port; binding it now reserves the
        // port and catches a busy one at start-up.
        // With a secret, peer datagrams are sealed with a key derived from
        // it: only nodes sharing the secret take part in consensus.
        let peer_key = PeerKey::from_secret(&config.rw_secret);
        let mut peers =
            PeerTransport::bind(config.listen, peer_key).map_err(|source| NodeError::Bind {
                addr: config.listen,
                what: "peers (UDP)",
                source,
                hint: LISTEN_HINT,
            })?;
        poll.registry()
            .register(peers.socket_mut(), PEER_SOCKET, Interest::READABLE)?;
        let web_listener = match config.web {
            None => None,
            Some(addr) => {
                let mut l = TcpListener::bind(addr).map_err(|source| NodeError::Bind {
                    addr,
                    what: "web viewer",
                    source,
                    hint: "pick another with -w ADDR, or turn the viewer off with -w false",
                })?;
                poll.registry()
                    .register(&mut l, WEB_LISTENER, Interest::READABLE)?;
                Some(l)
            }
        };
        let mut server = Server::new(ServerConfig {
            self_id: info.id.clone(),
            secrets: Secrets {
                rw: config.rw_secret.clone(),
                ro: config.ro_secret.clone(),
            },
            history_revs: config.history_revs,
            cluster: ClusterConfig {
                fill_ms: config.fill_ms,
                timeout_ms: config.timeout_ms,
                pulse_ms: config.pulse_ms,
                seed: random_u64()?,
                ..ClusterConfig::default()
            },
        });
        let attach = Attach {
            cluster: config.cluster_name.clone(),
            info: info.clone(),
            secret: config.rw_secret.clone(),
            tls: tls.as_ref().map(|t| t.client.clone()),
        };
        let waker = Arc::new(Waker::new(poll.registry(), ATTACHED)?);
        let boot = config.boot.as_ref().map(|uri| Boot {
            uri: uri.clone(),
            cluster: config.cluster_name.clone(),
            info: info.clone(),
        });
        let (followed, attach_addrs) = join(config, &attach, boot.as_ref(), &mut server)?;
        let follow = match followed {
            None => {
                log::info!(
                    "seeded a new cluster {:?}; the only CAL",
                    config.cluster_name
                );
                None
            }
            Some(stream) => {
                log::info!(
                    "attached to cluster {:?} at rev {}; a slave",
                    config.cluster_name,
                    server.store().rev()
                );
                Some(FollowConn::register(&poll, stream)?)
            }
        };
        let registrar = match boot {
            Some(b) => Some(Registrar::spawn(b)?),
            None => None,
        };
        let streamed_rev = server.store().rev();
        Ok(Node {
            poll,
            listener,
            peers,
            peer_messages_ignored: 0,
            peer_out: Vec::new(),
            consensus_deadline: None,
            web_listener,
            conns: Vec::new(),
            free: Vec::new(),
            open: 0,
            server,
            decoder: FrameDecoder::default(),
            scratch: vec![0; READ_CHUNK],
            dirty: Vec::new(),
            paused: Vec::new(),
            responses: Vec::new(),
            node_id: info.id.clone(),
            cluster: config.cluster_name.clone(),
            started: Instant::now(),
            streams: Vec::new(),
            streamed_rev,
            change_cache: web::ChangeCache::default(),
            next_ping: Instant::now() + PING_INTERVAL,
            follow,
            attach_addrs,
            registrar,
            ns_cal: false,
            lost_member: None,
            follow_idle: FOLLOW_IDLE_MIN.max(Duration::from_millis(config.pulse_ms) * 5),
            attach,
            reattach_at: None,
            reattach_failures: 0,
            attaching: None,
            waker,
            tls: tls.map(|t| t.server),
        })
    }

    /// The bound client address (useful with port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves forever (returns only if the poll itself fails).
    pub fn run(&mut self) -> Result<(), NodeError> {
        let mut events = Events::with_capacity(1024);
        // A TLS session may hold decrypted bytes of the stream already,
        // which no socket event would announce.
        self.follow_readable();
        loop {
            let timeout = self.poll_timeout();
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            }
            self.server.set_now(self.now_ms());
            for ev in events.iter() {
                match ev.token() {
                    CLIENT_LISTENER => self.accept(Kind::Client),
                    PEER_SOCKET => self.peer_readable(),
                    ATTACHED => self.attached(),
                    FOLLOW_STREAM => {
                        if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                            self.follow_readable();
                        }
                    }
                    WEB_LISTENER => self.accept(Kind::Web),
                    Token(i) => {
                        if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                            self.readable(i);
                        }
                        if ev.is_writable() {
                            self.dirty.push(i);
                        }
                    }
                }
            }
            self.resume_paused();
            // Votes out before the store applies what was learned.
            self.server.queue_peer_messages();
            self.flush_peers();
            self.server.pump();
            // The deadline computed for this poll: one that messages just
            // handled moved earlier makes the next poll return at once.
            if self.consensus_deadline.is_some_and(|t| t <= self.now_ms()) {
                self.server.set_now(self.now_ms());
                self.server.tick();
            }
            self.act_on_role_change();
            self.tell_name_service();
            if self
                .follow
                .as_ref()
                .is_some_and(|f| f.last_data.elapsed() >= self.follow_idle)
            {
                self.follow_broken("nothing received for a while");
            }
            if self.reattach_at.is_some_and(|t| t <= Instant::now()) {
                self.reattach();
            }
            if self
                .peers
                .warning_due()
                .is_some_and(|t| t <= Instant::now())
            {
                self.peers.warn_dropped(Instant::now());
            }
            // Peers first: a round trip of consensus starts before the
            // clients' answers (the larger writes) are copied out.
            self.flush_cluster();
            self.feed_streams();
            self.flush_all();
        }
    }

    /// Milliseconds since the node started: consensus time.
    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// A promoted slave stops following; a demoted CAL attaches again.
    fn act_on_role_change(&mut self) {
        match self.server.take_role_change() {
            Some(RoleChange::Promoted) => {
                log::info!("promoted to CAL; no longer following");
                self.drop_follow();
                self.reattach_at = None;
            }
            Some(RoleChange::Demoted) => {
                self.drop_follow();
                self.reattach_at = Some(Instant::now());
            }
            None => {}
        }
    }

    /// Tells the name-service registrar (`-b`) whether this node is a CAL
    /// and which CALs left. A CAL counts once its own store lists it: a
    /// kicked CAL woken from a pause learns of the kick (and stops being
    /// registered) before it steps down.
    fn tell_name_service(&mut self) {
        let left = self.server.take_cals_left();
        let Some(r) = &self.registrar else {
            return;
        };
        let cal = self.server.is_cal() && self.server.listed_as_cal();
        if cal != self.ns_cal {
            r.set_cal(cal);
            self.ns_cal = cal;
        }
        // Every CAL removes the entries of CALs that left (deleting twice
        // is harmless; a kicked node cannot remove its own).
        if cal {
            for id in left.iter().filter(|id| **id != self.node_id) {
                r.remove(id);
            }
        }
    }

    fn drop_follow(&mut self) {
        if let Some(mut f) = self.follow.take() {
            let _ = self.poll.registry().deregister(&mut f.stream);
        }
    }

    /// Sends the peer messages queued so far (one datagram per peer where
    /// they fit).
    fn flush_peers(&mut self) {
        self.server.take_peer_messages(&mut self.peer_out);
        for (to, msg) in self.peer_out.drain(..) {
            if let Err(e) = self.peers.queue(to, msg.encode_to_vec().into()) {
                // Batches are split to fit; a single oversized value cannot
                // be proposed (SET bodies are limited).
                log::error!("peer message to {to} not sent: {e}");
            }
        }
        self.peers.flush();
    }

    /// Sends what consensus wants sent, and this slave's requests to the
    /// CAL it follows.
    fn flush_cluster(&mut self) {
        self.flush_peers();
        let requests = self.server.take_follow_requests();
        if let Some(f) = self.follow.as_mut() {
            for r in &requests {
                encode_frame(r, &mut f.wbuf);
            }
            if let Err(e) = f.flush(&self.poll) {
                self.follow_broken(&format!("write: {e}"));
            }
        }
    }

    fn accept(&mut self, kind: Kind) {
        loop {
            let listener = match kind {
                Kind::Client => &self.listener,
                Kind::Web => match &self.web_listener {
                    Some(l) => l,
                    None => return,
                },
            };
            let (mut stream, peer) = match listener.accept() {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Out of descriptors or similar: log and try again on
                    // the next readiness event rather than spinning.
                    log::error!("accept: {e}");
                    return;
                }
            };
            if self.open >= MAX_CONNECTIONS {
                log::warn!("refusing connection from {peer}: {MAX_CONNECTIONS} connections open");
                continue; // dropping the stream closes it
            }
            let _ = stream.set_nodelay(true);
            let session = match (&kind, &self.tls) {
                (Kind::Client, Some(config)) => {
                    match rustls::ServerConnection::new(Arc::clone(config)) {
                        Ok(s) => Some(Box::new(s)),
                        Err(e) => {
                            log::error!("TLS session for {peer}: {e}");
                            continue;
                        }
                    }
                }
                _ => None,
            };
            let idx = self.free.pop().unwrap_or_else(|| {
                self.conns.push(None);
                self.conns.len() - 1
            });
            if let Err(e) =
                self.poll
                    .registry()
                    .register(&mut stream, Token(idx), Interest::READABLE)
            {
                log::error!("register connection from {peer}: {e}");
                self.free.push(idx);
                continue;
            }
            log::debug!("connection {idx} from {peer}");
            if let Kind::Client = kind {
                self.server.connect(idx);
            }
            self.open += 1;
            self.conns[idx] = Some(Conn {
                stream,
                tls: session,
                kind: match kind {
                    Kind::Client => Kind::Client,
                    Kind::Web => Kind::Web,
                },
                rbuf: BytesMut::new(),
                wbuf: BytesMut::new(),
                want_write: false,
                paused: false,
                close_after_flush: false,
                dead: false,
                events: None,
            });
        }
    }

    /// How long the next poll may block: not at all if a paused connection
    /// can go on; until the next ping or re-attach attempt if one is due.
    fn poll_timeout(&mut self) -> Option<Duration> {
        // Scanning the window costs: once per iteration.
        self.consensus_deadline = self.server.next_deadline_ms();
        if self.any_resumable() {
            return Some(Duration::ZERO);
        }
        let now = Instant::now();
        let ping = (!self.streams.is_empty()).then_some(self.next_ping);
        let consensus = self
            .consensus_deadline
            .map(|ms| self.started + Duration::from_millis(ms));
        let follow = self.follow.as_ref().map(|f| f.last_data + self.follow_idle);
        let warning = self.peers.warning_due();
        [ping, self.reattach_at, consensus, follow, warning]
            .into_iter()
            .flatten()
            .min()
            .map(|t| t.saturating_duration_since(now))
    }

    /// Applies everything the followed node sent, frame by frame as it is
    /// read (the buffer stays about one read long). A broken stream is
    /// dropped and the node attaches again (to any CAL it knows of).
    fn follow_readable(&mut self) {
        // Bytes read with the handshake come first.
        if let Err(e) = self.apply_follow_frames() {
            return self.follow_broken(&e);
        }
        let lost = loop {
            let Some(f) = self.follow.as_mut() else {
                return;
            };
            let n = match tls::read_maybe(f.tls.as_deref_mut(), &mut f.stream, &mut self.scratch) {
                Ok(0) => break Some("the followed node closed the connection".to_string()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break None,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => break Some(e.to_string()),
            };
            f.rbuf.extend_from_slice(&self.scratch[..n]);
            f.last_data = Instant::now();
            if let Err(e) = self.apply_follow_frames() {
                break Some(e);
            }
        };
        if let Some(why) = lost {
            self.follow_broken(&why);
        }
    }

    /// The follow stream cannot go on: drop it and attach again, trying
    /// the node it came from last.
    fn follow_broken(&mut self, why: &str) {
        log::warn!("lost the followed node ({why}); attaching again");
        self.lost_member = self
            .follow
            .as_ref()
            .and_then(|f| f.stream.peer_addr().ok())
            .map(|a| SocketAddr::new(a.ip(), a.port()));
        self.drop_follow();
        self.server.follow_lost();
        self.reattach_at = Some(Instant::now());
    }

    /// Applies every complete response buffered on the follow stream.
    fn apply_follow_frames(&mut self) -> Result<(), String> {
        let Some(f) = self.follow.as_mut() else {
            return Ok(());
        };
        while let Some(frame) = self
            .decoder
            .decode(&mut f.rbuf)
            .map_err(|e| e.to_string())?
        {
            let resp = Response::decode(frame).map_err(|e| e.to_string())?;
            self.server
                .follow_response(resp)
                .map_err(|e| e.to_string())?;
            if self.server.is_cal() {
                return Ok(()); // promoted: the rest of the stream is not needed
            }
        }
        Ok(())
    }

    /// Starts one attempt to follow a CAL again: those named in the
    /// copied `/ctl` files, then the `-a` addresses. The handshake runs on
    /// a helper thread (connecting to a stopped member can take seconds);
    /// [`Node::attached`] takes the stream, and the loop reads the copy
    /// from it like any later change.
    fn reattach(&mut self) {
        if self.attaching.is_some() {
            return;
        }
        self.reattach_at = None;
        let mut candidates =
            attach::candidates(&self.server, &self.attach.info.id, &self.attach_addrs);
        if let Some(lost) = self.lost_member {
            // Stable: the others keep their order.
            candidates.sort_by_key(|a| *a == lost);
        }
        let resume = attach::Resume::of(&self.server);
        let attach = self.attach.clone();
        let waker = Arc::clone(&self.waker);
        let (tx, rx) = mpsc::channel();
        self.attaching = Some(rx);
        let spawned = std::thread::Builder::new()
            .name("attach".into())
            .spawn(move || {
                let _ = tx.send(attach.handshake_first_of(&candidates, resume));
                let _ = waker.wake();
            });
        if let Err(e) = spawned {
            log::error!("attach: cannot start a thread: {e}");
            self.attaching = None;
            self.reattach_at = Some(Instant::now() + REATTACH_INTERVAL);
        }
    }

    /// The attach handshake finished: follow the member, or retry later.
    fn attached(&mut self) {
        let Some(rx) = self.attaching.as_ref() else {
            return;
        };
        let result = match rx.try_recv() {
            Ok(r) => r,
            Err(mpsc::TryRecvError::Empty) => return, // a stale wake-up
            Err(mpsc::TryRecvError::Disconnected) => Err(AttachError::Refused {
                addr: SocketAddr::from(([127, 0, 0, 1], 0)),
                what: "the attach thread ended without an answer".into(),
            }),
        };
        self.attaching = None;
        let registered = result.and_then(|f| {
            FollowConn::register(&self.poll, f).map_err(|e| AttachError::Refused {
                addr: SocketAddr::from(([127, 0, 0, 1], 0)),
                what: format!("register the follow stream: {e}"),
            })
        });
        match registered {
            Ok(f) => {
                log::info!("following again from rev {}", self.server.store().rev());
                self.server.follow_lost(); // a fresh stream: copy or READY first
                self.follow = Some(f);
                self.reattach_failures = 0;
                self.follow_readable();
            }
            Err(e) => {
                // Once at warn, then quietly: a CAL may be down for long.
                if self.reattach_failures == 0 {
                    log::warn!("cannot attach again yet: {e}; retrying every second");
                } else {
                    log::debug!("attach: {e}");
                }
                self.reattach_failures += 1;
                self.reattach_at = Some(Instant::now() + REATTACH_INTERVAL);
            }
        }
    }

    /// Drains the peer socket into consensus. Messages that do not decode,
    /// come from an unknown sender, or arrive while this node is not a CAL
    /// are counted and dropped.
    fn peer_readable(&mut self) {
        let mut ignored = 0;
        let server = &mut self.server;
        self.peers.recv(|from, bytes| {
            let taken = match doozer_proto::peer::PeerMsg::decode(bytes) {
                Ok(msg) => server.peer_step(from, msg),
                Err(_) => false,
            };
            if !taken {
                log::debug!("peer message from {from} dropped");
                ignored += 1;
            }
        });
        self.peer_messages_ignored += ignored;
    }

    /// Reads what is available on connection `i`, handling every complete
    /// frame as it arrives (so the read buffer stays about one frame long),
    /// until the socket is drained or the connection is paused on output.
    fn readable(&mut self, i: usize) {
        let mut budget = READ_BUDGET;
        loop {
            let Some(Some(conn)) = self.conns.get_mut(i) else {
                return;
            };
            if conn.paused || conn.dead || conn.close_after_flush {
                break;
            }
            match tls::read_maybe(conn.tls.as_deref_mut(), &mut conn.stream, &mut self.scratch) {
                // End of input: answer what was received, then close.
                Ok(0) => conn.close_after_flush = true,
                Ok(n) => {
                    conn.rbuf.extend_from_slice(&self.scratch[..n]);
                    budget = budget.saturating_sub(n);
                    if budget == 0 {
                        // Others get a turn; this one continues after the
                        // next (non-blocking) poll.
                        conn.paused = true;
                        self.paused.push(i);
                    }
                    match conn.kind {
                        Kind::Client => self.handle_frames(i),
                        Kind::Web => self.handle_http(i),
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::InvalidData && conn.tls.is_some() => {
                    // Plain TCP or garbage on a TLS port: this client only.
                    log::info!("connection {i}: closing: TLS: {e}");
                    conn.dead = true;
                }
                Err(e) => {
                    log::debug!("connection {i}: read: {e}");
                    conn.dead = true;
                }
            }
        }
        self.dirty.push(i);
    }

    fn handle_frames(&mut self, i: usize) {
        loop {
            let Some(Some(conn)) = self.conns.get_mut(i) else {
                return;
            };
            if conn.wbuf.len() > MAX_PENDING_OUTPUT {
                conn.paused = true;
                self.paused.push(i);
                return;
            }
            let frame = match self.decoder.decode(&mut conn.rbuf) {
                Ok(Some(f)) => f,
                Ok(None) => return,
                Err(e) => {
                    log::info!("connection {i}: closing: {e}");
                    conn.dead = true;
                    return;
                }
            };
            match Request::decode(frame) {
                Ok(req) => self.server.handle_deferred(i, req),
                Err(e) => {
                    // Without a decodable tag there is nobody to answer.
                    log::info!("connection {i}: closing: bad request: {e}");
                    conn.dead = true;
                    return;
                }
            }
        }
    }

    fn handle_http(&mut self, i: usize) {
        let Some(Some(conn)) = self.conns.get(i) else {
            return;
        };
        if conn.rbuf.is_empty() || conn.events.is_some() {
            return;
        }
        let outcome = web::respond(&conn.rbuf, self.server.store(), &|| self.node_stats());
        let Some(Some(conn)) = self.conns.get_mut(i) else {
            return;
        };
        match outcome {
            web::Outcome::NeedMore => {}
            web::Outcome::Reply(bytes) => {
                conn.wbuf.extend_from_slice(&bytes);
                conn.rbuf.clear();
                conn.close_after_flush = true;
            }
            web::Outcome::Stream(stream, bytes) => {
                log::debug!("connection {i}: event stream of {}", stream.dir());
                conn.wbuf.unsplit(bytes);
                conn.rbuf.clear();
                conn.events = Some(stream);
                self.streams.push(i);
            }
        }
    }

    /// Sends every event stream the changes applied since the last call,
    /// and a keep-alive ping when it is due. A stream that cannot keep up
    /// is closed; its client reconnects and resumes from its last rev.
    fn feed_streams(&mut self) {
        if self.streams.is_empty() {
            return; // the common case: no viewer open
        }
        let head = self.server.store().rev();
        let now = Instant::now();
        let ping = now >= self.next_ping;
        if ping {
            self.next_ping = now + PING_INTERVAL;
        }
        if head == self.streamed_rev && !ping {
            return;
        }
        self.streamed_rev = head;
        self.change_cache.clear();
        let store = self.server.store();
        let conns = &mut self.conns;
        let cache = &mut self.change_cache;
        let dirty = &mut self.dirty;
        self.streams.retain(|&i| {
            let Some(Some(conn)) = conns.get_mut(i) else {
                return false;
            };
            let Some(stream) = conn.events.as_mut() else {
                return false;
            };
            if conn.dead {
                return false;
            }
            stream.catch_up(store, cache, &mut conn.wbuf);
            if ping {
                conn.wbuf.extend_from_slice(web::PING);
            }
            if conn.wbuf.len() > MAX_PENDING_OUTPUT {
                log::info!("connection {i}: event stream too far behind; closing");
                conn.dead = true;
            }
            dirty.push(i);
            true
        });
    }

    /// The figures of the stats page and metrics.
    fn node_stats(&self) -> web::NodeStats {
        let s = self.server.stats();
        let consensus = self.server.consensus_stats();
        let head = self.server.store().snapshot(None).ok();
        let web_clients = self
            .conns
            .iter()
            .flatten()
            .filter(|c| matches!(c.kind, Kind::Web))
            .count() as u64;
        web::NodeStats {
            node_id: self.node_id.clone(),
            cluster: self.cluster.clone(),
            uptime_s: self.started.elapsed().as_secs_f64(),
            memory_rss_bytes: rss_bytes().unwrap_or(0),
            clients: s.clients,
            web_clients,
            event_streams: self.streams.len() as u64,
            requests: s.requests,
            reads: s.reads,
            writes: s.writes,
            waits: s.waits,
            errors: s.errors,
            store_files: head.as_ref().map_or(0, |h| h.files()),
            store_bytes: head.as_ref().map_or(0, |h| h.bytes()),
            proposals: s.proposals,
            instances_in_flight: consensus.as_ref().map_or(0, |(_, n)| *n as u64),
            fills: consensus.as_ref().map_or(0, |(c, _)| c.fills),
            round_retries: consensus.as_ref().map_or(0, |(c, _)| c.round_retries),
            peer_datagrams_dropped: self.peers.stats().garbage_dropped,
            peer_datagrams_unauthenticated: self.peers.stats().unauthenticated_dropped,
            peer_messages_ignored: self.peer_messages_ignored,
            peer_messages_sent: consensus
                .as_ref()
                .map(|(c, _)| by_kind(&c.sent))
                .unwrap_or_default(),
            peer_messages_received: consensus
                .as_ref()
                .map(|(c, _)| by_kind(&c.received))
                .unwrap_or_default(),
        }
    }

    /// Encodes queued responses and flushes every connection with output.
    fn flush_all(&mut self) {
        self.server.drain_responses_into(&mut self.responses);
        for (conn_id, resp) in self.responses.drain(..) {
            if let Some(Some(conn)) = self.conns.get_mut(conn_id) {
                encode_frame(&resp, &mut conn.wbuf);
                self.dirty.push(conn_id);
            }
        }
        let mut dirty = std::mem::take(&mut self.dirty);
        dirty.sort_unstable();
        dirty.dedup();
        for &i in &dirty {
            self.flush(i);
        }
        dirty.clear();
        self.dirty = dirty;
    }

    /// Whether a paused connection may read again (its output drained).
    fn can_resume(c: &Conn) -> bool {
        c.paused && !c.dead && c.wbuf.len() <= MAX_PENDING_OUTPUT / 2
    }

    /// True if some paused connection may read again, so the next poll
    /// must not block.
    fn any_resumable(&self) -> bool {
        self.paused
            .iter()
            .any(|&i| matches!(self.conns.get(i), Some(Some(c)) if Self::can_resume(c)))
    }

    /// Lets paused connections whose output drained read again: frames
    /// already buffered first, then the socket.
    fn resume_paused(&mut self) {
        let mut resume = Vec::new();
        let conns = &mut self.conns;
        self.paused.retain(|&i| {
            let Some(Some(c)) = conns.get_mut(i) else {
                return false;
            };
            if c.dead || !c.paused {
                return false;
            }
            if !Self::can_resume(c) {
                return true; // still backed up
            }
            c.paused = false;
            resume.push(i);
            false
        });
        for i in resume {
            self.handle_frames(i);
            self.readable(i);
        }
    }

    fn flush(&mut self, i: usize) {
        let Some(Some(conn)) = self.conns.get_mut(i) else {
            return;
        };
        if !conn.dead {
            if let Err(e) =
                tls::write_maybe(conn.tls.as_deref_mut(), &mut conn.stream, &mut conn.wbuf)
            {
                log::debug!("connection {i}: write: {e}");
                conn.dead = true;
            }
        }
        let sealed_pending = conn.tls.as_ref().is_some_and(|t| t.wants_write());
        if conn.wbuf.is_empty() && !sealed_pending && conn.close_after_flush {
            conn.dead = true;
        }
        if conn.wbuf.len() > MAX_UNSENT_OUTPUT {
            // Not reading while answers keep coming (a follower or a WAIT
            // stream that stopped): memory must not grow without bound. A
            // slave attaches again and resumes.
            log::warn!(
                "connection {i}: {} bytes unsent; closing it",
                conn.wbuf.len()
            );
            conn.dead = true;
        }
        if conn.dead {
            return self.close(i);
        }
        let want_write = !conn.wbuf.is_empty() || sealed_pending;
        if want_write != conn.want_write {
            let interest = if want_write {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            if let Err(e) = self
                .poll
                .registry()
                .reregister(&mut conn.stream, Token(i), interest)
            {
                log::debug!("connection {i}: reregister: {e}");
                return self.close(i);
            }
            conn.want_write = want_write;
        }
    }

    fn close(&mut self, i: usize) {
        if let Some(mut conn) = self.conns.get_mut(i).and_then(Option::take) {
            let _ = self.poll.registry().deregister(&mut conn.stream);
            if let Kind::Client = conn.kind {
                self.server.disconnect(i);
            }
            if conn.events.is_some() {
                self.streams.retain(|&s| s != i);
            }
            self.free.push(i);
            self.open -= 1;
            log::debug!("connection {i} closed");
        }
    }
}

/// Peer message counts by kind, as the stats page and metrics label them.
fn by_kind(c: &crate::consensus::MsgCounts) -> std::collections::BTreeMap<String, u64> {
    [
        ("batch", c.batches),
        ("prepare", c.prepares),
        ("promise", c.promises),
        ("accept", c.accepts),
        ("vote", c.votes),
        ("reject", c.rejects),
        ("learned", c.learned),
        ("skip", c.skips),
        ("fetch", c.fetches),
    ]
    .into_iter()
    .map(|(k, n)| (k.to_string(), n))
    .collect()
}

/// Resident memory of this process, from `/proc/self/statm` (Linux).
fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// A random seed for consensus backoff jitter, from the OS.
fn random_u64() -> io::Result<u64> {
    let mut bytes = [0u8; 8];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(u64::from_le_bytes(bytes))
}

/// A fresh node id: 80 random bits in base32 (16 characters), as the Go
/// original made them. Randomness comes from the OS, outside the pure core.
pub fn new_node_id() -> io::Result<String> {
    let mut bytes = [0u8; 10];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(data_encoding::BASE32.encode(&bytes))
}

/// This machine's host name, or `unknown`.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}
