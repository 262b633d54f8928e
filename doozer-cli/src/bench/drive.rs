//! The load loop of get/set mode: K connections, one thread each, keep C
//! requests in flight in total; every response releases its tag for the
//! next request, and a burst of responses is answered with one write.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use doozer::{Error, Pipeline, Request};

use crate::failure::Failure;

use super::stats::{progress, LoadStats};
use super::target::Target;

/// xorshift64*: key choice only needs to be cheap and spread out.
pub(super) struct Rng(u64);

impl Rng {
    /// A number in `0..n`.
    pub(super) fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

/// When to stop issuing requests.
pub(super) struct Limit {
    /// After this many operations.
    pub(super) ops: Option<u64>,
    /// At this time.
    pub(super) deadline: Option<Instant>,
}

/// Shared by the workers of one run.
struct Run<'a> {
    target: &'a Target,
    limit: Limit,
    claimed: AtomicU64,
    completed: AtomicU64,
    make: &'a (dyn Fn(u64, &mut Rng, i32) -> Request + Sync),
}

impl Run<'_> {
    /// The sequence number of the next operation, if the run goes on.
    fn claim(&self) -> Option<u64> {
        if self.limit.deadline.is_some_and(|d| Instant::now() >= d) {
            return None;
        }
        let seq = self.claimed.fetch_add(1, Ordering::Relaxed);
        match self.limit.ops {
            Some(n) if seq >= n => None,
            _ => Some(seq),
        }
    }
}

/// Connection `conn` keeping `depth` requests in flight; tags are
/// 0..depth.
fn worker(run: &Run<'_>, conn: usize, depth: usize, seed: u64) -> Result<LoadStats, Error> {
    let mut p = run.target.open(conn)?;
    let mut rng = Rng(seed | 1);
    let mut sent_at: Vec<Option<Instant>> = vec![None; depth];
    let mut stats = LoadStats::default();
    let mut inflight = 0usize;
    let mut issue = |p: &mut Pipeline, tag: usize, sent_at: &mut [Option<Instant>]| {
        let Some(seq) = run.claim() else {
            return false;
        };
        p.send(&(run.make)(seq, &mut rng, tag as i32));
        sent_at[tag] = Some(Instant::now());
        true
    };
    for tag in 0..depth {
        if issue(&mut p, tag, &mut sent_at) {
            inflight += 1;
        }
    }
    p.flush()?;
    while inflight > 0 {
        let mut next = Some(p.recv()?);
        while let Some(resp) = next {
            let now = Instant::now();
            // A response to no request in flight on this connection (a
            // tag never sent, or one already answered) is a server fault:
            // counted and reported, and the run goes on.
            let outstanding = resp
                .tag
                .and_then(|t| usize::try_from(t).ok())
                .and_then(|t| Some((t, sent_at.get_mut(t)?.take()?)));
            let Some((tag, sent)) = outstanding else {
                stats.stray += 1;
                stats.first_stray.get_or_insert(resp.tag);
                next = p.try_recv()?;
                continue;
            };
            stats
                .hist
                .record(now.duration_since(sent).as_micros() as u64);
            stats.ops += 1;
            if let Err(e) = Error::check(resp) {
                stats.note_error(e);
            }
            run.completed.fetch_add(1, Ordering::Relaxed);
            inflight -= 1;
            if issue(&mut p, tag, &mut sent_at) {
                inflight += 1;
            }
            next = p.try_recv()?;
        }
        p.flush()?;
    }
    Ok(stats)
}

/// What a run of [`drive`] did: the totals, how long it took, and the
/// operations completed and stray responses received by the connections
/// to each address (in the order of `Target::addrs`).
pub(super) struct Driven {
    /// The counts of every connection, merged.
    pub(super) total: LoadStats,
    /// From the start of the run until every worker stopped.
    pub(super) elapsed: Duration,
    /// Operations completed, by address.
    pub(super) ops_by_addr: Vec<u64>,
    /// Stray responses, by address.
    pub(super) stray_by_addr: Vec<u64>,
}

/// Drives `conns` workers with `inflight` requests in flight in total.
pub(super) fn drive(
    target: &Target,
    conns: usize,
    inflight: usize,
    limit: Limit,
    make: &(dyn Fn(u64, &mut Rng, i32) -> Request + Sync),
    label: &str,
) -> Result<Driven, Failure> {
    let conns = conns.min(inflight);
    let run = Run {
        target,
        limit,
        claimed: AtomicU64::new(0),
        completed: AtomicU64::new(0),
        make,
    };
    let start = Instant::now();
    let done = AtomicBool::new(false);
    let results: Vec<Result<LoadStats, Error>> = thread::scope(|s| {
        let progress = s.spawn(|| progress(label, &run.completed, &done));
        let workers: Vec<_> = (0..conns)
            .map(|i| {
                let depth = inflight / conns + usize::from(i < inflight % conns);
                let run = &run;
                s.spawn(move || worker(run, i, depth, 0x9e37_79b9_7f4a_7c15 ^ (i as u64 + 1)))
            })
            .collect();
        let results = workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err(Error::Protocol("worker thread panicked".into())))
            })
            .collect();
        done.store(true, Ordering::Relaxed);
        let _ = progress.join();
        results
    });
    let elapsed = start.elapsed();
    let mut total = LoadStats::default();
    let mut ops_by_addr = vec![0; target.addrs.len()];
    let mut stray_by_addr = vec![0; target.addrs.len()];
    for (i, r) in results.into_iter().enumerate() {
        let r = r?;
        ops_by_addr[i % target.addrs.len()] += r.ops;
        stray_by_addr[i % target.addrs.len()] += r.stray;
        total.merge(r);
    }
    Ok(Driven {
        total,
        elapsed,
        ops_by_addr,
        stray_by_addr,
    })
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use bytes::BytesMut;
    use doozer::{Response, Verb};
    use doozer_proto::{encode_frame, FrameDecoder};
    use prost::Message;

    use super::*;
    use crate::bench::target::request;

    /// A node stand-in on 127.0.0.1 serving `conns` connections, each on
    /// its own thread: answers every request with its tag, after first
    /// answering a tag nobody sent if `stray`. Returns the address and the
    /// count of requests served.
    fn fake_node(conns: usize, stray: bool) -> (String, std::sync::Arc<AtomicU64>) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let served = std::sync::Arc::new(AtomicU64::new(0));
        let count = served.clone();
        thread::spawn(move || {
            for stream in l.incoming().take(conns) {
                let (mut s, count) = (stream.unwrap(), count.clone());
                thread::spawn(move || {
                    let (dec, mut rbuf, mut chunk) =
                        (FrameDecoder::default(), BytesMut::new(), [0u8; 4096]);
                    let mut stray = stray;
                    loop {
                        let mut out = BytesMut::new();
                        while let Some(f) = dec.decode(&mut rbuf).unwrap() {
                            let req = Request::decode(f).unwrap();
                            if std::mem::take(&mut stray) {
                                encode_frame(
                                    &Response {
                                        tag: Some(1 << 30),
                                        ..Default::default()
                                    },
                                    &mut out,
                                );
                            }
                            encode_frame(
                                &Response {
                                    tag: req.tag,
                                    rev: Some(1),
                                    ..Default::default()
                                },
                                &mut out,
                            );
                            count.fetch_add(1, Ordering::Relaxed);
                        }
                        if s.write_all(&out).is_err() {
                            return;
                        }
                        match s.read(&mut chunk) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => rbuf.extend_from_slice(&chunk[..n]),
                        }
                    }
                });
            }
        });
        (addr, served)
    }

    #[test]
    fn connections_go_round_robin_and_stray_answers_are_counted() {
        // Connections 0 and 2 go to the first node, 1 and 3 to the second;
        // the first node also answers a tag never sent on each connection.
        let (a, served_a) = fake_node(2, true);
        let (b, served_b) = fake_node(2, false);
        let target = Target {
            addrs: vec![a.clone(), b.clone()],
            secret: None,
            tls: None,
        };
        assert_eq!(
            (target.addr(0), target.addr(1), target.addr(2)),
            (&*a, &*b, &*a)
        );
        let make = |_: u64, _: &mut Rng, tag: i32| request(Verb::Set, tag);
        let limit = Limit {
            ops: Some(1000),
            deadline: None,
        };
        let d = drive(&target, 4, 16, limit, &make, "test").unwrap();
        assert_eq!((d.total.ops, d.total.errors), (1000, 0));
        assert_eq!(d.ops_by_addr[0], served_a.load(Ordering::Relaxed));
        assert_eq!(d.ops_by_addr[1], served_b.load(Ordering::Relaxed));
        assert!(d.ops_by_addr.iter().all(|n| *n > 0), "{:?}", d.ops_by_addr);
        assert_eq!(
            (d.total.stray, d.total.first_stray),
            (2, Some(Some(1 << 30)))
        );
        assert_eq!(d.stray_by_addr, [2, 0]);
    }

    #[test]
    fn rng_stays_in_range() {
        let mut r = Rng(1);
        assert!((0..1000).all(|_| r.below(7) < 7));
    }
}
