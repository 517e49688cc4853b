//! The store: idempotence, time-based lapse, malformed entries, migrations, backfill, the
//! change line, and a child process SIGKILLed mid-apply.

use std::process::Command;

use lockdesk_desk::{
    AlertKind, AuthStateName, ClosedConversation, ConversationQuery, Desk, DeskError, ReasonCode,
};
use lockdesk_sim::Scenario;
use serde_json::json;

use crate::support::{evidence, webhook};
use crate::*;

fn push(seq: u64, at_ms: i64, conv: &str, visitor: &str) -> Entry {
    webhook(
        seq,
        at_ms,
        json!({"eventType": "v2.conversation.pushed", "conversationId": conv, "visitorId": visitor,
               "channel": "CHAT", "operatorId": 101}),
    )
}

fn token(world: &World, user: &str, email: &str, at_ms: i64) -> String {
    let spec = lockdesk_sim::TokenSpec {
        signer: lockdesk_sim::Signer::Brand,
        user_id: user.into(),
        visitor_data: json!({"firstName": "Jane", "lastName": "Doe", "email": email})
            .as_object()
            .cloned(),
        expires_in: 60,
    };
    world.keys.mint(&spec, at_ms / 1000).unwrap()
}

/// `v1` pushed in conversation `c1` (entry `seq`), then presenting a valid token for `u1`
/// (entry `seq + 1`).
fn signed_in(world: &World, seq: u64, push_at_ms: i64, present_at_ms: i64) -> [Entry; 2] {
    [
        push(seq, push_at_ms, "c1", "v1"),
        present(world, seq + 1, present_at_ms, "v1", "u1"),
    ]
}

fn present(world: &World, seq: u64, at_ms: i64, visitor: &str, user: &str) -> Entry {
    evidence(
        seq,
        at_ms,
        json!({"visitorId": visitor, "token": token(world, user, "jane@mail.example", at_ms),
               "source": {"domain": "www.brand.example", "device": "laptop"}}),
    )
}

/// A test world and a desk on `d.sqlite3` in a new temp folder (kept while the first value
/// lives).
fn fresh() -> (tempfile::TempDir, World, Desk) {
    let dir = tempfile::tempdir().unwrap();
    let world = World::new(dir.path());
    let desk = world.desk(&dir.path().join("d.sqlite3"));
    (dir, world, desk)
}

/// Everything a replay must reproduce: rows, transitions, presentations, alerts, cursor.
fn snapshot(db: &Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut out = vec![];
    for sql in [
        "SELECT conversation_id, state, auth_state, reason, user_id, since_ms, until_ms,
           closed_ms, first_verified_ms, last_verified_ms, name, source, machine
         FROM conversations ORDER BY conversation_id",
        "SELECT c.conversation_id, t.seq, t.at_ms, t.state, t.reason, t.user_id
         FROM transitions t JOIN conversations c ON c.id = t.conversation ORDER BY t.id",
        "SELECT seq, verdict, reason, user_id, token_sha256, conversation FROM presentations ORDER BY seq",
        "SELECT seq, at_ms, code, user_id FROM alerts ORDER BY id",
        "SELECT user_id, visitor_data FROM identities ORDER BY user_id",
        "SELECT key, value FROM desk_meta WHERE key != 'applied_at_ms' ORDER BY key",
        "SELECT count(*) FROM audit_log",
    ] {
        let mut stmt = conn.prepare(sql).unwrap();
        let n = stmt.column_count();
        let rows = stmt
            .query_map([], |r| {
                let mut line = vec![];
                for i in 0..n {
                    let v: rusqlite::types::Value = r.get(i)?;
                    line.push(format!("{v:?}"));
                }
                Ok(line.join("|"))
            })
            .unwrap();
        for r in rows {
            out.push(r.unwrap());
        }
    }
    out
}

#[test]
fn applying_twice_or_in_other_batch_sizes_gives_the_same_store() {
    let dir = tempfile::tempdir().unwrap();
    let world = World::new(dir.path());
    let steps = all_scenarios(11);
    let feed = entries(&world, &steps, Role::Supervisor);

    let one = dir.path().join("one.sqlite3");
    let mut desk = world.desk(&one);
    let first = desk.apply(&feed, T0_MS).unwrap();
    assert!(!first.changes.is_empty());
    let before = snapshot(&one);
    // The same entries again (a crash between applying and saving the cursor elsewhere, a
    // resume that repeats): nothing changes.
    let again = desk.apply(&feed, T0_MS).unwrap();
    assert!(again.changes.is_empty(), "{:?}", again.changes);
    assert_eq!(again.duplicates, feed.len() as u64);
    assert_eq!(snapshot(&one), before);
    // Overlapping halves, one entry at a time.
    let single = dir.path().join("single.sqlite3");
    let mut desk = world.desk(&single);
    let mut changes = 0;
    for i in 0..feed.len() {
        changes += desk
            .apply(&feed[i.saturating_sub(3)..=i], T0_MS)
            .unwrap()
            .changes
            .len();
    }
    assert_eq!(changes, first.changes.len());
    let mut a = snapshot(&one);
    let mut b = snapshot(&single);
    // The audit log's row count is the same; everything else too.
    a.sort();
    b.sort();
    assert_eq!(a, b);
}

#[test]
fn a_secured_session_lapses_on_tick_without_new_events() {
    let (_dir, world, mut desk) = fresh();
    let t = T0_MS;
    let applied = desk
        .apply(&signed_in(&world, 1, t, t + 1_000), t + 1_000)
        .unwrap();
    let states: Vec<_> = applied
        .changes
        .iter()
        .map(|c| c.state.unwrap().code())
        .collect();
    assert_eq!(states, ["anonymous", "secured"]);
    let until = t + 1_000 + LIFETIME_SECS * 1000;
    assert!(desk.tick(until - 1).unwrap().is_empty());
    // Noticed late (the desk was away): still recorded when the session ended.
    let lapsed = desk.tick(until + 3_600_000).unwrap();
    assert_eq!(lapsed.len(), 1);
    assert_eq!(lapsed[0].at_ms, until);
    assert_eq!(lapsed[0].state.map(AuthStateName::code), Some("lapsed"));
    assert_eq!(lapsed[0].alert.map(AlertKind::code), Some("session_lapsed"));
    assert_eq!(lapsed[0].user_id.as_deref(), Some("u1"));
    assert_eq!(lapsed[0].seq, 2, "reported under the cursor");
    assert!(
        desk.tick(until + 7_200_000).unwrap().is_empty(),
        "lapses once"
    );
    // A new valid token secures it again.
    let again = desk
        .apply(&[present(&world, 3, until + 5_000, "v1", "u1")], until)
        .unwrap();
    assert_eq!(
        again.changes[0].state.map(AuthStateName::code),
        Some("secured")
    );
}

#[test]
fn malformed_entries_are_recorded_and_skipped_without_failing_the_batch() {
    let (_dir, world, mut desk) = fresh();
    let t = T0_MS;
    let secret = token(&world, "u1", "jane@mail.example", t);
    let batch = [
        push(1, t, "c1", "v1"),
        webhook(
            2,
            t,
            json!({"eventType": "v2.conversation.pushed", "visitorId": "v2", "channel": "CHAT"}),
        ),
        evidence(3, t, json!(["not", "an", "object"])),
        evidence(4, t, json!({"token": secret})),
        evidence(5, t, json!({"visitorId": "v1"})),
        webhook(6, t, json!({"no": "type"})),
        webhook(
            7,
            t,
            json!({"eventType": "user.availability.updated", "operatorId": 3}),
        ),
        webhook(
            8,
            t,
            json!({"eventType": "v2.conversation.closed", "conversationId": 42}),
        ),
        present(&world, 9, t + 1_000, "v1", "u1"),
    ];
    let applied = desk.apply(&batch, t).unwrap();
    let skipped: Vec<u64> = applied.skipped.iter().map(|s| s.seq).collect();
    assert_eq!(skipped, [2, 3, 4, 5, 6, 8]);
    for s in &applied.skipped {
        assert!(
            !s.error.contains(&secret[..40]),
            "a token in an error: {}",
            s.error
        );
        assert!(!s.error.is_empty());
    }
    assert!(
        applied.skipped[0].error.contains("conversationId"),
        "{:?}",
        applied.skipped[0]
    );
    assert_eq!(applied.ignored, 1);
    assert_eq!(applied.cursor, 9);
    let last = applied.changes.last().unwrap();
    assert_eq!(
        last.state.map(AuthStateName::code),
        Some("secured"),
        "later entries still applied"
    );
    let stats = desk.stats().unwrap();
    assert_eq!((stats.malformed, stats.ignored, stats.cursor), (6, 1, 9));
    // Debug output of what the desk returns never holds the token.
    assert!(!format!("{applied:?}").contains(&secret[..40]));
}

#[test]
fn migrations_create_reopen_and_refuse_a_newer_schema() {
    let dir = tempfile::tempdir().unwrap();
    let world = World::new(dir.path());
    let db = dir.path().join("d.sqlite3");
    {
        let mut desk = world.desk(&db);
        desk.apply(&[push(1, T0_MS, "c1", "v1")], T0_MS).unwrap();
        desk.note_seen(5).unwrap();
        desk.note_seen(3).unwrap();
        assert_eq!(desk.cursor(), 5);
    }
    {
        let desk = world.desk(&db);
        assert_eq!(desk.cursor(), 5, "the heartbeat's cursor survives");
        assert_eq!(desk.stats().unwrap().conversations, 1);
    }
    let conn = rusqlite::Connection::open(&db).unwrap();
    let version: i64 = conn
        .query_row("SELECT max(version) FROM desk_schema", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, lockdesk_desk::SCHEMA_VERSION);
    conn.execute("INSERT INTO desk_schema (version) VALUES (99)", [])
        .unwrap();
    drop(conn);
    let err = Desk::open(&db, world.engine(), Default::default())
        .err()
        .unwrap();
    assert!(
        matches!(err, DeskError::SchemaTooNew { found: 99, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("newer than this program"), "{err}");
}

/// The store holds names and e-mails: the file and its `-wal`/`-shm` are owner-only, whatever
/// the umask; an older store readable by others is tightened when opened.
#[cfg(unix)]
#[test]
fn the_store_and_its_wal_and_shm_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let dir = tempfile::tempdir().unwrap();
    let world = World::new(dir.path());
    let db = dir.path().join("desk.sqlite3");
    let mut desk = world.desk(&db);
    desk.apply(&[push(1, T0_MS, "c1", "v1")], T0_MS).unwrap();
    let wal = dir.path().join("desk.sqlite3-wal");
    let shm = dir.path().join("desk.sqlite3-shm");
    for p in [&db, &wal, &shm] {
        assert!(p.exists(), "{}", p.display());
        assert_eq!(mode(p), 0o600, "{}", p.display());
    }
    drop(desk);
    // A store left 0644 by an older version.
    let old = dir.path().join("old.sqlite3");
    drop(world.desk(&old));
    std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o644)).unwrap();
    let desk = world.desk(&old);
    assert_eq!(mode(&old), 0o600);
    drop(desk);
}

/// A CHAT conversation as the platform reports it closed (opened at `T0_MS`, closed 30 s later),
/// with the platform's `externalUserId`.
fn closed(conv: &str, visitor: &str, external_user_id: Option<&str>) -> ClosedConversation {
    ClosedConversation {
        conversation_id: conv.into(),
        visitor_id: visitor.into(),
        channel: "CHAT".into(),
        created_at_ms: T0_MS,
        closed_at_ms: T0_MS + 30_000,
        external_user_id: external_user_id.map(str::to_owned),
    }
}

#[test]
fn backfill_compares_the_platform_user_id_and_is_idempotent() {
    let (_dir, world, mut desk) = fresh();
    let t = T0_MS;
    desk.apply(
        &[
            push(1, t, "same", "v1"),
            present(&world, 2, t + 1_000, "v1", "u1"),
            push(3, t, "other", "v2"),
            present(&world, 4, t + 1_000, "v2", "u2"),
        ],
        t,
    )
    .unwrap();
    let records = [
        closed("same", "v1", Some("u1")),
        closed("other", "v2", Some("someone-else")),
        closed("old", "v1", None),
    ];
    let changes = desk.backfill(&records, t + 60_000).unwrap();
    let alerts: Vec<_> = changes
        .iter()
        .filter_map(|c| c.alert.map(AlertKind::code))
        .collect();
    assert_eq!(alerts, ["platform_mismatch"]);
    let other = desk.conversation("other").unwrap().unwrap();
    assert_eq!(
        (other.row.state.code(), other.row.auth_state.code()),
        ("closed", "mismatch")
    );
    assert_eq!(
        other.row.reason.map(ReasonCode::code),
        Some("platform_user_id_differs")
    );
    // The stored reason is one of the vocabulary's (the UI labels every one), never `unknown`.
    assert_eq!(other.row.reason, Some(ReasonCode::PlatformUserIdDiffers));
    assert_eq!(other.row.platform_user_id.as_deref(), Some("someone-else"));
    assert_eq!(other.row.other_user_id.as_deref(), Some("someone-else"));
    let same = desk.conversation("same").unwrap().unwrap();
    assert_eq!(same.row.auth_state, AuthStateName::Secured);
    assert!(same.alerts.is_empty());
    let old = desk.conversation("old").unwrap().unwrap();
    assert_eq!(
        (old.row.state.code(), old.row.auth_state.code()),
        ("closed", "anonymous")
    );
    // The backfilled conversation is in u1's history (v1 is linked to u1).
    let h = desk.history("u1").unwrap();
    assert_eq!(h.conversations.len(), 2);
    // Again: nothing new.
    assert!(desk.backfill(&records, t + 90_000).unwrap().is_empty());
    assert_eq!(desk.alerts(None, 0).unwrap().len(), 1);
}

/// The code columns are read by the vocabulary's rules for stored codes: a row edited outside
/// the desk (or written by no Lockdesk) never reads as reassuring. An unknown state is `failed`,
/// a reason `unknown`, a source and an alert kind `null`, and a verdict `rejected`, so an edited
/// presentation proves no identity.
#[test]
fn edited_code_columns_read_cautiously_and_prove_nothing() {
    let (dir, world, mut desk) = fresh();
    let t = T0_MS;
    desk.apply(
        &[
            push(1, t, "c1", "v1"),
            present(&world, 2, t + 1_000, "v1", "u1"),
        ],
        t + 1_000,
    )
    .unwrap();
    let before = desk.conversation("c1").unwrap().unwrap();
    assert_eq!(before.row.state, AuthStateName::Secured);
    assert_eq!(before.row.source, Some(VisitorSource::Web));
    assert_eq!(
        before.presentations[0].verdict,
        PresentationVerdict::Verified
    );
    assert_eq!(before.identity.map(|i| i.user_id).as_deref(), Some("u1"));
    let records = [closed("c1", "v1", Some("someone-else"))];
    desk.backfill(&records, t + 60_000).unwrap();
    assert_eq!(
        desk.alerts(None, 0).unwrap()[0].code,
        Some(AlertKind::PlatformMismatch)
    );

    let conn = rusqlite::Connection::open(dir.path().join("d.sqlite3")).unwrap();
    conn.execute_batch(
        "UPDATE conversations SET state = 'secure', auth_state = 'SECURED', reason = 'fine',
           source = 'tablet';
         UPDATE presentations SET verdict = 'valid';
         UPDATE transitions SET state = 'trusted', reason = 'ok';
         UPDATE alerts SET code = 'all_clear';",
    )
    .unwrap();
    let d = desk.conversation("c1").unwrap().unwrap();
    assert_eq!(
        (d.row.state, d.row.auth_state),
        (AuthStateName::Failed, AuthStateName::Failed)
    );
    assert_eq!(d.row.reason, Some(ReasonCode::Unknown));
    assert_eq!(d.row.source, None);
    assert_eq!(d.presentations.len(), 1);
    assert_eq!(d.presentations[0].verdict, PresentationVerdict::Rejected);
    assert!(
        d.identity.is_none(),
        "an edited verdict proved {:?}",
        d.identity
    );
    assert!(!d.transitions.is_empty());
    for tr in &d.transitions {
        assert_eq!(tr.state, AuthStateName::Failed);
        assert_eq!(tr.reason, Some(ReasonCode::Unknown));
    }
    assert_eq!(d.alerts.len(), 1);
    assert_eq!(d.alerts[0].code, None);
    let listed = desk.conversations(&ConversationQuery::default()).unwrap();
    assert_eq!(listed[0].state, AuthStateName::Failed);
}

#[test]
fn the_change_line_is_exactly_the_documented_json() {
    let (_dir, world, mut desk) = fresh();
    let t = T0_MS;
    let applied = desk.apply(&signed_in(&world, 41, t, t + 123), t).unwrap();
    let line: Value = serde_json::from_str(&applied.changes[1].to_json_line()).unwrap();
    assert_eq!(
        line,
        json!({"seq": 42, "at": "2026-01-01T10:00:00.123Z", "conversationId": "c1",
               "visitorId": "v1", "channel": "CHAT", "state": "secured", "userId": "u1",
               "reason": null, "alert": null})
    );
    let keys: Vec<&str> = line
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys.len(), 9);
    // A rejection carries its reason and alert; the alert's evidence is in the store.
    let rejected = desk
        .apply(
            &[evidence(
                43,
                t + 500,
                json!({"visitorId": "v1", "token": "a.b.c"}),
            )],
            t,
        )
        .unwrap();
    let c = &rejected.changes[0];
    assert_eq!(c.state.map(AuthStateName::code), Some("failed"));
    assert_eq!(c.reason.map(ReasonCode::code), Some("malformed"));
    assert_eq!(c.alert.map(AlertKind::code), Some("verification_failed"));
    let alert = desk.alert(c.alert_id.unwrap()).unwrap().unwrap();
    assert_eq!(alert.evidence["presentationSeq"], 43);
    assert_eq!(alert.evidence["tokenSha256"].as_str().unwrap().len(), 64);
}

#[test]
fn related_evidence_repeated_with_a_later_push_is_stored_once() {
    let (_dir, world, mut desk) = fresh();
    let t = T0_MS;
    let ev = present(&world, 1, t, "v1", "u1");
    let related = Related {
        seq: 1,
        received_at_ms: t,
        payload: ev.payload.clone(),
    };
    let mut p = push(2, t + 500, "c1", "v1");
    p.related = vec![related.clone()];
    let first = desk.apply(&[p], t).unwrap();
    assert_eq!(
        first.changes.last().unwrap().state.map(AuthStateName::code),
        Some("secured")
    );
    // Transferred away and back: the same evidence rides along again.
    let mut back = push(3, t + 900, "c1", "v1");
    back.related = vec![related];
    let again = desk.apply(&[back], t).unwrap();
    assert!(again.changes.is_empty(), "{:?}", again.changes);
    assert_eq!(desk.stats().unwrap().presentations, 1);
}

const CHILD_ENV: &str = "LOCKDESK_DESK_TEST_CHILD_DIR";

/// Not a test on its own: the child process of the SIGKILL test. It applies the entries in
/// `entries.json` from its store's cursor on, in batches of 16, until none are left.
#[test]
fn kill_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let dir = PathBuf::from(dir);
    // The parent wrote the brand's key set; the desk key is the test one.
    let setup = Setup {
        trust: vec![(ISSUER.to_owned(), Source::File(dir.join("brand.jwks.json")))],
        decryption: vec![super::verify_data("desk.key.pkcs1.pem")],
        ..Setup::default()
    };
    let engine = Arc::new(Engine::load(&setup).unwrap());
    let feed: Vec<Entry> =
        serde_json::from_slice(&std::fs::read(dir.join("entries.json")).unwrap()).unwrap();
    let config = lockdesk_desk::DeskConfig {
        session_lifetime_secs: LIFETIME_SECS,
    };
    let mut desk = Desk::open(&dir.join("killed.sqlite3"), engine, config).unwrap();
    loop {
        let cursor = desk.cursor();
        let todo: Vec<Entry> = feed
            .iter()
            .filter(|e| e.seq > cursor)
            .take(16)
            .cloned()
            .collect();
        if todo.is_empty() {
            break;
        }
        desk.apply(&todo, todo[0].received_at_ms).unwrap();
        // Progress for the parent, which kills after a random number of batches (so the kills
        // land mid-run however fast this machine is).
        println!("applied {}", desk.cursor());
    }
}

/// This test binary (`exe`) running only `kill_child`, on the entries in `dir`.
fn kill_child_command(exe: &Path, dir: &Path) -> Command {
    let mut command = Command::new(exe);
    command
        .args([
            "--exact",
            "store::kill_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir);
    command
}

#[test]
fn a_desk_killed_mid_apply_resumes_consistent_and_applies_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let world = World::new(dir.path());
    let scenarios: Vec<Scenario> = (0..30).flat_map(|_| Scenario::ALL).collect();
    let steps = lockdesk_sim::plan(3, &scenarios, &[101], 700);
    let feed = entries(&world, &steps, Role::Supervisor);
    std::fs::write(
        dir.path().join("entries.json"),
        serde_json::to_vec(&feed).unwrap(),
    )
    .unwrap();

    // The reference: one uninterrupted run.
    let reference = dir.path().join("reference.sqlite3");
    let mut desk = world.desk(&reference);
    for chunk in feed.chunks(16) {
        desk.apply(chunk, chunk[0].received_at_ms).unwrap();
    }
    drop(desk);

    let killed = dir.path().join("killed.sqlite3");
    let exe = std::env::current_exe().unwrap();
    let mut kills = 0;
    let mut cursors = vec![];
    let mut finished = false;
    let mut rng = fastrand_seed(42);
    for _ in 0..25 {
        let mut child = kill_child_command(&exe, dir.path())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Let it commit a random number of batches (1 to 8), then kill it while it works on the
        // next one. Reaching the end of its output means it finished first.
        let batches = 1 + rng() % 8;
        let mut seen = 0;
        let mut lines =
            std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
        while seen < batches {
            match lines.next() {
                Some(Ok(line)) if line.starts_with("applied ") => seen += 1,
                Some(Ok(_)) => {}
                _ => break,
            }
        }
        if seen < batches {
            let status = child.wait().unwrap();
            assert!(status.success(), "the child failed: {status}");
            finished = true;
            break;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills += 1;
        // Reopened after every kill: consistent (the cursor matches the last effects).
        let conn = rusqlite::Connection::open(&killed).unwrap();
        let check: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok");
        if let Ok(cursor) = conn.query_row(
            "SELECT value FROM desk_meta WHERE key = 'cursor'",
            [],
            |r| r.get::<_, i64>(0),
        ) {
            let max_effect: Option<i64> = conn
                .query_row("SELECT max(seq) FROM transitions", [], |r| r.get(0))
                .unwrap();
            assert!(
                max_effect.unwrap_or(0) <= cursor,
                "effects beyond the cursor"
            );
            cursors.push(cursor);
        }
    }
    let total = feed.last().unwrap().seq as i64;
    let mid_run = cursors.iter().filter(|c| **c > 0 && **c < total).count();
    eprintln!("cursors after each kill: {cursors:?} (of {total})");
    assert!(
        mid_run >= 2,
        "the child was not killed mid-run twice: {cursors:?}"
    );
    if !finished {
        let status = kill_child_command(&exe, dir.path())
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
    }
    eprintln!("the child was killed {kills} times");
    assert_eq!(
        snapshot(&killed),
        snapshot(&reference),
        "after {kills} kills"
    );
    // The audit chain is intact too.
    let conn = rusqlite::Connection::open(&killed).unwrap();
    let report = lockdesk_audit::verify(&conn).unwrap();
    assert!(report.entries > 0);
}

/// A tiny xorshift (the test needs varied kill points, not quality randomness).
fn fastrand_seed(mut s: u64) -> impl FnMut() -> u64 {
    move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    }
}

#[test]
fn the_list_filters_open_conversations() {
    let (_dir, _world, mut desk) = fresh();
    let t = T0_MS;
    desk.apply(
        &[
            push(1, t, "c1", "v1"),
            push(2, t + 1, "c2", "v2"),
            webhook(
                3,
                t + 2,
                json!({"eventType": "v2.conversation.closed", "conversationId": "c1",
                                     "visitorId": "v1", "channel": "CHAT", "operatorIds": [101]}),
            ),
        ],
        t,
    )
    .unwrap();
    let open = desk
        .conversations(&ConversationQuery {
            open_only: true,
            limit: 0,
        })
        .unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].conversation_id, "c2");
}

#[test]
fn a_newer_token_extends_the_session_without_a_change_line() {
    let (_dir, world, mut desk) = fresh();
    let t = T0_MS;
    desk.apply(&signed_in(&world, 1, t, t), t).unwrap();
    let later = desk
        .apply(&[present(&world, 3, t + 30_000, "v1", "u1")], t + 30_000)
        .unwrap();
    assert!(later.changes.is_empty(), "{:?}", later.changes);
    let d = desk.conversation("c1").unwrap().unwrap();
    assert_eq!(d.row.until_ms, Some(t + 30_000 + LIFETIME_SECS * 1000));
    assert_eq!(d.row.last_verified_ms, Some(t + 30_000));
    assert_eq!(d.row.first_verified_ms, Some(t));
    assert_eq!(d.transitions.len(), 2, "anonymous, secured");
    assert!(
        desk.tick(t + LIFETIME_SECS * 1000).unwrap().is_empty(),
        "the old end passed"
    );
    // A rejected token keeps the last verification time.
    let rejected = desk
        .apply(
            &[evidence(
                4,
                t + 40_000,
                json!({"visitorId": "v1", "token": "x.y.z"}),
            )],
            t,
        )
        .unwrap();
    assert_eq!(
        rejected.changes[0].state.map(AuthStateName::code),
        Some("failed")
    );
    let d = desk.conversation("c1").unwrap().unwrap();
    assert_eq!(d.row.last_verified_ms, Some(t + 30_000));
}

#[test]
fn a_device_alert_before_any_conversation_has_no_conversation_id() {
    let (_dir, world, mut desk) = fresh();
    let t = T0_MS;
    let applied = desk
        .apply(
            &[
                present(&world, 1, t, "v1", "alice"),
                present(&world, 2, t + 1_000, "v1", "bob"),
            ],
            t + 2_000,
        )
        .unwrap();
    assert_eq!(applied.changes.len(), 1, "{:?}", applied.changes);
    let c = &applied.changes[0];
    assert_eq!(c.alert.map(AlertKind::code), Some("shared_device"));
    assert_eq!(
        (
            c.conversation_id.as_deref(),
            c.state.map(AuthStateName::code)
        ),
        (None, None)
    );
    assert_eq!(c.user_id.as_deref(), Some("bob"));
    let line: Value = serde_json::from_str(&c.to_json_line()).unwrap();
    assert_eq!(line["conversationId"], Value::Null);
    assert_eq!(desk.stats().unwrap().applied_at_ms, (t + 2_000) as u64);
    // Both people are linked to the device; bob's token is pending and secures the push.
    let pushed = desk.apply(&[push(3, t + 3_000, "c1", "v1")], t).unwrap();
    let last = pushed.changes.last().unwrap();
    assert_eq!(
        last.state.map(AuthStateName::code),
        Some("mismatch"),
        "alice then bob in one conversation"
    );
    assert_eq!(last.reason, Some(ReasonCode::TokenUserIdDiffers));
    let row = desk
        .conversation(last.conversation_id.as_deref().unwrap_or_default())
        .unwrap()
        .unwrap()
        .row;
    assert_eq!(
        ReasonCode::from_code(row.reason.map(ReasonCode::code).unwrap_or_default()),
        ReasonCode::TokenUserIdDiffers
    );
    assert_eq!(desk.history("alice").unwrap().visitors.len(), 1);
    assert_eq!(desk.history("bob").unwrap().visitors.len(), 1);
}
