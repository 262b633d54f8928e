//! The output of `doozer status`: a table ([`text`]) or one JSON object
//! ([`json`]); docs/reference.md#doozer-status shows both. Everything
//! read from the store is shown through [`clean`] in the table and escaped
//! in the JSON, so no body can forge a line or break the object.

use std::fmt::{Display, Write};

use super::{Answer, Node, NsView, PulseView, Report};

/// `s` with every control character escaped (`\n`, `\u{1b}`), so a value
/// from the store is one piece of one line.
pub fn clean(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn or_dash(s: Option<&str>) -> String {
    s.map(clean)
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "-".into())
}

fn num_or_dash(n: Option<i64>) -> String {
    n.map_or_else(|| "-".into(), |n| n.to_string())
}

/// "CAL slot N" or "slave".
fn role(n: &Node) -> String {
    match &n.slot {
        Some(s) => format!("CAL slot {}", clean(s)),
        None => "slave".into(),
    }
}

/// How long an answer took, in milliseconds.
fn millis(took: std::time::Duration) -> f64 {
    took.as_secs_f64() * 1000.0
}

/// Seconds since a node's last pulse, one decimal; `> W s` for a CAL
/// not seen pulsing within the window; `-` for a slave not seen (slaves
/// do not pulse) or when the pulses were not watched.
fn pulse_text(n: &Node, pulses: Option<&PulseView>) -> String {
    match (n.pulse_age, pulses) {
        (Some(age), _) => format!("{:.1} s", age.as_secs_f64()),
        (None, Some(p)) if n.is_cal() && p.error.is_none() => {
            format!("> {:.1} s", p.window.as_secs_f64())
        }
        _ => "-".into(),
    }
}

fn answer_text(a: &Answer) -> String {
    match a {
        Answer::Yes { took, .. } => format!("yes ({:.1} ms)", millis(*took)),
        Answer::No(why) => format!("no: {}", clean(why)),
    }
}

/// Rows of cells as aligned columns, two spaces apart, without trailing
/// blanks.
fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let width = |c: usize| {
        rows.iter()
            .filter_map(|r| r.get(c))
            .map(|s| s.chars().count())
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..cols).map(width).collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (cell, w) in r.iter().zip(&widths) {
            let _ = write!(line, "{cell:<w$}  ");
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The readable form: a header, one row per node, then the slots, the
/// majority, the name service and the verdict.
pub fn text(r: &Report) -> String {
    let s = &r.snap;
    let mut out = String::new();
    let via = s.via.as_deref().map(clean).unwrap_or_else(|| "?".into());
    let _ = writeln!(out, "cluster {}", clean(&s.cluster));
    let _ = writeln!(
        out,
        "head rev {} (read at rev {} from {via})",
        r.head, s.rev
    );
    let _ = writeln!(out);
    let mut rows = vec![[
        "ID", "ADDRESS", "HOST", "ROLE", "WRITABLE", "VERSION", "REV", "LAG", "PULSE", "ANSWERED",
    ]
    .map(String::from)
    .to_vec()];
    for n in &s.nodes {
        rows.push(vec![
            clean(&n.id),
            or_dash(n.addr.as_deref()),
            or_dash(n.hostname.as_deref()),
            role(n),
            n.writable.map_or_else(|| "-".into(), |w| w.to_string()),
            or_dash(n.version.as_deref()),
            num_or_dash(n.rev()),
            num_or_dash(n.lag(r.head)),
            pulse_text(n, r.pulses.as_ref()),
            answer_text(&n.answer),
        ]);
    }
    out.push_str(&table(&rows));
    let _ = writeln!(out);
    let free: Vec<String> = r.free.iter().map(|f| clean(f)).collect();
    let free = if free.is_empty() {
        "none".to_string()
    } else {
        free.join(", ")
    };
    let _ = writeln!(out, "free CAL slots: {free}");
    let _ = writeln!(
        out,
        "CALs answering: {} of {} ({})",
        r.cals_answered,
        r.cals,
        if r.majority {
            "a majority"
        } else {
            "NO majority"
        }
    );
    if let Some(p) = &r.pulses {
        pulses_text(&mut out, r, p);
    }
    if let Some(ns) = &r.ns {
        ns_text(&mut out, ns, &s.cluster);
    }
    match r.problems.len() {
        0 => out.push_str("healthy\n"),
        1 => out.push_str("UNHEALTHY: 1 problem (on stderr)\n"),
        k => {
            let _ = writeln!(out, "UNHEALTHY: {k} problems (on stderr)");
        }
    }
    out
}

/// `pulses: K of N CALs pulsed within W s` (or why they were not
/// watched).
fn pulses_text(out: &mut String, r: &Report, p: &PulseView) {
    let secs = p.window.as_secs_f64();
    if let Some(e) = &p.error {
        let _ = writeln!(out, "pulses: cannot watch them: {}", clean(e));
        return;
    }
    let cals = r.snap.nodes.iter().filter(|n| n.is_cal());
    let pulsed = cals.clone().filter(|n| n.pulse_age.is_some()).count();
    let _ = writeln!(
        out,
        "pulses: {pulsed} of {} CALs pulsed within {secs:.1} s",
        cals.count()
    );
}

fn ns_text(out: &mut String, ns: &NsView, cluster: &str) {
    let cluster = clean(cluster);
    if let Some(e) = &ns.error {
        let _ = writeln!(out, "name service: cannot read it: {}", clean(e));
        return;
    }
    let entries: Vec<String> = ns
        .entries
        .iter()
        .map(|(id, addr)| format!("{}={}", clean(id), clean(addr)))
        .collect();
    let entries = if entries.is_empty() {
        "none".to_string()
    } else {
        entries.join(" ")
    };
    let _ = writeln!(out, "name service: {cluster}'s CALs: {entries}");
    let _ = writeln!(
        out,
        "name service: {cluster} seeded by: {}",
        or_dash(ns.boot.as_deref())
    );
}

/// `s` as a JSON string: quoted, with `"`, `\` and every control
/// character escaped.
pub fn js(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A JSON string, or `null`.
fn js_opt(s: Option<&str>) -> String {
    s.map_or_else(|| "null".into(), js)
}

/// A JSON number (or boolean), or `null`.
fn jn<T: Display>(v: Option<T>) -> String {
    v.map_or_else(|| "null".into(), |v| v.to_string())
}

/// A JSON array of already-encoded values.
fn ja(items: impl IntoIterator<Item = String>) -> String {
    format!("[{}]", items.into_iter().collect::<Vec<_>>().join(","))
}

fn node_json(n: &Node, head: i64) -> String {
    let (answered, ms, error) = match &n.answer {
        Answer::Yes { took, .. } => (true, Some(format!("{:.3}", millis(*took))), None),
        Answer::No(why) => (false, None, Some(why.as_str())),
    };
    format!(
        concat!(
            r#"{{"id":{},"addr":{},"hostname":{},"version":{},"role":{},"slot":{},"#,
            r#""writable":{},"applied":{},"applied_rev":{},"answered":{},"rev":{},"#,
            r#""lag":{},"pulse_age":{},"ms":{},"error":{}}}"#
        ),
        js(&n.id),
        js_opt(n.addr.as_deref()),
        js_opt(n.hostname.as_deref()),
        js_opt(n.version.as_deref()),
        js(if n.is_cal() { "cal" } else { "slave" }),
        js_opt(n.slot.as_deref()),
        jn(n.writable),
        jn(n.applied),
        jn(n.applied_rev),
        answered,
        jn(n.rev()),
        jn(n.lag(head)),
        jn(n.pulse_age.map(|d| format!("{:.3}", d.as_secs_f64()))),
        jn(ms),
        js_opt(error),
    )
}

fn ns_json(ns: &NsView) -> String {
    let entries = ja(ns
        .entries
        .iter()
        .map(|(id, addr)| format!(r#"{{"id":{},"addr":{}}}"#, js(id), js(addr))));
    format!(
        r#"{{"entries":{entries},"boot":{},"error":{}}}"#,
        js_opt(ns.boot.as_deref()),
        js_opt(ns.error.as_deref())
    )
}

/// The JSON form: one object on one line (field names in
/// docs/reference.md#doozer-status).
pub fn json(r: &Report) -> String {
    let s = &r.snap;
    let slots = ja(s.slots.iter().map(|(slot, id)| {
        format!(
            r#"{{"slot":{},"node":{}}}"#,
            js(slot),
            js_opt(id.as_deref())
        )
    }));
    let nodes = ja(s.nodes.iter().map(|n| node_json(n, r.head)));
    format!(
        concat!(
            r#"{{"cluster":{},"head":{},"rev":{},"via":{},"healthy":{},"problems":{},"#,
            r#""cals":{},"cals_answered":{},"majority":{},"free_slots":{},"#,
            r#""slaves_answered":{},"max_lag":{},"pulse_window":{},"pulse_error":{},"#,
            r#""slots":{},"nodes":{},"ns":{}}}"#,
            "\n"
        ),
        js(&s.cluster),
        r.head,
        s.rev,
        js_opt(s.via.as_deref()),
        r.problems.is_empty(),
        ja(r.problems.iter().map(|p| js(p))),
        r.cals,
        r.cals_answered,
        r.majority,
        ja(r.free.iter().map(|f| js(f))),
        r.slaves_answered,
        r.max_lag,
        jn(r.pulses
            .as_ref()
            .map(|p| format!("{:.3}", p.window.as_secs_f64()))),
        js_opt(r.pulses.as_ref().and_then(|p| p.error.as_deref())),
        slots,
        nodes,
        r.ns.as_ref().map_or_else(|| "null".into(), ns_json),
    )
}
