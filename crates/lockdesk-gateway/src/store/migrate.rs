//! Moving a SQLite log to PostgreSQL (`lockdesk-cli gateway migrate`): every entry with its
//! sequence number, event id and payload byte for byte, its audience (and `related` flags), the
//! log's identity (desks remember `logId`: a new one would stop them with LogChanged), the
//! routing progress and the open conversations, so that desks resume on a PostgreSQL gateway
//! from their cursors without noticing.
//!
//! The SQLite file is held with an exclusive lock for the whole copy: a gateway still running on
//! it (an open connection) makes the migration refuse to start, and a gateway started meanwhile
//! cannot open it. The copy runs in one PostgreSQL transaction under the append lock, into an
//! empty log only, and is verified before the commit (counts, last seq, and a SHA-256 over every
//! entry's columns and every audience row, computed on both sides; the open conversations read
//! back against the replay): a mismatch rolls it all back. Every read, on either side, is paged
//! ([`CHUNK`] rows): memory does not grow with the log.
//!
//! Must not: write to the SQLite log; leave a partial log on PostgreSQL; log a payload (evidence
//! holds tokens) or the password.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use sha2::{Digest, Sha256};

use super::postgres::LOG_ID_AND_END;
use super::{PgSettings, PostgresStore, SqliteStore, StoreError, APPEND_LOCK};
use crate::routing::{RoutingFields, Visibility, CLOSED, PUSHED};

/// Entries (and their audience rows) copied per statement, and rows read back per page when
/// verifying: the migration's memory does not grow with the log.
const CHUNK: i64 = 2_000;

/// What was moved (and verified on both sides).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MigrationReport {
    pub log_id: String,
    pub webhook_events: u64,
    pub evidence: u64,
    pub last_seq: u64,
    pub audience_rows: u64,
    pub open_conversations: u64,
    /// SHA-256 (hex) over every entry's columns, in seq order, then every audience row.
    pub digest: String,
}

/// Why a migration did not happen (nothing was committed to PostgreSQL).
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("there is no gateway log at {0}")]
    NoLog(PathBuf),
    #[error("the SQLite log {0} is in use: stop the gateway running on it first (the migration needs it to itself)")]
    InUse(PathBuf),
    #[error("a gateway is connected to the target database ({0} connection(s) named lockdesk-gateway): stop the PostgreSQL gateways until the migration is done")]
    TargetInUse(i64),
    #[error("the target database already holds a log ({entries} entries, last seq {last_seq}, {open} open conversations): the migration only fills an empty one")]
    TargetNotEmpty {
        entries: i64,
        last_seq: i64,
        open: i64,
    },
    #[error("verification failed, nothing was committed: {0}")]
    Mismatch(String),
    #[error("the SQLite log: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("PostgreSQL: {0}")]
    Postgres(String),
}

fn pg(e: tokio_postgres::Error) -> MigrateError {
    // The server's words and SQLSTATE; neither holds the password. A TLS failure said plainly.
    match e.as_db_error() {
        Some(db) => MigrateError::Postgres(format!("{} ({})", db.message(), db.code().code())),
        None => {
            MigrateError::Postgres(super::pg_tls::describe(&e).unwrap_or_else(|| e.to_string()))
        }
    }
}

/// Opens the SQLite file with an exclusive lock (WAL mode: any other open connection, such as a
/// running gateway's, makes this fail at once) and begins a transaction that keeps it.
fn lock_sqlite(db: &Path) -> Result<Connection, MigrateError> {
    let conn = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::ZERO)?;
    conn.pragma_update(None, "locking_mode", "EXCLUSIVE")?;
    let busy = |e: &rusqlite::Error| {
        matches!(
            e.sqlite_error_code(),
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
        )
    };
    // The lock is taken by the first read in the transaction.
    let locked = conn
        .execute_batch("BEGIN EXCLUSIVE")
        .and_then(|_| conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(())));
    match locked {
        Ok(()) => Ok(conn),
        Err(e) if busy(&e) => Err(MigrateError::InUse(db.to_owned())),
        Err(e) => Err(e.into()),
    }
}

/// Hashes one optional text column (length-prefixed, so fields cannot run into each other).
fn hash_opt(h: &mut Sha256, v: Option<&str>) {
    match v {
        None => h.update([0u8]),
        Some(s) => {
            h.update([1u8]);
            h.update((s.len() as u64).to_be_bytes());
            h.update(s.as_bytes());
        }
    }
}

/// One open conversation: its id, visitor and operators, in their order.
fn hash_open(
    h: &mut Sha256,
    id: &str,
    visitor: Option<&str>,
    owners: impl IntoIterator<Item = i64>,
) {
    hash_opt(h, Some(id));
    hash_opt(h, visitor);
    let owners: Vec<i64> = owners.into_iter().collect();
    h.update((owners.len() as u64).to_be_bytes());
    for o in owners {
        h.update(o.to_be_bytes());
    }
}

/// One entry's columns, as both stores hold them.
struct Row {
    seq: i64,
    kind: String,
    received_at_ms: i64,
    event_id: Option<String>,
    event_type: Option<String>,
    correlation_id: Option<String>,
    delivery_id: Option<String>,
    provider: Option<String>,
    conversation_id: Option<String>,
    visitor_id: Option<String>,
    operator_ids: String,
    payload: String,
}

impl Row {
    fn hash(&self, h: &mut Sha256) {
        h.update(self.seq.to_be_bytes());
        hash_opt(h, Some(&self.kind));
        h.update(self.received_at_ms.to_be_bytes());
        for v in [
            &self.event_id,
            &self.event_type,
            &self.correlation_id,
            &self.delivery_id,
            &self.provider,
            &self.conversation_id,
            &self.visitor_id,
        ] {
            hash_opt(h, v.as_deref());
        }
        hash_opt(h, Some(&self.operator_ids));
        hash_opt(h, Some(&self.payload));
    }
}

const COLUMNS: &str = "seq, kind, received_at_ms, event_id, event_type, correlation_id, \
                       delivery_id, provider, conversation_id, visitor_id, operator_ids, payload";

fn sqlite_rows(conn: &Connection, after: i64, page: i64) -> Result<Vec<Row>, MigrateError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM entries WHERE seq > ?1 ORDER BY seq LIMIT ?2"
    ))?;
    let rows = stmt.query_map([after, page], |r| {
        Ok(Row {
            seq: r.get(0)?,
            kind: r.get(1)?,
            received_at_ms: r.get(2)?,
            event_id: r.get(3)?,
            event_type: r.get(4)?,
            correlation_id: r.get(5)?,
            delivery_id: r.get(6)?,
            provider: r.get(7)?,
            conversation_id: r.get(8)?,
            visitor_id: r.get(9)?,
            operator_ids: r.get(10)?,
            payload: r.get(11)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn pg_row(r: &tokio_postgres::Row) -> Row {
    Row {
        seq: r.get(0),
        kind: r.get(1),
        received_at_ms: r.get(2),
        event_id: r.get(3),
        event_type: r.get(4),
        correlation_id: r.get(5),
        delivery_id: r.get(6),
        provider: r.get(7),
        conversation_id: r.get(8),
        visitor_id: r.get(9),
        operator_ids: r.get(10),
        payload: r.get(11),
    }
}

/// Moves the SQLite log `db` (a gateway's `DIR/gateway.sqlite3`, its gateway stopped) into the
/// empty PostgreSQL log `target` (created or brought up to date first). Blocks: not for an async
/// executor.
pub fn migrate_sqlite_to_postgres(
    db: &Path,
    target: &PgSettings,
) -> Result<MigrationReport, MigrateError> {
    migrate_in_pages(db, target, CHUNK)
}

/// [`migrate_sqlite_to_postgres`] with `page` entries (or audience rows) per statement and per
/// page read back (the tests use a small one to cross page boundaries on a small log).
fn migrate_in_pages(
    db: &Path,
    target: &PgSettings,
    page: i64,
) -> Result<MigrationReport, MigrateError> {
    if !db.is_file() {
        return Err(MigrateError::NoLog(db.to_owned()));
    }
    // Refuse a log in use before touching anything; then let the SQLite store bring the file up
    // to date (schema, integrity check, audiences of entries stored by older gateways), and take
    // the lock again for the copy.
    drop(lock_sqlite(db)?);
    drop(SqliteStore::open(db)?);
    let sqlite = lock_sqlite(db)?;

    // The same TLS as the gateway's (the target's sslmode and CA).
    let config = target
        .connector()?
        .with_application_name("lockdesk-migrate");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| MigrateError::Postgres(format!("cannot start a runtime: {e}")))?;
    // Our own session first, to see whether gateways are connected to the target.
    let connect = || {
        let config = config.clone();
        async move {
            let (client, connection) = config.connect().await.map_err(pg)?;
            tokio::spawn(async move {
                let _ = connection.await;
            });
            Ok::<_, MigrateError>(client)
        }
    };
    runtime.block_on(async {
        let client = connect().await?;
        let gateways: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND application_name = 'lockdesk-gateway'
                   AND pid <> pg_backend_pid()",
                &[],
            )
            .await
            .map_err(pg)?
            .get(0);
        if gateways > 0 {
            return Err(MigrateError::TargetInUse(gateways));
        }
        Ok(())
    })?;
    // The schema, as a gateway creates it (versioned migrations, refused when newer).
    drop(PostgresStore::open(target)?);
    runtime.block_on(async { copy(&sqlite, connect().await?, page.max(1)).await })
}

async fn copy(
    sqlite: &Connection,
    mut client: tokio_postgres::Client,
    page: i64,
) -> Result<MigrationReport, MigrateError> {
    let log_id: String =
        sqlite.query_row("SELECT log_id FROM log_identity WHERE id = 1", [], |r| {
            r.get(0)
        })?;
    let last_seq: i64 = sqlite.query_row(
        "SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'entries'), 0)",
        [],
        |r| r.get(0),
    )?;
    let routed: i64 = sqlite.query_row("SELECT routed_seq FROM routing WHERE id = 1", [], |r| {
        r.get(0)
    })?;
    if routed != last_seq {
        return Err(MigrateError::Mismatch(format!(
            "the SQLite log is routed up to seq {routed}, not its end {last_seq}"
        )));
    }

    let tx = client.transaction().await.map_err(pg)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&APPEND_LOCK])
        .await
        .map_err(pg)?;
    let state = tx
        .query_one(
            "SELECT (SELECT count(*) FROM entries), (SELECT last_seq FROM log_head WHERE id = 1),
                    (SELECT count(*) FROM open_conversations)",
            &[],
        )
        .await
        .map_err(pg)?;
    let (entries, head, open): (i64, i64, i64) = (state.get(0), state.get(1), state.get(2));
    if entries != 0 || head != 0 || open != 0 {
        return Err(MigrateError::TargetNotEmpty {
            entries,
            last_seq: head,
            open,
        });
    }

    // The entries, chunk by chunk, hashed as read, with the routing replayed for the open
    // conversations.
    let mut source_hash = Sha256::new();
    let mut visibility = Visibility::default();
    let mut touched = std::collections::BTreeSet::new();
    let (mut webhook_events, mut evidence) = (0u64, 0u64);
    let insert = tx
        .prepare(&format!(
            "INSERT INTO entries ({COLUMNS})
             SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[], $5::text[],
                                  $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
                                  $11::text[], $12::text[])"
        ))
        .await
        .map_err(pg)?;
    let mut after = 0i64;
    loop {
        let rows = sqlite_rows(sqlite, after, page)?;
        let Some(last) = rows.last() else { break };
        after = last.seq;
        for row in &rows {
            row.hash(&mut source_hash);
            let operator_ids: Vec<u64> =
                serde_json::from_str(&row.operator_ids).map_err(|e| StoreError::Corrupt {
                    seq: row.seq as u64,
                    detail: format!("operator_ids: {e}"),
                })?;
            let is_evidence = row.kind == "evidence";
            if is_evidence {
                evidence += 1;
            } else {
                webhook_events += 1;
            }
            visibility.route(RoutingFields {
                is_evidence,
                event_type: row.event_type.as_deref(),
                conversation_id: row.conversation_id.as_deref(),
                visitor_id: row.visitor_id.as_deref(),
                operator_ids: &operator_ids,
            });
            if let (false, Some(t), Some(c)) =
                (is_evidence, row.event_type.as_deref(), &row.conversation_id)
            {
                if t == PUSHED || t == CLOSED {
                    touched.insert(c.clone());
                }
            }
        }
        let col = |f: fn(&Row) -> Option<&str>| rows.iter().map(f).collect::<Vec<_>>();
        let seqs: Vec<i64> = rows.iter().map(|r| r.seq).collect();
        let received: Vec<i64> = rows.iter().map(|r| r.received_at_ms).collect();
        tx.execute(
            &insert,
            &[
                &seqs,
                &col(|r| Some(&r.kind)),
                &received,
                &col(|r| r.event_id.as_deref()),
                &col(|r| r.event_type.as_deref()),
                &col(|r| r.correlation_id.as_deref()),
                &col(|r| r.delivery_id.as_deref()),
                &col(|r| r.provider.as_deref()),
                &col(|r| r.conversation_id.as_deref()),
                &col(|r| r.visitor_id.as_deref()),
                &col(|r| Some(&r.operator_ids)),
                &col(|r| Some(&r.payload)),
            ],
        )
        .await
        .map_err(pg)?;
    }

    // The audiences, as stored (computed by the SQLite gateway in seq order).
    let mut audience_rows = 0u64;
    {
        let mut stmt = sqlite
            .prepare("SELECT operator_id, seq, related FROM audience ORDER BY seq, operator_id")?;
        let mut rows = stmt.query([])?;
        let (mut ops, mut seqs, mut related) = (Vec::new(), Vec::new(), Vec::new());
        loop {
            let row = rows.next()?;
            if let Some(r) = row {
                let (op, seq, rel): (i64, i64, bool) = (r.get(0)?, r.get(1)?, r.get(2)?);
                source_hash.update(op.to_be_bytes());
                source_hash.update(seq.to_be_bytes());
                source_hash.update([rel as u8]);
                ops.push(op);
                seqs.push(seq);
                related.push(rel);
                audience_rows += 1;
            }
            if row_done(&ops, row.is_none(), page) && !ops.is_empty() {
                tx.execute(
                    "INSERT INTO audience (operator_id, seq, related)
                     SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::boolean[])",
                    &[&ops, &seqs, &related],
                )
                .await
                .map_err(pg)?;
                ops.clear();
                seqs.clear();
                related.clear();
            }
            if row.is_none() {
                break;
            }
        }
    }

    // The open conversations (routing.rs's state as of the last entry), the identity, the head.
    let mut open_ids = Vec::new();
    let mut open_visitors = Vec::new();
    let mut open_owners = Vec::new();
    // In conversation id order (bytewise: `touched` is a BTreeSet of Strings), as read back.
    let mut open_source_hash = Sha256::new();
    for c in touched {
        if let Some((owners, visitor)) = visibility.conversation(&c) {
            hash_open(
                &mut open_source_hash,
                &c,
                visitor,
                owners.iter().map(|&o| o as i64),
            );
            open_owners.push(
                serde_json::to_string(&owners.iter().map(|&o| o as i64).collect::<Vec<_>>())
                    .unwrap_or_else(|_| "[]".into()),
            );
            open_visitors.push(visitor.map(str::to_owned));
            open_ids.push(c);
        }
    }
    if visibility.open_conversations() != open_ids.len() {
        return Err(MigrateError::Mismatch(format!(
            "{} open conversations replayed, {} found",
            visibility.open_conversations(),
            open_ids.len()
        )));
    }
    tx.execute(
        "INSERT INTO open_conversations (conversation_id, visitor_id, owners)
         SELECT c, v, ARRAY(SELECT jsonb_array_elements_text(o::jsonb)::bigint)
         FROM unnest($1::text[], $2::text[], $3::text[]) AS u(c, v, o)",
        &[&open_ids, &open_visitors, &open_owners],
    )
    .await
    .map_err(pg)?;
    tx.execute(
        "UPDATE log_identity SET log_id = $1 WHERE id = 1",
        &[&log_id],
    )
    .await
    .map_err(pg)?;
    tx.execute(
        "UPDATE log_head SET last_seq = $1, webhook_events = $2, evidence = $3 WHERE id = 1",
        &[&last_seq, &(webhook_events as i64), &(evidence as i64)],
    )
    .await
    .map_err(pg)?;

    // Verify what PostgreSQL now holds, read back inside the same transaction.
    let mut target_hash = Sha256::new();
    let mut after = 0i64;
    let (mut pg_webhooks, mut pg_evidence) = (0u64, 0u64);
    loop {
        let rows = tx
            .query(
                &format!("SELECT {COLUMNS} FROM entries WHERE seq > $1 ORDER BY seq LIMIT $2"),
                &[&after, &page],
            )
            .await
            .map_err(pg)?;
        let Some(last) = rows.last() else { break };
        after = last.get(0);
        for r in &rows {
            let row = pg_row(r);
            if row.kind == "evidence" {
                pg_evidence += 1;
            } else {
                pg_webhooks += 1;
            }
            row.hash(&mut target_hash);
        }
    }
    // The audience rows, a page at a time through one portal (a cursor of this transaction):
    // sorted once by the server, at most `page` rows held here.
    let audience = tx
        .prepare("SELECT operator_id, seq, related FROM audience ORDER BY seq, operator_id")
        .await
        .map_err(pg)?;
    let audience = tx.bind(&audience, &[]).await.map_err(pg)?;
    let rows_per_page = i32::try_from(page).unwrap_or(i32::MAX);
    let mut pg_audience_rows = 0u64;
    loop {
        let rows = tx
            .query_portal(&audience, rows_per_page)
            .await
            .map_err(pg)?;
        for r in &rows {
            let (op, seq, rel): (i64, i64, bool) = (r.get(0), r.get(1), r.get(2));
            target_hash.update(op.to_be_bytes());
            target_hash.update(seq.to_be_bytes());
            target_hash.update([rel as u8]);
        }
        pg_audience_rows += rows.len() as u64;
        if rows.len() < rows_per_page as usize {
            break;
        }
    }
    let head = tx.query_one(LOG_ID_AND_END, &[]).await.map_err(pg)?;
    let (pg_log_id, pg_last): (String, i64) = (head.get(0), head.get(1));
    // The open conversations, read back a page at a time too (desks' advisors depend on them:
    // the next close or message of such a conversation goes to its owners).
    let open = tx
        .prepare(
            "SELECT conversation_id, visitor_id, owners FROM open_conversations
             ORDER BY conversation_id COLLATE \"C\"",
        )
        .await
        .map_err(pg)?;
    let open = tx.bind(&open, &[]).await.map_err(pg)?;
    let mut open_target_hash = Sha256::new();
    let mut pg_open = 0u64;
    loop {
        let rows = tx.query_portal(&open, rows_per_page).await.map_err(pg)?;
        for r in &rows {
            let (id, visitor, owners): (String, Option<String>, Vec<i64>) =
                (r.get(0), r.get(1), r.get(2));
            hash_open(&mut open_target_hash, &id, visitor.as_deref(), owners);
        }
        pg_open += rows.len() as u64;
        if rows.len() < rows_per_page as usize {
            break;
        }
    }
    let source_digest = hex::encode(source_hash.finalize());
    let target_digest = hex::encode(target_hash.finalize());
    let checks = [
        ("webhook events", webhook_events, pg_webhooks),
        ("evidence", evidence, pg_evidence),
        ("audience rows", audience_rows, pg_audience_rows),
        ("last seq", last_seq as u64, pg_last as u64),
        ("open conversations", open_ids.len() as u64, pg_open),
    ];
    for (what, source, target) in checks {
        if source != target {
            return Err(MigrateError::Mismatch(format!(
                "{what}: {source} in SQLite, {target} in PostgreSQL"
            )));
        }
    }
    if pg_log_id != log_id {
        return Err(MigrateError::Mismatch("the log identity".into()));
    }
    if source_digest != target_digest {
        return Err(MigrateError::Mismatch(
            "the entries' digest differs between SQLite and PostgreSQL".into(),
        ));
    }
    if open_source_hash.finalize() != open_target_hash.finalize() {
        return Err(MigrateError::Mismatch(
            "the open conversations (visitor or operators) differ between the replay and \
             PostgreSQL"
                .into(),
        ));
    }
    tx.commit().await.map_err(pg)?;
    Ok(MigrationReport {
        log_id,
        webhook_events,
        evidence,
        last_seq: last_seq as u64,
        audience_rows,
        open_conversations: open_ids.len() as u64,
        digest: source_digest,
    })
}

/// Whether to send the audience rows gathered so far: a full page, or the end.
fn row_done(ops: &[i64], end: bool, page: i64) -> bool {
    end || ops.len() as i64 >= page
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{EventStore, NewWebhookEvent};
    use lockdesk_testkit::pg::PgServer;

    fn event(id: &str, event_type: &str, conversation: &str, operators: &[u64]) -> NewWebhookEvent {
        NewWebhookEvent {
            event_id: id.into(),
            event_type: event_type.into(),
            correlation_id: None,
            delivery_id: None,
            conversation_id: Some(conversation.into()),
            visitor_id: Some(format!("v-{conversation}")),
            operator_ids: operators.to_vec(),
            payload: format!(r#"{{"eventId":"{id}"}}"#),
            received_at_ms: 1,
        }
    }

    /// 12 conversations pushed to two operators each, 5 of them closed: 17 entries, 34 audience
    /// rows, 7 open conversations.
    fn sqlite_log(dir: &Path) -> PathBuf {
        let db = dir.join(crate::DATABASE_FILE);
        let store = SqliteStore::open(&db).unwrap();
        for i in 0..12u64 {
            let c = format!("c{i:02}");
            store
                .append_webhook(event(&format!("push-{i}"), PUSHED, &c, &[200, 100 + i % 3]))
                .unwrap();
        }
        for i in 0..5u64 {
            let c = format!("c{i:02}");
            store
                .append_webhook(event(&format!("close-{i}"), CLOSED, &c, &[]))
                .unwrap();
        }
        drop(store);
        db
    }

    fn settings(pg: &PgServer, database: &str) -> PgSettings {
        PgSettings {
            url: pg.create_database(database),
            password: Some(pg.password().to_owned()),
            ca_file: None,
        }
    }

    #[test]
    fn a_log_larger_than_one_page_is_copied_and_verified_page_by_page() {
        let dir = tempfile::tempdir().unwrap();
        let db = sqlite_log(dir.path());
        let pg = PgServer::start();
        // 5 rows a page: the entries take 4 pages, the audience rows 7, the open
        // conversations 2, each way.
        let paged = migrate_in_pages(&db, &settings(&pg, "paged"), 5).unwrap();
        assert_eq!(paged.last_seq, 17);
        assert_eq!(paged.webhook_events, 17);
        assert_eq!(paged.audience_rows, 34);
        assert_eq!(paged.open_conversations, 7);
        assert_eq!(pg.psql("paged", "SELECT count(*) FROM audience"), "34");
        assert_eq!(
            pg.psql(
                "paged",
                "SELECT string_agg(conversation_id || '=' || array_to_string(owners, ','), ' ' \
                 ORDER BY conversation_id) FROM open_conversations"
            ),
            "c05=102,200 c06=100,200 c07=101,200 c08=102,200 c09=100,200 c10=101,200 c11=102,200"
        );
        // The same log in one page: the same copy, to the digest.
        let whole = migrate_in_pages(&db, &settings(&pg, "whole"), CHUNK).unwrap();
        assert_eq!(whole, paged);
    }

    #[test]
    fn a_page_boundary_on_the_last_row_still_reads_everything() {
        // 34 audience rows, 17 entries: pages of 17 end exactly at the last entry, and the
        // audience in exactly two pages; the next (empty) page ends the reads.
        let dir = tempfile::tempdir().unwrap();
        let db = sqlite_log(dir.path());
        let pg = PgServer::start();
        let report = migrate_in_pages(&db, &settings(&pg, "exact"), 17).unwrap();
        assert_eq!((report.last_seq, report.audience_rows), (17, 34));
    }

    #[test]
    fn the_migration_connects_with_the_target_s_tls_and_refuses_a_server_it_cannot_verify() {
        let dir = tempfile::tempdir().unwrap();
        let db = sqlite_log(dir.path());
        let pg = PgServer::start_with(&lockdesk_testkit::pg::PgOptions {
            tls: true,
            ..Default::default()
        })
        .unwrap();
        pg.create_database("tls_target");
        // A CA that did not issue the server's certificate: nothing is copied.
        let stranger = dir.path().join("stranger.pem");
        std::fs::write(
            &stranger,
            lockdesk_testkit::tls::ThrowAwayCa::new().cert_pem(),
        )
        .unwrap();
        let target = |ca_file: PathBuf| PgSettings {
            // A non-local name: verify-full by default.
            url: pg.tls_url("tls_target"),
            password: Some(pg.password().to_owned()),
            ca_file: Some(ca_file),
        };
        let message = migrate_sqlite_to_postgres(&db, &target(stranger))
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("the server's certificate is not issued by the CA"),
            "{message}"
        );
        assert!(!message.contains(pg.password()), "{message}");
        assert_eq!(
            pg.psql(
                "tls_target",
                "SELECT count(*) FROM pg_tables WHERE tablename = 'entries'"
            ),
            "0"
        );
        // Its CA: copied and verified.
        let report = migrate_sqlite_to_postgres(&db, &target(pg.ca_file().unwrap())).unwrap();
        assert_eq!((report.last_seq, report.audience_rows), (17, 34));
        assert_eq!(pg.psql("tls_target", "SELECT last_seq FROM log_head"), "17");
    }
}
