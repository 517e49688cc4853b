//! The actor: one task that owns the WebSocket, the reconnect loop and the batching of entries
//! towards the sink thread.
//!
//! Must not: await the sink while it could be reading the socket (a busy sink only pauses reading
//! once `max_pending` messages are buffered); hold anything from a frame in a log line.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use lockdesk_feed::{close, ClientMessage, ServerMessage, FEED_PATH, MAX_FRAME_BYTES, SUBPROTOCOL};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::header::{
    HeaderValue, AUTHORIZATION, SEC_WEBSOCKET_PROTOCOL,
};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
#[cfg(feature = "tls")]
use tokio_tungstenite::Connector;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::sink::{SinkError, SinkThread};
use crate::{Command, Config, ConfigError, Counters, DisconnectReason, Entry, State, StopReason};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// One feed endpoint, checked once at spawn.
pub(crate) struct Target {
    url: url::Url,
    tls: bool,
    authorization: HeaderValue,
    /// The URL as shown in states and logs (no query).
    pub(crate) display: String,
}

impl Target {
    /// Every address of `config.urls`, in order; a refused one is named by its position.
    pub(crate) fn parse_all(config: &Config) -> Result<Vec<Target>, ConfigError> {
        let count = config.urls.len();
        if count == 0 {
            return Err(ConfigError::NoUrl);
        }
        if count > crate::MAX_URLS {
            return Err(ConfigError::TooManyUrls(count));
        }
        config
            .urls
            .iter()
            .enumerate()
            .map(|(i, url)| {
                Target::parse(url, config).map_err(|e| {
                    if count == 1 {
                        e
                    } else {
                        ConfigError::InAddress {
                            index: i + 1,
                            count,
                            source: Box::new(e),
                        }
                    }
                })
            })
            .collect()
    }

    fn parse(url: &str, config: &Config) -> Result<Target, ConfigError> {
        let mut url =
            url::Url::parse(url.trim()).map_err(|e| ConfigError::BadUrl(e.to_string()))?;
        let tls = match url.scheme() {
            "wss" | "https" => true,
            "ws" | "http" => false,
            other => return Err(ConfigError::BadScheme(other.to_string())),
        };
        // Url::set_scheme refuses some special-to-special changes; rebuild instead.
        if matches!(url.scheme(), "http" | "https") {
            let rest = &url.as_str()[url.scheme().len()..];
            let rebuilt = format!("{}{rest}", if tls { "wss" } else { "ws" });
            url = url::Url::parse(&rebuilt).map_err(|e| ConfigError::BadUrl(e.to_string()))?;
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(ConfigError::UserInfoInUrl);
        }
        let loopback = match url.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            None => return Err(ConfigError::BadUrl("no host".into())),
        };
        if tls && !cfg!(feature = "tls") {
            return Err(ConfigError::NoTls);
        }
        if !tls && !loopback {
            return Err(ConfigError::InsecureRemote(
                url.host_str().unwrap_or_default().to_string(),
            ));
        }
        if url.path().is_empty() || url.path() == "/" {
            url.set_path(FEED_PATH);
        }
        url.set_query(None);
        url.set_fragment(None);
        let secret = config.credential.expose();
        if secret.is_empty() {
            return Err(ConfigError::BadCredential);
        }
        let mut authorization = HeaderValue::from_str(&format!("Bearer {secret}"))
            .map_err(|_| ConfigError::BadCredential)?;
        authorization.set_sensitive(true);
        Ok(Target {
            display: url.to_string(),
            url,
            tls,
            authorization,
        })
    }
}

pub(crate) struct Actor {
    config: Config,
    /// The gateway's addresses, in the configured order (at least one).
    targets: Vec<Target>,
    /// The address in use or tried next: the last one that worked, or the next after failures.
    current: usize,
    /// Addresses that failed in a row since the last `hello` (a full round waits the backoff).
    failed_in_round: usize,
    sink: SinkThread,
    state: watch::Sender<State>,
    counters: Arc<Counters>,
    commands: mpsc::Receiver<Command>,
    stopping: bool,
    tls: Option<TlsConfig>,
    /// Failed attempts since the last healthy connection (the backoff's exponent).
    attempt: u32,
}

/// How one connection attempt went.
struct Attempt {
    end: End,
    /// `hello` received and up for `healthy_after`.
    healthy: bool,
    /// `hello` received: the address works (a failure after it is retried there first).
    reached: bool,
    /// The wait before the next attempt, if the session already decided and published it.
    decided: Option<Duration>,
}

/// How a connection ended.
enum End {
    Reconnect {
        reason: DisconnectReason,
        /// 4001: come back at once, with the cursor.
        immediate: bool,
    },
    Stop(StopReason),
}

/// A message waiting for the sink.
enum Pending {
    Entry(Entry),
    Heartbeat(u64),
    /// `hello.logId`: checked by the sink before anything after it is applied.
    Log(String),
}

/// The work the sink is doing now: its reply and the `seq` it brings the cursor to.
struct InFlight {
    reply: oneshot::Receiver<Result<(), String>>,
    entries: u64,
    up_to: u64,
}

impl Actor {
    pub(crate) fn new(
        config: Config,
        targets: Vec<Target>,
        sink: SinkThread,
        state: watch::Sender<State>,
        counters: Arc<Counters>,
        commands: mpsc::Receiver<Command>,
    ) -> Actor {
        Actor {
            config,
            targets,
            current: 0,
            failed_in_round: 0,
            sink,
            state,
            counters,
            commands,
            stopping: false,
            tls: None,
            attempt: 0,
        }
    }

    /// The address in use or about to be tried.
    fn target(&self) -> &Target {
        &self.targets[self.current]
    }

    fn publish(&self, state: State) {
        // No receiver left is fine: the handle's owners are gone and shutdown follows.
        self.state.send_replace(state);
    }

    pub(crate) async fn run(mut self) {
        let mut reason = self.reconnect_loop().await;
        self.sink.stop().await;
        if let (StopReason::SinkGone, Some(message)) = (&reason, self.sink.panic_message()) {
            reason = StopReason::SinkPanicked(message);
        }
        tracing::info!(url = %self.target().display, %reason, "feed client stopped");
        self.publish(State::Stopped { reason });
    }

    /// The wait before the next attempt (the attempt count restarts after a healthy connection),
    /// and the address it goes to. A connection that never got `hello` is the address's
    /// failure (refused, timed out, TLS, an HTTP status, closed before `hello`): the next
    /// address is tried at once, until every one failed in this round; then the backoff waits.
    /// A local store failure says nothing about the address: same address, backoff.
    fn retry_delay(
        &mut self,
        reason: &DisconnectReason,
        immediate: bool,
        healthy: bool,
        reached: bool,
    ) -> Duration {
        if healthy {
            self.attempt = 0;
        }
        if reached {
            self.failed_in_round = 0;
        }
        let address_failed = !reached && !matches!(reason, DisconnectReason::SinkFailed(_));
        let count = self.targets.len();
        if address_failed && count > 1 {
            let failed = self.current;
            self.current = (self.current + 1) % count;
            self.failed_in_round += 1;
            tracing::info!(
                failed = %self.targets[failed].display,
                next = %self.target().display,
                %reason,
                "feed address unreachable: failing over to the next"
            );
            if self.failed_in_round < count {
                return Duration::ZERO;
            }
            // Every address failed in turn: wait before the next round (which starts again at
            // the address the round started with).
            self.failed_in_round = 0;
        }
        if immediate {
            return Duration::ZERO;
        }
        let d = self.config.backoff.delay(self.attempt);
        self.attempt = self.attempt.saturating_add(1);
        d
    }

    async fn reconnect_loop(&mut self) -> StopReason {
        loop {
            if self.stopping {
                return StopReason::Shutdown;
            }
            let url = self.target().display.clone();
            let Attempt {
                end,
                healthy,
                reached,
                decided,
            } = self.connect_once().await;
            let (reason, immediate) = match end {
                End::Stop(reason) => return reason,
                End::Reconnect { reason, immediate } => (reason, immediate),
            };
            let retry_in = match decided {
                Some(d) => d,
                None => self.retry_delay(&reason, immediate, healthy, reached),
            };
            tracing::info!(%url, %reason, ?retry_in, "feed disconnected");
            let state = State::Disconnected { reason, retry_in };
            // Already published when the connection ended (before applying what it delivered),
            // unless applying it failed since.
            self.state.send_if_modified(|current| {
                let changed = *current != state;
                if changed {
                    *current = state;
                }
                changed
            });
            let sleep = tokio::time::sleep(retry_in);
            tokio::select! {
                _ = sleep => {}
                _ = next_command(&mut self.commands, &mut self.stopping) => return StopReason::Shutdown,
            }
        }
    }

    /// One connection to the current address: asks the cursor, connects, runs the session.
    async fn connect_once(&mut self) -> Attempt {
        let failed = |end| Attempt {
            end,
            healthy: false,
            reached: false,
            decided: None,
        };
        let cursor = match self.sink.cursor().await {
            Ok(c) => c,
            Err(SinkError::Failed(e)) => {
                return failed(End::Reconnect {
                    reason: DisconnectReason::SinkFailed(e),
                    immediate: false,
                })
            }
            Err(SinkError::Gone) => return failed(End::Stop(StopReason::SinkGone)),
        };
        self.publish(State::Connecting {
            url: self.target().display.clone(),
        });
        let connected = tokio::select! {
            r = connect(&self.config, &self.targets[self.current], &mut self.tls, cursor) => r,
            _ = next_command(&mut self.commands, &mut self.stopping) => return failed(End::Stop(StopReason::Shutdown)),
        };
        let ws = match connected {
            Ok(ws) => ws,
            Err(end) => return failed(end),
        };
        Counters::bump(&self.counters.connections);
        let mut session = Session {
            high: cursor,
            cursor,
            pending: VecDeque::new(),
            in_flight: None,
            got_hello: false,
            started: Instant::now(),
            retry_in: None,
            connected_after_log_check: None,
        };
        let end = self.session(ws, &mut session).await;
        Attempt {
            end,
            healthy: self.healthy(&session),
            reached: session.got_hello,
            decided: session.retry_in,
        }
    }

    fn healthy(&self, s: &Session) -> bool {
        s.got_hello && s.started.elapsed() >= self.config.backoff.healthy_after
    }
}

/// The rustls configuration, built on the first `wss://` connection and kept.
#[cfg(feature = "tls")]
type TlsConfig = Arc<rustls::ClientConfig>;
/// No TLS in this build: a `wss://` target is refused at spawn ([`ConfigError::NoTls`]).
#[cfg(not(feature = "tls"))]
type TlsConfig = std::convert::Infallible;

#[cfg(feature = "tls")]
async fn tls_connector(config: &Config, tls: &mut Option<TlsConfig>) -> Result<Connector, String> {
    if let Some(built) = tls {
        return Ok(Connector::Rustls(built.clone()));
    }
    let extra = config.extra_roots.clone();
    let built = tokio::task::spawn_blocking(move || crate::tls::client_config(&extra))
        .await
        .map_err(|e| e.to_string())??;
    *tls = Some(built.clone());
    Ok(Connector::Rustls(built))
}

async fn connect(
    config: &Config,
    target: &Target,
    tls: &mut Option<TlsConfig>,
    cursor: u64,
) -> Result<Ws, End> {
    // Names the address: with several, the status says which one could not be reached.
    let lost = |m: String| End::Reconnect {
        reason: DisconnectReason::ConnectFailed(format!("{}: {m}", target.display)),
        immediate: false,
    };
    let mut url = target.url.clone();
    url.query_pairs_mut()
        .append_pair("after", &cursor.to_string());
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| lost(e.to_string()))?;
    let headers = request.headers_mut();
    headers.insert(AUTHORIZATION, target.authorization.clone());
    headers.insert(
        SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static(SUBPROTOCOL),
    );
    let ws_config = WebSocketConfig::default()
        .max_message_size(Some(MAX_FRAME_BYTES))
        .max_frame_size(Some(MAX_FRAME_BYTES));
    #[cfg(feature = "tls")]
    let attempt = {
        let connector = if target.tls {
            tls_connector(config, tls).await.map_err(lost)?
        } else {
            Connector::Plain
        };
        tokio_tungstenite::connect_async_tls_with_config(
            request,
            Some(ws_config),
            true,
            Some(connector),
        )
    };
    // Without TLS, `Target::parse` refused every wss:// address (ConfigError::NoTls).
    #[cfg(not(feature = "tls"))]
    let attempt = {
        let _: &mut Option<TlsConfig> = tls;
        if target.tls {
            return Err(lost(ConfigError::NoTls.to_string()));
        }
        tokio_tungstenite::connect_async_with_config(request, Some(ws_config), true)
    };
    match tokio::time::timeout(config.connect_timeout, attempt).await {
        Err(_) => Err(lost(format!(
            "no upgrade within {:?}",
            config.connect_timeout
        ))),
        Ok(Ok((ws, _response))) => Ok(ws),
        Ok(Err(WsError::Http(response))) => {
            let status = response.status().as_u16();
            if status == 401 {
                Err(End::Stop(StopReason::Unauthorized))
            } else {
                Err(End::Reconnect {
                    reason: DisconnectReason::HttpStatus(status),
                    immediate: false,
                })
            }
        }
        Ok(Err(e)) => Err(lost(e.to_string())),
    }
}

impl Actor {
    async fn session(&mut self, mut ws: Ws, s: &mut Session) -> End {
        let mut dead_after = self.config.hello_timeout;
        let deadline = tokio::time::sleep_until(after(dead_after));
        tokio::pin!(deadline);
        let mut was_paused = false;
        let end = loop {
            if s.in_flight.is_none() {
                if let Err(end) = self.dispatch(s).await {
                    break end;
                }
            }
            let reading = s.pending.len() < self.config.max_pending;
            if !reading {
                was_paused = true;
            } else if was_paused {
                // The peer could not be heard while we were not reading.
                was_paused = false;
                deadline.as_mut().reset(after(dead_after));
            }
            tokio::select! {
                _ = next_command(&mut self.commands, &mut self.stopping) => {
                    let frame = CloseFrame { code: CloseCode::Normal, reason: "desk shutting down".into() };
                    let _ = tokio::time::timeout(self.config.write_timeout, ws.close(Some(frame))).await;
                    // The batch being applied completes (it is one transaction either way).
                    let _ = self.finish_in_flight(s).await;
                    return End::Stop(StopReason::Shutdown);
                }
                reply = wait_in_flight(&mut s.in_flight), if s.in_flight.is_some() => {
                    match self.completed(s, reply) {
                        Ok(up_to) => {
                            let ack = Message::text(ClientMessage::Ack { seq: up_to }.to_text());
                            match tokio::time::timeout(self.config.write_timeout, ws.send(ack)).await {
                                Ok(Ok(())) => {}
                                Ok(Err(e)) => break lost(e.to_string()),
                                Err(_) => break lost("the gateway does not read (ack not written)".into()),
                            }
                        }
                        Err(end) => break end,
                    }
                }
                frame = ws.next(), if reading => {
                    deadline.as_mut().reset(after(dead_after));
                    match frame {
                        None => break lost("the connection ended without a close frame".into()),
                        Some(Err(e)) => break lost(e.to_string()),
                        Some(Ok(Message::Text(text))) => {
                            if let Some(end) = self.on_text(text.as_str(), s, &mut dead_after) {
                                break end;
                            }
                            deadline.as_mut().reset(after(dead_after));
                        }
                        Some(Ok(Message::Binary(_))) => {
                            Counters::bump(&self.counters.malformed_frames);
                            tracing::warn!("skipping a binary frame (the feed is text only)");
                        }
                        Some(Ok(Message::Close(frame))) => break on_close(frame, s.cursor),
                        // Pings are answered by tungstenite; any frame proves the peer alive.
                        Some(Ok(_)) => {}
                    }
                }
                _ = &mut deadline, if reading => {
                    break End::Reconnect {
                        reason: DisconnectReason::HeartbeatTimeout(dead_after),
                        immediate: false,
                    };
                }
            }
        };
        drop(ws);
        // The connection is gone: the state stops saying "Connected" now, not once what it
        // delivered is applied (which may take a while).
        if let End::Reconnect { reason, immediate } = &end {
            if s.in_flight.is_some() || !s.pending.is_empty() {
                let healthy = self.healthy(s);
                let retry_in = self.retry_delay(reason, *immediate, healthy, s.got_hello);
                s.retry_in = Some(retry_in);
                self.publish(State::Disconnected {
                    reason: reason.clone(),
                    retry_in,
                });
            }
        }
        // What arrived before the end is valid: apply it, so the next resume starts after it.
        match self.drain(s).await {
            Ok(()) => end,
            Err(sink_end) => match end {
                End::Stop(_) => end,
                End::Reconnect { .. } => sink_end,
            },
        }
    }

    /// Handles one text frame; returns how the connection ends if it must.
    fn on_text(&mut self, text: &str, s: &mut Session, dead_after: &mut Duration) -> Option<End> {
        let message = match ServerMessage::parse(text) {
            Ok(m) => m,
            Err(e) => {
                Counters::bump(&self.counters.malformed_frames);
                // The error names the category and position only, never the content.
                tracing::warn!(error = %e, "skipping a malformed feed frame");
                return None;
            }
        };
        // Every number is checked before it is acted on. An entry's `seq` out of bounds cannot be
        // stored or resumed after, and a bad hello, heartbeat or resume leaves the session
        // without a sane deadline or cursor: the connection ends (what came before it is still
        // applied) and the client reconnects with backoff, showing why.
        let checked = match &message {
            ServerMessage::Entry(entry) => entry.check_seq(),
            other => other.check_bounds(),
        };
        if let Err(e) = checked {
            tracing::warn!(error = %e, "a feed message is out of bounds: dropping the connection");
            return Some(End::Reconnect {
                reason: DisconnectReason::ProtocolError(e.to_string()),
                immediate: false,
            });
        }
        match message {
            ServerMessage::Hello(hello) => {
                s.got_hello = true;
                // Within 1..=3600 s (checked above).
                *dead_after = Duration::from_secs(hello.heartbeat_secs.saturating_mul(3));
                if hello.after != s.cursor {
                    tracing::warn!(
                        asked = s.cursor,
                        answered = hello.after,
                        "the gateway resumes after another seq than asked"
                    );
                }
                tracing::info!(
                    url = %self.target().display,
                    after = hello.after,
                    last_seq = hello.last_seq,
                    heartbeat_secs = hello.heartbeat_secs,
                    log_id = hello.log_id.as_deref(),
                    "feed connected"
                );
                let names_its_log = hello.log_id.is_some();
                if let Some(log_id) = hello.log_id {
                    let valid = !log_id.is_empty()
                        && log_id.len() <= lockdesk_feed::MAX_LOG_ID_BYTES
                        && log_id.bytes().all(|b| b.is_ascii_graphic());
                    if !valid {
                        return Some(End::Reconnect {
                            reason: DisconnectReason::ProtocolError(format!(
                                "hello: logId must be 1 to {} printable ASCII characters",
                                lockdesk_feed::MAX_LOG_ID_BYTES
                            )),
                            immediate: false,
                        });
                    }
                    s.pending.push_back(Pending::Log(log_id));
                }
                // "Connected" only when it is true: not for a gateway whose log ends before our
                // cursor (it closes 4004 next), and, when hello names its log, only once the log
                // has been checked as ours (`dispatch`).
                if hello.last_seq >= s.cursor {
                    let connected = State::Connected {
                        url: self.target().display.clone(),
                        after: s.cursor,
                        last_seq: hello.last_seq,
                    };
                    if names_its_log {
                        s.connected_after_log_check = Some(connected);
                    } else {
                        self.publish(connected);
                    }
                }
            }
            ServerMessage::Entry(entry) => {
                if entry.seq <= s.high {
                    Counters::bump(&self.counters.duplicate_entries);
                    tracing::warn!(
                        seq = entry.seq,
                        high = s.high,
                        "skipping an entry already received"
                    );
                } else {
                    if let Err(e) = entry.check_fields() {
                        // Its seq is valid: the sink skips and records it, and the cursor moves
                        // past it (dropping the connection would stall every later entry).
                        Counters::bump(&self.counters.out_of_bounds_entries);
                        tracing::warn!(error = %e, "a feed entry is out of bounds: the store skips it");
                    }
                    s.high = entry.seq;
                    s.pending.push_back(Pending::Entry(entry));
                }
            }
            ServerMessage::Heartbeat { seq } => {
                Counters::bump(&self.counters.heartbeats);
                if seq > s.high {
                    s.high = seq;
                    s.pending.push_back(Pending::Heartbeat(seq));
                }
            }
            ServerMessage::Resume { after, reason } => {
                // The reason is the gateway's text: through the terminal escaping routine.
                let reason = lockdesk_text::Shown(&reason);
                tracing::info!(after, %reason, "the gateway asks us to resume (overflow: it could not keep up; reconfigured: our subscriber changed)");
            }
            ServerMessage::Unknown => {
                Counters::bump(&self.counters.unknown_messages);
            }
        }
        None
    }

    /// Hands the next batch to the sink if there is one.
    async fn dispatch(&mut self, s: &mut Session) -> Result<(), End> {
        if let Some(Pending::Log(_)) = s.pending.front() {
            if let Some(Pending::Log(found)) = s.pending.pop_front() {
                if let Err(end) = self.check_log(found).await {
                    // Nothing of this connection may be applied: it is not our log.
                    s.pending.clear();
                    s.connected_after_log_check = None;
                    return Err(end);
                }
                if let Some(connected) = s.connected_after_log_check.take() {
                    self.publish(connected);
                }
            }
        }
        let mut entries = Vec::new();
        let mut seen = None;
        while let Some(front) = s.pending.front() {
            match front {
                Pending::Entry(_) if seen.is_some() || entries.len() >= self.config.max_batch => {
                    break
                }
                Pending::Entry(_) => {
                    if let Some(Pending::Entry(e)) = s.pending.pop_front() {
                        entries.push(e);
                    }
                }
                Pending::Heartbeat(seq) => {
                    seen = Some(*seq);
                    s.pending.pop_front();
                }
                // Only ever first (hello's), checked above.
                Pending::Log(_) => break,
            }
        }
        if entries.is_empty() && seen.is_none() {
            return Ok(());
        }
        let up_to = seen
            .into_iter()
            .chain(entries.last().map(|e| e.seq))
            .max()
            .unwrap_or(s.cursor);
        let count = entries.len() as u64;
        match self.sink.apply(entries, seen).await {
            Ok(reply) => {
                s.in_flight = Some(InFlight {
                    reply,
                    entries: count,
                    up_to,
                });
                Ok(())
            }
            Err(_) => Err(End::Stop(StopReason::SinkGone)),
        }
    }

    /// Stops the client when the gateway's log is not the one the sink's cursor belongs to.
    async fn check_log(&mut self, found: String) -> Result<(), End> {
        match self.sink.log(found.clone()).await {
            Ok(crate::LogCheck::Same) => Ok(()),
            Ok(crate::LogCheck::Adopted) => {
                tracing::info!(
                    log_id = found,
                    "the gateway's log is remembered with the cursor"
                );
                Ok(())
            }
            Ok(crate::LogCheck::Different { known }) => {
                tracing::error!(known, found, "the gateway serves another log: not resuming");
                Err(End::Stop(StopReason::LogChanged { known, found }))
            }
            Err(SinkError::Failed(e)) => Err(End::Reconnect {
                reason: DisconnectReason::SinkFailed(e),
                immediate: false,
            }),
            Err(SinkError::Gone) => Err(End::Stop(StopReason::SinkGone)),
        }
    }

    /// Books a finished apply; returns the `seq` the cursor is now at.
    fn completed(
        &mut self,
        s: &mut Session,
        reply: (
            Result<Result<(), String>, oneshot::error::RecvError>,
            u64,
            u64,
        ),
    ) -> Result<u64, End> {
        let (result, entries, up_to) = reply;
        match result {
            Ok(Ok(())) => {
                s.cursor = up_to;
                self.counters.applied_seq.store(up_to, Ordering::Relaxed);
                if entries > 0 {
                    self.counters
                        .entries_applied
                        .fetch_add(entries, Ordering::Relaxed);
                    Counters::bump(&self.counters.batches_applied);
                }
                Ok(up_to)
            }
            Ok(Err(e)) => {
                // Nothing after the failed batch may be applied (it would leave a gap): drop
                // what is queued; the next connection resumes from the sink's cursor.
                s.pending.clear();
                tracing::warn!(error = %e, "the local store failed to apply feed entries");
                Err(End::Reconnect {
                    reason: DisconnectReason::SinkFailed(e),
                    immediate: false,
                })
            }
            Err(_) => Err(End::Stop(StopReason::SinkGone)),
        }
    }

    async fn finish_in_flight(&mut self, s: &mut Session) -> Result<(), End> {
        if s.in_flight.is_some() {
            let reply = wait_in_flight(&mut s.in_flight).await;
            self.completed(s, reply)?;
        }
        Ok(())
    }

    /// Applies everything received (after the connection ended).
    async fn drain(&mut self, s: &mut Session) -> Result<(), End> {
        loop {
            self.finish_in_flight(s).await?;
            if s.pending.is_empty() {
                return Ok(());
            }
            self.dispatch(s).await?;
        }
    }
}

struct Session {
    /// The highest `seq` received (entries and heartbeats) or resumed after.
    high: u64,
    /// The highest `seq` the sink has applied.
    cursor: u64,
    pending: VecDeque<Pending>,
    in_flight: Option<InFlight>,
    got_hello: bool,
    started: Instant,
    /// The wait before the next attempt, when decided (and published) as the connection ended.
    retry_in: Option<Duration>,
    /// "Connected", held back until the hello's log id has been checked against the store's:
    /// the state is published only once nothing stands between the desk and live entries.
    connected_after_log_check: Option<State>,
}

/// `d` from now; a duration too long for the clock means "never" (about 30 years).
fn after(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d)
        .or_else(|| now.checked_add(Duration::from_secs(30 * 365 * 86_400)))
        .unwrap_or(now)
}

fn lost(message: String) -> End {
    End::Reconnect {
        reason: DisconnectReason::ConnectionLost(message),
        immediate: false,
    }
}

fn on_close(frame: Option<CloseFrame>, cursor: u64) -> End {
    let Some(frame) = frame else {
        return End::Reconnect {
            reason: DisconnectReason::Closed {
                code: 1005,
                reason: String::new(),
            },
            immediate: false,
        };
    };
    let code = u16::from(frame.code);
    // The reason is the gateway's text: keep it short, it is shown to the user.
    let reason: String = frame.reason.as_str().chars().take(120).collect();
    match code {
        close::RESUME => End::Reconnect {
            reason: DisconnectReason::Closed { code, reason },
            immediate: true,
        },
        close::CREDENTIAL_REVOKED => End::Stop(StopReason::CredentialRevoked),
        close::AFTER_BEYOND_END => End::Stop(StopReason::AfterBeyondEnd { after: cursor }),
        _ => End::Reconnect {
            reason: DisconnectReason::Closed { code, reason },
            immediate: false,
        },
    }
}

/// Waits for the in-flight apply (the caller checks there is one) and takes it.
async fn wait_in_flight(
    in_flight: &mut Option<InFlight>,
) -> (
    Result<Result<(), String>, oneshot::error::RecvError>,
    u64,
    u64,
) {
    match in_flight {
        Some(f) => {
            let result = (&mut f.reply).await;
            let (entries, up_to) = (f.entries, f.up_to);
            *in_flight = None;
            (result, entries, up_to)
        }
        None => std::future::pending().await,
    }
}

/// Resolves when the client must stop: a shutdown command, or every handle dropped.
async fn next_command(commands: &mut mpsc::Receiver<Command>, stopping: &mut bool) {
    if *stopping {
        return;
    }
    match commands.recv().await {
        Some(Command::Shutdown) | None => *stopping = true,
    }
}
