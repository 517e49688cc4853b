//! What the tests add to the test world (`World`, in main.rs): a webhook or evidence entry, the
//! simulator's steps turned into feed entries numbered and received where a test says (real
//! tokens minted at their reception time), applied in chunks.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use lockdesk_desk::{Desk, DeskConfig};
use lockdesk_feed::{Entry, EntryKind};
use lockdesk_keys::{Engine, Setup};
use lockdesk_sim::{Action, Step};
use serde_json::{json, Value};

use crate::{World, T0_MS};

/// A webhook entry (its event type read from the payload, if any).
pub fn webhook(seq: u64, at_ms: i64, payload: Value) -> Entry {
    Entry {
        seq,
        kind: EntryKind::Webhook,
        received_at_ms: at_ms,
        event_type: payload["eventType"].as_str().map(str::to_owned),
        payload,
        related: vec![],
        routing: Default::default(),
    }
}

/// An evidence entry.
pub fn evidence(seq: u64, at_ms: i64, payload: Value) -> Entry {
    Entry {
        seq,
        kind: EntryKind::Evidence,
        received_at_ms: at_ms,
        event_type: None,
        payload,
        related: vec![],
        routing: Default::default(),
    }
}

impl World {
    /// Every step as a feed entry, in order (as a supervisor's desk gets them), numbered from
    /// `first_seq` and received `offset_ms` after T0 + the step's time.
    pub fn entries(&self, steps: &[Step], first_seq: u64, offset_ms: i64) -> Vec<Entry> {
        steps
            .iter()
            .enumerate()
            .map(|(i, step)| {
                let seq = first_seq + i as u64;
                let received = T0_MS + offset_ms + step.at_ms as i64;
                match &step.action {
                    Action::Webhook { body, .. } => {
                        let mut body = body.clone();
                        body.insert(
                            "createdAt".into(),
                            lockdesk_desk::format_rfc3339(received).into(),
                        );
                        webhook(seq, received, Value::Object(body))
                    }
                    Action::Evidence(e) => {
                        let token = self.keys.mint(&e.token, received / 1000).unwrap();
                        let mut payload = json!({
                            "visitorId": e.visitor_id,
                            "token": token,
                            "presentedAt": lockdesk_desk::format_rfc3339(received),
                            "source": {"domain": e.source.domain, "device": e.source.device,
                                       "app": e.source.app},
                        });
                        if let Some(c) = &e.conversation_id {
                            payload["conversationId"] = c.clone().into();
                        }
                        evidence(seq, received, payload)
                    }
                }
            })
            .collect()
    }
}

/// A desk at `path` with the real verification engine trusting no key (every token refused)
/// and a 60 s session lifetime: for the tests of what the desk does with entries themselves.
pub fn keyless_desk(path: &Path) -> Desk {
    Desk::open(
        path,
        Arc::new(Engine::load(&Setup::default()).unwrap()),
        DeskConfig {
            session_lifetime_secs: 60,
        },
    )
    .unwrap()
}

/// The SQLite file and its write-ahead log, as bytes on disk.
pub fn file_bytes(db: &Path) -> Vec<u8> {
    let mut bytes = std::fs::read(db).unwrap();
    let wal = PathBuf::from(format!("{}-wal", db.display()));
    if let Ok(w) = std::fs::read(&wal) {
        bytes.extend(w);
    }
    bytes
}

/// `needle` (not empty) stands somewhere in `hay`.
pub fn contains(hay: &[u8], needle: &str) -> bool {
    let n = needle.as_bytes();
    !n.is_empty() && hay.windows(n.len()).any(|w| w == n)
}

pub fn apply_all(desk: &mut Desk, feed: &[Entry]) {
    for chunk in feed.chunks(7) {
        let applied = desk
            .apply(chunk, chunk[chunk.len() - 1].received_at_ms)
            .unwrap();
        assert!(applied.skipped.is_empty(), "{:?}", applied.skipped);
    }
}
