//! The bounds every number from the wire must respect (docs/feed-protocol.md, "Bounds").
//!
//! A desk checks each message with these before acting on it: a value outside its bound is a
//! [`BoundError`] naming the message, the field, the value and the allowed range (numbers only:
//! never an excerpt of a payload, which may hold a token).
//!
//! - `seq`: an entry's is in `1..=`[`MAX_SEQ`] (`i64::MAX`: desks store it in SQLite's signed
//!   64-bit integers); a cursor (`hello`'s `after` and `lastSeq`, `heartbeat`'s `seq`, `resume`'s
//!   `after`, a `related` item's `seq`) is in `0..=`[`MAX_SEQ`], and a `related` item's `seq` is
//!   below its entry's.
//! - `heartbeatSecs`: [`MIN_HEARTBEAT_SECS`]`..=`[`MAX_HEARTBEAT_SECS`] (the desk declares a
//!   connection dead after three of them).
//! - times (`receivedAtMs`): from 1970-01-01T00:00:00Z to 9999-12-31T23:59:59.999Z,
//!   [`MIN_TIME_MS`]`..=`[`MAX_TIME_MS`] (RFC 3339 has four-digit years).
//! - operator ids (`hello`'s `operatorIds`, a payload's `operatorId` / `operatorIds` when they
//!   are JSON numbers): integers in `0..=`[`MAX_OPERATOR_ID`] (desks store them as SQLite's
//!   signed 64-bit integers).
//! - the entry's own `operatorIds` (its routing fields): integers in `0..=`[`MAX_OPERATOR_ID`].
//! - `related`: at most [`crate::MAX_RELATED`] items; `protocol`: [`crate::PROTOCOL_VERSION`].

use serde_json::Value;

use crate::{Entry, Hello, ServerMessage, MAX_RELATED, PROTOCOL_VERSION};

/// The largest `seq` (and cursor) a desk accepts: `i64::MAX`.
pub const MAX_SEQ: u64 = i64::MAX as u64;
/// The shortest `heartbeatSecs` a desk accepts.
pub const MIN_HEARTBEAT_SECS: u64 = 1;
/// The longest `heartbeatSecs` a desk accepts (one hour).
pub const MAX_HEARTBEAT_SECS: u64 = 3600;
/// 1970-01-01T00:00:00.000Z.
pub const MIN_TIME_MS: i64 = 0;
/// 9999-12-31T23:59:59.999Z, the last instant with a four-digit year.
pub const MAX_TIME_MS: i64 = 253_402_300_799_999;
/// The largest operator id a desk accepts (stored as SQLite's signed 64-bit integer).
pub const MAX_OPERATOR_ID: u64 = i64::MAX as u64;

/// A number from the wire outside its documented bound.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}: {field} {value} is outside {range}")]
pub struct BoundError {
    /// The message (`hello`, `entry 42`, `heartbeat`, `resume`).
    pub message: String,
    /// The field as spelled on the wire (`heartbeatSecs`, `related[3].seq`, `payload.operatorId`).
    pub field: String,
    /// The value as received (a number, never payload text).
    pub value: String,
    /// The allowed range, in words.
    pub range: String,
}

fn err(message: &str, field: &str, value: impl ToString, range: impl ToString) -> BoundError {
    BoundError {
        message: message.to_owned(),
        field: field.to_owned(),
        value: value.to_string(),
        range: range.to_string(),
    }
}

fn cursor(message: &str, field: &str, seq: u64) -> Result<(), BoundError> {
    if seq > MAX_SEQ {
        return Err(err(message, field, seq, format!("0..={MAX_SEQ}")));
    }
    Ok(())
}

fn time(message: &str, field: &str, ms: i64) -> Result<(), BoundError> {
    if !(MIN_TIME_MS..=MAX_TIME_MS).contains(&ms) {
        return Err(err(
            message,
            field,
            ms,
            format!("{MIN_TIME_MS}..={MAX_TIME_MS} ms (years 1970 to 9999)"),
        ));
    }
    Ok(())
}

fn operator_id(message: &str, field: &str, id: &Value) -> Result<(), BoundError> {
    // Only numbers are checked: a string or null is read as "no operator id", as before.
    if let Value::Number(n) = id {
        if n.as_u64().is_none_or(|v| v > MAX_OPERATOR_ID) {
            return Err(err(
                message,
                field,
                n,
                format!("the integers 0..={MAX_OPERATOR_ID}"),
            ));
        }
    }
    Ok(())
}

impl Hello {
    /// Checks every number of a `hello` (see the module's bounds).
    pub fn check_bounds(&self) -> Result<(), BoundError> {
        const M: &str = "hello";
        if self.protocol != PROTOCOL_VERSION {
            return Err(err(M, "protocol", self.protocol, PROTOCOL_VERSION));
        }
        if !(MIN_HEARTBEAT_SECS..=MAX_HEARTBEAT_SECS).contains(&self.heartbeat_secs) {
            return Err(err(
                M,
                "heartbeatSecs",
                self.heartbeat_secs,
                format!("{MIN_HEARTBEAT_SECS}..={MAX_HEARTBEAT_SECS}"),
            ));
        }
        cursor(M, "after", self.after)?;
        cursor(M, "lastSeq", self.last_seq)?;
        for (i, id) in self.operator_ids.iter().enumerate() {
            if *id > MAX_OPERATOR_ID {
                return Err(err(
                    M,
                    &format!("operatorIds[{i}]"),
                    id,
                    format!("0..={MAX_OPERATOR_ID}"),
                ));
            }
        }
        Ok(())
    }
}

impl Entry {
    /// Checks the entry's `seq` alone: outside `1..=`[`MAX_SEQ`] the entry cannot be stored,
    /// nor resumed after, so a desk drops the connection (it cannot even skip it).
    pub fn check_seq(&self) -> Result<(), BoundError> {
        if !(1..=MAX_SEQ).contains(&self.seq) {
            return Err(err("entry", "seq", self.seq, format!("1..={MAX_SEQ}")));
        }
        Ok(())
    }

    /// Checks every other number of an entry whose `seq` is valid: its time, its `related` items
    /// (count, `seq` below the entry's, times) and the payload's operator ids. A desk skips and
    /// records an entry that fails this (its `seq` is valid, so the cursor moves past it).
    pub fn check_fields(&self) -> Result<(), BoundError> {
        let m = format!("entry {}", self.seq);
        time(&m, "receivedAtMs", self.received_at_ms)?;
        if self.related.len() > MAX_RELATED {
            return Err(err(
                &m,
                "related (count)",
                self.related.len(),
                format!("0..={MAX_RELATED}"),
            ));
        }
        for (i, r) in self.related.iter().enumerate() {
            if !(1..self.seq).contains(&r.seq) {
                return Err(err(
                    &m,
                    &format!("related[{i}].seq"),
                    r.seq,
                    format!("1..{} (below the entry's seq)", self.seq),
                ));
            }
            time(&m, &format!("related[{i}].receivedAtMs"), r.received_at_ms)?;
        }
        for (i, id) in self.routing.operator_ids.iter().flatten().enumerate() {
            if *id > MAX_OPERATOR_ID {
                return Err(err(
                    &m,
                    &format!("operatorIds[{i}]"),
                    id,
                    format!("0..={MAX_OPERATOR_ID}"),
                ));
            }
        }
        check_payload(&m, "payload", &self.payload)?;
        for (i, r) in self.related.iter().enumerate() {
            check_payload(&m, &format!("related[{i}].payload"), &r.payload)?;
        }
        Ok(())
    }

    /// [`Entry::check_seq`] then [`Entry::check_fields`].
    pub fn check_bounds(&self) -> Result<(), BoundError> {
        self.check_seq()?;
        self.check_fields()
    }
}

/// The numbers a desk reads from a payload: `operatorId` and `operatorIds`.
fn check_payload(message: &str, at: &str, payload: &Value) -> Result<(), BoundError> {
    if let Some(id) = payload.get("operatorId") {
        operator_id(message, &format!("{at}.operatorId"), id)?;
    }
    if let Some(Value::Array(ids)) = payload.get("operatorIds") {
        for (i, id) in ids.iter().enumerate() {
            operator_id(message, &format!("{at}.operatorIds[{i}]"), id)?;
        }
    }
    Ok(())
}

impl ServerMessage {
    /// Checks the numbers of any message: [`Hello::check_bounds`], [`Entry::check_bounds`], a
    /// `heartbeat`'s `seq` and a `resume`'s `after` (cursors, `0..=`[`MAX_SEQ`]).
    pub fn check_bounds(&self) -> Result<(), BoundError> {
        match self {
            ServerMessage::Hello(h) => h.check_bounds(),
            ServerMessage::Entry(e) => e.check_bounds(),
            ServerMessage::Heartbeat { seq } => cursor("heartbeat", "seq", *seq),
            ServerMessage::Resume { after, .. } => cursor("resume", "after", *after),
            ServerMessage::Unknown => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EntryKind, Related};
    use serde_json::json;

    fn hello() -> Hello {
        // From JSON: fields added to `Hello` later (additive) keep this test compiling.
        serde_json::from_value(
            json!({"protocol": 1, "subscriber": "alice", "role": "advisor",
            "operatorIds": [101], "after": 41, "lastSeq": 57, "heartbeatSecs": 15}),
        )
        .unwrap()
    }

    fn entry(seq: u64) -> Entry {
        Entry {
            seq,
            kind: EntryKind::Webhook,
            received_at_ms: 1_767_261_600_000,
            event_type: Some("v2.conversation.pushed".into()),
            payload: json!({"conversationId": "c1", "operatorId": 7}),
            related: vec![Related {
                seq: seq.saturating_sub(1).max(1),
                received_at_ms: 1_767_261_500_000,
                payload: json!({"visitorId": "v"}),
            }],
            routing: Default::default(),
        }
    }

    #[test]
    fn hello_bounds_name_the_field_and_the_range() {
        assert_eq!(hello().check_bounds(), Ok(()));
        let e = Hello {
            heartbeat_secs: u64::MAX,
            ..hello()
        }
        .check_bounds()
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "hello: heartbeatSecs 18446744073709551615 is outside 1..=3600"
        );
        for bad in [
            Hello {
                heartbeat_secs: 0,
                ..hello()
            },
            Hello {
                heartbeat_secs: 3601,
                ..hello()
            },
            Hello {
                protocol: 2,
                ..hello()
            },
            Hello {
                after: MAX_SEQ + 1,
                ..hello()
            },
            Hello {
                last_seq: u64::MAX,
                ..hello()
            },
            Hello {
                operator_ids: vec![1, MAX_OPERATOR_ID + 1],
                ..hello()
            },
        ] {
            assert!(bad.check_bounds().is_err(), "{bad:?}");
        }
        for good in [1, 3600] {
            let h = Hello {
                heartbeat_secs: good,
                after: MAX_SEQ,
                last_seq: MAX_SEQ,
                ..hello()
            };
            assert_eq!(h.check_bounds(), Ok(()));
        }
    }

    #[test]
    fn entry_bounds_separate_the_seq_from_the_other_fields() {
        assert_eq!(entry(42).check_bounds(), Ok(()));
        assert_eq!(entry(MAX_SEQ).check_bounds(), Ok(()));
        for seq in [0, MAX_SEQ + 1, u64::MAX] {
            let e = entry(seq).check_seq().unwrap_err();
            assert_eq!(e.field, "seq");
        }
        let late = Entry {
            received_at_ms: MAX_TIME_MS + 1,
            ..entry(42)
        };
        assert_eq!(late.check_seq(), Ok(()));
        assert_eq!(
            late.check_fields().unwrap_err().to_string(),
            "entry 42: receivedAtMs 253402300800000 is outside 0..=253402300799999 ms (years 1970 to 9999)"
        );
        assert!(Entry {
            received_at_ms: -1,
            ..entry(42)
        }
        .check_fields()
        .is_err());
        assert_eq!(
            Entry {
                received_at_ms: MAX_TIME_MS,
                ..entry(42)
            }
            .check_fields(),
            Ok(())
        );
        let mut r = entry(42);
        r.related[0].seq = 42;
        assert_eq!(r.check_fields().unwrap_err().field, "related[0].seq");
        let mut r = entry(42);
        r.related[0].received_at_ms = i64::MAX;
        assert_eq!(
            r.check_fields().unwrap_err().field,
            "related[0].receivedAtMs"
        );
        let mut r = entry(4242);
        r.related = (1..=51)
            .map(|s| Related {
                seq: s,
                ..r.related[0].clone()
            })
            .collect();
        assert_eq!(r.check_fields().unwrap_err().field, "related (count)");
        for bad in [json!(-1), json!(1.5), json!(u64::MAX)] {
            let e = Entry {
                payload: json!({"operatorId": bad}),
                ..entry(42)
            };
            assert_eq!(e.check_fields().unwrap_err().field, "payload.operatorId");
            let e = Entry {
                payload: json!({"operatorIds": [3, bad]}),
                ..entry(42)
            };
            assert_eq!(
                e.check_fields().unwrap_err().field,
                "payload.operatorIds[1]"
            );
        }
        let mut r = entry(42);
        r.routing.operator_ids = Some(vec![1, MAX_OPERATOR_ID + 1]);
        assert_eq!(r.check_fields().unwrap_err().field, "operatorIds[1]");
        r.routing.operator_ids = Some(vec![1, MAX_OPERATOR_ID]);
        assert_eq!(r.check_fields(), Ok(()));
        // Not a number: read as absent by the desk, as before.
        let s = Entry {
            payload: json!({"operatorId": "7", "operatorIds": null}),
            ..entry(42)
        };
        assert_eq!(s.check_fields(), Ok(()));
    }

    #[test]
    fn cursors_in_heartbeat_and_resume_are_bounded() {
        assert!(ServerMessage::Heartbeat { seq: MAX_SEQ }
            .check_bounds()
            .is_ok());
        assert!(ServerMessage::Heartbeat { seq: 0 }.check_bounds().is_ok());
        assert_eq!(
            ServerMessage::Heartbeat { seq: u64::MAX }
                .check_bounds()
                .unwrap_err()
                .to_string(),
            "heartbeat: seq 18446744073709551615 is outside 0..=9223372036854775807"
        );
        assert!(ServerMessage::Resume {
            after: MAX_SEQ + 1,
            reason: "overflow".into()
        }
        .check_bounds()
        .is_err());
    }
}
