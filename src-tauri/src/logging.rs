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
    let stderr = fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(filter());
    let file = tracing_appender::rolling::Builder::new()
        .rotation(tracing_appender::rolling::Rotation::DAILY)
        .filename_prefix("lockdesk")
        .filename_suffix("log")
        .max_log_files(14)
        .build(log_dir);
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
