//! Key loading: every accepted form gives the same key; every refused form says why.

use lockdesk_verify::{
    inspect_key, parse_decryption_keys, parse_public_keys, thumbprint, KeyError, KeyForm,
    TrustStore,
};
use openssl::pkey::PKey;
use openssl::rsa::Rsa;
use serde_json::json;

use super::*;

/// iAdvize's published production encryption key (bare base64 DER SPKI).
pub const IADVIZE_KEY: &str = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA1KdAzuUa5rOXgLHavoDRYoNXzwWz/pFhgGypYFbvV8DNjB93XK2AzKTwW+vxT7RYl4f+sKLdEi3dJYgPt2hquhTNmFxAzRvTuolUOKr1XNx7QbDj+7cfLVDYjmds/ydNtyHi8TUHSvfzs8SGXO5E5H13llmayPEslHKShG0cLIDcLNr6hJcfv9fvOZqQlLQ4Bx7to/66IHke9zY+1oidrUdFGzxXG+RGK81mIMuXj6N2EGJ7YYcQqXJfBJnWFlSGCQNttw5Rfj00eZbkMRO3XohhNqGIiBG2tejSjfB53UpiHdbzni+tyB72R5aaq4d+gkkgaOVYn/Or2fArOH2FUQIDAQAB";

#[test]
fn iadvize_published_key_loads_in_its_bare_base64_form() {
    let k = parse_public_keys(IADVIZE_KEY.as_bytes()).unwrap().remove(0);
    assert_eq!(k.bits(), 2048);
    assert_eq!(
        hex::encode(openssl::sha::sha256(k.spki_der())),
        "20b1ebc3cd86286c9891186a8af48a9979e1f3e2ca460e40af85b0a6bbf7445a"
    );
    // Pasted with line breaks and a trailing newline, as from an e-mail.
    let wrapped: String = IADVIZE_KEY
        .as_bytes()
        .chunks(64)
        .map(|c| format!("{}\r\n", std::str::from_utf8(c).unwrap()))
        .collect();
    let k2 = parse_public_keys(wrapped.as_bytes()).unwrap().remove(0);
    assert_eq!(k2.thumbprint(), k.thumbprint());
    let info = &inspect_key(IADVIZE_KEY.as_bytes()).unwrap()[0];
    assert_eq!(info.form, KeyForm::Base64Der);
    assert_eq!(info.exponent, "65537");
    assert!(info.warnings.is_empty());
}

#[test]
fn rfc7638_thumbprint_example() {
    // RFC 7638 §3.1.
    let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
    assert_eq!(
        thumbprint(&unb64(n), &unb64("AQAB")),
        "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    );
    // The same through the JWK loader, with member order and extra members irrelevant.
    let jwk = json!({"e": "AQAB", "kid": "2011-04-29", "n": n, "kty": "RSA", "use": "sig"});
    let k = parse_public_keys(jwk.to_string().as_bytes())
        .unwrap()
        .remove(0);
    assert_eq!(
        k.thumbprint(),
        "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    );
    assert_eq!(k.kid(), Some("2011-04-29"));
}

#[test]
fn every_public_form_gives_the_same_key() {
    let pem = read("brand.pub.pem");
    let pkey = PKey::public_key_from_pem(&pem).unwrap();
    let rsa = pkey.rsa().unwrap();
    let der = pkey.public_key_to_der().unwrap();
    let b64_der = openssl::base64::encode_block(&der);
    let pkcs1_pem = rsa.public_key_to_pem_pkcs1().unwrap();
    let pkcs1_der = rsa.public_key_to_der_pkcs1().unwrap();
    let expected = keys().brand_pub.thumbprint().to_owned();
    let jwk = keys().brand_pub.clone().with_kid("k1").to_jwk();
    let jwks = json!({"keys": [jwk]});
    let forms: Vec<(&str, Vec<u8>, KeyForm)> = vec![
        ("PEM SPKI", pem.clone(), KeyForm::PemSpki),
        ("PEM PKCS#1", pkcs1_pem, KeyForm::PemPkcs1),
        (
            "bare base64 SPKI",
            b64_der.clone().into_bytes(),
            KeyForm::Base64Der,
        ),
        (
            "bare base64 PKCS#1",
            openssl::base64::encode_block(&pkcs1_der).into_bytes(),
            KeyForm::Base64Der,
        ),
        ("binary DER", der, KeyForm::Der),
        ("JWK", jwk.to_string().into_bytes(), KeyForm::Jwk),
        ("JWKS", jwks.to_string().into_bytes(), KeyForm::Jwks),
        (
            "PEM with BOM and CRLF",
            [
                b"\xef\xbb\xbf".as_slice(),
                &pem.iter()
                    .flat_map(|&b| {
                        if b == b'\n' {
                            vec![b'\r', b'\n']
                        } else {
                            vec![b]
                        }
                    })
                    .collect::<Vec<u8>>(),
            ]
            .concat(),
            KeyForm::PemSpki,
        ),
    ];
    for (label, bytes, form) in forms {
        let keys = parse_public_keys(&bytes).unwrap_or_else(|e| panic!("{label}: {e}"));
        assert_eq!(keys.len(), 1, "{label}");
        assert_eq!(keys[0].thumbprint(), expected, "{label}");
        assert_eq!(inspect_key(&bytes).unwrap()[0].form, form, "{label}");
    }
}

#[test]
fn weak_wrong_and_private_keys_are_refused_with_a_reason() {
    let private_jwk = {
        let rsa = Rsa::private_key_from_pem(&read("brand.key.pem")).unwrap();
        json!({"kty": "RSA", "n": b64(&rsa.n().to_vec()), "e": "AQAB", "d": b64(&rsa.d().to_vec())})
    };
    let pub_jwk = |extra: serde_json::Value| {
        let mut j = keys().brand_pub.to_jwk();
        for (k, v) in extra.as_object().unwrap() {
            j[k] = v.clone();
        }
        j.to_string().into_bytes()
    };
    let brand2 = parse_public_keys(&read("brand2.pub.pem"))
        .unwrap()
        .remove(0);
    let dup_kid = json!({"keys": [keys().brand_pub.clone().with_kid("a").to_jwk(), brand2.with_kid("a").to_jwk()]});
    let encrypted = {
        let pkey = PKey::private_key_from_pem(&read("brand.key.pem")).unwrap();
        pkey.private_key_to_pem_pkcs8_passphrase(openssl::symm::Cipher::aes_256_cbc(), b"secret")
            .unwrap()
    };
    let cases: Vec<(&str, Vec<u8>, KeyError)> = vec![
        (
            "RSA-1024",
            read("weak1024.pub.pem"),
            KeyError::TooSmall(1024),
        ),
        (
            "e = 3",
            read("e3.pub.pem"),
            KeyError::BadExponent("3".into()),
        ),
        ("EC", read("ec.pub.pem"), KeyError::NotRsa("EC".into())),
        (
            "PKCS#8 private",
            read("brand.key.pem"),
            KeyError::PrivateMaterial,
        ),
        (
            "PKCS#1 private",
            read("desk.key.pkcs1.pem"),
            KeyError::PrivateMaterial,
        ),
        (
            "public then private",
            [read("brand2.pub.pem"), read("brand.key.pem")].concat(),
            KeyError::PrivateMaterial,
        ),
        (
            "private JWK",
            private_jwk.to_string().into_bytes(),
            KeyError::PrivateMaterial,
        ),
        ("encrypted private", encrypted, KeyError::EncryptedPrivate),
        (
            "duplicate kid",
            dup_kid.to_string().into_bytes(),
            KeyError::DuplicateKid("\"a\"".into()),
        ),
        (
            "oct JWK",
            br#"{"kty":"oct","k":"AAAA"}"#.to_vec(),
            KeyError::NotRsa("kty \"oct\"".into()),
        ),
        ("empty", b"  \n".to_vec(), KeyError::Empty),
        ("empty JWKS", br#"{"keys":[]}"#.to_vec(), KeyError::Empty),
        ("garbage", b"hello, world".to_vec(), KeyError::Unrecognised),
        (
            "base64 of garbage",
            b"aGVsbG8gd29ybGQ=".to_vec(),
            KeyError::Unrecognised,
        ),
        (
            "certificate",
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".to_vec(),
            KeyError::Certificate,
        ),
    ];
    for (label, bytes, expected) in cases {
        assert_eq!(parse_public_keys(&bytes).err(), Some(expected), "{label}");
    }
    // JWK metadata that says "not for RS256 verification".
    for extra in [
        json!({"alg": "HS256"}),
        json!({"alg": "RSA-OAEP-256"}),
        json!({"use": "enc"}),
        json!({"key_ops": ["encrypt"]}),
        json!({"n": 12}),
        json!({"e": "AQAB="}),
    ] {
        let err = parse_public_keys(&pub_jwk(extra.clone())).err();
        assert!(matches!(err, Some(KeyError::Jwk(_))), "{extra}: {err:?}");
    }
    assert!(parse_public_keys(&pub_jwk(
        json!({"alg": "RS256", "use": "sig", "key_ops": ["verify"]})
    ))
    .is_ok());
    // Duplicate JSON members in a key file.
    let dup = format!(
        r#"{{"kty":"RSA","kty":"RSA","n":"{}","e":"AQAB"}}"#,
        keys().brand_pub.to_jwk()["n"].as_str().unwrap()
    );
    assert!(
        matches!(parse_public_keys(dup.as_bytes()), Err(KeyError::Jwk(m)) if m.contains("twice"))
    );
    // Messages are the ones the Settings screen shows.
    assert_eq!(
        KeyError::TooSmall(1024).to_string(),
        "key under 2048 bits (1024 bits)"
    );
    assert!(KeyError::PrivateMaterial
        .to_string()
        .starts_with("not a public key"));
}

#[test]
fn inspect_reports_problems_instead_of_refusing() {
    let info = &inspect_key(&read("weak1024.pub.pem")).unwrap()[0];
    assert_eq!(info.bits, 1024);
    assert!(
        info.warnings[0].contains("under 2048 bits"),
        "{:?}",
        info.warnings
    );
    let info = &inspect_key(&read("e3.pub.pem")).unwrap()[0];
    assert_eq!(info.exponent, "3");
    assert!(info.warnings[0].contains("65537"));
    let info = &inspect_key(&read("desk.key.pkcs1.pem")).unwrap()[0];
    assert!(info.private);
    assert_eq!(info.form, KeyForm::PemPkcs1Private);
    assert_eq!(info.thumbprint, keys().desk.thumbprint());
    assert!(info.warnings.is_empty());
}

#[test]
fn decryption_keys() {
    let two = [read("desk.key.pkcs1.pem"), read("desk2.key.pem")].concat();
    let keys2 = parse_decryption_keys(&two).unwrap();
    assert_eq!(keys2.len(), 2);
    assert_eq!(keys2[0].thumbprint(), keys().desk.thumbprint());
    assert_eq!(keys2[1].thumbprint(), keys().desk2.thumbprint());
    assert_eq!(
        keys().desk.thumbprint(),
        parse_public_keys(&read("desk.pub.pem")).unwrap()[0].thumbprint()
    );
    for (label, bytes, expected) in [
        ("public key", read("desk.pub.pem"), KeyError::NotPrivate),
        ("weak", read("weak1024.key.pem"), KeyError::TooSmall(1024)),
        ("garbage", b"nope".to_vec(), KeyError::Unrecognised),
    ] {
        assert_eq!(
            parse_decryption_keys(&bytes).err(),
            Some(expected),
            "{label}"
        );
    }
}

#[test]
fn trust_store_refuses_duplicate_kids_across_sources() {
    let brand2 = parse_public_keys(&read("brand2.pub.pem"))
        .unwrap()
        .remove(0);
    let mut t = TrustStore::new();
    t.add(ISSUER, vec![keys().brand_pub.clone().with_kid("k")])
        .unwrap();
    assert_eq!(
        t.add(ISSUER, vec![brand2.clone().with_kid("k")]),
        Err(KeyError::DuplicateKid("\"k\"".into()))
    );
    // The same key twice is not an error and is kept once; other issuers are independent.
    t.add(ISSUER, vec![keys().brand_pub.clone().with_kid("k")])
        .unwrap();
    assert_eq!(t.keys(ISSUER).unwrap().len(), 1);
    t.add("https://other.example", vec![brand2.with_kid("k")])
        .unwrap();
    assert_eq!(t.add(ISSUER, vec![]), Err(KeyError::Empty));
}
