//! Public test vectors from ../shared/vectors (never copied into the repository): Wycheproof for
//! the three primitives and the JOSE suites, and RFC 7520 §6.

use lockdesk_verify::primitives::{a256gcm_open, reference, rs256_verify, rsa_oaep256_decrypt};
use lockdesk_verify::{
    parse_decryption_keys, parse_public_keys, KeyError, Policy, Reason, TrustStore, Verdict,
    Verifier,
};
use openssl::bn::BigNum;
use openssl::rsa::Rsa;
use serde_json::Value;

use super::*;

fn load(name: &str) -> Value {
    let path = vectors(&format!("wycheproof/{name}"));
    let text = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (the vectors live in ../shared/vectors beside the repository)",
            path.display()
        )
    });
    serde_json::from_slice(&text).unwrap()
}

fn hex(v: &Value) -> Vec<u8> {
    ::hex::decode(v.as_str().unwrap()).unwrap()
}

fn num(v: &Value) -> u64 {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .unwrap()
}

#[derive(Default, Debug)]
struct Tally {
    valid: usize,
    invalid: usize,
    skipped: usize,
}

impl Tally {
    /// Counts one case by its `result` after checking `got` against it: `valid()` for a "valid"
    /// case, `invalid` for an "invalid" one; any other result ("acceptable") is skipped.
    fn check<T: PartialEq + std::fmt::Debug>(
        &mut self,
        case: &Value,
        got: T,
        valid: impl FnOnce() -> T,
        invalid: T,
        what: impl std::fmt::Display,
    ) {
        match case["result"].as_str().unwrap() {
            "valid" => {
                assert_eq!(got, valid(), "{what}");
                self.valid += 1;
            }
            "invalid" => {
                assert_eq!(got, invalid, "{what}");
                self.invalid += 1;
            }
            _ => self.skipped += 1,
        }
    }
}

#[test]
fn wycheproof_rsa_oaep_sha256() {
    for bits in [2048, 3072, 4096] {
        let file = load(&format!("rsa_oaep_{bits}_sha256_mgf1sha256_test.json"));
        let mut t = Tally::default();
        for group in file["testGroups"].as_array().unwrap() {
            let key = parse_decryption_keys(group["privateKeyPem"].as_str().unwrap().as_bytes())
                .unwrap()
                .remove(0);
            for case in group["tests"].as_array().unwrap() {
                let id = &case["tcId"];
                if !case["label"].as_str().unwrap_or("").is_empty() {
                    t.skipped += 1; // JWE uses the empty label
                    continue;
                }
                let got = rsa_oaep256_decrypt(&key, &hex(&case["ct"]));
                // The engine's prepared-context path and josekit's agree on every vector.
                assert_eq!(
                    got,
                    reference::rsa_oaep256_decrypt(&key, &hex(&case["ct"])),
                    "rsa{bits} tc {id}"
                );
                t.check(
                    case,
                    got,
                    || Some(hex(&case["msg"])),
                    None,
                    format_args!("rsa{bits} tc {id}"),
                );
            }
        }
        assert!(t.valid >= 10 && t.invalid >= 5, "rsa{bits}: {t:?}");
    }
}

#[test]
fn wycheproof_aes_gcm() {
    let file = load("aes_gcm_test.json");
    let mut t = Tally::default();
    let mut refused_shapes = 0;
    for group in file["testGroups"].as_array().unwrap() {
        let (key, iv, tag) = (
            num(&group["keySize"]),
            num(&group["ivSize"]),
            num(&group["tagSize"]),
        );
        if key != 256 {
            continue;
        }
        for case in group["tests"].as_array().unwrap() {
            let id = &case["tcId"];
            let args = (
                hex(&case["key"]),
                hex(&case["iv"]),
                hex(&case["aad"]),
                hex(&case["ct"]),
                hex(&case["tag"]),
            );
            let got = a256gcm_open(&args.0, &args.1, &args.2, &args.3, &args.4);
            // The per-thread context is reused from case to case, failures included: every
            // answer must be josekit's (a fresh context per call).
            assert_eq!(
                got,
                reference::a256gcm_open(&args.0, &args.1, &args.2, &args.3, &args.4),
                "tc {id}"
            );
            if iv != 96 || tag != 128 {
                // Odd IVs and truncated tags are refused whatever the vector says.
                assert_eq!(got, None, "tc {id}: iv {iv} tag {tag}");
                refused_shapes += 1;
                continue;
            }
            t.check(
                case,
                got,
                || Some(hex(&case["msg"])),
                None,
                format_args!("tc {id}"),
            );
        }
    }
    assert!(
        t.valid >= 10 && t.invalid >= 5 && refused_shapes >= 5,
        "{t:?}, {refused_shapes}"
    );
}

#[test]
fn wycheproof_rsa_pkcs1_sha256_signatures() {
    for bits in [2048, 3072, 4096] {
        let file = load(&format!("rsa_signature_{bits}_sha256_test.json"));
        let mut t = Tally::default();
        for group in file["testGroups"].as_array().unwrap() {
            let Ok(mut keys) =
                parse_public_keys(group["publicKeyPem"].as_str().unwrap().as_bytes())
            else {
                t.skipped += group["tests"].as_array().unwrap().len();
                continue;
            };
            let key = keys.remove(0);
            for case in group["tests"].as_array().unwrap() {
                let got = rs256_verify(&key, &hex(&case["msg"]), &hex(&case["sig"]));
                assert_eq!(
                    got,
                    reference::rs256_verify(&key, &hex(&case["msg"]), &hex(&case["sig"])),
                    "rsa{bits} tc {}",
                    case["tcId"]
                );
                t.check(
                    case,
                    got,
                    || true,
                    false,
                    format_args!("rsa{bits} tc {}", case["tcId"]),
                );
            }
        }
        assert!(t.valid >= 5 && t.invalid >= 50, "rsa{bits}: {t:?}");
    }
}

#[test]
fn wycheproof_rsa_pkcs1_signature_generation() {
    // PKCS#1 v1.5 signing is deterministic: our minting must reproduce the vectors exactly.
    let file = load("rsa_pkcs1_2048_sig_gen_test.json");
    let mut checked = 0;
    for group in file["testGroups"].as_array().unwrap() {
        if group["sha"] != "SHA-256" {
            continue;
        }
        let Ok(key) =
            mint::SigningKey::from_pem(group["privateKeyPem"].as_str().unwrap().as_bytes())
        else {
            continue;
        };
        let public = parse_public_keys(group["keyPem"].as_str().unwrap().as_bytes())
            .unwrap()
            .remove(0);
        for case in group["tests"].as_array().unwrap() {
            let (msg, sig) = (hex(&case["msg"]), hex(&case["sig"]));
            if case["result"] == "valid" {
                assert_eq!(key.sign_bytes(&msg).unwrap(), sig, "tc {}", case["tcId"]);
                assert!(rs256_verify(&public, &msg, &sig));
                checked += 1;
            }
        }
    }
    assert!(checked >= 5, "{checked}");
}

/// An RSA private JWK as PEM (for loading Wycheproof's JOSE keys through our PEM loader).
fn jwk_to_pem(jwk: &Value) -> Option<Vec<u8>> {
    if jwk["kty"] != "RSA" || jwk.get("d").is_none() {
        return None;
    }
    let bn = |name: &str| BigNum::from_slice(&unb64(jwk[name].as_str().unwrap())).unwrap();
    let rsa = Rsa::from_private_components(
        bn("n"),
        bn("e"),
        bn("d"),
        bn("p"),
        bn("q"),
        bn("dp"),
        bn("dq"),
        bn("qi"),
    )
    .ok()?;
    rsa.private_key_to_pem().ok()
}

fn token_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[test]
fn wycheproof_jwe_suite() {
    let file = load("json_web_encryption_test.json");
    let mut decrypted = 0;
    let mut total = 0;
    for group in file["testGroups"].as_array().unwrap() {
        let desk = jwk_to_pem(&group["private"]).and_then(|pem| parse_decryption_keys(&pem).ok());
        let mut trust = TrustStore::new();
        trust.add(ISSUER, vec![keys().brand_pub.clone()]).unwrap();
        let v = Verifier::new(trust, desk.clone().unwrap_or_default(), Policy::default())
            .without_cache();
        for case in group["tests"].as_array().unwrap() {
            total += 1;
            let token = token_text(&case["jwe"]);
            let label = format!("jwe tc {} ({})", case["tcId"], case["comment"]);
            let reason = check_not_verified(&v, &label, token.as_bytes());
            let header: Option<Value> = token
                .split('.')
                .next()
                .and_then(|h| {
                    base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, h)
                        .ok()
                })
                .and_then(|b| serde_json::from_slice(&b).ok());
            let ours = header
                .as_ref()
                .is_some_and(|h| h["alg"] == "RSA-OAEP-256" && h["enc"] == "A256GCM");
            if ours && case["result"] == "valid" && desk.is_some() {
                // It decrypts; its plaintext is not a signed JWT, so the engine stops there.
                let Verdict::Rejected(r) = v.verify(token.as_bytes(), NOW) else {
                    unreachable!()
                };
                assert_eq!(r.reason, Reason::Malformed, "{label}: {}", r.detail);
                assert!(
                    r.detail.contains("inside the JWE") || r.detail.contains("bare claims"),
                    "{label}: {}",
                    r.detail
                );
                decrypted += 1;
            } else if !ours && header.is_some() && token.split('.').count() == 5 {
                assert!(
                    matches!(
                        reason,
                        Reason::UnsupportedAlgorithm
                            | Reason::ForbiddenHeader
                            | Reason::Malformed
                            | Reason::DuplicateMember
                    ),
                    "{label}: {reason:?}"
                );
            }
        }
    }
    assert!(
        decrypted >= 1 && total > 100,
        "decrypted {decrypted} of {total}"
    );
}

#[test]
fn wycheproof_jws_suite() {
    let file = load("json_web_signature_test.json");
    let (mut valid_rs256, mut total) = (0, 0);
    for group in file["testGroups"].as_array().unwrap() {
        // Only RS256 RSA keys load; the rest are refused at load time, which is the point.
        let key = group
            .get("public")
            .and_then(|k| parse_public_keys(k.to_string().as_bytes()).ok());
        if let Some(alg) = group.get("public").and_then(|k| k.get("alg")) {
            assert_eq!(
                key.is_some(),
                alg == "RS256" && group["public"]["kty"] == "RSA",
                "{}",
                group["comment"]
            );
        }
        let mut trust = TrustStore::new();
        trust
            .add(
                ISSUER,
                key.clone()
                    .unwrap_or_else(|| vec![keys().brand_pub.clone()]),
            )
            .unwrap();
        let v = Verifier::new(trust, vec![keys().desk.clone()], Policy::default()).without_cache();
        for case in group["tests"].as_array().unwrap() {
            total += 1;
            let token = token_text(&case["jws"]);
            let label = format!("jws tc {} ({})", case["tcId"], case["comment"]);
            check_not_verified(&v, &label, token.as_bytes());
            // The RS256 layer beneath the claims: valid vectors verify with our primitive.
            let parts: Vec<&str> = token.split('.').collect();
            if let (Some(k), 3, "valid") = (&key, parts.len(), case["result"].as_str().unwrap()) {
                let header: Value = serde_json::from_slice(&unb64(parts[0])).unwrap();
                if header["alg"] == "RS256" {
                    let input = &token[..parts[0].len() + 1 + parts[1].len()];
                    assert!(
                        rs256_verify(&k[0], input.as_bytes(), &unb64(parts[2])),
                        "{label}"
                    );
                    valid_rs256 += 1;
                }
            }
        }
    }
    assert!(valid_rs256 >= 2 && total > 300, "{valid_rs256} of {total}");
}

#[test]
fn wycheproof_jwk_suite() {
    let file = load("json_web_key_test.json");
    let mut total = 0;
    for group in file["testGroups"].as_array().unwrap() {
        let private = group["private"].to_string();
        // A key set with private members is never a trust file.
        assert!(
            parse_public_keys(private.as_bytes()).is_err(),
            "{}",
            group["comment"]
        );
        // Its public half loads only when every key is an RS256-capable RSA key.
        let mut public = group["private"].clone();
        let set = public.get_mut("keys").and_then(Value::as_array_mut);
        let mut all_rsa = true;
        for k in set.into_iter().flatten() {
            all_rsa &= k["kty"] == "RSA" && k.get("alg").is_none_or(|a| a == "RS256");
            for m in ["d", "p", "q", "dp", "dq", "qi", "k"] {
                k.as_object_mut().unwrap().remove(m);
            }
        }
        let loaded = parse_public_keys(public.to_string().as_bytes());
        if public.get("keys").is_some() && !all_rsa {
            assert!(
                loaded.is_err(),
                "{}: a non-RS256 key set loaded",
                group["comment"]
            );
        }
        if let Err(e) = &loaded {
            if all_rsa {
                // RSA keys refused only for strength.
                assert!(
                    matches!(e, KeyError::TooSmall(_) | KeyError::BadExponent(_)),
                    "{}: {e}",
                    group["comment"]
                );
            }
        }
        let mut trust = TrustStore::new();
        trust
            .add(
                ISSUER,
                loaded.unwrap_or_else(|_| vec![keys().brand_pub.clone()]),
            )
            .unwrap();
        let v = Verifier::new(trust, vec![], Policy::default()).without_cache();
        for case in group["tests"].as_array().unwrap() {
            total += 1;
            let token = token_text(&case["jws"]);
            check_not_verified(&v, &format!("jwk tc {}", case["tcId"]), token.as_bytes());
        }
    }
    assert!(total >= 20);
}

#[test]
fn rfc7520_section6_nested_example() {
    use josekit::jwe::alg::rsaes::RsaesJweAlgorithm;
    use josekit::jwe::enc::aesgcm::AesgcmJweEncryption;
    use josekit::jwe::{JweContentEncryption, JweDecrypter, JweHeader};
    use josekit::jws::{JwsVerifier, PS256};

    let path = vectors("wycheproof/rfc7520_sec6_nested.json");
    let v: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let compact = v["jwe_compact"].as_str().unwrap();
    let expected_inner = v["expected_inner_jws"].as_str().unwrap();
    let desk_pem = jwk_to_pem(&v["enc_private_jwk"]).unwrap();
    let desk = parse_decryption_keys(&desk_pem).unwrap();
    let brand = parse_public_keys(v["sig_public_jwk"].to_string().as_bytes()).unwrap();

    // The claims say exp 1300819380 (2011): evaluate inside that validity.
    let inner_claims: Value =
        serde_json::from_slice(&unb64(expected_inner.split('.').nth(1).unwrap())).unwrap();
    let exp = inner_claims["exp"].as_i64().unwrap();
    assert_eq!(exp, 1_300_819_380);
    let then = exp - 30;
    let mut trust = TrustStore::new();
    trust
        .add(inner_claims["iss"].as_str().unwrap(), brand.clone())
        .unwrap();
    let engine = Verifier::new(trust, desk.clone(), Policy::default()).without_cache();
    // Policy: RSA-OAEP (SHA-1) + A128GCM outside and PS256 inside are not ours.
    let Verdict::Rejected(r) = engine.verify(compact.as_bytes(), then) else {
        panic!("verified")
    };
    assert_eq!(r.reason, Reason::UnsupportedAlgorithm, "{}", r.detail);
    assert!(r.detail.contains("RSA-OAEP"), "{}", r.detail);
    let Verdict::Rejected(r) = engine.verify(expected_inner.as_bytes(), then) else {
        panic!("verified")
    };
    assert_eq!(r.reason, Reason::UnsupportedAlgorithm);
    assert!(r.detail.contains("PS256"), "{}", r.detail);

    // The layers beneath the policy: the key we loaded decrypts, the tag checks, the signature
    // verifies.
    let parts: Vec<&str> = compact.split('.').collect();
    let pkcs8 = openssl::pkey::PKey::private_key_from_pem(&desk_pem)
        .unwrap()
        .private_key_to_pkcs8()
        .unwrap();
    let oaep = RsaesJweAlgorithm::RsaOaep
        .decrypter_from_der(&pkcs8)
        .unwrap();
    let cek = oaep
        .decrypt(
            Some(&unb64(parts[1])),
            &AesgcmJweEncryption::A128gcm,
            &JweHeader::new(),
        )
        .unwrap();
    assert_eq!(cek.len(), 16);
    let plaintext = AesgcmJweEncryption::A128gcm
        .decrypt(
            &cek,
            Some(&unb64(parts[2])),
            &unb64(parts[3]),
            parts[0].as_bytes(),
            Some(&unb64(parts[4])),
        )
        .unwrap();
    assert_eq!(std::str::from_utf8(&plaintext).unwrap(), expected_inner);
    let mut bad_tag = unb64(parts[4]);
    bad_tag[0] ^= 1;
    assert!(AesgcmJweEncryption::A128gcm
        .decrypt(
            &cek,
            Some(&unb64(parts[2])),
            &unb64(parts[3]),
            parts[0].as_bytes(),
            Some(&bad_tag)
        )
        .is_err());
    let inner: Vec<&str> = expected_inner.split('.').collect();
    let ps256 = PS256.verifier_from_der(brand[0].spki_der()).unwrap();
    let input = &expected_inner[..inner[0].len() + 1 + inner[1].len()];
    ps256.verify(input.as_bytes(), &unb64(inner[2])).unwrap();
    let mut bad_sig = unb64(inner[2]);
    bad_sig[10] ^= 1;
    assert!(ps256.verify(input.as_bytes(), &bad_sig).is_err());
    // Our RS256 primitive does not accept the PS256 signature.
    assert!(!rs256_verify(&brand[0], input.as_bytes(), &unb64(inner[2])));
}
