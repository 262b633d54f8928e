//! Images (`doozer_proto::image`): a backup that `doozerd -restore FILE`
//! reads, or a snapshot of a data directory. The image is read as the
//! node reads it: [`ImageReader`] file by file; a backup into a
//! [`BackupTree`] that seeds a new cluster (`Replica::seed_restored`, as
//! `node::restore` and start-up do), a snapshot into a replica that
//! recovers from it (`Replica::recover`, as `Recovered::take_restored`
//! hands it over).
//!
//! Input: the file, built by the operations of [`crate::records`] (op 7:
//! `n: u8` raw bytes too).
//!
//! Invariants: an image read whole writes back (`ImageWriter`) as an
//! image that reads the same; a restored backup holds exactly its files
//! outside `/ctl`, with their bodies and revs, at revs past the backup's;
//! a recovered snapshot holds exactly its files at its rev.

use bytes::Bytes;
use doozer_proto::image::{ImageFile, ImageHeader, ImageKind, ImageReader, ImageWriter};
use doozerd::consensus::CalSet;
use doozerd::replica::{BackupTree, Replica, Restored, Secrets};
use doozerd::store::{FileCopy, Glob};

use crate::cluster::{config, node_info, Node, SELF_ADDR, SELF_ID};
use crate::input::Input;
use crate::records::FileBytes;

/// The `image` target.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let mut file = FileBytes::default();
    while let Some(op) = input.next_byte() {
        match op % 8 {
            7 => file.bytes.extend_from_slice(input.short_bytes()),
            _ => file.op(op, &mut input),
        }
    }
    let Some((header, files)) = read(&file.bytes) else {
        return;
    };
    check_rewrite(&header, &files);
    match header.kind {
        ImageKind::Backup => restore(&header, files),
        ImageKind::Snapshot => recover(&header, files),
    }
}

/// The image's header and files, if it reads whole.
fn read(bytes: &[u8]) -> Option<(ImageHeader, Vec<ImageFile>)> {
    let (mut reader, header) = ImageReader::open(bytes).ok()?;
    let mut files = Vec::new();
    loop {
        let before = reader.offset();
        match reader.next_file() {
            Ok(Some(f)) => files.push(f),
            Ok(None) => break,
            Err(e) => {
                // An error names a byte of the image, at or after the
                // record it was reading (a version error names none).
                let at = e.offset();
                assert!(at <= bytes.len() as u64, "{e}: past the end");
                assert!(at == 0 || at >= before, "{e}: before {before}");
                return None;
            }
        }
    }
    assert_eq!(reader.files(), files.len() as u64);
    Some((header, files))
}

/// What was read writes back as an image that reads the same.
fn check_rewrite(header: &ImageHeader, files: &[ImageFile]) {
    let mut w = ImageWriter::new(Vec::new(), header)
        .unwrap_or_else(|e| panic!("a header read back does not write: {e}"));
    for f in files {
        w.file(&f.path, f.rev, &f.body)
            .unwrap_or_else(|e| panic!("a file read back does not write: {e}"));
    }
    let bytes = w.finish().expect("writing to memory");
    let again = read(&bytes).expect("a written image reads back");
    assert_eq!(&again.0, header);
    assert_eq!(again.1, files);
}

/// A backup seeds a new cluster, as `doozerd -restore` does.
fn restore(header: &ImageHeader, files: Vec<ImageFile>) {
    let Ok(mut tree) = BackupTree::new(header.rev) else {
        return;
    };
    let mut kept = Vec::new();
    for f in files {
        let copy = FileCopy {
            path: f.path.clone(),
            body: f.body.clone(),
            rev: f.rev,
        };
        match tree.add(copy) {
            Ok(true) => kept.push((f.path, f.body, f.rev)),
            Ok(false) => assert!(!BackupTree::restores(&f.path)),
            // A file the store refuses (`-restore` names it and exits).
            Err(_) => return,
        }
    }
    let mut replica = Replica::new(config(SELF_ID, 0, Secrets::default()));
    replica.seed_restored("local", &node_info(SELF_ID, SELF_ADDR), tree);
    let mut node = Node::new_with(replica, config(SELF_ID, 0, Secrets::default()));
    node.ready();
    node.wake();
    let store = node.replica.store();
    assert!(store.rev() > header.rev, "the seed's writes come after");
    let restored: Vec<_> = files_of(&node.replica)
        .into_iter()
        .filter(|(path, _, _)| BackupTree::restores(path))
        .collect();
    assert!(
        restored == kept,
        "the restored files differ from the backup's"
    );
}

/// A snapshot is recovered from, as start-up does.
fn recover(header: &ImageHeader, files: Vec<ImageFile>) {
    let mut sets = Vec::new();
    for (seqn, ids) in &header.sets {
        // A set the replica cannot use is an error naming the file.
        let Ok(set) = CalSet::new(ids.clone()) else {
            return;
        };
        sets.push((*seqn, set));
    }
    let want: Vec<_> = files
        .iter()
        .map(|f| (f.path.clone(), f.body.clone(), f.rev))
        .collect();
    let restored = Restored {
        seqn: header.seqn,
        rev: header.rev,
        sets,
        former: Vec::new(),
        files: files
            .into_iter()
            .map(|f| FileCopy {
                path: f.path,
                body: f.body,
                rev: f.rev,
            })
            .collect(),
    };
    let mut cfg = config(SELF_ID, 0, Secrets::default());
    cfg.durable = true;
    let Ok(replica) = Replica::recover(cfg.clone(), Some(restored), &[]) else {
        return;
    };
    assert_eq!(replica.store().rev(), header.rev);
    assert!(
        files_of(&replica) == want,
        "the recovered files differ from the snapshot's"
    );
    let mut node = Node::new_with(replica, cfg);
    node.ready();
    node.wake();
}

/// Every file of a replica's store, in walk order, with body and rev.
fn files_of(replica: &Replica) -> Vec<(String, Bytes, i64)> {
    let all = Glob::parse("/**").expect("a valid glob");
    let head = replica.store().snapshot(None).expect("the head");
    head.walk_iter(&all)
        .map(|f| (f.path, f.body, f.rev))
        .collect()
}

/// Inputs to start from: a backup and a snapshot written by
/// `ImageWriter`, record by record.
pub fn seeds() -> Vec<Vec<u8>> {
    let files: &[(&str, i64, &[u8])] = &[
        ("/a", 3, b"x"),
        ("/a0", 4, b""),
        ("/b/c", 5, b"yy"),
        ("/ctl/name", 1, b"old"),
        ("/ctl/node/A/addr", 2, b"127.0.0.1:8046"),
        ("/z", 7, b"\xff"),
    ];
    let backup = ImageHeader {
        kind: ImageKind::Backup,
        cluster: "old".into(),
        rev: 9,
        seqn: 0,
        sets: Vec::new(),
        former: Vec::new(),
    };
    let snapshot = ImageHeader {
        kind: ImageKind::Snapshot,
        cluster: "local".into(),
        rev: 9,
        seqn: 9,
        sets: vec![(10, vec!["A".into()]), (12, vec!["A".into(), "B".into()])],
        former: Vec::new(),
    };
    [backup, snapshot]
        .iter()
        .map(|header| {
            let mut w = ImageWriter::new(Vec::new(), header).expect("a valid header");
            for (path, rev, body) in files {
                w.file(path, *rev, body).expect("a valid file");
            }
            crate::records::ops_of(&w.finish().expect("in memory"))
        })
        .collect()
}
