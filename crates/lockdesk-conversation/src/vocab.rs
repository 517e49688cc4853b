//! The desk's domain vocabulary, one home per concept: a conversation's state name, an alert's
//! kind, a reason (the verifier's 16 plus the 2 mismatch reasons), a presentation's verdict,
//! where the visitor came from, and an iAdvize operator id. Each is defined once here (the verifier's 16 reasons are listed
//! once, in `lockdesk_verify::with_reasons!`, which generates their variants here) with its
//! serde form (the snake_case wire and store spelling, never renamed), its `code()`/parse pair
//! (the desk's SQLite columns hold the code), and, with the `ts` feature, its TypeScript form
//! (`lockdesk-api` re-exports these types and generates `ui/src/ipc/bindings.ts` from them, so
//! the UI's label tables are typed over the same variants).
//!
//! Must not: pass an unknown code on as text. A reason this build does not know reads as
//! [`ReasonCode::Unknown`]; an unknown state name is refused by [`AuthStateName::from_code`]
//! and read as `failed` by [`AuthStateName::from_stored`] (never as anonymous or secured); an
//! unknown verdict reads as `rejected` ([`PresentationVerdict::from_stored`]).

use serde::{Deserialize, Serialize};

#[cfg(feature = "ts")]
use ts_rs::TS;

use crate::{Alert, AuthState, MismatchSource};

/// A code that names none of a vocabulary's variants: `what` is the vocabulary ("state",
/// "alert kind", "visitor source", "operator id"). The code itself is not kept: it came from
/// outside (a store row, a wire value) and may be anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnknownCode {
    pub what: &'static str,
}

impl std::fmt::Display for UnknownCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "not a known {}", self.what)
    }
}

impl std::error::Error for UnknownCode {}

/// The one authentication state a conversation is in, by name ([`AuthState`]'s variants).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(TS))]
#[serde(rename_all = "snake_case")]
pub enum AuthStateName {
    /// No evidence yet.
    Anonymous,
    /// A valid token, within the authenticated-session lifetime.
    Secured,
    /// Was secured; the session lifetime passed without a new valid token.
    Lapsed,
    /// The last presentation was rejected (never shown as anonymous).
    Failed,
    /// A valid token whose userId differs from the one verified earlier or from the platform's.
    Mismatch,
    /// A third-party channel: authentication does not exist there.
    Unsupported,
    /// Closed; `closedFrom` keeps the state it was in.
    Closed,
}

impl AuthStateName {
    pub const ALL: [AuthStateName; 7] = [
        AuthStateName::Anonymous,
        AuthStateName::Secured,
        AuthStateName::Lapsed,
        AuthStateName::Failed,
        AuthStateName::Mismatch,
        AuthStateName::Unsupported,
        AuthStateName::Closed,
    ];

    /// The stable spelling, as serialised and stored.
    pub const fn code(self) -> &'static str {
        match self {
            AuthStateName::Anonymous => "anonymous",
            AuthStateName::Secured => "secured",
            AuthStateName::Lapsed => "lapsed",
            AuthStateName::Failed => "failed",
            AuthStateName::Mismatch => "mismatch",
            AuthStateName::Unsupported => "unsupported",
            AuthStateName::Closed => "closed",
        }
    }

    /// The state named `code`, `None` for anything else.
    pub fn from_code(code: &str) -> Option<AuthStateName> {
        AuthStateName::ALL.into_iter().find(|s| s.code() == code)
    }

    /// A state name read back from a store: an unknown name (a newer Lockdesk's, or an edited
    /// row) reads as `failed`, the most cautious reading: never as anonymous or secured.
    pub fn from_stored(code: &str) -> AuthStateName {
        AuthStateName::from_code(code).unwrap_or(AuthStateName::Failed)
    }

    /// States an advisor must not miss (the UI and notifications treat them as alarms).
    pub const fn is_alarm(self) -> bool {
        matches!(self, AuthStateName::Failed | AuthStateName::Mismatch)
    }
}

impl std::str::FromStr for AuthStateName {
    type Err = UnknownCode;
    fn from_str(s: &str) -> Result<Self, UnknownCode> {
        AuthStateName::from_code(s).ok_or(UnknownCode { what: "state" })
    }
}

impl std::fmt::Display for AuthStateName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

// The verifier's reasons come from `lockdesk_verify::with_reasons!`, the one list of them: each
// has a variant here with its name, and `verification` and `From<Reason>` map each to the other.
// A new reason in the verifier gets its variant here, and so, through the bindings, needs a label
// in the UI before it compiles.
macro_rules! reason_code {
    ($($(#[$doc:meta])* $name:ident => $code:literal,)*) => {
        /// Why a conversation is `failed` or in `mismatch`, or why a presentation was rejected:
        /// the verifier's 16 reason codes and the 2 mismatch reasons. The UI has a label for each
        /// (its table is typed over this enum, so a new variant without a label does not
        /// compile).
        ///
        /// A code this build does not know (a store written by a newer or older Lockdesk) reads
        /// as `unknown`, shown with a generic label: never as the raw text.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[cfg_attr(feature = "ts", derive(TS))]
        #[serde(rename_all = "snake_case")]
        pub enum ReasonCode {
            $($name,)*
            /// Mismatch: a valid token proved another userId than the one verified earlier.
            TokenUserIdDiffers,
            /// Mismatch: the platform's profile (`externalUserId`) names someone else.
            PlatformUserIdDiffers,
            /// A code this build does not know.
            Unknown,
        }

        impl ReasonCode {
            /// Every known reason (not `unknown`): the verifier's, then the mismatch reasons.
            pub const KNOWN: [ReasonCode; 18] = [
                $(ReasonCode::$name,)*
                ReasonCode::TokenUserIdDiffers,
                ReasonCode::PlatformUserIdDiffers,
            ];

            /// The verifier's reason this is, `None` for a mismatch reason or `unknown`.
            pub fn verification(self) -> Option<lockdesk_verify::Reason> {
                Some(match self {
                    $(ReasonCode::$name => lockdesk_verify::Reason::$name,)*
                    ReasonCode::TokenUserIdDiffers
                    | ReasonCode::PlatformUserIdDiffers
                    | ReasonCode::Unknown => return None,
                })
            }
        }

        /// Exhaustive over the verifier's reasons.
        impl From<lockdesk_verify::Reason> for ReasonCode {
            fn from(r: lockdesk_verify::Reason) -> ReasonCode {
                match r {
                    $(lockdesk_verify::Reason::$name => ReasonCode::$name,)*
                }
            }
        }
    };
}

lockdesk_verify::with_reasons!(reason_code);

/// Read as [`ReasonCode::from_code`] does: a code this build does not know is `unknown`.
impl<'de> Deserialize<'de> for ReasonCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<ReasonCode, D::Error> {
        let code = std::borrow::Cow::<str>::deserialize(d)?;
        Ok(ReasonCode::from_code(&code))
    }
}

impl ReasonCode {
    /// The stable snake_case code, as serialised and stored.
    pub fn code(self) -> &'static str {
        match self {
            ReasonCode::TokenUserIdDiffers => "token_user_id_differs",
            ReasonCode::PlatformUserIdDiffers => "platform_user_id_differs",
            ReasonCode::Unknown => "unknown",
            other => match other.verification() {
                Some(r) => r.code(),
                None => "unknown",
            },
        }
    }

    /// A code from the store or the wire: a verifier reason, a mismatch reason, or `unknown`.
    pub fn from_code(code: &str) -> ReasonCode {
        if let Some(r) = lockdesk_verify::Reason::from_code(code) {
            return ReasonCode::from(r);
        }
        match code {
            "token_user_id_differs" => ReasonCode::TokenUserIdDiffers,
            "platform_user_id_differs" => ReasonCode::PlatformUserIdDiffers,
            _ => ReasonCode::Unknown,
        }
    }
}

impl From<MismatchSource> for ReasonCode {
    fn from(s: MismatchSource) -> ReasonCode {
        match s {
            MismatchSource::Token => ReasonCode::TokenUserIdDiffers,
            MismatchSource::Platform => ReasonCode::PlatformUserIdDiffers,
        }
    }
}

impl std::fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// What an alert is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(TS))]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// A presentation was rejected (the reason code is in the change and the evidence).
    VerificationFailed,
    /// Another userId was proved inside one conversation.
    IdentitySwitched,
    /// A device that carried one verified person now carries another.
    SharedDevice,
    /// One userId presented with clearly different signed identities.
    ReusedUserId,
    /// A secured conversation's session lapsed.
    SessionLapsed,
    /// The platform's profile names someone other than the verified userId.
    PlatformMismatch,
    /// A new verified userId looks like another identity the desk knows, or mixes scripts.
    /// Evidence: `imitator` (the look-alike), `imitates` (the identity it passes for, empty for
    /// a mixed-script id with no known counterpart), `mixedScript`, `scripts`.
    LookalikeUserId,
}

impl AlertKind {
    pub const ALL: [AlertKind; 7] = [
        AlertKind::VerificationFailed,
        AlertKind::IdentitySwitched,
        AlertKind::SharedDevice,
        AlertKind::ReusedUserId,
        AlertKind::SessionLapsed,
        AlertKind::PlatformMismatch,
        AlertKind::LookalikeUserId,
    ];

    /// The stable snake_case code, as serialised and stored.
    pub const fn code(self) -> &'static str {
        match self {
            AlertKind::VerificationFailed => "verification_failed",
            AlertKind::IdentitySwitched => "identity_switched",
            AlertKind::SharedDevice => "shared_device",
            AlertKind::ReusedUserId => "reused_user_id",
            AlertKind::SessionLapsed => "session_lapsed",
            AlertKind::PlatformMismatch => "platform_mismatch",
            AlertKind::LookalikeUserId => "lookalike_user_id",
        }
    }

    /// The kind named `code`, `None` for anything else.
    pub fn from_code(code: &str) -> Option<AlertKind> {
        AlertKind::ALL.into_iter().find(|k| k.code() == code)
    }
}

impl std::str::FromStr for AlertKind {
    type Err = UnknownCode;
    fn from_str(s: &str) -> Result<Self, UnknownCode> {
        AlertKind::from_code(s).ok_or(UnknownCode { what: "alert kind" })
    }
}

impl std::fmt::Display for AlertKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// Where the visitor came from: a web page (chat, call, video on site) or the brand's mobile app.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(TS))]
#[serde(rename_all = "snake_case")]
pub enum VisitorSource {
    Web,
    App,
}

impl VisitorSource {
    /// The stable code, as serialised and stored.
    pub const fn code(self) -> &'static str {
        match self {
            VisitorSource::Web => "web",
            VisitorSource::App => "app",
        }
    }

    pub fn from_code(code: &str) -> Option<VisitorSource> {
        match code {
            "web" => Some(VisitorSource::Web),
            "app" => Some(VisitorSource::App),
            _ => None,
        }
    }

    /// What a channel says on its own: `MOBILE_APP` is the app, the other channels with
    /// authentication are on a web page, a third-party channel is neither.
    pub fn of_channel(channel: &str) -> Option<VisitorSource> {
        match channel {
            "MOBILE_APP" => Some(VisitorSource::App),
            c if crate::channel_supports_authentication(c) => Some(VisitorSource::Web),
            _ => None,
        }
    }

    /// What token evidence says: an app name means the app, else a domain means the web.
    pub fn of_evidence(has_app: bool, has_domain: bool) -> Option<VisitorSource> {
        if has_app {
            Some(VisitorSource::App)
        } else if has_domain {
            Some(VisitorSource::Web)
        } else {
            None
        }
    }

    /// A conversation's source as shown: the app when the stored source (evidence, else the
    /// channel's) or the channel says so, else the web (a third-party channel included).
    pub fn of_row(stored: Option<VisitorSource>, channel: &str) -> VisitorSource {
        if stored == Some(VisitorSource::App)
            || VisitorSource::of_channel(channel) == Some(VisitorSource::App)
        {
            VisitorSource::App
        } else {
            VisitorSource::Web
        }
    }
}

impl std::str::FromStr for VisitorSource {
    type Err = UnknownCode;
    fn from_str(s: &str) -> Result<Self, UnknownCode> {
        VisitorSource::from_code(s).ok_or(UnknownCode {
            what: "visitor source",
        })
    }
}

/// A token presentation's outcome, as the desk stores it, the audit log records it and the
/// UI's timeline shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(TS))]
#[serde(rename_all = "snake_case")]
pub enum PresentationVerdict {
    /// The verifier accepted the token.
    Verified,
    /// The verifier refused it (the reason is beside it).
    Rejected,
}

impl PresentationVerdict {
    /// The stable code, as serialised and stored.
    pub const fn code(self) -> &'static str {
        match self {
            PresentationVerdict::Verified => "verified",
            PresentationVerdict::Rejected => "rejected",
        }
    }

    /// `verified` when the verifier accepted the token.
    pub const fn of(verified: bool) -> PresentationVerdict {
        if verified {
            PresentationVerdict::Verified
        } else {
            PresentationVerdict::Rejected
        }
    }

    /// The verdict named `code`, `None` for anything else.
    pub fn from_code(code: &str) -> Option<PresentationVerdict> {
        match code {
            "verified" => Some(PresentationVerdict::Verified),
            "rejected" => Some(PresentationVerdict::Rejected),
            _ => None,
        }
    }

    /// A verdict read back from a store: anything but `verified` reads as `rejected`, so an
    /// edited row never proves an identity.
    pub fn from_stored(code: &str) -> PresentationVerdict {
        PresentationVerdict::from_code(code).unwrap_or(PresentationVerdict::Rejected)
    }
}

impl std::fmt::Display for PresentationVerdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// An iAdvize operator (advisor) id: an integer in `0..=`[`OperatorId::MAX`] (desks store it as
/// SQLite's signed 64-bit integer). This type holds an id already read: the one rule that reads
/// one from a webhook payload (a JSON number, or a decimal string in a form body) is
/// `lockdesk_feed::payload::operator_id`, whose bound is the same (`lockdesk_feed::MAX_OPERATOR_ID`;
/// the desk checks at compile time that the two agree).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "ts", derive(TS), ts(type = "number"))]
pub struct OperatorId(u64);

impl OperatorId {
    /// The largest id: `i64::MAX`, so that every id fits the store's INTEGER column.
    pub const MAX: u64 = i64::MAX as u64;

    /// The id `n`, `None` above [`OperatorId::MAX`].
    pub const fn new(n: u64) -> Option<OperatorId> {
        if n <= Self::MAX {
            Some(OperatorId(n))
        } else {
            None
        }
    }

    /// An id read back from the store's INTEGER column (`None` when negative: not one the desk
    /// wrote).
    pub fn from_stored(n: i64) -> Option<OperatorId> {
        u64::try_from(n).ok().and_then(OperatorId::new)
    }

    pub const fn get(self) -> u64 {
        self.0
    }

    /// As stored (SQLite INTEGER): always fits, the bound is `i64::MAX`.
    pub const fn to_stored(self) -> i64 {
        self.0 as i64
    }
}

impl Serialize for OperatorId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

/// A JSON number in `0..=`[`OperatorId::MAX`]; anything else is refused.
impl<'de> Deserialize<'de> for OperatorId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<OperatorId, D::Error> {
        let n = u64::deserialize(d)?;
        OperatorId::new(n).ok_or_else(|| {
            serde::de::Error::custom(format_args!(
                "an operator id is an integer in 0..={}",
                OperatorId::MAX
            ))
        })
    }
}

impl std::fmt::Display for OperatorId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl AuthState {
    /// The state's name.
    pub fn state_name(&self) -> AuthStateName {
        match self {
            AuthState::Anonymous => AuthStateName::Anonymous,
            AuthState::Secured { .. } => AuthStateName::Secured,
            AuthState::Lapsed { .. } => AuthStateName::Lapsed,
            AuthState::Failed { .. } => AuthStateName::Failed,
            AuthState::Mismatch { .. } => AuthStateName::Mismatch,
            AuthState::Unsupported => AuthStateName::Unsupported,
            AuthState::Closed { .. } => AuthStateName::Closed,
        }
    }

    /// Why it is `failed` or in `mismatch` (for a closed one: why the state it kept is);
    /// `None` otherwise.
    pub fn reason(&self) -> Option<ReasonCode> {
        match self {
            AuthState::Failed { reason, .. } => Some(ReasonCode::from(*reason)),
            AuthState::Mismatch { source, .. } => Some(ReasonCode::from(*source)),
            AuthState::Closed { last, .. } => last.reason(),
            _ => None,
        }
    }
}

impl Alert {
    /// The alert's kind (a mismatch raised by the platform's profile is `platform_mismatch`).
    pub fn kind(&self) -> AlertKind {
        match self {
            Alert::VerificationFailed { .. } => AlertKind::VerificationFailed,
            Alert::IdentitySwitched {
                source: MismatchSource::Token,
                ..
            } => AlertKind::IdentitySwitched,
            Alert::IdentitySwitched {
                source: MismatchSource::Platform,
                ..
            } => AlertKind::PlatformMismatch,
            Alert::SessionLapsed { .. } => AlertKind::SessionLapsed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn state_names_round_trip_and_an_unknown_one_is_never_reassuring() {
        for s in AuthStateName::ALL {
            assert_eq!(serde_json::to_value(s).unwrap(), json!(s.code()));
            let back: AuthStateName = serde_json::from_value(json!(s.code())).unwrap();
            assert_eq!(back, s);
            assert_eq!(s.code().parse::<AuthStateName>(), Ok(s));
            assert_eq!(AuthStateName::from_stored(s.code()), s);
        }
        for bad in ["quantum", "", "SECURED", "secured "] {
            assert_eq!(AuthStateName::from_code(bad), None, "{bad:?}");
            assert_eq!(AuthStateName::from_stored(bad), AuthStateName::Failed);
            assert!(serde_json::from_value::<AuthStateName>(json!(bad)).is_err());
        }
        let alarms: Vec<_> = AuthStateName::ALL
            .into_iter()
            .filter(|s| s.is_alarm())
            .collect();
        assert_eq!(alarms, [AuthStateName::Failed, AuthStateName::Mismatch]);
    }

    #[test]
    fn every_machine_state_has_its_name_and_reason() {
        use lockdesk_verify::Reason;
        let states = [
            AuthState::Anonymous,
            AuthState::Secured {
                user_id: "u".into(),
                since: 1,
                until: 2,
            },
            AuthState::Lapsed {
                user_id: "u".into(),
                at: 2,
            },
            AuthState::Failed {
                reason: Reason::Expired,
                at: 1,
            },
            AuthState::Mismatch {
                verified_user_id: "u".into(),
                other_user_id: "v".into(),
                source: MismatchSource::Platform,
                at: 1,
            },
            AuthState::Unsupported,
            AuthState::Closed {
                last: Box::new(AuthState::Mismatch {
                    verified_user_id: "u".into(),
                    other_user_id: "v".into(),
                    source: MismatchSource::Token,
                    at: 1,
                }),
                at: 3,
            },
        ];
        let names: Vec<_> = states.iter().map(AuthState::state_name).collect();
        assert_eq!(names, AuthStateName::ALL);
        for s in &states {
            // The machine's serde tag is the same spelling.
            assert_eq!(serde_json::to_value(s).unwrap()["state"], json!(s.name()));
        }
        let reasons: Vec<_> = states.iter().map(AuthState::reason).collect();
        assert_eq!(
            reasons,
            [
                None,
                None,
                None,
                Some(ReasonCode::Expired),
                Some(ReasonCode::PlatformUserIdDiffers),
                None,
                Some(ReasonCode::TokenUserIdDiffers),
            ]
        );
    }

    #[test]
    fn every_reason_has_one_variant_and_its_code_and_an_unknown_one_reads_unknown() {
        let mut seen = std::collections::BTreeSet::new();
        for r in lockdesk_verify::Reason::ALL {
            let code = ReasonCode::from(r);
            assert_eq!(code.code(), r.code());
            assert_eq!(code.verification(), Some(r));
            assert!(seen.insert(code));
        }
        for m in [MismatchSource::Token, MismatchSource::Platform] {
            let code = ReasonCode::from(m);
            assert_eq!(code.verification(), None);
            assert!(seen.insert(code));
        }
        assert_eq!(seen.into_iter().collect::<Vec<_>>(), ReasonCode::KNOWN);
        for r in ReasonCode::KNOWN {
            assert_ne!(r.code(), "unknown");
            assert_eq!(ReasonCode::from_code(r.code()), r);
            assert_eq!(serde_json::to_value(r).unwrap(), json!(r.code()));
            assert_eq!(
                serde_json::from_value::<ReasonCode>(json!(r.code())).unwrap(),
                r
            );
        }
        assert_eq!(
            ReasonCode::TokenUserIdDiffers.code(),
            "token_user_id_differs"
        );
        assert_eq!(
            ReasonCode::PlatformUserIdDiffers.code(),
            "platform_user_id_differs"
        );
        for bad in [
            "signature_invalid",
            "",
            "BAD_SIGNATURE",
            "<b>x</b>",
            "unknown",
        ] {
            assert_eq!(ReasonCode::from_code(bad), ReasonCode::Unknown, "{bad:?}");
            assert_eq!(
                serde_json::from_value::<ReasonCode>(json!(bad)).unwrap(),
                ReasonCode::Unknown
            );
        }
        assert_eq!(
            serde_json::to_value(ReasonCode::Unknown).unwrap(),
            json!("unknown")
        );
    }

    #[test]
    fn alert_kinds_round_trip_and_every_machine_alert_has_one() {
        for k in AlertKind::ALL {
            assert_eq!(serde_json::to_value(k).unwrap(), json!(k.code()));
            assert_eq!(AlertKind::from_code(k.code()), Some(k));
            assert_eq!(k.code().parse::<AlertKind>(), Ok(k));
        }
        assert_eq!(AlertKind::from_code("nope"), None);
        let switched = |source| Alert::IdentitySwitched {
            verified_user_id: "u".into(),
            other_user_id: "v".into(),
            source,
            at: 1,
        };
        assert_eq!(
            switched(MismatchSource::Token).kind(),
            AlertKind::IdentitySwitched
        );
        assert_eq!(
            switched(MismatchSource::Platform).kind(),
            AlertKind::PlatformMismatch
        );
        assert_eq!(
            Alert::SessionLapsed {
                user_id: "u".into(),
                at: 1
            }
            .kind(),
            AlertKind::SessionLapsed
        );
    }

    #[test]
    fn verdicts_round_trip_and_an_unknown_one_never_proves_anything() {
        for v in [PresentationVerdict::Verified, PresentationVerdict::Rejected] {
            assert_eq!(serde_json::to_value(v).unwrap(), json!(v.code()));
            assert_eq!(PresentationVerdict::from_code(v.code()), Some(v));
            assert_eq!(PresentationVerdict::from_stored(v.code()), v);
        }
        for edited in ["valid", "VERIFIED", "verified ", ""] {
            assert_eq!(PresentationVerdict::from_code(edited), None);
            assert_eq!(
                PresentationVerdict::from_stored(edited),
                PresentationVerdict::Rejected
            );
        }
    }

    #[test]
    fn the_visitor_source_is_derived_by_one_rule() {
        assert_eq!(
            VisitorSource::of_channel("MOBILE_APP"),
            Some(VisitorSource::App)
        );
        for c in ["CHAT", "CALL", "VIDEO"] {
            assert_eq!(VisitorSource::of_channel(c), Some(VisitorSource::Web));
        }
        assert_eq!(VisitorSource::of_channel("WHATSAPP"), None);
        assert_eq!(
            VisitorSource::of_evidence(true, true),
            Some(VisitorSource::App)
        );
        assert_eq!(
            VisitorSource::of_evidence(false, true),
            Some(VisitorSource::Web)
        );
        assert_eq!(VisitorSource::of_evidence(false, false), None);
        assert_eq!(
            VisitorSource::of_row(Some(VisitorSource::App), "CHAT"),
            VisitorSource::App
        );
        assert_eq!(
            VisitorSource::of_row(None, "MOBILE_APP"),
            VisitorSource::App
        );
        assert_eq!(
            VisitorSource::of_row(Some(VisitorSource::Web), "MOBILE_APP"),
            VisitorSource::App
        );
        assert_eq!(
            VisitorSource::of_row(VisitorSource::from_code("tablet"), "WHATSAPP"),
            VisitorSource::Web
        );
        for s in [VisitorSource::Web, VisitorSource::App] {
            assert_eq!(serde_json::to_value(s).unwrap(), json!(s.code()));
            assert_eq!(s.code().parse::<VisitorSource>(), Ok(s));
        }
    }

    #[test]
    fn operator_ids_are_bounded_like_the_store() {
        assert_eq!(OperatorId::new(0).map(OperatorId::get), Some(0));
        assert_eq!(
            OperatorId::new(OperatorId::MAX).map(OperatorId::to_stored),
            Some(i64::MAX)
        );
        assert_eq!(OperatorId::new(OperatorId::MAX + 1), None);
        assert_eq!(OperatorId::from_stored(-1), None);
        assert_eq!(OperatorId::from_stored(7).map(OperatorId::get), Some(7));
        let o = OperatorId::new(42).unwrap();
        assert_eq!(serde_json::to_value(o).unwrap(), json!(42));
        assert_eq!(serde_json::from_value::<OperatorId>(json!(42)).unwrap(), o);
        for bad in [
            json!(-1),
            json!(1.5),
            json!("42"),
            json!(u64::MAX),
            json!(null),
        ] {
            assert!(
                serde_json::from_value::<OperatorId>(bad.clone()).is_err(),
                "{bad}"
            );
        }
    }
}
