//! Where the verification engine's keys come from: key files, and brands' key sets (JWKS) served
//! over HTTPS. Also the Settings screen's key-file check ([`KeyContentCheck`]).
//!
//! Architecture invariants:
//! - parsing and every key rule live in `lockdesk-verify`; this crate only reads bytes;
//! - key sets are fetched over `https://` only (rustls, no redirects, 10 s timeout, 1 MiB cap);
//! - a remote key set is refetched only when a token names an unknown `kid`, and at most once a
//!   minute per source, so a flood of junk tokens cannot make us hammer the brand;
//! - a refetch that fails or yields an invalid set keeps the previous keys.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use lockdesk_verify::{
    parse_decryption_keys, parse_public_keys, DecryptionKey, KeyError, Policy, PublicKey, Reason,
    TrustStore, Verdict, Verifier,
};

/// The largest key file or key set we read.
pub const MAX_KEY_BYTES: u64 = 1024 * 1024;
/// The shortest interval between two fetches of one key set.
pub const MIN_REFETCH: Duration = Duration::from_secs(60);

/// Why keys could not be loaded. `origin` names the file or URL.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{origin}: {message}")]
    Read { origin: String, message: String },
    #[error("{origin}: {error}")]
    Key { origin: String, error: KeyError },
    #[error("{origin}: key sets must be fetched over https://, never plain http")]
    Insecure { origin: String },
}

/// Where an issuer's keys come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    File(PathBuf),
    Url(String),
}

impl Source {
    /// `https://...` is a URL, `http://...` is refused later, anything else is a path.
    pub fn parse(s: &str) -> Source {
        let t = s.trim();
        if t.starts_with("https://") || t.starts_with("http://") {
            Source::Url(t.to_owned())
        } else {
            Source::File(PathBuf::from(t))
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Source::File(p) => p.display().to_string(),
            Source::Url(u) => u.clone(),
        }
    }
}

/// Reads a key file, refusing anything over [`MAX_KEY_BYTES`].
pub fn read_key_file(path: &Path) -> Result<Vec<u8>, SourceError> {
    let err = |message: String| SourceError::Read {
        origin: path.display().to_string(),
        message,
    };
    let file = std::fs::File::open(path).map_err(|e| err(io_message(&e)))?;
    let mut bytes = Vec::new();
    file.take(MAX_KEY_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| err(io_message(&e)))?;
    if bytes.len() as u64 > MAX_KEY_BYTES {
        return Err(err("too large to be a key (over 1 MiB)".into()));
    }
    Ok(bytes)
}

fn io_message(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => format!("cannot read it: {e}"),
    }
}

/// A brand's public keys from a file.
pub fn load_public_file(path: &Path) -> Result<Vec<PublicKey>, SourceError> {
    let bytes = read_key_file(path)?;
    parse_public_keys(&bytes).map_err(|error| SourceError::Key {
        origin: path.display().to_string(),
        error,
    })
}

/// The desk's private decryption keys from a PEM file.
pub fn load_decryption_file(path: &Path) -> Result<Vec<DecryptionKey>, SourceError> {
    let bytes = read_key_file(path)?;
    parse_decryption_keys(&bytes).map_err(|error| SourceError::Key {
        origin: path.display().to_string(),
        error,
    })
}

// ---------------------------------------------------------------------------------------------
// Fetching.

/// Fetches a key set. A trait so tests (and the desktop app) can supply their own transport.
pub trait Fetch: Send + Sync {
    fn fetch(&self, url: &str) -> Result<Vec<u8>, String>;
}

/// The real fetcher: HTTPS only, rustls with the platform's roots, no redirects.
pub struct HttpsFetch {
    client: reqwest::blocking::Client,
}

impl HttpsFetch {
    pub fn new() -> Result<HttpsFetch, String> {
        // reqwest is built without a default crypto provider (see Cargo.toml): install ring's,
        // unless the process already chose one.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::blocking::Client::builder()
            .https_only(true)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .user_agent(concat!("lockdesk/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot set up HTTPS: {e}"))?;
        Ok(HttpsFetch { client })
    }
}

impl Fetch for HttpsFetch {
    fn fetch(&self, url: &str) -> Result<Vec<u8>, String> {
        if !url.starts_with("https://") {
            return Err("only https:// key sets are fetched".into());
        }
        let resp = self
            .client
            .get(url)
            .header("accept", "application/jwk-set+json, application/json")
            .send()
            .map_err(|e| format!("fetch failed: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("the server answered {}", resp.status()));
        }
        let mut body = Vec::new();
        resp.take(MAX_KEY_BYTES + 1)
            .read_to_end(&mut body)
            .map_err(|e| format!("reading the answer failed: {e}"))?;
        if body.len() as u64 > MAX_KEY_BYTES {
            return Err("the key set is over 1 MiB".into());
        }
        Ok(body)
    }
}

// ---------------------------------------------------------------------------------------------
// The engine with its key sources.

/// What to load: trusted issuers with their key source, decryption key files, policy.
#[derive(Clone, Debug, Default)]
pub struct Setup {
    pub trust: Vec<(String, Source)>,
    pub decryption: Vec<PathBuf>,
    pub policy: Policy,
    /// Turn the verdict cache off (benchmarks of the full path).
    pub no_cache: bool,
}

impl Setup {
    /// From Lockdesk's configuration.
    pub fn from_config(config: &lockdesk_config::Config) -> Setup {
        let v = &config.verification;
        Setup {
            trust: config
                .trust
                .iter()
                .map(|t| (t.issuer.clone(), Source::parse(&t.key)))
                .collect(),
            decryption: config.decryption.keys.iter().map(PathBuf::from).collect(),
            policy: Policy {
                leeway_secs: v.leeway_secs,
                max_lifetime_secs: v.max_token_lifetime_secs,
                require_encryption: v.require_encryption,
                ..Policy::default()
            },
            no_cache: false,
        }
    }
}

struct Remote {
    issuer: String,
    url: String,
    keys: Vec<PublicKey>,
    last_attempt: Instant,
}

struct State {
    files: Vec<(String, Vec<PublicKey>)>,
    remotes: Vec<Remote>,
}

type Clock = Arc<dyn Fn() -> Instant + Send + Sync>;

/// A [`Verifier`] plus its key sources: refetches remote key sets when a token names an
/// unknown `kid` (at most once a minute per source) and retries that token once.
/// Shareable between threads.
pub struct Engine {
    verifier: RwLock<Arc<Verifier>>,
    state: Mutex<State>,
    decryption: Vec<DecryptionKey>,
    policy: Policy,
    no_cache: bool,
    fetcher: Arc<dyn Fetch>,
    clock: Clock,
    min_refetch: Duration,
}

/// The desk core verifies through this trait (defined beside the verifier).
impl lockdesk_verify::TokenVerifier for Engine {
    fn verify(&self, token: &[u8], now: i64) -> Verdict {
        Engine::verify(self, token, now)
    }
}

impl Engine {
    /// Loads every source; any failure is an error naming the file or URL.
    pub fn load(setup: &Setup) -> Result<Engine, SourceError> {
        let needs_net = setup.trust.iter().any(|(_, s)| matches!(s, Source::Url(_)));
        let fetcher: Arc<dyn Fetch> = if needs_net {
            Arc::new(HttpsFetch::new().map_err(|message| SourceError::Read {
                origin: "https".into(),
                message,
            })?)
        } else {
            Arc::new(NoFetch)
        };
        Engine::load_with(setup, fetcher, Arc::new(Instant::now))
    }

    /// [`Engine::load`] with an explicit transport and clock (tests).
    pub fn load_with(
        setup: &Setup,
        fetcher: Arc<dyn Fetch>,
        clock: Arc<dyn Fn() -> Instant + Send + Sync>,
    ) -> Result<Engine, SourceError> {
        let mut files = Vec::new();
        let mut remotes = Vec::new();
        for (issuer, source) in &setup.trust {
            match source {
                Source::File(p) => files.push((issuer.clone(), load_public_file(p)?)),
                Source::Url(u) => {
                    if !u.starts_with("https://") {
                        return Err(SourceError::Insecure { origin: u.clone() });
                    }
                    let keys = fetch_keys(fetcher.as_ref(), u)?;
                    remotes.push(Remote {
                        issuer: issuer.clone(),
                        url: u.clone(),
                        keys,
                        last_attempt: clock(),
                    });
                }
            }
        }
        let mut decryption = Vec::new();
        for p in &setup.decryption {
            decryption.extend(load_decryption_file(p)?);
        }
        let state = State { files, remotes };
        let verifier = build_verifier(&state, &decryption, &setup.policy, setup.no_cache)?;
        Ok(Engine {
            verifier: RwLock::new(Arc::new(verifier)),
            state: Mutex::new(state),
            decryption,
            policy: setup.policy.clone(),
            no_cache: setup.no_cache,
            fetcher,
            clock,
            min_refetch: MIN_REFETCH,
        })
    }

    /// The current verifier (replaced after a successful refetch).
    pub fn verifier(&self) -> Arc<Verifier> {
        self.verifier
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Verifies `token` at `now` (Unix seconds).
    pub fn verify(&self, token: &[u8], now: i64) -> Verdict {
        let verdict = self.verifier().verify(token, now);
        if verdict.reason() == Some(Reason::UnknownKey) && self.refresh() {
            return self.verifier().verify(token, now);
        }
        verdict
    }

    /// Refetches every remote key set whose last attempt is at least a minute old. Returns true
    /// when the keys changed (the verifier, and its cache, are then replaced).
    pub fn refresh(&self) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = (self.clock)();
        let mut changed = false;
        for remote in &mut state.remotes {
            if now.saturating_duration_since(remote.last_attempt) < self.min_refetch {
                continue;
            }
            remote.last_attempt = now;
            match fetch_keys(self.fetcher.as_ref(), &remote.url) {
                Ok(keys) => {
                    let old: Vec<&str> = remote.keys.iter().map(|k| k.thumbprint()).collect();
                    let new: Vec<&str> = keys.iter().map(|k| k.thumbprint()).collect();
                    if old != new {
                        tracing::info!(url = %remote.url, keys = keys.len(), "key set changed");
                        remote.keys = keys;
                        changed = true;
                    }
                }
                Err(e) => tracing::warn!("keeping the previous keys: {e}"),
            }
        }
        if changed {
            match build_verifier(&state, &self.decryption, &self.policy, self.no_cache) {
                Ok(v) => {
                    *self.verifier.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(v);
                }
                Err(e) => {
                    tracing::warn!("keeping the previous keys: {e}");
                    return false;
                }
            }
        }
        changed
    }
}

struct NoFetch;
impl Fetch for NoFetch {
    fn fetch(&self, _url: &str) -> Result<Vec<u8>, String> {
        Err("no network configured".into())
    }
}

fn fetch_keys(fetcher: &dyn Fetch, url: &str) -> Result<Vec<PublicKey>, SourceError> {
    let bytes = fetcher.fetch(url).map_err(|message| SourceError::Read {
        origin: url.to_owned(),
        message,
    })?;
    parse_public_keys(&bytes).map_err(|error| SourceError::Key {
        origin: url.to_owned(),
        error,
    })
}

fn build_verifier(
    state: &State,
    decryption: &[DecryptionKey],
    policy: &Policy,
    no_cache: bool,
) -> Result<Verifier, SourceError> {
    let mut trust = TrustStore::new();
    let all = state
        .files
        .iter()
        .map(|(i, k)| (i, k))
        .chain(state.remotes.iter().map(|r| (&r.issuer, &r.keys)));
    for (issuer, keys) in all {
        trust
            .add(issuer.clone(), keys.clone())
            .map_err(|error| SourceError::Key {
                origin: format!("keys of issuer {issuer:?}"),
                error,
            })?;
    }
    let verifier = Verifier::new(trust, decryption.to_vec(), policy.clone());
    Ok(if no_cache {
        verifier.without_cache()
    } else {
        verifier
    })
}

// ---------------------------------------------------------------------------------------------
// Settings screen.

/// The real key-file check for `lockdesk_config::validate`: parses the file with the engine's
/// loader, so the Settings screen says "not a public key", "key under 2048 bits (1024 bits)"...
pub struct KeyContentCheck;

impl lockdesk_config::KeyFileCheck for KeyContentCheck {
    fn check_public(&self, path: &Path) -> Result<(), String> {
        let bytes = read_for_check(path)?;
        parse_public_keys(&bytes)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn check_private(&self, path: &Path) -> Result<(), String> {
        let bytes = read_for_check(path)?;
        parse_decryption_keys(&bytes)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

fn read_for_check(path: &Path) -> Result<Vec<u8>, String> {
    if path.is_dir() {
        return Err("expected a file, found a folder".into());
    }
    read_key_file(path).map_err(|e| match e {
        SourceError::Read { message, .. } => message,
        other => other.to_string(),
    })
}

#[cfg(test)]
mod tests;
