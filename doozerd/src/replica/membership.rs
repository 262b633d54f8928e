//! Membership, pure (docs/cluster.md): which nodes are CALs of which seqn,
//! where they are, and how this node's role changes — a slave claiming a
//! free slot and joining consensus, a CAL stepping down.
//!
//! The CAL set of seqn `s + alpha` is the set of the slots after seqn `s`
//! is applied, so every node computes the same set for the same seqn; a
//! copy of the store carries the sets of its window, so a node that copied
//! computes them too. Identity: a node keeps its id for its whole life,
//! and its id never votes without the acceptor state it voted with
//! before: a CAL that leaves consensus (its slot emptied, kicked, or
//! unable to catch up) keeps its consensus state, retired (it still
//! answers what it learned, and may still vote where it is a CAL), and
//! takes it up again if it rejoins (see `Paxos::retire`, `Paxos::rejoin`).
//!
//! A CAL's own duties (proposing, applying what consensus learned, the
//! pulse, kicks) are in `cal.rs`.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use bytes::Bytes;
use doozer_proto::ctl;
use doozer_proto::peer::PeerMsg;
use doozer_proto::{ErrCode, Request, Response, Verb};

use super::Replica;
use crate::cluster::{self, Slot, CAL_DIR, NODE_DIR};
use crate::consensus::{self, CalSet, NodeId, Paxos, ProposalId};
use crate::store::{At, Event};

/// Consensus timing and tunables, from the flags.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// Seqns decided ahead of the last applied one (50).
    pub alpha: u64,
    /// `-fill`, in milliseconds.
    pub fill_ms: u64,
    /// `-timeout`, in milliseconds.
    pub timeout_ms: u64,
    /// `-pulse`, in milliseconds.
    pub pulse_ms: u64,
    /// Seeds the backoff jitter (random per process, from the event
    /// loop).
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
    /// A CAL left consensus: attach again as a slave.
    Demoted,
}

/// Tags of requests a slave sends on its follow connection; far above the
/// tags attaching uses, so answers are told apart from the stream.
pub const SIDE_TAG_BASE: i32 = 1 << 30;

/// Former nodes whose addresses are kept.
const FORMER_NODES_MAX: usize = 1024;

/// Cluster state of a [`Replica`].
#[derive(Debug)]
pub(super) struct Membership {
    pub(super) cfg: ClusterConfig,
    /// This node's id.
    pub(super) id: NodeId,
    pub(super) now_ms: u64,
    /// The last seqn whose changes are all applied here.
    pub(super) applied_seqn: u64,
    /// A slave joins consensus only once it replayed its stream up to
    /// here (how far the node it follows was when it began): while it
    /// replays history it cannot tell whether a later change removed it.
    pub(super) catch_up_to: u64,
    /// The CAL set as of each seqn it changed at (the set as of seqn `s`
    /// decides seqn `s + alpha`), pruned to what the window needs.
    pub(super) sets: BTreeMap<u64, CalSet>,
    pub(super) slots: Vec<Slot>,
    /// A change of the current seqn touched the slots / node files.
    slots_dirty: bool,
    addrs_dirty: bool,
    addrs: BTreeMap<NodeId, SocketAddr>,
    /// Nodes whose `/ctl/node/<id>` files were deleted (kicked).
    former: BTreeMap<NodeId, SocketAddr>,
    pub(super) peer_out: Vec<(NodeId, PeerMsg)>,
    /// Messages to an address rather than a node (see
    /// `Replica::answer_stranger`).
    pub(super) direct_out: Vec<(SocketAddr, PeerMsg)>,
    /// When each unknown address was last answered.
    pub(super) strangers: BTreeMap<SocketAddr, u64>,
    pub(super) role_change: Option<RoleChange>,
    /// CALs that left the slots, until the node takes them.
    pub(super) cals_left: Vec<NodeId>,
    pub(super) follow_requests: Vec<Request>,
    /// The tag of the slot claim in flight, if any.
    claim: Option<i32>,
    /// Catch-up NOPs sent and not yet answered.
    nops_outstanding: u64,
    /// The tag of the request that sets this node's `writable` file back
    /// to `false` after it left consensus, while in flight.
    unwritable: Option<i32>,
    /// The followed node answered a side request with `READONLY` (it is
    /// not a CAL): no more side requests until the stream delivers a
    /// change. Asking again at once looped, each answer keeping an
    /// otherwise silent stream looking alive (simulator seed 95666); now
    /// the stream goes quiet and the follower attaches elsewhere.
    pub(super) side_refused: bool,
    next_side_tag: i32,
    pub(super) next_pulse_ms: u64,
    /// Kicks this node proposed and not yet saw decided.
    pub(super) kicks: BTreeMap<NodeId, ProposalId>,
    /// Since when this CAL cannot catch up through consensus.
    pub(super) stuck_since_ms: Option<u64>,
    /// The seqn after which this node gave up catching up (the other CALs
    /// learned further and no longer keep the next value), until it gets
    /// past it: a copy or resume from a member no further than that seqn
    /// would only make it rejoin there and give up again. Two CALs stuck
    /// at the same seqn otherwise copied each other and rejoined, in turn,
    /// for good (simulator seed 318177).
    pub(super) gave_up_at: Option<u64>,
    /// The store's rev when this node left consensus: it may be the only
    /// node that learned its last seqns (docs/cluster.md, "Leaving
    /// consensus and rejoining"), so it still serves a follower behind it.
    pub(super) left_at_rev: Option<crate::store::Rev>,
    /// Values proposed (client writes and the node's own).
    pub(super) proposals: u64,
    /// Learned values that did not decode (applied as NOP).
    pub(super) malformed: u64,
    /// Peer messages for nodes without a known address.
    pub(super) unroutable: u64,
    /// Learned seqns that were not the next one (a bug; the node
    /// stepped down and copied the store again).
    pub(super) gaps: u64,
    /// Kicks this node proposed.
    pub(super) kicks_proposed: u64,
    /// Whether each CAL's store digest, last compared, equals this one's.
    pub(super) digest_views: BTreeMap<NodeId, bool>,
    /// Times this node found its store diverged.
    pub(super) divergences: u64,
}

impl Membership {
    pub(super) fn new(id: NodeId, cfg: ClusterConfig) -> Membership {
        Membership {
            cfg,
            id,
            now_ms: 0,
            applied_seqn: 0,
            catch_up_to: 0,
            sets: BTreeMap::new(),
            slots: Vec::new(),
            slots_dirty: false,
            addrs_dirty: false,
            addrs: BTreeMap::new(),
            former: BTreeMap::new(),
            peer_out: Vec::new(),
            direct_out: Vec::new(),
            strangers: BTreeMap::new(),
            role_change: None,
            cals_left: Vec::new(),
            follow_requests: Vec::new(),
            claim: None,
            nops_outstanding: 0,
            unwritable: None,
            side_refused: false,
            next_side_tag: SIDE_TAG_BASE,
            next_pulse_ms: 0,
            kicks: BTreeMap::new(),
            stuck_since_ms: None,
            gave_up_at: None,
            proposals: 0,
            malformed: 0,
            unroutable: 0,
            gaps: 0,
            kicks_proposed: 0,
            digest_views: BTreeMap::new(),
            divergences: 0,
            left_at_rev: None,
        }
    }

    /// The set that decides seqn `s`: the one as of seqn `s - alpha`
    /// (seqns of the first window have the seed's set, as of seqn 0).
    pub(super) fn cals_for(&self, s: u64) -> Option<&CalSet> {
        let key = s.saturating_sub(self.cfg.alpha);
        self.sets.range(..=key).next_back().map(|(_, c)| c)
    }

    /// The latest CAL set.
    pub(super) fn cals(&self) -> Option<&CalSet> {
        self.sets.values().next_back()
    }

    /// Records the set as of seqn `seqn`, if it changed.
    fn note_set(&mut self, seqn: u64, set: Option<CalSet>) {
        match set {
            Some(set) if self.cals() != Some(&set) => {
                let ids: Vec<&NodeId> = set.iter().collect();
                log::info!("CAL set as of seqn {seqn}: {ids:?}");
                self.sets.insert(seqn, set);
            }
            Some(_) => {}
            // Every slot empty: the log cannot go on with nobody; keep the
            // last set (its CALs can still put a slot back).
            None => log::warn!("seqn {seqn}: no CAL slot holds a node id; keeping the last set"),
        }
    }

    /// Keeps the sets the window needs at `seqn`, and those a snapshot
    /// as of seqn `oldest` (the store's oldest kept) needs: those of the
    /// last `2 * alpha` seqns before either, and the one before them.
    fn prune(&mut self, seqn: u64, oldest: u64) {
        let keep_from = seqn.min(oldest).saturating_sub(2 * self.cfg.alpha);
        while let Some(second) = self.sets.keys().nth(1).copied() {
            if second > keep_from {
                break;
            }
            self.sets.pop_first();
        }
    }

    /// The sets a copy made now must carry: the one deciding the next
    /// seqn and every later one (see [`Membership::cals_for`]).
    pub(super) fn window_sets(&self) -> Vec<(u64, CalSet)> {
        self.window_sets_at(self.applied_seqn)
    }

    /// The sets a copy as of seqn `seqn` must carry (`seqn` at most the
    /// applied one, and not older than what [`Membership::prune`] keeps).
    pub(super) fn window_sets_at(&self, seqn: u64) -> Vec<(u64, CalSet)> {
        let from = (seqn + 1).saturating_sub(self.cfg.alpha);
        let before = self.sets.range(..=from).next_back();
        let after = self.sets.range(from + 1..).take_while(|(s, _)| **s <= seqn);
        before
            .into_iter()
            .chain(after)
            .map(|(s, c)| (*s, c.clone()))
            .collect()
    }

    /// Takes the addresses of `/ctl/node/*/addr`. Nodes whose files are
    /// gone stay known (up to [`FORMER_NODES_MAX`]): a kicked CAL that
    /// wakes up still talks to its old peers, and they must answer it with
    /// the values it missed, so it learns it was kicked and steps down.
    fn set_addrs(&mut self, addrs: BTreeMap<NodeId, SocketAddr>) {
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
        self.addrs = addrs;
    }

    /// The nodes whose files were deleted, with their last address
    /// (snapshots keep them: see [`Membership::remember_former`]).
    pub(super) fn former_nodes(&self) -> Vec<(NodeId, SocketAddr)> {
        self.former.iter().map(|(id, a)| (id.clone(), *a)).collect()
    }

    /// Takes back the former nodes a snapshot kept. Without them, a node
    /// restarted from a snapshot taken after a CAL's files were deleted
    /// (a kick) would ignore that CAL's datagrams while it still decides
    /// the seqns of the window with it (simulator seed 39082).
    pub(super) fn remember_former(&mut self, former: Vec<(NodeId, SocketAddr)>) {
        for (id, a) in former.into_iter().take(FORMER_NODES_MAX) {
            self.former.insert(id, a);
        }
    }

    /// The address of node `id`, current or former.
    pub(super) fn addr_of(&self, id: &str) -> Option<SocketAddr> {
        self.addrs.get(id).or_else(|| self.former.get(id)).copied()
    }

    /// The addresses of the CALs of the seqn after the last applied one
    /// (not this node): the nodes that can stream what this node lacks
    /// next. They may have left the slots already (the set of a seqn is
    /// decided `alpha` seqns before).
    pub(super) fn next_cal_addrs(&self) -> Vec<SocketAddr> {
        self.cals_for(self.applied_seqn + 1)
            .into_iter()
            .flat_map(|c| c.iter())
            .filter(|id| **id != self.id)
            .filter_map(|id| self.addr_of(id))
            .collect()
    }

    /// Whether a datagram from `addr` that says it comes from `id` may be
    /// taken as `id`'s: that node (current or former) has that address.
    /// Two ids may share an address (a node restarted under a new id): the
    /// id in the message tells them apart.
    pub(super) fn sender_is(&self, id: &str, addr: SocketAddr) -> bool {
        !id.is_empty() && self.addr_of(id) == Some(addr)
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

    /// Whether a claim of a CAL slot sent by this slave is unanswered: it
    /// may still be decided, even after this process is gone (simulation
    /// tests only).
    #[cfg(test)]
    pub fn claiming(&self) -> bool {
        self.members.claim.is_some()
    }

    /// Whether this node left consensus so lately that the others may
    /// still need it: no CAL is known to have learned the seqns it was a
    /// CAL of (the stream it follows now has not gone past them). Leaving
    /// for good (stopping the process) before then could leave the others
    /// without a majority for those seqns.
    pub fn needed_by_others(&self) -> bool {
        self.retired
            .as_ref()
            .is_some_and(|p| self.members.applied_seqn < p.next_seqn())
    }

    /// Where to attach first: the CALs of the seqn after the last one
    /// applied here (see `Membership::next_cal_addrs`).
    pub fn next_cal_addrs(&self) -> Vec<SocketAddr> {
        self.members.next_cal_addrs()
    }

    /// Starts leaving consensus gracefully (SIGTERM on a CAL, see
    /// docs/cluster.md "Leaving gracefully"): proposes emptying this
    /// node's CAL slot, so the others need not wait `-timeout` to kick
    /// it. False if there is nothing to wait for: not a CAL, in no slot,
    /// or the only CAL (nobody would be left to decide anything).
    ///
    /// From then on it takes no new client write: each is refused with
    /// `READONLY` before it is proposed, so a client (the library does it
    /// by itself) sends it to another CAL; a write the process would
    /// still propose could be cut off undecided when it stops, and its
    /// client could not tell whether it happened. Its followers' own
    /// requests (a slot claim, catch-up NOPs) are still taken: they are
    /// few, and a slave claiming the slot this node frees should not wait
    /// until it stops. The writes already in consensus are answered as
    /// they are decided; the event loop stops only once none is left
    /// ([`Replica::writes_in_consensus`]).
    pub fn leave(&mut self) -> bool {
        if self.paxos.is_none() || self.is_lone_cal() {
            return false;
        }
        let me = &self.members.id;
        let Some(slot) = self.members.slots.iter().find(|s| s.id == *me).cloned() else {
            return false;
        };
        log::info!("leaving: emptying {}", slot.path);
        self.leaving = true;
        // Before the slot: decided first, so `doozer status` never shows
        // the node gone from its slot and still writable.
        self.propose(cluster::writable_mutation(&self.members.id, false));
        self.propose(cluster::leave_mutation(&slot));
        if !self.others_are_a_majority() {
            // The others cannot decide the seqns this node still belongs
            // to without it: move them past quickly (an idle cluster
            // would take up to alpha pulses).
            for _ in 0..self.members.cfg.alpha {
                self.propose(crate::store::Mutation::Nop);
            }
        }
        true
    }

    /// Client writes proposed here and not yet answered: a leaving CAL
    /// waits for them before it stops (see [`Replica::leave`]).
    pub fn writes_in_consensus(&self) -> usize {
        let proposed: usize = self
            .writes
            .values()
            .map(|w| w.iter().flatten().count())
            .sum();
        proposed + self.batch.waiting()
    }

    /// Whether the CALs of the next seqn other than this node are a
    /// majority of that seqn's set: if this node stops, they can still
    /// decide it (a set of three or more; not a set of two).
    pub fn others_are_a_majority(&self) -> bool {
        let me = &self.members.id;
        self.members
            .cals_for(self.members.applied_seqn + 1)
            .is_some_and(|c| {
                let others = c.iter().filter(|id| *id != me).count();
                2 * others > c.len()
            })
    }

    /// This node's id.
    pub fn id(&self) -> &str {
        &self.members.id
    }

    /// The consensus counters and instances in flight, while a CAL.
    pub fn consensus_stats(&self) -> Option<(consensus::Stats, usize)> {
        self.paxos
            .as_ref()
            .map(|p| (p.stats().clone(), p.instances_in_flight()))
    }

    /// Whether this node's id fills a CAL slot as of its store's head (it
    /// may not take part in consensus yet, or any more).
    pub fn listed_as_cal(&self) -> bool {
        self.members
            .cals()
            .is_some_and(|c| c.index_of(&self.members.id).is_some())
    }

    /// What every node does after applying a change, whichever way it
    /// came (consensus or a follow stream): note what it touched, and at
    /// the end of a seqn's changes, act on them.
    pub(super) fn after_apply(&mut self, event: &Event, at: At) {
        let changed = event.flags != doozer_proto::flags::OTHER;
        if changed && cluster::touches(&event.path, CAL_DIR) {
            self.members.slots_dirty = true;
        }
        if changed && cluster::touches(&event.path, NODE_DIR) {
            self.members.addrs_dirty = true;
        }
        if at.last {
            self.after_seqn(at.seqn);
        }
    }

    /// Seqn `seqn` is applied: track the CAL set and addresses, tell
    /// consensus, change role, claim a slot.
    fn after_seqn(&mut self, seqn: u64) {
        self.members.applied_seqn = seqn;
        if self.members.gave_up_at.is_some_and(|s| seqn > s) {
            self.members.gave_up_at = None;
        }
        if std::mem::take(&mut self.members.slots_dirty) {
            self.reload_slots(seqn);
        }
        if std::mem::take(&mut self.members.addrs_dirty) {
            let addrs = cluster::node_addrs(self.store.head());
            self.members.set_addrs(addrs);
        }
        let oldest = self.oldest_seqn();
        self.members.prune(seqn, oldest);
        self.take_role(seqn);
    }

    /// With every seqn up to `seqn` applied: tell consensus the latest
    /// set, step down if this node is not a CAL of the next seqn, join if
    /// a slave is, or claim a slot.
    fn take_role(&mut self, seqn: u64) {
        let member_next = self
            .members
            .cals_for(seqn + 1)
            .is_some_and(|c| c.index_of(&self.members.id).is_some());
        let latest = self.members.cals().cloned();
        if let Some(p) = self.paxos.as_mut() {
            if let Some(cals) = latest {
                p.set_cals(seqn, cals);
            }
            if !member_next {
                self.demote(seqn);
            }
        } else if member_next && self.is_following() && seqn >= self.members.catch_up_to {
            self.promote(seqn);
        } else {
            self.want_slot();
        }
    }

    /// Re-reads the slots (after a change under `/ctl/cal`, or a copy).
    fn reload_slots(&mut self, seqn: u64) {
        let slots = cluster::slots(self.store.head());
        for old in &self.members.slots {
            let gone = !old.id.is_empty() && !slots.iter().any(|s| s.id == old.id);
            if gone && !self.members.cals_left.contains(&old.id) {
                self.members.cals_left.push(old.id.clone());
            }
        }
        self.members
            .kicks
            .retain(|id, _| slots.iter().any(|s| s.id == *id));
        self.members.slots = slots;
        let set = cluster::cal_set(&self.members.slots);
        self.members.note_set(seqn, set);
    }

    /// After a copy of the store as of seqn `seqn`, with the CAL sets of
    /// its window: start over from them.
    pub(super) fn after_copy(&mut self, seqn: u64, sets: Vec<(u64, CalSet)>) {
        self.members.catch_up_to = seqn;
        self.members.gave_up_at = None;
        self.load_members(seqn, sets);
        // A node whose slot is in the copy may have to join right away:
        // the cluster may be waiting for it.
        self.take_role(seqn);
    }

    /// Takes the slots, addresses and CAL sets of a store put in place
    /// whole as of seqn `seqn` (a copy, or a snapshot read back).
    pub(super) fn load_members(&mut self, seqn: u64, sets: Vec<(u64, CalSet)>) {
        self.members.applied_seqn = seqn;
        self.members.sets = sets.into_iter().collect();
        self.members.slots = cluster::slots(self.store.head());
        let addrs = cluster::node_addrs(self.store.head());
        self.members.set_addrs(addrs);
    }

    /// The slave whose id is in the set of seqn `seqn + 1` takes part in
    /// consensus from that seqn on: it has every seqn before, and the sets
    /// of the window.
    fn promote(&mut self, seqn: u64) {
        let alpha = self.members.cfg.alpha;
        let sets: Vec<CalSet> = (1..=alpha)
            .filter_map(|i| self.members.cals_for(seqn + i).cloned())
            .collect();
        let Some(head) = sets.first().cloned() else {
            return;
        };
        log::info!("promoted: a CAL from seqn {}", seqn + 1);
        let now = self.members.now_ms;
        let paxos = match self.retired.take() {
            // This id voted before: it goes on with its promises and votes.
            Some(mut p) => {
                p.rejoin(seqn + 1, head, &sets, now);
                p
            }
            None => {
                #[cfg(test)]
                {
                    self.trace.fresh_from = Some((seqn + 1, self.trace.votes.len()));
                }
                self.new_paxos(seqn + 1, head, &sets)
            }
        };
        self.paxos = Some(paxos);
        self.members.left_at_rev = None;
        self.follow_state = super::FollowState::Idle;
        self.writable = true;
        self.members.claim = None;
        self.members.nops_outstanding = 0;
        self.members.follow_requests.clear();
        self.members.role_change = Some(RoleChange::Promoted);
        self.members.next_pulse_ms = self.members.now_ms + self.members.cfg.pulse_ms;
        self.propose(cluster::writable_mutation(&self.members.id, true));
    }

    pub(super) fn new_paxos(&self, first: u64, head: CalSet, sets: &[CalSet]) -> Paxos {
        let m = &self.members;
        let mut cfg = consensus::Config::new(m.id.clone(), Bytes::new());
        cfg.alpha = m.cfg.alpha;
        cfg.fill_ms = m.cfg.fill_ms;
        cfg.silent_ms = m.cfg.timeout_ms;
        cfg.durable = self.durable;
        Paxos::joining(cfg, first, head, sets, m.now_ms, m.cfg.seed)
    }

    /// Stops taking part in consensus after seqn `seqn` and becomes a
    /// slave. Its consensus state is kept, retired: this id's promises and
    /// votes are never forgotten while the process lives.
    ///
    /// Writes still waiting are answered now: those not yet proposed with
    /// `READONLY` (they never will be), those already proposed with an
    /// error that says their outcome is unknown (the others may still
    /// decide them).
    pub(super) fn demote(&mut self, seqn: u64) {
        #[cfg(test)]
        self.trace_votes();
        let Some(mut p) = self.paxos.take() else {
            return;
        };
        self.writing.clear();
        let unproposed = self.take_unproposed();
        self.fail_writes(unproposed, ErrCode::Readonly, None);
        for (id, w) in std::mem::take(&mut self.writes) {
            if p.withdraw(id) {
                self.fail_writes(w, ErrCode::Readonly, None);
            } else {
                let why = "outcome unknown: this node stopped being a CAL while the write was \
                           in consensus; read the file to see whether it happened";
                self.fail_writes(w, ErrCode::Other, Some(why));
            }
        }
        p.retire();
        self.retired = Some(p);
        self.members.left_at_rev = Some(self.store.rev());
        self.writable = false;
        self.members.peer_out.clear();
        self.members.kicks.clear();
        self.members.stuck_since_ms = None;
        log::warn!("not a CAL after seqn {seqn}; attaching again as a slave");
        self.drop_followers();
        self.start_following();
        self.members.role_change = Some(RoleChange::Demoted);
    }

    /// A slave following its CAL: claim a free slot, or, once in the set,
    /// keep NOPs going until the log reaches the seqn it joins at (an idle
    /// cluster would not get there on its own).
    pub(super) fn want_slot(&mut self) {
        // A leaving node that left consensus before it stops (it waits
        // for its last writes, docs/cluster.md "Leaving gracefully") must
        // not take its freed slot back: it would hold a slot while gone.
        if self.paxos.is_some() || !self.is_following() || self.leaving || self.members.side_refused
        {
            return;
        }
        let alpha = self.members.cfg.alpha;
        let applied = self.members.applied_seqn;
        let id = self.members.id.clone();
        let in_set = |s: &CalSet| s.index_of(&id).is_some();
        if self.members.cals().is_some_and(in_set) {
            if self.members.nops_outstanding > 0 {
                return;
            }
            // The first seqn of the latest run of sets naming this node.
            let since = self
                .members
                .sets
                .iter()
                .rev()
                .take_while(|(_, s)| in_set(s))
                .last()
                .map_or(applied, |(s, _)| *s);
            let need = (since + alpha).saturating_sub(applied + 1).min(alpha);
            for _ in 0..need {
                let req = self.members.side_request(Verb::Nop);
                self.members.follow_requests.push(req);
            }
            self.members.nops_outstanding = need;
        } else if self.members.claim.is_none() {
            self.say_unwritable();
            let Some(slot) = self.members.slots.iter().find(|s| s.id.is_empty()).cloned() else {
                return;
            };
            log::info!("claiming CAL slot {}", slot.path);
            let mut req = self.members.side_request(Verb::Set);
            req.path = Some(slot.path);
            req.rev = Some(slot.rev);
            req.value = Some(Bytes::from(id));
            self.members.claim = req.tag;
            self.members.follow_requests.push(req);
        }
    }

    /// A former CAL, now a slave outside the set, sets its `writable` file
    /// back to `false` (through the CAL it follows; attaching does not wait
    /// for consensus, so a node can always follow again).
    fn say_unwritable(&mut self) {
        if self.members.unwritable.is_some() {
            return;
        }
        let path = ctl::node_file(&self.members.id, ctl::NodeFile::Writable);
        let says_writable = self
            .store
            .head()
            .get(&path)
            .is_ok_and(|(body, _)| &body[..] == b"true");
        if !says_writable {
            return;
        }
        let mut req = self.members.side_request(Verb::Set);
        req.path = Some(path);
        req.rev = Some(doozer_proto::rev::CLOBBER);
        req.value = Some(Bytes::from_static(b"false"));
        self.members.unwritable = req.tag;
        self.members.follow_requests.push(req);
    }

    /// An answer to a request sent on the follow connection.
    pub(super) fn side_response(&mut self, resp: Response) {
        let tag = resp.tag;
        if resp.err_code == Some(ErrCode::Readonly as i32) && !self.members.side_refused {
            log::info!(
                "the followed node takes no writes (READONLY): no more requests to it until \
                 its stream moves"
            );
            self.members.side_refused = true;
        }
        if tag.is_some() && tag == self.members.claim {
            self.members.claim = None;
            // Won: the CAL answers before it streams the change, which
            // arrives next (and calls `want_slot`). Lost: try another slot.
            if let Some(code) = resp.err_code {
                let code = ErrCode::try_from(code).map_or("unknown", ErrCode::wire_name);
                log::info!("slot claim lost ({code})");
                self.want_slot();
            }
        } else if tag.is_some() && tag == self.members.unwritable {
            // Answered: the file says so now (or it will be set again).
            if resp.err_code.is_some() {
                self.members.unwritable = None;
            }
        } else {
            self.members.nops_outstanding = self.members.nops_outstanding.saturating_sub(1);
        }
    }

    /// The follow connection broke: requests on it are gone.
    pub(super) fn forget_side_requests(&mut self) {
        self.members.side_refused = false;
        self.members.claim = None;
        self.members.nops_outstanding = 0;
        self.members.unwritable = None;
        self.members.follow_requests.clear();
    }
}
