#![no_main]
//! The feed client's frame handling, for real: the fuzzer's frames (hello, entry, heartbeat,
//! resume with any values; unknown types; any JSON; any text; binary) are served over a
//! loopback WebSocket to the real `FeedClient`, whose sink applies to a real desk store (SQLite
//! file on tmpfs, real verifier, test-key tokens). Then the server closes (with a code or not).
//!
//! Checked beyond "no panic" (a panic on the client's task or the sink's thread aborts the
//! process: libFuzzer's hook): the connection ends within a bound (no hang); the sink is handed
//! entries and heartbeats in strictly increasing `seq` order, in non-empty batches, only entries
//! that were sent, and no `seq` beyond i64::MAX (SQLite's integers); the desk never fails a
//! batch; a close code 4003/4004 stops the client, any other end leaves it retrying. When every
//! number sent is within the protocol's bounds, the sink gets exactly the entries the protocol
//! says (each frame parsed with the protocol's own parser; an entry at or below the highest
//! `seq` seen is skipped; a heartbeat raises it), the counters agree and the desk's committed
//! cursor is the highest `seq` applied or seen. (Out of bounds, a desk may skip the message or
//! drop the connection: docs/feed-protocol.md.)

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use lockdesk_desk::{Desk, DeskConfig, DeskError, TokenVerifier};
use lockdesk_feed::{Entry, ServerMessage, SUBPROTOCOL};
use lockdesk_feed_client::{Backoff, Config, Credential, FeedClient, Sink, State, StopReason};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

#[path = "common.rs"]
mod common;
#[path = "entries.rs"]
mod entries;
#[path = "json.rs"]
mod json;

#[derive(Arbitrary, Debug)]
enum Heartbeat {
    Small(u8),
    Raw(u64),
    Zero,
    Max,
    /// Where `secs * 3` overflows.
    Third,
}

#[derive(Arbitrary, Debug)]
enum Frame {
    Hello {
        /// None: the current version.
        protocol: Option<u32>,
        subscriber: String,
        supervisor: bool,
        operator_ids: Vec<json::Num>,
        after: entries::Seq,
        last_seq: entries::Seq,
        heartbeat: Heartbeat,
        log_id: Option<String>,
    },
    Entry(entries::EntrySpec),
    Heartbeat(entries::Seq),
    Resume {
        after: entries::Seq,
        reason: String,
    },
    /// A message with any `type` and members.
    Other(json::Name, Vec<(json::Name, json::Json)>),
    Text(String),
    Binary(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum End {
    Close(u16, String),
    CloseNoFrame,
    Drop,
}

#[derive(Arbitrary, Debug)]
struct Input {
    frames: Vec<Frame>,
    end: End,
    max_batch: u8,
}

const TYPES: &[&str] = &["hello", "entry", "heartbeat", "resume", "ack", ""];
const MEMBERS: &[&str] = &[
    "type",
    "seq",
    "after",
    "lastSeq",
    "heartbeatSecs",
    "protocol",
    "subscriber",
    "role",
    "operatorIds",
    "kind",
    "receivedAtMs",
    "eventType",
    "payload",
    "related",
    "reason",
];

/// What the sink was handed: each call, in order, and whether the desk failed it.
#[derive(Debug)]
enum Call {
    Apply(Vec<u64>),
    Seen(u64),
    Failed(String),
}

struct Recorder {
    desk: Desk,
    calls: Arc<Mutex<Vec<Call>>>,
}

impl Sink for Recorder {
    type Error = DeskError;
    fn cursor(&mut self) -> Result<u64, DeskError> {
        Ok(self.desk.cursor())
    }
    fn apply(&mut self, entries: Vec<Entry>) -> Result<(), DeskError> {
        self.calls
            .lock()
            .unwrap()
            .push(Call::Apply(entries.iter().map(|e| e.seq).collect()));
        // The desk's clock: the shipped sink passes the wall clock, a fixed time is the same.
        let result = self.desk.apply(&entries, common::NOW * 1000).map(|_| ());
        if let Err(e) = &result {
            self.calls.lock().unwrap().push(Call::Failed(e.to_string()));
        }
        result
    }
    fn seen(&mut self, seq: u64) {
        self.calls.lock().unwrap().push(Call::Seen(seq));
        self.desk.note_seen(seq).expect("note_seen");
    }
}

struct Shared {
    runtime: tokio::runtime::Runtime,
    verifier: Arc<dyn TokenVerifier>,
    tokens: Vec<String>,
}

fn shared() -> &'static Shared {
    static S: OnceLock<Shared> = OnceLock::new();
    S.get_or_init(|| Shared {
        runtime: tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime"),
        verifier: Arc::new(common::verifier()),
        tokens: common::token_pool(),
    })
}

fn seq_value(s: entries::Seq, prev: u64) -> u64 {
    s.next(prev)
}

/// The frames as sent, text or binary.
fn render(frames: &[Frame], tokens: &[String]) -> Vec<Message> {
    let mut prev = 0u64;
    frames
        .iter()
        .take(48)
        .map(|f| match f {
            Frame::Hello {
                protocol,
                subscriber,
                supervisor,
                operator_ids,
                after,
                last_seq,
                heartbeat,
                log_id,
            } => {
                let heartbeat_secs = match heartbeat {
                    Heartbeat::Small(n) => u64::from(*n),
                    Heartbeat::Raw(n) => *n,
                    Heartbeat::Zero => 0,
                    Heartbeat::Max => u64::MAX,
                    Heartbeat::Third => u64::MAX / 3 + 1,
                };
                let ids: Vec<Value> = operator_ids.iter().take(8).map(json::Num::value).collect();
                let mut hello = json!({
                        "type": "hello",
                        "protocol": protocol.unwrap_or(lockdesk_feed::PROTOCOL_VERSION),
                        "subscriber": subscriber,
                        "role": if *supervisor { "supervisor" } else { "advisor" },
                        "operatorIds": ids,
                        "after": seq_value(*after, prev),
                        "lastSeq": seq_value(*last_seq, prev),
                        "heartbeatSecs": heartbeat_secs,
                });
                if let Some(id) = log_id {
                    hello["logId"] = Value::String(id.clone());
                }
                Message::text(hello.to_string())
            }
            Frame::Entry(spec) => {
                let e = spec.entry(prev, tokens);
                prev = e.seq;
                Message::text(ServerMessage::Entry(e).to_text())
            }
            Frame::Heartbeat(s) => {
                let seq = s.next(prev);
                prev = seq;
                Message::text(ServerMessage::Heartbeat { seq }.to_text())
            }
            Frame::Resume { after, reason } => Message::text(
                ServerMessage::Resume {
                    after: seq_value(*after, prev),
                    reason: reason.clone(),
                }
                .to_text(),
            ),
            Frame::Other(ty, members) => {
                let mut m = json::object(members, MEMBERS);
                m.insert("type".into(), ty.text(TYPES).into());
                Message::text(Value::Object(m).to_string())
            }
            Frame::Text(t) => Message::text(t.clone()),
            Frame::Binary(b) => Message::binary(b.clone()),
        })
        .collect()
}

/// The protocol's bounds on numbers (docs/feed-protocol.md): `seq`s and cursors fit SQLite's
/// signed integers, times have four-digit years, `heartbeatSecs` is 1 s to 1 h.
const MAX_SEQ: u64 = i64::MAX as u64;
const MAX_TIME_MS: i64 = 253_402_300_799_999;

fn operator_ids_in_bounds(payload: &Value) -> bool {
    let ok = |v: &Value| !v.is_number() || v.as_u64().is_some_and(|n| n <= MAX_SEQ);
    payload.get("operatorId").is_none_or(ok)
        && match payload.get("operatorIds") {
            Some(Value::Array(ids)) => ids.iter().all(ok),
            _ => true,
        }
}

fn in_bounds(m: &ServerMessage) -> bool {
    let time = |ms: i64| (0..=MAX_TIME_MS).contains(&ms);
    match m {
        ServerMessage::Hello(h) => {
            h.protocol == lockdesk_feed::PROTOCOL_VERSION
                && (1..=3600).contains(&h.heartbeat_secs)
                && h.after <= MAX_SEQ
                && h.last_seq <= MAX_SEQ
                && h.operator_ids.iter().all(|&id| id <= MAX_SEQ)
                && h.log_id.as_ref().is_none_or(|id| {
                    !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic())
                })
        }
        ServerMessage::Entry(e) => {
            (1..=MAX_SEQ).contains(&e.seq)
                && time(e.received_at_ms)
                && e.related.len() <= lockdesk_feed::MAX_RELATED
                && e.related
                    .iter()
                    .all(|r| (1..e.seq).contains(&r.seq) && time(r.received_at_ms))
                && operator_ids_in_bounds(&e.payload)
                && e.related.iter().all(|r| operator_ids_in_bounds(&r.payload))
        }
        ServerMessage::Heartbeat { seq } => *seq <= MAX_SEQ,
        ServerMessage::Resume { after, .. } => *after <= MAX_SEQ,
        ServerMessage::Unknown => true,
    }
}

/// The protocol's model of the client: which entries the sink gets, the highest `seq`, the
/// heartbeats, every entry `seq` sent, and whether every number was within bounds.
struct Model {
    applied: Vec<u64>,
    high: u64,
    heartbeats: u64,
    sent: std::collections::HashSet<u64>,
    in_bounds: bool,
}

fn expected(messages: &[Message]) -> Model {
    let mut m = Model {
        applied: Vec::new(),
        high: 0,
        heartbeats: 0,
        sent: Default::default(),
        in_bounds: true,
    };
    for msg in messages {
        let Message::Text(t) = msg else { continue };
        let Ok(parsed) = ServerMessage::parse(t.as_str()) else {
            continue;
        };
        m.in_bounds &= in_bounds(&parsed);
        match parsed {
            ServerMessage::Entry(e) => {
                m.sent.insert(e.seq);
                if e.seq > m.high {
                    m.high = e.seq;
                    m.applied.push(e.seq);
                }
            }
            ServerMessage::Heartbeat { seq } => {
                m.heartbeats += 1;
                m.high = m.high.max(seq);
            }
            _ => {}
        }
    }
    m
}

async fn serve(listener: tokio::net::TcpListener, messages: Vec<Message>, end: &End) {
    let (tcp, _) = listener.accept().await.expect("accept");
    let callback = |_req: &Request, mut resp: Response| {
        resp.headers_mut().insert(
            "sec-websocket-protocol",
            HeaderValue::from_static(SUBPROTOCOL),
        );
        Ok(resp)
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, callback).await else {
        panic!("the client's upgrade failed");
    };
    for m in messages {
        if ws.send(m).await.is_err() {
            return;
        }
    }
    match end {
        End::Close(code, reason) => {
            let reason: String = reason.chars().take(100).collect();
            let frame = CloseFrame {
                code: CloseCode::from(*code),
                reason: reason.into(),
            };
            let _ = ws.send(Message::Close(Some(frame))).await;
        }
        End::CloseNoFrame => {
            let _ = ws.send(Message::Close(None)).await;
        }
        End::Drop => return,
    }
    // Read the client's acks and close reply until it hangs up.
    while let Some(Ok(_)) = ws.next().await {}
}

fuzz_target!(|input: Input| {
    let s = shared();
    let dir = tempfile::Builder::new()
        .prefix("lockdesk-fuzz-")
        .tempdir_in(if std::path::Path::new("/dev/shm").is_dir() {
            std::path::PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        })
        .expect("temp dir");
    let path = dir.path().join("desk.sqlite3");
    let desk = Desk::open(&path, s.verifier.clone(), DeskConfig::default()).expect("desk");
    let calls = Arc::new(Mutex::new(Vec::new()));
    let messages = render(&input.frames, &s.tokens);
    let model = expected(&messages);

    let final_state = s.runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let mut config = Config::new(format!("ws://127.0.0.1:{port}"), Credential::new("fuzz"));
        // No reconnect within the run: one connection is what is checked.
        config.backoff = Backoff {
            initial: Duration::from_secs(3600),
            max: Duration::from_secs(3600),
            healthy_after: Duration::from_secs(3600),
        };
        config.max_batch = usize::from(input.max_batch % 8) + 1;
        config.max_pending = 8;
        let client = FeedClient::spawn(
            config,
            Recorder {
                desk,
                calls: calls.clone(),
            },
        )
        .expect("spawn");
        let mut state = client.state();
        let run = async {
            serve(listener, messages, &input.end).await;
            loop {
                let st = state.borrow_and_update().clone();
                if matches!(st, State::Disconnected { .. } | State::Stopped { .. }) {
                    return st;
                }
                state
                    .changed()
                    .await
                    .expect("the client's state channel closed");
            }
        };
        let st = match tokio::time::timeout(Duration::from_secs(8), run).await {
            Ok(st) => st,
            Err(_) => panic!("the client did not notice the end of the connection"),
        };
        // Shutting down waits for what the connection delivered to be applied (the state says
        // Disconnected as soon as the connection ends, before that).
        let stop = client.shutdown().await;
        (st, client.counters(), stop)
    });
    let (state, counters, stop) = final_state;

    match &state {
        State::Disconnected { reason, .. } => {
            let text = reason.to_string();
            assert!(
                !text.contains("local store"),
                "the desk failed a batch: {text}"
            );
            assert_eq!(stop, StopReason::Shutdown);
            if let End::Close(code, _) = input.end {
                assert!(
                    code != 4003 && code != 4004,
                    "4003/4004 must stop the client"
                );
            }
        }
        State::Stopped { reason } => {
            let code = match input.end {
                End::Close(code, _) => code,
                _ => 0,
            };
            assert!(
                matches!(reason, StopReason::CredentialRevoked) && code == 4003
                    || matches!(reason, StopReason::AfterBeyondEnd { .. }) && code == 4004,
                "stopped for {reason:?} after close code {code}"
            );
        }
        other => panic!("unexpected state {other:?}"),
    }

    let calls = calls.lock().unwrap();
    let mut last = 0u64;
    let mut applied = Vec::new();
    for c in calls.iter() {
        match c {
            Call::Apply(seqs) => {
                assert!(!seqs.is_empty(), "an empty batch");
                for &q in seqs {
                    assert!(q > last, "seq {q} handed after {last}");
                    last = q;
                    applied.push(q);
                }
            }
            Call::Seen(q) => {
                assert!(*q > last, "heartbeat {q} handed after {last}");
                last = *q;
            }
            Call::Failed(e) => panic!("the desk failed a batch: {e}"),
        }
    }
    for q in &applied {
        assert!(
            model.sent.contains(q),
            "the sink got an entry that was not sent"
        );
    }
    assert!(last <= MAX_SEQ, "a seq beyond i64::MAX reached the sink");
    if model.in_bounds {
        assert_eq!(
            applied, model.applied,
            "the sink did not get what the protocol says"
        );
        assert_eq!(last, model.high, "the highest seq handed to the sink");
        assert_eq!(counters.entries_applied, applied.len() as u64);
        assert_eq!(counters.heartbeats, model.heartbeats);
        assert_eq!(counters.applied_seq, model.high);
    }
    let desk = Desk::open(&path, s.verifier.clone(), DeskConfig::default()).expect("reopen");
    assert_eq!(desk.cursor(), last, "the desk's committed cursor");
});
