//! The world both retention tests (`erase.rs`, `tamper.rs`) apply: the simulator's keys and
//! a real verification engine, the simulator's steps turned into feed entries (real tokens minted
//! at their reception time), and a real SQLite desk.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use lockdesk_desk::{Desk, DeskConfig};
use lockdesk_feed::{Entry, EntryKind};
use lockdesk_keys::{Engine, Setup, Source};
use lockdesk_sim::plan::ISSUER;
use lockdesk_sim::{Action, SimKeys, Step};
use serde_json::{json, Value};

/// 2026-01-01T10:00:00Z: the simulated feed starts here.
pub const T0_MS: i64 = 1_767_261_600_000;
pub const LIFETIME_SECS: i64 = 60;

fn verify_data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../lockdesk-verify/tests/data")
        .join(name)
}

pub struct World {
    keys: SimKeys,
    setup: Setup,
}

impl World {
    pub fn new(dir: &Path) -> World {
        let desk_public = lockdesk_sim::read_desk_public(&verify_data("desk.pub.pem")).unwrap();
        let keys = SimKeys::generate(&desk_public).unwrap();
        let jwks = dir.join("brand.jwks.json");
        std::fs::write(&jwks, &keys.brand_public_jwks).unwrap();
        World {
            keys,
            setup: Setup {
                trust: vec![(ISSUER.to_owned(), Source::File(jwks))],
                decryption: vec![verify_data("desk.key.pkcs1.pem")],
                ..Setup::default()
            },
        }
    }

    pub fn desk(&self, db: &Path) -> Desk {
        Desk::open(
            db,
            Arc::new(Engine::load(&self.setup).unwrap()),
            DeskConfig {
                session_lifetime_secs: LIFETIME_SECS,
            },
        )
        .unwrap()
    }

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
                        Entry {
                            seq,
                            kind: EntryKind::Webhook,
                            received_at_ms: received,
                            event_type: body["eventType"].as_str().map(str::to_owned),
                            payload: Value::Object(body),
                            related: vec![],
                            routing: Default::default(),
                        }
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
                        Entry {
                            seq,
                            kind: EntryKind::Evidence,
                            received_at_ms: received,
                            event_type: None,
                            payload,
                            related: vec![],
                            routing: Default::default(),
                        }
                    }
                }
            })
            .collect()
    }
}

pub fn apply_all(desk: &mut Desk, feed: &[Entry]) {
    for chunk in feed.chunks(7) {
        let applied = desk
            .apply(chunk, chunk[chunk.len() - 1].received_at_ms)
            .unwrap();
        assert!(applied.skipped.is_empty(), "{:?}", applied.skipped);
    }
}
