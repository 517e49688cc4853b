//! TLS trust for Lockdesk's clients: the desk's `wss://` feed (lockdesk-feed-client) and the
//! gateway's PostgreSQL connections (lockdesk-gateway's `store::pg_tls`). One home for what a
//! trust setting means: a CA file ([`load_ca_file`]: bounded, every certificate checked, refused
//! by name), the operating system's trust store ([`system_roots`]) and the provider ([`provider`]:
//! ring).
//!
//! Invariant: verification is only ever widened by real certificates: a CA file that holds
//! anything else, or nothing, is refused rather than trusted in part.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;

/// The crypto provider every Lockdesk TLS client uses (ring: built with cc only).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The operating system's trust roots (file I/O: call off the executor). Certificates rustls
/// cannot parse are skipped (logged at debug); the store may be empty.
pub fn system_roots() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for e in &native.errors {
        tracing::debug!(error = %e, "skipping part of the system trust store");
    }
    let (added, ignored) = roots.add_parsable_certificates(native.certs);
    tracing::debug!(added, ignored, "system trust roots loaded");
    roots
}

/// Why a CA file was refused: the file's name (escaped) and the reason, e.g. `the CA file
/// /etc/ca.pem: no PEM certificate in it (...)`. Never quotes the file's contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaFileError {
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for CaFileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the CA file {}: {}", self.path, self.message)
    }
}

impl std::error::Error for CaFileError {}

/// The most bytes a CA file may hold (a bundle of a few hundred certificates fits).
pub const MAX_CA_FILE_BYTES: u64 = 1024 * 1024;
/// The most certificates a CA file may hold.
pub const MAX_CA_CERTS: usize = 256;

/// Reads extra trust roots (PEM `CERTIFICATE` blocks) from `path`, e.g. the private CA that signed a load balancer's certificate (`[feed] ca_file`). Refuses a
/// missing or unreadable file, one over [`MAX_CA_FILE_BYTES`] or [`MAX_CA_CERTS`], a malformed
/// PEM block, a certificate rustls cannot use as a root, and a file with no certificate at all
/// (a private key alone, say): verification is only ever widened by real certificates.
pub fn load_ca_file(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, CaFileError> {
    use rustls::pki_types::pem::PemObject;
    use std::io::Read;
    let fail = |message: String| CaFileError {
        path: path.display().to_string().escape_debug().to_string(),
        message,
    };
    let file = std::fs::File::open(path).map_err(|e| fail(e.to_string()))?;
    let mut bytes = Vec::new();
    file.take(MAX_CA_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| fail(e.to_string()))?;
    if bytes.len() as u64 > MAX_CA_FILE_BYTES {
        return Err(fail(format!(
            "larger than {} KiB: expected PEM certificates",
            MAX_CA_FILE_BYTES / 1024
        )));
    }
    let mut certs = Vec::new();
    for (i, cert) in CertificateDer::pem_slice_iter(&bytes).enumerate() {
        let cert = cert.map_err(|e| fail(format!("certificate {}: {e}", i + 1)))?;
        if certs.len() == MAX_CA_CERTS {
            return Err(fail(format!("more than {MAX_CA_CERTS} certificates")));
        }
        // Refuses what the TLS set-up would refuse, now, with the file's name.
        RootCertStore::empty().add(cert.clone()).map_err(|e| {
            fail(format!(
                "certificate {} is not usable as a root: {e}",
                i + 1
            ))
        })?;
        certs.push(cert.into_owned());
    }
    if certs.is_empty() {
        return Err(fail(
            "no PEM certificate in it (expected -----BEGIN CERTIFICATE-----)".to_owned(),
        ));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &std::path::Path, name: &str, text: &str) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn a_ca_file_holds_real_certificates_or_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let der = ck.cert.der().to_vec();
        use base64::Engine;
        let b64: String = base64::engine::general_purpose::STANDARD
            .encode(&der)
            .as_bytes()
            .chunks(64)
            .map(|l| format!("{}\n", std::str::from_utf8(l).unwrap()))
            .collect();
        let good = format!("-----BEGIN CERTIFICATE-----\n{b64}-----END CERTIFICATE-----\n");
        let ok = write(dir.path(), "ca.pem", &good);
        let certs = load_ca_file(&ok).unwrap();
        assert_eq!(certs.len(), 1);
        assert_eq!(certs[0].as_ref(), der.as_slice());

        let message = |p: &std::path::Path| load_ca_file(p).unwrap_err().to_string();
        let missing = dir.path().join("missing.pem");
        assert!(message(&missing).starts_with(&format!("the CA file {}: ", missing.display())));
        let key_only = write(
            dir.path(),
            "key.pem",
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        );
        assert!(
            message(&key_only).contains("no PEM certificate in it"),
            "{}",
            message(&key_only)
        );
        let broken = write(
            dir.path(),
            "broken.pem",
            "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
        );
        assert!(
            message(&broken).contains("certificate 1:"),
            "{}",
            message(&broken)
        );
        let garbage = write(
            dir.path(),
            "garbage.pem",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        );
        assert!(
            message(&garbage).contains("certificate 1 is not usable as a root"),
            "{}",
            message(&garbage)
        );
        let big = write(
            dir.path(),
            "big.pem",
            &"x".repeat(MAX_CA_FILE_BYTES as usize + 1),
        );
        assert!(
            message(&big).contains("larger than 1024 KiB"),
            "{}",
            message(&big)
        );
        let many = write(dir.path(), "many.pem", &good.repeat(MAX_CA_CERTS + 1));
        assert!(
            message(&many).contains("more than 256 certificates"),
            "{}",
            message(&many)
        );
    }
}
