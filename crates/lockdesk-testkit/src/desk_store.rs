//! A desk store (the SQLite file `desk.sqlite3`) read from outside the process that writes it:
//! its committed cursor, and a snapshot of its content two stores can be compared by. The tests
//! that cut, kill, fail over or migrate a desk end by comparing its store with an uninterrupted
//! desk's (lockdesk-service's reliability.rs, lockdesk-cli's watch_kill.rs, lb_failover.rs and
//! gateway_migrate.rs).
//!
//! Only a file path and rusqlite: no type of the desk's crates, so any crate's tests can use it
//! without a second copy of those crates in their build.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

/// A store's content: each table's name and its rows as text, in an order that does not depend
/// on insertion.
pub type Snapshot = Vec<(&'static str, Vec<String>)>;

/// What a snapshot holds, table by table: every column the desk writes but the surrogate row
/// ids (replaced by natural keys) and the one wall-clock column it writes from its own clock
/// (`desk_meta.applied_at_ms`); the audit chain without its random salts and the hashes they
/// feed.
pub const TABLES: [(&str, &str); 10] = [
    (
        "desk_meta",
        "SELECT key, value FROM desk_meta WHERE key <> 'applied_at_ms' ORDER BY key",
    ),
    (
        "visitors",
        "SELECT visitor_id, first_seen_ms, last_seen_ms, last_user_id FROM visitors ORDER BY visitor_id",
    ),
    (
        "conversations",
        "SELECT c.conversation_id, v.visitor_id, c.channel, c.operator_id, c.source, c.domain,
                c.device, c.app, c.opened_ms, c.closed_ms, c.state, c.auth_state, c.reason,
                c.user_id, c.other_user_id, c.name, c.since_ms, c.until_ms,
                c.first_verified_ms, c.last_verified_ms, c.platform_user_id, c.machine
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
        "SELECT p.seq, p.received_ms, p.presented_at, v.visitor_id, c.conversation_id,
                p.named_conversation, p.verdict, p.reason, p.detail, p.user_id,
                p.visitor_data, p.issuer, p.expires_ms, p.signing_key, p.decryption_key,
                p.token_sha256, p.domain, p.device, p.app
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
        "malformed",
        "SELECT seq, received_ms, error FROM malformed ORDER BY seq",
    ),
    (
        "audit_log",
        "SELECT seq, at_ms, kind, conversation_id, operator_id, data, user_id, visitor_id,
                visitor_data FROM audit_log ORDER BY seq",
    ),
];

fn open_read_only(path: &Path) -> rusqlite::Result<Connection> {
    Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
}

/// Every row of `sql`, each as its cells' debug forms joined by ` | `.
pub fn rows(conn: &Connection, sql: &str) -> Vec<String> {
    let mut stmt = conn.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let n = stmt.column_count();
    stmt.query_map([], |r| {
        let mut cells = Vec::with_capacity(n);
        for i in 0..n {
            cells.push(format!("{:?}", r.get::<_, rusqlite::types::Value>(i)?));
        }
        Ok(cells.join(" | "))
    })
    .unwrap_or_else(|e| panic!("{sql}: {e}"))
    .collect::<Result<_, _>>()
    .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// The content of the store at `path` (the `desk.sqlite3` file), table by table ([`TABLES`]).
pub fn snapshot(path: &Path) -> Snapshot {
    let conn = open_read_only(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    TABLES
        .into_iter()
        .map(|(name, sql)| (name, rows(&conn, sql)))
        .collect()
}

/// The one number `sql` selects from the store at `path`.
pub fn count(path: &Path, sql: &str) -> i64 {
    let conn = open_read_only(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    conn.query_row(sql, [], |r| r.get(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// The committed cursor of the store at `path` (0 while the file or its cursor does not exist
/// yet, or while the writer holds it past a busy wait): for polling a desk another process runs.
pub fn cursor(path: &Path) -> u64 {
    if !path.exists() {
        return 0;
    }
    let Ok(conn) = open_read_only(path) else {
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

/// Panics unless the stores at `path` (the desk under test, `what`) and `reference` (an
/// uninterrupted desk's, `reference_what`) hold the same rows in every table, naming the first
/// table and row that differ; returns each table's name and row count.
pub fn assert_same(
    path: &Path,
    what: &str,
    reference: &Path,
    reference_what: &str,
) -> Vec<(&'static str, usize)> {
    let (x, y) = (snapshot(path), snapshot(reference));
    assert_eq!(x.len(), y.len());
    let mut sizes = Vec::with_capacity(x.len());
    for ((name, a), (_, b)) in x.iter().zip(&y) {
        if a != b {
            let first = a.iter().zip(b).position(|(p, q)| p != q);
            panic!(
                "{name}: {what} holds {} rows, {reference_what} {}; first difference at row \
                 {first:?}:\n  {what}: {:?}\n  {reference_what}: {:?}",
                a.len(),
                b.len(),
                first.and_then(|i| a.get(i)),
                first.and_then(|i| b.get(i)),
            );
        }
        sizes.push((*name, a.len()));
    }
    sizes
}
