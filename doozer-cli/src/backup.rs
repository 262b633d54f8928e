//! `doozer backup FILE|-`: a consistent copy of the whole tree at one rev
//! (BACKUP, docs/reference.md#backup), written as a backup image
//! (docs/storage.md#images) file by file as it arrives: never the whole
//! tree in memory.
//!
//! To a file, the image is written to `FILE.tmp`, synced, and renamed to
//! FILE (then the directory is synced): a failed backup never leaves a
//! partial image under FILE's name, and a finished one survives a crash.
//! `-` writes it to stdout. Either way a one-line summary goes to stderr.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use doozer::Client;
use doozer_proto::ctl;
use doozer_proto::image::{ImageHeader, ImageKind, ImageWriter};

use crate::failure::Failure;
use crate::globals::Globals;

/// What a finished backup holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Summary {
    rev: i64,
    files: u64,
    bytes: u64,
}

/// Runs `doozer backup TARGET` (a path, or `-` for stdout) against the
/// cluster of `g`.
pub fn run(g: &Globals, target: &str) -> Result<(), Failure> {
    let (summary, dest) = if target == "-" {
        let c = g.connect()?;
        let out = io::stdout().lock();
        let (s, mut out) = write_image(&c, BufWriter::new(out), "stdout")?;
        out.flush().map_err(|e| write_failed("stdout", e))?;
        (s, "stdout".to_string())
    } else {
        (to_file(g, Path::new(target))?, target.to_string())
    };
    eprintln!(
        "backup of rev {}: {} files, {} bytes written to {dest}",
        summary.rev, summary.files, summary.bytes
    );
    Ok(())
}

/// `FILE.tmp`: removed when dropped unless renamed into place.
struct TempFile {
    path: PathBuf,
    done: bool,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.done {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Writes the backup to `FILE.tmp`, syncs it, renames it to `file` and
/// syncs the directory.
fn to_file(g: &Globals, file: &Path) -> Result<Summary, Failure> {
    let mut tmp_name = file.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let mut tmp = TempFile {
        path: PathBuf::from(tmp_name),
        done: false,
    };
    let shown = tmp.path.display().to_string();
    // Created before connecting: a path that cannot be written fails at
    // once.
    let f = File::create(&tmp.path)
        .map_err(|e| Failure::Other(format!("cannot create {shown}: {e}")))?;
    let c = g.connect()?;
    let (summary, w) = write_image(&c, BufWriter::new(f), &shown)?;
    let f = w
        .into_inner()
        .map_err(|e| write_failed(&shown, e.into_error()))?;
    f.sync_all()
        .map_err(|e| Failure::Other(format!("syncing {shown}: {e}")))?;
    drop(f);
    fs::rename(&tmp.path, file)
        .map_err(|e| Failure::Other(format!("renaming {shown} to {}: {e}", file.display())))?;
    tmp.done = true;
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| {
        Failure::Other(format!(
            "{} is written, but syncing its directory {} failed: {e}",
            file.display(),
            dir.display()
        ))
    })?;
    Ok(summary)
}

fn write_failed(dest: &str, e: io::Error) -> Failure {
    Failure::Other(format!("writing the backup to {dest}: {e}"))
}

/// A writer that counts the bytes written through it.
struct Counting<W> {
    inner: W,
    bytes: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Streams a BACKUP from the node into an image on `w`, file by file.
/// The image's cluster name is `/ctl/name`, read just before; if the copy
/// holds another (it changed in between), the backup fails rather than
/// carry a wrong name.
fn write_image<W: Write>(c: &Client, w: W, dest: &str) -> Result<(Summary, W), Failure> {
    let (name, _) = c.get(ctl::NAME_PATH, None)?;
    let mut copy = c.backup()?;
    let rev = copy.at_rev();
    let header = ImageHeader {
        kind: ImageKind::Backup,
        cluster: String::from_utf8_lossy(&name).into_owned(),
        rev,
        seqn: 0,
        sets: Vec::new(),
        former: Vec::new(),
    };
    let w = Counting { inner: w, bytes: 0 };
    let mut image = ImageWriter::new(w, &header).map_err(|e| write_failed(dest, e))?;
    let mut name_seen = false;
    for file in &mut copy {
        let file = file?;
        if file.path == ctl::NAME_PATH {
            name_seen = true;
            if file.body != name {
                return Err(renamed());
            }
        }
        image
            .file(&file.path, file.rev, &file.body)
            .map_err(|e| match e.kind() {
                io::ErrorKind::InvalidInput => Failure::Other(format!(
                    "the node sent a backup that is not a valid tree: {e}"
                )),
                _ => write_failed(dest, e),
            })?;
    }
    if !name_seen && !name.is_empty() {
        return Err(renamed());
    }
    let w = image.finish().map_err(|e| write_failed(dest, e))?;
    let summary = Summary {
        rev,
        files: copy.files(),
        bytes: w.bytes,
    };
    Ok((summary, w.inner))
}

fn renamed() -> Failure {
    Failure::Other(format!(
        "{} changed during the backup; run it again",
        ctl::NAME_PATH
    ))
}
