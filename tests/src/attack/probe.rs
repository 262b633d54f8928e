//! A fresh client while an attack runs: [`Prober`] opens a new connection
//! for every GET (as a client arriving during the attack would), one
//! every [`PACE`], and records how long each took to be answered.

use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::{req, RawConn, Recv, RequestExt, Verb};

/// The file the prober reads (written by [`super::populate`] or by the
/// prober itself).
pub const PROBE_PATH: &str = "/probe";
/// The file the prober writes, when it writes.
const PROBE_WRITE_PATH: &str = "/probe-w";
/// How long a probe waits for its answer before it counts as a timeout.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time between the end of one probe and the start of the next: the
/// prober measures, it must not load the node itself.
const PACE: Duration = Duration::from_millis(20);

/// Latencies of a fresh client's requests, in milliseconds.
#[derive(Debug, Clone, Default)]
pub struct Latencies {
    /// GETs answered (connecting included), in the order they were made.
    pub get_ms: Vec<f64>,
    /// SETs answered, when the prober writes.
    pub set_ms: Vec<f64>,
    /// Probes not answered within [`PROBE_TIMEOUT`] (each counts as that
    /// long in the quantiles).
    pub timeouts: usize,
    /// Probes that failed otherwise (refused, closed, an error answer).
    pub failures: Vec<String>,
}

/// The `q` quantile (0..=1) of `v` (nearest rank), with `extra` values
/// of `fill` added; `None` if there is none.
fn quantile(v: &[f64], extra: usize, fill: f64, q: f64) -> Option<f64> {
    let mut all: Vec<f64> = v.to_vec();
    all.resize(all.len() + extra, fill);
    if all.is_empty() {
        return None;
    }
    all.sort_by(f64::total_cmp);
    let rank = ((q * all.len() as f64).ceil() as usize).clamp(1, all.len());
    Some(all[rank - 1])
}

impl Latencies {
    /// The `q` quantile of the GETs (timeouts count as
    /// [`PROBE_TIMEOUT`]).
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let fill = PROBE_TIMEOUT.as_secs_f64() * 1000.0;
        quantile(&self.get_ms, self.timeouts, fill, q)
    }

    /// The `q` quantile of the SETs.
    pub fn set_quantile(&self, q: f64) -> Option<f64> {
        quantile(&self.set_ms, 0, 0.0, q)
    }

    /// The slowest GET (a timeout counts as [`PROBE_TIMEOUT`]).
    pub fn max(&self) -> Option<f64> {
        self.quantile(1.0)
    }

    /// The slowest of every GET and SET, as a duration.
    pub fn slowest(&self) -> Duration {
        let get = self.max().unwrap_or(0.0);
        let set = self.set_quantile(1.0).unwrap_or(0.0);
        Duration::from_secs_f64(get.max(set) / 1000.0)
    }

    /// `N` probes, and timeouts and failures if any.
    pub fn summary(&self) -> String {
        let mut s = format!("{}", self.get_ms.len() + self.timeouts);
        if self.timeouts > 0 {
            s.push_str(&format!(", **{} timed out**", self.timeouts));
        }
        if !self.failures.is_empty() {
            s.push_str(&format!(", **{} failed**", self.failures.len()));
        }
        s
    }
}

/// A fresh client in a loop on its own thread until [`Prober::finish`].
pub struct Prober {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Latencies>,
}

impl Prober {
    /// Starts probing the node at `addr`: each probe connects anew and
    /// GETs [`PROBE_PATH`] (after a SET of another file on the same
    /// connection, if `writes`).
    pub fn start(addr: SocketAddr, writes: bool) -> Prober {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = thread::spawn(move || {
            let mut lat = Latencies::default();
            let mut n = 0u64;
            while !flag.load(Ordering::Relaxed) {
                probe_once(addr, writes, n, &mut lat);
                n += 1;
                thread::sleep(PACE);
            }
            lat
        });
        Prober { stop, handle }
    }

    /// Stops the loop (after the probe in flight) and returns what it saw.
    pub fn finish(self) -> Latencies {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().expect("prober thread panicked")
    }
}

/// One request on `c` (already connected, connect time in `started`):
/// its latency in ms, or what went wrong (`Err(None)`: a timeout).
fn timed(c: &mut RawConn, r: crate::Request, started: Instant) -> Result<f64, Option<String>> {
    let tag = r.tag;
    c.send(&r);
    let left = PROBE_TIMEOUT.saturating_sub(started.elapsed());
    match c.recv_any(left) {
        Recv::Response(resp) if resp.err_code.is_none() && resp.tag == tag => {
            Ok(started.elapsed().as_secs_f64() * 1000.0)
        }
        Recv::Response(resp) => Err(Some(format!("answered {resp:?}"))),
        Recv::Timeout => Err(None),
        other => Err(Some(format!("{other:?}"))),
    }
}

/// Files one probe's outcome in `lat` (with the SETs if `set`).
fn record(res: Result<f64, Option<String>>, set: bool, lat: &mut Latencies) {
    match res {
        Ok(ms) if set => lat.set_ms.push(ms),
        Ok(ms) => lat.get_ms.push(ms),
        Err(None) => lat.timeouts += 1,
        Err(Some(e)) => lat.failures.push(e),
    }
}

/// One probe: a new connection, a SET if `writes`, a GET.
fn probe_once(addr: SocketAddr, writes: bool, n: u64, lat: &mut Latencies) {
    let started = Instant::now();
    let stream = match TcpStream::connect_timeout(&addr, PROBE_TIMEOUT) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return lat.timeouts += 1,
        Err(e) => return lat.failures.push(format!("connect: {e}")),
    };
    let mut c = RawConn::from_stream(stream);
    if writes {
        let body = n.to_string();
        let set = req(Verb::Set)
            .path(PROBE_WRITE_PATH)
            .rev(-1)
            .value(body.as_bytes())
            .tag(1);
        let res = timed(&mut c, set, started);
        let ok = res.is_ok();
        record(res, true, lat);
        if !ok {
            return;
        }
    }
    let started = Instant::now();
    let res = timed(&mut c, req(Verb::Get).path(PROBE_PATH).tag(2), started);
    record(res, false, lat);
}
