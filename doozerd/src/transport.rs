//! Peer transport: UDP on the same host:port as `-l` (docs/reference.md#peer-transport).
//!
//! The transport moves opaque, already-encoded peer messages. Everything
//! queued for one peer during a loop iteration is packed into as few
//! datagrams as possible when the loop flushes (drain all input, then send
//! once). A datagram is a prost [`Datagram`]
//! envelope holding the messages; anything that does not decode as one is
//! garbage: dropped and counted, never a panic. Socket buffers are made large
//! so a burst of a full window of instances is not dropped by the kernel.
//!
//! UDP may drop, duplicate and reorder datagrams; consensus tolerates all
//! three, so a send that would block is dropped (and counted) rather than
//! queued without bound.
//!
//! # Authenticated peers
//!
//! When the cluster has a secret (`DOOZER_RWSECRET`, the same on every
//! node), every datagram is sealed with a [`PeerKey`]: HMAC-SHA256 under a
//! key derived from the secret with HKDF and a label of its own, so the
//! secret itself never keys anything on the wire. A sealed datagram is
//!
//! ```text
//! MAC_VERSION (1 byte) | tag (32 bytes) | envelope (as without a secret)
//! ```
//!
//! and the tag covers the version, the *sender's* address, the *receiver's*
//! address and the whole envelope. The receiver checks it against the
//! datagram's source address, which is the sender's `-l` address (nodes
//! send from the socket bound to it), and its own `-l` address, so a
//! datagram can be neither re-attributed to another node nor redirected
//! to one (a Promise's ballot is its receiver's: delivered to another
//! coordinator it would claim a promise never made). Anything
//! that does not verify (no MAC, a MAC under another key, a flipped bit, a
//! truncation, another sender) is dropped and counted apart from garbage
//! (`unauthenticated_dropped`), with a rate-limited warning in the log.
//! The check is constant time. Without a secret, datagrams are exactly the
//! bare envelope, as before.
//!
//! A replayed genuine datagram verifies: to consensus it is the network
//! duplicating a datagram, which Paxos tolerates (docs/security.md).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mio::net::UdpSocket;
use prost::Message;
use ring::{hkdf, hmac};
use subtle::ConstantTimeEq;

/// Largest datagram sent: the IPv4 UDP payload limit (65,507) less room
/// for the authenticated form's [`MAC_OVERHEAD`].
pub const MAX_DATAGRAM_LEN: usize = 65_000;
/// Largest single message: what fits alone in a datagram's envelope. A
/// 32 KiB file body plus its message framing fits with room to spare.
pub const MAX_MESSAGE_LEN: usize = MAX_DATAGRAM_LEN - 16;
/// Send and receive socket buffer size asked of the kernel.
pub const SOCKET_BUFFER_BYTES: usize = 8 << 20;

/// The envelope of one datagram: several encoded peer messages.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Datagram {
    /// Encoded peer messages, in the order they were queued.
    #[prost(bytes = "bytes", repeated, tag = "1")]
    pub msgs: Vec<Bytes>,
}

/// Counters of the transport, for the stats page and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransportStats {
    /// Datagrams sent.
    pub datagrams_sent: u64,
    /// Datagrams received (well-formed or not).
    pub datagrams_received: u64,
    /// Messages delivered to the caller.
    pub messages_received: u64,
    /// Datagrams dropped because they did not decode.
    pub garbage_dropped: u64,
    /// Datagrams not sent because the socket would block or failed.
    pub send_dropped: u64,
    /// Datagrams dropped because the cluster has a secret and they did not
    /// carry a valid MAC for their source address.
    pub unauthenticated_dropped: u64,
}

/// First byte of a sealed datagram: the format of what follows. A bare
/// envelope starts with `0x0a` (field 1, length-delimited) or is empty, so
/// the two cannot be mistaken for each other.
pub const MAC_VERSION: u8 = 1;
/// Length of the tag: the full HMAC-SHA256 output. Not truncated: 32
/// bytes per datagram of up to 64 KiB costs nothing worth saving.
pub const TAG_LEN: usize = 32;
/// Bytes a sealed datagram adds to the envelope.
pub const MAC_OVERHEAD: usize = 1 + TAG_LEN;
/// HKDF salt of the peer MAC key: names the protocol.
const KEY_SALT: &[u8] = b"doozer";
/// HKDF info of the peer MAC key: names the use, so the same secret never
/// keys two different things alike.
const KEY_LABEL: &[u8] = b"doozer peer mac v1";
/// Least time between two warnings about unauthenticated datagrams.
pub const WARN_INTERVAL: Duration = Duration::from_secs(10);

/// The key peer datagrams are sealed and checked with, derived from the
/// cluster's rw secret. Its `Debug` form shows nothing of the key.
#[derive(Clone)]
pub struct PeerKey {
    key: hmac::Key,
}

impl std::fmt::Debug for PeerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PeerKey(..)")
    }
}

impl PeerKey {
    /// The key of a cluster whose rw secret is `secret`; `None` for the
    /// empty secret (no secret: datagrams are not sealed). HKDF-SHA256
    /// with a salt and label of its own: the raw secret is never the key.
    pub fn from_secret(secret: &[u8]) -> Option<PeerKey> {
        if secret.is_empty() {
            return None;
        }
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, KEY_SALT).extract(secret);
        let okm = prk.expand(&[KEY_LABEL], hmac::HMAC_SHA256).ok()?;
        Some(PeerKey {
            key: hmac::Key::from(okm),
        })
    }

    /// The tag of `payload` sent by `from` (the sender's `-l` address) to
    /// `to` (the receiver's).
    fn tag(&self, from: SocketAddr, to: SocketAddr, payload: &[u8]) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(&[MAC_VERSION]);
        // An address's encoding has a fixed length per family, so version,
        // addresses and payload cannot run into each other.
        for addr in [from, to] {
            match canonical_ip(addr.ip()) {
                IpAddr::V4(ip) => {
                    ctx.update(&[4]);
                    ctx.update(&ip.octets());
                }
                IpAddr::V6(ip) => {
                    ctx.update(&[6]);
                    ctx.update(&ip.octets());
                }
            }
            ctx.update(&addr.port().to_be_bytes());
        }
        ctx.update(payload);
        ctx.sign()
    }

    /// Seals an encoded envelope sent from `from` to `to`: version, tag,
    /// envelope.
    pub fn seal(&self, from: SocketAddr, to: SocketAddr, payload: &[u8]) -> Vec<u8> {
        let tag = self.tag(from, to, payload);
        let mut out = Vec::with_capacity(MAC_OVERHEAD + payload.len());
        out.push(MAC_VERSION);
        out.extend_from_slice(tag.as_ref());
        out.extend_from_slice(payload);
        out
    }

    /// The envelope of `datagram` received from `from` at `to`, if it is
    /// sealed under this key by that sender for this receiver; `None`
    /// otherwise. The tag comparison takes the same time wherever the first
    /// difference is.
    pub fn open<'a>(
        &self,
        from: SocketAddr,
        to: SocketAddr,
        datagram: &'a [u8],
    ) -> Option<&'a [u8]> {
        if datagram.len() < MAC_OVERHEAD || datagram[0] != MAC_VERSION {
            return None;
        }
        let (tag, payload) = datagram[1..].split_at(TAG_LEN);
        let want = self.tag(from, to, payload);
        bool::from(want.as_ref().ct_eq(tag)).then_some(payload)
    }
}

/// `ip` with an IPv4-mapped IPv6 address as the IPv4 address it maps, so a
/// dual-stack socket's view of a sender matches the sender's own.
fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Rate limit of the warning about unauthenticated datagrams: the first is
/// logged at once, later ones at most every [`WARN_INTERVAL`], summed.
#[derive(Debug, Default)]
struct DropWarning {
    /// Dropped since the last warning.
    unreported: u64,
    /// Source of the last one dropped.
    last_from: Option<SocketAddr>,
    /// No warning before this.
    quiet_until: Option<Instant>,
}

/// A message too large to send in one datagram.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("peer message of {len} bytes exceeds the limit of {MAX_MESSAGE_LEN} bytes")]
pub struct TooLarge {
    /// Its length.
    pub len: usize,
}

/// The UDP socket of a node and what is queued on it.
pub struct PeerTransport {
    socket: UdpSocket,
    /// The bound address: what receivers see as the source and what
    /// senders address, so what datagrams are sealed from and for.
    local: SocketAddr,
    /// Seals and checks datagrams when the cluster has a secret.
    key: Option<PeerKey>,
    /// Messages per peer, in the order each peer was first queued to
    /// since the last flush: datagrams leave in that order
    /// (docs/cluster.md#message-order).
    outbox: Vec<(SocketAddr, Vec<Bytes>)>,
    buf: Vec<u8>,
    stats: TransportStats,
    warning: DropWarning,
}

impl PeerTransport {
    /// Binds `addr` (the `-l` address) with large socket buffers. With a
    /// `key`, every datagram sent is sealed and every datagram received
    /// must be.
    pub fn bind(addr: SocketAddr, key: Option<PeerKey>) -> io::Result<PeerTransport> {
        let socket = UdpSocket::bind(addr)?;
        let sock = socket2::SockRef::from(&socket);
        // Best effort: the kernel caps these at its own maximum.
        let _ = sock.set_recv_buffer_size(SOCKET_BUFFER_BYTES);
        let _ = sock.set_send_buffer_size(SOCKET_BUFFER_BYTES);
        let local = socket.local_addr()?;
        Ok(PeerTransport {
            socket,
            local,
            key,
            outbox: Vec::new(),
            buf: vec![0; 65_536],
            stats: TransportStats::default(),
            warning: DropWarning::default(),
        })
    }

    /// The socket, to register with the poll (readable).
    pub fn socket_mut(&mut self) -> &mut UdpSocket {
        &mut self.socket
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// The counters.
    pub fn stats(&self) -> TransportStats {
        self.stats
    }

    /// Queues an encoded message for `to`; sent by the next [`flush`].
    ///
    /// [`flush`]: PeerTransport::flush
    pub fn queue(&mut self, to: SocketAddr, msg: Bytes) -> Result<(), TooLarge> {
        if msg.len() > MAX_MESSAGE_LEN {
            return Err(TooLarge { len: msg.len() });
        }
        // Few peers: a scan beats hashing, and keeps the order.
        match self.outbox.iter_mut().find(|(a, _)| *a == to) {
            Some((_, msgs)) => msgs.push(msg),
            None => self.outbox.push((to, vec![msg])),
        }
        Ok(())
    }

    /// Sends everything queued, packed per peer, peers in the order they
    /// were first queued to.
    pub fn flush(&mut self) {
        for (to, msgs) in self.outbox.drain(..) {
            for envelope in pack(msgs) {
                let datagram = match &self.key {
                    Some(key) => key.seal(self.local, to, &envelope),
                    None => envelope,
                };
                match self.socket.send_to(&datagram, to) {
                    Ok(_) => self.stats.datagrams_sent += 1,
                    Err(e) => {
                        self.stats.send_dropped += 1;
                        if e.kind() != io::ErrorKind::WouldBlock {
                            log::debug!("peer send to {to}: {e}");
                        }
                    }
                }
            }
        }
    }

    /// Receives every datagram waiting on the socket and hands each message
    /// in it to `deliver` with the sender's address. Garbage and, with a
    /// key, datagrams without a valid MAC are counted and dropped.
    pub fn recv(&mut self, mut deliver: impl FnMut(SocketAddr, Bytes)) {
        loop {
            match self.socket.recv_from(&mut self.buf) {
                Ok((n, from)) => {
                    self.stats.datagrams_received += 1;
                    match unpack(self.key.as_ref(), from, self.local, &self.buf[..n]) {
                        Ok(msgs) => {
                            self.stats.messages_received += msgs.len() as u64;
                            for m in msgs {
                                deliver(from, m);
                            }
                        }
                        Err(Unpacked::Unauthenticated) => {
                            self.stats.unauthenticated_dropped += 1;
                            self.warning.unreported += 1;
                            self.warning.last_from = Some(from);
                            self.warn_dropped(Instant::now());
                        }
                        Err(Unpacked::Garbage) => self.stats.garbage_dropped += 1,
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // e.g. ICMP port unreachable reported on Linux: the peer
                    // is down; consensus retries on its own.
                    log::debug!("peer receive: {e}");
                    return;
                }
            }
        }
    }
}

impl PeerTransport {
    /// Logs the warning about unauthenticated datagrams if some were dropped
    /// since the last one and the quiet interval is over. The event loop
    /// calls this at [`PeerTransport::warning_due`].
    pub fn warn_dropped(&mut self, now: Instant) {
        let w = &mut self.warning;
        if w.unreported == 0 || w.quiet_until.is_some_and(|t| now < t) {
            return;
        }
        log::warn!(
            "dropped {} peer datagram(s) without a valid MAC (total {}), the last from {}; \
             a stranger, or a node with another DOOZER_RWSECRET",
            w.unreported,
            self.stats.unauthenticated_dropped,
            w.last_from
                .map_or_else(|| "?".to_string(), |a| a.to_string())
        );
        w.unreported = 0;
        w.quiet_until = Some(now + WARN_INTERVAL);
    }

    /// When [`PeerTransport::warn_dropped`] has a warning to log, if any.
    pub fn warning_due(&self) -> Option<Instant> {
        (self.warning.unreported > 0).then(|| self.warning.quiet_until.unwrap_or_else(Instant::now))
    }
}

/// Why a received datagram delivered nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unpacked {
    /// The cluster has a key and the datagram carries no valid MAC from
    /// its sender for this receiver.
    Unauthenticated,
    /// Not an envelope (after the MAC, if any, was checked).
    Garbage,
}

/// The messages of `datagram`, received from `from` at `to` (this node's
/// `-l` address): what [`PeerTransport::recv`] delivers. With a `key` the
/// datagram must be sealed by `from` for `to`; the envelope must decode.
/// Anything else is an error, never a panic (the bytes come from anyone
/// who can send a UDP datagram).
pub fn unpack(
    key: Option<&PeerKey>,
    from: SocketAddr,
    to: SocketAddr,
    datagram: &[u8],
) -> Result<Vec<Bytes>, Unpacked> {
    let envelope = match key {
        None => datagram,
        Some(key) => key
            .open(from, to, datagram)
            .ok_or(Unpacked::Unauthenticated)?,
    };
    Datagram::decode(envelope)
        .map(|d| d.msgs)
        .map_err(|_| Unpacked::Garbage)
}

/// Length of `msg` as one `msgs` field of the envelope.
fn field_len(msg: &Bytes) -> usize {
    1 + prost::length_delimiter_len(msg.len()) + msg.len()
}

/// Packs messages, in order, into encoded datagrams of at most
/// [`MAX_DATAGRAM_LEN`] bytes each (a message of at most
/// [`MAX_MESSAGE_LEN`] always fits alone).
pub fn pack(msgs: impl IntoIterator<Item = Bytes>) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut cur = Datagram::default();
    let mut cur_len = 0;
    for m in msgs {
        let len = field_len(&m);
        if cur_len + len > MAX_DATAGRAM_LEN && !cur.msgs.is_empty() {
            out.push(cur.encode_to_vec());
            cur = Datagram::default();
            cur_len = 0;
        }
        cur_len += len;
        cur.msgs.push(m);
    }
    if !cur.msgs.is_empty() {
        out.push(cur.encode_to_vec());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn msg(len: usize, fill: u8) -> Bytes {
        Bytes::from(vec![fill; len])
    }

    #[test]
    fn envelope_bytes_are_pinned() {
        let d = Datagram {
            msgs: vec![Bytes::from_static(b"ab"), Bytes::from_static(b"")],
        };
        // field 1, wire type 2: 0x0a, then length and bytes, per message
        assert_eq!(d.encode_to_vec(), vec![0x0a, 2, b'a', b'b', 0x0a, 0]);
    }

    #[test]
    fn small_messages_share_a_datagram_in_order() {
        let msgs: Vec<Bytes> = (0..100).map(|i| msg(100, i)).collect();
        let out = pack(msgs.clone());
        assert_eq!(out.len(), 1);
        let d = Datagram::decode(&out[0][..]).unwrap();
        assert_eq!(d.msgs, msgs);
    }

    #[test]
    fn large_messages_split_across_datagrams_within_the_limit() {
        let msgs: Vec<Bytes> = (0..5).map(|i| msg(30 << 10, i)).collect();
        let out = pack(msgs.clone());
        assert_eq!(out.len(), 3, "two 30 KiB messages fit per datagram");
        assert!(out.iter().all(|d| d.len() <= MAX_DATAGRAM_LEN));
        let back: Vec<Bytes> = out
            .iter()
            .flat_map(|d| Datagram::decode(&d[..]).unwrap().msgs)
            .collect();
        assert_eq!(back, msgs);
        // the largest message allowed fits alone
        let biggest = pack([msg(MAX_MESSAGE_LEN, 7)]);
        assert_eq!(biggest.len(), 1);
        assert!(biggest[0].len() <= MAX_DATAGRAM_LEN);
    }

    /// Receives on `t`, where nothing may be delivered, until `done` holds
    /// for its counters or a deadline passes.
    fn drop_until(t: &mut PeerTransport, done: impl Fn(&TransportStats) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !done(&t.stats()) && Instant::now() < deadline {
            t.recv(|from, _| panic!("a datagram from {from} to drop was delivered"));
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Receives on `t` until `want` messages arrived or a deadline passes.
    fn recv_n(t: &mut PeerTransport, want: usize) -> Vec<(SocketAddr, Bytes)> {
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while got.len() < want && Instant::now() < deadline {
            t.recv(|from, m| got.push((from, m)));
            std::thread::sleep(Duration::from_millis(1));
        }
        got
    }

    #[test]
    fn messages_cross_loopback_and_garbage_is_counted() {
        let lo: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let mut a = PeerTransport::bind(lo, None).unwrap();
        let mut b = PeerTransport::bind(lo, None).unwrap();
        let b_addr = b.local_addr().unwrap();
        let sent = vec![msg(10, 1), msg(32 << 10, 2), msg(0, 3)];
        for m in &sent {
            a.queue(b_addr, m.clone()).unwrap();
        }
        a.flush();
        assert_eq!(a.stats().datagrams_sent, 1);
        let got = recv_n(&mut b, 3);
        let a_addr = a.local_addr().unwrap();
        assert_eq!(
            got,
            sent.into_iter().map(|m| (a_addr, m)).collect::<Vec<_>>()
        );

        // Garbage: not an envelope (field 1 with a bad wire type).
        let raw = std::net::UdpSocket::bind(lo).unwrap();
        raw.send_to(&[0x0b, 0xff, 0xff], b_addr).unwrap();
        raw.send_to(&[0x0a, 0x05, 1], b_addr).unwrap(); // truncated
        drop_until(&mut b, |st| st.garbage_dropped >= 2);
        assert_eq!(b.stats().garbage_dropped, 2);
    }

    /// Datagrams leave per peer in the order each peer was first queued
    /// to, so the core's order (a vote's owner first) holds on the wire.
    #[test]
    fn peers_are_flushed_in_the_order_they_were_first_queued_to() {
        let lo: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let mut a = PeerTransport::bind(lo, None).unwrap();
        let mut b = PeerTransport::bind(lo, None).unwrap();
        let mut c = PeerTransport::bind(lo, None).unwrap();
        let (b_addr, c_addr) = (b.local_addr().unwrap(), c.local_addr().unwrap());
        for (to, m) in [(c_addr, 1), (b_addr, 2), (c_addr, 3)] {
            a.queue(to, msg(8, m)).unwrap();
        }
        let order: Vec<SocketAddr> = a.outbox.iter().map(|(to, _)| *to).collect();
        assert_eq!(order, vec![c_addr, b_addr]);
        a.flush();
        assert!(a.outbox.is_empty());
        assert_eq!(a.stats().datagrams_sent, 2);
        assert_eq!(recv_n(&mut c, 2).len(), 2);
        assert_eq!(recv_n(&mut b, 1).len(), 1);
    }

    #[test]
    fn an_oversized_message_is_refused_before_queueing() {
        let mut a = PeerTransport::bind("127.0.0.1:0".parse().unwrap(), None).unwrap();
        let to = a.local_addr().unwrap();
        assert_eq!(
            a.queue(to, msg(MAX_MESSAGE_LEN + 1, 0)),
            Err(TooLarge {
                len: MAX_MESSAGE_LEN + 1
            })
        );
        a.flush();
        assert_eq!(a.stats().datagrams_sent, 0);
    }

    fn key(secret: &str) -> PeerKey {
        PeerKey::from_secret(secret.as_bytes()).expect("a key")
    }

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    fn envelope() -> Vec<u8> {
        pack([msg(10, 1), msg(3, 2)]).remove(0)
    }

    #[test]
    fn no_secret_no_key() {
        assert!(PeerKey::from_secret(b"").is_none());
        assert_eq!(format!("{:?}", key("s3cret")), "PeerKey(..)");
    }

    #[test]
    fn sealed_datagrams_open_for_their_sender_under_their_key() {
        let k = key("s3cret");
        let (from, to) = (addr("127.0.0.1:8046"), addr("127.0.0.1:8047"));
        let env = envelope();
        let sealed = k.seal(from, to, &env);
        assert_eq!(sealed.len(), env.len() + MAC_OVERHEAD);
        assert_eq!(sealed[0], MAC_VERSION);
        assert_eq!(&sealed[MAC_OVERHEAD..], &env[..]);
        assert_eq!(k.open(from, to, &sealed), Some(&env[..]));
        // the same secret on another node derives the same key
        assert_eq!(key("s3cret").open(from, to, &sealed), Some(&env[..]));
        // an empty envelope seals too
        assert_eq!(k.open(from, to, &k.seal(from, to, b"")), Some(&b""[..]));
        // a dual-stack socket sees the sender as an IPv4-mapped address
        assert_eq!(
            k.open(addr("[::ffff:127.0.0.1]:8046"), to, &sealed),
            Some(&env[..])
        );
    }

    #[test]
    fn the_key_is_derived_not_the_raw_secret() {
        let (from, to) = (addr("127.0.0.1:8046"), addr("127.0.0.1:8047"));
        let env = envelope();
        let sealed = key("s3cret").seal(from, to, &env);
        let raw = hmac::Key::new(hmac::HMAC_SHA256, b"s3cret");
        let mut ctx = hmac::Context::with_key(&raw);
        ctx.update(&[MAC_VERSION, 4, 127, 0, 0, 1]);
        ctx.update(&8046u16.to_be_bytes());
        ctx.update(&[4, 127, 0, 0, 1]);
        ctx.update(&8047u16.to_be_bytes());
        ctx.update(&env);
        assert_ne!(ctx.sign().as_ref(), &sealed[1..MAC_OVERHEAD]);
    }

    #[test]
    fn anything_but_a_genuine_datagram_is_refused() {
        let k = key("s3cret");
        let (from, to) = (addr("127.0.0.1:8046"), addr("127.0.0.1:8047"));
        let env = envelope();
        let sealed = k.seal(from, to, &env);
        // another key
        assert_eq!(key("s3cret2").open(from, to, &sealed), None);
        assert_eq!(k.open(from, to, &key("other").seal(from, to, &env)), None);
        // no MAC at all: the bare envelope, and nothing
        assert_eq!(k.open(from, to, &env), None);
        assert_eq!(k.open(from, to, b""), None);
        // every truncation
        for n in 0..sealed.len() {
            assert_eq!(k.open(from, to, &sealed[..n]), None, "cut to {n}");
        }
        // a byte appended
        let mut longer = sealed.clone();
        longer.push(0);
        assert_eq!(k.open(from, to, &longer), None);
        // every single flipped bit: version, tag or envelope
        for i in 0..sealed.len() {
            for bit in 0..8 {
                let mut bad = sealed.clone();
                bad[i] ^= 1 << bit;
                assert_eq!(k.open(from, to, &bad), None, "bit {bit} of byte {i}");
            }
        }
        // another sender or another receiver: other port, host, family;
        // and sender and receiver swapped
        for other in ["127.0.0.1:8048", "127.0.0.2:8046", "[::1]:8046"] {
            assert_eq!(k.open(addr(other), to, &sealed), None, "from {other}");
            assert_eq!(k.open(from, addr(other), &sealed), None, "to {other}");
        }
        assert_eq!(k.open(to, from, &sealed), None, "swapped");
    }

    #[test]
    fn with_a_key_only_genuine_datagrams_are_delivered_and_the_rest_counted() {
        let lo: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let mut a = PeerTransport::bind(lo, Some(key("s3cret"))).unwrap();
        let mut b = PeerTransport::bind(lo, Some(key("s3cret"))).unwrap();
        let (a_addr, b_addr) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        let sent = vec![msg(10, 1), msg(32 << 10, 2), msg(0, 3)];
        for m in &sent {
            a.queue(b_addr, m.clone()).unwrap();
        }
        a.flush();
        let got = recv_n(&mut b, 3);
        assert_eq!(
            got,
            sent.into_iter().map(|m| (a_addr, m)).collect::<Vec<_>>()
        );

        let raw = std::net::UdpSocket::bind(lo).unwrap();
        let raw_addr = raw.local_addr().unwrap();
        let env = envelope();
        let right = key("s3cret");
        let forged = [
            env.clone(),                                       // no MAC
            key("wrong").seal(raw_addr, b_addr, &env),         // wrong key
            right.seal(a_addr, b_addr, &env),                  // claims to be a
            right.seal(raw_addr, a_addr, &env),                // meant for a
            right.seal(raw_addr, b_addr, &env)[..40].to_vec(), // truncated
            vec![MAC_VERSION],                                 // only a version
        ];
        for d in &forged {
            raw.send_to(d, b_addr).unwrap();
        }
        // Genuine, from the raw socket's own address, but garbage inside:
        // counted as garbage, not as unauthenticated.
        raw.send_to(&right.seal(raw_addr, b_addr, &[0x0b, 0xff]), b_addr)
            .unwrap();
        drop_until(&mut b, |st| st.garbage_dropped >= 1);
        assert_eq!(b.stats().unauthenticated_dropped, forged.len() as u64);
        assert_eq!(b.stats().garbage_dropped, 1);
        assert_eq!(b.stats().messages_received, 3);
        // A node without the secret takes a sealed datagram for garbage.
        let mut plain = PeerTransport::bind(lo, None).unwrap();
        let plain_addr = plain.local_addr().unwrap();
        raw.send_to(&right.seal(raw_addr, plain_addr, &env), plain_addr)
            .unwrap();
        drop_until(&mut plain, |st| st.garbage_dropped >= 1);
        assert_eq!(plain.stats().garbage_dropped, 1);
    }

    #[test]
    fn without_a_key_the_wire_carries_the_bare_envelope() {
        let lo: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let mut a = PeerTransport::bind(lo, None).unwrap();
        let raw = std::net::UdpSocket::bind(lo).unwrap();
        let msgs = vec![msg(10, 1), msg(3, 2)];
        for m in &msgs {
            a.queue(raw.local_addr().unwrap(), m.clone()).unwrap();
        }
        a.flush();
        let mut buf = vec![0; 65_536];
        raw.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let (n, from) = raw.recv_from(&mut buf).unwrap();
        assert_eq!(from, a.local_addr().unwrap());
        assert_eq!(buf[..n].to_vec(), pack(msgs).remove(0));
    }

    #[test]
    fn the_warning_is_rate_limited_and_sums_what_it_held_back() {
        let mut t = PeerTransport::bind("127.0.0.1:0".parse().unwrap(), Some(key("k"))).unwrap();
        assert_eq!(t.warning_due(), None);
        let now = Instant::now();
        let from = addr("127.0.0.1:9");
        let drop_one = |t: &mut PeerTransport, at: Instant| {
            t.stats.unauthenticated_dropped += 1;
            t.warning.unreported += 1;
            t.warning.last_from = Some(from);
            t.warn_dropped(at);
        };
        // the first is logged at once
        drop_one(&mut t, now);
        assert_eq!(t.warning.unreported, 0);
        assert_eq!(t.warning_due(), None);
        // later ones wait for the interval, then go out as one line
        drop_one(&mut t, now + Duration::from_secs(1));
        drop_one(&mut t, now + Duration::from_secs(2));
        assert_eq!(t.warning.unreported, 2);
        assert_eq!(t.warning_due(), Some(now + WARN_INTERVAL));
        t.warn_dropped(now + WARN_INTERVAL - Duration::from_millis(1));
        assert_eq!(t.warning.unreported, 2);
        t.warn_dropped(now + WARN_INTERVAL);
        assert_eq!(t.warning.unreported, 0);
        assert_eq!(t.warning_due(), None);
    }
}
