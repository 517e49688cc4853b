//! Feed entries built from the fuzzer's bytes for the desk targets: pushes, closes, visitor
//! updates, other webhooks and evidence, naming a few conversations and visitors so that they
//! meet, with tokens from [`crate::common::token_pool`] or any text, `seq` and reception times
//! near each other or at the extremes, and raw JSON payloads for the malformed paths.

#![allow(dead_code)]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use lockdesk_feed::{Entry, EntryKind, Related};
use serde_json::{Map, Value};

use crate::json;

const CONVERSATIONS: &[&str] = &["conv-1", "conv-2", "conv-3"];
const VISITORS: &[&str] = &["visitor-1", "visitor-2", "visitor-3"];
const CHANNELS: &[&str] = &["chat", "video", "sms", "facebook"];
const FIELDS: &[&str] = &[
    "conversationId",
    "visitorId",
    "channel",
    "operatorId",
    "eventType",
    "token",
    "presentedAt",
    "source",
];

/// `seq` relative to the previous one, or anywhere.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Seq {
    Next,
    Skip(u8),
    Same,
    Back(u8),
    Raw(u64),
    /// Just above i64::MAX (SQLite integers are signed).
    AboveI64(u16),
    Max,
}

impl Seq {
    pub fn next(self, prev: u64) -> u64 {
        match self {
            Seq::Next => prev.saturating_add(1),
            Seq::Skip(n) => prev.saturating_add(u64::from(n) + 1),
            Seq::Same => prev,
            Seq::Back(n) => prev.saturating_sub(u64::from(n)),
            Seq::Raw(n) => n,
            Seq::AboveI64(n) => (1u64 << 63) + u64::from(n),
            Seq::Max => u64::MAX,
        }
    }
}

/// Milliseconds: near the tokens' validity, or anywhere.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum At {
    /// `NOW` plus this many seconds (tokens are valid from NOW - 60 to NOW + 1800).
    Near(i16),
    /// `NOW` plus this many minutes (sessions last an hour).
    Minutes(i16),
    Raw(i64),
    Zero,
    Max,
    Min,
    /// Year 10000 and beyond.
    FarFuture(u32),
}

impl At {
    pub fn ms(self) -> i64 {
        let base = crate::common::NOW * 1000;
        match self {
            At::Near(s) => base + i64::from(s) * 1000,
            At::Minutes(m) => base + i64::from(m) * 60_000,
            At::Raw(ms) => ms,
            At::Zero => 0,
            At::Max => i64::MAX,
            At::Min => i64::MIN,
            At::FarFuture(n) => 253_402_300_800_000 + i64::from(n),
        }
    }
}

/// One of a few names (so entries meet), or any string.
#[derive(Arbitrary, Debug, Clone)]
pub enum Pick {
    Pool(u8),
    Any(String),
}

impl Pick {
    fn text(&self, pool: &[&str]) -> String {
        match self {
            Pick::Pool(i) => pool[usize::from(*i) % pool.len()].to_owned(),
            Pick::Any(s) => s.clone(),
        }
    }
}

#[derive(Arbitrary, Debug, Clone)]
pub enum Tok {
    Pool(u8),
    Any(String),
}

#[derive(Arbitrary, Debug, Clone)]
pub struct EvidenceBody {
    visitor: Pick,
    conversation: Option<Pick>,
    token: Tok,
    presented_at: Option<String>,
    /// domain, device, app
    source: Option<(Option<String>, Option<String>, Option<String>)>,
}

#[derive(Arbitrary, Debug, Clone)]
pub enum Body {
    Pushed {
        conversation: Pick,
        visitor: Pick,
        channel: Pick,
        operator: Option<json::Num>,
        /// The event type in the payload only (not in the entry's `eventType`).
        type_in_payload: bool,
        extra: Vec<(json::Name, json::Json)>,
    },
    Closed {
        conversation: Pick,
        visitor: Option<Pick>,
        channel: Option<Pick>,
    },
    VisitorUpdated {
        visitor: Option<Pick>,
    },
    OtherWebhook {
        event_type: Option<String>,
        payload: json::Json,
    },
    Evidence(EvidenceBody),
    RawEvidence(json::Json),
}

#[derive(Arbitrary, Debug, Clone)]
pub struct RelatedSpec {
    seq: Seq,
    at: At,
    evidence: EvidenceBody,
}

#[derive(Arbitrary, Debug, Clone)]
pub struct EntrySpec {
    pub seq: Seq,
    pub at: At,
    pub body: Body,
    pub related: Vec<RelatedSpec>,
}

fn evidence(b: &EvidenceBody, tokens: &[String]) -> Value {
    let mut m = Map::new();
    m.insert("visitorId".into(), b.visitor.text(VISITORS).into());
    if let Some(c) = &b.conversation {
        m.insert("conversationId".into(), c.text(CONVERSATIONS).into());
    }
    let token = match &b.token {
        Tok::Pool(i) => tokens[usize::from(*i) % tokens.len()].clone(),
        Tok::Any(s) => s.clone(),
    };
    m.insert("token".into(), token.into());
    if let Some(p) = &b.presented_at {
        m.insert("presentedAt".into(), p.clone().into());
    }
    if let Some((domain, device, app)) = &b.source {
        m.insert(
            "source".into(),
            serde_json::json!({"domain": domain, "device": device, "app": app}),
        );
    }
    Value::Object(m)
}

impl EntrySpec {
    /// The entry, its `seq` following `prev`.
    pub fn entry(&self, prev: u64, tokens: &[String]) -> Entry {
        let seq = self.seq.next(prev);
        let webhook = |event_type: Option<&str>, payload: Value| {
            (EntryKind::Webhook, event_type.map(str::to_owned), payload)
        };
        let (kind, event_type, payload) = match &self.body {
            Body::Pushed {
                conversation,
                visitor,
                channel,
                operator,
                type_in_payload,
                extra,
            } => {
                let mut m = json::object(extra, FIELDS);
                m.insert(
                    "conversationId".into(),
                    conversation.text(CONVERSATIONS).into(),
                );
                m.insert("visitorId".into(), visitor.text(VISITORS).into());
                m.insert("channel".into(), channel.text(CHANNELS).into());
                if let Some(op) = operator {
                    m.insert("operatorId".into(), op.value());
                }
                m.insert("eventType".into(), "v2.conversation.pushed".into());
                let t = (!type_in_payload).then_some("v2.conversation.pushed");
                webhook(t, Value::Object(m))
            }
            Body::Closed {
                conversation,
                visitor,
                channel,
            } => {
                let mut m = Map::new();
                m.insert(
                    "conversationId".into(),
                    conversation.text(CONVERSATIONS).into(),
                );
                if let Some(v) = visitor {
                    m.insert("visitorId".into(), v.text(VISITORS).into());
                }
                if let Some(c) = channel {
                    m.insert("channel".into(), c.text(CHANNELS).into());
                }
                webhook(Some("v2.conversation.closed"), Value::Object(m))
            }
            Body::VisitorUpdated { visitor } => {
                let mut m = Map::new();
                if let Some(v) = visitor {
                    m.insert("visitorId".into(), v.text(VISITORS).into());
                }
                webhook(Some("visitor.updated"), Value::Object(m))
            }
            Body::OtherWebhook {
                event_type,
                payload,
            } => webhook(event_type.as_deref(), payload.value(FIELDS)),
            Body::Evidence(b) => (EntryKind::Evidence, None, evidence(b, tokens)),
            Body::RawEvidence(j) => (EntryKind::Evidence, None, j.value(FIELDS)),
        };
        let related = self
            .related
            .iter()
            .take(8)
            .map(|r| Related {
                // `Next` is the entry's seq - 1: the protocol wants related seqs below it.
                seq: r.seq.next(seq.saturating_sub(2)),
                received_at_ms: r.at.ms(),
                payload: evidence(&r.evidence, tokens),
            })
            .collect();
        Entry {
            seq,
            kind,
            received_at_ms: self.at.ms(),
            event_type,
            payload,
            related,
            routing: Default::default(),
        }
    }
}

/// Entries for a list of specs, `seq`s following on from `prev`; returns the last `seq` too.
pub fn entries(specs: &[EntrySpec], mut prev: u64, tokens: &[String]) -> (Vec<Entry>, u64) {
    let out = specs
        .iter()
        .map(|s| {
            let e = s.entry(prev, tokens);
            prev = e.seq;
            e
        })
        .collect();
    (out, prev)
}
