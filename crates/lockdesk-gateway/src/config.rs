//! The gateway's configuration file (TOML): webhook secrets, token-provider credentials and the
//! subscribers of the feed. Parsing refuses unknown keys; [`validate`] reports every problem at
//! once, each naming its field.
//!
//! Must not: print or log a secret. [`Secret`]'s `Debug` is redacted and it has no `Display`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The largest configuration file we agree to read.
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;
/// Provider and subscriber credentials are issued by the gateway's operator: we require enough
/// length that guessing is hopeless (e.g. `openssl rand -hex 32`).
pub const MIN_CREDENTIAL_LEN: usize = 16;

pub use lockdesk_intake::Secret;

/// Everything the gateway reads from its configuration file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// The brand's iAdvize apps: each signs its webhooks with its own secret token.
    #[serde(default)]
    pub webhook: Vec<WebhookApp>,
    /// The brand's token providers, which post evidence with a bearer credential.
    #[serde(default)]
    pub provider: Vec<Provider>,
    /// The desks allowed on the feed.
    #[serde(default)]
    pub subscriber: Vec<Subscriber>,
    /// `[store]`: the log on PostgreSQL instead of the SQLite file in `--data` (read at start;
    /// a reload does not move the log).
    #[serde(default)]
    pub store: Option<StoreSection>,
}

/// `[store]`: where a multi-instance gateway keeps its log (docs/gateway.md).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSection {
    /// `postgres://user@host:port/database`, without a password; `?sslmode=` says how TLS is
    /// done (docs/deploy-postgres.md, "TLS").
    pub url: Option<String>,
    /// A file whose first line is the database password (relative paths are from the
    /// configuration file's folder). Or the `LOCKDESK_PG_PASSWORD` environment variable.
    pub password_file: Option<PathBuf>,
    /// The PEM file of the CA that issued the server's certificate (relative paths are from
    /// the configuration file's folder). Or `sslrootcert=` in the URL.
    pub ca_file: Option<PathBuf>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookApp {
    /// A label for logs (never the secret).
    pub name: String,
    /// The app's webhook secret token, as shown in iAdvize's administration.
    pub secret: Secret,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provider {
    pub name: String,
    pub credential: Secret,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Receives the conversations pushed to their operator id(s) and those visitors' evidence.
    Advisor,
    /// Receives everything.
    Supervisor,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subscriber {
    pub name: String,
    pub credential: Secret,
    pub role: Role,
    /// The advisor's iAdvize operator id(s); empty for supervisors.
    #[serde(default)]
    pub operator_ids: Vec<u64>,
}

/// One invalid field: `field` is its path in the file (`subscriber[1].operator_ids`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Why the configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is larger than {MAX_CONFIG_BYTES} bytes")]
    TooLarge { path: PathBuf },
    #[error("{path} is not valid gateway configuration: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path} has invalid fields: {}", join(.errors))]
    Invalid {
        path: PathBuf,
        errors: Vec<FieldError>,
    },
}

fn join(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

/// The names gateway.toml's schema has: the only backticked words an error may show.
const SCHEMA_NAMES: &[&str] = &[
    "webhook",
    "provider",
    "subscriber",
    "name",
    "secret",
    "credential",
    "role",
    "operator_ids",
    "advisor",
    "supervisor",
];

/// `msg` without any value from the file: serde quotes a mistyped string in full (`invalid
/// type: string "…"`) and an unknown enum value in backticks (`unknown variant `…``), and in
/// gateway.toml that value may be a secret. Double-quoted strings are always masked; a
/// backticked word stays only when it is a schema name or the key an `unknown field` message
/// names (a key, which the user needs to see to fix the file).
fn mask_quoted(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut rest = msg;
    while let Some(open) = rest.find(['"', '`']) {
        let quote = rest[open..].chars().next().unwrap_or('"');
        let before = &rest[..open];
        out.push_str(before);
        let after = &rest[open + 1..];
        // serde writes strings with Debug escaping: skip escaped quotes to the closing one.
        let mut close = None;
        let mut escaped = false;
        for (i, c) in after.char_indices() {
            match c {
                '\\' if !escaped && quote == '"' => escaped = true,
                c if c == quote && !escaped => {
                    close = Some(i);
                    break;
                }
                _ => escaped = false,
            }
        }
        let inner = &after[..close.unwrap_or(after.len())];
        let keep = quote == '`'
            && (SCHEMA_NAMES.contains(&inner)
                || (out.ends_with("unknown field ") && inner.len() <= 64 && !inner.contains('`')));
        if keep {
            out.push('`');
            out.push_str(inner);
            out.push('`');
        } else {
            out.push(quote);
            out.push_str("(value not shown)");
            out.push(quote);
        }
        match close {
            Some(i) => rest = &after[i + 1..],
            None => return out,
        }
    }
    out.push_str(rest);
    out
}

impl GatewayConfig {
    /// Parses TOML text (no validation; see [`validate`]).
    pub fn from_toml(text: &str) -> Result<GatewayConfig, String> {
        // toml's Display quotes the offending line, which may hold a secret: only its
        // `message()` is used, and serde's type errors inside it quote the value
        // (`invalid type: string "…", expected …`), so quoted strings are masked too.
        toml::from_str(text).map_err(|e| {
            let msg = mask_quoted(e.message());
            match e.span() {
                Some(span) => {
                    let line = text.as_bytes()[..span.start.min(text.len())]
                        .iter()
                        .filter(|&&b| b == b'\n')
                        .count()
                        + 1;
                    format!("line {line}: {msg}")
                }
                None => msg,
            }
        })
    }

    /// Reads, parses and validates the file at `path`.
    pub fn load(path: &Path) -> Result<GatewayConfig, ConfigError> {
        use std::io::Read;
        let read_err = |source| ConfigError::Read {
            path: path.to_owned(),
            source,
        };
        let file = std::fs::File::open(path).map_err(read_err)?;
        let mut text = String::new();
        file.take(MAX_CONFIG_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(read_err)?;
        if text.len() as u64 > MAX_CONFIG_BYTES {
            return Err(ConfigError::TooLarge {
                path: path.to_owned(),
            });
        }
        let config = GatewayConfig::from_toml(&text).map_err(|message| ConfigError::Parse {
            path: path.to_owned(),
            message,
        })?;
        let errors = validate(&config);
        if !errors.is_empty() {
            return Err(ConfigError::Invalid {
                path: path.to_owned(),
                errors,
            });
        }
        Ok(config)
    }
}

/// Every problem in `config`, in file order; empty means valid.
pub fn validate(config: &GatewayConfig) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let mut err = |field: String, message: &str| {
        errors.push(FieldError {
            field,
            message: message.to_owned(),
        })
    };
    if config.webhook.is_empty() {
        err(
            "webhook".into(),
            "at least one [[webhook]] with the iAdvize app's secret is required",
        );
    }
    let mut names = HashSet::new();
    for (i, app) in config.webhook.iter().enumerate() {
        check_name(
            &app.name,
            &format!("webhook[{i}].name"),
            &mut names,
            &mut err,
        );
        if app.secret.expose().is_empty() {
            err(
                format!("webhook[{i}].secret"),
                "expected a non-empty secret",
            );
        } else if app.secret.expose().trim() != app.secret.expose() {
            err(
                format!("webhook[{i}].secret"),
                "has leading or trailing whitespace (a copy-paste slip?)",
            );
        }
    }
    // Credentials must be unique across providers and subscribers: a credential identifies
    // exactly one party.
    let mut credentials = HashSet::new();
    let mut names = HashSet::new();
    for (i, p) in config.provider.iter().enumerate() {
        check_name(
            &p.name,
            &format!("provider[{i}].name"),
            &mut names,
            &mut err,
        );
        check_credential(
            &p.credential,
            &format!("provider[{i}].credential"),
            &mut credentials,
            &mut err,
        );
    }
    let mut names = HashSet::new();
    for (i, s) in config.subscriber.iter().enumerate() {
        check_name(
            &s.name,
            &format!("subscriber[{i}].name"),
            &mut names,
            &mut err,
        );
        check_credential(
            &s.credential,
            &format!("subscriber[{i}].credential"),
            &mut credentials,
            &mut err,
        );
        let field = format!("subscriber[{i}].operator_ids");
        match s.role {
            Role::Advisor if s.operator_ids.is_empty() => {
                err(field, "an advisor needs at least one iAdvize operator id")
            }
            Role::Supervisor if !s.operator_ids.is_empty() => err(
                field,
                "a supervisor receives everything: operator ids are for advisors only",
            ),
            _ => {
                let unique: HashSet<_> = s.operator_ids.iter().collect();
                if unique.len() != s.operator_ids.len() {
                    err(field, "lists an operator id twice");
                }
            }
        }
    }
    if let Some(store) = &config.store {
        if let Some(url) = &store.url {
            let settings = crate::store::PgSettings {
                url: url.clone(),
                password: None,
                // Not read here: only whether one is given (sslmode=disable with a CA is
                // refused, say).
                ca_file: store.ca_file.clone().filter(|p| !p.as_os_str().is_empty()),
            };
            // The message never quotes the URL (it may hold the password it refuses).
            if let Err(e) = settings.config() {
                let message = match e {
                    crate::StoreError::Settings(m) => m,
                    other => other.to_string(),
                };
                err("store.url".into(), &message);
            }
        }
        if store
            .password_file
            .as_ref()
            .is_some_and(|p| p.as_os_str().is_empty())
        {
            err("store.password_file".into(), "expected a file name");
        }
        if store
            .ca_file
            .as_ref()
            .is_some_and(|p| p.as_os_str().is_empty())
        {
            err("store.ca_file".into(), "expected a file name");
        }
    }
    errors
}

fn check_name(
    name: &str,
    field: &str,
    seen: &mut HashSet<String>,
    err: &mut impl FnMut(String, &str),
) {
    if name.trim().is_empty() {
        err(field.to_owned(), "expected a non-empty name");
    } else if name.len() > 128 || name.chars().any(char::is_control) {
        err(
            field.to_owned(),
            "expected at most 128 characters, no control characters",
        );
    } else if !seen.insert(name.to_owned()) {
        err(field.to_owned(), "this name is used twice");
    }
}

fn check_credential(
    credential: &Secret,
    field: &str,
    seen: &mut HashSet<String>,
    err: &mut impl FnMut(String, &str),
) {
    let value = credential.expose();
    if value.len() < MIN_CREDENTIAL_LEN {
        err(
            field.to_owned(),
            "expected at least 16 characters (e.g. `openssl rand -hex 32`)",
        );
    } else if !value.bytes().all(|b| b.is_ascii_graphic()) {
        err(
            field.to_owned(),
            "expected printable ASCII without spaces (it travels in an HTTP header)",
        );
    } else if !seen.insert(value.to_owned()) {
        err(
            field.to_owned(),
            "this credential is also given to another provider or subscriber",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lockdesk_testkit::gateway_config::{advisor, config, sam, ALICE, SECRET};

    /// The test gateway's configuration with alice (operators 101 and 102), then sam.
    fn valid() -> String {
        config(&(advisor("alice", ALICE, &[101, 102]) + &sam()))
    }

    #[test]
    fn valid_file_parses_and_validates() {
        let c = GatewayConfig::from_toml(&valid()).unwrap();
        assert_eq!(validate(&c), vec![]);
        assert_eq!(c.subscriber[0].operator_ids, vec![101, 102]);
        assert_eq!(c.subscriber[1].role, Role::Supervisor);
    }

    #[test]
    fn debug_output_never_shows_secrets() {
        let c = GatewayConfig::from_toml(&valid()).unwrap();
        let dbg = format!("{c:?}");
        for secret in [
            SECRET,
            "provider-credential",
            "alice-credential",
            "sam-credential",
        ] {
            assert!(!dbg.contains(secret), "{secret} leaked in {dbg}");
        }
        assert!(dbg.contains("<redacted>"));
    }

    #[test]
    fn unknown_keys_are_refused_without_echoing_the_line() {
        let text = "[[webhook]]\nname = \"a\"\nsecret = \"topsecret\"\nsekret = \"x\"\n";
        let e = GatewayConfig::from_toml(text).unwrap_err();
        assert!(e.contains("sekret"), "{e}");
        assert!(e.starts_with("line 4"), "{e}");
        assert!(!e.contains("topsecret"), "{e}");
    }

    #[test]
    fn mistyped_values_are_never_quoted() {
        // A credential pasted where a list of operator ids belongs, and one where a role
        // belongs: serde's message would quote the string in full.
        for text in [
            "[[subscriber]]\nname = \"a\"\ncredential = \"0123456789abcdef\"\nrole = \"advisor\"\noperator_ids = \"s3cr3t-\\\"quoted\\\"-credential\"\n",
            "[[subscriber]]\nname = \"a\"\ncredential = \"0123456789abcdef\"\nrole = \"s3cr3t-credential\"\n",
            "[[provider]]\nname = \"p\"\ncredential = 12345\n[[webhook]]\nname = \"w\"\nsecret = [\"s3cr3t-credential\"]\n",
        ] {
            let e = GatewayConfig::from_toml(text).unwrap_err();
            assert!(!e.contains("s3cr3t"), "{e}");
            assert!(e.starts_with("line "), "{e}");
        }
        assert_eq!(
            mask_quoted(r#"invalid type: string "a\"b", expected a sequence"#),
            r#"invalid type: string "(value not shown)", expected a sequence"#
        );
        assert_eq!(mask_quoted("no quotes"), "no quotes");
        assert_eq!(
            mask_quoted("unknown variant `s3cr3t`, expected `advisor` or `supervisor`"),
            "unknown variant `(value not shown)`, expected `advisor` or `supervisor`"
        );
        assert_eq!(
            mask_quoted("unknown field `sekret`, expected `name` or `secret`"),
            "unknown field `sekret`, expected `name` or `secret`"
        );
        assert_eq!(mask_quoted(r#"open "quote"#), r#"open "(value not shown)""#);
    }

    fn field_errors(text: &str) -> Vec<String> {
        validate(&GatewayConfig::from_toml(text).unwrap())
            .into_iter()
            .map(|e| e.field)
            .collect()
    }

    #[test]
    fn each_problem_names_its_field() {
        let cases: &[(&str, &[&str])] = &[
            ("", &["webhook"]),
            ("[[webhook]]\nname = \"\"\nsecret = \"\"\n", &["webhook[0].name", "webhook[0].secret"]),
            (
                "[[webhook]]\nname = \"a\"\nsecret = \"x\"\n[[provider]]\nname = \"p\"\ncredential = \"short\"\n",
                &["provider[0].credential"],
            ),
            (
                "[[webhook]]\nname = \"a\"\nsecret = \"x\"\n[[subscriber]]\nname = \"b\"\ncredential = \"0123456789abcdef\"\nrole = \"advisor\"\n",
                &["subscriber[0].operator_ids"],
            ),
            (
                "[[webhook]]\nname = \"a\"\nsecret = \"x\"\n[[provider]]\nname = \"p\"\ncredential = \"0123456789abcdef\"\n[[subscriber]]\nname = \"b\"\ncredential = \"0123456789abcdef\"\nrole = \"supervisor\"\noperator_ids = [1]\n",
                &["subscriber[0].credential", "subscriber[0].operator_ids"],
            ),
            (
                "[[webhook]]\nname = \"a\"\nsecret = \"x\"\n[[webhook]]\nname = \"a\"\nsecret = \" y\"\n",
                &["webhook[1].name", "webhook[1].secret"],
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(&field_errors(text), expected, "for {text:?}");
        }
    }
}
