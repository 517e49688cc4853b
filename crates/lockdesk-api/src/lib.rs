//! What Lockdesk's UI can ask for, independent of Tauri: the data types that cross IPC, the body
//! of every command, and the TypeScript bindings generated from those types.
//!
//! Architecture invariants:
//! - no dependency on tauri: `src-tauri` wraps each function here in a few lines, and these
//!   functions are tested without a desktop;
//! - every type the UI sees derives `ts_rs::TS` and is listed in [`bindings::typescript`]; the
//!   committed `ui/src/ipc/bindings.ts` must equal its output (a test fails when it is stale);
//! - errors cross IPC as [`IpcError`] `{code, message}`; a `code` exists only when the UI branches
//!   on it; validation problems are data ([`FieldError`]), not errors;
//! - the subscriber credential goes UI -> Rust only; it is never sent back to the web view.

pub mod bindings;
mod desk;
pub mod desk_map;
mod error;
mod feed;
mod settings;
pub mod supervisor;

pub use desk::{
    AlertKind, AuthStateName, ConversationDetail, ConversationRow, DeskAlert, DeskEvent,
    DeskSnapshot, DeskStatus, EvidenceItem, FocusConversation, History, HistoryConversation,
    HistoryGroup, IdentityCard, LookAlike, OperatorId, PlatformField, Presentation,
    PresentationVerdict, ReasonCode, SignedField, StoreIntegrity, VisitorSource,
};
pub use error::{IpcError, IpcErrorCode};
pub use feed::{CatchingUp, FeedStatus};
pub use settings::{
    AppInfo, FieldError, NotificationsForm, SaveOutcome, SettingsForm, SettingsService,
    SettingsView, TrustForm,
};
pub use supervisor::{
    AdvisorCount, AuditStatus, DayShare, ExportFormat, ExportResult, FilterChoices, ReasonCount,
    SupervisorFilters, SupervisorOverview, SupervisorRow,
};

#[cfg(test)]
mod tests;
