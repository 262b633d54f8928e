//! Deterministic simulation of the consensus core (docs/architecture.md, "Determinism and testing").
//!
//! A run is fully determined by its seed: the CAL count (1, 3 or 5), the
//! network's behaviour (drops, duplicates, delays and so reordering,
//! partitions and heals), node pauses and crashes (a crash is permanent:
//! acceptor state is not durable, so a minority at most crashes), and
//! clients proposing unique values at random live nodes. Faults stop at
//! `FAULT_MS`; the run then must finish within `RECOVER_MS`.
//!
//! Checked on every learned value (SAFETY): all nodes learn the same value
//! per seqn, each node applies seqns strictly in order (so logs are
//! prefixes of one another), a client value is in the log at most once, and
//! an acknowledgement (a learned ProposalId) names the value proposed.
//! Checked at the end (PROGRESS): every value proposed at a node that did
//! not crash is acknowledged, and all such nodes hold the same log.
//!
//! `DOOZER_SIM_SEEDS=N` runs N seeds; `DOOZER_SIM_SEED=S` replays one.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use bytes::Bytes;
use doozer_proto::peer::{Accept, Learned, PeerMsg, Prepare, Vote};

use super::*;
use paxos::HISTORY_SLACK;

const NOP: &[u8] = b"nop:";
const FAULT_MS: u64 = 1_500;
const RECOVER_MS: u64 = 30_000;
const SEEDS_DEFAULT: u64 = 2_500;

fn ids(n: usize) -> Vec<NodeId> {
    (0..n).map(|i| format!("n{i}")).collect()
}

struct Node {
    id: NodeId,
    px: Paxos,
    cals: CalSet,
    log: Vec<Bytes>,
    crashed: bool,
    paused: bool,
    /// Touched since its Ready was last drained.
    dirty: bool,
    /// `px.next_deadline()` as of the last drain.
    deadline: Option<u64>,
}

struct Proposal {
    node: usize,
    value: Bytes,
    acked: Option<Seqn>,
}

/// The network: messages in flight, ordered by delivery time.
struct Net {
    queue: BinaryHeap<Reverse<(u64, u64)>>,
    msgs: BTreeMap<u64, (usize, usize, PeerMsg)>,
    next: u64,
    drop: f64,
    dup: f64,
    delay_max_ms: u64,
    /// Partition group of each node; messages cross no group boundary.
    group: Vec<u32>,
    /// Extra delay of every message from or to each node (a slow link).
    slow_ms: Vec<u64>,
}

/// One simulation run.
pub(super) struct Sim {
    rng: SplitMix64,
    now: u64,
    nodes: Vec<Node>,
    net: Net,
    chosen: Vec<Option<Bytes>>,
    /// Where each client value was chosen.
    value_seqn: BTreeMap<Bytes, Seqn>,
    proposals: Vec<Proposal>,
    by_pid: BTreeMap<(usize, ProposalId), usize>,
    log_trace: bool,
}

impl Sim {
    pub(super) fn new(seed: u64, n: usize, fill_ms: u64) -> Sim {
        Sim::with_alpha(seed, n, fill_ms, 50)
    }

    pub(super) fn with_alpha(seed: u64, n: usize, fill_ms: u64, alpha: u64) -> Sim {
        let cals = CalSet::new(ids(n)).expect("valid ids");
        let nodes = ids(n)
            .into_iter()
            .enumerate()
            .map(|(i, id)| {
                let mut cfg = Config::new(id.clone(), Bytes::from_static(NOP));
                cfg.fill_ms = fill_ms;
                cfg.alpha = alpha;
                cfg.round_ms = 30;
                cfg.round_max_ms = 1_000;
                cfg.history_max = 100_000;
                Node {
                    id,
                    px: Paxos::new(cfg, 1, cals.clone(), 0, seed ^ ((i as u64 + 1) * 0x9e37)),
                    cals: cals.clone(),
                    log: Vec::new(),
                    crashed: false,
                    paused: false,
                    dirty: true,
                    deadline: None,
                }
            })
            .collect();
        Sim {
            rng: SplitMix64::new(seed),
            now: 0,
            nodes,
            net: Net {
                queue: BinaryHeap::new(),
                msgs: BTreeMap::new(),
                next: 0,
                drop: 0.0,
                dup: 0.0,
                delay_max_ms: 5,
                group: vec![0; n],
                slow_ms: vec![0; n],
            },
            chosen: Vec::new(),
            value_seqn: BTreeMap::new(),
            proposals: Vec::new(),
            by_pid: BTreeMap::new(),
            log_trace: std::env::var("DOOZER_SIM_TRACE").is_ok(),
        }
    }

    fn up(&self, i: usize) -> bool {
        !self.nodes[i].crashed && !self.nodes[i].paused
    }

    pub(super) fn propose_at(&mut self, node: usize, value: Bytes) {
        self.nodes[node].dirty = true;
        let pid = self.nodes[node].px.propose(value.clone());
        self.by_pid.insert((node, pid), self.proposals.len());
        self.proposals.push(Proposal {
            node,
            value,
            acked: None,
        });
    }

    /// Drains every node's Ready until nothing is left: sends messages,
    /// applies learned values (checking safety) and extends windows.
    fn drain(&mut self) -> Result<(), String> {
        loop {
            let mut busy = false;
            for i in 0..self.nodes.len() {
                if self.nodes[i].crashed || !self.nodes[i].dirty {
                    continue;
                }
                self.nodes[i].dirty = false;
                let rd = self.nodes[i].px.ready();
                self.nodes[i].deadline = self.nodes[i].px.next_deadline();
                busy |= !rd.messages.is_empty() || !rd.learned.is_empty();
                for (to, msg) in rd.messages {
                    let Some(j) = self.nodes.iter().position(|n| n.id == to) else {
                        return Err(format!("n{i} sent to unknown {to}"));
                    };
                    self.send(i, j, msg);
                }
                for (s, v, pid) in rd.learned {
                    self.apply(i, s, v, pid)?;
                }
            }
            if !busy {
                return Ok(());
            }
        }
    }

    fn send(&mut self, from: usize, to: usize, msg: PeerMsg) {
        let copies = if self.rng.chance(self.net.drop) {
            0
        } else if self.rng.chance(self.net.dup) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let slow = self.net.slow_ms[from] + self.net.slow_ms[to];
            let at = self.now + 1 + self.rng.below(self.net.delay_max_ms) + slow;
            let k = self.net.next;
            self.net.next += 1;
            self.net.queue.push(Reverse((at, k)));
            self.net.msgs.insert(k, (from, to, msg.clone()));
        }
    }

    fn apply(
        &mut self,
        i: usize,
        s: Seqn,
        v: Bytes,
        pid: Option<ProposalId>,
    ) -> Result<(), String> {
        let node = &mut self.nodes[i];
        if s != node.log.len() as u64 + 1 {
            return Err(format!("n{i} learned seqn {s} after {}", node.log.len()));
        }
        node.log.push(v.clone());
        node.dirty = true;
        let cals = node.cals.clone();
        node.px.set_cals(s, cals);
        if self.log_trace {
            eprintln!("{:6} n{i} learned {s} = {:?} {:?}", self.now, v, pid);
        }
        let idx = (s - 1) as usize;
        if self.chosen.len() <= idx {
            self.chosen.resize(idx + 1, None);
        }
        match &self.chosen[idx] {
            Some(c) if *c != v => {
                return Err(format!("seqn {s}: n{i} learned {v:?}, another node {c:?}"));
            }
            Some(_) => {}
            None => {
                if v != NOP {
                    if let Some(t) = self.value_seqn.insert(v.clone(), s) {
                        return Err(format!("value {v:?} chosen at seqns {t} and {s}"));
                    }
                }
                self.chosen[idx] = Some(v.clone());
            }
        }
        if let Some(pid) = pid {
            let Some(&p) = self.by_pid.get(&(i, pid)) else {
                return Err(format!("n{i} acked unknown proposal {pid:?}"));
            };
            let prop = &mut self.proposals[p];
            if prop.value != v {
                return Err(format!(
                    "n{i} acked {pid:?} at {s} with {v:?}, proposed {:?}",
                    prop.value
                ));
            }
            if let Some(t) = prop.acked {
                return Err(format!("n{i} acked {pid:?} twice, at {t} and {s}"));
            }
            prop.acked = Some(s);
        }
        Ok(())
    }

    /// Delivers messages due now, ticks nodes whose deadline passed.
    fn step_time(&mut self) -> Result<(), String> {
        while let Some(&Reverse((at, k))) = self.net.queue.peek() {
            if at > self.now {
                break;
            }
            self.net.queue.pop();
            let Some((from, to, msg)) = self.net.msgs.remove(&k) else {
                continue;
            };
            if !self.up(to) || self.net.group[from] != self.net.group[to] {
                continue; // a stopped process or a cut link loses it
            }
            let from_id = self.nodes[from].id.clone();
            self.nodes[to].dirty = true;
            self.nodes[to].px.step(&from_id, msg, self.now);
            self.drain()?;
        }
        for i in 0..self.nodes.len() {
            if self.up(i) && self.nodes[i].deadline.is_some_and(|d| d <= self.now) {
                self.nodes[i].dirty = true;
                self.nodes[i].px.tick(self.now);
            }
        }
        self.drain()
    }

    /// The next time anything happens, at most `limit`.
    fn next_time(&self, limit: u64) -> u64 {
        let mut t = limit;
        if let Some(Reverse((at, _))) = self.net.queue.peek() {
            t = t.min(*at);
        }
        for (i, n) in self.nodes.iter().enumerate() {
            if self.up(i) {
                if let Some(d) = n.deadline {
                    t = t.min(d);
                }
            }
        }
        // A deadline still due after its tick would spin; move on anyway.
        t.max(self.now + 1)
    }

    fn run_until(&mut self, end: u64) -> Result<(), String> {
        while self.now < end {
            self.now = self.next_time(end);
            self.step_time()?;
        }
        Ok(())
    }

    /// Runs `ms` of simulated time from now.
    fn run_for(&mut self, ms: u64) -> Result<(), String> {
        self.run_until(self.now + ms)
    }

    fn live(&self) -> Vec<usize> {
        (0..self.nodes.len()).filter(|&i| self.up(i)).collect()
    }

    /// True when every proposal at a surviving node is acknowledged and
    /// all surviving nodes hold the same log.
    fn settled(&self) -> bool {
        let alive: Vec<&Node> = self.nodes.iter().filter(|n| !n.crashed).collect();
        let acked = self
            .proposals
            .iter()
            .all(|p| p.acked.is_some() || self.nodes[p.node].crashed);
        acked && alive.windows(2).all(|w| w[0].log.len() == w[1].log.len())
    }

    fn progress_report(&self) -> String {
        let pending: Vec<String> = self
            .proposals
            .iter()
            .filter(|p| p.acked.is_none() && !self.nodes[p.node].crashed)
            .map(|p| format!("{:?}@n{}", p.value, p.node))
            .collect();
        let logs: Vec<String> = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                format!(
                    "n{i}{}: applied {} queued {} stats {:?}",
                    if n.crashed { " (crashed)" } else { "" },
                    n.log.len(),
                    n.px.queued(),
                    n.px.stats()
                )
            })
            .collect();
        format!("unacknowledged {pending:?}\n{}", logs.join("\n"))
    }
}

/// One randomized run; `Err` describes the violation.
fn run_seed(seed: u64) -> Result<(), String> {
    let mut rng = SplitMix64::new(seed.wrapping_mul(0x2545_f491_4f6c_dd1d) ^ 0x5eed);
    let n = [1, 3, 3, 5, 5][(seed % 5) as usize];
    // A small window now and then stresses the window edge (deferred
    // messages, queued proposals, learned values beyond the window).
    let alpha = [50, 50, 50, 2, 7][rng.below(5) as usize];
    let mut sim = Sim::with_alpha(seed, n, 20 + rng.below(100), alpha);
    let crash_max = (n - 1) / 2;
    sim.net.drop = [0.0, 0.05, 0.2, 0.4][rng.below(4) as usize];
    sim.net.dup = [0.0, 0.05, 0.2][rng.below(3) as usize];
    sim.net.delay_max_ms = 1 + rng.below(40);
    let proposals = 5 + rng.below(40);
    let mut events: Vec<(u64, u32)> = (0..proposals).map(|_| (rng.below(FAULT_MS), 0)).collect();
    let faults = rng.below(12);
    events.extend((0..faults).map(|_| (rng.below(FAULT_MS), 1 + rng.below(5) as u32)));
    events.sort();
    let mut crashed = 0;
    let mut next_value = 0;
    for (at, kind) in events {
        sim.run_until(at)?;
        match kind {
            0 => {
                let live = sim.live();
                if live.is_empty() {
                    continue;
                }
                let node = live[rng.below(live.len() as u64) as usize];
                next_value += 1;
                sim.propose_at(node, Bytes::from(format!("v{next_value}")));
                sim.drain()?;
            }
            1 => {
                // Partition into two random groups.
                for g in sim.net.group.iter_mut() {
                    *g = rng.below(2) as u32;
                }
            }
            2 => sim.net.group.iter_mut().for_each(|g| *g = 0),
            3 => {
                let i = rng.below(n as u64) as usize;
                sim.nodes[i].paused = !sim.nodes[i].paused;
            }
            _ => {
                if crashed < crash_max {
                    let i = rng.below(n as u64) as usize;
                    if !sim.nodes[i].crashed {
                        sim.nodes[i].crashed = true;
                        crashed += 1;
                    }
                }
            }
        }
    }
    sim.run_until(FAULT_MS)?;
    // Faults stop: heal, resume, lossless (still reordering) network.
    sim.net.group.iter_mut().for_each(|g| *g = 0);
    sim.nodes.iter_mut().for_each(|n| n.paused = false);
    sim.net.drop = 0.0;
    sim.net.dup = 0.0;
    let deadline = FAULT_MS + RECOVER_MS;
    while !sim.settled() {
        if sim.now >= deadline {
            return Err(format!(
                "no progress {RECOVER_MS} ms after faults stopped (n={n}, alpha={alpha})\n{}",
                sim.progress_report()
            ));
        }
        sim.run_for(50)?;
    }
    Ok(())
}

fn check_seeds(seeds: impl Iterator<Item = u64>) {
    for seed in seeds {
        if let Err(e) = run_seed(seed) {
            panic!(
                "simulation seed {seed} failed: {e}\nreplay: DOOZER_SIM_SEED={seed} cargo test -p doozerd --lib consensus::sim"
            );
        }
    }
}

fn seeds_for(part: u64, parts: u64) -> Box<dyn Iterator<Item = u64>> {
    if let Some(seed) = std::env::var("DOOZER_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return Box::new((part == 0).then_some(seed).into_iter());
    }
    let n = std::env::var("DOOZER_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(SEEDS_DEFAULT);
    Box::new((0..n).filter(move |s| s % parts == part))
}

// Two halves so the default test runner uses two cores.
#[test]
fn random_runs_are_safe_and_make_progress_part_0() {
    check_seeds(seeds_for(0, 2));
}

#[test]
fn random_runs_are_safe_and_make_progress_part_1() {
    check_seeds(seeds_for(1, 2));
}

// ---- scenarios ----

/// Runs until settled or `limit` ms, asserting safety.
fn settle(sim: &mut Sim, limit: u64) {
    let end = sim.now + limit;
    while !sim.settled() && sim.now < end {
        sim.run_for(10).unwrap();
    }
    assert!(sim.settled(), "{}", sim.progress_report());
}

#[test]
fn single_cal_decides_alone() {
    let mut sim = Sim::new(1, 1, 100);
    for k in 0..120 {
        sim.propose_at(0, Bytes::from(format!("v{k}")));
    }
    sim.drain().unwrap();
    // Beyond the window (alpha = 50) values wait for the caller to apply.
    assert_eq!(sim.nodes[0].log.len(), 120);
    assert!(sim.proposals.iter().all(|p| p.acked.is_some()));
}

#[test]
fn owner_write_takes_one_round_trip() {
    // Reserved round 0: Accept out, votes back, learned. With a fixed
    // 1..=1 ms link that is 2 ms (Mencius skips ride on the votes).
    let mut sim = Sim::new(2, 3, 100);
    sim.net.delay_max_ms = 1;
    sim.propose_at(2, Bytes::from_static(b"x"));
    sim.drain().unwrap();
    sim.run_until(2).unwrap();
    assert_eq!(sim.proposals[0].acked, Some(2), "seqn 2 is n2's own");
    for n in &sim.nodes {
        assert_eq!(n.px.stats().sent.prepares, 0, "no phase 1 on the fast path");
        assert_eq!(n.px.stats().fills, 0);
    }
    // n1 skipped seqn 1 when it saw n2's Accept at 2; the skip travelled
    // with n1's votes: no batch carried a skip alone. (n1 was not idle
    // for IDLE_MS yet, so it skipped nothing ahead.)
    let s1 = sim.nodes[1].px.stats();
    assert_eq!(s1.skips, 1);
    assert_eq!(s1.sent.skips, 2);
    assert_eq!(s1.sent.batches, 2, "one batch (votes + skip) to each peer");
}

#[test]
fn an_idle_slow_cal_does_not_slow_the_owners_writes() {
    // n2's links take 20 ms more each way, the others' 1 ms. A write needs
    // a majority's votes (n0's and n1's), and the other CALs' seqns before
    // it skipped: n2 skips its seqn before n0's next one as soon as it
    // sees n0's Accept, so after the first write n0 waits for n1 alone.
    let mut sim = Sim::new(3, 3, 100);
    sim.net.delay_max_ms = 1;
    sim.net.slow_ms[2] = 20;
    for k in 0..20 {
        sim.propose_at(0, Bytes::from(format!("v{k}")));
        sim.drain().unwrap();
        let sent = sim.now;
        while sim.proposals[k].acked.is_none() {
            sim.run_for(1).unwrap();
            assert!(sim.now < sent + 200, "write {k} not acknowledged");
        }
        let took = sim.now - sent;
        if k > 0 {
            assert!(took <= 4, "write {k} took {took} ms: it waited for n2");
        }
        // Let n2's skips arrive before the next write, as a client's think
        // time would.
        sim.run_for(50).unwrap();
    }
}

#[test]
fn one_dead_cal_is_revoked_in_bulk_and_does_not_throttle() {
    let mut sim = Sim::new(3, 3, 100);
    sim.net.delay_max_ms = 2;
    sim.nodes[2].crashed = true;
    for k in 0..300 {
        sim.propose_at((k % 2) as usize, Bytes::from(format!("v{k}")));
    }
    sim.drain().unwrap();
    settle(&mut sim, 3_000);
    let fills: u64 = sim.nodes.iter().map(|n| n.px.stats().fills).sum();
    let revokes: u64 = sim.nodes.iter().map(|n| n.px.stats().revokes).sum();
    assert!(fills >= 100, "n2's seqns were filled: {fills}");
    assert!(
        revokes * 4 <= fills,
        "fills were batched: {revokes} revokes for {fills}"
    );
    // 300 writes plus ~150 fills, without waiting fill_ms per window.
    assert!(sim.now < 1_500, "took {} ms", sim.now);
}

/// Proposes `n` values from the given nodes, one per simulated ms, so
/// each takes seqns of its own.
fn propose_spread(sim: &mut Sim, from: &[usize], n: usize) {
    for k in 0..n {
        let v = Bytes::from(format!("w{}-{k}", sim.proposals.len()));
        sim.propose_at(from[k % from.len()], v);
        sim.drain().unwrap();
        sim.run_for(1).unwrap();
    }
}

#[test]
fn delivered_values_are_kept_only_while_a_peer_may_lack_them() {
    // history_max is 100,000 here: only the peers' reports bound it.
    let mut sim = Sim::new(9, 3, 100);
    sim.net.delay_max_ms = 2;
    propose_spread(&mut sim, &[0, 1, 2], 1_000);
    settle(&mut sim, 5_000);
    let head = sim.nodes[0].px.next_seqn();
    assert!(head > 1_000, "{head}");
    for (i, n) in sim.nodes.iter().enumerate() {
        let kept = n.px.next_seqn() - n.px.oldest_kept();
        assert!(
            kept <= HISTORY_SLACK + 16,
            "n{i} keeps {kept} values every peer learned"
        );
    }
    // A paused CAL's last report holds what it lacks at the others, so it
    // catches up through consensus when it comes back, however far behind.
    sim.nodes[2].paused = true;
    let lacks_from = sim.nodes[2].px.next_seqn();
    propose_spread(&mut sim, &[0, 1], 1_000);
    for n in &sim.nodes[..2] {
        assert!(n.px.next_seqn() > lacks_from + 1_000);
        assert!(
            n.px.oldest_kept() + HISTORY_SLACK <= lacks_from + 16,
            "kept from {} for a peer lacking {lacks_from}",
            n.px.oldest_kept()
        );
    }
    sim.nodes[2].paused = false;
    settle(&mut sim, 10_000);
    assert!(!sim.nodes[2].px.cannot_catch_up());
}

#[test]
fn message_for_a_learned_seqn_is_answered_with_the_value() {
    let mut sim = Sim::new(4, 3, 100);
    sim.propose_at(0, Bytes::from_static(b"x"));
    sim.drain().unwrap();
    settle(&mut sim, 1_000);
    // A straggler's Prepare for seqn 3 (n0's, decided "x").
    let n0 = &mut sim.nodes[0].px;
    let msg = PeerMsg {
        prepares: vec![Prepare {
            round: 7,
            seqns: vec![3],
        }],
        ..Default::default()
    };
    n0.step("n1", msg, sim.now);
    let rd = n0.ready();
    assert_eq!(rd.messages.len(), 1);
    let (to, m) = &rd.messages[0];
    assert_eq!(to, "n1");
    assert_eq!(m.learned.len(), 1);
    assert_eq!(m.learned[0].seqn, 3);
    assert_eq!(m.learned[0].value, Bytes::from_static(b"x"));
    assert!(m.promises.is_empty());
}

#[test]
fn invalid_peer_messages_are_counted_and_ignored() {
    let cals = CalSet::new(ids(3)).unwrap();
    let mut px = Paxos::new(Config::new("n0", Bytes::from_static(NOP)), 1, cals, 0, 1);
    let bad = PeerMsg {
        // n2 claims the reserved round of seqn 4 (owned by n1).
        accepts: vec![Accept {
            seqn: 4,
            round: 0,
            value: Bytes::from_static(b"evil"),
        }],
        // A vote from an index that is no CAL.
        votes: vec![Vote {
            seqn: 4,
            round: 1,
            cal: 9,
        }],
        // Seqns absurdly far ahead, and a skip of someone else's seqn.
        prepares: vec![Prepare {
            round: 1,
            seqns: vec![u64::MAX, 1 << 40],
        }],
        skips: vec![4],
        ..Default::default()
    };
    px.step("n2", bad.clone(), 1);
    px.step("stranger", bad, 1);
    let rd = px.ready();
    assert!(rd.learned.is_empty());
    assert!(rd.messages.iter().all(|(_, m)| m.votes.is_empty()));
    assert!(px.stats().invalid >= 3, "{:?}", px.stats());
    assert!(px.stats().too_far_ahead >= 2);
}

/// A batch from a peer teaching the values `learned` (seqn, value).
fn learned_msg(learned: &[(Seqn, &'static [u8])]) -> PeerMsg {
    PeerMsg {
        learned: learned
            .iter()
            .map(|(seqn, v)| Learned {
                seqn: *seqn,
                value: Bytes::from_static(v),
            })
            .collect(),
        ..Default::default()
    }
}

#[test]
fn a_learned_value_counts_only_from_a_cal_of_its_seqn() {
    let cals = CalSet::new(ids(3)).unwrap();
    let mut px = Paxos::new(Config::new("n0", Bytes::from_static(NOP)), 1, cals, 0, 1);
    // A node that is no CAL (it only registered an address) teaches seqn 1.
    px.step("evil", learned_msg(&[(1, b"forged")]), 1);
    assert!(
        px.ready().learned.is_empty(),
        "a stranger's value is ignored"
    );
    assert_eq!(px.stats().invalid, 1);
    // A CAL of seqn 1 teaches it: learned.
    px.step("n1", learned_msg(&[(1, b"real")]), 2);
    let learned: Vec<_> = px
        .ready()
        .learned
        .into_iter()
        .map(|(s, v, _)| (s, v))
        .collect();
    assert_eq!(learned, [(1, Bytes::from_static(b"real"))]);
    assert_eq!(px.stats().invalid, 1);
}

#[test]
fn learned_values_beyond_the_window_wait_for_their_cal_set() {
    // alpha 2: seqns 1 and 2 are known; 3 and 4 are decided by the sets
    // as of seqns 1 and 2, known once those are applied. n2 (under test)
    // owns seqn 2, n0 seqn 3, n1 seqn 4.
    let first = CalSet::new(ids(3)).unwrap();
    let mut cfg = Config::new("n2", Bytes::from_static(NOP));
    cfg.alpha = 2;
    let mut px = Paxos::new(cfg, 1, first.clone(), 0, 1);
    // n3, a CAL from seqn 4 on, and a stranger teach seqns 3 and 4; then
    // n1 answers a fetch with seqns 1 to 4.
    px.step("n3", learned_msg(&[(3, b"x3"), (4, b"x4")]), 1);
    px.step("evil", learned_msg(&[(3, b"e3"), (4, b"e4")]), 1);
    px.step(
        "n1",
        learned_msg(&[(1, b"a"), (2, NOP), (3, b"c"), (4, b"d")]),
        1,
    );
    assert_eq!(px.ready().learned.len(), 2, "seqns 1 and 2, in the window");
    assert_eq!(
        px.stats().invalid,
        0,
        "nothing beyond the window judged yet"
    );
    // Seqn 1 applied: the set of seqn 3 is the same three CALs.
    px.set_cals(1, first);
    // Seqn 2 applied: n0 left and n3 and n4 came, for seqn 4 on (owned
    // by n1, the first of four).
    let later = CalSet::new(vec!["n1".into(), "n2".into(), "n3".into(), "n4".into()]).unwrap();
    px.set_cals(2, later);
    let learned: Vec<_> = px
        .ready()
        .learned
        .into_iter()
        .map(|(s, v, _)| (s, v))
        .collect();
    // Seqn 3 from n1 (n3's came first but n3 is no CAL of seqn 3); seqn 4
    // from n3, a CAL of it whose batch came first.
    assert_eq!(
        learned,
        [
            (3, Bytes::from_static(b"c")),
            (4, Bytes::from_static(b"x4"))
        ]
    );
    // n3 for seqn 3, and the stranger for both.
    assert_eq!(px.stats().invalid, 3, "{:?}", px.stats());
}

#[test]
fn values_not_taken_before_retiring_are_not_delivered_after_a_rejoin() {
    // A lone CAL decides at once; the caller leaves consensus before it
    // takes those values (it stepped down while applying earlier ones).
    let one = CalSet::new(ids(1)).unwrap();
    let mut px = Paxos::new(
        Config::new("n0", Bytes::from_static(NOP)),
        1,
        one.clone(),
        0,
        1,
    );
    px.propose(Bytes::from_static(b"a"));
    px.propose(Bytes::from_static(b"b"));
    px.retire();
    assert!(
        px.ready().learned.is_empty(),
        "a retired node delivers nothing"
    );
    // Its store caught up to seqn 9 by following; it takes part again.
    px.rejoin(10, one.clone(), &[], 5);
    px.propose(Bytes::from_static(b"c"));
    let learned: Vec<_> = px
        .ready()
        .learned
        .into_iter()
        .map(|(s, v, _)| (s, v))
        .collect();
    assert_eq!(learned, [(10, Bytes::from_static(b"c"))]);
}

#[test]
fn value_filled_with_nop_is_proposed_again_and_learned_once() {
    // n1 is cut off while it nominates; the others fill its seqn with NOP;
    // after the heal n1 learns the NOP and re-proposes its value.
    let mut sim = Sim::new(5, 3, 50);
    sim.net.group = vec![0, 1, 0];
    sim.propose_at(1, Bytes::from_static(b"x"));
    sim.propose_at(0, Bytes::from_static(b"y"));
    sim.drain().unwrap();
    sim.run_until(500).unwrap();
    sim.net.group = vec![0, 0, 0];
    settle(&mut sim, 5_000);
    let log = &sim.nodes[0].log;
    assert_eq!(log[1], Bytes::from_static(NOP), "seqn 2 was n1's, filled");
    assert_eq!(
        log.iter()
            .filter(|v| **v == Bytes::from_static(b"x"))
            .count(),
        1
    );
}

#[test]
fn set_cals_moves_the_window_and_membership() {
    // After seqn s applies, the set as of s decides s + alpha.
    let one = CalSet::new(ids(1)).unwrap();
    let mut cfg = Config::new("n0", Bytes::from_static(NOP));
    cfg.alpha = 2;
    let mut px = Paxos::new(cfg, 1, one.clone(), 0, 1);
    assert_eq!(px.window_end(), 3);
    px.propose(Bytes::from_static(b"a"));
    px.propose(Bytes::from_static(b"b"));
    px.propose(Bytes::from_static(b"c"));
    let rd = px.ready();
    assert_eq!(rd.learned.len(), 2, "the third waits for the window");
    assert_eq!(px.queued(), 1);
    let two = CalSet::new(ids(2)).unwrap();
    px.set_cals(1, two);
    // Seqn 3 has two CALs now: n0 owns odd seqns (3 mod 2 = 1 -> n1).
    assert_eq!(px.window_end(), 4);
    let rd = px.ready();
    assert!(rd.learned.is_empty(), "seqn 3 is n1's");
    assert_eq!(px.queued(), 1);
}

/// Writes acknowledged per simulated second by a 3-CAL cluster whose live
/// CALs keep 64 client writes in flight between them (a closed loop, like
/// `doozer bench -c 64`), with CAL `dead` crashed from the start. Counted
/// from 1 s to 3 s of simulated time, links of 1–2 ms.
fn closed_loop_rate(dead: Option<usize>) -> usize {
    let mut sim = Sim::new(7, 3, 100);
    sim.net.delay_max_ms = 1;
    let live: Vec<usize> = (0..3).filter(|&i| Some(i) != dead).collect();
    if let Some(d) = dead {
        sim.nodes[d].crashed = true;
    }
    let per = 64 / live.len();
    let mut k = 0;
    let mut acked_at_1s = 0;
    while sim.now < 3_000 {
        let mut in_flight = [0usize; 3];
        for p in sim.proposals.iter().filter(|p| p.acked.is_none()) {
            in_flight[p.node] += 1;
        }
        for &i in &live {
            for _ in in_flight[i]..per {
                sim.propose_at(i, Bytes::from(format!("v{k}")));
                k += 1;
            }
        }
        sim.drain().unwrap();
        sim.run_for(1).unwrap();
        if sim.now == 1_000 {
            acked_at_1s = sim.proposals.iter().filter(|p| p.acked.is_some()).count();
        }
    }
    let acked = sim.proposals.iter().filter(|p| p.acked.is_some()).count();
    (acked - acked_at_1s) / 2
}

#[test]
fn a_dead_cal_costs_at_most_three_quarters_of_the_write_rate() {
    // Simulated time, not wall clock. The rank-0 filler revokes a silent
    // owner's seqns as soon as they hold anything up; a regression made it
    // wait `fill_ms` per window (318 writes/s against 25,500 healthy).
    let healthy = closed_loop_rate(None);
    for dead in 0..3 {
        let rate = closed_loop_rate(Some(dead));
        assert!(
            rate * 4 >= healthy,
            "n{dead} dead: {rate} writes/s, healthy {healthy}"
        );
    }
}

/// Found by the `paxos` fuzz target (fuzz/regressions/paxos/): a vote at
/// the largest round made the next round `max + 1` overflow when this
/// node filled the seqn (a panic with overflow checks, round 0 without).
/// Rounds above `MAX_ROUND` are refused like any invalid ballot.
#[test]
fn absurd_rounds_are_refused() {
    let cals = CalSet::new(ids(3)).unwrap();
    let mut px = Paxos::new(Config::new("n0", Bytes::from_static(NOP)), 1, cals, 0, 1);
    for round in [MAX_ROUND + 1, u64::MAX] {
        let msg = PeerMsg {
            votes: vec![Vote {
                seqn: 2,
                round,
                cal: 1,
            }],
            accepts: vec![Accept {
                seqn: 3,
                round,
                value: Bytes::from_static(b"x"),
            }],
            prepares: vec![Prepare {
                round,
                seqns: vec![2],
            }],
            ..Default::default()
        };
        let before = px.stats().invalid;
        px.step("n1", msg, 1);
        assert_eq!(px.stats().invalid, before + 3, "{:?}", px.stats());
    }
    // A seqn in use after seqn 2 makes n0 fill it: its round must be valid.
    px.step(
        "n2",
        PeerMsg {
            accepts: vec![Accept {
                seqn: 5,
                round: 0,
                value: Bytes::from_static(b"y"),
            }],
            ..Default::default()
        },
        1,
    );
    for now in [1_000, 10_000, 100_000] {
        px.tick(now);
        for (_, m) in px.ready().messages {
            assert!(m.prepares.iter().all(|p| p.round <= MAX_ROUND));
        }
    }
}

/// Node n0 of a 3-CAL set, with a data directory (`Config::durable`),
/// from seqn 1; and the set.
fn durable_n0() -> (Paxos, CalSet) {
    let cals = CalSet::new(ids(3)).unwrap();
    let cfg = Config {
        durable: true,
        ..Config::new("n0", Bytes::from_static(NOP))
    };
    (Paxos::new(cfg, 1, cals.clone(), 0, 1), cals)
}

/// With a data directory, a round-0 Accept may leave before its output's
/// sync only for an own seqn below a Floor already synced
/// (docs/storage.md#what-is-synced-when): the first nomination crosses
/// the floor and waits; once its records are synced, the next ones go
/// early; the Vote of this node's own acceptor never does.
#[test]
fn accepts_leave_early_only_below_a_synced_floor() {
    let (mut px, _) = durable_n0();
    let accepts = |m: &[(NodeId, PeerMsg)]| m.iter().map(|(_, m)| m.accepts.len()).sum::<usize>();
    let votes = |m: &[(NodeId, PeerMsg)]| m.iter().map(|(_, m)| m.votes.len()).sum::<usize>();
    let mut records = Vec::new();

    px.propose(Bytes::from_static(b"a"));
    assert!(px.take_early_messages().is_empty(), "no floor on disk yet");
    let usual = px.take_messages();
    assert_eq!(accepts(&usual), 2, "the Accept waits for the sync");
    px.take_records(&mut records);
    assert!(records
        .iter()
        .any(|r| matches!(r, crate::storage::Record::Floor { .. })));
    // Not synced yet (a write that failed): still nothing early.
    px.propose(Bytes::from_static(b"b"));
    assert!(px.take_early_messages().is_empty());
    assert_eq!(accepts(&px.take_messages()), 2);
    px.take_records(&mut records);

    px.records_synced();
    px.propose(Bytes::from_static(b"c"));
    let early = px.take_early_messages();
    assert_eq!(accepts(&early), 2, "one Accept to each other CAL");
    assert_eq!(votes(&early), 0, "this node's vote waits for the sync");
    assert!(early.iter().all(|(_, m)| m.learned_upto <= 1));
    let usual = px.take_messages();
    assert_eq!(accepts(&usual), 0);
    assert_eq!(votes(&usual), 2, "its own vote, after the sync");
}

#[test]
fn a_decision_is_on_disk_only_once_every_own_vote_up_to_it_is_synced() {
    for synced in [false, true] {
        let (mut px, cals) = durable_n0();
        px.propose(Bytes::from_static(b"a"));
        let s = px
            .take_messages()
            .iter()
            .flat_map(|(_, m)| m.accepts.iter().map(|a| a.seqn))
            .next()
            .expect("an Accept");
        let mut records = Vec::new();
        px.take_records(&mut records);
        assert!(records
            .iter()
            .any(|r| matches!(r, crate::storage::Record::Vote { seqn, .. } if *seqn == s)));
        if synced {
            px.records_synced(); // the output holding this node's vote was synced
        }
        // The seqns before s end as NOP; n1's vote makes a majority for "a".
        let below: Vec<(Seqn, &'static [u8])> = (1..s).map(|t| (t, NOP)).collect();
        px.step("n1", learned_msg(&below), 0);
        let vote = PeerMsg {
            votes: vec![Vote {
                seqn: s,
                round: 0,
                cal: cals.owner_index(s),
            }],
            ..Default::default()
        };
        px.step("n1", vote, 0);
        let rd = px.ready();
        assert!(
            rd.learned
                .iter()
                .any(|(t, v, id)| *t == s && v[..] == b"a"[..] && id.is_some()),
            "{:?}",
            rd.learned
        );
        // Its own vote not yet synced, the decision may rest on it.
        let want = if synced { vec![s] } else { Vec::new() };
        assert_eq!(rd.on_disk, want, "synced: {synced}");
    }
}

/// `px` takes, at `now`, the round-0 Accept of `s` from its owner (ids
/// `n0`, `n1`, ... as in [`durable_n0`]).
fn owner_accepts(px: &mut Paxos, cals: &CalSet, s: Seqn, now: u64) {
    let owner = format!("n{}", cals.owner_index(s));
    let msg = PeerMsg {
        accepts: vec![Accept {
            seqn: s,
            round: 0,
            value: Bytes::from_static(b"v"),
        }],
        ..Default::default()
    };
    px.step(&owner, msg, now);
}

/// A vote leaves first for the seqn's owner, which waits for it to
/// answer its client, even when that owner's id sorts last
/// (docs/cluster.md#message-order).
#[test]
fn a_vote_goes_first_to_the_owner_of_its_seqn() {
    let cals = CalSet::new(ids(3)).unwrap();
    for owner in ["n1", "n2"] {
        let mut px = Paxos::new(
            Config::new("n0", Bytes::from_static(NOP)),
            1,
            cals.clone(),
            0,
            1,
        );
        let s = (1..=3).find(|s| cals.owner(*s) == owner).unwrap();
        owner_accepts(&mut px, &cals, s, 0);
        let out = px.take_messages();
        let to: Vec<&str> = out.iter().map(|(p, _)| p.as_ref()).collect();
        assert_eq!(to.len(), 2, "{to:?}");
        assert_eq!(to[0], owner, "{to:?}");
        assert!(out[0].1.votes.iter().any(|v| v.seqn == s));
    }
}

#[test]
fn skips_leave_early_only_below_a_synced_floor() {
    let (mut px, cals) = durable_n0();
    let me = cals.index_of("n0").unwrap();
    let own: Vec<Seqn> = (1..40).filter(|s| cals.owner_index(*s) == me).collect();
    // A round-0 Accept from the owner of a seqn after `own[k]`: n0 will
    // never need its own seqn below it and skips it.
    let accept_after = |px: &mut Paxos, k: usize| owner_accepts(px, &cals, own[k] + 1, 0);
    let skips = |m: &[(NodeId, PeerMsg)]| -> Vec<Seqn> {
        m.iter()
            .flat_map(|(_, m)| m.skips.iter().copied())
            .collect()
    };
    let mut records = Vec::new();

    accept_after(&mut px, 0);
    assert!(
        !skips(&px.take_early_messages()).contains(&own[0]),
        "no floor on disk yet: the skip waits for the sync"
    );
    let _ = px.take_messages();
    px.take_records(&mut records);
    assert!(records
        .iter()
        .any(|r| matches!(r, crate::storage::Record::Floor { .. })));
    px.records_synced();

    accept_after(&mut px, 1);
    let early = px.take_early_messages();
    assert_eq!(early.len(), 2, "to each other CAL: {early:?}");
    assert!(
        early.iter().all(|(_, m)| m.skips.contains(&own[1])),
        "{early:?}"
    );
    assert!(!skips(&px.take_messages()).contains(&own[1]));
}

/// Lazy votes (docs/storage.md#lazy-votes): n0 is the second acceptor
/// after the owner n1 (CAL order n0, n1, n2), so it votes lazily on n1's
/// round-0 Accepts while n2, the first, votes; never on n2's own seqns,
/// where it is the first; and as usual again once n2 was silent for
/// `LAZY_WHILE_VOTED_MS`.
#[test]
fn a_vote_is_lazy_only_beyond_the_first_majority_while_that_votes() {
    let (mut px, cals) = durable_n0();
    let accept = |px: &mut Paxos, s: Seqn, now: u64| owner_accepts(px, &cals, s, now);
    let votes = |m: &[(NodeId, PeerMsg)]| m.iter().map(|(_, m)| m.votes.len()).sum::<usize>();
    // (usual votes, lazy votes, whether the records may wait)
    let take = |px: &mut Paxos| {
        let mut records = Vec::new();
        let usual = votes(&px.take_messages());
        let lazy = votes(&px.take_lazy_messages());
        let may_wait = px.take_records(&mut records);
        px.records_synced();
        (usual, lazy, may_wait)
    };
    assert_eq!(cals.owner_index(4), 1);
    // n2 has not voted yet: n0 votes as usual (and its skip of seqn 3
    // puts a Floor on disk first).
    accept(&mut px, 4, 0);
    assert_eq!(take(&mut px), (2, 0, false));
    let n2_vote = PeerMsg {
        votes: vec![Vote {
            seqn: 4,
            round: 0,
            cal: 1,
        }],
        ..Default::default()
    };
    px.step("n2", n2_vote, 1);
    // n2 votes: n0's vote on n1's next seqn is lazy, and its record
    // needs no sync of its own.
    accept(&mut px, 7, 5);
    assert_eq!(take(&mut px), (0, 2, true));
    // On n2's own seqns n0 is the first acceptor: never lazy.
    accept(&mut px, 8, 6);
    assert_eq!(take(&mut px), (2, 0, false));
    // n2 silent for LAZY_WHILE_VOTED_MS: as usual again.
    accept(&mut px, 10, 1 + super::paxos::LAZY_WHILE_VOTED_MS);
    assert_eq!(take(&mut px), (2, 0, false));
}
