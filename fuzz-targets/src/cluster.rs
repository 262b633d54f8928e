//! What the targets that drive a whole [`Replica`] share: a node as the
//! event loop holds it (the replica, the clock, the client connections'
//! read buffers, in durable mode its data directory) and the invariants
//! every [`Output`] and every restart must meet.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};
use doozer_proto::peer::PeerMsg;
use doozer_proto::{FrameDecoder, Request, Response, Verb, MAX_FRAME_LEN};
use doozerd::cluster::NodeInfo;
use doozerd::replica::{
    ClusterConfig, ConnId, Input, Output, Replica, ReplicaConfig, Secrets, SnapshotJob,
};
use doozerd::storage::{MemoryDir, Record};
use doozerd::store::{Glob, Snapshot};
use prost::Message;

/// The id of the node under test.
pub const SELF_ID: &str = "A";
/// Its `-l` address.
pub const SELF_ADDR: &str = "127.0.0.1:8046";

/// One client connection, as the event loop holds it.
#[derive(Debug, Default)]
struct Conn {
    /// Bytes read and not yet a whole frame.
    rbuf: BytesMut,
    /// Every tag a request on it carried (an absent one is 0 on the
    /// wire, and echoed as 0).
    tags: HashSet<i32>,
}

/// A replica, its clock and its client connections.
pub struct Node {
    /// The replica under test.
    pub replica: Replica,
    /// Its configuration, to recover it with.
    config: ReplicaConfig,
    /// Its data directory, in durable mode.
    disk: Option<MemoryDir>,
    /// The clock, in ms.
    pub now_ms: u64,
    conns: HashMap<ConnId, Conn>,
    out: Output,
    /// The store's rev after the last output: it never goes back.
    last_rev: i64,
    /// The last output's deadline.
    deadline_ms: Option<u64>,
    /// Responses seen, for targets that look at them.
    pub responses: Vec<(ConnId, Response)>,
}

/// The replica's configuration: one of a few windows (the real one is
/// 50), so small inputs reach the window's edges too, and one of a few
/// histories; with or without a data directory (durable mode).
pub fn config(self_id: &str, alpha_choice: u8, secrets: Secrets) -> ReplicaConfig {
    ReplicaConfig {
        self_id: self_id.into(),
        secrets,
        history_revs: [2000, 16, 3][usize::from(alpha_choice / 3) % 3],
        cluster: ClusterConfig {
            alpha: [50, 5, 2][usize::from(alpha_choice) % 3],
            fill_ms: 100,
            timeout_ms: 3_000,
            pulse_ms: 1_000,
            seed: u64::from(alpha_choice),
        },
        durable: (alpha_choice / 9) % 2 == 1,
    }
}

/// The files of node `id` at `addr`, as a node writes them when it seeds
/// or attaches.
pub fn node_info(id: &str, addr: &str) -> NodeInfo {
    NodeInfo {
        id: id.into(),
        addr: addr.into(),
        hostname: "fuzz".into(),
        version: doozerd::VERSION.into(),
    }
}

impl Node {
    /// A node with a new replica (an empty store), with no connection
    /// yet.
    pub fn new(config: ReplicaConfig) -> Node {
        Node::new_with(Replica::new(config.clone()), config)
    }

    /// A node around `replica`, made with `config` (its data directory,
    /// in durable mode, starts empty), with no connection yet.
    pub fn new_with(replica: Replica, config: ReplicaConfig) -> Node {
        Node {
            replica,
            disk: config.durable.then(MemoryDir::default),
            config,
            now_ms: 0,
            conns: HashMap::new(),
            out: Output::default(),
            last_rev: 0,
            deadline_ms: None,
            responses: Vec::new(),
        }
    }

    /// A node that seeded a one-node cluster named `local`.
    pub fn seeded(config: ReplicaConfig) -> Node {
        let mut node = Node::new(config);
        node.replica.seed("local", &node_info(SELF_ID, SELF_ADDR));
        node.ready();
        node
    }

    /// In durable mode, the process dies after one more loop iteration
    /// (its output written) and starts again from its data directory;
    /// returns whether it did. The replica recovered from the disk must
    /// hold the very store it had, or, on a slave stopped in the middle
    /// of a seqn's changes, the store as of the last whole seqn (a store
    /// that diverged, which must be copied again, may come back older);
    /// every connection is gone.
    pub fn restart(&mut self) -> bool {
        if self.disk.is_none() {
            return false;
        }
        self.ready();
        let disk = self.disk.as_ref().expect("durable mode");
        let replica = Replica::recover(self.config.clone(), disk.restored(), disk.records())
            .unwrap_or_else(|e| panic!("cannot recover from its own disk: {e}"));
        let (before, after) = (self.replica.store(), replica.store());
        let (rev, head) = (after.rev(), before.rev());
        if self.replica.must_copy() {
            // Its head cannot be trusted (it diverged): it may be lost.
            assert!(rev <= head, "recovered at {rev}, past its head");
        } else if before.at(head).is_none_or(|at| at.last) {
            assert_eq!(rev, head, "recovered at another rev");
        } else {
            assert!(rev < head, "recovered at {rev}, past the whole seqns");
        }
        // (A rev older than the history kept cannot be compared.)
        if let Ok(then) = before.snapshot(Some(rev)) {
            let now = after.snapshot(None).expect("the head is always there");
            assert!(
                files(&now) == files(&then),
                "recovered another tree at rev {rev}"
            );
        }
        self.replica = replica;
        self.last_rev = rev;
        self.conns.clear();
        self.deadline_ms = None;
        true
    }

    /// In durable mode, what its data directory holds: the last
    /// checkpoint's snapshot (if any) and the records after it (the
    /// checkpoint's own first).
    pub fn disk(&self) -> Option<(Option<SnapshotJob>, Vec<Record>)> {
        let disk = self.disk.as_ref()?;
        Some((disk.last_snapshot().cloned(), disk.records().to_vec()))
    }

    /// Whether connection `conn` is open.
    pub fn is_open(&self, conn: ConnId) -> bool {
        self.conns.contains_key(&conn)
    }

    /// Feeds `input` at the current time.
    pub fn step(&mut self, input: Input) {
        // Only the follow stream's responses may be refused; the targets
        // that feed them look at the result themselves.
        let _ = self.replica.step(self.now_ms, input);
    }

    /// Accepts connection `conn` (if it is not open).
    pub fn connect(&mut self, conn: ConnId) {
        if let Entry::Vacant(e) = self.conns.entry(conn) {
            e.insert(Conn::default());
            self.step(Input::Connect(conn));
        }
    }

    /// Closes connection `conn` (if it is open).
    pub fn disconnect(&mut self, conn: ConnId) {
        if self.conns.remove(&conn).is_some() {
            self.step(Input::Disconnect(conn));
        }
    }

    /// A decoded request on open connection `conn`.
    pub fn request(&mut self, conn: ConnId, req: Request) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.tags.insert(req.tag.unwrap_or(0));
        self.step(Input::Request(conn, req));
    }

    /// Bytes read from connection `conn`, handled as the event loop does:
    /// each whole frame is decoded and stepped; a frame too large or a
    /// request that does not decode closes the connection.
    pub fn read(&mut self, conn: ConnId, bytes: &[u8]) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.rbuf.extend_from_slice(bytes);
        let decoder = FrameDecoder::default();
        loop {
            let Some(c) = self.conns.get_mut(&conn) else {
                return;
            };
            let frame = match decoder.decode(&mut c.rbuf) {
                Ok(Some(frame)) => frame,
                Ok(None) => return,
                Err(_) => return self.disconnect(conn),
            };
            match Request::decode(frame) {
                Ok(req) => self.request(conn, req),
                Err(_) => return self.disconnect(conn),
            }
        }
    }

    /// Accepts the store's rev as it is now, even if it went back (a
    /// slave installed a copy of an older store).
    pub fn allow_rev_reset(&mut self) {
        self.last_rev = self.replica.store().rev();
    }

    /// Moves the clock on by `ms`.
    pub fn advance(&mut self, ms: u64) {
        self.now_ms = self.now_ms.saturating_add(ms);
    }

    /// Sleeps until the last output's deadline, if it is later than now
    /// (the loop's poll wakes then), and drains the output.
    pub fn wake(&mut self) -> Vec<(SocketAddr, PeerMsg)> {
        if let Some(t) = self.deadline_ms {
            self.now_ms = self.now_ms.max(t);
        }
        self.ready()
    }

    /// One loop iteration's output, checked; returns its peer messages.
    pub fn ready(&mut self) -> Vec<(SocketAddr, PeerMsg)> {
        self.out.clear();
        self.replica.ready(self.now_ms, &mut self.out);
        self.check_output();
        if let Some(disk) = &mut self.disk {
            // Every output synced: `restart` checks the store it had.
            disk.persist(&mut self.out, false);
        }
        self.deadline_ms = self.out.deadline_ms;
        self.responses.append(&mut self.out.responses);
        std::mem::take(&mut self.out.messages)
    }

    /// The invariants of every output: answers only go to open
    /// connections and carry a tag the connection sent; each fits a frame
    /// a client accepts; the store never goes back; the deadline is not
    /// in the past.
    fn check_output(&mut self) {
        for (conn, resp) in &self.out.responses {
            let c = self
                .conns
                .get(conn)
                .unwrap_or_else(|| panic!("an answer for connection {conn}, which is closed"));
            let tag = resp
                .tag
                .unwrap_or_else(|| panic!("an answer without a tag: {resp:?}"));
            assert!(
                c.tags.contains(&tag),
                "connection {conn} got tag {tag}, which it never sent: {resp:?}"
            );
            assert!(
                resp.encoded_len() <= MAX_FRAME_LEN,
                "an answer of {} bytes: no client reads it",
                resp.encoded_len()
            );
            if let Some(code) = resp.err_code {
                assert!(
                    doozer_proto::ErrCode::try_from(code).is_ok(),
                    "unknown error code {code}"
                );
            }
        }
        let rev = self.replica.store().rev();
        assert!(
            rev >= self.last_rev,
            "the store went back from {} to {rev}",
            self.last_rev
        );
        self.last_rev = rev;
        if let Some(t) = self.out.deadline_ms {
            assert!(t < u64::MAX, "a deadline at the end of time");
        }
    }
}

/// Every file of a tree, with its body and rev.
fn files(tree: &Snapshot) -> Vec<(String, Bytes, i64)> {
    let all = Glob::parse("/**").expect("a valid glob");
    tree.walk_iter(&all)
        .map(|f| (f.path, f.body, f.rev))
        .collect()
}

/// A request of `verb` with `tag`.
pub fn request(tag: i32, verb: Verb) -> Request {
    Request {
        tag: Some(tag),
        verb: Some(verb as i32),
        ..Default::default()
    }
}

/// A SET of `path` to `body`, clobbering.
pub fn set(tag: i32, path: &str, body: &str) -> Request {
    Request {
        path: Some(path.into()),
        rev: Some(doozer_proto::rev::CLOBBER),
        value: Some(Bytes::from(body.to_owned())),
        ..request(tag, Verb::Set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_durable_node_restarts_with_its_store() {
        let mut node = Node::seeded(config(SELF_ID, 9, Secrets::default()));
        assert!(node.config.durable);
        node.connect(0);
        for n in 0..5 {
            node.request(0, set(n, &format!("/k{}", n % 3), "v"));
            node.ready();
            assert!(node.restart());
            assert!(!node.is_open(0));
            node.connect(0);
        }
        assert!(node.replica.store().rev() > 5);
        let mut plain = Node::seeded(config(SELF_ID, 0, Secrets::default()));
        assert!(!plain.restart());
    }
}
