//! iAdvize webhook payloads as both sides read them: one home for the id rules and the one
//! operator-id rule (docs/feed-protocol.md, "Payloads"). The gateway reads a delivery with these
//! functions before it stores it; the desk reads the relayed payload with the same ones, so a
//! field one side accepts is a field the other side reads the same way.
//!
//! (The evidence model is [`crate::Evidence`]; [`Evidence::read`](crate::Evidence::read) checks
//! its fields with the same id rule.)
//!
//! Must not: put a field's value in an error (payloads hold visitors' data; evidence holds
//! tokens): errors name the field and the rule only.

use serde_json::{Map, Value};

use crate::MAX_OPERATOR_ID;

/// `eventType` of a conversation pushed (started or transferred) to an operator.
pub const PUSHED: &str = "v2.conversation.pushed";
/// `eventType` of a conversation closed.
pub const CLOSED: &str = "v2.conversation.closed";
/// `eventType` of a visitor's profile edited from the desk or the admin.
pub const VISITOR_UPDATED: &str = "visitor.updated";

/// The longest id (`eventId`, `eventType`, `conversationId`, `visitorId`, `channel`, evidence
/// fields) in bytes.
pub const MAX_ID_BYTES: usize = 256;
/// The longest decimal operator id in a string (`u64::MAX` has 20 digits).
const MAX_OPERATOR_DIGITS: usize = 20;

/// A payload field that breaks its rule. The message names the field and the rule, never the
/// value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FieldError(pub String);

/// The id rule: a string of 1 to [`MAX_ID_BYTES`] bytes without control characters.
pub fn id_text<'a>(value: &'a Value, name: &str) -> Result<&'a str, FieldError> {
    match value {
        Value::String(s)
            if !s.is_empty() && s.len() <= MAX_ID_BYTES && !s.chars().any(char::is_control) =>
        {
            Ok(s)
        }
        Value::String(_) => Err(FieldError(format!(
            "{name} must be 1 to {MAX_ID_BYTES} bytes without control characters"
        ))),
        _ => Err(FieldError(format!("{name} must be a string"))),
    }
}

/// `name` under the id rule; absent or `null` is `None`.
pub fn optional_id<'a>(
    object: &'a Map<String, Value>,
    name: &str,
) -> Result<Option<&'a str>, FieldError> {
    match object.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => id_text(v, name).map(Some),
    }
}

/// `name` under the id rule; absent or `null` is an error.
pub fn required_id<'a>(object: &'a Map<String, Value>, name: &str) -> Result<&'a str, FieldError> {
    optional_id(object, name)?.ok_or_else(|| FieldError(format!("{name} is missing")))
}

/// The label rule, for text that is shown but never used as a key (a webhook's `channel`): a
/// string of 1 to [`MAX_ID_BYTES`] bytes, any characters. A label with control or bidi characters
/// is kept: every display draws them as visible markers (`lockdesk-text`), and refusing it would
/// drop the whole conversation from the desk (issue 12's relayed-channel test).
pub fn required_label<'a>(
    object: &'a Map<String, Value>,
    name: &str,
) -> Result<&'a str, FieldError> {
    match object.get(name) {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_ID_BYTES => Ok(s),
        Some(Value::String(_)) => Err(FieldError(format!(
            "{name} must be 1 to {MAX_ID_BYTES} bytes"
        ))),
        None | Some(Value::Null) => Err(FieldError(format!("{name} is missing"))),
        Some(_) => Err(FieldError(format!("{name} must be a string"))),
    }
}

/// The operator-id rule, the only one: iAdvize operator ids are integers, a JSON number in a JSON
/// body and a decimal string in a form body (`"42"`: ASCII digits only, no sign, no spaces), in
/// `0..=`[`MAX_OPERATOR_ID`] either way (desks store them as SQLite's signed 64-bit integers).
pub fn operator_id(value: &Value, name: &str) -> Result<u64, FieldError> {
    let parsed = match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s)
            if !s.is_empty()
                && s.len() <= MAX_OPERATOR_DIGITS
                && s.bytes().all(|b| b.is_ascii_digit()) =>
        {
            s.parse().ok()
        }
        _ => None,
    };
    parsed.filter(|id| *id <= MAX_OPERATOR_ID).ok_or_else(|| {
        FieldError(format!(
            "{name} must hold operator ids: integers in 0..={MAX_OPERATOR_ID}, as numbers or decimal strings"
        ))
    })
}

/// Which conversation, visitor and operators a webhook concerns: what the gateway routes on and
/// what the desk files it under.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Routing {
    /// `conversationId`.
    pub conversation_id: Option<String>,
    /// `visitorId`.
    pub visitor_id: Option<String>,
    /// `operatorId` (the operator a push goes to; `visitor.updated`'s editor).
    pub operator_id: Option<u64>,
    /// `operatorId` and every `operatorIds` item, sorted, without duplicates.
    pub operator_ids: Vec<u64>,
}

impl Routing {
    /// Reads `conversationId`, `visitorId`, `operatorId` and `operatorIds` (an array, or a lone
    /// value: a form with a single `operatorIds` key gives one string), each under its rule;
    /// absent or `null` fields are `None` / empty.
    pub fn read(object: &Map<String, Value>) -> Result<Routing, FieldError> {
        let conversation_id = optional_id(object, "conversationId")?.map(str::to_owned);
        let visitor_id = optional_id(object, "visitorId")?.map(str::to_owned);
        let single = match object.get("operatorId") {
            None | Some(Value::Null) => None,
            Some(v) => Some(operator_id(v, "operatorId")?),
        };
        let mut operator_ids: Vec<u64> = single.into_iter().collect();
        match object.get("operatorIds") {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) => {
                for item in items {
                    operator_ids.push(operator_id(item, "operatorIds")?);
                }
            }
            Some(lone) => operator_ids.push(operator_id(lone, "operatorIds")?),
        }
        operator_ids.sort_unstable();
        operator_ids.dedup();
        Ok(Routing {
            conversation_id,
            visitor_id,
            operator_id: single,
            operator_ids,
        })
    }

    /// The operator a conversation is with after this event: `operatorId`, else the only
    /// operator id the event names (none when it names several without an `operatorId`).
    pub fn operator(&self) -> Option<u64> {
        match (self.operator_id, self.operator_ids.as_slice()) {
            (Some(id), _) => Some(id),
            (None, [only]) => Some(*only),
            _ => None,
        }
    }
}

/// The fields every webhook event has: `eventId` (the de-duplication key) and `eventType`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookHeader {
    pub event_id: String,
    pub event_type: String,
}

impl WebhookHeader {
    /// Reads `eventId` and `eventType`, both required, under the id rule.
    pub fn read(object: &Map<String, Value>) -> Result<WebhookHeader, FieldError> {
        Ok(WebhookHeader {
            event_id: required_id(object, "eventId")?.to_owned(),
            event_type: required_id(object, "eventType")?.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn routing(v: Value) -> Result<Routing, FieldError> {
        Routing::read(v.as_object().unwrap())
    }

    #[test]
    fn a_label_keeps_hostile_characters_an_id_refuses_them() {
        let hostile = "CHAT\u{1b}]0;pwned\u{7}\u{202e}tahc";
        let p = json!({"channel": hostile, "long": "x".repeat(MAX_ID_BYTES + 1), "n": 3, "e": ""});
        let p = p.as_object().unwrap();
        assert_eq!(required_label(p, "channel"), Ok(hostile));
        assert!(required_id(p, "channel").is_err());
        for name in ["long", "n", "e", "absent"] {
            let e = required_label(p, name).unwrap_err();
            assert!(e.0.starts_with(name), "{e}");
        }
    }

    #[test]
    fn operator_ids_are_numbers_or_digit_strings_within_the_bound() {
        for (v, want) in [
            (json!(42), 42),
            (json!("42"), 42),
            (json!("0"), 0),
            (json!(0), 0),
            (json!(MAX_OPERATOR_ID), MAX_OPERATOR_ID),
            (json!(MAX_OPERATOR_ID.to_string()), MAX_OPERATOR_ID),
            (json!("007"), 7),
        ] {
            assert_eq!(operator_id(&v, "operatorId"), Ok(want), "{v}");
        }
        for v in [
            json!(-1),
            json!(1.5),
            json!(7.0),
            json!(MAX_OPERATOR_ID + 1),
            json!((MAX_OPERATOR_ID + 1).to_string()),
            json!(u64::MAX),
            json!(u64::MAX.to_string()),
            json!("99999999999999999999999"),
            json!(""),
            json!(" 7"),
            json!("+7"),
            json!("-7"),
            json!("7a"),
            json!("٧"),
            json!(true),
            json!([7]),
            json!({"id": 7}),
        ] {
            let e = operator_id(&v, "operatorId").unwrap_err();
            assert!(
                e.0.starts_with("operatorId must hold operator ids"),
                "{v}: {e}"
            );
        }
    }

    #[test]
    fn routing_reads_json_and_form_shapes_alike() {
        let json_push = routing(json!({"conversationId": "c", "visitorId": "v", "operatorId": 7}));
        let form_push =
            routing(json!({"conversationId": "c", "visitorId": "v", "operatorId": "7"}));
        assert_eq!(json_push, form_push);
        let r = json_push.unwrap();
        assert_eq!((r.operator_id, r.operator()), (Some(7), Some(7)));
        assert_eq!(r.operator_ids, vec![7]);

        let closed = routing(json!({"operatorIds": ["3", 1, "3"], "operatorId": null})).unwrap();
        assert_eq!(closed.operator_ids, vec![1, 3]);
        assert_eq!(closed.operator(), None, "several ids and no operatorId");
        let lone = routing(json!({"operatorIds": "5"})).unwrap();
        assert_eq!((lone.operator(), lone.operator_ids), (Some(5), vec![5]));
        assert_eq!(routing(json!({})).unwrap(), Routing::default());

        for (bad, field) in [
            (json!({"operatorIds": [1, "x"]}), "operatorIds"),
            (json!({"operatorId": "SECRET"}), "operatorId"),
            (json!({"conversationId": 5}), "conversationId"),
            (json!({"visitorId": ""}), "visitorId"),
            (json!({"visitorId": "SECRET\n"}), "visitorId"),
            (
                json!({"visitorId": "x".repeat(MAX_ID_BYTES + 1)}),
                "visitorId",
            ),
        ] {
            let e = routing(bad).unwrap_err();
            assert!(e.0.starts_with(field), "{e}");
            assert!(!e.0.contains("SECRET"), "{e}");
        }
    }

    #[test]
    fn headers_need_both_ids() {
        let h = WebhookHeader::read(
            json!({"eventId": "e", "eventType": "t"})
                .as_object()
                .unwrap(),
        );
        assert_eq!(h.unwrap().event_type, "t");
        for bad in [
            json!({"eventType": "t"}),
            json!({"eventId": "e", "eventType": null}),
            json!({"eventId": 5, "eventType": "t"}),
        ] {
            assert!(
                WebhookHeader::read(bad.as_object().unwrap()).is_err(),
                "{bad}"
            );
        }
    }
}
