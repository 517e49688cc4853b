//! What the gateway takes in, checked and parsed, with no I/O: iAdvize's signed webhook
//! deliveries ([`webhook`]: the `X-iAdvize-Signature` HMAC, JSON or form bodies, the routing
//! fields under the one operator-id rule of [`lockdesk_feed::payload`]) and the brand's token
//! evidence ([`evidence`]), each into the row the gateway's log appends ([`NewWebhookEvent`],
//! [`NewEvidence`]); and the secrets in the form the request path needs ([`auth`], [`Secret`]).
//!
//! Its own crate so that what parses bytes from outside can be fuzzed (fuzz/) and read without the
//! gateway's server and stores. lockdesk-gateway calls it exactly as the fuzz targets do.
//!
//! Must not: accept a webhook whose signature does not match; echo a value from a body in an
//! error; put a secret or a token in `Debug` output; panic on any input.

pub mod auth;
pub mod evidence;
pub mod webhook;

pub use webhook::SIGNATURE_HEADER;

/// A secret string: compared, never shown.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }
    /// The secret's bytes, for HMAC keys and comparisons only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A webhook event accepted by the gateway (signature checked, body parsed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewWebhookEvent {
    /// iAdvize's `eventId`: the de-duplication key (it is inside the signed body, unlike the
    /// correlation id header, so it cannot be altered by whoever replays a delivery).
    pub event_id: String,
    pub event_type: String,
    /// `x-iadvize-correlationid` (stable across retries), kept for tracing.
    pub correlation_id: Option<String>,
    /// `x-iadvize-delivery` of the attempt that got stored.
    pub delivery_id: Option<String>,
    /// Routing fields, when the payload has them (for the feed's role filtering).
    pub conversation_id: Option<String>,
    pub visitor_id: Option<String>,
    pub operator_ids: Vec<u64>,
    /// The payload as a JSON object (form bodies are converted; see docs/gateway.md).
    pub payload: String,
    pub received_at_ms: i64,
}

/// Token evidence from the brand's token provider.
#[derive(Clone, PartialEq, Eq)]
pub struct NewEvidence {
    pub provider: String,
    pub visitor_id: String,
    pub conversation_id: Option<String>,
    /// The evidence as a JSON object (it holds the token: never logged).
    pub payload: String,
    pub received_at_ms: i64,
}

impl std::fmt::Debug for NewEvidence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewEvidence")
            .field("provider", &self.provider)
            .field("visitor_id", &self.visitor_id)
            .field("conversation_id", &self.conversation_id)
            .field("payload", &"<holds a token>")
            .finish()
    }
}
