//! Attaching to a cluster (SPEC §4, `-a`): connect to a member, check the
//! cluster name, register this node's `/ctl/node/<id>/*` files through it,
//! then FOLLOW it and read the copy of its store. Blocking, with short
//! timeouts: it runs before the event loop starts, and again when the
//! followed node goes away (see `node.rs`).

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use doozer::Pipeline;
use doozer_proto::{rev, ErrCode, Request, Response, Verb};

use crate::cluster::NodeInfo;
use crate::server::follow::{history_digest, RESUME_DIGEST_EVENTS};
use crate::server::Server;
use crate::store::Rev;

/// How long a wait for one answer may take (connecting has the client
/// library's own timeout).
pub const STEP_TIMEOUT: Duration = Duration::from_secs(5);

/// Why attaching to a member failed.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    /// Network or protocol trouble (from the client library).
    #[error("{addr}: {source}")]
    Client {
        /// The member.
        addr: SocketAddr,
        /// What happened.
        source: doozer::Error,
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
    /// The member refused a request, or its follow stream was unusable.
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

/// A member being followed: its socket (blocking mode, for the caller to
/// convert) and the bytes already read from it that belong to the stream.
pub struct Followed {
    /// The socket.
    pub stream: TcpStream,
    /// Read but not yet applied (part of the next response).
    pub rbuf: BytesMut,
}

impl Attach<'_> {
    /// Tries `addrs` in order; the first that works is followed. On
    /// success the server is up to date with the member and the stream
    /// carries every later change.
    pub fn first_of(
        &self,
        addrs: &[SocketAddr],
        server: &mut Server,
    ) -> Result<Followed, AttachError> {
        let mut last = None;
        for &addr in addrs {
            match self.one(addr, server) {
                Ok(f) => return Ok(f),
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

    fn one(&self, addr: SocketAddr, server: &mut Server) -> Result<Followed, AttachError> {
        let client = |source| AttachError::Client { addr, source };
        let mut p = Pipeline::connect(&addr.to_string()).map_err(client)?;
        if !self.secret.is_empty() {
            call(
                &mut p,
                addr,
                request(Verb::Access).value(self.secret.clone()),
            )?;
        }
        let name = call(&mut p, addr, request(Verb::Get).path("/ctl/name"))?;
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
        // `writable` is `false` until this node is promoted (a demoted CAL
        // attaching again must not go on claiming it accepts writes).
        for (file, body) in [
            ("addr", self.info.addr.as_str()),
            ("hostname", &self.info.hostname),
            ("version", &self.info.version),
            ("writable", "false"),
        ] {
            let set = request(Verb::Set)
                .path(&format!("{dir}/{file}"))
                .value(Bytes::from(body.to_string()))
                .rev(rev::CLOBBER);
            call(&mut p, addr, set)?;
        }
        // Follow from where this store is (0 at start: copy everything),
        // with a digest of its recent history when it has one.
        let resume: Rev = server.store().rev();
        let mut follow = request(Verb::Follow).rev(resume);
        if let Some(d) = history_digest(server.store(), resume, RESUME_DIGEST_EVENTS) {
            follow.0.offset = Some(RESUME_DIGEST_EVENTS as i32);
            follow.0.value = Some(Bytes::copy_from_slice(&d.to_be_bytes()));
        }
        let tag = follow.0.tag;
        p.send(&follow.0);
        p.flush().map_err(client)?;
        let apply = |server: &mut Server, resp| {
            server
                .follow_response(resp)
                .map_err(|e| AttachError::Refused {
                    addr,
                    what: e.to_string(),
                })
        };
        while !server.is_following() {
            let resp = recv(&mut p, addr)?;
            if resp.tag == tag {
                apply(server, resp)?;
            }
        }
        // Responses already read belong to the stream: apply them now, and
        // hand on a partial one with the socket.
        while let Some(resp) = p.try_recv().map_err(client)? {
            apply(server, resp)?;
        }
        let (stream, rbuf) = p.into_parts();
        stream
            .set_read_timeout(None)
            .map_err(|e| client(doozer::Error::Io(e)))?;
        Ok(Followed { stream, rbuf })
    }
}

/// A request being built; tags are unique within one attach.
struct Req(Request);

fn request(verb: Verb) -> Req {
    static NEXT_TAG: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(1);
    let tag = NEXT_TAG.fetch_add(1, std::sync::atomic::Ordering::Relaxed) & i32::MAX;
    Req(Request {
        tag: Some(tag),
        verb: Some(verb as i32),
        ..Default::default()
    })
}

impl Req {
    fn path(mut self, p: &str) -> Req {
        self.0.path = Some(p.to_string());
        self
    }
    fn value(mut self, v: Bytes) -> Req {
        self.0.value = Some(v);
        self
    }
    fn rev(mut self, r: Rev) -> Req {
        self.0.rev = Some(r);
        self
    }
}

/// The next response, waiting at most [`STEP_TIMEOUT`].
fn recv(p: &mut Pipeline, addr: SocketAddr) -> Result<Response, AttachError> {
    match p.recv_timeout(STEP_TIMEOUT) {
        Ok(Some(r)) => Ok(r),
        Ok(None) => Err(AttachError::Client {
            addr,
            source: doozer::Error::Timeout,
        }),
        Err(source) => Err(AttachError::Client { addr, source }),
    }
}

/// One request and its answer; an error answer is `Refused`.
fn call(p: &mut Pipeline, addr: SocketAddr, req: Req) -> Result<Response, AttachError> {
    let (tag, verb, path) = (req.0.tag, req.0.verb, req.0.path.clone());
    p.send(&req.0);
    p.flush()
        .map_err(|source| AttachError::Client { addr, source })?;
    loop {
        let resp = recv(p, addr)?;
        if resp.tag != tag {
            continue;
        }
        if let Some(code) = resp.err_code {
            let name = ErrCode::try_from(code).map_or("unknown error", ErrCode::wire_name);
            let detail = resp.err_detail.unwrap_or_default();
            let verb = verb.and_then(|v| Verb::try_from(v).ok());
            return Err(AttachError::Refused {
                addr,
                what: format!("{verb:?} {}: {name} {detail}", path.unwrap_or_default()),
            });
        }
        return Ok(resp);
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
