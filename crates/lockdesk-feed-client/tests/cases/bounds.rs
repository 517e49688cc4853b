//! Numbers out of their documented bounds (docs/feed-protocol.md, "Bounds"), from the in-test
//! server: a hostile or damaged gateway. Nothing panics, nothing already accepted is lost, and the
//! state says what happened.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::SinkExt;
use lockdesk_feed_client::{Backoff, Config, Credential, DisconnectReason, FeedClient, State};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::support::*;

fn config(url: &str) -> Config {
    let mut c = Config::new(url, Credential::new(CREDENTIAL));
    // Long enough (at least 1 s with jitter) that the recorder sees every `Disconnected` before
    // the next `Connecting` replaces it on the watch channel.
    c.backoff = Backoff {
        initial: Duration::from_secs(2),
        max: Duration::from_secs(2),
        healthy_after: Duration::from_secs(3600),
    };
    c
}

/// The protocol errors among the recorded states, in order.
fn protocol_errors(states: &[State]) -> Vec<String> {
    states
        .iter()
        .filter_map(|s| match s {
            State::Disconnected {
                reason: DisconnectReason::ProtocolError(m),
                ..
            } => Some(m.clone()),
            _ => None,
        })
        .collect()
}

/// Holds the connection open (reading what the client sends) until the client leaves.
async fn hold(c: &mut Conn) {
    let _ = read_client(&mut c.ws).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hello_with_heartbeat_secs_2_64_minus_1_is_a_protocol_error_not_a_dead_client() {
    capture_logs();
    // Connection 0: hello with heartbeatSecs = 2^64 - 1 (the old client computed a deadline
    // 3 × that far away and its task panicked, leaving "Connected" on screen), then entries that
    // must not be applied on this connection. Connection 1: a sane gateway.
    let server = TestServer::start(None, move |mut c: Conn| async move {
        if c.index == 0 {
            c.ws.send(hello(c.after, 3, u64::MAX)).await.unwrap();
            for seq in 1..=3 {
                let _ = c.ws.send(entry(seq)).await;
            }
            hold(&mut c).await;
        } else {
            serve_range(&mut c.ws, c.after, 3, 3, 15).await;
            hold(&mut c).await;
        }
    })
    .await;
    let sink = Memory::new(0);
    let (_client, recorder) = run_until_cursor(config(&server.url()), &sink, 3).await;

    let states = recorder.all();
    assert_eq!(
        protocol_errors(&states),
        ["hello: heartbeatSecs 18446744073709551615 is outside 1..=3600"],
        "{states:#?}"
    );
    // "Connected" only for the connection whose hello was valid.
    let first_error = states
        .iter()
        .position(|s| matches!(s, State::Disconnected { .. }))
        .unwrap();
    assert!(
        !states[..first_error]
            .iter()
            .any(|s| matches!(s, State::Connected { .. })),
        "{states:#?}"
    );
    assert_eq!(sink.lock().applied, [1, 2, 3]);
    let up = server.upgrades();
    assert_eq!(up.len(), 2);
    assert_eq!(up[1].after, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seq_or_cursor_beyond_i64_max_ends_the_connection_and_keeps_what_came_before() {
    capture_logs();
    const BEYOND: u64 = i64::MAX as u64 + 1;
    // Connection 0: entries 1, 2, then an entry with seq 2^63 (a desk stores seqs as SQLite's
    // signed integers: the old client handed it over and the desk's cursor read back negative).
    // Connection 1: entry 3, then a heartbeat claiming seq 2^64 - 1. Connection 2: the rest.
    let server = TestServer::start(None, move |mut c: Conn| async move {
        match c.index {
            0 => {
                serve_range(&mut c.ws, c.after, 5, 2, 15).await;
                let _ = c.ws.send(entry(BEYOND)).await;
                let _ = c.ws.send(entry(BEYOND + 1)).await;
            }
            1 => {
                serve_range(&mut c.ws, c.after, 5, 3, 15).await;
                let _ = c.ws.send(heartbeat(u64::MAX)).await;
            }
            _ => serve_range(&mut c.ws, c.after, 5, 5, 15).await,
        }
        hold(&mut c).await;
    })
    .await;
    let sink = Memory::new(0);
    let (client, recorder) = run_until_cursor(config(&server.url()), &sink, 5).await;

    assert_eq!(sink.lock().applied, [1, 2, 3, 4, 5]);
    assert!(
        !sink.lock().seen.contains(&u64::MAX),
        "{:?}",
        sink.lock().seen
    );
    assert_eq!(
        protocol_errors(&recorder.all()),
        [
            "entry: seq 9223372036854775808 is outside 1..=9223372036854775807",
            "heartbeat: seq 18446744073709551615 is outside 0..=9223372036854775807",
        ]
    );
    // Each reconnection resumed after what was applied before the bad message.
    let afters: Vec<u64> = server.upgrades().iter().map(|u| u.after).collect();
    assert_eq!(afters, [0, 2, 3]);
    assert_eq!(client.counters().applied_seq, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_received_after_year_9999_goes_to_the_sink_to_be_skipped_and_later_ones_follow() {
    capture_logs();
    // Entry 2 is out of bounds in its time only: its seq is valid, so the client hands it over
    // (the store records it as skipped and moves its cursor past it) and stays connected.
    let server = TestServer::start(None, move |mut c: Conn| async move {
        serve_range(&mut c.ws, c.after, 3, 1, 15).await;
        let late = json!({"type": "entry", "seq": 2, "kind": "webhook",
            "receivedAtMs": 253_402_300_800_000i64, "eventType": "v2.conversation.pushed",
            "payload": {"eventType": "v2.conversation.pushed"}});
        c.ws.send(Message::text(late.to_string())).await.unwrap();
        c.ws.send(entry(3)).await.unwrap();
        hold(&mut c).await;
    })
    .await;
    let sink = Memory::new(0);
    let (client, recorder) = run_until_cursor(config(&server.url()), &sink, 3).await;
    assert_eq!(sink.lock().applied, [1, 2, 3]);
    assert_eq!(client.counters().out_of_bounds_entries, 1);
    assert!(protocol_errors(&recorder.all()).is_empty());
    assert_eq!(server.upgrades().len(), 1);
}

/// A sink that records the client's state at each apply, and holds its first apply until told.
/// The state's receiver comes from the client once spawned, through `state_rx` (the first apply
/// may run before the test has it).
struct Watching {
    state_rx: std::sync::mpsc::Receiver<tokio::sync::watch::Receiver<State>>,
    state: Option<tokio::sync::watch::Receiver<State>>,
    seen: Arc<Mutex<Vec<(u64, State)>>>,
    release: std::sync::mpsc::Receiver<()>,
    held: bool,
}

impl lockdesk_feed_client::Sink for Watching {
    type Error = String;
    fn cursor(&mut self) -> Result<u64, String> {
        Ok(self.seen.lock().unwrap().last().map_or(0, |(seq, _)| *seq))
    }
    fn apply(&mut self, entries: Vec<lockdesk_feed_client::Entry>) -> Result<(), String> {
        if !self.held {
            self.held = true;
            let _ = self.release.recv_timeout(PATIENCE);
        }
        if self.state.is_none() {
            let rx = self.state_rx.recv_timeout(PATIENCE);
            self.state = Some(rx.map_err(|e| format!("no state receiver: {e}"))?);
        }
        let state = self.state.as_ref().map(|rx| rx.borrow().clone());
        let state = state.ok_or("no state receiver")?;
        for e in entries {
            self.seen.lock().unwrap().push((e.seq, state.clone()));
        }
        Ok(())
    }
    fn seen(&mut self, _: u64) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connected_is_not_shown_while_a_closed_connections_entries_are_still_being_applied() {
    capture_logs();
    // The gateway sends 1..=20 and closes (1000) while the store is still busy with entry 1:
    // entries 2..=20 are applied after the connection is gone, and the state must say so (the
    // old client kept "Connected" until the last of them was applied).
    let (closed_tx, closed_rx) = std::sync::mpsc::channel::<()>();
    let closed_tx = Arc::new(Mutex::new(Some(closed_tx)));
    let server = TestServer::start(None, move |mut c: Conn| {
        let closed_tx = closed_tx.clone();
        async move {
            if c.index == 0 {
                serve_range(&mut c.ws, c.after, 20, 20, 15).await;
                close(&mut c.ws, 1000, "bye").await;
                if let Some(tx) = closed_tx.lock().unwrap().take() {
                    let _ = tx.send(());
                }
            } else {
                serve_range(&mut c.ws, c.after, 20, 20, 15).await;
                hold(&mut c).await;
            }
        }
    })
    .await;
    let (state_tx, state_rx) = std::sync::mpsc::channel();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Watching {
        state_rx,
        state: None,
        seen: seen.clone(),
        release: closed_rx,
        held: false,
    };
    let mut cfg = config(&server.url());
    cfg.max_batch = 1;
    let client = FeedClient::spawn(cfg, sink).unwrap();
    state_tx.send(client.state()).unwrap();
    tokio::time::timeout(PATIENCE, async {
        while seen.lock().unwrap().len() < 20 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("never applied 20 entries");
    client.shutdown().await;
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        (1..=20).collect::<Vec<_>>()
    );
    let (_, last) = &seen[19];
    assert!(
        matches!(
            last,
            State::Disconnected {
                reason: DisconnectReason::Closed { code: 1000, .. },
                ..
            }
        ),
        "entry 20 was applied after the close under {last:?}"
    );
}
