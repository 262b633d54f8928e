//! Request heads into the web viewer: [`web::respond`] over a store with
//! some files, as the event loop calls it (on every read, with all the
//! bytes so far: first a prefix of the input, then all of it). An event
//! stream that opens is fed a few more changes.
//!
//! Input: one byte that says where the first read ends, then the bytes
//! of the connection.
//!
//! Invariants: a reply is a well-formed HTTP/1.1 response head (so no
//! header can be injected) whose `Content-Length` is its body's length, or
//! no body for HEAD; an event stream's bytes are whole SSE messages.

use bytes::{Bytes, BytesMut};
use doozerd::store::{Mutation, Store};
use doozerd::web::{self, ChangeCache, NodeStats, Outcome};

use crate::input::Input;

/// The files of the store: `/ctl` as a node writes it, text, binary and
/// empty bodies, and a deeper tree.
const FILES: &[(&str, &[u8])] = &[
    ("/ctl/name", b"local"),
    ("/ctl/cal/0", b"A"),
    ("/ctl/cal/1", b""),
    ("/ctl/node/A/addr", b"127.0.0.1:8046"),
    ("/ctl/node/A/applied", b"12"),
    ("/a", b"hello"),
    ("/b/c/d", b"\xff\x00binary"),
    ("/b/e", b""),
    ("/u", "un \u{e9}t\u{e9} \"q\" <b>\n".as_bytes()),
];

/// A store holding [`FILES`] (a short history, so old revs fall out).
fn store() -> Store {
    let mut store = Store::new(4);
    for (path, body) in FILES {
        apply(&mut store, set(path, body));
    }
    store
}

fn set(path: &str, body: &[u8]) -> Mutation {
    Mutation::Set {
        path: path.into(),
        rev: -1,
        body: Bytes::copy_from_slice(body),
    }
}

fn apply(store: &mut Store, m: Mutation) {
    store.apply(store.rev() + 1, &m);
}

/// The `http_request` target.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let split = usize::from(input.byte());
    let request = input.rest();
    let mut store = store();
    let stats = || NodeStats {
        node_id: "A".into(),
        cluster: "local".into(),
        ..Default::default()
    };
    // A few samples, so `/$samples.json?after=N` has some to skip.
    let mut samples = web::Samples::default();
    for i in 0..3u32 {
        samples.push(web::Sample {
            t_s: f64::from(i),
            writes: u64::from(i),
            ..Default::default()
        });
    }
    let ctx = web::Context {
        stats: &stats,
        samples: &samples,
    };
    let first = &request[..split.min(request.len())];
    match web::respond(first, &store, &ctx) {
        Outcome::NeedMore => {}
        outcome => return check(first, outcome, &mut store),
    }
    let outcome = web::respond(request, &store, &ctx);
    check(request, outcome, &mut store);
}

/// Checks what `respond` made of `request`.
fn check(request: &[u8], outcome: Outcome, store: &mut Store) {
    match outcome {
        Outcome::NeedMore => {}
        Outcome::Reply(reply) => check_reply(request, &reply),
        Outcome::Stream(mut stream, head) => {
            let body = check_head(&head, true);
            check_events(&head[body..]);
            apply(store, set("/a", b"again"));
            apply(store, Mutation::Nop);
            apply(
                store,
                Mutation::Del {
                    path: "/b/e".into(),
                    rev: -1,
                },
            );
            let mut out = BytesMut::new();
            stream.catch_up(store, &mut ChangeCache::default(), &mut out);
            check_events(&out);
        }
    }
}

/// A reply: a head, then exactly `Content-Length` bytes (none for HEAD).
fn check_reply(request: &[u8], reply: &[u8]) {
    let body = check_head(reply, false);
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    let head_only = req.parse(request).is_ok() && req.method == Some("HEAD");
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut resp = httparse::Response::new(&mut headers);
    let _ = resp.parse(reply);
    let length = resp
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .and_then(|h| std::str::from_utf8(h.value).ok()?.parse::<usize>().ok());
    let length = length.unwrap_or_else(|| panic!("no Content-Length: {reply:?}"));
    let want = if head_only { 0 } else { length };
    assert_eq!(
        reply.len() - body,
        want,
        "a body of another length: {reply:?}"
    );
}

/// A complete response head; returns where the body starts.
fn check_head(bytes: &[u8], stream: bool) -> usize {
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(bytes) {
        Ok(httparse::Status::Complete(n)) => {
            assert_eq!(resp.version, Some(1), "not HTTP/1.1: {bytes:?}");
            if stream {
                assert_eq!(resp.code, Some(200));
            }
            n
        }
        other => panic!("not a response head ({other:?}): {bytes:?}"),
    }
}

/// Whole SSE messages: each line `field: value`, each message ended by a
/// blank line, no stray carriage return.
fn check_events(bytes: &[u8]) {
    let text = std::str::from_utf8(bytes).expect("events are UTF-8");
    assert!(!text.contains('\r'), "a carriage return in {text:?}");
    assert!(
        text.is_empty() || text.ends_with("\n\n"),
        "a cut message: {text:?}"
    );
    for message in text.split_terminator("\n\n") {
        for line in message.lines() {
            assert!(
                ["retry: ", "event: ", "id: ", "data: "]
                    .iter()
                    .any(|f| line.starts_with(f)),
                "a line that is no field: {line:?}"
            );
        }
    }
}

/// Inputs to start from: each kind of page, a HEAD, an event stream
/// resuming, a bad method, a head in two reads.
pub fn seeds() -> Vec<Vec<u8>> {
    [
        "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /$stats.json HTTP/1.1\r\n\r\n",
        "GET /$metrics HTTP/1.1\r\n\r\n",
        "HEAD /a HTTP/1.1\r\n\r\n",
        "GET /b/ HTTP/1.1\r\n\r\n",
        "GET /$events/b/?rev=7 HTTP/1.1\r\n\r\n",
        "GET /$events/ HTTP/1.1\r\nLast-Event-ID: 12\r\n\r\n",
        "GET /$assets/viewer.js HTTP/1.1\r\n\r\n",
        "POST / HTTP/1.1\r\n\r\n",
        "GET /$stats HTTP/1.0\r\n\r\n",
        "GET /$history.json?path=%2Fa&rev=9&limit=2 HTTP/1.1\r\n\r\n",
        "GET /$tree.json?dir=/b/&rev=8 HTTP/1.1\r\n\r\n",
        "GET /$samples.json?after=1 HTTP/1.1\r\n\r\n",
        "GET /$cluster HTTP/1.1\r\n\r\n",
    ]
    .iter()
    .map(|r| {
        let mut s = vec![9];
        s.extend_from_slice(r.as_bytes());
        s
    })
    .collect()
}
