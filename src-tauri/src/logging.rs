//! Logging: stderr plus a daily-rolling file in the data folder's `logs/`, level from `RUST_LOG`
//! (default `info` for Lockdesk's crates, `warn` for the rest). Tokens and secrets are never
//! logged anywhere in Lockdesk; this module only decides where lines go.

use std::path::Path;

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::{fmt, prelude::*, EnvFilter};

/// Installs the global subscriber. Keep the guard alive for the life of the app: dropping it
/// flushes the file writer.
pub fn init(log_dir: &Path) -> Option<WorkerGuard> {
    let filter = || {
        EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| EnvFilter::new("warn,lockdesk=info,lockdesk_app=info"))
    };
    use std::io::IsTerminal;
    let stderr = fmt::layer()
        // Colours only at a terminal: redirected logs stay plain text.
        .with_ansi(std::io::stderr().is_terminal())
        // Never std::io::stderr itself: a failed write there panics (see LogSink).
        .with_writer(|| lockdesk_service::log_sink::LogSink)
        .with_filter(filter());
    let file = file_appender(log_dir);
    match file {
        Ok(appender) => {
            let (writer, guard) = tracing_appender::non_blocking(appender);
            let file_layer = fmt::layer()
                .with_ansi(false)
                .with_writer(writer)
                .with_filter(filter());
            let _ = tracing_subscriber::registry()
                .with(stderr)
                .with(file_layer)
                .try_init();
            Some(guard)
        }
        Err(e) => {
            let _ = tracing_subscriber::registry().with(stderr).try_init();
            tracing::warn!("cannot write logs to {}: {e}", log_dir.display());
            None
        }
    }
}

/// The daily file appender in `log_dir`. Logs name people (user ids, conversations): the folder
/// is owner-only (0700) and so is every log file in it (0600), including those an older
/// version left readable by others. (A file the appender opens at midnight gets the umask's
/// mode, inside the 0700 folder; it is tightened at the next start.)
fn file_appender(
    log_dir: &Path,
) -> Result<tracing_appender::rolling::RollingFileAppender, Box<dyn std::error::Error>> {
    lockdesk_config::create_private_dir(log_dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(log_dir, std::fs::Permissions::from_mode(0o700))?;
    }
    let appender = tracing_appender::rolling::Builder::new()
        .rotation(tracing_appender::rolling::Rotation::DAILY)
        .filename_prefix("lockdesk")
        .filename_suffix("log")
        .max_log_files(14)
        .build(log_dir)?;
    #[cfg(unix)]
    for entry in std::fs::read_dir(log_dir)?.flatten() {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = entry.metadata() {
            if meta.is_file() && meta.permissions().mode() & 0o077 != 0 {
                std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o600))?;
            }
        }
    }
    Ok(appender)
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_log_folder_and_files_are_owner_only() {
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data/logs");
        let _appender = super::file_appender(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        let files: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().collect();
        assert_eq!(files.len(), 1, "today's log file");
        assert_eq!(mode(&files[0].path()), 0o600);
        // A folder and a file an older version left readable by others are tightened.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(files[0].path(), std::fs::Permissions::from_mode(0o644)).unwrap();
        drop(_appender);
        let _appender = super::file_appender(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&files[0].path()), 0o600);
    }
}
