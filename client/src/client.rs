//! [`Client`]: a thread-safe doozer client with pipelining, reconnect and
//! failover.
//!
//! # Reconnect and retry
//!
//! All clones of a `Client` share one connection. When it breaks, the calls
//! waiting on it fail with a connection error, and the next call connects
//! again, trying every `ca=` address in turn, starting with the one after
//! the address that failed, and re-sending ACCESS with the secret.
//!
//! Reads (GET, REV, STAT, GETDIR, WALK, SELF, WAIT) are retried once,
//! automatically, on a fresh connection. Writes (SET, DEL, NOP) are **not**
//! retried: the first attempt may have been applied before the connection
//! broke, and applying it twice is not the same (a second conditional SET
//! would fail with a rev mismatch, a clobbering one would overwrite a newer
//! value). A write that fails with a connection error may or may not have
//! happened; read the file to find out.
//!
//! # Writes through a slave
//!
//! A write refused with `READONLY` (the node is a slave) is sent again to
//! a CAL of the same cluster, whose connection is then kept for later
//! writes; reads stay on the node they go to. See [`crate::cal`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use doozer_proto::{ErrCode, Request, Response, Verb};
use parking_lot::Mutex;

use crate::conn::Conn;
use crate::error::{Error, Result};
use crate::event::{Event, Stat};
use crate::tls::TlsClient;
use crate::uri::DoozerUri;

/// The result of [`Client::get_linearizable`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinearizableRead {
    /// The file's body (empty if missing).
    pub body: Bytes,
    /// The file's revision (0 if missing).
    pub rev: i64,
    /// The revision the read happened at: the NOP's, the read's place in
    /// the cluster's order.
    pub at: i64,
}

/// A doozer client. Cheap to clone; all clones share one pipelined
/// connection and may be used from many threads at once.
///
/// ```no_run
/// # fn main() -> doozer::Result<()> {
/// let c = doozer::Client::connect("doozer:?ca=127.0.0.1:8046&ca=127.0.0.1:8047")?;
/// let rev = c.set("/config/x", doozer::rev::CLOBBER, &b"1"[..])?;
/// let c2 = c.clone();
/// let t = std::thread::spawn(move || c2.get("/config/x", Some(rev)));
/// let (body, _) = t.join().unwrap()?;
/// assert_eq!(&body[..], b"1");
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    addrs: Vec<String>,
    /// TLS to every node, when the URI has `tlsca=`.
    tls: Option<TlsClient>,
    state: Mutex<State>,
    /// The CAL writes go to since one was refused with `READONLY`
    /// ([`crate::cal`]); kept once closed, for its address.
    cal: Mutex<Option<Arc<Conn>>>,
}

struct State {
    conn: Option<Arc<Conn>>,
    /// Index in `addrs` of the current (or last) connection.
    index: usize,
    secret: Option<Vec<u8>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("addrs", &self.inner.addrs)
            .finish_non_exhaustive()
    }
}

/// True for the writes: SET, DEL and NOP.
fn is_write(verb: Option<i32>) -> bool {
    matches!(
        verb.and_then(|v| Verb::try_from(v).ok()),
        Some(Verb::Set | Verb::Del | Verb::Nop)
    )
}

/// True for verbs that are safe to send twice.
fn is_read(verb: Option<i32>) -> bool {
    matches!(
        verb.and_then(|v| Verb::try_from(v).ok()),
        Some(
            Verb::Get
                | Verb::Rev
                | Verb::Stat
                | Verb::Getdir
                | Verb::Walk
                | Verb::Self_
                | Verb::Wait
        )
    )
}

fn req(verb: Verb) -> Request {
    Request {
        verb: Some(verb as i32),
        ..Default::default()
    }
}

impl Client {
    /// Parses `uri` and connects to the first of its `ca=` addresses that
    /// answers, then sends ACCESS if the URI has `sk=`.
    ///
    /// A URI with `tlsca=PATH` connects over TLS, trusting the CA
    /// certificates in that PEM file ([`Error::Tls`] if it is unusable; a
    /// node whose certificate does not verify is an [`Error::Connect`]).
    ///
    /// A URI with `cn=` needs a name service: use [`Client::connect_via`]
    /// (here it is [`Error::NoNameService`]).
    pub fn connect(uri: &str) -> Result<Client> {
        Client::connect_uri(&uri.parse()?)
    }

    /// Like [`Client::connect`], from a parsed URI.
    pub fn connect_uri(uri: &DoozerUri) -> Result<Client> {
        // A `cn=` is resolved only through a name service: that is
        // `Client::connect_uri_via`, in ns.rs, which builds on this module.
        if uri.cluster.is_some() {
            return Err(Error::NoNameService);
        }
        Client::connect_to(uri.addrs.clone(), uri)
    }

    /// Connects to the first of `addrs` that answers, with the TLS and
    /// secret of `uri` (whose own addresses are not used).
    pub(crate) fn connect_to(addrs: Vec<String>, uri: &DoozerUri) -> Result<Client> {
        let tls = match &uri.tls_ca {
            Some(path) => Some(TlsClient::from_ca_file(path)?),
            None => None,
        };
        let c = Client {
            inner: Arc::new(Inner {
                addrs,
                tls,
                state: Mutex::new(State {
                    conn: None,
                    index: 0,
                    secret: uri.secret.clone(),
                }),
                cal: Mutex::new(None),
            }),
        };
        c.conn()?;
        Ok(c)
    }

    /// The address of the node currently connected to, if any.
    pub fn current_addr(&self) -> Option<String> {
        let st = self.inner.state.lock();
        st.conn
            .as_ref()
            .filter(|c| !c.is_closed())
            .map(|c| c.addr().to_string())
    }

    /// The address of the CAL this client sends its writes to, when a
    /// write was refused with `READONLY` and sent there instead
    /// ([`crate::cal`]), while that connection is open; `None` while writes
    /// go to the node of [`Client::current_addr`].
    pub fn write_addr(&self) -> Option<String> {
        self.cal()
            .filter(|c| !c.is_closed())
            .map(|c| c.addr().to_string())
    }

    /// The live connection, connecting (or reconnecting) if needed. Holds
    /// the state lock while connecting so concurrent callers don't race to
    /// open several connections.
    pub(crate) fn conn(&self) -> Result<Arc<Conn>> {
        let mut st = self.inner.state.lock();
        let start = match &st.conn {
            Some(c) if !c.is_closed() => return Ok(c.clone()),
            // After a failure, start with the next address.
            Some(_) => st.index + 1,
            None => st.index,
        };
        st.conn = None;
        let n = self.inner.addrs.len();
        let mut last_err = None;
        for i in 0..n {
            let index = (start + i) % n;
            match self.open(&self.inner.addrs[index], st.secret.as_deref()) {
                Ok(conn) => {
                    st.index = index;
                    st.conn = Some(conn.clone());
                    return Ok(conn);
                }
                Err(e) if e.is_connection_error() => last_err = Some(e),
                // A refused secret will be refused everywhere.
                Err(e) => return Err(e),
            }
        }
        Err(last_err.unwrap_or_else(|| Error::ConnectionClosed("no address to connect to".into())))
    }

    /// A new connection to `addr`, with this client's TLS, that presented
    /// `secret` (ACCESS) if there is one.
    fn open(&self, addr: &str, secret: Option<&[u8]>) -> Result<Arc<Conn>> {
        let conn =
            Conn::connect(addr, self.inner.tls.as_ref()).map_err(|source| Error::Connect {
                addr: addr.to_string(),
                source,
            })?;
        if let Some(secret) = secret {
            let mut r = req(Verb::Access);
            r.value = Some(Bytes::copy_from_slice(secret));
            conn.call(r, None).and_then(Error::check)?;
        }
        Ok(Arc::new(conn))
    }

    /// A new connection to `addr` with this client's TLS and secret, as
    /// to the URI's own addresses.
    pub(crate) fn open_with_secret(&self, addr: &str) -> Result<Arc<Conn>> {
        let secret = self.inner.state.lock().secret.clone();
        self.open(addr, secret.as_deref())
    }

    /// The connection to the CAL writes go to, open or closed (`None`
    /// before any write was refused with `READONLY`, and after
    /// [`Client::access`]).
    pub(crate) fn cal(&self) -> Option<Arc<Conn>> {
        self.inner.cal.lock().clone()
    }

    /// Sends later writes to `conn`.
    pub(crate) fn keep_cal(&self, conn: Arc<Conn>) {
        *self.inner.cal.lock() = Some(conn);
    }

    /// Sends `r` and returns the raw response, error fields included (only
    /// transport failures are `Err`). Reads are retried once on a fresh
    /// connection; a write refused with `READONLY` is sent to a CAL
    /// ([`crate::cal`]); the tag is assigned by the client.
    pub fn call(&self, r: Request) -> Result<Response> {
        self.call_until(r, None)
    }

    fn call_until(&self, r: Request, deadline: Option<Instant>) -> Result<Response> {
        if is_write(r.verb) {
            return self.write(r, deadline);
        }
        let retry = is_read(r.verb);
        let first = self.conn().and_then(|c| c.call(r.clone(), deadline));
        match first {
            Err(e) if retry && e.is_connection_error() => {
                self.conn().and_then(|c| c.call(r, deadline))
            }
            other => other,
        }
    }

    /// Sends all `reqs` at once (one write, pipelined) and returns their
    /// raw responses in order. Not retried, and writes in it are not sent
    /// to a CAL: use it for reads at a fixed rev and retry the whole batch
    /// if needed.
    pub fn call_many(&self, reqs: Vec<Request>) -> Result<Vec<Response>> {
        let tickets = self.conn()?.start(reqs)?;
        tickets.into_iter().map(|t| t.wait(None)).collect()
    }

    fn checked(&self, r: Request) -> Result<Response> {
        self.call(r).and_then(Error::check)
    }

    /// Reads a file: its body and revision. `rev` None reads the current
    /// state. A missing file is `(empty, 0)`, not an error.
    pub fn get(&self, path: &str, rev: Option<i64>) -> Result<(Bytes, i64)> {
        let mut r = req(Verb::Get);
        r.path = Some(path.into());
        r.rev = rev;
        let resp = self.checked(r)?;
        Ok((resp.value.unwrap_or_default(), resp.rev.unwrap_or_default()))
    }

    /// Writes a file if `rev` ≥ its revision (0 = only if absent,
    /// [`crate::rev::CLOBBER`] = always). Returns the new revision. Not
    /// retried on a broken connection.
    pub fn set(&self, path: &str, rev: i64, body: impl Into<Bytes>) -> Result<i64> {
        let mut r = req(Verb::Set);
        r.path = Some(path.into());
        r.rev = Some(rev);
        r.value = Some(body.into());
        Ok(self.checked(r)?.rev.unwrap_or_default())
    }

    /// Deletes a file if `rev` ≥ its revision. Not retried.
    pub fn del(&self, path: &str, rev: i64) -> Result<()> {
        let mut r = req(Verb::Del);
        r.path = Some(path.into());
        r.rev = Some(rev);
        self.checked(r).map(drop)
    }

    /// The node's current revision.
    pub fn rev(&self) -> Result<i64> {
        Ok(self.checked(req(Verb::Rev))?.rev.unwrap_or_default())
    }

    /// One consensus round that changes nothing. Returns the revision the
    /// NOP was applied at, or 0 if the server does not report it (Go
    /// doozerd). Not retried.
    pub fn nop(&self) -> Result<i64> {
        Ok(self.checked(req(Verb::Nop))?.rev.unwrap_or_default())
    }

    /// A linearizable read: a NOP through consensus, then a GET at the
    /// revision the NOP was applied at. A plain [`Client::get`] reads the
    /// connected node's local copy, which may trail the cluster; this one
    /// sees every write acknowledged before it was called, on any node.
    /// Needs a server that reports the NOP's revision (this doozerd does;
    /// Go doozerd did not: then [`Error::Protocol`]).
    ///
    /// ```no_run
    /// # fn main() -> Result<(), doozer::Error> {
    /// let c = doozer::Client::connect("doozer:?ca=127.0.0.1:8046")?;
    /// let read = c.get_linearizable("/config/db")?;
    /// println!("{:?} written at rev {}, read at rev {}", read.body, read.rev, read.at);
    /// # Ok(()) }
    /// ```
    pub fn get_linearizable(&self, path: &str) -> Result<LinearizableRead> {
        let at = self.nop()?;
        if at <= 0 {
            return Err(Error::Protocol(
                "the server did not report the NOP's revision; linearizable reads need it".into(),
            ));
        }
        let (body, rev) = self.get(path, Some(at))?;
        Ok(LinearizableRead { body, rev, at })
    }

    fn wait_req(glob: &str, rev: i64) -> Request {
        let mut r = req(Verb::Wait);
        r.path = Some(glob.into());
        r.rev = Some(rev);
        r
    }

    /// Blocks until the first change at or after `rev` to a file matching
    /// `glob` (`?`, `*` within a name, `**` across names).
    pub fn wait(&self, glob: &str, rev: i64) -> Result<Event> {
        let resp = self.checked(Self::wait_req(glob, rev))?;
        Ok(Event::from_response(resp))
    }

    /// Like [`Client::wait`], giving up with [`Error::Timeout`] after
    /// `timeout`. (The server keeps the WAIT; its answer is discarded.)
    pub fn wait_timeout(&self, glob: &str, rev: i64, timeout: Duration) -> Result<Event> {
        let deadline = Instant::now() + timeout;
        let resp = self
            .call_until(Self::wait_req(glob, rev), Some(deadline))
            .and_then(Error::check)?;
        Ok(Event::from_response(resp))
    }

    /// Every change from `from_rev` on to files matching `glob`, as an
    /// endless iterator.
    pub fn watch(&self, glob: &str, from_rev: i64) -> Watch {
        Watch {
            client: self.clone(),
            glob: glob.to_string(),
            rev: from_rev,
            failed: false,
        }
    }

    /// A consistent copy of the whole tree at one rev (BACKUP), from the
    /// node this client is connected to, CAL or slave, while writes go on:
    /// see [`Backup`]. Not retried (the caller starts again).
    pub fn backup(&self) -> Result<Backup> {
        let conn = self.conn()?;
        let rx = conn.stream(req(Verb::Backup))?;
        let first = match rx.recv() {
            Ok(r) => r.map_err(Error::from).and_then(Error::check)?,
            Err(_) => return Err(Error::ConnectionClosed("no answer to BACKUP".into())),
        };
        let snapshot = first.flags.unwrap_or_default() & doozer_proto::flags::SNAPSHOT != 0;
        let Some(rev) = first.rev.filter(|_| snapshot) else {
            return Err(Error::Protocol("BACKUP answered without its rev".into()));
        };
        Ok(Backup {
            rx,
            _conn: conn,
            rev,
            files: 0,
            ended: false,
        })
    }

    /// The `offset`-th file (0-based) matching `glob`, in sorted depth-first
    /// order. Past the end: a server error with code `RANGE`.
    pub fn walk(&self, glob: &str, rev: Option<i64>, offset: i32) -> Result<Event> {
        let mut r = req(Verb::Walk);
        r.path = Some(glob.into());
        r.rev = rev;
        r.offset = Some(offset);
        Ok(Event::from_response(self.checked(r)?))
    }

    /// Every file matching `glob` at one revision (`None` = the current
    /// one, fixed before the first step so the listing is consistent).
    pub fn walk_all(&self, glob: &str, rev: Option<i64>) -> Result<Vec<Event>> {
        let rev = match rev {
            Some(r) => r,
            None => self.rev()?,
        };
        let mut out = Vec::new();
        loop {
            let offset = i32::try_from(out.len())
                .map_err(|_| Error::Protocol("too many files to walk".into()))?;
            match self.walk(glob, Some(rev), offset) {
                Ok(ev) => out.push(ev),
                Err(e) if e.code() == Some(ErrCode::Range) => return Ok(out),
                Err(e) => return Err(e),
            }
        }
    }

    /// The `offset`-th entry name of directory `path`, sorted.
    pub fn getdir(&self, path: &str, rev: Option<i64>, offset: i32) -> Result<String> {
        let mut r = req(Verb::Getdir);
        r.path = Some(path.into());
        r.rev = rev;
        r.offset = Some(offset);
        Ok(self.checked(r)?.path.unwrap_or_default())
    }

    /// All entry names of directory `path` at one revision (`None` = the
    /// current one). Asks for all entries at once (the count comes from
    /// STAT), so a big directory costs one round trip, not one per entry.
    pub fn getdir_all(&self, path: &str, rev: Option<i64>) -> Result<Vec<String>> {
        let rev = match rev {
            Some(r) => r,
            None => self.rev()?,
        };
        let st = self.stat(path, Some(rev))?;
        if !st.exists() {
            return Err(Error::Server {
                code: ErrCode::Noent,
                detail: Some(path.into()),
            });
        }
        if !st.is_dir() {
            return Err(Error::Server {
                code: ErrCode::Notdir,
                detail: Some(path.into()),
            });
        }
        let reqs = (0..st.len.max(0))
            .map(|offset| {
                let mut r = req(Verb::Getdir);
                r.path = Some(path.into());
                r.rev = Some(rev);
                r.offset = Some(offset);
                r
            })
            .collect();
        let resps = match self.call_many(reqs) {
            Err(e) if e.is_connection_error() => {
                return self.getdir_all_one_by_one(path, rev);
            }
            other => other?,
        };
        resps
            .into_iter()
            .map(|r| Ok(Error::check(r)?.path.unwrap_or_default()))
            .collect()
    }

    fn getdir_all_one_by_one(&self, path: &str, rev: i64) -> Result<Vec<String>> {
        let mut out = Vec::new();
        loop {
            let offset = i32::try_from(out.len())
                .map_err(|_| Error::Protocol("directory too big".into()))?;
            match self.getdir(path, Some(rev), offset) {
                Ok(name) => out.push(name),
                Err(e) if e.code() == Some(ErrCode::Range) => return Ok(out),
                Err(e) => return Err(e),
            }
        }
    }

    /// Length and revision of a file, entry count and rev -2 of a
    /// directory, or `(0, 0)` if nothing is at `path`.
    pub fn stat(&self, path: &str, rev: Option<i64>) -> Result<Stat> {
        let mut r = req(Verb::Stat);
        r.path = Some(path.into());
        r.rev = rev;
        let resp = self.checked(r)?;
        Ok(Stat {
            len: resp.len.unwrap_or_default(),
            rev: resp.rev.unwrap_or_default(),
        })
    }

    /// The connected node's id.
    pub fn self_id(&self) -> Result<String> {
        let resp = self.checked(req(Verb::Self_))?;
        Ok(String::from_utf8_lossy(&resp.value.unwrap_or_default()).into_owned())
    }

    /// Presents a secret. On success it is remembered and sent again after
    /// every reconnect. A CAL connection kept for writes ([`crate::cal`])
    /// is let go: the next write starts again where reads go, with this
    /// secret.
    pub fn access(&self, secret: &[u8]) -> Result<()> {
        let mut r = req(Verb::Access);
        r.value = Some(Bytes::copy_from_slice(secret));
        // ACCESS changes connection state but is safe to repeat.
        let conn = self.conn()?;
        conn.call(r, None).and_then(Error::check)?;
        self.inner.state.lock().secret = Some(secret.to_vec());
        *self.inner.cal.lock() = None;
        Ok(())
    }
}

/// A consistent copy of the whole tree at one rev, read file by file
/// ([`Client::backup`]): an iterator over the files (as [`Event`]s with
/// their revs and bodies, in depth-first order), which ends after the last
/// one. An error (the connection broke) is yielded once, then the iterator
/// ends: a copy cut short is never taken for a whole one.
/// Its rev is [`Backup::at_rev`] (not `rev`, which an iterator has).
pub struct Backup {
    rx: crossbeam_channel::Receiver<crate::conn::Reply>,
    /// Kept so the stream's connection lives as long as the copy.
    _conn: Arc<Conn>,
    rev: i64,
    files: u64,
    ended: bool,
}

impl Backup {
    /// The rev the copy is as of: every file's rev is at most this.
    pub fn at_rev(&self) -> i64 {
        self.rev
    }

    /// Files read so far.
    pub fn files(&self) -> u64 {
        self.files
    }
}

impl Iterator for Backup {
    type Item = Result<Event>;
    fn next(&mut self) -> Option<Result<Event>> {
        if self.ended {
            return None;
        }
        let resp = match self.rx.recv() {
            Ok(Ok(r)) => r,
            Ok(Err(closed)) => {
                self.ended = true;
                return Some(Err(closed.into()));
            }
            Err(_) => {
                self.ended = true;
                return Some(Err(Error::ConnectionClosed(
                    "the backup stream ended before its last file".into(),
                )));
            }
        };
        let resp = match Error::check(resp) {
            Ok(r) => r,
            Err(e) => {
                self.ended = true;
                return Some(Err(e));
            }
        };
        let f = resp.flags.unwrap_or_default();
        if f & doozer_proto::flags::READY != 0 {
            self.ended = true;
            if resp.rev != Some(self.rev) {
                let why = format!("backup ended at rev {:?}, begun at {}", resp.rev, self.rev);
                return Some(Err(Error::Protocol(why)));
            }
            return None;
        }
        if f & doozer_proto::flags::FILE == 0 {
            self.ended = true;
            let why = format!("unexpected response in a backup (flags {f})");
            return Some(Err(Error::Protocol(why)));
        }
        self.files += 1;
        Some(Ok(Event::from_response(resp)))
    }
}

/// Every change matching a glob, from a revision on: WAIT(glob, rev), then
/// rev = event.rev + 1, forever. Made by [`Client::watch`].
///
/// Each WAIT is retried once on a fresh connection (like every read); if
/// it still fails the error is yielded and the iterator ends, so a loop
/// over it cannot spin on a dead cluster.
pub struct Watch {
    client: Client,
    glob: String,
    rev: i64,
    failed: bool,
}

impl Watch {
    /// The revision the next WAIT starts from.
    pub fn next_rev(&self) -> i64 {
        self.rev
    }
}

impl Iterator for Watch {
    type Item = Result<Event>;
    fn next(&mut self) -> Option<Result<Event>> {
        if self.failed {
            return None;
        }
        match self.client.wait(&self.glob, self.rev) {
            Ok(ev) => {
                self.rev = ev.rev + 1;
                Some(Ok(ev))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use doozer_proto::{encode_frame, FrameDecoder};
    use prost::Message;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};

    /// A fake node: answers REV with 7, SELF with its name, ACCESS "good"
    /// only, GET with the path as body, holds WAIT until the next request
    /// and answers it last (out of order), and closes the connection on
    /// SET "/die".
    fn fake_node(name: &'static str) -> (String, std::thread::JoinHandle<()>) {
        let (addr, h, _holds) = fake_node_with_holds(name);
        (addr, h)
    }

    /// A fake node that also reports, on the receiver, each WAIT it holds
    /// (it answers a WAIT only after the next request).
    fn fake_node_with_holds(
        name: &'static str,
    ) -> (
        String,
        std::thread::JoinHandle<()>,
        crossbeam_channel::Receiver<()>,
    ) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let (held_tx, held_rx) = crossbeam_channel::unbounded();
        let h = std::thread::spawn(move || {
            for s in l.incoming().take(4) {
                let Ok(s) = s else { return };
                let held_tx = held_tx.clone();
                std::thread::spawn(move || serve(s, name, held_tx));
            }
        });
        (addr, h, held_rx)
    }

    fn serve(mut s: TcpStream, name: &'static str, held_tx: crossbeam_channel::Sender<()>) {
        let dec = FrameDecoder::default();
        let mut buf = BytesMut::new();
        let mut chunk = [0u8; 4096];
        let mut held: Option<Response> = None;
        loop {
            while let Ok(Some(f)) = dec.decode(&mut buf) {
                let req = Request::decode(f).unwrap();
                let mut resp = Response {
                    tag: req.tag,
                    ..Default::default()
                };
                match Verb::try_from(req.verb.unwrap_or(0)) {
                    Ok(Verb::Rev) => resp.rev = Some(7),
                    Ok(Verb::Self_) => resp.value = Some(Bytes::from(name)),
                    Ok(Verb::Get) => {
                        resp.value = req.path.map(Bytes::from);
                        resp.rev = Some(3);
                    }
                    Ok(Verb::Access) if req.value.as_deref() != Some(b"good") => {
                        resp = Response::error(
                            req.tag,
                            ErrCode::Other,
                            Some("permission denied".into()),
                        )
                    }
                    Ok(Verb::Access) => {}
                    Ok(Verb::Set) if req.path.as_deref() == Some("/die") => return,
                    Ok(Verb::Wait) => {
                        resp.path = req.path;
                        resp.rev = req.rev;
                        resp.flags = Some(4);
                        held = Some(resp);
                        let _ = held_tx.send(()); // nobody may be listening
                        continue;
                    }
                    _ => resp = Response::error(req.tag, ErrCode::UnknownVerb, None),
                }
                let mut out = BytesMut::new();
                encode_frame(&resp, &mut out);
                if let Some(h) = held.take() {
                    encode_frame(&h, &mut out);
                }
                if s.write_all(&out).is_err() {
                    return;
                }
            }
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// A port with nothing listening on it.
    fn dead_addr() -> String {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    }

    #[test]
    fn responses_are_routed_by_tag_across_threads() {
        let (addr, _h, holds) = fake_node_with_holds("a");
        let c = Client::connect(&format!("doozer:?ca={addr}")).unwrap();
        // The WAIT is answered only after a later request: it must not
        // block the GET behind it.
        let c2 = c.clone();
        let waiter = std::thread::spawn(move || c2.wait("/x/**", 9));
        holds
            .recv_timeout(Duration::from_secs(10))
            .expect("the node to hold the WAIT");
        let (body, rev) = c.get("/hello", None).unwrap();
        assert_eq!((&body[..], rev), (&b"/hello"[..], 3));
        let ev = waiter.join().unwrap().unwrap();
        assert_eq!((ev.path.as_str(), ev.rev, ev.is_set()), ("/x/**", 9, true));
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let c = c.clone();
                std::thread::spawn(move || {
                    for j in 0..50 {
                        let p = format!("/t{i}/{j}");
                        assert_eq!(c.get(&p, None).unwrap().0, Bytes::from(p));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(c.rev().unwrap(), 7);
        assert_eq!(c.self_id().unwrap(), "a");
        let e = c.nop().unwrap_err();
        assert_eq!(e.code(), Some(ErrCode::UnknownVerb));
    }

    #[test]
    fn fails_over_on_connect_and_reconnects_after_a_break() {
        let dead = dead_addr();
        let (a, _ha) = fake_node("a");
        let c = Client::connect(&format!("doozer:?ca={dead}&ca={a}&sk=good")).unwrap();
        assert_eq!(c.self_id().unwrap(), "a");
        assert_eq!(c.current_addr().as_deref(), Some(a.as_str()));
        // The node drops the connection: the write fails, not retried.
        let e = c.set("/die", -1, Bytes::new()).unwrap_err();
        assert!(e.is_connection_error(), "{e:?}");
        // The next read reconnects (skipping the dead address, then a).
        assert_eq!(c.self_id().unwrap(), "a");
    }

    #[test]
    fn wrong_secret_and_cn_and_timeout() {
        let (a, _ha) = fake_node("a");
        let e = Client::connect(&format!("doozer:?ca={a}&sk=bad")).unwrap_err();
        assert_eq!(e.to_string(), "permission denied");
        let e = Client::connect("doozer:?cn=prod").unwrap_err();
        assert!(matches!(e, Error::NoNameService));
        let e =
            Client::connect_via("doozer:?cn=a/b", Some(&format!("doozer:?ca={a}"))).unwrap_err();
        assert!(matches!(e, Error::BadClusterName(_)), "{e:?}");
        let e = Client::connect(&format!("doozer:?ca={}", dead_addr())).unwrap_err();
        assert!(matches!(e, Error::Connect { .. }), "{e:?}");
        let c = Client::connect(&format!("doozer:?ca={a}")).unwrap();
        let e = c
            .wait_timeout("/**", 1, Duration::from_millis(50))
            .unwrap_err();
        assert!(matches!(e, Error::Timeout));
        // The abandoned WAIT's tag stays reserved; later calls still work.
        assert_eq!(c.rev().unwrap(), 7);
    }
}
