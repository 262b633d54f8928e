//! The data directory (`-d DIR`): the only code that touches DIR. Its
//! format, byte by byte, and the recovery rules are in docs/storage.md.
//!
//! ```text
//! DIR/meta                     one record: format version, node id, cluster name
//!                              (written once, atomically)
//! DIR/LOCK                     locked for the life of the process; holds its pid
//! DIR/log/<016x>.log           log segments, numbered from 1, consecutive; each
//!                              starts with a header record (version, its number)
//! DIR/snap/<seqn as 016x>.snap images of kind Snapshot (doozer_proto::image)
//! ```
//!
//! - [`DataDir::open`] takes the lock and reads everything back
//!   ([`Recovered`]), cutting off a record a crash tore at the tail of the
//!   log and refusing anything else that is damaged or missing.
//! - [`DataDir::append`] writes the records of one loop iteration and
//!   syncs once (group commit); the caller sends what depends on them
//!   only after it returns.
//! - [`DataDir::start_snapshot`] and [`DataDir::poll_snapshot`] write a
//!   snapshot from a shared version of the tree on a helper thread, then
//!   delete what it makes unnecessary; [`DataDir::checkpoint`] replaces
//!   the whole state at once after a copy of the store.
//!
//! Modules: [`record`] (what the log holds, as data), `log` (segments,
//! appending), `recover` (reading back), `snapshot` (images in DIR),
//! `files` (names, atomic writes, the lock), `jobs` (the replica's
//! snapshot jobs and restored snapshots, to and from images).

mod error;
mod files;
mod jobs;
mod log;
mod memory;
pub mod record;
mod recover;
mod snapshot;
#[cfg(test)]
mod tests;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use bytes::Bytes;
use doozer_proto::image::{ImageFile, ImageHeader, ImageKind};
use doozer_proto::record::{kind, Records};

pub use error::StorageError;
pub use log::{Fault, SEGMENT_BYTES};
pub use memory::MemoryDir;
use record::storage_format_readable;
pub use record::{Meta, Record, STORAGE_FORMAT_OLDEST, STORAGE_FORMAT_VERSION};
pub use recover::Torn;

use files::{LOG_DIR, LOG_EXT, META, SNAP_DIR, SNAP_EXT};
use log::Log;
use snapshot::{Doomed, SnapshotJob, Written};

/// A snapshot is due once the log grew by at least this much since the
/// last one (or the last snapshot's size, if more): small stores
/// are not rewritten for every few changes, and the log never holds more
/// than a few times the store.
pub const SNAPSHOT_MIN_LOG_BYTES: u64 = 256 << 10;

/// What [`DataDir::open`] found.
// Made once at start-up and taken apart at once: its size does not
// matter, and a box would only make the caller's match longer.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Opened {
    /// Nothing yet: [`FreshDir::init`] makes it this node's.
    Fresh(FreshDir),
    /// A node's directory, read back.
    Existing(DataDir, Recovered),
}

/// What a data directory held at start-up.
#[derive(Debug)]
pub struct Recovered {
    /// Who this node is.
    pub meta: Meta,
    /// The newest snapshot: its header (rev, seqn, CAL sets) and every
    /// file, checked.
    pub snapshot: Option<(ImageHeader, Vec<ImageFile>)>,
    /// The file the snapshot was read from (for errors about it).
    pub snapshot_file: Option<PathBuf>,
    /// The log, in order, from every segment: every acceptor record
    /// (Promise, Vote, Floor) and Checkpoint as written, and exactly the
    /// applied records (Applied or Replayed) to replay on top of the
    /// snapshot: seqn S+1, S+2, ... (S the snapshot's seqn, 0 without
    /// one), each once. Those the snapshot covers, repeats,
    /// and those a later Checkpoint voids are left out.
    pub records: Vec<Record>,
    /// A record a crash tore at the tail of the log, cut off (log it:
    /// those bytes were never synced, so never acknowledged).
    pub torn: Option<Torn>,
}

/// A data directory with nothing in it yet, locked.
#[derive(Debug)]
pub struct FreshDir {
    dir: PathBuf,
    lock: File,
}

/// An open data directory, locked for the life of this value.
#[derive(Debug)]
pub struct DataDir {
    dir: PathBuf,
    meta: Meta,
    log: Log,
    /// Snapshot files on disk: (seqn, size in bytes), by seqn.
    snapshots: Vec<(u64, u64)>,
    /// Declared before the lock: a writer still running is stopped (on
    /// drop) before the lock is released.
    job: Option<SnapshotJob>,
    _lock: File,
}

/// How much of the disk the directory uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskUsage {
    /// Log segments.
    pub segments: usize,
    /// Their bytes.
    pub log_bytes: u64,
    /// Snapshot files.
    pub snapshots: usize,
    /// Their bytes.
    pub snapshot_bytes: u64,
}

/// Reads the meta file: `None` if there is none. It is written
/// atomically, so any damage is refused.
fn read_meta(path: &Path) -> Result<Option<Meta>, StorageError> {
    let data = match std::fs::read(path) {
        Ok(d) => Bytes::from(d),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StorageError::io(path, "read")(e)),
    };
    let bad = |offset, why: String| StorageError::BadRecord {
        file: path.to_path_buf(),
        offset,
        why,
    };
    let mut records = Records::new(&data);
    let rec = match records.next() {
        Some(Ok(r)) => r,
        Some(Err(source)) => {
            return Err(StorageError::Record {
                file: path.to_path_buf(),
                source,
            })
        }
        None => return Err(bad(0, "the meta file is empty".into())),
    };
    if rec.kind != kind::META {
        return Err(bad(
            0,
            format!(
                "a record of type {} where the meta record should be",
                rec.kind
            ),
        ));
    }
    let (meta, version) =
        Meta::decode(data.slice_ref(rec.payload)).map_err(|e| bad(0, e.to_string()))?;
    if !storage_format_readable(version) {
        return Err(StorageError::Version {
            file: path.to_path_buf(),
            found: version,
            supported: STORAGE_FORMAT_VERSION,
        });
    }
    if rec.end != data.len() as u64 {
        return Err(bad(rec.end, "data after the meta record".into()));
    }
    if meta.id.is_empty() {
        return Err(bad(0, "an empty node id".into()));
    }
    Ok(Some(meta))
}

/// The size of `path`, or 0 if it cannot be had (only for accounting).
fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

impl FreshDir {
    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Makes the directory this node's: writes the meta file durably
    /// (before anything else, so a crash leaves either a fresh directory
    /// or an initialised one), then the log's first segment.
    pub fn init(self, meta: &Meta) -> Result<DataDir, StorageError> {
        files::write_atomically(&self.dir.join(META), &meta.encode())?;
        files::make_dir(&self.dir.join(SNAP_DIR))?;
        let log_dir = self.dir.join(LOG_DIR);
        files::make_dir(&log_dir)?;
        let log = Log::open(&log_dir, Vec::new())?;
        Ok(DataDir {
            dir: self.dir,
            meta: meta.clone(),
            log,
            snapshots: Vec::new(),
            job: None,
            _lock: self.lock,
        })
    }
}

impl DataDir {
    /// Opens `dir`, creating it if missing: takes its lock (held by
    /// another process, or another `open` in this one: `Locked`, naming
    /// the holder's pid), checks every file's format version, and reads
    /// everything back. Without a meta file, a log or snapshots it is an
    /// [`Opened::Fresh`] directory; with a meta file it is
    /// [`Opened::Existing`]; a log or snapshots without a meta file is
    /// refused. Damage a crash cannot explain, a missing snapshot or a
    /// gap in the applied changes stop it with an error naming the file
    /// and byte offset (docs/storage.md#recovery).
    pub fn open(dir: &Path) -> Result<Opened, StorageError> {
        files::make_dir(dir)?;
        let lock = files::lock(dir)?;
        let (log_dir, snap_dir) = (dir.join(LOG_DIR), dir.join(SNAP_DIR));
        let log_listing = files::list_numbered(&log_dir, LOG_EXT)?;
        let segments = log_listing.numbered;
        let snap_listing = files::list_numbered(&snap_dir, SNAP_EXT)?;
        let snaps = snap_listing.numbered;
        for tmp in snap_listing
            .leftovers
            .iter()
            .chain(&log_listing.leftovers)
            .chain(Some(&dir.join(META).with_extension(files::TMP_EXT)))
        {
            // Left by a crash while writing (a snapshot, a spare segment):
            // never renamed, never used.
            if tmp.exists() {
                files::remove(tmp)?;
            }
        }
        let Some(meta) = read_meta(&dir.join(META))? else {
            if segments.is_empty() && snaps.is_empty() {
                let dir = dir.to_path_buf();
                return Ok(Opened::Fresh(FreshDir { dir, lock }));
            }
            return Err(StorageError::MissingMeta {
                dir: dir.to_path_buf(),
            });
        };
        files::make_dir(&log_dir)?;
        files::make_dir(&snap_dir)?;
        let snapshot = match snaps.last() {
            Some((seqn, path)) => Some(snapshot::read_snapshot(path, *seqn)?),
            None => None,
        };
        let read = recover::read_log(&log_dir, &segments)?;
        let snapshot_seqn = snapshot.as_ref().map(|(h, _)| h.seqn);
        let records = recover::check_continuity(snapshot_seqn, read.placed, &read.segments)?;
        let torn = read.torn;
        let mut log = Log::open(&log_dir, read.segments)?;
        // Everything in the log counts towards the next snapshot.
        log.reset_written(log.segments().iter().map(|s| s.bytes).sum());
        let snapshots = snaps.iter().map(|(s, p)| (*s, file_size(p))).collect();
        let data = DataDir {
            dir: dir.to_path_buf(),
            meta: meta.clone(),
            log,
            snapshots,
            job: None,
            _lock: lock,
        };
        let recovered = Recovered {
            meta,
            snapshot,
            snapshot_file: snaps.last().map(|(_, p)| p.clone()),
            records,
            torn,
        };
        Ok(Opened::Existing(data, recovered))
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Who this node is, as the meta file says.
    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    /// Writes `records` at the end of the log and syncs once for all of
    /// them (call it once per loop iteration, before sending anything that
    /// depends on them). An error (disk full, I/O error) means none of
    /// them is durable: pass them again on the next call, which first
    /// cuts off whatever the failed one left (so the log never holds
    /// garbage in the middle). Rolls over to a new segment past
    /// [`SEGMENT_BYTES`].
    pub fn append(&mut self, records: &[Record]) -> Result<(), StorageError> {
        self.log.append(records)
    }

    /// Whether a snapshot should be started: none is being written, and
    /// the log grew since the last by at least
    /// max([`SNAPSHOT_MIN_LOG_BYTES`], the last snapshot's size): a
    /// restart replays at most about a snapshot's worth of log.
    pub fn snapshot_due(&self) -> bool {
        let last = self.snapshots.last().map_or(0, |(_, bytes)| *bytes);
        self.job.is_none() && self.log.written() >= SNAPSHOT_MIN_LOG_BYTES.max(last)
    }

    /// Starts writing a snapshot of `tree` (the store as of `header.rev`
    /// and `header.seqn`; `header.kind` is set to Snapshot) on a helper
    /// thread: the tree is a shared, unchanging version of the store, so
    /// the loop goes on meanwhile. False (and nothing started) if one is
    /// already being written.
    pub fn start_snapshot(
        &mut self,
        mut header: ImageHeader,
        tree: crate::store::Snapshot,
    ) -> bool {
        if self.job.is_some() {
            return false;
        }
        header.kind = ImageKind::Snapshot;
        let snap_dir = self.dir.join(SNAP_DIR);
        let seqn = header.seqn;
        let doomed = Doomed {
            snapshots: (self.snapshots.iter())
                .filter(|(s, _)| *s < seqn)
                .map(|(s, _)| (*s, snapshot::snapshot_path(&snap_dir, *s)))
                .collect(),
            segments: self.log.covered(seqn),
        };
        self.job = Some(SnapshotJob::start(
            snap_dir,
            header,
            tree,
            self.log.written(),
            doomed,
        ));
        true
    }

    /// Call once per loop iteration. `None` while no snapshot is being
    /// written or it is not done; then its result: the seqn it is as of,
    /// or an error. Once it is durable, its thread deletes older
    /// snapshots, and the oldest log segments that were closed when it
    /// started and whose records all have a seqn ≤ its seqn; every record
    /// with a higher seqn is kept. An error means the snapshot failed (the
    /// directory is as it was: start another later), or that it is
    /// durable but deleting what it replaced failed (the next snapshot
    /// deletes it).
    pub fn poll_snapshot(&mut self) -> Option<Result<u64, StorageError>> {
        if !self.job.as_ref()?.is_finished() {
            return None;
        }
        let mut job = self.job.take()?;
        let (seqn, at_start) = (job.seqn, job.log_written_at_start);
        let doomed = std::mem::take(&mut job.doomed);
        Some(job.join().and_then(|written| {
            self.log
                .reset_written(self.log.written().saturating_sub(at_start));
            self.took_snapshot(seqn, &doomed, written)?;
            Ok(seqn)
        }))
    }

    /// Notes what a snapshot job did: the snapshot as of `seqn` is on
    /// disk, and the first `written.removed` files of `doomed` are gone.
    /// Its error, if removing stopped early.
    fn took_snapshot(
        &mut self,
        seqn: u64,
        doomed: &Doomed,
        written: Written,
    ) -> Result<(), StorageError> {
        self.added_snapshot(seqn, written.bytes);
        let snaps = written.removed.min(doomed.snapshots.len());
        for (s, _) in &doomed.snapshots[..snaps] {
            self.snapshots.retain(|(x, _)| x != s);
        }
        let segs = written.removed - snaps;
        if let Some((index, _)) = segs.checked_sub(1).map(|i| &doomed.segments[i]) {
            self.log.forget_through(*index);
        }
        written.remove_error.map_or(Ok(()), Err)
    }

    /// Replaces the whole durable state after the store was replaced by a
    /// copy from another node, synchronously: writes the snapshot of
    /// `tree` durably, starts a new segment holding
    /// `Checkpoint { seqn: header.seqn }` then `records` (the acceptor
    /// state still needed), syncs, and deletes every older segment and
    /// every other snapshot. A snapshot being written is abandoned.
    pub fn checkpoint(
        &mut self,
        mut header: ImageHeader,
        tree: &crate::store::Snapshot,
        records: &[Record],
    ) -> Result<(), StorageError> {
        if let Some(mut job) = self.job.take() {
            let seqn = job.seqn;
            let doomed = std::mem::take(&mut job.doomed);
            if let Ok(written) = job.cancel() {
                // Finished: deleted below, with anything it left.
                let _ = self.took_snapshot(seqn, &doomed, written);
            }
        }
        header.kind = ImageKind::Snapshot;
        let seqn = header.seqn;
        let snap_dir = self.dir.join(SNAP_DIR);
        let bytes = snapshot::write_snapshot(&snap_dir, &header, tree, &AtomicBool::new(false))?;
        self.added_snapshot(seqn, bytes);
        // A newer snapshot would be read instead of this one at start-up.
        self.delete_snapshots(|s| s > seqn)?;
        self.log.roll()?;
        let mut all = Vec::with_capacity(records.len() + 1);
        all.push(Record::Checkpoint { seqn });
        all.extend_from_slice(records);
        self.log.append(&all)?;
        self.log.drop_all_but_current()?;
        self.delete_snapshots(|s| s != seqn)?;
        self.log.reset_written(0);
        Ok(())
    }

    /// Arms a simulated disk failure of the log (a fault-injection seam
    /// for tests; see [`Fault`]).
    pub fn inject_fault(&mut self, fault: Fault) {
        self.log.inject(fault);
    }

    /// How much of the disk the directory uses now.
    pub fn usage(&self) -> DiskUsage {
        let segments = self.log.segments();
        DiskUsage {
            segments: segments.len(),
            log_bytes: segments.iter().map(|s| s.bytes).sum(),
            snapshots: self.snapshots.len(),
            snapshot_bytes: self.snapshots.iter().map(|(_, b)| b).sum(),
        }
    }

    /// Notes the snapshot as of `seqn` now on disk (replacing one of the
    /// same seqn, which the rename replaced).
    fn added_snapshot(&mut self, seqn: u64, bytes: u64) {
        self.snapshots.retain(|(s, _)| *s != seqn);
        self.snapshots.push((seqn, bytes));
        self.snapshots.sort_unstable();
    }

    /// Deletes the snapshot files whose seqn `doomed` says.
    fn delete_snapshots(&mut self, doomed: impl Fn(u64) -> bool) -> Result<(), StorageError> {
        let snap_dir = self.dir.join(SNAP_DIR);
        while let Some(i) = self.snapshots.iter().position(|(s, _)| doomed(*s)) {
            files::remove(&snapshot::snapshot_path(&snap_dir, self.snapshots[i].0))?;
            self.snapshots.remove(i);
        }
        Ok(())
    }
}
