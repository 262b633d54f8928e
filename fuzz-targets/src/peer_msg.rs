//! Peer messages built from the fuzzer's bytes around a base seqn (the
//! receiver's next one to learn), so short inputs name seqns, rounds and
//! CAL indexes the receiver cares about instead of random 64-bit numbers
//! that it drops at once. Raw encoded messages reach the decoder through
//! the other operations of each target.

use std::sync::OnceLock;

use bytes::Bytes;
use doozer_proto::peer::{Accept, Learned, PeerMsg, Prepare, Promise, Reject, Vote};
use doozerd::store::{Guard, Mutation, Value};

use crate::input::Input;

/// Values worth agreeing on: NOPs, plain writes, writes to `/ctl` that
/// change the CAL set or addresses (add D, empty a slot, remove the
/// receiver), a guarded and an expired value, and bytes that are no value.
fn values() -> &'static [Bytes] {
    static VALUES: OnceLock<Vec<Bytes>> = OnceLock::new();
    VALUES.get_or_init(|| {
        let set = |path: &str, body: &str| Mutation::Set {
            path: path.into(),
            rev: -1,
            body: Bytes::from(body.to_owned()),
        };
        let del = |path: &str| Mutation::Del {
            path: path.into(),
            rev: -1,
        };
        let mut out: Vec<Bytes> = [
            Mutation::Nop,
            set("/a", "b"),
            del("/a"),
            set("/ctl/node/D/addr", "127.0.0.1:8049"),
            set("/ctl/cal/3", "D"),
            set("/ctl/cal/2", ""),
            set("/ctl/cal/0", ""),
            set("/ctl/cal/1", "C"),
            set("/ctl/node/B/addr", "127.0.0.1:8046"),
            del("/ctl/node/B"),
        ]
        .iter()
        .map(Mutation::encode)
        .collect();
        out.push(Bytes::new());
        out.push(Mutation::tagged_nop("B.1"));
        out.push(
            Value {
                changes: vec![set("/ctl/cal/1", ""), del("/ctl/node/B/addr")],
                guard: Some(Guard {
                    path: "/ctl/cal/1".into(),
                    rev: 0,
                }),
                ..Value::default()
            }
            .encode(),
        );
        out.push(
            Value {
                changes: vec![set("/x", "y")],
                expires_after: Some(3),
                ..Value::default()
            }
            .encode(),
        );
        out.push(Bytes::from_static(b"\x0a\x02not a value"));
        out
    })
}

/// A seqn near `base`: up to 128 below or 127 above (clamped at 0), or
/// with `0xff` far beyond.
fn seqn(input: &mut Input, base: u64) -> u64 {
    match input.byte() {
        0xff => base.saturating_add(input.u64()),
        b => base.saturating_add_signed(i64::from(b as i8)),
    }
}

/// A round: small, 0 being the owner's reserved one; `0xff` far above.
fn round(input: &mut Input) -> u64 {
    match input.byte() {
        0xff => input.u64(),
        b => u64::from(b % 8),
    }
}

/// A value: one of [`values`], or (for `0xff`) bytes from the input.
fn value(input: &mut Input) -> Bytes {
    match input.byte() {
        0xff => Bytes::copy_from_slice(input.short_bytes()),
        b => input_pick(values(), b),
    }
}

/// `items[b % len]`.
fn input_pick(items: &[Bytes], b: u8) -> Bytes {
    items[usize::from(b) % items.len()].clone()
}

/// A CAL index: mostly one of the first four.
fn cal(input: &mut Input) -> u32 {
    match input.byte() {
        0xff => input.u32(),
        b => u32::from(b % 4),
    }
}

/// A batch of one to four parts around `base`, from `sender` (the id a
/// correct sender writes; with a first byte of `0xff`, another).
pub fn build(input: &mut Input, base: u64, sender: &str) -> PeerMsg {
    let sender = match input.byte() {
        0xff => String::from_utf8_lossy(input.short_bytes()).into_owned(),
        _ => sender.to_owned(),
    };
    let mut m = PeerMsg {
        learned_upto: seqn(input, base),
        sender,
        ..Default::default()
    };
    for _ in 0..=input.byte() % 4 {
        add_part(&mut m, input, base);
    }
    m
}

/// Adds one part, of the kind the next byte says.
fn add_part(m: &mut PeerMsg, input: &mut Input, base: u64) {
    match input.byte() % 10 {
        0 => {
            let round = round(input);
            let seqns = (0..=input.byte() % 3).map(|_| seqn(input, base)).collect();
            m.prepares.push(Prepare { round, seqns });
        }
        1 => {
            let (seqn, round) = (seqn(input, base), round(input));
            let voted = input.byte() % 2 == 1;
            m.promises.push(Promise {
                seqn,
                round,
                vote_round: voted.then(|| self::round(input)),
                vote_cal: voted.then(|| cal(input)),
                vote_value: voted.then(|| value(input)),
            });
        }
        2 => m.accepts.push(Accept {
            seqn: seqn(input, base),
            round: round(input),
            value: value(input),
        }),
        3 => m.votes.push(Vote {
            seqn: seqn(input, base),
            round: round(input),
            cal: cal(input),
        }),
        4 => m.rejects.push(Reject {
            seqn: seqn(input, base),
            round: round(input),
            cal: cal(input),
        }),
        5 => m.learned.push(Learned {
            seqn: seqn(input, base),
            value: value(input),
        }),
        6 => m.skips.push(seqn(input, base)),
        7 => m.fetch_from = Some(seqn(input, base)),
        8 => {
            // The sender holds values from here on; it finds these silent.
            m.oldest_kept = seqn(input, base);
            let ids = ["A", "B", "C", "D"];
            m.silent = (0..input.byte() % 3)
                .map(|_| ids[usize::from(input.byte()) % ids.len()].to_string())
                .collect();
        }
        _ => {
            // A digest of the sender's store at a rev near the receiver's.
            m.digest_rev = (base as i64).saturating_add(i64::from(input.byte() as i8));
            m.digest = input.u64();
        }
    }
}
