//! The PostgreSQL store against a real PostgreSQL 15 that each test starts itself
//! (lockdesk-testkit's `pg`): the store's guarantees, the same routing as SQLite, two instances
//! on one database, and the server going away and coming back.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lockdesk_gateway::store::{
    Appended, Counts, EntryKind, FeedFilter, NewEvidence, NewWebhookEvent, RoutedEntry, APPEND_LOCK,
};
use lockdesk_gateway::{
    EventStore, GatewayConfig, PgSettings, PostgresStore, ServerOptions, SqliteStore, StoreError,
};
use lockdesk_testkit::pg::PgServer;

use super::{capture_logs, config, logs, signature_header, SECRET};

/// A bound on a hang (the server coming back, a tail catching up), not a timing claim.
const PATIENCE: Duration = Duration::from_secs(60);

fn settings(pg: &PgServer, url: &str) -> PgSettings {
    PgSettings {
        url: url.to_owned(),
        password: Some(pg.password().to_owned()),
    }
}

fn open(pg: &PgServer, url: &str) -> PostgresStore {
    PostgresStore::open(&settings(pg, url)).unwrap()
}

fn webhook(id: &str, event_type: &str, conv: &str, visitor: &str, ops: &[u64]) -> NewWebhookEvent {
    NewWebhookEvent {
        event_id: id.into(),
        event_type: event_type.into(),
        correlation_id: Some(format!("corr-{id}")),
        delivery_id: None,
        conversation_id: Some(conv.into()),
        visitor_id: Some(visitor.into()),
        operator_ids: ops.to_vec(),
        payload: format!(r#"{{"eventId":"{id}"}}"#),
        received_at_ms: 1,
    }
}

fn evidence(visitor: &str, conv: Option<&str>) -> NewEvidence {
    NewEvidence {
        provider: "brand".into(),
        visitor_id: visitor.into(),
        conversation_id: conv.map(str::to_owned),
        payload: r#"{"token":"t"}"#.into(),
        received_at_ms: 2,
    }
}

#[test]
fn one_sequence_duplicates_once_and_a_reopen_continues_the_same_log() {
    let pg = PgServer::start();
    let url = pg.create_database("one");
    let first_id = {
        let store = open(&pg, &url);
        assert_eq!(store.counts().unwrap(), Counts::default());
        let push = webhook("e1", "v2.conversation.pushed", "c1", "v1", &[7]);
        assert_eq!(
            store.append_webhook(push.clone()).unwrap(),
            Appended {
                seq: 1,
                inserted: true
            }
        );
        assert_eq!(store.append_evidence(evidence("v1", None)).unwrap(), 2);
        assert_eq!(
            store.append_webhook(push).unwrap(),
            Appended {
                seq: 1,
                inserted: false
            }
        );
        assert_eq!(
            store.counts().unwrap(),
            Counts {
                webhook_events: 1,
                evidence: 1,
                last_seq: 2
            }
        );
        assert_eq!(*store.committed().borrow(), 2);
        store.log_id().to_owned()
    };
    assert_eq!(first_id.len(), 32, "{first_id}");
    assert!(first_id.bytes().all(|b| b.is_ascii_hexdigit()));
    let store = open(&pg, &url);
    assert_eq!(store.log_id(), first_id);
    assert_eq!(*store.committed().borrow(), 2);
    let next = webhook("e2", "v2.conversation.closed", "c1", "v1", &[]);
    assert_eq!(store.append_webhook(next).unwrap().seq, 3);
    let all = store.read_after(0, 10).unwrap();
    assert_eq!(all.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert_eq!(all[0].operator_ids, vec![7]);
    assert_eq!(all[1].kind, EntryKind::Evidence);
    assert_eq!(store.read_after(1, 1).unwrap()[0].seq, 2);
    assert!(store.read_after(3, 10).unwrap().is_empty());
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
    })
    .err()
    .unwrap()
    .to_string();
    assert!(text.contains("LOCKDESK_PG_PASSWORD"), "{text}");
    // A wrong password: refused by the server (scram over TCP), and not echoed.
    let wrong = PostgresStore::open(&PgSettings {
        url: url.clone(),
        password: Some("not-the-password".into()),
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
    let store = open(&pg, &pg.create_database("diff"));
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
    let url = pg.create_database("pair");
    let a = Arc::new(open(&pg, &url));
    let b = Arc::new(open(&pg, &url));
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
    let url = pg.create_database("deltas");
    let a = open(&pg, &url);
    let b = open(&pg, &url);
    let push = |s: &PostgresStore, id: &str, conv: &str, visitor: &str, op: u64| {
        s.append_webhook(webhook(id, "v2.conversation.pushed", conv, visitor, &[op]))
            .unwrap()
            .seq
    };
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
    assert_eq!(
        shown(&b, "v1"),
        vec![102],
        "a transfer made by the other instance"
    );
    assert_eq!(
        shown(&b, "v2"),
        Vec::<u64>::new(),
        "c2 moved to visitor v2b"
    );
    assert_eq!(shown(&b, "v2b"), vec![104], "closed, then opened again");
    assert_eq!(
        shown(&b, "v3"),
        Vec::<u64>::new(),
        "closed by the other instance"
    );
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
    assert_eq!(
        shown(&b, "v4"),
        vec![555],
        "a conversation the older gateway opened"
    );
    assert_eq!(
        shown(&a, "v1"),
        Vec::<u64>::new(),
        "a conversation it closed"
    );
    assert_eq!(shown(&a, "v4"), vec![555]);
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
    let url = pg.create_database("away");
    let a = open(&pg, &url);
    let b = open(&pg, &url);
    assert_eq!(
        a.append_webhook(webhook("w1", "v2.conversation.pushed", "c", "v", &[1]))
            .unwrap()
            .seq,
        1
    );
    pg.kill();
    let err = a
        .append_webhook(webhook("w2", "v2.conversation.pushed", "c", "v", &[2]))
        .expect_err("an append with the server down");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
    assert!(a.counts().is_err(), "counts must say the store is down");
    assert!(a.read_after(0, 10).is_err());
    pg.restart();
    // The same store recovers by itself: the retried append lands, once.
    let deadline = Instant::now() + PATIENCE;
    let appended = loop {
        match a.append_webhook(webhook("w2", "v2.conversation.pushed", "c", "v", &[2])) {
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
    let s = settings(&pg, &url);
    let store = tokio::task::spawn_blocking(move || PostgresStore::open(&s))
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
    let client = reqwest::Client::new();
    let deliver = |id: &str| {
        let body = super::event(id, "v2.conversation.pushed");
        let sig = signature_header(SECRET.as_bytes(), body.as_bytes());
        client
            .post(format!("{base}/webhooks/iadvize"))
            .header("content-type", "application/json")
            .header("x-iadvize-signature", sig)
            .body(body)
            .send()
    };
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
    let deadline = Instant::now() + PATIENCE;
    loop {
        let r = deliver("h2").await.unwrap();
        if r.status() == 200 {
            break;
        }
        assert_eq!(r.status(), 503);
        assert!(Instant::now() < deadline, "the gateway never recovered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let health = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert!(
        !logs().contains(pg.password()),
        "the password reached the logs"
    );
    gateway.shutdown().await.unwrap();
}
