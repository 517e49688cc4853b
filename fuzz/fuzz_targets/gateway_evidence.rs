#![no_main]
//! A `POST /v1/evidence` body (after the bearer check): any bytes, or a JSON object built from
//! the fuzzer's bytes with the fields the parser looks for, values of every type, and tokens
//! assembled from segments (count, alphabet and lengths mutated) so the syntax check's edges
//! are reached.
//!
//! Checked beyond "no panic": an accepted body is stored as sent (a JSON object with only the
//! five documented members, which the desk's `Evidence::read` accepts alike), the token unchanged and of valid compact syntax, and a
//! 12-hex-digit fingerprint; a refusal's message never contains a value from the body (they may
//! be tokens).

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use lockdesk_intake::evidence::{check_token_syntax, parse as parse_evidence, MAX_TOKEN_LEN};
use serde_json::{Map, Value};

#[path = "json.rs"]
mod json;

const FIELDS: &[&str] = &[
    "visitorId",
    "conversationId",
    "token",
    "presentedAt",
    "source",
    "domain",
    "device",
    "app",
];

#[derive(Arbitrary, Debug)]
enum Body {
    Raw(Vec<u8>),
    Object(Vec<(json::Name, Field)>),
}

#[derive(Arbitrary, Debug)]
enum Field {
    Token(Token),
    Source(Vec<(json::Name, json::Json)>),
    Any(json::Json),
}

/// `segments` joined by dots; each segment is `len` characters cycled from `alphabet`.
#[derive(Arbitrary, Debug)]
struct Token {
    segments: Vec<(u16, Alphabet)>,
    long: bool,
}

#[derive(Arbitrary, Debug)]
enum Alphabet {
    Base64Url,
    Padded,
    Other(char),
}

impl Token {
    fn text(&self) -> String {
        let mut parts = Vec::new();
        for (i, (len, alphabet)) in self.segments.iter().take(8).enumerate() {
            // Mostly short segments; `long` reaches the size limit.
            let len = if self.long {
                usize::from(*len)
            } else {
                usize::from(*len % 64)
            };
            let seg: String = (0..len)
                .map(|j| match alphabet {
                    Alphabet::Base64Url => b"ABCxyz019-_"[(i + j) % 11] as char,
                    Alphabet::Padded if j + 1 == len => '=',
                    Alphabet::Padded => 'Q',
                    Alphabet::Other(c) if j == 0 => *c,
                    Alphabet::Other(_) => 'a',
                })
                .collect();
            parts.push(seg);
        }
        parts.join(".")
    }
}

/// Every string in a value, at any depth.
fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|i| strings(i, out)),
        Value::Object(m) => m.iter().for_each(|(k, i)| {
            out.push(k.clone());
            strings(i, out)
        }),
        _ => {}
    }
}

fuzz_target!(|body: Body| {
    let bytes = match &body {
        Body::Raw(b) => b.clone(),
        Body::Object(fields) => {
            let mut m = Map::new();
            for (name, field) in fields {
                let v = match field {
                    Field::Token(t) => Value::String(t.text()),
                    Field::Source(members) => Value::Object(json::object(members, FIELDS)),
                    Field::Any(j) => j.value(FIELDS),
                };
                m.insert(name.text(FIELDS), v);
            }
            Value::Object(m).to_string().into_bytes()
        }
    };
    match parse_evidence("provider-a", &bytes, 1_767_261_600_000) {
        Ok(parsed) => {
            let sent: Value = serde_json::from_slice(&bytes).expect("accepted means JSON");
            let token = sent["token"]
                .as_str()
                .expect("accepted means a token string");
            assert!(token.len() <= MAX_TOKEN_LEN);
            assert_eq!(check_token_syntax(token), Ok(()));
            assert_eq!(parsed.fingerprint.len(), 12);
            assert!(parsed.fingerprint.bytes().all(|b| b.is_ascii_hexdigit()));
            let e = &parsed.evidence;
            assert_eq!(e.provider, "provider-a");
            assert!(!e.visitor_id.is_empty() && e.visitor_id.len() <= 256);
            assert_eq!(sent["visitorId"].as_str(), Some(e.visitor_id.as_str()));
            assert_eq!(
                sent.get("conversationId").and_then(Value::as_str),
                e.conversation_id.as_deref()
            );
            // Stored as sent (never re-serialised), and read by the desk's rules alike.
            assert_eq!(e.payload.as_bytes(), &bytes[..]);
            let payload: Value = serde_json::from_str(&e.payload).expect("payload is JSON");
            let object = payload.as_object().expect("payload is an object");
            assert!(object.keys().all(|k| [
                "conversationId",
                "presentedAt",
                "source",
                "token",
                "visitorId"
            ]
            .contains(&k.as_str())));
            assert_eq!(object["token"].as_str(), Some(token));
            let read = lockdesk_feed::Evidence::read(&payload).expect("the desk reads it");
            assert_eq!(read.visitor_id, e.visitor_id);
            assert_eq!(read.conversation_id, e.conversation_id);
        }
        Err(err) => {
            let message = err.to_string();
            assert!(!err.reason().is_empty());
            // Values are never echoed: no run of 20 or more non-space characters from the body
            // (a token is one) is in the message. The messages' own words are shorter, so a
            // body quoting them (libFuzzer learns strings from this very comparison) is not
            // taken for an echo.
            if let Ok(sent) = serde_json::from_slice::<Value>(&bytes) {
                let mut values = Vec::new();
                strings(&sent, &mut values);
                for v in &values {
                    for run in v.split(char::is_whitespace) {
                        if run.chars().count() >= 20 {
                            assert!(!message.contains(run), "the error echoes a value");
                        }
                    }
                }
            }
        }
    }
});
