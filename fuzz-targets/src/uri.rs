//! Text from the command line and the environment: doozer URIs
//! ([`DoozerUri`]'s `FromStr`, as `-a`, `-b`, `DOOZER_URI` and
//! `DOOZER_BOOT_URI` are read) and durations (`doozer::duration::parse`,
//! as `doozer wait -t` and the bench's flags are read).
//!
//! Input: the text (invalid UTF-8 is replaced, as a lossy `OsString`
//! conversion would).
//!
//! Invariants: a URI prints back (its `Display` and `Debug`, what logs
//! show) the same whatever its secret is, and that text parses to the
//! same URI with `<hidden>` for the secret; an error's text, and
//! [`doozer::uri::redact`] of any text, do not show a value that may be a
//! secret (below). A duration that parses is not negative and prints back
//! to the same duration.

use doozer::uri::{redact, HIDDEN};
use doozer::DoozerUri;

/// The `uri` target.
pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    check_uri(&text);
    check_redact(&text);
    check_duration(&text);
}

/// The parameters whose values are shown (docs/security.md): every other
/// value may be a secret.
const SHOWN: [&str; 3] = ["ca", "cn", "tlsca"];

/// The values of `text` that may be secrets, as written (still escaped),
/// each with the text around it (the URI with a placeholder in place of
/// the value), for the secrecy checks. The query is what follows the
/// first `?` (all of `text` if it has none, or an `=` or `&` comes before
/// it: `doozer:?`, `http://h?` are no parameters), its parts are split at
/// `&`; a part's key is unescaped as the parser does (`s%6B=` is `sk=`).
/// A possible secret is the value of a part whose key is not one of
/// [`SHOWN`], and, after such a value, a whole part that is not a
/// parameter (the rest of a secret with an unescaped `&`).
fn secrets(text: &str) -> Vec<(&str, String)> {
    let start = match text.find('?') {
        Some(q) if !text[..q].contains(['=', '&']) => q + 1,
        _ => 0,
    };
    let mut out = Vec::new();
    let mut at = start;
    let mut after_secret = false;
    // `text` with `text[from..to]` replaced by the placeholder.
    let around = |from: usize, to: usize| format!("{}{PLACEHOLDER}{}", &text[..from], &text[to..]);
    for part in text[start..].split('&') {
        let end = at + part.len();
        match part.split_once('=') {
            Some((key, value)) if !SHOWN.contains(&unescape(key).as_str()) => {
                if !after_secret || is_param(key) {
                    out.push((value, around(end - value.len(), end)));
                } else {
                    out.push((part, around(at, end)));
                }
                after_secret = true;
            }
            None if after_secret && !is_param(part) => out.push((part, around(at, end))),
            _ => {}
        }
        at = end + 1;
    }
    out
}

/// What stands for a hidden value when texts are compared.
const PLACEHOLDER: &str = "\u{1}";

/// Whether `key` names a parameter of a doozer URI.
fn is_param(key: &str) -> bool {
    matches!(unescape(key).as_str(), "ca" | "cn" | "sk" | "tlsca")
}

/// `%XX` and `+` unescaped, loosely (a bad escape is kept as written).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'%', Some(x)) => {
                out.push(x);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether `show` (what a program prints about a text) reveals a
/// possible secret of `text`: such a value (of a few bytes at least)
/// appears, as written or unescaped, in what it shows of `text`, but
/// neither in what it shows of the text with a placeholder in the
/// value's place nor in that text (so a value made of the message's own
/// words, of the text next to it or of another value is not revealed).
/// [`HIDDEN`] counts as the placeholder.
fn reveals(text: &str, show: impl Fn(&str) -> String) -> Option<String> {
    let show = |t: &str| show(t).replace(HIDDEN, PLACEHOLDER);
    let shown = show(text);
    secrets(text).into_iter().find_map(|(value, around)| {
        let without = show(&around);
        let around_plain = unescape(&around);
        [value.to_string(), unescape(value)].into_iter().find(|v| {
            let v = v.as_str();
            v.len() >= 4
                && shown.contains(v)
                && !without.contains(v)
                && !around.contains(v)
                && !around_plain.contains(v)
        })
    })
}

/// What an error shows about `text` (nothing if it parses).
fn error_text(text: &str) -> String {
    match text.parse::<DoozerUri>() {
        Ok(_) => String::new(),
        Err(e) => format!("{e} {e:?}"),
    }
}

fn check_uri(text: &str) {
    match text.parse::<DoozerUri>() {
        Ok(uri) => {
            // What is shown does not depend on the secret at all.
            let shown = uri.to_string();
            let debug = format!("{uri:?}");
            let other = DoozerUri {
                secret: uri.secret.as_ref().map(|s| {
                    let mut s = s.clone();
                    s.push(b'!');
                    s
                }),
                ..uri.clone()
            };
            assert_eq!(
                shown,
                other.to_string(),
                "{text:?}: Display shows the secret"
            );
            assert_eq!(
                debug,
                format!("{other:?}"),
                "{text:?}: Debug shows the secret"
            );
            let back: DoozerUri = shown.parse().unwrap_or_else(|e| {
                panic!("{shown:?}, printed from {text:?}, does not parse: {e}")
            });
            let want = DoozerUri {
                secret: uri.secret.as_ref().map(|_| HIDDEN.as_bytes().to_vec()),
                ..uri
            };
            assert_eq!(back, want, "{text:?} printed as {shown:?}");
        }
        Err(_) => {
            if let Some(secret) = reveals(text, error_text) {
                let shown = error_text(text);
                panic!("the error {shown:?} shows the secret {secret:?} of {text:?}");
            }
        }
    }
}

/// `redact`, which shows any text that may hold a secret, hides it.
fn check_redact(text: &str) {
    if let Some(secret) = reveals(text, redact) {
        let shown = redact(text);
        panic!("redact shows {shown:?}, with the secret {secret:?} of {text:?}");
    }
}

fn check_duration(text: &str) {
    if let Ok(d) = doozer::duration::parse(text) {
        let nanos = format!("{}ns", d.as_nanos());
        assert_eq!(doozer::duration::parse(&nanos), Ok(d), "{text:?} is {d:?}");
    }
}

/// Inputs to start from: URIs of every parameter, escapes, IPv6, and
/// durations.
pub fn seeds() -> Vec<Vec<u8>> {
    [
        "doozer:?ca=127.0.0.1:8046&ca=example.com&ca=[::1]:9&ca=::1",
        "doozer:?sk=a%20b+c&cn=prod&ca=h:1",
        "doozer:?tlsca=/a%20b/c%26d.pem&ca=h&sk=s3cret",
        "doozer:?cn=x",
        "doozer:?ca=h&cn=a&cn=b",
        "1h0m0.25s",
        "+.5us",
        "10\u{b5}s",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oracle_tells_secrets_from_shown_values() {
        // What a program that shows `shown` for `text` alone reveals.
        let leak = |text: &str, shown: &str| {
            reveals(text, |t| {
                if t == text {
                    shown.into()
                } else {
                    String::new()
                }
            })
        };
        assert_eq!(
            leak("doozer:?ca=h&sk=HUSH", "x HUSH y"),
            Some("HUSH".into())
        );
        assert_eq!(leak("doozer:?s%6B=HU%53H", "HUSH"), Some("HUSH".into()));
        assert_eq!(leak("doozer:?ca=h&Sk=HUSH", "HUSH"), Some("HUSH".into()));
        assert_eq!(leak("doozer:?sk=a&HUSH=b", "HUSH=b"), Some("HUSH=b".into()));
        assert_eq!(leak("ca=h&sk=HUSH", "HUSH"), Some("HUSH".into()));
        // Shown values, placeholders, short values, values written twice.
        assert_eq!(leak("doozer:?ca=HUSH:x", "HUSH:x"), None);
        assert_eq!(leak("doozer:?cn=HUSH%zz", "HUSH%zz"), None);
        assert_eq!(leak("doozer:?sk=hidden", "sk=<hidden>"), None);
        assert_eq!(leak("doozer:?sk=abc", "abc"), None);
        assert_eq!(leak("doozer:?cn=HUSH&sk=HUSH", "cn=HUSH"), None);
        // Found by the fuzzer: a value made of the text before it is
        // shown by what is around it.
        let text = "do\u{c}:rdooqerw:?zcn=o\u{c}:rdooqerw:?zcn=";
        assert_eq!(reveals(text, redact), None);
        // ... or by the words of the message: "want doozer:?ca=...".
        let text = "doo&&a%2c+b?sk=zer:";
        assert!(error_text(text).contains("zer:"));
        assert_eq!(reveals(text, error_text), None);
        // The text itself shows it; redact does not.
        let text = "doozer:?ca=h&sk=HUSH";
        assert!(reveals(text, |t| t.to_string()).is_some());
        assert_eq!(reveals(text, redact), None);
    }
}
