//! The PostgreSQL [`EventStore`]: one database shared by several gateway instances (ARCHITECTURE.md,
//! "Multi-instance deployments").
//!
//! Appends from this instance are committed in groups by one writer task on its own connection
//! (every append waiting when a commit starts shares it). Each group's transaction first takes a
//! transaction-scoped advisory lock ([`APPEND_LOCK`]), so appends from every instance are
//! serialised: the next seq is `log_head.last_seq + 1` as it stands under the lock, the sequence is
//! gapless and follows commit order (a transaction releases the lock only after its commit is
//! visible). Each entry is stored once per `eventId` (two instances receiving the same delivery at
//! once store it once: looked up under the lock, or refused by the unique index), routed with
//! `routing`'s pure logic on the open conversations (kept in a table; each writer routes on its
//! copy, which a guard under the lock proves current for what the group read, or brings up to
//! date first), with its audience stored, and the other instances are NOTIFYed. Reads use a small
//! pool.
//!
//! The tail (`committed()`) is woken by LISTEN/NOTIFY but never depends on it: it also re-reads
//! `log_head` every [`POLL`] and after (re)connecting its listener.
//!
//! The store owns a small tokio runtime: its methods block (the trait's contract, called through
//! `spawn_blocking`) and tokio-postgres/deadpool are async.
//!
//! Every connection (the writer's, the listener's, the pooled readers') is made from one
//! [`PgConnect`]: the URL's `sslmode` and the CA decide its TLS (pg_tls.rs).
//!
//! Must not: answer an append before its transaction has committed; hand out a seq outside the
//! append lock; log the password (it is never in the URL: refused there).

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use futures_util::future::{join_all, try_join_all};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Row, Statement};
use tokio_util::sync::CancellationToken;

use super::pg_tls::{self, PgConnect, TlsPolicy, TrustRoots};
use super::{
    Appended, Counts, EntryKind, EventStore, FeedFilter, FeedItem, FeedPage, NewEvidence,
    NewWebhookEvent, RoutedEntry, StoreError, StoredEntry,
};
use crate::routing::{Audience, Reads, RoutingFields, Visibility, CLOSED, PUSHED};

/// Versioned migrations (migrations/postgres/NNNN_*.sql): entry `i` brings the schema version
/// from `i` to `i + 1`. Never edit a released file; add the next one.
const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/postgres/0001_log.sql"),
    include_str!("../../migrations/postgres/0002_conversation_deltas.sql"),
];

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

/// The log's id and its last seq (a migrated database's, or one this store opens).
pub(super) const LOG_ID_AND_END: &str = "SELECT log_id, last_seq FROM log_identity, log_head
     WHERE log_identity.id = 1 AND log_head.id = 1";

/// Where the store is and how to log in: the URL (`postgres://user@host:port/db`, without a
/// password, with `sslmode` and `sslrootcert` if need be), the password, given apart (from a
/// file or the environment), and the CA file that verifies the server (`[store] ca_file`).
#[derive(Clone)]
pub struct PgSettings {
    pub url: String,
    pub password: Option<String>,
    pub ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for PgSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgSettings")
            .field("url", &self.url)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

impl PgSettings {
    /// The client configuration (its `sslmode` as tokio-postgres knows it), the TLS settings
    /// checked. A URL that holds a password is refused (it would end up in process listings,
    /// shell histories and logs): the password comes apart.
    pub fn config(&self) -> Result<tokio_postgres::Config, StoreError> {
        Ok(self.config_and_tls()?.0)
    }

    /// How the store connects: the client configuration and the TLS connector (reads the CA
    /// file: blocking file I/O).
    pub fn connector(&self) -> Result<PgConnect, StoreError> {
        let (config, policy) = self.config_and_tls()?;
        PgConnect::new(config, policy)
    }

    fn config_and_tls(&self) -> Result<(tokio_postgres::Config, TlsPolicy), StoreError> {
        if !(self.url.starts_with("postgres://") || self.url.starts_with("postgresql://")) {
            return Err(StoreError::Settings(
                "the store URL must start with postgres:// (postgres://user@host:port/database)"
                    .into(),
            ));
        }
        // Never echo the URL: it may hold a password.
        let tls = pg_tls::take_url_params(&self.url)?;
        let mut config = tokio_postgres::Config::from_str(&tls.rest).map_err(|_| {
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
        let roots = match (&self.ca_file, tls.root_cert) {
            (Some(_), Some(_)) => {
                return Err(StoreError::Settings(
                    "the CA file is given twice ([store] ca_file and the URL's sslrootcert): \
                     keep one"
                        .into(),
                ))
            }
            (Some(file), None) => TrustRoots::File(file.clone()),
            (None, Some(root)) if root == "system" => TrustRoots::System,
            (None, Some(root)) => TrustRoots::File(PathBuf::from(root)),
            (None, None) => TrustRoots::Unset,
        };
        let policy = TlsPolicy::decide(&config, tls.mode, roots)?;
        config.ssl_mode(policy.wire_mode());
        Ok((config, policy))
    }
}

/// The pooled readers' configuration: the store's, with sequential scans priced out. Every read
/// of the log goes by an index (the entries' and audiences' seqs, the evidence's partial
/// indexes, `log_head`'s key), but a prepared statement's generic plan is costed on the
/// statistics of the moment it is made: on a table that grew faster than autovacuum analysed it
/// (a new database taking a burst), the tail's read was planned as a sequential scan of every
/// entry and stayed so until the next analyse (measured: ~48 ms a read at 120,000 entries, feed
/// p99 above 100 ms). With `enable_seqscan = off` the plan is the index whatever the statistics
/// say.
fn reader_config(config: &tokio_postgres::Config) -> tokio_postgres::Config {
    let mut readers = config.clone();
    let options = match config.get_options() {
        Some(given) if !given.trim().is_empty() => format!("{given} -c enable_seqscan=off"),
        _ => "-c enable_seqscan=off".to_owned(),
    };
    readers.options(&options);
    readers
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
        // A TLS failure said plainly (no TLS offered, the wrong CA, the wrong host name).
        _ => StoreError::Unavailable(pg_tls::describe(&e).unwrap_or_else(|| e.to_string())),
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
    stats: Arc<StatCounters>,
}

impl PostgresStore {
    /// Connects, brings the schema up to date (refusing a database newer than this gateway),
    /// and starts the writer and the tail. Fails when the server cannot be reached.
    pub fn open(settings: &PgSettings) -> Result<PostgresStore, StoreError> {
        let config = settings.connector()?;
        config.policy().log();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("gateway-pg")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Unavailable(format!("cannot start its runtime: {e}")))?;
        let manager = Manager::from_config(
            reader_config(config.config()),
            config.tls(),
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
                .query_one(LOG_ID_AND_END, &[])
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
        let stats = Arc::new(StatCounters::default());
        let writer_task = runtime.spawn(writer_loop(Writer {
            stats: stats.clone(),
            config: config.clone(),
            conn: None,
            cache: None,
            rx,
            committed: committed_tx.clone(),
            failing: false,
            refusals: Refusals::default(),
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
            stats,
        })
    }

    /// How this instance's groups were committed so far (one or two round trips, and why a
    /// one-round-trip group was redone).
    pub fn writer_stats(&self) -> WriterStats {
        self.stats.get()
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
/// notifications, if any, go to `notify` with the end of the log they announce (`None` when the
/// payload is not a seq: then the tail reads the end of the log itself).
async fn connect(
    config: &PgConnect,
    notify: Option<mpsc::UnboundedSender<Option<u64>>>,
) -> Result<Client, StoreError> {
    let (client, mut connection) = config.connect().await.map_err(pg_err)?;
    tokio::spawn(async move {
        loop {
            let message = std::future::poll_fn(|cx| connection.poll_message(cx)).await;
            match message {
                Some(Ok(tokio_postgres::AsyncMessage::Notification(n))) => {
                    if let Some(tx) = &notify {
                        let _ = tx.send(parse_seq(n.payload()));
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
    config: PgConnect,
    /// Reconnected (and its statements prepared again) on the next group after any failure.
    conn: Option<WriterConn>,
    /// The open conversations as of the seq they are valid for: a group is routed on it (the
    /// guard proving what it read unchanged, [`commit_one_trip`]) and it is brought up to date
    /// with what the others changed since (open_conversations.changed_seq,
    /// closed_conversations), reloaded whole when that is not known (see [`delta_applies`]).
    cache: Option<(u64, Visibility)>,
    rx: mpsc::UnboundedReceiver<Op>,
    committed: Arc<watch::Sender<u64>>,
    failing: bool,
    stats: Arc<StatCounters>,
    /// Which of this writer's recent groups had their one-round-trip attempt refused: decides
    /// whether the next attempt is worth it ([`Refusals::try_one_trip`]).
    refusals: Refusals,
}

/// The last [`Refusals::WINDOW`] groups of this writer, newest in bit 0: set when the group's
/// one-round-trip attempt was refused because another instance had changed, since this writer's
/// copy, a conversation or visitor the group read.
///
/// A one-round-trip group saves one round trip when it succeeds and costs a rolled-back
/// transaction plus the two-round-trip group when it is refused: while the instances keep
/// changing the same conversations (a visitor's evidence and its conversation's transfers
/// arriving on both at once) most attempts are refused. So it is tried only while at most
/// [`Refusals::TOLERATED`] of the recent groups were refused; a group sent in two round trips
/// without an attempt counts as not refused, so attempts resume after a few groups. A guess
/// either way is only ever a cost: the guard, under the lock, is what keeps the seqs and the
/// audiences exact.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Refusals(u16);

impl Refusals {
    const WINDOW: u32 = 8;
    const TOLERATED: u32 = 2;

    fn record(&mut self, refused: bool) {
        let mask = (1u16 << Self::WINDOW) - 1;
        self.0 = ((self.0 << 1) | u16::from(refused)) & mask;
    }

    fn try_one_trip(self) -> bool {
        self.0.count_ones() <= Self::TOLERATED
    }
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
                // senders retry, and a retried webhook is found by its eventId. The connection
                // is dropped (the server rolls back whatever it had not committed).
                w.conn = None;
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

/// How far back (in seqs) a closed conversation's tombstone is kept: an instance whose copy of
/// the open conversations is older than this reloads the whole table instead of the deltas.
const TOMBSTONE_KEEP: i64 = 1 << 20;

/// The unique constraint on `entries.event_id` (0001_log.sql, PostgreSQL's default name): the
/// one-round-trip group meets a stored `eventId` there.
const EVENT_ID_UNIQUE: &str = "entries_event_id_key";

/// True only inside the transaction block of a group: the lock statement sets it with
/// `set_config(..., is_local => true)`, which lasts until the end of the transaction. The
/// one-round-trip group's statements are sent at once; should its `BEGIN` fail with the
/// connection still up, each later statement would run in a transaction of its own, without the
/// lock. So every statement that writes the log checks it: the writes divide by it (SQLSTATE
/// 22012 outside a group: nothing is written, the group fails) and the head's updates match no
/// row without it.
macro_rules! in_group {
    () => {
        "coalesce(current_setting('lockdesk.append', true) = 'locked', false)"
    };
}

/// The shift of a group's planned seqs (see the writes' SQL), `$n` being the planned end: fails
/// outside a group's transaction ([`in_group!`]).
macro_rules! shift_after {
    ($n:literal) => {
        concat!(
            "CROSS JOIN (SELECT (last_seq - ",
            $n,
            ") / ",
            in_group!(),
            "::int AS shift FROM log_head WHERE id = 1) h"
        )
    };
}

/// The writer's statements, in [`WriterConn::open`]'s order.
const WRITER_SQL: [&str; 16] = [
    "BEGIN",
    "COMMIT",
    "SELECT pg_advisory_xact_lock($1), set_config('lockdesk.append', 'locked', true)",
    "SELECT last_seq, webhook_events, evidence, delta_seq, delta_since FROM log_head WHERE id = 1",
    "SELECT event_id, seq FROM entries WHERE event_id = ANY($1)",
    // What the other instances changed after our copy: closed first (`true`), then open. Only
    // used for a copy at most $2 (TOMBSTONE_KEEP) behind the end of the log, so the upper bound
    // loses nothing; it is there for the planner: a prepared statement's generic plan estimates
    // a one-sided range at a third of the table (a sequential scan of every open conversation),
    // a two-sided one at 0.5% (the index on the seq, reading only what changed).
    "SELECT conversation_id, NULL::bigint[], NULL::text, true FROM closed_conversations
     WHERE closed_seq > $1 AND closed_seq <= $1 + $2
     UNION ALL
     SELECT conversation_id, owners, visitor_id, false FROM open_conversations
     WHERE changed_seq > $1 AND changed_seq <= $1 + $2",
    "SELECT conversation_id, owners, visitor_id FROM open_conversations",
    // No ON CONFLICT: the lookup under the lock found none, so a conflict means an append outside
    // the lock; it fails (and rolls back) the group rather than acknowledging what is not there.
    // In the one-round-trip group there is no lookup: a stored eventId fails it here
    // ([`EVENT_ID_UNIQUE`]) and the group is redone in two round trips.
    //
    // The writes take the seqs as planned after `$planned` (the last parameter) and add how far
    // the end of the log is past it: 0 when the group read the end of the log under the lock
    // (two round trips), the other instances' entries since this writer's copy otherwise (one
    // round trip: the guard made sure they changed nothing the group read).
    concat!(
        "INSERT INTO entries (seq, kind, received_at_ms, event_id, event_type, correlation_id,
         delivery_id, provider, conversation_id, visitor_id, operator_ids, payload)
     SELECT u.seq + h.shift, u.kind, u.received, u.event_id, u.event_type, u.correlation,
         u.delivery, u.provider, u.conversation, u.visitor, u.operators, u.payload
     FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[],
         $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[])
         AS u(seq, kind, received, event_id, event_type, correlation, delivery, provider,
              conversation, visitor, operators, payload) ",
        shift_after!("$13")
    ),
    concat!(
        "INSERT INTO audience (operator_id, seq, related)
     SELECT u.op, u.seq + h.shift, u.related
     FROM unnest($1::bigint[], $2::bigint[], $3::boolean[]) AS u(op, seq, related) ",
        shift_after!("$4")
    ),
    concat!(
        "WITH gone AS (DELETE FROM open_conversations WHERE conversation_id = ANY($1::text[]))
     INSERT INTO closed_conversations (conversation_id, closed_seq)
     SELECT c, $2 + h.shift FROM unnest($1::text[]) AS c ",
        shift_after!("$3"),
        "
     ON CONFLICT (conversation_id) DO UPDATE SET closed_seq = EXCLUDED.closed_seq"
    ),
    "DELETE FROM closed_conversations WHERE closed_seq <= $1",
    // Owners travel as array literals ('{1,2}': unnest cannot take an array of arrays).
    concat!(
        "INSERT INTO open_conversations (conversation_id, visitor_id, owners, changed_seq)
     SELECT c, v, o::bigint[], $4 + h.shift FROM unnest($1::text[], $2::text[], $3::text[])
         AS u(c, v, o) ",
        shift_after!("$5"),
        "
     ON CONFLICT (conversation_id) DO UPDATE
     SET visitor_id = EXCLUDED.visitor_id, owners = EXCLUDED.owners,
         changed_seq = EXCLUDED.changed_seq"
    ),
    concat!(
        "UPDATE log_head SET last_seq = $1, webhook_events = $2, evidence = $3, delta_seq = $1,
         delta_since = $4
     WHERE id = 1 AND ",
        in_group!()
    ),
    // Delivered at commit: a wake-up for the other instances' tails, with the new end of the
    // log (never relied on: they also poll). Sent after the head's update.
    "SELECT pg_notify('lockdesk_log', last_seq::text) FROM log_head WHERE id = 1",
    // The one-round-trip group's guard, right after the lock: answers the end of the log, or
    // fails (division by zero, SQLSTATE 22012; a row value, so the planner cannot fold it)
    // unless the copy of the open conversations the group was routed on ($1, the seq it is
    // valid at) can stand for the current state: every appender since kept the deltas (as
    // [`delta_applies`]), and none of them changed a conversation the group read or wrote
    // ($2) or a conversation of a visitor it read ($3) after the copy (no newer open row, no
    // newer tombstone; both ranges bounded above for the planner, as in the deltas' statement).
    // A missing log_head row answers nothing: the writes then fail.
    "SELECT h.last_seq / (h.delta_seq = h.last_seq AND $1 <= h.last_seq
             AND $1 >= h.delta_since AND h.last_seq - $1 <= $4
             AND NOT EXISTS (SELECT 1 FROM open_conversations o
                 WHERE o.changed_seq > $1 AND o.changed_seq <= $1 + $4
                   AND (o.conversation_id = ANY($2::text[]) OR o.visitor_id = ANY($3::text[])))
             AND NOT EXISTS (SELECT 1 FROM closed_conversations c
                 WHERE c.closed_seq > $1 AND c.closed_seq <= $1 + $4
                   AND c.conversation_id = ANY($2::text[])))::int
     FROM log_head h WHERE h.id = 1",
    // The one-round-trip group's head: `$1` entries more, the counts as increments (it did not
    // read them); delta_since stays (the guard saw delta_seq = last_seq).
    concat!(
        "UPDATE log_head SET last_seq = last_seq + $1, webhook_events = webhook_events + $2,
         evidence = evidence + $3, delta_seq = last_seq + $1
     WHERE id = 1 AND ",
        in_group!()
    ),
];

/// The writer's connection and its statements, prepared once per connection. A group costs one
/// round trip when routed on the writer's copy of the open conversations ([`commit_one_trip`]),
/// two without a copy or to redo a refused one ([`commit_two_trips`]), each a pipeline of statements sent at once (tokio-postgres sends a
/// request when its future is first polled, and `join_all`/`try_join_all` poll a short list in
/// order; the server runs them one after the other, each with its own snapshot).
struct WriterConn {
    client: Client,
    begin: Statement,
    commit: Statement,
    lock: Statement,
    head: Statement,
    existing: Statement,
    delta: Statement,
    all_open: Statement,
    insert_entries: Statement,
    insert_audience: Statement,
    close: Statement,
    purge: Statement,
    upsert_open: Statement,
    update_head: Statement,
    notify: Statement,
    guard: Statement,
    advance_head: Statement,
}

impl WriterConn {
    async fn open(config: &PgConnect) -> Result<WriterConn, StoreError> {
        let client = connect(config, None).await?;
        let prepared = try_join_all(WRITER_SQL.iter().map(|sql| client.prepare(sql)))
            .await
            .map_err(pg_err)?;
        let [begin, commit, lock, head, existing, delta, all_open, insert_entries, insert_audience, close, purge, upsert_open, update_head, notify, guard, advance_head]: [Statement; 16] =
            prepared
                .try_into()
                .map_err(|_| StoreError::Postgres("a statement was not prepared".into()))?;
        Ok(WriterConn {
            client,
            begin,
            commit,
            lock,
            head,
            existing,
            delta,
            all_open,
            insert_entries,
            insert_audience,
            close,
            purge,
            upsert_open,
            update_head,
            notify,
            guard,
            advance_head,
        })
    }
}

type Param<'a> = &'a (dyn ToSql + Sync);
type Pipelined<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Vec<Row>, tokio_postgres::Error>> + Send + 'a>,
>;

fn send<'a>(client: &'a Client, st: &'a Statement, params: &'a [Param<'a>]) -> Pipelined<'a> {
    Box::pin(client.query(st, params))
}

/// Whether a copy of the open conversations valid at `copy` can be brought to `head` with the
/// deltas: every appender since kept them (`delta_seq == head`, `copy >= delta_since`) and the
/// tombstones it needs are not purged yet.
fn delta_applies(copy: i64, head: i64, delta_seq: i64, delta_since: i64) -> bool {
    copy <= head && delta_seq == head && copy >= delta_since && head - copy <= TOMBSTONE_KEEP
}

fn restore_rows(rows: Vec<Row>) -> Visibility {
    Visibility::restore(rows.into_iter().map(|r| {
        let owners: Vec<i64> = r.get(1);
        (
            r.get::<_, String>(0),
            owners.into_iter().map(|o| o as u64).collect(),
            r.get::<_, Option<String>>(2),
        )
    }))
}

/// One new entry of a group, as it will be inserted.
struct Planned<'a> {
    seq: i64,
    op: &'a Op,
    audience: Audience,
}

/// A conversation as it was before a group changed it (`None`: not open), to put back when the
/// group is not committed.
type Before = Option<(Vec<u64>, Option<String>)>;

/// A group routed in seq order after `head`: each op's outcome, the entries to insert, and the
/// conversations they pushed or closed (sorted, each once).
struct Plan<'a> {
    outcomes: Vec<Appended>,
    planned: Vec<Planned<'a>>,
    changed: Vec<String>,
    webhooks: i64,
    evidence: i64,
    /// The last seq planned (`head` when nothing is new).
    last: i64,
}

/// Routes `batch` after `head` on `visibility` (which it moves forward). `existing` holds the
/// `eventId`s already stored, with their seqs; a repeat inside the batch gets the first one's.
/// With `undo`, each conversation's state before the group is kept there, once; with `reads`,
/// what of the state the routing read ([`Visibility::route_reading`]).
fn plan<'a>(
    batch: &'a [Op],
    head: i64,
    visibility: &mut Visibility,
    existing: &mut std::collections::HashMap<String, u64>,
    mut undo: Option<&mut std::collections::HashMap<String, Before>>,
    mut reads: Option<&mut Reads>,
) -> Plan<'a> {
    let mut p = Plan {
        outcomes: Vec::with_capacity(batch.len()),
        planned: Vec::with_capacity(batch.len()),
        changed: Vec::new(),
        webhooks: 0,
        evidence: 0,
        last: head,
    };
    for op in batch {
        let fields = match &op.item {
            Item::Webhook(e) => {
                if let Some(&seq) = existing.get(&e.event_id) {
                    p.outcomes.push(Appended {
                        seq,
                        inserted: false,
                    });
                    continue;
                }
                RoutingFields::from(e)
            }
            Item::Evidence(e) => RoutingFields::from(e),
        };
        // Only a push or a close changes the routing state, and only its own conversation.
        if let (false, Some(t), Some(c)) = (
            fields.is_evidence,
            fields.event_type,
            fields.conversation_id,
        ) {
            if t == PUSHED || t == CLOSED {
                if let Some(undo) = undo.as_deref_mut() {
                    if !undo.contains_key(c) {
                        let before = visibility
                            .conversation(c)
                            .map(|(o, v)| (o.to_vec(), v.map(str::to_owned)));
                        undo.insert(c.to_owned(), before);
                    }
                }
                p.changed.push(c.to_owned());
            }
        }
        p.last += 1;
        let audience = visibility.route_reading(fields, reads.as_deref_mut());
        match &op.item {
            Item::Webhook(e) => {
                existing.insert(e.event_id.clone(), p.last as u64);
                p.webhooks += 1;
            }
            Item::Evidence(_) => p.evidence += 1,
        }
        p.outcomes.push(Appended {
            seq: p.last as u64,
            inserted: true,
        });
        p.planned.push(Planned {
            seq: p.last,
            op,
            audience,
        });
    }
    p.changed.sort();
    p.changed.dedup();
    p
}

/// What a group writes after its reads: the entries, their audiences, the open conversations
/// it changed (last state of each), the tombstones, the NOTIFY payload.
struct Writes<'a> {
    rows: EntryColumns<'a>,
    /// The end of the log the group was planned after (see the writes' SQL).
    planned: i64,
    upsert_ids: Vec<String>,
    upsert_visitors: Vec<Option<String>>,
    upsert_owners: Vec<String>,
    closed: Vec<String>,
    purge_to: i64,
    last: i64,
}

impl<'a> Writes<'a> {
    fn new(p: &Plan<'a>, head: i64, visibility: &Visibility) -> Writes<'a> {
        let mut w = Writes {
            rows: EntryColumns::new(&p.planned),
            planned: head,
            upsert_ids: Vec::new(),
            upsert_visitors: Vec::new(),
            upsert_owners: Vec::new(),
            closed: Vec::new(),
            purge_to: head - TOMBSTONE_KEEP,
            last: p.last,
        };
        for id in &p.changed {
            match visibility.conversation(id) {
                Some((owners, visitor)) => {
                    let list: Vec<String> =
                        owners.iter().map(|&o| (o as i64).to_string()).collect();
                    w.upsert_owners.push(format!("{{{}}}", list.join(",")));
                    w.upsert_visitors.push(visitor.map(str::to_owned));
                    w.upsert_ids.push(id.clone());
                }
                None => w.closed.push(id.clone()),
            }
        }
        w
    }

    fn params(&self) -> WriteParams<'_> {
        let [a, b, c, d, e, f, g, h, i, j, k, l] = self.rows.params();
        WriteParams {
            entries: [a, b, c, d, e, f, g, h, i, j, k, l, &self.planned],
            audience: [
                &self.rows.aud_op,
                &self.rows.aud_seq,
                &self.rows.aud_related,
                &self.planned,
            ],
            close: [&self.closed, &self.last, &self.planned],
            purge: [&self.purge_to],
            upsert: [
                &self.upsert_ids,
                &self.upsert_visitors,
                &self.upsert_owners,
                &self.last,
                &self.planned,
            ],
        }
    }
}

struct WriteParams<'a> {
    entries: [Param<'a>; 13],
    audience: [Param<'a>; 4],
    close: [Param<'a>; 3],
    purge: [Param<'a>; 1],
    upsert: [Param<'a>; 5],
}

/// Sends the group's writes up to (not including) the head update: entries, audiences, closes
/// (and the purge of old tombstones), open conversations.
fn send_writes<'a>(
    c: &'a WriterConn,
    w: &'a Writes<'_>,
    p: &'a WriteParams<'a>,
    into: &mut Vec<Pipelined<'a>>,
) {
    into.push(send(&c.client, &c.insert_entries, &p.entries));
    if !w.rows.aud_op.is_empty() {
        into.push(send(&c.client, &c.insert_audience, &p.audience));
    }
    if !w.closed.is_empty() {
        into.push(send(&c.client, &c.close, &p.close));
        if w.purge_to > 0 {
            into.push(send(&c.client, &c.purge, &p.purge));
        }
    }
    if !w.upsert_ids.is_empty() {
        into.push(send(&c.client, &c.upsert_open, &p.upsert));
    }
}

/// How the writer's groups went (tests, `/metrics`, the bench's profile): one-round-trip groups
/// sent, committed in one round trip, one-round-trip groups redone in two because another
/// instance had changed what the group read or an `eventId` was already stored, and groups
/// committed in two round trips (the redone ones included).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriterStats {
    pub one_trip_tried: u64,
    pub one_trip: u64,
    pub redone_conflict: u64,
    pub redone_duplicate: u64,
    pub two_trips: u64,
    /// Groups sent in two round trips although this writer had a copy of the open
    /// conversations, because too many of its recent attempts were refused ([`Refusals`]).
    pub one_trip_skipped: u64,
}

#[derive(Default)]
struct StatCounters {
    one_trip_tried: AtomicU64,
    one_trip: AtomicU64,
    redone_conflict: AtomicU64,
    redone_duplicate: AtomicU64,
    two_trips: AtomicU64,
    one_trip_skipped: AtomicU64,
}

impl StatCounters {
    fn get(&self) -> WriterStats {
        WriterStats {
            one_trip_tried: self.one_trip_tried.load(Ordering::Relaxed),
            one_trip: self.one_trip.load(Ordering::Relaxed),
            redone_conflict: self.redone_conflict.load(Ordering::Relaxed),
            redone_duplicate: self.redone_duplicate.load(Ordering::Relaxed),
            two_trips: self.two_trips.load(Ordering::Relaxed),
            one_trip_skipped: self.one_trip_skipped.load(Ordering::Relaxed),
        }
    }
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Applies `batch` in one transaction under the append lock; returns each op's outcome and the
/// last seq inserted (0 when none). In one round trip when this writer has a copy of the open
/// conversations and few of its recent one-round-trip groups were refused ([`Refusals`]); in two
/// otherwise, or when the one-round-trip group was refused (another instance changed what it
/// read, or an `eventId` was already stored).
async fn commit_group(w: &mut Writer, batch: &[Op]) -> Result<(Vec<Appended>, u64), StoreError> {
    if w.conn.as_ref().is_none_or(|c| c.client.is_closed()) {
        w.conn = None;
        w.conn = Some(WriterConn::open(&w.config).await?);
    }
    let mut refused = false;
    if w.cache.is_some() && !w.refusals.try_one_trip() {
        bump(&w.stats.one_trip_skipped);
    } else if w.cache.is_some() {
        bump(&w.stats.one_trip_tried);
        match commit_one_trip(w, batch).await? {
            OneTrip::Committed(done) => {
                bump(&w.stats.one_trip);
                w.refusals.record(false);
                return Ok(done);
            }
            OneTrip::Conflict => {
                bump(&w.stats.redone_conflict);
                refused = true;
                tracing::debug!(
                    "another instance changed what the group read: redone in two round trips"
                );
            }
            OneTrip::Duplicate => {
                bump(&w.stats.redone_duplicate);
                tracing::debug!("an eventId was already stored: group redone in two round trips");
            }
        }
    }
    let done = commit_two_trips(w, batch).await?;
    bump(&w.stats.two_trips);
    w.refusals.record(refused);
    Ok(done)
}

/// How a one-round-trip group ended. `Conflict` and `Duplicate` committed nothing (the
/// transaction was rolled back by its own COMMIT, whose answer was awaited): the group is redone
/// in two round trips on the same connection, with the copy of the open conversations as it was.
enum OneTrip {
    Committed((Vec<Appended>, u64)),
    Conflict,
    Duplicate,
}

/// The whole group in one pipeline, routed on the cached open conversations as of the seq they
/// are valid for (`copy`), its seqs planned after `copy`: BEGIN, the lock, the guard (the end of
/// the log, or a failure when another instance changed what the group read since the copy), the
/// others' deltas since the copy, the writes (their seqs moved past the others' entries by the
/// SQL), the head, NOTIFY, COMMIT. Every answer is awaited, COMMIT's included. A statement that
/// fails aborts the transaction and COMMIT rolls it back: the guard's failure is `Conflict`, the
/// entries' unique `eventId` violation is `Duplicate` (told apart by statement, SQLSTATE and
/// constraint), anything else is an error, as in the two-round-trip group.
///
/// Why the result is the one the two-round-trip group would have given: routing is a pure
/// function of the entry and the state it reads ([`Reads`]); the guard, under the lock, proves
/// that state is the same at the end of the log as in the copy, so each entry gets the same
/// audience and the conversations the same new rows. The copy is then brought to the new end
/// with the others' deltas (read under the lock before the writes, so they are only theirs);
/// they touch no conversation the group wrote, so the order of the two does not matter.
async fn commit_one_trip(w: &mut Writer, batch: &[Op]) -> Result<OneTrip, StoreError> {
    let c = w.conn.as_ref().ok_or(StoreError::Closed)?;
    let Some((copy, mut visibility)) = w.cache.take() else {
        return Err(StoreError::Closed);
    };
    let head = clamp(copy);
    let mut undo = std::collections::HashMap::new();
    // Repeats inside the group are answered in memory; a stored eventId fails the insert.
    let mut existing = std::collections::HashMap::new();
    let mut reads = Reads::default();
    let p = plan(
        batch,
        head,
        &mut visibility,
        &mut existing,
        Some(&mut undo),
        Some(&mut reads),
    );
    let writes = Writes::new(&p, head, &visibility);
    let wp = writes.params();
    let conversations: Vec<&str> = reads.conversations.iter().map(String::as_str).collect();
    let visitors: Vec<&str> = reads.visitors.iter().map(String::as_str).collect();
    let lock_p: [Param; 1] = [&APPEND_LOCK];
    let guard_p: [Param; 4] = [&head, &conversations, &visitors, &TOMBSTONE_KEEP];
    let copy_p: [Param; 2] = [&head, &TOMBSTONE_KEEP];
    let count = p.last - head;
    let advance_p: [Param; 3] = [&count, &p.webhooks, &p.evidence];
    let mut all = vec![
        send(&c.client, &c.begin, &[]),
        send(&c.client, &c.lock, &lock_p),
        send(&c.client, &c.guard, &guard_p),
        send(&c.client, &c.delta, &copy_p),
    ];
    const GUARD: usize = 2;
    const DELTA: usize = 3;
    const ENTRIES: usize = 4;
    send_writes(c, &writes, &wp, &mut all);
    all.push(send(&c.client, &c.advance_head, &advance_p));
    all.push(send(&c.client, &c.notify, &[]));
    all.push(send(&c.client, &c.commit, &[]));
    let mut answers = join_all(all).await;
    let commit = answers.pop().ok_or(StoreError::Closed)?;
    let failed = answers.iter().position(Result::is_err);
    let Some(i) = failed else {
        // Every statement succeeded: COMMIT's answer is the commit's.
        commit.map_err(pg_err)?;
        let end: i64 = answers
            .get(GUARD)
            .and_then(|a| a.as_ref().ok())
            .and_then(|rows| rows.first())
            .map(|r| r.get(0))
            .ok_or_else(|| StoreError::Postgres("log_head has no row".into()))?;
        let shift = end - head;
        if shift < 0 {
            // The guard refuses a copy past the end of the log; committed all the same.
            return Err(StoreError::Postgres("the end of the log went back".into()));
        }
        let deltas = match answers.swap_remove(DELTA) {
            Ok(rows) => rows,
            Err(e) => return Err(pg_err(e)),
        };
        apply_deltas(&mut visibility, &deltas);
        let shift = shift as u64;
        let mut outcomes = p.outcomes;
        for o in &mut outcomes {
            o.seq += shift;
        }
        let last = p.last as u64 + shift;
        w.cache = Some((last, visibility));
        return Ok(OneTrip::Committed((outcomes, last)));
    };
    let Some(Err(e)) = answers.into_iter().nth(i) else {
        return Err(StoreError::Closed);
    };
    let db = e.as_db_error();
    let code = db.map(|d| d.code());
    let outcome = if i == GUARD && code == Some(&SqlState::DIVISION_BY_ZERO) {
        OneTrip::Conflict
    } else if i == ENTRIES
        && code == Some(&SqlState::UNIQUE_VIOLATION)
        && db.and_then(|d| d.constraint()) == Some(EVENT_ID_UNIQUE)
    {
        OneTrip::Duplicate
    } else {
        return Err(pg_err(e));
    };
    // Rolled back: COMMIT answered (ROLLBACK), the connection is idle again. A COMMIT without
    // an answer leaves the outcome unknown: an error, as for any group.
    commit.map_err(pg_err)?;
    for (id, before) in undo {
        match before {
            Some((owners, visitor)) => visibility.set_open(id, owners, visitor),
            None => visibility.set_closed(&id),
        }
    }
    w.cache = Some((copy, visibility));
    Ok(outcome)
}

/// Applies what other instances changed after a copy (the `delta` statement's rows: closes first,
/// then open conversations as they stand).
fn apply_deltas(visibility: &mut Visibility, rows: &[Row]) {
    for r in rows {
        let id: String = r.get(0);
        if r.get::<_, bool>(3) {
            visibility.set_closed(&id);
        } else {
            let owners: Vec<i64> = r.get::<_, Option<Vec<i64>>>(1).unwrap_or_default();
            visibility.set_open(id, owners.into_iter().map(|o| o as u64).collect(), r.get(2));
        }
    }
}

/// The group in two round trips: BEGIN, the lock, the head, the duplicates, the deltas since
/// our copy; then the writes, the head, NOTIFY, COMMIT.
async fn commit_two_trips(
    w: &mut Writer,
    batch: &[Op],
) -> Result<(Vec<Appended>, u64), StoreError> {
    let c = w.conn.as_ref().ok_or(StoreError::Closed)?;
    // Webhooks already stored (retries, or the same delivery through another instance).
    let ids: Vec<&str> = batch
        .iter()
        .filter_map(|op| match &op.item {
            Item::Webhook(e) => Some(e.event_id.as_str()),
            Item::Evidence(_) => None,
        })
        .collect();
    let cache = w.cache.take();
    let copy_seq: i64 = cache.as_ref().map_or(0, |(s, _)| clamp(*s));

    // Round trip 1: begin, lock, the head, the duplicates, the deltas since our copy.
    let lock_p: [Param; 1] = [&APPEND_LOCK];
    let ids_p: [Param; 1] = [&ids];
    let copy_p: [Param; 2] = [&copy_seq, &TOMBSTONE_KEEP];
    let mut reads = vec![
        send(&c.client, &c.begin, &[]),
        send(&c.client, &c.lock, &lock_p),
        send(&c.client, &c.head, &[]),
        send(&c.client, &c.existing, &ids_p),
    ];
    if cache.is_some() {
        reads.push(send(&c.client, &c.delta, &copy_p));
    }
    let mut results = try_join_all(reads).await.map_err(pg_err)?;
    let delta_rows = if cache.is_some() {
        results.pop().unwrap_or_default()
    } else {
        Vec::new()
    };
    let existing_rows = results.pop().unwrap_or_default();
    let head = results
        .pop()
        .and_then(|rows| rows.into_iter().next())
        .ok_or_else(|| StoreError::Postgres("log_head has no row".into()))?;
    let head_seq: i64 = head.get(0);
    let webhook_events: i64 = head.get(1);
    let evidence: i64 = head.get(2);
    let delta_seq: i64 = head.get(3);
    // Deltas are complete after delta_since; an appender that did not keep them (an older
    // gateway, or `gateway migrate`) appended since delta_seq: they are complete only from here.
    let delta_since: i64 = if delta_seq == head_seq {
        head.get(4)
    } else {
        head_seq
    };

    // The routing state as of head_seq: ours if we wrote last, ours with the others' changes
    // since, or the whole table.
    let mut visibility = match cache {
        Some((seq, v)) if seq as i64 == head_seq => v,
        Some((seq, mut v)) if delta_applies(seq as i64, head_seq, delta_seq, delta_since) => {
            apply_deltas(&mut v, &delta_rows);
            v
        }
        _ => restore_rows(c.client.query(&c.all_open, &[]).await.map_err(pg_err)?),
    };
    let mut existing: std::collections::HashMap<String, u64> = existing_rows
        .into_iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1) as u64))
        .collect();
    let p = plan(batch, head_seq, &mut visibility, &mut existing, None, None);
    if p.planned.is_empty() {
        // Only duplicates: nothing written.
        c.client.query(&c.commit, &[]).await.map_err(pg_err)?;
        w.cache = Some((head_seq as u64, visibility));
        return Ok((p.outcomes, 0));
    }

    // Round trip 2: the entries, their audiences, the open conversations this group changed
    // (last state of each), the head, the wake-up, the commit.
    let writes = Writes::new(&p, head_seq, &visibility);
    let wp = writes.params();
    let webhook_events = webhook_events + p.webhooks;
    let evidence = evidence + p.evidence;
    let head_p: [Param; 4] = [&p.last, &webhook_events, &evidence, &delta_since];
    let mut all = Vec::new();
    send_writes(c, &writes, &wp, &mut all);
    all.push(send(&c.client, &c.update_head, &head_p));
    all.push(send(&c.client, &c.notify, &[]));
    // Sent behind the others: when one of them fails, the transaction is aborted and this
    // COMMIT rolls it back; its answer is awaited with theirs, so nothing is acknowledged
    // before the commit is.
    all.push(send(&c.client, &c.commit, &[]));
    try_join_all(all).await.map_err(pg_err)?;
    let last = p.last;
    w.cache = Some((last as u64, visibility));
    Ok((p.outcomes, last as u64))
}

/// The planned entries and audiences as column arrays, for `unnest` (one statement each for the
/// whole group).
struct EntryColumns<'a> {
    seq: Vec<i64>,
    kind: Vec<&'static str>,
    received: Vec<i64>,
    event_id: Vec<Option<&'a str>>,
    event_type: Vec<Option<&'a str>>,
    correlation: Vec<Option<&'a str>>,
    delivery: Vec<Option<&'a str>>,
    provider: Vec<Option<&'a str>>,
    conversation: Vec<Option<&'a str>>,
    visitor: Vec<Option<&'a str>>,
    operators: Vec<String>,
    payload: Vec<&'a str>,
    aud_op: Vec<i64>,
    aud_seq: Vec<i64>,
    aud_related: Vec<bool>,
}

impl<'a> EntryColumns<'a> {
    fn new(planned: &[Planned<'a>]) -> EntryColumns<'a> {
        let n = planned.len();
        let mut c = EntryColumns {
            seq: Vec::with_capacity(n),
            kind: Vec::with_capacity(n),
            received: Vec::with_capacity(n),
            event_id: Vec::with_capacity(n),
            event_type: Vec::with_capacity(n),
            correlation: Vec::with_capacity(n),
            delivery: Vec::with_capacity(n),
            provider: Vec::with_capacity(n),
            conversation: Vec::with_capacity(n),
            visitor: Vec::with_capacity(n),
            operators: Vec::with_capacity(n),
            payload: Vec::with_capacity(n),
            aud_op: Vec::new(),
            aud_seq: Vec::new(),
            aud_related: Vec::new(),
        };
        for p in planned {
            c.seq.push(p.seq);
            match &p.op.item {
                Item::Webhook(e) => {
                    c.kind.push("webhook");
                    c.received.push(e.received_at_ms);
                    c.event_id.push(Some(&e.event_id));
                    c.event_type.push(Some(&e.event_type));
                    c.correlation.push(e.correlation_id.as_deref());
                    c.delivery.push(e.delivery_id.as_deref());
                    c.provider.push(None);
                    c.conversation.push(e.conversation_id.as_deref());
                    c.visitor.push(e.visitor_id.as_deref());
                    c.operators.push(
                        serde_json::to_string(&e.operator_ids).unwrap_or_else(|_| "[]".to_owned()),
                    );
                    c.payload.push(&e.payload);
                }
                Item::Evidence(e) => {
                    c.kind.push("evidence");
                    c.received.push(e.received_at_ms);
                    c.event_id.push(None);
                    c.event_type.push(None);
                    c.correlation.push(None);
                    c.delivery.push(None);
                    c.provider.push(Some(&e.provider));
                    c.conversation.push(e.conversation_id.as_deref());
                    c.visitor.push(Some(&e.visitor_id));
                    c.operators.push("[]".to_owned());
                    c.payload.push(&e.payload);
                }
            }
            for &op in &p.audience.operators {
                c.aud_op.push(op as i64);
                c.aud_seq.push(p.seq);
                c.aud_related
                    .push(p.audience.related.binary_search(&op).is_ok());
            }
        }
        c
    }

    fn params(&self) -> [Param<'_>; 12] {
        [
            &self.seq,
            &self.kind,
            &self.received,
            &self.event_id,
            &self.event_type,
            &self.correlation,
            &self.delivery,
            &self.provider,
            &self.conversation,
            &self.visitor,
            &self.operators,
            &self.payload,
        ]
    }
}

/// A NOTIFY payload: the new end of the log, as decimal digits (anything else: `None`).
fn parse_seq(payload: &str) -> Option<u64> {
    if payload.is_empty() || payload.len() > 20 || !payload.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    payload.parse().ok()
}

/// Moves `committed` forward (never back).
fn advance(committed: &watch::Sender<u64>, last: u64) {
    committed.send_if_modified(|c| {
        let moved = *c < last;
        *c = (*c).max(last);
        moved
    });
}

/// Keeps `committed` at the end of the log as any instance extends it: woken by NOTIFY on a
/// dedicated connection (whose payload is the end of the log after that commit: notifications
/// are delivered only once their transaction is committed and visible, and the append lock makes
/// every lower seq committed first), and re-reading `log_head` every [`POLL`], after every
/// reconnect, and when a payload is not a seq.
async fn tail_loop(
    config: PgConnect,
    pool: Pool,
    committed: Arc<watch::Sender<u64>>,
    stop: CancellationToken,
) {
    let refresh = |pool: Pool, committed: Arc<watch::Sender<u64>>| async move {
        let client = pool.get().await.map_err(pool_err)?;
        advance(&committed, last_seq_cached(&client).await?);
        Ok::<_, StoreError>(())
    };
    let mut ticker = tokio::time::interval(POLL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut listener: Option<(Client, mpsc::UnboundedReceiver<Option<u64>>)> = None;
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
                Some((_, rx)) => match rx.recv().await {
                    Some(seq) => seq,
                    // The listener's connection ended: reconnect at the next turn.
                    None => std::future::pending().await,
                },
                None => std::future::pending().await,
            }
        };
        let announced = tokio::select! {
            _ = stop.cancelled() => return,
            first = woken => {
                let mut announced = first;
                if let Some((_, rx)) = listener.as_mut() {
                    while let Ok(seq) = rx.try_recv() {
                        announced = match (announced, seq) {
                            (Some(a), Some(b)) => Some(a.max(b)),
                            _ => None,
                        };
                    }
                }
                announced
            }
            _ = ticker.tick() => None,
        };
        if let Some(last) = announced {
            advance(&committed, last);
            continue;
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
    let kind = EntryKind::from_stored(row.get::<_, &str>(1), seq)?;
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

type Pooled = deadpool_postgres::Client;

/// The entries after `$1`, at most `$2`, in order (a statement cached per pooled connection, as
/// every read's: a read costs its execution only, not a parse).
/// The entries after `$1` (at most `$2`). Bounded above by the end of the log, which loses
/// nothing (no entry past it is visible to the statement) and is there for the planner: the
/// generic plan of `seq > $1 ... LIMIT $2` alone, both unknown, was a parallel sequential scan
/// and sort of the whole table (EXPLAIN under `plan_cache_mode = force_generic_plan`, ~80,000
/// entries), once per tail read; with both bounds, the primary key's index.
const ENTRIES_AFTER: &str =
    "SELECT seq, kind, received_at_ms, event_id, event_type, conversation_id,
     visitor_id, operator_ids, payload FROM entries
     WHERE seq > $1 AND seq <= (SELECT last_seq FROM log_head WHERE id = 1) ORDER BY seq LIMIT $2";

/// The same entries with their audiences (sorted operator ids, and those who get the `related`
/// bundle; NULL when none), in one statement (bounded as [`ENTRIES_AFTER`]).
const ROUTED_AFTER: &str = "SELECT e.seq, e.kind, e.received_at_ms, e.event_id, e.event_type,
     e.conversation_id, e.visitor_id, e.operator_ids, e.payload, a.ops, a.rel
     FROM (SELECT * FROM entries
           WHERE seq > $1 AND seq <= (SELECT last_seq FROM log_head WHERE id = 1)
           ORDER BY seq LIMIT $2) e
     LEFT JOIN LATERAL (
         SELECT array_agg(operator_id ORDER BY operator_id) AS ops,
                array_agg(operator_id ORDER BY operator_id) FILTER (WHERE related) AS rel
         FROM audience WHERE audience.seq = e.seq) a ON true
     ORDER BY e.seq";

/// For each push `p`, the evidence of its visitor or naming its conversation stored before it:
/// the last `$N` (oldest first after the final ORDER BY). Each branch walks its partial index
/// backwards from the push and stops after `$N` rows.
macro_rules! related_of {
    ($pushes:literal, $n:literal, $filter:literal) => {
        concat!(
            "SELECT r.seq, r.kind, r.received_at_ms, r.event_id, r.event_type, r.conversation_id,
                 r.visitor_id, r.operator_ids, r.payload, p.seq
             FROM ",
            $pushes,
            " CROSS JOIN LATERAL (
                 SELECT u.seq FROM (
                     (SELECT seq FROM entries
                      WHERE kind = 'evidence' AND visitor_id = p.visitor_id AND seq < p.seq
                      ORDER BY seq DESC LIMIT ",
            $n,
            ")
                     UNION
                     (SELECT seq FROM entries
                      WHERE kind = 'evidence' AND conversation_id = p.conversation_id
                        AND seq < p.seq
                      ORDER BY seq DESC LIMIT ",
            $n,
            ")) u
                 ORDER BY u.seq DESC LIMIT ",
            $n,
            ") rs
             JOIN entries r ON r.seq = rs.seq
             WHERE ",
            $filter,
            " ORDER BY p.seq, r.seq"
        )
    };
}

/// The related bundles of the pushes among the entries after `$1` (at most `$2` entries; `$3`
/// per push): pipelined with [`ROUTED_AFTER`], over the same entries.
const RELATED_AFTER: &str = related_of!(
    "(SELECT seq, visitor_id, conversation_id FROM entries
      WHERE seq > $1 AND seq <= (SELECT last_seq FROM log_head WHERE id = 1)
      ORDER BY seq LIMIT $2) p",
    "$3",
    "EXISTS (SELECT 1 FROM audience a WHERE a.seq = p.seq AND a.related)"
);

/// The related bundles of the entries `$1` (`$2` per push).
const RELATED_OF: &str = related_of!("entries p", "$2", "p.seq = ANY($1)");

const LAST_SEQ: &str = "SELECT last_seq FROM log_head WHERE id = 1";

async fn entries_after(
    client: &Pooled,
    after: u64,
    limit: usize,
) -> Result<Vec<StoredEntry>, StoreError> {
    let st = client.prepare_cached(ENTRIES_AFTER).await.map_err(pg_err)?;
    let rows = client
        .query(&st, &[&clamp(after), &clamp(limit as u64)])
        .await
        .map_err(pg_err)?;
    rows.iter().map(to_entry).collect()
}

/// Groups the rows of a `related_of!` statement by push (column 9), oldest first.
fn related_by_push(
    rows: &[Row],
) -> Result<std::collections::HashMap<u64, Vec<StoredEntry>>, StoreError> {
    let mut by_push: std::collections::HashMap<u64, Vec<StoredEntry>> = Default::default();
    for row in rows {
        let push = row.get::<_, i64>(9) as u64;
        by_push.entry(push).or_default().push(to_entry(row)?);
    }
    Ok(by_push)
}

async fn last_seq_cached(client: &Pooled) -> Result<u64, StoreError> {
    let st = client.prepare_cached(LAST_SEQ).await.map_err(pg_err)?;
    let row = client.query_one(&st, &[]).await.map_err(pg_err)?;
    Ok(row.get::<_, i64>(0) as u64)
}

fn operators(v: Option<Vec<i64>>) -> Vec<u64> {
    v.unwrap_or_default()
        .into_iter()
        .map(|o| o as u64)
        .collect()
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
            let st = client
                .prepare_cached(
                    "SELECT last_seq, webhook_events, evidence FROM log_head WHERE id = 1",
                )
                .await
                .map_err(pg_err)?;
            let row = client.query_one(&st, &[]).await.map_err(pg_err)?;
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
            let (routed, related) = futures_util::future::try_join(
                client.prepare_cached(ROUTED_AFTER),
                client.prepare_cached(RELATED_AFTER),
            )
            .await
            .map_err(pg_err)?;
            // Entries at or below a committed seq are all committed (the append lock), and an
            // entry's audience commits with it: no snapshot needed. Both statements go in one
            // round trip; the second, run later, may see more entries than the first (ignored),
            // never fewer.
            let (after, limit) = (clamp(after), clamp(limit as u64));
            let max_related = lockdesk_feed::MAX_RELATED as i64;
            let (rows, related_rows) = futures_util::future::try_join(
                client.query(&routed, &[&after, &limit]),
                client.query(&related, &[&after, &limit, &max_related]),
            )
            .await
            .map_err(pg_err)?;
            let mut related = related_by_push(&related_rows)?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                let entry = to_entry(row)?;
                let audience = Audience {
                    operators: operators(row.get(9)),
                    related: operators(row.get(10)),
                };
                let related = if audience.related.is_empty() {
                    Vec::new()
                } else {
                    related.remove(&entry.seq).unwrap_or_default()
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
        let limit = FeedPage::size(limit);
        self.block_on(async {
            let client = self.pool.get().await.map_err(pool_err)?;
            // The end of the log first: everything up to it is committed, so a page that is not
            // full has considered every entry up to it (later commits are the next read's).
            let end = last_seq_cached(&client).await?;
            let items = match filter {
                FeedFilter::All => entries_after(&client, after, limit)
                    .await?
                    .into_iter()
                    .filter(|e| e.seq <= end)
                    .map(FeedItem::unbundled)
                    .collect::<Vec<_>>(),
                FeedFilter::Operators([]) => Vec::new(),
                FeedFilter::Operators(ops) => {
                    let ops: Vec<i64> = ops.iter().map(|&o| o as i64).collect();
                    let (visible, by_seq) = futures_util::future::try_join(
                        client.prepare_cached(
                            "SELECT seq, bool_or(related) FROM audience
                             WHERE operator_id = ANY($1) AND seq > $2 AND seq <= $3
                             GROUP BY seq ORDER BY seq LIMIT $4",
                        ),
                        client.prepare_cached(
                            "SELECT seq, kind, received_at_ms, event_id, event_type,
                                 conversation_id, visitor_id, operator_ids, payload
                             FROM entries WHERE seq = ANY($1) ORDER BY seq",
                        ),
                    )
                    .await
                    .map_err(pg_err)?;
                    let seqs: Vec<(i64, bool)> = client
                        .query(
                            &visible,
                            &[&ops, &clamp(after), &clamp(end), &clamp(limit as u64)],
                        )
                        .await
                        .map_err(pg_err)?
                        .into_iter()
                        .map(|r| (r.get(0), r.get(1)))
                        .collect();
                    let wanted: Vec<i64> = seqs.iter().map(|s| s.0).collect();
                    let pushes: Vec<i64> = seqs.iter().filter(|s| s.1).map(|s| s.0).collect();
                    let max_related = lockdesk_feed::MAX_RELATED as i64;
                    let (rows, related_rows) = if pushes.is_empty() {
                        let rows = client.query(&by_seq, &[&wanted]).await.map_err(pg_err)?;
                        (rows, Vec::new())
                    } else {
                        let related = client.prepare_cached(RELATED_OF).await.map_err(pg_err)?;
                        futures_util::future::try_join(
                            client.query(&by_seq, &[&wanted]),
                            client.query(&related, &[&pushes, &max_related]),
                        )
                        .await
                        .map_err(pg_err)?
                    };
                    if rows.len() != seqs.len() {
                        return Err(StoreError::Corrupt {
                            seq: after,
                            detail: "audience row without its entry".into(),
                        });
                    }
                    let mut related = related_by_push(&related_rows)?;
                    let mut items = Vec::with_capacity(seqs.len());
                    for (row, (_, with_related)) in rows.iter().zip(&seqs) {
                        let entry = to_entry(row)?;
                        let related = if *with_related {
                            related.remove(&entry.seq).unwrap_or_default()
                        } else {
                            Vec::new()
                        };
                        items.push(FeedItem { entry, related });
                    }
                    items
                }
            };
            FeedPage::scanned(items, after, limit, || Ok(end))
        })
    }
    fn writer_stats(&self) -> Option<WriterStats> {
        Some(PostgresStore::writer_stats(self))
    }
}

#[cfg(test)]
mod tests {
    use super::{connect, PgSettings, PostgresStore, Refusals, APPEND_LOCK, WRITER_SQL};
    use tokio_postgres::error::SqlState;
    use tokio_postgres::types::ToSql;

    /// Every statement that writes the log, run outside a group's transaction block (as the
    /// one-round-trip pipeline's would after a failed `BEGIN`): the inserts fail, the head's
    /// updates change nothing; the same statements inside a block write.
    #[test]
    fn the_readers_price_sequential_scans_out_and_keep_the_given_options() {
        let plain = tokio_postgres::Config::new();
        assert_eq!(
            super::reader_config(&plain).get_options(),
            Some("-c enable_seqscan=off")
        );
        let mut given = tokio_postgres::Config::new();
        given.options("-c statement_timeout=5s");
        assert_eq!(
            super::reader_config(&given).get_options(),
            Some("-c statement_timeout=5s -c enable_seqscan=off")
        );
        assert_eq!(given.get_options(), Some("-c statement_timeout=5s"));
    }

    #[test]
    fn the_writes_change_nothing_outside_a_groups_transaction() {
        let pg = lockdesk_testkit::pg::PgServer::start();
        let settings = PgSettings {
            url: pg.create_database("outside"),
            password: Some(pg.password().to_owned()),
            ca_file: None,
        };
        drop(PostgresStore::open(&settings).unwrap());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let client = connect(&settings.connector().unwrap(), None).await.unwrap();
            let seq = vec![1i64];
            let kind = vec!["webhook"];
            let received = vec![1i64];
            let event = vec![Some("e1")];
            let none: Vec<Option<&str>> = vec![None];
            let conv = vec![Some("c1")];
            let ops = vec!["[]"];
            let payload = vec!["{}"];
            let zero = 0i64;
            let one = 1i64;
            let entries: [&(dyn ToSql + Sync); 13] = [
                &seq, &kind, &received, &event, &event, &none, &none, &none, &conv, &conv, &ops,
                &payload, &zero,
            ];
            let aud_op = vec![7i64];
            let related = vec![true];
            let audience: [&(dyn ToSql + Sync); 4] = [&aud_op, &seq, &related, &zero];
            let ids = vec!["c1"];
            let owners = vec!["{7}"];
            let close: [&(dyn ToSql + Sync); 3] = [&ids, &one, &zero];
            let upsert: [&(dyn ToSql + Sync); 5] = [&ids, &conv, &owners, &one, &zero];
            let update: [&(dyn ToSql + Sync); 4] = [&one, &one, &zero, &zero];
            let advance: [&(dyn ToSql + Sync); 3] = [&one, &one, &zero];
            let [_, _, lock, _, _, _, _, insert_entries, insert_audience, close_sql, _, upsert_sql, update_head, _, _, advance_head] =
                WRITER_SQL;
            client.query(lock, &[&APPEND_LOCK]).await.unwrap();
            for (sql, params) in [
                (insert_entries, &entries[..]),
                (insert_audience, &audience[..]),
                (close_sql, &close[..]),
                (upsert_sql, &upsert[..]),
            ] {
                let err = client.execute(sql, params).await.unwrap_err();
                assert_eq!(err.code(), Some(&SqlState::DIVISION_BY_ZERO), "{sql}: {err}");
            }
            assert_eq!(client.execute(update_head, &update).await.unwrap(), 0);
            assert_eq!(client.execute(advance_head, &advance).await.unwrap(), 0);
            let count = "SELECT (SELECT count(*) FROM entries) + (SELECT count(*) FROM audience)
                 + (SELECT count(*) FROM open_conversations)
                 + (SELECT count(*) FROM closed_conversations) + (SELECT last_seq FROM log_head)";
            let nothing: i64 = client.query_one(count, &[]).await.unwrap().get(0);
            assert_eq!(nothing, 0, "nothing written outside a group");
            // The same statements in a group's transaction block write.
            client.batch_execute("BEGIN").await.unwrap();
            client.query(lock, &[&APPEND_LOCK]).await.unwrap();
            for (sql, params) in [
                (insert_entries, &entries[..]),
                (insert_audience, &audience[..]),
                (upsert_sql, &upsert[..]),
            ] {
                assert_eq!(client.execute(sql, params).await.unwrap(), 1, "{sql}");
            }
            assert_eq!(client.execute(advance_head, &advance).await.unwrap(), 1);
            client.batch_execute("COMMIT").await.unwrap();
            let written: i64 = client.query_one(count, &[]).await.unwrap().get(0);
            assert_eq!(written, 4, "an entry, its audience, its conversation, the head at 1");
        });
    }

    #[test]
    fn the_one_trip_group_is_tried_while_at_most_two_of_the_last_eight_groups_were_refused() {
        let mut m = Refusals::default();
        assert!(m.try_one_trip(), "a new writer tries");
        m.record(true);
        m.record(true);
        assert!(m.try_one_trip(), "two stray refusals are tolerated");
        m.record(true);
        assert!(
            !m.try_one_trip(),
            "three of the last eight: the instances share conversations"
        );
        // The oldest of the three leaves the window after eight groups in all.
        for quiet in 1..=5 {
            m.record(false);
            assert!(!m.try_one_trip(), "after {quiet} quiet groups");
        }
        m.record(false);
        assert!(m.try_one_trip(), "after six quiet groups");
        // Every other group refused: 4 of 8 stay above the tolerance.
        for i in 0..16 {
            m.record(i % 2 == 0);
        }
        assert!(!m.try_one_trip());
    }
}
