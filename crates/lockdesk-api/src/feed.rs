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
        /// While the desk has not yet applied the gateway's log to its end (absent when it has).
        #[serde(rename = "catchingUp", skip_serializing_if = "Option::is_none")]
        #[ts(optional)]
        catching_up: Option<CatchingUp>,
    },
    /// `config.toml` exists but could not be read or parsed: the desk did not start (not even
    /// the demo) and the file is left as it is. `reason` names the file and line, never its
    /// content.
    ConfigUnreadable {
        reason: String,
    },
}

/// A connected desk still applying the gateway's log (a backlog after downtime): how far it has
/// to go, and whether it has been behind for too long (then what the list shows is not current,
/// and the window draws it stale as when disconnected).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct CatchingUp {
    /// Log entries still to apply: the gateway's log end as last known (`hello`'s `lastSeq`)
    /// minus the desk's cursor. (An advisor's stream skips other advisors' entries: the count
    /// reaches 0 at the next heartbeat.)
    #[ts(type = "number")]
    pub to_go: u64,
    /// Behind for longer than the catch-up limit (2 min).
    pub stale: bool,
}
