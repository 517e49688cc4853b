//! The gateway's log: every accepted webhook event and piece of evidence, in one order (a global,
//! strictly increasing sequence number), behind the [`EventStore`] trait so that a shared
//! database can replace SQLite for a multi-instance deployment (ARCHITECTURE.md, "The gateway").
//!
//! Must not: return from an append before the item is durable; hand out a sequence number twice.

mod migrate;
mod pg_tls;
mod postgres;
mod sqlite;

pub use migrate::{migrate_sqlite_to_postgres, MigrateError, MigrationReport};
pub use pg_tls::{PgConnect, PgStream, SslMode, TlsPolicy, TrustRoots};
pub use postgres::{PgSettings, PostgresStore, WriterStats, APPEND_LOCK};
pub use sqlite::SqliteStore;

pub use crate::routing::Audience;
use crate::routing::RoutingFields;

pub use lockdesk_intake::{NewEvidence, NewWebhookEvent};

/// What the router reads of a webhook event about to be appended (both stores route with it).
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

/// What the router reads of evidence about to be appended.
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

/// The outcome of appending a webhook event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appended {
    pub seq: u64,
    /// False when the event was already stored (a retried delivery): `seq` is the original one.
    pub inserted: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    Webhook,
    Evidence,
}

impl EntryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Webhook => "webhook",
            EntryKind::Evidence => "evidence",
        }
    }

    /// The kind stored as [`EntryKind::as_str`] for the entry at `seq`; any other text is a
    /// corrupt entry.
    pub(crate) fn from_stored(kind: &str, seq: u64) -> Result<EntryKind, StoreError> {
        match kind {
            "webhook" => Ok(EntryKind::Webhook),
            "evidence" => Ok(EntryKind::Evidence),
            other => Err(StoreError::Corrupt {
                seq,
                detail: format!("unknown kind {other:?}"),
            }),
        }
    }
}

/// One entry of the log, as read back.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredEntry {
    pub seq: u64,
    pub kind: EntryKind,
    pub received_at_ms: i64,
    /// `eventId` for webhooks, `None` for evidence.
    pub event_id: Option<String>,
    /// `eventType` for webhooks, `None` for evidence.
    pub event_type: Option<String>,
    pub conversation_id: Option<String>,
    pub visitor_id: Option<String>,
    pub operator_ids: Vec<u64>,
    pub payload: String,
}

impl std::fmt::Debug for StoredEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredEntry")
            .field("seq", &self.seq)
            .field("kind", &self.kind)
            .field("event_id", &self.event_id)
            .field("event_type", &self.event_type)
            .field("conversation_id", &self.conversation_id)
            .field("visitor_id", &self.visitor_id)
            .field("operator_ids", &self.operator_ids)
            .finish_non_exhaustive()
    }
}

/// How much the log holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub webhook_events: u64,
    pub evidence: u64,
    /// The highest sequence number handed out (0 when empty).
    pub last_seq: u64,
}

/// An entry with everything the feed's router needs: who may see it (computed at append time,
/// see `routing`), and, when its audience gets the `related` bundle, the evidence it bundles.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoutedEntry {
    pub entry: StoredEntry,
    pub audience: Audience,
    /// The visitor's evidence stored before this push, oldest first (at most
    /// [`lockdesk_feed::MAX_RELATED`]); empty unless `audience.related` is non-empty.
    pub related: Vec<StoredEntry>,
}

/// Which entries a feed read returns.
#[derive(Clone, Copy, Debug)]
pub enum FeedFilter<'a> {
    /// Every entry (supervisors), without `related` bundles.
    All,
    /// The entries whose audience includes one of these operator ids (an advisor), with the
    /// `related` bundle where one of them was pushed the conversation.
    Operators(&'a [u64]),
}

/// One entry as a subscriber receives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeedItem {
    pub entry: StoredEntry,
    pub related: Vec<StoredEntry>,
}

impl FeedItem {
    /// An entry without a `related` bundle: how [`FeedFilter::All`] (a supervisor) receives every
    /// entry, in both stores.
    pub(crate) fn unbundled(entry: StoredEntry) -> FeedItem {
        FeedItem {
            entry,
            related: Vec::new(),
        }
    }
}

/// A page of a subscriber's view of the log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FeedPage {
    pub items: Vec<FeedItem>,
    /// Every entry with `seq <= scanned_to` has been considered: the subscriber has everything
    /// visible to it up to there (the last item's seq when the page is full, else the log's end
    /// when the page was read).
    pub scanned_to: u64,
}

impl FeedPage {
    /// How many entries a read for `limit` asks its store for: at least one, since a page read
    /// with a limit of 0 would be empty and yet [`FeedPage::scanned`] to the log's end.
    pub(crate) fn size(limit: usize) -> usize {
        limit.max(1)
    }

    /// A page of `items` read after `after` with `limit`: scanned to the last item's seq when
    /// the page is full, else to `end`, the log's end when the page was read.
    pub(crate) fn scanned(
        items: Vec<FeedItem>,
        after: u64,
        limit: usize,
        end: impl FnOnce() -> Result<u64, StoreError>,
    ) -> Result<FeedPage, StoreError> {
        let scanned_to = match items.last() {
            Some(item) if items.len() >= limit => item.entry.seq,
            _ => end()?.max(after),
        };
        Ok(FeedPage { items, scanned_to })
    }
}

/// Why the store failed. The server answers 503 and the sender retries.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the data folder {path}")]
    CreateDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("the database's schema version {found} is newer than this gateway's ({supported}): upgrade the gateway")]
    SchemaTooNew { found: i64, supported: i64 },
    #[error("the database holds an invalid entry at seq {seq}: {detail}")]
    Corrupt { seq: u64, detail: String },
    #[error("the database file {path} is damaged ({detail}); the gateway does not start on it: restore it from a backup, or move it away to start a new, empty log (desks then refuse to resume until their users accept the new log)")]
    Damaged {
        path: std::path::PathBuf,
        detail: String,
    },
    #[error("the commit failed, nothing of it was stored: {0}")]
    Commit(String),
    #[error(
        "the last commit failed (disk full or I/O error?); appends are refused until one succeeds"
    )]
    Failing,
    #[error("the store is shut down")]
    Closed,
    #[error("PostgreSQL is unavailable: {0}")]
    Unavailable(String),
    #[error("PostgreSQL refused a statement: {0}")]
    Postgres(String),
    #[error("the store settings: {0}")]
    Settings(String),
    #[error("the item holds a NUL character, which PostgreSQL text cannot store")]
    Unstorable,
}

/// The gateway's durable log.
///
/// Methods block (disk or network I/O): async callers run them on `spawn_blocking`. An append
/// returns only once the entry is durable; sequence numbers are global across both kinds, strictly
/// increasing in commit order, and never reused.
pub trait EventStore: Send + Sync + 'static {
    /// Appends a webhook event unless one with the same `event_id` is stored already.
    fn append_webhook(&self, event: NewWebhookEvent) -> Result<Appended, StoreError>;
    /// Appends evidence (never de-duplicated: each presentation is a fact) and returns its seq.
    fn append_evidence(&self, evidence: NewEvidence) -> Result<u64, StoreError>;
    /// Up to `limit` entries with `seq > after`, in sequence order.
    fn read_after(&self, after: u64, limit: usize) -> Result<Vec<StoredEntry>, StoreError>;
    /// What the log holds, in constant time (a health check calls it). An error when the store
    /// cannot append: its writer is gone, or its last commit failed.
    fn counts(&self) -> Result<Counts, StoreError>;
    /// The log's identity: random, created with the log, never changed (docs/feed-protocol.md,
    /// `hello.logId`). A log started anew (a database reset) has another one.
    fn log_id(&self) -> &str;
    /// The highest sequence number committed so far; changes after every commit (the feed's
    /// router waits on it instead of polling).
    fn committed(&self) -> tokio::sync::watch::Receiver<u64>;
    /// Up to `limit` entries with `seq > after`, each with its audience and `related` bundle, in
    /// sequence order (the feed's live fan-out: one read for all subscribers).
    fn read_routed_after(&self, after: u64, limit: usize) -> Result<Vec<RoutedEntry>, StoreError>;
    /// Up to `limit` entries with `seq > after` that `filter` lets through, in sequence order
    /// (a subscriber catching up). Uses the audience index: cost follows what is returned, not
    /// the size of the log.
    fn read_feed(
        &self,
        after: u64,
        filter: FeedFilter<'_>,
        limit: usize,
    ) -> Result<FeedPage, StoreError>;
    /// How this instance's append groups went since it started (`GET /metrics`): `None` for a
    /// store that appends in-process (SQLite), whose groups have no round trips to count.
    fn writer_stats(&self) -> Option<WriterStats> {
        None
    }
}
