//! The client-protocol attacks of issue 12, items 1 to 4 (the web ones
//! are in `web.rs`), each on a node the caller started and measured with
//! [`measured`]. Sizes are parameters: the tests run them scaled down, the
//! runner at the issue's sizes.

use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use super::hostile::{drain, frames, spawn_writer, Tally, Unread};
use super::{answer_kind, measured, populate, Report, BODY_48K, PROBE_BODY, PROBE_PATH};
use crate::{req, Doozerd, RawConn, Recv, Request, RequestExt, Verb};

/// The internal verb a slave follows a CAL with (docs/reference.md,
/// "Attaching a slave").
const FOLLOW: i32 = 200;
/// The file the GET attacks read (48 KiB, filled by [`populate`]).
const BIG_FILE: &str = "/big/f000000";
/// How long to read answers after the last one before deciding there
/// are no more.
const QUIET: Duration = Duration::from_secs(2);
/// The longest any attacker reads its answers.
const DRAIN_LIMIT: Duration = Duration::from_secs(60);

/// `n` copies of `r`, tagged 1, 2, ...
fn tagged(r: &Request, n: usize) -> Vec<Request> {
    (0..n)
        .map(|i| {
            let mut r = r.clone();
            r.tag = Some(i as i32 + 1);
            r
        })
        .collect()
}

/// A FOLLOW from the start (a full copy of the store).
fn follow_req() -> Request {
    Request {
        verb: Some(FOLLOW),
        rev: Some(0),
        ..Default::default()
    }
}

/// The current rev of `d` (REV on a new connection).
fn head(d: &Doozerd) -> i64 {
    d.raw().rev()
}

/// Item 1: `gets` pipelined GETs of a 48 KiB file on one connection that
/// never reads, held for `hold`.
pub fn get_unread(d: &mut Doozerd, gets: usize, hold: Duration) -> Report {
    populate(d, "big", 1, BODY_48K);
    let what = format!("{gets} pipelined GETs of a 48 KiB file, one connection, never read");
    let addr = d.addr();
    measured(d, "get-unread", what, false, |rep| {
        let get = req(Verb::Get).path(BIG_FILE);
        let mut u = Unread::new();
        u.open(addr, frames(&tagged(&get, gets)));
        thread::sleep(hold);
        let sent = u.close();
        rep.notes.push(format!("{} KB sent", sent / 1000));
    })
}

/// Items 1 and 2: `follows` FOLLOW frames on one connection, on a store
/// of `files` files of 48 KiB; the connection reads nothing for `hold`,
/// then everything (the copy, and the refusals held behind it).
pub fn follow_frames(d: &mut Doozerd, files: usize, follows: usize, hold: Duration) -> Report {
    populate(d, "big", files, BODY_48K);
    let what = format!(
        "{follows} FOLLOW frames ({} bytes) on one connection, store of {files} files of 48 KiB, \
         not read for {hold:?}",
        frames(&tagged(&follow_req(), follows)).len()
    );
    let addr = d.addr();
    let name = format!("follow-{follows}");
    measured(d, &name, what, false, |rep| {
        let s = TcpStream::connect(addr).expect("connect");
        let w = spawn_writer(&s, frames(&tagged(&follow_req(), follows)));
        thread::sleep(hold);
        let _ = w.join();
        let mut c = RawConn::from_stream(s);
        let refused = follows - 1;
        drain(
            &mut c,
            &mut rep.answers,
            |t| t.contains_key("READY") && refusals(t) >= refused,
            QUIET,
            DRAIN_LIMIT,
        );
    })
}

/// Answers of a tally that are errors.
pub fn refusals(t: &Tally) -> usize {
    t.iter()
        .filter(|(k, _)| !matches!(k.as_str(), "ok" | "FILE" | "SNAPSHOT" | "READY"))
        .map(|(_, n)| n)
        .sum()
}

/// Item 2: `conns` connections each send one FOLLOW on a store of
/// `files` files of 48 KiB and read nothing for `hold`; then the first
/// answer of each is read (tallied).
pub fn follow_unread(d: &mut Doozerd, files: usize, conns: usize, hold: Duration) -> Report {
    populate(d, "big", files, BODY_48K);
    let what = format!("{conns} connections, one FOLLOW each, never read; {files} files of 48 KiB");
    let addr = d.addr();
    measured(d, "follow-unread", what, false, |rep| {
        let mut u = Unread::new();
        let mut readers = Vec::new();
        for _ in 0..conns {
            let s = u.open(addr, frames(&[follow_req().tag(1)]));
            readers.push(s.try_clone().expect("clone"));
        }
        thread::sleep(hold);
        first_answers(readers, &mut rep.answers);
    })
}

/// Reads the first answer on each of `conns` (up to 10 s each) into
/// `tally`.
fn first_answers(conns: Vec<TcpStream>, tally: &mut Tally) {
    for s in conns {
        let mut c = RawConn::from_stream(s);
        let kind = match c.recv_any(Duration::from_secs(10)) {
            Recv::Response(r) => answer_kind(&r),
            other => format!("{other:?}"),
        };
        *tally.entry(kind).or_default() += 1;
    }
}

/// `conns` connections, one FOLLOW each, on the store as it is; the first
/// answer of each is tallied (the node serves a bounded number of
/// followers). The connections stay open until the tally is complete.
pub fn followers_limit(d: &Doozerd, conns: usize) -> Tally {
    let mut u = Unread::new();
    let mut readers = Vec::new();
    for _ in 0..conns {
        let s = u.open(d.addr(), frames(&[follow_req().tag(1)]));
        readers.push(s.try_clone().expect("clone"));
    }
    let mut tally = Tally::new();
    first_answers(readers, &mut tally);
    tally
}

/// Item 3: `conns` connections, each sending `gets` GETs of a 48 KiB
/// file and never reading, held for `hold`.
pub fn gets_many_conns(d: &mut Doozerd, conns: usize, gets: usize, hold: Duration) -> Report {
    populate(d, "big", 1, BODY_48K);
    let what = format!("{conns} connections × {gets} GETs of a 48 KiB file, never read");
    let addr = d.addr();
    measured(d, "get-unread-conns", what, false, |rep| {
        let get = req(Verb::Get).path(BIG_FILE);
        let bytes = frames(&tagged(&get, gets));
        let mut u = Unread::new();
        for _ in 0..conns {
            u.open(addr, bytes.clone());
        }
        thread::sleep(hold);
        let sent = u.close();
        rep.notes.push(format!("{} KB sent", sent / 1000));
    })
}

/// Sends `waits` WAITs for `glob` (from the next rev) on each of `conns`
/// connections and reads what they are answered (the refusals) until it
/// stops; the WAITs then stay pending for `hold`, while the prober
/// writes.
fn waits(d: &mut Doozerd, name: &str, what: String, glob: &str, plan: (usize, usize)) -> Report {
    let (conns, waits) = plan;
    populate(d, "big", 0, 0);
    let from = head(d) + 1;
    let addr = d.addr();
    let hold = Duration::from_secs(2);
    measured(d, name, what, true, |rep| {
        let wait = req(Verb::Wait).path(glob).rev(from);
        let bytes = frames(&tagged(&wait, waits));
        let mut u = Unread::new();
        let mut readers = Vec::new();
        for _ in 0..conns {
            let mut c =
                RawConn::from_stream(u.open(addr, bytes.clone()).try_clone().expect("clone"));
            readers.push(thread::spawn(move || {
                let mut t = Tally::new();
                drain(&mut c, &mut t, |_| false, QUIET, DRAIN_LIMIT);
                t
            }));
        }
        for r in readers {
            for (k, n) in r.join().expect("reader thread") {
                *rep.answers.entry(k).or_default() += n;
            }
        }
        thread::sleep(hold);
        let answered: usize = rep.answers.values().sum();
        rep.notes.push(format!(
            "{} of {} WAITs left pending",
            conns * waits - answered,
            conns * waits
        ));
    })
}

/// Item 3: `n` WAITs on one connection (a glob no probe matches).
pub fn waits_one_conn(d: &mut Doozerd, n: usize) -> Report {
    let what = format!("{n} WAITs on one connection");
    waits(d, "wait-one-conn", what, "/wait/**", (1, n))
}

/// Item 3: `conns` × `n` WAITs for a glob of `len` bytes, `/**aaa…`
/// (matched against every change).
pub fn waits_long_glob(d: &mut Doozerd, conns: usize, n: usize, len: usize) -> Report {
    let glob = format!("/**{}", "a".repeat(len.saturating_sub(3)));
    let what = format!("{conns} connections × {n} WAITs on a {len}-byte glob `/**aaa…`");
    waits(d, "wait-long-glob", what, &glob, (conns, n))
}

/// Item 3: `n` GETs at a future rev on one connection, each carrying an
/// unused value of `value_len` bytes; then the node is moved to that rev
/// and every answer is read and checked to carry the file's body.
pub fn future_gets(d: &mut Doozerd, n: usize, value_len: usize) -> Report {
    populate(d, "big", 0, 0);
    let ahead = 1000;
    let at = head(d) + ahead;
    let what = format!("{n} GETs at a future rev, each with an unused {value_len}-byte value");
    let addr = d.addr();
    measured(d, "future-get-values", what, false, |rep| {
        let value = vec![b'v'; value_len];
        let get = req(Verb::Get).path(PROBE_PATH).rev(at).value(&value);
        let s = TcpStream::connect(addr).expect("connect");
        let w = spawn_writer(&s, frames(&tagged(&get, n)));
        let mut c = RawConn::from_stream(s);
        // Everything sent (the node read it), nothing answered yet.
        let sent = w.join().unwrap_or(0);
        let early = drain(&mut c, &mut rep.answers, |_| false, QUIET, QUIET);
        rep.notes.push(format!(
            "{} MB sent, {early} answered before the rev",
            sent / 1_000_000
        ));
        populate_revs(addr, ahead as usize);
        let started = Instant::now();
        let mut answered = early;
        while answered < n && started.elapsed() < DRAIN_LIMIT {
            let Recv::Response(r) = c.recv_any(QUIET) else {
                break;
            };
            answered += 1;
            let kind = match answer_kind(&r) {
                k if k == "ok" && r.value.as_deref() == Some(PROBE_BODY) => FILE_BODY.into(),
                k => k,
            };
            *rep.answers.entry(kind).or_default() += 1;
        }
    })
}

/// Makes `n` changes (SETs of one small file, pipelined), so that the
/// node's rev moves on by at least `n`.
fn populate_revs(addr: std::net::SocketAddr, n: usize) {
    let set = req(Verb::Set).path("/revs").rev(-1).value(b"r");
    let mut c = RawConn::connect(addr);
    c.send_bytes(&frames(&tagged(&set, n)));
    for _ in 0..n {
        let r = c.recv();
        assert_eq!(r.err_code, None, "SET: {r:?}");
    }
}

/// The kind [`future_gets`] files an answer carrying the file's own body
/// under (not the value sent with the request).
pub const FILE_BODY: &str = "ok, with the file's body";

/// Where the WALKs of [`walk_bursts`] ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalkAt {
    /// Offset 2³¹−1, past every file (the issue's attack).
    Far,
    /// The offset of the last of the attack's files: a real walk of the
    /// whole store each time (a repeated offset cannot resume).
    Last,
}

/// Item 4: one connection sends bursts of `burst` pipelined `WALK /**`
/// (at `at`), reading each burst's answers, for `dur`, on a store of
/// `files` small files.
pub fn walk_bursts(d: &mut Doozerd, files: usize, at: WalkAt, dur: Duration) -> Report {
    populate(d, "walk", files, 16);
    let (name, offset) = match at {
        WalkAt::Far => ("walk-far", i32::MAX),
        WalkAt::Last => ("walk-last", files as i32),
    };
    let burst = 100;
    let what = format!(
        "bursts of {burst} `WALK /**` at offset {offset}, one connection, for {dur:?}; \
         {files} files"
    );
    let addr = d.addr();
    measured(d, name, what, false, |rep| {
        let walk = req(Verb::Walk).path("/**").offset(offset);
        let bytes = frames(&tagged(&walk, burst));
        let mut c = RawConn::connect(addr);
        let started = Instant::now();
        let mut n = 0;
        while started.elapsed() < dur {
            c.send_bytes(&bytes);
            let goal = rep.answers.values().sum::<usize>() + burst;
            let got = drain(
                &mut c,
                &mut rep.answers,
                |t| t.values().sum::<usize>() >= goal,
                super::PROBE_TIMEOUT,
                super::PROBE_TIMEOUT,
            );
            n += got;
            if got < burst {
                break;
            }
        }
        let secs = started.elapsed().as_secs_f64();
        rep.notes.push(format!(
            "{n} WALKs answered in {secs:.1} s ({:.0}/s)",
            n as f64 / secs
        ));
    })
}

/// Whether `t` holds exactly `n` answers of kind `kind`.
pub fn has(t: &Tally, kind: &str, n: usize) -> bool {
    t.get(kind).copied().unwrap_or(0) == n
}

/// The error detail the node gives a WAIT or a future read past the
/// per-connection limit (docs/behaviour.md, "Limits").
pub const TOO_MANY_ON_CONN: &str =
    "OTHER: too many requests waiting on this connection: the limit is 1000";
/// ... and past the per-node limit.
pub const TOO_MANY_ON_NODE: &str = "OTHER: too many requests waiting on this node: \
     the limit is 50000 requests, 1048576 bytes of globs";
/// The refusal of a second FOLLOW on one connection.
pub const ALREADY_FOLLOWS: &str = "OTHER: this connection already follows this node";
/// The refusal of a follower past the node's limit.
pub const TOO_MANY_FOLLOWERS: &str = "OTHER: too many followers: the limit is 256";
