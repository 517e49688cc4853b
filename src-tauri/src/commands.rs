//! The IPC commands: each takes state and arguments, calls one core function, maps the error.
//! File access runs on the blocking pool so the UI thread never waits on the disk.

use lockdesk_api::{
    AppInfo, FeedStatus, FieldError, IpcError, IpcErrorCode, SaveOutcome, SettingsForm,
    SettingsView,
};
use std::sync::Arc;

use lockdesk_api::{ConversationDetail, DeskSnapshot, History};
use tauri::{AppHandle, Manager, Runtime, State};

use crate::desk::DeskHolder;

use crate::AppState;

/// Runs `f` on the blocking pool (disk, SQLite), mapping a lost task to an IpcError.
pub(crate) async fn blocking<T: Send + 'static>(
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

/// Saves; when something was saved, the desk restarts if a setting it depends on changed (a feed
/// now configured replaces the demo, new keys are loaded); the language and mutes apply live
/// (`lockdesk_session::after_save`).
#[tauri::command]
pub async fn save_settings<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, AppState>,
    form: SettingsForm,
) -> Result<SaveOutcome, IpcError> {
    let svc = state.settings.clone();
    let outcome = blocking(move || svc.save(&form)).await?;
    // Only once the app has started the desk (not in the command tests, which have no desk).
    if outcome.saved && app.state::<Arc<DeskHolder>>().started() {
        tauri::async_runtime::spawn(crate::desk::apply_saved(app.clone()));
    }
    Ok(outcome)
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
pub async fn feed_status(holder: State<'_, Arc<DeskHolder>>) -> Result<FeedStatus, IpcError> {
    Ok(holder.status().feed)
}

/// Every conversation row, newest first, with the desk's status and the snapshot's revision.
#[tauri::command]
pub async fn list_conversations(
    holder: State<'_, Arc<DeskHolder>>,
) -> Result<DeskSnapshot, IpcError> {
    holder.list().await
}

/// One conversation: row, identity card, timeline, alerts.
#[tauri::command]
pub async fn get_conversation(
    holder: State<'_, Arc<DeskHolder>>,
    id: String,
) -> Result<ConversationDetail, IpcError> {
    holder.detail(id).await
}

/// A verified person's cross-device history.
#[tauri::command]
pub async fn get_history(
    holder: State<'_, Arc<DeskHolder>>,
    user_id: String,
) -> Result<History, IpcError> {
    holder.history(user_id).await
}

/// The supervisor's table and charts: every conversation under `filters`, with aggregates.
#[tauri::command]
pub async fn supervisor_overview(
    holder: State<'_, Arc<DeskHolder>>,
    filters: lockdesk_api::SupervisorFilters,
) -> Result<lockdesk_api::SupervisorOverview, IpcError> {
    crate::supervisor::overview(holder.inner().clone(), filters).await
}

/// Verifies the audit log's whole chain and checks the store against it (what `lockdesk-cli
/// audit verify` does).
#[tauri::command]
pub async fn audit_status<R: Runtime>(
    app: AppHandle<R>,
    holder: State<'_, Arc<DeskHolder>>,
) -> Result<lockdesk_api::AuditStatus, IpcError> {
    crate::supervisor::audit_status(app, holder.inner().clone()).await
}

/// Writes the audit log to a new file in the desk's `exports/` folder; a broken chain only with
/// `confirmBroken` (absent: false), and the file then says it is broken.
#[tauri::command]
pub async fn export_audit(
    holder: State<'_, Arc<DeskHolder>>,
    format: lockdesk_api::ExportFormat,
    redact: bool,
    confirm_broken: Option<bool>,
) -> Result<lockdesk_api::ExportResult, IpcError> {
    crate::supervisor::export(
        holder.inner().clone(),
        format,
        redact,
        confirm_broken.unwrap_or(false),
    )
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
