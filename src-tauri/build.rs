fn main() {
    // The app's own commands get generated permissions (`allow-get-settings`, ...), so the
    // capability file can grant exactly the commands the UI uses and nothing else.
    let attributes = tauri_build::Attributes::new()
        .config_path("../tauri.conf.json")
        .app_manifest(tauri_build::AppManifest::new().commands(&[
            "get_settings",
            "validate_settings",
            "save_settings",
            "app_info",
            "feed_status",
            "report_first_paint",
            "list_conversations",
            "get_conversation",
            "get_history",
            "supervisor_overview",
            "audit_status",
            "export_audit",
        ]));
    if let Err(e) = tauri_build::try_build(attributes) {
        panic!("tauri build script failed: {e:#}");
    }
}
