//! Desktop notifications (notify-rust): which desk changes interrupt the advisor, how urgently
//! and for how long, how bursts are grouped, their words in the UI's language, and showing them.
//! The policy is docs/notifications.md; everything that decides it is a pure function here
//! ([`urgency`], [`Urgency::expiry`], [`Grouper`], [`text`]), shown by [`Notifier`].
//!
//! Must not: put untrusted text (userIds) into a notification unescaped. Every piece of untrusted
//! text goes through [`field`]: cut to a bounded length, then [`lockdesk_text::isolated`]
//! (controls, bidi controls and invisibles become visible `⟨U+XXXX⟩` markers, and the whole is
//! wrapped in FIRST STRONG ISOLATE … POP DIRECTIONAL ISOLATE, so a right-to-left override in a
//! userId cannot reverse the rest of our sentence), then [`escape_markup`], because the
//! freedesktop notification body may carry markup that servers such as dunst render. A token, a
//! raw reason code or a conversation id never reaches a notification: reasons are words
//! ([`reason_words`]), conversations are named by what the advisor sees (the userId, or "an
//! anonymous visitor").
//!
//! Must not: interrupt for what needs no action now. Only alarms (critical urgency) stay until
//! dismissed; everything else expires. Where notifications appear on screen is the notification
//! server's choice (dunst, GNOME Shell, KDE…): the app cannot move them off its own buttons, so it
//! keeps their number low instead (one notification per group, replaced in place).

use std::collections::{HashMap, HashSet};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use lockdesk_api::ReasonCode;
use lockdesk_config::{Language, Notifications};

pub use lockdesk_session::notice::{urgency, Backlog, LookalikePair, Notice, NoticeKind, Urgency};

/// A notice joins its group's notification when the previous one came at most this long before
/// (and that notification is still on screen, as far as the server told us).
pub const GROUP_WINDOW: Duration = Duration::from_secs(60);
/// The same for alarms, which stay on screen until dismissed: a new alarm updates the one still
/// shown rather than adding another.
pub const ALARM_GROUP_WINDOW: Duration = Duration::from_secs(600);

/// How long after a notice of its group a new one joins it (the group's notification replaced
/// in place).
fn group_window(urgency: Urgency) -> Duration {
    match urgency {
        Urgency::Critical => ALARM_GROUP_WINDOW,
        Urgency::Normal | Urgency::Low => GROUP_WINDOW,
    }
}

/// A reason in the advisor's words (the UI's labels, ui/src/i18n/strings.ts). Exhaustive.
pub fn reason_words(reason: ReasonCode, lang: Language) -> &'static str {
    use Language::{En, Fr};
    use ReasonCode as R;
    match (reason, lang) {
        (R::Malformed, En) => "malformed token",
        (R::Malformed, Fr) => "jeton mal formé",
        (R::TooLarge, En) => "token too large",
        (R::TooLarge, Fr) => "jeton trop grand",
        (R::UnsupportedAlgorithm, En) => "unsupported algorithm",
        (R::UnsupportedAlgorithm, Fr) => "algorithme non pris en charge",
        (R::ForbiddenHeader, En) => "forbidden header member",
        (R::ForbiddenHeader, Fr) => "membre d’en-tête interdit",
        (R::DuplicateMember, En) => "duplicate JSON member",
        (R::DuplicateMember, Fr) => "membre JSON en double",
        (R::EncryptionRequired, En) => "unencrypted token refused",
        (R::EncryptionRequired, Fr) => "jeton non chiffré refusé",
        (R::DecryptionFailed, En) => "cannot be decrypted with this desk’s keys",
        (R::DecryptionFailed, Fr) => "indéchiffrable avec les clés de ce poste",
        (R::UnknownKey, En) => "signed with an unknown key",
        (R::UnknownKey, Fr) => "signé avec une clé inconnue",
        (R::BadSignature, En) => "bad signature (forged or altered)",
        (R::BadSignature, Fr) => "signature invalide (falsifié ou modifié)",
        (R::UntrustedIssuer, En) => "untrusted issuer",
        (R::UntrustedIssuer, Fr) => "émetteur non approuvé",
        (R::Expired, En) => "expired",
        (R::Expired, Fr) => "expiré",
        (R::NotYetValid, En) => "not yet valid",
        (R::NotYetValid, Fr) => "pas encore valide",
        (R::LifetimeTooLong, En) => "lifetime too long",
        (R::LifetimeTooLong, Fr) => "durée de vie trop longue",
        (R::InvalidClaims, En) => "invalid claims",
        (R::InvalidClaims, Fr) => "revendications invalides",
        (R::InvalidUserId, En) => "invalid userId",
        (R::InvalidUserId, Fr) => "userId invalide",
        (R::InvalidVisitorData, En) => "invalid visitor data",
        (R::InvalidVisitorData, Fr) => "données visiteur invalides",
        (R::TokenUserIdDiffers, En) => "a valid token proved another userId",
        (R::TokenUserIdDiffers, Fr) => "un jeton valide a prouvé un autre userId",
        (R::PlatformUserIdDiffers, En) => "iAdvize’s profile names another userId",
        (R::PlatformUserIdDiffers, Fr) => "le profil iAdvize désigne un autre userId",
        (R::Unknown, En) => "a reason this version does not know",
        (R::Unknown, Fr) => "une raison que cette version ne connaît pas",
    }
}

/// Longest piece of untrusted text put in a notification.
const MAX_FIELD_CHARS: usize = 80;

/// One piece of untrusted text as it goes into a notification: its first [`MAX_FIELD_CHARS`]
/// characters (an ellipsis marks a cut), made visible and direction-isolated by
/// [`lockdesk_text::isolated`], then markup-escaped.
pub fn field(text: &str) -> String {
    let mut cut: String = text.chars().take(MAX_FIELD_CHARS).collect();
    if text.chars().nth(MAX_FIELD_CHARS).is_some() {
        cut.push('…');
    }
    escape_markup(&lockdesk_text::isolated(&cut))
}

/// Escapes the five characters the notification markup gives a meaning to. Only the markup:
/// the character-level treatment (controls, bidi, invisibles) is [`field`]'s, through
/// `lockdesk-text`.
pub fn escape_markup(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The conversation as the advisor sees it in the list: its verified userId (isolated, escaped),
/// or an anonymous visitor. `capital`: at the start of a sentence.
fn who(user_id: Option<&str>, lang: Language, capital: bool) -> String {
    match (user_id, lang, capital) {
        (Some(u), _, _) => field(u),
        (None, Language::En, false) => "an anonymous visitor".into(),
        (None, Language::En, true) => "An anonymous visitor".into(),
        (None, Language::Fr, false) => "un visiteur anonyme".into(),
        (None, Language::Fr, true) => "Un visiteur anonyme".into(),
    }
}

fn title(kind: NoticeKind, lang: Language) -> &'static str {
    match (kind, lang) {
        (NoticeKind::Secured, Language::En) => "Conversation secured",
        (NoticeKind::Secured, Language::Fr) => "Conversation sécurisée",
        (NoticeKind::VerificationFailed, Language::En) => "Verification failed",
        (NoticeKind::VerificationFailed, Language::Fr) => "Échec de la vérification",
        (NoticeKind::IdentityMismatch, Language::En) => "Identity mismatch",
        (NoticeKind::IdentityMismatch, Language::Fr) => "Identité incohérente",
        (NoticeKind::SharedDevice, Language::En) => "Shared device",
        (NoticeKind::SharedDevice, Language::Fr) => "Appareil partagé",
        (NoticeKind::ReusedUserId, Language::En) => "Reused userId",
        (NoticeKind::ReusedUserId, Language::Fr) => "userId réutilisé",
        (NoticeKind::SessionLapsed, Language::En) => "Session lapsed",
        (NoticeKind::SessionLapsed, Language::Fr) => "Session expirée",
        (NoticeKind::LookalikeUserId, Language::En) => "Look-alike userId",
        (NoticeKind::LookalikeUserId, Language::Fr) => "userId sosie",
    }
}

/// The notification's title and body (body already escaped) for one notice, in `lang`.
pub fn text(notice: &Notice, lang: Language) -> (String, String) {
    let user = notice.user_id.as_deref();
    let who_ = who(user, lang, false);
    let who_cap = who(user, lang, true);
    let reason = reason_words(notice.reason.unwrap_or(ReasonCode::Unknown), lang);
    // What appeared in a mismatching conversation: the mismatch reason when it is one.
    let other = match (notice.reason, lang) {
        (Some(r @ (ReasonCode::TokenUserIdDiffers | ReasonCode::PlatformUserIdDiffers)), _) => {
            reason_words(r, lang)
        }
        (_, Language::En) => "another identity appeared",
        (_, Language::Fr) => "une autre identité est apparue",
    };
    let body = match (notice.kind, lang) {
        (NoticeKind::Secured, Language::En) => format!("{who_cap} is verified by the brand’s signature."),
        (NoticeKind::Secured, Language::Fr) => format!("{who_cap} est vérifié par la signature de la marque."),
        (NoticeKind::VerificationFailed, Language::En) => format!("Token refused for {who_}: {reason}. Do not treat this visitor as authenticated."),
        (NoticeKind::VerificationFailed, Language::Fr) => format!("Jeton refusé pour {who_}\u{a0}: {reason}. Ne considérez pas ce visiteur comme authentifié."),
        (NoticeKind::IdentityMismatch, Language::En) => format!("In the conversation with {who_}, {other}. Check who you are talking to before going on."),
        (NoticeKind::IdentityMismatch, Language::Fr) => format!("Dans la conversation avec {who_}, {other}. Vérifiez à qui vous parlez avant de continuer."),
        (NoticeKind::SharedDevice, Language::En) => format!("A device that carried another verified person now carries {who_}."),
        (NoticeKind::SharedDevice, Language::Fr) => format!("Un appareil utilisé par une autre personne vérifiée est maintenant utilisé par {who_}."),
        (NoticeKind::ReusedUserId, Language::En) => format!("{who_cap} was presented with different signed identities. Check who you are talking to before going on."),
        (NoticeKind::ReusedUserId, Language::Fr) => format!("{who_cap} a été présenté avec des identités signées différentes. Vérifiez à qui vous parlez avant de continuer."),
        (NoticeKind::SessionLapsed, Language::En) => format!("The verified session of {who_} ended: the conversation is no longer secured."),
        (NoticeKind::SessionLapsed, Language::Fr) => format!("La session vérifiée de {who_} a pris fin\u{a0}: la conversation n’est plus sécurisée."),
        (NoticeKind::LookalikeUserId, _) => lookalike_text(notice, &who_cap, lang),
    };
    (title(notice.kind, lang).to_owned(), body)
}

/// A look-alike notice's body: it names the identity imitated when the alert's evidence does
/// (both userIds through [`field`]), as the window's alert does (ui/src/i18n/strings.ts).
fn lookalike_text(notice: &Notice, who_cap: &str, lang: Language) -> String {
    let check = match lang {
        Language::En => "Check who you are talking to before trusting the padlock.",
        Language::Fr => "Vérifiez à qui vous parlez avant de vous fier au cadenas.",
    };
    let said = match (&notice.lookalike, lang) {
        (Some(LookalikePair { imitator, imitates: Some(imitates), ambiguous: false }), Language::En) => {
            format!("{} looks like {}, an identity this desk knows.", field(imitator), field(imitates))
        }
        (Some(LookalikePair { imitator, imitates: Some(imitates), ambiguous: false }), Language::Fr) => {
            format!("{} ressemble à {}, une identité connue de ce poste.", field(imitator), field(imitates))
        }
        (Some(LookalikePair { imitator, imitates: Some(imitates), ambiguous: true }), Language::En) => {
            format!("{} looks like {}; either may be the genuine one.", field(imitator), field(imitates))
        }
        (Some(LookalikePair { imitator, imitates: Some(imitates), ambiguous: true }), Language::Fr) => {
            format!("{} ressemble à {}\u{a0}; l’un ou l’autre peut être l’authentique.", field(imitator), field(imitates))
        }
        (Some(LookalikePair { imitator, imitates: None, .. }), Language::En) => {
            format!("{} mixes letters of several scripts, a way to imitate another identifier.", field(imitator))
        }
        (Some(LookalikePair { imitator, imitates: None, .. }), Language::Fr) => {
            format!("{} mélange des lettres de plusieurs écritures, une façon d’imiter un autre identifiant.", field(imitator))
        }
        (None, Language::En) => format!("{who_cap} looks like another identity this desk knows, or mixes scripts."),
        (None, Language::Fr) => format!("{who_cap} ressemble à une autre identité connue de ce poste, ou mélange des écritures."),
    };
    format!("{said} {check}")
}

/// The notification for a desk that stopped receiving for good (the feed client stopped and
/// will not retry: the credential was revoked or refused, the gateway's log is another, the
/// store or a task failed, the demo's engine stopped): title and body, or `None` for a
/// shutdown (a restart or quit, asked for). Shown once per desk start, as an alarm: every
/// padlock on screen is from now on a past state until the advisor acts. The stop's text is
/// not put in it (it may carry what the gateway sent): the window's banner says why.
pub fn stopped_text(
    reason: &lockdesk_service::StopReason,
    lang: Language,
) -> Option<(String, String)> {
    use lockdesk_service::StopReason as S;
    let refused = match reason {
        S::Shutdown => return None,
        S::CredentialRevoked | S::Unauthorized => true,
        S::AfterBeyondEnd { .. }
        | S::LogChanged { .. }
        | S::SinkGone
        | S::SinkPanicked(_)
        | S::Failed(_) => false,
    };
    let (title, body) = match (lang, refused) {
        (Language::En, true) => ("Not receiving", "The gateway no longer accepts this desk’s credential: conversations and padlocks are no longer updated. Ask your administrator for a new credential (Settings)."),
        (Language::Fr, true) => ("Réception interrompue", "La passerelle n’accepte plus l’identifiant de ce poste\u{a0}: les conversations et les cadenas ne sont plus mis à jour. Demandez un nouvel identifiant à votre administrateur (Paramètres)."),
        (Language::En, false) => ("Not receiving", "Lockdesk stopped receiving: conversations and padlocks are no longer updated. Open Lockdesk to see why."),
        (Language::Fr, false) => ("Réception interrompue", "Lockdesk ne reçoit plus rien\u{a0}: les conversations et les cadenas ne sont plus mis à jour. Ouvrez Lockdesk pour savoir pourquoi."),
    };
    Some((title.to_owned(), body.to_owned()))
}

/// "1 failed verification", "5 failed verifications" (French: singular for 0 and 1).
fn count_phrase(kind: NoticeKind, n: u32, lang: Language) -> String {
    let (one, many) = match (lang, kind) {
        (Language::En, NoticeKind::Secured) => ("conversation secured", "conversations secured"),
        (Language::Fr, NoticeKind::Secured) => {
            ("conversation sécurisée", "conversations sécurisées")
        }
        (Language::En, NoticeKind::VerificationFailed) => {
            ("failed verification", "failed verifications")
        }
        (Language::Fr, NoticeKind::VerificationFailed) => {
            ("échec de vérification", "échecs de vérification")
        }
        (Language::En, NoticeKind::IdentityMismatch) => {
            ("identity mismatch", "identity mismatches")
        }
        (Language::Fr, NoticeKind::IdentityMismatch) => {
            ("identité incohérente", "identités incohérentes")
        }
        (Language::En, NoticeKind::SharedDevice) => ("shared device", "shared devices"),
        (Language::Fr, NoticeKind::SharedDevice) => ("appareil partagé", "appareils partagés"),
        (Language::En, NoticeKind::ReusedUserId) => ("reused userId", "reused userIds"),
        (Language::Fr, NoticeKind::ReusedUserId) => ("userId réutilisé", "userIds réutilisés"),
        (Language::En, NoticeKind::SessionLapsed) => ("session lapsed", "sessions lapsed"),
        (Language::Fr, NoticeKind::SessionLapsed) => ("session expirée", "sessions expirées"),
        (Language::En, NoticeKind::LookalikeUserId) => ("look-alike userId", "look-alike userIds"),
        (Language::Fr, NoticeKind::LookalikeUserId) => ("userId sosie", "userIds sosies"),
    };
    let singular = n == 1 || (lang == Language::Fr && n == 0);
    format!("{n} {}", if singular { one } else { many })
}

/// A group of notices shares one notification: same kind, same urgency.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GroupKey {
    pub kind: NoticeKind,
    pub urgency: Urgency,
}

/// How many of a group's latest conversations its notification names.
const NAMED: usize = 3;

struct Group {
    key: GroupKey,
    count: u32,
    /// The latest distinct conversations (id, userId; a device-level notice has no id),
    /// newest first, at most [`NAMED`].
    latest: Vec<(Option<String>, Option<String>)>,
    /// Every notice so far was about this one conversation (a click opens it).
    only: Option<String>,
    /// What a click on the notification as now shown opens.
    target: Option<String>,
    last_at: Instant,
    /// Which showing of the group is on screen (a click or close of an older one is ignored).
    generation: u64,
    /// The server has not reported the notification closed (dismissed or expired).
    open: bool,
}

/// One notification to hand to the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shown {
    pub key: GroupKey,
    pub generation: u64,
    /// Replaces the group's notification on screen (freedesktop `replaces_id`) rather than adding
    /// one.
    pub replaces: bool,
    pub title: String,
    pub body: String,
    pub urgency: Urgency,
    /// `None`: stays until dismissed.
    pub expiry: Option<Duration>,
    /// The conversation a click opens (`None`: a group about several; the click shows the list).
    pub conversation_id: Option<String>,
}

/// Groups bursts: a notice of the same kind and urgency as a notification still on screen, and
/// within [`GROUP_WINDOW`] (alarms: [`ALARM_GROUP_WINDOW`]) of the previous one, updates that
/// notification ("5 failed verifications", the latest conversations named) instead of adding
/// one. So the screen holds at most one notification per kind and urgency.
#[derive(Default)]
pub struct Grouper {
    groups: Vec<Group>,
    generation: u64,
}

impl Grouper {
    /// What to show for `notice` at `now` (`None`: muted).
    pub fn add(
        &mut self,
        notice: &Notice,
        lang: Language,
        settings: &Notifications,
        now: Instant,
    ) -> Option<Shown> {
        if !notice.kind.enabled(settings) {
            return None;
        }
        let urgency = urgency(notice);
        let key = GroupKey {
            kind: notice.kind,
            urgency,
        };
        self.generation += 1;
        let generation = self.generation;
        let entry = (notice.conversation_id.clone(), notice.user_id.clone());
        let joined = match self.groups.iter_mut().find(|g| g.key == key) {
            Some(g)
                if g.open && now.saturating_duration_since(g.last_at) <= group_window(urgency) =>
            {
                g.count = g.count.saturating_add(1);
                // The same conversation, or the same person on a device with no conversation.
                g.latest
                    .retain(|(c, u)| match (c, &notice.conversation_id) {
                        (Some(c), Some(n)) => c != n,
                        (None, None) => *u != notice.user_id,
                        _ => true,
                    });
                g.latest.insert(0, entry.clone());
                g.latest.truncate(NAMED);
                if g.only != notice.conversation_id {
                    g.only = None;
                }
                g.last_at = now;
                g.generation = generation;
                g.target = g.only.clone();
                Some((g.count, g.latest.clone(), g.only.clone()))
            }
            _ => None,
        };
        let (replaces, (title, body), conversation_id) = match joined {
            Some((count, latest, only)) => (true, group_text(key, count, &latest, lang), only),
            None => {
                let fresh = Group {
                    key,
                    count: 1,
                    latest: vec![entry],
                    only: notice.conversation_id.clone(),
                    target: notice.conversation_id.clone(),
                    last_at: now,
                    generation,
                    open: true,
                };
                match self.groups.iter_mut().find(|g| g.key == key) {
                    Some(g) => *g = fresh,
                    None => self.groups.push(fresh),
                }
                (false, text(notice, lang), notice.conversation_id.clone())
            }
        };
        Some(Shown {
            key,
            generation,
            replaces,
            title,
            body,
            urgency,
            expiry: urgency.expiry(),
            conversation_id,
        })
    }

    /// The server closed the notification shown as `generation` (dismissed or expired): the next
    /// notice of its group starts a new notification.
    pub fn closed(&mut self, key: GroupKey, generation: u64) {
        if let Some(g) = self
            .groups
            .iter_mut()
            .find(|g| g.key == key && g.generation == generation)
        {
            g.open = false;
        }
    }

    /// The group's current showing: its generation and what a click on it opens.
    fn current(&self, key: GroupKey) -> Option<(u64, Option<String>)> {
        self.groups
            .iter()
            .find(|g| g.key == key)
            .map(|g| (g.generation, g.target.clone()))
    }
}

/// The text of a group's notification: the kind's title with the count, the count in words, the
/// latest conversations named.
fn group_text(
    key: GroupKey,
    count: u32,
    latest: &[(Option<String>, Option<String>)],
    lang: Language,
) -> (String, String) {
    let names: Vec<String> = latest
        .iter()
        .map(|(_, u)| who(u.as_deref(), lang, false))
        .collect();
    let title = format!("{} ({count})", title(key.kind, lang));
    let counted = count_phrase(key.kind, count, lang);
    let body = match lang {
        Language::En => format!(
            "{counted}. Latest: {}.\nOpen Lockdesk to review them.",
            names.join(", ")
        ),
        Language::Fr => format!(
            "{counted}. Derniers\u{a0}: {}.\nOuvrez Lockdesk pour les examiner.",
            names.join(", ")
        ),
    };
    (title, body)
}

/// A backlog's summary in words ([`Backlog`] counts, the session decides when it is due).
pub trait BacklogText {
    /// Title and body in `lang`: the counts, alarms first. No untrusted text is involved.
    fn text(&self, lang: Language) -> (String, String);
}

impl BacklogText for Backlog {
    fn text(&self, lang: Language) -> (String, String) {
        let mut counts = self.counts().to_vec();
        counts.sort_by_key(|(k, _)| !kind_can_alarm(*k));
        let parts: Vec<String> = counts
            .iter()
            .map(|&(kind, n)| count_phrase(kind, n, lang))
            .collect();
        let (title, tail) = match lang {
            Language::En => (
                "While Lockdesk was catching up",
                "Open Lockdesk to review them.",
            ),
            Language::Fr => (
                "Pendant le rattrapage de Lockdesk",
                "Ouvrez Lockdesk pour les examiner.",
            ),
        };
        (title.to_owned(), format!("{}.\n{tail}", parts.join(", ")))
    }
}

/// Kinds whose notices can be alarms (listed first in a summary).
fn kind_can_alarm(kind: NoticeKind) -> bool {
    match kind {
        NoticeKind::VerificationFailed
        | NoticeKind::IdentityMismatch
        | NoticeKind::ReusedUserId
        | NoticeKind::LookalikeUserId => true,
        NoticeKind::Secured | NoticeKind::SharedDevice | NoticeKind::SessionLapsed => false,
    }
}

/// What a click on a notification does: `Some(id)` opens that conversation, `None` shows the
/// window (a group or summary about several).
pub type OnClick = Arc<dyn Fn(Option<String>) + Send + Sync>;

/// One notification for the display thread.
#[cfg_attr(not(all(unix, not(target_os = "macos"))), allow(dead_code))]
struct Job {
    /// `None` for a backlog summary (never grouped, never replaced).
    key: Option<GroupKey>,
    replaces: bool,
    title: String,
    body: String,
    urgency: Urgency,
    expiry: Option<Duration>,
    conversation_id: Option<String>,
}

/// Shows notifications: groups them ([`Grouper`]) and hands them, in order, to one display
/// thread that talks to the notification server (D-Bus on Linux: never on the async executor or
/// the UI thread). The thread ends when the `Notifier` is dropped.
pub struct Notifier {
    grouper: Arc<Mutex<Grouper>>,
    tx: mpsc::Sender<Job>,
    lang: Language,
    settings: Notifications,
}

impl Notifier {
    pub fn new(lang: Language, settings: Notifications, on_click: OnClick) -> Notifier {
        let grouper = Arc::new(Mutex::new(Grouper::default()));
        let (tx, rx) = mpsc::channel();
        let g = grouper.clone();
        let spawned = std::thread::Builder::new()
            .name("notifications".into())
            .spawn(move || display_loop(rx, g, on_click));
        if let Err(e) = spawned {
            tracing::error!("cannot start the notification thread: {e}");
        }
        Notifier {
            grouper,
            tx,
            lang,
            settings,
        }
    }

    /// Settings saved: the language and mutes of the notices from now on.
    pub fn set_preferences(&mut self, lang: Language, settings: Notifications) {
        self.lang = lang;
        self.settings = settings;
    }

    /// Shows `notice` (grouped with a burst of its kind) unless muted.
    pub fn show(&self, notice: &Notice, now: Instant) {
        let shown = self.grouper.lock().unwrap_or_else(|p| p.into_inner()).add(
            notice,
            self.lang,
            &self.settings,
            now,
        );
        if let Some(s) = shown {
            self.send(Job {
                key: Some(s.key),
                replaces: s.replaces,
                title: s.title,
                body: s.body,
                urgency: s.urgency,
                expiry: s.expiry,
                conversation_id: s.conversation_id,
            });
        }
    }

    /// Shows that the desk stopped receiving for good ([`stopped_text`]): an alarm of its own,
    /// never grouped; a click shows the window (its banner says why). Nothing for a shutdown.
    pub fn stopped(&self, reason: &lockdesk_service::StopReason) {
        if let Some((title, body)) = stopped_text(reason, self.lang) {
            self.send(Job {
                key: None,
                replaces: false,
                title,
                body,
                urgency: Urgency::Critical,
                expiry: Urgency::Critical.expiry(),
                conversation_id: None,
            });
        }
    }

    /// Shows the backlog's summary, as urgent as its most urgent notice. Nothing for an empty
    /// backlog.
    pub fn summary(&self, backlog: &Backlog) {
        if backlog.is_empty() {
            return;
        }
        let (title, body) = backlog.text(self.lang);
        let urgency = backlog.urgency();
        self.send(Job {
            key: None,
            replaces: false,
            title,
            body,
            urgency,
            expiry: urgency.expiry(),
            conversation_id: None,
        });
    }

    fn send(&self, job: Job) {
        if self.tx.send(job).is_err() {
            tracing::warn!("the notification thread has stopped: a notification was not shown");
        }
    }
}

/// What the display thread and the threads waiting for clicks share: which notification (the
/// server's id) shows each group now, and which ids already have a waiting thread (one per
/// notification on screen, however often it is replaced: a burst does not pile up threads).
#[derive(Default)]
struct Screen {
    ids: HashMap<GroupKey, u32>,
    waiting: HashSet<u32>,
}

#[cfg_attr(
    not(all(unix, not(target_os = "macos"))),
    allow(unused_variables, unused_mut)
)]
fn display_loop(rx: mpsc::Receiver<Job>, grouper: Arc<Mutex<Grouper>>, on_click: OnClick) {
    let screen = Arc::new(Mutex::new(Screen::default()));
    while let Ok(job) = rx.recv() {
        let mut n = notify_rust::Notification::new();
        n.appname("Lockdesk").summary(&job.title).body(&job.body);
        n.timeout(match job.expiry {
            None => notify_rust::Timeout::Never,
            Some(d) => {
                notify_rust::Timeout::Milliseconds(u32::try_from(d.as_millis()).unwrap_or(u32::MAX))
            }
        });
        #[cfg(all(unix, not(target_os = "macos")))]
        {
            use notify_rust::{Hint, Urgency as U};
            n.urgency(match job.urgency {
                Urgency::Critical => U::Critical,
                Urgency::Normal => U::Normal,
                Urgency::Low => U::Low,
            });
            n.hint(Hint::Category("im".into()));
            n.action("default", "Open");
            if let (true, Some(key)) = (job.replaces, job.key) {
                if let Some(id) = lock(&screen).ids.get(&key) {
                    n.id(*id);
                }
            }
        }
        let kind = job.key.map(|k| k.kind);
        match n.show() {
            Ok(_handle) => {
                tracing::debug!(?kind, urgency = ?job.urgency, "notification shown");
                #[cfg(all(unix, not(target_os = "macos")))]
                wait_for_click(_handle, &job, &screen, &grouper, &on_click);
            }
            Err(e) => tracing::warn!(?kind, "cannot show a notification: {e}"),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Waits (on a thread of its own) for a click on the notification, or its close, unless a thread
/// already waits for that notification (a group's notification replaced in place). A click opens
/// what the notification shows now; a close ends its group.
#[cfg(all(unix, not(target_os = "macos")))]
fn wait_for_click(
    handle: notify_rust::NotificationHandle,
    job: &Job,
    screen: &Arc<Mutex<Screen>>,
    grouper: &Arc<Mutex<Grouper>>,
    on_click: &OnClick,
) {
    let id = handle.id();
    {
        let mut s = lock(screen);
        if let Some(key) = job.key {
            s.ids.insert(key, id);
        }
        if !s.waiting.insert(id) {
            return;
        }
    }
    let (key, summary_target) = (job.key, job.conversation_id.clone());
    let (shared, grouper, on_click) = (screen.clone(), grouper.clone(), on_click.clone());
    let spawned = std::thread::Builder::new()
        .name("notification-wait".into())
        .spawn(move || {
            handle.wait_for_action(|action| {
                // Whether `id` still shows its group (not replaced by a notification of another id).
                let shows = |key| lock(&shared).ids.get(&key) == Some(&id);
                match (action, key) {
                    ("default", None) => on_click(summary_target),
                    // A click also ends the group (the advisor saw it; the server closes it).
                    ("default", Some(key)) if shows(key) => {
                        let current = {
                            let mut g = lock(&grouper);
                            let current = g.current(key);
                            if let Some((generation, _)) = &current {
                                g.closed(key, *generation);
                            }
                            current
                        };
                        if let Some((_, target)) = current {
                            on_click(target);
                        }
                    }
                    ("__closed", Some(key)) if shows(key) => {
                        let mut g = lock(&grouper);
                        if let Some((generation, _)) = g.current(key) {
                            g.closed(key, generation);
                        }
                    }
                    _ => {}
                }
            });
            lock(&shared).waiting.remove(&id);
        });
    if let Err(e) = spawned {
        lock(screen).waiting.remove(&id);
        tracing::warn!("cannot wait for a notification's click: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lockdesk_session::notice::{LOW_EXPIRY, NORMAL_EXPIRY};

    const FSI: char = lockdesk_text::FSI;
    const PDI: char = lockdesk_text::PDI;

    const KINDS: [NoticeKind; 7] = NoticeKind::ALL;

    /// Every reason the desk can record: the known ones and `unknown` (a code this build does
    /// not know), from the vocabulary itself, so a new reason cannot be forgotten here.
    fn reasons() -> impl Iterator<Item = ReasonCode> {
        ReasonCode::KNOWN.into_iter().chain([ReasonCode::Unknown])
    }

    /// A conversation id as the gateway hands them out.
    const UUID: &str = "3f2a9c1e-7b4d-4e8a-9f10-2c3d4e5f6a7b";

    fn notice(kind: NoticeKind, user: Option<&str>, reason: Option<ReasonCode>) -> Notice {
        Notice {
            kind,
            conversation_id: Some(UUID.into()),
            user_id: user.map(str::to_owned),
            reason,
            lookalike: None,
        }
    }

    fn everything_on() -> Notifications {
        Notifications {
            secured: true,
            ..Notifications::default()
        }
    }

    #[test]
    fn untrusted_text_is_escaped_and_bounded() {
        assert_eq!(
            escape_markup("<b>x</b> & 'y' \"z\""),
            "&lt;b&gt;x&lt;/b&gt; &amp; &#39;y&#39; &quot;z&quot;"
        );
        assert_eq!(
            field("<b>x</b> & 'y' \"z\""),
            format!("{FSI}&lt;b&gt;x&lt;/b&gt; &amp; &#39;y&#39; &quot;z&quot;{PDI}")
        );
        // Controls never reach the notification: each shows as its marker.
        assert_eq!(field("a\nb\u{7}"), format!("{FSI}a⟨U+000A⟩b⟨U+0007⟩{PDI}"));
        let long = "é".repeat(500);
        let cut = field(&long);
        assert_eq!(cut.chars().count(), MAX_FIELD_CHARS + 1 + 2);
        assert!(cut.ends_with(&format!("…{PDI}")));
    }

    /// A right-to-left override in a userId would reverse everything after it on the line, our
    /// words included: it is shown as a marker, and the userId sits in its own isolate.
    #[test]
    fn a_right_to_left_override_in_a_user_id_is_visible_and_isolated() {
        let user = "cust-1\u{202E}gnp.exe\u{200B}";
        for kind in KINDS {
            for lang in [Language::En, Language::Fr] {
                let n = Notice {
                    kind,
                    conversation_id: Some("c-\u{2067}9".into()),
                    user_id: Some(user.into()),
                    reason: Some(ReasonCode::BadSignature),
                    lookalike: None,
                };
                let (title, body) = text(&n, lang);
                for c in title.chars().chain(body.chars()) {
                    assert!(
                        !lockdesk_text::is_bidi_control(c) || c == FSI || c == PDI,
                        "{c:?} raw in {body:?}"
                    );
                    assert!(
                        lockdesk_text::hazard_of(c).is_none() || c == FSI || c == PDI,
                        "{c:?} raw in {body:?}"
                    );
                }
                let shown = format!("{FSI}cust-1⟨U+202E⟩gnp.exe⟨U+200B⟩{PDI}");
                assert!(body.contains(&shown), "{kind:?} {lang:?}: {body:?}");
                // The conversation id is not shown at all (the userId names the conversation).
                assert!(!body.contains("c-"), "{body:?}");
                // Every isolate we open is closed: nothing leaks into the next line or text.
                assert_eq!(
                    body.matches(FSI).count(),
                    body.matches(PDI).count(),
                    "{body:?}"
                );
            }
        }
    }

    /// The example, "A token was rejected (bad_signature)": reasons are words in the
    /// advisor's language, and no conversation UUID or raw code reaches the screen.
    #[test]
    fn texts_carry_words_not_codes_or_uuids_in_the_advisor_language() {
        let n = notice(
            NoticeKind::VerificationFailed,
            None,
            Some(ReasonCode::BadSignature),
        );
        let (title, body) = text(&n, Language::Fr);
        assert_eq!(title, "Échec de la vérification");
        assert_eq!(
            body,
            "Jeton refusé pour un visiteur anonyme\u{a0}: signature invalide (falsifié ou \
             modifié). Ne considérez pas ce visiteur comme authentifié."
        );
        let (_, en) = text(&n, Language::En);
        assert_eq!(
            en,
            "Token refused for an anonymous visitor: bad signature (forged or altered). Do not \
             treat this visitor as authenticated."
        );
        for kind in KINDS {
            for reason in reasons().map(Some).chain([None]) {
                for lang in [Language::En, Language::Fr] {
                    for user in [None, Some("cust-42")] {
                        let (title, body) = text(&notice(kind, user, reason), lang);
                        let all = format!("{title}\n{body}");
                        assert!(!all.contains('_'), "a raw code in {all:?}");
                        assert!(!all.contains(UUID), "the conversation id in {all:?}");
                        assert!(!all.contains("3f2a9c1e"), "{all:?}");
                        if let Some(u) = user {
                            assert!(all.contains(u), "{kind:?}: {all:?}");
                        }
                    }
                }
            }
        }
        // Every reason has words of its own in both languages, and they differ between them
        // (no English left in the French table), except where the word is the same.
        for r in reasons() {
            let (en, fr) = (reason_words(r, Language::En), reason_words(r, Language::Fr));
            assert!(!en.is_empty() && !fr.is_empty());
            assert_ne!(en, fr, "{r:?}");
        }
        // A mismatch names what appeared.
        let (_, body) = text(
            &notice(
                NoticeKind::IdentityMismatch,
                Some("cust-1"),
                Some(ReasonCode::PlatformUserIdDiffers),
            ),
            Language::En,
        );
        assert!(
            body.contains("iAdvize’s profile names another userId"),
            "{body}"
        );
    }

    #[test]
    fn every_kind_has_text_in_both_languages_with_the_user_escaped() {
        for kind in KINDS {
            for lang in [Language::En, Language::Fr] {
                let n = notice(
                    kind,
                    Some("<img src=x onerror=alert(1)>"),
                    Some(ReasonCode::BadSignature),
                );
                let (title, body) = text(&n, lang);
                assert!(!title.is_empty());
                assert!(!body.contains('<'), "{body}");
                assert!(body.contains("&lt;img"), "{kind:?} {lang:?}: {body}");
            }
        }
        assert!(
            text(&notice(NoticeKind::Secured, Some("u"), None), Language::Fr)
                .0
                .contains("sécurisée")
        );
    }

    /// Issue 13: a look-alike notice names both userIds (each made visible, isolated and
    /// escaped), in the direction the alert's evidence gives, or in none for a tie; a
    /// mixed-script userId with no counterpart is said to mix scripts.
    #[test]
    fn a_lookalike_notice_names_both_user_ids_through_lockdesk_text() {
        let with = |imitator: &str, imitates: Option<&str>, ambiguous| Notice {
            lookalike: Some(LookalikePair {
                imitator: imitator.into(),
                imitates: imitates.map(str::to_owned),
                ambiguous,
            }),
            ..notice(NoticeKind::LookalikeUserId, Some(imitator), None)
        };
        let body = |n: &Notice, lang| text(n, lang).1;
        assert_eq!(
            body(&with("\u{441}ust-1", Some("cust-1"), false), Language::En),
            format!("{FSI}\u{441}ust-1{PDI} looks like {FSI}cust-1{PDI}, an identity this desk knows. Check who you are talking to before trusting the padlock.")
        );
        assert_eq!(
            body(&with("\u{441}ust-1", Some("cust-1"), false), Language::Fr),
            format!("{FSI}\u{441}ust-1{PDI} ressemble à {FSI}cust-1{PDI}, une identité connue de ce poste. Vérifiez à qui vous parlez avant de vous fier au cadenas.")
        );
        assert!(body(&with("cust-4815l623", Some("cust-48151623"), true), Language::En)
            .starts_with(&format!("{FSI}cust-4815l623{PDI} looks like {FSI}cust-48151623{PDI}; either may be the genuine one.")));
        assert!(
            body(&with("\u{441}ust-9", None, false), Language::En).starts_with(&format!(
                "{FSI}\u{441}ust-9{PDI} mixes letters of several scripts"
            ))
        );
        assert!(body(&with("\u{441}ust-9", None, false), Language::Fr)
            .starts_with(&format!("{FSI}\u{441}ust-9{PDI} mélange des lettres")));
        // Hostile text in either: markup escaped, bidi controls visible, inside isolates.
        let hostile = body(
            &with("<b>x</b>", Some("cust-1\u{202E}gnp.exe"), false),
            Language::En,
        );
        assert!(hostile.contains("&lt;b&gt;x&lt;/b&gt;"), "{hostile}");
        assert!(!hostile.contains('\u{202E}'), "{hostile}");
        assert!(hostile.contains("\u{27E8}U+202E\u{27E9}"), "{hostile}");
        // From the evidence as the desk core writes it.
        let pair = LookalikePair::from_evidence(&serde_json::json!({
            "userId": "cust-1", "imitator": "\u{441}ust-1", "imitates": "cust-1",
            "mixedScript": true, "scripts": ["Cyrillic", "Latin"]
        }))
        .unwrap();
        assert_eq!(pair.imitates.as_deref(), Some("cust-1"));
        assert!(!pair.ambiguous);
        let mixed = LookalikePair::from_evidence(&serde_json::json!({
            "imitator": "\u{441}ust-9", "imitates": null, "mixedScript": true
        }))
        .unwrap();
        assert_eq!(mixed.imitates, None);
        assert_eq!(LookalikePair::from_evidence(&serde_json::json!({})), None);
    }

    /// Issue 13: a revoked credential stops the desk for good; it is said once, as an alarm,
    /// in words (never the stop's text, which may carry what the gateway sent). A shutdown
    /// (restart, quit) says nothing.
    #[test]
    fn a_desk_that_stops_receiving_for_good_says_so_in_words() {
        use lockdesk_service::StopReason as S;
        assert_eq!(stopped_text(&S::Shutdown, Language::En), None);
        for lang in [Language::En, Language::Fr] {
            let (title, body) = stopped_text(&S::CredentialRevoked, lang).unwrap();
            assert_eq!(
                stopped_text(&S::Unauthorized, lang).unwrap(),
                (title.clone(), body.clone())
            );
            match lang {
                Language::En => {
                    assert_eq!(title, "Not receiving");
                    assert!(
                        body.contains("no longer accepts this desk’s credential"),
                        "{body}"
                    );
                }
                Language::Fr => {
                    assert_eq!(title, "Réception interrompue");
                    assert!(body.contains("n’accepte plus l’identifiant"), "{body}");
                }
            }
            let (_, other) = stopped_text(&S::Failed("<b>gateway text</b>".into()), lang).unwrap();
            assert!(
                !other.contains("gateway text") && !other.contains('<'),
                "{other}"
            );
            assert!(stopped_text(
                &S::LogChanged {
                    known: "a".into(),
                    found: "b".into()
                },
                lang
            )
            .is_some());
        }
    }

    /// Only what needs the advisor's action now is critical, and only that stays until
    /// dismissed; routine news (secured, a lapse) is low urgency and off or expiring.
    #[test]
    fn only_alarms_are_critical_and_only_they_never_expire() {
        let u = |kind, reason| urgency(&notice(kind, Some("u"), reason));
        assert_eq!(u(NoticeKind::SessionLapsed, None), Urgency::Low);
        assert_eq!(u(NoticeKind::Secured, None), Urgency::Low);
        assert_eq!(u(NoticeKind::SharedDevice, None), Urgency::Normal);
        for kind in [
            NoticeKind::IdentityMismatch,
            NoticeKind::ReusedUserId,
            NoticeKind::LookalikeUserId,
        ] {
            assert_eq!(u(kind, None), Urgency::Critical, "{kind:?}");
        }
        let failed = |r| u(NoticeKind::VerificationFailed, Some(r));
        assert_eq!(failed(ReasonCode::BadSignature), Urgency::Critical);
        assert_eq!(failed(ReasonCode::UnknownKey), Urgency::Critical);
        assert_eq!(failed(ReasonCode::Unknown), Urgency::Critical);
        assert_eq!(failed(ReasonCode::Expired), Urgency::Normal);
        assert_eq!(failed(ReasonCode::NotYetValid), Urgency::Normal);
        assert_eq!(
            u(NoticeKind::VerificationFailed, None),
            Urgency::Critical,
            "no reason recorded: the worst case"
        );
        assert_eq!(Urgency::Critical.expiry(), None);
        assert_eq!(Urgency::Normal.expiry(), Some(NORMAL_EXPIRY));
        assert_eq!(Urgency::Low.expiry(), Some(LOW_EXPIRY));
        // Whatever it is, a shown notification expires unless it is an alarm.
        let mut g = Grouper::default();
        let t0 = Instant::now();
        for kind in KINDS {
            for reason in reasons().map(Some).chain([None]) {
                let s = g
                    .add(
                        &notice(kind, None, reason),
                        Language::En,
                        &everything_on(),
                        t0,
                    )
                    .unwrap();
                assert_eq!(s.expiry.is_none(), s.urgency == Urgency::Critical, "{s:?}");
            }
        }
    }

    #[test]
    fn secured_does_not_notify_by_default_and_mutes_follow_settings() {
        let defaults = Notifications::default();
        assert!(!NoticeKind::Secured.enabled(&defaults));
        let mut g = Grouper::default();
        let t0 = Instant::now();
        let secured = notice(NoticeKind::Secured, Some("cust-1"), None);
        assert_eq!(g.add(&secured, Language::En, &defaults, t0), None);
        // Unless configured.
        let shown = g.add(&secured, Language::En, &everything_on(), t0).unwrap();
        assert_eq!(shown.urgency, Urgency::Low);
        for kind in KINDS.into_iter().filter(|k| *k != NoticeKind::Secured) {
            assert!(kind.enabled(&defaults), "{kind:?} on by default");
        }
        let muted = Notifications {
            reused_user_id: false,
            lookalike_user_id: false,
            ..defaults
        };
        assert!(!NoticeKind::ReusedUserId.enabled(&muted));
        assert!(!NoticeKind::LookalikeUserId.enabled(&muted));
        assert!(NoticeKind::VerificationFailed.enabled(&muted));
        let lookalike = notice(NoticeKind::LookalikeUserId, Some("u"), None);
        assert_eq!(g.add(&lookalike, Language::En, &muted, t0), None);
    }

    /// A burst of five failed verifications within the window is one notification, replaced in
    /// place, that names five; a click on it shows the list.
    #[test]
    fn a_burst_within_the_window_is_one_notification_naming_the_count() {
        let settings = Notifications::default();
        let mut g = Grouper::default();
        let t0 = Instant::now();
        let users = ["cust-1", "cust-2", "cust-3", "cust-4"];
        let mut shown = Vec::new();
        for i in 0..5u64 {
            let mut n = notice(
                NoticeKind::VerificationFailed,
                users.get(i as usize).copied(),
                Some(ReasonCode::BadSignature),
            );
            n.conversation_id = Some(format!("conv-{i}"));
            shown.push(
                g.add(&n, Language::En, &settings, t0 + Duration::from_secs(5 * i))
                    .unwrap(),
            );
        }
        assert!(
            !shown[0].replaces,
            "the first of a burst is a notification of its own"
        );
        assert_eq!(shown[0].conversation_id.as_deref(), Some("conv-0"));
        assert!(shown[1..]
            .iter()
            .all(|s| s.replaces && s.key == shown[0].key));
        let last = shown.last().unwrap();
        assert_eq!(last.title, "Verification failed (5)");
        assert_eq!(
            last.body,
            format!(
                "5 failed verifications. Latest: an anonymous visitor, {FSI}cust-4{PDI}, \
                 {FSI}cust-3{PDI}.\nOpen Lockdesk to review them."
            )
        );
        assert_eq!(
            last.conversation_id, None,
            "several conversations: the list"
        );
        assert_eq!(last.urgency, Urgency::Critical);
        // A click on the notification as now shown shows the list.
        assert_eq!(g.current(last.key), Some((last.generation, None)));

        // In French.
        let mut fr = Grouper::default();
        let mut s = None;
        for _ in 0..3 {
            let n = notice(NoticeKind::SharedDevice, Some("cust-9"), None);
            s = fr.add(&n, Language::Fr, &settings, t0);
        }
        let s = s.unwrap();
        assert_eq!(s.title, "Appareil partagé (3)");
        assert!(
            s.body.starts_with("3 appareils partagés. Derniers\u{a0}: "),
            "{}",
            s.body
        );
        // The same conversation three times: a click still opens it.
        assert_eq!(s.conversation_id.as_deref(), Some(UUID));
    }

    #[test]
    fn a_group_ends_when_closed_or_after_its_window_and_kinds_or_urgencies_do_not_mix() {
        let settings = Notifications::default();
        let mut g = Grouper::default();
        let t0 = Instant::now();
        let forged = notice(
            NoticeKind::VerificationFailed,
            None,
            Some(ReasonCode::BadSignature),
        );
        let expired = notice(
            NoticeKind::VerificationFailed,
            None,
            Some(ReasonCode::Expired),
        );
        let first = g.add(&forged, Language::En, &settings, t0).unwrap();
        // Another urgency or kind: a notification of its own (an alarm is never folded into an
        // expiring notification).
        let e = g.add(&expired, Language::En, &settings, t0).unwrap();
        assert!(!e.replaces);
        assert_eq!(e.urgency, Urgency::Normal);
        let s = g
            .add(
                &notice(NoticeKind::SharedDevice, Some("u"), None),
                Language::En,
                &settings,
                t0,
            )
            .unwrap();
        assert!(!s.replaces);
        // The advisor dismissed the alarm: the next one is new again.
        g.closed(first.key, first.generation);
        let again = g.add(&forged, Language::En, &settings, t0).unwrap();
        assert!(!again.replaces);
        assert_eq!(again.title, "Verification failed");
        // A close reported for an older showing does not end the current group.
        g.closed(first.key, first.generation);
        let joined = g.add(&forged, Language::En, &settings, t0).unwrap();
        assert!(joined.replaces);
        // Past the window: new.
        let later = t0 + ALARM_GROUP_WINDOW + Duration::from_secs(1);
        assert!(
            !g.add(&forged, Language::En, &settings, later)
                .unwrap()
                .replaces
        );
        let later = later + GROUP_WINDOW + Duration::from_secs(1);
        assert!(
            !g.add(&expired, Language::En, &settings, later)
                .unwrap()
                .replaces
        );
    }

    #[test]
    fn a_backlog_is_one_summary_with_alarms_first_and_muted_kinds_left_out() {
        let settings = Notifications {
            session_lapsed: false,
            ..everything_on()
        };
        let mut b = Backlog::default();
        assert!(b.is_empty());
        for _ in 0..12 {
            b.add(&notice(NoticeKind::Secured, Some("u"), None), &settings);
        }
        b.add(
            &notice(
                NoticeKind::VerificationFailed,
                None,
                Some(ReasonCode::BadSignature),
            ),
            &settings,
        );
        b.add(
            &notice(NoticeKind::SessionLapsed, Some("u"), None),
            &settings,
        ); // muted
        b.add(
            &notice(NoticeKind::IdentityMismatch, Some("u"), None),
            &settings,
        );
        b.add(
            &notice(NoticeKind::IdentityMismatch, Some("u"), None),
            &settings,
        );
        assert_eq!(b.urgency(), Urgency::Critical);
        assert_eq!(
            b.text(Language::En),
            (
                "While Lockdesk was catching up".to_owned(),
                "1 failed verification, 2 identity mismatches, 12 conversations secured.\nOpen Lockdesk to review them.".to_owned()
            )
        );
        let (title, body) = b.text(Language::Fr);
        assert_eq!(title, "Pendant le rattrapage de Lockdesk");
        assert!(
            body.starts_with(
                "1 échec de vérification, 2 identités incohérentes, 12 conversations sécurisées."
            ),
            "{body}"
        );

        let mut only_secured = Backlog::default();
        only_secured.add(&notice(NoticeKind::Secured, Some("u"), None), &settings);
        assert_eq!(only_secured.urgency(), Urgency::Low);
        assert!(only_secured
            .text(Language::En)
            .1
            .starts_with("1 conversation secured."));
        // Expired tokens only: not an alarm.
        let mut expired = Backlog::default();
        expired.add(
            &notice(
                NoticeKind::VerificationFailed,
                None,
                Some(ReasonCode::Expired),
            ),
            &settings,
        );
        assert_eq!(expired.urgency(), Urgency::Normal);
        let mut all_muted = Backlog::default();
        all_muted.add(
            &notice(NoticeKind::SessionLapsed, Some("u"), None),
            &settings,
        );
        all_muted.add(
            &notice(NoticeKind::Secured, Some("u"), None),
            &Notifications::default(),
        );
        assert!(all_muted.is_empty());
    }

    /// Through the real notification server: a burst of five alarms is one notification on
    /// screen, replaced in place, naming five. Needs dunst on a private session bus, and an
    /// explicit opt-in (it shows notifications):
    /// `LOCKDESK_NOTIFY_SERVER_TEST=1 xvfb-run -a dbus-run-session -- sh -c 'dunst & sleep 1; cargo test -p
    /// lockdesk-app --lib -- --ignored a_burst_is_one_notification_on_the_real_server'`
    #[test]
    #[ignore = "needs dunst on a private session bus (see the doc comment)"]
    fn a_burst_is_one_notification_on_the_real_server() {
        assert!(
            std::env::var_os("LOCKDESK_NOTIFY_SERVER_TEST").is_some()
                && std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some(),
            "run under dbus-run-session with dunst and LOCKDESK_NOTIFY_SERVER_TEST=1"
        );
        let dunstctl = |args: &[&str]| {
            let out = std::process::Command::new("dunstctl")
                .args(args)
                .output()
                .expect("dunstctl");
            assert!(out.status.success(), "dunstctl {args:?}");
            String::from_utf8(out.stdout).unwrap()
        };
        dunstctl(&["close-all"]);
        let before = dunstctl(&["history"]).matches("\"Lockdesk\"").count();
        let notifier = Notifier::new(Language::En, Notifications::default(), Arc::new(|_| {}));
        let t0 = Instant::now();
        for i in 0..5 {
            let mut n = notice(
                NoticeKind::VerificationFailed,
                None,
                Some(ReasonCode::BadSignature),
            );
            n.conversation_id = Some(format!("conv-{i}"));
            notifier.show(&n, t0);
        }
        // The display thread talks to the server in order; give it a moment.
        std::thread::sleep(Duration::from_secs(2));
        assert_eq!(dunstctl(&["count", "displayed"]).trim(), "1");
        dunstctl(&["close-all"]);
        let history = dunstctl(&["history"]);
        assert_eq!(
            history.matches("\"Lockdesk\"").count(),
            before + 1,
            "{history}"
        );
        assert!(history.contains("Verification failed (5)"), "{history}");
        assert!(history.contains("5 failed verifications"), "{history}");
    }
}
