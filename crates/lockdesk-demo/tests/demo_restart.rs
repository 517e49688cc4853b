//! The demo keeps what the advisor saw across restarts of the same demo (issue 13): its gateway
//! log and desk store are resumed, not reset; and a second demo on a folder in use is refused
//! while the first keeps running.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use lockdesk_demo::{start, DemoSettings};
use lockdesk_desk::ConversationQuery;
use lockdesk_service::{DeskService, ServiceError, State};

const PATIENCE: Duration = Duration::from_secs(120);

fn settings(passes: u64) -> DemoSettings {
    DemoSettings {
        passes: Some(passes),
        stagger: Duration::from_millis(50),
        backfill_every: None,
        ..DemoSettings::default()
    }
}

async fn conversations(service: &DeskService) -> BTreeSet<String> {
    let rows = service.read(|d| {
        d.conversations(&ConversationQuery {
            open_only: false,
            limit: 10_000,
        })
        .unwrap()
    });
    rows.into_iter().map(|r| r.conversation_id).collect()
}

/// Waits until the desk holds at least `n` conversations.
async fn wait_for(service: &DeskService, n: usize) -> BTreeSet<String> {
    let start = Instant::now();
    loop {
        let ids = conversations(service).await;
        if ids.len() >= n {
            return ids;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "only {} conversations",
            ids.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The desk's cursor as committed in its store (the status's is only refreshed with the feed's
/// state).
fn stored_cursor(dir: &std::path::Path) -> u64 {
    let conn = rusqlite::Connection::open(dir.join(lockdesk_service::DESK_FILE)).unwrap();
    conn.query_row(
        "SELECT value FROM desk_meta WHERE key = 'cursor'",
        [],
        |r| r.get::<_, i64>(0),
    )
    .unwrap() as u64
}

/// Waits until the desk is connected and holds the log's end it was told about.
async fn wait_caught_up(service: &DeskService, dir: &std::path::Path) {
    let mut status = service.status();
    let start = Instant::now();
    loop {
        let end = match status.borrow_and_update().feed {
            State::Connected { last_seq, .. } => Some(last_seq),
            _ => None,
        };
        if end.is_some_and(|end| stored_cursor(dir) >= end) {
            return;
        }
        assert!(start.elapsed() < PATIENCE, "never caught up");
        let _ = tokio::time::timeout(Duration::from_millis(200), status.changed()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_demo_restarted_on_its_folder_keeps_its_conversations_and_audit_chain() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let first = start(&dir, settings(1)).await.unwrap();
    let before = wait_for(&first, 4).await;
    let log = first.read(|d| d.log_id().unwrap()).expect("log bound");
    first.shutdown().await;
    drop(first);

    // Restarted with no new pass: what the desk shows is what it showed (and whatever the
    // first run's simulator sent after the desk stopped, applied now).
    let second = start(&dir, settings(0)).await.unwrap();
    assert_eq!(second.demo().unwrap().archived, None);
    wait_caught_up(&second, &dir).await;
    let after = conversations(&second).await;
    assert!(
        before.is_subset(&after),
        "lost {:?}",
        before.difference(&after).collect::<Vec<_>>()
    );
    assert!(after.len() >= before.len());
    assert_eq!(second.read(|d| d.log_id().unwrap()), Some(log));
    // The chain verifies (an error otherwise) and still starts with the first run's entries.
    // Under the demo's configured session lifetime, as the desk itself checks.
    let lifetime = settings(0).session_lifetime_secs;
    let check = second.read(|d| d.check_against_audit(lifetime, &mut |_| {}).unwrap());
    assert_eq!(check.chain.first_seq, 1, "{:?}", check.chain);
    assert!(check.conversations >= before.len() as u64);
    assert!(check.agrees(), "{:?}", check.disagreements);
    second.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_demo_whose_log_is_gone_sets_its_store_aside_and_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let first = start(&dir, settings(1)).await.unwrap();
    wait_for(&first, 2).await;
    first.shutdown().await;
    drop(first);
    std::fs::remove_dir_all(dir.join("gateway")).unwrap();

    let second = start(&dir, settings(0)).await.unwrap();
    let archived = second.demo().unwrap().archived.clone().expect("set aside");
    assert!(archived.exists(), "{}", archived.display());
    assert!(conversations(&second).await.is_empty());
    second.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_demo_on_a_folder_in_use_is_refused_and_the_first_keeps_running() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let first = start(&dir, settings(1)).await.unwrap();
    let seen = wait_for(&first, 2).await;

    let Err(err) = start(&dir, settings(1)).await else {
        panic!("a second demo started on a folder in use");
    };
    assert!(
        matches!(&err, ServiceError::DemoInUse { pid: Some(p), .. } if *p == std::process::id()),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "the demo folder {} is in use by another Lockdesk (pid {})",
            dir.display(),
            std::process::id()
        )
    );
    // The first one's store and log are untouched and it goes on.
    let more = wait_for(&first, seen.len() + 1).await;
    assert!(seen.is_subset(&more));
    assert!(matches!(
        first.status().borrow().feed,
        State::Connected { .. }
    ));
    first.shutdown().await;
    drop(first);
    // Released with the demo: the folder can be run again.
    let again = start(&dir, settings(0)).await.unwrap();
    again.shutdown().await;
}
