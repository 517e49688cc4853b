//! A local stand-in for iAdvize's token endpoint and GraphQL API (tests and the desktop demo),
//! answering in the documented shapes from an in-memory dataset.
//!
//! It enforces what the client must cope with: the password grant (form-encoded, `grant_type=
//! password`), token expiry (`401 invalid_token`), the login rate limit (10/min/user), the
//! required `interval`, cursor pagination capped at 100 per page; and it can be told to answer
//! `429` a few times or to send malformed answers. It reads the GraphQL request's variables; it
//! does not parse GraphQL (it only checks the query asks for `closedConversations`).
//!
//! Must not: listen anywhere but where it is told (tests and the demo use 127.0.0.1:0).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::Endpoints;

/// One conversation of the dataset.
#[derive(Clone, Debug)]
pub struct Conversation {
    pub id: String,
    pub visitor_id: String,
    pub external_user_id: Option<String>,
    pub channel: String,
    /// RFC 3339 UTC (`...Z`); intervals compare these as text.
    pub created_at: String,
    pub closed_at: String,
    pub operator_id: Option<u64>,
    pub operator_email: Option<String>,
}

/// What the stand-in serves.
#[derive(Clone, Debug, Default)]
pub struct Dataset {
    /// (e-mail, password) pairs allowed to log in.
    pub users: Vec<(String, String)>,
    pub conversations: Vec<Conversation>,
}

/// Malformed answers the stand-in can be told to send (once each time it is set).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Malformed {
    /// The token endpoint answers 200 with a body that is not JSON.
    TokenNotJson,
    /// The token endpoint answers JSON without `access_token`/`expires_in`.
    TokenMissingFields,
    /// GraphQL answers 200 with a body that is not JSON.
    GraphQlNotJson,
    /// GraphQL answers `{"data":{"closedConversations":{"edges":"x"}}}`.
    GraphQlWrongShape,
    /// GraphQL answers a node without its required `id`.
    GraphQlNodeWithoutId,
    /// GraphQL answers `hasNextPage: true` without an `endCursor`.
    GraphQlNextPageWithoutCursor,
}

struct Inner {
    dataset: Dataset,
    token_lifetime: Duration,
    tokens: HashMap<String, Instant>,
    logins: HashMap<String, VecDeque<Instant>>,
    throttle: u32,
    retry_after: Option<u64>,
    malformed: Option<Malformed>,
    next_token: u64,
}

struct Shared {
    inner: Mutex<Inner>,
    token_requests: AtomicU64,
    graphql_requests: AtomicU64,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running stand-in; dropping it stops the server.
pub struct StandIn {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl StandIn {
    /// Serves `dataset` on `listen` (e.g. `127.0.0.1:0`); tokens live `token_lifetime`
    /// (iAdvize: 24 h).
    pub async fn start(
        dataset: Dataset,
        token_lifetime: Duration,
        listen: SocketAddr,
    ) -> std::io::Result<StandIn> {
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                dataset,
                token_lifetime,
                tokens: HashMap::new(),
                logins: HashMap::new(),
                throttle: 0,
                retry_after: None,
                malformed: None,
                next_token: 1,
            }),
            token_requests: AtomicU64::new(0),
            graphql_requests: AtomicU64::new(0),
        });
        let app = Router::new()
            .route("/oauth2/token", post(token))
            .route("/graphql", post(graphql))
            .route("/_authenticated", get(authenticated))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!(error = %e, "iAdvize stand-in stopped");
            }
        });
        Ok(StandIn { addr, shared, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn endpoints(&self) -> Endpoints {
        Endpoints::under(&self.base_url())
            .unwrap_or_else(|_| unreachable!("a socket address makes a valid URL"))
    }

    /// Token requests received (successful or not).
    pub fn token_requests(&self) -> u64 {
        self.shared.token_requests.load(Ordering::Relaxed)
    }

    pub fn graphql_requests(&self) -> u64 {
        self.shared.graphql_requests.load(Ordering::Relaxed)
    }

    /// The next `times` requests (either endpoint) get `429`, with `Retry-After: secs` if given.
    pub fn answer_429(&self, times: u32, retry_after: Option<u64>) {
        let mut i = self.shared.lock();
        i.throttle = times;
        i.retry_after = retry_after;
    }

    /// Every token issued so far is expired from now on.
    pub fn expire_tokens(&self) {
        self.shared.lock().tokens.clear();
    }

    /// The next matching answer is malformed this way.
    pub fn malformed(&self, kind: Malformed) {
        self.shared.lock().malformed = Some(kind);
    }
}

fn throttled(shared: &Shared) -> Option<Response> {
    let mut i = shared.lock();
    if i.throttle == 0 {
        return None;
    }
    i.throttle -= 1;
    let mut headers = HeaderMap::new();
    if let Some(s) = i.retry_after {
        if let Ok(v) = s.to_string().parse() {
            headers.insert("retry-after", v);
        }
    }
    Some(
        (
            StatusCode::TOO_MANY_REQUESTS,
            headers,
            Json(json!({"error": "too_many_requests"})),
        )
            .into_response(),
    )
}

fn take_malformed(i: &mut Inner, kinds: &[Malformed]) -> Option<Malformed> {
    match i.malformed {
        Some(m) if kinds.contains(&m) => {
            i.malformed = None;
            Some(m)
        }
        _ => None,
    }
}

#[derive(Deserialize)]
struct TokenForm {
    username: Option<String>,
    password: Option<String>,
    grant_type: Option<String>,
}

async fn token(State(shared): State<Arc<Shared>>, Form(form): Form<TokenForm>) -> Response {
    shared.token_requests.fetch_add(1, Ordering::Relaxed);
    if let Some(r) = throttled(&shared) {
        return r;
    }
    let mut i = shared.lock();
    if form.grant_type.as_deref() != Some("password") {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "unsupported_grant_type"})),
        )
            .into_response();
    }
    let user = form.username.unwrap_or_default();
    // iAdvize: 10 logins per minute per user.
    let now = Instant::now();
    let recent = i.logins.entry(user.clone()).or_default();
    while recent
        .front()
        .is_some_and(|t| now.duration_since(*t) > Duration::from_secs(60))
    {
        recent.pop_front();
    }
    if recent.len() >= 10 {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "60")],
            Json(json!({"error": "too_many_logins"})),
        )
            .into_response();
    }
    recent.push_back(now);
    let password = form.password.unwrap_or_default();
    if !i
        .dataset
        .users
        .iter()
        .any(|(u, p)| *u == user && *p == password)
    {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_grant", "error_description": "Invalid username and password combination"})),
        )
            .into_response();
    }
    match take_malformed(
        &mut i,
        &[Malformed::TokenNotJson, Malformed::TokenMissingFields],
    ) {
        Some(Malformed::TokenNotJson) => {
            return (StatusCode::OK, "<html>oops</html>").into_response()
        }
        Some(_) => return Json(json!({"token_type": "Bearer"})).into_response(),
        None => {}
    }
    let value = format!(
        "standin-token-{}-{}",
        i.next_token,
        now.elapsed().as_nanos()
    );
    i.next_token += 1;
    let lifetime = i.token_lifetime;
    i.tokens.insert(value.clone(), now + lifetime);
    Json(json!({
        "access_token": value,
        "expires_in": lifetime.as_secs(),
        "token_type": "Bearer",
        "refresh_token": "none",
    }))
    .into_response()
}

fn bearer_valid(shared: &Shared, headers: &HeaderMap) -> bool {
    let Some(token) = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    shared
        .lock()
        .tokens
        .get(token)
        .is_some_and(|exp| Instant::now() < *exp)
}

fn invalid_token() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({"error_description": "access token not valid", "error": "invalid_token"})),
    )
        .into_response()
}

async fn authenticated(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if bearer_valid(&shared, &headers) {
        Json(json!({"authenticated": true})).into_response()
    } else {
        invalid_token()
    }
}

fn graphql_error(message: &str) -> Response {
    Json(json!({"data": null, "errors": [{"message": message}]})).into_response()
}

async fn graphql(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    shared.graphql_requests.fetch_add(1, Ordering::Relaxed);
    if let Some(r) = throttled(&shared) {
        return r;
    }
    if !bearer_valid(&shared, &headers) {
        return invalid_token();
    }
    let query = body.get("query").and_then(Value::as_str).unwrap_or("");
    if !query.contains("closedConversations") {
        return graphql_error("this stand-in only answers closedConversations");
    }
    let vars = body.get("variables").cloned().unwrap_or(Value::Null);
    let text = |k: &str| vars.get(k).and_then(Value::as_str).map(str::to_string);
    let (Some(from), Some(to)) = (text("from"), text("to")) else {
        return graphql_error(
            "Field \"interval\" of required type \"DateTimeInterval!\" was not provided.",
        );
    };
    let visitors: Option<Vec<String>> = vars.get("visitorIds").and_then(Value::as_array).map(|a| {
        a.iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect()
    });
    let first = vars
        .get("first")
        .and_then(Value::as_u64)
        .unwrap_or(crate::MAX_PAGE_SIZE as u64)
        .clamp(1, crate::MAX_PAGE_SIZE as u64) as usize;
    let start = match text("after") {
        None => 0,
        Some(c) => match c
            .strip_prefix("cursor:")
            .and_then(|n| n.parse::<usize>().ok())
        {
            Some(n) => n,
            None => return graphql_error("invalid cursor"),
        },
    };
    let mut i = shared.lock();
    let kinds = [
        Malformed::GraphQlNotJson,
        Malformed::GraphQlWrongShape,
        Malformed::GraphQlNodeWithoutId,
        Malformed::GraphQlNextPageWithoutCursor,
    ];
    match take_malformed(&mut i, &kinds) {
        Some(Malformed::GraphQlNotJson) => return (StatusCode::OK, "{\"data\": {").into_response(),
        Some(Malformed::GraphQlWrongShape) => {
            return Json(json!({"data": {"closedConversations": {"edges": "x"}}})).into_response()
        }
        Some(Malformed::GraphQlNodeWithoutId) => {
            return Json(json!({"data": {"closedConversations": {
                "pageInfo": {"hasNextPage": false, "endCursor": null},
                "edges": [{"node": {"channel": "CHAT", "createdAt": "2026-01-01T00:00:00Z"}}]
            }}}))
            .into_response()
        }
        Some(Malformed::GraphQlNextPageWithoutCursor) => {
            return Json(json!({"data": {"closedConversations": {
                "pageInfo": {"hasNextPage": true, "endCursor": null},
                "edges": []
            }}}))
            .into_response()
        }
        _ => {}
    }
    let matching: Vec<&Conversation> = i
        .dataset
        .conversations
        .iter()
        .filter(|c| c.closed_at.as_str() >= from.as_str() && c.closed_at.as_str() <= to.as_str())
        .filter(|c| visitors.as_ref().is_none_or(|v| v.contains(&c.visitor_id)))
        .collect();
    let end = (start + first).min(matching.len());
    let edges: Vec<Value> = matching
        .get(start..end)
        .unwrap_or(&[])
        .iter()
        .enumerate()
        .map(|(k, c)| {
            let users: Vec<Value> = c
                .operator_id
                .map(|id| {
                    vec![
                        json!({"__typename": "Professional", "id": id, "email": c.operator_email,
                                "firstName": null, "lastName": null}),
                    ]
                })
                .unwrap_or_default();
            json!({
                "cursor": format!("cursor:{}", start + k + 1),
                "node": {
                    "id": c.id,
                    "channel": c.channel,
                    "createdAt": c.created_at,
                    "closedAt": c.closed_at,
                    "visitor": {"visitorId": c.visitor_id, "externalUserId": c.external_user_id},
                    "users": users,
                }
            })
        })
        .collect();
    Json(json!({"data": {"closedConversations": {
        "pageInfo": {"hasNextPage": end < matching.len(), "endCursor": if end > start { Some(format!("cursor:{end}")) } else { None }},
        "edges": edges,
    }}}))
    .into_response()
}
