//! The client protocol (SPEC §3): request dispatch against the store.
//!
//! [`Server`] is pure: the event loop hands it decoded requests with the id
//! of the connection they came from and collects the responses it queues.
//! Reads are answered from the store at once (or, for a future rev, once the
//! store reaches it); writes are proposed to consensus and answered when the
//! learned change is applied; WAITs are answered when a matching change is
//! applied, so responses come back in completion order.
//!
//! Where is a WAIT answered? [`Server::handle`] registers it with the store
//! ([`Server::wait`]); applying the change that matches it answers it.

mod cluster;
pub mod follow;
mod listing;
pub mod session;

use std::collections::HashMap;

use bytes::Bytes;
use doozer_proto::{flags, ErrCode, Request, Response, Verb};

use crate::cluster::NodeInfo;
use crate::consensus::{Paxos, ProposalId};
use crate::store::{
    validate_path, Event, Glob, Mutation, ReadAt, Rev, Snapshot, Store, StoreError, WaitId, Woken,
};
pub use cluster::{ClusterConfig, RoleChange, SIDE_TAG_BASE};
pub use follow::{FollowError, FollowState};
pub use session::{Grant, Secrets, Session};

/// Largest file body a SET may write. Every change travels to the other
/// CALs in one peer datagram (`transport::MAX_MESSAGE_LEN`), with its path
/// (up to 4 KiB) and the Paxos fields, so a larger body is refused before
/// anything is proposed. At least 32 KiB is required (SPEC §7).
pub const MAX_BODY_LEN: usize = 48 << 10;

/// Identifies a client connection (chosen by the event loop).
pub type ConnId = usize;

/// Counters the stats page and metrics will show.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Requests handled, all verbs.
    pub requests: u64,
    /// Read requests answered.
    pub reads: u64,
    /// Writes (SET, DEL, NOP) proposed.
    pub writes: u64,
    /// WAIT requests received.
    pub waits: u64,
    /// Error responses sent.
    pub errors: u64,
    /// Connections open now.
    pub clients: u64,
    /// Values proposed to consensus (client writes and the node's own).
    pub proposals: u64,
}

/// A request waiting for the store to move.
#[derive(Debug, Clone, Copy)]
struct Pending {
    conn: ConnId,
    tag: Option<i32>,
}

/// Everything the client protocol needs, owned by the event loop's thread.
pub struct Server {
    store: Store,
    /// Consensus, while this node is a CAL.
    paxos: Option<Paxos>,
    members: cluster::Membership,
    self_id: Bytes,
    secrets: Secrets,
    writable: bool,
    sessions: HashMap<ConnId, Session>,
    /// Client writes proposed and not yet applied.
    writes: HashMap<ProposalId, Pending>,
    /// Glob waits registered with the store.
    waits: HashMap<WaitId, Pending>,
    /// Reads parked until the store reaches their rev.
    parked: HashMap<WaitId, (ConnId, Request)>,
    next_wait_id: WaitId,
    out: Vec<(ConnId, Response)>,
    stats: Stats,
    listings: listing::Listings,
    /// Connections following this node (slaves), with their FOLLOW tag.
    followers: HashMap<ConnId, Option<i32>>,
    /// This node's own follow stream, when it is a slave.
    follow_state: follow::FollowState,
}

/// What [`Server::new`] needs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// This node's id.
    pub self_id: String,
    /// The secrets in force.
    pub secrets: Secrets,
    /// Revisions of history kept.
    pub history_revs: u64,
    /// Consensus timing.
    pub cluster: ClusterConfig,
}

impl Server {
    /// A server over an empty store.
    pub fn new(config: ServerConfig) -> Server {
        Server {
            store: Store::new(config.history_revs),
            paxos: None,
            members: cluster::Membership::new(config.self_id.clone(), config.cluster),
            self_id: Bytes::from(config.self_id),
            secrets: config.secrets,
            writable: true,
            sessions: HashMap::new(),
            writes: HashMap::new(),
            waits: HashMap::new(),
            parked: HashMap::new(),
            next_wait_id: 1,
            out: Vec::new(),
            stats: Stats::default(),
            listings: listing::Listings::default(),
            followers: HashMap::new(),
            follow_state: follow::FollowState::default(),
        }
    }

    /// Seeds a new cluster with this node as its only CAL (SPEC §4).
    pub fn seed(&mut self, cluster: &str, node: &NodeInfo) {
        self.start_seed(crate::cluster::seed_mutations(cluster, node));
    }

    /// The store, for reading.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The counters.
    pub fn stats(&self) -> Stats {
        Stats {
            clients: self.sessions.len() as u64,
            proposals: self.members.proposals,
            ..self.stats.clone()
        }
    }

    /// A connection was accepted.
    pub fn connect(&mut self, conn: ConnId) {
        self.sessions.insert(conn, Session::new(&self.secrets));
    }

    /// A connection went away: forget its waits, its pending writes'
    /// answers (the writes still happen) and its queued responses. The
    /// event loop reuses connection ids, so nothing addressed to `conn`
    /// may outlive it: a new connection would get the old one's answers.
    pub fn disconnect(&mut self, conn: ConnId) {
        self.followers.remove(&conn);
        if let Some(session) = self.sessions.remove(&conn) {
            for id in session.waits {
                self.store.cancel(id);
                self.waits.remove(&id);
                self.parked.remove(&id);
            }
        }
        self.writes.retain(|_, p| p.conn != conn);
        self.out.retain(|(c, _)| *c != conn);
    }

    /// Responses queued since the last call, with their connections.
    #[cfg(test)]
    pub fn take_responses(&mut self) -> Vec<(ConnId, Response)> {
        std::mem::take(&mut self.out)
    }

    /// Moves queued responses into `buf` (keeps `buf`'s allocation).
    pub fn drain_responses_into(&mut self, buf: &mut Vec<(ConnId, Response)>) {
        buf.append(&mut self.out);
    }

    /// Handles one request from `conn`, and applies whatever consensus
    /// decided meanwhile (a single CAL decides a write at once).
    pub fn handle(&mut self, conn: ConnId, req: Request) {
        self.handle_deferred(conn, req);
        self.pump();
    }

    /// Handles one request from `conn`. In a cluster, decided values wait
    /// for the next [`Server::pump`]: the event loop handles every request
    /// it read first, so consensus sends one batch per peer for all of
    /// them. A lone CAL applies its write at once, as before any request
    /// after it is handled (pipelined reads see it).
    pub fn handle_deferred(&mut self, conn: ConnId, req: Request) {
        self.stats.requests += 1;
        self.dispatch(conn, req);
        if self.is_lone_cal() {
            self.pump();
        }
    }

    /// Checks and answers (or parks, or proposes) a request; also used for
    /// a parked read once its rev is reached.
    fn dispatch(&mut self, conn: ConnId, req: Request) {
        let tag = req.tag;
        let Some(session) = self.sessions.get(&conn) else {
            return;
        };
        let verb = match req.verb {
            None => return self.fail(conn, tag, ErrCode::MissingArg, Some("verb".into())),
            Some(v) => match Verb::try_from(v) {
                Ok(v) => v,
                Err(_) => {
                    return self.fail(conn, tag, ErrCode::UnknownVerb, Some(format!("verb {v}")))
                }
            },
        };
        if let Some(t) = tag {
            if session.tags.contains(&t) {
                return self.fail(conn, tag, ErrCode::TagInUse, None);
            }
        }
        let grant = session.grant;
        let is_write = matches!(verb, Verb::Set | Verb::Del | Verb::Nop);
        if verb != Verb::Access && (!grant.read || (is_write && !grant.write)) {
            return self.fail(conn, tag, ErrCode::Other, Some("permission denied".into()));
        }
        if is_write && !self.writable {
            return self.fail(conn, tag, ErrCode::Readonly, None);
        }
        match verb {
            Verb::Access => self.access(conn, req),
            Verb::Rev => {
                let rev = self.store.rev();
                self.reply(
                    conn,
                    Response {
                        tag,
                        rev: Some(rev),
                        ..Default::default()
                    },
                );
            }
            Verb::Self_ => {
                let value = Some(self.self_id.clone());
                self.reply(
                    conn,
                    Response {
                        tag,
                        value,
                        ..Default::default()
                    },
                );
            }
            Verb::Get | Verb::Stat | Verb::Getdir | Verb::Walk => self.read(conn, verb, req),
            Verb::Wait => self.wait(conn, req),
            Verb::Set | Verb::Del | Verb::Nop => self.write(conn, verb, req),
            Verb::Follow => self.follow(conn, req),
        }
    }

    fn access(&mut self, conn: ConnId, req: Request) {
        let Some(secret) = req.value else {
            return self.fail(conn, req.tag, ErrCode::MissingArg, Some("value".into()));
        };
        match self.secrets.grant(&secret) {
            Some(grant) => {
                if let Some(s) = self.sessions.get_mut(&conn) {
                    s.grant = grant;
                }
                self.reply(
                    conn,
                    Response {
                        tag: req.tag,
                        ..Default::default()
                    },
                );
            }
            None => self.fail(
                conn,
                req.tag,
                ErrCode::Other,
                Some("permission denied".into()),
            ),
        }
    }

    /// The snapshot a read asks for, or `None` when the request was
    /// answered with `TOO_LATE` or parked until its future rev. A rev ≤ 0
    /// or absent reads the head.
    fn snapshot_for(&mut self, conn: ConnId, req: &Request) -> Option<Snapshot> {
        let rev = req.rev.filter(|r| *r > 0);
        match self.store.snapshot(rev) {
            Ok(s) => Some(s),
            Err(ReadAt::TooLate) => {
                self.fail(conn, req.tag, ErrCode::TooLate, None);
                None
            }
            Err(ReadAt::Future) => {
                self.park(conn, req.clone(), rev.unwrap_or_default());
                None
            }
        }
    }

    /// Parks `req` until the store reaches `rev`, then handles it again.
    fn park(&mut self, conn: ConnId, req: Request, rev: Rev) {
        let id = self.new_wait_id();
        self.store.wait_rev(id, rev);
        self.hold(conn, req.tag, Some(id));
        self.parked.insert(id, (conn, req));
    }

    /// Marks a request of `conn` as outstanding: its tag is in use until it
    /// is answered, and its store wait (if any) is cancelled if the
    /// connection goes away first.
    fn hold(&mut self, conn: ConnId, tag: Option<i32>, wait: Option<WaitId>) {
        if let Some(s) = self.sessions.get_mut(&conn) {
            s.tags.extend(tag);
            s.waits.extend(wait);
        }
    }

    fn new_wait_id(&mut self) -> WaitId {
        let id = self.next_wait_id;
        self.next_wait_id += 1;
        id
    }

    fn read(&mut self, conn: ConnId, verb: Verb, req: Request) {
        let tag = req.tag;
        let Some(path) = req.path.as_deref() else {
            return self.fail(conn, tag, ErrCode::MissingArg, Some("path".into()));
        };
        let offset = req.offset.unwrap_or(0);
        if offset < 0 {
            return self.fail(conn, tag, ErrCode::Range, None);
        }
        // Validate before parking so a bad request fails at once.
        let glob = if verb == Verb::Walk {
            match Glob::parse(path) {
                Ok(g) => Some(g),
                Err(e) => return self.store_error(conn, tag, e, path),
            }
        } else {
            if let Err(e) = validate_path(path) {
                return self.store_error(conn, tag, e, path);
            }
            None
        };
        let Some(snap) = self.snapshot_for(conn, &req) else {
            return;
        };
        self.stats.reads += 1;
        let result = match (verb, glob) {
            (Verb::Get, _) => snap.get(path).map(|(value, rev)| Response {
                tag,
                value: Some(value),
                rev: Some(rev),
                ..Default::default()
            }),
            (Verb::Stat, _) => snap.stat(path).map(|(len, rev)| Response {
                tag,
                len: Some(len.min(i32::MAX as usize) as i32),
                rev: Some(rev),
                ..Default::default()
            }),
            (Verb::Getdir, _) => self
                .listings
                .entry(&snap, path, offset as usize)
                .map(|name| Response {
                    tag,
                    path: Some(name),
                    ..Default::default()
                }),
            (Verb::Walk, Some(glob)) => snap.walk(&glob, offset as usize).map(|e| Response {
                tag,
                path: Some(e.path),
                rev: Some(e.rev),
                value: Some(e.body),
                flags: Some(flags::SET),
                ..Default::default()
            }),
            _ => Err(StoreError::BadPath),
        };
        match result {
            Ok(resp) => self.reply(conn, resp),
            Err(e) => self.store_error(conn, tag, e, path),
        }
    }

    /// WAIT: the first change at or after `rev` to a file matching a glob.
    fn wait(&mut self, conn: ConnId, req: Request) {
        let tag = req.tag;
        self.stats.waits += 1;
        let (Some(path), Some(from)) = (req.path.as_deref(), req.rev) else {
            let missing = if req.path.is_none() { "path" } else { "rev" };
            return self.fail(conn, tag, ErrCode::MissingArg, Some(missing.into()));
        };
        let glob = match Glob::parse(path) {
            Ok(g) => g,
            Err(e) => return self.store_error(conn, tag, e, path),
        };
        // A wait from beyond the next rev parks until the rev before it,
        // so the store only ever sees waits it can answer from its events.
        if from > self.store.rev() + 1 {
            return self.park(conn, req, from - 1);
        }
        let id = self.new_wait_id();
        match self.store.wait(id, glob, from) {
            Ok(Some(event)) => self.reply_event(conn, tag, event),
            Ok(None) => {
                self.hold(conn, tag, Some(id));
                self.waits.insert(id, Pending { conn, tag });
            }
            Err(e) => self.store_error(conn, tag, e, path),
        }
    }

    fn write(&mut self, conn: ConnId, verb: Verb, req: Request) {
        let tag = req.tag;
        let m = match verb {
            Verb::Nop => Mutation::Nop,
            _ => {
                let (Some(path), Some(rev)) = (req.path, req.rev) else {
                    return self.fail(conn, tag, ErrCode::MissingArg, Some("path and rev".into()));
                };
                if let Err(e) = validate_path(&path) {
                    return self.store_error(conn, tag, e, &path);
                }
                if verb == Verb::Set {
                    let body = req.value.unwrap_or_default();
                    if body.len() > MAX_BODY_LEN {
                        let detail = format!(
                            "value too large: {} bytes; the limit is {MAX_BODY_LEN} bytes",
                            body.len()
                        );
                        return self.fail(conn, tag, ErrCode::Other, Some(detail));
                    }
                    Mutation::Set { path, rev, body }
                } else {
                    Mutation::Del { path, rev }
                }
            }
        };
        self.stats.writes += 1;
        self.propose_write(m, Pending { conn, tag });
    }

    /// Applies the change decided for `rev`, answering the write it
    /// completes (if it is this node's), waits and parked reads.
    fn apply_one(&mut self, rev: Rev, m: &Mutation, write: Option<Pending>) {
        let applied = self.store.apply(rev, m);
        if let Some(p) = write {
            self.untag(p);
            match applied.error {
                Some(e) => {
                    let path = match m {
                        Mutation::Set { path, .. } | Mutation::Del { path, .. } => path.as_str(),
                        Mutation::Nop => "/",
                    };
                    self.store_error(p.conn, p.tag, e, path)
                }
                None => {
                    let rev = match m {
                        Mutation::Del { .. } => None,
                        _ => Some(rev),
                    };
                    self.reply(
                        p.conn,
                        Response {
                            tag: p.tag,
                            rev,
                            ..Default::default()
                        },
                    )
                }
            }
        }
        self.feed_followers(&applied.event);
        self.answer_woken(applied.woken);
        self.after_apply(&applied.event);
    }

    /// Answers waits the store woke: glob waits with their event, parked
    /// reads by handling them again, lost waits with `TOO_LATE`.
    fn answer_woken(&mut self, woken: Vec<Woken>) {
        for w in woken {
            match w {
                Woken::Wait { id, event } => {
                    if let Some(p) = self.waits.remove(&id) {
                        self.forget_wait(p, id);
                        self.reply_event(p.conn, p.tag, event);
                    }
                }
                Woken::Rev { id } => {
                    if let Some((conn, req)) = self.parked.remove(&id) {
                        self.forget_wait(Pending { conn, tag: req.tag }, id);
                        self.dispatch(conn, req);
                    }
                }
                Woken::Lost { id } => {
                    if let Some(p) = self.waits.remove(&id) {
                        self.forget_wait(p, id);
                        self.fail(p.conn, p.tag, ErrCode::TooLate, None);
                    }
                }
            }
        }
    }

    fn forget_wait(&mut self, p: Pending, id: WaitId) {
        if let Some(s) = self.sessions.get_mut(&p.conn) {
            s.waits.remove(&id);
        }
        self.untag(p);
    }

    fn untag(&mut self, p: Pending) {
        if let (Some(s), Some(t)) = (self.sessions.get_mut(&p.conn), p.tag) {
            s.tags.remove(&t);
        }
    }

    fn reply_event(&mut self, conn: ConnId, tag: Option<i32>, e: Event) {
        self.reply(
            conn,
            Response {
                tag,
                path: Some(e.path.to_string()),
                rev: Some(e.rev),
                value: Some(e.body),
                flags: Some(e.flags),
                ..Default::default()
            },
        );
    }

    fn store_error(&mut self, conn: ConnId, tag: Option<i32>, e: StoreError, path: &str) {
        let (code, detail) = match e {
            StoreError::BadPath => (ErrCode::BadPath, Some(path.to_string())),
            StoreError::TooLate => (ErrCode::TooLate, None),
            StoreError::RevMismatch => (ErrCode::RevMismatch, None),
            StoreError::IsDir => (ErrCode::Isdir, Some(path.to_string())),
            StoreError::NotDir => (ErrCode::Notdir, Some(path.to_string())),
            StoreError::NoEnt => (ErrCode::Noent, Some(path.to_string())),
            StoreError::Range => (ErrCode::Range, None),
        };
        self.fail(conn, tag, code, detail);
    }

    fn fail(&mut self, conn: ConnId, tag: Option<i32>, code: ErrCode, detail: Option<String>) {
        self.stats.errors += 1;
        self.reply(conn, Response::error(tag, code, detail));
    }

    fn reply(&mut self, conn: ConnId, mut resp: Response) {
        if !self.sessions.contains_key(&conn) {
            return; // gone; nobody to tell
        }
        // Tag 0 is the default of an absent tag; always echo one.
        resp.tag = Some(resp.tag.unwrap_or(0));
        self.out.push((conn, resp));
    }
}

#[cfg(test)]
mod tests;
