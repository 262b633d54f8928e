//! Typed errors of the client library.
//!
//! Server errors keep their wire code ([`ErrCode`]) so callers can match on
//! it; their `Display` follows the Go client (`rev mismatch`,
//! `no such file or directory: /x`, ...), which the `doozer` command prints.

use std::io;

use doozer_proto::{ErrCode, Response};

use crate::uri::UriError;

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong talking to doozer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered with an error code.
    #[error("{}", server_text(*.code, .detail.as_deref()))]
    Server {
        /// The wire error code.
        code: ErrCode,
        /// The server's detail text, if any.
        detail: Option<String>,
    },
    /// The URI could not be parsed.
    #[error(transparent)]
    Uri(#[from] UriError),
    /// No address of the URI accepted a connection.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The address (or addresses) tried.
        addr: String,
        /// The last failure.
        #[source]
        source: io::Error,
    },
    /// Reading or writing the socket failed.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The connection broke while the request was outstanding (or before
    /// it could be sent).
    #[error("connection closed: {0}")]
    ConnectionClosed(String),
    /// A deadline given by the caller expired.
    #[error("timeout")]
    Timeout,
    /// The peer sent something that is not valid doozer protocol.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// TLS could not be set up: an unreadable or bad `tlsca=` file.
    /// (A node whose certificate does not verify is a [`Error::Connect`].)
    #[error("TLS: {0}")]
    Tls(String),
    /// The URI names a cluster (`cn=`) but no name service was given.
    #[error("cn= needs a name service: give -b URI or set DOOZER_BOOT_URI")]
    NoNameService,
    /// No CAL of the named cluster is registered in the name service.
    #[error(
        "no CAL of cluster {0:?} is registered in the name service ({dir}/ is empty)",
        dir = doozer_proto::ctl::ns_dir(.0)
    )]
    UnknownCluster(String),
    /// A cluster name that cannot be a path component.
    #[error("{}", bad_cluster_name(.0))]
    BadClusterName(String),
}

impl Error {
    /// The server error code, if this is a server error.
    pub fn code(&self) -> Option<ErrCode> {
        match self {
            Error::Server { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// True if the server answered `REV_MISMATCH`.
    pub fn is_rev_mismatch(&self) -> bool {
        self.code() == Some(ErrCode::RevMismatch)
    }

    /// True if the connection is unusable after this error, so a fresh
    /// connection might succeed where this one failed.
    pub fn is_connection_error(&self) -> bool {
        matches!(
            self,
            Error::Io(_) | Error::ConnectionClosed(_) | Error::Protocol(_) | Error::Connect { .. }
        )
    }

    /// Builds a server error from a raw wire code (an unknown code becomes
    /// `OTHER`, keeping the number in the detail).
    pub fn from_wire(code: i32, detail: Option<String>) -> Error {
        match ErrCode::try_from(code) {
            Ok(code) => Error::Server { code, detail },
            Err(_) => Error::Server {
                code: ErrCode::Other,
                detail: Some(match detail {
                    Some(d) => format!("unknown error code {code}: {d}"),
                    None => format!("unknown error code {code}"),
                }),
            },
        }
    }

    /// `Err` if `resp` carries an error code, else the response itself.
    pub fn check(resp: Response) -> Result<Response> {
        match resp.err_code {
            Some(code) => Err(Error::from_wire(
                code,
                resp.err_detail.filter(|d| !d.is_empty()),
            )),
            None => Ok(resp),
        }
    }
}

/// The Go client's text for an error code.
pub fn code_text(code: ErrCode) -> &'static str {
    match code {
        ErrCode::Other => "other",
        ErrCode::TagInUse => "tag in use",
        ErrCode::UnknownVerb => "unknown verb",
        ErrCode::Readonly => "read-only",
        ErrCode::TooLate => "too late",
        ErrCode::RevMismatch => "rev mismatch",
        ErrCode::BadPath => "bad path",
        ErrCode::MissingArg => "missing argument",
        ErrCode::Range => "out of range",
        ErrCode::Notdir => "not a directory",
        ErrCode::Isdir => "is a directory",
        ErrCode::Noent => "no such file or directory",
    }
}

fn bad_cluster_name(name: &str) -> String {
    let max = doozer_proto::ctl::MAX_CLUSTER_NAME_LEN;
    if name.len() > max {
        return format!(
            "bad cluster name ({} bytes): a cluster name is at most {max} bytes",
            name.len()
        );
    }
    format!("bad cluster name {name:?}: want one to {max} of A-Z a-z 0-9 . -")
}

fn server_text(code: ErrCode, detail: Option<&str>) -> String {
    match (code, detail) {
        // The Go client turns OTHER into an error made of the detail alone.
        (ErrCode::Other, Some(d)) => d.to_string(),
        (_, Some(d)) => format!("{}: {}", code_text(code), d),
        (_, None) => code_text(code).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [ErrCode; 12] = [
        ErrCode::Other,
        ErrCode::TagInUse,
        ErrCode::UnknownVerb,
        ErrCode::Readonly,
        ErrCode::TooLate,
        ErrCode::RevMismatch,
        ErrCode::BadPath,
        ErrCode::MissingArg,
        ErrCode::Range,
        ErrCode::Notdir,
        ErrCode::Isdir,
        ErrCode::Noent,
    ];

    #[test]
    fn every_wire_code_maps_to_its_server_error() {
        for code in ALL {
            let e = Error::from_wire(code as i32, None);
            assert_eq!(e.code(), Some(code), "{code:?}");
            assert!(!e.is_connection_error());
        }
    }

    #[test]
    fn display_matches_the_go_client() {
        let want = [
            "other",
            "tag in use",
            "unknown verb",
            "read-only",
            "too late",
            "rev mismatch",
            "bad path",
            "missing argument",
            "out of range",
            "not a directory",
            "is a directory",
            "no such file or directory",
        ];
        for (code, want) in ALL.iter().zip(want) {
            assert_eq!(Error::from_wire(*code as i32, None).to_string(), want);
        }
        let e = Error::from_wire(ErrCode::Other as i32, Some("permission denied".into()));
        assert_eq!(e.to_string(), "permission denied");
        let e = Error::from_wire(ErrCode::Noent as i32, Some("/x".into()));
        assert_eq!(e.to_string(), "no such file or directory: /x");
        assert_eq!(Error::Timeout.to_string(), "timeout");
        let e = Error::BadClusterName("a b".into());
        assert_eq!(
            e.to_string(),
            "bad cluster name \"a b\": want one to 255 of A-Z a-z 0-9 . -"
        );
        let e = Error::BadClusterName("n".repeat(60_000));
        assert_eq!(
            e.to_string(),
            "bad cluster name (60000 bytes): a cluster name is at most 255 bytes"
        );
    }

    #[test]
    fn check_passes_results_and_converts_errors() {
        let ok = Response {
            tag: Some(1),
            rev: Some(5),
            ..Default::default()
        };
        assert_eq!(Error::check(ok.clone()).unwrap(), ok);
        let bad = Response::error(Some(1), ErrCode::RevMismatch, None);
        assert!(Error::check(bad).unwrap_err().is_rev_mismatch());
        // an empty detail is no detail
        let bad = Response::error(Some(1), ErrCode::Isdir, Some(String::new()));
        assert_eq!(Error::check(bad).unwrap_err().to_string(), "is a directory");
    }

    #[test]
    fn unknown_code_is_other_with_the_number() {
        let e = Error::from_wire(55, None);
        assert_eq!(e.code(), Some(ErrCode::Other));
        assert_eq!(e.to_string(), "unknown error code 55");
    }
}
