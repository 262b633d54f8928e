//! `-restore FILE` at start-up: the backup image (docs/storage.md#images)
//! is read and checked whole, every record, the trailer and every file's
//! place in the tree, before anything is bound or started; the replica
//! then seeds the new cluster from it ([`crate::replica::Replica::seed_restored`]).

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use doozer_proto::image::{ImageKind, ImageReader};

use super::NodeError;
use crate::replica::BackupTree;
use crate::store::FileCopy;

/// Reads the backup `file` whole: its files outside `/ctl`, as of its
/// rev. `cluster` (the `-c` of the new cluster) is only compared with the
/// backup's, to log a rename. Any error names the file and, for damage,
/// the byte offset of the record it is about.
pub(super) fn read_backup(file: &Path, cluster: &str) -> Result<BackupTree, NodeError> {
    let failed = |why: String| NodeError::Restore {
        file: file.display().to_string(),
        why,
    };
    let f = File::open(file).map_err(|e| failed(format!("open: {e}")))?;
    let (mut image, header) =
        ImageReader::open(BufReader::new(f)).map_err(|e| failed(e.to_string()))?;
    if header.kind != ImageKind::Backup {
        return Err(failed(
            "this image is a data directory's snapshot, not a backup (make one with doozer backup)"
                .into(),
        ));
    }
    let mut tree = BackupTree::new(header.rev).map_err(|e| failed(e.to_string()))?;
    loop {
        let offset = image.offset();
        let Some(f) = image.next_file().map_err(|e| failed(e.to_string()))? else {
            break;
        };
        let path = f.path.clone();
        tree.add(FileCopy {
            path: f.path,
            rev: f.rev,
            body: f.body,
        })
        .map_err(|e| failed(format!("bad file {path:?} at byte {offset}: {e}")))?;
    }
    log::info!(
        "read backup {}: rev {}, {} files restored, {} under /ctl left out",
        file.display(),
        tree.rev(),
        tree.files(),
        tree.skipped()
    );
    if header.cluster != cluster {
        log::info!(
            "the backup is of cluster {:?}; the restored cluster is {cluster:?} (-c)",
            header.cluster
        );
    }
    Ok(tree)
}

#[cfg(test)]
mod tests {
    use doozer_proto::image::{ImageHeader, ImageWriter};

    use super::*;

    fn header(kind: ImageKind) -> ImageHeader {
        ImageHeader {
            kind,
            cluster: "old".into(),
            rev: 9,
            seqn: 0,
            sets: vec![],
            former: Vec::new(),
        }
    }

    fn write(dir: &Path, name: &str, kind: ImageKind, files: &[(&str, i64)]) -> std::path::PathBuf {
        let mut w = ImageWriter::new(Vec::new(), &header(kind)).unwrap();
        for (p, rev) in files {
            w.file(p, *rev, b"x").unwrap();
        }
        let path = dir.join(name);
        std::fs::write(&path, w.finish().unwrap()).unwrap();
        path
    }

    fn err(file: &Path) -> String {
        read_backup(file, "local").unwrap_err().to_string()
    }

    /// A scratch directory, removed when dropped (also on failure).
    struct Dir(std::path::PathBuf);

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn a_backup_is_read_whole_and_errors_name_file_and_offset() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let d =
            Dir(std::env::temp_dir()
                .join(format!("doozerd-restore-{}-{nanos}", std::process::id())));
        let dir = d.0.as_path();
        std::fs::create_dir_all(dir).unwrap();
        let good = write(
            dir,
            "good",
            ImageKind::Backup,
            &[("/a", 3), ("/ctl/name", 1)],
        );
        let t = read_backup(&good, "local").unwrap();
        assert_eq!((t.rev(), t.files(), t.skipped()), (9, 1, 1));

        // A file the store cannot hold (a file below a file): its offset.
        let bad = write(dir, "bad", ImageKind::Backup, &[("/a", 3), ("/a/b", 4)]);
        let data = std::fs::read(&bad).unwrap();
        let second = doozer_proto::record::Records::new(&data[..])
            .nth(2)
            .unwrap()
            .unwrap()
            .offset;
        let shown = bad.display();
        assert_eq!(
            err(&bad),
            format!(
                "cannot restore from {shown}: bad file \"/a/b\" at byte {second}: not a directory"
            )
        );
        // Cut short.
        std::fs::write(&bad, &data[..data.len() - 3]).unwrap();
        assert!(err(&bad).starts_with(&format!("cannot restore from {shown}: ")));
        assert!(err(&bad).contains("at byte"), "{}", err(&bad));

        let snap = write(dir, "snap", ImageKind::Snapshot, &[]);
        assert!(err(&snap).contains("not a backup"), "{}", err(&snap));
        let missing = dir.join("missing");
        assert!(err(&missing).contains("open: "), "{}", err(&missing));
    }
}
