//! A data directory (`-d DIR`, docs/storage.md) as a crash, a bad disk or
//! an operator may leave it, read back as start-up does:
//! `DataDir::open`, `Recovered::take_restored`, `Replica::recover`, then
//! the node's first loop iteration.
//!
//! Input: files, each started by op 7 and built by the operations of
//! [`crate::records`]. Op 7's next byte says which file (`b % 5`): 0 the
//! meta file, 1 log segment `n: u8 % 4 + 1` (255: a number far off),
//! 2 the snapshot as of seqn `s: u16`, 3 a leftover `.tmp` snapshot,
//! 4 a file of another name in the log directory. Bytes before the first
//! op 7 go to the meta file. The files are written to a directory under
//! `/dev/shm` (or the temporary directory) and removed after.
//!
//! Invariants: no panic; a directory read back once reads back the
//! same a second time (recovery cuts a torn tail and removes leftovers,
//! and what it leaves is then whole); a replica recovered from it has
//! the snapshot's rev and at least one rev per applied record after it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use doozerd::replica::{Replica, Secrets};
use doozerd::storage::{DataDir, Opened, Recovered};

use crate::cluster::{config, Node, SELF_ID};
use crate::input::Input;
use crate::records::{ops_of, FileBytes};

/// The `data_dir` target.
pub fn run(data: &[u8]) {
    let files = build(data);
    let dir = scratch_dir();
    let _ = std::fs::remove_dir_all(&dir);
    for (name, f) in &files {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("a scratch directory");
        }
        std::fs::write(&path, &f.bytes).expect("a scratch file");
    }
    check(&dir);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The files the input builds, by name in the directory (the last of
/// each name wins).
fn build(data: &[u8]) -> Vec<(String, FileBytes)> {
    let mut input = Input::new(data);
    let mut files: Vec<(String, FileBytes)> = vec![("meta".into(), FileBytes::default())];
    while let Some(op) = input.next_byte() {
        if op % 8 != 7 {
            let last = files.last_mut().expect("one file at least");
            last.1.op(op, &mut input);
            continue;
        }
        let name = match input.byte() % 5 {
            0 => "meta".to_string(),
            1 => {
                let n = match input.byte() {
                    255 => u64::MAX - 1,
                    n => u64::from(n % 4 + 1),
                };
                format!("log/{n:016x}.log")
            }
            2 => format!("snap/{:016x}.snap", input.u16()),
            3 => format!("snap/{:016x}.snap.tmp", input.u16()),
            _ => "log/notes.txt".to_string(),
        };
        files.retain(|(n, _)| *n != name);
        files.push((name, FileBytes::default()));
    }
    files
}

/// A directory of this call's own (tests run targets on several threads
/// of one process).
fn scratch_dir() -> PathBuf {
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let shm = Path::new("/dev/shm");
    let base = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let n = CALLS.fetch_add(1, Ordering::Relaxed);
    base.join(format!("doozer-fuzz-data-dir-{}-{n}", std::process::id()))
}

/// Opens `dir` as start-up does and recovers a replica from it.
fn check(dir: &Path) {
    let first = match DataDir::open(dir) {
        Ok(Opened::Existing(data, recovered)) => {
            drop(data);
            recovered
        }
        Ok(Opened::Fresh(_)) => return,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    // What recovery left is whole: it reads back the same, with nothing
    // more to cut off.
    let second = match DataDir::open(dir) {
        Ok(Opened::Existing(data, recovered)) => {
            drop(data);
            recovered
        }
        Ok(Opened::Fresh(_)) => panic!("a directory read back once reads back empty"),
        Err(e) => panic!("a directory read back once cannot be read again: {e}"),
    };
    assert_eq!(second.torn, None, "torn again after recovery");
    assert_eq!(second.meta, first.meta);
    assert_eq!(second.records, first.records);
    assert_eq!(second.snapshot, first.snapshot);
    recover(first);
}

/// The replica the node would run.
fn recover(mut recovered: Recovered) {
    let Ok(restored) = recovered.take_restored() else {
        return;
    };
    let snapshot_rev = restored.as_ref().map_or(0, |r| r.rev);
    let mut cfg = config(&recovered.meta.id, 0, Secrets::default());
    cfg.durable = true;
    let Ok(replica) = Replica::recover(cfg.clone(), restored, &recovered.records) else {
        return;
    };
    let applied = recovered
        .records
        .iter()
        .filter(|r| {
            matches!(
                r,
                doozerd::storage::Record::Applied { .. }
                    | doozerd::storage::Record::Replayed { .. }
            )
        })
        .count() as i64;
    let rev = replica.store().rev();
    assert!(
        rev >= snapshot_rev + applied,
        "rev {rev}: not one rev per applied record after the snapshot's {snapshot_rev}"
    );
    let mut node = Node::new_with(replica, cfg);
    node.connect(0);
    node.ready();
    node.wake();
}

/// Inputs to start from: directories a node wrote (a seeded node with a
/// few writes, then a snapshot), file by file, record by record.
pub fn seeds() -> Vec<Vec<u8>> {
    let dir = scratch_dir();
    let _ = std::fs::remove_dir_all(&dir);
    let mut out = Vec::new();
    for writes in [0, 5] {
        write_seed_dir(&dir, writes);
        out.push(ops_of_dir(&dir));
        let _ = std::fs::remove_dir_all(&dir);
    }
    out
}

/// A directory as a seeded durable node with `writes` SETs leaves it.
fn write_seed_dir(dir: &Path, writes: i32) {
    let Ok(Opened::Fresh(fresh)) = DataDir::open(dir) else {
        panic!("{}: not a fresh directory", dir.display());
    };
    let meta = doozerd::storage::Meta {
        id: SELF_ID.into(),
        cluster: "local".into(),
    };
    let mut data = fresh.init(&meta).expect("a seed directory");
    let mut node = Node::seeded(config(SELF_ID, 9, Secrets::default()));
    let (job, records) = node.disk().expect("durable");
    let job = job.expect("seeding is a checkpoint");
    // The checkpoint writes its own record and acceptor records.
    data.checkpoint_job(&job).expect("a checkpoint");
    data.append(&records[1 + job.records.len()..])
        .expect("records");
    node.connect(0);
    for n in 0..writes {
        node.request(0, crate::cluster::set(n, &format!("/k{}", n % 3), "v"));
        node.ready();
    }
    let (_, all) = node.disk().expect("durable");
    data.append(&all[records.len()..]).expect("records");
    if writes > 0 {
        let job = node.replica.snapshot_job().expect("something applied");
        assert!(data.start_snapshot_job(&job));
        while data.poll_snapshot().is_none() {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
}

/// The operations that rebuild the files of `dir`.
fn ops_of_dir(dir: &Path) -> Vec<u8> {
    let mut ops = ops_of(&std::fs::read(dir.join("meta")).expect("a meta file"));
    for (sub, which) in [("log", 1u8), ("snap", 2)] {
        let mut names: Vec<_> = std::fs::read_dir(dir.join(sub))
            .expect("a seed directory")
            .map(|e| e.expect("an entry").file_name())
            .collect();
        names.sort();
        for name in names {
            let name = name.to_string_lossy().into_owned();
            let Some(n) = name
                .split('.')
                .next()
                .and_then(|h| u64::from_str_radix(h, 16).ok())
            else {
                continue;
            };
            ops.extend([7, which]);
            match which {
                1 => ops.push(n as u8 - 1),
                _ => ops.extend((n as u16).to_be_bytes()),
            }
            ops.extend(ops_of(
                &std::fs::read(dir.join(sub).join(&name)).expect("a file"),
            ));
        }
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_directory_reads_back_and_its_ops_rebuild_it() {
        let dir = scratch_dir();
        let _ = std::fs::remove_dir_all(&dir);
        write_seed_dir(&dir, 5);
        let Ok(Opened::Existing(_, rec)) = DataDir::open(&dir) else {
            panic!("the seed directory does not read back");
        };
        let _ = std::fs::remove_dir_all(&dir);
        assert!(rec.snapshot.is_some());
        assert_eq!(rec.meta.id, SELF_ID);
        for seed in seeds() {
            let files = build(&seed);
            assert!(files.iter().any(|(n, _)| n.starts_with("log/")));
            run(&seed);
        }
    }
}
