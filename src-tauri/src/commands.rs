//! The IPC commands: each takes state and arguments, calls one core function, maps the error.
//! File access runs on the blocking pool so the UI thread never waits on the disk.

use lockdesk_api::{
    AppInfo, FeedStatus, FieldError, IpcError, IpcErrorCode, SaveOutcome, SettingsForm,
    SettingsView,
};
use tauri::State;

use crate::AppState;

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, IpcError> + Send + 'static,
) -> Result<T, IpcError> {
    tauri::async_runtime::spawn_blocking(f).await.map_err(|e| {
        IpcError::new(
            IpcErrorCode::Internal,
            format!("background task failed: {e}"),
        )
    })?
}

#[tauri::command]
pub async fn get_settings(state: State<'_, AppState>) -> Result<SettingsView, IpcError> {
    let svc = state.settings.clone();
    blocking(move || Ok(svc.view())).await
}

#[tauri::command]
pub async fn validate_settings(
    state: State<'_, AppState>,
    form: SettingsForm,
) -> Result<Vec<FieldError>, IpcError> {
    let svc = state.settings.clone();
    blocking(move || Ok(svc.validate(&form))).await
}

#[tauri::command]
pub async fn save_settings(
    state: State<'_, AppState>,
    form: SettingsForm,
) -> Result<SaveOutcome, IpcError> {
    let svc = state.settings.clone();
    blocking(move || svc.save(&form)).await
}

#[tauri::command]
pub async fn app_info(state: State<'_, AppState>) -> Result<AppInfo, IpcError> {
    let svc = state.settings.clone();
    let data_dir = state.data_dir.display().to_string();
    let log_dir = state.log_dir.display().to_string();
    blocking(move || {
        Ok(AppInfo {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            config_path: svc.path().display().to_string(),
            data_dir,
            log_dir,
            feed_configured: svc.load().map(|c| c.has_feed()).unwrap_or(false),
        })
    })
    .await
}

#[tauri::command]
pub async fn feed_status(state: State<'_, AppState>) -> Result<FeedStatus, IpcError> {
    let svc = state.settings.clone();
    blocking(move || {
        Ok(lockdesk_api::initial_status(
            &svc.load().unwrap_or_default(),
        ))
    })
    .await
}

/// The UI calls this once, after its first frame is on screen; the answer (milliseconds since
/// the process started) is logged, which is how launch-to-first-paint is measured.
#[tauri::command]
pub fn report_first_paint(state: State<'_, AppState>) -> u64 {
    let ms = state.started.elapsed().as_millis() as u64;
    tracing::info!(first_paint_ms = ms, "first paint");
    ms
}
