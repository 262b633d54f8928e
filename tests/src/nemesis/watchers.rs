//! Watchers: a `doozer` client [`watch`](doozer::Client::watch) per node,
//! from one rev, on one glob, each in its own thread, until it sees the
//! round's stop file. Checked against the changes a reference node's
//! history holds ([`probe::changes`](super::probe::changes)): every change
//! in the range the watcher covered, in rev order, none missing, none made
//! up, none altered; and a watcher whose node is alive at the end must
//! reach the stop file. A watcher told `TOO_LATE` starts over from its
//! node's current rev (the only gap allowed, and one the client was told
//! of); starts-over are counted.

use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::anomaly::{Anomaly, Check};
use super::probe::Change;
use crate::ErrCode;

/// What a watcher saw so far, and how it ended.
#[derive(Debug, Default)]
struct Seen {
    changes: Vec<Change>,
    /// Why the watch ended, if it did: `None` while it runs,
    /// `Some(None)` when it saw the stop file, `Some(Some(err))` on an
    /// error.
    ended: Option<Option<String>>,
    /// Each start-over after `TOO_LATE`: (the last rev seen before, the
    /// rev it started over from). Changes strictly between were never
    /// going to be seen.
    restarts: Vec<(i64, i64)>,
}

/// One watcher.
pub struct Watcher {
    /// Index of the watched node in the cluster.
    pub node: usize,
    /// The node, described for reports.
    pub desc: String,
    seen: Arc<Mutex<Seen>>,
}

impl Watcher {
    /// Starts watching `glob` from `from` on the node at `uri`, until a
    /// change to `stop_path`.
    pub fn start(
        node: usize,
        desc: String,
        uri: &str,
        glob: &str,
        from: i64,
        stop_path: &str,
    ) -> Watcher {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (s, uri, glob, stop) = (
            seen.clone(),
            uri.to_string(),
            glob.to_string(),
            stop_path.to_string(),
        );
        // Detached: a watch blocked on a node ends when the node is killed.
        thread::spawn(move || watch(&uri, &glob, from, &stop, &s));
        Watcher { node, desc, seen }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether it saw the stop file.
    pub fn done(&self) -> bool {
        self.lock().ended == Some(None)
    }

    /// The error it ended with, if any.
    pub fn error(&self) -> Option<String> {
        self.lock().ended.clone().flatten()
    }

    /// How many changes it saw.
    pub fn count(&self) -> usize {
        self.lock().changes.len()
    }

    /// How many times it started over after `TOO_LATE`.
    pub fn restarts(&self) -> usize {
        self.lock().restarts.len()
    }

    /// Checks what it saw against `reference` (every change matching the
    /// glob from the watch's first rev to the stop file, from a node's
    /// history). `must_finish`: its node is alive, so it must have reached
    /// the stop file.
    pub fn check(&self, reference: &[Change], must_finish: bool) -> Vec<Anomaly> {
        let seen = self.lock();
        let mut out = Vec::new();
        let bad = |what: String| Anomaly::at(Check::Watch, &self.desc, what);
        for w in seen.changes.windows(2) {
            if w[1].rev <= w[0].rev {
                out.push(bad(format!("out of rev order: {} after {}", w[1], w[0])));
            }
        }
        let upto = seen.changes.last().map_or(i64::MIN, |c| c.rev);
        let skipped = |rev: i64| seen.restarts.iter().any(|&(a, b)| a < rev && rev < b);
        let expected: Vec<&Change> = reference
            .iter()
            .filter(|c| c.rev <= upto && !skipped(c.rev))
            .collect();
        out.extend(compare(&expected, &seen.changes).into_iter().map(bad));
        match &seen.ended {
            Some(None) => {}
            Some(Some(err)) if must_finish => out.push(bad(format!(
                "the watch ended after {} changes (last rev {upto}) with: {err}",
                seen.changes.len()
            ))),
            None if must_finish => out.push(bad(format!(
                "never reached the stop file: {} changes seen, the last at rev {upto}",
                seen.changes.len()
            ))),
            _ => {}
        }
        out
    }
}

/// Most times a watcher starts over after `TOO_LATE` before it gives up.
const MAX_RESTARTS: usize = 10;

/// How long a watcher whose connection broke tries to connect to its node
/// again (a node restarted on its data directory comes back within it; a
/// node killed for good never does).
const RECONNECT_FOR: Duration = Duration::from_secs(30);

/// Connects to `uri`, trying every 100 ms for up to `patience`.
fn connect(uri: &str, patience: Duration) -> Result<doozer::Client, String> {
    let deadline = Instant::now() + patience;
    loop {
        match doozer::Client::connect(uri) {
            Ok(c) => return Ok(c),
            Err(e) if Instant::now() >= deadline => return Err(format!("connect: {e}")),
            Err(_) => thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// The watch loop of one thread. A `TOO_LATE` answer (the node copied the
/// store and its history starts later, docs/behaviour.md "Slaves") makes
/// it start over from the node's current rev, as a client must; the
/// restart is recorded so that the changes it could not see are not
/// counted as a gap. A broken connection (its node was killed) makes it
/// connect again for up to [`RECONNECT_FOR`] and go on from the rev after
/// the last change it saw, as a client must: a node restarted on its data
/// directory has to serve that (or say `TOO_LATE`).
fn watch(uri: &str, glob: &str, from: i64, stop: &str, seen: &Mutex<Seen>) {
    let lock = || seen.lock().unwrap_or_else(|e| e.into_inner());
    let end = |why: Option<String>| lock().ended = Some(why);
    let mut client = match connect(uri, Duration::ZERO) {
        Ok(c) => c,
        Err(e) => return end(Some(e)),
    };
    let mut from = from;
    loop {
        for ev in client.watch(glob, from) {
            let ev = match ev {
                Ok(ev) => ev,
                Err(e)
                    if e.code() == Some(ErrCode::TooLate)
                        && lock().restarts.len() < MAX_RESTARTS =>
                {
                    let last = lock().changes.last().map_or(from - 1, |c| c.rev);
                    match client.rev() {
                        Ok(head) => {
                            from = head + 1;
                            lock().restarts.push((last, from));
                            break;
                        }
                        Err(e) => return end(Some(format!("REV after TOO_LATE: {e}"))),
                    }
                }
                Err(e) if e.is_connection_error() => {
                    // After the last change seen, or where a start-over
                    // began if it saw none since.
                    let next = lock().changes.last().map_or(from, |c| c.rev + 1);
                    from = from.max(next);
                    match connect(uri, RECONNECT_FOR) {
                        Ok(c) => {
                            client = c;
                            break;
                        }
                        Err(again) => return end(Some(format!("{e}; then {again}"))),
                    }
                }
                Err(e) => return end(Some(e.to_string())),
            };
            let is_stop = ev.path == stop;
            lock().changes.push(Change {
                path: ev.path,
                rev: ev.rev,
                body: ev.body.to_vec(),
                flags: ev.flags,
            });
            if is_stop {
                return end(None);
            }
        }
    }
}

/// Differences between what a watcher should have seen and what it saw,
/// both in rev order: at most 5 described, then a count.
fn compare(expected: &[&Change], seen: &[Change]) -> Vec<String> {
    let mut diffs = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < expected.len() || j < seen.len() {
        match (expected.get(i), seen.get(j)) {
            (Some(e), Some(s)) if e.rev == s.rev => {
                if **e != *s {
                    diffs.push(format!("saw {s} where the history has {e}"));
                }
                i += 1;
                j += 1;
            }
            (Some(e), s) if s.is_none_or(|s| e.rev < s.rev) => {
                diffs.push(format!("missed {e} (a gap)"));
                i += 1;
            }
            (_, Some(s)) => {
                diffs.push(format!("saw {s}, which is not in the history"));
                j += 1;
            }
            (None, None) => break,
            (Some(_), None) => unreachable!(),
        }
    }
    let n = diffs.len();
    if n > 5 {
        diffs.truncate(5);
        diffs.push(format!("... {} more differences", n - 5));
    }
    diffs
}

/// Waits until every watcher of `ws` for which `live` is true has seen the
/// stop file, or `timeout` passed.
pub fn wait_done(ws: &[Watcher], live: impl Fn(usize) -> bool, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if ws.iter().all(|w| !live(w.node) || w.done()) {
            return;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(rev: i64, body: &str) -> Change {
        Change {
            path: "/w/x".into(),
            rev,
            body: body.into(),
            flags: 4,
        }
    }

    /// A missing change is a gap, an extra one is made up, a different
    /// body at the same rev is altered; equal streams have no difference.
    #[test]
    fn compare_names_gaps_extras_and_changes() {
        let history = [set(3, "a"), set(5, "b"), set(8, "c")];
        let refs: Vec<&Change> = history.iter().collect();
        assert!(compare(&refs, &history).is_empty());
        let diffs = compare(&refs, &[set(3, "a"), set(6, "z"), set(8, "C")]);
        assert_eq!(diffs.len(), 3, "{diffs:?}");
        assert!(
            diffs[0].contains("missed SET /w/x \"b\" at rev 5"),
            "{diffs:?}"
        );
        assert!(
            diffs[1].contains("saw SET /w/x \"z\" at rev 6, which is not"),
            "{diffs:?}"
        );
        assert!(
            diffs[2].contains("where the history has SET /w/x \"c\" at rev 8"),
            "{diffs:?}"
        );
    }

    /// A watcher is checked up to the last change it saw; one that ended
    /// early on a live node is reported, on a killed node it is not.
    #[test]
    fn a_watcher_is_checked_up_to_where_it_got() {
        let w = Watcher {
            node: 0,
            desc: "node 0".into(),
            seen: Arc::new(Mutex::new(Seen {
                changes: vec![set(3, "a")],
                ended: Some(Some("connection closed".into())),
                restarts: Vec::new(),
            })),
        };
        let history = [set(3, "a"), set(5, "b")];
        assert!(w.check(&history, false).is_empty());
        let a = w.check(&history, true);
        assert_eq!(a.len(), 1, "{a:?}");
        assert!(a[0]
            .what
            .contains("ended after 1 changes (last rev 3) with: connection closed"));
    }

    /// After a start-over the changes it was told it could not see are
    /// not a gap; one after the start-over rev is.
    #[test]
    fn a_start_over_is_not_a_gap() {
        let w = Watcher {
            node: 0,
            desc: "node 0".into(),
            seen: Arc::new(Mutex::new(Seen {
                changes: vec![set(3, "a"), set(9, "d")],
                ended: Some(None),
                restarts: vec![(3, 8)],
            })),
        };
        assert!(w
            .check(&[set(3, "a"), set(5, "b"), set(9, "d")], true)
            .is_empty());
        let a = w.check(&[set(3, "a"), set(8, "c"), set(9, "d")], true);
        assert_eq!(a.len(), 1, "{a:?}");
        assert!(
            a[0].what.contains("missed SET /w/x \"c\" at rev 8"),
            "{a:?}"
        );
    }
}
