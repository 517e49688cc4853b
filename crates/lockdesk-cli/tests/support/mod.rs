//! Shared by the integration tests that run the real `lockdesk-cli gateway` binary.

pub mod collected;
pub mod desk_store;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A gateway process; killed when dropped.
pub struct RunningGateway {
    pub child: Child,
    pub addr: SocketAddr,
}

// Each test binary compiles this module and uses only part of it.
#[allow(dead_code)]
impl RunningGateway {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for RunningGateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes `config` to `dir/gateway.toml` and starts the gateway on a free port of 127.0.0.1 with
/// its data in `dir/data` and its log in `dir/gateway.err`; returns once it printed
/// `listening on ADDR`.
// Each test binary compiles this module and uses only part of it.
#[allow(dead_code)]
pub fn start_gateway(dir: &Path, config: &str) -> RunningGateway {
    let config_path = dir.join("gateway.toml");
    std::fs::write(&config_path, config).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_lockdesk-cli"))
        .args(["gateway", "--listen", "127.0.0.1:0", "--data"])
        .arg(dir.join("data"))
        .arg("--config")
        .arg(&config_path)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.join("gateway.err")).unwrap())
        .spawn()
        .unwrap();
    let addr = listening_on(&mut child);
    RunningGateway { child, addr }
}

/// The address a `lockdesk-cli gateway` child prints on its first stdout line
/// (`listening on ADDR`), read from its piped stdout.
pub fn listening_on(child: &mut Child) -> SocketAddr {
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout piped"))
        .read_line(&mut line)
        .unwrap();
    line.trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("the gateway did not start: first line {line:?}"))
        .parse()
        .unwrap()
}

/// A `v2.conversation.pushed` delivery's body for `id` (its own conversation and visitor).
#[allow(dead_code)]
pub fn pushed_body(id: &str) -> String {
    format!(
        r#"{{"eventId":"{id}","eventType":"v2.conversation.pushed","platform":"ha","clientId":1,"createdAt":"2026-01-01T00:00:00Z","sentAt":"2026-01-01T00:00:00Z","projectId":1,"conversationId":"c-{id}","operatorId":7,"channel":"CHAT","visitorId":"v-{id}"}}"#
    )
}

/// One signed delivery of [`pushed_body`] on its own connection, as iAdvize sends it: the
/// status code and body, or `None` if the connection failed (the gateway is gone).
#[allow(dead_code)]
pub fn deliver(addr: SocketAddr, secret: &str, id: &str) -> Option<(u16, String)> {
    let body = pushed_body(id);
    let sig = lockdesk_sim::webhook_signature(secret.as_bytes(), body.as_bytes());
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let request = format!(
        "POST /webhooks/iadvize HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         x-iadvize-signature: {sig}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(request.as_bytes()).ok()?;
    let mut reply = String::new();
    s.read_to_string(&mut reply).ok()?;
    let status = reply.get(9..12)?.parse().ok()?;
    let payload = reply.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    Some((status, payload))
}

/// Reads a supervisor's feed (credential `credential`) from the beginning until `last_seq`:
/// (seq, eventId) of every entry.
#[allow(dead_code)]
pub fn read_feed(addr: SocketAddr, credential: &str, last_seq: u64) -> Vec<(u64, String)> {
    use futures_util::StreamExt;
    use lockdesk_feed::ServerMessage;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut req = format!("ws://{addr}/v1/feed?after=0")
            .into_client_request()
            .unwrap();
        let headers = req.headers_mut();
        headers.insert(
            "authorization",
            format!("Bearer {credential}").parse().unwrap(),
        );
        headers.insert(
            "sec-websocket-protocol",
            lockdesk_feed::SUBPROTOCOL.parse().unwrap(),
        );
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut ws, _) = tokio_tungstenite::client_async(req, stream).await.unwrap();
        let mut out: Vec<(u64, String)> = Vec::new();
        // Heartbeats keep a stalled feed talking: bound the whole read, not only each frame
        // (a bound on a hang, not a timing claim).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        while out.last().map_or(0, |e| e.0) < last_seq {
            let frame = tokio::time::timeout_at(deadline, ws.next())
                .await
                .unwrap_or_else(|_| panic!("the feed stalled after {} entries", out.len()))
                .expect("the feed closed")
                .unwrap();
            let Message::Text(text) = frame else { continue };
            match ServerMessage::parse(text.as_str()).unwrap() {
                ServerMessage::Entry(e) => {
                    let id = e.payload["eventId"].as_str().unwrap().to_owned();
                    out.push((e.seq, id));
                }
                ServerMessage::Hello(_) | ServerMessage::Heartbeat { .. } => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        out
    })
}

/// `lockdesk-cli simulate --json` into `gateway`, to be spawned: every scenario at `rate` steps
/// a second for `duration_secs`, seeded, routed to operators 1001 and 1002, with the
/// `(webhook secret, provider credential)` the gateway's configuration holds. Tokens are
/// encrypted to ROOT/desk/public.pem, the brand's key set is written to ROOT/brand.jwks before
/// the first step, and the simulator keeps its brand key in ROOT/sim-data (the test's own).
pub fn simulate_command(
    root: &Path,
    gateway: &str,
    rate: u32,
    duration_secs: u32,
    seed: &str,
    (webhook_secret, provider_token): (&str, &str),
) -> Command {
    let mut sim = Command::new(env!("CARGO_BIN_EXE_lockdesk-cli"));
    sim.args(["simulate", "--gateway", gateway, "--rate"])
        .arg(rate.to_string())
        .arg("--duration")
        .arg(duration_secs.to_string())
        .args([
            "--seed",
            seed,
            "--operator",
            "1001",
            "--operator",
            "1002",
            "--json",
        ])
        .arg("--desk-key")
        .arg(root.join("desk/public.pem"))
        .arg("--write-brand-jwks")
        .arg(root.join("brand.jwks"))
        .env("LOCKDESK_DATA_DIR", root.join("sim-data"))
        .env("LOCKDESK_WEBHOOK_SECRET", webhook_secret)
        .env("LOCKDESK_PROVIDER_TOKEN", provider_token);
    sim
}
