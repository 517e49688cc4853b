use std::path::Path;
use std::sync::Arc;

use super::*;

fn service(dir: &Path) -> SettingsService {
    SettingsService::new(
        dir.join("config.toml"),
        Arc::new(lockdesk_config::FilePresence),
    )
}

/// A settings service over a fresh folder, and a valid form for it; the folder lives as long as
/// the first value.
fn service_and_form() -> (tempfile::TempDir, SettingsService, SettingsForm) {
    let dir = tempfile::tempdir().unwrap();
    let svc = service(dir.path());
    let f = form(dir.path());
    (dir, svc, f)
}

fn form(dir: &Path) -> SettingsForm {
    let key = dir.join("brand.pem");
    std::fs::write(&key, "-----BEGIN PUBLIC KEY-----\n").unwrap();
    SettingsForm {
        feed_url: "wss://gw.example.com/v1/feed".into(),
        credential: Some("desk-credential-1".into()),
        trust: vec![TrustForm {
            issuer: "https://brand.example".into(),
            key: key.display().to_string(),
        }],
        decryption_keys: vec![key.display().to_string()],
        leeway_secs: "60".into(),
        session_lifetime_mins: "45".into(),
        max_token_lifetime_secs: "3600".into(),
        require_encryption: true,
        language: "fr".into(),
        notifications: None,
    }
}

#[test]
fn notification_mutes_are_saved_and_a_null_form_keeps_them() {
    let (_dir, svc, mut f) = service_and_form();
    let mut muted = NotificationsForm::from(lockdesk_config::Notifications::default());
    muted.secured = false;
    muted.session_lapsed = false;
    f.notifications = Some(muted);
    assert!(svc.save(&f).unwrap().saved);
    assert_eq!(svc.view().form.notifications, Some(muted));
    f.notifications = None;
    assert!(svc.save(&f).unwrap().saved);
    let saved = svc.load().unwrap().notifications;
    assert!(!saved.secured && !saved.session_lapsed && saved.verification_failed);
}

fn fields(errors: &[FieldError]) -> Vec<&str> {
    errors.iter().map(|e| e.field.as_str()).collect()
}

#[test]
fn bindings_are_fresh() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let path = root.join(bindings::BINDINGS_PATH);
    let want = bindings::typescript();
    if std::env::var_os("UPDATE_BINDINGS").is_some() {
        std::fs::write(&path, &want).unwrap();
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "{} is stale: run `UPDATE_BINDINGS=1 cargo test -p lockdesk-api bindings` and commit it",
        bindings::BINDINGS_PATH
    );
}

#[test]
fn defaults_when_nothing_is_saved() {
    let dir = tempfile::tempdir().unwrap();
    let view = service(dir.path()).view();
    assert_eq!(view.form.leeway_secs, "60");
    assert_eq!(view.form.session_lifetime_mins, "60");
    assert_eq!(view.form.language, "en");
    assert!(!view.credential_saved);
    assert_eq!(view.load_error, None);
}

#[test]
fn typed_numbers_are_field_errors() {
    let (_dir, svc, mut f) = service_and_form();
    f.leeway_secs = "abc".into();
    f.session_lifetime_mins = "-5".into();
    f.language = "de".into();
    f.feed_url = "http://gw.example.com/v1/feed".into();
    let out = svc.save(&f).unwrap();
    assert!(!out.saved);
    // A typo in one field does not hide the problems of the others.
    assert_eq!(
        fields(&out.errors),
        [
            "verification.leeway_secs",
            "verification.session_lifetime_mins",
            "ui.language",
            "feed.url"
        ]
    );
    assert!(
        !svc.path().exists(),
        "nothing is written when a field is invalid"
    );
}

#[test]
fn save_round_trips_and_never_returns_the_credential() {
    let (_dir, svc, f) = service_and_form();
    let out = svc.save(&f).unwrap();
    assert!(out.saved, "{:?}", out.errors);
    assert!(out.settings.credential_saved);
    let json = serde_json::to_string(&out).unwrap();
    assert!(!json.contains("desk-credential-1"), "{json}");

    let view = svc.view();
    let mut expected = f.clone();
    expected.credential = None;
    // The view always says which notifications are on (all, by default).
    expected.notifications = Some(lockdesk_config::Notifications::default().into());
    assert_eq!(view.form, expected);
    let config = svc.load().unwrap();
    assert_eq!(config.feed.credential.as_deref(), Some("desk-credential-1"));
    assert_eq!(config.verification.session_lifetime_mins, 45);

    // Saving with `credential: null` keeps it; an empty string clears it (and then the feed
    // URL needs one again).
    let mut keep = view.form.clone();
    keep.leeway_secs = "30".into();
    assert!(svc.save(&keep).unwrap().saved);
    assert_eq!(
        svc.load().unwrap().feed.credential.as_deref(),
        Some("desk-credential-1")
    );
    let mut clear = keep.clone();
    clear.credential = Some(String::new());
    let out = svc.save(&clear).unwrap();
    assert_eq!(fields(&out.errors), ["feed.credential"]);
}

#[test]
fn an_unreadable_file_is_reported_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let svc = service(dir.path());
    std::fs::write(svc.path(), "this is = = not toml").unwrap();
    let view = svc.view();
    assert!(view.load_error.as_deref().unwrap().contains("config.toml"));
    assert_eq!(svc.load().unwrap_err().code, IpcErrorCode::ConfigUnreadable);
    let out = svc.save(&form(dir.path())).unwrap();
    assert!(out.saved);
    let kept = out.kept_unreadable_copy.expect("kept");
    assert_eq!(
        std::fs::read_to_string(kept).unwrap(),
        "this is = = not toml"
    );
}

#[test]
fn errors_serialize_as_code_and_message() {
    let e = IpcError::new(IpcErrorCode::ConfigWriteFailed, "cannot write x: disk full");
    assert_eq!(
        serde_json::to_value(&e).unwrap(),
        serde_json::json!({"code": "config_write_failed", "message": "cannot write x: disk full"})
    );
}

#[test]
fn several_feed_addresses_one_per_line_are_saved_as_a_list() {
    let (_dir, svc, mut f) = service_and_form();
    f.feed_url = "wss://gw-a.example.com/v1/feed\n\n  wss://gw-b.example.com/v1/feed  \n".into();
    let out = svc.save(&f).unwrap();
    assert!(out.saved, "{:?}", out.errors);
    assert_eq!(
        svc.load().unwrap().feed_urls(),
        [
            "wss://gw-a.example.com/v1/feed",
            "wss://gw-b.example.com/v1/feed"
        ]
    );
    let text = std::fs::read_to_string(svc.path()).unwrap();
    assert!(text.contains("url = ["), "{text}");
    // The form shows them one per line.
    assert_eq!(
        svc.view().form.feed_url,
        "wss://gw-a.example.com/v1/feed\nwss://gw-b.example.com/v1/feed"
    );
    // One address stays a string in the file.
    f.feed_url = "wss://gw-a.example.com/v1/feed".into();
    assert!(svc.save(&f).unwrap().saved);
    let text = std::fs::read_to_string(svc.path()).unwrap();
    assert!(
        text.contains("url = \"wss://gw-a.example.com/v1/feed\"\n"),
        "{text}"
    );
}

#[test]
fn a_wrong_address_among_several_is_named_by_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let svc = service(dir.path());
    let before = std::fs::read(svc.path()).ok();
    let mut f = form(dir.path());
    // Line 3 is remote ws://, line 4 repeats line 1 (line 2 is blank).
    f.feed_url = "wss://gw-a.example.com/v1/feed\n\nws://gw-b.example.com/v1/feed\nwss://gw-a.example.com/v1/feed".into();
    let out = svc.save(&f).unwrap();
    assert!(!out.saved);
    assert_eq!(fields(&out.errors), ["feed.url"]);
    assert_eq!(
        out.errors[0].message,
        "line 3: use wss:// for a remote gateway (ws:// is only allowed on this machine); \
         line 4: this address is listed twice"
    );
    assert_eq!(std::fs::read(svc.path()).ok(), before, "nothing written");
    // One address: its error as before, without a line.
    f.feed_url = "ws://gw-b.example.com/v1/feed".into();
    let errors = svc.validate(&f);
    assert_eq!(
        errors[0].message,
        "use wss:// for a remote gateway (ws:// is only allowed on this machine)"
    );
}
