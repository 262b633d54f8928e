//! The `/ctl` tree: the files a cluster keeps about itself, and, in a
//! cluster that serves as a name service, the files where other clusters
//! are found (docs/reference.md, "Files under /ctl"). This module is the
//! one place that names these paths, builds them and parses them back; the
//! daemon, the client library and the tools all go through it.
//!
//! | path | body |
//! |---|---|
//! | `/ctl/name` | the cluster name (`-c`) |
//! | `/ctl/node/<id>/addr` | the node's `-l` address |
//! | `/ctl/node/<id>/hostname`, `version` | its host name, its doozerd version |
//! | `/ctl/node/<id>/writable` | `true` while the node accepts writes |
//! | `/ctl/node/<id>/applied` | the node's applied rev, rewritten by each CAL's pulse |
//! | `/ctl/cal/<n>` | a CAL slot: a node id, or empty for a free slot |
//! | `/ctl/ns/<cluster>/<id>` | in a name service: the address of one CAL of that cluster |
//! | `/ctl/boot/<cluster>` | in a name service: the id of the node that seeded that cluster; in a cluster booted through one, its own seed's id |
//! | `/ctl/err` | the text of the last failed mutation |
//!
//! ```
//! use doozer_proto::ctl::{self, CtlPath, NodeFile};
//!
//! let p = ctl::node_file("J4YC", NodeFile::Addr);
//! assert_eq!(p, "/ctl/node/J4YC/addr");
//! assert_eq!(
//!     ctl::parse(&p),
//!     Some(CtlPath::NodeFile { id: "J4YC", file: NodeFile::Addr })
//! );
//! assert!(ctl::touches(&ctl::cal_slot(3), ctl::CAL_DIR));
//! ```

use std::fmt;

/// The directory of the whole tree.
pub const CTL_DIR: &str = "/ctl";
/// The file holding the cluster name.
pub const NAME_PATH: &str = "/ctl/name";
/// The directory of node files: `/ctl/node/<id>/<file>`.
pub const NODE_DIR: &str = "/ctl/node";
/// The directory of CAL slots: `/ctl/cal/<n>`.
pub const CAL_DIR: &str = "/ctl/cal";
/// Where clusters register their CALs in a name service:
/// `/ctl/ns/<cluster>/<id>`.
pub const NS_DIR: &str = "/ctl/ns";
/// Where a name service records each cluster's seed: `/ctl/boot/<cluster>`.
pub const BOOT_DIR: &str = "/ctl/boot";
/// The file a failed mutation's error text is written to.
pub const ERR_PATH: &str = "/ctl/err";

/// One of the files a node keeps under `/ctl/node/<id>/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeFile {
    /// `addr`: the node's `-l` address.
    Addr,
    /// `hostname`: the host name of the machine it runs on.
    Hostname,
    /// `version`: its doozerd version.
    Version,
    /// `writable`: `true` while it accepts writes (a CAL), else `false`.
    Writable,
    /// `applied`: its applied rev, rewritten by each CAL's pulse.
    Applied,
}

impl NodeFile {
    /// Every node file, in the order of the table in the module docs.
    pub const ALL: [NodeFile; 5] = [
        NodeFile::Addr,
        NodeFile::Hostname,
        NodeFile::Version,
        NodeFile::Writable,
        NodeFile::Applied,
    ];

    /// The file's name in the node's directory.
    pub fn name(self) -> &'static str {
        match self {
            NodeFile::Addr => "addr",
            NodeFile::Hostname => "hostname",
            NodeFile::Version => "version",
            NodeFile::Writable => "writable",
            NodeFile::Applied => "applied",
        }
    }

    /// The node file called `name`, if there is one.
    pub fn from_name(name: &str) -> Option<NodeFile> {
        NodeFile::ALL.into_iter().find(|f| f.name() == name)
    }
}

impl fmt::Display for NodeFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `/ctl/cal/<n>`: CAL slot `n` (a number in practice; any name an
/// operator gave a file in [`CAL_DIR`] is a slot).
pub fn cal_slot(n: impl fmt::Display) -> String {
    format!("{CAL_DIR}/{n}")
}

/// `/ctl/node/<id>`: the directory of node `id`'s files.
pub fn node_dir(id: &str) -> String {
    format!("{NODE_DIR}/{id}")
}

/// `/ctl/node/<id>/<file>`.
pub fn node_file(id: &str, file: NodeFile) -> String {
    format!("{NODE_DIR}/{id}/{file}")
}

/// `/ctl/ns/<cluster>`: the directory of `cluster`'s entries in a name
/// service.
pub fn ns_dir(cluster: &str) -> String {
    format!("{NS_DIR}/{cluster}")
}

/// `/ctl/ns/<cluster>/<id>`: the name-service entry of CAL `id` of
/// `cluster`.
pub fn ns_entry(cluster: &str, id: &str) -> String {
    format!("{NS_DIR}/{cluster}/{id}")
}

/// `/ctl/boot/<cluster>`: where a name service records who seeded
/// `cluster` (and where a cluster booted through one records its own
/// seed, to tell its name was given to another cluster:
/// docs/cluster.md#stale-name-service-records).
pub fn boot_record(cluster: &str) -> String {
    format!("{BOOT_DIR}/{cluster}")
}

/// Whether a SET or DEL of `path` can change what is under the directory
/// `dir`: `path` is below it (only files are deleted, and a SET below `dir`
/// is the only way to add one).
pub fn touches(path: &str, dir: &str) -> bool {
    path.starts_with(dir) && path.as_bytes().get(dir.len()) == Some(&b'/')
}

/// The longest cluster name, in bytes. A name is one component of
/// `/ctl/ns/<name>/<id>` and `/ctl/boot/<name>`, which a node writes in the
/// name service (and, as a seed, in its own store); paths are at most
/// 4,096 bytes (docs/reference.md#paths), so a longer name would make
/// those writes fail. 255 leaves room for any node id.
pub const MAX_CLUSTER_NAME_LEN: usize = 255;

/// Whether `name` can name a cluster (`-c`, `cn=`): one to
/// [`MAX_CLUSTER_NAME_LEN`] of `A-Z a-z 0-9 . -`, and not `.` or `..`, so
/// it is one path component everywhere ([`ns_dir`], [`boot_record`]).
pub fn valid_cluster_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_CLUSTER_NAME_LEN
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
}

/// What a path of the `/ctl` layout names; see [`parse`]. Its `Display`
/// is the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CtlPath<'a> {
    /// [`NAME_PATH`].
    Name,
    /// [`ERR_PATH`].
    Err,
    /// A CAL slot, by its name in [`CAL_DIR`].
    CalSlot(&'a str),
    /// A node's file.
    NodeFile {
        /// The node id.
        id: &'a str,
        /// Which file.
        file: NodeFile,
    },
    /// A name-service entry.
    NsEntry {
        /// The cluster registered.
        cluster: &'a str,
        /// The id of its CAL.
        id: &'a str,
    },
    /// A name service's record of who seeded `cluster`.
    BootRecord {
        /// The cluster seeded.
        cluster: &'a str,
    },
}

impl fmt::Display for CtlPath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            CtlPath::Name => f.write_str(NAME_PATH),
            CtlPath::Err => f.write_str(ERR_PATH),
            CtlPath::CalSlot(n) => write!(f, "{CAL_DIR}/{n}"),
            CtlPath::NodeFile { id, file } => write!(f, "{NODE_DIR}/{id}/{file}"),
            CtlPath::NsEntry { cluster, id } => write!(f, "{NS_DIR}/{cluster}/{id}"),
            CtlPath::BootRecord { cluster } => write!(f, "{BOOT_DIR}/{cluster}"),
        }
    }
}

/// What `path` names in the `/ctl` layout, or `None` if it is none of its
/// files (a directory, an unknown node file, anything outside `/ctl`).
/// Every component must be non-empty.
pub fn parse(path: &str) -> Option<CtlPath<'_>> {
    match path {
        NAME_PATH => return Some(CtlPath::Name),
        ERR_PATH => return Some(CtlPath::Err),
        _ => {}
    }
    let below = |dir: &str| path.strip_prefix(dir)?.strip_prefix('/');
    let component = |s: &'_ str| !s.is_empty() && !s.contains('/');
    if let Some(n) = below(CAL_DIR) {
        return component(n).then_some(CtlPath::CalSlot(n));
    }
    if let Some(rest) = below(NODE_DIR) {
        let (id, file) = rest.split_once('/')?;
        let file = NodeFile::from_name(file)?;
        return component(id).then_some(CtlPath::NodeFile { id, file });
    }
    if let Some(rest) = below(NS_DIR) {
        let (cluster, id) = rest.split_once('/')?;
        return (component(cluster) && component(id)).then_some(CtlPath::NsEntry { cluster, id });
    }
    if let Some(cluster) = below(BOOT_DIR) {
        return component(cluster).then_some(CtlPath::BootRecord { cluster });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_is_under_ctl() {
        for p in [NAME_PATH, NODE_DIR, CAL_DIR, NS_DIR, BOOT_DIR, ERR_PATH] {
            assert!(touches(p, CTL_DIR), "{p}");
        }
    }

    #[test]
    fn builders_spell_the_layout() {
        assert_eq!(cal_slot(0), "/ctl/cal/0");
        assert_eq!(cal_slot("12"), "/ctl/cal/12");
        assert_eq!(node_dir("ABC"), "/ctl/node/ABC");
        let files: Vec<String> = NodeFile::ALL.iter().map(|&f| node_file("ABC", f)).collect();
        assert_eq!(
            files,
            [
                "/ctl/node/ABC/addr",
                "/ctl/node/ABC/hostname",
                "/ctl/node/ABC/version",
                "/ctl/node/ABC/writable",
                "/ctl/node/ABC/applied",
            ]
        );
        assert_eq!(ns_dir("a"), "/ctl/ns/a");
        assert_eq!(ns_entry("a", "X1"), "/ctl/ns/a/X1");
        assert_eq!(boot_record("a"), "/ctl/boot/a");
    }

    #[test]
    fn parse_names_what_the_builders_build() {
        let paths = [
            CtlPath::Name,
            CtlPath::Err,
            CtlPath::CalSlot("3"),
            CtlPath::NodeFile {
                id: "ABC",
                file: NodeFile::Applied,
            },
            CtlPath::NsEntry {
                cluster: "prod",
                id: "ABC",
            },
            CtlPath::BootRecord { cluster: "prod" },
        ];
        for p in paths {
            assert_eq!(parse(&p.to_string()), Some(p), "{p}");
        }
        assert_eq!(parse(&cal_slot(7)), Some(CtlPath::CalSlot("7")));
        assert_eq!(
            parse(&ns_entry("prod", "ABC")),
            Some(CtlPath::NsEntry {
                cluster: "prod",
                id: "ABC"
            })
        );
        assert_eq!(
            parse(&boot_record("prod")),
            Some(CtlPath::BootRecord { cluster: "prod" })
        );
        for f in NodeFile::ALL {
            assert_eq!(NodeFile::from_name(f.name()), Some(f));
            assert_eq!(
                parse(&node_file("N", f)),
                Some(CtlPath::NodeFile { id: "N", file: f })
            );
        }
    }

    #[test]
    fn parse_refuses_what_is_not_a_file_of_the_layout() {
        for p in [
            "/ctl",
            "/ctl/",
            "/ctl/cal",
            "/ctl/cal/",
            "/ctl/cal/1/x",
            "/ctl/calx/1",
            "/ctl/node/ABC",
            "/ctl/node/ABC/",
            "/ctl/node/ABC/other",
            "/ctl/node//addr",
            "/ctl/node/ABC/addr/x",
            "/ctl/ns/prod",
            "/ctl/ns/prod/",
            "/ctl/ns//ABC",
            "/ctl/ns/prod/ABC/x",
            "/ctl/boot",
            "/ctl/boot/a/b",
            "/ctl/name/x",
            "/ctl/errx",
            "/app/ctl/name",
            "",
        ] {
            assert_eq!(parse(p), None, "{p}");
        }
    }

    #[test]
    fn touches_means_strictly_below() {
        assert!(touches("/ctl/cal/3", CAL_DIR));
        assert!(touches("/ctl/node/A/addr", NODE_DIR));
        assert!(!touches("/ctl/calx", CAL_DIR));
        assert!(!touches("/ctl/cal", CAL_DIR));
        assert!(!touches("/ctl", CAL_DIR));
    }

    #[test]
    fn cluster_names_are_one_path_component() {
        for ok in ["a", "prod-1", "eu.west", "A9"] {
            assert!(valid_cluster_name(ok), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "a b", "é", "*"] {
            assert!(!valid_cluster_name(bad), "{bad:?}");
        }
        let longest = "n".repeat(MAX_CLUSTER_NAME_LEN);
        assert!(valid_cluster_name(&longest));
        assert!(!valid_cluster_name(&format!("{longest}n")));
    }
}
