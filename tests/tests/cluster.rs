//! The cluster end to end (docs/reference.md#consensus and
//! #cluster-membership): real doozerd processes on 127.0.0.1 agreeing
//! through multi-Paxos. Covered: the operator's flow (seed, `-a` slaves,
//! empty `/ctl/cal/N` slots made with the `doozer` CLI, promotion); a write
//! on any CAL readable on every node at its rev; READONLY on slaves; the
//! fire drill (a SIGSTOPped CAL is kicked after `-timeout` and a new node
//! takes its slot while clients keep writing); a slave re-attaching when
//! its CAL is SIGKILLed; a five-CAL cluster with two and then three CALs
//! stopped; 32 KiB bodies; a linearizable read through a CAL that was
//! stopped while the others wrote; a CAL stopped past what the others keep
//! for it, which copies the store and rejoins; writes in a row with every
//! node busy-polling (`-spin`).
//!
//! After every scenario the running nodes must hold identical stores at one
//! explicit rev, and every acknowledged SET must read back at its rev on
//! every node ([`Cluster::assert_consistent`]). The fault scenarios record
//! every client operation and check the history: SETs, DELs and
//! linearizable reads linearizable, plain reads monotonic per client.
//!
//! Revs move by themselves (each CAL writes its `applied` file every
//! `-pulse`), so no test assumes a fixed rev; every read that must see a
//! write is a GET at the write's rev, which the node answers once it has
//! reached that rev.

use std::collections::BTreeMap;
use std::time::Duration;

use doozer_proto::ErrCode;
use doozer_tests::browser::http_get;
use doozer_tests::cluster::{
    assert_covers_every_kind, assert_history_ok, call_timeout, get_at, recv_tag_timeout, Cluster,
    Workload, CLUSTER_DEADLINE,
};
use doozer_tests::history::{Call, Outcome, Recorder};
use doozer_tests::prometheus;
use doozer_tests::*;

/// Waits until node `via` shows exactly `want` as its CAL slots (a node may
/// trail the one that answered a promotion by a few revs).
fn wait_slots(c: &Cluster, via: usize, want: &BTreeMap<String, String>) {
    poll_until(
        CLUSTER_DEADLINE,
        &format!("node {via} to show the slots {want:?}"),
        || (c.slots(via) == *want).then_some(()),
    );
}

/// A slot map from `(path, body)` pairs.
fn slot_map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(p, b)| (p.to_string(), b.to_string()))
        .collect()
}

/// (a) Promotion (docs/reference.md#promotion), as an operator does it: a
/// seed, two slaves attached with `-a`, then two empty slots created with
/// `doozer set /ctl/cal/N 0` and empty stdin. Both slaves take a slot, say
/// so in their `writable` file, and accept writes sent to them directly.
#[test]
fn operator_slots_turn_two_slaves_into_cals() {
    let mut c = Cluster::seed(&[]);
    let s1 = c.attach(0, &[]);
    let s2 = c.attach(0, &[]);
    let seed_id = c.id(0).to_string();
    // With no free slot they stay slaves.
    for i in [s1, s2] {
        let r = c.d(i).raw().set("/a/early", -1, b"no");
        assert_err(&r, ErrCode::Readonly);
    }
    assert_eq!(c.slots(0), slot_map(&[("/ctl/cal/0", &seed_id)]));

    let r1 = c.add_slot(0, 1);
    let r2 = c.add_slot(0, 2);
    assert!(r2 > r1, "slot revs {r1} then {r2}");
    let p1 = c.wait_cal(s1);
    let p2 = c.wait_cal(s2);
    assert_ne!(p1, p2, "two nodes in one slot");
    let want = slot_map(&[("/ctl/cal/0", &seed_id), (&p1, c.id(s1)), (&p2, c.id(s2))]);
    assert_eq!(
        want.keys().collect::<Vec<_>>(),
        ["/ctl/cal/0", "/ctl/cal/1", "/ctl/cal/2"]
    );
    for i in 0..3 {
        wait_slots(&c, i, &want);
    }
    // Every node's writable file reads `true` (on the seed, which saw the
    // promotions go through consensus).
    for i in 0..3 {
        let path = format!("/ctl/node/{}/writable", c.id(i));
        poll_until(CLUSTER_DEADLINE, &format!("{path} = true"), || {
            (c.d(0).raw().must_get(&path).0 == b"true").then_some(())
        });
    }
    // A SET sent directly to each CAL succeeds.
    for i in 0..3 {
        c.set(
            i,
            &format!("/a/from{i}"),
            0,
            format!("written on {i}").as_bytes(),
        );
    }
    c.assert_consistent(&[]);
}

/// (b) A write on any CAL is readable on every node (CALs and a slave)
/// once that node reaches the write's rev, and a WAIT parked on each node
/// before the writes reports the first of them.
#[test]
fn a_write_on_any_cal_is_readable_on_every_node_at_its_rev() {
    let mut c = Cluster::start(3, &[]);
    let slave = c.attach(1, &[]);
    let nodes = c.running();
    assert_eq!(nodes.len(), 4);

    let from = c.d(0).raw().rev() + 1;
    let mut waits: Vec<(usize, RawConn, i32)> = nodes
        .iter()
        .map(|&i| {
            let mut w = c.d(i).raw();
            let tag = w.tag();
            w.send(&req(Verb::Wait).path("/b/**").rev(from).tag(tag));
            (i, w, tag)
        })
        .collect();

    let mut writes = Vec::new();
    for cal in 0..3 {
        let path = format!("/b/from{cal}");
        let body = format!("written on CAL {cal}").into_bytes();
        let rev = c.set(cal, &path, -1, &body);
        for &i in &nodes {
            assert_eq!(
                get_at(c.d(i), &path, rev),
                (body.clone(), rev),
                "node {i} at rev {rev}"
            );
        }
        writes.push((path, rev, body));
    }
    let (first_path, first_rev, first_body) = &writes[0];
    for (i, w, tag) in &mut waits {
        let ev = recv_tag_timeout(w, *tag, CLUSTER_DEADLINE)
            .unwrap_or_else(|| panic!("WAIT on node {i} never answered"));
        assert_eq!(
            (
                ev.path.as_deref(),
                ev.rev,
                value_of(&ev),
                ev.flags,
                ev.err_code
            ),
            (
                Some(first_path.as_str()),
                Some(*first_rev),
                first_body.clone(),
                Some(4),
                None
            ),
            "WAIT on node {i}"
        );
    }
    // The slave is still a slave: it followed everything without a slot.
    assert!(!c.slots(slave).values().any(|id| id == c.id(slave)));
    c.assert_consistent(&[]);
}

/// (c) A slave of a two-CAL cluster answers writes with READONLY, and
/// nothing changes; the same write through a CAL succeeds and reaches the
/// slave. (The CLI sends a write a slave refuses on to a CAL:
/// tests/slave_writes.rs.)
#[test]
fn writes_on_a_slave_are_refused_and_change_nothing() {
    let mut c = Cluster::start(2, &[]);
    let s = c.attach(1, &[]);
    let keep_rev = c.set(0, "/c/keep", 0, b"kept");
    assert_eq!(get_at(c.d(s), "/c/keep", keep_rev).0, b"kept");

    let mut conn = c.d(s).raw();
    assert_err(&conn.set("/c/x", -1, b"no"), ErrCode::Readonly);
    assert_err(&conn.set("/c/x", 0, b"no"), ErrCode::Readonly);
    assert_err(&conn.del("/c/keep", -1), ErrCode::Readonly);

    // The CLI writes the same file through a CAL.
    let out = doozer(c.d(1), &["set", "/c/x", "0"], b"yes").ok();
    let rev: i64 = out.trim().parse().expect("set prints the new rev");
    assert_eq!(get_at(c.d(s), "/c/x", rev), (b"yes".to_vec(), rev));
    // Just before it, no refused write had left a trace: /c/x was missing
    // and /c/keep untouched, on every node.
    for i in c.running() {
        assert_eq!(get_at(c.d(i), "/c/x", rev - 1), (Vec::new(), 0));
        assert_eq!(get_at(c.d(i), "/c/keep", rev), (b"kept".to_vec(), keep_rev));
    }
    c.assert_consistent(&[]);
}

/// (d) The fire drill: three CALs with `-timeout 5`; clients keep writing
/// through two of them while the third is SIGSTOPped. Writes keep
/// succeeding; the silent CAL's slot is emptied and its `/ctl/node/<id>`
/// files removed; a fourth node attached with `-a` takes the free slot and
/// becomes writable. The recorded history must be linearizable.
#[test]
fn fire_drill_a_stopped_cal_is_kicked_and_its_slot_taken() {
    let mut c = Cluster::start(3, &["-timeout", "5"]);
    let victim = 2;
    let victim_id = c.id(victim).to_string();
    let (a, b) = (c.d(0).addr(), c.d(1).addr());
    let recorder = Recorder::new();
    let load = Workload::start(&recorder, &[a, b, a, b], 0, &["/drill/x", "/drill/y"]);
    load.wait_progress(20, "writes before the fault");

    c.stop(victim);
    load.wait_progress(20, "writes with one CAL stopped");
    poll_until(
        CLUSTER_DEADLINE,
        "the stopped CAL's slot to be emptied and its node files deleted",
        || {
            let emptied = c.slots(0).get("/ctl/cal/2").map(String::as_str) == Some("");
            let files = c
                .d(0)
                .raw()
                .walk_all(&format!("/ctl/node/{victim_id}/**"), None);
            (emptied && files.is_empty()).then_some(())
        },
    );
    // Only the stopped CAL was kicked.
    let (id0, id1) = (c.id(0).to_string(), c.id(1).to_string());
    assert_eq!(
        c.slots(0),
        slot_map(&[
            ("/ctl/cal/0", &id0),
            ("/ctl/cal/1", &id1),
            ("/ctl/cal/2", "")
        ])
    );
    load.wait_progress(20, "writes after the kick");

    // Cluster::attach gives it the cluster's -timeout 5 too.
    let fresh = c.attach(0, &[]);
    assert_eq!(c.wait_cal(fresh), "/ctl/cal/2");
    let fresh_id = c.id(fresh).to_string();
    wait_slots(
        &c,
        1,
        &slot_map(&[
            ("/ctl/cal/0", &id0),
            ("/ctl/cal/1", &id1),
            ("/ctl/cal/2", &fresh_id),
        ]),
    );
    c.set(fresh, "/drill/on-the-new-cal", 0, b"accepted");
    load.wait_progress(20, "writes after the new CAL joined");

    let history = load.finish();
    assert_covers_every_kind(&history);
    // The stopped node takes no further part; SIGKILL ends it (a stopped
    // process dies on SIGKILL too).
    c.kill(victim);
    assert_history_ok(&history);
    c.assert_consistent(&history);
}

/// (e) A slave attached to CAL X with `-a X` keeps up after X is
/// SIGKILLed: it attaches to another CAL and later writes (made after X
/// died, so they cannot have come from X) reach it.
#[test]
fn a_slave_whose_cal_is_killed_follows_another_cal() {
    let mut c = Cluster::start(3, &[]);
    let x = 1;
    let s = c.attach(x, &[]);
    // The slave follows X for a while, as a real one would have.
    for k in 0..20 {
        let body = format!("before {k}").into_bytes();
        let rev = c.set(0, &format!("/e/before{}", k % 4), -1, &body);
        assert_eq!(
            get_at(c.d(s), &format!("/e/before{}", k % 4), rev),
            (body, rev)
        );
    }

    c.kill(x);
    for k in 0..6 {
        let cal = [0, 2][k % 2];
        let path = format!("/e/after{k}");
        let body = format!("after the kill, via CAL {cal}").into_bytes();
        let rev = c.set(cal, &path, -1, &body);
        // The slave reaching this rev proves it follows another CAL: the
        // write was made after X died. Read its current state rather than
        // at `rev`: attaching again may copy the store at a later rev, and
        // a copy has no history before it (docs/behaviour.md).
        poll_until(
            CLUSTER_DEADLINE,
            &format!("the slave to reach rev {rev}"),
            || (c.d(s).raw().rev() >= rev).then_some(()),
        );
        assert_eq!(c.d(s).raw().must_get(&path), (body, rev), "slave");
    }
    // Still a slave (no slot is free).
    assert_err(&c.d(s).raw().set("/e/x", -1, b"no"), ErrCode::Readonly);
    c.assert_consistent(&[]);
}

/// (f) Five CALs: with two SIGSTOPped the other three still decide every
/// write; with three stopped a write is not decided (no majority of five);
/// after SIGCONT of the three, that very write completes. Long `-timeout`
/// so nobody is kicked. Every operation is recorded and checked.
#[test]
fn five_cals_decide_with_two_stopped_but_not_with_three() {
    let mut c = Cluster::start(5, &["-timeout", "600"]);
    let recorder = Recorder::new();
    let (a0, a1, a2) = (c.d(0).addr(), c.d(1).addr(), c.d(2).addr());
    let load = Workload::start(&recorder, &[a0, a1, a2, a0], 0, &["/five/x", "/five/y"]);
    load.wait_progress(20, "writes with five CALs");
    c.stop(3);
    c.stop(4);
    load.wait_progress(100, "writes with two of five CALs stopped");
    assert_covers_every_kind(&load.finish());

    c.stop(2);
    let path = "/five/x";
    let body = b"sent while three of five were stopped".to_vec();
    let mut conn = c.d(0).raw();
    let op = recorder.invoke(
        10,
        Call::Set {
            path: path.into(),
            cond_rev: -1,
            body: body.clone(),
        },
    );
    let tag = conn.tag();
    conn.send(&req(Verb::Set).path(path).rev(-1).value(&body).tag(tag));
    // Two seconds is no speed bound: with three of five stopped no answer
    // may come at all, however long we wait.
    if let Some(r) = recv_tag_timeout(&mut conn, tag, Duration::from_secs(2)) {
        panic!("a write was answered with three of five CALs stopped: {r:?}");
    }
    // Reads of the local copy still work, and do not show the write.
    let mut reader = c.d(1).raw();
    let r = call_timeout(&mut reader, req(Verb::Get).path(path), CLUSTER_DEADLINE)
        .expect("a running node answers a plain GET");
    assert_ne!(value_of(&r), body);

    for i in [2, 3, 4] {
        c.cont(i);
    }
    let r = recv_tag_timeout(&mut conn, tag, CLUSTER_DEADLINE)
        .expect("the write completes once a majority runs again");
    assert_ok(&r);
    let rev = r.rev.expect("SET response has a rev");
    op.complete(Outcome::Rev(rev));

    // A linearizable read through a CAL that kept running sees it. (The
    // same read through a CAL that was stopped is the subject of
    // tests/cluster_pending.rs.)
    let client = doozer::Client::connect(&c.d(1).uri()).expect("connect");
    let op = recorder.invoke(11, Call::LinGet { path: path.into() });
    let read = client.get_linearizable(path).expect("linearizable read");
    op.complete(Outcome::ReadAt {
        at: read.at,
        body: read.body.to_vec(),
        rev: read.rev,
    });
    assert_eq!(
        (read.body.to_vec(), read.rev),
        (body, rev),
        "a linearizable read invoked after the write at rev {rev} completed read at rev {}",
        read.at
    );
    // Every CAL, including the three that were stopped, accepts writes.
    for i in 0..5 {
        c.set(i, &format!("/five/after{i}"), 0, b"all back");
    }
    let history = recorder.history();
    assert_history_ok(&history);
    c.assert_consistent(&history);
}

/// (g) docs/reference.md#limits: a 32 KiB body (random bytes) written on
/// each CAL reaches every node byte for byte, also as the CLI prints it
/// from a slave.
#[test]
fn a_32_kib_body_replicates_to_every_node() {
    let mut c = Cluster::start(3, &[]);
    let s = c.attach(0, &[]);
    let mut rng = XorShift::new(32);
    let mut last = Vec::new();
    for cal in [1, 2, 0] {
        let path = format!("/big/from{cal}");
        let body = rng.bytes(32 * 1024);
        let rev = c.set(cal, &path, -1, &body);
        for i in c.running() {
            let (got, at) = get_at(c.d(i), &path, rev);
            assert_eq!(at, rev, "node {i}");
            assert!(
                got == body,
                "node {i}: {path} differs: {} bytes, first difference at {:?}",
                got.len(),
                got.iter().zip(&body).position(|(x, y)| x != y)
            );
        }
        last = body;
    }
    let out = doozer(c.d(s), &["get", "/big/from0"], b"");
    out.expect_code(0);
    assert!(
        out.stdout == last,
        "doozer get printed {} bytes",
        out.stdout.len()
    );
    c.assert_consistent(&[]);
}

/// docs/reference.md#verbs (NOP row): "NOP, then GET at that rev" is a
/// linearizable read.
/// A CAL that was SIGSTOPped while the others decided writes (and filled
/// its seqns with NOP) is continued; a linearizable read through it,
/// invoked after those writes completed, must see the last of them: its
/// NOP's rev must be above theirs. Three rounds, as the stale answer
/// depends on what the woken CAL learns first.
#[test]
fn a_linearizable_read_through_a_cal_that_was_stopped_sees_earlier_writes() {
    let mut c = Cluster::start(3, &["-timeout", "600"]);
    let recorder = Recorder::new();
    let mut stale = Vec::new();
    for round in 0..3 {
        c.stop(2);
        let mut last = 0;
        for k in 0..300 {
            let body = format!("r{round}-v{k}").into_bytes();
            let op = recorder.invoke(
                0,
                Call::Set {
                    path: "/p/x".into(),
                    cond_rev: -1,
                    body: body.clone(),
                },
            );
            last = c.set(k % 2, "/p/x", -1, &body);
            op.complete(Outcome::Rev(last));
        }
        c.cont(2);
        let client = doozer::Client::connect(&c.d(2).uri()).expect("connect");
        let op = recorder.invoke(
            1,
            Call::LinGet {
                path: "/p/x".into(),
            },
        );
        let read = client.get_linearizable("/p/x").expect("linearizable read");
        op.complete(Outcome::ReadAt {
            at: read.at,
            body: read.body.to_vec(),
            rev: read.rev,
        });
        if !(read.at > last && read.rev == last) {
            stale.push(format!(
                "round {round}: the NOP was answered with rev {} though the last write \
                 (rev {last}) completed before it was invoked; the read saw {:?} rev {}",
                read.at,
                String::from_utf8_lossy(&read.body),
                read.rev
            ));
        }
    }
    // The history checker must say the same (it prints the history).
    let history = recorder.history();
    if !stale.is_empty() {
        eprintln!("{}", stale.join("\n"));
    }
    assert_history_ok(&history);
    assert!(stale.is_empty(), "{}", stale.join("\n"));
    c.assert_consistent(&history);
}

/// docs/cluster.md#falling-behind: the others keep the values a stopped
/// CAL lacks (from its last report on), however far past the 256 values
/// kept in a healthy cluster it falls behind, within the caps: continued,
/// it catches up through consensus, without giving up and copying the
/// store, and stays a CAL.
#[test]
fn a_cal_stopped_for_many_writes_catches_up_without_a_copy() {
    let mut c = Cluster::start(3, &["-timeout", "600"]);
    let slot = c.wait_cal(2);
    c.stop(2);
    for k in 0..1_000 {
        c.set(k % 2, "/behind/x", -1, format!("v{k}").as_bytes());
    }
    c.cont(2);
    c.assert_consistent(&[]);
    let log = c.d(2).stderr();
    assert!(
        !log.contains("no longer keep what it lacks"),
        "node 2 gave up catching up and copied the store:\n{log}"
    );
    assert_eq!(c.wait_cal(2), slot, "node 2 is still a CAL in its slot");
}

/// docs/cluster.md#falling-behind: a CAL stopped while the others decide
/// more values than they keep for it (4,096) cannot catch up through
/// consensus; continued, it gives up on the others' evidence, copies the
/// store, rejoins in its slot, and ends with every node's store the same,
/// every acknowledged write at its rev; a write through it then succeeds.
#[test]
fn a_cal_stopped_past_what_the_others_keep_copies_and_rejoins_its_slot() {
    let mut c = Cluster::start(3, &["-timeout", "600"]);
    let slot = c.wait_cal(2);
    c.stop(2);
    let mut last = 0;
    for k in 0..5_000 {
        last = c.set(
            k % 2,
            &format!("/past/{}", k % 50),
            -1,
            format!("v{k}").as_bytes(),
        );
    }
    c.cont(2);
    const GAVE_UP: &str = "they no longer keep what it lacks";
    poll_until(CLUSTER_DEADLINE, "node 2 to give up catching up", || {
        c.d(2).stderr().contains(GAVE_UP).then_some(())
    });
    // Its slot still names it: after the copy it is promoted again.
    poll_until(CLUSTER_DEADLINE, "node 2 to rejoin consensus", || {
        let log = c.d(2).stderr();
        let after = &log[log.find(GAVE_UP)?..];
        after.contains("promoted: a CAL from seqn").then_some(())
    });
    poll_until(CLUSTER_DEADLINE, "node 2 to have the writes", || {
        (c.d(2).raw().rev() >= last).then_some(())
    });
    assert_eq!(c.wait_cal(2), slot, "node 2 is back in its slot");
    let rev = c.set(2, "/past/after", 0, b"through node 2");
    assert!(rev > last, "rev {rev} after {last}");
    c.assert_consistent(&[]);
}

/// `-spin` (docs/benchmarks.md#busy-polling--spin): with every node
/// busy-polling before it sleeps, writes in a row through each CAL are all
/// answered, and every one is on every node at its rev; the nodes count
/// the waits that busy-polling ended (none without `-spin`).
#[test]
fn writes_in_a_row_with_busy_polling_are_on_every_node_at_their_revs() {
    let mut c = Cluster::start_with_web(3, &["-spin", "300"]);
    for k in 0..300 {
        c.set(
            k % 3,
            &format!("/spin/{k}"),
            0,
            format!("body {k}").as_bytes(),
        );
    }
    let wakes: f64 = (0..3)
        .map(|i| {
            let web = c.d(i).web().expect("the web viewer is on");
            let text = http_get(web, "/$metrics").text();
            let m = prometheus::parse(&text).unwrap_or_else(|e| panic!("/$metrics: {e}\n{text}"));
            m.value("doozer_loop_spin_wakes_total", &[])
                .unwrap_or_else(|| panic!("node {i}: no spin counter\n{text}"))
        })
        .sum();
    assert!(
        wakes > 0.0,
        "300 writes in a row, and no wait ended while busy-polling"
    );
    c.assert_consistent(&[]);
}
