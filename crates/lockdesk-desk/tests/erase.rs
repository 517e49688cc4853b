//! Erasure (GDPR) and retention over the whole store: the simulator's scenarios (real tokens
//! minted by `lockdesk-sim`'s keys, verified by the real engine) applied to a real SQLite file,
//! then `Desk::erase_user` / `Desk::purge_before`, then the file's raw bytes, the audit chain,
//! other people's history and further applying are checked.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use lockdesk_desk::{Desk, History, TOMBSTONE};
use lockdesk_sim::plan::Signer;
use lockdesk_sim::{plan, Action, Scenario, Step};
use serde_json::Value;

use crate::support::{apply_all, contains, file_bytes};
use crate::{World, T0_MS};

/// The valid tokens' people of one scenario: userId and every signed visitorData string.
fn people_of(steps: &[Step], s: Scenario) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for st in steps.iter().filter(|st| st.scenario == s) {
        if let Action::Evidence(e) = &st.action {
            let strings = out.entry(e.token.user_id.clone()).or_default();
            for v in e.token.visitor_data.iter().flat_map(|m| m.values()) {
                if let Some(s) = v.as_str() {
                    strings.insert(s.to_owned());
                }
            }
        }
    }
    out
}

fn visitors_of(steps: &[Step], s: Scenario) -> Vec<String> {
    let mut out = Vec::new();
    for st in steps.iter().filter(|st| st.scenario == s) {
        if let Action::Evidence(e) = &st.action {
            if !out.contains(&e.visitor_id) {
                out.push(e.visitor_id.clone());
            }
        }
    }
    out
}

/// Verified userIds of a plan (brand-signed, not expired).
fn verified_users(steps: &[Step]) -> BTreeSet<String> {
    steps
        .iter()
        .filter_map(|st| match &st.action {
            Action::Evidence(e) if e.token.signer == Signer::Brand && e.token.expires_in > 0 => {
                Some(e.token.user_id.clone())
            }
            _ => None,
        })
        .collect()
}

fn audit_verify(db: &Path) -> lockdesk_audit::Report {
    let conn = rusqlite::Connection::open(db).unwrap();
    lockdesk_audit::verify(&conn).unwrap()
}

fn histories(desk: &Desk, users: &BTreeSet<String>) -> BTreeMap<String, History> {
    users
        .iter()
        .map(|u| (u.clone(), desk.history(u).unwrap()))
        .collect()
}

#[test]
fn erasing_a_user_removes_their_bytes_keeps_the_chain_and_others_history() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("desk.sqlite3");
    let world = World::new(dir.path());
    let steps = plan(11, &Scenario::ALL, &[101, 102], 3_000);
    let mut desk = world.desk(&db);
    apply_all(&mut desk, &world.entries(&steps, 1, 0));

    // Three people: on three devices of their own; one userId carried by two people's signed
    // identities (a reused_user_id alert compares them); the first of two on a shared device.
    let multi = people_of(&steps, Scenario::MultiDevice);
    let reused = people_of(&steps, Scenario::ReusedUserId);
    let shared = people_of(&steps, Scenario::SharedDevice);
    assert_eq!((multi.len(), reused.len(), shared.len()), (1, 1, 2));
    let shared_first = steps
        .iter()
        .find_map(|st| match &st.action {
            Action::Evidence(e) if st.scenario == Scenario::SharedDevice => {
                Some(e.token.user_id.clone())
            }
            _ => None,
        })
        .unwrap();
    let shared_second = shared.keys().find(|u| **u != shared_first).unwrap().clone();
    let mut erased: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    erased.extend(multi.clone());
    erased.extend(reused.clone());
    erased.insert(shared_first.clone(), shared[&shared_first].clone());

    // What must be gone: the userIds, their signed values that nobody else also has (first
    // names repeat among the simulated people), the devices that were theirs alone.
    let mut others_strings: BTreeSet<String> = BTreeSet::new();
    for s in Scenario::ALL {
        for (u, strings) in people_of(&steps, s) {
            if !erased.contains_key(&u) {
                others_strings.extend(strings);
            }
        }
    }
    let mut gone: BTreeSet<String> = BTreeSet::new();
    for (u, strings) in &erased {
        gone.insert(u.clone());
        gone.extend(
            strings
                .iter()
                .filter(|s| !others_strings.contains(*s))
                .cloned(),
        );
    }
    let own_devices = visitors_of(&steps, Scenario::MultiDevice);
    assert_eq!(own_devices.len(), 3);
    gone.extend(own_devices.iter().cloned());
    gone.remove("FR");
    let emails: Vec<&String> = gone.iter().filter(|s| s.contains('@')).collect();
    assert!(!emails.is_empty(), "no erased email to look for");
    let before = file_bytes(&db);
    for g in &gone {
        assert!(
            contains(&before, g),
            "{g:?} should be in the file before erasure"
        );
    }

    let others: BTreeSet<String> = verified_users(&steps)
        .into_iter()
        .filter(|u| !erased.contains_key(u) && *u != shared_second)
        .collect();
    assert!(others.len() >= 3, "{others:?}");
    let others_before = histories(&desk, &others);
    let second_before = desk.history(&shared_second).unwrap();
    let stats_before = desk.stats().unwrap();
    let chain_before = audit_verify(&db);
    assert_eq!(chain_before.tombstones, 0);

    for u in erased.keys() {
        let r = desk.erase_user(u, T0_MS + 600_000).unwrap();
        assert_eq!(r.desk.identities, 1, "{u}: {r:?}");
        assert!(
            r.desk.presentations > 0 && r.desk.conversations > 0,
            "{r:?}"
        );
        assert!(r.audit.erased_entries > 0, "{r:?}");
        assert!(r.file_scrubbed, "{r:?}");
        assert!(!desk.history(u).unwrap().known);
    }

    // The bytes on disk (file and WAL).
    let after = file_bytes(&db);
    for g in &gone {
        assert!(
            !contains(&after, g),
            "{g:?} is still in the file after erasure"
        );
    }
    // The chain holds, with tombstones.
    let chain = audit_verify(&db);
    assert!(chain.tombstones > 0);
    assert_eq!(
        chain.entries,
        chain_before.entries + 3,
        "one erasure entry per person"
    );

    // Everyone else's history is unchanged.
    assert_eq!(histories(&desk, &others), others_before);
    // The shared device's other person keeps their device, their conversation and its name;
    // the erased person's conversation on that device stays, tombstoned and nameless.
    let second = desk.history(&shared_second).unwrap();
    assert_eq!(second.visitors, second_before.visitors);
    assert_eq!(second.visitor_data, second_before.visitor_data);
    assert_eq!(
        second.conversations.len(),
        second_before.conversations.len()
    );
    for (a, b) in second
        .conversations
        .iter()
        .zip(&second_before.conversations)
    {
        if b.row.user_id.as_deref() == Some(shared_first.as_str()) {
            assert_eq!(a.row.user_id.as_deref(), Some(TOMBSTONE));
            assert_eq!(a.row.name, None);
            assert_eq!(a.row.conversation_id, b.row.conversation_id);
        } else {
            assert_eq!(a, b);
        }
    }
    // Counts are kept: conversations, presentations and alerts stay (tombstoned); identities
    // go; the reused-userId alert stays with its codes but without the two identities.
    let stats = desk.stats().unwrap();
    assert_eq!(stats.conversations, stats_before.conversations);
    assert_eq!(stats.presentations, stats_before.presentations);
    assert_eq!(stats.alerts, stats_before.alerts);
    assert_eq!(stats.identities, stats_before.identities - 3);
    let reused_conv = steps
        .iter()
        .find_map(|st| match &st.action {
            Action::Webhook { body, .. } if st.scenario == Scenario::ReusedUserId => {
                body.get("conversationId").and_then(Value::as_str)
            }
            _ => None,
        })
        .unwrap();
    let alerts = desk.alerts(None, 0).unwrap();
    let reused_alert = alerts
        .iter()
        .find(|a| a.code == Some(lockdesk_desk::AlertKind::ReusedUserId))
        .unwrap();
    assert_eq!(reused_alert.user_id.as_deref(), Some(TOMBSTONE));
    assert_eq!(reused_alert.evidence["previous"], TOMBSTONE);
    assert_eq!(reused_alert.evidence["current"], TOMBSTONE);
    let d = desk.conversation(reused_conv).unwrap().unwrap();
    assert_eq!(d.row.user_id.as_deref(), Some(TOMBSTONE));
    assert_eq!(d.row.name, None);
    assert!(d
        .presentations
        .iter()
        .all(|p| p.user_id.as_deref() == Some(TOMBSTONE) && p.visitor_data.is_none()));

    // Erasing again finds nothing and writes nothing.
    let again = desk.erase_user(&shared_first, T0_MS + 601_000).unwrap();
    assert_eq!(again.desk.total(), 0);
    assert_eq!(again.audit.erased_entries, 0);

    // The desk keeps applying: a second run of every scenario, later, with new seqs.
    let steps2 = plan(12, &Scenario::ALL, &[101, 102], 3_000);
    let cursor = desk.cursor();
    apply_all(&mut desk, &world.entries(&steps2, cursor + 1, 900_000));
    assert_eq!(desk.cursor(), cursor + steps2.len() as u64);
    let stats2 = desk.stats().unwrap();
    assert_eq!(
        stats2.conversations,
        stats.conversations + stats_before.conversations
    );
    for u in verified_users(&steps2) {
        assert!(desk.history(&u).unwrap().known, "{u}");
    }
    assert_eq!(histories(&desk, &others), others_before);
    let chain2 = audit_verify(&db);
    assert!(chain2.entries > chain.entries);
    assert_eq!(chain2.tombstones, chain.tombstones);
}

#[test]
fn purging_removes_old_closed_conversations_from_the_desk_and_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("desk.sqlite3");
    let world = World::new(dir.path());
    // Scenarios 30 s apart: the first ones are closed long before the last ones start.
    let steps = plan(21, &Scenario::ALL, &[101, 102], 30_000);
    let mut desk = world.desk(&db);
    apply_all(&mut desk, &world.entries(&steps, 1, 0));
    let cutoff = T0_MS + 150_000;

    let all = desk
        .conversations(&lockdesk_desk::ConversationQuery {
            limit: 10_000,
            ..Default::default()
        })
        .unwrap();
    let (old, kept): (Vec<_>, Vec<_>) = all
        .into_iter()
        .partition(|c| c.closed_ms.is_some_and(|t| t < cutoff));
    assert!(
        old.len() >= 3 && !kept.is_empty(),
        "{} {}",
        old.len(),
        kept.len()
    );
    let kept_before: Vec<_> = kept
        .iter()
        .map(|c| desk.conversation(&c.conversation_id).unwrap().unwrap())
        .collect();
    let before = file_bytes(&db);
    for c in &old {
        assert!(contains(&before, &c.conversation_id));
    }
    let chain_before = audit_verify(&db);

    let r = desk.purge_before(cutoff, T0_MS + 3_600_000).unwrap();
    assert_eq!(r.desk.conversations, old.len() as u64, "{r:?}");
    assert!(r.desk.presentations > 0 && r.desk.transitions > 0, "{r:?}");
    assert!(r.audit.purged_entries > 0 && r.file_scrubbed, "{r:?}");

    for c in &old {
        assert!(desk.conversation(&c.conversation_id).unwrap().is_none());
    }
    for d in &kept_before {
        assert_eq!(
            desk.conversation(&d.row.conversation_id).unwrap().as_ref(),
            Some(d)
        );
    }
    // Gone from both the desk and the log, and from the bytes on disk.
    let conn = rusqlite::Connection::open(&db).unwrap();
    for c in &old {
        let n: i64 = conn
            .query_row(
                "SELECT count(*) FROM audit_log WHERE conversation_id = ?1",
                [&c.conversation_id],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 0, "{}", c.conversation_id);
    }
    // The log keeps no entry before the cutoff except after a newer one (a purge removes the
    // run of old entries from the start).
    let first_new: i64 = conn
        .query_row(
            "SELECT min(seq) FROM audit_log WHERE at_ms >= ?1",
            [cutoff],
            |r| r.get(0),
        )
        .unwrap();
    let older_before_it: i64 = conn
        .query_row(
            "SELECT count(*) FROM audit_log WHERE at_ms < ?1 AND seq < ?2",
            rusqlite::params![cutoff, first_new],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(older_before_it, 0);
    drop(conn);
    let after = file_bytes(&db);
    for c in &old {
        assert!(
            !contains(&after, &c.conversation_id),
            "{} still in the file",
            c.conversation_id
        );
    }
    let chain = audit_verify(&db);
    assert_eq!(chain.purged_through, r.audit.purged_through);
    assert!(chain.entries < chain_before.entries);

    // Nothing left to purge at the same cutoff: nothing written.
    let again = desk.purge_before(cutoff, T0_MS + 3_601_000).unwrap();
    assert_eq!(again.desk.total(), 0);
    assert_eq!(again.audit.purged_entries, 0);
}
