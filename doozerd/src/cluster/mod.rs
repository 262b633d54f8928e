//! Pure cluster rules: what the `/ctl` tree of SPEC §4 holds.
//!
//! Only seeding a new cluster lives here for now; CAL sets, promotion, kick
//! and pulse join it with the cluster work.

use bytes::Bytes;

use crate::store::Mutation;
use doozer_proto::rev;

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

fn clobber(path: String, body: impl Into<Bytes>) -> Mutation {
    Mutation::Set {
        path,
        rev: rev::CLOBBER,
        body: body.into(),
    }
}

/// The writes that seed a new cluster named `cluster` whose only CAL is
/// `node` (SPEC §4, "New cluster"): `/ctl/name`, the node's files, CAL slot
/// 0, and its name-service entry `/ctl/ns/<cluster>/<id>`.
pub fn seed_mutations(cluster: &str, node: &NodeInfo) -> Vec<Mutation> {
    let dir = format!("/ctl/node/{}", node.id);
    vec![
        clobber("/ctl/name".into(), cluster.to_string()),
        clobber(format!("{dir}/addr"), node.addr.clone()),
        clobber(format!("{dir}/hostname"), node.hostname.clone()),
        clobber(format!("{dir}/version"), node.version.clone()),
        clobber("/ctl/cal/0".into(), node.id.clone()),
        clobber(format!("/ctl/ns/{cluster}/{}", node.id), node.addr.clone()),
        clobber(format!("{dir}/writable"), "true"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
