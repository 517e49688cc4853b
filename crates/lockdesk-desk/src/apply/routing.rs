//! Which conversation an entry acts on. A webhook acts on its conversation (read with the
//! payload model the gateway shares, [`lockdesk_feed::payload`]: one id rule, one operator-id
//! rule); evidence acts on the conversation it names, else on its visitor's open
//! conversations, else waits ("pending") for the visitor's next push, which takes the
//! presentations of the last session lifetime that name it or no conversation.

use std::collections::HashMap;

use lockdesk_conversation::OperatorId;
use lockdesk_feed::{payload, Entry};
use lockdesk_verify::Verdict;
use rusqlite::params;
use serde_json::Value;

use super::conversation::Conv;
use super::Ctx;
use crate::{DeskError, TokenVerifier};

/// A webhook's event type: the one the gateway sent with the entry, else the payload's.
pub(super) fn event_type(e: &Entry) -> Option<&str> {
    e.event_type
        .as_deref()
        .or_else(|| e.payload.get("eventType").and_then(Value::as_str))
}

/// A webhook payload as an object (the shared model reads objects).
fn object(p: &Value) -> Result<&serde_json::Map<String, Value>, payload::FieldError> {
    p.as_object()
        .ok_or_else(|| payload::FieldError("the payload is not an object".into()))
}

/// The visitor a `visitor.updated` webhook names (the gateway's field, else the payload's).
pub(super) fn updated_visitor(e: &Entry) -> Result<String, payload::FieldError> {
    match &e.routing.visitor_id {
        Some(v) => payload::id_text(&Value::from(v.as_str()), "visitorId").map(str::to_owned),
        None => {
            object(&e.payload).and_then(|o| payload::required_id(o, "visitorId").map(str::to_owned))
        }
    }
}

/// A webhook's conversation, visitor and operator. The routing fields the gateway sent with the
/// entry are preferred (checked again with the same id rule); the payload is read for those it
/// did not send (an older gateway). A form-encoded `operatorId` of "42" is operator 42 here as
/// it was for the gateway's routing.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct WebhookRouting {
    pub(super) conversation_id: Option<String>,
    pub(super) visitor_id: Option<String>,
    /// The operator the conversation is with after this event ([`payload::Routing::operator`]).
    pub(super) operator: Option<OperatorId>,
}

pub(super) fn webhook_routing(
    e: &Entry,
    p: &serde_json::Map<String, Value>,
) -> Result<WebhookRouting, payload::FieldError> {
    let sent = &e.routing;
    let read = if sent.conversation_id.is_some()
        && sent.visitor_id.is_some()
        && sent.operator_ids.is_some()
    {
        None
    } else {
        Some(payload::Routing::read(p)?)
    };
    let checked = |v: &Option<String>, name: &str| match v {
        Some(s) => payload::id_text(&Value::from(s.as_str()), name).map(|s| Some(s.to_owned())),
        None => Ok(None),
    };
    let conversation_id = match &sent.conversation_id {
        Some(_) => checked(&sent.conversation_id, "conversationId")?,
        None => read.as_ref().and_then(|r| r.conversation_id.clone()),
    };
    let visitor_id = match &sent.visitor_id {
        Some(_) => checked(&sent.visitor_id, "visitorId")?,
        None => read.as_ref().and_then(|r| r.visitor_id.clone()),
    };
    let operator = match (&sent.operator_ids, &read) {
        // The gateway's list is `operatorId` and `operatorIds` together: one id is the operator;
        // several need the payload's `operatorId` to tell which.
        (Some(ids), _) if ids.len() == 1 => Some(ids[0]),
        (Some(ids), _) if ids.is_empty() => None,
        (Some(_), Some(r)) => r.operator(),
        (Some(_), None) => payload::Routing::read(p)?.operator(),
        (None, Some(r)) => r.operator(),
        (None, None) => None,
    };
    // Within 0..=OperatorId::MAX by the payload rule (an entry whose ids are out of bounds was
    // skipped by `check_fields`): an id the store cannot hold is no operator.
    let operator = operator.and_then(OperatorId::new);
    Ok(WebhookRouting {
        conversation_id,
        visitor_id,
        operator,
    })
}

/// What a push needs: its conversation, visitor, channel and operator.
fn pushed_fields(
    e: &Entry,
) -> Result<(String, String, String, Option<OperatorId>), payload::FieldError> {
    let p = object(&e.payload)?;
    let routing = webhook_routing(e, p)?;
    let missing = |name: &str| payload::FieldError(format!("{name} is missing"));
    Ok((
        routing
            .conversation_id
            .ok_or_else(|| missing("conversationId"))?,
        routing.visitor_id.ok_or_else(|| missing("visitorId"))?,
        payload::required_label(p, "channel")?.to_owned(),
        routing.operator,
    ))
}

impl Ctx<'_> {
    /// `v2.conversation.pushed`: the visitor's bundled evidence first, then the conversation
    /// (created, or its operator updated), then the visitor's pending presentations.
    pub(super) fn pushed(
        &mut self,
        e: &Entry,
        verdicts: &mut HashMap<u64, Verdict>,
        verifier: &dyn TokenVerifier,
    ) -> Result<(), DeskError> {
        let (conversation_id, visitor_id, channel, operator_id) = match pushed_fields(e) {
            Ok(f) => f,
            Err(m) => {
                return self.skip(
                    e.seq,
                    e.received_at_ms,
                    format!("v2.conversation.pushed: {m}"),
                )
            }
        };
        let (conversation_id, visitor_id, channel) = (&*conversation_id, &*visitor_id, &*channel);
        // The visitor's earlier evidence first, as if it had arrived before the push.
        for r in &e.related {
            self.evidence(r.seq, r.received_at_ms, &r.payload, verdicts, verifier)?;
        }
        let visitor = self.visitor(visitor_id, e.received_at_ms)?;
        let mut conv = match self.load(conversation_id)? {
            Some(mut c) => {
                self.set_operator(&mut c, operator_id)?;
                c
            }
            None => self.create(
                conversation_id,
                (visitor, visitor_id),
                channel,
                operator_id,
                Some(e.received_at_ms),
                e.received_at_ms,
            )?,
        };
        for id in self.pending(visitor, e.received_at_ms, conversation_id)? {
            self.attach(&mut conv, id)?;
        }
        Ok(())
    }

    /// `v2.conversation.closed`: closes the conversation, creating it (for history) when this
    /// desk saw no push of it.
    pub(super) fn closed(&mut self, e: &Entry) -> Result<(), DeskError> {
        let read = (|| {
            let p = object(&e.payload)?;
            let routing = webhook_routing(e, p)?;
            let conversation_id = routing
                .conversation_id
                .clone()
                .ok_or_else(|| payload::FieldError("conversationId is missing".into()))?;
            Ok::<_, payload::FieldError>((p, routing, conversation_id))
        })();
        let (p, routing, conversation_id) = match read {
            Ok(r) => r,
            Err(m) => {
                return self.skip(
                    e.seq,
                    e.received_at_ms,
                    format!("v2.conversation.closed: {m}"),
                )
            }
        };
        let conversation_id = conversation_id.as_str();
        let mut conv = match self.load(conversation_id)? {
            Some(c) => c,
            None => {
                // Closed without a push this desk saw: keep it for history.
                let fields = (|| {
                    let visitor_id = routing
                        .visitor_id
                        .clone()
                        .ok_or_else(|| payload::FieldError("visitorId is missing".into()))?;
                    Ok::<_, payload::FieldError>((
                        visitor_id,
                        payload::required_label(p, "channel")?,
                    ))
                })();
                let (visitor_id, channel) = match fields {
                    Ok(f) => f,
                    Err(m) => {
                        return self.skip(
                            e.seq,
                            e.received_at_ms,
                            format!("v2.conversation.closed of an unknown conversation: {m}"),
                        )
                    }
                };
                let visitor_id = visitor_id.as_str();
                let visitor = self.visitor(visitor_id, e.received_at_ms)?;
                self.create(
                    conversation_id,
                    (visitor, visitor_id),
                    channel,
                    None,
                    None,
                    e.received_at_ms,
                )?
            }
        };
        self.close(&mut conv, e.received_at_ms)
    }

    /// The conversations a presentation acts on: the one it names (if the desk knows it), else
    /// its visitor's open conversations, oldest first. Empty: it waits for a push.
    pub(super) fn evidence_targets(
        &mut self,
        named: Option<&str>,
        visitor: i64,
    ) -> Result<Vec<Conv>, DeskError> {
        let mut targets: Vec<Conv> = Vec::new();
        match named {
            Some(cid) => {
                if let Some(c) = self.load(cid)? {
                    targets.push(c);
                }
            }
            None => {
                let open: Vec<String> = self
                    .conn
                    .prepare_cached(
                        "SELECT conversation_id FROM conversations
                         WHERE visitor = ?1 AND closed_ms IS NULL ORDER BY id",
                    )?
                    .query_map([visitor], |r| r.get(0))?
                    .collect::<Result<_, _>>()?;
                for cid in open {
                    if let Some(c) = self.load(&cid)? {
                        targets.push(c);
                    }
                }
            }
        }
        Ok(targets)
    }

    /// The pending presentations a push at `at_ms` takes (by row id, in reception order): its
    /// visitor's, within one session lifetime, naming this conversation or none.
    pub(super) fn pending(
        &mut self,
        visitor: i64,
        at_ms: i64,
        conversation_id: &str,
    ) -> Result<Vec<i64>, DeskError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT id FROM presentations
                 WHERE visitor = ?1 AND conversation IS NULL AND received_ms >= ?2
                   AND (named_conversation IS NULL OR named_conversation = ?3)
                 ORDER BY received_ms, seq",
            )?
            .query_map(
                params![
                    visitor,
                    at_ms.saturating_sub(self.lifetime.saturating_mul(1000)),
                    conversation_id
                ],
                |r| r.get(0),
            )?
            .collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing;
    use super::*;
    use lockdesk_feed::{EntryKind, EntryRouting};
    use serde_json::json;

    fn webhook(payload: Value, routing: EntryRouting) -> Entry {
        Entry {
            seq: 1,
            kind: EntryKind::Webhook,
            received_at_ms: 1_000,
            event_type: None,
            payload,
            related: Vec::new(),
            routing,
        }
    }

    fn route(e: &Entry) -> Result<WebhookRouting, payload::FieldError> {
        webhook_routing(e, e.payload.as_object().unwrap())
    }

    #[test]
    fn a_form_encoded_operator_id_is_the_operator_without_gateway_fields() {
        let e = webhook(
            json!({"conversationId": "c-1", "visitorId": "v-1", "operatorId": "42"}),
            EntryRouting::default(),
        );
        let r = route(&e).unwrap();
        assert_eq!(r.conversation_id.as_deref(), Some("c-1"));
        assert_eq!(r.visitor_id.as_deref(), Some("v-1"));
        assert_eq!(r.operator, OperatorId::new(42));
    }

    #[test]
    fn the_gateways_fields_are_preferred_and_several_ids_need_the_payloads_operator() {
        // One id sent: it is the operator, whatever the payload says.
        let e = webhook(
            json!({"conversationId": "other", "operatorId": 9}),
            EntryRouting {
                conversation_id: Some("c-1".into()),
                visitor_id: Some("v-1".into()),
                operator_ids: Some(vec![5]),
            },
        );
        let r = route(&e).unwrap();
        assert_eq!(r.conversation_id.as_deref(), Some("c-1"));
        assert_eq!(r.operator, OperatorId::new(5));
        // Several: the payload's `operatorId` tells which.
        let e = webhook(
            json!({"operatorId": "7", "operatorIds": [3, 7]}),
            EntryRouting {
                conversation_id: Some("c-1".into()),
                visitor_id: Some("v-1".into()),
                operator_ids: Some(vec![3, 7]),
            },
        );
        assert_eq!(route(&e).unwrap().operator, OperatorId::new(7));
        // None sent: no operator.
        let e = webhook(
            json!({"operatorId": 7}),
            EntryRouting {
                conversation_id: Some("c-1".into()),
                visitor_id: Some("v-1".into()),
                operator_ids: Some(vec![]),
            },
        );
        assert_eq!(route(&e).unwrap().operator, None);
    }

    #[test]
    fn a_gateway_field_is_checked_with_the_same_id_rule() {
        let e = webhook(
            json!({}),
            EntryRouting {
                conversation_id: Some("c\u{7}1".into()),
                visitor_id: Some("v-1".into()),
                operator_ids: Some(vec![]),
            },
        );
        assert!(route(&e).is_err());
        let e = webhook(json!({"visitorId": 12}), EntryRouting::default());
        assert!(updated_visitor(&e).is_err());
        let e = webhook(json!({"visitorId": "v-2"}), EntryRouting::default());
        assert_eq!(updated_visitor(&e).unwrap(), "v-2");
        let mut e = webhook(
            json!({"eventType": "visitor.updated"}),
            EntryRouting::default(),
        );
        assert_eq!(event_type(&e), Some("visitor.updated"));
        e.event_type = Some("v2.conversation.closed".into());
        assert_eq!(event_type(&e), Some("v2.conversation.closed"));
    }

    #[test]
    fn evidence_acts_on_the_named_conversation_else_on_the_visitors_open_ones() {
        let conn = testing::store();
        let mut ctx = testing::ctx(&conn);
        let v = ctx.visitor("v-1", 0).unwrap();
        let other = ctx.visitor("v-2", 0).unwrap();
        ctx.create("a", (v, "v-1"), "CHAT", None, Some(0), 0)
            .unwrap();
        let mut b = ctx
            .create("b", (v, "v-1"), "CHAT", None, Some(0), 0)
            .unwrap();
        ctx.create("z", (other, "v-2"), "CHAT", None, Some(0), 0)
            .unwrap();
        let ids = |t: Vec<Conv>| t.into_iter().map(|c| c.conversation_id).collect::<Vec<_>>();
        assert_eq!(ids(ctx.evidence_targets(None, v).unwrap()), ["a", "b"]);
        assert_eq!(ids(ctx.evidence_targets(Some("z"), v).unwrap()), ["z"]);
        assert!(ctx.evidence_targets(Some("nope"), v).unwrap().is_empty());
        ctx.close(&mut b, 10).unwrap();
        assert_eq!(ids(ctx.evidence_targets(None, v).unwrap()), ["a"]);
    }

    #[test]
    fn a_push_takes_the_pending_presentations_of_one_session_lifetime_naming_it_or_none() {
        let conn = testing::store();
        let mut ctx = testing::ctx(&conn);
        let v = ctx.visitor("v-1", 0).unwrap();
        let insert = |seq: i64, at: i64, named: Option<&str>| {
            conn.execute(
                "INSERT INTO presentations (seq, received_ms, visitor, named_conversation,
                   verdict, token_sha256) VALUES (?1, ?2, ?3, ?4, 'rejected', 'ab')",
                params![seq, at, v, named],
            )
            .unwrap();
            conn.last_insert_rowid()
        };
        let too_old = insert(1, 1_000, None);
        let named_other = insert(2, 5_000_000, Some("c-2"));
        let later = insert(3, 5_000_002, None);
        let earlier = insert(4, 5_000_001, Some("c-1"));
        let got = ctx.pending(v, 5_000_003, "c-1").unwrap();
        assert_eq!(got, [earlier, later]);
        assert!(!got.contains(&too_old) && !got.contains(&named_other));
    }
}
