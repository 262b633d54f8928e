//! Agreement on the order of mutations.
//!
//! Writes take the path propose → learn → apply: the server proposes a
//! [`Mutation`], consensus decides which sequence number (seqn) it gets, and
//! learned values are applied to the store strictly in seqn order. With one
//! node, [`LocalLog`] decides every proposal at once, in the order given.
//!
//! [`Paxos`] is the multi-Paxos core for a cluster of CALs (SPEC §4), pure
//! like the rest: `step` / `tick` / `propose` in, [`Ready`] out. Map:
//! - `calset`: [`CalSet`], round-robin ownership, fill ranks.
//! - `ballot`: [`Ballot`]s and the owner's reserved round 0.
//! - `instance`: one seqn's acceptor, learner and coordinator rules.
//! - `paxos`: the instance manager (window, skip, fill, retry, catch-up).
//! - `rng`: the seeded jitter source.
//! - `sim` (tests): the deterministic network simulation.

use std::collections::VecDeque;

mod ballot;
mod calset;
mod instance;
mod paxos;
mod rng;
#[cfg(test)]
mod sim;

pub use ballot::Ballot;
pub use calset::{CalSet, CalSetError, NodeId, Seqn, MAX_CALS};
pub use paxos::{Config, MsgCounts, Paxos, ProposalId, Ready, Stats};
pub use rng::SplitMix64;

use crate::store::{Mutation, Rev};

/// A log decided by this node alone (a single-node cluster).
#[derive(Debug, Default)]
pub struct LocalLog {
    /// The seqn the next proposal gets.
    next_seqn: Rev,
    /// Decided but not yet applied, in seqn order.
    learned: VecDeque<(Rev, Mutation)>,
    proposals: u64,
}

impl LocalLog {
    /// A log whose first proposal gets seqn `next_seqn`.
    pub fn new(next_seqn: Rev) -> LocalLog {
        LocalLog {
            next_seqn,
            learned: VecDeque::new(),
            proposals: 0,
        }
    }

    /// Proposes `m`; returns the seqn it will be learned at.
    pub fn propose(&mut self, m: Mutation) -> Rev {
        let seqn = self.next_seqn;
        self.next_seqn += 1;
        self.proposals += 1;
        self.learned.push_back((seqn, m));
        seqn
    }

    /// How many values were proposed.
    pub fn proposals(&self) -> u64 {
        self.proposals
    }

    /// The next learned value, in seqn order.
    pub fn take_learned(&mut self) -> Option<(Rev, Mutation)> {
        self.learned.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proposals_are_learned_in_order_at_consecutive_seqns() {
        let mut log = LocalLog::new(1);
        assert_eq!(log.propose(Mutation::Nop), 1);
        let del = Mutation::Del {
            path: "/a".into(),
            rev: -1,
        };
        assert_eq!(log.propose(del.clone()), 2);
        assert_eq!(log.take_learned(), Some((1, Mutation::Nop)));
        assert_eq!(log.take_learned(), Some((2, del)));
        assert_eq!(log.take_learned(), None);
    }
}
