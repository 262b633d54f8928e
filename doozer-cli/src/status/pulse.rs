//! How long ago each node last pulsed (docs/reference.md#doozer-status).
//!
//! Each CAL rewrites `/ctl/node/<id>/applied` every `-pulse` seconds
//! (docs/cluster.md, "Kick and pulse"), but a rev carries no time. So
//! `status` measures it: from the rev the snapshot was read at, it WAITs
//! on `/ctl/node/*/applied` on the node it read from, and notes when each
//! node's next pulse arrives, until every CAL has pulsed or the window
//! ends. A pulse decided between the snapshot and the first WAIT is noted
//! when that WAIT answers (at once): its age is then a few milliseconds
//! short, never long.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use doozer::ctl::{self, CtlPath, NodeFile};
use doozer::{Client, DoozerUri, Error};

/// How long to wait for every CAL's next pulse, when `-pulse` is not
/// given: twice the default `-pulse` of doozerd (1 s), so a healthy CAL
/// that pulsed just before the snapshot is still seen pulsing again.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(2);

/// What the watch saw.
#[derive(Debug, Clone, Default)]
pub struct Pulses {
    /// When each node's first pulse after the snapshot arrived.
    pub seen: BTreeMap<String, Instant>,
    /// Why the pulses could not be watched (to the end of the window),
    /// if so.
    pub error: Option<String>,
}

/// Starts watching, on a thread of its own, the pulses after `rev` on the
/// node at `addr` (with the TLS and secret of `uri`), until every id of
/// `cals` pulsed or `window` passed. [`Watch::finish`] collects it.
pub fn watch(
    addr: &str,
    uri: &DoozerUri,
    rev: i64,
    cals: BTreeSet<String>,
    window: Duration,
) -> Watch {
    let one = DoozerUri {
        addrs: vec![addr.to_string()],
        cluster: None,
        ..uri.clone()
    };
    let deadline = Instant::now() + window;
    let (tx, rx) = mpsc::channel();
    let spawned = thread::Builder::new()
        .name("status pulses".into())
        .spawn(move || {
            let mut p = Pulses::default();
            if let Err(e) = follow(&one, rev, &cals, deadline, &mut p.seen) {
                p.error = Some(e.to_string());
            }
            let _ = tx.send(p);
        });
    Watch {
        rx: spawned.ok().map(|_| rx),
        deadline,
    }
}

/// A watch of the pulses under way.
pub struct Watch {
    rx: Option<mpsc::Receiver<Pulses>>,
    deadline: Instant,
}

impl Watch {
    /// Waits for the watch to end (at the end of its window at most, plus
    /// a second for a node that stopped answering mid-WAIT).
    pub fn finish(self) -> Pulses {
        let failed = |why: &str| Pulses {
            error: Some(why.to_string()),
            ..Pulses::default()
        };
        let Some(rx) = self.rx else {
            return failed("cannot start a thread to watch them");
        };
        let left = self.deadline.saturating_duration_since(Instant::now());
        rx.recv_timeout(left + Duration::from_secs(1))
            .unwrap_or_else(|_| failed("the node read from stopped answering"))
    }
}

/// WAITs on every `applied` file from `rev` + 1 on, noting when each
/// node's first pulse arrives, until every id of `cals` pulsed or
/// `deadline`.
fn follow(
    uri: &DoozerUri,
    rev: i64,
    cals: &BTreeSet<String>,
    deadline: Instant,
    seen: &mut BTreeMap<String, Instant>,
) -> Result<(), Error> {
    let c = Client::connect_uri(uri)?;
    let glob = format!("{}/*/{}", ctl::NODE_DIR, NodeFile::Applied.name());
    let mut from = rev + 1;
    while !cals.iter().all(|id| seen.contains_key(id)) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        let ev = match c.wait_timeout(&glob, from, left) {
            Ok(ev) => ev,
            Err(Error::Timeout) => return Ok(()),
            Err(e) => return Err(e),
        };
        let at = Instant::now();
        if let Some(CtlPath::NodeFile {
            id,
            file: NodeFile::Applied,
        }) = ctl::parse(&ev.path)
        {
            if ev.is_set() {
                seen.entry(id.to_string()).or_insert(at);
            }
        }
        from = ev.rev + 1;
    }
    Ok(())
}
