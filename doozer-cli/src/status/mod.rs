//! `doozer status [-json] [-lag N]`: one view of a cluster's health, from
//! any node (docs/reference.md#doozer-status).
//!
//! 1. Reads, at one rev of the node connected to, `/ctl/name`, every CAL
//!    slot (`/ctl/cal/*`) and every node's files (`/ctl/node/*/*`)
//!    ([`Snapshot`]).
//! 2. Asks every node with an address, directly and all at once, for SELF
//!    and REV, with the URI's TLS and secret, each within `-t` (default
//!    1 s) ([`probe`]).
//! 3. Meanwhile, WAITs on every node's `applied` file from that rev on,
//!    noting when each CAL's next pulse arrives, until all pulsed or
//!    `-pulse` (default 2 s) passed ([`pulse`]).
//! 4. With `-b`, reads the cluster's entries in the name service.
//! 5. Judges the whole ([`Report::assess`], then
//!    [`Report::judge_pulses`]): what makes it unhealthy is a list of
//!    one-line problems, printed on stderr, exit status 2.
//!
//! [`render`] prints the table, or with `-json` one JSON object.
//!
//! Map: `mod.rs` gathers and judges; [`probe`] asks the nodes; [`pulse`]
//! times their pulses; [`render`] writes the text and the JSON.

mod probe;
mod pulse;
mod render;

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use doozer::ctl::{self, CtlPath, NodeFile};
use doozer::{Client, DoozerUri, Error};

use crate::failure::Failure;
use crate::globals::Globals;

pub use probe::Answer;
pub use pulse::DEFAULT_WINDOW as DEFAULT_PULSE_WINDOW;

/// How long each node has to answer, when `-t` is not given.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

/// A CAL further behind the head than this many revs is unhealthy, when
/// `-lag` is not given.
pub const DEFAULT_MAX_LAG: i64 = 1000;

/// The options of `doozer status`.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// `-json`: print one JSON object instead of the table.
    pub json: bool,
    /// `-lag N`: the most revs a CAL may trail the head.
    pub max_lag: i64,
    /// `-t`: how long each node has to answer.
    pub timeout: Duration,
    /// `-pulse`: how long to wait for every CAL's next pulse.
    pub pulse_window: Duration,
}

/// One node: what `/ctl/node/<id>/` and the slots say of it, and what it
/// answered when asked directly.
#[derive(Debug, Clone)]
pub struct Node {
    /// The node id.
    pub id: String,
    /// `addr`, if the file exists.
    pub addr: Option<String>,
    /// `hostname`.
    pub hostname: Option<String>,
    /// `version`.
    pub version: Option<String>,
    /// `writable`: `Some(true)` for `true`, `Some(false)` for `false`,
    /// `None` when absent (or anything else).
    pub writable: Option<bool>,
    /// `applied`: the node's applied rev as of the last pulse that wrote
    /// it.
    pub applied: Option<i64>,
    /// The rev of the `applied` file: when that pulse was decided.
    pub applied_rev: Option<i64>,
    /// The first CAL slot naming this node, if any: it is a CAL.
    pub slot: Option<String>,
    /// Its answer to SELF and REV.
    pub answer: Answer,
    /// How long before the end of `status` its first pulse after the
    /// snapshot arrived; `None` if none was seen ([`pulse`]).
    pub pulse_age: Option<Duration>,
}

impl Node {
    fn new(id: &str) -> Node {
        Node {
            id: id.to_string(),
            addr: None,
            hostname: None,
            version: None,
            writable: None,
            applied: None,
            applied_rev: None,
            slot: None,
            answer: Answer::No("not asked".into()),
            pulse_age: None,
        }
    }

    /// True if a CAL slot names this node.
    pub fn is_cal(&self) -> bool {
        self.slot.is_some()
    }

    /// The node's rev, if it answered.
    pub fn rev(&self) -> Option<i64> {
        match self.answer {
            Answer::Yes { rev, .. } => Some(rev),
            Answer::No(_) => None,
        }
    }

    /// How far its rev is behind `head` (never negative), if it answered.
    pub fn lag(&self, head: i64) -> Option<i64> {
        self.rev().map(|r| (head - r).max(0))
    }
}

/// What `/ctl` says at one rev.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// `/ctl/name`.
    pub cluster: String,
    /// The rev everything was read at (the connected node's rev then).
    pub rev: i64,
    /// The address of the node read from.
    pub via: Option<String>,
    /// Every CAL slot, in order: its name and the node id it holds
    /// (`None`: free).
    pub slots: Vec<(String, Option<String>)>,
    /// Every node: the CALs in slot order, then the others by id.
    pub nodes: Vec<Node>,
}

/// The cluster's entries in the name service of `-b`.
#[derive(Debug, Clone, Default)]
pub struct NsView {
    /// `/ctl/ns/<cluster>/<id>`: `(id, address)`, sorted by id.
    pub entries: Vec<(String, String)>,
    /// `/ctl/boot/<cluster>`: the seed's id, if the file exists.
    pub boot: Option<String>,
    /// Why the name service could not be read, if it could not.
    pub error: Option<String>,
}

/// The whole view and its verdict.
#[derive(Debug, Clone)]
pub struct Report {
    /// What `/ctl` said.
    pub snap: Snapshot,
    /// The highest rev seen: the read rev or any node's answer.
    pub head: i64,
    /// CALs: distinct node ids in the slots.
    pub cals: usize,
    /// CALs that answered.
    pub cals_answered: usize,
    /// Whether more than half of the CALs answered.
    pub majority: bool,
    /// The free slots, in order.
    pub free: Vec<String>,
    /// Nodes in no slot that answered: the slaves that could take a slot.
    pub slaves_answered: usize,
    /// `-lag`.
    pub max_lag: i64,
    /// The name service's entries, with `-b`.
    pub ns: Option<NsView>,
    /// Why the cluster is unhealthy, one each (as read: shown through
    /// [`render::clean`]); empty when healthy.
    pub problems: Vec<String>,
    /// How the pulses were watched, once [`Report::judge_pulses`] ran.
    pub pulses: Option<PulseView>,
}

/// How `status` watched the pulses ([`pulse`]); each node's age is in
/// [`Node::pulse_age`].
#[derive(Debug, Clone, PartialEq)]
pub struct PulseView {
    /// `-pulse`: a node not seen pulsing is at least this far behind.
    pub window: Duration,
    /// Why they could not be watched to the end, if so.
    pub error: Option<String>,
}

/// Runs `doozer status` against the cluster of `g`.
pub fn run(g: &Globals, opts: Options) -> Result<(), Failure> {
    let uri: DoozerUri = g.uri.parse().map_err(Error::from)?;
    let addrs = g.addrs(&uri)?;
    let mut snap = read_from_any(&addrs, &uri, opts.timeout.max(READ_TIMEOUT))?;
    let watch = snap.via.as_ref().or(addrs.first()).map(|via| {
        let cals = snap
            .nodes
            .iter()
            .filter(|n| n.is_cal())
            .map(|n| n.id.clone());
        pulse::watch(via, &uri, snap.rev, cals.collect(), opts.pulse_window)
    });
    probe::ask_all(&mut snap.nodes, &uri, opts.timeout)?;
    let pulses = watch.map(pulse::Watch::finish).unwrap_or_default();
    let end = Instant::now();
    for n in &mut snap.nodes {
        n.pulse_age = pulses
            .seen
            .get(&n.id)
            .map(|at| end.saturating_duration_since(*at));
    }
    let ns = g
        .boot_uri
        .as_deref()
        .map(|b| read_ns(b, &snap.cluster, opts.timeout.max(READ_TIMEOUT)));
    let mut report = Report::assess(snap, ns, opts.max_lag);
    report.judge_pulses(PulseView {
        window: opts.pulse_window,
        error: pulses.error,
    });
    let out = if opts.json {
        render::json(&report)
    } else {
        render::text(&report)
    };
    // A reader that stops early (`doozer status | head -1`) does not hide
    // the verdict: the exit status still says unhealthy.
    let mut stdout = io::stdout().lock();
    match stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => return Err(e.into()),
        _ => {}
    }
    if report.problems.is_empty() {
        Ok(())
    } else {
        Err(Failure::Unhealthy(
            report.problems.iter().map(|p| render::clean(p)).collect(),
        ))
    }
}

/// How long reading `/ctl` from one node may take (or `-t`, if longer)
/// before the next address is tried: a stopped node accepts the
/// connection but never answers, and a health check must not hang on it.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs `f` on a thread of its own and waits at most `limit` for it; a
/// later answer is dropped (the thread is left to end by itself).
fn within<T: Send + 'static>(
    limit: Duration,
    f: impl FnOnce() -> Result<T, Failure> + Send + 'static,
) -> Result<T, Failure> {
    let (tx, rx) = mpsc::channel();
    thread::Builder::new()
        .name("status read".into())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .map_err(|e| Failure::Other(format!("cannot start a thread: {e}")))?;
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| Err(Failure::Other(format!("no answer within {limit:?}"))))
}

/// Reads the [`Snapshot`] from the first of `addrs` that gives it within
/// `limit`, each with the TLS and secret of `uri`.
fn read_from_any(addrs: &[String], uri: &DoozerUri, limit: Duration) -> Result<Snapshot, Failure> {
    let mut failed = Vec::new();
    for addr in addrs {
        let one = DoozerUri {
            addrs: vec![addr.clone()],
            cluster: None,
            ..uri.clone()
        };
        let read = within(limit, move || read_snapshot(&Client::connect_uri(&one)?));
        match read {
            Ok(snap) => return Ok(snap),
            // A timeout: say whose.
            Err(Failure::Other(m)) => failed.push((addr, Failure::Other(format!("{addr}: {m}")))),
            Err(f) => failed.push((addr, f)),
        }
    }
    if failed.len() <= 1 {
        let f = failed.pop().map(|(_, f)| f);
        return Err(f.unwrap_or_else(|| Failure::Other("no address to read from".into())));
    }
    let each: Vec<String> = failed
        .iter()
        .map(|(addr, f)| match f {
            Failure::Doozer(e @ Error::Connect { .. }) => e.to_string(),
            Failure::Doozer(e) => format!("{addr}: {e}"),
            Failure::Other(m) => m.clone(),
            f => format!("{addr}: {f:?}"),
        })
        .collect();
    Err(Failure::Other(format!(
        "no node could be read: {}",
        each.join("; ")
    )))
}

/// Every file matching `glob` at `rev`.
fn walk(c: &Client, glob: &str, rev: i64) -> Result<Vec<doozer::Event>, Failure> {
    Ok(c.walk_all(glob, Some(rev))?)
}

/// Reads the cluster name, the slots and the node files at one rev.
fn read_snapshot(c: &Client) -> Result<Snapshot, Failure> {
    let rev = c.rev()?;
    let via = c.current_addr();
    let (name, _) = c.get(ctl::NAME_PATH, Some(rev))?;
    let slot_files = walk(c, &format!("{}/*", ctl::CAL_DIR), rev)?;
    let node_files = walk(c, &format!("{}/*/*", ctl::NODE_DIR), rev)?;
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let mut slots: Vec<(String, Option<String>)> = slot_files
        .iter()
        .filter_map(|e| match ctl::parse(&e.path)? {
            CtlPath::CalSlot(n) => Some((n.to_string(), Some(text(&e.body)))),
            _ => None,
        })
        .map(|(n, id)| (n, id.filter(|id| !id.is_empty())))
        .collect();
    slots.sort_by(|a, b| slot_order(&a.0, &b.0));
    let mut nodes: BTreeMap<String, Node> = BTreeMap::new();
    for e in &node_files {
        let Some(CtlPath::NodeFile { id, file }) = ctl::parse(&e.path) else {
            continue;
        };
        let n = nodes.entry(id.to_string()).or_insert_with(|| Node::new(id));
        let body = text(&e.body);
        match file {
            NodeFile::Addr => n.addr = Some(body.trim().to_string()),
            NodeFile::Hostname => n.hostname = Some(body),
            NodeFile::Version => n.version = Some(body),
            NodeFile::Writable => n.writable = body.trim().parse().ok(),
            NodeFile::Applied => {
                n.applied = body.trim().parse().ok();
                n.applied_rev = Some(e.rev);
            }
        }
    }
    let mut ordered = Vec::new();
    for (slot, id) in &slots {
        let Some(id) = id else { continue };
        if ordered.iter().any(|n: &Node| &n.id == id) {
            continue;
        }
        let mut n = nodes.remove(id).unwrap_or_else(|| Node::new(id));
        n.slot = Some(slot.clone());
        ordered.push(n);
    }
    ordered.extend(nodes.into_values());
    Ok(Snapshot {
        cluster: text(&name),
        rev,
        via,
        slots,
        nodes: ordered,
    })
}

/// Slots in numeric order when both names are numbers, else by name.
fn slot_order(a: &str, b: &str) -> std::cmp::Ordering {
    match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        (Ok(_), Err(_)) => std::cmp::Ordering::Less,
        (Err(_), Ok(_)) => std::cmp::Ordering::Greater,
        (Err(_), Err(_)) => a.cmp(b),
    }
}

/// The cluster's entries in the name service at `boot_uri`, read within
/// `limit`; a failure is kept in [`NsView::error`], not fatal: the cluster
/// itself was read.
fn read_ns(boot_uri: &str, cluster: &str, limit: Duration) -> NsView {
    let (boot_uri, cluster) = (boot_uri.to_string(), cluster.to_string());
    let read = within(limit, move || {
        let ns = Client::connect(&boot_uri)?;
        let entries = doozer::ns::registered_cals(&ns, &cluster)?;
        let (boot, boot_rev) = ns.get(&ctl::boot_record(&cluster), None)?;
        Ok(NsView {
            entries,
            boot: (boot_rev != 0).then(|| String::from_utf8_lossy(&boot).into_owned()),
            error: None,
        })
    });
    read.unwrap_or_else(|f| NsView {
        error: Some(match f {
            Failure::Doozer(e) => e.to_string(),
            Failure::Other(m) => m,
            f => format!("{f:?}"),
        }),
        ..NsView::default()
    })
}

impl Report {
    /// Judges `snap` (its nodes already asked): the head, the CAL
    /// majority, the free slots, and every problem.
    pub fn assess(snap: Snapshot, ns: Option<NsView>, max_lag: i64) -> Report {
        let head = snap
            .nodes
            .iter()
            .filter_map(Node::rev)
            .fold(snap.rev, i64::max);
        let cal_nodes = || snap.nodes.iter().filter(|n| n.is_cal());
        let cals = cal_nodes().count();
        let cals_answered = cal_nodes().filter(|n| n.rev().is_some()).count();
        let majority = cals_answered * 2 > cals;
        let free: Vec<String> = snap
            .slots
            .iter()
            .filter(|(_, id)| id.is_none())
            .map(|(s, _)| s.clone())
            .collect();
        let slaves_answered = snap
            .nodes
            .iter()
            .filter(|n| !n.is_cal() && n.rev().is_some())
            .count();
        let mut problems = Vec::new();
        if !majority {
            problems.push(format!(
                "no majority of CALs answers: {cals_answered} of {cals}"
            ));
        }
        for n in cal_nodes() {
            let slot = n.slot.as_deref().unwrap_or_default();
            let at = n.addr.as_deref().unwrap_or("no address");
            let who = format!("CAL {} (slot {slot}, {at})", n.id);
            match (&n.answer, n.lag(head)) {
                (Answer::No(why), _) => problems.push(format!("{who} did not answer: {why}")),
                (_, Some(lag)) if lag > max_lag => problems.push(format!(
                    "{who} is {lag} revs behind the head {head} (more than {max_lag})"
                )),
                _ => {}
            }
        }
        problems.extend(free_slot_problems(&free, slaves_answered));
        problems.extend(ns.as_ref().and_then(|v| name_conflict(v, &snap)));
        Report {
            snap,
            head,
            cals,
            cals_answered,
            majority,
            free,
            slaves_answered,
            max_lag,
            ns,
            problems,
            pulses: None,
        }
    }

    /// Judges the pulses (each node's [`Node::pulse_age`], watched as
    /// `view` says): a CAL that answered but did not pulse while other
    /// CALs did is a problem (it serves clients but takes no part in
    /// deciding: cut off from its peers, or its consensus stuck), and so
    /// is no CAL pulsing at all while a majority answers (the cluster
    /// decides nothing, or `-pulse` is shorter than the nodes'). A CAL
    /// that did not answer is already named. Failing to watch them is a
    /// problem too: the check could not be made.
    pub fn judge_pulses(&mut self, view: PulseView) {
        let secs = view.window.as_secs_f64();
        let cals = || self.snap.nodes.iter().filter(|n| n.is_cal());
        let pulsed = cals().filter(|n| n.pulse_age.is_some()).count();
        let mut problems = Vec::new();
        if let Some(e) = &view.error {
            let via = self.snap.via.as_deref().unwrap_or("the node read from");
            problems.push(format!("cannot watch the pulses on {via}: {e}"));
        } else if pulsed == 0 && self.majority {
            problems.push(format!(
                "no CAL pulsed within {secs:.1} s: the cluster decides nothing \
                 (or -pulse is shorter than the nodes' -pulse)"
            ));
        } else if pulsed > 0 {
            for n in cals().filter(|n| n.pulse_age.is_none() && n.rev().is_some()) {
                let slot = n.slot.as_deref().unwrap_or_default();
                let at = n.addr.as_deref().unwrap_or("no address");
                problems.push(format!(
                    "CAL {} (slot {slot}, {at}) answers but did not pulse within {secs:.1} s (other CALs did)",
                    n.id
                ));
            }
        }
        self.problems.extend(problems);
        self.pulses = Some(view);
    }
}

/// The name taken by another cluster: the name service lists nodes under
/// this cluster's name, and none of them is a node of this cluster, so
/// `cn=` leads elsewhere (an old cluster back after its records were
/// removed as stale: docs/cluster.md#stale-name-service-records).
fn name_conflict(ns: &NsView, snap: &Snapshot) -> Option<String> {
    if ns.error.is_some() || ns.entries.is_empty() {
        return None;
    }
    let ours = |id: &str| snap.nodes.iter().any(|n| n.id == id);
    if ns.entries.iter().any(|(id, _)| ours(id)) {
        return None;
    }
    let theirs: Vec<&str> = ns.entries.iter().map(|(id, _)| id.as_str()).collect();
    Some(format!(
        "name conflict: the name service gives cluster name {:?} to another cluster (seed {}, CALs {}); no node of this cluster is registered there",
        snap.cluster,
        ns.boot.as_deref().unwrap_or("unknown"),
        theirs.join(", ")
    ))
}

/// Free slots that no answering slave is left to take.
fn free_slot_problems(free: &[String], slaves: usize) -> Vec<String> {
    if free.len() <= slaves {
        return Vec::new();
    }
    if slaves == 0 {
        return free
            .iter()
            .map(|s| format!("CAL slot {s} is free and no slave answers to take it"))
            .collect();
    }
    vec![format!(
        "CAL slots {} are free and only {slaves} slave{} answer{} to take them",
        free.join(", "),
        if slaves == 1 { "" } else { "s" },
        if slaves == 1 { "s" } else { "" },
    )]
}

#[cfg(test)]
mod tests;
