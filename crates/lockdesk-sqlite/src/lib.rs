//! Versioned schema migrations for Lockdesk's SQLite files, one routine for the three schemes: the
//! desk store (`lockdesk-desk`, table `desk_schema`), the audit log in the same file
//! (`lockdesk-audit`, table `audit_schema`) and the gateway's log (`lockdesk-gateway`,
//! `PRAGMA user_version`).
//!
//! A [`Scheme`] is a list of SQL steps: step `i` brings the version from `i` to `i + 1`; released
//! steps are never edited, a change is a new step. [`migrate`] reads the version, refuses a file
//! newer than the code ([`SchemaTooNew`]), and applies the missing steps, each followed by the
//! scheme's own Rust (`after_step`, e.g. filling a column computed in Rust), then records the new
//! version, all in one transaction: the caller's when it has one open (a savepoint inside it),
//! else its own (`BEGIN IMMEDIATE`, so two processes opening one file never both migrate). A step
//! that fails leaves the file as it was.
//!
//! Where the version lives ([`VersionAt`]) is each scheme's, kept as files already have it.
//!
//! Must not: half-apply a step; run anything on a file whose version it does not know.

use rusqlite::Connection;

/// Where a scheme keeps its version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VersionAt {
    /// `PRAGMA user_version`: for a scheme alone in its file (the gateway's log).
    UserVersion,
    /// A one-row table `(id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)`, for a
    /// scheme that shares its file (the audit log).
    OneRow(&'static str),
    /// A table `(version INTEGER NOT NULL)` holding a row per step applied, the highest being the
    /// version (the desk store's `desk_schema`).
    RowPerStep(&'static str),
}

/// Rust run after a step's SQL, given the version the step brings the file to.
pub type AfterStep<E> = fn(&Connection, i64) -> Result<(), E>;

/// A versioned scheme.
pub struct Scheme<'a, E> {
    /// For errors: "desk store", "audit log", "gateway database".
    pub name: &'static str,
    pub version_at: VersionAt,
    /// `steps[i]` brings the version from `i` to `i + 1`.
    pub steps: &'a [&'a str],
    /// Run after step `version`'s SQL (`version` is the one it brings the file to), in the same
    /// transaction.
    pub after_step: Option<AfterStep<E>>,
}

impl<E> Scheme<'_, E> {
    /// The version this code writes.
    pub fn supported(&self) -> i64 {
        i64::try_from(self.steps.len()).unwrap_or(i64::MAX)
    }
}

/// The file is newer than this program: it refuses to touch it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the {scheme}'s schema is version {found}, newer than this program's {supported}: upgrade Lockdesk")]
pub struct SchemaTooNew {
    pub scheme: &'static str,
    pub found: i64,
    pub supported: i64,
}

/// What [`migrate`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Migrated {
    /// The version found (0: a new file, or a scheme new to it).
    pub from: i64,
    /// The version now (= [`Scheme::supported`]).
    pub to: i64,
}

/// The version `conn` holds for `at` (0 when absent). Creates the version table if missing.
fn read_version(conn: &Connection, at: VersionAt) -> rusqlite::Result<i64> {
    match at {
        VersionAt::UserVersion => conn.query_row("PRAGMA user_version", [], |r| r.get(0)),
        VersionAt::OneRow(table) => {
            conn.execute_batch(&format!(
                "CREATE TABLE IF NOT EXISTS {table} (
                     id      INTEGER PRIMARY KEY CHECK (id = 1),
                     version INTEGER NOT NULL
                 );
                 INSERT OR IGNORE INTO {table} (id, version) VALUES (1, 0);"
            ))?;
            conn.query_row(
                &format!("SELECT version FROM {table} WHERE id = 1"),
                [],
                |r| r.get(0),
            )
        }
        VersionAt::RowPerStep(table) => {
            conn.execute_batch(&format!(
                "CREATE TABLE IF NOT EXISTS {table} (version INTEGER NOT NULL)"
            ))?;
            let v: Option<i64> =
                conn.query_row(&format!("SELECT max(version) FROM {table}"), [], |r| {
                    r.get(0)
                })?;
            Ok(v.unwrap_or(0))
        }
    }
}

fn write_version(conn: &Connection, at: VersionAt, version: i64) -> rusqlite::Result<()> {
    match at {
        VersionAt::UserVersion => conn.pragma_update(None, "user_version", version),
        VersionAt::OneRow(table) => conn
            .execute(
                &format!("UPDATE {table} SET version = ?1 WHERE id = 1"),
                [version],
            )
            .map(drop),
        VersionAt::RowPerStep(table) => conn
            .execute(
                &format!("INSERT INTO {table} (version) VALUES (?1)"),
                [version],
            )
            .map(drop),
    }
}

/// The version `conn` holds for `scheme`, refusing one newer than the code; no change made
/// (except creating an empty version table). For a reader that must not migrate.
pub fn check<E>(conn: &Connection, scheme: &Scheme<'_, E>) -> Result<i64, E>
where
    E: From<rusqlite::Error> + From<SchemaTooNew>,
{
    let found = read_version(conn, scheme.version_at)?;
    too_new(scheme, found)?;
    Ok(found)
}

fn too_new<E>(scheme: &Scheme<'_, E>, found: i64) -> Result<(), SchemaTooNew> {
    let supported = scheme.supported();
    if found > supported {
        return Err(SchemaTooNew {
            scheme: scheme.name,
            found,
            supported,
        });
    }
    Ok(())
}

/// Brings `conn` to `scheme`'s version (see the crate's doc). Idempotent: cheap when current.
pub fn migrate<E>(conn: &Connection, scheme: &Scheme<'_, E>) -> Result<Migrated, E>
where
    E: From<rusqlite::Error> + From<SchemaTooNew>,
{
    // In the caller's transaction: a savepoint, released into it (the caller commits). Else a
    // transaction of our own, taking the write lock before reading the version.
    let own = conn.is_autocommit();
    conn.execute_batch(if own {
        "BEGIN IMMEDIATE"
    } else {
        "SAVEPOINT lockdesk_migrate"
    })?;
    let result = apply(conn, scheme);
    let end = match (&result, own) {
        (Ok(_), true) => "COMMIT",
        (Ok(_), false) => "RELEASE lockdesk_migrate",
        (Err(_), true) => "ROLLBACK",
        (Err(_), false) => "ROLLBACK TO lockdesk_migrate; RELEASE lockdesk_migrate",
    };
    match (result, conn.execute_batch(end)) {
        (Ok(m), Ok(())) => Ok(m),
        (Ok(_), Err(e)) => {
            if own {
                let _ = conn.execute_batch("ROLLBACK");
            }
            Err(e.into())
        }
        (Err(e), _) => Err(e),
    }
}

fn apply<E>(conn: &Connection, scheme: &Scheme<'_, E>) -> Result<Migrated, E>
where
    E: From<rusqlite::Error> + From<SchemaTooNew>,
{
    let found = read_version(conn, scheme.version_at)?;
    too_new(scheme, found)?;
    // A negative version was not written by Lockdesk: start from the first step, whose SQL then
    // fails on the tables already there (an error, never a skipped migration).
    let from = found.max(0);
    for (i, sql) in scheme.steps.iter().enumerate().skip(from as usize) {
        let version = i as i64 + 1;
        conn.execute_batch(sql)?;
        if let Some(after) = scheme.after_step {
            after(conn, version)?;
        }
        write_version(conn, scheme.version_at, version)?;
    }
    Ok(Migrated {
        from: found,
        to: scheme.supported(),
    })
}

#[cfg(test)]
mod tests;
