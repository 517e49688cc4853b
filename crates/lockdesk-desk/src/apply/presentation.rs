//! A token presentation (an evidence entry): read with the gateway's evidence model, verified
//! (in the batch's parallel pass, else here) at its reception time, stored once per `seq` with
//! its verdict (the token only as its SHA-256), and applied to each conversation it acts on
//! (see [`super::routing`]); one that acts on none waits for its visitor's next push.

use std::collections::HashMap;

use lockdesk_conversation::{AlertKind, Event, PresentationVerdict, VisitorSource};
use lockdesk_feed::Evidence;
use lockdesk_verify::{Reason, Verdict, Verified};
use rusqlite::params;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::conversation::Conv;
use super::record::{AuditFact, StateView, VerdictFact};
use super::{secs, Ctx};
use crate::lookalike;
use crate::{DeskError, TokenVerifier};

/// Where a presentation came from, derived once.
pub(super) struct PresentationFacts {
    pub(super) seq: u64,
    pub(super) received_ms: i64,
    pub(super) verified: Option<VerifiedFacts>,
    pub(super) reason: Option<Reason>,
    pub(super) token_sha256: String,
    pub(super) source: Option<VisitorSource>,
    pub(super) domain: Option<String>,
    pub(super) device: Option<String>,
    pub(super) app: Option<String>,
}

pub(super) struct VerifiedFacts {
    pub(super) user_id: String,
    pub(super) name: Option<String>,
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

impl Ctx<'_> {
    /// An evidence entry (or one bundled with a push): stored once per `seq`, then applied.
    pub(super) fn evidence(
        &mut self,
        seq: u64,
        received_ms: i64,
        payload: &Value,
        verdicts: &mut HashMap<u64, Verdict>,
        verifier: &dyn TokenVerifier,
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
        let mut targets = self.evidence_targets(ev.conversation_id.as_deref(), visitor)?;

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
                PresentationVerdict::of(verified.is_some()).code(),
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
        self.record(AuditFact::Verdict {
            at_ms: received_ms,
            conversation: targets.first(),
            named_conversation: ev.conversation_id.as_deref(),
            visitor_id: &ev.visitor_id,
            verdict: VerdictFact {
                seq,
                verified,
                reason,
                token_sha256: &token_sha256,
                source: &src,
                visitor_data: visitor_data.as_ref(),
            },
        })?;

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
                None => self.device_change(received_ms, &ev.visitor_id, user_id, code, id),
            }
        }
        Ok(())
    }

    /// A pending presentation (row `id`) joins the conversation a push created or named, and
    /// takes effect on it.
    pub(super) fn attach(&mut self, conv: &mut Conv, id: i64) -> Result<(), DeskError> {
        let facts = self.stored_facts(id)?;
        self.conn
            .prepare_cached("UPDATE presentations SET conversation = ?2 WHERE id = ?1")?
            .execute(params![id, conv.id])?;
        self.present(conv, &facts)
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
                let verified = PresentationVerdict::from_stored(r.get_ref(2)?.as_str()?)
                    == PresentationVerdict::Verified;
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
                        .and_then(|c| Reason::from_code(&c)),
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
    pub(super) fn present(
        &mut self,
        conv: &mut Conv,
        f: &PresentationFacts,
    ) -> Result<(), DeskError> {
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
}

#[cfg(test)]
mod tests {
    use super::super::testing;
    use super::*;
    use lockdesk_conversation::AuthStateName;
    use lockdesk_verify::Rejection;

    /// Gives every token the same verdict (the desk's side of verification is under test).
    struct Fixed(Verdict);

    impl TokenVerifier for Fixed {
        fn verify(&self, _token: &[u8], _now: i64) -> Verdict {
            self.0.clone()
        }
    }

    fn valid(user: &str) -> Fixed {
        Fixed(Verdict::Verified(Verified {
            decryption_key: Some("dk".into()),
            ..testing::verified(user)
        }))
    }

    fn evidence(visitor: &str, conversation: Option<&str>) -> Value {
        let mut e = json!({"visitorId": visitor, "token": "a.b.c.d.e",
                           "source": {"domain": "shop.example"}});
        if let Some(c) = conversation {
            e["conversationId"] = c.into();
        }
        e
    }

    #[test]
    fn display_names_are_trimmed_and_absent_when_empty() {
        assert_eq!(
            display_name(&json!({"firstName": " Ada ", "lastName": "Lovelace"})).as_deref(),
            Some("Ada Lovelace")
        );
        assert_eq!(
            display_name(&json!({"lastName": "Byron"})).as_deref(),
            Some("Byron")
        );
        assert_eq!(
            display_name(&json!({"firstName": "  ", "lastName": 3})),
            None
        );
    }

    #[test]
    fn a_presentation_is_stored_once_without_its_token_and_secures_its_conversation() {
        let conn = testing::store();
        let mut ctx = testing::ctx(&conn);
        testing::chat(&mut ctx, "c-1");
        let verifier = valid("u-1");
        let p = evidence("v-1", None);
        ctx.evidence(3, 5_000, &p, &mut HashMap::new(), &verifier)
            .unwrap();
        ctx.evidence(3, 5_000, &p, &mut HashMap::new(), &verifier)
            .unwrap();
        let (n, sha, domain): (i64, String, String) = conn
            .query_row(
                "SELECT count(*), max(token_sha256), max(domain) FROM presentations",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        assert_eq!(n, 1, "stored once per seq");
        assert_eq!(domain, "shop.example");
        assert_eq!(sha, hex::encode(Sha256::digest(b"a.b.c.d.e")));
        let c = ctx.load("c-1").unwrap().unwrap();
        assert_eq!(c.machine.state().state_name(), AuthStateName::Secured);
        let source: String = conn
            .query_row("SELECT source FROM conversations", [], |r| r.get(0))
            .unwrap();
        assert_eq!(source, VisitorSource::Web.code());
        let logged = testing::audit(&conn);
        assert!(
            !format!("{logged:?}").contains("a.b.c.d.e"),
            "no token in the log"
        );
        assert!(logged
            .iter()
            .any(|e| e.0 == "verdict" && e.1["verdict"] == "verified"));
    }

    #[test]
    fn a_batch_verdict_is_used_and_a_rejection_fails_the_conversation() {
        let conn = testing::store();
        let mut ctx = testing::ctx(&conn);
        testing::chat(&mut ctx, "c-1");
        let mut verdicts = HashMap::from([(
            4,
            Verdict::Rejected(Rejection::new(Reason::BadSignature, "no")),
        )]);
        // The batch's verdict wins over the verifier's (which would say valid).
        ctx.evidence(
            4,
            5_000,
            &evidence("v-1", Some("c-1")),
            &mut verdicts,
            &valid("u-1"),
        )
        .unwrap();
        assert!(verdicts.is_empty());
        let c = ctx.load("c-1").unwrap().unwrap();
        assert_eq!(c.machine.state().state_name(), AuthStateName::Failed);
        let last = ctx.out.changes.last().unwrap();
        assert_eq!(last.alert, Some(AlertKind::VerificationFailed));
    }

    #[test]
    fn evidence_before_its_conversation_waits_and_is_applied_when_attached() {
        let conn = testing::store();
        let mut ctx = testing::ctx(&conn);
        ctx.evidence(
            3,
            5_000,
            &evidence("v-1", None),
            &mut HashMap::new(),
            &valid("u-1"),
        )
        .unwrap();
        let (id, conversation): (i64, Option<i64>) = conn
            .query_row("SELECT id, conversation FROM presentations", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!(conversation, None, "pending");
        let v = ctx.visitor("v-1", 6_000).unwrap();
        let mut c = ctx
            .create("c-1", (v, "v-1"), "CHAT", None, Some(6_000), 6_000)
            .unwrap();
        ctx.attach(&mut c, id).unwrap();
        assert_eq!(c.machine.state().state_name(), AuthStateName::Secured);
        let (conversation, first): (Option<i64>, Option<i64>) = conn
            .query_row(
                "SELECT p.conversation, c.first_verified_ms FROM presentations p, conversations c",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(conversation, Some(c.id));
        assert_eq!(first, Some(5_000), "verified when the token was received");
    }

    #[test]
    fn malformed_evidence_is_skipped_not_stored() {
        let conn = testing::store();
        let mut ctx = testing::ctx(&conn);
        ctx.evidence(
            3,
            5_000,
            &json!({"visitorId": "v-1"}),
            &mut HashMap::new(),
            &valid("u"),
        )
        .unwrap();
        assert_eq!(ctx.out.skipped.len(), 1);
        assert!(ctx.out.skipped[0].error.starts_with("evidence: "));
        let n: i64 = conn
            .query_row("SELECT count(*) FROM presentations", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0);
    }
}
