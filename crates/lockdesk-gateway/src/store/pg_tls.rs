//! TLS from the gateway to PostgreSQL: the libpq-style `sslmode` of the store URL, the CA that
//! verifies the server (`[store] ca_file`, or `sslrootcert=` in the URL), and the rustls
//! connector (tokio-postgres-rustls, ring provider) every connection of the store uses: the
//! writer's, the listener's, the pooled readers', the migrations' and `gateway migrate`'s
//! (docs/deploy-postgres.md, "TLS").
//!
//! The modes (tokio-postgres itself knows only disable/prefer/require: the URL's `sslmode` and
//! `sslrootcert` are taken out before it parses the rest):
//! - `disable`: no TLS. `prefer`: TLS when the server offers it, the server not verified,
//!   plain otherwise. `require`: TLS or no connection, the server not verified (logged) — unless
//!   a CA file is given: then, as libpq does, the chain is checked as for `verify-ca`.
//! - `verify-ca`: TLS, the server's certificate chain checked against the CA file (required),
//!   the host name not checked. `verify-full`: TLS, the chain checked against the CA file (the
//!   system trust store without one) and the host name against the certificate.
//! - Nothing said: `verify-full` when a CA is given or any host is not on this machine (its
//!   traffic crosses a network; a server without TLS is refused with how to fix it), `disable`
//!   when every host is this machine's (a Unix socket, `localhost`, a loopback address: the
//!   traffic never leaves it, and PostgreSQL serves no TLS on sockets).
//!
//! Must not: connect without verifying the server unless the URL says a mode that does not
//! verify; widen the trust beyond the CA file (or the system store for verify-full without one);
//! quote the URL, or anything of the server's certificate, in an error.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres::config::Host;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::StoreError;

/// libpq's `sslmode` values (docs/deploy-postgres.md, "TLS").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(s: &str) -> Option<SslMode> {
        Some(match s {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    /// Its name in a URL (`verify-full`).
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// What tokio-postgres is told: whether it asks for TLS and whether it may do without.
    fn wire(self) -> tokio_postgres::config::SslMode {
        match self {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                tokio_postgres::config::SslMode::Require
            }
        }
    }
}

/// The URL's TLS parameters, taken out of it (tokio-postgres refuses `verify-*` and
/// `sslrootcert`): the rest of the URL for tokio-postgres, `sslmode`, `sslrootcert`.
pub(super) struct UrlTls {
    pub rest: String,
    pub mode: Option<SslMode>,
    pub root_cert: Option<String>,
}

/// Splits the TLS parameters off `url` (which starts with `postgres://` or `postgresql://`).
/// Refuses a parameter given twice, an unknown `sslmode`, and libpq's other `ssl*` parameters
/// (client certificates, CRLs, ...: not supported, better refused than ignored). Errors never
/// quote the URL; a parameter's name only when it is plain (`[a-z_]`).
pub(super) fn take_url_params(url: &str) -> Result<UrlTls, StoreError> {
    let settings = |m: String| StoreError::Settings(m);
    // tokio-postgres reads the user up to the first '@', then the host, then the path, then
    // '?': the query starts at the first '?' after the '@' (if any).
    let after_scheme = url.find("://").map(|i| i + 3).unwrap_or(0);
    let from = url[after_scheme..]
        .find('@')
        .map(|i| after_scheme + i)
        .unwrap_or(after_scheme);
    let Some(q) = url[from..].find('?').map(|i| from + i) else {
        return Ok(UrlTls {
            rest: url.to_owned(),
            mode: None,
            root_cert: None,
        });
    };
    let mut mode = None;
    let mut root_cert = None;
    let mut kept: Vec<&str> = Vec::new();
    for pair in url[q + 1..].split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = percent_decode(key)
            .ok_or_else(|| settings("the store URL has a parameter that is not UTF-8".into()))?;
        match key.as_str() {
            "sslmode" => {
                let value = percent_decode(value).unwrap_or_default();
                let parsed = SslMode::parse(&value).ok_or_else(|| {
                    settings(
                        "the store URL's sslmode is not one of disable, prefer, require, \
                         verify-ca, verify-full"
                            .into(),
                    )
                })?;
                if mode.replace(parsed).is_some() {
                    return Err(settings("the store URL gives sslmode twice".into()));
                }
            }
            "sslrootcert" => {
                let value = percent_decode(value)
                    .ok_or_else(|| settings("the store URL's sslrootcert is not UTF-8".into()))?;
                if value.is_empty() {
                    return Err(settings("the store URL's sslrootcert is empty".into()));
                }
                if root_cert.replace(value).is_some() {
                    return Err(settings("the store URL gives sslrootcert twice".into()));
                }
            }
            other if other.starts_with("ssl") && other != "sslnegotiation" => {
                let shown = if other.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
                    format!("the store URL's {other} is not supported")
                } else {
                    "the store URL has an unsupported ssl parameter".to_owned()
                };
                return Err(settings(format!(
                    "{shown} (TLS settings: sslmode and sslrootcert, or [store] ca_file)"
                )));
            }
            _ => kept.push(pair),
        }
    }
    let mut rest = url[..q].to_owned();
    if !kept.is_empty() {
        rest.push('?');
        rest.push_str(&kept.join("&"));
    }
    Ok(UrlTls {
        rest,
        mode,
        root_cert,
    })
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Where the trusted CAs come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrustRoots {
    /// None given: verify-full uses the system's trust store; verify-ca refuses to start.
    Unset,
    /// A PEM file of CA certificates (`[store] ca_file` or `sslrootcert=PATH`).
    File(PathBuf),
    /// `sslrootcert=system`: the system trust store (libpq's spelling; verify-full only).
    System,
}

/// How the store's connections do TLS, decided from the URL and the settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsPolicy {
    /// What was asked for, or the default chosen.
    pub mode: SslMode,
    /// Whether `mode` is the default (nothing said in the URL).
    pub defaulted: bool,
    pub roots: TrustRoots,
    /// Whether every host is on this machine (a Unix socket or a loopback address).
    pub local: bool,
}

fn is_local_host(host: &Host) -> bool {
    match host {
        Host::Unix(_) => true,
        Host::Tcp(name) => {
            let name = name.trim_end_matches('.');
            name.eq_ignore_ascii_case("localhost")
                || name
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
    }
}

impl TlsPolicy {
    /// Decides the mode for `config`'s hosts (`explicit` from the URL) and refuses combinations
    /// that cannot mean what they say.
    pub(super) fn decide(
        config: &tokio_postgres::Config,
        explicit: Option<SslMode>,
        roots: TrustRoots,
    ) -> Result<TlsPolicy, StoreError> {
        let settings = |m: &str| Err(StoreError::Settings(m.to_owned()));
        let local = config.get_hosts().iter().all(is_local_host)
            && config.get_hostaddrs().iter().all(|ip| ip.is_loopback());
        let any_socket = config
            .get_hosts()
            .iter()
            .any(|h| matches!(h, Host::Unix(_)));
        let mode = match explicit {
            Some(mode) => mode,
            None if roots != TrustRoots::Unset || !local => SslMode::VerifyFull,
            None => SslMode::Disable,
        };
        let has_file = matches!(roots, TrustRoots::File(_));
        match mode {
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull if any_socket => {
                let asked = match explicit {
                    Some(_) => format!("sslmode={}", mode.as_str()),
                    None if roots != TrustRoots::Unset => "a CA file (verify-full)".to_owned(),
                    None => "a host on another machine (verify-full)".to_owned(),
                };
                return settings(&format!(
                    "{asked} asks for TLS but the store URL names a Unix socket, where \
                     PostgreSQL serves no TLS: connect over TCP, or to the socket alone \
                     without sslmode and CA"
                ));
            }
            SslMode::Disable | SslMode::Prefer if roots != TrustRoots::Unset => {
                return settings(&format!(
                    "a CA to verify the server is given ([store] ca_file or sslrootcert) but \
                     sslmode={} does not verify it: say sslmode=verify-full, or drop the CA",
                    mode.as_str()
                ));
            }
            SslMode::Require | SslMode::VerifyCa if roots == TrustRoots::System => {
                return settings(&format!(
                    "sslrootcert=system trusts every public CA, so it needs the host name \
                     checked: say sslmode=verify-full (not {})",
                    mode.as_str()
                ));
            }
            SslMode::VerifyCa if !has_file => {
                return settings(
                    "sslmode=verify-ca needs the CA file that issued the server's certificate \
                     ([store] ca_file or sslrootcert=PATH)",
                );
            }
            _ => {}
        }
        Ok(TlsPolicy {
            mode,
            defaulted: explicit.is_none(),
            roots,
            local,
        })
    }

    /// What tokio-postgres is told (asks for TLS, may do without it).
    pub(super) fn wire_mode(&self) -> tokio_postgres::config::SslMode {
        self.mode.wire()
    }

    /// Whether the server's certificate chain is checked (verify-*, and require with a CA file,
    /// as libpq does).
    pub fn verifies_chain(&self) -> bool {
        match self.mode {
            SslMode::VerifyCa | SslMode::VerifyFull => true,
            SslMode::Require => matches!(self.roots, TrustRoots::File(_)),
            SslMode::Disable | SslMode::Prefer => false,
        }
    }

    /// The rustls connector for this policy (reads the CA file or the system trust store: file
    /// I/O, call off the executor).
    pub(super) fn connector(&self) -> Result<MakeRustlsConnect, StoreError> {
        let provider = lockdesk_tls::provider();
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| StoreError::Settings(format!("TLS set-up: {e}")))?;
        let roots = || -> Result<Arc<RootCertStore>, StoreError> {
            let mut store = RootCertStore::empty();
            match &self.roots {
                TrustRoots::File(path) => {
                    for cert in load_ca_file(path)? {
                        // load_ca_file checked each one already.
                        store.add(cert).map_err(|e| {
                            StoreError::Settings(format!("the CA file {}: {e}", path.display()))
                        })?;
                    }
                }
                TrustRoots::Unset | TrustRoots::System => {
                    store = lockdesk_tls::system_roots();
                    if store.is_empty() {
                        return Err(StoreError::Settings(
                            "sslmode=verify-full without a CA file uses the system trust \
                             store, which is empty here: give the CA that issued the server's \
                             certificate ([store] ca_file or sslrootcert=PATH)"
                                .into(),
                        ));
                    }
                }
            }
            Ok(Arc::new(store))
        };
        let webpki =
            |provider: Arc<CryptoProvider>| -> Result<Arc<WebPkiServerVerifier>, StoreError> {
                WebPkiServerVerifier::builder_with_provider(roots()?, provider)
                    .build()
                    .map_err(|e| StoreError::Settings(format!("TLS set-up: {e}")))
            };
        let config = match self.mode {
            SslMode::VerifyFull => builder
                .with_webpki_verifier(webpki(provider)?)
                .with_no_client_auth(),
            SslMode::VerifyCa | SslMode::Require if self.verifies_chain() => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Relaxed {
                    chain: Some(webpki(provider.clone())?),
                    provider,
                }))
                .with_no_client_auth(),
            SslMode::Require | SslMode::Prefer => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Relaxed {
                    chain: None,
                    provider,
                }))
                .with_no_client_auth(),
            // Never used: tokio-postgres does not ask for TLS. Trusts nothing, to be sure.
            SslMode::Disable | SslMode::VerifyCa => builder
                .with_root_certificates(RootCertStore::empty())
                .with_no_client_auth(),
        };
        Ok(MakeRustlsConnect::new(config))
    }

    /// Says in the log how the store's connections are protected: a warning when the server is
    /// not verified, or the traffic may cross a network in clear.
    pub(super) fn log(&self) {
        let mode = self.mode.as_str();
        let defaulted = self.defaulted;
        match self.mode {
            SslMode::Disable if !self.local => tracing::warn!(
                sslmode = mode,
                "the connections to PostgreSQL are not encrypted, and the server is on \
                 another machine: anyone on the network path can read and change them \
                 (docs/deploy-postgres.md, TLS)"
            ),
            SslMode::Prefer if !self.local => tracing::warn!(
                sslmode = mode,
                "the connections to PostgreSQL use TLS only if the server offers it, and the \
                 server is not verified: say sslmode=verify-full (docs/deploy-postgres.md, TLS)"
            ),
            SslMode::Require if !self.verifies_chain() => tracing::warn!(
                sslmode = mode,
                "the connections to PostgreSQL are encrypted but the server is not verified: \
                 anyone on the network path can pose as it; say sslmode=verify-full with a \
                 CA file (docs/deploy-postgres.md, TLS)"
            ),
            SslMode::VerifyCa | SslMode::Require => tracing::info!(
                sslmode = mode,
                "PostgreSQL over TLS: the server's certificate is checked against the CA \
                 file, not its host name"
            ),
            SslMode::VerifyFull => tracing::info!(
                sslmode = mode,
                defaulted,
                system_roots = !matches!(self.roots, TrustRoots::File(_)),
                "PostgreSQL over TLS: the server's certificate and host name are verified"
            ),
            SslMode::Disable | SslMode::Prefer => tracing::info!(
                sslmode = mode,
                defaulted,
                "PostgreSQL on this machine, without TLS"
            ),
        }
    }
}

/// Reads the CA file ([`lockdesk_tls::load_ca_file`]: bounded, every certificate checked, a
/// file with none refused), its error naming where the setting comes from.
pub(super) fn load_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, StoreError> {
    lockdesk_tls::load_ca_file(path).map_err(|e| {
        StoreError::Settings(format!(
            "the CA file {} ([store] ca_file / sslrootcert): {}",
            e.path, e.message
        ))
    })
}

/// The modes that verify less than verify-full. Either way the handshake's signatures are
/// checked against the server's certificate (with the provider's algorithms, as webpki's
/// verifier does), so the session is at least with whoever holds that certificate's key.
#[derive(Debug)]
struct Relaxed {
    /// `Some`: verify-ca (and require with a CA file): the chain must lead to the CA file,
    /// whatever host name the certificate is for; validity and usage as verify-full.
    /// `None`: prefer and require without a CA: any certificate is accepted (what those modes
    /// mean; the log says so).
    chain: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Relaxed {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            // webpki checks the name last: the chain, validity and usage passed.
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// How to reach the store's database: the client configuration (its `sslmode` set from the
/// [`TlsPolicy`]) and the TLS connector. Every connection of the store is made from one.
#[derive(Clone)]
pub struct PgConnect {
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    policy: TlsPolicy,
}

/// The stream of a connection made by a [`PgConnect`] (plain or TLS).
pub type PgStream = <MakeRustlsConnect as MakeTlsConnect<tokio_postgres::Socket>>::Stream;

impl PgConnect {
    pub(super) fn new(
        config: tokio_postgres::Config,
        policy: TlsPolicy,
    ) -> Result<PgConnect, StoreError> {
        let tls = policy.connector()?;
        Ok(PgConnect {
            config,
            tls,
            policy,
        })
    }

    /// The client configuration (no secret is shown by its `Debug`: tokio-postgres redacts the
    /// password).
    pub fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    /// How TLS is done.
    pub fn policy(&self) -> &TlsPolicy {
        &self.policy
    }

    /// The TLS connector (for a pool's manager).
    pub fn tls(&self) -> MakeRustlsConnect {
        self.tls.clone()
    }

    /// The same, connecting as `application_name` (`lockdesk-migrate`, a benchmark's).
    pub fn with_application_name(&self, name: &str) -> PgConnect {
        let mut other = self.clone();
        other.config.application_name(name);
        other
    }

    /// Opens one connection; the caller drives the returned connection (a task).
    pub async fn connect(
        &self,
    ) -> Result<
        (
            tokio_postgres::Client,
            tokio_postgres::Connection<tokio_postgres::Socket, PgStream>,
        ),
        tokio_postgres::Error,
    > {
        self.config.connect(self.tls.clone()).await
    }
}

/// A clear account of a connection error that TLS caused (`None` for any other): the server
/// does not offer TLS, its certificate is not from the trusted CA, not for the host name, out
/// of date, or the handshake failed. Never quotes the certificate (the server's bytes).
pub(super) fn describe(e: &tokio_postgres::Error) -> Option<String> {
    use std::error::Error as _;
    // tokio-postgres says "error performing TLS handshake"; the why is in its source.
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    if text.contains("server does not support TLS") {
        return Some(
            "the server does not offer TLS, and the store's sslmode requires it: turn ssl on \
             in the server's postgresql.conf (docs/deploy-postgres.md, TLS), or, for a server \
             reached only over a trusted network, say sslmode=disable in the store URL"
                .into(),
        );
    }
    let mut rustls_error = None;
    let mut source = e.source();
    while let Some(s) = source {
        if let Some(r) = s.downcast_ref::<rustls::Error>() {
            rustls_error = Some(r);
            break;
        }
        if let Some(r) = s
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            rustls_error = Some(r);
            break;
        }
        source = s.source();
    }
    let Some(r) = rustls_error else {
        // Another failure during the handshake (the connection cut, say): tokio-postgres's
        // own words and their causes (no certificate bytes, no secret).
        return e
            .to_string()
            .starts_with("error performing TLS handshake")
            .then(|| format!("TLS to PostgreSQL: {text}"));
    };
    let said = match r {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                "the server's certificate is not issued by the CA the gateway trusts (the \
                 [store] ca_file / sslrootcert file, or the system trust store without one)"
                    .to_owned()
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                "the server's certificate is not valid for the host name in the store URL \
                 (sslmode=verify-full checks it): connect by a name the certificate holds"
                    .to_owned()
            }
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. } => {
                "the server's certificate is out of date (expired or not valid yet; check the \
                 clocks too)"
                    .to_owned()
            }
            CertificateError::Revoked => "the server's certificate is revoked".to_owned(),
            _ => "the server's certificate is refused (not a valid server certificate from the \
                  trusted CA)"
                .to_owned(),
        },
        rustls::Error::AlertReceived(alert) => {
            format!("the server ended the TLS handshake ({alert:?})")
        }
        other => format!("the TLS handshake with the server failed ({other})"),
    };
    Some(format!("TLS to PostgreSQL: {said}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn take(url: &str) -> Result<UrlTls, String> {
        take_url_params(url).map_err(|e| e.to_string())
    }

    #[test]
    fn the_tls_parameters_are_taken_out_of_the_url_and_the_rest_kept_as_it_was() {
        let t =
            take("postgres://u@h:5/db?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem").unwrap();
        assert_eq!(t.rest, "postgres://u@h:5/db");
        assert_eq!(t.mode, Some(SslMode::VerifyFull));
        assert_eq!(t.root_cert.as_deref(), Some("/etc/ca.pem"));
        let t = take("postgres://u@h/db?connect_timeout=3&sslmode=verify-ca&host=%2Ftmp").unwrap();
        assert_eq!(t.rest, "postgres://u@h/db?connect_timeout=3&host=%2Ftmp");
        assert_eq!(t.mode, Some(SslMode::VerifyCa));
        let t = take("postgresql://u@h/db").unwrap();
        assert_eq!(
            (t.rest.as_str(), t.mode, t.root_cert),
            ("postgresql://u@h/db", None, None)
        );
        // A '?' in the user part is not the query.
        let t = take("postgres://u?x@h/db?sslmode=require").unwrap();
        assert_eq!(t.rest, "postgres://u?x@h/db");
        assert_eq!(t.mode, Some(SslMode::Require));
    }

    #[test]
    fn bad_or_unsupported_tls_parameters_are_refused_without_quoting_the_url() {
        for (url, expected) in [
            ("postgres://u@h/db?sslmode=allow", "not one of disable"),
            ("postgres://u@h/db?sslmode=secret-ish", "not one of disable"),
            (
                "postgres://u@h/db?sslmode=require&sslmode=disable",
                "sslmode twice",
            ),
            (
                "postgres://u@h/db?sslrootcert=a&sslrootcert=b",
                "sslrootcert twice",
            ),
            ("postgres://u@h/db?sslrootcert=", "sslrootcert is empty"),
            (
                "postgres://u@h/db?sslcert=c.pem",
                "sslcert is not supported",
            ),
            ("postgres://u@h/db?sslkey=k.pem", "sslkey is not supported"),
            ("postgres://u@h/db?ssl%0Akey=k", "unsupported ssl parameter"),
        ] {
            let message = take(url)
                .err()
                .unwrap_or_else(|| panic!("{url} was accepted"));
            assert!(message.contains(expected), "{url}: {message}");
            assert!(
                !message.contains("u@h"),
                "{url}: the URL is quoted: {message}"
            );
        }
    }

    fn policy(url: &str, roots: TrustRoots) -> Result<TlsPolicy, String> {
        let t = take(url)?;
        let config = tokio_postgres::Config::from_str(&t.rest).map_err(|e| e.to_string())?;
        TlsPolicy::decide(&config, t.mode, roots).map_err(|e| e.to_string())
    }

    #[test]
    fn the_default_verifies_a_server_on_another_machine_and_leaves_a_local_one_as_it_was() {
        let ca = || TrustRoots::File("/ca.pem".into());
        for (url, roots, mode) in [
            (
                "postgres://u@db.internal/db",
                TrustRoots::Unset,
                SslMode::VerifyFull,
            ),
            (
                "postgres://u@10.0.0.5/db",
                TrustRoots::Unset,
                SslMode::VerifyFull,
            ),
            (
                "postgres://u@127.0.0.1:5432/db",
                TrustRoots::Unset,
                SslMode::Disable,
            ),
            (
                "postgres://u@localhost/db",
                TrustRoots::Unset,
                SslMode::Disable,
            ),
            (
                "postgres://u@[::1]:5432/db",
                TrustRoots::Unset,
                SslMode::Disable,
            ),
            (
                "postgres://u@%2Frun%2Fpostgresql/db",
                TrustRoots::Unset,
                SslMode::Disable,
            ),
            // A local name reached at another address, a CA given: verified.
            (
                "postgres://u@localhost/db?hostaddr=10.0.0.5",
                TrustRoots::Unset,
                SslMode::VerifyFull,
            ),
            ("postgres://u@127.0.0.1/db", ca(), SslMode::VerifyFull),
            (
                "postgres://u@db.internal/db?sslmode=disable",
                TrustRoots::Unset,
                SslMode::Disable,
            ),
        ] {
            let p = policy(url, roots).unwrap();
            assert_eq!(p.mode, mode, "{url}");
            assert_eq!(p.defaulted, !url.contains("sslmode"), "{url}");
        }
        assert!(policy("postgres://u@h/db?sslmode=require", ca())
            .unwrap()
            .verifies_chain());
        assert!(
            !policy("postgres://u@h/db?sslmode=require", TrustRoots::Unset)
                .unwrap()
                .verifies_chain()
        );
    }

    #[test]
    fn settings_that_cannot_mean_what_they_say_are_refused() {
        let ca = || TrustRoots::File("/ca.pem".into());
        for (url, roots, expected) in [
            (
                "postgres://u@h/db?sslmode=verify-ca",
                TrustRoots::Unset,
                "needs the CA file",
            ),
            (
                "postgres://u@h/db?sslmode=verify-ca",
                TrustRoots::System,
                "say sslmode=verify-full",
            ),
            (
                "postgres://u@h/db?sslmode=require",
                TrustRoots::System,
                "say sslmode=verify-full",
            ),
            (
                "postgres://u@h/db?sslmode=disable",
                ca(),
                "does not verify it",
            ),
            (
                "postgres://u@h/db?sslmode=prefer",
                ca(),
                "does not verify it",
            ),
            (
                "postgres://u@%2Frun%2Fpostgresql/db?sslmode=verify-full",
                ca(),
                "sslmode=verify-full asks for TLS but the store URL names a Unix socket",
            ),
            (
                "postgres://u@%2Frun%2Fpostgresql/db",
                ca(),
                "a CA file (verify-full) asks for TLS but the store URL names a Unix socket",
            ),
        ] {
            let message = policy(url, roots)
                .err()
                .unwrap_or_else(|| panic!("{url} was accepted"));
            assert!(message.contains(expected), "{url}: {message}");
        }
    }

    #[test]
    fn a_refused_ca_file_is_named_with_the_setting_it_comes_from() {
        // What a CA file must hold is lockdesk-tls's (and tested there); the store's error names
        // the file and the settings that give it.
        let dir = tempfile::tempdir().unwrap();
        let key_only = dir.path().join("key.pem");
        std::fs::write(
            &key_only,
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let message = load_ca_file(&key_only).unwrap_err().to_string();
        assert!(
            message.contains(&format!(
                "the CA file {} ([store] ca_file / sslrootcert): no PEM certificate in it",
                key_only.display()
            )),
            "{message}"
        );
    }
}
