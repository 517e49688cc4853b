#![no_main]
//! Batches of arbitrary feed entries applied to a real desk store (a SQLite file on tmpfs, the
//! audit chain in it) with the real verifier and tokens minted with the test keys: valid ones
//! for two userIds, expired, too long-lived, untrusted, junk. `seq`s may repeat, go back or
//! exceed i64::MAX; reception times may be anywhere (year 10000, i64::MIN).
//!
//! Checked after every batch, beyond "no panic": the batch is applied (a malformed entry is
//! skipped, never fails it; only a `seq` SQLite cannot store may refuse it, moving nothing);
//! the cursor is the highest `seq` seen, committed (a second handle on the file reads it back)
//! and the duplicate count is right; every change and every query answer serialises; every
//! change's conversation and alert can be read back; the audit chain verifies and the tables
//! agree with it (`Desk::check_against_audit`); applying the same batch again changes nothing
//! (idempotence); a tick works. At the end, no token is anywhere in the store's files (only
//! their SHA-256 is kept).

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use lockdesk_desk::{ConversationQuery, Desk, DeskConfig, TokenVerifier};

#[path = "common.rs"]
mod common;
#[path = "entries.rs"]
mod entries;
#[path = "json.rs"]
mod json;

const MAX_SEQ: u64 = i64::MAX as u64;

#[derive(Arbitrary, Debug)]
struct Batch {
    entries: Vec<entries::EntrySpec>,
    /// The desk's clock for this batch (and its tick).
    now: entries::At,
    tick: bool,
}

struct Shared {
    verifier: Arc<dyn TokenVerifier>,
    tokens: Vec<String>,
}

fn shared() -> &'static Shared {
    static S: OnceLock<Shared> = OnceLock::new();
    S.get_or_init(|| Shared {
        verifier: Arc::new(common::verifier()),
        tokens: common::token_pool(),
    })
}

/// A directory on tmpfs when there is one: the store fsyncs every commit.
pub fn scratch_dir() -> tempfile::TempDir {
    let shm = std::path::Path::new("/dev/shm");
    let b = tempfile::Builder::new().prefix("lockdesk-fuzz-").to_owned();
    if shm.is_dir() {
        if let Ok(d) = b.tempdir_in(shm) {
            return d;
        }
    }
    b.tempdir().expect("temp dir")
}

/// Every check that holds after any batch; returns the desk's stats.
pub fn check_desk(desk: &Desk, path: &std::path::Path, changes: &[lockdesk_desk::Change]) {
    for c in changes {
        let line = c.to_json_line();
        let v: serde_json::Value = serde_json::from_str(&line).expect("a change is a JSON line");
        assert!(v.is_object());
        if let (Some(cid), Some(_)) = (&c.conversation_id, &c.state) {
            assert!(
                desk.conversation(cid).expect("conversation").is_some(),
                "a change names a conversation the desk does not have"
            );
        }
        if let Some(id) = c.alert_id {
            let a = desk
                .alert(id)
                .expect("alert")
                .expect("a change's alert exists");
            serde_json::to_string(&a).expect("alert serialises");
        }
        if let Some(uid) = &c.user_id {
            let h = desk.history(uid).expect("history");
            serde_json::to_string(&h).expect("history serialises");
        }
    }
    let rows = desk
        .conversations(&ConversationQuery::default())
        .expect("conversations");
    serde_json::to_string(&rows).expect("rows serialise");
    for r in rows.iter().take(4) {
        let d = desk
            .conversation(&r.conversation_id)
            .expect("conversation")
            .expect("a listed conversation exists");
        serde_json::to_string(&d).expect("detail serialises");
    }
    let alerts = desk.alerts(None, 0).expect("alerts");
    serde_json::to_string(&alerts).expect("alerts serialise");
    desk.alert_counts().expect("alert counts");
    let stats = desk.stats().expect("stats");
    assert_eq!(stats.cursor, desk.cursor(), "stats and handle disagree");
    // Committed: a second handle on the file reads the same cursor.
    let other =
        Desk::open(path, shared().verifier.clone(), DeskConfig::default()).expect("second handle");
    assert_eq!(
        other.cursor(),
        desk.cursor(),
        "the cursor was not committed"
    );
    let conn = rusqlite::Connection::open(path).expect("audit connection");
    if let Err(e) = lockdesk_audit::verify(&conn) {
        panic!("the audit chain does not verify: {e}");
    }
    // The desk's tables agree with its audit log (states, sessions, names, alerts).
    match desk.check_against_audit(&mut |_| {}) {
        Ok(c) => assert!(
            c.agrees(),
            "tables and audit log disagree: {:?}",
            c.disagreements
        ),
        Err(e) => panic!("the store check failed: {e}"),
    }
}

/// No token (nor a long enough piece of one) in the store's files.
pub fn check_no_token(dir: &std::path::Path, tokens: &[String]) {
    let mut bytes = Vec::new();
    for f in std::fs::read_dir(dir).expect("dir").flatten() {
        bytes.extend(std::fs::read(f.path()).unwrap_or_default());
    }
    for t in tokens {
        // The last 48 characters: the signature or tag, never in anything but the token.
        let tail = &t.as_bytes()[t.len().saturating_sub(48)..];
        if tail.len() >= 24 {
            // memmem, not a loop of slice comparisons: libFuzzer hooks every memcmp.
            assert!(
                memchr::memmem::find(&bytes, tail).is_none(),
                "a token is stored"
            );
        }
    }
}

fuzz_target!(|batches: Vec<Batch>| {
    let s = shared();
    let dir = scratch_dir();
    let path = dir.path().join("desk.sqlite3");
    let mut desk =
        Desk::open(&path, s.verifier.clone(), DeskConfig::default()).expect("open the desk");
    let mut prev = 0u64;
    let mut ignored = 0u64;
    let mut used_tokens: Vec<String> = Vec::new();
    for batch in batches.iter().take(6) {
        let specs = &batch.entries[..batch.entries.len().min(24)];
        let (batch_entries, last) = entries::entries(specs, prev, &s.tokens);
        prev = last;
        // The desk's own clock is not wire input: any time with a four-digit year.
        let now_ms = batch.now.ms().clamp(0, 253_402_300_799_999);
        let start = desk.cursor();
        let mut expected_cursor = start;
        let mut duplicates = 0u64;
        for e in &batch_entries {
            if e.seq <= expected_cursor {
                duplicates += 1;
            } else {
                expected_cursor = e.seq;
            }
            for p in std::iter::once(&e.payload).chain(e.related.iter().map(|r| &r.payload)) {
                if let Some(t) = p.get("token").and_then(|t| t.as_str()) {
                    used_tokens.push(t.to_owned());
                }
            }
        }
        // A seq outside 1..=i64::MAX cannot be stored (SQLite integers are signed) nor resumed
        // after: refusing the batch, or skipping the entry, are both correct; a cursor that is
        // not what was committed is not.
        let over = batch_entries.iter().any(|e| e.seq == 0 || e.seq > MAX_SEQ);
        let applied = match desk.apply(&batch_entries, now_ms) {
            Ok(a) => a,
            Err(_) if over => {
                assert_eq!(desk.cursor(), start, "a refused batch moved the cursor");
                check_desk(&desk, &path, &[]);
                continue;
            }
            Err(e) => panic!("a batch failed (a malformed entry must be skipped): {e}"),
        };
        assert_eq!(desk.cursor(), applied.cursor, "handle cursor");
        assert!(applied.cursor <= MAX_SEQ, "a cursor beyond i64::MAX");
        if !over {
            assert_eq!(applied.cursor, expected_cursor, "cursor");
            assert_eq!(applied.duplicates, duplicates, "duplicates");
        }
        ignored += applied.ignored;
        let seqs: Vec<u64> = batch_entries
            .iter()
            .flat_map(|e| std::iter::once(e.seq).chain(e.related.iter().map(|r| r.seq)))
            .collect();
        for sk in &applied.skipped {
            assert!(
                seqs.contains(&sk.seq),
                "a skipped seq that is not in the batch"
            );
            for t in used_tokens.iter().filter(|t| t.len() >= 32) {
                assert!(!sk.error.contains(t.as_str()), "an error echoes a token");
            }
        }
        for c in &applied.changes {
            assert!(seqs.contains(&c.seq) || c.seq == start, "a change's seq");
        }
        check_desk(&desk, &path, &applied.changes);
        let stats = desk.stats().expect("stats");
        assert_eq!(stats.ignored, ignored, "ignored count");

        // Idempotence: the same batch again is all duplicates and changes nothing.
        match desk.apply(&batch_entries, now_ms) {
            Ok(again) => {
                assert!(again.changes.is_empty(), "re-applying changed something");
                assert!(again.skipped.is_empty(), "re-applying skipped something");
                if !over {
                    assert_eq!(again.duplicates, batch_entries.len() as u64);
                }
            }
            Err(e) => assert!(over, "re-applying failed: {e}"),
        }
        assert_eq!(
            desk.stats().expect("stats"),
            stats,
            "re-applying changed the stats"
        );

        if batch.tick {
            let changes = desk.tick(now_ms).expect("tick");
            check_desk(&desk, &path, &changes);
        }
    }
    drop(desk);
    // The pool's tokens only: a made-up "token" may also be a visitor id, which is stored.
    check_no_token(dir.path(), &s.tokens);
});
