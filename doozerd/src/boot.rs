//! Booting through a name service (docs/reference.md#name-service, `-b`), and
//! keeping this node's entry there while it is a CAL.
//!
//! At start-up, [`Boot::plan`] looks up `/ctl/ns/<cluster>/*` in the name
//! service. If CALs are registered, the node attaches to them. If none
//! are, it advertises itself at `/ctl/ns/<cluster>/<id>` and races to
//! create `/ctl/boot/<cluster>` with its id (a SET at rev 0, which only
//! one node can win): the winner seeds the cluster, the losers remove
//! their advertisement and attach to the winner. So all nodes of a new
//! cluster may start at once. Blocking; it runs before the event loop.
//!
//! Afterwards a [`Registrar`] thread keeps `/ctl/ns/<cluster>/<id>` in
//! place while the node is a CAL (rewriting it if it disappears), removes
//! it when the node stops being one, and removes the entries of CALs that
//! left the cluster (kicked, or their slot emptied). The event loop only
//! sends it commands, so a slow or absent name service never blocks
//! clients.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use doozer::ns::registered_cals;
use doozer::{rev, Client, ErrCode};
use doozer_proto::ctl::{self, boot_record, ns_entry};

use crate::cluster::NodeInfo;

/// How often the registrar checks that this CAL's entry is still there
/// (and retries after the name service was unreachable).
pub const KEEP_INTERVAL: Duration = Duration::from_secs(2);

/// What [`Boot::plan`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// This node won `/ctl/boot/<cluster>`: seed the cluster.
    Seed,
    /// Attach to these members (the seed first when it is known).
    Attach(Vec<SocketAddr>),
}

/// Why booting through the name service failed.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    /// The name service could not be reached or refused a request.
    #[error("name service: {0}")]
    NameService(#[from] doozer::Error),
    /// The cluster was booted once, but none of its CALs is registered.
    #[error(
        "cluster {cluster:?} was seeded by {seed} ({boot} in the name service) but no CAL of it is registered under {ns}/; if that cluster is gone, delete {boot} there to boot it anew",
        boot = ctl::boot_record(.cluster),
        ns = ctl::ns_dir(.cluster)
    )]
    Orphaned {
        /// The cluster name.
        cluster: String,
        /// The id in `/ctl/boot/<cluster>`.
        seed: String,
    },
}

/// Booting one node through the name service at `uri`.
#[derive(Debug, Clone)]
pub struct Boot {
    /// The name service's `doozer:?ca=...` URI (`-b`).
    pub uri: doozer::DoozerUri,
    /// The cluster to find or seed (`-c`).
    pub cluster: String,
    /// This node.
    pub info: NodeInfo,
}

impl Boot {
    /// One look at the name service: attach to the registered CALs, or
    /// race to seed (see the module docs).
    pub fn plan(&self) -> Result<Plan, BootError> {
        let ns = Client::connect_uri(&self.uri)?;
        let boot = boot_record(&self.cluster);
        let seed_id = read(&ns, &boot)?;
        let others: Vec<(String, String)> = registered_cals(&ns, &self.cluster)?
            .into_iter()
            .filter(|(id, _)| *id != self.info.id)
            .collect();
        if !others.is_empty() {
            return Ok(Plan::Attach(seed_first(others, seed_id.as_deref())));
        }
        let mine = ns_entry(&self.cluster, &self.info.id);
        ns.set(&mine, rev::CLOBBER, self.info.addr.clone())?;
        match ns.set(&boot, rev::MISSING, self.info.id.clone()) {
            Ok(_) => {
                log::info!(
                    "won {boot} in the name service: seeding cluster {:?}",
                    self.cluster
                );
                return Ok(Plan::Seed);
            }
            Err(e) if e.code() == Some(ErrCode::RevMismatch) => {}
            Err(e) => return Err(e.into()),
        }
        // Lost the race (or the cluster was seeded before): withdraw and
        // attach to the seed.
        delete(&ns, &mine)?;
        let seed = read(&ns, &boot)?.unwrap_or_default();
        let addr = read(&ns, &ns_entry(&self.cluster, &seed))?.filter(|_| seed != self.info.id);
        let addrs = seed_first(addr.map(|a| (seed.clone(), a)).into_iter().collect(), None);
        if addrs.is_empty() {
            return Err(BootError::Orphaned {
                cluster: self.cluster.clone(),
                seed,
            });
        }
        log::info!("cluster {:?} was seeded by {seed}; attaching", self.cluster);
        Ok(Plan::Attach(addrs))
    }
}

/// The body of `path`, or `None` if it does not exist.
fn read(ns: &Client, path: &str) -> Result<Option<String>, doozer::Error> {
    let (body, rev) = ns.get(path, None)?;
    Ok((rev != 0).then(|| String::from_utf8_lossy(&body).into_owned()))
}

/// Deletes `path`; a missing file is fine.
fn delete(ns: &Client, path: &str) -> Result<(), doozer::Error> {
    match ns.del(path, rev::CLOBBER) {
        Err(e) if e.code() != Some(ErrCode::Noent) => Err(e),
        _ => Ok(()),
    }
}

/// The addresses of `cals` (`(id, HOST:PORT)`), the seed's first: it is a
/// CAL for sure, where another advertised node may still be racing.
/// Names that do not resolve are left out.
fn seed_first(mut cals: Vec<(String, String)>, seed: Option<&str>) -> Vec<SocketAddr> {
    cals.sort_by_key(|(id, _)| Some(id.as_str()) != seed);
    cals.iter()
        .filter_map(|(_, a)| a.to_socket_addrs().ok()?.next())
        .collect()
}

/// A command for the [`Registrar`].
#[derive(Debug, Clone, PartialEq, Eq)]
enum Command {
    /// Whether this node is a CAL: keep its entry, or remove it.
    Cal(bool),
    /// The CAL with this id left the cluster: remove its entry.
    Remove(String),
}

/// The event loop's handle on the registrar thread. Dropping it ends the
/// thread.
#[derive(Debug)]
pub struct Registrar {
    tx: Sender<Command>,
}

impl Registrar {
    /// Starts the thread for this node of `boot.cluster`.
    pub fn spawn(boot: Boot) -> std::io::Result<Registrar> {
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("ns-registrar".into())
            .spawn(move || keep(boot, rx))?;
        Ok(Registrar { tx })
    }

    /// This node became a CAL (`true`: keep its entry), or stopped being
    /// one (`false`: remove it).
    pub fn set_cal(&self, cal: bool) {
        let _ = self.tx.send(Command::Cal(cal));
    }

    /// CAL `id` left the cluster.
    pub fn remove(&self, id: &str) {
        let _ = self.tx.send(Command::Remove(id.to_string()));
    }
}

/// The registrar's wishes, applied until they hold.
#[derive(Debug, Default)]
struct Wanted {
    registered: bool,
    unregister: bool,
    removals: Vec<String>,
}

impl Wanted {
    fn take(&mut self, c: Command) {
        match c {
            Command::Cal(cal) => {
                self.unregister = self.registered && !cal;
                self.registered = cal;
            }
            Command::Remove(id) => {
                if !self.removals.contains(&id) {
                    self.removals.push(id);
                }
            }
        }
    }
}

/// The registrar thread: applies what is wanted, and checks the entry
/// every [`KEEP_INTERVAL`]. Errors are logged once until it works again.
fn keep(boot: Boot, rx: Receiver<Command>) {
    let mut wanted = Wanted::default();
    let mut ns: Option<Client> = None;
    let mut failing = false;
    let mut next_check = Instant::now();
    loop {
        let wait = next_check.saturating_duration_since(Instant::now());
        match rx.recv_timeout(wait) {
            Ok(c) => wanted.take(c),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        while let Ok(c) = rx.try_recv() {
            wanted.take(c);
        }
        // Woken long after the check was due: the process was paused
        // (SIGSTOP), and may have been kicked meanwhile. Rewriting the
        // entry now would re-register a former CAL before its event loop
        // learns it; the next check comes after it had the chance.
        let paused = Instant::now() > next_check + KEEP_INTERVAL;
        next_check = Instant::now() + KEEP_INTERVAL;
        if paused && wanted.registered {
            continue;
        }
        if ns.is_none() {
            ns = Client::connect_uri(&boot.uri)
                .inspect_err(|e| note_failure(&mut failing, e))
                .ok();
        }
        let Some(c) = ns.as_ref() else {
            continue;
        };
        match apply(&boot, c, &mut wanted) {
            Ok(()) => {
                if failing {
                    log::info!("name service reachable again");
                }
                failing = false;
            }
            Err(e) => note_failure(&mut failing, &e),
        }
    }
}

/// Logs a name-service failure once until it works again.
fn note_failure(failing: &mut bool, e: &doozer::Error) {
    if !*failing {
        log::warn!("name service: {e}; retrying every {KEEP_INTERVAL:?}");
    }
    *failing = true;
}

/// Makes the name service hold what `wanted` says.
fn apply(boot: &Boot, ns: &Client, wanted: &mut Wanted) -> Result<(), doozer::Error> {
    while let Some(id) = wanted.removals.first() {
        if *id != boot.info.id || !wanted.registered {
            delete(ns, &ns_entry(&boot.cluster, id))?;
            log::info!("removed CAL {id} from the name service");
        }
        wanted.removals.remove(0);
    }
    let mine = ns_entry(&boot.cluster, &boot.info.id);
    if wanted.registered {
        if read(ns, &mine)?.as_deref() != Some(boot.info.addr.as_str()) {
            ns.set(&mine, rev::CLOBBER, boot.info.addr.clone())?;
            log::info!("registered in the name service at {mine}");
        }
    } else if wanted.unregister {
        delete(ns, &mine)?;
        wanted.unregister = false;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_is_tried_first_and_bad_addresses_are_left_out() {
        let cals = vec![
            ("A".to_string(), "127.0.0.1:1001".to_string()),
            ("B".to_string(), "127.0.0.1:1002".to_string()),
            ("C".to_string(), "not an address".to_string()),
        ];
        let addrs = seed_first(cals.clone(), Some("B"));
        assert_eq!(
            addrs,
            [
                "127.0.0.1:1002".parse().unwrap(),
                "127.0.0.1:1001".parse().unwrap()
            ]
        );
        assert_eq!(seed_first(cals, None)[0], "127.0.0.1:1001".parse().unwrap());
    }

    #[test]
    fn later_wishes_win() {
        let mut w = Wanted::default();
        w.take(Command::Cal(false));
        assert!(
            !w.registered && !w.unregister,
            "never registered: nothing to remove"
        );
        w.take(Command::Cal(true));
        w.take(Command::Cal(false));
        assert!(!w.registered && w.unregister);
        w.take(Command::Cal(true));
        assert!(w.registered && !w.unregister);
        w.take(Command::Remove("X".into()));
        w.take(Command::Remove("X".into()));
        assert_eq!(w.removals, ["X"]);
    }
}
