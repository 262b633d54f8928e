//! Appending to the log: segments, group commit, rolling over, repairing
//! after a failed write, and deleting segments a snapshot covers.
//!
//! Segments are preallocated: made `SEGMENT_BYTES` long with zeros, and
//! synced, when they are created, then written in place. A sync of an
//! append then writes only data, never the file's length, so it needs no
//! file-system journal commit: on ext4 this made a sync of three nodes
//! sharing one disk about twice as fast (docs/storage.md#preallocation).
//!
//! The next segment is made on a helper thread while the current one
//! fills, under a temporary name (a spare): rolling over is then a rename
//! and a directory sync on the loop, not 256 KiB written and synced
//! (docs/storage.md#spare-segments).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use super::files::{self, LOG_EXT, TMP_EXT};
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
    /// The next segment, being made on a helper thread.
    spare: Option<Spare>,
}

/// A segment made ready ahead of need under a temporary name (a `.tmp`
/// file: one a crash leaves behind is removed at start-up, never read).
#[derive(Debug)]
struct Spare {
    /// The number it is made for (its header says so).
    index: u64,
    /// Its temporary path.
    path: PathBuf,
    thread: Option<JoinHandle<Result<File, StorageError>>>,
}

impl Spare {
    /// Starts making segment `index` of `dir` on a helper thread.
    fn start(dir: &Path, index: u64) -> Spare {
        let path = spare_path(dir, index);
        let p = path.clone();
        let thread = std::thread::Builder::new()
            .name("segment".into())
            .spawn(move || write_segment(&p, index));
        Spare {
            index,
            path,
            // A thread that cannot be spawned reads as a spare that failed:
            // the roll makes the segment itself.
            thread: thread.ok(),
        }
    }

    /// Waits for the thread: the spare, open for writing, or `None` if
    /// it could not be made (its file is removed then).
    fn finish(mut self) -> Option<File> {
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(Ok(f))) => Some(f),
            Some(Ok(Err(e))) => {
                log::debug!("data directory: spare segment: {e}");
                None
            }
            _ => None,
        }
    }
}

impl Drop for Spare {
    fn drop(&mut self) {
        // Never leave a writer running into a directory whose lock is
        // about to be released; a spare not taken is not needed.
        if let Some(t) = self.thread.take() {
            let _ = t.join();
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Where the spare for segment `index` of `dir` is made.
fn spare_path(dir: &Path, index: u64) -> PathBuf {
    files::numbered_path(dir, index, LOG_EXT).with_extension(TMP_EXT)
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

/// The header of segment `index`, encoded.
fn segment_header(index: u64) -> Vec<u8> {
    let mut header = Vec::new();
    SegmentHeader::encode(index, &mut header);
    header
}

/// Writes, at `path`, segment `index` holding only its header and zeros
/// up to [`SEGMENT_BYTES`], synced (not its directory entry). A leftover
/// file there is replaced; on an error the file is removed (best effort:
/// a partial segment left behind is cut to nothing at the next start, or
/// replaced by the next attempt).
fn write_segment(path: &Path, index: u64) -> Result<File, StorageError> {
    let made = (|| {
        let f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(StorageError::io(path, "create"))?;
        f.write_all_at(&segment_header(index), 0)
            .map_err(StorageError::io(path, "write"))?;
        preallocate(&f).map_err(StorageError::io(path, "write"))?;
        f.sync_data().map_err(StorageError::io(path, "sync"))?;
        Ok(f)
    })();
    if made.is_err() {
        let _ = std::fs::remove_file(path);
    }
    made
}

/// Creates segment `index` in `dir` (see [`write_segment`]), with the
/// directory entry synced too; or, with `spare` (a file [`write_segment`]
/// made for it under another name), renames that into place, and syncs
/// the directory entry.
fn create_segment(
    dir: &Path,
    index: u64,
    spare: Option<(File, &Path)>,
) -> Result<(Segment, File), StorageError> {
    let path = files::numbered_path(dir, index, LOG_EXT);
    let f = match spare {
        Some((f, from)) => {
            if let Err(e) = std::fs::rename(from, &path) {
                let _ = std::fs::remove_file(from);
                return Err(StorageError::io(&path, "rename")(e));
            }
            f
        }
        None => write_segment(&path, index)?,
    };
    if let Err(e) = files::sync_dir(dir) {
        let _ = std::fs::remove_file(&path);
        return Err(e);
    }
    let seg = Segment {
        index,
        path,
        max_seqn: 0,
        bytes: segment_header(index).len() as u64,
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
                let (seg, f) = create_segment(dir, 1, None)?;
                segments.push(seg);
                f
            }
            Some(last) if last.bytes == 0 => {
                let (seg, f) = create_segment(dir, last.index, None)?;
                *last = seg;
                f
            }
            Some(last) => {
                let f = open_write(&last.path)?;
                refill(&f, &last.path);
                f
            }
        };
        let next = segments[segments.len() - 1].index + 1;
        Ok(Log {
            dir: dir.to_path_buf(),
            segments,
            file,
            dirty: false,
            fault: None,
            buf: Vec::new(),
            written: 0,
            spare: Some(Spare::start(dir, next)),
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

    /// Closes the current segment and starts the next: the spare made
    /// for it if there is one (waiting for it if it is not ready yet),
    /// else made here; then starts the spare after it.
    pub fn roll(&mut self) -> Result<(), StorageError> {
        // A segment that is not the last must end in a whole record.
        self.repair()?;
        let index = self.current().index + 1;
        // A spare for another number is dropped (its file removed) before
        // anything else: never after the next spare is started.
        let spare = self.spare.take().filter(|s| s.index == index);
        let (seg, f) = match spare {
            Some(mut s) => {
                let path = std::mem::take(&mut s.path);
                let made = s.finish();
                create_segment(&self.dir, index, made.map(|f| (f, path.as_path())))?
            }
            None => create_segment(&self.dir, index, None)?,
        };
        self.written += seg.bytes;
        self.segments.push(seg);
        self.file = f;
        self.spare = Some(Spare::start(&self.dir, index + 1));
        Ok(())
    }

    /// The oldest segments while every record in them has a seqn ≤
    /// `seqn`, never the current one: those a snapshot as of `seqn` makes
    /// unnecessary, (index, path), oldest first. Removed in this order
    /// with the directory synced after each (by the snapshot's thread),
    /// what is left after a crash is always a run of consecutive
    /// segments.
    pub fn covered(&self, seqn: u64) -> Vec<(u64, PathBuf)> {
        let closed = &self.segments[..self.segments.len() - 1];
        (closed.iter())
            .take_while(|s| s.max_seqn <= seqn)
            .map(|s| (s.index, s.path.clone()))
            .collect()
    }

    /// Forgets the oldest segments up to number `index`, which were
    /// removed (see [`Log::covered`]); never the current one.
    pub fn forget_through(&mut self, index: u64) {
        let n = (self.segments[..self.segments.len() - 1].iter())
            .take_while(|s| s.index <= index)
            .count();
        self.segments.drain(..n);
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
