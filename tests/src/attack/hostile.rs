//! The attacker's tools: connections that send and never read
//! ([`Unread`]), a writer thread that may block ([`spawn_writer`]), and
//! a [`Tally`] of what a node answered ([`drain`]).

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use doozer_proto::flags;

use crate::{ErrCode, RawConn, Recv, Request, Response};

/// What a node answered, by kind ([`answer_kind`]): e.g. `"ok": 3`,
/// `"OTHER: too many requests waiting on this connection: ...": 19000`.
pub type Tally = BTreeMap<String, usize>;

/// The kind of an answer: `ok`, `FILE`, `SNAPSHOT` or `READY` for a
/// success (the follow-stream flags), else the error code and its detail.
pub fn answer_kind(r: &Response) -> String {
    match r.err_code {
        None => {
            let f = r.flags.unwrap_or(0);
            if f & flags::FILE != 0 {
                "FILE".into()
            } else if f & flags::SNAPSHOT != 0 {
                "SNAPSHOT".into()
            } else if f & flags::READY != 0 {
                "READY".into()
            } else {
                "ok".into()
            }
        }
        Some(c) => {
            let code = ErrCode::try_from(c).map_or(format!("code {c}"), |e| e.wire_name().into());
            match &r.err_detail {
                Some(d) => format!("{code}: {d}"),
                None => code,
            }
        }
    }
}

/// Reads answers from `c` into `tally` until `done(tally)` holds, none
/// came for `quiet`, the connection closed, or `limit` has passed.
/// Returns how many were read.
pub fn drain(
    c: &mut RawConn,
    tally: &mut Tally,
    done: impl Fn(&Tally) -> bool,
    quiet: Duration,
    limit: Duration,
) -> usize {
    let deadline = Instant::now() + limit;
    let mut n = 0;
    while !done(tally) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match c.recv_any(quiet.min(left)) {
            Recv::Response(r) => {
                *tally.entry(answer_kind(&r)).or_default() += 1;
                n += 1;
            }
            Recv::Closed => {
                *tally.entry("connection closed".into()).or_default() += 1;
                break;
            }
            Recv::Garbage(_) => *tally.entry("garbage".into()).or_default() += 1,
            Recv::Timeout => break,
        }
    }
    n
}

/// Encodes `reqs` as frames, back to back.
pub fn frames<'a>(reqs: impl IntoIterator<Item = &'a Request>) -> Vec<u8> {
    let mut out = BytesMut::new();
    for r in reqs {
        doozer_proto::encode_frame(r, &mut out);
    }
    out.to_vec()
}

/// Writes `bytes` to (a clone of) `stream` on a thread of its own, which
/// may block as long as the node does not read; the thread ends when all
/// is written or the connection is shut down. Returns the bytes written.
pub fn spawn_writer(stream: &TcpStream, bytes: Vec<u8>) -> JoinHandle<usize> {
    let mut s = stream.try_clone().expect("clone a socket");
    thread::spawn(move || {
        let mut done = 0;
        for chunk in bytes.chunks(64 << 10) {
            if s.write_all(chunk).is_err() {
                break;
            }
            done += chunk.len();
        }
        done
    })
}

/// Connections that sent their requests and never read an answer, held
/// open until dropped (or [`Unread::close`]).
#[derive(Default)]
pub struct Unread {
    conns: Vec<TcpStream>,
    writers: Vec<JoinHandle<usize>>,
}

impl Unread {
    /// No connections yet.
    pub fn new() -> Unread {
        Unread::default()
    }

    /// Opens one more connection to `addr` and sends `bytes` on it
    /// (from a writer thread: the node may stop reading it). Panics if
    /// the node does not take the connection.
    pub fn open(&mut self, addr: SocketAddr, bytes: Vec<u8>) -> &TcpStream {
        self.try_open(addr, bytes)
            .unwrap_or_else(|e| panic!("connect {addr}: {e}"))
    }

    /// [`Unread::open`], or why the connection failed (a node that died
    /// under the attack refuses it).
    pub fn try_open(&mut self, addr: SocketAddr, bytes: Vec<u8>) -> std::io::Result<&TcpStream> {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
        let _ = s.set_nodelay(true);
        self.writers.push(spawn_writer(&s, bytes));
        self.conns.push(s);
        Ok(self.conns.last().expect("just pushed"))
    }

    /// Keeps a connection opened elsewhere.
    pub fn hold(&mut self, s: TcpStream) {
        self.conns.push(s);
    }

    /// How many connections are held.
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    /// Whether no connection is held.
    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// Closes every connection and waits for the writers; returns the
    /// bytes they wrote in all.
    pub fn close(&mut self) -> usize {
        for s in self.conns.drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
        self.writers.drain(..).map(|w| w.join().unwrap_or(0)).sum()
    }
}

impl Drop for Unread {
    fn drop(&mut self) {
        self.close();
    }
}
