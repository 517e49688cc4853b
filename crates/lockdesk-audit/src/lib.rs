//! The supervisor audit log: a tamper-evident hash chain in SQLite, verification, export,
//! retention and erasure (issue 7; `docs/audit.md` is the user reference).
//!
//! Every presentation, verdict, state transition and alert the desk records is also appended
//! here, in the desk's own SQLite file (`<data dir>/`[`DEFAULT_FILE_NAME`]) and inside the desk's
//! own transaction, so an event and its audit entry are committed or lost together.
//!
//! # API for the desk (how to call it)
//!
//! ```no_run
//! # fn demo(conn: &mut rusqlite::Connection) -> Result<(), lockdesk_audit::AuditError> {
//! use lockdesk_audit::{Kind, Record};
//! lockdesk_audit::migrate(conn)?; // once per open, after the desk's own migrations; idempotent
//! let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
//! // ... the desk's own writes ...
//! let head = lockdesk_audit::append(&tx, &Record {
//!     at_ms: 1_800_000_000_000,
//!     kind: Kind::Verdict,
//!     conversation_id: Some("conv-1".into()),
//!     visitor_id: Some("visitor-9".into()),
//!     user_id: Some("user-42".into()),
//!     operator_id: Some(7),
//!     data: serde_json::json!({
//!         "verdict": "verified", "reason": null, "kid": "brand-2026", "thumbprint": "q1w2...",
//!         "issuer": "https://brand.example", "visitorData": {"email": "a@b.example"}
//!     }),
//! })?;
//! tx.commit()?;
//! println!("head {} {}", head.seq, head.hash_hex);
//! # Ok(()) }
//! ```
//!
//! - [`migrate`] creates/upgrades only this crate's tables (`audit_schema`, `audit_log`,
//!   `audit_anchor`); its version is independent of the desk's schema.
//! - [`append`] never opens, commits or rolls back a transaction: it runs on whatever `conn` is
//!   (the desk's open transaction). It reads the tip then inserts, so open that transaction with
//!   `TransactionBehavior::Immediate` when other connections write the file (`audit erase` and
//!   `audit purge` from the CLI do): a deferred one fails with "database is locked" when its
//!   snapshot went stale.
//! - Personal data goes ONLY in `user_id`, `visitor_id` and the top-level `"visitorData"` key of
//!   `data`: those are what erasure removes and redaction masks. Everything else in `data`
//!   (reason codes, thumbprints, issuer, state names) stays readable after an erasure.
//! - [`Kind::Erasure`] and [`Kind::Purge`] are written by [`erase_user`] and [`purge`] only.
//! - [`head`] reads the current head; [`verify()`](verify::verify) checks the whole chain.
//!
//! # Design (details in [`chain`] and docs/audit.md)
//!
//! Each entry's hash covers its seq, the previous entry's hash, its public fields and a salted
//! commitment (SHA-256 with 16 random bytes) to its personal fields. Erasing a user removes the
//! personal fields and the salt but keeps the commitment, so the chain still verifies; without
//! the salt the commitment cannot confirm a guessed user id. Purging keeps an anchor (first kept
//! seq and the hash before it) that a chained purge entry vouches for.
//!
//! Must not: open or commit transactions in [`append`]; write personal data anywhere but the
//! personal columns; put personal data in `Debug` output or error messages; panic on anything
//! read from the file (a tampered file is a [`verify::Broken`], never a crash).

pub mod chain;
mod entry;
pub mod export;
pub mod file;
pub mod retention;
mod scan;
mod store;
pub mod verify;

pub use chain::canonical_json;
pub use entry::Entry;
pub use retention::{
    erase_user, purge, purge_recording, ErasureReport, PurgeReport, RetentionError,
};
pub use scan::ConversationsOfKind;
pub use store::{append, head, migrate, SCHEMA_VERSION};
pub use verify::{verify, verify_visiting, Broken, Report, VerifyError};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The desk store's file name in the data folder; the audit log lives in it.
pub const DEFAULT_FILE_NAME: &str = "desk.sqlite3";

/// The key of `Record::data` that holds the visitor's personal data (erased and redacted).
pub const VISITOR_DATA_KEY: &str = "visitorData";

/// What an entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A token/evidence was presented for a conversation.
    Presentation,
    /// The verification verdict (verified, or rejected with a reason code).
    Verdict,
    /// A conversation's authentication state changed (from/to state names in `data`).
    Transition,
    /// An alert was raised.
    Alert,
    /// A visitor's identity was linked (userId to visitorId).
    Identity,
    /// Events imported from iAdvize's GraphQL backfill.
    Backfill,
    /// A user's personal data was erased (written by [`erase_user`] only).
    Erasure,
    /// Old entries were purged (written by [`purge`] only).
    Purge,
}

impl Kind {
    pub const ALL: [Kind; 8] = [
        Kind::Presentation,
        Kind::Verdict,
        Kind::Transition,
        Kind::Alert,
        Kind::Identity,
        Kind::Backfill,
        Kind::Erasure,
        Kind::Purge,
    ];

    /// The name stored (and hashed) in the log.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Presentation => "presentation",
            Kind::Verdict => "verdict",
            Kind::Transition => "transition",
            Kind::Alert => "alert",
            Kind::Identity => "identity",
            Kind::Backfill => "backfill",
            Kind::Erasure => "erasure",
            Kind::Purge => "purge",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Kinds only this crate writes.
    pub fn is_reserved(self) -> bool {
        matches!(self, Kind::Erasure | Kind::Purge)
    }
}

/// One event to append.
#[derive(Clone, PartialEq)]
pub struct Record {
    /// When it happened (Unix milliseconds, the desk's clock).
    pub at_ms: i64,
    pub kind: Kind,
    pub conversation_id: Option<String>,
    /// Personal: erased and redacted.
    pub visitor_id: Option<String>,
    /// Personal: erased and redacted.
    pub user_id: Option<String>,
    /// The operator (advisor) involved, if any.
    pub operator_id: Option<u64>,
    /// Details: reason codes, key thumbprints, issuer, state names... Its top-level
    /// `"visitorData"` value is personal (erased and redacted); the rest is kept.
    pub data: Value,
}

impl std::fmt::Debug for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let personal = self.data.get(VISITOR_DATA_KEY).is_some();
        f.debug_struct("Record")
            .field("at_ms", &self.at_ms)
            .field("kind", &self.kind)
            .field("conversation_id", &self.conversation_id)
            .field(
                "visitor_id",
                &self.visitor_id.as_ref().map(|_| "<personal>"),
            )
            .field("user_id", &self.user_id.as_ref().map(|_| "<personal>"))
            .field("operator_id", &self.operator_id)
            .field("visitor_data", &personal.then_some("<personal>"))
            .finish_non_exhaustive()
    }
}

/// The chain's head: the last entry's seq and hash (hex, 64 characters).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    pub seq: u64,
    pub hash_hex: String,
}

/// What can go wrong appending, migrating, purging or erasing.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit log database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("the audit log's schema is version {found}, newer than this program's {supported}: upgrade Lockdesk")]
    SchemaTooNew { found: i64, supported: i64 },
    #[error("entries of kind {0:?} are written by the audit crate itself")]
    ReservedKind(Kind),
    #[error("operator id {0} does not fit the store (at most {max})", max = i64::MAX)]
    OperatorIdTooLarge(u64),
    #[error("no audit log in this database (run the desk once, or `migrate`)")]
    NotInitialised,
    #[error("the audit log is damaged at seq {seq}: {what} (run `lockdesk-cli audit verify`)")]
    Damaged { seq: u64, what: String },
    #[error("the operating system's random generator failed: {0}")]
    Random(String),
}
