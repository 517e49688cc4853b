#![no_main]
//! Input = JWS header JSON, a NUL byte, claims JSON; signed with the trusted brand key so every
//! mutation passes the signature and exercises the claim checks.

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use lockdesk_verify::mint::{sign_with_header, SigningKey};
use lockdesk_verify::Verifier;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    static V: OnceLock<(Verifier, SigningKey)> = OnceLock::new();
    let (v, key) = V.get_or_init(|| {
        (
            common::verifier(),
            SigningKey::from_pem(common::BRAND_KEY).expect("signing key"),
        )
    });
    let (header, claims) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&br#"{"alg":"RS256"}"#[..], data),
    };
    let Ok(header) = std::str::from_utf8(header) else {
        return;
    };
    let Ok(token) = sign_with_header(header, claims, key) else {
        return;
    };
    common::assert_no_backstop(&v.verify(token.as_bytes(), common::NOW));
});
