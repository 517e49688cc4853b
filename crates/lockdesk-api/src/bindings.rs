//! The TypeScript bindings of every IPC type, as one file: `ui/src/ipc/bindings.ts`.
//!
//! `cargo test -p lockdesk-api` fails when the committed file differs from what this produces;
//! `UPDATE_BINDINGS=1 cargo test -p lockdesk-api bindings` rewrites it.

use ts_rs::{Config, TS};

use crate::*;

/// The committed file's path, relative to the workspace root.
pub const BINDINGS_PATH: &str = "ui/src/ipc/bindings.ts";

fn decl<T: TS>(cfg: &Config, out: &mut String) {
    out.push_str("export ");
    out.push_str(&T::decl(cfg));
    out.push_str("\n\n");
}

/// The whole bindings file.
pub fn typescript() -> String {
    let cfg = Config::default();
    let mut out = String::from(
        "// Generated from the Rust types in crates/lockdesk-api by\n\
         // `UPDATE_BINDINGS=1 cargo test -p lockdesk-api bindings`. Do not edit by hand.\n\n",
    );
    decl::<IpcErrorCode>(&cfg, &mut out);
    decl::<IpcError>(&cfg, &mut out);
    decl::<FieldError>(&cfg, &mut out);
    decl::<TrustForm>(&cfg, &mut out);
    decl::<NotificationsForm>(&cfg, &mut out);
    decl::<SettingsForm>(&cfg, &mut out);
    decl::<SettingsView>(&cfg, &mut out);
    decl::<SaveOutcome>(&cfg, &mut out);
    decl::<AppInfo>(&cfg, &mut out);
    decl::<CatchingUp>(&cfg, &mut out);
    decl::<FeedStatus>(&cfg, &mut out);
    decl::<AuthStateName>(&cfg, &mut out);
    decl::<ReasonCode>(&cfg, &mut out);
    decl::<VisitorSource>(&cfg, &mut out);
    decl::<OperatorId>(&cfg, &mut out);
    decl::<LookAlike>(&cfg, &mut out);
    decl::<ConversationRow>(&cfg, &mut out);
    decl::<SignedField>(&cfg, &mut out);
    decl::<PlatformField>(&cfg, &mut out);
    decl::<IdentityCard>(&cfg, &mut out);
    decl::<PresentationVerdict>(&cfg, &mut out);
    decl::<Presentation>(&cfg, &mut out);
    decl::<AlertKind>(&cfg, &mut out);
    decl::<EvidenceItem>(&cfg, &mut out);
    decl::<DeskAlert>(&cfg, &mut out);
    decl::<ConversationDetail>(&cfg, &mut out);
    decl::<HistoryConversation>(&cfg, &mut out);
    decl::<HistoryGroup>(&cfg, &mut out);
    decl::<History>(&cfg, &mut out);
    decl::<DeskStatus>(&cfg, &mut out);
    decl::<StoreIntegrity>(&cfg, &mut out);
    decl::<DeskSnapshot>(&cfg, &mut out);
    decl::<DeskEvent>(&cfg, &mut out);
    decl::<FocusConversation>(&cfg, &mut out);
    decl::<SupervisorFilters>(&cfg, &mut out);
    decl::<SupervisorRow>(&cfg, &mut out);
    decl::<DayShare>(&cfg, &mut out);
    decl::<ReasonCount>(&cfg, &mut out);
    decl::<AdvisorCount>(&cfg, &mut out);
    decl::<FilterChoices>(&cfg, &mut out);
    decl::<SupervisorOverview>(&cfg, &mut out);
    decl::<AuditStatus>(&cfg, &mut out);
    decl::<ExportFormat>(&cfg, &mut out);
    decl::<ExportResult>(&cfg, &mut out);
    out.truncate(out.trim_end().len());
    out.push('\n');
    out
}
