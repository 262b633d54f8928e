//! The check of plain (local, not linearizable) reads: per-client
//! monotonicity, read-your-writes, and only values that were written.

use std::collections::HashMap;

use super::format::fmt_read;
use super::op::{Call, Op, Outcome};
use super::order::validate;
use super::violation::Violation;

/// What a client learned about a file from one of its operations.
enum Seen {
    /// The file was at least at this rev (from a SET's rev or a read).
    AtLeast(i64),
    /// A REV_MISMATCH with this rev: the file existed with a greater rev.
    Above(i64),
    /// The client deleted it.
    Deleted,
}

/// Checks plain GETs ([`Call::Get`], which read the local copy of
/// whichever node answers) for per-client monotonicity and for reading
/// only values that were written.
///
/// For each GET of a path by a client, taking into account that client's
/// operations on the path that completed before the GET was invoked:
/// - the rev read is at least every rev the client saw before (its
///   successful SETs' revs, revs it read, including linearizable reads),
///   and greater than the rev of any of its writes that failed with
///   REV_MISMATCH;
/// - a file read as missing after the client saw it at some rev needs a
///   successful or timed-out DEL that could have been applied after that;
/// - after the client's own successful DEL, a file read as present must
///   come from a SET that could have been applied after the DEL;
/// - the (body, rev) read was written: a successful SET of that path
///   returned that rev with that body, and was invoked before the GET
///   completed; or no operation claims that rev and a timed-out SET of the
///   same body was invoked before the GET completed; or it is rev 0 with
///   an empty body (missing).
pub fn check_sequential_reads(history: &[Op]) -> Result<(), Violation> {
    validate(history)?;
    let index = Index::new(history)?;
    for (r_idx, r) in history.iter().enumerate() {
        let (Call::Get { path }, Some(Outcome::Read { body, rev })) = (&r.call, &r.result) else {
            continue;
        };
        let read = Read {
            idx: r_idx,
            op: r,
            path,
            body,
            rev: *rev,
        };
        index.check_written(&read)?;
        index.check_monotonic(&read)?;
    }
    Ok(())
}

/// A plain GET that returned a value.
struct Read<'a> {
    /// Its index in the history.
    idx: usize,
    /// The operation.
    op: &'a Op,
    /// The file read.
    path: &'a str,
    /// The body read.
    body: &'a [u8],
    /// The rev read (0 = missing).
    rev: i64,
}

/// The history, indexed for the checks of plain reads.
struct Index<'a> {
    history: &'a [Op],
    /// rev -> the change (SET or NOP) that returned it.
    changes: HashMap<i64, usize>,
    /// (client, path) -> that client's operations on the path.
    per_client: HashMap<(usize, &'a str), Vec<usize>>,
    /// path -> its successful or timed-out DELs.
    dels: HashMap<&'a str, Vec<usize>>,
    /// path -> its timed-out SETs.
    timed_out_sets: HashMap<&'a str, Vec<usize>>,
}

impl<'a> Index<'a> {
    /// Indexes `history`; a violation if two changes claim one revision.
    fn new(history: &'a [Op]) -> Result<Index<'a>, Violation> {
        let mut index = Index {
            history,
            changes: HashMap::new(),
            per_client: HashMap::new(),
            dels: HashMap::new(),
            timed_out_sets: HashMap::new(),
        };
        for (i, op) in history.iter().enumerate() {
            if let (Call::Set { .. } | Call::Nop, Some(Outcome::Rev(r))) = (&op.call, &op.result) {
                if let Some(j) = index.changes.insert(*r, i) {
                    return Err(Violation::new(
                        format!("two changes were applied at the same revision {r}"),
                        history,
                        [i, j],
                    ));
                }
            }
        }
        for (i, op) in history.iter().enumerate() {
            let Some(path) = op.call.path() else { continue };
            index
                .per_client
                .entry((op.client, path))
                .or_default()
                .push(i);
            match (&op.call, &op.result) {
                (Call::Del { .. }, None | Some(Outcome::Deleted)) => {
                    index.dels.entry(path).or_default().push(i)
                }
                (Call::Set { .. }, None) => index.timed_out_sets.entry(path).or_default().push(i),
                _ => {}
            }
        }
        Ok(index)
    }

    /// The SET of `path` that returned `rev`, if any.
    fn set_of_rev(&self, rev: i64, path: &str) -> Option<usize> {
        self.changes
            .get(&rev)
            .copied()
            .filter(|&j| self.history[j].call.path() == Some(path))
    }

    /// The value read was written: missing (rev 0, empty body), the body
    /// of the SET that returned that rev (invoked before the read
    /// completed), or the body of a timed-out SET invoked by then.
    fn check_written(&self, read: &Read) -> Result<(), Violation> {
        let history = self.history;
        let Read {
            idx: r_idx,
            path,
            body,
            rev,
            ..
        } = *read;
        let r_comp = read.op.complete_or_max();
        if rev == 0 {
            if !body.is_empty() {
                return Err(Violation::new(
                    format!("#{r_idx} read rev 0 (missing) with a non-empty body"),
                    history,
                    [r_idx],
                ));
            }
        } else if let Some(&w) = self.changes.get(&rev) {
            let wop = &history[w];
            let matches = match &wop.call {
                Call::Set {
                    path: p, body: b, ..
                } => p == path && b == body,
                _ => false,
            };
            if !matches {
                return Err(Violation::new(
                    format!(
                        "#{r_idx} read {} from {path}, but rev {rev} is #{w}: {}",
                        fmt_read(body, rev),
                        wop.call
                    ),
                    history,
                    [r_idx, w],
                ));
            }
            if wop.invoke_time > r_comp {
                return Err(Violation::new(
                    format!(
                        "#{r_idx} read {}, written by #{w}, which was invoked only after the \
                         read completed",
                        fmt_read(body, rev)
                    ),
                    history,
                    [r_idx, w],
                ));
            }
        } else {
            let source = self.timed_out_sets.get(path).and_then(|v| {
                v.iter().copied().find(|&j| {
                    matches!(&history[j].call, Call::Set { body: b, .. } if b == body)
                        && history[j].invoke_time <= r_comp
                })
            });
            if source.is_none() {
                return Err(Violation::new(
                    format!(
                        "#{r_idx} read {} from {path}, a value no SET wrote (no SET of {path} \
                         returned rev {rev}, and no timed-out SET of that body was invoked \
                         before the read completed)",
                        fmt_read(body, rev)
                    ),
                    history,
                    [r_idx],
                ));
            }
        }
        Ok(())
    }

    /// What the reading client had seen of the file before the read was
    /// invoked: the least rev it may read now (with the operation that
    /// showed it), and its own latest successful DEL.
    fn seen_before(&self, read: &Read) -> (Option<(i64, usize)>, Option<usize>) {
        let history = self.history;
        let r = read.op;
        let mut floor: Option<(i64, usize)> = None; // (min rev allowed, from op)
        let mut own_del: Option<usize> = None;
        for &o in &self.per_client[&(r.client, read.path)] {
            let op = &history[o];
            if o == read.idx || op.complete_or_max() >= r.invoke_time {
                continue;
            }
            let seen = match (&op.call, op.result.as_ref()) {
                (Call::Set { .. }, Some(Outcome::Rev(x))) => Seen::AtLeast(*x),
                (_, Some(Outcome::Read { rev, .. } | Outcome::ReadAt { rev, .. })) if *rev > 0 => {
                    Seen::AtLeast(*rev)
                }
                (
                    Call::Set { cond_rev, .. } | Call::Del { cond_rev, .. },
                    Some(Outcome::RevMismatch),
                ) if *cond_rev >= 0 => Seen::Above(*cond_rev),
                (Call::Del { .. }, Some(Outcome::Deleted)) => Seen::Deleted,
                _ => continue,
            };
            match seen {
                Seen::AtLeast(x) | Seen::Above(x) => {
                    let min = if matches!(seen, Seen::Above(_)) {
                        x + 1
                    } else {
                        x
                    };
                    if floor.is_none_or(|(f, _)| min > f) {
                        floor = Some((min, o));
                    }
                }
                Seen::Deleted => {
                    if own_del.is_none_or(|d| op.invoke_time > history[d].invoke_time) {
                        own_del = Some(o);
                    }
                }
            }
        }
        (floor, own_del)
    }

    /// Monotonic reads and read-your-writes for the reading client.
    fn check_monotonic(&self, read: &Read) -> Result<(), Violation> {
        let (floor, own_del) = self.seen_before(read);
        if let Some((f, o)) = floor {
            self.check_floor(read, f, o)?;
        }
        if let Some(d) = own_del {
            self.check_after_own_del(read, d)?;
        }
        Ok(())
    }

    /// The read is not older than `f`, which operation `o` of the same
    /// client had shown; a file read as missing needs a DEL that could
    /// have come after what `o` saw.
    fn check_floor(&self, read: &Read, f: i64, o: usize) -> Result<(), Violation> {
        let history = self.history;
        let Read {
            idx: r_idx,
            op: r,
            path,
            body,
            rev,
        } = *read;
        let mismatch = matches!(history[o].result, Some(Outcome::RevMismatch));
        if rev > 0 && rev < f {
            return Err(Violation::new(
                format!(
                    "client {} went back in time on {path}: #{r_idx} read {}, but #{o} \
                     (completed before the read was invoked) had shown the file at rev {}{}",
                    r.client,
                    fmt_read(body, rev),
                    if mismatch { "above " } else { "" },
                    if mismatch { f - 1 } else { f },
                ),
                history,
                [r_idx, o],
            ));
        }
        if rev != 0 {
            return Ok(());
        }
        // Someone must have deleted the file after what #o saw.
        let seen_from = match history[o].result {
            Some(Outcome::Rev(_)) | Some(Outcome::RevMismatch) => Some(o),
            _ => self.set_of_rev(f, path),
        };
        let after = seen_from.map_or(0, |s| history[s].invoke_time);
        let r_comp = r.complete_or_max();
        let ok = self.dels.get(path).is_some_and(|v| {
            v.iter()
                .any(|&d| history[d].invoke_time <= r_comp && history[d].complete_or_max() >= after)
        });
        if ok {
            return Ok(());
        }
        let mut rel = vec![r_idx, o];
        rel.extend(seen_from);
        Err(Violation::new(
            format!(
                "client {} read {path} as missing (#{r_idx}) after #{o} had shown it \
                 at rev {f}, and no DEL of {path} could have come in between",
                r.client
            ),
            history,
            rel,
        ))
    }

    /// After the client's own DEL `d`, a file read as present was not
    /// written by a SET that completed before the DEL was invoked.
    fn check_after_own_del(&self, read: &Read, d: usize) -> Result<(), Violation> {
        let history = self.history;
        if read.rev <= 0 {
            return Ok(());
        }
        let Some(w) = self.set_of_rev(read.rev, read.path) else {
            return Ok(());
        };
        if history[w].complete_or_max() < history[d].invoke_time {
            return Err(Violation::new(
                format!(
                    "client {} deleted {path} (#{d}), then read {} (#{r_idx}), written by \
                     #{w}, which had completed before the DEL was invoked",
                    read.op.client,
                    fmt_read(read.body, read.rev),
                    path = read.path,
                    r_idx = read.idx,
                ),
                history,
                [read.idx, d, w],
            ));
        }
        Ok(())
    }
}
