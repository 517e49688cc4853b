//! The gateway over real HTTP on 127.0.0.1:0, with a real SQLite file in a temp dir; and what
//! every store guarantees of its log, checked here on SQLite and in `postgres` on PostgreSQL.
//!
//! One integration-test binary for the crate (the feed's tests are its `feed` module). Logs of every test are captured (a global tracing
//! subscriber) so that tests can assert what never reaches them.

use std::net::SocketAddr;
use std::path::Path;

use lockdesk_gateway::store::{
    Appended, Counts, EntryKind, NewEvidence, NewWebhookEvent, StoredEntry,
};
use lockdesk_gateway::{EventStore, Gateway, GatewayConfig, ServerOptions, SqliteStore};

mod feed;
mod postgres;
use lockdesk_sim::webhook_signature as signature_header;
use serde_json::{json, Value};

use lockdesk_testkit::gateway_config::{PROVIDER, SECRET};

const SECOND_SECRET: &str = "whsec-test-second-app";

/// The test gateway's configuration with a second webhook (another app's secret) and sam.
fn config() -> String {
    lockdesk_testkit::gateway_config::config(&format!(
        "\n[[webhook]]\nname = \"second\"\nsecret = \"{SECOND_SECRET}\"\n{}",
        lockdesk_testkit::gateway_config::sam()
    ))
}

// HMAC-SHA256 vectors computed by an independent implementation (Python's hmac module):
//   python3 -c 'import hmac,hashlib; print(hmac.new(b"whsec-test-main", BODY, hashlib.sha256).hexdigest())'
// with BODY the exact bytes of VECTOR_JSON_BODY / VECTOR_FORM_BODY below.
const VECTOR_JSON_BODY: &str = r#"{"eventId":"vec-1","eventType":"v2.conversation.pushed","platform":"ha","clientId":42,"createdAt":"2026-01-01T00:00:00Z","sentAt":"2026-01-01T00:00:01Z","projectId":7,"conversationId":"0b8f6f3e-2b7a-4c4e-9a51-3d2f1c0e9a11","operatorId":101,"channel":"CHAT","visitorId":"5a1c2d3e-4f50-4617-8899-aabbccddeeff"}"#;
const VECTOR_JSON_HMAC: &str = "020758ae20d616369bc464a9671a84110616c21b74ec8862b77190cf2e5bc1c2";
const VECTOR_FORM_BODY: &str = "eventId=vec-2&eventType=v2.conversation.closed&platform=sd&clientId=42&operatorIds=101&operatorIds=102&visitorId=v-2";
const VECTOR_FORM_HMAC: &str = "0cae08ad19c61dbc0301d6ceee7b32d7e75d5132a464b3b280df328b58f1affe";
// RFC 4231 test case 2 (key "Jefe").
const RFC4231_2_HMAC: &str = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";

/// Every test's log lines, captured (`lockdesk_testkit::logs`); rustls's crypto provider set.
fn capture_logs() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    lockdesk_testkit::logs::capture();
}

fn logs() -> String {
    lockdesk_testkit::logs::text()
}

/// Stops `gateway` if it runs, then starts it again on `dir` at 127.0.0.1:0 with the
/// configuration `toml` (checked valid) and `options`.
async fn restart_on(gateway: &mut Option<Gateway>, toml: &str, dir: &Path, options: ServerOptions) {
    if let Some(g) = gateway.take() {
        g.shutdown().await.unwrap();
    }
    let config = GatewayConfig::from_toml(toml).unwrap();
    assert!(lockdesk_gateway::config::validate(&config).is_empty());
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    *gateway = Some(
        lockdesk_gateway::start_with(config, dir, addr, options)
            .await
            .unwrap(),
    );
}

/// The head of a JSON delivery of `body` signed with the main secret (its whole length in
/// Content-Length), for the tests that then send less of the body.
fn signed_head(body: &str) -> String {
    let sig = signature_header(SECRET.as_bytes(), body.as_bytes());
    format!(
        "POST /webhooks/iadvize HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nx-iadvize-signature: {sig}\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
}

struct Harness {
    dir: tempfile::TempDir,
    gateway: Option<Gateway>,
    client: reqwest::Client,
}

impl Harness {
    async fn start() -> Harness {
        capture_logs();
        let dir = tempfile::tempdir().unwrap();
        let mut h = Harness {
            dir,
            gateway: None,
            client: reqwest::Client::new(),
        };
        h.restart().await;
        h
    }

    /// (Re)starts the gateway on the same data folder.
    async fn restart(&mut self) {
        restart_on(
            &mut self.gateway,
            &config(),
            self.dir.path(),
            ServerOptions::default(),
        )
        .await;
    }

    fn url(&self, path: &str) -> String {
        let addr = self.gateway.as_ref().unwrap().local_addr();
        format!("http://{addr}{path}")
    }

    async fn post_webhook(
        &self,
        body: impl Into<Vec<u8>>,
        content_type: &str,
        signature: Option<&str>,
        correlation_id: Option<&str>,
    ) -> (u16, Value) {
        let mut req = self
            .client
            .post(self.url("/webhooks/iadvize"))
            .header("content-type", content_type)
            .body(body.into());
        if let Some(s) = signature {
            req = req.header("x-iadvize-signature", s);
        }
        if let Some(c) = correlation_id {
            req = req.header("x-iadvize-correlationid", c);
        }
        answer(req.send().await.unwrap()).await
    }

    /// A JSON delivery signed with the main app's secret.
    async fn deliver(&self, body: &str) -> (u16, Value) {
        let sig = signature_header(SECRET.as_bytes(), body.as_bytes());
        self.post_webhook(body, "application/json", Some(&sig), None)
            .await
    }

    async fn post_evidence(&self, body: &str, auth: Option<&str>) -> (u16, Value) {
        let mut req = self
            .client
            .post(self.url("/v1/evidence"))
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        answer(req.send().await.unwrap()).await
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let r = self.client.get(self.url(path)).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// Everything in the log, read through a second store on the same file.
    fn entries(&self) -> Vec<StoredEntry> {
        entries_in(self.dir.path())
    }
}

fn entries_in(dir: &Path) -> Vec<StoredEntry> {
    let store = SqliteStore::open(&dir.join(lockdesk_gateway::DATABASE_FILE)).unwrap();
    store.read_after(0, 100_000).unwrap()
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

/// Any store on a new log: a push (eventId `e1`, to operator 7) and evidence take seqs 1 and 2,
/// the push retried is answered with seq 1 and not stored again, and the counts agree.
fn a_new_log_stores_each_event_once(store: &dyn EventStore) {
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
}

/// Any store reopened on the log [`a_new_log_stores_each_event_once`] wrote: `next` takes seq 3,
/// and the log reads back in order, whole or a page at a time.
fn a_reopened_log_continues(store: &dyn EventStore, next: NewWebhookEvent) {
    assert_eq!(store.append_webhook(next).unwrap().seq, 3);
    let all = store.read_after(0, 10).unwrap();
    assert_eq!(all.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert_eq!(all[0].operator_ids, vec![7]);
    assert_eq!(all[1].kind, EntryKind::Evidence);
    assert_eq!(store.read_after(1, 1).unwrap()[0].seq, 2);
    assert!(store.read_after(3, 10).unwrap().is_empty());
}

#[test]
fn one_sequence_across_kinds_duplicates_stored_once_and_reopen_continues() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db").join("gateway.sqlite3");
    a_new_log_stores_each_event_once(&SqliteStore::open(&path).unwrap());
    let store = SqliteStore::open(&path).unwrap();
    a_reopened_log_continues(
        &store,
        webhook("e2", "v2.conversation.pushed", "c1", "v1", &[7]),
    );
}

async fn answer(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

fn event(id: &str, event_type: &str) -> String {
    json!({
        "eventId": id, "eventType": event_type, "platform": "ha", "clientId": 42,
        "createdAt": "2026-01-01T00:00:00Z", "sentAt": "2026-01-01T00:00:01Z",
        "projectId": 7, "conversationId": format!("conv-{id}"), "operatorId": 101,
        "channel": "CHAT", "visitorId": format!("visitor-{id}"),
    })
    .to_string()
}

#[test]
fn hmac_matches_python_vectors() {
    assert_eq!(
        signature_header(SECRET.as_bytes(), VECTOR_JSON_BODY.as_bytes()),
        format!("sha256={VECTOR_JSON_HMAC}")
    );
    assert_eq!(
        signature_header(SECRET.as_bytes(), VECTOR_FORM_BODY.as_bytes()),
        format!("sha256={VECTOR_FORM_HMAC}")
    );
    assert_eq!(
        signature_header(b"Jefe", b"what do ya want for nothing?"),
        format!("sha256={RFC4231_2_HMAC}")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_signed_json_and_form_deliveries_are_stored() {
    let h = Harness::start().await;
    let (status, body) = h
        .post_webhook(
            VECTOR_JSON_BODY,
            "application/json",
            Some(&format!("sha256={VECTOR_JSON_HMAC}")),
            Some("corr-1"),
        )
        .await;
    assert_eq!(
        (status, &body),
        (200, &json!({"seq": 1, "duplicate": false}))
    );
    let (status, body) = h
        .post_webhook(
            VECTOR_FORM_BODY,
            "application/x-www-form-urlencoded; charset=utf-8",
            Some(&format!("sha256={}", VECTOR_FORM_HMAC.to_uppercase())),
            None,
        )
        .await;
    assert_eq!(
        (status, &body),
        (200, &json!({"seq": 2, "duplicate": false}))
    );

    let entries = h.entries();
    assert_eq!(entries.len(), 2);
    let json_entry = &entries[0];
    assert_eq!(json_entry.kind, EntryKind::Webhook);
    assert_eq!(json_entry.event_id.as_deref(), Some("vec-1"));
    assert_eq!(
        json_entry.event_type.as_deref(),
        Some("v2.conversation.pushed")
    );
    assert_eq!(
        json_entry.conversation_id.as_deref(),
        Some("0b8f6f3e-2b7a-4c4e-9a51-3d2f1c0e9a11")
    );
    assert_eq!(json_entry.operator_ids, vec![101]);
    let stored: Value = serde_json::from_str(&json_entry.payload).unwrap();
    let sent: Value = serde_json::from_str(VECTOR_JSON_BODY).unwrap();
    assert_eq!(stored, sent);

    let form_entry = &entries[1];
    assert_eq!(
        form_entry.event_type.as_deref(),
        Some("v2.conversation.closed")
    );
    assert_eq!(form_entry.operator_ids, vec![101, 102]);
    assert_eq!(form_entry.visitor_id.as_deref(), Some("v-2"));
    let stored: Value = serde_json::from_str(&form_entry.payload).unwrap();
    assert_eq!(stored["platform"], "sd");
    assert_eq!(stored["operatorIds"], json!(["101", "102"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_signatures_get_401_and_nothing_is_stored() {
    let h = Harness::start().await;
    let body = event("sig-1", "v2.conversation.pushed");
    let good = signature_header(SECRET.as_bytes(), body.as_bytes());
    let other_body = signature_header(SECRET.as_bytes(), b"{}");
    let wrong_secret = signature_header(b"not-our-secret", body.as_bytes());
    let mut flipped = good.clone().into_bytes();
    let last = flipped.len() - 1;
    flipped[last] = if flipped[last] == b'0' { b'1' } else { b'0' };
    let flipped = String::from_utf8(flipped).unwrap();
    let cases: &[(Option<&str>, &str)] = &[
        (None, "signature_missing"),
        (Some(""), "signature_malformed"),
        (Some(&good[7..]), "signature_malformed"),
        (
            Some(&good.replace("sha256=", "sha1=")),
            "signature_malformed",
        ),
        (Some(&good[..good.len() - 2]), "signature_malformed"),
        (Some(&other_body), "signature_invalid"),
        (Some(&wrong_secret), "signature_invalid"),
        (Some(&flipped), "signature_invalid"),
    ];
    for (sig, reason) in cases {
        let (status, answer) = h
            .post_webhook(body.clone(), "application/json", *sig, Some("corr"))
            .await;
        assert_eq!(status, 401, "for {sig:?}");
        assert_eq!(answer["error"], *reason, "for {sig:?}");
    }
    // The signed body, altered after signing.
    let tampered = body.replace("101", "102");
    let (status, _) = h
        .post_webhook(tampered, "application/json", Some(&good), None)
        .await;
    assert_eq!(status, 401);
    assert!(h.entries().is_empty());

    // The second iAdvize app's secret is accepted too.
    let sig = signature_header(SECOND_SECRET.as_bytes(), body.as_bytes());
    let (status, _) = h
        .post_webhook(body.clone(), "application/json", Some(&sig), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(h.entries().len(), 1);
    let (_, metrics) = h.get("/metrics").await;
    assert!(
        metrics.contains(
            "lockdesk_gateway_rejected_total{endpoint=\"webhook\",reason=\"signature_invalid\"} 4"
        ),
        "{metrics}"
    );
    assert!(!logs().contains(SECRET) && !logs().contains(SECOND_SECRET));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_delivery_is_stored_once() {
    let h = Harness::start().await;
    let body = event("retry-1", "v2.conversation.pushed");
    let sig = signature_header(SECRET.as_bytes(), body.as_bytes());
    let first = h
        .post_webhook(body.clone(), "application/json", Some(&sig), Some("corr-r"))
        .await;
    assert_eq!(first, (200, json!({"seq": 1, "duplicate": false})));
    let (status, _) = h.deliver(&event("other", "visitor.updated")).await;
    assert_eq!(status, 200);
    // iAdvize retries: same body, same correlation id, a new delivery id; and a burst of
    // concurrent retries racing each other.
    let retries = (0..16)
        .map(|_| h.post_webhook(body.clone(), "application/json", Some(&sig), Some("corr-r")));
    for (status, answer) in futures_join_all(retries).await {
        assert_eq!(
            (status, answer),
            (200, json!({"seq": 1, "duplicate": true}))
        );
    }
    let entries = h.entries();
    assert_eq!(
        entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![1, 2],
        "{entries:?}"
    );
    let (_, metrics) = h.get("/metrics").await;
    assert!(
        metrics.contains("lockdesk_gateway_duplicate_webhooks_total 16"),
        "{metrics}"
    );
    assert!(
        metrics.contains("lockdesk_gateway_ingested_total{kind=\"webhook\"} 2"),
        "{metrics}"
    );
}

/// Runs futures concurrently on the runtime (no extra crate for join_all).
async fn futures_join_all<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future,
{
    // The futures borrow the harness, so they cannot be spawned; poll them together instead.
    let mut pinned: Vec<_> = futures.map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in pinned.iter_mut().enumerate() {
            if outputs[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => outputs[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs
        .into_iter()
        .map(|o| o.expect("every future completed"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_bodies_get_their_error_and_the_gateway_keeps_serving() {
    let h = Harness::start().await;
    let deep = format!(
        r#"{{"eventId":"deep","eventType":"t","x":{}{}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let good = event("ok-0", "v2.conversation.pushed");
    let cases: Vec<(Vec<u8>, &str, u16, &str)> = vec![
        (
            good.as_bytes()[..good.len() / 2].to_vec(),
            "application/json",
            400,
            "malformed_json",
        ),
        (
            b"{\"eventId\":\"x\",\"eventType\":\"\xff\"}".to_vec(),
            "application/json",
            400,
            "invalid_utf8",
        ),
        (deep.into_bytes(), "application/json", 400, "malformed_json"),
        (
            b"{\"eventType\":\"t\"}".to_vec(),
            "application/json",
            400,
            "invalid_field",
        ),
        (
            b"{\"eventId\":\"e\"}".to_vec(),
            "application/json",
            400,
            "invalid_field",
        ),
        (
            b"\"just a string\"".to_vec(),
            "application/json",
            400,
            "malformed_json",
        ),
        (
            b"eventType=t".to_vec(),
            "application/x-www-form-urlencoded",
            400,
            "invalid_field",
        ),
        (
            b"eventId=%ff&eventType=t".to_vec(),
            "application/x-www-form-urlencoded",
            400,
            "invalid_utf8",
        ),
        (
            vec![b' '; lockdesk_gateway::MAX_BODY_BYTES + 1],
            "application/json",
            413,
            "body_too_large",
        ),
    ];
    for (i, (body, content_type, status, reason)) in cases.into_iter().enumerate() {
        let sig = signature_header(SECRET.as_bytes(), &body);
        let (got, answer) = h.post_webhook(body, content_type, Some(&sig), None).await;
        assert_eq!(
            (got, answer["error"].as_str()),
            (status, Some(reason)),
            "case {i}"
        );
        // Still serving, and the valid delivery after each hostile one is stored.
        let (ok, _) = h
            .deliver(&event(&format!("ok-{i}"), "visitor.updated"))
            .await;
        assert_eq!(ok, 200, "after case {i}");
    }
    // A body cut off mid-way at the transport level (Content-Length promises more).
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = h.gateway.as_ref().unwrap().local_addr();
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let body = event("cut", "v2.conversation.pushed");
        let head = signed_head(&body);
        stream.write_all(head.as_bytes()).await.unwrap();
        stream
            .write_all(&body.as_bytes()[..body.len() / 2])
            .await
            .unwrap();
        stream.shutdown().await.unwrap();
        let mut reply = Vec::new();
        // The server answers 400 or just closes; either way the read ends.
        let _ = stream.read_to_end(&mut reply).await;
        let reply = String::from_utf8_lossy(&reply);
        assert!(!reply.starts_with("HTTP/1.1 2"), "{reply}");
    }
    let (ok, _) = h.deliver(&event("after-cut", "visitor.updated")).await;
    assert_eq!(ok, 200);
    let ids: Vec<_> = h.entries().into_iter().filter_map(|e| e.event_id).collect();
    assert_eq!(ids.len(), 10, "{ids:?}");
    assert!(
        ids.iter()
            .all(|id| id.starts_with("ok-") || id == "after-cut"),
        "{ids:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_event_types_are_stored_not_dropped() {
    let h = Harness::start().await;
    let body = json!({"eventId": "u-1", "eventType": "brand.new.event", "platform": "ha",
                      "clientId": 1, "createdAt": "x", "sentAt": "y", "novel": {"nested": [1, 2]}})
    .to_string();
    let (status, _) = h.deliver(&body).await;
    assert_eq!(status, 200);
    let entries = h.entries();
    assert_eq!(entries[0].event_type.as_deref(), Some("brand.new.event"));
    let stored: Value = serde_json::from_str(&entries[0].payload).unwrap();
    assert_eq!(stored["novel"], json!({"nested": [1, 2]}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_event_types_with_invalid_routing_fields_are_stored_without_them() {
    let h = Harness::start().await;
    let odd = json!({"eventId": "u-odd", "eventType": "brand.new.event",
                     "visitorId": {"id": 5}, "conversationId": 42, "operatorId": "x"})
    .to_string();
    let (status, answer) = h.deliver(&odd).await;
    assert_eq!(status, 200, "{answer}");
    // A conversation move still needs them: refused, as documented.
    let push = json!({"eventId": "p-odd", "eventType": "v2.conversation.pushed",
                      "visitorId": 5, "conversationId": "c", "operatorId": 1})
    .to_string();
    let (status, answer) = h.deliver(&push).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (400, Some("invalid_field"))
    );
    let entries = h.entries();
    assert_eq!(entries.len(), 1);
    let e = &entries[0];
    assert_eq!(e.event_id.as_deref(), Some("u-odd"));
    assert_eq!((&e.visitor_id, &e.conversation_id), (&None, &None));
    assert!(e.operator_ids.is_empty());
    let stored: Value = serde_json::from_str(&e.payload).unwrap();
    assert_eq!(stored, serde_json::from_str::<Value>(&odd).unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evidence_is_authenticated_syntax_checked_and_never_logged() {
    let h = Harness::start().await;
    // Compact JWE shape (5 base64url segments); the content is opaque to the gateway.
    let token = "eyJhbGciOiJSU0EtT0FFUC0yNTYiLCJlbmMiOiJBMjU2R0NNIn0.Zm9yLXRlc3RzLW9ubHk.aXYtaXYtaXYt.Y2lwaGVydGV4dC1VTklRVUU3MzE.dGFnLXRhZy10YWc";
    let body = json!({"visitorId": "visitor-e", "conversationId": "conv-e", "token": token,
                      "presentedAt": "2026-01-01T00:00:00Z",
                      "source": {"domain": "shop.example", "device": "laptop", "app": "web"}})
    .to_string();
    for auth in [
        None,
        Some("Bearer wrong-credential-0000000"),
        Some(&format!("Basic {PROVIDER}")[..]),
    ] {
        let (status, answer) = h.post_evidence(&body, auth).await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (401, Some("unauthorized")),
            "{auth:?}"
        );
    }
    assert!(h.entries().is_empty());

    let bearer = format!("Bearer {PROVIDER}");
    let (status, answer) = h.post_evidence(&body, Some(&bearer)).await;
    assert_eq!((status, answer), (202, json!({"seq": 1})));
    let (status, _) = h.deliver(&event("between", "v2.conversation.pushed")).await;
    assert_eq!(status, 200);
    let jws =
        json!({"visitorId": "visitor-e", "token": "eyJhbGciOiJSUzI1NiJ9.e30.c2ln"}).to_string();
    let (status, answer) = h.post_evidence(&jws, Some(&bearer)).await;
    assert_eq!((status, answer), (202, json!({"seq": 3})));

    let bad_token = format!("{token}.extra");
    let bad: Vec<(String, &str)> = vec![
        (
            json!({"visitorId": "v", "token": bad_token}).to_string(),
            "token_syntax",
        ),
        (
            json!({"visitorId": "v", "token": "a.b"}).to_string(),
            "token_syntax",
        ),
        (
            json!({"visitorId": "v", "token": format!("{token}=")}).to_string(),
            "token_syntax",
        ),
        (json!({"token": token}).to_string(), "invalid_field"),
        (
            json!({"visitorId": "v", "token": token, "extra": 1}).to_string(),
            "invalid_field",
        ),
        (
            json!({"visitorId": "v", "token": token, "source": {"os": "x"}}).to_string(),
            "invalid_field",
        ),
        (
            json!({"visitorId": "v", "token": 12}).to_string(),
            "invalid_field",
        ),
        (
            format!("{{\"visitorId\":\"v\",\"token\":\"{token}\""),
            "malformed_json",
        ),
    ];
    for (body, reason) in bad {
        let (status, answer) = h.post_evidence(&body, Some(&bearer)).await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (400, Some(reason)),
            "{body}"
        );
        assert!(!answer.to_string().contains("VU5JUVVFNzMx"), "{answer}");
    }

    let entries = h.entries();
    assert_eq!(entries.len(), 3);
    assert_eq!(entries[0].kind, EntryKind::Evidence);
    assert_eq!(entries[0].visitor_id.as_deref(), Some("visitor-e"));
    assert_eq!(entries[0].conversation_id.as_deref(), Some("conv-e"));
    let stored: Value = serde_json::from_str(&entries[0].payload).unwrap();
    assert_eq!(stored["token"], token);
    assert_eq!(stored["source"]["device"], "laptop");

    // The logs saw this evidence (its fingerprint) but never the token nor any segment of it.
    let fingerprint = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(token.as_bytes()))[..12].to_owned()
    };
    let logs = logs();
    assert!(
        logs.contains(&format!("token_sha256=\"{fingerprint}\""))
            || logs.contains(&format!("token_sha256={fingerprint}")),
        "the capture works"
    );
    assert!(
        !logs.contains("Y2lwaGVydGV4dC1VTklRVUU3MzE"),
        "a token segment reached the logs"
    );
    assert!(!logs.contains(PROVIDER), "a credential reached the logs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_everything_and_the_sequence_continues() {
    let mut h = Harness::start().await;
    for id in ["r-1", "r-2"] {
        assert_eq!(h.deliver(&event(id, "v2.conversation.pushed")).await.0, 200);
    }
    let ev = json!({"visitorId": "v", "token": "aaaa.bbbb.cccc"}).to_string();
    assert_eq!(
        h.post_evidence(&ev, Some(&format!("Bearer {PROVIDER}")))
            .await
            .0,
        202
    );

    h.restart().await;
    let (status, answer) = h.deliver(&event("r-1", "v2.conversation.pushed")).await;
    assert_eq!(
        (status, answer),
        (200, json!({"seq": 1, "duplicate": true}))
    );
    let (status, answer) = h.deliver(&event("r-3", "v2.conversation.closed")).await;
    assert_eq!(
        (status, answer),
        (200, json!({"seq": 4, "duplicate": false}))
    );
    let entries = h.entries();
    assert_eq!(
        entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
    let (status, health) = h.get("/healthz").await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&health).unwrap()["lastSeq"],
        4
    );
    let (_, metrics) = h.get("/metrics").await;
    for line in [
        "lockdesk_gateway_stored_entries{kind=\"webhook\"} 3",
        "lockdesk_gateway_stored_entries{kind=\"evidence\"} 1",
        "lockdesk_gateway_last_seq 4",
        "lockdesk_gateway_store_up 1",
    ] {
        assert!(metrics.contains(line), "{line} missing from {metrics}");
    }
    h.gateway.take().unwrap().shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off_and_others_are_served() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    capture_logs();
    let dir = tempfile::tempdir().unwrap();
    let options = lockdesk_gateway::ServerOptions {
        header_read_timeout: std::time::Duration::from_millis(300),
        body_read_timeout: std::time::Duration::from_millis(300),
        ..Default::default()
    };
    let config = GatewayConfig::from_toml(&config()).unwrap();
    let gateway =
        lockdesk_gateway::start_with(config, dir.path(), "127.0.0.1:0".parse().unwrap(), options)
            .await
            .unwrap();
    let addr = gateway.local_addr();
    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"POST /webhooks/iadvize HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    // Meanwhile another client is served.
    let (status, _) = answer(
        reqwest::Client::new()
            .get(format!("http://{addr}/healthz"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    // The trickling connection is closed by the server (a bounded wait, far above the timeout).
    let mut reply = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        slow.read_to_end(&mut reply),
    )
    .await;
    assert!(
        read.is_ok(),
        "the server kept a connection with incomplete headers open"
    );
    assert!(!String::from_utf8_lossy(&reply).starts_with("HTTP/1.1 2"));

    // A body that stalls half-way gets 408 (again a bounded wait) and nothing is stored.
    let body = event("stalled", "v2.conversation.pushed");
    let mut stalled = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = signed_head(&body);
    stalled.write_all(head.as_bytes()).await.unwrap();
    stalled
        .write_all(&body.as_bytes()[..body.len() / 2])
        .await
        .unwrap();
    let mut status_line = [0u8; 12];
    tokio::time::timeout(
        std::time::Duration::from_secs(20),
        stalled.read_exact(&mut status_line),
    )
    .await
    .expect("no answer to a stalled body")
    .unwrap();
    assert_eq!(&status_line, b"HTTP/1.1 408");
    gateway.shutdown().await.unwrap();
    assert!(entries_in(dir.path()).is_empty());
}
