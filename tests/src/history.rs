//! Recording and checking histories of client operations (issue 3,
//! "Consistency under faults").
//!
//! Fault tests run several clients against several nodes, record every
//! operation with a [`Recorder`] (invoke time, then the response or nothing
//! if the client gave up), and check the recorded history:
//!
//! - [`check_linearizable`]: SETs, DELs (conditional or not) and
//!   linearizable reads ([`Call::LinGet`]: a NOP through consensus, then a
//!   GET at the NOP's rev) must be linearizable with respect to the store's
//!   model (SPEC §2). The search is Wing & Gong's, with the memoization of
//!   (set of linearized operations, model state) from Lowe's algorithm and
//!   Porcupine, run per path (files are independent:
//!   P-compositionality). The revisions in the responses add constraints:
//!   changes are linearized in the order of their revisions, so every
//!   operation that carries a revision (a successful SET, a NOP, a
//!   linearizable read) gets a narrowed real-time interval (see
//!   [`check_linearizable`]).
//! - [`check_sequential_reads`]: plain GETs read a node's local copy, so
//!   they need not be fresh, but each client must never see the store go
//!   backwards (monotonic reads, read-your-writes), and every value read
//!   must have been written.
//!
//! A failed check returns a [`Violation`] whose `Display` explains what is
//! wrong and lists the operations involved, for the test's failure message.
//!
//! Times are microseconds since the recorder started (a monotonic clock).
//! An operation *precedes* another in real time when it completed strictly
//! before the other was invoked. An operation without a response (timed
//! out, connection lost) may have taken effect at any point after its
//! invocation, or never.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Microseconds since the [`Recorder`] started.
pub type Micros = u64;

/// A client request, as recorded.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Call {
    /// SET `path` to `body` if `cond_rev` is -1 or at least the file's rev.
    Set {
        /// The file.
        path: String,
        /// The request's rev: -1 clobbers, 0 creates only if missing.
        cond_rev: i64,
        /// The new body.
        body: Vec<u8>,
    },
    /// DEL `path` if `cond_rev` is -1 or at least the file's rev.
    Del {
        /// The file.
        path: String,
        /// The request's rev: -1 clobbers.
        cond_rev: i64,
    },
    /// A plain GET of the node's current local state (not linearizable;
    /// checked by [`check_sequential_reads`]).
    Get {
        /// The file.
        path: String,
    },
    /// A linearizable read: a NOP through consensus, then a GET at the rev
    /// the NOP returned (answered with [`Outcome::ReadAt`]).
    LinGet {
        /// The file.
        path: String,
    },
    /// A NOP through consensus (answered with [`Outcome::Rev`]).
    Nop,
}

impl Call {
    /// The path the call is about (`None` for NOP).
    pub fn path(&self) -> Option<&str> {
        match self {
            Call::Set { path, .. }
            | Call::Del { path, .. }
            | Call::Get { path }
            | Call::LinGet { path } => Some(path),
            Call::Nop => None,
        }
    }
}

/// The response to a [`Call`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// A SET or NOP was applied at this rev.
    Rev(i64),
    /// A DEL was applied.
    Deleted,
    /// A conditional SET or DEL failed with `REV_MISMATCH` (nothing changed
    /// in the file).
    RevMismatch,
    /// A plain GET: the body and the file's rev (0 = missing, empty body).
    Read {
        /// The body read.
        body: Vec<u8>,
        /// The file's rev; 0 for a missing file.
        rev: i64,
    },
    /// A linearizable GET: the NOP returned `at`, and the GET at `at` read
    /// `body` and `rev` (0 = missing).
    ReadAt {
        /// The NOP's rev, at which the file was read.
        at: i64,
        /// The body read.
        body: Vec<u8>,
        /// The file's rev; 0 for a missing file.
        rev: i64,
    },
    /// Any other answer that means the operation certainly did not take
    /// effect (e.g. `READONLY`, `TOO_LATE`). An operation whose fate is
    /// unknown (timeout, connection lost) must instead be left without an
    /// outcome.
    Refused(String),
}

/// One recorded operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Op {
    /// Who issued it (e.g. a connection number). Monotonic reads are
    /// checked per client.
    pub client: usize,
    /// When the request was about to be sent.
    pub invoke_time: Micros,
    /// When the response arrived; `None` if it never did (timeout).
    pub complete_time: Option<Micros>,
    /// The request.
    pub call: Call,
    /// The response; `None` if it never arrived (timeout).
    pub result: Option<Outcome>,
}

impl Op {
    fn complete_or_max(&self) -> Micros {
        self.complete_time.unwrap_or(Micros::MAX)
    }
}

fn fmt_body(b: &[u8]) -> String {
    const MAX: usize = 40;
    let shown: String = b[..b.len().min(MAX)].escape_ascii().to_string();
    if b.len() > MAX {
        format!("\"{shown}\"... ({} bytes)", b.len())
    } else {
        format!("\"{shown}\"")
    }
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Call::Set {
                path,
                cond_rev,
                body,
            } => write!(f, "SET {path} rev={cond_rev} {}", fmt_body(body)),
            Call::Del { path, cond_rev } => write!(f, "DEL {path} rev={cond_rev}"),
            Call::Get { path } => write!(f, "GET {path}"),
            Call::LinGet { path } => write!(f, "LINGET {path}"),
            Call::Nop => write!(f, "NOP"),
        }
    }
}

fn fmt_read(body: &[u8], rev: i64) -> String {
    if rev == 0 && body.is_empty() {
        "missing (rev 0)".to_string()
    } else {
        format!("{} rev {rev}", fmt_body(body))
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Rev(r) => write!(f, "ok rev {r}"),
            Outcome::Deleted => write!(f, "ok (deleted)"),
            Outcome::RevMismatch => write!(f, "REV_MISMATCH"),
            Outcome::Read { body, rev } => write!(f, "{}", fmt_read(body, *rev)),
            Outcome::ReadAt { at, body, rev } => {
                write!(f, "{} (read at rev {at})", fmt_read(body, *rev))
            }
            Outcome::Refused(why) => write!(f, "refused: {why}"),
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let end = match self.complete_time {
            Some(t) => format!("{t:>10}"),
            None => format!("{:>10}", "-"),
        };
        let result = match &self.result {
            Some(r) => r.to_string(),
            None => "TIMEOUT (unknown outcome)".to_string(),
        };
        write!(
            f,
            "client {:<3} [{:>10} .. {end}] {} -> {result}",
            self.client, self.invoke_time, self.call
        )
    }
}

/// Renders a history (or part of one) one operation per line, each
/// prefixed with its index.
pub fn format_history(history: &[Op]) -> String {
    let mut s = String::new();
    for (i, op) in history.iter().enumerate() {
        s.push_str(&format!("  #{i:<5} {op}\n"));
    }
    s
}

/// A failed check: what is wrong, and the operations involved.
#[derive(Clone, PartialEq, Eq)]
pub struct Violation {
    /// A readable explanation (several lines).
    pub explanation: String,
    /// The relevant operations, with their index in the checked history,
    /// sorted by index.
    pub ops: Vec<(usize, Op)>,
}

impl Violation {
    fn new(explanation: String, history: &[Op], idxs: impl IntoIterator<Item = usize>) -> Self {
        let mut idxs: Vec<usize> = idxs.into_iter().collect();
        idxs.sort_unstable();
        idxs.dedup();
        Violation {
            explanation,
            ops: idxs.into_iter().map(|i| (i, history[i].clone())).collect(),
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "history check failed: {}", self.explanation.trim_end())?;
        if !self.ops.is_empty() {
            writeln!(
                f,
                "relevant operations (#index in the history; times in µs since the recorder started):"
            )?;
            for (i, op) in &self.ops {
                writeln!(f, "  #{i:<5} {op}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for Violation {}

// ---------------------------------------------------------------------------
// Recorder
// ---------------------------------------------------------------------------

struct RecorderInner {
    start: Instant,
    ops: Mutex<Vec<Op>>,
}

/// Records operations from many client threads; clone it for each thread.
///
/// `invoke` just before sending a request, then `complete` the returned
/// handle with the response. Dropping a handle without completing it
/// records a timeout (the outcome is unknown).
#[derive(Clone)]
pub struct Recorder {
    inner: Arc<RecorderInner>,
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    /// A recorder whose clock starts now.
    pub fn new() -> Recorder {
        Recorder {
            inner: Arc::new(RecorderInner {
                start: Instant::now(),
                ops: Mutex::new(Vec::new()),
            }),
        }
    }

    fn now(&self) -> Micros {
        self.inner.start.elapsed().as_micros() as Micros
    }

    /// Records that `client` is about to send `call`.
    pub fn invoke(&self, client: usize, call: Call) -> OpHandle {
        let mut ops = self.inner.ops.lock().unwrap_or_else(|e| e.into_inner());
        let invoke_time = self.now();
        ops.push(Op {
            client,
            invoke_time,
            complete_time: None,
            call,
            result: None,
        });
        OpHandle {
            recorder: self.clone(),
            index: ops.len() - 1,
        }
    }

    /// A copy of everything recorded so far, in invocation order.
    /// Operations still in flight appear as timed out.
    pub fn history(&self) -> Vec<Op> {
        self.inner
            .ops
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// An operation in flight; see [`Recorder`].
pub struct OpHandle {
    recorder: Recorder,
    index: usize,
}

impl OpHandle {
    /// Records the response. For an answer that does not tell whether the
    /// operation took effect (connection lost), drop the handle instead.
    pub fn complete(self, result: Outcome) {
        let t = self.recorder.now();
        let mut ops = self
            .recorder
            .inner
            .ops
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let op = &mut ops[self.index];
        op.complete_time = Some(t.max(op.invoke_time));
        op.result = Some(result);
    }

    /// The index of this operation in [`Recorder::history`].
    pub fn index(&self) -> usize {
        self.index
    }
}

// ---------------------------------------------------------------------------
// Validation and revision order
// ---------------------------------------------------------------------------

fn validate(history: &[Op]) -> Result<(), Violation> {
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
fn effective_intervals(history: &[Op]) -> Result<Vec<(Micros, Micros)>, Violation> {
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

// ---------------------------------------------------------------------------
// The per-path model
// ---------------------------------------------------------------------------

/// One file's state in the search.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum File {
    Missing,
    /// Written by a change at a known rev.
    Known {
        rev: i64,
        body: u32,
    },
    /// Written by a SET that timed out: its rev is unknown but greater
    /// than `lo`.
    Unknown {
        lo: i64,
        body: u32,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct State {
    file: File,
    /// The greatest revision point linearized so far on this path.
    last: i64,
}

#[derive(Clone, Debug)]
enum Kind {
    SetOk { cond: i64, body: u32, rev: i64 },
    SetUnknown { cond: i64, body: u32 },
    DelOk { cond: i64 },
    DelUnknown { cond: i64 },
    Mismatch { cond: i64 },
    Read { at: i64, body: u32, rev: i64 },
}

struct PathOp {
    idx: usize,
    inv: Micros,
    comp: Micros,
    required: bool,
    kind: Kind,
}

struct Bodies<'a> {
    ids: HashMap<&'a [u8], u32>,
    list: Vec<&'a [u8]>,
}

impl<'a> Bodies<'a> {
    fn id(&mut self, b: &'a [u8]) -> u32 {
        if let Some(&id) = self.ids.get(b) {
            return id;
        }
        let id = self.list.len() as u32;
        self.ids.insert(b, id);
        self.list.push(b);
        id
    }
}

fn describe_file(f: &File, bodies: &Bodies) -> String {
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

fn step(s: &State, k: &Kind, bodies: &Bodies) -> Result<State, String> {
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

// ---------------------------------------------------------------------------
// The search
// ---------------------------------------------------------------------------

type Bits = Vec<u64>;

fn has(bits: &Bits, i: usize) -> bool {
    bits[i / 64] & (1 << (i % 64)) != 0
}

fn with(bits: &Bits, i: usize) -> Bits {
    let mut b = bits.clone();
    b[i / 64] |= 1 << (i % 64);
    b
}

struct Frame {
    bits: Bits,
    state: State,
    via: Option<usize>,
    required_done: usize,
    succ: Vec<(usize, State)>,
    next: usize,
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

fn check_path(
    history: &[Op],
    path: &str,
    idxs: &[usize],
    eff: &[(Micros, Micros)],
) -> Result<(), Violation> {
    let mut bodies = Bodies {
        ids: HashMap::new(),
        list: Vec::new(),
    };
    let mut ops: Vec<PathOp> = Vec::new();
    for &i in idxs {
        let op = &history[i];
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
            _ => continue,
        };
        ops.push(PathOp {
            idx: i,
            inv: eff[i].0,
            comp: eff[i].1,
            required: op.result.is_some(),
            kind,
        });
    }
    ops.sort_by_key(|o| (o.inv, o.comp));
    let n = ops.len();
    let required_total = ops.iter().filter(|o| o.required).count();
    if required_total == 0 {
        return Ok(());
    }
    let words = n.div_ceil(64);
    let init = State {
        file: File::Missing,
        last: 0,
    };
    let bits0 = vec![0u64; words];
    let mut visited: HashSet<(Bits, State)> = HashSet::new();
    visited.insert((bits0.clone(), init.clone()));
    let mut stack = vec![Frame {
        succ: successors(&ops, &bits0, &init, &bodies),
        bits: bits0,
        state: init,
        via: None,
        required_done: 0,
        next: 0,
    }];
    // The deepest point reached, for the report.
    let mut best: (usize, Vec<(usize, State)>, Bits, State) =
        (0, Vec::new(), stack[0].bits.clone(), stack[0].state.clone());
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
        let depth = stack.len();
        if depth > best.0 {
            let mut seq: Vec<(usize, State)> = stack
                .iter()
                .skip(1)
                .map(|f| (f.via.unwrap(), f.state.clone()))
                .collect();
            seq.push((i, next_state.clone()));
            best = (depth, seq, bits.clone(), next_state.clone());
        }
        let succ = successors(&ops, &bits, &next_state, &bodies);
        stack.push(Frame {
            bits,
            state: next_state,
            via: Some(i),
            required_done,
            succ,
            next: 0,
        });
    }

    // No linearization: explain where the deepest attempt got stuck.
    let (_, seq, bits, state) = best;
    let timeouts = n - required_total;
    let mut text = format!(
        "the operations on {path} are not linearizable ({n} operations, {timeouts} timed out; \
         SET/DEL/LINGET only).\n"
    );
    let mut rel: Vec<usize> = Vec::new();
    if seq.is_empty() {
        text.push_str(
            "Not even the first operation can be linearized (the file starts missing).\n",
        );
    } else {
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
                describe_file(&st.file, &bodies)
            ));
        }
    }
    let (cands, blocker) = candidates(&ops, &bits);
    text.push_str(&format!(
        "After that (file {}), nothing can come next:\n",
        describe_file(&state.file, &bodies)
    ));
    for &c in &cands {
        let idx = ops[c].idx;
        rel.push(idx);
        let why = match step(&state, &ops[c].kind, &bodies) {
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
    if n <= 40 {
        rel.extend(ops.iter().map(|o| o.idx));
    }
    Err(Violation::new(text, history, rel))
}

/// Checks that the SETs, DELs and linearizable reads ([`Call::LinGet`])
/// in `history` are linearizable with respect to the store's model.
///
/// Plain [`Call::Get`]s are ignored here (see [`check_sequential_reads`]);
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

// ---------------------------------------------------------------------------
// Sequential reads
// ---------------------------------------------------------------------------

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
    // rev -> change that returned it.
    let mut changes: HashMap<i64, usize> = HashMap::new();
    for (i, op) in history.iter().enumerate() {
        if let (Call::Set { .. } | Call::Nop, Some(Outcome::Rev(r))) = (&op.call, &op.result) {
            if let Some(j) = changes.insert(*r, i) {
                return Err(Violation::new(
                    format!("two changes were applied at the same revision {r}"),
                    history,
                    [i, j],
                ));
            }
        }
    }
    let mut per_client: HashMap<(usize, &str), Vec<usize>> = HashMap::new();
    let mut dels: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut timed_out_sets: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, op) in history.iter().enumerate() {
        let Some(path) = op.call.path() else { continue };
        per_client.entry((op.client, path)).or_default().push(i);
        match (&op.call, &op.result) {
            (Call::Del { .. }, None | Some(Outcome::Deleted)) => {
                dels.entry(path).or_default().push(i)
            }
            (Call::Set { .. }, None) => timed_out_sets.entry(path).or_default().push(i),
            _ => {}
        }
    }
    let set_of_rev = |rev: i64, path: &str| -> Option<usize> {
        changes
            .get(&rev)
            .copied()
            .filter(|&j| history[j].call.path() == Some(path))
    };

    for (r_idx, r) in history.iter().enumerate() {
        let (Call::Get { path }, Some(Outcome::Read { body, rev })) = (&r.call, &r.result) else {
            continue;
        };
        let (path, rev) = (path.as_str(), *rev);
        let r_comp = r.complete_or_max();
        // 1. The value was written.
        if rev == 0 {
            if !body.is_empty() {
                return Err(Violation::new(
                    format!("#{r_idx} read rev 0 (missing) with a non-empty body"),
                    history,
                    [r_idx],
                ));
            }
        } else if let Some(&w) = changes.get(&rev) {
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
            let source = timed_out_sets.get(path).and_then(|v| {
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

        // 2. Monotonic reads / read-your-writes for this client.
        let mut floor: Option<(i64, usize)> = None; // (min rev allowed, from op)
        let mut own_del: Option<usize> = None;
        for &o in &per_client[&(r.client, path)] {
            let op = &history[o];
            if o == r_idx || op.complete_or_max() >= r.invoke_time {
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
        if let Some((f, o)) = floor {
            if rev > 0 && rev < f {
                return Err(Violation::new(
                    format!(
                        "client {} went back in time on {path}: #{r_idx} read {}, but #{o} \
                         (completed before the read was invoked) had shown the file at rev {}{}",
                        r.client,
                        fmt_read(body, rev),
                        if matches!(history[o].result, Some(Outcome::RevMismatch)) {
                            "above "
                        } else {
                            ""
                        },
                        if matches!(history[o].result, Some(Outcome::RevMismatch)) {
                            f - 1
                        } else {
                            f
                        },
                    ),
                    history,
                    [r_idx, o],
                ));
            }
            if rev == 0 {
                // Someone must have deleted the file after what #o saw.
                let seen_from = match history[o].result {
                    Some(Outcome::Rev(_)) | Some(Outcome::RevMismatch) => Some(o),
                    _ => set_of_rev(f, path),
                };
                let after = seen_from.map_or(0, |s| history[s].invoke_time);
                let ok = dels.get(path).is_some_and(|v| {
                    v.iter().any(|&d| {
                        history[d].invoke_time <= r_comp && history[d].complete_or_max() >= after
                    })
                });
                if !ok {
                    let mut rel = vec![r_idx, o];
                    rel.extend(seen_from);
                    return Err(Violation::new(
                        format!(
                            "client {} read {path} as missing (#{r_idx}) after #{o} had shown it \
                             at rev {f}, and no DEL of {path} could have come in between",
                            r.client
                        ),
                        history,
                        rel,
                    ));
                }
            }
        }
        if let (Some(d), true) = (own_del, rev > 0) {
            if let Some(w) = set_of_rev(rev, path) {
                if history[w].complete_or_max() < history[d].invoke_time {
                    return Err(Violation::new(
                        format!(
                            "client {} deleted {path} (#{d}), then read {} (#{r_idx}), written by \
                             #{w}, which had completed before the DEL was invoked",
                            r.client,
                            fmt_read(body, rev)
                        ),
                        history,
                        [r_idx, d, w],
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Runs [`check_linearizable`] and then [`check_sequential_reads`].
pub fn check_history(history: &[Op]) -> Result<(), Violation> {
    check_linearizable(history)?;
    check_sequential_reads(history)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(
        client: usize,
        inv: Micros,
        comp: Option<Micros>,
        call: Call,
        res: Option<Outcome>,
    ) -> Op {
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

    // -- linearizability: hand-written histories ---------------------------

    #[test]
    fn empty_and_sequential_histories_pass() {
        lin_ok(&[]);
        seq_ok(&[]);
        let h = vec![
            lget(0, 0, 5, "/a", 1, "", 0),
            set(0, 10, 20, "/a", 0, "x", 2),
            lget(1, 30, 40, "/a", 3, "x", 2),
            set(1, 50, 60, "/a", 2, "y", 5),
            set_mismatch(0, 70, 80, "/a", 2, "z"),
            del(0, 90, 100, "/a", 5),
            lget(1, 110, 120, "/a", 8, "", 0),
            set(1, 130, 140, "/a", 0, "w", 9),
            nop(2, 150, 160, 10),
        ];
        lin_ok(&h);
        seq_ok(&h);
        check_history(&h).unwrap();
    }

    #[test]
    fn concurrent_writes_may_linearize_either_way() {
        // Two overlapping clobbering SETs; reads after both see the later
        // rev's value.
        let h = vec![
            set(0, 0, 100, "/a", -1, "x", 7),
            set(1, 10, 90, "/a", -1, "y", 5),
            lget(2, 20, 30, "/a", 6, "y", 5),
            lget(2, 120, 130, "/a", 9, "x", 7),
        ];
        lin_ok(&h);
        // A read concurrent with both may see either or neither.
        let h2 = vec![
            set(0, 0, 100, "/a", -1, "x", 7),
            set(1, 10, 90, "/a", -1, "y", 5),
            lget(2, 5, 95, "/a", 4, "", 0),
        ];
        lin_ok(&h2);
    }

    #[test]
    fn stale_linearizable_read_after_completed_write_fails() {
        let h = vec![
            set(0, 0, 10, "/a", -1, "old", 3),
            set(0, 20, 30, "/a", -1, "new", 5),
            lget(1, 40, 50, "/a", 9, "old", 3),
        ];
        let v = lin_bad(&h);
        assert!(v.to_string().contains("/a"), "{v}");
        // The same read while the second write is in flight is fine.
        let h = vec![
            set(0, 0, 10, "/a", -1, "old", 3),
            set(0, 20, 60, "/a", -1, "new", 5),
            lget(1, 15, 50, "/a", 4, "old", 3),
        ];
        lin_ok(&h);
    }

    #[test]
    fn stale_read_with_consistent_revs_fails_in_search() {
        // The revisions agree with real time (the second SET overlaps the
        // read), but a read at rev 6 must see the SET at rev 5.
        let h = vec![
            set(0, 0, 10, "/a", -1, "old", 3),
            set(0, 20, 60, "/a", -1, "new", 5),
            lget(1, 30, 50, "/a", 6, "old", 3),
        ];
        let v = lin_bad(&h);
        assert!(v.explanation.contains("not linearizable"), "{v}");
    }

    #[test]
    fn two_create_only_sets_without_del_fail() {
        let h = vec![
            set(0, 0, 10, "/a", 0, "x", 1),
            set(1, 20, 30, "/a", 0, "y", 2),
        ];
        let v = lin_bad(&h);
        assert!(v.explanation.contains("rev=0"), "{v}");
        // Concurrent ones: still only one can win.
        let h = vec![
            set(0, 0, 50, "/a", 0, "x", 1),
            set(1, 0, 50, "/a", 0, "y", 2),
        ];
        lin_bad(&h);
        // With a DEL between them (even a concurrent one), fine.
        let h = vec![
            set(0, 0, 10, "/a", 0, "x", 1),
            del(2, 5, 40, "/a", -1),
            set(1, 20, 30, "/a", 0, "y", 2),
        ];
        lin_ok(&h);
        // With a timed-out DEL, fine too.
        let h = vec![
            set(0, 0, 10, "/a", 0, "x", 1),
            del_timeout(2, 5, "/a", -1),
            set(1, 20, 30, "/a", 0, "y", 4),
        ];
        lin_ok(&h);
        // But not if the DEL was invoked after the second create completed.
        let h = vec![
            set(0, 0, 10, "/a", 0, "x", 1),
            set(1, 20, 30, "/a", 0, "y", 4),
            del_timeout(2, 35, "/a", -1),
        ];
        lin_bad(&h);
    }

    #[test]
    fn conditional_set_against_overwritten_rev_fails() {
        let h = vec![
            set(0, 0, 10, "/a", -1, "x", 5),
            set(1, 20, 30, "/a", -1, "y", 7),
            set(0, 40, 50, "/a", 5, "z", 9),
        ];
        lin_bad(&h);
        // Concurrent with the overwrite: the conditional one could go first.
        let h = vec![
            set(0, 0, 10, "/a", -1, "x", 5),
            set(1, 20, 60, "/a", -1, "y", 9),
            set(0, 40, 50, "/a", 5, "z", 7),
            lget(2, 70, 80, "/a", 10, "y", 9),
        ];
        lin_ok(&h);
        // A conditional SET failing although its rev is current fails.
        let h = vec![
            set(0, 0, 10, "/a", -1, "x", 5),
            set_mismatch(0, 40, 50, "/a", 5, "z"),
        ];
        lin_bad(&h);
        // A clobbering SET can never mismatch.
        let h = vec![set_mismatch(0, 40, 50, "/a", -1, "z")];
        lin_bad(&h);
        // A create-only SET cannot mismatch on a missing file.
        let h = vec![set_mismatch(0, 40, 50, "/a", 0, "z")];
        lin_bad(&h);
        // But it can when the file exists.
        let h = vec![
            set(1, 0, 10, "/a", 0, "x", 1),
            set_mismatch(0, 40, 50, "/a", 0, "z"),
        ];
        lin_ok(&h);
    }

    #[test]
    fn lost_write_fails() {
        // An acknowledged SET whose value no later read shows.
        let h = vec![
            set(0, 0, 10, "/a", -1, "x", 5),
            lget(1, 20, 30, "/a", 6, "", 0),
        ];
        lin_bad(&h);
        let h = vec![
            set(0, 0, 10, "/a", -1, "x", 5),
            set(0, 20, 30, "/a", -1, "y", 6),
            lget(1, 40, 50, "/a", 8, "x", 5),
        ];
        lin_bad(&h);
        // Acknowledged DEL lost.
        let h = vec![
            set(0, 0, 10, "/a", -1, "x", 5),
            del(0, 20, 30, "/a", -1),
            lget(1, 40, 50, "/a", 8, "x", 5),
        ];
        lin_bad(&h);
    }

    #[test]
    fn read_of_value_never_written_fails() {
        let h = vec![
            set(0, 0, 10, "/a", -1, "x", 5),
            lget(1, 20, 30, "/a", 6, "bogus", 5),
        ];
        let v = lin_bad(&h);
        assert!(v.to_string().contains("bogus"), "{v}");
        let h = vec![lget(1, 20, 30, "/a", 6, "bogus", 4)];
        lin_bad(&h);
        // Written, but to another file.
        let h = vec![
            set(0, 0, 10, "/b", -1, "x", 5),
            lget(1, 20, 30, "/a", 6, "x", 5),
        ];
        lin_bad(&h);
    }

    #[test]
    fn timeouts_that_explain_a_history() {
        // A timed-out SET's value, read later at a rev nobody else claims.
        let h = vec![
            set(0, 0, 10, "/a", -1, "x", 5),
            set_timeout(1, 20, "/a", -1, "y"),
            lget(2, 40, 50, "/a", 9, "y", 7),
        ];
        lin_ok(&h);
        // A timed-out create-only SET that never applied.
        let h = vec![
            set_timeout(1, 0, "/a", 0, "y"),
            set(0, 20, 30, "/a", 0, "x", 5),
            lget(2, 40, 50, "/a", 9, "x", 5),
        ];
        lin_ok(&h);
        // A timed-out DEL explains a file read as missing.
        let h = vec![
            set(0, 0, 10, "/a", -1, "x", 5),
            del_timeout(1, 20, "/a", 5),
            lget(2, 40, 50, "/a", 9, "", 0),
        ];
        lin_ok(&h);
        // A timed-out SET's unknown rev, pinned by a read, then a
        // conditional SET against it.
        let h = vec![
            set_timeout(1, 0, "/a", -1, "y"),
            lget(2, 40, 50, "/a", 9, "y", 7),
            set(0, 60, 70, "/a", 7, "z", 12),
            set_mismatch(0, 80, 90, "/a", 7, "w"),
        ];
        lin_ok(&h);
        // A conditional SET against a timed-out SET's unknown rev: rev=3
        // can succeed if that SET got rev <= 3.
        let h = vec![
            set(0, 0, 10, "/a", -1, "x", 2),
            set_timeout(1, 20, "/a", -1, "y"),
            set(0, 60, 70, "/a", 3, "z", 12),
            set_mismatch(0, 80, 90, "/a", 3, "w"),
        ];
        lin_ok(&h);
        // A timed-out read says nothing.
        let h = vec![
            set(0, 0, 10, "/a", -1, "x", 2),
            op(1, 20, None, Call::LinGet { path: "/a".into() }, None),
        ];
        lin_ok(&h);
    }

    #[test]
    fn timeouts_that_do_not_explain_a_history() {
        // Invoked after the read completed: cannot explain it.
        let h = vec![
            set(0, 0, 10, "/a", -1, "x", 5),
            lget(2, 40, 50, "/a", 9, "y", 7),
            set_timeout(1, 60, "/a", -1, "y"),
        ];
        lin_bad(&h);
        // Wrong body.
        let h = vec![
            set(0, 0, 10, "/a", -1, "x", 5),
            set_timeout(1, 20, "/a", -1, "z"),
            lget(2, 40, 50, "/a", 9, "y", 7),
        ];
        lin_bad(&h);
        // Its condition cannot hold: rev=1 against a file at rev 5.
        let h = vec![
            set(0, 0, 10, "/a", -1, "x", 5),
            set_timeout(1, 20, "/a", 1, "y"),
            lget(2, 40, 50, "/a", 9, "y", 7),
        ];
        lin_bad(&h);
        // A timed-out SET on another path does not help.
        let h = vec![
            set(0, 0, 10, "/a", -1, "x", 5),
            set_timeout(1, 20, "/b", -1, "y"),
            lget(2, 40, 50, "/a", 9, "y", 7),
        ];
        lin_bad(&h);
        // The read's rev must be above what was linearized before it.
        let h = vec![
            set(0, 0, 10, "/a", -1, "x", 5),
            set_timeout(1, 20, "/a", -1, "y"),
            lget(2, 40, 50, "/a", 9, "y", 4),
        ];
        lin_bad(&h);
        // A conditional SET's success pins the unknown rev to <= 3, so a
        // read revealing rev 7 for the timed-out SET contradicts it.
        let h = vec![
            set(0, 0, 10, "/a", -1, "x", 2),
            set_timeout(1, 20, "/a", -1, "y"),
            set_mismatch(0, 60, 70, "/a", 6, "w"),
            lget(2, 80, 90, "/a", 9, "y", 5),
        ];
        lin_bad(&h);
    }

    #[test]
    fn refused_operations_never_happened() {
        let h = vec![
            op(
                0,
                0,
                Some(10),
                set_call("/a", -1, "x"),
                Some(Outcome::Refused("READONLY".into())),
            ),
            lget(1, 20, 30, "/a", 3, "", 0),
        ];
        lin_ok(&h);
        let h = vec![
            op(
                0,
                0,
                Some(10),
                set_call("/a", -1, "x"),
                Some(Outcome::Refused("READONLY".into())),
            ),
            lget(1, 20, 30, "/a", 3, "x", 2),
        ];
        lin_bad(&h);
    }

    #[test]
    fn revision_order_must_agree_with_real_time() {
        // SET B invoked after SET A completed but got a smaller rev.
        let h = vec![
            set(0, 0, 10, "/a", -1, "x", 10),
            set(1, 20, 30, "/b", -1, "y", 8),
        ];
        let v = lin_bad(&h);
        assert!(v.explanation.contains("contradict real time"), "{v}");
        // Through a NOP.
        let h = vec![nop(0, 0, 10, 20), set(1, 20, 30, "/b", -1, "y", 15)];
        lin_bad(&h);
        // A linearizable read at a rev below a completed SET's.
        let h = vec![
            set(0, 0, 10, "/a", -1, "x", 10),
            lget(1, 20, 30, "/b", 8, "", 0),
        ];
        lin_bad(&h);
        // Duplicate revisions.
        let h = vec![
            set(0, 0, 10, "/a", -1, "x", 10),
            set(1, 0, 10, "/b", -1, "y", 10),
        ];
        let v = lin_bad(&h);
        assert!(v.explanation.contains("same revision"), "{v}");
        // Narrowed intervals: the DEL completed before a NOP at 6 was
        // invoked, so it precedes the SET at 7 although they overlap in
        // real time; the read then must see "x".
        let h = vec![
            del(0, 0, 10, "/a", -1),
            nop(2, 20, 25, 6),
            set(1, 5, 40, "/a", -1, "x", 7),
            lget(1, 50, 60, "/a", 8, "", 0),
        ];
        lin_bad(&h);
        let h = vec![
            del(0, 0, 10, "/a", -1),
            nop(2, 20, 25, 6),
            set(1, 5, 40, "/a", -1, "x", 7),
            lget(1, 50, 60, "/a", 8, "x", 7),
        ];
        lin_ok(&h);
    }

    #[test]
    fn paths_are_independent() {
        let h = vec![
            set(0, 0, 10, "/a", 0, "x", 1),
            set(1, 0, 10, "/b", 0, "y", 2),
            lget(0, 20, 30, "/b", 3, "y", 2),
            lget(1, 20, 30, "/a", 4, "x", 1),
        ];
        lin_ok(&h);
    }

    #[test]
    fn malformed_histories_are_reported() {
        let h = vec![op(0, 10, Some(5), Call::Nop, Some(Outcome::Rev(1)))];
        assert!(check_linearizable(&h)
            .unwrap_err()
            .explanation
            .contains("malformed"));
        let h = vec![op(0, 0, Some(5), Call::Nop, Some(Outcome::Deleted))];
        assert!(check_sequential_reads(&h)
            .unwrap_err()
            .explanation
            .contains("malformed"));
        let h = vec![op(0, 0, Some(5), Call::Nop, None)];
        assert!(check_linearizable(&h).is_err());
    }

    #[test]
    fn violation_display_shows_the_operations() {
        let h = vec![
            set(3, 100, 110, "/a", -1, "old", 3),
            set(3, 120, 130, "/a", -1, "new", 5),
            lget(4, 140, 150, "/a", 9, "old", 3),
        ];
        let v = check_linearizable(&h).unwrap_err();
        let text = v.to_string();
        for needle in [
            "/a",
            "client 3",
            "client 4",
            "SET /a rev=-1 \"new\"",
            "LINGET /a",
            "\"old\" rev 3 (read at rev 9)",
            "#2",
            "150",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
        }
        // Debug is the same readable text (for unwrap()).
        assert_eq!(format!("{v:?}"), text);
        let t = format_history(&[set_timeout(1, 5, "/a", 0, "q")]);
        assert!(t.contains("TIMEOUT"), "{t}");
    }

    // -- sequential reads -----------------------------------------------------

    #[test]
    fn monotonic_reads_pass() {
        let h = vec![
            set(0, 0, 10, "/a", -1, "x", 5),
            set(0, 20, 30, "/a", -1, "y", 7),
            // Another client may lag.
            get(1, 40, 50, "/a", "", 0),
            get(1, 60, 70, "/a", "x", 5),
            get(1, 80, 90, "/a", "x", 5),
            get(1, 100, 110, "/a", "y", 7),
            // The writer reads its own write.
            get(0, 40, 50, "/a", "y", 7),
        ];
        seq_ok(&h);
    }

    #[test]
    fn rev_going_backwards_fails() {
        let h = vec![
            set(0, 0, 10, "/a", -1, "x", 5),
            set(0, 20, 30, "/a", -1, "y", 7),
            get(1, 60, 70, "/a", "y", 7),
            get(1, 80, 90, "/a", "x", 5),
        ];
        let v = seq_bad(&h);
        assert!(v.explanation.contains("back in time"), "{v}");
        // Overlapping reads of one client may complete in either order.
        let h = vec![
            set(0, 0, 10, "/a", -1, "x", 5),
            set(0, 20, 30, "/a", -1, "y", 7),
            get(1, 60, 90, "/a", "y", 7),
            get(1, 80, 95, "/a", "x", 5),
        ];
        seq_ok(&h);
    }

    #[test]
    fn read_your_writes_fails() {
        let h = vec![
            set(1, 0, 10, "/a", -1, "x", 5),
            set(0, 20, 30, "/a", -1, "y", 7),
            get(0, 40, 50, "/a", "x", 5),
        ];
        seq_bad(&h);
        // Own write, then missing, with no DEL at all.
        let h = vec![
            set(0, 20, 30, "/a", -1, "y", 7),
            get(0, 40, 50, "/a", "", 0),
        ];
        seq_bad(&h);
        // A DEL that completed before the write was invoked does not help.
        let h = vec![
            del(1, 0, 10, "/a", -1),
            set(0, 20, 30, "/a", -1, "y", 7),
            get(0, 40, 50, "/a", "", 0),
        ];
        seq_bad(&h);
        // A concurrent or later DEL does.
        let h = vec![
            set(0, 20, 30, "/a", -1, "y", 7),
            del_timeout(1, 25, "/a", -1),
            get(0, 40, 50, "/a", "", 0),
        ];
        seq_ok(&h);
        // A mismatch shows the file exists above the given rev.
        let h = vec![
            set(1, 0, 10, "/a", -1, "x", 5),
            set(1, 11, 12, "/a", -1, "y", 8),
            set_mismatch(0, 20, 30, "/a", 6, "z"),
            get(0, 40, 50, "/a", "x", 5),
        ];
        seq_bad(&h);
        // Own DEL, then reading a value written before the DEL.
        let h = vec![
            set(1, 0, 10, "/a", -1, "x", 5),
            del(0, 20, 30, "/a", -1),
            get(0, 40, 50, "/a", "x", 5),
        ];
        seq_bad(&h);
        let h = vec![
            set(1, 0, 25, "/a", -1, "x", 5),
            del(0, 20, 30, "/a", -1),
            get(0, 40, 50, "/a", "x", 5),
        ];
        seq_ok(&h);
    }

    #[test]
    fn plain_reads_of_values_never_written_fail() {
        let h = vec![
            set(0, 0, 10, "/a", -1, "x", 5),
            get(1, 20, 30, "/a", "bogus", 5),
        ];
        seq_bad(&h);
        let h = vec![get(1, 20, 30, "/a", "bogus", 3)];
        seq_bad(&h);
        let h = vec![get(1, 20, 30, "/a", "bogus", 0)];
        seq_bad(&h);
        // Read before it was written.
        let h = vec![
            get(1, 0, 10, "/a", "x", 5),
            set(0, 20, 30, "/a", -1, "x", 5),
        ];
        seq_bad(&h);
        // Rev of another file / of a NOP.
        let h = vec![
            set(0, 0, 10, "/b", -1, "x", 5),
            get(1, 20, 30, "/a", "x", 5),
        ];
        seq_bad(&h);
        let h = vec![nop(0, 0, 10, 5), get(1, 20, 30, "/a", "", 5)];
        seq_bad(&h);
        // A timed-out SET's value is fine.
        let h = vec![
            set_timeout(0, 0, "/a", -1, "x"),
            get(1, 20, 30, "/a", "x", 5),
        ];
        seq_ok(&h);
        // Unless invoked after the read.
        let h = vec![
            get(1, 20, 30, "/a", "x", 5),
            set_timeout(0, 40, "/a", -1, "x"),
        ];
        seq_bad(&h);
    }

    #[test]
    fn linearizable_reads_count_as_observations() {
        let h = vec![
            set(0, 0, 10, "/a", -1, "x", 5),
            set(0, 20, 30, "/a", -1, "y", 7),
            lget(1, 40, 50, "/a", 8, "y", 7),
            get(1, 60, 70, "/a", "x", 5),
        ];
        seq_bad(&h);
    }

    // -- the recorder ---------------------------------------------------------

    #[test]
    fn recorder_records_from_many_threads() {
        let rec = Recorder::new();
        let threads: Vec<_> = (0..4)
            .map(|c| {
                let rec = rec.clone();
                std::thread::spawn(move || {
                    for i in 0..50 {
                        let h = rec.invoke(c, set_call("/a", -1, "x"));
                        if i % 10 == 9 {
                            drop(h); // timeout
                        } else {
                            h.complete(Outcome::Rev((c * 1000 + i + 1) as i64));
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let h = rec.history();
        assert_eq!(h.len(), 200);
        assert_eq!(h.iter().filter(|o| o.result.is_none()).count(), 20);
        for o in &h {
            assert_eq!(o.complete_time.is_some(), o.result.is_some());
            if let Some(t) = o.complete_time {
                assert!(t >= o.invoke_time);
            }
        }
        // Invocation order, and each client's ops are sequential.
        assert!(h.windows(2).all(|w| w[0].invoke_time <= w[1].invoke_time));
        for c in 0..4 {
            let mine: Vec<&Op> = h.iter().filter(|o| o.client == c).collect();
            for w in mine.windows(2) {
                if let Some(t) = w[0].complete_time {
                    assert!(t <= w[1].invoke_time);
                }
            }
        }
        let h0 = rec.invoke(9, Call::Nop);
        assert_eq!(h0.index(), 200);
        h0.complete(Outcome::Rev(1));
        assert_eq!(rec.history()[200].result, Some(Outcome::Rev(1)));
    }

    // -- randomized -------------------------------------------------------------

    /// splitmix64.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
        fn chance(&mut self, p: f64) -> bool {
            (self.next() >> 11) as f64 / (1u64 << 53) as f64 > 1.0 - p
        }
    }

    struct GenCfg {
        clients: usize,
        ops: usize,
        paths: usize,
        p_timeout: f64,
        max_gap: u64,
        max_dur: u64,
        dels: bool,
    }

    /// A history of a correct execution: each client issues operations one
    /// at a time with random intervals; each takes effect at a random
    /// point inside its interval (timed-out ones take effect or not), in
    /// the order of those points, against a sequential model of the store.
    /// Plain GETs read a random state at least as new as anything their
    /// client saw.
    fn generate(seed: u64, cfg: &GenCfg) -> Vec<Op> {
        let mut rng = Rng(seed);
        let paths: Vec<String> = (0..cfg.paths).map(|i| format!("/f{i}")).collect();
        let bodies = ["a", "b", "c", "d"];
        struct Planned {
            op: Op,
            point: u64,
            applies: bool,
        }
        let mut planned = Vec::new();
        let mut cursor = vec![0u64; cfg.clients];
        for _ in 0..cfg.ops {
            let c = rng.below(cfg.clients as u64) as usize;
            let inv = cursor[c] + rng.below(cfg.max_gap);
            let dur = 1 + rng.below(cfg.max_dur);
            let comp = inv + dur;
            cursor[c] = comp + 1;
            let path = paths[rng.below(paths.len() as u64) as usize].clone();
            let cond = match rng.below(4) {
                0 => -1,
                1 => 0,
                // Filled in with the client's last seen rev below.
                2 => -2,
                _ => rng.below(40) as i64,
            };
            let kind = match rng.below(10) {
                4 if !cfg.dels => 0,
                k => k,
            };
            let call = match kind {
                0..=3 => Call::Set {
                    path,
                    cond_rev: cond,
                    body: bodies[rng.below(4) as usize].as_bytes().to_vec(),
                },
                4 => Call::Del {
                    path,
                    cond_rev: cond,
                },
                5 | 6 => Call::Get { path },
                7 | 8 => Call::LinGet { path },
                _ => Call::Nop,
            };
            let timeout = rng.chance(cfg.p_timeout);
            planned.push(Planned {
                op: Op {
                    client: c,
                    invoke_time: inv,
                    complete_time: if timeout { None } else { Some(comp) },
                    call,
                    result: None,
                },
                point: (inv * 1000 + rng.below(dur * 1000 + 1)) * 64 + rng.below(64),
                applies: !timeout || rng.chance(0.5),
            });
        }
        let mut order: Vec<usize> = (0..planned.len()).collect();
        order.sort_by_key(|&i| planned[i].point);
        // Model: global rev; per path, snapshots (rev, Option<(body, rev)>).
        let mut rev = 0i64;
        let mut snaps: Snaps = HashMap::new();
        let mut seen_global = vec![0i64; cfg.clients];
        let mut seen_path: HashMap<(usize, String), i64> = HashMap::new();
        for i in order {
            let p = &mut planned[i];
            if !p.applies {
                continue;
            }
            let c = p.op.client;
            let timed_out = p.op.complete_time.is_none();
            let cur = |snaps: &Snaps, path: &str| {
                snaps
                    .get(path)
                    .and_then(|v| v.last())
                    .and_then(|s| s.1.clone())
            };
            let result = match &mut p.op.call {
                Call::Set {
                    path,
                    cond_rev,
                    body,
                } => {
                    if *cond_rev == -2 {
                        *cond_rev = *seen_path.get(&(c, path.clone())).unwrap_or(&0);
                    }
                    let file_rev = cur(&snaps, path).map_or(0, |f| f.1);
                    rev += 1;
                    if *cond_rev == -1 || *cond_rev >= file_rev {
                        snaps
                            .entry(path.clone())
                            .or_default()
                            .push((rev, Some((body.clone(), rev))));
                        Outcome::Rev(rev)
                    } else {
                        Outcome::RevMismatch
                    }
                }
                Call::Del { path, cond_rev } => {
                    if *cond_rev == -2 {
                        *cond_rev = *seen_path.get(&(c, path.clone())).unwrap_or(&0);
                    }
                    let file_rev = cur(&snaps, path).map_or(0, |f| f.1);
                    rev += 1;
                    if *cond_rev == -1 || *cond_rev >= file_rev {
                        snaps.entry(path.clone()).or_default().push((rev, None));
                        Outcome::Deleted
                    } else {
                        Outcome::RevMismatch
                    }
                }
                Call::Nop => {
                    rev += 1;
                    Outcome::Rev(rev)
                }
                Call::LinGet { path } => {
                    rev += 1;
                    let (body, r) = cur(&snaps, path).unwrap_or_default();
                    Outcome::ReadAt {
                        at: rev,
                        body,
                        rev: r,
                    }
                }
                Call::Get { path } => {
                    let x = seen_global[c] + rng.below((rev - seen_global[c] + 1) as u64) as i64;
                    let st = snaps
                        .get(path.as_str())
                        .and_then(|v| v.iter().rev().find(|s| s.0 <= x))
                        .and_then(|s| s.1.clone());
                    let (body, r) = st.unwrap_or_default();
                    if !timed_out {
                        seen_global[c] = x;
                    }
                    Outcome::Read { body, rev: r }
                }
            };
            if timed_out {
                continue;
            }
            if !matches!(p.op.call, Call::Get { .. }) {
                seen_global[c] = rev;
            }
            if let Some(path) = p.op.call.path() {
                let r = match &result {
                    Outcome::Rev(r) => Some(*r),
                    Outcome::Read { rev, .. } | Outcome::ReadAt { rev, .. } => Some(*rev),
                    _ => None,
                };
                if let Some(r) = r {
                    seen_path.insert((c, path.to_string()), r);
                }
            }
            p.op.result = Some(result);
        }
        // Timed-out operations that never applied still need their -2
        // conds resolved to something.
        let mut out: Vec<Op> = planned
            .into_iter()
            .map(|mut p| {
                if let Call::Set { cond_rev, .. } | Call::Del { cond_rev, .. } = &mut p.op.call {
                    if *cond_rev == -2 {
                        *cond_rev = 3;
                    }
                }
                p.op
            })
            .collect();
        out.sort_by_key(|o| o.invoke_time);
        out
    }

    /// Per path, the file after each change: (rev, Some((body, file rev))).
    type Snaps = HashMap<String, Vec<(i64, Option<(Vec<u8>, i64)>)>>;

    fn cfg(ops: usize, p_timeout: f64) -> GenCfg {
        GenCfg {
            clients: 4,
            ops,
            paths: 2,
            p_timeout,
            max_gap: 20,
            max_dur: 40,
            dels: true,
        }
    }

    #[test]
    fn random_correct_histories_pass() {
        for seed in 0..400u64 {
            let c = cfg(
                20 + (seed as usize % 60),
                [0.0, 0.05, 0.2][seed as usize % 3],
            );
            let h = generate(seed, &c);
            if let Err(v) = check_history(&h) {
                panic!(
                    "seed {seed}: correct history rejected:\n{v}\nfull history:\n{}",
                    format_history(&h)
                );
            }
        }
    }

    fn completed_set(op: &Op) -> Option<(&str, &[u8], i64)> {
        match (&op.call, &op.result) {
            (Call::Set { path, body, .. }, Some(Outcome::Rev(r))) => {
                Some((path.as_str(), body.as_slice(), *r))
            }
            _ => None,
        }
    }

    #[test]
    fn random_stale_linearizable_reads_fail() {
        let mut mutated = 0;
        for seed in 0..400u64 {
            let mut h = generate(seed, &cfg(60, [0.0, 0.1][seed as usize % 2]));
            // A read L, a SET S of the same path that completed before L
            // was invoked, and an older SET S' of that path: make L read S'.
            let mut found = None;
            'outer: for (l, lop) in h.iter().enumerate() {
                let (Call::LinGet { path }, Some(Outcome::ReadAt { .. })) =
                    (&lop.call, &lop.result)
                else {
                    continue;
                };
                for s in &h {
                    let Some((sp, _, sr)) = completed_set(s) else {
                        continue;
                    };
                    if sp != path || s.complete_or_max() >= lop.invoke_time {
                        continue;
                    }
                    for s2 in &h {
                        if let Some((p2, b2, r2)) = completed_set(s2) {
                            if p2 == path && r2 < sr {
                                found = Some((l, b2.to_vec(), r2));
                                break 'outer;
                            }
                        }
                    }
                }
            }
            let Some((l, body, rev)) = found else {
                continue;
            };
            if let Some(Outcome::ReadAt {
                body: b, rev: r, ..
            }) = &mut h[l].result
            {
                *b = body;
                *r = rev;
            }
            mutated += 1;
            if check_linearizable(&h).is_ok() {
                panic!(
                    "seed {seed}: stale read of #{l} accepted:\n{}",
                    format_history(&h)
                );
            }
        }
        assert!(mutated > 100, "only {mutated} histories mutated");
    }

    #[test]
    fn random_backwards_plain_reads_fail() {
        let mut mutated = 0;
        for seed in 0..400u64 {
            let mut h = generate(seed, &cfg(60, [0.0, 0.1][seed as usize % 2]));
            // A plain GET R by client c after c's own SET S of the path; an
            // older SET S' of that path: make R read S'.
            let mut found = None;
            'outer: for (r, rop) in h.iter().enumerate() {
                let (Call::Get { path }, Some(Outcome::Read { .. })) = (&rop.call, &rop.result)
                else {
                    continue;
                };
                for s in &h {
                    let Some((sp, _, sr)) = completed_set(s) else {
                        continue;
                    };
                    if sp != path
                        || s.client != rop.client
                        || s.complete_or_max() >= rop.invoke_time
                    {
                        continue;
                    }
                    for s2 in &h {
                        if let Some((p2, b2, r2)) = completed_set(s2) {
                            if p2 == path && r2 < sr {
                                found = Some((r, b2.to_vec(), r2));
                                break 'outer;
                            }
                        }
                    }
                }
            }
            let Some((r, body, rev)) = found else {
                continue;
            };
            h[r].result = Some(Outcome::Read { body, rev });
            mutated += 1;
            if check_sequential_reads(&h).is_ok() {
                panic!(
                    "seed {seed}: backwards read #{r} accepted:\n{}",
                    format_history(&h)
                );
            }
        }
        assert!(mutated > 100, "only {mutated} histories mutated");
    }

    #[test]
    fn random_swapped_revisions_fail() {
        let mut mutated = 0;
        for seed in 0..200u64 {
            let mut h = generate(seed, &cfg(40, 0.05));
            let sets: Vec<usize> = (0..h.len())
                .filter(|&i| completed_set(&h[i]).is_some())
                .collect();
            let mut pair = None;
            'outer: for &a in &sets {
                for &b in &sets {
                    if h[a].complete_or_max() < h[b].invoke_time {
                        pair = Some((a, b));
                        break 'outer;
                    }
                }
            }
            let Some((a, b)) = pair else { continue };
            let (ra, rb) = (h[a].result.clone(), h[b].result.clone());
            h[a].result = rb;
            h[b].result = ra;
            mutated += 1;
            assert!(check_linearizable(&h).is_err(), "seed {seed}");
        }
        assert!(mutated > 100, "only {mutated} histories mutated");
    }

    #[test]
    fn random_lost_writes_fail() {
        // Without DELs or timeouts: a linearizable read that returned the
        // value of a SET which completed before the read was invoked now
        // reads the file as missing, as if the write had been lost.
        let mut mutated = 0;
        for seed in 0..300u64 {
            let mut c = cfg(50, 0.0);
            c.dels = false;
            let mut h = generate(seed, &c);
            let mut target = None;
            for (l, lop) in h.iter().enumerate() {
                let (Call::LinGet { path }, Some(Outcome::ReadAt { rev, .. })) =
                    (&lop.call, &lop.result)
                else {
                    continue;
                };
                if *rev == 0 {
                    continue;
                }
                let s = h
                    .iter()
                    .position(|o| completed_set(o).is_some_and(|(p, _, r)| p == path && r == *rev));
                if let Some(s) = s {
                    if h[s].complete_or_max() < lop.invoke_time {
                        target = Some(l);
                        break;
                    }
                }
            }
            let Some(l) = target else { continue };
            if let Some(Outcome::ReadAt { body, rev, .. }) = &mut h[l].result {
                // As if the write were lost and the file still missing.
                *body = Vec::new();
                *rev = 0;
            }
            mutated += 1;
            if check_linearizable(&h).is_ok() {
                panic!(
                    "seed {seed}: lost write (#{l}) accepted:\n{}",
                    format_history(&h)
                );
            }
        }
        assert!(mutated > 50, "only {mutated} histories mutated");
    }

    #[test]
    fn large_history_on_one_path_checks_quickly() {
        let c = GenCfg {
            clients: 6,
            ops: 300,
            paths: 1,
            p_timeout: 0.03,
            max_gap: 10,
            max_dur: 60,
            dels: true,
        };
        for seed in 0..5 {
            let h = generate(1000 + seed, &c);
            let t = Instant::now();
            check_history(&h).unwrap();
            let ok_time = t.elapsed();
            // And a stale read planted at the end.
            let mut bad = h.clone();
            let first = bad
                .iter()
                .filter_map(completed_set)
                .min_by_key(|s| s.2)
                .unwrap();
            let (fb, fr) = (first.1.to_vec(), first.2);
            let end = bad
                .iter()
                .map(|o| o.complete_or_max())
                .filter(|&t| t != Micros::MAX)
                .max()
                .unwrap();
            bad.push(lget(
                99,
                end + 10,
                end + 20,
                "/f0",
                i64::from(u32::MAX),
                std::str::from_utf8(&fb).unwrap(),
                fr,
            ));
            let t = Instant::now();
            assert!(check_linearizable(&bad).is_err());
            eprintln!(
                "seed {seed}: ok in {ok_time:?}, violation found in {:?}",
                t.elapsed()
            );
        }
    }
}
