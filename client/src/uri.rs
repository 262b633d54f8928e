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

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// The port used when a `ca=` address has none.
pub const DEFAULT_PORT: u16 = 8046;

/// A parsed doozer URI.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
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

/// Why a string is not a usable doozer URI.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UriError {
    /// The string does not start with `doozer:?`.
    #[error("bad URI {0:?}: want doozer:?ca=HOST:PORT")]
    Scheme(String),
    /// Neither `ca=` nor `cn=` was given.
    #[error("bad URI {0:?}: no ca= address or cn= name")]
    NoAddress(String),
    /// A parameter other than `ca`, `cn`, `sk`, `tlsca`.
    #[error("bad URI: unknown parameter {0:?} (want ca, cn, sk or tlsca)")]
    UnknownParam(String),
    /// A parameter without `=value`, or with an empty value.
    #[error("bad URI: parameter {0:?} needs a value")]
    EmptyValue(String),
    /// `cn`, `sk` or `tlsca` given twice.
    #[error("bad URI: parameter {0:?} given more than once")]
    Repeated(String),
    /// A malformed `%XX` escape.
    #[error("bad URI: bad escape in {0:?}")]
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

impl fmt::Display for DoozerUri {
    /// Prints the URI back, without the secret (so it is safe to log).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "doozer:?")?;
        let mut sep = "";
        for a in &self.addrs {
            write!(f, "{sep}ca={a}")?;
            sep = "&";
        }
        if let Some(cn) = &self.cluster {
            write!(f, "{sep}cn={cn}")?;
            sep = "&";
        }
        if let Some(ca) = &self.tls_ca {
            write!(f, "{sep}tlsca={}", escape(&ca.to_string_lossy()))?;
        }
        Ok(())
    }
}

/// Parses a doozer URI (see the [module docs](self)).
pub fn parse(s: &str) -> Result<DoozerUri, UriError> {
    let query = s
        .strip_prefix("doozer:?")
        .or_else(|| s.strip_prefix("doozer:").filter(|q| q.is_empty()))
        .ok_or_else(|| UriError::Scheme(s.to_string()))?;
    let mut uri = DoozerUri::default();
    for part in query.split('&').filter(|p| !p.is_empty()) {
        let (key, raw) = part
            .split_once('=')
            .ok_or_else(|| UriError::EmptyValue(part.to_string()))?;
        let key = String::from_utf8_lossy(&unescape(key)?).into_owned();
        let value = unescape(raw)?;
        if value.is_empty() {
            return Err(UriError::EmptyValue(key));
        }
        match key.as_str() {
            "ca" => {
                let text = String::from_utf8(value).map_err(|_| UriError::BadAddr(raw.into()))?;
                uri.addrs.push(normalize_addr(&text)?);
            }
            "cn" => {
                if uri.cluster.is_some() {
                    return Err(UriError::Repeated(key));
                }
                let text = String::from_utf8(value).map_err(|_| UriError::BadEscape(raw.into()))?;
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
    }
    if uri.addrs.is_empty() && uri.cluster.is_none() {
        return Err(UriError::NoAddress(s.to_string()));
    }
    Ok(uri)
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
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_graphic() && !matches!(b, b'%' | b'&' | b'+' | b'=' | b'#') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Query-string unescaping: `%XX` and `+` for space.
fn unescape(s: &str) -> Result<Vec<u8>, UriError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = b
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| UriError::BadEscape(s.to_string()))?;
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
    Ok(out)
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
        assert_eq!(u.to_string(), "doozer:?ca=h:8046&tlsca=/a%20b/c%26d.pem");
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
    fn display_hides_the_secret() {
        let u = parse("doozer:?ca=h&sk=secret&cn=c").unwrap();
        assert_eq!(u.to_string(), "doozer:?ca=h:8046&cn=c");
    }
}
