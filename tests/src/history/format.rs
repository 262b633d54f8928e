//! Rendering operations and histories as text for failure messages.

use std::fmt;

use super::op::{Call, Op, Outcome};

/// A body for a report: escaped, quoted, cut after 40 bytes.
pub(super) fn fmt_body(b: &[u8]) -> String {
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

/// What a read returned: the body and rev, or "missing".
pub(super) fn fmt_read(body: &[u8], rev: i64) -> String {
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
