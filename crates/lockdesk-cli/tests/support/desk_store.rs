//! A desk store (`DATA/desk.sqlite3`) read from outside the process that writes it: its
//! committed cursor, and its content in a form two stores can be compared by (the tests that
//! kill, fail over or migrate a running desk end by comparing its store with an uninterrupted
//! one's).

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

/// The committed cursor of the desk store in `data` (0 before it exists).
pub fn cursor(data: &Path) -> u64 {
    let path = data.join("desk.sqlite3");
    if !path.exists() {
        return 0;
    }
    let Ok(conn) = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY) else {
        return 0;
    };
    let _ = conn.busy_timeout(Duration::from_secs(5));
    conn.query_row(
        "SELECT value FROM desk_meta WHERE key = 'cursor'",
        [],
        |r| r.get::<_, i64>(0),
    )
    .map(|v| v as u64)
    .unwrap_or(0)
}

/// The store's content without surrogate ids and the desk's own clock (`applied_at_ms`): each
/// table's rows, in an order that does not depend on insertion.
pub fn dump(data: &Path) -> Vec<(&'static str, Vec<String>)> {
    let conn =
        Connection::open_with_flags(data.join("desk.sqlite3"), OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let queries: [(&'static str, &str); 8] = [
        (
            "desk_meta",
            "SELECT key, value FROM desk_meta WHERE key <> 'applied_at_ms' ORDER BY key",
        ),
        (
            "conversations",
            "SELECT c.conversation_id, v.visitor_id, c.channel, c.operator_id, c.state,
                    c.auth_state, c.reason, c.user_id, c.other_user_id, c.name, c.since_ms,
                    c.until_ms, c.opened_ms, c.closed_ms, c.machine
             FROM conversations c JOIN visitors v ON v.id = c.visitor ORDER BY c.conversation_id",
        ),
        (
            "identities",
            "SELECT user_id, visitor_data, first_seen_ms, last_seen_ms FROM identities ORDER BY user_id",
        ),
        (
            "identity_visitors",
            "SELECT i.user_id, v.visitor_id, l.first_seen_ms, l.last_seen_ms
             FROM identity_visitors l JOIN identities i ON i.id = l.identity
             JOIN visitors v ON v.id = l.visitor ORDER BY i.user_id, v.visitor_id",
        ),
        (
            "presentations",
            "SELECT p.seq, p.received_ms, v.visitor_id, c.conversation_id, p.verdict, p.reason,
                    p.user_id, p.token_sha256
             FROM presentations p JOIN visitors v ON v.id = p.visitor
             LEFT JOIN conversations c ON c.id = p.conversation ORDER BY p.seq",
        ),
        (
            "transitions",
            "SELECT c.conversation_id, t.seq, t.at_ms, t.state, t.reason, t.user_id
             FROM transitions t JOIN conversations c ON c.id = t.conversation
             ORDER BY c.conversation_id, t.id",
        ),
        (
            "alerts",
            "SELECT a.seq, a.at_ms, a.code, c.conversation_id, v.visitor_id, a.user_id, a.evidence
             FROM alerts a LEFT JOIN conversations c ON c.id = a.conversation
             LEFT JOIN visitors v ON v.id = a.visitor ORDER BY a.seq, a.id",
        ),
        (
            "audit_log",
            "SELECT seq, at_ms, kind, conversation_id, operator_id, data, user_id, visitor_id
             FROM audit_log ORDER BY seq",
        ),
    ];
    queries
        .into_iter()
        .map(|(name, sql)| {
            let mut stmt = conn.prepare(sql).unwrap();
            let n = stmt.column_count();
            let rows = stmt
                .query_map([], |r| {
                    (0..n)
                        .map(|i| Ok(format!("{:?}", r.get::<_, rusqlite::types::Value>(i)?)))
                        .collect::<Result<Vec<_>, _>>()
                        .map(|c| c.join(" | "))
                })
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            (name, rows)
        })
        .collect()
}

/// Panics unless the stores in `data` (the desk under test, `what`) and `reference` (an
/// uninterrupted desk's) hold the same rows, naming the first table and row that differ.
pub fn assert_same(data: &Path, what: &str, reference: &Path) {
    for ((name, x), (_, y)) in dump(data).iter().zip(&dump(reference)) {
        if x != y {
            let first = x.iter().zip(y).position(|(p, q)| p != q);
            panic!(
                "{name}: {what} {} rows, uninterrupted desk {}; first difference at {first:?}:\n  {:?}\n  {:?}",
                x.len(),
                y.len(),
                first.and_then(|i| x.get(i)),
                first.and_then(|i| y.get(i)),
            );
        }
    }
}
