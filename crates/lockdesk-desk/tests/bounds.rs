//! Numbers out of the feed's bounds (docs/feed-protocol.md, "Bounds") reaching the store
//! directly (the feed client already drops or flags them): a `seq` above i64::MAX is refused with
//! the whole batch (it could not be the cursor: the old store applied it, saved no cursor and
//! audited it under a negative seq), an entry dated after 9999 is skipped and recorded, and the
//! feed clock never takes its time. A real SQLite file and the real (empty) verification engine.

use lockdesk_feed::Entry;
use serde_json::json;

use crate::support::{keyless_desk as open, webhook};
use crate::T0_MS;

/// 10000-01-01T00:00:00Z.
const YEAR_10000_MS: i64 = 253_402_300_800_000;

fn pushed(seq: u64, received_at_ms: i64) -> Entry {
    webhook(
        seq,
        received_at_ms,
        json!({"eventType": "v2.conversation.pushed", "conversationId": format!("c{seq}"),
            "visitorId": format!("v{seq}"), "channel": "CHAT", "operatorId": 7}),
    )
}

fn audit_rows(path: &std::path::Path) -> (i64, i64, i64) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row(
        "SELECT COUNT(*), COALESCE(MIN(at_ms), 0), COALESCE(MAX(at_ms), 0) FROM audit_log",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
    .unwrap()
}

#[test]
fn a_seq_beyond_i64_max_is_refused_and_an_entry_dated_after_9999_is_skipped_and_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("desk.sqlite3");
    let mut desk = open(&path);
    desk.apply(&[pushed(1, T0_MS)], T0_MS).unwrap();
    let before = audit_rows(&path);

    let refused = desk
        .apply(&[pushed(2, T0_MS + 1), pushed(1 << 63, T0_MS + 2)], T0_MS)
        .unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("entry: seq 9223372036854775808 is outside 1..=9223372036854775807"),
        "{refused}"
    );
    // Nothing of the batch was kept: the cursor, the rows and the audit log are as before.
    assert_eq!(desk.cursor(), 1);
    assert_eq!(open(&path).cursor(), 1);
    assert_eq!(audit_rows(&path), before);
    assert_eq!(desk.stats().unwrap().conversations, 1);

    let applied = desk
        .apply(&[pushed(2, YEAR_10000_MS), pushed(3, T0_MS + 3)], T0_MS)
        .unwrap();
    assert_eq!(applied.skipped.len(), 1);
    assert_eq!(applied.skipped[0].seq, 2);
    assert_eq!(
        applied.skipped[0].error,
        "entry 2: receivedAtMs 253402300800000 is outside 0..=253402300799999 ms (years 1970 to 9999)"
    );
    assert_eq!(applied.cursor, 3);
    assert_eq!(open(&path).cursor(), 3);
    let stats = desk.stats().unwrap();
    assert_eq!((stats.malformed, stats.conversations), (1, 2));
    assert_eq!(desk.feed_clock_ms(), Some(T0_MS + 3));
    let (_, min_at, max_at) = audit_rows(&path);
    assert!(
        min_at >= 0 && max_at <= lockdesk_feed::MAX_TIME_MS,
        "{min_at} {max_at}"
    );
}
