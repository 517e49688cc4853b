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
    }
}
