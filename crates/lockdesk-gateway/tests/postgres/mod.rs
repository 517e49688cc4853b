//! The PostgreSQL store against a real PostgreSQL 15 that each test starts itself
//! (lockdesk-testkit's `pg`): the store's guarantees, the same routing as SQLite, two instances
//! on one database, and the server going away and coming back; over TLS in tls.rs.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lockdesk_gateway::store::{
    Appended, EntryKind, FeedFilter, NewEvidence, NewWebhookEvent, RoutedEntry, WriterStats,
    APPEND_LOCK,
};
use lockdesk_gateway::{
    EventStore, GatewayConfig, PgSettings, PostgresStore, ServerOptions, SqliteStore, StoreError,
};
use lockdesk_testkit::pg::PgServer;

use super::{
    a_new_log_stores_each_event_once, a_reopened_log_continues, capture_logs, config, evidence,
    logs, signature_header, webhook, SECRET,
};

mod tls;

/// A bound on a hang (the server coming back, a tail catching up), not a timing claim.
const PATIENCE: Duration = Duration::from_secs(60);

fn settings(pg: &PgServer, url: &str) -> PgSettings {
    PgSettings {
        url: url.to_owned(),
        password: Some(pg.password().to_owned()),
        ca_file: None,
    }
}

fn open(pg: &PgServer, url: &str) -> PostgresStore {
    PostgresStore::open(&settings(pg, url)).unwrap()
}

/// `N` gateway instances on one fresh database `db`.
fn instances<const N: usize>(pg: &PgServer, db: &str) -> [PostgresStore; N] {
    let url = pg.create_database(db);
    std::array::from_fn(|_| open(pg, &url))
}

/// Conversation `conv` (of `visitor`) pushed to operator `op`, through `store`.
fn try_push(
    store: &PostgresStore,
    id: &str,
    conv: &str,
    visitor: &str,
    op: u64,
) -> Result<Appended, StoreError> {
    store.append_webhook(webhook(id, "v2.conversation.pushed", conv, visitor, &[op]))
}

fn push(store: &PostgresStore, id: &str, conv: &str, visitor: &str, op: u64) -> Appended {
    try_push(store, id, conv, visitor, op).unwrap()
}

/// A gateway serving HTTP on 127.0.0.1 over the PostgreSQL store of `settings`, and its base
/// URL.
async fn http_gateway(settings: PgSettings) -> (lockdesk_gateway::Gateway, String) {
    let store = tokio::task::spawn_blocking(move || PostgresStore::open(&settings))
        .await
        .unwrap()
        .unwrap();
    let config = GatewayConfig::from_toml(&config()).unwrap();
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let gateway =
        lockdesk_gateway::start_with_store(config, Arc::new(store), addr, ServerOptions::default())
            .await
            .unwrap();
    let base = format!("http://{}", gateway.local_addr());
    (gateway, base)
}

/// A signed `v2.conversation.pushed` with eventId `id`, posted to the gateway at `base`.
async fn push_over_http(
    client: &reqwest::Client,
    base: &str,
    id: &str,
) -> reqwest::Result<reqwest::Response> {
    let body = super::event(id, "v2.conversation.pushed");
    let sig = signature_header(SECRET.as_bytes(), body.as_bytes());
    client
        .post(format!("{base}/webhooks/iadvize"))
        .header("content-type", "application/json")
        .header("x-iadvize-signature", sig)
        .body(body)
        .send()
        .await
}

/// Delivers `id` to the gateway at `base` until it is taken (503 meanwhile; bounded by
/// [`PATIENCE`]), then checks that `/healthz` says the gateway is well again.
async fn until_recovered(client: &reqwest::Client, base: &str, id: &str) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let r = push_over_http(client, base, id).await.unwrap();
        if r.status() == 200 {
            break;
        }
        assert_eq!(r.status(), 503);
        assert!(Instant::now() < deadline, "the gateway never recovered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let health = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
}

/// `a`'s first two groups, alone on the log: the first reads the head (two round trips), the
/// second finds the log where `a` left it and goes in one round trip.
fn first_two_groups_alone(a: &PostgresStore) {
    assert_eq!(push(a, "h1", "c1", "v1", 101).seq, 1);
    assert_eq!(push(a, "h2", "c2", "v2", 102).seq, 2);
    let s = a.writer_stats();
    assert_eq!(
        (s.one_trip_tried, s.one_trip, s.two_trips),
        (1, 1, 1),
        "{s:?}"
    );
}

#[test]
fn one_sequence_duplicates_once_and_a_reopen_continues_the_same_log() {
    let pg = PgServer::start();
    let url = pg.create_database("one");
    let first_id = {
        let store = open(&pg, &url);
        a_new_log_stores_each_event_once(&store);
        assert_eq!(*store.committed().borrow(), 2);
        store.log_id().to_owned()
    };
    assert_eq!(first_id.len(), 32, "{first_id}");
    assert!(first_id.bytes().all(|b| b.is_ascii_hexdigit()));
    let store = open(&pg, &url);
    assert_eq!(store.log_id(), first_id);
    assert_eq!(*store.committed().borrow(), 2);
    a_reopened_log_continues(
        &store,
        webhook("e2", "v2.conversation.closed", "c1", "v1", &[]),
    );
    // Another database is another log.
    let other = open(&pg, &pg.create_database("two"));
    assert_ne!(other.log_id(), first_id);
    drop(store);
    // libpq's URL form with the unix socket's folder as `host` (trust there: no password).
    let socket = PostgresStore::open(&PgSettings {
        url: format!(
            "postgres://lockdesk@localhost:{}/one?host={}",
            pg.port(),
            pg.socket_dir().display()
        ),
        password: None,
        ca_file: None,
    })
    .unwrap();
    assert_eq!(socket.log_id(), first_id);
    assert_eq!(socket.counts().unwrap().last_seq, 3);
}

#[test]
fn passwords_stay_out_of_urls_and_a_newer_schema_is_refused() {
    let pg = PgServer::start();
    let url = pg.create_database("settings");
    let with_password = url.replace("lockdesk@", &format!("lockdesk:{}@", pg.password()));
    for bad in [
        with_password.as_str(),
        "mysql://x@y/z",
        "postgres://127.0.0.1:1/db",
    ] {
        let err = PostgresStore::open(&PgSettings {
            url: bad.into(),
            password: None,
            ca_file: None,
        })
        .err()
        .expect("refused");
        let text = err.to_string();
        assert!(matches!(err, StoreError::Settings(_)), "{text}");
        assert!(!text.contains(pg.password()), "{text}");
    }
    let text = PostgresStore::open(&PgSettings {
        url: with_password.clone(),
        password: None,
        ca_file: None,
    })
    .err()
    .unwrap()
    .to_string();
    assert!(text.contains("LOCKDESK_PG_PASSWORD"), "{text}");
    // A wrong password: refused by the server (scram over TCP), and not echoed.
    let wrong = PostgresStore::open(&PgSettings {
        url: url.clone(),
        password: Some("not-the-password".into()),
        ca_file: None,
    })
    .err()
    .expect("a wrong password is refused")
    .to_string();
    assert!(wrong.contains("password"), "{wrong}");
    assert!(!wrong.contains("not-the-password"), "{wrong}");
    drop(open(&pg, &url));
    pg.psql("settings", "UPDATE lockdesk_schema SET version = 99");
    match PostgresStore::open(&settings(&pg, &url)) {
        Err(StoreError::SchemaTooNew {
            found: 99,
            supported: 2,
        }) => {}
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("opened a database from the future"),
    }
}

/// Conversation traffic that moves conversations between operators, closes them, and presents
/// evidence: everything the router's state depends on. Deterministic for a seed.
enum Step {
    Hook(NewWebhookEvent),
    Evidence(NewEvidence),
}

fn traffic(seed: u64, n: usize, prefix: &str) -> Vec<Step> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..n)
        .map(|i| {
            let conv = format!("c{}", rng.u8(0..6));
            let visitor = format!("v{}", rng.u8(0..4));
            let op = 100 + rng.u64(0..5);
            let id = format!("{prefix}{i}");
            match rng.u8(0..10) {
                0..=3 => Step::Hook(webhook(
                    &id,
                    "v2.conversation.pushed",
                    &conv,
                    &visitor,
                    &[op],
                )),
                4 => Step::Hook(webhook(&id, "v2.conversation.closed", &conv, &visitor, &[])),
                5 => Step::Hook(webhook(&id, "visitor.updated", "", &visitor, &[])),
                6 => Step::Hook(webhook(&id, "v2.message.sent", &conv, &visitor, &[])),
                7 => Step::Evidence(evidence(&visitor, Some(&conv))),
                _ => Step::Evidence(evidence(&visitor, None)),
            }
        })
        .collect()
}

fn apply(store: &dyn EventStore, steps: &[Step]) {
    for step in steps {
        match step {
            Step::Hook(e) => {
                store.append_webhook(e.clone()).unwrap();
            }
            Step::Evidence(e) => {
                store.append_evidence(e.clone()).unwrap();
            }
        }
    }
}

/// Everything a subscriber of any kind can get from `store`, read in small pages.
fn views(store: &dyn EventStore) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    let routed: Vec<RoutedEntry> = store.read_routed_after(0, 100_000).unwrap();
    out.insert(
        "routed".into(),
        routed.iter().map(|r| format!("{r:?}")).collect(),
    );
    let filters: Vec<(String, Vec<u64>)> = vec![
        ("all".into(), vec![]),
        ("100".into(), vec![100]),
        ("101+102".into(), vec![101, 102]),
        ("103".into(), vec![103]),
        ("104+999".into(), vec![104, 999]),
    ];
    for (name, ops) in filters {
        let mut after = 0;
        let mut items = Vec::new();
        loop {
            let filter = if ops.is_empty() {
                FeedFilter::All
            } else {
                FeedFilter::Operators(&ops)
            };
            let page = store.read_feed(after, filter, 7).unwrap();
            items.extend(page.items.iter().map(|i| format!("{i:?}")));
            if page.scanned_to == after {
                break;
            }
            after = page.scanned_to;
        }
        out.insert(name, items);
    }
    out
}

#[test]
fn routing_and_feed_reads_match_the_sqlite_store_entry_for_entry() {
    let pg = PgServer::start();
    let [store] = instances(&pg, "diff");
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteStore::open(&dir.path().join("g.db")).unwrap();
    let steps = traffic(15, 400, "d");
    apply(&store, &steps);
    apply(&sqlite, &steps);
    let (p, s) = (views(&store), views(&sqlite));
    assert!(
        p["routed"].iter().any(|r| r.contains("related: [")),
        "the traffic exercises no bundle"
    );
    for key in s.keys() {
        assert_eq!(p[key], s[key], "view {key} differs");
    }
    assert_eq!(store.counts().unwrap(), sqlite.counts().unwrap());
}

#[test]
fn two_instances_share_one_gapless_sequence_and_store_each_event_once() {
    let pg = PgServer::start();
    let [a, b] = instances(&pg, "pair").map(Arc::new);
    assert_eq!(a.log_id(), b.log_id());
    // Every step sent to both instances at once (as two gateways behind one load balancer
    // receiving the same retried delivery), from several threads each.
    let steps: Vec<NewWebhookEvent> = traffic(7, 600, "p")
        .into_iter()
        .filter_map(|s| match s {
            Step::Hook(e) => Some(e),
            Step::Evidence(_) => None,
        })
        .collect();
    let steps = Arc::new(steps);
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let store = if t % 2 == 0 { a.clone() } else { b.clone() };
            let steps = steps.clone();
            std::thread::spawn(move || {
                // Threads t and t+1 send the same quarter, one to each instance.
                let quarter = t / 2;
                steps
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| i % 4 == quarter)
                    .map(|(_, e)| {
                        let got = store.append_webhook(e.clone()).unwrap();
                        (e.event_id.clone(), got)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut seq_of: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
    let mut inserted = 0;
    for t in threads {
        for (id, got) in t.join().unwrap() {
            inserted += usize::from(got.inserted);
            seq_of.entry(id).or_default().insert(got.seq);
        }
    }
    assert_eq!(inserted, steps.len(), "each event inserted exactly once");
    assert!(
        seq_of.values().all(|s| s.len() == 1),
        "both instances answered the same seq for the same event"
    );
    let entries = a.read_after(0, 100_000).unwrap();
    assert_eq!(
        entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=steps.len() as u64).collect::<Vec<_>>(),
        "one gapless sequence"
    );
    let ids: BTreeSet<_> = entries.iter().filter_map(|e| e.event_id.clone()).collect();
    assert_eq!(ids.len(), steps.len());
    // The audiences are those of the log in seq order, whichever instance routed each entry:
    // a SQLite store fed the same entries in the same order agrees.
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteStore::open(&dir.path().join("g.db")).unwrap();
    let by_id: BTreeMap<&str, &NewWebhookEvent> =
        steps.iter().map(|e| (e.event_id.as_str(), e)).collect();
    for e in &entries {
        let id = e.event_id.as_deref().unwrap();
        sqlite.append_webhook(by_id[id].clone()).unwrap();
    }
    assert_eq!(views(&*a), views(&sqlite));
    assert_eq!(views(&*b), views(&sqlite));
    // Each instance's tail reaches the end of the log (NOTIFY or its poll).
    let deadline = Instant::now() + PATIENCE;
    for store in [&a, &b] {
        let mut committed = store.committed();
        while *committed.borrow_and_update() < steps.len() as u64 {
            assert!(Instant::now() < deadline, "a tail never reached the end");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The audience of the entry at `seq`, as stored.
fn audience_at(store: &PostgresStore, seq: u64) -> Vec<u64> {
    let routed = store.read_routed_after(seq - 1, 1).unwrap();
    assert_eq!(routed[0].entry.seq, seq);
    routed[0].audience.operators.clone()
}

#[test]
fn an_instance_catches_up_with_the_others_conversations_and_with_an_older_gateway() {
    let pg = PgServer::start();
    let [a, b] = instances(&pg, "deltas");
    let close = |s: &PostgresStore, id: &str, conv: &str, visitor: &str| {
        s.append_webhook(webhook(id, "v2.conversation.closed", conv, visitor, &[]))
            .unwrap()
            .seq
    };
    let shown = |s: &PostgresStore, visitor: &str| {
        let seq = s.append_evidence(evidence(visitor, None)).unwrap();
        audience_at(s, seq)
    };
    push(&a, "h1", "c1", "v1", 101);
    assert_eq!(
        shown(&b, "v1"),
        vec![101],
        "b's first append loads the table"
    );
    // b's copy is now older than a's appends: a transfer, a close, a new conversation, a close
    // and a reopen of the same conversation.
    push(&a, "h2", "c1", "v1", 102);
    push(&a, "h3", "c2", "v2", 103);
    close(&a, "h4", "c2", "v2");
    push(&a, "h5", "c2", "v2b", 104);
    push(&a, "h6", "c3", "v3", 105);
    close(&a, "h7", "c3", "v3");
    for (visitor, owners, why) in [
        ("v1", &[102][..], "a transfer made by the other instance"),
        ("v2", &[], "c2 moved to visitor v2b"),
        ("v2b", &[104], "closed, then opened again"),
        ("v3", &[], "closed by the other instance"),
    ] {
        assert_eq!(shown(&b, visitor), owners, "{why}");
    }
    // Each close left a tombstone the other instances apply; the table holds open ones only.
    assert_eq!(
        pg.psql("deltas", "SELECT string_agg(conversation_id, ',' ORDER BY conversation_id) FROM closed_conversations"),
        "c2,c3"
    );
    assert_eq!(
        pg.psql("deltas", "SELECT string_agg(conversation_id, ',' ORDER BY conversation_id) FROM open_conversations"),
        "c1,c2"
    );
    // An older gateway (schema 1, still running during an upgrade) appends as it did: under the
    // lock, without changed_seq (the column's default, 0) and without tombstones. It pushes c4
    // to 555 and closes c1.
    pg.psql(
        "deltas",
        &format!(
            "BEGIN;
         SELECT pg_advisory_xact_lock({APPEND_LOCK});
         INSERT INTO entries (seq, kind, received_at_ms, event_id, event_type, conversation_id,
             visitor_id, operator_ids, payload)
         SELECT last_seq + 1, 'webhook', 1, 'old1', 'v2.conversation.pushed', 'c4', 'v4',
             '[555]', '{{}}' FROM log_head;
         INSERT INTO audience (operator_id, seq, related)
         SELECT 555, last_seq + 1, true FROM log_head;
         INSERT INTO entries (seq, kind, received_at_ms, event_id, event_type, conversation_id,
             visitor_id, operator_ids, payload)
         SELECT last_seq + 2, 'webhook', 1, 'old2', 'v2.conversation.closed', 'c1', 'v1',
             '[]', '{{}}' FROM log_head;
         INSERT INTO audience (operator_id, seq, related)
         SELECT 102, last_seq + 2, false FROM log_head;
         INSERT INTO open_conversations (conversation_id, visitor_id, owners)
         VALUES ('c4', 'v4', '{{555}}');
         DELETE FROM open_conversations WHERE conversation_id = 'c1';
         UPDATE log_head SET last_seq = last_seq + 2, webhook_events = webhook_events + 2;
         COMMIT;"
        ),
    );
    // Both instances' copies predate it: neither may take the deltas as complete.
    for (store, visitor, owners, why) in [
        (
            &b,
            "v4",
            &[555][..],
            "a conversation the older gateway opened",
        ),
        (&a, "v1", &[], "a conversation it closed"),
        (
            &a,
            "v4",
            &[555],
            "the one it opened, to the other instance too",
        ),
    ] {
        assert_eq!(shown(store, visitor), owners, "{why}");
    }
    push(&b, "h8", "c4", "v4", 556);
    assert_eq!(
        shown(&a, "v4"),
        vec![556],
        "deltas again after the older gateway"
    );
    // The whole log, routed by three writers, agrees with one SQLite store fed the same entries.
    let entries = a.read_after(0, 1000).unwrap();
    assert_eq!(
        entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=entries.len() as u64).collect::<Vec<_>>()
    );
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteStore::open(&dir.path().join("g.db")).unwrap();
    for e in entries {
        match e.kind {
            EntryKind::Webhook => {
                sqlite
                    .append_webhook(NewWebhookEvent {
                        event_id: e.event_id.unwrap(),
                        event_type: e.event_type.unwrap(),
                        correlation_id: None,
                        delivery_id: None,
                        conversation_id: e.conversation_id,
                        visitor_id: e.visitor_id,
                        operator_ids: e.operator_ids,
                        payload: e.payload,
                        received_at_ms: e.received_at_ms,
                    })
                    .unwrap();
            }
            EntryKind::Evidence => {
                sqlite
                    .append_evidence(NewEvidence {
                        provider: "brand".into(),
                        visitor_id: e.visitor_id.unwrap(),
                        conversation_id: e.conversation_id,
                        payload: e.payload,
                        received_at_ms: e.received_at_ms,
                    })
                    .unwrap();
            }
        }
    }
    assert_eq!(views(&a), views(&sqlite));
    assert_eq!(views(&b), views(&sqlite));
}

#[test]
fn postgres_going_away_fails_appends_until_it_is_back_without_a_reopen() {
    let pg = PgServer::start();
    let [a, b] = instances(&pg, "away");
    assert_eq!(push(&a, "w1", "c", "v", 1).seq, 1);
    pg.kill();
    let err = try_push(&a, "w2", "c", "v", 2).expect_err("an append with the server down");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
    assert!(a.counts().is_err(), "counts must say the store is down");
    assert!(a.read_after(0, 10).is_err());
    pg.restart();
    // The same store recovers by itself: the retried append lands, once.
    let deadline = Instant::now() + PATIENCE;
    let appended = loop {
        match try_push(&a, "w2", "c", "v", 2) {
            Ok(x) => break x,
            Err(e) => {
                assert!(Instant::now() < deadline, "never recovered: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    };
    assert_eq!(
        appended,
        Appended {
            seq: 2,
            inserted: true
        }
    );
    assert_eq!(a.counts().unwrap().last_seq, 2);
    // The other instance's tail reconnects and sees the new entry; its audience was routed
    // against the conversation's state from before the outage (a transfer from 1 to 2).
    let mut committed = b.committed();
    while *committed.borrow_and_update() < 2 {
        assert!(Instant::now() < deadline, "the other tail never caught up");
        std::thread::sleep(Duration::from_millis(20));
    }
    let routed = b.read_routed_after(1, 10).unwrap();
    assert_eq!(routed.len(), 1);
    assert_eq!(routed[0].audience.operators, vec![1, 2]);
    assert_eq!(routed[0].audience.related, vec![2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_answers_503_with_retry_after_while_postgres_is_down() {
    capture_logs();
    let pg = Arc::new(tokio::task::spawn_blocking(PgServer::start).await.unwrap());
    let url = {
        let pg = pg.clone();
        tokio::task::spawn_blocking(move || pg.create_database("http"))
            .await
            .unwrap()
    };
    let (gateway, base) = http_gateway(settings(&pg, &url)).await;
    let client = reqwest::Client::new();
    let deliver = |id: &'static str| push_over_http(&client, &base, id);
    assert_eq!(deliver("h1").await.unwrap().status(), 200);
    let health = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    {
        let pg = pg.clone();
        tokio::task::spawn_blocking(move || pg.kill())
            .await
            .unwrap();
    }
    let refused = deliver("h2").await.unwrap();
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().contains_key("retry-after"));
    let health = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 503);
    assert!(health.headers().contains_key("retry-after"));
    {
        let pg = pg.clone();
        tokio::task::spawn_blocking(move || pg.restart())
            .await
            .unwrap();
    }
    until_recovered(&client, &base, "h2").await;
    assert!(
        !logs().contains(pg.password()),
        "the password reached the logs"
    );
    gateway.shutdown().await.unwrap();
}

/// Another instance's group written by hand in SQL, as this gateway writes it (under the lock,
/// keeping the deltas) but without NOTIFY: a transfer of `conv` to `op`. Returns its seq.
fn other_instance_pushes(
    pg: &PgServer,
    db: &str,
    id: &str,
    conv: &str,
    visitor: &str,
    op: u64,
) -> u64 {
    pg.psql(
        db,
        &format!(
            "BEGIN;
         SELECT pg_advisory_xact_lock({APPEND_LOCK});
         INSERT INTO entries (seq, kind, received_at_ms, event_id, event_type, conversation_id,
             visitor_id, operator_ids, payload)
         SELECT last_seq + 1, 'webhook', 1, '{id}', 'v2.conversation.pushed', '{conv}',
             '{visitor}', '[{op}]', '{{}}' FROM log_head;
         INSERT INTO audience (operator_id, seq, related)
         SELECT {op}, last_seq + 1, true FROM log_head;
         INSERT INTO open_conversations (conversation_id, visitor_id, owners, changed_seq)
         SELECT '{conv}', '{visitor}', '{{{op}}}', last_seq + 1 FROM log_head
         ON CONFLICT (conversation_id) DO UPDATE SET visitor_id = EXCLUDED.visitor_id,
             owners = EXCLUDED.owners, changed_seq = EXCLUDED.changed_seq;
         UPDATE log_head SET last_seq = last_seq + 1, webhook_events = webhook_events + 1,
             delta_seq = last_seq + 1;
         COMMIT;"
        ),
    );
    pg.psql(db, "SELECT last_seq FROM log_head")
        .parse()
        .unwrap()
}

/// `a`'s evidence for v1 after another instance moved c1 to `owner` behind its back: the
/// one-round-trip attempt is refused under the lock and the group redone in two round trips, at
/// `seq` (after the other's entry), routed on the transfer. Returns `a`'s stats after it.
fn evidence_for_v1_redone(a: &PostgresStore, seq: u64, owner: u64) -> WriterStats {
    let before = a.writer_stats();
    assert_eq!(
        a.append_evidence(evidence("v1", None)).unwrap(),
        seq,
        "the seq after the other instance's"
    );
    assert_eq!(
        audience_at(a, seq),
        vec![owner],
        "routed on the other instance's transfer"
    );
    let after = a.writer_stats();
    assert_eq!(
        (
            after.one_trip_tried,
            after.one_trip,
            after.redone_conflict,
            after.two_trips
        ),
        (
            before.one_trip_tried + 1,
            before.one_trip,
            before.redone_conflict + 1,
            before.two_trips + 1
        ),
        "{after:?}"
    );
    after
}

#[test]
fn a_one_trip_group_that_read_what_another_instance_changed_is_redone_in_two_round_trips() {
    let pg = PgServer::start();
    let [a, b] = instances(&pg, "moved");
    first_two_groups_alone(&a);
    // Another instance transfers c1 (v1's conversation) behind a's back, without NOTIFY. a's
    // next group, evidence for v1, reads v1's conversations: its one-round-trip attempt is
    // refused under the lock, and the group is redone in two round trips, routed on the
    // transfer, after the other's entry. Twice: two refusals in a row are still tolerated.
    let mut expected_seq = 2;
    for round in 0..2u64 {
        let op = 200 + round;
        expected_seq = other_instance_pushes(&pg, "moved", &format!("o{round}"), "c1", "v1", op);
        expected_seq += 1;
        let after = evidence_for_v1_redone(&a, expected_seq, op);
        // And a group after that goes in one round trip again, routed on the same state.
        let seq = a.append_evidence(evidence("v1", None)).unwrap();
        expected_seq += 1;
        assert_eq!(seq, expected_seq);
        assert_eq!(audience_at(&a, seq), vec![op]);
        assert_eq!(a.writer_stats().one_trip, after.one_trip + 1);
    }
    // A close leaves no open row: the tombstone refuses the attempt. b closes c2 (v2's); a's
    // evidence for v2 reaches nobody.
    let before = a.writer_stats();
    let closed = b
        .append_webhook(webhook(
            "b-close",
            "v2.conversation.closed",
            "c2",
            "v2",
            &[],
        ))
        .unwrap();
    assert_eq!(closed.seq, expected_seq + 1);
    assert_eq!(audience_at(&b, closed.seq), vec![102]);
    let seq = a.append_evidence(evidence("v2", None)).unwrap();
    expected_seq += 2;
    assert_eq!(seq, expected_seq);
    assert!(audience_at(&a, seq).is_empty(), "c2 is closed");
    let after = a.writer_stats();
    assert_eq!(
        after.redone_conflict,
        before.redone_conflict + 1,
        "{after:?}"
    );
    assert_gapless_to(&pg, "moved", &a, expected_seq);
}

#[test]
fn another_instances_entries_on_other_conversations_cost_no_round_trip() {
    let pg = PgServer::start();
    let [a, b] = instances(&pg, "disjoint");
    first_two_groups_alone(&a);
    // Another instance pushes c9 (visitor v9) to 900, without NOTIFY. a's evidence for v1 reads
    // nothing it changed: one round trip, its seq after the other's entry.
    assert_eq!(
        other_instance_pushes(&pg, "disjoint", "o1", "c9", "v9", 900),
        3
    );
    let before = a.writer_stats();
    assert_eq!(a.append_evidence(evidence("v1", None)).unwrap(), 4);
    assert_eq!(audience_at(&a, 4), vec![101]);
    // The same group brought a's copy up to date: evidence for v9 reaches 900, still in one
    // round trip (c9 changed before the copy a now holds).
    assert_eq!(a.append_evidence(evidence("v9", None)).unwrap(), 5);
    assert_eq!(
        audience_at(&a, 5),
        vec![900],
        "the other's conversation is known"
    );
    let after = a.writer_stats();
    assert_eq!(
        (after.one_trip, after.two_trips, after.redone_conflict),
        (before.one_trip + 2, before.two_trips, 0),
        "{after:?}"
    );
    assert_gapless_to(&pg, "disjoint", &a, 5);
    // Two real instances taking turns on their own conversations: after b's first group (it
    // has no copy yet: two round trips), every group of both goes in one round trip, each
    // after the other's, and each instance routes the other's visitors.
    let mut seq = 5;
    for round in 0..6u64 {
        for (s, name, op) in [(&b, "b", 300 + round), (&a, "a", 400 + round)] {
            seq += 1;
            let conv = format!("{name}c{round}");
            let visitor = format!("{name}v{round}");
            assert_eq!(
                push(s, &format!("{name}{round}"), &conv, &visitor, op).seq,
                seq
            );
            assert_eq!(audience_at(s, seq), vec![op]);
        }
        // Each reads a visitor the other pushed just before: routed to the other's operator.
        seq += 1;
        assert_eq!(
            a.append_evidence(evidence(&format!("bv{round}"), None))
                .unwrap(),
            seq
        );
        assert_eq!(audience_at(&a, seq), vec![300 + round]);
    }
    let (sa, sb) = (a.writer_stats(), b.writer_stats());
    assert_eq!(sb.two_trips, 1, "only b's first group: {sb:?}");
    assert_eq!(sb.one_trip, 5, "{sb:?}");
    assert_eq!(sa.two_trips, after.two_trips, "{sa:?}");
    assert_eq!(sa.one_trip, after.one_trip + 12, "{sa:?}");
    assert_eq!((sa.redone_conflict, sb.redone_conflict), (0, 0));
    assert_gapless_to(&pg, "disjoint", &a, seq);
    // Both stores agree on every entry's audience with a single instance that routed the same
    // log in seq order (the SQLite store's routing).
    let mut alone = lockdesk_gateway::routing::Visibility::default();
    for r in a.read_routed_after(0, 1000).unwrap() {
        let e = &r.entry;
        let fields = lockdesk_gateway::routing::RoutingFields {
            is_evidence: e.kind == EntryKind::Evidence,
            event_type: e.event_type.as_deref(),
            conversation_id: e.conversation_id.as_deref(),
            visitor_id: e.visitor_id.as_deref(),
            operator_ids: &e.operator_ids,
        };
        assert_eq!(alone.route(fields), r.audience, "seq {}", e.seq);
    }
}

/// Waits until `store`'s tail has seen the end of the log at `seq` (NOTIFY or its poll).
fn wait_committed(store: &PostgresStore, seq: u64) {
    let deadline = Instant::now() + PATIENCE;
    let mut committed = store.committed();
    while *committed.borrow_and_update() < seq {
        assert!(Instant::now() < deadline, "the tail never reached {seq}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn instances_changing_what_the_other_reads_stop_trying_one_round_trip_until_it_is_quiet() {
    let pg = PgServer::start();
    let [a, b] = instances(&pg, "turns");
    // a alone: its second group goes in one round trip.
    first_two_groups_alone(&a);
    // b transfers c1 before each of a's groups, and a's group is evidence for v1: each of a's
    // attempts is refused under the lock and redone in two round trips, routed on b's transfer,
    // after b's entry.
    let mut seq = 2;
    let mut owner = 101;
    for round in 0..3u64 {
        owner = 200 + round;
        seq += 1;
        assert_eq!(push(&b, &format!("b{round}"), "c1", "v1", owner).seq, seq);
        seq += 1;
        evidence_for_v1_redone(&a, seq, owner);
    }
    // b is quiet now, but three of a's last groups were refused: the next group takes two
    // round trips without an attempt, and is exact.
    let before = a.writer_stats();
    seq += 1;
    assert_eq!(a.append_evidence(evidence("v1", None)).unwrap(), seq);
    assert_eq!(audience_at(&a, seq), vec![owner]);
    let after = a.writer_stats();
    assert_eq!(after.one_trip_tried, before.one_trip_tried, "{after:?}");
    assert_eq!(
        after.one_trip_skipped,
        before.one_trip_skipped + 1,
        "{after:?}"
    );
    assert_eq!(after.two_trips, before.two_trips + 1, "{after:?}");
    // Once the refusals leave the window, one round trip again, with no group redone on the
    // way.
    let mut quiet = 1;
    while a.writer_stats().one_trip == after.one_trip {
        assert!(
            quiet < 16,
            "never back to one round trip: {:?}",
            a.writer_stats()
        );
        seq += 1;
        assert_eq!(a.append_evidence(evidence("v1", None)).unwrap(), seq);
        assert_eq!(audience_at(&a, seq), vec![owner]);
        quiet += 1;
    }
    let s = a.writer_stats();
    assert_eq!(s.redone_conflict, 3, "{s:?}");
    assert_eq!(s.one_trip_tried, s.one_trip + 3, "{s:?}");
    // b, whose copy is stale, catches up: its push of c2 follows a's entries and its evidence
    // for v1 reaches c1's owner.
    seq += 1;
    assert_eq!(push(&b, "b-last", "c2", "v2", 300).seq, seq);
    seq += 1;
    assert_eq!(b.append_evidence(evidence("v1", None)).unwrap(), seq);
    assert_eq!(audience_at(&b, seq), vec![owner]);
    wait_committed(&a, seq);
    assert_gapless_to(&pg, "turns", &a, seq);
}

/// The log of database `db`, read through `store`, is 1 to `last` without a gap, and its head
/// agrees: the last seq is the deltas' and the last entry's.
fn assert_gapless_to(pg: &PgServer, db: &str, store: &PostgresStore, last: u64) {
    let entries = store.read_after(0, 1000).unwrap();
    assert_eq!(
        entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=last).collect::<Vec<_>>(),
        "one gapless sequence"
    );
    assert_eq!(
        pg.psql(db, "SELECT last_seq = delta_seq AND last_seq = (SELECT max(seq) FROM entries) FROM log_head"),
        "t"
    );
}

#[test]
fn a_stored_event_id_through_the_one_trip_group_answers_its_seq_and_is_stored_once() {
    let pg = PgServer::start();
    let [a] = instances(&pg, "dup");
    first_two_groups_alone(&a);
    let before = a.writer_stats();
    // h1 again, with other content: the one-round-trip group routes it (c1 to 999) and meets
    // the unique eventId; redone, it is answered with its seq and c1 stays 101's.
    assert_eq!(
        push(&a, "h1", "c1", "v1", 999),
        Appended {
            seq: 1,
            inserted: false
        }
    );
    let after = a.writer_stats();
    assert_eq!(after.one_trip_tried, before.one_trip_tried + 1, "{after:?}");
    assert_eq!(
        after.redone_duplicate,
        before.redone_duplicate + 1,
        "{after:?}"
    );
    assert_eq!(after.one_trip, before.one_trip, "{after:?}");
    assert_eq!(
        pg.psql("dup", "SELECT count(*) FROM entries WHERE event_id = 'h1'"),
        "1"
    );
    assert_eq!(pg.psql("dup", "SELECT last_seq FROM log_head"), "2");
    // The routing state is the one before the refused group: evidence for v1 reaches 101.
    let seq = a.append_evidence(evidence("v1", None)).unwrap();
    assert_eq!(seq, 3);
    assert_eq!(audience_at(&a, seq), vec![101]);
    assert_eq!(
        pg.psql(
            "dup",
            "SELECT owners::text FROM open_conversations WHERE conversation_id = 'c1'"
        ),
        "{101}"
    );
    // A group with a stored eventId among new ones (several threads at once, so that some
    // share a group): each new one stored once, the stored one answered with its seq.
    let a = Arc::new(a);
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let a = a.clone();
            std::thread::spawn(move || {
                (0..20)
                    .map(|i| {
                        let id = if i % 5 == 0 {
                            "h2".to_owned()
                        } else {
                            format!("t{t}-{i}")
                        };
                        let got = a
                            .append_webhook(webhook(
                                &id,
                                "v2.conversation.pushed",
                                &format!("k{t}-{i}"),
                                "vx",
                                &[7],
                            ))
                            .unwrap();
                        (id, got)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut new = BTreeSet::new();
    for t in threads {
        for (id, got) in t.join().unwrap() {
            if id == "h2" {
                assert_eq!(
                    got,
                    Appended {
                        seq: 2,
                        inserted: false
                    }
                );
            } else {
                assert!(got.inserted, "{id}");
                assert!(new.insert(got.seq), "one seq per new event");
            }
        }
    }
    assert_eq!(new.len(), 8 * 16);
    assert_eq!(new, (4..4 + 8 * 16).collect::<BTreeSet<u64>>(), "gapless");
    assert_eq!(
        pg.psql("dup", "SELECT count(*) FROM entries WHERE event_id = 'h2'"),
        "1"
    );
    assert!(a.writer_stats().redone_duplicate > after.redone_duplicate);
}

#[test]
fn a_one_trip_group_that_fails_for_another_reason_is_not_acknowledged() {
    let pg = PgServer::start();
    let [a] = instances(&pg, "fails");
    let push = |id: &str, op: u64| try_push(&a, id, "c1", "v1", op);
    assert_eq!(push("h1", 101).unwrap().seq, 1);
    assert_eq!(push("h2", 102).unwrap().seq, 2);
    // A statement of the group fails with an error that is neither the guard's nor the
    // eventId's: a trigger on the audience, then one that raises a unique violation on another
    // constraint than the eventId's.
    for (name, raise) in [
        ("boom", "RAISE EXCEPTION 'boom'"),
        (
            "fake_unique",
            "RAISE unique_violation USING MESSAGE = 'fake', CONSTRAINT = 'entries_pkey'",
        ),
    ] {
        let table = if name == "boom" {
            "audience"
        } else {
            "entries"
        };
        // A good group first: after a failure the writer reconnects and reads the head (two
        // round trips); the group after it is this instance's usual one-round-trip case.
        assert!(push(&format!("ok-{name}"), 104).unwrap().inserted);
        pg.psql(
            "fails",
            &format!(
                "CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN {raise}; END $$;
                 CREATE TRIGGER {name} BEFORE INSERT ON {table} FOR EACH STATEMENT EXECUTE FUNCTION {name}();"
            ),
        );
        let before = a.writer_stats();
        let last: String = pg.psql("fails", "SELECT last_seq FROM log_head");
        let err = push("h3", 103).expect_err("an append whose transaction failed");
        assert!(matches!(err, StoreError::Commit(_)), "{err}");
        let after = a.writer_stats();
        assert_eq!(after.one_trip_tried, before.one_trip_tried + 1, "{after:?}");
        assert_eq!(
            (
                after.one_trip,
                after.redone_conflict,
                after.redone_duplicate,
                after.two_trips
            ),
            (
                before.one_trip,
                before.redone_conflict,
                before.redone_duplicate,
                before.two_trips
            ),
            "not committed, not redone: {after:?}"
        );
        assert_eq!(pg.psql("fails", "SELECT last_seq FROM log_head"), last);
        assert_eq!(
            pg.psql(
                "fails",
                "SELECT count(*) FROM entries WHERE event_id = 'h3'"
            ),
            "0"
        );
        pg.psql("fails", &format!("DROP TRIGGER {name} ON {table}"));
    }
    // Once the cause is gone the retry lands, once, after the last stored seq.
    let last: u64 = pg
        .psql("fails", "SELECT last_seq FROM log_head")
        .parse()
        .unwrap();
    assert_eq!(
        push("h3", 103).unwrap(),
        Appended {
            seq: last + 1,
            inserted: true
        }
    );
    assert_eq!(
        a.read_after(0, 100)
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect::<Vec<_>>(),
        (1..=last + 1).collect::<Vec<_>>()
    );
}
