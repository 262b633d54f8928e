//! The versioned tree (SPEC §2): pure, no I/O, no clock.
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

pub mod mutation;
pub mod path;
pub mod tree;

use std::sync::Arc;

use bytes::Bytes;

pub use mutation::{Mutation, MutationError};
pub use path::{validate_path, Glob};
pub use tree::Snapshot;

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
    /// The rev (seqn) of the change.
    pub rev: Rev,
    /// The path changed; `/` for a NOP; `/ctl/err` for a failed mutation.
    pub path: Arc<str>,
    /// The new body (empty for DEL and NOP).
    pub body: Bytes,
    /// `doozer_proto::flags::SET`, `DEL` or `OTHER`.
    pub flags: i32,
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

/// The versioned tree with its history window and pending waits.
pub struct Store {
    _todo: (),
}

impl Store {
    /// An empty store at rev 0 keeping `history_revs` (≥ 1) revisions.
    pub fn new(history_revs: u64) -> Store {
        let _ = history_revs;
        todo!()
    }

    /// The head revision (0 before anything is applied).
    pub fn rev(&self) -> Rev {
        todo!()
    }

    /// The oldest revision still readable.
    pub fn oldest_rev(&self) -> Rev {
        todo!()
    }

    /// The tree as of `rev` (`None`: the head).
    pub fn snapshot(&self, rev: Option<Rev>) -> Result<Snapshot, ReadAt> {
        let _ = rev;
        todo!()
    }

    /// Applies `m` as revision `rev`, which must be `self.rev() + 1`.
    pub fn apply(&mut self, rev: Rev, m: &Mutation) -> Applied {
        let _ = (rev, m);
        todo!()
    }

    /// The first event at or after `from` matching `glob`: `Ok(Some)` if it
    /// is already in history, `Ok(None)` if not yet (the wait is then
    /// registered under `id` and reported by a later [`Store::apply`]),
    /// `Err(TooLate)` if `from` is older than the history window.
    pub fn wait(&mut self, id: WaitId, glob: Glob, from: Rev) -> Result<Option<Event>, StoreError> {
        let _ = (id, glob, from);
        todo!()
    }

    /// Registers `id` to be woken when the head reaches `rev`.
    pub fn wait_rev(&mut self, id: WaitId, rev: Rev) {
        let _ = (id, rev);
        todo!()
    }

    /// Forgets a registered wait (its connection went away).
    pub fn cancel(&mut self, id: WaitId) {
        let _ = id;
        todo!()
    }

    /// Number of registered waits of both kinds.
    pub fn waits_pending(&self) -> usize {
        todo!()
    }
}
