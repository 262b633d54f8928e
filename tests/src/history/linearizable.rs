//! The linearizability check: Wing & Gong's search with memoized
//! (linearized set, state) pairs, run per path.

use std::collections::{BTreeMap, HashSet};

use super::model::{describe_file, step, Bodies, File, PathOp, State};
use super::op::{Call, Micros, Op, Outcome};
use super::order::{effective_intervals, validate};
use super::violation::Violation;

/// A set of operations (indexes into the path's [`PathOp`]s).
type Bits = Vec<u64>;

/// Whether `i` is in `bits`.
fn has(bits: &Bits, i: usize) -> bool {
    bits[i / 64] & (1 << (i % 64)) != 0
}

/// `bits` with `i` added.
fn with(bits: &Bits, i: usize) -> Bits {
    let mut b = bits.clone();
    b[i / 64] |= 1 << (i % 64);
    b
}

/// One step of the depth-first search.
struct Frame {
    /// The operations linearized so far.
    bits: Bits,
    /// The state they lead to.
    state: State,
    /// The operation linearized last (`None` for the start).
    via: Option<usize>,
    /// How many of them are required (completed) operations.
    required_done: usize,
    /// The ways to go on from here.
    succ: Vec<(usize, State)>,
    /// The next of `succ` to try.
    next: usize,
}

/// The deepest point the search reached: the operations linearized on the
/// way there with the state after each, the set, and the state at the end.
struct Deepest {
    seq: Vec<(usize, State)>,
    bits: Bits,
    state: State,
}

/// The operations that may be linearized next: not yet linearized, and
/// invoked no later than the earliest completion among the required
/// operations not yet linearized.
fn candidates(ops: &[PathOp], bits: &Bits) -> (Vec<usize>, Option<usize>) {
    let mut min_comp = Micros::MAX;
    let mut blocker = None;
    for (i, op) in ops.iter().enumerate() {
        if op.required && !has(bits, i) && op.comp < min_comp {
            min_comp = op.comp;
            blocker = Some(i);
        }
    }
    let c = (0..ops.len())
        .filter(|&i| !has(bits, i) && ops[i].inv <= min_comp)
        .collect();
    (c, blocker)
}

/// The candidates that can be linearized next from `s`, with the state
/// each leads to.
fn successors(ops: &[PathOp], bits: &Bits, s: &State, bodies: &Bodies) -> Vec<(usize, State)> {
    let (cands, _) = candidates(ops, bits);
    let mut out = Vec::new();
    for i in cands {
        if let Ok(next) = step(s, &ops[i].kind, bodies) {
            // Applying a timed-out operation without effect is the same as
            // never applying it.
            if !ops[i].required && next == *s {
                continue;
            }
            out.push((i, next));
        }
    }
    out
}

/// Searches for a linearization of the operations of history on `path`
/// (`idxs`, with effective intervals `eff`).
fn check_path(
    history: &[Op],
    path: &str,
    idxs: &[usize],
    eff: &[(Micros, Micros)],
) -> Result<(), Violation> {
    let mut bodies = Bodies::default();
    let mut ops: Vec<PathOp> = idxs
        .iter()
        .filter_map(|&i| PathOp::new(history, i, eff[i], &mut bodies))
        .collect();
    ops.sort_by_key(|o| (o.inv, o.comp));
    match search(&ops, &bodies) {
        Ok(()) => Ok(()),
        Err(deepest) => Err(explain(history, path, &ops, &bodies, deepest)),
    }
}

/// Depth-first search over (linearized set, state), each pair visited
/// once. `Ok` when every required operation is linearized; otherwise the
/// deepest point reached, for the report.
fn search(ops: &[PathOp], bodies: &Bodies) -> Result<(), Deepest> {
    let required_total = ops.iter().filter(|o| o.required).count();
    if required_total == 0 {
        return Ok(());
    }
    let init = State {
        file: File::Missing,
        last: 0,
    };
    let bits0 = vec![0u64; ops.len().div_ceil(64)];
    let mut visited: HashSet<(Bits, State)> = HashSet::new();
    visited.insert((bits0.clone(), init.clone()));
    let mut best = Deepest {
        seq: Vec::new(),
        bits: bits0.clone(),
        state: init.clone(),
    };
    let mut stack = vec![Frame {
        succ: successors(ops, &bits0, &init, bodies),
        bits: bits0,
        state: init,
        via: None,
        required_done: 0,
        next: 0,
    }];
    while let Some(top) = stack.last_mut() {
        if top.next >= top.succ.len() {
            stack.pop();
            continue;
        }
        let (i, next_state) = top.succ[top.next].clone();
        top.next += 1;
        let bits = with(&top.bits, i);
        let required_done = top.required_done + usize::from(ops[i].required);
        if required_done == required_total {
            return Ok(());
        }
        let key = (bits, next_state);
        if visited.contains(&key) {
            continue;
        }
        visited.insert(key.clone());
        let (bits, next_state) = key;
        if stack.len() > best.seq.len() {
            best = deepest_at(&stack, i, &bits, &next_state);
        }
        let succ = successors(ops, &bits, &next_state, bodies);
        stack.push(Frame {
            bits,
            state: next_state,
            via: Some(i),
            required_done,
            succ,
            next: 0,
        });
    }
    Err(best)
}

/// The point reached by the frames of `stack`, then operation `i` leading
/// to `state` with the set `bits`.
fn deepest_at(stack: &[Frame], i: usize, bits: &Bits, state: &State) -> Deepest {
    let mut seq: Vec<(usize, State)> = stack
        .iter()
        .skip(1)
        .map(|f| {
            (
                f.via.expect("every frame but the first has a via"),
                f.state.clone(),
            )
        })
        .collect();
    seq.push((i, state.clone()));
    Deepest {
        seq,
        bits: bits.clone(),
        state: state.clone(),
    }
}

/// No linearization: explains where the deepest attempt got stuck.
fn explain(
    history: &[Op],
    path: &str,
    ops: &[PathOp],
    bodies: &Bodies,
    deepest: Deepest,
) -> Violation {
    let Deepest { seq, bits, state } = deepest;
    let n = ops.len();
    let timeouts = ops.iter().filter(|o| !o.required).count();
    let mut text = format!(
        "the operations on {path} are not linearizable ({n} operations, {timeouts} timed out; \
         SET/DEL/LINGET only).\n"
    );
    let mut rel: Vec<usize> = Vec::new();
    explain_prefix(history, ops, bodies, &seq, &mut text, &mut rel);
    explain_stuck(history, ops, bodies, &bits, &state, &mut text, &mut rel);
    if n <= 40 {
        rel.extend(ops.iter().map(|o| o.idx));
    }
    Violation::new(text, history, rel)
}

/// The report's account of the longest linearizable prefix found (its
/// last 12 steps).
fn explain_prefix(
    history: &[Op],
    ops: &[PathOp],
    bodies: &Bodies,
    seq: &[(usize, State)],
    text: &mut String,
    rel: &mut Vec<usize>,
) {
    if seq.is_empty() {
        text.push_str(
            "Not even the first operation can be linearized (the file starts missing).\n",
        );
        return;
    }
    let skip = seq.len().saturating_sub(12);
    text.push_str(&format!(
        "The longest linearizable prefix found has {} operations; its last steps:\n",
        seq.len()
    ));
    for (i, st) in &seq[skip..] {
        let idx = ops[*i].idx;
        rel.push(idx);
        text.push_str(&format!(
            "  #{idx:<5} {} -> {}\n        then the file is {}\n",
            history[idx].call,
            history[idx]
                .result
                .as_ref()
                .map(|r| r.to_string())
                .unwrap_or_else(|| "TIMEOUT, taken to have applied".into()),
            describe_file(&st.file, bodies)
        ));
    }
}

/// The report's account of why nothing can follow the prefix: each
/// candidate with the reason it fails, and the operation that bounds the
/// candidates.
fn explain_stuck(
    history: &[Op],
    ops: &[PathOp],
    bodies: &Bodies,
    bits: &Bits,
    state: &State,
    text: &mut String,
    rel: &mut Vec<usize>,
) {
    let (cands, blocker) = candidates(ops, bits);
    text.push_str(&format!(
        "After that (file {}), nothing can come next:\n",
        describe_file(&state.file, bodies)
    ));
    for &c in &cands {
        let idx = ops[c].idx;
        rel.push(idx);
        let why = match step(state, &ops[c].kind, bodies) {
            Err(e) => e,
            Ok(_) if !ops[c].required => "(timed out; applying it leads nowhere)".into(),
            Ok(_) => "(possible, but every continuation fails)".into(),
        };
        text.push_str(&format!("  #{idx:<5} {}: {why}\n", history[idx].call));
    }
    if let Some(b) = blocker {
        let idx = ops[b].idx;
        rel.push(idx);
        text.push_str(&format!(
            "(#{idx} completed at {}µs, so only operations invoked by then can come next.)\n",
            ops[b].comp
        ));
    }
}

/// Checks that the SETs, DELs and linearizable reads ([`Call::LinGet`])
/// in `history` are linearizable with respect to the store's model.
///
/// Plain [`Call::Get`]s are ignored here (see
/// [`check_sequential_reads`](super::check_sequential_reads));
/// refused operations ([`Outcome::Refused`]) are taken not to have
/// happened; timed-out ones may have taken effect at any point after their
/// invocation, or never (a timed-out read says nothing).
///
/// First, every operation carrying a revision (successful SET and NOP,
/// linearizable read) is placed in revision order: an operation at a
/// smaller revision cannot have been invoked after one at a greater
/// revision completed, and each such operation's interval is narrowed to
/// the latest invocation among those at or below it and the earliest
/// completion among those at or above it. Then each path is searched on
/// its own for a linearization (Wing & Gong with memoized (linearized set,
/// state) pairs) where successful SETs return increasing revisions, a
/// linearizable read at rev `a` comes after every SET at or below `a` and
/// before every SET above it, and a timed-out SET that took effect leaves
/// the file at an unknown revision that a later read may reveal.
pub fn check_linearizable(history: &[Op]) -> Result<(), Violation> {
    validate(history)?;
    let eff = effective_intervals(history)?;
    let mut by_path: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, op) in history.iter().enumerate() {
        if matches!(op.call, Call::Get { .. } | Call::Nop)
            || matches!(op.result, Some(Outcome::Refused(_)))
            || (matches!(op.call, Call::LinGet { .. }) && op.result.is_none())
        {
            continue;
        }
        if let Some(p) = op.call.path() {
            by_path.entry(p).or_default().push(i);
        }
    }
    for (path, idxs) in &by_path {
        check_path(history, path, idxs, &eff)?;
    }
    Ok(())
}
