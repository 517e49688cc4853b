//! Two real `lockdesk-cli gateway --store postgres://...` instances on one real PostgreSQL 15
//! (started by the test, lockdesk-testkit): an instance SIGKILLed mid-burst, the same delivery
//! at both instances at once, PostgreSQL killed mid-burst and started again. Afterwards every
//! delivery that got a 2xx is stored exactly once in one gapless sequence, and a supervisor's
//! feed through an instance serves each once.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use lockdesk_gateway::{EventStore, PgSettings, PostgresStore};
use lockdesk_testkit::pg::PgServer;

use crate::support;
use crate::support::{
    listening_on, seq_of, start_pg_gateway, Burst, GatewayConfig, RunningGateway,
};

const SECRET: &str = "pg-test-webhook-secret";
const SUPERVISOR: &str = "pg-test-supervisor-credential";
/// A bound on a hang, not a timing claim.
const PATIENCE: Duration = Duration::from_secs(60);

fn config() -> String {
    GatewayConfig::default()
        .webhook("main", SECRET)
        .supervisor("sam", SUPERVISOR)
        .toml()
}

/// `lockdesk-cli gateway --listen 127.0.0.1:0 --config DIR/gateway.toml --store URL`, the
/// password in LOCKDESK_PG_PASSWORD, its log in DIR/gateway.err.
fn start(dir: &Path, pg: &PgServer, url: &str) -> RunningGateway {
    start_pg_gateway(dir, &config(), "127.0.0.1:0", pg, url)
}

/// Two instances, `a` and `b` (in those folders of `dir`), on a new database `db`, and its URL.
fn two_instances(pg: &PgServer, dir: &Path, db: &str) -> (String, RunningGateway, RunningGateway) {
    let url = pg.create_database(db);
    let a = start(&dir.join("a"), pg, &url);
    let b = start(&dir.join("b"), pg, &url);
    (url, a, b)
}

fn store(pg: &PgServer, url: &str) -> PostgresStore {
    PostgresStore::open(&PgSettings {
        url: url.to_owned(),
        password: Some(pg.password().to_owned()),
        ca_file: None,
    })
    .unwrap()
}

fn deliver(addr: SocketAddr, id: &str) -> Option<(u16, String)> {
    support::deliver(addr, SECRET, id)
}

/// DIR/gateway.toml: this file's webhook and supervisor, and a `[store]` section of `store`
/// lines plus `password_file = "pg.pass"` (written beside it, with `pg`'s password). Its path.
fn store_config(dir: &Path, pg: &PgServer, store: &str) -> PathBuf {
    std::fs::write(dir.join("pg.pass"), format!("{}\n", pg.password())).unwrap();
    let path = dir.join("gateway.toml");
    std::fs::write(
        &path,
        format!("{}[store]\n{store}password_file = \"pg.pass\"\n", config()),
    )
    .unwrap();
    path
}

/// `lockdesk-cli gateway --listen 127.0.0.1:0 --config CONFIG`, the password from the file only.
fn gateway_with(config: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lockdesk-cli"));
    cmd.args(["gateway", "--listen", "127.0.0.1:0", "--config"])
        .arg(config)
        .env_remove("LOCKDESK_PG_PASSWORD");
    cmd
}

/// Starts `cmd`, its log in `err`, and waits until it listens.
fn spawn_listening(mut cmd: Command, err: &Path) -> RunningGateway {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(err).unwrap())
        .spawn()
        .unwrap();
    let addr = listening_on(&mut child);
    RunningGateway { child, addr }
}

/// Checks the log against what was sent and acknowledged: gapless, every entry sent, stored
/// once, every acknowledged delivery there at the seq it was acknowledged with; then the
/// supervisor feed through each address serves exactly that. Returns the number of entries.
fn check_log(
    pg: &PgServer,
    url: &str,
    sent: &HashSet<String>,
    acked: &HashMap<String, u64>,
    feeds: &[SocketAddr],
) -> usize {
    let entries = store(pg, url).read_after(0, 1_000_000).unwrap();
    let seqs: Vec<u64> = entries.iter().map(|e| e.seq).collect();
    let stored = support::stored_once(&entries, sent);
    for (id, seq) in acked {
        assert_eq!(stored.get(id), Some(seq), "{id} got a 200 (seq {seq})");
    }
    for &addr in feeds {
        let served = support::read_feed(addr, SUPERVISOR, entries.len() as u64);
        assert_eq!(served.iter().map(|(s, _)| *s).collect::<Vec<_>>(), seqs);
        for (seq, id) in &served {
            assert_eq!(stored.get(id), Some(seq), "{id} served at another seq");
        }
    }
    entries.len()
}

#[test]
fn an_instance_sigkilled_mid_burst_loses_and_duplicates_nothing_the_other_carries_on() {
    let pg = PgServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (url, a, b) = two_instances(&pg, dir.path(), "kill");
    let addrs = [a.addr, b.addr];

    let burst = Burst::start(move |t, i, id| {
        // Spread over both instances; a failed attempt is retried on the other, as iAdvize
        // retries and a load balancer moves it.
        let first = (t + i) % 2;
        for attempt in 0..4 {
            match deliver(addrs[(first + attempt) % 2], id) {
                Some((200, answer)) => return Some(seq_of(&answer)),
                Some((status, answer)) => panic!("{id}: {status} {answer}"),
                None => continue,
            }
        }
        panic!("{id}: neither instance answered");
    });
    let wait_for = |n: usize| {
        let deadline = Instant::now() + PATIENCE;
        while burst.acked_count() < n {
            assert!(Instant::now() < deadline, "the burst did not get going");
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    wait_for(300);
    let mut a = a;
    a.child.kill().unwrap(); // SIGKILL
    a.child.wait().unwrap();
    let at_kill = burst.acked_count();
    // The burst carries on through the other instance.
    wait_for(at_kill + 300);
    let (sent, acked) = burst.stop();
    let acked: HashMap<String, u64> = acked.into_iter().collect();
    let stored = check_log(&pg, &url, &sent, &acked, &[b.addr]);
    eprintln!(
        "acknowledged {}, stored {stored}, sent {}",
        acked.len(),
        sent.len()
    );
    // A retry of an acknowledged delivery is recognised by the survivor.
    let (id, seq) = acked.iter().next().unwrap();
    let (status, answer) = deliver(b.addr, id).unwrap();
    assert_eq!(status, 200);
    assert!(
        answer.contains(&format!("\"seq\":{seq}")) && answer.contains("\"duplicate\":true"),
        "{answer}"
    );
}

#[test]
fn the_same_delivery_at_both_instances_at_once_is_stored_once() {
    let pg = PgServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (url, a, b) = two_instances(&pg, dir.path(), "twice");
    const ROUNDS: usize = 60;
    // Then a few deliveries to A alone: B learns of them only through its tail.
    const ONLY_A: usize = 5;
    // A supervisor connected to B before anything is stored: B's live tail must deliver what
    // A commits too (NOTIFY, or the poll).
    let live = std::thread::spawn({
        let addr = b.addr;
        move || support::read_feed(addr, SUPERVISOR, (ROUNDS + ONLY_A) as u64)
    });
    let deadline = Instant::now() + PATIENCE;
    while !get(b.addr, "/metrics")
        .1
        .contains("lockdesk_gateway_feed_subscribers{role=\"supervisor\"} 1")
    {
        assert!(
            Instant::now() < deadline,
            "the live supervisor never connected"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let barrier = Arc::new(Barrier::new(2));
    let senders: Vec<_> = [a.addr, b.addr]
        .into_iter()
        .map(|addr| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                (0..ROUNDS)
                    .map(|i| {
                        barrier.wait();
                        let (status, answer) = deliver(addr, &format!("same-{i}")).unwrap();
                        assert_eq!(status, 200, "{answer}");
                        let v: serde_json::Value = serde_json::from_str(&answer).unwrap();
                        (
                            v["seq"].as_u64().unwrap(),
                            v["duplicate"].as_bool().unwrap(),
                        )
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let answers: Vec<Vec<(u64, bool)>> = senders.into_iter().map(|s| s.join().unwrap()).collect();
    let mut acked = HashMap::new();
    for (i, (&x, &y)) in answers[0].iter().zip(&answers[1]).enumerate() {
        assert_eq!(x.0, y.0, "round {i}: both instances name the same seq");
        assert!(
            x.1 != y.1,
            "round {i}: exactly one of the two is the duplicate"
        );
        acked.insert(format!("same-{i}"), x.0);
    }
    for i in 0..ONLY_A {
        let id = format!("only-a-{i}");
        let (status, answer) = deliver(a.addr, &id).unwrap();
        assert_eq!(status, 200, "{answer}");
        acked.insert(id, seq_of(&answer));
    }
    let served = live.join().unwrap();
    assert_eq!(
        served.len(),
        ROUNDS + ONLY_A,
        "the live feed repeated or skipped: {served:?}"
    );
    for (seq, id) in served {
        assert_eq!(
            acked.get(&id),
            Some(&seq),
            "{id} served live at another seq"
        );
    }
    let sent: HashSet<String> = acked.keys().cloned().collect();
    assert_eq!(
        check_log(&pg, &url, &sent, &acked, &[a.addr, b.addr]),
        ROUNDS + ONLY_A
    );
    // Each instance counts its append groups on /metrics: A committed at least its own five
    // deliveries; no group is counted for a delivery that was not sent to that instance.
    let groups: Vec<u64> = [a.addr, b.addr]
        .into_iter()
        .map(|addr| {
            let metrics = get(addr, "/metrics").1;
            ["1", "2"]
                .into_iter()
                .map(|trips| {
                    metric(
                        &metrics,
                        &format!("lockdesk_gateway_pg_groups_total{{round_trips=\"{trips}\"}}"),
                    )
                })
                .sum()
        })
        .collect();
    assert!(groups[0] >= 1, "A's groups: {groups:?}");
    assert!(
        groups[0] <= (ROUNDS + ONLY_A) as u64 && groups[1] <= ROUNDS as u64,
        "more groups than deliveries: {groups:?}"
    );
}

/// The value of the metric line named `name` (labels included); panics if it is missing.
fn metric(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in:\n{metrics}"))
}

#[test]
fn postgres_killed_mid_burst_no_2xx_for_what_is_not_stored_and_no_instance_restarts() {
    let pg = PgServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (url, mut a, mut b) = two_instances(&pg, dir.path(), "outage");
    let addrs = [a.addr, b.addr];
    const PER_WORKER: usize = 120;

    let acked: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
    let ack_count = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..6)
        .map(|t| {
            let (acked, ack_count, refused) = (acked.clone(), ack_count.clone(), refused.clone());
            std::thread::spawn(move || {
                for i in 0..PER_WORKER {
                    let id = format!("outage-{t}-{i}");
                    let deadline = Instant::now() + PATIENCE;
                    // Retried until acknowledged, on alternating instances (iAdvize gives up
                    // after two retries; the point here is what a 2xx means).
                    for attempt in 0.. {
                        match deliver(addrs[(t + i + attempt) % 2], &id) {
                            Some((200, answer)) => {
                                acked.lock().unwrap().insert(id.clone(), seq_of(&answer));
                                ack_count.fetch_add(1, Ordering::Relaxed);
                                break;
                            }
                            Some((503, answer)) => {
                                assert!(answer.contains("storage_unavailable"), "{answer}");
                                refused.fetch_add(1, Ordering::Relaxed);
                            }
                            other => panic!("{id}: {other:?}"),
                        }
                        assert!(Instant::now() < deadline, "{id} was never acknowledged");
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            })
        })
        .collect();
    let deadline = Instant::now() + PATIENCE;
    while ack_count.load(Ordering::Relaxed) < 150 {
        assert!(Instant::now() < deadline, "the burst did not get going");
        std::thread::sleep(Duration::from_millis(10));
    }
    pg.kill();
    // Wait until the outage is seen (some deliveries refused), then bring the server back.
    while refused.load(Ordering::Relaxed) < 6 {
        assert!(
            Instant::now() < deadline,
            "no delivery was refused while down"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    for addr in addrs {
        let (status, _) = get(addr, "/healthz");
        assert_eq!(status, 503, "/healthz must say the store is down");
    }
    pg.restart();
    for w in workers {
        w.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert_eq!(acked.len(), 6 * PER_WORKER);
    let sent: HashSet<String> = acked.keys().cloned().collect();
    check_log(&pg, &url, &sent, &acked, &[a.addr, b.addr]);
    // Neither instance exited or was restarted: the same processes serve again.
    for g in [&mut a, &mut b] {
        assert!(g.child.try_wait().unwrap().is_none(), "an instance exited");
        assert_eq!(get(g.addr, "/healthz").0, 200);
    }
}

/// A plain GET: (status, body).
fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    let status = reply[9..12].parse().unwrap();
    (
        status,
        reply.split("\r\n\r\n").nth(1).unwrap_or("").to_owned(),
    )
}

#[test]
fn a_password_in_the_store_url_is_refused_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("gateway.toml");
    std::fs::write(&config_path, config()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_lockdesk-cli"))
        .args(["gateway", "--listen", "127.0.0.1:0", "--store"])
        .arg("postgres://lockdesk:hunter2-secret@127.0.0.1:1/db")
        .arg("--config")
        .arg(&config_path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("LOCKDESK_PG_PASSWORD"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("listening"));
    // The same URL in the configuration file: refused, naming the field, not the password.
    std::fs::write(
        &config_path,
        format!(
            "{}[store]\nurl = \"postgres://lockdesk:hunter2-secret@127.0.0.1:1/db\"\n",
            config()
        ),
    )
    .unwrap();
    let out = gateway_with(&config_path).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("store.url"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

#[test]
fn the_store_url_and_password_file_from_gateway_toml() {
    let pg = PgServer::start();
    let url = pg.create_database("fromfile");
    let dir = tempfile::tempdir().unwrap();
    let config_path = store_config(dir.path(), &pg, &format!("url = \"{url}\"\n"));
    let gateway = spawn_listening(gateway_with(&config_path), &dir.path().join("gateway.err"));
    let (status, answer) = deliver(gateway.addr, "from-file").unwrap();
    assert_eq!((status, seq_of(&answer)), (200, 1), "{answer}");
    assert_eq!(store(&pg, &url).counts().unwrap().last_seq, 1);
    drop(gateway);
    let log = std::fs::read_to_string(dir.path().join("gateway.err")).unwrap();
    assert!(!log.contains(pg.password()), "the password reached the log");
    // Both the environment and the file: refused as ambiguous.
    let out = gateway_with(&config_path)
        .env("LOCKDESK_PG_PASSWORD", "x")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("given twice"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_store_over_tls_with_gateway_toml_s_ca_file_and_a_wrong_ca_stops_the_start() {
    let pg = PgServer::start_with(&lockdesk_testkit::pg::PgOptions {
        tls: true,
        ..Default::default()
    })
    .unwrap();
    pg.create_database("overtls");
    // A name that is not this machine's: verify-full by default, against [store] ca_file
    // (relative: beside gateway.toml).
    let url = pg.tls_url("overtls");
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(pg.ca_file().unwrap(), dir.path().join("ca.pem")).unwrap();
    let config_path = store_config(
        dir.path(),
        &pg,
        &format!("url = \"{url}\"\nca_file = \"ca.pem\"\n"),
    );
    let mut cmd = gateway_with(&config_path);
    cmd.env("RUST_LOG", "info");
    let gateway = spawn_listening(cmd, &dir.path().join("gateway.err"));
    let (status, answer) = deliver(gateway.addr, "over-tls").unwrap();
    assert_eq!((status, seq_of(&answer)), (200, 1), "{answer}");
    let encrypted = pg.psql(
        "overtls",
        "SELECT count(*) FILTER (WHERE s.ssl) > 0 AND count(*) FILTER (WHERE NOT s.ssl) = 0
         FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
         WHERE a.application_name = 'lockdesk-gateway'",
    );
    assert_eq!(
        encrypted, "t",
        "the gateway's sessions are not all over TLS"
    );
    drop(gateway);
    let log = std::fs::read_to_string(dir.path().join("gateway.err")).unwrap();
    assert!(log.contains("host name are verified"), "{log}");
    assert!(!log.contains(pg.password()), "the password reached the log");
    // Another CA in ca.pem: the gateway does not start, and says why.
    std::fs::write(
        dir.path().join("ca.pem"),
        lockdesk_testkit::tls::ThrowAwayCa::new().cert_pem(),
    )
    .unwrap();
    let out = gateway_with(&config_path).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("the server's certificate is not issued by the CA"),
        "{stderr}"
    );
    assert!(!stderr.contains(pg.password()), "{stderr}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("listening"));
}
