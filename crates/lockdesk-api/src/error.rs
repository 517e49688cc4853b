//! The one error shape that crosses IPC.

use serde::Serialize;
use ts_rs::TS;

/// Error codes the UI branches on. Add one only when the UI does something different for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum IpcErrorCode {
    /// The configuration file exists but cannot be read or understood.
    ConfigUnreadable,
    /// Writing the configuration failed (disk full, permissions, ...).
    ConfigWriteFailed,
    /// The audit chain is broken: an export needs the user's explicit confirmation.
    AuditBroken,
    /// Anything else: shown as is.
    Internal,
}

/// `{code, message}`: the message is a complete, human sentence fragment (lowercase, no period).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, TS, thiserror::Error)]
#[error("{message}")]
pub struct IpcError {
    pub code: IpcErrorCode,
    pub message: String,
}

impl IpcError {
    pub fn new(code: IpcErrorCode, message: impl Into<String>) -> Self {
        IpcError {
            code,
            message: message.into(),
        }
    }
}

impl From<lockdesk_config::ConfigError> for IpcError {
    fn from(e: lockdesk_config::ConfigError) -> Self {
        use lockdesk_config::ConfigError as E;
        let code = match &e {
            E::Read { .. } | E::Parse { .. } => IpcErrorCode::ConfigUnreadable,
            E::Write { .. } => IpcErrorCode::ConfigWriteFailed,
            E::Dir(_) => IpcErrorCode::Internal,
        };
        IpcError::new(code, e.to_string())
    }
}
