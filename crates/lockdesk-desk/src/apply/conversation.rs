//! A conversation's life in the store: its visitor, its row (created, loaded, its operator
//! kept), and the events that drive its state machine (`lockdesk-conversation` decides;
//! [`Ctx::drive`] stores the new state and records the transition, change line and alert).
//! Sessions lapse when their end comes before the next event ([`Ctx::catch_up`]) or on the
//! desk's clock ([`Ctx::tick`]); closing comes from a webhook or the backfill.

use lockdesk_conversation::{
    AuthState, Conversation, Event, OperatorId, ReasonCode, VisitorSource,
};
use rusqlite::{params, OptionalExtension};
use serde_json::{json, Value};

use super::record::{AuditFact, StateView};
use super::{secs, Ctx};
use crate::model::ClosedConversation;
use crate::DeskError;

/// A conversation loaded for an update.
pub(super) struct Conv {
    /// The row id.
    pub(super) id: i64,
    pub(super) conversation_id: String,
    /// The visitor's row id.
    pub(super) visitor: i64,
    pub(super) visitor_id: String,
    pub(super) channel: String,
    pub(super) operator_id: Option<OperatorId>,
    pub(super) machine: Conversation,
}

impl Ctx<'_> {
    /// The visitor's row (created on first sight), its first and last sightings widened to
    /// `at_ms`.
    pub(super) fn visitor(&mut self, visitor_id: &str, at_ms: i64) -> Result<i64, DeskError> {
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

    pub(super) fn load(&mut self, conversation_id: &str) -> Result<Option<Conv>, DeskError> {
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
            operator_id: operator_id.and_then(OperatorId::from_stored),
            machine,
        }))
    }

    /// A new conversation row, its first transition and change line.
    pub(super) fn create(
        &mut self,
        conversation_id: &str,
        (visitor, visitor_id): (i64, &str),
        channel: &str,
        operator_id: Option<OperatorId>,
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
                    operator_id.map(OperatorId::to_stored),
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

    /// The operator a push names becomes the conversation's (none named: it keeps its own).
    pub(super) fn set_operator(
        &mut self,
        conv: &mut Conv,
        operator_id: Option<OperatorId>,
    ) -> Result<(), DeskError> {
        if operator_id.is_some() && operator_id != conv.operator_id {
            self.conn
                .prepare_cached("UPDATE conversations SET operator_id = ?2 WHERE id = ?1")?
                .execute(params![conv.id, operator_id.map(OperatorId::to_stored)])?;
        }
        conv.operator_id = operator_id.or(conv.operator_id);
        Ok(())
    }

    /// Applies one event to a conversation's machine and records what it did.
    pub(super) fn drive(
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
    pub(super) fn catch_up(&mut self, conv: &mut Conv, at_ms: i64) -> Result<(), DeskError> {
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

    /// Time-based transitions at `now_ms` (the desk's clock): each secured session that ended
    /// lapses, recorded when it ended (as between feed entries), not when the clock noticed: a
    /// desk that was away reaches the same lines as one that was not.
    pub(super) fn tick(&mut self, now_ms: i64) -> Result<(), DeskError> {
        let due: Vec<String> = self
            .conn
            .prepare_cached(
                "SELECT conversation_id FROM conversations
                 WHERE state = 'secured' AND until_ms <= ?1",
            )?
            .query_map([now_ms], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        for id in due {
            if let Some(mut conv) = self.load(&id)? {
                self.catch_up(&mut conv, now_ms)?;
            }
        }
        Ok(())
    }

    /// Closes a conversation at `at_ms` (a closed one stays as it is).
    pub(super) fn close(&mut self, conv: &mut Conv, at_ms: i64) -> Result<(), DeskError> {
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

    /// One closed conversation from iAdvize's API: created if unknown, closed, and its
    /// platform userId compared with the verified one.
    pub(super) fn backfill_one(&mut self, r: &ClosedConversation) -> Result<(), DeskError> {
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
        self.record(AuditFact::Backfill { record: r })?;
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

#[cfg(test)]
mod tests {
    use super::super::testing::{self, chat};
    use super::*;
    use lockdesk_conversation::{AlertKind, AuthStateName};

    fn verified(user: &str, at: i64) -> Event {
        Event::Verified {
            user_id: user.into(),
            at,
        }
    }

    #[test]
    fn a_conversation_reads_back_as_created_with_its_operator() {
        let conn = testing::store();
        let mut ctx = testing::ctx(&conn);
        let v = ctx.visitor("v-1", 5).unwrap();
        assert_eq!(ctx.visitor("v-1", 3).unwrap(), v, "one row per visitor id");
        let made = ctx
            .create("c-1", (v, "v-1"), "CHAT", OperatorId::new(42), Some(5), 5)
            .unwrap();
        let mut back = ctx.load("c-1").unwrap().unwrap();
        assert_eq!((back.id, back.visitor), (made.id, v));
        assert_eq!(back.operator_id, OperatorId::new(42));
        assert_eq!(back.visitor_id, "v-1");
        assert!(ctx.load("c-2").unwrap().is_none());
        // A push without an operator keeps it; another operator replaces it.
        ctx.set_operator(&mut back, None).unwrap();
        assert_eq!(
            ctx.load("c-1").unwrap().unwrap().operator_id,
            OperatorId::new(42)
        );
        ctx.set_operator(&mut back, OperatorId::new(43)).unwrap();
        assert_eq!(back.operator_id, OperatorId::new(43));
        assert_eq!(
            ctx.load("c-1").unwrap().unwrap().operator_id,
            OperatorId::new(43)
        );
        let first: i64 = conn
            .query_row(
                "SELECT first_seen_ms FROM visitors WHERE id = ?1",
                [v],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(first, 3);
        assert_eq!(ctx.out.changes.len(), 1, "created: one change line");
    }

    #[test]
    fn a_late_event_lapses_the_session_at_its_end_first() {
        let conn = testing::store();
        let mut ctx = testing::ctx(&conn);
        let mut c = chat(&mut ctx, "c-1");
        ctx.drive(&mut c, &verified("u-1", 10), Some(3), 10_000, json!({}))
            .unwrap();
        assert_eq!(c.machine.state().state_name(), AuthStateName::Secured);
        // Before the end: nothing.
        ctx.catch_up(&mut c, 3_000_000).unwrap();
        assert_eq!(c.machine.state().state_name(), AuthStateName::Secured);
        // After it: lapsed, dated at the session's end (10 s + 3600 s), not at the event.
        ctx.catch_up(&mut c, 9_000_000).unwrap();
        assert_eq!(c.machine.state().state_name(), AuthStateName::Lapsed);
        let last = ctx.out.changes.last().unwrap();
        assert_eq!(last.at_ms, 3_610_000);
        assert_eq!(last.alert, Some(AlertKind::SessionLapsed));
        let lapsed_at: i64 = conn
            .query_row(
                "SELECT at_ms FROM transitions ORDER BY id DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(lapsed_at, 3_610_000);
    }

    #[test]
    fn the_tick_lapses_due_sessions_only_and_closing_twice_records_once() {
        let conn = testing::store();
        let mut ctx = testing::ctx(&conn);
        let mut a = chat(&mut ctx, "a");
        let mut b = chat(&mut ctx, "b");
        ctx.drive(&mut a, &verified("u-1", 0), None, 0, json!({}))
            .unwrap();
        ctx.drive(&mut b, &verified("u-1", 100), None, 100_000, json!({}))
            .unwrap();
        ctx.tick(3_650_000).unwrap();
        let state = |id: &str| -> String {
            conn.query_row(
                "SELECT state FROM conversations WHERE conversation_id = ?1",
                [id],
                |r| r.get(0),
            )
            .unwrap()
        };
        assert_eq!(
            (state("a").as_str(), state("b").as_str()),
            ("lapsed", "secured")
        );
        let mut b = ctx.load("b").unwrap().unwrap();
        ctx.close(&mut b, 200_000).unwrap();
        let transitions = |conn: &rusqlite::Connection| -> i64 {
            conn.query_row("SELECT count(*) FROM transitions", [], |r| r.get(0))
                .unwrap()
        };
        let n = transitions(&conn);
        ctx.close(&mut b, 300_000).unwrap();
        assert_eq!(transitions(&conn), n, "closed once");
        assert_eq!(state("b"), "closed");
    }

    #[test]
    fn a_backfilled_record_is_created_closed_and_compared_with_the_platform() {
        let conn = testing::store();
        let mut ctx = testing::ctx(&conn);
        let mut c = chat(&mut ctx, "c-1");
        ctx.drive(&mut c, &verified("u-1", 1), None, 1_000, json!({}))
            .unwrap();
        let record = |id: &str, external: Option<&str>| ClosedConversation {
            conversation_id: id.into(),
            visitor_id: "v-1".into(),
            channel: "CHAT".into(),
            created_at_ms: 500,
            closed_at_ms: 2_000,
            external_user_id: external.map(str::to_owned),
        };
        ctx.backfill_one(&record("c-1", Some("u-2"))).unwrap();
        ctx.backfill_one(&record("c-9", None)).unwrap();
        let row = |id: &str| -> (String, String, Option<String>) {
            conn.query_row(
                "SELECT state, auth_state, reason FROM conversations WHERE conversation_id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap()
        };
        assert_eq!(
            row("c-1"),
            (
                "closed".into(),
                "mismatch".into(),
                Some(ReasonCode::PlatformUserIdDiffers.code().into())
            )
        );
        assert_eq!(row("c-9").0, "closed");
        let kinds: Vec<String> = testing::audit(&conn).into_iter().map(|e| e.0).collect();
        assert_eq!(kinds.iter().filter(|k| *k == "backfill").count(), 2);
    }
}
