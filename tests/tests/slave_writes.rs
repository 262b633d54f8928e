//! Writes through a slave (docs/reference.md#writes-through-a-slave): the
//! client library, and so `doozer`, send a write that a slave refuses with
//! READONLY to a CAL of the cluster, keep reading on the slave, and find
//! another CAL when the one they wrote through is killed. `doozer bench`
//! loads slaves with reads and CALs with writes.

use bytes::Bytes;
use doozer::Client;
use doozer_tests::cluster::{get_at, Cluster};
use doozer_tests::*;

/// A 3-CAL cluster and a slave attached to CAL 1: the cluster and the
/// slave's index.
fn three_cals_and_a_slave() -> (Cluster, usize) {
    let mut c = Cluster::start(3, &[]);
    let s = c.attach(1, &[]);
    (c, s)
}

/// The rev `doozer set`/`add` printed.
fn printed_rev(out: &CmdOutput) -> i64 {
    let text = out.ok();
    text.trim()
        .parse()
        .unwrap_or_else(|e| panic!("doozer printed {text:?}: {e}"))
}

#[test]
fn doozer_set_del_and_nop_on_a_slave_go_through_a_cal() {
    let (mut c, s) = three_cals_and_a_slave();
    let slave = c.d(s);
    let uri = c.uri(s);
    let rev = printed_rev(&doozer_with(&[], &["-a", &uri, "set", "/x", "0"], b"0"));
    // The slave serves it at that rev, and so does every node.
    for i in 0..c.nodes.len() {
        assert_eq!(get_at(c.d(i), "/x", rev), (b"0".to_vec(), rev), "node {i}");
    }
    // The CAL's answers come back as they are: a rev mismatch is exit 1.
    let out = doozer(slave, &["add", "/x"], b"again");
    out.expect_code(1);
    assert!(out.stderr.contains("rev mismatch"), "{:?}", out.stderr);
    doozer(slave, &["nop"], b"").ok();
    assert_eq!(
        doozer(slave, &["del", "/x", &rev.to_string()], b"").ok(),
        ""
    );
    // A linearizable read on the slave (its NOP goes to a CAL, its GET at
    // the NOP's rev stays on the slave) sees the delete.
    let client = Client::connect(&c.uri(s)).unwrap();
    let read = client.get_linearizable("/x").unwrap();
    assert!(read.at > rev, "{read:?}");
    assert_eq!((read.body.len(), read.rev), (0, 0), "{read:?}");
    c.assert_consistent(&[]);
}

#[test]
fn the_library_writes_through_a_slave_and_another_cal_when_its_cal_dies() {
    let (mut c, s) = three_cals_and_a_slave();
    let slave_addr = c.d(s).addr().to_string();
    let cal_addrs: Vec<String> = (0..3).map(|i| c.d(i).addr().to_string()).collect();
    let client = Client::connect(&c.uri(s)).unwrap();
    let rev = client.set("/lib/x", 0, &b"one"[..]).unwrap();
    assert_eq!(
        client.get("/lib/x", Some(rev)).unwrap(),
        (Bytes::from("one"), rev)
    );
    // Reads stay on the slave; writes went to a CAL.
    assert_eq!(client.current_addr().as_deref(), Some(slave_addr.as_str()));
    let first = client.write_addr().expect("writes go to a CAL");
    let k = cal_addrs
        .iter()
        .position(|a| *a == first)
        .unwrap_or_else(|| panic!("writes go to {first}, not a CAL: {cal_addrs:?}"));

    c.kill(k);
    // The kernel closed the dead CAL's connection; once the client saw
    // that, the next write cannot go to it.
    poll_until(
        DEADLINE,
        "the client to see its CAL's connection close",
        || client.write_addr().is_none().then_some(()),
    );
    let rev2 = client.set("/lib/x", rev, &b"two"[..]).unwrap();
    let second = client.write_addr().expect("writes go to a CAL");
    assert!(
        second != first && cal_addrs.contains(&second),
        "writes go to {second} after {first} died: {cal_addrs:?}"
    );
    assert_eq!(
        client.get("/lib/x", Some(rev2)).unwrap(),
        (Bytes::from("two"), rev2)
    );
    client.del("/lib/x", rev2).unwrap();
    assert_eq!(client.current_addr().as_deref(), Some(slave_addr.as_str()));
    // The command too, after the kill.
    let rev3 = printed_rev(&doozer(c.d(s), &["set", "/cli/after", "0"], b"3"));
    assert_eq!(get_at(c.d(s), "/cli/after", rev3), (b"3".to_vec(), rev3));
    c.assert_consistent(&[]);
}

#[test]
fn bench_on_a_slave_reads_there_and_writes_on_the_cals() {
    let (c, s) = three_cals_and_a_slave();
    let opts = ["-n", "300", "-c", "6", "-k", "3", "-keys", "20"];
    let bench = |op: &str| {
        let mut args = vec!["bench", "-op", op];
        args.extend(opts);
        doozer(c.d(s), &args, b"")
    };
    let out = bench("set");
    let report = out.ok();
    assert!(report.contains("errors: 0"), "{report}");
    assert!(
        out.stderr.contains("writes go to the CALs"),
        "{}",
        out.stderr
    );
    // One report line per CAL, each with its share of the writes.
    for i in 0..3 {
        let line = format!("node {}: conns 1  ops ", c.d(i).addr());
        assert!(report.contains(&line), "no {line:?} in {report}");
    }
    // Get mode: the prefill writes through the CALs, the reads are the
    // slave's (its one address: no per-node lines).
    let report = bench("get").ok();
    assert!(report.starts_with("op: get"), "{report}");
    assert!(report.contains("errors: 0"), "{report}");
    assert!(!report.contains("node "), "{report}");
}
