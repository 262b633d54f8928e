//! doozer URIs: `doozer:?ca=HOST:PORT&ca=...&cn=NAME&sk=SECRET&tlsca=PATH`.
//!
//! Parameters come in any order; `ca` may repeat. `tlsca` names a PEM
//! file of CA certificates: its presence means "talk TLS", verifying each
//! node's certificate for the host of its `ca=` address. A `ca` without a port
//! gets the default port 8046. Values are percent-decoded like a URL query
//! (`+` is a space), so a secret may hold any bytes.
//!
//! ```
//! let u: doozer::DoozerUri = "doozer:?sk=s3cret&ca=10.0.0.1&ca=10.0.0.2:9000".parse().unwrap();
//! assert_eq!(u.addrs, ["10.0.0.1:8046", "10.0.0.2:9000"]);
//! assert_eq!(u.secret.as_deref(), Some(&b"s3cret"[..]));
//! ```
//!
//! A secret is never shown: `Display` and `Debug` of a [`DoozerUri`] put
//! [`HIDDEN`] in its place, errors never echo a value that may be one, and
//! [`redact`] does the same for the text of a URI, even a malformed one,
//! wherever it must be shown.
//!
//! ```
//! let u: doozer::DoozerUri = "doozer:?ca=h&sk=s3cret".parse().unwrap();
//! assert_eq!(u.to_string(), "doozer:?ca=h:8046&sk=<hidden>");
//! let e = "doozer:?sk=s3cret".parse::<doozer::DoozerUri>().unwrap_err();
//! assert!(!e.to_string().contains("s3cret"));
//! assert_eq!(doozer::uri::redact("dozer:?sk=s3cret"), "dozer:?sk=<hidden>");
//! ```

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// The port used when a `ca=` address has none.
pub const DEFAULT_PORT: u16 = 8046;

/// What a shown URI has in place of a secret.
pub const HIDDEN: &str = "<hidden>";

/// A parsed doozer URI. Its `Display` and `Debug` hide the secret.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct DoozerUri {
    /// Cluster addresses (`ca=`), each `host:port`, in the order given.
    pub addrs: Vec<String>,
    /// Cluster name (`cn=`), to be resolved through a name service.
    pub cluster: Option<String>,
    /// Secret (`sk=`) sent with ACCESS right after connecting.
    pub secret: Option<Vec<u8>>,
    /// CA certificates file (`tlsca=`): when set, connections use TLS and
    /// a node's certificate must chain to one of these CAs.
    pub tls_ca: Option<PathBuf>,
}

/// Why a string is not a usable doozer URI. No error holds the text of a
/// parameter's value that may be a secret: the URI is shown through
/// [`redact`], a parameter by its name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UriError {
    /// The string does not start with `doozer:?` (the text, redacted).
    #[error("bad URI {0:?}: want doozer:?ca=HOST:PORT")]
    Scheme(String),
    /// Neither `ca=` nor `cn=` was given (the text, redacted).
    #[error("bad URI {0:?}: no ca= address or cn= name")]
    NoAddress(String),
    /// A parameter other than `ca`, `cn`, `sk`, `tlsca` (its name).
    #[error("bad URI: unknown parameter {0:?} (want ca, cn, sk or tlsca)")]
    UnknownParam(String),
    /// An unknown parameter after `sk=`: its name is not shown, since it
    /// may be the rest of a secret holding an unescaped `&`.
    #[error(
        "bad URI: an unknown parameter after sk= (not shown: it may be part of the secret; write & in a secret as %26)"
    )]
    UnknownAfterSecret,
    /// A part of the query that is not `name=value`, so neither a name nor
    /// a value can be told apart in it (it is not shown).
    #[error("bad URI: a part of the query is not NAME=VALUE (want ca, cn, sk or tlsca)")]
    NotAParam,
    /// A parameter without `=value`, or with an empty value.
    #[error("bad URI: parameter {0:?} needs a value")]
    EmptyValue(String),
    /// `cn`, `sk` or `tlsca` given twice.
    #[error("bad URI: parameter {0:?} given more than once")]
    Repeated(String),
    /// A malformed `%XX` escape, in the value of the named parameter (or
    /// in a parameter's name, when that is all there is to name).
    #[error("bad URI: bad %-escape in {0}")]
    BadEscape(String),
    /// A `ca` that is not `host[:port]`.
    #[error("bad URI: bad address {0:?} (want HOST:PORT)")]
    BadAddr(String),
}

impl FromStr for DoozerUri {
    type Err = UriError;
    fn from_str(s: &str) -> Result<Self, UriError> {
        parse(s)
    }
}

impl fmt::Debug for DoozerUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DoozerUri")
            .field("addrs", &self.addrs)
            .field("cluster", &self.cluster)
            .field("secret", &self.secret.as_ref().map(|_| HIDDEN))
            .field("tls_ca", &self.tls_ca)
            .finish()
    }
}

impl fmt::Display for DoozerUri {
    /// Prints the URI back with [`HIDDEN`] for the secret (so it is safe
    /// to log; it is not meant to be parsed again).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "doozer:?")?;
        let mut sep = "";
        // Every value escaped, so a `&` or `=` in a name cannot read back
        // as another parameter: a cluster name holding `&sk=x` would look
        // like a shown secret in the logs, and an address holding `&`
        // would not parse back as itself.
        for a in &self.addrs {
            write!(f, "{sep}ca={}", escape(a.as_bytes()))?;
            sep = "&";
        }
        if let Some(cn) = &self.cluster {
            write!(f, "{sep}cn={}", escape(cn.as_bytes()))?;
            sep = "&";
        }
        if self.secret.is_some() {
            write!(f, "{sep}sk={HIDDEN}")?;
            sep = "&";
        }
        if let Some(ca) = &self.tls_ca {
            // The path's own bytes: a name that is not UTF-8 is still
            // the same file's once printed.
            use std::os::unix::ffi::OsStrExt;
            write!(f, "{sep}tlsca={}", escape(ca.as_os_str().as_bytes()))?;
        }
        Ok(())
    }
}

/// The parameters whose values are shown: addresses, a cluster name and
/// the name of a CA file. Every other value (`sk`, or anything misspelt)
/// may be a secret.
const SHOWN: [&str; 3] = ["ca", "cn", "tlsca"];

/// `text`, a URI or what was meant to be one, safe to show: the value of
/// every parameter but `ca`, `cn` and `tlsca` is replaced by [`HIDDEN`],
/// and so is any part of the query that is not `name=value` (it may be a
/// piece of a secret with an unescaped `&`). Text before a `?` that has no
/// `=` or `&` before it is kept (`doozer:?`, `http://host?`); without
/// such a `?`, the whole text is taken as a query. Text without any `?`,
/// `=` or `&` holds no parameter and is kept (`127.0.0.1:8046`).
pub fn redact(text: &str) -> String {
    if !text.contains(['?', '=', '&']) {
        return text.to_string();
    }
    let start = match text.find('?') {
        Some(q) if !text[..q].contains(['=', '&']) => q + 1,
        _ => 0,
    };
    let (prefix, query) = text.split_at(start);
    // Once a value was hidden, a part that is not a known parameter may be
    // the rest of it (an unescaped `&` in a secret): all of it is hidden.
    let mut after_hidden = false;
    let mut parts = Vec::new();
    for part in query.split('&') {
        let shown = match part.split_once('=') {
            Some((key, _)) if SHOWN.contains(&key_name(key).as_str()) => part.to_string(),
            Some((key, _)) if !after_hidden || is_known(key) => format!("{key}={HIDDEN}"),
            None if part.is_empty() || is_known(part) => part.to_string(),
            _ => HIDDEN.to_string(),
        };
        after_hidden |= shown.ends_with(HIDDEN);
        parts.push(shown);
    }
    format!("{prefix}{}", parts.join("&"))
}

/// A parameter's name as the parser reads it (escapes decoded; a bad one
/// gives a name that matches nothing).
fn key_name(raw: &str) -> String {
    unescape(raw).map_or_else(String::new, |k| String::from_utf8_lossy(&k).into_owned())
}

/// Whether `raw` names one of the parameters.
fn is_known(raw: &str) -> bool {
    matches!(key_name(raw).as_str(), "ca" | "cn" | "sk" | "tlsca")
}

/// Parses a doozer URI (see the [module docs](self)).
pub fn parse(s: &str) -> Result<DoozerUri, UriError> {
    let query = s
        .strip_prefix("doozer:?")
        .or_else(|| s.strip_prefix("doozer:").filter(|q| q.is_empty()))
        .ok_or_else(|| UriError::Scheme(redact(s)))?;
    let mut uri = DoozerUri::default();
    for part in query.split('&').filter(|p| !p.is_empty()) {
        let Some((raw_key, raw)) = part.split_once('=') else {
            return Err(if is_known(part) {
                UriError::EmptyValue(key_name(part))
            } else {
                UriError::NotAParam
            });
        };
        let key = unescape(raw_key)
            .map(|k| String::from_utf8_lossy(&k).into_owned())
            .ok_or_else(|| UriError::BadEscape("a parameter name".into()))?;
        let value =
            unescape(raw).ok_or_else(|| UriError::BadEscape(format!("parameter {key:?}")))?;
        if value.is_empty() {
            return Err(UriError::EmptyValue(key));
        }
        take_param(&mut uri, key, value, raw).map_err(|e| match e {
            UriError::UnknownParam(_) if uri.secret.is_some() => UriError::UnknownAfterSecret,
            e => e,
        })?;
    }
    if uri.addrs.is_empty() && uri.cluster.is_none() {
        return Err(UriError::NoAddress(redact(s)));
    }
    Ok(uri)
}

/// Puts parameter `key` (its value decoded, and `raw` as written) in `uri`.
fn take_param(uri: &mut DoozerUri, key: String, value: Vec<u8>, raw: &str) -> Result<(), UriError> {
    match key.as_str() {
        "ca" => {
            let text = String::from_utf8(value).map_err(|_| UriError::BadAddr(raw.into()))?;
            uri.addrs.push(normalize_addr(&text)?);
        }
        "cn" => {
            if uri.cluster.is_some() {
                return Err(UriError::Repeated(key));
            }
            let text = String::from_utf8(value)
                .map_err(|_| UriError::BadEscape(format!("parameter {key:?}")))?;
            uri.cluster = Some(text);
        }
        "sk" => {
            if uri.secret.is_some() {
                return Err(UriError::Repeated(key));
            }
            uri.secret = Some(value);
        }
        "tlsca" => {
            if uri.tls_ca.is_some() {
                return Err(UriError::Repeated(key));
            }
            use std::os::unix::ffi::OsStringExt;
            uri.tls_ca = Some(PathBuf::from(std::ffi::OsString::from_vec(value)));
        }
        _ => return Err(UriError::UnknownParam(key)),
    }
    Ok(())
}

/// `host` → `host:8046`; `[v6]` → `[v6]:8046`; a bare IPv6 address gets
/// brackets; the port, if any, must be a number.
fn normalize_addr(a: &str) -> Result<String, UriError> {
    let bad = || UriError::BadAddr(a.to_string());
    if a.chars().any(|c| c.is_whitespace() || c == '/') {
        return Err(bad());
    }
    let (host, port) = if let Some(rest) = a.strip_prefix('[') {
        let (h, after) = rest.split_once(']').ok_or_else(bad)?;
        match after {
            "" => (format!("[{h}]"), None),
            p => (format!("[{h}]"), Some(p.strip_prefix(':').ok_or_else(bad)?)),
        }
    } else if a.matches(':').count() > 1 {
        // A bare IPv6 address; a bracket in it would make the bracketed
        // form read back as another host and port.
        if a.contains(['[', ']']) {
            return Err(bad());
        }
        (format!("[{a}]"), None)
    } else {
        match a.split_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (a.to_string(), None),
        }
    };
    if host.is_empty() || host == "[]" {
        return Err(bad());
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(bad)?,
    };
    Ok(format!("{host}:{port}"))
}

/// Query-string escaping of the bytes that would change the meaning of a
/// value (`%`, `&`, `+`, `=`, `#`, spaces and controls).
fn escape(s: &[u8]) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s {
        if b.is_ascii_graphic() && !matches!(b, b'%' | b'&' | b'+' | b'=' | b'#') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Query-string unescaping: `%XX` and `+` for space; `None` for a bad
/// escape. (Also the web viewer's query values.)
pub fn unescape(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = b
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())?;
                out.push(hex);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_addresses_in_order_with_default_port() {
        let u = parse("doozer:?ca=127.0.0.1:8046&ca=example.com&ca=[::1]:9&ca=::1").unwrap();
        assert_eq!(
            u.addrs,
            [
                "127.0.0.1:8046",
                "example.com:8046",
                "[::1]:9",
                "[::1]:8046"
            ]
        );
        assert_eq!(u.cluster, None);
        assert_eq!(u.secret, None);
    }

    #[test]
    fn params_in_any_order() {
        let u = parse("doozer:?sk=a%20b+c&cn=prod&ca=h:1").unwrap();
        assert_eq!(u.addrs, ["h:1"]);
        assert_eq!(u.cluster.as_deref(), Some("prod"));
        assert_eq!(u.secret.as_deref(), Some(&b"a b c"[..]));
        // cn alone is a valid URI (resolved through a name service)
        assert!(parse("doozer:?cn=x").is_ok());
    }

    #[test]
    fn malformed_uris_are_typed_errors() {
        use UriError::*;
        type Check = fn(&UriError) -> bool;
        let cases: &[(&str, Check)] = &[
            ("http://x", |e| matches!(e, Scheme(_))),
            ("ca=1.2.3.4", |e| matches!(e, Scheme(_))),
            ("doozer:?", |e| matches!(e, NoAddress(_))),
            ("doozer:", |e| matches!(e, NoAddress(_))),
            ("doozer:?sk=x", |e| matches!(e, NoAddress(_))),
            ("doozer:?ca=h&foo=1", |e| matches!(e, UnknownParam(_))),
            ("doozer:?ca", |e| matches!(e, EmptyValue(_))),
            ("doozer:?ca=", |e| matches!(e, EmptyValue(_))),
            ("doozer:?ca=h:port", |e| matches!(e, BadAddr(_))),
            ("doozer:?ca=h:70000", |e| matches!(e, BadAddr(_))),
            ("doozer:?ca=h:0", |e| matches!(e, BadAddr(_))),
            ("doozer:?ca=:80", |e| matches!(e, BadAddr(_))),
            ("doozer:?ca=[::1", |e| matches!(e, BadAddr(_))),
            // Found by the uri fuzz target: brackets inside a bare IPv6
            // address (fuzz/regressions/uri/).
            ("doozer:?ca=h]:9:1", |e| matches!(e, BadAddr(_))),
            ("doozer:?ca=::[1", |e| matches!(e, BadAddr(_))),
            ("doozer:?ca=h&sk=%zz", |e| matches!(e, BadEscape(_))),
            ("doozer:?ca=h&sk=%4", |e| matches!(e, BadEscape(_))),
            ("doozer:?ca=h&cn=a&cn=b", |e| matches!(e, Repeated(_))),
        ];
        for (s, is) in cases {
            let e = parse(s).unwrap_err();
            assert!(is(&e), "{s}: {e:?}");
            assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn tlsca_names_the_ca_file_and_means_tls() {
        let u = parse("doozer:?ca=127.0.0.1:9&tlsca=/tmp/x/ca.pem").unwrap();
        assert_eq!(u.tls_ca, Some(PathBuf::from("/tmp/x/ca.pem")));
        assert_eq!(u.addrs, ["127.0.0.1:9"]);
        // any order, escapes decoded
        let u = parse("doozer:?tlsca=/a%20b/c%26d.pem&ca=h&sk=s").unwrap();
        assert_eq!(u.tls_ca, Some(PathBuf::from("/a b/c&d.pem")));
        assert_eq!(parse("doozer:?ca=h").unwrap().tls_ca, None);
        // printed back (it is no secret) and parsed again to the same
        assert_eq!(
            u.to_string(),
            "doozer:?ca=h:8046&sk=<hidden>&tlsca=/a%20b/c%26d.pem"
        );
        assert_eq!(parse(&u.to_string()).unwrap().tls_ca, u.tls_ca);
        assert!(matches!(
            parse("doozer:?ca=h&tlsca=a&tlsca=b"),
            Err(UriError::Repeated(k)) if k == "tlsca"
        ));
        assert!(matches!(
            parse("doozer:?ca=h&tlsca="),
            Err(UriError::EmptyValue(_))
        ));
        // tlsca alone names no node
        assert!(matches!(
            parse("doozer:?tlsca=/ca.pem"),
            Err(UriError::NoAddress(_))
        ));
        let e = parse("doozer:?ca=h&tls=1").unwrap_err();
        assert!(e.to_string().contains("tlsca"), "{e}");
    }

    #[test]
    fn display_and_debug_hide_the_secret() {
        let u = parse("doozer:?ca=h&sk=secret&cn=c").unwrap();
        assert_eq!(u.to_string(), "doozer:?ca=h:8046&cn=c&sk=<hidden>");
        let debug = format!("{u:?}");
        assert!(!debug.contains("secret\""), "{debug}");
        assert!(debug.contains("<hidden>"), "{debug}");
        assert_eq!(
            parse("doozer:?ca=h").unwrap().to_string(),
            "doozer:?ca=h:8046"
        );
    }

    /// Found with the `uri` fuzz target's checks (fuzz/regressions/uri/).
    #[test]
    fn display_escapes_names_so_they_read_back_the_same() {
        for text in [
            "doozer:?ca=h&cn=a%26sk%3Dsecretvalue&sk=secretvalue",
            "doozer:?ca=a%26b",
            "doozer:?ca=a%3Db%25c%2Bd%23e",
            "doozer:?cn=%C3%A9t%C3%A9+x",
        ] {
            let u = parse(text).unwrap();
            let shown = u.to_string();
            // No `sk=` but the hidden one: a name's `&sk=` stays escaped.
            assert!(!shown.replace("sk=<hidden>", "").contains("sk="), "{shown}");
            let back = parse(&shown).unwrap_or_else(|e| panic!("{shown}: {e}"));
            let hidden = u.secret.as_ref().map(|_| HIDDEN.as_bytes().to_vec());
            assert_eq!(
                back,
                DoozerUri {
                    secret: hidden,
                    ..u
                },
                "{shown}"
            );
        }
        let u = parse("doozer:?ca=h&cn=a%26sk%3Dx").unwrap();
        assert_eq!(u.to_string(), "doozer:?ca=h:8046&cn=a%26sk%3Dx");
    }

    /// Found by the `uri` fuzz target (fuzz/regressions/uri/): a CA file
    /// whose name is not UTF-8 printed as another name.
    #[test]
    fn a_tlsca_path_that_is_not_utf8_prints_as_itself() {
        let u = parse("doozer:?ca=h&tlsca=/a%CB%20b.pem").unwrap();
        assert_eq!(u.to_string(), "doozer:?ca=h:8046&tlsca=/a%CB%20b.pem");
        assert_eq!(parse(&u.to_string()).unwrap(), u);
    }

    #[test]
    fn errors_never_show_a_secret() {
        // Every way a URI holding a secret can be malformed; "HUSH" is
        // the secret (or a piece of it).
        for text in [
            "doozer:?sk=HUSH",
            "doozer:?sk=HUSH&tlsca=/ca.pem",
            "dozer:?ca=h&sk=HUSH",
            "ca=h&sk=HUSH",
            "sk=HUSH?x",
            "http://h?sk=HUSH",
            "doozer:?ca=h&sk=HUSH&sk=HUSH",
            "doozer:?ca=h&sk=HU%zzSH",
            "doozer:?ca=h&s%6B=HUSH&x=1",
            "doozer:?ca=h&sk=a&HUSH",
            "doozer:?ca=h&sk=a&HUSH=b",
            "doozer:?ca=h&Sk=HUSH",
            "doozer:?ca=h&secret=HUSH",
            "doozer:?ca=h&sk%zz=HUSH",
            "doozer:?ca=h&sk=HUSH&ca=bad:port",
            "doozer:?ca=h&sk=HUSH&cn=%ff",
        ] {
            let e = parse(text).unwrap_err();
            let shown = format!("{e} {e:?}");
            assert!(!shown.contains("HUSH"), "{text}: {shown}");
        }
    }

    #[test]
    fn redact_hides_every_value_that_may_be_a_secret() {
        let cases = [
            ("doozer:?ca=h:1&sk=HUSH", "doozer:?ca=h:1&sk=<hidden>"),
            ("doozer:?sk=HUSH&cn=prod", "doozer:?sk=<hidden>&cn=prod"),
            (
                "doozer:?tlsca=/ca.pem&s%6B=HUSH",
                "doozer:?tlsca=/ca.pem&s%6B=<hidden>",
            ),
            ("ca=h&sk=HUSH", "ca=h&sk=<hidden>"),
            ("sk=HU?SH", "sk=<hidden>"),
            ("http://h?sk=HUSH#x", "http://h?sk=<hidden>"),
            (
                "doozer:?ca=h&sk=a&HUSH",
                "doozer:?ca=h&sk=<hidden>&<hidden>",
            ),
            (
                "doozer:?ca=h&sk=a&HUSH=b&cn=x",
                "doozer:?ca=h&sk=<hidden>&<hidden>&cn=x",
            ),
            ("doozer:?tls=1&sk=a", "doozer:?tls=<hidden>&sk=<hidden>"),
            ("doozer:?ca&sk", "doozer:?ca&sk"),
            ("127.0.0.1:8046", "127.0.0.1:8046"),
            ("http://h?HUSH", "http://h?<hidden>"),
            ("", ""),
        ];
        for (text, want) in cases {
            assert_eq!(redact(text), want, "{text}");
        }
    }
}
