//! The verifier every target uses: the committed test-only keys, default policy, no cache; and
//! the tokens the desk targets present (minted once per process with the same keys).

#![allow(dead_code)]

use lockdesk_verify::{
    parse_decryption_keys, parse_public_keys, Policy, TrustStore, Verdict, Verifier,
};

pub const NOW: i64 = 1_800_000_000;
pub const ISSUER: &str = "https://test.iadvize.com";
pub const BRAND_KEY: &[u8] =
    include_bytes!("../../crates/lockdesk-verify/tests/data/brand.key.pem");
const BRAND_PUB: &[u8] = include_bytes!("../../crates/lockdesk-verify/tests/data/brand.pub.pem");
const BRAND2_KEY: &[u8] = include_bytes!("../../crates/lockdesk-verify/tests/data/brand2.key.pem");
const DESK_PUB: &[u8] = include_bytes!("../../crates/lockdesk-verify/tests/data/desk.pub.pem");
const DESK_KEY: &[u8] =
    include_bytes!("../../crates/lockdesk-verify/tests/data/desk.key.pkcs1.pem");

pub fn verifier() -> Verifier {
    let mut trust = TrustStore::new();
    trust
        .add(ISSUER, parse_public_keys(BRAND_PUB).expect("brand key"))
        .expect("trust");
    Verifier::new(
        trust,
        parse_decryption_keys(DESK_KEY).expect("desk key"),
        Policy::default(),
    )
    .without_cache()
}

/// The engine catches panics and reports them as this detail; a fuzzer must see them.
pub fn assert_no_backstop(v: &Verdict) {
    if let Verdict::Rejected(r) = v {
        assert!(
            !r.detail.contains("internal error"),
            "the panic backstop fired"
        );
    }
}

/// Tokens for the desk targets, every one the verifier can meet: valid for two userIds (one
/// twice, with different signed e-mails: `reused_user_id`), signed only or also encrypted,
/// expired, too long-lived, signed by an untrusted key, and not a token at all. Valid from
/// `NOW - 60` to `NOW + 1800`.
pub fn token_pool() -> Vec<String> {
    use lockdesk_verify::mint::{mint, Claims, Recipient, SigningKey};
    let brand = SigningKey::from_pem(BRAND_KEY).expect("brand key");
    let other = SigningKey::from_pem(BRAND2_KEY).expect("brand2 key");
    let desk = Recipient::new(&parse_public_keys(DESK_PUB).expect("desk public key")[0])
        .expect("recipient");
    let claims = |user: &str, email: &str, exp: i64| Claims {
        issuer: ISSUER.to_owned(),
        user_id: user.to_owned(),
        visitor_data: serde_json::json!({"firstName": "Ada", "lastName": user, "email": email})
            .as_object()
            .cloned(),
        expires_at: exp,
        issued_at: Some(NOW - 60),
        not_before: None,
        extra: Default::default(),
    };
    let exp = NOW + 1800;
    vec![
        mint(&claims("user-a", "a@example.com", exp), &brand, Some(&desk)).expect("mint"),
        mint(&claims("user-a", "b@example.com", exp), &brand, Some(&desk)).expect("mint"),
        mint(&claims("user-b", "b@example.com", exp), &brand, Some(&desk)).expect("mint"),
        mint(&claims("user-b", "b@example.com", exp), &brand, None).expect("mint"),
        mint(
            &claims("user-a", "a@example.com", NOW - 7200),
            &brand,
            Some(&desk),
        )
        .expect("mint"),
        mint(
            &claims("user-a", "a@example.com", NOW + 86_400),
            &brand,
            Some(&desk),
        )
        .expect("mint"),
        mint(&claims("user-a", "a@example.com", exp), &other, Some(&desk)).expect("mint"),
        "eyJhbGciOiJSUzI1NiJ9.e30.AAAA".to_owned(),
    ]
}
