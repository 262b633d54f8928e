//! Slaves following a node (docs/reference.md#attaching-a-slave), both sides, pure.
//!
//! Leader side: a FOLLOW request turns its connection into a stream: a
//! copy of the store (SNAPSHOT, one FILE per file, READY) unless the
//! follower's resume point is still in history (then just READY), and after
//! it every applied change as a WAIT-style event. The copy is of one
//! persistent snapshot, so it never fails with `TOO_LATE`, however small
//! `-hist` and however busy the node.
//!
//! Follower side: `Replica::replay_follow` checks each response of that
//! stream (it comes from the network) and applies it: the copy replaces the
//! store at READY, and each event is replayed at exactly the next rev.

use std::net::SocketAddr;

use doozer_proto::{flags, ErrCode, Request, Response};

use super::{ConnId, Replica};
use crate::consensus::{CalSet, NodeId};
use crate::store::{validate_path, At, Copy, Event, FileCopy, Mutation, Rev, StoreError};

/// Why a follow stream cannot be used any further (the follower drops the
/// connection and attaches again).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FollowError {
    /// The node answered with an error.
    #[error("the node refused to be followed: {0}")]
    Refused(String),
    /// A response that does not fit the protocol at this point.
    #[error("follow stream: {0}")]
    Protocol(String),
}

/// Where a follower is in its stream.
#[derive(Debug, Default)]
pub enum FollowState {
    /// Not following (a CAL, or between attachments).
    #[default]
    Idle,
    /// A copy is arriving; each file is added to the tree as it comes.
    Copying(Box<Incoming>),
    /// Up to date with the stream: events are applied as they come.
    Following,
}

/// A copy of the store for one follower, as of one rev: the event loop
/// takes its FILE responses a chunk at a time, as the follower's socket
/// drains ([`CopyJob::next_chunk`]), then READY; the follower's later
/// changes wait behind it. The snapshot is shared with the store, so a
/// copy in progress costs little memory whatever the store's size.
#[derive(Debug, Clone)]
pub struct CopyJob {
    /// The follower's connection.
    pub conn: ConnId,
    tag: Option<i32>,
    snap: crate::store::Snapshot,
    /// The last file handed out: the next chunk starts after it.
    after: Option<String>,
}

impl CopyJob {
    /// Appends the next files of the copy to `out`, about `budget` bytes of
    /// them, and READY after the last one; true once the copy is all out.
    pub fn next_chunk(&mut self, budget: usize, out: &mut Vec<Response>) -> bool {
        let all = crate::store::Glob::parse("/**").expect("a constant, valid glob");
        let after = self.after.take();
        let files = match after.as_deref() {
            None => self.snap.walk_iter(&all),
            Some(p) => self.snap.walk_after(&all, p),
        };
        let mut bytes = 0;
        for f in files {
            bytes += f.path.len() + f.body.len() + 32;
            self.after = Some(f.path.clone());
            out.push(Response {
                tag: self.tag,
                flags: Some(flags::FILE),
                path: Some(f.path),
                value: Some(f.body),
                rev: Some(f.rev),
                ..Default::default()
            });
            if bytes >= budget {
                return false;
            }
        }
        let mut ready = marker(self.tag, flags::READY, self.snap.rev());
        ready.tag = Some(self.tag.unwrap_or(0));
        out.push(ready);
        true
    }

    /// Every response of the copy at once (tests and the simulator, which
    /// deliver a copy whole).
    pub fn all(mut self) -> Vec<Response> {
        let mut out = Vec::new();
        while !self.next_chunk(usize::MAX, &mut out) {}
        out
    }
}

/// A copy of a store being received.
#[derive(Debug)]
pub struct Incoming {
    /// The tree so far.
    copy: Copy,
    /// The seqn the copy is as of.
    seqn: u64,
    /// The CAL sets of the copy's window.
    sets: Vec<(u64, CalSet)>,
    /// The sender's former nodes (see `Membership::remember_former`).
    former: Vec<(NodeId, SocketAddr)>,
    /// Files so far.
    files: usize,
    /// The first bad file, reported at READY (the copy is unusable).
    bad: Option<StoreError>,
}

/// The stream is unusable for `what`.
fn protocol(what: &str) -> Result<(), FollowError> {
    Err(FollowError::Protocol(what.to_string()))
}

impl Replica {
    /// FOLLOW from `conn`: stream the store and every later change to it.
    pub(super) fn follow(&mut self, conn: ConnId, req: Request) {
        let tag = req.tag;
        if self.followers.contains_key(&conn) {
            let detail = "this connection already follows this node".to_string();
            return self.fail(conn, tag, ErrCode::Other, Some(detail));
        }
        if self.followers.len() >= MAX_FOLLOWERS {
            let detail = format!("too many followers: the limit is {MAX_FOLLOWERS}");
            return self.fail(conn, tag, ErrCode::Other, Some(detail));
        }
        let head = self.store.rev();
        let resume = req.rev.unwrap_or(0);
        // Resume only if the follower's recent history is this node's too:
        // a rev alone does not tell one cluster's log from another's.
        let same_history = match (req.offset, req.value.as_deref()) {
            (Some(n), Some(d)) if n > 0 => {
                history_digest(&self.store, resume, n as usize).map(|x| x.to_be_bytes())
                    == d.try_into().ok()
            }
            _ => false,
        };
        let in_history = same_history
            && resume <= head
            && (resume == head || self.store.event(resume + 1).is_some());
        // Slaves follow CALs: a slave's stream would carry no change it
        // has not seen itself, and could even follow its follower. A node
        // that left consensus still serves a follower that lacks what it
        // had when it left (by resuming, or a copy): it may be the only
        // node that learned its last seqns.
        let lacks_ours = |left_rev: Rev| resume < left_rev;
        if self.paxos.is_none() && !self.members.left_at_rev.is_some_and(lacks_ours) {
            let why = "this node is not a CAL: attach to a CAL".to_string();
            return self.fail(conn, tag, ErrCode::Readonly, Some(why));
        }
        self.hold(conn, tag, None);
        if in_history {
            // READY says how far this node is: the follower replays up to
            // there before it may join consensus (it would not know, while
            // replaying, whether a later change removed it).
            let mut ready = marker(tag, flags::READY, resume);
            ready.seqn = Some(self.members.applied_seqn);
            self.reply(conn, ready);
            for rev in resume + 1..=head {
                if let (Some(ev), Some(at)) = (self.store.event(rev).cloned(), self.store.at(rev)) {
                    self.reply(conn, follow_event(tag, ev, at));
                }
            }
        } else {
            let snap = self.store.head().clone();
            let mut snapshot = marker(tag, flags::SNAPSHOT, head);
            // The copy carries the seqn it is as of and the CAL sets of its
            // window: a node that copies computes the same set for every
            // seqn as everyone else.
            snapshot.seqn = Some(self.members.applied_seqn);
            snapshot.value = Some(encode_sets(
                &self.members.window_sets(),
                &self.members.former_nodes(),
            ));
            self.reply(conn, snapshot);
            self.stream_copy(conn, tag, snap);
        }
        self.followers.insert(conn, tag);
        log::info!("connection {conn} follows from rev {head}");
    }

    /// BACKUP from `conn`: the tree at the head rev, streamed (any node,
    /// CAL or slave; a read).
    pub(super) fn backup(&mut self, conn: ConnId, tag: Option<i32>) {
        let snap = self.store.head().clone();
        self.reply(conn, marker(tag, flags::SNAPSHOT, snap.rev()));
        self.stream_copy(conn, tag, snap);
    }

    /// Has the files of `snap` and READY streamed to `conn` after what was
    /// answered so far: by the event loop as the socket drains, so a copy
    /// is never built whole.
    fn stream_copy(&mut self, conn: ConnId, tag: Option<i32>, snap: crate::store::Snapshot) {
        let job = CopyJob {
            conn,
            tag,
            snap,
            after: None,
        };
        let before = self.out.iter().filter(|(c, _)| *c == conn).count();
        self.copies.push((before, job));
    }

    /// Sends `event`, just applied as change `at` of the log, to every
    /// follower.
    pub(super) fn feed_followers(&mut self, event: &Event, at: At) {
        if self.followers.is_empty() {
            return;
        }
        let followers: Vec<(ConnId, Option<i32>)> =
            self.followers.iter().map(|(c, t)| (*c, *t)).collect();
        for (conn, tag) in followers {
            self.reply(conn, follow_event(tag, event.clone(), at));
        }
    }

    /// Ends every follower's stream with an error (this node stopped being
    /// a CAL): they attach to a CAL again.
    pub(super) fn drop_followers(&mut self) {
        for (conn, tag) in std::mem::take(&mut self.followers) {
            if let (Some(s), Some(t)) = (self.sessions.get_mut(&conn), tag) {
                s.tags.remove(&t);
            }
            let why = "this node is no longer a CAL: attach to a CAL".to_string();
            self.fail(conn, tag, ErrCode::Readonly, Some(why));
        }
    }

    /// Becomes a follower that does not accept writes, expecting a stream.
    pub fn start_following(&mut self) {
        self.writable = false;
        self.follow_state = FollowState::Idle;
    }

    /// Whether the follow stream is up to date (the copy is complete).
    pub fn is_following(&self) -> bool {
        matches!(self.follow_state, FollowState::Following)
    }

    /// Applies one response of the follow stream ([`super::Input::Follow`]).
    /// An error means the stream is unusable: drop it and attach again
    /// (resuming from [`Store::rev`](crate::store::Store::rev)).
    pub(super) fn replay_follow(&mut self, resp: Response) -> Result<(), FollowError> {
        if resp.tag.is_some_and(|t| t >= super::SIDE_TAG_BASE) {
            self.side_response(resp);
            return Ok(());
        }
        if let Some(code) = resp.err_code {
            let code = ErrCode::try_from(code).map_or("unknown", ErrCode::wire_name);
            let detail = resp.err_detail.unwrap_or_default();
            return Err(FollowError::Refused(format!("{code} {detail}")));
        }
        let flags_of = resp.flags.unwrap_or(flags::OTHER);
        match (flags_of, std::mem::take(&mut self.follow_state)) {
            (flags::SNAPSHOT, FollowState::Idle) => self.begin_copy(resp),
            (flags::FILE, FollowState::Copying(incoming)) => self.copy_file(*incoming, resp),
            (flags::READY, FollowState::Copying(incoming)) => self.finish_copy(*incoming, resp),
            (flags::READY, FollowState::Idle) => {
                // Resuming where this store is, unless it must be copied.
                if self.force_copy {
                    return protocol("READY without a copy, for a store that must be copied");
                }
                if resp.rev != Some(self.store.rev()) {
                    return protocol("READY at another rev than this store");
                }
                self.no_further_than_gave_up(resp.seqn.unwrap_or(0))?;
                self.members.catch_up_to = resp.seqn.unwrap_or(0);
                self.follow_state = FollowState::Following;
                self.want_slot();
                Ok(())
            }
            (flags::SET | flags::DEL | flags::OTHER, FollowState::Following) => {
                self.replay_change(resp, flags_of)
            }
            (f, _) => protocol(&format!("unexpected response (flags {f}) at this point")),
        }
    }

    /// SNAPSHOT: a copy begins, as of a rev and seqn, with the CAL sets of
    /// its window.
    fn begin_copy(&mut self, resp: Response) -> Result<(), FollowError> {
        let Some(copy) = resp.rev.and_then(|r| Copy::new(r).ok()) else {
            return protocol("SNAPSHOT without a rev");
        };
        let (Some(seqn), Some(window)) = (resp.seqn, resp.value.as_deref().map(decode_sets)) else {
            return protocol("SNAPSHOT without its seqn and CAL sets");
        };
        let Some((sets, former)) = window else {
            return protocol("SNAPSHOT with malformed CAL sets");
        };
        if copy.rev() < self.store.rev() && !self.force_copy {
            // Never go back: this store (and its clients) saw later
            // changes. Another node, or this one later, will do.
            return protocol(&format!(
                "the node is behind this one (rev {} < {})",
                copy.rev(),
                self.store.rev()
            ));
        }
        self.no_further_than_gave_up(seqn)?;
        self.follow_state = FollowState::Copying(Box::new(Incoming {
            copy,
            seqn,
            sets,
            former,
            files: 0,
            bad: None,
        }));
        Ok(())
    }

    /// A node that gave up catching up after seqn `s` needs a member that
    /// got past `s`: a copy or resume as of seqn `s` or before (from a CAL
    /// stuck at the same place) would make it rejoin there and give up
    /// again. Another member, or this one later, will do.
    fn no_further_than_gave_up(&self, seqn: u64) -> Result<(), FollowError> {
        match self.members.gave_up_at {
            Some(s) if seqn <= s => protocol(&format!(
                "the node is no further than where this one gave up catching up (seqn {seqn} <= {s})"
            )),
            _ => Ok(()),
        }
    }

    /// FILE: one more file of the copy.
    fn copy_file(&mut self, mut c: Incoming, resp: Response) -> Result<(), FollowError> {
        let (Some(path), Some(file_rev)) = (resp.path, resp.rev) else {
            return protocol("FILE without a path or rev");
        };
        if c.bad.is_none() {
            let file = FileCopy {
                path,
                body: resp.value.unwrap_or_default(),
                rev: file_rev,
            };
            c.bad = c.copy.add(file).err();
        }
        c.files += 1;
        self.follow_state = FollowState::Copying(Box::new(c));
        Ok(())
    }

    /// READY after a copy: the copy replaces the store.
    fn finish_copy(&mut self, c: Incoming, resp: Response) -> Result<(), FollowError> {
        let rev = c.copy.rev();
        if resp.rev != Some(rev) {
            return protocol("READY at another rev than the copy");
        }
        if let Some(e) = c.bad {
            return Err(FollowError::Protocol(format!("bad copy: {e}")));
        }
        let woken = self.store.install(c.copy);
        self.answer_woken(woken);
        self.follow_state = FollowState::Following;
        self.force_copy = false;
        let (files, seqn) = (c.files, c.seqn);
        log::info!("copied {files} files at rev {rev} (seqn {seqn}); following");
        self.members.remember_former(c.former);
        self.after_copy(seqn, c.sets);
        self.replaced_store(seqn);
        Ok(())
    }

    /// A change on the stream, replayed at exactly the next rev.
    fn replay_change(&mut self, resp: Response, flags_of: i32) -> Result<(), FollowError> {
        let Some(seqn) = resp.seqn else {
            return protocol("event without its seqn");
        };
        // The stream moves: side requests may be answered otherwise now.
        self.members.side_refused = false;
        // Seqns come in order, none skipped, all the changes of one value
        // in a row: the applied seqn moves on at its last change, so every
        // change is of the seqn after it. Another would move this node's
        // place in consensus, and its record could not be replayed.
        let due = self.members.applied_seqn.checked_add(1);
        if Some(seqn) != due {
            return protocol(&format!(
                "event of seqn {seqn} after seqn {}",
                self.members.applied_seqn
            ));
        }
        let at = At {
            seqn,
            last: !resp.more.unwrap_or(false),
        };
        let event = Event {
            rev: resp.rev.unwrap_or(0),
            path: resp.path.unwrap_or_default().into(),
            body: resp.value.unwrap_or_default(),
            flags: flags_of,
        };
        if event.rev != self.store.rev() + 1 {
            return protocol(&format!(
                "event at rev {} after rev {}",
                event.rev,
                self.store.rev()
            ));
        }
        if flags_of != flags::OTHER && validate_path(&event.path).is_err() {
            return protocol("event with a bad path");
        }
        let m = Mutation::replay(&event);
        let applied = self.store.apply_at(event.rev, &m, at);
        if let Some(e) = applied.error {
            // Not the same change as on the node followed: this copy has
            // diverged (the rev is taken, by an error this node alone
            // has); serve nothing and start over from a fresh copy.
            log::error!(
                "replaying rev {} failed here: {e}; this store diverged: it stops serving and copies the store again",
                event.rev
            );
            self.force_copy = true;
            return Err(FollowError::Protocol(format!(
                "replaying rev {} failed here: {e}",
                event.rev
            )));
        }
        self.follow_state = FollowState::Following;
        self.record_replayed(seqn, m, at.last);
        self.feed_followers(&applied.event, at);
        self.answer_woken(applied.woken);
        self.after_apply(&applied.event, at);
        Ok(())
    }

    /// The stream broke: the next one starts from scratch (resume point:
    /// this store's rev).
    pub(super) fn follow_stream_lost(&mut self) {
        self.follow_state = FollowState::Idle;
        self.forget_side_requests();
    }
}

/// Most connections following one node at once (slaves, or anything
/// else with read access sending FOLLOW). A cluster has a handful; the
/// limit keeps a misbehaving client from making the node build copy after
/// copy of its store.
pub const MAX_FOLLOWERS: usize = 256;

/// Events a follower fingerprints to resume (the last this many up to its
/// rev).
pub const RESUME_DIGEST_EVENTS: usize = 16;

/// A fingerprint of the `count` events ending at `upto` (`None` if any of
/// them is no longer kept). Equal digests mean the same recent history, so
/// a follower may resume from `upto` instead of copying the store.
pub fn history_digest(store: &crate::store::Store, upto: Rev, count: usize) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    if count == 0 || upto < count as Rev {
        return None;
    }
    // Same binary, same hash; another version hashing differently only
    // costs a copy, never a wrong resume.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for rev in upto + 1 - count as Rev..=upto {
        let ev = store.event(rev)?;
        (ev.rev, &*ev.path, &ev.body[..], ev.flags).hash(&mut h);
    }
    Some(h.finish())
}

/// A change on the follow stream: the event, and where it sits in the log.
fn follow_event(tag: Option<i32>, e: Event, at: At) -> Response {
    Response {
        tag,
        path: Some(e.path.to_string()),
        rev: Some(e.rev),
        value: Some(e.body),
        flags: Some(e.flags),
        seqn: Some(at.seqn),
        more: (!at.last).then_some(true),
        ..Default::default()
    }
}

/// The CAL sets of a copy's window, as SNAPSHOT carries them, and the
/// sender's former nodes (field 2, added later: an older node sends none
/// and skips them): a node that copied after a kick must still know the
/// kicked CAL's address while the window needs it, as a snapshot keeps
/// it (docs/storage.md#images).
#[derive(Clone, PartialEq, prost::Message)]
struct WindowSets {
    #[prost(message, repeated, tag = "1")]
    sets: Vec<SetAt>,
    #[prost(message, repeated, tag = "2")]
    former: Vec<FormerAt>,
}

/// A former node and its last peer address.
#[derive(Clone, PartialEq, prost::Message)]
struct FormerAt {
    #[prost(string, tag = "1")]
    id: String,
    #[prost(string, tag = "2")]
    addr: String,
}

/// One CAL set, as of a seqn.
#[derive(Clone, PartialEq, prost::Message)]
struct SetAt {
    #[prost(uint64, tag = "1")]
    seqn: u64,
    #[prost(string, repeated, tag = "2")]
    ids: Vec<String>,
}

fn encode_sets(sets: &[(u64, CalSet)], former: &[(NodeId, SocketAddr)]) -> bytes::Bytes {
    use prost::Message;
    let msg = WindowSets {
        sets: sets
            .iter()
            .map(|(seqn, c)| SetAt {
                seqn: *seqn,
                ids: c.iter().cloned().collect(),
            })
            .collect(),
        former: former
            .iter()
            .map(|(id, a)| FormerAt {
                id: id.clone(),
                addr: a.to_string(),
            })
            .collect(),
    };
    msg.encode_to_vec().into()
}

/// The sets and former nodes of a SNAPSHOT (`None` if they are malformed:
/// from the network).
type Window = (Vec<(u64, CalSet)>, Vec<(NodeId, SocketAddr)>);

fn decode_sets(bytes: &[u8]) -> Option<Window> {
    use prost::Message;
    let msg = WindowSets::decode(bytes).ok()?;
    let sets = msg
        .sets
        .into_iter()
        .map(|s| CalSet::new(s.ids).ok().map(|c| (s.seqn, c)))
        .collect::<Option<Vec<_>>>()?;
    let former = msg
        .former
        .into_iter()
        .map(|f| f.addr.parse().ok().map(|a| (f.id, a)))
        .collect::<Option<Vec<_>>>()?;
    Some((sets, former))
}

fn marker(tag: Option<i32>, flags: i32, rev: Rev) -> Response {
    Response {
        tag,
        flags: Some(flags),
        rev: Some(rev),
        ..Default::default()
    }
}
