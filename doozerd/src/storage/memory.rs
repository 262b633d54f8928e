//! [`MemoryDir`]: a data directory held in memory, as the event loop would
//! leave it on disk, for the simulator and the fuzz targets: what one
//! output syncs is kept, nothing else (a crash keeps exactly this).

use std::net::SocketAddr;

use doozer_proto::peer::PeerMsg;

use super::Record;
use crate::replica::{Output, Restored, SnapshotJob};

/// The last snapshot and every record synced after it.
#[derive(Debug, Default, Clone)]
pub struct MemoryDir {
    snapshot: Option<SnapshotJob>,
    records: Vec<Record>,
    /// Records of outputs whose sync waits for a later one's
    /// ([`Output::sync_can_wait`]): lost in a crash.
    waiting: Vec<Record>,
    /// The lazy votes of those outputs: sent once they are synced, lost
    /// in a crash.
    lazy: Vec<(SocketAddr, PeerMsg)>,
}

impl MemoryDir {
    /// Takes one output's checkpoint and records, as the event loop
    /// writes them before sending anything of it; false if they wait for
    /// a later output's sync instead, as the event loop lets them (with
    /// `may_wait`) when [`Output::sync_can_wait`]: with records waiting,
    /// an output that needs no sync adds to them (here with no time limit,
    /// so they may wait longer than in the event loop). Lazy votes wait
    /// with their records; once synced, they join `out.messages`.
    pub fn persist(&mut self, out: &mut Output, may_wait: bool) -> bool {
        if may_wait && out.sync_can_wait() && !(out.persist.is_empty() && self.waiting.is_empty()) {
            self.waiting.append(&mut out.persist);
            self.lazy.append(&mut out.lazy_messages);
            return false;
        }
        self.records.append(&mut self.waiting);
        out.messages.append(&mut self.lazy);
        out.messages.append(&mut out.lazy_messages);
        if let Some(job) = out.checkpoint.take() {
            // The new log starts with the acceptor state; older segments
            // and snapshots are deleted.
            self.records = std::iter::once(Record::Checkpoint { seqn: job.seqn })
                .chain(job.records.iter().cloned())
                .collect();
            self.snapshot = Some(job);
        }
        self.records.append(&mut out.persist);
        true
    }

    /// The process died: records not yet synced are gone.
    pub fn crash(&mut self) {
        self.waiting.clear();
        self.lazy.clear();
    }

    /// A snapshot written in the background: the log behind it goes
    /// (every record about a seqn it covers; the floor of own seqns is
    /// kept, as a segment holding it is kept).
    pub fn snapshot(&mut self, job: SnapshotJob) {
        let s = job.seqn;
        let floor = self
            .records
            .iter()
            .filter_map(|r| match r {
                Record::Floor { seqn } => Some(*seqn),
                _ => None,
            })
            .max();
        self.records.retain(|r| match r {
            Record::Promise { seqn, .. }
            | Record::Vote { seqn, .. }
            | Record::Applied { seqn, .. }
            | Record::Replayed { seqn, .. }
            | Record::Checkpoint { seqn } => *seqn > s,
            Record::Floor { .. } => false,
        });
        if let Some(f) = floor {
            self.records.insert(0, Record::Floor { seqn: f });
        }
        self.snapshot = Some(job);
    }

    /// The snapshot as recovery reads it back.
    pub fn restored(&self) -> Option<Restored> {
        self.snapshot.as_ref().map(SnapshotJob::restored)
    }

    /// The last snapshot written, if any.
    pub fn last_snapshot(&self) -> Option<&SnapshotJob> {
        self.snapshot.as_ref()
    }

    /// The records after the snapshot, in order.
    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// Whether nothing was ever written.
    pub fn is_empty(&self) -> bool {
        self.snapshot.is_none() && self.records.is_empty()
    }
}
