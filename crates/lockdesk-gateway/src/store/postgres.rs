//! The PostgreSQL [`EventStore`]: one database shared by several gateway instances (ARCHITECTURE.md,
//! "Multi-instance deployments").
//!
//! Appends from this instance are committed in groups by one writer task on its own connection
//! (every append waiting when a commit starts shares it). Each group's transaction first takes a
//! transaction-scoped advisory lock ([`APPEND_LOCK`]), so appends from every instance are
//! serialised: the next seq is `log_head.last_seq + 1`, the sequence is gapless and follows commit
//! order (a transaction releases the lock only after its commit is visible). Under the lock the
//! writer de-duplicates on `eventId` (two instances receiving the same delivery at once store it
//! once), routes each entry with `routing`'s pure logic against the open conversations (kept in a
//! table, cached in memory while this instance is the last writer), stores the audiences, and
//! NOTIFYs the other instances. Reads use a small pool.
//!
//! The tail (`committed()`) is woken by LISTEN/NOTIFY but never depends on it: it also re-reads
//! `log_head` every [`POLL`] and after (re)connecting its listener.
//!
//! The store owns a small tokio runtime: its methods block (the trait's contract, called through
//! `spawn_blocking`) and tokio-postgres/deadpool are async.
//!
//! Must not: answer an append before its transaction has committed; hand out a seq outside the
//! append lock; log the password (it is never in the URL: refused there).

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_postgres::{Client, NoTls, Row};
use tokio_util::sync::CancellationToken;

use super::{
    Appended, Counts, EntryKind, EventStore, FeedFilter, FeedItem, FeedPage, NewEvidence,
    NewWebhookEvent, RoutedEntry, StoreError, StoredEntry,
};
use crate::routing::{Audience, RoutingFields, Visibility, CLOSED, PUSHED};

/// Versioned migrations (migrations/postgres/NNNN_*.sql): entry `i` brings the schema version
/// from `i` to `i + 1`. Never edit a released file; add the next one.
const MIGRATIONS: &[&str] = &[include_str!("../../migrations/postgres/0001_log.sql")];

/// The transaction-scoped advisory lock every appending transaction takes first ("Lockdesk").
pub const APPEND_LOCK: i64 = 0x4c6f_636b_6465_736b;
/// The advisory lock migrations run under (two instances starting at once migrate once).
const MIGRATE_LOCK: i64 = APPEND_LOCK + 1;
/// The NOTIFY channel: a payload-less wake-up after each commit.
const CHANNEL: &str = "lockdesk_log";
/// The tail re-reads the end of the log this often, notification or not.
const POLL: Duration = Duration::from_secs(1);
/// A commit, a read or a health check that takes longer fails (the server is unreachable).
const TIMEOUT: Duration = Duration::from_secs(10);
/// The most appends committed in one transaction.
const MAX_GROUP: usize = 512;
/// Pooled read connections (catch-up reads, the live tail, counts).
const READERS: usize = 6;

const ENTRY_COLUMNS: &str = "seq, kind, received_at_ms, event_id, event_type, conversation_id, \
                             visitor_id, operator_ids, payload";

/// Where the store is and how to log in: the URL (`postgres://user@host:port/db`, without a
/// password) and the password, given apart (from a file or the environment).
#[derive(Clone)]
pub struct PgSettings {
    pub url: String,
    pub password: Option<String>,
}

impl std::fmt::Debug for PgSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgSettings")
            .field("url", &self.url)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .finish()
    }
}

impl PgSettings {
    /// The client configuration. A URL that holds a password is refused (it would end up in
    /// process listings, shell histories and logs): the password comes apart.
    pub fn config(&self) -> Result<tokio_postgres::Config, StoreError> {
        if !(self.url.starts_with("postgres://") || self.url.starts_with("postgresql://")) {
            return Err(StoreError::Settings(
                "the store URL must start with postgres:// (postgres://user@host:port/database)"
                    .into(),
            ));
        }
        // Never echo the URL: it may hold a password.
        let mut config = tokio_postgres::Config::from_str(&self.url).map_err(|_| {
            StoreError::Settings(
                "the store URL is not a valid postgres://user@host:port/database URL".into(),
            )
        })?;
        if config.get_password().is_some() {
            return Err(StoreError::Settings(
                "the store URL holds a password: remove it from the URL and give it in \
                 LOCKDESK_PG_PASSWORD or [store] password_file"
                    .into(),
            ));
        }
        if config.get_user().is_none() {
            return Err(StoreError::Settings(
                "the store URL names no user (postgres://user@host:port/database)".into(),
            ));
        }
        if config.get_dbname().is_none() {
            return Err(StoreError::Settings(
                "the store URL names no database (postgres://user@host:port/database)".into(),
            ));
        }
        if let Some(p) = &self.password {
            config.password(p.as_bytes());
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        config
            .application_name("lockdesk-gateway")
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(10));
        Ok(config)
    }
}

fn pg_err(e: tokio_postgres::Error) -> StoreError {
    // A closed connection or a failed connect means the server is away; anything else is a
    // statement that failed (both end in 503 and a retry).
    match e.as_db_error() {
        // The server's own words and SQLSTATE (e.g. 28P01, a wrong password); it never quotes
        // the password.
        Some(db) if !e.is_closed() => {
            StoreError::Postgres(format!("{} ({})", db.message(), db.code().code()))
        }
        _ => StoreError::Unavailable(e.to_string()),
    }
}

fn pool_err(e: deadpool_postgres::PoolError) -> StoreError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => pg_err(e),
        other => StoreError::Unavailable(other.to_string()),
    }
}

enum Item {
    Webhook(NewWebhookEvent),
    Evidence(NewEvidence),
}

struct Op {
    item: Item,
    reply: oneshot::Sender<Result<Appended, StoreError>>,
}

/// The [`EventStore`] on a PostgreSQL database.
pub struct PostgresStore {
    runtime: Option<tokio::runtime::Runtime>,
    pool: Pool,
    writer: Option<mpsc::UnboundedSender<Op>>,
    writer_task: Option<tokio::task::JoinHandle<()>>,
    tail_task: tokio::task::JoinHandle<()>,
    committed: watch::Receiver<u64>,
    log_id: String,
    stop: CancellationToken,
}

impl PostgresStore {
    /// Connects, brings the schema up to date (refusing a database newer than this gateway),
    /// and starts the writer and the tail. Fails when the server cannot be reached.
    pub fn open(settings: &PgSettings) -> Result<PostgresStore, StoreError> {
        let config = settings.config()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("gateway-pg")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Unavailable(format!("cannot start its runtime: {e}")))?;
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(READERS)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(TIMEOUT))
            .create_timeout(Some(TIMEOUT))
            .recycle_timeout(Some(TIMEOUT))
            .build()
            .map_err(|e| StoreError::Settings(e.to_string()))?;
        let (log_id, last) = runtime.block_on(async {
            let mut client = pool.get().await.map_err(pool_err)?;
            migrate(&mut client).await?;
            let row = client
                .query_one(
                    "SELECT log_id, last_seq FROM log_identity, log_head
                     WHERE log_identity.id = 1 AND log_head.id = 1",
                    &[],
                )
                .await
                .map_err(pg_err)?;
            let last: i64 = row.get(1);
            Ok::<_, StoreError>((row.get::<_, String>(0), last as u64))
        })?;
        tracing::info!(log_id, last_seq = last, "gateway log opened (PostgreSQL)");
        let (committed_tx, committed) = watch::channel(last);
        let committed_tx = Arc::new(committed_tx);
        let stop = CancellationToken::new();
        let (tx, rx) = mpsc::unbounded_channel();
        let writer_task = runtime.spawn(writer_loop(Writer {
            config: config.clone(),
            client: None,
            cache: None,
            rx,
            committed: committed_tx.clone(),
            failing: false,
        }));
        let tail_task = runtime.spawn(tail_loop(config, pool.clone(), committed_tx, stop.clone()));
        Ok(PostgresStore {
            runtime: Some(runtime),
            pool,
            writer: Some(tx),
            writer_task: Some(writer_task),
            tail_task,
            committed,
            log_id,
            stop,
        })
    }

    fn block_on<T>(
        &self,
        f: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let runtime = self.runtime.as_ref().ok_or(StoreError::Closed)?;
        runtime.block_on(async {
            tokio::time::timeout(TIMEOUT, f)
                .await
                .unwrap_or_else(|_| Err(StoreError::Unavailable("no answer in time".into())))
        })
    }

    fn append(&self, item: Item) -> Result<Appended, StoreError> {
        check_storable(&item)?;
        let writer = self.writer.as_ref().ok_or(StoreError::Closed)?;
        let (reply, answer) = oneshot::channel();
        writer
            .send(Op { item, reply })
            .map_err(|_| StoreError::Closed)?;
        answer.blocking_recv().map_err(|_| StoreError::Closed)?
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        self.stop.cancel();
        // Closing the channel ends the writer once queued appends are answered.
        self.writer.take();
        let writer = self.writer_task.take();
        if let Some(runtime) = self.runtime.take() {
            // Drop may run on an async thread, where a runtime cannot block or be dropped:
            // finish on a plain thread.
            let done = std::thread::spawn(move || {
                if let Some(w) = writer {
                    let _ = runtime
                        .block_on(async { tokio::time::timeout(TIMEOUT + TIMEOUT, w).await });
                }
                runtime.shutdown_timeout(Duration::from_secs(1));
            });
            let _ = done.join();
        }
    }
}

/// PostgreSQL's text cannot hold NUL: refused before the item joins a group (it would fail the
/// whole group's transaction). The request parsers refuse control characters in ids already;
/// payloads are JSON, where NUL is escaped.
fn check_storable(item: &Item) -> Result<(), StoreError> {
    let has_nul = |s: &str| s.contains('\0');
    let opt = |s: &Option<String>| s.as_deref().is_some_and(has_nul);
    let bad = match item {
        Item::Webhook(e) => {
            has_nul(&e.event_id)
                || has_nul(&e.event_type)
                || opt(&e.correlation_id)
                || opt(&e.delivery_id)
                || opt(&e.conversation_id)
                || opt(&e.visitor_id)
                || has_nul(&e.payload)
        }
        Item::Evidence(e) => {
            has_nul(&e.provider)
                || has_nul(&e.visitor_id)
                || opt(&e.conversation_id)
                || has_nul(&e.payload)
        }
    };
    if bad {
        Err(StoreError::Unstorable)
    } else {
        Ok(())
    }
}

async fn migrate(client: &mut Client) -> Result<(), StoreError> {
    let supported = MIGRATIONS.len() as i64;
    let tx = client.transaction().await.map_err(pg_err)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATE_LOCK])
        .await
        .map_err(pg_err)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS lockdesk_schema (
             id      integer PRIMARY KEY CHECK (id = 1),
             version bigint  NOT NULL
         );
         INSERT INTO lockdesk_schema (id, version) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;",
    )
    .await
    .map_err(pg_err)?;
    let found: i64 = tx
        .query_one("SELECT version FROM lockdesk_schema WHERE id = 1", &[])
        .await
        .map_err(pg_err)?
        .get(0);
    if found > supported {
        return Err(StoreError::SchemaTooNew { found, supported });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found.max(0) as usize) {
        tx.batch_execute(sql).await.map_err(pg_err)?;
        tx.execute(
            "UPDATE lockdesk_schema SET version = $1 WHERE id = 1",
            &[&((i + 1) as i64)],
        )
        .await
        .map_err(pg_err)?;
        tracing::info!(version = i + 1, "gateway database migrated (PostgreSQL)");
    }
    tx.commit().await.map_err(pg_err)?;
    Ok(())
}

/// A dedicated connection (the writer's, the listener's): its driver runs as a task, and
/// notifications, if any, go to `notify`.
async fn connect(
    config: &tokio_postgres::Config,
    notify: Option<mpsc::UnboundedSender<()>>,
) -> Result<Client, StoreError> {
    let (client, mut connection) = config.connect(NoTls).await.map_err(pg_err)?;
    tokio::spawn(async move {
        loop {
            let message = std::future::poll_fn(|cx| connection.poll_message(cx)).await;
            match message {
                Some(Ok(tokio_postgres::AsyncMessage::Notification(_))) => {
                    if let Some(n) = &notify {
                        let _ = n.send(());
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "PostgreSQL connection ended");
                    return;
                }
                None => return,
            }
        }
    });
    Ok(client)
}

struct Writer {
    config: tokio_postgres::Config,
    /// Reconnected on the next group after any failure.
    client: Option<Client>,
    /// The open conversations as of the seq they are valid for: reused while this instance was
    /// the last to append, reloaded from the table otherwise.
    cache: Option<(u64, Visibility)>,
    rx: mpsc::UnboundedReceiver<Op>,
    committed: Arc<watch::Sender<u64>>,
    failing: bool,
}

async fn writer_loop(mut w: Writer) {
    while let Some(first) = w.rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_GROUP {
            match w.rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        let result = match tokio::time::timeout(TIMEOUT, commit_group(&mut w, &batch)).await {
            Ok(r) => r,
            Err(_) => Err(StoreError::Unavailable(
                "the commit got no answer in time".into(),
            )),
        };
        match result {
            Ok((outcomes, last)) => {
                if w.failing {
                    tracing::info!("PostgreSQL commits succeed again");
                    w.failing = false;
                }
                if last > 0 {
                    w.committed.send_if_modified(|c| {
                        let moved = *c < last;
                        *c = (*c).max(last);
                        moved
                    });
                }
                for (op, appended) in batch.into_iter().zip(outcomes) {
                    // A caller that went away (request cancelled) is fine: the entry is stored.
                    let _ = op.reply.send(Ok(appended));
                }
            }
            Err(e) => {
                // Whether it committed is unknown (an answer lost with the connection): the
                // senders retry, and a retried webhook is found by its eventId.
                w.client = None;
                w.cache = None;
                if !w.failing {
                    tracing::error!(error = %e, appends = batch.len(), "PostgreSQL commit failed");
                }
                w.failing = true;
                let msg = e.to_string();
                for op in batch {
                    let _ = op.reply.send(Err(match &e {
                        StoreError::Unavailable(_) => StoreError::Unavailable(msg.clone()),
                        _ => StoreError::Commit(msg.clone()),
                    }));
                }
            }
        }
    }
}

/// One new entry of a group, as it will be inserted.
struct Planned<'a> {
    seq: i64,
    op: &'a Op,
    audience: Audience,
}

/// Applies `batch` in one transaction under the append lock; returns each op's outcome and the
/// last seq inserted (0 when none).
async fn commit_group(w: &mut Writer, batch: &[Op]) -> Result<(Vec<Appended>, u64), StoreError> {
    if w.client.as_ref().is_none_or(|c| c.is_closed()) {
        w.client = Some(connect(&w.config, None).await?);
    }
    let client = w.client.as_mut().ok_or(StoreError::Closed)?;
    let tx = client.transaction().await.map_err(pg_err)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&APPEND_LOCK])
        .await
        .map_err(pg_err)?;
    let head = tx
        .query_one(
            "SELECT last_seq, webhook_events, evidence FROM log_head WHERE id = 1",
            &[],
        )
        .await
        .map_err(pg_err)?;
    let head_seq: i64 = head.get(0);
    let mut webhook_events: i64 = head.get(1);
    let mut evidence: i64 = head.get(2);
    // The routing state as of head_seq: ours if we wrote last, else the table's.
    let mut visibility = match w.cache.take() {
        Some((seq, v)) if seq == head_seq as u64 => v,
        _ => {
            let rows = tx
                .query(
                    "SELECT conversation_id, owners, visitor_id FROM open_conversations",
                    &[],
                )
                .await
                .map_err(pg_err)?;
            Visibility::restore(rows.into_iter().map(|r| {
                let owners: Vec<i64> = r.get(1);
                (
                    r.get::<_, String>(0),
                    owners.into_iter().map(|o| o as u64).collect(),
                    r.get::<_, Option<String>>(2),
                )
            }))
        }
    };
    // Webhooks already stored (retries, or the same delivery through another instance).
    let ids: Vec<&str> = batch
        .iter()
        .filter_map(|op| match &op.item {
            Item::Webhook(e) => Some(e.event_id.as_str()),
            Item::Evidence(_) => None,
        })
        .collect();
    let mut existing: std::collections::HashMap<String, u64> = if ids.is_empty() {
        Default::default()
    } else {
        tx.query(
            "SELECT event_id, seq FROM entries WHERE event_id = ANY($1)",
            &[&ids],
        )
        .await
        .map_err(pg_err)?
        .into_iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1) as u64))
        .collect()
    };
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut planned = Vec::new();
    let mut next = head_seq;
    let mut changed_conversations = Vec::new();
    for op in batch {
        let fields = match &op.item {
            Item::Webhook(e) => {
                if let Some(&seq) = existing.get(&e.event_id) {
                    outcomes.push(Appended {
                        seq,
                        inserted: false,
                    });
                    continue;
                }
                RoutingFields {
                    is_evidence: false,
                    event_type: Some(&e.event_type),
                    conversation_id: e.conversation_id.as_deref(),
                    visitor_id: e.visitor_id.as_deref(),
                    operator_ids: &e.operator_ids,
                }
            }
            Item::Evidence(e) => RoutingFields {
                is_evidence: true,
                event_type: None,
                conversation_id: e.conversation_id.as_deref(),
                visitor_id: Some(&e.visitor_id),
                operator_ids: &[],
            },
        };
        next += 1;
        let audience = visibility.route(fields);
        if let (false, Some(t), Some(c)) = (
            fields.is_evidence,
            fields.event_type,
            fields.conversation_id,
        ) {
            if t == PUSHED || t == CLOSED {
                changed_conversations.push(c.to_owned());
            }
        }
        match &op.item {
            Item::Webhook(e) => {
                existing.insert(e.event_id.clone(), next as u64);
                webhook_events += 1;
            }
            Item::Evidence(_) => evidence += 1,
        }
        outcomes.push(Appended {
            seq: next as u64,
            inserted: true,
        });
        planned.push(Planned {
            seq: next,
            op,
            audience,
        });
    }
    if !planned.is_empty() {
        insert_planned(&tx, &planned).await?;
        // Write back the open conversations this group changed (last state of each).
        changed_conversations.sort();
        changed_conversations.dedup();
        let mut upsert_ids = Vec::new();
        let mut upsert_visitors = Vec::new();
        let mut upsert_owners = Vec::new();
        let mut closed = Vec::new();
        for c in changed_conversations {
            match visibility.conversation(&c) {
                Some((owners, visitor)) => {
                    upsert_owners.push(
                        serde_json::to_string(
                            &owners.iter().map(|&o| o as i64).collect::<Vec<_>>(),
                        )
                        .unwrap_or_else(|_| "[]".into()),
                    );
                    upsert_visitors.push(visitor.map(str::to_owned));
                    upsert_ids.push(c);
                }
                None => closed.push(c),
            }
        }
        if !closed.is_empty() {
            tx.execute(
                "DELETE FROM open_conversations WHERE conversation_id = ANY($1)",
                &[&closed],
            )
            .await
            .map_err(pg_err)?;
        }
        if !upsert_ids.is_empty() {
            // Owners travel as JSON arrays (unnest cannot take an array of arrays).
            tx.execute(
                "INSERT INTO open_conversations (conversation_id, visitor_id, owners)
                 SELECT c, v, ARRAY(SELECT jsonb_array_elements_text(o::jsonb)::bigint)
                 FROM unnest($1::text[], $2::text[], $3::text[]) AS u(c, v, o)
                 ON CONFLICT (conversation_id) DO UPDATE
                 SET visitor_id = EXCLUDED.visitor_id, owners = EXCLUDED.owners",
                &[&upsert_ids, &upsert_visitors, &upsert_owners],
            )
            .await
            .map_err(pg_err)?;
        }
        tx.execute(
            "UPDATE log_head SET last_seq = $1, webhook_events = $2, evidence = $3 WHERE id = 1",
            &[&next, &webhook_events, &evidence],
        )
        .await
        .map_err(pg_err)?;
        // Delivered at commit: a wake-up for the other instances' tails (never relied on).
        tx.execute(&format!("NOTIFY {CHANNEL}"), &[])
            .await
            .map_err(pg_err)?;
    }
    tx.commit().await.map_err(pg_err)?;
    w.cache = Some((next as u64, visibility));
    let last = if planned.is_empty() { 0 } else { next as u64 };
    Ok((outcomes, last))
}

/// Inserts the planned entries and their audiences, a few statements for the whole group.
async fn insert_planned(
    tx: &tokio_postgres::Transaction<'_>,
    planned: &[Planned<'_>],
) -> Result<(), StoreError> {
    let n = planned.len();
    let mut seq = Vec::with_capacity(n);
    let mut kind = Vec::with_capacity(n);
    let mut received = Vec::with_capacity(n);
    let mut event_id: Vec<Option<&str>> = Vec::with_capacity(n);
    let mut event_type: Vec<Option<&str>> = Vec::with_capacity(n);
    let mut correlation: Vec<Option<&str>> = Vec::with_capacity(n);
    let mut delivery: Vec<Option<&str>> = Vec::with_capacity(n);
    let mut provider: Vec<Option<&str>> = Vec::with_capacity(n);
    let mut conversation: Vec<Option<&str>> = Vec::with_capacity(n);
    let mut visitor: Vec<Option<&str>> = Vec::with_capacity(n);
    let mut operators = Vec::with_capacity(n);
    let mut payload: Vec<&str> = Vec::with_capacity(n);
    let mut aud_op = Vec::new();
    let mut aud_seq = Vec::new();
    let mut aud_related = Vec::new();
    for p in planned {
        seq.push(p.seq);
        match &p.op.item {
            Item::Webhook(e) => {
                kind.push("webhook");
                received.push(e.received_at_ms);
                event_id.push(Some(&e.event_id));
                event_type.push(Some(&e.event_type));
                correlation.push(e.correlation_id.as_deref());
                delivery.push(e.delivery_id.as_deref());
                provider.push(None);
                conversation.push(e.conversation_id.as_deref());
                visitor.push(e.visitor_id.as_deref());
                operators.push(
                    serde_json::to_string(&e.operator_ids).unwrap_or_else(|_| "[]".to_owned()),
                );
                payload.push(&e.payload);
            }
            Item::Evidence(e) => {
                kind.push("evidence");
                received.push(e.received_at_ms);
                event_id.push(None);
                event_type.push(None);
                correlation.push(None);
                delivery.push(None);
                provider.push(Some(&e.provider));
                conversation.push(e.conversation_id.as_deref());
                visitor.push(Some(&e.visitor_id));
                operators.push("[]".to_owned());
                payload.push(&e.payload);
            }
        }
        for &op in &p.audience.operators {
            aud_op.push(op as i64);
            aud_seq.push(p.seq);
            aud_related.push(p.audience.related.binary_search(&op).is_ok());
        }
    }
    // ON CONFLICT: a guard only (the lookup under the lock found none); a conflict fails the
    // group rather than acknowledging an entry that is not there.
    let inserted = tx
        .execute(
            "INSERT INTO entries (seq, kind, received_at_ms, event_id, event_type, correlation_id,
                 delivery_id, provider, conversation_id, visitor_id, operator_ids, payload)
             SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[], $5::text[],
                 $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[],
                 $12::text[])
             ON CONFLICT (event_id) DO NOTHING",
            &[
                &seq,
                &kind,
                &received,
                &event_id,
                &event_type,
                &correlation,
                &delivery,
                &provider,
                &conversation,
                &visitor,
                &operators,
                &payload,
            ],
        )
        .await
        .map_err(pg_err)?;
    if inserted != n as u64 {
        return Err(StoreError::Commit(format!(
            "{} of {n} entries were already stored by an append outside the lock",
            n as u64 - inserted
        )));
    }
    if !aud_op.is_empty() {
        tx.execute(
            "INSERT INTO audience (operator_id, seq, related)
             SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::boolean[])",
            &[&aud_op, &aud_seq, &aud_related],
        )
        .await
        .map_err(pg_err)?;
    }
    Ok(())
}

/// Keeps `committed` at the end of the log as any instance extends it: woken by NOTIFY on a
/// dedicated connection, and re-reading `log_head` every [`POLL`] and after every reconnect.
async fn tail_loop(
    config: tokio_postgres::Config,
    pool: Pool,
    committed: Arc<watch::Sender<u64>>,
    stop: CancellationToken,
) {
    let refresh = |pool: Pool, committed: Arc<watch::Sender<u64>>| async move {
        let client = pool.get().await.map_err(pool_err)?;
        let row = client
            .query_one("SELECT last_seq FROM log_head WHERE id = 1", &[])
            .await
            .map_err(pg_err)?;
        let last = row.get::<_, i64>(0) as u64;
        committed.send_if_modified(|c| {
            let moved = *c < last;
            *c = (*c).max(last);
            moved
        });
        Ok::<_, StoreError>(())
    };
    let mut ticker = tokio::time::interval(POLL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut listener: Option<(Client, mpsc::UnboundedReceiver<()>)> = None;
    let mut warned = false;
    loop {
        if listener.as_ref().is_none_or(|(c, _)| c.is_closed()) {
            listener = None;
            let (tx, rx) = mpsc::unbounded_channel();
            if let Ok(Ok(client)) = tokio::time::timeout(TIMEOUT, connect(&config, Some(tx))).await
            {
                if client
                    .batch_execute(&format!("LISTEN {CHANNEL}"))
                    .await
                    .is_ok()
                {
                    listener = Some((client, rx));
                    // Whatever was committed while nobody listened.
                    let _ = tokio::time::timeout(TIMEOUT, refresh(pool.clone(), committed.clone()))
                        .await;
                }
            }
        }
        let woken = async {
            match listener.as_mut() {
                Some((_, rx)) => {
                    if rx.recv().await.is_none() {
                        // The listener's connection ended: reconnect at the next turn.
                        std::future::pending::<()>().await;
                    }
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = woken => {
                if let Some((_, rx)) = listener.as_mut() {
                    while rx.try_recv().is_ok() {}
                }
            }
            _ = ticker.tick() => {}
        }
        match tokio::time::timeout(TIMEOUT, refresh(pool.clone(), committed.clone())).await {
            Ok(Ok(())) => warned = false,
            Ok(Err(e)) if !warned => {
                tracing::warn!(error = %e, "feed tail: cannot read the end of the log; retrying");
                warned = true;
            }
            _ => {}
        }
    }
}

fn to_entry(row: &Row) -> Result<StoredEntry, StoreError> {
    let seq = row.get::<_, i64>(0) as u64;
    let kind = match row.get::<_, &str>(1) {
        "webhook" => EntryKind::Webhook,
        "evidence" => EntryKind::Evidence,
        other => {
            return Err(StoreError::Corrupt {
                seq,
                detail: format!("unknown kind {other:?}"),
            })
        }
    };
    let ops: &str = row.get(7);
    Ok(StoredEntry {
        seq,
        kind,
        received_at_ms: row.get(2),
        event_id: row.get(3),
        event_type: row.get(4),
        conversation_id: row.get(5),
        visitor_id: row.get(6),
        operator_ids: serde_json::from_str(ops).map_err(|e| StoreError::Corrupt {
            seq,
            detail: format!("operator_ids: {e}"),
        })?,
        payload: row.get(8),
    })
}

fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

async fn entries_after(
    client: &Client,
    after: u64,
    limit: usize,
) -> Result<Vec<StoredEntry>, StoreError> {
    let rows = client
        .query(
            &format!("SELECT {ENTRY_COLUMNS} FROM entries WHERE seq > $1 ORDER BY seq LIMIT $2"),
            &[&clamp(after), &clamp(limit as u64)],
        )
        .await
        .map_err(pg_err)?;
    rows.iter().map(to_entry).collect()
}

/// The evidence of the push's visitor (or naming its conversation) stored before it: the last
/// [`lockdesk_feed::MAX_RELATED`], oldest first.
async fn related_evidence(
    client: &Client,
    push: &StoredEntry,
) -> Result<Vec<StoredEntry>, StoreError> {
    let rows = client
        .query(
            &format!(
                "SELECT {ENTRY_COLUMNS} FROM entries WHERE seq IN (
                     (SELECT seq FROM entries
                      WHERE kind = 'evidence' AND visitor_id = $1 AND seq < $3
                      UNION
                      SELECT seq FROM entries
                      WHERE kind = 'evidence' AND conversation_id = $2 AND seq < $3)
                     ORDER BY seq DESC LIMIT $4)
                 ORDER BY seq"
            ),
            &[
                &push.visitor_id,
                &push.conversation_id,
                &clamp(push.seq),
                &(lockdesk_feed::MAX_RELATED as i64),
            ],
        )
        .await
        .map_err(pg_err)?;
    rows.iter().map(to_entry).collect()
}

async fn last_seq(client: &Client) -> Result<u64, StoreError> {
    let row = client
        .query_one("SELECT last_seq FROM log_head WHERE id = 1", &[])
        .await
        .map_err(pg_err)?;
    Ok(row.get::<_, i64>(0) as u64)
}

impl EventStore for PostgresStore {
    fn append_webhook(&self, event: NewWebhookEvent) -> Result<Appended, StoreError> {
        self.append(Item::Webhook(event))
    }

    fn append_evidence(&self, evidence: NewEvidence) -> Result<u64, StoreError> {
        self.append(Item::Evidence(evidence)).map(|a| a.seq)
    }

    fn read_after(&self, after: u64, limit: usize) -> Result<Vec<StoredEntry>, StoreError> {
        self.block_on(async {
            let client = self.pool.get().await.map_err(pool_err)?;
            entries_after(&client, after, limit).await
        })
    }

    fn counts(&self) -> Result<Counts, StoreError> {
        // One row, whatever the log's size; asks the server, so a health check is truthful.
        if self.writer_task.as_ref().is_none_or(|t| t.is_finished()) || self.tail_task.is_finished()
        {
            return Err(StoreError::Closed);
        }
        self.block_on(async {
            let client = self.pool.get().await.map_err(pool_err)?;
            let row = client
                .query_one(
                    "SELECT last_seq, webhook_events, evidence FROM log_head WHERE id = 1",
                    &[],
                )
                .await
                .map_err(pg_err)?;
            Ok(Counts {
                last_seq: row.get::<_, i64>(0) as u64,
                webhook_events: row.get::<_, i64>(1) as u64,
                evidence: row.get::<_, i64>(2) as u64,
            })
        })
    }

    fn log_id(&self) -> &str {
        &self.log_id
    }

    fn committed(&self) -> watch::Receiver<u64> {
        self.committed.clone()
    }

    fn read_routed_after(&self, after: u64, limit: usize) -> Result<Vec<RoutedEntry>, StoreError> {
        self.block_on(async {
            let client = self.pool.get().await.map_err(pool_err)?;
            // Entries at or below a committed seq are all committed (the append lock), and an
            // entry's audience commits with it: no snapshot needed.
            let entries = entries_after(&client, after, limit).await?;
            let Some(last) = entries.last().map(|e| e.seq) else {
                return Ok(Vec::new());
            };
            let mut audiences: std::collections::HashMap<u64, Audience> = Default::default();
            for row in client
                .query(
                    "SELECT seq, operator_id, related FROM audience WHERE seq > $1 AND seq <= $2
                     ORDER BY seq, operator_id",
                    &[&clamp(after), &clamp(last)],
                )
                .await
                .map_err(pg_err)?
            {
                let a = audiences.entry(row.get::<_, i64>(0) as u64).or_default();
                let op = row.get::<_, i64>(1) as u64;
                a.operators.push(op);
                if row.get::<_, bool>(2) {
                    a.related.push(op);
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
                    related_evidence(&client, &entry).await?
                };
                out.push(RoutedEntry {
                    entry,
                    audience,
                    related,
                });
            }
            Ok(out)
        })
    }

    fn read_feed(
        &self,
        after: u64,
        filter: FeedFilter<'_>,
        limit: usize,
    ) -> Result<FeedPage, StoreError> {
        let limit = limit.max(1);
        self.block_on(async {
            let client = self.pool.get().await.map_err(pool_err)?;
            // The end of the log first: everything up to it is committed, so a page that is not
            // full has considered every entry up to it (later commits are the next read's).
            let end = last_seq(&client).await?;
            let items = match filter {
                FeedFilter::All => entries_after(&client, after, limit)
                    .await?
                    .into_iter()
                    .filter(|e| e.seq <= end)
                    .map(|entry| FeedItem {
                        entry,
                        related: Vec::new(),
                    })
                    .collect::<Vec<_>>(),
                FeedFilter::Operators([]) => Vec::new(),
                FeedFilter::Operators(ops) => {
                    let ops: Vec<i64> = ops.iter().map(|&o| o as i64).collect();
                    let seqs: Vec<(i64, bool)> = client
                        .query(
                            "SELECT seq, bool_or(related) FROM audience
                             WHERE operator_id = ANY($1) AND seq > $2 AND seq <= $3
                             GROUP BY seq ORDER BY seq LIMIT $4",
                            &[&ops, &clamp(after), &clamp(end), &clamp(limit as u64)],
                        )
                        .await
                        .map_err(pg_err)?
                        .into_iter()
                        .map(|r| (r.get(0), r.get(1)))
                        .collect();
                    let wanted: Vec<i64> = seqs.iter().map(|s| s.0).collect();
                    let rows = client
                        .query(
                            &format!(
                                "SELECT {ENTRY_COLUMNS} FROM entries WHERE seq = ANY($1)
                                 ORDER BY seq"
                            ),
                            &[&wanted],
                        )
                        .await
                        .map_err(pg_err)?;
                    if rows.len() != seqs.len() {
                        return Err(StoreError::Corrupt {
                            seq: after,
                            detail: "audience row without its entry".into(),
                        });
                    }
                    let mut items = Vec::with_capacity(seqs.len());
                    for (row, (_, with_related)) in rows.iter().zip(&seqs) {
                        let entry = to_entry(row)?;
                        let related = if *with_related {
                            related_evidence(&client, &entry).await?
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
                _ => end.max(after),
            };
            Ok(FeedPage { items, scanned_to })
        })
    }
}
