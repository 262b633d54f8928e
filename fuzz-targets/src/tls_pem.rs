//! The PEM files a node and a client read: `-tlscert` and `-tlskey`
//! ([`server_config_from_pem`]), `-tlsca` and `tlsca=`
//! ([`TlsClient::from_ca_pem`]).
//!
//! Input: `n: u16`, then `n` bytes of certificate file and the rest as
//! the key file; the whole input is also read as a CA file.
//!
//! Invariant: no panic; an error says which file is at fault.

use doozer::TlsClient;
use doozerd::tls::server_config_from_pem;

use crate::input::Input;

/// The `tls_pem` target.
pub fn run(data: &[u8]) {
    let mut input = Input::new(data);
    let n = usize::from(input.u16());
    let cert = input.take(n);
    let key = input.rest();
    let _ = server_config_from_pem(cert, key);
    let _ = TlsClient::from_ca_pem(data);
}

/// Inputs to start from: a CA and a node certificate signed by it with
/// its key, in one input; the node certificate with another key; and a
/// chain of two certificates.
pub fn seeds() -> Vec<Vec<u8>> {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let (Ok(ca_key), Ok(node_key), Ok(other_key)) = (
        KeyPair::generate(),
        KeyPair::generate(),
        KeyPair::generate(),
    ) else {
        return Vec::new();
    };
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap_or_default();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let Ok(ca_cert) = ca.self_signed(&ca_key) else {
        return Vec::new();
    };
    let node = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap_or_default();
    let Ok(node_cert) = node.signed_by(&node_key, &ca_cert, &ca_key) else {
        return Vec::new();
    };
    let input = |cert: &str, key: &str| {
        let mut s = (cert.len() as u16).to_be_bytes().to_vec();
        s.extend_from_slice(cert.as_bytes());
        s.extend_from_slice(key.as_bytes());
        s
    };
    let chain = format!("{}{}", node_cert.pem(), ca_cert.pem());
    vec![
        input(&node_cert.pem(), &node_key.serialize_pem()),
        input(&node_cert.pem(), &other_key.serialize_pem()),
        input(&chain, &node_key.serialize_pem()),
        input(&ca_cert.pem(), ""),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_seed_is_a_usable_pair_and_the_second_is_not() {
        let seeds = seeds();
        let split = |s: &[u8]| {
            let mut input = Input::new(s);
            let n = usize::from(input.u16());
            (input.take(n).to_vec(), input.rest().to_vec())
        };
        let (cert, key) = split(&seeds[0]);
        assert!(server_config_from_pem(&cert, &key).is_ok());
        let (cert, key) = split(&seeds[1]);
        assert!(matches!(
            server_config_from_pem(&cert, &key),
            Err(doozerd::tls::PemError::Pair(_))
        ));
        assert!(TlsClient::from_ca_pem(&seeds[3][2..]).is_ok());
    }
}
