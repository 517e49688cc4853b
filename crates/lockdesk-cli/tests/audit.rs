//! `lockdesk-cli audit` on real SQLite files: hand edits are named with exit 1, exports
//! re-verify, erasure and purge keep the chain verifiable, and a 1,000,000-entry export runs in
//! bounded memory.

use std::path::Path;
use std::process::{Command, Output};

use lockdesk_audit::{append, migrate, Kind, Record};
use rusqlite::Connection;
use serde_json::json;

const DAY_MS: i64 = 86_400_000;

fn cli(args: &[&str], data: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lockdesk-cli"))
        .args(args)
        .env("LOCKDESK_DATA_DIR", data)
        .env("LOCKDESK_CONFIG_DIR", data)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The command's standard output holds `text`; the whole output is shown if it does not.
#[track_caller]
fn assert_stdout_contains(o: &Output, text: &str) {
    let out = stdout(o);
    assert!(out.contains(text), "{out}");
}

/// A line of the command's standard output starts with `prefix`; the whole output is shown if
/// none does.
#[track_caller]
fn assert_stdout_has_line_starting(o: &Output, prefix: &str) {
    let out = stdout(o);
    assert!(out.lines().any(|l| l.starts_with(prefix)), "{out}");
}

fn record(i: u64, at_ms: i64) -> Record {
    Record {
        at_ms,
        kind: match i % 3 {
            0 => Kind::Presentation,
            1 => Kind::Verdict,
            _ => Kind::Transition,
        },
        conversation_id: Some(format!("conv-{}", i / 3)),
        visitor_id: Some(format!("visitor-{}", i % 7)),
        user_id: Some(format!("user-{}", i % 7)),
        operator_id: Some(i % 11),
        data: json!({
            "verdict": "verified", "thumbprint": "Hk0b1SjfRrXlQ3lCeNt8b_w1wQ2mYc4a", "issuer": "https://brand.example",
            "visitorData": {"email": format!("person-{}@mail.example", i % 7), "firstName": "Ada"}
        }),
    }
}

/// A desk store with `n` entries in `dir`, one day apart from `start_ms`, 10,000 per transaction.
fn store(dir: &Path, n: u64, start_ms: i64) -> Connection {
    let mut conn = Connection::open(dir.join(lockdesk_audit::DEFAULT_FILE_NAME)).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    migrate(&conn).unwrap();
    let mut i = 1;
    while i <= n {
        let tx = conn.transaction().unwrap();
        while i <= n {
            append(&tx, &record(i, start_ms + i as i64 * DAY_MS)).unwrap();
            i += 1;
            if i % 10_000 == 0 {
                break;
            }
        }
        tx.commit().unwrap();
    }
    conn
}

#[test]
fn verify_and_head_on_an_intact_log() {
    let dir = tempfile::tempdir().unwrap();
    let conn = store(dir.path(), 50, 0);
    let head = lockdesk_audit::head(&conn).unwrap().unwrap();
    let o = cli(&["audit", "verify"], dir.path());
    assert!(o.status.success(), "{o:?}");
    assert!(stdout(&o).contains(&format!(
        "ok: 50 entries (seq 1 to 50), 0 tombstones; head 50 {}",
        head.hash_hex
    )));
    let o = cli(
        &["audit", "head", "--data", dir.path().to_str().unwrap()],
        Path::new("/nonexistent"),
    );
    assert_eq!(stdout(&o), format!("50 {}\n", head.hash_hex));
}

#[test]
fn hand_edits_deletions_insertions_and_reorderings_exit_1_naming_the_entry() {
    let cases: &[(&str, u64)] = &[
        ("UPDATE audit_log SET data = replace(data, 'verified', 'rejected') WHERE seq = 17", 17),
        ("UPDATE audit_log SET user_id = 'user-6' WHERE seq = 30", 30),
        ("DELETE FROM audit_log WHERE seq = 21", 22),
        ("UPDATE audit_log SET seq = 1000 WHERE seq = 8; UPDATE audit_log SET seq = 8 WHERE seq = 9; UPDATE audit_log SET seq = 9 WHERE seq = 1000", 8),
        ("UPDATE audit_log SET seq = seq + 100 WHERE seq > 40; UPDATE audit_log SET seq = seq - 99 WHERE seq > 100; INSERT INTO audit_log SELECT 41, at_ms, 'alert', conversation_id, operator_id, data, user_id, visitor_id, visitor_data, salt, commitment, prev_hash, hash, erased_by FROM audit_log WHERE seq = 40", 41),
    ];
    for (sql, seq) in cases {
        let dir = tempfile::tempdir().unwrap();
        let conn = store(dir.path(), 50, 0);
        conn.execute_batch(sql).unwrap();
        drop(conn);
        let o = cli(&["audit", "verify"], dir.path());
        assert_eq!(o.status.code(), Some(1), "{sql}: {o:?}");
        assert!(
            stdout(&o).starts_with(&format!("BROKEN at entry {seq}:")),
            "{sql}: {}",
            stdout(&o)
        );
        // Purge and erase refuse to touch a broken log.
        let o = cli(&["audit", "erase", "--user-id", "user-3"], dir.path());
        assert_eq!(o.status.code(), Some(1), "{sql}: {o:?}");
    }
}

#[test]
fn export_then_reverification_round_trips_and_an_edited_export_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let conn = store(dir.path(), 200, 0);
    let file = dir.path().join("audit.jsonl");
    let f = file.to_str().unwrap();
    let o = cli(
        &["audit", "export", "--format", "jsonl", "--out", f],
        dir.path(),
    );
    assert!(o.status.success(), "{o:?}");
    // Personal data: the export is owner-only, whatever the umask.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the export's mode");
    }
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.starts_with("exported 200 entries; head 200 "),
        "{stderr}"
    );
    assert!(
        !stderr.contains("exporting"),
        "no progress bar without a terminal: {stderr}"
    );
    let o = cli(&["audit", "verify", "--export", f], dir.path());
    assert!(o.status.success(), "{o:?}");
    let out = stdout(&o);
    assert!(
        out.contains("export ok: 200 entries in 1 run(s), personal data checked"),
        "{out}"
    );
    assert!(
        out.contains("live log agrees: entry 200 has the same hash"),
        "{out}"
    );

    // One personal value changed in the exported file.
    let text = std::fs::read_to_string(&file).unwrap();
    let edited = text.replacen("person-3@mail.example", "person-4@mail.example", 1);
    std::fs::write(&file, edited).unwrap();
    let o = cli(&["audit", "verify", "--export", f], dir.path());
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).starts_with("BROKEN export at entry 3:"),
        "{}",
        stdout(&o)
    );

    // The live log rewritten after the export (last entry re-hashed): the export's head disagrees.
    std::fs::write(&file, &text).unwrap();
    conn.execute(
        "UPDATE audit_log SET hash = zeroblob(32) WHERE seq = 200",
        [],
    )
    .unwrap();
    let o = cli(&["audit", "verify", "--export", f], dir.path());
    assert_eq!(o.status.code(), Some(1));
    assert_stdout_contains(&o, "BROKEN at entry 200:");
}

#[test]
fn redacted_dated_exports_hide_personal_data_with_stable_pseudonyms() {
    let dir = tempfile::tempdir().unwrap();
    let _conn = store(dir.path(), 100, 0);
    // Day 10 to day 19 inclusive: entries 10..=19.
    let args = [
        "audit",
        "export",
        "--format",
        "csv",
        "--redact",
        "--from",
        "1970-01-11",
        "--to",
        "1970-01-20",
    ];
    let a = cli(&args, dir.path());
    assert!(a.status.success(), "{a:?}");
    let b = cli(&args, dir.path());
    let csv_text = stdout(&a);
    assert_eq!(csv_text, stdout(&b), "same key, same report");
    assert!(dir.path().join("audit-redaction.key").is_file());
    for gone in ["user-", "visitor-", "mail.example", "Ada"] {
        assert!(!csv_text.contains(gone), "{gone} in {csv_text}");
    }
    let mut rd = csv::Reader::from_reader(csv_text.as_bytes());
    let rows: Vec<csv::StringRecord> = rd.records().map(|r| r.unwrap()).collect();
    let seqs: Vec<&str> = rows.iter().map(|r| &r[0]).collect();
    assert_eq!(
        seqs,
        ["10", "11", "12", "13", "14", "15", "16", "17", "18", "19"]
    );
    // seq 10 and 17 are the same person (i % 7): same pseudonym.
    assert_eq!(&rows[0][6], &rows[7][6]);
    assert_ne!(&rows[0][6], &rows[1][6]);
    assert!(rows[0][6].starts_with("u-") && rows[0][6].len() == 34);
    assert!(rows[0][9].contains("[redacted]"));
    assert!(rows[0][8].contains("https://brand.example"));

    let o = cli(
        &["audit", "export", "--format", "jsonl", "--from", "tomorrow"],
        dir.path(),
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--from"));
}

fn file_contains(path: &Path, needle: &str) -> bool {
    let mut all = std::fs::read(path).unwrap();
    if let Ok(wal) = std::fs::read(path.with_extension("sqlite3-wal")) {
        all.extend(wal);
    }
    all.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn erase_and_purge_keep_the_chain_verifiable_and_the_data_gone() {
    let dir = tempfile::tempdir().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    // 70 entries, one a day: entry i is 99.5 - i days old (entries 1 to 49 over 50 days).
    let conn = store(dir.path(), 70, now - 100 * DAY_MS + DAY_MS / 2);
    drop(conn);
    let db = dir.path().join(lockdesk_audit::DEFAULT_FILE_NAME);
    assert!(file_contains(&db, "person-5@mail.example"));
    let o = cli(&["audit", "erase", "--user-id", "user-5"], dir.path());
    assert!(o.status.success(), "{o:?}");
    // The desk's tables are reported first (this store has only audit entries), then the log.
    assert!(stdout(&o).starts_with("desk: 0 identity"), "{}", stdout(&o));
    assert_stdout_has_line_starting(&o, "erased 10 entries; erasure entry 71 ");
    for gone in ["user-5", "visitor-5", "person-5@mail.example"] {
        assert!(!file_contains(&db, gone), "{gone} still in the file");
    }
    let o = cli(&["audit", "verify"], dir.path());
    assert!(o.status.success(), "{o:?}");
    assert_stdout_contains(&o, "71 entries (seq 1 to 71), 10 tombstones");

    // Entries 1..=49 are more than 50 days old.
    let o = cli(&["audit", "purge", "--older-than", "50"], dir.path());
    assert!(o.status.success(), "{o:?}");
    assert_stdout_has_line_starting(&o, "purged 49 entries (1 to 49); purge entry 72 ");
    let o = cli(&["audit", "verify"], dir.path());
    assert!(o.status.success(), "{o:?}");
    assert_stdout_contains(&o, "23 entries (seq 50 to 72)");
    assert_stdout_contains(&o, "entries 1 to 49 purged");
    // Conversation 15 had entries 45 to 47 only: gone from the file.
    assert!(!file_contains(&db, "conv-15"));
    // The export of the purged log still re-verifies from its anchor.
    let file = dir.path().join("after.jsonl");
    let o = cli(
        &[
            "audit",
            "export",
            "--format",
            "jsonl",
            "--out",
            file.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert!(o.status.success(), "{o:?}");
    let o = cli(
        &["audit", "verify", "--export", file.to_str().unwrap()],
        dir.path(),
    );
    assert!(o.status.success(), "{o:?}");
}

/// A second, independent implementation of the chain encoding documented in docs/audit.md
/// (OpenSSL's SHA-256, raw SQL inserts): `audit verify` must accept what it writes. It is also
/// fast enough in a debug build to write a million entries.
fn store_independently(dir: &Path, n: u64) {
    use openssl::sha::Sha256;
    fn lp(h: &mut Sha256, b: &[u8]) {
        h.update(&(b.len() as u32).to_be_bytes());
        h.update(b);
    }
    fn some_lp(h: &mut Sha256, b: &[u8]) {
        h.update(&[1]);
        lp(h, b);
    }
    let mut conn = Connection::open(dir.join(lockdesk_audit::DEFAULT_FILE_NAME)).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    migrate(&conn).unwrap();
    let mut prev = [0u8; 32];
    let mut seq = 1u64;
    while seq <= n {
        let tx = conn.transaction().unwrap();
        {
            let mut insert = tx
                .prepare(
                    "INSERT INTO audit_log (seq, at_ms, kind, conversation_id, operator_id, data, user_id,
                         visitor_id, visitor_data, salt, commitment, prev_hash, hash)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                )
                .unwrap();
            let end = (seq + 9_999).min(n);
            while seq <= end {
                let at_ms = seq as i64 * 1000;
                let conv = format!("conv-{}", seq / 3);
                let user = format!("user-{}", seq % 7);
                let visitor = format!("visitor-{}", seq % 7);
                // Canonical JSON: keys sorted, no spaces.
                let data = format!(
                    r#"{{"attempt":{seq},"issuer":"https://brand.example","thumbprint":"Hk0b1SjfRrXlQ3lCeNt8b_w1wQ2mYc4a","verdict":"verified"}}"#
                );
                let vd = format!(
                    r#"{{"email":"person-{}@mail.example","firstName":"Ada"}}"#,
                    seq % 7
                );
                let mut salt = [0u8; 16];
                openssl::rand::rand_bytes(&mut salt).unwrap();
                let mut c = Sha256::new();
                c.update(b"lockdesk-audit/v1/personal\0");
                lp(&mut c, &salt);
                some_lp(&mut c, user.as_bytes());
                some_lp(&mut c, visitor.as_bytes());
                some_lp(&mut c, vd.as_bytes());
                let commitment = c.finish();
                let mut h = Sha256::new();
                h.update(b"lockdesk-audit/v1/entry\0");
                h.update(&seq.to_be_bytes());
                h.update(&prev);
                h.update(&at_ms.to_be_bytes());
                lp(&mut h, b"verdict");
                some_lp(&mut h, conv.as_bytes());
                h.update(&[1]);
                h.update(&(seq % 11).to_be_bytes());
                lp(&mut h, data.as_bytes());
                h.update(&commitment);
                let hash = h.finish();
                insert
                    .execute(rusqlite::params![
                        seq as i64,
                        at_ms,
                        "verdict",
                        conv,
                        (seq % 11) as i64,
                        data,
                        user,
                        visitor,
                        vd,
                        &salt[..],
                        &commitment[..],
                        &prev[..],
                        &hash[..]
                    ])
                    .unwrap();
                prev = hash;
                seq += 1;
            }
        }
        tx.commit().unwrap();
    }
}

#[test]
fn the_documented_encoding_verifies() {
    let dir = tempfile::tempdir().unwrap();
    store_independently(dir.path(), 1_000);
    let o = cli(&["audit", "verify"], dir.path());
    assert!(o.status.success(), "{o:?}");
    assert_stdout_contains(&o, "ok: 1000 entries (seq 1 to 1000)");
}

#[test]
fn missing_store_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let o = cli(&["audit", "verify"], dir.path());
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no desk store at"));
}

/// `verify`, `head` and `export` read the store through the desk crate's read-only reader: the
/// file is byte for byte what it was, and a SQLite file without the log is not migrated.
#[test]
fn the_reading_commands_never_write_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(lockdesk_audit::DEFAULT_FILE_NAME);
    drop(store(dir.path(), 30, 0));
    let before = std::fs::read(&path).unwrap();
    let out = tempfile::tempdir().unwrap();
    let export = out.path().join("log.jsonl");
    let export_arg = export.to_str().unwrap();
    for args in [
        &["audit", "verify"][..],
        &["audit", "head"],
        &["audit", "export", "--format", "jsonl", "--out", export_arg],
        &["audit", "verify", "--export", export_arg],
    ] {
        let o = cli(args, dir.path());
        assert!(o.status.success(), "{args:?}: {o:?}");
    }
    assert!(stdout(&cli(
        &["audit", "verify", "--export", export_arg],
        dir.path()
    ))
    .contains("live log agrees: entry 30"));
    assert_eq!(std::fs::read(&path).unwrap(), before);

    // A foreign SQLite file where the store should be: refused, and left as it was.
    let foreign = tempfile::tempdir().unwrap();
    let other = foreign.path().join(lockdesk_audit::DEFAULT_FILE_NAME);
    Connection::open(&other)
        .unwrap()
        .execute_batch("CREATE TABLE other (x INTEGER)")
        .unwrap();
    let before = std::fs::read(&other).unwrap();
    for args in [&["audit", "verify"][..], &["audit", "head"]] {
        let o = cli(args, foreign.path());
        assert!(!o.status.success(), "{args:?}: {o:?}");
    }
    assert_eq!(std::fs::read(&other).unwrap(), before);
}

/// 1,000,000 entries exported by the real binary: its peak resident memory stays under 64 MiB
/// (the JSON Lines file is about 900 MB; an export holding it, or even the entries, would not).
#[test]
fn a_million_entry_export_runs_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let t = std::time::Instant::now();
    store_independently(dir.path(), 1_000_000);
    eprintln!("1,000,000 entries written in {:?}", t.elapsed());
    // JSON Lines (the larger output per entry; `bench audit` measures CSV too).
    let format = "jsonl";
    {
        let t = std::time::Instant::now();
        let o = cli(
            &[
                "audit",
                "export",
                "--format",
                format,
                "--out",
                "/dev/null",
                "--print-peak-memory",
            ],
            dir.path(),
        );
        assert!(o.status.success(), "{o:?}");
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(stderr.contains("exported 1000000 entries"), "{stderr}");
        let kib: u64 = stderr
            .lines()
            .find_map(|l| l.strip_prefix("peak_memory_kib "))
            .and_then(|v| v.parse().ok())
            .expect("peak memory printed");
        assert!(kib > 0 && kib < 64 * 1024, "{format}: peak {kib} KiB");
        eprintln!(
            "{format} export of 1,000,000 entries: peak {kib} KiB, {:?}",
            t.elapsed()
        );
    }
}
