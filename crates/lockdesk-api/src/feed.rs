//! The feed connection state shown in the header.

use serde::Serialize;
use ts_rs::TS;

/// Where the desk's feed connection stands. The header always shows it, with the reason when
/// there is no connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, TS)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum FeedStatus {
    /// No feed address in Settings.
    NotConfigured,
    /// Configured but not connected; `reason` says why.
    Disconnected {
        reason: String,
    },
    Connecting {
        url: String,
    },
    Connected {
        url: String,
    },
    /// `config.toml` exists but could not be read or parsed: the desk did not start (not even
    /// the demo) and the file is left as it is. `reason` names the file and line, never its
    /// content.
    ConfigUnreadable {
        reason: String,
    },
}
