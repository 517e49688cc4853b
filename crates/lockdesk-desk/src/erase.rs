//! Erasure (GDPR) and retention of the desk's own tables, then of the audit log in the same
//! file, then a scrub of the file so the removed bytes are gone from disk.
//!
//! Order (both operations): check the audit chain first (a broken log is refused before
//! anything changes), change the desk's tables in one `BEGIN IMMEDIATE` transaction, then let
//! `lockdesk-audit` change its own tables (its [`lockdesk_audit::erase_user`] /
//! [`lockdesk_audit::purge`] run their own transaction and then `VACUUM` with `secure_delete`
//! and truncate the WAL). When the audit log had nothing to change (so it did not scrub) but
//! the desk did, the file is scrubbed here the same way. So a VACUUM always runs after both.
//!
//! What erasing a userId does to the desk's tables:
//! - its identity row (with the latest signed visitorData) and its device links are deleted;
//! - presentations it made keep their verdict, key and times, with `user_id` = [`TOMBSTONE`]
//!   and no visitorData;
//! - conversations, transitions and alerts stay (they are the advisors' and other people's
//!   history and the counts), with the userId replaced by [`TOMBSTONE`] in every column and in
//!   the stored state machine; a conversation's display name is recomputed from the remaining
//!   (other people's) valid tokens, else removed;
//! - alerts' evidence: the userId becomes [`TOMBSTONE`]; the signed visitorData a
//!   `reused_user_id` alert compares (`previous`, `current`) is replaced by [`TOMBSTONE`]; a
//!   `lookalike_user_id` alert names the tombstone as `imitates` / `imitator`, and an identity
//!   that looked like the person keeps its marker with `lookalike_of` = [`TOMBSTONE`];
//! - the person's devices (iAdvize visitor ids) that no other identity is linked to are
//!   renamed `erased:<row id>` (the audit erasure removes those visitor ids too); a device
//!   shared with another identity keeps its id, which is that person's data as well. Later
//!   events from a renamed device start a new device record.

use std::collections::HashSet;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde::Serialize;
use serde_json::Value;

use crate::apply::display_name;
use crate::{Desk, DeskError};

/// What replaces an erased userId (and erased visitorData in alert evidence) where the row
/// must stay.
pub const TOMBSTONE: &str = "erased";

/// What [`Desk::erase_user`] changed in the desk's tables (counts only: never whose).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeskErasure {
    /// Identity rows deleted (0 or 1).
    pub identities: u64,
    /// Identity-to-device links deleted.
    pub identity_links: u64,
    /// Devices (visitor ids) renamed to `erased:<row id>`.
    pub visitors: u64,
    /// Conversations whose userId, name or state machine named the person.
    pub conversations: u64,
    pub presentations: u64,
    pub transitions: u64,
    pub alerts: u64,
}

impl DeskErasure {
    /// Rows changed in all.
    pub fn total(&self) -> u64 {
        self.identities
            + self.identity_links
            + self.visitors
            + self.conversations
            + self.presentations
            + self.transitions
            + self.alerts
    }
}

/// The result of [`Desk::erase_user`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ErasureReport {
    pub desk: DeskErasure,
    pub audit: lockdesk_audit::ErasureReport,
    /// False when another connection (a running desk) kept the write-ahead log from being
    /// truncated: the bytes are gone from the main file and leave the WAL at its next
    /// checkpoint.
    pub file_scrubbed: bool,
}

/// What [`Desk::purge_before`] removed from the desk's tables.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeskPurge {
    /// Closed conversations (closed before the cutoff), with everything below.
    pub conversations: u64,
    /// Their presentations, and unattached ones received before the cutoff.
    pub presentations: u64,
    pub transitions: u64,
    /// Their alerts, and conversation-less ones raised before the cutoff.
    pub alerts: u64,
    /// Devices left with nothing and last seen before the cutoff.
    pub visitors: u64,
    pub identity_links: u64,
    /// Identities left without a device and last seen before the cutoff.
    pub identities: u64,
    /// Malformed-entry records received before the cutoff.
    pub malformed: u64,
}

impl DeskPurge {
    pub fn total(&self) -> u64 {
        self.conversations
            + self.presentations
            + self.transitions
            + self.alerts
            + self.visitors
            + self.identity_links
            + self.identities
            + self.malformed
    }
}

/// The result of [`Desk::purge_before`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PurgeReport {
    pub desk: DeskPurge,
    pub audit: lockdesk_audit::PurgeReport,
    pub file_scrubbed: bool,
}

fn n(x: usize) -> u64 {
    u64::try_from(x).unwrap_or(u64::MAX)
}

/// Refuse to touch anything when the audit chain is broken (it would destroy the evidence).
fn check_chain(conn: &Connection) -> Result<(), DeskError> {
    lockdesk_audit::verify(conn).map_err(lockdesk_audit::RetentionError::from)?;
    Ok(())
}

/// `VACUUM` with `secure_delete`, then truncate the WAL (which still holds old page images).
/// False when another connection kept the WAL from being truncated.
fn scrub(conn: &Connection) -> Result<bool, DeskError> {
    conn.pragma_update(None, "secure_delete", "ON")?;
    conn.execute_batch("VACUUM")?;
    let busy: i64 = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
    Ok(busy == 0)
}

/// Replaces every string equal to one of `erase` with [`TOMBSTONE`], at any depth.
fn scrub_strings(v: &mut Value, erase: &HashSet<String>) {
    match v {
        Value::String(s) if erase.contains(s.as_str()) => *s = TOMBSTONE.to_owned(),
        Value::Array(a) => a.iter_mut().for_each(|x| scrub_strings(x, erase)),
        Value::Object(m) => m.values_mut().for_each(|x| scrub_strings(x, erase)),
        _ => {}
    }
}

/// How `s` appears inside stored JSON text (for a quick `instr` pre-filter).
fn json_inner(s: &str) -> String {
    let quoted = serde_json::to_string(s).unwrap_or_default();
    quoted
        .strip_prefix('"')
        .and_then(|q| q.strip_suffix('"'))
        .unwrap_or(&quoted)
        .to_owned()
}

fn ids(conn: &Connection, sql: &str, p: impl rusqlite::Params) -> Result<Vec<i64>, DeskError> {
    let mut stmt = conn.prepare(sql)?;
    let rows = stmt.query_map(p, |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The desk's part of an erasure, inside the caller's transaction.
fn erase_desk(conn: &Connection, user_id: &str) -> Result<DeskErasure, DeskError> {
    let mut out = DeskErasure::default();
    let identity: Option<i64> = conn
        .query_row(
            "SELECT id FROM identities WHERE user_id = ?1",
            [user_id],
            |r| r.get(0),
        )
        .optional()?;

    // The person's devices: linked by a valid token, or carrying rows that name them.
    let devices = ids(
        conn,
        "SELECT visitor FROM identity_visitors WHERE identity = ?2
         UNION SELECT visitor FROM conversations
               WHERE user_id = ?1 OR other_user_id = ?1 OR platform_user_id = ?1
         UNION SELECT visitor FROM presentations WHERE user_id = ?1
         UNION SELECT visitor FROM alerts WHERE user_id = ?1 AND visitor IS NOT NULL",
        params![user_id, identity],
    )?;

    if let Some(id) = identity {
        out.identity_links =
            n(conn.execute("DELETE FROM identity_visitors WHERE identity = ?1", [id])?);
        out.identities = n(conn.execute("DELETE FROM identities WHERE id = ?1", [id])?);
    }

    // Devices no other identity is linked to are the person's alone: their ids go too.
    let mut erase: HashSet<String> = HashSet::new();
    erase.insert(user_id.to_owned());
    let mut own_devices: Vec<i64> = Vec::new();
    for v in devices {
        let shared = conn
            .prepare_cached("SELECT 1 FROM identity_visitors WHERE visitor = ?1 LIMIT 1")?
            .exists([v])?;
        if !shared {
            let vid: String =
                conn.query_row("SELECT visitor_id FROM visitors WHERE id = ?1", [v], |r| {
                    r.get(0)
                })?;
            erase.insert(vid);
            own_devices.push(v);
        }
    }
    let needles: Vec<String> = erase.iter().map(|s| json_inner(s)).collect();
    let mentions = |text: &str| needles.iter().any(|nd| text.contains(nd.as_str()));

    // Conversations: every column naming the person, the state machine, the display name.
    let convs = ids(
        conn,
        "SELECT id FROM conversations
          WHERE user_id = ?1 OR other_user_id = ?1 OR platform_user_id = ?1
             OR instr(machine, ?2) > 0
             OR id IN (SELECT conversation FROM presentations
                        WHERE user_id = ?1 AND conversation IS NOT NULL)",
        params![user_id, json_inner(user_id)],
    )?;
    for c in &convs {
        let machine: String = conn.query_row(
            "SELECT machine FROM conversations WHERE id = ?1",
            [c],
            |r| r.get(0),
        )?;
        let machine = match serde_json::from_str::<Value>(&machine) {
            Ok(mut m) => {
                scrub_strings(&mut m, &erase);
                m.to_string()
            }
            // Unreadable: no state to keep, and it may hold the id.
            Err(_) => machine.replace(&json_inner(user_id), TOMBSTONE),
        };
        // The latest valid token of someone else in this conversation names it, if any.
        let others: Vec<Option<String>> = conn
            .prepare(
                "SELECT visitor_data FROM presentations
                  WHERE conversation = ?1 AND verdict = 'verified' AND user_id IS NOT ?2
                    AND user_id IS NOT ?3 AND visitor_data IS NOT NULL
                  ORDER BY received_ms DESC, seq DESC",
            )?
            .query_map(params![c, user_id, TOMBSTONE], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let name = others
            .iter()
            .flatten()
            .filter_map(|s| serde_json::from_str::<Value>(s).ok())
            .find_map(|vd| display_name(&vd));
        out.conversations += n(conn.execute(
            "UPDATE conversations SET
               user_id = CASE WHEN user_id = ?2 THEN ?3 ELSE user_id END,
               other_user_id = CASE WHEN other_user_id = ?2 THEN ?3 ELSE other_user_id END,
               platform_user_id = CASE WHEN platform_user_id = ?2 THEN ?3 ELSE platform_user_id END,
               name = ?4, machine = ?5
             WHERE id = ?1",
            params![c, user_id, TOMBSTONE, name, machine],
        )?);
    }

    out.presentations = n(conn.execute(
        "UPDATE presentations SET user_id = ?2, visitor_data = NULL WHERE user_id = ?1",
        params![user_id, TOMBSTONE],
    )?);
    out.transitions = n(conn.execute(
        "UPDATE transitions SET user_id = ?2 WHERE user_id = ?1",
        params![user_id, TOMBSTONE],
    )?);

    // Alerts: about the person, or whose evidence mentions the person or their own devices.
    let mut alert_ids: HashSet<i64> = ids(
        conn,
        "SELECT id FROM alerts WHERE user_id = ?1 OR instr(evidence, ?2) > 0",
        params![user_id, json_inner(user_id)],
    )?
    .into_iter()
    .collect();
    for v in &own_devices {
        alert_ids.extend(ids(conn, "SELECT id FROM alerts WHERE visitor = ?1", [v])?);
    }
    for a in alert_ids {
        let (about, evidence): (Option<String>, String) = conn.query_row(
            "SELECT user_id, evidence FROM alerts WHERE id = ?1",
            [a],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let about_them = about.as_deref() == Some(user_id);
        let evidence = match serde_json::from_str::<Value>(&evidence) {
            Ok(mut ev) => {
                let names_them = ev.get("userId").and_then(Value::as_str) == Some(user_id);
                if let Some(m) = ev.as_object_mut() {
                    if about_them || names_them {
                        // The signed visitorData a reused-userId alert compares.
                        for k in ["previous", "current"] {
                            if let Some(x) = m.get_mut(k) {
                                *x = Value::String(TOMBSTONE.to_owned());
                            }
                        }
                    }
                }
                scrub_strings(&mut ev, &erase);
                ev.to_string()
            }
            Err(_) if mentions(&evidence) || about_them => "{}".to_owned(),
            Err(_) => evidence,
        };
        out.alerts += n(conn.execute(
            "UPDATE alerts SET user_id = CASE WHEN user_id = ?2 THEN ?3 ELSE user_id END,
               evidence = ?4 WHERE id = ?1",
            params![a, user_id, TOMBSTONE, evidence],
        )?);
    }

    conn.execute(
        "UPDATE visitors SET last_user_id = ?2 WHERE last_user_id = ?1",
        params![user_id, TOMBSTONE],
    )?;
    // Identities that looked like the person keep their marker, naming the tombstone.
    conn.execute(
        "UPDATE identities SET lookalike_of = ?2 WHERE lookalike_of = ?1",
        params![user_id, TOMBSTONE],
    )?;
    for v in &own_devices {
        out.visitors += n(conn.execute(
            "UPDATE visitors SET visitor_id = 'erased:' || id WHERE id = ?1",
            [v],
        )?);
    }
    Ok(out)
}

/// The desk's part of a purge, inside the caller's transaction.
fn purge_desk(conn: &Connection, cutoff_ms: i64) -> Result<DeskPurge, DeskError> {
    let mut out = DeskPurge::default();
    // Every statement deletes what the cutoff makes old; how many rows it deleted.
    let delete = |sql: &str| conn.execute(sql, [cutoff_ms]).map(n);
    const OLD: &str = "SELECT id FROM conversations WHERE closed_ms IS NOT NULL AND closed_ms < ?1";
    out.alerts = delete(&format!(
        "DELETE FROM alerts WHERE conversation IN ({OLD})
            OR (conversation IS NULL AND at_ms < ?1)"
    ))?;
    out.transitions = delete(&format!(
        "DELETE FROM transitions WHERE conversation IN ({OLD})"
    ))?;
    out.presentations = delete(&format!(
        "DELETE FROM presentations WHERE conversation IN ({OLD})
            OR (conversation IS NULL AND received_ms < ?1)"
    ))?;
    out.conversations =
        delete("DELETE FROM conversations WHERE closed_ms IS NOT NULL AND closed_ms < ?1")?;
    // Devices with nothing left that were last seen before the cutoff, and their links.
    const IDLE: &str = "SELECT id FROM visitors v WHERE v.last_seen_ms < ?1
          AND NOT EXISTS (SELECT 1 FROM conversations c WHERE c.visitor = v.id)
          AND NOT EXISTS (SELECT 1 FROM presentations p WHERE p.visitor = v.id)
          AND NOT EXISTS (SELECT 1 FROM alerts a WHERE a.visitor = v.id)";
    out.identity_links = delete(&format!(
        "DELETE FROM identity_visitors WHERE visitor IN ({IDLE})"
    ))?;
    out.visitors = delete(&format!("DELETE FROM visitors WHERE id IN ({IDLE})"))?;
    out.identities = delete(
        "DELETE FROM identities WHERE last_seen_ms < ?1
       AND NOT EXISTS (SELECT 1 FROM identity_visitors l WHERE l.identity = identities.id)",
    )?;
    out.malformed = delete("DELETE FROM malformed WHERE received_ms < ?1")?;
    Ok(out)
}

impl Desk {
    /// Erases one userId (GDPR) from the whole store: the desk's tables (see the module
    /// documentation for what is deleted and what is tombstoned), then the audit log
    /// ([`lockdesk_audit::erase_user`]: the person's entries become tombstones), then the file
    /// is scrubbed (`VACUUM` with `secure_delete`, WAL truncated). Refuses a broken audit log
    /// before changing anything ([`DeskError::Retention`]). Safe to run again: a second run
    /// finds nothing. `now_ms` dates the audit log's erasure entry.
    pub fn erase_user(&mut self, user_id: &str, now_ms: i64) -> Result<ErasureReport, DeskError> {
        if user_id.is_empty() {
            return Err(DeskError::Store("erase: the userId is empty".into()));
        }
        let desk = self.remove_from_desk("erase", |tx| erase_desk(tx, user_id))?;
        let audit = lockdesk_audit::erase_user(&self.conn, user_id, now_ms)?;
        // The audit erasure scrubs the file only when it changed something.
        let file_scrubbed = if audit.erased_entries == 0 && desk.total() > 0 {
            scrub(&self.conn)?
        } else {
            audit.file_scrubbed
        };
        Ok(ErasureReport {
            desk,
            audit,
            file_scrubbed,
        })
    }

    /// Retention: removes the conversations closed before `cutoff_ms` with their
    /// presentations, transitions and alerts, the unattached presentations and
    /// conversation-less alerts from before it, then devices and identities left with nothing
    /// and last seen before it; then purges the audit log's entries before the cutoff
    /// ([`lockdesk_audit::purge`], a chained purge entry dated `now_ms`); then scrubs the file.
    /// Open conversations are kept whatever their age. Refuses a broken audit log before
    /// changing anything.
    pub fn purge_before(&mut self, cutoff_ms: i64, now_ms: i64) -> Result<PurgeReport, DeskError> {
        let desk = self.remove_from_desk("purge", |tx| purge_desk(tx, cutoff_ms))?;
        // When the desk removed rows, the log records the cutoff even if none of its entries
        // is old enough to go: the check against the log then knows why they are gone.
        let audit = if desk.total() > 0 {
            lockdesk_audit::purge_recording(&self.conn, cutoff_ms, now_ms)?
        } else {
            lockdesk_audit::purge(&self.conn, cutoff_ms, now_ms)?
        };
        let file_scrubbed = if audit.purged_entries == 0 && desk.total() > 0 {
            scrub(&self.conn)?
        } else {
            audit.file_scrubbed
        };
        Ok(PurgeReport {
            desk,
            audit,
            file_scrubbed,
        })
    }

    /// The desk's side of an erasure or a purge (`what`), before the audit log's: refused while
    /// a transaction is open or when the audit log is broken, else `remove` in one immediate
    /// transaction, committed.
    fn remove_from_desk<R>(
        &mut self,
        what: &str,
        remove: impl FnOnce(&Connection) -> Result<R, DeskError>,
    ) -> Result<R, DeskError> {
        if !self.conn.is_autocommit() {
            return Err(DeskError::Store(format!("{what}: a transaction is open")));
        }
        check_chain(&self.conn)?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let removed = remove(&tx)?;
        tx.commit()?;
        Ok(removed)
    }
}
