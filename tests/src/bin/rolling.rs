//! `rolling`: the longest time writes stall during a rolling restart
//! (run it through `scripts/bench-rolling`, which builds the release
//! binaries and stops whatever it started).
//!
//! ```text
//! rolling [RUNS]     RUNS rolling restarts (default 3), each on a fresh cluster
//! ```
//!
//! `$ROLLING_ARGS`: more doozerd flags for every node, split on blanks
//! (e.g. `-fill 0.05`, to see how the stall follows `-fill`).
//!
//! Each run: a fresh 3-CAL cluster of the binaries next to this one (or in
//! `$DOOZER_BIN_DIR`), one client writing new files one after another
//! through the client library (`doozer_tests::rolling::Writer`, its URI
//! naming the three addresses), 2 s of writes without restarts (the
//! baseline), then each CAL in turn: SIGTERM, exit 0, a replacement on its
//! address attaching with `-a` and taking the freed slot, `doozer status`
//! exit 0 (docs/cluster.md, "Leaving gracefully"); then 1 s more of
//! writes. Prints, per run and restarted CAL, the longest gap between two
//! acknowledged writes from its SIGTERM until `doozer status` exited 0,
//! and where the time of that step went; then a Markdown summary.
//! Exits 1 if a write failed, a replacement did not come up, or a gap
//! exceeded the 1 s target (docs/cluster.md, "Leaving gracefully": a
//! rolling restart never stalls writes for more than a second).

use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};

use doozer_tests::cluster::Cluster;
use doozer_tests::rolling::{assert_all_present, restart_cal, wait_healthy, Step, Writer};

/// The target (docs/cluster.md, "Leaving gracefully") for the longest
/// stall per restarted CAL.
const TARGET: Duration = Duration::from_secs(1);

/// What one restarted CAL of one run measured.
struct Measured {
    step: Step,
    gap: Duration,
    /// When the longest gap ended, after the SIGTERM.
    gap_end: Duration,
}

/// Milliseconds, one decimal.
fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

/// One rolling restart on a fresh cluster: the baseline's longest gap,
/// each CAL's, the writes acknowledged and the writes failed.
fn run(n: usize, args: &[&str]) -> (Duration, Vec<Measured>, usize, usize) {
    let mut c = Cluster::start(3, args);
    let addrs: Vec<String> = (0..3).map(|i| c.d(i).addr().to_string()).collect();
    let uri = format!("doozer:?ca={}&ca={}&ca={}", addrs[0], addrs[1], addrs[2]);
    wait_healthy(&uri);
    let w = Writer::start(&uri, &format!("/bench-rolling/{n}"));
    let quiet_from = Instant::now();
    thread::sleep(Duration::from_secs(2));
    let quiet_to = Instant::now();
    let mut cals = [0, 1, 2];
    let mut steps = Vec::new();
    for k in 0..3 {
        let to = cals[(k + 1) % 3];
        let (new, step) = restart_cal(&mut c, cals[k], to, &uri);
        cals[k] = new;
        steps.push(step);
    }
    thread::sleep(Duration::from_secs(1));
    let log = w.finish();
    assert_all_present(&mut c, &log);
    let baseline = log
        .longest_gap(quiet_from, quiet_to)
        .map_or(Duration::ZERO, |(d, _)| d);
    let measured = steps
        .into_iter()
        .map(|step| {
            let (gap, end) = log
                .longest_gap(step.term, step.healthy)
                .unwrap_or((Duration::MAX, step.term));
            Measured {
                step,
                gap,
                gap_end: end.saturating_duration_since(step.term),
            }
        })
        .collect();
    for f in &log.failed {
        eprintln!("run {n}: write {} failed: {}", f.path, f.error);
    }
    (baseline, measured, log.acked.len(), log.failed.len())
}

fn main() -> ExitCode {
    let runs: usize = match std::env::args().nth(1).map(|a| a.parse()) {
        None => 3,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("usage: rolling [RUNS]");
            return ExitCode::from(2);
        }
    };
    let extra = std::env::var("ROLLING_ARGS").unwrap_or_default();
    let args: Vec<&str> = extra.split_whitespace().collect();
    let mut all = Vec::new();
    let mut ok = true;
    println!("| run | CAL | longest gap ms | it ended, ms after SIGTERM | exit after SIGTERM ms | replacement up ms | writable ms | status 0 ms |");
    println!("|---|---|---|---|---|---|---|---|");
    let mut totals = (0, 0);
    let mut baselines = Vec::new();
    for n in 1..=runs {
        let (baseline, measured, acked, failed) = run(n, &args);
        totals.0 += acked;
        totals.1 += failed;
        ok &= failed == 0;
        baselines.push(baseline);
        for (k, m) in measured.iter().enumerate() {
            let s = m.step;
            println!(
                "| {n} | {k} | {} | {} | {} | {} | {} | {} |",
                ms(m.gap),
                ms(m.gap_end),
                ms(s.exited - s.term),
                ms(s.started - s.exited),
                ms(s.writable - s.started),
                ms(s.healthy - s.writable),
            );
            ok &= m.gap <= TARGET;
            all.push(m.gap);
        }
    }
    all.sort();
    baselines.sort();
    let max = all.last().copied().unwrap_or_default();
    let median = all.get(all.len() / 2).copied().unwrap_or_default();
    println!();
    println!(
        "{runs} runs, {} restarted CALs: longest gap per CAL median {} ms, max {} ms (target {} ms); \
         without restarts (2 s per run) max {} ms; {} writes acknowledged, {} failed",
        all.len(),
        ms(median),
        ms(max),
        ms(TARGET),
        ms(baselines.last().copied().unwrap_or_default()),
        totals.0,
        totals.1
    );
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
