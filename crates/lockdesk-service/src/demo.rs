//! The embedded demo: a real gateway on 127.0.0.1 (its own SQLite log), the simulator playing
//! every scenario against it pass after pass (signed webhooks, evidence with real tokens minted
//! by a freshly generated brand key and encrypted to the demo desk's key), and the desk options
//! that subscribe to it. Nothing here is fake data: the desk verifies every token itself, exactly
//! as with a real gateway.
//!
//! The folder (`<data>/demo` by default) holds `keys/` (the demo desk's key pair, kept between
//! runs; the brand's public key set, new each run), `gateway/` (the gateway's log) and the desk
//! store. The gateway log and the desk store are reset at every start, so a run never resumes
//! against a log it does not match.
//!
//! Must not: write outside its folder; log its generated secrets.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lockdesk_desk::DeskConfig;
use lockdesk_feed_client::Credential;
use lockdesk_sim::{plan, Scenario, SimKeys, Step, Target};

use crate::{Options, ServiceError, DESK_FILE};

/// The operator ids the simulator pushes conversations to; the demo desk is their advisor.
pub const DEMO_OPERATORS: [i64; 2] = [1001, 1002];

/// How the demo plays.
#[derive(Clone, Debug)]
pub struct DemoSettings {
    /// The first pass's seed (pass `k` uses `seed + k`).
    pub seed: u64,
    /// The demo's authenticated-session lifetime: short, so a session visibly lapses.
    pub session_lifetime_secs: i64,
    /// A new pass over every scenario starts this often.
    pub pass_every: Duration,
    /// Scenario starts within one pass are this far apart.
    pub stagger: Duration,
    /// Stop after this many passes (`None`: until shut down).
    pub passes: Option<u64>,
    /// Subscribe as the supervisor (everything) instead of the advisor of [`DEMO_OPERATORS`].
    pub supervisor: bool,
}

impl Default for DemoSettings {
    fn default() -> Self {
        DemoSettings {
            seed: 1,
            session_lifetime_secs: 45,
            pass_every: Duration::from_secs(90),
            stagger: Duration::from_secs(2),
            passes: None,
            supervisor: false,
        }
    }
}

/// What the rest of the app may know about a running demo.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DemoFacts {
    pub dir: PathBuf,
    pub gateway: Option<std::net::SocketAddr>,
}

/// A running demo: the gateway and the simulator thread.
pub struct Demo {
    dir: PathBuf,
    gateway: Option<lockdesk_gateway::Gateway>,
    stop: Arc<AtomicBool>,
    sim: Option<std::thread::JoinHandle<()>>,
    advisor: Credential,
    supervisor: Credential,
    settings: DemoSettings,
    desk_private: PathBuf,
    brand_jwks: PathBuf,
}

impl std::fmt::Debug for Demo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Demo")
            .field("dir", &self.dir)
            .field("gateway", &self.gateway_addr())
            .finish_non_exhaustive()
    }
}

fn demo_err(what: &str, e: impl std::fmt::Display) -> ServiceError {
    ServiceError::Demo(format!("{what}: {e}"))
}

fn secret() -> Result<String, ServiceError> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(|e| demo_err("no randomness", e))?;
    Ok(hex::encode(bytes))
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Removes the previous run's gateway log and desk store (not the keys).
fn reset(dir: &Path) -> Result<(), ServiceError> {
    let gateway = dir.join("gateway");
    if gateway.exists() {
        std::fs::remove_dir_all(&gateway)
            .map_err(|e| demo_err("cannot reset the demo gateway", e))?;
    }
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let p = dir.join(format!("{DESK_FILE}{suffix}"));
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(demo_err(&format!("cannot reset {}", p.display()), e)),
        }
    }
    Ok(())
}

/// The demo desk's key pair (generated once, kept), returning the private key's path.
fn desk_key(keys: &Path) -> Result<(PathBuf, lockdesk_verify::PublicKey), ServiceError> {
    let private = keys.join("desk-private.pem");
    let public = keys.join("desk-public.pem");
    if !private.exists() || !public.exists() {
        let rsa =
            openssl::rsa::Rsa::generate(2048).map_err(|e| demo_err("RSA key generation", e))?;
        let pkey = openssl::pkey::PKey::from_rsa(rsa).map_err(|e| demo_err("RSA key", e))?;
        let pem = pkey
            .private_key_to_pem_pkcs8()
            .map_err(|e| demo_err("PKCS#8 encoding", e))?;
        let pub_pem = pkey
            .public_key_to_pem()
            .map_err(|e| demo_err("SPKI encoding", e))?;
        write_private(&private, &pem).map_err(|e| demo_err("cannot write the demo desk key", e))?;
        std::fs::write(&public, pub_pem)
            .map_err(|e| demo_err("cannot write the demo desk key", e))?;
    }
    let public_key =
        lockdesk_sim::read_desk_public(&public).map_err(|e| demo_err("demo desk key", e))?;
    Ok((private, public_key))
}

impl Demo {
    /// Prepares `dir` (reset, keys) and starts the gateway and the simulator.
    pub async fn start(dir: &Path, settings: DemoSettings) -> Result<Demo, ServiceError> {
        let dir = dir.to_owned();
        let keys_dir = dir.join("keys");
        std::fs::create_dir_all(&keys_dir).map_err(|source| ServiceError::Dir {
            path: keys_dir.clone(),
            source,
        })?;
        let prep_dir = dir.clone();
        let (desk_private, brand_jwks, sim_keys) = tokio::task::spawn_blocking(move || {
            reset(&prep_dir)?;
            let (desk_private, desk_public) = desk_key(&keys_dir)?;
            let sim_keys =
                SimKeys::generate(&desk_public).map_err(|e| demo_err("brand keys", e))?;
            let brand_jwks = keys_dir.join("brand.jwks.json");
            std::fs::write(&brand_jwks, &sim_keys.brand_public_jwks)
                .map_err(|e| demo_err("cannot write the brand's key set", e))?;
            Ok::<_, ServiceError>((desk_private, brand_jwks, sim_keys))
        })
        .await
        .map_err(|e| ServiceError::Task(e.to_string()))??;

        let webhook_secret = secret()?;
        let provider = secret()?;
        let advisor = secret()?;
        let supervisor = secret()?;
        let ops = DEMO_OPERATORS
            .iter()
            .map(|o| o.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let toml = format!(
            "[[webhook]]\nname = \"demo-iadvize-app\"\nsecret = \"{webhook_secret}\"\n\n\
             [[provider]]\nname = \"demo-token-provider\"\ncredential = \"{provider}\"\n\n\
             [[subscriber]]\nname = \"demo-advisor\"\ncredential = \"{advisor}\"\nrole = \"advisor\"\noperator_ids = [{ops}]\n\n\
             [[subscriber]]\nname = \"demo-supervisor\"\ncredential = \"{supervisor}\"\nrole = \"supervisor\"\n"
        );
        let config = lockdesk_gateway::GatewayConfig::from_toml(&toml)
            .map_err(|e| demo_err("gateway configuration", e))?;
        let gateway_dir = dir.join("gateway");
        std::fs::create_dir_all(&gateway_dir).map_err(|source| ServiceError::Dir {
            path: gateway_dir.clone(),
            source,
        })?;
        let listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        let gateway = lockdesk_gateway::start(config, &gateway_dir, listen)
            .await
            .map_err(|e| demo_err("gateway", e))?;
        let target = Target {
            gateway: format!("http://{}", gateway.local_addr()),
            webhook_secret: webhook_secret.into_bytes(),
            provider_token: provider,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let sim_stop = stop.clone();
        let sim_settings = settings.clone();
        let sim = std::thread::Builder::new()
            .name("lockdesk-demo-sim".into())
            .spawn(move || play(target, sim_keys, sim_settings, sim_stop))
            .map_err(|e| demo_err("cannot start the simulator thread", e))?;
        tracing::info!(gateway = %gateway.local_addr(), dir = %dir.display(), "demo started");
        Ok(Demo {
            dir,
            gateway: Some(gateway),
            stop,
            sim: Some(sim),
            advisor: Credential::new(advisor),
            supervisor: Credential::new(supervisor),
            settings,
            desk_private,
            brand_jwks,
        })
    }

    /// The gateway's address.
    pub fn gateway_addr(&self) -> Option<std::net::SocketAddr> {
        self.gateway.as_ref().map(|g| g.local_addr())
    }

    pub fn facts(&self) -> DemoFacts {
        DemoFacts {
            dir: self.dir.clone(),
            gateway: self.gateway_addr(),
        }
    }

    /// The demo's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The desk options that subscribe to this demo.
    pub fn options(&self) -> Options {
        let addr = self
            .gateway_addr()
            .unwrap_or_else(|| std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
        let mut keys = lockdesk_keys::Setup::default();
        keys.trust.push((
            lockdesk_sim::plan::ISSUER.to_owned(),
            lockdesk_keys::Source::parse(&self.brand_jwks.display().to_string()),
        ));
        keys.decryption.push(self.desk_private.clone());
        Options {
            data_dir: self.dir.clone(),
            feed_url: format!("ws://{addr}{}", lockdesk_feed::FEED_PATH),
            credential: if self.settings.supervisor {
                self.supervisor.clone()
            } else {
                self.advisor.clone()
            },
            keys,
            desk: DeskConfig {
                session_lifetime_secs: self.settings.session_lifetime_secs,
            },
            tick_every: Duration::from_secs(1),
            demo: true,
        }
    }

    /// Stops the simulator, then the gateway.
    pub async fn shutdown(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(sim) = self.sim.take() {
            let _ = tokio::task::spawn_blocking(move || sim.join()).await;
        }
        if let Some(gateway) = self.gateway.take() {
            if let Err(e) = gateway.shutdown().await {
                tracing::warn!("demo gateway shutdown: {e}");
            }
        }
    }
}

/// The simulator's thread: pass `k` (seed + k) starts at `k × pass_every`, each step at its own
/// time within the pass; passes overlap, so every state is on screen at any moment.
fn play(target: Target, keys: SimKeys, settings: DemoSettings, stop: Arc<AtomicBool>) {
    let mut sender = match lockdesk_sim::Sender::new(target, keys) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("demo simulator cannot start: {e}");
            return;
        }
    };
    let start = Instant::now();
    let mut pending: Vec<(Duration, Step)> = Vec::new();
    let mut next_pass = Duration::ZERO;
    let mut pass = 0u64;
    let stagger = settings.stagger.as_millis() as u64;
    while !stop.load(Ordering::SeqCst) {
        let elapsed = start.elapsed();
        if elapsed >= next_pass && settings.passes.is_none_or(|n| pass < n) {
            let steps = plan(
                settings.seed + pass,
                &Scenario::ALL,
                &DEMO_OPERATORS,
                stagger,
            );
            pending.extend(
                steps
                    .into_iter()
                    .map(|s| (next_pass + Duration::from_millis(s.at_ms), s)),
            );
            pending.sort_by_key(|(at, _)| *at);
            pass += 1;
            next_pass += settings.pass_every;
        }
        if pending.first().is_some_and(|(at, _)| *at <= elapsed) {
            let (_, step) = pending.remove(0);
            if let Err(e) = sender.send(&step) {
                tracing::warn!("demo simulator: {e}");
            }
            continue;
        }
        if pending.is_empty() && settings.passes.is_some_and(|n| pass >= n) {
            break;
        }
        let next = pending
            .first()
            .map(|(at, _)| *at)
            .unwrap_or(next_pass)
            .min(next_pass)
            .saturating_sub(elapsed);
        std::thread::sleep(next.min(Duration::from_millis(100)));
    }
}
