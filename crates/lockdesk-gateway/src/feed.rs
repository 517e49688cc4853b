//! The desks' feed (`GET /v1/feed`, docs/feed-protocol.md): one [`Hub`] fans the log out to every
//! connection; each connection catches up from the store, then follows the hub live.
//!
//! - The hub's tail task is the only live reader of the store: it wakes when the store commits,
//!   and while no connection is registered only moves its dispatch position (a connection that
//!   registers later reads up to that position from the store); otherwise it reads the new
//!   entries once (with the audience computed at append time, see `routing`) and
//!   hands each connection a pre-serialised frame with `try_send` on that connection's bounded
//!   queue. A full queue removes the connection from the hub and tells it to send `resume` and
//!   close 4001: a slow desk never stalls the others and never silently misses an entry.
//! - A connection first reads its view of the log page by page (`read_feed`, indexed by
//!   audience), then registers with the hub, reads what was committed in between, and from then
//!   on forwards its queue, skipping what it already sent (by `seq`).
//! - `heartbeat.seq` is taken from the hub's dispatch position *before* draining the queue, so
//!   every entry up to it that the desk may see has been written before the heartbeat.
//!
//! Must not: await a socket while holding the hub's lock or inside the router; query the store
//! per subscriber per live entry; log a credential or a payload.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use lockdesk_feed::{
    close, ClientMessage, EntryRouting, Hello, RawEntry, RawRelated, Role, ServerMessage,
};
use serde_json::value::RawValue;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

use crate::access::Standing;
use crate::metrics::Metrics;
use crate::store::{EntryKind, EventStore, FeedFilter, FeedItem, RoutedEntry, StoredEntry};

/// Entries per catch-up read.
const PAGE: usize = 256;
/// Entries per live read of the tail task, at most: also never more than a quarter of a
/// connection's queue, so that one burst cannot fill the queue of a desk that keeps up (it would
/// take several dispatches during which that desk's task never ran).
const TAIL_BATCH: usize = 128;
/// The largest frame a desk may send (desks send only small `ack`s).
pub const MAX_CLIENT_FRAME: usize = lockdesk_feed::MAX_CLIENT_FRAME_BYTES;

/// A subscriber as configured.
#[derive(Debug, PartialEq, Eq)]
pub struct SubscriberInfo {
    pub name: String,
    pub role: Role,
    pub operator_ids: Vec<u64>,
}

/// One serialised `entry` (or the close of an overflowed queue).
#[derive(Clone)]
struct Frame {
    seq: u64,
    text: Utf8Bytes,
}

/// What `/metrics` reads of a connection.
pub struct ConnStats {
    subscriber: Arc<SubscriberInfo>,
    /// Last `ack` received (0 = none).
    acked: AtomicU64,
}

struct Sub {
    tx: mpsc::Sender<Frame>,
    kick: Option<oneshot::Sender<()>>,
    stats: Arc<ConnStats>,
}

#[derive(Default)]
struct Subscribers {
    next_id: u64,
    supervisors: HashMap<u64, Sub>,
    advisors: HashMap<u64, Sub>,
    by_operator: HashMap<u64, Vec<u64>>,
}

/// Fan-out state shared by the tail task and every connection.
pub struct Hub {
    store: Arc<dyn EventStore>,
    subs: Mutex<Subscribers>,
    /// Every entry with `seq <= routed` has been handed to the queues of the connections
    /// registered at that time.
    routed: AtomicU64,
    metrics: Arc<Metrics>,
    pub(crate) options: FeedOptions,
}

/// Feed settings (not in the configuration file).
#[derive(Clone, Copy, Debug)]
pub struct FeedOptions {
    /// Messages a connection may have waiting before it is told to resume.
    pub queue: usize,
    /// A heartbeat is sent when nothing else was for this long; a socket that does not accept a
    /// write for three times this long is closed.
    pub heartbeat: Duration,
}

impl Default for FeedOptions {
    fn default() -> Self {
        FeedOptions {
            queue: 1024,
            heartbeat: Duration::from_secs(15),
        }
    }
}

fn lock(m: &Mutex<Subscribers>) -> std::sync::MutexGuard<'_, Subscribers> {
    // The map stays consistent under a panic (every mutation is a single insert/remove).
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Per-role counts, the largest queue backlog, and each acking subscriber's lag (for metrics).
pub struct FeedSnapshot {
    pub advisors: usize,
    pub supervisors: usize,
    pub routed: u64,
    pub max_queue: usize,
    /// (subscriber name, log position − its last ack), largest per name.
    pub ack_lag: Vec<(String, u64)>,
}

impl Hub {
    pub fn new(store: Arc<dyn EventStore>, metrics: Arc<Metrics>, options: FeedOptions) -> Hub {
        let routed = *store.committed().borrow();
        Hub {
            store,
            subs: Mutex::default(),
            routed: AtomicU64::new(routed),
            metrics,
            options,
        }
    }

    fn routed(&self) -> u64 {
        self.routed.load(Ordering::Acquire)
    }

    /// With no connection registered, nothing needs the entries up to `target` live: moves the
    /// dispatch position there without reading them, under the lock [`Hub::register`] takes, so
    /// a connection registering later is handed that position and reads up to it from the store
    /// (an instance no desk is connected to reads nothing of what the others append). Returns
    /// whether it did.
    fn pass_while_idle(&self, target: u64) -> bool {
        let subs = lock(&self.subs);
        if !(subs.supervisors.is_empty() && subs.advisors.is_empty()) {
            return false;
        }
        if self.routed() < target {
            self.routed.store(target, Ordering::Release);
        }
        true
    }

    pub fn snapshot(&self) -> FeedSnapshot {
        let subs = lock(&self.subs);
        let routed = self.routed();
        let mut max_queue = 0;
        let mut lag: HashMap<String, u64> = HashMap::new();
        for sub in subs.supervisors.values().chain(subs.advisors.values()) {
            max_queue = max_queue.max(sub.tx.max_capacity() - sub.tx.capacity());
            let acked = sub.stats.acked.load(Ordering::Relaxed);
            if acked > 0 {
                let l = lag.entry(sub.stats.subscriber.name.clone()).or_default();
                *l = (*l).max(routed.saturating_sub(acked));
            }
        }
        let mut ack_lag: Vec<_> = lag.into_iter().collect();
        ack_lag.sort();
        FeedSnapshot {
            advisors: subs.advisors.len(),
            supervisors: subs.supervisors.len(),
            routed,
            max_queue,
            ack_lag,
        }
    }

    /// Adds a connection; returns its id, its queue, the kick that tells it its queue overflowed,
    /// and the dispatch position at registration (every later entry goes to its queue).
    fn register(
        &self,
        subscriber: &Arc<SubscriberInfo>,
    ) -> (
        u64,
        mpsc::Receiver<Frame>,
        oneshot::Receiver<()>,
        Arc<ConnStats>,
        u64,
    ) {
        let (tx, rx) = mpsc::channel(self.options.queue.max(1));
        let (kick_tx, kick_rx) = oneshot::channel();
        let stats = Arc::new(ConnStats {
            subscriber: subscriber.clone(),
            acked: AtomicU64::new(0),
        });
        let mut subs = lock(&self.subs);
        subs.next_id += 1;
        let id = subs.next_id;
        let sub = Sub {
            tx,
            kick: Some(kick_tx),
            stats: stats.clone(),
        };
        match subscriber.role {
            Role::Supervisor => {
                subs.supervisors.insert(id, sub);
            }
            Role::Advisor => {
                for op in &subscriber.operator_ids {
                    subs.by_operator.entry(*op).or_default().push(id);
                }
                subs.advisors.insert(id, sub);
            }
        }
        (id, rx, kick_rx, stats, self.routed())
    }

    fn unregister(&self, id: u64) -> Option<Sub> {
        let mut subs = lock(&self.subs);
        remove(&mut subs, id)
    }

    /// Hands `batch` (consecutive entries after `routed`) to every connection that may see them.
    fn dispatch(&self, batch: Vec<RoutedEntry>) {
        // Serialise outside the lock: one text per entry, plus one with the `related` bundle.
        let prepared: Vec<_> = batch
            .into_iter()
            .map(|r| {
                let plain = entry_frame(&r.entry, &[]);
                let bundled =
                    (!r.audience.related.is_empty()).then(|| entry_frame(&r.entry, &r.related));
                (plain, bundled, r.audience)
            })
            .collect();
        let mut overflowed = Vec::new();
        let mut sent = 0u64;
        let mut subs = lock(&self.subs);
        let mut targets: HashMap<u64, bool> = HashMap::new();
        for (plain, bundled, audience) in prepared {
            let seq = plain.seq;
            for (id, sub) in &subs.supervisors {
                offer(*id, sub, &plain, &mut overflowed, &mut sent);
            }
            targets.clear();
            for op in &audience.operators {
                let related = audience.related.binary_search(op).is_ok();
                for id in subs.by_operator.get(op).into_iter().flatten() {
                    let t = targets.entry(*id).or_default();
                    *t |= related;
                }
            }
            for (id, related) in &targets {
                if let Some(sub) = subs.advisors.get(id) {
                    let frame = match (&bundled, related) {
                        (Some(b), true) => b,
                        _ => &plain,
                    };
                    offer(*id, sub, frame, &mut overflowed, &mut sent);
                }
            }
            self.routed.store(seq, Ordering::Release);
        }
        overflowed.sort_unstable();
        overflowed.dedup();
        for id in overflowed {
            if let Some(mut sub) = remove(&mut subs, id) {
                self.metrics.feed_overflow();
                if let Some(kick) = sub.kick.take() {
                    let _ = kick.send(());
                }
            }
        }
        drop(subs);
        self.metrics.feed_dispatched(sent);
    }
}

fn remove(subs: &mut Subscribers, id: u64) -> Option<Sub> {
    if let Some(sub) = subs.supervisors.remove(&id) {
        return Some(sub);
    }
    let sub = subs.advisors.remove(&id)?;
    for op in &sub.stats.subscriber.operator_ids {
        if let Some(ids) = subs.by_operator.get_mut(op) {
            ids.retain(|i| *i != id);
            if ids.is_empty() {
                subs.by_operator.remove(op);
            }
        }
    }
    Some(sub)
}

fn offer(id: u64, sub: &Sub, frame: &Frame, overflowed: &mut Vec<u64>, sent: &mut u64) {
    match sub.tx.try_send(frame.clone()) {
        Ok(()) => *sent += 1,
        Err(mpsc::error::TrySendError::Full(_)) => overflowed.push(id),
        // The connection is ending; it unregisters itself.
        Err(mpsc::error::TrySendError::Closed(_)) => {}
    }
}

/// The stored payload text as it is: relayed byte for byte, never parsed and re-serialised
/// (`RawEntry`). Text that is not one JSON value (a damaged row) goes out as `null`.
fn raw_payload(entry: &StoredEntry) -> Box<RawValue> {
    lockdesk_feed::raw_payload(entry.payload.clone()).unwrap_or_else(|e| {
        tracing::error!(seq = entry.seq, error = %e, "stored payload is not JSON; sent as null");
        lockdesk_feed::raw_payload("null".to_owned()).expect("null is JSON")
    })
}

/// The `entry` message of a stored entry, with the routing fields the gateway read when it
/// accepted the entry (docs/feed-protocol.md, "entry").
fn entry_text(entry: &StoredEntry, related: &[StoredEntry]) -> String {
    let kind = match entry.kind {
        EntryKind::Webhook => lockdesk_feed::EntryKind::Webhook,
        EntryKind::Evidence => lockdesk_feed::EntryKind::Evidence,
    };
    let mut raw = RawEntry::new(
        entry.seq,
        kind,
        entry.received_at_ms,
        entry.event_type.clone(),
        raw_payload(entry),
    );
    raw.related = related
        .iter()
        .map(|r| RawRelated {
            seq: r.seq,
            received_at_ms: r.received_at_ms,
            payload: raw_payload(r),
        })
        .collect();
    raw.routing = EntryRouting {
        conversation_id: entry.conversation_id.clone(),
        visitor_id: entry.visitor_id.clone(),
        operator_ids: match entry.kind {
            EntryKind::Webhook => Some(entry.operator_ids.clone()),
            EntryKind::Evidence => None,
        },
    };
    raw.to_text()
}

fn entry_frame(entry: &StoredEntry, related: &[StoredEntry]) -> Frame {
    Frame {
        seq: entry.seq,
        text: Utf8Bytes::from(entry_text(entry, related)),
    }
}

/// Resolves once `shutdown` is true (or its sender is gone).
pub async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not `Send`: drop it here.
    let _ = shutdown.wait_for(|stop| *stop).await.is_ok();
}

/// The hub's live reader: wakes on every commit, reads what is new once, dispatches it.
pub async fn tail(hub: Arc<Hub>, mut shutdown: watch::Receiver<bool>) {
    let mut committed = hub.store.committed();
    loop {
        let target = *committed.borrow_and_update();
        while hub.routed() < target {
            if hub.pass_while_idle(target) {
                break;
            }
            let after = hub.routed();
            let store = hub.store.clone();
            let batch = TAIL_BATCH.min(hub.options.queue / 4).max(1);
            match tokio::task::spawn_blocking(move || store.read_routed_after(after, batch)).await {
                Ok(Ok(batch)) if !batch.is_empty() => {
                    hub.metrics.feed_tail_read(batch.len() as u64);
                    hub.dispatch(batch)
                }
                Ok(Ok(_)) => break,
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "feed: cannot read the log; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => {
                    tracing::error!(error = %e, "feed: log read task failed; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
        tokio::select! {
            changed = committed.changed() => if changed.is_err() { return },
            _ = stopped(&mut shutdown) => return,
        }
    }
}

type Socket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// Why a connection ended (for logs).
#[derive(Debug)]
enum End {
    Closed(u16),
    Gone,
}

struct Conn {
    ws: Socket,
    hub: Arc<Hub>,
    subscriber: Arc<SubscriberInfo>,
    /// Highest seq the desk has been sent (entry or heartbeat).
    cursor: u64,
    last_write: Instant,
    /// The configuration as it concerns this connection's credential (reloads).
    access: crate::access::Watch,
}

impl Conn {
    /// Ends the connection after a reload changed its credential's standing: 4003 when it was
    /// removed, `resume` + 4001 when it names a changed subscriber.
    async fn reconfigured(&mut self, standing: Standing) -> End {
        let name = self.subscriber.name.clone();
        if standing == Standing::Revoked {
            tracing::info!(
                subscriber = name,
                "feed: credential removed by a configuration reload; closing 4003"
            );
            self.hub.metrics.rejected("feed", "revoked");
            return self
                .close(close::CREDENTIAL_REVOKED, "credential revoked")
                .await;
        }
        let after = self.cursor;
        tracing::info!(
            subscriber = name,
            after,
            "feed: subscriber reconfigured; told to resume"
        );
        let resume = ServerMessage::Resume {
            after,
            reason: lockdesk_feed::RESUME_RECONFIGURED.into(),
        };
        if let Err(end) = self.send(&resume).await {
            return end;
        }
        self.close(close::RESUME, "resume").await
    }

    async fn write(&mut self, msg: Message) -> Result<(), End> {
        self.write_all(std::iter::once(msg)).await
    }

    /// Writes `msgs` and flushes once (one syscall for a burst of small frames).
    async fn write_all(&mut self, msgs: impl IntoIterator<Item = Message>) -> Result<(), End> {
        let limit = self.hub.options.heartbeat * 3;
        let ws = &mut self.ws;
        let io = async move {
            for msg in msgs {
                ws.feed(msg).await?;
            }
            ws.flush().await
        };
        match tokio::time::timeout(limit, io).await {
            Ok(Ok(())) => {
                self.last_write = Instant::now();
                Ok(())
            }
            Ok(Err(_)) => Err(End::Gone),
            Err(_) => {
                tracing::info!(
                    subscriber = self.subscriber.name,
                    "feed: socket accepted no write for 3 heartbeats; closing"
                );
                Err(End::Gone)
            }
        }
    }

    async fn send(&mut self, msg: &ServerMessage) -> Result<(), End> {
        self.write(Message::Text(Utf8Bytes::from(msg.to_text())))
            .await
    }

    async fn close(&mut self, code: u16, reason: &'static str) -> End {
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: Utf8Bytes::from_static(reason),
        };
        let _ = self.write(Message::Close(Some(frame))).await;
        End::Closed(code)
    }

    async fn send_items(&mut self, items: Vec<FeedItem>) -> Result<(), End> {
        for item in items {
            if item.entry.seq <= self.cursor {
                continue;
            }
            let text = entry_text(&item.entry, &item.related);
            self.write(Message::Text(Utf8Bytes::from(text))).await?;
            self.cursor = item.entry.seq;
            self.hub.metrics.feed_dispatched(1);
        }
        Ok(())
    }

    /// Sends the subscriber's view of the log after the cursor up to at least `until`.
    async fn catch_up(&mut self, until: u64) -> Result<(), End> {
        loop {
            // A reload is noticed between pages too: a revoked desk reading a long history
            // slowly must not keep it flowing.
            if let Some(standing) = self.access.pending() {
                return Err(self.reconfigured(standing).await);
            }
            let store = self.hub.store.clone();
            let sub = self.subscriber.clone();
            let after = self.cursor;
            let page = tokio::task::spawn_blocking(move || {
                let filter = match sub.role {
                    Role::Supervisor => FeedFilter::All,
                    Role::Advisor => FeedFilter::Operators(&sub.operator_ids),
                };
                store.read_feed(after, filter, PAGE)
            })
            .await;
            let page = match page {
                Ok(Ok(p)) => p,
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "feed: catch-up read failed");
                    return Err(self.close(1011, "the log could not be read").await);
                }
                Err(_) => return Err(self.close(1011, "the log could not be read").await),
            };
            let full = page.items.len() >= PAGE;
            self.send_items(page.items).await?;
            self.cursor = self.cursor.max(page.scanned_to);
            if !full && self.cursor >= until {
                return Ok(());
            }
        }
    }

    async fn heartbeat(&mut self, queue: &mut mpsc::Receiver<Frame>) -> Result<(), End> {
        // Position first, then drain: everything up to `position` is already in the queue.
        let position = self.hub.routed();
        while let Ok(frame) = queue.try_recv() {
            self.forward(frame, queue).await?;
        }
        self.cursor = self.cursor.max(position);
        let seq = self.cursor;
        self.send(&ServerMessage::Heartbeat { seq }).await
    }

    /// Writes `first` and whatever else is already queued (up to a bound), flushing once: a
    /// connection that wakes up late catches up in one write instead of one per entry.
    async fn forward(
        &mut self,
        first: Frame,
        queue: &mut mpsc::Receiver<Frame>,
    ) -> Result<(), End> {
        const BURST: usize = 64;
        let mut frames = Vec::with_capacity(4);
        let mut cursor = self.cursor;
        let mut next = Some(first);
        while let Some(frame) = next.take() {
            if frame.seq > cursor {
                cursor = frame.seq;
                frames.push(Message::Text(frame.text));
            }
            if frames.len() < BURST {
                next = queue.try_recv().ok();
            }
        }
        if frames.is_empty() {
            return Ok(());
        }
        self.write_all(frames).await?;
        self.cursor = cursor;
        Ok(())
    }

    /// A frame refused: counted and logged as `metric`, then the connection closed with a
    /// protocol error saying `reason`.
    async fn refuse(&mut self, metric: &'static str, reason: &'static str) -> End {
        self.reject(metric);
        self.close(close::PROTOCOL_ERROR, reason).await
    }

    fn reject(&self, reason: &'static str) {
        self.hub.metrics.rejected("feed", reason);
        tracing::info!(
            subscriber = self.subscriber.name,
            reason,
            "feed: frame refused"
        );
    }

    /// Handles one message from the desk; `Err` ends the connection.
    async fn on_client(
        &mut self,
        msg: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
        stats: &ConnStats,
    ) -> Result<(), End> {
        use tokio_tungstenite::tungstenite::Error as WsError;
        match msg {
            None | Some(Ok(Message::Close(_))) => Err(End::Gone),
            Some(Ok(Message::Text(text))) => match ClientMessage::parse(text.as_str()) {
                Ok(ClientMessage::Ack { seq }) => {
                    // An ack beyond what was sent is the desk's bug: count it as what was sent.
                    stats.acked.store(seq.min(self.cursor), Ordering::Relaxed);
                    Ok(())
                }
                // Additive changes within v1: ignore what we do not know.
                Ok(ClientMessage::Unknown) => Ok(()),
                Err(_) => Err(self.refuse("frame_malformed", "not a feed message").await),
            },
            Some(Ok(Message::Binary(_))) => Err(self
                .refuse("frame_binary", "binary frames are not part of the protocol")
                .await),
            // tungstenite answers pings itself.
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => Ok(()),
            Some(Err(WsError::Capacity(_))) => {
                Err(self.refuse("frame_too_large", "frame too large").await)
            }
            Some(Err(WsError::Utf8(_))) => Err(self
                .refuse("frame_malformed", "text frame is not UTF-8")
                .await),
            Some(Err(WsError::Protocol(_))) => Err(self
                .refuse("frame_malformed", "WebSocket protocol error")
                .await),
            Some(Err(_)) => Err(End::Gone),
        }
    }
}

/// Serves one upgraded connection until it ends.
pub async fn serve_connection(
    hub: Arc<Hub>,
    ws: Socket,
    subscriber: Arc<SubscriberInfo>,
    after: u64,
    mut shutdown: watch::Receiver<bool>,
    access: crate::access::Watch,
) {
    let last_seq = *hub.store.committed().borrow();
    let mut conn = Conn {
        ws,
        hub: hub.clone(),
        subscriber: subscriber.clone(),
        cursor: after,
        last_write: Instant::now(),
        access,
    };
    hub.metrics.feed_connected(after > 0);
    let hello = ServerMessage::Hello(Hello {
        protocol: lockdesk_feed::PROTOCOL_VERSION,
        subscriber: subscriber.name.clone(),
        role: subscriber.role,
        operator_ids: subscriber.operator_ids.clone(),
        after,
        last_seq,
        heartbeat_secs: hub.options.heartbeat.as_secs().max(1),
        log_id: Some(hub.store.log_id().to_owned()),
    });
    let end = async {
        conn.send(&hello).await?;
        if after > last_seq {
            hub.metrics.rejected("feed", "after_beyond_end");
            return Err(conn
                .close(close::AFTER_BEYOND_END, "after is beyond the end of the log")
                .await);
        }
        // Most of the history before registering (a long catch-up must not fill the queue)...
        conn.catch_up(hub.routed()).await?;
        let (id, mut queue, mut kick, stats, live_from) = hub.register(&subscriber);
        let result = async {
            // ...and what was committed in between; the queue has everything after `live_from`.
            conn.catch_up(live_from).await?;
            loop {
                let idle_until = conn.last_write + hub.options.heartbeat;
                tokio::select! {
                    biased;
                    _ = &mut kick => {
                        let after = conn.cursor;
                        tracing::info!(subscriber = subscriber.name, after, "feed: queue overflow; told to resume");
                        conn.send(&ServerMessage::Resume { after, reason: lockdesk_feed::RESUME_OVERFLOW.into() }).await?;
                        return Err(conn.close(close::RESUME, "resume").await);
                    }
                    _ = stopped(&mut shutdown) => {
                        return Err(conn.close(1001, "gateway shutting down").await);
                    }
                    standing = conn.access.next_change() => return Err(match standing {
                        Some(standing) => conn.reconfigured(standing).await,
                        None => conn.close(1001, "gateway shutting down").await,
                    }),
                    frame = queue.recv() => match frame {
                        Some(frame) => conn.forward(frame, &mut queue).await?,
                        // Removed from the hub without a kick: only at shutdown.
                        None => return Err(conn.close(1001, "gateway shutting down").await),
                    },
                    msg = conn.ws.next() => conn.on_client(msg, &stats).await?,
                    _ = tokio::time::sleep_until(idle_until) => conn.heartbeat(&mut queue).await?,
                }
            }
        }
        .await;
        hub.unregister(id);
        result
    }
    .await;
    let close_code = match end {
        Err(End::Closed(code)) => Some(code),
        Ok(()) | Err(End::Gone) => None,
    };
    tracing::debug!(
        subscriber = subscriber.name,
        close_code,
        cursor = conn.cursor,
        "feed connection ended"
    );
}
