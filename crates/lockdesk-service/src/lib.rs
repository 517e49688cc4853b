//! The desk as a running service: the desk core ([`lockdesk_desk::Desk`]) fed by the feed client
//! ([`lockdesk_feed_client::FeedClient`]) and a clock, or a feed embedded in this process
//! ([`embedded::Embedded`]: the demo of crate `lockdesk-demo`, whose gateway, simulator and
//! stand-ins this crate does not link). `lockdesk-cli watch` and `lockdesk-cli demo` run it
//! headless; the desktop app runs it behind its window.
//!
//! ```text
//!  gateway ──WebSocket──▶ FeedClient ──entries──▶ DeskSink (own thread) ──▶ Desk (writer, SQLite)
//!                                                     │ changes                  ▲ tick every second
//!                                                     ▼                          │
//!                                            broadcast<ServiceEvent> ──▶ CLI lines / app events
//!  queries (list, detail, history) ──▶ a DeskReader on the same file (read-only, WAL)
//!  secured/closed userIds ──▶ backfill task ──iAdvize GraphQL──▶ Desk::backfill (writer)
//! ```
//!
//! With iAdvize's API configured ([`Options::backfill`]), the [`backfill`] task asks iAdvize for
//! the closed conversations of every visitor linked to a userId the feed just verified.
//!
//! Architecture invariants:
//! - the writer `Desk` is only touched on blocking threads (the feed client's sink thread and the
//!   ticker's `spawn_blocking`), behind one mutex; readers use their own connection;
//! - a change is published only after the transaction that made it is committed;
//! - the demo never mixes with real data: it lives in its own folder (`<data>/demo` by default),
//!   which it keeps between runs (a restart resumes on the same gateway log; a store of another
//!   log is set aside, never deleted), locks against a second process, and says it is a demo
//!   ([`ServiceStatus::demo`]);
//! - secrets (credentials, the demo's generated secrets) never reach logs or `Debug` output;
//! - no background task dies silently: each one (the clock, the status task, the backfill) is
//!   watched through its `JoinHandle`; one that panics or ends stops the feed client and the
//!   status becomes [`State::Stopped`] with [`StopReason::Failed`] naming the task and the
//!   panic's message (the feed client reports its own and its sink's panics the same way). The
//!   status says `Connected` only while the feed client does.
//!
//! Must not: block the async executor on SQLite or RSA; panic on anything the feed sends.

pub mod backfill;
pub mod embedded;
pub mod log_sink;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

pub use embedded::{DemoFacts, Embedded};
use lockdesk_desk::{Change, Desk, DeskConfig, DeskError, DeskReader, LogBinding};
use lockdesk_feed::Entry;
use lockdesk_feed_client::{Credential, FeedClient, LogCheck, Sink};
/// The feed client's state and stop reasons, which [`ServiceStatus::feed`] carries.
pub use lockdesk_feed_client::{State, StopReason};
use tokio::sync::{broadcast, watch};

/// The desk store's file name in its data folder (the audit log lives in the same file).
pub const DESK_FILE: &str = "desk.sqlite3";

/// Milliseconds since the Unix epoch, now (the one clock helper, [`lockdesk_text::time`]).
pub use lockdesk_text::time::now_ms;

/// What the service publishes.
#[derive(Clone, Debug)]
pub enum ServiceEvent {
    /// Committed state changes and alerts, in order.
    Changes(Arc<Vec<Change>>),
    /// Entries that could not be applied (each named by seq, with what is wrong).
    Skipped(Arc<Vec<lockdesk_desk::Skipped>>),
}

/// Where the service stands, for the header, the tray and `watch`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceStatus {
    /// The feed client's connection state.
    pub feed: State,
    /// True when this is the embedded demo.
    pub demo: bool,
    /// The last applied seq.
    pub cursor: u64,
    /// The gateway's log end as last known: `hello`'s `lastSeq`, raised by what the desk has
    /// applied since (heartbeats, entries); 0 before the first connection. Kept while
    /// disconnected (the last known end).
    pub head: u64,
    /// Connected without holding the log's end for longer than [`CATCH_UP_LIMIT`]: the desk's
    /// clock no longer follows the feed's, and what the list shows is not current.
    pub behind_too_long: bool,
}

impl ServiceStatus {
    /// While connected below the log's end: how many seqs are still to apply (to `head`).
    /// `None` when caught up or not connected.
    pub fn to_go(&self) -> Option<u64> {
        match self.feed {
            State::Connected { .. } if self.cursor < self.head => Some(self.head - self.cursor),
            _ => None,
        }
    }

    /// Whether `next` says something the window shows differently from `self`: the feed's
    /// state, the demo flag, how far behind, behind for too long. (A live desk's cursor and
    /// head move with every entry: no news.)
    fn news(&self, next: &ServiceStatus) -> bool {
        self.feed != next.feed
            || self.demo != next.demo
            || self.to_go() != next.to_go()
            || self.behind_too_long != next.behind_too_long
    }
}

/// What the clock tells the status task at each tick (sent when it changed): a catch-up's
/// progress reaches the window about once per tick. The status task notifies only what the
/// window shows (see [`ServiceStatus::news`]): a live desk's cursor moving is no news.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Progress {
    cursor: u64,
    /// Connected below the log's end for longer than [`CATCH_UP_LIMIT`].
    too_long: bool,
}

/// The log's end as last known, after `feed` was seen with the desk at `cursor`.
fn head_after(head: u64, feed: &State, cursor: u64) -> u64 {
    let announced = match feed {
        State::Connected { last_seq, .. } => *last_seq,
        _ => 0,
    };
    head.max(announced).max(cursor)
}

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{0}")]
    Desk(#[from] DeskError),
    #[error("cannot load the verification keys: {0}")]
    Keys(#[from] lockdesk_keys::SourceError),
    #[error("cannot start the feed client: {0}")]
    Feed(#[from] lockdesk_feed_client::ConfigError),
    #[error("the demo could not start: {0}")]
    Demo(String),
    /// Another process (or another demo in this one) runs the demo on this folder.
    #[error("the demo folder {} is in use by another Lockdesk{}", dir.display(), pid.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    DemoInUse { dir: PathBuf, pid: Option<u32> },
    #[error("cannot create {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("a background task failed: {0}")]
    Task(String),
    /// Nothing is configured and this build has no embedded demo (the app's `demo` feature).
    #[error("no feed is configured (this build has no demo): set the gateway's feed address and this desk's credential in Settings")]
    NoFeed,
}

/// How to run.
pub struct Options {
    /// The folder holding the desk store (`desk.sqlite3`).
    pub data_dir: PathBuf,
    /// The gateway's feed addresses (several: instances of one log, tried in order with
    /// failover, `lockdesk_feed_client::Config::urls`) and this desk's subscriber credential.
    pub feed_urls: Vec<String>,
    pub credential: Credential,
    /// Extra CA certificates (PEM) trusted for `wss://` besides the system's (`[feed] ca_file`:
    /// a load balancer's private CA), read when the desk starts.
    pub ca_file: Option<PathBuf>,
    /// The verification keys and policy.
    pub keys: lockdesk_keys::Setup,
    pub desk: DeskConfig,
    /// How often time-based transitions are applied (a session lapses without new events).
    pub tick_every: Duration,
    /// Set by the embedded demo ([`Embedded::options`]): the status says so.
    pub demo: bool,
    /// iAdvize's GraphQL API for the closed-conversation backfill (`None`: no backfill).
    pub backfill: Option<backfill::BackfillConfig>,
}

impl Options {
    /// From Lockdesk's configuration (a feed must be configured).
    pub fn from_config(config: &lockdesk_config::Config, data_dir: &Path) -> Options {
        Options {
            data_dir: data_dir.to_owned(),
            feed_urls: config.feed_urls(),
            credential: Credential::new(config.feed.credential.clone().unwrap_or_default()),
            ca_file: config.feed.ca_file.as_ref().map(PathBuf::from),
            keys: lockdesk_keys::Setup::from_config(config),
            desk: DeskConfig {
                session_lifetime_secs: i64::from(config.verification.session_lifetime_mins) * 60,
            },
            tick_every: Duration::from_secs(1),
            demo: false,
            backfill: match backfill::BackfillConfig::from_config(&config.iadvize) {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!("no iAdvize backfill: {e}");
                    None
                }
            },
        }
    }
}

/// The writer side, shared by the sink thread and the ticker.
struct Writer {
    desk: Mutex<Desk>,
    events: broadcast::Sender<ServiceEvent>,
    /// The userIds the feed verified, for the backfill (when configured).
    backfill: Option<Arc<backfill::Triggers>>,
}

impl Writer {
    fn lock(&self) -> MutexGuard<'_, Desk> {
        // A panic while holding the lock leaves SQLite consistent (the transaction rolls back),
        // so the poison flag carries no information here.
        self.desk.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn publish(&self, changes: Vec<Change>) {
        if !changes.is_empty() {
            let _ = self.events.send(ServiceEvent::Changes(Arc::new(changes)));
        }
    }
}

/// How long after the desk starts its clock waits for the feed before lapsing sessions on its
/// own (the gateway may be unreachable: then lapsing is the safe answer).
const STARTUP_GRACE: Duration = Duration::from_secs(15);
/// The longest a connected desk's clock follows the feed's instead of its own: a gateway that
/// announces a log end it never delivers must not keep sessions secured. Past it the status
/// says the desk is behind for too long ([`ServiceStatus::behind_too_long`]): the window draws
/// the list stale.
pub const CATCH_UP_LIMIT: Duration = Duration::from_secs(120);

/// Where the desk stands for its clock at one tick.
#[derive(Debug)]
struct ClockInput<'a> {
    feed: &'a State,
    cursor: u64,
    /// The latest reception time among the entries applied so far ([`Desk::feed_clock_ms`]).
    feed_clock_ms: Option<i64>,
    now_ms: i64,
    /// The desk has held the whole log at least once since it started.
    caught_up_once: bool,
    since_start: Duration,
    /// How long it has been connected without holding the log's end (`None`: it is not).
    behind_for: Option<Duration>,
}

/// The clock's decision at one tick.
#[derive(Debug, PartialEq, Eq)]
struct ClockDecision {
    /// Apply time-based transitions up to this time (`None`: not now).
    tick_at_ms: Option<i64>,
    /// The desk holds everything the gateway had when it connected.
    caught_up: bool,
}

/// When the desk's clock lapses sessions. While the desk catches up on a backlog (connected, its
/// cursor below the log's end announced in `hello`; or before its first connection, for
/// [`STARTUP_GRACE`]), time-based transitions go only up to the feed's own clock (the latest
/// reception time applied, never past the desk's): the backlog may hold a newer token for a
/// session, and an uninterrupted desk had lapsed exactly what ended before that time. A desk
/// restarted after downtime thus neither lapses (and notifies) sessions that entries seconds away
/// extend, nor keeps untouched sessions secured past their end. Caught up, disconnected after
/// having been live, after the grace, or behind for longer than [`CATCH_UP_LIMIT`]: the desk's
/// own clock (lapsed is the safe state when it cannot know about newer tokens). An advisor's
/// cursor reaches the log's end with the next heartbeat.
fn clock(input: ClockInput<'_>) -> ClockDecision {
    let own = ClockDecision {
        tick_at_ms: Some(input.now_ms),
        caught_up: false,
    };
    let feed = ClockDecision {
        tick_at_ms: input.feed_clock_ms.map(|f| f.min(input.now_ms)),
        caught_up: false,
    };
    match input.feed {
        State::Connected { last_seq, .. } => {
            if input.cursor >= *last_seq {
                ClockDecision {
                    tick_at_ms: Some(input.now_ms),
                    caught_up: true,
                }
            } else if input.behind_for.is_some_and(|d| d >= CATCH_UP_LIMIT) {
                own
            } else {
                feed
            }
        }
        _ if input.caught_up_once || input.since_start >= STARTUP_GRACE => own,
        _ => feed,
    }
}

/// Watches a background task: if it panics or ends (they all run until the service shuts down,
/// which aborts them), the first such failure is recorded in `failure` ("the desk clock
/// panicked: ..."), which the status task turns into [`State::Stopped`] and a stopped feed client.
fn supervise(
    name: &'static str,
    task: tokio::task::JoinHandle<()>,
    failure: &watch::Sender<Option<String>>,
    tasks: &mut Vec<tokio::task::AbortHandle>,
) {
    tasks.push(task.abort_handle());
    let failure = failure.clone();
    let watcher = tokio::spawn(async move {
        let why = match task.await {
            Ok(()) => format!("{name} stopped unexpectedly"),
            Err(e) if e.is_cancelled() => return,
            Err(e) => format!(
                "{name} panicked: {}",
                lockdesk_feed_client::panic_message(&*e.into_panic())
            ),
        };
        tracing::error!("{why}");
        failure.send_if_modified(|f| {
            let first = f.is_none();
            if first {
                *f = Some(why);
            }
            first
        });
    });
    tasks.push(watcher.abort_handle());
}

/// The feed client's sink: applies batches to the writer desk.
struct DeskSink(Arc<Writer>);

impl Sink for DeskSink {
    type Error = DeskError;

    fn cursor(&mut self) -> Result<u64, DeskError> {
        Ok(self.0.lock().cursor())
    }

    fn apply(&mut self, entries: Vec<Entry>) -> Result<(), DeskError> {
        let applied = self.0.lock().apply(&entries, now_ms())?;
        for s in &applied.skipped {
            let error = lockdesk_text::Shown(&s.error);
            tracing::warn!(seq = s.seq, %error, "feed entry skipped");
        }
        if !applied.skipped.is_empty() {
            let _ = self
                .0
                .events
                .send(ServiceEvent::Skipped(Arc::new(applied.skipped)));
        }
        if let Some(triggers) = &self.0.backfill {
            triggers.note(&applied.changes);
        }
        self.0.publish(applied.changes);
        Ok(())
    }

    fn seen(&mut self, seq: u64) {
        if let Err(e) = self.0.lock().note_seen(seq) {
            tracing::warn!("cannot save the heartbeat's cursor: {e}");
        }
    }

    fn log(&mut self, log_id: &str) -> Result<LogCheck, DeskError> {
        Ok(match self.0.lock().bind_log(log_id)? {
            LogBinding::Same => LogCheck::Same,
            LogBinding::Adopted => LogCheck::Adopted,
            LogBinding::Different { known } => LogCheck::Different { known },
        })
    }
}

/// A running desk.
pub struct DeskService {
    writer: Arc<Writer>,
    reader: Arc<Mutex<DeskReader>>,
    client: FeedClient,
    backfill: Option<watch::Receiver<backfill::BackfillStatus>>,
    status: watch::Receiver<ServiceStatus>,
    /// The background tasks and their watchers, aborted by [`DeskService::shutdown`].
    tasks: Mutex<Vec<tokio::task::AbortHandle>>,
    demo: Mutex<Option<Box<dyn Embedded>>>,
    demo_facts: Option<DemoFacts>,
    data_dir: PathBuf,
}

impl DeskService {
    /// Opens the store, loads the keys and connects. Must run inside a tokio runtime; the slow
    /// parts (SQLite, key files) run on the blocking pool.
    pub async fn start(options: Options) -> Result<DeskService, ServiceError> {
        DeskService::start_inner(options, None, |_| {}).await
    }

    /// As [`DeskService::start`], with the feed client's settings adjusted by `tune` after they
    /// are derived from `options` (reconnect backoff, batch size), e.g. a test that cuts the
    /// connection a hundred times in a minute and cannot wait out the default backoff.
    pub async fn start_with_feed(
        options: Options,
        tune: impl FnOnce(&mut lockdesk_feed_client::Config),
    ) -> Result<DeskService, ServiceError> {
        DeskService::start_inner(options, None, tune).await
    }

    /// On a feed running in this process (the demo: `lockdesk_demo::start`), which the service
    /// owns from now on and stops on [`DeskService::shutdown`].
    pub async fn start_embedded(embedded: Box<dyn Embedded>) -> Result<DeskService, ServiceError> {
        let options = embedded.options();
        DeskService::start_inner(options, Some(embedded), |_| {}).await
    }

    async fn start_inner(
        options: Options,
        demo: Option<Box<dyn Embedded>>,
        tune: impl FnOnce(&mut lockdesk_feed_client::Config),
    ) -> Result<DeskService, ServiceError> {
        let data_dir = options.data_dir.clone();
        let demo_log = demo.as_ref().map(|d| d.log_id().to_owned());
        // Owner-only (0700): the desk store holds personal data.
        lockdesk_config::create_private_dir(&data_dir).map_err(|source| ServiceError::Dir {
            path: data_dir.clone(),
            source,
        })?;
        let path = data_dir.join(DESK_FILE);
        let keys = options.keys.clone();
        let desk_config = options.desk.clone();
        let (writer_desk, reader_desk, archived) = tokio::task::spawn_blocking(move || {
            let engine = Arc::new(lockdesk_keys::Engine::load(&keys)?);
            let mut writer = Desk::open(&path, engine.clone(), desk_config.clone())?;
            // The demo's store resumes only on its own log: one of another log (the gateway's
            // was deleted), or with a cursor but no log named, is set aside, never deleted.
            let mut archived = None;
            if let Some(expected) = &demo_log {
                let stale = match writer.log_id()? {
                    Some(known) => known != *expected,
                    None => writer.cursor() > 0,
                };
                if stale {
                    drop(writer);
                    archived = lockdesk_desk::archive_store(&path)?;
                    if let Some(a) = &archived {
                        tracing::warn!(
                            kept = %a.display(),
                            "the demo's gateway log is new: the previous demo store was set aside and a new one started"
                        );
                    }
                    writer = Desk::open(&path, engine, desk_config)?;
                }
            }
            // Queries go through a read-only connection (the writer created and migrated the
            // store just now).
            let reader = DeskReader::open(&path)?;
            Ok::<_, ServiceError>((writer, reader, archived))
        })
        .await
        .map_err(|e| ServiceError::Task(e.to_string()))??;

        let (events, _) = broadcast::channel(4096);
        let triggers = options
            .backfill
            .as_ref()
            .map(|_| Arc::new(backfill::Triggers::default()));
        let writer = Arc::new(Writer {
            desk: Mutex::new(writer_desk),
            events,
            backfill: triggers.clone(),
        });
        let reader = Arc::new(Mutex::new(reader_desk));
        let mut config =
            lockdesk_feed_client::Config::with_urls(options.feed_urls.clone(), options.credential);
        if let Some(path) = options.ca_file.clone() {
            config.extra_roots =
                tokio::task::spawn_blocking(move || lockdesk_feed_client::load_ca_file(&path))
                    .await
                    .map_err(|e| ServiceError::Task(e.to_string()))??;
        }
        tune(&mut config);
        let client = FeedClient::spawn(config, DeskSink(writer.clone()))?;

        let is_demo = options.demo;
        let first_feed = client.state().borrow().clone();
        let first_cursor = writer.lock().cursor();
        let (status_tx, status) = watch::channel(ServiceStatus {
            head: head_after(0, &first_feed, first_cursor),
            feed: first_feed,
            demo: is_demo,
            cursor: first_cursor,
            behind_too_long: false,
        });
        // The catch-up's progress, from the clock to the status task.
        let (progress_tx, mut progress_rx) = watch::channel(Progress::default());
        let mut tasks = Vec::new();
        // The first background task to fail, for the status (see `supervise`).
        let (failure_tx, mut failure_rx) = watch::channel::<Option<String>>(None);

        // The iAdvize backfill, when configured; a client that cannot be built is logged and
        // the desk runs without it.
        let mut backfill_status = None;
        if let (Some(config), Some(triggers)) = (options.backfill, triggers) {
            let (tx, rx) = watch::channel(backfill::BackfillStatus::default());
            match backfill::spawn(config, writer.clone(), reader.clone(), triggers, tx) {
                Ok(task) => {
                    supervise("the iAdvize backfill", task, &failure_tx, &mut tasks);
                    backfill_status = Some(rx);
                }
                Err(e) => tracing::error!("the iAdvize backfill cannot start: {e}"),
            }
        }

        // The clock: sessions lapse without new events; while the desk catches up on a
        // backlog, on the feed's time (see `clock`).
        let ticker = writer.clone();
        let every = options.tick_every.max(Duration::from_millis(50));
        let feed_for_clock = client.state();
        let ticker_task = tokio::spawn(async move {
            let mut interval = tokio::time::interval(every);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let started = tokio::time::Instant::now();
            let mut caught_up_once = false;
            // Since when the desk has been connected without holding the log's end.
            let mut behind_since: Option<tokio::time::Instant> = None;
            loop {
                interval.tick().await;
                let feed = feed_for_clock.borrow().clone();
                let w = ticker.clone();
                let behind_for = behind_since.map(|t| t.elapsed());
                let since_start = started.elapsed();
                let done = tokio::task::spawn_blocking(move || {
                    let mut desk = w.lock();
                    let decision = clock(ClockInput {
                        feed: &feed,
                        cursor: desk.cursor(),
                        feed_clock_ms: desk.feed_clock_ms(),
                        now_ms: now_ms(),
                        caught_up_once,
                        since_start,
                        behind_for,
                    });
                    let behind = matches!(feed, State::Connected { .. }) && !decision.caught_up;
                    let cursor = desk.cursor();
                    let Some(at) = decision.tick_at_ms else {
                        return (decision.caught_up, behind, cursor);
                    };
                    let result = desk.tick(at);
                    drop(desk);
                    match result {
                        Ok(changes) => w.publish(changes),
                        Err(e) => tracing::warn!("cannot apply time-based transitions: {e}"),
                    }
                    (decision.caught_up, behind, cursor)
                })
                .await;
                match done {
                    Ok((caught_up, behind, cursor)) => {
                        caught_up_once |= caught_up;
                        behind_since = match (behind, behind_since) {
                            (true, None) => Some(tokio::time::Instant::now()),
                            (true, since) => since,
                            (false, _) => None,
                        };
                        let progress = Progress {
                            cursor,
                            too_long: behind && behind_for.is_some_and(|d| d >= CATCH_UP_LIMIT),
                        };
                        progress_tx.send_if_modified(|p| {
                            let changed = *p != progress;
                            *p = progress;
                            changed
                        });
                    }
                    // A panic in `tick` (a bug) is the clock's failure, not a quiet stop.
                    Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                    Err(_) => break,
                }
            }
        });
        supervise("the desk clock", ticker_task, &failure_tx, &mut tasks);

        // The demo's simulator: if it cannot start or panics, the desk stops and says so (the
        // feed would stay connected to a gateway nobody writes to).
        let mut demo = demo;
        if let Some(engine) = demo.as_mut().and_then(|d| d.engine_failure()) {
            let failure = failure_tx.clone();
            let watcher = tokio::spawn(async move {
                if let Ok(why) = engine.await {
                    failure.send_if_modified(|f| {
                        let first = f.is_none();
                        if first {
                            *f = Some(format!("the demo engine stopped: {why}"));
                        }
                        first
                    });
                }
            });
            tasks.push(watcher.abort_handle());
        }

        // The status: the feed state plus the cursor.
        let mut feed_state = client.state();
        let cursor_of = writer.clone();
        let failed_client = client.clone();
        let mut head = status.borrow().head;
        let status_task = tokio::spawn(async move {
            let mut stopping = false;
            let (mut feed_ended, mut failures_ended, mut progress_ended) = (false, false, false);
            loop {
                let failure = failure_rx.borrow_and_update().clone();
                let feed = match failure {
                    // A failed task stops the desk: nothing more is applied, and the status
                    // says why instead of the feed's last state.
                    Some(why) => {
                        if !stopping {
                            stopping = true;
                            let client = failed_client.clone();
                            tokio::spawn(async move { client.shutdown().await });
                        }
                        State::Stopped {
                            reason: StopReason::Failed(why),
                        }
                    }
                    None => feed_state.borrow_and_update().clone(),
                };
                let w = cursor_of.clone();
                let cursor = tokio::task::spawn_blocking(move || w.lock().cursor())
                    .await
                    .unwrap_or(0);
                head = head_after(head, &feed, cursor);
                let too_long = progress_rx.borrow_and_update().too_long;
                let next = ServiceStatus {
                    behind_too_long: too_long
                        && matches!(feed, State::Connected { .. })
                        && cursor < head,
                    feed,
                    demo: is_demo,
                    cursor,
                    head,
                };
                // The cursor and head are always current; watchers wake for news only.
                status_tx.send_if_modified(|s| {
                    let news = s.news(&next);
                    *s = next;
                    news
                });
                if status_tx.is_closed() {
                    break;
                }
                if stopping {
                    // Final: keep the sender (and the status) alive until the service is dropped.
                    std::future::pending::<()>().await;
                }
                // The feed client's state ends with the client (stopped for good): its last
                // state, just sent, stays true; only a task's failure can change it now. Ending
                // here would be reported as this task's failure.
                tokio::select! {
                    changed = feed_state.changed(), if !feed_ended => feed_ended = changed.is_err(),
                    changed = failure_rx.changed(), if !failures_ended => failures_ended = changed.is_err(),
                    changed = progress_rx.changed(), if !progress_ended => progress_ended = changed.is_err(),
                    else => std::future::pending::<()>().await,
                }
            }
        });
        supervise("the status task", status_task, &failure_tx, &mut tasks);

        Ok(DeskService {
            writer,
            reader,
            client,
            backfill: backfill_status,
            status,
            tasks: Mutex::new(tasks),
            demo_facts: demo.as_ref().map(|d| DemoFacts {
                archived,
                ..d.facts()
            }),
            demo: Mutex::new(demo),
            data_dir,
        })
    }

    /// Committed changes and alerts as they happen.
    pub fn events(&self) -> broadcast::Receiver<ServiceEvent> {
        self.writer.events.subscribe()
    }

    /// The connection state (and whether this is the demo).
    pub fn status(&self) -> watch::Receiver<ServiceStatus> {
        self.status.clone()
    }

    /// The folder holding the desk store.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The demo's facts (its folder, the gateway's address), when this is the demo.
    pub fn demo(&self) -> Option<&DemoFacts> {
        self.demo_facts.as_ref()
    }

    /// Runs `f` on the reader connection. Blocking (SQLite): call it from a blocking thread.
    pub fn read<T>(&self, f: impl FnOnce(&DeskReader) -> T) -> T {
        let desk = self.reader.lock().unwrap_or_else(|p| p.into_inner());
        f(&desk)
    }

    /// What the iAdvize backfill has done (`None` when it is not configured).
    pub fn backfill_status(&self) -> Option<watch::Receiver<backfill::BackfillStatus>> {
        self.backfill.clone()
    }

    /// The feed client's counters (malformed frames, entries applied, ...).
    pub fn counters(&self) -> lockdesk_feed_client::CounterSnapshot {
        self.client.counters()
    }

    /// Stops the feed client, the clock and (for the demo) the simulator and the gateway.
    /// Idempotent: a second call finds nothing left to stop.
    pub async fn shutdown(&self) -> StopReason {
        let reason = self.client.shutdown().await;
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        for t in tasks {
            t.abort();
        }
        let demo = self.demo.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(demo) = demo {
            demo.shutdown().await;
        }
        reason
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lockdesk_feed_client::DisconnectReason;

    fn connected(last_seq: u64) -> State {
        State::Connected {
            url: "ws://gateway/v1/feed".into(),
            after: 0,
            last_seq,
        }
    }

    fn input(feed: &State, cursor: u64) -> ClockInput<'_> {
        ClockInput {
            feed,
            cursor,
            feed_clock_ms: Some(1_000_000),
            now_ms: 5_000_000,
            caught_up_once: false,
            since_start: Duration::from_secs(1),
            behind_for: None,
        }
    }

    /// Waits until `watcher` records a failure, and returns it.
    async fn failure_of(failed: &mut watch::Receiver<Option<String>>) -> Option<String> {
        failed.wait_for(Option::is_some).await.unwrap().clone()
    }

    #[tokio::test]
    async fn a_background_task_that_panics_or_ends_is_recorded_and_an_aborted_one_is_not() {
        let (failure, mut failed) = watch::channel::<Option<String>>(None);
        let mut tasks = Vec::new();
        // Before the fix the clock's loop ended quietly when `tick` panicked on its blocking
        // thread: nothing watched it, and the status kept its last value.
        let ticker = tokio::spawn(async {
            let r = tokio::task::spawn_blocking(|| panic!("tick failed (test)")).await;
            if let Err(e) = r {
                std::panic::resume_unwind(e.into_panic());
            }
        });
        supervise("the desk clock", ticker, &failure, &mut tasks);
        assert_eq!(
            failure_of(&mut failed).await.as_deref(),
            Some("the desk clock panicked: tick failed (test)")
        );

        // An aborted task (the service shutting down) is no failure; one that ends on its own
        // is. (The aborted task's watcher runs first: this runtime runs tasks in order.)
        let (failure, mut failed) = watch::channel::<Option<String>>(None);
        let mut tasks = Vec::new();
        supervise(
            "the desk clock",
            tokio::spawn(std::future::pending::<()>()),
            &failure,
            &mut tasks,
        );
        tasks[0].abort();
        tokio::task::yield_now().await;
        supervise(
            "the iAdvize backfill",
            tokio::spawn(async {}),
            &failure,
            &mut tasks,
        );
        assert_eq!(
            failure_of(&mut failed).await.as_deref(),
            Some("the iAdvize backfill stopped unexpectedly")
        );
    }

    /// Issue 13: the status knows the log's end (hello's `lastSeq`, then whatever the desk
    /// applied past it), keeps it while disconnected, and says how much is to go only while
    /// connected below it. A live desk's cursor moving is no news for the window; how far
    /// behind, or behind for too long, is.
    #[test]
    fn the_status_knows_the_logs_end_and_what_is_to_go() {
        let status = |feed: State, cursor, head| ServiceStatus {
            feed,
            demo: false,
            cursor,
            head,
            behind_too_long: false,
        };
        let head = head_after(0, &connected(1_240), 0);
        assert_eq!(head, 1_240);
        assert_eq!(status(connected(1_240), 0, head).to_go(), Some(1_240));
        assert_eq!(status(connected(1_240), 1_000, head).to_go(), Some(240));
        // Heartbeats and new entries carry the cursor past hello's end: so does the head.
        assert_eq!(head_after(head, &connected(1_240), 1_300), 1_300);
        assert_eq!(status(connected(1_240), 1_300, 1_300).to_go(), None);
        // Disconnected: the last known end is kept, and nothing is "to go" (not receiving).
        let down = State::Disconnected {
            reason: DisconnectReason::ConnectionLost("reset".into()),
            retry_in: Duration::from_secs(1),
        };
        assert_eq!(head_after(1_300, &down, 900), 1_300);
        assert_eq!(status(down.clone(), 900, 1_300).to_go(), None);
        // News: progress while behind, caught up, behind too long; not a live cursor moving.
        let live = status(connected(1_300), 1_300, 1_300);
        assert!(!live.news(&status(connected(1_300), 1_310, 1_310)));
        let behind = status(connected(1_240), 1_000, 1_240);
        assert!(behind.news(&status(connected(1_240), 1_100, 1_240)));
        assert!(behind.news(&status(connected(1_240), 1_240, 1_240)));
        assert!(behind.news(&ServiceStatus {
            behind_too_long: true,
            ..behind.clone()
        }));
        assert!(live.news(&status(down, 1_300, 1_300)));
    }

    #[test]
    fn the_clock_follows_the_feed_while_the_desk_catches_up_on_a_backlog() {
        let late = STARTUP_GRACE + Duration::from_secs(1);
        let behind = connected(500);
        // Connected with entries still to apply: up to the feed's clock only, however late.
        let decision = clock(ClockInput {
            caught_up_once: true,
            since_start: late,
            behind_for: Some(Duration::from_secs(30)),
            ..input(&behind, 200)
        });
        assert_eq!(
            decision,
            ClockDecision {
                tick_at_ms: Some(1_000_000),
                caught_up: false
            }
        );
        // Nothing applied yet: no feed clock, no tick.
        assert_eq!(
            clock(ClockInput {
                feed_clock_ms: None,
                ..input(&behind, 200)
            })
            .tick_at_ms,
            None
        );
        // The feed's clock never runs ahead of the desk's.
        let ahead = ClockInput {
            feed_clock_ms: Some(9_000_000),
            ..input(&behind, 200)
        };
        assert_eq!(clock(ahead).tick_at_ms, Some(5_000_000));
        // A gateway that never delivers the end it announced: the desk's clock after the limit.
        let stuck = ClockInput {
            behind_for: Some(CATCH_UP_LIMIT),
            ..input(&behind, 200)
        };
        assert_eq!(clock(stuck).tick_at_ms, Some(5_000_000));
        // Caught up: the desk's clock.
        assert_eq!(
            clock(input(&behind, 500)),
            ClockDecision {
                tick_at_ms: Some(5_000_000),
                caught_up: true
            }
        );
        // Before the first connection: the feed's clock during the grace, then the desk's.
        let connecting = State::Connecting {
            url: "ws://gateway/v1/feed".into(),
        };
        assert_eq!(clock(input(&connecting, 0)).tick_at_ms, Some(1_000_000));
        let after_grace = ClockInput {
            since_start: late,
            ..input(&connecting, 0)
        };
        assert_eq!(clock(after_grace).tick_at_ms, Some(5_000_000));
        // Disconnected after having been live: the desk's clock at once (lapsed is safe).
        let down = State::Disconnected {
            reason: DisconnectReason::ConnectionLost("reset".into()),
            retry_in: Duration::from_secs(1),
        };
        let was_live = ClockInput {
            caught_up_once: true,
            ..input(&down, 500)
        };
        assert_eq!(
            clock(was_live),
            ClockDecision {
                tick_at_ms: Some(5_000_000),
                caught_up: false
            }
        );
        let stopped = State::Stopped {
            reason: StopReason::CredentialRevoked,
        };
        assert_eq!(
            clock(ClockInput {
                since_start: late,
                ..input(&stopped, 500)
            })
            .tick_at_ms,
            Some(5_000_000)
        );
    }
}
