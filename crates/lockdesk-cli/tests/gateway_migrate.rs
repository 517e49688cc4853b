//! Issue 15's migration and differential tests, on a real PostgreSQL 15 (lockdesk-testkit) and
//! the real `lockdesk-cli gateway`, `simulate` and `watch` binaries.
//!
//! Migration: a supervisor desk reads the first half of a log from a SQLite gateway; the gateway
//! is stopped, `lockdesk-cli gateway migrate` moves its log to PostgreSQL, a PostgreSQL gateway
//! starts on the same address and the second half arrives there. The desk resumes from its
//! cursor (same `logId`: no LogChanged) and ends with the same store as a desk that read the whole
//! log from PostgreSQL uninterrupted; an advisor's feed is the same before and after, and a
//! conversation left open in SQLite still reaches its advisor on PostgreSQL.
//!
//! Differential: the same signed deliveries, in the same order, to a SQLite gateway and to a
//! PostgreSQL gateway give every subscriber (a supervisor, two advisors) the same entries with the
//! same audiences and `related` bundles.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use lockdesk_testkit::pg::PgServer;

use crate::support::collected::{wait_until, Collected, PATIENCE};
use crate::support::desk_store::{assert_same, cursor};
use crate::support::{
    cli, gateway_command, generate_keys, resumes, start_pg_gateway, step_seq, watch_command,
    GatewayConfig, RunningGateway,
};

const WEBHOOK_SECRET: &str = "migrate-webhook-secret-0123";
const PROVIDER_TOKEN: &str = "migrate-provider-credential-0123";
const SUPERVISOR: &str = "migrate-supervisor-credential-0123";
const ADA: &str = "migrate-advisor-ada-credential-0123";
const BOB: &str = "migrate-advisor-bob-credential-0123";

fn gateway_config() -> String {
    GatewayConfig::default()
        .webhook("sim", WEBHOOK_SECRET)
        .provider("sim", PROVIDER_TOKEN)
        .supervisor("sam", SUPERVISOR)
        .advisor("ada", ADA, 1001)
        .advisor("bob", BOB, 1002)
        .toml()
}

/// `lockdesk-cli gateway --listen LISTEN --config DIR/gateway.toml` and `--data DIR/data`
/// (SQLite) or `--store URL` (PostgreSQL, the password in LOCKDESK_PG_PASSWORD).
fn start_gateway(dir: &Path, listen: &str, pg: Option<(&PgServer, &str)>) -> RunningGateway {
    if let Some((pg, url)) = pg {
        return start_pg_gateway(dir, &gateway_config(), listen, pg, url);
    }
    let mut cmd = gateway_command(dir, &gateway_config());
    cmd.args(["--listen", listen, "--data"])
        .arg(dir.join("data"))
        .env("RUST_LOG", "info");
    RunningGateway::spawn(cmd)
}

/// `lockdesk-cli simulate` into `gateway` (every scenario, operators 1001 and 1002), to its end;
/// returns the highest seq it was answered.
fn simulate(root: &Path, gateway: &str, seed: &str) -> u64 {
    let sim = crate::support::simulate_command(
        root,
        gateway,
        400,
        1,
        seed,
        (WEBHOOK_SECRET, PROVIDER_TOKEN),
    );
    let (status, lines, err) = Collected::spawn(sim).finish();
    assert!(status.success(), "the simulator failed: {err:?}");
    let last = lines.iter().filter_map(|l| step_seq(l)).max().unwrap_or(0);
    assert!(last > 0, "the simulator stored nothing: {lines:?}");
    last
}

/// A signed webhook delivery of `body` (JSON) to `addr`: its seq.
fn deliver(addr: SocketAddr, body: &str) -> u64 {
    post(addr, "/webhooks/iadvize", body, true)
}

/// One POST as iAdvize (signed) or the token provider (bearer) sends it; the answer's seq.
fn post(addr: SocketAddr, path: &str, body: &str, webhook: bool) -> u64 {
    use std::io::{Read, Write};
    let auth = if webhook {
        format!(
            "x-iadvize-signature: {}",
            lockdesk_sim::webhook_signature(WEBHOOK_SECRET.as_bytes(), body.as_bytes())
        )
    } else {
        format!("authorization: Bearer {PROVIDER_TOKEN}")
    };
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n{auth}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(request.as_bytes()).unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 20"), "{path}: {reply}");
    let answer = reply.split("\r\n\r\n").nth(1).unwrap_or("");
    let v: serde_json::Value =
        serde_json::from_str(answer).unwrap_or_else(|e| panic!("{answer}: {e}"));
    v["seq"]
        .as_u64()
        .unwrap_or_else(|| panic!("no seq in {answer}"))
}

/// A webhook body: `eventType` on conversation `c` (visitor `v-c`), with `operatorId` if any.
fn event(id: &str, event_type: &str, c: &str, operator: Option<u64>) -> String {
    let operator = operator.map_or(String::new(), |o| format!(r#","operatorId":{o}"#));
    format!(
        r#"{{"eventId":"{id}","eventType":"{event_type}","platform":"ha","clientId":1,"createdAt":"2026-01-01T00:00:00Z","sentAt":"2026-01-01T00:00:00Z","projectId":1,"conversationId":"{c}","channel":"CHAT","visitorId":"v-{c}"{operator}}}"#
    )
}

/// A subscriber's feed from the start, each entry as served without its `receivedAtMs` (the
/// time its gateway received it), until `last` says the entry is the last wanted.
fn read_feed(
    addr: SocketAddr,
    credential: &str,
    last: impl Fn(&lockdesk_feed::Entry) -> bool,
) -> Vec<serde_json::Value> {
    use futures_util::StreamExt;
    use lockdesk_feed::ServerMessage;
    use tokio_tungstenite::tungstenite::Message;
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                m.remove("receivedAtMs");
                m.values_mut().for_each(strip);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut ws = crate::support::feed_from_start(addr, credential).await;
        let mut out = Vec::new();
        loop {
            let frame = tokio::time::timeout(PATIENCE, ws.next())
                .await
                .expect("the feed stalled")
                .expect("the feed closed")
                .unwrap();
            let Message::Text(text) = frame else { continue };
            match ServerMessage::parse(text.as_str()).unwrap() {
                ServerMessage::Entry(e) => {
                    let done = last(&e);
                    let mut v = serde_json::to_value(&e).unwrap();
                    strip(&mut v);
                    out.push(v);
                    if done {
                        return out;
                    }
                }
                ServerMessage::Hello(_) | ServerMessage::Heartbeat { .. } => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    })
}

fn event_id(e: &lockdesk_feed::Entry) -> Option<&str> {
    e.payload["eventId"].as_str()
}

fn seqs(feed: &[serde_json::Value]) -> Vec<u64> {
    feed.iter().map(|e| e["seq"].as_u64().unwrap()).collect()
}

/// `lockdesk-cli gateway migrate --from DIR --to URL`, the password in LOCKDESK_PG_PASSWORD.
fn migrate(pg: &PgServer, from: &Path, url: &str) -> std::process::Output {
    cli()
        .args(["gateway", "migrate", "--from"])
        .arg(from)
        .args(["--to", url])
        .env("LOCKDESK_PG_PASSWORD", pg.password())
        .output()
        .unwrap()
}

#[test]
fn a_desk_that_read_half_the_log_from_sqlite_reads_the_rest_from_postgres_after_migrate_and_ends_identical_to_an_uninterrupted_desk(
) {
    let pg = PgServer::start();
    let url = pg.create_database("migrated");
    let dir = tempfile::tempdir().unwrap();
    let root: PathBuf = dir.path().to_owned();
    generate_keys(&root.join("desk"));

    // The first half, on SQLite: the simulator, then a conversation pushed to ada (1001) and
    // left open.
    let sqlite_dir = root.join("sqlite");
    let g1 = start_gateway(&sqlite_dir, "127.0.0.1:0", None);
    simulate(&root, &g1.url(), "15");
    let open_push = deliver(
        g1.addr,
        &event("mig-push", "v2.conversation.pushed", "c-mig", Some(1001)),
    );
    let half = open_push;

    let watch =
        |data: &Path, feed: &str| Collected::spawn(watch_command(&root, feed, SUPERVISOR, data));
    let feed = format!("ws://{}/v1/feed", g1.addr);
    let data = root.join("migrated-desk");
    let desk = watch(&data, &feed);
    wait_until("the desk to read the SQLite half", || cursor(&data) >= half);
    let ada_before = read_feed(g1.addr, ADA, |e| event_id(e) == Some("mig-push"));
    assert_eq!(ada_before.last().unwrap()["seq"], half);

    // Refused while the SQLite gateway runs: nothing is written to PostgreSQL.
    let refused = migrate(&pg, &sqlite_dir.join("data"), &url);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(stderr.contains("is in use: stop the gateway"), "{stderr}");
    assert_eq!(
        pg.psql(
            "migrated",
            "SELECT count(*) FROM pg_tables WHERE tablename = 'entries'"
        )
        .trim(),
        "0",
        "the refused migration created the schema"
    );

    // Stop the SQLite gateway (SIGKILL: the hardest stop; its WAL is recovered) and migrate.
    let listen = g1.addr.to_string();
    drop(g1);
    let moved = migrate(&pg, &sqlite_dir.join("data"), &url);
    let stdout = String::from_utf8_lossy(&moved.stdout);
    assert!(
        moved.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&moved.stderr)
    );
    assert!(stdout.contains(&format!("up to seq {half},")), "{stdout}");
    // The open conversations as PostgreSQL now holds them: as many as the report says, c-mig
    // among them with ada (1001) as its operator.
    let reported: u64 = stdout
        .split(" open conversations")
        .next()
        .and_then(|head| head.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no open conversation count in {stdout}"));
    assert!(reported >= 1, "{stdout}");
    assert_eq!(
        pg.psql("migrated", "SELECT count(*) FROM open_conversations"),
        reported.to_string(),
        "{stdout}"
    );
    assert_eq!(
        pg.psql(
            "migrated",
            "SELECT visitor_id || ' ' || array_to_string(owners, ',') FROM open_conversations \
             WHERE conversation_id = 'c-mig'"
        ),
        "v-c-mig 1001",
        "the conversation left open is not in PostgreSQL's open conversations with its operator"
    );
    // Once only: the target now holds a log.
    let again = migrate(&pg, &sqlite_dir.join("data"), &url);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already holds a log"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );

    // The PostgreSQL gateway on the same address: the desk reconnects to it by itself.
    let g2 = start_gateway(&root.join("pg"), &listen, Some((&pg, &url)));
    // The conversation left open in SQLite: its close reaches ada without naming her.
    let close = deliver(
        g2.addr,
        &event("mig-close", "v2.conversation.closed", "c-mig", None),
    );
    assert_eq!(
        close,
        half + 1,
        "the sequence continues where SQLite's ended"
    );
    // A later push to ada: her feed is read up to it, so a close that did not reach her (the
    // open conversations not moved) fails at once instead of waiting for an entry never sent.
    let mark = deliver(
        g2.addr,
        &event("mig-mark", "v2.conversation.pushed", "c-mark", Some(1001)),
    );
    let last = simulate(&root, &g2.url(), "16");
    assert!(last > mark);

    wait_until("the migrated desk to reach the log's end", || {
        cursor(&data) >= last
    });
    let (status, lines, err) = desk.interrupt();
    assert!(status.success(), "the desk exited with {status}: {err:?}");
    let resumed = resumes(&err, &feed);
    assert!(
        resumed.len() >= 2 && resumed[0] == 0 && resumed[1] >= half,
        "expected a first connection from 0, then one resuming after the SQLite half ({half}): {err:?}"
    );
    assert!(
        !err.iter().any(|l| l.to_lowercase().contains("another log")
            || l.contains("LogChanged")
            || l.contains("log_changed")),
        "the desk noticed a new log: {err:?}"
    );

    // ada's feed: the same first half, then the close of the conversation still open (its
    // audience comes from the open conversations the migration moved: the event names no
    // operator), then the later push.
    let ada_after = read_feed(g2.addr, ADA, |e| event_id(e) == Some("mig-mark"));
    assert_eq!(
        seqs(&ada_after[ada_before.len()..]),
        vec![close, mark],
        "ada's feed after the migration: the close of c-mig ({close}) did not reach her"
    );
    assert_eq!(&ada_after[..ada_before.len()], &ada_before[..]);

    // One uninterrupted desk reading the whole log from PostgreSQL.
    let reference_data = root.join("reference-desk");
    let reference = watch(&reference_data, &format!("ws://{}/v1/feed", g2.addr));
    wait_until("the uninterrupted desk to reach the log's end", || {
        cursor(&reference_data) >= last
    });
    let (status, reference_lines, reference_err) = reference.interrupt();
    assert!(status.success(), "{reference_err:?}");
    assert_same(&data, "migrated desk", &reference_data);
    let mut printed = lines.clone();
    let mut reference_printed = reference_lines.clone();
    printed.sort();
    reference_printed.sort();
    assert!(!reference_printed.is_empty());
    assert_eq!(
        printed, reference_printed,
        "the migrated desk printed other changes"
    );
    println!(
        "{half} entries on SQLite, {} on PostgreSQL; the desk resumed after {:?}",
        last - half,
        &resumed[1..]
    );
}

#[test]
fn the_same_deliveries_through_a_sqlite_and_a_postgres_gateway_give_every_subscriber_the_same_entries_and_audiences(
) {
    let pg = PgServer::start();
    let url = pg.create_database("differential");
    let dir = tempfile::tempdir().unwrap();
    let root: PathBuf = dir.path().to_owned();
    generate_keys(&root.join("desk"));

    // The simulator's traffic, recorded by a first SQLite gateway (its log is what it sent, in
    // order, retries folded).
    let recorder = start_gateway(&root.join("recorder"), "127.0.0.1:0", None);
    simulate(&root, &recorder.url(), "21");
    drop(recorder);
    let recorded = {
        let store = lockdesk_gateway::SqliteStore::open(
            &root
                .join("recorder/data")
                .join(lockdesk_gateway::DATABASE_FILE),
        )
        .unwrap();
        lockdesk_gateway::EventStore::read_after(&store, 0, 1_000_000).unwrap()
    };
    assert!(recorded.len() > 50, "{} entries", recorded.len());

    // The same bytes, in the same order, to both gateways; then a few deliveries that move
    // conversations between the two advisors, a retried one, and an end marker per advisor.
    let sqlite = start_gateway(&root.join("sqlite"), "127.0.0.1:0", None);
    let postgres = start_gateway(&root.join("pg"), "127.0.0.1:0", Some((&pg, &url)));
    let mut extra: Vec<(String, bool)> = vec![
        (
            event("x1", "v2.conversation.pushed", "c-x", Some(1001)),
            true,
        ),
        (event("x2", "visitor.updated", "c-x", None), true),
        (
            event("x3", "v2.conversation.pushed", "c-x", Some(1002)),
            true,
        ),
        (event("x2", "visitor.updated", "c-x", None), true),
        (event("x4", "v2.conversation.closed", "c-x", None), true),
    ];
    for (op, name) in [(1001u64, "end-1001"), (1002, "end-1002")] {
        extra.push((
            event(
                name,
                "v2.conversation.pushed",
                &format!("c-{name}"),
                Some(op),
            ),
            true,
        ));
    }
    let deliveries = recorded
        .iter()
        .map(|e| {
            (
                e.payload.clone(),
                e.kind == lockdesk_gateway::store::EntryKind::Webhook,
            )
        })
        .chain(extra);
    let mut last = 0;
    for (body, webhook) in deliveries {
        let path = if webhook {
            "/webhooks/iadvize"
        } else {
            "/v1/evidence"
        };
        let a = post(sqlite.addr, path, &body, webhook);
        let b = post(postgres.addr, path, &body, webhook);
        assert_eq!(a, b, "the two gateways numbered a delivery differently");
        last = last.max(a);
    }

    let supervisor = |addr| read_feed(addr, SUPERVISOR, |e| e.seq == last);
    let (x, y) = (supervisor(sqlite.addr), supervisor(postgres.addr));
    assert_eq!(seqs(&x), (1..=last).collect::<Vec<_>>());
    assert_eq!(x, y, "the supervisor's feeds differ");
    for (credential, end) in [(ADA, "end-1001"), (BOB, "end-1002")] {
        let advisor = |addr| read_feed(addr, credential, |e| event_id(e) == Some(end));
        let (x, y) = (advisor(sqlite.addr), advisor(postgres.addr));
        assert!(
            x.len() > 2 && (x.len() as u64) < last,
            "{end}: {} entries",
            x.len()
        );
        assert!(
            x.iter().any(|e| e.get("related").is_some()),
            "{end}: no push carried a related bundle"
        );
        for (p, q) in x.iter().zip(&y) {
            assert_eq!(p, q, "{end}: the advisor's feeds differ");
        }
        assert_eq!(
            x.len(),
            y.len(),
            "{end}: the advisor's feeds differ in length"
        );
    }
}
