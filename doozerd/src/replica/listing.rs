//! WALK at high offsets without walking each time.
//!
//! (GETDIR needs nothing here: a directory counts its entries in every
//! node, so [`Snapshot::getdir`] finds any offset in O(log n).)

use crate::store::{Glob, Rev, Snapshot, StoreError, WalkEntry};

/// Walks remembered.
const WALKS_MAX: usize = 8;
/// A walk marks every this many matches, so that a later WALK at any
/// offset of the same `(rev, glob)` starts at most this many matches
/// before it.
const MARK_EVERY: usize = 256;
/// Marks kept per walk (about a million matches at [`MARK_EVERY`]); past
/// them a walk resumes from the last one.
const MARKS_MAX: usize = 4096;

/// Where recent walks went: per `(rev, glob)`, marks `(offset, path)`
/// of matches, sorted by offset: every [`MARK_EVERY`]-th match passed and
/// the last one served. A client asks WALK at offsets 0, 1, 2, ... (the
/// Go protocol has no cursor), or at any offset; each is served by
/// resuming after the nearest mark below it ([`Snapshot::walk_after`]),
/// costing at most [`MARK_EVERY`] matches and the depth of a path instead
/// of the offset, once the walk has been that far.
#[derive(Default)]
pub struct Walks {
    recent: Vec<WalkMarks>,
    /// Matches stepped over (to check the cost in tests).
    #[cfg(test)]
    steps: usize,
}

/// The marks of one `(rev, glob)`.
struct WalkMarks {
    rev: Rev,
    glob: String,
    /// Every [`MARK_EVERY`]-th match passed, by offset.
    marks: Vec<(usize, String)>,
    /// The last match served (the next WALK usually asks for the one after).
    last: Option<(usize, String)>,
}

impl WalkMarks {
    /// The nearest mark below `offset`, if any.
    fn below(&self, offset: usize) -> Option<(usize, String)> {
        let k = self.marks.partition_point(|(o, _)| *o < offset);
        let mark = k.checked_sub(1).map(|k| &self.marks[k]);
        let last = self.last.as_ref().filter(|(o, _)| *o < offset);
        match (mark, last) {
            (Some(m), Some(l)) => Some(if l.0 > m.0 { l } else { m }.clone()),
            (m, l) => m.or(l).cloned(),
        }
    }

    fn mark(&mut self, offset: usize, path: String) {
        if self.marks.len() < MARKS_MAX {
            if let Err(k) = self.marks.binary_search_by_key(&offset, |(o, _)| *o) {
                self.marks.insert(k, (offset, path));
            }
        }
    }
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
        let at = match self
            .recent
            .iter()
            .position(|w| w.rev == rev && w.glob == glob.as_str())
        {
            Some(i) => i,
            None => {
                if self.recent.len() == WALKS_MAX {
                    self.recent.remove(0);
                }
                self.recent.push(WalkMarks {
                    rev,
                    glob: glob.as_str().to_string(),
                    marks: Vec::new(),
                    last: None,
                });
                self.recent.len() - 1
            }
        };
        let start = self.recent[at].below(offset);
        let (mut n, mut iter) = match &start {
            Some((o, path)) => (o + 1, snap.walk_after(glob, path)),
            None => (0, snap.walk_iter(glob)),
        };
        let mut passed = Vec::new();
        let found = loop {
            let Some(e) = iter.next() else {
                break None;
            };
            #[cfg(test)]
            {
                self.steps += 1;
            }
            if n == offset {
                break Some(e);
            }
            if n % MARK_EVERY == 0 {
                passed.push((n, e.path));
            }
            n += 1;
        };
        let w = &mut self.recent[at];
        for (o, path) in passed {
            w.mark(o, path);
        }
        let e = found.ok_or(StoreError::Range)?;
        w.last = Some((offset, e.path.clone()));
        Ok(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Mutation, Store};

    /// A tree of `n` files `/d/<i mod dirs>/f<i>`, the glob `/d/**`, and
    /// every path it matches, in walk order.
    fn files_in_dirs(n: usize, dirs: usize) -> (Snapshot, Glob, Vec<String>) {
        let mut store = Store::new(10);
        for i in 0..n {
            let m = Mutation::Set {
                path: format!("/d/{}/f{i:04}", i % dirs),
                rev: -1,
                body: Default::default(),
            };
            store.apply(store.rev() + 1, &m);
        }
        let snap = store.head().clone();
        let glob = Glob::parse("/d/**").unwrap();
        let all: Vec<String> = snap.walk_iter(&glob).map(|e| e.path).collect();
        (snap, glob, all)
    }

    #[test]
    fn walks_resume_and_far_offsets_are_range_at_once() {
        let (snap, glob, all) = files_in_dirs(300, 7);
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

    #[test]
    fn a_walk_at_any_offset_starts_from_the_nearest_mark() {
        let (snap, glob, all) = files_in_dirs(2000, 13);
        let mut w = Walks::default();
        // The first far walk passes every match below it, once.
        assert_eq!(w.entry(&snap, &glob, 1999).unwrap().path, all[1999]);
        assert_eq!(w.steps, 2000);
        // Then any offset, in any order, costs at most MARK_EVERY steps.
        for off in [1999, 5, 1000, 1777, 256, 255, 257, 1998, 0, 1500] {
            w.steps = 0;
            assert_eq!(w.entry(&snap, &glob, off).unwrap().path, all[off], "{off}");
            assert!(w.steps <= MARK_EVERY, "offset {off}: {} steps", w.steps);
        }
        // Another rev or glob has marks of its own.
        let other = Glob::parse("/d/1*/**").unwrap();
        let some: Vec<String> = snap.walk_iter(&other).map(|e| e.path).collect();
        let last = some.len() - 1;
        assert_eq!(w.entry(&snap, &other, last).unwrap().path, some[last]);
        assert_eq!(w.entry(&snap, &glob, 1234).unwrap().path, all[1234]);
    }
}
