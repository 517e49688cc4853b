//! The desk session behind a window, without the window: one task owns the running desk service
//! (the configured gateway, or the embedded demo when no feed is configured) and takes
//! restart / saved-settings / shutdown commands in order; its forwarders turn the service's
//! committed changes into window events, notices and the tray's status. The desktop app
//! (src-tauri) implements [`Host`] (window events, notifier, tray) and [`Launcher`] (the saved
//! configuration, how a service starts) and wraps [`Session`]'s methods as its commands.
//!
//! ```text
//!  Session::restart / saved / shutdown ──mpsc──▶ owner task (one) ──start/stop──▶ DeskService
//!                                                    │ spawns, cancels and joins
//!                                                    ▼
//!                   forward_status ─┐  check_store ─┐  forward_changes (notices, backlog gate)
//!                                   └──────────────┴──▶ Host: emit / set_tray / notify / preferences
//! ```
//!
//! Invariants: restarts are serialised (one owner task: two quick saves give two restarts in
//! order, the old service shut down before the next starts, never two at once); a shutdown stops
//! the service and cancels and joins every task the session spawned before it returns; no
//! forwarder of a stopped service emits anything after its cancellation; every window event
//! that carries rows has a revision higher than any snapshot that does not show them.
//!
//! Must not: query SQLite on the async executor (every read is `spawn_blocking`); emit a row the
//! store has not committed; notify for a muted kind.

pub mod notice;

mod forward;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use lockdesk_api::desk_map;
use lockdesk_api::{
    ConversationDetail, ConversationRow, DeskEvent, DeskSnapshot, DeskStatus, FeedStatus, History,
    IpcError, IpcErrorCode, StoreIntegrity,
};
use lockdesk_config::{Config, Language, Notifications};
use lockdesk_desk::ConversationQuery;
use lockdesk_service::{DeskService, StopReason};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use notice::{Backlog, Notice};

/// The list shows at most this many conversations (newest first).
const LIST_LIMIT: u32 = 20_000;

/// What the session shows the advisor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notification {
    /// One live change's notice (the host groups bursts).
    Notice(Notice),
    /// What a backlog held, once the desk has caught up (never empty).
    Summary(Backlog),
    /// The desk stopped receiving for good (credential revoked, ...): said once per service.
    Stopped(StopReason),
}

/// The window, the notifier and the tray, as the session reaches them (the desktop app's
/// implementation is src-tauri's `desk.rs`; the tests' records the calls). Called from the
/// session's tasks: must not block.
pub trait Host: Send + Sync + 'static {
    /// A `desk://changed` event for the window.
    fn emit(&self, event: DeskEvent);
    /// The tray's status line.
    fn set_tray(&self, status: &DeskStatus);
    /// A desktop notification (mutes are the session's for backlogs, the host's for notices:
    /// see [`Host::preferences`]).
    fn notify(&self, notification: Notification);
    /// The language and notification mutes from now on: at each start, and when Settings saves
    /// only them (no restart).
    fn preferences(&self, language: Language, notifications: &Notifications);
}

/// A started desk service and the session lifetime it checks the store with.
pub struct Started {
    pub service: DeskService,
    pub session_lifetime_secs: i64,
}

/// A boxed future, `Send`, borrowing from the launcher.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where the configuration comes from and how a desk service starts and stops.
pub trait Launcher: Send + Sync + 'static {
    /// The saved configuration (blocking: called on the blocking pool). `Err`: it exists but
    /// cannot be read (nothing starts, not even the demo; the reason is on the first screen).
    fn load(&self) -> Result<Config, String>;
    /// Starts the service `config` describes (the embedded demo when it has no feed).
    fn start<'a>(&'a self, config: &'a Config) -> BoxFuture<'a, Result<Started, String>>;
    /// Stops a service this launcher started (awaited before the next one starts).
    fn stop<'a>(&'a self, service: &'a DeskService) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            service.shutdown().await;
        })
    }
}

/// What a saved configuration asks of the running desk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterSave {
    /// Nothing the desk uses changed.
    Nothing,
    /// Only preferences applied on the fly (language, notification mutes).
    Live,
    /// The service depends on what changed: restart it (the store, and the demo's, are kept).
    Restart,
}

/// Which saved change needs a restart. The service (feed client, keys, desk, backfill) is built
/// from the feed (URL, credential), the trusted issuers, the decryption keys, the verification
/// policy (leeway, session lifetime, token lifetime, encryption) and iAdvize's API: any change
/// there restarts it. The embedded demo (no feed before nor after) uses its own keys, gateway,
/// policy and iAdvize stand-in, so only configuring a feed restarts it. The language and the
/// notification mutes are the UI's and the notifier's: applied live.
pub fn after_save(running: &Config, saved: &Config) -> AfterSave {
    let demo = !running.has_feed() && !saved.has_feed();
    let service_changed = if demo {
        running.feed != saved.feed
    } else {
        running.feed != saved.feed
            || running.trust != saved.trust
            || running.decryption != saved.decryption
            || running.verification != saved.verification
            || running.iadvize != saved.iadvize
    };
    if service_changed {
        AfterSave::Restart
    } else if running.ui != saved.ui || running.notifications != saved.notifications {
        AfterSave::Live
    } else {
        AfterSave::Nothing
    }
}

/// What the commands read while the owner task runs the desk.
struct Shared {
    host: Arc<dyn Host>,
    service: Mutex<Option<Arc<DeskService>>>,
    /// Why the desk is not running, when it is not.
    failure: Mutex<Option<String>>,
    /// `config.toml` could not be read or parsed: nothing was started (not even the demo).
    config_error: Mutex<Option<String>>,
    /// The latest check of the store against the audit chain (at start, then "Verify again").
    integrity: Mutex<Option<StoreIntegrity>>,
    /// The running desk's configured session lifetime, for that check.
    lifetime_secs: AtomicI64,
    revision: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    /// Nothing running yet, nothing checked, revision 0.
    fn new(host: Arc<dyn Host>) -> Shared {
        Shared {
            host,
            service: Mutex::new(None),
            failure: Mutex::new(None),
            config_error: Mutex::new(None),
            integrity: Mutex::new(None),
            lifetime_secs: AtomicI64::new(0),
            revision: AtomicU64::new(0),
        }
    }

    fn current(&self) -> Option<Arc<DeskService>> {
        lock(&self.service).clone()
    }

    fn next_revision(&self) -> u64 {
        self.revision.fetch_add(1, Ordering::SeqCst) + 1
    }

    fn announce_reset(&self) {
        let revision = self.next_revision();
        self.host.emit(DeskEvent::Reset { revision });
    }

    fn not_running(&self) -> IpcError {
        let why = lock(&self.failure)
            .clone()
            .unwrap_or_else(|| "the desk is starting".into());
        IpcError::new(IpcErrorCode::Internal, why)
    }

    fn status(&self) -> DeskStatus {
        match self.current() {
            Some(s) => {
                let rx = s.status();
                let st = rx.borrow().clone();
                forward::status_of(&st, rx.has_changed().is_err())
            }
            None => DeskStatus {
                feed: match lock(&self.config_error).clone() {
                    Some(reason) => FeedStatus::ConfigUnreadable { reason },
                    None => FeedStatus::Disconnected {
                        reason: lock(&self.failure)
                            .clone()
                            .unwrap_or_else(|| "the desk is starting".into()),
                    },
                },
                demo: false,
                last_seq: None,
                head_seq: None,
            },
        }
    }

    /// The status, to the window and the tray.
    fn tell_status(&self) {
        let status = self.status();
        self.host.set_tray(&status);
        self.host.emit(DeskEvent::Status { status });
    }
}

enum Command {
    Restart(oneshot::Sender<()>),
    Saved(oneshot::Sender<AfterSave>),
    Shutdown(oneshot::Sender<()>),
}

/// The running desk: what the commands ask, and the handle to its owner task.
pub struct Session {
    shared: Arc<Shared>,
    commands: mpsc::UnboundedSender<Command>,
    owner: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Session {
    /// Spawns the owner task (on the current tokio runtime). Nothing starts until
    /// [`Session::restart`].
    pub fn new(host: Arc<dyn Host>, launcher: Arc<dyn Launcher>) -> Session {
        let shared = Arc::new(Shared::new(host));
        let (commands, rx) = mpsc::unbounded_channel();
        let owner = tokio::spawn(own(shared.clone(), launcher, rx));
        Session {
            shared,
            commands,
            owner: Mutex::new(Some(owner)),
        }
    }

    /// Starts (or restarts) the desk from the saved configuration; returns once it runs (or
    /// failed to start: the status says why). Restarts asked together run one after the other.
    pub async fn restart(&self) {
        let (done, wait) = oneshot::channel();
        if self.commands.send(Command::Restart(done)).is_ok() {
            let _ = wait.await;
        }
    }

    /// After Settings saved: restarts the desk when a setting it depends on changed (or it is
    /// not running), applies the language and mutes live otherwise ([`after_save`]).
    pub async fn saved(&self) -> AfterSave {
        let (done, wait) = oneshot::channel();
        if self.commands.send(Command::Saved(done)).is_err() {
            return AfterSave::Nothing;
        }
        wait.await.unwrap_or(AfterSave::Nothing)
    }

    /// Stops the desk service and every task of the session, and waits for them. Later
    /// commands do nothing. Idempotent.
    pub async fn shutdown(&self) {
        let (done, wait) = oneshot::channel();
        if self.commands.send(Command::Shutdown(done)).is_ok() {
            let _ = wait.await;
        }
        let owner = lock(&self.owner).take();
        if let Some(owner) = owner {
            if let Err(e) = owner.await {
                tracing::error!("the desk session's task failed: {e}");
            }
        }
    }

    /// The status the header shows.
    pub fn status(&self) -> DeskStatus {
        self.shared.status()
    }

    /// The running service, or why there is none (for the supervisor's commands).
    pub fn running(&self) -> Result<Arc<DeskService>, IpcError> {
        self.shared
            .current()
            .ok_or_else(|| self.shared.not_running())
    }

    /// Records a check of the store against the audit chain (what the list shows with it).
    pub fn set_integrity(&self, integrity: StoreIntegrity) {
        *lock(&self.shared.integrity) = Some(integrity);
    }

    pub fn integrity(&self) -> Option<StoreIntegrity> {
        lock(&self.shared.integrity).clone()
    }

    pub fn lifetime_secs(&self) -> i64 {
        self.shared.lifetime_secs.load(Ordering::SeqCst)
    }

    /// A new revision, announced as `reset`: the window lists again (after a check of the
    /// store, whose result comes with the list).
    pub fn announce_reset(&self) {
        self.shared.announce_reset();
    }

    /// Every conversation row, newest first, with the status and the snapshot's revision.
    pub async fn list(&self) -> Result<DeskSnapshot, IpcError> {
        // The revision is read before the query: an event emitted after it carries a higher one,
        // and one emitted before it is already reflected in the rows (see ui/src/ipc/desk.ts).
        let revision = self.shared.revision.load(Ordering::SeqCst);
        let status = self.status();
        let integrity = self.integrity();
        let Some(service) = self.shared.current() else {
            // Starting (or failed to start: the status says why). The UI lists again on `reset`.
            return Ok(DeskSnapshot {
                status,
                conversations: Vec::new(),
                revision,
                integrity: None,
            });
        };
        let mut conversations = blocking(move || {
            service.read(|desk| {
                let counts = desk.alert_counts().map_err(store_err)?;
                let rows = desk
                    .conversations(&ConversationQuery {
                        open_only: false,
                        limit: LIST_LIMIT,
                    })
                    .map_err(store_err)?;
                Ok(rows
                    .iter()
                    .map(|r| desk_map::row(r, counts.get(&r.conversation_id).copied().unwrap_or(0)))
                    .collect::<Vec<ConversationRow>>())
            })
        })
        .await?;
        conversations.sort_by_key(|c| std::cmp::Reverse(c.updated_at_ms));
        Ok(DeskSnapshot {
            status,
            conversations,
            revision,
            integrity,
        })
    }

    /// One conversation: row, identity card, timeline, alerts.
    pub async fn detail(&self, id: String) -> Result<ConversationDetail, IpcError> {
        let service = self.running()?;
        blocking(move || {
            service.read(|desk| match desk.conversation(&id).map_err(store_err)? {
                Some(d) => Ok(desk_map::detail(&d)),
                None => Err(IpcError::new(
                    IpcErrorCode::Internal,
                    format!("no conversation {id}"),
                )),
            })
        })
        .await
    }

    /// A verified person's cross-device history.
    pub async fn history(&self, user_id: String) -> Result<History, IpcError> {
        let service = self.running()?;
        blocking(move || {
            service.read(|desk| {
                Ok(desk_map::history(
                    &desk.history(&user_id).map_err(store_err)?,
                ))
            })
        })
        .await
    }
}

/// Runs `f` on the blocking pool (SQLite), mapping a lost task to an IpcError.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, IpcError> + Send + 'static,
) -> Result<T, IpcError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        IpcError::new(
            IpcErrorCode::Internal,
            format!("background task failed: {e}"),
        )
    })?
}

fn store_err(e: lockdesk_desk::DeskError) -> IpcError {
    IpcError::new(IpcErrorCode::Internal, e.to_string())
}

/// The service the owner task runs, with its configuration and its tasks.
struct Running {
    service: Arc<DeskService>,
    /// The configuration it started with (what [`after_save`] compares a save to).
    config: Config,
    /// Where live preferences (language, notification mutes) go.
    prefs: watch::Sender<Config>,
    cancel: CancellationToken,
    tasks: JoinSet<()>,
}

/// The owner task: runs one command at a time, so restarts never overlap.
async fn own(
    shared: Arc<Shared>,
    launcher: Arc<dyn Launcher>,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    let mut running: Option<Running> = None;
    while let Some(command) = commands.recv().await {
        match command {
            Command::Restart(done) => {
                restart(&shared, &launcher, &mut running).await;
                let _ = done.send(());
            }
            Command::Saved(done) => {
                let decision = saved(&shared, &launcher, &mut running).await;
                let _ = done.send(decision);
            }
            Command::Shutdown(done) => {
                stop(&launcher, &mut running).await;
                *lock(&shared.service) = None;
                *lock(&shared.failure) = Some("the desk has stopped".into());
                tracing::info!("the desk has stopped");
                let _ = done.send(());
                return;
            }
        }
    }
    // Every handle is gone: nothing can ask any more; stop anyway.
    stop(&launcher, &mut running).await;
}

/// Cancels and joins the running service's tasks, then stops it.
async fn stop(launcher: &Arc<dyn Launcher>, running: &mut Option<Running>) {
    let Some(mut r) = running.take() else {
        return;
    };
    r.cancel.cancel();
    while let Some(joined) = r.tasks.join_next().await {
        if let Err(e) = joined {
            tracing::error!("a desk session task failed: {e}");
        }
    }
    launcher.stop(&r.service).await;
}

async fn load(launcher: &Arc<dyn Launcher>) -> Result<Config, String> {
    let launcher = launcher.clone();
    tokio::task::spawn_blocking(move || launcher.load())
        .await
        .unwrap_or_else(|e| Err(format!("reading the configuration: {e}")))
}

async fn restart(
    shared: &Arc<Shared>,
    launcher: &Arc<dyn Launcher>,
    running: &mut Option<Running>,
) {
    stop(launcher, running).await;
    *lock(&shared.service) = None;
    *lock(&shared.integrity) = None;
    // A configuration that exists but cannot be read is never taken for "nothing configured":
    // no demo, the file left untouched, the reason on the first screen.
    let config = match load(launcher).await {
        Ok(c) => {
            *lock(&shared.config_error) = None;
            c
        }
        Err(reason) => {
            tracing::error!("the configuration could not be read: {reason}");
            *lock(&shared.config_error) = Some(reason);
            shared.tell_status();
            shared.announce_reset();
            return;
        }
    };
    if config.has_feed() {
        tracing::info!("starting the desk on the configured gateway");
    }
    let started = match launcher.start(&config).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("the desk could not start: {e}");
            *lock(&shared.failure) = Some(format!("the desk could not start: {e}"));
            shared.tell_status();
            return;
        }
    };
    let service = Arc::new(started.service);
    shared
        .lifetime_secs
        .store(started.session_lifetime_secs, Ordering::SeqCst);
    *lock(&shared.failure) = None;
    *lock(&shared.service) = Some(service.clone());
    shared.announce_reset();
    shared
        .host
        .preferences(config.ui.language, &config.notifications);

    let cancel = CancellationToken::new();
    let mut tasks = JoinSet::new();
    tasks.spawn(forward::forward_status(
        shared.clone(),
        service.status(),
        cancel.clone(),
    ));
    tasks.spawn(forward::check_store(
        shared.clone(),
        service.data_dir().to_owned(),
        started.session_lifetime_secs,
        cancel.clone(),
    ));
    let (prefs, prefs_rx) = watch::channel(config.clone());
    tasks.spawn(forward::forward_changes(
        shared.clone(),
        forward::Inputs {
            events: service.events(),
            status: service.status(),
            store: service.clone(),
        },
        prefs_rx,
        cancel.clone(),
    ));
    *running = Some(Running {
        service,
        config,
        prefs,
        cancel,
        tasks,
    });
}

async fn saved(
    shared: &Arc<Shared>,
    launcher: &Arc<dyn Launcher>,
    running: &mut Option<Running>,
) -> AfterSave {
    let loaded = load(launcher).await;
    let decision = match (running.as_mut(), &loaded) {
        (Some(r), Ok(saved)) => {
            let decision = after_save(&r.config, saved);
            if decision == AfterSave::Live {
                r.prefs.send_replace(saved.clone());
                shared
                    .host
                    .preferences(saved.ui.language, &saved.notifications);
                r.config = saved.clone();
                tracing::info!("settings saved: applied without restarting the desk");
            }
            decision
        }
        _ => AfterSave::Restart,
    };
    if decision == AfterSave::Restart {
        restart(shared, launcher, running).await;
    }
    decision
}

#[cfg(test)]
mod tests;
