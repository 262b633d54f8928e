//! Unit tests of the history checkers: hand-written histories
//! (`linearizable.rs`, `sequential.rs`), the recorder (`recorder.rs`), and
//! randomized histories of correct executions (`generate.rs`), also
//! mutated into incorrect ones (`random.rs`). This file holds the builders
//! of operations and the assertions they share.

mod generate;
mod linearizable;
mod random;
mod recorder;
mod sequential;

use super::*;

fn op(client: usize, inv: Micros, comp: Option<Micros>, call: Call, res: Option<Outcome>) -> Op {
    Op {
        client,
        invoke_time: inv,
        complete_time: comp,
        call,
        result: res,
    }
}
fn set_call(path: &str, cond: i64, body: &str) -> Call {
    Call::Set {
        path: path.into(),
        cond_rev: cond,
        body: body.as_bytes().to_vec(),
    }
}
fn set(c: usize, inv: Micros, comp: Micros, path: &str, cond: i64, body: &str, rev: i64) -> Op {
    op(
        c,
        inv,
        Some(comp),
        set_call(path, cond, body),
        Some(Outcome::Rev(rev)),
    )
}
fn set_mismatch(c: usize, inv: Micros, comp: Micros, path: &str, cond: i64, body: &str) -> Op {
    op(
        c,
        inv,
        Some(comp),
        set_call(path, cond, body),
        Some(Outcome::RevMismatch),
    )
}
fn set_timeout(c: usize, inv: Micros, path: &str, cond: i64, body: &str) -> Op {
    op(c, inv, None, set_call(path, cond, body), None)
}
fn del_call(path: &str, cond: i64) -> Call {
    Call::Del {
        path: path.into(),
        cond_rev: cond,
    }
}
fn del(c: usize, inv: Micros, comp: Micros, path: &str, cond: i64) -> Op {
    op(
        c,
        inv,
        Some(comp),
        del_call(path, cond),
        Some(Outcome::Deleted),
    )
}
fn del_timeout(c: usize, inv: Micros, path: &str, cond: i64) -> Op {
    op(c, inv, None, del_call(path, cond), None)
}
fn get(c: usize, inv: Micros, comp: Micros, path: &str, body: &str, rev: i64) -> Op {
    op(
        c,
        inv,
        Some(comp),
        Call::Get { path: path.into() },
        Some(Outcome::Read {
            body: body.as_bytes().to_vec(),
            rev,
        }),
    )
}
#[allow(clippy::too_many_arguments)]
fn lget(c: usize, inv: Micros, comp: Micros, path: &str, at: i64, body: &str, rev: i64) -> Op {
    op(
        c,
        inv,
        Some(comp),
        Call::LinGet { path: path.into() },
        Some(Outcome::ReadAt {
            at,
            body: body.as_bytes().to_vec(),
            rev,
        }),
    )
}
fn nop(c: usize, inv: Micros, comp: Micros, rev: i64) -> Op {
    op(c, inv, Some(comp), Call::Nop, Some(Outcome::Rev(rev)))
}

#[track_caller]
fn lin_ok(h: &[Op]) {
    if let Err(v) = check_linearizable(h) {
        panic!("expected linearizable, got:\n{v}");
    }
}
#[track_caller]
fn lin_bad(h: &[Op]) -> Violation {
    match check_linearizable(h) {
        Ok(()) => panic!("expected a violation in:\n{}", format_history(h)),
        Err(v) => {
            // The report is readable and shows operations.
            let text = v.to_string();
            assert!(text.contains("history check failed"), "{text}");
            assert!(!v.ops.is_empty(), "{text}");
            v
        }
    }
}
#[track_caller]
fn seq_ok(h: &[Op]) {
    if let Err(v) = check_sequential_reads(h) {
        panic!("expected sequential reads to pass, got:\n{v}");
    }
}
#[track_caller]
fn seq_bad(h: &[Op]) -> Violation {
    match check_sequential_reads(h) {
        Ok(()) => panic!("expected a violation in:\n{}", format_history(h)),
        Err(v) => v,
    }
}
