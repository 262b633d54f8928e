//! Attaching to a cluster (docs/reference.md#attaching-a-slave, `-a`): connect to a member, check the
//! cluster name, register this node's `/ctl/node/<id>/*` files through it,
//! then FOLLOW it and read the copy of its store. Blocking, with short
//! timeouts. At start-up it runs before the event loop and reads the copy
//! too; when the followed node goes away, only the handshake runs, on a
//! helper thread, and the event loop reads the copy from the stream it
//! hands back (see `node/follow.rs`), so clients are served meanwhile.

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use doozer::Pipeline;
use doozer_proto::ctl::{self, NodeFile};
use doozer_proto::{rev, ErrCode, Request, Response, Verb};

use crate::cluster::NodeInfo;
use crate::replica::follow::{history_digest, RESUME_DIGEST_EVENTS};
use crate::replica::{Input, Replica};
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
    /// A write of this node's files was not decided within
    /// [`STEP_TIMEOUT`]: the handshake goes on without (see
    /// [`Register::Skip`]).
    #[error("{addr}: writing {what} was not decided in time")]
    Undecided {
        /// The member.
        addr: SocketAddr,
        /// The file written.
        what: String,
    },
    /// The node serves the cluster but is not a CAL (its `writable` file
    /// is not `true`): what a probe ([`Attach::probe`]) asks for.
    #[error("{addr}: node {id} of the cluster is not a CAL")]
    NotCal {
        /// The node.
        addr: SocketAddr,
        /// Its id (SELF).
        id: String,
    },
    /// The member refused to write this node's files with `READONLY`:
    /// it takes no writes (a slave) and reaches no CAL that does. When
    /// every member refuses or fails so, the cluster may be waiting for
    /// this very node (see [`Attach::handshake_first_of`]).
    #[error("{addr}: {what}")]
    WriteRefused {
        /// The member.
        addr: SocketAddr,
        /// The refusal, in words.
        what: String,
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

/// What attaching needs to know. Its `Debug` form hides the secret.
#[derive(Clone)]
pub struct Attach {
    /// The cluster name (`-c`).
    pub cluster: String,
    /// This node.
    pub info: NodeInfo,
    /// The rw secret to present, if the cluster has one.
    pub secret: Bytes,
    /// TLS to members (`-tlsca`), when the cluster serves TLS; a member's
    /// certificate must name the IP address it is attached at.
    pub tls: Option<doozer::TlsClient>,
}

impl std::fmt::Debug for Attach {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attach")
            .field("cluster", &self.cluster)
            .field("info", &self.info)
            .field(
                "secret",
                &crate::replica::session::shown_secret(&self.secret),
            )
            .field("tls", &self.tls)
            .finish()
    }
}

/// Fewest events a resume digest covers.
const RESUME_DIGEST_EVENTS_MIN: usize = 4;

/// Where a follower's stream starts: its store's rev, and a digest of its
/// recent history so the member can tell whether it may just resume.
#[derive(Debug, Clone, Copy)]
pub struct Resume {
    /// The follower's rev (0: copy everything).
    pub rev: Rev,
    /// [`history_digest`] of the last `events` events up to `rev`, when
    /// it has any.
    pub digest: Option<u64>,
    /// How many events the digest covers.
    pub events: usize,
}

impl Resume {
    /// Where `server`'s store is now. The digest covers up to
    /// [`RESUME_DIGEST_EVENTS`] events, fewer if the store has fewer since
    /// its last copy (a slave copied a moment ago can still resume).
    pub fn of(server: &Replica) -> Resume {
        if server.must_copy() {
            return Resume {
                rev: 0,
                digest: None,
                events: 0,
            };
        }
        let store = server.store();
        let rev = store.rev();
        let events = RESUME_DIGEST_EVENTS.min((rev - store.oldest_rev()).max(0) as usize);
        // Too few events could match another cluster's log by chance (a
        // run of NOPs at the same revs): copy instead.
        let digest = (events >= RESUME_DIGEST_EVENTS_MIN)
            .then(|| history_digest(store, rev, events))
            .flatten();
        Resume {
            rev,
            digest,
            events,
        }
    }
}

/// A member being followed: its socket (blocking mode, for the caller to
/// convert) and the bytes already read from it that belong to the stream.
pub struct Followed {
    /// The socket.
    pub stream: TcpStream,
    /// The TLS session on it, when the cluster serves TLS (it may hold
    /// decrypted bytes not yet read: they come before the socket's).
    pub tls: Option<Box<rustls::ClientConnection>>,
    /// Read but not yet applied (part of the next response).
    pub rbuf: BytesMut,
}

impl Attach {
    /// Tries `addrs` in order; the first that works is followed. On
    /// success the server is up to date with the member and the stream
    /// carries every later change.
    pub fn first_of(
        &self,
        addrs: &[SocketAddr],
        server: &mut Replica,
    ) -> Result<Followed, AttachError> {
        let listed = server.listed_as_cal();
        self.try_each(addrs, listed, |addr, register| {
            let r = self.one(addr, register, server);
            if r.is_err() {
                let _ = server.step(0, Input::FollowLost);
            }
            r
        })
    }

    /// Tries `addrs` in order, up to sending FOLLOW from `resume`: the
    /// stream of the first that works then carries the copy (or just
    /// READY) and every later change, for the caller to apply.
    ///
    /// `listed`: this node's store names it in a CAL slot. If then no
    /// member took this node's files and one refused them with `READONLY`,
    /// nobody reachable can decide a write, and the cluster may be
    /// waiting for this node's own votes (it may be the only CAL left,
    /// behind the others): it follows that member once more without
    /// writing its files ([`Register::Skip`]), catches up, and takes its
    /// part (simulator seed 38282).
    pub fn handshake_first_of(
        &self,
        addrs: &[SocketAddr],
        resume: Resume,
        listed: bool,
    ) -> Result<Followed, AttachError> {
        self.try_each(addrs, listed, |addr, register| {
            let (p, _) = self.registered_handshake(addr, resume, register)?;
            followed(p, addr)
        })
    }

    fn try_each(
        &self,
        addrs: &[SocketAddr],
        listed: bool,
        mut one: impl FnMut(SocketAddr, Register) -> Result<Followed, AttachError>,
    ) -> Result<Followed, AttachError> {
        let mut last = None;
        let mut refused_by = None;
        for &addr in addrs {
            match one(addr, Register::Files) {
                Ok(f) => return Ok(f),
                Err(e) => {
                    log::debug!("attach: {e}");
                    if matches!(e, AttachError::WriteRefused { .. }) {
                        refused_by = refused_by.or(Some(addr));
                    }
                    last = Some(e);
                }
            }
        }
        if let Some(addr) = refused_by.filter(|_| listed) {
            log::warn!(
                "attach: no member takes writes and this node is listed as a CAL; \
                 following {addr} without registering this node's files"
            );
            match one(addr, Register::Skip) {
                Ok(f) => return Ok(f),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or(AttachError::Refused {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            what: "no cluster member to attach to".into(),
        }))
    }

    /// Handshake, then reads the stream until the copy is applied.
    fn one(
        &self,
        addr: SocketAddr,
        register: Register,
        server: &mut Replica,
    ) -> Result<Followed, AttachError> {
        let client = |source| AttachError::Client { addr, source };
        let (mut p, tag) = self.registered_handshake(addr, Resume::of(server), register)?;
        // Start-up: no timer of a slave needs the clock yet.
        let apply = |server: &mut Replica, resp| {
            server
                .step(0, Input::Follow(resp))
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
        followed(p, addr)
    }

    /// Connects to member `addr`, presents the secret and checks that it
    /// serves this cluster (`/ctl/name` is `-c`), waiting at most `limit`
    /// for each answer: the start of both an attach and a probe.
    fn open_member(&self, addr: SocketAddr, limit: Duration) -> Result<Pipeline, AttachError> {
        let client = |source| AttachError::Client { addr, source };
        let mut p = Pipeline::connect_with(&addr.to_string(), self.tls.as_ref()).map_err(client)?;
        if !self.secret.is_empty() {
            let access = request(Verb::Access).value(self.secret.clone());
            call_within(&mut p, addr, access, limit)?;
        }
        let name = call_within(&mut p, addr, request(Verb::Get).path(ctl::NAME_PATH), limit)?;
        let theirs =
            String::from_utf8_lossy(name.value.as_deref().unwrap_or_default()).into_owned();
        if theirs != self.cluster {
            return Err(AttachError::WrongCluster {
                addr,
                theirs,
                ours: self.cluster.to_string(),
            });
        }
        Ok(p)
    }

    /// [`Attach::handshake`] writing this node's files (with
    /// [`Register::Files`]); if a write is not decided within
    /// [`STEP_TIMEOUT`], again on a new connection without writing any
    /// (see [`Register::Skip`]).
    fn registered_handshake(
        &self,
        addr: SocketAddr,
        resume: Resume,
        register: Register,
    ) -> Result<(Pipeline, Option<i32>), AttachError> {
        if register == Register::Skip {
            return self.handshake(addr, resume, Register::Skip);
        }
        match self.handshake(addr, resume, Register::Files) {
            Err(AttachError::Undecided { what, .. }) => {
                log::warn!(
                    "attach: {addr} did not decide {what} in {STEP_TIMEOUT:?}; \
                     following without registering this node's files"
                );
                self.handshake(addr, resume, Register::Skip)
            }
            r => r,
        }
    }

    /// Connects, checks the cluster name, registers this node's files
    /// (with [`Register::Files`]) and sends FOLLOW from `resume`; returns
    /// the connection and FOLLOW's tag.
    fn handshake(
        &self,
        addr: SocketAddr,
        resume: Resume,
        register: Register,
    ) -> Result<(Pipeline, Option<i32>), AttachError> {
        let client = |source| AttachError::Client { addr, source };
        let mut p = self.open_member(addr, STEP_TIMEOUT)?;
        // Only files that differ are written: a node attaching again
        // (its files are there) needs no consensus to follow, so it can
        // follow even while the cluster cannot decide (it may be the CAL
        // the cluster is waiting for).
        let files = match register {
            Register::Files => node_files(&self.info),
            Register::Skip => Vec::new(),
        };
        for (path, body) in files {
            let found = call(&mut p, addr, request(Verb::Get).path(&path))?;
            if found.value.as_deref() == Some(body.as_bytes()) {
                continue;
            }
            let set = request(Verb::Set)
                .path(&path)
                .value(Bytes::from(body))
                .rev(rev::CLOBBER);
            match call(&mut p, addr, set) {
                Err(AttachError::Client {
                    source: doozer::Error::Timeout,
                    ..
                }) => return Err(AttachError::Undecided { addr, what: path }),
                r => r?,
            };
        }
        let follow = Req(follow_request(resume, request(Verb::Follow).0.tag));
        let tag = follow.0.tag;
        p.send(&follow.0);
        p.flush().map_err(client)?;
        Ok((p, tag))
    }
}

/// Whether the attach handshake writes this node's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Register {
    /// Write those that differ (a write needs consensus).
    Files,
    /// Write none: a write was not decided in time, or every member
    /// refused it while this node is listed as a CAL. The cluster may be
    /// waiting for this very node's votes (a CAL of the coming seqns
    /// whose files a kick deleted, or that claimed a slot before its
    /// files were all written): the write could never be decided before
    /// it catches up through the stream it is asking for
    /// (docs/cluster.md#slaves-and-promotion). The write already sent may
    /// still be decided; otherwise the node registers on a later attach.
    Skip,
}

impl Attach {
    /// Whether `addr` answers as a CAL of this cluster, read-only and
    /// within `limit` per answer (at most [`PROBE_TIMEOUT`]): the client
    /// protocol (with this node's TLS and secret, as attaching uses)
    /// works, its `/ctl/name` is our `-c`, and its own store says it is
    /// writable (a CAL). Nothing is written, so a cluster that cannot
    /// decide (no majority) still answers: a slow cluster is never taken
    /// for a dead one (docs/cluster.md#stale-name-service-records).
    pub fn probe(&self, addr: SocketAddr, limit: Duration) -> Result<(), AttachError> {
        let limit = limit.min(PROBE_TIMEOUT);
        let mut p = self.open_member(addr, limit)?;
        let me = call_within(&mut p, addr, request(Verb::Self_), limit)?;
        let id = String::from_utf8_lossy(me.value.as_deref().unwrap_or_default()).into_owned();
        let writable = call_within(
            &mut p,
            addr,
            request(Verb::Get).path(&ctl::node_file(&id, NodeFile::Writable)),
            limit,
        )?;
        if writable.value.as_deref() != Some(b"true".as_slice()) {
            return Err(AttachError::NotCal { addr, id });
        }
        Ok(())
    }
}

impl AttachError {
    /// Whether a probe that failed this way still heard a live node that
    /// would not let itself be checked: it answered a request with an
    /// error (ACCESS refused: another secret), or failed the TLS handshake
    /// on the certificate (another CA). Such a node may well be a CAL of
    /// the cluster, so its records are not stale: a misconfigured node
    /// must never replace a live cluster (docs/cluster.md#stale-name-service-records).
    /// Silence, a closed or reset connection, another cluster's name and
    /// a node that is not a CAL are not refusals.
    pub fn is_refusal(&self) -> bool {
        match self {
            AttachError::Refused { .. } | AttachError::WriteRefused { .. } => true,
            AttachError::Client {
                source: doozer::Error::Connect { source, .. },
                ..
            } => source.kind() == std::io::ErrorKind::InvalidData,
            _ => false,
        }
    }
}

/// The longest a probe ([`Attach::probe`]) waits for each answer (less
/// with a shorter `-timeout`). The reads it makes are answered from the
/// member's own store, so a live member answers at once even when its
/// cluster cannot decide; a miss only counts towards `-timeout` of
/// silence, and the next probe may answer.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The files a node registers through the member it attaches to, with
/// their bodies. (`writable` is written by the node itself: `true` when it
/// is promoted, `false` again, through its CAL, after it left consensus.)
pub fn node_files(info: &NodeInfo) -> Vec<(String, String)> {
    [
        (NodeFile::Addr, info.addr.as_str()),
        (NodeFile::Hostname, &info.hostname),
        (NodeFile::Version, &info.version),
    ]
    .into_iter()
    .map(|(file, body)| (ctl::node_file(&info.id, file), body.to_string()))
    .collect()
}

/// FOLLOW from where a store is (`resume.rev`; 0 at start: copy
/// everything), with a digest of its recent history when it has one.
pub fn follow_request(resume: Resume, tag: Option<i32>) -> Request {
    let (offset, value) = match resume.digest {
        Some(d) => (
            Some(resume.events as i32),
            Some(Bytes::copy_from_slice(&d.to_be_bytes())),
        ),
        None => (None, None),
    };
    Request {
        tag,
        verb: Some(Verb::Follow as i32),
        rev: Some(resume.rev),
        offset,
        value,
        ..Default::default()
    }
}

/// The stream of `p`, blocking with no read timeout, and what was read
/// from it but not yet applied.
fn followed(p: Pipeline, addr: SocketAddr) -> Result<Followed, AttachError> {
    let (stream, rbuf) = p.into_parts();
    let (stream, tls) = match stream {
        doozer::Stream::Plain(s) => (s, None),
        doozer::Stream::Tls(s) => {
            let s = *s;
            (s.sock, Some(Box::new(s.conn)))
        }
    };
    stream
        .set_read_timeout(None)
        .map_err(|e| AttachError::Client {
            addr,
            source: doozer::Error::Io(e),
        })?;
    Ok(Followed { stream, tls, rbuf })
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
    recv_within(p, addr, STEP_TIMEOUT)
}

/// The next response, waiting at most `limit`.
fn recv_within(
    p: &mut Pipeline,
    addr: SocketAddr,
    limit: Duration,
) -> Result<Response, AttachError> {
    match p.recv_timeout(limit) {
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
    call_within(p, addr, req, STEP_TIMEOUT)
}

/// [`call`], waiting at most `limit` for each response.
fn call_within(
    p: &mut Pipeline,
    addr: SocketAddr,
    req: Req,
    limit: Duration,
) -> Result<Response, AttachError> {
    let (tag, verb, path) = (req.0.tag, req.0.verb, req.0.path.clone());
    p.send(&req.0);
    p.flush()
        .map_err(|source| AttachError::Client { addr, source })?;
    loop {
        let resp = recv_within(p, addr, limit)?;
        if resp.tag != tag {
            continue;
        }
        if let Some(code) = resp.err_code {
            let what = refusal(verb, path.as_deref(), code, resp.err_detail);
            // The only SETs here write this node's files.
            let write_refused = verb == Some(Verb::Set as i32) && code == ErrCode::Readonly as i32;
            return Err(if write_refused {
                AttachError::WriteRefused { addr, what }
            } else {
                AttachError::Refused { addr, what }
            });
        }
        return Ok(resp);
    }
}

/// What a member's error answer to one request says, in words: the verb
/// by name, the path if any, the code's name and the detail
/// (`ACCESS: OTHER: permission denied`, `SET /ctl/node/X/addr: READONLY`);
/// a refused ACCESS adds what that most likely means.
fn refusal(verb: Option<i32>, path: Option<&str>, code: i32, detail: Option<String>) -> String {
    let verb = verb.and_then(|v| Verb::try_from(v).ok());
    let mut what = verb.map_or("request", Verb::wire_name).to_string();
    if let Some(p) = path {
        what.push(' ');
        what.push_str(p);
    }
    match ErrCode::try_from(code) {
        Ok(c) => what.push_str(&format!(": {}", c.wire_name())),
        Err(_) => what.push_str(&format!(": error code {code}")),
    }
    if let Some(d) = detail.filter(|d| !d.is_empty()) {
        what.push_str(&format!(": {d}"));
    }
    if verb == Some(Verb::Access) {
        what.push_str(" (is this node's DOOZER_RWSECRET the cluster's?)");
    }
    what
}

/// Members whose stream broke or who refused to be followed, least
/// recently first: attaching tries every other candidate before them, and
/// them in turn, so two refusing members cannot keep a slave from a third
/// that would serve it.
#[derive(Debug, Clone, Default)]
pub struct LostMembers(Vec<SocketAddr>);

/// Members remembered by [`LostMembers`].
const LOST_MEMBERS_MAX: usize = 64;

impl LostMembers {
    /// `addr` was just lost.
    pub fn note(&mut self, addr: SocketAddr) {
        self.0.retain(|a| *a != addr);
        if self.0.len() >= LOST_MEMBERS_MAX {
            self.0.remove(0);
        }
        self.0.push(addr);
    }

    /// Orders `candidates`: never lost first (in their order), then the
    /// lost ones, lost longest ago first.
    pub fn order(&self, candidates: &mut [SocketAddr]) {
        // Stable: the others keep their order.
        candidates.sort_by_key(|a| self.0.iter().position(|l| l == a).map_or(0, |i| i + 1));
    }
}

/// The members a slave can follow after losing its own: the CALs of the
/// seqn it needs next, every CAL's address from the copied `/ctl` files
/// (except this node's), then the `-a` addresses.
pub fn candidates(server: &Replica, self_id: &str, attach: &[SocketAddr]) -> Vec<SocketAddr> {
    // The CALs of the next seqn first: they hold what this node lacks,
    // even if they already left the slots.
    let mut out = server.next_cal_addrs();
    if let Ok(snap) = server.store().snapshot(None) {
        if let Ok(slots) = snap.dir_names(ctl::CAL_DIR) {
            for slot in slots {
                let Ok((id, _)) = snap.get(&ctl::cal_slot(slot)) else {
                    continue;
                };
                let id = String::from_utf8_lossy(&id).into_owned();
                if id.is_empty() || id == self_id {
                    continue;
                }
                if let Ok((addr, _)) = snap.get(&ctl::node_file(&id, NodeFile::Addr)) {
                    if let Ok(addr) = String::from_utf8_lossy(&addr).parse() {
                        if !out.contains(&addr) {
                            out.push(addr);
                        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_name_the_verb_and_the_code_in_words() {
        let other = ErrCode::Other as i32;
        let denied = Some("permission denied".to_string());
        assert_eq!(
            refusal(Some(Verb::Access as i32), None, other, denied),
            "ACCESS: OTHER: permission denied (is this node's DOOZER_RWSECRET the cluster's?)"
        );
        assert_eq!(
            refusal(
                Some(Verb::Set as i32),
                Some("/ctl/node/X/addr"),
                ErrCode::Readonly as i32,
                None
            ),
            "SET /ctl/node/X/addr: READONLY"
        );
        assert_eq!(
            refusal(Some(77), Some("/x"), 55, Some(String::new())),
            "request /x: error code 55"
        );
    }

    #[test]
    fn only_an_error_answer_or_a_rejected_certificate_is_a_refusal() {
        let addr = SocketAddr::from(([127, 0, 0, 1], 1));
        let io = |kind| AttachError::Client {
            addr,
            source: doozer::Error::Connect {
                addr: addr.to_string(),
                source: std::io::Error::new(kind, "x"),
            },
        };
        let refused = AttachError::Refused {
            addr,
            what: "ACCESS: OTHER".into(),
        };
        assert!(refused.is_refusal());
        assert!(io(std::io::ErrorKind::InvalidData).is_refusal());
        for silent in [
            io(std::io::ErrorKind::ConnectionRefused),
            io(std::io::ErrorKind::TimedOut),
            io(std::io::ErrorKind::UnexpectedEof),
            AttachError::Client {
                addr,
                source: doozer::Error::Timeout,
            },
            AttachError::WrongCluster {
                addr,
                theirs: "b".into(),
                ours: "a".into(),
            },
            AttachError::NotCal {
                addr,
                id: "X".into(),
            },
        ] {
            assert!(!silent.is_refusal(), "{silent}");
        }
    }
}
