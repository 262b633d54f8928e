//! Batching client writes (docs/cluster.md#batching): a CAL proposes the
//! writes that arrived while its previous batch waited for a seqn as one
//! consensus value, one change per write. Each change is applied at a rev
//! of its own and answered on its own, so clients see what they saw with
//! one write per value; only consensus does less work per write.

use doozer_proto::{ctl, ErrCode};

use super::{ConnId, Pending, Replica};
use crate::store::{Mutation, ValueBuilder};

/// Most bytes of one batch value. One change alone may be larger (a body
/// of up to `MAX_BODY_LEN` with a 4 KiB path: it travels alone); a batch
/// stops growing here, so any value fits one peer datagram as a single
/// write's does.
pub const BATCH_BYTES_MAX: usize = 48 << 10;
/// Most writes in one batch: bounds the work of applying one seqn.
pub const BATCH_WRITES_MAX: usize = 1_024;

/// Client writes waiting to be proposed together.
#[derive(Debug, Default)]
pub(super) struct WriteBatch {
    value: ValueBuilder,
    /// Who to answer, one per change, in order; `None` once the
    /// connection is gone (its write still happens).
    pending: Vec<Option<Pending>>,
}

impl WriteBatch {
    /// Whether `m` may join the batch (an empty batch takes anything).
    fn fits(&self, m: &Mutation) -> bool {
        self.value.is_empty()
            || (self.value.len() + ValueBuilder::added_len(m) <= BATCH_BYTES_MAX
                && self.pending.len() < BATCH_WRITES_MAX)
    }

    /// Forgets who to answer on `conn`.
    pub(super) fn forget(&mut self, conn: ConnId) {
        forget(&mut self.pending, conn);
    }

    /// Writes waiting to be answered.
    pub(super) fn waiting(&self) -> usize {
        self.pending.iter().flatten().count()
    }
}

/// Whether `m` is proposed in a value of its own: a write under `/ctl`
/// (slots, node files) changes membership, whose rules see at most one
/// operator change per seqn, as before batching. Two slots emptied in one
/// seqn would leave the CALs serving with no slot naming them, where one
/// after the other lets each attach again through an empty slot.
fn travels_alone(m: &Mutation) -> bool {
    match m {
        Mutation::Set { path, .. } | Mutation::Del { path, .. } => ctl::touches(path, ctl::CTL_DIR),
        Mutation::Nop => false,
    }
}

/// Forgets who to answer on `conn` among `pending` (the connection is
/// gone; the writes still happen).
pub(super) fn forget(pending: &mut [Option<Pending>], conn: ConnId) {
    for p in pending {
        if p.is_some_and(|p| p.conn == conn) {
            *p = None;
        }
    }
}

impl Replica {
    /// Takes a client's write into the next batch; answered when it is
    /// applied. A lone CAL proposes it at once (decided before the next
    /// request of the iteration is handled).
    pub(super) fn propose_write(&mut self, m: Mutation, pending: Pending) {
        if self.paxos.is_none() {
            return self.fail(pending.conn, pending.tag, ErrCode::Readonly, None);
        }
        self.hold(pending.conn, pending.tag, None);
        *self.writing.entry(pending.conn).or_default() += 1;
        let alone = travels_alone(&m);
        if alone || !self.batch.fits(&m) {
            self.propose_batch();
        }
        self.batch.value.push(&m);
        self.batch.pending.push(Some(pending));
        if alone || self.is_lone_cal() {
            self.propose_batch();
        }
    }

    /// Proposes the batch if consensus has nothing queued: while a batch
    /// waits for a free seqn of this CAL, the next one grows. Called
    /// whenever consensus may have freed a seqn ([`Replica::pump`]).
    pub(super) fn flush_writes(&mut self) {
        let idle = self.paxos.as_ref().is_some_and(|p| p.queued() == 0);
        if idle && !self.batch.value.is_empty() {
            self.propose_batch();
        }
    }

    /// Proposes the batch now, as one value.
    fn propose_batch(&mut self) {
        let value = self.batch.value.take();
        let pending = std::mem::take(&mut self.batch.pending);
        if pending.is_empty() {
            return;
        }
        self.stats.write_batches += 1;
        match self.propose_bytes(value) {
            Some(id) => {
                self.writes.insert(id, pending);
            }
            None => {
                for p in pending.iter().flatten() {
                    self.write_done(p.conn);
                }
                self.fail_writes(pending, ErrCode::Readonly, None)
            }
        }
    }

    /// Answers writes that will not be applied here with `code`.
    pub(super) fn fail_writes(
        &mut self,
        pending: Vec<Option<Pending>>,
        code: ErrCode,
        detail: Option<&str>,
    ) {
        for w in pending.into_iter().flatten() {
            self.untag(w);
            self.fail(w.conn, w.tag, code, detail.map(str::to_string));
        }
    }

    /// Writes not yet proposed (they never will be, on demotion).
    pub(super) fn take_unproposed(&mut self) -> Vec<Option<Pending>> {
        self.batch.value.take();
        std::mem::take(&mut self.batch.pending)
    }
}
