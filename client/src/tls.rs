//! TLS for client connections: a URI with `tlsca=PATH` connects over TLS
//! and checks the node's certificate against the CA certificate(s) in that
//! PEM file, for the host of the `ca=` address (an IP address or a DNS
//! name).
//!
//! [`TlsClient`] holds the verified-against CAs; [`Stream`] is a blocking
//! connection that is either plain TCP or TLS, used by [`crate::Pipeline`]
//! and by callers that drive a connection themselves.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use crate::error::{Error, Result};

/// How long one TCP connect attempt may take before the next address (and
/// one read or write of a TLS handshake).
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The crypto provider every TLS configuration of this project uses
/// (`ring`: pure Rust and C, no cmake).
pub fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// What a TLS client trusts: the CA certificate(s) a node's certificate
/// must chain to. Cheap to clone.
#[derive(Clone)]
pub struct TlsClient {
    config: Arc<ClientConfig>,
}

impl fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsClient").finish_non_exhaustive()
    }
}

/// The largest PEM file (CA certificates, a certificate chain, a private
/// key) read: 1 MiB, far more than any real one.
pub const MAX_PEM_FILE_LEN: u64 = 1 << 20;

/// Reads the PEM file at `path`, refusing one larger than
/// [`MAX_PEM_FILE_LEN`]: reading stops one byte past the limit, so a
/// mistaken `/dev/zero` or a huge file is an error, not a hang.
pub fn read_pem_file(path: &Path) -> io::Result<Vec<u8>> {
    let mut pem = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_PEM_FILE_LEN + 1)
        .read_to_end(&mut pem)?;
    if pem.len() as u64 > MAX_PEM_FILE_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {MAX_PEM_FILE_LEN} bytes, the limit for a PEM file"),
        ));
    }
    Ok(pem)
}

impl TlsClient {
    /// Trusts the CA certificates in the PEM file at `path` (at most
    /// [`MAX_PEM_FILE_LEN`] bytes).
    pub fn from_ca_file(path: &Path) -> Result<TlsClient> {
        let pem = read_pem_file(path)
            .map_err(|e| Error::Tls(format!("cannot read CA file {}: {e}", path.display())))?;
        TlsClient::from_ca_pem(&pem)
            .map_err(|e| Error::Tls(format!("CA file {}: {}", path.display(), tls_text(&e))))
    }

    /// Trusts the CA certificates in `pem` (one or more PEM
    /// `CERTIFICATE` sections).
    pub fn from_ca_pem(pem: &[u8]) -> Result<TlsClient> {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| Error::Tls(format!("bad PEM: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| Error::Tls(format!("bad CA certificate: {e}")))?;
        }
        if roots.is_empty() {
            return Err(Error::Tls("no CERTIFICATE in the PEM".into()));
        }
        let config = ClientConfig::builder_with_provider(crypto_provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Tls(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(TlsClient {
            config: Arc::new(config),
        })
    }

    /// A client session for the node at `addr` (`host:port`): the name
    /// checked against its certificate is `host`.
    pub fn session(&self, addr: &str) -> io::Result<ClientConnection> {
        let name = server_name(addr)?;
        let mut conn = ClientConnection::new(self.config.clone(), name)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        // Callers move what is written straight to the socket; they bound
        // what they queue themselves.
        conn.set_buffer_limit(None);
        Ok(conn)
    }

    /// Runs the handshake on the connected socket `sock` (blocking, at
    /// most `CONNECT_TIMEOUT` per read or write).
    pub fn handshake(
        &self,
        addr: &str,
        mut sock: TcpStream,
    ) -> io::Result<StreamOwned<ClientConnection, TcpStream>> {
        let mut conn = self.session(addr)?;
        let old = sock.read_timeout()?;
        sock.set_read_timeout(Some(CONNECT_TIMEOUT))?;
        sock.set_write_timeout(Some(CONNECT_TIMEOUT))?;
        while conn.is_handshaking() {
            if let Err(e) = conn.complete_io(&mut sock) {
                // Send the alert rustls queued (e.g. "unknown CA"), so the
                // node logs why; then report the failure.
                let _ = conn.write_tls(&mut sock);
                // A plain-TCP node reads the ClientHello as a bad frame
                // and hangs up: say what that most likely means.
                let hint = match e.kind() {
                    io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset => {
                        " (does the node serve TLS? it needs -tlscert)"
                    }
                    _ => "",
                };
                return Err(io::Error::new(
                    e.kind(),
                    format!("TLS handshake: {e}{hint}"),
                ));
            }
        }
        sock.set_read_timeout(old)?;
        sock.set_write_timeout(None)?;
        Ok(StreamOwned::new(conn, sock))
    }
}

fn tls_text(e: &Error) -> String {
    match e {
        Error::Tls(m) => m.clone(),
        other => other.to_string(),
    }
}

/// The name a node's certificate must carry: the host of `addr`
/// (`host:port`, `[v6]:port`), an IP address or a DNS name.
pub fn server_name(addr: &str) -> io::Result<ServerName<'static>> {
    let host = match addr.rsplit_once(':') {
        Some((h, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => addr,
    };
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    ServerName::try_from(host.to_string()).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{host:?} is no name a certificate can carry: {e}"),
        )
    })
}

/// A blocking connection to a node, plain TCP or TLS.
#[derive(Debug)]
pub enum Stream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP, the handshake done.
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Stream {
    /// Connects to `addr` (`host:port`, every address it resolves to in
    /// turn), with TLS when `tls` is given.
    pub fn connect(addr: &str, tls: Option<&TlsClient>) -> io::Result<Stream> {
        let sock = connect_tcp(addr)?;
        match tls {
            None => Ok(Stream::Plain(sock)),
            Some(t) => Ok(Stream::Tls(Box::new(t.handshake(addr, sock)?))),
        }
    }

    /// The TCP socket underneath.
    pub fn socket(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => &s.sock,
        }
    }

    /// Sets the socket's read timeout (`None`: block).
    pub fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        self.socket().set_read_timeout(t)
    }

    /// Shuts the socket down (TLS: after a close_notify, best effort).
    pub fn shutdown(&mut self, how: Shutdown) -> io::Result<()> {
        if let Stream::Tls(s) = self {
            if matches!(how, Shutdown::Write | Shutdown::Both) {
                s.conn.send_close_notify();
                let _ = s.conn.write_tls(&mut s.sock);
            }
        }
        self.socket().shutdown(how)
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// A TCP connection to the first address of `addr` that accepts, with
/// Nagle off (requests are small and latency-bound).
pub(crate) fn connect_tcp(addr: &str) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, "address resolved to nothing");
    for sa in addr.to_socket_addrs()? {
        match TcpStream::connect_timeout(&sa, CONNECT_TIMEOUT) {
            Ok(s) => {
                s.set_nodelay(true)?;
                return Ok(s);
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_name_is_the_host_of_the_address() {
        use std::net::IpAddr;
        let ip = |a: &str| match server_name(a) {
            Ok(ServerName::IpAddress(ip)) => Some(IpAddr::from(ip)),
            _ => None,
        };
        assert_eq!(ip("127.0.0.1:8046"), Some("127.0.0.1".parse().unwrap()));
        assert_eq!(ip("[::1]:8046"), Some("::1".parse().unwrap()));
        assert!(matches!(
            server_name("node.example:9"),
            Ok(ServerName::DnsName(d)) if d.as_ref() == "node.example"
        ));
        assert!(server_name("bad name:1").is_err());
    }

    #[test]
    fn a_ca_file_without_certificates_is_an_error() {
        let e = TlsClient::from_ca_pem(b"not a pem").unwrap_err();
        assert!(e.to_string().contains("no CERTIFICATE"), "{e}");
        let e = TlsClient::from_ca_file(Path::new("/nonexistent/ca.pem")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
    }

    #[test]
    fn an_endless_or_huge_pem_file_is_refused() {
        // /dev/zero never ends: reading stops one byte past the limit.
        let e = TlsClient::from_ca_file(Path::new("/dev/zero")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "TLS: cannot read CA file /dev/zero: larger than 1048576 bytes, the limit for a PEM file"
        );
        let e = read_pem_file(Path::new("/dev/zero")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }
}
