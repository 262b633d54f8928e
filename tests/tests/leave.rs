//! Graceful leave (docs/cluster.md, "Leaving gracefully"): SIGTERM on a
//! CAL empties its slot before the process exits 0, with no kick; SIGTERM
//! on a slave, or SIGINT on a lone CAL, exits 0 at once.

use std::process::Command;

use doozer_tests::cluster::{Cluster, CLUSTER_DEADLINE};
use doozer_tests::*;

/// Sends `signal` to `pid`, a process this test started.
fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args(["-s", signal, &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -s {signal} {pid}");
}

/// Waits for node `d` to exit by itself; its exit code.
fn exit_code(d: &mut Doozerd) -> i32 {
    let status = poll_until(CLUSTER_DEADLINE, "the node to exit", || d.try_wait());
    status.code().unwrap_or(-1)
}

/// A CAL of three told to stop (SIGTERM) empties its own slot, then exits
/// 0; the other two go on taking writes, and nobody was kicked.
#[test]
fn a_cal_given_sigterm_empties_its_slot_and_exits_0() {
    let mut c = Cluster::start(3, &[]);
    let rev = c.set(0, "/before", 0, b"1");
    let pid = c.d(2).pid();
    signal(pid, "TERM");
    let code = exit_code(&mut c.nodes[2].d);
    assert_eq!(code, 0, "{}", c.d(2).stderr());
    let err = c.d(2).stderr();
    assert!(err.contains("leaving: emptying /ctl/cal/2"), "{err}");
    assert!(err.contains("left consensus (its slot is empty)"), "{err}");
    c.nodes[2].state = doozer_tests::cluster::State::Killed;
    // The slot is empty, as the node left it (not kicked: its node files
    // are still there).
    let slots = c.slots(0);
    assert_eq!(slots.get("/ctl/cal/2").map(String::as_str), Some(""));
    let id = c.id(2).to_string();
    let (addr, _) = c.d(0).raw().must_get(&format!("/ctl/node/{id}/addr"));
    assert!(!addr.is_empty(), "a leaving node is not kicked");
    // The others go on.
    let after = c.set(1, "/after", 0, b"2");
    assert!(after > rev);
    for i in 0..2 {
        assert!(
            !c.d(i).stderr().contains("kicking"),
            "node {i}: {}",
            c.d(i).stderr()
        );
    }
}

/// A slave given SIGTERM, and a lone CAL given SIGINT, have nothing to
/// hand over: they exit 0 at once.
#[test]
fn a_slave_and_a_lone_cal_exit_at_once() {
    let mut c = Cluster::seed(&[]);
    let s = c.attach(0, &[]);
    signal(c.d(s).pid(), "TERM");
    assert_eq!(exit_code(&mut c.nodes[s].d), 0, "{}", c.d(s).stderr());
    assert!(c.d(s).stderr().contains("signal 15: stopping"));
    signal(c.d(0).pid(), "INT");
    assert_eq!(exit_code(&mut c.nodes[0].d), 0, "{}", c.d(0).stderr());
    assert!(c.d(0).stderr().contains("signal 2: stopping"));
}

/// One CAL of two leaving: the other cannot decide the last seqns of the
/// old set alone, so the leaver stays until it left consensus and is no
/// longer needed; then the other CAL, alone, goes on taking writes.
#[test]
fn one_cal_of_two_leaves_and_the_other_goes_on_alone() {
    let mut c = Cluster::start(2, &[]);
    c.set(0, "/before", 0, b"1");
    signal(c.d(1).pid(), "TERM");
    assert_eq!(exit_code(&mut c.nodes[1].d), 0, "{}", c.d(1).stderr());
    let err = c.d(1).stderr();
    assert!(err.contains("left consensus (its slot is empty)"), "{err}");
    c.nodes[1].state = doozer_tests::cluster::State::Killed;
    let slots = c.slots(0);
    assert_eq!(slots.get("/ctl/cal/1").map(String::as_str), Some(""));
    c.set(0, "/after", 0, b"2");
}
