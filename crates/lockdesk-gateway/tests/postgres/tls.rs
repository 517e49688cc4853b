//! The PostgreSQL store over TLS, against a real PostgreSQL with `ssl = on` and a certificate
//! from a throw-away CA (lockdesk-testkit's `PgOptions::tls`): verified and encrypted when the
//! CA and the name are right, refused with a plain account when they are not, and a gateway
//! whose server stops passing verification answers 503 like for any unavailable store.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lockdesk_gateway::{
    EventStore, GatewayConfig, PgSettings, PostgresStore, ServerOptions, StoreError,
};
use lockdesk_testkit::pg::{PgOptions, PgServer, TLS_HOST, USER};
use lockdesk_testkit::tls::ThrowAwayCa;

use super::PATIENCE;
use crate::{capture_logs, config, logs};

fn tls_server() -> PgServer {
    PgServer::start_with(&PgOptions {
        tls: true,
        ..PgOptions::default()
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

fn with_ca(pg: &PgServer, url: &str, ca_file: Option<PathBuf>) -> PgSettings {
    PgSettings {
        url: url.to_owned(),
        password: Some(pg.password().to_owned()),
        ca_file,
    }
}

/// The gateway's own sessions on `db` (application_name lockdesk-gateway): (with TLS, without).
fn gateway_sessions(pg: &PgServer, db: &str) -> (u64, u64) {
    let row = pg.psql(
        db,
        "SELECT count(*) FILTER (WHERE s.ssl), count(*) FILTER (WHERE NOT s.ssl)
         FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
         WHERE a.application_name = 'lockdesk-gateway' AND a.datname = current_database()",
    );
    let (with, without) = row.split_once('|').expect("two columns");
    (with.parse().unwrap(), without.parse().unwrap())
}

/// The message of a store that did not open.
fn refused(settings: &PgSettings) -> StoreError {
    match PostgresStore::open(settings) {
        Ok(_) => panic!("opened: {settings:?}"),
        Err(e) => e,
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_with_the_right_ca_appends_serves_and_every_connection_is_encrypted() {
    capture_logs();
    let pg = Arc::new(tokio::task::spawn_blocking(tls_server).await.unwrap());
    {
        let pg = pg.clone();
        tokio::task::spawn_blocking(move || pg.create_database("tls_ok"))
            .await
            .unwrap();
    }
    // A name that is not this machine's: verify-full by default, with the CA file given.
    let settings = with_ca(&pg, &pg.tls_url("tls_ok"), pg.ca_file());
    let store = tokio::task::spawn_blocking(move || PostgresStore::open(&settings))
        .await
        .unwrap()
        .unwrap();
    let store = Arc::new(store);
    let config = GatewayConfig::from_toml(&config()).unwrap();
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let gateway = lockdesk_gateway::start_with_store(
        config,
        store.clone() as Arc<dyn EventStore>,
        addr,
        ServerOptions::default(),
    )
    .await
    .unwrap();
    let base = format!("http://{}", gateway.local_addr());
    let client = reqwest::Client::new();
    for id in ["t1", "t2"] {
        let r = super::push_over_http(&client, &base, id).await.unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }
    let health = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let reader = store.clone();
    let entries = tokio::task::spawn_blocking(move || reader.read_after(0, 10))
        .await
        .unwrap()
        .unwrap();
    let ids: Vec<Option<&str>> = entries.iter().map(|e| e.event_id.as_deref()).collect();
    assert_eq!(ids, [Some("t1"), Some("t2")]);
    // The writer, the listener and the pooled readers: all over TLS, none in clear. The
    // listener connects on its own task: wait for it (bounded).
    let deadline = Instant::now() + PATIENCE;
    loop {
        let pg = pg.clone();
        let (with, without) = tokio::task::spawn_blocking(move || gateway_sessions(&pg, "tls_ok"))
            .await
            .unwrap();
        assert_eq!(without, 0, "a gateway connection without TLS");
        if with >= 3 {
            break;
        }
        assert!(Instant::now() < deadline, "only {with} gateway sessions");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The same with the CA in the URL (libpq's sslrootcert), and libpq's verify-full spelled.
    let url = format!(
        "{}&sslmode=verify-full&sslrootcert={}",
        pg.tls_url("tls_ok"),
        pg.ca_file().unwrap().display()
    );
    let other = with_ca(&pg, &url, None);
    let second = tokio::task::spawn_blocking(move || PostgresStore::open(&other))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.log_id(), store.log_id());
    let logs = logs();
    assert!(
        logs.contains("the server's certificate and host name are verified"),
        "{logs}"
    );
    assert!(
        !logs.contains(pg.password()),
        "the password reached the logs"
    );
    gateway.shutdown().await.unwrap();
    drop(second);
}

#[test]
fn a_wrong_ca_or_host_name_or_ca_file_is_refused_at_start_and_require_only_warns() {
    capture_logs();
    let pg = tls_server();
    pg.create_database("tls_bad");
    let dir = tempfile::tempdir().unwrap();
    let stranger = write(dir.path(), "stranger.pem", &ThrowAwayCa::new().cert_pem());

    // A CA that did not issue the server's certificate.
    let e = refused(&with_ca(&pg, &pg.tls_url("tls_bad"), Some(stranger)));
    let text = e.to_string();
    assert!(matches!(e, StoreError::Unavailable(_)), "{text}");
    assert!(
        text.contains("TLS to PostgreSQL: the server's certificate is not issued by the CA"),
        "{text}"
    );
    assert!(!text.contains(pg.password()), "{text}");

    // The right CA, but a name the certificate does not hold: verify-full refuses...
    let elsewhere = format!(
        "postgres://{USER}@db.elsewhere.test:{}/tls_bad?hostaddr=127.0.0.1",
        pg.port()
    );
    let text = refused(&with_ca(
        &pg,
        &format!("{elsewhere}&sslmode=verify-full"),
        pg.ca_file(),
    ))
    .to_string();
    assert!(
        text.contains("not valid for the host name in the store URL"),
        "{text}"
    );
    // ... verify-ca checks the chain only: it connects, encrypted.
    let store = PostgresStore::open(&with_ca(
        &pg,
        &format!("{elsewhere}&sslmode=verify-ca"),
        pg.ca_file(),
    ))
    .unwrap();
    assert_eq!(store.counts().unwrap().last_seq, 0);
    let (with, without) = gateway_sessions(&pg, "tls_bad");
    assert!(
        with >= 1 && without == 0,
        "{with} with TLS, {without} without"
    );
    drop(store);
    // require without a CA: encrypted, anything accepted as the server, and the log says so.
    let store =
        PostgresStore::open(&with_ca(&pg, &format!("{elsewhere}&sslmode=require"), None)).unwrap();
    assert_eq!(store.counts().unwrap().last_seq, 0);
    let (with, without) = gateway_sessions(&pg, "tls_bad");
    assert!(
        with >= 1 && without == 0,
        "{with} with TLS, {without} without"
    );
    let logs = logs();
    assert!(
        logs.contains("encrypted but the server is not verified"),
        "{logs}"
    );
    drop(store);

    // An unreadable CA file: refused before connecting, by its name.
    let missing = dir.path().join("no-such-ca.pem");
    let e = refused(&with_ca(&pg, &pg.tls_url("tls_bad"), Some(missing.clone())));
    let text = e.to_string();
    assert!(matches!(e, StoreError::Settings(_)), "{text}");
    assert!(
        text.contains(&format!("the CA file {}", missing.display())),
        "{text}"
    );
    // A file that holds no certificate.
    let key_only = write(
        dir.path(),
        "key.pem",
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    );
    let text = refused(&with_ca(&pg, &pg.tls_url("tls_bad"), Some(key_only))).to_string();
    assert!(text.contains("no PEM certificate in it"), "{text}");
}

#[test]
fn require_or_the_default_for_a_remote_name_against_a_server_without_tls_fails_plainly() {
    let pg = PgServer::start();
    let url = pg.create_database("plain");
    let dir = tempfile::tempdir().unwrap();
    for url in [
        format!("{url}?sslmode=require"),
        format!("{url}?sslmode=verify-full"),
        // Nothing said, a name that is not this machine's: verify-full, so TLS is required.
        format!(
            "postgres://{USER}@{TLS_HOST}:{}/plain?hostaddr=127.0.0.1",
            pg.port()
        ),
    ] {
        // (Never used: the server offers no TLS to verify.)
        let ca = url
            .contains("verify-full")
            .then(|| write(dir.path(), "ca.pem", &ThrowAwayCa::new().cert_pem()));
        let e = refused(&with_ca(&pg, &url, ca));
        let text = e.to_string();
        assert!(matches!(e, StoreError::Unavailable(_)), "{url}: {text}");
        assert!(
            text.contains("the server does not offer TLS") && text.contains("sslmode=disable"),
            "{url}: {text}"
        );
        assert!(!text.contains(pg.password()), "{text}");
    }
    // The local URL with nothing said: as before, no TLS.
    let store = PostgresStore::open(&with_ca(&pg, &url, None)).unwrap();
    assert_eq!(store.counts().unwrap().last_seq, 0);
    // And prefer: TLS when offered; this server offers none, so in clear.
    let prefer = PostgresStore::open(&with_ca(&pg, &format!("{url}?sslmode=prefer"), None));
    assert!(prefer.is_ok());
    let (with, without) = gateway_sessions(&pg, "plain");
    assert!(
        with == 0 && without >= 2,
        "{with} with TLS, {without} without"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_whose_certificate_stops_verifying_makes_the_gateway_answer_503() {
    capture_logs();
    let pg = Arc::new(tokio::task::spawn_blocking(tls_server).await.unwrap());
    {
        let pg = pg.clone();
        tokio::task::spawn_blocking(move || pg.create_database("tls_rot"))
            .await
            .unwrap();
    }
    let settings = with_ca(&pg, &pg.tls_url("tls_rot"), pg.ca_file());
    let (gateway, base) = super::http_gateway(settings).await;
    let client = reqwest::Client::new();
    let deliver = |id: &'static str| super::push_over_http(&client, &base, id);
    assert_eq!(deliver("r1").await.unwrap().status(), 200);
    // The server now presents a certificate from a CA the gateway does not trust, and its
    // sessions are cut: every reconnection fails verification.
    {
        let pg = pg.clone();
        tokio::task::spawn_blocking(move || {
            pg.serve_certificate_from(&ThrowAwayCa::new());
            pg.psql(
                "tls_rot",
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                 WHERE application_name = 'lockdesk-gateway'",
            );
        })
        .await
        .unwrap();
    }
    let refused = deliver("r2").await.unwrap();
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().contains_key("retry-after"));
    let health = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 503);
    let body = health.text().await.unwrap();
    assert!(
        body.contains("the server's certificate is not issued by the CA"),
        "{body}"
    );
    // Its own CA's certificate again: the gateway recovers by itself.
    {
        let pg = pg.clone();
        tokio::task::spawn_blocking(move || pg.serve_certificate_from(pg.ca().unwrap()))
            .await
            .unwrap();
    }
    super::until_recovered(&client, &base, "r2").await;
    assert!(
        !logs().contains(pg.password()),
        "the password reached the logs"
    );
    gateway.shutdown().await.unwrap();
}
