//! Peer messages straight into [`Paxos::step`], the consensus core alone:
//! node A in a set of three (or five) CALs, the other CALs played by the
//! fuzzer, and the caller's side played as the replica plays it (values
//! learned are applied in order and each applied seqn is reported with
//! [`Paxos::set_cals`]).
//!
//! Input: one byte of set-up (the window; with `0x80` five CALs), then
//! operations:
//!
//! | op % 8 | what                                                           |
//! |--------|----------------------------------------------------------------|
//! | 0      | a message of `n: u16` raw bytes, decoded as a `PeerMsg`, from a sender |
//! | 1 – 4  | a message built around A's next seqn (`peer_msg`), from a sender |
//! | 5      | A proposes a value, or (`b & 0x80`) the CAL set becomes the first `2 + b % 4` ids |
//! | 6      | the clock moves on `ms: u16`, then `tick`                      |
//! | 7      | the clock moves to A's next deadline, then `tick`              |
//!
//! Senders (next byte % 8): one of the other CALs, D (no CAL), or A
//! itself. Invariants: values are learned once each, in seqn order, from
//! the first; nothing is sent to A itself. (Messages to a node of no CAL
//! set are fine: a kicked CAL must still hear what it missed.)

use bytes::Bytes;
use doozer_proto::peer::PeerMsg;
use doozerd::consensus::{CalSet, Config, NodeId, Paxos};
use doozerd::store::Mutation;
use prost::Message;

use crate::input::Input;

/// The node under test.
const ME: &str = "A";
/// Every id the fuzzer may send as: the CALs first, then a node that is
/// no CAL.
const IDS: [&str; 6] = ["A", "B", "C", "D", "E", "X"];

/// The core and what the caller keeps.
struct Harness {
    paxos: Paxos,
    cals: CalSet,
    now_ms: u64,
    /// The next seqn to be learned.
    next: u64,
    proposals: u64,
}

/// The `paxos` target.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let setup = input.byte();
    let mut h = Harness::new(setup);
    while let Some(op) = input.next_byte() {
        h.step(op, &mut input);
        h.drain();
    }
}

impl Harness {
    /// A at seqn 1 with a set of three or five.
    fn new(setup: u8) -> Harness {
        let size = if setup & 0x80 != 0 { 5 } else { 3 };
        let ids: Vec<NodeId> = IDS[..size].iter().map(|s| s.to_string()).collect();
        let cals = CalSet::new(ids).expect("distinct, non-empty ids");
        // The fill NOP of the replica: the empty value.
        let mut cfg = Config::new(ME, Bytes::new());
        cfg.alpha = [50, 5, 2, 1][usize::from(setup & 3)];
        Harness {
            paxos: Paxos::new(cfg, 1, cals.clone(), 0, u64::from(setup)),
            cals,
            now_ms: 0,
            next: 1,
            proposals: 0,
        }
    }

    /// One operation.
    fn step(&mut self, op: u8, input: &mut Input) {
        match op % 8 {
            0 => {
                let from = *input.pick(&IDS);
                if let Ok(msg) = PeerMsg::decode(input.long_bytes()) {
                    self.paxos.step(from, msg, self.now_ms);
                }
            }
            1..=4 => {
                let from = *input.pick(&IDS);
                let msg = crate::peer_msg::build(input, self.next, from);
                self.paxos.step(from, msg, self.now_ms);
            }
            5 => match input.byte() {
                b if b & 0x80 != 0 => {
                    // The set that applied seqns name from now on.
                    let n = 2 + usize::from(b % 4);
                    let ids = IDS[..n].iter().map(|s| s.to_string()).collect();
                    self.cals = CalSet::new(ids).expect("distinct, non-empty ids");
                }
                _ => {
                    // Unique bytes, as the replica's own values are.
                    self.proposals += 1;
                    let value = Mutation::tagged_nop(&format!("A.{}", self.proposals));
                    self.paxos.propose(value);
                }
            },
            6 => {
                self.now_ms += u64::from(input.u16());
                self.paxos.tick(self.now_ms);
            }
            _ => {
                if let Some(t) = self.paxos.next_deadline() {
                    self.now_ms = self.now_ms.max(t);
                }
                self.paxos.tick(self.now_ms);
            }
        }
    }

    /// Takes what the core has for the caller and checks it.
    fn drain(&mut self) {
        let ready = self.paxos.ready();
        for (to, _) in &ready.messages {
            assert_ne!(to, ME, "a message to itself");
        }
        for (seqn, _, _) in ready.learned {
            assert_eq!(seqn, self.next, "learned out of order");
            self.next += 1;
            // What the replica does after applying each seqn.
            self.paxos.set_cals(seqn, self.cals.clone());
        }
    }
}

/// Inputs to start from: A proposes, B and C vote, accept, learn, skip,
/// fetch and prepare; time passes; the set changes.
pub fn seeds() -> Vec<Vec<u8>> {
    // One built message (op 1) from B (1) or C (2), with the right id (0),
    // all seqns learned below the next (0), one part (0), then the part.
    let msg = |from: u8, part: &[u8]| {
        let mut m = vec![1, from, 0, 0, 0];
        m.extend_from_slice(part);
        m
    };
    let mut out = Vec::new();
    for setup in [0x01, 0x82] {
        let mut s = vec![setup, 5, 0, 5, 0];
        for offset in [0u8, 1, 2, 3] {
            // a Vote (3) at `offset`, round 0, by CAL 0 (A)
            s.extend(msg(1, &[3, offset, 0, 0]));
            s.extend(msg(2, &[3, offset, 0, 0]));
        }
        s.extend(msg(1, &[2, 1, 0, 2])); // Accept
        s.extend(msg(2, &[5, 0, 2])); // Learned
        s.extend(msg(1, &[6, 1])); // skip
        s.extend(msg(2, &[7, 0x80])); // fetch
        s.extend(msg(1, &[0, 1, 0, 0])); // Prepare
        s.extend([5, 0x83, 6, 0x10, 0, 7, 7]);
        out.push(s);
    }
    out
}
