//! Field-by-field validation. Every problem is reported against the field it concerns (a dotted
//! path such as `feed.url` or `trust.0.key`), so the Settings screen can show it beside the input.

use std::path::Path;

use serde::Serialize;

use crate::{Config, MAX_FEED_URLS};

/// One problem with one field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// Dotted path of the field: `feed.url`, `trust.0.issuer`, `decryption.keys.1`, ...
    pub field: String,
    /// What is wrong and what was expected; lowercase, no trailing period.
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Checks the content of key files. The verification engine supplies the real parser; the
/// default only checks that the file is there, readable and of a plausible size.
pub trait KeyFileCheck {
    /// A brand's public key (PEM, base64 DER, JWK or JWKS): `Err` says what is wrong.
    fn check_public(&self, path: &Path) -> Result<(), String> {
        check_readable(path)
    }
    /// The desk's private decryption key (PEM PKCS#8 or PKCS#1).
    fn check_private(&self, path: &Path) -> Result<(), String> {
        check_readable(path)
    }
}

/// Checks presence and size only.
pub struct FilePresence;
impl KeyFileCheck for FilePresence {}

const MAX_KEY_FILE_BYTES: u64 = 1024 * 1024;

/// The shortest subscriber credential: the gateway's own minimum
/// (`lockdesk_gateway::config::MIN_CREDENTIAL_LEN`), so Settings never accepts a credential no
/// gateway could have issued.
pub const MIN_CREDENTIAL_LEN: usize = 16;

fn check_readable(path: &Path) -> Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".to_owned(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        _ => format!("cannot read it: {e}"),
    })?;
    if !meta.is_file() {
        return Err("expected a file, found a folder or device".to_owned());
    }
    if meta.len() == 0 {
        return Err("the file is empty".to_owned());
    }
    if meta.len() > MAX_KEY_FILE_BYTES {
        return Err("the file is too large to be a key (over 1 MiB)".to_owned());
    }
    std::fs::File::open(path).map_err(|e| format!("cannot open it: {e}"))?;
    Ok(())
}

fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

/// Validates every field; an empty list means the configuration is usable.
pub fn validate(config: &Config, keys: &dyn KeyFileCheck) -> Vec<FieldError> {
    let mut errors = Vec::new();
    validate_feed(config, &mut errors);
    validate_iadvize(config, &mut errors);

    let mut seen_issuers = std::collections::HashSet::new();
    for (i, t) in config.trust.iter().enumerate() {
        let field = format!("trust.{i}.issuer");
        let issuer = t.issuer.trim();
        if issuer.is_empty() {
            errors.push(FieldError::new(
                field,
                "enter the issuer (`iss`) the brand puts in its tokens",
            ));
        } else if issuer != t.issuer {
            errors.push(FieldError::new(
                field,
                "remove the spaces around the issuer: it must match `iss` exactly",
            ));
        } else if t.issuer.chars().count() > 255 || has_control(&t.issuer) {
            errors.push(FieldError::new(
                field,
                "expected at most 255 characters without control characters",
            ));
        } else if !seen_issuers.insert(t.issuer.clone()) {
            errors.push(FieldError::new(
                field,
                "this issuer is listed twice: give it one key source (a JWKS holds several keys)",
            ));
        }
        let field = format!("trust.{i}.key");
        let key = t.key.trim();
        if key.is_empty() {
            errors.push(FieldError::new(
                field,
                "enter the brand's public key file or its https:// JWKS address",
            ));
        } else if key.starts_with("http://") {
            errors.push(FieldError::new(
                field,
                "a key set must be fetched over https://, never plain http",
            ));
        } else if key.starts_with("https://") {
            match url::Url::parse(key) {
                Ok(u) if u.host_str().is_some() => {}
                _ => errors.push(FieldError::new(field, "expected a valid https:// address")),
            }
        } else if let Err(msg) = keys.check_public(Path::new(key)) {
            errors.push(FieldError::new(field, format!("{key}: {msg}")));
        }
    }

    for (i, k) in config.decryption.keys.iter().enumerate() {
        let field = format!("decryption.keys.{i}");
        let key = k.trim();
        if key.is_empty() {
            errors.push(FieldError::new(
                field,
                "enter the path of the desk's private key (PEM)",
            ));
        } else if let Err(msg) = keys.check_private(Path::new(key)) {
            errors.push(FieldError::new(field, format!("{key}: {msg}")));
        }
    }

    let v = &config.verification;
    if v.leeway_secs > 300 {
        errors.push(FieldError::new(
            "verification.leeway_secs",
            "expected a clock-skew leeway between 0 and 300 seconds",
        ));
    }
    if !(1..=1440).contains(&v.session_lifetime_mins) {
        errors.push(FieldError::new(
            "verification.session_lifetime_mins",
            "expected a session lifetime between 1 and 1440 minutes",
        ));
    }
    if !(1..=86_400).contains(&v.max_token_lifetime_secs) {
        errors.push(FieldError::new(
            "verification.max_token_lifetime_secs",
            "expected a maximum token lifetime between 1 and 86400 seconds",
        ));
    }
    errors
}

fn validate_feed(config: &Config, errors: &mut Vec<FieldError>) {
    if let Some(ca_file) = &config.feed.ca_file {
        if let Err(message) = check_ca_file(ca_file) {
            errors.push(FieldError::new("feed.ca_file", message));
        }
    }
    let urls: &[String] = config.feed.url.as_ref().map_or(&[], |u| u.as_slice());
    let credential = config.feed.credential.as_deref().unwrap_or("");
    if urls.iter().all(|u| u.trim().is_empty()) {
        if !credential.is_empty() {
            errors.push(FieldError::new(
                "feed.url",
                "enter the gateway's feed address to use this credential",
            ));
        }
        return;
    }
    if urls.len() > MAX_FEED_URLS {
        errors.push(FieldError::new(
            "feed.url",
            format!(
                "expected at most {MAX_FEED_URLS} gateway addresses (the instances of one gateway)"
            ),
        ));
    } else {
        // One address is `feed.url`; each of several is `feed.url.N` (0-based, as `trust.N`).
        let several = urls.len() > 1;
        let mut seen = std::collections::HashSet::new();
        for (i, raw) in urls.iter().enumerate() {
            let field = if several {
                format!("feed.url.{i}")
            } else {
                "feed.url".to_owned()
            };
            let url = raw.trim();
            if url.is_empty() {
                errors.push(FieldError::new(
                    field,
                    "this address is empty: enter a gateway instance's feed address or remove it",
                ));
            } else if let Err(message) = check_feed_url(url) {
                errors.push(FieldError::new(field, message));
            } else if !seen.insert(url) {
                errors.push(FieldError::new(field, "this address is listed twice"));
            }
        }
    }
    if credential.is_empty() {
        errors.push(FieldError::new(
            "feed.credential",
            "enter the subscriber credential the gateway issued to this desk",
        ));
    } else if credential
        .chars()
        .any(|c| c.is_whitespace() || c.is_control())
    {
        errors.push(FieldError::new(
            "feed.credential",
            "the credential cannot contain spaces or control characters (was it pasted with a line break?)",
        ));
    } else if !credential.bytes().all(|b| b.is_ascii_graphic()) {
        // The gateway's rule (lockdesk-gateway's check_credential): it travels in an HTTP
        // header, so a credential the gateway could issue is printable ASCII.
        errors.push(FieldError::new(
            "feed.credential",
            "expected printable ASCII characters only (the gateway issues no other)",
        ));
    } else if credential.len() < MIN_CREDENTIAL_LEN || credential.len() > 512 {
        // The gateway refuses a credential shorter than 16 characters
        // (lockdesk_gateway::config::MIN_CREDENTIAL_LEN): a shorter one can never connect.
        errors.push(FieldError::new(
            "feed.credential",
            "expected between 16 and 512 characters (the gateway issues at least 16)",
        ));
    }
}

/// `[feed] ca_file`: a readable file of PEM certificates (the feed client parses each one when
/// it starts: `lockdesk_feed_client::load_ca_file`).
fn check_ca_file(path: &str) -> Result<(), String> {
    if path.trim().is_empty() {
        return Err(
            "this path is empty: enter the CA certificate file (PEM) or remove the setting"
                .to_owned(),
        );
    }
    if has_control(path) {
        return Err("the path contains control characters".to_owned());
    }
    let path = Path::new(path);
    check_readable(path)?;
    let text = std::fs::read(path).map_err(|e| format!("cannot read it: {e}"))?;
    if !text
        .windows(b"-----BEGIN CERTIFICATE-----".len())
        .any(|w| w == b"-----BEGIN CERTIFICATE-----")
    {
        return Err(
            "expected PEM certificates (-----BEGIN CERTIFICATE-----): the CA that signed the \
             gateway's or load balancer's certificate"
                .to_owned(),
        );
    }
    Ok(())
}

/// One feed address: `wss://`, or `ws://` to this machine; no user name or password.
fn check_feed_url(url: &str) -> Result<(), String> {
    let u = url::Url::parse(url)
        .map_err(|e| format!("expected an address like wss://gateway.example.com/v1/feed ({e})"))?;
    match u.scheme() {
        "wss" => {}
        "ws" => {
            let loopback = match u.host() {
                Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
                Some(url::Host::Ipv4(a)) => a.is_loopback(),
                Some(url::Host::Ipv6(a)) => a.is_loopback(),
                None => false,
            };
            if !loopback {
                return Err(
                    "use wss:// for a remote gateway (ws:// is only allowed on this machine)"
                        .into(),
                );
            }
        }
        other => {
            return Err(format!(
                "expected a ws:// or wss:// address, got {other}://"
            ))
        }
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(
            "remove the user name or password from the address: the credential has its own field"
                .into(),
        );
    }
    Ok(())
}

fn validate_iadvize(config: &Config, errors: &mut Vec<FieldError>) {
    let api = &config.iadvize;
    if api.is_empty() {
        return;
    }
    let base = api.base_url.as_deref().map(str::trim).unwrap_or("");
    match url::Url::parse(base) {
        Err(_) => errors.push(FieldError::new(
            "iadvize.base_url",
            "expected the API address, like https://api.iadvize.com",
        )),
        Ok(u) => {
            let loopback = match u.host() {
                Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
                Some(url::Host::Ipv4(a)) => a.is_loopback(),
                Some(url::Host::Ipv6(a)) => a.is_loopback(),
                None => false,
            };
            if u.scheme() != "https" && !(u.scheme() == "http" && loopback) {
                errors.push(FieldError::new(
                    "iadvize.base_url",
                    "use https:// (http:// is only allowed on this machine)",
                ));
            }
        }
    }
    if let Some(p) = api.platform.as_deref() {
        if p != "ha" && p != "sd" {
            errors.push(FieldError::new(
                "iadvize.platform",
                "expected ha or sd (the iAdvize platform your account is on)",
            ));
        }
    }
    if api.username.as_deref().unwrap_or("").trim().is_empty() {
        errors.push(FieldError::new(
            "iadvize.username",
            "enter the iAdvize API user's login",
        ));
    }
    if api.password.as_deref().unwrap_or("").is_empty() {
        errors.push(FieldError::new(
            "iadvize.password",
            "enter the iAdvize API user's password",
        ));
    }
}
