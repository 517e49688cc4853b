//! The desktop shell: the Tauri app around Lockdesk's core crates.
//!
//! Architecture invariants:
//! - this is the only crate that depends on tauri; it holds no logic of its own: each command
//!   takes state and arguments, calls one function of a core crate, and maps the error;
//! - anything that touches the disk, SQLite or RSA runs off the UI thread (`spawn_blocking`);
//! - every path comes from `lockdesk_config` (config, data, logs, web view data), so
//!   `LOCKDESK_CONFIG_DIR` / `LOCKDESK_DATA_DIR` redirect all of them.

mod commands;
pub mod desk;
mod logging;
mod notify;
mod supervisor;
mod tray;
mod webkit_env;
mod window_state;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use lockdesk_api::SettingsService;
use tauri::{Manager, Runtime};

/// Label of the one main window.
pub const MAIN_WINDOW: &str = "main";

/// The web view's own storage (cache, local storage), a folder of the data folder. Every web view
/// must be given it (`data_directory`): without one, Tauri creates and uses its app local data
/// folder under the real home, which `LOCKDESK_DATA_DIR` cannot redirect.
pub const WEBVIEW_DATA_DIR: &str = "webview";

/// What every command can reach.
pub struct AppState {
    pub settings: SettingsService,
    pub data_dir: PathBuf,
    pub log_dir: PathBuf,
    pub config_dir: PathBuf,
    /// When the process started, for the launch-to-first-paint measurement.
    pub started: Instant,
}

impl AppState {
    /// Resolves the folders (honouring the environment overrides).
    pub fn from_env(started: Instant) -> anyhow::Result<AppState> {
        let config_dir = lockdesk_config::config_dir()?;
        Ok(AppState {
            settings: SettingsService::new(
                lockdesk_config::config_path()?,
                // Key fields are checked by the real key parser: a wrong, weak or private key is
                // reported beside its field before anything is saved.
                Arc::new(lockdesk_keys::KeyContentCheck),
            ),
            data_dir: lockdesk_config::data_dir()?,
            log_dir: lockdesk_config::log_dir()?,
            config_dir,
            started,
        })
    }
}

/// The app's commands and state on any runtime: the real one in [`run`], the mock one in tests.
pub fn builder<R: Runtime>(base: tauri::Builder<R>, state: AppState) -> tauri::Builder<R> {
    base.manage(state)
        .manage(Arc::new(desk::DeskHolder::default()))
        .invoke_handler(tauri::generate_handler![
            commands::get_settings,
            commands::validate_settings,
            commands::save_settings,
            commands::app_info,
            commands::feed_status,
            commands::report_first_paint,
            commands::list_conversations,
            commands::get_conversation,
            commands::get_history,
            commands::supervisor_overview,
            commands::audit_status,
            commands::export_audit,
        ])
}

/// Brings the main window forward (tray, notification click, second launch).
pub fn focus_main_window<R: Runtime>(app: &tauri::AppHandle<R>) {
    if let Some(w) = app.get_webview_window(MAIN_WINDOW) {
        let _ = w.unminimize();
        let _ = w.show();
        let _ = w.set_focus();
    }
}

/// Starts the desktop app.
pub fn run() {
    let started = Instant::now();
    // First, while no other thread exists: WebKit's renderer choice (see webkit_env).
    let dmabuf = webkit_env::apply();
    let state = match AppState::from_env(started) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("lockdesk: {e:#}");
            std::process::exit(2);
        }
    };
    // Moved into the exit handler below, which drops it last (see there).
    let mut log_guard = logging::init(&state.log_dir);
    tracing::info!(version = env!("CARGO_PKG_VERSION"), "lockdesk starting");
    webkit_env::log(&dmabuf);

    let result = builder(tauri::Builder::<tauri::Wry>::new(), state)
        // Must be the first plugin: a second launch hands over to the running instance and exits.
        .plugin(tauri_plugin_single_instance::init(|app, _args, _cwd| {
            tracing::info!("second launch: focusing the running instance");
            focus_main_window(app);
        }))
        .setup(|app| {
            let state = app.state::<AppState>();
            window_state::open_main_window(app.handle(), &state.config_dir, &state.data_dir)?;
            tray::install(app.handle());
            // The desk (configured gateway, or the embedded demo) starts behind the window.
            tauri::async_runtime::spawn(desk::start(app.handle().clone()));
            #[cfg(unix)]
            tauri::async_runtime::spawn(quit_on_signal(app.handle().clone()));
            Ok(())
        })
        .build(tauri::generate_context!("../tauri.conf.json"));
    let app = match result {
        Ok(app) => app,
        Err(e) => {
            tracing::error!("cannot start the window: {e}");
            eprintln!("lockdesk: cannot start the window: {e}");
            std::process::exit(1);
        }
    };
    app.run(move |handle, event| {
        if let tauri::RunEvent::Exit = event {
            tracing::info!("lockdesk exiting");
            // Quitting with the window open gives it no close event: its geometry is kept here.
            window_state::save_on_exit(handle);
            // The desk (feed client, demo gateway, the session's tasks) stops cleanly, bounded.
            desk::shutdown(handle);
            // Tauri ends the process right after this handler, without running destructors:
            // dropping the guard here writes the file log's last lines (the shutdown's) first.
            drop(log_guard.take());
        }
    });
}

/// SIGTERM (a session logout, `systemctl --user stop`, `kill`) and SIGINT (Ctrl-C in a terminal)
/// quit the way the tray's "Quit Lockdesk" does: `exit(0)`, so the desk stops cleanly (feed
/// client, demo gateway, the session's tasks; bounded by `desk::SHUTDOWN_BOUND`) before the
/// process ends. A second signal while that runs ends the process at once.
#[cfg(unix)]
async fn quit_on_signal<R: tauri::Runtime>(app: tauri::AppHandle<R>) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::warn!(
            "cannot listen for SIGTERM and SIGINT: they end Lockdesk without a clean stop"
        );
        return;
    };
    let mut quitting = false;
    loop {
        let (name, code) = tokio::select! {
            _ = term.recv() => ("SIGTERM", 143),
            _ = int.recv() => ("SIGINT", 130),
        };
        if quitting {
            tracing::warn!("{name} again while stopping: ending now");
            std::process::exit(code);
        }
        quitting = true;
        tracing::info!("{name}: quitting");
        app.exit(0);
    }
}

#[cfg(test)]
mod tests;
