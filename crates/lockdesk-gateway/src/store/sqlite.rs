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
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};
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
    // 3: the log's identity, random, created with the log (or given to a log stored before
    // this migration) and never changed: `hello` carries it, so a desk notices a log that is
    // not the one its cursor belongs to (a database reset, or another gateway's).
    // SQLite's randomblob draws from the operating system's randomness.
    "CREATE TABLE log_identity (id INTEGER PRIMARY KEY CHECK (id = 1), log_id TEXT NOT NULL);
    INSERT INTO log_identity (id, log_id) VALUES (1, lower(hex(randomblob(16))));",
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
    /// Kept by the writer: `counts()` and `/healthz` cost nothing, whatever the log's size.
    tally: Arc<Tally>,
    log_id: String,
}

/// What the writer keeps up to date for `counts()`.
#[derive(Default)]
struct Tally {
    webhook_events: AtomicU64,
    evidence: AtomicU64,
    /// The last commit failed (disk full, I/O error...): appends are answered 503 until one
    /// succeeds, and `/healthz` says so.
    failing: AtomicBool,
}

fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let reader = Connection::open(path)?;
    reader.busy_timeout(std::time::Duration::from_secs(10))?;
    reader.pragma_update(None, "query_only", true)?;
    Ok(reader)
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, checks its integrity (a damaged
    /// file is refused with [`StoreError::Damaged`], naming it) and brings its schema up to
    /// date.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                path: dir.to_owned(),
                source,
            })?;
        }
        SqliteStore::open_checked(path).map_err(|e| damaged(path, e))
    }

    fn open_checked(path: &Path) -> Result<SqliteStore, StoreError> {
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
        integrity_check(&conn)?;
        migrate(&mut conn)?;
        let (visibility, tally) = rebuild_routing(&mut conn)?;
        let tally = Arc::new(tally);
        let last = last_seq(&conn)?;
        let log_id: String =
            conn.query_row("SELECT log_id FROM log_identity WHERE id = 1", [], |r| {
                r.get(0)
            })?;
        tracing::info!(log_id, last_seq = last, "gateway log opened");

        let readers = (0..READERS)
            .map(|_| open_reader(path).map(Mutex::new))
            .collect::<Result<Vec<_>, _>>()?;
        let tail_reader = Mutex::new(open_reader(path)?);

        let (committed_tx, committed) = watch::channel(last);
        let (tx, rx) = mpsc::channel();
        let writer_tally = tally.clone();
        let writer_thread = std::thread::Builder::new()
            .name("gateway-sqlite-writer".into())
            .spawn(move || {
                writer_loop(Writer {
                    conn,
                    visibility,
                    committed: committed_tx,
                    rx,
                    tally: writer_tally,
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
            tally,
            log_id,
        })
    }

    /// Whether the writer thread still runs (it catches a panic in a commit and carries on;
    /// should it end anyway, appends fail and `counts()` says the store is down).
    fn writer_alive(&self) -> bool {
        self.writer_thread
            .as_ref()
            .is_some_and(|t| !t.is_finished())
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

/// The log's scheme for the shared migration routine ([`lockdesk_sqlite::migrate`]): the file is
/// the log's alone, so its version is `PRAGMA user_version`.
const SCHEME: lockdesk_sqlite::Scheme<'static, StoreError> = lockdesk_sqlite::Scheme {
    name: "gateway database",
    version_at: lockdesk_sqlite::VersionAt::UserVersion,
    steps: MIGRATIONS,
    after_step: None,
};

impl From<lockdesk_sqlite::SchemaTooNew> for StoreError {
    fn from(e: lockdesk_sqlite::SchemaTooNew) -> Self {
        StoreError::SchemaTooNew {
            found: e.found,
            supported: e.supported,
        }
    }
}

/// Every missing step in one transaction (a step that fails leaves the file as it was).
fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let m = lockdesk_sqlite::migrate(conn, &SCHEME)?;
    if m.from != m.to {
        tracing::info!(from = m.from, to = m.to, "gateway database migrated");
    }
    Ok(())
}

/// `PRAGMA quick_check`: every page, index and constraint readable and consistent (the cost of
/// reading the file once; the routing replay at open reads it anyway). A damaged file would
/// otherwise start a gateway that refuses every append.
fn integrity_check(conn: &Connection) -> Result<(), StoreError> {
    let mut stmt = conn.prepare("PRAGMA quick_check(20)")?;
    let problems: Vec<String> = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<Result<_, _>>()?;
    if problems.len() == 1 && problems[0] == "ok" {
        return Ok(());
    }
    Err(StoreError::Damaged {
        path: std::path::PathBuf::new(),
        detail: problems.join("; "),
    })
}

/// Names the file in an error that says it is damaged (SQLite's own "malformed" and "not a
/// database" errors included).
fn damaged(path: &Path, e: StoreError) -> StoreError {
    use rusqlite::ErrorCode::{DatabaseCorrupt, NotADatabase};
    match e {
        StoreError::Damaged { detail, .. } => StoreError::Damaged {
            path: path.to_owned(),
            detail,
        },
        StoreError::Sqlite(rusqlite::Error::SqliteFailure(f, msg))
            if matches!(f.code, DatabaseCorrupt | NotADatabase) =>
        {
            StoreError::Damaged {
                path: path.to_owned(),
                detail: msg.unwrap_or_else(|| f.to_string()),
            }
        }
        StoreError::Corrupt { seq, detail } => StoreError::Damaged {
            path: path.to_owned(),
            detail: format!("the entry at seq {seq}: {detail}"),
        },
        other => other,
    }
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
fn rebuild_routing(conn: &mut Connection) -> Result<(Visibility, Tally), StoreError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let routed: i64 = tx.query_row("SELECT routed_seq FROM routing WHERE id = 1", [], |r| {
        r.get(0)
    })?;
    let mut visibility = Visibility::default();
    let tally = Tally::default();
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
            let counter = if kind == "evidence" {
                &tally.evidence
            } else {
                &tally.webhook_events
            };
            counter.fetch_add(1, Ordering::Relaxed);
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
    Ok((visibility, tally))
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
    tally: Arc<Tally>,
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
        // A panic (a bug, or a log write in a process whose stderr is gone) must not end the
        // one thread that writes: the unfinished transaction rolls back as it unwinds, the
        // batch's callers see their reply channel close (503, they retry), and the routing
        // state, which may have seen rolled-back entries, is rebuilt from the log.
        let group =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| commit_group(&mut w, batch)));
        if group.is_err() {
            w.tally.failing.store(true, Ordering::Relaxed);
            let rebuilt = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                rebuild_routing(&mut w.conn)
            }));
            if let Ok(Ok((v, tally))) = rebuilt {
                // The panic may have come after the commit: take the counts and the end of
                // the log from the file.
                w.visibility = v;
                for (mine, found) in [
                    (&w.tally.webhook_events, &tally.webhook_events),
                    (&w.tally.evidence, &tally.evidence),
                ] {
                    mine.store(found.load(Ordering::Relaxed), Ordering::Relaxed);
                }
                if let Ok(last) = last_seq(&w.conn) {
                    w.committed.send_if_modified(|c| {
                        let moved = *c < last;
                        *c = (*c).max(last);
                        moved
                    });
                }
            }
        }
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
            for (op, appended) in batch.iter().zip(&outcomes) {
                let counter = match (&op.item, appended.inserted) {
                    (_, false) => continue,
                    (Item::Webhook(_), true) => &w.tally.webhook_events,
                    (Item::Evidence(_), true) => &w.tally.evidence,
                };
                counter.fetch_add(1, Ordering::Relaxed);
            }
            w.tally.failing.store(false, Ordering::Relaxed);
            if last > 0 {
                w.committed.send_replace(last);
            }
            for (op, appended) in batch.into_iter().zip(outcomes) {
                // A caller that went away (request cancelled) is fine: the entry is stored.
                let _ = op.reply.send(Ok(appended));
            }
        }
        Err(e) => {
            w.tally.failing.store(true, Ordering::Relaxed);
            tracing::error!(error = %e, appends = batch.len(), "gateway database commit failed");
            // The routing state saw entries that were rolled back: rebuild it from the log.
            match rebuild_routing(&mut w.conn) {
                Ok((v, _)) => w.visibility = v,
                Err(e) => tracing::error!(error = %e, "cannot rebuild the feed routing state"),
            }
            let msg = e.to_string();
            for op in batch {
                let _ = op.reply.send(Err(StoreError::Commit(msg.clone())));
            }
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
    let kind = EntryKind::from_stored(&kind, seq)?;
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
        // Constant time: the writer keeps the tally; nothing is read from the file.
        if !self.writer_alive() {
            return Err(StoreError::Closed);
        }
        if self.tally.failing.load(Ordering::Relaxed) {
            return Err(StoreError::Failing);
        }
        Ok(Counts {
            webhook_events: self.tally.webhook_events.load(Ordering::Relaxed),
            evidence: self.tally.evidence.load(Ordering::Relaxed),
            last_seq: *self.committed.borrow(),
        })
    }

    fn log_id(&self) -> &str {
        &self.log_id
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
        let limit = FeedPage::size(limit);
        self.with_reader(|conn| {
            let tx = conn.unchecked_transaction()?;
            let items = match filter {
                FeedFilter::All => entries_after(&tx, after, limit)?
                    .into_iter()
                    .map(FeedItem::unbundled)
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
            let page = FeedPage::scanned(items, after, limit, || last_seq(&tx))?;
            tx.finish()?;
            Ok(page)
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
    fn every_log_has_its_own_identity_kept_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gateway.sqlite3");
        let first = {
            let store = SqliteStore::open(&path).unwrap();
            store.append_webhook(webhook("e1")).unwrap();
            store.log_id().to_owned()
        };
        assert_eq!(first.len(), 32, "{first}");
        assert!(first.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(SqliteStore::open(&path).unwrap().log_id(), first);
        // The file emptied (0 bytes): a new, empty log, with another identity.
        for suffix in ["-wal", "-shm"] {
            let _ = std::fs::remove_file(dir.path().join(format!("gateway.sqlite3{suffix}")));
        }
        std::fs::write(&path, b"").unwrap();
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.counts().unwrap().last_seq, 0);
        assert_ne!(store.log_id(), first);
        assert_eq!(store.log_id().len(), 32);
    }

    #[test]
    fn a_log_stored_before_identities_gets_one_and_keeps_its_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.db");
        {
            let mut conn = Connection::open(&path).unwrap();
            for (i, sql) in MIGRATIONS[..2].iter().enumerate() {
                conn.execute_batch(sql).unwrap();
                conn.pragma_update(None, "user_version", (i + 1) as i64)
                    .unwrap();
            }
            let tx = conn.transaction().unwrap();
            insert_webhook(&tx, &webhook("old")).unwrap();
            tx.commit().unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.log_id().len(), 32);
        assert_eq!(
            store.counts().unwrap(),
            Counts {
                webhook_events: 1,
                evidence: 0,
                last_seq: 1
            }
        );
        let id = store.log_id().to_owned();
        drop(store);
        assert_eq!(SqliteStore::open(&path).unwrap().log_id(), id);
    }

    #[test]
    fn a_damaged_file_is_refused_at_open_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gateway.sqlite3");
        {
            let store = SqliteStore::open(&path).unwrap();
            for i in 0..300 {
                store.append_webhook(webhook(&format!("e{i}"))).unwrap();
            }
        }
        // Overwrite the pages of one index (the table's own pages stay readable: only an
        // integrity check notices, before the first append that needs the index fails).
        let (page_size, root): (i64, i64) = {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
                .unwrap();
            let size = conn
                .query_row("PRAGMA page_size", [], |r| r.get(0))
                .unwrap();
            let root = conn
                .query_row(
                    "SELECT rootpage FROM sqlite_master WHERE name = 'entries_visitor'",
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            (size, root)
        };
        let mut bytes = std::fs::read(&path).unwrap();
        let start = ((root - 1) * page_size) as usize;
        for b in &mut bytes[start..start + page_size as usize] {
            *b = 0x5a;
        }
        std::fs::write(&path, &bytes).unwrap();
        match SqliteStore::open(&path) {
            Err(e @ StoreError::Damaged { .. }) => {
                let text = e.to_string();
                assert!(text.contains(&path.display().to_string()), "{text}");
            }
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("opened a damaged database"),
        }
        // Not a database at all: named too.
        std::fs::write(&path, vec![0x42; 8192]).unwrap();
        match SqliteStore::open(&path) {
            Err(e @ StoreError::Damaged { .. }) => {
                assert!(e.to_string().contains(&path.display().to_string()))
            }
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("opened garbage"),
        }
    }

    #[test]
    fn counts_never_read_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gateway.sqlite3");
        let store = std::sync::Arc::new(SqliteStore::open(&path).unwrap());
        store.append_webhook(webhook("e1")).unwrap();
        store.append_evidence(evidence()).unwrap();
        // Every read connection busy (as under a long catch-up): the counts, what /healthz and
        // /metrics report, come from the writer's tally and do not wait for one.
        let held: Vec<_> = store.readers.iter().map(|r| r.lock().unwrap()).collect();
        let (tx, rx) = mpsc::channel();
        let s = store.clone();
        std::thread::spawn(move || {
            let _ = tx.send(s.counts().unwrap());
        });
        // A bound on a hang, not a timing claim.
        let counts = rx.recv_timeout(std::time::Duration::from_secs(30));
        drop(held);
        assert_eq!(
            counts.expect("counts() waited for a read connection"),
            Counts {
                webhook_events: 1,
                evidence: 1,
                last_seq: 2
            }
        );
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
                supported: 3,
            }) => {}
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("opened a database from the future"),
        }
    }
}
