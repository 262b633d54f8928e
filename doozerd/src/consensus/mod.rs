//! Agreement on the order of mutations.
//!
//! Writes take the path propose → learn → apply: the server proposes a
//! [`Mutation`](crate::store::Mutation), consensus decides which sequence number (seqn) it gets, and
//! learned values are applied to the store strictly in seqn order. A
//! single-node cluster runs the same core with a CAL set of one.
//!
//! [`Paxos`] is the multi-Paxos core for a cluster of CALs (docs/reference.md#consensus), pure
//! like the rest: `step` / `tick` / `propose` in, [`Ready`] out. Map:
//! - `calset`: [`CalSet`], round-robin ownership, fill ranks.
//! - `ballot`: [`Ballot`]s and the owner's reserved round 0.
//! - `instance`: one seqn's acceptor, learner and coordinator rules.
//! - `paxos`: the instance manager (window, skip, fill, retry, catch-up).
//! - `rng`: the seeded jitter source.
//! - `sim` (tests): the deterministic network simulation.

mod ballot;
mod calset;
mod instance;
mod paxos;
mod rng;
#[cfg(test)]
mod sim;

pub use ballot::{Ballot, MAX_ROUND};
pub use calset::{CalSet, CalSetError, NodeId, Seqn, MAX_CALS};
#[cfg(test)]
pub use paxos::VoteRecord;
pub use paxos::{Config, MsgCounts, Paxos, ProposalId, Ready, Stats};
pub use rng::SplitMix64;
