//! Token evidence from the brand's token provider: the bearer check and the parsing of
//! `POST /v1/evidence` bodies. The token is checked for size and compact syntax only.
//!
//! Must not: decrypt, decode or verify a token; put a token (or any part of it) in a log line or
//! an error message. Error messages name fields, never echo values.

use lockdesk_feed::Evidence;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::NewEvidence;

/// The longest token accepted (iAdvize tokens are about 1 KiB; a JWE of a large JWS stays far
/// below this).
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EvidenceError {
    /// Answered by the server when `auth::Bearers::find` finds no provider.
    #[error("missing or unknown bearer credential")]
    Unauthorized,
    #[error("the body is not valid UTF-8")]
    InvalidUtf8,
    #[error("the body is not a JSON object")]
    MalformedJson,
    #[error("{0}")]
    InvalidField(String),
    #[error("token must be a compact JWS (3 segments) or JWE (5 segments) of base64url, at most {MAX_TOKEN_LEN} bytes")]
    TokenSyntax,
}

impl EvidenceError {
    pub fn reason(&self) -> &'static str {
        match self {
            EvidenceError::Unauthorized => "unauthorized",
            EvidenceError::InvalidUtf8 => "invalid_utf8",
            EvidenceError::MalformedJson => "malformed_json",
            EvidenceError::InvalidField(_) => "invalid_field",
            EvidenceError::TokenSyntax => "token_syntax",
        }
    }
}

/// The first 12 hex digits of the token's SHA-256: enough to correlate log lines, useless to
/// anyone reading them.
pub fn token_fingerprint(token: &str) -> String {
    let mut h = hex::encode(Sha256::digest(token.as_bytes()));
    h.truncate(12);
    h
}

/// A parsed evidence body and its token's fingerprint (for logs).
pub struct Parsed {
    pub evidence: NewEvidence,
    pub fingerprint: String,
}

/// Parses an evidence body under the rules the desk applies too (`lockdesk_feed::Evidence::read`:
/// the shared id rule for every field), plus this endpoint's own: no field it does not know, and
/// a token of compact syntax. The body is stored as sent (never re-serialised): every field in
/// it has been checked.
pub fn parse(provider: &str, body: &[u8], received_at_ms: i64) -> Result<Parsed, EvidenceError> {
    let text = std::str::from_utf8(body).map_err(|_| EvidenceError::InvalidUtf8)?;
    // serde_json's own messages can quote values (the token); ours never do.
    let Ok(value) = serde_json::from_str::<Value>(text) else {
        return Err(EvidenceError::MalformedJson);
    };
    let Some(object) = value.as_object() else {
        return Err(EvidenceError::MalformedJson);
    };
    let known = |object: &Map<String, Value>, fields: &[&str]| {
        object.keys().all(|k| fields.contains(&k.as_str()))
    };
    if !known(
        object,
        &[
            "visitorId",
            "conversationId",
            "token",
            "presentedAt",
            "source",
        ],
    ) {
        return Err(EvidenceError::InvalidField(
            "unknown field (expected visitorId, conversationId, token, presentedAt, source)".into(),
        ));
    }
    if let Some(Value::Object(source)) = object.get("source") {
        if !known(source, &["domain", "device", "app"]) {
            return Err(EvidenceError::InvalidField(
                "source: unknown field (expected domain, device, app)".into(),
            ));
        }
    }
    let evidence = Evidence::read(&value).map_err(|e| EvidenceError::InvalidField(e.0))?;
    check_token_syntax(&evidence.token)?;
    Ok(Parsed {
        fingerprint: token_fingerprint(&evidence.token),
        evidence: NewEvidence {
            provider: provider.to_owned(),
            visitor_id: evidence.visitor_id,
            conversation_id: evidence.conversation_id,
            payload: text.to_owned(),
            received_at_ms,
        },
    })
}

/// Compact serialisation only: 3 (JWS) or 5 (JWE) dot-separated base64url segments without
/// padding. The JWE's encrypted-key segment may be empty (RFC 7516 `dir`); every other must not.
pub fn check_token_syntax(token: &str) -> Result<(), EvidenceError> {
    if token.is_empty() || token.len() > MAX_TOKEN_LEN {
        return Err(EvidenceError::TokenSyntax);
    }
    let segments: Vec<&str> = token.split('.').collect();
    let may_be_empty = |i: usize| segments.len() == 5 && i == 1;
    let ok = matches!(segments.len(), 3 | 5)
        && segments.iter().enumerate().all(|(i, s)| {
            (!s.is_empty() || may_be_empty(i))
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                // A base64url string never has length 1 mod 4.
                && s.len() % 4 != 1
        });
    if ok {
        Ok(())
    } else {
        Err(EvidenceError::TokenSyntax)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_syntax() {
        for good in [
            "aaaa.bbbb.cccc",
            "eyJh.aa.bbb",
            "aa..cc.dd.ee",
            "aa.bb.cc.dd.ee",
        ] {
            assert_eq!(check_token_syntax(good), Ok(()), "{good}");
        }
        let long = format!("aa.{}.cc", "b".repeat(MAX_TOKEN_LEN));
        for bad in [
            "",
            "a",
            "aa.bb",
            "aa.bb.cc.dd",
            "aa.bb.cc.dd.ee.ff",
            "aa..cc",
            "aa.bb.c=",
            "aa.b+.cc",
            "aa.bb.cc ",
            "aa.bbbbb.cc",
            long.as_str(),
            "aa.bb.cc.dd.",
        ] {
            assert_eq!(
                check_token_syntax(bad),
                Err(EvidenceError::TokenSyntax),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_body_is_stored_as_sent_and_read_with_the_shared_rules() {
        let body = "{ \"token\": \"aaaa.bbbb.cccc\",\n  \"visitorId\" : \"v\\u00e9\", \"source\": {\"device\":\"laptop\"} }";
        let parsed = parse("p", body.as_bytes(), 0).unwrap();
        assert_eq!(parsed.evidence.payload, body);
        assert_eq!(parsed.evidence.visitor_id, "vé");
        let desk = Evidence::read(&serde_json::from_str(body).unwrap()).unwrap();
        assert_eq!(desk.visitor_id, parsed.evidence.visitor_id);
        for (bad, reason) in [
            (r#"{"visitorId":"","token":"a.b.c"}"#, "invalid_field"),
            (
                r#"{"visitorId":"v","token":"a.b.c","source":{"app":7}}"#,
                "invalid_field",
            ),
            (
                r#"{"visitorId":"v","token":"a.b.c","source":{"os":"x"}}"#,
                "invalid_field",
            ),
            (r#"{"visitorId":"v","token":7}"#, "invalid_field"),
            (r#"{"visitorId":"v","token":"a.b"}"#, "token_syntax"),
        ] {
            let got = parse("p", bad.as_bytes(), 0).map(|_| ());
            assert_eq!(got.map_err(|e| e.reason()), Err(reason), "{bad}");
        }
    }

    #[test]
    fn errors_never_echo_the_token() {
        let token = "SECRETTOKEN.AAAA.BBBB";
        let bodies = [
            format!(r#"{{"visitorId":"v","token":"{token}x=","x":1}}"#),
            format!(r#"{{"visitorId":"v","token":"{token}="}}"#),
            format!(r#"{{"visitorId":"v","source":"{token}","token":"a.b.c"}}"#),
            format!(
                r#"{{"visitorId":"{token}{}","token":"a.b.c"}}"#,
                "x".repeat(300)
            ),
            format!(r#"{{"visitorId":"v","token":"{token}""#),
        ];
        for body in bodies {
            let err = parse("p", body.as_bytes(), 0)
                .err()
                .expect("must be refused");
            assert!(!err.to_string().contains("SECRETTOKEN"), "{err}");
        }
    }
}
