//! Peer transport: UDP on the same host:port as `-l` (SPEC §4).
//!
//! The transport moves opaque, already-encoded peer messages. Everything
//! queued for one peer during a loop iteration is packed into as few
//! datagrams as possible when the loop flushes (DESIGN "Performance model":
//! drain all input, then send once). A datagram is a prost [`Datagram`]
//! envelope holding the messages; anything that does not decode as one is
//! garbage: dropped and counted, never a panic. Socket buffers are made large
//! so a burst of a full window of instances is not dropped by the kernel.
//!
//! UDP may drop, duplicate and reorder datagrams; consensus tolerates all
//! three, so a send that would block is dropped (and counted) rather than
//! queued without bound.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;

use bytes::Bytes;
use mio::net::UdpSocket;
use prost::Message;

/// Largest datagram sent: the IPv4 UDP payload limit (65,507) less room
/// for the envelope a later authenticated form adds.
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
    outbox: HashMap<SocketAddr, Vec<Bytes>>,
    buf: Vec<u8>,
    stats: TransportStats,
}

impl PeerTransport {
    /// Binds `addr` (the `-l` address) with large socket buffers.
    pub fn bind(addr: SocketAddr) -> io::Result<PeerTransport> {
        let socket = UdpSocket::bind(addr)?;
        let sock = socket2::SockRef::from(&socket);
        // Best effort: the kernel caps these at its own maximum.
        let _ = sock.set_recv_buffer_size(SOCKET_BUFFER_BYTES);
        let _ = sock.set_send_buffer_size(SOCKET_BUFFER_BYTES);
        Ok(PeerTransport {
            socket,
            outbox: HashMap::new(),
            buf: vec![0; 65_536],
            stats: TransportStats::default(),
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
        self.outbox.entry(to).or_default().push(msg);
        Ok(())
    }

    /// Sends everything queued, packed per peer.
    pub fn flush(&mut self) {
        for (to, msgs) in self.outbox.iter_mut() {
            if msgs.is_empty() {
                continue;
            }
            for datagram in pack(msgs.drain(..)) {
                match self.socket.send_to(&datagram, *to) {
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
        // Peers come and go; don't keep an entry per address forever.
        if self.outbox.len() > 64 {
            self.outbox.retain(|_, v| v.capacity() > 0 && !v.is_empty());
        }
    }

    /// Receives every datagram waiting on the socket and hands each message
    /// in it to `deliver` with the sender's address. Garbage is counted and
    /// dropped.
    pub fn recv(&mut self, mut deliver: impl FnMut(SocketAddr, Bytes)) {
        loop {
            match self.socket.recv_from(&mut self.buf) {
                Ok((n, from)) => {
                    self.stats.datagrams_received += 1;
                    match Datagram::decode(&self.buf[..n]) {
                        Ok(d) => {
                            self.stats.messages_received += d.msgs.len() as u64;
                            for m in d.msgs {
                                deliver(from, m);
                            }
                        }
                        Err(_) => self.stats.garbage_dropped += 1,
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
        let mut a = PeerTransport::bind(lo).unwrap();
        let mut b = PeerTransport::bind(lo).unwrap();
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
        let deadline = Instant::now() + Duration::from_secs(5);
        while b.stats().garbage_dropped < 2 && Instant::now() < deadline {
            b.recv(|_, _| panic!("garbage delivered"));
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(b.stats().garbage_dropped, 2);
    }

    #[test]
    fn an_oversized_message_is_refused_before_queueing() {
        let mut a = PeerTransport::bind("127.0.0.1:0".parse().unwrap()).unwrap();
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
}
