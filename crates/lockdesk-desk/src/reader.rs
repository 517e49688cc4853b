//! [`DeskReader`]: the desk store read by another part of the program (the supervisor's view,
//! history, audit status and exports in `lockdesk-api`), so that nothing outside this crate
//! opens the desk's SQLite file. Read-only (SQLite's `SQLITE_OPEN_READ_ONLY`: no write can
//! happen through it), never creates or migrates a store, and waits for the desk's writer
//! rather than fail (WAL: readers run beside it).
//!
//! The audit log in the same file is read through `lockdesk-audit` on this connection
//! ([`DeskReader::verify_audit`], [`DeskReader::export_audit`], [`DeskReader::audit_head`]);
//! [`DeskReader::snapshot`] holds one read transaction over several of them (an export then
//! writes exactly the entries that were verified).

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use lockdesk_audit::export::{ExportError, ExportOptions, ExportSummary, Format};
use lockdesk_audit::{ConversationsOfKind, Head, Kind, Report, VerifyError};
use rusqlite::{Connection, OpenFlags, Transaction};

use crate::check::{check_store, CheckError, StoreCheck};
use crate::{query, DeskError};

/// How long a read waits for the desk's writer before it fails.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A read-only handle on a desk store (see the module).
pub struct DeskReader {
    conn: Connection,
    path: PathBuf,
}

/// One read transaction over a [`DeskReader`] (dropped: ended). Within another, nothing more.
pub struct Snapshot<'r> {
    _tx: Option<Transaction<'r>>,
}

/// Per store file, the ids of the conversations with a `backfill` audit entry, kept for the
/// life of the process and read incrementally.
static BACKFILLED: Mutex<Option<HashMap<PathBuf, ConversationsOfKind>>> = Mutex::new(None);

impl DeskReader {
    /// Opens the store at `path`, which must exist.
    pub fn open(path: &Path) -> Result<DeskReader, DeskError> {
        if !path.is_file() {
            return Err(DeskError::Store(format!(
                "no desk store at {}",
                path.display()
            )));
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        Ok(DeskReader {
            conn,
            path: path.to_owned(),
        })
    }

    /// The store of the data folder `dir` (`<dir>/desk.sqlite3`), which must exist.
    pub fn open_in(dir: &Path) -> Result<DeskReader, DeskError> {
        DeskReader::open(&dir.join(lockdesk_audit::DEFAULT_FILE_NAME))
    }

    /// The store's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Holds one read transaction until the snapshot is dropped: every read through this
    /// reader meanwhile sees the store as it was when the first of them ran.
    pub fn snapshot(&self) -> Result<Snapshot<'_>, DeskError> {
        let tx = if self.conn.is_autocommit() {
            Some(self.conn.unchecked_transaction()?)
        } else {
            None
        };
        Ok(Snapshot { _tx: tx })
    }

    // history, conversations, conversation, alerts, alert_counts, alert, stats, log_id: the
    // same reads as Desk's, defined once.
    query::read_queries!();

    /// See [`crate::Desk::check_against_audit`]; `lifetime_secs` 0: each conversation's own.
    pub fn check_against_audit(
        &self,
        lifetime_secs: i64,
        progress: &mut dyn FnMut(u64),
    ) -> Result<StoreCheck, CheckError> {
        check_store(&self.conn, lifetime_secs, progress)
    }

    /// The audit log's stored head (what the file claims; [`DeskReader::verify_audit`] proves
    /// it).
    pub fn audit_head(&self) -> Result<Option<Head>, DeskError> {
        Ok(lockdesk_audit::head(&self.conn)?)
    }

    /// Verifies the whole audit chain ([`lockdesk_audit::verify()`]).
    pub fn verify_audit(&self) -> Result<Report, VerifyError> {
        lockdesk_audit::verify(&self.conn)
    }

    /// How many audit entries an export with these dates would hold
    /// ([`lockdesk_audit::export::count`], for a progress bar's length).
    pub fn count_audit(&self, opts: &ExportOptions) -> Result<u64, ExportError> {
        lockdesk_audit::export::count(&self.conn, opts)
    }

    /// Whether this store's audit log agrees with an export's head
    /// ([`lockdesk_audit::export::check_head_against_live`]): `Ok(true)` the entry has that
    /// hash, `Ok(false)` it was purged since, [`ExportError::Broken`] one of them was altered.
    pub fn check_export_head(&self, head: &Head) -> Result<bool, ExportError> {
        lockdesk_audit::export::check_head_against_live(&self.conn, head)
    }

    /// Streams the audit log ([`lockdesk_audit::export::export`]); to a file, through
    /// [`lockdesk_audit::file::write_file`].
    pub fn export_audit(
        &self,
        sink: &mut dyn Write,
        format: Format,
        opts: &ExportOptions,
        progress: &mut dyn FnMut(u64),
    ) -> Result<ExportSummary, ExportError> {
        lockdesk_audit::export::export(&self.conn, sink, format, opts, progress)
    }

    /// The conversations without verification data: created by the backfill (the audit log
    /// holds a `backfill` entry for them), never assigned to an advisor, no token ever
    /// presented in them and never secured. The desk did not watch them live, so "not secured"
    /// says nothing about them: the supervisor's charts show them as "no data". A purge that
    /// removed their backfill entries makes them ordinary unsecured conversations again.
    ///
    /// The backfilled ids are kept per store file for the life of the process and read
    /// incrementally ([`ConversationsOfKind`]: only the log entries after the last one read),
    /// so an overview does not scan the whole log; the conversations' own columns are read
    /// each time (by id, indexed).
    pub fn without_verification_data(&self) -> Result<HashSet<String>, DeskError> {
        let _snapshot = self.snapshot()?;
        let backfilled: Vec<String> = {
            let mut cache = BACKFILLED.lock().unwrap_or_else(|p| p.into_inner());
            let scan = cache
                .get_or_insert_with(HashMap::new)
                .entry(self.path.clone())
                .or_insert_with(|| ConversationsOfKind::new(Kind::Backfill));
            scan.refresh(&self.conn)?.iter().cloned().collect()
        };
        let mut stmt = self.conn.prepare_cached(
            "SELECT 1 FROM conversations c
             WHERE c.conversation_id = ?1 AND c.operator_id IS NULL
               AND c.first_verified_ms IS NULL
               AND NOT EXISTS (SELECT 1 FROM presentations p WHERE p.conversation = c.id)",
        )?;
        let mut out = HashSet::new();
        for id in backfilled {
            if stmt.exists([&id])? {
                out.insert(id);
            }
        }
        Ok(out)
    }

    /// How many times [`DeskReader::without_verification_data`] read this store's whole audit
    /// log in this process (tests: an overview must not).
    pub fn full_log_scans(&self) -> u64 {
        let cache = BACKFILLED.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .as_ref()
            .and_then(|c| c.get(&self.path))
            .map_or(0, ConversationsOfKind::full_scans)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ClosedConversation;
    use crate::ConversationQuery;
    use crate::{Desk, DeskConfig, TokenVerifier};
    use lockdesk_audit::export::ExportError;
    use lockdesk_verify::{Reason, Rejection, Verdict};
    use std::sync::Arc;

    /// Verifies nothing (no token is presented in these tests).
    struct Refuses;

    impl TokenVerifier for Refuses {
        fn verify(&self, _token: &[u8], _now: i64) -> Verdict {
            Verdict::Rejected(Rejection::new(Reason::UnknownKey, "no keys"))
        }
    }

    fn closed(id: &str, at: i64) -> ClosedConversation {
        ClosedConversation {
            conversation_id: id.into(),
            visitor_id: format!("v-{id}"),
            channel: "CHAT".into(),
            created_at_ms: at,
            closed_at_ms: at + 1_000,
            external_user_id: None,
        }
    }

    fn sorted(ids: HashSet<String>) -> Vec<String> {
        let mut v: Vec<String> = ids.into_iter().collect();
        v.sort_unstable();
        v
    }

    #[test]
    fn a_missing_store_is_not_created() {
        let dir = tempfile::tempdir().unwrap();
        assert!(DeskReader::open_in(dir.path()).is_err());
        assert!(!dir.path().join(lockdesk_audit::DEFAULT_FILE_NAME).exists());
    }

    #[test]
    fn no_data_conversations_are_read_incrementally_and_the_reader_cannot_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(lockdesk_audit::DEFAULT_FILE_NAME);
        let mut desk = Desk::open(&path, Arc::new(Refuses), DeskConfig::default()).unwrap();
        desk.backfill(&[closed("a", 1_000), closed("b", 2_000)], 10_000)
            .unwrap();
        let reader = DeskReader::open(&path).unwrap();
        assert_eq!(
            sorted(reader.without_verification_data().unwrap()),
            ["a", "b"]
        );
        assert_eq!(reader.full_log_scans(), 1);
        // Overviews without new entries, and one after a new backfilled conversation: the log
        // is not read whole again.
        assert_eq!(
            sorted(reader.without_verification_data().unwrap()),
            ["a", "b"]
        );
        desk.backfill(&[closed("c", 3_000)], 10_000).unwrap();
        assert_eq!(
            sorted(reader.without_verification_data().unwrap()),
            ["a", "b", "c"]
        );
        assert_eq!(reader.full_log_scans(), 1);
        // Another reader of the same file shares what was read.
        let other = DeskReader::open(&path).unwrap();
        assert_eq!(other.without_verification_data().unwrap().len(), 3);
        assert_eq!(other.full_log_scans(), 1);
        // Inside a snapshot (nested: no second transaction), with the desk's other reads.
        let snap = reader.snapshot().unwrap();
        assert_eq!(reader.without_verification_data().unwrap().len(), 3);
        assert_eq!(reader.stats().unwrap().cursor, 0);
        assert!(reader.verify_audit().is_ok());
        drop(snap);
        // Read-only: SQLite refuses a write on this connection.
        let refused = reader
            .conn
            .execute("UPDATE desk_meta SET value = 9 WHERE key = 'cursor'", []);
        assert!(refused.is_err());
    }

    #[test]
    fn the_log_id_and_the_audit_head_read_as_the_desk_wrote_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(lockdesk_audit::DEFAULT_FILE_NAME);
        let mut desk = Desk::open(&path, Arc::new(Refuses), DeskConfig::default()).unwrap();
        let reader = DeskReader::open(&path).unwrap();
        assert_eq!(reader.log_id().unwrap(), None);
        assert_eq!(reader.count_audit(&ExportOptions::default()).unwrap(), 0);
        desk.bind_log("log-1").unwrap();
        desk.backfill(&[closed("a", 1_000), closed("b", 2_000)], 10_000)
            .unwrap();
        assert_eq!(reader.log_id().unwrap().as_deref(), Some("log-1"));

        let entries = reader.verify_audit().unwrap().entries;
        assert!(
            entries >= 2,
            "one backfill entry per conversation: {entries}"
        );
        assert_eq!(
            reader.count_audit(&ExportOptions::default()).unwrap(),
            entries
        );
        // Dates past every entry: none.
        let later = ExportOptions {
            from_ms: Some(i64::MAX - 1),
            ..ExportOptions::default()
        };
        assert_eq!(reader.count_audit(&later).unwrap(), 0);

        let head = reader.audit_head().unwrap().expect("entries were appended");
        assert!(reader.check_export_head(&head).unwrap());
        let mut other = head.clone();
        other.hash_hex = if head.hash_hex.starts_with('0') {
            format!("1{}", &head.hash_hex[1..])
        } else {
            format!("0{}", &head.hash_hex[1..])
        };
        assert!(matches!(
            reader.check_export_head(&other),
            Err(ExportError::Broken(b)) if b.seq == head.seq
        ));
    }

    #[test]
    fn a_file_without_the_desk_schema_is_not_migrated() {
        let dir = tempfile::tempdir().unwrap();
        // An empty file and a foreign SQLite database: both open (the files exist), no read
        // succeeds, and neither is touched (no schema, no WAL switch, no user_version).
        let empty = dir.path().join("empty.sqlite3");
        std::fs::write(&empty, b"").unwrap();
        let reader = DeskReader::open(&empty).unwrap();
        assert!(reader.stats().is_err());
        assert!(reader.conversations(&ConversationQuery::default()).is_err());
        assert!(reader.verify_audit().is_err());
        drop(reader);
        assert_eq!(std::fs::metadata(&empty).unwrap().len(), 0);

        let foreign = dir.path().join("foreign.sqlite3");
        {
            let conn = Connection::open(&foreign).unwrap();
            conn.execute_batch("CREATE TABLE other (x INTEGER)")
                .unwrap();
        }
        let before = std::fs::read(&foreign).unwrap();
        let reader = DeskReader::open(&foreign).unwrap();
        assert!(reader.log_id().is_err());
        assert!(reader.audit_head().is_err());
        assert!(reader.count_audit(&ExportOptions::default()).is_err());
        drop(reader);
        assert_eq!(std::fs::read(&foreign).unwrap(), before);
        let conn = Connection::open(&foreign).unwrap();
        let tables: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_master ORDER BY name")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(tables, ["other"]);
    }
}
