//! The token verification engine: decides, for itself, whether a brand really vouched for a
//! visitor, and says precisely why not when it did not.
//!
//! An iAdvize "Authenticated Messaging" token is a compact JWE (`RSA-OAEP-256` + `A256GCM`) whose
//! plaintext is a compact JWS (`RS256`) signed by the brand; a bare JWS is accepted unless the
//! policy requires encryption. [`Verifier::verify`] takes the token bytes and the current time and
//! returns a [`Verdict`]: the verified identity, or a [`Rejection`] with a stable [`Reason`] code.
//!
//! Architecture invariants:
//! - no I/O and no clock: keys, policy and `now` are passed in (the `lockdesk-keys` crate reads
//!   files and URLs);
//! - josekit is used only for signing and encrypting when minting, and as the tested reference
//!   for the three primitives verification runs on OpenSSL directly (RSA-OAEP-256, AES-256-GCM,
//!   RS256, see [`primitives`]); parsing, header and claim policy are ours,
//!   because josekit 0.10.3 accepts any `enc`, unbounded `zip`, ignored `crit`, truncated tags,
//!   odd IVs, and panics on some inputs. `jwt::decode_with_decrypter` (which accepts
//!   encrypted-but-unsigned tokens) is never called;
//! - size and segment lengths are checked before any RSA work;
//! - nothing panics on any input, and a `catch_unwind` at [`Verifier::verify`] turns a bug into a
//!   rejection rather than a crash;
//! - details never echo a whole token; untrusted strings in details are escaped and truncated.

mod b64;
mod cache;
mod claims;
mod engine;
pub mod floor;
mod json;
mod keys;
pub mod mint;
mod policy;
pub mod primitives;
mod verdict;

pub use engine::Verifier;
pub use keys::{
    inspect_key, parse_decryption_keys, parse_public_keys, thumbprint, DecryptionKey, KeyError,
    KeyForm, KeyInfo, PublicKey, TrustStore, MAX_RSA_BITS, MIN_RSA_BITS,
};
pub use policy::Policy;
pub use verdict::{Format, Reason, Rejection, Verdict, Verified, VisitorData, VISITOR_DATA_FIELDS};

/// Verifies a token at a time (Unix seconds): what the desk core needs of a verifier. Defined
/// here, beside the verifier, so a consumer (lockdesk-desk) does not depend on where keys come
/// from. Implemented by [`Verifier`] (fixed keys) and by `lockdesk_keys::Engine` (key files,
/// JWKS refetch, verdict cache).
pub trait TokenVerifier: Send + Sync {
    fn verify(&self, token: &[u8], now: i64) -> Verdict;
}

impl TokenVerifier for Verifier {
    fn verify(&self, token: &[u8], now: i64) -> Verdict {
        Verifier::verify(self, token, now)
    }
}

/// The claim holding the brand's user id.
pub const USER_ID_CLAIM: &str = "https://iadvize.com/userId";
/// The claim holding the visitor's profile.
pub const VISITOR_DATA_CLAIM: &str = "https://iadvize.com/visitorData";

/// A short, non-reversible label for a token, for logs: the first 12 hex digits of its SHA-256.
/// Tokens are bearer credentials and are never logged whole.
pub fn token_label(token: &[u8]) -> String {
    let digest = openssl::sha::sha256(token);
    digest[..6].iter().map(|b| format!("{b:02x}")).collect()
}
