//! The name service (SPEC §4 "Name service", §5 `cn=`): another doozer
//! cluster where clusters are found by name.
//!
//! Built on [`Client`] (a client of the name service), this module also
//! holds the constructors that resolve `cn=`: [`Client::connect_via`] and
//! [`Client::connect_uri_via`].
//!
//! Layout in the name service's store:
//!
//! | path | body |
//! |---|---|
//! | `/ctl/ns/<cluster>/<id>` | the `HOST:PORT` of one CAL of that cluster |
//! | `/ctl/boot/<cluster>` | the id of the node that seeded that cluster |
//!
//! ```no_run
//! // doozer -b 'doozer:?ca=ns1:8046' -a 'doozer:?cn=prod' get /x
//! let c = doozer::Client::connect_via("doozer:?cn=prod", Some("doozer:?ca=ns1:8046"))?;
//! # Ok::<(), doozer::Error>(())
//! ```

use crate::client::Client;
use crate::error::{Error, Result};
use crate::uri::DoozerUri;

/// Where clusters register their CALs: `/ctl/ns/<cluster>/<id>`.
pub const NS_DIR: &str = "/ctl/ns";
/// Where a cluster's seed is recorded: `/ctl/boot/<cluster>`.
pub const BOOT_DIR: &str = "/ctl/boot";

/// Whether `name` can name a cluster (`-c`, `cn=`): one or more of
/// `A-Z a-z 0-9 . -`, so it is one path component everywhere.
pub fn valid_cluster_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
}

/// `/ctl/ns/<cluster>`.
pub fn ns_dir(cluster: &str) -> String {
    format!("{NS_DIR}/{cluster}")
}

/// `/ctl/ns/<cluster>/<id>`.
pub fn ns_entry(cluster: &str, id: &str) -> String {
    format!("{NS_DIR}/{cluster}/{id}")
}

/// `/ctl/boot/<cluster>`.
pub fn boot_path(cluster: &str) -> String {
    format!("{BOOT_DIR}/{cluster}")
}

/// The CALs `cluster` has registered in the name service `ns`, as
/// `(id, HOST:PORT)` sorted by id; empty if none (or no such cluster).
/// Entries whose body is not a `HOST:PORT` are left out.
pub fn registered_cals(ns: &Client, cluster: &str) -> Result<Vec<(String, String)>> {
    if !valid_cluster_name(cluster) {
        return Err(Error::BadClusterName(cluster.to_string()));
    }
    let prefix = format!("{}/", ns_dir(cluster));
    let mut out: Vec<(String, String)> = ns
        .walk_all(&format!("{prefix}*"), None)?
        .into_iter()
        .filter_map(|e| {
            let id = e.path.strip_prefix(&prefix)?.to_string();
            let addr = std::str::from_utf8(&e.body).ok()?.trim().to_string();
            addr.rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
                .then_some((id, addr))
        })
        .collect();
    out.sort();
    Ok(out)
}

/// The addresses of `cluster`'s CALs, looked up in the name service at
/// `boot_uri` (a `doozer:?ca=...` URI). No registered CAL is
/// [`Error::UnknownCluster`].
pub fn resolve(boot_uri: &str, cluster: &str) -> Result<Vec<String>> {
    let ns = Client::connect(boot_uri)?;
    let addrs: Vec<String> = registered_cals(&ns, cluster)?
        .into_iter()
        .map(|(_, a)| a)
        .collect();
    if addrs.is_empty() {
        return Err(Error::UnknownCluster(cluster.to_string()));
    }
    Ok(addrs)
}

/// The addresses to try for `uri`: its `ca=` addresses, then those of
/// its `cn=` cluster's CALs, looked up in the name service at `boot_uri`
/// (none given is [`Error::NoNameService`]).
pub fn addrs(uri: &DoozerUri, boot_uri: Option<&str>) -> Result<Vec<String>> {
    let mut addrs = uri.addrs.clone();
    if let Some(name) = &uri.cluster {
        let boot = boot_uri.ok_or(Error::NoNameService)?;
        for a in resolve(boot, name)? {
            if !addrs.contains(&a) {
                addrs.push(a);
            }
        }
    }
    Ok(addrs)
}

// Connecting by cluster name needs a client of the name service, so these
// constructors build on `client.rs` here rather than living there.
impl Client {
    /// Like [`Client::connect`]; a `cn=NAME` in `uri` is resolved through
    /// the name service at `boot_uri` (`-b`, `$DOOZER_BOOT_URI`): the
    /// addresses of NAME's CALs registered there are added after any
    /// `ca=`, and the client fails over among all of them.
    pub fn connect_via(uri: &str, boot_uri: Option<&str>) -> Result<Client> {
        Client::connect_uri_via(&uri.parse()?, boot_uri)
    }

    /// Like [`Client::connect_via`], from a parsed URI.
    pub fn connect_uri_via(uri: &DoozerUri, boot_uri: Option<&str>) -> Result<Client> {
        Client::connect_to(addrs(uri, boot_uri)?, uri)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_names_are_one_path_component() {
        for ok in ["a", "prod-1", "eu.west", "A9"] {
            assert!(valid_cluster_name(ok), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "a b", "é", "*"] {
            assert!(!valid_cluster_name(bad), "{bad:?}");
        }
        assert_eq!(ns_entry("a", "X1"), "/ctl/ns/a/X1");
        assert_eq!(boot_path("a"), "/ctl/boot/a");
    }
}
