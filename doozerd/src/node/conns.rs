//! Client and web connections: a slab of sockets with their read and write
//! buffers. Client frames are decoded here and handed to the replica as
//! they arrive; answers are encoded into the write buffers once per loop
//! iteration and flushed with one write per connection. A connection with
//! too much output waiting is not read until it drains. Web connections
//! serve one HTTP request each, or an event stream fed from the store.
//!
//! With `-tlscert`, a client connection carries a rustls session between
//! its plaintext buffers and the socket ([`crate::tls`]); everything above
//! the buffers (frames, output caps, pausing) is the same as for plain TCP.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use doozer_proto::{encode_frame, FrameDecoder, Request, Response};
use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};
use prost::Message;

use crate::replica::{ConnId, Input, Replica};
use crate::store::{Rev, Store};
use crate::tls;
use crate::web;

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
/// Bytes read from one socket per read call.
pub(super) const READ_CHUNK: usize = 64 << 10;
/// How often event streams get a keep-alive comment.
const PING_INTERVAL: Duration = Duration::from_secs(15);
/// Bytes read from one connection before the others get a turn.
const READ_BUDGET: usize = 1 << 20;

/// What a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// The client protocol (frames).
    Client,
    /// HTTP for the web viewer.
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

/// Every client and web connection of the node.
pub(super) struct Conns {
    slab: Vec<Option<Conn>>,
    free: Vec<usize>,
    open: usize,
    /// Web connections open (pages and event streams).
    web_open: usize,
    decoder: FrameDecoder,
    scratch: Vec<u8>,
    /// Connections with output to flush this iteration.
    dirty: Vec<usize>,
    /// Connections not read from until their output drains.
    paused: Vec<usize>,
    /// Web connections with request bytes to look at.
    http_ready: Vec<usize>,
    /// Event-stream connections.
    streams: Vec<usize>,
    /// The head rev the streams were last fed up to.
    streamed_rev: Rev,
    change_cache: web::ChangeCache,
    next_ping: Instant,
    /// TLS on the client port (`-tlscert`).
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl Conns {
    /// No connections yet; event streams start at `head`.
    pub(super) fn new(tls: Option<Arc<rustls::ServerConfig>>, head: Rev) -> Conns {
        Conns {
            slab: Vec::new(),
            free: Vec::new(),
            open: 0,
            web_open: 0,
            decoder: FrameDecoder::default(),
            scratch: vec![0; READ_CHUNK],
            dirty: Vec::new(),
            paused: Vec::new(),
            http_ready: Vec::new(),
            streams: Vec::new(),
            streamed_rev: head,
            change_cache: web::ChangeCache::default(),
            next_ping: Instant::now() + PING_INTERVAL,
            tls,
        }
    }

    /// Web connections open (pages and event streams).
    pub(super) fn web_open(&self) -> usize {
        self.web_open
    }

    /// Event streams open.
    pub(super) fn streams(&self) -> usize {
        self.streams.len()
    }

    /// When the next keep-alive ping is due, if any stream is open.
    pub(super) fn ping_due(&self) -> Option<Instant> {
        (!self.streams.is_empty()).then_some(self.next_ping)
    }

    /// Accepts every pending connection on `listener`.
    pub(super) fn accept(
        &mut self,
        listener: &TcpListener,
        kind: Kind,
        registry: &Registry,
        replica: &mut Replica,
        now_ms: u64,
    ) {
        loop {
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
            let session = match (kind, &self.tls) {
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
                self.slab.push(None);
                self.slab.len() - 1
            });
            if let Err(e) = registry.register(&mut stream, Token(idx), Interest::READABLE) {
                log::error!("register connection from {peer}: {e}");
                self.free.push(idx);
                continue;
            }
            log::debug!("connection {idx} from {peer}");
            match kind {
                Kind::Client => {
                    let _ = replica.step(now_ms, Input::Connect(idx));
                }
                Kind::Web => self.web_open += 1,
            }
            self.open += 1;
            self.slab[idx] = Some(Conn {
                stream,
                tls: session,
                kind,
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

    /// Connection `i` may be written to again.
    pub(super) fn writable(&mut self, i: usize) {
        self.dirty.push(i);
    }

    /// Reads what is available on connection `i`, handing every complete
    /// frame to the replica as it arrives (so the read buffer stays about
    /// one frame long), until the socket is drained or the connection is
    /// paused on output.
    pub(super) fn readable(&mut self, i: usize, replica: &mut Replica, now_ms: u64) {
        let mut budget = READ_BUDGET;
        loop {
            let Some(Some(conn)) = self.slab.get_mut(i) else {
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
                        Kind::Client => self.handle_frames(i, replica, now_ms),
                        Kind::Web => self.http_ready.push(i),
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

    /// Hands every complete frame buffered on client connection `i` to
    /// the replica.
    fn handle_frames(&mut self, i: usize, replica: &mut Replica, now_ms: u64) {
        loop {
            let Some(Some(conn)) = self.slab.get_mut(i) else {
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
                Ok(req) => {
                    let _ = replica.step(now_ms, Input::Request(i, req));
                }
                Err(e) => {
                    // Without a decodable tag there is nobody to answer.
                    log::info!("connection {i}: closing: bad request: {e}");
                    conn.dead = true;
                    return;
                }
            }
        }
    }

    /// Answers the web requests that arrived this iteration (`stats`
    /// gathers the figures of the stats pages, only when asked for).
    pub(super) fn serve_http(&mut self, store: &Store, stats: &dyn Fn() -> web::NodeStats) {
        for i in std::mem::take(&mut self.http_ready) {
            let Some(Some(conn)) = self.slab.get_mut(i) else {
                continue;
            };
            if conn.rbuf.is_empty() || conn.events.is_some() {
                continue;
            }
            match web::respond(&conn.rbuf, store, stats) {
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
            self.dirty.push(i);
        }
    }

    /// Sends every event stream the changes applied since the last call,
    /// and a keep-alive ping when it is due. A stream that cannot keep up
    /// is closed; its client reconnects and resumes from its last rev.
    pub(super) fn feed_streams(&mut self, store: &Store) {
        if self.streams.is_empty() {
            return; // the common case: no viewer open
        }
        let head = store.rev();
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
        let slab = &mut self.slab;
        let cache = &mut self.change_cache;
        let dirty = &mut self.dirty;
        self.streams.retain(|&i| {
            let Some(Some(conn)) = slab.get_mut(i) else {
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

    /// Encodes `responses` into their connections' buffers (in order) and
    /// flushes every connection with output.
    pub(super) fn answer(
        &mut self,
        responses: &mut Vec<(ConnId, Response)>,
        registry: &Registry,
        replica: &mut Replica,
        now_ms: u64,
    ) {
        for (conn_id, resp) in responses.drain(..) {
            if let Some(Some(conn)) = self.slab.get_mut(conn_id) {
                encode_frame(&resp, &mut conn.wbuf);
                self.dirty.push(conn_id);
            }
        }
        let mut dirty = std::mem::take(&mut self.dirty);
        dirty.sort_unstable();
        dirty.dedup();
        for &i in &dirty {
            self.flush(i, registry, replica, now_ms);
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
    pub(super) fn any_resumable(&self) -> bool {
        self.paused
            .iter()
            .any(|&i| matches!(self.slab.get(i), Some(Some(c)) if Self::can_resume(c)))
    }

    /// Lets paused connections whose output drained read again: frames
    /// already buffered first, then the socket.
    pub(super) fn resume_paused(&mut self, replica: &mut Replica, now_ms: u64) {
        let mut resume = Vec::new();
        let slab = &mut self.slab;
        self.paused.retain(|&i| {
            let Some(Some(c)) = slab.get_mut(i) else {
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
            let client = matches!(self.slab.get(i), Some(Some(c)) if c.kind == Kind::Client);
            if client {
                self.handle_frames(i, replica, now_ms);
            }
            self.readable(i, replica, now_ms);
        }
    }

    fn flush(&mut self, i: usize, registry: &Registry, replica: &mut Replica, now_ms: u64) {
        let Some(Some(conn)) = self.slab.get_mut(i) else {
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
            return self.close(i, registry, replica, now_ms);
        }
        let want_write = !conn.wbuf.is_empty() || sealed_pending;
        if want_write != conn.want_write {
            let interest = if want_write {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            if let Err(e) = registry.reregister(&mut conn.stream, Token(i), interest) {
                log::debug!("connection {i}: reregister: {e}");
                return self.close(i, registry, replica, now_ms);
            }
            conn.want_write = want_write;
        }
    }

    fn close(&mut self, i: usize, registry: &Registry, replica: &mut Replica, now_ms: u64) {
        if let Some(mut conn) = self.slab.get_mut(i).and_then(Option::take) {
            let _ = registry.deregister(&mut conn.stream);
            match conn.kind {
                Kind::Client => {
                    let _ = replica.step(now_ms, Input::Disconnect(i));
                }
                Kind::Web => self.web_open -= 1,
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
