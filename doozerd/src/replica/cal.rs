//! A CAL's duties (docs/cluster.md): proposing values, applying what
//! consensus decides, taking peer messages, the pulse, kicking CALs a
//! majority finds silent, stepping down when it cannot catch up, and
//! comparing store digests with the other CALs to find a diverged store.

use std::net::SocketAddr;

use bytes::Bytes;
use doozer_proto::peer::PeerMsg;

use super::Replica;
use crate::cluster;
use crate::consensus::{CalSet, NodeId, ProposalId};
use crate::store::{Mutation, Value};

/// How long a CAL that cannot catch up through consensus (its peers no
/// longer keep what it lacks) waits before it copies the store instead.
const CATCH_UP_GIVE_UP_MS: u64 = 1_000;
/// Least time between two answers to one unknown address.
const STRANGER_ANSWER_MS: u64 = 500;
/// Unknown addresses remembered for that.
const STRANGERS_MAX: usize = 256;

impl Replica {
    /// Becomes the only CAL of a new cluster and writes its files.
    pub(super) fn start_seed(&mut self, muts: Vec<Mutation>) {
        let me = CalSet::new(vec![self.members.id.clone()]);
        let Ok(me) = me else {
            log::error!("cannot seed: empty node id");
            return;
        };
        self.members.sets.insert(0, me.clone());
        self.members.applied_seqn = 0;
        self.replaced_store(0);
        self.paxos = Some(self.new_paxos(1, me, &[]));
        self.writable = true;
        self.members.next_pulse_ms = self.members.now_ms + self.members.cfg.pulse_ms;
        for m in muts {
            self.propose(m);
        }
        self.pump();
    }

    /// Proposes `m` as this node's own write (no client to answer).
    pub(super) fn propose(&mut self, m: Mutation) -> Option<ProposalId> {
        let value = match m {
            // Unique bytes: never mistaken for a fill (see `tagged_nop`).
            Mutation::Nop => {
                let tag = format!("{}.{}", self.members.id, self.members.proposals + 1);
                Mutation::tagged_nop(&tag)
            }
            m => m.encode(),
        };
        self.propose_bytes(value)
    }

    /// Proposes an encoded value.
    pub(super) fn propose_bytes(&mut self, value: Bytes) -> Option<ProposalId> {
        let p = self.paxos.as_mut()?;
        self.members.proposals += 1;
        Some(p.propose(value))
    }

    /// Applies everything consensus learned, in seqn order, and collects
    /// the messages it wants sent. Not re-entrant: what applying a value
    /// does (answering parked reads, ...) never pumps; this loop picks up
    /// anything it decides.
    pub(super) fn pump(&mut self) {
        loop {
            self.flush_writes();
            let Some(p) = self.paxos.as_mut() else {
                return;
            };
            let ready = p.ready();
            self.members.peer_out.extend(ready.messages);
            if ready.learned.is_empty() {
                return;
            }
            let on_disk = ready.on_disk;
            for (seqn, value, id) in ready.learned {
                if self.paxos.is_none() {
                    return; // demoted by an earlier value: the rest is not ours
                }
                if seqn != self.members.applied_seqn + 1 {
                    // Consensus delivers every seqn once, in order, from
                    // the one after the last applied; anything else is a
                    // bug that would silently diverge this node. Step down
                    // and copy the store again rather than go on.
                    log::error!(
                        "BUG: learned seqn {seqn} after seqn {}; stepping down to copy the store again",
                        self.members.applied_seqn
                    );
                    self.members.gaps += 1;
                    self.force_copy = true;
                    let applied = self.members.applied_seqn;
                    self.demote(applied);
                    return;
                }
                #[cfg(test)]
                self.trace.learned.push((seqn, value.clone()));
                let v = Value::decode(&value).unwrap_or_else(|e| {
                    // Every node decodes the same bytes the same way, so
                    // all apply the same NOP.
                    log::warn!("seqn {seqn}: {e}; applied as NOP");
                    self.members.malformed += 1;
                    Value::default()
                });
                if let Some(id) = id {
                    self.members.kicks.retain(|_, k| *k != id);
                }
                let pending = id
                    .and_then(|id| self.writes.remove(&id))
                    .unwrap_or_default();
                for p in pending.iter().flatten() {
                    self.write_done(p.conn);
                }
                let early = !pending.is_empty() && on_disk.contains(&seqn);
                self.record_applied(seqn, value);
                self.apply_value(seqn, &v, pending, early);
            }
        }
    }

    /// Handles a peer datagram's message from `from`; what it decides is
    /// applied by the next [`Replica::pump`]. False if the message does not
    /// come from the node it names, or this node is not a CAL (the caller
    /// counts it as ignored).
    pub(super) fn peer_step(&mut self, from: SocketAddr, msg: PeerMsg) -> bool {
        if !self.members.sender_is(&msg.sender, from) {
            self.answer_stranger(from, &msg);
            return false;
        }
        if self.disk_error.is_some() {
            return false; // consensus stands still (see set_disk_error)
        }
        let id: NodeId = msg.sender.clone();
        self.compare_digest(&id, msg.digest_rev, msg.digest);
        let now = self.members.now_ms;
        // A retired CAL still answers what it knows, and votes where it
        // is still a CAL, with the state it voted with before.
        let Some(p) = self.paxos.as_mut().or(self.retired.as_mut()) else {
            return false;
        };
        p.step(&id, msg, now);
        true
    }

    /// A message from a node this one does not know (no node file has
    /// its id and address): typically a CAL removed while it was away,
    /// coming back (from a data directory, or a long pause) after every
    /// node that knew its address restarted. Nothing of it is taken; but
    /// if it asks about seqns this CAL learned long ago, a bare batch
    /// tells it how far the log is and that nothing is kept for it, so it
    /// copies the store and finds out what it is now. At most one such
    /// answer per address per heartbeat.
    fn answer_stranger(&mut self, from: SocketAddr, msg: &PeerMsg) {
        let Some(p) = self.paxos.as_ref() else {
            return;
        };
        let next = p.next_seqn();
        let behind = msg.learned_upto < next
            && (msg.accepts.iter().any(|a| a.seqn < next)
                || msg
                    .prepares
                    .iter()
                    .any(|x| x.seqns.iter().any(|s| *s < next))
                || msg.fetch_from.is_some_and(|f| f < next));
        if !behind || msg.sender.is_empty() {
            return;
        }
        let now = self.members.now_ms;
        let strangers = &mut self.members.strangers;
        if strangers
            .get(&from)
            .is_some_and(|t| now < t + STRANGER_ANSWER_MS)
        {
            return;
        }
        if strangers.len() >= STRANGERS_MAX {
            strangers.clear();
        }
        strangers.insert(from, now);
        let bare = PeerMsg {
            sender: self.members.id.clone(),
            learned_upto: next,
            oldest_kept: next,
            ..Default::default()
        };
        self.members.direct_out.push((from, bare));
    }

    /// Compares CAL `from`'s store digest at `rev` with this store's at
    /// that rev (if still kept). When a majority of the set's CALs differ
    /// from this node, its store diverged (a bug, or a value applied
    /// differently): it stops serving, logs loudly, and copies the store
    /// again as a slave.
    fn compare_digest(&mut self, from: &str, rev: i64, digest: u64) {
        if self.paxos.is_none() || rev <= 0 {
            return;
        }
        let Ok(snap) = self.store.snapshot(Some(rev)) else {
            return; // not applied here yet, or too old
        };
        let agrees = snap.digest() == digest;
        let before = self.members.digest_views.insert(from.to_owned(), agrees);
        if !agrees && before != Some(false) {
            log::warn!("CAL {from}'s store differs from this node's at rev {rev}");
        }
        let Some(cals) = self.members.cals() else {
            return;
        };
        let differ = self
            .members
            .digest_views
            .iter()
            .filter(|(p, a)| !**a && cals.index_of(p).is_some())
            .count();
        if differ < cals.quorum() {
            return;
        }
        log::error!(
            "this node's store diverged: it differs from {differ} CALs at the same rev; \
             it stops serving and copies the store again"
        );
        self.members.divergences += 1;
        self.members.digest_views.clear();
        self.force_copy = true;
        let applied = self.members.applied_seqn;
        self.demote(applied);
    }

    /// Queues consensus's batches without applying what it learned: an
    /// acceptor's votes lead the output, ahead of what applying produces.
    pub(super) fn queue_peer_messages(&mut self) {
        if let Some(p) = self.paxos.as_mut() {
            self.members.peer_out.extend(p.take_messages());
        }
        if let Some(p) = self.retired.as_mut() {
            self.members.peer_out.extend(p.take_messages());
        }
    }

    /// Messages to send, with the peer's address and this store's digest.
    /// Messages for a node whose address is unknown are dropped (and
    /// counted).
    pub(super) fn take_peer_messages(&mut self, out: &mut Vec<(SocketAddr, PeerMsg)>) {
        out.append(&mut self.members.direct_out);
        let msgs = std::mem::take(&mut self.members.peer_out);
        self.route(msgs, true, out);
    }

    /// The messages that may leave before this output's records are
    /// synced (`Paxos::take_early_messages`), routed as above.
    pub(super) fn take_early_messages(&mut self, out: &mut Vec<(SocketAddr, PeerMsg)>) {
        let Some(p) = self.paxos.as_mut() else {
            return;
        };
        let msgs = p.take_early_messages();
        // No digest: the head may hold changes not on disk yet, and a
        // crash before the sync would leave the others comparing with a
        // store that never was (rev 0 is not compared).
        self.route(msgs, false, out);
    }

    /// The lazy votes (`Paxos::take_lazy_messages`), routed as above.
    /// A retired CAL may still vote (lazily too).
    pub(super) fn take_lazy_messages(&mut self, out: &mut Vec<(SocketAddr, PeerMsg)>) {
        let mut msgs = Vec::new();
        for p in [self.paxos.as_mut(), self.retired.as_mut()]
            .into_iter()
            .flatten()
        {
            msgs.append(&mut p.take_lazy_messages());
        }
        self.route(msgs, false, out);
    }

    /// Adds each message's peer address and, with `digest`, this store's
    /// digest at its head.
    fn route(
        &mut self,
        msgs: Vec<(NodeId, PeerMsg)>,
        digest: bool,
        out: &mut Vec<(SocketAddr, PeerMsg)>,
    ) {
        let head = self.store.head();
        let (rev, digest) = if digest {
            (head.rev(), head.digest())
        } else {
            (0, 0)
        };
        for (to, mut msg) in msgs {
            match self.members.addr_of(&to) {
                Some(a) => {
                    msg.digest_rev = rev;
                    msg.digest = digest;
                    out.push((a, msg));
                }
                None => self.members.unroutable += 1,
            }
        }
    }

    /// The earliest time (ms) [`Replica::tick`] has work to do.
    pub(super) fn next_deadline_ms(&self) -> Option<u64> {
        let p = self.paxos.as_ref()?;
        let m = &self.members;
        let mut at = m.next_pulse_ms;
        if let Some(t) = p.next_deadline() {
            at = at.min(t);
        }
        if let Some(t) = m.stuck_since_ms {
            at = at.min(t + CATCH_UP_GIVE_UP_MS);
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

    /// Advances time: consensus timeouts, giving up, the pulse, kicks.
    pub(super) fn tick(&mut self) {
        let now = self.members.now_ms;
        let Some(p) = self.paxos.as_mut() else {
            return;
        };
        p.tick(now);
        if p.cannot_catch_up() {
            let since = *self.members.stuck_since_ms.get_or_insert(now);
            if now >= since + CATCH_UP_GIVE_UP_MS {
                // Peers learned further and no longer keep what this node
                // lacks (a long pause): copy the store as a slave.
                let applied = self.members.applied_seqn;
                log::warn!(
                    "behind the other CALs after seqn {applied}, and they no longer keep what it lacks"
                );
                self.demote(applied);
                self.members.gave_up_at = Some(applied);
                return;
            }
        } else {
            self.members.stuck_since_ms = None;
        }
        if now >= self.members.next_pulse_ms {
            self.members.next_pulse_ms = now + self.members.cfg.pulse_ms.max(1);
            let m = cluster::pulse_mutation(&self.members.id, self.store.rev());
            self.propose(m);
        }
        self.kick_silent();
        self.pump();
    }

    /// Proposes the removal of CALs a majority of the set finds silent for
    /// `-timeout`, if this node is the one to do it (the first CAL, in set
    /// order, that is not found silent); withdraws its kicks of CALs no
    /// longer found silent. A kick is one guarded value: it changes
    /// nothing if the slot changed, or if it is decided too late.
    fn kick_silent(&mut self) {
        let Some(p) = self.paxos.as_mut() else {
            return;
        };
        let verdicts = p.silent_by_majority();
        let kicks = std::mem::take(&mut self.members.kicks);
        for (victim, pid) in kicks {
            if verdicts.iter().any(|(v, _)| *v == victim) || !p.withdraw(pid) {
                self.members.kicks.insert(victim, pid);
            } else {
                log::info!("CAL {victim} is heard again: kick withdrawn");
            }
        }
        let me = self.members.id.clone();
        let expires_after = self.members.applied_seqn + 2 * self.members.cfg.alpha;
        for (victim, live) in verdicts {
            if live.first() != Some(&me) || self.members.kicks.contains_key(&victim) {
                continue;
            }
            // One slot at a time (an id an operator put in two slots is
            // kicked from the next one once this kick is decided).
            let slot = self.members.slots.iter().find(|s| s.id == victim).cloned();
            if let Some(slot) = slot {
                log::warn!(
                    "kicking CAL {victim}: a majority has not heard from it for -timeout; emptying {}",
                    slot.path
                );
                let value = cluster::kick_value(self.store.head(), &slot, expires_after);
                // Ahead of the queue: behind a backlog (writes queued in
                // a partition) it could expire undecided, and the dead CAL
                // would stay in the set until the next try.
                if let Some(pid) = self.paxos.as_mut().map(|p| p.propose_first(value.encode())) {
                    self.members.proposals += 1;
                    self.members.kicks.insert(victim.clone(), pid);
                    self.members.kicks_proposed += 1;
                }
            }
        }
    }
}
