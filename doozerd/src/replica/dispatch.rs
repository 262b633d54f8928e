//! Client requests: checking and answering each verb against the store,
//! parking reads at future revs and WAITs, proposing writes, and answering
//! them when the change they wait for is applied (the wire protocol:
//! docs/reference.md).
//!
//! Where is a WAIT answered? [`Replica::wait`] answers it from history or
//! registers it with the store; [`Replica::apply_value`] answers it when a
//! matching change is applied (through [`Replica::answer_woken`]).

use doozer_proto::{flags, ErrCode, Request, Response, Verb};

use super::{
    ConnId, Pending, Replica, MAX_BODY_LEN, MAX_GLOB_WAIT_BYTES, MAX_WAITS, MAX_WAITS_PER_CONN,
};
use crate::store::{
    validate_path, Applied, At, Event, Glob, Mutation, ReadAt, Rev, Snapshot, StoreError, Value,
    WaitId, Woken,
};

impl Replica {
    /// Checks and answers (or parks, or proposes) a request; also used for
    /// a parked read once its rev is reached.
    pub(super) fn dispatch(&mut self, conn: ConnId, req: Request) {
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
        if self.force_copy && verb != Verb::Access {
            let why = "this node's store is being copied again (it diverged from the cluster's)";
            return self.fail(conn, tag, ErrCode::Other, Some(why.into()));
        }
        let grant = session.grant;
        let is_write = matches!(verb, Verb::Set | Verb::Del | Verb::Nop);
        if verb != Verb::Access && (!grant.read || (is_write && !grant.write)) {
            return self.fail(conn, tag, ErrCode::Other, Some("permission denied".into()));
        }
        // A leaving CAL takes no new client write (see `Replica::leave`).
        if is_write && !self.writable {
            return self.fail(conn, tag, ErrCode::Readonly, None);
        }
        // A leaving CAL takes no new client write (see `Replica::leave`).
        if is_write && self.leaving && !self.followers.contains_key(&conn) {
            let why = "this node is leaving the cluster (SIGTERM); write to another CAL";
            return self.fail(conn, tag, ErrCode::Readonly, Some(why.into()));
        }
        if let Some(why) = self.disk_error.as_ref().filter(|_| is_write) {
            let detail = match why.starts_with("disk: ") {
                true => why.clone(),
                false => format!("disk: {why}"),
            };
            return self.fail(conn, tag, ErrCode::Other, Some(detail));
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
            Verb::Backup => self.backup(conn, tag),
        }
    }

    fn access(&mut self, conn: ConnId, req: Request) {
        let Some(secret) = req.value else {
            return self.fail(conn, req.tag, ErrCode::MissingArg, Some("value".into()));
        };
        // A wrong secret takes the grant back to the empty secret's.
        let Some(session) = self.sessions.get_mut(&conn) else {
            return;
        };
        if session.access(&self.secrets, &secret) {
            self.reply(
                conn,
                Response {
                    tag: req.tag,
                    ..Default::default()
                },
            );
        } else {
            self.fail(
                conn,
                req.tag,
                ErrCode::Other,
                Some("permission denied".into()),
            );
        }
    }

    /// The snapshot a read asks for, or `None` when the request was
    /// answered with `TOO_LATE` or parked until its future rev. A rev ≤ 0
    /// or absent reads the head.
    pub(super) fn snapshot_for(&mut self, conn: ConnId, req: &Request) -> Option<Snapshot> {
        let rev = req.rev.filter(|r| *r > 0);
        match self.store.snapshot(rev) {
            Ok(s) => Some(s),
            Err(ReadAt::TooLate) => {
                self.fail(conn, req.tag, ErrCode::TooLate, None);
                None
            }
            Err(ReadAt::Future) => {
                // A parked read keeps only what it needs: not a value a
                // client may have sent along with it.
                let mut parked = req.clone();
                parked.value = None;
                self.park(conn, parked, rev.unwrap_or_default());
                None
            }
        }
    }

    /// Parks `req` until the store reaches `rev`, then handles it again
    /// (refused when this connection or the node has too many waiting).
    pub(super) fn park(&mut self, conn: ConnId, req: Request, rev: Rev) {
        if let Err(why) = self.room_for_a_wait(conn) {
            return self.fail(conn, req.tag, ErrCode::Other, Some(why));
        }
        let id = self.new_wait_id();
        self.store.wait_rev(id, rev);
        self.hold(conn, req.tag, Some(id));
        self.parked.insert(id, (conn, req));
    }

    /// Whether one more request of `conn` may wait (a WAIT, or a read at a
    /// future rev): every waiting request costs memory, and every change
    /// is matched against every glob, so both are bounded, per connection
    /// and per node (docs/behaviour.md, "Limits").
    fn room_for_a_wait(&self, conn: ConnId) -> Result<(), String> {
        let mine = self.sessions.get(&conn).map_or(0, |s| s.waits.len());
        if mine >= MAX_WAITS_PER_CONN {
            return Err(format!(
                "too many requests waiting on this connection: the limit is {MAX_WAITS_PER_CONN}"
            ));
        }
        if self.store.waits_pending() >= MAX_WAITS
            || self.store.glob_wait_bytes() >= MAX_GLOB_WAIT_BYTES
        {
            return Err(format!(
                "too many requests waiting on this node: the limit is {MAX_WAITS} requests, \
                 {MAX_GLOB_WAIT_BYTES} bytes of globs"
            ));
        }
        Ok(())
    }

    /// Marks a request of `conn` as outstanding: its tag is in use until it
    /// is answered, and its store wait (if any) is cancelled if the
    /// connection goes away first.
    pub(super) fn hold(&mut self, conn: ConnId, tag: Option<i32>, wait: Option<WaitId>) {
        if let Some(s) = self.sessions.get_mut(&conn) {
            s.tags.extend(tag);
            s.waits.extend(wait);
        }
    }

    pub(super) fn new_wait_id(&mut self) -> WaitId {
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
            (Verb::Getdir, _) => snap.getdir(path, offset as usize).map(|name| Response {
                tag,
                path: Some(name),
                ..Default::default()
            }),
            (Verb::Walk, Some(glob)) => {
                self.walks
                    .entry(&snap, &glob, offset as usize)
                    .map(|e| Response {
                        tag,
                        path: Some(e.path),
                        rev: Some(e.rev),
                        value: Some(e.body),
                        flags: Some(flags::SET),
                        ..Default::default()
                    })
            }
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
                if let Err(why) = self.room_for_a_wait(conn) {
                    self.store.cancel(id);
                    return self.fail(conn, tag, ErrCode::Other, Some(why));
                }
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
                let missing = |field: &str| Some(field.to_string());
                let (path, rev) = match (req.path, req.rev) {
                    (Some(path), Some(rev)) => (path, rev),
                    (Some(_), None) => {
                        return self.fail(conn, tag, ErrCode::MissingArg, missing("rev"))
                    }
                    (None, Some(_)) => {
                        return self.fail(conn, tag, ErrCode::MissingArg, missing("path"))
                    }
                    (None, None) => {
                        return self.fail(conn, tag, ErrCode::MissingArg, missing("path and rev"))
                    }
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

    /// Applies what seqn `seqn` decided (one rev per change), answering
    /// the client writes it holds (`writes`, one per change, when it is
    /// this node's batch), waits and parked reads, and feeding the
    /// followers.
    /// `early`: the writes' answers may leave before this output's sync
    /// (see [`Output::early_responses`]).
    ///
    /// [`Output::early_responses`]: super::Output::early_responses
    pub(super) fn apply_value(
        &mut self,
        seqn: u64,
        v: &Value,
        mut writes: Vec<Option<Pending>>,
        early: bool,
    ) {
        let results = self.store.apply_value(seqn, v);
        let n = results.len();
        if n > 0 {
            self.last_batch = n;
        }
        // Every change of a batch has its result; anything else is a bug,
        // and the writes left over must still get an answer.
        let extra = writes.split_off(n.min(writes.len()));
        for (i, applied) in results.into_iter().enumerate() {
            let at = At {
                seqn,
                last: i + 1 == n,
            };
            if let Some(Some(p)) = writes.get(i) {
                self.answering_early = early;
                self.answer_write(*p, v.changes.get(i), &applied);
                self.answering_early = false;
            }
            self.feed_followers(&applied.event, at);
            self.answer_woken(applied.woken);
            self.after_apply(&applied.event, at);
        }
        if extra.iter().flatten().next().is_some() {
            log::error!("BUG: seqn {seqn} applied {n} changes for more writes");
            self.fail_writes(extra, ErrCode::Other, Some("outcome unknown"));
        }
    }

    /// Answers a client's write with what applying its change did.
    fn answer_write(&mut self, p: Pending, m: Option<&Mutation>, applied: &Applied) {
        self.untag(p);
        match applied.error.clone() {
            Some(e) => {
                let path = match m {
                    Some(Mutation::Set { path, .. } | Mutation::Del { path, .. }) => path.as_str(),
                    _ => "/",
                };
                self.store_error(p.conn, p.tag, e, path)
            }
            None => {
                let rev = match m {
                    Some(Mutation::Del { .. }) => None,
                    _ => Some(applied.event.rev),
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

    /// Answers waits the store woke: glob waits with their event, parked
    /// reads by handling them again, lost waits with `TOO_LATE`.
    pub(super) fn answer_woken(&mut self, woken: Vec<Woken>) {
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

    pub(super) fn forget_wait(&mut self, p: Pending, id: WaitId) {
        if let Some(s) = self.sessions.get_mut(&p.conn) {
            s.waits.remove(&id);
        }
        self.untag(p);
    }

    pub(super) fn untag(&mut self, p: Pending) {
        if let (Some(s), Some(t)) = (self.sessions.get_mut(&p.conn), p.tag) {
            s.tags.remove(&t);
        }
    }

    pub(super) fn reply_event(&mut self, conn: ConnId, tag: Option<i32>, e: Event) {
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

    pub(super) fn store_error(
        &mut self,
        conn: ConnId,
        tag: Option<i32>,
        e: StoreError,
        path: &str,
    ) {
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

    pub(super) fn fail(
        &mut self,
        conn: ConnId,
        tag: Option<i32>,
        code: ErrCode,
        detail: Option<String>,
    ) {
        self.stats.errors += 1;
        self.reply(conn, Response::error(tag, code, detail));
    }

    pub(super) fn reply(&mut self, conn: ConnId, mut resp: Response) {
        if !self.sessions.contains_key(&conn) {
            return; // gone; nobody to tell
        }
        // Tag 0 is the default of an absent tag; always echo one.
        resp.tag = Some(resp.tag.unwrap_or(0));
        // What the event loop will hold for this connection (frame header
        // included): it stops reading a connection with too much waiting.
        let bytes = prost::Message::encoded_len(&resp) + 4;
        *self.queued.entry(conn).or_default() += bytes;
        self.queued_total += bytes;
        if self.answering_early && !self.copies.iter().any(|(_, j)| j.conn == conn) {
            self.early_out.push((conn, resp));
        } else {
            self.out.push((conn, resp));
        }
    }
}
