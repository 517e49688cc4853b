//! The IPC commands, called through Tauri's real IPC layer on the mock runtime (no display).

use std::sync::Arc;
use std::time::Instant;

use lockdesk_api::SettingsService;
use serde_json::{json, Value};
use tauri::ipc::{CallbackFn, InvokeBody};
use tauri::test::{get_ipc_response, INVOKE_KEY};
use tauri::webview::InvokeRequest;
use tauri::WebviewWindowBuilder;

use super::*;

/// The app on the mock runtime with fresh folders (also used by the supervisor commands' tests).
pub(crate) struct Harness {
    pub(crate) app: tauri::App<tauri::test::MockRuntime>,
    pub(crate) window: tauri::WebviewWindow<tauri::test::MockRuntime>,
    pub(crate) dir: tempfile::TempDir,
}

pub(crate) fn harness() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let state = AppState {
        settings: SettingsService::new(
            dir.path().join("config/config.toml"),
            Arc::new(lockdesk_config::FilePresence),
        ),
        data_dir: dir.path().join("data"),
        log_dir: dir.path().join("data/logs"),
        config_dir: dir.path().join("config"),
        started: Instant::now(),
    };
    // The real configuration and capabilities (test = true gives a mock-runtime context), so
    // these tests also prove the capability file grants each command.
    let context = tauri::generate_context!("../tauri.conf.json", test = true);
    let app = builder(tauri::test::mock_builder(), state)
        .build(context)
        .expect("app builds");
    // Like the real window (window_state.rs), the web view's storage goes into the data folder:
    // without it Tauri creates its app local data folder (~/.local/share/<identifier>) in the
    // real home, even on the mock runtime.
    let window = WebviewWindowBuilder::new(&app, MAIN_WINDOW, Default::default())
        .data_directory(dir.path().join("data").join(WEBVIEW_DATA_DIR))
        .build()
        .expect("window builds");
    Harness { app, window, dir }
}

pub(crate) fn invoke(h: &Harness, cmd: &str, args: Value) -> Result<Value, Value> {
    invoke_from(h, "tauri://localhost", cmd, args)
}

fn invoke_from(h: &Harness, origin: &str, cmd: &str, args: Value) -> Result<Value, Value> {
    let request = InvokeRequest {
        cmd: cmd.into(),
        callback: CallbackFn(0),
        error: CallbackFn(1),
        url: origin.parse().unwrap(),
        body: InvokeBody::Json(args),
        headers: Default::default(),
        invoke_key: INVOKE_KEY.to_string(),
    };
    get_ipc_response(&h.window, request).map(|b| b.deserialize::<Value>().unwrap())
}

/// The harness keeps the web view's storage in its own folder: nothing lands in Tauri's app
/// local data folder, which is under the real home (scripts/test.sh checks that from the
/// outside with a fresh HOME; this checks it from the inside).
#[test]
fn the_webview_data_stays_in_the_test_folder() {
    let h = harness();
    assert!(
        h.dir.path().join("data").join(WEBVIEW_DATA_DIR).is_dir(),
        "the web view's data folder is not the harness's"
    );
}

#[test]
fn get_settings_returns_defaults_for_a_fresh_install() {
    let h = harness();
    let view = invoke(&h, "get_settings", json!({})).unwrap();
    assert_eq!(view["form"]["leewaySecs"], json!("60"));
    assert!(view["configPath"]
        .as_str()
        .unwrap()
        .ends_with("config.toml"));
    assert_eq!(view["loadError"], Value::Null);
    // The real service agrees with what crossed IPC.
    let svc = SettingsService::new(
        h.dir.path().join("config/config.toml"),
        Arc::new(lockdesk_config::FilePresence),
    );
    assert_eq!(serde_json::to_value(svc.view()).unwrap(), view);
}

#[test]
fn save_settings_reports_field_errors_then_saves() {
    let h = harness();
    let mut form = json!({
        "feedUrl": "ftp://nope",
        "credential": "desk-credential-0123",
        "trust": [],
        "decryptionKeys": [],
        "leewaySecs": "60",
        "sessionLifetimeMins": "60",
        "maxTokenLifetimeSecs": "3600",
        "requireEncryption": false,
        "language": "fr"
    });
    let out = invoke(&h, "save_settings", json!({ "form": form })).unwrap();
    assert_eq!(out["saved"], json!(false));
    assert_eq!(out["errors"][0]["field"], json!("feed.url"));
    assert!(!h.dir.path().join("config/config.toml").exists());

    form["feedUrl"] = json!("ws://127.0.0.1:9000/v1/feed");
    let out = invoke(&h, "save_settings", json!({ "form": form })).unwrap();
    assert_eq!(out["saved"], json!(true), "{out}");
    assert_eq!(out["settings"]["credentialSaved"], json!(true));
    let text = std::fs::read_to_string(h.dir.path().join("config/config.toml")).unwrap();
    assert!(text.contains("language = \"fr\""), "{text}");

    let status = invoke(&h, "feed_status", json!({})).unwrap();
    assert_eq!(status["state"], json!("disconnected"));
}

#[test]
fn errors_cross_ipc_as_code_and_message() {
    let h = harness();
    std::fs::create_dir_all(h.dir.path().join("config")).unwrap();
    // A folder where the file should be: reading it fails with a specific error.
    std::fs::create_dir_all(h.dir.path().join("config/config.toml")).unwrap();
    let err = invoke(
        &h,
        "save_settings",
        json!({ "form": {
            "feedUrl": "", "credential": null, "trust": [], "decryptionKeys": [],
            "leewaySecs": "60", "sessionLifetimeMins": "60", "maxTokenLifetimeSecs": "3600",
            "requireEncryption": false, "language": "en"
        }}),
    )
    .unwrap_err();
    assert_eq!(err["code"], json!("config_write_failed"), "{err}");
    assert!(
        err["message"].as_str().unwrap().contains("config.toml"),
        "{err}"
    );
}

#[test]
fn a_malformed_argument_is_an_error_not_a_panic() {
    let h = harness();
    let err = invoke(&h, "save_settings", json!({ "form": { "feedUrl": 3 } })).unwrap_err();
    assert!(err.as_str().is_some_and(|s| s.contains("form")), "{err}");
}

#[test]
fn first_paint_is_measured_from_start() {
    let h = harness();
    let ms = invoke(&h, "report_first_paint", json!({})).unwrap();
    assert!(ms.as_u64().is_some());
    let info = invoke(&h, "app_info", json!({})).unwrap();
    assert_eq!(info["version"], json!(env!("CARGO_PKG_VERSION")));
    assert_eq!(info["feedConfigured"], json!(false));
}

#[test]
fn remote_pages_cannot_call_commands() {
    let h = harness();
    let err = invoke_from(&h, "https://evil.example", "get_settings", json!({})).unwrap_err();
    assert!(
        err.as_str().is_some_and(|s| s.contains("not allowed")),
        "{err}"
    );
}

#[test]
fn commands_the_ui_does_not_use_do_not_exist() {
    let h = harness();
    let err = invoke(&h, "plugin:fs|read_file", json!({ "path": "/etc/passwd" })).unwrap_err();
    assert!(
        err.as_str()
            .is_some_and(|s| s.contains("not found") || s.contains("not allowed")),
        "{err}"
    );
}

/// A config.toml that exists but cannot be read (a directory in its place; invalid UTF-8; a
/// syntax error) never starts the demo as if nothing were configured: the first screen's
/// commands say the configuration could not be read, and why, and the file stays as it was.
#[test]
fn an_unreadable_configuration_is_reported_on_the_first_screen_and_starts_nothing() {
    let secret = "sk-live-0a1b2c3d4e5f";
    /// What is in place of the file, how to make it, what the reason names.
    type Case = (&'static str, Box<dyn Fn(&std::path::Path)>, &'static str);
    let cases: Vec<Case> = vec![
        (
            "a directory",
            Box::new(|p| std::fs::create_dir_all(p).unwrap()),
            "config.toml",
        ),
        (
            "invalid UTF-8",
            Box::new(|p| std::fs::write(p, b"[feed]\nurl = \"wss://gw\xff\xfe\"\n").unwrap()),
            "UTF-8",
        ),
        (
            "a syntax error on the credential line",
            Box::new(move |p| {
                std::fs::write(p, format!("[feed]\ncredential = \"{secret}\n")).unwrap()
            }),
            "line 2",
        ),
    ];
    for (what, make, reason_has) in cases {
        let h = harness();
        let path = h.dir.path().join("config/config.toml");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        make(&path);
        let before = std::fs::read(&path).ok();
        tauri::async_runtime::block_on(crate::desk::start(h.app.handle().clone()));

        let feed = invoke(&h, "feed_status", json!({})).unwrap();
        assert_eq!(feed["state"], json!("config_unreadable"), "{what}: {feed}");
        let reason = feed["reason"].as_str().unwrap();
        assert!(reason.contains(reason_has), "{what}: {reason}");
        assert!(!reason.contains(secret), "{what}: {reason}");
        let list = invoke(&h, "list_conversations", json!({})).unwrap();
        assert_eq!(list["status"]["demo"], json!(false), "{what}: {list}");
        assert_eq!(list["status"]["feed"]["state"], json!("config_unreadable"));
        assert_eq!(list["conversations"], json!([]));
        assert!(!list.to_string().contains(secret));
        // Nothing started: no demo folder, and the file is as it was.
        assert!(
            !h.dir.path().join("data/demo").exists(),
            "{what}: the demo started"
        );
        assert_eq!(std::fs::read(&path).ok(), before, "{what}");
        assert_eq!(path.is_dir(), what == "a directory");
        // Settings says so too, without the secret.
        let view = invoke(&h, "get_settings", json!({})).unwrap();
        assert!(!view["loadError"].is_null(), "{what}");
        assert!(!view.to_string().contains(secret), "{what}");
    }
}
