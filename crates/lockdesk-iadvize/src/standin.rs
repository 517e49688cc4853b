//! A local stand-in for iAdvize's token endpoint and GraphQL API (tests and the desktop demo),
//! answering in the documented shapes from an in-memory dataset.
//!
//! It enforces what the client must cope with: the password grant (form-encoded, `grant_type=
//! password`), token expiry (`401 invalid_token`), the login rate limit (10/min/user), the
//! required `interval`, cursor pagination capped at 100 per page; and it can be told to answer
//! `429` a few times or to send malformed answers.
//!
//! Every GraphQL query is parsed and validated (apollo-compiler) against the schema excerpt in
//! `schema/iadvize-excerpt.graphql`, which carries iAdvize's deprecations: a syntax error, an
//! unknown field or argument, a wrong type, or a field whose `@maintainedUntil` date has passed
//! (iAdvize removed it) is answered as iAdvize would, with GraphQL `errors` and no `data`. The
//! answer holds exactly the fields the query selected (aliases and fragments included), so a
//! client cannot rely on a field it did not ask for.
//!
//! Must not: listen anywhere but where it is told (tests and the demo use 127.0.0.1:0).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use apollo_compiler::executable::{Field, Selection, SelectionSet};
use apollo_compiler::response::GraphQLError;
use apollo_compiler::validation::Valid;
use apollo_compiler::{ast, ExecutableDocument, Schema};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::Endpoints;

/// iAdvize's schema, the part the backfill reaches, with its deprecations and retirement dates.
pub const SCHEMA_EXCERPT: &str = include_str!("../schema/iadvize-excerpt.graphql");

/// The directive of the excerpt that dates a deprecated field's removal (`YYYY-MM-DD`).
const MAINTAINED_UNTIL: &str = "maintainedUntil";

/// The schema excerpt, parsed and validated.
pub fn schema() -> Result<Valid<Schema>, String> {
    Schema::parse_and_validate(SCHEMA_EXCERPT, "iadvize-excerpt.graphql")
        .map_err(|e| format!("the iAdvize schema excerpt is not valid: {}", e.errors))
}

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
    /// Every visitor id a `closedConversations` filter named, in the order asked.
    queried_visitors: Vec<String>,
}

struct Shared {
    inner: Mutex<Inner>,
    schema: Valid<Schema>,
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
        let schema = schema().map_err(std::io::Error::other)?;
        let shared = Arc::new(Shared {
            schema,
            inner: Mutex::new(Inner {
                dataset,
                token_lifetime,
                tokens: HashMap::new(),
                logins: HashMap::new(),
                throttle: 0,
                retry_after: None,
                malformed: None,
                next_token: 1,
                queried_visitors: Vec::new(),
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

    /// Every visitor id the `closedConversations` queries answered so far asked about, in order
    /// (a page each: a visitor asked about twice was asked twice).
    pub fn queried_visitors(&self) -> Vec<String> {
        self.shared.lock().queried_visitors.clone()
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

/// Errors found before execution (syntax, validation, retired fields): no `data` at all.
fn request_errors(errors: Vec<GraphQLError>) -> Response {
    let errors: Vec<Value> = errors
        .into_iter()
        .map(|e| {
            let mut v = serde_json::to_value(&e).unwrap_or_else(|_| json!({"message": e.message}));
            v["extensions"] = json!({"code": "GRAPHQL_VALIDATION_FAILED"});
            v
        })
        .collect();
    Json(json!({ "errors": errors })).into_response()
}

/// Today as `YYYY-MM-DD` (UTC).
fn today() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        .to_string()
        .chars()
        .take(10)
        .collect()
}

/// Fields of `set` (fragments included) whose schema definition was retired before `today`:
/// iAdvize has removed them, so it answers as for an unknown field.
fn retired_fields(
    doc: &ExecutableDocument,
    set: &SelectionSet,
    today: &str,
    seen: &mut Vec<String>,
    out: &mut Vec<GraphQLError>,
) {
    for selection in &set.selections {
        match selection {
            Selection::Field(f) => {
                let until = f
                    .definition
                    .directives
                    .get(MAINTAINED_UNTIL)
                    .and_then(|d| d.specified_argument_by_name("date"))
                    .and_then(|v| v.as_str().map(str::to_owned));
                if until.is_some_and(|d| d.as_str() < today) {
                    out.push(GraphQLError::new(
                        format!("Cannot query field \"{}\" on type \"{}\".", f.name, set.ty),
                        f.location(),
                        &doc.sources,
                    ));
                }
                retired_fields(doc, &f.selection_set, today, seen, out);
            }
            Selection::InlineFragment(i) => retired_fields(doc, &i.selection_set, today, seen, out),
            Selection::FragmentSpread(s) => {
                let name = s.fragment_name.to_string();
                if seen.contains(&name) {
                    continue;
                }
                seen.push(name);
                if let Some(fragment) = doc.fragments.get(&s.fragment_name) {
                    retired_fields(doc, &fragment.selection_set, today, seen, out);
                }
            }
        }
    }
}

/// An argument's value with the request's variables substituted, as JSON.
fn value_json(value: &ast::Value, vars: &Value) -> Value {
    match value {
        ast::Value::Null => Value::Null,
        ast::Value::Enum(n) => json!(n.as_str()),
        ast::Value::Variable(n) => vars.get(n.as_str()).cloned().unwrap_or(Value::Null),
        ast::Value::String(s) => json!(s),
        ast::Value::Float(f) => f.try_to_f64().map(|f| json!(f)).unwrap_or(Value::Null),
        ast::Value::Int(i) => i.try_to_i32().map(|i| json!(i)).unwrap_or(Value::Null),
        ast::Value::Boolean(b) => json!(b),
        ast::Value::List(items) => items.iter().map(|v| value_json(v, vars)).collect(),
        ast::Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(k, v)| (k.to_string(), value_json(v, vars)))
                .collect(),
        ),
    }
}

fn argument(field: &Field, name: &str, vars: &Value) -> Value {
    field
        .arguments
        .iter()
        .find(|a| a.name == name)
        .map(|a| value_json(&a.value, vars))
        .unwrap_or(Value::Null)
}

/// Whether an object of type `typename` matches a fragment's type condition (`parent`: the type
/// of the selection set the fragment is in, which an unconditioned fragment takes).
fn type_matches(condition: Option<&str>, typename: &str, parent: &str) -> bool {
    match condition {
        None => true,
        Some(c) => c == typename || c == parent,
    }
}

/// The selected part of `full` (an object carrying its `__typename`), keyed by response keys,
/// in selection order. Lists are shaped item by item.
fn shape(doc: &ExecutableDocument, set: &SelectionSet, full: &Value) -> Value {
    match full {
        Value::Array(items) => items.iter().map(|v| shape(doc, set, v)).collect(),
        Value::Object(_) => {
            let mut out = serde_json::Map::new();
            collect(doc, set, full, &mut out, 0);
            Value::Object(out)
        }
        other => other.clone(),
    }
}

fn collect(
    doc: &ExecutableDocument,
    set: &SelectionSet,
    full: &Value,
    out: &mut serde_json::Map<String, Value>,
    depth: usize,
) {
    if depth > 32 {
        return;
    }
    let typename = full.get("__typename").and_then(Value::as_str).unwrap_or("");
    for selection in &set.selections {
        match selection {
            Selection::Field(f) => {
                let value = full.get(f.name.as_str()).cloned().unwrap_or(Value::Null);
                let value = if f.selection_set.selections.is_empty() {
                    value
                } else {
                    shape(doc, &f.selection_set, &value)
                };
                out.insert(f.response_key().to_string(), value);
            }
            Selection::InlineFragment(i) => {
                let condition = i.type_condition.as_ref().map(|t| t.as_str());
                if type_matches(condition, typename, set.ty.as_str()) {
                    collect(doc, &i.selection_set, full, out, depth + 1);
                }
            }
            Selection::FragmentSpread(s) => {
                if let Some(fragment) = doc.fragments.get(&s.fragment_name) {
                    let condition = fragment.type_condition().as_str();
                    if type_matches(Some(condition), typename, set.ty.as_str()) {
                        collect(doc, &fragment.selection_set, full, out, depth + 1);
                    }
                }
            }
        }
    }
}

/// A conversation of the dataset with every field the excerpt can ask for.
fn conversation_json(c: &Conversation) -> Value {
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
        "__typename": "Conversation",
        "id": c.id,
        "channel": c.channel,
        "createdAt": c.created_at,
        "closedAt": c.closed_at,
        "duration": null,
        "visitor": {
            "__typename": "Visitor",
            "source": if c.channel == "MOBILE_APP" { "MOBILE_APP" } else { "ONSITE" },
            "externalUserId": c.external_user_id,
            "createdAt": c.created_at,
            "updatedAt": c.closed_at,
        },
        "users": users,
    })
}

/// One `closedConversations` field: its filters and page, as the full connection object.
fn closed_conversations(i: &mut Inner, args: &Value) -> Result<Value, String> {
    let filters = args.get("filters").cloned().unwrap_or(Value::Null);
    let interval = filters.get("interval").cloned().unwrap_or(Value::Null);
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let (Some(from), Some(to)) = (text(&interval, "from"), text(&interval, "to")) else {
        return Err(
            "Field \"interval\" of required type \"DateTimeInterval!\" was not provided.".into(),
        );
    };
    let visitors: Option<Vec<String>> = filters
        .get("conversationVisitorIds")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        });
    i.queried_visitors
        .extend(visitors.iter().flatten().cloned());
    let first = args
        .get("first")
        .and_then(Value::as_u64)
        .unwrap_or(crate::MAX_PAGE_SIZE as u64)
        .clamp(1, crate::MAX_PAGE_SIZE as u64) as usize;
    let start = match text(args, "after") {
        None => 0,
        Some(c) => c
            .strip_prefix("cursor:")
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or("invalid cursor")?,
    };
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
            json!({
                "__typename": "ClosedConversationEdge",
                "cursor": format!("cursor:{}", start + k + 1),
                "node": conversation_json(c),
            })
        })
        .collect();
    Ok(json!({
        "__typename": "ClosedConversationConnection",
        "pageInfo": {
            "__typename": "PageInfo",
            "hasNextPage": end < matching.len(),
            "hasPreviousPage": start > 0,
            "startCursor": if end > start { Some(format!("cursor:{}", start + 1)) } else { None },
            "endCursor": if end > start { Some(format!("cursor:{end}")) } else { None },
        },
        "edges": edges,
    }))
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
    let Some(query) = body.get("query").and_then(Value::as_str) else {
        return graphql_error("Must provide query string.");
    };
    let doc = match ExecutableDocument::parse_and_validate(&shared.schema, query, "query.graphql") {
        Ok(doc) => doc,
        Err(e) => return request_errors(e.errors.iter().map(|d| d.to_json()).collect()),
    };
    let operation_name = body.get("operationName").and_then(Value::as_str);
    let operation = match doc.operations.get(operation_name) {
        Ok(op) => op,
        Err(e) => {
            return request_errors(vec![GraphQLError::new(
                e.message().to_string(),
                e.location(),
                &doc.sources,
            )])
        }
    };
    if operation.operation_type != ast::OperationType::Query {
        return request_errors(vec![GraphQLError::new(
            "this stand-in only answers queries",
            operation.location(),
            &doc.sources,
        )]);
    }
    // Fragments are reached through their spreads (validation refuses unused ones), each once.
    let mut retired = Vec::new();
    let today = today();
    retired_fields(
        &doc,
        &operation.selection_set,
        &today,
        &mut Vec::new(),
        &mut retired,
    );
    if !retired.is_empty() {
        return request_errors(retired);
    }
    let vars = body.get("variables").cloned().unwrap_or(Value::Null);

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
    // The root: each `closedConversations` field (aliases allowed) answered with its own
    // arguments, then cut down to what the query selected.
    let mut root = serde_json::Map::new();
    root.insert("__typename".into(), json!("Query"));
    let mut data = serde_json::Map::new();
    for selection in &operation.selection_set.selections {
        let Selection::Field(f) = selection else {
            return graphql_error("this stand-in answers only fields at the root");
        };
        let value = match f.name.as_str() {
            "__typename" => json!("Query"),
            "closedConversations" => {
                let args = json!({
                    "filters": argument(f, "filters", &vars),
                    "first": argument(f, "first", &vars),
                    "after": argument(f, "after", &vars),
                });
                match closed_conversations(&mut i, &args) {
                    Ok(full) => shape(&doc, &f.selection_set, &full),
                    Err(message) => return graphql_error(&message),
                }
            }
            other => return graphql_error(&format!("this stand-in does not answer {other}")),
        };
        data.insert(f.response_key().to_string(), value);
    }
    Json(json!({ "data": data })).into_response()
}
