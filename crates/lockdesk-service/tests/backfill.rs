//! The service's iAdvize backfill end to end, over real sockets and a real SQLite store: a real
//! gateway on 127.0.0.1:0 fed by the simulator (signed webhooks, real tokens), a `DeskService`
//! subscribed to it, and the iAdvize API stand-in on 127.0.0.1:0 playing iAdvize's GraphQL API.

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use lockdesk_desk::{
    AlertKind, AuthStateName, Change, DeskConfig, History, HistoryConversation, ReasonCode,
};
use lockdesk_feed_client::Credential;
use lockdesk_iadvize::standin::{Conversation, Dataset, StandIn};
use lockdesk_iadvize::Credentials;
use lockdesk_service::backfill::{BackfillConfig, BackfillStatus};

/// iAdvize's `DateTime` for `t`.
fn rfc3339(t: SystemTime) -> String {
    lockdesk_text::time::format_secs(lockdesk_text::time::ms_since_epoch(t))
}
use lockdesk_service::{DeskService, Options, ServiceEvent};
use lockdesk_sim::{plan, Action, Scenario, SimKeys, Step, Target};
use tokio::sync::broadcast;

use crate::support;

const API_USER: &str = "backfill@brand.example";
const API_PASSWORD: &str = "correct horse battery staple 42";
const DAY: Duration = Duration::from_secs(86_400);
/// A guard against a hung test, never a measure: every wait below ends on an event.
const PATIENCE: Duration = Duration::from_secs(60);

/// Log lines of every test in this binary (the backfill logs from the runtime's threads).
fn logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = buf.clone();
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || LogWriter(writer.clone()))
            .try_init();
        buf
    })
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn log_text() -> String {
    String::from_utf8_lossy(&logs().lock().unwrap()).into_owned()
}

/// Gateway + simulator + desk service + iAdvize stand-in.
struct Rig {
    _dir: tempfile::TempDir,
    gateway: Option<lockdesk_gateway::Gateway>,
    sender: Arc<Mutex<lockdesk_sim::Sender>>,
    service: DeskService,
    events: broadcast::Receiver<ServiceEvent>,
    standin: StandIn,
}

impl Rig {
    async fn start(
        dataset: Dataset,
        password: &str,
        tune: impl FnOnce(&mut BackfillConfig),
    ) -> Rig {
        logs();
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        std::fs::create_dir_all(&keys).unwrap();
        let (desk_private, desk_public) = support::desk_keys(&keys);
        let desk_public = lockdesk_sim::read_desk_public(&desk_public).unwrap();
        let sim_keys = SimKeys::generate(&desk_public).unwrap();
        let brand_jwks = keys.join("brand.jwks.json");
        std::fs::write(&brand_jwks, &sim_keys.brand_public_jwks).unwrap();

        let toml = "[[webhook]]\nname = \"app\"\nsecret = \"webhook-secret-for-tests\"\n\n\
                    [[provider]]\nname = \"provider\"\ncredential = \"provider-credential-1234\"\n\n\
                    [[subscriber]]\nname = \"supervisor\"\ncredential = \"supervisor-credential-1234\"\nrole = \"supervisor\"\n";
        let config = lockdesk_gateway::GatewayConfig::from_toml(toml).unwrap();
        let gateway_dir = dir.path().join("gateway");
        std::fs::create_dir_all(&gateway_dir).unwrap();
        let gateway = lockdesk_gateway::start(config, &gateway_dir, "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let target = Target {
            gateway: format!("http://{}", gateway.local_addr()),
            webhook_secret: b"webhook-secret-for-tests".to_vec(),
            provider_token: "provider-credential-1234".into(),
        };
        let sender =
            tokio::task::spawn_blocking(move || lockdesk_sim::Sender::new(target, sim_keys))
                .await
                .unwrap()
                .unwrap();

        let standin = StandIn::start(dataset, DAY, "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let mut backfill =
            BackfillConfig::new(standin.endpoints(), Credentials::new(API_USER, password));
        backfill.first_retry = Duration::from_millis(200);
        backfill.max_retry = Duration::from_millis(400);
        backfill.client.first_retry_wait = Duration::from_millis(10);
        backfill.client.max_retry_wait = Duration::from_secs(1);
        tune(&mut backfill);

        let mut setup = lockdesk_keys::Setup::default();
        setup.trust.push((
            lockdesk_sim::plan::ISSUER.to_owned(),
            lockdesk_keys::Source::parse(&brand_jwks.display().to_string()),
        ));
        setup.decryption.push(desk_private);
        let options = Options {
            data_dir: dir.path().join("desk"),
            feed_urls: vec![format!(
                "ws://{}{}",
                gateway.local_addr(),
                lockdesk_feed::FEED_PATH
            )],
            credential: Credential::new("supervisor-credential-1234".to_owned()),
            ca_file: None,
            keys: setup,
            desk: DeskConfig::default(),
            tick_every: Duration::from_secs(1),
            demo: false,
            backfill: Some(backfill),
        };
        let service = DeskService::start(options).await.unwrap();
        let events = service.events();
        Rig {
            _dir: dir,
            gateway: Some(gateway),
            sender: Arc::new(Mutex::new(sender)),
            service,
            events,
            standin,
        }
    }

    /// Sends the steps now, in order (their own timeline is not waited for).
    async fn send(&self, steps: Vec<Step>) {
        let sender = self.sender.clone();
        tokio::task::spawn_blocking(move || {
            let mut s = sender.lock().unwrap();
            for step in &steps {
                s.send(step).unwrap();
            }
        })
        .await
        .unwrap();
    }

    /// Committed changes until `done` says so (all of them, in order).
    async fn changes_until(&mut self, mut done: impl FnMut(&[Change]) -> bool) -> Vec<Change> {
        let mut seen = Vec::new();
        tokio::time::timeout(PATIENCE, async {
            loop {
                match self.events.recv().await {
                    Ok(ServiceEvent::Changes(c)) => {
                        seen.extend(c.iter().cloned());
                        if done(&seen) {
                            return;
                        }
                    }
                    Ok(ServiceEvent::Skipped(s)) => panic!("entries skipped: {s:?}"),
                    Err(broadcast::error::RecvError::Lagged(n)) => panic!("lagged {n}"),
                    Err(e) => panic!("events ended: {e}"),
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("timed out; changes so far: {seen:#?}"));
        seen
    }

    async fn status_until(&self, f: impl Fn(&BackfillStatus) -> bool) -> BackfillStatus {
        let mut rx = self.service.backfill_status().expect("backfill configured");
        let watched = rx.clone();
        let done = tokio::time::timeout(PATIENCE, async move {
            rx.wait_for(|s| f(s)).await.map(|s| s.clone())
        })
        .await;
        match done {
            Ok(s) => s.unwrap(),
            Err(_) => panic!("timed out; status {:?}", *watched.borrow()),
        }
    }

    async fn history(&self, user: &str) -> History {
        let user = user.to_owned();
        // The reader is blocking (SQLite): a scoped blocking section.
        tokio::task::block_in_place(|| self.service.read(|d| d.history(&user).unwrap()))
    }

    async fn stop(mut self) {
        self.service.shutdown().await;
        if let Some(g) = self.gateway.take() {
            g.shutdown().await.unwrap();
        }
    }
}

/// One scenario's plan (seeded), with its person's userId and the visitor ids of their valid
/// tokens, in order.
struct Person {
    steps: Vec<Step>,
    user_id: String,
    visitors: Vec<String>,
    /// The conversations pushed, by visitor id.
    conversations: Vec<(String, String)>,
}

fn person(scenario: Scenario, seed: u64) -> Person {
    let steps = plan(seed, &[scenario], &[1001], 0);
    let mut user_id = None;
    let mut visitors = Vec::new();
    let mut conversations = Vec::new();
    for s in &steps {
        match &s.action {
            Action::Evidence(e) => {
                user_id.get_or_insert_with(|| e.token.user_id.clone());
                if !visitors.contains(&e.visitor_id) {
                    visitors.push(e.visitor_id.clone());
                }
            }
            Action::Webhook { body, .. } => {
                if body.get("eventType").and_then(|v| v.as_str()) == Some("v2.conversation.pushed")
                {
                    let text = |k: &str| body.get(k).and_then(|v| v.as_str()).unwrap().to_owned();
                    conversations.push((text("visitorId"), text("conversationId")));
                }
            }
        }
    }
    Person {
        steps,
        user_id: user_id.unwrap(),
        visitors,
        conversations,
    }
}

/// Everything but the closes (so conversations are still open when the backfill runs).
fn without_closes(steps: &[Step]) -> Vec<Step> {
    steps
        .iter()
        .filter(|s| match &s.action {
            Action::Webhook { body, .. } => {
                body.get("eventType").and_then(|v| v.as_str()) != Some("v2.conversation.closed")
            }
            _ => true,
        })
        .cloned()
        .collect()
}

fn closed_days_ago(id: &str, visitor: &str, days: u64, external: Option<&str>) -> Conversation {
    let closed = SystemTime::now() - DAY * days as u32;
    Conversation {
        id: id.to_owned(),
        visitor_id: visitor.to_owned(),
        external_user_id: external.map(str::to_owned),
        channel: "CHAT".into(),
        created_at: rfc3339(closed - Duration::from_secs(600)),
        closed_at: rfc3339(closed),
        operator_id: Some(1001),
        operator_email: Some("advisor@brand.example".into()),
    }
}

fn dataset(conversations: Vec<Conversation>) -> Dataset {
    Dataset {
        users: vec![(API_USER.to_owned(), API_PASSWORD.to_owned())],
        conversations,
    }
}

/// The conversation `id` of the history (it must be there).
fn conversation<'a>(h: &'a History, id: &str) -> &'a HistoryConversation {
    h.conversations
        .iter()
        .find(|c| c.row.conversation_id == id)
        .unwrap()
}

fn ids(h: &History) -> BTreeSet<String> {
    h.conversations
        .iter()
        .map(|c| c.row.conversation_id.clone())
        .collect()
}

const OLD: [&str; 6] = [
    "0a0a0a0a-0000-4000-8000-000000000001",
    "0a0a0a0a-0000-4000-8000-000000000002",
    "0a0a0a0a-0000-4000-8000-000000000003",
    "0a0a0a0a-0000-4000-8000-000000000004",
    "0a0a0a0a-0000-4000-8000-000000000005",
    "0a0a0a0a-0000-4000-8000-000000000006",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_conversations_of_every_linked_visitor_reach_the_history() {
    let p = person(Scenario::MultiDevice, 11);
    assert_eq!(p.visitors.len(), 3);
    let u = p.user_id.as_str();
    let conversations = vec![
        closed_days_ago(OLD[0], &p.visitors[0], 3, Some(u)),
        closed_days_ago(OLD[1], &p.visitors[0], 40, None),
        closed_days_ago(OLD[2], &p.visitors[1], 10, Some(u)),
        closed_days_ago(OLD[3], &p.visitors[2], 60, Some(u)),
        // Another visitor (never linked to the person): not theirs.
        closed_days_ago(OLD[4], "5e5e5e5e-0000-4000-8000-000000000009", 5, Some(u)),
        // Outside the 90 days asked for.
        closed_days_ago(OLD[5], &p.visitors[0], 200, Some(u)),
    ];
    let mut rig = Rig::start(dataset(conversations), API_PASSWORD, |b| {
        b.every = Duration::from_millis(300);
    })
    .await;
    rig.send(without_closes(&p.steps)).await;
    // Each device's older conversations arrive (the debounce serves later devices later).
    let wanted: BTreeSet<&str> = OLD[..4].iter().copied().collect();
    let changes = rig
        .changes_until(|seen| {
            let closed: BTreeSet<&str> = seen
                .iter()
                .filter(|c| c.state.map(AuthStateName::code) == Some("closed"))
                .filter_map(|c| c.conversation_id.as_deref())
                .collect();
            wanted.is_subset(&closed)
        })
        .await;
    assert!(changes.iter().all(|c| c.alert.is_none()), "{changes:#?}");
    let h = rig.history(u).await;
    let got = ids(&h);
    for id in &OLD[..4] {
        assert!(got.contains(*id), "{id} missing from {got:?}");
    }
    assert!(!got.contains(OLD[4]) && !got.contains(OLD[5]), "{got:?}");
    // The three live conversations are there too, still open.
    for (_, conv) in &p.conversations {
        assert!(got.contains(conv), "{conv} missing");
    }
    assert_eq!(got.len(), 7);
    let old = conversation(&h, OLD[0]);
    assert_eq!(old.row.state, AuthStateName::Closed);
    assert_eq!(old.row.platform_user_id.as_deref(), Some(u));
    assert_eq!(old.row.visitor_id, p.visitors[0]);
    // One login for every backfill (the token is cached).
    let status = rig.status_until(|s| s.completed >= 1).await;
    assert_eq!(status.failed, 0);
    assert_eq!(rig.standin.token_requests(), 1);
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_backfill_per_user_id_within_the_window() {
    let p = person(Scenario::MultiDevice, 12);
    let u = p.user_id.as_str();
    let conversations = vec![
        closed_days_ago(OLD[0], &p.visitors[0], 3, Some(u)),
        closed_days_ago(OLD[1], &p.visitors[2], 4, Some(u)),
    ];
    let mut rig = Rig::start(dataset(conversations), API_PASSWORD, |b| {
        b.every = Duration::from_secs(3600);
    })
    .await;
    rig.send(without_closes(&p.steps)).await;
    // All three devices secured on the desk (three triggers for one userId).
    rig.changes_until(|seen| {
        let secured: BTreeSet<&str> = seen
            .iter()
            .filter(|c| c.state.map(AuthStateName::code) == Some("secured"))
            .map(|c| c.visitor_id.as_str())
            .collect();
        secured.len() == 3
    })
    .await;
    let status = rig.status_until(|s| s.completed >= 1).await;
    // One backfill for the three triggers. A first attempt that failed (a timeout on a loaded
    // machine) is retried after the backoff, which is correct: only a failure may add a start.
    assert_eq!(status.completed, 1, "{status:?}");
    assert_eq!(status.started, 1 + status.failed, "{status:?}");
    if status.failed == 0 {
        // The one backfill asks about the visitors linked when it starts (one, or more when
        // the next device was secured first): each of the person's visitors once at most, a
        // page each. A second backfill would ask about the first visitor again.
        let queried = rig.standin.queried_visitors();
        assert!(!queried.is_empty());
        let distinct: BTreeSet<&String> = queried.iter().collect();
        assert_eq!(distinct.len(), queried.len(), "{queried:?}");
        assert!(
            queried.iter().all(|v| p.visitors.contains(v)),
            "{queried:?}"
        );
        assert_eq!(rig.standin.graphql_requests(), queried.len() as u64);
    }
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_different_external_user_id_is_a_platform_mismatch() {
    let p = person(Scenario::LoginMidConversation, 13);
    let (visitor, conv) = p.conversations[0].clone();
    let other = "cust-someone-else";
    let mut live = closed_days_ago(&conv, &visitor, 0, Some(other));
    live.closed_at = rfc3339(SystemTime::now() - Duration::from_secs(5));
    let conversations = vec![closed_days_ago(OLD[0], &visitor, 7, Some(&p.user_id)), live];
    let mut rig = Rig::start(dataset(conversations), API_PASSWORD, |_| {}).await;
    rig.send(without_closes(&p.steps)).await;
    let changes = rig
        .changes_until(|seen| {
            seen.iter()
                .any(|c| c.alert.map(AlertKind::code) == Some("platform_mismatch"))
        })
        .await;
    let alert = changes
        .iter()
        .find(|c| c.alert.map(AlertKind::code) == Some("platform_mismatch"))
        .unwrap();
    assert_eq!(alert.conversation_id.as_deref(), Some(conv.as_str()));
    assert_eq!(alert.reason, Some(ReasonCode::PlatformUserIdDiffers));
    assert_eq!(alert.user_id.as_deref(), Some(p.user_id.as_str()));
    // Exactly one: the older conversation names the right person.
    let mismatches = changes
        .iter()
        .filter(|c| c.alert.map(AlertKind::code) == Some("platform_mismatch"))
        .count();
    assert_eq!(mismatches, 1);
    let h = rig.history(&p.user_id).await;
    let row = conversation(&h, &conv);
    assert_eq!(row.row.state, AuthStateName::Closed);
    assert_eq!(row.row.auth_state, AuthStateName::Mismatch);
    assert_eq!(row.row.other_user_id.as_deref(), Some(other));
    assert_eq!(row.row.platform_user_id.as_deref(), Some(other));
    let old = conversation(&h, OLD[0]);
    assert_ne!(old.row.auth_state, AuthStateName::Mismatch);
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_are_waited_out_and_the_backfill_completes() {
    let p = person(Scenario::LoginMidConversation, 14);
    let visitor = p.visitors[0].clone();
    let conversations = vec![closed_days_ago(OLD[0], &visitor, 2, Some(&p.user_id))];
    let mut rig = Rig::start(dataset(conversations), API_PASSWORD, |b| {
        b.client.max_retries = 2;
    })
    .await;
    // 8 refusals: the client's first attempt gives up after 3 (two retries), the service
    // retries later, and so on until iAdvize answers.
    rig.standin.answer_429(8, None);
    rig.send(without_closes(&p.steps)).await;
    rig.changes_until(|seen| {
        seen.iter().any(|c| {
            c.conversation_id.as_deref() == Some(OLD[0])
                && c.state.map(AuthStateName::code) == Some("closed")
        })
    })
    .await;
    let status = rig.status_until(|s| s.completed >= 1).await;
    assert!(status.failed >= 2, "{status:?}");
    assert!(
        status.last_error.as_deref().unwrap_or("").contains("429"),
        "{status:?}"
    );
    assert!(ids(&rig.history(&p.user_id).await).contains(OLD[0]));
    assert!(rig.standin.token_requests() + rig.standin.graphql_requests() >= 9);
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_are_logged_and_the_desk_keeps_working() {
    const WRONG: &str = "wrong-password-9f8e7d";
    let p = person(Scenario::LoginMidConversation, 15);
    let (visitor, conv) = p.conversations[0].clone();
    let conversations = vec![closed_days_ago(OLD[0], &visitor, 2, Some(&p.user_id))];
    let mut rig = Rig::start(dataset(conversations), WRONG, |_| {}).await;
    rig.send(without_closes(&p.steps)).await;
    rig.changes_until(|seen| {
        seen.iter()
            .any(|c| c.state.map(AuthStateName::code) == Some("secured"))
    })
    .await;
    // Refused, retried after the backoff, refused again.
    let status = rig.status_until(|s| s.failed >= 2).await;
    assert_eq!(status.completed, 0);
    assert_eq!(
        status.last_error.as_deref(),
        Some("iAdvize refused the user name or password")
    );
    // The desk goes on: the conversation's close arrives and is applied.
    let closes: Vec<Step> = p
        .steps
        .iter()
        .filter(|s| !without_closes(std::slice::from_ref(s)).contains(s))
        .cloned()
        .collect();
    assert_eq!(closes.len(), 1);
    rig.send(closes).await;
    rig.changes_until(|seen| {
        seen.iter().any(|c| {
            c.conversation_id.as_deref() == Some(conv.as_str())
                && c.state.map(AuthStateName::code) == Some("closed")
        })
    })
    .await;
    let h = rig.history(&p.user_id).await;
    assert!(h.known);
    assert_eq!(ids(&h), BTreeSet::from([conv.clone()]));
    // Logged, without the password.
    let text = log_text();
    assert!(
        text.contains(
            "iAdvize backfill failed (will retry): iAdvize refused the user name or password"
        ),
        "no failure logged"
    );
    assert!(!text.contains(WRONG), "the password reached the logs");
    assert!(!text.contains(API_PASSWORD), "a password reached the logs");
    assert!(!text.contains("standin-token-"), "a token reached the logs");
    rig.stop().await;
}
