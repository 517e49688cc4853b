//! Where Lockdesk keeps its configuration and its data.
//!
//! `LOCKDESK_CONFIG_DIR` / `LOCKDESK_DATA_DIR` win over the OS folders; every test sets them.

use std::path::PathBuf;

pub const CONFIG_DIR_ENV: &str = "LOCKDESK_CONFIG_DIR";
pub const DATA_DIR_ENV: &str = "LOCKDESK_DATA_DIR";

#[derive(Debug, thiserror::Error)]
pub enum DirError {
    #[error(
        "cannot find a home folder for Lockdesk's files; set {CONFIG_DIR_ENV} and {DATA_DIR_ENV}"
    )]
    NoHome,
    #[error("{var} must be an absolute path, got {value:?}")]
    NotAbsolute { var: &'static str, value: String },
}

fn project_dirs() -> Result<directories::ProjectDirs, DirError> {
    directories::ProjectDirs::from("app", "Lockdesk", "Lockdesk").ok_or(DirError::NoHome)
}

fn from_env(var: &'static str) -> Result<Option<PathBuf>, DirError> {
    match std::env::var_os(var) {
        Some(v) if !v.is_empty() => {
            let p = PathBuf::from(&v);
            if p.is_absolute() {
                Ok(Some(p))
            } else {
                Err(DirError::NotAbsolute {
                    var,
                    value: v.to_string_lossy().into_owned(),
                })
            }
        }
        _ => Ok(None),
    }
}

/// `var` when it is set (an absolute path), else the OS folder `os` names.
fn from_env_or(
    var: &'static str,
    os: fn(&directories::ProjectDirs) -> &std::path::Path,
) -> Result<PathBuf, DirError> {
    match from_env(var)? {
        Some(p) => Ok(p),
        None => Ok(os(&project_dirs()?).to_owned()),
    }
}

/// The configuration folder: `LOCKDESK_CONFIG_DIR`, else the OS one (`~/.config/lockdesk` on Linux).
pub fn config_dir() -> Result<PathBuf, DirError> {
    from_env_or(CONFIG_DIR_ENV, directories::ProjectDirs::config_dir)
}

/// The configuration file.
pub fn config_path() -> Result<PathBuf, DirError> {
    Ok(config_dir()?.join("config.toml"))
}

/// The data folder (local store, logs, web view data): `LOCKDESK_DATA_DIR`, else the OS one
/// (`~/.local/share/lockdesk` on Linux).
pub fn data_dir() -> Result<PathBuf, DirError> {
    from_env_or(DATA_DIR_ENV, directories::ProjectDirs::data_dir)
}

/// Rolling log files live here.
pub fn log_dir() -> Result<PathBuf, DirError> {
    Ok(data_dir()?.join("logs"))
}
