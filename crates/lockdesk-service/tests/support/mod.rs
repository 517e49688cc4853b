//! Shared by the service's integration tests: a real gateway with one supervisor subscriber, the
//! desk's key pair and the simulated brand's keys, the simulator's sender and a signed delivery
//! to that gateway, the desk's options, waiting for the store's cursor.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lockdesk_desk::DeskConfig;
use lockdesk_feed_client::Credential;
use lockdesk_gateway::{FeedOptions, Gateway, GatewayConfig, ServerOptions};
use lockdesk_service::{DeskService, Options};
use lockdesk_sim::{SimKeys, Target};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const WEBHOOK_SECRET: &str = "reliability-webhook-secret-0123";
pub const PROVIDER: &str = "reliability-provider-credential-0123";
pub const SUPERVISOR: &str = "reliability-supervisor-credential-0123";
/// Upper bound for any wait (a safety net against hangs, not a timing assertion).
pub const PATIENCE: Duration = Duration::from_secs(120);

pub fn gateway_config() -> GatewayConfig {
    GatewayConfig::from_toml(&format!(
        "[[webhook]]\nname = \"sim\"\nsecret = \"{WEBHOOK_SECRET}\"\n\n\
         [[provider]]\nname = \"brand\"\ncredential = \"{PROVIDER}\"\n\n\
         [[subscriber]]\nname = \"sam\"\ncredential = \"{SUPERVISOR}\"\nrole = \"supervisor\"\n"
    ))
    .unwrap()
}

pub async fn start_gateway(dir: &Path, listen: SocketAddr) -> Gateway {
    let options = ServerOptions {
        feed: FeedOptions {
            heartbeat: Duration::from_secs(2),
            ..Default::default()
        },
        ..Default::default()
    };
    // The port may still be held for a moment by the previous instance's last sockets.
    let mut tries = 0;
    loop {
        match lockdesk_gateway::start_with(gateway_config(), dir, listen, options).await {
            Ok(g) => return g,
            Err(e) if tries < 50 => {
                tries += 1;
                eprintln!("gateway start: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("the gateway does not start again: {e}"),
        }
    }
}

/// The desk's key pair (PEM files) in `dir`.
pub fn desk_keys(dir: &Path) -> (PathBuf, PathBuf) {
    let rsa = openssl::rsa::Rsa::generate(2048).unwrap();
    let pkey = openssl::pkey::PKey::from_rsa(rsa).unwrap();
    let private = dir.join("desk-private.pem");
    let public = dir.join("desk-public.pem");
    std::fs::write(&private, pkey.private_key_to_pem_pkcs8().unwrap()).unwrap();
    std::fs::write(&public, pkey.public_key_to_pem().unwrap()).unwrap();
    (private, public)
}

/// The desk's key pair ([`desk_keys`]) and the simulated brand's keys (its tokens encrypted to
/// that desk key), the brand's public keys written as `brand.jwks.json`, all in `dir`.
pub struct Keys {
    pub private: PathBuf,
    pub sim: SimKeys,
    pub jwks: PathBuf,
}

pub fn keys(dir: &Path) -> Keys {
    let (private, public) = desk_keys(dir);
    let sim = SimKeys::generate(&lockdesk_sim::read_desk_public(&public).unwrap()).unwrap();
    let jwks = dir.join("brand.jwks.json");
    std::fs::write(&jwks, &sim.brand_public_jwks).unwrap();
    Keys { private, sim, jwks }
}

/// The simulator's sender to the gateway at `addr` (the test webhook secret and provider
/// credential). Blocking: from a multi-threaded runtime, inside `block_in_place`.
pub fn sender(addr: SocketAddr, keys: SimKeys) -> lockdesk_sim::Sender {
    lockdesk_sim::Sender::new(
        Target {
            gateway: format!("http://{addr}"),
            webhook_secret: WEBHOOK_SECRET.as_bytes().to_vec(),
            provider_token: PROVIDER.to_owned(),
        },
        keys,
    )
    .unwrap()
}

/// Posts one webhook delivery signed with the test secret (raw HTTP/1.1, this content type) to
/// the gateway at `addr`; asserts the 200 and returns the seq it answered.
pub async fn deliver_signed(addr: SocketAddr, content_type: &str, body: &str) -> u64 {
    let sig = lockdesk_sim::webhook_signature(WEBHOOK_SECRET.as_bytes(), body.as_bytes());
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "POST /webhooks/iadvize HTTP/1.1\r\nHost: gw\r\nContent-Type: {content_type}\r\n\
         x-iadvize-signature: {sig}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(request.as_bytes()).await.unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).await.unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    let json = &reply[reply.find("\r\n\r\n").unwrap() + 4..];
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    v["seq"].as_u64().unwrap()
}

pub fn options(data: &Path, feed: &str, private: &Path, jwks: &Path) -> Options {
    options_for(data, &[feed], private, jwks)
}

/// [`options`] with several gateway addresses (instances of one log, with failover).
pub fn options_for(data: &Path, feed: &[&str], private: &Path, jwks: &Path) -> Options {
    let mut keys = lockdesk_keys::Setup::default();
    keys.trust.push((
        lockdesk_sim::plan::ISSUER.to_owned(),
        lockdesk_keys::Source::parse(&jwks.display().to_string()),
    ));
    keys.decryption.push(private.to_owned());
    Options {
        data_dir: data.to_owned(),
        feed_urls: feed.iter().map(|f| (*f).to_owned()).collect(),
        credential: Credential::new(SUPERVISOR),
        ca_file: None,
        keys,
        // The production default (60 min): no session lapses by the desk's own clock while the
        // test runs, so both desks' states depend on the log only.
        desk: DeskConfig::default(),
        tick_every: Duration::from_secs(1),
        demo: false,
        // No iAdvize API here: the state comes from the feed only.
        backfill: None,
    }
}

/// Waits until the service's store has applied everything up to `seq`.
pub async fn wait_cursor(service: &DeskService, seq: u64, what: &str) {
    let start = Instant::now();
    loop {
        // The reader connection's view of the committed cursor.
        let cursor = service.read(|d| d.stats().map(|s| s.cursor).unwrap_or(0));
        if cursor >= seq {
            return;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "{what}: the cursor stayed at {cursor}, the log ends at {seq}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls `done` until it holds; panics naming `what` after `PATIENCE`. For what the service
/// does on its own clock (a tick's lapse) that no event announces to the test.
pub async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < PATIENCE, "waited too long for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
