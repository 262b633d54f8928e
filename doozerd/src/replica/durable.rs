//! Durable mode (`-d DIR`, docs/storage.md), the replica's side: what it
//! hands the event loop to make durable in each [`super::Output`], and how
//! a replica comes back from what was on disk.
//!
//! - Acceptor promises and votes, and the floor of this node's own seqns,
//!   come from consensus (`Paxos::take_records`).
//! - Every applied seqn is an `Applied` record with the value it applied:
//!   the decided value on a CAL, the changes of the follow stream on a
//!   slave (replayed, they give the same revs).
//! - A store replaced whole (seeding, a copy from another node, a restore
//!   from a backup) is a checkpoint: a snapshot written at once, and a new
//!   log that starts with the acceptor state still needed.
//! - Snapshots in the background are taken as of the oldest kept rev, so
//!   the log after them brings back every rev `-hist` keeps readable.
//!
//! Recovery is pure ([`Replica::recover`]): the node and the simulator
//! both use it.

use std::collections::VecDeque;
use std::net::SocketAddr;

use bytes::Bytes;

use super::Replica;
use crate::consensus::{CalSet, NodeId};
use crate::storage::Record;
use crate::store::{Copy, FileCopy, Mutation, Rev, Snapshot, Value};

/// Values of the last applied seqns consensus gets back after a restart
/// (as many as it keeps for stragglers while it runs).
const RECENT_VALUES: usize = 4_096;

/// A copy of the tree as of one seqn, to be written as a snapshot: in the
/// background ([`Replica::snapshot_job`]), or at once as a checkpoint
/// ([`super::Output::checkpoint`]).
#[derive(Debug, Clone)]
pub struct SnapshotJob {
    /// Every seqn up to this one is in the tree.
    pub seqn: u64,
    /// The tree's rev.
    pub rev: Rev,
    /// The CAL sets of the window after `seqn` (what a copy carries).
    pub sets: Vec<(u64, CalSet)>,
    /// Nodes whose files were deleted, with their last address.
    pub former: Vec<(NodeId, SocketAddr)>,
    /// The tree (shared with the store: O(1) to take).
    pub tree: Snapshot,
    /// For a checkpoint: the acceptor state the new log starts with.
    pub records: Vec<Record>,
}

impl SnapshotJob {
    /// The snapshot as reading it back from disk gives it: its files
    /// with their revs, in walk order (the simulator's and the fuzz
    /// targets' disks keep the job itself).
    pub fn restored(&self) -> Restored {
        let all = crate::store::Glob::parse("/**").expect("a valid glob");
        let files = self
            .tree
            .walk_iter(&all)
            .map(|f| FileCopy {
                path: f.path,
                body: f.body,
                rev: f.rev,
            })
            .collect();
        Restored {
            seqn: self.seqn,
            rev: self.rev,
            sets: self.sets.clone(),
            former: self.former.clone(),
            files,
        }
    }
}

/// A snapshot read back from disk.
#[derive(Debug, Clone, Default)]
pub struct Restored {
    /// The seqn it is as of.
    pub seqn: u64,
    /// Its rev.
    pub rev: Rev,
    /// The CAL sets of its window.
    pub sets: Vec<(u64, CalSet)>,
    /// Nodes whose files were deleted, with their last address.
    pub former: Vec<(NodeId, SocketAddr)>,
    /// Its files.
    pub files: Vec<FileCopy>,
}

/// Why what was on disk cannot be taken up.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecoverError {
    /// The snapshot does not make a valid tree.
    #[error("the snapshot at seqn {seqn} is not a valid tree: {why}")]
    BadSnapshot {
        /// Its seqn.
        seqn: u64,
        /// What is wrong.
        why: String,
    },
    /// Applied changes after a gap (Applied or Replayed records).
    #[error("the log has seqn {found} applied after seqn {applied}: a record is missing")]
    Gap {
        /// The last seqn applied.
        applied: u64,
        /// The next one found.
        found: u64,
    },
    /// Records but no snapshot to start from.
    #[error("the log has records but no snapshot to start from (a snapshot file is missing)")]
    MissingSnapshot,
}

impl Replica {
    /// Takes what must be durable into `out` (see [`super::Output`]).
    pub(super) fn take_durable(&mut self, out: &mut super::Output) {
        if !self.durable {
            return;
        }
        if let Some(mut job) = self.checkpoint.take() {
            let p = self.paxos.as_ref().or(self.retired.as_ref());
            job.records = p.map(|p| p.acceptor_records(job.seqn)).unwrap_or_default();
            out.checkpoint = Some(job);
        }
        out.persist.append(&mut self.persist);
        for p in [self.paxos.as_mut(), self.retired.as_mut()]
            .into_iter()
            .flatten()
        {
            out.eager_records |= !p.take_records(&mut out.persist);
        }
    }

    /// Everything the outputs so far asked to persist is on disk (the
    /// event loop synced it): see [`Output::early_messages`].
    ///
    /// [`Output::early_messages`]: super::Output::early_messages
    pub fn records_synced(&mut self) {
        if let Some(p) = self.paxos.as_mut() {
            p.records_synced();
        }
    }

    /// The data directory cannot be written (`Some(why)`, an error the
    /// event loop got), or can again (`None`). Meanwhile consensus stands
    /// still (no vote, promise or decision is made that could not be
    /// persisted; peer messages are ignored), writes are answered `OTHER`
    /// with the detail `disk: why`, and reads are served.
    pub fn set_disk_error(&mut self, why: Option<String>) {
        self.disk_error = why;
    }

    /// The data directory's failure, while its writes fail.
    pub fn disk_error(&self) -> Option<&str> {
        self.disk_error.as_deref()
    }

    /// Seqn `seqn` was applied with `value` (durable mode: recorded).
    pub(super) fn record_applied(&mut self, seqn: u64, value: Bytes) {
        if self.durable {
            self.persist.push(Record::Applied { seqn, value });
        }
    }

    /// One change of seqn `seqn` replayed from the follow stream; the
    /// seqn's record is made when its `last` change is in.
    pub(super) fn record_replayed(&mut self, seqn: u64, m: Mutation, last: bool) {
        if !self.durable {
            return;
        }
        self.replaying.push(m);
        if last {
            let value = Value::of(std::mem::take(&mut self.replaying)).encode();
            self.persist.push(Record::Replayed { seqn, value });
        }
    }

    /// The store was replaced whole as of seqn `seqn` (a copy, a seed, a
    /// restore): what was applied before is void, and a checkpoint writes
    /// the new tree before anything after it.
    pub(super) fn replaced_store(&mut self, seqn: u64) {
        self.base = (self.store.rev(), seqn);
        if !self.durable {
            return;
        }
        self.replaying.clear();
        self.persist
            .retain(|r| !matches!(r, Record::Applied { .. } | Record::Replayed { .. }));
        self.checkpoint = Some(SnapshotJob {
            seqn,
            rev: self.store.rev(),
            sets: self.members.window_sets_at(seqn),
            former: self.members.former_nodes(),
            tree: self.store.head().clone(),
            records: Vec::new(),
        });
    }

    /// The seqn of the oldest rev the store keeps (a snapshot as of it
    /// brings back all the history `-hist` keeps).
    pub(super) fn oldest_seqn(&self) -> u64 {
        let oldest = self.store.oldest_rev();
        if oldest <= self.base.0 {
            return self.base.1;
        }
        self.store.at(oldest).map_or(self.base.1, |at| {
            // A rev in the middle of a seqn's changes: the seqn before is
            // the last whole one.
            if at.last {
                at.seqn
            } else {
                at.seqn.saturating_sub(1)
            }
        })
    }

    /// A snapshot to write in the background: the tree as of the oldest
    /// whole seqn the store keeps, so the log after it brings back every
    /// kept rev. `None` before anything was applied.
    pub fn snapshot_job(&self) -> Option<SnapshotJob> {
        let (base_rev, base_seqn) = self.base;
        let head = self.store.rev();
        let mut found = None;
        for rev in self.store.oldest_rev()..=head {
            if rev == base_rev {
                found = Some((rev, base_seqn));
                break;
            }
            if let Some(at) = self.store.at(rev).filter(|a| a.last) {
                found = Some((rev, at.seqn));
                break;
            }
        }
        let (rev, seqn) = found?;
        let tree = self.store.snapshot(Some(rev)).ok()?;
        Some(SnapshotJob {
            seqn,
            rev,
            sets: self.members.window_sets_at(seqn),
            former: self.members.former_nodes(),
            tree,
            records: Vec::new(),
        })
    }

    /// A replica as it was when its node stopped: the snapshot, then every
    /// seqn applied after it, in order; then its role. A node whose id is
    /// in the CAL set of the next seqn takes part in consensus again at
    /// once, with the promises and votes it made (an id never votes
    /// without them); any other node is a slave that must attach again
    /// (it keeps its acceptor state, in case it is a CAL again).
    pub fn recover(
        config: super::ReplicaConfig,
        snapshot: Option<Restored>,
        records: &[Record],
    ) -> Result<Replica, RecoverError> {
        let mut r = Replica::new(config);
        let Some(snap) = snapshot else {
            if records.is_empty() {
                return Ok(r);
            }
            return Err(RecoverError::MissingSnapshot);
        };
        r.install_restored(snap)?;
        // Applied records before the last checkpoint are void: the store
        // was replaced after them.
        let from = records
            .iter()
            .rposition(|x| matches!(x, Record::Checkpoint { .. }))
            .map_or(0, |i| i + 1);
        // The last values applied, for consensus to answer peers with.
        let mut recent = std::collections::VecDeque::new();
        // Only the last `-hist` revs need a snapshot each: the records
        // before them change the head in place (most of a restart's time
        // went to copying and freeing the tree's path for every record).
        let changes = records[from..]
            .iter()
            .filter(|x| matches!(x, Record::Applied { .. } | Record::Replayed { .. }))
            .count();
        let history = usize::try_from(r.store.history_revs()).unwrap_or(usize::MAX);
        let mut in_place = changes.saturating_sub(history);
        r.store.set_keep_history(in_place == 0);
        for rec in &records[from..] {
            let (seqn, value, decided) = match rec {
                Record::Applied { seqn, value } => (seqn, value, true),
                Record::Replayed { seqn, value } => (seqn, value, false),
                _ => continue,
            };
            if in_place == 0 {
                r.store.set_keep_history(true);
            }
            in_place = in_place.saturating_sub(1);
            let applied = r.members.applied_seqn;
            if *seqn <= applied {
                continue;
            }
            if *seqn != applied + 1 {
                return Err(RecoverError::Gap {
                    applied,
                    found: *seqn,
                });
            }
            let v = Value::decode(value).unwrap_or_else(|e| {
                // Applied as NOP then too (see `Replica::pump`).
                log::warn!("seqn {seqn}: {e}; applied as NOP");
                Value::default()
            });
            r.apply_value(*seqn, &v, Vec::new(), false);
            if !decided {
                recent.clear(); // only decided bytes may answer peers
                continue;
            }
            recent.push_back((*seqn, value.clone()));
            if recent.len() > RECENT_VALUES {
                recent.pop_front();
            }
        }
        r.store.set_keep_history(true);
        // Replaying answered nobody and fed nobody; what it recorded is
        // on disk already.
        r.out.clear();
        r.persist.clear();
        r.resume_role(records, recent);
        Ok(r)
    }

    /// Puts a snapshot read back from disk in place of the empty store.
    fn install_restored(&mut self, snap: Restored) -> Result<(), RecoverError> {
        let bad = |why: String| RecoverError::BadSnapshot {
            seqn: snap.seqn,
            why,
        };
        let mut copy = Copy::new(snap.rev).map_err(|e| bad(e.to_string()))?;
        for f in snap.files {
            copy.add(f).map_err(|e| bad(e.to_string()))?;
        }
        self.store.install(copy);
        self.base = (snap.rev, snap.seqn);
        self.members.catch_up_to = snap.seqn;
        self.members.remember_former(snap.former);
        self.load_members(snap.seqn, snap.sets);
        Ok(())
    }

    /// After recovery: a CAL of the next seqn goes on in consensus with
    /// its acceptor state; any other node is a slave to attach again.
    fn resume_role(&mut self, records: &[Record], recent: VecDeque<(u64, Bytes)>) {
        let applied = self.members.applied_seqn;
        let alpha = self.members.cfg.alpha;
        let sets: Vec<CalSet> = (1..=alpha)
            .filter_map(|i| self.members.cals_for(applied + i).cloned())
            .collect();
        let Some(head) = sets.first().cloned() else {
            self.start_following();
            return;
        };
        let mut p = self.new_paxos(applied + 1, head.clone(), &sets);
        p.restore_history(recent);
        let me = &self.members.id;
        let lately_cal = self.members.sets.values().any(|c| c.index_of(me).is_some());
        if head.index_of(me).is_some() {
            p.restore(records);
            log::info!(
                "restarted as a CAL at seqn {} (rev {})",
                applied + 1,
                self.store.rev()
            );
            self.paxos = Some(p);
            self.writable = true;
            self.members.next_pulse_ms = self.members.now_ms + self.members.cfg.pulse_ms;
        } else {
            // A CAL lately (its slot was emptied not long before it
            // stopped): others may still need its votes, or the values
            // it learned, for the seqns it was a CAL of.
            if lately_cal {
                p.retire();
                p.restore(records);
                self.retired = Some(p);
                self.members.left_at_rev = Some(self.store.rev());
            }
            log::info!(
                "restarted as a slave at rev {}: attaching again",
                self.store.rev()
            );
            self.start_following();
        }
    }
}
