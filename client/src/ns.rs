//! The name service (docs/reference.md#name-service, `cn=` in docs/reference.md#uris): another doozer
//! cluster where clusters are found by name.
//!
//! Built on [`Client`] (a client of the name service), this module also
//! holds the constructors that resolve `cn=`: [`Client::connect_via`] and
//! [`Client::connect_uri_via`].
//!
//! Layout in the name service's store (paths built by
//! [`doozer_proto::ctl`]):
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

use doozer_proto::ctl::{self, valid_cluster_name, CtlPath};

use crate::client::Client;
use crate::error::{Error, Result};
use crate::uri::DoozerUri;

/// The CALs `cluster` has registered in the name service `ns`, as
/// `(id, HOST:PORT)` sorted by id; empty if none (or no such cluster).
/// Entries whose body is not a `HOST:PORT` are left out.
pub fn registered_cals(ns: &Client, cluster: &str) -> Result<Vec<(String, String)>> {
    if !valid_cluster_name(cluster) {
        return Err(Error::BadClusterName(cluster.to_string()));
    }
    let mut out: Vec<(String, String)> = ns
        .walk_all(&format!("{}/*", ctl::ns_dir(cluster)), None)?
        .into_iter()
        .filter_map(|e| {
            let id = match ctl::parse(&e.path)? {
                CtlPath::NsEntry { cluster: c, id } if c == cluster => id.to_string(),
                _ => return None,
            };
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
