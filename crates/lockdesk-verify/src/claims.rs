//! The claims of a token whose signature has been verified: types, time, and the two iAdvize
//! claims. Only `iss`, `exp` and the user id are required.

use lockdesk_text::Hazard;
use serde_json::{Map, Value};

use crate::json::{excerpt, kind};
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

fn invalid(detail: String) -> Rejection {
    Rejection::new(Reason::InvalidClaims, detail)
}

/// An optional NumericDate claim: an integer (no fraction, no exponent) within year 1..9999.
fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<i64>, Rejection> {
    let Some(v) = claims.get(name) else {
        return Ok(None);
    };
    let Value::Number(n) = v else {
        return Err(invalid(format!(
            "{name} must be an integer NumericDate, found {}",
            kind(v)
        )));
    };
    let Some(i) = n.as_i64() else {
        return Err(invalid(format!(
            "{name} must be an integer NumericDate within years 1-9999, found {}",
            excerpt(&n.to_string())
        )));
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

pub fn check(claims: &Map<String, Value>, now: i64, policy: &Policy) -> Result<Checked, Rejection> {
    // Types of the registered claims first: a wrongly typed claim is never "just expired".
    let exp = numeric_date(claims, "exp")?.ok_or_else(|| invalid("exp is required".into()))?;
    let nbf = numeric_date(claims, "nbf")?;
    let iat = numeric_date(claims, "iat")?;
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
    let user_id = check_user_id(claims.get(USER_ID_CLAIM))?;
    let visitor_data = match claims.get(VISITOR_DATA_CLAIM) {
        None => None,
        Some(v) => Some(check_visitor_data(v, &mut warnings)?),
    };
    if let Some(iat) = iat {
        if exp - iat > LONG_LIVED_SECS {
            warnings.push(format!(
                "the token lives {}s (exp - iat); iAdvize recommends about 60s",
                exp - iat
            ));
        }
    }
    if claims.contains_key("aud") {
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

fn check_user_id(v: Option<&Value>) -> Result<String, Rejection> {
    let bad = |d: String| Rejection::new(Reason::InvalidUserId, d);
    let s = match v {
        None => return Err(bad(format!("{USER_ID_CLAIM} is required"))),
        Some(Value::String(s)) => s,
        Some(other) => {
            return Err(bad(format!(
                "{USER_ID_CLAIM} must be a string, found {}",
                kind(other)
            )))
        }
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
        .with_signed_user_id(s.clone()));
    }
    // Whitespace at an end draws nothing: `cust-48151623 ` would show as `cust-48151623`.
    if s.trim() != s {
        return Err(bad(format!(
            "{USER_ID_CLAIM} has leading or trailing whitespace; received {}",
            shown_excerpt(s)
        ))
        .with_signed_user_id(s.clone()));
    }
    Ok(s.clone())
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
                if s.chars().count() > MAX_VISITOR_FIELD_CHARS {
                    return Err(bad(format!(
                        "visitorData.{name} is longer than {MAX_VISITOR_FIELD_CHARS} characters"
                    )));
                }
                if let Some(found) = describe_hazards(s) {
                    warnings.push(format!(
                        "visitorData.{name} contains {found}: shown with visible markers as {}",
                        shown_excerpt(s)
                    ));
                }
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
