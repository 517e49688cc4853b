//! The claims of a token whose signature has been verified: types, time, and the two iAdvize
//! claims. Only `iss`, `exp` and the user id are required.

use std::borrow::Cow;
use std::fmt;

use lockdesk_text::Hazard;
use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;

use crate::json::{self, excerpt, kind, JsonError, Text};
use crate::verdict::{Reason, Rejection, VisitorData, VISITOR_DATA_FIELDS};
use crate::{Policy, USER_ID_CLAIM, VISITOR_DATA_CLAIM};

/// NumericDates beyond year 9999 (or before 0001) are nonsense; bounding them keeps all time
/// arithmetic far from overflow.
const MAX_NUMERIC_DATE: i64 = 253_402_300_799;
const MIN_NUMERIC_DATE: i64 = -62_135_596_800;
pub const MAX_USER_ID_CHARS: usize = 255;
pub const MAX_VISITOR_FIELD_CHARS: usize = 1024;
/// iAdvize recommends tokens living about a minute; longer ones get a warning.
const LONG_LIVED_SECS: i64 = 300;

/// The checked claims.
pub struct Checked {
    pub user_id: String,
    pub visitor_data: Option<VisitorData>,
    pub expires_at: i64,
    pub issued_at: Option<i64>,
    pub not_before: Option<i64>,
    pub warnings: Vec<String>,
}

/// One claim as the checks read it: a string or an integer taken by the typed reading, or the
/// JSON value from the whole reading.
pub enum Claim<'a> {
    Str(Cow<'a, str>),
    Int(i64),
    Json(Value),
}

impl Claim<'_> {
    /// The JSON type, for messages (as [`kind`] names it).
    pub fn kind(&self) -> &'static str {
        match self {
            Claim::Str(_) => "a string",
            Claim::Int(_) => "a number",
            Claim::Json(v) => kind(v),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Claim::Str(s) => Some(s),
            Claim::Json(Value::String(s)) => Some(s),
            _ => None,
        }
    }
}

/// The `visitorData` claim: its documented fields (the typed reading takes only an object of
/// those, each a string, in [`VISITOR_DATA_FIELDS`] order), or the JSON value.
pub enum VisitorClaim<'a> {
    Fields([Option<Cow<'a, str>>; VISITOR_DATA_FIELDS.len()]),
    Json(Value),
}

/// The claims the verifier reads. Every other claim is only checked to be valid JSON without
/// duplicates (by the whole reading); `aud` is noted.
#[derive(Default)]
pub struct Claims<'a> {
    pub iss: Option<Claim<'a>>,
    exp: Option<Claim<'a>>,
    nbf: Option<Claim<'a>>,
    iat: Option<Claim<'a>>,
    user_id: Option<Claim<'a>>,
    visitor_data: Option<VisitorClaim<'a>>,
    has_aud: bool,
}

/// Reads a claims set: straight into [`Claims`] (strings borrowed from `bytes`) when it holds
/// only the claims the verifier reads, each once, each of the type it needs; anything else (an
/// other claim, a duplicate, a wrong type, an undocumented visitorData field, bad JSON) through
/// [`read_in_full`], so every rejection keeps its reason and detail.
pub fn read(bytes: &[u8]) -> Result<Claims<'_>, JsonError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    if let Ok(Typed(claims)) = Typed::deserialize(&mut de) {
        if de.end().is_ok() {
            return Ok(claims);
        }
    }
    read_in_full(bytes)
}

/// The whole reading: a JSON object with no duplicate member at any depth
/// ([`json::parse_object`]), the claims the verifier reads taken out as JSON values.
pub fn read_in_full(bytes: &[u8]) -> Result<Claims<'static>, JsonError> {
    let mut map = json::parse_object(bytes)?;
    let mut take = |name: &str| map.remove(name).map(Claim::Json);
    Ok(Claims {
        iss: take("iss"),
        exp: take("exp"),
        nbf: take("nbf"),
        iat: take("iat"),
        user_id: take(USER_ID_CLAIM),
        visitor_data: map.remove(VISITOR_DATA_CLAIM).map(VisitorClaim::Json),
        has_aud: map.contains_key("aud"),
    })
}

fn refuse<E: de::Error>() -> E {
    // Never shown: the whole reading finds the precise answer.
    E::custom("left to the whole reading")
}

/// The typed reading of [`read`].
struct Typed<'de>(Claims<'de>);

impl<'de> Deserialize<'de> for Typed<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ClaimsVisitor;
        impl<'de> Visitor<'de> for ClaimsVisitor {
            type Value = Typed<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a claims set")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Typed<'de>, A::Error> {
                let mut c = Claims::default();
                while let Some(Text(name)) = map.next_key()? {
                    let (slot, text) = match &*name {
                        "iss" => (&mut c.iss, true),
                        USER_ID_CLAIM => (&mut c.user_id, true),
                        "exp" => (&mut c.exp, false),
                        "nbf" => (&mut c.nbf, false),
                        "iat" => (&mut c.iat, false),
                        VISITOR_DATA_CLAIM => {
                            if c.visitor_data.is_some() {
                                return Err(refuse());
                            }
                            let Fields(fields) = map.next_value()?;
                            c.visitor_data = Some(VisitorClaim::Fields(fields));
                            continue;
                        }
                        _ => return Err(refuse()),
                    };
                    if slot.is_some() {
                        return Err(refuse());
                    }
                    *slot = Some(if text {
                        Claim::Str(map.next_value::<Text>()?.0)
                    } else {
                        Claim::Int(map.next_value::<Int>()?.0)
                    });
                }
                Ok(Typed(c))
            }
        }
        d.deserialize_map(ClaimsVisitor)
    }
}

/// A JSON integer that fits an `i64` (what `Value::as_i64` gives for the whole reading's number:
/// a fraction or exponent is a float there, so not taken here either).
struct Int(i64);

impl<'de> Deserialize<'de> for Int {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct IntVisitor;
        impl Visitor<'_> for IntVisitor {
            type Value = Int;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an integer")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Int, E> {
                Ok(Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Int, E> {
                i64::try_from(v).map(Int).map_err(|_| refuse())
            }
        }
        d.deserialize_i64(IntVisitor)
    }
}

/// An object of documented visitorData fields, each a string, none twice.
struct Fields<'de>([Option<Cow<'de, str>>; VISITOR_DATA_FIELDS.len()]);

impl<'de> Deserialize<'de> for Fields<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct FieldsVisitor;
        impl<'de> Visitor<'de> for FieldsVisitor {
            type Value = Fields<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("visitorData")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields<'de>, A::Error> {
                let mut fields: [Option<Cow<'de, str>>; VISITOR_DATA_FIELDS.len()] =
                    Default::default();
                while let Some(Text(name)) = map.next_key()? {
                    let Some(at) = VISITOR_DATA_FIELDS.iter().position(|f| *f == name) else {
                        return Err(refuse());
                    };
                    if fields[at].is_some() {
                        return Err(refuse());
                    }
                    fields[at] = Some(map.next_value::<Text>()?.0);
                }
                Ok(Fields(fields))
            }
        }
        d.deserialize_map(FieldsVisitor)
    }
}

fn invalid(detail: String) -> Rejection {
    Rejection::new(Reason::InvalidClaims, detail)
}

/// An optional NumericDate claim: an integer (no fraction, no exponent) within year 1..9999.
fn numeric_date(claim: Option<&Claim>, name: &str) -> Result<Option<i64>, Rejection> {
    let i = match claim {
        None => return Ok(None),
        Some(Claim::Int(i)) => *i,
        Some(Claim::Json(Value::Number(n))) => match n.as_i64() {
            Some(i) => i,
            None => {
                return Err(invalid(format!(
                    "{name} must be an integer NumericDate within years 1-9999, found {}",
                    excerpt(&n.to_string())
                )))
            }
        },
        Some(other) => {
            return Err(invalid(format!(
                "{name} must be an integer NumericDate, found {}",
                other.kind()
            )))
        }
    };
    if !(MIN_NUMERIC_DATE..=MAX_NUMERIC_DATE).contains(&i) {
        return Err(invalid(format!("{name} is outside years 1-9999 ({i})")));
    }
    Ok(Some(i))
}

/// Time rules. All values are bounded, so the arithmetic cannot overflow.
pub fn check_time(
    exp: i64,
    nbf: Option<i64>,
    iat: Option<i64>,
    now: i64,
    policy: &Policy,
) -> Result<(), Rejection> {
    let leeway = i64::from(policy.leeway_secs);
    let now = now.clamp(MIN_NUMERIC_DATE, MAX_NUMERIC_DATE);
    // RFC 7519 §4.1.4: valid only *before* exp; the leeway extends that.
    if now >= exp + leeway {
        return Err(Rejection::new(
            Reason::Expired,
            format!(
                "expired {}s ago (exp {exp}, now {now}, leeway {leeway}s)",
                now - exp
            ),
        ));
    }
    if let Some(nbf) = nbf {
        if nbf > now + leeway {
            return Err(Rejection::new(
                Reason::NotYetValid,
                format!("not valid before {nbf} (now {now}, leeway {leeway}s)"),
            ));
        }
    }
    if let Some(iat) = iat {
        if iat > now + leeway {
            return Err(Rejection::new(
                Reason::NotYetValid,
                format!("issued in the future (iat {iat}, now {now}, leeway {leeway}s)"),
            ));
        }
    }
    let max = i64::from(policy.max_lifetime_secs);
    if exp - now > max {
        return Err(Rejection::new(
            Reason::LifetimeTooLong,
            format!(
                "exp is {}s ahead; the policy allows at most {max}s",
                exp - now
            ),
        ));
    }
    Ok(())
}

pub fn check(claims: &Claims, now: i64, policy: &Policy) -> Result<Checked, Rejection> {
    // Types of the registered claims first: a wrongly typed claim is never "just expired".
    let exp = numeric_date(claims.exp.as_ref(), "exp")?
        .ok_or_else(|| invalid("exp is required".into()))?;
    let nbf = numeric_date(claims.nbf.as_ref(), "nbf")?;
    let iat = numeric_date(claims.iat.as_ref(), "iat")?;
    if let Some(iat) = iat {
        if exp <= iat {
            return Err(invalid(format!("exp ({exp}) is not after iat ({iat})")));
        }
    }
    if let Some(nbf) = nbf {
        if exp <= nbf {
            return Err(invalid(format!("exp ({exp}) is not after nbf ({nbf})")));
        }
    }
    check_time(exp, nbf, iat, now, policy)?;

    let mut warnings = Vec::new();
    let user_id = check_user_id(claims.user_id.as_ref())?;
    let visitor_data = match &claims.visitor_data {
        None => None,
        Some(VisitorClaim::Json(v)) => Some(check_visitor_data(v, &mut warnings)?),
        Some(VisitorClaim::Fields(fields)) => {
            let mut data = VisitorData::default();
            for (name, value) in VISITOR_DATA_FIELDS.into_iter().zip(fields) {
                if let Some(s) = value {
                    check_visitor_field(name, s, &mut warnings)?;
                    data.fields.push((name, s.to_string()));
                }
            }
            Some(data)
        }
    };
    if let Some(iat) = iat {
        if exp - iat > LONG_LIVED_SECS {
            warnings.push(format!(
                "the token lives {}s (exp - iat); iAdvize recommends about 60s",
                exp - iat
            ));
        }
    }
    if claims.has_aud {
        warnings.push(
            "the token has an aud claim, which iAdvize tokens do not use: not checked".into(),
        );
    }
    Ok(Checked {
        user_id,
        visitor_data,
        expires_at: exp,
        issued_at: iat,
        not_before: nbf,
        warnings,
    })
}

fn check_user_id(v: Option<&Claim>) -> Result<String, Rejection> {
    let bad = |d: String| Rejection::new(Reason::InvalidUserId, d);
    let s = match v {
        None => return Err(bad(format!("{USER_ID_CLAIM} is required"))),
        Some(c) => match c.as_str() {
            Some(s) => s,
            None => {
                return Err(bad(format!(
                    "{USER_ID_CLAIM} must be a string, found {}",
                    c.kind()
                )))
            }
        },
    };
    let chars = s.chars().count();
    if chars == 0 {
        return Err(bad(format!("{USER_ID_CLAIM} is empty")));
    }
    if chars > MAX_USER_ID_CHARS {
        return Err(bad(format!(
            "{USER_ID_CLAIM} has {chars} characters; at most {MAX_USER_ID_CHARS} allowed"
        )));
    }
    // The identity key must show as it is: one that cannot (bidi controls reordering it,
    // invisible characters, separators, stacked marks) could pass for another identity.
    if let Some(found) = describe_hazards(s) {
        return Err(bad(format!(
            "{USER_ID_CLAIM} contains {found}; received {}",
            shown_excerpt(s)
        ))
        .with_signed_user_id(s));
    }
    // Whitespace at an end draws nothing: `cust-48151623 ` would show as `cust-48151623`.
    if s.trim() != s {
        return Err(bad(format!(
            "{USER_ID_CLAIM} has leading or trailing whitespace; received {}",
            shown_excerpt(s)
        ))
        .with_signed_user_id(s));
    }
    Ok(s.to_owned())
}

/// How many code points a detail names per hazard class at most.
const MAX_NAMED_CODE_POINTS: usize = 8;

/// The hazard classes of `s` (`lockdesk_text::hazards`) for a message: each class described,
/// with its stable code and the code points found in `⟨U+XXXX⟩` form, e.g. `invisible or
/// zero-width characters (invisible: ⟨U+200B⟩)`. `None` when `s` has no hazard.
fn describe_hazards(s: &str) -> Option<String> {
    let found = lockdesk_text::hazards(s);
    if found.is_empty() {
        return None;
    }
    let parts: Vec<String> = found
        .iter()
        .map(|class| {
            let mut points: Vec<char> = Vec::new();
            for c in s.chars() {
                let hit = match class {
                    // A run depends on its neighbours: name the marks of the string.
                    Hazard::CombiningRun => lockdesk_text::is_combining_mark(c),
                    _ => lockdesk_text::hazard_of(c) == Some(class),
                };
                if hit && !points.contains(&c) {
                    points.push(c);
                }
            }
            let mut named: Vec<String> = points
                .iter()
                .take(MAX_NAMED_CODE_POINTS)
                .map(|c| lockdesk_text::marker(*c))
                .collect();
            if points.len() > MAX_NAMED_CODE_POINTS {
                named.push("…".into());
            }
            format!(
                "{} ({}: {})",
                class.describe(),
                class.code(),
                named.join(" ")
            )
        })
        .collect();
    Some(parts.join(", "))
}

/// `s` with its hazardous characters made visible, quoted and cut like [`excerpt`].
fn shown_excerpt(s: &str) -> String {
    excerpt(&lockdesk_text::visible(s))
}

fn check_visitor_data(v: &Value, warnings: &mut Vec<String>) -> Result<VisitorData, Rejection> {
    let bad = |d: String| Rejection::new(Reason::InvalidVisitorData, d);
    let Value::Object(m) = v else {
        return Err(bad(format!(
            "{VISITOR_DATA_CLAIM} must be an object, found {}",
            kind(v)
        )));
    };
    let mut data = VisitorData::default();
    for name in VISITOR_DATA_FIELDS {
        match m.get(name) {
            None => {}
            Some(Value::String(s)) => {
                check_visitor_field(name, s, warnings)?;
                data.fields.push((name, s.clone()));
            }
            Some(other) => {
                return Err(bad(format!(
                    "visitorData.{name} must be a string, found {}",
                    kind(other)
                )))
            }
        }
    }
    let mut extra_names = Vec::new();
    for (k, val) in m {
        if !VISITOR_DATA_FIELDS.contains(&k.as_str()) {
            data.extras.insert(k.clone(), val.clone());
            extra_names.push(excerpt(k));
        }
    }
    if !extra_names.is_empty() {
        warnings.push(format!(
            "visitorData has undocumented fields, shown unverified: {}",
            extra_names.join(", ")
        ));
    }
    Ok(data)
}

/// A documented visitorData field's string: bounded, its hazards named in a warning.
fn check_visitor_field(name: &str, s: &str, warnings: &mut Vec<String>) -> Result<(), Rejection> {
    if s.chars().count() > MAX_VISITOR_FIELD_CHARS {
        return Err(Rejection::new(
            Reason::InvalidVisitorData,
            format!("visitorData.{name} is longer than {MAX_VISITOR_FIELD_CHARS} characters"),
        ));
    }
    if let Some(found) = describe_hazards(s) {
        warnings.push(format!(
            "visitorData.{name} contains {found}: shown with visible markers as {}",
            shown_excerpt(s)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the verifier makes of a claims set: the JSON error, or the issuer as read before
    /// the signature and the outcome of the checks.
    fn show(read: Result<Claims, JsonError>) -> String {
        let claims = match read {
            Err(e) => return format!("{e:?}"),
            Ok(c) => c,
        };
        let iss = claims
            .iss
            .as_ref()
            .map(|c| c.as_str().map(str::to_owned).ok_or(c.kind()));
        let policy = Policy::default();
        let checked = match check(&claims, 1_800_000_000, &policy) {
            Err(r) => format!("{:?}: {} ({:?})", r.reason, r.detail, r.signed_user_id),
            Ok(c) => format!(
                "user {:?} visitor {:?} exp {} iat {:?} nbf {:?} warnings {:?}",
                c.user_id, c.visitor_data, c.expires_at, c.issued_at, c.not_before, c.warnings
            ),
        };
        format!("iss {iss:?}; {checked}")
    }

    /// The claims read as the verifier reads them (typed, the whole reading for anything else)
    /// and read whole (the reference) give the same answers.
    #[test]
    fn the_typed_claims_reading_agrees_with_the_whole_reading() {
        const U: &str = USER_ID_CLAIM;
        const V: &str = VISITOR_DATA_CLAIM;
        let cases: Vec<String> = vec![
            format!(r#"{{"{U}":"u1","iss":"https://b","exp":1800000060}}"#),
            format!(
                r#"{{"{U}":"u1","{V}":{{"firstName":"Ada","email":"ada@example.com"}},"iss":"https://b","exp":1800000060,"iat":1800000000,"nbf":1799999990}}"#
            ),
            format!(r#"{{"{U}":"u1","{V}":{{}},"iss":"i","exp":1800000060}}"#),
            format!(r#" {{ "exp" : 1800000060 , "iss" : "i" , "{U}" : "\u0075\u00e9" }} "#),
            format!(r#"{{"{U}":"u1","iss":"i","exp":1800000060,"iat":1799999000}}"#),
            format!(r#"{{"{U}":"u1","iss":"i","exp":1800000060,"aud":"x"}}"#),
            format!(r#"{{"{U}":"u1","iss":"i","exp":1800000060,"sub":"s"}}"#),
            format!(r#"{{"{U}":"u1","iss":"i","exp":1800000060,"x":{{"a":1,"a":2}}}}"#),
            format!(r#"{{"{U}":"u1","iss":"i","exp":1800000060,"exp":1800000060}}"#),
            format!(r#"{{"{U}":"u1","iss":"i","\u0065xp":1800000060,"exp":1}}"#),
            format!(r#"{{"{U}":"u1","{U}":"u2","iss":"i","exp":1800000060}}"#),
            format!(r#"{{"{U}":"u1","iss":"i","iss":"j","exp":1800000060}}"#),
            format!(r#"{{"{U}":"u1","{V}":{{}},"{V}":{{}},"iss":"i","exp":1800000060}}"#),
            format!(
                r#"{{"{U}":"u1","{V}":{{"email":"a","email":"b"}},"iss":"i","exp":1800000060}}"#
            ),
            format!(
                r#"{{"{U}":"u1","{V}":{{"email":"a","plan":"gold"}},"iss":"i","exp":1800000060}}"#
            ),
            format!(r#"{{"{U}":"u1","{V}":{{"email":1}},"iss":"i","exp":1800000060}}"#),
            format!(
                r#"{{"{U}":"u1","{V}":{{"email":"a","x":{{"k":1,"k":1}}}},"iss":"i","exp":1800000060}}"#
            ),
            format!(r#"{{"{U}":"u1","{V}":"text","iss":"i","exp":1800000060}}"#),
            format!(r#"{{"{U}":"u1","{V}":null,"iss":"i","exp":1800000060}}"#),
            format!(
                r#"{{"{U}":"u1","{V}":{{"city":"a\u202eb","email":"{}"}},"iss":"i","exp":1800000060}}"#,
                "e".repeat(1025)
            ),
            format!(r#"{{"{U}":"u1","{V}":{{"city":"a\u200bb"}},"iss":"i","exp":1800000060}}"#),
            format!(r#"{{"{U}":"u1","iss":"i","exp":1800000060.0}}"#),
            format!(r#"{{"{U}":"u1","iss":"i","exp":18000000e2}}"#),
            format!(r#"{{"{U}":"u1","iss":"i","exp":-0}}"#),
            format!(r#"{{"{U}":"u1","iss":"i","exp":9223372036854775807}}"#),
            format!(r#"{{"{U}":"u1","iss":"i","exp":9223372036854775808}}"#),
            format!(r#"{{"{U}":"u1","iss":"i","exp":-9223372036854775808}}"#),
            format!(r#"{{"{U}":"u1","iss":"i","exp":-9223372036854775809}}"#),
            format!(r#"{{"{U}":"u1","iss":"i","exp":253402300800}}"#),
            format!(r#"{{"{U}":"u1","iss":"i","exp":"1800000060"}}"#),
            format!(r#"{{"{U}":"u1","iss":"i","exp":1800000060,"nbf":true}}"#),
            format!(r#"{{"{U}":"u1","iss":"i","exp":1800000060,"iat":1800000061}}"#),
            format!(r#"{{"{U}":"u1","iss":"i","exp":1800000060,"nbf":1800000060}}"#),
            format!(r#"{{"{U}":"u1","iss":"i","exp":1700000000}}"#),
            format!(r#"{{"{U}":"u1","iss":"i","exp":1900000000}}"#),
            format!(r#"{{"{U}":"u1","iss":"i","exp":1800000060,"nbf":1800000600}}"#),
            format!(r#"{{"{U}":"u1","iss":5,"exp":1800000060}}"#),
            format!(r#"{{"{U}":"u1","iss":null,"exp":1800000060}}"#),
            format!(r#"{{"{U}":"u1","exp":1800000060}}"#),
            format!(r#"{{"{U}":"u1","iss":"i"}}"#),
            format!(r#"{{"{U}":7,"iss":"i","exp":1800000060}}"#),
            format!(r#"{{"{U}":"","iss":"i","exp":1800000060}}"#),
            format!(r#"{{"{U}":" u1","iss":"i","exp":1800000060}}"#),
            format!(r#"{{"{U}":"u\u202e1","iss":"i","exp":1800000060}}"#),
            format!(
                r#"{{"{U}":"{}","iss":"i","exp":1800000060}}"#,
                "u".repeat(256)
            ),
            format!(r#"{{"iss":"i","exp":1800000060}}"#),
            format!(r#"{{"{U}":"u1","iss":"i","exp":1800000060}} x"#),
            format!(r#"{{"{U}":"u1","iss":"i","exp":1800000060,}}"#),
            format!(r#"{{"{U}":"u1","iss":"\ud800","exp":1800000060}}"#),
            format!(r#"[{{"{U}":"u1"}}]"#),
            "{}".into(),
            "".into(),
            "\u{feff}{}".into(),
            "null".into(),
        ];
        let mut typed = 0;
        for text in &cases {
            let bytes = text.as_bytes();
            let mut de = serde_json::Deserializer::from_slice(bytes);
            if Typed::deserialize(&mut de).is_ok() && de.end().is_ok() {
                typed += 1;
            }
            assert_eq!(show(read(bytes)), show(read_in_full(bytes)), "{text}");
        }
        // Invalid UTF-8 inside a string, both ways.
        let raw =
            format!(r#"{{"{U}":"u\xff","iss":"i","exp":1800000060}}"#).replace("\\xff", "\u{1}");
        let mut bytes = raw.into_bytes();
        let at = bytes.iter().position(|&b| b == 1).unwrap();
        bytes[at] = 0xff;
        assert_eq!(show(read(&bytes)), show(read_in_full(&bytes)));
        // The common shapes are taken by the typed reading itself, borrowing their strings.
        assert!(typed >= 20, "the typed reading took {typed} of the cases");
        let c = read(cases[1].as_bytes()).expect("claims");
        assert!(matches!(
            c.iss,
            Some(Claim::Str(Cow::Borrowed("https://b")))
        ));
        assert!(matches!(c.visitor_data, Some(VisitorClaim::Fields(_))));
        let c = read(cases[14].as_bytes()).expect("claims");
        assert!(matches!(c.visitor_data, Some(VisitorClaim::Json(_))));
    }
}
