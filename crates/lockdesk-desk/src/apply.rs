//! Applying feed entries, ticks and backfilled records to the store, inside one transaction
//! each. This file drives a batch (verification in parallel first, then one write transaction,
//! the cursor and the counters); each concern of applying one entry has its own module:
//!
//! - [`routing`]: which conversation an entry acts on. A webhook acts on its conversation;
//!   evidence acts on the conversation it names, else on its visitor's open conversations,
//!   else waits ("pending") for the visitor's next push (evidence usually arrives before the
//!   conversation does). Evidence bundled with a push (`related`) is applied first, as if it
//!   had arrived before the push.
//! - [`conversation`]: a conversation's life (created, driven by events, lapsed, closed,
//!   backfilled) through `lockdesk-conversation`'s state machine.
//! - [`presentation`]: a token presentation (verdict, stored row, effect on its conversations).
//! - [`identity`]: verified userIds, their devices and the device-level alerts (shared device,
//!   reused userId, look-alike).
//! - [`record`]: what is recorded of it all: transitions, change lines, alerts, and every audit
//!   entry (one builder, [`record::AuditFact`]).

use std::collections::HashMap;

use lockdesk_feed::{Entry, EntryKind, MAX_TIME_MS, MIN_TIME_MS};
use lockdesk_verify::Verdict;
use rayon::prelude::*;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde_json::Value;

use crate::model::{Applied, Change, ClosedConversation, Skipped};
use crate::{Desk, DeskError, TokenVerifier};

mod conversation;
mod identity;
mod presentation;
mod record;
mod routing;

pub(crate) use presentation::display_name;

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

/// One transaction's applying context: the connection (inside the transaction), the session
/// lifetime, and what has been applied so far. Its methods are spread over the concern modules.
struct Ctx<'a> {
    conn: &'a Connection,
    lifetime: i64,
    out: Applied,
    /// The seq a change is reported under (the entry being applied, or the cursor).
    change_seq: u64,
}

impl<'a> Ctx<'a> {
    fn new(conn: &'a Connection, lifetime: i64, change_seq: u64) -> Ctx<'a> {
        Ctx {
            conn,
            lifetime,
            out: Applied::default(),
            change_seq,
        }
    }
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
    let mut ctx = Ctx::new(&tx, lifetime, cursor);
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
    in_one_transaction(desk, |ctx| ctx.tick(now_ms))
}

pub(crate) fn backfill(
    desk: &mut Desk,
    records: &[ClosedConversation],
    now_ms: i64,
) -> Result<Vec<Change>, DeskError> {
    let _ = now_ms;
    in_one_transaction(desk, |ctx| {
        for r in records {
            ctx.backfill_one(r)?;
        }
        Ok(())
    })
}

/// Runs `work` in one immediate transaction, at the desk's cursor (which it does not move), and
/// returns the changes it made once committed.
fn in_one_transaction(
    desk: &mut Desk,
    work: impl FnOnce(&mut Ctx<'_>) -> Result<(), DeskError>,
) -> Result<Vec<Change>, DeskError> {
    let lifetime = desk.config.session_lifetime_secs;
    let cursor = desk.cursor;
    let tx = desk
        .conn
        .transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut ctx = Ctx::new(&tx, lifetime, cursor);
    work(&mut ctx)?;
    let changes = ctx.out.changes;
    tx.commit()?;
    Ok(changes)
}

impl Ctx<'_> {
    /// Records a malformed entry (counted, listed in [`Applied::skipped`]); the batch goes on.
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

    /// One feed entry, by kind and event type.
    fn entry(
        &mut self,
        e: &Entry,
        verdicts: &mut HashMap<u64, Verdict>,
        verifier: &dyn TokenVerifier,
    ) -> Result<(), DeskError> {
        match e.kind {
            EntryKind::Evidence => {
                self.evidence(e.seq, e.received_at_ms, &e.payload, verdicts, verifier)
            }
            EntryKind::Webhook => match routing::event_type(e) {
                Some("v2.conversation.pushed") => self.pushed(e, verdicts, verifier),
                Some("v2.conversation.closed") => self.closed(e),
                Some("visitor.updated") => match routing::updated_visitor(e) {
                    Ok(v) => {
                        self.visitor(&v, e.received_at_ms)?;
                        Ok(())
                    }
                    Err(m) => self.skip(e.seq, e.received_at_ms, format!("visitor.updated: {m}")),
                },
                Some(_) => {
                    self.out.ignored += 1;
                    Ok(())
                }
                None => self.skip(
                    e.seq,
                    e.received_at_ms,
                    "webhook without an \"eventType\"".into(),
                ),
            },
        }
    }
}

/// A store and a context for the concern modules' unit tests.
#[cfg(test)]
mod testing {
    use super::*;

    /// A fresh, migrated store in memory.
    pub(super) fn store() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::store::migrate(&mut conn).unwrap();
        conn
    }

    /// A context on `conn` with a one-hour session lifetime, reporting changes under seq 7.
    pub(super) fn ctx(conn: &Connection) -> Ctx<'_> {
        Ctx::new(conn, 3600, 7)
    }

    /// A chat conversation `id` of visitor `v-1`, opened at 0, with no operator.
    pub(super) fn chat(ctx: &mut Ctx<'_>, id: &str) -> conversation::Conv {
        let v = ctx.visitor("v-1", 0).unwrap();
        ctx.create(id, (v, "v-1"), "CHAT", None, Some(0), 0)
            .unwrap()
    }

    /// A verified JWE token of `user` from the issuer `brand`, valid until 2096.
    pub(super) fn verified(user: &str) -> lockdesk_verify::Verified {
        lockdesk_verify::Verified {
            format: lockdesk_verify::Format::Jwe,
            user_id: user.into(),
            visitor_data: None,
            issuer: "brand".into(),
            expires_at: 4_000_000_000,
            issued_at: None,
            not_before: None,
            signing_key: "sk".into(),
            decryption_key: None,
            warnings: Vec::new(),
        }
    }

    /// One audit entry as read back: kind, public data, visitorData, userId, operator id.
    pub(super) type Logged = (String, Value, Option<Value>, Option<String>, Option<u64>);

    /// The audit entries, in order (the chain verified on the way).
    pub(super) fn audit(conn: &Connection) -> Vec<Logged> {
        let mut out = Vec::new();
        let json = |s: &str| serde_json::from_str::<Value>(s).unwrap();
        lockdesk_audit::verify_visiting(conn, &mut |_| {}, &mut |e| {
            out.push((
                e.kind.clone(),
                json(&e.data),
                e.visitor_data.as_deref().map(json),
                e.user_id.clone(),
                e.operator_id,
            ));
        })
        .unwrap();
        out
    }
}
