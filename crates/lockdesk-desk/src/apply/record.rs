//! Recording what applying did: the columns derived from a state ([`StateView`]), transition
//! rows, change lines, alert rows, and every audit entry. Audit entries are built in one place,
//! [`AuditFact::events`] (a pure function of the fact), and appended by [`Ctx::record`] inside
//! the applying transaction. Personal data goes only where the audit crate can erase it:
//! `visitor_id`, `user_id` and `data["visitorData"]`.

use lockdesk_audit::Kind;
use lockdesk_conversation::{
    AlertKind, AuthState, AuthStateName, Conversation, PresentationVerdict, ReasonCode,
};
use lockdesk_feed::Source;
use lockdesk_verify::{Reason, Verified};
use rusqlite::params;
use serde_json::{json, Value};

use super::conversation::Conv;
use super::Ctx;
use crate::audit::{self, AuditEvent};
use crate::model::{Change, ClosedConversation};
use crate::DeskError;

/// The columns derived from a machine's state.
pub(super) struct StateView {
    pub(super) state: AuthStateName,
    pub(super) auth_state: AuthStateName,
    pub(super) reason: Option<ReasonCode>,
    pub(super) user_id: Option<String>,
    pub(super) other_user_id: Option<String>,
    pub(super) since_ms: Option<i64>,
    pub(super) until_ms: Option<i64>,
}

/// What makes a transition (see [`StateView::key`]).
type TransitionKey<'a> = (
    AuthStateName,
    AuthStateName,
    Option<ReasonCode>,
    Option<&'a str>,
    Option<&'a str>,
);

impl StateView {
    /// What makes a transition: the state names, reason and identities (not the session end).
    pub(super) fn key(&self) -> TransitionKey<'_> {
        (
            self.state,
            self.auth_state,
            self.reason,
            self.user_id.as_deref(),
            self.other_user_id.as_deref(),
        )
    }

    pub(super) fn of(m: &Conversation) -> StateView {
        let st = m.state();
        let kept = match st {
            AuthState::Closed { last, .. } => &**last,
            s => s,
        };
        let mut v = StateView {
            state: st.state_name(),
            auth_state: kept.state_name(),
            reason: kept.reason(),
            user_id: m.verified_user_id().map(str::to_owned),
            other_user_id: None,
            since_ms: None,
            until_ms: None,
        };
        match kept {
            AuthState::Secured {
                user_id,
                since,
                until,
            } => {
                v.user_id = Some(user_id.clone());
                v.since_ms = Some(since.saturating_mul(1000));
                v.until_ms = Some(until.saturating_mul(1000));
            }
            AuthState::Lapsed { user_id, at } => {
                v.user_id = Some(user_id.clone());
                v.until_ms = Some(at.saturating_mul(1000));
            }
            AuthState::Mismatch { other_user_id, .. } => {
                v.other_user_id = Some(other_user_id.clone());
            }
            _ => {}
        }
        v
    }
}

/// A verdict on one presentation, as the audit log keeps it.
pub(super) struct VerdictFact<'a> {
    pub(super) seq: u64,
    pub(super) verified: Option<&'a Verified>,
    pub(super) reason: Option<Reason>,
    pub(super) token_sha256: &'a str,
    pub(super) source: &'a Source,
    /// The signed visitorData (personal: under `visitorData`).
    pub(super) visitor_data: Option<&'a Value>,
}

/// Something the audit log records. [`AuditFact::events`] is the one place its entries are built.
pub(super) enum AuditFact<'a> {
    /// A presentation's verdict, on the first conversation it acts on (if any).
    Verdict {
        at_ms: i64,
        conversation: Option<&'a Conv>,
        /// The conversation the evidence names, when it acts on none.
        named_conversation: Option<&'a str>,
        visitor_id: &'a str,
        verdict: VerdictFact<'a>,
    },
    /// A userId newly linked to a device (visitor id) by a valid token.
    IdentityLink {
        at_ms: i64,
        seq: u64,
        visitor_id: &'a str,
        user_id: &'a str,
    },
    /// A conversation's state changed.
    Transition {
        at_ms: i64,
        seq: Option<i64>,
        conversation: &'a Conv,
        view: &'a StateView,
    },
    /// An alert row (`id`) was written with this evidence.
    Alert {
        at_ms: i64,
        seq: Option<i64>,
        code: AlertKind,
        id: i64,
        conversation: Option<&'a Conv>,
        visitor_id: &'a str,
        user_id: Option<&'a str>,
        evidence: &'a Value,
    },
    /// A closed conversation recorded from iAdvize's API.
    Backfill { record: &'a ClosedConversation },
}

/// Personal data of an alert's evidence goes under "visitorData" only (erasable): the signed
/// identities compared and every user or visitor id it names. In `data` they would be hashed
/// into the chain and could never be erased.
const PERSONAL: [&str; 9] = [
    "previous",
    "current",
    "userId",
    "previousUserId",
    "visitorId",
    "externalUserId",
    "user_id",
    "verified_user_id",
    "other_user_id",
];

/// Another person's userId (the identity a look-alike passes for) is not put in the alert's
/// entry, whose erasure follows `user_id`: it gets an identity entry of its own, so erasing
/// either person erases what names them.
const OTHER_PERSON: [&str; 2] = ["imitator", "imitates"];

impl AuditFact<'_> {
    /// The entries to append for this fact, in order.
    pub(super) fn events(&self) -> Vec<AuditEvent<'_>> {
        match self {
            AuditFact::Verdict {
                at_ms,
                conversation,
                named_conversation,
                visitor_id,
                verdict: f,
            } => {
                let verified = f.verified;
                vec![AuditEvent {
                    at_ms: *at_ms,
                    kind: Kind::Verdict,
                    conversation_id: conversation
                        .map(|c| c.conversation_id.as_str())
                        .or(*named_conversation),
                    visitor_id: Some(visitor_id),
                    user_id: verified.map(|v| v.user_id.as_str()),
                    operator_id: conversation.and_then(|c| c.operator_id),
                    data: json!({
                        "seq": f.seq,
                        "verdict": PresentationVerdict::of(verified.is_some()),
                        "reason": f.reason.map(|r| r.code()),
                        "issuer": verified.map(|v| v.issuer.as_str()),
                        "expiresAt": verified.map(|v| v.expires_at),
                        "signingKey": verified.map(|v| v.signing_key.as_str()),
                        "decryptionKey": verified.and_then(|v| v.decryption_key.as_deref()),
                        "tokenSha256": f.token_sha256,
                        "source": {"domain": f.source.domain, "device": f.source.device,
                                   "app": f.source.app},
                        "visitorData": f.visitor_data,
                    }),
                }]
            }
            AuditFact::IdentityLink {
                at_ms,
                seq,
                visitor_id,
                user_id,
            } => vec![AuditEvent {
                at_ms: *at_ms,
                kind: Kind::Identity,
                conversation_id: None,
                visitor_id: Some(visitor_id),
                user_id: Some(user_id),
                operator_id: None,
                data: json!({"seq": seq, "link": "visitor"}),
            }],
            AuditFact::Transition {
                at_ms,
                seq,
                conversation: conv,
                view,
            } => vec![AuditEvent {
                at_ms: *at_ms,
                kind: Kind::Transition,
                conversation_id: Some(&conv.conversation_id),
                visitor_id: Some(&conv.visitor_id),
                user_id: view.user_id.as_deref(),
                operator_id: conv.operator_id,
                data: json!({"seq": seq, "state": view.state, "authState": view.auth_state,
                             "reason": view.reason, "channel": conv.channel}),
            }],
            AuditFact::Alert {
                at_ms,
                seq,
                code,
                id,
                conversation,
                visitor_id,
                user_id,
                evidence,
            } => {
                let user_id = *user_id;
                let mut others: Vec<&str> = Vec::new();
                let mut data = json!({"seq": seq, "code": code, "alertId": id});
                if let Some(obj) = evidence.as_object() {
                    let mut personal = serde_json::Map::new();
                    for (k, v) in obj {
                        if OTHER_PERSON.contains(&k.as_str()) {
                            // A refused userId (no identity: the entry has no user) stays with
                            // the entry, erasable with its device.
                            let own = |other: &str| {
                                Some(other) == user_id || (user_id.is_none() && k == "imitator")
                            };
                            match v.as_str() {
                                Some(other) if !own(other) => {
                                    if !others.contains(&other) {
                                        others.push(other);
                                    }
                                }
                                _ => {
                                    personal.insert(k.clone(), v.clone());
                                }
                            }
                        } else if PERSONAL.contains(&k.as_str()) {
                            personal.insert(k.clone(), v.clone());
                        } else {
                            data[k] = v.clone();
                        }
                    }
                    if !personal.is_empty() {
                        data["visitorData"] = Value::Object(personal);
                    }
                }
                let mut out = vec![AuditEvent {
                    at_ms: *at_ms,
                    kind: Kind::Alert,
                    conversation_id: conversation.map(|c| c.conversation_id.as_str()),
                    visitor_id: Some(visitor_id),
                    user_id,
                    operator_id: conversation.and_then(|c| c.operator_id),
                    data,
                }];
                out.extend(others.into_iter().map(|other| AuditEvent {
                    at_ms: *at_ms,
                    kind: Kind::Identity,
                    conversation_id: None,
                    visitor_id: None,
                    user_id: Some(other),
                    operator_id: None,
                    data: json!({"seq": seq, "link": "lookalike", "code": code, "alertId": id}),
                }));
                out
            }
            AuditFact::Backfill { record: r } => vec![AuditEvent {
                at_ms: r.closed_at_ms,
                kind: Kind::Backfill,
                conversation_id: Some(&r.conversation_id),
                visitor_id: Some(&r.visitor_id),
                user_id: r.external_user_id.as_deref(),
                operator_id: None,
                data: json!({"channel": r.channel, "createdAtMs": r.created_at_ms,
                             "closedAtMs": r.closed_at_ms}),
            }],
        }
    }
}

impl Ctx<'_> {
    /// Appends a fact's audit entries (inside the applying transaction).
    pub(super) fn record(&self, fact: AuditFact<'_>) -> Result<(), DeskError> {
        for e in fact.events() {
            audit::append(self.conn, e)?;
        }
        Ok(())
    }

    /// The seq a transition or alert row is stored under (`None` before any entry).
    fn row_seq(&self) -> Option<i64> {
        (self.change_seq > 0).then_some(self.change_seq as i64)
    }

    /// A transition row and its audit entry.
    pub(super) fn transition(
        &mut self,
        conv: &Conv,
        view: &StateView,
        at_ms: i64,
    ) -> Result<(), DeskError> {
        let seq = self.row_seq();
        self.conn
            .prepare_cached(
                "INSERT INTO transitions (conversation, seq, at_ms, state, reason, user_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                conv.id,
                seq,
                at_ms,
                view.state.code(),
                view.reason.map(ReasonCode::code),
                view.user_id
            ])?;
        self.record(AuditFact::Transition {
            at_ms,
            seq,
            conversation: conv,
            view,
        })
    }

    /// A change line for a conversation.
    pub(super) fn change(
        &mut self,
        conv: &Conv,
        view: &StateView,
        at_ms: i64,
        alert: Option<AlertKind>,
        alert_id: Option<i64>,
    ) {
        self.out.changes.push(Change {
            seq: self.change_seq,
            at_ms,
            conversation_id: Some(conv.conversation_id.clone()),
            visitor_id: conv.visitor_id.clone(),
            channel: Some(conv.channel.clone()),
            state: Some(view.state),
            user_id: view.user_id.clone(),
            reason: view.reason,
            alert,
            alert_id,
        });
    }

    /// A change line for a device-level alert that acted on no conversation.
    pub(super) fn device_change(
        &mut self,
        at_ms: i64,
        visitor_id: &str,
        user_id: Option<String>,
        alert: AlertKind,
        alert_id: i64,
    ) {
        self.out.changes.push(Change {
            seq: self.change_seq,
            at_ms,
            conversation_id: None,
            visitor_id: visitor_id.to_owned(),
            channel: None,
            state: None,
            user_id,
            reason: None,
            alert: Some(alert),
            alert_id: Some(alert_id),
        });
    }

    /// An alert row with its evidence, and its audit entries; returns the row's id.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn alert(
        &mut self,
        code: AlertKind,
        at_ms: i64,
        conversation: Option<&Conv>,
        visitor: i64,
        visitor_id: &str,
        user_id: Option<&str>,
        evidence: Value,
    ) -> Result<i64, DeskError> {
        let seq = self.row_seq();
        let id: i64 = self
            .conn
            .prepare_cached(
                "INSERT INTO alerts (seq, at_ms, code, conversation, visitor, user_id, evidence)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING id",
            )?
            .query_row(
                params![
                    seq,
                    at_ms,
                    code.code(),
                    conversation.map(|c| c.id),
                    visitor,
                    user_id,
                    evidence.to_string()
                ],
                |r| r.get(0),
            )?;
        self.record(AuditFact::Alert {
            at_ms,
            seq,
            code,
            id,
            conversation,
            visitor_id,
            user_id,
            evidence: &evidence,
        })?;
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing;
    use super::*;
    use lockdesk_conversation::{Event, OperatorId};

    fn conv(operator: Option<u64>) -> Conv {
        Conv {
            id: 1,
            conversation_id: "c-1".into(),
            visitor: 1,
            visitor_id: "v-1".into(),
            channel: "CHAT".into(),
            operator_id: operator.and_then(OperatorId::new),
            machine: Conversation::new("CHAT", 3600),
        }
    }

    #[test]
    fn a_state_view_keeps_the_closed_conversations_last_state_and_session() {
        let mut m = Conversation::new("CHAT", 3600);
        m.apply(&Event::Verified {
            user_id: "u-1".into(),
            at: 100,
        });
        let v = StateView::of(&m);
        assert_eq!(v.state, AuthStateName::Secured);
        assert_eq!(v.user_id.as_deref(), Some("u-1"));
        assert_eq!((v.since_ms, v.until_ms), (Some(100_000), Some(3_700_000)));
        m.apply(&Event::Closed { at: 200 });
        let closed = StateView::of(&m);
        assert_eq!(closed.state, AuthStateName::Closed);
        assert_eq!(closed.auth_state, AuthStateName::Secured);
        assert_eq!(closed.until_ms, Some(3_700_000));
        // Closing is a transition (the state name changed); an extended session is not.
        assert_ne!(closed.key(), v.key());
    }

    #[test]
    fn an_alerts_personal_data_goes_under_visitor_data_and_the_imitated_person_apart() {
        let c = conv(Some(42));
        let evidence = json!({"userId": "u-2", "previousUserId": "u-1", "visitorId": "v-1",
                              "imitates": "admin", "presentationSeq": 9, "tokenSha256": "ab"});
        let fact = AuditFact::Alert {
            at_ms: 5,
            seq: Some(9),
            code: AlertKind::LookalikeUserId,
            id: 3,
            conversation: Some(&c),
            visitor_id: "v-1",
            user_id: Some("u-2"),
            evidence: &evidence,
        };
        let events = fact.events();
        assert_eq!(events.len(), 2);
        let alert = &events[0];
        assert_eq!(alert.kind, Kind::Alert);
        assert_eq!(alert.operator_id, OperatorId::new(42));
        assert_eq!(alert.conversation_id, Some("c-1"));
        assert_eq!(alert.data["code"], "lookalike_user_id");
        assert_eq!(alert.data["presentationSeq"], 9);
        for k in ["userId", "previousUserId", "visitorId"] {
            assert!(alert.data.get(k).is_none(), "{k} outside visitorData");
            assert!(
                alert.data["visitorData"].get(k).is_some(),
                "{k} not in visitorData"
            );
        }
        // The imitated identity is named only by an entry of its own.
        assert!(!alert.data.to_string().contains("admin"));
        let other = &events[1];
        assert_eq!((other.kind, other.user_id), (Kind::Identity, Some("admin")));
        assert_eq!(other.visitor_id, None);
        assert_eq!(other.data["link"], "lookalike");
        assert_eq!(other.data["alertId"], 3);
    }

    #[test]
    fn a_refused_imitator_without_identity_stays_with_its_device() {
        let evidence = json!({"imitator": "cust\u{202e}1", "imitates": "cust1"});
        let fact = AuditFact::Alert {
            at_ms: 5,
            seq: None,
            code: AlertKind::LookalikeUserId,
            id: 4,
            conversation: None,
            visitor_id: "v-1",
            user_id: None,
            evidence: &evidence,
        };
        let events = fact.events();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].data["visitorData"]["imitator"], "cust\u{202e}1");
        assert_eq!(events[0].operator_id, None);
        assert_eq!(events[1].user_id, Some("cust1"));
    }

    #[test]
    fn a_verdict_names_the_conversation_it_acted_on_else_the_one_it_named() {
        let c = conv(Some(7));
        let source = Source {
            domain: Some("shop.example".into()),
            ..Source::default()
        };
        let vd = json!({"email": "a@b.c"});
        let verdict = || VerdictFact {
            seq: 3,
            verified: None,
            reason: Some(Reason::Expired),
            token_sha256: "00ff",
            source: &source,
            visitor_data: Some(&vd),
        };
        let on = AuditFact::Verdict {
            at_ms: 1,
            conversation: Some(&c),
            named_conversation: Some("other"),
            visitor_id: "v-1",
            verdict: verdict(),
        };
        let e = &on.events()[0];
        assert_eq!(e.conversation_id, Some("c-1"));
        assert_eq!(e.operator_id, OperatorId::new(7));
        assert_eq!(e.data["verdict"], "rejected");
        assert_eq!(e.data["reason"], Reason::Expired.code());
        assert_eq!(e.data["source"]["domain"], "shop.example");
        assert_eq!(e.data["visitorData"]["email"], "a@b.c");
        let pending = AuditFact::Verdict {
            at_ms: 1,
            conversation: None,
            named_conversation: Some("other"),
            visitor_id: "v-1",
            verdict: verdict(),
        };
        let e = &pending.events()[0];
        assert_eq!(e.conversation_id, Some("other"));
        assert_eq!(e.operator_id, None);
    }

    #[test]
    fn a_transition_writes_its_row_and_its_audit_entry_under_the_entry_seq() {
        let conn = testing::store();
        conn.execute(
            "INSERT INTO visitors (visitor_id, first_seen_ms, last_seen_ms) VALUES ('v-1', 0, 0)",
            [],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO conversations (id, conversation_id, visitor, channel, state, auth_state,
               machine) VALUES (1, 'c-1', 1, 'chat', 'anonymous', 'anonymous', '{}')",
            [],
        )
        .unwrap();
        let mut ctx = testing::ctx(&conn);
        let c = conv(Some(42));
        let view = StateView::of(&c.machine);
        ctx.transition(&c, &view, 1_000).unwrap();
        ctx.change(&c, &view, 1_000, None, None);
        let row: (i64, i64, String) = conn
            .query_row("SELECT seq, at_ms, state FROM transitions", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .unwrap();
        assert_eq!(row, (7, 1_000, "anonymous".to_owned()));
        let logged = testing::audit(&conn);
        assert_eq!(logged.len(), 1);
        assert_eq!(logged[0].0, "transition");
        assert_eq!(logged[0].1["seq"], 7);
        assert_eq!(logged[0].1["channel"], "CHAT");
        assert_eq!(logged[0].4, Some(42));
        assert_eq!(ctx.out.changes.len(), 1);
        assert_eq!(ctx.out.changes[0].seq, 7);
        assert_eq!(ctx.out.changes[0].state, Some(AuthStateName::Anonymous));
    }
}
