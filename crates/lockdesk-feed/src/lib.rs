//! The feed protocol between the gateway and the desks, version 1 (docs/feed-protocol.md is the
//! reference; change it there first).
//!
//! Both sides use these types: the gateway serialises [`ServerMessage`]s and parses
//! [`ClientMessage`]s; the desk does the opposite. Parsing never panics: a frame that is not one
//! of these messages is a [`FrameError`] naming what is wrong, and message types this version
//! does not know parse as [`ServerMessage::Unknown`] / [`ClientMessage::Unknown`] (changes
//! within v1 are additive: receivers ignore what they do not know).
//!
//! Parsing checks types only; [`ServerMessage::check_bounds`] (module `bounds`) checks that every
//! number is within its documented bound, which a desk does before acting on a message.
//!
//! Must not: put a token in a `Debug` string (evidence payloads hold tokens).

mod bounds;
pub mod payload;

pub use bounds::{
    BoundError, MAX_HEARTBEAT_SECS, MAX_OPERATOR_ID, MAX_SEQ, MAX_TIME_MS, MIN_HEARTBEAT_SECS,
    MIN_TIME_MS,
};
// The serde error's category and position, without any excerpt of the frame (it may hold a
// token).
use lockdesk_text::json::describe_error;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

/// The WebSocket subprotocol a client offers and the server selects.
pub const SUBPROTOCOL: &str = "lockdesk.feed.v1";
/// The protocol version announced in [`Hello`].
pub const PROTOCOL_VERSION: u32 = 1;
/// The path of the feed on the gateway.
pub const FEED_PATH: &str = "/v1/feed";
/// The largest text frame either side accepts (an entry holds one webhook payload or one
/// evidence object, each limited by the gateway to far less; `related` adds at most 50 evidence).
pub const MAX_FRAME_BYTES: usize = 4 * 1024 * 1024;
/// At most this many earlier evidence entries ride along with a push (`related`).
pub const MAX_RELATED: usize = 50;
/// The largest frame the gateway accepts from a desk (desks send only small `ack`s); a larger one
/// closes the connection with [`close::PROTOCOL_ERROR`].
pub const MAX_CLIENT_FRAME_BYTES: usize = 16 * 1024;
/// The longest [`Hello::log_id`] a desk accepts (the gateway's are 32 hex digits).
pub const MAX_LOG_ID_BYTES: usize = 128;
/// [`ServerMessage::Resume`]'s `reason` when the desk's queue overflowed.
pub const RESUME_OVERFLOW: &str = "overflow";
/// [`ServerMessage::Resume`]'s `reason` when a configuration reload changed the subscriber the
/// desk's credential names (role, operator ids): reconnecting serves it as the new one.
pub const RESUME_RECONFIGURED: &str = "reconfigured";

/// Close codes (RFC 6455 private range) and what the desk does on each.
pub mod close {
    /// Protocol error (binary frame, bad message): report, reconnect with backoff.
    pub const PROTOCOL_ERROR: u16 = 4000;
    /// The desk's queue overflowed: reconnect now with its cursor.
    pub const RESUME: u16 = 4001;
    /// The credential is no longer valid: stop, tell the user. (Reserved: the gateway reads its
    /// configuration at start, so today a removed subscriber is refused with 401 after a
    /// restart.)
    pub const CREDENTIAL_REVOKED: u16 = 4003;
    /// `after` is beyond the log's end (the gateway's data was reset): ask the user, never
    /// silently restart from 0.
    pub const AFTER_BEYOND_END: u16 = 4004;
}

/// A subscriber's role, as announced in [`Hello`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Advisor,
    Supervisor,
}

/// What kind of log entry an [`Entry`] carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// An iAdvize webhook event; `payload` is its JSON body.
    Webhook,
    /// Token evidence from the brand's token provider; `payload` is an [`Evidence`] object.
    Evidence,
}

/// Server → desk.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    Hello(Hello),
    Entry(Entry),
    /// Nothing else was sent for `heartbeatSecs`; the subscriber has everything visible to it up
    /// to `seq` (saving it as the cursor avoids rescanning other advisors' entries on resume).
    Heartbeat {
        seq: u64,
    },
    /// The server could not keep up with this desk; the connection closes with
    /// [`close::RESUME`] and the desk reconnects with its own cursor (at least `after`).
    Resume {
        after: u64,
        reason: String,
    },
    /// A message type this version does not know: ignored.
    #[serde(other)]
    Unknown,
}

impl std::fmt::Debug for ServerMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServerMessage::Hello(h) => f.debug_tuple("Hello").field(h).finish(),
            ServerMessage::Entry(e) => f.debug_tuple("Entry").field(e).finish(),
            ServerMessage::Heartbeat { seq } => {
                f.debug_struct("Heartbeat").field("seq", seq).finish()
            }
            ServerMessage::Resume { after, reason } => f
                .debug_struct("Resume")
                .field("after", after)
                .field("reason", reason)
                .finish(),
            ServerMessage::Unknown => f.write_str("Unknown"),
        }
    }
}

/// The first message of every connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Hello {
    pub protocol: u32,
    pub subscriber: String,
    pub role: Role,
    #[serde(default)]
    pub operator_ids: Vec<u64>,
    /// The cursor the server resumes after (the client's `after`).
    pub after: u64,
    /// The log's end at connection time (for progress display).
    pub last_seq: u64,
    pub heartbeat_secs: u64,
    /// The log's identity (opaque, at most [`MAX_LOG_ID_BYTES`]): random, created with the log,
    /// never changed. A desk remembers it with its cursor and refuses to resume on another log
    /// (its seqs mean other entries). Absent from gateways older than this field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_id: Option<String>,
}

/// One log entry.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    pub seq: u64,
    pub kind: EntryKind,
    pub received_at_ms: i64,
    /// The webhook's `eventType` (absent for evidence).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    /// The webhook body, or the evidence object (which holds the token).
    pub payload: Value,
    /// Advisors only, on `v2.conversation.pushed`: the evidence of the conversation's visitor
    /// stored before the push, oldest first, at most [`MAX_RELATED`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub related: Vec<Related>,
    /// The routing fields the gateway read from the payload (added within v1: absent from older
    /// gateways, and then read from the payload).
    #[serde(flatten)]
    pub routing: EntryRouting,
}

/// An entry's routing fields as the gateway read them from its payload with
/// [`payload::Routing::read`] (webhooks) or [`Evidence::read`] (evidence), so a desk need not
/// read them again. Each is absent when the payload has none (or, for event types that do not
/// move a conversation, an invalid one: the gateway keeps such events without routing fields).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EntryRouting {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visitor_id: Option<String>,
    /// `operatorId` and `operatorIds` together, sorted, without duplicates (webhooks only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator_ids: Option<Vec<u64>>,
}

/// An entry as the gateway writes it from its log: each payload is the stored JSON text, written
/// as it is (key order and whitespace inside kept), never parsed and re-serialised. It reads back
/// as an [`Entry`].
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RawEntry {
    #[serde(rename = "type")]
    tag: &'static str,
    pub seq: u64,
    pub kind: EntryKind,
    pub received_at_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    pub payload: Box<RawValue>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub related: Vec<RawRelated>,
    #[serde(flatten)]
    pub routing: EntryRouting,
}

/// A [`Related`] item of a [`RawEntry`].
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RawRelated {
    pub seq: u64,
    pub received_at_ms: i64,
    pub payload: Box<RawValue>,
}

impl RawEntry {
    pub fn new(
        seq: u64,
        kind: EntryKind,
        received_at_ms: i64,
        event_type: Option<String>,
        payload: Box<RawValue>,
    ) -> RawEntry {
        RawEntry {
            tag: "entry",
            seq,
            kind,
            received_at_ms,
            event_type,
            payload,
            related: Vec::new(),
            routing: EntryRouting::default(),
        }
    }

    /// The `entry` message's text.
    pub fn to_text(&self) -> String {
        // Cannot fail: string keys, raw values already checked as JSON.
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{\"type\":\"unknown\"}"))
    }
}

/// A stored payload text as a [`RawValue`] for a [`RawEntry`]: checked to be one JSON value
/// (whitespace around it dropped), otherwise an error saying where (never an excerpt).
pub fn raw_payload(text: String) -> Result<Box<RawValue>, String> {
    RawValue::from_string(text).map_err(|e| describe_error(&e))
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("seq", &self.seq)
            .field("kind", &self.kind)
            .field("received_at_ms", &self.received_at_ms)
            .field("event_type", &self.event_type)
            .field("related", &self.related.len())
            .field("routing", &self.routing)
            .finish_non_exhaustive()
    }
}

/// Evidence bundled with a push (see [`Entry::related`]).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Related {
    pub seq: u64,
    pub received_at_ms: i64,
    pub payload: Value,
}

impl std::fmt::Debug for Related {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Related")
            .field("seq", &self.seq)
            .field("received_at_ms", &self.received_at_ms)
            .finish_non_exhaustive()
    }
}

/// An evidence payload as the token provider posted it (`POST /v1/evidence`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Evidence {
    pub visitor_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
    pub token: String,
    /// RFC 3339, when the visitor presented the token (the provider's clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presented_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
}

impl std::fmt::Debug for Evidence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Evidence")
            .field("visitor_id", &self.visitor_id)
            .field("conversation_id", &self.conversation_id)
            .field("token", &"<redacted>")
            .field("presented_at", &self.presented_at)
            .field("source", &self.source)
            .finish()
    }
}

/// Where the visitor presented the token.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
}

/// Desk → server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// The desk has applied everything up to `seq` (for the lag metric only).
    Ack { seq: u64 },
    #[serde(other)]
    Unknown,
}

/// Why a text frame is not a valid message.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("the frame is {len} bytes, more than the {MAX_FRAME_BYTES} allowed")]
    TooLarge { len: usize },
    #[error("the frame is not a JSON object with a \"type\": {0}")]
    Malformed(String),
}

fn check_len(text: &str) -> Result<(), FrameError> {
    if text.len() > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge { len: text.len() });
    }
    Ok(())
}

/// A frame of either direction, read within the size bound.
fn parse_frame<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, FrameError> {
    check_len(text)?;
    serde_json::from_str(text).map_err(|e| FrameError::Malformed(describe_error(&e)))
}

/// A message of either direction as its frame's text.
fn frame_text<T: Serialize>(message: &T) -> String {
    // Serialising these types cannot fail: string keys, no non-finite floats.
    serde_json::to_string(message).unwrap_or_else(|_| String::from("{\"type\":\"unknown\"}"))
}

impl ServerMessage {
    pub fn parse(text: &str) -> Result<ServerMessage, FrameError> {
        parse_frame(text)
    }

    pub fn to_text(&self) -> String {
        frame_text(self)
    }
}

impl ClientMessage {
    pub fn parse(text: &str) -> Result<ClientMessage, FrameError> {
        parse_frame(text)
    }

    pub fn to_text(&self) -> String {
        frame_text(self)
    }
}

impl Evidence {
    /// Reads an entry's payload as evidence (types only; [`Evidence::read`] checks the rules).
    pub fn from_payload(payload: &Value) -> Result<Evidence, FrameError> {
        Evidence::deserialize(payload).map_err(|e| FrameError::Malformed(describe_error(&e)))
    }

    /// Reads an evidence object under the rules both sides apply (docs/gateway.md,
    /// `POST /v1/evidence`): `visitorId` required, `conversationId`, `presentedAt` and the
    /// `source` fields optional, each under the id rule ([`payload::id_text`]); `token` a
    /// string (its syntax is the gateway's to check, its content the desk's verifier's). Fields
    /// it does not know are ignored here (the gateway refuses them from providers). Errors name
    /// the field, never its value.
    pub fn read(value: &Value) -> Result<Evidence, payload::FieldError> {
        use payload::{optional_id, required_id, FieldError};
        let Value::Object(object) = value else {
            return Err(FieldError("the evidence is not an object".into()));
        };
        let owned = |s: Option<&str>| s.map(str::to_owned);
        let token = match object.get("token") {
            Some(Value::String(t)) => t.clone(),
            Some(_) => return Err(FieldError("token must be a string".into())),
            None => return Err(FieldError("token is missing".into())),
        };
        let source = match object.get("source") {
            None | Some(Value::Null) => None,
            Some(Value::Object(s)) => {
                let field = |name: &str| {
                    optional_id(s, name)
                        .map(owned)
                        .map_err(|e| FieldError(format!("source: {e}")))
                };
                Some(Source {
                    domain: field("domain")?,
                    device: field("device")?,
                    app: field("app")?,
                })
            }
            Some(_) => return Err(FieldError("source must be an object".into())),
        };
        Ok(Evidence {
            visitor_id: required_id(object, "visitorId")?.to_owned(),
            conversation_id: owned(optional_id(object, "conversationId")?),
            token,
            presented_at: owned(optional_id(object, "presentedAt")?),
            source,
        })
    }
}

#[cfg(test)]
mod tests;
