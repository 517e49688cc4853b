//! The desk core's public data: what `apply` returns, what the queries answer, what the backfill
//! takes. Plain serialisable structs (camelCase JSON); the integrator maps them to UI DTOs.
//! Times are milliseconds since the Unix epoch (`*_ms`), except in [`Change`]'s JSON line.

use lockdesk_conversation::{
    AlertKind, AuthStateName, OperatorId, PresentationVerdict, ReasonCode, VisitorSource,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One state change or alert, produced by [`crate::Desk::apply`], [`crate::Desk::tick`] or
/// [`crate::Desk::backfill`]. [`Change::to_json_line`] is the CLI's `watch --json` line:
/// `{"seq":N,"at":"<RFC 3339>","conversationId":..,"visitorId":..,"channel":..,"state":..,
/// "userId":..|null,"reason":..|null,"alert":..|null}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    /// The feed entry that caused it; for `tick` and `backfill`, the cursor at that moment.
    pub seq: u64,
    /// When it happened (the gateway's reception time of the entry, or the tick's `now`).
    #[serde(rename = "at", serialize_with = "rfc3339")]
    pub at_ms: i64,
    /// `null` only for a device-level alert raised by evidence that names no open conversation.
    pub conversation_id: Option<String>,
    pub visitor_id: String,
    pub channel: Option<String>,
    /// The conversation's state name after the change (`anonymous`, `secured`, `lapsed`,
    /// `failed`, `mismatch`, `unsupported`, `closed`); `null` without a conversation.
    pub state: Option<AuthStateName>,
    /// The userId verified in the conversation (for a device-level alert: the new userId).
    pub user_id: Option<String>,
    /// `failed`: the verification reason code; `mismatch`: `token_user_id_differs` or
    /// `platform_user_id_differs`; otherwise `null`.
    pub reason: Option<ReasonCode>,
    /// The alert raised, if any.
    pub alert: Option<AlertKind>,
    /// The alert's row in the store (its evidence: [`crate::Desk::alert`]). Not in the JSON line.
    #[serde(skip)]
    pub alert_id: Option<i64>,
}

fn rfc3339<S: serde::Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_rfc3339(*ms))
}

/// `1767261600123` → `2026-01-01T10:00:00.123Z`. Total: a time outside the feed's bounds
/// (years 1970 to 9999, which RFC 3339 can write) prints as the nearest bound, never panics
/// (the desk stores no such time from the feed; a store written by an older version might).
pub fn format_rfc3339(ms: i64) -> String {
    // The feed's bounds are the time helper's (years 1970 to 9999), which clamps to them.
    lockdesk_text::time::format_ms(ms)
}

impl Change {
    /// The JSON line (no trailing newline).
    pub fn to_json_line(&self) -> String {
        // Strings, integers and nulls only: serialising cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// An entry (or an evidence item bundled with a push) that could not be applied; the rest of
/// the batch was. Recorded in the store (table `malformed`) and counted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Skipped {
    pub seq: u64,
    /// What is wrong, naming fields, never echoing values (payloads hold tokens).
    pub error: String,
}

/// What one [`crate::Desk::apply`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Applied {
    /// State changes and alerts, in the order they happened.
    pub changes: Vec<Change>,
    /// Malformed entries, skipped.
    pub skipped: Vec<Skipped>,
    /// Entries whose event type the desk does not use (stored as a count only).
    pub ignored: u64,
    /// Entries at or below the cursor (already applied), skipped.
    pub duplicates: u64,
    /// The cursor after the batch (committed with its effects).
    pub cursor: u64,
}

/// A closed conversation as iAdvize's GraphQL API reports it (`closedConversations`), for
/// [`crate::Desk::backfill`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClosedConversation {
    pub conversation_id: String,
    pub visitor_id: String,
    pub channel: String,
    pub created_at_ms: i64,
    pub closed_at_ms: i64,
    /// The platform's `Visitor.externalUserId` (filled by iAdvize's authentication).
    pub external_user_id: Option<String>,
}

/// Which conversations [`crate::Desk::conversations`] lists.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConversationQuery {
    /// Only conversations not closed.
    pub open_only: bool,
    /// At most this many, most recently opened first (0: 500).
    pub limit: u32,
}

/// One line of the conversation list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConversationRow {
    pub conversation_id: String,
    pub visitor_id: String,
    pub channel: String,
    /// The advisor (a stored negative id, never written by the desk, reads as `None`).
    pub operator_id: Option<OperatorId>,
    /// The state name (`closed` for a closed conversation).
    pub state: AuthStateName,
    /// For a closed conversation, the state it kept; otherwise the same as `state`.
    pub auth_state: AuthStateName,
    pub reason: Option<ReasonCode>,
    /// The first userId verified in the conversation.
    pub user_id: Option<String>,
    /// With `mismatch`: the other userId (token or platform).
    pub other_user_id: Option<String>,
    /// "First Last" from the signed visitorData of the latest valid token in this conversation.
    pub name: Option<String>,
    /// `web` or `app` (from the evidence's source, else the channel); `null` for third-party.
    pub source: Option<VisitorSource>,
    pub domain: Option<String>,
    pub device: Option<String>,
    pub app: Option<String>,
    pub opened_ms: Option<i64>,
    pub closed_ms: Option<i64>,
    /// Secured since / until (the session's end) or lapsed at.
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    /// The last valid token applied to this conversation.
    pub last_verified_ms: Option<i64>,
    /// The first valid token: before it, the conversation was not logged in.
    pub first_verified_ms: Option<i64>,
    /// The platform's externalUserId, once backfilled.
    pub platform_user_id: Option<String>,
    /// `user_id` looks like another identity the desk knows, or mixes scripts (issue 12):
    /// `null` when neither.
    pub look_alike: Option<LookAlike>,
}

/// A verified userId that could pass for another: the marker of the conversation row and the
/// identity card (alert `lookalike_user_id`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LookAlike {
    /// Another identity the desk knows whose userId looks the same (equal UTS #39 skeleton,
    /// different string); [`crate::TOMBSTONE`] once that identity was erased; `null` when none
    /// (the userId only mixes scripts).
    pub imitates: Option<String>,
    /// The userId mixes scripts (`сust-48151623` with a Cyrillic `с`).
    pub mixed_script: bool,
}

/// The identity card of a conversation: what the latest valid token in it proved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IdentityCard {
    pub user_id: String,
    /// The signed visitorData as received (documented fields and extras), or `null`.
    pub visitor_data: Option<Value>,
    pub issuer: String,
    /// RFC 7638 thumbprint of the brand key that signed it.
    pub signing_key: String,
    /// RFC 7638 thumbprint of the desk key that opened it (`null`: bare JWS).
    pub decryption_key: Option<String>,
    /// The token's `exp`, ms.
    pub expires_ms: i64,
    pub verified_ms: i64,
    /// When the authenticated session lapses (or lapsed) without a new token.
    pub session_until_ms: Option<i64>,
    /// `user_id` looks like another identity the desk knows, or mixes scripts.
    pub look_alike: Option<LookAlike>,
}

/// One token presentation, as stored (the token only as its SHA-256).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Presentation {
    pub seq: u64,
    pub received_ms: i64,
    /// As the token provider reported it (RFC 3339, its clock).
    pub presented_at: Option<String>,
    pub visitor_id: String,
    pub conversation_id: Option<String>,
    pub verdict: PresentationVerdict,
    /// Why it was rejected (`null` when verified).
    pub reason: Option<ReasonCode>,
    pub detail: Option<String>,
    pub user_id: Option<String>,
    pub visitor_data: Option<Value>,
    pub issuer: Option<String>,
    pub expires_ms: Option<i64>,
    pub signing_key: Option<String>,
    pub decryption_key: Option<String>,
    pub token_sha256: String,
    pub domain: Option<String>,
    pub device: Option<String>,
    pub app: Option<String>,
    /// Presented in this conversation before its first valid token (the anonymous part).
    pub before_login: bool,
}

/// One state change of a conversation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Transition {
    pub seq: Option<u64>,
    pub at_ms: i64,
    pub state: AuthStateName,
    pub reason: Option<ReasonCode>,
    pub user_id: Option<String>,
    pub before_login: bool,
}

/// An alert with the evidence that raised it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertRecord {
    pub id: i64,
    pub seq: Option<u64>,
    pub at_ms: i64,
    /// `null`: a code no Lockdesk writes (the store was edited; `lockdesk-cli desk check`
    /// reports the row).
    pub code: Option<AlertKind>,
    pub conversation_id: Option<String>,
    pub visitor_id: Option<String>,
    pub user_id: Option<String>,
    /// What triggered it: userIds, presentation seqs, token hashes, reason codes, visitorData
    /// fields that differ.
    pub evidence: Value,
}

/// Everything about one conversation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConversationDetail {
    pub row: ConversationRow,
    pub identity: Option<IdentityCard>,
    /// Oldest first.
    pub presentations: Vec<Presentation>,
    pub transitions: Vec<Transition>,
    pub alerts: Vec<AlertRecord>,
}

/// A device (iAdvize visitor id) linked to a userId by a valid token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LinkedVisitor {
    pub visitor_id: String,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
}

/// One conversation in a cross-device history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryConversation {
    #[serde(flatten)]
    pub row: ConversationRow,
    /// The conversation began before its first valid token: the part from `openedMs` to
    /// `firstVerifiedMs` was anonymous.
    pub anonymous_before_login: bool,
}

/// A userId's cross-device history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct History {
    pub user_id: String,
    /// `false`: no valid token ever proved this userId here (the lists are then empty).
    pub known: bool,
    /// The latest signed visitorData as received.
    pub visitor_data: Option<Value>,
    pub first_seen_ms: Option<i64>,
    pub last_seen_ms: Option<i64>,
    pub visitors: Vec<LinkedVisitor>,
    /// Every conversation on every linked visitor, oldest first.
    pub conversations: Vec<HistoryConversation>,
}

/// Counts for status displays and the CLI.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    pub cursor: u64,
    pub conversations: u64,
    pub open_conversations: u64,
    pub visitors: u64,
    pub identities: u64,
    pub presentations: u64,
    pub alerts: u64,
    pub malformed: u64,
    pub ignored: u64,
    /// The desk's clock at the last applied batch (0: never).
    pub applied_at_ms: u64,
}
