//! One TCP connection shared by many threads, with pipelining.
//!
//! Callers register a tag and a one-shot channel, write their frame under
//! the writer mutex, and block on the channel. A reader thread decodes
//! responses and routes each by tag to its waiting caller, so a slow WAIT
//! never holds up the GETs sent after it.
//!
//! With TLS the socket is split the same way and the rustls session sits
//! behind its own mutex, held only to encrypt or decrypt, never across a
//! blocking socket call: a writer takes the writer mutex, encrypts under
//! the session lock, releases it, then writes; the reader blocks on the
//! socket without any lock, then decrypts under the session lock. So a
//! writer blocked on a full socket never keeps the reader from draining
//! the node's answers (which is what unblocks the node, and so the
//! writer). The session's own rare output (alerts) goes out with the next
//! write, or at once if no write is in progress.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::Instant;

use bytes::BytesMut;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use doozer_proto::{encode_frame, FrameDecoder, Request, Response};
use parking_lot::Mutex;
use prost::Message;

use crate::error::{Error, Result};
use crate::tls::{self, TlsClient};

/// Responses of a stream buffered before the reader waits for its consumer.
const STREAM_BUFFER: usize = 1024;

/// A TLS session shared by a connection's writers and its reader.
type Session = Arc<Mutex<rustls::ClientConnection>>;

pub(crate) type Reply = std::result::Result<Response, Closed>;

/// Why the connection ended; cloned to every waiting caller.
#[derive(Debug, Clone)]
pub(crate) enum Closed {
    Eof,
    Io(String),
    Protocol(String),
    Dropped,
}

impl From<Closed> for Error {
    fn from(c: Closed) -> Error {
        match c {
            Closed::Eof => Error::ConnectionClosed("server closed the connection".into()),
            Closed::Io(e) => Error::ConnectionClosed(e),
            Closed::Protocol(e) => Error::Protocol(e),
            Closed::Dropped => Error::ConnectionClosed("client dropped".into()),
        }
    }
}

#[derive(Default)]
struct Pending {
    next_tag: i32,
    /// Outstanding tags. `None` = the caller gave up (timeout); the tag stays
    /// reserved until its response arrives, since the server still holds it
    /// and would answer TAG_IN_USE if we reused it.
    waiters: HashMap<i32, Option<Sender<Reply>>>,
    /// Tags answered by a stream of responses (BACKUP), until one that
    /// ends it ([`ends_stream`]).
    streams: std::collections::HashSet<i32>,
    closed: Option<Closed>,
}

/// Whether `r` is the last response of a stream: READY, or an error.
fn ends_stream(r: &Response) -> bool {
    r.err_code.is_some() || r.flags.is_some_and(|f| f & doozer_proto::flags::READY != 0)
}

impl Pending {
    fn close(&mut self, why: Closed) {
        if self.closed.is_none() {
            self.closed = Some(why.clone());
        }
        self.streams.clear();
        for (_, w) in self.waiters.drain() {
            if let Some(w) = w {
                let _ = w.send(Err(why.clone()));
            }
        }
    }
}

/// A live connection to one node.
pub(crate) struct Conn {
    addr: String,
    writer: Arc<Mutex<TcpStream>>,
    /// The TLS session, when the connection is TLS.
    tls: Option<Session>,
    pending: Arc<Mutex<Pending>>,
}

/// A request in flight; [`Ticket::wait`] blocks for its response.
pub(crate) struct Ticket {
    tag: i32,
    rx: Receiver<Reply>,
    pending: Arc<Mutex<Pending>>,
    done: bool,
}

impl Conn {
    /// Connects to `addr` (`host:port`), over TLS when `tls` is given (the
    /// handshake completes here), and starts the reader thread.
    pub(crate) fn connect(addr: &str, tls: Option<&TlsClient>) -> std::io::Result<Conn> {
        let (stream, session) = match tls::Stream::connect(addr, tls)? {
            tls::Stream::Plain(s) => (s, None),
            tls::Stream::Tls(s) => {
                let s = *s;
                (s.sock, Some(Arc::new(Mutex::new(s.conn))))
            }
        };
        let reader = stream.try_clone()?;
        let writer = Arc::new(Mutex::new(stream));
        let pending = Arc::new(Mutex::new(Pending::default()));
        let shared = pending.clone();
        let tls_reader = session.clone().map(|s| TlsReader {
            session: s,
            writer: writer.clone(),
        });
        thread::Builder::new()
            .name(format!("doozer-reader {addr}"))
            .spawn(move || read_loop(reader, tls_reader, shared))?;
        Ok(Conn {
            addr: addr.to_string(),
            writer,
            tls: session,
            pending,
        })
    }

    /// The `host:port` this connection was made to.
    pub(crate) fn addr(&self) -> &str {
        &self.addr
    }

    /// True once the connection is unusable.
    pub(crate) fn is_closed(&self) -> bool {
        self.pending.lock().closed.is_some()
    }

    /// Sends `reqs` in one write (their tags are assigned here) and returns
    /// one ticket per request, in order.
    pub(crate) fn start(&self, reqs: Vec<Request>) -> Result<Vec<Ticket>> {
        let mut tickets = Vec::with_capacity(reqs.len());
        let mut buf = BytesMut::new();
        {
            let mut p = self.pending.lock();
            if let Some(why) = &p.closed {
                return Err(why.clone().into());
            }
            for mut req in reqs {
                let tag = free_tag(&mut p)?;
                let (tx, rx) = crossbeam_channel::bounded(1);
                p.waiters.insert(tag, Some(tx));
                req.tag = Some(tag);
                encode_frame(&req, &mut buf);
                tickets.push(Ticket {
                    tag,
                    rx,
                    pending: self.pending.clone(),
                    done: false,
                });
            }
        }
        self.write(&buf)?;
        Ok(tickets)
    }

    /// Sends `req`, whose answer is a stream of responses (BACKUP), and
    /// returns the receiving end: responses in order, the last one READY
    /// or an error. The channel is bounded, so a slow consumer slows the
    /// node down rather than filling this process's memory.
    pub(crate) fn stream(&self, mut req: Request) -> Result<Receiver<Reply>> {
        let mut buf = BytesMut::new();
        let rx = {
            let mut p = self.pending.lock();
            if let Some(why) = &p.closed {
                return Err(why.clone().into());
            }
            let tag = free_tag(&mut p)?;
            let (tx, rx) = crossbeam_channel::bounded(STREAM_BUFFER);
            p.waiters.insert(tag, Some(tx));
            p.streams.insert(tag);
            req.tag = Some(tag);
            encode_frame(&req, &mut buf);
            rx
        };
        self.write(&buf)?;
        Ok(rx)
    }

    /// Writes `buf` (sealed, with TLS); a failure closes the connection.
    fn write(&self, buf: &[u8]) -> Result<()> {
        let mut w = self.writer.lock();
        let written = match &self.tls {
            None => w.write_all(buf),
            Some(session) => seal(session, buf).and_then(|out| w.write_all(&out)),
        };
        if let Err(e) = written {
            let _ = w.shutdown(Shutdown::Both);
            self.pending.lock().close(Closed::Io(e.to_string()));
            return Err(Error::ConnectionClosed(e.to_string()));
        }
        Ok(())
    }

    /// Sends one request and waits for its response (until `deadline`).
    pub(crate) fn call(&self, req: Request, deadline: Option<Instant>) -> Result<Response> {
        let mut t = self.start(vec![req])?;
        match t.pop() {
            Some(t) => t.wait(deadline),
            None => Err(Error::Protocol("no ticket".into())),
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        // Wakes the reader thread so it exits and fails anything pending.
        let _ = self.writer.lock().shutdown(Shutdown::Both);
        self.pending.lock().close(Closed::Dropped);
    }
}

/// Encrypts `plain` (and anything else the session has to send) under
/// the session lock, for the caller to write without it.
fn seal(session: &Session, plain: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut s = session.lock();
    s.writer().write_all(plain)?;
    let mut out = Vec::with_capacity(plain.len() + 64);
    while s.wants_write() {
        s.write_tls(&mut out)?;
    }
    Ok(out)
}

/// What the reader thread of a TLS connection needs.
struct TlsReader {
    session: Session,
    /// For the session's own output (alerts), taken only if free.
    writer: Arc<Mutex<TcpStream>>,
}

/// The next tag not outstanding; tags are non-negative and wrap around.
fn free_tag(p: &mut Pending) -> Result<i32> {
    for _ in 0..=p.waiters.len() {
        let tag = p.next_tag;
        p.next_tag = p.next_tag.checked_add(1).unwrap_or(0);
        if !p.waiters.contains_key(&tag) {
            return Ok(tag);
        }
    }
    Err(Error::Protocol("no free tag".into()))
}

impl Ticket {
    /// Blocks for the response, or until `deadline` (then [`Error::Timeout`]).
    pub(crate) fn wait(mut self, deadline: Option<Instant>) -> Result<Response> {
        let reply = match deadline {
            None => self.rx.recv().map_err(|_| Closed::Dropped.into()),
            Some(d) => match self
                .rx
                .recv_timeout(d.saturating_duration_since(Instant::now()))
            {
                Ok(r) => Ok(r),
                Err(RecvTimeoutError::Timeout) => Err(Error::Timeout),
                Err(RecvTimeoutError::Disconnected) => Err(Closed::Dropped.into()),
            },
        };
        self.done = reply.is_ok();
        reply?.map_err(Error::from)
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if !self.done {
            let mut p = self.pending.lock();
            if let Some(w) = p.waiters.get_mut(&self.tag) {
                *w = None;
            }
        }
    }
}

fn read_loop(mut stream: TcpStream, tls: Option<TlsReader>, pending: Arc<Mutex<Pending>>) {
    let why = read_responses(&mut stream, tls.as_ref(), &pending);
    let _ = stream.shutdown(Shutdown::Both);
    pending.lock().close(why);
}

fn read_responses(
    stream: &mut TcpStream,
    tls: Option<&TlsReader>,
    pending: &Mutex<Pending>,
) -> Closed {
    let decoder = FrameDecoder::default();
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        if let Err(why) = dispatch(&decoder, &mut buf, pending) {
            return why;
        }
        let n = match stream.read(&mut chunk) {
            Ok(0) => return Closed::Eof,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Closed::Io(e.to_string()),
        };
        match tls {
            None => buf.extend_from_slice(&chunk[..n]),
            Some(t) => {
                if let Some(why) = open(t, &chunk[..n], &mut buf) {
                    return why;
                }
            }
        }
    }
}

/// Decrypts `sealed` (bytes just read) into `plain`; `Some` if the
/// connection is over (the node closed the session, or sent garbage).
fn open(t: &TlsReader, mut sealed: &[u8], plain: &mut BytesMut) -> Option<Closed> {
    let mut s = t.session.lock();
    let mut tmp = [0u8; 16 * 1024];
    while !sealed.is_empty() {
        if let Err(e) = s.read_tls(&mut sealed) {
            return Some(Closed::Io(format!("TLS: {e}")));
        }
        if let Err(e) = s.process_new_packets() {
            return Some(Closed::Protocol(format!("TLS: {e}")));
        }
        loop {
            match s.reader().read(&mut tmp) {
                Ok(0) => return Some(Closed::Eof), // close_notify
                Ok(n) => plain.extend_from_slice(&tmp[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Some(Closed::Io(format!("TLS: {e}"))),
            }
        }
    }
    if s.wants_write() {
        // Only if no writer is busy (it could be blocked on a full
        // socket); otherwise this goes out with its or the next write.
        if let Some(mut w) = t.writer.try_lock() {
            let mut out = Vec::new();
            while s.wants_write() {
                if s.write_tls(&mut out).is_err() {
                    break;
                }
            }
            drop(s);
            let _ = w.write_all(&out);
        }
    }
    None
}

/// Routes every complete response in `buf` to its waiter.
fn dispatch(
    decoder: &FrameDecoder,
    buf: &mut BytesMut,
    pending: &Mutex<Pending>,
) -> std::result::Result<(), Closed> {
    loop {
        let frame = match decoder.decode(buf) {
            Ok(Some(f)) => f,
            Ok(None) => return Ok(()),
            Err(e) => return Err(Closed::Protocol(e.to_string())),
        };
        let resp = match Response::decode(frame) {
            Ok(r) => r,
            Err(e) => return Err(Closed::Protocol(format!("bad response: {e}"))),
        };
        let Some(tag) = resp.tag else {
            return Err(Closed::Protocol("response without a tag".into()));
        };
        let mut p = pending.lock();
        if p.streams.contains(&tag) {
            let w = if ends_stream(&resp) {
                p.streams.remove(&tag);
                p.waiters.remove(&tag).flatten()
            } else {
                p.waiters.get(&tag).cloned().flatten()
            };
            // Sent without the lock: the channel may be full (a slow
            // consumer), and other callers must not wait for it.
            drop(p);
            if let Some(w) = w {
                let _ = w.send(Ok(resp));
            }
            continue;
        }
        // A tag we never sent is ignored rather than fatal: it harms no
        // one waiting.
        if let Some(Some(w)) = p.waiters.remove(&tag) {
            let _ = w.send(Ok(resp));
        }
    }
}
