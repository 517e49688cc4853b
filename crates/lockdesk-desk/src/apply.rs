//! Applying feed entries, ticks and backfilled records to the store, inside one transaction
//! each. Routing: a webhook acts on its conversation; evidence acts on the conversation it
//! names, else on its visitor's open conversations, else waits ("pending") for the visitor's
//! next push (evidence usually arrives before the conversation does). Evidence bundled with a
//! push (`related`) is applied first, as if it had arrived before the push.

use std::collections::HashMap;

use lockdesk_audit::Kind;
use lockdesk_conversation::{
    AlertKind, AuthState, AuthStateName, Conversation, Event, ReasonCode, VisitorSource,
};
use lockdesk_feed::{payload, Entry, EntryKind, Evidence, MAX_TIME_MS, MIN_TIME_MS};
use lockdesk_verify::{Verdict, Verified};
use rayon::prelude::*;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::audit::{self, AuditEvent};
use crate::lookalike;
use crate::model::{Applied, Change, ClosedConversation, Skipped};
use crate::{Desk, DeskError};

/// A counter or mark of `desk_meta` (0 when absent).
pub(crate) fn read_meta(conn: &Connection, key: &str) -> Result<u64, DeskError> {
    let v: Option<i64> = conn
        .prepare_cached("SELECT value FROM desk_meta WHERE key = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()?;
    Ok(v.unwrap_or(0).max(0) as u64)
}

fn add_meta(conn: &Connection, key: &str, n: u64) -> Result<(), DeskError> {
    if n > 0 {
        conn.prepare_cached("UPDATE desk_meta SET value = value + ?2 WHERE key = ?1")?
            .execute(params![key, n as i64])?;
    }
    Ok(())
}

fn secs(ms: i64) -> i64 {
    ms.div_euclid(1000)
}

/// A conversation loaded for an update.
struct Conv {
    id: i64,
    conversation_id: String,
    visitor: i64,
    visitor_id: String,
    channel: String,
    operator_id: Option<i64>,
    machine: Conversation,
}

/// The columns derived from a machine's state.
struct StateView {
    state: AuthStateName,
    auth_state: AuthStateName,
    reason: Option<ReasonCode>,
    user_id: Option<String>,
    other_user_id: Option<String>,
    since_ms: Option<i64>,
    until_ms: Option<i64>,
}

impl StateView {
    /// What makes a transition: the state names, reason and identities (not the session end).
    fn key(
        &self,
    ) -> (
        AuthStateName,
        AuthStateName,
        Option<ReasonCode>,
        Option<&str>,
        Option<&str>,
    ) {
        (
            self.state,
            self.auth_state,
            self.reason,
            self.user_id.as_deref(),
            self.other_user_id.as_deref(),
        )
    }

    fn of(m: &Conversation) -> StateView {
        let st = m.state();
        let kept = match st {
            AuthState::Closed { last, .. } => &**last,
            s => s,
        };
        let mut v = StateView {
            state: st.state_name(),
            auth_state: kept.state_name(),
            reason: kept.reason(),
            user_id: m.verified_user_id().map(str::to_owned),
            other_user_id: None,
            since_ms: None,
            until_ms: None,
        };
        match kept {
            AuthState::Secured {
                user_id,
                since,
                until,
            } => {
                v.user_id = Some(user_id.clone());
                v.since_ms = Some(since.saturating_mul(1000));
                v.until_ms = Some(until.saturating_mul(1000));
            }
            AuthState::Lapsed { user_id, at } => {
                v.user_id = Some(user_id.clone());
                v.until_ms = Some(at.saturating_mul(1000));
            }
            AuthState::Mismatch { other_user_id, .. } => {
                v.other_user_id = Some(other_user_id.clone());
            }
            _ => {}
        }
        v
    }
}

/// Where a presentation came from, derived once.
struct PresentationFacts {
    seq: u64,
    received_ms: i64,
    verified: Option<VerifiedFacts>,
    reason: Option<lockdesk_verify::Reason>,
    token_sha256: String,
    source: Option<VisitorSource>,
    domain: Option<String>,
    device: Option<String>,
    app: Option<String>,
}

struct VerifiedFacts {
    user_id: String,
    name: Option<String>,
}

struct Ctx<'a> {
    conn: &'a Connection,
    lifetime: i64,
    out: Applied,
    /// The seq a change is reported under (the entry being applied, or the cursor).
    change_seq: u64,
}

/// Collects and verifies the batch's tokens in parallel, before the write transaction.
fn verify_batch(desk: &Desk, entries: &[Entry]) -> Result<HashMap<u64, Verdict>, DeskError> {
    let mut jobs: Vec<(u64, &str, i64)> = Vec::new();
    let mut cursor = desk.cursor;
    let mut known = desk
        .conn
        .prepare_cached("SELECT 1 FROM presentations WHERE seq = ?1")?;
    for e in entries {
        if e.seq <= cursor {
            continue;
        }
        cursor = e.seq;
        if e.check_bounds().is_err() {
            // Skipped by `apply`: no token of it is verified.
            continue;
        }
        let token = |p: &Value| p.get("token").and_then(Value::as_str).map(str::to_owned);
        match e.kind {
            EntryKind::Evidence => {
                if let Some(t) = e.payload.get("token").and_then(Value::as_str) {
                    jobs.push((e.seq, t, secs(e.received_at_ms)));
                }
            }
            EntryKind::Webhook => {
                for r in &e.related {
                    if token(&r.payload).is_none() || known.exists([r.seq as i64])? {
                        continue;
                    }
                    if let Some(t) = r.payload.get("token").and_then(Value::as_str) {
                        jobs.push((r.seq, t, secs(r.received_at_ms)));
                    }
                }
            }
        }
    }
    let verifier = &desk.verifier;
    Ok(jobs
        .par_iter()
        .map(|(seq, token, at)| (*seq, verifier.verify(token.as_bytes(), *at)))
        .collect())
}

pub(crate) fn apply(desk: &mut Desk, entries: &[Entry], now_ms: i64) -> Result<Applied, DeskError> {
    let mut verdicts = verify_batch(desk, entries)?;
    let lifetime = desk.config.session_lifetime_secs;
    let start = desk.cursor;
    let tx = desk
        .conn
        .transaction_with_behavior(TransactionBehavior::Immediate)?;
    // Another process may have applied entries since we read the cursor.
    let mut cursor = read_meta(&tx, "cursor")?.max(start);
    let mut ctx = Ctx {
        conn: &tx,
        lifetime,
        out: Applied::default(),
        change_seq: cursor,
    };
    for e in entries {
        // A seq the store cannot hold (SQLite integers are signed 64-bit) cannot become the
        // cursor: refuse the whole batch rather than save a cursor that reads back negative.
        // (The feed client never hands one over: it drops such a connection.)
        e.check_seq()
            .map_err(|b| DeskError::Store(format!("refused: {b}")))?;
        if e.seq <= cursor {
            ctx.out.duplicates += 1;
            continue;
        }
        cursor = e.seq;
        ctx.change_seq = e.seq;
        // Any other number out of bounds (reception times, related items, operator ids): the
        // entry is recorded as skipped and the cursor moves past it.
        if let Err(b) = e.check_fields() {
            let received = e.received_at_ms.clamp(MIN_TIME_MS, MAX_TIME_MS);
            ctx.skip(e.seq, received, b.to_string())?;
            continue;
        }
        ctx.entry(e, &mut verdicts, &*desk.verifier)?;
    }
    add_meta(&tx, "ignored", ctx.out.ignored)?;
    // When the desk last applied a batch (its clock; shown as "up to date at"). States never
    // depend on it: they follow the entries' reception times, so a replay is identical.
    tx.prepare_cached(
        "INSERT INTO desk_meta (key, value) VALUES ('applied_at_ms', ?1)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )?
    .execute([now_ms])?;
    tx.prepare_cached("UPDATE desk_meta SET value = ?1 WHERE key = 'cursor' AND value < ?1")?
        .execute([cursor as i64])?;
    let mut out = ctx.out;
    out.cursor = cursor;
    tx.commit()?;
    Ok(out)
}

pub(crate) fn tick(desk: &mut Desk, now_ms: i64) -> Result<Vec<Change>, DeskError> {
    let lifetime = desk.config.session_lifetime_secs;
    let cursor = desk.cursor;
    let tx = desk
        .conn
        .transaction_with_behavior(TransactionBehavior::Immediate)?;
    let due: Vec<String> = tx
        .prepare_cached(
            "SELECT conversation_id FROM conversations WHERE state = 'secured' AND until_ms <= ?1",
        )?
        .query_map([now_ms], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut ctx = Ctx {
        conn: &tx,
        lifetime,
        out: Applied::default(),
        change_seq: cursor,
    };
    for id in due {
        if let Some(mut conv) = ctx.load(&id)? {
            // Recorded when the session ended (as between feed entries), not when the clock
            // noticed: a desk that was away reaches the same lines as one that was not.
            ctx.catch_up(&mut conv, now_ms)?;
        }
    }
    let changes = ctx.out.changes;
    tx.commit()?;
    Ok(changes)
}

pub(crate) fn backfill(
    desk: &mut Desk,
    records: &[ClosedConversation],
    now_ms: i64,
) -> Result<Vec<Change>, DeskError> {
    let lifetime = desk.config.session_lifetime_secs;
    let cursor = desk.cursor;
    let tx = desk
        .conn
        .transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut ctx = Ctx {
        conn: &tx,
        lifetime,
        out: Applied::default(),
        change_seq: cursor,
    };
    for r in records {
        ctx.backfill_one(r, now_ms)?;
    }
    let changes = ctx.out.changes;
    tx.commit()?;
    Ok(changes)
}

/// A webhook payload as an object (the shared model reads objects).
fn object(p: &Value) -> Result<&serde_json::Map<String, Value>, payload::FieldError> {
    p.as_object()
        .ok_or_else(|| payload::FieldError("the payload is not an object".into()))
}

/// A webhook's conversation, visitor and operator, read with the payload model the gateway
/// shares (`lockdesk_feed::payload`: one id rule, one operator-id rule, so a form-encoded
/// `operatorId` of "42" is operator 42 here as it was for the gateway's routing). The routing
/// fields the gateway sent with the entry are preferred; the payload is read for those it did
/// not send (an older gateway).
struct WebhookRouting {
    conversation_id: Option<String>,
    visitor_id: Option<String>,
    /// The operator the conversation is with after this event ([`payload::Routing::operator`]).
    operator: Option<u64>,
}

fn webhook_routing(
    e: &Entry,
    p: &serde_json::Map<String, Value>,
) -> Result<WebhookRouting, payload::FieldError> {
    let sent = &e.routing;
    let read = if sent.conversation_id.is_some()
        && sent.visitor_id.is_some()
        && sent.operator_ids.is_some()
    {
        None
    } else {
        Some(payload::Routing::read(p)?)
    };
    let checked = |v: &Option<String>, name: &str| match v {
        Some(s) => payload::id_text(&Value::from(s.as_str()), name).map(|s| Some(s.to_owned())),
        None => Ok(None),
    };
    let conversation_id = match &sent.conversation_id {
        Some(_) => checked(&sent.conversation_id, "conversationId")?,
        None => read.as_ref().and_then(|r| r.conversation_id.clone()),
    };
    let visitor_id = match &sent.visitor_id {
        Some(_) => checked(&sent.visitor_id, "visitorId")?,
        None => read.as_ref().and_then(|r| r.visitor_id.clone()),
    };
    let operator = match (&sent.operator_ids, &read) {
        // The gateway's list is `operatorId` and `operatorIds` together: one id is the operator;
        // several need the payload's `operatorId` to tell which.
        (Some(ids), _) if ids.len() == 1 => Some(ids[0]),
        (Some(ids), _) if ids.is_empty() => None,
        (Some(_), Some(r)) => r.operator(),
        (Some(_), None) => payload::Routing::read(p)?.operator(),
        (None, Some(r)) => r.operator(),
        (None, None) => None,
    };
    Ok(WebhookRouting {
        conversation_id,
        visitor_id,
        operator,
    })
}

/// The display name the desk keeps for a conversation (also recomputed on erasure).
pub(crate) fn display_name(vd: &Value) -> Option<String> {
    let part = |k: &str| {
        vd.get(k)
            .and_then(Value::as_str)
            .map(str::trim)
            .unwrap_or("")
    };
    let name = format!("{} {}", part("firstName"), part("lastName"));
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_owned())
}

/// The signed fields that show two different people behind one userId.
fn differing_fields(before: &Value, after: &Value) -> Vec<&'static str> {
    fn norm(v: &Value, k: &str) -> Option<String> {
        let s = v.get(k)?.as_str()?.trim();
        (!s.is_empty()).then(|| s.to_lowercase())
    }
    fn digits(v: &Value, k: &str) -> Option<String> {
        let d: String = v
            .get(k)?
            .as_str()?
            .chars()
            .filter(char::is_ascii_digit)
            .collect();
        (!d.is_empty()).then_some(d)
    }
    let mut out = Vec::new();
    if let (Some(a), Some(b)) = (norm(before, "email"), norm(after, "email")) {
        if a != b {
            out.push("email");
        }
    }
    if let (Some(a), Some(b)) = (digits(before, "phoneNumber"), digits(after, "phoneNumber")) {
        if a != b {
            out.push("phoneNumber");
        }
    }
    let full = |v: &Value| Some((norm(v, "firstName")?, norm(v, "lastName")?));
    if let (Some(a), Some(b)) = (full(before), full(after)) {
        if a != b {
            out.push("name");
        }
    }
    out
}

impl Ctx<'_> {
    fn skip(&mut self, seq: u64, received_ms: i64, error: String) -> Result<(), DeskError> {
        tracing::warn!(seq, "skipping a malformed feed entry: {error}");
        let n = self
            .conn
            .prepare_cached(
                "INSERT INTO malformed (seq, received_ms, error) VALUES (?1, ?2, ?3)
                 ON CONFLICT (seq) DO NOTHING",
            )?
            .execute(params![seq as i64, received_ms, error])?;
        add_meta(self.conn, "malformed", n as u64)?;
        self.out.skipped.push(Skipped { seq, error });
        Ok(())
    }

    fn entry(
        &mut self,
        e: &Entry,
        verdicts: &mut HashMap<u64, Verdict>,
        verifier: &dyn crate::TokenVerifier,
    ) -> Result<(), DeskError> {
        match e.kind {
            EntryKind::Evidence => {
                self.evidence(e.seq, e.received_at_ms, &e.payload, verdicts, verifier)
            }
            EntryKind::Webhook => {
                let event_type = e
                    .event_type
                    .as_deref()
                    .or_else(|| e.payload.get("eventType").and_then(Value::as_str));
                match event_type {
                    Some("v2.conversation.pushed") => self.pushed(e, verdicts, verifier),
                    Some("v2.conversation.closed") => self.closed(e),
                    Some("visitor.updated") => {
                        let visitor_id = match &e.routing.visitor_id {
                            Some(v) => payload::id_text(&Value::from(v.as_str()), "visitorId")
                                .map(str::to_owned),
                            None => object(&e.payload).and_then(|o| {
                                payload::required_id(o, "visitorId").map(str::to_owned)
                            }),
                        };
                        match visitor_id {
                            Ok(v) => {
                                self.visitor(&v, e.received_at_ms)?;
                            }
                            Err(m) => {
                                self.skip(e.seq, e.received_at_ms, format!("visitor.updated: {m}"))?
                            }
                        }
                        Ok(())
                    }
                    Some(_) => {
                        self.out.ignored += 1;
                        Ok(())
                    }
                    None => self.skip(
                        e.seq,
                        e.received_at_ms,
                        "webhook without an \"eventType\"".into(),
                    ),
                }
            }
        }
    }

    fn visitor(&mut self, visitor_id: &str, at_ms: i64) -> Result<i64, DeskError> {
        Ok(self
            .conn
            .prepare_cached(
                "INSERT INTO visitors (visitor_id, first_seen_ms, last_seen_ms) VALUES (?1, ?2, ?2)
                 ON CONFLICT (visitor_id) DO UPDATE SET
                   first_seen_ms = min(first_seen_ms, excluded.first_seen_ms),
                   last_seen_ms = max(last_seen_ms, excluded.last_seen_ms)
                 RETURNING id",
            )?
            .query_row(params![visitor_id, at_ms], |r| r.get(0))?)
    }

    fn load(&mut self, conversation_id: &str) -> Result<Option<Conv>, DeskError> {
        let row = self
            .conn
            .prepare_cached(
                "SELECT c.id, c.visitor, v.visitor_id, c.channel, c.operator_id, c.machine
                 FROM conversations c JOIN visitors v ON v.id = c.visitor
                 WHERE c.conversation_id = ?1",
            )?
            .query_row([conversation_id], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, Option<i64>>(4)?,
                    r.get::<_, String>(5)?,
                ))
            })
            .optional()?;
        let Some((id, visitor, visitor_id, channel, operator_id, machine)) = row else {
            return Ok(None);
        };
        let machine: Conversation = serde_json::from_str(&machine).map_err(|e| {
            DeskError::Store(format!(
                "conversation {conversation_id}: unreadable state ({e})"
            ))
        })?;
        Ok(Some(Conv {
            id,
            conversation_id: conversation_id.to_owned(),
            visitor,
            visitor_id,
            channel,
            operator_id,
            machine,
        }))
    }

    fn create(
        &mut self,
        conversation_id: &str,
        (visitor, visitor_id): (i64, &str),
        channel: &str,
        operator_id: Option<i64>,
        opened_ms: Option<i64>,
        at_ms: i64,
    ) -> Result<Conv, DeskError> {
        let machine = Conversation::new(channel, self.lifetime);
        let view = StateView::of(&machine);
        let source = VisitorSource::of_channel(channel).map(VisitorSource::code);
        let json = serde_json::to_string(&machine).unwrap_or_default();
        let id: i64 = self
            .conn
            .prepare_cached(
                "INSERT INTO conversations (conversation_id, visitor, channel, operator_id, source,
                   opened_ms, state, auth_state, machine)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8) RETURNING id",
            )?
            .query_row(
                params![
                    conversation_id,
                    visitor,
                    channel,
                    operator_id,
                    source,
                    opened_ms,
                    view.state.code(),
                    json
                ],
                |r| r.get(0),
            )?;
        let conv = Conv {
            id,
            conversation_id: conversation_id.to_owned(),
            visitor,
            visitor_id: visitor_id.to_owned(),
            channel: channel.to_owned(),
            operator_id,
            machine,
        };
        self.transition(&conv, &view, at_ms)?;
        self.change(&conv, &view, at_ms, None, None);
        Ok(conv)
    }

    fn transition(&mut self, conv: &Conv, view: &StateView, at_ms: i64) -> Result<(), DeskError> {
        let seq = (self.change_seq > 0).then_some(self.change_seq as i64);
        self.conn
            .prepare_cached(
                "INSERT INTO transitions (conversation, seq, at_ms, state, reason, user_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                conv.id,
                seq,
                at_ms,
                view.state.code(),
                view.reason.map(ReasonCode::code),
                view.user_id
            ])?;
        audit::append(
            self.conn,
            AuditEvent {
                at_ms,
                kind: Kind::Transition,
                conversation_id: Some(&conv.conversation_id),
                visitor_id: Some(&conv.visitor_id),
                user_id: view.user_id.as_deref(),
                operator_id: conv.operator_id,
                data: json!({"seq": seq, "state": view.state, "authState": view.auth_state,
                             "reason": view.reason, "channel": conv.channel}),
            },
        )
    }

    fn change(
        &mut self,
        conv: &Conv,
        view: &StateView,
        at_ms: i64,
        alert: Option<AlertKind>,
        alert_id: Option<i64>,
    ) {
        self.out.changes.push(Change {
            seq: self.change_seq,
            at_ms,
            conversation_id: Some(conv.conversation_id.clone()),
            visitor_id: conv.visitor_id.clone(),
            channel: Some(conv.channel.clone()),
            state: Some(view.state),
            user_id: view.user_id.clone(),
            reason: view.reason,
            alert,
            alert_id,
        });
    }

    #[allow(clippy::too_many_arguments)]
    fn alert(
        &mut self,
        code: AlertKind,
        at_ms: i64,
        conversation: Option<&Conv>,
        visitor: i64,
        visitor_id: &str,
        user_id: Option<&str>,
        evidence: Value,
    ) -> Result<i64, DeskError> {
        let seq = (self.change_seq > 0).then_some(self.change_seq as i64);
        let id: i64 = self
            .conn
            .prepare_cached(
                "INSERT INTO alerts (seq, at_ms, code, conversation, visitor, user_id, evidence)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING id",
            )?
            .query_row(
                params![
                    seq,
                    at_ms,
                    code.code(),
                    conversation.map(|c| c.id),
                    visitor,
                    user_id,
                    evidence.to_string()
                ],
                |r| r.get(0),
            )?;
        // Personal data of the alert's evidence goes under "visitorData" only (erasable): the
        // signed identities compared and every user or visitor id it names. In `data` they
        // would be hashed into the chain and could never be erased.
        const PERSONAL: [&str; 9] = [
            "previous",
            "current",
            "userId",
            "previousUserId",
            "visitorId",
            "externalUserId",
            "user_id",
            "verified_user_id",
            "other_user_id",
        ];
        // Another person's userId (the identity a look-alike passes for) is not put in this
        // entry, whose erasure follows `user_id`: it gets an identity entry of its own below, so
        // erasing either person erases what names them.
        const OTHER_PERSON: [&str; 2] = ["imitator", "imitates"];
        let mut others: Vec<&str> = Vec::new();
        let mut data = json!({"seq": seq, "code": code, "alertId": id});
        if let Some(obj) = evidence.as_object() {
            let mut personal = serde_json::Map::new();
            for (k, v) in obj {
                if OTHER_PERSON.contains(&k.as_str()) {
                    // A refused userId (no identity: the entry has no user) stays with the
                    // entry, erasable with its device.
                    let own = |other: &str| {
                        Some(other) == user_id || (user_id.is_none() && k == "imitator")
                    };
                    match v.as_str() {
                        Some(other) if !own(other) => {
                            if !others.contains(&other) {
                                others.push(other);
                            }
                        }
                        _ => {
                            personal.insert(k.clone(), v.clone());
                        }
                    }
                } else if PERSONAL.contains(&k.as_str()) {
                    personal.insert(k.clone(), v.clone());
                } else {
                    data[k] = v.clone();
                }
            }
            if !personal.is_empty() {
                data["visitorData"] = Value::Object(personal);
            }
        }
        audit::append(
            self.conn,
            AuditEvent {
                at_ms,
                kind: Kind::Alert,
                conversation_id: conversation.map(|c| c.conversation_id.as_str()),
                visitor_id: Some(visitor_id),
                user_id,
                operator_id: conversation.and_then(|c| c.operator_id),
                data,
            },
        )?;
        for other in others {
            audit::append(
                self.conn,
                AuditEvent {
                    at_ms,
                    kind: Kind::Identity,
                    conversation_id: None,
                    visitor_id: None,
                    user_id: Some(other),
                    operator_id: None,
                    data: json!({"seq": seq, "link": "lookalike", "code": code, "alertId": id}),
                },
            )?;
        }
        Ok(id)
    }

    /// Applies one event to a conversation's machine and records what it did.
    fn drive(
        &mut self,
        conv: &mut Conv,
        event: &Event,
        presentation_seq: Option<u64>,
        at_ms: i64,
        evidence: Value,
    ) -> Result<(), DeskError> {
        let before_view = StateView::of(&conv.machine);
        let before = before_view.key();
        let out = conv.machine.apply(event);
        if !out.changed && out.alert.is_none() {
            return Ok(());
        }
        let view = StateView::of(&conv.machine);
        // A session extended by a newer token changes `until` only: the row is updated, but it
        // is not a transition (no timeline line, no change line).
        let significant = view.key() != before;
        if out.changed {
            let json = serde_json::to_string(&conv.machine).unwrap_or_default();
            self.conn
                .prepare_cached(
                    "UPDATE conversations SET state = ?2, auth_state = ?3, reason = ?4,
                       user_id = ?5, other_user_id = ?6, since_ms = ?7, until_ms = ?8, machine = ?9
                     WHERE id = ?1",
                )?
                .execute(params![
                    conv.id,
                    view.state.code(),
                    view.auth_state.code(),
                    view.reason.map(ReasonCode::code),
                    view.user_id,
                    view.other_user_id,
                    view.since_ms,
                    view.until_ms,
                    json
                ])?;
            if significant {
                self.transition(conv, &view, at_ms)?;
            }
        }
        if !significant && out.alert.is_none() {
            return Ok(());
        }
        let (code, alert_id) = match &out.alert {
            Some(a) => {
                let code = a.kind();
                let mut ev = serde_json::to_value(a).unwrap_or_else(|_| json!({}));
                if let (Some(m), Value::Object(extra)) = (ev.as_object_mut(), evidence) {
                    m.extend(extra);
                    if let Some(s) = presentation_seq {
                        m.insert("presentationSeq".into(), s.into());
                    }
                }
                let (visitor, visitor_id) = (conv.visitor, conv.visitor_id.clone());
                let user = view.user_id.clone();
                let id = self.alert(
                    code,
                    at_ms,
                    Some(conv),
                    visitor,
                    &visitor_id,
                    user.as_deref(),
                    ev,
                )?;
                (Some(code), Some(id))
            }
            None => (None, None),
        };
        self.change(conv, &view, at_ms, code, alert_id);
        Ok(())
    }

    /// Lapses a secured session whose end has come before an event at `at_ms` is applied, so
    /// a late token after a gap shows the lapse in between.
    fn catch_up(&mut self, conv: &mut Conv, at_ms: i64) -> Result<(), DeskError> {
        if let AuthState::Secured { until, .. } = conv.machine.state() {
            if secs(at_ms) >= *until {
                let until_ms = until.saturating_mul(1000);
                self.drive(
                    conv,
                    &Event::Tick { now: secs(at_ms) },
                    None,
                    until_ms,
                    json!({}),
                )?;
            }
        }
        Ok(())
    }

    fn pushed(
        &mut self,
        e: &Entry,
        verdicts: &mut HashMap<u64, Verdict>,
        verifier: &dyn crate::TokenVerifier,
    ) -> Result<(), DeskError> {
        let fields = (|| {
            let p = object(&e.payload)?;
            let routing = webhook_routing(e, p)?;
            let missing = |name: &str| payload::FieldError(format!("{name} is missing"));
            Ok::<_, payload::FieldError>((
                routing
                    .conversation_id
                    .ok_or_else(|| missing("conversationId"))?,
                routing.visitor_id.ok_or_else(|| missing("visitorId"))?,
                payload::required_label(p, "channel")?.to_owned(),
                routing.operator,
            ))
        })();
        let (conversation_id, visitor_id, channel, operator_id) = match fields {
            Ok(f) => f,
            Err(m) => {
                return self.skip(
                    e.seq,
                    e.received_at_ms,
                    format!("v2.conversation.pushed: {m}"),
                )
            }
        };
        let (conversation_id, visitor_id, channel) = (&*conversation_id, &*visitor_id, &*channel);
        // Within 0..=i64::MAX (the operator-id rule): stored as SQLite's signed integer.
        let operator_id = operator_id.map(|id| id as i64);
        // The visitor's earlier evidence first, as if it had arrived before the push.
        for r in &e.related {
            self.evidence(r.seq, r.received_at_ms, &r.payload, verdicts, verifier)?;
        }
        let visitor = self.visitor(visitor_id, e.received_at_ms)?;
        let mut conv = match self.load(conversation_id)? {
            Some(c) => {
                if operator_id.is_some() && operator_id != c.operator_id {
                    self.conn
                        .prepare_cached("UPDATE conversations SET operator_id = ?2 WHERE id = ?1")?
                        .execute(params![c.id, operator_id])?;
                }
                c
            }
            None => self.create(
                conversation_id,
                (visitor, visitor_id),
                channel,
                operator_id,
                Some(e.received_at_ms),
                e.received_at_ms,
            )?,
        };
        conv.operator_id = operator_id.or(conv.operator_id);
        // Pending presentations of this visitor within one session lifetime.
        let pending: Vec<(i64, u64, i64)> = self
            .conn
            .prepare_cached(
                "SELECT id, seq, received_ms FROM presentations
                 WHERE visitor = ?1 AND conversation IS NULL AND received_ms >= ?2
                   AND (named_conversation IS NULL OR named_conversation = ?3)
                 ORDER BY received_ms, seq",
            )?
            .query_map(
                params![
                    visitor,
                    e.received_at_ms
                        .saturating_sub(self.lifetime.saturating_mul(1000)),
                    conversation_id
                ],
                |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64, r.get(2)?)),
            )?
            .collect::<Result<_, _>>()?;
        for (id, seq, _) in pending {
            let facts = self.stored_facts(id)?;
            self.conn
                .prepare_cached("UPDATE presentations SET conversation = ?2 WHERE id = ?1")?
                .execute(params![id, conv.id])?;
            let _ = seq;
            self.present(&mut conv, &facts)?;
        }
        Ok(())
    }

    /// Reads back a stored presentation (for one that waited for its conversation).
    fn stored_facts(&mut self, id: i64) -> Result<PresentationFacts, DeskError> {
        let facts = self
            .conn
            .prepare_cached(
                "SELECT seq, received_ms, verdict, reason, user_id, visitor_data, token_sha256,
                   domain, device, app
                 FROM presentations WHERE id = ?1",
            )?
            .query_row([id], |r| {
                let verified = r.get::<_, String>(2)? == "verified";
                let vd: Option<String> = r.get(5)?;
                let vd: Option<Value> = vd.and_then(|s| serde_json::from_str(&s).ok());
                let user_id: Option<String> = r.get(4)?;
                let domain: Option<String> = r.get(7)?;
                let app: Option<String> = r.get(9)?;
                Ok(PresentationFacts {
                    seq: r.get::<_, i64>(0)? as u64,
                    received_ms: r.get(1)?,
                    verified: match (verified, user_id) {
                        (true, Some(user_id)) => Some(VerifiedFacts {
                            user_id,
                            name: vd.as_ref().and_then(display_name),
                        }),
                        _ => None,
                    },
                    reason: r
                        .get::<_, Option<String>>(3)?
                        .and_then(|c| lockdesk_verify::Reason::from_code(&c)),
                    token_sha256: r.get(6)?,
                    source: VisitorSource::of_evidence(app.is_some(), domain.is_some()),
                    domain,
                    device: r.get(8)?,
                    app,
                })
            })?;
        Ok(facts)
    }

    /// A presentation's effect on one conversation.
    fn present(&mut self, conv: &mut Conv, f: &PresentationFacts) -> Result<(), DeskError> {
        self.catch_up(conv, f.received_ms)?;
        let at = secs(f.received_ms);
        let evidence = json!({"tokenSha256": f.token_sha256});
        match (&f.verified, f.reason) {
            (Some(v), _) => {
                let event = Event::Verified {
                    user_id: v.user_id.clone(),
                    at,
                };
                self.drive(conv, &event, Some(f.seq), f.received_ms, evidence)?;
            }
            (None, Some(reason)) => {
                let event = Event::Rejected { reason, at };
                self.drive(conv, &event, Some(f.seq), f.received_ms, evidence)?;
            }
            (None, None) => {}
        }
        let verified_ms = f.verified.as_ref().map(|_| f.received_ms);
        self.conn
            .prepare_cached(
                "UPDATE conversations SET
                   name = coalesce(?2, name),
                   first_verified_ms = coalesce(first_verified_ms, ?3),
                   last_verified_ms = CASE WHEN ?3 IS NULL THEN last_verified_ms
                     ELSE max(coalesce(last_verified_ms, ?3), ?3) END,
                   source = coalesce(?4, source), domain = coalesce(?5, domain),
                   device = coalesce(?6, device), app = coalesce(?7, app)
                 WHERE id = ?1",
            )?
            .execute(params![
                conv.id,
                f.verified.as_ref().and_then(|v| v.name.clone()),
                verified_ms,
                f.source.map(VisitorSource::code),
                f.domain,
                f.device,
                f.app
            ])?;
        Ok(())
    }

    fn evidence(
        &mut self,
        seq: u64,
        received_ms: i64,
        payload: &Value,
        verdicts: &mut HashMap<u64, Verdict>,
        verifier: &dyn crate::TokenVerifier,
    ) -> Result<(), DeskError> {
        let exists = self
            .conn
            .prepare_cached("SELECT 1 FROM presentations WHERE seq = ?1")?
            .exists([seq as i64])?;
        if exists {
            return Ok(());
        }
        // The rules the gateway applied when it accepted the evidence (the shared model).
        let ev = match Evidence::read(payload) {
            Ok(ev) => ev,
            Err(e) => return self.skip(seq, received_ms, format!("evidence: {e}")),
        };
        let verdict = match verdicts.remove(&seq) {
            Some(v) => v,
            None => verifier.verify(ev.token.as_bytes(), secs(received_ms)),
        };
        let token_sha256 = hex::encode(Sha256::digest(ev.token.as_bytes()));
        let src = ev.source.clone().unwrap_or_default();
        let source = VisitorSource::of_evidence(src.app.is_some(), src.domain.is_some());
        let visitor = self.visitor(&ev.visitor_id, received_ms)?;

        // Which conversations it acts on.
        let mut targets: Vec<Conv> = Vec::new();
        match &ev.conversation_id {
            Some(cid) => {
                if let Some(c) = self.load(cid)? {
                    targets.push(c);
                }
            }
            None => {
                let open: Vec<String> = self
                    .conn
                    .prepare_cached(
                        "SELECT conversation_id FROM conversations
                         WHERE visitor = ?1 AND closed_ms IS NULL ORDER BY id",
                    )?
                    .query_map([visitor], |r| r.get(0))?
                    .collect::<Result<_, _>>()?;
                for cid in open {
                    if let Some(c) = self.load(&cid)? {
                        targets.push(c);
                    }
                }
            }
        }

        let (verified, reason, detail): (Option<&Verified>, _, _) = match &verdict {
            Verdict::Verified(v) => (Some(v), None, None),
            Verdict::Rejected(r) => (None, Some(r.reason), Some(r.detail.clone())),
        };
        let visitor_data = verified.and_then(|v| v.visitor_data.as_ref().map(|d| d.to_json()));
        self.conn
            .prepare_cached(
                "INSERT INTO presentations (seq, received_ms, presented_at, visitor, conversation,
                   named_conversation, verdict, reason, detail, user_id, visitor_data, issuer,
                   expires_ms, signing_key, decryption_key, token_sha256, domain, device, app)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
                   ?17, ?18, ?19)",
            )?
            .execute(params![
                seq as i64,
                received_ms,
                ev.presented_at,
                visitor,
                targets.first().map(|c| c.id),
                ev.conversation_id,
                if verified.is_some() {
                    "verified"
                } else {
                    "rejected"
                },
                reason.map(|r| r.code()),
                detail,
                verified.map(|v| v.user_id.as_str()),
                visitor_data.as_ref().map(Value::to_string),
                verified.map(|v| v.issuer.as_str()),
                verified.map(|v| v.expires_at.saturating_mul(1000)),
                verified.map(|v| v.signing_key.as_str()),
                verified.and_then(|v| v.decryption_key.as_deref()),
                token_sha256,
                src.domain,
                src.device,
                src.app,
            ])?;
        let first = targets.first();
        audit::append(
            self.conn,
            AuditEvent {
                at_ms: received_ms,
                kind: Kind::Verdict,
                conversation_id: first
                    .map(|c| c.conversation_id.as_str())
                    .or(ev.conversation_id.as_deref()),
                visitor_id: Some(&ev.visitor_id),
                user_id: verified.map(|v| v.user_id.as_str()),
                operator_id: first.and_then(|c| c.operator_id),
                data: json!({
                    "seq": seq,
                    "verdict": if verified.is_some() { "verified" } else { "rejected" },
                    "reason": reason.map(|r| r.code()),
                    "issuer": verified.map(|v| v.issuer.as_str()),
                    "expiresAt": verified.map(|v| v.expires_at),
                    "signingKey": verified.map(|v| v.signing_key.as_str()),
                    "decryptionKey": verified.and_then(|v| v.decryption_key.as_deref()),
                    "tokenSha256": token_sha256,
                    "source": {"domain": src.domain, "device": src.device, "app": src.app},
                    "visitorData": visitor_data,
                }),
            },
        )?;

        let facts = PresentationFacts {
            seq,
            received_ms,
            verified: verified.map(|v| VerifiedFacts {
                user_id: v.user_id.clone(),
                name: visitor_data.as_ref().and_then(display_name),
            }),
            reason,
            token_sha256: token_sha256.clone(),
            source,
            domain: src.domain.clone(),
            device: src.device.clone(),
            app: src.app.clone(),
        };
        let mut device_alerts: Vec<(AlertKind, Option<String>, Value)> = Vec::new();
        if let Some(v) = verified {
            device_alerts = self
                .identity(visitor, &ev.visitor_id, v, &visitor_data, &facts)?
                .into_iter()
                .map(|(code, user, evidence)| (code, Some(user), evidence))
                .collect();
        }
        // A refused userId the brand signed (bidi controls, invisible characters) that would
        // show as a known identity: an attempt to pass for it, named though it got no padlock.
        if let Verdict::Rejected(r) = &verdict {
            if let Some(claim) = r.signed_user_id.as_deref() {
                if let Some(known) = lookalike::known_lookalike(self.conn, claim)? {
                    let mut evidence = lookalike::refused_evidence(claim, &known);
                    evidence["visitorId"] = ev.visitor_id.clone().into();
                    evidence["presentationSeq"] = seq.into();
                    evidence["tokenSha256"] = token_sha256.clone().into();
                    device_alerts.push((AlertKind::LookalikeUserId, None, evidence));
                }
            }
        }
        for conv in &mut targets {
            self.present(conv, &facts)?;
        }
        // Device-level alerts, reported on the conversation the evidence acted on, if any.
        for (code, user_id, evidence) in device_alerts {
            let conv = targets.first();
            let id = self.alert(
                code,
                received_ms,
                conv,
                visitor,
                &ev.visitor_id,
                user_id.as_deref(),
                evidence,
            )?;
            match conv {
                Some(c) => {
                    let view = StateView::of(&c.machine);
                    self.change(c, &view, received_ms, Some(code), Some(id));
                }
                None => self.out.changes.push(Change {
                    seq: self.change_seq,
                    at_ms: received_ms,
                    conversation_id: None,
                    visitor_id: ev.visitor_id.clone(),
                    channel: None,
                    state: None,
                    user_id,
                    reason: None,
                    alert: Some(code),
                    alert_id: Some(id),
                }),
            }
        }
        Ok(())
    }

    /// Records a verified identity and its link to the device; returns the device-level
    /// alerts (shared device, reused userId) to raise.
    fn identity(
        &mut self,
        visitor: i64,
        visitor_id: &str,
        v: &Verified,
        visitor_data: &Option<Value>,
        f: &PresentationFacts,
    ) -> Result<Vec<(AlertKind, String, Value)>, DeskError> {
        let at = f.received_ms;
        let mut alerts = Vec::new();
        let previous_user: Option<String> = self
            .conn
            .prepare_cached("SELECT last_user_id FROM visitors WHERE id = ?1")?
            .query_row([visitor], |r| r.get(0))?;
        let same_user = previous_user.as_deref() == Some(v.user_id.as_str());
        if let Some(prev) = previous_user.filter(|p| *p != v.user_id) {
            alerts.push((
                AlertKind::SharedDevice,
                v.user_id.clone(),
                json!({"visitorId": visitor_id, "previousUserId": prev, "userId": v.user_id,
                       "presentationSeq": f.seq, "tokenSha256": f.token_sha256}),
            ));
        }
        if !same_user {
            self.conn
                .prepare_cached("UPDATE visitors SET last_user_id = ?2 WHERE id = ?1")?
                .execute(params![visitor, v.user_id])?;
        }

        let existing: Option<(i64, Option<String>)> = self
            .conn
            .prepare_cached("SELECT id, visitor_data FROM identities WHERE user_id = ?1")?
            .query_row([&v.user_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let vd_text = visitor_data.as_ref().map(Value::to_string);
        let identity = match existing {
            Some((id, before)) => {
                let before: Option<Value> = before.and_then(|s| serde_json::from_str(&s).ok());
                if let (Some(b), Some(a)) = (&before, visitor_data) {
                    let differ = differing_fields(b, a);
                    if !differ.is_empty() {
                        alerts.push((
                            AlertKind::ReusedUserId,
                            v.user_id.clone(),
                            json!({"userId": v.user_id, "differs": differ, "previous": b,
                                   "current": a, "visitorId": visitor_id,
                                   "presentationSeq": f.seq, "tokenSha256": f.token_sha256}),
                        ));
                    }
                }
                self.conn
                    .prepare_cached(
                        "UPDATE identities SET last_seen_ms = max(last_seen_ms, ?2),
                           visitor_data = coalesce(?3, visitor_data)
                         WHERE id = ?1",
                    )?
                    .execute(params![id, at, vd_text])?;
                id
            }
            None => {
                // A new identity: does it look like one the desk knows (one indexed lookup)?
                let found = lookalike::check(self.conn, &v.user_id)?;
                let counterpart = found.counterpart.as_ref();
                if let Some(c) = counterpart.filter(|c| !c.marked) {
                    // Both directions: the known identity is marked as well.
                    self.conn
                        .prepare_cached(
                            "UPDATE identities SET lookalike_of = ?2 WHERE user_id = ?1",
                        )?
                        .execute(params![c.user_id, v.user_id])?;
                }
                if let Some(mut evidence) = found.evidence(&v.user_id) {
                    evidence["visitorId"] = visitor_id.into();
                    evidence["presentationSeq"] = f.seq.into();
                    evidence["tokenSha256"] = f.token_sha256.clone().into();
                    alerts.push((AlertKind::LookalikeUserId, v.user_id.clone(), evidence));
                }
                self.conn
                    .prepare_cached(
                        "INSERT INTO identities (user_id, visitor_data, first_seen_ms,
                           last_seen_ms, skeleton, lookalike_of, mixed_script)
                         VALUES (?1, ?2, ?3, ?3, ?4, ?5, ?6) RETURNING id",
                    )?
                    .query_row(
                        params![
                            v.user_id,
                            vd_text,
                            at,
                            found.skeleton,
                            counterpart.map(|c| c.user_id.as_str()),
                            found.mixed_script
                        ],
                        |r| r.get(0),
                    )?
            }
        };
        let new_link = self
            .conn
            .prepare_cached(
                "INSERT INTO identity_visitors (identity, visitor, first_seen_ms, last_seen_ms)
                 VALUES (?1, ?2, ?3, ?3) ON CONFLICT (identity, visitor) DO NOTHING",
            )?
            .execute(params![identity, visitor, at])?
            > 0;
        if new_link {
            audit::append(
                self.conn,
                AuditEvent {
                    at_ms: at,
                    kind: Kind::Identity,
                    conversation_id: None,
                    visitor_id: Some(visitor_id),
                    user_id: Some(&v.user_id),
                    operator_id: None,
                    data: json!({"seq": f.seq, "link": "visitor"}),
                },
            )?;
        } else {
            self.conn
                .prepare_cached(
                    "UPDATE identity_visitors SET first_seen_ms = min(first_seen_ms, ?3),
                       last_seen_ms = max(last_seen_ms, ?3)
                     WHERE identity = ?1 AND visitor = ?2",
                )?
                .execute(params![identity, visitor, at])?;
        }
        Ok(alerts)
    }

    fn closed(&mut self, e: &Entry) -> Result<(), DeskError> {
        let read = (|| {
            let p = object(&e.payload)?;
            let routing = webhook_routing(e, p)?;
            let conversation_id = routing
                .conversation_id
                .clone()
                .ok_or_else(|| payload::FieldError("conversationId is missing".into()))?;
            Ok::<_, payload::FieldError>((p, routing, conversation_id))
        })();
        let (p, routing, conversation_id) = match read {
            Ok(r) => r,
            Err(m) => {
                return self.skip(
                    e.seq,
                    e.received_at_ms,
                    format!("v2.conversation.closed: {m}"),
                )
            }
        };
        let conversation_id = conversation_id.as_str();
        let mut conv = match self.load(conversation_id)? {
            Some(c) => c,
            None => {
                // Closed without a push this desk saw: keep it for history.
                let fields = (|| {
                    let visitor_id = routing
                        .visitor_id
                        .clone()
                        .ok_or_else(|| payload::FieldError("visitorId is missing".into()))?;
                    Ok::<_, payload::FieldError>((
                        visitor_id,
                        payload::required_label(p, "channel")?,
                    ))
                })();
                let (visitor_id, channel) = match fields {
                    Ok(f) => f,
                    Err(m) => {
                        return self.skip(
                            e.seq,
                            e.received_at_ms,
                            format!("v2.conversation.closed of an unknown conversation: {m}"),
                        )
                    }
                };
                let visitor_id = visitor_id.as_str();
                let visitor = self.visitor(visitor_id, e.received_at_ms)?;
                self.create(
                    conversation_id,
                    (visitor, visitor_id),
                    channel,
                    None,
                    None,
                    e.received_at_ms,
                )?
            }
        };
        self.close(&mut conv, e.received_at_ms)
    }

    fn close(&mut self, conv: &mut Conv, at_ms: i64) -> Result<(), DeskError> {
        if matches!(conv.machine.state(), AuthState::Closed { .. }) {
            return Ok(());
        }
        self.catch_up(conv, at_ms)?;
        self.drive(
            conv,
            &Event::Closed { at: secs(at_ms) },
            None,
            at_ms,
            json!({}),
        )?;
        self.conn
            .prepare_cached("UPDATE conversations SET closed_ms = ?2 WHERE id = ?1")?
            .execute(params![conv.id, at_ms])?;
        Ok(())
    }

    fn backfill_one(&mut self, r: &ClosedConversation, now_ms: i64) -> Result<(), DeskError> {
        let _ = now_ms;
        let mut conv = match self.load(&r.conversation_id)? {
            Some(c) => c,
            None => {
                let visitor = self.visitor(&r.visitor_id, r.created_at_ms)?;
                self.create(
                    &r.conversation_id,
                    (visitor, &r.visitor_id),
                    &r.channel,
                    None,
                    Some(r.created_at_ms),
                    r.created_at_ms,
                )?
            }
        };
        self.conn
            .prepare_cached(
                "UPDATE conversations SET opened_ms = coalesce(opened_ms, ?2),
                   platform_user_id = coalesce(?3, platform_user_id)
                 WHERE id = ?1",
            )?
            .execute(params![conv.id, r.created_at_ms, r.external_user_id])?;
        audit::append(
            self.conn,
            AuditEvent {
                at_ms: r.closed_at_ms,
                kind: Kind::Backfill,
                conversation_id: Some(&r.conversation_id),
                visitor_id: Some(&r.visitor_id),
                user_id: r.external_user_id.as_deref(),
                operator_id: None,
                data: json!({"channel": r.channel, "createdAtMs": r.created_at_ms,
                             "closedAtMs": r.closed_at_ms}),
            },
        )?;
        self.close(&mut conv, r.closed_at_ms)?;
        if let Some(external) = &r.external_user_id {
            let event = Event::PlatformUserId {
                user_id: external.clone(),
                at: secs(r.closed_at_ms),
            };
            self.drive(
                &mut conv,
                &event,
                None,
                r.closed_at_ms,
                json!({"externalUserId": external}),
            )?;
        }
        Ok(())
    }
}
