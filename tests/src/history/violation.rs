//! [`Violation`]: what a failed check returns.

use std::fmt;

use super::op::Op;

/// A failed check: what is wrong, and the operations involved.
#[derive(Clone, PartialEq, Eq)]
pub struct Violation {
    /// A readable explanation (several lines).
    pub explanation: String,
    /// The relevant operations, with their index in the checked history,
    /// sorted by index.
    pub ops: Vec<(usize, Op)>,
}

impl Violation {
    /// A violation explained by `explanation`, involving the operations of
    /// `history` at `idxs` (in any order, repeats allowed).
    pub(super) fn new(
        explanation: String,
        history: &[Op],
        idxs: impl IntoIterator<Item = usize>,
    ) -> Self {
        let mut idxs: Vec<usize> = idxs.into_iter().collect();
        idxs.sort_unstable();
        idxs.dedup();
        Violation {
            explanation,
            ops: idxs.into_iter().map(|i| (i, history[i].clone())).collect(),
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "history check failed: {}", self.explanation.trim_end())?;
        if !self.ops.is_empty() {
            writeln!(
                f,
                "relevant operations (#index in the history; times in µs since the recorder started):"
            )?;
            for (i, op) in &self.ops {
                writeln!(f, "  #{i:<5} {op}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for Violation {}
