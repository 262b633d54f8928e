//! The attacks on the web viewer (`-w`): event streams that never read
//! (issue 12, item 4) and slowloris, idle partial request heads (item 5).

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use super::hostile::{Tally, Unread};
use super::{measured, populate, Report, BODY_48K};
use crate::browser::http_request;
use crate::Doozerd;

/// An event-stream request for the whole tree.
const EVENTS: &[u8] = b"GET /$events/ HTTP/1.1\r\nHost: attack\r\n\r\n";
/// A request head that never ends (no blank line).
const PARTIAL_HEAD: &[u8] = b"GET / HTTP/1.1\r\nHost: attack\r\n";

/// The status line a web connection starts with (read within 10 s), or
/// what happened instead.
fn status_line(s: &TcpStream) -> String {
    let Ok(mut s) = s.try_clone() else {
        return "clone failed".into();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while buf.len() < 200 {
        match s.read(&mut byte) {
            Ok(0) => return "connection closed".into(),
            Ok(_) if byte[0] == b'\r' => break,
            Ok(_) => buf.push(byte[0]),
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut => {
                return "no answer".into()
            }
            Err(_) => return "connection closed".into(),
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// Tallies the status line of every connection of `u`.
fn tally_status(conns: &[TcpStream], tally: &mut Tally) {
    for s in conns {
        *tally.entry(status_line(s)).or_default() += 1;
    }
}

/// Item 4: event streams of the whole tree (`GET /$events/`) opened at
/// `per_sec` a second for `dur`, on a store of `files` files of 48 KiB;
/// none is ever read, all stay open until the end.
pub fn events_rate(
    d: &mut Doozerd,
    web: SocketAddr,
    files: usize,
    per_sec: u32,
    dur: Duration,
) -> Report {
    populate(d, "big", files, BODY_48K);
    let what = format!(
        "`GET /$events/` {per_sec}/s for {dur:?}, streams never read; {files} files of 48 KiB"
    );
    measured(d, "events-rate", what, false, |rep| {
        let mut u = Unread::new();
        let mut conns = Vec::new();
        let started = Instant::now();
        let every = Duration::from_secs(1) / per_sec;
        let mut next = started;
        while started.elapsed() < dur {
            match open_web(&mut u, web, EVENTS, &mut rep.answers) {
                Some(s) => conns.push(s),
                None => break,
            }
            next += every;
            thread::sleep(next.saturating_duration_since(Instant::now()));
        }
        tally_status(&conns, &mut rep.answers);
        rep.notes.push(format!("{} streams held", conns.len()));
    })
}

/// Item 4: `streams` event streams of the whole tree opened at once on a
/// store of `files` files of 48 KiB, never read, held for `hold`.
pub fn events_unread(
    d: &mut Doozerd,
    web: SocketAddr,
    files: usize,
    streams: usize,
    hold: Duration,
) -> Report {
    populate(d, "big", files, BODY_48K);
    let what = format!("{streams} event streams never read; {files} files of 48 KiB");
    measured(d, "events-unread", what, false, |rep| {
        let mut u = Unread::new();
        let conns: Vec<TcpStream> = (0..streams)
            .filter_map(|_| open_web(&mut u, web, EVENTS, &mut rep.answers))
            .collect();
        thread::sleep(hold);
        tally_status(&conns, &mut rep.answers);
    })
}

/// Beyond the issue: `streams` event streams of the whole tree, never
/// read, on a store of `files` files of 48 KiB, while another client
/// makes `per_sec` changes a second (SETs of one small file) for `dur`:
/// how an unread stream's listing fares when the store keeps changing.
pub fn events_with_writes(
    d: &mut Doozerd,
    web: SocketAddr,
    files: usize,
    streams: usize,
    (per_sec, dur): (u32, Duration),
) -> Report {
    populate(d, "big", files, BODY_48K);
    let what = format!(
        "{streams} event streams never read, while a client SETs a small file {per_sec}/s \
         for {dur:?}; {files} files of 48 KiB"
    );
    let addr = d.addr();
    measured(d, "events-writes", what, false, |rep| {
        let mut u = Unread::new();
        let conns: Vec<TcpStream> = (0..streams)
            .filter_map(|_| open_web(&mut u, web, EVENTS, &mut rep.answers))
            .collect();
        let mut c = crate::RawConn::connect(addr);
        let started = Instant::now();
        let every = Duration::from_secs(1) / per_sec;
        let (mut next, mut n) = (started, 0);
        while started.elapsed() < dur {
            let r = c.set("/w", -1, b"w");
            *rep.answers.entry(super::answer_kind(&r)).or_default() += 1;
            n += 1;
            next += every;
            thread::sleep(next.saturating_duration_since(Instant::now()));
        }
        rep.notes.push(format!("{n} SETs"));
        tally_status(&conns, &mut rep.answers);
    })
}

/// Opens a web connection held by `u`, sends `bytes`, and returns a
/// clone of it (to look at later); `None`, counted in `tally`, if the
/// node refused it.
fn open_web(u: &mut Unread, web: SocketAddr, bytes: &[u8], tally: &mut Tally) -> Option<TcpStream> {
    match u.try_open(web, bytes.to_vec()) {
        Ok(s) => Some(s.try_clone().expect("clone a socket")),
        Err(e) => {
            *tally.entry(format!("connect: {e}")).or_default() += 1;
            None
        }
    }
}

/// What a slowloris attack saw.
#[derive(Debug, Clone, Default)]
pub struct Slowloris {
    /// The measures.
    pub report: Report,
    /// Heads the node closed at once (past its web connection limit).
    pub closed_at_once: usize,
    /// Heads it held open.
    pub held: usize,
    /// Of those, how many it closed by the end.
    pub closed_later: usize,
    /// The longest one of those stayed open, from its connect until the
    /// node closed it, in seconds.
    pub longest_held_secs: f64,
    /// A full web request after the attack was answered 200.
    pub web_ok_after: bool,
}

/// Whether `s` was closed by the node (EOF or reset), without blocking.
fn closed(s: &mut TcpStream) -> bool {
    let _ = s.set_nonblocking(true);
    let mut b = [0u8; 64];
    match s.read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != ErrorKind::WouldBlock,
    }
}

/// Item 5: `heads` connections to the web viewer, each sending a partial
/// request head and then nothing; the node is watched for `watch` (the
/// heads it keeps must be closed after its head deadline), then a whole
/// request must be answered. The node's descriptor limit is the caller's
/// choice ([`crate::DoozerdBuilder::limit`]).
pub fn slowloris(d: &mut Doozerd, web: SocketAddr, heads: usize, watch: Duration) -> Slowloris {
    populate(d, "big", 0, 0);
    let mut out = Slowloris::default();
    let what = format!("{heads} idle partial HTTP heads on `-w`");
    out.report = measured(d, "slowloris", what, false, |rep| {
        let mut socks = Vec::new();
        for _ in 0..heads {
            match TcpStream::connect_timeout(&web, Duration::from_secs(2)) {
                Ok(mut s) => {
                    let _ = s.write_all(PARTIAL_HEAD);
                    socks.push((s, Instant::now()));
                }
                Err(e) => *rep.answers.entry(format!("connect: {e}")).or_default() += 1,
            }
        }
        let sent = Instant::now();
        // What the node closes at once it closes within a moment.
        thread::sleep(Duration::from_secs(1));
        let mut open = Vec::new();
        for (mut s, at) in socks {
            if closed(&mut s) {
                out.closed_at_once += 1;
            } else {
                open.push((s, at));
            }
        }
        out.held = open.len();
        while !open.is_empty() && sent.elapsed() < watch {
            thread::sleep(Duration::from_millis(100));
            open.retain_mut(|(s, at)| {
                let gone = closed(s);
                if gone {
                    out.closed_later += 1;
                    out.longest_held_secs = out.longest_held_secs.max(at.elapsed().as_secs_f64());
                }
                !gone
            });
        }
        rep.answers
            .insert("closed at once".into(), out.closed_at_once);
        rep.answers.insert("held".into(), out.held);
        rep.answers
            .insert("held, then closed".into(), out.closed_later);
        rep.notes.push(format!(
            "{} closed at once, {} held, {} of those closed by the node (at most {:.1} s after \
             their connect)",
            out.closed_at_once, out.held, out.closed_later, out.longest_held_secs
        ));
        let stats = http_request(web, "GET", "/$stats.json", None, Duration::from_secs(10));
        out.web_ok_after = matches!(stats, Ok(r) if r.status == 200);
    });
    out
}
