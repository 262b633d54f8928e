//! [`RawConn`]: a raw protocol connection to a node, plain or TLS, with
//! one helper per verb.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use prost::Message;

use crate::{req, ErrCode, Request, RequestExt, Response, Verb, DEADLINE};

/// A raw TCP connection to a node: sends frames or arbitrary bytes and
/// reads length-prefixed [`Response`]s.
#[derive(Debug)]
pub struct RawConn {
    stream: doozer::Stream,
    buf: BytesMut,
    /// Responses read while looking for another tag.
    pending: HashMap<i32, Response>,
    next_tag: i32,
}

/// What reading from a [`RawConn`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum Recv {
    /// A complete, decodable response.
    Response(Response),
    /// The peer closed the connection (EOF or reset).
    Closed,
    /// Nothing complete arrived before the timeout.
    Timeout,
    /// A complete frame that does not decode as a Response.
    Garbage(Bytes),
}

impl RawConn {
    /// Connects to `addr` (panics if the connection is refused).
    pub fn connect(addr: SocketAddr) -> RawConn {
        let stream = TcpStream::connect_timeout(&addr, DEADLINE)
            .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        RawConn::from_stream(stream)
    }

    /// Connects to `addr` over TLS, trusting `client`'s CA (panics if the
    /// connection or the handshake fails).
    pub fn connect_tls(addr: SocketAddr, client: &doozer::TlsClient) -> RawConn {
        let stream = TcpStream::connect_timeout(&addr, DEADLINE)
            .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        let stream = client
            .handshake(&addr.to_string(), stream)
            .unwrap_or_else(|e| panic!("TLS to {addr}: {e}"));
        RawConn::from_any(doozer::Stream::Tls(Box::new(stream)))
    }

    /// Wraps a connected stream.
    pub fn from_stream(stream: TcpStream) -> RawConn {
        RawConn::from_any(doozer::Stream::Plain(stream))
    }

    /// Wraps a connected plain or TLS stream.
    pub fn from_any(stream: doozer::Stream) -> RawConn {
        let _ = stream.socket().set_nodelay(true);
        RawConn {
            stream,
            buf: BytesMut::new(),
            pending: HashMap::new(),
            next_tag: 1000,
        }
    }

    /// Sends one request as a frame.
    pub fn send(&mut self, req: &Request) {
        let mut out = BytesMut::new();
        doozer_proto::encode_frame(req, &mut out);
        self.send_bytes(&out);
    }

    /// Sends `body` framed with its length (the body need not be a valid
    /// protobuf).
    pub fn send_frame_body(&mut self, body: &[u8]) {
        let mut out = Vec::with_capacity(4 + body.len());
        out.extend_from_slice(&(body.len() as u32).to_be_bytes());
        out.extend_from_slice(body);
        self.send_bytes(&out);
    }

    /// Writes raw bytes. Errors (the server closed on us) are ignored; a
    /// later read reports [`Recv::Closed`].
    pub fn send_bytes(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes);
        let _ = self.stream.flush();
    }

    /// Shuts down the sending half.
    pub fn shutdown_write(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }

    /// Reads the next frame (up to `timeout`).
    pub fn recv_any(&mut self, timeout: Duration) -> Recv {
        let deadline = Instant::now() + timeout;
        loop {
            if self.buf.len() >= 4 {
                let len = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]])
                    as usize;
                if self.buf.len() >= 4 + len {
                    let _ = self.buf.split_to(4);
                    let body = self.buf.split_to(len).freeze();
                    return match Response::decode(body.clone()) {
                        Ok(r) => Recv::Response(r),
                        Err(_) => Recv::Garbage(body),
                    };
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Recv::Timeout;
            }
            let _ = self
                .stream
                .set_read_timeout(Some((deadline - now).max(Duration::from_millis(1))));
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Recv::Closed,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    return Recv::Timeout
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return Recv::Closed,
            }
        }
    }

    /// Reads (discarding responses) until the server closes the
    /// connection; panics naming `what` if nothing arrives for `quiet`.
    /// Reads without pausing, so a closed connection with megabytes still
    /// in the socket buffers is seen closed at once.
    pub fn expect_closed(&mut self, quiet: Duration, what: &str) {
        loop {
            match self.recv_any(quiet) {
                Recv::Closed => return,
                Recv::Timeout => panic!("{what}: the server did not close the connection"),
                Recv::Response(_) | Recv::Garbage(_) => {}
            }
        }
    }

    /// The next response, or `None` on timeout or close.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Option<Response> {
        match self.recv_any(timeout) {
            Recv::Response(r) => Some(r),
            _ => None,
        }
    }

    /// The next response (any tag), panicking after [`DEADLINE`].
    pub fn recv(&mut self) -> Response {
        match self.recv_any(DEADLINE) {
            Recv::Response(r) => r,
            other => panic!("expected a response, got {other:?}"),
        }
    }

    /// The response with `tag`, keeping others for later; panics after
    /// [`DEADLINE`].
    pub fn recv_tag(&mut self, tag: i32) -> Response {
        if let Some(r) = self.pending.remove(&tag) {
            return r;
        }
        let deadline = Instant::now() + DEADLINE;
        loop {
            let now = Instant::now();
            if now >= deadline {
                panic!("no response with tag {tag} within {DEADLINE:?}");
            }
            match self.recv_any(deadline - now) {
                Recv::Response(r) if r.tag == Some(tag) => return r,
                Recv::Response(r) => {
                    self.pending.insert(r.tag.unwrap_or(0), r);
                }
                other => panic!("waiting for tag {tag}: {other:?}"),
            }
        }
    }

    /// Whether a response with `tag` was already received and is held back.
    pub fn has_pending(&self, tag: i32) -> bool {
        self.pending.contains_key(&tag)
    }

    /// A fresh tag, distinct from earlier ones on this connection.
    pub fn tag(&mut self) -> i32 {
        self.next_tag += 1;
        self.next_tag
    }

    /// Sends `req` with a fresh tag and waits for its response.
    pub fn call(&mut self, mut req: Request) -> Response {
        let tag = self.tag();
        req.tag = Some(tag);
        self.send(&req);
        let r = self.recv_tag(tag);
        assert_eq!(r.tag, Some(tag));
        r
    }

    // -- one helper per verb -------------------------------------------------

    /// GET `path` (at `rev` if given).
    pub fn get(&mut self, path: &str, rev: Option<i64>) -> Response {
        self.call(req(Verb::Get).path(path).rev_opt(rev))
    }

    /// SET `path` to `value` if `rev` ≥ the file's rev.
    pub fn set(&mut self, path: &str, rev: i64, value: &[u8]) -> Response {
        self.call(req(Verb::Set).path(path).rev(rev).value(value))
    }

    /// DEL `path` if `rev` ≥ the file's rev.
    pub fn del(&mut self, path: &str, rev: i64) -> Response {
        self.call(req(Verb::Del).path(path).rev(rev))
    }

    /// REV; panics unless it succeeds; returns the rev.
    pub fn rev(&mut self) -> i64 {
        let r = self.call(req(Verb::Rev));
        assert_eq!(r.err_code, None, "REV failed: {r:?}");
        r.rev.expect("REV response has a rev")
    }

    /// WAIT for `glob` from `rev`.
    pub fn wait(&mut self, glob: &str, rev: i64) -> Response {
        self.call(req(Verb::Wait).path(glob).rev(rev))
    }

    /// NOP.
    pub fn nop(&mut self) -> Response {
        self.call(req(Verb::Nop))
    }

    /// WALK `glob` at `offset` (and `rev` if given).
    pub fn walk(&mut self, glob: &str, offset: i32, rev: Option<i64>) -> Response {
        self.call(req(Verb::Walk).path(glob).offset(offset).rev_opt(rev))
    }

    /// GETDIR `path` at `offset` (and `rev` if given).
    pub fn getdir(&mut self, path: &str, offset: i32, rev: Option<i64>) -> Response {
        self.call(req(Verb::Getdir).path(path).offset(offset).rev_opt(rev))
    }

    /// STAT `path` (at `rev` if given).
    pub fn stat(&mut self, path: &str, rev: Option<i64>) -> Response {
        self.call(req(Verb::Stat).path(path).rev_opt(rev))
    }

    /// SELF.
    pub fn self_id(&mut self) -> Response {
        self.call(req(Verb::Self_))
    }

    /// ACCESS with `secret`.
    pub fn access(&mut self, secret: &[u8]) -> Response {
        self.call(req(Verb::Access).value(secret))
    }

    /// SET that must succeed; returns the new rev.
    pub fn must_set(&mut self, path: &str, rev: i64, value: &[u8]) -> i64 {
        let r = self.set(path, rev, value);
        assert_eq!(r.err_code, None, "SET {path} failed: {r:?}");
        r.rev.expect("SET response has a rev")
    }

    /// GET that must succeed; returns `(value, rev)`.
    pub fn must_get(&mut self, path: &str) -> (Vec<u8>, i64) {
        let r = self.get(path, None);
        assert_eq!(r.err_code, None, "GET {path} failed: {r:?}");
        (
            r.value.map(|v| v.to_vec()).unwrap_or_default(),
            r.rev.unwrap_or(0),
        )
    }

    /// Every file matching `glob` at `rev`, via WALK with increasing
    /// offsets until `RANGE`: `(path, rev, value)`.
    pub fn walk_all(&mut self, glob: &str, rev: Option<i64>) -> Vec<(String, i64, Vec<u8>)> {
        let mut out = Vec::new();
        for offset in 0.. {
            let r = self.walk(glob, offset, rev);
            if r.err_code == Some(ErrCode::Range as i32) {
                return out;
            }
            assert_eq!(r.err_code, None, "WALK {glob} {offset}: {r:?}");
            out.push((
                r.path.unwrap_or_default(),
                r.rev.unwrap_or(0),
                r.value.map(|v| v.to_vec()).unwrap_or_default(),
            ));
            assert!(offset < 100_000, "WALK never ended");
        }
        unreachable!()
    }

    /// Every file in the store except the per-node files under
    /// `/ctl/node/` (which a node may rewrite by itself, e.g. its applied
    /// rev every `-pulse`): compare two of these to show that a request
    /// changed nothing, including `/ctl/err`.
    pub fn user_visible_state(&mut self) -> Vec<(String, i64, Vec<u8>)> {
        self.walk_all("/**", None)
            .into_iter()
            .filter(|(p, _, _)| !p.starts_with("/ctl/node/"))
            .collect()
    }

    /// Every entry of directory `path`, via GETDIR until `RANGE`.
    pub fn getdir_all(&mut self, path: &str, rev: Option<i64>) -> Vec<String> {
        let mut out = Vec::new();
        for offset in 0.. {
            let r = self.getdir(path, offset, rev);
            if r.err_code == Some(ErrCode::Range as i32) {
                return out;
            }
            assert_eq!(r.err_code, None, "GETDIR {path} {offset}: {r:?}");
            out.push(r.path.unwrap_or_default());
            assert!(offset < 100_000, "GETDIR never ended");
        }
        unreachable!()
    }
}
