//! Pure cluster rules: what the `/ctl` tree holds (docs/reference.md#files-under-ctl).
//!
//! Seeding a new cluster, reading the CAL set and node addresses out of a
//! snapshot, choosing who kicks a silent CAL and what the kick writes, and
//! the pulse. No clock here: times are passed in. The paths themselves
//! are built by [`doozer_proto::ctl`].

use std::collections::BTreeMap;
use std::net::SocketAddr;

use bytes::Bytes;

use crate::consensus::{CalSet, NodeId};
use crate::store::{Guard, Mutation, Rev, Snapshot, Value};
use doozer_proto::ctl::{self, NodeFile};
use doozer_proto::rev;

// Still reachable here, where the server has always found them.
pub use doozer_proto::ctl::{touches, CAL_DIR, NODE_DIR};

/// One `/ctl/cal/<n>` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    /// Its path.
    pub path: String,
    /// The node id in it; empty for a free slot.
    pub id: String,
    /// The file's rev (the condition for claiming it).
    pub rev: Rev,
}

/// Every CAL slot of `snap`, in name order.
pub fn slots(snap: &Snapshot) -> Vec<Slot> {
    let Ok(names) = snap.dir_names(CAL_DIR) else {
        return Vec::new();
    };
    names
        .iter()
        .filter_map(|n| {
            let path = ctl::cal_slot(n);
            let (body, rev) = snap.get(&path).ok()?; // a directory: not a slot
            Some(Slot {
                path,
                id: String::from_utf8_lossy(&body).into_owned(),
                rev,
            })
        })
        .collect()
}

/// The CAL set the slots name (docs/reference.md#cal-sets: sorted non-empty bodies), or
/// `None` when no slot holds a usable id.
pub fn cal_set(slots: &[Slot]) -> Option<CalSet> {
    let ids: Vec<NodeId> = slots
        .iter()
        .filter(|s| !s.id.is_empty())
        .map(|s| s.id.clone())
        .collect();
    CalSet::new(ids).ok()
}

/// Every node's `-l` address from `/ctl/node/<id>/addr` (unparsable ones
/// are left out).
pub fn node_addrs(snap: &Snapshot) -> BTreeMap<NodeId, SocketAddr> {
    let Ok(ids) = snap.dir_names(NODE_DIR) else {
        return BTreeMap::new();
    };
    ids.iter()
        .filter_map(|id| {
            let (body, _) = snap.get(&ctl::node_file(id, NodeFile::Addr)).ok()?;
            let addr = std::str::from_utf8(&body).ok()?.trim().parse().ok()?;
            Some((id.to_string(), addr))
        })
        .collect()
}

/// The value that kicks node `slot.id` out of `slot`, as one atomic
/// change: empty its slot, delete its `/ctl/node/<id>` files and its
/// name-service entry, if any — all only if the slot is still at the rev
/// it had when the kick was decided on (the guard), and only if decided by
/// seqn `expires_after` (a kick that waited in a queue while its proposer
/// was cut off is stale). Otherwise nothing of it applies.
pub fn kick_value(snap: &Snapshot, slot: &Slot, expires_after: u64) -> Value {
    let mut changes = vec![Mutation::Set {
        path: slot.path.clone(),
        rev: rev::CLOBBER,
        body: Bytes::new(),
    }];
    if let Ok((name, _)) = snap.get(ctl::NAME_PATH) {
        let ns = ctl::ns_entry(&String::from_utf8_lossy(&name), &slot.id);
        if snap.get(&ns).is_ok_and(|(_, r)| r > 0) {
            changes.push(Mutation::Del {
                path: ns,
                rev: rev::CLOBBER,
            });
        }
    }
    changes.extend(node_file_dels(snap, &slot.id));
    Value {
        changes,
        guard: Some(Guard {
            path: slot.path.clone(),
            rev: slot.rev,
        }),
        expires_after: Some(expires_after),
        tag: Bytes::new(),
    }
}

/// Deletions of every `/ctl/node/<id>/*` file of `snap`.
pub fn node_file_dels(snap: &Snapshot, id: &str) -> Vec<Mutation> {
    let dir = ctl::node_dir(id);
    let Ok(files) = snap.dir_names(&dir) else {
        return Vec::new();
    };
    files
        .iter()
        .map(|f| Mutation::Del {
            path: format!("{dir}/{f}"),
            rev: rev::CLOBBER,
        })
        .collect()
}

/// The pulse: this node's applied rev, written to its `applied` file.
pub fn pulse_mutation(id: &str, applied: Rev) -> Mutation {
    clobber(ctl::node_file(id, NodeFile::Applied), applied.to_string())
}

/// The node's `writable` file: `true` while it is a CAL.
pub fn writable_mutation(id: &str, writable: bool) -> Mutation {
    clobber(
        ctl::node_file(id, NodeFile::Writable),
        if writable { "true" } else { "false" },
    )
}

/// Who this node is, as written under `/ctl/node/<id>/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// The node id (80 random bits, base32).
    pub id: String,
    /// The `-l` address, as text.
    pub addr: String,
    /// The host name.
    pub hostname: String,
    /// The doozerd version.
    pub version: String,
}

/// A CAL leaving gracefully empties its own slot, conditionally on the
/// slot's rev: a slot taken over meanwhile is not touched.
pub fn leave_mutation(slot: &Slot) -> Mutation {
    Mutation::Set {
        path: slot.path.clone(),
        rev: slot.rev,
        body: Bytes::new(),
    }
}

fn clobber(path: String, body: impl Into<Bytes>) -> Mutation {
    Mutation::Set {
        path,
        rev: rev::CLOBBER,
        body: body.into(),
    }
}

/// The writes that seed a new cluster named `cluster` whose only CAL is
/// `node` (docs/reference.md#seeding-a-new-cluster): `/ctl/name`, the node's files, CAL slot
/// 0, and its name-service entry `/ctl/ns/<cluster>/<id>`.
pub fn seed_mutations(cluster: &str, node: &NodeInfo) -> Vec<Mutation> {
    let file = |f| ctl::node_file(&node.id, f);
    vec![
        clobber(ctl::NAME_PATH.into(), cluster.to_string()),
        clobber(file(NodeFile::Addr), node.addr.clone()),
        clobber(file(NodeFile::Hostname), node.hostname.clone()),
        clobber(file(NodeFile::Version), node.version.clone()),
        clobber(ctl::cal_slot(0), node.id.clone()),
        clobber(ctl::ns_entry(cluster, &node.id), node.addr.clone()),
        clobber(file(NodeFile::Writable), "true"),
    ]
}

/// `/ctl/boot/<cluster>` = the seed's id, in the store of a cluster booted
/// through a name service: the same record the name service holds, so
/// its nodes can tell their name was given to another cluster
/// (docs/cluster.md#stale-name-service-records).
pub fn seed_record(cluster: &str, node: &NodeInfo) -> Mutation {
    clobber(ctl::boot_record(cluster), node.id.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kick_empties_the_slot_if_unchanged_and_deletes_the_node_files() {
        let node = NodeInfo {
            id: "ABC".into(),
            addr: "127.0.0.1:8046".into(),
            hostname: "h".into(),
            version: "0.1.0".into(),
        };
        let mut store = crate::store::Store::new(100);
        for (i, m) in seed_mutations("local", &node).iter().enumerate() {
            store.apply(i as Rev + 1, m);
        }
        let snap = store.snapshot(None).unwrap();
        let slots = slots(&snap);
        assert_eq!(slots.len(), 1);
        assert_eq!(
            (slots[0].id.as_str(), slots[0].path.as_str()),
            ("ABC", "/ctl/cal/0")
        );
        assert_eq!(cal_set(&slots).unwrap().len(), 1);
        let kick = kick_value(&snap, &slots[0], 99);
        assert_eq!(
            kick.guard,
            Some(Guard {
                path: "/ctl/cal/0".into(),
                rev: slots[0].rev
            })
        );
        assert_eq!(kick.expires_after, Some(99));
        assert_eq!(
            kick.changes[0],
            Mutation::Set {
                path: "/ctl/cal/0".into(),
                rev: rev::CLOBBER,
                body: Bytes::new()
            }
        );
        let mut deleted: Vec<String> = kick.changes[1..]
            .iter()
            .map(|m| match m {
                Mutation::Del { path, rev } if *rev == rev::CLOBBER => path.clone(),
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        deleted.sort();
        assert_eq!(
            deleted,
            [
                "/ctl/node/ABC/addr",
                "/ctl/node/ABC/hostname",
                "/ctl/node/ABC/version",
                "/ctl/node/ABC/writable",
                "/ctl/ns/local/ABC",
            ]
        );
        // Applied while the slot is unchanged: all of it, at once.
        let seqn = store.rev() as u64 + 1;
        let results = store.apply_value(seqn, &kick);
        assert_eq!(results.len(), 6);
        assert!(results.iter().all(|a| a.error.is_none()));
        let after = store.head();
        assert_eq!(after.get("/ctl/cal/0").unwrap().0, Bytes::new());
        assert!(after.dir_names("/ctl/node/ABC").is_err());
        assert_eq!(node_addrs(&snap)["ABC"], "127.0.0.1:8046".parse().unwrap());
        assert!(touches("/ctl/cal/3", CAL_DIR) && !touches("/ctl/calx", CAL_DIR));
    }

    #[test]
    fn seed_writes_name_node_files_slot_and_ns_entry() {
        let node = NodeInfo {
            id: "ABC".into(),
            addr: "127.0.0.1:8046".into(),
            hostname: "h".into(),
            version: "0.1.0".into(),
        };
        let paths: Vec<(String, Bytes)> = seed_mutations("local", &node)
            .into_iter()
            .map(|m| match m {
                Mutation::Set { path, body, rev } => {
                    assert_eq!(rev, rev::CLOBBER);
                    (path, body)
                }
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        let get = |p: &str| paths.iter().find(|(q, _)| q == p).map(|(_, b)| b.clone());
        assert_eq!(get("/ctl/name").unwrap(), "local");
        assert_eq!(get("/ctl/cal/0").unwrap(), "ABC");
        assert_eq!(get("/ctl/node/ABC/addr").unwrap(), "127.0.0.1:8046");
        assert_eq!(get("/ctl/ns/local/ABC").unwrap(), "127.0.0.1:8046");
        assert_eq!(get("/ctl/node/ABC/writable").unwrap(), "true");
    }
    /// Finding 6 of the membership review: a kick decided after the slot
    /// changed (the node came back and took a slot again) must change
    /// nothing at all; it used to delete the live CAL's files.
    #[test]
    fn a_stale_kick_changes_nothing() {
        let node = NodeInfo {
            id: "ABC".into(),
            addr: "127.0.0.1:8046".into(),
            hostname: "h".into(),
            version: "0.1.0".into(),
        };
        let mut store = crate::store::Store::new(100);
        for (i, m) in seed_mutations("local", &node).iter().enumerate() {
            store.apply(i as Rev + 1, m);
        }
        let stale = slots(store.head()).remove(0);
        let kick = kick_value(store.head(), &stale, 1_000);
        // Meanwhile the slot was written again (same node, a new rev).
        let rev = store.rev() + 1;
        store.apply(rev, &clobber("/ctl/cal/0".into(), "ABC"));
        let before = store
            .head()
            .walk_all(&crate::store::Glob::parse("/**").unwrap());
        let seqn = store.rev() as u64 + 1;
        let results = store.apply_value(seqn, &kick);
        assert_eq!(results.len(), 1, "one rev: the refusal at /ctl/err");
        assert!(store
            .head()
            .get("/ctl/err")
            .unwrap()
            .0
            .starts_with(b"refused"));
        let after = store
            .head()
            .walk_all(&crate::store::Glob::parse("/**").unwrap());
        let files = |w: &[crate::store::WalkEntry]| {
            w.iter()
                .filter(|e| e.path != "/ctl/err")
                .map(|e| (e.path.clone(), e.body.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(files(&after), files(&before));
    }
}
