//! Graceful leave and rolling restarts under a writer (docs/cluster.md,
//! "Leaving gracefully"): a [`Writer`] thread that writes through the
//! client library and records every acknowledged write and every
//! failure, and the operator's rolling-restart step
//! ([`restart_cal`]): SIGTERM a CAL, wait for exit 0, start its
//! replacement on the same address with `-a`, wait until it is a writable
//! CAL and `doozer status` exits 0.
//!
//! Used by `tests/rolling.rs` (correctness: nothing fails, nothing is
//! lost) and by the `rolling` runner behind `scripts/bench-rolling`
//! (figures: the longest gap between two acknowledged writes).
//!
//! **What "fails" means for the writer.** Each SET goes through
//! [`doozer::Client::set`] exactly once, as an application would call it:
//! the library may send it on to a CAL by itself (a refusal with
//! `READONLY` is sent to another CAL, docs/reference.md#writes-through-a-slave),
//! but the writer never retries. Any error the call returns, whatever its
//! kind (a connection error: the outcome is unknown; `READONLY` after no
//! CAL took it; "outcome unknown"; a rev mismatch), is a failed write, and
//! is recorded with its message: a refused write is never lost silently.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

/// Sends a signal to a process the test started (kept here for callers
/// of the rolling helpers).
pub use crate::cluster::signal;
use crate::cluster::{Cluster, State, CLUSTER_DEADLINE};
use crate::{doozer_with, err_of, poll_until, req, value_of, CmdOutput, RequestExt, Verb};

/// The writer's log, shared with its thread.
type SharedLog = Arc<Mutex<WriterLog>>;

/// Locks the log; a panicking writer thread (poisoning) leaves a log
/// still worth reading.
fn lock(log: &SharedLog) -> MutexGuard<'_, WriterLog> {
    log.lock().unwrap_or_else(|e| e.into_inner())
}

/// One acknowledged write: the path, the rev the cluster gave it, its
/// body, and when the acknowledgement arrived.
#[derive(Debug, Clone)]
pub struct Ack {
    /// The file written (each write a new file).
    pub path: String,
    /// Its rev, as the SET's answer said.
    pub rev: i64,
    /// Its body.
    pub body: Vec<u8>,
    /// When the answer arrived.
    pub at: Instant,
}

/// One failed write: the path and the error the library returned.
#[derive(Debug, Clone)]
pub struct Failed {
    /// The file it tried to write.
    pub path: String,
    /// The error, as text.
    pub error: String,
    /// When the call returned it.
    pub at: Instant,
}

/// What a [`Writer`] did.
#[derive(Debug, Default, Clone)]
pub struct WriterLog {
    /// Every acknowledged write, in order.
    pub acked: Vec<Ack>,
    /// Every failed write, in order.
    pub failed: Vec<Failed>,
}

impl WriterLog {
    /// The longest time between two consecutive acknowledgements whose
    /// interval overlaps `[from, to]` (the first ack after `to` ends the
    /// last one), and where it ended; `None` with fewer than two acks
    /// around the window.
    pub fn longest_gap(&self, from: Instant, to: Instant) -> Option<(Duration, Instant)> {
        self.acked
            .windows(2)
            .filter(|w| w[1].at >= from && w[0].at <= to)
            .map(|w| (w[1].at - w[0].at, w[1].at))
            .max_by_key(|(d, _)| *d)
    }
}

/// A thread writing new files `PREFIX/<n>` one after another (SET at rev
/// 0: only if absent, so a write applied twice would show as a rev
/// mismatch) through one [`doozer::Client`], until stopped.
pub struct Writer {
    stop: Arc<AtomicBool>,
    log: SharedLog,
    done: mpsc::Receiver<Result<(), String>>,
}

impl Writer {
    /// Connects a client to `uri` (failing the caller if it cannot) and
    /// starts writing under `prefix`.
    pub fn start(uri: &str, prefix: &str) -> Writer {
        let client = doozer::Client::connect(uri).unwrap_or_else(|e| panic!("connect {uri}: {e}"));
        let stop = Arc::new(AtomicBool::new(false));
        let log: SharedLog = Arc::default();
        let (tx, done) = mpsc::channel();
        let (stop2, log2, prefix) = (stop.clone(), log.clone(), prefix.to_string());
        // Detached: if the test fails while the client is blocked on a
        // node, the test still unwinds and kills the nodes.
        thread::spawn(move || {
            let mut n = 0u64;
            while !stop2.load(Ordering::SeqCst) {
                n += 1;
                let path = format!("{prefix}/{n}");
                let body = format!("w{n}").into_bytes();
                let r = client.set(&path, 0, body.clone());
                let at = Instant::now();
                let mut l = lock(&log2);
                match r {
                    Ok(rev) => l.acked.push(Ack {
                        path,
                        rev,
                        body,
                        at,
                    }),
                    Err(e) => l.failed.push(Failed {
                        path,
                        error: e.to_string(),
                        at,
                    }),
                }
            }
            let _ = tx.send(Ok(()));
        });
        Writer { stop, log, done }
    }

    /// Acknowledged writes so far.
    pub fn acked(&self) -> usize {
        lock(&self.log).acked.len()
    }

    /// Waits (up to [`CLUSTER_DEADLINE`]) until `n` more writes than now
    /// are acknowledged: the writer makes progress.
    pub fn wait_progress(&self, n: usize, what: &str) {
        let from = self.acked();
        poll_until(CLUSTER_DEADLINE, what, || {
            (self.acked() >= from + n).then_some(())
        });
    }

    /// Stops the writer after its write in flight and returns its log.
    /// Panics if it does not stop within [`CLUSTER_DEADLINE`] (a write
    /// that never got an answer).
    pub fn finish(self) -> WriterLog {
        self.stop.store(true, Ordering::SeqCst);
        match self.done.recv_timeout(CLUSTER_DEADLINE) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("writer failed: {e}"),
            Err(_) => {
                panic!("the writer did not stop within {CLUSTER_DEADLINE:?}: a write got no answer")
            }
        }
        let log = lock(&self.log).clone();
        log
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Runs `doozer status` against `uri` with a generous `-t` and `-pulse`
/// (a slow machine must not make a healthy cluster look unhealthy; a
/// healthy one ends the pulse wait at its last CAL's pulse anyway).
pub fn status(uri: &str) -> CmdOutput {
    doozer_with(
        &[("DOOZER_URI", uri)],
        &["status", "-t", "10s", "-pulse", "10s"],
        b"",
    )
}

/// Waits until `doozer status` against `uri` exits 0, as the rolling
/// restart procedure of docs/cluster.md says between two nodes. Panics
/// with its last output after [`CLUSTER_DEADLINE`].
pub fn wait_healthy(uri: &str) {
    let mut last = None;
    let deadline = Instant::now() + CLUSTER_DEADLINE;
    loop {
        let out = status(uri);
        if out.code == 0 {
            return;
        }
        if Instant::now() >= deadline {
            panic!(
                "doozer status did not exit 0 within {CLUSTER_DEADLINE:?}; last: {:?}",
                last.unwrap_or(out)
            );
        }
        last = Some(out);
        thread::sleep(Duration::from_millis(100));
    }
}

/// SIGTERMs node `i` and waits for it to exit by itself; its exit code
/// (-1 if a signal ended it). The node is marked killed.
pub fn terminate(c: &mut Cluster, i: usize) -> i32 {
    signal(c.d(i).pid(), "TERM");
    let node = &mut c.nodes[i];
    let status = poll_until(CLUSTER_DEADLINE, "the node to exit after SIGTERM", || {
        node.d.try_wait()
    });
    node.state = State::Killed;
    status.code().unwrap_or(-1)
}

/// When each phase of one restarted CAL ended.
#[derive(Debug, Clone, Copy)]
pub struct Step {
    /// SIGTERM sent.
    pub term: Instant,
    /// The old process exited (0).
    pub exited: Instant,
    /// The replacement answers on the old address.
    pub started: Instant,
    /// The replacement is a writable CAL (its slot, `writable` = true).
    pub writable: Instant,
    /// `doozer status` exited 0.
    pub healthy: Instant,
}

/// One step of a rolling restart: SIGTERM CAL `i`, wait for exit 0, start
/// a replacement on its address attached (`-a`) to node `to`, wait until
/// the replacement is a writable CAL and `doozer status` (asked through
/// `status_uri`) exits 0. Returns the replacement's index and the times.
pub fn restart_cal(c: &mut Cluster, i: usize, to: usize, status_uri: &str) -> (usize, Step) {
    let port = c.d(i).port();
    let term = Instant::now();
    let code = terminate(c, i);
    assert_eq!(code, 0, "node {i} after SIGTERM:\n{}", c.d(i).stderr());
    let exited = Instant::now();
    let r = c.attach_on(to, port, &[]);
    let started = Instant::now();
    c.wait_cal(r);
    let writable = Instant::now();
    wait_healthy(status_uri);
    let healthy = Instant::now();
    (
        r,
        Step {
            term,
            exited,
            started,
            writable,
            healthy,
        },
    )
}

/// Checks that every write of `log` is on every running node of `c` now:
/// the file exists with its body, at the rev its SET was acknowledged
/// with (the writer never writes a file twice). Reads at each node's
/// head, not at the write's rev: after a rolling restart every node may
/// have copied the store after the write (docs/behaviour.md: history
/// starts at the copy). Also checks, with [`Cluster::assert_consistent`],
/// that the running nodes hold identical stores.
pub fn assert_all_present(c: &mut Cluster, log: &WriterLog) {
    c.assert_consistent(&[]);
    for i in c.running() {
        let mut conn = c.d(i).raw();
        // Pipelined in batches: thousands of one-by-one round trips would
        // make the check slower than the scenario.
        for chunk in log.acked.chunks(256) {
            let tags: Vec<i32> = chunk
                .iter()
                .map(|a| {
                    let tag = conn.tag();
                    conn.send(&req(Verb::Get).path(&a.path).tag(tag));
                    tag
                })
                .collect();
            for (a, tag) in chunk.iter().zip(tags) {
                let r = conn.recv_tag(tag);
                assert_eq!(
                    (err_of(&r), value_of(&r), r.rev),
                    (None, a.body.clone(), Some(a.rev)),
                    "acknowledged SET {} at rev {} on node {i} ({})",
                    a.path,
                    a.rev,
                    c.id(i)
                );
            }
        }
    }
    // Shown with a failure (or --nocapture).
    eprintln!(
        "{} acknowledged writes on each of {} nodes",
        log.acked.len(),
        c.running().len()
    );
}
