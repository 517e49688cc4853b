//! The desk's feed client: an actor that owns the WebSocket connection to the gateway's
//! `GET /v1/feed` (docs/feed-protocol.md), resumes from the caller's committed cursor, reconnects
//! with capped exponential backoff and jitter, fails over between several addresses of one
//! gateway log ([`Config::urls`]), detects a dead connection by heartbeat, and publishes its
//! connection state on a `tokio::sync::watch` channel.
//!
//! The caller implements [`Sink`] (its store) and calls [`FeedClient::spawn`]; the returned handle
//! is cheap to clone. The sink runs on a dedicated thread, never on the async executor: it is
//! asked for its cursor on every (re)connect, is handed entries in batches that it commits together
//! with the cursor, and hears heartbeats' `seq` through [`Sink::seen`].
//!
//! Architecture invariants:
//! - Must not: call the sink on the async executor, or call it concurrently (one thread owns it;
//!   calls happen in `seq` order).
//! - Must not: hand the sink an entry whose `seq` is not above every `seq` handed before on this
//!   connection and above the sink's cursor (nothing is applied twice by us).
//! - Must not: put the credential in the URL, a log line, an error message or `Debug` output; log a
//!   frame's content (evidence holds tokens). A malformed frame is logged by its error category,
//!   counted and skipped.
//! - Must not: panic on anything the network sends, or when a channel closes (a dropped handle
//!   means shutdown).
//! - Must not: restart from 0 on its own (close code 4004 stops the client and says why).
//! - Must not: act on a number outside its bound (`lockdesk_feed::BoundError`): a `hello`,
//!   `heartbeat`, `resume` or entry `seq` out of bounds ends the connection as a protocol error
//!   (what was received before it is still applied); an entry with a valid `seq` and another field
//!   out of bounds is handed to the sink, which skips and records it ([`Sink::apply`]).
//! - Must not: die silently: a panic in the actor or in the sink ends in [`State::Stopped`] with
//!   the panic's message, and [`State::Connected`] is published only after a valid `hello`.

mod actor;
mod sink;
#[cfg(feature = "tls")]
mod tls;

#[cfg(feature = "tls")]
pub use tls::{load_ca_file, MAX_CA_CERTS, MAX_CA_FILE_BYTES};

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub use lockdesk_feed::{Entry, EntryKind, Related};
use tokio::sync::{mpsc, watch};

/// The subscriber credential sent as `Authorization: Bearer ...` on the upgrade request. Its
/// `Debug` never shows the value.
#[derive(Clone)]
pub struct Credential(String);

impl Credential {
    pub fn new(value: impl Into<String>) -> Credential {
        Credential(value.into())
    }

    fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credential(<redacted>)")
    }
}

/// Reconnect delays: `initial` doubling per failed attempt up to `max`, each with jitter (a
/// uniformly random delay in `[d/2, d]`, so that desks cut off together do not come back
/// together). The attempt count is reset after a connection that received `hello` and stayed up
/// for `healthy_after`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
    pub healthy_after: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
            healthy_after: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    /// The un-jittered delay before reconnect attempt `attempt` (0-based).
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
        self.initial
            .checked_mul(factor)
            .unwrap_or(self.max)
            .min(self.max)
    }

    /// The jittered delay before reconnect attempt `attempt`: in `[ceiling/2, ceiling]`.
    pub fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self.ceiling(attempt);
        let half = ceiling / 2;
        let spread = u64::try_from((ceiling - half).as_millis()).unwrap_or(u64::MAX);
        half + Duration::from_millis(fastrand::u64(0..=spread))
    }
}

/// The most gateway addresses one client takes ([`Config::urls`]).
pub const MAX_URLS: usize = 16;

/// How to reach the gateway and how to behave.
#[derive(Clone, Debug)]
pub struct Config {
    /// The gateway's feed, one address per instance of the same log, tried in this order:
    /// `wss://host[:port][/v1/feed]` (`ws://` only to a loopback address; `http(s)://` is read
    /// as `ws(s)://`; an empty path means `/v1/feed`). 1 to [`MAX_URLS`] addresses.
    ///
    /// Failover: the client starts with the first and stays on the address that last worked.
    /// When an address cannot be reached (connection refused, timeout, TLS error, an upgrade
    /// answered with another status than 101 or 401, a connection that ends before `hello`),
    /// the next one is tried at once; when every address failed in turn, the backoff delay
    /// applies before the next round. A connection that got `hello` and ended is retried on
    /// the same address first (after the backoff delay). The cursor is the sink's, whichever
    /// address serves it; a 401, a 4003 or another log's id stops the client as with one
    /// address (the credential and the log are the same on every instance).
    pub urls: Vec<String>,
    pub credential: Credential,
    pub backoff: Backoff,
    /// At most this many entries per [`Sink::apply`] call.
    pub max_batch: usize,
    /// Messages buffered while the sink is busy; when full, the client stops reading the socket
    /// (TCP backpressure; the gateway then sends `resume` and closes with 4001).
    pub max_pending: usize,
    /// TCP connect + TLS + WebSocket upgrade must finish within this.
    pub connect_timeout: Duration,
    /// Until `hello` announces `heartbeatSecs`, a connection silent for this long is dead.
    pub hello_timeout: Duration,
    /// A frame we send (ack, close) must be written within this.
    pub write_timeout: Duration,
    /// Trusted in addition to the operating system's roots for `wss://` (DER certificates), e.g.
    /// a brand's private CA.
    pub extra_roots: Vec<rustls_pki_types::CertificateDer<'static>>,
}

impl Config {
    /// One gateway address.
    pub fn new(url: impl Into<String>, credential: Credential) -> Config {
        Config::with_urls(vec![url.into()], credential)
    }

    /// Several addresses of one gateway log, tried in this order ([`Config::urls`]).
    pub fn with_urls(urls: Vec<String>, credential: Credential) -> Config {
        Config {
            urls,
            credential,
            backoff: Backoff::default(),
            max_batch: 500,
            max_pending: 4096,
            connect_timeout: Duration::from_secs(15),
            hello_timeout: Duration::from_secs(45),
            write_timeout: Duration::from_secs(10),
            extra_roots: Vec::new(),
        }
    }
}

/// The caller's store, called on the client's own thread.
///
/// `Error`'s `Display` is logged and published in [`DisconnectReason::SinkFailed`]: it must not
/// hold a token or a secret.
pub trait Sink: Send + 'static {
    type Error: fmt::Display + Send + 'static;

    /// The last `seq` whose effects are committed (0: nothing yet). Asked on every (re)connect.
    fn cursor(&mut self) -> Result<u64, Self::Error>;

    /// Commit these entries' effects and the new cursor (the last entry's `seq`) in one
    /// transaction. `entries` is non-empty and in increasing `seq` order; every `seq` is within
    /// `1..=lockdesk_feed::MAX_SEQ`. An entry whose other fields are out of bounds
    /// ([`Entry::check_fields`] fails) is handed over too: the sink must not apply its content but
    /// skip it and record why (the cursor still moves past it, so nothing later is held back). On error nothing of this
    /// call may be committed: the client reconnects (with backoff) and asks [`Sink::cursor`] again.
    fn apply(&mut self, entries: Vec<Entry>) -> Result<(), Self::Error>;

    /// A heartbeat: everything visible to this subscriber up to `seq` has been delivered (and,
    /// since the calls are in order, applied). Saving it as the cursor avoids rescanning other
    /// advisors' entries on resume; doing nothing is also correct.
    fn seen(&mut self, seq: u64);

    /// The gateway announced its log's identity (`hello.logId`); called before any entry of
    /// the connection is applied. A sink that keeps a cursor remembers the first one with it
    /// and answers [`LogCheck::Different`] for another: the client then stops
    /// ([`StopReason::LogChanged`]) rather than resume a cursor on a log whose seqs mean other
    /// entries. The default remembers nothing and accepts every log.
    fn log(&mut self, log_id: &str) -> Result<LogCheck, Self::Error> {
        let _ = log_id;
        Ok(LogCheck::Same)
    }
}

/// How the gateway's log compares with the one the sink's cursor belongs to ([`Sink::log`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogCheck {
    /// The same log.
    Same,
    /// The sink knew no log yet and remembers this one.
    Adopted,
    /// Another log than `known`: the client stops.
    Different { known: String },
}

/// The client's connection state, published on [`FeedClient::state`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum State {
    /// Opening a connection (TCP, TLS, upgrade) to `url` (shown without query): with several
    /// addresses, the one being tried.
    Connecting { url: String },
    /// `hello` received from `url` (the address in use): resuming after `after`; `last_seq` was
    /// the log's end when we connected.
    Connected {
        url: String,
        after: u64,
        last_seq: u64,
    },
    /// The connection failed or ended; the next attempt starts in `retry_in`.
    Disconnected {
        reason: DisconnectReason,
        retry_in: Duration,
    },
    /// The client has stopped for good (it needs the user, or was shut down).
    Stopped { reason: StopReason },
}

/// Why a connection failed or ended (the client retries).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DisconnectReason {
    /// The address (as shown in [`State::Connecting`]) and why.
    #[error("cannot connect to {0}")]
    ConnectFailed(String),
    #[error("the gateway refused the upgrade with HTTP {0}")]
    HttpStatus(u16),
    /// `reason` is the gateway's text, kept as received: its Display shows it through
    /// `lockdesk_text::visible` (a close reason cannot drive a terminal or a log viewer).
    #[error("the gateway closed the connection (code {code}{})", if reason.is_empty() { String::new() } else { format!(": {}", lockdesk_text::Shown(reason)) })]
    Closed { code: u16, reason: String },
    #[error("the connection was lost: {0}")]
    ConnectionLost(String),
    #[error("no frame for {0:?}: the connection is dead")]
    HeartbeatTimeout(Duration),
    #[error("the local store failed: {0}")]
    SinkFailed(String),
    /// A message with a number outside its bound (`lockdesk_feed::BoundError`'s text).
    #[error("the gateway broke the feed protocol: {0}")]
    ProtocolError(String),
}

/// Why the client stopped for good.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StopReason {
    #[error("shut down")]
    Shutdown,
    #[error("the gateway no longer accepts this credential (revoked)")]
    CredentialRevoked,
    #[error("the gateway refused the credential (HTTP 401)")]
    Unauthorized,
    #[error("the local cursor ({after}) is beyond the gateway's log (its data was reset?): the local store and the gateway disagree; not restarting from 0 on our own")]
    AfterBeyondEnd { after: u64 },
    #[error("the gateway serves another log (id {found}) than the one this desk's data belongs to (id {known}): its database was reset or replaced, and its entry numbers now mean other entries; not resuming on it. To follow the new log, start this desk on a new local store (lockdesk-cli watch --accept-new-log; docs/feed-protocol.md, \"Log identity\")")]
    LogChanged { known: String, found: String },
    #[error("the local store stopped (it was dropped)")]
    SinkGone,
    #[error("the local store panicked: {0}")]
    SinkPanicked(String),
    /// A bug stopped the client or the service around it (a panic in the feed client's task, or
    /// in a task of the desk it feeds): the text says which and why.
    #[error("{0}")]
    Failed(String),
}

/// The text of a panic's payload (`panic!` with a literal or a format string), for a status line.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let text = if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_owned()
    };
    // Shown to the user: keep it to a line.
    text.chars().take(300).collect()
}

/// Why [`FeedClient::spawn`] refused the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("no feed address")]
    NoUrl,
    #[error("{0} feed addresses: at most {MAX_URLS} are taken")]
    TooManyUrls(usize),
    /// One address of several is refused: `index` is 1-based, in the order given.
    #[error("feed address {index} of {count}: {source}")]
    InAddress {
        index: usize,
        count: usize,
        source: Box<ConfigError>,
    },
    #[error("the feed URL is not a URL: {0}")]
    BadUrl(String),
    #[error("the feed URL must start with wss:// (or ws:// to this machine), not {0}://")]
    BadScheme(String),
    /// A `wss://` address in a build without the `tls` feature (only the fuzz build).
    #[error("wss:// needs TLS, and this build of the feed client has none (feature `tls`)")]
    NoTls,
    #[error("ws:// sends the credential in clear text: only allowed to a loopback address, use wss:// for {0}")]
    InsecureRemote(String),
    #[error("the feed URL must not hold a user name or password: the credential goes in the configuration")]
    UserInfoInUrl,
    #[error("the credential is empty or holds characters not allowed in an HTTP header")]
    BadCredential,
    #[error("max_batch and max_pending must be at least 1")]
    BadLimits,
    #[error("cannot start the sink thread: {0}")]
    Thread(std::io::Error),
    /// Extra trust roots that cannot be read or used ([`load_ca_file`]).
    #[error("the CA file {path}: {message}")]
    CaFile { path: String, message: String },
}

/// Counters for the UI and tests.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    malformed_frames: AtomicU64,
    unknown_messages: AtomicU64,
    duplicate_entries: AtomicU64,
    out_of_bounds_entries: AtomicU64,
    entries_applied: AtomicU64,
    batches_applied: AtomicU64,
    heartbeats: AtomicU64,
    connections: AtomicU64,
    applied_seq: AtomicU64,
}

impl Counters {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// A snapshot of [`FeedClient::counters`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CounterSnapshot {
    /// Text frames that are not a protocol message, and binary frames: logged and skipped.
    pub malformed_frames: u64,
    /// Well-formed messages of a type this version does not know: ignored.
    pub unknown_messages: u64,
    /// Entries whose `seq` was not above what we already had: skipped.
    pub duplicate_entries: u64,
    /// Entries with a valid `seq` and another number out of bounds: handed to the sink to be
    /// skipped and recorded.
    pub out_of_bounds_entries: u64,
    pub entries_applied: u64,
    pub batches_applied: u64,
    pub heartbeats: u64,
    /// Successful WebSocket upgrades.
    pub connections: u64,
    /// The highest `seq` the sink has applied or seen (0 before the first).
    pub applied_seq: u64,
}

pub(crate) enum Command {
    Shutdown,
}

/// The handle to a running client. Cheap to clone; when the last clone is dropped, the client
/// shuts down (as with [`FeedClient::shutdown`], without waiting).
#[derive(Clone)]
pub struct FeedClient {
    commands: mpsc::Sender<Command>,
    state: watch::Receiver<State>,
    counters: Arc<Counters>,
    task: Arc<tokio::task::AbortHandle>,
}

impl fmt::Debug for FeedClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FeedClient")
            .field("state", &*self.state.borrow())
            .finish_non_exhaustive()
    }
}

impl FeedClient {
    /// Starts the client on the current tokio runtime (panics outside one, like `tokio::spawn`)
    /// and the sink on its own thread.
    pub fn spawn<S: Sink>(config: Config, sink: S) -> Result<FeedClient, ConfigError> {
        let targets = actor::Target::parse_all(&config)?;
        if config.max_batch == 0 || config.max_pending == 0 {
            return Err(ConfigError::BadLimits);
        }
        let sink = sink::SinkThread::start(sink).map_err(ConfigError::Thread)?;
        let (commands, commands_rx) = mpsc::channel(4);
        let (state_tx, state) = watch::channel(State::Connecting {
            url: targets[0].display.clone(),
        });
        let counters = Arc::new(Counters::default());
        let actor = actor::Actor::new(
            config,
            targets,
            sink,
            state_tx.clone(),
            counters.clone(),
            commands_rx,
        );
        // A panic in the actor (a bug: nothing from the network may cause one) must not leave
        // the last state, e.g. "Connected", standing while nothing is received any more.
        let task = tokio::spawn(async move {
            use futures_util::FutureExt;
            if let Err(panic) = std::panic::AssertUnwindSafe(actor.run())
                .catch_unwind()
                .await
            {
                let message = panic_message(&*panic);
                tracing::error!(%message, "the feed client panicked");
                state_tx.send_replace(State::Stopped {
                    reason: StopReason::Failed(format!("the feed client panicked: {message}")),
                });
            }
        })
        .abort_handle();
        Ok(FeedClient {
            commands,
            state,
            counters,
            task: Arc::new(task),
        })
    }

    /// The connection state; `changed()` on it wakes on every transition. After the client has
    /// stopped, the last value stays [`State::Stopped`].
    pub fn state(&self) -> watch::Receiver<State> {
        self.state.clone()
    }

    pub fn counters(&self) -> CounterSnapshot {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        CounterSnapshot {
            malformed_frames: get(&c.malformed_frames),
            unknown_messages: get(&c.unknown_messages),
            duplicate_entries: get(&c.duplicate_entries),
            out_of_bounds_entries: get(&c.out_of_bounds_entries),
            entries_applied: get(&c.entries_applied),
            batches_applied: get(&c.batches_applied),
            heartbeats: get(&c.heartbeats),
            connections: get(&c.connections),
            applied_seq: get(&c.applied_seq),
        }
    }

    /// Stops the client: closes the connection (code 1000), lets the batch the sink is applying
    /// finish, drops the sink (on its thread) and returns once all that is done. Safe to call
    /// from any clone, more than once, or after the client stopped by itself.
    pub async fn shutdown(&self) -> StopReason {
        let _ = self.commands.send(Command::Shutdown).await;
        let mut state = self.state.clone();
        loop {
            if let State::Stopped { reason } = &*state.borrow_and_update() {
                return reason.clone();
            }
            if state.changed().await.is_err() {
                // The actor is gone without publishing Stopped (aborted).
                return StopReason::Shutdown;
            }
        }
    }

    /// Stops the client's task at once, as a crash would: no close frame, the batch being
    /// applied finishes or not depending on the sink's thread. For tests of crash recovery.
    pub fn abort(&self) {
        self.task.abort();
    }
}
