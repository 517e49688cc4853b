//! What a token must satisfy beyond its cryptography. Defaults are the issue's: 60 s leeway,
//! `exp` at most 3600 s ahead, 16 KiB, encryption optional.

/// Verification policy. Build with `Policy::default()` and adjust fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Clock-skew allowance applied to `exp`, `nbf` and `iat`.
    pub leeway_secs: u32,
    /// The longest `exp - now` accepted.
    pub max_lifetime_secs: u32,
    /// The largest token accepted, in bytes; checked before any decoding.
    pub max_token_bytes: usize,
    /// Refuse bare (signed-only) JWS tokens.
    pub require_encryption: bool,
}

pub const DEFAULT_LEEWAY_SECS: u32 = 60;
pub const DEFAULT_MAX_LIFETIME_SECS: u32 = 3600;
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 16 * 1024;

impl Default for Policy {
    fn default() -> Self {
        Policy {
            leeway_secs: DEFAULT_LEEWAY_SECS,
            max_lifetime_secs: DEFAULT_MAX_LIFETIME_SECS,
            max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
            require_encryption: false,
        }
    }
}
