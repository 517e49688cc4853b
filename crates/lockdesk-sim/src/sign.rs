//! iAdvize's webhook signature: `x-iadvize-signature: sha256=<hex>`, the HMAC-SHA256 of the raw
//! body keyed with the app's secret token.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header value for `body` under `secret`.
pub fn webhook_signature(secret: &[u8], body: &[u8]) -> String {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The headers of one delivery attempt: (signature, correlation id, delivery id).
pub fn sign_webhook(
    secret: &[u8],
    body: &[u8],
    correlation_id: &str,
    attempt: u32,
) -> [(&'static str, String); 3] {
    [
        ("x-iadvize-signature", webhook_signature(secret, body)),
        ("x-iadvize-correlationid", correlation_id.to_owned()),
        ("x-iadvize-delivery", format!("{correlation_id}-{attempt}")),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Vectors computed with Python's standard library, an independent implementation:
    /// python3 -c 'import hmac,hashlib;print(hmac.new(b"KEY",b"BODY",hashlib.sha256).hexdigest())'
    #[test]
    fn matches_an_independent_implementation() {
        let cases: [(&[u8], &[u8], &str); 3] = [
            (
                b"s3cret",
                br#"{"eventId":"e1","eventType":"v2.conversation.pushed"}"#,
                "6cde169d853f129beb1161c18457a28e93a01f7a164fbd2946001a9d4963b29c",
            ),
            (
                b"",
                b"",
                "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad",
            ),
            (
                b"k\xff\x00",
                b"caf\xc3\xa9",
                "95ef576c81636bc8afa1e7f7555f1cf6f43fbe237c9888638f8a2d48e70776ba",
            ),
        ];
        for (key, body, want) in cases {
            assert_eq!(webhook_signature(key, body), format!("sha256={want}"));
        }
    }
}
