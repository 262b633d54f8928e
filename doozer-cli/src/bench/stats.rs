//! What a run measures: request counts and latencies ([`LoadStats`]),
//! when each change reached a follower ([`ArrivalLog`]), and the live
//! progress line on stderr.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use doozer::Error;

use crate::hist::Histogram;

/// What the requests of one connection (or, merged, of a whole run) did.
#[derive(Default)]
pub(super) struct LoadStats {
    /// Latencies, send to response, in microseconds.
    pub(super) hist: Histogram,
    /// Responses to requests in flight.
    pub(super) ops: u64,
    /// Of those, error responses (and write acks that never came).
    pub(super) errors: u64,
    /// The first error, for the report.
    pub(super) first_error: Option<String>,
    /// Responses whose tag was not in flight on their connection.
    pub(super) stray: u64,
    /// The tag of the first stray response.
    pub(super) first_stray: Option<Option<i32>>,
}

impl LoadStats {
    /// Adds the counts of `o`; the first error and stray tag stay the
    /// first seen.
    pub(super) fn merge(&mut self, o: LoadStats) {
        self.hist.merge(&o.hist);
        self.ops += o.ops;
        self.errors += o.errors;
        if self.first_error.is_none() {
            self.first_error = o.first_error;
        }
        self.stray += o.stray;
        if self.first_stray.is_none() {
            self.first_stray = o.first_stray;
        }
    }

    /// Counts the error response `e`.
    pub(super) fn note_error(&mut self, e: Error) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(e.to_string());
        }
    }
}

/// What one follower (a watcher or an event stream) saw: when each rev
/// first arrived, how many arrived again, and why it stopped, if it did.
#[derive(Default)]
pub(super) struct ArrivalLog {
    /// When each rev first arrived.
    pub(super) seen: HashMap<i64, Instant>,
    /// Revs that arrived again.
    pub(super) duplicates: u64,
    /// Why the follower stopped, if it did.
    pub(super) error: Option<String>,
}

impl ArrivalLog {
    /// The log of a follower that failed with `e` before anything arrived.
    pub(super) fn failed(e: String) -> ArrivalLog {
        ArrivalLog {
            error: Some(e),
            ..Default::default()
        }
    }

    /// Records that `rev` arrived at `now`.
    pub(super) fn arrived(&mut self, rev: i64, now: Instant) {
        match self.seen.entry(rev) {
            Entry::Occupied(_) => self.duplicates += 1,
            Entry::Vacant(v) => {
                v.insert(now);
            }
        }
    }
}

/// Prints `label: N ops, R ops/s` to stderr once a second until `done`,
/// overwriting the line; clears it at the end.
pub(super) fn progress(label: &str, count: &AtomicU64, done: &AtomicBool) {
    let mut last = 0;
    let mut printed = false;
    let mut tick = Instant::now();
    while !done.load(Ordering::Relaxed) {
        thread::sleep(Duration::from_millis(50));
        if tick.elapsed() < Duration::from_secs(1) {
            continue;
        }
        let secs = tick.elapsed().as_secs_f64();
        tick = Instant::now();
        let now = count.load(Ordering::Relaxed);
        eprint!(
            "\r{label}: {now} ops, {:.0} ops/s    ",
            (now - last) as f64 / secs
        );
        let _ = std::io::stderr().flush();
        printed = true;
        last = now;
    }
    if printed {
        eprint!("\r{:60}\r", "");
    }
}
