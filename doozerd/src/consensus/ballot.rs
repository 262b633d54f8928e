//! Ballots: the totally ordered, unique rounds of one Paxos instance.

use super::calset::{CalSet, Seqn};

/// The largest round a peer may name. A coordinator's next round is one
/// above the highest it has seen, so a round from the network near
/// `u64::MAX` would overflow it; correct nodes, which count rounds up one
/// retry at a time, never come near this bound.
pub const MAX_ROUND: u64 = u64::MAX / 2;

/// A ballot `(round, cal)`: `cal` is the coordinator's index in the
/// instance's CAL set, so two coordinators never share a ballot. Ordered by
/// round, then index.
///
/// Round 0 is reserved: only `(0, owner)` is valid, so the owner's first
/// ballot needs no phase 1 (no lower ballot can ever have voted), and every
/// other coordinator must start at round 1 or higher.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ballot {
    /// The round number.
    pub round: u64,
    /// The coordinator's index in the CAL set.
    pub cal: u32,
}

impl Ballot {
    /// The owner's reserved first ballot of `seqn`.
    pub fn reserved(cals: &CalSet, seqn: Seqn) -> Ballot {
        Ballot {
            round: 0,
            cal: cals.owner_index(seqn),
        }
    }

    /// Whether the ballot may exist for `seqn`: a real CAL index, round 0
    /// only for the owner (a peer claiming another's reserved round is
    /// refused, never obeyed), and a round no larger than [`MAX_ROUND`].
    pub fn is_valid(&self, cals: &CalSet, seqn: Seqn) -> bool {
        (self.cal as usize) < cals.len()
            && (self.round > 0 || self.cal == cals.owner_index(seqn))
            && self.round <= MAX_ROUND
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ballots_order_by_round_then_cal() {
        let b = |round, cal| Ballot { round, cal };
        assert!(b(0, 2) < b(1, 0));
        assert!(b(1, 0) < b(1, 1));
    }

    #[test]
    fn only_the_owner_may_use_round_zero() {
        let cals = CalSet::new(vec!["a".into(), "b".into(), "c".into()]).unwrap();
        assert_eq!(Ballot::reserved(&cals, 4), Ballot { round: 0, cal: 1 });
        assert!(Ballot { round: 0, cal: 1 }.is_valid(&cals, 4));
        assert!(!Ballot { round: 0, cal: 0 }.is_valid(&cals, 4));
        assert!(Ballot { round: 1, cal: 0 }.is_valid(&cals, 4));
        assert!(!Ballot { round: 1, cal: 3 }.is_valid(&cals, 4));
        assert!(Ballot {
            round: MAX_ROUND,
            cal: 0
        }
        .is_valid(&cals, 4));
        assert!(!Ballot {
            round: MAX_ROUND + 1,
            cal: 0
        }
        .is_valid(&cals, 4));
    }
}
