//! The main window, opened where and as large as the user left it.
//!
//! The window-state plugin is not used because it writes into Tauri's own config folder, which
//! `LOCKDESK_CONFIG_DIR` cannot redirect; this module keeps `window.json` next to `config.toml`.
//! It is written when the window closes, and when the app quits with the window open (the tray's
//! "Quit Lockdesk", SIGTERM, SIGINT: no close event then) from the exit handler.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use tauri::{AppHandle, Manager, Runtime, WebviewUrl, WebviewWindowBuilder, WindowEvent};

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

/// The main window's last geometry and where it is kept (managed state: the exit handler saves
/// it, see [`save_on_exit`]).
pub struct WindowMemory {
    path: PathBuf,
    last: Mutex<Remembered>,
}

struct Remembered {
    geometry: Geometry,
    /// Moved or resized since it was last written.
    unsaved: bool,
}

impl WindowMemory {
    fn new(path: PathBuf, geometry: Geometry) -> Self {
        Self {
            path,
            last: Mutex::new(Remembered {
                geometry,
                unsaved: false,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Remembered> {
        match self.last.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Writes the geometry if it changed since it was last written and is sane.
    fn save_if_unsaved(&self) {
        let mut last = self.lock();
        if last.unsaved && last.geometry.is_sane() {
            save(&self.path, &last.geometry);
            last.unsaved = false;
        }
    }
}

/// The app is exiting (tray, SIGTERM, SIGINT): the window gets no close event, so the geometry
/// it was last moved or resized to is written here, if it was not already.
pub fn save_on_exit<R: Runtime>(app: &AppHandle<R>) {
    if let Some(memory) = app.try_state::<Arc<WindowMemory>>() {
        memory.save_if_unsaved();
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

    let memory = Arc::new(WindowMemory::new(path, g));
    app.manage(memory.clone());
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
        {
            let mut last = memory.lock();
            let g = &mut last.geometry;
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
            last.unsaved = true;
        }
        // Moves and resizes arrive many times a second while dragging: write once, on close
        // (or on quitting: save_on_exit).
        if matches!(event, WindowEvent::CloseRequested { .. }) {
            memory.save_if_unsaved();
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A window that is not maximized, at `place` (`None`: centred).
    fn geometry(width: f64, height: f64, place: Option<(f64, f64)>) -> Geometry {
        Geometry {
            width,
            height,
            x: place.map(|p| p.0),
            y: place.map(|p| p.1),
            maximized: false,
        }
    }

    #[test]
    fn geometry_round_trips_and_absurd_values_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("window.json");
        let g = geometry(900.0, 700.0, Some((10.0, 20.0)));
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

    #[test]
    fn quitting_writes_the_last_geometry_once_and_only_when_it_changed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("window.json");
        let opened = geometry(DEFAULT_SIZE.0, DEFAULT_SIZE.1, None);
        let memory = WindowMemory::new(path.clone(), opened);
        // Opened and never moved: nothing to write.
        memory.save_if_unsaved();
        assert!(!path.exists());
        // Moved and resized, then quit without a close event.
        let moved = geometry(1000.0, 640.0, Some((30.0, 40.0)));
        {
            let mut last = memory.lock();
            last.geometry = moved;
            last.unsaved = true;
        }
        memory.save_if_unsaved();
        assert_eq!(load(&path), Some(moved));
        // Written once: a second exit path (close, then exit) does not write it again.
        std::fs::remove_file(&path).unwrap();
        memory.save_if_unsaved();
        assert!(!path.exists());
        // An absurd geometry (a window manager's transient value) is never written.
        {
            let mut last = memory.lock();
            last.geometry.width = f64::NAN;
            last.unsaved = true;
        }
        memory.save_if_unsaved();
        assert!(!path.exists());
    }
}
