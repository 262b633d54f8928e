//! `doozer bench`: a load generator for one node or several.
//!
//! GET/SET mode keeps C requests in flight over K raw [`Pipeline`]
//! connections, one thread each, spread round-robin over every `ca=`
//! address of `-a` (connection i goes to address i mod N); every response immediately releases its
//! tag for the next request, and a burst of responses is answered with one
//! write. Watch mode measures how fast changes reach many watchers (WAITs
//! over the client protocol), SSE mode how fast they reach many event
//! streams of the web viewer (`/$events/<dir>/`); in both, one thread
//! follows every connection with `mio` ([`follow`]), so the client does
//! not wake a thread per follower per write on the cores the server uses,
//! while one writer SETs at a fixed rate.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use doozer::{DoozerUri, Error, Pipeline, Request, Response, Stream, TlsClient, Verb};
use doozer_proto::{encode_frame, FrameDecoder};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use prost::Message;

use crate::failure::Failure;
use crate::flags::{self, Spec};
use crate::globals::Globals;
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
        name: "streams",
        takes_value: true,
    },
    Spec {
        name: "web",
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

/// The directory the writer writes in watch mode, and the glob every
/// watcher follows.
const WATCH_DIR: &str = "/bench/watch";
const WATCH_GLOB: &str = "/bench/watch/**";
/// The directory the writer writes in SSE mode; every stream follows
/// `/$events<SSE_DIR>/`.
const SSE_DIR: &str = "/bench/sse";
/// The port of the web address for `-op sse` when -web is not given.
const DEFAULT_WEB_PORT: u16 = 8000;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Op {
    Get,
    Set,
    Watch,
    Sse,
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
    streams: usize,
    web: Option<String>,
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
        "sse" => Op::Sse,
        o => {
            return Err(Failure::Usage(format!(
                "bench: bad -op {o:?}: want get, set, watch or sse"
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
        streams: num(&p, "streams", 1000)?,
        web: p.get("web").map(str::to_owned),
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
    positive("streams", o.streams > 0)?;
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
fn open(addr: &str, secret: Option<&[u8]>, tls: Option<&TlsClient>) -> Result<Pipeline, Error> {
    let mut p = Pipeline::connect_with(addr, tls)?;
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
    let target = Target {
        addrs: g.addrs(&uri)?,
        secret: uri.secret.clone(),
        tls: match &uri.tls_ca {
            Some(path) => Some(TlsClient::from_ca_file(path)?),
            None => None,
        },
    };
    match o.op {
        Op::Watch | Op::Sse => follow_bench(&target, &o),
        Op::Get | Op::Set => load_bench(&target, &o),
    }
}

/// The nodes to load: connection `i` goes to `addrs[i % addrs.len()]`.
struct Target {
    addrs: Vec<String>,
    secret: Option<Vec<u8>>,
    /// TLS, when the URI has `tlsca=`.
    tls: Option<TlsClient>,
}

impl Target {
    /// The address of connection `i` (never empty: `run` checks).
    fn addr(&self, i: usize) -> &str {
        &self.addrs[i % self.addrs.len()]
    }

    /// Opens connection `i`.
    fn open(&self, i: usize) -> Result<Pipeline, Error> {
        open(self.addr(i), self.secret.as_deref(), self.tls.as_ref())
    }
}

#[derive(Default)]
struct LoadStats {
    hist: Histogram,
    ops: u64,
    errors: u64,
    first_error: Option<String>,
    /// Responses whose tag was not in flight on their connection.
    stray: u64,
    first_stray: Option<Option<i32>>,
}

impl LoadStats {
    fn merge(&mut self, o: LoadStats) {
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
struct Driven {
    total: LoadStats,
    elapsed: Duration,
    ops_by_addr: Vec<u64>,
    stray_by_addr: Vec<u64>,
}

/// Drives `conns` workers with `inflight` requests in flight in total.
fn drive(
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
        let Driven {
            total: stats,
            elapsed: secs,
            ..
        } = drive(t, o.conns, o.inflight, limit, &set_key, "prefill")?;
        if stats.errors > 0 {
            return Err(Failure::Other(format!(
                "prefill: {} of {} writes failed: {}",
                stats.errors,
                stats.ops,
                stats.first_error.unwrap_or_default()
            )));
        }
        if stats.stray > 0 {
            eprintln!(
                "prefill: {} responses to requests not in flight (ignored)",
                stats.stray
            );
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
    let Driven {
        total: stats,
        elapsed,
        ops_by_addr,
        stray_by_addr,
    } = drive(t, o.conns, o.inflight, limit, &make, label)?;
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
    if t.addrs.len() > 1 {
        let n = t.addrs.len();
        for (k, (addr, ops)) in t.addrs.iter().zip(&ops_by_addr).enumerate() {
            let conns = (0..o.conns.min(o.inflight)).filter(|i| i % n == k).count();
            write!(
                out,
                "node {addr}: conns {conns}  ops {ops}  ops/s {:.0}",
                *ops as f64 / secs.max(1e-9)
            )?;
            match stray_by_addr[k] {
                0 => writeln!(out)?,
                stray => writeln!(out, "  stray {stray}")?,
            }
        }
    }
    writeln!(out, "errors: {}", stats.errors)?;
    if let Some(e) = stats.first_error {
        eprintln!("first error: {e}");
    }
    if let Some(tag) = stats.first_stray {
        // The report stands (stray answers are not counted as ops), but
        // the exit status tells a script the server misbehaved.
        writeln!(out, "stray responses: {}", stats.stray)?;
        return Err(Failure::Other(format!(
            "{} responses to requests this run did not have in flight (first tag {})",
            stats.stray,
            tag.map_or("none".into(), |t| t.to_string())
        )));
    }
    Ok(())
}

/// What one follower (a watcher or an event stream) saw: when each rev
/// first arrived, how many arrived again, and why it stopped, if it did.
#[derive(Default)]
struct ArrivalLog {
    seen: HashMap<i64, Instant>,
    duplicates: u64,
    error: Option<String>,
}

impl ArrivalLog {
    fn failed(e: String) -> ArrivalLog {
        ArrivalLog {
            error: Some(e),
            ..Default::default()
        }
    }

    /// Records that `rev` arrived at `now`.
    fn arrived(&mut self, rev: i64, now: Instant) {
        match self.seen.entry(rev) {
            Entry::Occupied(_) => self.duplicates += 1,
            Entry::Vacant(v) => {
                v.insert(now);
            }
        }
    }
}

fn wait_req(rev: i64) -> Request {
    let mut r = request(Verb::Wait, 1);
    r.path = Some(WATCH_GLOB.into());
    r.rev = Some(rev);
    r
}

/// How long the followers get to become ready (every first WAIT written,
/// every event stream's listing read) before the stragglers are failed.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The most an HTTP response head may take.
const MAX_HEAD: usize = 16 * 1024;

/// What a followed connection speaks.
enum Proto {
    /// The client protocol: one WAIT on [`WATCH_GLOB`] outstanding; the
    /// next is queued as soon as the event answering the previous one is
    /// decoded.
    Wait,
    /// Server-Sent Events from the web address (`GET /$events/<dir>/`).
    Sse(Sse),
}

/// The parse state of one event stream.
#[derive(Default)]
struct Sse {
    /// True once the HTTP response head is read.
    head: bool,
    /// True once `event: ready` (the end of the listing) arrived.
    ready: bool,
    /// The `event:` and `id:` fields of the message being read.
    event: Vec<u8>,
    id: Option<Vec<u8>>,
}

impl Sse {
    /// Consumes the response head and every complete line in `rbuf`,
    /// recording each `event: change` in `log`.
    fn decode(
        &mut self,
        rbuf: &mut BytesMut,
        log: &mut ArrivalLog,
        last_seen: &AtomicI64,
    ) -> Result<(), Error> {
        if !self.head {
            let Some(end) = rbuf.windows(4).position(|w| w == b"\r\n\r\n") else {
                if rbuf.len() > MAX_HEAD {
                    return Err(Error::Protocol("HTTP response head too long".into()));
                }
                return Ok(());
            };
            let head = rbuf.split_to(end + 4);
            let status = head[..].split(|&b| b == b'\r').next().unwrap_or_default();
            if !(status.starts_with(b"HTTP/1.1 200 ") || status.starts_with(b"HTTP/1.0 200 ")) {
                return Err(Error::Protocol(format!(
                    "event stream answered {:?}",
                    String::from_utf8_lossy(status)
                )));
            }
            self.head = true;
        }
        while let Some(nl) = rbuf.iter().position(|&b| b == b'\n') {
            let line = rbuf.split_to(nl + 1);
            let line = &line[..nl];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                self.dispatch(log, last_seen)?;
                continue;
            }
            let (field, value) = match line.iter().position(|&b| b == b':') {
                Some(c) => (&line[..c], &line[c + 1..]),
                None => (line, &b""[..]),
            };
            let value = value.strip_prefix(b" ").unwrap_or(value);
            match field {
                b"event" => self.event = value.to_vec(),
                b"id" => self.id = Some(value.to_vec()),
                _ => {} // data, retry, comments: not needed
            }
        }
        Ok(())
    }

    /// Acts on the message just ended by a blank line.
    fn dispatch(&mut self, log: &mut ArrivalLog, last_seen: &AtomicI64) -> Result<(), Error> {
        let now = Instant::now();
        let event = std::mem::take(&mut self.event);
        let rev = match self.id.take() {
            None => None,
            Some(id) => Some(
                std::str::from_utf8(&id)
                    .ok()
                    .and_then(|s| s.parse::<i64>().ok())
                    .ok_or_else(|| {
                        Error::Protocol(format!("bad event id {:?}", String::from_utf8_lossy(&id)))
                    })?,
            ),
        };
        match (&event[..], rev) {
            (b"change", Some(rev)) => log.arrived(rev, now),
            (b"change", None) => return Err(Error::Protocol("change event without id".into())),
            (b"ready", _) => self.ready = true,
            _ => {} // reset, file, rev, ping
        }
        if let Some(rev) = rev {
            last_seen.fetch_max(rev, Ordering::Relaxed);
        }
        Ok(())
    }
}

/// One followed connection, nonblocking, driven by [`follow`]. Whatever
/// it must send (the first WAIT and each next one, or the HTTP request)
/// is queued in `wbuf` and written once every socket ready in the same
/// poll has been read.
struct FollowConn {
    /// `None` once the connection failed (its log holds the error).
    stream: Option<TcpStream>,
    proto: Proto,
    rbuf: BytesMut,
    wbuf: BytesMut,
    log: ArrivalLog,
}

impl FollowConn {
    fn new(stream: std::net::TcpStream, rbuf: BytesMut, proto: Proto) -> Result<Self, Error> {
        stream.set_nonblocking(true)?;
        Ok(FollowConn {
            stream: Some(TcpStream::from_std(stream)),
            proto,
            rbuf,
            wbuf: BytesMut::with_capacity(256),
            log: ArrivalLog::default(),
        })
    }

    /// Watcher `i`: connects (ACCESS included) and queues the first WAIT.
    fn watcher(t: &Target, i: usize, from: i64) -> Result<FollowConn, Error> {
        let (stream, rbuf) = match t.open(i)?.into_parts() {
            (Stream::Plain(s), rbuf) => (s, rbuf),
            (Stream::Tls(_), _) => {
                return Err(Error::Tls(
                    "bench -op watch follows plain TCP connections only".into(),
                ))
            }
        };
        let mut c = FollowConn::new(stream, rbuf, Proto::Wait)?;
        encode_frame(&wait_req(from), &mut c.wbuf);
        Ok(c)
    }

    /// An event stream: connects to the web address `web` and queues the
    /// request for `path`.
    fn event_stream(web: &str, path: &str) -> Result<FollowConn, Error> {
        let stream = std::net::TcpStream::connect(web).map_err(|source| Error::Connect {
            addr: web.into(),
            source,
        })?;
        let mut c = FollowConn::new(stream, BytesMut::new(), Proto::Sse(Sse::default()))?;
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
        c.wbuf.extend_from_slice(req.as_bytes());
        Ok(c)
    }

    /// A connection that never opened, kept so its error is reported.
    fn failed(e: Error) -> FollowConn {
        FollowConn {
            stream: None,
            proto: Proto::Wait,
            rbuf: BytesMut::new(),
            wbuf: BytesMut::new(),
            log: ArrivalLog::failed(e.to_string()),
        }
    }

    /// True once the writer may start as far as this connection goes: its
    /// first WAIT is written, or its listing read, or it failed.
    fn ready(&self) -> bool {
        self.stream.is_none()
            || match &self.proto {
                Proto::Wait => self.wbuf.is_empty(),
                Proto::Sse(s) => s.ready,
            }
    }

    /// Reads until the socket would block, recording each event. On error
    /// the connection is closed and the error logged.
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
                    let decoded = match &mut self.proto {
                        Proto::Wait => {
                            decode_wait(&mut self.rbuf, &mut self.wbuf, &mut self.log, last_seen)
                        }
                        Proto::Sse(s) => s.decode(&mut self.rbuf, &mut self.log, last_seen),
                    };
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
            self.fail(poll, e, last_seen);
        }
    }

    /// Writes as much of the queued requests as the socket takes; the rest
    /// waits for the next writable event.
    fn flush(&mut self, poll: &Poll, last_seen: &AtomicI64) {
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
            self.fail(poll, e, last_seen);
        }
    }

    /// Closes the connection and logs `e`; `last_seen` is set past every
    /// rev so nobody waits for this connection any more.
    fn fail(&mut self, poll: &Poll, e: Error, last_seen: &AtomicI64) {
        if let Some(mut stream) = self.stream.take() {
            let _ = poll.registry().deregister(&mut stream);
        }
        self.log.error = Some(e.to_string());
        last_seen.store(i64::MAX, Ordering::Relaxed);
    }
}

/// Records every complete response in a watcher's read buffer `rbuf` in
/// its `log`, and queues the WAIT that follows each in `wbuf`.
fn decode_wait(
    rbuf: &mut BytesMut,
    wbuf: &mut BytesMut,
    log: &mut ArrivalLog,
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
        log.arrived(rev, now);
        last_seen.fetch_max(rev, Ordering::Relaxed);
        encode_frame(&wait_req(rev + 1), wbuf);
    }
    Ok(())
}

/// Waits on `ready` once: when told to, or when dropped, so the writer
/// is released even if the followers give up early.
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

/// Follows `last_seen.len()` connections, connection `i` made by
/// `open(i)`, from this one thread. Waits on `ready` once every connection is
/// [ready](FollowConn::ready) (those still not ready after
/// [`READY_TIMEOUT`] are failed), then runs until `stop`. Returns one log
/// per connection.
fn follow(
    open: &dyn Fn(usize) -> Result<FollowConn, Error>,
    ready: &Barrier,
    stop: &AtomicBool,
    last_seen: &[AtomicI64],
) -> Vec<ArrivalLog> {
    let mut release = Release(Some(ready));
    let n = last_seen.len();
    let mut poll = match Poll::new() {
        Ok(p) => p,
        Err(e) => {
            let e = e.to_string();
            return (0..n).map(|_| ArrivalLog::failed(e.clone())).collect();
        }
    };
    let mut conns: Vec<FollowConn> = (0..n)
        .map(|i| {
            let mut c = open(i).unwrap_or_else(FollowConn::failed);
            if let Some(s) = c.stream.as_mut() {
                let interest = Interest::READABLE | Interest::WRITABLE;
                if let Err(e) = poll.registry().register(s, Token(i), interest) {
                    c = FollowConn::failed(e.into());
                }
            }
            c
        })
        .collect();
    // Whatever arrived while connecting, then the first requests.
    let mut chunk = vec![0u8; 64 * 1024];
    for (c, ls) in conns.iter_mut().zip(last_seen) {
        if c.stream.is_none() {
            ls.store(i64::MAX, Ordering::Relaxed);
        }
        c.read(&poll, &mut chunk, ls);
        c.flush(&poll, ls);
    }
    let ready_deadline = Instant::now() + READY_TIMEOUT;
    let mut touched = Vec::with_capacity(1024);
    let mut events = Events::with_capacity(1024);
    loop {
        if release.0.is_some() {
            if conns.iter().all(FollowConn::ready) {
                release.release();
            } else if Instant::now() >= ready_deadline {
                for (c, ls) in conns.iter_mut().zip(last_seen) {
                    if !c.ready() {
                        let e = format!("not ready after {}s", READY_TIMEOUT.as_secs());
                        c.fail(&poll, Error::Protocol(e), ls);
                    }
                }
                release.release();
            }
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
        // next request is written, so one connection's write does not
        // delay the timestamps of the others in the batch.
        for ev in events.iter() {
            let i = ev.token().0;
            if let (Some(c), Some(ls)) = (conns.get_mut(i), last_seen.get(i)) {
                c.read(&poll, &mut chunk, ls);
                touched.push(i);
            }
        }
        for i in touched.drain(..) {
            conns[i].flush(&poll, &last_seen[i]);
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

fn rev_of(p: &mut Pipeline) -> Result<i64, Error> {
    p.send(&request(Verb::Rev, 0));
    p.flush()?;
    let resp: Response = Error::check(p.recv()?)?;
    Ok(resp.rev.unwrap_or_default())
}

/// The web address for `-op sse` when -web is not given: the host of the
/// client address `addr`, port [`DEFAULT_WEB_PORT`].
fn default_web(addr: &str) -> String {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    format!("{host}:{DEFAULT_WEB_PORT}")
}

/// Watch mode and SSE mode: `followers` connections follow the changes
/// under `dir` (the closure opens one) while one writer writes there at a
/// fixed rate; reports how long each write took to reach every follower.
fn follow_bench(t: &Target, o: &Opts) -> Result<(), Failure> {
    let mut w = t.open(0)?;
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
    let elapsed = started.elapsed().as_secs_f64();
    let mut ack_to_arrived = Histogram::default();
    let mut send_to_arrived = Histogram::default();
    let (mut missed, mut duplicated, mut failed) = (0u64, 0u64, 0u64);
    let mut first_error = None;
    for log in &logs {
        duplicated += log.duplicates;
        if let Some(e) = &log.error {
            failed += 1;
            first_error.get_or_insert_with(|| e.clone());
        }
        for w in &writes {
            match log.seen.get(&w.rev) {
                Some(t) => {
                    // Clamped at 0: the arrival may beat the ack.
                    ack_to_arrived.record(t.saturating_duration_since(w.acked).as_micros() as u64);
                    send_to_arrived.record(t.saturating_duration_since(w.sent).as_micros() as u64);
                }
                None => missed += 1,
            }
        }
    }
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
    fn sse_options_and_web_address() {
        let o = parse_opts(&strs(&["-op", "sse"])).unwrap();
        assert_eq!((o.op, o.streams, o.web), (Op::Sse, 1000, None));
        let o = parse_opts(&strs(&["-op", "sse", "-streams", "10", "-web", "h:1"])).unwrap();
        assert_eq!((o.streams, o.web.as_deref()), (10, Some("h:1")));
        assert!(parse_opts(&strs(&["-op", "sse", "-streams", "0"])).is_err());
        assert_eq!(default_web("10.0.0.1:8046"), "10.0.0.1:8000");
        assert_eq!(default_web("[::1]:8046"), "[::1]:8000");
    }

    /// Feeds `input` to a fresh stream in pieces of `step` bytes.
    fn sse_feed(input: &[u8], step: usize) -> (Sse, ArrivalLog, i64, Result<(), Error>) {
        let (mut s, mut log, last) = (Sse::default(), ArrivalLog::default(), AtomicI64::new(0));
        let mut buf = BytesMut::new();
        let mut r = Ok(());
        for piece in input.chunks(step) {
            buf.extend_from_slice(piece);
            r = s.decode(&mut buf, &mut log, &last);
            if r.is_err() {
                break;
            }
        }
        (s, log, last.load(Ordering::Relaxed), r)
    }

    #[test]
    fn sse_stream_is_parsed_in_any_pieces() {
        let input = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n\
retry: 1000\n\n\
event: reset\ndata: {\"rev\": 7}\n\n\
event: file\ndata: {\"path\": \"/bench/sse/k1\", \"body\": \"a\\n\"}\n\n\
event: ready\nid: 7\ndata: {\"rev\": 7}\n\n\
event: change\nid: 8\ndata: {}\n\n\
event: ping\ndata: {}\n\n\
event: change\r\nid: 9\r\ndata: {}\r\n\r\n\
event: change\nid: 9\ndata: {}\n\n\
event: rev\nid: 12\ndata: {}\n\n\
event: change\nid: 13\n";
        for step in [1, 2, 7, input.len()] {
            let (s, log, last, r) = sse_feed(input, step);
            assert!(r.is_ok() && s.head && s.ready, "step {step}");
            let mut revs: Vec<_> = log.seen.keys().copied().collect();
            revs.sort();
            assert_eq!((revs, log.duplicates, last), (vec![8, 9], 1, 12));
        }
    }

    #[test]
    fn sse_errors_are_reported() {
        let (s, _, _, r) = sse_feed(b"HTTP/1.1 404 Not Found\r\n\r\n", 5);
        assert!(!s.ready && r.unwrap_err().to_string().contains("404"));
        let head = "HTTP/1.1 200 OK\r\n\r\n";
        let (_, _, _, r) = sse_feed(format!("{head}event: change\nid: x\n\n").as_bytes(), 3);
        assert!(r.unwrap_err().to_string().contains("bad event id"));
        let (_, _, _, r) = sse_feed(format!("{head}event: change\n\n").as_bytes(), 3);
        assert!(r.is_err());
        let (_, _, _, r) = sse_feed(&[b'x'; MAX_HEAD + 10], 1000);
        assert!(r.is_err());
    }

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
