//! Issue 15's end-to-end feed test through a real TLS load balancer: two real
//! `lockdesk-cli gateway --store postgres://...` instances on one real PostgreSQL 15, a real
//! nginx in front of them running the shipped deploy/nginx-two-instances.conf (with a
//! throw-away CA the desk is told to trust through `--ca-file`: verification stays on), and the
//! real `lockdesk-cli watch` subscribed through `wss://` to the load balancer while
//! `lockdesk-cli simulate` plays. Instance A, the one the desk's connection went to, is
//! SIGKILLed mid-stream: the desk reconnects through the same load balancer address, lands on B
//! and resumes after its cursor. At the end its store equals that of an uninterrupted desk
//! (the comparison of watch_kill.rs) and it printed every change exactly once. Then, A still
//! dead, signed webhooks posted over https to the load balancer (curl, trusting the same CA)
//! are committed on B; and a desk without the CA file cannot connect.
//!
//! The simulator posts to instance B directly (plain HTTP to its own port): the test is about
//! the desk's side; the gateway's side under kills is gateway_pg.rs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use lockdesk_testkit::nginx::Nginx;
use lockdesk_testkit::pg::PgServer;

use crate::support;
use crate::support::collected::{wait_until, Collected};
use crate::support::desk_store::{assert_same, cursor};
use crate::support::{
    change_key, cli, generate_keys, log_end, resumes, start_pg_gateway, watch_command,
    GatewayConfig, RunningGateway, ISSUER,
};

const WEBHOOK_SECRET: &str = "lb-failover-webhook-secret-0123";
const PROVIDER_TOKEN: &str = "lb-failover-provider-credential-0123";
const SUPERVISOR: &str = "lb-failover-supervisor-credential-0123";

/// The shipped load-balancer configuration: what docs/deploy-postgres.md tells to install.
fn shipped_site() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/nginx-two-instances.conf");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `lockdesk-cli gateway --listen 127.0.0.1:0 --store URL --config DIR/gateway.toml`, the
/// password in LOCKDESK_PG_PASSWORD, its log in DIR/gateway.err.
fn start_instance(dir: &Path, pg: &PgServer, url: &str) -> RunningGateway {
    let config = GatewayConfig::default()
        .webhook("sim", WEBHOOK_SECRET)
        .provider("sim", PROVIDER_TOKEN)
        .supervisor("sam", SUPERVISOR);
    start_pg_gateway(dir, &config.toml(), "127.0.0.1:0", pg, url)
}

#[test]
fn a_desk_through_the_load_balancer_resumes_on_b_when_a_is_killed_with_nothing_lost_or_repeated() {
    let pg = PgServer::start();
    let url = pg.create_database("lb");
    let dir = tempfile::tempdir().unwrap();
    let root: PathBuf = dir.path().to_owned();
    generate_keys(&root.join("desk"));

    let a = start_instance(&root.join("a"), &pg, &url);
    let b = start_instance(&root.join("b"), &pg, &url);
    let lb = Nginx::start(
        &shipped_site(),
        &[
            ("instance A", a.addr.to_string()),
            ("instance B", b.addr.to_string()),
            ("evidence from", "127.0.0.1".to_owned()),
        ],
    );
    let feed = format!("wss://127.0.0.1:{}/v1/feed", lb.port());
    let watch = |data: &Path| {
        let mut cmd = watch_command(&root, &feed, SUPERVISOR, data);
        cmd.arg("--ca-file").arg(lb.ca_file());
        Collected::spawn(cmd)
    };

    // The simulator: every scenario, at a steady rate, for a few seconds, into instance B.
    let sim = crate::support::simulate_command(
        &root,
        &b.url(),
        300,
        6,
        "15",
        (WEBHOOK_SECRET, PROVIDER_TOKEN),
    );
    let sim = Collected::spawn(sim);
    // The brand's key set is written before the first step is sent.
    wait_until("the simulator's first step", || sim.stdout_count() > 0);

    // The desk through the load balancer: nginx (one worker, round robin) sends its first
    // connection to the first upstream, instance A.
    let data = root.join("failover");
    let desk = watch(&data);
    // A hundred entries read from A first (the simulator sends 300 a second for 6 s).
    wait_until("the desk's first hundred entries", || cursor(&data) >= 100);
    // (its stderr is read by a thread: wait for the line rather than race it)
    wait_until("the desk's first connection line", || {
        !resumes(&desk.stderr(), &feed).is_empty()
    });
    let before_kill = resumes(&desk.stderr(), &feed);
    assert_eq!(
        before_kill,
        [0],
        "one connection so far: {:?}",
        desk.stderr()
    );
    // SIGKILL instance A mid-stream (Child::kill is SIGKILL on Unix).
    let committed_before = cursor(&data);
    let mut a = a;
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    let at_kill = cursor(&data);

    let (status, sim_lines, sim_err) = sim.finish();
    assert!(status.success(), "the simulator failed: {sim_err:?}");
    let last = log_end(&sim_lines);
    assert!(
        at_kill < last,
        "the kill fell after the desk had everything ({at_kill} of {last}): not mid-stream"
    );

    wait_until("the failed-over desk to reach the log's end", || {
        cursor(&data) >= last
    });
    let (status, lines, err) = desk.interrupt();
    assert!(status.success(), "the desk exited with {status}: {err:?}");
    // It was on A: A's death closed its connection, and it connected again through the same
    // load balancer address (to B, the only one left), resuming after what it had committed.
    let resumed = resumes(&err, &feed);
    assert!(
        resumed.len() >= 2 && resumed[0] == 0 && resumed[1] >= committed_before.max(1),
        "expected a first connection from 0, then one resuming after at least the {committed_before} \
         entries committed before A was killed: {err:?}"
    );
    assert!(
        err.iter().any(|l| l.contains("disconnected")),
        "A's death was not seen by the desk: {err:?}"
    );

    // One uninterrupted desk on another folder, through the load balancer (now B only).
    let reference_data = root.join("reference");
    let reference = watch(&reference_data);
    wait_until("the uninterrupted desk to reach the log's end", || {
        cursor(&reference_data) >= last
    });
    let (status, reference_lines, reference_err) = reference.interrupt();
    assert!(
        status.success(),
        "the reference desk exited with {status}: {reference_err:?}"
    );
    assert_eq!(resumes(&reference_err, &feed), [0], "{reference_err:?}");

    // Nothing lost: the stores hold the same state.
    assert_same(&data, "failed-over desk", &reference_data);
    // Nothing repeated: the failed-over desk printed each change once, the same changes as the
    // uninterrupted one (a line is printed after its batch commits; nothing was killed here).
    let count = |lines: &[String]| {
        let mut m: HashMap<_, u32> = HashMap::new();
        for l in lines {
            *m.entry(change_key(l)).or_default() += 1;
        }
        m
    };
    let (got, want) = (count(&lines), count(&reference_lines));
    assert!(!want.is_empty());
    assert!(
        want.values().all(|&n| n == 1),
        "the uninterrupted desk printed a change twice"
    );
    if let Some((k, n)) = got.iter().find(|(_, &n)| n > 1) {
        panic!("the failed-over desk printed {k:?} {n} times");
    }
    assert_eq!(got, want, "the failed-over desk printed other changes");
    println!(
        "{last} entries; A killed at the desk's cursor {at_kill}; the desk resumed after {:?}; \
         stores equal, {} changes printed once",
        &resumed[1..],
        want.len()
    );

    // iAdvize's side through the load balancer, A still dead: signed webhooks over https reach
    // B (a refused A is retried there) and are committed after the log's end.
    for i in 1..=3u64 {
        let id = format!("through-the-lb-{i}");
        let body = support::pushed_body(&id);
        let sig = lockdesk_sim::webhook_signature(WEBHOOK_SECRET.as_bytes(), body.as_bytes());
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "30", "--cacert"])
            .arg(lb.ca_file())
            .args([
                "-H",
                "Content-Type: application/json",
                "-H",
                &format!("x-iadvize-signature: {sig}"),
                "--data-binary",
                &body,
                "-w",
                "\n%{http_code}",
                &format!("https://127.0.0.1:{}/webhooks/iadvize", lb.port()),
            ])
            .output()
            .expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (answer, status) = text.rsplit_once('\n').unwrap_or(("", &text));
        assert_eq!(
            status,
            "200",
            "{text} {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            lb.error_log()
        );
        let v: serde_json::Value = serde_json::from_str(answer).unwrap();
        assert_eq!(v["seq"].as_u64(), Some(last + i), "{answer}");
    }

    // Verification stays on: without the CA file the same desk cannot connect.
    let mut cmd = cli();
    cmd.args([
        "watch",
        "--json",
        "--duration",
        "2",
        "--feed",
        &feed,
        "--trust",
    ])
    .arg(format!("{ISSUER}={}", root.join("brand.jwks").display()))
    .arg("--data")
    .arg(root.join("untrusting"))
    .env("LOCKDESK_FEED_CREDENTIAL", SUPERVISOR);
    let (_, _, err) = Collected::spawn(cmd).finish();
    assert!(resumes(&err, &feed).is_empty(), "{err:?}");
    assert!(
        err.iter().any(|l| l.to_lowercase().contains("certificate")),
        "no certificate error: {err:?}"
    );
    drop(lb);
}
