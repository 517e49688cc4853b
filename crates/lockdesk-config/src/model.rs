//! The configuration file's shape. Unknown keys are refused so a typo never silently does nothing.

use serde::{Deserialize, Serialize};

pub const DEFAULT_LEEWAY_SECS: u32 = 60;
pub const DEFAULT_SESSION_LIFETIME_MINS: u32 = 60;
pub const DEFAULT_MAX_TOKEN_LIFETIME_SECS: u32 = 3600;

/// Everything Lockdesk reads from `config.toml`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub feed: Feed,
    /// The brands whose tokens we accept, each with the public key (file or JWKS URL) that signs them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub trust: Vec<TrustedIssuer>,
    pub decryption: Decryption,
    pub verification: Verification,
    pub ui: Ui,
    pub notifications: Notifications,
    /// iAdvize's GraphQL API, for the closed-conversation history. Optional.
    #[serde(skip_serializing_if = "IAdvizeApi::is_empty")]
    pub iadvize: IAdvizeApi,
}

/// The gateway feed this desk subscribes to. Nothing set means "not configured" (demo mode).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Feed {
    /// `wss://host/v1/feed` (`ws://` only for loopback addresses), or several addresses of one
    /// gateway log (its instances), tried in order with failover: `url = "wss://a/v1/feed"` or
    /// `url = ["wss://a/v1/feed", "wss://b/v1/feed"]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<FeedUrls>,
    /// The subscriber credential the gateway issued to this desk. A secret: never logged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
    /// A PEM file of extra CA certificates trusted for `wss://` besides the system's: the
    /// private CA of a load balancer in front of the gateway's instances. Adds trust only;
    /// certificate verification is never turned off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
}

impl std::fmt::Debug for Feed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feed")
            .field("url", &self.url)
            .field(
                "credential",
                &self.credential.as_ref().map(|_| "<redacted>"),
            )
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// The most gateway addresses `[feed] url` may list (the feed client's own limit,
/// `lockdesk_feed_client::MAX_URLS`).
pub const MAX_FEED_URLS: usize = 16;

/// The gateway's feed addresses, in the order they are tried. In TOML one address is a string
/// (the form older files have: they stay valid and are written back unchanged), several are an
/// array of strings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FeedUrls(pub Vec<String>);

impl FeedUrls {
    pub fn as_slice(&self) -> &[String] {
        &self.0
    }

    /// The addresses that are not blank, trimmed.
    pub fn addresses(&self) -> Vec<String> {
        self.0
            .iter()
            .map(|u| u.trim())
            .filter(|u| !u.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

impl From<&str> for FeedUrls {
    fn from(url: &str) -> Self {
        FeedUrls(vec![url.to_owned()])
    }
}

impl From<String> for FeedUrls {
    fn from(url: String) -> Self {
        FeedUrls(vec![url])
    }
}

impl From<Vec<String>> for FeedUrls {
    fn from(urls: Vec<String>) -> Self {
        FeedUrls(urls)
    }
}

impl Serialize for FeedUrls {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [one] => s.serialize_str(one),
            many => many.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for FeedUrls {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Urls;
        impl<'de> serde::de::Visitor<'de> for Urls {
            type Value = FeedUrls;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a gateway address or an array of gateway addresses")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<FeedUrls, E> {
                Ok(FeedUrls(vec![v.to_owned()]))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<FeedUrls, A::Error> {
                let mut urls = Vec::new();
                // Bounded: a longer list is refused by validation, a much longer one here.
                while let Some(url) = seq.next_element::<String>()? {
                    if urls.len() >= 4 * MAX_FEED_URLS {
                        return Err(serde::de::Error::custom(format!(
                            "expected at most {MAX_FEED_URLS} gateway addresses"
                        )));
                    }
                    urls.push(url);
                }
                Ok(FeedUrls(urls))
            }
        }
        d.deserialize_any(Urls)
    }
}

/// One trusted token issuer (`iss`) and where its signing key comes from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustedIssuer {
    pub issuer: String,
    /// A public key file (PEM, bare base64 DER, JWK or JWKS) or an `https://` JWKS URL.
    pub key: String,
}

/// The desk's private keys that open the encrypted (JWE) layer. Several allowed, for rotation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Decryption {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Verification {
    /// Clock-skew allowance applied to `exp` and `nbf`.
    pub leeway_secs: u32,
    /// How long a conversation stays "secured" after a valid token (iAdvize's session lifetime).
    pub session_lifetime_mins: u32,
    /// The longest `exp - now` a token may carry.
    pub max_token_lifetime_secs: u32,
    /// Refuse bare (unencrypted) JWS tokens.
    pub require_encryption: bool,
}

impl Default for Verification {
    fn default() -> Self {
        Verification {
            leeway_secs: DEFAULT_LEEWAY_SECS,
            session_lifetime_mins: DEFAULT_SESSION_LIFETIME_MINS,
            max_token_lifetime_secs: DEFAULT_MAX_TOKEN_LIFETIME_SECS,
            require_encryption: false,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    #[default]
    En,
    Fr,
}

impl Language {
    pub fn code(self) -> &'static str {
        match self {
            Language::En => "en",
            Language::Fr => "fr",
        }
    }

    pub fn from_code(code: &str) -> Option<Language> {
        match code {
            "en" => Some(Language::En),
            "fr" => Some(Language::Fr),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Ui {
    pub language: Language,
}

/// Which desktop notifications are shown. Every alert kind is on by default; `secured` is off by
/// default (the list shows a secured conversation; a notification for each would train the
/// advisor to dismiss notifications). Each can be muted or unmuted (docs/notifications.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Notifications {
    /// A conversation became secured (off by default).
    pub secured: bool,
    /// A token was rejected (critical urgency when the reason points at forgery).
    pub verification_failed: bool,
    /// Another identity appeared inside one conversation, or the platform names someone else.
    pub identity_mismatch: bool,
    /// A device that carried one verified person now carries another.
    pub shared_device: bool,
    /// One userId presented with clearly different signed identities.
    pub reused_user_id: bool,
    /// A secured conversation's authenticated session lapsed.
    pub session_lapsed: bool,
    /// A new verified userId looks like another identity the desk knows, or mixes scripts.
    pub lookalike_user_id: bool,
}

impl Default for Notifications {
    fn default() -> Self {
        Notifications {
            secured: false,
            verification_failed: true,
            identity_mismatch: true,
            shared_device: true,
            reused_user_id: true,
            session_lapsed: true,
            lookalike_user_id: true,
        }
    }
}

/// The iAdvize API account used to backfill closed conversations (GraphQL `closedConversations`)
/// and to read the platform's `Visitor.externalUserId`.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IAdvizeApi {
    /// `https://api.iadvize.com` (or a stand-in on this machine, `http://127.0.0.1:PORT`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// `ha` (default) or `sd`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// A secret: never logged, never sent to the UI.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

impl IAdvizeApi {
    pub fn is_empty(&self) -> bool {
        self.base_url.is_none()
            && self.platform.is_none()
            && self.username.is_none()
            && self.password.is_none()
    }
}

impl std::fmt::Debug for IAdvizeApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IAdvizeApi")
            .field("base_url", &self.base_url)
            .field("platform", &self.platform)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Config {
    /// True when a feed is configured; otherwise the desk runs its embedded demo.
    pub fn has_feed(&self) -> bool {
        !self.feed_urls().is_empty()
    }

    /// The gateway addresses configured in `[feed] url`, trimmed, blank ones left out.
    pub fn feed_urls(&self) -> Vec<String> {
        self.feed
            .url
            .as_ref()
            .map(FeedUrls::addresses)
            .unwrap_or_default()
    }
}
