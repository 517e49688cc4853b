//! The embedded demo, in its own crate so that a desk built without it (the desktop app's
//! `demo` feature off, see src-tauri/Cargo.toml) links neither the gateway server, nor the
//! simulator, nor the iAdvize stand-in: a real gateway on 127.0.0.1 (its own SQLite log), the simulator playing
//! every scenario against it pass after pass (signed webhooks, evidence with real tokens minted
//! by a freshly generated brand key and encrypted to the demo desk's key), and the desk options
//! that subscribe to it. Nothing here is fake data: the desk verifies every token itself, exactly
//! as with a real gateway.
//!
//! iAdvize's GraphQL API is played by [`lockdesk_iadvize::standin`] on 127.0.0.1, serving a
//! dataset consistent with the simulator's plan ([`backfill_dataset`]): older closed
//! conversations on the visitor ids of the multi-device person and of three others, the platform's
//! record of their conversations of the pass once the simulator closes them, and one of those
//! naming another userId than the verified one, so the desk shows a platform mismatch. The
//! desk's backfill ([`lockdesk_service::backfill`]) is configured against it.
//!
//! The folder (`<data>/demo` by default) holds `keys/` (the demo desk's key pair and the brand's
//! signing key, both kept between runs), `gateway/` (the gateway's log), `demo-passes.json` (how
//! many passes were played on that log) and the desk store. A restart resumes: the gateway
//! reopens its log, the desk resumes from its cursor on it (what the advisor saw, and the audit
//! chain, stay), and the simulator goes on with the next pass's seed, so no conversation is played
//! twice. Only when the log is gone or another one (the desk store names another `logId`) is the
//! store set aside, never deleted ([`lockdesk_desk::archive_store`]), and [`DemoFacts::archived`]
//! says so.
//!
//! One process at a time: [`Demo::start`] takes an exclusive lock on `<folder>/demo.lock`
//! (`flock`, released when the process ends, even by a crash) and a second demo on the same
//! folder (`lockdesk-cli demo` while the app runs its demo) is refused with
//! [`ServiceError::DemoInUse`], naming the holder's pid; the first keeps running.
//!
//! Must not: write outside its folder; log its generated secrets.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use lockdesk_desk::DeskConfig;
use lockdesk_feed_client::Credential;
use lockdesk_iadvize::standin::{Conversation, Dataset, StandIn};
use lockdesk_iadvize::Credentials;
use lockdesk_sim::{plan, Action, Scenario, Signer, SimKeys, Step, Target};

use lockdesk_service::backfill::BackfillConfig;
pub use lockdesk_service::DemoFacts;
use lockdesk_service::{DeskService, Embedded, Options, ServiceError};

/// The lock file that makes a demo folder one process's at a time.
pub const LOCK_FILE: &str = "demo.lock";

/// How many passes were played on which gateway log (the next run's seeds follow on).
const PASSES_FILE: &str = "demo-passes.json";

/// The demo's iAdvize API user (its password is generated at every start).
pub const DEMO_IADVIZE_USER: &str = "demo-backfill@brand.example";

/// The stand-in's dataset covers at most this many passes (6 hours at the default 90 s); later
/// passes get no older conversations (the backfill then finds nothing, as for a new visitor).
pub const DATASET_PASSES: u64 = 240;

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
    /// Play iAdvize's GraphQL API (the stand-in) and backfill from it, at most once per userId
    /// this often (`None`: no backfill).
    pub backfill_every: Option<Duration>,
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
            backfill_every: Some(Duration::from_secs(15)),
        }
    }
}

/// The embedded demo in `dir` (locked, resumed when it holds the same log; see the crate's
/// doc), with the desk service subscribed to it: gateway, simulator and stand-in in this process,
/// stopped by [`DeskService::shutdown`].
pub async fn start(dir: &Path, settings: DemoSettings) -> Result<DeskService, ServiceError> {
    let demo = Demo::start(dir, settings).await?;
    DeskService::start_embedded(Box::new(demo)).await
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
    /// iAdvize's API and the password of [`DEMO_IADVIZE_USER`].
    iadvize: Option<(StandIn, String)>,
    /// The gateway log's identity (`hello.logId`): the desk store must belong to it.
    log_id: String,
    /// The simulator's failure (it could not start, or panicked), once.
    engine: Option<tokio::sync::oneshot::Receiver<String>>,
    /// Held while the demo runs: the folder's exclusive lock.
    _lock: std::fs::File,
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

/// Takes the folder's exclusive lock (`flock` through std's `File::try_lock`), writing this
/// process's id in the file; another holder is refused with its pid (read from the file).
fn lock(dir: &Path) -> Result<std::fs::File, ServiceError> {
    use std::io::{Read, Seek, Write};
    let path = dir.join(LOCK_FILE);
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(&path)
        .map_err(|e| demo_err(&format!("cannot open {}", path.display()), e))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut text = String::new();
            // At most a line: the holder's pid.
            let _ = (&mut file).take(32).read_to_string(&mut text);
            return Err(ServiceError::DemoInUse {
                dir: dir.to_owned(),
                pid: text.trim().parse().ok(),
            });
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(demo_err(&format!("cannot lock {}", path.display()), e))
        }
    }
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| writeln!(file, "{}", std::process::id()))
        .and_then(|()| file.sync_all())
        .map_err(|e| demo_err(&format!("cannot write {}", path.display()), e))?;
    Ok(file)
}

/// The passes already played on the log `log_id` (0 for another log or an unreadable file).
fn passes_played(dir: &Path, log_id: &str) -> u64 {
    let Ok(text) = std::fs::read_to_string(dir.join(PASSES_FILE)) else {
        return 0;
    };
    let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
        return 0;
    };
    if v.get("logId").and_then(|l| l.as_str()) != Some(log_id) {
        return 0;
    }
    v.get("passes").and_then(|p| p.as_u64()).unwrap_or(0)
}

fn save_passes(dir: &Path, log_id: &str, passes: u64) {
    let text = serde_json::json!({ "logId": log_id, "passes": passes }).to_string();
    if let Err(e) = write_private(&dir.join(PASSES_FILE), text.as_bytes()) {
        tracing::warn!("demo: cannot record the passes played: {e}");
    }
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
    /// Locks `dir`, prepares it (keys; the gateway log reopened) and starts the gateway and the
    /// simulator, which goes on from the passes already played on that log.
    pub async fn start(dir: &Path, settings: DemoSettings) -> Result<Demo, ServiceError> {
        let dir = dir.to_owned();
        lockdesk_config::create_private_dir(&dir).map_err(|source| ServiceError::Dir {
            path: dir.clone(),
            source,
        })?;
        let lock_dir = dir.clone();
        let lock_file = tokio::task::spawn_blocking(move || lock(&lock_dir))
            .await
            .map_err(|e| ServiceError::Task(e.to_string()))??;
        let keys_dir = dir.join("keys");
        lockdesk_config::create_private_dir(&keys_dir).map_err(|source| ServiceError::Dir {
            path: keys_dir.clone(),
            source,
        })?;
        let gateway_dir = dir.join("gateway");
        lockdesk_config::create_private_dir(&gateway_dir).map_err(|source| ServiceError::Dir {
            path: gateway_dir.clone(),
            source,
        })?;
        let prep_dir = dir.clone();
        let db = gateway_dir.join(lockdesk_gateway::DATABASE_FILE);
        let (desk_private, brand_jwks, sim_keys, store, played) =
            tokio::task::spawn_blocking(move || {
                let store = lockdesk_gateway::SqliteStore::open(&db)
                    .map_err(|e| demo_err("the demo gateway's log", e))?;
                let played = {
                    use lockdesk_gateway::EventStore;
                    passes_played(&prep_dir, store.log_id())
                };
                let (desk_private, desk_public) = desk_key(&keys_dir)?;
                // The brand's key is kept too: entries still to apply after a restart carry
                // tokens it signed.
                let brand_private = keys_dir.join("brand-private.pem");
                if !brand_private.exists() {
                    let rsa = openssl::rsa::Rsa::generate(2048)
                        .map_err(|e| demo_err("RSA key generation", e))?;
                    let pem = rsa
                        .private_key_to_pem()
                        .map_err(|e| demo_err("PEM encoding", e))?;
                    write_private(&brand_private, &pem)
                        .map_err(|e| demo_err("cannot write the demo brand key", e))?;
                }
                let sim_keys = SimKeys::with_brand_key(&brand_private, &desk_public)
                    .map_err(|e| demo_err("brand keys", e))?;
                let brand_jwks = keys_dir.join("brand.jwks.json");
                std::fs::write(&brand_jwks, &sim_keys.brand_public_jwks)
                    .map_err(|e| demo_err("cannot write the brand's key set", e))?;
                Ok::<_, ServiceError>((desk_private, brand_jwks, sim_keys, store, played))
            })
            .await
            .map_err(|e| ServiceError::Task(e.to_string()))??;
        let log_id = {
            use lockdesk_gateway::EventStore;
            store.log_id().to_owned()
        };
        // This run's passes follow the ones already on the log (their conversation ids differ).
        let settings = DemoSettings {
            seed: settings.seed.saturating_add(played),
            ..settings
        };

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
        let listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        let gateway = lockdesk_gateway::start_with_store(
            config,
            Arc::new(store),
            listen,
            lockdesk_gateway::ServerOptions::default(),
        )
        .await
        .map_err(|e| demo_err("gateway", e))?;
        let target = Target {
            gateway: format!("http://{}", gateway.local_addr()),
            webhook_secret: webhook_secret.into_bytes(),
            provider_token: provider,
        };
        // iAdvize's API, with the conversations of the passes about to be played; its times
        // count from now, so a conversation is reported closed no earlier than the simulator
        // closes it.
        let iadvize = match settings.backfill_every {
            None => None,
            Some(_) => {
                let password = secret()?;
                let dataset =
                    backfill_dataset(&settings, SystemTime::now(), DEMO_IADVIZE_USER, &password);
                let standin = StandIn::start(
                    dataset,
                    Duration::from_secs(86_400),
                    std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
                )
                .await
                .map_err(|e| demo_err("iAdvize API stand-in", e))?;
                Some((standin, password))
            }
        };
        let stop = Arc::new(AtomicBool::new(false));
        let sim_stop = stop.clone();
        let sim_settings = settings.clone();
        let (engine_tx, engine) = tokio::sync::oneshot::channel();
        let passes_dir = dir.clone();
        let passes_log = log_id.clone();
        let sim = std::thread::Builder::new()
            .name("lockdesk-demo-sim".into())
            .spawn(move || {
                let on_pass = |n: u64| save_passes(&passes_dir, &passes_log, played + n);
                let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    play(target, sim_keys, sim_settings, sim_stop, on_pass)
                }));
                let failure = match run {
                    Ok(Ok(())) => return,
                    Ok(Err(why)) => why,
                    Err(panic) => format!(
                        "the demo simulator panicked: {}",
                        lockdesk_feed_client::panic_message(&*panic)
                    ),
                };
                tracing::error!("{failure}");
                let _ = engine_tx.send(failure);
            })
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
            iadvize,
            log_id,
            engine: Some(engine),
            _lock: lock_file,
        })
    }

    /// The identity of the demo gateway's log (the desk store must belong to it).
    pub fn log_id(&self) -> &str {
        &self.log_id
    }

    /// Resolves with why the simulator stopped, if it fails (it could not start, or panicked);
    /// never resolves otherwise. Taken once (by the service, which then stops and says so).
    pub fn engine_failure(&mut self) -> Option<tokio::sync::oneshot::Receiver<String>> {
        self.engine.take()
    }

    /// The gateway's address.
    pub fn gateway_addr(&self) -> Option<std::net::SocketAddr> {
        self.gateway.as_ref().map(|g| g.local_addr())
    }

    pub fn facts(&self) -> DemoFacts {
        DemoFacts {
            dir: self.dir.clone(),
            gateway: self.gateway_addr(),
            iadvize: self.iadvize.as_ref().map(|(s, _)| s.addr()),
            archived: None,
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
            feed_urls: vec![format!("ws://{addr}{}", lockdesk_feed::FEED_PATH)],
            ca_file: None,
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
            backfill: self.iadvize.as_ref().map(|(standin, password)| {
                let mut b = BackfillConfig::new(
                    standin.endpoints(),
                    Credentials::new(DEMO_IADVIZE_USER, password.clone()),
                );
                b.every = self
                    .settings
                    .backfill_every
                    .unwrap_or(Duration::from_secs(15));
                b.first_retry = Duration::from_secs(5);
                b.max_retry = Duration::from_secs(60);
                b.client.first_retry_wait = Duration::from_millis(200);
                b.client.max_retry_wait = Duration::from_secs(5);
                b
            }),
        }
    }

    /// Stops the simulator, then the gateway (the iAdvize stand-in stops when dropped).
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

impl Embedded for Demo {
    fn options(&self) -> Options {
        Demo::options(self)
    }

    fn log_id(&self) -> &str {
        Demo::log_id(self)
    }

    fn facts(&self) -> DemoFacts {
        Demo::facts(self)
    }

    fn engine_failure(&mut self) -> Option<tokio::sync::oneshot::Receiver<String>> {
        Demo::engine_failure(self)
    }

    fn shutdown(
        self: Box<Self>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        Box::pin(Demo::shutdown(*self))
    }
}

/// The simulator's thread: pass `k` (seed + k) starts at `k × pass_every`, each step at its own
/// time within the pass; passes overlap, so every state is on screen at any moment.
/// `on_pass(n)`: `n` passes of this run have started. An error: the simulator could not start.
fn play(
    target: Target,
    keys: SimKeys,
    settings: DemoSettings,
    stop: Arc<AtomicBool>,
    on_pass: impl Fn(u64),
) -> Result<(), String> {
    let mut sender = lockdesk_sim::Sender::new(target, keys)
        .map_err(|e| format!("the demo simulator cannot start: {e}"))?;
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
            on_pass(pass);
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
    Ok(())
}

/// The scenarios whose person has older conversations on iAdvize (a few people, including the
/// one on three devices). The first one's conversation of the pass is the platform mismatch.
const PEOPLE_WITH_HISTORY: [Scenario; 4] = [
    Scenario::LoginMidConversation,
    Scenario::MultiDevice,
    Scenario::TokenEveryPage,
    Scenario::SessionLapse,
];

/// A conversation of the plan, from its webhooks.
#[derive(Clone, Debug, Default)]
struct Planned {
    visitor: String,
    channel: String,
    operator: Option<i64>,
    pushed_ms: u64,
    closed_ms: Option<u64>,
}

/// A time as iAdvize's `DateTime` (`2026-01-10T09:00:00Z`).
fn rfc3339(t: SystemTime) -> String {
    lockdesk_text::time::format_secs(lockdesk_text::time::ms_since_epoch(t))
}

/// A deterministic UUID (v4 layout) for a dataset conversation (splitmix64 of its coordinates).
fn dataset_uuid(parts: [u64; 4]) -> String {
    let mut x = parts
        .iter()
        .fold(0x5eed_0f1a_d0e5_u64, |acc, p| acc.rotate_left(17) ^ p);
    let mut next = || {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let (a, b) = (next(), next());
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0x0fff,
        0x8000 | (b >> 48) & 0x3fff,
        b & 0xffff_ffff_ffff
    )
}

/// What the demo's iAdvize API knows, consistent with the passes `settings` will play from
/// `start` (the simulator's plan is deterministic per seed). For each person of
/// [`PEOPLE_WITH_HISTORY`] in each pass: two older closed conversations on each visitor id they
/// log in on (3 to 60 days before `start`; the second of the login-mid-conversation person's is
/// from before they ever logged in, without `externalUserId`), and the platform's record of
/// their conversations of the pass, closed when the simulator closes them, with their userId as
/// `externalUserId`, except the login-mid-conversation one, which names the session-lapse
/// person's userId: the platform believes another customer was authenticated.
pub fn backfill_dataset(
    settings: &DemoSettings,
    start: SystemTime,
    user: &str,
    password: &str,
) -> Dataset {
    let mut conversations = Vec::new();
    let passes = settings
        .passes
        .unwrap_or(DATASET_PASSES)
        .min(DATASET_PASSES);
    let stagger = settings.stagger.as_millis() as u64;
    const DAY_MS: u64 = 86_400_000;
    let at = |ms: u64| start + Duration::from_millis(ms);
    let ago = |ms: u64| {
        start
            .checked_sub(Duration::from_millis(ms))
            .unwrap_or(start)
    };
    for pass in 0..passes {
        let seed = settings.seed + pass;
        let offset = pass.saturating_mul(settings.pass_every.as_millis() as u64);
        let steps = plan(seed, &Scenario::ALL, &DEMO_OPERATORS, stagger);
        let mut planned: std::collections::HashMap<String, Planned> = Default::default();
        for step in &steps {
            let Action::Webhook { body, .. } = &step.action else {
                continue;
            };
            let text = |k: &str| body.get(k).and_then(|v| v.as_str()).map(str::to_owned);
            let Some(id) = text("conversationId") else {
                continue;
            };
            let entry = planned.entry(id).or_default();
            match text("eventType").as_deref() {
                Some("v2.conversation.pushed") => {
                    entry.visitor = text("visitorId").unwrap_or_default();
                    entry.channel = text("channel").unwrap_or_default();
                    entry.operator = body.get("operatorId").and_then(|v| v.as_i64());
                    entry.pushed_ms = step.at_ms;
                }
                Some("v2.conversation.closed") => entry.closed_ms = Some(step.at_ms),
                _ => {}
            }
        }
        // The person of each scenario: the userId of its first valid token, and the visitor
        // ids it was presented on.
        let person = |s: Scenario| -> Option<(String, Vec<String>)> {
            let mut user_id = None;
            let mut visitors: Vec<String> = Vec::new();
            for step in steps.iter().filter(|st| st.scenario == s) {
                let Action::Evidence(e) = &step.action else {
                    continue;
                };
                if e.token.signer != Signer::Brand || e.token.expires_in <= 0 {
                    continue;
                }
                let u = user_id.get_or_insert_with(|| e.token.user_id.clone());
                if *u == e.token.user_id && !visitors.contains(&e.visitor_id) {
                    visitors.push(e.visitor_id.clone());
                }
            }
            Some((user_id?, visitors))
        };
        let other = person(Scenario::SessionLapse).map(|(u, _)| u);
        for (si, scenario) in PEOPLE_WITH_HISTORY.into_iter().enumerate() {
            let Some((user_id, visitors)) = person(scenario) else {
                continue;
            };
            for (vi, visitor) in visitors.iter().enumerate() {
                let mine: Vec<(&String, &Planned)> = planned
                    .iter()
                    .filter(|(_, p)| p.visitor == *visitor)
                    .collect();
                let first = mine.iter().min_by_key(|(_, p)| p.pushed_ms);
                let channel = first.map_or("CHAT".to_owned(), |(_, p)| p.channel.clone());
                let operator = first.and_then(|(_, p)| p.operator);
                // Older conversations on this device.
                for j in 0..2u64 {
                    let days = 3 + 9 * vi as u64 + 11 * si as u64 + 27 * j;
                    let closed = ago(days * DAY_MS + (j + 1) * 3_600_000);
                    let created = closed
                        .checked_sub(Duration::from_secs(12 * 60))
                        .unwrap_or(closed);
                    let anonymous = scenario == Scenario::LoginMidConversation && j == 1;
                    conversations.push(Conversation {
                        id: dataset_uuid([seed, si as u64, vi as u64, j]),
                        visitor_id: visitor.clone(),
                        external_user_id: (!anonymous).then(|| user_id.clone()),
                        channel: channel.clone(),
                        created_at: rfc3339(created),
                        closed_at: rfc3339(closed),
                        operator_id: operator.map(|o| o as u64),
                        operator_email: operator.map(|o| format!("advisor-{o}@brand.example")),
                    });
                }
                // The platform's record of this pass's conversations on the device.
                for (id, p) in &mine {
                    let Some(closed_ms) = p.closed_ms else {
                        continue;
                    };
                    let external = if scenario == Scenario::LoginMidConversation {
                        other.clone().filter(|o| *o != user_id)
                    } else {
                        Some(user_id.clone())
                    };
                    conversations.push(Conversation {
                        id: (*id).clone(),
                        visitor_id: visitor.clone(),
                        external_user_id: external,
                        channel: p.channel.clone(),
                        created_at: rfc3339(at(offset + p.pushed_ms)),
                        closed_at: rfc3339(at(offset + closed_ms)),
                        operator_id: p.operator.map(|o| o as u64),
                        operator_email: p.operator.map(|o| format!("advisor-{o}@brand.example")),
                    });
                }
            }
        }
    }
    Dataset {
        users: vec![(user.to_owned(), password.to_owned())],
        conversations,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_pass() -> DemoSettings {
        DemoSettings {
            passes: Some(1),
            ..DemoSettings::default()
        }
    }

    #[test]
    fn the_dataset_follows_the_plan_people_and_visitors() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_790_000_000);
        let settings = one_pass();
        let d = backfill_dataset(&settings, start, "u", "p");
        let steps = plan(1, &Scenario::ALL, &DEMO_OPERATORS, 2000);
        let evidence = |s: Scenario| -> Vec<(String, String)> {
            steps
                .iter()
                .filter(|st| st.scenario == s)
                .filter_map(|st| match &st.action {
                    Action::Evidence(e) => Some((e.token.user_id.clone(), e.visitor_id.clone())),
                    _ => None,
                })
                .collect()
        };
        // The multi-device person: three visitor ids, each with two older conversations and
        // the pass's conversation, all naming that person.
        let multi = evidence(Scenario::MultiDevice);
        let user = multi[0].0.clone();
        let visitors: std::collections::BTreeSet<_> = multi.iter().map(|e| &e.1).collect();
        assert_eq!(visitors.len(), 3);
        for v in &visitors {
            let on: Vec<_> = d
                .conversations
                .iter()
                .filter(|c| &&c.visitor_id == v)
                .collect();
            assert_eq!(on.len(), 3, "visitor {v}");
            assert!(on
                .iter()
                .all(|c| c.external_user_id.as_deref() == Some(user.as_str())));
            let older = on.iter().filter(|c| c.closed_at < rfc3339(start)).count();
            assert_eq!(older, 2);
        }
        // The mismatch: the login-mid-conversation conversation names the session-lapse person.
        let login = evidence(Scenario::LoginMidConversation);
        let lapse = evidence(Scenario::SessionLapse);
        let conv = steps
            .iter()
            .find_map(|st| match &st.action {
                Action::Evidence(e) if st.scenario == Scenario::LoginMidConversation => {
                    e.conversation_id.clone()
                }
                _ => None,
            })
            .unwrap();
        let record = d.conversations.iter().find(|c| c.id == conv).unwrap();
        assert_eq!(record.visitor_id, login[0].1);
        assert_eq!(
            record.external_user_id.as_deref(),
            Some(lapse[0].0.as_str())
        );
        assert_ne!(lapse[0].0, login[0].0);
        // It closes 30 s into the pass's scenario (started 2 s after the pass, one stagger).
        assert_eq!(
            record.closed_at,
            rfc3339(start + Duration::from_millis(2_000 + 30_000))
        );
        // Ids are unique; nobody else's visitors are in it.
        let ids: std::collections::BTreeSet<_> = d.conversations.iter().map(|c| &c.id).collect();
        assert_eq!(ids.len(), d.conversations.len());
        let forged = evidence(Scenario::Forged);
        assert!(d.conversations.iter().all(|c| c.visitor_id != forged[0].1));
        assert_eq!(d.users, vec![("u".to_owned(), "p".to_owned())]);
    }

    /// The data folders and the desk store hold personal data: owner-only, whatever the umask.
    #[cfg(unix)]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_data_folders_and_the_store_are_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("demo");
        let service = start(&dir, one_pass()).await.unwrap();
        for d in [dir.clone(), dir.join("keys"), dir.join("gateway")] {
            assert_eq!(mode(&d), 0o700, "{}", d.display());
        }
        assert_eq!(mode(&dir.join(lockdesk_service::DESK_FILE)), 0o600);
        service.shutdown().await;
    }

    #[test]
    fn endless_demos_get_a_bounded_dataset_and_ids_differ_per_pass() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_790_000_000);
        let endless = DemoSettings::default();
        let d = backfill_dataset(&endless, start, "u", "p");
        let one = backfill_dataset(&one_pass(), start, "u", "p")
            .conversations
            .len();
        assert_eq!(d.conversations.len(), one * DATASET_PASSES as usize);
        let ids: std::collections::HashSet<_> = d.conversations.iter().map(|c| &c.id).collect();
        assert_eq!(ids.len(), d.conversations.len());
    }
}
