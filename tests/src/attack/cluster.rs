//! Item 4 on a cluster: expensive requests flooding one CAL of three
//! must not get it kicked (a CAL the others do not hear from for
//! `-timeout` is), and writes through the others must go on.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use super::hostile::{drain, frames, Tally};
use super::{measured, populate, Latencies, Report, PROBE_TIMEOUT};
use crate::cluster::{call_timeout, Cluster, CLUSTER_DEADLINE};
use crate::{req, RawConn, RequestExt, Verb};

/// What a flood of one CAL did to its cluster.
#[derive(Debug, Clone, Default)]
pub struct ClusterFlood {
    /// The flooded CAL's measures.
    pub report: Report,
    /// The CAL slots before the flood and after it (as the flooded node's
    /// neighbour sees them, once it has every change of the flood).
    pub slots_before: BTreeMap<String, String>,
    /// ... and after.
    pub slots_after: BTreeMap<String, String>,
    /// SETs through another CAL during the flood (their latencies in
    /// `set_ms`; timeouts and errors counted).
    pub writes: Latencies,
    /// Lines any node logged about kicking a CAL.
    pub kick_lines: Vec<String>,
}

/// A cluster of three CALs with `args`, whose store holds `files` small
/// files (written on the seed before the others attach and take slots
/// 1 and 2: a lone CAL writes fast).
pub fn flood_cluster(args: &[&str], files: usize) -> Cluster {
    let mut c = Cluster::seed(args);
    populate(c.d(0), "walk", files, 16);
    for slot in 1..3 {
        let i = c.attach(0, &[]);
        c.add_slot(0, slot);
        let path = c.wait_cal(i);
        assert_eq!(
            path,
            format!("/ctl/cal/{slot}"),
            "node {i} took another slot"
        );
    }
    c
}

/// Floods CAL `target` of `c` (built by [`flood_cluster`] with `files`
/// files) from `conns` connections, each sending bursts of 100 pipelined
/// `WALK /**` at the offset of the last file (a whole walk each) and
/// reading the answers, for `dur`; meanwhile a fresh client probes the
/// target and another CAL takes SETs.
pub fn walk_flood_cluster(
    c: &mut Cluster,
    target: usize,
    files: usize,
    conns: usize,
    dur: Duration,
) -> ClusterFlood {
    let other = (target + 1) % 3;
    let mut out = ClusterFlood {
        slots_before: c.slots(other),
        ..Default::default()
    };
    let addr = c.d(target).addr();
    let writer = Writer::start(c.d(other).addr());
    let what = format!(
        "{conns} connections × bursts of 100 `WALK /**` at offset {files} on one CAL of 3, \
         for {dur:?}; {files} files"
    );
    out.report = measured(&mut c.nodes[target].d, "walk-3cal", what, false, |rep| {
        let flooders: Vec<_> = (0..conns)
            .map(|_| thread::spawn(move || flood(addr, files as i32, dur)))
            .collect();
        for f in flooders {
            for (k, n) in f.join().expect("flood thread") {
                *rep.answers.entry(k).or_default() += n;
            }
        }
        let n: usize = rep.answers.values().sum();
        rep.notes.push(format!("{n} WALKs answered"));
    });
    out.writes = writer.finish();
    // Every change of the flood (a kick included) is in the neighbour's
    // store once a write made after it is.
    let rev = c.writer(other).must_set("/flood-done", -1, b"");
    let get = req(Verb::Get).path("/flood-done").rev(rev);
    let caught_up = call_timeout(&mut c.d(target).raw(), get, CLUSTER_DEADLINE);
    if caught_up.as_ref().is_none_or(|r| r.err_code.is_some()) {
        out.report.alive = false;
        let why = format!("the flooded CAL did not reach rev {rev}: {caught_up:?}");
        out.report.notes.push(why);
    }
    out.slots_after = c.slots(other);
    out.kick_lines = (0..c.nodes.len())
        .flat_map(|i| {
            c.d(i)
                .stderr()
                .lines()
                .filter(|l| l.contains("kicking CAL"))
                .map(|l| format!("node {i}: {l}"))
                .collect::<Vec<_>>()
        })
        .collect();
    out
}

/// One flooding connection: bursts of WALKs at `offset` until `dur` has
/// passed; what they were answered.
fn flood(addr: std::net::SocketAddr, offset: i32, dur: Duration) -> Tally {
    let burst = 100;
    let walk = req(Verb::Walk).path("/**").offset(offset);
    let reqs: Vec<_> = (1..=burst).map(|t| walk.clone().tag(t)).collect();
    let bytes = frames(&reqs);
    let mut c = RawConn::connect(addr);
    let mut tally = Tally::new();
    let started = Instant::now();
    while started.elapsed() < dur {
        c.send_bytes(&bytes);
        let goal = tally.values().sum::<usize>() + burst as usize;
        drain(
            &mut c,
            &mut tally,
            |t| t.values().sum::<usize>() >= goal,
            PROBE_TIMEOUT,
            PROBE_TIMEOUT,
        );
        if tally.values().sum::<usize>() < goal {
            break;
        }
    }
    tally
}

/// SETs in a loop through one node, on one connection, until finished.
struct Writer {
    stop: Arc<AtomicBool>,
    handle: thread::JoinHandle<Latencies>,
}

impl Writer {
    fn start(addr: std::net::SocketAddr) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = thread::spawn(move || {
            let mut lat = Latencies::default();
            let mut c = RawConn::connect(addr);
            let mut n = 0u64;
            while !flag.load(Ordering::Relaxed) {
                n += 1;
                let set = req(Verb::Set)
                    .path("/flood-w")
                    .rev(-1)
                    .value(n.to_string().as_bytes());
                let started = Instant::now();
                match call_timeout(&mut c, set, PROBE_TIMEOUT) {
                    Some(r) if r.err_code.is_none() => {
                        lat.set_ms.push(started.elapsed().as_secs_f64() * 1000.0)
                    }
                    Some(r) => lat.failures.push(format!("{r:?}")),
                    None => {
                        lat.timeouts += 1;
                        c = RawConn::connect(addr);
                    }
                }
                thread::sleep(Duration::from_millis(10));
            }
            lat
        });
        Writer { stop, handle }
    }

    fn finish(self) -> Latencies {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().expect("writer thread panicked")
    }
}
