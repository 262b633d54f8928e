//! Between the replica's durable-mode types (`replica::SnapshotJob`,
//! `replica::Restored`) and the files: the image header a job is written
//! with, and a snapshot read back as the replica takes it up.

use doozer_proto::image::{ImageHeader, ImageKind};

use super::{DataDir, Recovered, StorageError};
use crate::consensus::CalSet;
use crate::replica::{Restored, SnapshotJob};
use crate::store::FileCopy;

impl DataDir {
    /// [`DataDir::start_snapshot`] for a job from `Replica::snapshot_job`.
    pub fn start_snapshot_job(&mut self, job: &SnapshotJob) -> bool {
        let header = self.header_of(job);
        self.start_snapshot(header, job.tree.clone())
    }

    /// [`DataDir::checkpoint`] for `Output::checkpoint`: the job's tree,
    /// then a new log starting with the job's acceptor records.
    pub fn checkpoint_job(&mut self, job: &SnapshotJob) -> Result<(), StorageError> {
        let header = self.header_of(job);
        self.checkpoint(header, &job.tree, &job.records)
    }

    /// The snapshot header of `job`, in this directory's cluster.
    fn header_of(&self, job: &SnapshotJob) -> ImageHeader {
        ImageHeader {
            kind: ImageKind::Snapshot,
            cluster: self.meta().cluster.clone(),
            rev: job.rev,
            seqn: job.seqn,
            sets: job
                .sets
                .iter()
                .map(|(seqn, set)| (*seqn, set.iter().cloned().collect()))
                .collect(),
            former: job
                .former
                .iter()
                .map(|(id, addr)| (id.clone(), addr.to_string()))
                .collect(),
        }
    }
}

impl Recovered {
    /// Takes the snapshot out, as `Replica::recover` wants it. A CAL set
    /// the replica cannot use (too many ids) is an error naming the
    /// snapshot file.
    pub fn take_restored(&mut self) -> Result<Option<Restored>, StorageError> {
        let Some((header, files)) = self.snapshot.take() else {
            return Ok(None);
        };
        let mut sets = Vec::with_capacity(header.sets.len());
        for (seqn, ids) in header.sets {
            let set = CalSet::new(ids).map_err(|e| StorageError::BadRecord {
                file: self.snapshot_file.clone().unwrap_or_default(),
                offset: 0,
                why: format!("the CAL set of seqn {seqn}: {e}"),
            })?;
            sets.push((seqn, set));
        }
        let mut former = Vec::with_capacity(header.former.len());
        for (id, addr) in header.former {
            let addr = addr.parse().map_err(|e| StorageError::BadRecord {
                file: self.snapshot_file.clone().unwrap_or_default(),
                offset: 0,
                why: format!("the address {addr:?} of former node {id:?}: {e}"),
            })?;
            former.push((id, addr));
        }
        let files = files
            .into_iter()
            .map(|f| FileCopy {
                path: f.path,
                body: f.body,
                rev: f.rev,
            })
            .collect();
        Ok(Some(Restored {
            seqn: header.seqn,
            rev: header.rev,
            sets,
            former,
            files,
        }))
    }
}
