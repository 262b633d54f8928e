//! GETDIR at high offsets without walking the directory each time.
//!
//! Clients list a directory by asking for offset 0, 1, 2, ... at one rev
//! (the Go protocol has no cursor). The tree finds the n-th entry in O(n),
//! so listing a directory of 100,000 files would cost O(n²). A snapshot
//! never changes, so the sorted names of `(rev, path)` are kept for a few
//! recent listings and each later offset is an index.

use std::sync::Arc;

use crate::store::{Rev, Snapshot, StoreError};

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
}
