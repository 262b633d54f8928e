//! The event loop: one thread, one `mio` poll, owning every socket and the
//! [`Replica`]. It only moves bytes and time: each iteration it feeds what
//! arrived to the replica as inputs (client frames, peer datagrams, the
//! follow stream), then drains the replica's one [`Output`]: peer messages
//! are sent first, then role changes, the name service and the follow
//! connection are acted on, and the answers are encoded and flushed with
//! one write per connection, so pipelined requests are batched into few
//! system calls.
//!
//! Map:
//! - this module: [`Node`] and its loop ([`Node::run`]).
//! - `startup`: binding the listeners and joining a cluster (attach, name
//!   service, or seeding) before the loop runs ([`Node::start`]).
//! - `conns`: client and web connections: frames in, answers out, pausing
//!   on output, web requests and event streams.
//! - `follow`: a slave's stream from the node it follows, and attaching
//!   again when it breaks (without blocking the loop).
//! - `restore`: reading the backup of `-restore` before start-up.
//! - `stats`: the figures of the stats page and metrics; ids, host name.

mod conns;
mod disk;
mod follow;
mod leave;
mod restore;
mod startup;
mod stats;

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::TcpListener;
use mio::{Events, Poll, Token};

use crate::attach::AttachError;
use crate::boot::Registrar;
use crate::replica::{Input, Output, Replica, RoleChange};
use crate::transport::PeerTransport;
use conns::{Conns, Kind};
use doozer_proto::ctl;
use follow::Follower;

pub use conns::{MAX_PENDING_OUTPUT, MAX_UNSENT_OUTPUT, NODE_OUTPUT_BUDGET};
pub use leave::{Exit, LEAVE_WAIT};
pub use stats::{hostname, new_node_id};

const CLIENT_LISTENER: Token = Token(usize::MAX - 1);
const WEB_LISTENER: Token = Token(usize::MAX - 2);
const PEER_SOCKET: Token = Token(usize::MAX - 3);
const FOLLOW_STREAM: Token = Token(usize::MAX - 4);
const ATTACHED: Token = Token(usize::MAX - 5);
const SIGNALS: Token = Token(usize::MAX - 6);

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
    #[error("cannot boot through the name service {from} {uri}: {why}")]
    Boot {
        /// Where the URI came from: `-b` or `DOOZER_BOOT_URI`.
        from: &'static str,
        /// The name service's URI, its secret hidden.
        uri: String,
        /// What went wrong.
        why: String,
    },
    /// The TLS files could not be used.
    #[error("{0}")]
    Tls(String),
    /// The data directory (`-d`) cannot be used.
    #[error("data directory: {0}")]
    DataDir(String),
    /// The backup of `-restore` cannot be read or restored.
    #[error("cannot restore from {file}: {why}")]
    Restore {
        /// The backup file.
        file: String,
        /// What is wrong, with the byte offset for damage.
        why: String,
    },
}

/// Consensus time: milliseconds since the node started.
struct Clock {
    started: Instant,
}

impl Clock {
    fn start() -> Clock {
        Clock {
            started: Instant::now(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// The instant of consensus time `ms`.
    fn at(&self, ms: u64) -> Instant {
        self.started + Duration::from_millis(ms)
    }
}

/// A running node: sockets, connections and the replica.
pub struct Node {
    poll: Poll,
    clock: Clock,
    listener: TcpListener,
    web_listener: Option<TcpListener>,
    peers: PeerTransport,
    replica: Replica,
    /// The replica's output of this iteration (kept for its allocations).
    out: Output,
    /// The replica's deadline of the last output.
    deadline_ms: Option<u64>,
    /// The data directory (`-d`), if any.
    disk: Option<disk::Disk>,
    /// SIGTERM and SIGINT, and leaving gracefully.
    leave: leave::Leave,
    conns: Conns,
    follower: Follower,
    /// Keeps this node's name-service entry (`-b`), if any.
    registrar: Option<Registrar>,
    /// What the registrar was last told: this node is a CAL.
    ns_cal: bool,
    /// What the registrar was last told of this cluster's seed (its
    /// `/ctl/boot/<cluster>`).
    ns_seed: Option<String>,
    node_id: String,
    cluster: String,
    viewer: Viewer,
    /// `-spin`: how long the loop busy-polls before it sleeps, while
    /// lightly loaded (see [`Node::wait`]); zero: never.
    spin: Duration,
    /// Waits ended while busy-polling (the stats pages show it).
    spin_wakes: u64,
}

/// The loop busy-polls (`-spin`) only while the values it applies hold
/// at most this many changes: under load, batches are larger, the next
/// event comes soon anyway, and the CPU is better left to the others.
const SPIN_BATCH_MAX: usize = 2;

/// What the web viewer shows besides the store and the stats
/// (docs/web.md): the flags the cluster page judges by, and the samples
/// of the stats page's charts.
struct Viewer {
    /// `-pulse` and `-timeout`, milliseconds.
    pulse_ms: u64,
    timeout_ms: u64,
    /// The last 15 minutes of figures.
    samples: crate::web::Samples,
    /// When the next sample is due; `None` without a web viewer (nobody
    /// would see the samples).
    next_sample: Option<Instant>,
}

impl Viewer {
    fn new(config: &crate::config::Config, web_on: bool) -> Viewer {
        Viewer {
            pulse_ms: config.pulse_ms,
            timeout_ms: config.timeout_ms,
            samples: crate::web::Samples::default(),
            next_sample: web_on.then(Instant::now),
        }
    }
}

/// The stats pages' [`stats::Sources`] of a [`Node`], borrowed field by
/// field (so that the connections can be borrowed mutably meanwhile).
macro_rules! sources {
    ($node:expr) => {
        stats::Sources {
            replica: &$node.replica,
            peers: &$node.peers,
            clock: &$node.clock,
            node_id: &$node.node_id,
            cluster: &$node.cluster,
            pulse_ms: $node.viewer.pulse_ms,
            timeout_ms: $node.viewer.timeout_ms,
            web_clients: $node.conns.web_open(),
            event_streams: $node.conns.streams(),
            output_pending_bytes: $node.conns.out_bytes() + $node.replica.queued_total(),
            ns_name_conflict: $node
                .registrar
                .as_ref()
                .is_some_and(Registrar::name_conflict),
            spin_wakes: $node.spin_wakes,
        }
    };
}

impl Node {
    /// This node's id (from its data directory, when it has one).
    pub fn id(&self) -> &str {
        &self.node_id
    }

    /// The bound client address (useful with port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until SIGTERM or SIGINT (see `node/leave.rs`); returns how
    /// it ended, or an error if the poll itself fails. With `-d`, what
    /// it applied and left waiting for a later sync is written first, so
    /// a node stopped this way comes back at the rev it stopped at
    /// (docs/storage.md#early-answers).
    pub fn run(&mut self) -> Result<Exit, NodeError> {
        let exit = self.serve();
        if let Some(d) = self.disk.as_mut() {
            d.write_at_stop(self.replica.store().rev());
        }
        exit
    }

    /// The event loop of [`Node::run`].
    fn serve(&mut self) -> Result<Exit, NodeError> {
        let mut events = Events::with_capacity(1024);
        loop {
            let timeout = self.poll_timeout();
            match self.wait(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            }
            let now = self.clock.now_ms();
            // Peers first: a CAL's votes must not wait behind clients.
            if events.iter().any(|ev| ev.token() == PEER_SOCKET) {
                self.peer_readable(now);
            }
            for ev in events.iter() {
                let readable = ev.is_readable() || ev.is_read_closed() || ev.is_error();
                match ev.token() {
                    CLIENT_LISTENER => self.accept(Kind::Client, now),
                    WEB_LISTENER => self.accept(Kind::Web, now),
                    PEER_SOCKET => {}
                    SIGNALS => {
                        if let Some(exit) = self.leave.signalled(&mut self.replica) {
                            return Ok(exit);
                        }
                    }
                    ATTACHED => self.follower.attached(&self.poll, &mut self.replica, now),
                    // With the disk failing, the stream waits: what it
                    // brings could not be made durable.
                    FOLLOW_STREAM if readable && !self.disk_failing() => {
                        self.follower.readable(&self.poll, &mut self.replica, now)
                    }
                    FOLLOW_STREAM => {}
                    Token(i) => {
                        if readable {
                            self.conns.readable(i, &mut self.replica, now);
                        }
                        if ev.is_writable() {
                            self.conns.writable(i);
                        }
                    }
                }
            }
            if !self.disk_failing() {
                self.follower.read_more(&self.poll, &mut self.replica, now);
            }
            self.conns.resume_paused(&mut self.replica, now);
            self.conns
                .sweep(self.poll.registry(), &mut self.replica, now);
            self.sample_stats();
            self.serve_http();
            self.replica.ready(now, &mut self.out);
            self.act_on_output(now);
            if let Some(exit) = self.leave.done(&self.replica) {
                return Ok(exit);
            }
        }
    }

    /// Does what one output says: peers first (a round trip of consensus
    /// starts before the clients' answers, the larger writes, are copied
    /// out), then the role, the name service, the follow connection, the
    /// event streams, and the answers.
    fn act_on_output(&mut self, now: u64) {
        // Round-0 Accepts that need nothing of this output on disk leave
        // first, so the other CALs sync their votes while this node syncs.
        if !self.out.early_messages.is_empty() {
            let mut early = std::mem::take(&mut self.out.early_messages);
            self.send_peers(&mut early);
            self.out.early_messages = early; // keeps the allocation
        }
        // So do answers to writes decided on votes already on disk, this
        // node's own among them (docs/storage.md#early-answers).
        if !self.out.early_responses.is_empty() {
            self.conns.answer(
                &mut self.out.early_responses,
                &mut Vec::new(),
                self.poll.registry(),
                &mut self.replica,
                now,
            );
        }
        // Durable first: nothing else of this output leaves before what
        // it depends on is on disk.
        if let Some(d) = self.disk.as_mut() {
            // Event streams read the store itself: what they would send
            // now must be on disk first.
            let may_wait = !self.conns.has_streams();
            d.persist(&mut self.out, &mut self.replica, may_wait);
        }
        let mut messages = std::mem::take(&mut self.out.messages);
        self.send_peers(&mut messages);
        self.out.messages = messages; // keeps the allocation
        match self.out.role_change.take() {
            Some(RoleChange::Promoted) => self.follower.promoted(&self.poll),
            Some(RoleChange::Demoted) => self.follower.demoted(&self.poll),
            None => {}
        }
        self.tell_name_service();
        let requests = std::mem::take(&mut self.out.follow_requests);
        self.follower
            .on_loop(&self.poll, &requests, &mut self.replica, now);
        if self
            .peers
            .warning_due()
            .is_some_and(|t| t <= Instant::now())
        {
            self.peers.warn_dropped(Instant::now());
        }
        self.conns.feed_streams(self.replica.store());
        self.conns.answer(
            &mut self.out.responses,
            &mut self.out.copies,
            self.poll.registry(),
            &mut self.replica,
            now,
        );
        self.deadline_ms = self.out.deadline_ms;
        if let Some(d) = self.disk.as_mut() {
            d.snapshots(&self.replica);
        }
        self.out.clear();
        self.out.follow_requests = requests; // keeps the allocation
        self.out.follow_requests.clear();
    }

    /// Sends `messages` now, leaving the vector empty.
    fn send_peers(&mut self, messages: &mut Vec<(SocketAddr, doozer_proto::peer::PeerMsg)>) {
        use prost::Message;
        for (to, msg) in messages.drain(..) {
            if let Err(e) = self.peers.queue(to, msg.encode_to_vec().into()) {
                // Batches are split to fit; a single oversized value cannot
                // be proposed (SET bodies are limited).
                log::error!("peer message to {to} not sent: {e}");
            }
        }
        self.peers.flush();
    }

    fn accept(&mut self, kind: Kind, now: u64) {
        let listener = match kind {
            Kind::Client => &self.listener,
            Kind::Web => match &self.web_listener {
                Some(l) => l,
                None => return,
            },
        };
        self.conns
            .accept(listener, kind, self.poll.registry(), &mut self.replica, now);
    }

    /// Drains the peer socket into the replica.
    fn peer_readable(&mut self, now: u64) {
        let replica = &mut self.replica;
        self.peers.recv(|from, bytes| {
            let _ = replica.step(now, Input::Peer(from, bytes));
        });
    }

    /// Whether the data directory's writes are failing now.
    fn disk_failing(&self) -> bool {
        self.disk.as_ref().is_some_and(|d| d.failing())
    }

    /// Where the figures of the stats pages come from.
    fn sources(&self) -> stats::Sources<'_> {
        sources!(self)
    }

    /// Answers the web requests read this iteration.
    fn serve_http(&mut self) {
        // Most iterations have no web request: gather nothing for them
        // (counting the open event streams walks them).
        if !self.conns.http_waiting() {
            return;
        }
        // The stats are gathered only for the pages that show them. (The
        // macro, not `self.sources()`: `self.conns` is borrowed mutably
        // below, and only a field-by-field borrow allows that.)
        let sources = sources!(self);
        let ctx = crate::web::Context {
            stats: &|| sources.node_stats(),
            samples: &self.viewer.samples,
        };
        self.conns.serve_http(self.replica.store(), &ctx);
    }

    /// Takes the stats page's once-a-second sample when it is due
    /// (docs/web.md#samples): here, in the loop that owns the clock, not
    /// in the pure core.
    fn sample_stats(&mut self) {
        let Some(due) = self.viewer.next_sample else {
            return;
        };
        let now = Instant::now();
        if now < due {
            return;
        }
        let s = self.sources().node_stats();
        self.viewer.samples.push(crate::web::Sample {
            t_s: s.uptime_s,
            reads: s.reads,
            writes: s.writes,
            waits: s.waits,
            waits_pending: self.replica.store().waits_pending() as u64,
            clients: s.clients,
            rev: self.replica.store().rev(),
            rss_bytes: s.memory_rss_bytes,
        });
        // The next one a period after this one was due; after a stall (a
        // pause, a stopped process) from now, without a burst of catch-up
        // samples.
        let next = due + crate::web::SAMPLE_INTERVAL;
        self.viewer.next_sample = Some(if next > now {
            next
        } else {
            now + crate::web::SAMPLE_INTERVAL
        });
    }

    /// Tells the name-service registrar (`-b`) whether this node is a CAL
    /// and which CALs left. A CAL counts once its own store lists it: a
    /// kicked CAL woken from a pause learns of the kick (and stops being
    /// registered) before it steps down.
    fn tell_name_service(&mut self) {
        let Some(r) = &self.registrar else {
            return;
        };
        let cal = self.out.listed_cal;
        if cal {
            // Who seeded this cluster, as its own store says: the
            // registrar compares it with the name service's record
            // (docs/cluster.md#stale-name-service-records).
            let seed = self
                .replica
                .store()
                .head()
                .get(&ctl::boot_record(&self.cluster))
                .ok()
                .filter(|(_, rev)| *rev != 0)
                .map(|(body, _)| String::from_utf8_lossy(&body).into_owned());
            if seed != self.ns_seed {
                r.set_seed(seed.clone());
                self.ns_seed = seed;
            }
        }
        if cal != self.ns_cal {
            r.set_cal(cal);
            self.ns_cal = cal;
        }
        // Every CAL removes the entries of CALs that left (deleting twice
        // is harmless; a kicked node cannot remove its own).
        if cal {
            for id in self.out.cals_left.iter().filter(|id| **id != self.node_id) {
                r.remove(id);
            }
        }
    }

    /// Waits for events until `timeout`. With `-spin` and a light load,
    /// it first polls without sleeping, yielding the CPU between polls,
    /// for up to the `-spin` time (never past `timeout`): an answer or
    /// vote that comes back within it is handled without the wake-up of
    /// a sleeping process, which on a small virtual machine costs about
    /// as much as the work itself (docs/benchmarks.md, "Busy-polling").
    fn wait(&mut self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
        let spin = timeout.map_or(self.spin, |t| t.min(self.spin));
        if !spin.is_zero() && self.replica.last_batch() <= SPIN_BATCH_MAX {
            let until = Instant::now() + spin;
            loop {
                self.poll.poll(events, Some(Duration::ZERO))?;
                if !events.is_empty() {
                    self.spin_wakes += 1;
                    return Ok(());
                }
                if Instant::now() >= until {
                    break;
                }
                std::thread::yield_now();
            }
        }
        self.poll.poll(events, timeout)
    }

    /// How long the next poll may block: not at all if a paused connection
    /// can go on; until the replica's next deadline, the next ping, or the
    /// follower's next timer.
    fn poll_timeout(&self) -> Option<Duration> {
        if self.conns.any_ready(&self.replica) {
            return Some(Duration::ZERO);
        }
        let now = Instant::now();
        let consensus = self.deadline_ms.map(|ms| self.clock.at(ms));
        [
            self.conns.deadline(),
            consensus,
            self.follower.deadline(),
            self.peers.warning_due(),
            self.disk.as_ref().and_then(|d| d.deadline()),
            self.leave.deadline(),
            self.viewer.next_sample,
        ]
        .into_iter()
        .flatten()
        .min()
        .map(|t| t.saturating_duration_since(now))
    }
}
