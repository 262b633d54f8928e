//! `doozer bench`: a load generator for one node.
//!
//! GET/SET mode keeps C requests in flight over K raw [`Pipeline`]
//! connections, one thread each; every response immediately releases its
//! tag for the next request, and a burst of responses is answered with one
//! write. Watch mode measures how fast changes reach many watchers; one
//! thread follows every watcher connection with `mio`, so the client does
//! not wake a thread per watcher per write on the cores the server uses.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use doozer::{DoozerUri, Error, Pipeline, Request, Response, Verb};
use doozer_proto::{encode_frame, FrameDecoder};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use prost::Message;

use crate::commands::{Failure, Globals};
use crate::flags::{self, Spec};
use crate::hist::Histogram;

const SPECS: &[Spec] = &[
    Spec {
        name: "op",
        takes_value: true,
    },
    Spec {
        name: "c",
        takes_value: true,
    },
    Spec {
        name: "k",
        takes_value: true,
    },
    Spec {
        name: "n",
        takes_value: true,
    },
    Spec {
        name: "d",
        takes_value: true,
    },
    Spec {
        name: "size",
        takes_value: true,
    },
    Spec {
        name: "keys",
        takes_value: true,
    },
    Spec {
        name: "layout",
        takes_value: true,
    },
    Spec {
        name: "prefill",
        takes_value: false,
    },
    Spec {
        name: "watchers",
        takes_value: true,
    },
    Spec {
        name: "rate",
        takes_value: true,
    },
    Spec {
        name: "grace",
        takes_value: true,
    },
];

/// The glob every watcher follows, and the directory the writer writes.
const WATCH_GLOB: &str = "/bench/watch/**";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Op {
    Get,
    Set,
    Watch,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Layout {
    Flat,
    Nested,
}

#[derive(Debug)]
struct Opts {
    op: Op,
    inflight: usize,
    conns: usize,
    ops: Option<u64>,
    duration: Duration,
    size: usize,
    keys: u64,
    layout: Layout,
    prefill: bool,
    watchers: usize,
    rate: f64,
    grace: Duration,
}

fn num<T: std::str::FromStr>(p: &flags::Parsed, name: &str, default: T) -> Result<T, Failure> {
    match p.get(name) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|_| Failure::Usage(format!("bench: bad -{name} {v:?}: want a number"))),
    }
}

fn dur(p: &flags::Parsed, name: &str, default: Duration) -> Result<Duration, Failure> {
    match p.get(name) {
        None => Ok(default),
        Some(v) => {
            doozer::duration::parse(v).map_err(|e| Failure::Usage(format!("bench: -{name}: {e}")))
        }
    }
}

fn parse_opts(args: &[String]) -> Result<Opts, Failure> {
    let p = flags::parse(args, SPECS, false).map_err(|e| Failure::Usage(format!("bench: {e}")))?;
    if let Some(extra) = p.args.first() {
        return Err(Failure::Usage(format!(
            "bench: unexpected argument {extra:?}"
        )));
    }
    let op = match p.get("op").unwrap_or("set") {
        "get" => Op::Get,
        "set" => Op::Set,
        "watch" => Op::Watch,
        o => {
            return Err(Failure::Usage(format!(
                "bench: bad -op {o:?}: want get, set or watch"
            )))
        }
    };
    let layout = match p.get("layout").unwrap_or("flat") {
        "flat" => Layout::Flat,
        "nested" => Layout::Nested,
        l => {
            return Err(Failure::Usage(format!(
                "bench: bad -layout {l:?}: want flat or nested"
            )))
        }
    };
    let o = Opts {
        op,
        inflight: num(&p, "c", 64)?,
        conns: num(&p, "k", 8)?,
        ops: p.get("n").map(|_| num(&p, "n", 0)).transpose()?,
        duration: dur(&p, "d", Duration::from_secs(10))?,
        size: num(&p, "size", 100)?,
        keys: num(&p, "keys", 1000)?,
        layout,
        prefill: p.is_set("prefill"),
        watchers: num(&p, "watchers", 100)?,
        rate: num(&p, "rate", 50.0)?,
        grace: dur(&p, "grace", Duration::from_secs(2))?,
    };
    let positive = |name: &str, ok: bool| {
        if ok {
            Ok(())
        } else {
            Err(Failure::Usage(format!("bench: -{name} must be positive")))
        }
    };
    positive("c", o.inflight > 0)?;
    positive("k", o.conns > 0)?;
    positive("keys", o.keys > 0)?;
    positive("n", o.ops != Some(0))?;
    positive("d", !o.duration.is_zero())?;
    positive("watchers", o.watchers > 0)?;
    positive("rate", o.rate > 0.0 && o.rate.is_finite())?;
    Ok(o)
}

fn key_path(layout: Layout, i: u64) -> String {
    match layout {
        Layout::Flat => format!("/bench/flat/k{i}"),
        Layout::Nested => format!("/bench/n/{}/k{i}", i / 100),
    }
}

/// xorshift64*: key choice only needs to be cheap and spread out.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

fn request(verb: Verb, tag: i32) -> Request {
    Request {
        tag: Some(tag),
        verb: Some(verb as i32),
        ..Default::default()
    }
}

/// A pipeline to `addr`, with ACCESS sent if there is a secret.
fn open(addr: &str, secret: Option<&[u8]>) -> Result<Pipeline, Error> {
    let mut p = Pipeline::connect(addr)?;
    if let Some(s) = secret {
        let mut r = request(Verb::Access, 0);
        r.value = Some(Bytes::copy_from_slice(s));
        p.send(&r);
        p.flush()?;
        Error::check(p.recv()?)?;
    }
    Ok(p)
}

/// Runs the benchmark with the bench options `args`.
pub fn run(g: &Globals, args: &[String]) -> Result<(), Failure> {
    let o = parse_opts(args)?;
    let uri: DoozerUri = g.uri.parse().map_err(Error::from)?;
    let Some(addr) = uri.addrs.first().cloned() else {
        return Err(Error::NameServiceUnsupported.into());
    };
    let target = Target {
        addr,
        secret: uri.secret.clone(),
    };
    match o.op {
        Op::Watch => watch_bench(&target, &o),
        Op::Get | Op::Set => load_bench(&target, &o),
    }
}

struct Target {
    addr: String,
    secret: Option<Vec<u8>>,
}

impl Target {
    fn open(&self) -> Result<Pipeline, Error> {
        open(&self.addr, self.secret.as_deref())
    }
}

#[derive(Default)]
struct LoadStats {
    hist: Histogram,
    ops: u64,
    errors: u64,
    first_error: Option<String>,
}

impl LoadStats {
    fn merge(&mut self, o: LoadStats) {
        self.hist.merge(&o.hist);
        self.ops += o.ops;
        self.errors += o.errors;
        if self.first_error.is_none() {
            self.first_error = o.first_error;
        }
    }

    fn note_error(&mut self, e: Error) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(e.to_string());
        }
    }
}

/// When to stop issuing requests.
struct Limit {
    ops: Option<u64>,
    deadline: Option<Instant>,
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

/// One connection keeping `depth` requests in flight; tags are 0..depth.
fn worker(run: &Run<'_>, depth: usize, seed: u64) -> Result<LoadStats, Error> {
    let mut p = run.target.open()?;
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
            let tag = resp
                .tag
                .and_then(|t| usize::try_from(t).ok())
                .filter(|t| *t < depth)
                .ok_or_else(|| Error::Protocol(format!("unexpected tag {:?}", resp.tag)))?;
            let Some(sent) = sent_at[tag].take() else {
                return Err(Error::Protocol(format!("duplicate response for tag {tag}")));
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

/// Drives `conns` workers with `inflight` requests in flight in total.
fn drive(
    target: &Target,
    conns: usize,
    inflight: usize,
    limit: Limit,
    make: &(dyn Fn(u64, &mut Rng, i32) -> Request + Sync),
    label: &str,
) -> Result<(LoadStats, Duration), Failure> {
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
                s.spawn(move || worker(run, depth, 0x9e37_79b9_7f4a_7c15 ^ (i as u64 + 1)))
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
    for r in results {
        total.merge(r?);
    }
    Ok((total, elapsed))
}

/// Prints `label: N ops, R ops/s` to stderr once a second until `done`,
/// overwriting the line; clears it at the end.
fn progress(label: &str, count: &AtomicU64, done: &AtomicBool) {
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

fn load_bench(t: &Target, o: &Opts) -> Result<(), Failure> {
    let value = Bytes::from(vec![b'x'; o.size]);
    let layout = o.layout;
    if o.prefill || o.op == Op::Get {
        let set_key = |seq: u64, _: &mut Rng, tag: i32| {
            let mut r = request(Verb::Set, tag);
            r.path = Some(key_path(layout, seq));
            r.rev = Some(doozer::rev::CLOBBER);
            r.value = Some(value.clone());
            r
        };
        let limit = Limit {
            ops: Some(o.keys),
            deadline: None,
        };
        let (stats, secs) = drive(t, o.conns, o.inflight, limit, &set_key, "prefill")?;
        if stats.errors > 0 {
            return Err(Failure::Other(format!(
                "prefill: {} of {} writes failed: {}",
                stats.errors,
                stats.ops,
                stats.first_error.unwrap_or_default()
            )));
        }
        eprintln!(
            "prefill: {} keys in {:.2} s ({:.0} ops/s)",
            o.keys,
            secs.as_secs_f64(),
            o.keys as f64 / secs.as_secs_f64()
        );
    }
    let keys = o.keys;
    let op = o.op;
    let make = |_: u64, rng: &mut Rng, tag: i32| {
        let path = key_path(layout, rng.below(keys));
        if op == Op::Get {
            let mut r = request(Verb::Get, tag);
            r.path = Some(path);
            r
        } else {
            let mut r = request(Verb::Set, tag);
            r.path = Some(path);
            r.rev = Some(doozer::rev::CLOBBER);
            r.value = Some(value.clone());
            r
        }
    };
    let limit = Limit {
        ops: o.ops,
        deadline: match o.ops {
            Some(_) => None,
            None => Some(Instant::now() + o.duration),
        },
    };
    let label = if op == Op::Get { "get" } else { "set" };
    let (stats, elapsed) = drive(t, o.conns, o.inflight, limit, &make, label)?;
    let secs = elapsed.as_secs_f64();
    let h = &stats.hist;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "op: {label}  conns: {}  in flight: {}  size: {}  keys: {}  layout: {}",
        o.conns.min(o.inflight),
        o.inflight,
        o.size,
        o.keys,
        match o.layout {
            Layout::Flat => "flat",
            Layout::Nested => "nested",
        }
    )?;
    writeln!(out, "ops: {}", stats.ops)?;
    writeln!(out, "seconds: {secs:.3}")?;
    writeln!(out, "ops/s: {:.0}", stats.ops as f64 / secs.max(1e-9))?;
    writeln!(
        out,
        "latency µs: p50 {} p90 {} p99 {} max {}",
        h.quantile(0.5),
        h.quantile(0.9),
        h.quantile(0.99),
        h.max()
    )?;
    writeln!(out, "errors: {}", stats.errors)?;
    if let Some(e) = stats.first_error {
        eprintln!("first error: {e}");
    }
    Ok(())
}

/// What one watcher saw: when each rev arrived (first time), duplicates.
#[derive(Default)]
struct WatcherLog {
    seen: HashMap<i64, Instant>,
    duplicates: u64,
    error: Option<String>,
}

fn wait_req(rev: i64) -> Request {
    let mut r = request(Verb::Wait, 1);
    r.path = Some(WATCH_GLOB.into());
    r.rev = Some(rev);
    r
}

/// One watcher connection, nonblocking, followed by [`follow_watchers`]:
/// one WAIT outstanding at a time; the next is queued as soon as the event
/// answering the previous one is decoded, and written once every socket
/// ready in the same poll has been read.
struct WatchConn {
    /// `None` once the connection failed (its log holds the error).
    stream: Option<TcpStream>,
    rbuf: BytesMut,
    wbuf: BytesMut,
    log: WatcherLog,
}

impl WatchConn {
    /// Connects (ACCESS included) and queues the first WAIT.
    fn open(t: &Target, from: i64) -> Result<WatchConn, Error> {
        let (stream, rbuf) = t.open()?.into_parts();
        stream.set_nonblocking(true)?;
        let mut c = WatchConn {
            stream: Some(TcpStream::from_std(stream)),
            rbuf,
            wbuf: BytesMut::with_capacity(256),
            log: WatcherLog::default(),
        };
        encode_frame(&wait_req(from), &mut c.wbuf);
        Ok(c)
    }

    /// A connection that never opened, kept so its error is reported.
    fn failed(e: Error) -> WatchConn {
        WatchConn {
            stream: None,
            rbuf: BytesMut::new(),
            wbuf: BytesMut::new(),
            log: WatcherLog {
                error: Some(e.to_string()),
                ..Default::default()
            },
        }
    }

    /// True while the first WAIT (or any request) is not fully written.
    fn unflushed(&self) -> bool {
        self.stream.is_some() && !self.wbuf.is_empty()
    }

    /// Reads until the socket would block, recording each event and
    /// queueing the WAIT that follows it. On error the connection is closed
    /// and the error logged.
    fn read(&mut self, poll: &Poll, chunk: &mut [u8], last_seen: &AtomicI64) {
        let Some(stream) = self.stream.as_mut() else {
            return;
        };
        let r = loop {
            match stream.read(chunk) {
                Ok(0) => {
                    break Err(Error::ConnectionClosed(
                        "server closed the connection".into(),
                    ))
                }
                Ok(n) => {
                    self.rbuf.extend_from_slice(&chunk[..n]);
                    let decoded = decode(&mut self.rbuf, &mut self.wbuf, &mut self.log, last_seen);
                    if let Err(e) = decoded {
                        break Err(e);
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => break Err(e.into()),
            }
        };
        if let Err(e) = r {
            self.fail(poll, e);
        }
    }

    /// Writes as much of the queued requests as the socket takes; the rest
    /// waits for the next writable event.
    fn flush(&mut self, poll: &Poll) {
        let Some(stream) = self.stream.as_mut() else {
            return;
        };
        let r = loop {
            if self.wbuf.is_empty() {
                break Ok(());
            }
            match stream.write(&self.wbuf) {
                Ok(0) => break Err(Error::ConnectionClosed("socket accepts no data".into())),
                Ok(n) => self.wbuf.advance(n),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => break Err(e.into()),
            }
        };
        if let Err(e) = r {
            self.fail(poll, e);
        }
    }

    fn fail(&mut self, poll: &Poll, e: Error) {
        if let Some(mut stream) = self.stream.take() {
            let _ = poll.registry().deregister(&mut stream);
        }
        self.log.error = Some(e.to_string());
    }
}

/// Records every complete response in a watcher's read buffer `rbuf` in
/// its `log`, and queues the WAIT that follows each in `wbuf`.
fn decode(
    rbuf: &mut BytesMut,
    wbuf: &mut BytesMut,
    log: &mut WatcherLog,
    last_seen: &AtomicI64,
) -> Result<(), Error> {
    let decoder = FrameDecoder::default();
    while let Some(frame) = decoder
        .decode(rbuf)
        .map_err(|e| Error::Protocol(e.to_string()))?
    {
        let now = Instant::now();
        let resp =
            Response::decode(frame).map_err(|e| Error::Protocol(format!("bad response: {e}")))?;
        let rev = Error::check(resp)?.rev.unwrap_or_default();
        match log.seen.entry(rev) {
            Entry::Occupied(_) => log.duplicates += 1,
            Entry::Vacant(v) => {
                v.insert(now);
            }
        }
        last_seen.store(rev, Ordering::Relaxed);
        encode_frame(&wait_req(rev + 1), wbuf);
    }
    Ok(())
}

/// Waits on `ready` once: when told to, or when dropped, so the writer
/// is released even if the watchers give up early.
struct Release<'a>(Option<&'a Barrier>);

impl Release<'_> {
    fn release(&mut self) {
        if let Some(b) = self.0.take() {
            b.wait();
        }
    }
}

impl Drop for Release<'_> {
    fn drop(&mut self) {
        self.release();
    }
}

/// Follows `last_seen.len()` watcher connections from this one thread,
/// each waiting on [`WATCH_GLOB`] from rev `from`. Waits on `ready` once
/// every first WAIT is written (or its connection failed), then runs until
/// `stop`. Returns one log per watcher.
fn follow_watchers(
    t: &Target,
    from: i64,
    ready: &Barrier,
    stop: &AtomicBool,
    last_seen: &[AtomicI64],
) -> Vec<WatcherLog> {
    let mut release = Release(Some(ready));
    let n = last_seen.len();
    let mut poll = match Poll::new() {
        Ok(p) => p,
        Err(e) => {
            let e = e.to_string();
            return (0..n)
                .map(|_| WatcherLog {
                    error: Some(e.clone()),
                    ..Default::default()
                })
                .collect();
        }
    };
    let mut conns: Vec<WatchConn> = (0..n)
        .map(|i| {
            let mut c = WatchConn::open(t, from).unwrap_or_else(WatchConn::failed);
            if let Some(s) = c.stream.as_mut() {
                let interest = Interest::READABLE | Interest::WRITABLE;
                if let Err(e) = poll.registry().register(s, Token(i), interest) {
                    c = WatchConn::failed(e.into());
                }
            }
            c
        })
        .collect();
    // Whatever arrived with the ACCESS answer, then the first WAITs.
    let mut chunk = vec![0u8; 64 * 1024];
    for (c, ls) in conns.iter_mut().zip(last_seen) {
        c.read(&poll, &mut chunk, ls);
        c.flush(&poll);
    }
    let mut touched = Vec::with_capacity(1024);
    let mut events = Events::with_capacity(1024);
    loop {
        if release.0.is_some() && !conns.iter().any(WatchConn::unflushed) {
            release.release();
        }
        if stop.load(Ordering::Relaxed) {
            break;
        }
        if let Err(e) = poll.poll(&mut events, Some(Duration::from_millis(50))) {
            if e.kind() == ErrorKind::Interrupted {
                continue;
            }
            for c in conns.iter_mut().filter(|c| c.stream.is_some()) {
                c.stream = None;
                c.log.error = Some(format!("poll: {e}"));
            }
            break;
        }
        // Every ready socket is read (and its events stamped) before any
        // next WAIT is written, so one connection's write does not delay
        // the timestamps of the others in the batch.
        for ev in events.iter() {
            let i = ev.token().0;
            if let (Some(c), Some(ls)) = (conns.get_mut(i), last_seen.get(i)) {
                c.read(&poll, &mut chunk, ls);
                touched.push(i);
            }
        }
        for i in touched.drain(..) {
            conns[i].flush(&poll);
        }
    }
    conns.into_iter().map(|c| c.log).collect()
}

/// A completed write: its rev, when it was sent and when its ack came.
struct Write_ {
    rev: i64,
    sent: Instant,
    acked: Instant,
}

fn writer(
    p: &mut Pipeline,
    o: &Opts,
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
                r.path = Some(format!("/bench/watch/k{}", i % o.keys));
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
                return Err(Error::Protocol(format!("unexpected tag {:?}", resp.tag)));
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

fn rev_of(p: &mut Pipeline) -> Result<i64, Error> {
    p.send(&request(Verb::Rev, 0));
    p.flush()?;
    let resp: Response = Error::check(p.recv()?)?;
    Ok(resp.rev.unwrap_or_default())
}

fn watch_bench(t: &Target, o: &Opts) -> Result<(), Failure> {
    let mut w = t.open()?;
    let from = rev_of(&mut w)? + 1;
    let ready = Barrier::new(2);
    let stop = AtomicBool::new(false);
    let done = AtomicBool::new(false);
    let count = AtomicU64::new(0);
    let last_seen: Vec<AtomicI64> = (0..o.watchers).map(|_| AtomicI64::new(0)).collect();
    let started = Instant::now();
    let (written, logs) = thread::scope(|s| {
        let watchers = s.spawn(|| follow_watchers(t, from, &ready, &stop, &last_seen));
        ready.wait();
        let progress = s.spawn(|| progress("watch writes", &count, &done));
        let written = writer(&mut w, o, &count);
        done.store(true, Ordering::Relaxed);
        let _ = progress.join();
        // Give late notifications up to `grace` to arrive.
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
        let logs: Vec<WatcherLog> = watchers.join().unwrap_or_else(|_| {
            (0..o.watchers)
                .map(|_| WatcherLog {
                    error: Some("watcher thread panicked".into()),
                    ..Default::default()
                })
                .collect()
        });
        (written, logs)
    });
    let (writes, wstats) = written?;
    let elapsed = started.elapsed().as_secs_f64();
    let mut ack_to_notified = Histogram::default();
    let mut send_to_notified = Histogram::default();
    let (mut missed, mut duplicated, mut failed_watchers) = (0u64, 0u64, 0u64);
    let mut first_watch_error = None;
    for log in &logs {
        duplicated += log.duplicates;
        if let Some(e) = &log.error {
            failed_watchers += 1;
            first_watch_error.get_or_insert_with(|| e.clone());
        }
        for w in &writes {
            match log.seen.get(&w.rev) {
                Some(t) => {
                    // Clamped at 0: the notification may beat the ack.
                    ack_to_notified.record(t.saturating_duration_since(w.acked).as_micros() as u64);
                    send_to_notified.record(t.saturating_duration_since(w.sent).as_micros() as u64);
                }
                None => missed += 1,
            }
        }
    }
    let h = &wstats.hist;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "op: watch  watchers: {}  rate: {}/s  size: {}  keys: {}",
        o.watchers, o.rate, o.size, o.keys
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
        "ack->notified µs: p50 {} p99 {} max {}",
        ack_to_notified.quantile(0.5),
        ack_to_notified.quantile(0.99),
        ack_to_notified.max()
    )?;
    writeln!(
        out,
        "send->notified µs: p50 {} p99 {}",
        send_to_notified.quantile(0.5),
        send_to_notified.quantile(0.99)
    )?;
    writeln!(out, "notifications: {}", ack_to_notified.count())?;
    writeln!(out, "missed: {missed} duplicated: {duplicated}")?;
    if let Some(e) = wstats.first_error {
        eprintln!("first write error: {e}");
    }
    if let Some(e) = first_watch_error {
        eprintln!("{failed_watchers} watcher(s) failed, first: {e}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn options_parse_with_defaults() {
        let o = parse_opts(&[]).unwrap();
        assert_eq!((o.op, o.inflight, o.conns, o.keys), (Op::Set, 64, 8, 1000));
        assert_eq!(o.duration, Duration::from_secs(10));
        let o = parse_opts(&strs(&[
            "-op", "get", "-keys", "100000", "-prefill", "-layout", "nested", "-n", "5", "-d", "1m",
        ]))
        .unwrap();
        assert_eq!(
            (o.op, o.keys, o.layout, o.ops),
            (Op::Get, 100_000, Layout::Nested, Some(5))
        );
        assert!(o.prefill);
        for bad in [
            vec!["-op", "frob"],
            vec!["-c", "0"],
            vec!["-c", "x"],
            vec!["-layout", "deep"],
            vec!["-rate", "0"],
            vec!["-d", "soon"],
            vec!["extra"],
        ] {
            assert!(parse_opts(&strs(&bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn key_layouts() {
        assert_eq!(key_path(Layout::Flat, 1234), "/bench/flat/k1234");
        assert_eq!(key_path(Layout::Nested, 1234), "/bench/n/12/k1234");
    }

    #[test]
    fn rng_stays_in_range() {
        let mut r = Rng(1);
        assert!((0..1000).all(|_| r.below(7) < 7));
    }
}
