//! The desk behind the window: starts the desk service (the configured gateway, or the embedded
//! demo when no feed is configured), forwards its committed changes to the UI as `desk://changed`
//! events, raises desktop notifications, keeps the tray's status line current, and restarts it
//! when a saved setting it depends on changed ([`after_save`]; the language and notification
//! mutes apply live, without a restart).
//!
//! Must not: query SQLite on the async executor (every read is `spawn_blocking`); emit a row the
//! store has not committed; notify for a muted kind.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use lockdesk_api::desk_map;
use lockdesk_api::{
    ConversationDetail, ConversationRow, DeskEvent, DeskSnapshot, DeskStatus, FeedStatus, History,
    IpcError, IpcErrorCode, StoreIntegrity,
};
use lockdesk_config::Config;
use lockdesk_desk::{AlertKind, AuthStateName, Change, ConversationQuery};
use lockdesk_service::{demo::DemoSettings, DeskService, Options, ServiceEvent};
use tauri::{AppHandle, Emitter, Manager, Runtime};

use crate::notify::{self, Notice, NoticeKind};

pub const DESK_CHANGED: &str = "desk://changed";
pub const DESK_FOCUS: &str = "desk://focus";

/// The list shows at most this many conversations (newest first).
const LIST_LIMIT: u32 = 20_000;

/// The running desk, shared by the commands and the forwarder.
#[derive(Default)]
pub struct DeskHolder {
    service: Mutex<Option<Arc<DeskService>>>,
    /// Why the desk is not running, when it is not.
    failure: Mutex<Option<String>>,
    revision: AtomicU64,
    /// Bumped at each (re)start: a forwarder of an older service stops emitting.
    generation: AtomicU64,
    /// `config.toml` could not be read or parsed: nothing was started (not even the demo).
    config_error: Mutex<Option<String>>,
    /// The latest check of the store against the audit chain (at start, then "Verify again").
    integrity: Mutex<Option<StoreIntegrity>>,
    /// The running desk's configured session lifetime, for that check.
    lifetime_secs: std::sync::atomic::AtomicI64,
    /// The configuration the running desk started with, and where its live preferences
    /// (language, notification mutes) go (see [`apply_saved`]).
    running: Mutex<Option<(Config, tokio::sync::watch::Sender<Config>)>>,
}

/// What a saved configuration asks of the running desk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AfterSave {
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
pub(crate) fn after_save(running: &Config, saved: &Config) -> AfterSave {
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

/// After Settings saved: restarts the desk when a setting it depends on changed (or it is not
/// running), applies the language and mutes live otherwise ([`after_save`]).
pub async fn apply_saved<R: Runtime>(app: AppHandle<R>) {
    let holder = app.state::<Arc<DeskHolder>>().inner().clone();
    let settings = app.state::<crate::AppState>().settings.clone();
    let saved = tauri::async_runtime::spawn_blocking(move || settings.load()).await;
    let decision = {
        let running = holder.running.lock().unwrap_or_else(|p| p.into_inner());
        match (&*running, &saved) {
            (Some((config, prefs)), Ok(Ok(saved))) if holder.current().is_some() => {
                let decision = after_save(config, saved);
                if decision == AfterSave::Live {
                    prefs.send_replace(saved.clone());
                }
                decision
            }
            _ => AfterSave::Restart,
        }
    };
    match decision {
        AfterSave::Restart => start(app).await,
        AfterSave::Live => {
            if let (Some((config, _)), Ok(Ok(saved))) = (
                &mut *holder.running.lock().unwrap_or_else(|p| p.into_inner()),
                saved,
            ) {
                *config = saved;
            }
            tracing::info!("settings saved: applied without restarting the desk");
        }
        AfterSave::Nothing => {}
    }
}

impl DeskHolder {
    fn current(&self) -> Option<Arc<DeskService>> {
        self.service
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The running service, or why there is none (for the supervisor's commands).
    pub(crate) fn running(&self) -> Result<Arc<DeskService>, IpcError> {
        self.current().ok_or_else(|| self.not_running())
    }

    /// True once [`start`] has run (the app starts the desk in its setup).
    pub fn started(&self) -> bool {
        self.generation.load(Ordering::SeqCst) > 0
    }

    /// Records a check of the store against the audit chain (what the list shows with it).
    pub(crate) fn set_integrity(&self, integrity: StoreIntegrity) {
        *self.integrity.lock().unwrap_or_else(|p| p.into_inner()) = Some(integrity);
    }

    pub(crate) fn integrity(&self) -> Option<StoreIntegrity> {
        self.integrity
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) fn lifetime_secs(&self) -> i64 {
        self.lifetime_secs.load(Ordering::SeqCst)
    }

    /// A new revision, announced as `reset`: the window lists again (after a check of the
    /// store, whose result comes with the list).
    pub(crate) fn announce_reset<R: Runtime>(&self, app: &AppHandle<R>) {
        let revision = self.next_revision();
        let _ = app.emit(DESK_CHANGED, DeskEvent::Reset { revision });
    }

    fn next_revision(&self) -> u64 {
        self.revision.fetch_add(1, Ordering::SeqCst) + 1
    }

    fn not_running(&self) -> IpcError {
        let why = self
            .failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or_else(|| "the desk is starting".into());
        IpcError::new(IpcErrorCode::Internal, why)
    }

    /// The status the header shows.
    pub fn status(&self) -> DeskStatus {
        match self.current() {
            Some(s) => {
                let rx = s.status();
                let st = rx.borrow().clone();
                status_of(&st, rx.has_changed().is_err())
            }
            None => DeskStatus {
                feed: match self
                    .config_error
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone()
                {
                    Some(reason) => FeedStatus::ConfigUnreadable { reason },
                    None => FeedStatus::Disconnected {
                        reason: self
                            .failure
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
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
}

/// Runs `f` with the service on a blocking thread.
async fn with_service<T: Send + 'static>(
    holder: Arc<DeskHolder>,
    f: impl FnOnce(&DeskService) -> Result<T, IpcError> + Send + 'static,
) -> Result<T, IpcError> {
    let service = holder.running()?;
    crate::commands::blocking(move || f(&service)).await
}

fn store_err(e: lockdesk_desk::DeskError) -> IpcError {
    IpcError::new(IpcErrorCode::Internal, e.to_string())
}

pub async fn list(holder: Arc<DeskHolder>) -> Result<DeskSnapshot, IpcError> {
    // The revision is read before the query: an event emitted after it carries a higher one, and
    // one emitted before it is already reflected in the rows (see ui/src/ipc/desk.ts).
    let revision = holder.revision.load(Ordering::SeqCst);
    let status = holder.status();
    let integrity = holder.integrity();
    if holder.current().is_none() {
        // Starting (or failed to start: the status says why). The UI lists again on `reset`.
        return Ok(DeskSnapshot {
            status,
            conversations: Vec::new(),
            revision,
            integrity: None,
        });
    }
    let mut conversations = with_service(holder, |s| {
        s.read(|desk| {
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

pub async fn detail(holder: Arc<DeskHolder>, id: String) -> Result<ConversationDetail, IpcError> {
    with_service(holder, move |s| {
        s.read(|desk| match desk.conversation(&id).map_err(store_err)? {
            Some(d) => Ok(desk_map::detail(&d)),
            None => Err(IpcError::new(
                IpcErrorCode::Internal,
                format!("no conversation {id}"),
            )),
        })
    })
    .await
}

pub async fn history(holder: Arc<DeskHolder>, user_id: String) -> Result<History, IpcError> {
    with_service(holder, move |s| {
        s.read(|desk| {
            Ok(desk_map::history(
                &desk.history(&user_id).map_err(store_err)?,
            ))
        })
    })
    .await
}

/// Starts (or restarts) the desk from the saved configuration.
pub async fn start<R: Runtime>(app: AppHandle<R>) {
    let holder = app.state::<Arc<DeskHolder>>().inner().clone();
    let state = app.state::<crate::AppState>();
    let settings = state.settings.clone();
    let data_dir = state.data_dir.clone();
    let generation = holder.generation.fetch_add(1, Ordering::SeqCst) + 1;

    *holder.running.lock().unwrap_or_else(|p| p.into_inner()) = None;
    let old = holder
        .service
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    if let Some(old) = old {
        old.shutdown().await;
    }

    *holder.integrity.lock().unwrap_or_else(|p| p.into_inner()) = None;
    let loaded = tauri::async_runtime::spawn_blocking(move || settings.load())
        .await
        .unwrap_or_else(|e| {
            Err(IpcError::new(
                IpcErrorCode::Internal,
                format!("reading the configuration: {e}"),
            ))
        });
    // A configuration that exists but cannot be read is never taken for "nothing configured":
    // no demo, the file left untouched, the reason on the first screen.
    let config = match loaded {
        Ok(c) => {
            *holder
                .config_error
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = None;
            c
        }
        Err(e) => {
            tracing::error!("the configuration could not be read: {}", e.message);
            *holder
                .config_error
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = Some(e.message);
            let _ = app.emit(
                DESK_CHANGED,
                DeskEvent::Status {
                    status: holder.status(),
                },
            );
            crate::tray::set_status(&app, &holder.status());
            holder.announce_reset(&app);
            return;
        }
    };
    let demo = !config.has_feed();
    holder.lifetime_secs.store(
        if demo {
            DemoSettings::default().session_lifetime_secs
        } else {
            i64::from(config.verification.session_lifetime_mins) * 60
        },
        Ordering::SeqCst,
    );
    let started = if !demo {
        tracing::info!("starting the desk on the configured gateway");
        DeskService::start(Options::from_config(&config, &data_dir)).await
    } else {
        tracing::info!("no feed configured: starting the embedded demo");
        DeskService::start_demo(&data_dir.join("demo"), DemoSettings::default()).await
    };
    let service = match started {
        Ok(s) => Arc::new(s),
        Err(e) => {
            tracing::error!("the desk could not start: {e}");
            *holder.failure.lock().unwrap_or_else(|p| p.into_inner()) =
                Some(format!("the desk could not start: {e}"));
            let _ = app.emit(
                DESK_CHANGED,
                DeskEvent::Status {
                    status: holder.status(),
                },
            );
            crate::tray::set_status(&app, &holder.status());
            return;
        }
    };
    *holder.failure.lock().unwrap_or_else(|p| p.into_inner()) = None;
    *holder.service.lock().unwrap_or_else(|p| p.into_inner()) = Some(service.clone());
    let revision = holder.next_revision();
    let _ = app.emit(DESK_CHANGED, DeskEvent::Reset { revision });

    tauri::async_runtime::spawn(forward_status(
        app.clone(),
        holder.clone(),
        service.clone(),
        generation,
    ));
    tauri::async_runtime::spawn(check_store(
        app.clone(),
        holder.clone(),
        service.clone(),
        generation,
    ));
    let (prefs, prefs_rx) = tokio::sync::watch::channel(config.clone());
    *holder.running.lock().unwrap_or_else(|p| p.into_inner()) = Some((config, prefs));
    tauri::async_runtime::spawn(forward_changes(app, holder, service, prefs_rx, generation));
}

/// At desk start: the store checked against the audit chain (linear in the log: about 2 s per
/// million entries on the development machine), off the UI thread. Until it ends the list
/// shows no verdict on it; then the window lists again with the result, so a row edited
/// offline is shown as unverifiable and a banner says what disagrees.
async fn check_store<R: Runtime>(
    app: AppHandle<R>,
    holder: Arc<DeskHolder>,
    service: Arc<DeskService>,
    generation: u64,
) {
    let dir = service.data_dir().to_owned();
    let lifetime = holder.lifetime_secs();
    let started = std::time::Instant::now();
    let result = crate::commands::blocking(move || {
        lockdesk_api::supervisor::audit_check(&dir, lifetime, lockdesk_service::now_ms())
    })
    .await;
    if holder.generation.load(Ordering::SeqCst) != generation {
        return;
    }
    match result {
        Ok((status, integrity)) => {
            if integrity.ok {
                tracing::info!(
                    entries = status.entries,
                    ms = started.elapsed().as_millis() as u64,
                    "the store agrees with the audit log"
                );
            } else {
                tracing::error!(
                    problems = integrity.problem_count,
                    first = integrity.problems.first().map(String::as_str).unwrap_or(""),
                    "the store disagrees with the audit log"
                );
            }
            holder.set_integrity(integrity);
        }
        Err(e) => {
            tracing::error!(
                "the store could not be checked against the audit log: {}",
                e.message
            );
            holder.set_integrity(StoreIntegrity {
                ok: false,
                problem_count: 1,
                problems: vec![format!(
                    "the store could not be checked against the audit log: {}",
                    e.message
                )],
                conversation_ids: Vec::new(),
                chain_broken: false,
                checked_at_ms: lockdesk_service::now_ms(),
            });
        }
    }
    holder.announce_reset(&app);
}

async fn forward_status<R: Runtime>(
    app: AppHandle<R>,
    holder: Arc<DeskHolder>,
    service: Arc<DeskService>,
    generation: u64,
) {
    let mut status = service.status();
    loop {
        if holder.generation.load(Ordering::SeqCst) != generation {
            break;
        }
        let s = status.borrow_and_update().clone();
        let dto = status_of(&s, false);
        crate::tray::set_status(&app, &dto);
        let _ = app.emit(DESK_CHANGED, DeskEvent::Status { status: dto });
        if status.changed().await.is_err() {
            // The service's status ended: its last value ("Connected"...) is no longer true.
            if holder.generation.load(Ordering::SeqCst) == generation {
                let dto = status_of(&s, true);
                crate::tray::set_status(&app, &dto);
                let _ = app.emit(DESK_CHANGED, DeskEvent::Status { status: dto });
            }
            break;
        }
    }
}

/// The header's status from the service's; `ended`: the service's status channel is closed (its
/// status task is gone), so its last value says nothing about now.
fn status_of(s: &lockdesk_service::ServiceStatus, ended: bool) -> DeskStatus {
    if ended {
        let stopped = lockdesk_service::State::Stopped {
            reason: lockdesk_service::StopReason::Failed("the desk has stopped".into()),
        };
        return desk_map::status(&stopped, s.demo, progress_of(s));
    }
    desk_map::status(&s.feed, s.demo, progress_of(s))
}

fn progress_of(s: &lockdesk_service::ServiceStatus) -> desk_map::Progress {
    desk_map::Progress {
        cursor: s.cursor,
        head: s.head,
        behind_too_long: s.behind_too_long,
    }
}

/// Which notification a change calls for, given the conversation's previous state.
fn notice_for(change: &Change, previous: Option<AuthStateName>) -> Option<NoticeKind> {
    if let Some(alert) = change.alert {
        // Exhaustive: a new alert kind does not compile until it has its notice.
        return Some(match alert {
            AlertKind::VerificationFailed => NoticeKind::VerificationFailed,
            AlertKind::IdentitySwitched | AlertKind::PlatformMismatch => {
                NoticeKind::IdentityMismatch
            }
            AlertKind::SharedDevice => NoticeKind::SharedDevice,
            AlertKind::ReusedUserId => NoticeKind::ReusedUserId,
            AlertKind::SessionLapsed => NoticeKind::SessionLapsed,
            AlertKind::LookalikeUserId => NoticeKind::LookalikeUserId,
        });
    }
    (change.state == Some(AuthStateName::Secured) && previous != Some(AuthStateName::Secured))
        .then_some(NoticeKind::Secured)
}

async fn forward_changes<R: Runtime>(
    app: AppHandle<R>,
    holder: Arc<DeskHolder>,
    service: Arc<DeskService>,
    mut prefs: tokio::sync::watch::Receiver<Config>,
    generation: u64,
) {
    let mut events = service.events();
    let mut last_state: HashMap<String, AuthStateName> = HashMap::new();
    let config = prefs.borrow_and_update().clone();
    let language = config.ui.language;
    let mut mutes = config.notifications;
    let mut prefs_open = true;
    // Groups bursts and shows them in order on its own thread; a click opens the conversation
    // (or, for a group or summary about several, the window).
    let click_app = app.clone();
    let mut notifier = notify::Notifier::new(
        language,
        config.notifications,
        Arc::new(move |conversation_id: Option<String>| {
            crate::focus_main_window(&click_app);
            if let Some(conversation_id) = conversation_id {
                let _ = click_app.emit(
                    DESK_FOCUS,
                    lockdesk_api::FocusConversation { conversation_id },
                );
            }
        }),
    );
    // Notices of a backlog, shown as one summary once the desk is live again (or quiet).
    let mut backlog = BacklogGate::default();
    // A desk that stops receiving for good (credential revoked, ...) says so once, beside the
    // banner: the advisor may be looking at another window.
    let mut status = service.status();
    let mut status_open = true;
    let mut stop_told = false;
    let mut tell_stop = |feed: &lockdesk_service::State, notifier: &notify::Notifier| {
        if let (lockdesk_service::State::Stopped { reason }, false) = (feed, stop_told) {
            if holder.generation.load(Ordering::SeqCst) == generation {
                stop_told = true;
                notifier.stopped(reason);
            }
        }
    };
    tell_stop(&status.borrow_and_update().feed, &notifier);
    loop {
        let until = backlog.wait_until(tokio::time::Instant::now());
        let next = tokio::select! {
            changed = status.changed(), if status_open => {
                match changed {
                    Ok(()) => {
                        let feed = status.borrow_and_update().feed.clone();
                        tell_stop(&feed, &notifier);
                    }
                    Err(_) => status_open = false,
                }
                continue;
            }
            changed = prefs.changed(), if prefs_open => {
                // Settings saved with a new language or mutes: applied from the next notice.
                match changed {
                    Ok(()) => {
                        let saved = prefs.borrow_and_update().clone();
                        mutes = saved.notifications;
                        notifier.set_preferences(saved.ui.language, saved.notifications);
                    }
                    Err(_) => prefs_open = false,
                }
                continue;
            }
            next = async {
                match until {
                    None => Some(events.recv().await),
                    Some(until) => tokio::time::timeout_at(until, events.recv()).await.ok(),
                }
            } => next,
        };
        let Some(next) = next else {
            notifier.summary(&backlog.take());
            continue;
        };
        let changes = match next {
            Ok(ServiceEvent::Changes(c)) => c,
            Ok(ServiceEvent::Skipped(_)) => continue,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!("{n} desk changes were not forwarded: asking the UI to reload");
                let revision = holder.next_revision();
                let _ = app.emit(DESK_CHANGED, DeskEvent::Reset { revision });
                continue;
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                notifier.summary(&backlog.take());
                break;
            }
        };
        if holder.generation.load(Ordering::SeqCst) != generation {
            notifier.summary(&backlog.take());
            break;
        }
        // The rows and alerts as stored (a look-alike's notice names the identity its alert's
        // evidence says it imitates), then the notifications, then the window's events.
        let mut ids: Vec<String> = Vec::new();
        let mut alert_ids: Vec<i64> = Vec::new();
        for c in changes.iter() {
            if let Some(id) = &c.conversation_id {
                if !ids.contains(id) {
                    ids.push(id.clone());
                }
            }
            if let Some(a) = c.alert_id {
                alert_ids.push(a);
            }
        }
        let read = service.clone();
        let fetched = tauri::async_runtime::spawn_blocking(move || {
            read.read(|desk| {
                let mut rows = Vec::new();
                for id in &ids {
                    if let Ok(Some(d)) = desk.conversation(id) {
                        rows.push(desk_map::detail(&d).row);
                    }
                }
                let records: Vec<lockdesk_desk::AlertRecord> = alert_ids
                    .iter()
                    .filter_map(|a| desk.alert(*a).ok().flatten())
                    .collect();
                (rows, records)
            })
        })
        .await;
        let (rows, records) = match fetched {
            Ok(f) => (Some(f.0), f.1),
            Err(e) => {
                tracing::warn!("cannot read the changed rows: {e}");
                (None, Vec::new())
            }
        };
        let now = lockdesk_service::now_ms();
        let mut behind = false;
        for c in changes.iter() {
            let live = is_live(c, now);
            behind |= !live;
            let previous = c
                .conversation_id
                .as_ref()
                .and_then(|id| last_state.get(id))
                .copied();
            let record = c.alert_id.and_then(|a| records.iter().find(|r| r.id == a));
            if let Some(notice) = notice_for_change(c, previous, record) {
                if live {
                    notifier.show(&notice, std::time::Instant::now());
                } else {
                    backlog.add(&notice, &mutes, tokio::time::Instant::now());
                }
            }
            if let (Some(id), Some(st)) = (&c.conversation_id, c.state) {
                last_state.insert(id.clone(), st);
            }
        }
        if !behind {
            notifier.summary(&backlog.take());
        }
        let Some(rows) = rows else {
            continue;
        };
        for alert in records.iter().filter_map(desk_map::alert) {
            let revision = holder.next_revision();
            let _ = app.emit(DESK_CHANGED, DeskEvent::Alert { revision, alert });
        }
        for row in rows {
            let revision = holder.next_revision();
            let _ = app.emit(DESK_CHANGED, DeskEvent::Row { revision, row });
        }
    }
}

/// A backlog's summary is shown when a batch of current changes arrives, after this long
/// without changes, or [`BACKLOG_LONGEST`] after its first notice (a steady stream of old
/// changes must not hold it back).
const BACKLOG_QUIET: std::time::Duration = std::time::Duration::from_secs(3);
const BACKLOG_LONGEST: std::time::Duration = std::time::Duration::from_secs(10);

/// Whether a change is current enough to be notified on its own (see [`notify::LIVE_WINDOW_MS`]).
fn is_live(change: &Change, now_ms: i64) -> bool {
    now_ms.saturating_sub(change.at_ms) <= notify::LIVE_WINDOW_MS
}

/// The backlog's notices and when their summary is due.
#[derive(Default)]
struct BacklogGate {
    backlog: notify::Backlog,
    /// [`BACKLOG_LONGEST`] after the first notice counted.
    due: Option<tokio::time::Instant>,
}

impl BacklogGate {
    fn add(
        &mut self,
        notice: &Notice,
        settings: &lockdesk_config::Notifications,
        now: tokio::time::Instant,
    ) {
        self.backlog.add(notice, settings);
        if !self.backlog.is_empty() && self.due.is_none() {
            self.due = Some(now + BACKLOG_LONGEST);
        }
    }

    /// How long to wait for the next changes before showing the summary (`None`: nothing
    /// pending, wait as long as it takes).
    fn wait_until(&self, now: tokio::time::Instant) -> Option<tokio::time::Instant> {
        self.due.map(|due| due.min(now + BACKLOG_QUIET))
    }

    /// The summary to show now (empty when nothing is pending), leaving the gate empty.
    fn take(&mut self) -> notify::Backlog {
        self.due = None;
        std::mem::take(&mut self.backlog)
    }
}

/// The notice a change calls for: its conversation named by its verified userId (never its id),
/// its reason as a typed code (worded by `notify`, never shown raw).
fn notice_of(change: &Change, kind: NoticeKind) -> Notice {
    Notice {
        kind,
        conversation_id: change.conversation_id.clone(),
        user_id: change.user_id.clone(),
        reason: change.reason,
        lookalike: None,
    }
}

/// The notice a change calls for (`None`: none), given its conversation's previous state and its
/// alert's stored record. Device-level alerts (evidence that names no open conversation) notify
/// too, with no conversation to open. A look-alike names the identity imitated, from the
/// alert's evidence (without the record, it says "another identity").
fn notice_for_change(
    change: &Change,
    previous: Option<AuthStateName>,
    alert: Option<&lockdesk_desk::AlertRecord>,
) -> Option<Notice> {
    let kind = notice_for(change, previous)?;
    let mut notice = notice_of(change, kind);
    if kind == NoticeKind::LookalikeUserId {
        notice.lookalike = alert.and_then(|a| notify::LookalikePair::from_evidence(&a.evidence));
    }
    Some(notice)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lockdesk_config::Language;

    /// Issue 13: saving the language restarted the desk (and the demo lost its conversations).
    #[test]
    fn only_settings_the_service_depends_on_restart_it() {
        let mut gateway = Config::default();
        gateway.feed.url = Some("wss://gateway.example/v1/feed".into());
        gateway.feed.credential = Some("credential-1".into());
        let edited = |f: &dyn Fn(&mut Config)| {
            let mut c = gateway.clone();
            f(&mut c);
            c
        };
        assert_eq!(after_save(&gateway, &gateway), AfterSave::Nothing);
        // Applied live: the language, the notification mutes.
        let french = edited(&|c| c.ui.language = Language::Fr);
        assert_eq!(after_save(&gateway, &french), AfterSave::Live);
        let muted = edited(&|c| c.notifications.verification_failed = false);
        assert_eq!(after_save(&gateway, &muted), AfterSave::Live);
        // What the service is built from: restart.
        let restarts: [&dyn Fn(&mut Config); 7] = [
            &|c| c.feed.url = Some("wss://other.example/v1/feed".into()),
            &|c| c.feed.credential = Some("credential-2".into()),
            &|c| c.decryption.keys.push("/keys/desk.pem".into()),
            &|c| {
                c.trust.push(lockdesk_config::TrustedIssuer {
                    issuer: "brand".into(),
                    key: "/keys/brand.pem".into(),
                })
            },
            &|c| c.verification.session_lifetime_mins += 1,
            &|c| c.verification.require_encryption = !c.verification.require_encryption,
            &|c| c.iadvize.base_url = Some("https://api.iadvize.example".into()),
        ];
        for (i, f) in restarts.iter().enumerate() {
            assert_eq!(
                after_save(&gateway, &edited(*f)),
                AfterSave::Restart,
                "#{i}"
            );
        }
        // A restart wins over a live change saved with it.
        let both = edited(&|c| {
            c.ui.language = Language::Fr;
            c.feed.credential = Some("credential-2".into());
        });
        assert_eq!(after_save(&gateway, &both), AfterSave::Restart);

        // The demo uses none of the keys, policy or iAdvize settings: only a feed restarts it.
        let demo = Config::default();
        let mut keys_for_later = demo.clone();
        keys_for_later.decryption.keys.push("/keys/desk.pem".into());
        keys_for_later.verification.session_lifetime_mins += 1;
        assert_eq!(after_save(&demo, &keys_for_later), AfterSave::Nothing);
        let mut french_demo = demo.clone();
        french_demo.ui.language = Language::Fr;
        assert_eq!(after_save(&demo, &french_demo), AfterSave::Live);
        assert_eq!(after_save(&demo, &gateway), AfterSave::Restart);
        assert_eq!(after_save(&gateway, &demo), AfterSave::Restart);
    }

    fn change(state: &str, alert: Option<&str>) -> Change {
        Change {
            seq: 1,
            at_ms: 0,
            conversation_id: Some("c".into()),
            visitor_id: "v".into(),
            channel: Some("CHAT".into()),
            state: Some(state.parse().expect("a state name")),
            user_id: None,
            reason: None,
            alert: alert.map(|a| a.parse().expect("an alert code")),
            alert_id: None,
        }
    }

    #[test]
    fn only_entering_secured_notifies_and_every_alert_has_its_kind() {
        assert_eq!(
            notice_for(&change("secured", None), None),
            Some(NoticeKind::Secured)
        );
        assert_eq!(
            notice_for(&change("secured", None), Some(AuthStateName::Anonymous)),
            Some(NoticeKind::Secured)
        );
        let secured = Some(AuthStateName::Secured);
        assert_eq!(notice_for(&change("secured", None), secured), None);
        assert_eq!(notice_for(&change("anonymous", None), None), None);
        assert_eq!(notice_for(&change("closed", None), secured), None);
        use lockdesk_desk::alert_codes::*;
        for (code, kind) in [
            (VERIFICATION_FAILED, NoticeKind::VerificationFailed),
            (IDENTITY_SWITCHED, NoticeKind::IdentityMismatch),
            (PLATFORM_MISMATCH, NoticeKind::IdentityMismatch),
            (SHARED_DEVICE, NoticeKind::SharedDevice),
            (REUSED_USER_ID, NoticeKind::ReusedUserId),
            (SESSION_LAPSED, NoticeKind::SessionLapsed),
            (LOOKALIKE_USER_ID, NoticeKind::LookalikeUserId),
        ] {
            assert_eq!(
                notice_for(&change("failed", Some(code)), secured),
                Some(kind)
            );
        }
    }

    /// Issue 13: a device-level alert (evidence naming no open conversation: shared device,
    /// reused or look-alike userId) notified nothing, because only changes with a conversation
    /// reached the notifier. Every alert code notifies, with or without a conversation.
    #[test]
    fn every_alert_code_notifies_with_or_without_a_conversation() {
        for code in AlertKind::ALL {
            let mut on_conversation = change("failed", None);
            on_conversation.alert = Some(code);
            on_conversation.user_id = Some("cust-2".into());
            let n = notice_for_change(&on_conversation, Some(AuthStateName::Secured), None)
                .unwrap_or_else(|| panic!("{code:?}: no notice"));
            assert_eq!(n.conversation_id.as_deref(), Some("c"), "{code:?}");
            let device = Change {
                conversation_id: None,
                channel: None,
                state: None,
                ..on_conversation.clone()
            };
            let n = notice_for_change(&device, None, None)
                .unwrap_or_else(|| panic!("{code:?}: no notice without a conversation"));
            assert_eq!(n.conversation_id, None, "{code:?}");
            assert_eq!(n.user_id.as_deref(), Some("cust-2"), "{code:?}");
            // And it has words, naming the person.
            let (_, body) = notify::text(&n, lockdesk_config::Language::En);
            assert!(body.contains("cust-2"), "{code:?}: {body}");
        }
    }

    /// Issue 13: the look-alike notice names the identity imitated, read from the alert's
    /// evidence (before, the notice was built before the alert was read: "looks like another
    /// identity").
    #[test]
    fn a_lookalike_notice_names_the_identity_it_imitates() {
        let mut c = change(
            "secured",
            Some(lockdesk_desk::alert_codes::LOOKALIKE_USER_ID),
        );
        c.user_id = Some("cust-4815l623".into());
        c.alert_id = Some(7);
        let record = lockdesk_desk::AlertRecord {
            id: 7,
            seq: Some(1),
            at_ms: 0,
            code: lockdesk_desk::alert_codes::LOOKALIKE_USER_ID.into(),
            conversation_id: Some("c".into()),
            visitor_id: Some("v".into()),
            user_id: Some("cust-4815l623".into()),
            evidence: serde_json::json!({"userId": "cust-4815l623", "imitator": "cust-4815l623",
                "imitates": "cust-48151623", "mixedScript": false, "scripts": ["Latin"],
                "ambiguous": true}),
        };
        let n = notice_for_change(&c, Some(AuthStateName::Anonymous), Some(&record)).unwrap();
        let (fsi, pdi) = (lockdesk_text::FSI, lockdesk_text::PDI);
        let (_, en) = notify::text(&n, lockdesk_config::Language::En);
        assert!(
            en.starts_with(&format!(
                "{fsi}cust-4815l623{pdi} looks like {fsi}cust-48151623{pdi}; either may be the genuine one."
            )),
            "{en}"
        );
        let (_, fr) = notify::text(&n, lockdesk_config::Language::Fr);
        assert!(
            fr.starts_with(&format!(
                "{fsi}cust-4815l623{pdi} ressemble à {fsi}cust-48151623{pdi}"
            )),
            "{fr}"
        );
        // Without the record (it could not be read), the notice still goes out, in general words.
        let n = notice_for_change(&c, Some(AuthStateName::Anonymous), None).unwrap();
        assert_eq!(n.lookalike, None);
        assert!(notify::text(&n, lockdesk_config::Language::En)
            .1
            .contains("looks like another identity"));
    }

    #[test]
    fn changes_older_than_the_live_window_are_counted_not_notified() {
        let now = 1_800_000_000_000;
        let mut c = change("secured", None);
        c.at_ms = now - 5_000;
        assert!(is_live(&c, now));
        c.at_ms = now - notify::LIVE_WINDOW_MS;
        assert!(is_live(&c, now));
        c.at_ms = now - notify::LIVE_WINDOW_MS - 1;
        assert!(!is_live(&c, now));
        // A gateway clock ahead of the desk's: still live.
        c.at_ms = now + 30_000;
        assert!(is_live(&c, now));
    }

    #[test]
    fn a_backlog_summary_is_due_after_a_quiet_spell_or_at_the_latest_ten_seconds_after_its_first_notice(
    ) {
        // Secured is off by default: on here, to count it.
        let settings = lockdesk_config::Notifications {
            secured: true,
            ..Default::default()
        };
        let secured = notice_of(&change("secured", None), NoticeKind::Secured);
        let mut failed = change(
            "failed",
            Some(lockdesk_desk::alert_codes::VERIFICATION_FAILED),
        );
        failed.reason = Some(lockdesk_api::ReasonCode::BadSignature);
        let failed = notice_of(&failed, NoticeKind::VerificationFailed);
        let t0 = tokio::time::Instant::now();
        let mut gate = BacklogGate::default();
        assert_eq!(gate.wait_until(t0), None, "nothing pending: no deadline");
        gate.add(&secured, &settings, t0);
        // Quiet for 3 s: due.
        assert_eq!(gate.wait_until(t0), Some(t0 + BACKLOG_QUIET));
        // A steady stream of old changes does not postpone it past 10 s after the first notice.
        let t9 = t0 + std::time::Duration::from_secs(9);
        gate.add(&failed, &settings, t9);
        assert_eq!(gate.wait_until(t9), Some(t0 + BACKLOG_LONGEST));
        let summary = gate.take();
        assert!(summary
            .text(Language::En)
            .1
            .starts_with("1 failed verification, 1 conversation secured."));
        assert_eq!(gate.wait_until(t9), None);
        assert!(gate.take().is_empty());
        // Muted kinds do not start a deadline.
        let muted = lockdesk_config::Notifications {
            secured: false,
            ..Default::default()
        };
        gate.add(&secured, &muted, t9);
        assert_eq!(gate.wait_until(t9), None);
    }

    /// The notice names the conversation by its userId and carries the reason as a typed code
    /// (worded by `notify`), never the stored text.
    #[test]
    fn a_notice_carries_the_typed_reason_and_the_user_id() {
        let mut c = change(
            "failed",
            Some(lockdesk_desk::alert_codes::VERIFICATION_FAILED),
        );
        c.reason = Some(lockdesk_api::ReasonCode::BadSignature);
        c.user_id = Some("cust-7".into());
        let n = notice_of(&c, NoticeKind::VerificationFailed);
        assert_eq!(n.reason, Some(lockdesk_api::ReasonCode::BadSignature));
        assert_eq!(n.user_id.as_deref(), Some("cust-7"));
        c.reason = Some(lockdesk_api::ReasonCode::Unknown);
        assert_eq!(
            notice_of(&c, NoticeKind::VerificationFailed).reason,
            Some(lockdesk_api::ReasonCode::Unknown)
        );
    }
}
