//! The desk service end to end under connection cuts and gateway restarts: real gateway (its
//! SQLite log in a temp dir, restarted on the same folder and port), real HTTP traffic from the
//! simulator (signed webhooks, evidence with real tokens minted by `SimKeys` and encrypted to
//! the desk's key), a TCP relay between the desk and the gateway that drops every connection at
//! seeded random points, and real desk stores (SQLite files).
//!
//! The interrupted desk must end in exactly the state of a desk that read the same log without
//! interruption: both stores are dumped table by table (surrogate row ids replaced by natural
//! keys; the only wall-clock column the desk writes from its own clock, `applied_at_ms`, left
//! out) and compared.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lockdesk_feed_client::Backoff;
use lockdesk_service::{DeskService, DESK_FILE};
use lockdesk_sim::{plan, Action, Scenario, Signer, SimKeys, Step};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;

use lockdesk_testkit::desk_store::{assert_same, count};

use crate::support::*;

/// The feed client of a desk these tests interrupt: it reconnects fast (a hundred cuts in a
/// minute), and takes small batches (more batch boundaries for the cuts to fall between).
fn fast_reconnects_small_batches(c: &mut lockdesk_feed_client::Config) {
    c.backoff = Backoff {
        initial: Duration::from_millis(5),
        max: Duration::from_millis(50),
        healthy_after: Duration::from_millis(500),
    };
    c.max_batch = 64;
}

const OPERATORS: [i64; 2] = [1001, 1002];

/// Feed events generated (webhooks + evidence).
const EVENTS: usize = 10_000;
/// Connection cuts by the relay (each one drops a live connection).
const CUTS: usize = 100;
/// Gateway restarts (shutdown, start again on the same folder and port).
const RESTARTS: usize = 8;

/// A TCP relay in front of the gateway that can drop every connection through it at once.
struct Relay {
    addr: SocketAddr,
    cut: broadcast::Sender<()>,
    live: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Relay {
    async fn start(upstream: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (cut, _) = broadcast::channel(16);
        let cut_tx = cut.clone();
        let live = Arc::new(AtomicU64::new(0));
        let live_count = live.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut down, _)) = listener.accept().await {
                let mut cut = cut_tx.subscribe();
                let live = live_count.clone();
                tokio::spawn(async move {
                    let Ok(mut up) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    live.fetch_add(1, Ordering::SeqCst);
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut down, &mut up) => {}
                        _ = cut.recv() => {}
                    }
                    live.fetch_sub(1, Ordering::SeqCst);
                    // Both ends dropped: the desk sees its connection vanish mid-stream.
                });
            }
        });
        Relay {
            addr,
            cut,
            live,
            task,
        }
    }

    /// Drops every connection; returns how many there were.
    fn cut(&self) -> u64 {
        let n = self.live.load(Ordering::SeqCst);
        let _ = self.cut.send(());
        n
    }
}

/// The traffic: passes of the simulator's plan, every scenario once plus conversations without
/// tokens (anonymous, third-party channel) so that about one event in ten is evidence, as in
/// real traffic; cut at exactly `EVENTS` steps.
fn traffic() -> Vec<Step> {
    let mut scenarios = Scenario::ALL.to_vec();
    scenarios.extend(std::iter::repeat_n(Scenario::Anonymous, 31));
    scenarios.extend(std::iter::repeat_n(Scenario::ThirdPartyChannel, 20));
    let mut steps = Vec::with_capacity(EVENTS + 200);
    let mut seed = 1_000;
    while steps.len() < EVENTS {
        steps.extend(plan(seed, &scenarios, &OPERATORS, 0));
        seed += 1;
    }
    steps.truncate(EVENTS);
    steps
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cuts_and_gateway_restarts_end_in_the_state_of_an_uninterrupted_run() {
    let started = Instant::now();
    let root = tempfile::tempdir().unwrap();
    let keys_dir = root.path().join("keys");
    std::fs::create_dir_all(&keys_dir).unwrap();
    let (private, public) = desk_keys(&keys_dir);
    let sim_keys = SimKeys::generate(&lockdesk_sim::read_desk_public(&public).unwrap()).unwrap();
    let jwks = keys_dir.join("brand.jwks.json");
    std::fs::write(&jwks, &sim_keys.brand_public_jwks).unwrap();

    let gateway_dir = root.path().join("gateway");
    std::fs::create_dir_all(&gateway_dir).unwrap();
    let gateway = start_gateway(&gateway_dir, "127.0.0.1:0".parse().unwrap()).await;
    let gateway_addr = gateway.local_addr();
    let relay = Arc::new(Relay::start(gateway_addr).await);

    // The interrupted desk, through the relay; reconnects fast (a hundred cuts in a minute).
    let interrupted_dir = root.path().join("interrupted");
    let interrupted = DeskService::start_with_feed(
        options(
            &interrupted_dir,
            &format!("ws://{}/v1/feed", relay.addr),
            &private,
            &jwks,
        ),
        fast_reconnects_small_batches,
    )
    .await
    .unwrap();
    let interrupted = Arc::new(interrupted);

    // The traffic, with the cut and restart points drawn from a seed.
    let steps = traffic();
    let evidence = steps
        .iter()
        .filter(|s| matches!(s.action, Action::Evidence(_)))
        .count();
    let mut rng = fastrand::Rng::with_seed(20_260_101);
    let mut points: Vec<usize> = (1..EVENTS).collect();
    rng.shuffle(&mut points);
    let cut_at: HashSet<usize> = points[..CUTS].iter().copied().collect();
    let restart_at: HashSet<usize> = points[CUTS..CUTS + RESTARTS].iter().copied().collect();

    let handle = tokio::runtime::Handle::current();
    let gateway = Arc::new(Mutex::new(Some(gateway)));
    let driver_gateway = gateway.clone();
    let driver_relay = relay.clone();
    let driver_dir = gateway_dir.clone();
    let driver_desk = interrupted.clone();
    let driver = std::thread::spawn(move || {
        let mut sender = sender(gateway_addr, sim_keys);
        let mut seqs = Vec::with_capacity(EVENTS);
        let (mut cuts, mut dropped, mut restarts, mut retries) = (0u64, 0u64, 0u64, 0u64);
        // Upgrades completed before the previous cut: each cut waits for a newer one, so it drops
        // a connection the desk had fully opened (not one still in its handshake).
        let mut upgrades_at_last_cut = 0u64;
        for (i, step) in steps.iter().enumerate() {
            if cut_at.contains(&i) {
                // Cut a live connection: wait (bounded) for the desk to be connected again.
                let t = Instant::now();
                while (driver_relay.live.load(Ordering::SeqCst) == 0
                    || driver_desk.counters().connections <= upgrades_at_last_cut)
                    && t.elapsed() < PATIENCE
                {
                    std::thread::sleep(Duration::from_millis(1));
                }
                upgrades_at_last_cut = driver_desk.counters().connections;
                let n = driver_relay.cut();
                assert!(n > 0, "cut {cuts}: no live connection to drop");
                cuts += 1;
                dropped += n;
            }
            if restart_at.contains(&i) {
                let old = driver_gateway.lock().unwrap().take().unwrap();
                let dir = driver_dir.clone();
                let new = handle.block_on(async move {
                    old.shutdown().await.unwrap();
                    start_gateway(&dir, gateway_addr).await
                });
                assert_eq!(new.local_addr(), gateway_addr);
                *driver_gateway.lock().unwrap() = Some(new);
                restarts += 1;
            }
            // A pooled connection to a stopped gateway fails before the request is read: retry
            // (webhooks are idempotent by delivery; the gateway's seq answers tell if evidence
            // was stored twice).
            let mut attempt = 0;
            let answer = loop {
                match sender.send(step) {
                    Ok(v) => break v,
                    Err(e) if !e.is_fatal() && attempt < 20 => {
                        attempt += 1;
                        retries += 1;
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    Err(e) => panic!("step {i}: {e}"),
                }
            };
            let seq = answer["seq"]
                .as_u64()
                .unwrap_or_else(|| panic!("step {i}: no seq in {answer}"));
            seqs.push(seq);
        }
        (seqs, cuts, dropped, restarts, retries)
    });
    let (seqs, cuts, dropped, restarts, retries) =
        tokio::task::spawn_blocking(move || driver.join().unwrap())
            .await
            .unwrap();
    let traffic_done = started.elapsed();

    // Every event stored once, in order, without gaps, across the restarts.
    let expected: Vec<u64> = (1..=EVENTS as u64).collect();
    assert_eq!(seqs, expected, "the gateway's seqs for the steps sent");
    let last = EVENTS as u64;
    assert_eq!(cuts as usize, CUTS);
    assert_eq!(restarts as usize, RESTARTS);
    assert!(
        dropped >= cuts,
        "{dropped} connections dropped by {cuts} cuts: a cut found no live connection"
    );

    wait_cursor(&interrupted, last, "the interrupted desk").await;
    let catch_up_done = started.elapsed();

    // The uninterrupted desk: the same log, read in one go, directly from the gateway.
    let reference_dir = root.path().join("reference");
    let reference = DeskService::start(options(
        &reference_dir,
        &format!("ws://{gateway_addr}/v1/feed"),
        &private,
        &jwks,
    ))
    .await
    .unwrap();
    wait_cursor(&reference, last, "the uninterrupted desk").await;
    let reference_done = started.elapsed();

    // The store's cursor is committed before the feed client books the batch in its counters
    // (the sink thread replies after the commit): wait for the booking, then compare.
    wait_until(
        "the interrupted desk's client to book its last batch",
        || interrupted.counters().applied_seq >= last,
    )
    .await;
    wait_until(
        "the uninterrupted desk's client to book its last batch",
        || reference.counters().applied_seq >= last,
    )
    .await;
    let counters = interrupted.counters();
    let reference_counters = reference.counters();
    interrupted.shutdown().await;
    reference.shutdown().await;
    let last_gateway = gateway.lock().unwrap().take();
    if let Some(g) = last_gateway {
        g.shutdown().await.unwrap();
    }

    // Each desk applied every visible entry exactly once.
    assert_eq!(counters.entries_applied, last, "interrupted: {counters:?}");
    assert_eq!(counters.duplicate_entries, 0, "interrupted: {counters:?}");
    assert_eq!(counters.malformed_frames, 0, "interrupted: {counters:?}");
    assert_eq!(
        reference_counters.entries_applied, last,
        "reference: {reference_counters:?}"
    );
    assert_eq!(reference_counters.connections, 1, "{reference_counters:?}");
    assert!(
        counters.connections > CUTS as u64,
        "the cuts never reached the desk: {counters:?}"
    );

    let a = interrupted_dir.join(DESK_FILE);
    let b = reference_dir.join(DESK_FILE);
    // Absolute checks on the reference, so that two equally wrong stores cannot pass.
    assert_eq!(
        count(&b, "SELECT COUNT(*) FROM presentations") as usize,
        evidence
    );
    let valid = traffic()
        .iter()
        .filter(|s| {
            matches!(&s.action, Action::Evidence(e)
                if e.token.signer == Signer::Brand && e.token.expires_in > 0)
        })
        .count();
    assert_eq!(
        count(
            &b,
            "SELECT COUNT(*) FROM presentations WHERE verdict = 'verified'"
        ) as usize,
        valid
    );
    assert_eq!(count(&b, "SELECT COUNT(*) FROM malformed"), 0);

    // Table by table: lockdesk-testkit's desk-store snapshot (every column but surrogate ids
    // and `applied_at_ms`).
    let sizes: Vec<String> = assert_same(&a, "the interrupted desk", &b, "the uninterrupted one")
        .into_iter()
        .map(|(name, n)| format!("{name} {n}"))
        .collect();
    println!(
        "{EVENTS} events ({evidence} evidence, {valid} valid tokens), {cuts} cuts \
         ({dropped} connections dropped), {restarts} gateway restarts, {retries} HTTP retries; \
         interrupted desk: {} connections, {} batches; stores equal: {}",
        counters.connections,
        counters.batches_applied,
        sizes.join(", ")
    );
    println!(
        "timeline: traffic sent at {:.1} s, interrupted desk caught up at {:.1} s, \
         uninterrupted desk at {:.1} s",
        traffic_done.as_secs_f64(),
        catch_up_done.as_secs_f64(),
        reference_done.as_secs_f64()
    );
}

/// Issue 15, the desk side: a desk given two addresses of one gateway log. The first instance
/// stops while the desk is reading; the log's other instance serves the rest at the second
/// address (the same data folder on another port: one SQLite log has one writer, so here the
/// instances take turns, where PostgreSQL instances serve one log side by side). The desk must
/// end in exactly the state of a desk that read the whole log from one address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_desk_given_two_addresses_fails_over_and_ends_as_an_uninterrupted_desk() {
    const STEPS: usize = 1_500;
    const FIRST: usize = 900;
    let root = tempfile::tempdir().unwrap();
    let keys_dir = root.path().join("keys");
    std::fs::create_dir_all(&keys_dir).unwrap();
    let (private, public) = desk_keys(&keys_dir);
    // The brand's key in a file: each instance's traffic is sent by its own simulator, both
    // signing as the one brand the desk trusts.
    let brand_pem = keys_dir.join("brand-private.pem");
    let brand = openssl::rsa::Rsa::generate(2048).unwrap();
    std::fs::write(&brand_pem, brand.private_key_to_pem().unwrap()).unwrap();
    let desk_public = lockdesk_sim::read_desk_public(&public).unwrap();
    let sim_keys = || SimKeys::with_brand_key(&brand_pem, &desk_public).unwrap();
    let jwks = keys_dir.join("brand.jwks.json");
    std::fs::write(&jwks, &sim_keys().brand_public_jwks).unwrap();

    let gateway_dir = root.path().join("gateway");
    std::fs::create_dir_all(&gateway_dir).unwrap();
    let first = start_gateway(&gateway_dir, "127.0.0.1:0".parse().unwrap()).await;
    let a = first.local_addr();
    // The second instance's address: in the desk's list from the start, nothing listens there
    // until the first instance is down.
    let b = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (url_a, url_b) = (format!("ws://{a}/v1/feed"), format!("ws://{b}/v1/feed"));

    let steps: Vec<Step> = traffic().into_iter().take(STEPS).collect();
    let send = |gateway: SocketAddr, steps: Vec<Step>| {
        let keys = sim_keys();
        tokio::task::spawn_blocking(move || {
            let mut sender = sender(gateway, keys);
            steps
                .iter()
                .map(|step| sender.send(step).unwrap()["seq"].as_u64().unwrap())
                .collect::<Vec<u64>>()
        })
    };
    let mut seqs = send(a, steps[..FIRST].to_vec()).await.unwrap();
    // The desk starts behind: the first instance stops while it is catching up.
    let desk_dir = root.path().join("failover");
    let desk = DeskService::start_with_feed(
        options_for(&desk_dir, &[&url_a, &url_b], &private, &jwks),
        fast_reconnects_small_batches,
    )
    .await
    .unwrap();

    wait_cursor(&desk, 1, "the desk on the first address").await;
    first.shutdown().await.unwrap();
    let at_stop = desk.read(|d| d.stats().map(|s| s.cursor).unwrap_or(0));
    let second = start_gateway(&gateway_dir, b).await;
    seqs.extend(send(b, steps[FIRST..].to_vec()).await.unwrap());
    let expected: Vec<u64> = (1..=STEPS as u64).collect();
    assert_eq!(seqs, expected, "the log's seqs across the two instances");
    let last = STEPS as u64;
    wait_cursor(&desk, last, "the desk that failed over").await;
    let status = desk.status().borrow().clone();
    assert!(
        matches!(&status.feed, lockdesk_service::State::Connected { url, .. } if *url == url_b),
        "the status names the address in use: {:?}",
        status.feed
    );

    // The uninterrupted desk: the whole log from the second instance, in one go.
    let reference_dir = root.path().join("reference");
    let reference = DeskService::start(options(&reference_dir, &url_b, &private, &jwks))
        .await
        .unwrap();
    wait_cursor(&reference, last, "the uninterrupted desk").await;
    let counters = desk.counters();
    desk.shutdown().await;
    reference.shutdown().await;
    second.shutdown().await.unwrap();

    assert_eq!(counters.entries_applied, last, "{counters:?}");
    assert_eq!(counters.duplicate_entries, 0, "{counters:?}");
    assert!(counters.connections >= 2, "{counters:?}");
    println!(
        "{STEPS} events, the first instance stopped with the desk at {at_stop} of {FIRST}: \
         {} connections, stores equal",
        counters.connections
    );
    let (a_store, b_store) = (desk_dir.join(DESK_FILE), reference_dir.join(DESK_FILE));
    assert!(count(&b_store, "SELECT COUNT(*) FROM presentations") > 0);
    assert_same(
        &a_store,
        "the desk that failed over",
        &b_store,
        "the uninterrupted one",
    );
}
