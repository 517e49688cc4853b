//! From the desk core's types (`lockdesk_desk`) and the service's status to the UI's DTOs
//! ([`crate::desk`]). Pure functions: the shell calls them on a blocking thread after a query.
//!
//! Must not: invent data. A field the desk core does not know stays empty (`None`, empty list);
//! an unknown state name maps to the most cautious reading and is logged by the caller's tests.

use std::collections::BTreeMap;

use lockdesk_desk as dc;
use serde_json::Value;

use crate::desk::{
    AuthStateName, ConversationDetail, ConversationRow, DeskAlert, DeskStatus, EvidenceItem,
    History, HistoryConversation, HistoryGroup, IdentityCard, LookAlike, PlatformField,
    Presentation, SignedField, VisitorSource,
};
use crate::FeedStatus;

fn source(row: &dc::ConversationRow) -> VisitorSource {
    VisitorSource::of_row(row.source, &row.channel)
}

/// One list row; `alert_count` comes from the caller (the desk core counts alerts separately).
pub fn row(r: &dc::ConversationRow, alert_count: u32) -> ConversationRow {
    let state = r.state;
    let closed_from = (state == AuthStateName::Closed).then_some(r.auth_state);
    let updated = [
        r.closed_ms,
        r.last_verified_ms,
        r.since_ms,
        r.until_ms,
        r.opened_ms,
    ]
    .into_iter()
    .flatten()
    .filter(|t| *t <= r.closed_ms.unwrap_or(i64::MAX))
    .max()
    .unwrap_or(0);
    ConversationRow {
        id: r.conversation_id.clone(),
        visitor_id: r.visitor_id.clone(),
        state,
        closed_from,
        user_id: r.user_id.clone(),
        display_name: r.name.clone(),
        channel: r.channel.clone(),
        source: source(r),
        device: r.device.clone().or_else(|| r.app.clone()),
        domain: r.domain.clone(),
        last_verified_at_ms: r.last_verified_ms,
        reason_code: r.reason,
        alert_count,
        updated_at_ms: updated,
        look_alike: r.look_alike.as_ref().map(look_alike),
    }
}

fn look_alike(l: &dc::LookAlike) -> LookAlike {
    LookAlike {
        imitates: l.imitates.clone(),
        mixed_script: l.mixed_script,
    }
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The signed visitorData as label/value pairs, in the order received.
fn signed_fields(data: &Option<Value>) -> Vec<SignedField> {
    match data {
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| SignedField {
                key: k.clone(),
                value: text_of(v),
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn identity(detail: &dc::ConversationDetail) -> Option<IdentityCard> {
    let card = detail.identity.as_ref()?;
    let mut platform = Vec::new();
    if let Some(p) = &detail.row.platform_user_id {
        platform.push(PlatformField {
            key: "externalUserId".into(),
            value: p.clone(),
            differs: p != &card.user_id,
        });
    }
    Some(IdentityCard {
        user_id: card.user_id.clone(),
        signed_visitor_data: signed_fields(&card.visitor_data),
        platform_profile: platform,
        issuer: card.issuer.clone(),
        key_thumbprint: card.signing_key.clone(),
        session_lapses_at_ms: card.session_until_ms,
        look_alike: card.look_alike.as_ref().map(look_alike),
    })
}

/// An alert with its evidence as label/value text pairs (top-level keys; nested values as JSON
/// text, never markup).
pub fn alert(a: &dc::AlertRecord) -> Option<DeskAlert> {
    let kind = a.code?;
    let mut evidence = Vec::new();
    if let Some(u) = &a.user_id {
        evidence.push(EvidenceItem {
            label: "userId".into(),
            value: u.clone(),
        });
    }
    if let Some(v) = &a.visitor_id {
        evidence.push(EvidenceItem {
            label: "visitorId".into(),
            value: v.clone(),
        });
    }
    if let Value::Object(map) = &a.evidence {
        for (k, v) in map {
            evidence.push(EvidenceItem {
                label: k.clone(),
                value: text_of(v),
            });
        }
    } else if !a.evidence.is_null() {
        evidence.push(EvidenceItem {
            label: "evidence".into(),
            value: text_of(&a.evidence),
        });
    }
    Some(DeskAlert {
        id: a.id.to_string(),
        conversation_id: a.conversation_id.clone().unwrap_or_default(),
        kind,
        at_ms: a.at_ms,
        evidence,
    })
}

/// One conversation's detail.
pub fn detail(d: &dc::ConversationDetail) -> ConversationDetail {
    let alerts: Vec<DeskAlert> = d.alerts.iter().filter_map(alert).collect();
    ConversationDetail {
        row: row(&d.row, alerts.len() as u32),
        identity: identity(d),
        timeline: d
            .presentations
            .iter()
            .map(|p| Presentation {
                at_ms: p.received_ms,
                verdict: p.verdict,
                reason_code: p.reason,
                reason_text: p.detail.clone(),
                issuer: p.issuer.clone(),
                expires_at_ms: p.expires_ms,
                user_id: p.user_id.clone(),
                before_login: p.before_login,
            })
            .collect(),
        alerts,
    }
}

/// A history grouped by device (visitor) and channel, newest conversation first in each group,
/// groups ordered by their newest conversation.
pub fn history(h: &dc::History) -> History {
    let mut groups: BTreeMap<(String, String), HistoryGroup> = BTreeMap::new();
    for c in &h.conversations {
        let r = &c.row;
        let group = groups
            .entry((r.visitor_id.clone(), r.channel.clone()))
            .or_insert_with(|| HistoryGroup {
                visitor_id: r.visitor_id.clone(),
                device: r
                    .device
                    .clone()
                    .or_else(|| r.app.clone())
                    .unwrap_or_else(|| r.visitor_id.clone()),
                channel: r.channel.clone(),
                source: source(r),
                domain: r.domain.clone(),
                conversations: Vec::new(),
            });
        if group.domain.is_none() {
            group.domain = r.domain.clone();
        }
        group.conversations.push(HistoryConversation {
            id: r.conversation_id.clone(),
            opened_at_ms: r.opened_ms.unwrap_or(0),
            closed_at_ms: r.closed_ms,
            state: r.state,
            secured_part: r.first_verified_ms.is_some(),
            before_login_part: c.anonymous_before_login,
        });
    }
    let mut groups: Vec<HistoryGroup> = groups.into_values().collect();
    for g in &mut groups {
        g.conversations
            .sort_by_key(|c| std::cmp::Reverse(c.opened_at_ms));
    }
    groups.sort_by_key(|g| {
        std::cmp::Reverse(g.conversations.first().map(|c| c.opened_at_ms).unwrap_or(0))
    });
    History {
        user_id: h.user_id.clone(),
        groups,
    }
}

/// The header's feed status from the feed client's state.
pub fn feed_status(state: &lockdesk_feed_client::State) -> FeedStatus {
    use lockdesk_feed_client::State;
    match state {
        State::Connecting { url } => FeedStatus::Connecting { url: url.clone() },
        State::Connected { url, .. } => FeedStatus::Connected {
            url: url.clone(),
            catching_up: None,
        },
        State::Disconnected { reason, retry_in } => FeedStatus::Disconnected {
            reason: format!("{reason}; retrying in {} s", retry_in.as_secs().max(1)),
        },
        State::Stopped { reason } => FeedStatus::Disconnected {
            reason: reason.to_string(),
        },
    }
}

/// Where the desk's store stands against the gateway's log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// The last applied seq.
    pub cursor: u64,
    /// The gateway's log end as last known (0: not known yet).
    pub head: u64,
    /// Connected below the log's end for longer than the catch-up limit.
    pub behind_too_long: bool,
}

/// The desk's status: while connected below the log's end, the feed says how far it has to go.
pub fn status(feed: &lockdesk_feed_client::State, demo: bool, p: Progress) -> DeskStatus {
    let mut feed_dto = feed_status(feed);
    if let FeedStatus::Connected { catching_up, .. } = &mut feed_dto {
        if p.cursor < p.head {
            *catching_up = Some(crate::CatchingUp {
                to_go: p.head - p.cursor,
                stale: p.behind_too_long,
            });
        }
    }
    DeskStatus {
        feed: feed_dto,
        demo,
        last_seq: (p.cursor > 0).then_some(p.cursor),
        head_seq: (p.head > 0).then_some(p.head),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desk::AlertKind;

    fn core_row(state: AuthStateName, auth: AuthStateName) -> dc::ConversationRow {
        dc::ConversationRow {
            conversation_id: "c1".into(),
            visitor_id: "v1".into(),
            channel: "CHAT".into(),
            operator_id: lockdesk_desk::OperatorId::new(1001),
            state,
            auth_state: auth,
            reason: None,
            user_id: Some("u1".into()),
            other_user_id: None,
            name: Some("Ada L".into()),
            source: Some(VisitorSource::Web),
            domain: Some("shop.example".into()),
            device: Some("laptop".into()),
            app: None,
            opened_ms: Some(1_000),
            closed_ms: None,
            since_ms: Some(2_000),
            until_ms: Some(3_602_000),
            last_verified_ms: Some(2_000),
            first_verified_ms: Some(2_000),
            platform_user_id: None,
            look_alike: None,
        }
    }

    #[test]
    fn rows_keep_the_closed_state_they_came_from_and_an_app_channel_is_the_app() {
        let open = row(&core_row(AuthStateName::Secured, AuthStateName::Secured), 0);
        assert_eq!(open.state, AuthStateName::Secured);
        assert_eq!(open.closed_from, None);
        assert_eq!(open.updated_at_ms, 3_602_000);
        let mut closed = core_row(AuthStateName::Closed, AuthStateName::Failed);
        closed.closed_ms = Some(5_000);
        let r = row(&closed, 2);
        assert_eq!(r.state, AuthStateName::Closed);
        assert_eq!(r.closed_from, Some(AuthStateName::Failed));
        assert_eq!(r.updated_at_ms, 5_000);
        assert_eq!(r.alert_count, 2);
        let mut app = core_row(AuthStateName::Anonymous, AuthStateName::Anonymous);
        app.source = None;
        app.channel = "MOBILE_APP".into();
        assert_eq!(row(&app, 0).source, VisitorSource::App);
    }

    #[test]
    fn an_alert_shows_its_evidence_as_text_and_one_of_unknown_kind_is_not_shown() {
        let a = dc::AlertRecord {
            id: 7,
            seq: Some(3),
            at_ms: 9,
            code: Some(AlertKind::SharedDevice),
            conversation_id: Some("c1".into()),
            visitor_id: Some("v1".into()),
            user_id: Some("u2".into()),
            evidence: serde_json::json!({"previousUserId": "u1", "seqs": [1, 3]}),
        };
        let d = alert(&a).unwrap();
        assert_eq!(d.kind, AlertKind::SharedDevice);
        let labels: Vec<_> = d
            .evidence
            .iter()
            .map(|e| (e.label.as_str(), e.value.as_str()))
            .collect();
        assert!(labels.contains(&("previousUserId", "u1")));
        assert!(labels.contains(&("seqs", "[1,3]")));
        assert!(labels.contains(&("userId", "u2")));
        let edited = dc::AlertRecord { code: None, ..a };
        assert_eq!(alert(&edited), None);
    }

    /// Issue 13: connected below the log's end, the feed status says how far the desk has to
    /// go, and whether it has been behind for too long; caught up or disconnected, nothing is
    /// "to go" (the last known end stays in `headSeq`).
    #[test]
    fn a_desk_behind_the_log_says_how_far_and_whether_for_too_long() {
        use lockdesk_feed_client::State;
        let connected = State::Connected {
            url: "ws://gw/v1/feed".into(),
            after: 0,
            last_seq: 1_240,
        };
        let p = |cursor, behind_too_long| Progress {
            cursor,
            head: 1_240,
            behind_too_long,
        };
        let behind = status(&connected, false, p(0, false));
        assert_eq!(
            serde_json::to_value(&behind).unwrap(),
            serde_json::json!({"feed": {"state": "connected", "url": "ws://gw/v1/feed",
                "catchingUp": {"toGo": 1240, "stale": false}}, "demo": false, "lastSeq": null,
                "headSeq": 1240})
        );
        let late = status(&connected, false, p(1_000, true));
        assert_eq!(
            late.feed,
            FeedStatus::Connected {
                url: "ws://gw/v1/feed".into(),
                catching_up: Some(crate::CatchingUp {
                    to_go: 240,
                    stale: true
                })
            }
        );
        let caught_up = status(&connected, false, p(1_240, false));
        assert_eq!(
            serde_json::to_value(&caught_up.feed).unwrap(),
            serde_json::json!({"state": "connected", "url": "ws://gw/v1/feed"})
        );
        let down = State::Stopped {
            reason: lockdesk_feed_client::StopReason::CredentialRevoked,
        };
        let revoked = status(&down, false, p(1_000, false));
        assert!(matches!(revoked.feed, FeedStatus::Disconnected { .. }));
        assert_eq!(revoked.head_seq, Some(1_240));
        assert_eq!(revoked.last_seq, Some(1_000));
    }

    #[test]
    fn history_groups_by_device_and_channel() {
        let mk = |conv: &str, visitor: &str, channel: &str, opened: i64| dc::HistoryConversation {
            row: dc::ConversationRow {
                conversation_id: conv.into(),
                visitor_id: visitor.into(),
                channel: channel.into(),
                opened_ms: Some(opened),
                ..core_row(AuthStateName::Closed, AuthStateName::Secured)
            },
            anonymous_before_login: conv == "a",
        };
        let h = dc::History {
            user_id: "u1".into(),
            known: true,
            visitor_data: None,
            first_seen_ms: None,
            last_seen_ms: None,
            visitors: Vec::new(),
            conversations: vec![
                mk("a", "laptop-v", "CHAT", 1),
                mk("b", "phone-v", "CHAT", 2),
                mk("c", "phone-v", "MOBILE_APP", 3),
                mk("d", "laptop-v", "CHAT", 4),
            ],
        };
        let out = history(&h);
        assert_eq!(out.groups.len(), 3);
        let laptop = out
            .groups
            .iter()
            .find(|g| g.visitor_id == "laptop-v")
            .unwrap();
        let ids: Vec<_> = laptop.conversations.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["d", "a"]);
        assert!(laptop.conversations[1].before_login_part);
        assert_eq!(out.groups[0].visitor_id, "laptop-v");
    }
}
