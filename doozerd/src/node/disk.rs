//! The data directory in the event loop (`-d DIR`, docs/storage.md): what
//! one output must make durable is written and synced before any of its
//! messages or answers leave; snapshots are written in the background.
//!
//! When a write fails (disk full, I/O error), the output's records are
//! kept and written again every [`RETRY`]; meanwhile its peer messages are
//! dropped (consensus sends again), its answers are held, the replica
//! stops consensus and refuses writes (`Replica::set_disk_error`), and
//! answers of later outputs, which then make no records (reads), go out.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use doozer_proto::peer::PeerMsg;
use doozer_proto::Response;

use crate::replica::{ConnId, Output, Replica, SnapshotJob};
use crate::storage::{DataDir, Record};

/// How often a failed write is tried again.
const RETRY: Duration = Duration::from_millis(500);

/// How long records left waiting for a later output's sync
/// (`Output::sync_can_wait`) wait at most: then the loop syncs them.
const WAIT_MAX: Duration = Duration::from_millis(5);

/// The data directory and what is waiting to be written to it.
pub(super) struct Disk {
    dir: DataDir,
    /// A checkpoint not yet written (its write failed).
    checkpoint: Option<SnapshotJob>,
    /// Records not yet durable (their write failed), in order.
    pending: Vec<Record>,
    /// Answers of outputs whose records are not yet durable.
    held: Vec<(ConnId, Response)>,
    /// Lazy votes whose records wait in `pending` for a later sync
    /// (`Output::lazy_messages`).
    lazy: Vec<(SocketAddr, PeerMsg)>,
    /// Since the last write failed: the next try.
    retry_at: Option<Instant>,
    /// While `pending` holds records left waiting for a later output's
    /// sync: when they are synced even if no output comes.
    waiting_until: Option<Instant>,
}

impl Disk {
    pub(super) fn new(dir: DataDir) -> Disk {
        Disk {
            dir,
            checkpoint: None,
            pending: Vec::new(),
            held: Vec::new(),
            lazy: Vec::new(),
            retry_at: None,
            waiting_until: None,
        }
    }

    /// Makes what `out` must make durable durable, before anything of it
    /// is sent: a checkpoint first, then its records, with one sync.
    /// If that fails, its messages are dropped and its answers held;
    /// answers held before go out once a write succeeds. With `may_wait`
    /// and [`Output::sync_can_wait`], its records wait instead for the
    /// first later output that needs a sync (at most [`WAIT_MAX`]), so
    /// the loop goes on at once (docs/storage.md#early-answers).
    pub(super) fn persist(&mut self, out: &mut Output, replica: &mut Replica, may_wait: bool) {
        let can_wait = may_wait
            && self.checkpoint.is_none()
            && self.retry_at.is_none()
            && out.sync_can_wait()
            && self.waiting_until.is_none_or(|t| Instant::now() < t);
        // Records that wait stay in `pending` until an output needs them
        // synced, or WAIT_MAX has passed since the first of them.
        if can_wait && (!out.persist.is_empty() || self.waiting_until.is_some()) {
            if self.waiting_until.is_none() {
                self.waiting_until = Some(Instant::now() + WAIT_MAX);
            }
            self.pending.append(&mut out.persist);
            self.lazy.append(&mut out.lazy_messages);
            return;
        }
        self.waiting_until = None;
        let has_records = out.checkpoint.is_some() || !out.persist.is_empty();
        if let Some(job) = out.checkpoint.take() {
            // A checkpoint holds the whole acceptor state: records made
            // before it are in it.
            self.pending.clear();
            self.checkpoint = Some(job);
        }
        self.pending.append(&mut out.persist);
        let waiting = self.checkpoint.is_some() || !self.pending.is_empty();
        if !waiting {
            replica.records_synced();
            return self.release(out);
        }
        if self.retry_at.is_some_and(|t| Instant::now() < t) {
            return self.hold(out, has_records);
        }
        match self.write() {
            Ok(()) => {
                replica.records_synced();
                if self.retry_at.take().is_some() {
                    log::warn!("data directory: writes succeed again; consensus goes on");
                    replica.set_disk_error(None);
                }
                self.release(out);
            }
            Err(why) => {
                if self.retry_at.is_none() {
                    log::error!(
                        "data directory: {why}; consensus stops and writes are refused \
                         until writes succeed again (reads are served)"
                    );
                    replica.set_disk_error(Some(why));
                }
                self.retry_at = Some(Instant::now() + RETRY);
                self.hold(out, has_records);
            }
        }
    }

    /// At a stop: writes what waits (records left for a later sync, a
    /// checkpoint whose write failed), so the data directory holds
    /// everything applied up to `rev`, and says so. Lazy votes written
    /// now are never sent: a vote nobody heard of is safe to keep.
    pub(super) fn write_at_stop(&mut self, rev: i64) {
        let waiting = self.pending.len();
        match self.write() {
            Ok(()) if waiting == 0 => log::info!("data directory: stopping at rev {rev}"),
            Ok(()) => log::info!(
                "data directory: stopping at rev {rev} ({waiting} records that waited for a sync written)"
            ),
            Err(why) => log::warn!(
                "data directory: {why}; stopping with {waiting} records not written \
                 (the node learns them again from the others)"
            ),
        }
    }

    /// Writes the checkpoint and the pending records, syncing.
    fn write(&mut self) -> Result<(), String> {
        if let Some(job) = &self.checkpoint {
            self.dir.checkpoint_job(job).map_err(|e| e.to_string())?;
            self.checkpoint = None;
        }
        if !self.pending.is_empty() {
            self.dir.append(&self.pending).map_err(|e| e.to_string())?;
            self.pending.clear();
        }
        Ok(())
    }

    /// Everything durable: answers held before go out first, and lazy
    /// votes go with the output's messages.
    fn release(&mut self, out: &mut Output) {
        out.messages.append(&mut self.lazy);
        out.messages.append(&mut out.lazy_messages);
        if !self.held.is_empty() {
            self.held.append(&mut out.responses);
            std::mem::swap(&mut self.held, &mut out.responses);
        }
    }

    /// Not durable: the messages are dropped; the answers of an output
    /// with records are held (they may acknowledge what is not on disk).
    fn hold(&mut self, out: &mut Output, has_records: bool) {
        out.messages.clear();
        out.lazy_messages.clear();
        self.lazy.clear();
        if has_records {
            self.held.append(&mut out.responses);
        }
    }

    /// When the loop must try a failed write again, or sync records
    /// left waiting.
    pub(super) fn deadline(&self) -> Option<Instant> {
        self.retry_at.or(self.waiting_until)
    }

    /// Whether writes are failing now.
    pub(super) fn failing(&self) -> bool {
        self.retry_at.is_some()
    }

    /// Starts a snapshot in the background when one is due, and finishes
    /// the one being written (once per loop iteration).
    pub(super) fn snapshots(&mut self, replica: &Replica) {
        if let Some(done) = self.dir.poll_snapshot() {
            match done {
                Ok(seqn) => log::debug!("data directory: snapshot as of seqn {seqn} written"),
                Err(e) => log::warn!("data directory: snapshot: {e}; trying again later"),
            }
        }
        if !self.failing() && self.dir.snapshot_due() {
            if let Some(job) = replica.snapshot_job() {
                self.dir.start_snapshot_job(&job);
            }
        }
    }
}
