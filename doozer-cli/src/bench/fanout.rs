//! Watch mode and SSE mode: one writer SETs at a fixed rate while the
//! followers follow; the report says how long each write took to reach
//! every follower.

use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use doozer::{Error, Pipeline, Response, Verb};

use crate::failure::Failure;
use crate::hist::Histogram;

use super::followers::{follow, FollowConn, SSE_DIR, WATCH_DIR};
use super::opts::{default_web, Op, Opts};
use super::stats::{progress, ArrivalLog, LoadStats};
use super::target::{request, Target};

/// A completed write: its rev, when it was sent and when its ack came.
struct Write_ {
    rev: i64,
    sent: Instant,
    acked: Instant,
}

/// SETs `<dir>/kN` at `o.rate` per second for `o.duration` (or `o.ops`
/// writes), counting acks in `count`.
fn writer(
    p: &mut Pipeline,
    o: &Opts,
    dir: &str,
    count: &AtomicU64,
) -> Result<(Vec<Write_>, LoadStats), Error> {
    let writes_total = o
        .ops
        .unwrap_or_else(|| (o.rate * o.duration.as_secs_f64()).ceil() as u64)
        .max(1);
    let interval = Duration::from_secs_f64(1.0 / o.rate);
    let value = Bytes::from(vec![b'w'; o.size]);
    let mut pending: HashMap<i32, Instant> = HashMap::new();
    let mut writes = Vec::new();
    let mut stats = LoadStats::default();
    let start = Instant::now();
    let mut ack_deadline = None;
    let mut i = 0u64;
    while i < writes_total || !pending.is_empty() {
        let now = Instant::now();
        let wait = if i < writes_total {
            let due = start + interval.mul_f64(i as f64);
            if now >= due {
                let tag = (i % i32::MAX as u64) as i32;
                let mut r = request(Verb::Set, tag);
                r.path = Some(format!("{dir}/k{}", i % o.keys));
                r.rev = Some(doozer::rev::CLOBBER);
                r.value = Some(value.clone());
                p.send(&r);
                p.flush()?;
                pending.insert(tag, Instant::now());
                i += 1;
                continue;
            }
            due - now
        } else {
            // Acks outstanding after the last write get 10 s to arrive.
            let d = *ack_deadline.get_or_insert(now + Duration::from_secs(10));
            if now >= d {
                stats.errors += pending.len() as u64;
                stats
                    .first_error
                    .get_or_insert_with(|| "write acks timed out".into());
                break;
            }
            d - now
        };
        if let Some(resp) = p.recv_timeout(wait)? {
            let acked = Instant::now();
            let Some(sent) = resp.tag.and_then(|t| pending.remove(&t)) else {
                // Not an answer to a write in flight: a server fault,
                // counted and reported like in get/set mode.
                stats.stray += 1;
                stats.first_stray.get_or_insert(resp.tag);
                continue;
            };
            count.fetch_add(1, Ordering::Relaxed);
            match Error::check(resp) {
                Ok(r) => {
                    let rev = r.rev.unwrap_or_default();
                    stats
                        .hist
                        .record(acked.duration_since(sent).as_micros() as u64);
                    writes.push(Write_ { rev, sent, acked });
                }
                Err(e) => stats.note_error(e),
            }
        }
    }
    Ok((writes, stats))
}

/// The store's current rev, asked on `p`.
fn rev_of(p: &mut Pipeline) -> Result<i64, Error> {
    p.send(&request(Verb::Rev, 0));
    p.flush()?;
    let resp: Response = Error::check(p.recv()?)?;
    Ok(resp.rev.unwrap_or_default())
}

/// Watch mode and SSE mode: `followers` connections follow the changes
/// under `dir` (the closure opens one) on the nodes of `t` while one
/// writer writes there at a fixed rate, on the first node of `writes`;
/// reports how long each write took to reach every follower.
pub(super) fn follow_bench(t: &Target, writes: &Target, o: &Opts) -> Result<(), Failure> {
    let mut w = writes.open(0)?;
    let from = rev_of(&mut w)? + 1;
    let web = o.web.clone().unwrap_or_else(|| default_web(t.addr(0)));
    let events_path = format!("/$events{SSE_DIR}/");
    // What is measured, and the words the report uses for it.
    let (followers, dir, header, noun, arrived, arrivals) = match o.op {
        Op::Sse => (
            o.streams,
            SSE_DIR,
            format!("op: sse  streams: {}  web: {web}", o.streams),
            "streams",
            "delivered",
            "deliveries",
        ),
        _ => (
            o.watchers,
            WATCH_DIR,
            format!("op: watch  watchers: {}", o.watchers),
            "watchers",
            "notified",
            "notifications",
        ),
    };
    let open_watcher = |i| FollowConn::watcher(t, i, from);
    let open_stream = |_| FollowConn::event_stream(&web, &events_path);
    let open: &(dyn Fn(usize) -> Result<FollowConn, Error> + Sync) = match o.op {
        Op::Sse => &open_stream,
        _ => &open_watcher,
    };
    let ready = Barrier::new(2);
    let stop = AtomicBool::new(false);
    let done = AtomicBool::new(false);
    let count = AtomicU64::new(0);
    let last_seen: Vec<AtomicI64> = (0..followers).map(|_| AtomicI64::new(0)).collect();
    let started = Instant::now();
    let mut setup = Duration::ZERO;
    let (written, logs) = thread::scope(|s| {
        let following = s.spawn(|| follow(open, &ready, &stop, &last_seen));
        ready.wait();
        setup = started.elapsed();
        let label = if o.op == Op::Sse {
            "sse writes"
        } else {
            "watch writes"
        };
        let progress = s.spawn(|| progress(label, &count, &done));
        let written = writer(&mut w, o, dir, &count);
        done.store(true, Ordering::Relaxed);
        let _ = progress.join();
        // Give late arrivals up to `grace`.
        if let Ok((writes, _)) = &written {
            let max_rev = writes.iter().map(|w| w.rev).max().unwrap_or(0);
            let deadline = Instant::now() + o.grace;
            while Instant::now() < deadline
                && last_seen
                    .iter()
                    .any(|l| l.load(Ordering::Relaxed) < max_rev)
            {
                thread::sleep(Duration::from_millis(10));
            }
        }
        stop.store(true, Ordering::Relaxed);
        let logs: Vec<ArrivalLog> = following.join().unwrap_or_else(|_| {
            (0..followers)
                .map(|_| ArrivalLog::failed("follower thread panicked".into()))
                .collect()
        });
        (written, logs)
    });
    let (writes, wstats) = written?;
    let words = Words {
        header,
        noun,
        arrived,
        arrivals,
    };
    let elapsed = started.elapsed().as_secs_f64();
    let tally = Tally::of(&logs, &writes);
    report(o, &words, followers, setup, elapsed, &writes, wstats, tally)
}

/// How the report names what was measured.
struct Words {
    header: String,
    noun: &'static str,
    arrived: &'static str,
    arrivals: &'static str,
}

/// What the followers saw of the writes.
struct Tally {
    ack_to_arrived: Histogram,
    send_to_arrived: Histogram,
    missed: u64,
    duplicated: u64,
    failed: u64,
    first_error: Option<String>,
}

impl Tally {
    fn of(logs: &[ArrivalLog], writes: &[Write_]) -> Tally {
        let mut t = Tally {
            ack_to_arrived: Histogram::default(),
            send_to_arrived: Histogram::default(),
            missed: 0,
            duplicated: 0,
            failed: 0,
            first_error: None,
        };
        for log in logs {
            t.duplicated += log.duplicates;
            if let Some(e) = &log.error {
                t.failed += 1;
                t.first_error.get_or_insert_with(|| e.clone());
            }
            for w in writes {
                match log.seen.get(&w.rev) {
                    Some(at) => {
                        // Clamped at 0: the arrival may beat the ack.
                        let ack = at.saturating_duration_since(w.acked).as_micros() as u64;
                        let send = at.saturating_duration_since(w.sent).as_micros() as u64;
                        t.ack_to_arrived.record(ack);
                        t.send_to_arrived.record(send);
                    }
                    None => t.missed += 1,
                }
            }
        }
        t
    }
}

/// Prints the report; an error when a follower missed anything.
#[allow(clippy::too_many_arguments)] // the parts of one report
fn report(
    o: &Opts,
    words: &Words,
    followers: usize,
    setup: Duration,
    elapsed: f64,
    writes: &[Write_],
    wstats: LoadStats,
    tally: Tally,
) -> Result<(), Failure> {
    let Words {
        header,
        noun,
        arrived,
        arrivals,
    } = words;
    let Tally {
        ack_to_arrived,
        send_to_arrived,
        missed,
        duplicated,
        failed,
        first_error,
    } = tally;
    let h = &wstats.hist;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{header}  rate: {}/s  size: {}  keys: {}",
        o.rate, o.size, o.keys
    )?;
    writeln!(
        out,
        "ready: {} {noun} in {:.3} s",
        followers as u64 - failed,
        setup.as_secs_f64()
    )?;
    writeln!(
        out,
        "writes: {}  seconds: {elapsed:.3}  write errors: {}",
        writes.len(),
        wstats.errors
    )?;
    writeln!(
        out,
        "send->ack µs: p50 {} p99 {} max {}",
        h.quantile(0.5),
        h.quantile(0.99),
        h.max()
    )?;
    writeln!(
        out,
        "ack->{arrived} µs: p50 {} p99 {} max {}",
        ack_to_arrived.quantile(0.5),
        ack_to_arrived.quantile(0.99),
        ack_to_arrived.max()
    )?;
    writeln!(
        out,
        "send->{arrived} µs: p50 {} p99 {}",
        send_to_arrived.quantile(0.5),
        send_to_arrived.quantile(0.99)
    )?;
    writeln!(out, "{arrivals}: {}", ack_to_arrived.count())?;
    writeln!(out, "missed: {missed} duplicated: {duplicated}")?;
    writeln!(out, "failed {noun}: {failed}")?;
    if let Some(e) = wstats.first_error {
        eprintln!("first write error: {e}");
    }
    if let Some(e) = first_error {
        eprintln!("{failed} {noun} failed, first: {e}");
    }
    if wstats.stray > 0 {
        writeln!(out, "stray responses: {}", wstats.stray)?;
    }
    // The report is printed either way; the exit status tells a script
    // whether every change reached every follower.
    if missed > 0 || duplicated > 0 || failed > 0 || wstats.stray > 0 {
        return Err(Failure::Other(format!(
            "{missed} missed, {duplicated} duplicated, {failed} {noun} failed, {} stray responses",
            wstats.stray
        )));
    }
    Ok(())
}
