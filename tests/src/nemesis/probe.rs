//! Requests that never panic and never block for long: what the nemesis
//! checks send to nodes that may be paused, cut off or dead. Each gives an
//! `Err` saying what went wrong instead.

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use doozer_proto::{ErrCode, Request, Response, Verb};

use crate::cluster::{call_timeout, Entry};
use crate::{req, RawConn, Recv, RequestExt};

/// How long one probe request may take.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// A connection to `addr`, or why not (within [`PROBE_TIMEOUT`]).
pub fn connect(addr: SocketAddr) -> Result<RawConn, String> {
    let stream = TcpStream::connect_timeout(&addr, PROBE_TIMEOUT)
        .map_err(|e| format!("connect {addr}: {e}"))?;
    Ok(RawConn::from_stream(stream))
}

/// Sends `r` on a fresh connection to `addr`; the response (error fields
/// included), or why none came within `timeout`.
pub fn call(addr: SocketAddr, r: Request, timeout: Duration) -> Result<Response, String> {
    let mut c = connect(addr)?;
    call_on(&mut c, r, timeout)
}

/// Sends `r` on `c`; the response, or why none came within `timeout`.
pub fn call_on(c: &mut RawConn, r: Request, timeout: Duration) -> Result<Response, String> {
    let what = format!("{:?}", Verb::try_from(r.verb.unwrap_or(0)));
    call_timeout(c, r, timeout).ok_or_else(|| format!("no answer to {what} within {timeout:?}"))
}

/// The current rev of the node at `addr`.
pub fn rev(addr: SocketAddr) -> Result<i64, String> {
    let r = call(addr, req(Verb::Rev), PROBE_TIMEOUT)?;
    match r.err_code {
        None => Ok(r.rev.unwrap_or(0)),
        Some(_) => Err(format!("REV: {r:?}")),
    }
}

/// Every file matching `glob` at `rev` (the head if `None`) on the node at
/// `addr`, WALKs pipelined 64 at a time.
pub fn walk(addr: SocketAddr, glob: &str, rev: Option<i64>) -> Result<Vec<Entry>, String> {
    let mut c = connect(addr)?;
    let mut out = Vec::new();
    let deadline = Instant::now() + PROBE_TIMEOUT * 10;
    for batch in 0.. {
        let tags: Vec<i32> = (0..64)
            .map(|k| {
                let tag = c.tag();
                let mut w = req(Verb::Walk).path(glob).offset(batch * 64 + k).tag(tag);
                w.rev = rev;
                c.send(&w);
                tag
            })
            .collect();
        let mut ended = false;
        for tag in tags {
            let r = recv_tag_until(&mut c, tag, deadline)
                .ok_or_else(|| format!("WALK {glob}: no answer in time"))?;
            if r.err_code == Some(ErrCode::Range as i32) {
                ended = true;
            } else if ended {
                continue;
            } else if r.err_code.is_some() {
                return Err(format!("WALK {glob} at {rev:?}: {r:?}"));
            } else {
                out.push((
                    r.path.unwrap_or_default(),
                    r.rev.unwrap_or(0),
                    r.value.map(|v| v.to_vec()).unwrap_or_default(),
                ));
            }
        }
        if ended {
            return Ok(out);
        }
    }
    unreachable!()
}

/// The response with `tag` on `c`, skipping others, until `deadline`.
fn recv_tag_until(c: &mut RawConn, tag: i32, deadline: Instant) -> Option<Response> {
    loop {
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        match c.recv_any(deadline - now) {
            Recv::Response(r) if r.tag == Some(tag) => return Some(r),
            Recv::Response(_) => continue,
            _ => return None,
        }
    }
}

/// The body of `path` at the head of the node at `addr` (empty if
/// missing).
pub fn get(addr: SocketAddr, path: &str) -> Result<Vec<u8>, String> {
    let r = call(addr, req(Verb::Get).path(path), PROBE_TIMEOUT)?;
    match r.err_code {
        None => Ok(r.value.map(|v| v.to_vec()).unwrap_or_default()),
        Some(_) => Err(format!("GET {path}: {r:?}")),
    }
}

/// One change as a WAIT reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The file.
    pub path: String,
    /// The change's rev.
    pub rev: i64,
    /// The body after the change (empty for a DEL).
    pub body: Vec<u8>,
    /// The wire flags (4 = SET, 8 = DEL).
    pub flags: i32,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.flags {
            4 => "SET",
            8 => "DEL",
            _ => "change",
        };
        write!(
            f,
            "{kind} {} {:?} at rev {}",
            self.path,
            String::from_utf8_lossy(&self.body),
            self.rev
        )
    }
}

/// Every change to a file matching `glob` with a rev in `from..=to`, as
/// the node at `addr` keeps them in its history: WAIT from `from`, then
/// from each answer's rev + 1. A WAIT that the node parks (no matching
/// change after the rev asked, so far) ends the list once the node has
/// reached `to`. `Err` if the node's history does not reach back to
/// `from` (TOO_LATE) or it stops answering.
pub fn changes(addr: SocketAddr, glob: &str, from: i64, to: i64) -> Result<Vec<Change>, String> {
    let mut c = connect(addr)?;
    let mut out = Vec::new();
    let mut next = from;
    let deadline = Instant::now() + Duration::from_secs(60);
    while next <= to {
        let tag = c.tag();
        c.send(&req(Verb::Wait).path(glob).rev(next).tag(tag));
        let r = loop {
            if let Some(r) = recv_tag_until(&mut c, tag, Instant::now() + PROBE_TIMEOUT) {
                break Some(r);
            }
            // Parked: done if the node is past `to` (a change up to `to`
            // would have been answered from its history at once).
            if self::rev(addr)? >= to {
                break None;
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "WAIT {glob} at {next}: the node never reached rev {to}"
                ));
            }
        };
        let Some(r) = r else {
            break;
        };
        if let Some(code) = r.err_code {
            return Err(format!(
                "WAIT {glob} at {next}: {:?} {}",
                ErrCode::try_from(code),
                r.err_detail.unwrap_or_default()
            ));
        }
        let ch = Change {
            path: r.path.unwrap_or_default(),
            rev: r.rev.unwrap_or(0),
            body: r.value.map(|v| v.to_vec()).unwrap_or_default(),
            flags: r.flags.unwrap_or(0),
        };
        next = ch.rev + 1;
        if ch.rev <= to {
            out.push(ch);
        }
    }
    Ok(out)
}
