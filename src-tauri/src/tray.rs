//! The tray icon: the feed's connection state as its tooltip and first (disabled) menu line,
//! "Show Lockdesk" and "Quit".
//!
//! Must not: fail the app when the desktop has no tray (some Linux desktops): the icon is then
//! simply absent and everything else works.

use lockdesk_api::{DeskStatus, FeedStatus};
use tauri::menu::{Menu, MenuItem};
use tauri::tray::{TrayIcon, TrayIconBuilder};
use tauri::{AppHandle, Manager, Runtime};

const TRAY_ID: &str = "lockdesk-tray";

/// What the tray says about the connection.
pub fn status_text(status: &DeskStatus) -> String {
    let feed = match &status.feed {
        FeedStatus::NotConfigured => "No gateway configured".to_owned(),
        FeedStatus::Connecting { .. } => "Connecting…".to_owned(),
        FeedStatus::Connected { .. } => "Connected".to_owned(),
        FeedStatus::ConfigUnreadable { .. } => "Configuration unreadable".to_owned(),
        FeedStatus::Disconnected { reason } => {
            let mut r: String = reason.chars().take(80).collect();
            if reason.chars().count() > 80 {
                r.push('…');
            }
            format!("Disconnected: {r}")
        }
    };
    if status.demo {
        format!("Lockdesk (demo): {feed}")
    } else {
        format!("Lockdesk: {feed}")
    }
}

/// The status line item, kept to update its text.
pub struct TrayStatus<R: Runtime> {
    item: MenuItem<R>,
    icon: TrayIcon<R>,
}

/// Installs the tray icon. Errors are logged: no tray is not fatal.
pub fn install<R: Runtime>(app: &AppHandle<R>) {
    let build = || -> tauri::Result<TrayStatus<R>> {
        let status = MenuItem::with_id(app, "status", "Lockdesk: starting…", false, None::<&str>)?;
        let show = MenuItem::with_id(app, "show", "Show Lockdesk", true, None::<&str>)?;
        let quit = MenuItem::with_id(app, "quit", "Quit Lockdesk", true, None::<&str>)?;
        let menu = Menu::with_items(app, &[&status, &show, &quit])?;
        let mut builder = TrayIconBuilder::with_id(TRAY_ID)
            .menu(&menu)
            .tooltip("Lockdesk")
            .on_menu_event(|app, event| match event.id().as_ref() {
                "show" => crate::focus_main_window(app),
                "quit" => {
                    tracing::info!("quit from the tray");
                    app.exit(0);
                }
                _ => {}
            });
        if let Some(icon) = app.default_window_icon() {
            builder = builder.icon(icon.clone());
        }
        let icon = builder.build(app)?;
        Ok(TrayStatus { item: status, icon })
    };
    match build() {
        Ok(t) => {
            app.manage(t);
        }
        Err(e) => tracing::warn!("no tray icon: {e}"),
    }
}

/// Shows `status` in the tray (no-op without a tray).
pub fn set_status<R: Runtime>(app: &AppHandle<R>, status: &DeskStatus) {
    if let Some(t) = app.try_state::<TrayStatus<R>>() {
        let text = status_text(status);
        let _ = t.item.set_text(&text);
        let _ = t.icon.set_tooltip(Some(&text));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tray_names_the_state_and_the_reason() {
        let s = |feed, demo| DeskStatus {
            feed,
            demo,
            last_seq: None,
            head_seq: None,
        };
        let connected = FeedStatus::Connected {
            url: "x".into(),
            catching_up: None,
        };
        assert_eq!(
            status_text(&s(connected, true)),
            "Lockdesk (demo): Connected"
        );
        let long = "r".repeat(200);
        let t = status_text(&s(FeedStatus::Disconnected { reason: long }, false));
        assert!(t.starts_with("Lockdesk: Disconnected: rrr"));
        assert!(t.ends_with('…'));
        assert!(t.chars().count() < 120);
    }
}
