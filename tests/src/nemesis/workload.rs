//! [`Load`]: the nemesis workload. Like [`crate::cluster::Workload`] (a
//! client thread per target node, a random mix of operations on a few
//! files, every operation recorded in a [`Recorder`]) but made for faults:
//! a client whose node is paused, cut off or dead records the operation in
//! flight as timed out, reconnects, and backs off while it cannot connect,
//! instead of failing; a linearizable read is a NOP then a GET at its rev
//! on a raw connection, each with [`OP_TIMEOUT`], so a client never blocks
//! for good on a node that cannot decide.
//!
//! Each client pauses [`THINK`] between operations. The mix: conditional
//! SETs (the last rev this client saw) 30 %, blind SETs 12 %, conditional
//! DELs 8 %, blind DELs 5 %, plain GETs 20 %, linearizable reads 25 %.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use super::anomaly::{panic_text, Anomaly, Check};
use super::probe;
use crate::cluster::{call_timeout, write_outcome, OP_TIMEOUT};
use crate::history::{Call, Op, Outcome, Recorder};
use crate::{err_of, req, value_of, RawConn, RequestExt, Verb, XorShift};

/// How long a client waits before connecting again to a node that refused.
const BACKOFF: Duration = Duration::from_millis(200);

/// A client's pause between two operations: the nodes (debug builds) and
/// the checks get the CPU they need on a 2-core machine, so that no CAL is
/// silent for `-timeout` because clients starved it.
const THINK: Duration = Duration::from_millis(10);

/// A running nemesis workload.
pub struct Load {
    recorder: Recorder,
    stop: Arc<AtomicBool>,
    acks: Arc<AtomicU64>,
    workers: Vec<Worker>,
}

/// One client: its node (for reports), where its problems arrive, its
/// thread.
struct Worker {
    node: String,
    rx: mpsc::Receiver<Vec<String>>,
    handle: thread::JoinHandle<()>,
}

/// What one client needs.
struct Cfg {
    client: usize,
    addr: SocketAddr,
    paths: Vec<String>,
    seed: u64,
    recorder: Recorder,
    stop: Arc<AtomicBool>,
    acks: Arc<AtomicU64>,
}

impl Load {
    /// Starts one client per `(description, address)` of `targets` (client
    /// ids 0, 1, ...), on `paths`, recording into `recorder`. `seed` makes
    /// each client's choices reproducible.
    pub fn start(
        recorder: &Recorder,
        targets: &[(String, SocketAddr)],
        paths: &[String],
        seed: u64,
    ) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let acks = Arc::new(AtomicU64::new(0));
        let workers = targets
            .iter()
            .enumerate()
            .map(|(client, (node, addr))| {
                let cfg = Cfg {
                    client,
                    addr: *addr,
                    paths: paths.to_vec(),
                    seed: seed ^ (client as u64 + 1).wrapping_mul(0x9E37_79B9),
                    recorder: recorder.clone(),
                    stop: stop.clone(),
                    acks: acks.clone(),
                };
                let (tx, rx) = mpsc::channel();
                // Detached: a client blocked on a node ends when the node
                // is killed, even if the test unwinds first.
                let handle = thread::spawn(move || {
                    let _ = tx.send(run(cfg));
                });
                Worker {
                    node: node.clone(),
                    rx,
                    handle,
                }
            })
            .collect();
        Load {
            recorder: recorder.clone(),
            stop,
            acks,
            workers,
        }
    }

    /// Successful SETs so far.
    pub fn acked(&self) -> u64 {
        self.acks.load(Ordering::SeqCst)
    }

    /// Waits up to `timeout` until `n` more SETs than now have succeeded.
    pub fn progressed(&self, n: u64, timeout: Duration) -> bool {
        let from = self.acked();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.acked() >= from + n {
                return true;
            }
            thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Stops the clients and returns the history, with an anomaly per
    /// refused plain read and per client still busy [`OP_TIMEOUT`] × 3
    /// after being told to stop (its operation in flight stays timed out).
    pub fn finish(mut self) -> (Vec<Op>, Vec<Anomaly>) {
        self.stop.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + OP_TIMEOUT * 3;
        let mut anomalies = Vec::new();
        for (k, w) in std::mem::take(&mut self.workers).into_iter().enumerate() {
            let left = deadline.saturating_duration_since(Instant::now());
            match w.rx.recv_timeout(left) {
                Ok(problems) => {
                    let _ = w.handle.join();
                    for p in problems {
                        anomalies.push(Anomaly::at(Check::ReadRefused, &w.node, p));
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => anomalies.push(Anomaly::at(
                    Check::ClientStuck,
                    &w.node,
                    format!(
                        "client {k} still waiting for an answer {:?} after the stop",
                        OP_TIMEOUT * 3
                    ),
                )),
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let why = w.handle.join().err().map(|p| panic_text(p.as_ref()));
                    anomalies.push(Anomaly::at(
                        Check::Harness,
                        &w.node,
                        format!("workload client {k} panicked: {why:?}"),
                    ));
                }
            }
        }
        (self.recorder.history(), anomalies)
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// One client's loop; returns the refused plain reads it saw.
fn run(cfg: Cfg) -> Vec<String> {
    let mut rng = XorShift::new(cfg.seed);
    let mut conn: Option<RawConn> = None;
    let mut seen: BTreeMap<String, i64> = BTreeMap::new();
    let mut problems = Vec::new();
    let mut k = 0u64;
    while !cfg.stop.load(Ordering::SeqCst) {
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match probe::connect(cfg.addr) {
                Ok(c) => conn.insert(c),
                Err(_) => {
                    thread::sleep(BACKOFF);
                    continue;
                }
            },
        };
        thread::sleep(THINK);
        k += 1;
        let path = cfg.paths[rng.below(cfg.paths.len() as u64) as usize].clone();
        let last = *seen.get(&path).unwrap_or(&0);
        let dice = rng.below(100);
        let ok = match dice {
            0..=41 => {
                let cond = if dice < 30 { last } else { -1 };
                let body = format!("c{}-{k}", cfg.client).into_bytes();
                set(&cfg, c, &path, cond, body, &mut seen)
            }
            42..=54 => del(&cfg, c, &path, if dice < 50 { last } else { -1 }, &mut seen),
            55..=74 => get(&cfg, c, &path, &mut seen, &mut problems),
            _ => lin_get(&cfg, c, &path, &mut seen),
        };
        if !ok {
            // No answer in time: start over on a fresh connection, so a
            // late answer cannot be taken for another request's.
            conn = None;
        }
    }
    problems
}

/// A SET; false if no answer came in time (the outcome is unknown).
fn set(
    cfg: &Cfg,
    c: &mut RawConn,
    path: &str,
    cond: i64,
    body: Vec<u8>,
    seen: &mut BTreeMap<String, i64>,
) -> bool {
    let call = Call::Set {
        path: path.into(),
        cond_rev: cond,
        body: body.clone(),
    };
    let op = cfg.recorder.invoke(cfg.client, call);
    let request = req(Verb::Set).path(path).rev(cond).value(&body);
    let Some(r) = call_timeout(c, request, OP_TIMEOUT) else {
        return false;
    };
    match write_outcome(&r, Outcome::Rev(r.rev.unwrap_or(0))) {
        Some(Outcome::Rev(at)) => {
            seen.insert(path.into(), at);
            cfg.acks.fetch_add(1, Ordering::SeqCst);
            op.complete(Outcome::Rev(at));
        }
        Some(other) => op.complete(other),
        None => drop(op),
    }
    true
}

/// A DEL; false if no answer came in time.
fn del(
    cfg: &Cfg,
    c: &mut RawConn,
    path: &str,
    cond: i64,
    seen: &mut BTreeMap<String, i64>,
) -> bool {
    let call = Call::Del {
        path: path.into(),
        cond_rev: cond,
    };
    let op = cfg.recorder.invoke(cfg.client, call);
    let Some(r) = call_timeout(c, req(Verb::Del).path(path).rev(cond), OP_TIMEOUT) else {
        return false;
    };
    match write_outcome(&r, Outcome::Deleted) {
        Some(Outcome::Deleted) => {
            seen.insert(path.into(), 0);
            op.complete(Outcome::Deleted);
        }
        Some(other) => op.complete(other),
        None => drop(op),
    }
    true
}

/// A plain GET; false if no answer came in time. An error answer is
/// recorded as refused and reported.
fn get(
    cfg: &Cfg,
    c: &mut RawConn,
    path: &str,
    seen: &mut BTreeMap<String, i64>,
    problems: &mut Vec<String>,
) -> bool {
    let op = cfg
        .recorder
        .invoke(cfg.client, Call::Get { path: path.into() });
    let Some(r) = call_timeout(c, req(Verb::Get).path(path), OP_TIMEOUT) else {
        return false;
    };
    if let Some(code) = err_of(&r) {
        problems.push(format!(
            "plain GET {path} (client {}) answered {code:?} {:?}",
            cfg.client, r.err_detail
        ));
        op.complete(Outcome::Refused(format!("{code:?}")));
        return true;
    }
    let rev = r.rev.unwrap_or(0);
    seen.insert(path.into(), rev);
    op.complete(Outcome::Read {
        body: value_of(&r),
        rev,
    });
    true
}

/// A linearizable read: NOP, then GET at the NOP's rev; false if either
/// got no answer in time. An error (a slave's READONLY, TOO_LATE) is a
/// refused read.
fn lin_get(cfg: &Cfg, c: &mut RawConn, path: &str, seen: &mut BTreeMap<String, i64>) -> bool {
    let op = cfg
        .recorder
        .invoke(cfg.client, Call::LinGet { path: path.into() });
    let Some(nop) = call_timeout(c, req(Verb::Nop), OP_TIMEOUT) else {
        return false;
    };
    if let Some(code) = err_of(&nop) {
        op.complete(Outcome::Refused(format!("NOP: {code:?}")));
        return true;
    }
    let at = nop.rev.unwrap_or(0);
    let Some(r) = call_timeout(c, req(Verb::Get).path(path).rev(at), OP_TIMEOUT) else {
        return false;
    };
    if let Some(code) = err_of(&r) {
        op.complete(Outcome::Refused(format!("GET at {at}: {code:?}")));
        return true;
    }
    let rev = r.rev.unwrap_or(0);
    seen.insert(path.into(), rev);
    op.complete(Outcome::ReadAt {
        at,
        body: value_of(&r),
        rev,
    });
    true
}
