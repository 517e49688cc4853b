//! `lockdesk-cli bench gateway`: the gateway's speed figures of issue 4, against the real
//! `lockdesk-cli gateway` process (this same binary, started as a child on 127.0.0.1 with a fresh
//! data folder):
//!
//! - (a) webhook deliveries acknowledged durably per second, from concurrent HTTP clients;
//! - (b) feed delivery delay with many WebSocket subscribers while webhooks arrive at a fixed
//!   rate: from the delivery's 2xx (and from its request) to the entry's receipt by each desk;
//! - (c) the memory an idle subscriber costs: the gateway's RSS before and after N idle feed
//!   connections, divided by N.
//!
//! Never run by the test command (it takes about a minute and its numbers depend on the machine).
//! The bench clients run in this process and share the machine with the gateway.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

#[derive(clap::Args)]
pub struct Args {
    /// Seconds of the ingest-throughput measurement (a).
    #[arg(long, default_value_t = 10.0)]
    ingest_seconds: f64,
    /// Concurrent HTTP clients posting webhooks in (a).
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Feed subscribers connected during (b).
    #[arg(long, default_value_t = 200)]
    subscribers: usize,
    /// How many of them are supervisors (receive every entry); the others are advisors, each
    /// with its own operator id, and the events are pushed to them in turn. Default: all
    /// supervisors (every desk receives every event: the worst case).
    #[arg(long)]
    supervisors: Option<usize>,
    /// Webhook deliveries per second during (b).
    #[arg(long, default_value_t = 500)]
    rate: u64,
    /// Seconds of (b).
    #[arg(long, default_value_t = 10.0)]
    feed_seconds: f64,
    /// Idle connections opened for (c).
    #[arg(long, default_value_t = 1000)]
    idle: usize,
}

const SECRET: &str = "bench-webhook-secret";

fn credential(i: usize) -> String {
    format!("bench-subscriber-credential-{i:06}")
}

/// A gateway child process; killed when dropped.
struct GatewayProcess {
    child: Child,
    addr: SocketAddr,
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_gateway(
    dir: &std::path::Path,
    subscribers: usize,
    supervisors: usize,
) -> anyhow::Result<GatewayProcess> {
    let mut config = format!("[[webhook]]\nname = \"bench\"\nsecret = \"{SECRET}\"\n");
    for i in 0..subscribers.max(1) {
        if i < supervisors {
            config.push_str(&format!(
                "[[subscriber]]\nname = \"desk-{i}\"\ncredential = \"{}\"\nrole = \"supervisor\"\n",
                credential(i)
            ));
        } else {
            config.push_str(&format!(
                "[[subscriber]]\nname = \"desk-{i}\"\ncredential = \"{}\"\nrole = \"advisor\"\noperator_ids = [{}]\n",
                credential(i),
                operator(i)
            ));
        }
    }
    let path = dir.join("gateway.toml");
    let mut file = std::fs::File::create(&path)?;
    file.write_all(config.as_bytes())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    }
    let exe = std::env::current_exe().context("cannot find this executable")?;
    let mut child = Command::new(exe)
        .args(["gateway", "--listen", "127.0.0.1:0", "--data"])
        .arg(dir.join("data"))
        .arg("--config")
        .arg(&path)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot start the gateway")?;
    let mut line = String::new();
    let stdout = child.stdout.take().context("no stdout")?;
    BufReader::new(stdout).read_line(&mut line)?;
    let addr = match line.trim().strip_prefix("listening on ") {
        Some(a) => a.parse()?,
        None => {
            let _ = child.kill();
            bail!("the gateway did not start: {line:?}");
        }
    };
    Ok(GatewayProcess { child, addr })
}

fn operator(i: usize) -> u64 {
    10_000 + i as u64
}

fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS in /proc/PID/status")
}

fn webhook_body(id: &str, operator: u64) -> String {
    serde_json::json!({
        "eventId": id, "eventType": "v2.conversation.pushed", "platform": "ha", "clientId": 1,
        "createdAt": "2026-01-01T00:00:00Z", "sentAt": "2026-01-01T00:00:00Z", "projectId": 1,
        "conversationId": format!("conv-{id}"), "operatorId": operator, "channel": "CHAT",
        "visitorId": format!("visitor-{id}"),
    })
    .to_string()
}

/// Posts one signed webhook; returns its seq.
async fn deliver(
    client: &reqwest::Client,
    base: &str,
    id: &str,
    operator: u64,
) -> anyhow::Result<u64> {
    let body = webhook_body(id, operator);
    let sig = lockdesk_sim::webhook_signature(SECRET.as_bytes(), body.as_bytes());
    let r = client
        .post(format!("{base}/webhooks/iadvize"))
        .header("content-type", "application/json")
        .header("x-iadvize-signature", sig)
        .body(body)
        .send()
        .await?;
    let status = r.status();
    let text = r.text().await?;
    if status != 200 {
        bail!("delivery {id}: {status} {text}");
    }
    let v: serde_json::Value = serde_json::from_str(&text)?;
    v["seq"].as_u64().context("no seq in the answer")
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// seq -> (request sent, 2xx received, operator id) of each delivery of (b).
type Sent = HashMap<u64, (Instant, Instant, u64)>;

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

async fn open_feed(addr: SocketAddr, credential: &str, after: u64) -> anyhow::Result<Ws> {
    let mut req =
        format!("ws://{addr}{}?after={after}", lockdesk_feed::FEED_PATH).into_client_request()?;
    req.headers_mut()
        .insert("authorization", format!("Bearer {credential}").parse()?);
    req.headers_mut().insert(
        "sec-websocket-protocol",
        lockdesk_feed::SUBPROTOCOL.parse()?,
    );
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (mut ws, _) = tokio_tungstenite::client_async(req, stream).await?;
    // The hello.
    match tokio::time::timeout(Duration::from_secs(30), ws.next()).await {
        Ok(Some(Ok(Message::Text(_)))) => Ok(ws),
        other => bail!("no hello: {other:?}"),
    }
}

/// The seq of an `entry` frame, cheaply (the server writes `{"type":"entry","seq":N,...`);
/// falls back to a full parse.
fn entry_seq(text: &str) -> Option<u64> {
    if let Some(rest) = text.strip_prefix("{\"type\":\"entry\",\"seq\":") {
        let end = rest.find(|c: char| !c.is_ascii_digit())?;
        return rest[..end].parse().ok();
    }
    match lockdesk_feed::ServerMessage::parse(text) {
        Ok(lockdesk_feed::ServerMessage::Entry(e)) => Some(e.seq),
        _ => None,
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.subscribers == 0 || args.rate == 0 || args.clients == 0 {
        bail!("--subscribers, --rate and --clients must be at least 1");
    }
    let supervisors = args
        .supervisors
        .unwrap_or(args.subscribers)
        .min(args.subscribers);
    // reqwest is built with `rustls-no-provider` here (feature unification): it wants a crypto
    // provider installed even for plain http.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().context("cannot create a temporary folder")?;
    let gateway = start_gateway(dir.path(), args.subscribers, supervisors)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "lockdesk-cli bench gateway: gateway pid {} on {}, data in {} ({} core(s) shared by the gateway and these clients)",
        gateway.child.id(),
        gateway.addr,
        dir.path().display(),
        cores
    );
    runtime.block_on(async {
        ingest(&args, &gateway).await?;
        fanout(&args, &gateway, supervisors).await?;
        idle(&args, &gateway).await
    })?;
    Ok(ExitCode::SUCCESS)
}

/// (a) Deliveries acknowledged durably per second.
async fn ingest(args: &Args, gateway: &GatewayProcess) -> anyhow::Result<()> {
    let base = format!("http://{}", gateway.addr);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.clients)
        .build()?;
    let deadline = Instant::now() + Duration::from_secs_f64(args.ingest_seconds);
    let counter = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..args.clients {
        let (client, base, counter) = (client.clone(), base.clone(), counter.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut i = 0u64;
            while Instant::now() < deadline {
                let t = Instant::now();
                deliver(&client, &base, &format!("ingest-{c}-{i}"), 1).await?;
                latencies.push(t.elapsed().as_secs_f64() * 1000.0);
                counter.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    let n = counter.load(Ordering::Relaxed);
    println!(
        "(a) ingest: {n} webhook deliveries acknowledged (200, committed with fsync) in {elapsed:.1} s by {} concurrent clients: {:.0}/s; ack latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        args.clients,
        n as f64 / elapsed,
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or(f64::NAN),
    );
    Ok(())
}

/// (b) Delivery delay to many subscribers at a fixed ingest rate.
async fn fanout(args: &Args, gateway: &GatewayProcess, supervisors: usize) -> anyhow::Result<()> {
    let base = format!("http://{}", gateway.addr);
    let client = reqwest::Client::new();
    let health: serde_json::Value = serde_json::from_str(
        &client
            .get(format!("{base}/healthz"))
            .send()
            .await?
            .text()
            .await?,
    )?;
    let start_seq = health["lastSeq"].as_u64().context("no lastSeq")?;
    // Subscribers, connected at the log's end.
    let mut desks = Vec::new();
    for i in 0..args.subscribers {
        desks.push(open_feed(gateway.addr, &credential(i), start_seq).await?);
    }
    let total = (args.rate as f64 * args.feed_seconds).round() as u64;
    // Readers block on their socket (no timer per frame: that would cost the gateway's CPU
    // share); after the producer is done they stop once quiet for a second.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut readers = Vec::new();
    for (i, mut ws) in desks.into_iter().enumerate() {
        let mut stop = stop_rx.clone();
        readers.push(tokio::spawn(async move {
            let mut got: Vec<(u64, Instant)> = Vec::new();
            let mut stopping = false;
            loop {
                let frame = if stopping {
                    match tokio::time::timeout(Duration::from_secs(1), ws.next()).await {
                        Ok(f) => f,
                        Err(_) => break,
                    }
                } else {
                    tokio::select! {
                        f = ws.next() => f,
                        _ = stop.changed() => {
                            stopping = true;
                            continue;
                        }
                    }
                };
                let text = match frame {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(_)) => continue,
                    _ => break,
                };
                let now = Instant::now();
                if let Some(seq) = entry_seq(text.as_str()) {
                    got.push((seq, now));
                }
            }
            (i, got)
        }));
    }
    // The producer: one delivery every 1/rate s, each on its own task so a slow answer never
    // delays the schedule.
    let sent: Arc<Mutex<Sent>> = Arc::default();
    let interval = Duration::from_secs_f64(1.0 / args.rate as f64);
    let advisors = args.subscribers - supervisors;
    let t0 = Instant::now();
    let mut producers = Vec::new();
    for n in 0..total {
        tokio::time::sleep_until((t0 + interval * n as u32).into()).await;
        let (client, base, sent) = (client.clone(), base.clone(), sent.clone());
        let op = if advisors > 0 {
            operator(supervisors + (n as usize % advisors))
        } else {
            1
        };
        producers.push(tokio::spawn(async move {
            let t = Instant::now();
            let seq = deliver(&client, &base, &format!("fanout-{n}"), op).await?;
            let acked = Instant::now();
            sent.lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(seq, (t, acked, op));
            anyhow::Ok(())
        }));
    }
    for p in producers {
        p.await??;
    }
    let produce_secs = t0.elapsed().as_secs_f64();
    let sent = std::mem::take(&mut *sent.lock().unwrap_or_else(|p| p.into_inner()));
    stop_tx.send_replace(true);
    let mut from_ack = Vec::new();
    let mut from_send = Vec::new();
    let mut before_ack = 0u64;
    let mut expected = 0u64;
    let mut received = 0u64;
    for r in readers {
        let (i, got) = r.await?;
        let mine = |op: u64| i < supervisors || op == operator(i);
        expected += sent.values().filter(|(_, _, op)| mine(*op)).count() as u64;
        for (seq, at) in got {
            let Some((t, acked, _)) = sent.get(&seq) else {
                continue;
            };
            received += 1;
            from_send.push(at.duration_since(*t).as_secs_f64() * 1000.0);
            match at.checked_duration_since(*acked) {
                Some(d) => from_ack.push(d.as_secs_f64() * 1000.0),
                None => {
                    before_ack += 1;
                    from_ack.push(0.0);
                }
            }
        }
    }
    from_ack.sort_by(f64::total_cmp);
    from_send.sort_by(f64::total_cmp);
    println!(
        "(b) feed: {} subscribers ({supervisors} supervisors, {advisors} advisors), {total} webhooks at {} /s over {produce_secs:.1} s; {received} of {expected} expected deliveries received",
        args.subscribers, args.rate
    );
    println!(
        "    delay 2xx -> receipt: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({before_ack} deliveries ({:.1}%) arrived before the 2xx and count as 0)",
        percentile(&from_ack, 0.5),
        percentile(&from_ack, 0.99),
        from_ack.last().copied().unwrap_or(f64::NAN),
        100.0 * before_ack as f64 / received.max(1) as f64,
    );
    println!(
        "    delay request sent -> receipt: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        percentile(&from_send, 0.5),
        percentile(&from_send, 0.99),
        from_send.last().copied().unwrap_or(f64::NAN),
    );
    if received != expected {
        bail!("{} deliveries missing", expected.saturating_sub(received));
    }
    Ok(())
}

/// (c) Memory per idle subscriber.
async fn idle(args: &Args, gateway: &GatewayProcess) -> anyhow::Result<()> {
    let pid = gateway.child.id();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let base = format!("http://{}", gateway.addr);
    let health: serde_json::Value = serde_json::from_str(
        &reqwest::Client::new()
            .get(format!("{base}/healthz"))
            .send()
            .await?
            .text()
            .await?,
    )?;
    let end = health["lastSeq"].as_u64().context("no lastSeq")?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before_open = rss_kib(pid)?;
    let mut conns = Vec::with_capacity(args.idle);
    for i in 0..args.idle {
        conns.push(open_feed(gateway.addr, &credential(i % args.subscribers), end).await?);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = rss_kib(pid)?;
    println!(
        "(c) idle subscribers: gateway RSS {before_open} KiB before, {after} KiB with {} idle feed connections: {:.1} KiB per connection",
        args.idle,
        (after as f64 - before_open as f64) / args.idle as f64,
    );
    drop(conns);
    Ok(())
}
