//! The nodes a bench loads, and the raw pipelined connections to them.

use bytes::Bytes;
use doozer::{Error, Pipeline, Request, TlsClient, Verb};

/// A bare request: `verb` with `tag`, its other fields to be set.
pub(super) fn request(verb: Verb, tag: i32) -> Request {
    Request {
        tag: Some(tag),
        verb: Some(verb as i32),
        ..Default::default()
    }
}

/// A pipeline to `addr`, with ACCESS sent if there is a secret.
fn open(addr: &str, secret: Option<&[u8]>, tls: Option<&TlsClient>) -> Result<Pipeline, Error> {
    let mut p = Pipeline::connect_with(addr, tls)?;
    if let Some(s) = secret {
        let mut r = request(Verb::Access, 0);
        r.value = Some(Bytes::copy_from_slice(s));
        p.send(&r);
        p.flush()?;
        Error::check(p.recv()?)?;
    }
    Ok(p)
}

/// The nodes to load: connection `i` goes to `addrs[i % addrs.len()]`.
pub(super) struct Target {
    /// The `ca=` addresses of `-a`, then those its `cn=` resolves to.
    pub(super) addrs: Vec<String>,
    /// The `sk=` secret, sent with ACCESS on every connection.
    pub(super) secret: Option<Vec<u8>>,
    /// TLS, when the URI has `tlsca=`.
    pub(super) tls: Option<TlsClient>,
}

impl Target {
    /// The address of connection `i` (never empty: `run` checks).
    pub(super) fn addr(&self, i: usize) -> &str {
        &self.addrs[i % self.addrs.len()]
    }

    /// Opens connection `i`.
    pub(super) fn open(&self, i: usize) -> Result<Pipeline, Error> {
        open(self.addr(i), self.secret.as_deref(), self.tls.as_ref())
    }
}
