//! Strict base64: unpadded canonical base64url for token segments, standard base64 (padding
//! optional, whitespace allowed) for bare DER key text.

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::{alphabet, Engine};

/// RFC 7515 base64url: no padding, no trailing bits (so each segment has exactly one encoding).
const URL: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(false),
);

const STANDARD: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

pub fn url_decode(s: &[u8]) -> Option<Vec<u8>> {
    URL.decode(s).ok()
}

pub fn url_encode(bytes: &[u8]) -> String {
    URL.encode(bytes)
}

/// Standard base64 with any ASCII whitespace removed first (keys get pasted with line breaks).
pub fn standard_decode(s: &[u8]) -> Option<Vec<u8>> {
    let compact: Vec<u8> = s
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    if compact.is_empty() {
        return None;
    }
    STANDARD.decode(compact).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_is_strict() {
        assert_eq!(url_decode(b"Zm9v").as_deref(), Some(&b"foo"[..]));
        assert_eq!(url_decode(b"Zm8").as_deref(), Some(&b"fo"[..]));
        // Non-canonical trailing bits, padding, the standard alphabet and a lone char are refused.
        assert_eq!(url_decode(b"Zm9"), None);
        assert_eq!(url_decode(b"Zm-"), None);
        assert_eq!(url_decode(b"Zm8="), None);
        assert_eq!(url_decode(b"a+b/"), None);
        assert_eq!(url_decode(b"Z"), None);
    }
}
