//! Parse errors that never quote the file.
//!
//! toml's own messages show the offending source line (and serde's quote the offending value,
//! e.g. `invalid type: string "…", expected a boolean`); in `config.toml` that line may be the
//! subscriber credential or the iAdvize password. So an error here names the line, the column,
//! the section and the field (only names from the schema), and a message from which every
//! quoted piece that is not a schema name is removed; as a last guard, a message that still
//! contains any value or line of the file is replaced by a generic one.

/// The sections `config.toml` has.
const SECTIONS: &[&str] = &[
    "feed",
    "trust",
    "decryption",
    "verification",
    "ui",
    "notifications",
    "iadvize",
];

/// The fields of those sections (and the enum values a message may name).
const NAMES: &[&str] = &[
    "url",
    "credential",
    "ca_file",
    "issuer",
    "key",
    "keys",
    "leeway_secs",
    "session_lifetime_mins",
    "max_token_lifetime_secs",
    "require_encryption",
    "language",
    "secured",
    "verification_failed",
    "identity_mismatch",
    "shared_device",
    "reused_user_id",
    "session_lapsed",
    "lookalike_user_id",
    "base_url",
    "platform",
    "username",
    "password",
    "en",
    "fr",
];

fn is_schema_name(s: &str) -> bool {
    SECTIONS.contains(&s) || NAMES.contains(&s)
}

/// The schema name a `name = …` line assigns, or a `[name]` / `[[name]]` header opens.
fn line_key(line: &str) -> Option<(&'static str, bool)> {
    let t = line.trim();
    if let Some(h) = t.strip_prefix('[') {
        let h = h.trim_start_matches('[');
        let name = h.split(']').next()?.trim();
        return SECTIONS.iter().find(|s| **s == name).map(|s| (*s, true));
    }
    let (k, _) = t.split_once('=')?;
    let k = k.trim().trim_matches('"').trim_matches('\'');
    NAMES.iter().find(|n| **n == k).map(|n| (*n, false))
}

/// A bare TOML key (letters, digits, `_`, `-`): a name, not a value.
fn is_bare_key(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// The keys and table names the file uses (what toml names in "unknown field `x`"): names, not
/// values, so they may be shown.
fn file_keys(text: &str) -> Vec<&str> {
    let mut keys = Vec::new();
    for line in text.lines() {
        let t = line.trim();
        if let Some(h) = t.strip_prefix('[') {
            let h = h.trim_start_matches('[');
            if let Some(name) = h.split(']').next() {
                keys.extend(name.split('.').map(str::trim).filter(|k| is_bare_key(k)));
            }
        } else if let Some((k, _)) = t.split_once('=') {
            keys.extend(k.split('.').map(str::trim).filter(|k| is_bare_key(k)));
        }
    }
    keys
}

/// Removes every `…` or "…" piece that is not a schema name, a key of the file or a bit of
/// punctuation.
fn mask_quotes(message: &str, keys: &[&str]) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(i) = rest.find(['`', '"']) {
        let q = rest[i..].chars().next().unwrap_or('`');
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        // "`\"`" (a quote inside backticks) is punctuation too.
        match after.find(q) {
            Some(j) => {
                let inner = &after[..j];
                let punct = !inner.is_empty()
                    && inner.chars().count() <= 2
                    && inner.chars().all(|c| c.is_ascii_punctuation());
                let key = q == '`' && keys.contains(&inner);
                if is_schema_name(inner) || punct || key {
                    out.push(q);
                    out.push_str(inner);
                    out.push(q);
                } else {
                    out.push_str("(value not shown)");
                }
                rest = &after[j + 1..];
            }
            None => {
                // An unmatched quote: drop the rest, it could be anything.
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// True when `message` contains a value or a whole line of `text` (4 characters or more).
fn quotes_the_file(message: &str, text: &str) -> bool {
    text.lines().any(|line| {
        let t = line.trim();
        let value = t
            .split_once('=')
            .map(|(_, v)| v.trim().trim_matches(['"', '\'']).trim())
            .unwrap_or(t);
        let long = |s: &str| s.chars().count() >= 4;
        (long(value) && message.contains(value)) || (long(t) && message.contains(t))
    })
}

/// Describes a toml parse error of `text` without quoting it: `line L, column C ([section]
/// field): what`.
pub(crate) fn describe(text: &str, err: &toml::de::Error) -> String {
    let first = err.message().lines().next().unwrap_or("").trim();
    let mut message = mask_quotes(first, &file_keys(text));
    if message.is_empty() || quotes_the_file(&message, text) {
        message = "invalid value or syntax".into();
    }
    let Some(span) = err.span() else {
        return message;
    };
    let start = span.start.min(text.len());
    let before = text.get(..start).unwrap_or("");
    let line_no = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = text
        .get(line_start..start)
        .map_or(1, |s| s.chars().count() + 1);
    let line = text[line_start..].split('\n').next().unwrap_or("");
    let section = text[..line_start]
        .lines()
        .rev()
        .filter_map(line_key)
        .find(|(_, header)| *header)
        .map(|(s, _)| s);
    let field = line_key(line);
    let place = match (section, field) {
        (_, Some((s, true))) => format!(" [{s}]"),
        (Some(s), Some((f, false))) => format!(" [{s}] {f}"),
        (None, Some((f, false))) => format!(" {f}"),
        (Some(s), None) => format!(" in [{s}]"),
        (None, None) => String::new(),
    };
    let place = if place.is_empty() {
        String::new()
    } else {
        format!(",{place}")
    };
    format!("line {line_no}, column {column}{place}: {message}")
}
