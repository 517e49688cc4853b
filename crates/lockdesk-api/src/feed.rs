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
}

/// The state before any connection attempt, from the configuration alone.
pub fn initial_status(config: &lockdesk_config::Config) -> FeedStatus {
    if config.has_feed() {
        FeedStatus::Disconnected {
            reason: "this build of Lockdesk has no feed client yet, so it does not connect".into(),
        }
    } else {
        FeedStatus::NotConfigured
    }
}
