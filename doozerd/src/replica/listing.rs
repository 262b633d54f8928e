//! GETDIR and WALK at high offsets without walking each time.
//!
//! Clients list a directory by asking for offset 0, 1, 2, ... at one rev
//! (the Go protocol has no cursor). The tree finds the n-th entry in O(n),
//! so listing a directory of 100,000 files would cost O(n²). A snapshot
//! never changes, so the sorted names of `(rev, path)` are kept for a few
//! recent listings and each later offset is an index.

use std::sync::Arc;

use crate::store::{Glob, Rev, Snapshot, StoreError, WalkEntry};

/// Below this offset the tree is walked directly (cheap, no allocation).
const DIRECT_OFFSET_MAX: usize = 64;
/// Listings kept; a handful of concurrent `find`s stay fast.
const LISTINGS_MAX: usize = 4;

/// Recent directory listings, most recent last.
#[derive(Default)]
pub struct Listings {
    recent: Vec<(Rev, String, Vec<Arc<str>>)>,
}

impl Listings {
    /// The `offset`-th entry name of directory `path` in `snap`.
    pub fn entry(
        &mut self,
        snap: &Snapshot,
        path: &str,
        offset: usize,
    ) -> Result<String, StoreError> {
        if offset < DIRECT_OFFSET_MAX {
            return snap.getdir(path, offset);
        }
        // Past the end costs nothing: the entry count is known.
        if let Ok((entries, doozer_proto::rev::DIR)) = snap.stat(path) {
            if offset >= entries {
                return Err(StoreError::Range);
            }
        }
        let rev = snap.rev();
        let at = match self
            .recent
            .iter()
            .position(|(r, p, _)| *r == rev && p == path)
        {
            Some(i) => i,
            None => {
                let names = snap.dir_names(path)?;
                if self.recent.len() == LISTINGS_MAX {
                    self.recent.remove(0);
                }
                self.recent.push((rev, path.to_string(), names));
                self.recent.len() - 1
            }
        };
        self.recent[at]
            .2
            .get(offset)
            .map(|n| n.to_string())
            .ok_or(StoreError::Range)
    }
}

/// Walks remembered.
const WALKS_MAX: usize = 8;

/// Where recent walks stopped: `(rev, glob)` → the offset and path of the
/// last match served. A client asks WALK at offsets 0, 1, 2, ... (the Go
/// protocol has no cursor); each next offset resumes after the last path
/// ([`Snapshot::walk_after`]), costing the depth of a path instead of the
/// offset.
#[derive(Default)]
pub struct Walks {
    recent: Vec<(Rev, String, usize, String)>,
}

impl Walks {
    /// The `offset`-th file matching `glob` in `snap`.
    pub fn entry(
        &mut self,
        snap: &Snapshot,
        glob: &Glob,
        offset: usize,
    ) -> Result<WalkEntry, StoreError> {
        // No glob matches more files than there are: an offset past them
        // costs nothing, however the glob is written.
        if offset as u64 >= snap.files() {
            return Err(StoreError::Range);
        }
        let rev = snap.rev();
        let resume = self
            .recent
            .iter()
            .position(|(r, g, o, _)| *r == rev && g == glob.as_str() && *o < offset);
        let found = match resume {
            Some(i) => {
                let (_, _, from, last) = &self.recent[i];
                snap.walk_after(glob, last).nth(offset - from - 1)
            }
            None => snap.walk_iter(glob).nth(offset),
        };
        let e = found.ok_or(StoreError::Range)?;
        self.recent
            .retain(|(r, g, _, _)| !(*r == rev && g == glob.as_str()));
        if self.recent.len() == WALKS_MAX {
            self.recent.remove(0);
        }
        self.recent
            .push((rev, glob.as_str().to_string(), offset, e.path.clone()));
        Ok(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Mutation, Store};

    #[test]
    fn cached_listing_matches_the_tree_and_follows_revs() {
        let mut store = Store::new(10);
        for i in 0..200 {
            let m = Mutation::Set {
                path: format!("/d/f{i:03}"),
                rev: -1,
                body: Default::default(),
            };
            store.apply(store.rev() + 1, &m);
        }
        let old = store.snapshot(None).expect("head");
        let mut l = Listings::default();
        for off in [0, 63, 64, 100, 199] {
            assert_eq!(l.entry(&old, "/d", off), old.getdir("/d", off));
        }
        assert_eq!(l.entry(&old, "/d", 200), Err(StoreError::Range));
        // a new rev with one more early name shifts entries: not served stale
        let m = Mutation::Set {
            path: "/d/a".into(),
            rev: -1,
            body: Default::default(),
        };
        store.apply(store.rev() + 1, &m);
        let new = store.snapshot(None).expect("head");
        assert_eq!(l.entry(&new, "/d", 100), Ok("f099".to_string()));
        assert_eq!(l.entry(&old, "/d", 100), Ok("f100".to_string()));
        assert_eq!(l.entry(&new, "/nope", 100), Err(StoreError::NoEnt));
    }

    #[test]
    fn walks_resume_and_far_offsets_are_range_at_once() {
        let mut store = Store::new(10);
        for i in 0..300 {
            let m = Mutation::Set {
                path: format!("/d/{}/f{i:03}", i % 7),
                rev: -1,
                body: Default::default(),
            };
            store.apply(store.rev() + 1, &m);
        }
        let snap = store.head().clone();
        let glob = Glob::parse("/d/**").unwrap();
        let all: Vec<String> = snap.walk_iter(&glob).map(|e| e.path).collect();
        let mut w = Walks::default();
        for (off, path) in all.iter().enumerate() {
            assert_eq!(&w.entry(&snap, &glob, off).unwrap().path, path);
        }
        // Out of order, and back: still right.
        assert_eq!(w.entry(&snap, &glob, 250).unwrap().path, all[250]);
        assert_eq!(w.entry(&snap, &glob, 3).unwrap().path, all[3]);
        assert_eq!(w.entry(&snap, &glob, 300), Err(StoreError::Range));
        assert_eq!(
            w.entry(&snap, &glob, usize::MAX >> 1),
            Err(StoreError::Range)
        );
    }
}
