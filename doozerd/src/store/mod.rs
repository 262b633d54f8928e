//! The versioned tree (docs/reference.md#data-model): pure, no I/O, no clock.
//!
//! - [`path`]: path and glob validation, glob matching.
//! - [`tree`]: the persistent (structurally shared) tree; a [`Snapshot`] is
//!   one revision of it and costs O(depth) to make.
//! - [`mutation`]: the changes consensus agrees on, and their byte encoding.
//! - this module: [`Store`], the history window of snapshots and events,
//!   applying changes in order, and waits (on a glob from a rev, or for a
//!   future rev to be reached).
//!
//! CONTRACT (the server is written against exactly these signatures).

pub mod dir;
pub mod mutation;
pub mod path;
pub mod tree;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use doozer_proto::flags;
use doozer_proto::rev as wire_rev;

pub use mutation::{Guard, Mutation, MutationError, Value, ValueBuilder};
pub use path::{validate_path, Glob};
pub use tree::{Snapshot, WalkEntry, WalkIter};

/// A store revision: the sequence number of the last applied change.
pub type Rev = i64;

/// Caller-chosen identifier of a registered wait.
pub type WaitId = u64;

/// Errors of reads and of mutations, each mapping to one wire error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// Malformed path or glob.
    #[error("bad path")]
    BadPath,
    /// The rev asked for is older than the history window.
    #[error("too late")]
    TooLate,
    /// A conditional write found a newer file.
    #[error("rev mismatch")]
    RevMismatch,
    /// The path is a directory.
    #[error("is a directory")]
    IsDir,
    /// A component of the path is a file.
    #[error("not a directory")]
    NotDir,
    /// No such file or directory.
    #[error("no such file or directory")]
    NoEnt,
    /// An offset past the end.
    #[error("offset out of range")]
    Range,
}

/// One applied change, as WAIT reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The rev of the change.
    pub rev: Rev,
    /// The path changed; `/` for a NOP; `/ctl/err` for a failed mutation.
    pub path: Arc<str>,
    /// The new body (empty for DEL and NOP).
    pub body: Bytes,
    /// `doozer_proto::flags::SET`, `DEL` or `OTHER`.
    pub flags: i32,
}

/// Where a change sits in the consensus log: the seqn whose value it
/// came from, and whether it is that value's last change (a seqn's value
/// may hold several changes, applied at consecutive revs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct At {
    /// The seqn that decided the change.
    pub seqn: u64,
    /// The last change of that seqn.
    pub last: bool,
}

/// Why a snapshot at a given rev cannot be had now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadAt {
    /// Older than the history window.
    TooLate,
    /// Not applied yet; register with [`Store::wait_rev`] and retry.
    Future,
}

/// A wait that became ready while applying a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Woken {
    /// A glob wait matched this event.
    Wait {
        /// The wait's id.
        id: WaitId,
        /// The first matching event at or after the wait's rev.
        event: Event,
    },
    /// The store reached the rev a [`Store::wait_rev`] waited for.
    Rev {
        /// The wait's id.
        id: WaitId,
    },
    /// The history a glob wait needed was replaced by [`Store::install`];
    /// it can no longer be answered (its client should start over).
    Lost {
        /// The wait's id.
        id: WaitId,
    },
}

/// One file of a store copied from another node ([`Store::install`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileCopy {
    /// Full path.
    pub path: String,
    /// Body.
    pub body: Bytes,
    /// The rev that last wrote it.
    pub rev: Rev,
}

/// Another node's tree as of one rev, built file by file as the copy
/// arrives (so a large copy costs the event loop a little per file rather
/// than all at once), then put in place with [`Store::install`].
#[derive(Debug)]
pub struct Copy {
    rev: Rev,
    tree: Snapshot,
}

impl Copy {
    /// An empty copy of the tree as of `rev` (`Range` if negative).
    pub fn new(rev: Rev) -> Result<Copy, StoreError> {
        if rev < 0 {
            return Err(StoreError::Range);
        }
        Ok(Copy {
            rev,
            tree: Snapshot::empty(),
        })
    }

    /// The rev the copy is of.
    pub fn rev(&self) -> Rev {
        self.rev
    }

    /// Adds one file. The files come from the network: a bad path, a path
    /// under a file, or a file rev not in `1..=rev` is an error.
    pub fn add(&mut self, f: FileCopy) -> Result<(), StoreError> {
        if f.rev < 1 || f.rev > self.rev {
            return Err(StoreError::Range);
        }
        self.tree
            .set_in_place(&f.path, &f.body, wire_rev::CLOBBER, f.rev)?;
        Ok(())
    }
}

/// The result of [`Store::apply`].
#[derive(Debug, Clone)]
pub struct Applied {
    /// The event recorded at this rev.
    pub event: Event,
    /// Why the mutation failed, if it did (the event is then the SET of
    /// `/ctl/err`).
    pub error: Option<StoreError>,
    /// Waits satisfied by this change; they are no longer registered.
    pub woken: Vec<Woken>,
}

/// Every this many revs one keeps its own snapshot in the history window
/// (the head always has one): reading any other rev costs at most this
/// many changes less one, applied again to the kept snapshot before it
/// (a few µs each), and the history holds one tree version per this many
/// revs (docs/benchmarks.md#memory).
const SNAPSHOT_EVERY: Rev = 8;

/// The path a failed mutation's error text is written to.
pub use doozer_proto::ctl::ERR_PATH;

/// A registered glob wait.
#[derive(Debug)]
struct GlobWait {
    glob: Glob,
    /// Only events at or after this rev wake it.
    from: Rev,
}

/// The versioned tree with its history window and pending waits.
///
/// Waits live in ordered maps rather than hash maps so the order of
/// [`Applied::woken`] is deterministic (by wait id), like everything else in
/// the pure core.
pub struct Store {
    /// How many snapshots to keep (≥ 1).
    history_revs: usize,
    /// False while a data directory's log is replayed up to the revs the
    /// history keeps: then a SET changes the head in place, and no
    /// snapshot but the head is kept (see [`Store::set_keep_history`]).
    keep_history: bool,
    /// Snapshots of revs `oldest_rev()..=rev()`; never empty, and the
    /// head (the last) is always there. Only every [`SNAPSHOT_EVERY`]-th
    /// rev keeps a snapshot once it is no longer the head; the others
    /// keep `None`, and [`Store::snapshot`] rebuilds them from the nearest
    /// snapshot before and the events after it. The changes between two
    /// kept revs are made to the head in place, so the history costs one
    /// tree version per kept rev, holding the paths changed since the one
    /// before (docs/benchmarks.md#memory).
    snaps: VecDeque<Option<Snapshot>>,
    /// The snapshot of the rev just before the window, kept while the
    /// window's oldest rev has none of its own: where rebuilding the
    /// window's first revs starts.
    base: Option<Snapshot>,
    /// The events from `base` up to the window (fewer than
    /// [`SNAPSHOT_EVERY`]).
    base_events: Vec<Event>,
    /// Events of revs `max(1, oldest_rev())..=rev()`, with where each sits
    /// in the consensus log.
    events: VecDeque<(Event, At)>,
    glob_waits: BTreeMap<WaitId, GlobWait>,
    /// The glob waits by the directory all their matches lie under
    /// ([`Glob::base_dir`]): a change wakes only the waits of its path's
    /// ancestors, so its cost follows the waits that can match it, not
    /// every parked glob.
    waits_by_base: BTreeMap<String, std::collections::BTreeSet<WaitId>>,
    /// Bytes of the glob texts of all glob waits (what matching costs).
    glob_wait_bytes: usize,
    rev_waits: BTreeMap<Rev, Vec<WaitId>>,
    /// The rev each rev wait is filed under in `rev_waits`, for cancel.
    rev_wait_of: BTreeMap<WaitId, Rev>,
    /// Shared event paths, so NOPs and errors allocate none.
    root_path: Arc<str>,
    err_path: Arc<str>,
}

/// `snap` changed as `event` says: the tree of the event's rev, when
/// `snap` is the tree of the rev before it. The event was made from that
/// very tree, so it applies again the same way (a failed change is
/// recorded as its `/ctl/err` SET or as a NOP).
fn replay(snap: &Snapshot, event: &Event) -> Snapshot {
    let (path, rev) = (&*event.path, event.rev);
    let done = match event.flags {
        flags::SET => snap.set(path, &event.body, wire_rev::CLOBBER, rev),
        flags::DEL => snap.del(path, wire_rev::CLOBBER, rev),
        _ => Ok(snap.at_rev(rev)),
    };
    done.unwrap_or_else(|_| snap.at_rev(rev))
}

/// The event of `body` written at `path` as `rev`.
fn set_event(rev: Rev, path: &str, body: &Bytes) -> Event {
    Event {
        rev,
        path: Arc::from(path),
        body: body.clone(),
        flags: flags::SET,
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A summary: the trees and events themselves would be unreadable.
        f.debug_struct("Store")
            .field("rev", &self.rev())
            .field("oldest_rev", &self.oldest_rev())
            .field("history_revs", &self.history_revs)
            .field("glob_waits", &self.glob_waits.len())
            .field("rev_waits", &self.rev_wait_of.len())
            .finish()
    }
}

impl Store {
    /// An empty store at rev 0 keeping `history_revs` (≥ 1) revisions.
    ///
    /// `history_revs` of 0 is taken as 1: the head is always readable.
    pub fn new(history_revs: u64) -> Store {
        let history_revs = usize::try_from(history_revs.max(1)).unwrap_or(usize::MAX);
        let mut snaps = VecDeque::new();
        snaps.push_back(Some(Snapshot::empty()));
        Store {
            history_revs,
            keep_history: true,
            snaps,
            base: None,
            base_events: Vec::new(),
            events: VecDeque::new(),
            glob_waits: BTreeMap::new(),
            waits_by_base: BTreeMap::new(),
            glob_wait_bytes: 0,
            rev_waits: BTreeMap::new(),
            rev_wait_of: BTreeMap::new(),
            root_path: Arc::from("/"),
            err_path: Arc::from(ERR_PATH),
        }
    }

    /// How many revisions are kept readable.
    pub fn history_revs(&self) -> u64 {
        self.history_revs as u64
    }

    /// The tree at the head revision (always there).
    pub fn head(&self) -> &Snapshot {
        // `snaps` is never empty: `new` pushes rev 0 and trimming keeps at
        // least one; only revs before the head give up their snapshot.
        self.snaps
            .back()
            .and_then(Option::as_ref)
            .expect("store always has a head snapshot")
    }

    /// The head revision (0 before anything is applied).
    pub fn rev(&self) -> Rev {
        self.head().rev()
    }

    /// The oldest revision still readable.
    pub fn oldest_rev(&self) -> Rev {
        self.rev() - self.snaps.len() as Rev + 1
    }

    /// The tree as of `rev` (`None`: the head).
    pub fn snapshot(&self, rev: Option<Rev>) -> Result<Snapshot, ReadAt> {
        let Some(rev) = rev else {
            return Ok(self.head().clone());
        };
        if rev > self.rev() {
            return Err(ReadAt::Future);
        }
        let oldest = self.oldest_rev();
        if rev < oldest {
            return Err(ReadAt::TooLate);
        }
        // In range, so the index fits; revs in `snaps` are consecutive.
        let at = (rev - oldest) as usize;
        if let Some(Some(snap)) = self.snaps.get(at) {
            debug_assert_eq!(snap.rev(), rev);
            return Ok(snap.clone());
        }
        Ok(self.rebuild(at))
    }

    /// Whether the head's rev keeps its snapshot once a newer rev is the
    /// head: every [`SNAPSHOT_EVERY`]-th rev does, and a head that no
    /// event made (rev 0, a copy just installed).
    fn head_is_kept(&self) -> bool {
        self.events
            .back()
            .is_none_or(|(e, _)| e.rev % SNAPSHOT_EVERY == 0)
    }

    /// The tree of the rev at `at` in `snaps`, which has none of its own:
    /// the nearest snapshot before it (or `base`) with the events after
    /// that applied again (fewer than [`SNAPSHOT_EVERY`]).
    fn rebuild(&self, at: usize) -> Snapshot {
        let before = (0..at)
            .rev()
            .find_map(|i| self.snaps.get(i).cloned().flatten());
        let Some(mut snap) = before.or_else(|| self.base.clone()) else {
            // Unreachable: the window's first rev has a snapshot or `base`.
            debug_assert!(false, "store: no snapshot to rebuild from");
            return self.head().clone();
        };
        let target = self.oldest_rev() + at as Rev;
        let first = self.first_event_rev();
        for rev in snap.rev() + 1..=target {
            let event = if rev < first {
                self.base_events.iter().find(|e| e.rev == rev)
            } else {
                self.event(rev)
            };
            let Some(event) = event else {
                // Unreachable: events are kept from `base` on.
                debug_assert!(false, "store: no event at rev {rev} to rebuild");
                break;
            };
            snap = replay(&snap, event);
        }
        snap
    }

    /// The event recorded at `rev`, if it is still kept (`None` for rev 0,
    /// future revs and revs older than the window).
    pub fn event(&self, rev: Rev) -> Option<&Event> {
        let first = self.first_event_rev();
        if rev < first || rev > self.rev() {
            return None;
        }
        self.events.get((rev - first) as usize).map(|(e, _)| e)
    }

    /// Where the change at `rev` sits in the consensus log, if its event
    /// is still kept.
    pub fn at(&self, rev: Rev) -> Option<At> {
        let first = self.first_event_rev();
        if rev < first || rev > self.rev() {
            return None;
        }
        self.events.get((rev - first) as usize).map(|(_, at)| *at)
    }

    /// Applies `m` as revision `rev`, the only change of seqn `rev` (see
    /// [`Store::apply_at`]).
    pub fn apply(&mut self, rev: Rev, m: &Mutation) -> Applied {
        let at = At {
            seqn: rev as u64,
            last: true,
        };
        self.apply_at(rev, m, at)
    }

    /// Applies what seqn `seqn` decided, at the revs after the head: each
    /// change of `value` at its own rev, or, when its guard fails or it
    /// expired, only the reason at `/ctl/err` (nothing of it applies); a
    /// value without changes is a NOP. Every node applies the same bytes
    /// the same way.
    pub fn apply_value(&mut self, seqn: u64, value: &Value) -> Vec<Applied> {
        let refused = match (&value.guard, value.expires_after) {
            (_, Some(e)) if seqn > e => Some(format!(
                "refused: decided at seqn {seqn}, after it expired at seqn {e}"
            )),
            (Some(g), _) => match self.head().get(&g.path) {
                Ok((_, rev)) if rev == g.rev => None,
                _ => Some(format!("refused: {} changed since rev {}", g.path, g.rev)),
            },
            _ => None,
        };
        let refusal;
        let changes: &[Mutation] = match refused {
            Some(text) => {
                refusal = [Mutation::Set {
                    path: ERR_PATH.to_string(),
                    rev: wire_rev::CLOBBER,
                    body: Bytes::from(text),
                }];
                &refusal
            }
            None if value.changes.is_empty() => &[Mutation::Nop],
            None => &value.changes,
        };
        let n = changes.len();
        changes
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let at = At {
                    seqn,
                    last: i + 1 == n,
                };
                self.apply_at(self.rev() + 1, m, at)
            })
            .collect()
    }

    /// Applies `m` as revision `rev`, which must be `self.rev() + 1`, as
    /// the change `at` of the consensus log.
    ///
    /// Panics otherwise: revisions come from consensus in order, so a gap
    /// or repeat is a bug in the caller, and applying it would diverge this
    /// node from the others.
    pub fn apply_at(&mut self, rev: Rev, m: &Mutation, at: At) -> Applied {
        let head_rev = self.rev();
        assert_eq!(rev, head_rev + 1, "store: apply out of order");
        // The head's rev keeps no snapshot (it goes anyway, see
        // `push_rev`) or history is off: a SET changes it in place.
        if !self.keep_history || (!self.head_is_kept() && self.snaps.len() > 1) {
            if let Some(applied) = self.set_in_place(rev, m, at) {
                return applied;
            }
        }
        let head = self.head();
        let done = match m {
            Mutation::Set {
                path,
                rev: cond,
                body,
            } => head
                .set(path, body, *cond, rev)
                .map(|snap| (snap, set_event(rev, path, body))),
            Mutation::Del { path, rev: cond } => head.del(path, *cond, rev).map(|snap| {
                let event = Event {
                    rev,
                    path: Arc::from(path.as_str()),
                    body: Bytes::new(),
                    flags: flags::DEL,
                };
                (snap, event)
            }),
            Mutation::Nop => Ok((head.at_rev(rev), self.nop_event(rev))),
        };
        let (snap, event, error) = match done {
            Ok((snap, event)) => (snap, event, None),
            Err(err) => {
                // The rev is consumed anyway; record why at /ctl/err so every
                // node shows the same thing.
                let text = Bytes::from(err.to_string());
                match head.set(ERR_PATH, &text, wire_rev::CLOBBER, rev) {
                    Ok(snap) => {
                        let event = Event {
                            rev,
                            path: self.err_path.clone(),
                            body: text,
                            flags: flags::SET,
                        };
                        (snap, event, Some(err))
                    }
                    // /ctl or /ctl/err is in the way (a file /ctl, or a
                    // directory /ctl/err): nothing can be written, so the
                    // rev is recorded as the NOP it effectively was.
                    Err(_) => (head.at_rev(rev), self.nop_event(rev), Some(err)),
                }
            }
        };

        self.push_rev(snap, event, at, error)
    }

    /// Makes `snap` (made by `event`) the head, drops what the history no
    /// longer keeps, and wakes the waits `event` matches.
    fn push_rev(
        &mut self,
        snap: Snapshot,
        event: Event,
        at: At,
        error: Option<StoreError>,
    ) -> Applied {
        // The head so far keeps no snapshot of its own once it is not the
        // head: its snapshot goes, to be rebuilt if ever read.
        if !self.head_is_kept() && self.keep_history {
            let alone = self.snaps.len() == 1;
            if let Some(slot) = self.snaps.back_mut() {
                let head = slot.take();
                if alone {
                    self.base = head;
                    self.base_events.clear();
                }
            }
        }
        self.snaps.push_back(Some(snap));
        self.events.push_back((event.clone(), at));
        let keep = if self.keep_history {
            self.history_revs
        } else {
            1
        };
        while self.snaps.len() > keep {
            if let Some(Some(gone)) = self.snaps.pop_front() {
                self.base = Some(gone);
                self.base_events.clear();
            }
        }
        if matches!(self.snaps.front(), Some(Some(_))) {
            self.base = None;
            self.base_events.clear();
        }
        // Events are kept from the oldest snapshot's rev on (an event at
        // rev r is what made snapshot r).
        while self.first_event_rev() < self.oldest_rev() && !self.events.is_empty() {
            let Some((gone, _)) = self.events.pop_front() else {
                break;
            };
            // What leads from `base` to the window stays.
            if self.base.as_ref().is_some_and(|b| gone.rev > b.rev()) {
                self.base_events.push(gone);
            }
        }
        debug_assert!(self.events.len() <= self.snaps.len());

        let woken = self.wake(&event);
        Applied {
            event,
            error,
            woken,
        }
    }

    /// A SET applied to the head in place, when no other rev needs the
    /// head's own snapshot (history off, or the head's rev keeps none):
    /// the tree's nodes shared with kept snapshots are copied, the rest
    /// changed where they are. So the changes between two kept revs copy
    /// each path they change once, not once per change. `None` if
    /// `m` is not a SET or fails (the usual path then applies it,
    /// recording the error), the head unchanged.
    fn set_in_place(&mut self, rev: Rev, m: &Mutation, at: At) -> Option<Applied> {
        let Mutation::Set {
            path,
            rev: cond,
            body,
        } = m
        else {
            return None;
        };
        if !self.keep_history {
            while self.snaps.len() > 1 {
                self.snaps.pop_front();
            }
            self.base = None;
            self.base_events.clear();
        }
        // The head's slot is left empty (its rev keeps no snapshot);
        // without history the slot goes.
        let mut head = self.snaps.back_mut()?.take()?;
        if head.set_in_place(path, body, *cond, rev).is_err() {
            if let Some(slot) = self.snaps.back_mut() {
                *slot = Some(head);
            }
            return None;
        }
        if !self.keep_history {
            self.snaps.pop_back();
        }
        Some(self.push_rev(head, set_event(rev, path, body), at, None))
    }

    /// Whether each rev keeps a snapshot of its own, up to `-hist` of them
    /// (the default), or, while false, SETs change the head in place and
    /// the history is only the head: for replaying a data directory's log
    /// up to the last revs the history must keep, where copying the tree's
    /// path for every record (and freeing it again) took most of a
    /// restart. Turned back on, the history grows again from the head.
    pub fn set_keep_history(&mut self, keep: bool) {
        self.keep_history = keep;
    }

    /// Changes the head tree in place, keeping its rev (tests of
    /// divergence detection only: this is what a bug would do).
    #[cfg(test)]
    pub(crate) fn corrupt_head(&mut self, head: Snapshot, m: &Mutation) {
        if let Mutation::Set { path, body, .. } = m {
            if let Ok(t) = head.set(path, body, wire_rev::CLOBBER, head.rev()) {
                if let Some(last) = self.snaps.back_mut() {
                    *last = Some(t);
                }
            }
        }
    }

    /// Replaces the whole store with a copy of another node's tree as of
    /// `rev` (see [`Store::install`]); the files are checked as
    /// [`Copy::add`] does, and a bad one leaves the store as it was.
    #[cfg(test)]
    pub fn reset_to(
        &mut self,
        rev: Rev,
        files: impl IntoIterator<Item = FileCopy>,
    ) -> Result<Vec<Woken>, StoreError> {
        let mut copy = Copy::new(rev)?;
        for f in files {
            copy.add(f)?;
        }
        Ok(self.install(copy))
    }

    /// Replaces the whole store with a complete copy of another node's
    /// tree (a slave attaching, or re-attaching after falling behind).
    /// History restarts at the copy's rev. Rev waits at or below it are
    /// woken; glob waits are returned as [`Woken::Lost`], since the events
    /// between the old head and the copy are unknown.
    pub fn install(&mut self, copy: Copy) -> Vec<Woken> {
        let rev = copy.rev;
        self.snaps.clear();
        self.snaps.push_back(Some(copy.tree.at_rev(rev)));
        self.base = None;
        self.base_events.clear();
        self.events.clear();
        self.waits_by_base.clear();
        self.glob_wait_bytes = 0;
        let mut woken: Vec<Woken> = std::mem::take(&mut self.glob_waits)
            .into_keys()
            .map(|id| Woken::Lost { id })
            .collect();
        let later = self.rev_waits.split_off(&(rev + 1));
        let due = std::mem::replace(&mut self.rev_waits, later);
        for id in due.into_values().flatten() {
            self.rev_wait_of.remove(&id);
            woken.push(Woken::Rev { id });
        }
        woken
    }

    /// The rev of the oldest event kept: events run contiguously up to the
    /// head. Normally `max(1, oldest_rev)`; after [`Store::reset_to`] the
    /// event that made the copied snapshot is unknown, so one later.
    fn first_event_rev(&self) -> Rev {
        self.rev() - self.events.len() as Rev + 1
    }

    fn nop_event(&self, rev: Rev) -> Event {
        Event {
            rev,
            path: self.root_path.clone(),
            body: Bytes::new(),
            flags: flags::OTHER,
        }
    }

    /// Removes and returns the waits satisfied by `event`, the new head.
    fn wake(&mut self, event: &Event) -> Vec<Woken> {
        let mut woken = Vec::new();
        let mut hits: Vec<WaitId> = Vec::new();
        if !self.glob_waits.is_empty() {
            // The path's ancestors, from `/` down to the path itself: only
            // waits filed under one of them can match.
            let path: &str = &event.path;
            let ancestors = std::iter::once("/").chain(
                path.match_indices('/')
                    .skip(1)
                    .map(|(i, _)| &path[..i])
                    .chain((path != "/").then_some(path)),
            );
            for base in ancestors {
                let Some(ids) = self.waits_by_base.get(base) else {
                    continue;
                };
                for id in ids {
                    if let Some(w) = self.glob_waits.get(id) {
                        if w.from <= event.rev && w.glob.matches(path) {
                            hits.push(*id);
                        }
                    }
                }
            }
            hits.sort_unstable();
        }
        for id in hits {
            if self.remove_glob_wait(id) {
                woken.push(Woken::Wait {
                    id,
                    event: event.clone(),
                });
            }
        }
        // Every rev wait at or below the new head is due (below only if the
        // caller registered one for a rev already reached).
        let later = self.rev_waits.split_off(&(event.rev + 1));
        let due = std::mem::replace(&mut self.rev_waits, later);
        for id in due.into_values().flatten() {
            self.rev_wait_of.remove(&id);
            woken.push(Woken::Rev { id });
        }
        woken
    }

    /// The first event at or after `from` matching `glob`: `Ok(Some)` if it
    /// is already in history, `Ok(None)` if not yet (the wait is then
    /// registered under `id` and reported by a later [`Store::apply`]),
    /// `Err(TooLate)` if `from` is older than the history window.
    ///
    /// `from` ≤ 0 means 1 (the first event). Registering an `id` that is
    /// already a pending glob wait replaces that wait.
    pub fn wait(&mut self, id: WaitId, glob: Glob, from: Rev) -> Result<Option<Event>, StoreError> {
        let from = from.max(1);
        let first = self.first_event_rev();
        if from < first {
            return Err(StoreError::TooLate);
        }
        if from <= self.rev() {
            // `first <= from <= head`, so the index is in range.
            let skip = (from - first) as usize;
            if let Some((e, _)) = self
                .events
                .range(skip..)
                .find(|(e, _)| glob.matches(&e.path))
            {
                return Ok(Some(e.clone()));
            }
        }
        self.remove_glob_wait(id);
        self.glob_wait_bytes += glob.as_str().len();
        self.waits_by_base
            .entry(glob.base_dir().to_string())
            .or_default()
            .insert(id);
        self.glob_waits.insert(id, GlobWait { glob, from });
        Ok(None)
    }

    /// Registers `id` to be woken when the head reaches `rev`.
    ///
    /// Meant for `rev > self.rev()` (after [`ReadAt::Future`]); a rev
    /// already reached is woken by the next apply.
    pub fn wait_rev(&mut self, id: WaitId, rev: Rev) {
        debug_assert!(rev > self.rev(), "wait_rev for a rev already reached");
        self.cancel_rev(id);
        self.rev_waits.entry(rev).or_default().push(id);
        self.rev_wait_of.insert(id, rev);
    }

    fn cancel_rev(&mut self, id: WaitId) {
        if let Some(rev) = self.rev_wait_of.remove(&id) {
            if let Some(ids) = self.rev_waits.get_mut(&rev) {
                ids.retain(|&w| w != id);
                if ids.is_empty() {
                    self.rev_waits.remove(&rev);
                }
            }
        }
    }

    /// Forgets a registered wait (its connection went away).
    pub fn cancel(&mut self, id: WaitId) {
        self.remove_glob_wait(id);
        self.cancel_rev(id);
    }

    /// Forgets glob wait `id`; whether it was one.
    fn remove_glob_wait(&mut self, id: WaitId) -> bool {
        let Some(w) = self.glob_waits.remove(&id) else {
            return false;
        };
        self.glob_wait_bytes -= w.glob.as_str().len();
        let base = w.glob.base_dir();
        if let Some(ids) = self.waits_by_base.get_mut(base) {
            ids.remove(&id);
            if ids.is_empty() {
                self.waits_by_base.remove(base);
            }
        }
        true
    }

    /// Bytes of the globs of all registered glob waits (matching them is
    /// what a change costs).
    pub fn glob_wait_bytes(&self) -> usize {
        self.glob_wait_bytes
    }

    /// Number of registered waits of both kinds.
    pub fn waits_pending(&self) -> usize {
        self.glob_waits.len() + self.rev_wait_of.len()
    }
}

#[cfg(test)]
mod tests;
