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
