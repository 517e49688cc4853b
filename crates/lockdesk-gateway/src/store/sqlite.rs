//! The SQLite [`EventStore`]: one file in the data folder, WAL, `synchronous=FULL`.
//!
//! One dedicated writer thread owns the write connection and commits appends in groups (every
//! append waiting when a commit starts shares its fsync), which is what makes thousands of
//! durable acknowledgements per second possible. The writer also routes each new entry (the
//! feed's role filtering, `routing`) and stores its audience in the same transaction. Reads use
//! other connections (WAL lets them run beside the writer): a small pool for catch-up reads and
//! one reserved for the feed's live tail, so subscribers catching up never delay live delivery.
//!
//! Must not: run on the async executor; answer an append before its transaction has committed.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::Mutex;
use std::thread::JoinHandle;

use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::watch;

use super::{
    Appended, Counts, EntryKind, EventStore, FeedFilter, FeedItem, FeedPage, NewEvidence,
    NewWebhookEvent, RoutedEntry, StoreError, StoredEntry,
};
use crate::routing::{Audience, RoutingFields, Visibility};

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
    // 2: the feed's audience of each entry (routing.rs), written with the entry; `routing` says
    // up to which seq it is filled (entries stored by a gateway without it are routed at open).
    "CREATE TABLE audience (
        operator_id INTEGER NOT NULL,
        seq         INTEGER NOT NULL,
        related     INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (operator_id, seq)
    ) WITHOUT ROWID;
    CREATE INDEX audience_seq ON audience (seq);
    CREATE TABLE routing (id INTEGER PRIMARY KEY CHECK (id = 1), routed_seq INTEGER NOT NULL);
    INSERT INTO routing (id, routed_seq) VALUES (1, 0);",
];

/// The most appends committed in one transaction.
const MAX_GROUP: usize = 512;
/// Read connections for catch-up reads and counts (the live tail has its own).
const READERS: usize = 3;

const ENTRY_COLUMNS: &str = "seq, kind, received_at_ms, event_id, event_type, conversation_id, \
                             visitor_id, operator_ids, payload";

enum Item {
    Webhook(NewWebhookEvent),
    Evidence(NewEvidence),
}

/// One append and where its answer goes (evidence answers `inserted: true`).
struct Op {
    item: Item,
    reply: SyncSender<Result<Appended, StoreError>>,
}

pub struct SqliteStore {
    writer: Option<Sender<Op>>,
    writer_thread: Option<JoinHandle<()>>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
    tail_reader: Mutex<Connection>,
    committed: watch::Receiver<u64>,
}

fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let reader = Connection::open(path)?;
    reader.busy_timeout(std::time::Duration::from_secs(10))?;
    reader.pragma_update(None, "query_only", true)?;
    Ok(reader)
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
        let visibility = rebuild_routing(&mut conn)?;
        let last = last_seq(&conn)?;

        let readers = (0..READERS)
            .map(|_| open_reader(path).map(Mutex::new))
            .collect::<Result<Vec<_>, _>>()?;
        let tail_reader = Mutex::new(open_reader(path)?);

        let (committed_tx, committed) = watch::channel(last);
        let (tx, rx) = mpsc::channel();
        let writer_thread = std::thread::Builder::new()
            .name("gateway-sqlite-writer".into())
            .spawn(move || {
                writer_loop(Writer {
                    conn,
                    visibility,
                    committed: committed_tx,
                    rx,
                })
            })
            .map_err(|e| StoreError::CreateDir {
                path: path.to_owned(),
                source: e,
            })?;
        Ok(SqliteStore {
            writer: Some(tx),
            writer_thread: Some(writer_thread),
            readers,
            next_reader: AtomicUsize::new(0),
            tail_reader,
            committed,
        })
    }

    fn append(&self, item: Item) -> Result<Appended, StoreError> {
        let writer = self.writer.as_ref().ok_or(StoreError::Closed)?;
        let (reply, answer) = mpsc::sync_channel(1);
        writer
            .send(Op { item, reply })
            .map_err(|_| StoreError::Closed)?;
        answer.recv().map_err(|_| StoreError::Closed)?
    }

    fn with_reader<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        // A panic while holding a lock cannot leave the connection inconsistent (SQLite rolls
        // back an unfinished statement), so a poisoned lock is still usable.
        for reader in &self.readers {
            if let Ok(conn) = reader.try_lock() {
                return f(&conn);
            }
        }
        let i = self.next_reader.fetch_add(1, Ordering::Relaxed) % self.readers.len();
        let conn = self.readers[i].lock().unwrap_or_else(|p| p.into_inner());
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

fn last_seq(conn: &Connection) -> Result<u64, StoreError> {
    // sqlite_sequence keeps the highest seq ever handed out, even if rows were deleted.
    let last: Option<i64> = conn
        .query_row(
            "SELECT seq FROM sqlite_sequence WHERE name = 'entries'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    Ok(last.unwrap_or(0) as u64)
}

/// Replays the routing columns of the whole log to rebuild the open conversations, and fills
/// the audience of entries not routed yet (stored before the audience table existed).
fn rebuild_routing(conn: &mut Connection) -> Result<Visibility, StoreError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let routed: i64 = tx.query_row("SELECT routed_seq FROM routing WHERE id = 1", [], |r| {
        r.get(0)
    })?;
    let mut visibility = Visibility::default();
    let mut newly_routed = 0u64;
    {
        let mut stmt = tx.prepare(
            "SELECT seq, kind, event_type, conversation_id, visitor_id, operator_ids
             FROM entries ORDER BY seq",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            let seq: i64 = row.get(0)?;
            let kind: String = row.get(1)?;
            let event_type: Option<String> = row.get(2)?;
            let conversation: Option<String> = row.get(3)?;
            let visitor: Option<String> = row.get(4)?;
            let ops: String = row.get(5)?;
            let operator_ids = parse_operator_ids(seq as u64, &ops)?;
            let audience = visibility.route(RoutingFields {
                is_evidence: kind == "evidence",
                event_type: event_type.as_deref(),
                conversation_id: conversation.as_deref(),
                visitor_id: visitor.as_deref(),
                operator_ids: &operator_ids,
            });
            if seq > routed {
                insert_audience(&tx, seq as u64, &audience)?;
                newly_routed += 1;
            }
        }
    }
    let last = last_seq(&tx)?;
    tx.execute(
        "UPDATE routing SET routed_seq = ?1 WHERE id = 1",
        [last as i64],
    )?;
    tx.commit()?;
    if newly_routed > 0 {
        tracing::info!(
            entries = newly_routed,
            "feed audience computed for stored entries"
        );
    }
    Ok(visibility)
}

fn insert_audience(conn: &Connection, seq: u64, audience: &Audience) -> rusqlite::Result<()> {
    let mut stmt = conn
        .prepare_cached("INSERT INTO audience (operator_id, seq, related) VALUES (?1, ?2, ?3)")?;
    for &op in &audience.operators {
        let related = audience.related.binary_search(&op).is_ok();
        // Operator ids are stored bit for bit (u64 -> i64 -> u64 round-trips).
        stmt.execute(params![op as i64, seq as i64, related])?;
    }
    Ok(())
}

struct Writer {
    conn: Connection,
    visibility: Visibility,
    committed: watch::Sender<u64>,
    rx: Receiver<Op>,
}

fn writer_loop(mut w: Writer) {
    while let Ok(first) = w.rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_GROUP {
            match w.rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        commit_group(&mut w, batch);
    }
}

/// Applies `batch` in one transaction and answers every caller: with its result after the
/// commit, or with the error when anything failed (then nothing of the batch is stored, and each
/// sender retries).
fn commit_group(w: &mut Writer, batch: Vec<Op>) {
    let result = (|| -> Result<(Vec<Appended>, u64), rusqlite::Error> {
        let tx = w
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut last = 0;
        for op in &batch {
            let (appended, fields) = match &op.item {
                Item::Webhook(e) => (insert_webhook(&tx, e)?, RoutingFields::from(e)),
                Item::Evidence(e) => (insert_evidence(&tx, e)?, RoutingFields::from(e)),
            };
            if appended.inserted {
                let audience = w.visibility.route(fields);
                insert_audience(&tx, appended.seq, &audience)?;
                last = appended.seq;
            }
            outcomes.push(appended);
        }
        if last > 0 {
            tx.execute(
                "UPDATE routing SET routed_seq = ?1 WHERE id = 1",
                [last as i64],
            )?;
        }
        tx.commit()?;
        Ok((outcomes, last))
    })();
    match result {
        Ok((outcomes, last)) => {
            if last > 0 {
                w.committed.send_replace(last);
            }
            for (op, appended) in batch.into_iter().zip(outcomes) {
                // A caller that went away (request cancelled) is fine: the entry is stored.
                let _ = op.reply.send(Ok(appended));
            }
        }
        Err(e) => {
            tracing::error!(error = %e, appends = batch.len(), "gateway database commit failed");
            // The routing state saw entries that were rolled back: rebuild it from the log.
            match rebuild_routing(&mut w.conn) {
                Ok(v) => w.visibility = v,
                Err(e) => tracing::error!(error = %e, "cannot rebuild the feed routing state"),
            }
            let msg = e.to_string();
            for op in batch {
                let _ = op.reply.send(Err(StoreError::Commit(msg.clone())));
            }
        }
    }
}

impl<'a> From<&'a NewWebhookEvent> for RoutingFields<'a> {
    fn from(e: &'a NewWebhookEvent) -> Self {
        RoutingFields {
            is_evidence: false,
            event_type: Some(&e.event_type),
            conversation_id: e.conversation_id.as_deref(),
            visitor_id: e.visitor_id.as_deref(),
            operator_ids: &e.operator_ids,
        }
    }
}

impl<'a> From<&'a NewEvidence> for RoutingFields<'a> {
    fn from(e: &'a NewEvidence) -> Self {
        RoutingFields {
            is_evidence: true,
            event_type: None,
            conversation_id: e.conversation_id.as_deref(),
            visitor_id: Some(&e.visitor_id),
            operator_ids: &[],
        }
    }
}

fn operator_ids_json(ids: &[u64]) -> String {
    serde_json::to_string(ids).unwrap_or_else(|_| "[]".to_owned())
}

fn parse_operator_ids(seq: u64, text: &str) -> Result<Vec<u64>, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
        seq,
        detail: format!("operator_ids: {e}"),
    })
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

fn insert_evidence(conn: &Connection, e: &NewEvidence) -> Result<Appended, rusqlite::Error> {
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
    Ok(Appended {
        seq: conn.last_insert_rowid() as u64,
        inserted: true,
    })
}

type Row = (
    i64,
    String,
    i64,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    String,
);

fn read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
    ))
}

fn to_entry(row: Row) -> Result<StoredEntry, StoreError> {
    let (seq, kind, received_at_ms, event_id, event_type, conv, visitor, ops, payload) = row;
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
    Ok(StoredEntry {
        seq,
        kind,
        received_at_ms,
        event_id,
        event_type,
        conversation_id: conv,
        visitor_id: visitor,
        operator_ids: parse_operator_ids(seq, &ops)?,
        payload,
    })
}

fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn entries_after(
    conn: &Connection,
    after: u64,
    limit: usize,
) -> Result<Vec<StoredEntry>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {ENTRY_COLUMNS} FROM entries WHERE seq > ?1 ORDER BY seq LIMIT ?2"
    ))?;
    let rows = stmt.query_map(params![clamp(after), clamp(limit as u64)], read_row)?;
    let mut out = Vec::new();
    for row in rows {
        out.push(to_entry(row?)?);
    }
    Ok(out)
}

fn entry_at(conn: &Connection, seq: u64) -> Result<Option<StoredEntry>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {ENTRY_COLUMNS} FROM entries WHERE seq = ?1"
    ))?;
    match stmt.query_row([clamp(seq)], read_row).optional()? {
        Some(row) => Ok(Some(to_entry(row)?)),
        None => Ok(None),
    }
}

/// The evidence of the push's visitor (or naming its conversation) stored before it: the last
/// [`lockdesk_feed::MAX_RELATED`], oldest first.
fn related_evidence(conn: &Connection, push: &StoredEntry) -> Result<Vec<StoredEntry>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {ENTRY_COLUMNS} FROM entries WHERE seq IN (
             SELECT seq FROM entries WHERE kind = 'evidence' AND visitor_id = ?1 AND seq < ?3
             UNION
             SELECT seq FROM entries WHERE kind = 'evidence' AND conversation_id = ?2 AND seq < ?3
             ORDER BY seq DESC LIMIT ?4)
         ORDER BY seq"
    ))?;
    let rows = stmt.query_map(
        params![
            push.visitor_id,
            push.conversation_id,
            clamp(push.seq),
            lockdesk_feed::MAX_RELATED as i64
        ],
        read_row,
    )?;
    let mut out = Vec::new();
    for row in rows {
        out.push(to_entry(row?)?);
    }
    Ok(out)
}

impl EventStore for SqliteStore {
    fn append_webhook(&self, event: NewWebhookEvent) -> Result<Appended, StoreError> {
        self.append(Item::Webhook(event))
    }

    fn append_evidence(&self, evidence: NewEvidence) -> Result<u64, StoreError> {
        self.append(Item::Evidence(evidence)).map(|a| a.seq)
    }

    fn read_after(&self, after: u64, limit: usize) -> Result<Vec<StoredEntry>, StoreError> {
        self.with_reader(|conn| entries_after(conn, after, limit))
    }

    fn counts(&self) -> Result<Counts, StoreError> {
        self.with_reader(|conn| {
            let (webhook_events, evidence): (i64, i64) = conn.query_row(
                "SELECT COALESCE(SUM(kind = 'webhook'), 0), COALESCE(SUM(kind = 'evidence'), 0)
                 FROM entries",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            Ok(Counts {
                webhook_events: webhook_events as u64,
                evidence: evidence as u64,
                last_seq: last_seq(conn)?,
            })
        })
    }

    fn committed(&self) -> watch::Receiver<u64> {
        self.committed.clone()
    }

    fn read_routed_after(&self, after: u64, limit: usize) -> Result<Vec<RoutedEntry>, StoreError> {
        let conn = self.tail_reader.lock().unwrap_or_else(|p| p.into_inner());
        // One snapshot for the entries, their audience and their bundles.
        let tx = conn.unchecked_transaction()?;
        let entries = entries_after(&tx, after, limit)?;
        let Some(last) = entries.last().map(|e| e.seq) else {
            return Ok(Vec::new());
        };
        let mut audiences: HashMap<u64, Audience> = HashMap::new();
        {
            let mut stmt = tx.prepare_cached(
                "SELECT seq, operator_id, related FROM audience WHERE seq > ?1 AND seq <= ?2
                 ORDER BY seq, operator_id",
            )?;
            let rows = stmt.query_map(params![clamp(after), clamp(last)], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, bool>(2)?,
                ))
            })?;
            for row in rows {
                let (seq, op, related) = row?;
                let a = audiences.entry(seq as u64).or_default();
                a.operators.push(op as u64);
                if related {
                    a.related.push(op as u64);
                }
            }
        }
        let mut out = Vec::with_capacity(entries.len());
        for entry in entries {
            let mut audience = audiences.remove(&entry.seq).unwrap_or_default();
            audience.operators.sort_unstable();
            audience.related.sort_unstable();
            let related = if audience.related.is_empty() {
                Vec::new()
            } else {
                related_evidence(&tx, &entry)?
            };
            out.push(RoutedEntry {
                entry,
                audience,
                related,
            });
        }
        tx.finish()?;
        Ok(out)
    }

    fn read_feed(
        &self,
        after: u64,
        filter: FeedFilter<'_>,
        limit: usize,
    ) -> Result<FeedPage, StoreError> {
        let limit = limit.max(1);
        self.with_reader(|conn| {
            let tx = conn.unchecked_transaction()?;
            let items = match filter {
                FeedFilter::All => entries_after(&tx, after, limit)?
                    .into_iter()
                    .map(|entry| FeedItem {
                        entry,
                        related: Vec::new(),
                    })
                    .collect::<Vec<_>>(),
                FeedFilter::Operators([]) => Vec::new(),
                FeedFilter::Operators(ops) => {
                    let placeholders = vec!["?"; ops.len()].join(",");
                    let mut stmt = tx.prepare_cached(&format!(
                        "SELECT seq, MAX(related) FROM audience
                         WHERE operator_id IN ({placeholders}) AND seq > ?
                         GROUP BY seq ORDER BY seq LIMIT ?"
                    ))?;
                    let mut values: Vec<i64> = ops.iter().map(|&o| o as i64).collect();
                    values.push(clamp(after));
                    values.push(clamp(limit as u64));
                    let seqs = stmt
                        .query_map(rusqlite::params_from_iter(values), |r| {
                            Ok((r.get::<_, i64>(0)?, r.get::<_, bool>(1)?))
                        })?
                        .collect::<Result<Vec<_>, _>>()?;
                    let mut items = Vec::with_capacity(seqs.len());
                    for (seq, with_related) in seqs {
                        let seq = seq as u64;
                        let entry = entry_at(&tx, seq)?.ok_or_else(|| StoreError::Corrupt {
                            seq,
                            detail: "audience row without its entry".into(),
                        })?;
                        let related = if with_related {
                            related_evidence(&tx, &entry)?
                        } else {
                            Vec::new()
                        };
                        items.push(FeedItem { entry, related });
                    }
                    items
                }
            };
            let scanned_to = match items.last() {
                Some(item) if items.len() >= limit => item.entry.seq,
                _ => last_seq(&tx)?.max(after),
            };
            tx.finish()?;
            Ok(FeedPage { items, scanned_to })
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
                supported: 2,
            }) => {}
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("opened a database from the future"),
        }
    }
}
