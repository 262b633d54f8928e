//! Peer datagrams into a CAL of a three-CAL cluster, as the event loop
//! hands them over: the transport's unpacking
//! ([`doozerd::transport::unpack`], with or without a
//! [`PeerKey`]), `Replica::step(Input::Peer)` for each message, then
//! `Replica::ready`. The node under test, A, seeded the cluster and wrote
//! B and C into the CAL slots itself; B and C are the fuzzer.
//!
//! Input: one byte of set-up (window, history; with `0x80` the cluster
//! has a secret and datagrams are sealed), then operations:
//!
//! | op % 8 | what                                                          |
//! |--------|---------------------------------------------------------------|
//! | 0      | a datagram of `n: u16` raw bytes from a sender; with a secret, sealed by the harness for a known sender |
//! | 1      | the same, never sealed (with a secret: a forgery)             |
//! | 2, 3   | one message built around A's next seqn (`peer_msg`), in an envelope, from a sender |
//! | 4      | a client write on A (a SET or a NOP), so A proposes           |
//! | 5      | the clock moves on `ms: u16`, then the loop runs              |
//! | 6      | the loop sleeps to its deadline and runs                      |
//! | 7      | the loop runs; with `op & 8` and a data directory, A restarts from it |
//!
//! Senders (next byte % 4): B, C, a stranger, A's own address.
//! Invariants: those of every output (see `Node::ready`) and restart
//! (`Node::restart`), and every peer message A sends fits one datagram.

use std::net::SocketAddr;

use bytes::Bytes;
use doozer_proto::peer::PeerMsg;
use doozer_proto::{Request, Verb};
use doozerd::replica::{Input as Step, Secrets};
use doozerd::transport::{self, PeerKey, MAX_MESSAGE_LEN};
use prost::Message;

use crate::cluster::{config, request, set, Node, SELF_ADDR, SELF_ID};
use crate::input::Input;

/// The other CALs, by id, with their addresses.
pub const PEERS: [(&str, &str); 2] = [("B", "127.0.0.1:8047"), ("C", "127.0.0.1:8048")];
/// An address that is no node's.
const STRANGER: &str = "127.0.0.1:9999";
/// The cluster's secret when it has one.
const SECRET: &[u8] = b"fuzz";

/// A and what the harness needs to talk to it.
struct Harness {
    node: Node,
    key: Option<PeerKey>,
    me: SocketAddr,
    next_tag: i32,
    /// Whether the cluster has a secret.
    secret: bool,
}

/// Opens connection 0, the harness's client, with the secret if any.
fn connect(node: &mut Node, secret: bool) {
    node.connect(0);
    if secret {
        let access = Request {
            value: Some(Bytes::from_static(SECRET)),
            ..request(0, Verb::Access)
        };
        node.request(0, access);
    }
}

/// The `peer_datagram` target.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let setup = input.byte();
    let mut h = Harness::new(setup);
    while let Some(op) = input.next_byte() {
        h.step(op, &mut input);
    }
    h.ready();
}

/// Parses one of the harness's constant addresses.
fn addr(text: &str) -> SocketAddr {
    text.parse().expect("a constant, valid address")
}

impl Harness {
    /// A seeded node that made B and C CALs and decided the rest of its
    /// lone window, so what comes next needs B or C.
    fn new(setup: u8) -> Harness {
        let secret = setup & 0x80 != 0;
        let secrets = Secrets {
            rw: if secret {
                Bytes::from_static(SECRET)
            } else {
                Bytes::new()
            },
            ro: Bytes::new(),
        };
        let config = config(SELF_ID, setup & 0x7f, secrets);
        let alpha = config.cluster.alpha;
        let mut node = Node::seeded(config);
        connect(&mut node, secret);
        for (n, (id, a)) in (1..).zip(PEERS) {
            node.request(0, set(2 * n, &format!("/ctl/node/{id}/addr"), a));
            node.request(0, set(2 * n + 1, &format!("/ctl/cal/{n}"), id));
            node.ready();
        }
        for tag in 10..10 + alpha as i32 {
            node.request(0, request(tag, Verb::Nop));
            node.ready();
        }
        node.responses.clear();
        Harness {
            node,
            key: PeerKey::from_secret(if secret { SECRET } else { b"" }),
            me: addr(SELF_ADDR),
            next_tag: 1000,
            secret,
        }
    }

    /// One operation.
    fn step(&mut self, op: u8, input: &mut Input) {
        match op % 8 {
            0 => self.raw(input, true),
            1 => self.raw(input, false),
            2 | 3 => {
                let (from, id) = self.sender(input);
                let msg = crate::peer_msg::build(input, self.next_seqn(), id).encode_to_vec();
                for envelope in transport::pack([Bytes::from(msg)]) {
                    let datagram = match &self.key {
                        Some(key) => key.seal(from, self.me, &envelope),
                        None => envelope,
                    };
                    self.receive(from, &datagram);
                }
            }
            4 => {
                self.next_tag = self.next_tag.wrapping_add(1);
                let req = match input.byte() % 4 {
                    0 => request(self.next_tag, Verb::Nop),
                    n => set(self.next_tag, &format!("/k{n}"), "v"),
                };
                self.node.request(0, req);
            }
            5 => {
                self.node.advance(u64::from(input.u16()));
                self.ready();
            }
            6 => {
                let messages = self.node.wake();
                check_messages(&messages);
            }
            _ if op & 8 != 0 && self.node.restart() => connect(&mut self.node, self.secret),
            _ => self.ready(),
        }
    }

    /// A datagram of raw bytes from a sender; with a key and `seal`, sealed
    /// for a known sender (a stranger's is never sealed).
    fn raw(&mut self, input: &mut Input, seal: bool) {
        let (from, id) = self.sender(input);
        let bytes = input.long_bytes();
        let datagram = match &self.key {
            Some(key) if seal && id != "X" => key.seal(from, self.me, bytes),
            _ => bytes.to_vec(),
        };
        self.receive(from, &datagram);
    }

    /// A sender, with the id it gives: B, C, a stranger or A itself.
    fn sender(&self, input: &mut Input) -> (SocketAddr, &'static str) {
        match input.byte() % 4 {
            0 => (addr(PEERS[0].1), PEERS[0].0),
            1 => (addr(PEERS[1].1), PEERS[1].0),
            2 => (addr(STRANGER), "X"),
            _ => (self.me, SELF_ID),
        }
    }

    /// The seqn after the one that made A's head.
    fn next_seqn(&self) -> u64 {
        let store = self.node.replica.store();
        store.at(store.rev()).map_or(1, |at| at.seqn + 1)
    }

    /// A datagram from `from`, unpacked as the transport does; each
    /// message is stepped.
    fn receive(&mut self, from: SocketAddr, datagram: &[u8]) {
        let Ok(msgs) = transport::unpack(self.key.as_ref(), from, self.me, datagram) else {
            return;
        };
        for msg in msgs {
            self.node.step(Step::Peer(from, msg));
        }
    }

    /// One loop iteration, checked.
    fn ready(&mut self) {
        let messages = self.node.ready();
        check_messages(&messages);
    }
}

/// Every message sent fits a datagram.
fn check_messages(messages: &[(SocketAddr, PeerMsg)]) {
    for (to, msg) in messages {
        let len = msg.encoded_len();
        assert!(
            len <= MAX_MESSAGE_LEN,
            "a message of {len} bytes for {to}: no datagram carries it"
        );
    }
}

/// Inputs to start from: B and C vote for A's pending seqns, accept and
/// learn values, skip, fetch, prepare, report silent CALs and digests; a
/// client writes; time passes.
pub fn seeds() -> Vec<Vec<u8>> {
    // One message (op 2) from B (0) or C (1), with the right id (0), all
    // seqns learned below the next (0), one part (0), then the part.
    let msg = |from: u8, part: &[u8]| {
        let mut m = vec![2, from, 0, 0, 0];
        m.extend_from_slice(part);
        m
    };
    let mut out = Vec::new();
    // Windows of 5 and 2; the last two with a data directory, restarting
    // (op 0x0f) now and then.
    for setup in [0x01, 0x82, 0x0a, 0x8b] {
        let restart: &[u8] = if setup & 0x0f >= 9 { &[0x0f] } else { &[] };
        let mut s = vec![setup];
        for offset in [0u8, 1, 2, 3, 4, 5, 0xfe] {
            // a skip (6) of the seqn at `offset` (B's and C's own seqns
            // among them), a Vote (3) for it at round 0 by CAL 0 (A)
            s.extend(msg(0, &[6, offset]));
            s.extend(msg(1, &[6, offset]));
            s.extend(msg(0, &[3, offset, 0, 0]));
            s.extend(msg(1, &[3, offset, 0, 0]));
            s.push(7);
            s.extend(restart);
        }
        s.extend(msg(0, &[2, 1, 0, 2])); // Accept: seqn +1, round 0, a value
        s.extend(msg(1, &[5, 0, 1])); // Learned
        s.extend(msg(0, &[6, 1])); // skip
        s.extend(msg(1, &[7, 0x80])); // fetch from far below
        s.extend(msg(0, &[0, 1, 0, 0])); // Prepare, round 1, one seqn
        s.extend(msg(0, &[8, 0, 2, 1, 2])); // oldest kept; B and C silent
        s.extend(msg(1, &[9, 0xff, 0, 0, 0, 0, 0, 0, 0, 1])); // a digest
        s.extend([4, 1, 7, 5, 0x10, 0, 6, 6]);
        s.extend(restart);
        out.push(s);
    }
    out
}
