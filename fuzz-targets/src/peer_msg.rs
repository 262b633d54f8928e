//! Peer messages built from the fuzzer's bytes around a base seqn (the
//! receiver's next one to learn), so short inputs name seqns, rounds and
//! CAL indexes the receiver cares about instead of random 64-bit numbers
//! that it drops at once. Raw encoded messages reach the decoder through
//! the other operations of each target.

use bytes::Bytes;
use doozer_proto::peer::{Accept, Learned, PeerMsg, Prepare, Promise, Reject, Vote};

use crate::input::Input;

/// Values worth agreeing on: NOPs, a plain write, and writes to `/ctl`
/// that change the CAL set or addresses (add D, empty a slot, remove the
/// receiver), and bytes that are no mutation at all.
const VALUES: &[&[u8]] = &[
    b"nop:",
    b"nop:B.1",
    b"-1:/a=b",
    b"0:/a=c",
    b"-1:/a",
    b"-1:/ctl/node/D/addr=127.0.0.1:8049",
    b"-1:/ctl/cal/3=D",
    b"-1:/ctl/cal/2=",
    b"-1:/ctl/cal/0=",
    b"-1:/ctl/cal/1=C",
    b"-1:/ctl/node/B/addr=127.0.0.1:8046",
    b"not a mutation",
];

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

/// A value: one of [`VALUES`], or (for `0xff`) bytes from the input.
fn value(input: &mut Input) -> Bytes {
    match input.byte() {
        0xff => Bytes::copy_from_slice(input.short_bytes()),
        b => Bytes::from_static(VALUES[usize::from(b) % VALUES.len()]),
    }
}

/// A CAL index: mostly one of the first four.
fn cal(input: &mut Input) -> u32 {
    match input.byte() {
        0xff => input.u32(),
        b => u32::from(b % 4),
    }
}

/// A batch of one to four parts around `base`.
pub fn build(input: &mut Input, base: u64) -> PeerMsg {
    let mut m = PeerMsg {
        learned_upto: seqn(input, base),
        ..Default::default()
    };
    for _ in 0..=input.byte() % 4 {
        add_part(&mut m, input, base);
    }
    m
}

/// Adds one part, of the kind the next byte says.
fn add_part(m: &mut PeerMsg, input: &mut Input, base: u64) {
    match input.byte() % 8 {
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
        _ => m.fetch_from = Some(seqn(input, base)),
    }
}
