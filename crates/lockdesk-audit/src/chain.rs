//! The canonical encoding the chain hashes, and the hashes themselves.
//!
//! Everything here is pure: no SQLite, no clock, no randomness. `docs/audit.md` restates these
//! rules for people who want to re-check an export with their own tools; change both together.
//!
//! Notation: `u32be`/`u64be`/`i64be` are big-endian integers; `lp(b) = u32be(len(b)) || b`;
//! `opt(x) = 0x00` when absent, `0x01 || x` when present. Strings are their UTF-8 bytes.
//!
//! ```text
//! commitment = SHA-256( "lockdesk-audit/v1/personal\0"
//!                       || lp(salt)                      16 random bytes per entry
//!                       || opt(lp(user_id)) || opt(lp(visitor_id)) || opt(lp(visitor_data)) )
//! hash       = SHA-256( "lockdesk-audit/v1/entry\0"
//!                       || u64be(seq) || prev_hash        32 bytes; the first entry's is 32 zeros
//!                       || i64be(at_ms) || lp(kind)
//!                       || opt(lp(conversation_id)) || opt(u64be(operator_id))
//!                       || lp(data) || commitment )
//! ```
//!
//! `data` and `visitor_data` are canonical JSON ([`canonical_json`]): object keys sorted by their
//! UTF-8 bytes, no whitespace, strings and numbers as serde_json writes them.

use serde_json::Value;
use sha2::{Digest, Sha256};

pub(crate) const ENTRY_DOMAIN: &[u8] = b"lockdesk-audit/v1/entry\0";
pub(crate) const CONTENT_DOMAIN: &[u8] = b"lockdesk-audit/v1/personal\0";
/// Bytes of each entry's salt.
pub(crate) const SALT_LEN: usize = 16;
/// The hash before the first entry.
#[allow(dead_code)]
pub(crate) const GENESIS: [u8; 32] = [0; 32];

/// The chained (non-erasable) fields of one entry.
pub(crate) struct Chained<'a> {
    pub seq: u64,
    pub prev_hash: &'a [u8; 32],
    pub at_ms: i64,
    pub kind: &'a str,
    pub conversation_id: Option<&'a str>,
    pub operator_id: Option<u64>,
    pub data: &'a str,
    pub commitment: &'a [u8; 32],
}

fn lp(h: &mut Sha256, b: &[u8]) {
    // Every field comes from SQLite or a JSON line, both far below 4 GiB; a longer one would be
    // rejected by SQLite's own limit (1 GB) first.
    let len = u32::try_from(b.len()).unwrap_or(u32::MAX);
    h.update(len.to_be_bytes());
    h.update(b);
}

fn opt_lp(h: &mut Sha256, b: Option<&str>) {
    match b {
        None => h.update([0u8]),
        Some(s) => {
            h.update([1u8]);
            lp(h, s.as_bytes());
        }
    }
}

/// The entry hash (see the module header).
pub(crate) fn entry_hash(c: &Chained<'_>) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(ENTRY_DOMAIN);
    h.update(c.seq.to_be_bytes());
    h.update(c.prev_hash);
    h.update(c.at_ms.to_be_bytes());
    lp(&mut h, c.kind.as_bytes());
    opt_lp(&mut h, c.conversation_id);
    match c.operator_id {
        None => h.update([0u8]),
        Some(id) => {
            h.update([1u8]);
            h.update(id.to_be_bytes());
        }
    }
    lp(&mut h, c.data.as_bytes());
    h.update(c.commitment);
    h.finalize().into()
}

/// The commitment to one entry's personal content (see the module header).
pub(crate) fn commitment(
    salt: &[u8],
    user_id: Option<&str>,
    visitor_id: Option<&str>,
    visitor_data: Option<&str>,
) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(CONTENT_DOMAIN);
    lp(&mut h, salt);
    opt_lp(&mut h, user_id);
    opt_lp(&mut h, visitor_id);
    opt_lp(&mut h, visitor_data);
    h.finalize().into()
}

/// Canonical JSON: object keys sorted by their UTF-8 bytes, no whitespace; strings and numbers
/// as serde_json writes them (deterministic, and a parse/write round trip gives the same text).
pub fn canonical_json(v: &Value) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

/// [`canonical_json`] of an object without one of its keys (no copy of the object).
pub(crate) fn canonical_object_without(map: &serde_json::Map<String, Value>, skip: &str) -> String {
    let mut out = String::new();
    write_object(map, Some(skip), &mut out);
    out
}

fn write_object(map: &serde_json::Map<String, Value>, skip: Option<&str>, out: &mut String) {
    let mut keys: Vec<&String> = map.keys().filter(|k| Some(k.as_str()) != skip).collect();
    keys.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    out.push('{');
    for (i, k) in keys.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_string(k, out);
        out.push(':');
        if let Some(val) = map.get(k) {
            write_canonical(val, out);
        }
    }
    out.push('}');
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => write_object(map, None, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        Value::String(s) => write_string(s, out),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Null => out.push_str("null"),
    }
}

fn write_string(s: &str, out: &mut String) {
    // serde_json's string escaping is deterministic; serialising a &str cannot fail.
    match serde_json::to_string(s) {
        Ok(quoted) => out.push_str(&quoted),
        Err(_) => out.push_str("\"\""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_json_sorts_keys_at_every_level_and_round_trips() {
        let v = json!({"b": 1, "a": {"z": [1, {"y": 2.5, "x": "é\n"}], "c": null}, "A": true});
        let text = canonical_json(&v);
        assert_eq!(
            text,
            r#"{"A":true,"a":{"c":null,"z":[1,{"x":"é\n","y":2.5}]},"b":1}"#
        );
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(canonical_json(&back), text);
    }

    #[test]
    fn every_chained_field_changes_the_hash() {
        let prev = [7u8; 32];
        let com = [9u8; 32];
        let base = Chained {
            seq: 5,
            prev_hash: &prev,
            at_ms: 1000,
            kind: "verdict",
            conversation_id: Some("c1"),
            operator_id: Some(3),
            data: "{}",
            commitment: &com,
        };
        let h = entry_hash(&base);
        let other_prev = [8u8; 32];
        let other_com = [1u8; 32];
        let variants = [
            Chained { seq: 6, ..base },
            Chained {
                prev_hash: &other_prev,
                ..base
            },
            Chained {
                at_ms: 1001,
                ..base
            },
            Chained {
                kind: "alert",
                ..base
            },
            Chained {
                conversation_id: None,
                ..base
            },
            Chained {
                conversation_id: Some("c2"),
                ..base
            },
            Chained {
                operator_id: None,
                ..base
            },
            Chained {
                operator_id: Some(4),
                ..base
            },
            Chained {
                data: "{\"a\":1}",
                ..base
            },
            Chained {
                commitment: &other_com,
                ..base
            },
        ];
        for v in &variants {
            assert_ne!(entry_hash(v), h);
        }
        // Length prefixes: moving bytes between adjacent fields changes the hash.
        let a = commitment(b"s", Some("ab"), Some("c"), None);
        let b = commitment(b"s", Some("a"), Some("bc"), None);
        assert_ne!(a, b);
        assert_ne!(
            commitment(b"s", None, Some("x"), None),
            commitment(b"s", Some("x"), None, None)
        );
    }
}
