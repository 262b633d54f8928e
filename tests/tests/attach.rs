//! Slaves (`-a`, docs/reference.md#attaching-a-slave): a node attaches to
//! a running node, copies its store, follows every change, serves reads,
//! answers writes with READONLY (which the CLI then sends to the CAL),
//! and attaches again when the node it follows goes away.
//! Every comparison is of whole stores (WALK of `/**`) at the same rev.

use std::time::Duration;

use doozer_proto::ErrCode;
use doozer_tests::*;

/// Every file of `d` at `rev` (path, rev, body), via WALK.
fn store_at(d: &Doozerd, rev: i64) -> Vec<(String, i64, Vec<u8>)> {
    d.raw().walk_all("/**", Some(rev))
}

/// Waits until `slave` has reached `rev` (a GET at `rev` answers once it
/// has), then compares both stores at that rev.
fn assert_same_store(cal: &Doozerd, slave: &Doozerd, rev: i64) {
    let r = slave.raw().get("/ctl/name", Some(rev));
    assert_eq!(r.err_code, None, "slave read at rev {rev}: {r:?}");
    let (a, b) = (store_at(cal, rev), store_at(slave, rev));
    assert!(!a.is_empty());
    assert_eq!(a, b, "stores differ at rev {rev}");
}

/// Waits until the slave is at the CAL's head (no writes meanwhile), then
/// compares both whole stores there.
fn assert_caught_up(cal: &Doozerd, slave: &Doozerd) {
    let head = poll_until(
        Duration::from_secs(10),
        "the slave to reach the CAL",
        || {
            let (a, b) = (cal.raw().rev(), slave.raw().rev());
            (a == b).then_some(a)
        },
    );
    assert_same_store(cal, slave, head);
}

fn start_slave(cal: &Doozerd, extra: &[&str]) -> Doozerd {
    let a = cal.addr().to_string();
    let mut args = vec!["-a", a.as_str()];
    args.extend_from_slice(extra);
    Doozerd::start(&args)
}

#[test]
fn a_slave_copies_follows_serves_reads_and_refuses_writes() {
    let cal = Doozerd::start(&[]);
    let mut c = cal.raw();
    for i in 0..20 {
        c.must_set(&format!("/app/f{}", i % 5), -1, format!("v{i}").as_bytes());
    }
    let slave = start_slave(&cal, &[]);

    // The slave registered its node files through the CAL, and is no CAL.
    let slave_id = doozer(&slave, &["self"], b"").ok().trim().to_string();
    let addr = doozer(&cal, &["get", &format!("/ctl/node/{slave_id}/addr")], b"").ok();
    assert_eq!(addr, slave.addr().to_string());
    let cals = doozer(&cal, &["get", "/ctl/cal/0"], b"").ok();
    assert_ne!(cals, slave_id);

    // A write on the CAL is readable on the slave once it reaches that rev.
    let rev = c.must_set("/app/new", 0, b"fresh");
    let r = slave.raw().get("/app/new", Some(rev));
    assert_eq!(r.value.as_deref(), Some(&b"fresh"[..]), "{r:?}");
    assert_same_store(&cal, &slave, rev);

    // A WAIT on the slave sees a later change made on the CAL.
    let mut w = slave.raw();
    let from = rev + 1;
    let next = c.must_set("/app/later", -1, b"x");
    let ev = w.wait("/app/later", from);
    assert_eq!(
        (ev.path.as_deref(), ev.rev),
        (Some("/app/later"), Some(next))
    );

    // Writes on the slave: READONLY, and nothing changed anywhere.
    let r = slave.raw().set("/app/x", -1, b"no");
    assert_eq!(r.err_code, Some(ErrCode::Readonly as i32), "{r:?}");
    assert_eq!(c.get("/app/x", None).rev, Some(0));
    // The CLI sends the write on to the CAL (docs/reference.md#writes-through-a-slave).
    let out = doozer(&slave, &["set", "/app/x", "0"], b"yes").ok();
    let rev: i64 = out.trim().parse().expect("set prints the new rev");
    assert_eq!(c.must_get("/app/x"), (b"yes".to_vec(), rev));
}

#[test]
fn a_copy_never_fails_with_too_late_however_small_the_history() {
    let cal = Doozerd::start(&["-hist", "2"]);
    let mut c = cal.raw();
    for i in 0..300 {
        c.must_set(&format!("/busy/f{}", i % 50), -1, format!("{i}").as_bytes());
    }
    let slave = start_slave(&cal, &["-hist", "2"]);
    // Keep writing while comparing; then compare at the last rev.
    let mut last = 0;
    for i in 0..50 {
        last = c.must_set(&format!("/busy/g{i}"), -1, b"more");
    }
    let r = slave.raw().get("/busy/g49", Some(last));
    assert_eq!(r.value.as_deref(), Some(&b"more"[..]), "{r:?}");
    // -hist 2: only the head is sure to be readable on both.
    assert_caught_up(&cal, &slave);
}

/// Runs a doozerd that attaches to `member` and should exit; checks the
/// failure is exactly one line on stderr and returns it.
fn failed_attach(member: &str) -> String {
    let listen = format!("127.0.0.1:{}", free_port());
    let out = doozerd_run(&["-l", &listen, "-w", "false", "-a", member]);
    assert_ne!(out.code, 0);
    let err = out.stderr.trim().to_string();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

#[test]
fn attaching_to_another_cluster_is_a_one_line_error() {
    let cal = Doozerd::start(&["-c", "prod"]);
    let err = failed_attach(&cal.addr().to_string());
    assert!(
        err.contains("\"prod\"") && err.contains("\"local\""),
        "{err}"
    );
    // an unreachable member
    let dead = format!("127.0.0.1:{}", free_port());
    let err = failed_attach(&dead);
    assert!(err.contains(&dead), "{err}");
}

#[test]
fn a_slave_attaches_again_when_its_node_dies() {
    let mut cal = Doozerd::start(&[]);
    let port = cal.port();
    cal.raw().must_set("/before", 0, b"1");
    let slave = start_slave(&cal, &[]);
    cal.kill();
    // The slave keeps serving what it has.
    assert_eq!(slave.raw().must_get("/before").0, b"1");
    // A node comes back on the same address (a fresh single-node cluster
    // of the same name): the slave attaches to it again and copies it.
    let cal = Doozerd::builder().port(port).start();
    let rev = cal.raw().must_set("/after", 0, b"2");
    let r = poll_until(
        Duration::from_secs(15),
        "the slave to follow the new node",
        || {
            let r = slave.raw().get("/after", None);
            (r.value.as_deref() == Some(&b"2"[..])).then_some(r)
        },
    );
    assert_eq!(r.rev, Some(rev));
    assert_caught_up(&cal, &slave);
    assert!(
        slave.stderr().contains("attaching again"),
        "{}",
        slave.stderr()
    );
}
