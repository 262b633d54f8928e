//! Booting through a name service (docs/reference.md#name-service, `-b`), and
//! keeping this node's entry there while it is a CAL.
//!
//! At start-up, [`Boot::plan`] reads `/ctl/boot/<cluster>` and
//! `/ctl/ns/<cluster>/*` in the name service. If there are records, it
//! probes the listed addresses ([`Attach::probe`]) and attaches to those
//! that answer as CALs. Records none of whose addresses answered for
//! `-timeout` are stale: it deletes them, each at the rev it read, and
//! looks again (docs/cluster.md#stale-name-service-records). With no
//! records, it advertises itself at `/ctl/ns/<cluster>/<id>` and races to
//! create `/ctl/boot/<cluster>` with its id (a SET at rev 0, which only
//! one node can win): the winner seeds the cluster, the losers remove
//! their advertisement and look again, finding the winner. So all nodes
//! of a new cluster may start at once. Blocking; it runs before the event
//! loop.
//!
//! Afterwards a [`Registrar`] thread keeps `/ctl/ns/<cluster>/<id>` in
//! place while the node is a CAL (rewriting it if it disappears), removes
//! it when the node stops being one, and removes the entries of CALs that
//! left the cluster (kicked, or their slot emptied). It does not register
//! while the name service's `/ctl/boot/<cluster>` names another seed than
//! this cluster's own store does: the name was given to a new cluster
//! while this one was silent, which it reports ([`Registrar::name_conflict`]).
//! The event loop only sends it commands, so a slow or absent name service
//! never blocks clients.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use doozer::{rev, Client, ErrCode};
use doozer_proto::ctl::{self, boot_record, ns_entry, valid_cluster_name, CtlPath};

use crate::attach::Attach;
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

/// Why booting through the name service failed, this time: the caller
/// tries again until its deadline.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    /// The name service could not be reached or refused a request.
    #[error("name service: {0}")]
    NameService(#[from] doozer::Error),
    /// A listed address answered but refused to be checked (another
    /// secret or CA): the records are not stale, and this node cannot
    /// attach.
    #[error("a node listed for cluster {cluster:?} in the name service refused this node: {why}")]
    Refused {
        /// The cluster name.
        cluster: String,
        /// What the probes found.
        why: String,
    },
    /// Records of the cluster are in the name service, but none of the
    /// addresses they list answers as a CAL of it; they count as stale
    /// once that has lasted `-timeout`.
    #[error(
        "no address listed for cluster {cluster:?} in the name service answers as one of its CALs ({why}); its records there count as stale after {timeout:?} of that (-timeout)"
    )]
    Silent {
        /// The cluster name.
        cluster: String,
        /// What the probes found.
        why: String,
        /// `-timeout`.
        timeout: Duration,
    },
    /// Another node changed the records while this one looked (it
    /// removed stale records first, or won the race to seed).
    #[error("the records of cluster {0:?} in the name service changed meanwhile")]
    Changed(String),
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
    /// How to reach a member of the cluster (TLS, secret): registered
    /// addresses are probed with it.
    pub attach: Attach,
    /// `-timeout`: how long none of the registered addresses may answer
    /// before their records count as stale.
    pub timeout: Duration,
}

/// One read of a cluster's records in the name service, all at one rev of
/// it: what stale-record removal deletes, each at the rev read.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Records {
    /// `/ctl/boot/<cluster>`: the seed's id and the file's rev.
    boot: Option<(String, i64)>,
    /// `/ctl/ns/<cluster>/<id>` but this node's: `(id, address, rev)`,
    /// sorted by id.
    entries: Vec<(String, String, i64)>,
}

impl Records {
    /// What identifies this set of records: the same files at the same
    /// revs. Silence is measured for one set; any change starts anew.
    fn key(&self) -> Vec<(String, i64)> {
        let boot = self
            .boot
            .iter()
            .map(|(id, rev)| (format!("boot {id}"), *rev));
        let entries = self.entries.iter().map(|(id, _, rev)| (id.clone(), *rev));
        boot.chain(entries).collect()
    }
}

/// What probing the listed addresses found.
#[derive(Debug, Default)]
struct Probes {
    /// `(id, address)` of those that answered as CALs of the cluster.
    answering: Vec<(String, String)>,
    /// Whether some address answered but refused to be checked
    /// ([`crate::attach::AttachError::is_refusal`]).
    refused: bool,
    /// What the others said, one `id at addr: why` each.
    why: String,
}

/// How long the records read last have gone unanswered, across calls of
/// [`Boot::plan`] (docs/cluster.md#stale-name-service-records).
#[derive(Debug, Default)]
pub struct Silence {
    /// The records found silent, and when the first probe that found them
    /// so began.
    since: Option<(Vec<(String, i64)>, Instant)>,
}

impl Silence {
    /// Some listed address answered: nothing is stale.
    fn heard(&mut self) {
        self.since = None;
    }

    /// No listed address of `key` answered a probe begun at `probed`: how
    /// long they have been silent (zero the first time these records are
    /// found silent).
    fn silent(&mut self, key: Vec<(String, i64)>, probed: Instant) -> Duration {
        match &self.since {
            Some((k, since)) if *k == key => probed.saturating_duration_since(*since),
            _ => {
                self.since = Some((key, probed));
                Duration::ZERO
            }
        }
    }
}

impl Boot {
    /// One look at the name service: attach to the registered CALs that
    /// answer; remove records nobody answered for `-timeout` (stale); with
    /// no records, race to seed (see the module docs).
    pub fn plan(&self, silence: &mut Silence) -> Result<Plan, BootError> {
        let ns = Client::connect_uri(&self.uri)?;
        let boot = boot_record(&self.cluster);
        let records = self.records(&ns)?;
        if !records.entries.is_empty() || records.boot.is_some() {
            let probed = Instant::now();
            let probes = self.probe(&records);
            if !probes.answering.is_empty() {
                silence.heard();
                let seed = records.boot.as_ref().map(|(id, _)| id.as_str());
                return Ok(Plan::Attach(seed_first(probes.answering, seed)));
            }
            if probes.refused {
                silence.heard();
                return Err(BootError::Refused {
                    cluster: self.cluster.clone(),
                    why: probes.why,
                });
            }
            let why = probes.why;
            if silence.silent(records.key(), probed) < self.timeout {
                return Err(BootError::Silent {
                    cluster: self.cluster.clone(),
                    why,
                    timeout: self.timeout,
                });
            }
            self.remove_stale(&ns, &records)?;
            silence.heard();
            // Seed or join as if there had been none; a fresh read decides
            // (another node may have removed them and seeded meanwhile).
            return Err(BootError::Changed(self.cluster.clone()));
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
        // Lost the race: withdraw; the next look finds the seed's entry
        // and attaches to it once it answers.
        delete(&ns, &mine)?;
        log::info!(
            "another node won {boot}; attaching to cluster {:?}",
            self.cluster
        );
        Err(BootError::Changed(self.cluster.clone()))
    }

    /// The cluster's records, read at one rev of the name service.
    fn records(&self, ns: &Client) -> Result<Records, doozer::Error> {
        if !valid_cluster_name(&self.cluster) {
            return Err(doozer::Error::BadClusterName(self.cluster.clone()));
        }
        let at = ns.rev()?;
        let (body, rev) = ns.get(&boot_record(&self.cluster), Some(at))?;
        let boot = (rev != 0).then(|| (String::from_utf8_lossy(&body).into_owned(), rev));
        let mut entries: Vec<(String, String, i64)> = ns
            .walk_all(&format!("{}/*", ctl::ns_dir(&self.cluster)), Some(at))?
            .into_iter()
            .filter_map(|e| match ctl::parse(&e.path)? {
                CtlPath::NsEntry { cluster, id } if cluster == self.cluster => Some((
                    id.to_string(),
                    String::from_utf8_lossy(&e.body).trim().to_string(),
                    e.rev,
                )),
                _ => None,
            })
            .filter(|(id, _, _)| *id != self.info.id)
            .collect();
        entries.sort();
        Ok(Records { boot, entries })
    }

    /// Probes every listed address at once ([`Attach::probe`]). This
    /// node's own address is not asked: it does not serve yet, so whatever
    /// is listed there is not a live CAL.
    fn probe(&self, records: &Records) -> Probes {
        /// One probe's outcome: answered; or, not, whether it was a
        /// refusal, and why.
        type Outcome = Result<(), (bool, String)>;
        let results: Vec<(String, String, Outcome)> = std::thread::scope(|s| {
            let probes: Vec<_> = records
                .entries
                .iter()
                .map(|(id, addr, _)| {
                    s.spawn(move || {
                        let r = self.probe_one(addr);
                        (id.clone(), addr.clone(), r)
                    })
                })
                .collect();
            probes.into_iter().filter_map(|p| p.join().ok()).collect()
        });
        let mut out = Probes::default();
        let mut why = Vec::new();
        for (id, addr, r) in results {
            match r {
                Ok(()) => out.answering.push((id, addr)),
                Err((refused, what)) => {
                    out.refused |= refused;
                    why.push(format!("{id} at {addr}: {what}"));
                }
            }
        }
        if records.entries.is_empty() {
            if let Some((seed, _)) = &records.boot {
                why.push(format!("seed {seed} has no entry"));
            }
        }
        out.why = why.join("; ");
        out
    }

    /// Probes one listed address: `Err((refused, why))` if it did not
    /// answer as a CAL ([`crate::attach::AttachError::is_refusal`]).
    fn probe_one(&self, addr: &str) -> Result<(), (bool, String)> {
        if addr == self.info.addr {
            return Err((false, "this node's own address".into()));
        }
        let sock = addr
            .to_socket_addrs()
            .map_err(|e| (false, e.to_string()))?
            .next()
            .ok_or_else(|| (false, "resolves to no address".to_string()))?;
        // A probe waits no longer than the silence it is measuring.
        self.attach
            .probe(sock, self.timeout)
            .map_err(|e| (e.is_refusal(), e.to_string()))
    }

    /// Deletes stale `records`, each at the rev read, the entries first and
    /// the boot record last: a node that removed them and seeded since has
    /// rewritten `/ctl/boot/<cluster>` at a later rev, so this delete fails
    /// and cannot undo its win; two nodes cannot both seed.
    fn remove_stale(&self, ns: &Client, records: &Records) -> Result<(), BootError> {
        let changed = |e: doozer::Error| match e.code() {
            Some(ErrCode::RevMismatch | ErrCode::Noent) => BootError::Changed(self.cluster.clone()),
            _ => BootError::NameService(e),
        };
        for (id, _, rev) in &records.entries {
            ns.del(&ns_entry(&self.cluster, id), *rev)
                .map_err(changed)?;
        }
        if let Some((_, rev)) = &records.boot {
            ns.del(&boot_record(&self.cluster), *rev).map_err(changed)?;
        }
        // Said once the whole set is gone. (A DEL of a file already gone
        // succeeds, so a node racing another may say it too: what it
        // deleted was the same stale set, never a newer record.)
        let entries: Vec<String> = records
            .entries
            .iter()
            .map(|(id, addr, _)| format!("{id}={addr}"))
            .collect();
        log::warn!(
            "removed stale name-service records of cluster {:?} (entries: {}; {}: {}): no listed address answered as a CAL for {:?} (-timeout)",
            self.cluster,
            if entries.is_empty() { "none".to_string() } else { entries.join(" ") },
            boot_record(&self.cluster),
            records.boot.as_ref().map_or("none", |(seed, _)| seed.as_str()),
            self.timeout
        );
        Ok(())
    }
}

/// The body of `path`, or `None` if it does not exist.
fn read(ns: &Client, path: &str) -> Result<Option<String>, doozer::Error> {
    Ok(read_rev(ns, path, None)?.map(|(body, _)| body))
}

/// The body of `path` and its rev (at `at`, or now), or `None` if it does
/// not exist.
fn read_rev(
    ns: &Client,
    path: &str,
    at: Option<i64>,
) -> Result<Option<(String, i64)>, doozer::Error> {
    let (body, rev) = ns.get(path, at)?;
    Ok((rev != 0).then(|| (String::from_utf8_lossy(&body).into_owned(), rev)))
}

/// Deletes `path`; a missing file is fine.
fn delete(ns: &Client, path: &str) -> Result<(), doozer::Error> {
    delete_at(ns, path, rev::CLOBBER)
}

/// Deletes `path` if its rev is at most `rev`; a missing or rewritten file
/// is fine.
fn delete_at(ns: &Client, path: &str, rev: i64) -> Result<(), doozer::Error> {
    match ns.del(path, rev) {
        Err(e) if !matches!(e.code(), Some(ErrCode::Noent | ErrCode::RevMismatch)) => Err(e),
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
    /// This cluster's seed, as its own store records it (`None`: not
    /// recorded, e.g. a cluster seeded without `-b`).
    Seed(Option<String>),
}

/// The event loop's handle on the registrar thread. Dropping it ends the
/// thread.
#[derive(Debug)]
pub struct Registrar {
    tx: Sender<Command>,
    conflict: Arc<AtomicBool>,
}

impl Registrar {
    /// Starts the thread for this node of `boot.cluster`.
    pub fn spawn(boot: Boot) -> std::io::Result<Registrar> {
        let (tx, rx) = mpsc::channel();
        let conflict = Arc::new(AtomicBool::new(false));
        let flag = conflict.clone();
        std::thread::Builder::new()
            .name("ns-registrar".into())
            .spawn(move || keep(boot, rx, flag))?;
        Ok(Registrar { tx, conflict })
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

    /// The seed recorded in this cluster's own `/ctl/boot/<cluster>`.
    pub fn set_seed(&self, seed: Option<String>) {
        let _ = self.tx.send(Command::Seed(seed));
    }

    /// Whether the name service gives this cluster's name to another
    /// cluster (its `/ctl/boot/<cluster>` names another seed), as last
    /// checked: this node does not register there meanwhile.
    pub fn name_conflict(&self) -> bool {
        self.conflict.load(Ordering::Relaxed)
    }
}

/// The registrar's wishes, applied until they hold.
#[derive(Debug, Default)]
struct Wanted {
    registered: bool,
    unregister: bool,
    removals: Vec<String>,
    seed: Option<String>,
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
            Command::Seed(seed) => self.seed = seed,
        }
    }
}

/// The registrar thread: applies what is wanted, and checks the entry
/// every [`KEEP_INTERVAL`]. Errors are logged once until it works again.
fn keep(boot: Boot, rx: Receiver<Command>, conflict: Arc<AtomicBool>) {
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
            Ok(taken) => {
                if failing {
                    log::info!("name service reachable again");
                }
                failing = false;
                note_conflict(&boot, &conflict, &wanted, taken);
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

/// Keeps the conflict flag (for `/$metrics`) and says when it changes:
/// `taken` is the other seed now holding this cluster's name, if any.
fn note_conflict(boot: &Boot, flag: &AtomicBool, wanted: &Wanted, taken: Option<String>) {
    let was = flag.swap(taken.is_some(), Ordering::Relaxed);
    match (was, taken) {
        (false, Some(other)) => log::error!(
            "name conflict: the name service gives cluster name {:?} to another cluster ({} names seed {other}, this cluster was seeded by {}); this node does not register there, so clients find that cluster by the name, not this one (docs/cluster.md#stale-name-service-records)",
            boot.cluster,
            boot_record(&boot.cluster),
            wanted.seed.as_deref().unwrap_or("?"),
        ),
        (true, None) => log::info!(
            "name conflict over: the name service gives {:?} to this cluster again",
            boot.cluster
        ),
        _ => {}
    }
}

/// Makes the name service hold what `wanted` says. Returns the seed of
/// another cluster that holds this cluster's name, if one does: then this
/// node's entry is withdrawn, not written.
fn apply(boot: &Boot, ns: &Client, wanted: &mut Wanted) -> Result<Option<String>, doozer::Error> {
    while let Some(id) = wanted.removals.first() {
        if *id != boot.info.id || !wanted.registered {
            delete(ns, &ns_entry(&boot.cluster, id))?;
            log::info!("removed CAL {id} from the name service");
        }
        wanted.removals.remove(0);
    }
    let mine = ns_entry(&boot.cluster, &boot.info.id);
    if !wanted.registered {
        if wanted.unregister {
            delete(ns, &mine)?;
            wanted.unregister = false;
        }
        return Ok(None);
    }
    if let Some(other) = name_taken(boot, ns, wanted, None)? {
        withdraw(ns, &mine)?;
        return Ok(Some(other));
    }
    if read(ns, &mine)?.as_deref() != Some(boot.info.addr.as_str()) {
        let at = ns.set(&mine, rev::CLOBBER, boot.info.addr.clone())?;
        // Checked again as of this write: a node that seeded the name
        // anew just before it is seen now, and this entry goes again.
        if let Some(other) = name_taken(boot, ns, wanted, Some(at))? {
            delete_at(ns, &mine, at)?;
            return Ok(Some(other));
        }
        log::info!("registered in the name service at {mine}");
    }
    Ok(None)
}

/// The seed of another cluster, if the name service's
/// `/ctl/boot/<cluster>` (at `at`, or now) names one: a seed other than
/// the one this cluster's store records. A record that is missing (it was
/// removed as stale while this cluster was silent) is claimed back, as a
/// booting node would claim it (only one claim can win). Without a seed
/// in the store nothing can be compared, and the name counts as ours.
fn name_taken(
    boot: &Boot,
    ns: &Client,
    wanted: &Wanted,
    at: Option<i64>,
) -> Result<Option<String>, doozer::Error> {
    let Some(ours) = &wanted.seed else {
        return Ok(None);
    };
    let path = boot_record(&boot.cluster);
    match read_rev(ns, &path, at)? {
        Some((theirs, _)) if theirs != *ours => Ok(Some(theirs)),
        Some(_) => Ok(None),
        None if at.is_some() => Ok(None),
        None => match ns.set(&path, rev::MISSING, ours.clone()) {
            Ok(_) => {
                log::info!(
                    "{path} was missing in the name service: claimed it back for seed {ours}"
                );
                Ok(None)
            }
            // Another node claimed it first: whose it is decides (gone
            // again: the next check looks again).
            Err(e) if e.code() == Some(ErrCode::RevMismatch) => {
                Ok(read(ns, &path)?.filter(|theirs| theirs != ours))
            }
            Err(e) => Err(e),
        },
    }
}

/// Removes this node's entry (at the rev read: one rewritten meanwhile is
/// someone else's business), if there is one.
fn withdraw(ns: &Client, mine: &str) -> Result<(), doozer::Error> {
    if let Some((_, rev)) = read_rev(ns, mine, None)? {
        delete_at(ns, mine, rev)?;
        log::warn!("withdrew {mine} from the name service: the name is another cluster's");
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
    fn silence_counts_from_the_first_silent_probe_of_the_same_records() {
        let t0 = Instant::now();
        let s = |secs| t0 + Duration::from_secs(secs);
        let old = || vec![("A".to_string(), 5), ("B".to_string(), 6)];
        let mut silence = Silence::default();
        assert_eq!(silence.silent(old(), s(0)), Duration::ZERO);
        assert_eq!(silence.silent(old(), s(3)), Duration::from_secs(3));
        // An answer starts the count anew.
        silence.heard();
        assert_eq!(silence.silent(old(), s(4)), Duration::ZERO);
        assert_eq!(silence.silent(old(), s(6)), Duration::from_secs(2));
        // Other records (one rewritten): anew too.
        let changed = vec![("A".to_string(), 5), ("B".to_string(), 9)];
        assert_eq!(silence.silent(changed.clone(), s(7)), Duration::ZERO);
        assert_eq!(silence.silent(changed, s(8)), Duration::from_secs(1));
    }

    #[test]
    fn records_differ_by_any_file_or_rev() {
        let r = Records {
            boot: Some(("A".into(), 3)),
            entries: vec![("A".into(), "127.0.0.1:1".into(), 4)],
        };
        let mut other = r.clone();
        other.boot = Some(("A".into(), 8));
        assert_ne!(r.key(), other.key());
        let mut none = r.clone();
        none.boot = None;
        assert_ne!(r.key(), none.key());
        assert_eq!(r.key(), r.clone().key());
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
        w.take(Command::Seed(Some("S".into())));
        w.take(Command::Seed(None));
        assert_eq!(w.seed, None);
    }
}
