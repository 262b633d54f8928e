//! One Paxos instance (one seqn): the acceptor, learner and coordinator
//! rules, free of any networking. Rule names follow Lamport, "Paxos Made
//! Simple" (2001), §2.2–2.3.

use bytes::Bytes;
use smallvec::SmallVec;

use super::ballot::Ballot;
use super::ProposalId;

/// Distinct ballots a learner tracks per instance; more can only come from
/// a misbehaving peer, and forgetting the lowest costs liveness, not safety.
const LEARNER_BALLOTS_MAX: usize = 16;

/// The acceptor's durable-in-principle state for one instance.
#[derive(Debug, Default, Clone)]
pub(crate) struct Acceptor {
    /// The highest ballot promised (phase 1b) or voted in.
    pub promised: Option<Ballot>,
    /// The last vote: its ballot and value.
    pub vote: Option<(Ballot, Bytes)>,
}

impl Acceptor {
    /// Phase 1b: promise `b` unless a higher ballot was promised; the
    /// promise reports the last vote. `Err` carries the higher promise.
    pub fn prepare(&mut self, b: Ballot) -> Result<Option<&(Ballot, Bytes)>, Ballot> {
        match self.promised {
            Some(p) if p > b => Err(p),
            _ => {
                self.promised = Some(b);
                Ok(self.vote.as_ref())
            }
        }
    }

    /// Phase 2b: vote for `v` at `b` unless a higher ballot was promised.
    pub fn accept(&mut self, b: Ballot, v: Bytes) -> Result<(), Ballot> {
        match self.promised {
            Some(p) if p > b => Err(p),
            _ => {
                self.promised = Some(b);
                self.vote = Some((b, v));
                Ok(())
            }
        }
    }
}

/// What one node knows about the votes of one instance.
#[derive(Debug, Default, Clone)]
pub(crate) struct Learner {
    /// Voters (bit = CAL index) per ballot. Nearly every instance sees
    /// one ballot (the owner's round 0), so one is held inline: no
    /// allocation per seqn on the write path.
    votes: SmallVec<[(Ballot, u64); 1]>,
    /// The value proposed in each ballot seen (one coordinator, one value
    /// per ballot, so a ballot names its value).
    values: SmallVec<[(Ballot, Bytes); 1]>,
}

impl Learner {
    /// Remembers the value a coordinator proposed at `b` (from its Accept).
    /// Returns the value if that completes a majority already counted.
    pub fn proposal(&mut self, b: Ballot, v: Bytes, quorum: usize) -> Option<Bytes> {
        if !self.values.iter().any(|(vb, _)| *vb == b) {
            if self.values.len() >= LEARNER_BALLOTS_MAX {
                self.values.remove(0);
            }
            self.values.push((b, v));
        }
        self.chosen(b, quorum)
    }

    /// Counts `voter`'s vote at `b`. A value is chosen when a majority voted
    /// for it in the same ballot (§2.3); returns it once that is known.
    pub fn vote(&mut self, b: Ballot, voter: u32, quorum: usize) -> Option<Bytes> {
        let bit = 1u64.checked_shl(voter).unwrap_or(0);
        match self.votes.iter_mut().find(|(vb, _)| *vb == b) {
            Some((_, mask)) => *mask |= bit,
            None => {
                if self.votes.len() >= LEARNER_BALLOTS_MAX {
                    // Forget the lowest ballot: later ones decide.
                    if let Some(i) = (0..self.votes.len()).min_by_key(|&i| self.votes[i].0) {
                        self.votes.remove(i);
                    }
                }
                self.votes.push((b, bit));
            }
        }
        self.chosen(b, quorum)
    }

    fn chosen(&self, b: Ballot, quorum: usize) -> Option<Bytes> {
        let mask = self.votes.iter().find(|(vb, _)| *vb == b)?.1;
        if (mask.count_ones() as usize) < quorum {
            return None;
        }
        self.values
            .iter()
            .find(|(vb, _)| *vb == b)
            .map(|(_, v)| v.clone())
    }
}

/// Where a coordinator's round is.
#[derive(Debug, Clone)]
pub(crate) enum Phase {
    /// Phase 1: collecting promises; `best` is the highest vote reported.
    Prepare {
        promised: u64,
        best: Option<(Ballot, Bytes)>,
    },
    /// Phase 2: the value was sent to the acceptors.
    Accept,
}

/// This node coordinating one instance.
#[derive(Debug, Clone)]
pub(crate) struct Coordinator {
    /// The ballot of the current round.
    pub ballot: Ballot,
    /// The current phase.
    pub phase: Phase,
    /// When to give up on this round and retry with a higher one.
    pub deadline_ms: u64,
    /// Rounds tried so far (drives the backoff).
    pub attempts: u32,
}

impl Coordinator {
    /// A round that starts with phase 1.
    pub fn preparing(ballot: Ballot, deadline_ms: u64, attempts: u32) -> Coordinator {
        Coordinator {
            ballot,
            phase: Phase::Prepare {
                promised: 0,
                best: None,
            },
            deadline_ms,
            attempts,
        }
    }

    /// Counts a promise for this round from acceptor `from`, with its last
    /// vote. When a majority has promised, returns the value phase 2 must
    /// propose: the value of the highest vote reported, or `None` if no
    /// acceptor of the majority voted (any value is then safe; §2.2, P2c).
    /// Returns `None` before the majority and after phase 1 ended.
    pub fn promise(
        &mut self,
        from: u32,
        vote: Option<(Ballot, Bytes)>,
        quorum: usize,
    ) -> Option<Option<Bytes>> {
        let Phase::Prepare { promised, best } = &mut self.phase else {
            return None;
        };
        *promised |= 1u64.checked_shl(from).unwrap_or(0);
        if let Some((vb, vv)) = vote {
            if best.as_ref().is_none_or(|(bb, _)| vb > *bb) {
                *best = Some((vb, vv));
            }
        }
        if (promised.count_ones() as usize) < quorum {
            return None;
        }
        let value = best.take().map(|(_, v)| v);
        self.phase = Phase::Accept;
        Some(value)
    }
}

/// Everything this node holds for one seqn.
#[derive(Debug, Default, Clone)]
pub(crate) struct Instance {
    /// Acceptor role.
    pub acceptor: Acceptor,
    /// Learner role.
    pub learner: Learner,
    /// Coordinator role, while this node runs a round.
    pub coordinator: Option<Coordinator>,
    /// The decided value, once known.
    pub learned: Option<Bytes>,
    /// The client value this node (the owner) nominated here.
    pub own: Option<(ProposalId, Bytes)>,
    /// The highest round seen in any message for this seqn.
    pub max_round: u64,
    /// Since when this undecided seqn holds up something (a later seqn is
    /// active); starts the fill clock.
    pub needed_since_ms: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(round: u64, cal: u32) -> Ballot {
        Ballot { round, cal }
    }
    fn v(s: &'static str) -> Bytes {
        Bytes::from_static(s.as_bytes())
    }

    #[test]
    fn p1b_acceptor_promises_only_ballots_not_below_its_promise() {
        // Paxos Made Simple §2.2 phase 1(b): respond to prepare(n) only if
        // n is greater than any prepare already responded to.
        let mut a = Acceptor::default();
        assert_eq!(a.prepare(b(2, 0)), Ok(None));
        assert_eq!(a.prepare(b(1, 2)), Err(b(2, 0)));
        assert_eq!(a.promised, Some(b(2, 0)));
        // A duplicate of the same prepare is answered the same way.
        assert_eq!(a.prepare(b(2, 0)), Ok(None));
    }

    #[test]
    fn p1b_promise_reports_the_last_vote() {
        // §2.2 phase 1(b): the promise carries the highest-numbered
        // proposal the acceptor accepted.
        let mut a = Acceptor::default();
        a.accept(b(0, 1), v("x")).unwrap();
        assert_eq!(a.prepare(b(3, 0)), Ok(Some(&(b(0, 1), v("x")))));
    }

    #[test]
    fn p2b_acceptor_refuses_a_ballot_below_its_promise() {
        // §2.2 phase 2(b): accept (n, v) unless it responded to a prepare
        // with a number greater than n. This is what makes the owner's
        // round 0 lose to a fill that already ran phase 1.
        let mut a = Acceptor::default();
        a.prepare(b(1, 2)).unwrap();
        assert_eq!(a.accept(b(0, 0), v("x")), Err(b(1, 2)));
        assert!(a.vote.is_none());
        assert_eq!(a.accept(b(1, 2), v("nop")), Ok(()));
        assert_eq!(a.vote, Some((b(1, 2), v("nop"))));
    }

    #[test]
    fn reserved_round_needs_no_promise() {
        // The owner's (0, owner) ballot is the lowest any coordinator may
        // use, so a fresh acceptor votes for it directly (Mencius).
        let mut a = Acceptor::default();
        assert_eq!(a.accept(b(0, 1), v("x")), Ok(()));
    }

    #[test]
    fn learner_needs_a_majority_in_one_ballot() {
        // §2.3: a value is chosen when a majority accepted it in the same
        // proposal; votes split over ballots do not add up.
        let mut l = Learner::default();
        assert_eq!(l.proposal(b(0, 0), v("x"), 2), None);
        assert_eq!(l.vote(b(0, 0), 0, 2), None);
        assert_eq!(l.vote(b(1, 1), 1, 2), None);
        assert_eq!(l.vote(b(0, 0), 0, 2), None, "a duplicate vote counts once");
        assert_eq!(l.vote(b(0, 0), 2, 2), Some(v("x")));
    }

    #[test]
    fn learner_waits_for_the_value_of_a_ballot() {
        // Votes name a ballot, not a value: the value comes from the
        // coordinator's Accept, which may arrive after the votes.
        let mut l = Learner::default();
        assert_eq!(l.vote(b(2, 1), 0, 2), None);
        assert_eq!(l.vote(b(2, 1), 1, 2), None);
        assert_eq!(l.proposal(b(2, 1), v("y"), 2), Some(v("y")));
    }

    #[test]
    fn p2a_coordinator_adopts_the_highest_vote_of_the_majority() {
        // §2.2 phase 2(a) / P2c: the value is that of the highest-numbered
        // proposal among the responses, or any value if there is none.
        let mut c = Coordinator::preparing(b(5, 0), 0, 1);
        assert_eq!(c.promise(1, Some((b(0, 1), v("old"))), 3), None);
        assert_eq!(c.promise(2, Some((b(3, 2), v("new"))), 3), None);
        assert_eq!(
            c.promise(1, None, 3),
            None,
            "a duplicate promise counts once"
        );
        assert_eq!(c.promise(3, None, 3), Some(Some(v("new"))));
        assert_eq!(c.promise(4, None, 3), None, "phase 1 is over");

        let mut c = Coordinator::preparing(b(1, 0), 0, 1);
        assert_eq!(c.promise(0, None, 2), None);
        assert_eq!(c.promise(1, None, 2), Some(None), "free to propose");
    }

    #[test]
    fn out_of_range_voter_index_is_ignored_not_a_panic() {
        let mut l = Learner::default();
        assert_eq!(l.vote(b(0, 0), 200, 1), None);
    }
}
