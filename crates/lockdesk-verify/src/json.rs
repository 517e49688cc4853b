//! Strict JSON for headers, claims and key files: a duplicate member name at any depth is an
//! error (RFC 7515 §5.2 / RFC 8725 §3.10: two parsers must never see two different values), and
//! the caller learns which member was duplicated.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Why a JSON text was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum JsonError {
    /// A member name appears twice in one object (the name, escaped and truncated).
    Duplicate(String),
    /// Not JSON, not UTF-8, too deep, or the top level is not an object.
    Invalid(String),
}

/// The marker carried through serde's string-only custom errors to tell duplicates apart.
const DUP_MARK: &str = "\u{1}duplicate member:";

struct Strict(Value);

impl<'de> de::Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // serde_json never yields non-finite numbers, so this is always Some.
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(de::Error::custom(format!("{DUP_MARK}{}", excerpt(&key))));
            }
            let Strict(v) = map.next_value()?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

/// A JSON string, borrowed from the input when it holds no escape.
pub(crate) struct Text<'de>(pub Cow<'de, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        d.deserialize_str(TextVisitor)
    }
}

/// Parses `bytes` as one JSON value with no duplicate members anywhere.
pub fn parse_strict(bytes: &[u8]) -> Result<Value, JsonError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = de::Deserialize::deserialize(&mut de).and_then(|Strict(v)| {
        de.end()?;
        Ok(v)
    });
    parsed.map_err(|e| {
        let text = e.to_string();
        match text.find(DUP_MARK) {
            Some(at) => {
                let rest = &text[at + DUP_MARK.len()..];
                // serde_json appends " at line L column C".
                let name = rest.rsplit_once(" at line ").map_or(rest, |(n, _)| n);
                JsonError::Duplicate(name.to_owned())
            }
            None => JsonError::Invalid(text),
        }
    })
}

/// Parses `bytes` as a JSON object with no duplicate members anywhere.
pub fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, JsonError> {
    match parse_strict(bytes)? {
        Value::Object(m) => Ok(m),
        other => Err(JsonError::Invalid(format!(
            "expected a JSON object, found {}",
            kind(&other)
        ))),
    }
}

/// The JSON type name of a value, for messages.
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// An untrusted string made safe for a message: escaped like Rust's `{:?}` and cut to 64
/// characters.
pub fn excerpt(s: &str) -> String {
    const MAX: usize = 64;
    let mut cut: String = s.chars().take(MAX).collect();
    if s.chars().nth(MAX).is_some() {
        cut.push('…');
    }
    format!("{cut:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expect: Result<&str, JsonError>) {
        let got = parse_object(input.as_bytes()).map(|m| Value::Object(m).to_string());
        assert_eq!(got, expect.map(str::to_owned), "input: {input}");
    }

    #[test]
    fn duplicates_anywhere_are_found() {
        check(r#"{"a":1,"b":"x"}"#, Ok(r#"{"a":1,"b":"x"}"#));
        check(
            r#"{"a":1,"a":2}"#,
            Err(JsonError::Duplicate("\"a\"".into())),
        );
        check(
            r#"{"v":{"x":1,"y":{"z":1,"z":1}}}"#,
            Err(JsonError::Duplicate("\"z\"".into())),
        );
        check(
            r#"{"v":[{"k":1,"k":2}]}"#,
            Err(JsonError::Duplicate("\"k\"".into())),
        );
        // Escapes that decode to the same name are the same name.
        check(
            r#"{"alg":1,"\u0061lg":2}"#,
            Err(JsonError::Duplicate("\"alg\"".into())),
        );
    }

    #[test]
    fn non_objects_and_garbage_are_invalid() {
        for input in ["[]", "1", "\"s\"", "{", "{} {}", "{\"a\":1,}", "\u{feff}{}"] {
            assert!(
                matches!(parse_object(input.as_bytes()), Err(JsonError::Invalid(_))),
                "{input}"
            );
        }
        assert!(matches!(
            parse_object(b"{\"a\":\"\xff\"}"),
            Err(JsonError::Invalid(_))
        ));
    }

    #[test]
    fn excerpt_escapes_and_truncates() {
        assert_eq!(excerpt("a\nb"), "\"a\\nb\"");
        assert_eq!(excerpt(&"x".repeat(100)).chars().count(), 64 + 3);
    }
}
