//! The figures of the stats page and metrics, gathered from the replica,
//! the transport and the connections; and what the node asks of the
//! operating system (ids and seeds from `/dev/urandom`, the host name,
//! resident memory).

use std::collections::BTreeMap;
use std::io::{self, Read};

use super::Clock;
use crate::consensus::MsgCounts;
use crate::replica::Replica;
use crate::transport::PeerTransport;
use crate::web::NodeStats;

/// Where the figures come from (borrowed from the node for one page).
pub(super) struct Sources<'a> {
    pub replica: &'a Replica,
    pub peers: &'a PeerTransport,
    pub clock: &'a Clock,
    pub node_id: &'a str,
    pub cluster: &'a str,
    /// `-pulse` and `-timeout`, milliseconds (the cluster page judges by
    /// them).
    pub pulse_ms: u64,
    pub timeout_ms: u64,
    pub web_clients: usize,
    pub event_streams: usize,
    pub output_pending_bytes: usize,
    pub ns_name_conflict: bool,
    pub spin_wakes: u64,
}

impl Sources<'_> {
    /// The figures of the stats page and metrics.
    pub(super) fn node_stats(&self) -> NodeStats {
        let s = self.replica.stats();
        let consensus = self.replica.consensus_stats();
        let head = self.replica.store().head();
        let transport = self.peers.stats();
        let c = consensus.as_ref().map(|(c, _)| c);
        NodeStats {
            node_id: self.node_id.to_string(),
            cluster: self.cluster.to_string(),
            uptime_s: self.clock.elapsed().as_secs_f64(),
            pulse_s: self.pulse_ms as f64 / 1000.0,
            timeout_s: self.timeout_ms as f64 / 1000.0,
            memory_rss_bytes: rss_bytes().unwrap_or(0),
            cpu_seconds: cpu_seconds().unwrap_or(0.0),
            clients: s.clients,
            web_clients: self.web_clients as u64,
            event_streams: self.event_streams as u64,
            requests: s.requests,
            reads: s.reads,
            writes: s.writes,
            waits: s.waits,
            errors: s.errors,
            store_files: head.files(),
            store_bytes: head.bytes(),
            proposals: s.proposals,
            write_batches: s.write_batches,
            instances_in_flight: consensus.as_ref().map_or(0, |(_, n)| *n as u64),
            fills: c.map_or(0, |c| c.fills),
            round_retries: c.map_or(0, |c| c.round_retries),
            lazy_votes: c.map_or(0, |c| c.lazy_votes),
            spin_wakes: self.spin_wakes,
            revokes: c.map_or(0, |c| c.revokes),
            malformed_values: s.malformed_values,
            divergences: s.divergences,
            learned_gaps: s.learned_gaps,
            kicks_proposed: s.kicks_proposed,
            output_pending_bytes: self.output_pending_bytes as u64,
            ns_name_conflict: self.ns_name_conflict,
            peer_datagrams_dropped: transport.garbage_dropped,
            peer_datagrams_unauthenticated: transport.unauthenticated_dropped,
            peer_datagrams_send_dropped: transport.send_dropped,
            peer_messages_ignored: s.peer_messages_ignored,
            unroutable_messages: s.unroutable_messages,
            peer_messages_sent: c.map(|c| by_kind(&c.sent)).unwrap_or_default(),
            peer_messages_received: c.map(|c| by_kind(&c.received)).unwrap_or_default(),
        }
    }
}

/// Peer message counts by kind, as the stats page and metrics label them.
fn by_kind(c: &MsgCounts) -> BTreeMap<String, u64> {
    [
        ("batch", c.batches),
        ("prepare", c.prepares),
        ("promise", c.promises),
        ("accept", c.accepts),
        ("vote", c.votes),
        ("reject", c.rejects),
        ("learned", c.learned),
        ("skip", c.skips),
        ("fetch", c.fetches),
    ]
    .into_iter()
    .map(|(k, n)| (k.to_string(), n))
    .collect()
}

/// CPU time this process used, user and system, in seconds
/// (`getrusage`, every thread).
fn cpu_seconds() -> Option<f64> {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a whole `rusage` into the pointer it is
    // given, a valid, writable one here; on failure nothing is read.
    let ok = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) } == 0;
    if !ok {
        return None;
    }
    // SAFETY: initialised by the successful call above (and zeroed before).
    let u = unsafe { usage.assume_init() };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Some(secs(u.ru_utime) + secs(u.ru_stime))
}

/// Resident memory of this process, from `/proc/self/statm` (Linux).
fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// A random seed for consensus backoff jitter, from the OS.
pub(super) fn random_u64() -> io::Result<u64> {
    let mut bytes = [0u8; 8];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(u64::from_le_bytes(bytes))
}

/// A fresh node id: 80 random bits in base32 (16 characters), as the Go
/// original made them. Randomness comes from the OS, outside the pure core.
pub fn new_node_id() -> io::Result<String> {
    let mut bytes = [0u8; 10];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(data_encoding::BASE32.encode(&bytes))
}

/// This machine's host name, or `unknown`.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}

/// Raises this process's soft limit on open descriptors to its hard limit
/// (a node serves many connections; the common default soft limit of
/// 1,024 is far below what the hard limit allows), and returns the limit
/// in force.
pub(super) fn raise_fd_limit() -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write `lim`, a valid,
    // initialised rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1_024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
    }
    usize::try_from(lim.rlim_cur).unwrap_or(usize::MAX)
}
