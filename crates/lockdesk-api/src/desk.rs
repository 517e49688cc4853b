//! The desk's data as the UI sees it: the conversation list, one conversation's detail (identity
//! card, timeline, alerts), a verified person's cross-device history, and the live updates.
//!
//! These are plain DTOs: the desk core produces its own types and `src-tauri` maps them to these.
//! The commands and events that carry them are documented at the top of `ui/src/ipc/desk.ts`.
//!
//! Must not: hold a token (a presentation carries its verdict, never the token), or anything the
//! UI could render as markup (every string here is shown as text).
//!
//! Times are milliseconds since the Unix epoch (`...AtMs`), typed `number` on the TypeScript side
//! (exact up to 2^53 ms, far beyond any date the desk handles).

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::FeedStatus;

// The domain vocabulary is defined once, in lockdesk-conversation (vocab.rs), with its serde and
// TypeScript forms; the UI gets it through these re-exports, never a mirror.
pub use lockdesk_conversation::{
    AlertKind, AuthStateName, OperatorId, PresentationVerdict, ReasonCode, VisitorSource,
};

/// One line of the conversation list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct ConversationRow {
    /// iAdvize's conversation id.
    pub id: String,
    /// iAdvize's visitor id (one per device/browser).
    pub visitor_id: String,
    pub state: AuthStateName,
    /// For `closed`: the state it was in when it closed. `null` otherwise.
    pub closed_from: Option<AuthStateName>,
    /// The verified userId (from a valid token), when there is one. Never the platform's claim.
    pub user_id: Option<String>,
    /// A name from the signed visitorData (e.g. "firstName lastName"), when there is one.
    pub display_name: Option<String>,
    /// iAdvize's channel as received (`CHAT`, `CALL`, `VIDEO`, `MOBILE_APP`, `WHATSAPP`, ...).
    pub channel: String,
    pub source: VisitorSource,
    /// A human label for the device (browser and OS, or app and OS), when known.
    pub device: Option<String>,
    /// The site's domain (web only), when known.
    pub domain: Option<String>,
    /// When the last valid token was verified.
    #[ts(type = "number | null")]
    pub last_verified_at_ms: Option<i64>,
    /// For `failed` and `mismatch` (and a `closed` that was either): why.
    pub reason_code: Option<ReasonCode>,
    /// Alerts raised in this conversation so far.
    pub alert_count: u32,
    /// When anything in this row last changed (the list's default order is newest first).
    #[ts(type = "number")]
    pub updated_at_ms: i64,
    /// The verified userId looks like another identity the desk knows, or mixes scripts
    /// (alert `lookalike_user_id`); `null` when neither.
    pub look_alike: Option<LookAlike>,
}

/// A verified userId that could pass for another on screen (issue 12): the row and the identity
/// card show a marker with it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct LookAlike {
    /// The other identity the desk knows whose userId looks the same (equal UTS #39 skeleton,
    /// different string); `erased` when that identity was erased; `null` when there is none
    /// (the userId only mixes scripts).
    pub imitates: Option<String>,
    /// The userId mixes scripts (`сust-48151623` with a Cyrillic `с`).
    pub mixed_script: bool,
}

/// One field of the signed visitorData, in the order the token carried them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct SignedField {
    pub key: String,
    pub value: String,
}

/// One field of the platform's visitor profile (not signed by the brand: unverified).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct PlatformField {
    /// Named like the visitorData field it corresponds to (`email`, ...) or `externalUserId`.
    pub key: String,
    pub value: String,
    /// True when the signed data (or the verified userId, for `externalUserId`) says otherwise.
    pub differs: bool,
}

/// Who the brand says this visitor is, and how we know.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct IdentityCard {
    /// The verified userId.
    pub user_id: String,
    /// The signed visitorData of the last valid token, field by field, in token order.
    pub signed_visitor_data: Vec<SignedField>,
    /// The platform's profile of the visitor (unverified), when fetched.
    pub platform_profile: Vec<PlatformField>,
    /// The token's `iss`.
    pub issuer: String,
    /// RFC 7638 thumbprint of the brand key that verified the signature.
    pub key_thumbprint: String,
    /// When the authenticated session lapses without a new valid token (`null` once lapsed or
    /// closed).
    #[ts(type = "number | null")]
    pub session_lapses_at_ms: Option<i64>,
    /// The userId looks like another identity the desk knows, or mixes scripts.
    pub look_alike: Option<LookAlike>,
}

/// One token presentation in a conversation's authentication timeline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct Presentation {
    #[ts(type = "number")]
    pub at_ms: i64,
    pub verdict: PresentationVerdict,
    /// For `rejected`: the verifier's reason (`bad_signature`, ...).
    pub reason_code: Option<ReasonCode>,
    /// For `rejected`: the verifier's sentence (untrusted parts already escaped and cut).
    pub reason_text: Option<String>,
    /// The token's `iss` when it could be read.
    pub issuer: Option<String>,
    /// The token's `exp` (valid tokens).
    #[ts(type = "number | null")]
    pub expires_at_ms: Option<i64>,
    /// The userId a valid token proved.
    pub user_id: Option<String>,
    /// True when it came before the first valid token of this conversation (what happened while
    /// the visitor was not yet logged in).
    pub before_login: bool,
}

/// One labelled piece of evidence (`label` is a stable English key such as `userId`, `previous
/// userId`, `reason`, `visitorId`; the UI shows both as text).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct EvidenceItem {
    pub label: String,
    pub value: String,
}

/// An alert with the evidence that raised it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct DeskAlert {
    /// Stable id (unique across the desk's store).
    pub id: String,
    pub conversation_id: String,
    pub kind: AlertKind,
    #[ts(type = "number")]
    pub at_ms: i64,
    pub evidence: Vec<EvidenceItem>,
}

/// Everything the detail pane shows for one conversation (`get_conversation`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct ConversationDetail {
    pub row: ConversationRow,
    /// `null` until a valid token proved someone in this conversation.
    pub identity: Option<IdentityCard>,
    /// Every presentation, oldest first.
    pub timeline: Vec<Presentation>,
    /// Alerts of this conversation, oldest first.
    pub alerts: Vec<DeskAlert>,
}

/// One conversation in a person's cross-device history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct HistoryConversation {
    pub id: String,
    #[ts(type = "number")]
    pub opened_at_ms: i64,
    #[ts(type = "number | null")]
    pub closed_at_ms: Option<i64>,
    pub state: AuthStateName,
    /// Part of it was secured (a valid token for this person was presented in it).
    pub secured_part: bool,
    /// Part of it happened before the login (anonymous, then secured).
    pub before_login_part: bool,
}

/// The conversations of one device on one channel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct HistoryGroup {
    /// iAdvize's visitor id of the device.
    pub visitor_id: String,
    /// Its human label (falls back to the visitor id when nothing better is known).
    pub device: String,
    pub channel: String,
    pub source: VisitorSource,
    pub domain: Option<String>,
    /// Newest first.
    pub conversations: Vec<HistoryConversation>,
}

/// A verified person's cross-device history (`get_history`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct History {
    pub user_id: String,
    pub groups: Vec<HistoryGroup>,
}

/// The feed as the desk sees it: the header's [`FeedStatus`], whether this is the built-in demo,
/// and how far the desk has applied the gateway's log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct DeskStatus {
    pub feed: FeedStatus,
    /// True when the app runs its in-process demo (simulated conversations, generated keys).
    pub demo: bool,
    /// The last feed sequence number whose effects are stored, when any.
    #[ts(type = "number | null")]
    pub last_seq: Option<u64>,
    /// The gateway's log end as last known (`hello`'s `lastSeq`, or past it what the desk
    /// applied), kept while disconnected; absent before the first connection.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional, type = "number")]
    pub head_seq: Option<u64>,
}

/// The whole list at one moment (`list_conversations`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct DeskSnapshot {
    pub status: DeskStatus,
    /// Every conversation, newest `updatedAtMs` first.
    pub conversations: Vec<ConversationRow>,
    /// The revision this snapshot reflects; the UI drops [`DeskEvent`]s with a revision at or
    /// below it (it subscribes before asking, so nothing falls between the two).
    #[ts(type = "number")]
    pub revision: u64,
    /// The store checked against the audit log (at desk start and at each "Verify again"):
    /// `null` until the first check ends.
    pub integrity: Option<StoreIntegrity>,
}

/// What the latest check of the store against the audit chain found
/// (`lockdesk_desk::Desk::check_against_audit`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct StoreIntegrity {
    /// The chain verified and every row agrees with it.
    pub ok: bool,
    /// Problems found (the chain broken counts as one).
    #[ts(type = "number")]
    pub problem_count: u64,
    /// The first problems, as sentences ("conversation X shows secured/cust-1 but the audit log
    /// says failed (entry #N)"), at most [`StoreIntegrity::SHOWN`].
    pub problems: Vec<String>,
    /// Conversations whose rows cannot be trusted: the list shows them as unverifiable (no
    /// padlock). Every conversation when the chain itself is broken is not listed here: see
    /// `chain_broken`.
    pub conversation_ids: Vec<String>,
    /// The chain itself is broken (then no row can be checked).
    pub chain_broken: bool,
    /// When the check ended (Unix ms).
    #[ts(type = "number")]
    pub checked_at_ms: i64,
}

impl StoreIntegrity {
    pub const SHOWN: usize = 20;

    /// From the desk's check (`Ok`), or a broken chain / unreadable store (`Err`, its text).
    pub fn of(
        check: &Result<lockdesk_desk::StoreCheck, lockdesk_desk::CheckError>,
        checked_at_ms: i64,
    ) -> StoreIntegrity {
        match check {
            Ok(c) => StoreIntegrity {
                ok: c.agrees(),
                problem_count: c.disagreement_count,
                problems: c
                    .disagreements
                    .iter()
                    .take(Self::SHOWN)
                    .map(|d| d.message.clone())
                    .collect(),
                conversation_ids: {
                    let mut ids: Vec<String> = c.conversations_in_doubt().into_iter().collect();
                    ids.sort();
                    ids
                },
                chain_broken: false,
                checked_at_ms,
            },
            Err(e) => StoreIntegrity {
                ok: false,
                problem_count: 1,
                problems: vec![e.to_string()],
                conversation_ids: Vec::new(),
                chain_broken: matches!(
                    e,
                    lockdesk_desk::CheckError::Chain(lockdesk_audit::VerifyError::Broken(_))
                ),
                checked_at_ms,
            },
        }
    }
}

/// A live update, emitted as the payload of the `desk://changed` event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, TS)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DeskEvent {
    /// A conversation appeared or changed: replace the row with this id (or add it).
    Row {
        #[ts(type = "number")]
        revision: u64,
        row: ConversationRow,
    },
    /// A new alert (its conversation's row arrives separately with the new `alertCount`).
    Alert {
        #[ts(type = "number")]
        revision: u64,
        alert: DeskAlert,
    },
    /// The connection state changed (no revision: the latest always wins).
    Status { status: DeskStatus },
    /// The whole list changed (store switched, e.g. demo to a real gateway): ask again.
    Reset {
        #[ts(type = "number")]
        revision: u64,
    },
}

impl DeskEvent {
    /// The revision an event belongs to; `None` for status updates, which are never stale.
    pub fn revision(&self) -> Option<u64> {
        match self {
            DeskEvent::Row { revision, .. }
            | DeskEvent::Alert { revision, .. }
            | DeskEvent::Reset { revision } => Some(*revision),
            DeskEvent::Status { .. } => None,
        }
    }
}

/// The payload of the `desk://focus` event: bring this conversation on screen (a notification
/// was clicked).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct FocusConversation {
    pub conversation_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_row_serialises_in_camel_case_with_nulls() {
        let row = ConversationRow {
            id: "c1".into(),
            visitor_id: "v1".into(),
            state: AuthStateName::Closed,
            closed_from: Some(AuthStateName::Failed),
            user_id: None,
            display_name: None,
            channel: "CHAT".into(),
            source: VisitorSource::Web,
            device: None,
            domain: Some("shop.example".into()),
            last_verified_at_ms: None,
            reason_code: Some(ReasonCode::BadSignature),
            alert_count: 1,
            updated_at_ms: 1_700_000_000_000,
            look_alike: None,
        };
        assert_eq!(
            serde_json::to_value(&row).unwrap(),
            json!({
                "id": "c1", "visitorId": "v1", "state": "closed", "closedFrom": "failed",
                "userId": null, "displayName": null, "channel": "CHAT", "source": "web",
                "device": null, "domain": "shop.example", "lastVerifiedAtMs": null,
                "reasonCode": "bad_signature", "alertCount": 1, "updatedAtMs": 1_700_000_000_000_i64,
                "lookAlike": null
            })
        );
    }

    #[test]
    fn events_are_tagged_by_kind_and_carry_their_revision() {
        let e = DeskEvent::Reset { revision: 7 };
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            json!({"kind": "reset", "revision": 7})
        );
        assert_eq!(e.revision(), Some(7));
        let s = DeskEvent::Status {
            status: DeskStatus {
                feed: FeedStatus::NotConfigured,
                demo: true,
                last_seq: None,
                head_seq: None,
            },
        };
        assert_eq!(
            serde_json::to_value(&s).unwrap(),
            json!({"kind": "status", "status": {"feed": {"state": "not_configured"}, "demo": true, "lastSeq": null}})
        );
        assert_eq!(s.revision(), None);
        let a = DeskEvent::Alert {
            revision: 9,
            alert: DeskAlert {
                id: "a1".into(),
                conversation_id: "c1".into(),
                kind: AlertKind::ReusedUserId,
                at_ms: 5,
                evidence: vec![EvidenceItem {
                    label: "email".into(),
                    value: "a@x".into(),
                }],
            },
        };
        let v = serde_json::to_value(&a).unwrap();
        assert_eq!(v["alert"]["kind"], json!("reused_user_id"));
        assert_eq!(v["alert"]["conversationId"], json!("c1"));
        assert_eq!(a.revision(), Some(9));
    }
}
