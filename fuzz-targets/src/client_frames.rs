//! Client connections' bytes into a one-node cluster, as the event loop
//! hands them over: [`FrameDecoder`](doozer_proto::FrameDecoder) over each
//! connection's bytes, `Request::decode` of each frame, `Replica::step`,
//! then `Replica::ready` once per loop iteration. Connections open and
//! close, and time passes, as the input says.
//!
//! Input: one byte of set-up (the window, the history, whether the node
//! has a data directory, whether it has secrets), then operations, each a
//! byte and its arguments:
//!
//! | op % 8 | what                                                         |
//! |--------|--------------------------------------------------------------|
//! | 0      | connection `b % 4` opens                                     |
//! | 1      | connection `b % 4` closes                                    |
//! | 2, 3   | connection `b % 4` reads `n: u8` raw bytes                   |
//! | 4, 5   | connection `b % 4` reads one frame of `n: u16` bytes         |
//! | 6      | the clock moves on `ms: u16`, then the loop runs             |
//! | 7      | the loop runs (with `op & 8`, it sleeps to its deadline; with `op & 0x30 == 0x30` and a data directory, the node restarts from it, and connection 0 opens) |
//!
//! Invariants: see `Node::ready` (answers go to open connections, carry
//! a tag the connection sent, fit a frame; the store never goes back)
//! and `Node::restart` (the store recovered from the data directory is
//! the store the node had).

use bytes::Bytes;
use doozerd::replica::Secrets;

use crate::cluster::{config, Node};
use crate::input::Input;

/// The `client_frames` target.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let setup = input.byte();
    let secrets = if setup & 0x80 != 0 {
        Secrets {
            rw: Bytes::from_static(b"rw"),
            ro: Bytes::from_static(b"ro"),
        }
    } else {
        Secrets::default()
    };
    let mut node = Node::seeded(config(crate::cluster::SELF_ID, setup & 0x7f, secrets));
    node.connect(0);
    while let Some(op) = input.next_byte() {
        step(&mut node, op, &mut input);
    }
    node.ready();
}

/// One operation.
fn step(node: &mut Node, op: u8, input: &mut Input) {
    match op % 8 {
        0 => {
            let conn = usize::from(input.byte() % 4);
            node.connect(conn);
        }
        1 => {
            let conn = usize::from(input.byte() % 4);
            node.disconnect(conn);
        }
        2 | 3 => {
            let conn = usize::from(input.byte() % 4);
            let bytes = input.short_bytes();
            node.read(conn, bytes);
        }
        4 | 5 => {
            let conn = usize::from(input.byte() % 4);
            let body = input.long_bytes();
            let mut frame = (body.len() as u32).to_be_bytes().to_vec();
            frame.extend_from_slice(body);
            node.read(conn, &frame);
        }
        6 => {
            let ms = u64::from(input.u16());
            node.advance(ms);
            node.ready();
        }
        _ if op & 0x30 == 0x30 && node.restart() => {
            node.connect(0);
        }
        _ if op & 8 != 0 => {
            node.wake();
        }
        _ => {
            node.ready();
        }
    }
}

/// Inputs to start fuzzing from: every verb, framed, on one connection,
/// with time passing; pipelined on two connections with a close; and on
/// a node with a data directory (set-up 9), restarting after each.
pub fn seeds() -> Vec<Vec<u8>> {
    use crate::cluster::{request, set};
    use doozer_proto::Verb;
    use prost::Message;

    let with = |mut r: doozer_proto::Request, path: &str, rev: Option<i64>| {
        r.path = Some(path.into());
        r.rev = rev;
        r
    };
    let requests = [
        set(1, "/a", "x"),
        with(request(2, Verb::Get), "/a", None),
        request(3, Verb::Rev),
        with(request(4, Verb::Wait), "/**", Some(100)),
        with(request(5, Verb::Walk), "/ctl/**", None),
        with(request(6, Verb::Getdir), "/ctl", None),
        with(request(7, Verb::Stat), "/a", None),
        with(request(8, Verb::Del), "/a", Some(-1)),
        request(9, Verb::Nop),
        request(10, Verb::Self_),
        doozer_proto::Request {
            value: Some(bytes::Bytes::from_static(b"rw")),
            ..request(11, Verb::Access)
        },
        with(request(12, Verb::Get), "/a", Some(50)),
        with(set(13, "/ctl/cal/1", "B"), "/ctl/cal/1", Some(0)),
        request(14, Verb::Follow),
    ];
    let frame = |conn: u8, r: &doozer_proto::Request| {
        let body = r.encode_to_vec();
        let mut op = vec![4, conn];
        op.extend_from_slice(&(body.len() as u16).to_be_bytes());
        op.extend_from_slice(&body);
        op
    };
    let mut one = vec![0];
    for r in &requests {
        one.extend(frame(0, r));
        one.extend([6, 0, 100]);
    }
    let mut two = vec![0x81, 0, 1];
    for r in &requests {
        two.extend(frame(0, r));
        two.extend(frame(1, r));
    }
    two.extend([1, 1, 7, 6, 0x10, 0, 15]);
    let mut durable = vec![9];
    for r in &requests {
        durable.extend(frame(0, r));
        durable.extend([6, 0, 100, 0x37]);
    }
    vec![one, two, durable]
}
