//! Dispatch tests against the real store, no sockets. The tests drive a
//! replica only through [`Replica::step`] and [`Replica::ready`], as the
//! event loop does; [`Drive`] names the inputs.

use bytes::Bytes;
use doozer_proto::{flags, ErrCode, Request, Response, Verb};

use super::{ConnId, FollowError, Input, Output, Replica, ReplicaConfig, Secrets};
use crate::cluster::NodeInfo;

/// Inputs by name, at the replica's own current time.
trait Drive {
    fn input(&mut self, input: Input) -> Result<(), FollowError>;
    fn output(&mut self) -> Output;

    fn connect(&mut self, conn: ConnId) {
        self.input(Input::Connect(conn)).unwrap();
    }
    fn disconnect(&mut self, conn: ConnId) {
        self.input(Input::Disconnect(conn)).unwrap();
    }
    fn handle(&mut self, conn: ConnId, req: Request) {
        self.input(Input::Request(conn, req)).unwrap();
    }
    fn follow_response(&mut self, resp: Response) -> Result<(), FollowError> {
        self.input(Input::Follow(resp))
    }
    fn follow_lost(&mut self) {
        self.input(Input::FollowLost).unwrap();
    }
    /// The answers of one output (the rest of it is dropped).
    fn take_responses(&mut self) -> Vec<(ConnId, Response)> {
        self.output().responses
    }
}

impl Drive for Replica {
    fn input(&mut self, input: Input) -> Result<(), FollowError> {
        let now = self.members.now_ms;
        self.step(now, input)
    }
    fn output(&mut self) -> Output {
        let mut out = Output::default();
        let now = self.members.now_ms;
        self.ready(now, &mut out);
        out.expand_copies();
        out
    }
}

fn server_with(secrets: Secrets, hist: u64) -> Replica {
    let mut s = Replica::new(ReplicaConfig {
        self_id: "SELFID".into(),
        secrets,
        history_revs: hist,
        cluster: Default::default(),
        durable: false,
    });
    s.seed(
        "local",
        &NodeInfo {
            id: "SELFID".into(),
            addr: "127.0.0.1:8046".into(),
            hostname: "h".into(),
            version: "0".into(),
        },
    );
    s.connect(1);
    s
}

fn server() -> Replica {
    server_with(Secrets::default(), 2000)
}

fn req(tag: i32, verb: Verb) -> Request {
    Request {
        tag: Some(tag),
        verb: Some(verb as i32),
        ..Default::default()
    }
}

fn set(tag: i32, path: &str, rev: i64, body: &str) -> Request {
    Request {
        path: Some(path.into()),
        rev: Some(rev),
        value: Some(Bytes::from(body.to_string())),
        ..req(tag, Verb::Set)
    }
}

fn with_path(mut r: Request, path: &str) -> Request {
    r.path = Some(path.into());
    r
}

fn call(s: &mut Replica, conn: ConnId, r: Request) -> Vec<Response> {
    s.handle(conn, r);
    s.take_responses().into_iter().map(|(_, r)| r).collect()
}

fn one(s: &mut Replica, r: Request) -> Response {
    let mut out = call(s, 1, r);
    assert_eq!(out.len(), 1, "{out:?}");
    out.remove(0)
}

fn code(r: &Response) -> Option<ErrCode> {
    r.err_code.map(|c| ErrCode::try_from(c).unwrap())
}

#[test]
fn seed_writes_ctl_files() {
    let mut s = server();
    let r = one(&mut s, with_path(req(1, Verb::Get), "/ctl/cal/0"));
    assert_eq!(r.value.as_deref(), Some(&b"SELFID"[..]));
    let r = one(&mut s, with_path(req(2, Verb::Get), "/ctl/ns/local/SELFID"));
    assert_eq!(r.value.as_deref(), Some(&b"127.0.0.1:8046"[..]));
}

#[test]
fn set_get_conditional_and_ctl_err() {
    let mut s = server();
    let rev = one(&mut s, set(1, "/a", 0, "x")).rev.unwrap();
    let r = one(&mut s, with_path(req(2, Verb::Get), "/a"));
    assert_eq!((r.value.as_deref(), r.rev), (Some(&b"x"[..]), Some(rev)));
    // create-only again fails, consumes a rev, records /ctl/err
    let r = one(&mut s, set(3, "/a", 0, "y"));
    assert_eq!(code(&r), Some(ErrCode::RevMismatch));
    let head = one(&mut s, req(4, Verb::Rev)).rev.unwrap();
    assert_eq!(head, rev + 1);
    let r = one(&mut s, with_path(req(5, Verb::Get), "/ctl/err"));
    assert_eq!(r.value.as_deref(), Some(&b"rev mismatch"[..]));
    // clobber always works
    assert!(one(&mut s, set(6, "/a", -1, "z")).err_code.is_none());
}

#[test]
fn errors_for_bad_requests() {
    let mut s = server();
    let r = one(
        &mut s,
        Request {
            verb: Some(42),
            tag: Some(9),
            ..Default::default()
        },
    );
    assert_eq!((code(&r), r.tag), (Some(ErrCode::UnknownVerb), Some(9)));
    assert_eq!(
        code(&one(&mut s, req(1, Verb::Get))),
        Some(ErrCode::MissingArg)
    );
    let r = one(&mut s, with_path(req(1, Verb::Get), "/a b"));
    assert_eq!(code(&r), Some(ErrCode::BadPath));
    one(&mut s, set(1, "/d/f", -1, "x"));
    assert_eq!(
        code(&one(&mut s, with_path(req(1, Verb::Get), "/d"))),
        Some(ErrCode::Isdir)
    );
    assert_eq!(
        code(&one(&mut s, set(1, "/d/f/g", -1, "x"))),
        Some(ErrCode::Notdir)
    );
    let gd = |p: &str, off| Request {
        offset: Some(off),
        ..with_path(req(1, Verb::Getdir), p)
    };
    assert_eq!(code(&one(&mut s, gd("/nope", 0))), Some(ErrCode::Noent));
    assert_eq!(code(&one(&mut s, gd("/d/f", 0))), Some(ErrCode::Notdir));
    assert_eq!(code(&one(&mut s, gd("/d", 1))), Some(ErrCode::Range));
    assert_eq!(one(&mut s, gd("/d", 0)).path.as_deref(), Some("f"));
}

#[test]
fn wait_answers_later_and_other_requests_pass_it() {
    let mut s = server();
    let head = one(&mut s, req(1, Verb::Rev)).rev.unwrap();
    let w = Request {
        rev: Some(head + 1),
        ..with_path(req(7, Verb::Wait), "/w/**")
    };
    assert!(call(&mut s, 1, w).is_empty());
    // same tag again while outstanding
    let again = Request {
        rev: Some(head + 1),
        ..with_path(req(7, Verb::Wait), "/w/**")
    };
    assert_eq!(code(&one(&mut s, again)), Some(ErrCode::TagInUse));
    // an unrelated write answers at once; the wait stays
    assert!(one(&mut s, set(8, "/other", -1, "x")).err_code.is_none());
    let out = call(&mut s, 1, set(9, "/w/x/y", -1, "v"));
    assert_eq!(out.len(), 2);
    let ev = out.iter().find(|r| r.tag == Some(7)).unwrap();
    assert_eq!(ev.path.as_deref(), Some("/w/x/y"));
    assert_eq!(ev.flags, Some(flags::SET));
    assert_eq!(ev.value.as_deref(), Some(&b"v"[..]));
}

#[test]
fn future_read_is_parked_until_the_rev() {
    let mut s = server();
    let head = one(&mut s, req(1, Verb::Rev)).rev.unwrap();
    let get = Request {
        rev: Some(head + 2),
        ..with_path(req(2, Verb::Get), "/f")
    };
    assert!(call(&mut s, 1, get).is_empty());
    one(&mut s, set(3, "/f", -1, "one"));
    let out = call(&mut s, 1, set(4, "/f", -1, "two"));
    let got = out.iter().find(|r| r.tag == Some(2)).unwrap();
    assert_eq!(got.value.as_deref(), Some(&b"two"[..]));
}

#[test]
fn too_late_below_history() {
    let mut s = server_with(Secrets::default(), 3);
    for i in 0..10 {
        one(&mut s, set(1, "/x", -1, &i.to_string()));
    }
    let r = one(
        &mut s,
        Request {
            rev: Some(1),
            ..with_path(req(2, Verb::Get), "/x")
        },
    );
    assert_eq!(code(&r), Some(ErrCode::TooLate));
    let w = Request {
        rev: Some(1),
        ..with_path(req(3, Verb::Wait), "/**")
    };
    assert_eq!(code(&one(&mut s, w)), Some(ErrCode::TooLate));
}

#[test]
fn secrets_gate_reads_and_writes() {
    let secrets = Secrets {
        rw: Bytes::from_static(b"rw"),
        ro: Bytes::from_static(b"ro"),
    };
    let mut s = server_with(secrets, 10);
    let denied = |r: &Response| r.err_detail.as_deref() == Some("permission denied");
    assert!(denied(&one(&mut s, req(1, Verb::Rev))));
    let access = |secret: &'static [u8]| Request {
        value: Some(Bytes::from_static(secret)),
        ..req(2, Verb::Access)
    };
    assert!(denied(&one(&mut s, access(b"wrong"))));
    assert!(one(&mut s, access(b"ro")).err_code.is_none());
    assert!(one(&mut s, req(3, Verb::Rev)).err_code.is_none());
    assert!(denied(&one(&mut s, set(4, "/a", -1, "x"))));
    assert!(one(&mut s, access(b"rw")).err_code.is_none());
    assert!(one(&mut s, set(5, "/a", -1, "x")).err_code.is_none());
}

#[test]
fn disconnect_cancels_waits() {
    let mut s = server();
    let w = Request {
        rev: Some(1000),
        ..with_path(req(1, Verb::Wait), "/**")
    };
    assert!(call(&mut s, 1, w).is_empty());
    let w = Request {
        rev: Some(0),
        ..with_path(req(2, Verb::Wait), "/never")
    };
    assert!(call(&mut s, 1, w).is_empty());
    assert_eq!(s.store().waits_pending(), 2);
    s.disconnect(1);
    assert_eq!(s.store().waits_pending(), 0);
}

#[test]
fn bodies_up_to_the_limit_are_written_larger_ones_refused_before_proposing() {
    use super::MAX_BODY_LEN;
    let mut s = server();
    let at_limit = "x".repeat(MAX_BODY_LEN);
    assert!(one(&mut s, set(1, "/big", -1, &at_limit))
        .err_code
        .is_none());
    let head = one(&mut s, req(2, Verb::Rev)).rev.unwrap();
    let r = one(&mut s, set(3, "/big", -1, &"y".repeat(MAX_BODY_LEN + 1)));
    assert_eq!(code(&r), Some(ErrCode::Other));
    assert!(r.err_detail.unwrap().contains("value too large"));
    // nothing proposed: the rev did not move
    assert_eq!(one(&mut s, req(4, Verb::Rev)).rev.unwrap(), head);
}

/// A node about to attach: an empty store (not seeded), following.
fn slave_server(hist: u64) -> Replica {
    let mut s = Replica::new(ReplicaConfig {
        self_id: "SLAVE".into(),
        secrets: Secrets::default(),
        history_revs: hist,
        cluster: Default::default(),
        durable: false,
    });
    s.start_following();
    s.connect(1);
    s
}

/// Feeds everything the CAL queued for `follower_conn` to `slave`.
fn pump(cal: &mut Replica, follower_conn: ConnId, slave: &mut Replica) {
    for (conn, resp) in cal.take_responses() {
        if conn == follower_conn {
            slave.follow_response(resp).expect("valid follow stream");
        }
    }
}

fn walk_all(s: &Replica) -> Vec<crate::store::tree::WalkEntry> {
    let all = crate::store::Glob::parse("/**").unwrap();
    s.store().snapshot(None).unwrap().walk_all(&all)
}

#[test]
fn a_slave_copies_then_follows_and_refuses_writes() {
    let mut cal = server_with(Secrets::default(), 3);
    for i in 0..10 {
        one(
            &mut cal,
            set(1, &format!("/f{}", i % 4), -1, &i.to_string()),
        );
    }
    let mut slave = slave_server(3);
    // A client of the slave waits for a change that only the CAL will make.
    let w = Request {
        rev: Some(0),
        ..with_path(req(5, Verb::Wait), "/never")
    };
    assert!(call(&mut slave, 1, w).is_empty());

    cal.connect(2);
    cal.handle(
        2,
        Request {
            rev: Some(0),
            ..req(9, Verb::Follow)
        },
    );
    // Even with -hist 3, a copy of a store 17 revs old is whole.
    for (conn, resp) in cal.take_responses() {
        assert_eq!(conn, 2);
        slave.follow_response(resp).expect("valid");
    }
    assert!(slave.is_following());
    assert_eq!(walk_all(&slave), walk_all(&cal));
    assert_eq!(slave.store().rev(), cal.store().rev());
    // The slave's wait lost its history: TOO_LATE, so its client starts over.
    let lost = slave.take_responses();
    assert_eq!(lost.len(), 1);
    assert_eq!(code(&lost[0].1), Some(ErrCode::TooLate));

    // Every later change, including a failed one, reaches the slave.
    for r in [
        set(1, "/g", 0, "x"),
        set(1, "/g", 0, "again"), // rev mismatch: /ctl/err
        Request {
            path: Some("/g".into()),
            rev: Some(-1),
            ..req(1, Verb::Del)
        },
        req(1, Verb::Nop),
    ] {
        cal.handle(1, r);
        pump(&mut cal, 2, &mut slave);
    }
    assert_eq!(walk_all(&slave), walk_all(&cal));
    assert_eq!(slave.store().rev(), cal.store().rev());

    // Reads are served, writes refused.
    let r = one(&mut slave, with_path(req(1, Verb::Get), "/ctl/err"));
    assert_eq!(r.value.as_deref(), Some(&b"rev mismatch"[..]));
    assert_eq!(
        code(&one(&mut slave, set(2, "/h", -1, "x"))),
        Some(ErrCode::Readonly)
    );
    assert_eq!(
        code(&one(&mut slave, req(3, Verb::Nop))),
        Some(ErrCode::Readonly)
    );
}

#[test]
fn a_slave_resumes_from_its_rev_when_its_history_matches() {
    use super::follow::{history_digest, RESUME_DIGEST_EVENTS as N};
    let mut cal = server_with(Secrets::default(), 100);
    let mut slave = slave_server(100);
    cal.connect(2);
    cal.handle(
        2,
        Request {
            rev: Some(0),
            ..req(9, Verb::Follow)
        },
    );
    pump(&mut cal, 2, &mut slave);
    // Enough followed changes for the slave to fingerprint its history.
    for i in 0..20 {
        cal.handle(1, set(1, "/x", -1, &i.to_string()));
        pump(&mut cal, 2, &mut slave);
    }
    // The stream breaks; the CAL moves on meanwhile.
    cal.disconnect(2);
    slave.follow_lost();
    for i in 0..5 {
        one(&mut cal, set(1, "/y", -1, &i.to_string()));
    }
    assert!(
        cal.take_responses().is_empty(),
        "nothing for a gone follower"
    );
    let resume = slave.store().rev();
    let follow = |digest: Option<u64>| Request {
        rev: Some(resume),
        offset: digest.map(|_| N as i32),
        value: digest.map(|d| Bytes::copy_from_slice(&d.to_be_bytes())),
        ..req(9, Verb::Follow)
    };
    // Without a digest, or with one of another history: a copy.
    for digest in [None, Some(12345)] {
        cal.connect(3);
        cal.handle(3, follow(digest));
        let out = cal.take_responses();
        assert_eq!(out[0].1.flags, Some(flags::SNAPSHOT), "{digest:?}");
        cal.disconnect(3);
    }
    // With the digest of the same history: only the missed changes.
    cal.connect(3);
    cal.handle(3, follow(history_digest(slave.store(), resume, N)));
    let out = cal.take_responses();
    assert_eq!(
        out[0].1.flags,
        Some(flags::READY),
        "no copy: {:?}",
        out[0].1
    );
    assert_eq!(out.len(), 6);
    for (_, resp) in out {
        slave.follow_response(resp).expect("valid");
    }
    assert_eq!(walk_all(&slave), walk_all(&cal));
}

#[test]
fn a_broken_follow_stream_is_an_error_not_a_panic() {
    let mut slave = slave_server(10);
    let head = slave.store().rev();
    let marker = |flags: i32, rev: i64| Response {
        flags: Some(flags),
        rev: Some(rev),
        ..Default::default()
    };
    let event = |rev: i64, path: &str| Response {
        flags: Some(flags::SET),
        rev: Some(rev),
        seqn: Some(rev as u64),
        path: Some(path.into()),
        value: Some(Bytes::from_static(b"v")),
        ..Default::default()
    };
    // an event before READY; READY at a rev this store is not at
    assert!(slave.follow_response(event(head + 1, "/a")).is_err());
    assert!(slave
        .follow_response(marker(flags::READY, head + 5))
        .is_err());
    // resume, then a gap, then a bad path
    slave.follow_response(marker(flags::READY, head)).unwrap();
    assert!(slave.follow_response(event(head + 2, "/a")).is_err());
    slave.follow_response(marker(flags::READY, head)).unwrap();
    assert!(slave.follow_response(event(head + 1, "/a b")).is_err());
    // a copy without its seqn and CAL sets is refused
    assert!(slave.follow_response(marker(flags::SNAPSHOT, 50)).is_err());
    // a copy with a bad file is refused and changes nothing
    let snapshot = Response {
        seqn: Some(50),
        value: Some(Bytes::new()), // no CAL sets: a valid, empty list
        ..marker(flags::SNAPSHOT, 50)
    };
    slave.follow_response(snapshot).unwrap();
    let bad = Response {
        flags: Some(flags::FILE),
        path: Some("/x".into()),
        rev: Some(99),
        ..Default::default()
    };
    slave.follow_response(bad).unwrap();
    assert!(slave.follow_response(marker(flags::READY, 50)).is_err());
    assert_eq!(slave.store().rev(), head);
    // an error answer
    let refused = Response::error(
        Some(1),
        ErrCode::Other,
        Some("permission denied".to_string()),
    );
    assert!(matches!(
        slave.follow_response(refused),
        Err(super::FollowError::Refused(_))
    ));
}

/// Found by the `follow_stream` fuzz target (its input is in
/// fuzz/regressions/follow_stream/): an event of a seqn other than the
/// next moved the slave's applied seqn, its place in consensus, and in
/// durable mode its record could not be replayed after a restart.
#[test]
fn a_follow_event_of_another_seqn_than_the_next_is_refused() {
    let mut cal = server_with(Secrets::default(), 10);
    one(&mut cal, set(1, "/a", -1, "x"));
    let mut slave = slave_server(10);
    cal.connect(2);
    cal.handle(
        2,
        Request {
            rev: Some(0),
            ..req(9, Verb::Follow)
        },
    );
    pump(&mut cal, 2, &mut slave);
    assert!(slave.is_following());
    let (head, applied) = (slave.store().rev(), slave.members.applied_seqn);
    let event = |rev: i64, seqn: u64, more: bool| Response {
        flags: Some(flags::SET),
        rev: Some(rev),
        seqn: Some(seqn),
        more: more.then_some(true),
        path: Some("/b".into()),
        value: Some(Bytes::from_static(b"v")),
        ..Default::default()
    };
    let resume = Response {
        flags: Some(flags::READY),
        rev: Some(head),
        ..Default::default()
    };
    for seqn in [0, applied, applied + 2, u64::MAX] {
        let e = slave.follow_response(event(head + 1, seqn, false));
        assert!(
            matches!(e, Err(FollowError::Protocol(_))),
            "seqn {seqn}: {e:?}"
        );
        assert_eq!(slave.store().rev(), head);
        assert_eq!(slave.members.applied_seqn, applied);
        slave.follow_lost();
        slave.follow_response(resume.clone()).unwrap();
    }
    // A value of two changes: one seqn, then the next.
    let next = applied + 1;
    slave.follow_response(event(head + 1, next, true)).unwrap();
    assert_eq!(slave.members.applied_seqn, applied);
    assert!(slave
        .follow_response(event(head + 2, next + 1, false))
        .is_err());
    slave.follow_lost();
    let resume = Response {
        rev: Some(head + 1),
        ..resume
    };
    slave.follow_response(resume).unwrap();
    slave.follow_response(event(head + 2, next, false)).unwrap();
    slave
        .follow_response(event(head + 3, next + 1, false))
        .unwrap();
    assert_eq!(slave.members.applied_seqn, next + 1);
}

/// Found by the `follow_stream` fuzz target (its input is in
/// fuzz/regressions/follow_stream/): a change that failed to replay took
/// its rev with an error of this node's own, and the slave went on
/// serving that store (and resumed on it), which no other node has.
#[test]
fn a_change_that_fails_to_replay_makes_the_slave_copy_again() {
    let mut cal = server_with(Secrets::default(), 10);
    one(&mut cal, set(1, "/a", -1, "x"));
    let mut slave = slave_server(10);
    cal.connect(2);
    let follow = Request {
        rev: Some(0),
        ..req(9, Verb::Follow)
    };
    cal.handle(2, follow.clone());
    pump(&mut cal, 2, &mut slave);
    cal.disconnect(2);
    let (head, applied) = (slave.store().rev(), slave.members.applied_seqn);
    // /a is a file here: a change under it cannot be the followed node's.
    let under_a_file = Response {
        flags: Some(flags::SET),
        rev: Some(head + 1),
        seqn: Some(applied + 1),
        path: Some("/a/b".into()),
        value: Some(Bytes::from_static(b"v")),
        ..Default::default()
    };
    assert!(!slave.must_copy());
    let e = slave.follow_response(under_a_file);
    assert!(matches!(e, Err(FollowError::Protocol(_))), "{e:?}");
    assert!(slave.must_copy());
    slave.follow_lost();
    // It serves nothing, resumes on nothing, and copies again.
    let r = one(&mut slave, with_path(req(3, Verb::Get), "/a"));
    assert_eq!(code(&r), Some(ErrCode::Other), "{r:?}");
    let resume = Response {
        flags: Some(flags::READY),
        rev: Some(slave.store().rev()),
        ..Default::default()
    };
    assert!(slave.follow_response(resume).is_err());
    slave.follow_lost();
    cal.connect(3);
    cal.handle(3, follow);
    pump(&mut cal, 3, &mut slave);
    assert!(!slave.must_copy());
    assert_eq!(walk_all(&slave), walk_all(&cal));
}

#[test]
fn followers_are_limited() {
    use crate::replica::follow::MAX_FOLLOWERS;
    let mut s = server();
    let follow = || Request {
        rev: Some(0),
        ..req(9, Verb::Follow)
    };
    for conn in 10..10 + MAX_FOLLOWERS {
        s.connect(conn);
        let out = call(&mut s, conn, follow());
        assert!(out.iter().all(|r| r.err_code.is_none()), "{conn}");
    }
    let extra = 10 + MAX_FOLLOWERS;
    s.connect(extra);
    let refused = call(&mut s, extra, follow());
    assert_eq!(refused.len(), 1);
    assert_eq!(code(&refused[0]), Some(ErrCode::Other));
    assert!(refused[0]
        .err_detail
        .as_deref()
        .unwrap_or("")
        .contains("too many followers"));
    // A follower leaving makes room; the refused tag is free again.
    s.disconnect(10);
    let out = call(&mut s, extra, follow());
    assert!(
        out.len() > 1 && out.iter().all(|r| r.err_code.is_none()),
        "{out:?}"
    );
}

/// Several servers wired together in memory: follow streams, requests a
/// slave sends its CAL, and peer messages, all delivered at once; time
/// moves only when a test says so. Deterministic, no sockets.
mod cluster {
    use std::net::SocketAddr;

    use super::*;
    use crate::replica::{ClusterConfig, RoleChange};

    /// Connection ids leaders give followers start here (a new one per
    /// attach, as a new TCP connection would get).
    const FOLLOW_CONN: ConnId = 100;
    const FOLLOW_TAG: i32 = 7;
    const TIMEOUT_MS: u64 = 5_000;

    struct Net {
        nodes: Vec<Replica>,
        ids: Vec<String>,
        addrs: Vec<SocketAddr>,
        /// Which node each one follows, and on which connection of it.
        follows: Vec<Option<(usize, ConnId)>>,
        next_conn: ConnId,
        /// Nodes cut off (stopped): nothing in or out, no ticks.
        stopped: Vec<bool>,
        /// Client answers, per node.
        answers: Vec<Vec<Response>>,
        /// Times each node stepped down.
        demotions: Vec<u32>,
        now: u64,
    }

    fn config(id: &str, timeout_ms: u64) -> ReplicaConfig {
        ReplicaConfig {
            self_id: id.into(),
            secrets: Secrets::default(),
            history_revs: 1000,
            cluster: ClusterConfig {
                timeout_ms,
                seed: id.len() as u64,
                ..ClusterConfig::default()
            },
            durable: false,
        }
    }

    impl Net {
        /// Node 0 (`N0`) seeds a cluster; nodes 1.. attach to it as slaves.
        fn new(n: usize) -> Net {
            Net::with_timeout(n, TIMEOUT_MS)
        }

        /// As [`Net::new`], with this `-timeout`.
        fn with_timeout(n: usize, timeout_ms: u64) -> Net {
            let mut net = Net {
                nodes: Vec::new(),
                ids: Vec::new(),
                addrs: Vec::new(),
                follows: Vec::new(),
                next_conn: FOLLOW_CONN,
                stopped: Vec::new(),
                answers: Vec::new(),
                demotions: Vec::new(),
                now: 0,
            };
            let _ = env_logger::builder().is_test(true).try_init();
            for _ in 0..n {
                net.add_node(timeout_ms);
            }
            for i in 1..n {
                net.attach(i, 0);
            }
            net
        }

        /// A new node: the first seeds the cluster, the others are
        /// slaves not yet attached. Returns its index.
        fn add_node(&mut self, timeout_ms: u64) -> usize {
            let i = self.nodes.len();
            let id = format!("N{i}");
            let addr: SocketAddr = format!("127.0.0.1:{}", 9000 + i).parse().unwrap();
            let mut s = Replica::new(config(&id, timeout_ms));
            s.connect(1);
            if i == 0 {
                let info = NodeInfo {
                    id: id.clone(),
                    addr: addr.to_string(),
                    hostname: "h".into(),
                    version: "0".into(),
                };
                s.seed("local", &info);
            } else {
                s.start_following();
            }
            self.nodes.push(s);
            self.ids.push(id);
            self.addrs.push(addr);
            self.follows.push(None);
            self.stopped.push(false);
            self.answers.push(Vec::new());
            self.demotions.push(0);
            i
        }

        /// Node `i` registers its files through `leader` and follows it
        /// from scratch (a copy).
        fn attach(&mut self, i: usize, leader: usize) {
            self.attach_later(i, leader);
            self.deliver();
        }

        /// [`Net::attach`] without delivering: the requests are queued
        /// (the event loop attaches again from its next iteration, after
        /// it sent what the node had to send).
        fn attach_later(&mut self, i: usize, leader: usize) {
            self.drop_follow(i);
            let conn = self.next_conn;
            self.next_conn += 1;
            let path = format!("/ctl/node/{}/addr", self.nodes[i].id());
            let l = &mut self.nodes[leader];
            l.connect(conn);
            let addr = self.addrs[i].to_string();
            l.handle(conn, set(1, &path, -1, &addr));
            l.handle(
                conn,
                Request {
                    rev: Some(0),
                    ..req(FOLLOW_TAG, Verb::Follow)
                },
            );
            self.follows[i] = Some((leader, conn));
            self.nodes[i].follow_lost();
        }

        /// Node `i` closes its follow connection.
        fn drop_follow(&mut self, i: usize) {
            if let Some((leader, conn)) = self.follows[i].take() {
                self.nodes[leader].disconnect(conn);
            }
        }

        /// Delivers everything queued, until nothing moves: each live
        /// node's output, as the event loop would act on it.
        fn deliver(&mut self) {
            loop {
                let mut moved = false;
                for j in 0..self.nodes.len() {
                    if self.stopped[j] {
                        continue;
                    }
                    let mut out = Output::default();
                    self.nodes[j].ready(self.now, &mut out);
                    out.expand_copies();
                    for (conn, resp) in out.responses {
                        if conn == 1 {
                            self.answers[j].push(resp);
                            continue;
                        }
                        let Some(i) =
                            (0..self.nodes.len()).find(|&i| self.follows[i] == Some((j, conn)))
                        else {
                            continue; // a closed connection
                        };
                        if !self.stopped[i] && !self.nodes[i].is_cal() {
                            moved = true;
                            let ours =
                                resp.tag == Some(FOLLOW_TAG) || resp.tag >= Some(SIDE_TAG_BASE);
                            if ours && self.nodes[i].follow_response(resp).is_err() {
                                // The stream ended (its node is no longer a
                                // CAL): attach again, as the event loop does.
                                let leader = (0..self.nodes.len())
                                    .find(|&k| k != i && self.nodes[k].is_cal() && !self.stopped[k])
                                    .expect("a live CAL");
                                self.attach_later(i, leader);
                            }
                        }
                    }
                    if let Some((leader, conn)) = self.follows[j] {
                        for r in out.follow_requests {
                            moved = true;
                            self.nodes[leader].handle(conn, r);
                        }
                    }
                    for (to, msg) in out.messages {
                        let k = self.addrs.iter().position(|a| *a == to).expect("known");
                        if !self.stopped[k] {
                            moved = true;
                            let bytes = prost::Message::encode_to_vec(&msg).into();
                            let _ = self.nodes[k].step(self.now, Input::Peer(self.addrs[j], bytes));
                        }
                    }
                    match out.role_change {
                        Some(RoleChange::Promoted) => self.drop_follow(j),
                        Some(RoleChange::Demoted) => {
                            self.demotions[j] += 1;
                            let leader = (0..self.nodes.len())
                                .find(|&k| k != j && self.nodes[k].is_cal() && !self.stopped[k])
                                .expect("a live CAL");
                            moved = true;
                            self.attach_later(j, leader);
                        }
                        None => {}
                    }
                }
                if !moved {
                    return;
                }
            }
        }

        /// Moves time by `ms` in 10 ms steps; every live node's timers
        /// run as its output is drained.
        fn advance(&mut self, ms: u64) {
            for _ in 0..ms / 10 {
                self.now += 10;
                self.deliver();
            }
        }

        /// Advances until `f` holds (at most a simulated minute).
        fn until(&mut self, what: &str, f: impl Fn(&Net) -> bool) {
            for _ in 0..6_000 {
                if f(self) {
                    return;
                }
                self.advance(10);
            }
            panic!("not within a simulated minute: {what}");
        }

        /// A client request on node `i`, with its answer once decided.
        fn write(&mut self, i: usize, r: Request) -> Response {
            self.nodes[i].handle(1, r);
            self.deliver();
            self.until("the write to be answered", |n| !n.answers[i].is_empty());
            self.answers[i].remove(0)
        }

        fn slot(&self, i: usize, n: usize) -> String {
            let (body, _) = self.nodes[i]
                .store()
                .snapshot(None)
                .unwrap()
                .get(&format!("/ctl/cal/{n}"))
                .unwrap();
            String::from_utf8(body.to_vec()).unwrap()
        }

        /// Every live node at the same rev with the same files.
        fn assert_same_stores(&mut self) {
            self.until("every node to reach the same rev", |n| {
                let revs: Vec<Rev> = (0..n.nodes.len())
                    .filter(|&k| !n.stopped[k])
                    .map(|k| n.nodes[k].store().rev())
                    .collect();
                revs.windows(2).all(|w| w[0] == w[1])
            });
            let first = (0..self.nodes.len()).find(|&k| !self.stopped[k]).unwrap();
            for k in 0..self.nodes.len() {
                if !self.stopped[k] {
                    assert_eq!(
                        walk_all(&self.nodes[k]),
                        walk_all(&self.nodes[first]),
                        "N{k}"
                    );
                }
            }
        }

        /// Empty slots 1..n on node 0; waits until nodes 1..n are CALs.
        fn promote_all(&mut self, n: usize) {
            for s in 1..n {
                let r = self.write(0, set(1, &format!("/ctl/cal/{s}"), 0, ""));
                assert_eq!(r.err_code, None, "{r:?}");
            }
            self.until("every slave to become a CAL", |net| {
                (1..n).all(|k| net.nodes[k].is_cal())
            });
        }
    }

    use crate::replica::SIDE_TAG_BASE;
    use crate::store::Rev;

    #[test]
    fn slaves_claim_empty_slots_become_cals_and_accept_writes() {
        let mut net = Net::new(3);
        let r = net.write(1, set(1, "/x", -1, "no"));
        assert_eq!(code(&r), Some(ErrCode::Readonly));
        net.promote_all(3);
        let mut claimed = vec![net.slot(0, 1), net.slot(0, 2)];
        claimed.sort();
        assert_eq!(claimed, vec!["N1".to_string(), "N2".to_string()]);
        for i in 0..3 {
            let r = net.write(i, set(1, &format!("/from/{i}"), -1, "v"));
            assert_eq!(r.err_code, None, "write on N{i}: {r:?}");
        }
        net.assert_same_stores();
        let snap = net.nodes[2].store().snapshot(None).unwrap();
        assert_eq!(&snap.get("/ctl/node/N1/writable").unwrap().0[..], b"true");
        assert!(snap.get("/from/0").is_ok() && snap.get("/from/1").is_ok());
    }

    #[test]
    fn a_silent_cal_is_kicked_and_a_slave_takes_its_slot() {
        let mut net = Net::new(4);
        // Three CALs (slots 0-2); N3 stays a slave: no slot for it yet.
        for s in 1..3 {
            net.write(0, set(1, &format!("/ctl/cal/{s}"), 0, ""));
        }
        net.until("three CALs", |n| {
            (0..4).filter(|&k| n.nodes[k].is_cal()).count() == 3
        });
        let victim = (1..4).find(|&k| net.nodes[k].is_cal()).unwrap();
        let victim_id = net.ids[victim].clone();
        net.stopped[victim] = true;
        // Writes keep succeeding with one of three silent.
        let r = net.write(0, set(1, "/during", -1, "v"));
        assert_eq!(r.err_code, None);
        let spare = (1..4).find(|&k| !net.nodes[k].is_cal()).unwrap();
        net.until("the spare slave to take the freed slot", |n| {
            n.nodes[spare].is_cal()
        });
        let snap = net.nodes[0].store().snapshot(None).unwrap();
        assert!(
            snap.dir_names(&format!("/ctl/node/{victim_id}")).is_err(),
            "the kicked node's files are gone"
        );
        let r = net.write(spare, set(1, "/after", -1, "v"));
        assert_eq!(r.err_code, None);
        net.assert_same_stores();

        // A node that joins now copies a store without the kicked node's
        // files; the copy still names its address, as the others know it
        // (it may still be a CAL of the window's seqns: seed 39082).
        assert!(net.nodes[0].accepts_from(&victim_id, net.addrs[victim]));
        let late = net.add_node(TIMEOUT_MS);
        net.attach(late, 0);
        assert!(
            net.nodes[late].accepts_from(&victim_id, net.addrs[victim]),
            "a node that copied after the kick ignores the kicked CAL"
        );

        // The kicked node wakes up: it learns its removal and follows again.
        net.stopped[victim] = false;
        net.until("the woken node to step down", |n| !n.nodes[victim].is_cal());
        net.assert_same_stores();
    }

    #[test]
    fn a_cal_whose_slot_is_emptied_steps_down() {
        let mut net = Net::new(3);
        net.promote_all(3);
        let slot_of_2 = (1..3).find(|&s| net.slot(0, s) == "N2").unwrap();
        let r = net.write(0, set(1, &format!("/ctl/cal/{slot_of_2}"), -1, ""));
        assert_eq!(r.err_code, None);
        net.until("N2 to step down", |n| n.demotions[2] == 1);
        // Its slot is free again: being a slave, it claims it back (here
        // at once: messages in this net take no time).
        net.until("N2 to be a CAL again", |n| n.nodes[2].is_cal());
        assert_eq!(net.slot(0, slot_of_2), "N2");
        let r = net.write(2, set(1, "/x", -1, "yes"));
        assert_eq!(r.err_code, None);
        net.assert_same_stores();
        assert_eq!(net.demotions, vec![0, 0, 1]);
    }

    /// Batching (docs/cluster.md#batching): writes that arrive while the
    /// CAL's batch waits share one consensus value, yet each has a rev of
    /// its own, in the order sent, and its own answer; a conditional
    /// write that fails inside a batch fails alone; a write under /ctl
    /// travels in a value of its own.
    #[test]
    fn writes_sent_together_share_a_value_with_a_rev_each() {
        let mut net = Net::with_timeout(3, 3_600_000);
        net.promote_all(3);
        let before = net.nodes[0].stats();
        let rev0 = net.nodes[0].store().rev();
        for i in 0..100 {
            // The 50th creates /b/49 only if it does not exist: the write
            // before it in the same batch did create it.
            let (path, rev) = match i {
                50 => ("/b/49".to_string(), 0),
                _ => (format!("/b/{i}"), -1),
            };
            net.nodes[0].handle(1, set(i, &path, rev, &i.to_string()));
        }
        net.nodes[0].handle(1, set(100, "/ctl/cal/9", -1, ""));
        net.deliver();
        net.until("every write answered", |n| n.answers[0].len() == 101);
        let after = net.nodes[0].stats();
        let mut answers = std::mem::take(&mut net.answers[0]);
        answers.sort_by_key(|r| r.tag);
        let mut last = rev0;
        for (i, r) in answers.iter().take(100).enumerate() {
            if i == 50 {
                assert_eq!(r.err_code, Some(ErrCode::RevMismatch as i32), "{r:?}");
                continue;
            }
            assert_eq!(r.err_code, None, "write {i}: {r:?}");
            let rev = r.rev.expect("a rev");
            assert!(rev > last, "write {i} at rev {rev}, after {last}");
            last = rev;
            let got = net.nodes[1].store().head().get(&format!("/b/{i}")).unwrap();
            assert_eq!((got.0.as_ref(), got.1), (i.to_string().as_bytes(), rev));
        }
        assert!(
            answers[100].rev.expect("a rev") > last,
            "{:?}",
            answers[100]
        );
        // The 100 writes in one batch, the /ctl write in its own value.
        assert_eq!(after.writes - before.writes, 101);
        assert_eq!(after.write_batches - before.write_batches, 2);
        net.assert_same_stores();
    }

    #[test]
    fn a_cal_too_far_behind_copies_the_store_and_rejoins() {
        // A timeout long enough that nobody is kicked.
        let mut net = Net::with_timeout(3, 3_600_000);
        net.promote_all(3);
        net.stopped[2] = true;
        // More seqns than the others keep to answer a straggler with: one
        // write at a time, each decided before the next is sent, so each
        // takes a seqn of its own (writes sent together share one).
        for i in 0..5_000 {
            let r = net.write(0, set(1, &format!("/w/{}", i % 100), -1, &i.to_string()));
            assert_eq!(r.err_code, None);
        }
        net.stopped[2] = false;
        net.until("N2 to give up catching up", |n| n.demotions[2] == 1);
        net.until("N2 to rejoin from a copy", |n| n.nodes[2].is_cal());
        let r = net.write(2, set(1, "/back", -1, "v"));
        assert_eq!(r.err_code, None);
        net.assert_same_stores();
    }

    #[test]
    fn a_nop_on_a_cal_that_was_stopped_is_decided_after_it_was_sent() {
        let mut net = Net::with_timeout(3, 3_600_000);
        net.promote_all(3);
        net.stopped[2] = true;
        let mut last = 0;
        for i in 0..300 {
            let r = net.write(0, set(1, "/x", -1, &i.to_string()));
            last = r.rev.expect("a rev");
        }
        net.stopped[2] = false;
        // Its own seqns were filled with NOP meanwhile: its client's NOP
        // must not be taken for one of those fills.
        let r = net.write(2, req(1, Verb::Nop));
        assert_eq!(r.err_code, None);
        assert!(
            r.rev.expect("a rev") > last,
            "NOP at {:?}, last write at {last}",
            r.rev
        );
    }

    /// Graceful leave (docs/cluster.md, "Leaving gracefully"): from the
    /// signal on, a leaving CAL refuses new client writes with READONLY
    /// before proposing them (so a client sends them to another CAL),
    /// answers the writes already in consensus as they are decided, and
    /// counts them until then (the event loop does not stop before);
    /// its `writable` file says `false` once its slot is empty.
    #[test]
    fn a_leaving_cal_refuses_new_writes_and_answers_those_in_consensus() {
        let mut net = Net::new(3);
        net.promote_all(3);
        let slot_of_2 = (1..3).find(|&s| net.slot(0, s) == "N2").unwrap();
        net.nodes[2].handle(1, set(5, "/before", -1, "v"));
        assert_eq!(net.nodes[2].writes_in_consensus(), 1);
        assert!(net.nodes[2].leave());
        net.nodes[2].handle(1, set(6, "/after", -1, "v"));
        net.deliver();
        net.until("both writes to be answered", |n| n.answers[2].len() == 2);
        let answer = |tag| net.answers[2].iter().find(|r| r.tag == Some(tag)).unwrap();
        assert_eq!(code(answer(6)), Some(ErrCode::Readonly), "{:?}", answer(6));
        assert_eq!(answer(5).err_code, None, "{:?}", answer(5));
        net.until("its slot to be empty", |n| !n.nodes[2].listed_as_cal());
        assert_eq!(net.nodes[2].writes_in_consensus(), 0);
        let snap = net.nodes[0].store().snapshot(None).unwrap();
        assert_eq!(
            snap.get("/after").unwrap().1,
            0,
            "a refused write is nowhere"
        );
        assert!(snap.get("/before").unwrap().1 > 0);
        assert_eq!(&snap.get("/ctl/node/N2/writable").unwrap().0[..], b"false");
        // Still running (it lingers before it stops), it leaves
        // consensus and follows, and never claims its freed slot back
        // (a CAL that steps down otherwise does).
        net.until("N2 to leave consensus", |n| n.demotions[2] == 1);
        for _ in 0..20 {
            net.write(0, req(1, Verb::Nop));
        }
        net.advance(2_000);
        assert_eq!(net.slot(0, slot_of_2), "", "the leaver took its slot back");
        assert!(!net.nodes[2].is_cal());
    }

    /// A CAL leaving the set (here gracefully) still owns seqns up to the
    /// one where the new set takes over (`alpha` seqns after its slot was
    /// emptied). Once its process stops nobody proposes at those seqns,
    /// and writes stall until another CAL fills them with NOP after
    /// `-fill` (docs/benchmarks.md, "Rolling restart"), unless the leaver
    /// skipped them as soon as it knew it is not in the next set.
    #[test]
    fn writes_go_on_across_a_leave_without_waiting_for_a_fill() {
        let mut net = Net::new(3);
        net.promote_all(3);
        assert!(net.nodes[2].leave());
        net.deliver();
        net.until("the leave to be decided", |n| !n.nodes[2].listed_as_cal());
        // It lingers a little (`LEAVE_LINGER`), then its process stops.
        net.advance(20);
        net.stopped[2] = true;
        let fills = |n: &Net| -> u64 {
            (0..2)
                .map(|k| n.nodes[k].consensus_stats().map_or(0, |(s, _)| s.fills))
                .sum()
        };
        let (before, t0) = (fills(&net), net.now);
        // Past the seqn where the new set takes over, and more.
        for i in 0..120 {
            let r = net.write(0, set(1, &format!("/w/{i}"), -1, "v"));
            assert_eq!(r.err_code, None, "{r:?}");
        }
        assert_eq!(
            (fills(&net) - before, net.now - t0),
            (0, 0),
            "writes waited for fills (count, ms)"
        );
        net.assert_same_stores();
    }

    #[test]
    fn a_write_from_a_closed_connection_is_not_answered_to_its_successor() {
        let mut net = Net::new(3);
        net.promote_all(3);
        // The write is proposed, then its connection closes and the event
        // loop hands the same id to a new connection before the decision.
        net.nodes[1].handle(1, set(9, "/orphan", -1, "v"));
        net.nodes[1].disconnect(1);
        net.nodes[1].connect(1);
        net.until("the write to be applied everywhere", |n| {
            n.nodes
                .iter()
                .all(|s| s.store().snapshot(None).unwrap().get("/orphan").is_ok())
        });
        assert!(net.answers[1].is_empty(), "{:?}", net.answers[1]);
        // The new connection gets its own answers.
        let r = net.write(1, set(4, "/next", -1, "w"));
        assert_eq!((r.tag, r.err_code), (Some(4), None));
        net.assert_same_stores();
    }
}

#[test]
fn backup_streams_the_tree_at_one_rev_from_a_cal_or_a_slave() {
    let mut cal = server_with(Secrets::default(), 100);
    for i in 0..6 {
        one(&mut cal, set(1, &format!("/b/{i}"), -1, &i.to_string()));
    }
    let mut slave = slave_server(100);
    cal.connect(2);
    cal.handle(
        2,
        Request {
            rev: Some(0),
            ..req(9, Verb::Follow)
        },
    );
    pump(&mut cal, 2, &mut slave);
    for node in [&mut cal, &mut slave] {
        let head = node.store().rev();
        let out = call(node, 1, req(7, Verb::Backup));
        let (first, rest) = out.split_first().expect("an answer");
        assert_eq!(first.flags, Some(doozer_proto::flags::SNAPSHOT));
        assert_eq!(first.rev, Some(head));
        let (last, files) = rest.split_last().expect("READY");
        assert_eq!(last.flags, Some(doozer_proto::flags::READY));
        assert_eq!(last.rev, Some(head));
        let got: Vec<(String, i64)> = files
            .iter()
            .map(|r| (r.path.clone().unwrap(), r.rev.unwrap()))
            .collect();
        let want: Vec<(String, i64)> = walk_all(node)
            .into_iter()
            .map(|e| (e.path, e.rev))
            .collect();
        assert_eq!(got, want);
        assert!(got.iter().any(|(p, _)| p == "/b/5"));
        assert!(files.iter().all(|r| r.tag == Some(7)));
    }
}
