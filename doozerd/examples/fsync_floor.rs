//! The machine's floor for one durable write: append a small record (the
//! size of a vote) to a file and `fdatasync` it, as `-d DIR` does once
//! per loop iteration before a vote or an answer leaves the node. With a
//! data directory, a write's latency can never be below this figure
//! (docs/storage.md#what-is-synced-when), so measure it on the disk DIR
//! will live on.
//!
//! Two files: one that grows with each record, as a log segment does
//! (each sync also makes its new length durable), and one preallocated
//! with zeros and synced first, so a sync writes only data: the gap
//! between the two is what preallocating segments would save.
//!
//! Run: `cargo run --release -p doozerd --example fsync_floor [DIR]`
//! (default: a scratch directory under the current one, since the system
//! temp directory may be a RAM disk where syncing costs nothing; it is
//! removed at the end).

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

const SYNCS: usize = 1_000;
const SIZES: [usize; 2] = [64, 4096];

/// The scratch directory, removed when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A new file at `path`: empty, or `prealloc` zero bytes long, written
/// and synced, so later writes into it allocate nothing.
fn new_file(path: &Path, prealloc: usize) -> std::io::Result<File> {
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(path)?;
    if prealloc > 0 {
        f.write_all(&vec![0; prealloc])?;
        f.sync_all()?;
        f.seek(SeekFrom::Start(0))?;
    }
    Ok(f)
}

/// p50 and p99 of `SYNCS` write-and-fdatasync steps of `size` bytes, in µs.
fn measure(path: &Path, size: usize, prealloc: bool) -> std::io::Result<(f64, f64)> {
    let mut f = new_file(path, if prealloc { size * SYNCS } else { 0 })?;
    let record = vec![0x5au8; size];
    let mut micros = Vec::with_capacity(SYNCS);
    for _ in 0..SYNCS {
        let t = Instant::now();
        f.write_all(&record)?;
        f.sync_data()?;
        micros.push(t.elapsed().as_secs_f64() * 1e6);
    }
    micros.sort_by(f64::total_cmp);
    let at = |q: f64| micros[((SYNCS as f64 * q) as usize).min(SYNCS - 1)];
    Ok((at(0.50), at(0.99)))
}

fn main() -> std::io::Result<()> {
    let parent = std::env::args_os()
        .nth(1)
        .map_or_else(|| PathBuf::from("."), PathBuf::from);
    let scratch = Scratch(parent.join(format!("fsync-floor-{}", std::process::id())));
    std::fs::create_dir_all(&scratch.0)?;
    println!(
        "write + fdatasync in {}, {SYNCS} times each:",
        scratch.0.display()
    );
    println!(
        "{:>8}  {:<12}  {:>8}  {:>8}",
        "record", "file", "p50 µs", "p99 µs"
    );
    for size in SIZES {
        for (prealloc, what) in [(false, "grows"), (true, "preallocated")] {
            let (p50, p99) = measure(&scratch.0.join("f"), size, prealloc)?;
            println!("{:>6} B  {what:<12}  {p50:>8.0}  {p99:>8.0}", size);
        }
    }
    Ok(())
}
