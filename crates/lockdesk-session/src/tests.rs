//! The session under paused tokio time, with a recording host (a real [`Host`] that keeps every
//! call and when, in the runtime's time, it came) and real desk services and stores.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lockdesk_api::{DeskEvent, DeskStatus, FeedStatus};
use lockdesk_config::{Config, Language, Notifications};
use lockdesk_desk::{Change, Desk, DeskConfig, DeskReader};
use lockdesk_service::{DeskService, Options, ServiceEvent, ServiceStatus, State, StopReason};
use tokio::sync::{broadcast, watch, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::forward::{self, Inputs};
use crate::notice::{NoticeKind, BACKLOG_LONGEST, BACKLOG_QUIET, LIVE_WINDOW_MS};

#[derive(Clone, Debug)]
enum Call {
    Emit(DeskEvent),
    Tray(DeskStatus),
    Notify(Notification),
    Preferences(Language, #[allow(dead_code)] Notifications),
}

/// Records every call with the (paused) runtime's time, and wakes whoever waits for one.
#[derive(Default)]
struct Recording {
    calls: Mutex<Vec<(Instant, Call)>>,
    changed: Notify,
}

impl Recording {
    fn push(&self, call: Call) {
        lock(&self.calls).push((Instant::now(), call));
        self.changed.notify_waiters();
    }

    fn calls(&self) -> Vec<(Instant, Call)> {
        lock(&self.calls).clone()
    }

    fn notifications(&self) -> Vec<(Instant, Notification)> {
        self.calls()
            .into_iter()
            .filter_map(|(t, c)| match c {
                Call::Notify(n) => Some((t, n)),
                _ => None,
            })
            .collect()
    }

    fn emitted(&self) -> Vec<DeskEvent> {
        self.calls()
            .into_iter()
            .filter_map(|(_, c)| match c {
                Call::Emit(e) => Some(e),
                _ => None,
            })
            .collect()
    }

    /// Waits (at most a virtual minute) until `done` holds for the calls so far.
    async fn wait_for(&self, what: &str, done: impl Fn(&[(Instant, Call)]) -> bool) {
        let wait = async {
            loop {
                let changed = self.changed.notified();
                tokio::pin!(changed);
                changed.as_mut().enable();
                if done(&lock(&self.calls)) {
                    return;
                }
                changed.await;
            }
        };
        if tokio::time::timeout(Duration::from_secs(60), wait)
            .await
            .is_err()
        {
            panic!("waited a minute for {what}; calls: {:#?}", self.calls());
        }
    }
}

impl Host for Recording {
    fn emit(&self, event: DeskEvent) {
        self.push(Call::Emit(event));
    }
    fn set_tray(&self, status: &DeskStatus) {
        self.push(Call::Tray(status.clone()));
    }
    fn notify(&self, notification: Notification) {
        self.push(Call::Notify(notification));
    }
    fn preferences(&self, language: Language, notifications: &Notifications) {
        self.push(Call::Preferences(language, *notifications));
    }
}

fn shared(host: Arc<Recording>) -> Arc<Shared> {
    Arc::new(Shared::new(host))
}

/// A real desk store (empty, made by a desk with the real verification engine and no keys),
/// read as the service reads it.
struct OwnStore(Mutex<DeskReader>);

impl forward::Store for OwnStore {
    fn changed(
        &self,
        ids: &[String],
        alert_ids: &[i64],
    ) -> (
        Vec<lockdesk_api::ConversationRow>,
        Vec<lockdesk_desk::AlertRecord>,
    ) {
        forward::read_changed(&lock(&self.0), ids, alert_ids)
    }
}

fn own_store(dir: &std::path::Path) -> Arc<OwnStore> {
    let engine =
        lockdesk_keys::Engine::load(&lockdesk_keys::Setup::from_config(&Config::default()))
            .expect("a keyless engine");
    let path = dir.join("desk.sqlite3");
    Desk::open(
        &path,
        Arc::new(engine),
        DeskConfig {
            session_lifetime_secs: 3600,
        },
    )
    .expect("the store opens");
    let reader = DeskReader::open(&path).expect("the store reads");
    Arc::new(OwnStore(Mutex::new(reader)))
}

fn connecting() -> ServiceStatus {
    ServiceStatus {
        feed: State::Connecting {
            url: "ws://gateway.invalid/v1/feed".into(),
        },
        demo: false,
        cursor: 0,
        head: 0,
        behind_too_long: false,
    }
}

/// A change `age_ms` old (by the desk's clock) entering `state`, with an alert or not.
fn change(
    conversation: &str,
    state: &str,
    alert: Option<lockdesk_desk::AlertKind>,
    age_ms: i64,
) -> Change {
    Change {
        seq: 1,
        at_ms: lockdesk_service::now_ms() - age_ms,
        conversation_id: Some(conversation.into()),
        visitor_id: "v".into(),
        channel: Some("CHAT".into()),
        state: Some(state.parse().expect("a state name")),
        user_id: Some(format!("user-of-{conversation}")),
        reason: None,
        alert,
        alert_id: None,
    }
}

/// An old change: well outside the live window.
const OLD: i64 = LIVE_WINDOW_MS + 60_000;

/// A forwarder on channels the test feeds, with everything notified.
struct Forwarder {
    host: Arc<Recording>,
    shared: Arc<Shared>,
    events: broadcast::Sender<ServiceEvent>,
    status: watch::Sender<ServiceStatus>,
    prefs: watch::Sender<Config>,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Forwarder {
    /// Cancels the forwarder and waits for its task to end.
    async fn stop(&mut self) {
        self.cancel.cancel();
        (&mut self.task).await.unwrap();
    }
}

fn forwarder(capacity: usize) -> Forwarder {
    let dir = tempfile::tempdir().unwrap();
    let host = Arc::new(Recording::default());
    let shared = shared(host.clone());
    let (events, events_rx) = broadcast::channel(capacity);
    let (status, status_rx) = watch::channel(connecting());
    let mut config = Config::default();
    config.notifications.secured = true;
    let (prefs, prefs_rx) = watch::channel(config);
    let cancel = CancellationToken::new();
    let task = tokio::spawn(forward::forward_changes(
        shared.clone(),
        Inputs {
            events: events_rx,
            status: status_rx,
            store: own_store(dir.path()),
        },
        prefs_rx,
        cancel.clone(),
    ));
    Forwarder {
        host,
        shared,
        events,
        status,
        prefs,
        cancel,
        task,
        _dir: dir,
    }
}

impl Forwarder {
    fn send(&self, changes: Vec<Change>) {
        self.events
            .send(ServiceEvent::Changes(Arc::new(changes)))
            .expect("the forwarder listens");
    }
}

fn summaries(host: &Recording) -> Vec<(Instant, Backlog)> {
    host.notifications()
        .into_iter()
        .filter_map(|(t, n)| match n {
            Notification::Summary(b) => Some((t, b)),
            _ => None,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_live_change_notifies_at_once_and_an_old_one_waits_for_a_quiet_spell() {
    let mut f = forwarder(64);
    let t0 = Instant::now();
    f.send(vec![change("c1", "secured", None, 1_000)]);
    f.host
        .wait_for("the live notice", |c| {
            c.iter().any(|(_, c)| matches!(c, Call::Notify(_)))
        })
        .await;
    let n = f.host.notifications();
    assert_eq!(n.len(), 1);
    assert_eq!(n[0].0, t0, "a live change is notified without waiting");
    match &n[0].1 {
        Notification::Notice(notice) => {
            assert_eq!(notice.kind, NoticeKind::Secured);
            assert_eq!(notice.user_id.as_deref(), Some("user-of-c1"));
        }
        other => panic!("{other:?}"),
    }

    // An old change: counted, not shown; the summary comes after 3 s without changes.
    let t1 = Instant::now();
    f.send(vec![change("c2", "secured", None, OLD)]);
    tokio::time::sleep(BACKLOG_QUIET - Duration::from_millis(100)).await;
    assert!(
        summaries(&f.host).is_empty(),
        "shown before the quiet spell"
    );
    assert_eq!(
        f.host.notifications().len(),
        1,
        "an old change was notified"
    );
    f.host
        .wait_for("the summary", |c| {
            c.iter()
                .any(|(_, c)| matches!(c, Call::Notify(Notification::Summary(_))))
        })
        .await;
    let s = summaries(&f.host);
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].0, t1 + BACKLOG_QUIET);
    assert_eq!(s[0].1.counts(), &[(NoticeKind::Secured, 1)]);
    f.stop().await;
}

/// An old rejected token in conversation `c{i}`.
fn old_failure(i: usize) -> Change {
    change(
        &format!("c{i}"),
        "failed",
        Some(lockdesk_desk::AlertKind::VerificationFailed),
        OLD,
    )
}

#[tokio::test(start_paused = true)]
async fn a_steady_stream_of_old_changes_is_summarised_ten_seconds_after_its_first() {
    let mut f = forwarder(64);
    let t0 = Instant::now();
    // An old change every 2 s: never 3 s of quiet, yet summarised 10 s after the first.
    for i in 0..5 {
        f.send(vec![old_failure(i)]);
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let s = summaries(&f.host);
    assert_eq!(s.len(), 1, "{s:?}");
    assert_eq!(s[0].0, t0 + BACKLOG_LONGEST, "held back by the stream");
    assert_eq!(s[0].1.counts(), &[(NoticeKind::VerificationFailed, 5)]);
    // Two more (at 11 s and 13 s): a new backlog, shown after 3 s of quiet.
    for i in 5..7 {
        f.send(vec![old_failure(i)]);
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    tokio::time::sleep(BACKLOG_LONGEST).await;
    let s = summaries(&f.host);
    assert_eq!(s.len(), 2, "{s:?}");
    assert_eq!(s[1].0, t0 + Duration::from_secs(13) + BACKLOG_QUIET);
    assert_eq!(s[1].1.counts(), &[(NoticeKind::VerificationFailed, 2)]);
    // No single notice for any of them.
    assert!(f
        .host
        .notifications()
        .iter()
        .all(|(_, n)| matches!(n, Notification::Summary(_))));
    f.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_batch_of_current_changes_shows_the_summary_at_once_and_mutes_apply_live() {
    let mut f = forwarder(64);
    f.send(vec![change("c1", "secured", None, OLD)]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let t1 = Instant::now();
    f.send(vec![change("c2", "secured", None, 0)]);
    f.host
        .wait_for("the summary", |c| {
            c.iter()
                .any(|(_, c)| matches!(c, Call::Notify(Notification::Summary(_))))
        })
        .await;
    assert_eq!(summaries(&f.host)[0].0, t1, "caught up: not held back");

    // Secured muted from Settings: an old one is no longer counted (no summary at all).
    let mut muted = Config::default();
    muted.notifications.secured = false;
    f.prefs.send_replace(muted);
    tokio::task::yield_now().await;
    f.send(vec![change("c3", "secured", None, OLD)]);
    tokio::time::sleep(BACKLOG_LONGEST * 2).await;
    assert_eq!(summaries(&f.host).len(), 1, "a muted kind was summarised");
    f.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_lost_batch_asks_the_window_to_list_again_with_a_higher_revision() {
    let mut f = forwarder(1);
    f.shared.revision.store(41, Ordering::SeqCst);
    // Capacity 1: the forwarder misses the first two batches.
    for i in 0..3 {
        f.send(vec![change(&format!("c{i}"), "anonymous", None, 0)]);
    }
    f.host
        .wait_for("a reset", |c| {
            c.iter()
                .any(|(_, c)| matches!(c, Call::Emit(DeskEvent::Reset { .. })))
        })
        .await;
    assert_eq!(f.host.emitted(), vec![DeskEvent::Reset { revision: 42 }]);
    f.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_stop_for_good_is_told_once_and_a_shutdown_not_at_all() {
    let f = forwarder(64);
    let revoked = ServiceStatus {
        feed: State::Stopped {
            reason: StopReason::CredentialRevoked,
        },
        ..connecting()
    };
    f.status.send_replace(revoked.clone());
    f.status.send_replace(connecting());
    f.status.send_replace(revoked);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        f.host
            .notifications()
            .into_iter()
            .map(|(_, n)| n)
            .collect::<Vec<_>>(),
        vec![Notification::Stopped(StopReason::CredentialRevoked)]
    );

    let g = forwarder(64);
    g.status.send_replace(ServiceStatus {
        feed: State::Stopped {
            reason: StopReason::Shutdown,
        },
        ..connecting()
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(g.host.notifications().is_empty());
    for mut f in [f, g] {
        f.stop().await;
    }
}

/// Cancelled (a restart, or quitting): the pending summary is shown, the task ends, and what
/// the old service still sends reaches nobody.
#[tokio::test(start_paused = true)]
async fn a_cancelled_forwarder_shows_its_pending_summary_and_ends() {
    let mut f = forwarder(64);
    f.send(vec![change("c1", "secured", None, OLD)]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(summaries(&f.host).is_empty());
    f.stop().await;
    assert_eq!(summaries(&f.host).len(), 1);
    let before = f.host.calls().len();
    let _ = f.events.send(ServiceEvent::Changes(Arc::new(vec![change(
        "c2", "secured", None, 0,
    )])));
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(f.host.calls().len(), before);
}

/// A launcher that starts real desk services (on a feed nobody listens on) and keeps the order
/// of its starts and stops, and how many services were running at once.
struct Counting {
    dir: tempfile::TempDir,
    config: Mutex<Result<Config, String>>,
    log: Mutex<Vec<String>>,
    live: AtomicUsize,
    most: AtomicUsize,
    starts: AtomicUsize,
}

/// A session on `launcher`, reporting to a new recording host.
fn session_on(launcher: &Arc<Counting>) -> (Arc<Recording>, Session) {
    let host = Arc::new(Recording::default());
    let session = Session::new(host.clone(), launcher.clone());
    (host, session)
}

/// A session on a new counting launcher, started once.
async fn started() -> (Arc<Recording>, Arc<Counting>, Session) {
    let launcher = counting();
    let (host, session) = session_on(&launcher);
    session.restart().await;
    (host, launcher, session)
}

fn counting() -> Arc<Counting> {
    let mut config = Config::default();
    config.feed.url = Some("ws://127.0.0.1:9/v1/feed".into());
    config.feed.credential = Some("credential-1".into());
    Arc::new(Counting {
        dir: tempfile::tempdir().unwrap(),
        config: Mutex::new(Ok(config)),
        log: Mutex::new(Vec::new()),
        live: AtomicUsize::new(0),
        most: AtomicUsize::new(0),
        starts: AtomicUsize::new(0),
    })
}

impl Launcher for Counting {
    fn load(&self) -> Result<Config, String> {
        lock(&self.config).clone()
    }

    fn start<'a>(&'a self, config: &'a Config) -> BoxFuture<'a, Result<Started, String>> {
        Box::pin(async move {
            let n = self.starts.fetch_add(1, Ordering::SeqCst) + 1;
            lock(&self.log).push(format!("start {n}"));
            let live = self.live.fetch_add(1, Ordering::SeqCst) + 1;
            self.most.fetch_max(live, Ordering::SeqCst);
            // Starting takes time: long enough for a second restart to race a first.
            tokio::time::sleep(Duration::from_secs(1)).await;
            let service = DeskService::start(Options::from_config(config, self.dir.path()))
                .await
                .map_err(|e| e.to_string())?;
            lock(&self.log).push(format!("started {n}"));
            Ok(Started {
                service,
                session_lifetime_secs: 3600,
            })
        })
    }

    fn stop<'a>(&'a self, service: &'a DeskService) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            service.shutdown().await;
            self.live.fetch_sub(1, Ordering::SeqCst);
            lock(&self.log).push("stopped".into());
        })
    }
}

fn resets(host: &Recording) -> Vec<u64> {
    host.emitted()
        .into_iter()
        .filter_map(|e| match e {
            DeskEvent::Reset { revision } => Some(revision),
            _ => None,
        })
        .collect()
}

/// Two quick saves: two restarts, one after the other, the old service stopped before the next
/// starts; never two services at once.
#[tokio::test(start_paused = true)]
async fn two_quick_restarts_are_serialised() {
    let (host, launcher, session) = started().await;
    assert!(session.running().is_ok());
    tokio::join!(session.restart(), session.restart());
    assert_eq!(
        *lock(&launcher.log),
        [
            "start 1",
            "started 1",
            "stopped",
            "start 2",
            "started 2",
            "stopped",
            "start 3",
            "started 3"
        ]
    );
    assert_eq!(
        launcher.most.load(Ordering::SeqCst),
        1,
        "two services at once"
    );
    // The window listed again after each start, in order.
    let r = resets(&host);
    assert!(r.len() >= 3, "{r:?}");
    assert!(r.windows(2).all(|w| w[0] < w[1]), "{r:?}");
    session.shutdown().await;
    assert_eq!(launcher.live.load(Ordering::SeqCst), 0);
}

/// Quitting: the service is stopped and every task the session spawned has ended when
/// `shutdown` returns; later commands start nothing.
#[tokio::test(start_paused = true)]
async fn a_shutdown_stops_the_service_and_leaves_no_task_running() {
    let metrics = tokio::runtime::Handle::current().metrics();
    let before = metrics.num_alive_tasks();
    let (_host, launcher, session) = started().await;
    // The owner, three forwarders and the service's own tasks.
    assert!(metrics.num_alive_tasks() >= before + 4);
    let service = session.running().unwrap();
    session.shutdown().await;
    assert_eq!(launcher.live.load(Ordering::SeqCst), 0);
    // Aborted tasks are dropped at the runtime's next turn: a few turns, no waiting on time.
    for _ in 0..100 {
        if metrics.num_alive_tasks() == before {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(metrics.num_alive_tasks(), before, "tasks left running");
    // The service's status task is gone with them.
    assert!(service.status().has_changed().is_err());
    match session.status().feed {
        FeedStatus::Disconnected { reason } => assert_eq!(reason, "the desk has stopped"),
        other => panic!("{other:?}"),
    }
    session.restart().await;
    assert_eq!(
        launcher.starts.load(Ordering::SeqCst),
        1,
        "started after quitting"
    );
    session.shutdown().await;
}

/// A configuration that cannot be read starts nothing (not even the demo) and says why.
#[tokio::test(start_paused = true)]
async fn an_unreadable_configuration_starts_nothing_and_says_why() {
    let launcher = counting();
    *lock(&launcher.config) = Err("config.toml: line 2: unterminated string".into());
    let (host, session) = session_on(&launcher);
    session.restart().await;
    assert_eq!(launcher.starts.load(Ordering::SeqCst), 0);
    match session.status().feed {
        FeedStatus::ConfigUnreadable { reason } => assert!(reason.contains("line 2")),
        other => panic!("{other:?}"),
    }
    let list = session.list().await.unwrap();
    assert!(list.conversations.is_empty());
    assert_eq!(resets(&host).len(), 1);
    assert!(host.calls().iter().any(|(_, c)| matches!(
        c,
        Call::Tray(DeskStatus {
            feed: FeedStatus::ConfigUnreadable { .. },
            ..
        })
    )));
    session.shutdown().await;
}

/// A saved language applies live (the host's preferences, no restart); a saved credential
/// restarts the desk.
#[tokio::test(start_paused = true)]
async fn a_save_restarts_only_for_what_the_service_depends_on() {
    let (host, launcher, session) = started().await;
    lock(&launcher.config).as_mut().unwrap().ui.language = Language::Fr;
    assert_eq!(session.saved().await, AfterSave::Live);
    assert_eq!(launcher.starts.load(Ordering::SeqCst), 1);
    assert!(host
        .calls()
        .iter()
        .any(|(_, c)| matches!(c, Call::Preferences(Language::Fr, _))));
    // Saving the same again: nothing.
    assert_eq!(session.saved().await, AfterSave::Nothing);
    lock(&launcher.config).as_mut().unwrap().feed.credential = Some("credential-2".into());
    assert_eq!(session.saved().await, AfterSave::Restart);
    assert_eq!(launcher.starts.load(Ordering::SeqCst), 2);
    assert_eq!(launcher.most.load(Ordering::SeqCst), 1);
    session.shutdown().await;
}

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
