//! Read-only queries: history, the conversation list, one conversation's detail, alerts, stats.

use lockdesk_conversation::{
    AlertKind, AuthStateName, OperatorId, PresentationVerdict, ReasonCode, VisitorSource,
};
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde_json::Value;

use crate::apply::read_meta;
use crate::model::*;
use crate::DeskError;

/// The store's read queries, defined once for the writer [`crate::Desk`] and the read-only
/// [`crate::DeskReader`]: each holds its connection in a field `conn` and invokes this macro in
/// its `impl`, so both answer every read the same way.
macro_rules! read_queries {
    () => {
        /// A userId's cross-device history: every conversation on every visitor a valid token
        /// linked to it.
        pub fn history(&self, user_id: &str) -> Result<$crate::History, $crate::DeskError> {
            $crate::query::history(&self.conn, user_id)
        }

        /// The conversation list, most recently opened first.
        pub fn conversations(
            &self,
            q: &$crate::ConversationQuery,
        ) -> Result<Vec<$crate::ConversationRow>, $crate::DeskError> {
            $crate::query::conversations(&self.conn, q)
        }

        /// One conversation's identity card, presentations, transitions and alerts.
        pub fn conversation(
            &self,
            conversation_id: &str,
        ) -> Result<Option<$crate::ConversationDetail>, $crate::DeskError> {
            $crate::query::conversation(&self.conn, conversation_id)
        }

        /// Alerts with their evidence, newest first, at most `limit` (0: 500), with an id below
        /// `before_id` when given (paging).
        pub fn alerts(
            &self,
            before_id: Option<i64>,
            limit: u32,
        ) -> Result<Vec<$crate::AlertRecord>, $crate::DeskError> {
            $crate::query::alerts(&self.conn, before_id, limit)
        }

        /// How many alerts each conversation has (by conversation id; none: absent).
        pub fn alert_counts(
            &self,
        ) -> Result<std::collections::HashMap<String, u32>, $crate::DeskError> {
            $crate::query::alert_counts(&self.conn)
        }

        /// One alert by id ([`crate::Change::alert_id`]).
        pub fn alert(&self, id: i64) -> Result<Option<$crate::AlertRecord>, $crate::DeskError> {
            $crate::query::alert(&self.conn, id)
        }

        /// Counts (cursor, rows, malformed and ignored entries).
        pub fn stats(&self) -> Result<$crate::Stats, $crate::DeskError> {
            $crate::query::stats(&self.conn)
        }

        /// The identity of the gateway log the cursor belongs to (`hello.logId`), once known.
        pub fn log_id(&self) -> Result<Option<String>, $crate::DeskError> {
            $crate::log::known(&self.conn)
        }
    };
}
pub(crate) use read_queries;

const ROW_COLUMNS: &str = "c.conversation_id, v.visitor_id, c.channel, c.operator_id, c.state,
    c.auth_state, c.reason, c.user_id, c.other_user_id, c.name, c.source, c.domain, c.device,
    c.app, c.opened_ms, c.closed_ms, c.since_ms, c.until_ms, c.last_verified_ms,
    c.first_verified_ms, c.platform_user_id, c.id, li.id, li.lookalike_of, li.mixed_script";

/// The identity of a row's userId, for its look-alike marker (`li` in [`ROW_COLUMNS`]).
const ROW_IDENTITY: &str = "LEFT JOIN identities li ON li.user_id = c.user_id";

/// The look-alike marker from an identity's columns (`None`: no identity, or nothing to mark).
fn look_alike(
    identity: Option<i64>,
    lookalike_of: Option<String>,
    mixed_script: Option<bool>,
) -> Option<LookAlike> {
    identity?;
    let mixed_script = mixed_script.unwrap_or(false);
    (lookalike_of.is_some() || mixed_script).then_some(LookAlike {
        imitates: lookalike_of,
        mixed_script,
    })
}

// The vocabulary's columns (each holds a `code()`), read back by vocab.rs's rules for stored
// codes: a state this build does not know reads as `failed`, a reason as `unknown`, a verdict as
// `rejected`, a source or an alert code as `null`. No reader outside this file sees the text.

fn state(r: &Row<'_>, i: usize) -> rusqlite::Result<AuthStateName> {
    Ok(AuthStateName::from_stored(r.get_ref(i)?.as_str()?))
}

fn reason(r: &Row<'_>, i: usize) -> rusqlite::Result<Option<ReasonCode>> {
    Ok(r.get_ref(i)?.as_str_or_null()?.map(ReasonCode::from_code))
}

fn row(r: &Row<'_>) -> rusqlite::Result<(ConversationRow, i64)> {
    Ok((
        ConversationRow {
            conversation_id: r.get(0)?,
            visitor_id: r.get(1)?,
            channel: r.get(2)?,
            operator_id: r
                .get::<_, Option<i64>>(3)?
                .and_then(OperatorId::from_stored),
            state: state(r, 4)?,
            auth_state: state(r, 5)?,
            reason: reason(r, 6)?,
            user_id: r.get(7)?,
            other_user_id: r.get(8)?,
            name: r.get(9)?,
            source: r
                .get_ref(10)?
                .as_str_or_null()?
                .and_then(VisitorSource::from_code),
            domain: r.get(11)?,
            device: r.get(12)?,
            app: r.get(13)?,
            opened_ms: r.get(14)?,
            closed_ms: r.get(15)?,
            since_ms: r.get(16)?,
            until_ms: r.get(17)?,
            last_verified_ms: r.get(18)?,
            first_verified_ms: r.get(19)?,
            platform_user_id: r.get(20)?,
            look_alike: look_alike(r.get(22)?, r.get(23)?, r.get(24)?),
        },
        r.get(21)?,
    ))
}

fn json_col(s: Option<String>) -> Option<Value> {
    s.and_then(|s| serde_json::from_str(&s).ok())
}

pub(crate) fn history(conn: &Connection, user_id: &str) -> Result<History, DeskError> {
    let identity: Option<(i64, Option<String>, i64, i64)> = conn
        .prepare_cached(
            "SELECT id, visitor_data, first_seen_ms, last_seen_ms FROM identities WHERE user_id = ?1",
        )?
        .query_row([user_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .optional()?;
    let Some((identity, vd, first, last)) = identity else {
        return Ok(History {
            user_id: user_id.to_owned(),
            known: false,
            visitor_data: None,
            first_seen_ms: None,
            last_seen_ms: None,
            visitors: vec![],
            conversations: vec![],
        });
    };
    let visitors: Vec<LinkedVisitor> = conn
        .prepare_cached(
            "SELECT v.visitor_id, l.first_seen_ms, l.last_seen_ms
             FROM identity_visitors l JOIN visitors v ON v.id = l.visitor
             WHERE l.identity = ?1 ORDER BY l.first_seen_ms",
        )?
        .query_map([identity], |r| {
            Ok(LinkedVisitor {
                visitor_id: r.get(0)?,
                first_seen_ms: r.get(1)?,
                last_seen_ms: r.get(2)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    let sql = format!(
        "SELECT {ROW_COLUMNS} FROM identity_visitors l
         JOIN conversations c ON c.visitor = l.visitor
         JOIN visitors v ON v.id = c.visitor
         {ROW_IDENTITY}
         WHERE l.identity = ?1
         ORDER BY coalesce(c.opened_ms, c.closed_ms), c.id"
    );
    let conversations = conn
        .prepare_cached(&sql)?
        .query_map([identity], row)?
        .map(|r| {
            r.map(|(row, _)| HistoryConversation {
                anonymous_before_login: match (row.opened_ms, row.first_verified_ms) {
                    (Some(o), Some(f)) => o < f,
                    _ => false,
                },
                row,
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(History {
        user_id: user_id.to_owned(),
        known: true,
        visitor_data: json_col(vd),
        first_seen_ms: Some(first),
        last_seen_ms: Some(last),
        visitors,
        conversations,
    })
}

pub(crate) fn conversations(
    conn: &Connection,
    q: &ConversationQuery,
) -> Result<Vec<ConversationRow>, DeskError> {
    let limit = if q.limit == 0 { 500 } else { q.limit };
    let filter = if q.open_only {
        "WHERE c.closed_ms IS NULL"
    } else {
        ""
    };
    let sql = format!(
        "SELECT {ROW_COLUMNS} FROM conversations c JOIN visitors v ON v.id = c.visitor
         {ROW_IDENTITY} {filter}
         ORDER BY c.opened_ms DESC, c.id DESC LIMIT ?1"
    );
    let rows = conn
        .prepare_cached(&sql)?
        .query_map([limit], row)?
        .map(|r| r.map(|(row, _)| row))
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

fn alert_row(r: &Row<'_>) -> rusqlite::Result<AlertRecord> {
    Ok(AlertRecord {
        id: r.get(0)?,
        seq: r.get::<_, Option<i64>>(1)?.map(|s| s as u64),
        at_ms: r.get(2)?,
        code: AlertKind::from_code(r.get_ref(3)?.as_str()?),
        conversation_id: r.get(4)?,
        visitor_id: r.get(5)?,
        user_id: r.get(6)?,
        evidence: json_col(r.get(7)?).unwrap_or(Value::Null),
    })
}

const ALERT_COLUMNS: &str = "a.id, a.seq, a.at_ms, a.code, c.conversation_id, v.visitor_id,
    a.user_id, a.evidence FROM alerts a LEFT JOIN conversations c ON c.id = a.conversation
    LEFT JOIN visitors v ON v.id = a.visitor";

pub(crate) fn alerts(
    conn: &Connection,
    before_id: Option<i64>,
    limit: u32,
) -> Result<Vec<AlertRecord>, DeskError> {
    let limit = if limit == 0 { 500 } else { limit };
    let sql = format!("SELECT {ALERT_COLUMNS} WHERE a.id < ?1 ORDER BY a.id DESC LIMIT ?2");
    let rows = conn
        .prepare_cached(&sql)?
        .query_map(params![before_id.unwrap_or(i64::MAX), limit], alert_row)?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Alerts per conversation id (conversations without alerts are absent).
pub(crate) fn alert_counts(
    conn: &Connection,
) -> Result<std::collections::HashMap<String, u32>, DeskError> {
    let rows = conn
        .prepare_cached(
            "SELECT c.conversation_id, count(*) FROM alerts a
             JOIN conversations c ON c.id = a.conversation GROUP BY a.conversation",
        )?
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, u32>(1)?)))?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

pub(crate) fn alert(conn: &Connection, id: i64) -> Result<Option<AlertRecord>, DeskError> {
    let sql = format!("SELECT {ALERT_COLUMNS} WHERE a.id = ?1");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([id], alert_row)
        .optional()?)
}

pub(crate) fn conversation(
    conn: &Connection,
    conversation_id: &str,
) -> Result<Option<ConversationDetail>, DeskError> {
    let sql = format!(
        "SELECT {ROW_COLUMNS} FROM conversations c JOIN visitors v ON v.id = c.visitor
         {ROW_IDENTITY} WHERE c.conversation_id = ?1"
    );
    let Some((row, id)) = conn
        .prepare_cached(&sql)?
        .query_row([conversation_id], self::row)
        .optional()?
    else {
        return Ok(None);
    };
    let first_verified = row.first_verified_ms;
    let before = |t: i64| first_verified.is_none_or(|f| t < f);
    let presentations: Vec<Presentation> = conn
        .prepare_cached(
            "SELECT p.seq, p.received_ms, p.presented_at, v.visitor_id, p.verdict, p.reason,
               p.detail, p.user_id, p.visitor_data, p.issuer, p.expires_ms, p.signing_key,
               p.decryption_key, p.token_sha256, p.domain, p.device, p.app
             FROM presentations p JOIN visitors v ON v.id = p.visitor
             WHERE p.conversation = ?1 ORDER BY p.received_ms, p.seq",
        )?
        .query_map([id], |r| {
            let received_ms: i64 = r.get(1)?;
            Ok(Presentation {
                seq: r.get::<_, i64>(0)? as u64,
                received_ms,
                presented_at: r.get(2)?,
                visitor_id: r.get(3)?,
                conversation_id: Some(conversation_id.to_owned()),
                verdict: PresentationVerdict::from_stored(r.get_ref(4)?.as_str()?),
                reason: reason(r, 5)?,
                detail: r.get(6)?,
                user_id: r.get(7)?,
                visitor_data: json_col(r.get(8)?),
                issuer: r.get(9)?,
                expires_ms: r.get(10)?,
                signing_key: r.get(11)?,
                decryption_key: r.get(12)?,
                token_sha256: r.get(13)?,
                domain: r.get(14)?,
                device: r.get(15)?,
                app: r.get(16)?,
                before_login: before(received_ms),
            })
        })?
        .collect::<Result<_, _>>()?;
    let transitions: Vec<Transition> = conn
        .prepare_cached(
            "SELECT seq, at_ms, state, reason, user_id FROM transitions
             WHERE conversation = ?1 ORDER BY id",
        )?
        .query_map([id], |r| {
            let at_ms: i64 = r.get(1)?;
            Ok(Transition {
                seq: r.get::<_, Option<i64>>(0)?.map(|s| s as u64),
                at_ms,
                state: state(r, 2)?,
                reason: reason(r, 3)?,
                user_id: r.get(4)?,
                before_login: before(at_ms),
            })
        })?
        .collect::<Result<_, _>>()?;
    let sql = format!("SELECT {ALERT_COLUMNS} WHERE a.conversation = ?1 ORDER BY a.id");
    let alerts: Vec<AlertRecord> = conn
        .prepare_cached(&sql)?
        .query_map([id], alert_row)?
        .collect::<Result<_, _>>()?;
    let latest = presentations
        .iter()
        .rev()
        .find(|p| p.verdict == PresentationVerdict::Verified);
    // The card's marker: the row's when the card proves the row's userId, else its own.
    let look_alike = match latest.and_then(|p| p.user_id.as_ref()) {
        Some(u) if row.user_id.as_ref() == Some(u) => row.look_alike.clone(),
        Some(u) => identity_look_alike(conn, u)?,
        None => None,
    };
    let identity = latest.and_then(|p| {
        Some(IdentityCard {
            look_alike,
            user_id: p.user_id.clone()?,
            visitor_data: p.visitor_data.clone(),
            issuer: p.issuer.clone()?,
            signing_key: p.signing_key.clone()?,
            decryption_key: p.decryption_key.clone(),
            expires_ms: p.expires_ms?,
            verified_ms: p.received_ms,
            session_until_ms: row.until_ms,
        })
    });
    Ok(Some(ConversationDetail {
        row,
        identity,
        presentations,
        transitions,
        alerts,
    }))
}

/// The look-alike marker of one identity.
fn identity_look_alike(conn: &Connection, user_id: &str) -> Result<Option<LookAlike>, DeskError> {
    let found: Option<(i64, Option<String>, bool)> = conn
        .prepare_cached("SELECT id, lookalike_of, mixed_script FROM identities WHERE user_id = ?1")?
        .query_row([user_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    Ok(found.and_then(|(id, of, mixed)| look_alike(Some(id), of, Some(mixed))))
}

pub(crate) fn stats(conn: &Connection) -> Result<Stats, DeskError> {
    let count = |sql: &str| -> Result<u64, DeskError> {
        let n: i64 = conn.prepare_cached(sql)?.query_row([], |r| r.get(0))?;
        Ok(n.max(0) as u64)
    };
    Ok(Stats {
        cursor: read_meta(conn, "cursor")?,
        conversations: count("SELECT count(*) FROM conversations")?,
        open_conversations: count("SELECT count(*) FROM conversations WHERE closed_ms IS NULL")?,
        visitors: count("SELECT count(*) FROM visitors")?,
        identities: count("SELECT count(*) FROM identities")?,
        presentations: count("SELECT count(*) FROM presentations")?,
        alerts: count("SELECT count(*) FROM alerts")?,
        malformed: read_meta(conn, "malformed")?,
        ignored: read_meta(conn, "ignored")?,
        applied_at_ms: read_meta(conn, "applied_at_ms")?,
    })
}
