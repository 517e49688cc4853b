#![no_main]
//! Any bytes as a token. Must never panic (the engine's catch_unwind is bypassed: libfuzzer-sys
//! aborts on panic, and the backstop's verdict is asserted against too).

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use lockdesk_verify::Verifier;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    static V: OnceLock<Verifier> = OnceLock::new();
    let v = V.get_or_init(common::verifier);
    let verdict = v.verify(data, common::NOW);
    common::assert_no_backstop(&verdict);
    // Also at absurd times: time arithmetic must not overflow.
    for now in [i64::MIN, -1, i64::MAX] {
        common::assert_no_backstop(&v.verify(data, now));
    }
});
