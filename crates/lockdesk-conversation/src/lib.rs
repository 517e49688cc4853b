//! The authentication state of one conversation, as a pure state machine.
//!
//! Architecture invariants:
//! - no I/O and no clock: every event carries its time, and time-based transitions happen when
//!   the caller applies [`Event::Tick`] (the desk core ticks on a timer, so a secured conversation
//!   lapses without any new event arriving);
//! - a rejected presentation is never "anonymous": it is [`AuthState::Failed`] with its reason;
//! - only a verified token moves a conversation towards [`AuthState::Secured`]; what the platform
//!   reports (`Visitor.externalUserId`) can raise a mismatch but never secure anything;
//! - a mismatch is sticky until the conversation closes: a later valid token for the first
//!   person does not erase the evidence that someone else's token was presented;
//! - `closed` freezes the last state for history; nothing after the close changes it, with one
//!   exception: what the platform reports (`Visitor.externalUserId`) is only known after the
//!   close (iAdvize's GraphQL API lists closed conversations), so a platform userId that differs
//!   from the verified one turns the kept state into a mismatch and alerts, once;
//! - states round-trip through serde (the desk core stores them): reason codes are read back
//!   with [`Reason::from_code`];
//! - the vocabulary the rest of Lockdesk names these things with (state names, reasons including
//!   the mismatch reasons, alert kinds, visitor source, operator id) is defined once, in
//!   `vocab.rs`, next to the machine whose states and alerts it names.
//!
//! The transition table is written out in ARCHITECTURE.md and tested exhaustively here.

use lockdesk_verify::Reason;
use serde::{Deserialize, Serialize};

mod vocab;
pub use vocab::{
    AlertKind, AuthStateName, OperatorId, PresentationVerdict, ReasonCode, UnknownCode,
    VisitorSource,
};

/// Channels where Authenticated Messaging exists (iAdvize: chat, video and call onsite, and the
/// mobile app). Every other channel (WhatsApp, Messenger, SMS, ...) is third-party.
pub fn channel_supports_authentication(channel: &str) -> bool {
    matches!(channel, "CHAT" | "CALL" | "VIDEO" | "MOBILE_APP")
}

fn reason_code<S: serde::Serializer>(reason: &Reason, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(reason.code())
}

fn reason_from_code<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Reason, D::Error> {
    let code = String::deserialize(d)?;
    Reason::from_code(&code)
        .ok_or_else(|| serde::de::Error::custom(format!("unknown reason code {code:?}")))
}

/// Where a conflicting identity came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MismatchSource {
    /// A valid token carried another userId.
    Token,
    /// The platform's profile (`Visitor.externalUserId`) names someone else.
    Platform,
}

/// The one authentication state a conversation is in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum AuthState {
    /// No evidence yet.
    Anonymous,
    /// A valid token, within the authenticated-session lifetime.
    Secured {
        user_id: String,
        /// When the last valid token was presented.
        since: i64,
        /// When the session lapses without a new valid token.
        until: i64,
    },
    /// Was secured; the session lifetime passed without a new valid token.
    Lapsed { user_id: String, at: i64 },
    /// The last presentation was rejected.
    Failed {
        #[serde(serialize_with = "reason_code", deserialize_with = "reason_from_code")]
        reason: Reason,
        at: i64,
    },
    /// Two identities for one conversation.
    Mismatch {
        verified_user_id: String,
        other_user_id: String,
        source: MismatchSource,
        at: i64,
    },
    /// A third-party channel: authentication does not exist there.
    Unsupported,
    /// Closed, keeping the state it had.
    Closed { last: Box<AuthState>, at: i64 },
}

impl AuthState {
    /// The stable name used in the CLI's JSON and by the UI ([`AuthStateName::code`]).
    pub fn name(&self) -> &'static str {
        self.state_name().code()
    }
}

/// Something that happened to the conversation. Times are seconds since the epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A presentation whose token verified, for this userId.
    Verified { user_id: String, at: i64 },
    /// A presentation whose token was rejected.
    Rejected { reason: Reason, at: i64 },
    /// The platform reports this external user id for the conversation's visitor.
    PlatformUserId { user_id: String, at: i64 },
    /// Time passes.
    Tick { now: i64 },
    /// The conversation was closed.
    Closed { at: i64 },
}

/// Something the advisor should be told, with the evidence that raised it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "alert", rename_all = "snake_case")]
pub enum Alert {
    VerificationFailed {
        #[serde(serialize_with = "reason_code")]
        reason: Reason,
        at: i64,
    },
    IdentitySwitched {
        verified_user_id: String,
        other_user_id: String,
        source: MismatchSource,
        at: i64,
    },
    SessionLapsed {
        user_id: String,
        at: i64,
    },
}

/// One conversation's authentication: its state and the first identity verified in it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conversation {
    state: AuthState,
    /// The first userId a valid token proved in this conversation; mismatches are against it.
    verified_user_id: Option<String>,
    /// The authenticated-session lifetime, in seconds.
    session_lifetime: i64,
}

/// What applying an event did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// The state changed (by name or content).
    pub changed: bool,
    pub alert: Option<Alert>,
}

impl Conversation {
    /// A conversation pushed on `channel`, with the configured session lifetime (seconds).
    pub fn new(channel: &str, session_lifetime_secs: i64) -> Conversation {
        Conversation {
            state: if channel_supports_authentication(channel) {
                AuthState::Anonymous
            } else {
                AuthState::Unsupported
            },
            verified_user_id: None,
            session_lifetime: session_lifetime_secs.max(1),
        }
    }

    pub fn state(&self) -> &AuthState {
        &self.state
    }

    pub fn verified_user_id(&self) -> Option<&str> {
        self.verified_user_id.as_deref()
    }

    /// Applies one event; see the transition table in ARCHITECTURE.md.
    pub fn apply(&mut self, event: &Event) -> Outcome {
        let before = self.state.clone();
        let alert = self.transition(event);
        Outcome {
            changed: before != self.state,
            alert,
        }
    }

    fn transition(&mut self, event: &Event) -> Option<Alert> {
        use AuthState as S;
        if let (S::Closed { last, .. }, Event::PlatformUserId { user_id, at }) =
            (&mut self.state, event)
        {
            return Self::platform_after_close(
                last,
                self.verified_user_id.as_deref(),
                user_id,
                *at,
            );
        }
        if matches!(self.state, S::Closed { .. } | S::Unsupported) {
            if let (S::Unsupported, Event::Closed { at }) = (&self.state, event) {
                self.state = S::Closed {
                    last: Box::new(S::Unsupported),
                    at: *at,
                };
            }
            return None;
        }
        match event {
            Event::Closed { at } => {
                let last = std::mem::replace(&mut self.state, S::Anonymous);
                self.state = S::Closed {
                    last: Box::new(last),
                    at: *at,
                };
                None
            }
            Event::Tick { now } => match &self.state {
                S::Secured { user_id, until, .. } if *now >= *until => {
                    let user_id = user_id.clone();
                    let at = *until;
                    self.state = S::Lapsed {
                        user_id: user_id.clone(),
                        at,
                    };
                    Some(Alert::SessionLapsed { user_id, at })
                }
                _ => None,
            },
            Event::Rejected { reason, at } => {
                // A mismatch stays a mismatch; the failure is reported either way.
                if !matches!(self.state, S::Mismatch { .. }) {
                    self.state = S::Failed {
                        reason: *reason,
                        at: *at,
                    };
                }
                Some(Alert::VerificationFailed {
                    reason: *reason,
                    at: *at,
                })
            }
            Event::Verified { user_id, at } => {
                let first = self.verified_user_id.get_or_insert_with(|| user_id.clone());
                if first != user_id {
                    return self.mismatch(user_id, MismatchSource::Token, *at);
                }
                if matches!(self.state, S::Mismatch { .. }) {
                    return None;
                }
                let until = at.saturating_add(self.session_lifetime);
                // A token older than the one already applied never shortens the session.
                if let S::Secured { until: current, .. } = &self.state {
                    if *current >= until {
                        return None;
                    }
                }
                self.state = S::Secured {
                    user_id: user_id.clone(),
                    since: *at,
                    until,
                };
                None
            }
            Event::PlatformUserId { user_id, at } => match &self.verified_user_id {
                Some(first) if first != user_id => {
                    self.mismatch(user_id, MismatchSource::Platform, *at)
                }
                _ => None,
            },
        }
    }

    /// The platform's report arrives after the close (backfill): a differing userId turns the
    /// kept state into a mismatch, unless it already is one or nothing was ever verified.
    fn platform_after_close(
        last: &mut AuthState,
        verified: Option<&str>,
        other: &str,
        at: i64,
    ) -> Option<Alert> {
        let verified = verified?;
        if verified == other || matches!(last, AuthState::Mismatch { .. } | AuthState::Unsupported)
        {
            return None;
        }
        *last = AuthState::Mismatch {
            verified_user_id: verified.to_owned(),
            other_user_id: other.to_owned(),
            source: MismatchSource::Platform,
            at,
        };
        Some(Alert::IdentitySwitched {
            verified_user_id: verified.to_owned(),
            other_user_id: other.to_owned(),
            source: MismatchSource::Platform,
            at,
        })
    }

    /// The authenticated-session lifetime, in seconds.
    pub fn session_lifetime(&self) -> i64 {
        self.session_lifetime
    }

    fn mismatch(&mut self, other: &str, source: MismatchSource, at: i64) -> Option<Alert> {
        if matches!(self.state, AuthState::Mismatch { .. }) {
            return None;
        }
        let verified = self.verified_user_id.clone().unwrap_or_default();
        self.state = AuthState::Mismatch {
            verified_user_id: verified.clone(),
            other_user_id: other.to_owned(),
            source,
            at,
        };
        Some(Alert::IdentitySwitched {
            verified_user_id: verified,
            other_user_id: other.to_owned(),
            source,
            at,
        })
    }
}

#[cfg(test)]
mod tests;
