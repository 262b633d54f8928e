//! Graceful leave and rolling restarts under a continuous writer
//! (docs/cluster.md, "Leaving gracefully"):
//!
//! - SIGTERM on a CAL of three, with a spare slave, while a client writes
//!   through that very CAL: the CAL exits 0, the slave takes its slot and
//!   takes writes, no write of the client fails, and every acknowledged
//!   write is on every node.
//! - A rolling restart of all three CALs, one at a time, each replaced by
//!   a new node on its address attaching with `-a` and taking the freed
//!   slot, `doozer status` exiting 0 between steps: three writable CALs at
//!   the end, no write failed, every acknowledged write on every node.
//! - The same with data directories (`-d DIR`): each CAL started again
//!   on its address and DIR comes back as the same node (same id) and
//!   takes its freed slot again.
//!
//! What "fails" means is in `doozer_tests::rolling`: any error the
//! library's `set` returns; the writer never retries by itself. No timing
//! is asserted (the longest gap is measured by `scripts/bench-rolling`).

use doozer_tests::cluster::{node_id, Cluster, State, HIST};
use doozer_tests::rolling::{
    assert_all_present, restart_cal, status, terminate, wait_healthy, Writer, WriterLog,
};
use doozer_tests::{Doozerd, TempDir};

/// Panics, listing them, unless no write of `log` failed.
fn assert_no_failures(log: &WriterLog) {
    assert!(
        log.failed.is_empty(),
        "{} of {} writes failed: {:#?}",
        log.failed.len(),
        log.failed.len() + log.acked.len(),
        log.failed
    );
}

/// Waits until node `i` reads `true` from its own `writable` file and a
/// SET sent to it directly (no library, no redirect) succeeds.
fn assert_takes_writes(c: &mut Cluster, i: usize, path: &str) {
    let id = c.id(i).to_string();
    let (w, _) = c.d(i).raw().must_get(&format!("/ctl/node/{id}/writable"));
    assert_eq!(w, b"true", "node {i} ({id}) writable");
    let rev = c.set(i, path, 0, b"direct");
    assert!(rev > 0);
}

#[test]
fn sigterm_on_the_writers_cal_loses_no_write() {
    let mut c = Cluster::start(3, &[]);
    // The spare follows the CAL that leaves: its stream ends with it, and
    // it claims the freed slot through the leaver or another CAL.
    let spare = c.attach(2, &[]);
    // The writer reads from, and writes through, CAL 2: the one that
    // leaves. Its URI names the others too, as an application's would.
    let uri = format!(
        "doozer:?ca={}&ca={}&ca={}",
        c.d(2).addr(),
        c.d(0).addr(),
        c.d(1).addr()
    );
    let w = Writer::start(&uri, "/leave");
    w.wait_progress(20, "writes before the leave");

    let code = terminate(&mut c, 2);
    assert_eq!(code, 0, "{}", c.d(2).stderr());
    let err = c.d(2).stderr();
    assert!(err.contains("left consensus (its slot is empty)"), "{err}");

    // The spare takes slot 2 and takes writes.
    let slot = c.wait_cal(spare);
    assert_eq!(slot, "/ctl/cal/2");
    assert_takes_writes(&mut c, spare, "/leave/direct");
    w.wait_progress(20, "writes after the spare took the slot");
    let log = w.finish();
    assert_no_failures(&log);
    assert_eq!(c.slots(0).get("/ctl/cal/2"), Some(&c.id(spare).to_string()));
    assert_all_present(&mut c, &log);
    eprintln!("{} writes acknowledged, none failed", log.acked.len());
}

#[test]
fn a_rolling_restart_of_every_cal_with_replacements_loses_no_write() {
    let mut c = Cluster::start(3, &[]);
    let addrs: Vec<String> = (0..3).map(|i| c.d(i).addr().to_string()).collect();
    // The addresses stay the cluster's: each replacement listens on the
    // address of the CAL it replaces, as a node restarted with the same
    // flags does.
    let uri = format!("doozer:?ca={}&ca={}&ca={}", addrs[0], addrs[1], addrs[2]);
    let w = Writer::start(&uri, "/rolling");
    w.wait_progress(20, "writes before the restarts");
    wait_healthy(&uri);

    let mut cals = [0, 1, 2];
    for k in 0..3 {
        let old = cals[k];
        // Attach to a CAL that stays.
        let to = cals[(k + 1) % 3];
        let (new, step) = restart_cal(&mut c, old, to, &uri);
        // Shown with a failure (or --nocapture): where the time went.
        eprintln!(
            "CAL {k}: exited {:?} after SIGTERM, replacement answering {:?} later, \
             writable {:?} later, status 0 {:?} later",
            step.exited - step.term,
            step.started - step.exited,
            step.writable - step.started,
            step.healthy - step.writable
        );
        assert_eq!(c.d(new).addr().to_string(), addrs[k]);
        cals[k] = new;
        w.wait_progress(10, &format!("writes after CAL {k} was replaced"));
    }

    // Three writable CALs, the replacements, in the three slots.
    let slots = c.slots(cals[0]);
    for (k, &i) in cals.iter().enumerate() {
        assert_eq!(
            slots.get(&format!("/ctl/cal/{k}")),
            Some(&c.id(i).to_string()),
            "{slots:?}"
        );
        assert_takes_writes(&mut c, i, &format!("/rolling/direct{k}"));
    }
    let out = status(&uri);
    assert_eq!(out.code, 0, "{out:?}");
    let log = w.finish();
    assert_no_failures(&log);
    assert_all_present(&mut c, &log);
    eprintln!("{} writes acknowledged, none failed", log.acked.len());
}

#[test]
fn a_rolling_restart_with_data_directories_loses_no_write() {
    let dirs: Vec<TempDir> = (0..3).map(|_| TempDir::new("rolling-d")).collect();
    let dir = |i: usize| {
        dirs[i]
            .path()
            .to_str()
            .expect("utf-8 temp path")
            .to_string()
    };
    let seed = Doozerd::builder()
        .args(["-hist", HIST, "-d", &dir(0)])
        .start();
    let mut c = Cluster::adopt(vec![seed], &[]);
    for slot in 1..3 {
        let i = c.attach(0, &["-d", &dir(slot)]);
        c.add_slot(0, slot);
        c.wait_cal(i);
    }
    let ids: Vec<String> = (0..3).map(|i| c.id(i).to_string()).collect();
    let addrs: Vec<String> = (0..3).map(|i| c.d(i).addr().to_string()).collect();
    let uri = format!("doozer:?ca={}&ca={}&ca={}", addrs[0], addrs[1], addrs[2]);
    let w = Writer::start(&uri, "/rolling-d");
    w.wait_progress(20, "writes before the restarts");
    wait_healthy(&uri);

    for k in 0..3 {
        let port = c.d(k).port();
        let code = terminate(&mut c, k);
        assert_eq!(code, 0, "CAL {k} after SIGTERM:\n{}", c.d(k).stderr());
        // The same flags and DIR (and -a a CAL that stays, which the
        // seed was not started with).
        let to = addrs[(k + 1) % 3].clone();
        c.nodes[k].d = Doozerd::builder()
            .args(["-hist", HIST, "-d", &dir(k), "-a", &to])
            .port(port)
            .start();
        c.nodes[k].state = State::Running;
        assert_eq!(node_id(c.d(k)), ids[k], "CAL {k} kept its id");
        c.wait_cal(k);
        wait_healthy(&uri);
        w.wait_progress(10, &format!("writes after CAL {k} came back"));
    }

    // The same three nodes fill the three slots, each writable.
    let slots = c.slots(0);
    let mut held: Vec<&String> = slots.values().collect();
    held.sort();
    let mut want: Vec<&String> = ids.iter().collect();
    want.sort();
    assert_eq!(held, want, "{slots:?}");
    for k in 0..3 {
        assert_takes_writes(&mut c, k, &format!("/rolling-d/direct{k}"));
    }
    let log = w.finish();
    assert_no_failures(&log);
    assert_all_present(&mut c, &log);
    eprintln!("{} writes acknowledged, none failed", log.acked.len());
}
