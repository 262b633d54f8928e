//! Seeding a new cluster from a backup (`doozerd -restore FILE`,
//! docs/storage.md#backups), the replica's side: which files of a backup
//! are taken ([`BackupTree`]) and how the seed starts from them
//! ([`Replica::seed_restored`]). Pure: the node reads the image
//! (`node::restore`) and hands the tree over.
//!
//! The restored files keep the revs they had; the store's rev starts at
//! the backup's rev, so the seed's own writes (its `/ctl` files, at seqns
//! 1, 2, ...) and every write after them get revs after it. Nothing under
//! `/ctl` is taken from the backup: those files describe the old
//! cluster's nodes, slots and name, and the new cluster writes its own.

use doozer_proto::ctl;

use super::Replica;
use crate::cluster::NodeInfo;
use crate::store::{Copy, FileCopy, Rev, StoreError};

/// The tree a backup restores: its files outside `/ctl`, as of its rev,
/// built file by file as the image is read.
#[derive(Debug)]
pub struct BackupTree {
    copy: Copy,
    files: u64,
    skipped: u64,
}

impl BackupTree {
    /// An empty tree as of the backup's rev `rev` (`Range` if negative).
    pub fn new(rev: Rev) -> Result<BackupTree, StoreError> {
        Ok(BackupTree {
            copy: Copy::new(rev)?,
            files: 0,
            skipped: 0,
        })
    }

    /// Whether a backup's file at `path` is restored: everything but
    /// `/ctl` and what is under it.
    pub fn restores(path: &str) -> bool {
        path != ctl::CTL_DIR && !ctl::touches(path, ctl::CTL_DIR)
    }

    /// Adds one file of the backup; `Ok(false)` if it is not restored
    /// (under `/ctl`). A bad path, a rev outside `1..=rev`, or a file where
    /// an earlier one makes a directory (or the other way round) is an
    /// error and the tree is unchanged.
    pub fn add(&mut self, f: FileCopy) -> Result<bool, StoreError> {
        if !BackupTree::restores(&f.path) {
            self.skipped += 1;
            return Ok(false);
        }
        self.copy.add(f)?;
        self.files += 1;
        Ok(true)
    }

    /// The backup's rev.
    pub fn rev(&self) -> Rev {
        self.copy.rev()
    }

    /// Files taken.
    pub fn files(&self) -> u64 {
        self.files
    }

    /// Files left out (under `/ctl`).
    pub fn skipped(&self) -> u64 {
        self.skipped
    }
}

impl Replica {
    /// Seeds a new cluster, as [`Replica::seed`] does, from a backup's
    /// tree: the store holds the backup's files with their revs, its rev
    /// is the backup's, and the seed's `/ctl` files (`/ctl/name` =
    /// `cluster`) are then written through consensus at the revs after it.
    /// In durable mode the checkpoint of seeding holds the restored tree.
    pub fn seed_restored(&mut self, cluster: &str, node: &NodeInfo, tree: BackupTree) {
        // A fresh replica: nothing waits on the store to be woken.
        let woken = self.store.install(tree.copy);
        debug_assert!(woken.is_empty());
        self.seed(cluster, node);
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use doozer_proto::{Request, Verb};

    use super::*;
    use crate::replica::{Input, Output, ReplicaConfig};
    use crate::store::Glob;

    fn file(path: &str, rev: Rev, body: &str) -> FileCopy {
        FileCopy {
            path: path.into(),
            rev,
            body: Bytes::from(body.to_string()),
        }
    }

    fn node() -> NodeInfo {
        NodeInfo {
            id: "NEWID".into(),
            addr: "127.0.0.1:9046".into(),
            hostname: "h".into(),
            version: "0".into(),
        }
    }

    fn replica(durable: bool) -> Replica {
        Replica::new(ReplicaConfig {
            self_id: "NEWID".into(),
            secrets: Default::default(),
            history_revs: 1000,
            cluster: Default::default(),
            durable,
        })
    }

    /// The files of `r`'s store at its head: (path, rev, body).
    fn files(r: &Replica) -> Vec<(String, Rev, String)> {
        let snap = r.store().snapshot(None).unwrap();
        snap.walk_all(&Glob::parse("/**").unwrap())
            .into_iter()
            .map(|e| {
                let body = String::from_utf8_lossy(&e.body).into_owned();
                (e.path, e.rev, body)
            })
            .collect()
    }

    /// A backup at rev 40 of a cluster that had /app and the old /ctl.
    fn backup() -> BackupTree {
        let mut t = BackupTree::new(40).unwrap();
        for f in [
            file("/app/a", 7, "alpha"),
            file("/app/b/c", 40, "gamma"),
            file("/ctl/cal/0", 1, "OLDID"),
            file("/ctl/name", 1, "old"),
            file("/ctl/node/OLDID/addr", 2, "10.0.0.1:8046"),
            file("/z", 12, ""),
        ] {
            t.add(f).unwrap();
        }
        t
    }

    #[test]
    fn a_backup_tree_takes_everything_but_ctl() {
        let t = backup();
        assert_eq!((t.rev(), t.files(), t.skipped()), (40, 3, 3));
        assert!(BackupTree::restores("/ctlx"));
        assert!(BackupTree::restores("/app/ctl"));
        assert!(!BackupTree::restores("/ctl"));
        assert!(!BackupTree::restores("/ctl/err"));
        let mut t = BackupTree::new(5).unwrap();
        assert_eq!(t.add(file("/a", 6, "x")), Err(StoreError::Range));
        assert_eq!(t.add(file("/a", 0, "x")), Err(StoreError::Range));
        assert_eq!(t.add(file("/a b", 1, "x")), Err(StoreError::BadPath));
        assert_eq!(t.add(file("/a", 1, "x")), Ok(true));
        assert_eq!(t.add(file("/a/b", 1, "x")), Err(StoreError::NotDir));
        assert_eq!(t.files(), 1);
        assert!(BackupTree::new(-1).is_err());
    }

    #[test]
    fn seed_restored_keeps_files_and_revs_and_writes_ctl_after_the_backup() {
        let mut r = replica(false);
        r.seed_restored("new", &node(), backup());
        let got = files(&r);
        let (user, ctl): (Vec<_>, Vec<_>) = got
            .into_iter()
            .partition(|(p, _, _)| !p.starts_with("/ctl/"));
        assert_eq!(
            user,
            vec![
                ("/app/a".to_string(), 7, "alpha".to_string()),
                ("/app/b/c".to_string(), 40, "gamma".to_string()),
                ("/z".to_string(), 12, String::new()),
            ]
        );
        // Only the new cluster's /ctl, every file written after rev 40.
        assert!(ctl.iter().all(|(_, rev, _)| *rev > 40), "{ctl:?}");
        let get = |p: &str| ctl.iter().find(|(q, _, _)| q == p).map(|f| f.2.as_str());
        assert_eq!(get("/ctl/name"), Some("new"));
        assert_eq!(get("/ctl/cal/0"), Some("NEWID"));
        assert_eq!(get("/ctl/node/NEWID/addr"), Some("127.0.0.1:9046"));
        assert_eq!(get("/ctl/node/OLDID/addr"), None);
        assert!(r.is_cal());

        // The next client write comes after the seed's.
        let head = r.store().rev();
        assert_eq!(head, 40 + ctl.len() as Rev);
        r.step(0, Input::Connect(1)).unwrap();
        let set = Request {
            tag: Some(1),
            verb: Some(Verb::Set as i32),
            path: Some("/app/a".into()),
            rev: Some(7),
            value: Some(Bytes::from_static(b"beta")),
            ..Default::default()
        };
        r.step(0, Input::Request(1, set)).unwrap();
        let mut out = Output::default();
        r.ready(0, &mut out);
        let answers: Vec<_> = out.responses.iter().map(|(_, a)| a.clone()).collect();
        assert_eq!(answers.len(), 1, "{answers:?}");
        assert_eq!(answers[0].err_code, None, "{answers:?}");
        assert_eq!(answers[0].rev, Some(head + 1));
    }

    #[test]
    fn a_durable_restore_checkpoints_the_restored_tree() {
        let mut r = replica(true);
        r.seed_restored("new", &node(), backup());
        let mut out = Output::default();
        r.ready(0, &mut out);
        let job = out.checkpoint.expect("seeding is a checkpoint");
        assert_eq!((job.seqn, job.rev), (0, 40));
        let paths: Vec<_> = job
            .tree
            .walk_all(&Glob::parse("/**").unwrap())
            .into_iter()
            .map(|e| (e.path, e.rev))
            .collect();
        assert_eq!(
            paths,
            vec![
                ("/app/a".to_string(), 7),
                ("/app/b/c".to_string(), 40),
                ("/z".to_string(), 12)
            ]
        );
    }
}
