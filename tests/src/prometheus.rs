//! A strict parser for the Prometheus text exposition format (version
//! 0.0.4), to check `/$metrics`:
//!
//! - `# HELP name text` (text escapes `\\` and `\n`), at most one per name;
//! - `# TYPE name counter|gauge|histogram|summary|untyped`, at most one per
//!   name, before any sample of that name;
//! - other `#` lines are comments; empty lines are ignored;
//! - samples `name{label="value",...} value [timestamp]`: names match
//!   `[a-zA-Z_:][a-zA-Z0-9_:]*`, label names `[a-zA-Z_][a-zA-Z0-9_]*`
//!   (not starting with `__`), label values escape `\\`, `\"`, `\n`;
//!   values are floats (`NaN`, `+Inf`, `-Inf` included), timestamps
//!   integers (milliseconds).
//!
//! Stricter than the format itself in one way the tests want: every sample
//! needs a TYPE line for its family first (`x_bucket` of a histogram `x`,
//! `x_sum`/`x_count` of a histogram or summary `x`). Also checked: the
//! samples of one family are contiguous, no sample (name and label set)
//! repeats, a label name does not repeat within a sample, and the text ends
//! with a newline.

use std::collections::{BTreeMap, HashSet};

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The sample's metric name (e.g. `x_bucket` for family `x`).
    pub name: String,
    /// Label pairs in the order written.
    pub labels: Vec<(String, String)>,
    /// The value.
    pub value: f64,
    /// The optional timestamp (ms since the epoch).
    pub timestamp: Option<i64>,
}

/// A metric family: its TYPE, HELP and samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    /// The family name.
    pub name: String,
    /// `counter`, `gauge`, `histogram`, `summary` or `untyped`.
    pub kind: String,
    /// The HELP text, unescaped.
    pub help: Option<String>,
    /// Samples in order.
    pub samples: Vec<Sample>,
}

impl Family {
    /// A family seen by name only so far (no HELP, TYPE or samples yet).
    fn empty(name: &str) -> Family {
        Family {
            name: name.to_string(),
            kind: String::new(),
            help: None,
            samples: Vec::new(),
        }
    }
}

/// A parsed exposition.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Exposition {
    /// Families by name.
    pub families: BTreeMap<String, Family>,
}

impl Exposition {
    /// The family `name`.
    pub fn family(&self, name: &str) -> Option<&Family> {
        self.families.get(name)
    }

    /// Every sample named `name` (any labels).
    pub fn samples(&self, name: &str) -> Vec<&Sample> {
        self.families
            .values()
            .flat_map(|f| f.samples.iter())
            .filter(|s| s.name == name)
            .collect()
    }

    /// The value of the sample named `name` whose labels include every pair
    /// of `labels` (the first such sample).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples(name)
            .into_iter()
            .find(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(sk, sv)| sk == k && sv == v))
            })
            .map(|s| s.value)
    }

    /// The sum of every sample named `name` (over all label sets).
    pub fn sum(&self, name: &str) -> Option<f64> {
        let s = self.samples(name);
        if s.is_empty() {
            None
        } else {
            Some(s.iter().map(|s| s.value).sum())
        }
    }
}

/// Whether `s` is a valid metric name.
pub fn is_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Whether `s` is a valid label name.
pub fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with("__")
}

fn parse_value(s: &str) -> Option<f64> {
    match s {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ => {
            // Rust's parser also takes "inf"/"nan" spellings; Go's
            // ParseFloat (what Prometheus uses) takes the same set, but
            // keep to digits, sign, point and exponent here.
            if s.is_empty()
                || !s
                    .chars()
                    .all(|c| c.is_ascii_digit() || matches!(c, '+' | '-' | '.' | 'e' | 'E'))
            {
                return None;
            }
            s.parse().ok()
        }
    }
}

fn unescape_help(s: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c == '\\' {
            match it.next() {
                Some('\\') => out.push('\\'),
                Some('n') => out.push('\n'),
                // Other escapes are kept as written (the format allows it).
                Some(o) => {
                    out.push('\\');
                    out.push(o);
                }
                None => return Err("HELP text ends in a backslash".into()),
            }
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

/// Parses `name{labels}` at the start of `s`; returns the sample name,
/// labels and the rest of the line.
#[allow(clippy::type_complexity)]
fn parse_name_and_labels(s: &str) -> Result<(String, Vec<(String, String)>, &str), String> {
    let name_end = s.find(['{', ' ', '\t']).unwrap_or(s.len());
    let name = &s[..name_end];
    if !is_metric_name(name) {
        return Err(format!("bad metric name {name:?}"));
    }
    let mut rest = &s[name_end..];
    let mut labels: Vec<(String, String)> = Vec::new();
    if let Some(r) = rest.strip_prefix('{') {
        rest = r;
        loop {
            rest = rest.trim_start_matches([' ', '\t']);
            if let Some(r) = rest.strip_prefix('}') {
                rest = r;
                break;
            }
            let eq = rest
                .find('=')
                .ok_or_else(|| format!("label without '=' in {s:?}"))?;
            let lname = rest[..eq].trim_matches([' ', '\t']);
            if !is_label_name(lname) {
                return Err(format!("bad label name {lname:?} in {s:?}"));
            }
            if labels.iter().any(|(k, _)| k == lname) {
                return Err(format!("label {lname:?} repeated in {s:?}"));
            }
            rest = rest[eq + 1..].trim_start_matches([' ', '\t']);
            rest = rest
                .strip_prefix('"')
                .ok_or_else(|| format!("label value not quoted in {s:?}"))?;
            let mut value = String::new();
            let mut chars = rest.char_indices();
            let close = loop {
                match chars.next() {
                    None => return Err(format!("unterminated label value in {s:?}")),
                    Some((i, '"')) => break i,
                    Some((_, '\\')) => match chars.next() {
                        Some((_, '\\')) => value.push('\\'),
                        Some((_, '"')) => value.push('"'),
                        Some((_, 'n')) => value.push('\n'),
                        other => {
                            return Err(format!("bad escape {other:?} in label value in {s:?}"))
                        }
                    },
                    Some((_, c)) => value.push(c),
                }
            };
            labels.push((lname.to_string(), value));
            rest = rest[close + 1..].trim_start_matches([' ', '\t']);
            if let Some(r) = rest.strip_prefix(',') {
                rest = r;
            } else if let Some(r) = rest.strip_prefix('}') {
                rest = r;
                break;
            } else {
                return Err(format!("expected ',' or '}}' after a label in {s:?}"));
            }
        }
    }
    Ok((name.to_string(), labels, rest))
}

/// Parses a whole exposition, or explains the first problem (with its line
/// number).
pub fn parse(text: &str) -> Result<Exposition, String> {
    if !text.is_empty() && !text.ends_with('\n') {
        return Err("the exposition does not end with a newline".into());
    }
    let mut parser = Parser::default();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let err = |m: String| format!("line {n}: {m}: {line:?}");
        if line.trim().is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            parser.comment(comment).map_err(err)?;
        } else {
            parser.sample(line).map_err(err)?;
        }
    }
    Ok(parser.exp)
}

/// The state of [`parse`] between lines.
#[derive(Default)]
struct Parser {
    /// What was parsed so far.
    exp: Exposition,
    /// Families with a HELP line.
    helps: HashSet<String>,
    /// Families whose samples are finished (another family's samples came).
    closed: HashSet<String>,
    /// The family of the last sample.
    current: Option<String>,
    /// (name, sorted labels) of every sample so far.
    seen: HashSet<(String, Vec<(String, String)>)>,
}

impl Parser {
    /// A line starting with `#` (`comment` is the rest): HELP, TYPE, or a
    /// plain comment.
    fn comment(&mut self, comment: &str) -> Result<(), String> {
        let comment = comment.trim_start_matches([' ', '\t']);
        let mut parts = comment.splitn(3, [' ', '\t']);
        match parts.next() {
            Some("HELP") => {
                let name = parts.next().unwrap_or_default();
                if !is_metric_name(name) {
                    return Err(format!("bad metric name {name:?} in HELP"));
                }
                if !self.helps.insert(name.to_string()) {
                    return Err(format!("second HELP for {name}"));
                }
                let help = unescape_help(parts.next().unwrap_or_default())?;
                self.family_entry(name).help = Some(help);
            }
            Some("TYPE") => {
                let name = parts.next().unwrap_or_default();
                if !is_metric_name(name) {
                    return Err(format!("bad metric name {name:?} in TYPE"));
                }
                let kind = parts.next().unwrap_or_default().trim();
                if !matches!(
                    kind,
                    "counter" | "gauge" | "histogram" | "summary" | "untyped"
                ) {
                    return Err(format!("bad type {kind:?}"));
                }
                let fam = self.family_entry(name);
                if !fam.kind.is_empty() {
                    return Err(format!("second TYPE for {name}"));
                }
                if !fam.samples.is_empty() {
                    return Err(format!("TYPE for {name} after its samples"));
                }
                fam.kind = kind.to_string();
            }
            _ => {} // a plain comment
        }
        Ok(())
    }

    /// The family `name`, created empty if it is new.
    fn family_entry(&mut self, name: &str) -> &mut Family {
        self.exp
            .families
            .entry(name.to_string())
            .or_insert_with(|| Family::empty(name))
    }

    /// A sample line: name, labels, value, optional timestamp; it must
    /// belong to a typed family whose samples are contiguous, and not
    /// repeat an earlier sample's name and labels.
    fn sample(&mut self, line: &str) -> Result<(), String> {
        let (name, labels, rest) = parse_name_and_labels(line)?;
        let (value, timestamp) = parse_value_and_timestamp(rest)?;
        let family = self.family_of(&name)?;
        if self.current.as_deref() != Some(family.as_str()) {
            if self.closed.contains(&family) {
                return Err(format!(
                    "samples of {family} are not contiguous (the family appeared before)"
                ));
            }
            if let Some(prev) = self.current.take() {
                self.closed.insert(prev);
            }
            self.current = Some(family.clone());
        }
        let mut key_labels = labels.clone();
        key_labels.sort();
        if !self.seen.insert((name.clone(), key_labels)) {
            return Err(format!("sample {name} with these labels repeats"));
        }
        self.exp
            .families
            .get_mut(&family)
            .expect("family exists")
            .samples
            .push(Sample {
                name,
                labels,
                value,
                timestamp,
            });
        Ok(())
    }

    /// The family a sample called `name` belongs to: its own, if typed, or
    /// a histogram's or summary's for the `_bucket`, `_sum` and `_count`
    /// suffixes.
    fn family_of(&self, name: &str) -> Result<String, String> {
        let typed = |n: &str| {
            self.exp
                .families
                .get(n)
                .filter(|f| !f.kind.is_empty())
                .map(|f| f.kind.clone())
        };
        if typed(name).is_some() {
            return Ok(name.to_string());
        }
        let base = [("_bucket", "histogram"), ("_sum", ""), ("_count", "")]
            .iter()
            .find_map(|(suffix, only)| {
                let base = name.strip_suffix(suffix)?;
                let kind = typed(base)?;
                let ok = if only.is_empty() {
                    kind == "histogram" || kind == "summary"
                } else {
                    kind == *only
                };
                ok.then(|| base.to_string())
            });
        base.ok_or_else(|| format!("sample {name} has no TYPE line before it"))
    }
}

/// The value and optional timestamp after a sample's name and labels.
fn parse_value_and_timestamp(rest: &str) -> Result<(f64, Option<i64>), String> {
    let mut fields = rest.split([' ', '\t']).filter(|f| !f.is_empty());
    let value_text = fields
        .next()
        .ok_or_else(|| "sample without a value".to_string())?;
    let value = parse_value(value_text).ok_or_else(|| format!("bad value {value_text:?}"))?;
    let timestamp = match fields.next() {
        None => None,
        Some(t) => Some(
            t.parse::<i64>()
                .map_err(|_| format!("bad timestamp {t:?}"))?,
        ),
    };
    if let Some(extra) = fields.next() {
        return Err(format!("unexpected {extra:?} after the sample"));
    }
    Ok((value, timestamp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_typical_exposition() {
        let text = "# HELP doozer_requests_total Requests\\n answered.\n\
                    # TYPE doozer_requests_total counter\n\
                    doozer_requests_total{verb=\"GET\"} 3\n\
                    doozer_requests_total{verb=\"SET\",x=\"a\\\"b\\\\c\\n\",} 4 1700000000000\n\
                    # a comment\n\
                    \n\
                    # TYPE doozer_rev gauge\n\
                    doozer_rev 12.5e1\n\
                    # TYPE lat histogram\n\
                    lat_bucket{le=\"0.1\"} 1\n\
                    lat_bucket{le=\"+Inf\"} 2\n\
                    lat_sum 0.3\n\
                    lat_count 2\n\
                    # TYPE odd:name untyped\n\
                    odd:name NaN\n";
        let e = parse(text).unwrap();
        let f = e.family("doozer_requests_total").unwrap();
        assert_eq!(f.kind, "counter");
        assert_eq!(f.help.as_deref(), Some("Requests\n answered."));
        assert_eq!(f.samples.len(), 2);
        assert_eq!(
            f.samples[1].labels,
            vec![
                ("verb".to_string(), "SET".to_string()),
                ("x".to_string(), "a\"b\\c\n".to_string())
            ]
        );
        assert_eq!(f.samples[1].timestamp, Some(1_700_000_000_000));
        assert_eq!(
            e.value("doozer_requests_total", &[("verb", "GET")]),
            Some(3.0)
        );
        assert_eq!(e.sum("doozer_requests_total"), Some(7.0));
        assert_eq!(e.value("doozer_rev", &[]), Some(125.0));
        assert_eq!(e.family("lat").unwrap().samples.len(), 4);
        assert_eq!(e.value("lat_bucket", &[("le", "+Inf")]), Some(2.0));
        assert!(e.value("odd:name", &[]).unwrap().is_nan());
    }

    #[test]
    fn rejects_malformed_expositions() {
        for bad in [
            "x 1\n",                                                        // no TYPE
            "# TYPE x counter\nx 1",                                        // no final newline
            "# TYPE x counter\nx one\n",                                    // bad value
            "# TYPE x counter\nx 1 2 3\n",                                  // extra field
            "# TYPE x counter\nx 1 1.5\n",                                  // float timestamp
            "# TYPE x counter\nx{a=\"1} 1\n",                               // unterminated value
            "# TYPE x counter\nx{a=1} 1\n",                                 // unquoted value
            "# TYPE x counter\nx{1a=\"1\"} 1\n",                            // bad label name
            "# TYPE x counter\nx{__a=\"1\"} 1\n",                           // reserved label name
            "# TYPE x counter\nx{a=\"1\",a=\"2\"} 1\n",                     // repeated label
            "# TYPE x counter\nx{a=\"\\t\"} 1\n",                           // bad escape
            "# TYPE x counter\nx 1\nx 2\n",                                 // repeated sample
            "# TYPE x counter\n# TYPE x gauge\nx 1\n",                      // two TYPEs
            "# TYPE x counter\nx 1\n# TYPE x counter\n",                    // TYPE after samples
            "# TYPE x nonsense\nx 1\n",                                     // bad type
            "# TYPE 1x counter\n1x 1\n",                                    // bad name
            "# TYPE x counter\n# TYPE y counter\nx 1\ny 1\nx{a=\"b\"} 1\n", // not contiguous
            "# TYPE x gauge\nx_bucket 1\n",                                 // bucket of a gauge
            "# HELP x a\n# HELP x b\n# TYPE x gauge\nx 1\n",                // two HELPs
        ] {
            assert!(parse(bad).is_err(), "accepted {bad:?}");
        }
        assert!(parse("").unwrap().families.is_empty());
    }
}
