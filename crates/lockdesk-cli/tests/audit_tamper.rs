//! `lockdesk-cli audit verify` checks the desk's tables against the audit chain: the demo's
//! store, edited offline with rusqlite (a failed conversation flipped to secured with another
//! person's userId, an alert deleted), fails verification naming the conversation, though the
//! chain itself is intact.

use crate::support::{all_text as text, run_with_data as run, SUPERVISOR_DEMO};

#[test]
fn audit_verify_names_conversations_and_alerts_edited_offline() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo");
    let demo = run(&SUPERVISOR_DEMO, &data);
    assert!(demo.status.success(), "{}", text(&demo));
    let o = run(&["audit", "verify"], &data);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("the store agrees with the audit log"),
        "{}",
        text(&o)
    );

    let db = data.join("desk.sqlite3");
    let conn = rusqlite::Connection::open(&db).unwrap();
    let victim: String = conn
        .query_row(
            "SELECT user_id FROM conversations WHERE auth_state = 'secured' AND user_id IS NOT NULL LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let failed: String = conn
        .query_row(
            "SELECT conversation_id FROM conversations WHERE auth_state = 'failed' LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    conn.execute(
        "UPDATE conversations SET state = 'secured', auth_state = 'secured', reason = NULL,
           user_id = ?1, until_ms = 9000000000000 WHERE conversation_id = ?2",
        [&victim, &failed],
    )
    .unwrap();
    drop(conn);

    let out = verify_fails(&data);
    assert!(
        out.contains("BROKEN: the store disagrees with the audit log")
            && out.contains("the chain itself is intact"),
        "{out}"
    );
    assert!(
        out.lines().any(
            |l| l.contains(&format!("conversation {failed} shows secured/{victim}"))
                && l.contains("but the audit log says")
                && l.contains("failed")
                && l.contains("(entry #")
        ),
        "{out}"
    );

    // An alert edited away is named too.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let alert: i64 = conn
        .query_row("SELECT max(id) FROM alerts", [], |r| r.get(0))
        .unwrap();
    conn.execute("DELETE FROM alerts WHERE id = ?1", [alert])
        .unwrap();
    drop(conn);
    let out = verify_fails(&data);
    assert!(
        out.lines()
            .any(|l| l.contains(&format!("alert {alert} ")) && l.contains("removed from the store")),
        "{out}"
    );
}

/// `lockdesk-cli audit verify` on the desk in `data`: asserts exit status 1 and returns what it
/// printed.
fn verify_fails(data: &std::path::Path) -> String {
    let o = run(&["audit", "verify"], data);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    out
}
