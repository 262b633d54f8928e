//! The per-path model the linearizability search steps through: one
//! file's state ([`State`]), the operations on it ([`Kind`], [`PathOp`]),
//! and the transition function ([`step`]).

use std::collections::HashMap;

use super::format::{fmt_body, fmt_read};
use super::op::{Call, Micros, Op, Outcome};

/// One file's state in the search.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) enum File {
    /// No such file (rev 0).
    Missing,
    /// Written by a change at a known rev.
    Known { rev: i64, body: u32 },
    /// Written by a SET that timed out: its rev is unknown but greater
    /// than `lo`.
    Unknown { lo: i64, body: u32 },
}

/// The search's state on one path: the file, and how far the revision
/// order has got.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct State {
    /// The file.
    pub(super) file: File,
    /// The greatest revision point linearized so far on this path.
    pub(super) last: i64,
}

/// What an operation does to its file, as the search sees it (`cond` is
/// the request's rev, `body` an id from [`Bodies`]).
#[derive(Clone, Debug)]
pub(super) enum Kind {
    /// A SET applied at `rev`.
    SetOk { cond: i64, body: u32, rev: i64 },
    /// A SET that timed out: applied at an unknown rev, or never.
    SetUnknown { cond: i64, body: u32 },
    /// A DEL that succeeded.
    DelOk { cond: i64 },
    /// A DEL that timed out.
    DelUnknown { cond: i64 },
    /// A SET or DEL refused with `REV_MISMATCH`.
    Mismatch { cond: i64 },
    /// A linearizable read at rev `at` that found `body` at `rev`.
    Read { at: i64, body: u32, rev: i64 },
}

/// One operation of the path being searched.
pub(super) struct PathOp {
    /// Its index in the whole history.
    pub(super) idx: usize,
    /// The start of its (effective) interval.
    pub(super) inv: Micros,
    /// The end of its (effective) interval; `Micros::MAX` if it timed out.
    pub(super) comp: Micros,
    /// Whether it must be linearized (it completed); a timed-out operation
    /// may be left out.
    pub(super) required: bool,
    /// What it does to the file.
    pub(super) kind: Kind,
}

/// Bodies numbered, so states compare and hash cheaply.
#[derive(Default)]
pub(super) struct Bodies<'a> {
    /// Body -> id.
    pub(super) ids: HashMap<&'a [u8], u32>,
    /// Id -> body.
    pub(super) list: Vec<&'a [u8]>,
}

impl<'a> Bodies<'a> {
    /// The id of body `b`, assigning the next one if it is new.
    pub(super) fn id(&mut self, b: &'a [u8]) -> u32 {
        if let Some(&id) = self.ids.get(b) {
            return id;
        }
        let id = self.list.len() as u32;
        self.ids.insert(b, id);
        self.list.push(b);
        id
    }
}

impl PathOp {
    /// The search's view of `history[idx]`, within the effective interval
    /// `eff`; `None` for an operation that says nothing about the file
    /// (a plain GET, a refused or timed-out read).
    pub(super) fn new<'a>(
        history: &'a [Op],
        idx: usize,
        eff: (Micros, Micros),
        bodies: &mut Bodies<'a>,
    ) -> Option<PathOp> {
        let op = &history[idx];
        let kind = match (&op.call, &op.result) {
            (Call::Set { cond_rev, body, .. }, Some(Outcome::Rev(r))) => Kind::SetOk {
                cond: *cond_rev,
                body: bodies.id(body),
                rev: *r,
            },
            (Call::Set { cond_rev, body, .. }, None) => Kind::SetUnknown {
                cond: *cond_rev,
                body: bodies.id(body),
            },
            (Call::Del { cond_rev, .. }, Some(Outcome::Deleted)) => Kind::DelOk { cond: *cond_rev },
            (Call::Del { cond_rev, .. }, None) => Kind::DelUnknown { cond: *cond_rev },
            (
                Call::Set { cond_rev, .. } | Call::Del { cond_rev, .. },
                Some(Outcome::RevMismatch),
            ) => Kind::Mismatch { cond: *cond_rev },
            (Call::LinGet { .. }, Some(Outcome::ReadAt { at, body, rev })) => Kind::Read {
                at: *at,
                body: bodies.id(body),
                rev: *rev,
            },
            _ => return None,
        };
        Some(PathOp {
            idx,
            inv: eff.0,
            comp: eff.1,
            required: op.result.is_some(),
            kind,
        })
    }
}

/// The file as a report shows it.
pub(super) fn describe_file(f: &File, bodies: &Bodies) -> String {
    match f {
        File::Missing => "missing".to_string(),
        File::Known { rev, body } => {
            format!("{} rev {rev}", fmt_body(bodies.list[*body as usize]))
        }
        File::Unknown { lo, body } => format!(
            "{} at an unknown rev > {lo} (from a timed-out SET)",
            fmt_body(bodies.list[*body as usize])
        ),
    }
}

/// Whether a SET/DEL with `cond` can succeed on `file`; for a file of
/// unknown rev, `limit` is an exclusive upper bound the rev must be below.
fn cond_allows(cond: i64, file: &File, limit: i64) -> Result<(), String> {
    match file {
        File::Missing | File::Known { .. } => {
            let rev = if let File::Known { rev, .. } = file {
                *rev
            } else {
                0
            };
            if cond == -1 || cond >= rev {
                Ok(())
            } else {
                Err(format!("rev={cond} cannot succeed on a file at rev {rev}"))
            }
        }
        File::Unknown { lo, .. } => {
            let max = if cond == -1 {
                limit - 1
            } else {
                cond.min(limit - 1)
            };
            if *lo < max {
                Ok(())
            } else {
                Err(format!(
                    "rev={cond} cannot succeed on a file whose rev is > {lo}"
                ))
            }
        }
    }
}

/// The state after applying `k` to `s`, or why `k` cannot come next.
pub(super) fn step(s: &State, k: &Kind, bodies: &Bodies) -> Result<State, String> {
    let file_desc = || describe_file(&s.file, bodies);
    match *k {
        Kind::SetOk { cond, body, rev } => {
            if rev <= s.last {
                return Err(format!(
                    "it returned rev {rev}, but rev {} is already linearized before it",
                    s.last
                ));
            }
            cond_allows(cond, &s.file, rev)
                .map_err(|e| format!("{e} (the file is {})", file_desc()))?;
            Ok(State {
                file: File::Known { rev, body },
                last: rev,
            })
        }
        Kind::SetUnknown { cond, body } => {
            cond_allows(cond, &s.file, i64::MAX)?;
            let lo = match s.file {
                File::Unknown { lo, .. } => s.last.max(lo + 1),
                _ => s.last,
            };
            Ok(State {
                file: File::Unknown { lo, body },
                last: s.last,
            })
        }
        Kind::DelOk { cond } | Kind::DelUnknown { cond } => {
            cond_allows(cond, &s.file, i64::MAX)
                .map_err(|e| format!("{e} (the file is {})", file_desc()))?;
            Ok(State {
                file: File::Missing,
                last: s.last,
            })
        }
        Kind::Mismatch { cond } => {
            if cond == -1 {
                return Err("a write with rev=-1 can never fail with REV_MISMATCH".into());
            }
            let file = match s.file {
                File::Missing if cond >= 0 => {
                    return Err(format!(
                        "REV_MISMATCH with rev={cond}, but the file is missing (rev 0)"
                    ))
                }
                File::Known { rev, .. } if cond >= rev => {
                    return Err(format!(
                        "REV_MISMATCH with rev={cond}, but the file is at rev {rev} <= {cond}"
                    ))
                }
                File::Unknown { lo, body } => File::Unknown {
                    lo: lo.max(cond),
                    body,
                },
                ref f => f.clone(),
            };
            Ok(State { file, last: s.last })
        }
        Kind::Read { at, body, rev } => {
            if at < s.last {
                return Err(format!(
                    "it read at rev {at}, but rev {} is already linearized before it",
                    s.last
                ));
            }
            let file = match s.file {
                File::Missing if rev == 0 && bodies.list[body as usize].is_empty() => File::Missing,
                File::Known { rev: r, body: b } if r == rev && b == body => s.file.clone(),
                File::Unknown { lo, body: b } if b == body && rev > lo && rev <= at => {
                    File::Known { rev, body }
                }
                _ => {
                    return Err(format!(
                        "it read {}, but the file is {}",
                        fmt_read(bodies.list[body as usize], rev),
                        file_desc()
                    ))
                }
            };
            Ok(State { file, last: at })
        }
    }
}
