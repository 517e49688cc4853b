//! The Settings screen's commands: read, validate and save the configuration file.

use std::path::PathBuf;
use std::sync::Arc;

use lockdesk_config::{Config, KeyFileCheck, Language, TrustedIssuer};
use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::IpcError;

/// One problem with one field. `field` is the dotted path used in the configuration file
/// (`feed.url`, `trust.0.key`, `verification.leeway_secs`, ...), which the form uses as input ids.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, TS)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl From<lockdesk_config::FieldError> for FieldError {
    fn from(e: lockdesk_config::FieldError) -> Self {
        FieldError {
            field: e.field,
            message: e.message,
        }
    }
}

/// One trusted issuer as edited in the form.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct TrustForm {
    pub issuer: String,
    /// Key file path or `https://` JWKS address.
    pub key: String,
}

/// Defines [`NotificationsForm`], the UI's twin of the file's [`lockdesk_config::Notifications`]
/// (camelCase where the file is snake_case; each kind is documented there), and the conversions
/// both ways, from one list of the kinds.
macro_rules! notifications_form {
    ($($kind:ident),+ $(,)?) => {
        /// Which desktop notifications are shown (true: shown). Settings lets each kind be muted.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, TS)]
        #[serde(rename_all = "camelCase")]
        pub struct NotificationsForm {
            $(pub $kind: bool,)+
        }

        impl From<lockdesk_config::Notifications> for NotificationsForm {
            fn from(n: lockdesk_config::Notifications) -> Self {
                NotificationsForm { $($kind: n.$kind,)+ }
            }
        }

        impl From<NotificationsForm> for lockdesk_config::Notifications {
            fn from(n: NotificationsForm) -> Self {
                lockdesk_config::Notifications { $($kind: n.$kind,)+ }
            }
        }
    };
}

notifications_form!(
    secured,
    verification_failed,
    identity_mismatch,
    shared_device,
    reused_user_id,
    session_lapsed,
    lookalike_user_id,
);

/// The Settings form as the UI edits it: numbers travel as the text the user typed, so a typo is
/// reported beside its field instead of failing the whole call.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct SettingsForm {
    /// The gateway's feed addresses, one per line (several: instances of one gateway, tried in
    /// order with failover); blank lines are ignored. An error about one of several addresses
    /// is reported on `feed.url` as `line N: ...` (N counts the text's lines from 1).
    pub feed_url: String,
    /// `null`: keep the saved credential. A string: replace it (empty clears it).
    pub credential: Option<String>,
    pub trust: Vec<TrustForm>,
    pub decryption_keys: Vec<String>,
    pub leeway_secs: String,
    pub session_lifetime_mins: String,
    pub max_token_lifetime_secs: String,
    pub require_encryption: bool,
    /// `en` or `fr`.
    pub language: String,
    /// Which notifications are shown; `null` keeps the saved choice.
    #[serde(default)]
    #[ts(optional = nullable)]
    pub notifications: Option<NotificationsForm>,
}

/// What the Settings screen shows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct SettingsView {
    pub form: SettingsForm,
    /// A credential is saved (its value is never sent to the UI).
    pub credential_saved: bool,
    pub config_path: String,
    /// Set when the file on disk could not be read: the form then shows defaults, and saving
    /// keeps a copy of the unreadable file.
    pub load_error: Option<String>,
}

/// The answer to a save.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct SaveOutcome {
    /// False when any field is invalid: nothing was written.
    pub saved: bool,
    pub errors: Vec<FieldError>,
    /// Where the previous, unreadable file was kept, if it was.
    pub kept_unreadable_copy: Option<String>,
    pub settings: SettingsView,
}

/// Facts about this installation, for the About panel and diagnostics.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct AppInfo {
    pub version: String,
    pub config_path: String,
    pub data_dir: String,
    pub log_dir: String,
    /// True when no feed is configured.
    pub feed_configured: bool,
}

/// Reads, validates and writes the configuration file at one path.
#[derive(Clone)]
pub struct SettingsService {
    path: PathBuf,
    keys: Arc<dyn KeyFileCheck + Send + Sync>,
}

impl SettingsService {
    pub fn new(path: PathBuf, keys: Arc<dyn KeyFileCheck + Send + Sync>) -> Self {
        SettingsService { path, keys }
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// The saved configuration, or the defaults when nothing is saved yet.
    pub fn load(&self) -> Result<Config, IpcError> {
        Ok(lockdesk_config::load(&self.path)?)
    }

    /// The Settings screen's content. An unreadable file is reported, not fatal.
    pub fn view(&self) -> SettingsView {
        match lockdesk_config::load(&self.path) {
            Ok(config) => self.view_of(&config, None),
            Err(e) => self.view_of(&Config::default(), Some(e.to_string())),
        }
    }

    fn view_of(&self, config: &Config, load_error: Option<String>) -> SettingsView {
        SettingsView {
            form: form_of(config),
            credential_saved: config
                .feed
                .credential
                .as_deref()
                .is_some_and(|c| !c.is_empty()),
            config_path: self.path.display().to_string(),
            load_error,
        }
    }

    /// Problems with the form, field by field (empty: it can be saved).
    pub fn validate(&self, form: &SettingsForm) -> Vec<FieldError> {
        self.merged_and_checked(form).1
    }

    /// The form applied to the saved file, and every problem with it: read, merged and checked
    /// once, so a save touches the file and the key files no more than a validation does.
    fn merged_and_checked(&self, form: &SettingsForm) -> (Config, Vec<FieldError>) {
        let (config, mut errors) = self.merge(form);
        let lines = feed_lines(&form.feed_url);
        // Every field is checked, not only up to the first typo; a field whose text did not
        // parse reports that, not a range error about the placeholder used in its stead.
        for e in lockdesk_config::validate(&config, self.keys.as_ref()) {
            // One of several addresses (`feed.url.N`): the form has one text box, so the
            // problem is said there, with the line it is on; every line's problem is listed.
            let line = e
                .field
                .strip_prefix("feed.url.")
                .and_then(|i| i.parse::<usize>().ok())
                .and_then(|i| lines.get(i))
                .map(|(line, _)| *line);
            if let Some(line) = line {
                let message = format!("line {line}: {}", e.message);
                match errors.iter_mut().find(|p| p.field == "feed.url") {
                    Some(p) => {
                        p.message.push_str("; ");
                        p.message.push_str(&message);
                    }
                    None => errors.push(FieldError {
                        field: "feed.url".into(),
                        message,
                    }),
                }
            } else if !errors.iter().any(|p| p.field == e.field) {
                errors.push(e.into());
            }
        }
        (config, errors)
    }

    /// Validates and, when every field is valid, writes the file atomically.
    pub fn save(&self, form: &SettingsForm) -> Result<SaveOutcome, IpcError> {
        let (config, errors) = self.merged_and_checked(form);
        if !errors.is_empty() {
            return Ok(SaveOutcome {
                saved: false,
                errors,
                kept_unreadable_copy: None,
                settings: self.view(),
            });
        }
        let kept = lockdesk_config::save(&self.path, &config)?;
        tracing::info!(path = %self.path.display(), "configuration saved");
        Ok(SaveOutcome {
            saved: true,
            errors: Vec::new(),
            kept_unreadable_copy: kept.map(|p| p.display().to_string()),
            settings: self.view_of(&config, None),
        })
    }

    /// The form applied to the saved configuration (which supplies the credential when the
    /// form keeps it), and the fields whose text did not parse (their defaults stand in).
    fn merge(&self, form: &SettingsForm) -> (Config, Vec<FieldError>) {
        let saved = lockdesk_config::load(&self.path).unwrap_or_default();
        let mut errors = Vec::new();
        let defaults = lockdesk_config::Verification::default();
        let mut number = |field: &str, text: &str, what: &str, default: u32| -> u32 {
            match text.trim().parse::<u32>() {
                Ok(n) => n,
                Err(_) => {
                    errors.push(FieldError {
                        field: field.to_owned(),
                        message: format!("expected a whole number of {what}"),
                    });
                    default
                }
            }
        };
        let leeway_secs = number(
            "verification.leeway_secs",
            &form.leeway_secs,
            "seconds",
            defaults.leeway_secs,
        );
        let session_lifetime_mins = number(
            "verification.session_lifetime_mins",
            &form.session_lifetime_mins,
            "minutes",
            defaults.session_lifetime_mins,
        );
        let max_token_lifetime_secs = number(
            "verification.max_token_lifetime_secs",
            &form.max_token_lifetime_secs,
            "seconds",
            defaults.max_token_lifetime_secs,
        );
        let language = Language::from_code(&form.language);
        if language.is_none() {
            errors.push(FieldError {
                field: "ui.language".into(),
                message: "expected en or fr".into(),
            });
        }
        let urls: Vec<String> = feed_lines(&form.feed_url)
            .into_iter()
            .map(|(_, url)| url)
            .collect();
        let credential = match &form.credential {
            None => saved.feed.credential.clone(),
            Some(c) if c.is_empty() => None,
            Some(c) => Some(c.clone()),
        };
        let config = Config {
            feed: lockdesk_config::Feed {
                url: (!urls.is_empty()).then_some(lockdesk_config::FeedUrls(urls)),
                credential,
                // Not in the form (a file-only setting): kept as saved.
                ca_file: saved.feed.ca_file.clone(),
            },
            trust: form
                .trust
                .iter()
                .map(|t| TrustedIssuer {
                    issuer: t.issuer.clone(),
                    key: t.key.trim().to_owned(),
                })
                .collect(),
            decryption: lockdesk_config::Decryption {
                keys: form
                    .decryption_keys
                    .iter()
                    .map(|k| k.trim().to_owned())
                    .collect(),
            },
            verification: lockdesk_config::Verification {
                leeway_secs,
                session_lifetime_mins,
                max_token_lifetime_secs,
                require_encryption: form.require_encryption,
            },
            ui: lockdesk_config::Ui {
                language: language.unwrap_or_default(),
            },
            notifications: form
                .notifications
                .map(Into::into)
                .unwrap_or(saved.notifications),
            // Not on the form: the API account is edited in the file; saving keeps it.
            iadvize: saved.iadvize.clone(),
        };
        (config, errors)
    }
}

/// The feed addresses of the form's text: one per line, trimmed, blank lines left out; each
/// with its line number (from 1).
fn feed_lines(text: &str) -> Vec<(usize, String)> {
    text.lines()
        .enumerate()
        .map(|(i, line)| (i + 1, line.trim()))
        .filter(|(_, line)| !line.is_empty())
        .map(|(n, line)| (n, line.to_owned()))
        .collect()
}

fn form_of(config: &Config) -> SettingsForm {
    let v = &config.verification;
    SettingsForm {
        feed_url: config
            .feed
            .url
            .as_ref()
            .map(|u| u.as_slice().join("\n"))
            .unwrap_or_default(),
        credential: None,
        trust: config
            .trust
            .iter()
            .map(|t| TrustForm {
                issuer: t.issuer.clone(),
                key: t.key.clone(),
            })
            .collect(),
        decryption_keys: config.decryption.keys.clone(),
        leeway_secs: v.leeway_secs.to_string(),
        session_lifetime_mins: v.session_lifetime_mins.to_string(),
        max_token_lifetime_secs: v.max_token_lifetime_secs.to_string(),
        require_encryption: v.require_encryption,
        language: config.ui.language.code().to_owned(),
        notifications: Some(config.notifications.into()),
    }
}
