//! What interrupts the advisor, decided without a window: which desk change calls for a notice
//! ([`notice_for_change`]), how urgently ([`urgency`]), and which changes are too old to be
//! notified on their own and are counted into one backlog summary instead ([`is_live`],
//! [`Backlog`], [`BacklogGate`]). The words and the showing are the host's (the desktop app's
//! `notify.rs`); the policy is docs/notifications.md.
//!
//! Must not: put a token, a raw reason code or a conversation id into anything shown: a notice
//! carries the reason as a typed code and names its conversation by the verified userId.

use std::time::Duration;

use lockdesk_api::ReasonCode;
use lockdesk_config::Notifications;
use lockdesk_desk::{AlertKind, AlertRecord, AuthStateName, Change};

/// The kinds of notification, each of which can be muted in Settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NoticeKind {
    /// A conversation became secured (off by default: the list shows it).
    Secured,
    /// A token was rejected.
    VerificationFailed,
    /// Another identity inside one conversation, or the platform names someone else.
    IdentityMismatch,
    /// A device that carried one verified person now carries another.
    SharedDevice,
    /// One userId presented with clearly different signed identities.
    ReusedUserId,
    /// A secured conversation's session lapsed.
    SessionLapsed,
    /// A new verified userId looks like another identity the desk knows, or mixes scripts.
    LookalikeUserId,
}

impl NoticeKind {
    /// Every kind (kept whole by [`NoticeKind::enabled`]'s exhaustive match and its test).
    pub const ALL: [NoticeKind; 7] = [
        NoticeKind::Secured,
        NoticeKind::VerificationFailed,
        NoticeKind::IdentityMismatch,
        NoticeKind::SharedDevice,
        NoticeKind::ReusedUserId,
        NoticeKind::SessionLapsed,
        NoticeKind::LookalikeUserId,
    ];

    /// Whether Settings lets this kind through.
    pub fn enabled(self, settings: &Notifications) -> bool {
        match self {
            NoticeKind::Secured => settings.secured,
            NoticeKind::VerificationFailed => settings.verification_failed,
            NoticeKind::IdentityMismatch => settings.identity_mismatch,
            NoticeKind::SharedDevice => settings.shared_device,
            NoticeKind::ReusedUserId => settings.reused_user_id,
            NoticeKind::SessionLapsed => settings.session_lapsed,
            NoticeKind::LookalikeUserId => settings.lookalike_user_id,
        }
    }
}

/// One notification to show, about one conversation or (a device-level alert raised by
/// evidence that names no open conversation) one device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    pub kind: NoticeKind,
    /// Which conversation a click opens; never shown. `None`: a device-level alert with no
    /// conversation (a click shows the window).
    pub conversation_id: Option<String>,
    /// The verified userId concerned, when there is one (untrusted text: isolated and escaped).
    pub user_id: Option<String>,
    /// Why a token was rejected or an identity mismatches.
    pub reason: Option<ReasonCode>,
    /// A look-alike alert's pair, from its evidence (`None`: not a look-alike, or its evidence
    /// could not be read: the notice then says "another identity").
    pub lookalike: Option<LookalikePair>,
}

/// Who looks like whom, as the look-alike alert's evidence says (untrusted text, both).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LookalikePair {
    /// The look-alike (for a refused userId, already in its visible `⟨U+XXXX⟩` form).
    pub imitator: String,
    /// The identity it passes for; `None` for a mixed-script userId with no known counterpart.
    pub imitates: Option<String>,
    /// Neither can be told to be the imitation: the notice names both, in no direction.
    pub ambiguous: bool,
}

impl LookalikePair {
    /// From a `lookalike_user_id` alert's evidence (`imitator`, `imitates`, `ambiguous`);
    /// `None` when it names no imitator.
    pub fn from_evidence(evidence: &serde_json::Value) -> Option<LookalikePair> {
        let imitator = evidence.get("imitator")?.as_str()?.to_owned();
        Some(LookalikePair {
            imitator,
            imitates: evidence
                .get("imitates")
                .and_then(|v| v.as_str())
                .map(str::to_owned),
            ambiguous: evidence
                .get("ambiguous")
                .and_then(|v| v.as_bool())
                .unwrap_or(false),
        })
    }
}

/// How strongly a notification interrupts. Ordered: `Low < Normal < Critical`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Urgency {
    /// Routine news the list already shows (a conversation secured, a session lapsed).
    Low,
    /// Worth knowing, no action needed now (an expired token, a shared device).
    Normal,
    /// An alarm: the advisor must act on the conversation now (forgery, another identity, a
    /// look-alike or reused userId). Stays on screen until dismissed.
    Critical,
}

/// How long a normal notification stays on screen.
pub const NORMAL_EXPIRY: Duration = Duration::from_secs(10);
/// How long a low-urgency notification stays on screen.
pub const LOW_EXPIRY: Duration = Duration::from_secs(6);

impl Urgency {
    /// How long the notification stays on screen: `None` (until dismissed) only for alarms.
    pub fn expiry(self) -> Option<Duration> {
        match self {
            Urgency::Critical => None,
            Urgency::Normal => Some(NORMAL_EXPIRY),
            Urgency::Low => Some(LOW_EXPIRY),
        }
    }
}

/// Whether a rejection reason points at forgery or tampering (an alarm), rather than at a stale
/// page, a clock or a broken integration (informational: the list shows the conversation as
/// failed, and no identity is trusted either way). Exhaustive: a new reason must be placed here.
pub fn reason_is_alarm(reason: ReasonCode) -> bool {
    match reason {
        ReasonCode::BadSignature
        | ReasonCode::UnknownKey
        | ReasonCode::UntrustedIssuer
        | ReasonCode::UnsupportedAlgorithm
        | ReasonCode::ForbiddenHeader
        | ReasonCode::DuplicateMember
        | ReasonCode::EncryptionRequired
        | ReasonCode::DecryptionFailed
        | ReasonCode::InvalidUserId
        | ReasonCode::TokenUserIdDiffers
        | ReasonCode::PlatformUserIdDiffers
        | ReasonCode::Unknown => true,
        ReasonCode::Malformed
        | ReasonCode::TooLarge
        | ReasonCode::Expired
        | ReasonCode::NotYetValid
        | ReasonCode::LifetimeTooLong
        | ReasonCode::InvalidClaims
        | ReasonCode::InvalidVisitorData => false,
    }
}

/// How strongly `notice` interrupts (docs/notifications.md's table).
pub fn urgency(notice: &Notice) -> Urgency {
    match notice.kind {
        NoticeKind::Secured | NoticeKind::SessionLapsed => Urgency::Low,
        NoticeKind::SharedDevice => Urgency::Normal,
        NoticeKind::IdentityMismatch | NoticeKind::ReusedUserId | NoticeKind::LookalikeUserId => {
            Urgency::Critical
        }
        // No reason recorded: treated as the worst case.
        NoticeKind::VerificationFailed => match notice.reason {
            Some(r) if !reason_is_alarm(r) => Urgency::Normal,
            _ => Urgency::Critical,
        },
    }
}

/// A change older than this when it reaches the desk (a backlog applied after downtime or a
/// reconnection) is not notified on its own: it is counted into one summary ([`Backlog`]).
/// Generous enough for clock differences between the gateway and the desk.
pub const LIVE_WINDOW_MS: i64 = 120_000;

/// A backlog's summary is shown when a batch of current changes arrives, after this long
/// without changes, or [`BACKLOG_LONGEST`] after its first notice (a steady stream of old
/// changes must not hold it back).
pub const BACKLOG_QUIET: Duration = Duration::from_secs(3);
pub const BACKLOG_LONGEST: Duration = Duration::from_secs(10);

/// What a backlog held, by kind: shown as one notification once the desk has caught up, instead
/// of one per historical change (a morning's catch-up would otherwise flood the screen).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Backlog {
    counts: Vec<(NoticeKind, u32)>,
    /// The most urgent notice counted.
    urgency: Option<Urgency>,
}

impl Backlog {
    /// Counts one notice, unless Settings mute its kind.
    pub fn add(&mut self, notice: &Notice, settings: &Notifications) {
        let kind = notice.kind;
        if !kind.enabled(settings) {
            return;
        }
        match self.counts.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, n)) => *n = n.saturating_add(1),
            None => self.counts.push((kind, 1)),
        }
        self.urgency = self.urgency.max(Some(urgency(notice)));
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// How many notices of each kind, in the order first counted.
    pub fn counts(&self) -> &[(NoticeKind, u32)] {
        &self.counts
    }

    /// The summary's urgency: that of the most urgent notice it counts.
    pub fn urgency(&self) -> Urgency {
        self.urgency.unwrap_or(Urgency::Low)
    }
}

/// Whether a change is current enough to be notified on its own (see [`LIVE_WINDOW_MS`]).
pub fn is_live(change: &Change, now_ms: i64) -> bool {
    now_ms.saturating_sub(change.at_ms) <= LIVE_WINDOW_MS
}

/// The backlog's notices and when their summary is due.
#[derive(Default)]
pub struct BacklogGate {
    backlog: Backlog,
    /// [`BACKLOG_LONGEST`] after the first notice counted.
    due: Option<tokio::time::Instant>,
}

impl BacklogGate {
    pub fn add(&mut self, notice: &Notice, settings: &Notifications, now: tokio::time::Instant) {
        self.backlog.add(notice, settings);
        if !self.backlog.is_empty() && self.due.is_none() {
            self.due = Some(now + BACKLOG_LONGEST);
        }
    }

    /// How long to wait for the next changes before showing the summary (`None`: nothing
    /// pending, wait as long as it takes).
    pub fn wait_until(&self, now: tokio::time::Instant) -> Option<tokio::time::Instant> {
        self.due.map(|due| due.min(now + BACKLOG_QUIET))
    }

    /// The summary to show now (empty when nothing is pending), leaving the gate empty.
    pub fn take(&mut self) -> Backlog {
        self.due = None;
        std::mem::take(&mut self.backlog)
    }
}

/// Which notification a change calls for, given the conversation's previous state.
pub fn notice_for(change: &Change, previous: Option<AuthStateName>) -> Option<NoticeKind> {
    if let Some(alert) = change.alert {
        // Exhaustive: a new alert kind does not compile until it has its notice.
        return Some(match alert {
            AlertKind::VerificationFailed => NoticeKind::VerificationFailed,
            AlertKind::IdentitySwitched | AlertKind::PlatformMismatch => {
                NoticeKind::IdentityMismatch
            }
            AlertKind::SharedDevice => NoticeKind::SharedDevice,
            AlertKind::ReusedUserId => NoticeKind::ReusedUserId,
            AlertKind::SessionLapsed => NoticeKind::SessionLapsed,
            AlertKind::LookalikeUserId => NoticeKind::LookalikeUserId,
        });
    }
    (change.state == Some(AuthStateName::Secured) && previous != Some(AuthStateName::Secured))
        .then_some(NoticeKind::Secured)
}

/// The notice a change calls for: its conversation named by its verified userId (never its id),
/// its reason as a typed code (worded by the host, never shown raw).
pub fn notice_of(change: &Change, kind: NoticeKind) -> Notice {
    Notice {
        kind,
        conversation_id: change.conversation_id.clone(),
        user_id: change.user_id.clone(),
        reason: change.reason,
        lookalike: None,
    }
}

/// The notice a change calls for (`None`: none), given its conversation's previous state and its
/// alert's stored record. Device-level alerts (evidence that names no open conversation) notify
/// too, with no conversation to open. A look-alike names the identity imitated, from the
/// alert's evidence (without the record, it says "another identity").
pub fn notice_for_change(
    change: &Change,
    previous: Option<AuthStateName>,
    alert: Option<&AlertRecord>,
) -> Option<Notice> {
    let kind = notice_for(change, previous)?;
    let mut notice = notice_of(change, kind);
    if kind == NoticeKind::LookalikeUserId {
        notice.lookalike = alert.and_then(|a| LookalikePair::from_evidence(&a.evidence));
    }
    Some(notice)
}

/// For tests (this crate's and the app's, feature `testing`): a change of conversation `c`
/// (visitor `v`, CHAT, entry 1 at time 0) to `state` (named by its code), with `alert`.
#[cfg(any(test, feature = "testing"))]
pub fn test_change(state: &str, alert: Option<lockdesk_desk::AlertKind>) -> Change {
    Change {
        seq: 1,
        at_ms: 0,
        conversation_id: Some("c".into()),
        visitor_id: "v".into(),
        channel: Some("CHAT".into()),
        state: Some(state.parse().expect("a state name")),
        user_id: None,
        reason: None,
        alert,
        alert_id: None,
    }
}

#[cfg(test)]
mod tests {
    use super::test_change as change;
    use super::*;

    #[test]
    fn every_notice_kind_is_listed_once_and_can_be_muted() {
        let all_off = Notifications {
            secured: false,
            verification_failed: false,
            identity_mismatch: false,
            shared_device: false,
            reused_user_id: false,
            session_lapsed: false,
            lookalike_user_id: false,
        };
        let mut seen = std::collections::HashSet::new();
        for k in NoticeKind::ALL {
            assert!(seen.insert(k), "{k:?} twice");
            assert!(!k.enabled(&all_off), "{k:?}");
        }
    }

    #[test]
    fn only_entering_secured_notifies_and_every_alert_has_its_kind() {
        assert_eq!(
            notice_for(&change("secured", None), None),
            Some(NoticeKind::Secured)
        );
        assert_eq!(
            notice_for(&change("secured", None), Some(AuthStateName::Anonymous)),
            Some(NoticeKind::Secured)
        );
        let secured = Some(AuthStateName::Secured);
        assert_eq!(notice_for(&change("secured", None), secured), None);
        assert_eq!(notice_for(&change("anonymous", None), None), None);
        assert_eq!(notice_for(&change("closed", None), secured), None);
        use lockdesk_desk::AlertKind::*;
        for (code, kind) in [
            (VerificationFailed, NoticeKind::VerificationFailed),
            (IdentitySwitched, NoticeKind::IdentityMismatch),
            (PlatformMismatch, NoticeKind::IdentityMismatch),
            (SharedDevice, NoticeKind::SharedDevice),
            (ReusedUserId, NoticeKind::ReusedUserId),
            (SessionLapsed, NoticeKind::SessionLapsed),
            (LookalikeUserId, NoticeKind::LookalikeUserId),
        ] {
            assert_eq!(
                notice_for(&change("failed", Some(code)), secured),
                Some(kind)
            );
        }
    }

    /// Issue 13: a device-level alert (evidence naming no open conversation: shared device,
    /// reused or look-alike userId) notified nothing, because only changes with a conversation
    /// reached the notifier. Every alert code notifies, with or without a conversation.
    #[test]
    fn every_alert_code_notifies_with_or_without_a_conversation() {
        for code in AlertKind::ALL {
            let mut on_conversation = change("failed", None);
            on_conversation.alert = Some(code);
            on_conversation.user_id = Some("cust-2".into());
            let n = notice_for_change(&on_conversation, Some(AuthStateName::Secured), None)
                .unwrap_or_else(|| panic!("{code:?}: no notice"));
            assert_eq!(n.conversation_id.as_deref(), Some("c"), "{code:?}");
            let device = Change {
                conversation_id: None,
                channel: None,
                state: None,
                ..on_conversation.clone()
            };
            let n = notice_for_change(&device, None, None)
                .unwrap_or_else(|| panic!("{code:?}: no notice without a conversation"));
            assert_eq!(n.conversation_id, None, "{code:?}");
            assert_eq!(n.user_id.as_deref(), Some("cust-2"), "{code:?}");
        }
    }

    #[test]
    fn changes_older_than_the_live_window_are_counted_not_notified() {
        let now = 1_800_000_000_000;
        let mut c = change("secured", None);
        c.at_ms = now - 5_000;
        assert!(is_live(&c, now));
        c.at_ms = now - LIVE_WINDOW_MS;
        assert!(is_live(&c, now));
        c.at_ms = now - LIVE_WINDOW_MS - 1;
        assert!(!is_live(&c, now));
        // A gateway clock ahead of the desk's: still live.
        c.at_ms = now + 30_000;
        assert!(is_live(&c, now));
    }

    #[test]
    fn a_backlog_summary_is_due_after_a_quiet_spell_or_at_the_latest_ten_seconds_after_its_first_notice(
    ) {
        // Secured is off by default: on here, to count it.
        let settings = Notifications {
            secured: true,
            ..Default::default()
        };
        let secured = notice_of(&change("secured", None), NoticeKind::Secured);
        let mut failed = change("failed", Some(lockdesk_desk::AlertKind::VerificationFailed));
        failed.reason = Some(ReasonCode::BadSignature);
        let failed = notice_of(&failed, NoticeKind::VerificationFailed);
        let t0 = tokio::time::Instant::now();
        let mut gate = BacklogGate::default();
        assert_eq!(gate.wait_until(t0), None, "nothing pending: no deadline");
        gate.add(&secured, &settings, t0);
        // Quiet for 3 s: due.
        assert_eq!(gate.wait_until(t0), Some(t0 + BACKLOG_QUIET));
        // A steady stream of old changes does not postpone it past 10 s after the first notice.
        let t9 = t0 + Duration::from_secs(9);
        gate.add(&failed, &settings, t9);
        assert_eq!(gate.wait_until(t9), Some(t0 + BACKLOG_LONGEST));
        let summary = gate.take();
        assert_eq!(
            summary.counts(),
            &[
                (NoticeKind::Secured, 1),
                (NoticeKind::VerificationFailed, 1)
            ]
        );
        assert_eq!(summary.urgency(), Urgency::Critical);
        assert_eq!(gate.wait_until(t9), None);
        assert!(gate.take().is_empty());
        // Muted kinds do not start a deadline.
        let muted = Notifications {
            secured: false,
            ..Default::default()
        };
        gate.add(&secured, &muted, t9);
        assert_eq!(gate.wait_until(t9), None);
    }

    /// The notice names the conversation by its userId and carries the reason as a typed code
    /// (worded by the host), never the stored text.
    #[test]
    fn a_notice_carries_the_typed_reason_and_the_user_id() {
        let mut c = change("failed", Some(lockdesk_desk::AlertKind::VerificationFailed));
        c.reason = Some(ReasonCode::BadSignature);
        c.user_id = Some("cust-7".into());
        let n = notice_of(&c, NoticeKind::VerificationFailed);
        assert_eq!(n.reason, Some(ReasonCode::BadSignature));
        assert_eq!(n.user_id.as_deref(), Some("cust-7"));
        c.reason = Some(ReasonCode::Unknown);
        assert_eq!(
            notice_of(&c, NoticeKind::VerificationFailed).reason,
            Some(ReasonCode::Unknown)
        );
    }
}
