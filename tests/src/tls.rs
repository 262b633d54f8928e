//! [`TlsFiles`]: a node's PEM files.

use std::path::PathBuf;

/// A node's TLS files (PEM), as `-tlscert`, `-tlskey` and `-tlsca` take
/// them; `ca` is also what clients pass as `tlsca=`.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The node's certificate (chain).
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
    /// The CA certificate the node's certificate is signed by.
    pub ca: PathBuf,
}

impl TlsFiles {
    /// A client library TLS setting trusting [`TlsFiles::ca`].
    pub fn client(&self) -> doozer::TlsClient {
        doozer::TlsClient::from_ca_file(&self.ca)
            .unwrap_or_else(|e| panic!("CA {}: {e}", self.ca.display()))
    }
}
