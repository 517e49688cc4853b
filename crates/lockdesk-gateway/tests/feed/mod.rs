//! The feed (`GET /v1/feed`) over real WebSockets on 127.0.0.1:0, with the gateway's real SQLite
//! file. Desks here are plain tokio-tungstenite clients speaking docs/feed-protocol.md.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use lockdesk_feed::{ClientMessage, Entry, ServerMessage, SUBPROTOCOL};
use lockdesk_gateway::{FeedOptions, Gateway, GatewayConfig, ServerOptions};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use super::{capture_logs, logs, restart_on, signature_header, PROVIDER, SECRET};

use lockdesk_testkit::gateway_config::{
    advisor, post_evidence, post_webhook, sam, seq_of, ALICE, BOB, SAM,
};

/// The test gateway with alice (operators 101 and 102), bob (202) and sam.
pub fn feed_config() -> String {
    lockdesk_testkit::gateway_config::config(
        &(advisor("alice", ALICE, &[101, 102]) + &advisor("bob", BOB, &[202]) + &sam()),
    )
}

/// No test waits longer than this for one frame (a bound on a hang, not a timing claim).
const PATIENCE: Duration = Duration::from_secs(20);

struct Feed {
    dir: tempfile::TempDir,
    gateway: Option<Gateway>,
    options: ServerOptions,
    http: reqwest::Client,
}

impl Feed {
    async fn start(feed: FeedOptions) -> Feed {
        capture_logs();
        let mut f = Feed {
            dir: tempfile::tempdir().unwrap(),
            gateway: None,
            options: ServerOptions {
                feed,
                ..Default::default()
            },
            http: reqwest::Client::new(),
        };
        f.restart().await;
        f
    }

    async fn restart(&mut self) {
        restart_on(
            &mut self.gateway,
            &feed_config(),
            self.dir.path(),
            self.options,
        )
        .await;
    }

    fn addr(&self) -> SocketAddr {
        self.gateway.as_ref().unwrap().local_addr()
    }

    /// Delivers a signed webhook; returns its seq.
    async fn webhook(&self, body: Value) -> u64 {
        seq_of(
            post_webhook(&self.http, self.addr(), SECRET, body.to_string()).await,
            200,
        )
        .await
    }

    async fn evidence(&self, visitor: &str, conversation: Option<&str>) -> u64 {
        let mut body = json!({"visitorId": visitor, "token": "aaaa.bbbb.cccc"});
        if let Some(c) = conversation {
            body["conversationId"] = json!(c);
        }
        seq_of(
            post_evidence(&self.http, self.addr(), body.to_string()).await,
            202,
        )
        .await
    }

    async fn metrics(&self) -> String {
        self.http
            .get(format!("http://{}/metrics", self.addr()))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The metrics hold this line (all of them shown if not).
    async fn assert_metric(&self, line: &str) {
        let metrics = self.metrics().await;
        assert!(metrics.contains(line), "{metrics}");
    }
}

fn pushed(id: &str, conv: &str, visitor: &str, operator: u64) -> Value {
    json!({"eventId": id, "eventType": "v2.conversation.pushed", "platform": "ha", "clientId": 1,
           "createdAt": "2026-01-01T00:00:00Z", "sentAt": "2026-01-01T00:00:00Z", "projectId": 1,
           "conversationId": conv, "operatorId": operator, "channel": "CHAT", "visitorId": visitor})
}

fn closed(id: &str, conv: &str, visitor: &str, operators: &[u64]) -> Value {
    json!({"eventId": id, "eventType": "v2.conversation.closed", "platform": "ha", "clientId": 1,
           "createdAt": "2026-01-01T00:00:00Z", "sentAt": "2026-01-01T00:00:00Z", "projectId": 1,
           "conversationId": conv, "operatorIds": operators, "channel": "CHAT", "visitorId": visitor})
}

fn visitor_updated(id: &str, visitor: &str, operator: u64) -> Value {
    json!({"eventId": id, "eventType": "visitor.updated", "platform": "ha", "clientId": 1,
           "createdAt": "2026-01-01T00:00:00Z", "sentAt": "2026-01-01T00:00:00Z",
           "operatorId": operator, "visitorId": visitor})
}

type Socket = WebSocketStream<TcpStream>;

/// What a desk saw next.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // a test's value, moved a few times
enum Next {
    Msg(ServerMessage),
    /// The server closed the connection (with this close code, if it sent one).
    Closed(Option<u16>),
}

struct Desk {
    ws: Socket,
}

/// The handshake request a desk sends.
fn request(
    addr: SocketAddr,
    credential: Option<&str>,
    after: &str,
    protocol: Option<&str>,
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    let mut req = format!("ws://{addr}/v1/feed?after={after}")
        .into_client_request()
        .unwrap();
    if let Some(c) = credential {
        req.headers_mut()
            .insert("authorization", format!("Bearer {c}").parse().unwrap());
    }
    if let Some(p) = protocol {
        req.headers_mut()
            .insert("sec-websocket-protocol", p.parse().unwrap());
    }
    req
}

/// Opens a feed connection; `Err(status)` when refused before the upgrade.
async fn try_connect(
    addr: SocketAddr,
    credential: Option<&str>,
    after: &str,
    protocol: Option<&str>,
    recv_buffer: Option<u32>,
) -> Result<Desk, u16> {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    if let Some(size) = recv_buffer {
        socket.set_recv_buffer_size(size).unwrap();
    }
    let stream = socket.connect(addr).await.unwrap();
    let config = WebSocketConfig::default().max_message_size(Some(16 << 20));
    match tokio_tungstenite::client_async_with_config(
        request(addr, credential, after, protocol),
        stream,
        Some(config),
    )
    .await
    {
        Ok((ws, response)) => {
            assert_eq!(
                response
                    .headers()
                    .get("sec-websocket-protocol")
                    .map(|v| v.to_str().unwrap()),
                Some(SUBPROTOCOL)
            );
            Ok(Desk { ws })
        }
        Err(WsError::Http(response)) => Err(response.status().as_u16()),
        Err(e) => panic!("handshake failed: {e}"),
    }
}

async fn connect(addr: SocketAddr, credential: &str, after: u64) -> Desk {
    let mut desk = try_connect(
        addr,
        Some(credential),
        &after.to_string(),
        Some(SUBPROTOCOL),
        None,
    )
    .await
    .unwrap_or_else(|status| panic!("refused with {status}"));
    match desk.next().await {
        Next::Msg(ServerMessage::Hello(h)) => assert_eq!(h.after, after),
        other => panic!("expected hello, got {other:?}"),
    }
    desk
}

impl Desk {
    async fn next(&mut self) -> Next {
        loop {
            let msg = tokio::time::timeout(PATIENCE, self.ws.next())
                .await
                .expect("the gateway sent nothing for 20 s");
            match msg {
                Some(Ok(Message::Text(t))) => {
                    return Next::Msg(ServerMessage::parse(t.as_str()).unwrap())
                }
                Some(Ok(Message::Close(frame))) => {
                    return Next::Closed(frame.map(|f| u16::from(f.code)))
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(other)) => panic!("unexpected frame {other:?}"),
                Some(Err(_)) | None => return Next::Closed(None),
            }
        }
    }

    async fn entry(&mut self) -> Entry {
        loop {
            match self.next().await {
                Next::Msg(ServerMessage::Entry(e)) => return e,
                Next::Msg(ServerMessage::Heartbeat { .. }) => continue,
                other => panic!("expected an entry, got {other:?}"),
            }
        }
    }

    /// Entries until (and including) `last_seq`; panics if a seq repeats or goes back.
    async fn entries_until(&mut self, last_seq: u64) -> Vec<Entry> {
        let mut out: Vec<Entry> = Vec::new();
        while out.last().map_or(0, |e| e.seq) < last_seq {
            let e = self.entry().await;
            if let Some(prev) = out.last() {
                assert!(e.seq > prev.seq, "seq {} after {}", e.seq, prev.seq);
            }
            out.push(e);
        }
        out
    }

    /// Waits for a heartbeat, skipping entries (returned).
    async fn until_heartbeat(&mut self) -> (Vec<Entry>, u64) {
        let mut entries = Vec::new();
        loop {
            match self.next().await {
                Next::Msg(ServerMessage::Entry(e)) => entries.push(e),
                Next::Msg(ServerMessage::Heartbeat { seq }) => return (entries, seq),
                other => panic!("expected a heartbeat, got {other:?}"),
            }
        }
    }

    async fn send(&mut self, msg: Message) {
        self.ws.send(msg).await.unwrap();
    }
}

fn seqs(entries: &[Entry]) -> Vec<u64> {
    entries.iter().map(|e| e.seq).collect()
}

fn fast() -> FeedOptions {
    FeedOptions {
        heartbeat: Duration::from_secs(1),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_come_before_the_upgrade() {
    let f = Feed::start(fast()).await;
    let addr = f.addr();
    let cases: &[(Option<&str>, &str, Option<&str>, u16)] = &[
        (None, "0", Some(SUBPROTOCOL), 401),
        (
            Some("wrong-credential-000000000"),
            "0",
            Some(SUBPROTOCOL),
            401,
        ),
        (Some(PROVIDER), "0", Some(SUBPROTOCOL), 401),
        (Some(SAM), "0", None, 400),
        (Some(SAM), "0", Some("lockdesk.feed.v2"), 400),
        (Some(SAM), "-1", Some(SUBPROTOCOL), 400),
        (Some(SAM), "x", Some(SUBPROTOCOL), 400),
        (Some(SAM), "99999999999999999999999", Some(SUBPROTOCOL), 400),
    ];
    for (credential, after, protocol, status) in cases {
        let got = try_connect(addr, *credential, after, *protocol, None).await;
        assert_eq!(
            got.err(),
            Some(*status),
            "{credential:?} {after} {protocol:?}"
        );
    }
    // A plain GET (no upgrade) with a valid credential: 426.
    let r = f
        .http
        .get(format!("http://{addr}/v1/feed"))
        .header("authorization", format!("Bearer {SAM}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 426);
    f.assert_metric("lockdesk_gateway_rejected_total{endpoint=\"feed\",reason=\"unauthorized\"} 3")
        .await;
    // The test's own WebSocket client (tungstenite) traces its request headers: that is the
    // desk's side, not the gateway's. No other line may hold a credential.
    for line in logs()
        .lines()
        .filter(|l| !l.contains(" tungstenite::handshake::client:"))
    {
        assert!(
            !line.contains(SAM) && !line.contains(ALICE),
            "credential logged: {line}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_with_no_connection_reads_nothing_and_a_desk_joining_later_misses_nothing() {
    let f = Feed::start(fast()).await;
    let mut last = 0;
    for i in 0..5 {
        last = f
            .webhook(pushed(&format!("idle-{i}"), "c1", "v1", 101))
            .await;
    }
    // The tail passes them (its dispatch position follows the log) without reading them.
    let routed = format!("lockdesk_gateway_feed_routed_seq {last}\n");
    let mut metrics = f.metrics().await;
    for _ in 0..200 {
        if metrics.contains(&routed) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
        metrics = f.metrics().await;
    }
    assert!(metrics.contains(&routed), "{metrics}");
    assert!(
        metrics.contains("lockdesk_gateway_feed_tail_entries_read_total 0\n"),
        "{metrics}"
    );
    // A desk connecting now reads them all in its catch-up, then follows live: the tail reads
    // again while it is connected.
    let mut sam_desk = connect(f.addr(), SAM, 0).await;
    assert_eq!(
        seqs(&sam_desk.entries_until(last).await),
        (1..=last).collect::<Vec<_>>()
    );
    let next = f.webhook(pushed("idle-live", "c1", "v1", 101)).await;
    assert_eq!(sam_desk.entry().await.seq, next);
    f.assert_metric("lockdesk_gateway_feed_tail_entries_read_total 1\n")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_beyond_the_end_closes_4004_and_the_end_itself_is_fine() {
    let f = Feed::start(fast()).await;
    let last = f.webhook(pushed("e1", "c1", "v1", 101)).await;
    let mut desk = try_connect(f.addr(), Some(SAM), "5", Some(SUBPROTOCOL), None)
        .await
        .unwrap();
    match desk.next().await {
        Next::Msg(ServerMessage::Hello(h)) => assert_eq!((h.after, h.last_seq), (5, last)),
        other => panic!("{other:?}"),
    }
    assert!(matches!(desk.next().await, Next::Closed(Some(4004))));
    // At the end exactly: nothing to send, then live.
    let mut desk = connect(f.addr(), SAM, last).await;
    let (entries, seq) = desk.until_heartbeat().await;
    assert!(entries.is_empty());
    assert_eq!(seq, last);
    let next = f.webhook(pushed("e2", "c2", "v2", 101)).await;
    assert_eq!(desk.entry().await.seq, next);
}

/// The scenario of the role-filtering tests. Returns the seqs each party must see.
struct Scenario {
    all: Vec<u64>,
    alice: Vec<u64>,
    bob: Vec<u64>,
    /// alice's push of c1, and the evidence it must bundle.
    alice_push: u64,
    alice_related: Vec<u64>,
    /// bob's push of c1 (transfer in), and the evidence it must bundle.
    bob_push: u64,
    bob_related: Vec<u64>,
}

async fn play_scenario(f: &Feed) -> Scenario {
    let mut all = Vec::new();
    let mut alice = Vec::new();
    let mut bob = Vec::new();
    // Evidence before the conversation reaches anyone: nobody's yet.
    let ev1 = f.evidence("v1", None).await;
    let ev2 = f.evidence("v1", Some("c1")).await;
    all.extend([ev1, ev2]);
    // Someone else's conversation (operator 303, no subscriber) and its visitor's evidence.
    let other = f.webhook(pushed("o1", "c9", "v9", 303)).await;
    let other_ev = f.evidence("v9", None).await;
    all.extend([other, other_ev]);
    // c1 pushed to alice's second operator id: she gets it with ev1, ev2 bundled.
    let alice_push = f.webhook(pushed("p1", "c1", "v1", 102)).await;
    all.push(alice_push);
    alice.push(alice_push);
    let ev3 = f.evidence("v1", None).await;
    let upd = f.webhook(visitor_updated("u1", "v1", 999)).await;
    all.extend([ev3, upd]);
    alice.extend([ev3, upd]);
    // bob's own conversation.
    let bob_own = f.webhook(pushed("p2", "c2", "v2", 202)).await;
    let bob_ev = f.evidence("v2", Some("c2")).await;
    all.extend([bob_own, bob_ev]);
    bob.extend([bob_own, bob_ev]);
    // Transfer c1 from alice to bob: both see the push (alice: it left; bob: with ev1..ev3).
    let bob_push = f.webhook(pushed("t1", "c1", "v1", 202)).await;
    all.push(bob_push);
    alice.push(bob_push);
    bob.push(bob_push);
    // From now on, v1's evidence is bob's only.
    let ev4 = f.evidence("v1", None).await;
    all.push(ev4);
    bob.push(ev4);
    // The close names both operators: both receive it.
    let close = f.webhook(closed("x1", "c1", "v1", &[102, 202])).await;
    all.push(close);
    alice.push(close);
    bob.push(close);
    // After the close, v1 is nobody's.
    let ev5 = f.evidence("v1", None).await;
    all.push(ev5);
    // An event type we do not know, naming alice's operator id.
    let novel = f
        .webhook(json!({"eventId": "n1", "eventType": "brand.new", "operatorIds": [101]}))
        .await;
    all.push(novel);
    alice.push(novel);
    // Transfer back in to alice (c2 from bob): alice gets c2's earlier evidence.
    let back = f.webhook(pushed("t2", "c2", "v2", 101)).await;
    all.push(back);
    alice.push(back);
    bob.push(back);
    Scenario {
        all,
        alice,
        bob,
        alice_push,
        alice_related: vec![ev1, ev2],
        bob_push,
        bob_related: vec![ev1, ev2, ev3],
    }
}

fn related_of(entries: &[Entry], seq: u64) -> Vec<u64> {
    entries
        .iter()
        .find(|e| e.seq == seq)
        .map(|e| e.related.iter().map(|r| r.seq).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_filtering_live_and_replayed_agree() {
    let f = Feed::start(fast()).await;
    let addr = f.addr();
    // Connected from the start (live)...
    let mut alice_live = connect(addr, ALICE, 0).await;
    let mut bob_live = connect(addr, BOB, 0).await;
    let mut sam_live = connect(addr, SAM, 0).await;
    let s = play_scenario(&f).await;
    let last = *s.all.last().unwrap();
    let alice_got = alice_live.entries_until(*s.alice.last().unwrap()).await;
    let bob_got = bob_live.entries_until(*s.bob.last().unwrap()).await;
    let sam_got = sam_live.entries_until(last).await;
    assert_eq!(seqs(&sam_got), s.all);
    assert_eq!(seqs(&alice_got), s.alice);
    assert_eq!(seqs(&bob_got), s.bob);
    assert_eq!(related_of(&alice_got, s.alice_push), s.alice_related);
    assert_eq!(related_of(&bob_got, s.bob_push), s.bob_related);
    // alice sees the transfer out, without the bundle (that is bob's).
    assert!(related_of(&alice_got, s.bob_push).is_empty());
    // Supervisors get everything once, never bundles.
    assert!(sam_got.iter().all(|e| e.related.is_empty()));
    // Bundled evidence carries its payload (the token).
    let bundle = &alice_got
        .iter()
        .find(|e| e.seq == s.alice_push)
        .unwrap()
        .related;
    assert_eq!(bundle[0].payload["token"], "aaaa.bbbb.cccc");
    // Nothing else arrives: the next frame is a heartbeat at the log's end.
    let (extra, hb) = alice_live.until_heartbeat().await;
    assert!(extra.is_empty(), "{extra:?}");
    assert_eq!(hb, last);

    // ...and connected afterwards, from 0 and from every cut point: the same view.
    for (credential, expected, got) in [
        (ALICE, &s.alice, &alice_got),
        (BOB, &s.bob, &bob_got),
        (SAM, &s.all, &sam_got),
    ] {
        for after in [
            0,
            s.alice_push - 1,
            s.alice_push,
            s.bob_push - 1,
            s.bob_push,
        ] {
            let mut desk = connect(addr, credential, after).await;
            let want: Vec<u64> = expected.iter().copied().filter(|&q| q > after).collect();
            let (replayed, hb) = desk.until_heartbeat().await;
            assert_eq!(seqs(&replayed), want, "{credential} after {after}");
            assert_eq!(hb, last);
            for e in &replayed {
                let live = got.iter().find(|g| g.seq == e.seq).unwrap();
                assert_eq!(e, live, "replayed entry {} differs from live", e.seq);
            }
        }
    }
    // The same after a restart (the audience is stored, the open conversations rebuilt).
    let mut f = f;
    f.restart().await;
    let mut alice = connect(f.addr(), ALICE, 0).await;
    let (replayed, _) = alice.until_heartbeat().await;
    assert_eq!(replayed, alice_got);
    // And routing continues from the rebuilt state: c2 is alice's now, so v2's evidence is hers.
    let ev = f.evidence("v2", None).await;
    assert_eq!(alice.entry().await.seq, ev);
    f.assert_metric("lockdesk_gateway_feed_subscribers{role=\"advisor\"} 1")
        .await;
    // The PostgreSQL writer's lines only come with that store (tests/postgres, the CLI's).
    let metrics = f.metrics().await;
    assert!(!metrics.contains("lockdesk_gateway_pg_"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn desks_cut_off_at_random_points_resume_with_nothing_lost_or_repeated() {
    let f = Feed::start(fast()).await;
    let addr = f.addr();
    const N: usize = 400;
    let seed = std::env::var("LOCKDESK_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_f00d_u64);
    eprintln!("seed {seed} (LOCKDESK_TEST_SEED to replay)");
    // Ingest concurrently with the desks: conversations to alice (101), bob (202) and nobody,
    // with evidence, transfers and closes.
    let producer = {
        let http = f.http.clone();
        let gateway_addr = addr;
        tokio::spawn(async move {
            let f = Producer {
                http,
                addr: gateway_addr,
            };
            let mut rng = fastrand::Rng::with_seed(seed);
            for i in 0..N {
                let conv = format!("c{}", rng.usize(0..20));
                let visitor = format!("v{}", rng.usize(0..15));
                let op = [101, 202, 303][rng.usize(0..3)];
                match rng.usize(0..10) {
                    0..=3 => f.evidence(&visitor).await,
                    4..=6 => {
                        f.webhook(pushed(&format!("p{i}"), &conv, &visitor, op))
                            .await
                    }
                    7 => {
                        f.webhook(closed(&format!("x{i}"), &conv, &visitor, &[op]))
                            .await
                    }
                    _ => {
                        f.webhook(visitor_updated(&format!("u{i}"), &visitor, op))
                            .await
                    }
                };
            }
        })
    };
    // Each desk keeps a cursor (the last seq applied: entry or heartbeat) and is cut off after a
    // random number of frames, then reconnects with it.
    let mut desks = Vec::new();
    for (i, credential) in [SAM, ALICE, BOB].into_iter().enumerate() {
        desks.push(tokio::spawn(async move {
            let mut rng = fastrand::Rng::with_seed(seed ^ (i as u64 + 1));
            let mut cursor = 0u64;
            let mut applied: Vec<Entry> = Vec::new();
            let mut connections = 0;
            let mut idle_heartbeats = 0;
            // Until the log is complete and this desk saw two heartbeats in a row at its end.
            while idle_heartbeats < 2 {
                connections += 1;
                let mut desk = connect(addr, credential, cursor).await;
                let cut_after = rng.usize(1..40);
                for _ in 0..cut_after {
                    match desk.next().await {
                        Next::Msg(ServerMessage::Entry(e)) => {
                            assert!(e.seq > cursor, "{credential}: {} after {cursor}", e.seq);
                            cursor = e.seq;
                            applied.push(e);
                            idle_heartbeats = 0;
                        }
                        Next::Msg(ServerMessage::Heartbeat { seq }) => {
                            assert!(seq >= cursor);
                            cursor = seq;
                            if seq >= N as u64 {
                                idle_heartbeats += 1;
                                if idle_heartbeats >= 2 {
                                    break;
                                }
                            }
                        }
                        other => panic!("{credential}: {other:?}"),
                    }
                }
                // Cut: drop the socket without a close handshake.
                drop(desk);
            }
            (credential, applied, connections)
        }));
    }
    producer.await.unwrap();
    let mut views = BTreeMap::new();
    for d in desks {
        let (credential, applied, connections) = d.await.unwrap();
        assert!(
            connections > 3,
            "{credential} was cut only {connections} times"
        );
        views.insert(credential, applied);
    }
    // The reference: each view read in one go by a desk that never disconnected.
    for (credential, applied) in views {
        let mut desk = connect(addr, credential, 0).await;
        let (reference, hb) = desk.until_heartbeat().await;
        assert_eq!(hb, N as u64);
        assert_eq!(seqs(&applied), seqs(&reference), "{credential}");
        assert_eq!(
            applied, reference,
            "{credential}: same entries, same bundles"
        );
        if credential == SAM {
            assert_eq!(seqs(&applied), (1..=N as u64).collect::<Vec<_>>());
        } else {
            assert!(!applied.is_empty() && applied.len() < N, "{credential}");
        }
    }
}

struct Producer {
    http: reqwest::Client,
    addr: SocketAddr,
}

impl Producer {
    async fn webhook(&self, body: Value) {
        let r = post_webhook(&self.http, self.addr, SECRET, body.to_string()).await;
        assert_eq!(r.status(), 200);
    }

    async fn evidence(&self, visitor: &str) {
        let body = json!({"visitorId": visitor, "token": "aaaa.bbbb.cccc"}).to_string();
        let r = post_evidence(&self.http, self.addr, body).await;
        assert_eq!(r.status(), 202);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_desk_is_told_to_resume_and_never_holds_back_a_fast_one() {
    // A queue far larger than a desk that keeps up ever needs, even on a loaded machine; the
    // heartbeat (and so the 3-heartbeat write stall limit) longer than the test.
    let f = Feed::start(FeedOptions {
        queue: 64,
        heartbeat: Duration::from_secs(30),
    })
    .await;
    let addr = f.addr();
    // The slow desk: a tiny receive buffer, and it reads nothing until the end.
    let mut slow = try_connect(addr, Some(SAM), "0", Some(SUBPROTOCOL), Some(4096))
        .await
        .unwrap();
    let mut fast = connect(addr, SAM, 0).await;
    // 4 KiB events, more in all than the kernel buffers (the slow desk's 4 KiB receive window
    // keeps the gateway's send buffer small) and the queue can hold for the slow desk.
    const N: u64 = 1500;
    let reader = tokio::spawn(async move { fast.entries_until(N).await });
    let padding = "x".repeat(4 * 1024);
    // One delivery at a time (each answered once durable): the fast desk, reading as they come,
    // never falls 64 entries behind; the slow one, reading nothing, must.
    for i in 0..N {
        let mut body = pushed(&format!("s{i}"), &format!("c{i}"), "v", 101);
        body["padding"] = json!(padding);
        f.webhook(body).await;
    }
    // The fast desk has everything, in order, while the slow one has read nothing yet.
    let got = reader.await.unwrap();
    assert_eq!(seqs(&got), (1..=N).collect::<Vec<_>>());
    // The slow desk: hello, some entries in order, then `resume` with the last one it was sent,
    // then close 4001.
    let mut last = 0;
    let mut resume = None;
    let mut saw_hello = false;
    loop {
        match slow.next().await {
            Next::Msg(ServerMessage::Hello(_)) => saw_hello = true,
            Next::Msg(ServerMessage::Entry(e)) => {
                assert_eq!(e.seq, last + 1);
                last = e.seq;
            }
            Next::Msg(ServerMessage::Heartbeat { seq }) => last = last.max(seq),
            Next::Msg(ServerMessage::Resume { after, reason }) => {
                assert_eq!(reason, "overflow");
                resume = Some(after);
            }
            Next::Closed(code) => {
                assert_eq!(code, Some(lockdesk_feed::close::RESUME));
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(saw_hello);
    assert_eq!(resume, Some(last), "resume names the last entry sent");
    assert!(last < N, "the slow desk was never cut off");
    // It resumes from its cursor and gets exactly the rest.
    let mut again = connect(addr, SAM, last).await;
    let rest = again.entries_until(N).await;
    assert_eq!(seqs(&rest), (last + 1..=N).collect::<Vec<_>>());
    f.assert_metric("lockdesk_gateway_feed_overflows_total 1")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_close_4000_and_others_are_unaffected() {
    let f = Feed::start(fast()).await;
    let addr = f.addr();
    let mut bystander = connect(addr, SAM, 0).await;
    let huge = "x".repeat(lockdesk_gateway::MAX_CLIENT_FRAME + 1);
    let cases: Vec<(Message, &str)> = vec![
        (Message::Binary(vec![1, 2, 3].into()), "frame_binary"),
        (Message::Text("not json".into()), "frame_malformed"),
        (
            Message::Text("{\"type\":\"ack\",\"seq\":\"x\"}".into()),
            "frame_malformed",
        ),
        (Message::Text("[1,2]".into()), "frame_malformed"),
        (Message::Text(huge.into()), "frame_too_large"),
    ];
    for (i, (msg, reason)) in cases.into_iter().enumerate() {
        let mut desk = connect(addr, ALICE, 0).await;
        desk.send(msg).await;
        loop {
            match desk.next().await {
                Next::Closed(code) => {
                    assert_eq!(code, Some(lockdesk_feed::close::PROTOCOL_ERROR), "{reason}");
                    break;
                }
                Next::Msg(ServerMessage::Heartbeat { .. } | ServerMessage::Entry(_)) => {}
                other => panic!("{reason}: {other:?}"),
            }
        }
        // The other desk is still served.
        let seq = f.webhook(pushed(&format!("b{i}"), "c", "v", 101)).await;
        assert_eq!(bystander.entry().await.seq, seq);
    }
    // Messages we do not know, acks and pings are fine.
    let mut desk = connect(addr, ALICE, 5).await;
    desk.send(Message::Text("{\"type\":\"future\",\"x\":1}".into()))
        .await;
    desk.send(Message::Ping(vec![1].into())).await;
    desk.send(Message::Text(
        ClientMessage::Ack { seq: 3 }.to_text().into(),
    ))
    .await;
    let seq = f.webhook(pushed("after", "c", "v", 101)).await;
    assert_eq!(desk.entry().await.seq, seq);
    assert_eq!(bystander.entry().await.seq, seq);
    // A flood of frames on one connection: that desk and the others keep being served.
    for i in 0..5_000u64 {
        desk.ws
            .feed(Message::Text(
                ClientMessage::Ack { seq: i % 7 }.to_text().into(),
            ))
            .await
            .unwrap();
    }
    desk.ws.flush().await.unwrap();
    let seq = f.webhook(pushed("after-flood", "c", "v", 101)).await;
    assert_eq!(desk.entry().await.seq, seq);
    assert_eq!(bystander.entry().await.seq, seq);
    // The acks of the flood are processed by that connection's reader task: wait until the
    // lag metric has seen one (bounded), then check everything.
    let mut metrics = f.metrics().await;
    for _ in 0..100 {
        if metrics.contains("lockdesk_gateway_feed_ack_lag{subscriber=\"alice\"}") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        metrics = f.metrics().await;
    }
    for line in [
        "lockdesk_gateway_rejected_total{endpoint=\"feed\",reason=\"frame_binary\"} 1",
        "lockdesk_gateway_rejected_total{endpoint=\"feed\",reason=\"frame_malformed\"} 3",
        "lockdesk_gateway_rejected_total{endpoint=\"feed\",reason=\"frame_too_large\"} 1",
        "lockdesk_gateway_feed_ack_lag{subscriber=\"alice\"}",
    ] {
        assert!(metrics.contains(line), "{line} missing from {metrics}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_restart_closes_1001_and_desks_resume() {
    let mut f = Feed::start(fast()).await;
    let mut desk = connect(f.addr(), SAM, 0).await;
    let a = f.webhook(pushed("r1", "c1", "v1", 101)).await;
    let b = f.evidence("v1", None).await;
    assert_eq!(seqs(&desk.entries_until(b).await), vec![a, b]);
    let cursor = b;
    // Shutdown closes the desk's connection with 1001 (going away).
    let restart = f.restart();
    let (_, closed) = tokio::join!(restart, desk.next());
    assert!(matches!(closed, Next::Closed(Some(1001))), "{closed:?}");
    let c = f.webhook(pushed("r2", "c2", "v1", 101)).await;
    let mut desk = connect(f.addr(), SAM, cursor).await;
    assert_eq!(desk.entry().await.seq, c);
    let d = f.evidence("v1", None).await;
    assert_eq!(desk.entry().await.seq, d);
}

impl Desk {
    /// Reads past heartbeats and entries to the `resume` / close that ends the connection.
    async fn until_closed(&mut self) -> (Option<ServerMessage>, Option<u16>) {
        let mut resume = None;
        loop {
            match self.next().await {
                Next::Msg(m @ ServerMessage::Resume { .. }) => resume = Some(m),
                Next::Msg(_) => continue,
                Next::Closed(code) => return (resume, code),
            }
        }
    }
}

/// `feed_config()` after an operator's edit: bob removed, alice moved to operator 101 only, a new
/// supervisor dana, the webhook secret rotated; sam untouched.
const RELOADED_CONFIG: &str = r#"
[[webhook]]
name = "main"
secret = "whsec-test-main-rotated"

[[provider]]
name = "brand"
credential = "provider-credential-0123456789"

[[subscriber]]
name = "alice"
credential = "alice-credential-0123456789"
role = "advisor"
operator_ids = [101]

[[subscriber]]
name = "sam"
credential = "sam-credential-0123456789ab"
role = "supervisor"

[[subscriber]]
name = "dana"
credential = "dana-credential-0123456789ab"
role = "supervisor"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configuration_reload_revokes_with_4003_reconfigures_with_resume_and_admits_new_desks() {
    let f = Feed::start(fast()).await;
    let first = f.webhook(pushed("r1", "c1", "v1", 101)).await;
    let mut sam = connect(f.addr(), SAM, 0).await;
    let mut bob = connect(f.addr(), BOB, 0).await;
    let mut alice = connect(f.addr(), ALICE, 0).await;
    assert_eq!(seqs(&sam.entries_until(first).await), vec![first]);
    assert_eq!(seqs(&alice.entries_until(first).await), vec![first]);

    // An invalid configuration (two subscribers with one credential) is refused, nothing changes.
    let clash = format!(
        "{}\n[[subscriber]]\nname = \"eve\"\ncredential = \"{SAM}\"\nrole = \"supervisor\"\n",
        feed_config()
    );
    let refused = f
        .gateway
        .as_ref()
        .unwrap()
        .reload(GatewayConfig::from_toml(&clash).unwrap());
    assert!(refused.is_err(), "{refused:?}");
    let config = GatewayConfig::from_toml(RELOADED_CONFIG).unwrap();
    let report = f.gateway.as_ref().unwrap().reload(config).unwrap();
    assert_eq!(report.subscribers, 3);
    assert_eq!(report.revoked, vec!["bob".to_owned()]);
    assert_eq!(report.changed, vec!["alice".to_owned()]);

    // Bob's credential is gone: 4003, and it no longer opens the feed.
    assert_eq!(bob.until_closed().await, (None, Some(4003)));
    assert_eq!(
        try_connect(f.addr(), Some(BOB), "0", Some(SUBPROTOCOL), None)
            .await
            .err(),
        Some(401)
    );
    // Alice's subscriber changed: resume from her cursor, then 4001; she reconnects as the new one.
    let (resume, code) = alice.until_closed().await;
    assert_eq!(code, Some(4001));
    match resume {
        Some(ServerMessage::Resume { after, reason }) => {
            assert_eq!(after, first);
            assert_eq!(reason, lockdesk_feed::RESUME_RECONFIGURED);
        }
        other => panic!("expected resume, got {other:?}"),
    }
    let mut alice = try_connect(
        f.addr(),
        Some(ALICE),
        &first.to_string(),
        Some(SUBPROTOCOL),
        None,
    )
    .await
    .unwrap();
    match alice.next().await {
        Next::Msg(ServerMessage::Hello(h)) => assert_eq!(h.operator_ids, vec![101]),
        other => panic!("expected hello, got {other:?}"),
    }

    // The old webhook secret is refused, the rotated one accepted; sam, untouched, keeps his
    // connection and receives it, and so does the new supervisor.
    let body = pushed("r2", "c2", "v2", 101).to_string();
    let post = |secret: &'static str| {
        f.http
            .post(format!("http://{}/webhooks/iadvize", f.addr()))
            .header("content-type", "application/json")
            .header(
                "x-iadvize-signature",
                signature_header(secret.as_bytes(), body.as_bytes()),
            )
            .body(body.clone())
            .send()
    };
    assert_eq!(post(SECRET).await.unwrap().status(), 401);
    let r = post("whsec-test-main-rotated").await.unwrap();
    assert_eq!(r.status(), 200);
    let second = serde_json::from_str::<Value>(&r.text().await.unwrap()).unwrap()["seq"]
        .as_u64()
        .unwrap();
    assert_eq!(seqs(&sam.entries_until(second).await), vec![second]);
    let mut dana = connect(f.addr(), "dana-credential-0123456789ab", 0).await;
    assert_eq!(seqs(&dana.entries_until(second).await), vec![first, second]);
    assert_eq!(seqs(&alice.entries_until(second).await), vec![second]);
    assert!(f
        .metrics()
        .await
        .contains(r#"rejected_total{endpoint="feed",reason="revoked"} 1"#));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_reaches_a_desk_in_the_middle_of_a_long_catch_up() {
    let f = Feed::start(fast()).await;
    // Several pages of 4 KiB entries: far more than the kernel buffers between the gateway and
    // a desk with a 4 KiB receive window that reads nothing yet.
    const N: u64 = 1200;
    let padding = "x".repeat(4 * 1024);
    for i in 0..N {
        let mut body = pushed(&format!("h{i}"), &format!("c{i}"), "v", 101);
        body["padding"] = json!(padding);
        f.webhook(body).await;
    }
    let mut slow = try_connect(f.addr(), Some(SAM), "0", Some(SUBPROTOCOL), Some(4096))
        .await
        .unwrap();
    // The gateway is now blocked writing the catch-up to a desk that does not read.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let full = feed_config();
    let without_sam = full.split("[[subscriber]]\nname = \"sam\"").next().unwrap();
    let report = f
        .gateway
        .as_ref()
        .unwrap()
        .reload(GatewayConfig::from_toml(without_sam).unwrap())
        .unwrap();
    assert_eq!(report.revoked, vec!["sam".to_owned()]);
    // Reading now: entries in order, then 4003 long before the end of the history.
    let mut last = 0;
    let code = loop {
        match slow.next().await {
            Next::Msg(ServerMessage::Entry(e)) => {
                assert_eq!(e.seq, last + 1);
                last = e.seq;
            }
            Next::Msg(_) => {}
            Next::Closed(code) => break code,
        }
    };
    assert_eq!(code, Some(4003));
    assert!(
        last < N,
        "the whole history ({last} entries) went to a revoked desk"
    );
}

/// The stored payload reaches the desk byte for byte (key order, whitespace and escapes that
/// re-serialising would change), with the routing fields the gateway read from it; a
/// form-encoded push (its `operatorId` a digit string) reaches its advisor with the operator in
/// those fields.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payloads_are_relayed_as_stored_with_their_routing_fields() {
    let f = Feed::start(fast()).await;
    let post = |content_type: &'static str, body: &'static str| {
        let request = f
            .http
            .post(format!("http://{}/webhooks/iadvize", f.addr()))
            .header("content-type", content_type)
            .header(
                "x-iadvize-signature",
                signature_header(SECRET.as_bytes(), body.as_bytes()),
            )
            .body(body);
        async move {
            let r = request.send().await.unwrap();
            assert_eq!(r.status(), 200);
            serde_json::from_str::<Value>(&r.text().await.unwrap()).unwrap()["seq"]
                .as_u64()
                .unwrap()
        }
    };
    let json_body =
        "{ \"visitorId\" : \"v-json\\u00e9\",\n  \"eventType\": \"v2.conversation.pushed\", \
                     \"operatorId\":101, \"eventId\":\"raw-1\", \"conversationId\":\"c-json\", \
                     \"channel\":\"CHAT\", \"score\": 1.50 }";
    let json_seq = post("application/json", json_body).await;
    let form_seq = post(
        "application/x-www-form-urlencoded",
        "eventId=raw-2&eventType=v2.conversation.pushed&conversationId=c-form&visitorId=v-form\
         &channel=CHAT&operatorId=102",
    )
    .await;

    let mut alice = connect(f.addr(), ALICE, 0).await;
    let mut texts = Vec::new();
    while texts.len() < 2 {
        let msg = tokio::time::timeout(PATIENCE, alice.ws.next())
            .await
            .expect("the gateway sent nothing for 20 s");
        if let Some(Ok(Message::Text(t))) = msg {
            if t.as_str().starts_with(r#"{"type":"entry""#) {
                texts.push(t.as_str().to_owned());
            }
        }
    }
    assert!(
        texts[0].contains(&format!(r#""payload":{json_body}"#)),
        "{}",
        texts[0]
    );
    let entries: Vec<Entry> = texts
        .iter()
        .map(|t| match ServerMessage::parse(t).unwrap() {
            ServerMessage::Entry(e) => e,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(seqs(&entries), vec![json_seq, form_seq]);
    let routing = |e: &Entry| {
        (
            e.routing.conversation_id.clone(),
            e.routing.visitor_id.clone(),
            e.routing.operator_ids.clone(),
        )
    };
    assert_eq!(
        routing(&entries[0]),
        (
            Some("c-json".into()),
            Some("v-jsoné".into()),
            Some(vec![101])
        )
    );
    assert_eq!(
        routing(&entries[1]),
        (
            Some("c-form".into()),
            Some("v-form".into()),
            Some(vec![102])
        )
    );
    assert_eq!(entries[1].payload["operatorId"], json!("102"));
}
