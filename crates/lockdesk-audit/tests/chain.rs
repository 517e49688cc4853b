//! The chain on a real SQLite file: tampering by hand is caught and named; erasure and purge keep
//! it verifiable; erased data is gone from the file's bytes.

use lockdesk_audit::{append, erase_user, head, migrate, purge, verify, Kind, Record, VerifyError};
use rusqlite::Connection;
use serde_json::json;

const DAY_MS: i64 = 86_400_000;

fn open(dir: &tempfile::TempDir) -> (Connection, std::path::PathBuf) {
    let path = dir.path().join(lockdesk_audit::DEFAULT_FILE_NAME);
    let conn = Connection::open(&path).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    migrate(&conn).unwrap();
    (conn, path)
}

fn record(i: u64) -> Record {
    let user = format!("user-{}", i % 3);
    Record {
        at_ms: i as i64 * DAY_MS,
        kind: if i & 1 == 0 {
            Kind::Verdict
        } else {
            Kind::Presentation
        },
        conversation_id: Some(format!("conv-{i}")),
        visitor_id: Some(format!("visitor-{}", i % 3)),
        user_id: Some(user.clone()),
        operator_id: Some(i % 5),
        data: json!({
            "verdict": "verified", "kid": "brand-2026",
            "visitorData": {"email": format!("{user}@mail.example"), "phone": "+33 6 12 34 56 78"}
        }),
    }
}

fn fill(conn: &mut Connection, n: u64) {
    let tx = conn.transaction().unwrap();
    for i in 1..=n {
        append(&tx, &record(i)).unwrap();
    }
    tx.commit().unwrap();
}

fn broken_seq(conn: &Connection) -> (u64, String) {
    match verify(conn) {
        Err(VerifyError::Broken(b)) => (b.seq, b.problem),
        other => panic!("expected a broken chain, got {other:?}"),
    }
}

/// The chain is broken at entry `seq` with a problem naming `text`.
#[track_caller]
fn assert_broken_at(conn: &Connection, seq: u64, text: &str) {
    let (got, problem) = broken_seq(conn);
    assert_eq!(got, seq, "{problem}");
    assert!(problem.contains(text), "{problem}");
}

#[test]
fn an_untouched_chain_verifies_and_reports_its_head() {
    let dir = tempfile::tempdir().unwrap();
    let (mut conn, _) = open(&dir);
    assert_eq!(verify(&conn).unwrap().entries, 0);
    fill(&mut conn, 20);
    let r = verify(&conn).unwrap();
    assert_eq!(r.entries, 20);
    assert_eq!(r.head, head(&conn).unwrap());
    assert_eq!(r.head.unwrap().seq, 20);
}

#[test]
fn edits_by_hand_are_named() {
    let cases: &[(&str, u64)] = &[
        ("UPDATE audit_log SET at_ms = at_ms + 1 WHERE seq = 7", 7),
        ("UPDATE audit_log SET kind = 'alert' WHERE seq = 4", 4),
        ("UPDATE audit_log SET data = '{\"verdict\":\"rejected\"}' WHERE seq = 9", 9),
        ("UPDATE audit_log SET operator_id = NULL WHERE seq = 3", 3),
        ("UPDATE audit_log SET user_id = 'someone-else' WHERE seq = 12", 12),
        ("UPDATE audit_log SET visitor_data = '{}' WHERE seq = 5", 5),
        // Personal data removed by hand, as if erased, without an erasure entry.
        ("UPDATE audit_log SET user_id = NULL, visitor_id = NULL, visitor_data = NULL, salt = NULL, erased_by = 21 WHERE seq = 6", 6),
        ("UPDATE audit_log SET hash = zeroblob(32) WHERE seq = 20", 20),
        ("UPDATE audit_log SET prev_hash = zeroblob(32) WHERE seq = 11", 11),
        ("UPDATE audit_log SET at_ms = 'x' WHERE seq = 8", 8),
    ];
    each_edit_is_named_at(cases);
}

#[test]
fn an_edit_with_recomputed_hash_is_named_by_its_broken_link() {
    // The forger replaces entry 10 by a consistently hashed forgery (same seq, same prev_hash,
    // hash recomputed); entry 11 still chains to the original.
    let dir = tempfile::tempdir().unwrap();
    let (mut conn, _) = open(&dir);
    fill(&mut conn, 20);
    let mut forged = record(10);
    forged.data = json!({"verdict": "rejected"});
    conn.execute_batch(
        "CREATE TABLE tail AS SELECT * FROM audit_log WHERE seq > 10;
         DELETE FROM audit_log WHERE seq >= 10;",
    )
    .unwrap();
    append(&conn, &forged).unwrap();
    conn.execute_batch("INSERT INTO audit_log SELECT * FROM tail")
        .unwrap();
    assert_broken_at(&conn, 10, "entry 11 does not chain");
}

#[test]
fn deletions_insertions_and_reorderings_are_named() {
    let cases: &[(&str, u64)] = &[
        ("DELETE FROM audit_log WHERE seq = 8", 9),
        ("DELETE FROM audit_log WHERE seq BETWEEN 3 AND 5", 6),
        // The last entry deleted: caught only against a written-down head (see below).
        // The first entry deleted.
        ("DELETE FROM audit_log WHERE seq = 1", 2),
        // Swapping two entries' seqs (reordering).
        ("UPDATE audit_log SET seq = 1000 WHERE seq = 4; UPDATE audit_log SET seq = 4 WHERE seq = 5; UPDATE audit_log SET seq = 5 WHERE seq = 1000", 4),
        // Moving everything up by one and inserting a copy of entry 1 in front: the copy at seq 1
        // is indistinguishable from the original, so the first bad entry is the moved one.
        ("UPDATE audit_log SET seq = seq + 1000; UPDATE audit_log SET seq = seq - 999; INSERT INTO audit_log SELECT 1, at_ms, kind, conversation_id, operator_id, data, user_id, visitor_id, visitor_data, salt, commitment, prev_hash, hash, erased_by FROM audit_log WHERE seq = 2", 2),
        // A copy of entry 3 inserted as entry 21 at the end.
        ("INSERT INTO audit_log SELECT 21, at_ms, kind, conversation_id, operator_id, data, user_id, visitor_id, visitor_data, salt, commitment, prev_hash, hash, erased_by FROM audit_log WHERE seq = 3", 21),
        // An entry inserted in the middle, the following ones renumbered.
        ("UPDATE audit_log SET seq = seq + 1000 WHERE seq > 10; UPDATE audit_log SET seq = seq - 999 WHERE seq > 1000; INSERT INTO audit_log SELECT 11, at_ms, kind, conversation_id, operator_id, data, user_id, visitor_id, visitor_data, salt, commitment, prev_hash, hash, erased_by FROM audit_log WHERE seq = 10", 11),
        // The anchor moved as if entries had been purged.
        ("DELETE FROM audit_log WHERE seq <= 5; UPDATE audit_anchor SET start_seq = 6, prev_hash = (SELECT prev_hash FROM audit_log WHERE seq = 6)", 6),
    ];
    each_edit_is_named_at(cases);
}

/// For each `(sql, seq)`: a new log of 20 entries, edited by `sql` (one statement or several),
/// verifies as broken at entry `seq`.
fn each_edit_is_named_at(cases: &[(&str, u64)]) {
    for (sql, seq) in cases {
        let dir = tempfile::tempdir().unwrap();
        let (mut conn, _) = open(&dir);
        fill(&mut conn, 20);
        conn.execute_batch(sql).unwrap();
        let (got, problem) = broken_seq(&conn);
        assert_eq!(got, *seq, "{sql}: {problem}");
    }
}

fn file_bytes(path: &std::path::Path) -> Vec<u8> {
    let mut all = std::fs::read(path).unwrap();
    for ext in ["-wal", "-journal"] {
        let mut p = path.as_os_str().to_owned();
        p.push(ext);
        if let Ok(b) = std::fs::read(std::path::PathBuf::from(p)) {
            all.extend(b);
        }
    }
    all
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn erasure_keeps_the_chain_verifiable_and_the_data_gone_from_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (mut conn, path) = open(&dir);
    fill(&mut conn, 30);
    // A visitor seen before being identified: erased with the user (same visitor id).
    append(
        &conn,
        &Record {
            at_ms: 31 * DAY_MS,
            kind: Kind::Presentation,
            conversation_id: Some("conv-anon".into()),
            visitor_id: Some("visitor-1".into()),
            user_id: None,
            operator_id: None,
            data: json!({"visitorData": {"nickname": "anonymous-fox"}}),
        },
    )
    .unwrap();
    conn.pragma_update(None, "wal_checkpoint", "TRUNCATE").ok();
    let before = file_bytes(&path);
    assert!(contains(&before, "user-1@mail.example"));
    assert!(contains(&before, "anonymous-fox"));

    let report = erase_user(&conn, "user-1", 40 * DAY_MS).unwrap();
    assert_eq!(
        report.erased_entries, 11,
        "10 entries of user-1 + 1 of its visitor"
    );
    assert!(report.file_scrubbed);
    let r = verify(&conn).unwrap();
    assert_eq!(r.tombstones, 11);
    assert_eq!(r.entries, 32);
    // Other users untouched.
    let kept: i64 = conn
        .query_row(
            "SELECT count(*) FROM audit_log WHERE user_id = 'user-2'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(kept, 10);
    // Public details kept on the tombstones.
    let data: String = conn
        .query_row("SELECT data FROM audit_log WHERE seq = 1", [], |r| r.get(0))
        .unwrap();
    assert_eq!(data, r#"{"kid":"brand-2026","verdict":"verified"}"#);
    drop(conn);
    let after = file_bytes(&path);
    for gone in [
        "user-1",
        "visitor-1",
        "user-1@mail.example",
        "anonymous-fox",
    ] {
        assert!(!contains(&after, gone), "{gone} still in the file");
    }
    assert!(contains(&after, "user-2@mail.example"));

    // Erasing again finds nothing; the erasure entry cannot be forged away.
    let conn = Connection::open(&path).unwrap();
    assert_eq!(
        erase_user(&conn, "user-1", 41 * DAY_MS)
            .unwrap()
            .erased_entries,
        0
    );
    conn.execute(
        "UPDATE audit_log SET data = '{\"erased_entries\":10}' WHERE seq = 32",
        [],
    )
    .unwrap();
    assert_eq!(broken_seq(&conn).0, 32);
}

#[test]
fn a_tombstone_pointing_at_a_real_erasure_but_not_counted_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let (mut conn, _) = open(&dir);
    fill(&mut conn, 12);
    erase_user(&conn, "user-1", 20 * DAY_MS).unwrap(); // entry 13 erased 4 entries
                                                       // An extra entry of user-2 blanked by hand, blamed on the same erasure.
    conn.execute(
        "UPDATE audit_log SET user_id = NULL, visitor_id = NULL, visitor_data = NULL, salt = NULL, erased_by = 13 WHERE seq = 2",
        [],
    )
    .unwrap();
    assert_broken_at(&conn, 13, "4 tombstones but 5");
}

#[test]
fn purge_keeps_the_chain_verifiable_across_erasures_and_repeated_purges() {
    let dir = tempfile::tempdir().unwrap();
    let (mut conn, path) = open(&dir);
    fill(&mut conn, 30); // at_ms = seq days
    erase_user(&conn, "user-2", 31 * DAY_MS).unwrap(); // entry 31, tombstones 2, 5, ..., 29
    fill_more(&conn, 32, 40);
    let r = purge(&conn, 10 * DAY_MS + 1, 50 * DAY_MS).unwrap(); // entries 1..=10 go
    assert_eq!((r.purged_entries, r.purged_through), (10, 10));
    let v = verify(&conn).unwrap();
    assert_eq!((v.first_seq, v.purged_through, v.entries), (11, 10, 31));
    assert_eq!(v.head.unwrap().seq, 41);
    // Nothing old enough: no entry written.
    assert_eq!(
        purge(&conn, 5 * DAY_MS, 51 * DAY_MS)
            .unwrap()
            .purged_entries,
        0
    );
    // Past the erasure entry (31): its tombstones all go with it.
    let r = purge(&conn, 32 * DAY_MS, 52 * DAY_MS).unwrap();
    assert_eq!(r.purged_through, 31);
    let v = verify(&conn).unwrap();
    assert_eq!(v.first_seq, 32);
    assert_eq!(v.tombstones, 0);
    // Everything (including the purge entries) older than the cutoff.
    let r = purge(&conn, 100 * DAY_MS, 100 * DAY_MS).unwrap();
    assert_eq!(r.head.unwrap().seq, 43);
    let v = verify(&conn).unwrap();
    assert_eq!((v.entries, v.first_seq), (1, 43));
    drop(conn);
    assert!(!contains(&file_bytes(&path), "user-0@mail.example"));

    // Deleting the rest of the log by hand and moving the anchor is caught.
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch("DELETE FROM audit_log; UPDATE audit_anchor SET start_seq = 44")
        .unwrap();
    assert_eq!(broken_seq(&conn).0, 44);
}

fn fill_more(conn: &Connection, from: u64, to: u64) {
    for i in from..=to {
        append(conn, &record(i)).unwrap();
    }
}

#[test]
fn retention_refuses_a_broken_log() {
    let dir = tempfile::tempdir().unwrap();
    let (mut conn, _) = open(&dir);
    fill(&mut conn, 10);
    conn.execute("DELETE FROM audit_log WHERE seq = 3", [])
        .unwrap();
    assert!(purge(&conn, 5 * DAY_MS, 20 * DAY_MS).is_err());
    assert!(erase_user(&conn, "user-1", 20 * DAY_MS).is_err());
}

#[test]
fn erase_and_purge_while_the_desk_appends_keep_one_valid_chain() {
    let dir = tempfile::tempdir().unwrap();
    let (mut conn, path) = open(&dir);
    fill(&mut conn, 300);
    let desk = std::thread::spawn(move || {
        // The desk: its own connection, small IMMEDIATE transactions (as it does: `append` reads
        // the tip then writes, and a deferred transaction cannot upgrade a stale snapshot).
        let mut conn = Connection::open(&path).unwrap();
        for batch in 0..100u64 {
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .unwrap();
            for i in 0..5 {
                append(&tx, &record(301 + batch * 5 + i)).unwrap();
            }
            tx.commit().unwrap();
        }
    });
    for user in ["user-0", "user-1"] {
        erase_user(&conn, user, 1_000 * DAY_MS).unwrap();
    }
    purge(&conn, 50 * DAY_MS, 1_001 * DAY_MS).unwrap();
    desk.join().unwrap();
    let r = verify(&conn).unwrap();
    assert_eq!(r.head.unwrap().seq, 300 + 500 + 3);
}
