//! The operation model: what a client asked ([`Call`]), what it got back
//! ([`Outcome`]), and one recorded operation with its times ([`Op`]).

/// Microseconds since the [`Recorder`](super::Recorder) started.
pub type Micros = u64;

/// A client request, as recorded.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Call {
    /// SET `path` to `body` if `cond_rev` is -1 or at least the file's rev.
    Set {
        /// The file.
        path: String,
        /// The request's rev: -1 clobbers, 0 creates only if missing.
        cond_rev: i64,
        /// The new body.
        body: Vec<u8>,
    },
    /// DEL `path` if `cond_rev` is -1 or at least the file's rev.
    Del {
        /// The file.
        path: String,
        /// The request's rev: -1 clobbers.
        cond_rev: i64,
    },
    /// A plain GET of the node's current local state (not linearizable;
    /// checked by [`check_sequential_reads`](super::check_sequential_reads)).
    Get {
        /// The file.
        path: String,
    },
    /// A linearizable read: a NOP through consensus, then a GET at the rev
    /// the NOP returned (answered with [`Outcome::ReadAt`]).
    LinGet {
        /// The file.
        path: String,
    },
    /// A NOP through consensus (answered with [`Outcome::Rev`]).
    Nop,
}

impl Call {
    /// The path the call is about (`None` for NOP).
    pub fn path(&self) -> Option<&str> {
        match self {
            Call::Set { path, .. }
            | Call::Del { path, .. }
            | Call::Get { path }
            | Call::LinGet { path } => Some(path),
            Call::Nop => None,
        }
    }
}

/// The response to a [`Call`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// A SET or NOP was applied at this rev.
    Rev(i64),
    /// A DEL was applied.
    Deleted,
    /// A conditional SET or DEL failed with `REV_MISMATCH` (nothing changed
    /// in the file).
    RevMismatch,
    /// A plain GET: the body and the file's rev (0 = missing, empty body).
    Read {
        /// The body read.
        body: Vec<u8>,
        /// The file's rev; 0 for a missing file.
        rev: i64,
    },
    /// A linearizable GET: the NOP returned `at`, and the GET at `at` read
    /// `body` and `rev` (0 = missing).
    ReadAt {
        /// The NOP's rev, at which the file was read.
        at: i64,
        /// The body read.
        body: Vec<u8>,
        /// The file's rev; 0 for a missing file.
        rev: i64,
    },
    /// Any other answer that means the operation certainly did not take
    /// effect (e.g. `READONLY`, `TOO_LATE`). An operation whose fate is
    /// unknown (timeout, connection lost) must instead be left without an
    /// outcome.
    Refused(String),
}

/// One recorded operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Op {
    /// Who issued it (e.g. a connection number). Monotonic reads are
    /// checked per client.
    pub client: usize,
    /// When the request was about to be sent.
    pub invoke_time: Micros,
    /// When the response arrived; `None` if it never did (timeout).
    pub complete_time: Option<Micros>,
    /// The request.
    pub call: Call,
    /// The response; `None` if it never arrived (timeout).
    pub result: Option<Outcome>,
}

impl Op {
    /// The completion time, or `Micros::MAX` for an operation that never
    /// completed (it may take effect at any time after its invocation).
    pub(super) fn complete_or_max(&self) -> Micros {
        self.complete_time.unwrap_or(Micros::MAX)
    }
}
