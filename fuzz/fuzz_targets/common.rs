//! The verifier every target uses: the committed test-only keys, default policy, no cache.

use lockdesk_verify::{
    parse_decryption_keys, parse_public_keys, Policy, TrustStore, Verdict, Verifier,
};

pub const NOW: i64 = 1_800_000_000;
pub const ISSUER: &str = "https://test.iadvize.com";
pub const BRAND_KEY: &[u8] =
    include_bytes!("../../crates/lockdesk-verify/tests/data/brand.key.pem");
const BRAND_PUB: &[u8] = include_bytes!("../../crates/lockdesk-verify/tests/data/brand.pub.pem");
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
