//! Faults on real processes ([`Fault`]): what each does, what it may and
//! must lead to ([`Expect`]), and how it is injected and healed.

use std::collections::BTreeSet;
use std::fmt;

use super::anomaly::{Anomaly, Check};
use super::net::{links_between, partition_links, Host};
use super::testbed::Testbed;
use crate::cluster::node_id;

/// One fault, bounded in time. Node numbers are indices in the cluster.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// SIGSTOP the node for `secs`, then SIGCONT.
    Pause {
        /// The node.
        node: usize,
        /// How long it stays stopped.
        secs: f64,
    },
    /// SIGKILL the node; a replacement slave is started at once.
    Kill {
        /// The node.
        node: usize,
        /// How long the round waits, with the node dead, before the heal
        /// checks (time for the kick).
        secs: f64,
    },
    /// SIGKILL the nodes at once, and after `secs` start them again on
    /// their data directories (a [`Testbed::start_durable`] testbed): each
    /// must come back under its id with everything it acknowledged.
    Restart {
        /// The nodes.
        nodes: Vec<usize>,
        /// How long they stay dead.
        secs: f64,
    },
    /// Cut the node from every other node, both ways, for `secs`.
    Isolate {
        /// The node.
        node: usize,
        /// How long.
        secs: f64,
    },
    /// The node receives nothing from the other nodes (they still
    /// receive from it), for `secs`.
    Deaf {
        /// The node.
        node: usize,
        /// How long.
        secs: f64,
    },
    /// Nothing the node sends reaches the other nodes (it still receives
    /// from them), for `secs`.
    Mute {
        /// The node.
        node: usize,
        /// How long.
        secs: f64,
    },
    /// Only the link between `a` and `b` is cut, both ways; every other
    /// node still talks to both.
    LinkDown {
        /// One end.
        a: usize,
        /// The other end.
        b: usize,
        /// How long.
        secs: f64,
    },
    /// Nodes of different groups cannot talk; nodes in no group are in
    /// the first.
    Partition {
        /// The groups.
        groups: Vec<Vec<usize>>,
        /// How long.
        secs: f64,
    },
    /// The node is isolated `times` times, `down` seconds each, with `up`
    /// seconds between.
    Flap {
        /// The node.
        node: usize,
        /// Seconds isolated each time.
        down: f64,
        /// Seconds connected between two cuts.
        up: f64,
        /// How many cuts.
        times: u32,
    },
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Pause { node, secs } => write!(f, "pause node {node} for {secs} s"),
            Fault::Kill { node, secs } => write!(f, "kill node {node} (then {secs} s)"),
            Fault::Restart { nodes, secs } => {
                write!(f, "kill nodes {nodes:?}, start them again after {secs} s")
            }
            Fault::Isolate { node, secs } => write!(f, "isolate node {node} for {secs} s"),
            Fault::Deaf { node, secs } => write!(f, "node {node} deaf for {secs} s"),
            Fault::Mute { node, secs } => write!(f, "node {node} mute for {secs} s"),
            Fault::LinkDown { a, b, secs } => write!(f, "link {a}-{b} down for {secs} s"),
            Fault::Partition { groups, secs } => write!(f, "partition {groups:?} for {secs} s"),
            Fault::Flap {
                node,
                down,
                up,
                times,
            } => write!(f, "flap node {node}: {times} × ({down} s cut, {up} s up)"),
        }
    }
}

/// What a fault may and must lead to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expect {
    /// Nodes the fault touched.
    pub faulted: BTreeSet<usize>,
    /// CALs that may be kicked (silent to a majority for about
    /// `-timeout`, or in a partition without a majority).
    pub may_kick: BTreeSet<usize>,
    /// CALs that must be kicked (silent to a majority for twice
    /// `-timeout` or more, or killed).
    pub must_kick: BTreeSet<usize>,
    /// A majority of the CALs runs and talks during the fault, so writes
    /// through them must keep succeeding.
    pub majority_up: bool,
}

impl Fault {
    /// How long the fault lasts, in seconds.
    pub fn secs(&self) -> f64 {
        match self {
            Fault::Pause { secs, .. }
            | Fault::Kill { secs, .. }
            | Fault::Restart { secs, .. }
            | Fault::Isolate { secs, .. }
            | Fault::Deaf { secs, .. }
            | Fault::Mute { secs, .. }
            | Fault::LinkDown { secs, .. }
            | Fault::Partition { secs, .. } => *secs,
            Fault::Flap {
                down, up, times, ..
            } => (down + up) * f64::from(*times),
        }
    }

    /// The kind, for figures: `pause-short` (shorter than `-timeout`),
    /// `pause-long`, `kill`, `restart` (fewer than half the CALs, shorter
    /// than `-timeout`), `restart-long`, `restart-majority` (half the CALs
    /// or more, so writes stop), `isolate-short`, `isolate-long`, `deaf`,
    /// `mute-short`, `mute-long`, `link-down`, `partition-minority`
    /// (a majority side, shorter than `-timeout`), `partition-majority`
    /// (a majority side, longer), `partition-no-majority`, `flap`.
    pub fn kind(&self, timeout: f64, cals: &[usize]) -> &'static str {
        let long = self.secs() >= timeout;
        match self {
            Fault::Pause { .. } if long => "pause-long",
            Fault::Pause { .. } => "pause-short",
            Fault::Kill { .. } => "kill",
            Fault::Restart { nodes, .. }
                if 2 * nodes.iter().filter(|n| cals.contains(n)).count() >= cals.len() =>
            {
                "restart-majority"
            }
            Fault::Restart { .. } if long => "restart-long",
            Fault::Restart { .. } => "restart",
            Fault::Isolate { .. } if long => "isolate-long",
            Fault::Isolate { .. } => "isolate-short",
            Fault::Deaf { .. } => "deaf",
            Fault::Mute { .. } if long => "mute-long",
            Fault::Mute { .. } => "mute-short",
            Fault::LinkDown { .. } => "link-down",
            Fault::Partition { groups, .. } => match majority_group(groups, cals) {
                None => "partition-no-majority",
                Some(_) if long => "partition-majority",
                Some(_) => "partition-minority",
            },
            Fault::Flap { .. } => "flap",
        }
    }

    /// What the fault may and must lead to, given the CALs when it starts
    /// and `-timeout`. A CAL silenced (to a majority) for at most half
    /// the timeout must not be kicked; for twice the timeout or more it
    /// must be; in between it may be.
    pub fn expect(&self, timeout: f64, cals: &[usize]) -> Expect {
        let mut e = Expect {
            majority_up: true,
            ..Expect::default()
        };
        let cal = |n: &usize| cals.contains(n);
        let silenced = |nodes: &[usize], secs: f64, e: &mut Expect| {
            for n in nodes.iter().filter(|n| cal(n)) {
                if secs > timeout / 2.0 {
                    e.may_kick.insert(*n);
                }
                if secs >= 2.0 * timeout {
                    e.must_kick.insert(*n);
                }
            }
        };
        match self {
            Fault::Pause { node, secs }
            | Fault::Isolate { node, secs }
            | Fault::Mute { node, secs } => {
                e.faulted.insert(*node);
                silenced(&[*node], *secs, &mut e);
            }
            Fault::Kill { node, .. } => {
                e.faulted.insert(*node);
                silenced(&[*node], f64::INFINITY, &mut e);
            }
            Fault::Restart { nodes, secs } => {
                e.faulted.extend(nodes);
                silenced(nodes, *secs, &mut e);
                let down = nodes.iter().filter(|n| cal(n)).count();
                e.majority_up = 2 * (cals.len() - down) > cals.len();
            }
            Fault::Deaf { node, .. } => {
                // The others still hear it: nobody need kick it, but it
                // is faulted, so it may lose its slot.
                e.faulted.insert(*node);
                if cal(node) {
                    e.may_kick.insert(*node);
                }
            }
            Fault::LinkDown { a, b, .. } => {
                e.faulted.extend([*a, *b]);
            }
            Fault::Partition { groups, secs } => {
                e.faulted.extend(groups.iter().flatten());
                match majority_group(groups, cals) {
                    Some(k) => {
                        let minority: Vec<usize> = groups
                            .iter()
                            .enumerate()
                            .filter(|(g, _)| *g != k)
                            .flat_map(|(_, nodes)| nodes.iter().copied())
                            .collect();
                        silenced(&minority, *secs, &mut e);
                    }
                    None => {
                        e.majority_up = false;
                        e.may_kick.extend(cals.iter().copied());
                    }
                }
            }
            Fault::Flap { node, .. } => {
                e.faulted.insert(*node);
            }
        }
        e
    }
}

/// The index of the group of `groups` holding a majority of `cals`, if
/// any (CALs in no group count in the first).
fn majority_group(groups: &[Vec<usize>], cals: &[usize]) -> Option<usize> {
    (0..groups.len()).find(|&g| {
        let n = cals
            .iter()
            .filter(|c| {
                groups[g].contains(c) || (g == 0 && !groups.iter().flatten().any(|x| x == *c))
            })
            .count();
        2 * n > cals.len()
    })
}

/// A fault in progress: what to undo at the heal.
#[derive(Debug)]
pub struct Active {
    /// The fault.
    pub fault: Fault,
    /// Links cut (one way each).
    pub links: Vec<(Host, Host)>,
    /// Nodes stopped.
    pub paused: Vec<usize>,
    /// Replacement nodes started.
    pub started: Vec<usize>,
    /// Nodes killed, to be started again at the heal.
    pub killed: Vec<usize>,
}

/// The links `fault` cuts, one way each (none for a pause or a kill).
pub fn fault_links(tb: &Testbed, fault: &Fault) -> Vec<(Host, Host)> {
    let others = |node: usize| -> Vec<Host> {
        let rest: Vec<usize> = tb.alive().into_iter().filter(|&i| i != node).collect();
        tb.hosts(&rest)
    };
    match fault {
        Fault::Pause { .. } | Fault::Kill { .. } | Fault::Restart { .. } => Vec::new(),
        Fault::Isolate { node, .. } | Fault::Flap { node, .. } => {
            links_between(&[tb.host(*node)], &others(*node))
        }
        Fault::Deaf { node, .. } => others(*node)
            .into_iter()
            .map(|o| (o, tb.host(*node)))
            .collect(),
        Fault::Mute { node, .. } => others(*node)
            .into_iter()
            .map(|o| (tb.host(*node), o))
            .collect(),
        Fault::LinkDown { a, b, .. } => links_between(&[tb.host(*a)], &[tb.host(*b)]),
        Fault::Partition { groups, .. } => {
            let mut gs: Vec<Vec<usize>> = groups.clone();
            for i in tb.alive() {
                if !gs.iter().flatten().any(|&x| x == i) {
                    gs[0].push(i);
                }
            }
            let hosts: Vec<Vec<Host>> = gs.iter().map(|g| tb.hosts(g)).collect();
            partition_links(&hosts)
        }
    }
}

/// Starts `fault`.
pub fn inject(tb: &mut Testbed, fault: &Fault) -> Active {
    let mut a = Active {
        fault: fault.clone(),
        links: fault_links(tb, fault),
        paused: Vec::new(),
        started: Vec::new(),
        killed: Vec::new(),
    };
    match fault {
        Fault::Pause { node, .. } => {
            tb.c.stop(*node);
            a.paused.push(*node);
        }
        Fault::Kill { node, .. } => {
            tb.c.kill(*node);
            a.started.push(tb.add_slave());
        }
        Fault::Restart { nodes, .. } => {
            for &n in nodes {
                tb.c.kill(n);
                a.killed.push(n);
            }
        }
        _ => tb.net.cut(&a.links),
    }
    a
}

/// Ends `active`: heals every link, continues every stopped node, and
/// starts every killed one again on its data directory, all at once. A
/// node that does not start again, or comes back under another id, is an
/// anomaly.
pub fn heal(tb: &mut Testbed, active: &Active) -> Vec<Anomaly> {
    tb.net.heal_all();
    for &n in &active.paused {
        tb.c.cont(n);
    }
    let mut out = Vec::new();
    let failed = tb.c.restart_all(&active.killed);
    for &n in &active.killed {
        let desc = tb.desc(n);
        if let Some((_, e)) = failed.iter().find(|(i, _)| *i == n) {
            out.push(Anomaly::at(
                Check::Crash,
                &desc,
                format!("did not start again on its data directory: {e}"),
            ));
            continue;
        }
        let id = node_id(tb.c.d(n));
        if id != tb.c.id(n) {
            out.push(Anomaly::at(
                Check::Heal,
                &desc,
                format!("started again on its data directory as {id}"),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(v: &[usize]) -> BTreeSet<usize> {
        v.iter().copied().collect()
    }

    /// Silence of at most T/2: no kick; 2 T or more: a must; between:
    /// allowed. Slaves are never expected to be kicked.
    #[test]
    fn silenced_cals_may_or_must_be_kicked_by_duration() {
        let cals = [0, 1, 2];
        let e = Fault::Pause { node: 2, secs: 1.0 }.expect(3.0, &cals);
        assert_eq!(
            (e.may_kick, e.must_kick, e.majority_up),
            (set(&[]), set(&[]), true)
        );
        let e = Fault::Isolate { node: 2, secs: 3.0 }.expect(3.0, &cals);
        assert_eq!((e.may_kick, e.must_kick), (set(&[2]), set(&[])));
        let e = Fault::Mute { node: 2, secs: 6.0 }.expect(3.0, &cals);
        assert_eq!((e.may_kick, e.must_kick), (set(&[2]), set(&[2])));
        let e = Fault::Pause {
            node: 3,
            secs: 60.0,
        }
        .expect(3.0, &cals);
        assert_eq!((e.may_kick, e.must_kick), (set(&[]), set(&[])));
        let e = Fault::LinkDown {
            a: 0,
            b: 1,
            secs: 60.0,
        }
        .expect(3.0, &cals);
        assert_eq!((e.may_kick, e.faulted), (set(&[]), set(&[0, 1])));
    }

    /// The minority side of a partition is silenced; with no majority
    /// side, any CAL may be kicked and writes need not go on.
    #[test]
    fn partitions_by_majority() {
        let cals = [0, 1, 2, 3, 4];
        let minority = Fault::Partition {
            groups: vec![vec![], vec![3, 4, 5]],
            secs: 12.0,
        };
        let e = minority.expect(3.0, &cals);
        assert_eq!((e.must_kick, e.majority_up), (set(&[3, 4]), true));
        assert_eq!(minority.kind(3.0, &cals), "partition-majority");
        let none = Fault::Partition {
            groups: vec![vec![0, 5], vec![1, 2], vec![3, 4]],
            secs: 6.0,
        };
        let e = none.expect(3.0, &cals);
        assert_eq!(
            (e.may_kick, e.must_kick, e.majority_up),
            (set(&cals), set(&[]), false)
        );
        assert_eq!(none.kind(3.0, &cals), "partition-no-majority");
        let short = Fault::Partition {
            groups: vec![vec![0, 1, 2], vec![3, 4]],
            secs: 1.0,
        };
        assert_eq!(short.kind(3.0, &cals), "partition-minority");
        assert_eq!(short.expect(3.0, &cals).may_kick, set(&[]));
    }
}
