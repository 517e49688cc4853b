#![no_main]
//! A webhook delivery as the gateway's request path sees it: signature header, content type and
//! body, checked and parsed by the same functions the server calls, in the same order. The body
//! is any bytes, a JSON object or a form built from the fuzzer's bytes (names the parser looks
//! for, values of every type and extreme); the signature is a valid HMAC computed here (so the
//! parser behind it is reached), a MAC under a secret the gateway does not have, a hostile
//! header, or none.
//!
//! Checked beyond "no panic": a valid MAC is accepted with the right secret's index, no other
//! header is; an accepted event has bounded ids without control characters, sorted distinct
//! operator ids, and a payload that is a JSON object carrying the same `eventId`/`eventType`
//! (a JSON body: exactly as sent), from which the desk's `Routing::read` reads the routing fields
//! the gateway stored (or, when it stored none, refuses them).

use std::sync::OnceLock;

use hmac::{Hmac, Mac};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use lockdesk_intake::auth::WebhookKeys;
use lockdesk_intake::webhook::{
    header_text, parse as parse_webhook, verify_signature, BodyFormat, DeliveryHeaders, Rejection,
};
use lockdesk_intake::Secret;
use serde_json::Value;
use sha2::Sha256;

#[path = "json.rs"]
mod json;

const SECRETS: [&str; 2] = ["first webhook secret", "2nd"];
const FIELDS: &[&str] = &[
    "eventId",
    "eventType",
    "conversationId",
    "visitorId",
    "operatorId",
    "operatorIds",
    "channel",
    "createdAt",
];
const MAX_ID_LEN: usize = 256;

#[derive(Arbitrary, Debug)]
enum Body {
    Raw(Vec<u8>),
    Json(Vec<(json::Name, json::Json)>),
    Form(Vec<(json::Name, bool, FormValue)>),
}

#[derive(Arbitrary, Debug)]
enum FormValue {
    Text(String),
    Digits(u64),
    /// Percent-encoded as is: invalid UTF-8 behind `%` escapes.
    Bytes(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum ContentType {
    Json,
    Form,
    FormWithParams,
    Other(Vec<u8>),
    Missing,
}

#[derive(Arbitrary, Debug)]
enum Signature {
    Valid { second: bool, upper: bool },
    UnknownSecret,
    Header(Vec<u8>),
    Missing,
}

#[derive(Arbitrary, Debug)]
struct Input {
    body: Body,
    content_type: ContentType,
    signature: Signature,
    correlation: Option<Vec<u8>>,
    delivery: Option<Vec<u8>>,
    received_at_ms: i64,
}

fn form_body(pairs: &[(json::Name, bool, FormValue)]) -> Vec<u8> {
    let mut out = String::new();
    for (name, array, value) in pairs {
        if !out.is_empty() {
            out.push('&');
        }
        let mut key = name.text(FIELDS);
        if *array {
            key.push_str("[]");
        }
        out.extend(form_urlencoded::byte_serialize(key.as_bytes()));
        out.push('=');
        match value {
            FormValue::Text(t) => out.extend(form_urlencoded::byte_serialize(t.as_bytes())),
            FormValue::Digits(n) => out.push_str(&n.to_string()),
            FormValue::Bytes(b) => {
                for byte in b {
                    out.push_str(&format!("%{byte:02X}"));
                }
            }
        }
    }
    out.into_bytes()
}

fn mac_hex(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

fn check_id(id: &str) {
    assert!(!id.is_empty() && id.len() <= MAX_ID_LEN, "id length");
    assert!(
        !id.chars().any(char::is_control),
        "control character in an id"
    );
}

fuzz_target!(|input: Input| {
    static KEYS: OnceLock<WebhookKeys> = OnceLock::new();
    let keys = KEYS.get_or_init(|| {
        let secrets: Vec<Secret> = SECRETS.iter().map(|s| Secret::new(*s)).collect();
        WebhookKeys::new(&secrets)
    });
    let body = match &input.body {
        Body::Raw(b) => b.clone(),
        Body::Json(members) => Value::Object(json::object(members, FIELDS))
            .to_string()
            .into_bytes(),
        Body::Form(pairs) => form_body(pairs),
    };
    let content_type: Option<Vec<u8>> = match &input.content_type {
        ContentType::Json => Some(b"application/json".to_vec()),
        ContentType::Form => Some(b"application/x-www-form-urlencoded".to_vec()),
        ContentType::FormWithParams => {
            Some(b"Application/X-WWW-Form-URLEncoded ; charset=utf-8".to_vec())
        }
        ContentType::Other(b) => Some(b.clone()),
        ContentType::Missing => None,
    };
    let header: Option<Vec<u8>> = match &input.signature {
        Signature::Valid { second, upper } => {
            let hex = mac_hex(SECRETS[usize::from(*second)], &body);
            let hex = if *upper { hex.to_uppercase() } else { hex };
            Some(format!("sha256={hex}").into_bytes())
        }
        Signature::UnknownSecret => {
            Some(format!("sha256={}", mac_hex("not configured", &body)).into_bytes())
        }
        Signature::Header(h) => Some(h.clone()),
        Signature::Missing => None,
    };

    // The server's order: delivery headers, signature, format, body.
    let delivery = DeliveryHeaders {
        correlation_id: header_text(input.correlation.as_deref()),
        delivery_id: header_text(input.delivery.as_deref()),
    };
    for h in [&delivery.correlation_id, &delivery.delivery_id]
        .into_iter()
        .flatten()
    {
        assert!(h.len() <= MAX_ID_LEN && h.bytes().all(|b| b.is_ascii_graphic()));
    }
    let verdict = verify_signature(keys.keys(), header.as_deref(), &body);
    match (&input.signature, &verdict) {
        (Signature::Valid { second, .. }, v) => assert_eq!(*v, Ok(usize::from(*second))),
        (Signature::UnknownSecret, v) => assert_eq!(*v, Err(Rejection::SignatureInvalid)),
        (Signature::Missing, v) => assert_eq!(*v, Err(Rejection::SignatureMissing)),
        (Signature::Header(h), Ok(i)) => {
            let expected = format!("sha256={}", mac_hex(SECRETS[*i], &body));
            assert!(
                h.eq_ignore_ascii_case(expected.as_bytes()),
                "a header that is not the body's MAC was accepted"
            );
        }
        (Signature::Header(_), Err(_)) => {}
    }
    if verdict.is_err() {
        return; // the server stores nothing and answers 401
    }
    let format = BodyFormat::from_content_type(content_type.as_deref());
    let correlation = delivery.correlation_id.clone();
    let Ok(event) = parse_webhook(&body, format, delivery, input.received_at_ms) else {
        return;
    };
    check_id(&event.event_id);
    check_id(&event.event_type);
    for id in [&event.conversation_id, &event.visitor_id]
        .into_iter()
        .flatten()
    {
        check_id(id);
    }
    assert!(
        event.operator_ids.windows(2).all(|w| w[0] < w[1]),
        "operator ids not sorted and distinct"
    );
    assert_eq!(event.received_at_ms, input.received_at_ms);
    assert_eq!(event.correlation_id, correlation);
    let payload: Value = serde_json::from_str(&event.payload).expect("the payload is JSON");
    let object = payload.as_object().expect("the payload is an object");
    if format == BodyFormat::Json {
        assert_eq!(event.payload.as_bytes(), &body[..], "a JSON body is stored as sent");
    }
    // The desk reads the stored payload with the same model: what it reads is what was routed.
    match lockdesk_feed::payload::Routing::read(object) {
        Ok(r) => assert_eq!(
            (&r.conversation_id, &r.visitor_id, &r.operator_ids),
            (&event.conversation_id, &event.visitor_id, &event.operator_ids),
            "the desk reads other routing fields than the gateway's"
        ),
        Err(_) => assert!(
            event.conversation_id.is_none()
                && event.visitor_id.is_none()
                && event.operator_ids.is_empty(),
            "routing fields kept that the desk cannot read"
        ),
    }
    assert_eq!(object.get("eventId"), Some(&Value::String(event.event_id)));
    assert_eq!(
        object.get("eventType"),
        Some(&Value::String(event.event_type))
    );
});
