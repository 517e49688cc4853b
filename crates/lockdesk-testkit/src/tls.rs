//! Throw-away certificate authorities for the test servers that speak TLS (nginx.rs's load
//! balancer, pg.rs's PostgreSQL): a CA made in-process by the test (rcgen, ring) and server
//! certificates it signs, as PEM text. What a client is told to trust is such a CA's
//! certificate: verification is never turned off in a test.
//!
//! Must not: be used outside tests (the keys live in memory and in the tests' folders).

use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

/// `der` as a PEM block labelled `label` (64 columns).
pub fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// A CA that exists for one test.
pub struct ThrowAwayCa {
    cert: rcgen::Certificate,
    key: KeyPair,
}

/// A server certificate a [`ThrowAwayCa`] signed, and its key.
pub struct ServerCert {
    /// The server's certificate then the CA's (PEM).
    pub chain_pem: String,
    /// The server's private key (PKCS#8 PEM).
    pub key_pem: String,
}

impl Default for ThrowAwayCa {
    fn default() -> Self {
        ThrowAwayCa::new()
    }
}

impl ThrowAwayCa {
    /// A new CA with a new key (nothing else trusts it).
    pub fn new() -> ThrowAwayCa {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "Lockdesk throw-away test CA");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).expect("CA certificate");
        ThrowAwayCa { cert, key }
    }

    /// The CA's certificate (PEM): what a client trusts.
    pub fn cert_pem(&self) -> String {
        pem("CERTIFICATE", self.cert.der())
    }

    /// A server certificate for `names` (host names, or IP addresses: those become IP
    /// subject alternative names), the first one also its common name.
    pub fn server(&self, names: &[&str]) -> ServerCert {
        let key = KeyPair::generate().expect("server key");
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .expect("server params");
        if let Some(first) = names.first() {
            params.distinguished_name.push(DnType::CommonName, *first);
        }
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("server certificate");
        ServerCert {
            chain_pem: format!("{}{}", pem("CERTIFICATE", cert.der()), self.cert_pem()),
            key_pem: pem("PRIVATE KEY", &key.serialize_der()),
        }
    }
}
