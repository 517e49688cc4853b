//! The desk's tables edited offline (as someone with write access to the file would: plain
//! rusqlite, the audit chain untouched) are caught by `Desk::check_against_audit`, naming the
//! conversation or alert; an untouched store, and one after erasure and purge, raises nothing.
//! The simulator's scenarios (real tokens minted by `lockdesk-sim`'s keys, verified by the real
//! engine) are applied to a real SQLite file.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use lockdesk_desk::{AuthStateName, ConversationQuery, ConversationRow, Desk, StoreCheck};
use lockdesk_feed::Entry;
use lockdesk_sim::{plan, Action, Scenario, Step};
use serde_json::json;

use crate::support::apply_all;
use crate::{World, LIFETIME_SECS, T0_MS};

fn check(db: &Path, world: &World) -> StoreCheck {
    world.desk(db).check_against_audit(&mut |_| {}).unwrap()
}

fn agrees(c: &StoreCheck) {
    assert!(c.agrees(), "false alarm: {:#?}", c.disagreements);
    assert_eq!(c.disagreements.len(), 0);
}

/// A copy of the (closed) store to tamper with.
fn copy(db: &Path, dir: &Path, name: &str) -> PathBuf {
    let to = dir.join(name);
    std::fs::copy(db, &to).unwrap();
    to
}

fn sql(db: &Path, statements: &str) {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.execute_batch(statements).unwrap();
}

fn one<T: rusqlite::types::FromSql>(db: &Path, query: &str) -> T {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row(query, [], |r| r.get(0)).unwrap()
}

/// A copy of the store named `name`, edited by `statements`, checked.
fn tampered(db: &Path, dir: &Path, world: &World, name: &str, statements: &str) -> StoreCheck {
    let t = copy(db, dir, name);
    sql(&t, statements);
    check(&t, world)
}

/// The check of an open desk.
fn audit(desk: &Desk) -> StoreCheck {
    desk.check_against_audit(&mut |_| {}).unwrap()
}

fn names(c: &StoreCheck, cid: &str, text: &str) -> bool {
    c.disagreements
        .iter()
        .any(|d| d.conversation_id.as_deref() == Some(cid) && d.message.contains(text))
}

/// The check names conversation `cid` with a message holding `text`.
fn assert_named(c: &StoreCheck, cid: &str, text: &str) {
    assert!(names(c, cid, text), "{:#?}", c.disagreements);
}

/// Scenarios 30 s apart: the first ones are closed long before the last ones start.
/// A copy `name` of `db` in which conversation `cid` was renamed by hand: the check names it.
fn assert_renamed_by_hand_is_named(db: &Path, dir: &Path, world: &World, name: &str, cid: &str) {
    let c = tampered(
        db,
        dir,
        world,
        name,
        &format!("UPDATE conversations SET name = 'Somebody Else' WHERE conversation_id = '{cid}'"),
    );
    assert_named(&c, cid, "Somebody Else");
}

fn spread_plan() -> Vec<Step> {
    plan(21, &Scenario::ALL, &[101, 102], 30_000)
}

/// The userIds of the plan's tokens, sorted.
fn token_users(steps: &[Step]) -> BTreeSet<String> {
    steps
        .iter()
        .filter_map(|st| match &st.action {
            Action::Evidence(e) => Some(e.token.user_id.clone()),
            _ => None,
        })
        .collect()
}

/// The retention tests' purge cutoff: T0 + 150 s.
const CUTOFF_MS: i64 = T0_MS + 150_000;

/// The retention tests' purge (before [`CUTOFF_MS`], at T0 + 1 h): it removes conversations
/// and the check still agrees.
fn purge(desk: &mut Desk) {
    let r = desk.purge_before(CUTOFF_MS, T0_MS + 3_600_000).unwrap();
    assert!(r.desk.conversations > 0, "{r:?}");
    agrees(&audit(desk));
}

/// Applies `feed` one entry at a time until `found` finds what it looks for in the desk's
/// conversations; `None` if it never does.
fn apply_until<T>(
    desk: &mut Desk,
    feed: &[Entry],
    mut found: impl FnMut(&[ConversationRow]) -> Option<T>,
) -> Option<T> {
    for e in feed {
        desk.apply(std::slice::from_ref(e), e.received_at_ms)
            .unwrap();
        let rows = desk
            .conversations(&ConversationQuery {
                limit: 1000,
                ..Default::default()
            })
            .unwrap();
        if let Some(t) = found(&rows) {
            return Some(t);
        }
    }
    None
}

/// The full run of every scenario, applied and closed (no WAL left beside the file).
fn full_store(dir: &Path, world: &World) -> PathBuf {
    let db = dir.join("desk.sqlite3");
    let steps = plan(7, &Scenario::ALL, &[101, 102], 3_000);
    let mut desk = world.desk(&db);
    apply_all(&mut desk, &world.entries(&steps, 1, 0));
    drop(desk);
    db
}

#[test]
fn an_untouched_store_agrees_and_every_offline_edit_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let world = World::new(dir.path());
    let db = full_store(dir.path(), &world);
    let c = check(&db, &world);
    agrees(&c);
    assert!(c.conversations >= 8 && c.alerts >= 3, "{c:?}");
    assert!(c.chain.entries > 50, "{c:?}");

    // The victim: a userId a valid token proved elsewhere.
    let victim: String = one(
        &db,
        "SELECT user_id FROM conversations WHERE auth_state = 'secured' AND user_id IS NOT NULL LIMIT 1",
    );
    let failed: String = one(
        &db,
        "SELECT conversation_id FROM conversations WHERE auth_state = 'failed' LIMIT 1",
    );
    let failed_state: String = one(
        &db,
        &format!("SELECT state FROM conversations WHERE conversation_id = '{failed}'"),
    );

    // 1. The failed conversation shows a padlock with the victim's userId: row and state
    //    machine edited consistently, so only the log can tell.
    let t = copy(&db, dir.path(), "flip.sqlite3");
    let machine = json!({
        "state": {"state": "secured", "user_id": victim, "since": T0_MS / 1000,
                  "until": T0_MS / 1000 + 10 * 86_400},
        "verified_user_id": victim,
        "session_lifetime": LIFETIME_SECS,
    });
    sql(
        &t,
        &format!(
            "UPDATE conversations SET state = 'secured', auth_state = 'secured', reason = NULL,
               user_id = '{victim}', since_ms = {s}, until_ms = {u}, machine = '{machine}'
             WHERE conversation_id = '{failed}'",
            s = T0_MS,
            u = T0_MS + 10 * 86_400_000,
        ),
    );
    let c = check(&t, &world);
    assert!(c.chain.entries > 50, "the chain itself is intact");
    let d = c
        .disagreements
        .iter()
        .find(|d| d.conversation_id.as_deref() == Some(failed.as_str()))
        .unwrap_or_else(|| panic!("{failed} not named: {:#?}", c.disagreements));
    assert!(
        d.message.contains(&format!("shows secured/{victim}"))
            && d.message.contains("but the audit log says")
            && d.message.contains("failed")
            && d.entry_seq.is_some(),
        "{d:?} (was {failed_state})"
    );
    assert!(d
        .message
        .contains(&format!("(entry #{})", d.entry_seq.unwrap())));

    // 2. Only the kept state and userId of a closed failed conversation (the row keeps
    //    "closed" but shows the padlock it ended with).
    let closed_failed: Option<String> = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row(
            "SELECT conversation_id FROM conversations WHERE state = 'closed' AND auth_state = 'failed' LIMIT 1",
            [],
            |r| r.get(0),
        )
        .ok();
    if let Some(cf) = closed_failed {
        let c = tampered(
            &db,
            dir.path(),
            &world,
            "kept.sqlite3",
            &format!(
                "UPDATE conversations SET auth_state = 'secured', reason = NULL, user_id = '{victim}'
                 WHERE conversation_id = '{cf}'"
            ),
        );
        assert_named(&c, &cf, "closed, failed");
    }

    // 3. An alert edited away.
    let t = copy(&db, dir.path(), "alert.sqlite3");
    let (alert_id, alert_conv): (i64, String) = rusqlite::Connection::open(&t)
        .unwrap()
        .query_row(
            "SELECT a.id, c.conversation_id FROM alerts a JOIN conversations c ON c.id = a.conversation
             WHERE a.code = 'verification_failed' LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    sql(&t, &format!("DELETE FROM alerts WHERE id = {alert_id}"));
    let c = check(&t, &world);
    assert_eq!(c.disagreement_count, 1, "{:#?}", c.disagreements);
    let d = &c.disagreements[0];
    assert_eq!(d.alert_id, Some(alert_id));
    assert_eq!(d.conversation_id.as_deref(), Some(alert_conv.as_str()));
    assert!(
        d.message.contains("verification_failed") && d.message.contains("removed"),
        "{d:?}"
    );

    // 4. An alert's code softened.
    let c = tampered(
        &db,
        dir.path(),
        &world,
        "code.sqlite3",
        &format!("UPDATE alerts SET code = 'session_lapsed' WHERE id = {alert_id}"),
    );
    assert_eq!(c.disagreements[0].alert_id, Some(alert_id), "{c:?}");

    // 5. A failed conversation deleted with its alerts.
    let c = tampered(
        &db,
        dir.path(),
        &world,
        "gone.sqlite3",
        &format!(
            "DELETE FROM alerts WHERE conversation = (SELECT id FROM conversations WHERE conversation_id = '{failed}');
             DELETE FROM transitions WHERE conversation = (SELECT id FROM conversations WHERE conversation_id = '{failed}');
             UPDATE presentations SET conversation = NULL WHERE conversation = (SELECT id FROM conversations WHERE conversation_id = '{failed}');
             DELETE FROM conversations WHERE conversation_id = '{failed}';"
        ),
    );
    assert_named(&c, &failed, "missing from the store");

    // 6. A conversation inserted by hand, secured for the victim.
    let c = tampered(
        &db,
        dir.path(),
        &world,
        "insert.sqlite3",
        &format!(
            "INSERT INTO conversations (conversation_id, visitor, channel, opened_ms, state,
               auth_state, user_id, since_ms, until_ms, machine)
             SELECT 'forged-conv', visitor, channel, {now}, 'secured', 'secured', '{victim}',
               {now}, {until}, '{machine}'
             FROM conversations LIMIT 1",
            now = T0_MS,
            until = T0_MS + 60_000,
        ),
    );
    assert_named(&c, "forged-conv", "has no record");

    // 7. The stored state machine alone (the next event would continue from it).
    let c = tampered(
        &db,
        dir.path(),
        &world,
        "machine.sqlite3",
        &format!(
            "UPDATE conversations SET machine = '{machine}' WHERE conversation_id = '{failed}'"
        ),
    );
    assert_named(&c, &failed, "stored state machine");

    // 8. A verified person's display name replaced.
    let named: String = one(
        &db,
        "SELECT conversation_id FROM conversations WHERE name IS NOT NULL LIMIT 1",
    );
    assert_renamed_by_hand_is_named(&db, dir.path(), &world, "name.sqlite3", &named);
}

#[test]
fn a_secured_session_extended_by_hand_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let world = World::new(dir.path());
    let db = dir.path().join("desk.sqlite3");
    let steps = plan(7, &Scenario::ALL, &[101, 102], 3_000);
    let feed = world.entries(&steps, 1, 0);
    // Applied one entry at a time up to the first moment a conversation is secured.
    let mut desk = world.desk(&db);
    let secured = apply_until(&mut desk, &feed, |rows| {
        rows.iter()
            .find(|r| r.state == AuthStateName::Secured)
            .map(|r| r.conversation_id.clone())
    });
    drop(desk);
    let secured = secured.expect("a secured conversation");
    agrees(&check(&db, &world));
    let t = copy(&db, dir.path(), "lifetime.sqlite3");
    sql(
        &db,
        &format!(
            "UPDATE conversations SET until_ms = until_ms + 10 * 86400000 WHERE conversation_id = '{secured}'"
        ),
    );
    let c = check(&db, &world);
    assert_eq!(c.disagreement_count, 1, "{:#?}", c.disagreements);
    assert_eq!(
        c.disagreements[0].conversation_id.as_deref(),
        Some(secured.as_str())
    );
    assert!(
        c.disagreements[0].message.contains("secured until"),
        "{c:?}"
    );

    // The stored state machine's own lifetime raised to match (the session then ends exactly
    // one stored lifetime after the token): never trusted beyond the configuration's 24-hour
    // maximum.
    sql(
        &t,
        &format!(
            "UPDATE conversations SET until_ms = until_ms + 10 * 86400000 - {LIFETIME_SECS} * 1000,
               machine = json_set(machine, '$.session_lifetime', 10 * 86400,
                                  '$.state.until', json_extract(machine, '$.state.until') + 10 * 86400)
             WHERE conversation_id = '{secured}'"
        ),
    );
    assert_eq!(
        one::<i64>(
            &t,
            &format!(
                "SELECT json_extract(machine, '$.session_lifetime') FROM conversations
                 WHERE conversation_id = '{secured}'"
            )
        ),
        10 * 86_400
    );
    let c = check(&t, &world);
    assert_eq!(c.disagreement_count, 1, "{:#?}", c.disagreements);
    assert!(
        c.disagreements[0].message.contains("secured until"),
        "{c:?}"
    );
}

#[test]
fn erasure_and_purge_raise_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let world = World::new(dir.path());
    let db = dir.path().join("desk.sqlite3");
    let steps = spread_plan();
    let mut desk = world.desk(&db);
    apply_all(&mut desk, &world.entries(&steps, 1, 0));
    agrees(&audit(&desk));
    let first = token_users(&steps).into_iter().next().unwrap();
    desk.erase_user(&first, T0_MS + 3_000_000).unwrap();
    agrees(&audit(&desk));
    // The desk removes old closed conversations; the log, only its oldest run of entries (a
    // newer entry at its start keeps everything): the purge entry's cutoff accounts for them.
    purge(&mut desk);
    let r = desk
        .purge_before(T0_MS + 400_000, T0_MS + 3_700_000)
        .unwrap();
    let _ = r;
    agrees(&audit(&desk));
}

/// A store after an erasure (of the first user) and a purge, closed: the state an offline
/// attacker finds once retention has run.
fn erased_and_purged(dir: &Path, world: &World) -> (PathBuf, String) {
    let db = dir.join("retained.sqlite3");
    let steps = spread_plan();
    let mut desk = world.desk(&db);
    apply_all(&mut desk, &world.entries(&steps, 1, 0));
    let first = token_users(&steps).into_iter().next().unwrap();
    desk.erase_user(&first, T0_MS + 3_000_000).unwrap();
    purge(&mut desk);
    drop(desk);
    (db, first)
}

/// After an erasure and a purge, a secured row forged with an opening after the purge's cutoff
/// (no record can have been purged for it) is named. (One forged with an opening before the
/// cutoff is a documented limit: docs/audit.md.)
#[test]
fn after_a_purge_a_forged_secured_row_opened_after_the_cutoff_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let world = World::new(dir.path());
    let (db, erased) = erased_and_purged(dir.path(), &world);
    let victim: String = one(
        &db,
        &format!(
            "SELECT user_id FROM conversations WHERE user_id IS NOT NULL AND user_id != 'erased'
               AND user_id != '{erased}' LIMIT 1"
        ),
    );
    let opened = T0_MS + 3_000_000;
    let machine = json!({
        "state": {"state": "secured", "user_id": victim, "since": opened / 1000,
                  "until": opened / 1000 + 60},
        "verified_user_id": victim,
        "session_lifetime": LIFETIME_SECS,
    });
    sql(
        &db,
        &format!(
            "INSERT INTO conversations (conversation_id, visitor, channel, opened_ms, state,
               auth_state, user_id, since_ms, until_ms, machine)
             SELECT 'forged-conv', visitor, channel, {opened}, 'secured', 'secured',
               '{victim}', {opened}, {until}, '{machine}'
             FROM conversations LIMIT 1",
            until = opened + 60_000,
        ),
    );
    assert_named(&check(&db, &world), "forged-conv", "has no record");
}

#[test]
fn one_erasure_leaves_other_conversations_sessions_and_names_checked() {
    let dir = tempfile::tempdir().unwrap();
    let world = World::new(dir.path());
    let db = dir.path().join("desk.sqlite3");
    let steps = spread_plan();
    let feed = world.entries(&steps, 1, 0);
    // Applied one entry at a time until a conversation is secured while another person's, on
    // another device (closed, after the cutoff below), is in the log too.
    let mut desk = world.desk(&db);
    let found = apply_until(&mut desk, &feed, |rows| {
        let secured = rows.iter().find(|r| r.state == AuthStateName::Secured);
        let other = rows.iter().find(|r| {
            r.state == AuthStateName::Closed
                && r.opened_ms.is_some_and(|o| o > CUTOFF_MS)
                && r.user_id.is_some()
                && secured.is_some_and(|s| s.user_id != r.user_id && s.visitor_id != r.visitor_id)
        });
        match (secured, other) {
            (Some(s), Some(o)) => Some((s.conversation_id.clone(), o.user_id.clone().unwrap())),
            _ => None,
        }
    });
    let (secured, erased) = found.expect("a secured conversation beside another person's");
    let r = desk.erase_user(&erased, T0_MS + 3_000_000).unwrap();
    assert!(r.audit.erased_entries > 0, "{r:?}");
    purge(&mut desk);
    drop(desk);

    // The session extended by hand on a conversation the erasure did not touch.
    let c = tampered(
        &db,
        dir.path(),
        &world,
        "extended.sqlite3",
        &format!(
            "UPDATE conversations SET until_ms = until_ms + 10 * 86400000 WHERE conversation_id = '{secured}'"
        ),
    );
    assert_named(&c, &secured, "secured until");

    // A name set by hand on it.
    assert_renamed_by_hand_is_named(&db, dir.path(), &world, "renamed.sqlite3", &secured);
}

#[test]
fn after_a_purge_a_device_alert_newer_than_the_cutoff_removed_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let world = World::new(dir.path());
    let db = dir.path().join("desk.sqlite3");
    let steps = spread_plan();
    let mut feed = world.entries(&steps, 1, 0);
    // Later, outside any conversation (every one is closed by then), the second person's
    // token on the first person's device: a device-level alert.
    let evidence: Vec<&Step> = steps
        .iter()
        .filter(|st| matches!(st.action, Action::Evidence(_)))
        .collect();
    let Action::Evidence(first) = &evidence[0].action else {
        unreachable!()
    };
    let mut again = evidence
        .iter()
        .find(|st| match &st.action {
            Action::Evidence(e) => {
                e.token.user_id != first.token.user_id && e.visitor_id != first.visitor_id
            }
            _ => false,
        })
        .map(|st| (*st).clone())
        .unwrap();
    if let Action::Evidence(e) = &mut again.action {
        e.conversation_id = None;
        e.visitor_id = first.visitor_id.clone();
    }
    feed.extend(world.entries(&[again], feed.len() as u64 + 1, 600_000));
    let mut desk = world.desk(&db);
    apply_all(&mut desk, &feed);
    purge(&mut desk);
    drop(desk);
    let id: i64 = one(
        &db,
        &format!(
            "SELECT id FROM alerts WHERE conversation IS NULL AND at_ms >= {CUTOFF_MS} LIMIT 1"
        ),
    );
    let c = tampered(
        &db,
        dir.path(),
        &world,
        "device-alert.sqlite3",
        &format!("DELETE FROM alerts WHERE id = {id}"),
    );
    assert!(
        c.disagreements
            .iter()
            .any(|d| d.alert_id == Some(id) && d.message.contains("removed")),
        "{:#?}",
        c.disagreements
    );
}

#[test]
fn an_alert_moved_to_another_user_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let world = World::new(dir.path());
    let db = full_store(dir.path(), &world);
    agrees(&check(&db, &world));
    let (id, user): (i64, String) = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row(
            "SELECT id, user_id FROM alerts WHERE user_id IS NOT NULL LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let c = tampered(
        &db,
        dir.path(),
        &world,
        "alert-user.sqlite3",
        &format!("UPDATE alerts SET user_id = 'cust-someone-else' WHERE id = {id}"),
    );
    assert!(
        c.disagreements.iter().any(|d| d.alert_id == Some(id)
            && d.message.contains("for cust-someone-else")
            && d.message.contains(&format!("for {user}"))),
        "{:#?}",
        c.disagreements
    );
}
