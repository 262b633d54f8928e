//! What the nemesis checks find: an [`Anomaly`] names the [`Check`] that
//! failed, the node it is about (if any) and what was seen.

use std::fmt;

/// The checks of a nemesis round, one name per property.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Check {
    /// SETs, DELs and linearizable reads linearizable; plain reads
    /// monotonic per client and only of written values.
    History,
    /// A plain GET answered with an error (no node may refuse a read).
    ReadRefused,
    /// A workload client still busy long after it was told to stop.
    ClientStuck,
    /// A watcher missed, reordered or altered a change, or ended early.
    Watch,
    /// An acknowledged SET is not in the store's history at its rev.
    LostWrite,
    /// Live nodes hold different stores at one rev, or do not reach it.
    Stores,
    /// After the heal, the nodes did not all agree on `/ctl/cal/*`, or
    /// some live node was neither a writable CAL nor a slave at the head,
    /// within the deadline.
    Heal,
    /// A CAL did not accept a write after the heal.
    CalWrite,
    /// A CAL was kicked that the fault did not touch (or that the
    /// scenario says must stay).
    HealthyKicked,
    /// A CAL that the fault silenced for longer than `-timeout` was not
    /// kicked.
    NotKicked,
    /// A node logged a kick attempt after the cluster had healed.
    KickLoop,
    /// A node panicked, or exited by itself.
    Crash,
    /// Writes stopped being accepted where a majority was up.
    Progress,
    /// The test machinery itself failed (a panic in a round, a workload
    /// client that panicked): not a finding about the daemon, but the
    /// round did not check what it should have.
    Harness,
}

impl Check {
    /// Every check, in report order.
    pub const ALL: [Check; 14] = [
        Check::History,
        Check::ReadRefused,
        Check::ClientStuck,
        Check::Watch,
        Check::LostWrite,
        Check::Stores,
        Check::Heal,
        Check::CalWrite,
        Check::HealthyKicked,
        Check::NotKicked,
        Check::KickLoop,
        Check::Crash,
        Check::Progress,
        Check::Harness,
    ];

    /// A short kebab-case name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Check::History => "history",
            Check::ReadRefused => "read-refused",
            Check::ClientStuck => "client-stuck",
            Check::Watch => "watch",
            Check::LostWrite => "lost-write",
            Check::Stores => "stores",
            Check::Heal => "heal",
            Check::CalWrite => "cal-write",
            Check::HealthyKicked => "healthy-kicked",
            Check::NotKicked => "not-kicked",
            Check::KickLoop => "kick-loop",
            Check::Crash => "crash",
            Check::Progress => "progress",
            Check::Harness => "harness",
        }
    }
}

/// One failed check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anomaly {
    /// Which check.
    pub check: Check,
    /// The node it is about: `"node 2 (ID, 127.x.y.z:port)"`, if any.
    pub node: Option<String>,
    /// What was seen.
    pub what: String,
}

impl Anomaly {
    /// An anomaly about the cluster as a whole.
    pub fn new(check: Check, what: impl Into<String>) -> Anomaly {
        Anomaly {
            check,
            node: None,
            what: what.into(),
        }
    }

    /// An anomaly about one node (`node` describes it).
    pub fn at(check: Check, node: impl Into<String>, what: impl Into<String>) -> Anomaly {
        Anomaly {
            check,
            node: Some(node.into()),
            what: what.into(),
        }
    }
}

impl fmt::Display for Anomaly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.node {
            Some(n) => write!(f, "[{}] {n}: {}", self.check.name(), self.what),
            None => write!(f, "[{}] {}", self.check.name(), self.what),
        }
    }
}

/// The message of a panic payload.
pub fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "(no message)".into())
}

/// Runs `f`; a panic becomes a [`Check::Harness`] anomaly saying `what`
/// panicked and why.
pub fn guarded<T>(what: &str, f: impl FnOnce() -> T) -> Result<T, Anomaly> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|p| {
        Anomaly::new(
            Check::Harness,
            format!("{what} panicked: {}", panic_text(p.as_ref())),
        )
    })
}

/// `text` cut to at most `max` bytes (on a char boundary), saying how much
/// was left out: history violations list whole histories.
pub fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}\n... ({} more bytes)", &text[..end], text.len() - end)
}
