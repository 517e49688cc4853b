//! Opening the SQLite file: pragmas and versioned migrations.
//!
//! The schema version lives in our own table `desk_schema` rather than `PRAGMA user_version`,
//! because the audit chain (`lockdesk-audit`) migrates its own tables in the same file.

use rusqlite::Connection;

use crate::DeskError;

/// `MIGRATIONS[i]` brings the schema from version `i` to `i + 1`. Released entries are never
/// edited; a change is a new entry.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    r#"
CREATE TABLE desk_meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO desk_meta (key, value) VALUES ('cursor', 0), ('malformed', 0), ('ignored', 0);

-- iAdvize visitor ids: one per browser or app install (a device).
CREATE TABLE visitors (
    id            INTEGER PRIMARY KEY,
    visitor_id    TEXT NOT NULL UNIQUE,
    first_seen_ms INTEGER NOT NULL,
    last_seen_ms  INTEGER NOT NULL,
    -- the userId of the latest valid token on this device (shared-device detection)
    last_user_id  TEXT
);

CREATE TABLE conversations (
    id                INTEGER PRIMARY KEY,
    conversation_id   TEXT NOT NULL UNIQUE,
    visitor           INTEGER NOT NULL REFERENCES visitors(id),
    channel           TEXT NOT NULL,
    operator_id       INTEGER,
    source            TEXT,     -- web | app
    domain            TEXT,
    device            TEXT,
    app               TEXT,
    opened_ms         INTEGER,
    closed_ms         INTEGER,
    state             TEXT NOT NULL,  -- the state name, 'closed' when closed
    auth_state        TEXT NOT NULL,  -- the kept state when closed, else = state
    reason            TEXT,
    user_id           TEXT,           -- the first userId verified in the conversation
    other_user_id     TEXT,           -- mismatch: the other one
    name              TEXT,           -- from the signed visitorData of the latest valid token
    since_ms          INTEGER,
    until_ms          INTEGER,
    first_verified_ms INTEGER,
    last_verified_ms  INTEGER,
    platform_user_id  TEXT,           -- Visitor.externalUserId, from the backfill
    machine           TEXT NOT NULL   -- lockdesk_conversation::Conversation as JSON
);
CREATE INDEX conversations_visitor ON conversations(visitor, opened_ms);
CREATE INDEX conversations_opened ON conversations(opened_ms);
CREATE INDEX conversations_secured_until ON conversations(until_ms) WHERE state = 'secured';

-- userIds proved by a valid token, with the latest signed visitorData as received.
CREATE TABLE identities (
    id              INTEGER PRIMARY KEY,
    user_id         TEXT NOT NULL UNIQUE,
    visitor_data    TEXT,
    first_seen_ms   INTEGER NOT NULL,
    last_seen_ms    INTEGER NOT NULL
);

CREATE TABLE identity_visitors (
    identity      INTEGER NOT NULL REFERENCES identities(id),
    visitor       INTEGER NOT NULL REFERENCES visitors(id),
    first_seen_ms INTEGER NOT NULL,
    last_seen_ms  INTEGER NOT NULL,
    PRIMARY KEY (identity, visitor)
) WITHOUT ROWID;
CREATE INDEX identity_visitors_visitor ON identity_visitors(visitor);

-- Every token presentation; the token itself only as its SHA-256.
CREATE TABLE presentations (
    id                INTEGER PRIMARY KEY,
    seq               INTEGER NOT NULL UNIQUE,
    received_ms       INTEGER NOT NULL,
    presented_at      TEXT,
    visitor           INTEGER NOT NULL REFERENCES visitors(id),
    conversation      INTEGER REFERENCES conversations(id),
    named_conversation TEXT,          -- the conversationId the evidence named, if any
    verdict           TEXT NOT NULL,  -- verified | rejected
    reason            TEXT,
    detail            TEXT,
    user_id           TEXT,
    visitor_data      TEXT,
    issuer            TEXT,
    expires_ms        INTEGER,
    signing_key       TEXT,
    decryption_key    TEXT,
    token_sha256      TEXT NOT NULL,
    domain            TEXT,
    device            TEXT,
    app               TEXT
);
CREATE INDEX presentations_conversation ON presentations(conversation, received_ms);
CREATE INDEX presentations_pending ON presentations(visitor, received_ms) WHERE conversation IS NULL;

CREATE TABLE transitions (
    id           INTEGER PRIMARY KEY,
    conversation INTEGER NOT NULL REFERENCES conversations(id),
    seq          INTEGER,
    at_ms        INTEGER NOT NULL,
    state        TEXT NOT NULL,
    reason       TEXT,
    user_id      TEXT
);
CREATE INDEX transitions_conversation ON transitions(conversation);

CREATE TABLE alerts (
    id           INTEGER PRIMARY KEY,
    seq          INTEGER,
    at_ms        INTEGER NOT NULL,
    code         TEXT NOT NULL,
    conversation INTEGER REFERENCES conversations(id),
    visitor      INTEGER REFERENCES visitors(id),
    user_id      TEXT,
    evidence     TEXT NOT NULL
);
CREATE INDEX alerts_conversation ON alerts(conversation);

-- Entries that could not be applied (never their payload: it may hold a token).
CREATE TABLE malformed (
    seq         INTEGER PRIMARY KEY,
    received_ms INTEGER NOT NULL,
    error       TEXT NOT NULL
);
"#,
    // 2: look-alike identities (issue 12). `skeleton` is the UTS #39 skeleton of the userId
    // (back-filled in Rust after this script: `lookalike::backfill`); `lookalike_of` the other
    // known identity it looks like; `mixed_script` whether it mixes scripts.
    r#"
ALTER TABLE identities ADD COLUMN skeleton TEXT;
ALTER TABLE identities ADD COLUMN lookalike_of TEXT;
ALTER TABLE identities ADD COLUMN mixed_script INTEGER NOT NULL DEFAULT 0;
CREATE INDEX identities_skeleton ON identities(skeleton);
"#,
    // 3: the identity of the gateway log the cursor belongs to (`hello.logId`), remembered on
    // the first connection that announces one; a store from before it adopts the first one seen.
    r#"
CREATE TABLE feed_log (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    log_id TEXT NOT NULL
);
"#,
    // 4: the look-alike key trims and collapses whitespace (`lookalike::skeleton`): every
    // stored skeleton is recomputed in Rust after this (empty) script, `lookalike::backfill`.
    "",
];

/// The store holds personal data (names, e-mails): owner-only (0600) on Unix. SQLite creates the
/// `-wal` and `-shm` files with the main file's mode, so the main file is created 0600 before
/// SQLite opens it; an older store (or its `-wal`/`-shm`) readable by others is tightened.
fn make_private(path: &std::path::Path) -> Result<(), DeskError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let err = |what: &std::path::Path, e: std::io::Error| {
            DeskError::Store(format!("cannot make {} owner-only: {e}", what.display()))
        };
        if !path.exists() {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
            {
                Ok(_) => {}
                // Another handle created it meanwhile: tightened below like any existing file.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(err(path, e)),
            }
        }
        let mut names = vec![path.to_owned()];
        for suffix in ["-wal", "-shm"] {
            let mut name = path.as_os_str().to_owned();
            name.push(suffix);
            names.push(name.into());
        }
        for file in names {
            let Ok(meta) = std::fs::metadata(&file) else {
                continue;
            };
            if meta.is_file() && meta.permissions().mode() & 0o077 != 0 {
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
                    .map_err(|e| err(&file, e))?;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Opens (creating if needed) and migrates the store.
pub(crate) fn open(path: &std::path::Path) -> Result<Connection, DeskError> {
    make_private(path)?;
    let mut conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(DeskError::Store(format!(
            "the store could not switch to WAL journaling (got {mode})"
        )));
    }
    // NORMAL, not FULL: in WAL mode a commit is still atomic and survives a process crash
    // (SIGKILL) at any point; only a power loss can drop the last commits. Those are whole
    // batches *with their cursor*, so the desk resumes before them and the gateway (whose log
    // is fsynced, FULL) sends them again: nothing is lost and nothing is applied twice, and
    // each batch saves an fsync.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    // 32 MiB of page cache (the default is 2 MiB): history and list queries stay in memory.
    conn.pragma_update(None, "cache_size", -32_768)?;
    migrate(&mut conn)?;
    Ok(conn)
}

/// The schema version the code writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// The desk's scheme for the shared migration routine ([`lockdesk_sqlite::migrate`]): a row per
/// step in `desk_schema` (not `PRAGMA user_version`: the audit log shares the file).
const SCHEME: lockdesk_sqlite::Scheme<'static, DeskError> = lockdesk_sqlite::Scheme {
    name: "desk store",
    version_at: lockdesk_sqlite::VersionAt::RowPerStep("desk_schema"),
    steps: MIGRATIONS,
    after_step: Some(after_step),
};

/// Versions 2 and 4 changed how look-alike skeletons are computed: recomputed in Rust.
fn after_step(conn: &Connection, version: i64) -> Result<(), DeskError> {
    match version {
        2 | 4 => crate::lookalike::backfill(conn),
        _ => Ok(()),
    }
}

impl From<lockdesk_sqlite::SchemaTooNew> for DeskError {
    fn from(e: lockdesk_sqlite::SchemaTooNew) -> Self {
        DeskError::SchemaTooNew {
            found: e.found,
            supported: e.supported,
        }
    }
}

/// The desk's steps, then the audit log's, in one transaction.
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), DeskError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    lockdesk_sqlite::migrate(&tx, &SCHEME)?;
    crate::audit::migrate(&tx)?;
    tx.commit()?;
    Ok(())
}
