//! The main window, opened where and as large as the user left it.
//!
//! The window-state plugin is not used because it writes into Tauri's own config folder, which
//! `LOCKDESK_CONFIG_DIR` cannot redirect; this module keeps `window.json` next to `config.toml`.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use tauri::{AppHandle, Runtime, WebviewUrl, WebviewWindowBuilder, WindowEvent};

use crate::MAIN_WINDOW;

const DEFAULT_SIZE: (f64, f64) = (1200.0, 780.0);
const MIN_SIZE: (f64, f64) = (640.0, 480.0);

/// Logical pixels, as the window builder takes them.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
struct Geometry {
    width: f64,
    height: f64,
    x: Option<f64>,
    y: Option<f64>,
    maximized: bool,
}

impl Geometry {
    fn is_sane(&self) -> bool {
        let ok = |v: f64, lo: f64, hi: f64| v.is_finite() && (lo..=hi).contains(&v);
        ok(self.width, MIN_SIZE.0, 16_384.0)
            && ok(self.height, MIN_SIZE.1, 16_384.0)
            && self.x.is_none_or(|x| ok(x, -16_384.0, 16_384.0))
            && self.y.is_none_or(|y| ok(y, -16_384.0, 16_384.0))
    }
}

fn load(path: &Path) -> Option<Geometry> {
    let text = std::fs::read_to_string(path).ok()?;
    match serde_json::from_str::<Geometry>(&text) {
        Ok(g) if g.is_sane() => Some(g),
        _ => {
            tracing::warn!("ignoring unreadable window geometry in {}", path.display());
            None
        }
    }
}

fn save(path: &Path, g: &Geometry) {
    let Ok(json) = serde_json::to_vec_pretty(g) else {
        return;
    };
    let tmp = path.with_extension("json.tmp");
    let result = std::fs::create_dir_all(path.parent().unwrap_or(Path::new(".")))
        .and_then(|_| std::fs::write(&tmp, json))
        .and_then(|_| std::fs::rename(&tmp, path));
    if let Err(e) = result {
        tracing::warn!(
            "cannot remember the window geometry in {}: {e}",
            path.display()
        );
    }
}

/// Opens the main window, restoring its geometry, and remembers it on every move and resize.
pub fn open_main_window<R: Runtime>(
    app: &AppHandle<R>,
    config_dir: &Path,
    data_dir: &Path,
) -> tauri::Result<()> {
    let path: PathBuf = config_dir.join("window.json");
    let saved = load(&path);
    let mut builder =
        WebviewWindowBuilder::new(app, MAIN_WINDOW, WebviewUrl::App("index.html".into()))
            .title("Lockdesk")
            .min_inner_size(MIN_SIZE.0, MIN_SIZE.1)
            // Ctrl/Cmd + = - 0 (and Ctrl + wheel) zoom the page, 20% a step; needs the
            // capability's `core:webview:allow-set-webview-zoom` on macOS and Linux.
            .zoom_hotkeys_enabled(true)
            // The web view's own storage (cache, local storage) stays inside Lockdesk's data folder.
            .data_directory(data_dir.join(crate::WEBVIEW_DATA_DIR));
    let g = saved.unwrap_or(Geometry {
        width: DEFAULT_SIZE.0,
        height: DEFAULT_SIZE.1,
        x: None,
        y: None,
        maximized: false,
    });
    builder = builder.inner_size(g.width, g.height);
    match (g.x, g.y) {
        (Some(x), Some(y)) => builder = builder.position(x, y),
        _ => builder = builder.center(),
    }
    if g.maximized {
        builder = builder.maximized(true);
    }
    let window = builder.build()?;

    let current = Mutex::new(g);
    let w = window.clone();
    window.on_window_event(move |event| {
        let update = matches!(
            event,
            WindowEvent::Moved(_) | WindowEvent::Resized(_) | WindowEvent::CloseRequested { .. }
        );
        if !update {
            return;
        }
        let Ok(scale) = w.scale_factor() else { return };
        let maximized = w.is_maximized().unwrap_or(false);
        let mut g = match current.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        g.maximized = maximized;
        // A maximized window keeps the size and place it will return to.
        if !maximized {
            if let Ok(size) = w.inner_size() {
                let size = size.to_logical::<f64>(scale);
                g.width = size.width.max(MIN_SIZE.0);
                g.height = size.height.max(MIN_SIZE.1);
            }
            if let Ok(pos) = w.outer_position() {
                let pos = pos.to_logical::<f64>(scale);
                g.x = Some(pos.x);
                g.y = Some(pos.y);
            }
        }
        // Moves and resizes arrive many times a second while dragging: write once, on close.
        if g.is_sane() && matches!(event, WindowEvent::CloseRequested { .. }) {
            save(&path, &g);
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_round_trips_and_absurd_values_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("window.json");
        let g = Geometry {
            width: 900.0,
            height: 700.0,
            x: Some(10.0),
            y: Some(20.0),
            maximized: false,
        };
        save(&path, &g);
        assert_eq!(load(&path), Some(g));
        std::fs::write(
            &path,
            r#"{"width":1e300,"height":700,"x":0,"y":0,"maximized":false}"#,
        )
        .unwrap();
        assert_eq!(load(&path), None);
        std::fs::write(&path, "garbage").unwrap();
        assert_eq!(load(&path), None);
    }
}
