//! The nodes a bench loads, and the raw pipelined connections to them.

use bytes::Bytes;
use doozer::{Client, DoozerUri, ErrCode, Error, Pipeline, Request, TlsClient, Verb};

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

impl Target {
    /// Where the bench's writes go: each node of `self` that is a CAL,
    /// and in place of one that is not (a slave, which refuses writes with
    /// `READONLY`) the CALs of its cluster, as the client library finds
    /// them for a write a slave refused ([`Client::cals`]); each address
    /// once. `uri` gives the TLS and secret to look them up with.
    pub(super) fn for_writes(&self, uri: &DoozerUri) -> Result<Target, Error> {
        let mut addrs: Vec<String> = Vec::new();
        for addr in &self.addrs {
            let node = Client::connect_uri(&DoozerUri {
                addrs: vec![addr.clone()],
                cluster: None,
                ..uri.clone()
            })?;
            let (id, cals) = (node.self_id()?, node.cals()?);
            let writers = if cals.iter().any(|c| c.id == id) {
                vec![addr.clone()]
            } else {
                cals.into_iter().map(|c| c.addr).collect()
            };
            for a in writers {
                if !addrs.contains(&a) {
                    addrs.push(a);
                }
            }
        }
        if addrs.is_empty() {
            return Err(Error::Server {
                code: ErrCode::Readonly,
                detail: Some(format!(
                    "no CAL to send the writes to ({} is empty)",
                    doozer::ctl::CAL_DIR
                )),
            });
        }
        Ok(Target {
            addrs,
            secret: self.secret.clone(),
            tls: self.tls.clone(),
        })
    }
}
