//! The closed-conversation backfill: when the feed shows a userId verified on a visitor (a change
//! to `secured` with a userId) or a conversation of a verified userId closing, and iAdvize's API
//! is configured, the service asks iAdvize's GraphQL API (`closedConversations`, through
//! [`lockdesk_iadvize::Client`]) for every conversation closed over the last [`BackfillConfig::
//! lookback`] on every visitor linked to that userId (the reader's [`DeskReader::history`]), and
//! records the answer with the writer's [`lockdesk_desk::Desk::backfill`] on a blocking thread;
//! its changes go out on the service's broadcast like the feed's.
//!
//! ```text
//!  DeskSink::apply ── userIds of secured/closed changes ──▶ Triggers (set + Notify)
//!                                                              │
//!   backfill task: per userId debounce, ≤ 1 request in flight ─┘
//!     ├─ DeskReader: history(userId).visitors               (spawn_blocking)
//!     ├─ Client::closed_conversations(visitors, interval)    (async, one query per visitor,
//!     │                                                        paginated, 429-aware)
//!     └─ writer Desk: backfill(records) ──▶ broadcast       (spawn_blocking)
//! ```
//!
//! Architecture invariants:
//! - at most one backfill per userId per [`BackfillConfig::every`], and never two in flight for
//!   one userId; a trigger that arrives inside the window is kept and served when it ends (the
//!   conversation that just closed is then asked for);
//! - a failure (network, rate limit, bad credentials, store) is logged, counted in
//!   [`BackfillStatus`], and the userId is retried later; after a failure no backfill starts for
//!   anyone until a backoff ends (doubling up to [`BackfillConfig::max_retry`]), so a wrong
//!   password cannot become a burst of logins against iAdvize's 10/min limit;
//! - the backfill's own changes never trigger a backfill (only the feed's do);
//! - only the writer `Desk` writes, on a blocking thread, and its changes are published after
//!   the commit.
//!
//! Must not: log the password or a token (errors are [`lockdesk_iadvize::Error`]'s messages,
//! which hold neither); panic on anything iAdvize answers; block the async executor on SQLite.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use lockdesk_desk::{AuthStateName, Change, ClosedConversation, DeskReader};
use lockdesk_iadvize::{Client, Credentials, Endpoints, Interval};
use lockdesk_text::time;
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::Writer;

/// 90 days: how far back a backfill asks (iAdvize requires an interval).
pub const DEFAULT_LOOKBACK: Duration = Duration::from_secs(90 * 86_400);

/// How the service backfills. `Debug` never shows the password ([`Credentials`] redacts it).
#[derive(Clone, Debug)]
pub struct BackfillConfig {
    pub endpoints: Endpoints,
    pub credentials: Credentials,
    /// Page size, retries on `429`, timeouts of the GraphQL client.
    pub client: lockdesk_iadvize::Options,
    /// Conversations closed this long ago or less are asked for.
    pub lookback: Duration,
    /// At most one backfill per userId this often.
    pub every: Duration,
    /// After a failure: the first wait before any backfill starts again (doubling).
    pub first_retry: Duration,
    /// The longest wait after repeated failures.
    pub max_retry: Duration,
    /// Backfills running at once (different userIds).
    pub max_in_flight: usize,
}

impl BackfillConfig {
    /// Defaults: 90 days back, one backfill per userId per 10 minutes, retries from 1 minute
    /// up to 30 minutes, 4 at once.
    pub fn new(endpoints: Endpoints, credentials: Credentials) -> BackfillConfig {
        BackfillConfig {
            endpoints,
            credentials,
            client: lockdesk_iadvize::Options::default(),
            lookback: DEFAULT_LOOKBACK,
            every: Duration::from_secs(600),
            first_retry: Duration::from_secs(60),
            max_retry: Duration::from_secs(1800),
            max_in_flight: 4,
        }
    }

    /// From the configuration's `[iadvize]` section: `Ok(None)` when it is not configured (no
    /// user name or password); an error names the field that is wrong.
    pub fn from_config(
        api: &lockdesk_config::IAdvizeApi,
    ) -> Result<Option<BackfillConfig>, String> {
        let username = api.username.as_deref().map(str::trim).unwrap_or("");
        let password = api.password.as_deref().unwrap_or("");
        if username.is_empty() || password.is_empty() {
            return Ok(None);
        }
        let platform = match api.platform.as_deref().unwrap_or("ha") {
            "ha" => lockdesk_iadvize::Platform::Ha,
            "sd" => lockdesk_iadvize::Platform::Sd,
            _ => return Err("iadvize.platform: expected ha or sd".into()),
        };
        let endpoints = match api.base_url.as_deref().map(str::trim) {
            None | Some("") => Endpoints::production(platform),
            Some(base) => {
                let mut e = Endpoints::under(base).map_err(|e| format!("iadvize.base_url: {e}"))?;
                if platform == lockdesk_iadvize::Platform::Sd {
                    e.graphql.set_query(Some("platform=sd"));
                }
                e
            }
        };
        Ok(Some(BackfillConfig::new(
            endpoints,
            Credentials::new(username, password),
        )))
    }
}

/// What the backfill has done so far (for status displays and tests).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BackfillStatus {
    /// Backfills started.
    pub started: u64,
    /// Backfills that completed (the answer is in the store).
    pub completed: u64,
    /// Backfills that failed (retried later).
    pub failed: u64,
    /// Closed conversations received from iAdvize and recorded.
    pub conversations: u64,
    /// Records iAdvize sent that could not be used (no visitor, no closing date, bad date).
    pub unusable: u64,
    /// Changes the backfills produced (published on the service's broadcast).
    pub changes: u64,
    /// The last failure's message (never holds the password or a token).
    pub last_error: Option<String>,
}

/// The userIds the feed asked to backfill, coalesced until the task takes them.
#[derive(Default)]
pub(crate) struct Triggers {
    pending: Mutex<HashSet<String>>,
    notify: Notify,
}

impl Triggers {
    /// Notes the userIds of `changes` that ask for a backfill: a visitor now secured by a valid
    /// token, or a conversation with a verified userId that closed.
    pub(crate) fn note(&self, changes: &[Change]) {
        let mut added = false;
        {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            for c in changes {
                let wanted = matches!(
                    c.state,
                    Some(AuthStateName::Secured | AuthStateName::Closed)
                );
                if let (true, Some(user)) = (wanted, c.user_id.as_ref()) {
                    added |= pending.insert(user.clone());
                }
            }
        }
        if added {
            self.notify.notify_one();
        }
    }

    fn take(&self) -> HashSet<String> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// What the task knows about one userId.
#[derive(Default)]
struct UserState {
    /// A trigger is waiting to be served.
    wanted: bool,
    in_flight: bool,
    /// No backfill for this userId before then.
    not_before: Option<Instant>,
}

/// One backfill's result.
struct Outcome {
    conversations: u64,
    unusable: u64,
    changes: u64,
}

struct Failure {
    message: String,
    /// iAdvize asked to wait this long (a `429` with `Retry-After` beyond the client's cap).
    wait: Option<Duration>,
}

impl From<lockdesk_iadvize::Error> for Failure {
    fn from(e: lockdesk_iadvize::Error) -> Failure {
        let wait = match &e {
            lockdesk_iadvize::Error::RateLimited { retry_after } => *retry_after,
            _ => None,
        };
        Failure {
            message: e.to_string(),
            wait,
        }
    }
}

fn failure(message: impl Into<String>) -> Failure {
    Failure {
        message: message.into(),
        wait: None,
    }
}

/// Starts the backfill task. Fails only if the HTTP client cannot be built.
pub(crate) fn spawn(
    config: BackfillConfig,
    writer: Arc<Writer>,
    reader: Arc<Mutex<DeskReader>>,
    triggers: Arc<Triggers>,
    status: watch::Sender<BackfillStatus>,
) -> Result<tokio::task::JoinHandle<()>, lockdesk_iadvize::Error> {
    let client = Arc::new(Client::new(
        config.endpoints.clone(),
        config.credentials.clone(),
        config.client,
    )?);
    let config = Arc::new(config);
    Ok(tokio::spawn(run(
        config, client, writer, reader, triggers, status,
    )))
}

async fn run(
    config: Arc<BackfillConfig>,
    client: Arc<Client>,
    writer: Arc<Writer>,
    reader: Arc<Mutex<DeskReader>>,
    triggers: Arc<Triggers>,
    status: watch::Sender<BackfillStatus>,
) {
    let mut users: HashMap<String, UserState> = HashMap::new();
    let mut jobs: JoinSet<Result<Outcome, Failure>> = JoinSet::new();
    let mut job_users: HashMap<tokio::task::Id, (String, Instant)> = HashMap::new();
    let mut paused_until: Option<Instant> = None;
    let mut backoff = config.first_retry;
    let max_in_flight = config.max_in_flight.max(1);
    loop {
        for user in triggers.take() {
            users.entry(user).or_default().wanted = true;
        }
        let now = Instant::now();
        if paused_until.is_none_or(|p| now >= p) {
            paused_until = None;
            for (user, state) in users.iter_mut() {
                if jobs.len() >= max_in_flight {
                    break;
                }
                if state.wanted && !state.in_flight && state.not_before.is_none_or(|t| now >= t) {
                    state.wanted = false;
                    state.in_flight = true;
                    let handle = jobs.spawn(backfill_one(
                        user.clone(),
                        config.clone(),
                        client.clone(),
                        writer.clone(),
                        reader.clone(),
                    ));
                    job_users.insert(handle.id(), (user.clone(), now));
                    status.send_modify(|s| s.started += 1);
                }
            }
        }
        // Forget userIds with nothing to do whose window has passed (the map stays small).
        users.retain(|_, s| s.wanted || s.in_flight || s.not_before.is_some_and(|t| t > now));
        let next_due = users
            .values()
            .filter(|s| s.wanted && !s.in_flight)
            .map(|s| s.not_before.unwrap_or(now))
            .min()
            .map(|t| paused_until.map_or(t, |p| t.max(p)));
        tokio::select! {
            _ = triggers.notify.notified() => {}
            Some(done) = jobs.join_next_with_id(), if !jobs.is_empty() => {
                let (id, result) = match done {
                    Ok((id, r)) => (id, r),
                    Err(e) => (e.id(), Err(failure(format!("the backfill task failed: {e}")))),
                };
                let Some((user, started)) = job_users.remove(&id) else { continue };
                let state = users.entry(user.clone()).or_default();
                state.in_flight = false;
                match result {
                    Ok(o) => {
                        backoff = config.first_retry;
                        state.not_before = Some(started + config.every);
                        tracing::info!(
                            conversations = o.conversations,
                            changes = o.changes,
                            "iAdvize backfill recorded"
                        );
                        status.send_modify(|s| {
                            s.completed += 1;
                            s.conversations += o.conversations;
                            s.unusable += o.unusable;
                            s.changes += o.changes;
                        });
                    }
                    Err(f) => {
                        let wait = f.wait.unwrap_or(backoff).max(backoff).min(config.max_retry.max(backoff));
                        backoff = (backoff * 2).min(config.max_retry);
                        let until = Instant::now() + wait;
                        paused_until = Some(until);
                        state.wanted = true;
                        state.not_before = Some(until);
                        // The userId and iAdvize's answer are text from outside.
                        tracing::warn!(
                            user_id = %lockdesk_text::Shown(&user),
                            retry_in = ?wait,
                            "iAdvize backfill failed (will retry): {}",
                            lockdesk_text::Shown(&f.message)
                        );
                        status.send_modify(|s| {
                            s.failed += 1;
                            s.last_error = Some(f.message);
                        });
                    }
                }
            }
            _ = sleep_until_opt(next_due), if next_due.is_some() => {}
        }
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at).await;
    }
}

/// One userId: its visitors, their closed conversations, recorded by the writer.
async fn backfill_one(
    user: String,
    config: Arc<BackfillConfig>,
    client: Arc<Client>,
    writer: Arc<Writer>,
    reader: Arc<Mutex<DeskReader>>,
) -> Result<Outcome, Failure> {
    let who = user.clone();
    let history = tokio::task::spawn_blocking(move || {
        let desk = reader.lock().unwrap_or_else(|p| p.into_inner());
        desk.history(&who)
    })
    .await
    .map_err(|e| failure(format!("the history query failed: {e}")))?
    .map_err(|e| failure(format!("cannot read the userId's visitors: {e}")))?;
    let visitors: Vec<String> = history.visitors.into_iter().map(|v| v.visitor_id).collect();
    if visitors.is_empty() {
        return Ok(Outcome {
            conversations: 0,
            unusable: 0,
            changes: 0,
        });
    }
    let interval = interval_ending(SystemTime::now(), config.lookback);
    let mut records = Vec::new();
    let mut unusable = 0u64;
    // One query per visitor: iAdvize's live fields do not carry a conversation's visitor id, so
    // the client takes it from the query's one-visitor filter (see lockdesk_iadvize::QUERY).
    for c in client.closed_conversations(&visitors, &interval).await? {
        match to_desk(&c) {
            Ok(r) => records.push(r),
            Err(why) => {
                unusable += 1;
                tracing::warn!(
                    conversation_id = %lockdesk_text::Shown(&c.conversation_id),
                    "iAdvize backfill: a closed conversation cannot be used: {}",
                    lockdesk_text::Shown(&why)
                );
            }
        }
    }
    let conversations = records.len() as u64;
    if records.is_empty() {
        return Ok(Outcome {
            conversations,
            unusable,
            changes: 0,
        });
    }
    let changes = tokio::task::spawn_blocking(move || {
        let changes = writer.lock().backfill(&records, crate::now_ms())?;
        let n = changes.len() as u64;
        writer.publish(changes);
        Ok::<_, lockdesk_desk::DeskError>(n)
    })
    .await
    .map_err(|e| failure(format!("the backfill's store task failed: {e}")))?
    .map_err(|e| failure(format!("cannot record the backfill: {e}")))?;
    Ok(Outcome {
        conversations,
        unusable,
        changes,
    })
}

/// `[now − lookback, now]` as iAdvize's `DateTime`s (RFC 3339, UTC, seconds).
pub fn interval_ending(now: SystemTime, lookback: Duration) -> Interval {
    let from = now.checked_sub(lookback).unwrap_or(SystemTime::UNIX_EPOCH);
    // iAdvize's `DateTime` (`2026-01-10T09:00:00Z`).
    let iso = |t| time::format_secs(time::ms_since_epoch(t));
    Interval {
        from: iso(from),
        to: iso(now),
    }
}

/// The client's record as the desk core takes it.
fn to_desk(c: &lockdesk_iadvize::ClosedConversation) -> Result<ClosedConversation, String> {
    let visitor_id = c
        .visitor_id
        .clone()
        .filter(|v| !v.is_empty())
        .ok_or("no visitor")?;
    let closed = c.closed_at.as_deref().ok_or("no closedAt")?;
    // iAdvize's `DateTime`: RFC 3339 with an offset, within the years 1970 to 9999.
    let closed_at_ms = time::parse_ms(closed).map_err(|e| format!("closedAt: {e}"))?;
    let created_at_ms = time::parse_ms(&c.created_at).map_err(|e| format!("createdAt: {e}"))?;
    if c.conversation_id.is_empty() {
        return Err("empty id".into());
    }
    Ok(ClosedConversation {
        conversation_id: c.conversation_id.clone(),
        visitor_id,
        channel: c.channel.clone(),
        created_at_ms: created_at_ms.min(closed_at_ms),
        closed_at_ms,
        external_user_id: c.external_user_id.clone().filter(|u| !u.is_empty()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(created: &str, closed: Option<&str>) -> lockdesk_iadvize::ClosedConversation {
        lockdesk_iadvize::ClosedConversation {
            conversation_id: "c1".into(),
            visitor_id: Some("v1".into()),
            channel: "CHAT".into(),
            created_at: created.into(),
            closed_at: closed.map(str::to_owned),
            operator: None,
            external_user_id: Some("u1".into()),
        }
    }

    #[test]
    fn dates_are_read_with_or_without_fractions_and_offsets() {
        let r = to_desk(&record(
            "2026-01-10T09:00:00.250Z",
            Some("2026-01-10T09:30:00+00:00"),
        ))
        .unwrap();
        assert_eq!(r.created_at_ms, 1_768_035_600_250);
        assert_eq!(r.closed_at_ms, 1_768_037_400_000);
        assert_eq!(r.external_user_id.as_deref(), Some("u1"));
    }

    #[test]
    fn unusable_records_say_why() {
        let e = to_desk(&record("2026-01-10T09:00:00Z", None)).unwrap_err();
        assert_eq!(e, "no closedAt");
        let e = to_desk(&record("yesterday", Some("2026-01-10T09:00:00Z"))).unwrap_err();
        assert!(e.starts_with("createdAt: not an RFC 3339"), "{e}");
        // Out of range from the wire: an unusable record, not a panic or a wrapped time.
        let e = to_desk(&record(
            "1969-12-31T23:59:59Z",
            Some("2026-01-10T09:00:00Z"),
        ))
        .unwrap_err();
        assert_eq!(e, "createdAt: outside the years 1970 to 9999");
        let e = to_desk(&record(
            "2026-01-10T09:00:00Z",
            Some("9999-12-31T23:00:00-02:00"),
        ))
        .unwrap_err();
        assert_eq!(e, "closedAt: outside the years 1970 to 9999");
        let mut r = record("2026-01-10T09:00:00Z", Some("2026-01-10T09:00:00Z"));
        r.visitor_id = None;
        assert_eq!(to_desk(&r).unwrap_err(), "no visitor");
    }

    #[test]
    fn the_interval_ends_now_and_starts_lookback_before() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_768_035_600);
        let i = interval_ending(now, Duration::from_secs(86_400));
        assert_eq!(i.from, "2026-01-09T09:00:00Z");
        assert_eq!(i.to, "2026-01-10T09:00:00Z");
    }

    #[test]
    fn config_without_credentials_is_not_configured_and_sd_sets_the_platform() {
        let mut api = lockdesk_config::IAdvizeApi::default();
        assert!(BackfillConfig::from_config(&api).unwrap().is_none());
        api.username = Some("api@brand.example".into());
        api.password = Some("s3cret-pass".into());
        api.platform = Some("sd".into());
        let c = BackfillConfig::from_config(&api).unwrap().unwrap();
        assert_eq!(
            c.endpoints.graphql.as_str(),
            "https://api.iadvize.com/graphql?platform=sd"
        );
        assert!(!format!("{c:?}").contains("s3cret-pass"));
        api.platform = Some("xx".into());
        assert!(BackfillConfig::from_config(&api).is_err());
    }

    #[test]
    fn only_secured_and_closed_changes_with_a_user_trigger() {
        let t = Triggers::default();
        let change = |state: AuthStateName, user: Option<&str>| Change {
            seq: 1,
            at_ms: 0,
            conversation_id: Some("c".into()),
            visitor_id: "v".into(),
            channel: Some("CHAT".into()),
            state: Some(state),
            user_id: user.map(str::to_owned),
            reason: None,
            alert: None,
            alert_id: None,
        };
        t.note(&[
            change(AuthStateName::Secured, Some("a")),
            change(AuthStateName::Closed, Some("b")),
            change(AuthStateName::Failed, Some("c")),
            change(AuthStateName::Anonymous, None),
            change(AuthStateName::Closed, None),
        ]);
        let mut got: Vec<_> = t.take().into_iter().collect();
        got.sort();
        assert_eq!(got, ["a", "b"]);
        assert!(t.take().is_empty());
    }
}
