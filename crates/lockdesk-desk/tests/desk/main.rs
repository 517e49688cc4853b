//! The desk core's one integration-test binary: the simulator's scenarios turned into feed
//! entries (real tokens minted by `lockdesk-sim`'s keys, verified by the real engine), applied to
//! real SQLite files in temp folders. The files beside this folder are modules of it too
//! (`autotests = false` in Cargo.toml: one binary for the crate, issue 14).

mod lookalike;
mod scenarios;
mod store;

#[path = "../bounds.rs"]
mod bounds;
#[path = "../erase.rs"]
mod erase;
#[path = "../payloads.rs"]
mod payloads;
#[path = "../support/mod.rs"]
mod support;
#[path = "../tamper.rs"]
mod tamper;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use lockdesk_desk::{
    AlertKind, AuthStateName, Desk, DeskConfig, PresentationVerdict, ReasonCode, VisitorSource,
};
use lockdesk_feed::{Entry, EntryKind, Related};
use lockdesk_keys::{Engine, Setup, Source};
use lockdesk_sim::plan::ISSUER;
use lockdesk_sim::{plan, Action, Scenario, SimKeys, Step};
use serde_json::{json, Value};

/// 2026-01-01T10:00:00Z: the simulated feed starts here.
pub const T0_MS: i64 = 1_767_261_600_000;
/// The tests' authenticated-session lifetime (short, so the session-lapse scenario lapses).
pub const LIFETIME_SECS: i64 = 60;

fn verify_data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../lockdesk-verify/tests/data")
        .join(name)
}

/// The simulated brand's keys (encrypting to the test desk key) and the key files of a desk
/// that trusts the brand, written in `dir`.
pub struct World {
    pub keys: SimKeys,
    pub setup: Setup,
}

impl World {
    pub fn new(dir: &Path) -> World {
        let desk_public = lockdesk_sim::read_desk_public(&verify_data("desk.pub.pem")).unwrap();
        let keys = SimKeys::generate(&desk_public).unwrap();
        World::with_keys(dir, keys)
    }

    pub fn with_keys(dir: &Path, keys: SimKeys) -> World {
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

    pub fn engine(&self) -> Arc<Engine> {
        Arc::new(Engine::load(&self.setup).unwrap())
    }

    pub fn desk(&self, db: &Path) -> Desk {
        Desk::open(
            db,
            self.engine(),
            DeskConfig {
                session_lifetime_secs: LIFETIME_SECS,
            },
        )
        .unwrap()
    }
}

/// How the gateway hands entries to this desk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Every entry, in order.
    Supervisor,
    /// Evidence of a visitor before its conversation's push rides along with the push
    /// (`related`), as the gateway does for advisors.
    Advisor,
}

/// The plan's steps as feed entries numbered from 1 (`World::entries`: webhooks with
/// `createdAt`, evidence with a token minted at its reception time), as the gateway hands them
/// to a desk of this role.
pub fn entries(world: &World, steps: &[Step], role: Role) -> Vec<Entry> {
    let mut out: Vec<Entry> = Vec::new();
    let mut held: Vec<(String, Related)> = Vec::new();
    let mut pushed = std::collections::HashSet::new();
    for mut entry in world.entries(steps, 1, 0) {
        let visitor = entry.payload["visitorId"].as_str().map(str::to_owned);
        match entry.kind {
            EntryKind::Webhook => {
                let event_type = entry.event_type.as_deref().unwrap();
                if event_type == "v2.conversation.pushed" {
                    let visitor = visitor.unwrap();
                    entry.related = held
                        .iter()
                        .filter(|(v, _)| *v == visitor)
                        .map(|(_, r)| r.clone())
                        .collect();
                    held.retain(|(v, _)| *v != visitor);
                    pushed.insert(visitor);
                }
            }
            EntryKind::Evidence => {
                let visitor = visitor.unwrap();
                if role == Role::Advisor && !pushed.contains(&visitor) {
                    held.push((
                        visitor,
                        Related {
                            seq: entry.seq,
                            received_at_ms: entry.received_at_ms,
                            payload: entry.payload,
                        },
                    ));
                    continue;
                }
            }
        }
        out.push(entry);
    }
    out
}

/// One instance of every scenario, 3 s apart.
pub fn all_scenarios(seed: u64) -> Vec<Step> {
    plan(seed, &Scenario::ALL, &[101, 102], 3_000)
}

/// The conversations of one scenario in a plan, in order of their first step.
pub fn conversations_of(steps: &[Step], s: Scenario) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for st in steps.iter().filter(|st| st.scenario == s) {
        if let Action::Webhook { body, .. } = &st.action {
            if let Some(c) = body.get("conversationId").and_then(Value::as_str) {
                if !out.iter().any(|x| x == c) {
                    out.push(c.to_owned());
                }
            }
        }
    }
    out
}

/// The userIds of one scenario's tokens, in order.
pub fn users_of(steps: &[Step], s: Scenario) -> Vec<String> {
    steps
        .iter()
        .filter(|st| st.scenario == s)
        .filter_map(|st| match &st.action {
            Action::Evidence(e) => Some(e.token.user_id.clone()),
            _ => None,
        })
        .collect()
}
