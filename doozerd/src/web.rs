//! HTTP on `-w`: the live viewer, its event stream, stats and metrics
//! (contract: `docs/web.md`). Requests are parsed with `httparse`; each
//! connection serves one request (`Connection: close`), except an event
//! stream, which stays open and is fed by the event loop through
//! [`EventStream::catch_up`].
//!
//! Map: this module routes requests, serves the pages, the event stream,
//! stats and metrics; `past` reads a file's history and the tree at a past
//! rev; `samples` keeps the last 15 minutes of figures for the charts.

mod past;
mod samples;

pub use past::{
    HISTORY_DEFAULT_LIMIT, HISTORY_MAX_BYTES, HISTORY_MAX_LIMIT, HISTORY_MAX_SCAN, TREE_MAX_BYTES,
    TREE_MAX_FILES,
};
pub use samples::{Sample, Samples, SAMPLES_KEPT, SAMPLE_INTERVAL};

use std::collections::BTreeMap;

use bytes::{BufMut, Bytes, BytesMut};
use serde_json::json;

use crate::store::{Event, Glob, Rev, Snapshot, Store};
use doozer_proto::ctl::{self, NodeFile};
use doozer_proto::flags;

/// Largest request head accepted; more is answered 431 and closed.
const MAX_HEAD_LEN: usize = 16 << 10;

/// What to do with the bytes read so far on a web connection.
pub enum Outcome {
    /// The request head is incomplete.
    NeedMore,
    /// Send these bytes, then close.
    Reply(Vec<u8>),
    /// Send these bytes (headers and the first events) and keep the
    /// connection as an event stream.
    Stream(Box<EventStream>, BytesMut),
}

/// Everything the stats page and the metrics show, gathered by the event
/// loop (which owns the clock and the process).
#[derive(Debug, Clone, Default)]
pub struct NodeStats {
    /// This node's id.
    pub node_id: String,
    /// The cluster name.
    pub cluster: String,
    /// Seconds since start.
    pub uptime_s: f64,
    /// `-pulse`, in seconds: how often each CAL writes its `applied` file
    /// (the cluster page judges silence by it).
    pub pulse_s: f64,
    /// `-timeout`, in seconds: the silence after which a CAL is kicked.
    pub timeout_s: f64,
    /// Resident memory of the process, bytes.
    pub memory_rss_bytes: u64,
    /// CPU time the process used so far, user and system, seconds.
    pub cpu_seconds: f64,
    /// Client connections open.
    pub clients: u64,
    /// Web connections open (pages and event streams).
    pub web_clients: u64,
    /// Event streams open.
    pub event_streams: u64,
    /// Requests handled.
    pub requests: u64,
    /// Reads answered.
    pub reads: u64,
    /// Writes proposed.
    pub writes: u64,
    /// WAITs received.
    pub waits: u64,
    /// Error responses.
    pub errors: u64,
    /// Files in the store now.
    pub store_files: u64,
    /// Bytes of file bodies in the store now.
    pub store_bytes: u64,
    /// Values proposed to consensus.
    pub proposals: u64,
    /// Of those, batches of client writes.
    pub write_batches: u64,
    /// Paxos instances this node is working on or waiting for.
    pub instances_in_flight: u64,
    /// Other CALs' seqns this node started filling with NOP.
    pub fills: u64,
    /// Paxos rounds retried after a timeout.
    pub round_retries: u64,
    /// Votes this CAL cast lazily (`-d`, docs/storage.md#lazy-votes).
    pub lazy_votes: u64,
    /// Waits the event loop ended while busy-polling (`-spin`): each a
    /// sleep and wake-up saved.
    pub spin_wakes: u64,
    /// Bulk revokes: one Prepare covering many seqns being filled.
    pub revokes: u64,
    /// Learned values that did not decode (applied as NOP).
    pub malformed_values: u64,
    /// Peer datagrams dropped because they did not decode.
    pub peer_datagrams_dropped: u64,
    /// Peer datagrams dropped because the cluster has a secret and they
    /// carried no valid MAC.
    pub peer_datagrams_unauthenticated: u64,
    /// Peer datagrams not sent: the socket would block or failed.
    pub peer_datagrams_send_dropped: u64,
    /// Peer messages dropped: undecodable, from an unknown sender, or
    /// arriving while this node is not a CAL.
    pub peer_messages_ignored: u64,
    /// Peer messages not sent: the node they are for has no known address.
    pub unroutable_messages: u64,
    /// Times this node found its store diverged from a majority of the
    /// CALs' and copied it again.
    pub divergences: u64,
    /// Learned seqns that were not the next one (a bug; the node stepped
    /// down and copied the store again).
    pub learned_gaps: u64,
    /// Kicks this node proposed.
    pub kicks_proposed: u64,
    /// Bytes of answers waiting to be written to connections.
    pub output_pending_bytes: u64,
    /// Whether the name service (`-b`) gives this cluster's name to
    /// another cluster, so this CAL does not register there
    /// (docs/cluster.md#stale-name-service-records).
    pub ns_name_conflict: bool,
    /// Peer messages sent, by kind (empty until the node has peers).
    pub peer_messages_sent: BTreeMap<String, u64>,
    /// Peer messages received, by kind.
    pub peer_messages_received: BTreeMap<String, u64>,
}

/// One open event stream: the directory it follows, the next rev to send,
/// and the listing still being sent, if any.
#[derive(Debug)]
pub struct EventStream {
    /// The directory, with a trailing `/` (`/` for the root).
    dir: String,
    glob: Glob,
    next_rev: Rev,
    /// A listing in progress: the tree as of one rev (shared with the
    /// store) and the last file sent. It goes out as the client reads, a
    /// chunk at a time, so a stream that does not read holds little.
    listing: Option<(Snapshot, Option<String>)>,
    /// A rev past the last message sent whose changes were all outside the
    /// directory (or NOPs): its `rev` message waits for
    /// [`EventStream::send_held_rev`], and a change sent meanwhile
    /// supersedes it (docs/web.md).
    held_rev: Option<Rev>,
}

/// Bytes of listing added to a stream's output at a time.
const LISTING_CHUNK: usize = 64 << 10;

impl EventStream {
    /// The directory followed (for logs).
    pub fn dir(&self) -> &str {
        &self.dir
    }

    /// Whether its listing is still being sent (it goes on as the client
    /// reads; changes wait until it is out).
    pub fn listing(&self) -> bool {
        self.listing.is_some()
    }

    /// Writes what the stream has next into `out`: more of its listing (a
    /// chunk), or, once the listing is out, every change from its next rev
    /// to the store's head, encoding each rev at most once per batch
    /// through `cache`. Revs after the last change sent that changed
    /// nothing under the directory are held, not sent (see
    /// [`EventStream::send_held_rev`]). A stream that fell out of the
    /// history window starts over with a listing. True if more of the
    /// listing is waiting.
    pub fn catch_up(&mut self, store: &Store, cache: &mut ChangeCache, out: &mut BytesMut) -> bool {
        if self.listing.is_some() {
            return self.list_more(out);
        }
        let head = store.rev();
        let mut last_unsent = None;
        for rev in self.next_rev..=head {
            let Some(ev) = store.event(rev) else {
                self.reset(store, out);
                return self.list_more(out);
            };
            if !self.glob.matches(&ev.path) {
                last_unsent = Some(rev);
                continue;
            }
            match cache.get(ev) {
                Some(msg) => {
                    out.extend_from_slice(msg);
                    last_unsent = None;
                }
                None => last_unsent = Some(rev),
            }
        }
        if self.next_rev <= head {
            // The newest rev decides: a change sent after a held rev
            // carries a later id, so the held one is no longer news.
            self.held_rev = last_unsent;
        }
        self.next_rev = self.next_rev.max(head + 1);
        false
    }

    /// Whether a `rev` message is held (see [`EventStream::catch_up`]).
    pub fn holds_rev(&self) -> bool {
        self.held_rev.is_some()
    }

    /// Writes the held `rev` message, if any, into `out`. The node sends
    /// held revs a little later, together, so that on a cluster, where
    /// other CALs' empty seqns follow most writes, a change does not cost
    /// every stream a second message (docs/web.md).
    pub fn send_held_rev(&mut self, out: &mut BytesMut) {
        if let Some(rev) = self.held_rev.take() {
            push_message(out, "rev", Some(rev), &rev_data(rev));
        }
    }

    /// A `reset`; the listing of the directory at the head follows
    /// ([`EventStream::list_more`]), then `ready`.
    fn reset(&mut self, store: &Store, out: &mut BytesMut) {
        let snap = store.head().clone();
        push_message(out, "reset", None, &rev_data(snap.rev()));
        self.listing = Some((snap, None));
        self.held_rev = None; // `ready` gives the listing's rev
    }

    /// The next chunk of the listing; `ready` after its last file. True if
    /// more is waiting.
    fn list_more(&mut self, out: &mut BytesMut) -> bool {
        let Some((snap, after)) = self.listing.take() else {
            return false;
        };
        let start = out.len();
        let mut last = None;
        {
            let files = match after.as_deref() {
                None => snap.walk_iter(&self.glob),
                Some(p) => snap.walk_after(&self.glob, p),
            };
            for f in files {
                let mut obj = body_json(&f.body);
                obj["path"] = json!(f.path);
                obj["rev"] = json!(f.rev);
                push_message(out, "file", None, &obj.to_string());
                last = Some(f.path);
                if out.len() - start >= LISTING_CHUNK {
                    break;
                }
            }
        }
        if out.len() - start >= LISTING_CHUNK {
            self.listing = Some((snap, last.or(after)));
            return true;
        }
        let head = snap.rev();
        push_message(out, "ready", Some(head), &rev_data(head));
        self.next_rev = head + 1;
        false
    }
}

/// Change messages encoded in this loop iteration, by rev, shared by every
/// stream (1,000 streams cost one encoding per change, not 1,000).
#[derive(Default)]
pub struct ChangeCache {
    by_rev: std::collections::HashMap<Rev, Option<Bytes>>,
}

impl ChangeCache {
    /// The change message of `ev`; `None` for a NOP, which names no file.
    fn get(&mut self, ev: &Event) -> Option<&Bytes> {
        self.by_rev
            .entry(ev.rev)
            .or_insert_with(|| encode_change(ev))
            .as_ref()
    }

    /// Forgets everything (call once per loop iteration).
    pub fn clear(&mut self) {
        self.by_rev.clear();
    }
}

/// The change message for `ev` (`None` for a NOP, which names no file).
fn encode_change(ev: &Event) -> Option<Bytes> {
    let kind = match ev.flags {
        flags::SET => "set",
        flags::DEL => "del",
        _ => return None,
    };
    let mut obj = body_json(&ev.body);
    obj["path"] = json!(&*ev.path);
    obj["rev"] = json!(ev.rev);
    obj["kind"] = json!(kind);
    let mut out = BytesMut::new();
    push_message(&mut out, "change", Some(ev.rev), &obj.to_string());
    Some(out.freeze())
}

/// `len`, `enc` and `body` of a file object: UTF-8 bodies as JSON strings
/// (the page inserts them as text), anything else in base64.
fn body_json(body: &[u8]) -> serde_json::Value {
    match std::str::from_utf8(body) {
        Ok(text) => json!({ "len": body.len(), "enc": "utf8", "body": text }),
        Err(_) => json!({
            "len": body.len(),
            "enc": "base64",
            "body": data_encoding::BASE64.encode(body),
        }),
    }
}

/// The data of `reset`, `ready` and `rev` messages.
fn rev_data(rev: Rev) -> String {
    format!("{{\"rev\":{rev}}}")
}

/// Appends one SSE message. `data` is one line (serde_json never emits a
/// raw newline).
fn push_message(out: &mut BytesMut, event: &str, id: Option<Rev>, data: &str) {
    out.put_slice(b"event: ");
    out.put_slice(event.as_bytes());
    out.put_slice(b"\n");
    if let Some(id) = id {
        out.put_slice(format!("id: {id}\n").as_bytes());
    }
    out.put_slice(b"data: ");
    out.put_slice(data.as_bytes());
    out.put_slice(b"\n\n");
}

/// The keep-alive sent to every stream periodically: a named event (not an
/// SSE comment) so the page's liveness check sees it.
pub const PING: &[u8] = b"event: ping\ndata: {}\n\n";

/// What the event loop lends [`respond`] besides the store.
pub struct Context<'a> {
    /// Gathers the figures of the stats pages (only when one is asked for).
    pub stats: &'a dyn Fn() -> NodeStats,
    /// The last 15 minutes of samples, for the charts.
    pub samples: &'a Samples,
}

/// Answers the request in `buf` once its head is complete.
pub fn respond(buf: &[u8], store: &Store, ctx: &Context<'_>) -> Outcome {
    let stats = ctx.stats;
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    let target = match req.parse(buf) {
        Ok(httparse::Status::Partial) if buf.len() <= MAX_HEAD_LEN => return Outcome::NeedMore,
        Ok(httparse::Status::Partial) => return text(431, "request head too large\n"),
        Err(_) => return text(400, "bad request\n"),
        Ok(httparse::Status::Complete(_)) => req.path.unwrap_or("/"),
    };
    let head_only = match req.method {
        Some("GET") => false,
        Some("HEAD") => true,
        _ => return text(405, "method not allowed\n"),
    };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let last_event_id = req
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("last-event-id"))
        .and_then(|h| std::str::from_utf8(h.value).ok())
        .and_then(|v| v.trim().parse::<Rev>().ok());
    let reply = match path {
        "/$stats" => page(doozer_web::STATS_HTML),
        "/$cluster" => page(doozer_web::CLUSTER_HTML),
        "/$history" => page(doozer_web::HISTORY_HTML),
        "/$tree" => page(doozer_web::TREE_HTML),
        "/$samples.json" => match query_int::<u64>(query, "after") {
            Ok(after) => json_reply(&ctx.samples.json(after)),
            Err(why) => bad_request(&why),
        },
        "/$history.json" => {
            let answer = query_str(query, "path").and_then(|p| {
                let p = p.ok_or("path: missing")?;
                let from = query_int::<Rev>(query, "rev")?;
                let limit = query_int::<usize>(query, "limit")?;
                Ok((p, from, limit))
            });
            match answer {
                Ok((p, from, limit)) => refusal_or_json(past::history(store, &p, from, limit)),
                Err(why) => bad_request(&why),
            }
        }
        "/$tree.json" => {
            let answer = query_str(query, "dir").and_then(|d| {
                Ok((
                    d.unwrap_or_else(|| "/".into()),
                    query_int::<Rev>(query, "rev")?,
                ))
            });
            match answer {
                Ok((d, rev)) => refusal_or_json(past::tree_at(store, &d, rev)),
                Err(why) => bad_request(&why),
            }
        }
        "/$stats.json" => reply(
            200,
            "application/json",
            stats_json(&stats(), store).to_string().as_bytes(),
        ),
        "/$metrics" => reply(
            200,
            "text/plain; version=0.0.4; charset=utf-8",
            metrics(&stats(), store).as_bytes(),
        ),
        _ if path.starts_with("/$assets/") => match doozer_web::asset(&path["/$assets/".len()..]) {
            Some((content_type, body)) => reply(200, content_type, body),
            None => not_found(),
        },
        _ if path.starts_with("/$events/") => {
            let resume = last_event_id.or_else(|| query_rev(query));
            match event_stream(&path["/$events".len()..], resume, head_only, store) {
                Ok(stream) => return stream,
                Err(reply) => reply, // like every other answer: HEAD strips it
            }
        }
        _ if path.starts_with("/$") => not_found(),
        _ if path.ends_with('/') && dir_glob(path).is_some() => page(doozer_web::INDEX_HTML),
        _ if crate::store::validate_path(path).is_ok() => {
            // A file: show it in its directory.
            let dir = &path[..=path.rfind('/').unwrap_or(0)];
            format!(
                "HTTP/1.1 302 Found\r\nLocation: {dir}#{path}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
            .into_bytes()
        }
        _ => not_found(),
    };
    Outcome::Reply(if head_only { strip_body(reply) } else { reply })
}

/// `/$events/<dir>`: a new event stream of `dir` (`Ok`), or the answer to
/// send instead (`Err`): a 404, or for HEAD the head a stream would have,
/// with no stream (nor its listing made for nothing).
fn event_stream(
    dir: &str,
    resume: Option<Rev>,
    head_only: bool,
    store: &Store,
) -> Result<Outcome, Vec<u8>> {
    // A stream's head has no Content-Length (it ends when either side
    // closes); a HEAD answers the same head, then closes.
    const HEAD: &str =
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n";
    if head_only {
        return Err(match dir_glob(dir) {
            Some(_) => format!("{HEAD}Connection: close\r\n\r\n").into_bytes(),
            None => not_found(),
        });
    }
    let (stream, mut out) = open_stream(dir, resume, store).ok_or_else(not_found)?;
    let mut headers =
        BytesMut::from(format!("{HEAD}Connection: keep-alive\r\n\r\nretry: 1000\n\n").as_bytes());
    headers.unsplit(std::mem::take(&mut out));
    Ok(Outcome::Stream(Box::new(stream), headers))
}

/// The glob of everything under `dir` (which ends in `/`), if `dir` is a
/// valid directory path.
fn dir_glob(dir: &str) -> Option<Glob> {
    let trimmed = dir.strip_suffix('/')?;
    // `/` itself, or a valid path other than the root plus `/`.
    if !trimmed.is_empty() && (trimmed == "/" || crate::store::validate_path(trimmed).is_err()) {
        return None;
    }
    Glob::parse(&format!("{dir}**")).ok()
}

fn query_rev(query: &str) -> Option<Rev> {
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix("rev="))
        .and_then(|v| v.parse().ok())
}

/// The percent-decoded value of query parameter `name` (its first
/// occurrence; `+` is a space, as in a form), `Ok(None)` if absent, or why
/// it cannot be read.
fn query_str(query: &str, name: &str) -> Result<Option<String>, String> {
    let Some(raw) = query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == name).then_some(v)
    }) else {
        return Ok(None);
    };
    let out = doozer::uri::unescape(raw).ok_or_else(|| format!("{name}: bad percent-encoding"))?;
    String::from_utf8(out)
        .map(Some)
        .map_err(|_| format!("{name}: not UTF-8"))
}

/// Query parameter `name` as a number, `Ok(None)` if absent or empty.
fn query_int<T: std::str::FromStr>(query: &str, name: &str) -> Result<Option<T>, String> {
    match query_str(query, name)?.as_deref() {
        None | Some("") => Ok(None),
        Some(v) => v
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| format!("{name}: not a number in range: {v:?}")),
    }
}

/// A new stream of `dir`: from `resume` if its next rev is still in the
/// history window (and not ahead of this node), else from a full listing.
fn open_stream(dir: &str, resume: Option<Rev>, store: &Store) -> Option<(EventStream, BytesMut)> {
    let glob = dir_glob(dir)?;
    let mut stream = EventStream {
        dir: dir.to_string(),
        glob,
        next_rev: 0,
        listing: None,
        held_rev: None,
    };
    let mut out = BytesMut::new();
    let head = store.rev();
    match resume {
        Some(n) if n >= 0 && n <= head && (n == head || store.event(n + 1).is_some()) => {
            push_message(&mut out, "ready", Some(n), &rev_data(n));
            stream.next_rev = n + 1;
            stream.catch_up(store, &mut ChangeCache::default(), &mut out);
            stream.send_held_rev(&mut out); // a new stream's rev goes at once
        }
        _ => {
            stream.reset(store, &mut out);
            stream.list_more(&mut out);
        }
    }
    Some((stream, out))
}

/// The CAL slots of the cluster as the store holds them.
fn cals(store: &Store) -> Vec<serde_json::Value> {
    let Ok(snap) = store.snapshot(None) else {
        return Vec::new();
    };
    let Ok(names) = snap.dir_names(ctl::CAL_DIR) else {
        return Vec::new();
    };
    let text = |p: &str| {
        snap.get(p)
            .ok()
            .map(|(b, _)| String::from_utf8_lossy(&b).into_owned())
    };
    names
        .iter()
        .map(|slot| {
            let id = text(&ctl::cal_slot(slot)).unwrap_or_default();
            let (addr, applied) = if id.is_empty() {
                (None, None)
            } else {
                (
                    text(&ctl::node_file(&id, NodeFile::Addr)),
                    text(&ctl::node_file(&id, NodeFile::Applied))
                        .and_then(|a| a.trim().parse::<Rev>().ok()),
                )
            };
            json!({ "slot": &**slot, "id": id, "addr": addr, "applied": applied })
        })
        .collect()
}

/// The `/ctl` layout as the cluster page reads it (docs/web.md#cluster-page):
/// the page names no `/ctl` path itself, it takes them from here
/// (`doozer_proto::ctl`, the one place that names them).
fn ctl_layout() -> serde_json::Value {
    let files: serde_json::Map<String, serde_json::Value> = NodeFile::ALL
        .iter()
        .map(|f| (f.name().to_string(), json!(f.name())))
        .collect();
    json!({
        "dir": ctl::CTL_DIR,
        "name": ctl::NAME_PATH,
        "cal_dir": ctl::CAL_DIR,
        "node_dir": ctl::NODE_DIR,
        "node_files": files,
    })
}

fn stats_json(s: &NodeStats, store: &Store) -> serde_json::Value {
    let mut cals = cals(store);
    // This node's applied rev is its head, whether or not a pulse wrote it.
    for c in cals.iter_mut().filter(|c| c["id"] == json!(s.node_id)) {
        c["applied"] = json!(store.rev());
    }
    let is_cal = cals.iter().any(|c| c["id"] == json!(s.node_id));
    let mut v = json!({
        "node_id": s.node_id,
        "cluster": s.cluster,
        "role": if is_cal { "CAL" } else { "slave" },
        "version": crate::VERSION,
        "uptime_s": s.uptime_s,
        "rev": store.rev(),
        "history_oldest": store.oldest_rev(),
        "history_revs": store.history_revs(),
        "cals": cals,
        "clients": s.clients,
        "web_clients": s.web_clients,
        "event_streams": s.event_streams,
        "waits_pending": store.waits_pending(),
        "memory_rss_bytes": s.memory_rss_bytes,
        "cpu_seconds": s.cpu_seconds,
        "output_pending_bytes": s.output_pending_bytes,
        "store_files": s.store_files,
        "store_bytes": s.store_bytes,
        "requests": s.requests,
        "reads": s.reads,
        "writes": s.writes,
        "waits": s.waits,
        "errors": s.errors,
        "consensus": {
            "instances_in_flight": s.instances_in_flight,
            "proposals": s.proposals,
            "write_batches": s.write_batches,
            "fills": s.fills,
            "retries": s.round_retries,
            "revokes": s.revokes,
            "malformed_values": s.malformed_values,
            "messages_sent": s.peer_messages_sent,
            "messages_received": s.peer_messages_received,
            "datagrams_dropped": s.peer_datagrams_dropped,
            "datagrams_unauthenticated": s.peer_datagrams_unauthenticated,
            "datagrams_send_dropped": s.peer_datagrams_send_dropped,
            "messages_ignored": s.peer_messages_ignored,
            "messages_unroutable": s.unroutable_messages,
            "divergences": s.divergences,
            "learned_gaps": s.learned_gaps,
            "kicks_proposed": s.kicks_proposed,
        },
    });
    // Set apart: one `json!` this large exceeds the macro's recursion
    // limit.
    v["pulse_s"] = json!(s.pulse_s);
    v["timeout_s"] = json!(s.timeout_s);
    v["consensus"]["lazy_votes"] = json!(s.lazy_votes);
    v["spin_wakes"] = json!(s.spin_wakes);
    v["ctl"] = ctl_layout();
    v
}

/// A Prometheus metric type.
#[derive(Clone, Copy)]
enum Kind {
    /// Only goes up (until the process restarts).
    Counter,
    /// Goes up and down.
    Gauge,
}

/// How a metric family reads its samples.
#[derive(Clone, Copy)]
enum Value {
    /// One unlabelled sample.
    One(fn(&NodeStats, &Store) -> f64),
    /// One counter sample per message kind, labelled `kind`.
    ByKind(fn(&NodeStats) -> &BTreeMap<String, u64>),
}

/// Every family of `/$metrics`, in order: name, type, help, value. One row
/// per metric, so a new counter is one line here.
#[rustfmt::skip]
const METRICS: &[(&str, Kind, &str, Value)] = {
    use Kind::{Counter, Gauge};
    use Value::{ByKind, One};
    &[
        ("doozer_rev", Gauge, "Current revision of the store.", One(|_, st| st.rev() as f64)),
        ("doozer_history_oldest_rev", Gauge, "Oldest revision still readable.", One(|_, st| st.oldest_rev() as f64)),
        ("doozer_requests_total", Counter, "Client requests handled.", One(|s, _| s.requests as f64)),
        ("doozer_reads_total", Counter, "Read requests answered.", One(|s, _| s.reads as f64)),
        ("doozer_writes_total", Counter, "Writes (SET, DEL, NOP) proposed.", One(|s, _| s.writes as f64)),
        ("doozer_waits_total", Counter, "WAIT requests received.", One(|s, _| s.waits as f64)),
        ("doozer_errors_total", Counter, "Error responses sent.", One(|s, _| s.errors as f64)),
        ("doozer_clients", Gauge, "Client connections open.", One(|s, _| s.clients as f64)),
        ("doozer_web_clients", Gauge, "Web connections open.", One(|s, _| s.web_clients as f64)),
        ("doozer_event_streams", Gauge, "Web event streams open.", One(|s, _| s.event_streams as f64)),
        ("doozer_waits_pending", Gauge, "WAITs and future-rev reads waiting.", One(|_, st| st.waits_pending() as f64)),
        ("doozer_store_files", Gauge, "Files in the store.", One(|s, _| s.store_files as f64)),
        ("doozer_store_bytes", Gauge, "Bytes of file bodies in the store.", One(|s, _| s.store_bytes as f64)),
        ("doozer_output_pending_bytes", Gauge, "Bytes of answers waiting to be written to connections.", One(|s, _| s.output_pending_bytes as f64)),
        ("doozer_memory_rss_bytes", Gauge, "Resident memory of the process.", One(|s, _| s.memory_rss_bytes as f64)),
        // The standard Prometheus process metric, under its standard name:
        // `doozer bench -cpu` reads it (CPU per operation).
        ("process_cpu_seconds_total", Counter, "Total user and system CPU time spent in seconds.", One(|s, _| s.cpu_seconds)),
        ("doozer_uptime_seconds", Gauge, "Seconds since the node started.", One(|s, _| s.uptime_s)),
        ("doozer_consensus_instances_in_flight", Gauge, "Paxos instances started and not yet learned.", One(|s, _| s.instances_in_flight as f64)),
        ("doozer_consensus_proposals_total", Counter, "Values proposed to consensus.", One(|s, _| s.proposals as f64)),
        ("doozer_consensus_write_batches_total", Counter, "Values proposed that carry client writes (one batch each).", One(|s, _| s.write_batches as f64)),
        ("doozer_consensus_fills_total", Counter, "Seqns of other CALs filled with NOP.", One(|s, _| s.fills as f64)),
        ("doozer_consensus_retries_total", Counter, "Paxos rounds retried.", One(|s, _| s.round_retries as f64)),
        ("doozer_consensus_lazy_votes_total", Counter, "Votes cast lazily: sent with the next sync of the data directory, since a majority before this CAL votes at once.", One(|s, _| s.lazy_votes as f64)),
        ("doozer_loop_spin_wakes_total", Counter, "Waits the event loop ended while busy-polling (-spin): each a sleep and wake-up saved.", One(|s, _| s.spin_wakes as f64)),
        ("doozer_consensus_revokes_total", Counter, "Bulk revokes: one Prepare covering many seqns being filled.", One(|s, _| s.revokes as f64)),
        ("doozer_consensus_divergences_total", Counter, "Times this node's store differed from a majority of the CALs' at the same rev (it stopped serving and copied it again).", One(|s, _| s.divergences as f64)),
        ("doozer_consensus_learned_gaps_total", Counter, "Learned seqns that were not the next one (a bug; the node copied the store again).", One(|s, _| s.learned_gaps as f64)),
        ("doozer_consensus_kicks_proposed_total", Counter, "Kicks of CALs a majority found silent, proposed by this node.", One(|s, _| s.kicks_proposed as f64)),
        ("doozer_consensus_malformed_values_total", Counter, "Learned values that did not decode (applied as NOP).", One(|s, _| s.malformed_values as f64)),
        ("doozer_ns_name_conflict", Gauge, "1 while the name service (-b) gives this cluster's name to another cluster: this CAL does not register there.", One(|s, _| f64::from(u8::from(s.ns_name_conflict)))),
        ("doozer_peer_datagrams_dropped_total", Counter, "Peer datagrams dropped because they did not decode.", One(|s, _| s.peer_datagrams_dropped as f64)),
        ("doozer_peer_datagrams_unauthenticated_total", Counter, "Peer datagrams dropped because they carried no valid MAC (the cluster has a secret).", One(|s, _| s.peer_datagrams_unauthenticated as f64)),
        ("doozer_peer_datagrams_send_dropped_total", Counter, "Peer datagrams not sent because the socket would block or failed.", One(|s, _| s.peer_datagrams_send_dropped as f64)),
        ("doozer_peer_messages_ignored_total", Counter, "Peer messages dropped: undecodable, from an unknown sender, or while not a CAL.", One(|s, _| s.peer_messages_ignored as f64)),
        ("doozer_peer_messages_unroutable_total", Counter, "Peer messages not sent because the node they are for has no known address.", One(|s, _| s.unroutable_messages as f64)),
        ("doozer_peer_messages_sent_total", Counter, "Peer messages sent, by kind.", ByKind(|s| &s.peer_messages_sent)),
        ("doozer_peer_messages_received_total", Counter, "Peer messages received, by kind.", ByKind(|s| &s.peer_messages_received)),
    ]
};

/// The Prometheus text exposition (format 0.0.4) of [`METRICS`].
fn metrics(s: &NodeStats, store: &Store) -> String {
    let mut out = String::new();
    for &(name, kind, help, value) in METRICS {
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
        match value {
            Value::One(read) => out.push_str(&format!("{name} {}\n", read(s, store))),
            Value::ByKind(read) => {
                for (kind, n) in read(s) {
                    // Kinds are our own identifiers; escape anyway, as the
                    // format asks.
                    let kind = kind
                        .replace('\\', "\\\\")
                        .replace('"', "\\\"")
                        .replace('\n', "\\n");
                    out.push_str(&format!("{name}{{kind=\"{kind}\"}} {n}\n"));
                }
            }
        }
    }
    out
}

fn json_reply(v: &serde_json::Value) -> Vec<u8> {
    reply(200, "application/json", v.to_string().as_bytes())
}

/// A 400 whose body says what is wrong (as text: the page shows it with
/// `textContent`).
fn bad_request(why: &str) -> Vec<u8> {
    reply(
        400,
        "text/plain; charset=utf-8",
        format!("{why}\n").as_bytes(),
    )
}

fn refusal_or_json(r: Result<serde_json::Value, past::Refusal>) -> Vec<u8> {
    match r {
        Ok(v) => json_reply(&v),
        Err((status, why)) => reply(
            status,
            "text/plain; charset=utf-8",
            format!("{why}\n").as_bytes(),
        ),
    }
}

fn page(html: &str) -> Vec<u8> {
    reply(200, "text/html; charset=utf-8", html.as_bytes())
}

fn not_found() -> Vec<u8> {
    reply(404, "text/plain; charset=utf-8", b"not found\n")
}

fn text(status: u16, body: &str) -> Outcome {
    Outcome::Reply(reply(status, "text/plain; charset=utf-8", body.as_bytes()))
}

/// A HEAD answer: the GET headers without the body.
fn strip_body(mut r: Vec<u8>) -> Vec<u8> {
    if let Some(i) = r.windows(4).position(|w| w == b"\r\n\r\n") {
        r.truncate(i + 4);
    }
    r
}

fn reply(status: u16, content_type: &str, body: &[u8]) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        500 => "Internal Server Error",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        _ => "",
    };
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Mutation;

    fn store_with(files: &[(&str, &[u8])]) -> Store {
        let mut s = Store::new(5);
        for (path, body) in files {
            let m = Mutation::Set {
                path: path.to_string(),
                rev: -1,
                body: Bytes::copy_from_slice(body),
            };
            s.apply(s.rev() + 1, &m);
        }
        s
    }

    /// The (event, id, data) triples of an SSE byte stream.
    fn messages(out: &[u8]) -> Vec<(String, Option<Rev>, serde_json::Value)> {
        let text = String::from_utf8(out.to_vec()).expect("utf8");
        text.split("\n\n")
            .filter(|m| m.starts_with("event: "))
            .map(|m| {
                let (mut ev, mut id, mut data) = (String::new(), None, serde_json::Value::Null);
                for line in m.lines() {
                    if let Some(v) = line.strip_prefix("event: ") {
                        ev = v.to_string();
                    } else if let Some(v) = line.strip_prefix("id: ") {
                        id = v.parse().ok();
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data = serde_json::from_str(v).expect("json data");
                    }
                }
                (ev, id, data)
            })
            .collect()
    }

    fn kinds(m: &[(String, Option<Rev>, serde_json::Value)]) -> Vec<&str> {
        m.iter().map(|(e, _, _)| e.as_str()).collect()
    }

    #[test]
    fn fresh_stream_lists_the_directory_then_follows_changes() {
        let mut s = store_with(&[("/a/x", b"1"), ("/b", b"2"), ("/a/y/z", b"<script>")]);
        let (mut stream, out) = open_stream("/a/", None, &s).expect("valid dir");
        let m = messages(&out);
        assert_eq!(kinds(&m), ["reset", "file", "file", "ready"]);
        assert_eq!(m[1].2["path"], "/a/x");
        assert_eq!(m[2].2["body"], "<script>");
        assert_eq!(m[3].1, Some(3));

        let set = |p: &str| Mutation::Set {
            path: p.into(),
            rev: -1,
            body: Bytes::from_static(&[0xff, 0]),
        };
        s.apply(4, &set("/a/bin"));
        s.apply(5, &set("/elsewhere"));
        s.apply(
            6,
            &Mutation::Del {
                path: "/a/x".into(),
                rev: -1,
            },
        );
        s.apply(7, &Mutation::Nop);
        let mut out = BytesMut::new();
        stream.catch_up(&s, &mut ChangeCache::default(), &mut out);
        let m = messages(&out);
        assert_eq!(kinds(&m), ["change", "change"]);
        assert_eq!(
            (m[0].1, &m[0].2["kind"], &m[0].2["enc"]),
            (Some(4), &json!("set"), &json!("base64"))
        );
        assert_eq!(m[0].2["len"], 2);
        assert_eq!((m[1].1, &m[1].2["kind"]), (Some(6), &json!("del")));
        // The NOP's rev is held until asked for.
        assert!(stream.holds_rev());
        stream.send_held_rev(&mut out);
        let m = messages(&out);
        assert_eq!(kinds(&m), ["change", "change", "rev"]);
        assert_eq!(m[2].1, Some(7));
        // nothing new: nothing sent
        let mut out = BytesMut::new();
        stream.catch_up(&s, &mut ChangeCache::default(), &mut out);
        stream.send_held_rev(&mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn a_change_supersedes_a_held_rev_and_a_later_empty_rev_replaces_it() {
        let mut s = store_with(&[("/a/x", b"1")]);
        let (mut stream, _) = open_stream("/a/", None, &s).expect("valid dir");
        let mut out = BytesMut::new();
        let set = |p: &str| Mutation::Set {
            path: p.into(),
            rev: -1,
            body: Bytes::from_static(b"v"),
        };
        s.apply(2, &set("/elsewhere"));
        stream.catch_up(&s, &mut ChangeCache::default(), &mut out);
        assert!(out.is_empty() && stream.holds_rev());
        // A change inside: its id is later, the held rev is dropped.
        s.apply(3, &set("/a/y"));
        stream.catch_up(&s, &mut ChangeCache::default(), &mut out);
        assert!(!stream.holds_rev());
        stream.send_held_rev(&mut out);
        assert_eq!(kinds(&messages(&out)), ["change"]);
        // Two empty revs in two passes: only the later one goes out.
        s.apply(4, &Mutation::Nop);
        stream.catch_up(&s, &mut ChangeCache::default(), &mut out);
        s.apply(5, &set("/elsewhere"));
        stream.catch_up(&s, &mut ChangeCache::default(), &mut out);
        let mut out = BytesMut::new();
        stream.send_held_rev(&mut out);
        let m = messages(&out);
        assert_eq!((kinds(&m), m[0].1), (vec!["rev"], Some(5)));
        assert!(!stream.holds_rev());
    }

    #[test]
    fn resume_in_history_sends_only_missed_changes() {
        let s = store_with(&[("/a", b"1"), ("/b", b"2"), ("/a", b"3")]);
        let (_, out) = open_stream("/", Some(1), &s).expect("valid");
        let m = messages(&out);
        assert_eq!(kinds(&m), ["ready", "change", "change"]);
        assert_eq!(m[0].1, Some(1));
        assert_eq!((m[2].1, &m[2].2["body"]), (Some(3), &json!("3")));
    }

    #[test]
    fn resume_outside_history_or_ahead_starts_over() {
        let s = store_with(&[("/a", &b"1"[..]); 10]);
        for resume in [Some(1), Some(99), Some(-5)] {
            let (_, out) = open_stream("/", resume, &s).expect("valid");
            let m = messages(&out);
            assert_eq!(kinds(&m), ["reset", "file", "ready"], "{resume:?}");
            assert_eq!(m[2].1, Some(10));
        }
    }

    #[test]
    fn bad_directories_have_no_stream() {
        let s = store_with(&[]);
        for dir in ["/a b/", "//", "/a", "/$x/"] {
            assert!(open_stream(dir, None, &s).is_none(), "{dir}");
        }
    }

    fn get(path: &str, s: &Store) -> String {
        request("GET", path, s)
    }

    fn request(method: &str, path: &str, s: &Store) -> String {
        let req = format!("{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n");
        let samples = Samples::default();
        let ctx = Context {
            stats: &NodeStats::default,
            samples: &samples,
        };
        match respond(req.as_bytes(), s, &ctx) {
            Outcome::Reply(r) => String::from_utf8_lossy(&r).into_owned(),
            Outcome::Stream(_, r) => String::from_utf8_lossy(&r).into_owned(),
            Outcome::NeedMore => "need more".into(),
        }
    }

    #[test]
    fn routes() {
        let s = store_with(&[("/ctl/name", b"local")]);
        assert!(get("/", &s).starts_with("HTTP/1.1 200"));
        assert!(get("/ctl/", &s).starts_with("HTTP/1.1 200"));
        assert!(get("/ctl/name", &s).contains("Location: /ctl/#/ctl/name"));
        assert!(get("/a%20b/", &s).starts_with("HTTP/1.1 404"));
        assert!(get("/$nope", &s).starts_with("HTTP/1.1 404"));
        assert!(get("/$assets/nope.js", &s).starts_with("HTTP/1.1 404"));
        let ev = get("/$events/ctl/", &s);
        assert!(ev.contains("text/event-stream") && ev.contains("event: ready"));
        let json: serde_json::Value = {
            let r = get("/$stats.json", &s);
            serde_json::from_str(&r[r.find("\r\n\r\n").expect("head") + 4..]).expect("json")
        };
        assert_eq!(json["rev"], 1);
        assert_eq!(json["consensus"]["fills"], 0);
        let partial = b"GET / HTTP/1.1\r\n";
        assert!(matches!(
            respond(
                partial,
                &s,
                &Context {
                    stats: &NodeStats::default,
                    samples: &Samples::default()
                }
            ),
            Outcome::NeedMore
        ));
    }

    #[test]
    fn head_answers_have_no_body_and_open_no_stream() {
        let s = store_with(&[("/ctl/name", b"local")]);
        // The unknown directory was found by fuzzing (http_request): its
        // 404 kept its body.
        for (path, status) in [
            ("/$events/ctl/", "200"),
            ("/$events/a%20b/", "404"),
            ("/$nope", "404"),
            ("/", "200"),
        ] {
            let r = request("HEAD", path, &s);
            assert!(r.starts_with(&format!("HTTP/1.1 {status}")), "{path}: {r}");
            assert!(r.ends_with("\r\n\r\n"), "{path}: a body: {r:?}");
        }
        // A stream's head, as a GET gets it: no length (its body has none).
        let r = request("HEAD", "/$events/ctl/", &s);
        assert!(r.contains("Content-Type: text/event-stream\r\n"), "{r}");
        assert!(!r.contains("Content-Length"), "{r}");
        let events = "HEAD /$events/ctl/ HTTP/1.1\r\n\r\n";
        let ctx = Context {
            stats: &NodeStats::default,
            samples: &Samples::default(),
        };
        assert!(matches!(
            respond(events.as_bytes(), &s, &ctx),
            Outcome::Reply(_)
        ));
    }

    /// The status code and body of `GET path`.
    fn get_body(path: &str, s: &Store) -> (u16, String) {
        let r = get(path, s);
        let status = r[9..12].parse().expect("status");
        (
            status,
            r[r.find("\r\n\r\n").expect("head") + 4..].to_string(),
        )
    }

    #[test]
    fn the_new_pages_and_their_json() {
        let mut s = store_with(&[("/d/gone", b"<img src=x onerror=alert(1)>"), ("/d/f", b"1")]);
        s.apply(
            3,
            &Mutation::Del {
                path: "/d/gone".into(),
                rev: -1,
            },
        );
        for page in ["/$cluster", "/$history?path=/d/f", "/$tree?dir=/d/&rev=2"] {
            let r = get(page, &s);
            assert!(
                r.starts_with("HTTP/1.1 200") && r.contains("text/html"),
                "{page}"
            );
        }
        let (status, body) = get_body("/$tree.json?dir=%2Fd%2F&rev=2", &s);
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(v["files"][1]["path"], "/d/gone");
        assert_eq!(v["files"][1]["body"], "<img src=x onerror=alert(1)>");
        let (status, body) = get_body("/$history.json?path=/d/gone", &s);
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(v["entries"][0]["kind"], "del");
        assert_eq!(v["entries"][1]["rev"], 1);
        let (status, body) = get_body("/$samples.json?after=5", &s);
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(
            (v["seq"].clone(), v["writes"].clone()),
            (json!(0), json!([]))
        );
        let (_, body) = get_body("/$stats.json", &s);
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert!(
            v["pulse_s"].is_number() && v["timeout_s"].is_number(),
            "{v}"
        );
    }

    #[test]
    fn bad_queries_are_clear_4xx_never_panics() {
        let s = store_with(&[("/f", b"x")]);
        for (target, want) in [
            ("/$history.json", 400),
            ("/$history.json?path=", 400),
            ("/$history.json?path=/", 400),
            ("/$history.json?path=%zz", 400),
            ("/$history.json?path=%ff", 400),
            ("/$history.json?path=%", 400),
            ("/$history.json?path=/f&rev=x", 400),
            ("/$history.json?path=/f&rev=99999999999999999999999", 400),
            ("/$history.json?path=/f&rev=-1", 404),
            ("/$history.json?path=/f&rev=2", 404),
            ("/$history.json?path=/f&limit=0", 400),
            ("/$history.json?path=/f&limit=-1", 400),
            ("/$history.json?path=/a b", 400),
            ("/$tree.json?dir=/f", 400),
            ("/$tree.json?dir=f/", 400),
            ("/$tree.json?dir=/&rev=7", 404),
            ("/$tree.json?dir=/&rev=1.5", 400),
            ("/$samples.json?after=-1", 400),
            ("/$samples.json?after=%", 400),
        ] {
            let (status, body) = get_body(target, &s);
            assert_eq!(status, want, "{target}: {body}");
            assert!(!body.trim().is_empty(), "{target}: no reason given");
        }
        // Defaults: the whole history, the root at the head.
        assert_eq!(get_body("/$history.json?path=/f", &s).0, 200);
        assert_eq!(get_body("/$tree.json", &s).0, 200);
        assert_eq!(get_body("/$samples.json", &s).0, 200);
    }

    #[test]
    fn query_values_are_percent_decoded() {
        assert_eq!(
            query_str("a=1&path=%2Fx%2Fy", "path"),
            Ok(Some("/x/y".into()))
        );
        assert_eq!(query_str("path=a+b", "path"), Ok(Some("a b".into())));
        assert_eq!(query_str("pathx=1", "path"), Ok(None));
        assert_eq!(query_str("path", "path"), Ok(Some(String::new())));
        assert_eq!(query_int::<i64>("rev=&x=1", "rev"), Ok(None));
        assert_eq!(query_int::<i64>("rev=12", "rev"), Ok(Some(12)));
        assert!(query_str("path=%e2%82", "path").is_err());
    }

    #[test]
    fn metrics_are_well_formed_families() {
        let s = store_with(&[("/a", b"xyz")]);
        let mut sent = std::collections::BTreeMap::new();
        sent.insert("vote".to_string(), 7);
        let text = metrics(
            &NodeStats {
                store_files: 1,
                peer_messages_sent: sent,
                ..Default::default()
            },
            &s,
        );
        let mut typed = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                typed.insert(rest.split(' ').next().expect("name").to_string());
            } else if !line.starts_with('#') {
                let (name, value) = line.split_once(' ').expect("sample");
                let name = name.split('{').next().expect("name");
                assert!(typed.contains(name), "{name} has no TYPE");
                assert!(value.parse::<f64>().is_ok(), "{line}");
            }
        }
        assert!(text.contains("\ndoozer_rev 1\n"));
        assert!(text.contains("\ndoozer_store_files 1\n"));
        assert!(text.contains("\ndoozer_peer_messages_sent_total{kind=\"vote\"} 7\n"));
    }

    #[test]
    fn metric_names_are_unique_and_counters_say_total() {
        let mut names = std::collections::HashSet::new();
        for &(name, kind, _, _) in METRICS {
            assert!(names.insert(name), "{name} twice");
            // Ours, or a standard process metric.
            assert!(
                name.starts_with("doozer_") || name.starts_with("process_"),
                "{name}"
            );
            let total = name.ends_with("_total");
            assert_eq!(total, matches!(kind, Kind::Counter), "{name}");
        }
    }

    #[test]
    fn drop_counters_are_shown_in_metrics_and_stats() {
        let s = store_with(&[]);
        let stats = NodeStats {
            revokes: 1,
            malformed_values: 2,
            peer_datagrams_send_dropped: 3,
            unroutable_messages: 4,
            ..Default::default()
        };
        let text = metrics(&stats, &s);
        for line in [
            "doozer_consensus_revokes_total 1",
            "doozer_consensus_malformed_values_total 2",
            "doozer_peer_datagrams_send_dropped_total 3",
            "doozer_peer_messages_unroutable_total 4",
        ] {
            assert!(text.contains(&format!("\n{line}\n")), "{line}");
        }
        let json = stats_json(&stats, &s);
        let c = &json["consensus"];
        assert_eq!(
            (
                &c["revokes"],
                &c["malformed_values"],
                &c["datagrams_send_dropped"],
                &c["messages_unroutable"]
            ),
            (&json!(1), &json!(2), &json!(3), &json!(4))
        );
    }
}
