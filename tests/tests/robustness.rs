//! Bad input never kills the node (docs/reference.md#framing, #limits,
//! #beyond-the-go-original): after every kind of malformed frame, bad
//! protobuf, bad path, garbage bytes, garbage UDP and abrupt disconnects,
//! the node still answers on a new connection and every file written before
//! is still there with the same rev.

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};

use doozer_tests::*;

/// Files written before the abuse, with the revs they got.
struct Baseline {
    files: Vec<(String, Vec<u8>, i64)>,
}

fn setup() -> (Doozerd, Baseline) {
    let d = Doozerd::start(&[]);
    let mut c = d.raw();
    let mut files = Vec::new();
    for (p, body) in [
        ("/keep/a", b"alpha".to_vec()),
        ("/keep/b/c", vec![0u8, 1, 2, 255, 254, b'\n']),
        ("/keep/empty", vec![]),
        ("/keep/big", vec![b'x'; 32 * 1024]),
    ] {
        let rev = c.must_set(p, 0, &body);
        files.push((p.to_string(), body, rev));
    }
    (d, Baseline { files })
}

/// The node is alive, answers on a fresh connection, and lost nothing.
fn check(d: &mut Doozerd, b: &Baseline, what: &str) {
    d.assert_alive();
    let mut c = RawConn::connect(d.addr());
    let head = c.rev();
    for (p, body, rev) in &b.files {
        let r = c.get(p, None);
        assert_ok(&r);
        assert_eq!(
            (&value_of(&r), r.rev),
            (body, Some(*rev)),
            "after {what}: {p} changed"
        );
    }
    let walked = c.walk_all("/keep/**", None);
    assert_eq!(walked.len(), b.files.len(), "after {what}: {walked:?}");
    assert!(head >= b.files.iter().map(|f| f.2).max().unwrap());
    d.assert_alive();
}

#[test]
fn a_4_gib_length_prefix_closes_the_connection() {
    let (mut d, b) = setup();
    for claim in [0xFFFF_FFFFu32, 0x8000_0000, 2 << 20] {
        let mut c = d.raw();
        let mut bytes = claim.to_be_bytes().to_vec();
        bytes.extend_from_slice(&[0x08, 0x01, 0x10, 0x05]);
        c.send_bytes(&bytes);
        // no response, just a close
        assert_eq!(c.recv_any(DEADLINE), Recv::Closed, "claim {claim:#x}");
        check(&mut d, &b, &format!("a frame claiming {claim:#x} bytes"));
    }
}

#[test]
fn a_truncated_frame_then_close_is_harmless() {
    let (mut d, b) = setup();
    // a length prefix cut short
    let mut c = d.raw();
    c.send_bytes(&[0, 0]);
    c.shutdown_write();
    c.expect_closed(DEADLINE, "half a length prefix");
    check(&mut d, &b, "half a length prefix");
    // a body cut short
    let mut c = d.raw();
    c.send_bytes(&[0, 0, 0, 100, 0x08, 0x01, 0x10, 0x02, 0x22]);
    c.shutdown_write();
    c.expect_closed(DEADLINE, "a truncated body");
    check(&mut d, &b, "a truncated body");
    // a complete request followed by a truncated one, then a hard close
    let mut c = d.raw();
    let mut out = bytes::BytesMut::new();
    doozer_proto::encode_frame(&req(Verb::Rev).tag(5), &mut out);
    c.send_bytes(&out);
    let r = c.recv();
    assert_eq!(r.tag, Some(5));
    c.send_bytes(&[0, 0, 0, 50, 1, 2, 3]);
    drop(c);
    check(&mut d, &b, "a truncated frame and a hard close");
}

#[test]
fn random_bytes_never_kill_the_node() {
    let (mut d, b) = setup();
    for seed in 1..=25u64 {
        let mut rng = XorShift::new(seed);
        let len = 1 + rng.below(4096) as usize;
        let bytes = rng.bytes(len);
        let mut c = d.raw();
        c.send_bytes(&bytes);
        c.shutdown_write();
        c.expect_closed(DEADLINE, &format!("seed {seed}"));
        check(&mut d, &b, &format!("{len} random bytes (seed {seed})"));
    }
}

#[test]
fn random_frame_bodies_never_kill_the_node() {
    // Well-framed, so the bytes reach the protobuf decoder.
    let (mut d, b) = setup();
    for seed in 100..=130u64 {
        let mut rng = XorShift::new(seed);
        let mut c = d.raw();
        for _ in 0..4 {
            let len = rng.below(64) as usize;
            let body = rng.bytes(len);
            c.send_frame_body(&body);
        }
        c.shutdown_write();
        c.expect_closed(DEADLINE, &format!("seed {seed}"));
        check(&mut d, &b, &format!("random frame bodies (seed {seed})"));
    }
}

#[test]
fn protobuf_with_wrong_field_types_is_refused() {
    let (mut d, b) = setup();
    let bodies: &[(&str, &[u8])] = &[
        ("path as varint", &[0x08, 0x01, 0x10, 0x01, 0x20, 0x01]),
        ("tag as bytes", &[0x0a, 0x01, b'A', 0x10, 0x05]),
        (
            "verb as fixed64",
            &[0x08, 0x01, 0x11, 1, 0, 0, 0, 0, 0, 0, 0],
        ),
        (
            "path not UTF-8",
            &[0x08, 0x01, 0x10, 0x01, 0x22, 0x02, 0xff, 0xfe],
        ),
        ("truncated varint", &[0x08, 0x80]),
        ("length past the end", &[0x22, 0x7f, b'/']),
        ("field number 0", &[0x00, 0x01]),
        ("end-group wire type", &[0x0c]),
    ];
    for (what, body) in bodies {
        let mut c = d.raw();
        c.send_frame_body(body);
        // doozerd closes a connection whose request cannot be decoded (no
        // tag to answer to); it must not answer anything else first.
        match c.recv_any(DEADLINE) {
            Recv::Closed => {}
            Recv::Response(r) => {
                // answering with an error instead would be fine too
                assert!(r.err_code.is_some(), "{what}: answered {r:?}");
            }
            other => panic!("{what}: {other:?}"),
        }
        check(&mut d, &b, what);
    }
}

#[test]
fn an_empty_frame_is_a_request_without_a_verb() {
    let (mut d, b) = setup();
    let mut c = d.raw();
    c.send_bytes(&[0, 0, 0, 0]);
    let r = c.recv();
    assert_eq!(r.tag, Some(0));
    assert_err(&r, ErrCode::MissingArg);
    // the connection goes on
    assert!(c.rev() >= 1);
    check(&mut d, &b, "an empty frame");
}

#[test]
fn unknown_verbs_are_answered_and_harmless() {
    let (mut d, b) = setup();
    let mut c = d.raw();
    for (i, verb) in [0, 4, 8, 13, 21, 98, 100, -1, i32::MAX]
        .into_iter()
        .enumerate()
    {
        let tag = 500 + i as i32;
        c.send(&Request {
            tag: Some(tag),
            verb: Some(verb),
            path: Some("/keep/a".into()),
            rev: Some(-1),
            ..Default::default()
        });
        let r = c.recv();
        assert_eq!(r.tag, Some(tag), "verb {verb}");
        assert_err(&r, ErrCode::UnknownVerb);
    }
    check(&mut d, &b, "unknown verbs");
}

#[test]
fn bad_paths_and_globs_are_answered_and_harmless() {
    let (mut d, b) = setup();
    let mut c = d.raw();
    let long_bad = format!("/{}", "\u{1F600}".repeat(10_000));
    let bad = [
        "/keep/a\n",
        "/keep/a/",
        "/\u{0}",
        "/\u{7f}",
        "/\u{202e}",
        "keep/a",
        "/keep\\a",
        "/[",
        "/{",
        "/keep/a?",
        long_bad.as_str(),
    ];
    for p in bad {
        assert_err(&c.set(p, -1, b"nope"), ErrCode::BadPath);
        assert_err(&c.del(p, -1), ErrCode::BadPath);
        assert_err(&c.get(p, None), ErrCode::BadPath);
    }
    for g in [
        "/[a-z]",
        "/keep/{a,b}",
        "/keep/a\n",
        "keep/**",
        "/a b/*",
        "/\u{0}*",
    ] {
        assert_err(&c.wait(g, 1), ErrCode::BadPath);
        assert_err(&c.walk(g, 0, None), ErrCode::BadPath);
    }
    check(&mut d, &b, "bad paths and globs");
}

#[test]
fn many_frames_in_one_write_and_one_frame_byte_by_byte() {
    let (mut d, b) = setup();
    let mut c = d.raw();
    let mut out = bytes::BytesMut::new();
    for i in 0..2000 {
        doozer_proto::encode_frame(&req(Verb::Get).path("/keep/a").tag(i), &mut out);
    }
    c.send_bytes(&out);
    let mut seen = vec![false; 2000];
    for _ in 0..2000 {
        let r = c.recv();
        assert_eq!(value_of(&r), b"alpha");
        let t = r.tag.unwrap() as usize;
        assert!(!seen[t], "tag {t} answered twice");
        seen[t] = true;
    }
    // one frame, one byte per write
    out.clear();
    doozer_proto::encode_frame(&req(Verb::Get).path("/keep/b/c").tag(7), &mut out);
    for byte in out.iter() {
        c.send_bytes(&[*byte]);
    }
    let r = c.recv();
    assert_eq!(r.tag, Some(7));
    assert_eq!(value_of(&r), vec![0u8, 1, 2, 255, 254, b'\n']);
    check(&mut d, &b, "pipelined and byte-by-byte frames");
}

#[test]
fn abrupt_disconnects_with_pending_waits_and_reads() {
    let (mut d, b) = setup();
    let from = d.raw().rev() + 1;
    for i in 0..50 {
        let mut c = d.raw();
        c.send(&req(Verb::Wait).path("/gone/**").rev(from).tag(1));
        c.send(&req(Verb::Get).path("/gone/x").rev(from + 1).tag(2));
        c.send(
            &req(Verb::Set)
                .path(&format!("/gone/w{i}"))
                .rev(-1)
                .value(b"w")
                .tag(3),
        );
        // close without reading anything
        drop(c);
    }
    // Whatever of those writes was read before the close is applied; the
    // waits and parked reads of the dead connections are woken by these
    // writes and must not hurt the node.
    let mut c = d.raw();
    c.must_set("/gone/y", -1, b"y");
    c.must_set("/gone/x", -1, b"x");
    for (p, _, v) in c.walk_all("/gone/**", None) {
        assert!(p.starts_with("/gone/"), "{p}");
        assert!(v == b"w" || v == b"x" || v == b"y", "{p}: {v:?}");
    }
    check(&mut d, &b, "abrupt disconnects");
}

#[test]
fn garbage_udp_packets_never_kill_the_node() {
    let (mut d, b) = setup();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut rng = XorShift::new(7);
    let _ = sock.send_to(&[], d.addr());
    for _ in 0..300 {
        let len = rng.below(1500) as usize;
        let _ = sock.send_to(&rng.bytes(len), d.addr());
    }
    let _ = sock.send_to(&vec![0xAB; 65_000], d.addr());
    check(&mut d, &b, "garbage UDP packets");
    // and the node keeps taking writes
    let mut c = d.raw();
    let r = c.must_set("/after-udp", 0, b"ok");
    assert_eq!(c.must_get("/after-udp"), (b"ok".to_vec(), r));
    check(&mut d, &b, "garbage UDP packets, then a write");
}

#[test]
fn very_deep_and_very_long_paths_do_not_crash_the_node() {
    // doozerd limits paths and globs to 4096 bytes (store/path.rs
    // MAX_PATH_LEN, which bounds recursion depth): at the limit they work,
    // past it they are BAD_PATH and nothing is written.
    const MAX: usize = 4096;
    let (mut d, b) = setup();
    let mut c = d.raw();
    let deep = "/d".repeat(MAX / 2); // 2048 levels
    let long = format!("/{}", "n".repeat(MAX - 1));
    for p in [&deep, &long] {
        assert_eq!(p.len(), MAX);
        let rev = c.must_set(p, 0, b"deep");
        assert_eq!(c.must_get(p), (b"deep".to_vec(), rev));
        let first = if p == &deep { "/d/**" } else { "/n*" };
        let walked = c.walk(first, 0, None);
        assert_ok(&walked);
        assert_eq!(walked.path.as_deref(), Some(p.as_str()));
        let w = c.wait("/**", rev);
        assert_eq!(w.path.as_deref(), Some(p.as_str()));
        assert_ok(&c.del(p, rev));
        assert_eq!(c.must_get(p), (vec![], 0));
    }
    let before = c.user_visible_state();
    for p in [
        "/d".repeat(MAX / 2 + 1),
        "/d".repeat(50_000),
        format!("/{}", "n".repeat(MAX)),
        format!("/{}", "n".repeat(100_000)),
    ] {
        assert_err(&c.set(&p, 0, b"x"), ErrCode::BadPath);
        assert_err(&c.get(&p, None), ErrCode::BadPath);
        let glob = format!("{p}/**");
        assert_err(&c.wait(&glob, 1), ErrCode::BadPath);
        assert_err(&c.walk(&glob, 0, None), ErrCode::BadPath);
    }
    assert_eq!(
        c.user_visible_state(),
        before,
        "an over-long path was written"
    );
    check(&mut d, &b, "very deep and very long paths");
}

#[test]
fn large_values_round_trip_or_are_refused_clearly() {
    let (mut d, b) = setup();
    let mut c = d.raw();
    // 32 KiB must work (docs/reference.md#limits)
    let body: Vec<u8> = (0..32 * 1024).map(|i| (i % 251) as u8).collect();
    let rev = c.must_set("/large/32k", 0, &body);
    assert_eq!(c.must_get("/large/32k"), (body, rev));
    // Larger than what replicates in one peer datagram: refused with an
    // error that says why, with nothing proposed (docs/reference.md#limits).
    let at_limit = vec![b'l'; doozerd::replica::MAX_BODY_LEN];
    let rev = c.must_set("/large/limit", 0, &at_limit);
    assert_eq!(c.must_get("/large/limit"), (at_limit, rev));
    for len in [
        doozerd::replica::MAX_BODY_LEN + 1,
        doozer_proto::MAX_FRAME_LEN - 64,
    ] {
        let huge = vec![b'h'; len];
        let before = c.user_visible_state();
        let rev_before = c.rev();
        let r = c.set("/large/huge", 0, &huge);
        assert_eq!(
            r.err_code,
            Some(doozer_proto::ErrCode::Other as i32),
            "{len}: {r:?}"
        );
        assert!(
            r.err_detail
                .as_deref()
                .is_some_and(|d| d.contains("value too large")),
            "a refused large SET says why: {r:?}"
        );
        assert_eq!(c.rev(), rev_before, "a refused SET was proposed");
        assert_eq!(
            c.user_visible_state(),
            before,
            "a refused SET changed the store"
        );
        assert_eq!(c.must_get("/large/huge"), (vec![], 0));
    }
    check(&mut d, &b, "large values");
}

#[test]
fn a_slow_reader_still_gets_every_response() {
    // 800 GETs of a 40 KB file (32 MB of responses) sent without reading:
    // the node must hold back (not drop, not die) until we read.
    let (mut d, b) = setup();
    let mut c = d.raw();
    let body: Vec<u8> = (0..40_000).map(|i| (i % 253) as u8).collect();
    let rev = c.must_set("/slow/big", 0, &body);
    let mut out = bytes::BytesMut::new();
    for i in 0..800 {
        doozer_proto::encode_frame(&req(Verb::Get).path("/slow/big").tag(i), &mut out);
    }
    c.send_bytes(&out);
    // meanwhile other clients are served
    check(&mut d, &b, "a backed-up connection");
    for i in 0..800 {
        let r = c.recv();
        assert_eq!(r.tag, Some(i), "responses to reads come in order");
        assert_eq!(r.rev, Some(rev));
        assert!(value_of(&r) == body, "body {i} differs");
    }
    check(&mut d, &b, "a slow reader");
}

#[test]
fn many_connections_at_once() {
    let (mut d, b) = setup();
    let mut conns: Vec<RawConn> = (0..300).map(|_| d.raw()).collect();
    for (i, c) in conns.iter_mut().enumerate() {
        c.send(&req(Verb::Get).path("/keep/a").tag(i as i32));
    }
    for (i, c) in conns.iter_mut().enumerate() {
        let r = c.recv();
        assert_eq!((r.tag, value_of(&r)), (Some(i as i32), b"alpha".to_vec()));
    }
    drop(conns);
    check(&mut d, &b, "300 connections");
}

/// Sends `bytes` to the web viewer and returns whatever it answers before
/// closing. With `half_close`, our sending side is shut down after the
/// bytes (so a server waiting for more sees EOF).
fn web_exchange(addr: &str, bytes: &[u8], half_close: bool) -> String {
    let mut s = TcpStream::connect(addr).expect("connect to web viewer");
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    let _ = s.write_all(bytes);
    if half_close {
        let _ = s.shutdown(std::net::Shutdown::Write);
    }
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    String::from_utf8_lossy(&resp).into_owned()
}

#[test]
fn garbage_http_never_kills_the_node() {
    let web = format!("127.0.0.1:{}", free_port());
    let mut d = Doozerd::builder().web(&web).start();
    let b = {
        let mut c = d.raw();
        let rev = c.must_set("/keep/a", 0, b"alpha");
        Baseline {
            files: vec![("/keep/a".into(), b"alpha".to_vec(), rev)],
        }
    };
    // a malformed request line
    let resp = web_exchange(&web, b"\x00\x01 nonsense\r\n\r\n", false);
    assert!(
        resp.starts_with("HTTP/1.1 400") || resp.starts_with("HTTP/1.0 400"),
        "{resp}"
    );
    check(&mut d, &b, "a malformed HTTP request");
    // an endless header
    let mut big = b"GET / HTTP/1.1\r\nX-Long: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 64 * 1024));
    let resp = web_exchange(&web, &big, false);
    assert!(
        resp.contains(" 431 ") || resp.contains(" 400 ") || resp.is_empty(),
        "{resp}"
    );
    check(&mut d, &b, "a huge HTTP header");
    // random bytes
    let mut rng = XorShift::new(99);
    for _ in 0..20 {
        let len = 1 + rng.below(2048) as usize;
        web_exchange(&web, &rng.bytes(len), true);
    }
    check(&mut d, &b, "random bytes on the web port");
    // the viewer still works
    let resp = web_exchange(&web, b"GET / HTTP/1.0\r\n\r\n", false);
    assert!(
        resp.starts_with("HTTP/1.") && resp.contains(" 200 "),
        "{resp}"
    );
}

#[test]
fn responses_are_sent_after_the_client_half_closes() {
    // A client may send its requests and shut down its sending side
    // (`nc -N`, `socat`, HTTP/1.0 tools): the requests were received whole,
    // so their answers must still be sent before the server closes.
    let web = format!("127.0.0.1:{}", free_port());
    let d = Doozerd::builder().web(&web).start();
    let mut c = d.raw();
    let rev = c.must_set("/hc", 0, b"half");
    let mut out = bytes::BytesMut::new();
    doozer_proto::encode_frame(&req(Verb::Get).path("/hc").tag(1), &mut out);
    doozer_proto::encode_frame(&req(Verb::Rev).tag(2), &mut out);
    let mut c = d.raw();
    c.send_bytes(&out);
    c.shutdown_write();
    let r1 = c.recv_any(DEADLINE);
    let Recv::Response(r1) = r1 else {
        panic!("client protocol: no answer after a half-close, got {r1:?}");
    };
    assert_eq!(
        (r1.tag, value_of(&r1), r1.rev),
        (Some(1), b"half".to_vec(), Some(rev))
    );
    let r2 = c.recv();
    assert_eq!(r2.tag, Some(2));
    assert_eq!(c.recv_any(DEADLINE), Recv::Closed);
    // the same over HTTP
    let resp = web_exchange(&web, b"GET / HTTP/1.0\r\n\r\n", true);
    assert!(
        resp.starts_with("HTTP/1.") && resp.contains(" 200 "),
        "web viewer: no answer after a half-close, got {resp:?}"
    );
}
