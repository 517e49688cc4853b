//! Claims after a good signature: every type confusion, time at and beyond the leeway, absurd
//! numbers, the two iAdvize claims.

use serde_json::{json, Value};

use super::*;

/// Signed-only tokens are enough here (the JWE layer is covered elsewhere) and 4x cheaper.
fn check_claim(label: &str, name: &str, value: Option<Value>, expect: Expect) {
    check(label, &jws(&claims_with(name, value)), expect);
}

/// Raw claims text, for values serde_json would not produce (1e300, 1.0, huge integers).
fn check_raw(label: &str, payload: &str, expect: Expect) {
    check(label, &jws_raw(JWS_HEADER, payload), expect);
}

fn raw_with_exp(exp: &str) -> String {
    format!(r#"{{"{USER_ID}":"u","iss":"{ISSUER}","exp":{exp}}}"#)
}

#[test]
fn iss_type_confusion_and_trust() {
    use Reason::*;
    for (v, reason) in [
        (None, InvalidClaims),
        (Some(json!(null)), InvalidClaims),
        (Some(json!(42)), InvalidClaims),
        (Some(json!([ISSUER])), InvalidClaims),
        (Some(json!({"iss": ISSUER})), InvalidClaims),
        (Some(json!(true)), InvalidClaims),
        (Some(json!("https://evil.example")), UntrustedIssuer),
        (Some(json!("https://test.iadvize.com ")), UntrustedIssuer),
        (Some(json!("HTTPS://TEST.IADVIZE.COM")), UntrustedIssuer),
        (Some(json!("https://test.iadvize.com/")), UntrustedIssuer),
        (Some(json!("")), UntrustedIssuer),
    ] {
        check_claim(&format!("iss {v:?}"), "iss", v, Rejected(reason));
    }
}

#[test]
fn exp_type_confusion_and_absurd_numbers() {
    use Reason::*;
    for (v, reason) in [
        (None, InvalidClaims),
        (Some(json!(null)), InvalidClaims),
        (Some(json!((NOW + 60).to_string())), InvalidClaims),
        (Some(json!([NOW + 60])), InvalidClaims),
        (Some(json!({"$date": NOW + 60})), InvalidClaims),
        (Some(json!(true)), InvalidClaims),
        (Some(json!(NOW as f64 + 60.5)), InvalidClaims),
        (Some(json!(u64::MAX)), InvalidClaims),
        (Some(json!(i64::MIN)), InvalidClaims),
        (Some(json!(253_402_300_800_i64)), InvalidClaims),
        (Some(json!(-1)), Expired),
        (Some(json!(0)), Expired),
    ] {
        check_claim(&format!("exp {v:?}"), "exp", v, Rejected(reason));
    }
    // Numbers serde_json would never write.
    for (exp, reason) in [
        ("1e300", InvalidClaims), // josekit's validator panics on this
        ("-1e300", InvalidClaims),
        ("1.8e9", InvalidClaims),
        ("1800000060.0", InvalidClaims),
        ("18446744073709551616", InvalidClaims),
        ("-9223372036854775809", InvalidClaims),
        ("1e400", Malformed), // out of f64 range: not JSON we accept
        ("NaN", Malformed),
        ("Infinity", Malformed),
        ("0x6b49d200", Malformed),
        ("01800000060", Malformed),
    ] {
        check_raw(&format!("exp {exp}"), &raw_with_exp(exp), Rejected(reason));
    }
    let huge = "9".repeat(5000);
    check_raw(
        "exp with 5000 digits",
        &raw_with_exp(&huge),
        Rejected(Malformed),
    );
    check_raw(
        "plain integer",
        &raw_with_exp(&(NOW + 60).to_string()),
        Verified,
    );
}

#[test]
fn nbf_and_iat_type_confusion() {
    use Reason::*;
    for name in ["nbf", "iat"] {
        for v in [
            json!(null),
            json!("1"),
            json!(1.5),
            json!([1]),
            json!(false),
            json!(1e300),
        ] {
            check_claim(
                &format!("{name} {v}"),
                name,
                Some(v),
                Rejected(InvalidClaims),
            );
        }
        check_claim(&format!("{name} now"), name, Some(json!(NOW)), Verified);
    }
    // exp not after iat / nbf.
    let mut c = good_claims();
    c["iat"] = json!(NOW + 60);
    check("exp == iat", &jws(&c), Rejected(InvalidClaims));
    let mut c = good_claims();
    c["nbf"] = json!(NOW + 61);
    c["exp"] = json!(NOW + 61);
    check("exp == nbf", &jws(&c), Rejected(InvalidClaims));
}

#[test]
fn time_claims_at_and_beyond_the_leeway() {
    use Reason::*;
    let leeway = 60;
    let mut cases: Vec<(String, &str, i64, Expect)> = [
        // RFC 7519: valid strictly before exp; the leeway extends that by 60 s.
        ("exp: now - leeway + 1", NOW - leeway + 1, Verified),
        ("exp: now - leeway", NOW - leeway, Rejected(Expired)),
        ("exp: long ago", NOW - 86_400, Rejected(Expired)),
        ("exp: now", NOW, Verified),
        ("exp: now + max lifetime", NOW + 3600, Verified),
        (
            "exp: now + max lifetime + 1",
            NOW + 3601,
            Rejected(LifetimeTooLong),
        ),
        ("exp: year 9999", 253_402_300_799, Rejected(LifetimeTooLong)),
    ]
    .into_iter()
    .map(|(label, value, expect)| (label.to_owned(), "exp", value, expect))
    .collect();
    // nbf and iat: both may be up to the leeway in the future, never more.
    for (name, past) in [("nbf", NOW - 1000), ("iat", NOW - 30)] {
        cases.extend([
            (
                format!("{name}: now + leeway"),
                name,
                NOW + leeway,
                Verified,
            ),
            (
                format!("{name}: now + leeway + 1"),
                name,
                NOW + leeway + 1,
                Rejected(NotYetValid),
            ),
            (format!("{name}: past"), name, past, Verified),
        ]);
    }
    for (label, name, value, expect) in cases {
        let mut c = good_claims();
        c[name] = json!(value);
        if name != "exp" {
            c["exp"] = json!(NOW + leeway + 10);
        }
        check(&label, &jws(&c), expect);
    }
    // A zero leeway and a shorter lifetime, as configured.
    let strict = verifier(lockdesk_verify::Policy {
        leeway_secs: 0,
        max_lifetime_secs: 120,
        ..Default::default()
    });
    check_with(
        &strict,
        "leeway 0: exp now",
        &jws(&claims_with("exp", Some(json!(NOW)))),
        Rejected(Expired),
    );
    check_with(
        &strict,
        "leeway 0: exp now + 1",
        &jws(&claims_with("exp", Some(json!(NOW + 1)))),
        Verified,
    );
    check_with(
        &strict,
        "max 120: exp now + 121",
        &jws(&claims_with("exp", Some(json!(NOW + 121)))),
        Rejected(LifetimeTooLong),
    );
    // A long-lived (but allowed) token with iat gets a warning, not a rejection.
    let mut c = good_claims();
    c["iat"] = json!(NOW - 10);
    c["exp"] = json!(NOW + 3000);
    let v = check_verified("long-lived", &jws(&c));
    assert!(
        v.warnings
            .iter()
            .any(|w| w.contains("recommends about 60s")),
        "{:?}",
        v.warnings
    );
    assert_eq!(v.issued_at, Some(NOW - 10));
}

#[test]
fn user_id_rules() {
    use Reason::*;
    let cases: Vec<(&str, Option<Value>, Expect)> = vec![
        ("missing", None, Rejected(InvalidUserId)),
        ("null", Some(json!(null)), Rejected(InvalidUserId)),
        ("number", Some(json!(42)), Rejected(InvalidUserId)),
        ("array", Some(json!(["u"])), Rejected(InvalidUserId)),
        ("object", Some(json!({"id": "u"})), Rejected(InvalidUserId)),
        ("bool", Some(json!(true)), Rejected(InvalidUserId)),
        ("empty", Some(json!("")), Rejected(InvalidUserId)),
        (
            "256 chars",
            Some(json!("u".repeat(256))),
            Rejected(InvalidUserId),
        ),
        ("255 chars", Some(json!("u".repeat(255))), Verified),
        ("255 two-byte chars", Some(json!("é".repeat(255))), Verified),
        (
            "256 two-byte chars",
            Some(json!("é".repeat(256))),
            Rejected(InvalidUserId),
        ),
        ("NUL", Some(json!("u\u{0}1")), Rejected(InvalidUserId)),
        ("newline", Some(json!("u\n1")), Rejected(InvalidUserId)),
        (
            "escape",
            Some(json!("u\u{1b}[31m")),
            Rejected(InvalidUserId),
        ),
        ("DEL", Some(json!("u\u{7f}")), Rejected(InvalidUserId)),
        (
            "C1 control",
            Some(json!("u\u{85}")),
            Rejected(InvalidUserId),
        ),
        ("unicode", Some(json!("用户-42")), Verified),
    ];
    for (label, v, expect) in cases {
        check_claim(&format!("userId {label}"), USER_ID, v, expect);
    }
    // Whitespace at an end draws nothing, so `cust-48151623 ` would show as `cust-48151623`:
    // refused like the other hazards (it was only a warning, which nothing showed), the signed
    // id handed back so the desk can name the identity it would pass for. Inside, it is kept.
    for id in [
        " u ",
        "cust-48151623 ",
        " cust-48151623",
        "cust-48151623\u{A0}",
        "\u{3000}u",
    ] {
        let Verdict::Rejected(r) = check(
            &format!("{id:?}"),
            &jws(&claims_with(USER_ID, Some(json!(id)))),
            Rejected(InvalidUserId),
        ) else {
            unreachable!()
        };
        assert!(
            r.detail.contains("leading or trailing whitespace"),
            "{id:?}: {}",
            r.detail
        );
        assert_eq!(r.signed_user_id.as_deref(), Some(id));
    }
    let v = check_verified(
        "inner space",
        &jws(&claims_with(USER_ID, Some(json!("cust 1")))),
    );
    assert_eq!(v.user_id, "cust 1");
    assert_no_warning(&v, |w| w.contains("userId"));
}

/// Issue 12: a userId that cannot be shown as it is could pass for another identity in the
/// list (`cust-4815⟨ZWSP⟩1623` looks exactly like `cust-48151623`). Every hazard class is
/// refused as `invalid_user_id`, the detail naming the class and the code points.
#[test]
fn user_id_hazards_are_refused_naming_class_and_code_points() {
    let combining5 = format!("cust-e{}", "\u{301}".repeat(5));
    let cases: Vec<(&str, String, &str, &[&str])> = vec![
        (
            "zero-width space",
            "cust-4815\u{200B}1623".into(),
            "invisible",
            &["⟨U+200B⟩"],
        ),
        (
            "right-to-left override",
            "cust-\u{202E}32615184".into(),
            "bidi_control",
            &["⟨U+202E⟩"],
        ),
        (
            "empty isolate",
            "cust-48151623\u{2066}\u{2069}".into(),
            "bidi_control",
            &["⟨U+2066⟩", "⟨U+2069⟩"],
        ),
        (
            "left-to-right mark",
            "cust-\u{200E}1".into(),
            "bidi_control",
            &["⟨U+200E⟩"],
        ),
        (
            "arabic letter mark",
            "cust-\u{61C}1".into(),
            "bidi_control",
            &["⟨U+061C⟩"],
        ),
        (
            "word joiner",
            "cust-\u{2060}1".into(),
            "invisible",
            &["⟨U+2060⟩"],
        ),
        (
            "byte order mark",
            "\u{FEFF}cust-1".into(),
            "invisible",
            &["⟨U+FEFF⟩"],
        ),
        (
            "soft hyphen",
            "cust\u{AD}-1".into(),
            "invisible",
            &["⟨U+00AD⟩"],
        ),
        (
            "tag character",
            "cust-1\u{E0041}".into(),
            "invisible",
            &["⟨U+E0041⟩"],
        ),
        (
            "hangul filler",
            "cust-\u{3164}1".into(),
            "invisible",
            &["⟨U+3164⟩"],
        ),
        (
            "braille blank",
            "cust-\u{2800}1".into(),
            "invisible",
            &["⟨U+2800⟩"],
        ),
        (
            "line separator",
            "cust-\u{2028}1".into(),
            "line_separator",
            &["⟨U+2028⟩"],
        ),
        (
            "paragraph separator",
            "cust-1\u{2029}".into(),
            "line_separator",
            &["⟨U+2029⟩"],
        ),
        (
            "five combining marks",
            combining5,
            "combining_run",
            &["⟨U+0301⟩"],
        ),
        ("NUL", "u\u{0}1".into(), "control", &["⟨U+0000⟩"]),
        ("escape", "u\u{1b}[31m".into(), "control", &["⟨U+001B⟩"]),
        ("C1 NEL", "u\u{85}".into(), "control", &["⟨U+0085⟩"]),
    ];
    for (label, user_id, class, points) in cases {
        let verdict = check(
            &format!("userId {label}"),
            &jws(&claims_with(USER_ID, Some(json!(user_id)))),
            Rejected(Reason::InvalidUserId),
        );
        let Verdict::Rejected(r) = verdict else {
            unreachable!()
        };
        assert!(
            r.detail.contains(&format!("({class}: ")),
            "{label}: {}",
            r.detail
        );
        for p in points {
            assert!(r.detail.contains(p), "{label}: {p} not in {}", r.detail);
        }
        // The desk gets the signed userId to compare with the identities it knows.
        assert_eq!(
            r.signed_user_id.as_deref(),
            Some(user_id.as_str()),
            "{label}"
        );
        // The detail itself shows no hazardous character.
        assert!(
            lockdesk_text::hazards(&r.detail).is_empty(),
            "{label}: {:?}",
            r.detail
        );
    }
    // The limits of each class: what is not a hazard still verifies.
    for (label, user_id) in [
        (
            "four combining marks",
            format!("cust-e{}", "\u{301}".repeat(4)),
        ),
        ("han", "用户-42".into()),
        // A look-alike letter is not a hazard of the string itself: the desk compares it with
        // the identities it knows (lookalike_user_id).
        ("cyrillic es", "\u{441}ust-48151623".into()),
        ("non-breaking space", "cust\u{A0}1".into()),
    ] {
        check(
            &format!("userId {label}"),
            &jws(&claims_with(USER_ID, Some(json!(user_id)))),
            Verified,
        );
    }
}

/// Signed names and the other documented visitorData strings with a hazard are kept as signed
/// and verified, with a warning naming the field and the class.
#[test]
fn visitor_data_hazards_are_kept_with_a_warning() {
    for (label, field, value, class, point) in [
        (
            "bidi in firstName",
            "firstName",
            "Ada\u{202E}ecalevol",
            "bidi_control",
            "⟨U+202E⟩",
        ),
        (
            "zero-width in lastName",
            "lastName",
            "Love\u{200B}lace",
            "invisible",
            "⟨U+200B⟩",
        ),
        (
            "separator in city",
            "city",
            "Nantes\u{2028}Paris",
            "line_separator",
            "⟨U+2028⟩",
        ),
        (
            "control in email",
            "email",
            "a\u{7}@example.com",
            "control",
            "⟨U+0007⟩",
        ),
        (
            "marks in address",
            "address",
            "e\u{301}\u{301}\u{301}\u{301}\u{301}",
            "combining_run",
            "⟨U+0301⟩",
        ),
    ] {
        let vd = json!({ field: value });
        let Verdict::Verified(v) =
            check(label, &jws(&claims_with(VISITOR_DATA, Some(vd))), Verified)
        else {
            unreachable!()
        };
        assert_eq!(
            v.visitor_data.as_ref().unwrap().get(field),
            Some(value),
            "{label}"
        );
        let w = v
            .warnings
            .iter()
            .find(|w| w.starts_with(&format!("visitorData.{field} contains")))
            .unwrap_or_else(|| panic!("{label}: no warning in {:?}", v.warnings));
        assert!(
            w.contains(&format!("({class}: ")) && w.contains(point),
            "{label}: {w}"
        );
        assert!(lockdesk_text::hazards(w).is_empty(), "{label}: {w:?}");
    }
    // A clean profile gets no such warning.
    let v = check_verified("clean", &jws(&good_claims()));
    assert_no_warning(&v, |w| w.starts_with("visitorData."));
}

#[test]
fn visitor_data_rules() {
    use Reason::*;
    for (label, v) in [
        ("string", json!("Ada")),
        ("null", json!(null)),
        ("array", json!([{"firstName": "Ada"}])),
        ("number", json!(1)),
        ("bool", json!(false)),
        ("firstName number", json!({"firstName": 1})),
        ("email null", json!({"email": null})),
        ("country object", json!({"country": {"code": "FR"}})),
        ("phoneNumber array", json!({"phoneNumber": ["+33"]})),
        ("zipCode number", json!({"zipCode": 44000})),
        ("address too long", json!({"address": "x".repeat(1025)})),
    ] {
        check_claim(
            &format!("visitorData {label}"),
            VISITOR_DATA,
            Some(v),
            Rejected(InvalidVisitorData),
        );
    }
    check_claim("visitorData absent", VISITOR_DATA, None, Verified);
    check_claim("visitorData empty", VISITOR_DATA, Some(json!({})), Verified);
    // Unknown fields are kept, reported as unverified extras, and do not fail the token.
    let vd = json!({"firstName": "Ada", "loyalty": {"tier": "gold"}, "isAdmin": true});
    let v = check_verified("extras", &jws(&claims_with(VISITOR_DATA, Some(vd))));
    let data = v.visitor_data.as_ref().unwrap();
    assert_eq!(data.fields, vec![("firstName", "Ada".to_owned())]);
    assert_eq!(data.extras.len(), 2);
    assert_eq!(data.extras["isAdmin"], json!(true));
    assert!(
        v.warnings
            .iter()
            .any(|w| w.contains("\"isAdmin\"") && w.contains("unverified")),
        "{:?}",
        v.warnings
    );
    let j = v.to_json();
    assert_eq!(j["visitorData"]["loyalty"]["tier"], "gold");
}

#[test]
fn other_claims_are_allowed_but_not_required() {
    let mut c = good_claims();
    c["sub"] = json!(12);
    c["jti"] = json!(["x"]);
    c["https://iadvize.com/other"] = json!({"a": 1});
    check("extra claims", &jws(&c), Verified);
    let mut c = good_claims();
    c["aud"] = json!("someone");
    let v = check_verified("aud", &jws(&c));
    assert!(v.warnings.iter().any(|w| w.contains("aud")));
    // Claims that are not an object at all.
    for payload in ["[]", "\"claims\"", "42", "null", "", "{"] {
        check(
            &format!("claims {payload:?}"),
            &jws_raw(JWS_HEADER, payload),
            Rejected(Reason::Malformed),
        );
    }
}
