//! iAdvize webhook deliveries: the signature check and the parsing of JSON and form bodies into a
//! [`NewWebhookEvent`]. Pure functions (no I/O, no clock): the server passes `now` in.
//!
//! Must not: accept a body whose HMAC does not match a configured secret; compare MACs in
//! variable time; panic on any input.

use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;

use crate::store::NewWebhookEvent;

pub const SIGNATURE_HEADER: &str = "x-iadvize-signature";
pub const CORRELATION_HEADER: &str = "x-iadvize-correlationid";
pub const DELIVERY_HEADER: &str = "x-iadvize-delivery";

/// Longest `eventId`, `eventType`, ids and header values we store.
const MAX_ID_LEN: usize = 256;

/// Why a delivery is refused; `reason()` is the metrics label and the error code in the answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("missing x-iadvize-signature header")]
    SignatureMissing,
    #[error("x-iadvize-signature must be `sha256=` followed by 64 hex digits")]
    SignatureMalformed,
    #[error("x-iadvize-signature does not match the body for any configured webhook secret")]
    SignatureInvalid,
    #[error("the body is not valid UTF-8")]
    InvalidUtf8,
    #[error("the body is not a JSON object: {0}")]
    MalformedJson(String),
    #[error("the form body is malformed: {0}")]
    MalformedForm(String),
    #[error("{0}")]
    InvalidField(String),
}

impl Rejection {
    pub fn reason(&self) -> &'static str {
        match self {
            Rejection::SignatureMissing => "signature_missing",
            Rejection::SignatureMalformed => "signature_malformed",
            Rejection::SignatureInvalid => "signature_invalid",
            Rejection::InvalidUtf8 => "invalid_utf8",
            Rejection::MalformedJson(_) => "malformed_json",
            Rejection::MalformedForm(_) => "malformed_form",
            Rejection::InvalidField(_) => "invalid_field",
        }
    }
}

/// Checks `header` against `body` for every key; returns the index of the matching one.
///
/// Each comparison is constant-time (`verify_slice`), and every key is tried whatever the
/// outcome, so the time taken does not tell which secret (if any) matched.
pub fn verify_signature(
    keys: &[Hmac<Sha256>],
    header: Option<&[u8]>,
    body: &[u8],
) -> Result<usize, Rejection> {
    let header = header.ok_or(Rejection::SignatureMissing)?;
    let hex_part = header
        .strip_prefix(b"sha256=")
        .ok_or(Rejection::SignatureMalformed)?;
    if hex_part.len() != 64 {
        return Err(Rejection::SignatureMalformed);
    }
    let mut expected = [0u8; 32];
    // Upper- or lower-case hex are the same MAC.
    hex::decode_to_slice(hex_part, &mut expected).map_err(|_| Rejection::SignatureMalformed)?;
    let mut matched = None;
    for (i, key) in keys.iter().enumerate() {
        let mut mac = key.clone();
        mac.update(body);
        if mac.verify_slice(&expected).is_ok() && matched.is_none() {
            matched = Some(i);
        }
    }
    matched.ok_or(Rejection::SignatureInvalid)
}

/// The body's media type, as far as we care.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFormat {
    Json,
    Form,
}

impl BodyFormat {
    /// `application/x-www-form-urlencoded` is a form; anything else (iAdvize sends
    /// `application/json`) is parsed as JSON.
    pub fn from_content_type(value: Option<&[u8]>) -> BodyFormat {
        let Some(value) = value.and_then(|v| std::str::from_utf8(v).ok()) else {
            return BodyFormat::Json;
        };
        let media = value.split(';').next().unwrap_or("").trim();
        if media.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
            BodyFormat::Form
        } else {
            BodyFormat::Json
        }
    }
}

/// Delivery metadata from the (unsigned) headers.
#[derive(Clone, Debug, Default)]
pub struct DeliveryHeaders {
    pub correlation_id: Option<String>,
    pub delivery_id: Option<String>,
}

/// Keeps a header value only if it is short printable ASCII (it is informational: the
/// de-duplication key comes from the signed body).
pub fn header_text(value: Option<&[u8]>) -> Option<String> {
    let v = value?;
    if v.is_empty() || v.len() > MAX_ID_LEN || !v.iter().all(|b| b.is_ascii_graphic()) {
        return None;
    }
    std::str::from_utf8(v).ok().map(str::to_owned)
}

/// Parses a delivery whose signature has been checked (see [`parse_noting`]).
pub fn parse(
    body: &[u8],
    format: BodyFormat,
    headers: DeliveryHeaders,
    received_at_ms: i64,
) -> Result<NewWebhookEvent, Rejection> {
    parse_noting(body, format, headers, received_at_ms).map(|(event, _)| event)
}

/// Parses a delivery whose signature has been checked. With the event comes, when its type is
/// not one that moves a conversation and a routing field (`conversationId`, `visitorId`,
/// `operatorId(s)`) is not a valid id, what was wrong: such an event is kept, without routing
/// fields (event types we do not know are never dropped).
pub fn parse_noting(
    body: &[u8],
    format: BodyFormat,
    headers: DeliveryHeaders,
    received_at_ms: i64,
) -> Result<(NewWebhookEvent, Option<Rejection>), Rejection> {
    let text = std::str::from_utf8(body).map_err(|_| Rejection::InvalidUtf8)?;
    let object = match format {
        BodyFormat::Json => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => map,
            Ok(_) => return Err(Rejection::MalformedJson("expected an object".into())),
            // serde_json refuses nesting deeper than 128 levels, so deep JSON lands here.
            Err(e) => return Err(Rejection::MalformedJson(e.to_string())),
        },
        BodyFormat::Form => form_to_object(text)?,
    };
    let event_id = required_id(&object, "eventId")?;
    let event_type = required_id(&object, "eventType")?;
    let (routing, unrouted) = match routing_fields(&object) {
        Ok(r) => (r, None),
        // The types that move a conversation between operators need their routing fields; any
        // other type is stored and relayed whatever they hold (docs/gateway.md: never dropped),
        // without routing fields (then only supervisors receive it).
        Err(r) if is_conversation_move(&event_type) => return Err(r),
        Err(r) => (Routing::default(), Some(r)),
    };
    let payload = Value::Object(object).to_string();
    let event = NewWebhookEvent {
        event_id,
        event_type,
        correlation_id: headers.correlation_id,
        delivery_id: headers.delivery_id,
        conversation_id: routing.conversation_id,
        visitor_id: routing.visitor_id,
        operator_ids: routing.operator_ids,
        payload,
        received_at_ms,
    };
    Ok((event, unrouted))
}

fn is_conversation_move(event_type: &str) -> bool {
    event_type == crate::routing::PUSHED || event_type == crate::routing::CLOSED
}

/// The fields the feed's routing reads.
#[derive(Default)]
struct Routing {
    conversation_id: Option<String>,
    visitor_id: Option<String>,
    operator_ids: Vec<u64>,
}

/// `conversationId`, `visitorId`, `operatorId` and `operatorIds`, each checked.
fn routing_fields(object: &Map<String, Value>) -> Result<Routing, Rejection> {
    let conversation_id = optional_id(object, "conversationId")?;
    let visitor_id = optional_id(object, "visitorId")?;
    let mut operator_ids = Vec::new();
    if let Some(v) = object.get("operatorId") {
        operator_ids.push(operator_id(v, "operatorId")?);
    }
    match object.get("operatorIds") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for item in items {
                operator_ids.push(operator_id(item, "operatorIds")?);
            }
        }
        // A form with a single `operatorIds` key gives a lone string.
        Some(single) => operator_ids.push(operator_id(single, "operatorIds")?),
    }
    operator_ids.sort_unstable();
    operator_ids.dedup();
    Ok(Routing {
        conversation_id,
        visitor_id,
        operator_ids,
    })
}

/// A form body: each key is a top-level field of the payload (the JSON payload's fields, one per
/// key, values as strings); a key given several times, or written `key[]`, is an array.
fn form_to_object(text: &str) -> Result<Map<String, Value>, Rejection> {
    let mut object = Map::new();
    for (key, value) in form_urlencoded::parse(text.as_bytes()) {
        // form_urlencoded replaces invalid UTF-8 in %-escapes with U+FFFD: refuse instead of
        // storing altered text.
        if key.contains('\u{FFFD}') || value.contains('\u{FFFD}') {
            return Err(Rejection::InvalidUtf8);
        }
        let (key, is_array) = match key.strip_suffix("[]") {
            Some(k) => (k.to_owned(), true),
            None => (key.into_owned(), false),
        };
        if key.is_empty() {
            return Err(Rejection::MalformedForm("a field has an empty name".into()));
        }
        let value = Value::String(value.into_owned());
        match object.get_mut(&key) {
            None if is_array => {
                object.insert(key, Value::Array(vec![value]));
            }
            None => {
                object.insert(key, value);
            }
            Some(Value::Array(items)) => items.push(value),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, value]);
            }
        }
    }
    Ok(object)
}

fn id_text<'a>(value: &'a Value, name: &str) -> Result<&'a str, Rejection> {
    match value {
        Value::String(s)
            if !s.is_empty() && s.len() <= MAX_ID_LEN && !s.chars().any(char::is_control) =>
        {
            Ok(s)
        }
        Value::String(_) => Err(Rejection::InvalidField(format!(
            "{name} must be 1 to {MAX_ID_LEN} bytes without control characters"
        ))),
        _ => Err(Rejection::InvalidField(format!("{name} must be a string"))),
    }
}

fn required_id(object: &Map<String, Value>, name: &str) -> Result<String, Rejection> {
    match object.get(name) {
        None | Some(Value::Null) => Err(Rejection::InvalidField(format!("{name} is missing"))),
        Some(v) => id_text(v, name).map(str::to_owned),
    }
}

fn optional_id(object: &Map<String, Value>, name: &str) -> Result<Option<String>, Rejection> {
    match object.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => id_text(v, name).map(|s| Some(s.to_owned())),
    }
}

/// iAdvize operator ids are integers; a form body carries them as decimal strings.
fn operator_id(value: &Value, name: &str) -> Result<u64, Rejection> {
    let parsed = match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) if s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse().ok()
        }
        _ => None,
    };
    parsed.ok_or_else(|| {
        Rejection::InvalidField(format!(
            "{name} must hold non-negative integer operator ids"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::WebhookKeys;
    use crate::config::Secret;

    #[test]
    fn form_bodies_become_objects() {
        let e = parse(
            b"eventId=e1&eventType=v2.conversation.closed&operatorIds=3&operatorIds=1&visitorId=v%201",
            BodyFormat::Form,
            DeliveryHeaders::default(),
            0,
        )
        .unwrap();
        assert_eq!(e.operator_ids, vec![1, 3]);
        assert_eq!(e.visitor_id.as_deref(), Some("v 1"));
        let payload: Value = serde_json::from_str(&e.payload).unwrap();
        assert_eq!(payload["operatorIds"], serde_json::json!(["3", "1"]));
        let e = parse(
            b"eventId=e1&eventType=t&operatorIds[]=5",
            BodyFormat::Form,
            DeliveryHeaders::default(),
            0,
        )
        .unwrap();
        assert_eq!(e.operator_ids, vec![5]);
    }

    #[test]
    fn bad_bodies_are_rejected_with_their_reason() {
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let deep_in_object = format!(r#"{{"eventId":"e","eventType":"t","x":{deep}}}"#);
        let cases: Vec<(&[u8], BodyFormat, &str)> = vec![
            (b"\xff\xfe", BodyFormat::Json, "invalid_utf8"),
            (b"{\"eventId\":\"e\"", BodyFormat::Json, "malformed_json"),
            (b"[1]", BodyFormat::Json, "malformed_json"),
            (
                deep_in_object.as_bytes(),
                BodyFormat::Json,
                "malformed_json",
            ),
            (b"{\"eventType\":\"t\"}", BodyFormat::Json, "invalid_field"),
            (b"{\"eventId\":\"e\"}", BodyFormat::Json, "invalid_field"),
            (
                b"{\"eventId\":5,\"eventType\":\"t\"}",
                BodyFormat::Json,
                "invalid_field",
            ),
            (
                b"{\"eventId\":\"\",\"eventType\":\"t\"}",
                BodyFormat::Json,
                "invalid_field",
            ),
            // The types that move conversations need valid routing fields (others, below,
            // are stored without them).
            (
                b"{\"eventId\":\"e\",\"eventType\":\"v2.conversation.pushed\",\"operatorId\":-1}",
                BodyFormat::Json,
                "invalid_field",
            ),
            (
                b"{\"eventId\":\"e\",\"eventType\":\"v2.conversation.closed\",\"visitorId\":7}",
                BodyFormat::Json,
                "invalid_field",
            ),
            (b"eventId=%FF&eventType=t", BodyFormat::Form, "invalid_utf8"),
            (
                b"=x&eventId=e&eventType=t",
                BodyFormat::Form,
                "malformed_form",
            ),
        ];
        for (body, format, reason) in cases {
            let got = parse(body, format, DeliveryHeaders::default(), 0).map(|_| ());
            assert_eq!(
                got.map_err(|r| r.reason()),
                Err(reason),
                "for {:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn other_types_with_invalid_routing_fields_are_kept_without_them() {
        for body in [
            r#"{"eventId":"e","eventType":"brand.new","visitorId":{"id":1},"conversationId":"c"}"#,
            r#"{"eventId":"e","eventType":"visitor.updated","conversationId":42}"#,
            r#"{"eventId":"e","eventType":"t","operatorId":-1,"visitorId":"v"}"#,
            r#"{"eventId":"e","eventType":"t","visitorId":""}"#,
        ] {
            let (event, unrouted) = parse_noting(
                body.as_bytes(),
                BodyFormat::Json,
                DeliveryHeaders::default(),
                0,
            )
            .unwrap_or_else(|r| panic!("{body}: refused {r}"));
            assert_eq!(unrouted.map(|r| r.reason()), Some("invalid_field"));
            assert_eq!(
                (event.conversation_id, event.visitor_id, event.operator_ids),
                (None, None, vec![]),
                "{body}"
            );
            let stored: Value = serde_json::from_str(&event.payload).unwrap();
            let sent: Value = serde_json::from_str(body).unwrap();
            assert_eq!(stored, sent, "the payload is kept whole");
        }
    }

    #[test]
    fn signature_checks() {
        let secrets = [Secret::new("one"), Secret::new("two")];
        let keys = WebhookKeys::new(&secrets);
        let secrets = keys.keys();
        let body = b"{}";
        let good = lockdesk_sim::webhook_signature(b"two", body);
        assert_eq!(
            verify_signature(secrets, Some(good.as_bytes()), body),
            Ok(1)
        );
        let upper = format!("sha256={}", good[7..].to_uppercase());
        assert_eq!(
            verify_signature(secrets, Some(upper.as_bytes()), body),
            Ok(1)
        );
        assert_eq!(
            verify_signature(secrets, Some(good.as_bytes()), b"{ }"),
            Err(Rejection::SignatureInvalid)
        );
        assert_eq!(
            verify_signature(secrets, None, body),
            Err(Rejection::SignatureMissing)
        );
        for bad in [
            "",
            "sha256=",
            "sha1=00",
            &good[7..],
            &format!("{good}0"),
            &good.replace("sha256=", "sha256=z")[..71],
        ] {
            assert_eq!(
                verify_signature(secrets, Some(bad.as_bytes()), body),
                Err(Rejection::SignatureMalformed),
                "for {bad:?}"
            );
        }
    }
}
