//! One nemesis round on a [`Testbed`]: start watchers on every live node
//! and workload clients on every live node (two more on CALs), inject one
//! [`Fault`], hold it, heal it, and check everything
//! ([`crate::nemesis`] lists the checks). The result is a [`RoundReport`]
//! with the figures and every [`Anomaly`] found; nothing here panics on a
//! failed check.

use std::thread;
use std::time::{Duration, Instant};

use super::anomaly::{truncate, Anomaly, Check};
use super::checks::{check_kicks, check_logs, check_stores, kicks, lines_with, LogMarks};
use super::fault::{heal, inject, Active, Expect, Fault};
use super::heal::{converge, Healed};
use super::probe::{self, Change};
use super::testbed::Testbed;
use super::watchers::{wait_done, Watcher};
use super::workload::Load;
use crate::cluster::{history_summary, State, CLUSTER_DEADLINE};
use crate::history::{check_history, format_history, Call, Op, Outcome, Recorder};
use crate::{req, RequestExt, Verb};

/// How long the cluster has to heal, and any other "eventually" of a
/// round (a bound for failure, not a speed requirement: debug builds on a
/// loaded 2-core machine).
pub const HEAL_DEADLINE: Duration = Duration::from_secs(20);

/// What one round does.
#[derive(Debug, Clone)]
pub struct RoundCfg {
    /// The round number (its files are under `/nem/r<round>/`).
    pub round: u32,
    /// Seeds the workload clients' choices.
    pub seed: u64,
    /// The fault.
    pub fault: Fault,
}

/// What one round found.
#[derive(Debug, Clone, Default)]
pub struct RoundReport {
    /// The round number.
    pub round: u32,
    /// The fault, described.
    pub fault: String,
    /// The fault's kind ([`Fault::kind`]).
    pub kind: &'static str,
    /// Operations recorded, and by outcome ([`history_summary`]).
    pub ops: usize,
    /// Operations with a definite outcome (checked against the model).
    pub ops_checked: usize,
    /// Changes seen by the watchers, all checked.
    pub watched: usize,
    /// Times a watcher started over after `TOO_LATE` (its node copied
    /// the store).
    pub watch_restarts: usize,
    /// CALs removed from their slots during the round (`id@slot@rev`).
    pub kicks: Vec<String>,
    /// "kicking CAL" lines the nodes logged during the round.
    pub kick_attempts: usize,
    /// Seconds the fault was held (from its injection to its heal).
    pub fault_secs: f64,
    /// Seconds from the end of the fault until the cluster had healed.
    pub heal_secs: Option<f64>,
    /// Everything that failed.
    pub anomalies: Vec<Anomaly>,
    /// Where every node's log was saved, when something failed.
    pub logs: Option<std::path::PathBuf>,
}

/// How long the end-of-round checks wait for a node once the cluster
/// failed to heal within [`HEAL_DEADLINE`] (it was given its chance).
const SHORT: Duration = Duration::from_secs(5);

/// The round's moving parts, from its start to its end.
struct Started {
    prefix: String,
    from: i64,
    t0: Instant,
    round: u32,
    marks: LogMarks,
    /// Marks taken when the fault ended.
    ended: LogMarks,
    watchers: Vec<Watcher>,
    cals: Vec<usize>,
}

/// Runs one round; see the module doc.
pub fn run_round(tb: &mut Testbed, cfg: &RoundCfg) -> RoundReport {
    let mut rep = RoundReport {
        round: cfg.round,
        fault: cfg.fault.to_string(),
        ..RoundReport::default()
    };
    let (s, load) = begin(tb, cfg, &mut rep);
    let expect = cfg.fault.expect(tb.timeout, &s.cals);
    rep.kind = cfg.fault.kind(tb.timeout, &s.cals);
    eprintln!("nemesis round {}: {} [{}]", cfg.round, rep.fault, rep.kind);
    let injected = Instant::now();
    let active = inject(tb, &cfg.fault);
    hold(tb, &active, &expect, &load, &mut rep);
    rep.anomalies.extend(heal(tb, &active));
    rep.fault_secs = injected.elapsed().as_secs_f64();
    let healed_at = Instant::now();
    let s = Started {
        ended: LogMarks::now(tb),
        ..s
    };
    phase(&s, "healed the fault");
    let healed = after_heal(tb, &s, &load, &mut rep);
    if let Some((h, _)) = &healed {
        rep.heal_secs = Some(h.at.duration_since(healed_at).as_secs_f64());
    }
    finish(tb, s, load, &expect, healed, &mut rep);
    if !rep.anomalies.is_empty() {
        rep.logs = save_logs(
            tb,
            &format!("{}-r{}-{}", std::process::id(), cfg.round, rep.kind),
        );
    }
    rep
}

/// Saves every node's stderr as `node-<i>.log` under
/// `<target>/debug/nemesis-logs/<name>/`, with an `index` of the nodes;
/// the directory, if it could be written.
pub fn save_logs(tb: &Testbed, name: &str) -> Option<std::path::PathBuf> {
    let dir = crate::bin_dir().join("nemesis-logs").join(name);
    std::fs::create_dir_all(&dir).ok()?;
    let mut index = String::new();
    for i in 0..tb.c.nodes.len() {
        index.push_str(&format!("{} {:?}\n", tb.desc(i), tb.c.nodes[i].state));
        std::fs::write(dir.join(format!("node-{i}.log")), tb.c.d(i).stderr()).ok()?;
    }
    std::fs::write(dir.join("index"), index).ok()?;
    Some(dir)
}

/// Logs how far the round got (shown with --nocapture or a failure).
fn phase(s: &Started, what: &str) {
    eprintln!(
        "nemesis round {}: {what} at {:.1} s",
        s.round,
        s.t0.elapsed().as_secs_f64()
    );
}

/// Starts watchers and clients, and waits for the first writes.
fn begin(tb: &Testbed, cfg: &RoundCfg, rep: &mut RoundReport) -> (Started, Load) {
    let cals = tb.cals();
    let live = tb.live();
    let prefix = format!("/nem/r{}", cfg.round);
    let paths: Vec<String> = (0..4).map(|k| format!("{prefix}/f{k}")).collect();
    let from = probe::rev(tb.addr(cals[0])).unwrap_or_else(|e| panic!("REV on a CAL: {e}")) + 1;
    let marks = LogMarks::now(tb);
    let glob = format!("{prefix}/**");
    let stop = format!("{prefix}/stop");
    let watchers = live
        .iter()
        .map(|&i| Watcher::start(i, tb.desc(i), &tb.c.d(i).uri(), &glob, from, &stop))
        .collect();
    let mut targets: Vec<usize> = live.clone();
    targets.extend(cals.iter().take(2));
    let targets: Vec<_> = targets.iter().map(|&i| (tb.desc(i), tb.addr(i))).collect();
    let load = Load::start(&Recorder::new(), &targets, &paths, cfg.seed);
    if !load.progressed(10, HEAL_DEADLINE) {
        rep.anomalies.push(Anomaly::new(
            Check::Progress,
            format!("fewer than 10 writes succeeded in {HEAL_DEADLINE:?} before the fault"),
        ));
    }
    let s = Started {
        prefix,
        from,
        t0: Instant::now(),
        round: cfg.round,
        ended: marks.clone(),
        marks,
        watchers,
        cals,
    };
    phase(&s, "workload running");
    (s, load)
}

/// Holds the fault for its duration (flapping a flap); for a fault that
/// must kick, also until the kick shows on a node of the majority; and
/// with a majority up, checks that writes go on.
fn hold(tb: &Testbed, active: &Active, e: &Expect, load: &Load, rep: &mut RoundReport) {
    let acks = load.acked();
    match &active.fault {
        Fault::Flap {
            down, up, times, ..
        } => {
            for k in 0..*times {
                if k > 0 {
                    tb.net.cut(&active.links);
                }
                thread::sleep(Duration::from_secs_f64(*down));
                tb.net.heal(&active.links);
                thread::sleep(Duration::from_secs_f64(*up));
            }
        }
        f => thread::sleep(Duration::from_secs_f64(f.secs())),
    }
    if !e.must_kick.is_empty() {
        wait_kicked(tb, e);
    }
    let long = active.fault.secs() >= tb.timeout;
    if e.majority_up && long && load.acked() < acks + 5 && !load.progressed(5, HEAL_DEADLINE) {
        rep.anomalies.push(Anomaly::new(
            Check::Progress,
            format!(
                "writes stopped during the fault ({}) though a majority of CALs was up: {} in all",
                active.fault,
                load.acked() - acks
            ),
        ));
    }
}

/// Waits (up to [`CLUSTER_DEADLINE`]) until no slot names a node of
/// `e.must_kick`, as a live node outside the fault sees it. Not a check:
/// the kick check at the end reports a kick that never came.
fn wait_kicked(tb: &Testbed, e: &Expect) {
    let Some(&via) = tb.live().iter().find(|i| !e.faulted.contains(i)) else {
        return;
    };
    let ids: Vec<String> = e
        .must_kick
        .iter()
        .map(|&n| tb.c.id(n).to_string())
        .collect();
    let deadline = Instant::now() + CLUSTER_DEADLINE;
    while Instant::now() < deadline {
        if let Ok(slots) = tb.slots_via(via) {
            if !slots.values().any(|v| ids.contains(v)) {
                return;
            }
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// After the heal: converge (writing through every CAL), then see the
/// clients' writes go on. Returns the healed state and the log marks taken
/// when it was reached.
fn after_heal(
    tb: &Testbed,
    s: &Started,
    load: &Load,
    rep: &mut RoundReport,
) -> Option<(Healed, LogMarks)> {
    let healed = match converge(tb, &format!("{}/probe", s.prefix), HEAL_DEADLINE) {
        Ok(h) => h,
        Err(a) => {
            rep.anomalies.extend(a);
            return None;
        }
    };
    let marks = LogMarks::now(tb);
    if !load.progressed(10, HEAL_DEADLINE) {
        rep.anomalies.push(Anomaly::new(
            Check::Progress,
            format!("fewer than 10 writes succeeded in {HEAL_DEADLINE:?} after the heal"),
        ));
    }
    Some((healed, marks))
}

/// Stops the clients and watchers and runs every end-of-round check.
fn finish(
    tb: &mut Testbed,
    s: Started,
    load: Load,
    e: &Expect,
    healed: Option<(Healed, LogMarks)>,
    rep: &mut RoundReport,
) {
    let patience = if healed.is_some() {
        HEAL_DEADLINE
    } else {
        SHORT
    };
    let (history, a) = load.finish();
    rep.anomalies.extend(a);
    rep.ops = history.len();
    rep.ops_checked = history.iter().filter(|op| op.result.is_some()).count();
    let kinds = history_summary(&history);
    if kinds[0].1 == 0 {
        rep.anomalies.push(Anomaly::new(
            Check::Progress,
            format!("no SET succeeded: {kinds:?}"),
        ));
    }
    check_ops(&history, s.from, rep);
    phase(&s, "history checked");
    // CALs first: they keep the whole history of the round; without a
    // heal, the nodes furthest ahead first.
    let mut refs: Vec<usize> = healed
        .as_ref()
        .map(|(h, _)| h.cals.clone())
        .unwrap_or_default();
    let mut live = tb.live();
    live.sort_by_key(|&i| std::cmp::Reverse(probe::rev(tb.addr(i)).unwrap_or(0)));
    refs.extend(live);
    let stop = stop_rev(tb, &refs, &s.prefix, patience);
    match stop {
        Some(to) => check_watchers(tb, &s, &refs, to, &history, patience, rep),
        None => rep.anomalies.push(Anomaly::new(
            Check::Watch,
            "no CAL accepted the stop write: watchers not checked",
        )),
    }
    phase(&s, "watchers checked");
    rep.anomalies.extend(check_stores(tb, patience));
    let to = stop.unwrap_or_else(|| probe::rev(tb.addr(refs[0])).unwrap_or(s.from));
    match kicks(tb, &refs, s.from, to) {
        Ok(k) => {
            rep.anomalies.extend(check_kicks(tb, e, &rep.fault, &k));
            rep.kicks = k
                .iter()
                .map(|k| format!("{}@{}@{}", k.id, k.slot, k.rev))
                .collect();
        }
        Err(err) => rep.anomalies.push(Anomaly::new(
            Check::HealthyKicked,
            format!("cannot read the slot history: {err}"),
        )),
    }
    phase(&s, "stores and kicks checked");
    // Give a kick loop time to show: twice -timeout after the heal.
    if let Some((h, _)) = &healed {
        let window = Duration::from_secs_f64(2.0 * tb.timeout);
        thread::sleep(window.saturating_sub(h.at.elapsed()));
    }
    rep.kick_attempts = (0..tb.c.nodes.len())
        .map(|i| lines_with(&s.marks.since(tb, i), "kicking CAL").len())
        .sum();
    let healed_marks = healed.as_ref().map(|(_, m)| m);
    rep.anomalies
        .extend(check_logs(tb, &s.marks, &s.ended, healed_marks));
}

/// The history checks: linearizable writes and linearizable reads,
/// monotonic plain reads.
fn check_ops(history: &[Op], round_from: i64, rep: &mut RoundReport) {
    if let Err(v) = check_history(history) {
        let path = std::env::temp_dir().join(format!(
            "doozer-nemesis-{}-r{}-from{round_from}.history",
            std::process::id(),
            rep.round
        ));
        let saved = std::fs::write(&path, format_history(history)).is_ok();
        rep.anomalies.push(Anomaly::new(
            Check::History,
            format!(
                "{}{}",
                truncate(&v.to_string(), 6000),
                if saved {
                    format!("\n(whole history in {})", path.display())
                } else {
                    String::new()
                }
            ),
        ));
    }
}

/// Writes the round's stop file through the first CAL of `refs` that
/// accepts it; its rev.
fn stop_rev(tb: &Testbed, refs: &[usize], prefix: &str, patience: Duration) -> Option<i64> {
    let path = format!("{prefix}/stop");
    refs.iter().find_map(|&i| {
        let set = req(Verb::Set).path(&path).rev(-1).value(b"stop");
        let r = probe::call(tb.addr(i), set, patience).ok()?;
        if r.err_code.is_none() {
            r.rev
        } else {
            None
        }
    })
}

/// Watchers and acknowledged SETs against the history of the round as the
/// first node of `refs` that keeps it has it.
fn check_watchers(
    tb: &Testbed,
    s: &Started,
    refs: &[usize],
    to: i64,
    history: &[Op],
    patience: Duration,
    rep: &mut RoundReport,
) {
    let glob = format!("{}/**", s.prefix);
    let running = |i: usize| tb.c.nodes[i].state == State::Running;
    wait_done(&s.watchers, running, patience);
    let mut reference: Option<(usize, Vec<Change>)> = None;
    let mut errors = Vec::new();
    for &n in refs {
        match probe::changes(tb.addr(n), &glob, s.from, to) {
            Ok(c) => {
                reference = Some((n, c));
                break;
            }
            Err(e) => errors.push(format!("{}: {e}", tb.desc(n))),
        }
    }
    let Some((_, reference)) = reference else {
        rep.anomalies.push(Anomaly::new(
            Check::Watch,
            format!(
                "no node keeps the round's history from rev {}: {errors:?}",
                s.from
            ),
        ));
        return;
    };
    for w in &s.watchers {
        rep.watched += w.count();
        rep.watch_restarts += w.restarts();
        rep.anomalies.extend(w.check(&reference, running(w.node)));
    }
    for op in history {
        if let (Call::Set { path, body, .. }, Some(Outcome::Rev(at))) = (&op.call, &op.result) {
            let found = reference.iter().find(|c| c.rev == *at);
            if found.is_none_or(|c| c.path != *path || c.body != *body || c.flags & 4 == 0) {
                rep.anomalies.push(Anomaly::new(
                    Check::LostWrite,
                    format!(
                        "acknowledged SET {path} {:?} at rev {at}; the history has {}",
                        String::from_utf8_lossy(body),
                        found.map_or("nothing matching there".to_string(), |c| c.to_string())
                    ),
                ));
            }
        }
    }
}
