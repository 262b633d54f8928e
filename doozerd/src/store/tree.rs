//! The persistent tree. CONTRACT: signatures below are what the server uses.

use bytes::Bytes;

use super::{Glob, Rev, StoreError};

/// One revision of the tree; cloning is O(1).
#[derive(Clone)]
pub struct Snapshot {
    _todo: (),
}

/// One file found by [`Snapshot::walk`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalkEntry {
    /// Full path of the file.
    pub path: String,
    /// Its body.
    pub body: Bytes,
    /// Its rev.
    pub rev: Rev,
}

impl Snapshot {
    /// The revision this snapshot is of.
    pub fn rev(&self) -> Rev {
        todo!()
    }

    /// A file's body and rev; a missing file is `(empty, 0)`; a directory is
    /// `IsDir`; a path under a file is missing too.
    pub fn get(&self, path: &str) -> Result<(Bytes, Rev), StoreError> {
        let _ = path;
        todo!()
    }

    /// `(len, rev)`: a file's body length and rev; a directory's entry count
    /// and `rev::DIR`; missing `(0, 0)`.
    pub fn stat(&self, path: &str) -> Result<(usize, Rev), StoreError> {
        let _ = path;
        todo!()
    }

    /// The `offset`-th entry name (sorted) of a directory: `NoEnt` if
    /// missing, `NotDir` for a file, `Range` past the end.
    pub fn getdir(&self, path: &str, offset: usize) -> Result<String, StoreError> {
        let _ = (path, offset);
        todo!()
    }

    /// The `offset`-th file matching `glob`, in sorted depth-first order;
    /// `Range` past the end.
    pub fn walk(&self, glob: &Glob, offset: usize) -> Result<WalkEntry, StoreError> {
        let _ = (glob, offset);
        todo!()
    }

    /// Every file matching `glob`, in sorted depth-first order.
    pub fn walk_all(&self, glob: &Glob) -> Vec<WalkEntry> {
        let _ = glob;
        todo!()
    }
}
