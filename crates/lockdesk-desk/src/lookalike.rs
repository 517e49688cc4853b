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
//! hazardous characters, else the one that mixes scripts, when only one does; else neither can
//! be told: the evidence says `ambiguous: true` (the two look alike, in no direction).
//!
//! Hazardous characters (bidi controls, zero-width characters) never reach an identity: the
//! verifier refuses such a userId. When the identity it would show as is known, the refused
//! token still raises the alert (`refused: invalid_user_id`, the id shown with visible markers):
//! an attempt to pass for that person. Rows stored before that rule are back-filled at migration
//! with skeletons that drop those characters (and read bidi controls in display order), so they
//! are compared too.

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::{json, Value};
use unicode_script::{Script, UnicodeScript};

use crate::DeskError;

/// The key identities are compared on: equal for userIds that look the same. A string with
/// bidi controls is compared as it is displayed (its line in visual order: `cust-<U+202E>32615184`
/// shows, and compares, as `cust-48151623`). Whitespace does not show at the ends of an id and a
/// run of it reads as one space: the key trims it and collapses runs (after the skeleton, which
/// maps NBSP and the other spaces to U+0020), so `cust-48151623 ` compares as `cust-48151623`.
/// Changing this rule needs a migration that recomputes the stored keys (`backfill`).
pub(crate) fn skeleton(user_id: &str) -> String {
    let skel = if !lockdesk_text::hazards(user_id).contains(lockdesk_text::Hazard::Bidi) {
        lockdesk_text::skeleton(user_id)
    } else {
        let info = unicode_bidi::BidiInfo::new(user_id, None);
        let shown: String = info
            .paragraphs
            .iter()
            .map(|p| info.reorder_line(p, p.range.clone()))
            .collect();
        lockdesk_text::skeleton(&shown)
    };
    let mut out = String::with_capacity(skel.len());
    for word in skel.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// A known identity that `s` (a refused userId) would show as, if any: one indexed lookup.
pub(crate) fn known_lookalike(conn: &Connection, s: &str) -> Result<Option<String>, DeskError> {
    Ok(conn
        .prepare_cached(
            "SELECT user_id FROM identities WHERE skeleton = ?1 AND user_id <> ?2
             ORDER BY first_seen_ms, id LIMIT 1",
        )?
        .query_row(params![skeleton(s), s], |r| r.get(0))
        .optional()?)
}

/// The evidence of a `lookalike_user_id` alert for a refused userId: shown with its hazardous
/// characters as visible markers (it is no identity, and its raw form is hostile).
pub(crate) fn refused_evidence(claim: &str, known: &str) -> Value {
    json!({
        "imitator": lockdesk_text::visible(claim),
        "imitates": known,
        "mixedScript": lockdesk_text::mixes_scripts(claim),
        "scripts": scripts(claim),
        "refused": "invalid_user_id",
    })
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
        // `ambiguous`: neither can be told to be the imitation (the same suspicion, e.g. two
        // plain-Latin ids `cust-4815l623` / `cust-48151623`): the alert only says they look
        // alike, in no direction; `imitator` / `imitates` then name the new one and the one
        // known first, for compatibility, and are no verdict.
        let (imitator, imitates, ambiguous) = match &self.counterpart {
            Some(c) => {
                let theirs = suspicion(&c.user_id, c.mixed_script);
                let ours = suspicion(user_id, self.mixed_script);
                if theirs > ours {
                    // The look-alike arrived first: the new identity is the one it passes for.
                    (c.user_id.as_str(), Some(user_id), false)
                } else {
                    (user_id, Some(c.user_id.as_str()), theirs == ours)
                }
            }
            None => (user_id, None, false),
        };
        let mut ev = json!({
            "userId": user_id,
            "imitator": imitator,
            "imitates": imitates,
            "mixedScript": self.mixed_script,
            "scripts": scripts(user_id),
        });
        if ambiguous {
            ev["ambiguous"] = true.into();
        }
        Some(ev)
    }
}

/// Which of two look-alikes is the imitation: one with hazardous characters (stored before the
/// verifier refused them), else one that mixes scripts; on a tie, neither (`ambiguous`).
fn suspicion(user_id: &str, mixed_script: bool) -> u8 {
    if !lockdesk_text::hazards(user_id).is_empty() {
        2
    } else {
        u8::from(mixed_script)
    }
}

/// Migrations 2 and 4's back-fill (4: the key trims and collapses whitespace): the skeleton and mixed-script flag of every stored identity, then
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Identities stored before the verifier refused hazardous userIds (a zero-width space, a
    /// right-to-left override) get their skeleton at migration 2, so they are compared too.
    #[test]
    fn identities_from_before_the_rule_are_backfilled_at_migration() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = Connection::open(dir.path().join("desk.sqlite3")).unwrap();
        conn.execute_batch(
            "CREATE TABLE desk_schema (version INTEGER NOT NULL);
             INSERT INTO desk_schema (version) VALUES (1);",
        )
        .unwrap();
        conn.execute_batch(crate::store::MIGRATIONS[0]).unwrap();
        conn.execute_batch(
            "INSERT INTO identities (user_id, first_seen_ms, last_seen_ms) VALUES
               ('cust-0000000\u{200B}1', 1, 1), ('cust-00000001', 2, 2),
               ('cust-4815\u{200B}1623', 3, 3), ('other', 4, 4),
               ('cust-\u{202E}32615184', 5, 5);",
        )
        .unwrap();
        crate::store::migrate(&mut conn).unwrap();
        let marks: Vec<(String, Option<String>)> = conn
            .prepare("SELECT user_id, lookalike_of FROM identities ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let s = |x: &str| x.to_owned();
        assert_eq!(
            marks,
            vec![
                (s("cust-0000000\u{200B}1"), Some(s("cust-00000001"))),
                (s("cust-00000001"), Some(s("cust-0000000\u{200B}1"))),
                // The override displays (and compares as) cust-48151623 too.
                (s("cust-4815\u{200B}1623"), Some(s("cust-\u{202E}32615184"))),
                (s("other"), None),
                (s("cust-\u{202E}32615184"), Some(s("cust-4815\u{200B}1623"))),
            ]
        );
        // The real id now arrives: the old twin is named, as the imitator.
        let found = check(&conn, "cust-48151623").unwrap();
        let ev = found.evidence("cust-48151623").unwrap();
        assert_eq!(ev["imitator"], "cust-4815\u{200B}1623");
        assert_eq!(ev["imitates"], "cust-48151623");
        assert_eq!(ev["mixedScript"], false);
        // A genuinely different id finds nothing.
        assert!(check(&conn, "cust-48151624")
            .unwrap()
            .evidence("cust-48151624")
            .is_none());
    }

    /// Migration 4 recomputes the stored keys with the whitespace rule: an identity stored
    /// with a trailing space (before the verifier refused it) is compared with the real one.
    #[test]
    fn keys_from_before_the_whitespace_rule_are_recomputed_at_migration() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = Connection::open(dir.path().join("desk.sqlite3")).unwrap();
        crate::store::migrate(&mut conn).unwrap();
        // The store as version 3 left it: the skeleton kept the space.
        conn.execute_batch(
            "INSERT INTO identities (user_id, first_seen_ms, last_seen_ms, skeleton) VALUES
               ('cust-48151623 ', 1, 1, 'cust-48151623 '), ('other', 2, 2, 'other');
             DELETE FROM desk_schema WHERE version > 3;",
        )
        .unwrap();
        crate::store::migrate(&mut conn).unwrap();
        let key: String = conn
            .query_row(
                "SELECT skeleton FROM identities WHERE user_id = 'cust-48151623 '",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(key, skeleton("cust-48151623"));
        let ev = check(&conn, "cust-48151623")
            .unwrap()
            .evidence("cust-48151623")
            .unwrap();
        assert_eq!(ev["imitates"], "cust-48151623 ");
        assert!(check(&conn, "other2").unwrap().evidence("other2").is_none());
    }

    #[test]
    fn skeletons_compare_what_is_displayed() {
        assert_eq!(skeleton("cust-\u{202E}32615184"), skeleton("cust-48151623"));
        assert_eq!(skeleton("cust-4815\u{200B}1623"), skeleton("cust-48151623"));
        assert_eq!(skeleton("\u{441}ust-48151623"), skeleton("cust-48151623"));
        assert_eq!(skeleton("cust-4815l623"), skeleton("cust-48151623"));
        assert_ne!(skeleton("cust-48151624"), skeleton("cust-48151623"));
        // Whitespace: none at the ends, a run reads as one space (NBSP, ideographic space).
        assert_eq!(skeleton("cust-48151623 "), skeleton("cust-48151623"));
        assert_eq!(skeleton("\u{A0} cust-48151623"), skeleton("cust-48151623"));
        assert_eq!(skeleton("cust \u{3000}\u{A0}1"), skeleton("cust 1"));
        assert_ne!(skeleton("cust 1"), skeleton("cust1"));
        assert_eq!(scripts("\u{441}ust-48151623"), vec!["Cyrillic", "Latin"]);
    }
}
