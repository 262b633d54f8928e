//! The soak: random fault rounds for a given time, on 3-CAL and 5-CAL
//! clusters in turn (each with a spare slave), with [`Figures`] at the
//! end: rounds, faults by kind, operations checked, watched changes,
//! kicks, anomalies by check.
//!
//! A seed drives every choice: the fault kind, its duration, and its
//! victims, named by slot ("the CAL in slot 2", "the first spare slave")
//! and resolved when the round starts. The same seed gives the same
//! schedule of faults; what the nodes make of it depends on timing, which
//! no seed replays.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::anomaly::{guarded, Anomaly, Check};
use super::fault::Fault;
use super::round::{run_round, RoundCfg, RoundReport};
use super::scenarios::slaves;
use super::testbed::Testbed;
use crate::XorShift;

/// When a soak stops starting rounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Once this much wall-clock time has passed.
    Wall(Duration),
    /// Once faults have been held this long in all (the time from each
    /// fault's injection to its heal, added up).
    Faults(Duration),
}

/// What a soak does.
#[derive(Debug, Clone)]
pub struct SoakCfg {
    /// When to stop starting rounds.
    pub limit: Limit,
    /// Drives every random choice.
    pub seed: u64,
    /// `-timeout` of every node, in seconds.
    pub timeout: f64,
    /// A cluster is replaced by a fresh one (of the other size) after
    /// this long, or after a round it did not heal from.
    pub segment: Duration,
}

/// The soak's figures.
#[derive(Debug, Clone, Default)]
pub struct Figures {
    /// Rounds run (one fault each; not counting rounds the harness could
    /// not run).
    pub rounds: u32,
    /// Clusters started.
    pub clusters: u32,
    /// Faults injected, by kind ([`Fault::kind`]).
    pub faults: BTreeMap<&'static str, u32>,
    /// Seconds of faults injected (the time faults were held).
    pub fault_secs: f64,
    /// Operations recorded.
    pub ops: usize,
    /// Operations with a definite outcome, checked against the model.
    pub ops_checked: usize,
    /// Changes seen and checked by watchers.
    pub watched: usize,
    /// Times a watcher started over after `TOO_LATE`.
    pub watch_restarts: usize,
    /// CALs kicked.
    pub kicks: usize,
    /// The longest time a heal took, in seconds.
    pub heal_max: f64,
    /// Anomalies by check.
    pub by_check: BTreeMap<&'static str, u32>,
    /// Every anomaly, with its round.
    pub anomalies: Vec<(u32, Anomaly)>,
}

impl Figures {
    /// Adds one round's report.
    pub fn add(&mut self, rep: &RoundReport) {
        if rep.kind != "harness" {
            self.rounds += 1;
            *self.faults.entry(rep.kind).or_default() += 1;
        }
        self.fault_secs += rep.fault_secs;
        self.ops += rep.ops;
        self.ops_checked += rep.ops_checked;
        self.watched += rep.watched;
        self.watch_restarts += rep.watch_restarts;
        self.kicks += rep.kicks.len();
        self.heal_max = self.heal_max.max(rep.heal_secs.unwrap_or(0.0));
        for a in &rep.anomalies {
            *self.by_check.entry(a.check.name()).or_default() += 1;
            self.anomalies.push((rep.round, a.clone()));
        }
    }

    /// The figures as a Markdown table (for docs/reliability.md).
    pub fn table(&self) -> String {
        let mut t = String::from("| figure | value |\n|---|---|\n");
        let mut row = |k: &str, v: String| t.push_str(&format!("| {k} | {v} |\n"));
        row("rounds (one fault each)", self.rounds.to_string());
        row("clusters started", self.clusters.to_string());
        row("seconds of faults held", format!("{:.0}", self.fault_secs));
        for (kind, n) in &self.faults {
            row(&format!("faults: {kind}"), n.to_string());
        }
        row("operations recorded", self.ops.to_string());
        row(
            "operations checked (definite outcome)",
            self.ops_checked.to_string(),
        );
        row("watched changes checked", self.watched.to_string());
        row(
            "watchers started over after TOO_LATE",
            self.watch_restarts.to_string(),
        );
        row("CALs kicked", self.kicks.to_string());
        row("longest heal (s)", format!("{:.1}", self.heal_max));
        row("anomalies", self.anomalies.len().to_string());
        for c in Check::ALL {
            if let Some(n) = self.by_check.get(c.name()) {
                row(&format!("anomalies: {}", c.name()), n.to_string());
            }
        }
        t
    }
}

/// A random fault for `tb` (CALs and spare slaves as they are now).
pub fn random_fault(rng: &mut XorShift, tb: &Testbed) -> Fault {
    let t = tb.timeout;
    let cals = tb.cals();
    let n = cals.len();
    let spares = slaves(tb);
    let mut secs = |lo: f64, hi: f64| {
        // Tenths of a second: readable in reports.
        (t * (lo + (hi - lo) * (rng.below(1000) as f64 / 1000.0)) * 10.0).round() / 10.0
    };
    let (short, long, mid) = (secs(0.15, 0.5), secs(2.0, 4.0), secs(1.0, 3.0));
    let (down, up) = (secs(0.1, 0.4), secs(0.1, 0.4));
    // Dead for at most 0.3 T, so that with its start-up it is back well
    // within T/2 (no kick is allowed then).
    let brief = secs(0.1, 0.3);
    let slot = |rng: &mut XorShift| cals[rng.below(n as u64) as usize];
    let any = |rng: &mut XorShift| match rng.below(4) {
        0 if !spares.is_empty() => spares[0],
        _ => slot(rng),
    };
    // A durable testbed adds restarts on data directories (kinds 14-16).
    let kinds = if tb.c.is_durable() { 17 } else { 14 };
    let kind = if n < 3 { 0 } else { rng.below(kinds) };
    match kind {
        0 => Fault::Pause {
            node: any(rng),
            secs: short,
        },
        1 => Fault::Pause {
            node: slot(rng),
            secs: long,
        },
        2 => Fault::Kill {
            node: any(rng),
            secs: 2.0 * t,
        },
        3 => Fault::Isolate {
            node: any(rng),
            secs: short,
        },
        4 => Fault::Isolate {
            node: slot(rng),
            secs: long,
        },
        5 => Fault::Deaf {
            node: slot(rng),
            secs: mid,
        },
        6 => Fault::Mute {
            node: slot(rng),
            secs: if rng.below(2) == 0 { short } else { long },
        },
        7 => {
            let order = shuffled(rng, &cals);
            Fault::LinkDown {
                a: order[0],
                b: order[1],
                secs: mid,
            }
        }
        8 => Fault::Partition {
            groups: minority(rng, &cals, &spares),
            secs: short,
        },
        9 => Fault::Partition {
            groups: minority(rng, &cals, &spares),
            secs: long,
        },
        10 if rng.below(2) == 0 => Fault::Partition {
            groups: minority(rng, &cals, &spares),
            secs: 60.0,
        },
        10 | 11 => Fault::Partition {
            groups: no_majority(rng, &cals),
            secs: mid,
        },
        14 => Fault::Restart {
            nodes: vec![any(rng)],
            secs: brief,
        },
        15 => {
            // Every CAL, sometimes the spare slave too: a whole-cluster
            // restart (a power cut).
            let mut nodes = cals.clone();
            if rng.below(2) == 0 {
                nodes.extend(spares.first());
            }
            Fault::Restart { nodes, secs: brief }
        }
        16 => Fault::Restart {
            nodes: vec![slot(rng)],
            secs: long,
        },
        _ => Fault::Flap {
            node: any(rng),
            down,
            up,
            times: 3 + rng.below(6) as u32,
        },
    }
}

/// `v` in a random order.
fn shuffled(rng: &mut XorShift, v: &[usize]) -> Vec<usize> {
    let mut v = v.to_vec();
    for i in (1..v.len()).rev() {
        v.swap(i, rng.below(i as u64 + 1) as usize);
    }
    v
}

/// Groups `[majority (everyone else), minority]`: a random minority of
/// `cals` (at least 3 of them), sometimes with the first spare slave.
fn minority(rng: &mut XorShift, cals: &[usize], spares: &[usize]) -> Vec<Vec<usize>> {
    let k = 1 + rng.below(((cals.len() - 1) / 2) as u64) as usize;
    let mut small = shuffled(rng, cals)[..k].to_vec();
    if rng.below(2) == 0 {
        small.extend(spares.first());
    }
    vec![vec![], small]
}

/// Groups with no majority of `cals`: 1|1|1 for three CALs, 2|2|1 for
/// five (1|1|1|1 for four).
fn no_majority(rng: &mut XorShift, cals: &[usize]) -> Vec<Vec<usize>> {
    let order = shuffled(rng, cals);
    let sizes: Vec<usize> = match order.len() {
        5 => vec![2, 2, 1],
        n => vec![1; n],
    };
    let mut groups = Vec::new();
    let mut at = 0;
    for n in sizes {
        groups.push(order[at..at + n].to_vec());
        at += n;
    }
    groups
}

/// Runs the soak; `each` sees every round's report as it comes. A round
/// (or a cluster start) that panics is reported as a
/// [`Check::Harness`] anomaly and the soak goes on with a fresh cluster.
pub fn soak(cfg: &SoakCfg, mut each: impl FnMut(&RoundReport)) -> Figures {
    let mut rng = XorShift::new(cfg.seed);
    let mut figures = Figures::default();
    let start = Instant::now();
    let more = |f: &Figures| match cfg.limit {
        Limit::Wall(d) => start.elapsed() < d,
        Limit::Faults(d) => f.fault_secs < d.as_secs_f64(),
    };
    let mut round = 0;
    while more(&figures) {
        let cals = if figures.clusters % 2 == 0 { 3 } else { 5 };
        // Every other pair of clusters (the first two, then the fifth and
        // sixth, ...) keeps its data on disk (-d), and its faults include
        // restarts.
        let durable = figures.clusters % 4 < 2;
        figures.clusters += 1;
        let with = if durable { ", every node with -d" } else { "" };
        eprintln!("soak: a new cluster of {cals} CALs and a spare slave{with}");
        let started = guarded("starting a cluster", || {
            if durable {
                Testbed::start_durable(cals, 1, cfg.timeout)
            } else {
                Testbed::start(cals, 1, cfg.timeout)
            }
        });
        let born = Instant::now();
        let mut tb = match started {
            Ok(tb) => tb,
            Err(a) => {
                let rep = harness_report(round, a);
                each(&rep);
                figures.add(&rep);
                continue;
            }
        };
        while more(&figures) && born.elapsed() < cfg.segment {
            round += 1;
            let rep = guarded("the round", || {
                let fault = random_fault(&mut rng, &tb);
                let seed = rng.next_u64();
                run_round(&mut tb, &RoundCfg { round, seed, fault })
            })
            .unwrap_or_else(|a| harness_report(round, a));
            each(&rep);
            figures.add(&rep);
            if rep.heal_secs.is_none() {
                break; // not healed (or not run): go on with a fresh cluster
            }
        }
    }
    figures
}

/// The report of a round that could not run.
fn harness_report(round: u32, a: Anomaly) -> RoundReport {
    RoundReport {
        round,
        fault: "(none: the harness failed)".into(),
        kind: "harness",
        anomalies: vec![a],
        ..RoundReport::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Random groups: a minority never holds half the CALs or more; a
    /// no-majority split gives no group a majority; every CAL is placed.
    #[test]
    fn random_groups_keep_their_promise() {
        let mut rng = XorShift::new(9);
        for cals in [vec![0, 1, 2], vec![0, 1, 2, 3, 4]] {
            for _ in 0..200 {
                let m = minority(&mut rng, &cals, &[7]);
                let small = m[1].iter().filter(|n| cals.contains(n)).count();
                assert!(small >= 1 && 2 * small < cals.len(), "{m:?}");
                let g = no_majority(&mut rng, &cals);
                let mut all: Vec<usize> = g.iter().flatten().copied().collect();
                all.sort();
                assert_eq!(all, cals);
                assert!(g.iter().all(|x| 2 * x.len() <= cals.len()), "{g:?}");
            }
        }
    }
}
