//! Attaching to a cluster (SPEC §4, `-a`): connect to a member, check the
//! cluster name, register this node's `/ctl/node/<id>/*` files through it,
//! then FOLLOW it and read the copy of its store. Blocking, with short
//! timeouts: it runs before the event loop starts, and again when the
//! followed node goes away (see `node.rs`).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use doozer_proto::{encode_frame, rev, ErrCode, FrameDecoder, Request, Response, Verb};
use prost::Message;

use crate::cluster::NodeInfo;
use crate::server::follow::{history_digest, RESUME_DIGEST_EVENTS};
use crate::server::Server;
use crate::store::Rev;

/// How long a connect, or a wait for one answer, may take.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(5);

/// Why attaching to a member failed.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    /// Network trouble.
    #[error("{addr}: {source}")]
    Io {
        /// The member.
        addr: SocketAddr,
        /// What happened.
        source: io::Error,
    },
    /// The member serves another cluster.
    #[error("{addr} serves cluster {theirs:?}, not {ours:?} (-c)")]
    WrongCluster {
        /// The member.
        addr: SocketAddr,
        /// Its `/ctl/name`.
        theirs: String,
        /// Our `-c`.
        ours: String,
    },
    /// The member refused a request or broke the protocol.
    #[error("{addr}: {what}")]
    Refused {
        /// The member.
        addr: SocketAddr,
        /// Why.
        what: String,
    },
}

/// What attaching needs to know.
pub struct Attach<'a> {
    /// The cluster name (`-c`).
    pub cluster: &'a str,
    /// This node.
    pub info: &'a NodeInfo,
    /// The rw secret to present, if the cluster has one.
    pub secret: &'a Bytes,
}

impl Attach<'_> {
    /// Tries `addrs` in order; the first that works is followed. On
    /// success the server is up to date with the member and the stream
    /// (blocking mode, for the caller to convert) carries every later
    /// change.
    pub fn first_of(
        &self,
        addrs: &[SocketAddr],
        server: &mut Server,
    ) -> Result<TcpStream, AttachError> {
        let mut last = None;
        for &addr in addrs {
            match self.one(addr, server) {
                Ok(s) => return Ok(s),
                Err(e) => {
                    log::debug!("attach: {e}");
                    server.follow_lost();
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or(AttachError::Refused {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            what: "no cluster member to attach to".into(),
        }))
    }

    fn one(&self, addr: SocketAddr, server: &mut Server) -> Result<TcpStream, AttachError> {
        let io = |source| AttachError::Io { addr, source };
        let stream = TcpStream::connect_timeout(&addr, STEP_TIMEOUT).map_err(io)?;
        stream.set_nodelay(true).map_err(io)?;
        stream.set_read_timeout(Some(STEP_TIMEOUT)).map_err(io)?;
        let mut conn = Conn {
            addr,
            stream,
            rbuf: BytesMut::new(),
            next_tag: 1,
        };
        if !self.secret.is_empty() {
            conn.call(Verb::Access, None, Some(self.secret.clone()), None)?;
        }
        let name = conn.call(Verb::Get, Some("/ctl/name"), None, None)?;
        let theirs =
            String::from_utf8_lossy(name.value.as_deref().unwrap_or_default()).into_owned();
        if theirs != self.cluster {
            return Err(AttachError::WrongCluster {
                addr,
                theirs,
                ours: self.cluster.to_string(),
            });
        }
        let dir = format!("/ctl/node/{}", self.info.id);
        for (file, body) in [
            ("addr", &self.info.addr),
            ("hostname", &self.info.hostname),
            ("version", &self.info.version),
        ] {
            let path = format!("{dir}/{file}");
            let body = Bytes::from(body.clone());
            conn.call(Verb::Set, Some(&path), Some(body), Some(rev::CLOBBER))?;
        }
        // Follow from where this store is (0 at start: copy everything).
        let resume: Rev = server.store().rev();
        let n = RESUME_DIGEST_EVENTS;
        let digest = history_digest(server.store(), resume, n)
            .map(|d| Bytes::copy_from_slice(&d.to_be_bytes()));
        let tag = conn.send_follow(resume, digest.map(|d| (n as i32, d)))?;
        let apply = |server: &mut Server, resp| {
            server
                .follow_response(resp)
                .map_err(|e| AttachError::Refused {
                    addr,
                    what: e.to_string(),
                })
        };
        while !server.is_following() {
            let resp = conn.recv()?;
            if resp.tag == Some(tag) {
                apply(server, resp)?;
            }
        }
        conn.stream.set_read_timeout(None).map_err(io)?;
        // Bytes read past the copy belong to the stream: apply them now.
        while let Some(resp) = conn.try_decode()? {
            apply(server, resp)?;
        }
        Ok(conn.stream)
    }
}

/// A blocking client connection for the few requests of attaching.
struct Conn {
    addr: SocketAddr,
    stream: TcpStream,
    rbuf: BytesMut,
    next_tag: i32,
}

impl Conn {
    fn send(
        &mut self,
        verb: Verb,
        path: Option<&str>,
        value: Option<Bytes>,
        rev: Option<Rev>,
    ) -> Result<i32, AttachError> {
        let tag = self.next_tag;
        self.next_tag += 1;
        let req = Request {
            tag: Some(tag),
            verb: Some(verb as i32),
            path: path.map(str::to_string),
            value,
            rev,
            ..Default::default()
        };
        self.write(&req)?;
        Ok(tag)
    }

    /// FOLLOW from `resume`, with the digest of the recent history when
    /// there is one (`offset` = events counted, `value` = digest).
    fn send_follow(
        &mut self,
        resume: Rev,
        digest: Option<(i32, Bytes)>,
    ) -> Result<i32, AttachError> {
        let tag = self.next_tag;
        self.next_tag += 1;
        let (offset, value) = digest.map_or((None, None), |(n, d)| (Some(n), Some(d)));
        let req = Request {
            tag: Some(tag),
            verb: Some(Verb::Follow as i32),
            rev: Some(resume),
            offset,
            value,
            ..Default::default()
        };
        self.write(&req)?;
        Ok(tag)
    }

    fn write(&mut self, req: &Request) -> Result<(), AttachError> {
        let mut out = BytesMut::new();
        encode_frame(req, &mut out);
        let addr = self.addr;
        self.stream
            .write_all(&out)
            .map_err(|source| AttachError::Io { addr, source })
    }

    /// One request and its answer; an error answer is `Refused`.
    fn call(
        &mut self,
        verb: Verb,
        path: Option<&str>,
        value: Option<Bytes>,
        rev: Option<Rev>,
    ) -> Result<Response, AttachError> {
        let tag = self.send(verb, path, value, rev)?;
        loop {
            let resp = self.recv()?;
            if resp.tag != Some(tag) {
                continue;
            }
            if let Some(code) = resp.err_code {
                let name = ErrCode::try_from(code).map_or("unknown error", ErrCode::wire_name);
                let detail = resp.err_detail.unwrap_or_default();
                return Err(AttachError::Refused {
                    addr: self.addr,
                    what: format!("{verb:?} {}: {name} {detail}", path.unwrap_or("")),
                });
            }
            return Ok(resp);
        }
    }

    fn try_decode(&mut self) -> Result<Option<Response>, AttachError> {
        let addr = self.addr;
        let refused = |what: String| AttachError::Refused { addr, what };
        match FrameDecoder::default().decode(&mut self.rbuf) {
            Ok(Some(frame)) => Response::decode(frame)
                .map(Some)
                .map_err(|e| refused(format!("bad response: {e}"))),
            Ok(None) => Ok(None),
            Err(e) => Err(refused(e.to_string())),
        }
    }

    fn recv(&mut self) -> Result<Response, AttachError> {
        let addr = self.addr;
        let mut buf = [0u8; 64 << 10];
        loop {
            if let Some(resp) = self.try_decode()? {
                return Ok(resp);
            }
            let n = self
                .stream
                .read(&mut buf)
                .map_err(|source| AttachError::Io { addr, source })?;
            if n == 0 {
                return Err(AttachError::Io {
                    addr,
                    source: io::ErrorKind::UnexpectedEof.into(),
                });
            }
            self.rbuf.extend_from_slice(&buf[..n]);
        }
    }
}

/// The members a slave can follow after losing its own: every CAL's
/// address from the copied `/ctl` files (except this node's), then the
/// `-a` addresses.
pub fn candidates(server: &Server, self_id: &str, attach: &[SocketAddr]) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    if let Ok(snap) = server.store().snapshot(None) {
        if let Ok(slots) = snap.dir_names("/ctl/cal") {
            for slot in slots {
                let Ok((id, _)) = snap.get(&format!("/ctl/cal/{slot}")) else {
                    continue;
                };
                let id = String::from_utf8_lossy(&id).into_owned();
                if id.is_empty() || id == self_id {
                    continue;
                }
                if let Ok((addr, _)) = snap.get(&format!("/ctl/node/{id}/addr")) {
                    if let Ok(addr) = String::from_utf8_lossy(&addr).parse() {
                        out.push(addr);
                    }
                }
            }
        }
    }
    for a in attach {
        if !out.contains(a) {
            out.push(*a);
        }
    }
    out
}
