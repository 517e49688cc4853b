//! What the engine answers: a verified identity or a rejection with a stable reason code.
//! Verdicts are data, not errors: a rejected token is a normal outcome.

use serde_json::{Map, Value};

/// Calls the macro `$then!` with the verifier's reasons, `Variant => "code",` each with its doc
/// comment, in the order of the list: the one list behind [`Reason`], [`Reason::ALL`] and
/// [`Reason::code`], and behind lockdesk-conversation's `ReasonCode`, which has a variant for each
/// (named alike, with the same code) without listing them again.
#[macro_export]
macro_rules! with_reasons {
    ($then:ident) => {
        $then! {
            /// Not a compact JWE/JWS, bad base64, bad JSON, bad segment lengths.
            Malformed => "malformed",
            /// Over the policy's size limit (checked before any decoding).
            TooLarge => "too_large",
            /// `alg`/`enc` other than RSA-OAEP-256 + A256GCM outside and RS256 inside.
            UnsupportedAlgorithm => "unsupported_algorithm",
            /// A header member the format does not need (`jku`, `jwk`, `x5u`, `x5c`, `zip`,
            /// `crit`, ...).
            ForbiddenHeader => "forbidden_header",
            /// The same member twice in a header, the claims, or a nested object.
            DuplicateMember => "duplicate_member",
            /// A bare JWS while the policy requires encryption.
            EncryptionRequired => "encryption_required",
            /// No desk key opens the JWE (wrong key, tampered key/IV/ciphertext/tag, no key
            /// configured).
            DecryptionFailed => "decryption_failed",
            /// The header names a `kid` the issuer's key set does not have.
            UnknownKey => "unknown_key",
            /// The signature does not verify with the issuer's key.
            BadSignature => "bad_signature",
            /// `iss` names no trusted issuer.
            UntrustedIssuer => "untrusted_issuer",
            /// `exp` has passed (beyond the leeway).
            Expired => "expired",
            /// `nbf` or `iat` is in the future (beyond the leeway).
            NotYetValid => "not_yet_valid",
            /// `exp` is further in the future than the policy allows.
            LifetimeTooLong => "lifetime_too_long",
            /// A registered claim is missing or of the wrong type (`iss`, `exp`, `iat`, `nbf`).
            InvalidClaims => "invalid_claims",
            /// `https://iadvize.com/userId` missing, not a string, empty, too long, or with a
            /// character that cannot be shown as it is (control, bidi, invisible, separator,
            /// over 4 combining marks).
            InvalidUserId => "invalid_user_id",
            /// `https://iadvize.com/visitorData` not an object, or a documented field not a string.
            InvalidVisitorData => "invalid_visitor_data",
        }
    };
}

macro_rules! reason {
    ($($(#[$doc:meta])* $name:ident => $code:literal,)*) => {
        /// The stable rejection codes. They appear in the CLI's JSON and the desk's UI branches on
        /// them: never rename one.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Reason {
            $($(#[$doc])* $name,)*
        }

        impl Reason {
            /// Every code, in the order of the list.
            pub const ALL: [Reason; 16] = [$(Reason::$name,)*];

            /// The stable snake_case code.
            pub fn code(self) -> &'static str {
                match self {
                    $(Reason::$name => $code,)*
                }
            }

            pub fn from_code(code: &str) -> Option<Reason> {
                Reason::ALL.into_iter().find(|r| r.code() == code)
            }
        }
    };
}

with_reasons!(reason);

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// Why a token was refused: a stable code and a sentence for people.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub reason: Reason,
    /// Lowercase, says what was expected; never contains the token.
    pub detail: String,
    /// For `invalid_user_id` on a token whose signature verified: the userId the brand signed,
    /// refused because it cannot be shown as it is (bidi controls, invisible characters...).
    /// The desk compares it with the identities it knows (an attempt to pass for one). Raw
    /// and hostile: show it only through `lockdesk_text::visible`. `None` otherwise.
    pub signed_user_id: Option<String>,
}

impl Rejection {
    pub fn new(reason: Reason, detail: impl Into<String>) -> Self {
        Rejection {
            reason,
            detail: detail.into(),
            signed_user_id: None,
        }
    }

    /// The same rejection, carrying the signed userId it refused.
    pub fn with_signed_user_id(mut self, user_id: impl Into<String>) -> Self {
        self.signed_user_id = Some(user_id.into());
        self
    }

    /// `{"verdict":"rejected","reason":..,"detail":..}`
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "verdict": "rejected",
            "reason": self.reason.code(),
            "detail": self.detail,
        })
    }
}

/// Which serialization the token used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Signed then encrypted (the iAdvize format).
    Jwe,
    /// Signed only.
    Jws,
}

impl Format {
    pub fn code(self) -> &'static str {
        match self {
            Format::Jwe => "jwe",
            Format::Jws => "jws",
        }
    }
}

/// The eight documented `visitorData` fields, in documentation order.
pub const VISITOR_DATA_FIELDS: [&str; 8] = [
    "firstName",
    "lastName",
    "email",
    "phoneNumber",
    "address",
    "city",
    "zipCode",
    "country",
];

/// The visitor's profile as the brand signed it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VisitorData {
    /// Documented fields present in the token (each a string), in documentation order.
    pub fields: Vec<(&'static str, String)>,
    /// Undocumented members, kept as signed but not validated: shown as unverified extras.
    pub extras: Map<String, Value>,
}

impl VisitorData {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The documented fields followed by the extras, as one object.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        for (k, v) in &self.fields {
            m.insert((*k).to_owned(), Value::String(v.clone()));
        }
        for (k, v) in &self.extras {
            m.insert(k.clone(), v.clone());
        }
        Value::Object(m)
    }
}

/// A token the engine verified: who the brand says this visitor is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    pub format: Format,
    pub user_id: String,
    pub visitor_data: Option<VisitorData>,
    pub issuer: String,
    /// `exp`, seconds since the epoch.
    pub expires_at: i64,
    /// `iat`, when present.
    pub issued_at: Option<i64>,
    /// `nbf`, when present.
    pub not_before: Option<i64>,
    /// RFC 7638 thumbprint (base64url SHA-256) of the brand key that verified the signature.
    pub signing_key: String,
    /// RFC 7638 thumbprint of the desk key that opened the JWE; `None` for a bare JWS.
    pub decryption_key: Option<String>,
    /// Things worth a look that do not invalidate the token.
    pub warnings: Vec<String>,
}

impl Verified {
    /// The CLI's JSON line for a verified token.
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "verdict": "verified",
            "format": self.format.code(),
            "userId": self.user_id,
            "visitorData": self.visitor_data.as_ref().map(VisitorData::to_json),
            "issuer": self.issuer,
            "expiresAt": self.expires_at,
            "issuedAt": self.issued_at,
            "signingKey": self.signing_key,
            "decryptionKey": self.decryption_key,
            "warnings": self.warnings,
        })
    }
}

/// The engine's answer for one token.
// Returned by value once per token and usually verified: boxing would add an allocation to the
// common case for no gain.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Verified(Verified),
    Rejected(Rejection),
}

impl Verdict {
    pub fn is_verified(&self) -> bool {
        matches!(self, Verdict::Verified(_))
    }

    /// The rejection code, if rejected.
    pub fn reason(&self) -> Option<Reason> {
        match self {
            Verdict::Verified(_) => None,
            Verdict::Rejected(r) => Some(r.reason),
        }
    }

    pub fn to_json(&self) -> Value {
        match self {
            Verdict::Verified(v) => v.to_json(),
            Verdict::Rejected(r) => r.to_json(),
        }
    }
}
