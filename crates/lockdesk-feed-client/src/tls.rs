//! The rustls client configuration for `wss://`: the operating system's roots plus any the caller
//! trusts, the ring provider (built with cc only), TLS 1.2 and 1.3. What a trust setting means
//! (CA files, the system store) lives in lockdesk-tls, shared with the gateway's PostgreSQL TLS.

use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::ClientConfig;

pub use lockdesk_tls::{MAX_CA_CERTS, MAX_CA_FILE_BYTES};

/// Builds the configuration; reads the system trust store (file I/O: call off the executor).
pub(crate) fn client_config(
    extra: &[CertificateDer<'static>],
) -> Result<Arc<ClientConfig>, String> {
    let mut roots = lockdesk_tls::system_roots();
    for cert in extra {
        roots
            .add(cert.clone())
            .map_err(|e| format!("an extra root certificate is not usable: {e}"))?;
    }
    if roots.is_empty() {
        return Err("no trusted root certificate (the system trust store is empty)".into());
    }
    let config = ClientConfig::builder_with_provider(lockdesk_tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Reads extra trust roots for [`crate::Config::extra_roots`] (`[feed] ca_file`): see
/// [`lockdesk_tls::load_ca_file`] for what is refused.
pub fn load_ca_file(
    path: &std::path::Path,
) -> Result<Vec<CertificateDer<'static>>, crate::ConfigError> {
    lockdesk_tls::load_ca_file(path).map_err(|e| crate::ConfigError::CaFile {
        path: e.path,
        message: e.message,
    })
}
