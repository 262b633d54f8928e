//! The followers of watch and SSE mode: many nonblocking connections
//! (WAITs on the client port, or event streams of the web address), all
//! driven from one thread with `mio` ([`follow`]), each recording when
//! every change arrived.

use std::io::{ErrorKind, Read, Write};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use doozer::{Error, Request, Response, Stream, Verb};
use doozer_proto::{encode_frame, FrameDecoder};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use prost::Message;

use super::sse::Sse;
use super::stats::ArrivalLog;
use super::target::{request, Target};

/// The directory the writer writes in watch mode.
pub(super) const WATCH_DIR: &str = "/bench/watch";
/// The glob every watcher follows: all of [`WATCH_DIR`].
const WATCH_GLOB: &str = "/bench/watch/**";

/// The directory the writer writes in SSE mode; every stream follows
/// `/$events<SSE_DIR>/`.
pub(super) const SSE_DIR: &str = "/bench/sse";

/// A watcher's WAIT for the first change from `rev` on.
fn wait_req(rev: i64) -> Request {
    let mut r = request(Verb::Wait, 1);
    r.path = Some(WATCH_GLOB.into());
    r.rev = Some(rev);
    r
}

/// How long the followers get to become ready (every first WAIT written,
/// every event stream's listing read) before the stragglers are failed.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// What a followed connection speaks.
enum Proto {
    /// The client protocol: one WAIT on [`WATCH_GLOB`] outstanding; the
    /// next is queued as soon as the event answering the previous one is
    /// decoded.
    Wait,
    /// Server-Sent Events from the web address (`GET /$events/<dir>/`).
    Sse(Sse),
}

/// One followed connection, nonblocking, driven by [`follow`]. Whatever
/// it must send (the first WAIT and each next one, or the HTTP request)
/// is queued in `wbuf` and written once every socket ready in the same
/// poll has been read.
pub(super) struct FollowConn {
    /// `None` once the connection failed (its log holds the error).
    stream: Option<TcpStream>,
    proto: Proto,
    rbuf: BytesMut,
    wbuf: BytesMut,
    log: ArrivalLog,
}

impl FollowConn {
    fn new(stream: std::net::TcpStream, rbuf: BytesMut, proto: Proto) -> Result<Self, Error> {
        stream.set_nonblocking(true)?;
        Ok(FollowConn {
            stream: Some(TcpStream::from_std(stream)),
            proto,
            rbuf,
            wbuf: BytesMut::with_capacity(256),
            log: ArrivalLog::default(),
        })
    }

    /// Watcher `i`: connects (ACCESS included) and queues the first WAIT.
    pub(super) fn watcher(t: &Target, i: usize, from: i64) -> Result<FollowConn, Error> {
        let (stream, rbuf) = match t.open(i)?.into_parts() {
            (Stream::Plain(s), rbuf) => (s, rbuf),
            (Stream::Tls(_), _) => {
                return Err(Error::Tls(
                    "bench -op watch follows plain TCP connections only".into(),
                ))
            }
        };
        let mut c = FollowConn::new(stream, rbuf, Proto::Wait)?;
        encode_frame(&wait_req(from), &mut c.wbuf);
        Ok(c)
    }

    /// An event stream: connects to the web address `web` and queues the
    /// request for `path`.
    pub(super) fn event_stream(web: &str, path: &str) -> Result<FollowConn, Error> {
        let stream = std::net::TcpStream::connect(web).map_err(|source| Error::Connect {
            addr: web.into(),
            source,
        })?;
        let mut c = FollowConn::new(stream, BytesMut::new(), Proto::Sse(Sse::default()))?;
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
        c.wbuf.extend_from_slice(req.as_bytes());
        Ok(c)
    }

    /// A connection that never opened, kept so its error is reported.
    fn failed(e: Error) -> FollowConn {
        FollowConn {
            stream: None,
            proto: Proto::Wait,
            rbuf: BytesMut::new(),
            wbuf: BytesMut::new(),
            log: ArrivalLog::failed(e.to_string()),
        }
    }

    /// True once the writer may start as far as this connection goes: its
    /// first WAIT is written, or its listing read, or it failed.
    fn ready(&self) -> bool {
        self.stream.is_none()
            || match &self.proto {
                Proto::Wait => self.wbuf.is_empty(),
                Proto::Sse(s) => s.ready,
            }
    }

    /// Reads until the socket would block, recording each event. On error
    /// the connection is closed and the error logged.
    fn read(&mut self, poll: &Poll, chunk: &mut [u8], last_seen: &AtomicI64) {
        let Some(stream) = self.stream.as_mut() else {
            return;
        };
        let r = loop {
            match stream.read(chunk) {
                Ok(0) => {
                    break Err(Error::ConnectionClosed(
                        "server closed the connection".into(),
                    ))
                }
                Ok(n) => {
                    self.rbuf.extend_from_slice(&chunk[..n]);
                    let decoded = match &mut self.proto {
                        Proto::Wait => {
                            decode_wait(&mut self.rbuf, &mut self.wbuf, &mut self.log, last_seen)
                        }
                        Proto::Sse(s) => s.decode(&mut self.rbuf, &mut self.log, last_seen),
                    };
                    if let Err(e) = decoded {
                        break Err(e);
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => break Err(e.into()),
            }
        };
        if let Err(e) = r {
            self.fail(poll, e, last_seen);
        }
    }

    /// Writes as much of the queued requests as the socket takes; the rest
    /// waits for the next writable event.
    fn flush(&mut self, poll: &Poll, last_seen: &AtomicI64) {
        let Some(stream) = self.stream.as_mut() else {
            return;
        };
        let r = loop {
            if self.wbuf.is_empty() {
                break Ok(());
            }
            match stream.write(&self.wbuf) {
                Ok(0) => break Err(Error::ConnectionClosed("socket accepts no data".into())),
                Ok(n) => self.wbuf.advance(n),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => break Err(e.into()),
            }
        };
        if let Err(e) = r {
            self.fail(poll, e, last_seen);
        }
    }

    /// Closes the connection and logs `e`; `last_seen` is set past every
    /// rev so nobody waits for this connection any more.
    fn fail(&mut self, poll: &Poll, e: Error, last_seen: &AtomicI64) {
        if let Some(mut stream) = self.stream.take() {
            let _ = poll.registry().deregister(&mut stream);
        }
        self.log.error = Some(e.to_string());
        last_seen.store(i64::MAX, Ordering::Relaxed);
    }
}

/// Records every complete response in a watcher's read buffer `rbuf` in
/// its `log`, and queues the WAIT that follows each in `wbuf`.
fn decode_wait(
    rbuf: &mut BytesMut,
    wbuf: &mut BytesMut,
    log: &mut ArrivalLog,
    last_seen: &AtomicI64,
) -> Result<(), Error> {
    let decoder = FrameDecoder::default();
    while let Some(frame) = decoder
        .decode(rbuf)
        .map_err(|e| Error::Protocol(e.to_string()))?
    {
        let now = Instant::now();
        let resp =
            Response::decode(frame).map_err(|e| Error::Protocol(format!("bad response: {e}")))?;
        let rev = Error::check(resp)?.rev.unwrap_or_default();
        log.arrived(rev, now);
        last_seen.fetch_max(rev, Ordering::Relaxed);
        encode_frame(&wait_req(rev + 1), wbuf);
    }
    Ok(())
}

/// Waits on `ready` once: when told to, or when dropped, so the writer
/// is released even if the followers give up early.
struct Release<'a>(Option<&'a Barrier>);

impl Release<'_> {
    fn release(&mut self) {
        if let Some(b) = self.0.take() {
            b.wait();
        }
    }
}

impl Drop for Release<'_> {
    fn drop(&mut self) {
        self.release();
    }
}

/// Follows `last_seen.len()` connections, connection `i` made by
/// `open(i)`, from this one thread. Waits on `ready` once every connection is
/// [ready](FollowConn::ready) (those still not ready after
/// [`READY_TIMEOUT`] are failed), then runs until `stop`. Returns one log
/// per connection.
pub(super) fn follow(
    open: &dyn Fn(usize) -> Result<FollowConn, Error>,
    ready: &Barrier,
    stop: &AtomicBool,
    last_seen: &[AtomicI64],
) -> Vec<ArrivalLog> {
    let mut release = Release(Some(ready));
    let n = last_seen.len();
    let mut poll = match Poll::new() {
        Ok(p) => p,
        Err(e) => {
            let e = e.to_string();
            return (0..n).map(|_| ArrivalLog::failed(e.clone())).collect();
        }
    };
    let mut conns: Vec<FollowConn> = (0..n)
        .map(|i| {
            let mut c = open(i).unwrap_or_else(FollowConn::failed);
            if let Some(s) = c.stream.as_mut() {
                let interest = Interest::READABLE | Interest::WRITABLE;
                if let Err(e) = poll.registry().register(s, Token(i), interest) {
                    c = FollowConn::failed(e.into());
                }
            }
            c
        })
        .collect();
    // Whatever arrived while connecting, then the first requests.
    let mut chunk = vec![0u8; 64 * 1024];
    for (c, ls) in conns.iter_mut().zip(last_seen) {
        if c.stream.is_none() {
            ls.store(i64::MAX, Ordering::Relaxed);
        }
        c.read(&poll, &mut chunk, ls);
        c.flush(&poll, ls);
    }
    let ready_deadline = Instant::now() + READY_TIMEOUT;
    let mut touched = Vec::with_capacity(1024);
    let mut events = Events::with_capacity(1024);
    loop {
        if release.0.is_some() {
            if conns.iter().all(FollowConn::ready) {
                release.release();
            } else if Instant::now() >= ready_deadline {
                for (c, ls) in conns.iter_mut().zip(last_seen) {
                    if !c.ready() {
                        let e = format!("not ready after {}s", READY_TIMEOUT.as_secs());
                        c.fail(&poll, Error::Protocol(e), ls);
                    }
                }
                release.release();
            }
        }
        if stop.load(Ordering::Relaxed) {
            break;
        }
        if let Err(e) = poll.poll(&mut events, Some(Duration::from_millis(50))) {
            if e.kind() == ErrorKind::Interrupted {
                continue;
            }
            for c in conns.iter_mut().filter(|c| c.stream.is_some()) {
                c.stream = None;
                c.log.error = Some(format!("poll: {e}"));
            }
            break;
        }
        // Every ready socket is read (and its events stamped) before any
        // next request is written, so one connection's write does not
        // delay the timestamps of the others in the batch.
        for ev in events.iter() {
            let i = ev.token().0;
            if let (Some(c), Some(ls)) = (conns.get_mut(i), last_seen.get(i)) {
                c.read(&poll, &mut chunk, ls);
                touched.push(i);
            }
        }
        for i in touched.drain(..) {
            conns[i].flush(&poll, &last_seen[i]);
        }
    }
    conns.into_iter().map(|c| c.log).collect()
}
