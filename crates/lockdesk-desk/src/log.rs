//! Which gateway log the desk's cursor belongs to (docs/feed-protocol.md, `hello.logId`).
//!
//! A cursor is a position in one log: on another log (a gateway whose database was reset, or
//! another gateway) the same seqs mean other entries, so resuming there would silently skip or
//! misapply entries. The desk remembers the log's identity with its cursor and refuses another.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use crate::DeskError;

/// How the gateway's log compares with the one the desk's cursor belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogBinding {
    /// The same log: resume.
    Same,
    /// The desk knew no log yet (a new store, or one from before log identities): this one is
    /// remembered from now on.
    Adopted,
    /// Another log than `known`, the one the cursor belongs to: do not resume on it.
    Different { known: String },
}

pub(crate) fn known(conn: &Connection) -> Result<Option<String>, DeskError> {
    Ok(conn
        .prepare_cached("SELECT log_id FROM feed_log WHERE id = 1")?
        .query_row([], |r| r.get(0))
        .optional()?)
}

/// Compares `log_id` with the remembered one, remembering it when there is none (one
/// transaction: two desks on one store cannot adopt two logs).
pub(crate) fn bind(conn: &mut Connection, log_id: &str) -> Result<LogBinding, DeskError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let binding = match known(&tx)? {
        Some(known) if known == log_id => LogBinding::Same,
        Some(known) => LogBinding::Different { known },
        None => {
            tx.execute("INSERT INTO feed_log (id, log_id) VALUES (1, ?1)", [log_id])?;
            LogBinding::Adopted
        }
    };
    tx.commit()?;
    Ok(binding)
}

/// Moves the desk store at `path` aside, beside it, as `desk.log-<its log id>.sqlite3` (a
/// number added if that name is taken), so that the desk starts on a new, empty store: what a
/// user does to follow a new gateway log ([`LogBinding::Different`]). The old store keeps its
/// history and audit chain. Nothing may have the store open. `None` when there is no store.
pub fn archive_store(path: &std::path::Path) -> Result<Option<std::path::PathBuf>, DeskError> {
    if !path.exists() {
        return Ok(None);
    }
    let log_id = {
        let conn = crate::store::open(path)?;
        // Everything into the main file, so that the file alone is the whole store.
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        known(&conn)?
    };
    let name = |n: u32| {
        let id: String = log_id
            .as_deref()
            .unwrap_or("unknown")
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(32)
            .collect();
        let suffix = if n == 0 {
            String::new()
        } else {
            format!("-{n}")
        };
        path.with_file_name(format!("desk.log-{id}{suffix}.sqlite3"))
    };
    let mut n = 0;
    let target = loop {
        let candidate = name(n);
        if !candidate.exists() {
            break candidate;
        }
        n += 1;
    };
    std::fs::rename(path, &target).map_err(|e| {
        DeskError::Store(format!(
            "cannot move {} to {}: {e}",
            path.display(),
            target.display()
        ))
    })?;
    for suffix in ["-wal", "-shm"] {
        let mut side = path.as_os_str().to_owned();
        side.push(suffix);
        let _ = std::fs::remove_file(std::path::PathBuf::from(side));
    }
    Ok(Some(target))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_log_is_remembered_and_another_refused_across_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("desk.sqlite3");
        {
            let mut conn = crate::store::open(&path).unwrap();
            assert_eq!(known(&conn).unwrap(), None);
            assert_eq!(bind(&mut conn, "log-a").unwrap(), LogBinding::Adopted);
            assert_eq!(bind(&mut conn, "log-a").unwrap(), LogBinding::Same);
        }
        let mut conn = crate::store::open(&path).unwrap();
        assert_eq!(known(&conn).unwrap().as_deref(), Some("log-a"));
        assert_eq!(
            bind(&mut conn, "log-b").unwrap(),
            LogBinding::Different {
                known: "log-a".into()
            }
        );
        // Refusing changes nothing.
        assert_eq!(known(&conn).unwrap().as_deref(), Some("log-a"));
        drop(conn);
        // Following the new log: the store moves aside, a new one adopts it.
        let archived = archive_store(&path).unwrap().unwrap();
        assert_eq!(archived, dir.path().join("desk.log-loga.sqlite3"));
        assert!(!path.exists());
        let old = crate::store::open(&archived).unwrap();
        assert_eq!(known(&old).unwrap().as_deref(), Some("log-a"));
        let mut conn = crate::store::open(&path).unwrap();
        assert_eq!(bind(&mut conn, "log-b").unwrap(), LogBinding::Adopted);
        drop(conn);
        assert_eq!(
            archive_store(&dir.path().join("none.sqlite3")).unwrap(),
            None
        );
    }
}
