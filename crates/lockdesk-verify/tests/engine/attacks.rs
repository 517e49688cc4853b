//! RFC 8725 and the JOSE CVE history, one table per attack class.

use lockdesk_verify::mint::{self, JweParts};
use lockdesk_verify::{Policy, Reason, TrustStore, Verifier};
use serde_json::json;

use super::*;

fn claims_text() -> String {
    good_claims().to_string()
}

#[test]
fn alg_none_and_its_case_variants() {
    let payload = b64(claims_text().as_bytes());
    for alg in ["none", "None", "NONE", "nOnE", ""] {
        let header = b64(format!(r#"{{"alg":"{alg}"}}"#).as_bytes());
        for sig in ["", "AA"] {
            check(
                &format!("alg {alg:?}, sig {sig:?}"),
                &format!("{header}.{payload}.{sig}"),
                Rejected(Reason::UnsupportedAlgorithm),
            );
        }
        // ... also as the inner token of a valid JWE.
        let inner = format!("{header}.{payload}.");
        check(
            &format!("inner alg {alg:?}"),
            &jwe_raw(JWE_HEADER, &inner),
            Rejected(Reason::UnsupportedAlgorithm),
        );
    }
}

#[test]
fn hs256_keyed_with_the_rsa_public_key() {
    use openssl::hash::MessageDigest;
    use openssl::pkey::PKey;
    use openssl::sign::Signer;
    // CVE-2015-9235 style: HMAC with the public key's PEM (and DER) as the secret.
    for secret in [read("brand.pub.pem"), keys().brand_pub.spki_der().to_vec()] {
        let input = format!(
            "{}.{}",
            b64(br#"{"alg":"HS256"}"#),
            b64(claims_text().as_bytes())
        );
        let key = PKey::hmac(&secret).unwrap();
        let mut s = Signer::new(MessageDigest::sha256(), &key).unwrap();
        s.update(input.as_bytes()).unwrap();
        let token = format!("{input}.{}", b64(&s.sign_to_vec().unwrap()));
        check(
            "HS256 with public key",
            &token,
            Rejected(Reason::UnsupportedAlgorithm),
        );
    }
}

#[test]
fn every_other_algorithm_is_refused() {
    for alg in [
        "HS256",
        "HS384",
        "HS512",
        "RS384",
        "RS512",
        "PS256",
        "PS384",
        "PS512",
        "ES256",
        "ES384",
        "ES512",
        "EdDSA",
        "rs256",
        "RS256 ",
        "RSA-OAEP-256",
    ] {
        let t = jws_raw(&format!(r#"{{"alg":"{alg}"}}"#), &claims_text());
        check(
            &format!("jws alg {alg}"),
            &t,
            Rejected(Reason::UnsupportedAlgorithm),
        );
    }
    let inner = jws(&good_claims());
    for alg in [
        "RSA1_5",
        "RSA-OAEP",
        "RSA-OAEP-384",
        "RSA-OAEP-512",
        "dir",
        "A256KW",
        "A256GCMKW",
        "ECDH-ES",
        "ECDH-ES+A256KW",
        "PBES2-HS256+A128KW",
        "rsa-oaep-256",
        "RS256",
    ] {
        let t = jwe_raw(&format!(r#"{{"alg":"{alg}","enc":"A256GCM"}}"#), &inner);
        check(
            &format!("jwe alg {alg}"),
            &t,
            Rejected(Reason::UnsupportedAlgorithm),
        );
    }
    // Unpinned enc: josekit alone would accept any of these.
    for enc in [
        "A128GCM",
        "A192GCM",
        "A128CBC-HS256",
        "A192CBC-HS384",
        "A256CBC-HS512",
        "a256gcm",
        "",
    ] {
        let t = jwe_raw(
            &format!(r#"{{"alg":"RSA-OAEP-256","enc":"{enc}"}}"#),
            &inner,
        );
        check(
            &format!("jwe enc {enc:?}"),
            &t,
            Rejected(Reason::UnsupportedAlgorithm),
        );
    }
    // Missing or mistyped alg/enc.
    for header in [
        r#"{"enc":"A256GCM"}"#,
        r#"{"alg":"RSA-OAEP-256"}"#,
        r#"{"alg":["RSA-OAEP-256"],"enc":"A256GCM"}"#,
        r#"{"alg":"RSA-OAEP-256","enc":null}"#,
        r#"{"alg":"RSA-OAEP-256","enc":256}"#,
    ] {
        check(
            header,
            &jwe_raw(header, &inner),
            Rejected(Reason::Malformed),
        );
    }
    for header in [
        r#"{}"#,
        r#"{"alg":null}"#,
        r#"{"alg":true}"#,
        r#"{"alg":{"a":1}}"#,
    ] {
        check(
            header,
            &jws_raw(header, &claims_text()),
            Rejected(Reason::Malformed),
        );
    }
}

#[test]
fn embedded_and_referenced_keys_are_forbidden() {
    // The attacker signs with their own key and ships it (CVE-2018-0114) or points at it.
    let attacker_jwk = lockdesk_verify::parse_public_keys(&read("brand2.pub.pem"))
        .unwrap()
        .remove(0)
        .to_jwk();
    let inner_good = jws(&good_claims());
    for (name, value) in [
        ("jwk", attacker_jwk.clone()),
        ("jku", json!("https://evil.example/jwks.json")),
        ("x5u", json!("https://evil.example/cert.pem")),
        (
            "x5c",
            json!(["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"]),
        ),
    ] {
        let mut h = json!({"alg": "RS256"});
        h[name] = value.clone();
        let t = mint::sign_with_header(&h.to_string(), claims_text().as_bytes(), &keys().brand2)
            .unwrap();
        check(
            &format!("jws {name}"),
            &t,
            Rejected(Reason::ForbiddenHeader),
        );
        let mut h = json!({"alg": "RSA-OAEP-256", "enc": "A256GCM"});
        h[name] = value;
        check(
            &format!("jwe {name}"),
            &jwe_raw(&h.to_string(), &inner_good),
            Rejected(Reason::ForbiddenHeader),
        );
    }
    // Without the embedded key, the attacker's signature is just wrong.
    let t = mint::sign_with_header(JWS_HEADER, claims_text().as_bytes(), &keys().brand2).unwrap();
    check("attacker key", &t, Rejected(Reason::BadSignature));
}

#[test]
fn other_header_members() {
    let inner = jws(&good_claims());
    let forbidden_jws = [
        r#"{"alg":"RS256","crit":["exp"],"exp":1}"#,
        r#"{"alg":"RS256","b64":false,"crit":["b64"]}"#,
        r#"{"alg":"RS256","b64":true}"#,
        r#"{"alg":"RS256","zip":"DEF"}"#,
        r#"{"alg":"RS256","cty":"JWT"}"#,
        r#"{"alg":"RS256","x5t":"abc"}"#,
        r#"{"alg":"RS256","typ":"at+jwt"}"#,
        r#"{"alg":"RS256","typ":"JOSE"}"#,
        r#"{"alg":"RS256","enc":"A256GCM"}"#,
    ];
    for h in forbidden_jws {
        check(
            h,
            &jws_raw(h, &claims_text()),
            Rejected(Reason::ForbiddenHeader),
        );
    }
    let forbidden_jwe = [
        r#"{"alg":"RSA-OAEP-256","enc":"A256GCM","crit":["exp"],"exp":1}"#,
        r#"{"alg":"RSA-OAEP-256","enc":"A256GCM","cty":"JWE"}"#,
        r#"{"alg":"RSA-OAEP-256","enc":"A256GCM","cty":"text/plain"}"#,
        r#"{"alg":"RSA-OAEP-256","enc":"A256GCM","typ":"at+jwt"}"#,
        r#"{"alg":"RSA-OAEP-256","enc":"A256GCM","epk":{}}"#,
        r#"{"alg":"RSA-OAEP-256","enc":"A256GCM","iv":"AAAA"}"#,
        r#"{"alg":"RSA-OAEP-256","enc":"A256GCM","tag":"AAAA"}"#,
        r#"{"alg":"RSA-OAEP-256","enc":"A256GCM","p2s":"AAAA","p2c":1000000000}"#,
    ];
    for h in forbidden_jwe {
        check(h, &jwe_raw(h, &inner), Rejected(Reason::ForbiddenHeader));
    }
    // Members the format allows.
    for h in [
        r#"{"alg":"RSA-OAEP-256","enc":"A256GCM","cty":"jwt","typ":"JWT"}"#,
        r#"{"alg":"RSA-OAEP-256","enc":"A256GCM","typ":"JOSE","kid":"desk-1"}"#,
    ] {
        check(h, &jwe_raw(h, &inner), Verified);
    }
    for h in [
        r#"{"alg":"RS256","typ":"JWT"}"#,
        r#"{"typ":"jwt","alg":"RS256","kid":"x"}"#,
    ] {
        check(h, &jws_raw(h, &claims_text()), Verified);
    }
}

#[test]
fn compression_and_compression_bombs_are_refused_before_decryption() {
    use flate2::write::DeflateEncoder;
    use flate2::Compression;
    use std::io::Write;
    let deflate = |data: &[u8]| {
        let mut e = DeflateEncoder::new(Vec::new(), Compression::best());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    };
    let header = r#"{"alg":"RSA-OAEP-256","enc":"A256GCM","zip":"DEF"}"#;
    let honest = deflate(jws(&good_claims()).as_bytes());
    // 64 MiB of zeros deflates to ~64 KiB; a 10 MiB bomb stays under the size limit.
    let bomb = deflate(&vec![0u8; 10 * 1024 * 1024]);
    assert!(bomb.len() < 12 * 1024, "{}", bomb.len());
    for (label, pt) in [("zip honest", honest), ("zip bomb", bomb)] {
        let parts = mint::encrypt_parts(header, &pt, &keys().to_desk).unwrap();
        let start = std::time::Instant::now();
        check(label, &parts.compact(), Rejected(Reason::ForbiddenHeader));
        assert!(start.elapsed() < std::time::Duration::from_secs(1));
    }
}

#[test]
fn kid_injection_is_inert() {
    let k = keys();
    let mut trust = TrustStore::new();
    trust
        .add(ISSUER, vec![k.brand_pub.clone().with_kid("brand-2024")])
        .unwrap();
    let with_kids = Verifier::new(trust, vec![k.desk.clone()], Policy::default()).without_cache();
    let sign = |kid: &serde_json::Value| {
        let h = json!({"alg": "RS256", "kid": kid}).to_string();
        mint::sign_with_header(&h, claims_text().as_bytes(), &k.brand).unwrap()
    };
    for kid in [
        "../../../../../../dev/null",
        "/etc/passwd",
        "' OR '1'='1",
        "brand-2024' --",
        "brand-2024 ",
        "BRAND-2024",
        "https://evil.example/key",
        "$(touch /tmp/pwned)",
    ] {
        check_with(
            &with_kids,
            kid,
            &sign(&json!(kid)),
            Rejected(Reason::UnknownKey),
        );
    }
    // Control characters, emptiness, absurd length and non-strings are malformed.
    for kid in [
        json!("a\u{0}b"),
        json!("line\nbreak"),
        json!(""),
        json!("k".repeat(257)),
        json!(7),
        json!(null),
        json!(["brand-2024"]),
    ] {
        check_with(
            &with_kids,
            &format!("kid {kid}"),
            &sign(&kid),
            Rejected(Reason::Malformed),
        );
    }
    check_with(
        &with_kids,
        "right kid",
        &sign(&json!("brand-2024")),
        Verified,
    );
    check_with(
        &with_kids,
        "kid = thumbprint",
        &sign(&json!(k.brand_pub.thumbprint())),
        Verified,
    );
    check_with(
        &with_kids,
        "no kid tries all",
        &jws(&good_claims()),
        Verified,
    );
    // Keys without kids: a token's kid names nothing checkable and all keys are tried.
    check(
        "kid with kid-less keys",
        &sign(&json!("anything")),
        Verified,
    );
}

#[test]
fn segment_lengths_are_checked_before_rsa() {
    let parts = |f: &dyn Fn(&mut JweParts)| {
        let mut p =
            mint::encrypt_parts(JWE_HEADER, jws(&good_claims()).as_bytes(), &keys().to_desk)
                .unwrap();
        f(&mut p);
        p.compact()
    };
    let cases: Vec<(&str, String, Reason)> = vec![
        (
            "empty IV (josekit panics)",
            parts(&|p| p.iv.clear()),
            Reason::Malformed,
        ),
        ("1-byte IV", parts(&|p| p.iv.truncate(1)), Reason::Malformed),
        ("8-byte IV", parts(&|p| p.iv.truncate(8)), Reason::Malformed),
        (
            "16-byte IV",
            parts(&|p| p.iv.extend([0; 4])),
            Reason::Malformed,
        ),
        ("empty tag", parts(&|p| p.tag.clear()), Reason::Malformed),
        (
            "1-byte tag (josekit accepts)",
            parts(&|p| p.tag.truncate(1)),
            Reason::Malformed,
        ),
        (
            "12-byte tag",
            parts(&|p| p.tag.truncate(12)),
            Reason::Malformed,
        ),
        (
            "15-byte tag",
            parts(&|p| p.tag.truncate(15)),
            Reason::Malformed,
        ),
        ("17-byte tag", parts(&|p| p.tag.push(0)), Reason::Malformed),
        (
            "empty encrypted key",
            parts(&|p| p.encrypted_key.clear()),
            Reason::DecryptionFailed,
        ),
        (
            "255-byte encrypted key",
            parts(&|p| {
                p.encrypted_key.pop();
            }),
            Reason::DecryptionFailed,
        ),
        (
            "257-byte encrypted key",
            parts(&|p| p.encrypted_key.insert(0, 0)),
            Reason::DecryptionFailed,
        ),
        (
            "empty ciphertext",
            parts(&|p| p.ciphertext.clear()),
            Reason::DecryptionFailed,
        ),
    ];
    for (label, token, reason) in cases {
        check(label, &token, Rejected(reason));
    }
    // An RS256 signature of the wrong length never reaches RSA.
    let t = jws(&good_claims());
    let (rest, sig) = t.rsplit_once('.').unwrap();
    let mut s = unb64(sig);
    s.pop();
    check(
        "255-byte signature",
        &format!("{rest}.{}", b64(&s)),
        Rejected(Reason::BadSignature),
    );
    check(
        "empty signature",
        &format!("{rest}."),
        Rejected(Reason::BadSignature),
    );
}

/// Flips one bit in each byte of one decoded segment, in turn.
fn flips(token: &str, segment: usize, step: usize) -> Vec<String> {
    let parts: Vec<&str> = token.split('.').collect();
    let bytes = unb64(parts[segment]);
    (0..bytes.len())
        .step_by(step)
        .map(|i| {
            let mut b = bytes.clone();
            b[i] ^= 1 << (i % 8);
            let mut p: Vec<String> = parts.iter().map(|s| s.to_string()).collect();
            p[segment] = b64(&b);
            p.join(".")
        })
        .collect()
}

#[test]
fn bit_flips_in_every_jwe_segment() {
    let token = nested(&good_claims());
    check("untouched", &token, Verified);
    // Header: anything but verified (bad JSON, other alg, or an AAD mismatch).
    for (i, t) in flips(&token, 0, 1).iter().enumerate() {
        check_not_verified(
            default_verifier(),
            &format!("header flip {i}"),
            t.as_bytes(),
        );
    }
    // Key, IV, ciphertext, tag: always the one undistinguishing decryption failure.
    for (seg, name, step) in [
        (1, "key", 3),
        (2, "iv", 1),
        (3, "ciphertext", 7),
        (4, "tag", 1),
    ] {
        let all = flips(&token, seg, step);
        assert!(!all.is_empty());
        for (i, t) in all.iter().enumerate() {
            check(
                &format!("{name} flip {i}"),
                t,
                Rejected(Reason::DecryptionFailed),
            );
        }
    }
}

#[test]
fn bit_flips_in_every_jws_segment() {
    let token = jws(&good_claims());
    for (seg, name) in [(0, "header"), (1, "payload"), (2, "signature")] {
        for (i, t) in flips(&token, seg, 1).iter().enumerate() {
            let reason = check_not_verified(
                default_verifier(),
                &format!("{name} flip {i}"),
                t.as_bytes(),
            );
            if seg == 2 {
                assert_eq!(reason, Reason::BadSignature, "{name} flip {i}");
            }
        }
    }
    // The same inside a valid JWE: the signature still decides.
    for (i, t) in flips(&token, 2, 17).iter().enumerate() {
        check(
            &format!("inner signature flip {i}"),
            &jwe_raw(JWE_HEADER, t),
            Rejected(Reason::BadSignature),
        );
    }
    for (i, t) in flips(&token, 1, 11).iter().enumerate() {
        let reason = check_not_verified(
            default_verifier(),
            "inner payload flip",
            jwe_raw(JWE_HEADER, t).as_bytes(),
        );
        assert!(
            matches!(
                reason,
                Reason::BadSignature
                    | Reason::Malformed
                    | Reason::InvalidClaims
                    | Reason::UntrustedIssuer
                    | Reason::DuplicateMember
            ),
            "inner payload flip {i}: {reason:?}"
        );
    }
}

#[test]
fn encrypted_only_claims_and_nesting_tricks() {
    let claims = claims_text();
    check(
        "encrypted-only claims",
        &jwe_raw(JWE_HEADER, &claims),
        Rejected(Reason::Malformed),
    );
    check(
        "encrypted-only claims, no cty",
        &jwe_raw(r#"{"alg":"RSA-OAEP-256","enc":"A256GCM"}"#, &claims),
        Rejected(Reason::Malformed),
    );
    let nested_twice = jwe_raw(JWE_HEADER, &nested(&good_claims()));
    check("JWE inside JWE", &nested_twice, Rejected(Reason::Malformed));
    check(
        "empty plaintext",
        &jwe_raw(JWE_HEADER, ""),
        Rejected(Reason::Malformed),
    );
    check(
        "plaintext garbage",
        &jwe_raw(JWE_HEADER, "hello world"),
        Rejected(Reason::Malformed),
    );
    check(
        "plaintext 2 parts",
        &jwe_raw(JWE_HEADER, "abc.def"),
        Rejected(Reason::Malformed),
    );
    let padded = format!("{}\n", jws(&good_claims()));
    check(
        "inner JWS with a newline",
        &jwe_raw(JWE_HEADER, &padded),
        Rejected(Reason::Malformed),
    );
    // Unsigned inner JWS with a valid-looking signature slot.
    let unsigned = format!("{}.{}.", b64(JWS_HEADER.as_bytes()), b64(claims.as_bytes()));
    check(
        "inner JWS without signature",
        &jwe_raw(JWE_HEADER, &unsigned),
        Rejected(Reason::BadSignature),
    );
    // An inner JWS signed by an untrusted key.
    let forged = mint::sign_with_header(JWS_HEADER, claims.as_bytes(), &keys().brand2).unwrap();
    check(
        "inner JWS by another key",
        &jwe_raw(JWE_HEADER, &forged),
        Rejected(Reason::BadSignature),
    );
}

#[test]
fn json_serialization_and_bad_encodings() {
    let good = nested(&good_claims());
    let parts: Vec<&str> = good.split('.').collect();
    let flattened = json!({
        "protected": parts[0], "encrypted_key": parts[1], "iv": parts[2],
        "ciphertext": parts[3], "tag": parts[4],
    })
    .to_string();
    let general =
        json!({"payload": "e30", "signatures": [{"protected": "e30", "signature": "AA"}]})
            .to_string();
    let with_padding = format!("{}=.{}", parts[0], parts[1..].join("."));
    let std_alphabet = good.replace('-', "+").replace('_', "/");
    let non_canonical = {
        // Last char of a segment with non-zero trailing bits decodes leniently elsewhere.
        let seg = parts[4];
        let last = seg.chars().last().unwrap();
        let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let idx = alphabet.find(last).unwrap();
        let bumped = alphabet.chars().nth(idx ^ 1).unwrap();
        let mut p: Vec<String> = parts.iter().map(|s| s.to_string()).collect();
        p[4] = format!("{}{}", &seg[..seg.len() - 1], bumped);
        p.join(".")
    };
    let cases: Vec<(&str, String)> = vec![
        ("flattened JSON", flattened),
        ("general JSON", general),
        ("empty", String::new()),
        ("spaces", "   ".into()),
        ("leading space", format!(" {good}")),
        ("trailing newline", format!("{good}\n")),
        ("padding", with_padding),
        ("standard alphabet", std_alphabet),
        ("non-canonical base64", non_canonical),
        ("4 parts", parts[..4].join(".")),
        ("6 parts", format!("{good}.AAAA")),
        ("2 parts", parts[..2].join(".")),
        ("dots only", "....".into()),
        ("lone char segment", format!("A.{}", parts[1..].join("."))),
        ("NUL", format!("{good}\0")),
        ("unicode", format!("{}é", &good[..good.len() - 1])),
        (
            "header not JSON",
            format!("{}.{}", b64(b"hello"), parts[1..].join(".")),
        ),
        (
            "header JSON array",
            format!("{}.{}", b64(b"[]"), parts[1..].join(".")),
        ),
        (
            "header with BOM",
            format!("{}.{}", b64("\u{feff}{}".as_bytes()), parts[1..].join(".")),
        ),
        (
            "header invalid UTF-8",
            format!("{}.{}", b64(b"{\"alg\":\"\xff\"}"), parts[1..].join(".")),
        ),
        (
            "header trailing data",
            format!("{}.{}", b64(b"{} {}"), parts[1..].join(".")),
        ),
    ];
    // The standard-alphabet variant may not contain + or / by chance; the label still holds.
    for (label, token) in cases {
        let reason = check_not_verified(default_verifier(), label, token.as_bytes());
        assert_eq!(reason, Reason::Malformed, "{label}");
    }
}

#[test]
fn oversized_inputs_are_refused_before_decoding() {
    let limit = Policy::default().max_token_bytes;
    check(
        "limit + 1 of garbage",
        &"!".repeat(limit + 1),
        Rejected(Reason::TooLarge),
    );
    check(
        "limit of garbage",
        &"!".repeat(limit),
        Rejected(Reason::Malformed),
    );
    check("1 MiB", &"A".repeat(1 << 20), Rejected(Reason::TooLarge));
    // A real, validly signed token whose visitorData makes it too big.
    let mut big = good_claims();
    big[VISITOR_DATA]["address"] = json!("x".repeat(limit));
    check("big valid token", &nested(&big), Rejected(Reason::TooLarge));
    // A smaller limit applies as configured.
    let small = verifier(Policy {
        max_token_bytes: 100,
        ..Policy::default()
    });
    check_with(
        &small,
        "small limit",
        &nested(&good_claims()),
        Rejected(Reason::TooLarge),
    );
}

#[test]
fn duplicate_members_everywhere() {
    let inner = jws(&good_claims());
    let dup_claims = format!(
        r#"{{"{USER_ID}":"victim","{USER_ID}":"attacker","iss":"{ISSUER}","exp":{}}}"#,
        NOW + 60
    );
    let dup_iss = format!(
        r#"{{"{USER_ID}":"u","iss":"https://evil.example","iss":"{ISSUER}","exp":{}}}"#,
        NOW + 60
    );
    let dup_nested = format!(
        r#"{{"{USER_ID}":"u","{VISITOR_DATA}":{{"email":"a@x","email":"b@x"}},"iss":"{ISSUER}","exp":{}}}"#,
        NOW + 60
    );
    let dup_escaped = format!(
        r#"{{"{USER_ID}":"u","iss":"{ISSUER}","exp":{},"\u0065xp":{}}}"#,
        NOW + 60,
        NOW + 3000
    );
    let cases: Vec<(&str, String)> = vec![
        (
            "jws header alg",
            jws_raw(r#"{"alg":"RS256","alg":"none"}"#, &claims_text()),
        ),
        (
            "jwe header enc",
            jwe_raw(
                r#"{"alg":"RSA-OAEP-256","enc":"A128GCM","enc":"A256GCM"}"#,
                &inner,
            ),
        ),
        (
            "jwe header kid",
            jwe_raw(
                r#"{"alg":"RSA-OAEP-256","enc":"A256GCM","kid":"a","kid":"b"}"#,
                &inner,
            ),
        ),
        ("claims userId", nested_raw(&dup_claims)),
        ("claims iss", nested_raw(&dup_iss)),
        ("visitorData email", nested_raw(&dup_nested)),
        ("escaped exp", nested_raw(&dup_escaped)),
    ];
    for (label, token) in cases {
        check(label, &token, Rejected(Reason::DuplicateMember));
    }
}

fn nested_raw(payload: &str) -> String {
    jwe_raw(JWE_HEADER, &jws_raw(JWS_HEADER, payload))
}

/// Deterministic mutation of valid tokens: no input may panic or verify.
#[test]
fn mutated_tokens_never_panic_or_verify() {
    let seeds = [nested(&good_claims()), jws(&good_claims())];
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let alphabet =
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.{}\"=+/ \0\xff";
    for round in 0..400 {
        let seed = seeds[round % 2].as_bytes();
        let mut t = seed.to_vec();
        for _ in 0..(1 + next() % 4) {
            let pos = (next() as usize) % t.len().max(1);
            match next() % 4 {
                0 => t[pos] = alphabet[(next() as usize) % alphabet.len()],
                1 => {
                    t.remove(pos);
                }
                2 => t.insert(pos, alphabet[(next() as usize) % alphabet.len()]),
                _ => t.truncate(pos),
            }
        }
        if t == seed {
            continue;
        }
        check_not_verified(default_verifier(), &format!("mutation {round}"), &t);
    }
}

/// The prepared OpenSSL contexts survive failures and keys used in turn on one thread.
#[test]
fn cached_contexts_recover_after_failures() {
    let k = keys();
    let both = both_desk_keys().without_cache();
    let good = nested(&good_claims());
    let to2 = mint::encrypt(&jws(&good_claims()), &k.to_desk2).unwrap();
    let bad_key = flips(&good, 1, 97);
    let bad_sig = flips(&jws(&good_claims()), 2, 97);
    for round in 0..3 {
        for t in &bad_key {
            check_with(
                &both,
                &format!("bad key {round}"),
                t,
                Rejected(Reason::DecryptionFailed),
            );
        }
        check_with(&both, &format!("good {round}"), &good, Verified);
        check_with(&both, &format!("to desk2 {round}"), &to2, Verified);
        for t in &bad_sig {
            check_with(
                &both,
                &format!("bad sig {round}"),
                t,
                Rejected(Reason::BadSignature),
            );
        }
        check_with(
            &both,
            &format!("bare {round}"),
            &jws(&good_claims()),
            Verified,
        );
    }
}
