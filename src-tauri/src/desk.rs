//! The desk behind the window, as Tauri sees it: the [`lockdesk_session::Session`] (which owns
//! the desk service, serialises restarts and decides notices, without knowing Tauri) reaching
//! the window (`desk://changed` events), the notifier and the tray through [`TauriHost`], and
//! starting the configured gateway or the embedded demo through [`AppLauncher`]. The commands
//! call [`DeskHolder`]'s methods; quitting awaits [`shutdown`] (bounded).
//!
//! Must not: block the UI thread (the session reads SQLite on the blocking pool); notify for a
//! muted kind (the notifier checks live notices, the session backlogs).

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use lockdesk_api::{
    ConversationDetail, DeskEvent, DeskSnapshot, DeskStatus, FeedStatus, History, IpcError,
    IpcErrorCode, SettingsService, StoreIntegrity,
};
use lockdesk_config::{Config, Language, Notifications};
use lockdesk_service::{DeskService, Options, ServiceError};
use lockdesk_session::{BoxFuture, Host, Launcher, Notification, Session, Started};
use tauri::{AppHandle, Emitter, Manager, Runtime};

use crate::notify;

/// No feed configured: the embedded demo in `<data>/demo` (feature `demo`, on by default).
#[cfg(feature = "demo")]
async fn start_demo(data_dir: &std::path::Path) -> Result<DeskService, ServiceError> {
    tracing::info!("no feed configured: starting the embedded demo");
    let settings = lockdesk_demo::DemoSettings::default();
    lockdesk_demo::start(&data_dir.join("demo"), settings).await
}

/// A build without the demo: nothing runs until a feed is configured, and the window says so.
#[cfg(not(feature = "demo"))]
async fn start_demo(_data_dir: &std::path::Path) -> Result<DeskService, ServiceError> {
    tracing::warn!("no feed configured, and this build has no embedded demo");
    Err(ServiceError::NoFeed)
}

/// The demo's session lifetime, when this build has the demo.
fn demo_lifetime_secs() -> Option<i64> {
    #[cfg(feature = "demo")]
    return Some(lockdesk_demo::DemoSettings::default().session_lifetime_secs);
    #[cfg(not(feature = "demo"))]
    None
}

pub const DESK_CHANGED: &str = "desk://changed";
pub const DESK_FOCUS: &str = "desk://focus";

/// How long quitting waits for the desk to stop (feed client, demo gateway, tasks).
const SHUTDOWN_BOUND: Duration = Duration::from_secs(5);

/// The window, the notifier and the tray, for the session.
struct TauriHost<R: Runtime> {
    app: AppHandle<R>,
    /// Created at the first start, with the saved language and mutes.
    notifier: Mutex<Option<notify::Notifier>>,
}

impl<R: Runtime> Host for TauriHost<R> {
    fn emit(&self, event: DeskEvent) {
        let _ = self.app.emit(DESK_CHANGED, event);
    }

    fn set_tray(&self, status: &DeskStatus) {
        crate::tray::set_status(&self.app, status);
    }

    fn notify(&self, notification: Notification) {
        let notifier = self.notifier.lock().unwrap_or_else(|p| p.into_inner());
        let Some(notifier) = notifier.as_ref() else {
            tracing::warn!("a notification before the notifier was set up: not shown");
            return;
        };
        match notification {
            Notification::Notice(n) => notifier.show(&n, std::time::Instant::now()),
            Notification::Summary(b) => notifier.summary(&b),
            Notification::Stopped(reason) => notifier.stopped(&reason),
        }
    }

    fn preferences(&self, language: Language, notifications: &Notifications) {
        let mut notifier = self.notifier.lock().unwrap_or_else(|p| p.into_inner());
        match notifier.as_mut() {
            Some(n) => n.set_preferences(language, *notifications),
            None => {
                // Groups bursts and shows them in order on its own thread; a click opens the
                // conversation (or, for a group or summary about several, the window).
                let app = self.app.clone();
                *notifier = Some(notify::Notifier::new(
                    language,
                    *notifications,
                    Arc::new(move |conversation_id: Option<String>| {
                        crate::focus_main_window(&app);
                        if let Some(conversation_id) = conversation_id {
                            let _ = app.emit(
                                DESK_FOCUS,
                                lockdesk_api::FocusConversation { conversation_id },
                            );
                        }
                    }),
                ));
            }
        }
    }
}

/// The saved configuration, and the desk it describes: the configured gateway, or the embedded
/// demo in `<data>/demo` when no feed is configured.
struct AppLauncher {
    settings: SettingsService,
    data_dir: PathBuf,
}

impl Launcher for AppLauncher {
    fn load(&self) -> Result<Config, String> {
        self.settings.load().map_err(|e| e.message)
    }

    fn start<'a>(&'a self, config: &'a Config) -> BoxFuture<'a, Result<Started, String>> {
        Box::pin(async move {
            let configured = i64::from(config.verification.session_lifetime_mins) * 60;
            let (service, lifetime) = if config.has_feed() {
                let options = Options::from_config(config, &self.data_dir);
                (DeskService::start(options).await, configured)
            } else {
                (
                    start_demo(&self.data_dir).await,
                    demo_lifetime_secs().unwrap_or(configured),
                )
            };
            Ok(Started {
                service: service.map_err(|e| e.to_string())?,
                session_lifetime_secs: lifetime,
            })
        })
    }
}

/// The session, once the app has started the desk ([`start`]); what the commands call.
#[derive(Default)]
pub struct DeskHolder {
    session: OnceLock<Session>,
}

fn starting() -> IpcError {
    IpcError::new(IpcErrorCode::Internal, "the desk is starting")
}

impl DeskHolder {
    /// True once [`start`] has run (the app starts the desk in its setup).
    pub fn started(&self) -> bool {
        self.session.get().is_some()
    }

    /// The running service, or why there is none (for the supervisor's commands).
    pub(crate) fn running(&self) -> Result<Arc<DeskService>, IpcError> {
        self.session.get().ok_or_else(starting)?.running()
    }

    /// Records a check of the store against the audit chain (what the list shows with it).
    pub(crate) fn set_integrity(&self, integrity: StoreIntegrity) {
        if let Some(s) = self.session.get() {
            s.set_integrity(integrity);
        }
    }

    pub(crate) fn integrity(&self) -> Option<StoreIntegrity> {
        self.session.get().and_then(Session::integrity)
    }

    pub(crate) fn lifetime_secs(&self) -> i64 {
        self.session.get().map_or(0, Session::lifetime_secs)
    }

    /// A new revision, announced as `reset`: the window lists again.
    pub(crate) fn announce_reset<R: Runtime>(&self, _app: &AppHandle<R>) {
        if let Some(s) = self.session.get() {
            s.announce_reset();
        }
    }

    /// The status the header shows.
    pub fn status(&self) -> DeskStatus {
        match self.session.get() {
            Some(s) => s.status(),
            None => DeskStatus {
                feed: FeedStatus::Disconnected {
                    reason: "the desk is starting".into(),
                },
                demo: false,
                last_seq: None,
                head_seq: None,
            },
        }
    }

    pub async fn list(&self) -> Result<DeskSnapshot, IpcError> {
        match self.session.get() {
            Some(s) => s.list().await,
            None => Ok(DeskSnapshot {
                status: self.status(),
                conversations: Vec::new(),
                revision: 0,
                integrity: None,
            }),
        }
    }

    pub async fn detail(&self, id: String) -> Result<ConversationDetail, IpcError> {
        self.session.get().ok_or_else(starting)?.detail(id).await
    }

    pub async fn history(&self, user_id: String) -> Result<History, IpcError> {
        self.session
            .get()
            .ok_or_else(starting)?
            .history(user_id)
            .await
    }
}

/// Starts (or restarts) the desk from the saved configuration; returns once it runs or failed
/// to (the status says why). The first call creates the session.
pub async fn start<R: Runtime>(app: AppHandle<R>) {
    let holder = app.state::<Arc<DeskHolder>>().inner().clone();
    let session = holder.session.get_or_init(|| {
        let state = app.state::<crate::AppState>();
        Session::new(
            Arc::new(TauriHost {
                app: app.clone(),
                notifier: Mutex::new(None),
            }),
            Arc::new(AppLauncher {
                settings: state.settings.clone(),
                data_dir: state.data_dir.clone(),
            }),
        )
    });
    session.restart().await;
}

/// After Settings saved: restarts the desk when a setting it depends on changed, applies the
/// language and mutes live otherwise (`lockdesk_session::after_save`).
pub async fn apply_saved<R: Runtime>(app: AppHandle<R>) {
    let holder = app.state::<Arc<DeskHolder>>().inner().clone();
    if let Some(session) = holder.session.get() {
        session.saved().await;
    }
}

/// Quitting: stops the desk (feed client, demo, every task of the session), waiting at most
/// [`SHUTDOWN_BOUND`]. Called by the app's exit handler, off the async runtime.
pub fn shutdown<R: Runtime>(app: &AppHandle<R>) {
    let holder = app.state::<Arc<DeskHolder>>().inner().clone();
    let Some(session) = holder.session.get() else {
        return;
    };
    let stopped = tauri::async_runtime::block_on(async {
        tokio::time::timeout(SHUTDOWN_BOUND, session.shutdown()).await
    });
    match stopped {
        Ok(()) => tracing::info!("the desk stopped cleanly"),
        Err(_) => tracing::warn!(
            "the desk did not stop within {} s: quitting anyway",
            SHUTDOWN_BOUND.as_secs()
        ),
    }
}

#[cfg(test)]
mod tests {
    use lockdesk_desk::AuthStateName;
    use lockdesk_session::notice::{notice_for_change, test_change as change};

    use crate::notify;

    /// Every alert code's notice has words, naming the person.
    #[test]
    fn every_alert_notice_has_words_naming_the_person() {
        for code in lockdesk_desk::AlertKind::ALL {
            let mut c = change("failed", None);
            c.alert = Some(code);
            c.user_id = Some("cust-2".into());
            let n = notice_for_change(&c, Some(AuthStateName::Secured), None).unwrap();
            let (_, body) = notify::text(&n, lockdesk_config::Language::En);
            assert!(body.contains("cust-2"), "{code:?}: {body}");
        }
    }

    /// Issue 13: the look-alike notice names the identity imitated, read from the alert's
    /// evidence (before, the notice was built before the alert was read: "looks like another
    /// identity").
    #[test]
    fn a_lookalike_notice_names_the_identity_it_imitates() {
        let mut c = change("secured", Some(lockdesk_desk::AlertKind::LookalikeUserId));
        c.user_id = Some("cust-4815l623".into());
        c.alert_id = Some(7);
        let record = lockdesk_desk::AlertRecord {
            id: 7,
            seq: Some(1),
            at_ms: 0,
            code: Some(lockdesk_desk::AlertKind::LookalikeUserId),
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
}
