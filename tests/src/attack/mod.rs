//! Hostile and careless clients (issue 12; bounds in docs/behaviour.md,
//! "Limits"; figures in docs/reliability.md, "Hostile clients"): each
//! attack of the issue against a running node, measured the same way at
//! any size: the node's peak resident memory, a fresh client's latency
//! while the attack runs, whether the node is alive afterwards, and what
//! it answered the attacker.
//!
//! - `probe.rs`: [`Prober`], a fresh client (a new connection per GET)
//!   in a loop while an attack runs; [`Latencies`].
//! - `hostile.rs`: the attacker's tools: connections that send and never
//!   read ([`Unread`]), [`Tally`] of what a node answered, HTTP heads.
//! - `cases.rs`: the client-protocol attacks (items 1 to 4 of the issue).
//! - `web.rs`: the attacks on the web viewer (event streams, slowloris).
//! - `cluster.rs`: a flood of one CAL of a 3-CAL cluster.
//!
//! Nothing here asserts: every attack returns a [`Report`], which the
//! tests (`tests/tests/attacks.rs`, scaled down) check against the bounds,
//! and the runner (`src/bin/attack.rs`, `scripts/attack`, full size)
//! prints as a table, for the binaries of any commit.

mod cases;
mod cluster;
mod hostile;
mod probe;
mod web;

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use bytes::BytesMut;

pub use cases::*;
pub use cluster::{flood_cluster, walk_flood_cluster, ClusterFlood};
pub use hostile::{answer_kind, drain, spawn_writer, Tally, Unread};
pub use probe::{Latencies, Prober, PROBE_PATH, PROBE_TIMEOUT};
pub use web::{events_rate, events_unread, events_with_writes, slowloris, Slowloris};

use crate::{req, Doozerd, RawConn, Recv, RequestExt, Verb};

/// The body of [`PROBE_PATH`].
pub const PROBE_BODY: &[u8] = b"probe";

/// The largest body a SET may carry (docs/behaviour.md, "Value size").
pub const BODY_48K: usize = 48 << 10;

/// What one attack did to a node.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Short name (a row of the table).
    pub name: String,
    /// The attack, with its sizes.
    pub what: String,
    /// Resident memory just before the attack (after the store was
    /// filled), KiB.
    pub rss_before_kib: u64,
    /// Peak resident memory of the process over its life (VmHWM), read
    /// after the attack, KiB; 0 if the process had died.
    pub peak_rss_kib: u64,
    /// A fresh client's GETs (and SETs, for the attacks where changes
    /// cost) during the attack.
    pub probes: Latencies,
    /// The node was alive at the end, and answered a REV.
    pub alive: bool,
    /// What the node answered the attacker, by kind ([`answer_kind`]).
    pub answers: Tally,
    /// Anything else worth a line in the table.
    pub notes: Vec<String>,
}

impl Report {
    /// The columns of [`Report::row`], as a Markdown table head.
    pub const HEAD: &'static str = "| attack | what | RSS before (MiB) | peak RSS (MiB) | \
         fresh GET p50 / p99 / max (ms) | probes | alive | notes |\n\
         |---|---|---|---|---|---|---|---|";

    /// One Markdown table row.
    pub fn row(&self) -> String {
        let mib = |k: u64| format!("{:.1}", k as f64 / 1024.0);
        let peak = if self.peak_rss_kib == 0 {
            "died".to_string()
        } else {
            mib(self.peak_rss_kib)
        };
        let mut notes = self.notes.join("; ");
        if !self.answers.is_empty() {
            let answers: Vec<String> = self
                .answers
                .iter()
                .map(|(k, n)| format!("{k} × {n}"))
                .collect();
            let sep = if notes.is_empty() { "" } else { "; " };
            let _ = write!(notes, "{sep}answered: {}", answers.join(", "));
        }
        if !self.probes.set_ms.is_empty() {
            let _ = write!(
                notes,
                "{}fresh SET p50 / p99 {} / {} ms",
                if notes.is_empty() { "" } else { "; " },
                fmt_ms(self.probes.set_quantile(0.5)),
                fmt_ms(self.probes.set_quantile(0.99)),
            );
        }
        format!(
            "| {} | {} | {} | {} | {} / {} / {} | {} | {} | {} |",
            self.name,
            self.what,
            mib(self.rss_before_kib),
            peak,
            fmt_ms(self.probes.quantile(0.5)),
            fmt_ms(self.probes.quantile(0.99)),
            fmt_ms(self.probes.max()),
            self.probes.summary(),
            if self.alive { "yes" } else { "**no**" },
            notes
        )
    }
}

/// Milliseconds with one decimal, or `-` when there is no figure.
fn fmt_ms(ms: Option<f64>) -> String {
    match ms {
        Some(v) if v >= 100.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.1}"),
        None => "-".into(),
    }
}

/// A field of `/proc/<pid>/status` in KiB (`VmHWM`, `VmRSS`), or `None`
/// if the process is gone.
pub fn proc_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status
        .lines()
        .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))?;
    line[field.len() + 1..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// Peak resident memory of `pid` so far (VmHWM), KiB; 0 if it is gone.
pub fn peak_rss_kib(pid: u32) -> u64 {
    proc_kib(pid, "VmHWM").unwrap_or(0)
}

/// Resident memory of `pid` now (VmRSS), KiB; 0 if it is gone.
pub fn rss_kib(pid: u32) -> u64 {
    proc_kib(pid, "VmRSS").unwrap_or(0)
}

/// Whether `d` is running and answers a REV on a new connection within
/// [`PROBE_TIMEOUT`].
pub fn answers(d: &mut Doozerd) -> bool {
    if !d.is_running() {
        return false;
    }
    let Ok(stream) = std::net::TcpStream::connect_timeout(&d.addr(), PROBE_TIMEOUT) else {
        return false;
    };
    let mut c = RawConn::from_stream(stream);
    c.send(&req(Verb::Rev).tag(1));
    matches!(c.recv_any(PROBE_TIMEOUT), Recv::Response(r) if r.err_code.is_none())
}

/// Fills the store of `d` with `n` files `/<dir>/f<i>` of `body_len`
/// bytes each (SETs pipelined on one connection, at most 256 in flight),
/// plus the small file the [`Prober`] reads. Panics if a SET fails.
pub fn populate(d: &Doozerd, dir: &str, n: usize, body_len: usize) {
    let mut c = d.raw();
    c.must_set(PROBE_PATH, -1, PROBE_BODY);
    let body = vec![b'x'; body_len];
    let mut out = BytesMut::new();
    let (mut sent, mut got) = (0, 0);
    let started = Instant::now();
    while got < n {
        while sent < n && sent - got < 256 {
            let r = req(Verb::Set)
                .path(&format!("/{dir}/f{sent:06}"))
                .rev(-1)
                .value(&body)
                .tag(sent as i32);
            doozer_proto::encode_frame(&r, &mut out);
            sent += 1;
        }
        c.send_bytes(&out.split());
        let r = c.recv();
        assert_eq!(r.err_code, None, "SET while filling the store: {r:?}");
        got += 1;
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "filling the store took too long"
        );
    }
}

/// Runs `attack` against `d` with a [`Prober`] (writing too if
/// `writes`) running all along, then fills in the figures every report
/// has: name, RSS before and peak, probes, alive.
pub fn measured(
    d: &mut Doozerd,
    name: &str,
    what: String,
    writes: bool,
    attack: impl FnOnce(&mut Report),
) -> Report {
    let mut rep = Report {
        name: name.to_string(),
        what,
        rss_before_kib: rss_kib(d.pid()),
        ..Default::default()
    };
    let prober = Prober::start(d.addr(), writes);
    attack(&mut rep);
    rep.probes = prober.finish();
    rep.peak_rss_kib = if d.is_running() {
        peak_rss_kib(d.pid())
    } else {
        0
    };
    rep.alive = answers(d);
    rep
}
