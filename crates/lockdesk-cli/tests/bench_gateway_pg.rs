//! `lockdesk-cli bench gateway --store postgres://...` on a real PostgreSQL 15 (lockdesk-testkit):
//! a tiny run (short phases, few subscribers: the figures are not looked at) with one and two
//! instances beside SQLite, every delivery received by every subscriber (the bench fails
//! otherwise), each instance's writer groups printed, the database left without tables; and the database guard: a database holding a
//! gateway log is refused unless --reset-database, one holding anything else always.

use std::process::{Command, Output};

use lockdesk_testkit::pg::PgServer;

fn bench(pg: &PgServer, url: &str, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lockdesk-cli"))
        .args([
            "bench",
            "gateway",
            "--store",
            url,
            "--ingest-seconds",
            "0.5",
            "--clients",
            "4",
            "--subscribers",
            "4",
            "--supervisors",
            "2",
            "--rate",
            "40",
            "--feed-seconds",
            "0.5",
            "--idle",
            "4",
        ])
        .args(extra)
        .env("LOCKDESK_PG_PASSWORD", pg.password())
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn tables(pg: &PgServer, db: &str) -> String {
    pg.psql(
        db,
        "SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables \
         WHERE schemaname = 'public'",
    )
}

#[test]
fn bench_gateway_on_postgres_with_one_and_two_instances_beside_sqlite() {
    let pg = PgServer::start();
    let url = pg.create_database("bench");
    let out = bench(&pg, &url, &["--instances", "1,2"]);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    for line in [
        "SQLite in ",
        "PostgreSQL postgres://lockdesk@127.0.0.1:",
        ", 1 instance(s): gateway pid",
        ", 2 instance(s): gateway pid",
        "over 2 instance(s), 20 webhooks",
        "summary (same run):",
        "PostgreSQL, 2 instance(s): (a) ",
    ] {
        assert!(all.contains(line), "no {line:?} in:\n{all}");
    }
    // Each PostgreSQL instance's writer says how its groups went: three instances in all (one,
    // then two), none for SQLite.
    assert_eq!(
        all.matches("  writer of 127.0.0.1:").count(),
        3,
        "one writer line per PostgreSQL instance:\n{all}"
    );
    // Every configuration got every delivery to every subscriber that should have it.
    assert_eq!(all.matches("deliveries received").count(), 3, "{all}");
    for line in all.lines().filter(|l| l.contains("deliveries received")) {
        let (_, counts) = line.rsplit_once("; ").unwrap();
        let mut words = counts.split(' ');
        let (got, expected) = (words.next(), words.nth(1));
        assert_eq!(got, expected, "{line}");
        assert_ne!(got, Some("0"), "{line}");
    }
    // The bench leaves the database as it found it.
    assert_eq!(tables(&pg, "bench"), "");
    // The password never reaches the output.
    assert!(!all.contains(pg.password()), "{all}");
}

#[test]
fn bench_gateway_refuses_a_database_that_is_not_empty() {
    let pg = PgServer::start();
    // A gateway's log (as an interrupted bench run or a real gateway leaves it).
    let url = pg.create_database("used");
    let settings = lockdesk_gateway::PgSettings {
        url: url.clone(),
        password: Some(pg.password().to_owned()),
        ca_file: None,
    };
    drop(lockdesk_gateway::PostgresStore::open(&settings).unwrap());
    let before = tables(&pg, "used");
    assert!(before.contains("entries"), "{before}");
    let out = bench(&pg, &url, &["--no-sqlite"]);
    let all = text(&out);
    assert!(!out.status.success(), "{all}");
    assert!(
        all.contains("the database holds a gateway log") && all.contains("--reset-database"),
        "{all}"
    );
    assert_eq!(
        tables(&pg, "used"),
        before,
        "nothing dropped without --reset-database"
    );

    // Someone else's table, beside the gateway's: refused even with --reset-database, and
    // nothing dropped.
    pg.psql(
        "used",
        "CREATE TABLE invoices (id int); INSERT INTO invoices VALUES (7)",
    );
    let out = bench(&pg, &url, &["--no-sqlite", "--reset-database"]);
    let all = text(&out);
    assert!(!out.status.success(), "{all}");
    assert!(
        all.contains("tables that are not the gateway's (invoices)"),
        "{all}"
    );
    assert_eq!(pg.psql("used", "SELECT id FROM invoices"), "7");
    let now = tables(&pg, "used");
    for table in before.split(',') {
        assert!(
            now.split(',').any(|t| t == table),
            "{table} dropped although the database was refused: {now}"
        );
    }

    // With only the gateway's tables, --reset-database drops them and the bench runs.
    pg.psql("used", "DROP TABLE invoices");
    let out = bench(&pg, &url, &["--no-sqlite", "--reset-database"]);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(!all.contains("SQLite in "), "--no-sqlite: {all}");
    assert_eq!(tables(&pg, "used"), "");
}
