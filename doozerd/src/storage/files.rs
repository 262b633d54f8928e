//! The data directory's names and the file-system steps every part
//! shares: syncing a directory, writing a file atomically, the lock,
//! listing numbered files.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::StorageError;

/// The meta file: who this node is.
pub const META: &str = "meta";
/// The lock file, held for the life of the process.
pub const LOCK: &str = "LOCK";
/// The directory of log segments.
pub const LOG_DIR: &str = "log";
/// The directory of snapshots.
pub const SNAP_DIR: &str = "snap";
/// The ending of a log segment's name.
pub const LOG_EXT: &str = "log";
/// The ending of a snapshot's name.
pub const SNAP_EXT: &str = "snap";
/// The ending of a file being written, before its rename.
pub const TMP_EXT: &str = "tmp";

/// `dir/<n as 16 hex digits>.<ext>`.
pub fn numbered_path(dir: &Path, n: u64, ext: &str) -> PathBuf {
    dir.join(format!("{n:016x}.{ext}"))
}

/// The number in a name `<16 lowercase hex digits>.<ext>`, if it is one.
fn parse_numbered(name: &str, ext: &str) -> Option<u64> {
    let stem = name.strip_suffix(ext)?.strip_suffix('.')?;
    let hex = stem.len() == 16 && stem.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if !hex {
        return None;
    }
    u64::from_str_radix(stem, 16).ok()
}

/// What [`list_numbered`] found in a directory.
#[derive(Debug, Default)]
pub struct Listing {
    /// The numbered files, by number.
    pub numbered: Vec<(u64, PathBuf)>,
    /// Files ending in `.tmp`: left by a crash while writing, to remove.
    pub leftovers: Vec<PathBuf>,
}

/// The files `<n>.<ext>` in `dir`, and the leftover temporary files. A
/// missing `dir` holds nothing. Other names are left alone.
pub fn list_numbered(dir: &Path, ext: &str) -> Result<Listing, StorageError> {
    let mut found = Vec::new();
    let mut tmp = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Listing::default()),
        Err(e) => return Err(StorageError::io(dir, "list")(e)),
    };
    for entry in entries {
        let entry = entry.map_err(StorageError::io(dir, "list"))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(n) = parse_numbered(name, ext) {
            found.push((n, entry.path()));
        } else if name.ends_with(&format!(".{TMP_EXT}")) {
            tmp.push(entry.path());
        }
    }
    found.sort();
    Ok(Listing {
        numbered: found,
        leftovers: tmp,
    })
}

/// Makes the directory's entries durable (a created, renamed or removed
/// file), which syncing the file itself does not.
pub fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(StorageError::io(dir, "sync"))
}

/// Creates `dir` if missing, and makes its entry in the parent durable.
pub fn make_dir(dir: &Path) -> Result<(), StorageError> {
    if dir.is_dir() {
        return Ok(());
    }
    if dir.exists() {
        // A file where DIR should be: say so, not "File exists".
        let e = std::io::Error::from_raw_os_error(libc::ENOTDIR);
        return Err(StorageError::io(dir, "create")(e));
    }
    fs::create_dir_all(dir).map_err(StorageError::io(dir, "create"))?;
    match dir.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => sync_dir(parent),
        _ => Ok(()),
    }
}

/// Writes `bytes` to `path` so that after a crash `path` holds either
/// its old content or all of `bytes`: a temporary file, synced, renamed
/// over `path`, and the directory synced.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), StorageError> {
    let tmp = path.with_extension(TMP_EXT);
    let mut f = File::create(&tmp).map_err(StorageError::io(&tmp, "create"))?;
    f.write_all(bytes)
        .map_err(StorageError::io(&tmp, "write"))?;
    f.sync_all().map_err(StorageError::io(&tmp, "sync"))?;
    drop(f);
    fs::rename(&tmp, path).map_err(StorageError::io(path, "rename"))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Removes `path` (already gone is fine), and syncs its directory.
pub fn remove(path: &Path) -> Result<(), StorageError> {
    match fs::remove_file(path) {
        Ok(()) => sync_dir(path.parent().unwrap_or(Path::new("."))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StorageError::io(path, "remove")(e)),
    }
}

/// Takes the lock on `dir` for as long as the returned file is open, and
/// writes this process's pid into it. Held by another process (or by
/// another open of the same directory in this one): `Locked`, with the
/// pid the holder wrote.
pub fn lock(dir: &Path) -> Result<File, StorageError> {
    let path = dir.join(LOCK);
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false) // the holder's pid stays readable
        .open(&path)
        .map_err(StorageError::io(&path, "open"))?;
    match f.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            let mut text = String::new();
            let pid = f
                .read_to_string(&mut text)
                .ok()
                .and_then(|_| text.trim().parse().ok());
            return Err(StorageError::Locked {
                dir: dir.to_path_buf(),
                pid,
            });
        }
        Err(fs::TryLockError::Error(e)) => return Err(StorageError::io(&path, "lock")(e)),
    }
    // Who holds it, for the error another process will show; not synced
    // (a stale pid after a crash is harmless: the lock itself is gone).
    f.set_len(0).map_err(StorageError::io(&path, "write"))?;
    writeln!(f, "{}", std::process::id()).map_err(StorageError::io(&path, "write"))?;
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_names_are_strict() {
        assert_eq!(parse_numbered("00000000000000ff.log", "log"), Some(255));
        assert_eq!(parse_numbered("00000000000000FF.log", "log"), None);
        assert_eq!(parse_numbered("ff.log", "log"), None);
        assert_eq!(parse_numbered("00000000000000ff.snap", "log"), None);
        assert_eq!(parse_numbered("00000000000000ff.log.tmp", "log"), None);
        assert_eq!(
            numbered_path(Path::new("d"), 255, "log"),
            Path::new("d/00000000000000ff.log")
        );
    }
}
