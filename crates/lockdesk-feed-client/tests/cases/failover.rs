//! Several addresses of one gateway log (`Config::urls`): which failures move the client to the
//! next address, which stop it everywhere, and how the backoff spans the list. Against in-test
//! servers (a chosen upgrade status, close code or log id); the real gateway's failover (a
//! closed port first, a gateway stopped mid-stream and its log served by another instance) is
//! in `gateway.rs`.

// tungstenite's handshake callback type fixes the large error (an HTTP response).
#![allow(clippy::result_large_err)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use lockdesk_feed_client::{
    Backoff, Config, ConfigError, Credential, DisconnectReason, Entry, FeedClient, LogCheck, Sink,
    State, StopReason, MAX_URLS,
};
use tokio_tungstenite::tungstenite::Message;

use crate::support::*;

fn config(urls: &[String], backoff: Duration) -> Config {
    let mut c = Config::with_urls(urls.to_vec(), Credential::new(CREDENTIAL));
    c.backoff = Backoff {
        initial: backoff,
        max: backoff,
        healthy_after: Duration::from_secs(3600),
    };
    c
}

/// Serves `1..=n` after the client's cursor on every connection, then waits for it to leave.
async fn serving(n: u64) -> TestServer {
    TestServer::start(None, move |mut c: Conn| async move {
        serve_range(&mut c.ws, c.after, n, n, 15).await;
        while let Some(Ok(_)) = c.ws.next().await {}
    })
    .await
}

/// Answers every upgrade with `status`.
async fn refusing(status: u16) -> TestServer {
    TestServer::start(Some(status), |_c: Conn| async {}).await
}

fn feed_url(server: &TestServer) -> String {
    format!("ws://{}/v1/feed", server.addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_answered_503_moves_to_the_next_address_at_once() {
    capture_logs();
    let first = refusing(503).await;
    let second = serving(40).await;
    let sink = Memory::new(0);
    // A backoff of an hour: reaching the second address before the test's patience runs out
    // proves the failover did not wait for it.
    let client = FeedClient::spawn(
        config(&[first.url(), second.url()], Duration::from_secs(3600)),
        sink.clone(),
    )
    .unwrap();
    let mut state = client.state();
    // The status names the address in use.
    assert_connected(
        &mut state,
        "connected to the second address",
        feed_url(&second),
        0,
        40,
    )
    .await;
    sink.wait_cursor(40).await;
    client.shutdown().await;
    assert_exactly(&sink.lock().applied, 40);
    assert_eq!(first.upgrades().len(), 1);
    assert_eq!(second.upgrades().len(), 1);
    assert!(logs().contains("failing over to the next"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_credential_is_refused_everywhere_and_is_not_failed_over() {
    capture_logs();
    // HTTP 401 on the upgrade.
    let first = refusing(401).await;
    stops_without_failing_over(&first, StopReason::Unauthorized).await;

    // Close code 4003 (the credential was revoked) after hello.
    let first = TestServer::start(None, |mut c: Conn| async move {
        c.ws.send(hello(c.after, 0, 15)).await.unwrap();
        close(&mut c.ws, 4003, "credential revoked").await;
    })
    .await;
    stops_without_failing_over(&first, StopReason::CredentialRevoked).await;
}

/// A client on `first` and then a second, serving address (10 ms backoff) stops for `reason`
/// without ever trying the second.
async fn stops_without_failing_over(first: &TestServer, reason: StopReason) {
    let second = serving(10).await;
    let client = FeedClient::spawn(
        config(&[first.url(), second.url()], Duration::from_millis(10)),
        Memory::new(0),
    )
    .unwrap();
    assert_eq!(wait_stopped(&mut client.state()).await, reason);
    assert!(second.upgrades().is_empty(), "{:?}", second.upgrades());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_got_hello_is_retried_on_the_same_address_first() {
    capture_logs();
    // The first address works, then ends each connection (a gateway restarting, a cut relay):
    // the client comes back to it rather than moving its desks elsewhere.
    let first = TestServer::start(None, |mut c: Conn| async move {
        c.ws.send(hello(c.after, 0, 15)).await.unwrap();
        close(&mut c.ws, 1001, "going away").await;
    })
    .await;
    let second = serving(10).await;
    let client = FeedClient::spawn(
        config(&[first.url(), second.url()], Duration::from_millis(5)),
        Memory::new(0),
    )
    .unwrap();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while first.upgrades().len() < 4 {
        assert!(tokio::time::Instant::now() < deadline, "no reconnection");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    client.shutdown().await;
    assert!(second.upgrades().is_empty(), "{:?}", second.upgrades());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_every_address_failed_the_backoff_waits_before_the_next_round() {
    capture_logs();
    let servers = [
        refusing(503).await,
        refusing(502).await,
        refusing(404).await,
    ];
    let urls: Vec<String> = servers.iter().map(TestServer::url).collect();
    let client =
        FeedClient::spawn(config(&urls, Duration::from_secs(3600)), Memory::new(0)).unwrap();
    let mut state = client.state();
    // The round's end: a wait of half an hour or more (the jittered backoff of one hour).
    let waiting = wait_state(&mut state, "the backoff after a round", |s| {
        matches!(s, State::Disconnected { retry_in, .. } if *retry_in >= Duration::from_secs(1800))
    })
    .await;
    assert!(matches!(
        waiting,
        State::Disconnected {
            reason: DisconnectReason::HttpStatus(404),
            ..
        }
    ));
    // Each address tried once, in order, before the wait; none twice.
    for s in &servers {
        assert_eq!(s.upgrades().len(), 1);
    }
    client.shutdown().await;
}

/// A sink that remembers the first log id it hears, as the desk store does.
#[derive(Clone)]
struct Remembering {
    memory: Memory,
    log: Arc<Mutex<Option<String>>>,
}

impl Sink for Remembering {
    type Error = String;
    fn cursor(&mut self) -> Result<u64, String> {
        self.memory.cursor()
    }
    fn apply(&mut self, entries: Vec<Entry>) -> Result<(), String> {
        self.memory.apply(entries)
    }
    fn seen(&mut self, seq: u64) {
        self.memory.seen(seq)
    }
    fn log(&mut self, log_id: &str) -> Result<LogCheck, String> {
        let mut known = self.log.lock().unwrap();
        match known.as_deref() {
            None => {
                *known = Some(log_id.to_owned());
                Ok(LogCheck::Adopted)
            }
            Some(k) if k == log_id => Ok(LogCheck::Same),
            Some(k) => Ok(LogCheck::Different {
                known: k.to_owned(),
            }),
        }
    }
}

fn hello_of(log_id: &str, after: u64, last_seq: u64) -> Message {
    hello_with_log(after, last_seq, 15, Some(log_id))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_log_on_the_next_address_resumes_and_another_log_stops_the_client() {
    capture_logs();
    // The first address serves log-a up to 5 once; afterwards its connections end before hello
    // (the instance is going down), so the client moves on.
    let first = TestServer::start(None, |mut c: Conn| async move {
        if c.index == 0 {
            c.ws.send(hello_of("log-a", c.after, 5)).await.unwrap();
            for seq in c.after + 1..=5 {
                c.ws.send(entry(seq)).await.unwrap();
            }
            close(&mut c.ws, 1001, "going away").await;
        }
    })
    .await;
    // Another instance of log-a: it resumes after the cursor.
    let same = TestServer::start(None, |mut c: Conn| async move {
        c.ws.send(hello_of("log-a", c.after, 8)).await.unwrap();
        for seq in c.after + 1..=8 {
            c.ws.send(entry(seq)).await.unwrap();
        }
        while let Some(Ok(_)) = c.ws.next().await {}
    })
    .await;
    let sink = Remembering {
        memory: Memory::new(0),
        log: Arc::default(),
    };
    let client = FeedClient::spawn(
        config(&[first.url(), same.url()], Duration::from_millis(5)),
        sink.clone(),
    )
    .unwrap();
    sink.memory.wait_cursor(8).await;
    client.shutdown().await;
    assert_exactly(&sink.memory.lock().applied, 8);
    assert_eq!(same.upgrades()[0].after, 5, "resumed after the cursor");
    assert_eq!(client.counters().duplicate_entries, 0);

    // The same desk given an address serving another log: it stops there, applying nothing.
    let other = TestServer::start(None, |mut c: Conn| async move {
        c.ws.send(hello_of("log-b", c.after, 20)).await.unwrap();
        for seq in c.after + 1..=20 {
            c.ws.send(entry(seq)).await.unwrap();
        }
        while let Some(Ok(_)) = c.ws.next().await {}
    })
    .await;
    let closed = closed_port_url();
    let client = FeedClient::spawn(
        config(&[closed, other.url()], Duration::from_millis(5)),
        sink.clone(),
    )
    .unwrap();
    assert_eq!(
        wait_stopped(&mut client.state()).await,
        StopReason::LogChanged {
            known: "log-a".into(),
            found: "log-b".into()
        }
    );
    assert_exactly(&sink.memory.lock().applied, 8);
}

/// A loopback address where nothing listens (the port was just released).
fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("ws://{}", listener.local_addr().unwrap())
}

#[tokio::test]
async fn every_address_is_checked_and_a_refused_one_is_named_by_position() {
    let spawn = |urls: Vec<&str>| {
        FeedClient::spawn(
            Config::with_urls(
                urls.into_iter().map(str::to_owned).collect(),
                Credential::new(CREDENTIAL),
            ),
            Memory::new(0),
        )
        .map(|_| ())
    };
    assert!(matches!(spawn(vec![]), Err(ConfigError::NoUrl)));
    let many = vec!["wss://gateway.example.com"; MAX_URLS + 1];
    assert!(matches!(spawn(many), Err(ConfigError::TooManyUrls(n)) if n == MAX_URLS + 1));
    let err = spawn(vec!["wss://a.example.com", "ws://b.example.com/v1/feed"]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "feed address 2 of 2: ws:// sends the credential in clear text: only allowed to a \
         loopback address, use wss:// for b.example.com"
    );
    assert!(matches!(
        err,
        ConfigError::InAddress { index: 2, count: 2, ref source }
            if matches!(**source, ConfigError::InsecureRemote(_))
    ));
    // One address: its error as before, without a position.
    assert!(matches!(
        spawn(vec!["ws://b.example.com"]),
        Err(ConfigError::InsecureRemote(_))
    ));
}
