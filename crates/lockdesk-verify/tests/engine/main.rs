//! The engine as its callers see it: one integration-test binary, data-driven.
//!
//! Every case goes through [`check`] (token → expected verdict) so a change of pipeline touches one
//! function. Keys are committed test-only keys (tests/data), loaded once.

mod attacks;
mod claims;
mod keys;
mod vectors;

use std::path::PathBuf;
use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use lockdesk_verify::mint::{self, Recipient, SigningKey};
use lockdesk_verify::{
    parse_decryption_keys, parse_public_keys, DecryptionKey, Policy, PublicKey, Reason, TrustStore,
    Verdict, Verifier,
};
use serde_json::{json, Value};

/// The fixed "now" of every case (2027-01-15).
pub const NOW: i64 = 1_800_000_000;
pub const ISSUER: &str = "https://test.iadvize.com";
pub const USER_ID: &str = "https://iadvize.com/userId";
pub const VISITOR_DATA: &str = "https://iadvize.com/visitorData";
pub const JWE_HEADER: &str = r#"{"alg":"RSA-OAEP-256","enc":"A256GCM","cty":"JWT"}"#;
pub const JWS_HEADER: &str = r#"{"alg":"RS256"}"#;

pub fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// `../shared/vectors` beside the repository.
pub fn vectors(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/vectors")
        .join(name)
}

pub fn read(name: &str) -> Vec<u8> {
    std::fs::read(data(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

pub struct Keys {
    pub brand: SigningKey,
    pub brand_pub: PublicKey,
    pub brand2: SigningKey,
    pub brand4096: SigningKey,
    pub desk: DecryptionKey,
    pub desk2: DecryptionKey,
    pub desk4096: DecryptionKey,
    pub to_desk: Recipient,
    pub to_desk2: Recipient,
    pub to_desk4096: Recipient,
}

pub fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let dk = |n: &str| parse_decryption_keys(&read(n)).unwrap().remove(0);
        let desk = dk("desk.key.pkcs1.pem");
        let desk2 = dk("desk2.key.pem");
        let desk4096 = dk("desk4096.key.pem");
        Keys {
            brand: SigningKey::from_pem(&read("brand.key.pem")).unwrap(),
            brand_pub: parse_public_keys(&read("brand.pub.pem")).unwrap().remove(0),
            brand2: SigningKey::from_pem(&read("brand2.key.pem")).unwrap(),
            brand4096: SigningKey::from_pem(&read("brand4096.key.pem")).unwrap(),
            to_desk: Recipient::new(desk.public_key()).unwrap(),
            to_desk2: Recipient::new(desk2.public_key()).unwrap(),
            to_desk4096: Recipient::new(desk4096.public_key()).unwrap(),
            desk,
            desk2,
            desk4096,
        }
    })
}

/// Trust: ISSUER → brand key; decryption: desk key; no cache (every case takes the full path).
pub fn verifier(policy: Policy) -> Verifier {
    Verifier::new(brand_trust(), vec![keys().desk.clone()], policy).without_cache()
}

/// A trust store with the brand's (2048-bit) key for [`ISSUER`].
pub fn brand_trust() -> TrustStore {
    let mut trust = TrustStore::new();
    trust.add(ISSUER, vec![keys().brand_pub.clone()]).unwrap();
    trust
}

/// A verifier (with its cache) trusting the brand, holding both desk keys (a rotation).
pub fn both_desk_keys() -> Verifier {
    let k = keys();
    Verifier::new(
        brand_trust(),
        vec![k.desk.clone(), k.desk2.clone()],
        Policy::default(),
    )
}

pub fn default_verifier() -> &'static Verifier {
    static V: OnceLock<Verifier> = OnceLock::new();
    V.get_or_init(|| verifier(Policy::default()))
}

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn unb64(s: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(s).unwrap()
}

/// Claims that verify at NOW.
pub fn good_claims() -> Value {
    json!({
        USER_ID: "user-42",
        VISITOR_DATA: {"firstName": "Ada", "lastName": "Lovelace", "email": "ada@example.com"},
        "iss": ISSUER,
        "exp": NOW + 60,
    })
}

/// Claims with `name` set to `value` (or removed when `value` is None).
pub fn claims_with(name: &str, value: Option<Value>) -> Value {
    let mut c = good_claims();
    let m = c.as_object_mut().unwrap();
    match value {
        Some(v) => {
            m.insert(name.into(), v);
        }
        None => {
            m.remove(name);
        }
    }
    c
}

/// A JWS over the raw payload text with `header` verbatim, signed by the brand.
pub fn jws_raw(header: &str, payload: &str) -> String {
    mint::sign_with_header(header, payload.as_bytes(), &keys().brand).unwrap()
}

pub fn jws(claims: &Value) -> String {
    jws_raw(JWS_HEADER, &claims.to_string())
}

/// A JWE with `header` verbatim around `plaintext`, encrypted to the desk.
pub fn jwe_raw(header: &str, plaintext: &str) -> String {
    mint::encrypt_with_header(header, plaintext.as_bytes(), &keys().to_desk).unwrap()
}

/// The iAdvize format around `claims`.
pub fn nested(claims: &Value) -> String {
    jwe_raw(JWE_HEADER, &jws(claims))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    Verified,
    Rejected(Reason),
}

/// The one assertion of this suite: `token` gets `expect` from `v` at NOW, and a rejection never
/// comes from the panic backstop.
#[track_caller]
pub fn check_with(v: &Verifier, label: &str, token: &str, expect: Expect) -> Verdict {
    let verdict = v.verify(token.as_bytes(), NOW);
    let got = match &verdict {
        Verdict::Verified(_) => Expect::Verified,
        Verdict::Rejected(r) => {
            assert!(
                !r.detail.contains("internal error"),
                "{label}: the panic backstop fired: {}",
                r.detail
            );
            Expect::Rejected(r.reason)
        }
    };
    assert_eq!(got, expect, "{label}: {verdict:?}");
    verdict
}

#[track_caller]
pub fn check(label: &str, token: &str, expect: Expect) -> Verdict {
    check_with(default_verifier(), label, token, expect)
}

/// [`check`] of a token that must verify; returns what it verified.
#[track_caller]
pub fn check_verified(label: &str, token: &str) -> lockdesk_verify::Verified {
    let Verdict::Verified(v) = check(label, token, Expect::Verified) else {
        unreachable!("{label}: check let a verdict other than Verified through")
    };
    v
}

/// Asserts that no warning of `v` is one that `unwanted` picks, listing the warnings if one is.
#[track_caller]
pub fn assert_no_warning(v: &lockdesk_verify::Verified, unwanted: impl Fn(&str) -> bool) {
    assert!(!v.warnings.iter().any(|w| unwanted(w)), "{:?}", v.warnings);
}

/// Asserts only that `token` is not verified and did not panic; returns the reason.
#[track_caller]
pub fn check_not_verified(v: &Verifier, label: &str, token: &[u8]) -> Reason {
    match v.verify(token, NOW) {
        Verdict::Verified(ok) => panic!("{label}: verified: {ok:?}"),
        Verdict::Rejected(r) => {
            assert!(
                !r.detail.contains("internal error"),
                "{label}: the panic backstop fired"
            );
            r.reason
        }
    }
}

use Expect::{Rejected, Verified};

#[test]
fn the_iadvize_format_verifies_with_everything_reported() {
    let k = keys();
    let verdict = check("nested", &nested(&good_claims()), Verified);
    let Verdict::Verified(v) = verdict else {
        unreachable!()
    };
    assert_eq!(v.user_id, "user-42");
    assert_eq!(v.issuer, ISSUER);
    assert_eq!(v.expires_at, NOW + 60);
    assert_eq!(v.issued_at, None);
    assert_eq!(v.format, lockdesk_verify::Format::Jwe);
    assert_eq!(v.signing_key, k.brand_pub.thumbprint());
    assert_eq!(v.decryption_key.as_deref(), Some(k.desk.thumbprint()));
    let vd = v.visitor_data.as_ref().unwrap();
    assert_eq!(vd.get("firstName"), Some("Ada"));
    assert_eq!(vd.get("email"), Some("ada@example.com"));
    assert!(vd.extras.is_empty());
    assert!(v.warnings.is_empty(), "{:?}", v.warnings);
    let j = v.to_json();
    assert_eq!(j["verdict"], "verified");
    assert_eq!(j["format"], "jwe");
    assert_eq!(j["userId"], "user-42");
    assert_eq!(j["decryptionKey"], k.desk.thumbprint());
    assert_eq!(j["issuedAt"], Value::Null);
}

#[test]
fn the_documented_example_shape_verifies() {
    // iAdvize's example: header {"alg":"RS256"} only, no iat, `\/` escapes, JWE without cty.
    let payload = format!(
        r#"{{"https:\/\/iadvize.com\/userId":"3fcd61a0-0ea1-11ea-9a9f-362b9e155667","https:\/\/iadvize.com\/visitorData":{{"firstName":"Jane","lastName":"Doe","email":"jane.doe@example.com","phoneNumber":"+33600000000","address":"1 rue de la Paix","city":"Nantes","zipCode":"44000","country":"France"}},"iss":"https:\/\/test.iadvize.com","exp":{}}}"#,
        NOW + 60
    );
    let inner = jws_raw(r#"{"alg":"RS256"}"#, &payload);
    for header in [
        r#"{"alg":"RSA-OAEP-256","enc":"A256GCM"}"#,
        r#"{"enc":"A256GCM","alg":"RSA-OAEP-256","cty":"JWT"}"#,
    ] {
        let v = check_verified("documented example", &jwe_raw(header, &inner));
        assert_eq!(v.user_id, "3fcd61a0-0ea1-11ea-9a9f-362b9e155667");
        assert_eq!(v.issuer, "https://test.iadvize.com");
        let vd = v.visitor_data.unwrap();
        assert_eq!(vd.fields.len(), 8);
        assert_eq!(vd.get("city"), Some("Nantes"));
    }
}

#[test]
fn a_bare_jws_verifies_unless_encryption_is_required() {
    let token = jws(&good_claims());
    let v = check_verified("bare jws", &token);
    assert_eq!(v.format, lockdesk_verify::Format::Jws);
    assert_eq!(v.decryption_key, None);
    assert!(v.warnings[0].contains("not encrypted"), "{:?}", v.warnings);
    let strict = verifier(Policy {
        require_encryption: true,
        ..Policy::default()
    });
    check_with(
        &strict,
        "bare jws, encryption required",
        &token,
        Rejected(Reason::EncryptionRequired),
    );
    check_with(
        &strict,
        "nested, encryption required",
        &nested(&good_claims()),
        Verified,
    );
}

#[test]
fn every_reason_code_is_reachable_and_stable() {
    // One representative per code; the other files cover each code in depth.
    let hs = jws_raw(r#"{"alg":"HS256"}"#, &good_claims().to_string());
    let cases: Vec<(Reason, String)> = vec![
        (Reason::Malformed, "not a token".into()),
        (Reason::TooLarge, "a".repeat(16 * 1024 + 1)),
        (Reason::UnsupportedAlgorithm, hs),
        (
            Reason::ForbiddenHeader,
            jws_raw(
                r#"{"alg":"RS256","jku":"https://evil.example/jwks"}"#,
                &good_claims().to_string(),
            ),
        ),
        (
            Reason::DuplicateMember,
            jws_raw(
                r#"{"alg":"RS256","alg":"RS256"}"#,
                &good_claims().to_string(),
            ),
        ),
        (
            Reason::DecryptionFailed,
            mint::encrypt_with_header(JWE_HEADER, jws(&good_claims()).as_bytes(), &keys().to_desk2)
                .unwrap(),
        ),
        (Reason::UnknownKey, String::new()),
        (
            Reason::BadSignature,
            mint::sign_with_header(
                JWS_HEADER,
                good_claims().to_string().as_bytes(),
                &keys().brand2,
            )
            .unwrap(),
        ),
        (
            Reason::UntrustedIssuer,
            jws(&claims_with("iss", Some(json!("https://evil.example")))),
        ),
        (
            Reason::Expired,
            jws(&claims_with("exp", Some(json!(NOW - 61)))),
        ),
        (Reason::NotYetValid, {
            let mut c = good_claims();
            c["nbf"] = json!(NOW + 61);
            c["exp"] = json!(NOW + 120);
            jws(&c)
        }),
        (
            Reason::LifetimeTooLong,
            jws(&claims_with("exp", Some(json!(NOW + 3601)))),
        ),
        (Reason::InvalidClaims, jws(&claims_with("exp", None))),
        (
            Reason::InvalidUserId,
            jws(&claims_with(USER_ID, Some(json!(42)))),
        ),
        (
            Reason::InvalidVisitorData,
            jws(&claims_with(VISITOR_DATA, Some(json!("Ada")))),
        ),
    ];
    let mut reached = std::collections::BTreeSet::new();
    for (reason, token) in cases {
        if reason == Reason::UnknownKey {
            continue; // needs keys with kids: below
        }
        check(reason.code(), &token, Rejected(reason));
        reached.insert(reason);
    }
    // unknown_key: the issuer's keys carry kids and the token names another.
    let mut trust = TrustStore::new();
    trust
        .add(ISSUER, vec![keys().brand_pub.clone().with_kid("2024-01")])
        .unwrap();
    let v = Verifier::new(trust, vec![keys().desk.clone()], Policy::default());
    let token = mint::sign_with_header(
        r#"{"alg":"RS256","kid":"2025-06"}"#,
        good_claims().to_string().as_bytes(),
        &keys().brand,
    )
    .unwrap();
    check_with(&v, "unknown kid", &token, Rejected(Reason::UnknownKey));
    reached.insert(Reason::UnknownKey);
    // encryption_required: above. Everything else: here.
    reached.insert(Reason::EncryptionRequired);
    assert_eq!(reached.len(), Reason::ALL.len());

    // The codes are the issue's, spelled exactly, and round-trip.
    let codes: Vec<&str> = Reason::ALL.iter().map(|r| r.code()).collect();
    assert_eq!(
        codes,
        [
            "malformed",
            "too_large",
            "unsupported_algorithm",
            "forbidden_header",
            "duplicate_member",
            "encryption_required",
            "decryption_failed",
            "unknown_key",
            "bad_signature",
            "untrusted_issuer",
            "expired",
            "not_yet_valid",
            "lifetime_too_long",
            "invalid_claims",
            "invalid_user_id",
            "invalid_visitor_data"
        ]
    );
    for r in Reason::ALL {
        assert_eq!(Reason::from_code(r.code()), Some(r));
    }
}

#[test]
fn rejection_json_has_the_documented_shape() {
    let v = default_verifier().verify(b"x.y", NOW);
    let j = v.to_json();
    assert_eq!(j["verdict"], "rejected");
    assert_eq!(j["reason"], "malformed");
    assert!(j["detail"].as_str().unwrap().contains("found 2"));
    assert_eq!(j.as_object().unwrap().len(), 3);
}

#[test]
fn decryption_key_rotation_and_kid_hints() {
    let k = keys();
    let both = both_desk_keys();
    let to_old = nested(&good_claims());
    let to_new =
        mint::encrypt_with_header(JWE_HEADER, jws(&good_claims()).as_bytes(), &k.to_desk2).unwrap();
    for (label, token, expect_key) in [
        ("old desk key", &to_old, k.desk.thumbprint()),
        ("new desk key", &to_new, k.desk2.thumbprint()),
    ] {
        let Verdict::Verified(v) = check_with(&both, label, token, Verified) else {
            unreachable!()
        };
        assert_eq!(v.decryption_key.as_deref(), Some(expect_key));
    }
    // A kid naming the other key's thumbprint is only a hint: the right key still opens it.
    let hinted = mint::encrypt_with_header(
        &format!(
            r#"{{"alg":"RSA-OAEP-256","enc":"A256GCM","kid":"{}"}}"#,
            k.desk.thumbprint()
        ),
        jws(&good_claims()).as_bytes(),
        &k.to_desk2,
    )
    .unwrap();
    check_with(&both, "misleading kid hint", &hinted, Verified);
    // No decryption key at all.
    let none = Verifier::new(brand_trust(), vec![], Policy::default());
    check_with(
        &none,
        "no decryption key",
        &to_old,
        Rejected(Reason::DecryptionFailed),
    );
}

#[test]
fn four_kilobit_keys_work_and_mismatched_sizes_are_refused_before_rsa() {
    let k = keys();
    let mut trust = TrustStore::new();
    let brand4096_pub = parse_public_keys(&read("brand4096.pub.pem")).unwrap();
    trust.add(ISSUER, brand4096_pub).unwrap();
    let v = Verifier::new(trust, vec![k.desk4096.clone()], Policy::default()).without_cache();
    let inner = mint::sign(&good_claims(), &k.brand4096).unwrap();
    let token = mint::encrypt(&inner, &k.to_desk4096).unwrap();
    check_with(&v, "4096/4096", &token, Verified);
    // A 4096-bit encrypted key to a desk with a 2048-bit key; a 4096-bit signature for a
    // 2048-bit brand key.
    check(
        "512-byte encrypted key",
        &token,
        Rejected(Reason::DecryptionFailed),
    );
    check("512-byte signature", &inner, Rejected(Reason::BadSignature));
}

#[test]
fn the_cache_answers_repeats_and_still_applies_time() {
    let cached = Verifier::new(brand_trust(), vec![keys().desk.clone()], Policy::default());
    let token = nested(&good_claims());
    let first = cached.verify(token.as_bytes(), NOW);
    assert!(first.is_verified());
    assert_eq!(cached.verify(token.as_bytes(), NOW + 10), first);
    // Past exp + leeway the cached verdict is not served: the full path says expired.
    assert_eq!(
        cached.verify(token.as_bytes(), NOW + 60 + 60).reason(),
        Some(Reason::Expired)
    );
    // A token differing in one byte is not a hit.
    let mut other = token.clone().into_bytes();
    let last = other.len() - 1;
    other[last] = if other[last] == b'A' { b'B' } else { b'A' };
    assert!(!cached.verify(&other, NOW).is_verified());
    // Rejections are not cached: the same token is judged again.
    let expired = nested(&claims_with("exp", Some(json!(NOW - 100))));
    assert_eq!(
        cached.verify(expired.as_bytes(), NOW).reason(),
        Some(Reason::Expired)
    );
    assert!(cached.verify(expired.as_bytes(), NOW - 100).is_verified());
}

#[test]
fn verdicts_are_the_same_on_many_threads() {
    let tokens: Vec<String> = (0..8)
        .map(|i| nested(&claims_with(USER_ID, Some(json!(format!("u{i}"))))))
        .collect();
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                for (i, t) in tokens.iter().enumerate() {
                    let Verdict::Verified(v) = default_verifier().verify(t.as_bytes(), NOW) else {
                        panic!("rejected")
                    };
                    assert_eq!(v.user_id, format!("u{i}"));
                }
            });
        }
    });
}
