//! The desk core: applies the gateway's feed to a local SQLite store, verifies every token
//! presentation, keeps each conversation's authentication state, the identities (userIds) and
//! the devices (iAdvize visitor ids) they were proved on, cross-device history and alerts.
//! Synchronous and UI-independent: the feed client calls [`Desk::apply`] on a blocking thread;
//! the CLI and the desktop app read with [`Desk::history`], [`Desk::conversations`],
//! [`Desk::conversation`]. [`Desk::erase_user`] (GDPR) and [`Desk::purge_before`] (retention)
//! cover the desk's tables and the audit log in the same file, then scrub the file.
//!
//! ```no_run
//! # fn demo(entries: Vec<lockdesk_feed::Entry>, engine: lockdesk_keys::Engine) -> Result<(), lockdesk_desk::DeskError> {
//! use std::sync::Arc;
//! use lockdesk_desk::{Desk, DeskConfig};
//! let mut desk = Desk::open("desk.sqlite3".as_ref(), Arc::new(engine), DeskConfig::default())?;
//! let resume_after = desk.cursor(); // the feed client's `after`
//! let applied = desk.apply(&entries, 1_767_261_600_000)?;
//! for change in &applied.changes {
//!     println!("{}", change.to_json_line());
//! }
//! desk.tick(1_767_261_700_000)?; // on a timer: sessions lapse without new events
//! # Ok(()) }
//! ```
//!
//! Architecture invariants:
//! - one SQLite transaction per [`Desk::apply`] batch, holding the batch's effects, its audit
//!   entries and the cursor: after a crash at any point the store is as before or after the
//!   batch, never between, and resuming from [`Desk::cursor`] applies nothing twice;
//! - applying is idempotent by `seq`: entries at or below the cursor are skipped, and a
//!   presentation is stored once per evidence `seq` (evidence bundled with a push may repeat);
//! - a token is verified at the time the gateway received it (`receivedAtMs`), not when the desk
//!   applies it, so a replay after downtime reaches the same verdicts and states;
//! - all state decisions are `lockdesk-conversation`'s; this crate stores, routes and correlates;
//! - tokens are never stored, logged or put in errors: only their SHA-256 (hex);
//! - bad input (a malformed entry) is recorded and skipped, never fails the rest of the batch;
//!   only store errors fail a batch (and then nothing of it is kept).
//!
//! Must not: read the clock (`now_ms` is an argument), do network I/O, or depend on a UI.

mod apply;
mod audit;
pub mod bench;
mod check;
mod erase;
mod log;
mod lookalike;
mod model;
mod query;
mod reader;
mod store;

use std::path::Path;
use std::sync::Arc;

use rusqlite::Connection;

pub use check::{check_store, CheckError, Disagreement, StoreCheck, MAX_REPORTED};
pub use erase::{DeskErasure, DeskPurge, ErasureReport, PurgeReport, TOMBSTONE};
pub use log::{archive_store, LogBinding};
pub use model::{
    format_rfc3339, AlertRecord, Applied, Change, ClosedConversation, ConversationDetail,
    ConversationQuery, ConversationRow, History, HistoryConversation, IdentityCard, LinkedVisitor,
    LookAlike, Presentation, Skipped, Stats, Transition,
};
pub use reader::{DeskReader, Snapshot};
pub use store::SCHEMA_VERSION;

/// The domain vocabulary, re-exported: defined once in lockdesk-conversation.
pub use lockdesk_conversation::{
    AlertKind, AuthStateName, OperatorId, PresentationVerdict, ReasonCode, VisitorSource,
};

// One bound for operator ids: the feed's (what a payload may carry) is the vocabulary's (what the
// store holds).
const _: () = assert!(lockdesk_feed::MAX_OPERATOR_ID == OperatorId::MAX);

/// What the desk needs of a verifier, defined beside the verifier (lockdesk-verify) and
/// implemented there for `lockdesk_verify::Verifier` and in lockdesk-keys for `Engine`: the desk
/// core does not depend on where keys come from (files, HTTPS JWKS).
pub use lockdesk_verify::TokenVerifier;

/// The desk core's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeskConfig {
    /// The authenticated-session lifetime: a secured conversation lapses this long after its
    /// last valid token (iAdvize's default: 60 minutes; configured per brand).
    pub session_lifetime_secs: i64,
}

impl Default for DeskConfig {
    fn default() -> Self {
        DeskConfig {
            session_lifetime_secs: 3600,
        }
    }
}

/// Why the store could not be used. A malformed entry is not an error (see [`Applied::skipped`]).
#[derive(Debug, thiserror::Error)]
pub enum DeskError {
    #[error("desk store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("desk store: {0}")]
    Store(String),
    #[error("the desk store's schema is version {found}, newer than this program's {supported}: upgrade Lockdesk or use another data folder")]
    SchemaTooNew { found: i64, supported: i64 },
    #[error("desk store, audit log: {0}")]
    Audit(#[from] lockdesk_audit::AuditError),
    /// Erasure or purge refused (a broken audit log: nothing changed) or failed.
    #[error("{0}")]
    Retention(#[from] lockdesk_audit::RetentionError),
}

/// The desk core over one SQLite file. `Send`, not `Sync`: one owner (the feed client's
/// blocking thread, or a mutex in the app); queries from elsewhere can open a second `Desk` on
/// the same file (WAL lets readers run beside the writer).
pub struct Desk {
    conn: Connection,
    verifier: Arc<dyn TokenVerifier>,
    config: DeskConfig,
    cursor: u64,
    /// The latest gateway reception time among the entries applied through this handle.
    feed_clock_ms: Option<i64>,
}

impl Desk {
    /// Opens (creating and migrating if needed) the store at `path`. Refuses a store written by
    /// a newer version ([`DeskError::SchemaTooNew`]).
    pub fn open(
        path: &Path,
        verifier: Arc<dyn TokenVerifier>,
        config: DeskConfig,
    ) -> Result<Desk, DeskError> {
        let conn = store::open(path)?;
        let cursor = apply::read_meta(&conn, "cursor")?;
        Ok(Desk {
            conn,
            verifier,
            config: DeskConfig {
                session_lifetime_secs: config.session_lifetime_secs.max(1),
            },
            cursor,
            feed_clock_ms: None,
        })
    }

    /// The last `seq` whose effects are committed: resume the feed after it.
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    pub fn config(&self) -> &DeskConfig {
        &self.config
    }

    /// Applies a batch of feed entries in one transaction. Entries at or below the cursor are
    /// skipped (idempotence); evidence tokens are verified in parallel, each at its reception
    /// time, and time-based transitions up to each entry's reception time are applied on the
    /// way, so the result depends on the entries only. `now_ms` (the desk's clock) is recorded
    /// as [`Stats::applied_at_ms`]; lapses by the desk's clock come from [`Desk::tick`].
    /// Malformed entries are recorded, counted and returned in [`Applied::skipped`]; an `Err`
    /// means nothing of the batch was kept.
    pub fn apply(
        &mut self,
        entries: &[lockdesk_feed::Entry],
        now_ms: i64,
    ) -> Result<Applied, DeskError> {
        let applied = apply::apply(self, entries, now_ms)?;
        self.cursor = applied.cursor;
        // Only entries within the bounds were applied (the others were skipped).
        let latest = entries
            .iter()
            .filter(|e| e.check_bounds().is_ok())
            .map(|e| e.received_at_ms)
            .max();
        if let Some(latest) = latest {
            self.feed_clock_ms = Some(self.feed_clock_ms.map_or(latest, |c| c.max(latest)));
        }
        Ok(applied)
    }

    /// The feed's own clock: the latest gateway reception time among the entries applied
    /// through this handle (`None` before the first). While catching up on a backlog, time-based
    /// transitions are applied up to it, not up to the desk's clock.
    pub fn feed_clock_ms(&self) -> Option<i64> {
        self.feed_clock_ms
    }

    /// The gateway announced its log's identity: is it the log the cursor belongs to? The
    /// first one announced is remembered ([`LogBinding::Adopted`]); another one later is
    /// [`LogBinding::Different`], and the desk must not resume on it (its seqs mean other
    /// entries). Starting on another log takes a new store.
    pub fn bind_log(&mut self, log_id: &str) -> Result<LogBinding, DeskError> {
        log::bind(&mut self.conn, log_id)
    }

    /// A heartbeat: everything visible to this desk up to `seq` has been received. Advances the
    /// cursor (never moves it back).
    pub fn note_seen(&mut self, seq: u64) -> Result<(), DeskError> {
        if seq > self.cursor {
            self.conn.execute(
                "UPDATE desk_meta SET value = ?1 WHERE key = 'cursor' AND value < ?1",
                [seq as i64],
            )?;
            self.cursor = seq;
        }
        Ok(())
    }

    /// Time-based transitions at `now_ms` (the desk's clock): secured conversations whose
    /// session ended become `lapsed` (alert `session_lapsed`). Call it on a timer.
    pub fn tick(&mut self, now_ms: i64) -> Result<Vec<Change>, DeskError> {
        apply::tick(self, now_ms)
    }

    /// Records closed conversations from iAdvize's GraphQL API: creates those the desk never
    /// saw, closes those still open, and compares the platform's `externalUserId` with the
    /// verified userId (a difference: `mismatch`, alert `platform_mismatch`). Idempotent.
    pub fn backfill(
        &mut self,
        records: &[ClosedConversation],
        now_ms: i64,
    ) -> Result<Vec<Change>, DeskError> {
        apply::backfill(self, records, now_ms)
    }

    // history, conversations, conversation, alerts, alert_counts, alert, stats, log_id: the
    // same reads as DeskReader's, defined once.
    query::read_queries!();

    /// Verifies the audit chain and checks the desk's tables against it, in one read
    /// transaction: each conversation's state, kept state, reason and userId against its
    /// latest transition entry and its stored state machine, a secured session against the
    /// log's valid tokens, display names against signed visitorData, alerts against alert
    /// entries, and rows the log lacks or entries whose rows are gone (purges and erasures are
    /// accounted for). Linear in the log and the tables. `progress` gets the number of log
    /// entries checked every 65,536. A broken chain is [`CheckError::Chain`].
    pub fn check_against_audit(
        &self,
        progress: &mut dyn FnMut(u64),
    ) -> Result<StoreCheck, CheckError> {
        check::check_store(&self.conn, self.config.session_lifetime_secs, progress)
    }
}

/// The feed client moves the desk onto its blocking thread: it must stay `Send`.
const _: () = {
    const fn send<T: Send>() {}
    send::<Desk>();
};
