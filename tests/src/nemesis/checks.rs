//! End-of-round checks on the nodes themselves: identical stores at one
//! rev ([`check_stores`]), who was kicked ([`kicks`], [`check_kicks`]),
//! and what the nodes logged ([`LogMarks`], [`check_logs`]).

use std::collections::BTreeMap;
use std::thread;
use std::time::{Duration, Instant};

use super::anomaly::{Anomaly, Check};
use super::fault::Expect;
use super::probe::{self, Change};
use super::testbed::Testbed;
use crate::cluster::{describe_diff, Entry, State};

/// Every live node holds the same store at one rev R (the greatest rev
/// any of them shows now; each must reach it within `timeout`). A node
/// stuck below R is still compared, at its own rev, with a node that
/// reached R: stuck is a liveness failure, a different store at the same
/// rev a safety one.
pub fn check_stores(tb: &Testbed, timeout: Duration) -> Vec<Anomaly> {
    let live = tb.live();
    let mut out = Vec::new();
    let at = live
        .iter()
        .filter_map(|&i| probe::rev(tb.addr(i)).ok())
        .max()
        .unwrap_or(0);
    let deadline = Instant::now() + timeout;
    let mut base: Option<(usize, Vec<Entry>)> = None;
    let mut stuck = Vec::new();
    for &i in &live {
        let bad = |what: String| Anomaly::at(Check::Stores, tb.desc(i), what);
        let reached = loop {
            match probe::rev(tb.addr(i)) {
                Ok(r) if r >= at => break Ok(at),
                Ok(r) if Instant::now() >= deadline => break Err((Some(r), format!("at rev {r}"))),
                Err(e) if Instant::now() >= deadline => break Err((None, e)),
                _ => thread::sleep(Duration::from_millis(50)),
            }
        };
        if let Err((r, why)) = reached {
            out.push(bad(format!(
                "did not reach rev {at} within {timeout:?}: {why}"
            )));
            stuck.extend(r.map(|r| (i, r)));
            continue;
        }
        match (probe::walk(tb.addr(i), "/**", Some(at)), &base) {
            (Err(e), _) => out.push(bad(format!("WALK /** at rev {at}: {e}"))),
            (Ok(store), None) => base = Some((i, store)),
            (Ok(store), Some((b, bs))) if *bs != store => out.push(bad(format!(
                "holds another store than node {b} at rev {at}:\n{}",
                describe_diff(bs, &store)
            ))),
            _ => {}
        }
    }
    if let Some((b, _)) = base {
        for (i, r) in stuck {
            out.extend(compare_at(tb, b, i, r));
        }
    }
    out
}

/// Nodes `a` and `b` hold the same store at rev `r` (skipped if either no
/// longer keeps rev `r`).
fn compare_at(tb: &Testbed, a: usize, b: usize, r: i64) -> Option<Anomaly> {
    let sa = probe::walk(tb.addr(a), "/**", Some(r)).ok()?;
    let sb = probe::walk(tb.addr(b), "/**", Some(r)).ok()?;
    (sa != sb).then(|| {
        Anomaly::at(
            Check::Stores,
            tb.desc(b),
            format!(
                "holds another store than node {a} at rev {r} (where it is stuck):\n{}",
                describe_diff(&sa, &sb)
            ),
        )
    })
}

/// A CAL removed from its slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kick {
    /// Its id.
    pub id: String,
    /// Its node, if it is one of this test's.
    pub node: Option<usize>,
    /// The slot it was removed from.
    pub slot: String,
    /// The rev of the removal.
    pub rev: i64,
}

/// Every removal of a CAL from a slot (its id replaced by an empty body or
/// another id, or the slot deleted) between revs `from` and `to`, from the
/// history of the first of `via` that still has it.
pub fn kicks(tb: &Testbed, via: &[usize], from: i64, to: i64) -> Result<Vec<Kick>, String> {
    let mut last_err = String::from("no node to ask");
    for &n in via {
        let addr = tb.addr(n);
        let before = probe::walk(addr, "/ctl/cal/*", Some(from - 1));
        let changes = probe::changes(addr, "/ctl/cal/*", from, to);
        match (before, changes) {
            (Ok(before), Ok(changes)) => {
                let slots = before.into_iter().map(|(p, _, v)| (p, v)).collect();
                return Ok(removals(|id| tb.index_of(id), slots, &changes));
            }
            (Err(e), _) | (_, Err(e)) => last_err = format!("{}: {e}", tb.desc(n)),
        }
    }
    Err(last_err)
}

/// The removals in `changes`, starting from `slots`; `index_of` maps an
/// id to its node.
fn removals(
    index_of: impl Fn(&str) -> Option<usize>,
    mut slots: BTreeMap<String, Vec<u8>>,
    changes: &[Change],
) -> Vec<Kick> {
    let mut out = Vec::new();
    for ch in changes {
        let old = slots.remove(&ch.path).unwrap_or_default();
        if !old.is_empty() && old != ch.body {
            let id = String::from_utf8_lossy(&old).into_owned();
            out.push(Kick {
                node: index_of(&id),
                id,
                slot: ch.path.clone(),
                rev: ch.rev,
            });
        }
        if ch.flags & 8 == 0 {
            slots.insert(ch.path.clone(), ch.body.clone());
        }
    }
    out
}

/// Kicks against what the fault allows: every kicked CAL must be in
/// `may_kick`, every CAL of `must_kick` kicked.
pub fn check_kicks(tb: &Testbed, e: &Expect, fault: &str, kicks: &[Kick]) -> Vec<Anomaly> {
    let mut out = Vec::new();
    for k in kicks {
        let allowed = k.node.is_some_and(|n| e.may_kick.contains(&n));
        if !allowed {
            let who = k.node.map_or(k.id.clone(), |n| tb.desc(n));
            out.push(Anomaly::at(
                Check::HealthyKicked,
                who,
                format!(
                    "kicked from {} at rev {} though the fault ({fault}) left it healthy",
                    k.slot, k.rev
                ),
            ));
        }
    }
    for &n in &e.must_kick {
        if !kicks.iter().any(|k| k.node == Some(n)) {
            out.push(Anomaly::at(
                Check::NotKicked,
                tb.desc(n),
                format!(
                    "silent to the majority for longer than -timeout ({fault}) but never kicked"
                ),
            ));
        }
    }
    out
}

/// How much each node had written to stderr at one moment.
#[derive(Debug, Clone, Default)]
pub struct LogMarks(Vec<usize>);

impl LogMarks {
    /// Marks every node's stderr now.
    pub fn now(tb: &Testbed) -> LogMarks {
        LogMarks(
            (0..tb.c.nodes.len())
                .map(|i| tb.c.d(i).stderr().len())
                .collect(),
        )
    }

    /// What node `i` wrote to stderr since the mark (everything, for a
    /// node started after it).
    pub fn since(&self, tb: &Testbed, i: usize) -> String {
        let all = tb.c.d(i).stderr();
        let from = self.0.get(i).copied().unwrap_or(0).min(all.len());
        all[from..].to_string()
    }
}

/// The lines of `log` containing `what`.
pub fn lines_with<'a>(log: &'a str, what: &str) -> Vec<&'a str> {
    log.lines().filter(|l| l.contains(what)).collect()
}

/// Log checks: no node panicked or exited by itself since `start`
/// ([`Check::Crash`]; a node found dead is marked killed so it is not
/// reported twice). Kick loops ([`Check::KickLoop`]): once the cluster
/// had healed (`healed`), no node may log a kick attempt; if it never
/// healed, no node may log three or more attempts against one CAL after
/// the fault ended (`ended`; a kick is proposed at most once per
/// `-timeout`).
pub fn check_logs(
    tb: &mut Testbed,
    start: &LogMarks,
    ended: &LogMarks,
    healed: Option<&LogMarks>,
) -> Vec<Anomaly> {
    let mut out = Vec::new();
    for i in 0..tb.c.nodes.len() {
        let log = start.since(tb, i);
        for l in lines_with(&log, "panicked").into_iter().take(3) {
            out.push(Anomaly::at(
                Check::Crash,
                tb.desc(i),
                format!("panicked: {l}"),
            ));
        }
        if tb.c.nodes[i].state != State::Killed {
            if let Some(status) = tb.c.nodes[i].d.try_wait() {
                let tail: Vec<&str> = log.lines().rev().take(5).collect();
                out.push(Anomaly::at(
                    Check::Crash,
                    tb.desc(i),
                    format!("exited by itself with {status}; last lines: {tail:?}"),
                ));
                tb.c.kill(i);
            }
        }
        let (since, at_most) = match healed {
            Some(h) => (h.since(tb, i), 0),
            None => (ended.since(tb, i), 2),
        };
        let attempts = lines_with(&since, "kicking CAL");
        let mut per_target: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for l in &attempts {
            let target = l
                .split("kicking CAL ")
                .nth(1)
                .and_then(|r| r.split(|c: char| !c.is_ascii_alphanumeric()).next())
                .unwrap_or("?");
            per_target.entry(target).or_default().push(l);
        }
        for (target, lines) in per_target {
            if lines.len() > at_most {
                let when = if healed.is_some() {
                    "after the cluster had healed"
                } else {
                    "after the fault ended (never healed)"
                };
                out.push(Anomaly::at(
                    Check::KickLoop,
                    tb.desc(i),
                    format!(
                        "{} attempts to kick {target} {when}; the first: {}",
                        lines.len(),
                        lines[0]
                    ),
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ch(path: &str, rev: i64, body: &str, flags: i32) -> Change {
        Change {
            path: path.into(),
            rev,
            body: body.into(),
            flags,
        }
    }

    /// A slot emptied or taken over is a removal of the id it held; a
    /// free slot taken is not; a deleted slot is.
    #[test]
    fn removals_are_read_from_slot_changes() {
        let slots = BTreeMap::from([
            ("/ctl/cal/0".to_string(), b"A".to_vec()),
            ("/ctl/cal/1".to_string(), b"B".to_vec()),
            ("/ctl/cal/2".to_string(), Vec::new()),
        ]);
        let changes = [
            ch("/ctl/cal/2", 10, "C", 4),
            ch("/ctl/cal/1", 11, "", 4),
            ch("/ctl/cal/1", 12, "D", 4),
            ch("/ctl/cal/0", 13, "A", 4),
            ch("/ctl/cal/0", 14, "", 8),
        ];
        let index = |id: &str| (id != "B").then_some(id.len());
        let got = removals(index, slots, &changes);
        let brief: Vec<(&str, Option<usize>, &str, i64)> = got
            .iter()
            .map(|k| (k.id.as_str(), k.node, k.slot.as_str(), k.rev))
            .collect();
        assert_eq!(
            brief,
            [
                ("B", None, "/ctl/cal/1", 11),
                ("A", Some(1), "/ctl/cal/0", 14)
            ]
        );
    }
}
