//! The HTTP server: routes, handlers, and start/shutdown. Handlers are thin: take the request,
//! call `webhook`/`evidence` for the checks, append to the store on the blocking pool, answer.
//!
//! Must not: answer 2xx before the store's append returned; run SQLite on the executor; log a
//! secret or a token.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::json;
use tokio::sync::watch;
use tokio_util::task::TaskTracker;

use crate::access::{self, Access};
use crate::config::{FieldError, GatewayConfig};
use crate::feed::{self, FeedOptions, Hub};
use crate::metrics::Metrics;
use crate::store::{EventStore, SqliteStore, StoreError};
use crate::webhook::{self, BodyFormat, DeliveryHeaders};
use crate::{evidence, GatewayError};

/// The largest request body accepted (413 above). iAdvize payloads are well under 4 KiB.
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// The database file inside the data folder.
pub const DATABASE_FILE: &str = "gateway.sqlite3";

struct AppState {
    /// The configuration's keys and digests, computed once per (re)load, not per request.
    access: Arc<watch::Sender<Arc<Access>>>,
    store: Arc<dyn EventStore>,
    metrics: Arc<Metrics>,
    hub: Arc<Hub>,
    options: ServerOptions,
    /// Feed connections are spawned here, so shutdown waits for them too.
    tracker: TaskTracker,
    shutdown: watch::Receiver<bool>,
    /// Open connections: HTTP connections, and feed connections after their upgrade.
    open: Arc<AtomicUsize>,
}

/// A running gateway. Dropping it also stops the server (gracefully, in the background);
/// [`Gateway::shutdown`] stops it and waits until it has.
pub struct Gateway {
    local_addr: SocketAddr,
    access: Arc<watch::Sender<Arc<Access>>>,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// What a configuration reload changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reloaded {
    /// Subscribers in the new configuration.
    pub subscribers: usize,
    /// Names of the subscribers whose credential is gone: their connections close with 4003.
    pub revoked: Vec<String>,
    /// Names of the subscribers whose credential names a changed subscriber (role, operator
    /// ids, name): their connections are told to resume (4001) and reconnect under it.
    pub changed: Vec<String>,
}

impl Gateway {
    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Replaces the configuration (webhook secrets, providers, subscribers) without a restart;
    /// an invalid one ([`crate::config::validate`]) is refused with its field errors and the
    /// running one stays. Requests from now on use the
    /// new one; feed connections whose credential is gone close with 4003 (the desk stops and
    /// says its credential was revoked), those whose subscriber changed are told to resume.
    /// Nothing already stored changes.
    pub fn reload(&self, config: GatewayConfig) -> Result<Reloaded, Vec<FieldError>> {
        let errors = crate::config::validate(&config);
        if !errors.is_empty() {
            return Err(errors);
        }
        let next = Arc::new(Access::new(config));
        let previous = self.access.send_replace(next.clone());
        let mut report = Reloaded {
            subscribers: next.config.subscriber.len(),
            ..Reloaded::default()
        };
        for s in &previous.config.subscriber {
            let digest = crate::auth::digest(&s.credential);
            match next.subscribers.by_digest(&digest) {
                None => report.revoked.push(s.name.clone()),
                Some(now) if **now != access::subscriber_info(s) => {
                    report.changed.push(s.name.clone())
                }
                Some(_) => {}
            }
        }
        tracing::info!(
            subscribers = report.subscribers,
            revoked = ?report.revoked,
            changed = ?report.changed,
            "configuration reloaded"
        );
        Ok(report)
    }

    /// Stops accepting connections, lets in-flight requests finish (their appends complete),
    /// closes feed connections (1001), and returns when the server and its store are closed.
    pub async fn shutdown(self) -> Result<(), GatewayError> {
        self.shutdown.send_replace(true);
        match self.task.await {
            Ok(result) => result.map_err(GatewayError::Serve),
            Err(e) => Err(GatewayError::Serve(std::io::Error::other(e))),
        }
    }
}

/// Opens the store in `data_dir`, binds `listen` and serves until [`Gateway::shutdown`].
pub async fn start(
    config: GatewayConfig,
    data_dir: &Path,
    listen: SocketAddr,
) -> Result<Gateway, GatewayError> {
    start_with(config, data_dir, listen, ServerOptions::default()).await
}

/// Server settings that are not in the configuration file.
#[derive(Clone, Copy, Debug)]
pub struct ServerOptions {
    /// A connection that has not sent a request's complete headers within this time is closed
    /// (slow-loris defence).
    pub header_read_timeout: Duration,
    /// A request whose body has not fully arrived within this time (from when its handler
    /// starts) gets 408; the body can be at most [`MAX_BODY_BYTES`].
    pub body_read_timeout: Duration,
    /// The feed's queue size and heartbeat.
    pub feed: FeedOptions,
    /// Open connections (HTTP and feed) at most. One more is answered `503 over_capacity` and
    /// closed at once, so the gateway never runs out of file descriptors (which would leave
    /// new connections hanging in the backlog and the database unable to open its files).
    /// The default, [`default_max_connections`], follows the process's open-files limit.
    pub max_connections: usize,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            feed: FeedOptions::default(),
            max_connections: default_max_connections(),
        }
    }
}

/// File descriptors kept for everything but connections: the database (its file, WAL and
/// shared memory, for each of its connections), the listener, the runtime, stdio, logs.
const RESERVED_FDS: u64 = 64;
/// The default cap never goes above this (an idle connection costs 4 to 8 KiB).
const MAX_DEFAULT_CONNECTIONS: u64 = 50_000;

/// The process's open-files limit (soft), if it can be read.
pub fn open_files_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes the struct it is given.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
            // rlim_t is u64 on Linux and macOS, but not by definition.
            #[allow(clippy::unnecessary_cast)]
            return Some(limit.rlim_cur as u64);
        }
    }
    None
}

/// The default connection cap: the open-files limit less [`RESERVED_FDS`] and a sixteenth,
/// at most 50,000 (896 for the common soft limit of 1,024; 176 for 256). 1,024 when the limit
/// cannot be read.
pub fn default_max_connections() -> usize {
    let cap = match open_files_limit() {
        Some(limit) => limit
            .saturating_sub(RESERVED_FDS + limit / 16)
            .clamp(1, MAX_DEFAULT_CONNECTIONS),
        None => 1024,
    };
    usize::try_from(cap).unwrap_or(1024)
}

/// One open connection, counted until dropped.
struct Slot(Arc<AtomicUsize>);

impl Slot {
    fn take(open: &Arc<AtomicUsize>) -> Slot {
        open.fetch_add(1, Ordering::AcqRel);
        Slot(open.clone())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The whole answer to a connection over the cap, written without waiting (a socket's send
/// buffer always takes it) before closing.
const OVER_CAPACITY: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
retry-after: 5\r\nconnection: close\r\ncontent-length: 76\r\n\r\n\
{\"error\":\"over_capacity\",\"message\":\"too many open connections; retry later\"}";

/// As [`start`], with explicit [`ServerOptions`].
pub async fn start_with(
    config: GatewayConfig,
    data_dir: &Path,
    listen: SocketAddr,
    options: ServerOptions,
) -> Result<Gateway, GatewayError> {
    let db = data_dir.join(DATABASE_FILE);
    let store = tokio::task::spawn_blocking(move || SqliteStore::open(&db))
        .await
        .map_err(|e| GatewayError::Serve(std::io::Error::other(e)))??;
    start_with_store(config, Arc::new(store), listen, options).await
}

/// As [`start`], with any [`EventStore`].
pub async fn start_with_store(
    config: GatewayConfig,
    store: Arc<dyn EventStore>,
    listen: SocketAddr,
    options: ServerOptions,
) -> Result<Gateway, GatewayError> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| GatewayError::Bind {
            addr: listen,
            source,
        })?;
    let local_addr = listener.local_addr().map_err(|source| GatewayError::Bind {
        addr: listen,
        source,
    })?;
    let metrics = Arc::new(Metrics::default());
    let hub = Arc::new(Hub::new(store.clone(), metrics.clone(), options.feed));
    let (shutdown_tx, shutdown) = watch::channel(false);
    let tracker = TaskTracker::new();
    let access = Arc::new(watch::Sender::new(Arc::new(Access::new(config))));
    let open = Arc::new(AtomicUsize::new(0));
    let state = Arc::new(AppState {
        access: access.clone(),
        store,
        metrics: metrics.clone(),
        hub: hub.clone(),
        options,
        tracker: tracker.clone(),
        shutdown: shutdown.clone(),
        open: open.clone(),
    });
    tracker.spawn(feed::tail(hub, shutdown.clone()));
    let app = router(state);
    let limits = Limits {
        open,
        metrics,
        full: AtomicBool::new(false),
    };
    let task = tokio::spawn(serve(listener, app, options, limits, tracker, shutdown));
    tracing::info!(
        %local_addr,
        max_connections = options.max_connections,
        open_files_limit = open_files_limit(),
        "gateway listening"
    );
    Ok(Gateway {
        local_addr,
        access,
        shutdown: shutdown_tx,
        task,
    })
}

/// The connection cap's state.
struct Limits {
    open: Arc<AtomicUsize>,
    metrics: Arc<Metrics>,
    /// Over the cap since the last warning (one warning per episode, not per connection).
    full: AtomicBool,
}

impl Limits {
    /// Takes a slot for a new connection, or answers it 503 and closes it when the cap is
    /// reached (without waiting on it: a flood costs one accept and one write per connection).
    fn admit(
        &self,
        stream: tokio::net::TcpStream,
        cap: usize,
    ) -> Option<(tokio::net::TcpStream, Slot)> {
        let open = self.open.load(Ordering::Acquire);
        if open < cap {
            if self.full.swap(false, Ordering::Relaxed) {
                tracing::info!(
                    open,
                    max_connections = cap,
                    "connections under the cap again"
                );
            }
            return Some((stream, Slot::take(&self.open)));
        }
        if !self.full.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                open,
                max_connections = cap,
                "connection cap reached: new connections get 503 until some close"
            );
        }
        self.metrics.rejected("connection", "over_capacity");
        let _ = stream.try_write(OVER_CAPACITY);
        // Read what the client already sent: closing with unread data would reset the
        // connection, and the client might lose the answer.
        let mut sink = [0u8; 4096];
        for _ in 0..4 {
            if !matches!(stream.try_read(&mut sink), Ok(n) if n > 0) {
                break;
            }
        }
        None
    }
}

/// Accepts connections until `shutdown` fires, then waits for open connections (HTTP requests
/// in flight, feed connections closing) to finish.
async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    options: ServerOptions,
    limits: Limits,
    tracker: TaskTracker,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(options.header_read_timeout);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Typically EMFILE: wait for connections to close instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = crate::feed::stopped(&mut shutdown) => break,
        };
        let Some((stream, slot)) = limits.admit(stream, options.max_connections) else {
            continue;
        };
        // Feed latency: do not hold small frames back (Nagle).
        let _ = stream.set_nodelay(true);
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let connection = http
            .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
            .with_upgrades();
        let mut stop = shutdown.clone();
        tracker.spawn(async move {
            let _slot = slot;
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                    return;
                }
                _ = crate::feed::stopped(&mut stop) => connection.as_mut().graceful_shutdown(),
            }
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tracker.close();
    tracker.wait().await;
    Ok(())
}

fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/webhooks/iadvize", post(webhook_handler))
        .route("/v1/evidence", post(evidence_handler))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_handler))
        .route(lockdesk_feed::FEED_PATH, get(feed_handler))
        .with_state(state)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// `response` with the header `name: value` (replacing any other value of it).
fn with_header(mut response: Response, name: HeaderName, value: &'static str) -> Response {
    response
        .headers_mut()
        .insert(name, HeaderValue::from_static(value));
    response
}

/// `{"error": reason, "message": ...}` with `status`.
fn refuse(status: StatusCode, reason: &'static str, message: String) -> Response {
    json_ok(status, json!({ "error": reason, "message": message }))
}

/// 503 `storage_unavailable`, to be retried in five seconds.
fn storage_unavailable(message: String) -> Response {
    with_header(
        refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "storage_unavailable",
            message,
        ),
        header::RETRY_AFTER,
        "5",
    )
}

fn json_ok(status: StatusCode, body: serde_json::Value) -> Response {
    with_header(
        (status, body.to_string()).into_response(),
        header::CONTENT_TYPE,
        "application/json",
    )
}

/// Reads the whole body within the size limit and the time limit. On failure, the response to
/// send: 413 over the limit, 408 too slow, 400 broken off.
async fn read_body(
    state: &AppState,
    endpoint: &'static str,
    body: axum::body::Body,
) -> Result<Bytes, Response> {
    let read = tokio::time::timeout(
        state.options.body_read_timeout,
        axum::body::to_bytes(body, MAX_BODY_BYTES),
    )
    .await;
    let (status, reason, message) = match read {
        Ok(Ok(bytes)) => return Ok(bytes),
        Err(_) => (
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            "the body did not arrive in time".to_owned(),
        ),
        Ok(Err(e)) if is_length_limit(&e) => (
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the body exceeds {MAX_BODY_BYTES} bytes"),
        ),
        Ok(Err(_)) => (
            StatusCode::BAD_REQUEST,
            "body_unreadable",
            "the body could not be read in full".to_owned(),
        ),
    };
    state.metrics.rejected(endpoint, reason);
    Err(refuse(status, reason, message))
}

fn is_length_limit(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = s.source();
    }
    false
}

fn store_failed(state: &AppState, endpoint: &'static str, e: &StoreError) -> Response {
    tracing::error!(endpoint, error = %e, "append failed");
    state.metrics.rejected(endpoint, "storage_unavailable");
    storage_unavailable("the event could not be stored; retry later".into())
}

async fn run_blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or(Err(StoreError::Closed))
}

async fn webhook_handler(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    const ENDPOINT: &str = "webhook";
    let body = match read_body(&state, ENDPOINT, body).await {
        Ok(b) => b,
        Err(response) => return response,
    };
    let get = |name: &str| headers.get(name).map(HeaderValue::as_bytes);
    let delivery = DeliveryHeaders {
        correlation_id: webhook::header_text(get(webhook::CORRELATION_HEADER)),
        delivery_id: webhook::header_text(get(webhook::DELIVERY_HEADER)),
    };
    let access = state.access.borrow().clone();
    let app = match webhook::verify_signature(
        access.webhook_keys.keys(),
        get(webhook::SIGNATURE_HEADER),
        &body,
    ) {
        Ok(i) => i,
        Err(r) => {
            state.metrics.rejected(ENDPOINT, r.reason());
            tracing::warn!(reason = r.reason(), correlation_id = ?delivery.correlation_id, "webhook refused");
            return refuse(StatusCode::UNAUTHORIZED, r.reason(), r.to_string());
        }
    };
    let format = BodyFormat::from_content_type(get(header::CONTENT_TYPE.as_str()));
    let event = match webhook::parse_noting(&body, format, delivery, now_ms()) {
        Ok((e, None)) => e,
        Ok((e, Some(problem))) => {
            tracing::warn!(
                event_type = e.event_type,
                problem = %problem,
                "webhook kept without routing fields (they are not valid ids): supervisors only"
            );
            e
        }
        Err(r) => {
            state.metrics.rejected(ENDPOINT, r.reason());
            tracing::warn!(reason = r.reason(), "signed webhook refused");
            return refuse(StatusCode::BAD_REQUEST, r.reason(), r.to_string());
        }
    };
    let (event_id, event_type) = (event.event_id.clone(), event.event_type.clone());
    let store = state.store.clone();
    match run_blocking(move || store.append_webhook(event)).await {
        Ok(appended) => {
            state.metrics.webhook_stored(appended.inserted);
            tracing::info!(
                seq = appended.seq,
                duplicate = !appended.inserted,
                event_id,
                event_type,
                app = access.config.webhook.get(app).map(|w| w.name.as_str()),
                "webhook stored"
            );
            json_ok(
                StatusCode::OK,
                json!({ "seq": appended.seq, "duplicate": !appended.inserted }),
            )
        }
        Err(e) => store_failed(&state, ENDPOINT, &e),
    }
}

async fn evidence_handler(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    const ENDPOINT: &str = "evidence";
    // Authenticate before reading the body: an unauthenticated client gets nothing buffered
    // and learns nothing about the format from our error messages.
    let access = state.access.borrow().clone();
    let Some(provider) = access.providers.find(
        headers
            .get(header::AUTHORIZATION)
            .map(HeaderValue::as_bytes),
    ) else {
        let e = evidence::EvidenceError::Unauthorized;
        state.metrics.rejected(ENDPOINT, e.reason());
        tracing::warn!("evidence refused: missing or unknown bearer credential");
        return unauthorized(e.reason(), e.to_string());
    };
    let body = match read_body(&state, ENDPOINT, body).await {
        Ok(b) => b,
        Err(response) => return response,
    };
    let parsed = match evidence::parse(provider, &body, now_ms()) {
        Ok(p) => p,
        Err(e) => {
            state.metrics.rejected(ENDPOINT, e.reason());
            tracing::warn!(
                provider = provider.as_str(),
                reason = e.reason(),
                "evidence refused"
            );
            return refuse(StatusCode::BAD_REQUEST, e.reason(), e.to_string());
        }
    };
    let fingerprint = parsed.fingerprint;
    let store = state.store.clone();
    let evidence = parsed.evidence;
    match run_blocking(move || store.append_evidence(evidence)).await {
        Ok(seq) => {
            state.metrics.evidence_stored();
            tracing::info!(
                seq,
                provider = provider.as_str(),
                token_sha256 = fingerprint,
                "evidence stored"
            );
            json_ok(StatusCode::ACCEPTED, json!({ "seq": seq }))
        }
        Err(e) => store_failed(&state, ENDPOINT, &e),
    }
}

/// Constant time (the store keeps its counts), truthful: 503 when the store cannot append (its
/// writer is gone, or its last commit failed).
async fn healthz(State(state): State<Arc<AppState>>) -> Response {
    let store = state.store.clone();
    match run_blocking(move || store.counts()).await {
        Ok(c) => json_ok(
            StatusCode::OK,
            json!({ "status": "ok", "lastSeq": c.last_seq, "logId": state.store.log_id() }),
        ),
        Err(e) => {
            tracing::error!(error = %e, "health check: store unavailable");
            storage_unavailable(format!("the event store cannot store: {e}"))
        }
    }
}

async fn metrics_handler(State(state): State<Arc<AppState>>) -> Response {
    let store = state.store.clone();
    let counts = run_blocking(move || store.counts()).await.ok();
    let feed = state.hub.snapshot();
    let writer = state.store.writer_stats();
    with_header(
        state.metrics.render(counts, writer, &feed).into_response(),
        header::CONTENT_TYPE,
        "text/plain; version=0.0.4; charset=utf-8",
    )
}

fn unauthorized(reason: &'static str, message: String) -> Response {
    with_header(
        refuse(StatusCode::UNAUTHORIZED, reason, message),
        header::WWW_AUTHENTICATE,
        "Bearer",
    )
}

fn header_has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.to_str()
            .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    })
}

/// `after` from the query string: absent means 0; anything but one decimal u64 is refused.
fn parse_after(query: Option<&str>) -> Result<u64, ()> {
    let mut after = None;
    for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if key == "after" {
            if after.is_some() || value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                return Err(());
            }
            after = Some(value.parse::<u64>().map_err(|_| ())?);
        }
    }
    Ok(after.unwrap_or(0))
}

/// `GET /v1/feed`: checks the bearer credential, the WebSocket handshake, the subprotocol and
/// `after` before upgrading (each refusal is a plain HTTP answer), then hands the upgraded
/// connection to the feed.
async fn feed_handler(State(state): State<Arc<AppState>>, mut request: Request) -> Response {
    const ENDPOINT: &str = "feed";
    let headers = request.headers();
    // Subscribed before authenticating, against the value the receiver has seen: a reload from
    // here on (even during the catch-up) reaches the connection; none can slip in between.
    let mut access_rx = state.access.subscribe();
    let access = access_rx.borrow_and_update().clone();
    let Some((digest, subscriber)) = access.subscribers.find_with_digest(
        headers
            .get(header::AUTHORIZATION)
            .map(HeaderValue::as_bytes),
    ) else {
        state.metrics.rejected(ENDPOINT, "unauthorized");
        tracing::warn!("feed refused: missing or unknown bearer credential");
        return unauthorized(
            "unauthorized",
            "missing or unknown bearer credential".into(),
        );
    };
    let subscriber = subscriber.clone();
    let key = headers.get(header::SEC_WEBSOCKET_KEY).cloned();
    let is_websocket = header_has_token(headers, header::CONNECTION, "upgrade")
        && header_has_token(headers, header::UPGRADE, "websocket")
        && headers
            .get(header::SEC_WEBSOCKET_VERSION)
            .is_some_and(|v| v.as_bytes() == b"13");
    let Some(key) = key.filter(|_| is_websocket) else {
        state.metrics.rejected(ENDPOINT, "not_websocket");
        return with_header(
            refuse(
                StatusCode::UPGRADE_REQUIRED,
                "not_websocket",
                "the feed is a WebSocket (version 13)".into(),
            ),
            header::UPGRADE,
            "websocket",
        );
    };
    if !header_has_token(
        headers,
        header::SEC_WEBSOCKET_PROTOCOL,
        lockdesk_feed::SUBPROTOCOL,
    ) {
        state.metrics.rejected(ENDPOINT, "subprotocol");
        return refuse(
            StatusCode::BAD_REQUEST,
            "subprotocol",
            format!(
                "offer the subprotocol {} (Sec-WebSocket-Protocol)",
                lockdesk_feed::SUBPROTOCOL
            ),
        );
    }
    let Ok(after) = parse_after(request.uri().query()) else {
        state.metrics.rejected(ENDPOINT, "invalid_after");
        return refuse(
            StatusCode::BAD_REQUEST,
            "invalid_after",
            "after must be a non-negative integer (the last seq applied)".into(),
        );
    };
    let on_upgrade = hyper::upgrade::on(&mut request);
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let hub = state.hub.clone();
    let shutdown = state.shutdown.clone();
    let watch = access::Watch::new(access_rx, digest, subscriber.clone());
    // The upgraded connection outlives its HTTP connection's task: it counts on its own.
    let slot = Slot::take(&state.open);
    state.tracker.spawn(async move {
        let _slot = slot;
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(error = %e, "feed: upgrade failed");
                return;
            }
        };
        // Desks send only small acks: a 4 KiB read buffer instead of tungstenite's 128 KiB
        // (allocated per connection, it dominates an idle desk's memory).
        let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
            .read_buffer_size(4096)
            .max_message_size(Some(feed::MAX_CLIENT_FRAME))
            .max_frame_size(Some(feed::MAX_CLIENT_FRAME));
        let ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
            hyper_util::rt::TokioIo::new(upgraded),
            tokio_tungstenite::tungstenite::protocol::Role::Server,
            Some(config),
        )
        .await;
        feed::serve_connection(hub, ws, subscriber, after, shutdown, watch).await;
    });
    let mut response = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let h = response.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static(lockdesk_feed::SUBPROTOCOL),
    );
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    response
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_over_capacity_answer_is_well_formed() {
        let text = std::str::from_utf8(super::OVER_CAPACITY).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 "));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["error"], "over_capacity");
    }
}
