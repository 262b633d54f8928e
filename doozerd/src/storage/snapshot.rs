//! Snapshots in the data directory: images of kind Snapshot, written
//! from a shared version of the tree (on a helper thread while the loop
//! goes on), and read back at start-up.

use std::fs::File;
use std::io::{self, BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use doozer_proto::image::{
    ImageError, ImageFile, ImageHeader, ImageKind, ImageReader, ImageWriter,
};

use super::files::{self, SNAP_EXT, TMP_EXT};
use super::StorageError;
use crate::store::{Glob, Snapshot};

/// Buffer of the image writer and reader: large writes, few syscalls.
const IO_BUFFER_BYTES: usize = 1 << 20;

/// Where the snapshot as of `seqn` lives in `snap_dir`.
pub(super) fn snapshot_path(snap_dir: &Path, seqn: u64) -> PathBuf {
    files::numbered_path(snap_dir, seqn, SNAP_EXT)
}

/// Writes the image of `tree` with `header` to `snap_dir` durably (a
/// temporary file, synced, renamed, the directory synced), streaming it
/// file by file. Stops early, removing the temporary file, once `cancel`
/// is set. Returns the image's size in bytes.
pub(super) fn write_snapshot(
    snap_dir: &Path,
    header: &ImageHeader,
    tree: &Snapshot,
    cancel: &AtomicBool,
) -> Result<u64, StorageError> {
    let path = snapshot_path(snap_dir, header.seqn);
    let tmp = path.with_extension(format!("{SNAP_EXT}.{TMP_EXT}"));
    let written = write_image(&tmp, header, tree, cancel);
    let bytes = match written {
        Ok(b) => b,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    std::fs::rename(&tmp, &path).map_err(StorageError::io(&path, "rename"))?;
    files::sync_dir(snap_dir)?;
    Ok(bytes)
}

fn write_image(
    tmp: &Path,
    header: &ImageHeader,
    tree: &Snapshot,
    cancel: &AtomicBool,
) -> Result<u64, StorageError> {
    let write = || StorageError::io(tmp, "write");
    let f = File::create(tmp).map_err(StorageError::io(tmp, "create"))?;
    let mut w =
        ImageWriter::new(BufWriter::with_capacity(IO_BUFFER_BYTES, f), header).map_err(write())?;
    let all = Glob::parse("/**").expect("a constant, valid glob");
    for f in tree.walk_iter(&all) {
        if cancel.load(Ordering::Relaxed) {
            return Err(write()(io::Error::new(
                io::ErrorKind::Interrupted,
                "cancelled",
            )));
        }
        w.file(&f.path, f.rev, &f.body).map_err(write())?;
    }
    let file = w
        .finish()
        .map_err(write())?
        .into_inner()
        .map_err(|e| write()(e.into_error()))?;
    file.sync_all().map_err(StorageError::io(tmp, "sync"))?;
    file.metadata()
        .map(|m| m.len())
        .map_err(StorageError::io(tmp, "stat"))
}

/// Reads the snapshot at `path`, which its name says is as of `seqn`:
/// the header and every file, all checked.
pub(super) fn read_snapshot(
    path: &Path,
    seqn: u64,
) -> Result<(ImageHeader, Vec<ImageFile>), StorageError> {
    let f = File::open(path).map_err(StorageError::io(path, "open"))?;
    let image = |source: ImageError| StorageError::Image {
        file: path.to_path_buf(),
        source,
    };
    let (mut r, header) =
        ImageReader::open(BufReader::with_capacity(IO_BUFFER_BYTES, f)).map_err(image)?;
    let wrong = |why: String| StorageError::BadRecord {
        file: path.to_path_buf(),
        offset: 0,
        why,
    };
    if header.kind != ImageKind::Snapshot {
        return Err(wrong(format!(
            "an image of kind {:?} where a snapshot should be",
            header.kind
        )));
    }
    if header.seqn != seqn {
        return Err(wrong(format!(
            "the header says seqn {}, the name {seqn}",
            header.seqn
        )));
    }
    let mut out = Vec::new();
    while let Some(f) = r.next_file().map_err(image)? {
        out.push(f);
    }
    Ok((header, out))
}

/// The files a [`SnapshotJob`] removes once its snapshot is durable, in
/// this order: older snapshots, then the oldest log segments (a prefix of
/// the log, oldest first). Each with its number (a snapshot's seqn, a
/// segment's index).
#[derive(Debug, Clone, Default)]
pub(super) struct Doomed {
    pub snapshots: Vec<(u64, PathBuf)>,
    pub segments: Vec<(u64, PathBuf)>,
}

/// What a [`SnapshotJob`] did.
#[derive(Debug)]
pub(super) struct Written {
    /// The snapshot's size in bytes.
    pub bytes: u64,
    /// How many of the files it was to remove it removed: a prefix of
    /// them, in order.
    pub removed: usize,
    /// Why it stopped removing before the last, if it did.
    pub remove_error: Option<StorageError>,
}

/// A snapshot being written on a helper thread, which then removes what
/// it makes unnecessary.
#[derive(Debug)]
pub(super) struct SnapshotJob {
    /// The seqn it is as of.
    pub seqn: u64,
    /// The log's byte count when it started: what is appended after
    /// counts towards the next snapshot.
    pub log_written_at_start: u64,
    /// What it removes once its snapshot is durable.
    pub doomed: Doomed,
    cancel: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<Written, StorageError>>>,
}

impl SnapshotJob {
    /// Starts writing `tree` as the snapshot `header` describes; once it
    /// is durable, removes the files of `doomed` one by one in order (each
    /// with its directory synced), stopping at the first that fails, so
    /// what goes is always a prefix of them. Removing on the thread keeps
    /// the directory syncs off the event loop.
    pub fn start(
        snap_dir: PathBuf,
        header: ImageHeader,
        tree: Snapshot,
        log_written_at_start: u64,
        doomed: Doomed,
    ) -> SnapshotJob {
        let cancel = Arc::new(AtomicBool::new(false));
        let flag = cancel.clone();
        let seqn = header.seqn;
        let paths: Vec<PathBuf> = (doomed.snapshots.iter())
            .chain(&doomed.segments)
            .map(|(_, p)| p.clone())
            .collect();
        let thread = std::thread::Builder::new()
            .name("snapshot".into())
            .spawn(move || {
                let bytes = write_snapshot(&snap_dir, &header, &tree, &flag)?;
                let mut written = Written {
                    bytes,
                    removed: 0,
                    remove_error: None,
                };
                for path in &paths {
                    if let Err(e) = files::remove(path) {
                        written.remove_error = Some(e);
                        break;
                    }
                    written.removed += 1;
                }
                Ok(written)
            });
        SnapshotJob {
            seqn,
            log_written_at_start,
            doomed,
            cancel,
            // A thread that cannot be spawned reads as one that stopped.
            thread: thread.ok(),
        }
    }

    /// Whether the thread is done (its result can be had without
    /// waiting).
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Waits for the thread: what it did, or why the snapshot failed.
    pub fn join(mut self) -> Result<Written, StorageError> {
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            _ => Err(StorageError::SnapshotThread),
        }
    }

    /// Stops the thread as soon as it can and waits for it; what it wrote
    /// is removed (or, if it had finished, stays as a valid snapshot).
    pub fn cancel(self) -> Result<Written, StorageError> {
        self.cancel.store(true, Ordering::Relaxed);
        self.join()
    }
}

impl Drop for SnapshotJob {
    fn drop(&mut self) {
        // Never leave a writer running into a directory whose lock is
        // about to be released.
        self.cancel.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
