//! Recording and checking histories of client operations (issue 3,
//! "Consistency under faults").
//!
//! Fault tests run several clients against several nodes, record every
//! operation with a [`Recorder`] (invoke time, then the response or nothing
//! if the client gave up), and check the recorded history:
//!
//! - [`check_linearizable`]: SETs, DELs (conditional or not) and
//!   linearizable reads ([`Call::LinGet`]: a NOP through consensus, then a
//!   GET at the NOP's rev) must be linearizable with respect to the store's
//!   model (docs/reference.md#data-model). The search is Wing & Gong's,
//!   with the memoization of (set of linearized operations, model state)
//!   from Lowe's algorithm and Porcupine, run per path (files are
//!   independent: P-compositionality). The revisions in the responses add
//!   constraints: changes are linearized in the order of their revisions,
//!   so every operation that carries a revision (a successful SET, a NOP, a
//!   linearizable read) gets a narrowed real-time interval (see
//!   [`check_linearizable`]).
//! - [`check_sequential_reads`]: plain GETs read a node's local copy, so
//!   they need not be fresh, but each client must never see the store go
//!   backwards (monotonic reads, read-your-writes), and every value read
//!   must have been written.
//!
//! A failed check returns a [`Violation`] whose `Display` explains what is
//! wrong and lists the operations involved, for the test's failure message.
//!
//! Times are microseconds since the recorder started (a monotonic clock).
//! An operation *precedes* another in real time when it completed strictly
//! before the other was invoked. An operation without a response (timed
//! out, connection lost) may have taken effect at any point after its
//! invocation, or never.
//!
//! Map of the module: `op.rs` (the operation model), `recorder.rs`,
//! `order.rs` (well-formed histories, revision order), `model.rs` and
//! `linearizable.rs` (the per-path model and the search), `sequential.rs`
//! (plain reads), `format.rs` and `violation.rs` (reports), `tests/`.

mod format;
mod linearizable;
mod model;
mod op;
mod order;
mod recorder;
mod sequential;
mod violation;

#[cfg(test)]
mod tests;

pub use format::format_history;
pub use linearizable::check_linearizable;
pub use op::{Call, Micros, Op, Outcome};
pub use recorder::{OpHandle, Recorder};
pub use sequential::check_sequential_reads;
pub use violation::Violation;

/// Runs [`check_linearizable`] and then [`check_sequential_reads`].
pub fn check_history(history: &[Op]) -> Result<(), Violation> {
    check_linearizable(history)?;
    check_sequential_reads(history)
}
