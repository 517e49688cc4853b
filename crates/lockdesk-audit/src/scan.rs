//! The conversations that have an entry of one kind (the supervisor's "no verification data"
//! rows are those with a `backfill` entry), kept up to date incrementally: the `kind` column is
//! not indexed (appends stay cheap), so a full answer is one scan of the whole log. A
//! [`ConversationsOfKind`] remembers the last entry it read (seq and hash) and, next time,
//! reads only the entries after it, by the primary key. It reads the whole log again when that
//! entry is gone or different (a purge, another file at the same path, an edited log) or when a
//! purge entry follows it (a purge removes entries, which an incremental read cannot see).

use std::collections::HashSet;

use rusqlite::{Connection, OptionalExtension};

use crate::{AuditError, Kind};

/// The conversation ids of the entries of one kind, read incrementally (see the module).
#[derive(Debug)]
pub struct ConversationsOfKind {
    kind: Kind,
    ids: HashSet<String>,
    /// The last entry read: seq and hash.
    last: Option<(i64, Vec<u8>)>,
    full_scans: u64,
}

impl ConversationsOfKind {
    pub fn new(kind: Kind) -> ConversationsOfKind {
        ConversationsOfKind {
            kind,
            ids: HashSet::new(),
            last: None,
            full_scans: 0,
        }
    }

    /// How many times the whole log was read (for tests and diagnostics).
    pub fn full_scans(&self) -> u64 {
        self.full_scans
    }

    /// The ids as of `conn`'s log now (run it inside the caller's read transaction for a
    /// consistent answer with other reads).
    pub fn refresh(&mut self, conn: &Connection) -> Result<&HashSet<String>, AuditError> {
        crate::store::check_initialised(conn)?;
        let still_there = match &self.last {
            // Never read (a first, whole read), or read when empty (nothing to lose: the
            // entries after "nothing" are the whole log).
            None => self.full_scans > 0,
            Some((seq, hash)) => {
                let stored: Option<Vec<u8>> = conn
                    .prepare_cached("SELECT hash FROM audit_log WHERE seq = ?1")?
                    .query_row([seq], |r| r.get(0))
                    .optional()?;
                stored.as_ref() == Some(hash)
            }
        };
        if still_there && !self.read_after(conn, false)? {
            return Ok(&self.ids);
        }
        self.ids.clear();
        self.last = None;
        self.full_scans += 1;
        self.read_after(conn, true)?;
        Ok(&self.ids)
    }

    /// Reads the entries after `last`; `Ok(true)`: a purge entry was met (read again whole),
    /// unless `full`.
    fn read_after(&mut self, conn: &Connection, full: bool) -> Result<bool, AuditError> {
        let after = self.last.as_ref().map_or(i64::MIN, |l| l.0);
        let mut stmt = conn.prepare_cached(
            "SELECT seq, kind, conversation_id, hash FROM audit_log WHERE seq > ?1 ORDER BY seq",
        )?;
        let mut rows = stmt.query([after])?;
        let want = self.kind.as_str();
        let purge = Kind::Purge.as_str();
        while let Some(r) = rows.next()? {
            let kind: String = r.get(1)?;
            if !full && kind == purge {
                return Ok(true);
            }
            if kind == want {
                if let Some(id) = r.get::<_, Option<String>>(2)? {
                    self.ids.insert(id);
                }
            }
            self.last = Some((r.get(0)?, r.get(3)?));
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{append, migrate, Record};
    use serde_json::json;

    fn log() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        migrate(&conn).unwrap();
        conn
    }

    fn add(conn: &Connection, kind: Kind, conversation: &str) {
        append(
            conn,
            &Record {
                at_ms: 1_000,
                kind,
                conversation_id: Some(conversation.into()),
                visitor_id: None,
                user_id: None,
                operator_id: None,
                data: json!({}),
            },
        )
        .unwrap();
    }

    fn sorted(ids: &HashSet<String>) -> Vec<&str> {
        let mut v: Vec<&str> = ids.iter().map(String::as_str).collect();
        v.sort_unstable();
        v
    }

    #[test]
    fn new_entries_are_read_without_reading_the_log_again() {
        let conn = log();
        let mut scan = ConversationsOfKind::new(Kind::Backfill);
        assert!(scan.refresh(&conn).unwrap().is_empty());
        add(&conn, Kind::Backfill, "a");
        add(&conn, Kind::Transition, "b");
        assert_eq!(sorted(scan.refresh(&conn).unwrap()), ["a"]);
        assert_eq!(sorted(scan.refresh(&conn).unwrap()), ["a"]);
        add(&conn, Kind::Backfill, "c");
        assert_eq!(sorted(scan.refresh(&conn).unwrap()), ["a", "c"]);
        // The first read was whole (nothing read yet), the rest incremental.
        assert_eq!(scan.full_scans(), 1);
    }

    #[test]
    fn another_log_at_the_last_entry_is_read_again_whole() {
        let first = log();
        add(&first, Kind::Backfill, "a");
        let mut scan = ConversationsOfKind::new(Kind::Backfill);
        assert_eq!(sorted(scan.refresh(&first).unwrap()), ["a"]);
        // Another file (same seq 1, another entry, so another hash).
        let second = log();
        add(&second, Kind::Backfill, "z");
        add(&second, Kind::Backfill, "y");
        assert_eq!(sorted(scan.refresh(&second).unwrap()), ["y", "z"]);
        assert_eq!(scan.full_scans(), 2);
        // An emptied log (the last entry gone): read whole, nothing found.
        let empty = log();
        assert!(scan.refresh(&empty).unwrap().is_empty());
        assert_eq!(scan.full_scans(), 3);
    }

    #[test]
    fn a_purge_is_read_whole_so_purged_entries_leave() {
        let conn = log();
        add(&conn, Kind::Backfill, "old");
        add(&conn, Kind::Backfill, "new");
        // A later entry, kept by the purge: the last entry read is still there after it.
        append(
            &conn,
            &Record {
                at_ms: 5_000,
                kind: Kind::Backfill,
                conversation_id: Some("kept".into()),
                visitor_id: None,
                user_id: None,
                operator_id: None,
                data: json!({}),
            },
        )
        .unwrap();
        let mut scan = ConversationsOfKind::new(Kind::Backfill);
        assert_eq!(sorted(scan.refresh(&conn).unwrap()), ["kept", "new", "old"]);
        // The entries before 2,000 ms go; a purge entry is appended after the kept one.
        crate::purge(&conn, 2_000, 6_000).unwrap();
        assert_eq!(sorted(scan.refresh(&conn).unwrap()), ["kept"]);
        assert_eq!(scan.full_scans(), 2);
    }
}
