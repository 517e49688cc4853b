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

/// The room [`url_decode_into`] needs for `len` characters (a whole group of 3 bytes for every
/// started group of 4 characters: the decoder's own estimate, never less than the output).
pub const fn url_decoded_room(len: usize) -> usize {
    len.div_ceil(4) * 3
}

/// [`url_decode`] into `out`, which must hold at least [`url_decoded_room`] bytes: the number of
/// bytes written, `None` when `s` is not canonical unpadded base64url (or `out` is too small,
/// which the room above rules out).
pub fn url_decode_into(s: &[u8], out: &mut [u8]) -> Option<usize> {
    URL.decode_slice(s, out).ok()
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

    /// Into a buffer of exactly the stated room, the answer is `url_decode`'s, at every length
    /// and for valid and invalid text alike.
    #[test]
    fn decoding_into_a_buffer_agrees_with_decoding_to_a_vec() {
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut valid = 0;
        for len in 0..=70usize {
            for round in 0..40 {
                let mut s: Vec<u8> = (0..len).map(|_| alphabet[(next() % 64) as usize]).collect();
                if round % 4 == 3 && len > 0 {
                    let at = (next() % len as u64) as usize;
                    s[at] = [b'=', b'+', b'/', b'.', 0xff][(next() % 5) as usize];
                }
                let mut out = vec![0xa5; url_decoded_room(len)];
                let into = url_decode_into(&s, &mut out).map(|n| out[..n].to_vec());
                assert_eq!(into, url_decode(&s), "{:?}", String::from_utf8_lossy(&s));
                valid += usize::from(into.is_some());
            }
        }
        assert!(valid > 500, "the valid cases were exercised ({valid})");
        // Encodings of random bytes of every length come back whole.
        for len in 0..=64usize {
            let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let text = url_encode(&bytes);
            let mut out = vec![0; url_decoded_room(text.len())];
            let n = url_decode_into(text.as_bytes(), &mut out).expect("canonical");
            assert_eq!(&out[..n], &bytes[..]);
        }
    }
}
