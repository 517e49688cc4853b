//! A desk never resumes its cursor on another gateway log: the gateway's database emptied (a
//! 0-byte `gateway.sqlite3`, as a botched restore leaves it) starts a new log with a new
//! identity; once that log is longer than the desk's cursor, resuming would silently skip its
//! first entries and take the rest for what the cursor meant. The desk stops instead, says so,
//! and applies nothing of the other log.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use lockdesk_feed_client::{State, StopReason};
use lockdesk_service::DeskService;

use crate::support::*;

/// Delivers `n` signed webhooks named `{prefix}-{i}`; returns the last seq.
async fn deliver(addr: SocketAddr, prefix: &str, n: usize) -> u64 {
    let mut last = 0;
    for i in 0..n {
        let body = format!(
            r#"{{"eventId":"{prefix}-{i}","eventType":"visitor.updated","visitorId":"v-{i}"}}"#
        );
        last = deliver_signed(addr, "application/json", &body).await;
    }
    last
}

async fn stopped(service: &DeskService) -> StopReason {
    let mut status = service.status();
    let start = Instant::now();
    loop {
        if let State::Stopped { reason } = &status.borrow_and_update().feed {
            return reason.clone();
        }
        assert!(start.elapsed() < PATIENCE, "the desk never stopped");
        let _ = tokio::time::timeout(Duration::from_millis(200), status.changed()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_desk_refuses_to_resume_on_a_new_gateway_log() {
    let root = tempfile::tempdir().unwrap();
    let gateway_dir = root.path().join("gateway");
    let desk_dir = root.path().join("desk");
    let Keys { private, jwks, .. } = keys(root.path());

    let gateway = start_gateway(&gateway_dir, "127.0.0.1:0".parse().unwrap()).await;
    let addr = gateway.local_addr();
    let feed = format!("ws://{addr}/v1/feed");
    let first_end = deliver(addr, "old", 5).await;
    let service = DeskService::start(options(&desk_dir, &feed, &private, &jwks))
        .await
        .unwrap();
    wait_cursor(&service, first_end, "first log").await;
    let known = service
        .read(|d| d.log_id().unwrap())
        .expect("log remembered");
    service.shutdown().await;
    gateway.shutdown().await.unwrap();

    // The gateway's database emptied: a new log, longer than the desk's cursor.
    let db = gateway_dir.join(lockdesk_gateway::DATABASE_FILE);
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(
            gateway_dir.join(format!("{}{suffix}", lockdesk_gateway::DATABASE_FILE)),
        );
    }
    std::fs::write(&db, b"").unwrap();
    let gateway = start_gateway(&gateway_dir, addr).await;
    let second_end = deliver(addr, "new", 12).await;
    assert!(second_end > first_end);

    let service = DeskService::start(options(&desk_dir, &feed, &private, &jwks))
        .await
        .unwrap();
    let found = match stopped(&service).await {
        StopReason::LogChanged { known: k, found } => {
            assert_eq!(k, known);
            assert_ne!(found, known);
            found
        }
        other => panic!("stopped for another reason: {other}"),
    };
    // Nothing of the other log was applied; the desk still remembers its own.
    let (cursor, remembered) = service.read(|d| (d.stats().unwrap().cursor, d.log_id().unwrap()));
    assert_eq!(cursor, first_end);
    assert_eq!(remembered.as_deref(), Some(known.as_str()));
    let text = StopReason::LogChanged {
        known: "a".into(),
        found: "b".into(),
    }
    .to_string();
    assert!(text.contains("another log"), "{text}");
    service.shutdown().await;

    // The user follows the new log (`lockdesk-cli watch --accept-new-log`): the old store is
    // kept aside with its log, a new one reads the new log from its beginning.
    let archived = lockdesk_desk::archive_store(&desk_dir.join(lockdesk_service::DESK_FILE))
        .unwrap()
        .unwrap();
    let service = DeskService::start(options(&desk_dir, &feed, &private, &jwks))
        .await
        .unwrap();
    wait_cursor(&service, second_end, "the new log").await;
    assert_eq!(service.read(|d| d.log_id().unwrap()), Some(found));
    service.shutdown().await;
    let old = rusqlite::Connection::open(&archived).unwrap();
    let (cursor, log): (i64, String) = old
        .query_row(
            "SELECT (SELECT value FROM desk_meta WHERE key = 'cursor'), log_id FROM feed_log",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((cursor as u64, log), (first_end, known));
    gateway.shutdown().await.unwrap();
}
