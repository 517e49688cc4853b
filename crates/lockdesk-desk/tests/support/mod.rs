//! What both retention tests (`erase.rs`, `tamper.rs`) add to the test world (`World`, in
//! main.rs): the simulator's steps turned into feed entries numbered and received where a test
//! says (real tokens minted at their reception time), applied in chunks.

use lockdesk_desk::Desk;
use lockdesk_feed::{Entry, EntryKind};
use lockdesk_sim::{Action, Step};
use serde_json::{json, Value};

use crate::{World, T0_MS};

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
