//! The gateway's secrets in the form the request path needs, computed once when the
//! configuration is loaded: keyed HMAC states for webhook signatures, SHA-256 digests of bearer
//! credentials.
//!
//! Must not: keep a credential in clear once digested; compare secrets in variable time; put a
//! secret in `Debug` output.

use hmac::{Hmac, Mac};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

use crate::Secret;

/// The HMAC-SHA256 states keyed with each iAdvize app's webhook secret (the key schedule is done
/// once; each request clones a state).
#[derive(Clone)]
pub struct WebhookKeys(Vec<Hmac<Sha256>>);

impl WebhookKeys {
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a Secret>) -> WebhookKeys {
        WebhookKeys(
            secrets
                .into_iter()
                // HMAC takes keys of any length: `new_from_slice` cannot fail here.
                .filter_map(|s| Hmac::<Sha256>::new_from_slice(s.expose().as_bytes()).ok())
                .collect(),
        )
    }

    pub fn keys(&self) -> &[Hmac<Sha256>] {
        &self.0
    }
}

impl std::fmt::Debug for WebhookKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WebhookKeys(<{} redacted>)", self.0.len())
    }
}

/// A credential's SHA-256 digest.
pub type Digest = [u8; 32];

/// The digest [`Bearers`] keeps of a configured credential.
pub fn digest(secret: &Secret) -> Digest {
    Sha256::digest(secret.expose().as_bytes()).into()
}

/// Bearer credentials, kept as SHA-256 digests, each naming who holds it.
pub struct Bearers<T> {
    entries: Vec<(Digest, T)>,
}

impl<T> Bearers<T> {
    pub fn new<'a>(credentials: impl IntoIterator<Item = (&'a Secret, T)>) -> Bearers<T> {
        Bearers {
            entries: credentials
                .into_iter()
                .map(|(secret, who)| (digest(secret), who))
                .collect(),
        }
    }

    /// Who `authorization` (`Bearer <credential>`) belongs to.
    ///
    /// The presented value is hashed, then compared with every digest in constant time: neither
    /// the content nor the length of a credential leaks through timing.
    pub fn find(&self, authorization: Option<&[u8]>) -> Option<&T> {
        self.find_with_digest(authorization).map(|(_, who)| who)
    }

    /// As [`Bearers::find`], with the presented credential's digest (a feed connection keeps it
    /// to learn, at a configuration reload, whether its credential still exists).
    pub fn find_with_digest(&self, authorization: Option<&[u8]>) -> Option<(Digest, &T)> {
        let value = authorization?;
        let presented = value
            .strip_prefix(b"Bearer ")
            .or_else(|| value.strip_prefix(b"bearer "))?;
        let presented: Digest = Sha256::digest(presented).into();
        self.by_digest(&presented).map(|who| (presented, who))
    }

    /// Who holds the credential with this digest (compared in constant time with every entry).
    pub fn by_digest(&self, presented: &Digest) -> Option<&T> {
        let mut found = None;
        for (digest, who) in &self.entries {
            if bool::from(digest.ct_eq(presented)) && found.is_none() {
                found = Some(who);
            }
        }
        found
    }
}

impl<T> std::fmt::Debug for Bearers<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Bearers(<{} redacted>)", self.entries.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_matches_exactly_one_holder() {
        let a = Secret::new("credential-aaaaaaaaaa");
        let b = Secret::new("credential-bbbbbbbbbb");
        let bearers = Bearers::new([(&a, "a"), (&b, "b")]);
        assert_eq!(
            bearers.find(Some(b"Bearer credential-bbbbbbbbbb")),
            Some(&"b")
        );
        assert_eq!(
            bearers.find(Some(b"bearer credential-aaaaaaaaaa")),
            Some(&"a")
        );
        for bad in [
            &b"Bearer credential-bbbbbbbbb"[..],
            b"Bearer credential-bbbbbbbbbbb",
            b"Basic credential-bbbbbbbbbb",
            b"credential-bbbbbbbbbb",
            b"Bearer ",
        ] {
            assert_eq!(bearers.find(Some(bad)), None);
        }
        assert_eq!(bearers.find(None), None);
        assert!(!format!("{bearers:?}").contains("credential"));
    }
}
