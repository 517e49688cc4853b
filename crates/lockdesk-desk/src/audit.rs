//! The one place the desk core talks to the audit chain (`lockdesk-audit`): every presentation
//! with its verdict, every state transition, every alert, every new identity link and every
//! backfilled record is appended inside the transaction that applies it, so the store and its
//! audit log are committed or lost together.

use lockdesk_audit::{Kind, Record};
use lockdesk_conversation::OperatorId;
use rusqlite::Connection;
use serde_json::Value;

use crate::DeskError;

pub(crate) fn migrate(conn: &Connection) -> Result<(), DeskError> {
    lockdesk_audit::migrate(conn)?;
    Ok(())
}

/// What to append. Personal data only in `visitor_id`, `user_id` and `data["visitorData"]`
/// (the audit crate erases and redacts exactly those). Built by `apply::record::AuditFact`.
pub(crate) struct AuditEvent<'a> {
    pub at_ms: i64,
    pub kind: Kind,
    pub conversation_id: Option<&'a str>,
    pub visitor_id: Option<&'a str>,
    pub user_id: Option<&'a str>,
    pub operator_id: Option<OperatorId>,
    pub data: Value,
}

pub(crate) fn append(conn: &Connection, e: AuditEvent<'_>) -> Result<(), DeskError> {
    lockdesk_audit::append(
        conn,
        &Record {
            at_ms: e.at_ms,
            kind: e.kind,
            conversation_id: e.conversation_id.map(str::to_owned),
            visitor_id: e.visitor_id.map(str::to_owned),
            user_id: e.user_id.map(str::to_owned),
            operator_id: e.operator_id.map(OperatorId::get),
            data: e.data,
        },
    )?;
    Ok(())
}
