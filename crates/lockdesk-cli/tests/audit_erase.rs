//! `lockdesk-cli audit erase` and `audit purge` on the demo's store, as processes: the erased
//! person's userId and signed visitorData leave the file's bytes (desk tables and audit log),
//! and `audit verify` still passes.

use crate::support::{history, ok, run_with_data as run, SUPERVISOR_DEMO};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

/// The store and its write-ahead log, as bytes on disk.
fn file_bytes(db: &Path) -> Vec<u8> {
    let mut bytes = std::fs::read(db).unwrap();
    if let Ok(w) = std::fs::read(PathBuf::from(format!("{}-wal", db.display()))) {
        bytes.extend(w);
    }
    bytes
}

fn contains(hay: &[u8], needle: &str) -> bool {
    let n = needle.as_bytes();
    !n.is_empty() && hay.windows(n.len()).any(|w| w == n)
}

/// The demo (one pass, every scenario, supervisor: every conversation): its change lines.
fn demo(data: &Path) -> Vec<Value> {
    ok(&run(&SUPERVISOR_DEMO, data))
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .collect()
}

fn field(lines: &[Value], key: &str) -> BTreeSet<String> {
    lines
        .iter()
        .filter_map(|l| l.get(key).and_then(Value::as_str).map(str::to_owned))
        .collect()
}

fn strings_of(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .into_iter()
        .flat_map(|m| m.values())
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect()
}

#[test]
fn audit_erase_removes_the_person_from_the_whole_file_and_the_chain_still_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo");
    let users = field(&demo(&data), "userId");
    let db = data.join("desk.sqlite3");
    assert!(users.len() >= 4, "{users:?}");
    ok(&run(&["audit", "verify"], &data));

    // Each person's signed values; erase one whose email nobody else has.
    let values: BTreeMap<String, BTreeSet<String>> = users
        .iter()
        .map(|u| (u.clone(), strings_of(&history(&data, u)["visitorData"])))
        .collect();
    let count = |s: &str| values.values().filter(|v| v.contains(s)).count();
    let (user, mine) = values
        .iter()
        .find(|(_, v)| v.iter().any(|s| s.contains('@') && count(s) == 1))
        .expect("someone with an email of their own");
    let gone: Vec<&String> = std::iter::once(user)
        .chain(mine.iter().filter(|s| count(s) == 1 && s.len() > 3))
        .collect();
    let before = file_bytes(&db);
    for g in &gone {
        assert!(contains(&before, g), "{g:?} should be in the store before");
    }
    let others: BTreeMap<&String, Value> = users
        .iter()
        .filter(|u| *u != user)
        .map(|u| (u, history(&data, u)))
        .collect();

    let out = ok(&run(&["audit", "erase", "--user-id", user], &data));
    assert!(out.contains("erased "), "{out}");
    assert!(out.contains("desk: 1 identity"), "{out}");

    let after = file_bytes(&db);
    for g in &gone {
        assert!(!contains(&after, g), "{g:?} is still in the store's bytes");
    }
    let verify = ok(&run(&["audit", "verify"], &data));
    assert!(
        verify.starts_with("ok: ") && !verify.contains(" 0 tombstones"),
        "{verify}"
    );
    assert_eq!(history(&data, user)["known"], false);
    // People who never shared a device with the erased one keep the same history.
    for (u, h) in &others {
        let now = history(&data, u);
        let touched = h["conversations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["userId"] == user.as_str() || c["otherUserId"] == user.as_str());
        if !touched {
            assert_eq!(&now, h, "{u}");
        }
    }
}

#[test]
fn audit_purge_removes_old_conversations_from_desk_and_log() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo");
    let lines = demo(&data);
    let db = data.join("desk.sqlite3");
    // The conversations the demo closed (a session-lapse one may still be open).
    let mut last: BTreeMap<String, String> = BTreeMap::new();
    for l in &lines {
        if let (Some(c), Some(st)) = (
            l.get("conversationId").and_then(Value::as_str),
            l.get("state").and_then(Value::as_str),
        ) {
            last.insert(c.to_owned(), st.to_owned());
        }
    }
    let (closed, open): (Vec<_>, Vec<_>) = last.iter().partition(|(_, st)| *st == "closed");
    assert!(closed.len() >= 5, "{last:?}");
    let before = file_bytes(&db);
    for (c, _) in &closed {
        assert!(contains(&before, c));
    }
    // Everything the demo wrote is older than a cutoff of 0 days ago (now).
    std::thread::sleep(std::time::Duration::from_millis(20));
    let out = ok(&run(&["audit", "purge", "--older-than", "0"], &data));
    assert!(out.contains("purged "), "{out}");
    assert!(
        out.contains(&format!(
            "desk: removed {} closed conversations",
            closed.len()
        )),
        "{out}"
    );
    let verify = ok(&run(&["audit", "verify"], &data));
    assert!(
        verify.starts_with("ok: ") && verify.contains("purged"),
        "{verify}"
    );
    let after = file_bytes(&db);
    for (c, _) in &closed {
        assert!(
            !contains(&after, c),
            "{c} still in the store after the purge"
        );
    }
    for (c, _) in &open {
        assert!(contains(&after, c), "open {c} was purged");
    }
}
