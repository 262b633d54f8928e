//! Deterministic simulation of whole nodes (tests only).
//!
//! A [`World`] runs real [`Replica`]s — store, consensus, membership,
//! follow streams — fed only through [`Replica::step`] and drained through
//! [`Replica::ready`], as the event loop does. Around them it models what
//! the event loop and the operating system do: peer datagrams (dropped,
//! duplicated, delayed, cut one way or both, held in the socket buffer of a
//! paused process and delivered late), TCP connections (ordered, stalled
//! while a link is cut, reset when a process dies), the attach handshake
//! and re-attaching of a slave (`crate::node`'s follow lifecycle), pauses
//! (SIGSTOP), crashes, and restarts as a new process with a new id (memory
//! only: everything is lost). With [`Timing::durable`] every node has a
//! data directory: what an output asks to persist is on its disk before
//! any of its messages or answers leave (the event loop's order), a crash
//! keeps exactly that (a crash before an output's sync is a crash before
//! the output, except for its early messages, which leave first: a crash
//! may come between them and the sync, see [`World::torn_crash`]),
//! snapshots are taken now and then with the log behind them trimmed,
//! and a restart recovers the same id from the disk
//! ([`Replica::recover`]) — or, when the disk is lost too, starts a new id.
//! Time is simulated; a run is determined by its seed.
//!
//! The [`oracle`] checks safety as the run goes: what was chosen (from the
//! votes acceptors cast), what every node learned, what clients were told.
//! Scenarios and randomized runs are in `tests.rs`.

pub(crate) mod oracle;
#[cfg(test)]
mod tests;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::net::SocketAddr;

use bytes::Bytes;
use doozer_proto::{Request, Response, Verb};
use prost::Message;

use crate::attach::{self, Resume};
use crate::cluster::NodeInfo;
use crate::consensus::{SplitMix64, VoteRecord};
use crate::replica::{
    ClusterConfig, ConnId, Input, Output, Replica, ReplicaConfig, RoleChange, Secrets,
};
use crate::storage::MemoryDir;
use oracle::Oracle;

/// Timing of the simulated cluster (the flags of every node).
#[derive(Debug, Clone)]
pub(crate) struct Timing {
    /// `-timeout`, ms.
    pub timeout_ms: u64,
    /// `-pulse`, ms.
    pub pulse_ms: u64,
    /// `-fill`, ms.
    pub fill_ms: u64,
    /// The window.
    pub alpha: u64,
    /// `-hist`.
    pub history_revs: u64,
    /// Every node has a data directory (`-d`).
    pub durable: bool,
}

impl Default for Timing {
    fn default() -> Timing {
        Timing {
            timeout_ms: 3_000,
            pulse_ms: 1_000,
            fill_ms: 100,
            alpha: 50,
            history_revs: 2_000,
            durable: false,
        }
    }
}

/// How long a handshake step may wait for its answer (`attach::STEP_TIMEOUT`).
const STEP_TIMEOUT_MS: u64 = 5_000;
/// Wait between attach attempts (`node/follow.rs`).
const REATTACH_INTERVAL_MS: u64 = 1_000;
/// The shortest silence of a follow stream that is given up.
const FOLLOW_IDLE_MIN_MS: u64 = 5_000;
/// Tag of the FOLLOW request and handshake requests.
const HANDSHAKE_TAG: i32 = 1;

/// One side of a simulated TCP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// A node's follow connection (client side).
    Follower(usize),
    /// A simulated client.
    Client(usize),
}

/// A TCP connection from `client` to node `server`.
struct Conn {
    client: End,
    server: usize,
    /// The incarnation of the server process it was accepted by.
    server_gen: u32,
    /// The connection id the server's replica knows it by.
    local: ConnId,
    to_server: VecDeque<(u64, Request)>,
    to_client: VecDeque<(u64, Response)>,
    /// Delivery time of the last frame queued each way (TCP keeps order).
    last_to_server: u64,
    last_to_client: u64,
    /// A flush is scheduled each way.
    flushing: [bool; 2],
    closed: bool,
}

/// Where a node's attach handshake is.
#[derive(Debug, Clone)]
enum Phase {
    /// Waiting for the answer to GET `/ctl/name`.
    Name,
    /// Waiting for the answer to the GET (`false`) or SET (`true`) of the
    /// `n`-th node file.
    Files(usize, bool),
    /// FOLLOW sent; responses go to the replica.
    Streaming,
}

/// A node following another (the client side of its follow connection).
struct Follow {
    conn: u64,
    member: usize,
    phase: Phase,
    /// Candidates not tried yet, in order.
    rest: Vec<SocketAddr>,
    resume: Resume,
    /// When the current handshake step times out.
    step_deadline: u64,
    /// When data last arrived on the stream.
    last_data: u64,
    /// Whether this candidate's handshake writes the node files (as
    /// `Attach::registered_handshake`: not after a write timed out).
    register: attach::Register,
    /// The first candidate of this round that refused the node files
    /// with READONLY, and whether the node was listed as a CAL when the
    /// round began (as `Attach::handshake_first_of`).
    refused_by: Option<SocketAddr>,
    listed: bool,
}

/// One simulated process slot: its address is fixed; the process in it
/// may crash and be replaced by a new one (a new id).
pub(crate) struct Node {
    pub addr: SocketAddr,
    pub id: String,
    pub replica: Option<Replica>,
    pub paused: bool,
    /// Bumped at every restart: connections of an older process are dead.
    pub gen: u32,
    /// `-a` addresses.
    seeds: Vec<SocketAddr>,
    follow: Option<Follow>,
    reattach_at: Option<u64>,
    lost_members: attach::LostMembers,
    /// The replica's deadline as of its last output.
    deadline: Option<u64>,
    /// The earliest wake-up scheduled.
    wake_at: Option<u64>,
    /// Datagrams that arrived while paused, delivered when it resumes.
    held: Vec<(SocketAddr, Bytes)>,
    /// Server-side connection ids → connections.
    local: BTreeMap<ConnId, u64>,
    next_local: ConnId,
    /// Times it stepped down / was promoted.
    pub demotions: u32,
    pub promotions: u32,
    /// Its data directory, with `Timing::durable` (it outlives crashes).
    pub disk: MemoryDir,
    /// Votes and learned values of outputs whose records wait for a
    /// later sync (lazy votes, and what the node learned counting them):
    /// the oracle hears of them once they are synced, and a crash before
    /// that loses them, as it loses the records. Nothing depending on
    /// them has left the node meanwhile.
    unsynced_votes: Vec<(String, VoteRecord)>,
    unsynced_learned: Vec<(u64, Bytes)>,
}

/// Something due at a time.
enum Ev {
    Datagram {
        to: usize,
        from: SocketAddr,
        bytes: Bytes,
    },
    Flush {
        conn: u64,
        to_server: bool,
    },
    Wake(usize),
}

/// A simulated client's pending request.
#[derive(Debug, Clone)]
struct PendingOp {
    path: String,
    body: Bytes,
}

/// The simulated world; see the module doc.
pub(crate) struct World {
    pub now: u64,
    pub rng: SplitMix64,
    pub timing: Timing,
    pub nodes: Vec<Node>,
    /// `links[a][b]`: what `a` sends reaches `b`.
    pub links: Vec<Vec<bool>>,
    pub drop: f64,
    pub dup: f64,
    /// Chance that a node crashes after sending an output's early
    /// messages and before that output's sync (durable runs): what it
    /// sent early must not need what it then loses.
    pub torn_crash: f64,
    /// Those crashes, as fault-log lines (taken by the test).
    pub torn_log: Vec<String>,
    pub delay_max_ms: u64,
    queue: BinaryHeap<Reverse<(u64, u64)>>,
    events: BTreeMap<u64, Ev>,
    seq: u64,
    conns: BTreeMap<u64, Conn>,
    next_conn: u64,
    pub oracle: Oracle,
    /// Client requests in flight: (client, tag) → op.
    pending: BTreeMap<(usize, i32), PendingOp>,
    /// Each client's connection, by node.
    client_conns: BTreeMap<(usize, usize), u64>,
    next_tag: i32,
    /// Answers clients got: (client, tag) → response.
    pub answers: BTreeMap<(usize, i32), Response>,
    next_id: u32,
    trace: bool,
    /// The highest seqn each id voted at.
    voted_upto: BTreeMap<String, u64>,
}

impl World {
    /// A world of `n` process slots; slot 0 seeds a cluster, the others
    /// attach to it as slaves (no CAL slots yet besides slot 0's).
    pub(crate) fn new(seed: u64, n: usize, timing: Timing) -> World {
        let addrs: Vec<SocketAddr> = (0..n)
            .map(|i| SocketAddr::from(([127, 0, 0, 1], 9000 + i as u16)))
            .collect();
        let mut w = World {
            now: 0,
            rng: SplitMix64::new(seed),
            timing,
            nodes: Vec::new(),
            links: vec![vec![true; n]; n],
            drop: 0.0,
            dup: 0.0,
            torn_crash: 0.0,
            torn_log: Vec::new(),
            delay_max_ms: 2,
            queue: BinaryHeap::new(),
            events: BTreeMap::new(),
            seq: 0,
            conns: BTreeMap::new(),
            next_conn: 1,
            oracle: Oracle::new("N0", 50),
            pending: BTreeMap::new(),
            client_conns: BTreeMap::new(),
            next_tag: 1,
            answers: BTreeMap::new(),
            next_id: 0,
            trace: std::env::var("DOOZER_SIM_TRACE").is_ok(),
            voted_upto: BTreeMap::new(),
        };
        w.oracle = Oracle::new("N0", w.timing.alpha);
        if w.trace {
            let _ = env_logger::builder().is_test(true).try_init();
        }
        for addr in &addrs {
            // `-a`: every other member (a restarted node must find one).
            let seeds = addrs.iter().filter(|a| *a != addr).copied().collect();
            w.nodes.push(Node {
                addr: *addr,
                id: String::new(),
                replica: None,
                paused: false,
                gen: 0,
                seeds,
                follow: None,
                reattach_at: None,
                lost_members: attach::LostMembers::default(),
                deadline: None,
                wake_at: None,
                held: Vec::new(),
                local: BTreeMap::new(),
                next_local: 1,
                demotions: 0,
                promotions: 0,
                disk: MemoryDir::default(),
                unsynced_votes: Vec::new(),
                unsynced_learned: Vec::new(),
            });
        }
        for i in 0..n {
            w.boot(i);
        }
        w
    }

    /// Starts a fresh process in slot `i` (a new id): slot 0 of a new
    /// world seeds, everything else attaches.
    fn boot(&mut self, i: usize) {
        let id = format!("N{}", self.next_id);
        self.next_id += 1;
        let mut r = Replica::new(self.replica_config(&id));
        let _ = r.step(self.now, Input::FollowLost);
        self.nodes[i].disk = MemoryDir::default();
        self.new_process(i, &id);
        let node = &mut self.nodes[i];
        if i == 0 && node.gen == 1 {
            r.seed(
                "local",
                &NodeInfo {
                    id,
                    addr: node.addr.to_string(),
                    hostname: "sim".into(),
                    version: "0".into(),
                },
            );
            node.reattach_at = None;
        } else {
            r.start_following();
            node.reattach_at = Some(self.now);
        }
        node.replica = Some(r);
        self.iterate(i);
        self.wake_at(i, self.now);
    }

    /// The settings of a node with id `id`.
    fn replica_config(&mut self, id: &str) -> ReplicaConfig {
        let t = &self.timing;
        ReplicaConfig {
            self_id: id.to_string(),
            secrets: Secrets::default(),
            history_revs: t.history_revs,
            cluster: ClusterConfig {
                alpha: t.alpha,
                fill_ms: t.fill_ms,
                timeout_ms: t.timeout_ms,
                pulse_ms: t.pulse_ms,
                seed: self.rng.next_u64(),
            },
            durable: t.durable,
        }
    }

    /// Slot `i` holds a new process with id `id` (nothing of the old one
    /// runs).
    fn new_process(&mut self, i: usize, id: &str) {
        let node = &mut self.nodes[i];
        node.gen += 1;
        node.id = id.to_string();
        node.paused = false;
        node.follow = None;
        node.deadline = None;
        node.held.clear();
        node.local.clear();
    }

    /// Starts the process in slot `i` again from its data directory: same
    /// id, the store and acceptor state it had synced.
    fn recover(&mut self, i: usize) {
        let id = self.nodes[i].id.clone();
        let config = self.replica_config(&id);
        let disk = &self.nodes[i].disk;
        let r = match Replica::recover(config, disk.restored(), disk.records()) {
            Ok(r) => r,
            Err(e) => {
                self.oracle
                    .violations
                    .push(format!("{id} cannot recover from its disk: {e}"));
                return;
            }
        };
        self.new_process(i, &id);
        self.trace_line(i, &format!("recovered, a CAL: {}", r.is_cal()));
        self.nodes[i].reattach_at = (!r.is_cal()).then_some(self.now);
        self.nodes[i].replica = Some(r);
        self.iterate(i);
        self.wake_at(i, self.now);
    }

    fn info(&self, i: usize) -> NodeInfo {
        NodeInfo {
            id: self.nodes[i].id.clone(),
            addr: self.nodes[i].addr.to_string(),
            hostname: "sim".into(),
            version: "0".into(),
        }
    }

    fn slot_of(&self, addr: SocketAddr) -> Option<usize> {
        self.nodes.iter().position(|n| n.addr == addr)
    }

    fn up(&self, i: usize) -> bool {
        self.nodes[i].replica.is_some() && !self.nodes[i].paused
    }

    fn schedule(&mut self, at: u64, ev: Ev) {
        let k = self.seq;
        self.seq += 1;
        self.queue.push(Reverse((at, k)));
        self.events.insert(k, ev);
    }

    fn wake_at(&mut self, i: usize, at: u64) {
        let at = at.max(self.now);
        if self.nodes[i]
            .wake_at
            .is_some_and(|w| w <= at && w >= self.now)
        {
            return;
        }
        self.nodes[i].wake_at = Some(at);
        self.schedule(at, Ev::Wake(i));
    }

    fn delay(&mut self) -> u64 {
        1 + self.rng.below(self.delay_max_ms.max(1))
    }

    // ---- the node's loop ----

    /// Sends what an output lets leave before its sync, as the event loop
    /// sends it; true if the node then crashed, before the sync. The
    /// votes of that output are then lost (the oracle never hears of
    /// them), and what was sent or acknowledged early must not have
    /// needed them.
    fn leave_early(&mut self, i: usize, out: &mut Output) -> bool {
        let early = std::mem::take(&mut out.early_messages);
        let early_answers = std::mem::take(&mut out.early_responses);
        let torn = !(early.is_empty() && early_answers.is_empty()) && self.torn_now();
        for (to, msg) in early {
            let bytes: Bytes = msg.encode_to_vec().into();
            self.send_datagram(i, to, bytes);
        }
        for (local, resp) in early_answers {
            let Some(&c) = self.nodes[i].local.get(&local) else {
                continue;
            };
            // A crash right after: the worst case is that the client got
            // the answer (the kernel still sends what was written), so it
            // hears it now, before the crash resets the connection.
            match self.conns.get(&c).map(|c| c.client) {
                Some(End::Client(k)) if torn => self.client_answer(k, resp),
                _ => self.send_to_client(c, resp),
            }
        }
        if torn {
            self.torn_crash_now(i, "after its early messages, before its sync");
        }
        torn
    }

    /// Whether a node crashes at a torn moment now (`torn_crash` chance).
    fn torn_now(&mut self) -> bool {
        self.torn_crash > 0.0 && self.rng.chance(self.torn_crash)
    }

    /// Crashes node `i` at a torn moment, logged with `when`.
    fn torn_crash_now(&mut self, i: usize, when: &str) {
        self.torn_log
            .push(format!("{:7} crash {i} {when}", self.now));
        self.crash(i);
    }

    /// One loop iteration of node `i`: drain the replica's output and act
    /// on it as `crate::node` does.
    fn iterate(&mut self, i: usize) {
        if !self.up(i) {
            return;
        }
        let now = self.now;
        let mut out = Output::default();
        let Some(r) = self.nodes[i].replica.as_mut() else {
            return;
        };
        r.ready(now, &mut out);
        out.expand_copies();
        let trace = r.take_trace();
        let id = self.nodes[i].id.clone();
        if self.leave_early(i, &mut out) {
            return;
        }
        let fresh = trace.fresh_from;
        let votes = trace.votes.len();
        for (k, vote) in trace.votes.into_iter().enumerate() {
            if let Some((first, before)) = fresh {
                if k == before {
                    self.check_fresh(i, &id, first);
                }
            }
            self.nodes[i].unsynced_votes.push(vote);
        }
        if let Some((first, before)) = fresh {
            if before >= votes {
                self.check_fresh(i, &id, first);
            }
        }
        self.nodes[i].unsynced_learned.extend(trace.learned);
        // Persist, then send. Records may wait for a later output's
        // sync, as the event loop lets them.
        let synced = self.nodes[i].disk.persist(&mut out, true);
        if synced {
            if let Some(r) = self.nodes[i].replica.as_mut() {
                r.records_synced();
            }
            self.synced(i);
        }
        if self.timing.durable && self.rng.chance(0.01) {
            if let Some(job) = self.nodes[i]
                .replica
                .as_ref()
                .and_then(|r| r.snapshot_job())
            {
                self.nodes[i].disk.snapshot(job);
            }
        }
        for (to, msg) in out.messages {
            let bytes: Bytes = msg.encode_to_vec().into();
            self.send_datagram(i, to, bytes);
        }
        for (local, resp) in out.responses {
            if let Some(&c) = self.nodes[i].local.get(&local) {
                self.send_to_client(c, resp);
            }
        }
        // Records left waiting are lost if the node dies before the next
        // sync: now and then it does, at once.
        if !synced && self.torn_now() {
            self.torn_crash_now(i, "with records waiting for the next sync");
            return;
        }
        self.check_window(i);
        match out.role_change {
            Some(RoleChange::Promoted) => {
                self.nodes[i].promotions += 1;
                self.trace_line(i, "promoted");
                self.drop_follow(i);
                self.nodes[i].reattach_at = None;
            }
            Some(RoleChange::Demoted) => {
                self.nodes[i].demotions += 1;
                self.trace_line(i, "demoted");
                self.drop_follow(i);
                self.nodes[i].reattach_at = Some(now);
            }
            None => {}
        }
        if let Some(f) = &self.nodes[i].follow {
            if matches!(f.phase, Phase::Streaming) {
                let conn = f.conn;
                for r in out.follow_requests {
                    self.send_to_server(conn, r);
                }
            }
        }
        self.nodes[i].deadline = out.deadline_ms;
        self.follower_timers(i);
        if let Some(t) = self.next_wake(i) {
            self.wake_at(i, t);
        }
    }

    /// Node `i`'s votes and learned values up to now are on its disk:
    /// the oracle takes them.
    fn synced(&mut self, i: usize) {
        let id = self.nodes[i].id.clone();
        for (voter, v) in std::mem::take(&mut self.nodes[i].unsynced_votes) {
            let top = self.voted_upto.entry(voter.clone()).or_default();
            *top = (*top).max(v.seqn);
            self.oracle.voted(&voter, v);
        }
        for (seqn, value) in std::mem::take(&mut self.nodes[i].unsynced_learned) {
            self.oracle.learned(&id, seqn, value);
        }
    }

    /// An id never votes without the state it voted with before: a
    /// consensus state made afresh (on node `i`) must start after its
    /// last vote, synced or not.
    fn check_fresh(&mut self, i: usize, id: &str, first: u64) {
        let unsynced = self.nodes[i]
            .unsynced_votes
            .iter()
            .filter(|(voter, _)| voter == id)
            .map(|(_, v)| v.seqn)
            .max();
        let top = self.voted_upto.get(id).copied().max(unsynced);
        if let Some(v) = top.filter(|&v| v >= first) {
            self.oracle.violations.push(format!(
                "{id} took part in consensus from seqn {first} with no memory of its votes up to seqn {v}"
            ));
        }
    }

    /// Every CAL uses, for every seqn of its window, the set the log
    /// decides for that seqn (also right after a copy).
    fn check_window(&mut self, i: usize) {
        let Some(r) = self.nodes[i].replica.as_ref() else {
            return;
        };
        for (seqn, set) in r.window_sets() {
            if let Some(truth) = self.oracle.set_of(seqn) {
                if *truth != set {
                    let v = format!(
                        "{} uses CALs {:?} for seqn {seqn}; the log says {:?}",
                        self.nodes[i].id,
                        set.iter().collect::<Vec<_>>(),
                        truth.iter().collect::<Vec<_>>()
                    );
                    self.oracle.violations.push(v);
                    return;
                }
            }
        }
    }

    /// When node `i` next has something to do without input.
    fn next_wake(&self, i: usize) -> Option<u64> {
        let n = &self.nodes[i];
        let idle = self.follow_idle_ms();
        let follow = n.follow.as_ref().map(|f| match f.phase {
            Phase::Streaming => f.last_data + idle,
            _ => f.step_deadline,
        });
        [n.deadline, n.reattach_at, follow]
            .into_iter()
            .flatten()
            .min()
    }

    fn follow_idle_ms(&self) -> u64 {
        FOLLOW_IDLE_MIN_MS.max(self.timing.pulse_ms * 5)
    }

    /// Gives up a silent stream or a handshake step without an answer;
    /// starts an attach attempt that is due.
    fn follower_timers(&mut self, i: usize) {
        let now = self.now;
        let idle = self.follow_idle_ms();
        let expired = self.nodes[i]
            .follow
            .as_ref()
            .is_some_and(|f| match f.phase {
                Phase::Streaming => now >= f.last_data + idle,
                _ => now >= f.step_deadline,
            });
        if expired {
            let streaming = self.nodes[i]
                .follow
                .as_ref()
                .is_some_and(|f| matches!(f.phase, Phase::Streaming));
            let writing = self.nodes[i].follow.as_ref().is_some_and(|f| {
                matches!(f.phase, Phase::Files(_, true)) && f.register == attach::Register::Files
            });
            if streaming {
                self.follow_broken(i, "nothing received for a while");
            } else if writing {
                // As `Attach::registered_handshake`: the same member
                // again, without writing.
                self.trace_line(i, "attach: write not decided; again without");
                let member = self.nodes[i].follow.as_ref().map(|f| f.member);
                let addr = member.and_then(|m| self.nodes.get(m)).map(|n| n.addr);
                if let Some(conn) = self.nodes[i].follow.as_ref().map(|f| f.conn) {
                    self.close(conn);
                }
                if let (Some(f), Some(addr)) = (self.nodes[i].follow.as_mut(), addr) {
                    f.register = attach::Register::Skip;
                    f.rest.insert(0, addr);
                }
                self.try_next(i);
            } else {
                self.next_candidate(i, "no answer");
            }
        }
        if self.nodes[i].reattach_at.is_some_and(|t| t <= now) && self.nodes[i].follow.is_none() {
            self.nodes[i].reattach_at = None;
            self.start_attach(i);
        }
    }

    fn trace_line(&self, i: usize, what: &str) {
        if self.trace {
            eprintln!("{:7} {} {what}", self.now, self.nodes[i].id);
        }
    }

    // ---- attaching ----

    /// Starts trying the candidates to follow, as `Follower::reattach`.
    fn start_attach(&mut self, i: usize) {
        let Some(r) = self.nodes[i].replica.as_ref() else {
            return;
        };
        let mut candidates = attach::candidates(r, &self.nodes[i].id, &self.nodes[i].seeds);
        self.nodes[i].lost_members.order(&mut candidates);
        let resume = Resume::of(r);
        let listed = r.listed_as_cal();
        self.nodes[i].follow = Some(Follow {
            conn: 0,
            member: usize::MAX,
            phase: Phase::Name,
            rest: candidates,
            resume,
            step_deadline: self.now,
            last_data: self.now,
            register: attach::Register::Files,
            refused_by: None,
            listed,
        });
        self.try_next(i);
    }

    /// Connects to the next candidate; with none left, waits and starts
    /// over.
    fn try_next(&mut self, i: usize) {
        loop {
            let Some(f) = self.nodes[i].follow.as_mut() else {
                return;
            };
            if f.rest.is_empty() {
                // Nobody took the files and one refused them: once more
                // through it without writing, if listed as a CAL.
                if let Some(addr) = f.refused_by.take().filter(|_| f.listed) {
                    self.trace_line(i, "attach: files refused everywhere; again without");
                    if let Some(f) = self.nodes[i].follow.as_mut() {
                        f.rest.push(addr);
                        f.register = attach::Register::Skip;
                    }
                    continue;
                }
                self.nodes[i].follow = None;
                self.nodes[i].reattach_at = Some(self.now + REATTACH_INTERVAL_MS);
                return;
            }
            let addr = f.rest.remove(0);
            let Some(j) = self.slot_of(addr) else {
                continue;
            };
            if self.nodes[j].replica.is_none() || j == i {
                continue; // connection refused
            }
            let conn = self.connect(End::Follower(i), j);
            self.trace_line(i, &format!("attaching to slot {j}"));
            let name = Request {
                tag: Some(HANDSHAKE_TAG),
                verb: Some(Verb::Get as i32),
                path: Some("/ctl/name".into()),
                ..Default::default()
            };
            let now = self.now;
            if let Some(f) = self.nodes[i].follow.as_mut() {
                f.conn = conn;
                f.member = j;
                f.phase = Phase::Name;
                f.step_deadline = now + STEP_TIMEOUT_MS;
            }
            self.send_to_server(conn, name);
            return;
        }
    }

    /// The current candidate failed the handshake: close, try the next.
    fn next_candidate(&mut self, i: usize, why: &str) {
        if self.trace {
            eprintln!("{:7} {} attach: {why}", self.now, self.nodes[i].id);
        }
        if let Some(f) = self.nodes[i].follow.as_mut() {
            f.register = attach::Register::Files;
            let conn = f.conn;
            self.close(conn);
        }
        self.try_next(i);
    }

    /// A response on node `i`'s follow connection.
    fn follow_frame(&mut self, i: usize, resp: Response) {
        let now = self.now;
        if self.trace {
            let phase = self.nodes[i]
                .follow
                .as_ref()
                .map(|f| format!("{:?}", f.phase));
            eprintln!(
                "{now:7} {} follow frame in {phase:?}: flags {:?} rev {:?} err {:?}",
                self.nodes[i].id, resp.flags, resp.rev, resp.err_code
            );
        }
        let Some(f) = self.nodes[i].follow.as_mut() else {
            return;
        };
        f.last_data = now;
        match f.phase.clone() {
            Phase::Name => {
                if resp.err_code.is_some() || resp.value.as_deref() != Some(&b"local"[..]) {
                    return self.next_candidate(i, "wrong cluster or refused");
                }
                self.send_file(i, 0, None);
            }
            Phase::Files(k, set) => {
                if resp.err_code.is_some() {
                    let readonly = resp.err_code == Some(doozer_proto::ErrCode::Readonly as i32);
                    if set && readonly && f.refused_by.is_none() {
                        let member = f.member;
                        let addr = self.nodes.get(member).map(|n| n.addr);
                        if let Some(f) = self.nodes[i].follow.as_mut() {
                            f.refused_by = addr;
                        }
                    }
                    return self.next_candidate(i, "node file refused");
                }
                match set {
                    false => self.send_file(i, k, resp.value),
                    true => self.send_file(i, k + 1, None),
                }
            }
            Phase::Streaming => {
                let Some(r) = self.nodes[i].replica.as_mut() else {
                    return;
                };
                if r.is_cal() {
                    return; // promoted: the rest of the stream is not needed
                }
                if let Err(e) = r.step(now, Input::Follow(resp)) {
                    self.follow_broken(i, &e.to_string());
                }
            }
        }
    }

    /// Reads the `k`-th node file (`found`: not yet), writes it if it
    /// differs from `found`, or sends FOLLOW after the last one, as
    /// `attach.rs` does.
    fn send_file(&mut self, i: usize, k: usize, found: Option<Bytes>) {
        let register = self.nodes[i].follow.as_ref().map(|f| f.register);
        let files = match register.unwrap_or(attach::Register::Files) {
            attach::Register::Files => attach::node_files(&self.info(i)),
            attach::Register::Skip => Vec::new(),
        };
        let now = self.now;
        let Some(f) = self.nodes[i].follow.as_mut() else {
            return;
        };
        let conn = f.conn;
        f.step_deadline = now + STEP_TIMEOUT_MS;
        let req = match (files.get(k), found) {
            (Some((path, _)), None) => {
                f.phase = Phase::Files(k, false);
                Request {
                    tag: Some(HANDSHAKE_TAG),
                    verb: Some(Verb::Get as i32),
                    path: Some(path.clone()),
                    ..Default::default()
                }
            }
            (Some((_, body)), Some(found)) if found[..] == *body.as_bytes() => {
                return self.send_file(i, k + 1, None);
            }
            (Some((path, body)), Some(_)) => {
                f.phase = Phase::Files(k, true);
                Request {
                    tag: Some(HANDSHAKE_TAG),
                    verb: Some(Verb::Set as i32),
                    path: Some(path.clone()),
                    value: Some(Bytes::from(body.clone())),
                    rev: Some(doozer_proto::rev::CLOBBER),
                    ..Default::default()
                }
            }
            (None, _) => {
                f.phase = Phase::Streaming;
                let follow = attach::follow_request(f.resume, Some(HANDSHAKE_TAG));
                if let Some(r) = self.nodes[i].replica.as_mut() {
                    // A fresh stream: copy or READY first.
                    let _ = r.step(now, Input::FollowLost);
                }
                follow
            }
        };
        self.send_to_server(conn, req);
    }

    fn follow_broken(&mut self, i: usize, why: &str) {
        self.trace_line(i, &format!("lost the followed node ({why})"));
        let member = self.nodes[i].follow.as_ref().map(|f| f.member);
        if let Some(a) = member.and_then(|m| self.nodes.get(m)).map(|n| n.addr) {
            self.nodes[i].lost_members.note(a);
        }
        self.drop_follow(i);
        if let Some(r) = self.nodes[i].replica.as_mut() {
            let _ = r.step(self.now, Input::FollowLost);
        }
        self.nodes[i].reattach_at = Some(self.now);
    }

    fn drop_follow(&mut self, i: usize) {
        if let Some(f) = self.nodes[i].follow.take() {
            self.close(f.conn);
        }
    }

    // ---- TCP ----

    fn connect(&mut self, client: End, server: usize) -> u64 {
        let id = self.next_conn;
        self.next_conn += 1;
        let local = self.nodes[server].next_local;
        self.nodes[server].next_local += 1;
        self.nodes[server].local.insert(local, id);
        self.conns.insert(
            id,
            Conn {
                client,
                server,
                server_gen: self.nodes[server].gen,
                local,
                to_server: VecDeque::new(),
                to_client: VecDeque::new(),
                last_to_server: self.now,
                last_to_client: self.now,
                flushing: [false; 2],
                closed: false,
            },
        );
        if let Some(r) = self.nodes[server].replica.as_mut() {
            let _ = r.step(self.now, Input::Connect(local));
        }
        id
    }

    /// Closes a connection; the server's replica forgets it at once (the
    /// close reaches it when the link allows, but nothing is answered on
    /// it any more either way).
    fn close(&mut self, conn: u64) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if c.closed {
            return;
        }
        c.closed = true;
        let (server, local, gen) = (c.server, c.local, c.server_gen);
        if self.nodes[server].gen == gen {
            self.nodes[server].local.remove(&local);
            if let Some(r) = self.nodes[server].replica.as_mut() {
                let _ = r.step(self.now, Input::Disconnect(local));
            }
        }
        self.conns.remove(&conn);
    }

    fn send_to_server(&mut self, conn: u64, req: Request) {
        let d = self.delay();
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let at = (self.now + d).max(c.last_to_server);
        c.last_to_server = at;
        c.to_server.push_back((at, req));
        if !c.flushing[0] {
            c.flushing[0] = true;
            self.schedule(
                at,
                Ev::Flush {
                    conn,
                    to_server: true,
                },
            );
        }
    }

    fn send_to_client(&mut self, conn: u64, resp: Response) {
        let d = self.delay();
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let at = (self.now + d).max(c.last_to_client);
        c.last_to_client = at;
        c.to_client.push_back((at, resp));
        if !c.flushing[1] {
            c.flushing[1] = true;
            self.schedule(
                at,
                Ev::Flush {
                    conn,
                    to_server: false,
                },
            );
        }
    }

    /// The node at the client end of a connection, if it is one.
    fn client_node(end: End) -> Option<usize> {
        match end {
            End::Follower(i) => Some(i),
            End::Client(_) => None,
        }
    }

    /// Delivers what is due on one direction of a connection, if the
    /// link and the receiving process allow (TCP retries until they do).
    fn flush(&mut self, conn: u64, to_server: bool) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.flushing[usize::from(!to_server)] = false;
        let (server, client) = (c.server, c.client);
        let server_alive =
            self.nodes[server].gen == c.server_gen && self.nodes[server].replica.is_some();
        if !server_alive {
            // The server process died: the connection is reset.
            return self.reset(conn);
        }
        let peer = Self::client_node(client);
        let (from, to) = if to_server {
            (peer, Some(server))
        } else {
            (Some(server), peer)
        };
        let link = match (from, to) {
            (Some(a), Some(b)) => self.links[a][b] && self.links[b][a],
            _ => true,
        };
        let receiver_paused = to.is_some_and(|t| self.nodes[t].paused);
        if !link || receiver_paused {
            let at = self.now + 20;
            if let Some(c) = self.conns.get_mut(&conn) {
                c.flushing[usize::from(!to_server)] = true;
            }
            return self.schedule(at, Ev::Flush { conn, to_server });
        }
        loop {
            let Some(c) = self.conns.get_mut(&conn) else {
                return;
            };
            if to_server {
                let Some(&(at, _)) = c.to_server.front() else {
                    break;
                };
                if at > self.now {
                    c.flushing[0] = true;
                    self.schedule(at, Ev::Flush { conn, to_server });
                    break;
                }
                let Some((_, req)) = c.to_server.pop_front() else {
                    break;
                };
                let local = c.local;
                if let Some(r) = self.nodes[server].replica.as_mut() {
                    let _ = r.step(self.now, Input::Request(local, req));
                }
                self.iterate(server);
            } else {
                let Some(&(at, _)) = c.to_client.front() else {
                    break;
                };
                if at > self.now {
                    c.flushing[1] = true;
                    self.schedule(at, Ev::Flush { conn, to_server });
                    break;
                }
                let Some((_, resp)) = c.to_client.pop_front() else {
                    break;
                };
                match client {
                    End::Follower(i) => {
                        if self.nodes[i].follow.as_ref().map(|f| f.conn) == Some(conn) {
                            self.follow_frame(i, resp);
                            self.iterate(i);
                        }
                    }
                    End::Client(k) => self.client_answer(k, resp),
                }
            }
        }
    }

    /// A connection whose server died: its follower finds out.
    fn reset(&mut self, conn: u64) {
        let Some(c) = self.conns.remove(&conn) else {
            return;
        };
        if let End::Follower(i) = c.client {
            if self.nodes[i].follow.as_ref().map(|f| f.conn) == Some(conn) {
                let streaming = self.nodes[i]
                    .follow
                    .as_ref()
                    .is_some_and(|f| matches!(f.phase, Phase::Streaming));
                if streaming {
                    self.follow_broken(i, "connection reset");
                } else {
                    self.next_candidate(i, "connection reset");
                }
                self.iterate(i);
            }
        }
    }

    // ---- UDP ----

    fn send_datagram(&mut self, from: usize, to: SocketAddr, bytes: Bytes) {
        let Some(j) = self.slot_of(to) else {
            return;
        };
        if !self.links[from][j] {
            return;
        }
        let copies = if self.rng.chance(self.drop) {
            0
        } else if self.rng.chance(self.dup) {
            2
        } else {
            1
        };
        let src = self.nodes[from].addr;
        for _ in 0..copies {
            let at = self.now + self.delay();
            self.schedule(
                at,
                Ev::Datagram {
                    to: j,
                    from: src,
                    bytes: bytes.clone(),
                },
            );
        }
    }

    fn deliver_datagram(&mut self, to: usize, from: SocketAddr, bytes: Bytes) {
        if self.nodes[to].replica.is_none() {
            return;
        }
        if self.nodes[to].paused {
            // The socket buffer keeps it until the process runs again.
            self.nodes[to].held.push((from, bytes));
            return;
        }
        if self.trace && std::env::var("DOOZER_SIM_TRACE_PEER").is_ok() {
            if let Ok(m) = doozer_proto::peer::PeerMsg::decode(&bytes[..]) {
                eprintln!(
                    "{:7} {} <- {} upto {} kept {} prep {:?} prom {} acc {:?} votes {} learned {:?} skips {} fetch {:?} silent {:?}",
                    self.now,
                    self.nodes[to].id,
                    m.sender,
                    m.learned_upto,
                    m.oldest_kept,
                    m.prepares.iter().map(|p| (p.round, p.seqns.len(), p.seqns.first().copied())).collect::<Vec<_>>(),
                    m.promises.len(),
                    m.accepts.iter().map(|a| a.seqn).collect::<Vec<_>>(),
                    m.votes.len(),
                    m.learned.iter().map(|l| l.seqn).collect::<Vec<_>>(),
                    m.skips.len(),
                    m.fetch_from,
                    m.silent
                );
            }
        }
        if let Some(r) = self.nodes[to].replica.as_mut() {
            let _ = r.step(self.now, Input::Peer(from, bytes));
        }
        self.iterate(to);
    }

    // ---- running ----

    /// Runs every event due up to `end`.
    pub(crate) fn run_until(&mut self, end: u64) {
        while let Some(&Reverse((at, k))) = self.queue.peek() {
            if at > end {
                break;
            }
            self.queue.pop();
            self.now = self.now.max(at);
            let Some(ev) = self.events.remove(&k) else {
                continue;
            };
            match ev {
                Ev::Datagram { to, from, bytes } => self.deliver_datagram(to, from, bytes),
                Ev::Flush { conn, to_server } => self.flush(conn, to_server),
                Ev::Wake(i) => {
                    if self.nodes[i].wake_at == Some(at) {
                        self.nodes[i].wake_at = None;
                    }
                    self.iterate(i);
                }
            }
        }
        self.now = self.now.max(end);
    }

    /// Runs for `ms` of simulated time.
    pub(crate) fn run(&mut self, ms: u64) {
        let end = self.now + ms;
        self.run_until(end);
    }

    /// Runs until `f` holds, at most `limit_ms`; whether it held.
    pub(crate) fn run_until_true(&mut self, limit_ms: u64, f: impl Fn(&World) -> bool) -> bool {
        let end = self.now + limit_ms;
        while self.now < end {
            if f(self) {
                return true;
            }
            self.run(10);
        }
        f(self)
    }

    // ---- faults ----

    /// Cuts what `a` sends to `b` (one way).
    pub(crate) fn cut_one_way(&mut self, a: usize, b: usize) {
        self.links[a][b] = false;
    }

    /// Cuts the link between `a` and `b` both ways.
    pub(crate) fn cut(&mut self, a: usize, b: usize) {
        self.links[a][b] = false;
        self.links[b][a] = false;
    }

    /// Splits the nodes into groups: links only within a group.
    pub(crate) fn partition(&mut self, groups: &[&[usize]]) {
        let n = self.nodes.len();
        let group_of = |i: usize| groups.iter().position(|g| g.contains(&i));
        for a in 0..n {
            for b in 0..n {
                self.links[a][b] = a == b || (group_of(a).is_some() && group_of(a) == group_of(b));
            }
        }
    }

    /// Every link works again.
    pub(crate) fn heal(&mut self) {
        for row in &mut self.links {
            row.iter_mut().for_each(|l| *l = true);
        }
    }

    /// SIGSTOP.
    pub(crate) fn pause(&mut self, i: usize) {
        self.nodes[i].paused = true;
    }

    /// SIGCONT: datagrams held in the socket buffer arrive now.
    pub(crate) fn resume(&mut self, i: usize) {
        if !self.nodes[i].paused {
            return;
        }
        self.nodes[i].paused = false;
        let held = std::mem::take(&mut self.nodes[i].held);
        for (from, bytes) in held {
            if let Some(r) = self.nodes[i].replica.as_mut() {
                let _ = r.step(self.now, Input::Peer(from, bytes));
            }
        }
        self.iterate(i);
        self.wake_at(i, self.now);
    }

    /// SIGKILL: the process and everything in its memory are gone.
    pub(crate) fn crash(&mut self, i: usize) {
        self.trace_line(i, "crashed");
        self.nodes[i].replica = None;
        self.nodes[i].disk.crash();
        self.nodes[i].unsynced_votes.clear();
        self.nodes[i].unsynced_learned.clear();
        self.nodes[i].paused = false;
        self.nodes[i].follow = None;
        self.nodes[i].held.clear();
        let dead: Vec<u64> = self
            .conns
            .iter()
            .filter(|(_, c)| {
                c.client == End::Follower(i) || (c.server == i && c.server_gen == self.nodes[i].gen)
            })
            .map(|(k, _)| *k)
            .collect();
        for conn in dead {
            let Some(c) = self.conns.get(&conn) else {
                continue;
            };
            if c.server == i {
                self.reset(conn);
            } else {
                self.close(conn);
            }
        }
    }

    /// Starts a new process in slot `i`: from its data directory (same
    /// id) when it has one, else a new id with an empty store, which
    /// attaches to the cluster as a slave.
    pub(crate) fn restart(&mut self, i: usize) {
        if self.nodes[i].replica.is_some() {
            self.crash(i);
        }
        if self.timing.durable && !self.nodes[i].disk.is_empty() {
            self.recover(i);
        } else {
            self.boot(i);
        }
    }

    /// Starts a new process in slot `i` whose data directory was lost:
    /// a new id.
    pub(crate) fn restart_lost_disk(&mut self, i: usize) {
        if self.nodes[i].replica.is_some() {
            self.crash(i);
        }
        self.boot(i);
    }

    // ---- clients ----

    /// Client `k` sends `req` to node `i` (on its connection there).
    pub(crate) fn request(&mut self, k: usize, i: usize, mut req: Request) -> Option<i32> {
        self.nodes[i].replica.as_ref()?;
        let conn = match self.client_conns.get(&(k, i)) {
            Some(&c) if self.conns.contains_key(&c) => c,
            _ => {
                let c = self.connect(End::Client(k), i);
                self.client_conns.insert((k, i), c);
                c
            }
        };
        let tag = self.next_tag;
        self.next_tag += 1;
        req.tag = Some(tag);
        if req.verb == Some(Verb::Set as i32) {
            self.pending.insert(
                (k, tag),
                PendingOp {
                    path: req.path.clone().unwrap_or_default(),
                    body: req.value.clone().unwrap_or_default(),
                },
            );
        }
        self.send_to_server(conn, req);
        Some(tag)
    }

    /// Client `k` writes `body` to `path` through node `i` (blind).
    pub(crate) fn set(&mut self, k: usize, i: usize, path: &str, body: &str) -> Option<i32> {
        let req = Request {
            verb: Some(Verb::Set as i32),
            path: Some(path.into()),
            rev: Some(-1),
            value: Some(Bytes::from(body.to_string())),
            ..Default::default()
        };
        self.request(k, i, req)
    }

    fn client_answer(&mut self, k: usize, resp: Response) {
        let Some(tag) = resp.tag else {
            return;
        };
        if let Some(op) = self.pending.remove(&(k, tag)) {
            if let (None, Some(rev)) = (resp.err_code, resp.rev) {
                self.oracle.acked(rev, &op.path, op.body);
            }
        }
        self.answers.insert((k, tag), resp);
    }

    // ---- views ----

    /// Whether node `i` runs and is a CAL.
    pub(crate) fn is_cal(&self, i: usize) -> bool {
        self.nodes[i].replica.as_ref().is_some_and(|r| r.is_cal())
    }

    /// Node `i`'s store head rev.
    pub(crate) fn rev(&self, i: usize) -> i64 {
        self.nodes[i]
            .replica
            .as_ref()
            .map_or(-1, |r| r.store().rev())
    }

    /// The bodies of `/ctl/cal/*` on node `i`.
    pub(crate) fn slots(&self, i: usize) -> Vec<String> {
        let Some(r) = self.nodes[i].replica.as_ref() else {
            return Vec::new();
        };
        crate::cluster::slots(r.store().head())
            .into_iter()
            .map(|s| s.id)
            .collect()
    }

    /// Live (running, not paused) slots.
    pub(crate) fn live(&self) -> Vec<usize> {
        (0..self.nodes.len()).filter(|&i| self.up(i)).collect()
    }
}
