//! The SQLite [`EventStore`]: one file in the data folder, WAL, `synchronous=FULL`.
//!
//! One dedicated writer thread owns the write connection and commits appends in groups (every
//! append waiting when a commit starts shares its fsync), which is what makes thousands of
//! durable acknowledgements per second possible. Reads use a second connection (WAL lets them run
//! beside the writer).
//!
//! Must not: run on the async executor; answer an append before its transaction has committed.

use std::path::Path;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::Mutex;
use std::thread::JoinHandle;

use rusqlite::{params, Connection, OptionalExtension};

use super::{
    Appended, Counts, EntryKind, EventStore, NewEvidence, NewWebhookEvent, StoreError, StoredEntry,
};

/// Versioned migrations: entry `i` brings `PRAGMA user_version` from `i` to `i + 1`. Never edit a
/// released entry; append a new one.
const MIGRATIONS: &[&str] = &[
    // 1: the log. AUTOINCREMENT so a sequence number is never reused, even after deletions.
    "CREATE TABLE entries (
        seq             INTEGER PRIMARY KEY AUTOINCREMENT,
        kind            TEXT    NOT NULL CHECK (kind IN ('webhook', 'evidence')),
        received_at_ms  INTEGER NOT NULL,
        event_id        TEXT    UNIQUE,
        event_type      TEXT,
        correlation_id  TEXT,
        delivery_id     TEXT,
        provider        TEXT,
        conversation_id TEXT,
        visitor_id      TEXT,
        operator_ids    TEXT    NOT NULL DEFAULT '[]',
        payload         TEXT    NOT NULL,
        CHECK ((kind = 'webhook') = (event_id IS NOT NULL))
    );
    CREATE INDEX entries_conversation ON entries (conversation_id);
    CREATE INDEX entries_visitor ON entries (visitor_id);",
];

/// The most appends committed in one transaction.
const MAX_GROUP: usize = 512;

enum Op {
    Webhook(NewWebhookEvent, SyncSender<Result<Appended, StoreError>>),
    Evidence(NewEvidence, SyncSender<Result<u64, StoreError>>),
}

pub struct SqliteStore {
    writer: Option<Sender<Op>>,
    writer_thread: Option<JoinHandle<()>>,
    reader: Mutex<Connection>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                path: dir.to_owned(),
                source,
            })?;
        }
        let mut conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        // WAL: readers never block the writer. FULL: a commit is on disk (WAL fsynced) before
        // it returns, so an acknowledged delivery survives a crash or power loss.
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(
                mode,
                "SQLite refused WAL mode; continuing in this journal mode"
            );
        }
        conn.pragma_update(None, "synchronous", "FULL")?;
        migrate(&mut conn)?;

        let reader = Connection::open(path)?;
        reader.busy_timeout(std::time::Duration::from_secs(10))?;
        reader.pragma_update(None, "query_only", true)?;

        let (tx, rx) = mpsc::channel();
        let writer_thread = std::thread::Builder::new()
            .name("gateway-sqlite-writer".into())
            .spawn(move || writer_loop(conn, rx))
            .map_err(|e| StoreError::CreateDir {
                path: path.to_owned(),
                source: e,
            })?;
        Ok(SqliteStore {
            writer: Some(tx),
            writer_thread: Some(writer_thread),
            reader: Mutex::new(reader),
        })
    }

    fn send(&self, op: Op) -> Result<(), StoreError> {
        let writer = self.writer.as_ref().ok_or(StoreError::Closed)?;
        writer.send(op).map_err(|_| StoreError::Closed)
    }

    fn with_reader<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        // A panic while holding the lock cannot leave the connection inconsistent (SQLite rolls
        // back an unfinished statement), so a poisoned lock is still usable.
        let conn = self.reader.lock().unwrap_or_else(|p| p.into_inner());
        f(&conn)
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        // Closing the channel ends the writer loop once queued appends are committed.
        self.writer.take();
        if let Some(thread) = self.writer_thread.take() {
            let _ = thread.join();
        }
    }
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let supported = MIGRATIONS.len() as i64;
    let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found > supported {
        return Err(StoreError::SchemaTooNew { found, supported });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
        tracing::info!(version = i + 1, "gateway database migrated");
    }
    Ok(())
}

fn writer_loop(mut conn: Connection, rx: Receiver<Op>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        commit_group(&mut conn, batch);
    }
}

enum Outcome {
    Webhook(Appended),
    Evidence(u64),
}

/// Applies `batch` in one transaction and answers every caller: with its result after the
/// commit, or with the error when anything failed (then nothing of the batch is stored, and each
/// sender retries).
fn commit_group(conn: &mut Connection, batch: Vec<Op>) {
    let result = (|| -> Result<Vec<Outcome>, rusqlite::Error> {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut outcomes = Vec::with_capacity(batch.len());
        for op in &batch {
            outcomes.push(match op {
                Op::Webhook(e, _) => Outcome::Webhook(insert_webhook(&tx, e)?),
                Op::Evidence(e, _) => Outcome::Evidence(insert_evidence(&tx, e)?),
            });
        }
        tx.commit()?;
        Ok(outcomes)
    })();
    match result {
        Ok(outcomes) => {
            for (op, outcome) in batch.into_iter().zip(outcomes) {
                // A caller that went away (request cancelled) is fine: the entry is stored.
                match (op, outcome) {
                    (Op::Webhook(_, reply), Outcome::Webhook(a)) => {
                        let _ = reply.send(Ok(a));
                    }
                    (Op::Evidence(_, reply), Outcome::Evidence(s)) => {
                        let _ = reply.send(Ok(s));
                    }
                    // Outcomes are pushed in batch order with the op's own kind.
                    (Op::Webhook(_, reply), Outcome::Evidence(_)) => {
                        let _ = reply.send(Err(StoreError::Closed));
                    }
                    (Op::Evidence(_, reply), Outcome::Webhook(_)) => {
                        let _ = reply.send(Err(StoreError::Closed));
                    }
                }
            }
        }
        Err(e) => {
            tracing::error!(error = %e, appends = batch.len(), "gateway database commit failed");
            let msg = e.to_string();
            for op in batch {
                let err = StoreError::Commit(msg.clone());
                match op {
                    Op::Webhook(_, reply) => {
                        let _ = reply.send(Err(err));
                    }
                    Op::Evidence(_, reply) => {
                        let _ = reply.send(Err(err));
                    }
                }
            }
        }
    }
}

fn operator_ids_json(ids: &[u64]) -> String {
    serde_json::to_string(ids).unwrap_or_else(|_| "[]".to_owned())
}

fn insert_webhook(conn: &Connection, e: &NewWebhookEvent) -> Result<Appended, rusqlite::Error> {
    // Look first rather than `INSERT ... ON CONFLICT DO NOTHING`: with AUTOINCREMENT a refused
    // insert still consumes a sequence number, which would leave gaps. Race-free: only this
    // thread writes, inside an IMMEDIATE transaction (and the UNIQUE index still guards).
    let existing: Option<i64> = conn
        .prepare_cached("SELECT seq FROM entries WHERE event_id = ?1")?
        .query_row([&e.event_id], |r| r.get(0))
        .optional()?;
    if let Some(seq) = existing {
        return Ok(Appended {
            seq: seq as u64,
            inserted: false,
        });
    }
    conn.prepare_cached(
        "INSERT INTO entries (kind, received_at_ms, event_id, event_type, correlation_id,
             delivery_id, conversation_id, visitor_id, operator_ids, payload)
         VALUES ('webhook', ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        e.received_at_ms,
        e.event_id,
        e.event_type,
        e.correlation_id,
        e.delivery_id,
        e.conversation_id,
        e.visitor_id,
        operator_ids_json(&e.operator_ids),
        e.payload,
    ])?;
    Ok(Appended {
        seq: conn.last_insert_rowid() as u64,
        inserted: true,
    })
}

fn insert_evidence(conn: &Connection, e: &NewEvidence) -> Result<u64, rusqlite::Error> {
    conn.prepare_cached(
        "INSERT INTO entries (kind, received_at_ms, provider, conversation_id, visitor_id, payload)
         VALUES ('evidence', ?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        e.received_at_ms,
        e.provider,
        e.conversation_id,
        e.visitor_id,
        e.payload,
    ])?;
    Ok(conn.last_insert_rowid() as u64)
}

impl EventStore for SqliteStore {
    fn append_webhook(&self, event: NewWebhookEvent) -> Result<Appended, StoreError> {
        let (reply, answer) = mpsc::sync_channel(1);
        self.send(Op::Webhook(event, reply))?;
        answer.recv().map_err(|_| StoreError::Closed)?
    }

    fn append_evidence(&self, evidence: NewEvidence) -> Result<u64, StoreError> {
        let (reply, answer) = mpsc::sync_channel(1);
        self.send(Op::Evidence(evidence, reply))?;
        answer.recv().map_err(|_| StoreError::Closed)?
    }

    fn read_after(&self, after: u64, limit: usize) -> Result<Vec<StoredEntry>, StoreError> {
        self.with_reader(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT seq, kind, received_at_ms, event_id, event_type, conversation_id,
                        visitor_id, operator_ids, payload
                 FROM entries WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )?;
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let after = i64::try_from(after).unwrap_or(i64::MAX);
            let rows = stmt.query_map(params![after, limit], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, Option<String>>(4)?,
                    r.get::<_, Option<String>>(5)?,
                    r.get::<_, Option<String>>(6)?,
                    r.get::<_, String>(7)?,
                    r.get::<_, String>(8)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (seq, kind, received_at_ms, event_id, event_type, conv, visitor, ops, payload) =
                    row?;
                let seq = seq as u64;
                let kind = match kind.as_str() {
                    "webhook" => EntryKind::Webhook,
                    "evidence" => EntryKind::Evidence,
                    other => {
                        return Err(StoreError::Corrupt {
                            seq,
                            detail: format!("unknown kind {other:?}"),
                        })
                    }
                };
                let operator_ids = serde_json::from_str(&ops).map_err(|e| StoreError::Corrupt {
                    seq,
                    detail: format!("operator_ids: {e}"),
                })?;
                out.push(StoredEntry {
                    seq,
                    kind,
                    received_at_ms,
                    event_id,
                    event_type,
                    conversation_id: conv,
                    visitor_id: visitor,
                    operator_ids,
                    payload,
                });
            }
            Ok(out)
        })
    }

    fn counts(&self) -> Result<Counts, StoreError> {
        self.with_reader(|conn| {
            let (webhook_events, evidence): (i64, i64) = conn.query_row(
                "SELECT COALESCE(SUM(kind = 'webhook'), 0), COALESCE(SUM(kind = 'evidence'), 0)
                 FROM entries",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            // sqlite_sequence keeps the highest seq ever handed out, even if rows were deleted.
            let last_seq: Option<i64> = conn
                .query_row(
                    "SELECT seq FROM sqlite_sequence WHERE name = 'entries'",
                    [],
                    |r| r.get(0),
                )
                .optional()?;
            Ok(Counts {
                webhook_events: webhook_events as u64,
                evidence: evidence as u64,
                last_seq: last_seq.unwrap_or(0) as u64,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn webhook(id: &str) -> NewWebhookEvent {
        NewWebhookEvent {
            event_id: id.into(),
            event_type: "v2.conversation.pushed".into(),
            correlation_id: Some(format!("corr-{id}")),
            delivery_id: None,
            conversation_id: Some("c1".into()),
            visitor_id: Some("v1".into()),
            operator_ids: vec![7],
            payload: format!(r#"{{"eventId":"{id}"}}"#),
            received_at_ms: 1,
        }
    }

    fn evidence() -> NewEvidence {
        NewEvidence {
            provider: "p".into(),
            visitor_id: "v1".into(),
            conversation_id: None,
            payload: "{}".into(),
            received_at_ms: 2,
        }
    }

    #[test]
    fn one_sequence_across_kinds_duplicates_stored_once_and_reopen_continues() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db").join("gateway.sqlite3");
        {
            let store = SqliteStore::open(&path).unwrap();
            assert_eq!(store.counts().unwrap(), Counts::default());
            let a = store.append_webhook(webhook("e1")).unwrap();
            assert_eq!(
                a,
                Appended {
                    seq: 1,
                    inserted: true
                }
            );
            assert_eq!(store.append_evidence(evidence()).unwrap(), 2);
            let again = store.append_webhook(webhook("e1")).unwrap();
            assert_eq!(
                again,
                Appended {
                    seq: 1,
                    inserted: false
                }
            );
            assert_eq!(
                store.counts().unwrap(),
                Counts {
                    webhook_events: 1,
                    evidence: 1,
                    last_seq: 2
                }
            );
        }
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.append_webhook(webhook("e2")).unwrap().seq, 3);
        let all = store.read_after(0, 10).unwrap();
        assert_eq!(all.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 2, 3]);
        assert_eq!(all[0].operator_ids, vec![7]);
        assert_eq!(all[1].kind, EntryKind::Evidence);
        assert_eq!(store.read_after(1, 1).unwrap()[0].seq, 2);
        assert!(store.read_after(3, 10).unwrap().is_empty());
    }

    #[test]
    fn concurrent_appends_get_distinct_increasing_seqs() {
        let dir = tempfile::tempdir().unwrap();
        let store = std::sync::Arc::new(SqliteStore::open(&dir.path().join("g.db")).unwrap());
        let handles: Vec<_> = (0..8)
            .map(|t| {
                let store = store.clone();
                std::thread::spawn(move || {
                    (0..25)
                        .map(|i| {
                            store
                                .append_webhook(webhook(&format!("{t}-{i}")))
                                .unwrap()
                                .seq
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut seqs: Vec<u64> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        seqs.sort_unstable();
        assert_eq!(seqs, (1..=200).collect::<Vec<_>>());
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.db");
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        drop(conn);
        match SqliteStore::open(&path) {
            Err(StoreError::SchemaTooNew {
                found: 99,
                supported: 1,
            }) => {}
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("opened a database from the future"),
        }
    }
}
