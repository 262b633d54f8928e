//! A follow stream's bytes into a slave, as the event loop hands them
//! over: [`FrameDecoder`] over the stream, `Response::decode` of each
//! frame, `Replica::step(Input::Follow)`; a refused response or a bad
//! frame breaks the stream (`Input::FollowLost`, and the next bytes are a
//! new stream, as after attaching again). A client of the slave reads
//! and waits meanwhile, so applying the stream wakes it.
//!
//! Input: one byte of set-up (window, history, data directory), then
//! operations:
//!
//! | op % 8 | what                                                         |
//! |--------|--------------------------------------------------------------|
//! | 0      | `n: u8` raw bytes of the stream                              |
//! | 1      | one frame of `n: u16` bytes on the stream                    |
//! | 2, 3   | one response built from the bytes: a marker, a file or an event, at a rev near the store's |
//! | 4      | a client request: a read at a future rev, a WAIT, a write    |
//! | 5      | the stream breaks                                            |
//! | 6      | the clock moves on `ms: u16`, then the loop runs             |
//! | 7      | the loop runs; with `op & 8` and a data directory, the slave restarts from it (a new stream) |
//!
//! Invariants: those of every output (see `Node::ready`) and restart
//! (`Node::restart`); the store goes back only when a copy replaces it
//! or a restart drops a seqn it had not whole.

use bytes::{Bytes, BytesMut};
use doozer_proto::{flags, FrameDecoder, Request, Response, Verb};
use doozerd::replica::Input as Step;
use prost::Message;

use crate::cluster::{config, request, set, Node};
use crate::input::Input;

/// Paths the built responses name: the slave's own slot and others,
/// node files, a plain file, a directory, and bad paths.
const PATHS: &[&str] = &[
    "/a",
    "/a/b",
    "/ctl/cal/0",
    "/ctl/cal/1",
    "/ctl/node/S/addr",
    "/ctl/node/B/addr",
    "/ctl/name",
    "/",
    "",
    "a b",
    "/ctl/err",
];

/// Bodies the built responses carry.
const BODIES: &[&[u8]] = &[b"", b"S", b"B", b"127.0.0.1:8047", b"x", b"\xff"];

/// Response flags: the stream's markers and event kinds, and nonsense.
const FLAGS: &[i32] = &[
    flags::SNAPSHOT,
    flags::FILE,
    flags::READY,
    flags::SET,
    flags::DEL,
    flags::OTHER,
    1,
];

/// The slave and its stream.
struct Harness {
    node: Node,
    stream: BytesMut,
    next_tag: i32,
}

/// The `follow_stream` target.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let setup = input.byte();
    let mut node = Node::new(config("S", setup, Default::default()));
    node.replica.start_following();
    let mut h = Harness {
        node,
        stream: BytesMut::new(),
        next_tag: 0,
    };
    h.node.connect(0);
    while let Some(op) = input.next_byte() {
        h.step(op, &mut input);
    }
    h.node.ready();
}

impl Harness {
    /// One operation.
    fn step(&mut self, op: u8, input: &mut Input) {
        match op % 8 {
            0 => {
                let bytes = input.short_bytes();
                self.receive(bytes);
            }
            1 => {
                let body = input.long_bytes();
                let mut frame = (body.len() as u32).to_be_bytes().to_vec();
                frame.extend_from_slice(body);
                self.receive(&frame);
            }
            2 | 3 => {
                let resp = self.response(input);
                self.receive(&frame(&resp));
            }
            4 => {
                let req = self.request(input);
                self.node.request(0, req);
            }
            5 => self.lost(),
            6 => {
                self.node.advance(u64::from(input.u16()));
                self.node.ready();
            }
            _ if op & 8 != 0 && self.node.restart() => {
                self.stream.clear();
                self.node.connect(0);
            }
            _ => {
                self.node.ready();
            }
        }
    }

    /// Stream bytes, applied frame by frame as the loop does.
    fn receive(&mut self, bytes: &[u8]) {
        self.stream.extend_from_slice(bytes);
        loop {
            let frame = match FrameDecoder::default().decode(&mut self.stream) {
                Ok(Some(frame)) => frame,
                Ok(None) => return,
                Err(_) => return self.lost(),
            };
            let Ok(resp) = Response::decode(frame) else {
                return self.lost();
            };
            let before = self.node.replica.store().rev();
            let copying = !self.node.replica.is_following();
            if self
                .node
                .replica
                .step(self.node.now_ms, Step::Follow(resp))
                .is_err()
            {
                return self.lost();
            }
            let after = self.node.replica.store().rev();
            assert!(
                after >= before || copying,
                "rev {before} went back to {after}"
            );
            if after < before {
                self.node.allow_rev_reset();
            }
        }
    }

    /// The stream broke: the next bytes are a new one.
    fn lost(&mut self) {
        self.stream.clear();
        self.node.step(Step::FollowLost);
    }

    /// A response of the stream: its flags, a rev near the store's, a
    /// path and a body, each chosen by a byte.
    fn response(&self, input: &mut Input) -> Response {
        let rev = self.node.replica.store().rev();
        Response {
            tag: (input.byte() & 1 == 0).then_some(1),
            flags: Some(*input.pick(FLAGS)),
            rev: Some(rev.saturating_add(i64::from(input.byte() as i8))),
            path: Some(input.pick(PATHS).to_string()),
            value: Some(Bytes::from_static(input.pick::<&[u8]>(BODIES))),
            ..Default::default()
        }
    }

    /// A client request: reads at a rev near the store's (parked when it
    /// is ahead), a WAIT, a write (refused on a slave).
    fn request(&mut self, input: &mut Input) -> Request {
        self.next_tag = self.next_tag.wrapping_add(1);
        let tag = self.next_tag;
        let rev = (self.node.replica.store().rev()).saturating_add(i64::from(input.byte() % 4));
        let with = |verb, path: &str| Request {
            path: Some(path.into()),
            rev: Some(rev),
            ..request(tag, verb)
        };
        match input.byte() % 4 {
            0 => with(Verb::Get, "/a"),
            1 => with(Verb::Wait, "/**"),
            2 => with(Verb::Getdir, "/ctl"),
            _ => set(tag, "/a", "w"),
        }
    }
}

/// `resp` as one frame.
fn frame(resp: &Response) -> Vec<u8> {
    let mut out = BytesMut::new();
    doozer_proto::encode_frame(resp, &mut out);
    out.to_vec()
}

/// Inputs to start from: the stream a real CAL sends a new follower (a
/// copy, READY, then events, among them the follower's own slot), with
/// and without a data directory (then restarting in the middle), one
/// frame per operation, with client requests and time between.
pub fn seeds() -> Vec<Vec<u8>> {
    let mut cal = Node::seeded(config("A", 0, Default::default()));
    cal.connect(0);
    cal.request(0, set(1, "/a", "x"));
    cal.request(0, request(2, Verb::Follow));
    cal.ready();
    cal.request(0, set(3, "/a/b", "y"));
    cal.request(0, set(4, "/ctl/node/S/addr", "127.0.0.1:8047"));
    cal.request(0, set(5, "/ctl/cal/1", "S"));
    cal.request(
        0,
        Request {
            path: Some("/a".into()),
            rev: Some(-1),
            ..request(6, Verb::Del)
        },
    );
    cal.ready();
    let mut stream = Vec::new();
    for (_, resp) in cal.responses.iter().filter(|(_, r)| r.tag == Some(2)) {
        let body = resp.encode_to_vec();
        stream.push(1);
        stream.extend_from_slice(&(body.len() as u16).to_be_bytes());
        stream.extend_from_slice(&body);
    }
    let mut s = vec![2, 4, 0, 1, 4, 1, 3];
    s.extend(&stream);
    s.extend([6, 0x10, 0, 7]);
    // With a data directory (set-up 11): the stream, a restart (0x0f),
    // the stream again as a new one.
    let mut durable = vec![11, 4, 0, 1];
    durable.extend(&stream);
    durable.extend([0x0f, 4, 1, 3]);
    durable.extend(&stream);
    durable.extend([6, 0x10, 0, 7]);
    vec![s, durable]
}
