//! The tables, and appending to the chain.

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::Value;

use crate::chain::{self, Chained, SALT_LEN};
use crate::{AuditError, Head, Record, VISITOR_DATA_KEY};

/// This crate's schema version (row `audit_schema.version`), independent of the desk's.
pub const SCHEMA_VERSION: i64 = STEPS.len() as i64;

/// `STEPS[i]` brings `audit_schema.version` from `i` to `i + 1`; released steps are never edited.
const STEPS: &[&str] = &[SCHEMA_V1];

/// The audit log's scheme for the shared migration routine ([`lockdesk_sqlite::migrate`]): a
/// one-row table, as it shares the desk's file.
const SCHEME: lockdesk_sqlite::Scheme<'static, AuditError> = lockdesk_sqlite::Scheme {
    name: "audit log",
    version_at: lockdesk_sqlite::VersionAt::OneRow("audit_schema"),
    steps: STEPS,
    after_step: None,
};

impl From<lockdesk_sqlite::SchemaTooNew> for AuditError {
    fn from(e: lockdesk_sqlite::SchemaTooNew) -> Self {
        AuditError::SchemaTooNew {
            found: e.found,
            supported: e.supported,
        }
    }
}

const SCHEMA_V1: &str = "
CREATE TABLE audit_log (
    seq             INTEGER PRIMARY KEY,   -- 1, 2, 3... without gaps (purge removes a prefix)
    at_ms           INTEGER NOT NULL,
    kind            TEXT    NOT NULL,
    conversation_id TEXT,
    operator_id     INTEGER,
    data            TEXT    NOT NULL,      -- canonical JSON, without visitorData
    user_id         TEXT,                  -- personal: NULL once erased
    visitor_id      TEXT,                  -- personal: NULL once erased
    visitor_data    TEXT,                  -- personal (canonical JSON): NULL once erased
    salt            BLOB,                  -- NULL once erased (the tombstone)
    commitment      BLOB    NOT NULL,      -- SHA-256 over salt + personal fields
    prev_hash       BLOB    NOT NULL,
    hash            BLOB    NOT NULL,
    erased_by       INTEGER                -- seq of the erasure entry that made it a tombstone
);
-- No index on at_ms: appends stay cheap; purge scans from the start (what it removes) and
-- exports scan in seq order anyway.
-- Where the chain starts: seq 1 after 32 zero bytes, or after a purge the first kept seq and
-- the hash of the last purged entry. The latest purge entry (chained) must agree with it.
CREATE TABLE audit_anchor (
    id                INTEGER PRIMARY KEY CHECK (id = 1),
    start_seq         INTEGER NOT NULL,
    prev_hash         BLOB    NOT NULL,
    purged_tombstones TEXT    NOT NULL    -- JSON {erasure seq: tombstones purged}, cumulative
);
INSERT INTO audit_anchor (id, start_seq, prev_hash, purged_tombstones) VALUES (1, 1, zeroblob(32), '{}');
";

/// Create or upgrade the audit tables. Idempotent; run it on every open (it is cheap). Inside
/// the caller's transaction if it opened one (the desk's), else in its own; a half-created
/// schema is never committed.
pub fn migrate(conn: &Connection) -> Result<(), AuditError> {
    lockdesk_sqlite::migrate(conn, &SCHEME)?;
    Ok(())
}

/// A consistent snapshot of the log even while the desk appends: a read transaction, or none
/// when the caller has one open (the reads are then nested in it).
pub(crate) fn snapshot(conn: &Connection) -> rusqlite::Result<Option<rusqlite::Transaction<'_>>> {
    if conn.is_autocommit() {
        conn.unchecked_transaction().map(Some)
    } else {
        Ok(None)
    }
}

/// Fails with [`AuditError::NotInitialised`] when the tables are missing (a desk file from
/// before the audit log, or not a desk file at all).
pub(crate) fn check_initialised(conn: &Connection) -> Result<(), AuditError> {
    let n: i64 = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('audit_schema', 'audit_log', 'audit_anchor')",
        [],
        |r| r.get(0),
    )?;
    if n != 3 {
        return Err(AuditError::NotInitialised);
    }
    let version: Option<i64> = conn
        .query_row("SELECT version FROM audit_schema WHERE id = 1", [], |r| {
            r.get(0)
        })
        .optional()?;
    match version {
        Some(v) if v > SCHEMA_VERSION => Err(AuditError::SchemaTooNew {
            found: v,
            supported: SCHEMA_VERSION,
        }),
        Some(v) if v >= 1 => Ok(()),
        _ => Err(AuditError::NotInitialised),
    }
}

/// Append one entry, as part of whatever transaction `conn` has open (the desk's). Returns the
/// new head.
pub fn append(conn: &Connection, record: &Record) -> Result<Head, AuditError> {
    if record.kind.is_reserved() {
        return Err(AuditError::ReservedKind(record.kind));
    }
    append_any(conn, record)
}

/// The tip to append after: (last seq, its hash), or the anchor's (start_seq - 1, prev_hash).
pub(crate) fn tip(conn: &Connection) -> Result<(u64, [u8; 32]), AuditError> {
    let last: Option<(i64, Vec<u8>)> = conn
        .prepare_cached("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let (seq, hash) = match last {
        Some(x) => x,
        None => {
            let (start, prev): (i64, Vec<u8>) = conn
                .prepare_cached("SELECT start_seq, prev_hash FROM audit_anchor WHERE id = 1")?
                .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?
                .ok_or(AuditError::NotInitialised)?;
            (start - 1, prev)
        }
    };
    let seq = u64::try_from(seq).map_err(|_| AuditError::Damaged {
        seq: 0,
        what: format!("negative seq {seq} at the head"),
    })?;
    let hash: [u8; 32] = hash.try_into().map_err(|_| AuditError::Damaged {
        seq,
        what: "the head's hash is not 32 bytes".into(),
    })?;
    Ok((seq, hash))
}

pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N], AuditError> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| AuditError::Random(e.to_string()))?;
    Ok(b)
}

/// Split `data` into its public part and its personal `visitorData`, both canonical JSON.
pub(crate) fn split_data(data: &Value) -> (String, Option<String>) {
    match data {
        // `"visitorData": null` is no personal data: stored as NULL, like an absent key (an
        // export writes both as `null`, and must re-verify).
        Value::Object(map) => match map.get(VISITOR_DATA_KEY) {
            Some(Value::Null) => (chain::canonical_object_without(map, VISITOR_DATA_KEY), None),
            Some(personal) => (
                chain::canonical_object_without(map, VISITOR_DATA_KEY),
                Some(chain::canonical_json(personal)),
            ),
            None => (chain::canonical_json(data), None),
        },
        other => (chain::canonical_json(other), None),
    }
}

/// Append any kind (reserved ones included).
pub(crate) fn append_any(conn: &Connection, record: &Record) -> Result<Head, AuditError> {
    let operator_id = match record.operator_id {
        None => None,
        Some(id) => Some(i64::try_from(id).map_err(|_| AuditError::OperatorIdTooLarge(id))?),
    };
    let (prev_seq, prev_hash) = tip(conn)?;
    let seq = prev_seq + 1;
    let salt: [u8; SALT_LEN] = random_bytes()?;
    let (data, visitor_data) = split_data(&record.data);
    let commitment = chain::commitment(
        &salt,
        record.user_id.as_deref(),
        record.visitor_id.as_deref(),
        visitor_data.as_deref(),
    );
    let kind = record.kind.as_str();
    let hash = chain::entry_hash(&Chained {
        seq,
        prev_hash: &prev_hash,
        at_ms: record.at_ms,
        kind,
        conversation_id: record.conversation_id.as_deref(),
        operator_id: record.operator_id,
        data: &data,
        commitment: &commitment,
    });
    let seq_i = i64::try_from(seq).map_err(|_| AuditError::Damaged {
        seq,
        what: "the log is full (seq overflow)".into(),
    })?;
    conn.prepare_cached(
        "INSERT INTO audit_log (seq, at_ms, kind, conversation_id, operator_id, data, user_id,
             visitor_id, visitor_data, salt, commitment, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )?
    .execute(params![
        seq_i,
        record.at_ms,
        kind,
        record.conversation_id,
        operator_id,
        data,
        record.user_id,
        record.visitor_id,
        visitor_data,
        &salt[..],
        &commitment[..],
        &prev_hash[..],
        &hash[..],
    ])?;
    Ok(Head {
        seq,
        hash_hex: hex::encode(hash),
    })
}

/// The current head, or `None` while the log is empty.
pub fn head(conn: &Connection) -> Result<Option<Head>, AuditError> {
    check_initialised(conn)?;
    let last: Option<(i64, Vec<u8>)> = conn
        .prepare_cached("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    Ok(last.map(|(seq, hash)| Head {
        seq: u64::try_from(seq).unwrap_or(0),
        hash_hex: hex::encode(hash),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Kind;
    use serde_json::json;

    fn rec(i: i64) -> Record {
        Record {
            at_ms: 1_000 + i,
            kind: Kind::Verdict,
            conversation_id: Some(format!("c{i}")),
            visitor_id: Some("v1".into()),
            user_id: Some("u1".into()),
            operator_id: Some(7),
            data: json!({"verdict": "verified", "visitorData": {"email": "a@b.example"}}),
        }
    }

    #[test]
    fn migrate_is_idempotent_and_append_chains_inside_the_callers_transaction() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&conn).unwrap();
        migrate(&conn).unwrap();
        assert_eq!(head(&conn).unwrap(), None);
        let tx = conn.transaction().unwrap();
        let h1 = append(&tx, &rec(1)).unwrap();
        let h2 = append(&tx, &rec(2)).unwrap();
        tx.commit().unwrap();
        assert_eq!((h1.seq, h2.seq), (1, 2));
        assert_eq!(head(&conn).unwrap(), Some(h2.clone()));
        let prev: Vec<u8> = conn
            .query_row("SELECT prev_hash FROM audit_log WHERE seq = 2", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(hex::encode(prev), h1.hash_hex);
        // A rolled-back transaction appends nothing.
        let tx = conn.transaction().unwrap();
        append(&tx, &rec(3)).unwrap();
        drop(tx);
        assert_eq!(head(&conn).unwrap(), Some(h2));
        // visitorData is stored apart from the public details.
        let (data, vd): (String, String) = conn
            .query_row(
                "SELECT data, visitor_data FROM audit_log WHERE seq = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(data, r#"{"verdict":"verified"}"#);
        assert_eq!(vd, r#"{"email":"a@b.example"}"#);
    }

    #[test]
    fn reserved_kinds_and_oversized_operator_ids_are_refused() {
        let conn = Connection::open_in_memory().unwrap();
        migrate(&conn).unwrap();
        let mut r = rec(1);
        r.kind = Kind::Erasure;
        assert!(matches!(
            append(&conn, &r),
            Err(AuditError::ReservedKind(Kind::Erasure))
        ));
        let mut r = rec(1);
        r.operator_id = Some(u64::MAX);
        assert!(matches!(
            append(&conn, &r),
            Err(AuditError::OperatorIdTooLarge(_))
        ));
        assert_eq!(head(&conn).unwrap(), None);
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let conn = Connection::open_in_memory().unwrap();
        migrate(&conn).unwrap();
        conn.execute("UPDATE audit_schema SET version = 99", [])
            .unwrap();
        assert!(matches!(
            migrate(&conn),
            Err(AuditError::SchemaTooNew { found: 99, .. })
        ));
        assert!(matches!(head(&conn), Err(AuditError::SchemaTooNew { .. })));
    }
}
