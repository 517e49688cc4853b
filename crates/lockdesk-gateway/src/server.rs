//! The HTTP server: routes, handlers, and start/shutdown. Handlers are thin: take the request,
//! call `webhook`/`evidence` for the checks, append to the store on the blocking pool, answer.
//!
//! Must not: answer 2xx before the store's append returned; run SQLite on the executor; log a
//! secret or a token.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::json;
use tokio::sync::oneshot;

use crate::config::{GatewayConfig, Secret};
use crate::metrics::Metrics;
use crate::store::{EventStore, SqliteStore, StoreError};
use crate::webhook::{self, BodyFormat, DeliveryHeaders};
use crate::{evidence, GatewayError};

/// The largest request body accepted (413 above). iAdvize payloads are well under 4 KiB.
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// The database file inside the data folder.
pub const DATABASE_FILE: &str = "gateway.sqlite3";

struct AppState {
    config: GatewayConfig,
    webhook_secrets: Vec<Secret>,
    store: Arc<dyn EventStore>,
    metrics: Metrics,
    options: ServerOptions,
}

/// A running gateway. Dropping it also stops the server (gracefully, in the background);
/// [`Gateway::shutdown`] stops it and waits until it has.
pub struct Gateway {
    local_addr: SocketAddr,
    shutdown: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Gateway {
    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting connections, lets in-flight requests finish (their appends complete), and
    /// returns when the server and its store are closed.
    pub async fn shutdown(self) -> Result<(), GatewayError> {
        let _ = self.shutdown.send(());
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
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
        }
    }
}

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
    let state = Arc::new(AppState {
        webhook_secrets: config.webhook.iter().map(|w| w.secret.clone()).collect(),
        config,
        store,
        metrics: Metrics::default(),
        options,
    });
    let app = router(state);
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, app, options, rx));
    tracing::info!(%local_addr, "gateway listening");
    Ok(Gateway {
        local_addr,
        shutdown: tx,
        task,
    })
}

/// Accepts connections until `shutdown` fires, then waits for open connections to finish their
/// in-flight requests.
async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    options: ServerOptions,
    mut shutdown: oneshot::Receiver<()>,
) -> std::io::Result<()> {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
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
            _ = &mut shutdown => break,
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let connection = http.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/webhooks/iadvize", post(webhook_handler))
        .route("/v1/evidence", post(evidence_handler))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_handler))
        .with_state(state)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// `{"error": reason, "message": ...}` with `status`.
fn refuse(status: StatusCode, reason: &'static str, message: String) -> Response {
    let body = json!({ "error": reason, "message": message }).to_string();
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn json_ok(status: StatusCode, body: serde_json::Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
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
    let mut response = refuse(
        StatusCode::SERVICE_UNAVAILABLE,
        "storage_unavailable",
        "the event could not be stored; retry later".into(),
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    response
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
    let app = match webhook::verify_signature(
        &state.webhook_secrets,
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
    let event = match webhook::parse(&body, format, delivery, now_ms()) {
        Ok(e) => e,
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
                app = state.config.webhook.get(app).map(|w| w.name.as_str()),
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
    let provider = match evidence::authenticate(
        &state.config.provider,
        headers
            .get(header::AUTHORIZATION)
            .map(HeaderValue::as_bytes),
    ) {
        Ok(p) => p,
        Err(e) => {
            state.metrics.rejected(ENDPOINT, e.reason());
            tracing::warn!("evidence refused: missing or unknown bearer credential");
            let mut response = refuse(StatusCode::UNAUTHORIZED, e.reason(), e.to_string());
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return response;
        }
    };
    let body = match read_body(&state, ENDPOINT, body).await {
        Ok(b) => b,
        Err(response) => return response,
    };
    let parsed = match evidence::parse(&provider.name, &body, now_ms()) {
        Ok(p) => p,
        Err(e) => {
            state.metrics.rejected(ENDPOINT, e.reason());
            tracing::warn!(
                provider = provider.name,
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
                provider = provider.name,
                token_sha256 = fingerprint,
                "evidence stored"
            );
            json_ok(StatusCode::ACCEPTED, json!({ "seq": seq }))
        }
        Err(e) => store_failed(&state, ENDPOINT, &e),
    }
}

async fn healthz(State(state): State<Arc<AppState>>) -> Response {
    let store = state.store.clone();
    match run_blocking(move || store.counts()).await {
        Ok(c) => json_ok(
            StatusCode::OK,
            json!({ "status": "ok", "lastSeq": c.last_seq }),
        ),
        Err(e) => {
            tracing::error!(error = %e, "health check: store unavailable");
            refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage_unavailable",
                "the event store does not answer".into(),
            )
        }
    }
}

async fn metrics_handler(State(state): State<Arc<AppState>>) -> Response {
    let store = state.store.clone();
    let counts = run_blocking(move || store.counts()).await.ok();
    let mut response = state.metrics.render(counts).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}
