//! Checks shared by every checker: a history is well formed
//! ([`validate`]), and the revisions in responses agree with real time
//! ([`effective_intervals`], which also narrows each revision-carrying
//! operation's interval).

use super::op::{Call, Micros, Op, Outcome};
use super::violation::Violation;

/// Checks that every operation is well formed: times and results agree,
/// no rev below -1 in a request, and each result fits its call.
pub(super) fn validate(history: &[Op]) -> Result<(), Violation> {
    for (i, op) in history.iter().enumerate() {
        let bad = |why: &str| {
            Err(Violation::new(
                format!("malformed history entry #{i}: {why}"),
                history,
                [i],
            ))
        };
        if op.complete_time.is_some() != op.result.is_some() {
            return bad("a completion time without a result or a result without a time");
        }
        if let Some(t) = op.complete_time {
            if t < op.invoke_time {
                return bad("completed before it was invoked");
            }
        }
        match &op.call {
            Call::Set { cond_rev, .. } | Call::Del { cond_rev, .. } if *cond_rev < -1 => {
                return bad("a SET/DEL with a rev below -1");
            }
            _ => {}
        }
        let Some(result) = &op.result else { continue };
        let ok = match (&op.call, result) {
            (_, Outcome::Refused(_)) => true,
            (Call::Set { .. } | Call::Nop, Outcome::Rev(r)) => *r > 0,
            (Call::Set { .. } | Call::Del { .. }, Outcome::RevMismatch) => true,
            (Call::Del { .. }, Outcome::Deleted) => true,
            (Call::Get { .. }, Outcome::Read { rev, .. }) => *rev >= 0,
            (Call::LinGet { .. }, Outcome::ReadAt { at, rev, .. }) => *rev >= 0 && *at >= *rev,
            _ => false,
        };
        if !ok {
            return bad("the result does not fit the call (or has an impossible rev)");
        }
    }
    Ok(())
}

/// Where an operation that carries a revision sits in the global order of
/// changes: a change (SET or NOP) at rev r is `(r, 0)`; a read at rev a
/// comes right after change a: `(a, 1)`.
type PointKey = (i64, u8);

fn point_key(op: &Op) -> Option<PointKey> {
    match (&op.call, op.result.as_ref()?) {
        (Call::Set { .. } | Call::Nop, Outcome::Rev(r)) => Some((*r, 0)),
        (Call::LinGet { .. }, Outcome::ReadAt { at, .. }) => Some((*at, 1)),
        _ => None,
    }
}

/// Checks that revisions agree with real time and narrows the intervals of
/// the operations that carry one. Returns, per history index, the
/// (possibly narrowed) interval in which the operation must take effect.
pub(super) fn effective_intervals(history: &[Op]) -> Result<Vec<(Micros, Micros)>, Violation> {
    let mut eff: Vec<(Micros, Micros)> = history
        .iter()
        .map(|op| (op.invoke_time, op.complete_or_max()))
        .collect();
    let mut points: Vec<(PointKey, usize)> = history
        .iter()
        .enumerate()
        .filter_map(|(i, op)| point_key(op).map(|k| (k, i)))
        .collect();
    points.sort_unstable();
    for w in points.windows(2) {
        if w[0].0 == w[1].0 && w[0].0 .1 == 0 {
            return Err(Violation::new(
                format!(
                    "two changes were applied at the same revision {}",
                    w[0].0 .0
                ),
                history,
                [w[0].1, w[1].1],
            ));
        }
    }
    let n = points.len();
    // Prefix maximum of invocation times (with the op), suffix minimum of
    // completion times, over the sorted keys.
    let mut pre = vec![(0, 0); n];
    let mut best = (0, usize::MAX);
    for (j, &(_, i)) in points.iter().enumerate() {
        if history[i].invoke_time >= best.0 || best.1 == usize::MAX {
            best = (history[i].invoke_time, i);
        }
        pre[j] = best;
    }
    let mut suf = vec![(0, 0); n];
    let mut best = (Micros::MAX, usize::MAX);
    for (j, &(_, i)) in points.iter().enumerate().rev() {
        let c = history[i].complete_or_max();
        if c <= best.0 || best.1 == usize::MAX {
            best = (c, i);
        }
        suf[j] = best;
    }
    let mut j = 0;
    while j < n {
        let mut end = j;
        while end + 1 < n && points[end + 1].0 == points[j].0 {
            end += 1;
        }
        let (lo, lo_op) = pre[end];
        let (hi, hi_op) = suf[j];
        if lo > hi {
            let a = &history[hi_op];
            let b = &history[lo_op];
            let (ka, kb) = (point_key(a).unwrap(), point_key(b).unwrap());
            let explanation = format!(
                "revisions contradict real time: #{hi_op} ({} at rev {}) completed at {}µs, \
                 before #{lo_op} ({} at rev {}) was invoked at {}µs, yet the revisions order \
                 #{lo_op} {} #{hi_op} (changes are applied in revision order, and a \
                 linearizable read at rev a sees exactly the changes up to a)",
                a.call,
                ka.0,
                a.complete_or_max(),
                b.call,
                kb.0,
                b.invoke_time,
                if ka == kb {
                    "at the same point as"
                } else {
                    "before"
                },
            );
            return Err(Violation::new(explanation, history, [hi_op, lo_op]));
        }
        for &(_, i) in &points[j..=end] {
            eff[i] = (lo, hi);
        }
        j = end + 1;
    }
    Ok(eff)
}
