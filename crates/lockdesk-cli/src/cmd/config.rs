//! `lockdesk-cli config`: where the configuration lives, and whether it is valid.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

#[derive(clap::Subcommand)]
pub enum Action {
    /// Print the configuration file's path (LOCKDESK_CONFIG_DIR redirects it).
    Path,
    /// Check every field of the configuration file, key files included; exit 1 when any is invalid.
    Check {
        /// The file to check (default: the desktop app's configuration file).
        #[arg(long, value_name = "PATH")]
        config: Option<PathBuf>,
    },
}

pub fn run(action: Action) -> anyhow::Result<ExitCode> {
    match action {
        Action::Path => {
            println!("{}", lockdesk_config::config_path()?.display());
            Ok(ExitCode::SUCCESS)
        }
        Action::Check { config } => {
            let path = match config {
                Some(p) => p,
                None => lockdesk_config::config_path()?,
            };
            if !path.exists() {
                anyhow::bail!("--config: {} does not exist", path.display());
            }
            let config = lockdesk_config::load(&path).context("--config")?;
            let errors = lockdesk_config::validate(&config, &lockdesk_keys::KeyContentCheck);
            if errors.is_empty() {
                println!("{}: valid", path.display());
                return Ok(ExitCode::SUCCESS);
            }
            for e in &errors {
                println!(
                    "{}: {}: {}",
                    path.display(),
                    crate::out::Shown(&e.field),
                    crate::out::Shown(&e.message)
                );
            }
            Ok(ExitCode::from(1))
        }
    }
}
