use super::*;

#[derive(Debug)]
enum TestError {
    Sql(rusqlite::Error),
    TooNew(SchemaTooNew),
    Step(i64),
}

impl From<rusqlite::Error> for TestError {
    fn from(e: rusqlite::Error) -> Self {
        TestError::Sql(e)
    }
}

impl From<SchemaTooNew> for TestError {
    fn from(e: SchemaTooNew) -> Self {
        TestError::TooNew(e)
    }
}

const STEPS: &[&str] = &[
    "CREATE TABLE a (x INTEGER NOT NULL); INSERT INTO a (x) VALUES (1);",
    "ALTER TABLE a ADD COLUMN y INTEGER; UPDATE a SET y = x * 10;",
    "CREATE TABLE b (z TEXT);",
];

const LAYOUTS: [VersionAt; 3] = [
    VersionAt::UserVersion,
    VersionAt::OneRow("t_schema"),
    VersionAt::RowPerStep("t_schema"),
];

fn scheme(at: VersionAt, steps: &'static [&'static str]) -> Scheme<'static, TestError> {
    Scheme {
        name: "test store",
        version_at: at,
        steps,
        after_step: None,
    }
}

fn tables(conn: &Connection) -> Vec<String> {
    let mut stmt = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn version(conn: &Connection, at: VersionAt) -> i64 {
    read_version(conn, at).unwrap()
}

#[test]
fn a_new_file_gets_every_step_and_a_current_one_nothing() {
    for at in LAYOUTS {
        let conn = Connection::open_in_memory().unwrap();
        let m = migrate(&conn, &scheme(at, STEPS)).unwrap();
        assert_eq!(m, Migrated { from: 0, to: 3 }, "{at:?}");
        assert_eq!(version(&conn, at), 3);
        let y: i64 = conn.query_row("SELECT y FROM a", [], |r| r.get(0)).unwrap();
        assert_eq!(y, 10);
        assert!(tables(&conn).contains(&"b".to_owned()));
        // Again: nothing to do, nothing run twice (step 1's INSERT would add a row).
        let m = migrate(&conn, &scheme(at, STEPS)).unwrap();
        assert_eq!(m, Migrated { from: 3, to: 3 });
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM a", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 1);
        assert!(conn.is_autocommit(), "its own transaction is closed");
    }
}

#[test]
fn an_older_file_gets_only_the_missing_steps_each_followed_by_its_rust() {
    thread_local! {
        static SEEN: std::cell::RefCell<Vec<i64>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    fn note(conn: &Connection, v: i64) -> Result<(), TestError> {
        // Runs inside the transaction, after the step's SQL.
        let n: i64 = conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))?;
        assert!(n > 0);
        SEEN.with(|s| s.borrow_mut().push(v));
        Ok(())
    }
    for at in LAYOUTS {
        SEEN.with(|s| s.borrow_mut().clear());
        let conn = Connection::open_in_memory().unwrap();
        migrate(&conn, &scheme(at, &STEPS[..1])).unwrap();
        assert_eq!(version(&conn, at), 1);
        let s = Scheme {
            after_step: Some(note),
            ..scheme(at, STEPS)
        };
        assert_eq!(migrate(&conn, &s).unwrap(), Migrated { from: 1, to: 3 });
        assert_eq!(SEEN.with(|s| s.borrow().clone()), [2, 3], "{at:?}");
        let y: i64 = conn.query_row("SELECT y FROM a", [], |r| r.get(0)).unwrap();
        assert_eq!(y, 10);
    }
    // The desk's layout keeps a row per step, as files written before this helper have.
    let conn = Connection::open_in_memory().unwrap();
    migrate(&conn, &scheme(VersionAt::RowPerStep("t_schema"), STEPS)).unwrap();
    let rows: Vec<i64> = conn
        .prepare("SELECT version FROM t_schema ORDER BY version")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows, [1, 2, 3]);
}

#[test]
fn a_file_newer_than_the_code_is_refused_untouched_with_one_clear_error() {
    for at in LAYOUTS {
        let conn = Connection::open_in_memory().unwrap();
        migrate(&conn, &scheme(at, STEPS)).unwrap();
        let before = tables(&conn);
        // The code knows two steps; the file has three.
        let err = migrate(&conn, &scheme(at, &STEPS[..2])).unwrap_err();
        let TestError::TooNew(e) = err else {
            panic!("{err:?}")
        };
        assert_eq!(
            e,
            SchemaTooNew {
                scheme: "test store",
                found: 3,
                supported: 2
            }
        );
        assert_eq!(
            e.to_string(),
            "the test store's schema is version 3, newer than this program's 2: upgrade Lockdesk"
        );
        assert_eq!(tables(&conn), before);
        assert_eq!(version(&conn, at), 3);
        assert!(matches!(
            check(&conn, &scheme(at, &STEPS[..2])),
            Err(TestError::TooNew(_))
        ));
        assert!(conn.is_autocommit());
    }
}

#[test]
fn a_failing_step_leaves_the_file_as_it_was() {
    const BROKEN: &[&str] = &[
        STEPS[0],
        STEPS[1],
        "CREATE TABLE b (z TEXT); SELECT * FROM nowhere;",
    ];
    for at in LAYOUTS {
        let conn = Connection::open_in_memory().unwrap();
        migrate(&conn, &scheme(at, &STEPS[..1])).unwrap();
        let err = migrate(&conn, &scheme(at, BROKEN)).unwrap_err();
        // SQLite's own message names what failed.
        assert!(
            matches!(&err, TestError::Sql(e) if e.to_string().contains("nowhere")),
            "{err:?}"
        );
        // Step 2 (which succeeded) is rolled back with step 3: the version and tables are as
        // before the call.
        assert_eq!(version(&conn, at), 1, "{at:?}");
        assert!(!tables(&conn).contains(&"b".to_owned()));
        let cols: i64 = conn
            .query_row("SELECT count(*) FROM pragma_table_info('a')", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(cols, 1);
        assert!(conn.is_autocommit());
        // The fixed code then migrates it.
        assert_eq!(
            migrate(&conn, &scheme(at, STEPS)).unwrap(),
            Migrated { from: 1, to: 3 }
        );
    }
}

#[test]
fn a_failing_rust_step_rolls_back_too() {
    fn refuse(_: &Connection, v: i64) -> Result<(), TestError> {
        if v == 2 {
            return Err(TestError::Step(v));
        }
        Ok(())
    }
    let conn = Connection::open_in_memory().unwrap();
    let s = Scheme {
        after_step: Some(refuse),
        ..scheme(VersionAt::UserVersion, STEPS)
    };
    assert!(matches!(migrate(&conn, &s), Err(TestError::Step(2))));
    assert_eq!(version(&conn, VersionAt::UserVersion), 0);
    assert!(tables(&conn).is_empty());
}

#[test]
fn inside_the_callers_transaction_it_commits_or_rolls_back_with_it() {
    let mut conn = Connection::open_in_memory().unwrap();
    conn.execute_batch("CREATE TABLE mine (v INTEGER)").unwrap();
    let at = VersionAt::OneRow("t_schema");
    // Rolled back by the caller: nothing stays.
    {
        let tx = conn.transaction().unwrap();
        tx.execute("INSERT INTO mine (v) VALUES (1)", []).unwrap();
        migrate(&tx, &scheme(at, STEPS)).unwrap();
        assert!(
            !tx.is_autocommit(),
            "the caller's transaction is still open"
        );
    }
    assert_eq!(tables(&conn), ["mine"]);
    // A failure inside it undoes only the migration: the caller's own work can still commit.
    {
        let tx = conn.transaction().unwrap();
        tx.execute("INSERT INTO mine (v) VALUES (2)", []).unwrap();
        const BROKEN: &[&str] = &[STEPS[0], "SELECT * FROM nowhere"];
        assert!(migrate(&tx, &scheme(at, BROKEN)).is_err());
        tx.commit().unwrap();
    }
    assert_eq!(tables(&conn), ["mine"]);
    let v: i64 = conn
        .query_row("SELECT v FROM mine", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, 2);
    // Committed with it.
    let tx = conn.transaction().unwrap();
    migrate(&tx, &scheme(at, STEPS)).unwrap();
    tx.commit().unwrap();
    assert_eq!(version(&conn, at), 3);
}

#[test]
fn two_schemes_share_a_file_each_with_its_own_version() {
    let conn = Connection::open_in_memory().unwrap();
    let desk = scheme(VersionAt::RowPerStep("desk_v"), &STEPS[..2]);
    let audit = scheme(VersionAt::OneRow("audit_v"), &["CREATE TABLE log (x)"]);
    assert_eq!(migrate(&conn, &desk).unwrap().to, 2);
    assert_eq!(migrate(&conn, &audit).unwrap().to, 1);
    assert_eq!(version(&conn, VersionAt::RowPerStep("desk_v")), 2);
    assert_eq!(version(&conn, VersionAt::OneRow("audit_v")), 1);
    assert_eq!(check(&conn, &desk).unwrap(), 2);
}

/// A version Lockdesk never writes (negative) does not skip the steps: they run from the first,
/// whose SQL fails on the tables already there.
#[test]
fn a_negative_version_is_not_taken_for_a_current_file() {
    let conn = Connection::open_in_memory().unwrap();
    migrate(&conn, &scheme(VersionAt::UserVersion, STEPS)).unwrap();
    conn.pragma_update(None, "user_version", -5).unwrap();
    assert!(matches!(
        migrate(&conn, &scheme(VersionAt::UserVersion, STEPS)),
        Err(TestError::Sql(_))
    ));
    assert_eq!(version(&conn, VersionAt::UserVersion), -5);
}
