//! Verified identities (userIds) and the devices (visitor ids) they were proved on, and the
//! device-level alerts a valid token can raise: a shared device (another userId than the
//! device's last), a reused userId (the signed profile of another person), a look-alike of a
//! known identity (UTS #39 skeletons, `crate::lookalike`).

use lockdesk_conversation::AlertKind;
use lockdesk_verify::Verified;
use rusqlite::{params, OptionalExtension};
use serde_json::{json, Value};

use super::presentation::PresentationFacts;
use super::record::AuditFact;
use super::Ctx;
use crate::lookalike;
use crate::DeskError;

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
    /// Records a verified identity and its link to the device; returns the device-level
    /// alerts (shared device, reused userId, look-alike) to raise.
    pub(super) fn identity(
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
            self.record(AuditFact::IdentityLink {
                at_ms: at,
                seq: f.seq,
                visitor_id,
                user_id: &v.user_id,
            })?;
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
}

#[cfg(test)]
mod tests {
    use super::super::testing::{self, verified};
    use super::*;

    fn facts(seq: u64, at: i64) -> PresentationFacts {
        PresentationFacts {
            seq,
            received_ms: at,
            verified: None,
            reason: None,
            token_sha256: "ab".into(),
            source: None,
            domain: None,
            device: None,
            app: None,
        }
    }

    #[test]
    fn signed_profiles_differ_by_email_phone_digits_or_full_name_only() {
        let a = json!({"email": "Ada@Example.com ", "phoneNumber": "+33 6 12",
                       "firstName": "Ada", "lastName": "Lovelace"});
        let same = json!({"email": "ada@example.com", "phoneNumber": "33612",
                          "firstName": "ADA", "lastName": "lovelace"});
        assert!(differing_fields(&a, &same).is_empty());
        let other = json!({"email": "bob@example.com", "phoneNumber": "+33 6 13",
                           "firstName": "Bob", "lastName": "Lovelace"});
        assert_eq!(
            differing_fields(&a, &other),
            ["email", "phoneNumber", "name"]
        );
        // A field one side lacks proves nothing.
        assert!(differing_fields(&a, &json!({"firstName": "Bob"})).is_empty());
    }

    #[test]
    fn a_second_user_on_a_device_is_a_shared_device_and_each_link_is_logged_once() {
        let conn = testing::store();
        let mut ctx = testing::ctx(&conn);
        let v = ctx.visitor("v-1", 0).unwrap();
        assert!(ctx
            .identity(v, "v-1", &verified("u-1"), &None, &facts(1, 10))
            .unwrap()
            .is_empty());
        assert!(ctx
            .identity(v, "v-1", &verified("u-1"), &None, &facts(2, 20))
            .unwrap()
            .is_empty());
        let alerts = ctx
            .identity(v, "v-1", &verified("u-2"), &None, &facts(3, 30))
            .unwrap();
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].0, AlertKind::SharedDevice);
        assert_eq!(alerts[0].2["previousUserId"], "u-1");
        let links: Vec<_> = testing::audit(&conn)
            .into_iter()
            .filter(|e| e.0 == "identity")
            .map(|e| e.3)
            .collect();
        assert_eq!(links, [Some("u-1".to_owned()), Some("u-2".to_owned())]);
        let seen: (i64, i64) = conn
            .query_row(
                "SELECT first_seen_ms, last_seen_ms FROM identities WHERE user_id = 'u-1'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(seen, (10, 20));
    }

    #[test]
    fn another_persons_profile_under_a_known_user_id_is_a_reused_user_id() {
        let conn = testing::store();
        let mut ctx = testing::ctx(&conn);
        let v = ctx.visitor("v-1", 0).unwrap();
        let w = ctx.visitor("v-2", 0).unwrap();
        let ada = json!({"email": "ada@example.com"});
        let bob = Some(json!({"email": "bob@example.com"}));
        ctx.identity(
            v,
            "v-1",
            &verified("u-1"),
            &Some(ada.clone()),
            &facts(1, 10),
        )
        .unwrap();
        let alerts = ctx
            .identity(w, "v-2", &verified("u-1"), &bob, &facts(2, 20))
            .unwrap();
        assert_eq!(alerts.len(), 1);
        assert_eq!(alerts[0].0, AlertKind::ReusedUserId);
        assert_eq!(alerts[0].2["differs"], json!(["email"]));
        assert_eq!(alerts[0].2["previous"], ada);
    }
}
