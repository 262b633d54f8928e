//! Text from the command line and the environment: doozer URIs
//! ([`DoozerUri`]'s `FromStr`, as `-a`, `-b`, `DOOZER_URI` and
//! `DOOZER_BOOT_URI` are read) and durations (`doozer::duration::parse`,
//! as `doozer wait -t` and the bench's flags are read).
//!
//! Input: the text (invalid UTF-8 is replaced, as a lossy `OsString`
//! conversion would).
//!
//! Invariants: a URI prints back (its `Display`, what logs show) without
//! its secret, and that text parses to the same URI without the secret;
//! an error's text does not show the secret either. A duration that
//! parses is not negative and prints back to the same duration.

use doozer::DoozerUri;

/// The `uri` target.
pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    check_uri(&text);
    check_duration(&text);
}

/// The values of the `sk` parameters of `text` as written (still escaped),
/// with the text around each (the rest of the URI), for the secrecy
/// checks. Keys are unescaped as the parser does (`s%6B=` is `sk=`).
fn secrets(text: &str) -> Vec<(&str, String)> {
    let mut out = Vec::new();
    let mut start = 0;
    for part in text.split(['&', '?']) {
        let end = start + part.len();
        if let Some((key, value)) = part.split_once('=') {
            let key = unescape(key);
            if key == "sk" {
                let rest = format!("{}{}", &text[..start], &text[end..]);
                out.push((value, rest));
            }
        }
        start = end + 1;
    }
    out
}

/// `%XX` and `+` unescaped, loosely (for finding keys only).
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

/// What the parser's errors show in place of a secret.
const REDACTED: &str = "=(secret)";

/// Whether `shown` reveals a secret of `text`: a secret value (of a few
/// bytes at least, and not also written elsewhere in the URI) appears in
/// it, once the placeholders are taken out.
fn reveals(text: &str, shown: &str) -> Option<String> {
    let shown = shown.replace(REDACTED, "=");
    secrets(text)
        .into_iter()
        .find(|(value, rest)| value.len() >= 4 && !rest.contains(value) && shown.contains(value))
        .map(|(value, _)| value.to_string())
}

fn check_uri(text: &str) {
    match text.parse::<DoozerUri>() {
        Ok(uri) => {
            let shown = uri.to_string();
            if let Some(secret) = reveals(text, &shown) {
                panic!("{shown:?} shows the secret {secret:?} of {text:?}");
            }
            assert!(!shown.contains("sk="), "{shown:?} has a secret parameter");
            let back: DoozerUri = shown.parse().unwrap_or_else(|e| {
                panic!("{shown:?}, printed from {text:?}, does not parse: {e}")
            });
            let want = DoozerUri {
                secret: None,
                ..uri
            };
            assert_eq!(back, want, "{text:?} printed as {shown:?}");
        }
        Err(e) => {
            let shown = e.to_string();
            if let Some(secret) = reveals(text, &shown) {
                panic!("the error {shown:?} shows the secret {secret:?} of {text:?}");
            }
        }
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
