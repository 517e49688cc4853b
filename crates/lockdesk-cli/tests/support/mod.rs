//! Shared by the integration tests that run the real `lockdesk-cli gateway` binary.

pub mod collected;
pub mod desk_store;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use lockdesk_testkit::pg::PgServer;
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

/// `lockdesk-cli`, the binary under test.
pub fn cli() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lockdesk-cli"))
}

/// stdout then stderr, as text (for a message or a search in both).
#[allow(dead_code)]
pub fn all_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Panics with its stdout and stderr unless `out` is a success; its stdout.
#[allow(dead_code)]
pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `lockdesk-cli ARGS --data DATA`, stdin closed, to its end.
#[allow(dead_code)]
pub fn run_with_data(args: &[&str], data: &Path) -> Output {
    cli()
        .args(args)
        .arg("--data")
        .arg(data)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// `lockdesk-cli keys generate --out DIR`: a key pair (`private.pem`, `public.pem`) in `dir`, a
/// desk's or a brand's; panics unless it was made.
#[allow(dead_code)]
pub fn generate_keys(dir: &Path) {
    ok(&cli()
        .args(["keys", "generate", "--out"])
        .arg(dir)
        .output()
        .unwrap());
}

/// A gateway's configuration file, section by section.
#[derive(Default)]
pub struct GatewayConfig(String);

#[allow(dead_code)]
impl GatewayConfig {
    /// A `[[table]]` of `name` and `fields` (TOML values, written as they are).
    fn section(mut self, table: &str, name: &str, fields: &[(&str, String)]) -> Self {
        self.0 += &format!("[[{table}]]\nname = {}\n", quoted(name));
        for (key, value) in fields {
            self.0 += &format!("{key} = {value}\n");
        }
        self.0 += "\n";
        self
    }

    /// An iAdvize webhook's signing secret.
    pub fn webhook(self, name: &str, secret: &str) -> Self {
        self.section("webhook", name, &[("secret", quoted(secret))])
    }

    /// A token provider's credential.
    pub fn provider(self, name: &str, credential: &str) -> Self {
        self.section("provider", name, &[("credential", quoted(credential))])
    }

    /// A supervisor's feed credential.
    pub fn supervisor(self, name: &str, credential: &str) -> Self {
        let role = quoted("supervisor");
        self.section(
            "subscriber",
            name,
            &[("credential", quoted(credential)), ("role", role)],
        )
    }

    /// An advisor's feed credential: the conversations of `operator`.
    pub fn advisor(self, name: &str, credential: &str, operator: u64) -> Self {
        let fields = [
            ("credential", quoted(credential)),
            ("role", quoted("advisor")),
            ("operator_ids", format!("[{operator}]")),
        ];
        self.section("subscriber", name, &fields)
    }

    /// The file's text.
    pub fn toml(self) -> String {
        self.0
    }
}

/// A TOML basic string of `s` (the tests' names and secrets hold no quote or backslash).
fn quoted(s: &str) -> String {
    assert!(!s.contains(['"', '\\']), "{s}");
    format!("\"{s}\"")
}

/// `lockdesk-cli gateway --config DIR/gateway.toml` (`config` written there first), its stdout
/// piped and its log in `DIR/gateway.err`: to be given `--listen` and a store, then
/// [`RunningGateway::spawn`]ed.
pub fn gateway_command(dir: &Path, config: &str) -> Command {
    std::fs::create_dir_all(dir).unwrap();
    let config_path = dir.join("gateway.toml");
    std::fs::write(&config_path, config).unwrap();
    let mut cmd = cli();
    cmd.arg("gateway")
        .arg("--config")
        .arg(&config_path)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.join("gateway.err")).unwrap());
    cmd
}

impl RunningGateway {
    /// Spawns a [`gateway_command`]; returns once it printed `listening on ADDR`.
    pub fn spawn(mut cmd: Command) -> RunningGateway {
        let mut child = cmd.spawn().unwrap();
        let addr = listening_on(&mut child);
        RunningGateway { child, addr }
    }
}

/// Writes `config` to `dir/gateway.toml` and starts the gateway on a free port of 127.0.0.1 with
/// its data in `dir/data` and its log in `dir/gateway.err`; returns once it printed
/// `listening on ADDR`.
// Each test binary compiles this module and uses only part of it.
#[allow(dead_code)]
pub fn start_gateway(dir: &Path, config: &str) -> RunningGateway {
    let mut cmd = gateway_command(dir, config);
    cmd.args(["--listen", "127.0.0.1:0", "--data"])
        .arg(dir.join("data"));
    RunningGateway::spawn(cmd)
}

/// [`start_gateway`] with its log in PostgreSQL: `--listen LISTEN --store URL`, the password in
/// LOCKDESK_PG_PASSWORD, RUST_LOG=info.
#[allow(dead_code)]
pub fn start_pg_gateway(
    dir: &Path,
    config: &str,
    listen: &str,
    pg: &PgServer,
    url: &str,
) -> RunningGateway {
    let mut cmd = gateway_command(dir, config);
    cmd.args(["--listen", listen, "--store", url])
        .env("LOCKDESK_PG_PASSWORD", pg.password())
        .env("RUST_LOG", "info");
    RunningGateway::spawn(cmd)
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

/// A WebSocket on a gateway's feed from its beginning (`?after=0`), as subscriber `credential`.
pub async fn feed_from_start(
    addr: SocketAddr,
    credential: &str,
) -> tokio_tungstenite::WebSocketStream<tokio::net::TcpStream> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
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
    let (ws, _) = tokio_tungstenite::client_async(req, stream).await.unwrap();
    ws
}

/// Reads a supervisor's feed (credential `credential`) from the beginning until `last_seq`:
/// (seq, eventId) of every entry.
#[allow(dead_code)]
pub fn read_feed(addr: SocketAddr, credential: &str, last_seq: u64) -> Vec<(u64, String)> {
    use futures_util::StreamExt;
    use lockdesk_feed::ServerMessage;
    use tokio_tungstenite::tungstenite::Message;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut ws = feed_from_start(addr, credential).await;
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
    let mut sim = cli();
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

/// The seq a `simulate --json` step line says its step was stored at (`"outcome": "ok seq N"`),
/// if it names one; panics unless the step is `ok`.
pub fn step_seq(line: &str) -> Option<u64> {
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["ok"], true, "{line}");
    v["outcome"]
        .as_str()
        .and_then(|o| o.strip_prefix("ok seq "))
        .and_then(|s| s.parse::<u64>().ok())
}

/// The end of the log a whole `simulate --json` run wrote into a fresh gateway: panics unless
/// every step is `ok` and was stored as one entry (the highest seq is the number of steps).
#[allow(dead_code)]
pub fn log_end(sim_lines: &[String]) -> u64 {
    let mut last = 0u64;
    for l in sim_lines {
        let seq = step_seq(l).unwrap_or_else(|| panic!("no seq in {l}"));
        last = last.max(seq);
    }
    assert_eq!(last as usize, sim_lines.len(), "one stored entry per step");
    last
}

/// The brand whose key set the simulator writes to ROOT/brand.jwks.
#[allow(dead_code)]
pub const ISSUER: &str = "https://brand.example";

/// `lockdesk-cli watch --json --feed FEED` trusting [`ISSUER`] by ROOT/brand.jwks, decrypting
/// with ROOT/desk/private.pem, its store in `data`, `credential` in LOCKDESK_FEED_CREDENTIAL:
/// to be spawned.
#[allow(dead_code)]
pub fn watch_command(root: &Path, feed: &str, credential: &str, data: &Path) -> Command {
    let mut cmd = cli();
    cmd.args(["watch", "--json", "--feed", feed])
        .arg("--trust")
        .arg(format!("{ISSUER}={}", root.join("brand.jwks").display()))
        .arg("--decrypt-key")
        .arg(root.join("desk/private.pem"))
        .arg("--data")
        .arg(data)
        .env("LOCKDESK_FEED_CREDENTIAL", credential);
    cmd
}

/// What a `watch --json` change line is compared by across runs: seq, conversation, state,
/// alert.
#[allow(dead_code)]
pub fn change_key(line: &str) -> (u64, String, String, String) {
    let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
    (
        v["seq"].as_u64().unwrap(),
        v["conversationId"].to_string(),
        v["state"].to_string(),
        v["alert"].to_string(),
    )
}

/// The seqs a desk said it resumed after, in order ("connected to FEED (resuming after N;").
#[allow(dead_code)]
pub fn resumes(stderr: &[String], feed: &str) -> Vec<u64> {
    let prefix = format!("connected to {feed} (resuming after ");
    stderr
        .iter()
        .filter_map(|l| {
            let rest = &l[l.find(&prefix)? + prefix.len()..];
            rest.split(';').next()?.parse().ok()
        })
        .collect()
}

/// Checks a gateway's log against the eventIds sent to it: gapless and ordered, every entry one
/// that was sent, none stored twice. Returns each stored eventId's seq.
#[allow(dead_code)]
pub fn stored_once(
    entries: &[lockdesk_gateway::store::StoredEntry],
    sent: &HashSet<String>,
) -> HashMap<String, u64> {
    let seqs: Vec<u64> = entries.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        (1..=entries.len() as u64).collect::<Vec<_>>(),
        "gapless, ordered"
    );
    let mut stored: HashMap<String, u64> = HashMap::new();
    for e in entries {
        let id = e.event_id.clone().expect("webhook entries have an eventId");
        assert!(sent.contains(&id), "{id} was never sent");
        assert!(
            stored.insert(id.clone(), e.seq).is_none(),
            "{id} stored twice"
        );
    }
    stored
}

/// The gateway of the desk tests that run `simulate` by flags (desk_cli.rs, untrusted_text.rs):
/// webhook secret `webhook-secret-0123456789`, provider credential `provider-credential-0123`,
/// supervisor credential `desk-credential-0123456`.
#[allow(dead_code)]
pub fn desk_world_config() -> String {
    GatewayConfig::default()
        .webhook("app", "webhook-secret-0123456789")
        .provider("brand", "provider-credential-0123")
        .supervisor("desk", "desk-credential-0123456")
        .toml()
}

/// Eight threads sending one delivery after another, eventIds `burst-T-I` (thread, index), until
/// stopped: what a gateway is killed in the middle of.
#[allow(dead_code)]
pub struct Burst {
    sent: Arc<Mutex<HashSet<String>>>,
    acked: Arc<Mutex<Vec<(String, u64)>>>,
    count: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    workers: Vec<std::thread::JoinHandle<()>>,
}

#[allow(dead_code)]
impl Burst {
    /// `send(t, i, id)` delivers one: `Some(seq)` once acknowledged at that seq, `None` when the
    /// gateway is gone (that thread stops sending); it panics on any other answer.
    pub fn start(
        send: impl Fn(usize, usize, &str) -> Option<u64> + Send + Sync + 'static,
    ) -> Burst {
        let send = Arc::new(send);
        let sent: Arc<Mutex<HashSet<String>>> = Arc::default();
        let acked: Arc<Mutex<Vec<(String, u64)>>> = Arc::default();
        let count = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let workers = (0..8)
            .map(|t| {
                let (send, sent, acked, count, stop) = (
                    send.clone(),
                    sent.clone(),
                    acked.clone(),
                    count.clone(),
                    stop.clone(),
                );
                std::thread::spawn(move || {
                    for i in 0..100_000 {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let id = format!("burst-{t}-{i}");
                        sent.lock().unwrap().insert(id.clone());
                        let Some(seq) = send(t, i, &id) else { break };
                        acked.lock().unwrap().push((id, seq));
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        Burst {
            sent,
            acked,
            count,
            stop,
            workers,
        }
    }

    /// How many deliveries were acknowledged so far.
    pub fn acked_count(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// Stops the threads and waits for them: every eventId sent, and each acknowledged one with
    /// its seq, in the order acknowledged.
    pub fn stop(self) -> (HashSet<String>, Vec<(String, u64)>) {
        self.stop.store(true, Ordering::Relaxed);
        for w in self.workers {
            w.join().unwrap();
        }
        let sent = self.sent.lock().unwrap().clone();
        let acked = self.acked.lock().unwrap().clone();
        (sent, acked)
    }
}

/// The `seq` of a gateway's JSON answer to a delivery.
#[allow(dead_code)]
pub fn seq_of(answer: &str) -> u64 {
    let v: serde_json::Value =
        serde_json::from_str(answer).unwrap_or_else(|e| panic!("{answer}: {e}"));
    v["seq"]
        .as_u64()
        .unwrap_or_else(|| panic!("no seq in {answer}"))
}

/// `lockdesk-cli demo` for one pass of every scenario as a supervisor (every conversation),
/// `--json`: to be given `--data` ([`run_with_data`]).
#[allow(dead_code)]
pub const SUPERVISOR_DEMO: [&str; 7] = [
    "demo",
    "--json",
    "--supervisor",
    "--passes",
    "1",
    "--duration",
    "30",
];

/// `lockdesk-cli history USER --json --data DATA`: panics unless it succeeds; its JSON.
#[allow(dead_code)]
pub fn history(data: &Path, user: &str) -> serde_json::Value {
    let out = cli()
        .args(["history", user, "--json", "--data"])
        .arg(data)
        .output()
        .unwrap();
    serde_json::from_str(&ok(&out)).unwrap()
}
