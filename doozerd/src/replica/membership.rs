//! The replica's side of the cluster (docs/cluster.md), pure: driving
//! [`Paxos`] when this node is a CAL, the CAL sets read from the store,
//! promotion of a slave and demotion of a CAL, kicking silent CALs, and
//! the pulse.
//!
//! Time comes with every input; peer messages come in through
//! `Replica::peer_step` and go out, like the requests a slave sends to the
//! CAL it follows (a slot claim, catch-up NOPs), in the replica's
//! [`Output`](super::Output).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;

use bytes::Bytes;
use doozer_proto::peer::PeerMsg;
use doozer_proto::{ErrCode, Request, Response, Verb};

use super::{Pending, Replica};
use crate::cluster::{self, Slot, CAL_DIR, NODE_DIR};
use crate::consensus::{self, CalSet, NodeId, Paxos, ProposalId};
use crate::store::{Event, Mutation, Rev};

/// Consensus timing and tunables, from the flags.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// Seqns decided ahead of the last applied one (SPEC: 50).
    pub alpha: u64,
    /// `-fill`, in milliseconds.
    pub fill_ms: u64,
    /// `-timeout`, in milliseconds.
    pub timeout_ms: u64,
    /// `-pulse`, in milliseconds.
    pub pulse_ms: u64,
    /// Seeds the backoff jitter (random per process, from the event loop).
    pub seed: u64,
}

impl Default for ClusterConfig {
    fn default() -> ClusterConfig {
        ClusterConfig {
            alpha: 50,
            fill_ms: 100,
            timeout_ms: 60_000,
            pulse_ms: 1_000,
            seed: 0,
        }
    }
}

/// A change of role the event loop acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleChange {
    /// A slave became a CAL: stop following.
    Promoted,
    /// A CAL lost its slot: attach again as a slave.
    Demoted,
}

/// Tags of requests a slave sends on its follow connection; far above the
/// tags attaching uses, so answers are told apart from the stream.
pub const SIDE_TAG_BASE: i32 = 1 << 30;

/// How long a CAL behind its peers may go without learning anything
/// before it gives up catching up through consensus and copies the store.
const CATCH_UP_GIVE_UP_MS: u64 = 5_000;

/// Former nodes whose addresses are kept.
const FORMER_NODES_MAX: usize = 1024;

/// Cluster state of a [`Replica`].
#[derive(Debug)]
pub(super) struct Membership {
    pub(super) cfg: ClusterConfig,
    pub(super) id: NodeId,
    pub(super) now_ms: u64,
    /// The CAL set as of each rev it changed at (the set as of rev `r`
    /// decides seqn `r + alpha`), pruned to what the window needs.
    sets: BTreeMap<Rev, CalSet>,
    slots: Vec<Slot>,
    addrs: HashMap<NodeId, SocketAddr>,
    /// Nodes whose `/ctl/node/<id>` files were deleted (kicked).
    former: HashMap<NodeId, SocketAddr>,
    by_addr: HashMap<SocketAddr, NodeId>,
    peer_out: Vec<(NodeId, PeerMsg)>,
    pub(super) role_change: Option<RoleChange>,
    /// CALs that left the slots, until the node takes them.
    pub(super) cals_left: Vec<NodeId>,
    pub(super) follow_requests: Vec<Request>,
    /// The tag of the slot claim in flight, if any.
    claim: Option<i32>,
    /// Catch-up NOPs sent and not yet answered.
    nops_outstanding: u64,
    next_side_tag: i32,
    next_pulse_ms: u64,
    /// Nodes this node proposed to kick, and when.
    kicked: HashMap<NodeId, u64>,
    /// Values proposed (client writes and the node's own).
    pub(super) proposals: u64,
    /// Learned values that did not decode (applied as NOP).
    pub(super) malformed: u64,
    /// Peer messages for nodes without a known address.
    pub(super) unroutable: u64,
    /// Learned seqns that were not the store's next rev (a bug; the node
    /// stepped down and copied the store again).
    pub(super) gaps: u64,
}

impl Membership {
    pub(super) fn new(id: NodeId, cfg: ClusterConfig) -> Membership {
        Membership {
            cfg,
            id,
            now_ms: 0,
            sets: BTreeMap::new(),
            slots: Vec::new(),
            addrs: HashMap::new(),
            former: HashMap::new(),
            by_addr: HashMap::new(),
            peer_out: Vec::new(),
            role_change: None,
            cals_left: Vec::new(),
            follow_requests: Vec::new(),
            claim: None,
            nops_outstanding: 0,
            next_side_tag: SIDE_TAG_BASE,
            next_pulse_ms: 0,
            kicked: HashMap::new(),
            proposals: 0,
            malformed: 0,
            unroutable: 0,
            gaps: 0,
        }
    }

    /// The CAL set as of rev `r` (the earliest known one before it).
    fn cals_at(&self, r: Rev) -> Option<&CalSet> {
        self.sets
            .range(..=r)
            .next_back()
            .or_else(|| self.sets.iter().next())
            .map(|(_, s)| s)
    }

    /// The latest CAL set.
    pub(super) fn cals(&self) -> Option<&CalSet> {
        self.sets.values().next_back()
    }

    /// Records the set as of `rev`, if it changed.
    fn note_set(&mut self, rev: Rev, set: Option<CalSet>) {
        match set {
            Some(set) if self.cals() != Some(&set) => {
                let ids: Vec<&NodeId> = set.iter().collect();
                log::info!("CAL set as of rev {rev}: {ids:?}");
                self.sets.insert(rev, set);
            }
            Some(_) => {}
            // Every slot empty: the log cannot go on with nobody; keep the
            // last set (its CALs can still put a slot back).
            None => log::warn!("rev {rev}: no CAL slot holds a node id; keeping the last set"),
        }
    }

    /// Keeps the sets the window needs at `rev`: those of the last
    /// `2 * alpha` revs and the one before them.
    fn prune(&mut self, rev: Rev) {
        let keep_from = rev - 2 * self.cfg.alpha as Rev;
        while let Some(second) = self.sets.keys().nth(1).copied() {
            if second > keep_from {
                break;
            }
            self.sets.pop_first();
        }
    }

    /// Takes the addresses of `/ctl/node/*/addr`. Nodes whose files are
    /// gone stay known (up to [`FORMER_NODES_MAX`]): a kicked CAL that
    /// wakes up still talks to its old peers, and they must answer it with
    /// the values it missed, so it learns it was kicked and steps down.
    fn set_addrs(&mut self, addrs: HashMap<NodeId, SocketAddr>) {
        let gone: Vec<(NodeId, SocketAddr)> = self
            .addrs
            .iter()
            .filter(|(id, _)| !addrs.contains_key(*id))
            .map(|(id, a)| (id.clone(), *a))
            .collect();
        for (id, a) in gone {
            if self.former.len() >= FORMER_NODES_MAX {
                self.former.clear(); // rare: many nodes came and went
            }
            self.former.insert(id, a);
        }
        self.former.retain(|id, _| !addrs.contains_key(id));
        // Current nodes win an address a former one had.
        self.by_addr = self.former.iter().map(|(id, a)| (*a, id.clone())).collect();
        self.by_addr
            .extend(addrs.iter().map(|(id, a)| (*a, id.clone())));
        self.addrs = addrs;
    }

    /// The node datagrams from `addr` are taken to come from.
    #[cfg(test)]
    pub(super) fn sender_at(&self, addr: SocketAddr) -> Option<NodeId> {
        self.by_addr.get(&addr).cloned()
    }

    /// The address of node `id`, current or former.
    fn addr_of(&self, id: &str) -> Option<SocketAddr> {
        self.addrs.get(id).or_else(|| self.former.get(id)).copied()
    }

    fn side_request(&mut self, verb: Verb) -> Request {
        let tag = self.next_side_tag;
        self.next_side_tag = self.next_side_tag.checked_add(1).unwrap_or(SIDE_TAG_BASE);
        Request {
            tag: Some(tag),
            verb: Some(verb as i32),
            ..Default::default()
        }
    }
}

impl Replica {
    /// The current time in milliseconds (from any fixed origin).
    pub(super) fn set_now(&mut self, now_ms: u64) {
        self.members.now_ms = self.members.now_ms.max(now_ms);
    }

    /// Whether this node takes part in consensus.
    pub fn is_cal(&self) -> bool {
        self.paxos.is_some()
    }

    /// Whether this node is the only CAL (it decides alone, at once).
    pub(super) fn is_lone_cal(&self) -> bool {
        self.paxos.is_some() && self.members.cals().is_some_and(|c| c.len() == 1)
    }

    /// The consensus counters and instances in flight, while a CAL.
    pub fn consensus_stats(&self) -> Option<(consensus::Stats, usize)> {
        self.paxos
            .as_ref()
            .map(|p| (p.stats().clone(), p.instances_in_flight()))
    }

    /// Becomes the only CAL of a new cluster and writes its files.
    pub(super) fn start_seed(&mut self, muts: Vec<Mutation>) {
        let me = CalSet::new(vec![self.members.id.clone()]);
        let Ok(me) = me else {
            log::error!("cannot seed: empty node id");
            return;
        };
        self.members.sets.insert(self.store.rev(), me.clone());
        self.paxos = Some(self.new_paxos(self.store.rev() + 1, me, &[]));
        self.writable = true;
        self.members.next_pulse_ms = self.members.now_ms + self.members.cfg.pulse_ms;
        for m in muts {
            self.propose(m);
        }
        self.pump();
    }

    fn new_paxos(&self, first: Rev, head: CalSet, sets: &[CalSet]) -> Paxos {
        let m = &self.members;
        let mut cfg = consensus::Config::new(m.id.clone(), Mutation::Nop.encode());
        cfg.alpha = m.cfg.alpha;
        cfg.fill_ms = m.cfg.fill_ms;
        Paxos::joining(cfg, first as u64, head, sets, m.now_ms, m.cfg.seed)
    }

    /// Proposes `m` as this node's own write (no client to answer).
    pub(super) fn propose(&mut self, m: Mutation) -> Option<ProposalId> {
        let p = self.paxos.as_mut()?;
        self.members.proposals += 1;
        let value = match m {
            // Unique bytes: never mistaken for a fill (see `tagged_nop`).
            Mutation::Nop => {
                Mutation::tagged_nop(&format!("{}.{}", self.members.id, self.members.proposals))
            }
            m => m.encode(),
        };
        Some(p.propose(value))
    }

    /// Proposes a client's write; answered when it is applied.
    pub(super) fn propose_write(&mut self, m: Mutation, pending: Pending) {
        match self.propose(m) {
            Some(id) => {
                self.hold(pending.conn, pending.tag, None);
                self.writes.insert(id, pending);
            }
            None => self.fail(pending.conn, pending.tag, ErrCode::Readonly, None),
        }
    }

    /// Applies everything consensus learned, in seqn order, and collects
    /// the messages it wants sent. Not re-entrant: what applying a value
    /// does (answering parked reads, ...) never pumps; this loop picks up
    /// anything it decides.
    pub(super) fn pump(&mut self) {
        loop {
            let Some(p) = self.paxos.as_mut() else {
                return;
            };
            let ready = p.ready();
            self.members.peer_out.extend(ready.messages);
            if ready.learned.is_empty() {
                return;
            }
            for (seqn, value, id) in ready.learned {
                if self.paxos.is_none() {
                    return; // demoted by an earlier value: the rest is not ours
                }
                let rev = seqn as Rev;
                if rev != self.store.rev() + 1 {
                    // Consensus delivers every seqn once, in order, from
                    // the one after the store's head; anything else is a
                    // bug that would silently diverge this node. Step down
                    // and copy the store again rather than go on.
                    log::error!(
                        "BUG: learned seqn {seqn} at store rev {}; stepping down to copy the store again",
                        self.store.rev()
                    );
                    self.members.gaps += 1;
                    let head = self.store.rev();
                    self.demote(head, false);
                    return;
                }
                let m = Mutation::decode(&value).unwrap_or_else(|e| {
                    // Every node decodes the same bytes the same way, so
                    // all apply the same NOP.
                    log::warn!("seqn {seqn}: {e}; applied as NOP");
                    self.members.malformed += 1;
                    Mutation::Nop
                });
                #[cfg(test)]
                self.trace.learned.push((seqn, value.clone()));
                let pending = id.and_then(|id| self.writes.remove(&id));
                self.apply_one(rev, &m, pending);
            }
        }
    }

    /// Handles a peer datagram's message from `from`; what it decides is
    /// applied by the next [`Replica::pump`]. False if the sender is not a
    /// known node or this node is not a CAL (the caller counts it as
    /// ignored).
    pub(super) fn peer_step(&mut self, from: SocketAddr, msg: PeerMsg) -> bool {
        let Some(id) = self.members.by_addr.get(&from).cloned() else {
            return false;
        };
        let now = self.members.now_ms;
        let Some(p) = self.paxos.as_mut() else {
            return false;
        };
        p.step(&id, msg, now);
        true
    }

    /// Queues consensus's batches for [`Replica::take_peer_messages`]
    /// without applying what it learned: an acceptor's votes leave before
    /// its store catches up, which shortens the proposer's round trip.
    pub(super) fn queue_peer_messages(&mut self) {
        if let Some(p) = self.paxos.as_mut() {
            self.members.peer_out.extend(p.take_messages());
        }
    }

    /// Messages to send, with the peer's address. Messages for a node
    /// whose address is unknown are dropped (and counted).
    pub(super) fn take_peer_messages(&mut self, out: &mut Vec<(SocketAddr, PeerMsg)>) {
        for (to, msg) in std::mem::take(&mut self.members.peer_out) {
            match self.members.addr_of(&to) {
                Some(a) => out.push((a, msg)),
                None => self.members.unroutable += 1,
            }
        }
    }

    /// Whether this node's id fills a CAL slot as of its store's head (it
    /// may not take part in consensus yet, or any more).
    pub(super) fn listed_as_cal(&self) -> bool {
        self.members
            .cals()
            .is_some_and(|c| c.index_of(&self.members.id).is_some())
    }

    /// The earliest time (ms) [`Replica::tick`] has work to do.
    pub(super) fn next_deadline_ms(&self) -> Option<u64> {
        let p = self.paxos.as_ref()?;
        let m = &self.members;
        let mut at = m.next_pulse_ms;
        if let Some(t) = p.next_deadline() {
            at = at.min(t);
        }
        if let Some(cals) = m.cals() {
            for c in cals.iter().filter(|c| **c != m.id) {
                if let Some(h) = p.last_heard_ms(c) {
                    let due = h + m.cfg.timeout_ms;
                    if due > m.now_ms {
                        at = at.min(due);
                    }
                }
            }
        }
        Some(at)
    }

    /// Advances time: consensus timeouts, the pulse, and kicks.
    pub(super) fn tick(&mut self) {
        let now = self.members.now_ms;
        let Some(p) = self.paxos.as_mut() else {
            return;
        };
        p.tick(now);
        if p.behind_since_ms()
            .is_some_and(|t| now >= t + CATCH_UP_GIVE_UP_MS)
        {
            // Peers are ahead and nothing arrives: what is missing is no
            // longer kept by them (a long pause). Copy it as a slave; if
            // this node is still in the set, it rejoins from the copy.
            let rev = self.store.rev();
            log::warn!("behind the other CALs at rev {rev} and not catching up");
            self.demote(rev, false);
            return;
        }
        if now >= self.members.next_pulse_ms {
            self.members.next_pulse_ms = now + self.members.cfg.pulse_ms.max(1);
            let m = cluster::pulse_mutation(&self.members.id, self.store.rev());
            self.propose(m);
        }
        self.kick_silent();
        self.pump();
    }

    /// Proposes the removal of CALs silent for `-timeout`, if this node is
    /// the one to do it (the first live CAL of the set).
    fn kick_silent(&mut self) {
        let (Some(p), Some(cals)) = (self.paxos.as_ref(), self.members.cals()) else {
            return;
        };
        let m = &self.members;
        let silent = |c: &str| {
            c != m.id
                && p.last_heard_ms(c)
                    .is_some_and(|h| m.now_ms >= h + m.cfg.timeout_ms)
        };
        let dead: Vec<NodeId> = cals.iter().filter(|c| silent(c)).cloned().collect();
        if dead.is_empty() || cluster::kicker(cals, |c| !silent(c)) != Some(&m.id) {
            return;
        }
        let snap = self.store.head().clone();
        for id in dead {
            // Once per timeout: the kick may take a while to be decided.
            if let Some(t) = self.members.kicked.get(&id) {
                if self.members.now_ms < t + self.members.cfg.timeout_ms {
                    continue;
                }
            }
            self.members.kicked.insert(id.clone(), self.members.now_ms);
            for slot in self.members.slots.clone().iter().filter(|s| s.id == id) {
                log::warn!(
                    "kicking CAL {id} (silent for -timeout): emptying {}",
                    slot.path
                );
                for mutation in cluster::kick_mutations(&snap, slot) {
                    self.propose(mutation);
                }
            }
        }
    }

    /// What every node does after applying a rev, whichever way it came
    /// (consensus or a follow stream): track the CAL set and addresses,
    /// tell consensus, change role, claim a slot.
    pub(super) fn after_apply(&mut self, event: &Event) {
        let rev = event.rev;
        let changed = event.flags != doozer_proto::flags::OTHER;
        if changed && cluster::touches(&event.path, CAL_DIR) {
            self.reload_slots();
        }
        if changed && cluster::touches(&event.path, NODE_DIR) {
            let addrs = cluster::node_addrs(self.store.head());
            self.members.set_addrs(addrs);
        }
        self.members.prune(rev);
        let alpha = self.members.cfg.alpha as Rev;
        let member_next = self
            .members
            .cals_at(rev + 1 - alpha)
            .is_some_and(|c| c.index_of(&self.members.id).is_some());
        let latest = self.members.cals().cloned();
        if let Some(p) = self.paxos.as_mut() {
            if let Some(cals) = latest {
                p.set_cals(rev as u64, cals);
            }
            if !member_next {
                self.demote(rev, true);
            }
        } else if member_next && self.is_following() {
            self.promote(rev);
        } else {
            self.want_slot();
        }
    }

    /// Re-reads the slots (after a change under `/ctl/cal`, or a copy).
    fn reload_slots(&mut self) {
        let slots = cluster::slots(self.store.head());
        for old in &self.members.slots {
            let gone = !old.id.is_empty() && !slots.iter().any(|s| s.id == old.id);
            if gone && !self.members.cals_left.contains(&old.id) {
                self.members.cals_left.push(old.id.clone());
            }
        }
        self.members.slots = slots;
        let set = cluster::cal_set(&self.members.slots);
        let rev = self.store.rev();
        self.members.note_set(rev, set);
    }

    /// After a store copy: forget the sets and addresses of before.
    pub(super) fn after_copy(&mut self) {
        self.members.sets.clear();
        self.members.slots.clear();
        self.reload_slots();
        let addrs = cluster::node_addrs(self.store.head());
        self.members.set_addrs(addrs);
        self.want_slot();
    }

    /// The slave whose id is in the set as of `rev + 1 - alpha` takes part
    /// in consensus from seqn `rev + 1` on: it has every seqn before.
    fn promote(&mut self, rev: Rev) {
        let alpha = self.members.cfg.alpha as Rev;
        let sets: Vec<CalSet> = (0..alpha)
            .filter_map(|i| self.members.cals_at(rev + 1 - alpha + i).cloned())
            .collect();
        let Some(head) = sets.first().cloned() else {
            return;
        };
        log::info!("promoted: a CAL from seqn {}", rev + 1);
        self.paxos = Some(self.new_paxos(rev + 1, head, &sets));
        self.follow_state = super::FollowState::Idle;
        self.writable = true;
        self.members.claim = None;
        self.members.nops_outstanding = 0;
        self.members.follow_requests.clear();
        self.members.role_change = Some(RoleChange::Promoted);
        self.members.next_pulse_ms = self.members.now_ms + self.members.cfg.pulse_ms;
        self.propose(cluster::writable_mutation(&self.members.id, true));
    }

    /// Stops taking part in consensus after `rev` and becomes a slave.
    ///
    /// Writes still waiting are answered now. When the CAL left the set
    /// (`outcome_known`), they fail with `READONLY`: they will never be
    /// decided, since only its own seqns could hold them and it has none
    /// left. When it gave up catching up, a write may still be decided by
    /// the others, so the answer says the outcome is unknown.
    fn demote(&mut self, rev: Rev, outcome_known: bool) {
        log::warn!("not a CAL after seqn {rev}; attaching as a slave");
        #[cfg(test)]
        self.trace_votes();
        self.paxos = None;
        self.writable = false;
        self.members.peer_out.clear();
        for (_, p) in std::mem::take(&mut self.writes) {
            self.untag(p);
            if outcome_known {
                self.fail(p.conn, p.tag, ErrCode::Readonly, None);
            } else {
                let why = "outcome unknown: this node fell behind and stopped being a CAL; \
                           read the file to see whether the write happened";
                self.fail(p.conn, p.tag, ErrCode::Other, Some(why.into()));
            }
        }
        self.start_following();
        self.members.role_change = Some(RoleChange::Demoted);
    }

    /// A slave following its CAL: claim a free slot, or, once in the set,
    /// keep NOPs going until the log reaches the seqn it joins at (an idle
    /// cluster would not get there on its own).
    pub(super) fn want_slot(&mut self) {
        if self.paxos.is_some() || !self.is_following() {
            return;
        }
        let alpha = self.members.cfg.alpha as Rev;
        let rev = self.store.rev();
        let id = self.members.id.clone();
        let in_set = |s: &CalSet| s.index_of(&id).is_some();
        if self.members.cals().is_some_and(in_set) {
            if self.members.nops_outstanding > 0 {
                return;
            }
            // The first rev of the latest run of sets naming this node.
            let since = self
                .members
                .sets
                .iter()
                .rev()
                .take_while(|(_, s)| in_set(s))
                .last()
                .map_or(rev, |(r, _)| *r);
            let need = (since + alpha - 1 - rev).clamp(0, alpha) as u64;
            for _ in 0..need {
                let req = self.members.side_request(Verb::Nop);
                self.members.follow_requests.push(req);
            }
            self.members.nops_outstanding = need;
        } else if self.members.claim.is_none() {
            let Some(slot) = self.members.slots.iter().find(|s| s.id.is_empty()).cloned() else {
                return;
            };
            log::info!("claiming free CAL slot {}", slot.path);
            let mut req = self.members.side_request(Verb::Set);
            req.path = Some(slot.path);
            req.rev = Some(slot.rev);
            req.value = Some(Bytes::from(id));
            self.members.claim = req.tag;
            self.members.follow_requests.push(req);
        }
    }

    /// An answer to a request sent on the follow connection.
    pub(super) fn side_response(&mut self, resp: Response) {
        if resp.tag.is_some() && resp.tag == self.members.claim {
            self.members.claim = None;
            // Won: the CAL answers before it streams the change, which
            // arrives next (and calls `want_slot`). Lost: try another slot.
            if let Some(code) = resp.err_code {
                let code = ErrCode::try_from(code).map_or("unknown", ErrCode::wire_name);
                log::info!("slot claim lost ({code})");
                self.want_slot();
            }
        } else {
            self.members.nops_outstanding = self.members.nops_outstanding.saturating_sub(1);
        }
    }

    /// The follow connection broke: requests on it are gone.
    pub(super) fn forget_side_requests(&mut self) {
        self.members.claim = None;
        self.members.nops_outstanding = 0;
        self.members.follow_requests.clear();
    }
}
