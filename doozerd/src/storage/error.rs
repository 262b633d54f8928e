//! [`StorageError`]: everything that can go wrong with a data directory.

use std::io;
use std::path::PathBuf;

use doozer_proto::image::ImageError;
use doozer_proto::record::RecordError;

/// Why the data directory cannot be opened, read or written. Every
/// variant names the file (and, for damage, the byte offset) it is
/// about.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A system call failed (disk full, I/O error, permissions, ...).
    #[error("disk: {op} {}: {source}", file.display())]
    Io {
        /// The file or directory.
        file: PathBuf,
        /// What was being done: "write", "sync", "open", ...
        op: &'static str,
        /// The cause.
        source: io::Error,
    },
    /// Another process holds the directory's lock.
    #[error("{} is in use by another doozerd{}", dir.display(), pid.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    Locked {
        /// The data directory.
        dir: PathBuf,
        /// The holder's pid, as it wrote it in the lock file.
        pid: Option<u32>,
    },
    /// A file was written in a format version this build does not read.
    #[error("{}: format version {found} is not supported (this doozerd reads versions {} to {supported})", file.display(), super::STORAGE_FORMAT_OLDEST)]
    Version {
        /// The file.
        file: PathBuf,
        /// The version found in it.
        found: u32,
        /// The newest version this build reads.
        supported: u32,
    },
    /// A damaged record (bad checksum, torn, impossible length) where a
    /// crash cannot explain it.
    #[error("{}: {source}", file.display())]
    Record {
        /// The file.
        file: PathBuf,
        /// The damage, with its byte offset.
        source: RecordError,
    },
    /// A snapshot that cannot be read.
    #[error("{}: {source}", file.display())]
    Image {
        /// The snapshot file.
        file: PathBuf,
        /// What is wrong, with its byte offset.
        source: ImageError,
    },
    /// A record with a good checksum that says something impossible (an
    /// unknown type, a payload that does not decode, a header that does
    /// not match its file).
    #[error("{}: bad record at byte {offset}: {why}", file.display())]
    BadRecord {
        /// The file.
        file: PathBuf,
        /// Where the record starts.
        offset: u64,
        /// What is wrong.
        why: String,
    },
    /// The directory holds a log or snapshots but no meta file: it cannot
    /// be known whose state they are.
    #[error("{}: holds a log or snapshots but no meta file", dir.display())]
    MissingMeta {
        /// The data directory.
        dir: PathBuf,
    },
    /// A log segment between two others is missing.
    #[error("{}: log segment {index:016x} is missing", dir.display())]
    MissingSegment {
        /// The log directory.
        dir: PathBuf,
        /// The number of the missing segment.
        index: u64,
    },
    /// The log needs a snapshot that is not there: its applied changes
    /// start after the newest snapshot, or it replaced the store with a
    /// snapshot that is gone.
    #[error("{}: missing snapshot: the record at byte {offset} needs the store as of seqn {needed}, but {}", file.display(), newest.map(|s| format!("the newest snapshot is as of seqn {s}")).unwrap_or_else(|| "there is no snapshot".into()))]
    MissingSnapshot {
        /// The log segment.
        file: PathBuf,
        /// Where the record starts.
        offset: u64,
        /// The seqn the store must be as of before that record.
        needed: u64,
        /// The seqn of the newest snapshot, if any.
        newest: Option<u64>,
    },
    /// Applied changes are missing from the log.
    #[error("{}: applied seqn {found} at byte {offset} follows seqn {}: decided changes are missing", file.display(), expected - 1)]
    Gap {
        /// The log segment.
        file: PathBuf,
        /// Where the record after the gap starts.
        offset: u64,
        /// The seqn that should have come next.
        expected: u64,
        /// The seqn found.
        found: u64,
    },
    /// A record to append is over the record size limit.
    #[error("{0}")]
    TooLarge(RecordError),
    /// The snapshot writer's thread stopped without an answer (a bug).
    #[error("the snapshot writer stopped unexpectedly")]
    SnapshotThread,
}

impl StorageError {
    /// An [`StorageError::Io`] maker for `file` and `op`, for `map_err`.
    pub(super) fn io(
        file: impl Into<PathBuf>,
        op: &'static str,
    ) -> impl FnOnce(io::Error) -> StorageError {
        let file = file.into();
        move |source| StorageError::Io { file, op, source }
    }
}
