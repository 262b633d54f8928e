//! The replica: everything one node holds and decides, as a pure state
//! machine. It owns the store, consensus (while a CAL), membership, the
//! client sessions and the follow streams; it never reads a clock or a
//! socket.
//!
//! Map:
//! - this module: [`Replica`], what it is fed ([`Input`]) and what it
//!   yields once per loop iteration ([`Output`]).
//! - `dispatch`: client requests, verb by verb; reads parked until a
//!   future rev, WAITs, writes answered when their change is applied.
//! - `membership`: driving consensus while a CAL: CAL sets, promotion of a
//!   slave, demotion, kick, pulse (docs/cluster.md).
//! - `follow`: slaves following a node, both sides: the stream a CAL sends
//!   and the follower replaying it.
//! - `session`: per-connection grant (secrets) and outstanding tags.
//! - `listing`: GETDIR at high offsets without quadratic cost.
//!
//! The event loop (`crate::node`) feeds inputs with [`Replica::step`] as
//! they arrive and, once per loop iteration, drains [`Replica::ready`]:
//! peer messages to send first, then client answers, requests on the
//! follow connection, a role change, CALs that left, and when to call
//! again without input. A client SET crosses the seam twice: in as
//! [`Input::Request`], out as a response in an [`Output`].
//!
//! This is the seam where durability goes (etcd raft's `Ready`): what
//! must be on disk before the output's messages and answers leave will be
//! one more field of [`Output`], written and synced by the loop before it
//! sends anything of that output.

mod batch;
mod cal;
mod dispatch;
mod durable;
pub mod follow;
mod listing;
mod membership;
mod restore;
pub mod session;

use std::collections::BTreeMap;
use std::net::SocketAddr;

use bytes::Bytes;
use doozer_proto::peer::PeerMsg;
use doozer_proto::{Request, Response};

use crate::cluster::NodeInfo;
use crate::consensus::{NodeId, Paxos, ProposalId};
use crate::store::{Store, WaitId};
pub use durable::{RecoverError, Restored, SnapshotJob};
pub use follow::{CopyJob, FollowError, FollowState};
pub use membership::{ClusterConfig, RoleChange, SIDE_TAG_BASE};
pub use restore::BackupTree;
pub use session::{Grant, Secrets, Session};

/// Largest file body a SET may write. Every change travels to the other
/// CALs in one peer datagram (`transport::MAX_MESSAGE_LEN`), with its path
/// (up to 4 KiB) and the Paxos fields, so a larger body is refused before
/// anything is proposed. At least 32 KiB is required
/// (docs/reference.md#limits).
pub const MAX_BODY_LEN: usize = doozer_proto::MAX_BODY_LEN;

/// Most requests of one connection waiting at once (WAITs and reads at a
/// future rev); more are refused with `OTHER`.
pub const MAX_WAITS_PER_CONN: usize = 1_000;
/// Most requests waiting on the whole node.
pub const MAX_WAITS: usize = 50_000;
/// Most bytes of glob text waiting on the whole node (every change is
/// matched against the waits under its path: this bounds that work).
pub const MAX_GLOB_WAIT_BYTES: usize = 1 << 20;
/// Most writes of one connection in consensus at once; the event loop
/// stops reading the connection until some are answered.
pub const MAX_WRITES_PER_CONN: usize = 1_024;

/// Identifies a client connection (chosen by the event loop).
pub type ConnId = usize;

/// Counters the stats page and metrics show.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Requests handled, all verbs.
    pub requests: u64,
    /// Read requests answered.
    pub reads: u64,
    /// Writes (SET, DEL, NOP) proposed.
    pub writes: u64,
    /// WAIT requests received.
    pub waits: u64,
    /// Error responses sent.
    pub errors: u64,
    /// Connections open now.
    pub clients: u64,
    /// Values proposed to consensus (client writes and the node's own).
    pub proposals: u64,
    /// Of those, batches of client writes (`writes` / `write_batches`
    /// is the mean batch size).
    pub write_batches: u64,
    /// Peer messages dropped: undecodable, from an address that is no
    /// node's, or arriving while this node is not a CAL.
    pub peer_messages_ignored: u64,
    /// Learned values that did not decode (applied as NOP).
    pub malformed_values: u64,
    /// Peer messages for a node without a known address (not sent).
    pub unroutable_messages: u64,
    /// Learned seqns that were not the store's next rev: a bug, after
    /// which the node stepped down and copied the store again.
    pub learned_gaps: u64,
    /// Times this node found its store differs from a majority of the
    /// CALs' at the same rev, stopped serving and copied it again.
    pub divergences: u64,
    /// Kicks this node proposed (of CALs a majority found silent).
    pub kicks_proposed: u64,
}

/// Something that happened outside the replica.
#[derive(Debug)]
pub enum Input {
    /// A client connection was accepted under this id.
    Connect(ConnId),
    /// A client connection closed; its id may be reused afterwards.
    Disconnect(ConnId),
    /// A decoded request from a client connection.
    Request(ConnId, Request),
    /// A peer datagram's message (still encoded), with its sender.
    Peer(SocketAddr, Bytes),
    /// A response on this slave's follow stream.
    Follow(Response),
    /// The follow stream broke, or is being replaced by a new one.
    FollowLost,
}

/// What the replica wants done after one loop iteration, drained once by
/// [`Replica::ready`]. The loop sends `messages` first (a round trip of
/// consensus starts before answers are copied out), then the rest.
#[derive(Debug, Default)]
pub struct Output {
    /// Peer messages, with the address of the peer.
    pub messages: Vec<(SocketAddr, PeerMsg)>,
    /// With a data directory: peer messages that may leave before
    /// `persist` is synced (round-0 Accepts and skips below a floor already on disk;
    /// docs/storage.md#what-is-synced-when). Sending them first overlaps
    /// this node's sync with the other CALs'.
    pub early_messages: Vec<(SocketAddr, PeerMsg)>,
    /// With a data directory: lazy votes (`Paxos::take_lazy_messages`;
    /// docs/storage.md#lazy-votes). Like `messages`, they leave only once
    /// `persist` is synced, but they need no sync of their own: when the
    /// records may wait ([`Output::sync_can_wait`]), they wait with them.
    pub lazy_messages: Vec<(SocketAddr, PeerMsg)>,
    /// Answers to clients, in the order they were produced.
    pub responses: Vec<(ConnId, Response)>,
    /// With a data directory: answers to writes that may leave before
    /// `persist` is synced, because their change is decided on votes
    /// already on disk and is in this node's log as its own synced vote
    /// (`Ready::on_disk`; docs/storage.md#early-answers). They
    /// may overtake earlier answers of the same connection, which the
    /// protocol allows (answers are matched by tag); never a copy's.
    pub early_responses: Vec<(ConnId, Response)>,
    /// Copies of the store for followers, each with its place among the
    /// `responses` of its connection (it comes after that many of them):
    /// the loop streams it as the follower's socket drains, and holds what
    /// comes after it on that connection until it is out.
    pub copies: Vec<(usize, CopyJob)>,
    /// Requests this slave sends on its follow connection (a slot claim,
    /// catch-up NOPs).
    pub follow_requests: Vec<Request>,
    /// A change of role to act on.
    pub role_change: Option<RoleChange>,
    /// CALs whose slot was emptied or removed since the last output.
    pub cals_left: Vec<NodeId>,
    /// Whether this node is a CAL whose own store lists it in a slot (what
    /// the name-service registration follows).
    pub listed_cal: bool,
    /// When to call [`Replica::ready`] again even without input (ms on
    /// the clock the loop passes in).
    pub deadline_ms: Option<u64>,
    /// With a data directory: the store was replaced whole; this snapshot
    /// and a new log go to disk before anything else of this output.
    pub checkpoint: Option<SnapshotJob>,
    /// With a data directory: what must be written and synced before any
    /// message or answer of this output leaves (docs/storage.md).
    pub persist: Vec<crate::storage::Record>,
    /// With a data directory: whether a record consensus put in `persist`
    /// needs a prompt sync: anything but a lazy vote.
    pub eager_records: bool,
}

impl Output {
    /// Puts every copy's responses in its place among `responses`, whole
    /// (tests and the simulator, which do not stream).
    pub fn expand_copies(&mut self) {
        let mut copies = std::mem::take(&mut self.copies);
        let mut seen: BTreeMap<ConnId, usize> = BTreeMap::new();
        let mut out = Vec::with_capacity(self.responses.len());
        let mut place = |conn: ConnId, n: usize, out: &mut Vec<(ConnId, Response)>| {
            while let Some(i) = copies.iter().position(|(at, j)| j.conn == conn && *at == n) {
                let (_, job) = copies.remove(i);
                out.extend(job.all().into_iter().map(|r| (conn, r)));
            }
        };
        for (conn, resp) in std::mem::take(&mut self.responses) {
            let n = seen.entry(conn).or_default();
            place(conn, *n, &mut out);
            *n += 1;
            out.push((conn, resp));
        }
        for (conn, n) in seen {
            place(conn, n, &mut out);
        }
        for (_, job) in copies {
            let conn = job.conn;
            out.extend(job.all().into_iter().map(|r| (conn, r)));
        }
        self.responses = out;
    }

    /// With a data directory: whether this output's records may wait,
    /// unsynced, for a later output's sync: they are all Applied records
    /// or lazy votes (or none), and nothing of this output leaves after
    /// the sync but lazy votes (no other peer message, answer, copy,
    /// follow request or change of role; early answers already left).
    /// Applied records are what this node learned, and no decision
    /// waits for a lazy vote; every message that depends on either
    /// waits for their sync, so losing them in a crash loses nothing
    /// the cluster relies on, and the node learns the values again after
    /// a restart (docs/storage.md#early-answers, #lazy-votes). The loop
    /// then goes on without waiting for the disk; the first output that
    /// needs a sync covers them.
    pub fn sync_can_wait(&self) -> bool {
        use crate::storage::Record;
        self.checkpoint.is_none()
            && !self.eager_records
            && self
                .persist
                .iter()
                .all(|r| matches!(r, Record::Applied { .. } | Record::Vote { .. }))
            && self.messages.is_empty()
            && self.responses.is_empty()
            && self.copies.is_empty()
            && self.follow_requests.is_empty()
            && self.role_change.is_none()
    }

    /// Empties every field, keeping the allocations.
    pub fn clear(&mut self) {
        self.messages.clear();
        self.early_messages.clear();
        self.lazy_messages.clear();
        self.responses.clear();
        self.early_responses.clear();
        self.copies.clear();
        self.follow_requests.clear();
        self.role_change = None;
        self.cals_left.clear();
        self.listed_cal = false;
        self.deadline_ms = None;
        self.checkpoint = None;
        self.persist.clear();
        self.eager_records = false;
    }
}

/// What one connection has caused and not yet been given
/// ([`Replica::backlog`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backlog {
    /// Bytes of answers not yet handed to the event loop.
    pub queued_bytes: usize,
    /// Writes in consensus, not yet answered.
    pub writes: usize,
}

/// A request waiting for the store to move.
#[derive(Debug, Clone, Copy)]
struct Pending {
    conn: ConnId,
    tag: Option<i32>,
}

/// Everything one node holds and decides; see the module doc.
pub struct Replica {
    store: Store,
    /// Consensus, while this node is a CAL.
    paxos: Option<Paxos>,
    /// Consensus state of a CAL that left consensus (see `Paxos::retire`),
    /// taken up again if it rejoins.
    retired: Option<Paxos>,
    members: membership::Membership,
    self_id: Bytes,
    secrets: Secrets,
    writable: bool,
    /// Leaving gracefully (SIGTERM, `Replica::leave`): client writes are
    /// refused with `READONLY`, except its followers' own requests.
    leaving: bool,
    sessions: BTreeMap<ConnId, Session>,
    /// Client writes proposed and not yet applied, one per change of
    /// the batch value (`None`: the connection is gone).
    writes: BTreeMap<ProposalId, Vec<Option<Pending>>>,
    /// Client writes not yet proposed.
    batch: batch::WriteBatch,
    /// How many of them each connection has.
    writing: BTreeMap<ConnId, usize>,
    /// Bytes of the answers in `out`, per connection (encoded), and in all.
    queued: BTreeMap<ConnId, usize>,
    queued_total: usize,
    /// Copies for followers, with their place in `out`.
    copies: Vec<(usize, CopyJob)>,
    /// Glob waits registered with the store.
    waits: BTreeMap<WaitId, Pending>,
    /// Reads parked until the store reaches their rev.
    parked: BTreeMap<WaitId, (ConnId, Request)>,
    next_wait_id: WaitId,
    out: Vec<(ConnId, Response)>,
    /// Answers for [`Output::early_responses`], and whether answers made
    /// now go there (only while a write decided on disk is answered).
    early_out: Vec<(ConnId, Response)>,
    answering_early: bool,
    stats: Stats,
    walks: listing::Walks,
    /// Connections following this node (slaves), with their FOLLOW tag.
    followers: BTreeMap<ConnId, Option<i32>>,
    /// This node's own follow stream, when it is a slave.
    follow_state: follow::FollowState,
    /// When timers are next due, as of the last output (computing it
    /// scans the window: once per loop iteration).
    deadline_ms: Option<u64>,
    /// The store cannot be trusted (it diverged, or consensus skipped a
    /// seqn): copy it whole when attaching again, and serve nothing until.
    force_copy: bool,
    /// With a data directory: records are made for the event loop to
    /// write (see `durable.rs`).
    durable: bool,
    /// Records made since the last output.
    persist: Vec<crate::storage::Record>,
    /// The data directory's last write failed (why): consensus is frozen
    /// and writes are refused until a write succeeds again
    /// ([`Replica::set_disk_error`]).
    disk_error: Option<String>,
    /// Changes of the seqn being replayed from the follow stream.
    replaying: Vec<crate::store::Mutation>,
    /// A checkpoint to write before the next output's records.
    checkpoint: Option<SnapshotJob>,
    /// The rev and seqn the store was last replaced whole at (seeded,
    /// copied, read back): the oldest point a snapshot can be as of.
    base: (crate::store::Rev, u64),
    /// How many changes the last value that had any held.
    last_batch: usize,
    /// What the simulator's oracle watches: votes cast, values learned.
    #[cfg(test)]
    trace: Trace,
}

/// What a replica did that the simulator's oracle checks (tests only).
#[cfg(test)]
#[derive(Debug, Default)]
pub(crate) struct Trace {
    /// Votes cast by this node's acceptor, with the id it voted as.
    pub votes: Vec<(NodeId, crate::consensus::VoteRecord)>,
    /// Values learned through consensus, in seqn order.
    pub learned: Vec<(u64, Bytes)>,
    /// The first seqn of a consensus state made afresh at a promotion, and
    /// how many of `votes` were cast before it.
    pub fresh_from: Option<(u64, usize)>,
}

/// What [`Replica::new`] needs.
#[derive(Debug, Clone)]
pub struct ReplicaConfig {
    /// This node's id.
    pub self_id: String,
    /// The secrets in force.
    pub secrets: Secrets,
    /// Revisions of history kept.
    pub history_revs: u64,
    /// Consensus timing.
    pub cluster: ClusterConfig,
    /// Whether the node has a data directory (`-d`): outputs then carry
    /// what must be durable.
    pub durable: bool,
}

impl Replica {
    /// A replica over an empty store.
    pub fn new(config: ReplicaConfig) -> Replica {
        Replica {
            last_batch: 0,
            store: Store::new(config.history_revs),
            paxos: None,
            retired: None,
            members: membership::Membership::new(config.self_id.clone(), config.cluster),
            self_id: Bytes::from(config.self_id),
            secrets: config.secrets,
            writable: true,
            leaving: false,
            sessions: BTreeMap::new(),
            writes: BTreeMap::new(),
            batch: batch::WriteBatch::default(),
            writing: BTreeMap::new(),
            queued: BTreeMap::new(),
            queued_total: 0,
            copies: Vec::new(),
            waits: BTreeMap::new(),
            parked: BTreeMap::new(),
            next_wait_id: 1,
            out: Vec::new(),
            early_out: Vec::new(),
            answering_early: false,
            stats: Stats::default(),
            walks: listing::Walks::default(),
            followers: BTreeMap::new(),
            follow_state: follow::FollowState::default(),
            deadline_ms: None,
            force_copy: false,
            durable: config.durable,
            persist: Vec::new(),
            disk_error: None,
            replaying: Vec::new(),
            checkpoint: None,
            base: (0, 0),
            #[cfg(test)]
            trace: Trace::default(),
        }
    }

    /// Seeds a new cluster with this node as its only CAL
    /// (docs/reference.md#seeding-a-new-cluster).
    pub fn seed(&mut self, cluster: &str, node: &NodeInfo) {
        self.start_seed(crate::cluster::seed_mutations(cluster, node));
    }

    /// Like [`Replica::seed`], for a node that won `/ctl/boot/<cluster>`
    /// in a name service: the store also records the seed's id there, so
    /// every node of the cluster can tell later whether the name service
    /// still gives the name to this cluster
    /// (docs/cluster.md#stale-name-service-records).
    pub fn seed_booted(&mut self, cluster: &str, node: &NodeInfo) {
        let mut muts = crate::cluster::seed_mutations(cluster, node);
        muts.push(crate::cluster::seed_record(cluster, node));
        self.start_seed(muts);
    }

    /// Votes cast and values learned since the last call (tests only).
    #[cfg(test)]
    pub(crate) fn take_trace(&mut self) -> Trace {
        self.trace_votes();
        std::mem::take(&mut self.trace)
    }

    /// The CAL sets this node uses for the seqns of its window, while a
    /// CAL (tests only).
    #[cfg(test)]
    pub(crate) fn window_sets(&self) -> Vec<(u64, crate::consensus::CalSet)> {
        self.paxos
            .as_ref()
            .map(|p| p.window_sets())
            .unwrap_or_default()
    }

    /// Whether a datagram from `addr` saying it comes from `id` is taken as
    /// `id`'s (tests only).
    #[cfg(test)]
    pub(crate) fn accepts_from(&self, id: &str, addr: SocketAddr) -> bool {
        self.members.sender_is(id, addr)
    }

    /// Writes a file into the store behind consensus's back, as a bug
    /// would (tests of divergence detection only).
    #[cfg(test)]
    pub(crate) fn corrupt_for_test(&mut self, path: &str, body: &str) {
        let m = crate::store::Mutation::Set {
            path: path.into(),
            rev: -1,
            body: Bytes::from(body.to_string()),
        };
        // At the head's own rev: the digest changes, the rev does not.
        let head = self.store.head().clone();
        self.store.corrupt_head(head, &m);
    }

    /// Moves the votes consensus recorded into the trace (before consensus
    /// is dropped, or when the trace is read).
    #[cfg(test)]
    fn trace_votes(&mut self) {
        if let Some(p) = self.paxos.as_mut() {
            let id = self.members.id.clone();
            self.trace
                .votes
                .extend(p.take_votes().into_iter().map(|v| (id.clone(), v)));
        }
    }

    /// Whether attaching must copy the whole store (it cannot be
    /// trusted: it diverged); a resume point is then worthless.
    pub fn must_copy(&self) -> bool {
        self.force_copy
    }

    /// How many changes the last applied value that had any held.
    pub fn last_batch(&self) -> usize {
        self.last_batch
    }

    /// The store, for reading (web pages, attach candidates).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The counters.
    pub fn stats(&self) -> Stats {
        Stats {
            clients: self.sessions.len() as u64,
            proposals: self.members.proposals,
            malformed_values: self.members.malformed,
            unroutable_messages: self.members.unroutable,
            learned_gaps: self.members.gaps,
            divergences: self.members.divergences,
            kicks_proposed: self.members.kicks_proposed,
            ..self.stats.clone()
        }
    }

    /// Handles one input at time `now_ms`. Only a follow-stream response
    /// can be refused: the stream is then unusable (drop it, feed
    /// [`Input::FollowLost`] and attach again).
    pub fn step(&mut self, now_ms: u64, input: Input) -> Result<(), FollowError> {
        self.set_now(now_ms);
        match input {
            Input::Connect(conn) => {
                self.sessions.insert(conn, Session::new(&self.secrets));
            }
            Input::Disconnect(conn) => self.close_session(conn),
            Input::Request(conn, req) => self.request(conn, req),
            Input::Peer(from, bytes) => self.peer(from, &bytes),
            Input::Follow(resp) => return self.replay_follow(resp),
            Input::FollowLost => self.follow_stream_lost(),
        }
        Ok(())
    }

    /// What to do after the inputs of one loop iteration, at time
    /// `now_ms`: applies what consensus decided, runs timers that are due,
    /// and moves everything to be done into `out` (appended; the caller
    /// clears it once handled).
    pub fn ready(&mut self, now_ms: u64, out: &mut Output) {
        self.set_now(now_ms);
        // Votes before the store applies what was learned: an acceptor's
        // votes lead in the output, whatever applying produces follows.
        // With the disk failing, consensus stands still: nothing it
        // would vote, learn or propose could be made durable (its clock
        // counts the gap as time it did not run, not as peers' silence).
        if self.disk_error.is_none() {
            self.queue_peer_messages();
            self.pump();
            // The deadline of the last output: inputs handled since may
            // have moved it earlier, which makes that output's deadline
            // due now.
            if self.deadline_ms.is_some_and(|t| t <= now_ms) {
                self.tick();
            }
        }
        self.take_peer_messages(&mut out.messages);
        self.take_early_messages(&mut out.early_messages);
        self.take_lazy_messages(&mut out.lazy_messages);
        out.responses.append(&mut self.out);
        out.early_responses.append(&mut self.early_out);
        out.copies.append(&mut self.copies);
        self.queued.clear();
        self.queued_total = 0;
        out.follow_requests
            .append(&mut self.members.follow_requests);
        if let Some(change) = self.members.role_change.take() {
            out.role_change = Some(change);
        }
        out.cals_left.append(&mut self.members.cals_left);
        out.listed_cal = self.is_cal() && self.listed_as_cal();
        self.deadline_ms = self.next_deadline_ms();
        // Standing still, consensus has nothing due: the event loop's
        // retry of the disk drives it (a past deadline would spin).
        out.deadline_ms = self.deadline_ms.filter(|_| self.disk_error.is_none());
        self.take_durable(out);
    }

    /// What connection `conn` has caused and not yet been given: bytes of
    /// answers queued since the last output, and writes in consensus. The
    /// event loop stops reading a connection with too much of either.
    pub fn backlog(&self, conn: ConnId) -> Backlog {
        Backlog {
            queued_bytes: self.queued.get(&conn).copied().unwrap_or(0),
            writes: self.writing.get(&conn).copied().unwrap_or(0),
        }
    }

    /// Bytes of answers queued for every connection since the last output.
    pub fn queued_total(&self) -> usize {
        self.queued_total
    }

    /// One write of `conn` is answered (or forgotten).
    pub(super) fn write_done(&mut self, conn: ConnId) {
        if let Some(n) = self.writing.get_mut(&conn) {
            *n -= 1;
            if *n == 0 {
                self.writing.remove(&conn);
            }
        }
    }

    /// A client request: answered, parked or proposed. A lone CAL decides
    /// a write at once, before any request after it is handled (pipelined
    /// reads see it); in a cluster, decided values wait for the next
    /// [`Replica::ready`], so consensus sends one batch per peer for all
    /// the requests of one iteration.
    fn request(&mut self, conn: ConnId, req: Request) {
        self.stats.requests += 1;
        self.dispatch(conn, req);
        if self.is_lone_cal() {
            self.pump();
        }
    }

    /// A connection went away: forget its waits, its pending writes'
    /// answers (the writes still happen) and its queued responses. The
    /// event loop reuses connection ids, so nothing addressed to `conn`
    /// may outlive it: a new connection would get the old one's answers.
    fn close_session(&mut self, conn: ConnId) {
        self.followers.remove(&conn);
        if let Some(session) = self.sessions.remove(&conn) {
            for id in session.waits {
                self.store.cancel(id);
                self.waits.remove(&id);
                self.parked.remove(&id);
            }
        }
        for w in self.writes.values_mut() {
            batch::forget(w, conn);
        }
        self.batch.forget(conn);
        self.writing.remove(&conn);
        if let Some(n) = self.queued.remove(&conn) {
            self.queued_total -= n;
        }
        self.copies.retain(|(_, j)| j.conn != conn);
        self.out.retain(|(c, _)| *c != conn);
        self.early_out.retain(|(c, _)| *c != conn);
    }

    /// A peer datagram's message: decoded and handed to consensus, or
    /// counted as ignored.
    fn peer(&mut self, from: SocketAddr, bytes: &[u8]) {
        use prost::Message;
        let taken = match PeerMsg::decode(bytes) {
            Ok(msg) => self.peer_step(from, msg),
            Err(_) => false,
        };
        if !taken {
            log::debug!("peer message from {from} dropped");
            self.stats.peer_messages_ignored += 1;
        }
    }
}

#[cfg(test)]
mod tests;
