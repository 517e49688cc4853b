//! Retention: purging old entries, and erasing one user's personal data (GDPR), both keeping
//! the chain verifiable. Both check the chain first (they refuse to act on a broken log: that
//! would destroy the evidence), change it in one `BEGIN IMMEDIATE` transaction, and both scrub
//! the file afterwards (`secure_delete`, `VACUUM`, WAL truncated) so the removed bytes are gone
//! from disk, not just unlinked from the B-tree.

use std::collections::BTreeMap;

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use serde_json::json;

use crate::store::{append_any, tip};
use crate::verify::{counts_to_value, read_anchor, verify, VerifyError};
use crate::{AuditError, Head, Kind, Record};

#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    #[error("refusing to change a broken audit log: {0}")]
    Broken(crate::verify::Broken),
    #[error(transparent)]
    Store(#[from] AuditError),
    #[error("{0} must run outside a transaction (it vacuums the file)")]
    InTransaction(&'static str),
}

impl From<rusqlite::Error> for RetentionError {
    fn from(e: rusqlite::Error) -> Self {
        RetentionError::Store(AuditError::Sqlite(e))
    }
}

impl From<VerifyError> for RetentionError {
    fn from(e: VerifyError) -> Self {
        match e {
            VerifyError::Broken(b) => RetentionError::Broken(b),
            VerifyError::Store(s) => RetentionError::Store(s),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PurgeReport {
    /// Entries removed (0: nothing was old enough, and no purge entry was written).
    pub purged_entries: u64,
    /// Entries 1..=this are gone.
    pub purged_through: u64,
    /// The purge entry's head, when something was purged.
    pub head: Option<Head>,
    /// False when another connection kept the write-ahead log from being truncated (the bytes
    /// are gone from the main file; the WAL is rewritten at the next checkpoint).
    pub file_scrubbed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErasureReport {
    /// Entries turned into tombstones (0: nothing held that user, and no erasure entry was
    /// written).
    pub erased_entries: u64,
    /// The erasure entry's head, when something was erased.
    pub head: Option<Head>,
    pub file_scrubbed: bool,
}

/// Runs `f` in a write transaction taken at once (`BEGIN IMMEDIATE`): the tip read inside stays
/// the tip until commit, even while the desk appends from another connection (it waits for the
/// lock instead of failing with a stale snapshot). The caller has checked there is no
/// transaction open.
fn in_write_transaction<T>(
    conn: &Connection,
    f: impl FnOnce() -> Result<T, RetentionError>,
) -> Result<T, RetentionError> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    match f() {
        Ok(v) => {
            conn.execute_batch("COMMIT")?;
            Ok(v)
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// Remove the freed pages' bytes from the file: VACUUM rebuilds it (with secure_delete on,
/// freed space is zeroed too), then the WAL (which still holds old page images) is truncated.
/// Returns false if another connection kept the WAL from being truncated.
fn scrub(conn: &Connection) -> Result<bool, RetentionError> {
    conn.pragma_update(None, "secure_delete", "ON")?;
    conn.execute_batch("VACUUM")?;
    let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
    if mode.eq_ignore_ascii_case("wal") {
        let busy: i64 = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
        return Ok(busy == 0);
    }
    Ok(true)
}

/// Purge the oldest entries: the longest run from the start of the log whose `at_ms` is before
/// `cutoff_ms` (an entry at or after the cutoff stops the purge, even if older ones follow it).
/// Records a chained purge entry at `now_ms` carrying the last purged entry's seq and hash; the
/// anchor table holds the same, and verification starts from it.
pub fn purge(
    conn: &Connection,
    cutoff_ms: i64,
    now_ms: i64,
) -> Result<PurgeReport, RetentionError> {
    purge_with(conn, cutoff_ms, now_ms, false)
}

/// [`purge`], but a purge entry (with `cutoff_ms`) is recorded even when no entry is old enough
/// to go: the desk calls this when it removed rows of its own tables at that cutoff, so the
/// chained record says why conversations the log still names are gone from the store (the
/// desk's check against the log, `lockdesk_desk::Desk::check_against_audit`, relies on it).
pub fn purge_recording(
    conn: &Connection,
    cutoff_ms: i64,
    now_ms: i64,
) -> Result<PurgeReport, RetentionError> {
    purge_with(conn, cutoff_ms, now_ms, true)
}

fn purge_with(
    conn: &Connection,
    cutoff_ms: i64,
    now_ms: i64,
    always_record: bool,
) -> Result<PurgeReport, RetentionError> {
    if !conn.is_autocommit() {
        return Err(RetentionError::InTransaction("purge"));
    }
    verify(conn)?;
    let done = in_write_transaction(conn, || {
        let anchor = read_anchor(conn)?;
        let (head_seq, _) = tip(conn)?;
        // Scans from the start, stopping at the first entry to keep.
        let first_kept: Option<i64> = conn
            .query_row(
                "SELECT seq FROM audit_log WHERE at_ms >= ?1 ORDER BY seq LIMIT 1",
                [cutoff_ms],
                |r| r.get(0),
            )
            .optional()?;
        let through = match first_kept {
            Some(s) => u64::try_from(s).unwrap_or(0).saturating_sub(1),
            None => head_seq,
        };
        if through < anchor.start_seq && !always_record {
            return Ok(None);
        }
        // Nothing old enough: the entry records the cutoff and the unchanged anchor.
        let through = through.max(anchor.start_seq - 1);
        let through_i = i64::try_from(through).unwrap_or(i64::MAX);
        let last_hash: [u8; 32] = if through < anchor.start_seq {
            anchor.prev_hash
        } else {
            let last_hash: Vec<u8> = conn.query_row(
                "SELECT hash FROM audit_log WHERE seq = ?1",
                [through_i],
                |r| r.get(0),
            )?;
            last_hash.try_into().map_err(|_| AuditError::Damaged {
                seq: through,
                what: "hash is not 32 bytes".into(),
            })?
        };
        let mut purged: BTreeMap<u64, u64> = anchor.purged_tombstones.clone();
        {
            let mut stmt = conn.prepare(
                "SELECT erased_by, count(*) FROM audit_log
                 WHERE seq <= ?1 AND erased_by IS NOT NULL GROUP BY erased_by",
            )?;
            let mut rows = stmt.query([through_i])?;
            while let Some(r) = rows.next()? {
                let by: i64 = r.get(0)?;
                let n: i64 = r.get(1)?;
                *purged.entry(u64::try_from(by).unwrap_or(0)).or_insert(0) +=
                    u64::try_from(n).unwrap_or(0);
            }
        }
        // Erasure entries purged with their tombstones need no count any more.
        purged.retain(|by, _| *by > through);
        let removed = conn.execute("DELETE FROM audit_log WHERE seq <= ?1", [through_i])?;
        conn.execute(
            "UPDATE audit_anchor SET start_seq = ?1, prev_hash = ?2, purged_tombstones = ?3 WHERE id = 1",
            params![through_i + 1, &last_hash[..], counts_to_value(&purged).to_string()],
        )?;
        let head = append_any(
            conn,
            &Record {
                at_ms: now_ms,
                kind: Kind::Purge,
                conversation_id: None,
                visitor_id: None,
                user_id: None,
                operator_id: None,
                data: json!({
                    "purged_through": through,
                    "last_purged_hash": hex::encode(last_hash),
                    "purged_entries": removed,
                    "cutoff_ms": cutoff_ms,
                    "purged_tombstones": counts_to_value(&purged),
                }),
            },
        )?;
        Ok(Some((removed as u64, through, head)))
    })?;
    match done {
        None => Ok(PurgeReport {
            purged_entries: 0,
            purged_through: read_anchor(conn)?.start_seq - 1,
            head: None,
            file_scrubbed: true,
        }),
        Some((purged_entries, purged_through, head)) => Ok(PurgeReport {
            purged_entries,
            purged_through,
            head: Some(head),
            file_scrubbed: scrub(conn)?,
        }),
    }
}

/// Erase one user's personal data (GDPR): every entry with this `user_id`, and every entry of
/// the visitor ids seen with it (a visitor's entries before they were identified), becomes a
/// tombstone: `user_id`, `visitor_id`, `visitorData` and the salt are removed, the commitment
/// stays, so the chain still verifies. A chained erasure entry at `now_ms` records how many
/// (never whose). The file is then scrubbed.
pub fn erase_user(
    conn: &Connection,
    user_id: &str,
    now_ms: i64,
) -> Result<ErasureReport, RetentionError> {
    if !conn.is_autocommit() {
        return Err(RetentionError::InTransaction("erase"));
    }
    verify(conn)?;
    let done = in_write_transaction(conn, || {
        const TARGET: &str = "salt IS NOT NULL AND (user_id = ?1 OR visitor_id IN
             (SELECT visitor_id FROM audit_log WHERE user_id = ?1 AND visitor_id IS NOT NULL))";
        let (n, first, last): (i64, Option<i64>, Option<i64>) = conn.query_row(
            &format!("SELECT count(*), MIN(seq), MAX(seq) FROM audit_log WHERE {TARGET}"),
            [user_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        if n == 0 {
            return Ok(None);
        }
        let (head_seq, _) = tip(conn)?;
        let erasure_seq = i64::try_from(head_seq + 1).unwrap_or(i64::MAX);
        let changed = conn.execute(
            &format!(
                "UPDATE audit_log SET user_id = NULL, visitor_id = NULL, visitor_data = NULL,
                     salt = NULL, erased_by = ?2 WHERE {TARGET}"
            ),
            params![user_id, erasure_seq],
        )?;
        let head = append_any(
            conn,
            &Record {
                at_ms: now_ms,
                kind: Kind::Erasure,
                conversation_id: None,
                visitor_id: None,
                user_id: None,
                operator_id: None,
                data: json!({
                    "erased_entries": changed,
                    "first_seq": first,
                    "last_seq": last,
                }),
            },
        )?;
        Ok(Some((changed as u64, head)))
    })?;
    match done {
        None => Ok(ErasureReport {
            erased_entries: 0,
            head: None,
            file_scrubbed: true,
        }),
        Some((erased_entries, head)) => Ok(ErasureReport {
            erased_entries,
            head: Some(head),
            file_scrubbed: scrub(conn)?,
        }),
    }
}
