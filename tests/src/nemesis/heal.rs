//! After a fault ends: has the cluster healed by itself? [`converge`]
//! polls, within a deadline, until
//! - every live node answers and all show the same `/ctl/cal/*`;
//! - every slot names a live node, and no slot is free while a live node
//!   is a slave;
//! - every CAL's `writable` file (read on itself) is `true`;
//! - a write through every CAL succeeds ([`Check::CalWrite`] if not),
//!   and every live node, CAL or slave, reaches the last of those writes.

use std::collections::BTreeMap;
use std::thread;
use std::time::{Duration, Instant};

use super::anomaly::{Anomaly, Check};
use super::probe::{self, PROBE_TIMEOUT};
use super::testbed::Testbed;
use crate::{req, RequestExt, Verb};

/// The state the cluster healed to.
#[derive(Debug, Clone)]
pub struct Healed {
    /// The slots, as every live node shows them.
    pub slots: BTreeMap<String, String>,
    /// The CALs (node indices), in slot order.
    pub cals: Vec<usize>,
    /// The live nodes that are not CALs.
    pub slaves: Vec<usize>,
    /// When the conditions were first all met.
    pub at: Instant,
}

/// Problems found by one look: `(check, node, what)`.
type Problems = Vec<(Check, Option<usize>, String)>;

/// Polls until the cluster has healed (see the module doc), writing
/// through the CALs under `dir` each time the rest holds, or `timeout`
/// passed; then the problems seen last, one anomaly each (with the node's
/// last log lines).
pub fn converge(tb: &Testbed, dir: &str, timeout: Duration) -> Result<Healed, Vec<Anomaly>> {
    let deadline = Instant::now() + timeout;
    loop {
        let problems = match observe(tb) {
            Ok(h) => match probe_writes(tb, &h, dir) {
                Ok(()) => {
                    return Ok(Healed {
                        at: Instant::now(),
                        ..h
                    })
                }
                Err(p) => p,
            },
            Err(p) => p,
        };
        if Instant::now() >= deadline {
            return Err(problems
                .into_iter()
                .map(|(check, node, what)| {
                    let what = format!("not healed {timeout:?} after the fault ended: {what}");
                    match node {
                        Some(n) => Anomaly::at(
                            check,
                            tb.desc(n),
                            format!("{what}; its last log lines:\n{}", tail(tb, n, 8)),
                        ),
                        None => Anomaly::new(check, what),
                    }
                })
                .collect());
        }
        thread::sleep(Duration::from_millis(200));
    }
}

/// One look at every live node.
fn observe(tb: &Testbed) -> Result<Healed, Problems> {
    let live = tb.live();
    let mut views: BTreeMap<usize, BTreeMap<String, String>> = BTreeMap::new();
    let mut problems: Problems = Vec::new();
    for &i in &live {
        match tb.slots_via(i) {
            Ok(s) => {
                views.insert(i, s);
            }
            Err(e) => problems.push((Check::Heal, Some(i), format!("does not answer: {e}"))),
        }
    }
    let Some((&first, slots)) = views.iter().next() else {
        problems.push((Check::Heal, None, "no live node answers".into()));
        return Err(problems);
    };
    let slots = slots.clone();
    for (&i, v) in &views {
        if *v != slots {
            problems.push((
                Check::Heal,
                Some(i),
                format!(
                    "shows the slots {} but node {first} shows {}",
                    show(v),
                    show(&slots)
                ),
            ));
        }
    }
    let cals = tb.cals_in(&slots);
    for id in slots.values().filter(|id| !id.is_empty()) {
        match tb.index_of(id) {
            Some(n) if live.contains(&n) => {}
            Some(n) => problems.push((
                Check::Heal,
                Some(n),
                format!("holds a slot but is not running ({})", show(&slots)),
            )),
            None => problems.push((
                Check::Heal,
                None,
                format!("a slot holds {id}, no node of this test"),
            )),
        }
    }
    let slaves: Vec<usize> = live.iter().copied().filter(|i| !cals.contains(i)).collect();
    if slots.values().any(String::is_empty) {
        if let Some(&s) = slaves.first() {
            problems.push((
                Check::Heal,
                Some(s),
                format!("is a slave while a slot is free: {}", show(&slots)),
            ));
        }
    }
    for &i in &cals {
        let path = format!("/ctl/node/{}/writable", tb.c.id(i));
        match probe::get(tb.addr(i), &path) {
            Ok(v) if v == b"true" => {}
            Ok(v) => problems.push((
                Check::Heal,
                Some(i),
                format!(
                    "is in a slot but its {path} reads {:?}",
                    String::from_utf8_lossy(&v)
                ),
            )),
            Err(e) => problems.push((
                Check::Heal,
                Some(i),
                format!("is in a slot but does not answer: {e}"),
            )),
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Healed {
        slots,
        cals,
        slaves,
        at: Instant::now(),
    })
}

/// The last `n` lines node `i` logged, indented.
pub fn tail(tb: &Testbed, i: usize, n: usize) -> String {
    let log = tb.c.d(i).stderr();
    let lines: Vec<&str> = log.lines().collect();
    let from = lines.len().saturating_sub(n);
    lines[from..]
        .iter()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `{0=ID, 1=, ...}`: slots in short form.
pub fn show(slots: &BTreeMap<String, String>) -> String {
    let parts: Vec<String> = slots
        .iter()
        .map(|(p, id)| format!("{}={id}", p.trim_start_matches("/ctl/cal/")))
        .collect();
    format!("{{{}}}", parts.join(", "))
}

/// Writes `<dir>/<i>` through every CAL `i` of `healed` (each must be
/// accepted within [`PROBE_TIMEOUT`]), then checks that every live node
/// reaches the greatest rev written (within [`PROBE_TIMEOUT`]).
fn probe_writes(tb: &Testbed, healed: &Healed, dir: &str) -> Result<(), Problems> {
    let mut problems = Vec::new();
    let mut top = 0;
    for &i in &healed.cals {
        let path = format!("{dir}/{i}");
        let set = req(Verb::Set).path(&path).rev(-1).value(b"probe");
        match probe::call(tb.addr(i), set, PROBE_TIMEOUT) {
            Ok(r) if r.err_code.is_none() => top = top.max(r.rev.unwrap_or(0)),
            Ok(r) => problems.push((
                Check::CalWrite,
                Some(i),
                format!("SET {path} refused: {r:?}"),
            )),
            Err(e) => problems.push((Check::CalWrite, Some(i), format!("SET {path}: {e}"))),
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let deadline = Instant::now() + PROBE_TIMEOUT;
    for i in tb.live() {
        let reached = loop {
            match probe::rev(tb.addr(i)) {
                Ok(r) if r >= top => break Ok(()),
                Ok(r) if Instant::now() >= deadline => break Err(format!("at rev {r}")),
                Err(e) if Instant::now() >= deadline => break Err(e),
                _ => thread::sleep(Duration::from_millis(50)),
            }
        };
        if let Err(e) = reached {
            problems.push((
                Check::Heal,
                Some(i),
                format!("did not reach rev {top} (the CALs' probe writes): {e}"),
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}
