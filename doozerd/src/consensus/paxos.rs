//! The instance manager: multi-Paxos over a window of seqns (docs/reference.md#consensus).
//!
//! [`Paxos`] is a pure state machine in the style of etcd raft: feed it
//! peer messages ([`Paxos::step`]), time ([`Paxos::tick`]) and client
//! values ([`Paxos::propose`]); drain what it wants done with
//! [`Paxos::ready`]. It never reads a clock, a socket or a random source.
//!
//! Protocol summary:
//! - Seqn `s` is owned by `cals[s mod len]`. The owner nominates a client
//!   value in its reserved ballot `(0, owner)` without phase 1: Accept →
//!   votes (sent to every CAL, so each learns on its own) → learned.
//! - An owner with nothing to propose skips its seqns below any seqn it
//!   sees in use (Mencius): a skipped seqn can only ever be NOP, so peers
//!   learn NOP from the skip alone. Skips ride on batches sent anyway.
//! - Another CAL's undecided seqn that holds up later ones is filled with
//!   NOP (phase 1 with a higher round) after `fill_ms`, staggered by fill
//!   rank; a silent owner's seqns are revoked in bulk, one Prepare for all.
//! - A stalled round is retried with a higher round after a randomized,
//!   exponentially growing timeout.
//! - Messages about learned seqns are answered with the value; a node that
//!   sees peers ahead of it fetches the values it lacks.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;
use doozer_proto::peer::{Accept, Learned, PeerMsg, Prepare, Promise, Reject, Vote};
use prost::Message;

use super::ballot::{Ballot, MAX_ROUND};
use super::calset::{CalSet, NodeId, Seqn};
use super::instance::{Coordinator, Instance, Phase};
use super::rng::SplitMix64;
use crate::storage::Record;

/// Identifies a value given to [`Paxos::propose`], so the caller can match
/// it with the seqn it was learned at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProposalId(pub u64);

/// Tunables of the consensus core.
#[derive(Debug, Clone)]
pub struct Config {
    /// This node's id.
    pub id: NodeId,
    /// Seqns decided ahead of the last applied one (50, docs/reference.md#instances-and-the-window).
    pub alpha: u64,
    /// How long another CAL's seqn may hold up later ones before this node
    /// fills it with NOP (`-fill`, default 100 ms).
    pub fill_ms: u64,
    /// The first round timeout; doubled per retry.
    pub round_ms: u64,
    /// The longest round timeout.
    pub round_max_ms: u64,
    /// How long a skip waits for a batch to ride on before it is sent alone.
    pub skip_flush_ms: u64,
    /// The value filled in: an encoded NOP mutation.
    pub nop: Bytes,
    /// Learned values kept after delivery, to answer stragglers.
    pub history_max: usize,
    /// The largest encoded batch [`Ready::messages`] holds (fits a datagram).
    pub batch_bytes_max: usize,
    /// Longest silence towards a CAL: an idle node still tells its peers
    /// how far it has learned, so a straggler finds out it is behind (and
    /// peers see it alive).
    pub heartbeat_ms: u64,
    /// A CAL not heard from for this long is reported silent to the
    /// others (`-timeout`): a majority of such reports kicks it.
    pub silent_ms: u64,
    /// With a data directory: record what the acceptor promises and votes
    /// and how far this node's own seqns were used
    /// ([`Paxos::take_records`]), for the caller to make durable before
    /// the messages that follow from them leave.
    pub durable: bool,
    /// With `durable`: an acceptor beyond the first majority of a round-0
    /// Accept votes lazily while the ones before it vote (see
    /// [`Paxos::take_lazy_messages`]).
    pub lazy_votes: bool,
}

impl Config {
    /// The defaults (docs/reference.md#consensus) for node `id`, filling with `nop`.
    pub fn new(id: impl Into<NodeId>, nop: Bytes) -> Config {
        Config {
            id: id.into(),
            alpha: 50,
            fill_ms: 100,
            round_ms: 50,
            round_max_ms: 2_000,
            skip_flush_ms: 5,
            nop,
            history_max: 4_096,
            batch_bytes_max: 60_000,
            heartbeat_ms: 500,
            silent_ms: 60_000,
            durable: false,
            lazy_votes: true,
        }
    }
}

/// What the caller must do after feeding the core: send `messages`, apply
/// `learned` (in order; each entry is the next seqn).
#[derive(Debug, Default)]
pub struct Ready {
    /// Batches to send, at most one per peer unless one would not fit a
    /// datagram.
    pub messages: Vec<(NodeId, PeerMsg)>,
    /// Decided values in seqn order, with the id of this node's proposal
    /// when the value is one.
    pub learned: Vec<(Seqn, Bytes, Option<ProposalId>)>,
    /// The seqns of `learned` holding this node's proposals whose writes
    /// may be answered before the records of this output are synced
    /// (with `Config::durable`; never without): this acceptor's vote at
    /// the seqn is for the decided value and synced, and no vote of it at
    /// that seqn or below is unsynced. Every decision up to there then
    /// rests on votes already on disk (the other CALs send a vote only
    /// once it is synced), so it survives any crash of this node, and
    /// the value itself is in this node's log. In seqn order.
    pub on_disk: Vec<Seqn>,
}

/// Counts of peer message parts, by kind.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MsgCounts {
    /// Batches (datagrams).
    pub batches: u64,
    /// Prepare seqns (phase 1a).
    pub prepares: u64,
    /// Promises (phase 1b).
    pub promises: u64,
    /// Accepts (phase 2a).
    pub accepts: u64,
    /// Votes (phase 2b).
    pub votes: u64,
    /// Rejects.
    pub rejects: u64,
    /// Learned values.
    pub learned: u64,
    /// Skipped seqns.
    pub skips: u64,
    /// Fetch requests.
    pub fetches: u64,
}

impl MsgCounts {
    fn add(&mut self, m: &PeerMsg) {
        self.batches += 1;
        self.prepares += m.prepares.iter().map(|p| p.seqns.len() as u64).sum::<u64>();
        self.promises += m.promises.len() as u64;
        self.accepts += m.accepts.len() as u64;
        self.votes += m.votes.len() as u64;
        self.rejects += m.rejects.len() as u64;
        self.learned += m.learned.len() as u64;
        self.skips += m.skips.len() as u64;
        self.fetches += u64::from(m.fetch_from.is_some());
    }
}

/// Counters for the stats page.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stats {
    /// Seqns of other CALs this node started filling with NOP.
    pub fills: u64,
    /// Bulk revokes (one Prepare covering many fills).
    pub revokes: u64,
    /// Rounds retried after a timeout.
    pub round_retries: u64,
    /// Own seqns skipped (decided NOP without a round).
    pub skips: u64,
    /// Votes cast lazily (with a data directory, docs/storage.md#lazy-votes).
    pub lazy_votes: u64,
    /// Message parts ignored as invalid (bad ballot, unknown sender, ...).
    pub invalid: u64,
    /// Message parts dropped because they were too far ahead.
    pub too_far_ahead: u64,
    /// Sent, by kind.
    pub sent: MsgCounts,
    /// Received, by kind.
    pub received: MsgCounts,
}

/// A part of a peer batch, as handled one at a time.
#[derive(Debug, Clone)]
enum Item {
    Prepare { round: u64, seqn: Seqn },
    Promise(Promise),
    Accept(Accept),
    Vote(Vote),
    Reject(Reject),
    Learned(Learned),
    Skip(Seqn),
    Fetch(Seqn),
}

impl Item {
    /// The seqn the item is about, if it needs that seqn's CAL set: every
    /// item but a fetch request is taken only from a CAL of its seqn.
    fn seqn_needing_cals(&self) -> Option<Seqn> {
        match self {
            Item::Prepare { seqn, .. } | Item::Skip(seqn) => Some(*seqn),
            Item::Promise(p) => Some(p.seqn),
            Item::Accept(a) => Some(a.seqn),
            Item::Vote(v) => Some(v.seqn),
            Item::Reject(r) => Some(r.seqn),
            Item::Learned(l) => Some(l.seqn),
            Item::Fetch(_) => None,
        }
    }

    /// Bytes of values the item holds (what deferring it costs).
    fn value_bytes(&self) -> usize {
        match self {
            Item::Promise(p) => p.vote_value.as_ref().map_or(0, Bytes::len),
            Item::Accept(a) => a.value.len(),
            Item::Learned(l) => l.value.len(),
            _ => 0,
        }
    }
}

/// Which batches [`Paxos::finish_batches`] stamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Batches {
    /// [`Paxos::take_messages`].
    Usual,
    /// [`Paxos::take_early_messages`].
    Early,
    /// [`Paxos::take_lazy_messages`].
    Lazy,
}

/// Multi-Paxos over a window of instances; see the module doc.
#[derive(Debug)]
pub struct Paxos {
    cfg: Config,
    /// `cfg.id`, shared: own messages are handled with it as their sender
    /// without copying the id each time.
    me: std::sync::Arc<str>,
    rng: SplitMix64,
    now_ms: u64,
    /// The next seqn to hand to the caller; all below are delivered.
    next_deliver: Seqn,
    /// CAL sets of the known window, `next_deliver..window_end`: entry
    /// `i` is seqn `next_deliver + i` (the window is contiguous, so a
    /// lookup is an index, not a search: it is made many times per seqn).
    /// Each set comes with this node's index in it, found once.
    cal_sets: VecDeque<(CalSet, Option<u32>)>,
    /// The set of the newest known seqn: still known when every seqn of
    /// the window was delivered and `cal_sets` is empty.
    newest_cals: CalSet,
    /// Instances from `next_deliver` on (the window and learned values
    /// beyond it). Boxed: an instance is a few hundred bytes, and the
    /// tree shifts its values on every insert and removal (one of each per
    /// seqn), which cost more than the allocation.
    instances: BTreeMap<Seqn, Box<Instance>>,
    /// Delivered values, `history_base..next_deliver`.
    history: VecDeque<Bytes>,
    history_base: Seqn,
    /// Bytes of values in `history`.
    history_bytes: usize,
    /// Client values not yet nominated.
    queue: VecDeque<(ProposalId, Bytes)>,
    next_proposal: u64,
    /// Own seqns below this are nominated or skipped.
    next_own: Seqn,
    /// One past the highest seqn this node nominated a value at: while
    /// it is above `next_deliver`, a value of its own is in flight.
    nominated_end: Seqn,
    /// When this node last nominated a value of its own.
    nominated_ms: u64,
    /// One past the highest seqn seen in use.
    active_end: Seqn,
    /// Seqns below this had their fill clock started by `mark_needed`.
    marked_end: Seqn,
    /// The other CALs of every seqn in the window.
    peers: Vec<NodeId>,
    /// When each peer was last heard from.
    last_heard_ms: BTreeMap<NodeId, u64>,
    /// When a batch last went to each peer.
    last_sent_ms: BTreeMap<NodeId, u64>,
    /// What each CAL of the window last reported: how far it learned,
    /// what it still keeps, whom it finds silent. Forgotten when it leaves
    /// the window's sets, and ignored once stale (see [`Paxos::fresh`]).
    reports: BTreeMap<NodeId, Report>,
    /// Since when `next_deliver` has not moved.
    stuck_since_ms: u64,
    /// No new fetch before this time (one outstanding).
    fetch_quiet_until_ms: u64,
    /// Batches being built, one per peer.
    outbox: BTreeMap<NodeId, PeerMsg>,
    /// With `Config::durable`: round-0 Accepts and skips that may leave
    /// before the records of the output they are taken with are synced (see
    /// [`Paxos::take_early_messages`]), one batch per peer.
    early: BTreeMap<NodeId, PeerMsg>,
    /// With `Config::durable`: lazy votes (see
    /// [`Paxos::take_lazy_messages`]), one batch per peer.
    lazy: BTreeMap<NodeId, PeerMsg>,
    /// With `Config::durable`: when each CAL's last vote arrived (an
    /// acceptor votes lazily only while the ones before it vote).
    last_vote_ms: BTreeMap<NodeId, u64>,
    /// Whether a record not yet taken needs a prompt sync (anything but
    /// a lazy vote's): see [`Paxos::take_records`].
    eager_records: bool,
    /// Skips waiting for a batch to ride on: since when, and which.
    skip_backlog: BTreeMap<NodeId, (u64, Vec<Seqn>)>,
    /// Items this node sent itself, handled before returning.
    local: VecDeque<Item>,
    /// Items for seqns beyond the known window, handled when it grows.
    deferred: VecDeque<(NodeId, Item)>,
    /// Bytes of values held in `deferred`.
    deferred_bytes: usize,
    learned_out: Vec<(Seqn, Bytes, Option<ProposalId>)>,
    /// [`Ready::on_disk`], as delivered.
    on_disk_out: Vec<Seqn>,
    stats: Stats,
    /// What must be durable before the messages produced with it leave
    /// (with `Config::durable`).
    records: Vec<Record>,
    /// Own seqns below this may have been nominated or skipped: a Floor
    /// record says so on disk before any of them is used.
    floor: Seqn,
    /// The floor as of the last [`Paxos::take_records`], and as of the
    /// last [`Paxos::records_synced`]: own seqns below `synced_floor` are
    /// covered by a Floor record already on disk.
    taken_floor: Seqn,
    synced_floor: Seqn,
    /// How far this node had learned, as of the same two calls: early
    /// messages report only what is on disk.
    taken_upto: Seqn,
    synced_upto: Seqn,
    /// The lowest seqn this acceptor voted in whose Vote record was not
    /// yet taken, and the lowest whose record was taken but not yet
    /// synced (with `Config::durable`): [`Ready::on_disk`] holds only
    /// below both.
    untaken_vote_min: Option<Seqn>,
    unsynced_vote_min: Option<Seqn>,
    /// Own seqns below this were maybe used before a restart: they are
    /// settled through phase 1, never with round 0 or a skip.
    revoke_below: Seqn,
    /// Left consensus ([`Paxos::retire`]): an acceptor and learner that
    /// keeps its promises and votes and answers what it knows, and
    /// proposes, coordinates and delivers nothing.
    retired: bool,
    /// Every vote this acceptor cast, for the simulator's oracle of what
    /// was chosen.
    #[cfg(test)]
    votes: Vec<VoteRecord>,
}

/// A vote cast by this node's acceptor (simulation tests only).
#[cfg(test)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoteRecord {
    /// The instance.
    pub seqn: Seqn,
    /// The ballot's round.
    pub round: u64,
    /// The ballot's coordinator, by id.
    pub coordinator: NodeId,
    /// The value voted for.
    pub value: Bytes,
}

/// What a peer last said about itself.
#[derive(Debug, Clone, Default)]
struct Report {
    /// Every seqn below this is learned there.
    upto: Seqn,
    /// The oldest seqn whose value it still holds.
    oldest_kept: Seqn,
    /// The CALs it has not heard from for its `-timeout`.
    silent: Vec<NodeId>,
}

/// Items kept for seqns beyond the window (per alpha of window).
const DEFERRED_PER_ALPHA: usize = 64;
/// Most bytes of values those items hold: learned values a far-behind
/// node fetched (at most [`FETCH_BYTES_MAX`] per answer) fit many times.
const DEFERRED_BYTES_MAX: usize = 16 << 20;
/// Most bytes of delivered values kept for stragglers: with large values,
/// fewer than `history_max` of them (memory stays bounded).
const HISTORY_BYTES_MAX: usize = 32 << 20;
/// Delivered values kept below the least any peer reported learning: a
/// peer restarted from its data directory may resume a little before what
/// it reported, and a slave made CAL joins from where it followed.
pub(crate) const HISTORY_SLACK: u64 = 256;
/// A CAL that nominated nothing for this long skips its seqns ahead of
/// the others' values ([`Paxos::idle`]): longer than the gaps between a
/// busy CAL's batches.
const IDLE_MS: u64 = 20;
/// Learned values sent per fetch.
const FETCH_SEQNS_MAX: u64 = 256;
/// An acceptor votes lazily only while each acceptor ranked before it
/// voted within this long ([`Paxos::take_lazy_messages`]): when one of
/// them stops, the others vote as usual again after this long.
pub(super) const LAZY_WHILE_VOTED_MS: u64 = 20;
/// Bytes of values sent per fetch.
const FETCH_BYTES_MAX: usize = 256 * 1024;

impl Paxos {
    /// A node whose next seqn to learn is `first`; `cals` decides the first
    /// `alpha` seqns (`first..first + alpha`). `now_ms` is the current time
    /// and `seed` seeds the backoff jitter.
    pub fn new(cfg: Config, first: Seqn, cals: CalSet, now_ms: u64, seed: u64) -> Paxos {
        let alpha = cfg.alpha.max(1);
        let mut p = Paxos {
            me: cfg.id.as_str().into(),
            cfg: Config { alpha, ..cfg },
            rng: SplitMix64::new(seed),
            now_ms,
            next_deliver: first,
            cal_sets: VecDeque::new(),
            newest_cals: cals.clone(),
            instances: BTreeMap::new(),
            history: VecDeque::new(),
            history_base: first,
            history_bytes: 0,
            queue: VecDeque::new(),
            next_proposal: 1,
            next_own: first,
            nominated_end: first,
            nominated_ms: 0,
            active_end: first,
            marked_end: first,
            peers: Vec::new(),
            last_heard_ms: BTreeMap::new(),
            last_sent_ms: BTreeMap::new(),
            reports: BTreeMap::new(),
            stuck_since_ms: now_ms,
            fetch_quiet_until_ms: 0,
            outbox: BTreeMap::new(),
            early: BTreeMap::new(),
            lazy: BTreeMap::new(),
            last_vote_ms: BTreeMap::new(),
            eager_records: false,
            skip_backlog: BTreeMap::new(),
            local: VecDeque::new(),
            deferred: VecDeque::new(),
            deferred_bytes: 0,
            learned_out: Vec::new(),
            on_disk_out: Vec::new(),
            stats: Stats::default(),
            records: Vec::new(),
            floor: first,
            taken_floor: first,
            synced_floor: first,
            taken_upto: first,
            synced_upto: first,
            untaken_vote_min: None,
            unsynced_vote_min: None,
            revoke_below: 0,
            retired: false,
            #[cfg(test)]
            votes: Vec::new(),
        };
        for _ in first..first + alpha {
            p.push_window(cals.clone());
        }
        p.note_members(&cals);
        p.update_peers();
        p
    }

    /// A node joining the cluster at seqn `first` (a promoted slave whose
    /// store holds every seqn before it): `sets[i]` decides seqn
    /// `first + i` for the first `alpha` seqns; the last one given repeats
    /// if fewer are given, and `head` decides `first` if none are.
    pub fn joining(
        cfg: Config,
        first: Seqn,
        head: CalSet,
        sets: &[CalSet],
        now_ms: u64,
        seed: u64,
    ) -> Paxos {
        let mut p = Paxos::new(cfg, first, head.clone(), now_ms, seed);
        p.cal_sets.clear(); // `new` gave every seqn `head`; `sets` says better
        let mut last = head;
        for s in first..first + p.cfg.alpha {
            if let Some(set) = sets.get((s - first) as usize) {
                last = set.clone();
            }
            p.note_members(&last);
            p.push_window(last.clone());
        }
        p.newest_cals = last;
        p.update_peers();
        p
    }

    /// Leaves consensus without forgetting: the node keeps its promises and
    /// votes (it may still vote where it is a CAL, and its id may come
    /// back with them, see [`Paxos::rejoin`]) and answers stragglers with
    /// what it learned, but it proposes and coordinates nothing any more
    /// and delivers nothing (the caller follows another node meanwhile).
    /// Values it nominated are forgotten as its own: they may still be
    /// chosen, but they are never proposed again.
    pub fn retire(&mut self) {
        self.retired = true;
        // Values delivered that the caller has not taken (it left while
        // applying earlier ones): its store gets them from the node it
        // follows now, and a rejoin starts after them.
        self.learned_out.clear();
        self.on_disk_out.clear();
        self.queue.clear();
        self.skip_backlog.clear();
        for inst in self.instances.values_mut() {
            inst.coordinator = None;
            inst.own = None;
        }
    }

    /// Whether [`Paxos::retire`] was called (and not undone).
    pub fn is_retired(&self) -> bool {
        self.retired
    }

    /// Drains what must be durable (with `Config::durable`): promises and
    /// votes of this node's acceptor, and how far its own seqns were used.
    /// The caller writes and syncs them before it sends any message taken
    /// with or after them (docs/storage.md): a restarted acceptor must
    /// never contradict what it said, and an owner never nominates twice
    /// at round 0.
    ///
    /// Returns whether the records taken may wait for a later sync: they
    /// are only lazy votes (or none), whose messages wait with them
    /// ([`Paxos::take_lazy_messages`]).
    pub fn take_records(&mut self, out: &mut Vec<Record>) -> bool {
        out.append(&mut self.records);
        let may_wait = !std::mem::take(&mut self.eager_records);
        self.taken_floor = self.floor;
        self.taken_upto = self.next_deliver;
        self.unsynced_vote_min = min_of(self.unsynced_vote_min, self.untaken_vote_min.take());
        may_wait
    }

    /// Tells the core that every record taken so far is on disk (the
    /// caller wrote and synced them). Round-0 Accepts of own seqns below
    /// the floor synced then may leave before later records are synced.
    pub fn records_synced(&mut self) {
        self.synced_floor = self.synced_floor.max(self.taken_floor);
        self.synced_upto = self.taken_upto;
        self.unsynced_vote_min = None;
    }

    /// The acceptor state of seqns above `after`, and the floor of own
    /// seqns, as records: what a fresh log must start with when the store
    /// was replaced by a copy (the old log is deleted).
    pub fn acceptor_records(&self, after: Seqn) -> Vec<Record> {
        let mut out = Vec::new();
        for (s, inst) in self.instances.range(after + 1..) {
            let a = &inst.acceptor;
            if let Some((b, v)) = &a.vote {
                out.push(Record::Vote {
                    seqn: *s,
                    round: b.round,
                    cal: b.cal,
                    value: v.clone(),
                });
            }
            if let Some(p) = a.promised {
                if a.vote.as_ref().is_none_or(|(b, _)| p > *b) {
                    out.push(Record::Promise {
                        seqn: *s,
                        round: p.round,
                        cal: p.cal,
                    });
                }
            }
        }
        out.push(Record::Floor {
            seqn: self.floor.max(self.revoke_below),
        });
        out
    }

    /// Takes up, after a restart, the values of the seqns just before the
    /// first one this node will deliver (oldest first, contiguous, ending
    /// at `next_seqn() - 1`), so it can answer peers that lack them as it
    /// could before it stopped.
    pub fn restore_history(&mut self, values: impl IntoIterator<Item = (Seqn, Bytes)>) {
        let mut expect = None;
        for (s, v) in values {
            if expect.is_some_and(|e| e != s) || s >= self.next_deliver {
                // Not contiguous: keep only what follows the gap.
                self.history.clear();
                self.history_bytes = 0;
            }
            if s >= self.next_deliver {
                break;
            }
            if self.history.is_empty() {
                self.history_base = s;
            }
            self.history_bytes += v.len();
            self.history.push_back(v);
            expect = Some(s + 1);
        }
        if expect != Some(self.next_deliver) {
            self.history.clear();
            self.history_bytes = 0;
            self.history_base = self.next_deliver;
        }
        self.trim_history();
    }

    /// Takes up the acceptor state read back from disk after a restart:
    /// the highest promise and vote of every seqn not yet delivered, and
    /// the floor of own seqns. Own seqns below that floor may have been
    /// nominated or skipped before: they are settled through phase 1
    /// (which finds any value that may have been chosen), never reused.
    pub fn restore<'a>(&mut self, records: impl IntoIterator<Item = &'a Record>) {
        for r in records {
            match r {
                Record::Promise { seqn, round, cal } if *seqn >= self.next_deliver => {
                    let b = Ballot {
                        round: *round,
                        cal: *cal,
                    };
                    let inst = self.instances.entry(*seqn).or_default();
                    inst.acceptor.promised = inst.acceptor.promised.max(Some(b));
                    inst.max_round = inst.max_round.max(*round);
                    self.active_end = self.active_end.max(seqn + 1);
                }
                Record::Vote {
                    seqn,
                    round,
                    cal,
                    value,
                } if *seqn >= self.next_deliver => {
                    let b = Ballot {
                        round: *round,
                        cal: *cal,
                    };
                    let inst = self.instances.entry(*seqn).or_default();
                    let a = &mut inst.acceptor;
                    if a.vote.as_ref().is_none_or(|(vb, _)| b >= *vb) {
                        a.vote = Some((b, value.clone()));
                    }
                    a.promised = a.promised.max(Some(b));
                    inst.max_round = inst.max_round.max(*round);
                    self.active_end = self.active_end.max(seqn + 1);
                }
                Record::Floor { seqn } => {
                    self.revoke_below = self.revoke_below.max(*seqn);
                    self.floor = self.floor.max(*seqn);
                    self.taken_floor = self.floor;
                    self.synced_floor = self.floor;
                }
                _ => {}
            }
        }
        self.after();
    }

    /// Takes part again from seqn `first` (the caller's store holds every
    /// seqn before it, from a copy or a follow stream), with `sets`
    /// deciding the first `alpha` seqns as in [`Paxos::joining`]. The
    /// acceptor state of seqns from `first` on is kept: an id never votes
    /// without the promises and votes it made before. What this node
    /// learned of those seqns meanwhile is delivered from `first` on.
    pub fn rejoin(&mut self, first: Seqn, head: CalSet, sets: &[CalSet], now_ms: u64) {
        self.advance_clock(now_ms);
        self.retired = false;
        self.instances = self.instances.split_off(&first);
        self.cal_sets.clear();
        let mut last = head;
        for s in first..first + self.cfg.alpha {
            if let Some(set) = sets.get((s - first) as usize) {
                last = set.clone();
            }
            self.note_members(&last);
            self.push_window(last.clone());
        }
        self.newest_cals = last;
        self.next_deliver = first;
        self.history.clear();
        self.history_base = first;
        self.history_bytes = 0;
        self.next_own = first;
        self.active_end = self.active_end.max(first);
        self.marked_end = first;
        self.stuck_since_ms = self.now_ms;
        self.fetch_quiet_until_ms = 0;
        self.local.clear();
        self.deferred.clear();
        self.deferred_bytes = 0;
        self.update_peers();
        self.after();
    }

    /// Whether this node can no longer catch up through consensus: a CAL
    /// heard from lately has learned further, and every such CAL no longer
    /// keeps the next value this node lacks (it must copy the store). A
    /// peer merely ahead, or one not heard from lately, is no evidence: a
    /// partition where nobody can decide anything gives up nobody.
    pub fn cannot_catch_up(&self) -> bool {
        let next = self.next_deliver;
        let mut ahead = self
            .reports
            .iter()
            .filter(|(p, r)| r.upto > next && self.fresh(p));
        let first = ahead.next();
        first.is_some()
            && first
                .into_iter()
                .chain(ahead)
                .all(|(_, r)| r.oldest_kept > next)
    }

    /// The CALs of the newest set that a majority of that set finds
    /// silent for `-timeout`: this node (by its own clock) and every CAL
    /// heard from lately (by its report) count. Each one comes with the
    /// CALs not found silent, in set order: the first of them kicks.
    pub fn silent_by_majority(&self) -> Vec<(NodeId, Vec<NodeId>)> {
        let cals = &self.newest_cals;
        let mut out = Vec::new();
        let suspects_of = |c: &NodeId| -> usize {
            let mine = usize::from(*c != self.cfg.id && self.silent_here(c));
            let theirs = self
                .reports
                .iter()
                .filter(|(p, r)| {
                    cals.index_of(p).is_some() && self.fresh(p) && r.silent.contains(c)
                })
                .count();
            mine + theirs
        };
        let suspected: Vec<&NodeId> = cals
            .iter()
            .filter(|c| suspects_of(c) >= cals.quorum())
            .collect();
        for c in &suspected {
            let live = cals
                .iter()
                .filter(|x| !suspected.contains(x))
                .cloned()
                .collect();
            out.push(((*c).clone(), live));
        }
        out
    }

    /// Whether this node has not heard from CAL `c` for `silent_ms`.
    fn silent_here(&self, c: &str) -> bool {
        self.last_heard_ms
            .get(c)
            .is_some_and(|h| self.now_ms >= h + self.cfg.silent_ms)
    }

    /// Whether `peer` was heard from lately (its report is current).
    fn fresh(&self, peer: &str) -> bool {
        let window = 4 * self.cfg.heartbeat_ms.max(1);
        self.last_heard_ms
            .get(peer)
            .is_some_and(|h| self.now_ms < h + window)
    }

    /// When `peer` was last heard from (or first became a peer).
    pub fn last_heard_ms(&self, peer: &str) -> Option<u64> {
        self.last_heard_ms.get(peer).copied()
    }

    /// The CAL sets of the window, by seqn (simulation tests only).
    #[cfg(test)]
    pub fn window_sets(&self) -> Vec<(Seqn, CalSet)> {
        (self.next_deliver..)
            .zip(self.cal_sets.iter().map(|(c, _)| c.clone()))
            .collect()
    }

    /// The votes cast since the last call (simulation tests only).
    #[cfg(test)]
    pub fn take_votes(&mut self) -> Vec<VoteRecord> {
        std::mem::take(&mut self.votes)
    }

    /// The counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Undecided instances this node is working on or waiting for.
    pub fn instances_in_flight(&self) -> usize {
        self.instances
            .iter()
            .filter(|(s, i)| {
                i.learned.is_none()
                    && (i.coordinator.is_some() || **s < self.active_end.min(self.window_end()))
            })
            .count()
    }

    /// Client values waiting for a seqn (not yet nominated).
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// One past the last seqn whose CAL set is known.
    pub fn window_end(&self) -> Seqn {
        self.next_deliver + self.cal_sets.len() as Seqn
    }

    /// Tells the core that the caller applied `applied`, after which the
    /// CAL set is `cals`: that set decides seqn `applied + alpha`.
    pub fn set_cals(&mut self, applied: Seqn, cals: CalSet) {
        let s = applied + self.cfg.alpha;
        if s < self.window_end() {
            return; // already known (a repeated call)
        }
        // Compared with the newest set, not the window's last entry: when
        // the whole window was delivered at once (a dead CAL's seqns filled
        // in one go) the window is empty, and every member would look new.
        let changed = self.newest_cals != cals;
        if changed {
            // A CAL that joins (or comes back after a removal) counts as
            // heard from now, not when it was last a member.
            for c in cals.iter() {
                if *c != self.cfg.id && self.newest_cals.index_of(c).is_none() {
                    self.last_heard_ms.insert(c.clone(), self.now_ms);
                }
            }
            self.newest_cals = cals.clone();
        }
        // Keep the window contiguous even if a caller skipped a call.
        for _ in self.window_end()..=s {
            self.push_window(cals.clone());
        }
        if changed {
            self.update_peers();
        }
        // The window's last set is the newest; its index of this node was
        // found when it was pushed.
        if self.cal_sets.back().is_some_and(|(_, me)| me.is_none()) {
            // Not in the set that takes over at `s`: this node owns no
            // seqn from `s` on, so the others will never show it a seqn
            // in use past its own last ones, and would fill each of them
            // with NOP after `fill_ms` (a stall of writes at every leave,
            // docs/benchmarks.md "Rolling restart"), or after it stops.
            // Skip its unused seqns below `s` now, as if `s - 1` were in
            // use (Mencius: an owner may skip any unused seqn of its own;
            // queued values are placed first).
            self.advance_own(s);
        }
        let end = self.window_end();
        // Usually nothing deferred became handleable (it waits for sets
        // further on): then the queue stays as it is, unmoved.
        let ready = |(_, item): &(NodeId, Item)| item.seqn_needing_cals().is_none_or(|t| t < end);
        if !self.deferred.iter().any(ready) {
            self.after();
            return;
        }
        let mut keep = VecDeque::new();
        let deferred = std::mem::take(&mut self.deferred);
        self.deferred_bytes = 0;
        for (from, item) in deferred {
            match item.seqn_needing_cals() {
                Some(t) if t >= end => {
                    self.deferred_bytes += item.value_bytes();
                    keep.push_back((from, item));
                }
                _ => self.handle(&from, item),
            }
        }
        // Anything handled above deferred meanwhile is counted already.
        keep.append(&mut self.deferred);
        self.deferred = keep;
        self.after();
    }

    /// Asks for `value` to be decided; returns the id it will be learned
    /// with. The value is recognised by its bytes, so it must differ from
    /// the fill value (`Config::nop`) and from this node's other values in
    /// flight. The value goes in this node's next free own seqn; if that seqn
    /// ends up NOP, it is proposed again, so it is learned exactly once.
    pub fn propose(&mut self, value: Bytes) -> ProposalId {
        let id = ProposalId(self.next_proposal);
        self.next_proposal += 1;
        self.queue.push_back((id, value));
        self.after();
        id
    }

    /// As [`Paxos::propose`], but ahead of every value queued: for a
    /// change of membership (a kick), which must not wait behind a
    /// backlog of client writes until it is decided too late to count.
    pub fn propose_first(&mut self, value: Bytes) -> ProposalId {
        let id = ProposalId(self.next_proposal);
        self.next_proposal += 1;
        self.queue.push_front((id, value));
        self.after();
        id
    }

    /// Takes back a value given to [`Paxos::propose`] that was not
    /// nominated yet; false if it is in a round already (or decided).
    pub fn withdraw(&mut self, id: ProposalId) -> bool {
        let before = self.queue.len();
        self.queue.retain(|(pid, _)| *pid != id);
        self.queue.len() < before
    }

    /// The oldest delivered seqn whose value this node still keeps for
    /// peers that lack it (`next_seqn()` when it keeps none).
    pub fn oldest_kept(&self) -> Seqn {
        self.history_base
    }

    /// The seqn the next learned value will have.
    pub fn next_seqn(&self) -> Seqn {
        self.next_deliver
    }

    /// Handles a batch from peer `from` at time `now_ms`. Invalid parts are
    /// counted and ignored.
    pub fn step(&mut self, from: &str, mut msg: PeerMsg, now_ms: u64) {
        self.advance_clock(now_ms);
        if from == self.cfg.id {
            self.stats.invalid += 1;
            return;
        }
        self.stats.received.add(&msg);
        if self.peers.iter().any(|p| p == from) {
            upsert(&mut self.last_heard_ms, from, self.now_ms);
            // The latest report replaces the last: a peer that reported
            // far ahead and then restarted is not ahead any more.
            let report = Report {
                upto: msg.learned_upto,
                oldest_kept: msg.oldest_kept,
                silent: std::mem::take(&mut msg.silent),
            };
            upsert(&mut self.reports, from, report);
        }
        let cap = self.ahead_max() as usize;
        for p in msg.prepares {
            for seqn in p.seqns.into_iter().take(cap) {
                self.handle(
                    from,
                    Item::Prepare {
                        round: p.round,
                        seqn,
                    },
                );
            }
        }
        for m in msg.promises {
            self.handle(from, Item::Promise(m));
        }
        for m in msg.accepts {
            self.handle(from, Item::Accept(m));
        }
        for m in msg.votes {
            self.handle(from, Item::Vote(m));
        }
        for m in msg.rejects {
            self.handle(from, Item::Reject(m));
        }
        for m in msg.learned {
            self.handle(from, Item::Learned(m));
        }
        for s in msg.skips.into_iter().take(cap) {
            self.handle(from, Item::Skip(s));
        }
        if let Some(f) = msg.fetch_from {
            self.handle(from, Item::Fetch(f));
        }
        self.after();
        // Far behind a peer: catch up now rather than after a timeout.
        if self
            .best_peer_ahead()
            .is_some_and(|(_, u)| u > self.next_deliver + self.cfg.alpha)
        {
            self.maybe_fetch(true);
        }
    }

    /// Advances time: retries stalled rounds, fills seqns held up too long,
    /// sends skips that found no batch to ride on, fetches missing values.
    pub fn tick(&mut self, now_ms: u64) {
        self.advance_clock(now_ms);
        let now = self.now_ms;
        self.mark_needed();
        self.retry_stalled();
        self.fill_due();
        let due: Vec<NodeId> = self
            .skip_backlog
            .iter()
            .filter(|(_, (since, _))| since + self.cfg.skip_flush_ms <= now)
            .map(|(p, _)| p.clone())
            .collect();
        for p in due {
            self.outbox.entry(p).or_default();
        }
        for p in self.peers.clone() {
            if self
                .last_sent_ms
                .get(&p)
                .map_or(0, |t| t + self.cfg.heartbeat_ms)
                <= now
            {
                self.outbox.entry(p).or_default();
            }
        }
        self.maybe_fetch(false);
        self.after();
    }

    /// The earliest time [`Paxos::tick`] has work to do, if any.
    pub fn next_deadline(&self) -> Option<u64> {
        let mut at: Option<u64> = None;
        let mut at_least = |t: u64| at = Some(at.map_or(t, |a| a.min(t)));
        for (s, inst) in self.instances.range(self.next_deliver..self.window_end()) {
            if inst.learned.is_some() {
                continue;
            }
            if let Some(c) = &inst.coordinator {
                at_least(c.deadline_ms);
            } else if let Some(t) = self.fill_due_at(*s, inst) {
                at_least(t);
            }
        }
        // Seqns whose fill clock the next tick starts.
        if self.needed_end() > self.marked_end {
            at_least(self.now_ms);
        }
        for (since, _) in self.skip_backlog.values() {
            at_least(since + self.cfg.skip_flush_ms);
        }
        if self.best_peer_ahead().is_some() {
            at_least(self.fetch_due_at());
        }
        for p in &self.peers {
            at_least(
                self.last_sent_ms
                    .get(p)
                    .map_or(0, |t| t + self.cfg.heartbeat_ms),
            );
        }
        at
    }

    /// Moves the clock to `now_ms`. A jump longer than a few heartbeats
    /// means this process did not run meanwhile (paused, or a loop stuck
    /// on something): nothing could be heard then, so the silence of that
    /// gap is no evidence against any peer, and is not counted.
    fn advance_clock(&mut self, now_ms: u64) {
        let gap = now_ms.saturating_sub(self.now_ms);
        let slack = 2 * self.cfg.heartbeat_ms.max(1);
        if gap > slack {
            for heard in self.last_heard_ms.values_mut() {
                *heard = (*heard + gap - slack).min(now_ms);
            }
        }
        self.now_ms = self.now_ms.max(now_ms);
    }

    /// Recomputes the other CALs of the window (when a CAL set changes).
    fn update_peers(&mut self) {
        let mut out: Vec<NodeId> = Vec::new();
        let mut last: Option<&CalSet> = None;
        let newest = std::iter::once(&self.newest_cals);
        for cals in self.cal_sets.iter().map(|(c, _)| c).chain(newest) {
            if last == Some(cals) {
                continue;
            }
            last = Some(cals);
            for c in cals.iter() {
                if *c != self.cfg.id && !out.contains(c) {
                    out.push(c.clone());
                }
            }
        }
        // What former CALs said no longer counts.
        self.reports.retain(|p, _| out.contains(p));
        self.last_heard_ms.retain(|p, _| out.contains(p));
        self.last_vote_ms.retain(|p, _| out.contains(p));
        self.peers = out;
    }

    /// Drains what the caller must do now.
    pub fn ready(&mut self) -> Ready {
        Ready {
            messages: self.take_messages(),
            learned: std::mem::take(&mut self.learned_out),
            on_disk: std::mem::take(&mut self.on_disk_out),
        }
    }

    /// Drains only the batches to send (learned values stay for
    /// [`Paxos::ready`]): votes can leave before the caller applies what
    /// was learned.
    pub fn take_messages(&mut self) -> Vec<(NodeId, PeerMsg)> {
        let outbox = std::mem::take(&mut self.outbox);
        self.finish_batches(outbox, Batches::Usual)
    }

    /// Drains the batches that may leave before the records taken with
    /// them are synced (with `Config::durable`; always empty without):
    /// round-0 Accepts and skips of own seqns below a Floor already on
    /// disk. They are safe early because nothing in them needs this
    /// output's records: the ballot is this node's round 0 of a seqn it
    /// never nominates again after a restart (the floor: a restarted
    /// owner settles it through phase 1, which fills a skipped seqn with
    /// NOP, as the skip said), and its own vote counts for the others
    /// only through its Vote message, which waits for the sync like every
    /// other (docs/storage.md).
    pub fn take_early_messages(&mut self) -> Vec<(NodeId, PeerMsg)> {
        if self.early.is_empty() {
            return Vec::new();
        }
        let early = std::mem::take(&mut self.early);
        self.finish_batches(early, Batches::Early)
    }

    /// Drains the lazy votes (with `Config::durable` and
    /// `Config::lazy_votes`; always empty without). Of a round-0 Accept's
    /// acceptors, the owner and the next `quorum - 2` CALs after it (by
    /// [`CalSet::fill_rank`]) vote as usual; the others vote lazily while
    /// each of those voted within `LAZY_WHILE_VOTED_MS`. A lazy vote is
    /// recorded like any other and leaves only once its record is synced,
    /// but its record needs no sync of its own ([`Paxos::take_records`]
    /// says so): the caller may let it wait for the next sync it makes
    /// anyway. The first majority decides without it, so the disks of
    /// the others are not loaded with syncs nobody waits for; and should
    /// one of that majority fail, the lazy vote still comes, a little
    /// later (docs/storage.md#lazy-votes).
    pub fn take_lazy_messages(&mut self) -> Vec<(NodeId, PeerMsg)> {
        if self.lazy.is_empty() {
            return Vec::new();
        }
        let lazy = std::mem::take(&mut self.lazy);
        self.finish_batches(lazy, Batches::Lazy)
    }

    /// Stamps each peer's batch with this node's header and splits what
    /// does not fit a datagram. The usual and lazy batches also carry the
    /// skips waiting for a ride (both leave after the sync of the Floor
    /// that covers them); the usual ones restart the peer's heartbeat
    /// clock.
    fn finish_batches(
        &mut self,
        batches: BTreeMap<NodeId, PeerMsg>,
        kind: Batches,
    ) -> Vec<(NodeId, PeerMsg)> {
        let mut messages = Vec::new();
        let usual = kind == Batches::Usual;
        let upto = if usual {
            self.next_deliver
        } else {
            self.synced_upto
        };
        let silent: Vec<NodeId> = self
            .newest_cals
            .iter()
            .filter(|c| **c != self.cfg.id && self.silent_here(c))
            .cloned()
            .collect();
        // A vote goes first to the seqn's owner, which coordinates round
        // 0 and answers the client once it has it; the others only learn
        // (docs/cluster.md#message-order). Stable: otherwise by id.
        let mut batches: Vec<(NodeId, PeerMsg)> = batches.into_iter().collect();
        if batches.len() > 1 {
            batches.sort_by_key(|(peer, msg)| !self.owns_a_vote(peer, msg));
        }
        for (peer, mut msg) in batches {
            if usual {
                upsert(&mut self.last_sent_ms, &peer, self.now_ms);
            }
            if kind != Batches::Early {
                if let Some((_, skips)) = self.skip_backlog.remove(&peer) {
                    msg.skips.extend(skips);
                }
            }
            msg.learned_upto = upto;
            msg.sender = self.cfg.id.clone();
            msg.oldest_kept = self.history_base;
            msg.silent = silent.clone();
            for part in split_batch(msg, self.cfg.batch_bytes_max) {
                self.stats.sent.add(&part);
                messages.push((peer.clone(), part));
            }
        }
        messages
    }

    // ---- internals ----

    /// Whether `msg` holds a vote for a seqn that `peer` owns.
    fn owns_a_vote(&self, peer: &NodeId, msg: &PeerMsg) -> bool {
        msg.votes
            .iter()
            .any(|v| self.cals(v.seqn).is_some_and(|c| c.owner(v.seqn) == peer))
    }

    fn ahead_max(&self) -> u64 {
        4 * self.cfg.alpha + FETCH_SEQNS_MAX
    }

    fn note_members(&mut self, cals: &CalSet) {
        for c in cals.iter() {
            if *c != self.cfg.id {
                self.last_heard_ms.entry(c.clone()).or_insert(self.now_ms);
            }
        }
    }

    fn cals(&self, s: Seqn) -> Option<&CalSet> {
        let i = s.checked_sub(self.next_deliver)?;
        self.cal_sets.get(usize::try_from(i).ok()?).map(|(c, _)| c)
    }

    /// Appends the set of seqn `window_end()`.
    fn push_window(&mut self, cals: CalSet) {
        // Consecutive seqns share one set: look this node up once per set.
        let me = match self.cal_sets.back() {
            Some((last, me)) if last.shares(&cals) => *me,
            _ => cals.index_of(&self.cfg.id),
        };
        self.cal_sets.push_back((cals, me));
    }

    fn my_index(&self, s: Seqn) -> Option<u32> {
        let i = s.checked_sub(self.next_deliver)?;
        self.cal_sets.get(usize::try_from(i).ok()?)?.1
    }

    fn is_learned(&self, s: Seqn) -> bool {
        s < self.next_deliver || self.instances.get(&s).is_some_and(|i| i.learned.is_some())
    }

    /// Drops the delivered values no CAL can still ask for: those every
    /// peer reported learning, less [`HISTORY_SLACK`] (docs/cluster.md#falling-behind),
    /// and beyond that the oldest past `history_max` values or
    /// [`HISTORY_BYTES_MAX`]. A peer that never reported (just joined,
    /// or not heard from since this node started) keeps everything up to
    /// those caps; a silent peer's last report keeps what it lacked then.
    fn trim_history(&mut self) {
        let mut floor = Some(self.next_deliver);
        for p in &self.peers {
            floor = match (floor, self.reports.get(p)) {
                (Some(f), Some(r)) => Some(f.min(r.upto)),
                _ => None,
            };
        }
        let keep_from = floor.map_or(0, |f| f.saturating_sub(HISTORY_SLACK));
        while self.history.len() > self.cfg.history_max
            || self.history_bytes > HISTORY_BYTES_MAX && self.history.len() > 1
            || self.history_base < keep_from && !self.history.is_empty()
        {
            if let Some(old) = self.history.pop_front() {
                self.history_bytes -= old.len();
            }
            self.history_base += 1;
        }
    }

    /// The decided value of `s`, if still held.
    fn learned_value(&self, s: Seqn) -> Option<Bytes> {
        if s < self.next_deliver {
            let i = s.checked_sub(self.history_base)?;
            return self.history.get(i as usize).cloned();
        }
        self.instances.get(&s)?.learned.clone()
    }

    fn send(&mut self, to: &str, item: Item) {
        if *to == self.cfg.id {
            self.local.push_back(item);
            return;
        }
        // No id clone on the hot path: the batch usually exists.
        match self.outbox.get_mut(to) {
            Some(m) => add_item(m, item),
            None => {
                let mut m = PeerMsg::default();
                add_item(&mut m, item);
                self.outbox.insert(to.to_owned(), m);
            }
        }
    }

    fn broadcast(&mut self, cals: &CalSet, item: Item) {
        for c in cals.iter() {
            self.send(c, item.clone());
        }
    }

    /// Work common to every entry point: handle own messages, deliver,
    /// nominate queued values.
    fn after(&mut self) {
        loop {
            if !self.local.is_empty() {
                let me = std::sync::Arc::clone(&self.me);
                while let Some(item) = self.local.pop_front() {
                    self.handle(&me, item);
                }
            }
            if !self.retired {
                self.deliver();
                if self.revoke_below > self.next_deliver {
                    self.revoke_restored();
                }
            }
            // Mencius: own unused seqns below any seqn in use are skipped
            // (after queued values had their pick of them).
            self.advance_own(self.active_end);
            if self.local.is_empty() {
                break;
            }
        }
    }

    fn handle(&mut self, from: &str, item: Item) {
        // Untrusted input: every seqn is range-checked before use.
        if let Item::Fetch(f) = item {
            self.answer_fetch(from, f);
            return;
        }
        let Some(s) = item.seqn_needing_cals() else {
            return; // a Fetch, answered above
        };
        if s < self.next_deliver {
            // Already learned here: help the straggler catch up. When the
            // value is no longer kept, a bare batch still tells it how far
            // this node is and what it keeps, so it knows to copy the
            // store rather than ask again.
            if matches!(item, Item::Prepare { .. } | Item::Accept(_)) {
                let from = from.to_owned();
                match self.learned_value(s) {
                    Some(v) => self.send(&from, Item::Learned(Learned { seqn: s, value: v })),
                    None => {
                        self.outbox.entry(from).or_default();
                    }
                }
            }
            return;
        }
        if s >= self.next_deliver + self.ahead_max() {
            self.stats.too_far_ahead += 1;
            return;
        }
        if s >= self.window_end() {
            self.defer(from, s, item);
            return;
        }
        // Only a CAL of the seqn speaks about it: a node that is no CAL of
        // it (a stranger that registered an address, say) is ignored before
        // anything it says counts. Looked up once, for every handler.
        let Some((cals, idx)) = self.sender(from, s) else {
            return;
        };
        self.active_end = self.active_end.max(s + 1);
        match item {
            Item::Prepare { round, seqn } => self.on_prepare(from, idx, round, seqn),
            Item::Promise(p) => self.on_promise(&cals, idx, p),
            Item::Accept(a) => self.on_accept(from, &cals, idx, a),
            Item::Vote(v) => {
                if self.cfg.durable && from != self.cfg.id {
                    upsert(&mut self.last_vote_ms, from, self.now_ms);
                }
                self.on_vote(&cals, idx, v)
            }
            Item::Reject(r) => self.on_reject(&cals, r),
            Item::Learned(l) => self.on_learned(l),
            Item::Skip(s) => self.on_skip(&cals, idx, s),
            Item::Fetch(_) => {}
        }
    }

    /// Keeps `item` about seqn `s`, beyond the known window, until the
    /// window grows to it ([`Paxos::set_cals`]), when its sender is checked
    /// against that seqn's CAL set: so a node far behind still takes the
    /// values it fetched, once it knows who decides them. An item from a
    /// CAL of the window already shows that seqns up to `s` are in use.
    fn defer(&mut self, from: &str, s: Seqn, item: Item) {
        if from == self.cfg.id || self.peers.iter().any(|p| p == from) {
            self.active_end = self.active_end.max(s + 1);
        }
        let cap = DEFERRED_PER_ALPHA * self.cfg.alpha as usize;
        let bytes = item.value_bytes();
        if self.deferred.len() >= cap || self.deferred_bytes + bytes > DEFERRED_BYTES_MAX {
            self.stats.too_far_ahead += 1;
            return;
        }
        self.deferred_bytes += bytes;
        self.deferred.push_back((from.to_owned(), item));
    }

    /// The CAL set of `s` and the index of `from` in it, or count invalid.
    fn sender(&mut self, from: &str, s: Seqn) -> Option<(CalSet, u32)> {
        let cals = self.cals(s)?.clone();
        match cals.index_of(from) {
            Some(i) => Some((cals, i)),
            None => {
                self.stats.invalid += 1;
                None
            }
        }
    }

    fn on_prepare(&mut self, from: &str, idx: u32, round: u64, s: Seqn) {
        if round == 0 || round > MAX_ROUND {
            // Round 0 is only ever the owner's Accept; see `MAX_ROUND`.
            self.stats.invalid += 1;
            return;
        }
        // Someone wants s decided: if it is ours and unused, skip it now.
        self.advance_own(s + 1);
        if let Some(v) = self.learned_value(s) {
            self.send(from, Item::Learned(Learned { seqn: s, value: v }));
            return;
        }
        if self.my_index(s).is_none() {
            return; // not an acceptor of s
        }
        let b = Ballot { round, cal: idx };
        let durable = self.cfg.durable;
        let inst = self.instances.entry(s).or_default();
        inst.max_round = inst.max_round.max(round);
        if durable && inst.acceptor.promised.is_none_or(|p| p < b) {
            self.eager_records = true;
            self.records.push(Record::Promise {
                seqn: s,
                round,
                cal: idx,
            });
        }
        let reply = match inst.acceptor.prepare(b) {
            Ok(vote) => Item::Promise(Promise {
                seqn: s,
                round,
                vote_round: vote.map(|(vb, _)| vb.round),
                vote_cal: vote.map(|(vb, _)| vb.cal),
                vote_value: vote.map(|(_, v)| v.clone()),
            }),
            Err(p) => Item::Reject(Reject {
                seqn: s,
                round: p.round,
                cal: p.cal,
            }),
        };
        self.send(from, reply);
    }

    fn on_promise(&mut self, cals: &CalSet, idx: u32, p: Promise) {
        let s = p.seqn;
        let vote = match (p.vote_round, p.vote_cal, p.vote_value) {
            (Some(round), Some(cal), Some(v)) => {
                let vb = Ballot { round, cal };
                if !vb.is_valid(cals, s) {
                    self.stats.invalid += 1;
                    return;
                }
                Some((vb, v))
            }
            (None, None, None) => None,
            _ => {
                self.stats.invalid += 1;
                return;
            }
        };
        let nop = self.cfg.nop.clone();
        let Some(inst) = self.instances.get_mut(&s) else {
            return;
        };
        if inst.learned.is_some() {
            return;
        }
        let Some(c) = inst.coordinator.as_mut() else {
            return;
        };
        if c.ballot.round != p.round {
            return; // an answer to an earlier round
        }
        let ballot = c.ballot;
        let Some(found) = c.promise(idx, vote, cals.quorum()) else {
            return;
        };
        // P2c: the highest vote's value, else our own client value (owner),
        // else NOP: a non-owner never invents a value.
        let value = found
            .or_else(|| inst.own.as_ref().map(|(_, v)| v.clone()))
            .unwrap_or(nop);
        self.broadcast(
            cals,
            Item::Accept(Accept {
                seqn: s,
                round: ballot.round,
                value,
            }),
        );
    }

    fn on_accept(&mut self, from: &str, cals: &CalSet, idx: u32, a: Accept) {
        let s = a.seqn;
        let b = Ballot {
            round: a.round,
            cal: idx,
        };
        if !b.is_valid(cals, s) {
            self.stats.invalid += 1;
            return;
        }
        // Mencius: a value suggested at s means our unused seqns below s
        // will never be needed for anything but NOP.
        self.advance_own(s + 1);
        if a.round == 0 && self.idle() {
            // Skip ours up to the owner's next seqn too, so its next value
            // needs no word from us, only a majority's votes
            // (docs/cluster.md#skipping-ahead).
            self.skip_own_below(s + cals.len() as u64);
        }
        if let Some(v) = self.learned_value(s) {
            if from != self.cfg.id {
                self.send(from, Item::Learned(Learned { seqn: s, value: v }));
            }
            return;
        }
        let me = self.my_index(s);
        let lazy = me.is_some_and(|me| self.votes_lazily(cals, s, a.round, me));
        let inst = self.instances.entry(s).or_default();
        inst.max_round = inst.max_round.max(a.round);
        let chosen = inst.learner.proposal(b, a.value.clone(), cals.quorum());
        #[cfg(test)]
        let voted = a.value.clone();
        let reply = if me.is_some() {
            let record = self.cfg.durable.then(|| Record::Vote {
                seqn: s,
                round: b.round,
                cal: b.cal,
                value: a.value.clone(),
            });
            match inst.acceptor.accept(b, a.value) {
                Ok(()) => {
                    if record.is_some() {
                        self.untaken_vote_min = min_of(self.untaken_vote_min, Some(s));
                        self.eager_records |= !lazy;
                    }
                    self.records.extend(record);
                    Some(Item::Vote(Vote {
                        seqn: s,
                        round: b.round,
                        cal: b.cal,
                    }))
                }
                Err(p) => {
                    self.send(
                        from,
                        Item::Reject(Reject {
                            seqn: s,
                            round: p.round,
                            cal: p.cal,
                        }),
                    );
                    None
                }
            }
        } else {
            None
        };
        if let Some(v) = chosen {
            self.learn(s, v);
        }
        if let Some(vote) = reply {
            #[cfg(test)]
            self.votes.push(VoteRecord {
                seqn: s,
                round: b.round,
                coordinator: from.to_owned(),
                value: voted,
            });
            if lazy {
                self.stats.lazy_votes += 1;
                // Counted here at once, as every own vote: nothing this
                // node learns from it leaves before the vote is synced.
                for c in cals.iter() {
                    if *c == self.cfg.id {
                        self.local.push_back(vote.clone());
                    } else {
                        add_item(self.lazy.entry(c.clone()).or_default(), vote.clone());
                    }
                }
            } else {
                self.broadcast(cals, vote);
            }
        }
    }

    /// Whether this acceptor (index `me` in `cals`) votes lazily for a
    /// round-`round` Accept at `s`: see [`Paxos::take_lazy_messages`].
    fn votes_lazily(&self, cals: &CalSet, s: Seqn, round: u64, me: u32) -> bool {
        if !(self.cfg.durable && self.cfg.lazy_votes) || round != 0 {
            return false;
        }
        let Some(rank) = cals.fill_rank(s, me) else {
            return false; // the owner
        };
        let eager = cals.quorum() as u32 - 1;
        if rank < eager {
            return false;
        }
        // Each acceptor ranked before this one must be voting: otherwise
        // the decision would wait for this vote.
        (0..cals.len() as u32)
            .filter(|&i| cals.fill_rank(s, i).is_some_and(|r| r < eager))
            .all(|i| {
                cals.get(i).is_some_and(|c| {
                    self.last_vote_ms
                        .get(c)
                        .is_some_and(|&t| self.now_ms < t + LAZY_WHILE_VOTED_MS)
                })
            })
    }

    fn on_vote(&mut self, cals: &CalSet, idx: u32, v: Vote) {
        let s = v.seqn;
        let b = Ballot {
            round: v.round,
            cal: v.cal,
        };
        if !b.is_valid(cals, s) {
            self.stats.invalid += 1;
            return;
        }
        self.advance_own(s + 1);
        if self.is_learned(s) {
            return;
        }
        let inst = self.instances.entry(s).or_default();
        inst.max_round = inst.max_round.max(v.round);
        if let Some(value) = inst.learner.vote(b, idx, cals.quorum()) {
            self.learn(s, value);
        }
    }

    fn on_reject(&mut self, cals: &CalSet, r: Reject) {
        let s = r.seqn;
        let b = Ballot {
            round: r.round,
            cal: r.cal,
        };
        if !b.is_valid(cals, s) {
            self.stats.invalid += 1;
            return;
        }
        if let Some(inst) = self.instances.get_mut(&s) {
            // Remember the higher round; the retry (after backoff) goes
            // above it. Retrying at once would duel with its coordinator.
            inst.max_round = inst.max_round.max(r.round);
        }
    }

    /// A value decided at `l.seqn`, from a CAL of that seqn (checked in
    /// [`Paxos::handle`], like every item about a seqn).
    fn on_learned(&mut self, l: Learned) {
        let s = l.seqn;
        self.advance_own(s + 1);
        if !self.is_learned(s) {
            self.learn(s, l.value);
        }
    }

    fn on_skip(&mut self, cals: &CalSet, idx: u32, s: Seqn) {
        if cals.owner_index(s) != idx {
            self.stats.invalid += 1; // only the owner may skip its seqn
            return;
        }
        self.advance_own(s + 1);
        if !self.is_learned(s) {
            let nop = self.cfg.nop.clone();
            self.learn(s, nop);
        }
    }

    fn answer_fetch(&mut self, from: &str, f: Seqn) {
        let from = from.to_owned();
        let mut bytes = 0;
        for s in f..f.saturating_add(FETCH_SEQNS_MAX) {
            let Some(v) = self.learned_value(s) else {
                if s >= self.next_deliver {
                    break;
                }
                continue; // evicted from history: nothing to give
            };
            bytes += v.len();
            self.send(&from, Item::Learned(Learned { seqn: s, value: v }));
            if bytes > FETCH_BYTES_MAX {
                break;
            }
        }
    }

    fn learn(&mut self, s: Seqn, v: Bytes) {
        let inst = self.instances.entry(s).or_default();
        if inst.learned.is_some() {
            return;
        }
        inst.learned = Some(v);
        inst.coordinator = None;
    }

    /// Whether this acceptor's vote in `inst` (seqn `s`) is for `v` and
    /// on disk, with no vote of it at `s` or below still unsynced (see
    /// [`Ready::on_disk`]). No vote at or below a delivered seqn is cast
    /// after its delivery, so what holds here holds for the whole output.
    fn vote_on_disk(&self, s: Seqn, inst: &Instance, v: &Bytes) -> bool {
        self.cfg.durable
            && min_of(self.untaken_vote_min, self.unsynced_vote_min).is_none_or(|t| t > s)
            && inst.acceptor.vote.as_ref().is_some_and(|(_, av)| av == v)
    }

    /// Hands the caller every learned value that is next in seqn order.
    fn deliver(&mut self) {
        while let Some(v) = self
            .instances
            .get(&self.next_deliver)
            .and_then(|i| i.learned.clone())
        {
            let s = self.next_deliver;
            let inst = self.instances.remove(&s).unwrap_or_default();
            let on_disk = self.vote_on_disk(s, &inst, &v);
            let mut id = None;
            if let Some((pid, pv)) = inst.own {
                if pv == v {
                    id = Some(pid);
                } else {
                    // Filled with NOP: propose again, ahead of newer values.
                    self.queue.push_front((pid, pv));
                }
            }
            if id.is_some() && on_disk {
                self.on_disk_out.push(s);
            }
            self.learned_out.push((s, v.clone(), id));
            self.history_bytes += v.len();
            self.history.push_back(v);
            self.trim_history();
            if let Some((gone, _)) = self.cal_sets.pop_front() {
                if self.cal_sets.front().map(|(c, _)| c) != Some(&gone) {
                    self.update_peers();
                }
            }
            self.next_deliver += 1;
            self.stuck_since_ms = self.now_ms;
            self.fetch_quiet_until_ms = 0;
        }
        self.next_own = self.next_own.max(self.next_deliver);
    }

    /// Whether own seqn `s` is unused (never nominated, not decided).
    /// A seqn voted in may hold a value this node nominated before a
    /// restart (its `own` is gone then), and one below `revoke_below` may
    /// have been nominated or skipped: only phase 1 may settle either.
    fn own_free(&self, s: Seqn) -> bool {
        s >= self.revoke_below
            && self.instances.get(&s).is_none_or(|i| {
                i.learned.is_none()
                    && i.own.is_none()
                    && i.coordinator.is_none()
                    && i.acceptor.vote.is_none()
            })
    }

    /// Before own seqn `s` is nominated or skipped: with a data directory,
    /// a Floor record above it goes to disk first (in blocks of `alpha`,
    /// so one record covers many seqns). After a restart, own seqns below
    /// the floor are settled through phase 1.
    fn cover_own(&mut self, s: Seqn) {
        if self.cfg.durable && s >= self.floor {
            self.floor = s + 1 + self.cfg.alpha;
            self.eager_records = true;
            self.records.push(Record::Floor { seqn: self.floor });
        }
    }

    /// Starts phase 1 on own seqns of the window below `revoke_below` that
    /// are neither decided nor being settled (after a restart).
    fn revoke_restored(&mut self) {
        let end = self.revoke_below.min(self.window_end());
        let due: Vec<(Seqn, u32)> = (self.next_deliver..end)
            .filter(|s| {
                let mine = self
                    .my_index(*s)
                    .is_some_and(|i| self.cals(*s).is_some_and(|c| c.owner_index(*s) == i));
                mine && self
                    .instances
                    .get(s)
                    .is_none_or(|i| i.learned.is_none() && i.coordinator.is_none())
            })
            .map(|s| (s, 0))
            .collect();
        self.start_rounds(&due);
    }

    /// Nominates queued client values in this node's free seqns.
    fn assign_own(&mut self) {
        let end = self.window_end();
        while !self.queue.is_empty() {
            let mut s = self.next_own.max(self.next_deliver);
            let mut found = None;
            while s < end {
                if self
                    .my_index(s)
                    .is_some_and(|i| self.cals(s).is_some_and(|c| c.owner_index(s) == i))
                    && self.own_free(s)
                {
                    if self
                        .instances
                        .get(&s)
                        .is_some_and(|i| i.acceptor.promised.is_some())
                    {
                        // Someone is revoking it: round 0 would fail here.
                        self.skip(s);
                    } else {
                        found = Some(s);
                        break;
                    }
                }
                s += 1;
            }
            let Some(s) = found else {
                self.next_own = self.next_own.max(end);
                return;
            };
            self.next_own = s + 1;
            let Some((pid, value)) = self.queue.pop_front() else {
                return;
            };
            self.nominate(s, pid, value);
        }
    }

    fn nominate(&mut self, s: Seqn, pid: ProposalId, value: Bytes) {
        let Some(cals) = self.cals(s).cloned() else {
            return;
        };
        // Decided before `cover_own` may raise the floor: only a floor
        // already on disk lets the Accept leave before this output's sync.
        let early = self.cfg.durable && s < self.synced_floor;
        self.cover_own(s);
        self.nominated_end = self.nominated_end.max(s + 1);
        self.nominated_ms = self.now_ms;
        let ballot = Ballot::reserved(&cals, s);
        let deadline = self.now_ms + self.round_timeout(0);
        let inst = self.instances.entry(s).or_default();
        inst.own = Some((pid, value.clone()));
        inst.coordinator = Some(Coordinator {
            ballot,
            phase: Phase::Accept,
            deadline_ms: deadline,
            attempts: 0,
        });
        self.active_end = self.active_end.max(s + 1);
        let accept = Item::Accept(Accept {
            seqn: s,
            round: 0,
            value,
        });
        for c in cals.iter() {
            if early && *c != self.cfg.id {
                add_item(self.early.entry(c.clone()).or_default(), accept.clone());
            } else {
                self.send(c, accept.clone());
            }
        }
    }

    /// Whether this node proposes nothing lately: nothing queued, nothing
    /// in flight, nothing nominated for [`IDLE_MS`]. A busy CAL skipping
    /// ahead would only push its next value further out, at a NOP rev for
    /// each seqn it skipped.
    fn idle(&self) -> bool {
        self.queue.is_empty()
            && self.nominated_end <= self.next_deliver
            && self.now_ms >= self.nominated_ms.saturating_add(IDLE_MS)
    }

    /// Skips own unused seqns below `upto` (Mencius): with nothing queued,
    /// they can only be NOP, so say so now.
    fn advance_own(&mut self, upto: Seqn) {
        self.active_end = self.active_end.max(upto);
        if !self.queue.is_empty() {
            self.assign_own();
        }
        self.skip_own_below(upto);
    }

    /// Skips own unused seqns below `upto` (within the window), without
    /// taking them as in use: nothing below `upto` is marked needed.
    fn skip_own_below(&mut self, upto: Seqn) {
        let end = upto.min(self.window_end());
        let mut s = self.next_own.max(self.next_deliver);
        while s < end {
            let mine = self
                .my_index(s)
                .is_some_and(|i| self.cals(s).is_some_and(|c| c.owner_index(s) == i));
            if mine && self.own_free(s) {
                self.skip(s);
            }
            s += 1;
        }
        self.next_own = self.next_own.max(end);
    }

    fn skip(&mut self, s: Seqn) {
        let Some(cals) = self.cals(s).cloned() else {
            return;
        };
        // As for an early Accept (see `nominate`): with the floor above s
        // already on disk, a restarted owner settles s through phase 1,
        // which finds no value (s was never nominated) and fills it with
        // NOP, so the skip needs nothing of this output and leaves before
        // its sync. The others then deliver what waits behind s without
        // waiting for this node's sync.
        let early = self.cfg.durable && s < self.synced_floor;
        self.cover_own(s);
        self.stats.skips += 1;
        let nop = self.cfg.nop.clone();
        self.learn(s, nop);
        let now = self.now_ms;
        for c in cals.iter() {
            if *c == self.cfg.id {
                continue;
            }
            if early {
                self.early.entry(c.clone()).or_default().skips.push(s);
            } else {
                let e = self
                    .skip_backlog
                    .entry(c.clone())
                    .or_insert((now, Vec::new()));
                e.1.push(s);
            }
        }
    }

    /// Starts the fill clock of undecided seqns below the active ones.
    fn mark_needed(&mut self) {
        let now = self.now_ms;
        let end = self.needed_end();
        for s in self.marked_end.max(self.next_deliver)..end {
            let inst = self.instances.entry(s).or_default();
            if inst.learned.is_none() && inst.needed_since_ms.is_none() {
                inst.needed_since_ms = Some(now);
            }
        }
        self.marked_end = self.marked_end.max(end);
    }

    /// Seqns below this hold something up: a later seqn is in use, or this
    /// node has values queued that wait for the window to move.
    fn needed_end(&self) -> Seqn {
        if self.queue.is_empty() {
            self.active_end.min(self.window_end())
        } else {
            self.window_end()
        }
    }

    /// When this node should fill `s` (owned by another CAL) with NOP:
    /// `fill_ms` per fill rank after it became needed, or as soon as the
    /// owner and every CAL ranked before us have been silent `fill_ms`.
    fn fill_due_at(&self, s: Seqn, inst: &Instance) -> Option<u64> {
        let needed = inst.needed_since_ms?;
        if inst.learned.is_some() || inst.coordinator.is_some() {
            return None;
        }
        let cals = self.cals(s)?;
        let me = self.my_index(s)?;
        let rank = cals.fill_rank(s, me)?;
        let by_rank = needed + self.cfg.fill_ms * (u64::from(rank) + 1);
        let n = cals.len() as u32;
        let owner = cals.owner_index(s);
        let mut silent = needed;
        for k in 0..=rank {
            // The owner (k = 0), then every CAL ranked before us.
            let c = cals.get((owner + k) % n)?;
            let heard = self.last_heard_ms.get(c).copied().unwrap_or(0);
            silent = silent.max(heard + self.cfg.fill_ms);
        }
        Some(by_rank.min(silent))
    }

    fn round_timeout(&mut self, attempts: u32) -> u64 {
        let base = self
            .cfg
            .round_ms
            .max(1)
            .saturating_mul(1u64 << attempts.min(20))
            .min(self.cfg.round_max_ms.max(1));
        // Jitter in [base/2, base]: rivals rarely retry in lockstep.
        base / 2 + self.rng.below(base / 2 + 1)
    }

    /// Starts phase 1 at one fresh round for all of `seqns` (a bulk
    /// revoke when they are many): one Prepare per peer covers them all.
    fn start_rounds(&mut self, seqns: &[(Seqn, u32)]) {
        if seqns.is_empty() {
            return;
        }
        let round = 1 + seqns
            .iter()
            .filter_map(|(s, _)| self.instances.get(s))
            .map(|i| {
                i.max_round
                    .max(i.coordinator.as_ref().map_or(0, |c| c.ballot.round))
            })
            .max()
            .unwrap_or(0);
        let mut to: BTreeMap<NodeId, ()> = BTreeMap::new();
        for &(s, attempts) in seqns {
            let Some(me) = self.my_index(s) else {
                continue;
            };
            let deadline = self.now_ms + self.round_timeout(attempts);
            let inst = self.instances.entry(s).or_default();
            inst.max_round = inst.max_round.max(round);
            inst.coordinator = Some(Coordinator::preparing(
                Ballot { round, cal: me },
                deadline,
                attempts,
            ));
            if let Some(cals) = self.cals(s) {
                for c in cals.iter() {
                    to.insert(c.clone(), ());
                }
            }
        }
        for c in to.keys() {
            for &(s, _) in seqns {
                if self.cals(s).is_some_and(|cs| cs.index_of(c).is_some()) {
                    self.send(c, Item::Prepare { round, seqn: s });
                }
            }
        }
    }

    fn retry_stalled(&mut self) {
        let now = self.now_ms;
        let stalled: Vec<(Seqn, u32)> = self
            .instances
            .range(self.next_deliver..self.window_end())
            .filter_map(|(s, i)| {
                let c = i.coordinator.as_ref()?;
                (i.learned.is_none() && c.deadline_ms <= now).then_some((*s, c.attempts + 1))
            })
            .collect();
        self.stats.round_retries += stalled.len() as u64;
        self.start_rounds(&stalled);
    }

    fn fill_due(&mut self) {
        let now = self.now_ms;
        let due: Vec<(Seqn, u32)> = self
            .instances
            .range(self.next_deliver..self.window_end())
            .filter(|(s, i)| self.fill_due_at(**s, i).is_some_and(|t| t <= now))
            .map(|(s, _)| (*s, 0))
            .collect();
        if !due.is_empty() {
            self.stats.fills += due.len() as u64;
            self.stats.revokes += 1;
            self.start_rounds(&due);
        }
    }

    /// The CAL heard from lately that learned furthest beyond this node
    /// and still keeps what it lacks, if any; one of the CALs of the next
    /// seqn when its set is known, since only their values count there.
    fn best_peer_ahead(&self) -> Option<(&NodeId, Seqn)> {
        let next = self.next_deliver;
        let decides_next = |p: &str| self.cals(next).is_none_or(|c| c.index_of(p).is_some());
        self.reports
            .iter()
            .filter(|(p, r)| r.upto > next && r.oldest_kept <= next && self.fresh(p))
            .filter(|(p, _)| decides_next(p))
            .max_by_key(|(_, r)| r.upto)
            .map(|(p, r)| (p, r.upto))
    }

    fn fetch_due_at(&self) -> u64 {
        (self.stuck_since_ms + self.cfg.round_ms).max(self.fetch_quiet_until_ms)
    }

    /// Asks the peer furthest ahead for the values this node lacks, when it
    /// has been stuck a round (or at once if `far_behind`).
    fn maybe_fetch(&mut self, far_behind: bool) {
        if self.retired {
            return; // it delivers nothing: it has no use for values
        }
        let now = self.now_ms;
        if self.fetch_quiet_until_ms > now || (!far_behind && self.fetch_due_at() > now) {
            return;
        }
        let Some((peer, _)) = self.best_peer_ahead() else {
            return;
        };
        let peer = peer.clone();
        let from = self.next_deliver;
        self.send(&peer, Item::Fetch(from));
        self.fetch_quiet_until_ms = now + self.cfg.round_ms;
    }
}

/// The lower of two optional seqns.
fn min_of(a: Option<Seqn>, b: Option<Seqn>) -> Option<Seqn> {
    a.into_iter().chain(b).min()
}

/// Sets `map[key]` to `v`, allocating the key only when it is new (these
/// maps are updated for every datagram, nearly always for a known peer).
fn upsert<V>(map: &mut BTreeMap<NodeId, V>, key: &str, v: V) {
    match map.get_mut(key) {
        Some(old) => *old = v,
        None => {
            map.insert(key.to_owned(), v);
        }
    }
}

/// Splits a batch whose encoding exceeds `max` bytes into several, keeping
/// the header on each. A single part larger than `max` travels alone.
fn split_batch(msg: PeerMsg, max: usize) -> Vec<PeerMsg> {
    if msg.encoded_len() <= max {
        return vec![msg];
    }
    let header = PeerMsg {
        learned_upto: msg.learned_upto,
        sender: msg.sender.clone(),
        oldest_kept: msg.oldest_kept,
        silent: msg.silent.clone(),
        ..Default::default()
    };
    let mut out = vec![header.clone()];
    let mut size = 0usize;
    let mut room = |out: &mut Vec<PeerMsg>, len: usize| {
        // 16 bytes covers the tag and length prefix of one part.
        if size + len + 16 > max && size > 0 {
            out.push(header.clone());
            size = 0;
        }
        size += len + 16;
    };
    macro_rules! spread {
        ($field:ident) => {
            for x in msg.$field {
                room(&mut out, x.encoded_len());
                if let Some(last) = out.last_mut() {
                    last.$field.push(x);
                }
            }
        };
    }
    spread!(prepares);
    spread!(promises);
    spread!(accepts);
    spread!(votes);
    spread!(rejects);
    spread!(learned);
    if let Some(last) = out.last_mut() {
        last.skips = msg.skips;
        last.fetch_from = msg.fetch_from;
    }
    out.retain(|m| !m.is_empty());
    out
}

/// Adds `item` to the batch `m` for one peer (Prepares of one round share
/// an entry).
fn add_item(m: &mut PeerMsg, item: Item) {
    match item {
        Item::Prepare { round, seqn } => match m.prepares.iter_mut().find(|p| p.round == round) {
            Some(p) => p.seqns.push(seqn),
            None => m.prepares.push(Prepare {
                round,
                seqns: vec![seqn],
            }),
        },
        Item::Promise(x) => m.promises.push(x),
        Item::Accept(x) => m.accepts.push(x),
        Item::Vote(x) => m.votes.push(x),
        Item::Reject(x) => m.rejects.push(x),
        Item::Learned(x) => m.learned.push(x),
        Item::Skip(s) => m.skips.push(s),
        Item::Fetch(s) => m.fetch_from = Some(s),
    }
}
