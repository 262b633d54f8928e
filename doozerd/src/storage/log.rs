//! Appending to the log: segments, group commit, rolling over, repairing
//! after a failed write, and deleting segments a snapshot covers.
//!
//! Segments are preallocated: made `SEGMENT_BYTES` long with zeros, and
//! synced, when they are created, then written in place. A sync of an
//! append then writes only data, never the file's length, so it needs no
//! file-system journal commit: on ext4 this made a sync of three nodes
//! sharing one disk about twice as fast (docs/storage.md#preallocation).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::files::{self, LOG_EXT};
use super::record::{Record, SegmentHeader};
use super::StorageError;

/// A segment is closed and a new one started once it holds this much:
/// small enough that a snapshot soon lets old ones go, large enough that
/// rolling over (a file creation and two syncs) is rare.
pub const SEGMENT_BYTES: u64 = 256 << 10;

/// A disk failure to simulate: a fault-injection seam for tests, in the
/// spirit of TigerBeetle's storage fault model. Each fires once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Once `n` more bytes were written to the log, a write stops there
    /// and fails with "No space left on device" (a torn append).
    WriteAfter(u64),
    /// The next sync of the log fails with an I/O error.
    Sync,
}

/// One segment file of the log.
#[derive(Debug, Clone)]
pub(super) struct Segment {
    /// Its number (its name).
    pub index: u64,
    /// Its path.
    pub path: PathBuf,
    /// The highest seqn of any record in it (0 if none).
    pub max_seqn: u64,
    /// Its length in bytes (for the current one: up to the last sync).
    pub bytes: u64,
}

/// The log: its segments, oldest first, the last one open for appending.
#[derive(Debug)]
pub(super) struct Log {
    dir: PathBuf,
    /// Never empty: the last is the current segment.
    segments: Vec<Segment>,
    /// The current segment, opened for writing in place at its `bytes`.
    file: File,
    /// Bytes after the current segment's `bytes` may hold a failed
    /// append: zero them before writing again.
    dirty: bool,
    fault: Option<Fault>,
    /// Encoded records, reused.
    buf: Vec<u8>,
    /// Bytes appended since [`Log::reset_written`].
    written: u64,
}

/// Zeros written at a time while preallocating.
static ZEROS: [u8; 64 << 10] = [0; 64 << 10];

/// Opens segment `path` for writing in place.
fn open_write(path: &Path) -> Result<File, StorageError> {
    OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(StorageError::io(path, "open"))
}

/// Makes `f` at least [`SEGMENT_BYTES`] long by writing zeros after its
/// end (not a sparse `set_len` or `fallocate`: on ext4 both leave extents
/// whose first write is a metadata change again). Not synced here.
fn preallocate(f: &File) -> io::Result<()> {
    let mut len = f.metadata()?.len();
    while len < SEGMENT_BYTES {
        let n = (SEGMENT_BYTES - len).min(ZEROS.len() as u64) as usize;
        f.write_all_at(&ZEROS[..n], len)?;
        len += n as u64;
    }
    Ok(())
}

/// Fills a segment that is shorter than [`SEGMENT_BYTES`] (cut after a
/// torn tail or a failed append, or written before preallocation) with
/// zeros again, synced. Best effort: on a full disk the segment simply
/// grows with its appends, as before preallocation, so this never stops
/// a start or a write.
fn refill(f: &File, path: &Path) {
    let short = f.metadata().map(|m| m.len() < SEGMENT_BYTES);
    if !matches!(short, Ok(true)) {
        return;
    }
    if let Err(e) = preallocate(f).and_then(|()| f.sync_data()) {
        log::warn!(
            "data directory: {}: cannot fill the segment with zeros ({e}); it grows with each write instead",
            path.display()
        );
    }
}

/// Creates segment `index` in `dir` holding only its header and zeros up
/// to [`SEGMENT_BYTES`], synced, with the directory entry synced too. A
/// leftover file of that name (from a rollover that failed or was cut
/// short) is replaced.
fn create_segment(dir: &Path, index: u64) -> Result<(Segment, File), StorageError> {
    let path = files::numbered_path(dir, index, LOG_EXT);
    let mut header = Vec::new();
    SegmentHeader::encode(index, &mut header);
    let made = (|| {
        let f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(StorageError::io(&path, "create"))?;
        f.write_all_at(&header, 0)
            .map_err(StorageError::io(&path, "write"))?;
        preallocate(&f).map_err(StorageError::io(&path, "write"))?;
        f.sync_data().map_err(StorageError::io(&path, "sync"))?;
        files::sync_dir(dir)?;
        Ok(f)
    })();
    let f = match made {
        Ok(f) => f,
        Err(e) => {
            // Best effort: a partial segment left behind is cut to nothing
            // at the next start, or replaced by the next attempt.
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
    };
    let seg = Segment {
        index,
        path,
        max_seqn: 0,
        bytes: header.len() as u64,
    };
    Ok((seg, f))
}

impl Log {
    /// The log over the segments recovery found (oldest first; their
    /// tails already cut), opening the last for appending, preallocated
    /// again if it is short (cut, or written before preallocation). No
    /// segments: segment 1 is created. A last segment left empty (its
    /// header was torn) gets its header again.
    pub fn open(dir: &Path, mut segments: Vec<Segment>) -> Result<Log, StorageError> {
        let file = match segments.last_mut() {
            None => {
                let (seg, f) = create_segment(dir, 1)?;
                segments.push(seg);
                f
            }
            Some(last) if last.bytes == 0 => {
                let (seg, f) = create_segment(dir, last.index)?;
                *last = seg;
                f
            }
            Some(last) => {
                let f = open_write(&last.path)?;
                refill(&f, &last.path);
                f
            }
        };
        Ok(Log {
            dir: dir.to_path_buf(),
            segments,
            file,
            dirty: false,
            fault: None,
            buf: Vec::new(),
            written: 0,
        })
    }

    /// The segments, oldest first; the last is the current one.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    fn current(&self) -> &Segment {
        // `segments` is never empty (see `open`).
        &self.segments[self.segments.len() - 1]
    }

    /// Arms a simulated failure.
    pub fn inject(&mut self, fault: Fault) {
        self.fault = Some(fault);
    }

    /// Bytes appended since the last [`Log::reset_written`].
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Starts counting appended bytes from `from`.
    pub fn reset_written(&mut self, from: u64) {
        self.written = from;
    }

    /// Writes `records` at the end of the current segment and syncs them
    /// (one `fdatasync` for all: group commit). On an error nothing after
    /// the last synced byte is trusted: the next call cuts it off first,
    /// so a failed append never leaves garbage inside the log. The caller
    /// passes the records again.
    pub fn append(&mut self, records: &[Record]) -> Result<(), StorageError> {
        if records.is_empty() {
            return Ok(());
        }
        self.repair()?;
        if self.current().bytes >= SEGMENT_BYTES {
            self.roll()?;
        }
        self.buf.clear();
        let mut max_seqn = 0;
        for r in records {
            r.encode(&mut self.buf).map_err(StorageError::TooLarge)?;
            max_seqn = max_seqn.max(r.seqn());
        }
        let path = self.current().path.clone();
        // Marked before writing: whatever happens below, bytes past the
        // synced end may be on disk until the next success.
        self.dirty = true;
        self.write_buf().map_err(StorageError::io(&path, "write"))?;
        self.sync().map_err(StorageError::io(&path, "sync"))?;
        self.dirty = false;
        let n = self.buf.len() as u64;
        let last = self.segments.len() - 1;
        let seg = &mut self.segments[last];
        seg.bytes += n;
        seg.max_seqn = seg.max_seqn.max(max_seqn);
        self.written += n;
        Ok(())
    }

    fn write_buf(&mut self) -> io::Result<()> {
        let at = self.current().bytes;
        if let Some(Fault::WriteAfter(n)) = self.fault {
            if (self.buf.len() as u64) > n {
                self.fault = None;
                self.file.write_all_at(&self.buf[..n as usize], at)?;
                return Err(io::Error::from_raw_os_error(libc::ENOSPC));
            }
            self.fault = Some(Fault::WriteAfter(n - self.buf.len() as u64));
        }
        self.file.write_all_at(&self.buf, at)
    }

    fn sync(&mut self) -> io::Result<()> {
        if self.fault == Some(Fault::Sync) {
            self.fault = None;
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        self.file.sync_data()
    }

    /// Cuts the current segment back to its last synced end if an append
    /// failed since, and zeros it again after that end. (After a failed
    /// sync the kernel may have dropped the unsynced pages; rewriting
    /// them is what makes them durable.)
    fn repair(&mut self) -> Result<(), StorageError> {
        if !self.dirty {
            return Ok(());
        }
        let seg = self.current();
        let path = seg.path.clone();
        self.file
            .set_len(seg.bytes)
            .map_err(StorageError::io(&path, "truncate"))?;
        self.file
            .sync_data()
            .map_err(StorageError::io(&path, "sync"))?;
        refill(&self.file, &path);
        self.dirty = false;
        Ok(())
    }

    /// Closes the current segment and starts the next.
    pub fn roll(&mut self) -> Result<(), StorageError> {
        // A segment that is not the last must end in a whole record.
        self.repair()?;
        let (seg, f) = create_segment(&self.dir, self.current().index + 1)?;
        self.written += seg.bytes;
        self.segments.push(seg);
        self.file = f;
        Ok(())
    }

    /// Deletes the oldest segments while every record in them has a seqn
    /// ≤ `seqn`, never the current one. Only a prefix goes, oldest first
    /// with the directory synced after each, so what is left after a
    /// crash is always a run of consecutive segments.
    pub fn drop_through(&mut self, seqn: u64) -> Result<(), StorageError> {
        while self.segments.len() > 1 && self.segments[0].max_seqn <= seqn {
            files::remove(&self.segments[0].path)?;
            self.segments.remove(0);
        }
        Ok(())
    }

    /// Deletes every segment but the current one, oldest first.
    pub fn drop_all_but_current(&mut self) -> Result<(), StorageError> {
        while self.segments.len() > 1 {
            files::remove(&self.segments[0].path)?;
            self.segments.remove(0);
        }
        Ok(())
    }
}
