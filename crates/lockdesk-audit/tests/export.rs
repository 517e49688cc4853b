//! Exports: JSON Lines round-trips through `verify_export`; redaction hides personal data and
//! keeps pseudonyms stable; edits to an exported file are named.

use lockdesk_audit::export::{
    check_head_against_live, export, verify_export, ExportCheckError, ExportOptions, Format,
    RedactKey,
};
use lockdesk_audit::{append, erase_user, migrate, purge, Kind, Record};
use rusqlite::Connection;
use serde_json::{json, Value};

const DAY_MS: i64 = 86_400_000;

fn log(n: u64) -> (tempfile::TempDir, Connection) {
    let dir = tempfile::tempdir().unwrap();
    let mut conn = Connection::open(dir.path().join(lockdesk_audit::DEFAULT_FILE_NAME)).unwrap();
    migrate(&conn).unwrap();
    let tx = conn.transaction().unwrap();
    for i in 1..=n {
        append(
            &tx,
            &Record {
                at_ms: i as i64 * DAY_MS,
                kind: Kind::Verdict,
                conversation_id: Some(format!("conv-{i}")),
                visitor_id: Some(format!("visitor-{}", i % 4)),
                user_id: Some(format!("user-{}", i % 4)),
                operator_id: Some(i),
                data: json!({"verdict": "rejected", "reason": "expired", "n": i as f64 / 3.0,
                             "visitorData": {"email": format!("user-{}@mail.example", i % 4), "age": 41}}),
            },
        )
        .unwrap();
    }
    tx.commit().unwrap();
    (dir, conn)
}

fn jsonl(conn: &Connection, opts: &ExportOptions) -> String {
    let mut out = Vec::new();
    export(conn, &mut out, Format::Jsonl, opts, &mut |_| {}).unwrap();
    String::from_utf8(out).unwrap()
}

fn check(text: &str) -> Result<lockdesk_audit::export::ExportReport, ExportCheckError> {
    verify_export(&mut text.as_bytes())
}

fn broken_at(text: &str) -> u64 {
    match check(text) {
        Err(ExportCheckError::Broken(b)) => b.seq,
        other => panic!("expected a broken export, got {other:?}"),
    }
}

#[test]
fn a_full_export_round_trips_and_edits_to_it_are_named() {
    let (_dir, conn) = log(40);
    erase_user(&conn, "user-1", 50 * DAY_MS).unwrap();
    purge(&conn, 5 * DAY_MS + 1, 51 * DAY_MS).unwrap();
    let text = jsonl(&conn, &ExportOptions::default());
    let r = check(&text).unwrap();
    assert_eq!((r.entries, r.segments, r.redacted), (37, 1, false));
    assert_eq!(r.last, lockdesk_audit::head(&conn).unwrap());
    assert!(check_head_against_live(&conn, r.head_at_export.as_ref().unwrap()).unwrap());

    // Editing a field, personal data, deleting a line, swapping two lines, truncating.
    let lines: Vec<&str> = text.lines().collect();
    let edited = text.replace(
        "\"reason\":\"expired\",\"verdict\":\"rejected\"}",
        "\"reason\":\"expired\",\"verdict\":\"verified\"}",
    );
    assert_eq!(broken_at(&edited), 6);
    let line_10 = lines[10 - 5]; // header is line 0, seq 6 is line 1
    assert!(line_10.contains("\"seq\":10,"));
    let personal = text.replacen("user-2@mail.example", "user-9@mail.example", 1);
    assert_eq!(broken_at(&personal), 6);
    let mut deleted = lines.clone();
    deleted.remove(5);
    assert_eq!(broken_at(&(deleted.join("\n") + "\n")), 11);
    let mut swapped = lines.clone();
    swapped.swap(3, 4);
    assert_eq!(broken_at(&(swapped.join("\n") + "\n")), 9);
    let truncated = lines[..lines.len() - 1].join("\n") + "\n";
    assert!(matches!(
        check(&truncated),
        Err(ExportCheckError::Format { .. })
    ));
}

#[test]
fn redaction_hides_personal_data_keeps_pseudonyms_stable_and_still_verifies() {
    let (dir, conn) = log(12);
    let key = RedactKey::load_or_create(&dir.path().join("k")).unwrap();
    assert_eq!(RedactKey::load(&dir.path().join("k")).unwrap(), key);
    let opts = ExportOptions {
        redact: Some(key.clone()),
        ..Default::default()
    };
    let text = jsonl(&conn, &opts);
    for gone in ["user-1", "visitor-1", "mail.example", "\"salt\":\""] {
        assert!(!text.contains(gone), "{gone} in a redacted export");
    }
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // seq 1 and 5 are user-1: same pseudonym; seq 2 another.
    assert_eq!(lines[1]["user_id"], lines[5]["user_id"]);
    assert_ne!(lines[1]["user_id"], lines[2]["user_id"]);
    assert_eq!(lines[1]["user_id"], key.user("user-1"));
    assert_eq!(
        lines[1]["visitorData"],
        json!({"age": "[redacted]", "email": "[redacted]"})
    );
    assert_eq!(lines[1]["data"]["reason"], "expired");
    // The same key gives the same pseudonyms in the next report; another key does not.
    assert_eq!(jsonl(&conn, &opts), text);
    let other = RedactKey::from_bytes([1; 32]);
    assert_ne!(other.user("user-1"), key.user("user-1"));
    let r = check(&text).unwrap();
    assert!(r.redacted && !r.personal_data_checked);
    assert_eq!(r.entries, 12);
    // Public fields of a redacted export are still covered by the hashes.
    assert_eq!(
        broken_at(&text.replace("\"operator_id\":3,", "\"operator_id\":4,")),
        3
    );
}

#[test]
fn a_date_filtered_export_verifies_its_consecutive_runs() {
    let (_dir, conn) = log(30);
    let text = jsonl(
        &conn,
        &ExportOptions {
            from_ms: Some(10 * DAY_MS),
            to_ms: Some(19 * DAY_MS),
            ..Default::default()
        },
    );
    let r = check(&text).unwrap();
    assert_eq!((r.entries, r.segments, r.filtered), (10, 1, true));
    assert_eq!(r.last.unwrap().seq, 19);
    let mut lines: Vec<&str> = text.lines().collect();
    lines.remove(3);
    let r = check(&(lines.join("\n").replace("\"entries\":10", "\"entries\":9") + "\n")).unwrap();
    assert_eq!(
        r.segments, 2,
        "a gap in a filtered export is two runs, not an error"
    );
}

#[test]
fn csv_quotes_json_and_redacts() {
    let (_dir, conn) = log(3);
    let mut out = Vec::new();
    let opts = ExportOptions {
        redact: Some(RedactKey::from_bytes([7; 32])),
        ..Default::default()
    };
    let s = export(&conn, &mut out, Format::Csv, &opts, &mut |_| {}).unwrap();
    assert_eq!(s.entries, 3);
    let text = String::from_utf8(out).unwrap();
    let mut rd = csv::Reader::from_reader(text.as_bytes());
    let rows: Vec<csv::StringRecord> = rd.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), 3);
    assert_eq!(&rows[0][0], "1");
    assert_eq!(&rows[0][1], "1970-01-02T00:00:00.000Z");
    let data: Value = serde_json::from_str(&rows[0][8]).unwrap();
    assert_eq!(data["reason"], "expired");
    assert!(!text.contains("mail.example") && !text.contains("user-1"));
}

#[test]
fn the_live_log_disagreeing_with_an_export_head_is_named() {
    let (_dir, conn) = log(5);
    let text = jsonl(&conn, &ExportOptions::default());
    let head = check(&text).unwrap().head_at_export.unwrap();
    conn.execute("UPDATE audit_log SET hash = zeroblob(32) WHERE seq = 5", [])
        .unwrap();
    let err = check_head_against_live(&conn, &head).unwrap_err();
    assert!(err.to_string().contains("differs"), "{err}");
}

#[test]
fn entries_without_personal_data_round_trip() {
    // `visitorData: null`, no ids, non-object data: what the desk writes for anonymous visitors
    // and alerts.
    let (_dir, conn) = log(2);
    for data in [
        json!({"verdict": "rejected", "visitorData": null}),
        json!(null),
        json!([1, "x"]),
    ] {
        append(
            &conn,
            &Record {
                at_ms: 3 * DAY_MS,
                kind: Kind::Alert,
                conversation_id: None,
                visitor_id: None,
                user_id: None,
                operator_id: None,
                data,
            },
        )
        .unwrap();
    }
    let vd: Option<String> = conn
        .query_row(
            "SELECT visitor_data FROM audit_log WHERE seq = 3",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(vd, None);
    let r = check(&jsonl(&conn, &ExportOptions::default())).unwrap();
    assert_eq!(r.entries, 5);
}
