//! TLS for the client port (`-tlscert`, `-tlskey`, `-tlsca`): loading the
//! PEM files at start-up, and moving bytes through a rustls session on a
//! non-blocking socket for the event loop.
//!
//! The event loop keeps its plaintext buffers as they are (frames in,
//! encoded responses out, with the same caps and pausing); a TLS
//! connection only adds a session between those buffers and the socket:
//! [`read()`] behaves like a non-blocking `read` of plaintext, [`write()`]
//! like a non-blocking `write` of it.

use std::io::{self, Read, Write};
use std::ops::DerefMut;
use std::path::Path;
use std::sync::Arc;

use bytes::{Buf, BytesMut};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ConnectionCommon, ServerConfig};

use crate::config::TlsFiles;

/// Plaintext handed to a session per call: bounds what it buffers
/// encrypted beyond the connection's own output buffer.
const SEAL_CHUNK: usize = 64 << 10;

/// A node's TLS material, loaded.
#[derive(Clone)]
pub struct NodeTls {
    /// Serves the client port.
    pub server: Arc<ServerConfig>,
    /// Attaches to other members.
    pub client: doozer::TlsClient,
}

impl std::fmt::Debug for NodeTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeTls").finish_non_exhaustive()
    }
}

impl NodeTls {
    /// Reads and checks the files; the error is one line naming the file.
    pub fn load(files: &TlsFiles) -> Result<NodeTls, String> {
        let server = server_config(&files.cert, &files.key)?;
        let client =
            doozer::TlsClient::from_ca_file(&files.ca).map_err(|e| format!("-tlsca: {e}"))?;
        Ok(NodeTls { server, client })
    }
}

/// The server side: the certificate chain and key from PEM files.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, String> {
    let shown = |p: &Path| p.display().to_string();
    let read = |flag: &str, p: &Path| {
        doozer::tls::read_pem_file(p).map_err(|e| format!("-{flag} {}: cannot read: {e}", shown(p)))
    };
    let cert_pem = read("tlscert", cert)?;
    let key_pem = read("tlskey", key)?;
    server_config_from_pem(&cert_pem, &key_pem).map_err(|e| match e {
        PemError::Cert(why) => format!("-tlscert {}: {why}", shown(cert)),
        PemError::Key(why) => format!("-tlskey {}: {why}", shown(key)),
        PemError::Pair(why) => format!("-tlscert {} / -tlskey {}: {why}", shown(cert), shown(key)),
    })
}

/// Why PEM text is no usable certificate and key, by the file at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PemError {
    /// The certificate file.
    Cert(String),
    /// The key file.
    Key(String),
    /// Both read, but they do not make a server configuration.
    Pair(String),
}

/// The server side from the contents of the PEM files (what
/// [`server_config`] read): a certificate chain and its private key. Any
/// bytes are an error at worst (the fuzz target `tls_pem` checks this).
pub fn server_config_from_pem(
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<Arc<ServerConfig>, PemError> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PemError::Cert(format!("bad PEM: {e}")))?;
    if chain.is_empty() {
        return Err(PemError::Cert("no CERTIFICATE in it".into()));
    }
    let key_der = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| PemError::Key(format!("no usable private key: {e}")))?;
    let config = ServerConfig::builder_with_provider(doozer::tls::crypto_provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| PemError::Pair(format!("TLS: {e}")))?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|e| PemError::Pair(e.to_string()))?;
    Ok(Arc::new(config))
}

/// Reads from `sock`, through `session` when the connection is TLS: like
/// a non-blocking `read` of plaintext either way (see [`read`]).
pub fn read_maybe<C: DerefMut<Target = ConnectionCommon<D>>, D>(
    session: Option<&mut C>,
    sock: &mut impl Read,
    buf: &mut [u8],
) -> io::Result<usize> {
    match session {
        Some(s) => read(s, sock, buf),
        None => sock.read(buf),
    }
}

/// Writes `out` to the non-blocking `sock`, through `session` when the
/// connection is TLS, until it is empty or the socket would block (see
/// [`write()`]). A socket that takes nothing is `WriteZero`.
pub fn write_maybe<C: DerefMut<Target = ConnectionCommon<D>>, D>(
    session: Option<&mut C>,
    sock: &mut impl Write,
    out: &mut BytesMut,
) -> io::Result<()> {
    if let Some(s) = session {
        return write(s, sock, out);
    }
    while !out.is_empty() {
        match sock.write(out) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => out.advance(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads plaintext from `session` over the non-blocking `sock`, like a
/// `read`: `Ok(0)` at the end of input (close_notify or EOF), `WouldBlock`
/// once the socket is drained, `InvalidData` when the peer does not speak
/// TLS (or breaks it).
pub fn read<D>(
    session: &mut ConnectionCommon<D>,
    sock: &mut impl Read,
    buf: &mut [u8],
) -> io::Result<usize> {
    loop {
        match session.reader().read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            // The socket ended without close_notify: an end all the same.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
            Err(e) => return Err(e),
        }
        match session.read_tls(sock) {
            Ok(0) => return Ok(0),
            Ok(_) => {
                session
                    .process_new_packets()
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Moves plaintext from `out` through `session` to the non-blocking
/// `sock` until both are empty or the socket would block. Handshake
/// records go out too. Errors are the socket's.
pub fn write<D>(
    session: &mut ConnectionCommon<D>,
    sock: &mut impl Write,
    out: &mut BytesMut,
) -> io::Result<()> {
    loop {
        while session.wants_write() {
            match session.write_tls(sock) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if out.is_empty() {
            return Ok(());
        }
        let n = out.len().min(SEAL_CHUNK);
        let taken = session.writer().write(&out[..n])?;
        if taken == 0 {
            // Still handshaking with the session's buffer full: the rest
            // goes once the peer answers.
            return Ok(());
        }
        out.advance(taken);
    }
}
