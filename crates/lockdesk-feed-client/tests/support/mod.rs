//! Shared test helpers: log capture (lockdesk-testkit's), sinks (in-memory and SQLite), state recorder, and a small
//! scriptable WebSocket server speaking the feed protocol.

#![allow(dead_code)]
// tungstenite's handshake callback type fixes the large error (an HTTP response).
#![allow(clippy::result_large_err)]

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use lockdesk_feed::{ClientMessage, Entry, EntryKind, Hello, Role, ServerMessage, SUBPROTOCOL};
use lockdesk_feed_client::{Sink, State, StopReason};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

pub const CREDENTIAL: &str = "desk-credential-0123456789abcdef";
/// Upper bound for any wait in these tests (a safety net against hangs, not a timing assertion).
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Every test's log lines, captured (`lockdesk_testkit::logs`); rustls's crypto provider set.
pub fn capture_logs() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    lockdesk_testkit::logs::capture();
}

pub fn logs() -> String {
    lockdesk_testkit::logs::text()
}

// ---------------------------------------------------------------------------------------------
// Sinks

/// A client (`cfg`) on `sink`, its states recorded, run until the sink's cursor reaches `seq`,
/// then shut down; the client (its counters) and the recorder of the states it went through.
pub async fn run_until_cursor(
    cfg: lockdesk_feed_client::Config,
    sink: &Memory,
    seq: u64,
) -> (lockdesk_feed_client::FeedClient, Recorder) {
    let client = lockdesk_feed_client::FeedClient::spawn(cfg, sink.clone()).unwrap();
    let recorder = Recorder::start(client.state());
    sink.wait_cursor(seq).await;
    client.shutdown().await;
    (client, recorder)
}

/// A client (`cfg`) on a new SQLite store, aborted (as a crash) once a third of `n` entries are
/// in; once its sink let go of the file, `after_crash` gets the store's census (rows, distinct,
/// max seq, cursor; the abort came mid-stream: cursor < n); then a second client on the same
/// file runs until the cursor reaches `n`, and the store holds every entry exactly once.
pub async fn crash_and_restart_on_sqlite(
    cfg: lockdesk_feed_client::Config,
    n: u64,
    after_crash: impl FnOnce((u64, u64, u64, u64)),
) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("desk.sqlite3");
    let (progress, mut rx) = tokio::sync::watch::channel(0u64);
    let progress = Arc::new(progress);
    let (sink, mut dropped) = Sqlite::open(&db, progress.clone()).with_drop_signal();
    let first = lockdesk_feed_client::FeedClient::spawn(cfg.clone(), sink).unwrap();
    tokio::time::timeout(PATIENCE, rx.wait_for(|c| *c >= n / 3))
        .await
        .unwrap()
        .unwrap();
    first.abort();
    // In a real crash the process is gone; here the sink's thread may finish the transaction it
    // is in first: the next client starts only once it let go of the file.
    tokio::time::timeout(PATIENCE, dropped.recv())
        .await
        .unwrap();
    let census = Sqlite::census(&db);
    assert!(census.3 < n, "the abort came too late to be mid-stream");
    after_crash(census);

    let second = lockdesk_feed_client::FeedClient::spawn(cfg, Sqlite::open(&db, progress)).unwrap();
    tokio::time::timeout(PATIENCE, rx.wait_for(|c| *c >= n))
        .await
        .unwrap()
        .unwrap();
    second.shutdown().await;
    assert_eq!(Sqlite::census(&db), (n, n, n, n));
}

#[derive(Default)]
pub struct MemoryState {
    pub cursor: u64,
    /// Every applied entry's seq, in application order (duplicates would show).
    pub applied: Vec<u64>,
    pub batch_sizes: Vec<usize>,
    pub seen: Vec<u64>,
    /// Fail this many apply calls (committing nothing) before succeeding.
    pub fail_applies: u32,
    pub cursor_calls: u32,
}

/// The caller's store, in memory: a test double of the desk core's store.
#[derive(Clone)]
pub struct Memory {
    pub state: Arc<Mutex<MemoryState>>,
    progress: Arc<watch::Sender<u64>>,
}

impl Memory {
    pub fn new(cursor: u64) -> Memory {
        let (progress, _) = watch::channel(cursor);
        Memory {
            state: Arc::new(Mutex::new(MemoryState {
                cursor,
                ..Default::default()
            })),
            progress: Arc::new(progress),
        }
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, MemoryState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until the cursor reaches `seq`.
    pub async fn wait_cursor(&self, seq: u64) {
        let mut rx = self.progress.subscribe();
        tokio::time::timeout(PATIENCE, rx.wait_for(|c| *c >= seq))
            .await
            .unwrap_or_else(|_| panic!("cursor never reached {seq} (at {})", self.lock().cursor))
            .unwrap();
    }
}

impl Sink for Memory {
    type Error = String;

    fn cursor(&mut self) -> Result<u64, String> {
        let mut s = self.lock();
        s.cursor_calls += 1;
        Ok(s.cursor)
    }

    fn apply(&mut self, entries: Vec<Entry>) -> Result<(), String> {
        let mut s = self.lock();
        if s.fail_applies > 0 {
            s.fail_applies -= 1;
            return Err("disk full (test)".into());
        }
        assert!(!entries.is_empty(), "apply called with no entries");
        assert!(
            entries.windows(2).all(|w| w[0].seq < w[1].seq),
            "a batch out of order"
        );
        assert!(entries[0].seq > s.cursor, "an entry at or below the cursor");
        s.batch_sizes.push(entries.len());
        s.applied.extend(entries.iter().map(|e| e.seq));
        s.cursor = entries.last().map(|e| e.seq).unwrap_or(s.cursor);
        let cursor = s.cursor;
        drop(s);
        self.progress.send_replace(cursor);
        Ok(())
    }

    fn seen(&mut self, seq: u64) {
        let mut s = self.lock();
        s.seen.push(seq);
        if seq > s.cursor {
            s.cursor = seq;
        }
        let cursor = s.cursor;
        drop(s);
        self.progress.send_replace(cursor);
    }
}

/// A real SQLite store: entries and cursor committed in one transaction. Entries have no
/// uniqueness constraint on purpose, so that a duplicate would be visible.
pub struct Sqlite {
    conn: rusqlite::Connection,
    progress: Arc<watch::Sender<u64>>,
    /// Dropped with the sink: lets a test wait until the sink's thread has let go of it.
    alive: Option<tokio::sync::mpsc::Sender<()>>,
}

impl Sqlite {
    pub fn open(path: &Path, progress: Arc<watch::Sender<u64>>) -> Sqlite {
        let conn = rusqlite::Connection::open(path).unwrap();
        conn.busy_timeout(Duration::from_secs(10)).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             PRAGMA synchronous=FULL;
             CREATE TABLE IF NOT EXISTS entry (seq INTEGER NOT NULL, event_id TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS cursor (id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL);
             INSERT OR IGNORE INTO cursor (id, seq) VALUES (1, 0);",
        )
        .unwrap();
        Sqlite {
            conn,
            progress,
            alive: None,
        }
    }

    /// The receiver's `recv()` returns `None` once this sink is dropped.
    pub fn with_drop_signal(mut self) -> (Sqlite, tokio::sync::mpsc::Receiver<()>) {
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        self.alive = Some(tx);
        (self, rx)
    }

    /// (rows, distinct seqs, max seq, cursor) of the file.
    pub fn census(path: &Path) -> (u64, u64, u64, u64) {
        let conn = rusqlite::Connection::open(path).unwrap();
        conn.busy_timeout(Duration::from_secs(10)).unwrap();
        conn.query_row(
            "SELECT COUNT(*), COUNT(DISTINCT seq), COALESCE(MAX(seq), 0), (SELECT seq FROM cursor) FROM entry",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap()
    }
}

impl Sink for Sqlite {
    type Error = rusqlite::Error;

    fn cursor(&mut self) -> Result<u64, rusqlite::Error> {
        self.conn
            .query_row("SELECT seq FROM cursor WHERE id = 1", [], |r| r.get(0))
    }

    fn apply(&mut self, entries: Vec<Entry>) -> Result<(), rusqlite::Error> {
        let tx = self.conn.transaction()?;
        {
            let mut insert =
                tx.prepare_cached("INSERT INTO entry (seq, event_id) VALUES (?1, ?2)")?;
            for e in &entries {
                let id = e.payload["eventId"].as_str().unwrap_or("").to_string();
                insert.execute(rusqlite::params![e.seq, id])?;
            }
        }
        let last = entries.last().map(|e| e.seq).unwrap_or(0);
        tx.execute("UPDATE cursor SET seq = ?1 WHERE id = 1", [last])?;
        tx.commit()?;
        self.progress.send_replace(last);
        Ok(())
    }

    fn seen(&mut self, seq: u64) {
        let _ = self.conn.execute(
            "UPDATE cursor SET seq = ?1 WHERE id = 1 AND seq < ?1",
            [seq],
        );
    }
}

// ---------------------------------------------------------------------------------------------
// States

/// Records every state the client publishes (as seen by a watcher task).
pub struct Recorder {
    pub states: Arc<Mutex<Vec<State>>>,
}

impl Recorder {
    pub fn start(mut rx: watch::Receiver<State>) -> Recorder {
        let states = Arc::new(Mutex::new(vec![rx.borrow_and_update().clone()]));
        let out = states.clone();
        tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                let s = rx.borrow_and_update().clone();
                out.lock().unwrap().push(s);
            }
        });
        Recorder { states }
    }

    pub fn all(&self) -> Vec<State> {
        self.states.lock().unwrap().clone()
    }
}

/// Waits until the client's state satisfies `pred`; returns that state.
/// Waits (naming `what`) until the client is connected; the state names `url`, the cursor the
/// connection resumed after and the log's end from hello.
pub async fn assert_connected(
    state: &mut watch::Receiver<State>,
    what: &str,
    url: String,
    after: u64,
    last_seq: u64,
) {
    let connected = wait_state(state, what, |s| matches!(s, State::Connected { .. })).await;
    assert_eq!(
        connected,
        State::Connected {
            url,
            after,
            last_seq
        }
    );
}

pub async fn wait_state(
    rx: &mut watch::Receiver<State>,
    what: &str,
    pred: impl FnMut(&State) -> bool,
) -> State {
    let result = match tokio::time::timeout(PATIENCE, rx.wait_for(pred)).await {
        Ok(Ok(s)) => Some(s.clone()),
        Ok(Err(_)) => panic!("state channel closed while waiting for {what}"),
        Err(_) => None,
    };
    result.unwrap_or_else(|| panic!("never reached {what}; last state {:?}", *rx.borrow()))
}

/// Waits until the client has stopped for good; the reason.
pub async fn wait_stopped(rx: &mut watch::Receiver<State>) -> StopReason {
    match wait_state(rx, "stopped", |s| matches!(s, State::Stopped { .. })).await {
        State::Stopped { reason } => reason,
        other => panic!("not stopped: {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// The in-test server

pub type ServerWs = WebSocketStream<TcpStream>;

/// What the client sent on its upgrade request.
#[derive(Clone, Debug)]
pub struct Upgrade {
    pub uri: String,
    pub authorization: Option<String>,
    pub protocols: Option<String>,
    pub after: u64,
}

pub struct Conn {
    pub index: usize,
    pub after: u64,
    pub ws: ServerWs,
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub upgrades: Arc<Mutex<Vec<Upgrade>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestServer {
    /// Serves WebSocket upgrades on 127.0.0.1:0; each accepted connection goes to `handler`.
    /// `reject` answers the upgrade with that status instead.
    pub async fn start<F, Fut>(reject: Option<u16>, handler: F) -> TestServer
    where
        F: Fn(Conn) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let upgrades: Arc<Mutex<Vec<Upgrade>>> = Arc::default();
        let handler = Arc::new(handler);
        let seen = upgrades.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let seen = seen.clone();
                let handler = handler.clone();
                tokio::spawn(async move {
                    // The upgrade is recorded in the callback, before the answer is written, so
                    // that a client that saw the answer can count on it being recorded.
                    let info: Arc<Mutex<Option<(usize, u64)>>> = Arc::default();
                    let slot = info.clone();
                    let record = seen.clone();
                    let callback = move |req: &Request, mut resp: Response| {
                        let header = |name: &str| {
                            req.headers()
                                .get(name)
                                .and_then(|v| v.to_str().ok())
                                .map(str::to_string)
                        };
                        let uri = req.uri().to_string();
                        let after = uri
                            .split("after=")
                            .nth(1)
                            .and_then(|v| v.split('&').next())
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(0);
                        let index = {
                            let mut all = record.lock().unwrap();
                            all.push(Upgrade {
                                uri,
                                authorization: header("authorization"),
                                protocols: header("sec-websocket-protocol"),
                                after,
                            });
                            all.len() - 1
                        };
                        *slot.lock().unwrap() = Some((index, after));
                        if let Some(status) = reject {
                            let mut e = ErrorResponse::new(Some("no".into()));
                            *e.status_mut() = StatusCode::from_u16(status).unwrap();
                            return Err(e);
                        }
                        resp.headers_mut().insert(
                            "sec-websocket-protocol",
                            HeaderValue::from_static(SUBPROTOCOL),
                        );
                        Ok(resp)
                    };
                    let accepted = tokio_tungstenite::accept_hdr_async(stream, callback).await;
                    let upgrade = info.lock().unwrap().take();
                    let Some((index, after)) = upgrade else {
                        return;
                    };
                    if let Ok(ws) = accepted {
                        handler(Conn { index, after, ws }).await;
                    }
                });
            }
        });
        TestServer {
            addr,
            upgrades,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    pub fn upgrades(&self) -> Vec<Upgrade> {
        self.upgrades.lock().unwrap().clone()
    }
}

pub fn hello(after: u64, last_seq: u64, heartbeat_secs: u64) -> Message {
    hello_with_log(after, last_seq, heartbeat_secs, None)
}

/// [`hello`] naming the log (`log_id`), as a gateway with a log identity sends it.
pub fn hello_with_log(
    after: u64,
    last_seq: u64,
    heartbeat_secs: u64,
    log_id: Option<&str>,
) -> Message {
    Message::text(
        ServerMessage::Hello(Hello {
            protocol: 1,
            subscriber: "sam".into(),
            role: Role::Supervisor,
            operator_ids: vec![],
            after,
            last_seq,
            heartbeat_secs,
            log_id: log_id.map(str::to_owned),
        })
        .to_text(),
    )
}

pub fn entry(seq: u64) -> Message {
    Message::text(
        ServerMessage::Entry(Entry {
            seq,
            kind: EntryKind::Webhook,
            received_at_ms: 1_767_261_600_000 + seq as i64,
            event_type: Some("v2.conversation.pushed".into()),
            payload: json!({"eventId": format!("evt-{seq}"), "eventType": "v2.conversation.pushed"}),
            related: vec![],
            routing: Default::default(),
        })
        .to_text(),
    )
}

pub fn heartbeat(seq: u64) -> Message {
    Message::text(ServerMessage::Heartbeat { seq }.to_text())
}

pub async fn close(ws: &mut ServerWs, code: u16, reason: &str) {
    let _ = ws
        .send(Message::Close(Some(CloseFrame {
            code: CloseCode::from(code),
            reason: reason.to_string().into(),
        })))
        .await;
    // Let the client read it before the socket goes.
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
}

/// Sends hello and entries `after+1..=upto`.
pub async fn serve_range(ws: &mut ServerWs, after: u64, last_seq: u64, upto: u64, hb: u64) {
    ws.send(hello(after, last_seq, hb)).await.unwrap();
    for seq in after + 1..=upto {
        if ws.feed(entry(seq)).await.is_err() {
            return;
        }
    }
    let _ = ws.flush().await;
}

/// Reads the client's frames until it closes; returns the acks' seqs and the close code.
pub async fn read_client(ws: &mut ServerWs) -> (Vec<u64>, Option<u16>) {
    let mut acks = Vec::new();
    while let Some(Ok(m)) = ws.next().await {
        match m {
            Message::Text(t) => {
                if let Ok(ClientMessage::Ack { seq }) = ClientMessage::parse(t.as_str()) {
                    acks.push(seq);
                }
            }
            Message::Close(f) => return (acks, f.map(|f| u16::from(f.code))),
            _ => {}
        }
    }
    (acks, None)
}

pub fn assert_exactly(applied: &[u64], n: u64) {
    let expected: Vec<u64> = (1..=n).collect();
    if applied != expected.as_slice() {
        let dupes = applied.len() as i64 - n as i64;
        panic!(
            "sink holds {} entries (expected 1..={n}, difference {dupes}); first mismatch at index {:?}",
            applied.len(),
            applied.iter().zip(&expected).position(|(a, b)| a != b)
        );
    }
}
