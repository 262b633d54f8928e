//! CAL sets: which nodes decide a seqn, and which of them owns it.

use std::sync::Arc;

/// A sequence number: the position of a value in the log (a store rev).
pub type Seqn = u64;

/// A node's id (the body of a `/ctl/cal/*` file).
pub type NodeId = String;

/// The most CALs one instance may have; votes are counted in a 64-bit mask.
pub const MAX_CALS: usize = 64;

/// Why a list of ids is not a CAL set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalSetError {
    /// No non-empty id: nobody could decide anything.
    #[error("empty CAL set")]
    Empty,
    /// More ids than [`MAX_CALS`].
    #[error("{0} CALs; at most {MAX_CALS} are supported")]
    TooMany(usize),
}

/// The sorted, de-duplicated CALs of one instance (docs/reference.md#cal-sets: the sorted
/// non-empty bodies of `/ctl/cal/*`). Cheap to clone: consecutive seqns
/// share one allocation.
#[derive(Debug, Clone, Eq)]
pub struct CalSet(Arc<[NodeId]>);

impl PartialEq for CalSet {
    fn eq(&self, other: &CalSet) -> bool {
        // Consecutive seqns share one allocation: compare ids only when not.
        self.shares(other) || self.0 == other.0
    }
}

impl CalSet {
    /// The CAL set of these ids; empty ids (free slots) are dropped and
    /// duplicates kept once, so every node derives the same set.
    pub fn new(mut ids: Vec<NodeId>) -> Result<CalSet, CalSetError> {
        ids.retain(|id| !id.is_empty());
        ids.sort();
        ids.dedup();
        if ids.is_empty() {
            return Err(CalSetError::Empty);
        }
        if ids.len() > MAX_CALS {
            return Err(CalSetError::TooMany(ids.len()));
        }
        Ok(CalSet(ids.into()))
    }

    /// Whether both are the same allocation (so the same set), without
    /// comparing ids.
    pub fn shares(&self, other: &CalSet) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// How many CALs.
    #[allow(clippy::len_without_is_empty)] // never empty by construction
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Votes needed to choose a value: a majority.
    pub fn quorum(&self) -> usize {
        self.0.len() / 2 + 1
    }

    /// Index of the owner of `seqn` (round-robin).
    pub fn owner_index(&self, seqn: Seqn) -> u32 {
        (seqn % self.0.len() as u64) as u32
    }

    /// The owner of `seqn`: `cals[seqn mod len]`.
    pub fn owner(&self, seqn: Seqn) -> &NodeId {
        &self.0[self.owner_index(seqn) as usize]
    }

    /// The index of `id`, if it is a CAL.
    pub fn index_of(&self, id: &str) -> Option<u32> {
        self.0
            .binary_search_by(|c| c.as_str().cmp(id))
            .ok()
            .map(|i| i as u32)
    }

    /// The CAL at `index`.
    pub fn get(&self, index: u32) -> Option<&NodeId> {
        self.0.get(index as usize)
    }

    /// The CALs in order.
    pub fn iter(&self) -> impl Iterator<Item = &NodeId> {
        self.0.iter()
    }

    /// Where `me` comes in the order in which CALs fill `seqn` for its
    /// owner: the owner's successor is 0, the next 1, ... (`None` for the
    /// owner itself or a non-CAL). Staggering fills by rank keeps live
    /// CALs from duelling over a dead owner's seqns.
    pub fn fill_rank(&self, seqn: Seqn, me: u32) -> Option<u32> {
        let n = self.0.len() as u32;
        let owner = self.owner_index(seqn);
        if me >= n || me == owner {
            return None;
        }
        Some((me + n - owner - 1) % n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ids: &[&str]) -> CalSet {
        CalSet::new(ids.iter().map(|s| s.to_string()).collect()).unwrap()
    }

    #[test]
    fn set_is_sorted_deduplicated_and_skips_free_slots() {
        let c = set(&["c", "", "a", "b", "a"]);
        assert_eq!(c.iter().cloned().collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(c.quorum(), 2);
        assert_eq!(c.index_of("b"), Some(1));
        assert_eq!(c.index_of("z"), None);
        assert_eq!(CalSet::new(vec!["".into()]), Err(CalSetError::Empty));
        let many = (0..65).map(|i| format!("n{i:02}")).collect();
        assert_eq!(CalSet::new(many), Err(CalSetError::TooMany(65)));
    }

    #[test]
    fn ownership_is_round_robin() {
        let c = set(&["a", "b", "c"]);
        assert_eq!(c.owner(3), "a");
        assert_eq!(c.owner(4), "b");
        assert_eq!(c.owner(5), "c");
        // seqn 4 is b's: c fills first, then a.
        assert_eq!(c.fill_rank(4, 2), Some(0));
        assert_eq!(c.fill_rank(4, 0), Some(1));
        assert_eq!(c.fill_rank(4, 1), None);
    }
}
