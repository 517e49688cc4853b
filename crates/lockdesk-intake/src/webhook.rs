//! iAdvize webhook deliveries: the signature check and the parsing of JSON and form bodies into a
//! [`NewWebhookEvent`]. Pure functions (no I/O, no clock): the server passes `now` in.
//!
//! Must not: accept a body whose HMAC does not match a configured secret; compare MACs in
//! variable time; panic on any input.

use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;

use lockdesk_feed::payload::{FieldError, Routing, WebhookHeader, CLOSED, MAX_ID_BYTES, PUSHED};

use crate::NewWebhookEvent;

pub const SIGNATURE_HEADER: &str = "x-iadvize-signature";
pub const CORRELATION_HEADER: &str = "x-iadvize-correlationid";
pub const DELIVERY_HEADER: &str = "x-iadvize-delivery";

/// Longest header value we store (ids in the body follow the shared id rule).
const MAX_ID_LEN: usize = MAX_ID_BYTES;

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
///
/// Fields are read with the payload model both sides share (`lockdesk_feed::payload`: the id
/// rule and the one operator-id rule), so the desk reads the relayed payload as this did. A JSON
/// body is stored as sent, byte for byte (never re-serialised); a form body as the JSON object
/// it converts to.
pub fn parse_noting(
    body: &[u8],
    format: BodyFormat,
    headers: DeliveryHeaders,
    received_at_ms: i64,
) -> Result<(NewWebhookEvent, Option<Rejection>), Rejection> {
    let text = std::str::from_utf8(body).map_err(|_| Rejection::InvalidUtf8)?;
    let (object, payload) = match format {
        BodyFormat::Json => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => (map, text.to_owned()),
            Ok(_) => return Err(Rejection::MalformedJson("expected an object".into())),
            // serde_json refuses nesting deeper than 128 levels, so deep JSON lands here.
            Err(e) => return Err(Rejection::MalformedJson(e.to_string())),
        },
        BodyFormat::Form => {
            let map = form_to_object(text)?;
            let payload = Value::Object(map.clone()).to_string();
            (map, payload)
        }
    };
    if depth(&object) > MAX_PAYLOAD_DEPTH {
        return Err(Rejection::MalformedJson(format!(
            "nested deeper than {MAX_PAYLOAD_DEPTH} levels"
        )));
    }
    let header = WebhookHeader::read(&object).map_err(invalid)?;
    let (routing, unrouted) = match Routing::read(&object).map_err(invalid) {
        Ok(r) => (r, None),
        // The types that move a conversation between operators need their routing fields; any
        // other type is stored and relayed whatever they hold (docs/gateway.md: never dropped),
        // without routing fields (then only supervisors receive it).
        Err(r) if is_conversation_move(&header.event_type) => return Err(r),
        Err(r) => (Routing::default(), Some(r)),
    };
    let event = NewWebhookEvent {
        event_id: header.event_id,
        event_type: header.event_type,
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

/// The deepest nesting a stored payload may have. The feed wraps a payload in its `entry`
/// message (one level more), and desks parse frames with serde_json's limit of 128 levels: a
/// payload this gateway accepted must never make a frame no desk can read (the desk would
/// reconnect forever on it).
pub const MAX_PAYLOAD_DEPTH: usize = 64;

/// How deeply a payload nests (`{}` is 1, `{"a":[]}` is 2). Iterative: no recursion on hostile
/// input.
fn depth(object: &Map<String, Value>) -> usize {
    let mut deepest = 1;
    let mut stack: Vec<(&Value, usize)> = object.values().map(|v| (v, 1)).collect();
    while let Some((v, d)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match v {
            Value::Array(items) => Box::new(items.iter()),
            Value::Object(map) => Box::new(map.values()),
            _ => continue,
        };
        deepest = deepest.max(d + 1);
        stack.extend(children.map(|c| (c, d + 1)));
    }
    deepest
}

fn invalid(e: FieldError) -> Rejection {
    Rejection::InvalidField(e.0)
}

fn is_conversation_move(event_type: &str) -> bool {
    event_type == PUSHED || event_type == CLOSED
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::WebhookKeys;
    use crate::Secret;

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
    fn a_json_body_is_stored_as_sent() {
        // Key order, whitespace and escapes that re-serialising would change.
        let body = "{ \"visitorId\": \"v\\u00e9\",\n \"eventType\" : \"v2.conversation.pushed\",\
                    \"operatorId\": \"42\", \"eventId\":\"e\", \"conversationId\":\"c\",\"n\":1.50 }\n";
        let e = parse(
            body.as_bytes(),
            BodyFormat::Json,
            DeliveryHeaders::default(),
            0,
        )
        .unwrap();
        assert_eq!(e.payload, body);
        assert_eq!(
            (e.visitor_id.as_deref(), e.operator_ids),
            (Some("vé"), vec![42])
        );
    }

    #[test]
    fn payloads_nested_deeper_than_desks_can_read_are_refused() {
        let nested = |levels: usize| {
            let inner = format!("{}{}", "[".repeat(levels - 1), "]".repeat(levels - 1));
            format!(r#"{{"eventId":"e","eventType":"t","x":{inner}}}"#)
        };
        let ok = nested(MAX_PAYLOAD_DEPTH);
        assert!(parse(
            ok.as_bytes(),
            BodyFormat::Json,
            DeliveryHeaders::default(),
            0
        )
        .is_ok());
        let deep = nested(MAX_PAYLOAD_DEPTH + 1);
        let refused = parse(
            deep.as_bytes(),
            BodyFormat::Json,
            DeliveryHeaders::default(),
            0,
        );
        assert_eq!(
            refused.map(|_| ()).map_err(|r| r.reason()),
            Err("malformed_json")
        );
        // The deepest body serde_json parses is refused: wrapped in an entry, no desk could
        // read the frame (it would reconnect forever on it).
        let limit = (2..200)
            .take_while(|n| serde_json::from_str::<Value>(&nested(*n)).is_ok())
            .last()
            .unwrap();
        let at_limit = nested(limit);
        let frame = format!(
            r#"{{"type":"entry","seq":1,"kind":"webhook","receivedAtMs":0,"payload":{at_limit}}}"#
        );
        assert!(lockdesk_feed::ServerMessage::parse(&frame).is_err());
        let refused = parse(
            at_limit.as_bytes(),
            BodyFormat::Json,
            DeliveryHeaders::default(),
            0,
        );
        assert!(refused.is_err());
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
