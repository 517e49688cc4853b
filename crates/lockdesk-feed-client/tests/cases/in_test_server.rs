//! Against the in-test server: it plays peers the real gateway never is (broken network, garbage
//! frames, chosen close codes, a 401) and checks exactly what the client sends.

// tungstenite's handshake callback type fixes the large error (an HTTP response).
#![allow(clippy::result_large_err)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use lockdesk_feed::ClientMessage;
use lockdesk_feed_client::{
    Backoff, Config, ConfigError, Credential, DisconnectReason, FeedClient, State, StopReason,
};
use tokio_tungstenite::tungstenite::Message;

use crate::support::*;

fn config(url: &str) -> Config {
    let mut c = Config::new(url, Credential::new(CREDENTIAL));
    c.backoff = Backoff {
        initial: Duration::from_millis(50),
        max: Duration::from_millis(200),
        healthy_after: Duration::from_secs(3600),
    };
    c
}

/// A well-behaved peer: serves `1..=n` after the client's cursor, then waits for the client to
/// leave, recording the acks it got.
async fn healthy_server(n: u64, acks: Arc<Mutex<Vec<u64>>>) -> TestServer {
    TestServer::start(None, move |mut c: Conn| {
        let acks = acks.clone();
        async move {
            serve_range(&mut c.ws, c.after, n, n, 15).await;
            while let Some(Ok(m)) = c.ws.next().await {
                if let Message::Text(t) = m {
                    if let Ok(ClientMessage::Ack { seq }) = ClientMessage::parse(t.as_str()) {
                        acks.lock().unwrap().push(seq);
                    }
                }
            }
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_bearer_and_subprotocol_on_the_upgrade_resumes_from_the_cursor_and_batches() {
    capture_logs();
    let acks: Arc<Mutex<Vec<u64>>> = Arc::default();
    let server = healthy_server(3000, acks.clone()).await;
    let sink = Memory::new(1000);
    // An http:// URL with no path means the gateway's /v1/feed over ws://.
    let url = format!("http://{}", server.addr);
    let client = FeedClient::spawn(config(&url), sink.clone()).unwrap();
    let mut state = client.state();
    assert_connected(
        &mut state,
        "connected",
        format!("ws://{}/v1/feed", server.addr),
        1000,
        3000,
    )
    .await;
    sink.wait_cursor(3000).await;
    // The gateway hears how far the desk got (its lag metric).
    tokio::time::timeout(PATIENCE, async {
        while acks.lock().unwrap().last() != Some(&3000) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the last ack never arrived");
    assert!(acks.lock().unwrap().windows(2).all(|w| w[0] < w[1]));
    assert_eq!(client.shutdown().await, StopReason::Shutdown);

    let s = sink.lock();
    assert_eq!(s.applied, (1001..=3000).collect::<Vec<_>>());
    // Entries that arrive together are committed together (at most max_batch per call).
    assert!(
        s.batch_sizes.len() < 2000,
        "one apply per entry: {} calls",
        s.batch_sizes.len()
    );
    assert!(s.batch_sizes.iter().all(|&n| n <= 500));
    drop(s);

    let up = server.upgrades();
    assert_eq!(up.len(), 1);
    assert_eq!(up[0].uri, "/v1/feed?after=1000");
    assert!(!up[0].uri.contains(CREDENTIAL));
    assert_eq!(
        up[0].authorization.as_deref(),
        Some(format!("Bearer {CREDENTIAL}").as_str())
    );
    assert_eq!(up[0].protocols.as_deref(), Some("lockdesk.feed.v1"));
    let counters = client.counters();
    assert_eq!(counters.entries_applied, 2000);
    assert_eq!(counters.applied_seq, 3000);
    assert_eq!(counters.connections, 1);
    assert!(
        !logs().contains(CREDENTIAL),
        "the credential reached the logs"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_cuts_lose_nothing_and_repeat_nothing() {
    capture_logs();
    const N: u64 = 2000;
    // Every connection serves a few hundred entries past the cursor, then vanishes without a
    // close frame (a cut cable); sometimes right in the middle of sending.
    let server = TestServer::start(None, move |mut c: Conn| async move {
        let cut_at = (c.after + 150 + (c.index as u64 * 37) % 200).min(N);
        c.ws.send(hello(c.after, N, 15)).await.unwrap();
        for seq in c.after + 1..=cut_at {
            if c.ws.feed(entry(seq)).await.is_err() {
                return;
            }
        }
        let _ = c.ws.flush().await;
        if cut_at == N {
            let _ = read_client(&mut c.ws).await;
        }
        // Dropping the stream resets the TCP connection.
    })
    .await;
    let sink = Memory::new(0);
    let mut cfg = config(&server.url());
    cfg.backoff.initial = Duration::from_millis(1);
    cfg.backoff.max = Duration::from_millis(5);
    let client = FeedClient::spawn(cfg, sink.clone()).unwrap();
    sink.wait_cursor(N).await;
    client.shutdown().await;
    assert_exactly(&sink.lock().applied, N);
    let up = server.upgrades();
    assert!(
        up.len() >= 5,
        "expected several reconnects, got {}",
        up.len()
    );
    // Each reconnect resumed after what the sink had committed.
    assert!(up.windows(2).all(|w| w[0].after < w[1].after));
    assert_eq!(client.counters().duplicate_entries, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backoff_doubles_with_jitter_up_to_the_cap_and_resets_after_a_healthy_connection() {
    capture_logs();
    // Connections 0..4 end before hello; connection 4 is healthy (hello, then a normal close);
    // later ones end before hello again.
    let server = TestServer::start(None, move |mut c: Conn| async move {
        if c.index == 4 {
            c.ws.send(hello(c.after, 0, 15)).await.unwrap();
            close(&mut c.ws, 1001, "gateway shutting down").await;
        }
    })
    .await;
    let mut cfg = config(&server.url());
    cfg.backoff = Backoff {
        initial: Duration::from_millis(100),
        max: Duration::from_millis(400),
        healthy_after: Duration::ZERO,
    };
    let client = FeedClient::spawn(cfg, Memory::new(0)).unwrap();
    let recorder = Recorder::start(client.state());
    let mut state = client.state();
    // Wait for the 7th disconnection (index 6).
    let count = Arc::new(AtomicUsize::new(0));
    let c2 = count.clone();
    wait_state(&mut state, "seven disconnections", move |s| {
        if matches!(s, State::Disconnected { .. }) {
            c2.fetch_add(1, Ordering::SeqCst) >= 6
        } else {
            false
        }
    })
    .await;
    client.shutdown().await;
    let retries: Vec<(DisconnectReason, Duration)> = recorder
        .all()
        .into_iter()
        .filter_map(|s| match s {
            State::Disconnected { reason, retry_in } => Some((reason, retry_in)),
            _ => None,
        })
        .collect();
    assert!(retries.len() >= 6, "{retries:?}");
    let ms = |d: Duration| d.as_millis() as u64;
    // attempt:      0    1    2    3    (healthy) 0    1
    let ceilings = [100, 200, 400, 400, 100, 200];
    for (i, ((reason, retry), ceiling)) in retries.iter().zip(ceilings).enumerate() {
        let retry = ms(*retry);
        assert!(
            (ceiling / 2..=ceiling).contains(&retry),
            "retry {i} ({reason}) waited {retry} ms, expected within [{}, {ceiling}]",
            ceiling / 2
        );
    }
    assert_eq!(
        retries[4].0,
        DisconnectReason::Closed {
            code: 1001,
            reason: "gateway shutting down".into()
        }
    );
}

#[test]
fn backoff_delay_bounds() {
    let b = Backoff::default();
    let ceilings: Vec<u64> = (0..10).map(|a| b.ceiling(a).as_secs()).collect();
    assert_eq!(ceilings, [1, 2, 4, 8, 16, 32, 60, 60, 60, 60]);
    assert_eq!(b.ceiling(u32::MAX), Duration::from_secs(60));
    for attempt in 0..40 {
        let c = b.ceiling(attempt);
        for _ in 0..50 {
            let d = b.delay(attempt);
            assert!(
                d >= c / 2 && d <= c,
                "attempt {attempt}: {d:?} outside [{:?}, {c:?}]",
                c / 2
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_4001_reconnects_at_once_with_the_cursor() {
    capture_logs();
    let server = TestServer::start(None, move |mut c: Conn| async move {
        if c.index == 0 {
            serve_range(&mut c.ws, c.after, 100, 40, 15).await;
            let _ =
                c.ws.send(Message::text(
                    r#"{"type":"resume","after":40,"reason":"overflow"}"#,
                ))
                .await;
            close(&mut c.ws, 4001, "resume").await;
        } else {
            serve_range(&mut c.ws, c.after, 100, 100, 15).await;
            let _ = read_client(&mut c.ws).await;
        }
    })
    .await;
    let sink = Memory::new(0);
    let mut cfg = config(&server.url());
    // A backoff of an hour: reconnecting at all proves 4001 skips it.
    cfg.backoff.initial = Duration::from_secs(3600);
    cfg.backoff.max = Duration::from_secs(3600);
    let client = FeedClient::spawn(cfg, sink.clone()).unwrap();
    sink.wait_cursor(100).await;
    client.shutdown().await;
    assert_exactly(&sink.lock().applied, 100);
    let up = server.upgrades();
    assert_eq!(up.len(), 2);
    assert_eq!(up[1].after, 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_4003_stops_with_credential_revoked() {
    capture_logs();
    let server = TestServer::start(None, move |mut c: Conn| async move {
        serve_range(&mut c.ws, c.after, 5, 5, 15).await;
        close(&mut c.ws, 4003, "credential revoked").await;
    })
    .await;
    let sink = Memory::new(0);
    let client = FeedClient::spawn(config(&server.url()), sink.clone()).unwrap();
    let mut state = client.state();
    assert_eq!(
        wait_stopped(&mut state).await,
        StopReason::CredentialRevoked
    );
    // What arrived before the close was applied; nothing was retried.
    assert_exactly(&sink.lock().applied, 5);
    assert_eq!(server.upgrades().len(), 1);
    assert_eq!(client.shutdown().await, StopReason::CredentialRevoked);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_4004_stops_and_never_restarts_from_zero() {
    capture_logs();
    let server = TestServer::start(None, move |mut c: Conn| async move {
        close(&mut c.ws, 4004, "after is beyond the log's end").await;
    })
    .await;
    let sink = Memory::new(500);
    let client = FeedClient::spawn(config(&server.url()), sink.clone()).unwrap();
    let mut state = client.state();
    assert_eq!(
        wait_stopped(&mut state).await,
        StopReason::AfterBeyondEnd { after: 500 }
    );
    let up = server.upgrades();
    assert_eq!(up.len(), 1);
    assert_eq!(up[0].after, 500);
    assert_eq!(sink.lock().cursor, 500);
}

/// The real gateway says hello, then closes 4004 when the desk's cursor is beyond its log's end
/// (a gateway restored from an older backup): the desk never said "Connected" meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hello_whose_log_ends_before_our_cursor_is_never_connected() {
    capture_logs();
    let server = TestServer::start(None, move |mut c: Conn| async move {
        c.ws.send(hello(500, 3, 15)).await.unwrap();
        close(&mut c.ws, 4004, "after is beyond the log's end").await;
    })
    .await;
    let sink = Memory::new(500);
    let client = FeedClient::spawn(config(&server.url()), sink.clone()).unwrap();
    let recorder = Recorder::start(client.state());
    let mut state = client.state();
    assert_eq!(
        wait_stopped(&mut state).await,
        StopReason::AfterBeyondEnd { after: 500 }
    );
    let states = recorder.all();
    assert!(
        !states.iter().any(|s| matches!(s, State::Connected { .. })),
        "{states:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_401_on_the_upgrade_stops_with_unauthorized() {
    capture_logs();
    let server = TestServer::start(Some(401), |_c: Conn| async {}).await;
    let client = FeedClient::spawn(config(&server.url()), Memory::new(0)).unwrap();
    let mut state = client.state();
    assert_eq!(wait_stopped(&mut state).await, StopReason::Unauthorized);
    assert_eq!(server.upgrades().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_http_statuses_are_retried_with_backoff() {
    capture_logs();
    let server = TestServer::start(Some(503), |_c: Conn| async {}).await;
    let client = FeedClient::spawn(config(&server.url()), Memory::new(0)).unwrap();
    let mut state = client.state();
    wait_state(&mut state, "a 503", |s| {
        matches!(
            s,
            State::Disconnected {
                reason: DisconnectReason::HttpStatus(503),
                ..
            }
        )
    })
    .await;
    tokio::time::timeout(PATIENCE, async {
        while server.upgrades().len() < 3 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("no retries after 503");
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_peer_is_declared_dead_after_three_heartbeats() {
    capture_logs();
    // Connection 0: hello with heartbeatSecs=1, entries 1..=3, heartbeats every 500 ms for 4 s
    // (longer than 3 s: heartbeats keep it alive), then silence with the socket open.
    // Connection 1: the rest.
    let server = TestServer::start(None, move |mut c: Conn| async move {
        if c.index == 0 {
            serve_range(&mut c.ws, c.after, 3, 3, 1).await;
            for i in 0..8 {
                tokio::time::sleep(Duration::from_millis(500)).await;
                if c.ws.send(heartbeat(3 + i / 4)).await.is_err() {
                    return;
                }
            }
            // Silent: hold the socket without reading or writing until the client gives up.
            tokio::time::sleep(PATIENCE).await;
        } else {
            serve_range(&mut c.ws, c.after, 10, 10, 15).await;
            let _ = read_client(&mut c.ws).await;
        }
    })
    .await;
    let sink = Memory::new(0);
    let (_client, recorder) = run_until_cursor(config(&server.url()), &sink, 10).await;
    // Heartbeat 4 said "nothing else for you up to 4": entry 4 was not this desk's.
    assert_eq!(sink.lock().applied, [1, 2, 3, 5, 6, 7, 8, 9, 10]);
    let disconnects: Vec<_> = recorder
        .all()
        .into_iter()
        .filter_map(|s| match s {
            State::Disconnected { reason, .. } => Some(reason),
            _ => None,
        })
        .collect();
    assert_eq!(
        disconnects,
        vec![DisconnectReason::HeartbeatTimeout(Duration::from_secs(3))]
    );
    // The heartbeats reached the sink (4 is above the entries' 3).
    assert!(sink.lock().seen.contains(&4), "{:?}", sink.lock().seen);
    let up = server.upgrades();
    assert_eq!(up.len(), 2);
    assert_eq!(up[1].after, 4, "resumed after the heartbeat's seq");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_are_counted_and_skipped_and_later_entries_still_arrive() {
    capture_logs();
    const SECRET_IN_FRAME: &str = "eyJhbGciOiJSU0EtT0FFUC0yNTYi.secret-token-body";
    let server = TestServer::start(None, move |mut c: Conn| async move {
        let ws = &mut c.ws;
        ws.send(hello(0, 6, 15)).await.unwrap();
        ws.send(entry(1)).await.unwrap();
        ws.send(Message::text(format!("not json {SECRET_IN_FRAME}")))
            .await
            .unwrap();
        ws.send(entry(2)).await.unwrap();
        ws.send(Message::text(format!(
            r#"{{"type":"entry","seq":"three","payload":{{"token":"{SECRET_IN_FRAME}"}}}}"#
        )))
        .await
        .unwrap();
        ws.send(Message::binary(vec![0u8, 159, 146, 150]))
            .await
            .unwrap();
        ws.send(entry(3)).await.unwrap();
        ws.send(Message::text(r#"{"type":"shiny_new_thing","x":1}"#))
            .await
            .unwrap();
        ws.send(Message::text(r#"{"no":"type"}"#)).await.unwrap();
        ws.send(entry(4)).await.unwrap();
        // A repeated entry (a broken gateway): skipped, counted.
        ws.send(entry(4)).await.unwrap();
        ws.send(entry(5)).await.unwrap();
        ws.send(entry(6)).await.unwrap();
        let _ = read_client(ws).await;
    })
    .await;
    let sink = Memory::new(0);
    let client = FeedClient::spawn(config(&server.url()), sink.clone()).unwrap();
    sink.wait_cursor(6).await;
    let counters = client.counters();
    client.shutdown().await;
    assert_exactly(&sink.lock().applied, 6);
    assert_eq!(counters.malformed_frames, 4, "{counters:?}");
    assert_eq!(counters.unknown_messages, 1, "{counters:?}");
    assert_eq!(counters.duplicate_entries, 1, "{counters:?}");
    // One connection: garbage did not cost the connection.
    assert_eq!(server.upgrades().len(), 1);
    let logs = logs();
    assert!(logs.contains("skipping a malformed feed frame"));
    assert!(
        !logs.contains("secret-token-body"),
        "a frame's content reached the logs"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_sink_commits_nothing_and_the_client_retries_from_its_cursor() {
    capture_logs();
    let acks: Arc<Mutex<Vec<u64>>> = Arc::default();
    let server = healthy_server(50, acks).await;
    let sink = Memory::new(0);
    sink.lock().fail_applies = 2;
    let (_client, recorder) = run_until_cursor(config(&server.url()), &sink, 50).await;
    assert_exactly(&sink.lock().applied, 50);
    assert!(recorder.all().iter().any(|s| matches!(
        s,
        State::Disconnected { reason: DisconnectReason::SinkFailed(m), .. } if m == "disk full (test)"
    )));
    // Each failure cost a connection (nothing queued behind a failed batch is applied).
    assert_eq!(server.upgrades().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_with_1000_and_dropping_every_handle_also_stops() {
    capture_logs();
    let close_codes: Arc<Mutex<Vec<Option<u16>>>> = Arc::default();
    let codes = close_codes.clone();
    let server = TestServer::start(None, move |mut c: Conn| {
        let codes = codes.clone();
        async move {
            serve_range(&mut c.ws, c.after, 1, 1, 15).await;
            let (_, code) = read_client(&mut c.ws).await;
            codes.lock().unwrap().push(code);
        }
    })
    .await;

    let sink = Memory::new(0);
    let client = FeedClient::spawn(config(&server.url()), sink.clone()).unwrap();
    let clone = client.clone();
    sink.wait_cursor(1).await;
    assert_eq!(clone.shutdown().await, StopReason::Shutdown);
    assert_eq!(
        client.shutdown().await,
        StopReason::Shutdown,
        "twice is fine"
    );
    assert!(matches!(
        *client.state().borrow(),
        State::Stopped {
            reason: StopReason::Shutdown
        }
    ));

    let sink2 = Memory::new(0);
    let client2 = FeedClient::spawn(config(&server.url()), sink2.clone()).unwrap();
    let mut state = client2.state();
    sink2.wait_cursor(1).await;
    drop(client2);
    wait_state(&mut state, "stopped after drop", |s| {
        matches!(
            s,
            State::Stopped {
                reason: StopReason::Shutdown
            }
        )
    })
    .await;
    tokio::time::timeout(PATIENCE, async {
        while close_codes.lock().unwrap().len() < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap();
    assert_eq!(*close_codes.lock().unwrap(), vec![Some(1000), Some(1000)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_sink_stops_the_client_without_panicking_it() {
    capture_logs();
    struct Boom;
    impl lockdesk_feed_client::Sink for Boom {
        type Error = String;
        fn cursor(&mut self) -> Result<u64, String> {
            Ok(0)
        }
        fn apply(&mut self, _: Vec<lockdesk_feed_client::Entry>) -> Result<(), String> {
            panic!("the caller's store has a bug (test)");
        }
        fn seen(&mut self, _: u64) {}
    }
    let server = healthy_server(3, Arc::default()).await;
    let client = FeedClient::spawn(config(&server.url()), Boom).unwrap();
    let mut state = client.state();
    // The panic's message is in the state (and so on screen), not only "the store stopped".
    assert_eq!(
        wait_stopped(&mut state).await,
        StopReason::SinkPanicked("the caller's store has a bug (test)".into())
    );
}

#[tokio::test]
async fn configuration_is_checked_and_the_credential_never_shows() {
    let spawn = |url: &str, cred: &str| {
        FeedClient::spawn(Config::new(url, Credential::new(cred)), Memory::new(0)).map(|_| ())
    };
    assert!(
        matches!(spawn("ws://gateway.example.com", CREDENTIAL), Err(ConfigError::InsecureRemote(h)) if h == "gateway.example.com")
    );
    assert!(
        matches!(spawn("ftp://127.0.0.1", CREDENTIAL), Err(ConfigError::BadScheme(s)) if s == "ftp")
    );
    assert!(matches!(
        spawn("wss://user:pw@gateway.example.com", CREDENTIAL),
        Err(ConfigError::UserInfoInUrl)
    ));
    assert!(matches!(
        spawn("not a url", CREDENTIAL),
        Err(ConfigError::BadUrl(_))
    ));
    assert!(matches!(
        spawn("ws://127.0.0.1:9", "bad\ncredential"),
        Err(ConfigError::BadCredential)
    ));
    assert!(matches!(
        spawn("ws://127.0.0.1:9", ""),
        Err(ConfigError::BadCredential)
    ));
    let config = Config::new("wss://gateway.example.com", Credential::new(CREDENTIAL));
    assert!(!format!("{config:?}").contains(CREDENTIAL));
    // A valid wss:// URL to a remote host is accepted (the client then keeps trying).
    let client = FeedClient::spawn(
        Config::new("wss://gateway.invalid/v1/feed", Credential::new(CREDENTIAL)),
        Memory::new(0),
    )
    .unwrap();
    assert!(!format!("{client:?}").contains(CREDENTIAL));
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_sink_does_not_stall_reading_and_the_queue_stays_bounded() {
    capture_logs();
    // A sink slower than the server; max_pending small: the client pauses reading (backpressure)
    // instead of buffering without bound, and ends with everything exactly once.
    struct Slow(Memory);
    impl lockdesk_feed_client::Sink for Slow {
        type Error = String;
        fn cursor(&mut self) -> Result<u64, String> {
            self.0.cursor()
        }
        fn apply(&mut self, e: Vec<lockdesk_feed_client::Entry>) -> Result<(), String> {
            std::thread::sleep(Duration::from_millis(2));
            self.0.apply(e)
        }
        fn seen(&mut self, s: u64) {
            self.0.seen(s)
        }
    }
    let server = healthy_server(3000, Arc::default()).await;
    let sink = Memory::new(0);
    let mut cfg = config(&server.url());
    cfg.max_batch = 16;
    cfg.max_pending = 64;
    let client = FeedClient::spawn(cfg, Slow(sink.clone())).unwrap();
    sink.wait_cursor(3000).await;
    client.shutdown().await;
    let s = sink.lock();
    assert_exactly(&s.applied, 3000);
    assert!(s.batch_sizes.iter().all(|&n| n <= 16));
    // Batching happened (entries waited while the sink worked).
    assert!(s.batch_sizes.iter().any(|&n| n > 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aborted_client_and_a_restarted_one_leave_a_sqlite_store_with_every_entry_once() {
    capture_logs();
    const N: u64 = 5000;
    // The peer streams everything; the client is aborted (as a crash) mid-stream.
    let server = TestServer::start(None, move |mut c: Conn| async move {
        c.ws.send(hello(c.after, N, 15)).await.unwrap();
        for seq in c.after + 1..=N {
            if c.ws.send(entry(seq)).await.is_err() {
                return;
            }
        }
        let _ = read_client(&mut c.ws).await;
    })
    .await;
    let mut cfg = config(&server.url());
    cfg.max_batch = 50;
    crash_and_restart_on_sqlite(cfg, N, |(rows, distinct, max, _)| {
        assert_eq!(
            (rows, distinct),
            (max, max),
            "entries and cursor agree after the crash"
        );
    })
    .await;
}

/// A wss:// peer with a self-signed certificate for `localhost`: serves hello and entries 1..=3.
async fn tls_server() -> (
    std::net::SocketAddr,
    rustls::pki_types::CertificateDer<'static>,
    tokio::task::JoinHandle<()>,
) {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert: CertificateDer<'static> = ck.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.key_pair.serialize_der()));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.clone()], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let callback = |_: &tokio_tungstenite::tungstenite::handshake::server::Request,
                                mut resp: tokio_tungstenite::tungstenite::handshake::server::Response| {
                    resp.headers_mut().insert(
                        "sec-websocket-protocol",
                        tokio_tungstenite::tungstenite::http::HeaderValue::from_static(
                            "lockdesk.feed.v1",
                        ),
                    );
                    Ok(resp)
                };
                let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tls, callback).await else {
                    return;
                };
                let _ = ws.send(hello(0, 3, 15)).await;
                for seq in 1..=3 {
                    let _ = ws.send(entry(seq)).await;
                }
                while let Some(Ok(_)) = ws.next().await {}
            });
        }
    });
    (addr, cert, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_with_a_trusted_root_works_and_an_untrusted_certificate_is_refused() {
    capture_logs();
    let (addr, cert, task) = tls_server().await;
    let url = format!("wss://localhost:{}", addr.port());

    // Not trusted (self-signed, not in the OS store): the handshake fails, the client retries.
    let untrusted = FeedClient::spawn(config(&url), Memory::new(0)).unwrap();
    let mut state = untrusted.state();
    let s = wait_state(&mut state, "a refused certificate", |s| {
        matches!(
            s,
            State::Disconnected {
                reason: DisconnectReason::ConnectFailed(_),
                ..
            }
        )
    })
    .await;
    let State::Disconnected { reason, .. } = s else {
        unreachable!()
    };
    assert!(
        reason.to_string().to_lowercase().contains("certificate"),
        "{reason}"
    );
    untrusted.shutdown().await;

    // Trusted through extra_roots: entries arrive over TLS.
    let sink = Memory::new(0);
    let mut cfg = config(&url);
    cfg.extra_roots = vec![cert];
    let client = FeedClient::spawn(cfg, sink.clone()).unwrap();
    sink.wait_cursor(3).await;
    client.shutdown().await;
    assert_exactly(&sink.lock().applied, 3);
    task.abort();
}

/// Prints the client's own throughput (socket → parse → batch → sink thread) with a sink that
/// only records seqs; asserts exactness, not speed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput_figure() {
    capture_logs();
    const N: u64 = 50_000;
    let server = TestServer::start(None, move |mut c: Conn| async move {
        c.ws.send(hello(c.after, N, 15)).await.unwrap();
        for seq in c.after + 1..=N {
            if c.ws.feed(entry(seq)).await.is_err() {
                return;
            }
        }
        let _ = c.ws.flush().await;
        let _ = read_client(&mut c.ws).await;
    })
    .await;
    let sink = Memory::new(0);
    let started = std::time::Instant::now();
    let client = FeedClient::spawn(config(&server.url()), sink.clone()).unwrap();
    sink.wait_cursor(N).await;
    let elapsed = started.elapsed();
    client.shutdown().await;
    let s = sink.lock();
    assert_exactly(&s.applied, N);
    println!(
        "feed client: {N} entries in {:.2} s = {:.0} entries/s, {} batches (mean {:.1} per apply)",
        elapsed.as_secs_f64(),
        N as f64 / elapsed.as_secs_f64(),
        s.batch_sizes.len(),
        N as f64 / s.batch_sizes.len() as f64
    );
}
