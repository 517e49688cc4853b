//! iAdvize's GraphQL API for the desk's cross-device history: closed conversations of a list of
//! visitors over an interval (`closedConversations` with its required `interval` and
//! `conversationVisitorIds`, one visitor per query), each with its visitor's `externalUserId`
//! (what the platform believes the authenticated user is, compared by the desk core with the
//! verified userId). Only live schema fields are asked for (see [`QUERY`]).
//!
//! [`Client`] gets a password-grant token (`POST /oauth2/token`, valid 24 h; logins are limited to
//! 10/min/user, so the token is cached for its lifetime and renewed shortly before it expires or
//! when the API says it is no longer valid), follows the cursor pagination (at most 100 per page),
//! and waits and retries on `429` (honouring `Retry-After`, bounded). With the `standin` feature,
//! [`standin`] is a local server answering in the same shapes from an in-memory dataset, which
//! validates each query against iAdvize's schema (an excerpt with its deprecations, in `schema/`).
//!
//! Architecture invariants:
//! - Must not: put the password or a token in a log line, an error message or `Debug` output.
//! - Must not: panic on any response: a response that is not what the documentation describes is
//!   an [`Error::Malformed`] naming what was wrong (never quoting the body).
//! - Must not: ask for a token per request (the login rate limit would lock the account out).
//! - Must not: wait without bound: retries and `Retry-After` are capped by [`Options`].

#[cfg(feature = "standin")]
pub mod standin;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::Mutex;
use tokio::time::Instant;

/// The largest page iAdvize serves.
pub const MAX_PAGE_SIZE: u32 = 100;

/// iAdvize's two platforms (the GraphQL endpoint differs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Platform {
    Ha,
    Sd,
}

/// Where the token endpoint and the GraphQL API are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoints {
    pub token: url::Url,
    pub graphql: url::Url,
}

impl Endpoints {
    /// `https://api.iadvize.com/oauth2/token` and `/graphql` (`?platform=sd` on SD).
    pub fn production(platform: Platform) -> Endpoints {
        let mut e = Endpoints::under("https://api.iadvize.com")
            .unwrap_or_else(|_| unreachable!("a constant URL parses"));
        if platform == Platform::Sd {
            e.graphql.set_query(Some("platform=sd"));
        }
        e
    }

    /// `<base>/oauth2/token` and `<base>/graphql` (e.g. a stand-in on 127.0.0.1).
    pub fn under(base: &str) -> Result<Endpoints, Error> {
        let base =
            url::Url::parse(base).map_err(|e| Error::Config(format!("bad base URL: {e}")))?;
        let join = |p: &str| {
            base.join(p)
                .map_err(|e| Error::Config(format!("bad base URL: {e}")))
        };
        Ok(Endpoints {
            token: join("/oauth2/token")?,
            graphql: join("/graphql")?,
        })
    }
}

/// An iAdvize user's e-mail and password. `Debug` never shows the password.
#[derive(Clone)]
pub struct Credentials {
    pub username: String,
    password: String,
}

impl Credentials {
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Credentials {
        Credentials {
            username: username.into(),
            password: password.into(),
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Client behaviour.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Conversations per page (capped at [`MAX_PAGE_SIZE`]).
    pub page_size: u32,
    /// A token is renewed this long before its announced expiry.
    pub refresh_margin: Duration,
    /// Retries after a `429` (or `503`) before giving up with [`Error::RateLimited`].
    pub max_retries: u32,
    /// A `Retry-After` longer than this is not waited for: [`Error::RateLimited`] at once.
    pub max_retry_wait: Duration,
    /// Without `Retry-After`: waits `first_retry_wait` doubling (capped by `max_retry_wait`).
    pub first_retry_wait: Duration,
    /// Per HTTP request.
    pub timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            page_size: MAX_PAGE_SIZE,
            refresh_margin: Duration::from_secs(300),
            max_retries: 5,
            max_retry_wait: Duration::from_secs(60),
            first_retry_wait: Duration::from_secs(1),
            timeout: Duration::from_secs(30),
        }
    }
}

/// Closed between `from` and `to` (RFC 3339 date-times, as iAdvize's `DateTime`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interval {
    pub from: String,
    pub to: String,
}

/// One closed conversation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClosedConversation {
    pub conversation_id: String,
    /// The conversation's visitor (iAdvize's cross-channel visitor id): the one the query asked
    /// for, since iAdvize's live fields do not carry it (see [`QUERY`]).
    pub visitor_id: Option<String>,
    pub channel: String,
    pub created_at: String,
    pub closed_at: Option<String>,
    /// The professional (advisor) who took part, when iAdvize reports one.
    pub operator: Option<Operator>,
    /// The visitor's `externalUserId`: the authenticated userId as the platform knows it.
    pub external_user_id: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operator {
    pub id: String,
    pub email: Option<String>,
    pub name: Option<String>,
}

/// What went wrong. Messages never hold the password, a token or a response body.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("iAdvize refused the user name or password")]
    BadCredentials,
    #[error("iAdvize keeps answering 429 (rate limited){}", retry_after.map(|d| format!("; it asks to wait {}s", d.as_secs())).unwrap_or_default())]
    RateLimited { retry_after: Option<Duration> },
    #[error("iAdvize refused a fresh token ({0})")]
    Unauthorized(u16),
    #[error("iAdvize answered HTTP {status} to {what}")]
    Http { status: u16, what: &'static str },
    #[error("cannot reach iAdvize: {0}")]
    Transport(String),
    #[error("iAdvize's {what} answer is not as documented: {detail}")]
    Malformed { what: &'static str, detail: String },
    #[error("the GraphQL API reported errors: {0}")]
    GraphQl(String),
    #[error("{0}")]
    Config(String),
}

struct Token {
    value: String,
    renew_at: Instant,
}

/// The GraphQL client. Cheap to share behind an `Arc`; calls may run concurrently (the token is
/// fetched once for all of them).
pub struct Client {
    http: reqwest::Client,
    endpoints: Endpoints,
    credentials: Credentials,
    options: Options,
    token: Mutex<Option<Token>>,
    token_requests: AtomicU64,
    requests: AtomicU64,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("endpoints", &self.endpoints)
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

/// The backfill's query: one visitor's closed conversations over an interval, one page.
///
/// Only live fields (none that iAdvize deprecated: `Visitor.visitorId`, `legacyVisitorId` and
/// `externalId`, `Conversation.conversationVisitors` and `visitors` were maintained only until
/// 2025-04-07). No live field of `Visitor` carries its id, so the visitor id is not read from the
/// answer but inferred from the filter: the query names exactly one visitor in
/// `conversationVisitorIds`, so every conversation it returns is that visitor's (a conversation
/// has one `visitor`).
pub const QUERY: &str = "query Backfill($from: DateTime!, $to: DateTime!, $visitorId: UUID!, $first: Int, $after: String) {
  closedConversations(filters: {interval: {from: $from, to: $to}, conversationVisitorIds: [$visitorId]}, first: $first, after: $after) {
    pageInfo { hasNextPage endCursor }
    edges { node {
      id channel createdAt closedAt
      visitor { externalUserId }
      users { __typename ... on Professional { id email firstName lastName } }
    } }
  }
}";

impl Client {
    pub fn new(
        endpoints: Endpoints,
        credentials: Credentials,
        options: Options,
    ) -> Result<Client, Error> {
        // reqwest is built without a default crypto provider (see Cargo.toml): install ring.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(options.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Client {
            http,
            endpoints,
            credentials,
            options,
            token: Mutex::new(None),
            token_requests: AtomicU64::new(0),
            requests: AtomicU64::new(0),
        })
    }

    /// Token requests made so far (each is a login against the 10/min/user limit).
    pub fn token_requests(&self) -> u64 {
        self.token_requests.load(Ordering::Relaxed)
    }

    /// GraphQL requests made so far (pages, retries included).
    pub fn graphql_requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Every conversation of these visitors closed within `interval`, all pages: one query per
    /// visitor (see [`QUERY`]: the visitor id of each conversation is the one asked for).
    pub async fn closed_conversations(
        &self,
        visitor_ids: &[String],
        interval: &Interval,
    ) -> Result<Vec<ClosedConversation>, Error> {
        let mut out = Vec::new();
        for visitor_id in visitor_ids {
            self.closed_conversations_of(visitor_id, interval, &mut out)
                .await?;
        }
        Ok(out)
    }

    /// One visitor's closed conversations within `interval`, all pages, appended to `out`.
    async fn closed_conversations_of(
        &self,
        visitor_id: &str,
        interval: &Interval,
        out: &mut Vec<ClosedConversation>,
    ) -> Result<(), Error> {
        let mut after: Option<String> = None;
        loop {
            let variables = json!({
                "from": interval.from,
                "to": interval.to,
                "visitorId": visitor_id,
                "first": self.options.page_size.clamp(1, MAX_PAGE_SIZE),
                "after": after,
            });
            let data = self.graphql(QUERY, variables).await?;
            let page: Page = serde_json::from_value(
                data.get("closedConversations")
                    .cloned()
                    .unwrap_or(Value::Null),
            )
            .map_err(|e| malformed("closedConversations", &e))?;
            for edge in page.edges {
                out.push(edge.node.into_conversation(visitor_id));
            }
            match (page.page_info.has_next_page, page.page_info.end_cursor) {
                (true, Some(cursor)) if after.as_deref() != Some(cursor.as_str()) => {
                    after = Some(cursor)
                }
                (true, _) => {
                    return Err(Error::Malformed {
                        what: "closedConversations",
                        detail: "hasNextPage without a new endCursor".into(),
                    })
                }
                (false, _) => return Ok(()),
            }
        }
    }

    /// One GraphQL request with a valid token; renews the token once if the API rejects it.
    async fn graphql(&self, query: &str, variables: Value) -> Result<Value, Error> {
        let body = json!({"query": query, "variables": variables});
        let mut renewed = false;
        loop {
            let token = self.token().await?;
            let response = self
                .send_with_retries("GraphQL", || {
                    self.requests.fetch_add(1, Ordering::Relaxed);
                    self.http
                        .post(self.endpoints.graphql.clone())
                        .bearer_auth(&token)
                        .json(&body)
                })
                .await?;
            let status = response.status().as_u16();
            if status == 401 {
                self.forget_token(&token).await;
                if renewed {
                    return Err(Error::Unauthorized(status));
                }
                renewed = true;
                continue;
            }
            if !(200..300).contains(&status) {
                return Err(Error::Http {
                    status,
                    what: "a GraphQL request",
                });
            }
            let answer: GraphQlAnswer = read_json(response, "GraphQL").await?;
            if let Some(errors) = answer.errors.filter(|e| !e.is_empty()) {
                let messages: Vec<String> = errors
                    .iter()
                    .map(|e| e.message.chars().take(200).collect())
                    .collect();
                return Err(Error::GraphQl(messages.join("; ")));
            }
            return answer.data.ok_or(Error::Malformed {
                what: "GraphQL",
                detail: "neither data nor errors".into(),
            });
        }
    }

    /// The cached token, or a new one if there is none or it is about to expire.
    async fn token(&self) -> Result<String, Error> {
        let mut slot = self.token.lock().await;
        if let Some(t) = slot.as_ref() {
            if Instant::now() < t.renew_at {
                return Ok(t.value.clone());
            }
        }
        self.token_requests.fetch_add(1, Ordering::Relaxed);
        let form = [
            ("username", self.credentials.username.as_str()),
            ("password", self.credentials.password.as_str()),
            ("grant_type", "password"),
        ];
        let response = self
            .send_with_retries("token", || {
                self.http.post(self.endpoints.token.clone()).form(&form)
            })
            .await?;
        let status = response.status().as_u16();
        if status == 400 || status == 401 || status == 403 {
            return Err(Error::BadCredentials);
        }
        if !(200..300).contains(&status) {
            return Err(Error::Http {
                status,
                what: "the token request",
            });
        }
        let answer: TokenAnswer = read_json(response, "token").await?;
        if answer.access_token.is_empty() {
            return Err(Error::Malformed {
                what: "token",
                detail: "empty access_token".into(),
            });
        }
        if !answer.token_type.eq_ignore_ascii_case("bearer") {
            return Err(Error::Malformed {
                what: "token",
                detail: "token_type is not Bearer".into(),
            });
        }
        let lifetime = Duration::from_secs(answer.expires_in);
        let renew_at = Instant::now() + lifetime.saturating_sub(self.options.refresh_margin);
        tracing::debug!(expires_in = answer.expires_in, "new iAdvize API token");
        *slot = Some(Token {
            value: answer.access_token.clone(),
            renew_at,
        });
        Ok(answer.access_token)
    }

    async fn forget_token(&self, rejected: &str) {
        let mut slot = self.token.lock().await;
        if slot.as_ref().is_some_and(|t| t.value == rejected) {
            *slot = None;
        }
    }

    /// Sends, retrying on 429/503 (bounded); other statuses go back to the caller.
    async fn send_with_retries(
        &self,
        what: &'static str,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, Error> {
        let mut attempt = 0u32;
        loop {
            let response = build()
                .send()
                .await
                .map_err(|e| Error::Transport(describe_reqwest(&e)))?;
            let status = response.status().as_u16();
            if status != 429 && status != 503 {
                return Ok(response);
            }
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            if attempt >= self.options.max_retries {
                return Err(Error::RateLimited { retry_after });
            }
            let wait = match retry_after {
                Some(d) if d > self.options.max_retry_wait => {
                    return Err(Error::RateLimited { retry_after })
                }
                Some(d) => d,
                None => self
                    .options
                    .first_retry_wait
                    .checked_mul(1u32.checked_shl(attempt.min(16)).unwrap_or(u32::MAX))
                    .unwrap_or(self.options.max_retry_wait)
                    .min(self.options.max_retry_wait),
            };
            tracing::info!(
                what,
                status,
                ?wait,
                attempt,
                "iAdvize asks us to slow down; retrying"
            );
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }
}

/// A reqwest error without its URL (the URL is ours, but keep messages about the cause).
fn describe_reqwest(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_decode() {
        "not the documented JSON"
    } else if e.is_body() {
        "the body broke off"
    } else {
        "request failed"
    };
    match std::error::Error::source(e) {
        Some(source) => format!("{kind}: {source}"),
        None => kind.to_string(),
    }
}

fn malformed(what: &'static str, e: &serde_json::Error) -> Error {
    Error::Malformed {
        what,
        detail: describe_json(e),
    }
}

/// A JSON error without any excerpt of the input (a token answer holds a token): serde's
/// "missing field `x`" kind of message is kept (it names a field, not a value), others are
/// reduced to their category and position.
fn describe_json(e: &serde_json::Error) -> String {
    let message = e.to_string();
    if message.starts_with("missing field") || message.starts_with("duplicate field") {
        return message;
    }
    lockdesk_text::json::describe_error(e)
}

async fn read_json<T: serde::de::DeserializeOwned>(
    response: reqwest::Response,
    what: &'static str,
) -> Result<T, Error> {
    let bytes = response
        .bytes()
        .await
        .map_err(|e| Error::Transport(describe_reqwest(&e)))?;
    serde_json::from_slice(&bytes).map_err(|e| malformed(what, &e))
}

#[derive(Deserialize)]
struct TokenAnswer {
    #[serde(default)]
    access_token: String,
    expires_in: u64,
    #[serde(default)]
    token_type: String,
}

#[derive(Deserialize)]
struct GraphQlAnswer {
    data: Option<Value>,
    errors: Option<Vec<GraphQlError>>,
}

#[derive(Deserialize)]
struct GraphQlError {
    #[serde(default)]
    message: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Page {
    page_info: PageInfo,
    edges: Vec<Edge>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PageInfo {
    has_next_page: bool,
    end_cursor: Option<String>,
}

#[derive(Deserialize)]
struct Edge {
    node: Node,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Node {
    id: String,
    channel: String,
    created_at: String,
    closed_at: Option<String>,
    visitor: Option<VisitorNode>,
    #[serde(default)]
    users: Option<Vec<UserNode>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct VisitorNode {
    external_user_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserNode {
    #[serde(rename = "__typename", default)]
    typename: Option<String>,
    id: Option<Value>,
    email: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
}

impl Node {
    /// `visitor_id`: the one visitor the query asked for (see [`QUERY`]).
    fn into_conversation(self, visitor_id: &str) -> ClosedConversation {
        let operator = self
            .users
            .unwrap_or_default()
            .into_iter()
            .filter(|u| u.typename.as_deref().is_none_or(|t| t == "Professional"))
            .find_map(|u| {
                let id = match u.id? {
                    Value::String(s) => s,
                    Value::Number(n) => n.to_string(),
                    _ => return None,
                };
                let name = match (u.first_name, u.last_name) {
                    (Some(f), Some(l)) => Some(format!("{f} {l}")),
                    (f, l) => f.or(l),
                };
                Some(Operator {
                    id,
                    email: u.email,
                    name,
                })
            });
        ClosedConversation {
            conversation_id: self.id,
            visitor_id: Some(visitor_id.to_owned()),
            channel: self.channel,
            created_at: self.created_at,
            closed_at: self.closed_at,
            operator,
            external_user_id: self.visitor.and_then(|v| v.external_user_id),
        }
    }
}
