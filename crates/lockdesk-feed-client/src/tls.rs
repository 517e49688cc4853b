//! The rustls client configuration for `wss://`: the operating system's roots plus any the caller
//! trusts, the ring provider (built with cc only), TLS 1.2 and 1.3.

use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};

/// Builds the configuration; reads the system trust store (file I/O: call off the executor).
pub(crate) fn client_config(
    extra: &[CertificateDer<'static>],
) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for e in &native.errors {
        tracing::debug!(error = %e, "skipping part of the system trust store");
    }
    let (added, ignored) = roots.add_parsable_certificates(native.certs);
    tracing::debug!(added, ignored, "system trust roots loaded");
    for cert in extra {
        roots
            .add(cert.clone())
            .map_err(|e| format!("an extra root certificate is not usable: {e}"))?;
    }
    if roots.is_empty() {
        return Err("no trusted root certificate (the system trust store is empty)".into());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The most bytes a CA file may hold (a bundle of a few hundred certificates fits).
pub const MAX_CA_FILE_BYTES: u64 = 1024 * 1024;
/// The most certificates a CA file may hold.
pub const MAX_CA_CERTS: usize = 256;

/// Reads extra trust roots (PEM `CERTIFICATE` blocks) from `path`, for [`crate::Config::extra_roots`]:
/// e.g. the private CA that signed a load balancer's certificate (`[feed] ca_file`). Refuses a
/// missing or unreadable file, one over [`MAX_CA_FILE_BYTES`] or [`MAX_CA_CERTS`], a malformed
/// PEM block, a certificate rustls cannot use as a root, and a file with no certificate at all
/// (a private key alone, say): verification is only ever widened by real certificates.
pub fn load_ca_file(
    path: &std::path::Path,
) -> Result<Vec<CertificateDer<'static>>, crate::ConfigError> {
    use rustls::pki_types::pem::PemObject;
    use std::io::Read;
    let fail = |message: String| crate::ConfigError::CaFile {
        path: path.display().to_string(),
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
