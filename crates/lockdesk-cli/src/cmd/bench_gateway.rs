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
//! With `--store postgres://user@host:port/db` (password in LOCKDESK_PG_PASSWORD, as for the
//! gateway) the same figures are measured with `--instances` gateway children on that database
//! (each count in turn, e.g. `--instances 1,2`): webhooks are posted round-robin over the
//! instances, subscribers are spread over them, and a delay is measured to the receipt on
//! whichever instance the subscriber is connected to. SQLite's figures are measured first in the
//! same run (unless `--no-sqlite`), and a summary gives each store's figures beside them.
//!
//! The database must hold no tables (a database made for the bench): the bench refuses anything
//! else, so it never mixes its entries into a real log. `--reset-database` first drops the
//! gateway's own tables (those of migrations/postgres, left by an interrupted bench run) and
//! still refuses a database holding anything else. The bench drops its tables between instance
//! counts and at the end, leaving the database as it found it.
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
    /// Also measure the gateway on this PostgreSQL database (postgres://user@host:port/db, no
    /// password: LOCKDESK_PG_PASSWORD). It must hold no tables (see --reset-database).
    #[arg(long, value_name = "URL")]
    store: Option<String>,
    /// With --store: how many gateway instances share the database, measured in turn
    /// (1 or 2, or both: `--instances 1,2`).
    #[arg(long, value_delimiter = ',', default_values_t = [1], value_parser = clap::value_parser!(u8).range(1..=2), requires = "store")]
    instances: Vec<u8>,
    /// With --store: first drop the gateway's tables (left by an interrupted bench run). A
    /// database holding any other table is still refused.
    #[arg(long, requires = "store")]
    reset_database: bool,
    /// With --store: skip SQLite's figures (measured first in the same run by default).
    #[arg(long, requires = "store")]
    no_sqlite: bool,
}

/// The tables of the gateway's PostgreSQL schema (migrations/postgres), dropped by
/// `--reset-database` and between instance counts.
const PG_TABLES: &[&str] = &[
    "audience",
    "entries",
    "open_conversations",
    "closed_conversations",
    "log_head",
    "log_identity",
    "lockdesk_schema",
];

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

/// The store the gateway children use.
#[derive(Clone)]
enum Store {
    Sqlite,
    Postgres(String),
}

fn start_gateway(
    dir: &std::path::Path,
    store: &Store,
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
    let mut command = Command::new(exe);
    command
        .args(["gateway", "--listen", "127.0.0.1:0", "--config"])
        .arg(&path);
    match store {
        Store::Sqlite => command
            .arg("--data")
            .arg(dir.join("data"))
            .env_remove(super::gateway::PASSWORD_ENV),
        // The password reaches the child in LOCKDESK_PG_PASSWORD, inherited.
        Store::Postgres(url) => command.arg("--store").arg(url),
    };
    let mut child = command
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

/// One configuration's figures, for the summary.
#[derive(Default)]
struct Figures {
    ingest_per_s: f64,
    ack_p99_ms: f64,
    feed_p99_from_ack_ms: f64,
    feed_p99_from_send_ms: f64,
    /// Deliveries of (b) a subscriber should have received and did not.
    missing: u64,
    idle_kib: f64,
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
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut configurations: Vec<(Store, usize)> = Vec::new();
    let pg = match &args.store {
        Some(url) => {
            let settings = lockdesk_gateway::PgSettings {
                url: url.clone(),
                password: std::env::var(super::gateway::PASSWORD_ENV).ok(),
                ca_file: None,
            };
            // The gateways' own TLS (the URL's sslmode and sslrootcert).
            let config = settings.connector().context("--store")?;
            runtime.block_on(prepare_database(&config, args.reset_database))?;
            if !args.no_sqlite {
                configurations.push((Store::Sqlite, 1));
            }
            let mut counts = args.instances.clone();
            counts.dedup();
            for n in counts {
                configurations.push((Store::Postgres(url.clone()), n as usize));
            }
            Some(config)
        }
        None => {
            configurations.push((Store::Sqlite, 1));
            None
        }
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut results = Vec::new();
    for (index, (store, instances)) in configurations.iter().enumerate() {
        if let (Store::Postgres(_), Some(config), true) = (store, &pg, index > 0) {
            // The previous PostgreSQL configuration's log: this one starts from an empty one.
            runtime.block_on(drop_tables(config))?;
        }
        let dir = tempfile::tempdir().context("cannot create a temporary folder")?;
        let mut gateways = Vec::new();
        for i in 0..*instances {
            let sub = dir.path().join(format!("instance-{i}"));
            std::fs::create_dir(&sub)?;
            gateways.push(start_gateway(&sub, store, args.subscribers, supervisors)?);
        }
        let what = match store {
            Store::Sqlite => format!("SQLite in {}", dir.path().display()),
            Store::Postgres(url) => format!("PostgreSQL {url}, {instances} instance(s)"),
        };
        let list: Vec<String> = gateways
            .iter()
            .map(|g| format!("pid {} on {}", g.child.id(), g.addr))
            .collect();
        println!(
            "lockdesk-cli bench gateway: {what}: gateway {} ({cores} core(s) shared by the gateway(s), the database and these clients)",
            list.join(", "),
        );
        let figures = runtime.block_on(async {
            let mut f = Figures::default();
            ingest(&args, &gateways, &mut f).await?;
            fanout(&args, &gateways, supervisors, &mut f).await?;
            idle(&args, &gateways[0], &mut f).await?;
            if matches!(store, Store::Postgres(_)) {
                writer_groups(&gateways).await?;
            }
            anyhow::Ok(f)
        });
        drop(gateways);
        results.push((what, figures?));
    }
    let failed: Vec<String> = results
        .iter()
        .filter(|(_, f)| f.missing > 0)
        .map(|(what, f)| format!("{what}: {} deliveries missing in (b)", f.missing))
        .collect();
    if let Some(config) = &pg {
        runtime.block_on(drop_tables(config))?;
        let sqlite = configurations
            .iter()
            .position(|(s, _)| matches!(s, Store::Sqlite))
            .map(|i| results[i].1.ingest_per_s);
        println!("summary (same run):");
        for ((store, instances), (_, f)) in configurations.iter().zip(&results) {
            let name = match store {
                Store::Sqlite => "SQLite".to_owned(),
                Store::Postgres(_) => format!("PostgreSQL, {instances} instance(s)"),
            };
            let ratio = match sqlite {
                Some(s) if s > 0.0 => format!(" ({:.2} x SQLite)", f.ingest_per_s / s),
                _ => String::new(),
            };
            println!(
                "  {name}: (a) {:.0}/s{ratio}, ack p99 {:.1} ms; (b) p99 {:.2} ms from the 2xx, {:.2} ms from the request; (c) {:.1} KiB per idle connection{}",
                f.ingest_per_s, f.ack_p99_ms, f.feed_p99_from_ack_ms, f.feed_p99_from_send_ms, f.idle_kib,
                if f.missing > 0 { format!("; FAILED: {} deliveries missing in (b)", f.missing) } else { String::new() }
            );
        }
    }
    if !failed.is_empty() {
        // Every configuration was measured; the run still fails.
        bail!("{}", failed.join("; "));
    }
    Ok(ExitCode::SUCCESS)
}

async fn pg_connect(
    config: &lockdesk_gateway::PgConnect,
) -> anyhow::Result<tokio_postgres::Client> {
    let (client, connection) = config
        .connect()
        .await
        .context("--store: cannot connect to the database")?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            eprintln!("bench: the database connection ended: {e}");
        }
    });
    Ok(client)
}

/// The tables in the connection's current schema.
async fn tables(client: &tokio_postgres::Client) -> anyhow::Result<Vec<String>> {
    Ok(client
        .query(
            "SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema() ORDER BY 1",
            &[],
        )
        .await?
        .into_iter()
        .map(|r| r.get(0))
        .collect())
}

/// Refuses a database that holds any table, except the gateway's own with `reset` (then
/// dropped). A database holding anything else is refused before anything is dropped.
async fn prepare_database(config: &lockdesk_gateway::PgConnect, reset: bool) -> anyhow::Result<()> {
    let client = pg_connect(config).await?;
    let found = tables(&client).await?;
    let others: Vec<&str> = found
        .iter()
        .map(String::as_str)
        .filter(|t| !PG_TABLES.contains(t))
        .collect();
    if !others.is_empty() {
        bail!(
            "--store: the database holds tables that are not the gateway's ({}): the bench needs a \
             database of its own, and never drops those",
            others.join(", ")
        );
    }
    if found.is_empty() {
        return Ok(());
    }
    if !reset {
        bail!(
            "--store: the database holds a gateway log (tables {}): the bench needs an empty \
             database; if it is one a bench run left, give --reset-database to drop it",
            found.join(", ")
        );
    }
    drop(client);
    drop_tables(config).await
}

/// Drops the gateway's tables, only those, in one transaction.
async fn drop_tables(config: &lockdesk_gateway::PgConnect) -> anyhow::Result<()> {
    let mut client = pg_connect(config).await?;
    let tx = client.transaction().await?;
    tx.batch_execute(&format!("DROP TABLE IF EXISTS {}", PG_TABLES.join(", ")))
        .await
        .context("--store: cannot drop the bench's tables")?;
    tx.commit().await?;
    Ok(())
}

/// How each instance's PostgreSQL writer committed its groups over the whole run (its
/// `/metrics`): in one round trip, in two, redone, or sent in two after too many refusals.
async fn writer_groups(gateways: &[GatewayProcess]) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    for g in gateways {
        let metrics = client
            .get(format!("http://{}/metrics", g.addr))
            .send()
            .await?
            .text()
            .await?;
        let value = |name: &str| -> anyhow::Result<u64> {
            metrics
                .lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
                .with_context(|| format!("no {name} in the gateway's /metrics"))
        };
        println!(
            "  writer of {}: groups in one round trip {}, in two {} (redone: another instance changed what it read {}, eventId stored {}; one round trip not tried after refusals {})",
            g.addr,
            value("lockdesk_gateway_pg_groups_total{round_trips=\"1\"}")?,
            value("lockdesk_gateway_pg_groups_total{round_trips=\"2\"}")?,
            value("lockdesk_gateway_pg_groups_redone_total{reason=\"conflict\"}")?,
            value("lockdesk_gateway_pg_groups_redone_total{reason=\"duplicate\"}")?,
            value("lockdesk_gateway_pg_groups_one_trip_skipped_total")?,
        );
    }
    Ok(())
}

/// The highest end of the log any instance reports.
async fn last_seq(client: &reqwest::Client, gateways: &[GatewayProcess]) -> anyhow::Result<u64> {
    let mut end = 0;
    for g in gateways {
        let health: serde_json::Value = serde_json::from_str(
            &client
                .get(format!("http://{}/healthz", g.addr))
                .send()
                .await?
                .text()
                .await?,
        )?;
        end = end.max(health["lastSeq"].as_u64().context("no lastSeq")?);
    }
    Ok(end)
}

/// (a) Deliveries acknowledged durably per second; client `c` posts to instance `c % n`.
async fn ingest(
    args: &Args,
    gateways: &[GatewayProcess],
    figures: &mut Figures,
) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.clients)
        .build()?;
    let deadline = Instant::now() + Duration::from_secs_f64(args.ingest_seconds);
    let counter = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..args.clients {
        let base = format!("http://{}", gateways[c % gateways.len()].addr);
        let (client, counter) = (client.clone(), counter.clone());
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
    figures.ingest_per_s = n as f64 / elapsed;
    figures.ack_p99_ms = percentile(&latencies, 0.99);
    println!(
        "(a) ingest: {n} webhook deliveries acknowledged (200, committed with fsync) in {elapsed:.1} s by {} concurrent clients over {} instance(s): {:.0}/s; ack latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        args.clients,
        gateways.len(),
        figures.ingest_per_s,
        percentile(&latencies, 0.5),
        figures.ack_p99_ms,
        latencies.last().copied().unwrap_or(f64::NAN),
    );
    Ok(())
}

/// (b) Delivery delay to many subscribers at a fixed ingest rate. Subscriber `i` reads from
/// instance `i % n`, delivery `k` is posted to instance `k % n`.
async fn fanout(
    args: &Args,
    gateways: &[GatewayProcess],
    supervisors: usize,
    figures: &mut Figures,
) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let start_seq = last_seq(&client, gateways).await?;
    // Subscribers, connected at the log's end.
    let mut desks = Vec::new();
    for i in 0..args.subscribers {
        desks.push(open_feed(gateways[i % gateways.len()].addr, &credential(i), start_seq).await?);
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
            // The close code, when the gateway closed the connection (4001: resume).
            let mut closed: Option<u16> = None;
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
                    Some(Ok(Message::Close(frame))) => {
                        closed = Some(frame.map_or(1005, |f| u16::from(f.code)));
                        break;
                    }
                    Some(Ok(_)) => continue,
                    _ => break,
                };
                let now = Instant::now();
                if let Some(seq) = entry_seq(text.as_str()) {
                    got.push((seq, now));
                }
            }
            (i, got, closed)
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
        let base = format!("http://{}", gateways[n as usize % gateways.len()].addr);
        let (client, sent) = (client.clone(), sent.clone());
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
    let mut closes: std::collections::BTreeMap<u16, usize> = Default::default();
    for r in readers {
        let (i, got, closed) = r.await?;
        if let Some(code) = closed {
            *closes.entry(code).or_default() += 1;
        }
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
    figures.feed_p99_from_ack_ms = percentile(&from_ack, 0.99);
    figures.feed_p99_from_send_ms = percentile(&from_send, 0.99);
    println!(
        "(b) feed: {} subscribers ({supervisors} supervisors, {advisors} advisors) over {} instance(s), {total} webhooks at {} /s over {produce_secs:.1} s; {received} of {expected} expected deliveries received",
        args.subscribers, gateways.len(), args.rate
    );
    println!(
        "    delay 2xx -> receipt: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({before_ack} deliveries ({:.1}%) arrived before the 2xx and count as 0)",
        percentile(&from_ack, 0.5),
        figures.feed_p99_from_ack_ms,
        from_ack.last().copied().unwrap_or(f64::NAN),
        100.0 * before_ack as f64 / received.max(1) as f64,
    );
    println!(
        "    delay request sent -> receipt: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        percentile(&from_send, 0.5),
        figures.feed_p99_from_send_ms,
        from_send.last().copied().unwrap_or(f64::NAN),
    );
    if !closes.is_empty() {
        let list: Vec<String> = closes
            .iter()
            .map(|(code, n)| format!("{n} with {code}"))
            .collect();
        println!(
            "    subscribers closed by the gateway during (b) (4001: resume, a full queue; the bench does not resume): {}",
            list.join(", ")
        );
    }
    figures.missing = expected.saturating_sub(received);
    if received != expected {
        println!("    FAILED: {} deliveries missing", figures.missing);
    }
    Ok(())
}

/// (c) Memory per idle subscriber.
async fn idle(args: &Args, gateway: &GatewayProcess, figures: &mut Figures) -> anyhow::Result<()> {
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
    figures.idle_kib = (after as f64 - before_open as f64) / args.idle as f64;
    println!(
        "(c) idle subscribers: gateway RSS {before_open} KiB before, {after} KiB with {} idle feed connections: {:.1} KiB per connection",
        args.idle,
        figures.idle_kib,
    );
    drop(conns);
    Ok(())
}
