//! The real `lockdesk-cli gateway` binary killed with SIGKILL in the middle of an ingest burst:
//! after a restart on the same data folder, every delivery that got a 2xx is there exactly once,
//! the sequence has no gaps, and the feed serves every acknowledged delivery exactly once.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use lockdesk_gateway::{EventStore, SqliteStore};

const SECRET: &str = "kill-test-webhook-secret";
const SUPERVISOR: &str = "kill-test-supervisor-credential";

use crate::support;
use crate::support::{seq_of, start_gateway, Burst, GatewayConfig, RunningGateway as Running};

fn start(dir: &Path) -> Running {
    let config = GatewayConfig::default()
        .webhook("main", SECRET)
        .supervisor("sam", SUPERVISOR);
    start_gateway(dir, &config.toml())
}

fn deliver(addr: SocketAddr, id: &str) -> Option<(u16, String)> {
    support::deliver(addr, SECRET, id)
}

#[test]
fn sigkill_mid_burst_loses_no_acknowledged_delivery_and_duplicates_none() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = start(dir.path());
    let addr = gateway.addr;

    let burst = Burst::start(move |_, _, id| match deliver(addr, id) {
        Some((200, answer)) => Some(seq_of(&answer)),
        Some((status, answer)) => panic!("{id}: {status} {answer}"),
        // The gateway is gone.
        None => None,
    });

    // Kill once a good part of the burst is acknowledged (a bounded wait, not a timing claim).
    for _ in 0..3000 {
        if burst.acked_count() >= 300 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(burst.acked_count() >= 300, "the burst did not get going");
    drop(gateway); // SIGKILL (Child::kill), then reap
    let (sent, acked) = burst.stop();
    let acked: Vec<String> = acked.into_iter().map(|(id, _)| id).collect();

    // Restart on the same data folder: the database opens (WAL replayed) and serves.
    let gateway = start(dir.path());
    let store = SqliteStore::open(
        &dir.path()
            .join("data")
            .join(lockdesk_gateway::DATABASE_FILE),
    )
    .unwrap();
    let entries = store.read_after(0, 1_000_000).unwrap();
    let seqs: Vec<u64> = entries.iter().map(|e| e.seq).collect();
    let stored = support::stored_once(&entries, &sent);
    for id in &acked {
        assert!(stored.contains_key(id), "{id} got a 200 but is lost");
    }
    eprintln!(
        "acknowledged {}, stored {}, sent {}",
        acked.len(),
        entries.len(),
        sent.len()
    );
    // The feed, read from the beginning by a supervisor: every stored entry once, in order.
    let served = support::read_feed(gateway.addr, SUPERVISOR, entries.len() as u64);
    assert_eq!(served.iter().map(|(s, _)| *s).collect::<Vec<_>>(), seqs);
    let mut served_ids = HashSet::new();
    for (seq, id) in &served {
        assert_eq!(stored.get(id), Some(seq), "{id} served at another seq");
        assert!(served_ids.insert(id.clone()), "{id} served twice");
    }
    for id in &acked {
        assert!(
            served_ids.contains(id),
            "{id} got a 200 but the feed lost it"
        );
    }
    // A retry of an acknowledged delivery after the crash is recognised.
    let (status, answer) = deliver(gateway.addr, &acked[0]).unwrap();
    assert_eq!(status, 200);
    assert!(
        answer.contains(&format!("\"seq\":{}", stored[&acked[0]]))
            && answer.contains("\"duplicate\":true"),
        "{answer}"
    );
}
