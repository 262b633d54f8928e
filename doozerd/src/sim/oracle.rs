//! The oracle: what was *chosen*, from the votes acceptors cast, and what
//! every node learned, checked against each other as the run goes.
//!
//! A value is chosen at seqn `s` when a majority of the CALs of `s` voted
//! for it in one ballot (Paxos Made Simple, §2.3). Which nodes are the
//! CALs of `s` is itself decided by the log: the slots as of seqn
//! `s - alpha`. The oracle derives them from the learned log with its own
//! reference store, so a node that computes the wrong set (and counts the
//! wrong votes) is caught, not trusted.
//!
//! Checked: at most one value is chosen per seqn; every node learns the
//! same value per seqn, and it is the chosen one; every write a client
//! saw acknowledged is in the log at the rev it was told.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

use crate::cluster;
use crate::consensus::{CalSet, NodeId, VoteRecord};
use crate::store::{Rev, Store, Value};

/// The votes of one seqn, by ballot `(round, coordinator)`: the value of
/// the ballot and who voted for it.
type Ballots = BTreeMap<(u64, NodeId), (Bytes, BTreeSet<NodeId>)>;

/// Everything the oracle knows.
pub(crate) struct Oracle {
    alpha: u64,
    /// The first value any node learned at each seqn.
    learned: BTreeMap<u64, Bytes>,
    /// Votes per seqn, by ballot `(round, coordinator)`: value and voters.
    votes: BTreeMap<u64, Ballots>,
    /// Values found chosen.
    chosen: BTreeMap<u64, Bytes>,
    /// The learned log applied in order, up to `applied`.
    store: Store,
    applied: u64,
    /// The CAL set of each seqn, as far as the log decides it.
    sets: BTreeMap<u64, CalSet>,
    /// Acknowledged writes: rev → (path, body), as the client was told.
    acked: BTreeMap<Rev, (String, Bytes)>,
    /// Violations found (the run fails with the first).
    pub violations: Vec<String>,
}

impl Oracle {
    /// An oracle for a cluster seeded by `seed` with window `alpha`.
    pub(crate) fn new(seed: &str, alpha: u64) -> Oracle {
        let first = CalSet::new(vec![seed.to_string()]).expect("a seed id");
        let sets = (1..=alpha).map(|s| (s, first.clone())).collect();
        Oracle {
            alpha,
            learned: BTreeMap::new(),
            votes: BTreeMap::new(),
            chosen: BTreeMap::new(),
            store: Store::new(10_000_000),
            applied: 0,
            sets,
            acked: BTreeMap::new(),
            violations: Vec::new(),
        }
    }

    /// Node `who` learned `value` at `seqn`.
    pub(crate) fn learned(&mut self, who: &str, seqn: u64, value: Bytes) {
        match self.learned.get(&seqn) {
            Some(v) if *v != value => self.violations.push(format!(
                "seqn {seqn}: {who} learned {}, another node {}",
                show(&value),
                show(v)
            )),
            Some(_) => {}
            None => {
                self.learned.insert(seqn, value.clone());
            }
        }
        if let Some(c) = self.chosen.get(&seqn) {
            if *c != value {
                self.violations.push(format!(
                    "seqn {seqn}: {who} learned {} but {} was chosen",
                    show(&value),
                    show(c)
                ));
            }
        }
        self.advance();
    }

    /// Node `voter` voted.
    pub(crate) fn voted(&mut self, voter: &str, v: VoteRecord) {
        let seqn = v.seqn;
        let entry = self
            .votes
            .entry(seqn)
            .or_default()
            .entry((v.round, v.coordinator.clone()))
            .or_insert_with(|| (v.value.clone(), BTreeSet::new()));
        if entry.0 != v.value {
            // One coordinator proposes one value per ballot.
            self.violations.push(format!(
                "seqn {seqn}: two values in ballot ({}, {}): {} and {}",
                v.round,
                v.coordinator,
                show(&entry.0),
                show(&v.value)
            ));
        }
        entry.1.insert(voter.to_string());
        self.check_chosen(seqn);
    }

    /// A client was told its SET of `path` to `body` was applied at `rev`.
    pub(crate) fn acked(&mut self, rev: Rev, path: &str, body: Bytes) {
        if let Some((p, b)) = self.acked.insert(rev, (path.to_string(), body.clone())) {
            self.violations.push(format!(
                "rev {rev} acknowledged twice: {p}={} and {path}={}",
                show(&b),
                show(&body)
            ));
        }
        self.check_acked(rev);
    }

    /// Checks whether a value is chosen at `seqn`, now that its set may
    /// be known.
    fn check_chosen(&mut self, seqn: u64) {
        let Some(set) = self.sets.get(&seqn) else {
            return; // decided later, once the log reaches seqn - alpha
        };
        let Some(ballots) = self.votes.get(&seqn) else {
            return;
        };
        for ((round, coord), (value, voters)) in ballots {
            let members = voters.iter().filter(|v| set.index_of(v).is_some()).count();
            if members < set.quorum() {
                continue;
            }
            match self.chosen.get(&seqn) {
                Some(c) if c != value => {
                    self.violations.push(format!(
                        "seqn {seqn}: {} chosen in ballot ({round}, {coord}) by {voters:?}, \
                         but {} was chosen before",
                        show(value),
                        show(c)
                    ));
                }
                Some(_) => {}
                None => {
                    if let Some(l) = self.learned.get(&seqn) {
                        if l != value {
                            self.violations.push(format!(
                                "seqn {seqn}: {} chosen in ballot ({round}, {coord}) by \
                                 {voters:?}, but nodes learned {}",
                                show(value),
                                show(l)
                            ));
                        }
                    }
                    self.chosen.insert(seqn, value.clone());
                }
            }
        }
    }

    /// Applies the learned log as far as it is contiguous, deriving the
    /// CAL set of each later seqn.
    fn advance(&mut self) {
        while let Some(value) = self.learned.get(&(self.applied + 1)).cloned() {
            let seqn = self.applied + 1;
            let v = Value::decode(&value).unwrap_or_default();
            let first = self.store.rev() + 1;
            self.store.apply_value(seqn, &v);
            self.applied = seqn;
            let set = cluster::cal_set(&cluster::slots(self.store.head()))
                .or_else(|| self.sets.get(&(seqn + self.alpha - 1)).cloned());
            if let Some(set) = set {
                self.sets.insert(seqn + self.alpha, set);
            }
            self.check_chosen(seqn + self.alpha);
            for rev in first..=self.store.rev() {
                self.check_acked(rev);
            }
        }
    }

    /// An acknowledged write must be the change applied at its rev.
    fn check_acked(&mut self, rev: Rev) {
        let (Some((path, body)), Some(ev)) = (self.acked.get(&rev), self.store.event(rev)) else {
            return;
        };
        if &*ev.path != path.as_str() || ev.body != *body {
            self.violations.push(format!(
                "rev {rev}: acknowledged {path}={} but the log has {}={}",
                show(body),
                ev.path,
                show(&ev.body)
            ));
        }
    }

    /// The seqns where the log's CAL set changes, with the new set, and
    /// the last seqn the oracle applied: what a failure report shows.
    pub(crate) fn set_changes(&self) -> (Vec<(u64, Vec<NodeId>)>, u64) {
        let mut changes = Vec::new();
        let mut last: Option<&CalSet> = None;
        for (s, set) in &self.sets {
            if last != Some(set) {
                changes.push((*s, set.iter().cloned().collect()));
                last = Some(set);
            }
        }
        (changes, self.applied)
    }

    /// The CAL set the log gives seqn `s`, if known yet.
    pub(crate) fn set_of(&self, s: u64) -> Option<&CalSet> {
        self.sets.get(&s)
    }
}

/// A value, short, for messages.
fn show(v: &Bytes) -> String {
    let text = String::from_utf8_lossy(v);
    if text.len() > 60 {
        format!("{:?}…", &text[..60])
    } else {
        format!("{text:?}")
    }
}
