//! The Rust client library (`doozer::Client`) against a real node:
//! concurrent use from many threads, watch, errors, failover across `ca=`
//! addresses and reconnecting after the node restarts.

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use doozer::{Client, ErrCode, Error};
use doozer_tests::*;

fn client(d: &Doozerd) -> Client {
    Client::connect(&d.uri()).expect("connect")
}

#[test]
fn basic_calls_match_the_node() {
    let d = Doozerd::start(&[]);
    let c = client(&d);
    let r1 = c.set("/lib/a", 0, &b"one"[..]).unwrap();
    let (body, rev) = c.get("/lib/a", None).unwrap();
    assert_eq!((&body[..], rev), (&b"one"[..], r1));
    assert_eq!(d.raw().must_get("/lib/a"), (b"one".to_vec(), r1));
    assert!(c.rev().unwrap() >= r1);
    let st = c.stat("/lib", None).unwrap();
    assert!(st.is_dir());
    assert_eq!(st.len, 1);
    let st = c.stat("/lib/a", None).unwrap();
    assert_eq!((st.len, st.rev), (3, r1));
    assert_eq!(c.getdir_all("/lib", None).unwrap(), vec!["a".to_string()]);
    let walked = c.walk_all("/lib/**", None).unwrap();
    assert_eq!(walked.len(), 1);
    assert_eq!((walked[0].path.as_str(), walked[0].rev), ("/lib/a", r1));
    let id = c.self_id().unwrap();
    assert_eq!(id.as_bytes(), value_of(&d.raw().self_id()));
    let n = c.nop().unwrap();
    assert!(n > r1);
    c.del("/lib/a", r1).unwrap();
    assert_eq!(c.get("/lib/a", None).unwrap().1, 0);
}

#[test]
fn server_errors_are_typed() {
    let d = Doozerd::start(&[]);
    let c = client(&d);
    let r1 = c.set("/e/f", 0, &b"x"[..]).unwrap();
    let e = c.set("/e/f", 0, &b"y"[..]).unwrap_err();
    assert!(e.is_rev_mismatch(), "{e:?}");
    assert_eq!(e.to_string(), "rev mismatch");
    assert_eq!(c.get("/e", None).unwrap_err().code(), Some(ErrCode::Isdir));
    assert_eq!(
        c.get("bad", None).unwrap_err().code(),
        Some(ErrCode::BadPath)
    );
    assert_eq!(
        c.getdir("/e/f", None, 0).unwrap_err().code(),
        Some(ErrCode::Notdir)
    );
    assert_eq!(
        c.getdir("/nope", None, 0).unwrap_err().code(),
        Some(ErrCode::Noent)
    );
    assert_eq!(
        c.walk("/e/**", None, 1).unwrap_err().code(),
        Some(ErrCode::Range)
    );
    // the failed write changed nothing
    assert_eq!(c.get("/e/f", None).unwrap(), (bytes::Bytes::from("x"), r1));
}

#[test]
fn many_threads_share_one_client() {
    let d = Doozerd::start(&[]);
    let c = client(&d);
    const THREADS: usize = 8;
    const OPS: usize = 40;
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let c = c.clone();
            let barrier = barrier.clone();
            thread::spawn(move || {
                barrier.wait();
                let path = format!("/mt/t{t}");
                let mut rev = 0;
                for i in 0..OPS {
                    let body = format!("t{t}-{i}");
                    let new = c.set(&path, rev, body.clone().into_bytes()).unwrap();
                    assert!(new > rev);
                    let (got, got_rev) = c.get(&path, None).unwrap();
                    assert_eq!((&got[..], got_rev), (body.as_bytes(), new));
                    rev = new;
                }
                rev
            })
        })
        .collect();
    let finals: Vec<i64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let mut raw = d.raw();
    for (t, rev) in finals.iter().enumerate() {
        let want = format!("t{t}-{}", OPS - 1);
        assert_eq!(
            raw.must_get(&format!("/mt/t{t}")),
            (want.into_bytes(), *rev)
        );
    }
    // every write got its own rev
    let mut all = finals.clone();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), THREADS);
}

#[test]
fn concurrent_conditional_increments_lose_nothing() {
    let d = Doozerd::start(&[]);
    let c = client(&d);
    c.set("/counter", 0, &b"0"[..]).unwrap();
    const THREADS: usize = 6;
    const INCS: usize = 15;
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let c = c.clone();
            thread::spawn(move || {
                let mut mismatches = 0;
                for _ in 0..INCS {
                    loop {
                        let (body, rev) = c.get("/counter", None).unwrap();
                        let n: u64 = std::str::from_utf8(&body).unwrap().parse().unwrap();
                        match c.set("/counter", rev, (n + 1).to_string().into_bytes()) {
                            Ok(_) => break,
                            Err(e) if e.is_rev_mismatch() => mismatches += 1,
                            Err(e) => panic!("{e}"),
                        }
                    }
                }
                mismatches
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let (body, _) = c.get("/counter", None).unwrap();
    assert_eq!(&body[..], (THREADS * INCS).to_string().as_bytes());
}

#[test]
fn a_wait_in_one_thread_does_not_block_others() {
    let d = Doozerd::start(&[]);
    let c = client(&d);
    let from = c.rev().unwrap() + 1;
    let waiter = {
        let c = c.clone();
        thread::spawn(move || c.wait("/signal", from))
    };
    // Many calls on the same client while the WAIT is outstanding.
    for i in 0..100 {
        let rev = c.set(&format!("/busy/{i}"), 0, &b"x"[..]).unwrap();
        assert_eq!(c.get(&format!("/busy/{i}"), None).unwrap().1, rev);
    }
    assert!(
        !waiter.is_finished(),
        "WAIT answered before /signal was set"
    );
    let rev = d.raw().must_set("/signal", 0, b"go");
    let ev = waiter.join().unwrap().unwrap();
    assert_eq!(
        (ev.path.as_str(), ev.rev, &ev.body[..]),
        ("/signal", rev, &b"go"[..])
    );
    assert!(ev.is_set());
}

#[test]
fn watch_follows_changes_in_order() {
    let d = Doozerd::start(&[]);
    let c = client(&d);
    let from = c.rev().unwrap() + 1;
    let mut raw = d.raw();
    let mut expected = Vec::new();
    for i in 0..5 {
        let p = format!("/watch/{}", i % 2);
        let body = format!("v{i}");
        let rev = raw.must_set(&p, -1, body.as_bytes());
        raw.must_set("/elsewhere", -1, b"ignored");
        expected.push((p, rev, body.into_bytes(), true));
    }
    assert_ok(&raw.del("/watch/0", -1));
    let del_rev = raw.wait("/watch/0", expected[4].1 + 1).rev.unwrap();
    expected.push(("/watch/0".into(), del_rev, vec![], false));

    let mut w = c.watch("/watch/*", from);
    let got: Vec<_> = w
        .by_ref()
        .take(expected.len())
        .map(|e| {
            let e = e.unwrap();
            (e.path.clone(), e.rev, e.body.to_vec(), e.is_set())
        })
        .collect();
    assert_eq!(got, expected);
    assert_eq!(w.next_rev(), del_rev + 1);
    // and it keeps following new changes
    let later = {
        let c = c.clone();
        thread::spawn(move || {
            let mut w = c.watch("/watch/*", del_rev + 1);
            w.next().unwrap().unwrap()
        })
    };
    let rev = raw.must_set("/watch/new", 0, b"n");
    let ev = later.join().unwrap();
    assert_eq!((ev.path.as_str(), ev.rev), ("/watch/new", rev));
}

#[test]
fn wait_timeout_gives_up() {
    let d = Doozerd::start(&[]);
    let c = client(&d);
    let from = c.rev().unwrap() + 1;
    let e = c
        .wait_timeout("/never", from, Duration::from_millis(200))
        .unwrap_err();
    assert!(matches!(e, Error::Timeout), "{e:?}");
    // the client is still usable
    assert!(c.rev().unwrap() >= from - 1);
}

#[test]
fn connect_fails_over_past_a_dead_address() {
    let d = Doozerd::start(&[]);
    let dead = format!("127.0.0.1:{}", free_port());
    let c = Client::connect(&format!("doozer:?ca={dead}&ca={}", d.addr())).unwrap();
    assert_eq!(c.current_addr(), Some(d.addr().to_string()));
    let rev = c.set("/fo", 0, &b"x"[..]).unwrap();
    assert_eq!(d.raw().must_get("/fo"), (b"x".to_vec(), rev));
}

#[test]
fn connect_to_only_dead_addresses_is_a_connect_error() {
    let dead1 = format!("127.0.0.1:{}", free_port());
    let dead2 = format!("127.0.0.1:{}", free_port());
    let e = Client::connect(&format!("doozer:?ca={dead1}&ca={dead2}")).unwrap_err();
    assert!(e.is_connection_error(), "{e:?}");
    assert!(matches!(e, Error::Connect { .. }), "{e:?}");
}

#[test]
fn secrets_in_the_uri() {
    let d = Doozerd::builder()
        .env("DOOZER_RWSECRET", "pw")
        .env("DOOZER_ROSECRET", "ro")
        .start();
    let c = Client::connect(&format!("doozer:?ca={}&sk=pw", d.addr())).unwrap();
    let rev = c.set("/s", 0, &b"x"[..]).unwrap();
    let ro = Client::connect(&format!("doozer:?ca={}&sk=ro", d.addr())).unwrap();
    assert_eq!(ro.get("/s", None).unwrap().1, rev);
    let e = ro.set("/s", -1, &b"y"[..]).unwrap_err();
    assert_eq!(e.code(), Some(ErrCode::Other), "{e:?}");
    assert!(e.to_string().contains("permission denied"), "{e}");
    // a wrong secret is refused when connecting
    let e = Client::connect(&format!("doozer:?ca={}&sk=nope", d.addr())).unwrap_err();
    assert!(e.to_string().contains("permission denied"), "{e}");
}

#[test]
fn reconnects_after_the_node_restarts_on_the_same_address() {
    let mut d = Doozerd::start(&[]);
    let port = d.port();
    let c = client(&d);
    c.set("/before", 0, &b"x"[..]).unwrap();
    let old_id = c.self_id().unwrap();
    d.kill();
    // While the node is down, calls fail with a connection error.
    let e = c.rev().unwrap_err();
    assert!(e.is_connection_error(), "{e:?}");
    let d2 = Doozerd::builder().port(port).start();
    // A read reconnects (and is retried on the fresh connection).
    let id = poll_until(DEADLINE, "client reconnected", || c.self_id().ok());
    assert_ne!(id, old_id, "a restarted node is a new node");
    assert_eq!(id.as_bytes(), value_of(&d2.raw().self_id()));
    // writes work on the new connection
    let rev = c.set("/after", 0, &b"y"[..]).unwrap();
    assert_eq!(d2.raw().must_get("/after"), (b"y".to_vec(), rev));
}

#[test]
fn fails_over_to_another_node_when_its_node_dies() {
    // Two independent single-node clusters stand in for two CALs: the
    // client moves to the second address when the first node dies.
    let mut d1 = Doozerd::start(&[]);
    let d2 = Doozerd::start(&[]);
    let c = Client::connect(&format!("doozer:?ca={}&ca={}", d1.addr(), d2.addr())).unwrap();
    assert_eq!(c.current_addr(), Some(d1.addr().to_string()));
    let id1 = c.self_id().unwrap();
    d1.kill();
    let id2 = poll_until(DEADLINE, "client failed over", || c.self_id().ok());
    assert_ne!(id1, id2);
    assert_eq!(id2.as_bytes(), value_of(&d2.raw().self_id()));
    assert_eq!(c.current_addr(), Some(d2.addr().to_string()));
}

#[test]
fn reconnect_sends_the_secret_again() {
    let secret_node = |port: Option<u16>| {
        let mut b = Doozerd::builder()
            .env("DOOZER_RWSECRET", "pw")
            .env("DOOZER_ROSECRET", "ro");
        if let Some(p) = port {
            b = b.port(p);
        }
        b.start()
    };
    let mut d = secret_node(None);
    let port = d.port();
    let c = Client::connect(&format!("doozer:?ca={}&sk=pw", d.addr())).unwrap();
    c.set("/x", 0, &b"1"[..]).unwrap();
    d.kill();
    let _d2 = secret_node(Some(port));
    // reads on the new connection are allowed only if ACCESS was re-sent
    let (body, rev) = poll_until(DEADLINE, "client reconnected", || {
        match c.get("/ctl/name", None) {
            Ok(v) => Some(v),
            Err(e) if e.is_connection_error() => None,
            Err(e) => panic!("after reconnecting: {e}"),
        }
    });
    assert_eq!(&body[..], b"local");
    assert!(rev > 0);
    // and writes too (rw secret)
    c.set("/x", 0, &b"2"[..]).unwrap();
}

#[test]
fn linearizable_reads_see_every_acknowledged_write() {
    use doozer_tests::history::{check_history, Call, Outcome, Recorder};
    let d = Doozerd::start(&[]);
    let c = client(&d);
    let rev = c.set("/lin/x", 0, "first").unwrap();
    let read = c.get_linearizable("/lin/x").unwrap();
    assert_eq!((&read.body[..], read.rev), (&b"first"[..], rev));
    assert!(read.at > rev, "a NOP after the write: {read:?}");

    // Several clients, each with its own connection, racing conditional
    // writes and linearizable reads on two files; the recorded history
    // must be linearizable.
    let recorder = Recorder::new();
    std::thread::scope(|s| {
        for id in 0..4usize {
            let recorder = recorder.clone();
            let c = client(&d);
            s.spawn(move || {
                let mut seen = 0i64;
                for i in 0..40 {
                    let path = format!("/lin/f{}", i % 2);
                    if (i + id) % 3 == 0 {
                        let op = recorder.invoke(id, Call::LinGet { path: path.clone() });
                        let r = c.get_linearizable(&path).unwrap();
                        seen = seen.max(r.rev);
                        op.complete(Outcome::ReadAt {
                            at: r.at,
                            body: r.body.to_vec(),
                            rev: r.rev,
                        });
                    } else {
                        // Conditional on the last rev this client saw: some
                        // succeed, some find a newer file.
                        let body = format!("c{id}-{i}").into_bytes();
                        let op = recorder.invoke(
                            id,
                            Call::Set {
                                path: path.clone(),
                                cond_rev: seen,
                                body: body.clone(),
                            },
                        );
                        match c.set(&path, seen, body) {
                            Ok(rev) => {
                                seen = rev;
                                op.complete(Outcome::Rev(rev));
                            }
                            Err(e) if e.is_rev_mismatch() => op.complete(Outcome::RevMismatch),
                            Err(e) => panic!("set {path}: {e}"),
                        }
                    }
                }
            });
        }
    });
    let history = recorder.history();
    assert_eq!(history.len(), 160);
    if let Err(v) = check_history(&history) {
        panic!("not linearizable:\n{v}");
    }
}
