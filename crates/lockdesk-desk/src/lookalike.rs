//! Look-alike identities (issue 12): a verified userId that could pass for another on screen.
//!
//! Each identity row keeps its UTS #39 skeleton (`lockdesk_text::skeleton`: confusable letters
//! mapped to one prototype, default-ignorable characters dropped), indexed, so a new identity is
//! compared with every known one in one indexed lookup, never a scan. Two userIds are look-alikes
//! when their skeletons are equal and the strings differ (`cust-48151623` / `сust-48151623`, or
//! `cust-1l` / `cust-11`). A userId that mixes scripts is marked even without a counterpart.
//!
//! Both directions: a new look-alike of a known identity, and a new identity whose look-alike
//! arrived first; both rows are marked (`lookalike_of` names the other), and the alert raised on
//! the new one names both (`imitator`, `imitates`). Which one is the imitation: the one with
//! hazardous characters, else the one that mixes scripts, when only one does; else the newer.
//!
//! Hazardous characters (bidi controls, zero-width characters) never reach an identity: the
//! verifier refuses such a userId. Rows stored before that rule are back-filled at migration with
//! skeletons that drop those characters, so they are compared too.

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::{json, Value};
use unicode_script::{Script, UnicodeScript};

use crate::DeskError;

/// The key identities are compared on: equal for userIds that look the same.
pub(crate) fn skeleton(user_id: &str) -> String {
    lockdesk_text::skeleton(user_id)
}

/// The scripts of `s`'s letters (not Common or Inherited), by name, in order of appearance.
pub(crate) fn scripts(s: &str) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for c in s.chars() {
        let sc = c.script();
        if matches!(sc, Script::Common | Script::Inherited | Script::Unknown) {
            continue;
        }
        let name = sc.full_name();
        if !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

/// What the check found for a new identity.
pub(crate) struct Found {
    pub skeleton: String,
    pub mixed_script: bool,
    /// A known identity with the same skeleton (the earliest seen), if any.
    pub counterpart: Option<Counterpart>,
}

pub(crate) struct Counterpart {
    pub user_id: String,
    pub mixed_script: bool,
    /// Whether that identity was already marked as looking like another one.
    pub marked: bool,
}

/// Compares a userId not yet among the identities with the known ones (one indexed lookup).
pub(crate) fn check(conn: &Connection, user_id: &str) -> Result<Found, DeskError> {
    let skeleton = skeleton(user_id);
    let counterpart = conn
        .prepare_cached(
            "SELECT user_id, mixed_script, lookalike_of IS NOT NULL FROM identities
             WHERE skeleton = ?1 AND user_id <> ?2 ORDER BY first_seen_ms, id LIMIT 1",
        )?
        .query_row(params![skeleton, user_id], |r| {
            Ok(Counterpart {
                user_id: r.get(0)?,
                mixed_script: r.get(1)?,
                marked: r.get(2)?,
            })
        })
        .optional()?;
    Ok(Found {
        skeleton,
        mixed_script: lockdesk_text::mixes_scripts(user_id),
        counterpart,
    })
}

impl Found {
    /// Whether the new identity gets the marker (and the alert).
    pub fn is_lookalike(&self) -> bool {
        self.mixed_script || self.counterpart.is_some()
    }

    /// The alert's evidence (without the presentation's facts), or `None` when there is
    /// nothing to report.
    pub fn evidence(&self, user_id: &str) -> Option<Value> {
        if !self.is_lookalike() {
            return None;
        }
        let (imitator, imitates) = match &self.counterpart {
            // The look-alike arrived first: the new identity is the one it passes for.
            Some(c)
                if suspicion(&c.user_id, c.mixed_script)
                    > suspicion(user_id, self.mixed_script) =>
            {
                (c.user_id.as_str(), Some(user_id))
            }
            Some(c) => (user_id, Some(c.user_id.as_str())),
            None => (user_id, None),
        };
        Some(json!({
            "userId": user_id,
            "imitator": imitator,
            "imitates": imitates,
            "mixedScript": self.mixed_script,
            "scripts": scripts(user_id),
        }))
    }
}

/// Which of two look-alikes is the imitation: one with hazardous characters (stored before the
/// verifier refused them), else one that mixes scripts; on a tie, the newer one.
fn suspicion(user_id: &str, mixed_script: bool) -> u8 {
    if !lockdesk_text::hazards(user_id).is_empty() {
        2
    } else {
        u8::from(mixed_script)
    }
}

/// Migration 2's back-fill: the skeleton and mixed-script flag of every stored identity, then
/// the marks of those that already look like one another (no alert: they were not new).
pub(crate) fn backfill(conn: &Connection) -> Result<(), DeskError> {
    let rows: Vec<(i64, String)> = conn
        .prepare("SELECT id, user_id FROM identities")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let mut update =
        conn.prepare("UPDATE identities SET skeleton = ?2, mixed_script = ?3 WHERE id = ?1")?;
    for (id, user_id) in rows {
        update.execute(params![
            id,
            skeleton(&user_id),
            lockdesk_text::mixes_scripts(&user_id)
        ])?;
    }
    // Each identity of a group with one skeleton names the earliest other member.
    conn.execute(
        "UPDATE identities SET lookalike_of = (
            SELECT o.user_id FROM identities o
             WHERE o.skeleton = identities.skeleton AND o.id <> identities.id
             ORDER BY o.first_seen_ms, o.id LIMIT 1)
         WHERE skeleton IN (SELECT skeleton FROM identities GROUP BY skeleton HAVING count(*) > 1)",
        [],
    )?;
    Ok(())
}
