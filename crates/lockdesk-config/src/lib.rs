//! Lockdesk's configuration: the TOML file in the OS config folder, its validation, and where the
//! config and data folders are.
//!
//! Architecture invariants:
//! - the file is never left half-written: [`save`] writes a sibling temp file, syncs it and renames
//!   it over the old one;
//! - a file that cannot be parsed is never silently replaced: [`save`] first keeps a copy of it
//!   next to it (`config.toml.unreadable-<unix time>`);
//! - `LOCKDESK_CONFIG_DIR` and `LOCKDESK_DATA_DIR` redirect every path this crate hands out, so
//!   tests never touch the real folders;
//! - secrets (the subscriber credential, the iAdvize password) never appear in `Debug` output
//!   nor in errors: a parse error names line, column, section and field, never quotes the file.

mod dirs;
mod errors;
mod model;
mod validate;

pub use dirs::{
    config_dir, config_path, data_dir, log_dir, DirError, CONFIG_DIR_ENV, DATA_DIR_ENV,
};
pub use model::{
    Config, Decryption, Feed, FeedUrls, IAdvizeApi, Language, Notifications, TrustedIssuer, Ui,
    Verification, DEFAULT_LEEWAY_SECS, DEFAULT_MAX_TOKEN_LIFETIME_SECS,
    DEFAULT_SESSION_LIFETIME_MINS, MAX_FEED_URLS,
};
pub use validate::{validate, FieldError, FilePresence, KeyFileCheck};

use std::io::Write;
use std::path::{Path, PathBuf};

/// Why the configuration could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not valid Lockdesk configuration: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Dir(#[from] DirError),
}

/// The largest configuration file we agree to read (it is a handful of lines).
pub const MAX_CONFIG_BYTES: u64 = 256 * 1024;

/// Reads the configuration at `path`. A missing file is the default configuration (nothing
/// configured yet), not an error.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = match read_bounded(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Config::default()),
        Err(source) => {
            return Err(ConfigError::Read {
                path: path.to_owned(),
                source,
            })
        }
    };
    parse(&text).map_err(|message| ConfigError::Parse {
        path: path.to_owned(),
        message,
    })
}

/// Parses configuration text; the error says where and what is wrong (line, column, section
/// and field) and never quotes the file: its lines may hold the credential or the password.
pub fn parse(text: &str) -> Result<Config, String> {
    toml::from_str::<Config>(text).map_err(|e| errors::describe(text, &e))
}

fn read_bounded(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    let mut text = String::new();
    let read = file.take(MAX_CONFIG_BYTES + 1).read_to_string(&mut text)?;
    if read as u64 > MAX_CONFIG_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("the file is larger than {MAX_CONFIG_BYTES} bytes"),
        ));
    }
    Ok(text)
}

/// Renders the configuration as the TOML we write.
pub fn to_toml(config: &Config) -> String {
    let body = toml::to_string_pretty(config).unwrap_or_default();
    format!(
        "# Lockdesk configuration. Written by Lockdesk's Settings screen; safe to edit by hand.\n\
         # `lockdesk-cli config check` validates this file.\n\n{body}"
    )
}

/// Writes `config` to `path` atomically, with owner-only permissions (the file holds the
/// subscriber credential). Returns the path of a kept copy when the previous file was unreadable.
pub fn save(path: &Path, config: &Config) -> Result<Option<PathBuf>, ConfigError> {
    let write_err = |source| ConfigError::Write {
        path: path.to_owned(),
        source,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."));
    create_private_dir(dir).map_err(write_err)?;

    // Keep what we could not understand rather than overwrite it.
    let mut kept = None;
    if path.exists() && load(path).is_err() {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut name = path.file_name().unwrap_or_default().to_owned();
        name.push(format!(".unreadable-{stamp}"));
        let backup = path.with_file_name(name);
        std::fs::copy(path, &backup).map_err(write_err)?;
        kept = Some(backup);
    }

    let mut tmp = tempfile::Builder::new()
        .prefix(".config.toml.")
        .tempfile_in(dir)
        .map_err(write_err)?;
    tmp.write_all(to_toml(config).as_bytes())
        .map_err(write_err)?;
    tmp.as_file().sync_all().map_err(write_err)?;
    // tempfile creates the file 0600 on Unix already; the rename keeps that mode.
    tmp.persist(path).map_err(|e| write_err(e.error))?;
    sync_dir(dir);
    Ok(kept)
}

/// Creates `dir` and its parents, owner-only (0700) on Unix: the folders that hold Lockdesk's
/// configuration and keys are nobody else's business.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
    }
    #[cfg(not(unix))]
    {
        std::fs::create_dir_all(dir)
    }
}

fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

#[cfg(test)]
mod tests;
