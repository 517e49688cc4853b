//! `lockdesk-cli watch` (the real binary) against a hostile feed: a small WebSocket server in the
//! test speaks docs/feed-protocol.md with numbers out of their bounds. The watch never panics,
//! says what is wrong, keeps what it accepted, and saves a cursor it can resume from.

// tungstenite's handshake callback type fixes the large error (an HTTP response).
#![allow(clippy::result_large_err)]

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

use crate::support::{cli, generate_keys};

/// A desk key pair in `dir/keys` (the watch needs a trusted issuer and a decryption key).
fn keys(dir: &Path) -> PathBuf {
    let keys = dir.join("keys");
    generate_keys(&keys);
    keys
}

/// The `after` of every upgrade, in order.
type Afters = Arc<Mutex<Vec<u64>>>;

/// Serves each connection the frames `script(after)` returns, then holds it open.
async fn server(script: fn(u64) -> Vec<Value>) -> (String, Afters) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/v1/feed", listener.local_addr().unwrap());
    let afters: Afters = Arc::default();
    let seen = afters.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let after = Arc::new(Mutex::new(0u64));
                let slot = after.clone();
                let callback = move |req: &Request, mut resp: Response| {
                    let uri = req.uri().to_string();
                    *slot.lock().unwrap() = uri
                        .split("after=")
                        .nth(1)
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    resp.headers_mut().insert(
                        "sec-websocket-protocol",
                        HeaderValue::from_static(lockdesk_feed::SUBPROTOCOL),
                    );
                    Ok(resp)
                };
                let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
                    return;
                };
                let after = *after.lock().unwrap();
                seen.lock().unwrap().push(after);
                for frame in script(after) {
                    if ws.send(Message::text(frame.to_string())).await.is_err() {
                        return;
                    }
                }
                while let Some(Ok(_)) = ws.next().await {}
            });
        }
    });
    (url, afters)
}

fn hello(after: u64, last_seq: u64, heartbeat_secs: u64) -> Value {
    json!({"type": "hello", "protocol": 1, "subscriber": "desk", "role": "supervisor",
        "after": after, "lastSeq": last_seq, "heartbeatSecs": heartbeat_secs})
}

fn pushed(seq: u64, received_at_ms: i64, conversation: &str) -> Value {
    json!({"type": "entry", "seq": seq, "kind": "webhook", "receivedAtMs": received_at_ms,
        "eventType": "v2.conversation.pushed",
        "payload": {"eventType": "v2.conversation.pushed", "conversationId": conversation,
            "visitorId": format!("visitor-{conversation}"), "channel": "CHAT", "operatorId": 7}})
}

const NOW_MS: i64 = 1_767_261_600_000;
/// 10000-01-01T00:00:00Z: one millisecond past the last time RFC 3339 can write.
const YEAR_10000_MS: i64 = 253_402_300_800_000;

/// Runs `watch --json` against `url` for `secs` seconds with its store in `data` (on a blocking
/// thread: the test's runtime serves the feed meanwhile).
async fn watch(dir: &Path, keys: &Path, url: &str, data: &Path, secs: &str) -> Output {
    let (dir, keys, url, data) = (
        dir.to_owned(),
        keys.to_owned(),
        url.to_owned(),
        data.to_owned(),
    );
    let secs = secs.to_owned();
    tokio::task::spawn_blocking(move || watch_now(&dir, &keys, &url, &data, &secs))
        .await
        .unwrap()
}

fn watch_now(dir: &Path, keys: &Path, url: &str, data: &Path, secs: &str) -> Output {
    cli()
        .args(["watch", "--json", "--feed", url])
        .args(["--credential", "desk-credential-0123456"])
        .arg("--trust")
        .arg(format!(
            "https://brand.example={}",
            keys.join("public.pem").display()
        ))
        .arg("--decrypt-key")
        .arg(keys.join("private.pem"))
        .args(["--duration", secs, "--data"])
        .arg(data)
        .env("LOCKDESK_CONFIG_DIR", dir.join("config"))
        .env("LOCKDESK_DATA_DIR", dir.join("data-home"))
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_received_after_year_9999_is_skipped_and_recorded_and_the_watch_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let keys = keys(dir.path());
    // Entry 1 is dated 10000-01-01 (the old watch panicked formatting it: exit 101); entry 2 is
    // ordinary. The second run shows where the cursor was saved.
    let (url, afters) = server(|after| {
        let mut frames = vec![hello(after, 2, 15)];
        if after < 1 {
            frames.push(pushed(1, YEAR_10000_MS, "conv-late"));
        }
        if after < 2 {
            frames.push(pushed(2, NOW_MS, "conv-ok"));
        }
        frames
    })
    .await;
    let data = dir.path().join("desk");
    let out = watch(dir.path(), &keys, &url, &data, "3").await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{:?}\n{stderr}", out.status);
    assert!(
        stderr.contains(
            "entry 1 skipped: entry 1: receivedAtMs 253402300800000 is outside 0..=253402300799999 ms (years 1970 to 9999)"
        ),
        "{stderr}"
    );
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        lines
            .iter()
            .all(|l| l["conversationId"] == "conv-ok" && l["seq"] == 2),
        "{lines:#?}"
    );
    assert!(!lines.is_empty(), "{stdout}\n{stderr}");

    // The cursor was saved past both: a second run resumes after 2.
    let again = watch(dir.path(), &keys, &url, &data, "2").await;
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(*afters.lock().unwrap(), [0, 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seq_beyond_i64_max_is_refused_and_the_saved_cursor_stays_where_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let keys = keys(dir.path());
    // Entry 1, then an entry with seq 2^63: the old desk applied it, failed to save it as its
    // cursor (SQLite reads it back negative) and resumed after 2^63 in memory.
    let (url, afters) = server(|after| {
        let mut frames = vec![hello(after, 1, 15)];
        if after < 1 {
            frames.push(pushed(1, NOW_MS, "conv-ok"));
        }
        frames.push(pushed(1 << 63, NOW_MS + 1, "conv-huge"));
        frames
    })
    .await;
    let data = dir.path().join("desk");
    let out = watch(dir.path(), &keys, &url, &data, "4").await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}\n{stderr}", out.status);
    assert!(
        stderr.contains(
            "the gateway broke the feed protocol: entry: seq 9223372036854775808 is outside 1..=9223372036854775807"
        ),
        "{stderr}"
    );
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("conv-huge"),
        "{stderr}"
    );
    // Every reconnection (backoff 0.5-1 s) resumed after entry 1, never after 2^63.
    let afters = afters.lock().unwrap().clone();
    assert!(afters.len() >= 2, "{afters:?}\n{stderr}");
    assert_eq!(afters[0], 0);
    assert!(afters[1..].iter().all(|&a| a == 1), "{afters:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hello_with_heartbeat_secs_2_64_minus_1_is_reported_instead_of_a_silent_dead_client() {
    let dir = tempfile::tempdir().unwrap();
    let keys = keys(dir.path());
    // The old client task panicked on this hello (Instant overflow): the watch printed
    // "connected", then nothing, and exited 0 at the end of --duration.
    let (url, _afters) = server(|after| vec![hello(after, 0, u64::MAX)]).await;
    let data = dir.path().join("desk");
    let out = watch(dir.path(), &keys, &url, &data, "2").await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "disconnected: the gateway broke the feed protocol: hello: heartbeatSecs 18446744073709551615 is outside 1..=3600"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("connected to"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
