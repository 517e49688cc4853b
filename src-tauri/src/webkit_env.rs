//! WebKitGTK's environment, set before anything else runs (Linux only).
//!
//! WebKitGTK 2.42+ draws through its DMA-BUF renderer by default. Where there is no GPU the
//! window's compositor can share buffers with (Xvfb, most VMs, remote desktops) and with
//! NVIDIA's proprietary driver, that renderer leaves the window blank or leaves areas unpainted
//! (where a desktop notification closed, the old pixels stay): a screen that may show a state
//! that is no longer true. Lockdesk therefore sets `WEBKIT_DISABLE_DMABUF_RENDERER=1` itself when
//! the variable is not set: WebKit then draws through shared memory, which is correct everywhere.
//! The cost, on a machine whose GPU handles DMA-BUF well, is some CPU per repaint, negligible for
//! a list and a detail pane (and under Xvfb it is faster and about 70 MiB smaller:
//! `scripts/bench-desktop.sh`). Any value already set is the user's choice and left as it is:
//! `WEBKIT_DISABLE_DMABUF_RENDERER=0` turns the DMA-BUF renderer back on.

use std::ffi::OsString;

pub const DMABUF_VAR: &str = "WEBKIT_DISABLE_DMABUF_RENDERER";

/// What Lockdesk did about WebKit's DMA-BUF renderer (logged once logging is up).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dmabuf {
    /// The variable was not set: Lockdesk set it to `1` (renderer off).
    DisabledByLockdesk,
    /// The variable was set (to this value, lossily decoded): left as it is.
    LeftAsSet(String),
    /// Not Linux: WebKitGTK is not the web view.
    NotApplicable,
}

/// The decision for the variable's current value: `Some(value)` to set, or why not.
pub fn decide(current: Option<OsString>) -> Result<&'static str, Dmabuf> {
    match current {
        None => Ok("1"),
        Some(v) => Err(Dmabuf::LeftAsSet(v.to_string_lossy().into_owned())),
    }
}

/// Applies [`decide`] to the process environment. Must run before any other thread starts (the
/// first thing `run` does): the environment is then read by no one else, and every process
/// WebKit spawns inherits it.
pub fn apply() -> Dmabuf {
    if !cfg!(target_os = "linux") {
        return Dmabuf::NotApplicable;
    }
    match decide(std::env::var_os(DMABUF_VAR)) {
        Ok(value) => {
            std::env::set_var(DMABUF_VAR, value);
            Dmabuf::DisabledByLockdesk
        }
        Err(why) => why,
    }
}

/// Says what was decided, in the log.
pub fn log(decision: &Dmabuf) {
    match decision {
        Dmabuf::DisabledByLockdesk => tracing::info!(
            "{DMABUF_VAR} was not set: set to 1 (WebKit draws through shared memory; set it to 0 to use DMA-BUF)"
        ),
        // The value is the user's own environment, but still printed visibly escaped.
        Dmabuf::LeftAsSet(v) => tracing::info!("{DMABUF_VAR} is set ({v:?}): left as it is"),
        Dmabuf::NotApplicable => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_the_variable_only_when_it_is_not_set() {
        assert_eq!(decide(None), Ok("1"));
        // An explicit choice, whatever it is, is left alone: 0 (DMA-BUF back on), 1, or empty
        // (WebKit takes any value other than "0" as "disabled").
        for v in ["0", "1", ""] {
            assert_eq!(
                decide(Some(OsString::from(v))),
                Err(Dmabuf::LeftAsSet(v.into()))
            );
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_value_that_is_not_utf8_is_left_as_set_and_reported_lossily() {
        use std::os::unix::ffi::OsStringExt;
        let raw = OsString::from_vec(vec![b'1', 0xff]);
        assert_eq!(
            decide(Some(raw)),
            Err(Dmabuf::LeftAsSet("1\u{fffd}".into()))
        );
    }
}
