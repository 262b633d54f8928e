//! Client and web connections: a slab of sockets with their read and write
//! buffers. Client frames are decoded here and handed to the replica as
//! they arrive; answers are encoded into the write buffers once per loop
//! iteration and flushed with one write per connection. Web connections
//! serve one HTTP request each, or an event stream fed from the store.
//!
//! Memory and fairness (docs/behaviour.md, "Limits"): a connection is not
//! read while what it caused and has not taken is too much — answers not
//! yet written (the replica's queued ones included), writes in consensus —
//! or, when the node as a whole holds too much unsent output, while it has
//! more than a small share; one that takes nothing for a long time is
//! closed. A store copy for a follower and an event stream's listing are
//! produced a chunk at a time as the socket drains, never whole. Each
//! connection gets a bounded share of work per loop iteration. A web
//! connection must send its request head within a deadline.
//!
//! With `-tlscert`, a client connection carries a rustls session between
//! its plaintext buffers and the socket ([`crate::tls`]); everything above
//! the buffers (frames, output caps, pausing) is the same as for plain TCP.

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use doozer_proto::{encode_frame, FrameDecoder, Request, Response};
use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};
use prost::Message;

use crate::replica::{ConnId, CopyJob, Input, Replica, MAX_WRITES_PER_CONN};
use crate::store::{Rev, Store};
use crate::tls;
use crate::web;

/// Above this many bytes of unsent answers a connection is not read from
/// until it drains, so a client that never reads cannot grow memory.
pub const MAX_PENDING_OUTPUT: usize = 8 << 20;
/// Above this many bytes of unsent output held by the whole node, only
/// connections with less than a fair share (`FAIR_SHARE`) waiting are read: one client
/// or many cannot make the node hold more than about this much.
pub const NODE_OUTPUT_BUDGET: usize = 64 << 20;
/// What a connection may have waiting when the node is over its budget.
pub const FAIR_SHARE: usize = 64 << 10;
/// Above this many bytes of unsent output a connection is closed: reading
/// pauses well before, but answers that need no request (a follower's
/// stream of changes, a WAIT stream) keep coming; this bounds them.
pub const MAX_UNSENT_OUTPUT: usize = 64 << 20;
/// A connection whose output has not shrunk for this long, while it has
/// some, is closed: it does not read what it asked for.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// A web connection must send its whole request head within this.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// An event stream more than this far behind is closed (its client
/// reconnects and resumes from its last rev).
const MAX_STREAM_BACKLOG: usize = 1 << 20;
/// Bytes read from one socket per read call.
pub(super) const READ_CHUNK: usize = 64 << 10;
/// How often event streams get a keep-alive comment.
const PING_INTERVAL: Duration = Duration::from_secs(15);
/// How long an event stream's `rev` message (revs that changed nothing
/// under its directory) may wait for a change that makes it unneeded: on
/// a cluster most writes are followed by other CALs' empty seqns, and
/// sending their rev at once cost every stream a second `send` per write
/// (docs/web.md; docs/benchmarks.md, "Held rev messages").
const HELD_REV_DELAY: Duration = Duration::from_millis(100);
/// Bytes read from one connection per loop iteration before the others
/// get a turn.
const READ_BUDGET: usize = 1 << 20;
/// Requests handled from one connection per loop iteration before the
/// others get a turn.
const FRAMES_PER_TURN: usize = 256;
/// Time spent on one connection's requests per loop iteration before the
/// others get a turn (a single expensive request still runs whole), when
/// few connections want more than that.
const TIME_PER_TURN: Duration = Duration::from_millis(2);
/// Time for the requests of every connection that used its whole turn
/// in one iteration: with many such connections each turn is shorter
/// ([`TIME_PER_TURN`] at most, [`MIN_TURN`] at least), so a client that
/// just arrived waits for one short iteration, not for a turn of every
/// busy connection (50 connections sending 4 KB WAITs held a fresh GET
/// for 450 ms with 2 ms turns).
const TIME_PER_ITERATION: Duration = Duration::from_millis(10);
/// The shortest turn.
const MIN_TURN: Duration = Duration::from_micros(100);
/// Bytes of answers one iteration may produce before every further turn
/// is one request: encoding and writing them is the iteration's work too
/// (100 connections of unread 48 KiB GETs made iterations of 64 MiB,
/// and a fresh client's GET waited 130 ms for them).
const OUTPUT_PER_ITERATION: usize = 8 << 20;
/// Store copies (BACKUPs) one connection may have waiting behind the one
/// streaming.
const MAX_WAITING_COPIES: usize = 8;

/// A copy or listing is topped up to this much waiting output at a time.
const STREAM_CHUNK: usize = 256 << 10;
/// Bytes written to one connection per loop iteration while a copy streams
/// (more waits for the next iteration).
const WRITE_PER_TURN: usize = 4 << 20;
/// Time spent producing copies and listings (topping them up) per loop
/// iteration, over every connection: past it the rest waits for the next
/// iteration, which polls without blocking, so other clients are served
/// in between (200 unread event streams of a 19 MB store, each taken 4 MiB
/// at a time while the kernel took it, held a fresh GET for 1.3 s).
const STREAM_TIME_PER_ITERATION: Duration = Duration::from_millis(5);
/// Bytes written to sockets per loop iteration, over every connection,
/// before connections with more than [`FAIR_SHARE`] waiting (and copies
/// or listings) wait for the next iteration; smaller answers always go
/// out. Copying into socket buffers runs at about 0.5 GB/s here: 100
/// connections of unread 48 KiB GETs made iterations that wrote 13 MiB,
/// and a fresh client's GET waited 70 ms for them. The next iteration
/// starts after the last connection served, so none starves.
const WRITE_PER_ITERATION: usize = 2 << 20;
/// A drained write buffer larger than this is freed: the limits above
/// count bytes waiting, and a buffer that once held a batch of answers
/// would otherwise keep that memory for as long as the connection lives
/// (500 connections that each once had 1 MB of answers kept 470 MiB).
const KEEP_WBUF: usize = 64 << 10;

/// What a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// The client protocol (frames).
    Client,
    /// HTTP for the web viewer.
    Web,
}

/// Why a connection is not read from now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pause {
    /// Reading normally.
    No,
    /// It had its share of this iteration: next iteration.
    Turn,
    /// Too much waiting for it: once that drains.
    Backlog,
}

/// A store copy being streamed (to a follower, or a backup), and what
/// comes after it on that connection, held until the copy is out.
struct Streaming {
    job: CopyJob,
    held: VecDeque<Held>,
    held_bytes: usize,
}

/// What waits behind a copy: answers, and further copies (BACKUPs
/// pipelined on one connection), in order.
enum Held {
    Answer(Response),
    Copy(CopyJob),
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
    pause: Pause,
    /// The iteration in which its last turn ended ([`Pause::Turn`]): it
    /// gets the next one in the next iteration, after the others.
    turn_ended: u64,
    /// Close once the output is flushed (web responses, or the peer
    /// finished sending).
    close_after_flush: bool,
    /// Close now.
    dead: bool,
    /// A web connection serving an event stream.
    events: Option<Box<web::EventStream>>,
    /// A store copy being streamed (a follower).
    copy: Option<Box<Streaming>>,
    /// When the output last shrank, or was empty.
    drained_at: Instant,
    /// A web connection still reading its request head: by when it must
    /// be complete.
    head_deadline: Option<Instant>,
}

/// Every client and web connection of the node.
pub(super) struct Conns {
    slab: Vec<Option<Conn>>,
    free: Vec<usize>,
    /// Client connections open, and the most allowed.
    clients: usize,
    max_clients: usize,
    /// Web connections open (pages and event streams), and the most.
    web_open: usize,
    max_web: usize,
    /// Bytes in every connection's write buffer.
    out_bytes: usize,
    decoder: FrameDecoder,
    scratch: Vec<u8>,
    /// Connections with output to flush this iteration.
    dirty: Vec<usize>,
    /// Connections not read from now (see [`Pause`]).
    paused: Vec<usize>,
    /// Turns used up (connections paused with [`Pause::Turn`]) in this
    /// iteration, and the length of a turn in this one (set from the
    /// last one's count).
    turns_used: usize,
    turn: Duration,
    /// Loop iterations so far (counted when the answers are out).
    iteration: u64,
    /// Connections with output (a copy, a listing, or answers past
    /// [`WRITE_PER_ITERATION`]) that did not fit this iteration.
    more_output: Vec<usize>,
    /// The last connection whose large output was written: the next
    /// iteration's writes start after it.
    write_cursor: usize,
    /// Web connections with request bytes to look at.
    http_ready: Vec<usize>,
    /// Event-stream connections.
    streams: Vec<usize>,
    /// The head rev the streams were last fed up to.
    streamed_rev: Rev,
    change_cache: web::ChangeCache,
    next_ping: Instant,
    /// When the streams' held `rev` messages go out, if any is held.
    held_revs_due: Option<Instant>,
    /// When connections are next checked for draining and head deadlines.
    next_sweep: Instant,
    /// TLS on the client port (`-tlscert`).
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl Conns {
    /// No connections yet; event streams start at `head`. `max_clients`
    /// and `max_web` bound each kind of connection separately, so web
    /// clients cannot take the descriptors clients need.
    pub(super) fn new(
        tls: Option<Arc<rustls::ServerConfig>>,
        head: Rev,
        max_clients: usize,
        max_web: usize,
    ) -> Conns {
        Conns {
            slab: Vec::new(),
            free: Vec::new(),
            clients: 0,
            max_clients,
            web_open: 0,
            max_web,
            out_bytes: 0,
            decoder: FrameDecoder::default(),
            scratch: vec![0; READ_CHUNK],
            dirty: Vec::new(),
            paused: Vec::new(),
            turns_used: 0,
            turn: TIME_PER_TURN,
            iteration: 0,
            more_output: Vec::new(),
            write_cursor: 0,
            http_ready: Vec::new(),
            streams: Vec::new(),
            streamed_rev: head,
            change_cache: web::ChangeCache::default(),
            next_ping: Instant::now() + PING_INTERVAL,
            held_revs_due: None,
            next_sweep: Instant::now() + Duration::from_secs(1),
            tls,
        }
    }

    /// Web connections open (pages and event streams).
    pub(super) fn web_open(&self) -> usize {
        self.web_open
    }

    /// Whether a web request waits for [`Conns::serve_http`].
    pub(super) fn http_waiting(&self) -> bool {
        !self.http_ready.is_empty()
    }

    /// Event streams open: not those whose client left or that failed
    /// and are closed at this iteration's flush (the stats pages are
    /// answered before it).
    pub(super) fn streams(&self) -> usize {
        self.streams
            .iter()
            .filter(
                |&&i| matches!(self.slab.get(i), Some(Some(c)) if !c.dead && !c.close_after_flush),
            )
            .count()
    }

    /// Bytes of unsent output the node holds for its connections.
    pub(super) fn out_bytes(&self) -> usize {
        self.out_bytes
    }

    /// When the loop must look at the connections again without an event:
    /// the next ping, the next sweep.
    pub(super) fn deadline(&self) -> Option<Instant> {
        let ping = (!self.streams.is_empty()).then_some(self.next_ping);
        [ping, self.held_revs_due, Some(self.next_sweep)]
            .into_iter()
            .flatten()
            .min()
    }

    /// Accepts every pending connection on `listener`. Past the limit of
    /// its kind, a connection is accepted and closed at once: refused, not
    /// left hanging.
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
            let (open, max) = match kind {
                Kind::Client => (self.clients, self.max_clients),
                Kind::Web => (self.web_open, self.max_web),
            };
            if open >= max {
                log::warn!("refusing a {kind:?} connection from {peer}: {max} open");
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
            let now = Instant::now();
            match kind {
                Kind::Client => {
                    self.clients += 1;
                    let _ = replica.step(now_ms, Input::Connect(idx));
                }
                Kind::Web => self.web_open += 1,
            }
            self.slab[idx] = Some(Conn {
                stream,
                tls: session,
                kind,
                rbuf: BytesMut::new(),
                wbuf: BytesMut::new(),
                want_write: false,
                pause: Pause::No,
                turn_ended: 0,
                close_after_flush: false,
                dead: false,
                events: None,
                copy: None,
                drained_at: now,
                head_deadline: (kind == Kind::Web).then(|| now + HEAD_TIMEOUT),
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
    /// paused.
    pub(super) fn readable(&mut self, i: usize, replica: &mut Replica, now_ms: u64) {
        let mut budget = READ_BUDGET;
        let started = Instant::now();
        let mut frames = 0;
        loop {
            let Some(Some(conn)) = self.slab.get_mut(i) else {
                return;
            };
            if conn.pause != Pause::No || conn.dead || conn.close_after_flush {
                break;
            }
            match tls::read_maybe(conn.tls.as_deref_mut(), &mut conn.stream, &mut self.scratch) {
                // End of input: answer what was received, then close.
                Ok(0) => conn.close_after_flush = true,
                Ok(n) => {
                    conn.rbuf.extend_from_slice(&self.scratch[..n]);
                    budget = budget.saturating_sub(n);
                    match conn.kind {
                        Kind::Client => {
                            self.handle_frames(i, replica, now_ms, started, &mut frames)
                        }
                        Kind::Web => self.http_ready.push(i),
                    }
                    if budget == 0 {
                        // Others get a turn; this one goes on next time.
                        self.pause(i, Pause::Turn);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::InvalidData && conn.tls.is_some() => {
                    // Plain TCP or garbage on a TLS port: this client only.
                    log::debug!("connection {i}: closing: TLS: {e}");
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

    /// Stops reading connection `i` for `why`.
    fn pause(&mut self, i: usize, why: Pause) {
        if let Some(Some(c)) = self.slab.get_mut(i) {
            if c.pause == Pause::No {
                self.paused.push(i);
            }
            if why == Pause::Turn {
                self.turns_used += 1;
                c.turn_ended = self.iteration;
            }
            c.pause = why;
        }
    }

    /// Whether connection `i` has caused more than it may have waiting:
    /// answers not yet written (queued in the replica or in its buffer),
    /// writes in consensus, or more than a small share of output while
    /// the node as a whole holds too much.
    fn over_budget(&self, c: &Conn, i: usize, replica: &Replica) -> bool {
        let b = replica.backlog(i);
        let waiting = c.wbuf.len() + b.queued_bytes;
        waiting > MAX_PENDING_OUTPUT
            || b.writes >= MAX_WRITES_PER_CONN
            || (self.out_bytes + replica.queued_total() > NODE_OUTPUT_BUDGET
                && waiting > FAIR_SHARE)
    }

    /// Hands every complete frame buffered on client connection `i` to
    /// the replica, until it is over budget or had its turn.
    fn handle_frames(
        &mut self,
        i: usize,
        replica: &mut Replica,
        now_ms: u64,
        started: Instant,
        frames: &mut usize,
    ) {
        loop {
            let Some(Some(conn)) = self.slab.get(i) else {
                return;
            };
            if self.over_budget(conn, i, replica) {
                return self.pause(i, Pause::Backlog);
            }
            if *frames >= FRAMES_PER_TURN
                || started.elapsed() >= self.turn
                || (*frames > 0 && replica.queued_total() > OUTPUT_PER_ITERATION)
            {
                return self.pause(i, Pause::Turn);
            }
            let Some(Some(conn)) = self.slab.get_mut(i) else {
                return;
            };
            let frame = match self.decoder.decode(&mut conn.rbuf) {
                Ok(Some(f)) => f,
                Ok(None) => return,
                Err(e) => {
                    log::debug!("connection {i}: closing: {e}");
                    conn.dead = true;
                    return;
                }
            };
            *frames += 1;
            match Request::decode(frame) {
                Ok(req) => {
                    let _ = replica.step(now_ms, Input::Request(i, req));
                }
                Err(e) => {
                    // Without a decodable tag there is nobody to answer.
                    log::debug!("connection {i}: closing: bad request: {e}");
                    conn.dead = true;
                    return;
                }
            }
        }
    }

    /// Answers the web requests that arrived this iteration (`ctx.stats`
    /// gathers the figures of the stats pages, only when asked for).
    pub(super) fn serve_http(&mut self, store: &Store, ctx: &web::Context<'_>) {
        for i in std::mem::take(&mut self.http_ready) {
            let Some(Some(conn)) = self.slab.get_mut(i) else {
                continue;
            };
            if conn.rbuf.is_empty() || conn.events.is_some() {
                continue;
            }
            let before = conn.wbuf.len();
            match web::respond(&conn.rbuf, store, ctx) {
                web::Outcome::NeedMore => {}
                web::Outcome::Reply(bytes) => {
                    conn.wbuf.extend_from_slice(&bytes);
                    conn.rbuf.clear();
                    conn.head_deadline = None;
                    conn.close_after_flush = true;
                }
                web::Outcome::Stream(stream, bytes) => {
                    log::debug!("connection {i}: event stream of {}", stream.dir());
                    conn.wbuf.unsplit(bytes);
                    conn.rbuf.clear();
                    conn.head_deadline = None;
                    conn.events = Some(stream);
                    self.streams.push(i);
                    self.more_output.push(i);
                }
            }
            self.out_bytes += conn.wbuf.len() - before;
            self.dirty.push(i);
        }
    }

    /// Whether any event stream is open.
    pub(super) fn has_streams(&self) -> bool {
        !self.streams.is_empty()
    }

    /// Sends every event stream the changes applied since the last call,
    /// and a keep-alive ping when it is due. A stream that cannot keep up
    /// is closed; its client reconnects and resumes from its last rev.
    /// `rev` messages wait up to [`HELD_REV_DELAY`] (docs/web.md).
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
        let held_due = self.held_revs_due.is_some_and(|t| now >= t);
        if head == self.streamed_rev && !ping && !held_due {
            return;
        }
        self.streamed_rev = head;
        self.change_cache.clear();
        let mut holding = false;
        for i in self.streams.clone() {
            let Some(Some(conn)) = self.slab.get_mut(i) else {
                continue;
            };
            let before = conn.wbuf.len();
            if ping {
                conn.wbuf.extend_from_slice(web::PING);
            }
            // A stream still listing goes on only as it drains (flush,
            // `top_up`): adding a chunk here for every change would pile
            // the whole listing up behind a client that does not read.
            if let Some(stream) = conn.events.as_mut().filter(|s| !s.listing()) {
                let listing = stream.catch_up(store, &mut self.change_cache, &mut conn.wbuf);
                if held_due || ping {
                    stream.send_held_rev(&mut conn.wbuf);
                }
                holding |= stream.holds_rev();
                if !listing && conn.wbuf.len() > MAX_STREAM_BACKLOG {
                    log::debug!("connection {i}: event stream too far behind; closing");
                    conn.dead = true;
                }
            }
            self.out_bytes += conn.wbuf.len() - before;
            self.dirty.push(i);
        }
        // One deadline for every stream: the first rev held since the
        // last send starts it, later ones go out with it.
        self.held_revs_due = match self.held_revs_due {
            Some(t) if holding && !held_due => Some(t),
            _ if holding => Some(now + HELD_REV_DELAY),
            _ => None,
        };
    }

    /// Encodes `responses` into their connections' buffers (in order;
    /// a follower's store copy goes out first, as its socket drains, and
    /// what comes after it waits), and flushes every connection with
    /// output.
    pub(super) fn answer(
        &mut self,
        responses: &mut Vec<(ConnId, Response)>,
        copies: &mut Vec<(usize, CopyJob)>,
        registry: &Registry,
        replica: &mut Replica,
        now_ms: u64,
    ) {
        let mut copies: VecDeque<(usize, CopyJob)> = copies.drain(..).collect();
        let mut seen: std::collections::BTreeMap<ConnId, usize> = Default::default();
        for (conn_id, resp) in responses.drain(..) {
            let n = seen.entry(conn_id).or_default();
            self.start_copies(conn_id, *n, &mut copies);
            *n += 1;
            self.push(conn_id, resp);
        }
        for (conn_id, n) in seen {
            self.start_copies(conn_id, n, &mut copies);
        }
        for (_, job) in copies {
            let conn = job.conn;
            self.start_copy(conn, job);
        }
        let mut dirty = std::mem::take(&mut self.dirty);
        dirty.append(&mut self.more_output);
        dirty.sort_unstable();
        dirty.dedup();
        // Start after the connection that was written last, so that with
        // more to write than one iteration takes, every one gets its turn.
        let first = dirty.partition_point(|&i| i <= self.write_cursor);
        dirty.rotate_left(first);
        // Answers before event streams: a change's fan-out to 1,000
        // streams takes about 10 ms of `send` calls here, and the write
        // that made it (or any other client) must not wait behind it
        // (docs/benchmarks.md, "Answers before event streams"). Stable, so
        // each kind keeps its turns.
        let slab = &self.slab;
        dirty.sort_by_key(|&i| matches!(slab.get(i), Some(Some(c)) if c.events.is_some()));
        let streams_until = Instant::now() + STREAM_TIME_PER_ITERATION;
        let mut written = 0;
        for &i in &dirty {
            let large = match self.slab.get(i) {
                Some(Some(c)) => c.wbuf.len() > FAIR_SHARE || self.wants_top_up(i),
                _ => continue,
            };
            if large && written >= WRITE_PER_ITERATION {
                self.more_output.push(i);
                continue;
            }
            written += self.flush(i, streams_until, registry, replica, now_ms);
            if large {
                self.write_cursor = i;
            }
        }
        dirty.clear();
        self.dirty = dirty;
        // The next iteration's turns share its time among the connections
        // that used up theirs in this one.
        let busy = self.turns_used.max(1) as u32;
        self.turn = (TIME_PER_ITERATION / busy).clamp(MIN_TURN, TIME_PER_TURN);
        self.turns_used = 0;
        self.iteration += 1;
    }

    /// Starts the copies that come after the first `n` responses of `conn`.
    fn start_copies(&mut self, conn: ConnId, n: usize, copies: &mut VecDeque<(usize, CopyJob)>) {
        while let Some(k) = copies.iter().position(|(at, j)| j.conn == conn && *at == n) {
            if let Some((_, job)) = copies.remove(k) {
                self.start_copy(conn, job);
            }
        }
    }

    fn start_copy(&mut self, conn_id: ConnId, job: CopyJob) {
        if let Some(Some(conn)) = self.slab.get_mut(conn_id) {
            if conn.dead {
                return;
            }
            match conn.copy.as_mut() {
                Some(copy) => {
                    // Each waiting copy pins a version of the store: a
                    // client pipelining BACKUPs gets a few, not memory.
                    let waiting = copy.held.iter().filter(|h| matches!(h, Held::Copy(_)));
                    if waiting.count() >= MAX_WAITING_COPIES {
                        log::warn!(
                            "connection {conn_id}: more than {MAX_WAITING_COPIES} copies \
                             waiting behind one another; closing"
                        );
                        conn.dead = true;
                        return;
                    }
                    copy.held.push_back(Held::Copy(job));
                }
                None => {
                    conn.copy = Some(Box::new(Streaming {
                        job,
                        held: VecDeque::new(),
                        held_bytes: 0,
                    }))
                }
            }
            self.more_output.push(conn_id);
        }
    }

    /// Encodes one response into its connection's buffer, or holds it
    /// behind a copy in progress.
    fn push(&mut self, conn_id: ConnId, resp: Response) {
        let Some(Some(conn)) = self.slab.get_mut(conn_id) else {
            return;
        };
        if let Some(copy) = conn.copy.as_mut() {
            copy.held_bytes += resp.encoded_len();
            copy.held.push_back(Held::Answer(resp));
            if copy.held_bytes > MAX_UNSENT_OUTPUT {
                log::warn!("connection {conn_id}: changes piled up behind a store copy; closing");
                conn.dead = true;
            }
            return;
        }
        let before = conn.wbuf.len();
        encode_frame(&resp, &mut conn.wbuf);
        self.out_bytes += conn.wbuf.len() - before;
        self.dirty.push(conn_id);
    }

    /// Adds the next chunk of a copy or listing when the connection's
    /// output is low. True if more of it is waiting.
    fn top_up(&mut self, i: usize, store: &Store) -> bool {
        let Some(Some(conn)) = self.slab.get_mut(i) else {
            return false;
        };
        if conn.wbuf.len() >= STREAM_CHUNK {
            return conn.copy.is_some() || conn.events.is_some();
        }
        let before = conn.wbuf.len();
        let more = if let Some(copy) = conn.copy.as_mut() {
            let mut chunk = Vec::new();
            let done = copy.job.next_chunk(STREAM_CHUNK, &mut chunk);
            for r in &chunk {
                encode_frame(r, &mut conn.wbuf);
            }
            if done {
                // What waited goes out, up to the next copy, which starts.
                let mut rest = std::mem::take(&mut copy.held);
                let mut next = None;
                while let Some(h) = rest.pop_front() {
                    match h {
                        Held::Answer(r) => encode_frame(&r, &mut conn.wbuf),
                        Held::Copy(job) => {
                            next = Some(job);
                            break;
                        }
                    }
                }
                conn.copy = next.map(|job| {
                    let held_bytes = rest
                        .iter()
                        .map(|h| match h {
                            Held::Answer(r) => r.encoded_len(),
                            Held::Copy(_) => 0,
                        })
                        .sum();
                    Box::new(Streaming {
                        job,
                        held: rest,
                        held_bytes,
                    })
                });
            }
            conn.copy.is_some()
        } else if let Some(stream) = conn.events.as_mut() {
            let was_listing = stream.listing();
            let mut more = stream.catch_up(store, &mut self.change_cache, &mut conn.wbuf);
            if was_listing && !more {
                // Listed: the changes made meanwhile follow at once, and
                // the rev too (only `feed_streams` holds revs back).
                more = stream.catch_up(store, &mut self.change_cache, &mut conn.wbuf);
                stream.send_held_rev(&mut conn.wbuf);
            }
            more
        } else {
            false
        };
        self.out_bytes += conn.wbuf.len() - before;
        more
    }

    /// Whether connection `i` has a copy or listing waiting and room in
    /// its output for the next chunk.
    fn wants_top_up(&self, i: usize) -> bool {
        matches!(self.slab.get(i), Some(Some(c))
            if c.wbuf.len() < STREAM_CHUNK
                && (c.copy.is_some() || c.events.as_ref().is_some_and(|e| e.listing())))
    }

    /// Whether a paused connection may read again.
    fn can_resume(&self, c: &Conn, i: usize, replica: &Replica) -> bool {
        if c.dead {
            return false;
        }
        match c.pause {
            Pause::No => true,
            Pause::Turn => c.turn_ended != self.iteration,
            Pause::Backlog => {
                let b = replica.backlog(i);
                let waiting = c.wbuf.len() + b.queued_bytes;
                waiting <= MAX_PENDING_OUTPUT / 2
                    && b.writes < MAX_WRITES_PER_CONN / 2
                    && (self.out_bytes < NODE_OUTPUT_BUDGET / 2 || waiting <= FAIR_SHARE / 2)
            }
        }
    }

    /// True if some paused connection may read again, or a copy or
    /// listing is waiting: the next poll must not block.
    pub(super) fn any_ready(&self, replica: &Replica) -> bool {
        !self.more_output.is_empty()
            || self.paused.iter().any(
                |&i| matches!(self.slab.get(i), Some(Some(c)) if self.can_resume(c, i, replica)),
            )
    }

    /// Lets paused connections that may go on read again: frames already
    /// buffered first, then the socket.
    pub(super) fn resume_paused(&mut self, replica: &mut Replica, now_ms: u64) {
        let mut resume = Vec::new();
        for i in std::mem::take(&mut self.paused) {
            let go = match self.slab.get(i) {
                Some(Some(c)) if !c.dead && c.pause != Pause::No => self.can_resume(c, i, replica),
                _ => continue,
            };
            if go {
                resume.push(i);
            } else {
                self.paused.push(i); // still backed up
            }
        }
        for i in resume {
            let client = match self.slab.get_mut(i) {
                Some(Some(c)) => {
                    c.pause = Pause::No;
                    c.kind == Kind::Client
                }
                _ => continue,
            };
            if client {
                let mut frames = 0;
                self.handle_frames(i, replica, now_ms, Instant::now(), &mut frames);
            }
            self.readable(i, replica, now_ms);
        }
    }

    /// Closes connections that do not take their output, and web
    /// connections whose request head is late (once a second).
    pub(super) fn sweep(&mut self, registry: &Registry, replica: &mut Replica, now_ms: u64) {
        let now = Instant::now();
        if now < self.next_sweep {
            return;
        }
        self.next_sweep = now + Duration::from_secs(1);
        for i in 0..self.slab.len() {
            let Some(Some(c)) = self.slab.get_mut(i) else {
                continue;
            };
            let stuck = !c.wbuf.is_empty() && now.duration_since(c.drained_at) > DRAIN_TIMEOUT;
            let late = c.head_deadline.is_some_and(|d| now >= d);
            if stuck || late {
                let why = if late {
                    "no complete request head in time"
                } else {
                    "it does not read its answers"
                };
                log::debug!("connection {i}: closing: {why}");
                c.dead = true;
                self.close(i, registry, replica, now_ms);
            }
        }
    }

    /// Writes connection `i`'s output, topping up its copy or listing
    /// while the socket takes it (until `streams_until`, then the next
    /// iteration goes on), and closes it if it is done or dead. Returns
    /// the bytes the socket took.
    fn flush(
        &mut self,
        i: usize,
        streams_until: Instant,
        registry: &Registry,
        replica: &mut Replica,
        now_ms: u64,
    ) -> usize {
        let mut written = 0;
        loop {
            let more = if Instant::now() < streams_until {
                self.top_up(i, replica.store())
            } else {
                if self.wants_top_up(i) {
                    self.more_output.push(i);
                }
                false
            };
            let Some(Some(conn)) = self.slab.get_mut(i) else {
                return written;
            };
            let before = conn.wbuf.len();
            if !conn.dead {
                if let Err(e) =
                    tls::write_maybe(conn.tls.as_deref_mut(), &mut conn.stream, &mut conn.wbuf)
                {
                    log::debug!("connection {i}: write: {e}");
                    conn.dead = true;
                }
            }
            let took = before - conn.wbuf.len();
            self.out_bytes -= took;
            written += took;
            if took > 0 || conn.wbuf.is_empty() {
                conn.drained_at = Instant::now();
            }
            // Go on with a copy or listing while the socket takes it, up
            // to this connection's share of the iteration.
            if !more || conn.dead || !conn.wbuf.is_empty() {
                break;
            }
            if written >= WRITE_PER_TURN {
                self.more_output.push(i);
                break;
            }
        }
        let Some(Some(conn)) = self.slab.get_mut(i) else {
            return written;
        };
        if conn.wbuf.is_empty() && conn.wbuf.capacity() > KEEP_WBUF {
            conn.wbuf = BytesMut::new();
        }
        let sealed_pending = conn.tls.as_ref().is_some_and(|t| t.wants_write());
        let streaming = conn.copy.is_some();
        if conn.wbuf.is_empty() && !sealed_pending && conn.close_after_flush && !streaming {
            conn.dead = true;
        }
        if conn.wbuf.len() > MAX_UNSENT_OUTPUT {
            // Not reading while answers keep coming (a WAIT stream that
            // stopped): memory must not grow without bound.
            log::warn!(
                "connection {i}: {} bytes unsent; closing it",
                conn.wbuf.len()
            );
            conn.dead = true;
        }
        if conn.dead {
            self.close(i, registry, replica, now_ms);
            return written;
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
                self.close(i, registry, replica, now_ms);
                return written;
            }
            conn.want_write = want_write;
        }
        written
    }

    fn close(&mut self, i: usize, registry: &Registry, replica: &mut Replica, now_ms: u64) {
        if let Some(mut conn) = self.slab.get_mut(i).and_then(Option::take) {
            let _ = registry.deregister(&mut conn.stream);
            self.out_bytes -= conn.wbuf.len();
            match conn.kind {
                Kind::Client => {
                    self.clients -= 1;
                    let _ = replica.step(now_ms, Input::Disconnect(i));
                }
                Kind::Web => self.web_open -= 1,
            }
            if conn.events.is_some() {
                self.streams.retain(|&s| s != i);
            }
            self.free.push(i);
            log::debug!("connection {i} closed");
        }
    }
}
