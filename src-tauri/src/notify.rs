//! Desktop notifications (notify-rust): which desk changes become a notification, their text in
//! the UI's language, and showing them.
//!
//! Must not: put untrusted text (userIds, names, reasons) into a notification unescaped. Every
//! piece of untrusted text goes through [`field`]: cut to a bounded length, then
//! [`lockdesk_text::isolated`] (controls, bidi controls and invisibles become visible `⟨U+XXXX⟩`
//! markers, and the whole is wrapped in FIRST STRONG ISOLATE … POP DIRECTIONAL ISOLATE, so a
//! right-to-left override in a userId cannot reverse the rest of our sentence), then
//! [`escape_markup`], because the freedesktop notification body may carry markup that servers
//! such as dunst render. A token never reaches a notification.

use lockdesk_config::{Language, Notifications};

/// The kinds of notification, each of which can be muted in Settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoticeKind {
    /// A conversation became secured.
    Secured,
    /// A token was rejected (critical urgency).
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

    pub fn critical(self) -> bool {
        matches!(
            self,
            NoticeKind::VerificationFailed
                | NoticeKind::IdentityMismatch
                | NoticeKind::SharedDevice
                | NoticeKind::ReusedUserId
                | NoticeKind::LookalikeUserId
        )
    }
}

/// One notification to show, about one conversation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    pub kind: NoticeKind,
    pub conversation_id: String,
    /// The verified userId concerned, when there is one (untrusted text: escaped when shown).
    pub user_id: Option<String>,
    /// The reason code of a rejection (e.g. `signature_invalid`).
    pub reason: Option<String>,
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

/// The notification's title and body (body already escaped), in `lang`.
pub fn text(notice: &Notice, lang: Language) -> (String, String) {
    let who = notice
        .user_id
        .as_deref()
        .map(field)
        .unwrap_or_else(|| match lang {
            Language::En => "an unknown visitor".into(),
            Language::Fr => "un visiteur inconnu".into(),
        });
    let reason = notice.reason.as_deref().map(field).unwrap_or_default();
    let conv = field(&notice.conversation_id);
    let (title, body) = match (lang, notice.kind) {
        (Language::En, NoticeKind::Secured) => ("Conversation secured", format!("{who} is verified by the brand's signature.")),
        (Language::Fr, NoticeKind::Secured) => ("Conversation sécurisée", format!("{who} est vérifié par la signature de la marque.")),
        (Language::En, NoticeKind::VerificationFailed) => ("Verification failed", format!("A token was rejected ({reason}). Do not treat this visitor as authenticated.")),
        (Language::Fr, NoticeKind::VerificationFailed) => ("Échec de la vérification", format!("Un jeton a été rejeté ({reason}). Ne considérez pas ce visiteur comme authentifié.")),
        (Language::En, NoticeKind::IdentityMismatch) => ("Identity mismatch", format!("Another identity appeared in a conversation verified as {who}.")),
        (Language::Fr, NoticeKind::IdentityMismatch) => ("Identité incohérente", format!("Une autre identité est apparue dans une conversation vérifiée pour {who}.")),
        (Language::En, NoticeKind::SharedDevice) => ("Shared device", format!("A device that carried another verified person now carries {who}.")),
        (Language::Fr, NoticeKind::SharedDevice) => ("Appareil partagé", format!("Un appareil utilisé par une autre personne vérifiée est maintenant utilisé par {who}.")),
        (Language::En, NoticeKind::ReusedUserId) => ("User id reused", format!("{who} was presented with different signed identities.")),
        (Language::Fr, NoticeKind::ReusedUserId) => ("Identifiant réutilisé", format!("{who} a été présenté avec des identités signées différentes.")),
        (Language::En, NoticeKind::SessionLapsed) => ("Session lapsed", format!("The authenticated session of {who} lapsed.")),
        (Language::Fr, NoticeKind::SessionLapsed) => ("Session expirée", format!("La session authentifiée de {who} a expiré.")),
        (Language::En, NoticeKind::LookalikeUserId) => ("Look-alike userId", format!("{who} looks like another identity this desk knows, or mixes scripts. Check who you are talking to before trusting the padlock.")),
        (Language::Fr, NoticeKind::LookalikeUserId) => ("userId sosie", format!("{who} ressemble à une autre identité connue de ce poste, ou mélange des écritures. Vérifiez à qui vous parlez avant de vous fier au cadenas.")),
    };
    (title.to_owned(), format!("{body}\n{conv}"))
}

/// Shows `notice` unless muted. `on_click` runs (on a background thread) when the user clicks it,
/// where the platform reports clicks (freedesktop servers); elsewhere it never runs.
pub fn show(
    notice: &Notice,
    lang: Language,
    settings: &Notifications,
    on_click: impl FnOnce() + Send + 'static,
) {
    if !notice.kind.enabled(settings) {
        return;
    }
    let (title, body) = text(notice, lang);
    display(title, body, notice.kind.critical(), notice.kind, on_click);
}

/// Hands one notification to the platform's server, on its own thread.
fn display(
    title: String,
    body: String,
    critical: bool,
    kind: impl std::fmt::Debug + Send + 'static,
    on_click: impl FnOnce() + Send + 'static,
) {
    let mut n = notify_rust::Notification::new();
    n.appname("Lockdesk").summary(&title).body(&body);
    #[cfg(all(unix, not(target_os = "macos")))]
    {
        use notify_rust::{Hint, Urgency};
        n.urgency(if critical {
            Urgency::Critical
        } else {
            Urgency::Normal
        });
        n.hint(Hint::Category("im".into()));
        n.action("default", "Open");
    }
    #[cfg(not(all(unix, not(target_os = "macos"))))]
    let _ = critical;
    // Showing talks to the notification server over D-Bus and, on Linux, waits for a click:
    // never on the async executor or the UI thread.
    std::thread::spawn(move || match n.show() {
        Ok(_handle) => {
            tracing::debug!(?kind, "notification shown");
            #[cfg(all(unix, not(target_os = "macos")))]
            _handle.wait_for_action(|action| {
                if action == "default" {
                    on_click();
                }
            });
            #[cfg(not(all(unix, not(target_os = "macos"))))]
            drop(on_click);
        }
        Err(e) => tracing::warn!(?kind, "cannot show a notification: {e}"),
    });
}

/// A change older than this when it reaches the desk (a backlog applied after downtime or a
/// reconnection) is not notified on its own: it is counted into one summary ([`Backlog`]).
/// Generous enough for clock differences between the gateway and the desk.
pub const LIVE_WINDOW_MS: i64 = 120_000;

/// What a backlog held, by kind: shown as one notification once the desk has caught up, instead
/// of one per historical change (a morning's catch-up would otherwise flood the screen).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Backlog {
    counts: Vec<(NoticeKind, u32)>,
}

impl Backlog {
    /// Counts one change of `kind`, unless Settings mute that kind.
    pub fn add(&mut self, kind: NoticeKind, settings: &Notifications) {
        if !kind.enabled(settings) {
            return;
        }
        match self.counts.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, n)) => *n += 1,
            None => self.counts.push((kind, 1)),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    fn critical(&self) -> bool {
        self.counts.iter().any(|(k, _)| k.critical())
    }

    /// Title and body in `lang`: the counts, alarms first. No untrusted text is involved.
    pub fn text(&self, lang: Language) -> (String, String) {
        let mut counts = self.counts.clone();
        counts.sort_by_key(|(k, _)| !k.critical());
        let parts: Vec<String> = counts
            .iter()
            .map(|&(kind, n)| {
                let (one, many) = match (lang, kind) {
                    (Language::En, NoticeKind::Secured) => {
                        ("conversation secured", "conversations secured")
                    }
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
                    (Language::Fr, NoticeKind::SharedDevice) => {
                        ("appareil partagé", "appareils partagés")
                    }
                    (Language::En, NoticeKind::ReusedUserId) => {
                        ("reused user id", "reused user ids")
                    }
                    (Language::Fr, NoticeKind::ReusedUserId) => {
                        ("identifiant réutilisé", "identifiants réutilisés")
                    }
                    (Language::En, NoticeKind::SessionLapsed) => {
                        ("session lapsed", "sessions lapsed")
                    }
                    (Language::Fr, NoticeKind::SessionLapsed) => {
                        ("session expirée", "sessions expirées")
                    }
                    (Language::En, NoticeKind::LookalikeUserId) => {
                        ("look-alike userId", "look-alike userIds")
                    }
                    (Language::Fr, NoticeKind::LookalikeUserId) => {
                        ("userId sosie", "userIds sosies")
                    }
                };
                // English: singular for 1; French: for 0 and 1.
                let singular = n == 1 || (lang == Language::Fr && n == 0);
                format!("{n} {}", if singular { one } else { many })
            })
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

/// Shows the backlog's summary (critical urgency when it counts an alarm). `on_click` as for
/// [`show`]. Nothing is shown for an empty backlog.
pub fn show_summary(backlog: &Backlog, lang: Language, on_click: impl FnOnce() + Send + 'static) {
    if backlog.is_empty() {
        return;
    }
    let (title, body) = backlog.text(lang);
    display(title, body, backlog.critical(), "summary", on_click);
}

#[cfg(test)]
mod tests {
    use super::*;

    const FSI: char = lockdesk_text::FSI;
    const PDI: char = lockdesk_text::PDI;

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
        for kind in [NoticeKind::Secured, NoticeKind::SharedDevice] {
            for lang in [Language::En, Language::Fr] {
                let n = Notice {
                    kind,
                    conversation_id: "c-\u{2067}9".into(),
                    user_id: Some(user.into()),
                    reason: None,
                };
                let (title, body) = text(&n, lang);
                // The line break before the conversation id is ours.
                for c in title.chars().chain(body.chars()).filter(|c| *c != '\n') {
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
                assert!(
                    body.ends_with(&format!("\n{FSI}c-⟨U+2067⟩9{PDI}")),
                    "{body:?}"
                );
                // Every isolate we open is closed: nothing leaks into the next line or text.
                assert_eq!(
                    body.matches(FSI).count(),
                    body.matches(PDI).count(),
                    "{body:?}"
                );
            }
        }
    }

    #[test]
    fn every_kind_has_text_in_both_languages_with_the_user_escaped() {
        let kinds = [
            NoticeKind::Secured,
            NoticeKind::VerificationFailed,
            NoticeKind::IdentityMismatch,
            NoticeKind::SharedDevice,
            NoticeKind::ReusedUserId,
            NoticeKind::SessionLapsed,
            NoticeKind::LookalikeUserId,
        ];
        for kind in kinds {
            for lang in [Language::En, Language::Fr] {
                let n = Notice {
                    kind,
                    conversation_id: "c-1".into(),
                    user_id: Some("<img src=x onerror=alert(1)>".into()),
                    reason: Some("signature_invalid".into()),
                };
                let (title, body) = text(&n, lang);
                assert!(!title.is_empty());
                assert!(!body.contains('<'), "{body}");
                assert!(body.contains("c-1"));
                if kind != NoticeKind::VerificationFailed {
                    assert!(body.contains("&lt;img"), "{kind:?} {lang:?}: {body}");
                } else {
                    assert!(body.contains("signature_invalid"));
                }
            }
        }
        let en = text(
            &Notice {
                kind: NoticeKind::Secured,
                conversation_id: "c".into(),
                user_id: None,
                reason: None,
            },
            Language::Fr,
        );
        assert!(en.0.contains("sécurisée"));
    }

    #[test]
    fn mutes_follow_settings_and_failures_are_critical() {
        let mut s = Notifications::default();
        assert!(NoticeKind::Secured.enabled(&s));
        s.secured = false;
        s.reused_user_id = false;
        assert!(!NoticeKind::Secured.enabled(&s));
        assert!(!NoticeKind::ReusedUserId.enabled(&s));
        assert!(NoticeKind::VerificationFailed.enabled(&s));
        assert!(NoticeKind::VerificationFailed.critical());
        assert!(!NoticeKind::Secured.critical());
        assert!(!NoticeKind::SessionLapsed.critical());
        assert!(NoticeKind::LookalikeUserId.critical());
        s.lookalike_user_id = false;
        assert!(!NoticeKind::LookalikeUserId.enabled(&s));
    }

    #[test]
    fn a_backlog_is_one_summary_with_alarms_first_and_muted_kinds_left_out() {
        let settings = Notifications {
            session_lapsed: false,
            ..Notifications::default()
        };
        let mut b = Backlog::default();
        assert!(b.is_empty());
        for _ in 0..12 {
            b.add(NoticeKind::Secured, &settings);
        }
        b.add(NoticeKind::VerificationFailed, &settings);
        b.add(NoticeKind::SessionLapsed, &settings); // muted
        b.add(NoticeKind::IdentityMismatch, &settings);
        b.add(NoticeKind::IdentityMismatch, &settings);
        assert!(b.critical());
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
        only_secured.add(NoticeKind::Secured, &settings);
        assert!(!only_secured.critical());
        assert!(only_secured
            .text(Language::En)
            .1
            .starts_with("1 conversation secured."));
        let mut all_muted = Backlog::default();
        all_muted.add(NoticeKind::SessionLapsed, &settings);
        assert!(all_muted.is_empty());
    }
}
