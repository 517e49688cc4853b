//! Webhook and evidence payloads read with the model the gateway shares (`lockdesk_feed::payload`,
//! issue 14): a form-encoded push's `operatorId` ("42", a digit string) is the conversation's
//! operator here as it was the advisor's for the gateway's routing (the desk used to read only
//! JSON numbers and stored such a conversation without an operator); the routing fields the
//! gateway sends with an entry are preferred to the payload's; the id and operator-id rules
//! refuse the same values on both sides, with errors that name the field, never the value. A real
//! SQLite file and the real (empty) verification engine.

use lockdesk_desk::{ConversationQuery, ConversationRow, Desk, OperatorId};
use lockdesk_feed::{Entry, EntryRouting};
use serde_json::{json, Value};

use crate::support::{evidence, keyless_desk};
use crate::T0_MS;

fn webhook(seq: u64, payload: Value, routing: EntryRouting) -> Entry {
    Entry {
        routing,
        ..crate::support::webhook(seq, T0_MS + seq as i64, payload)
    }
}

fn open(dir: &tempfile::TempDir) -> Desk {
    keyless_desk(&dir.path().join("desk.sqlite3"))
}

fn row(desk: &Desk, conversation_id: &str) -> ConversationRow {
    desk.conversations(&ConversationQuery::default())
        .unwrap()
        .into_iter()
        .find(|r| r.conversation_id == conversation_id)
        .unwrap_or_else(|| panic!("{conversation_id} is not stored"))
}

/// A push as the gateway stores a form-encoded delivery: every value a string.
fn form_push(seq: u64, conversation: &str, operator: &str) -> Value {
    json!({"eventId": format!("e{seq}"), "eventType": "v2.conversation.pushed",
           "conversationId": conversation, "visitorId": format!("v-{conversation}"),
           "channel": "CHAT", "operatorId": operator})
}

#[test]
fn a_form_encoded_push_reaches_the_desk_with_its_operator() {
    let dir = tempfile::tempdir().unwrap();
    let mut desk = open(&dir);
    // From a gateway that sends no routing fields with its entries: the payload is read.
    let applied = desk
        .apply(
            &[
                webhook(1, form_push(1, "c-form", "42"), EntryRouting::default()),
                webhook(
                    2,
                    json!({"eventId": "e2", "eventType": "v2.conversation.pushed",
                       "conversationId": "c-json", "visitorId": "v-json", "channel": "CHAT",
                       "operatorId": 42}),
                    EntryRouting::default(),
                ),
            ],
            T0_MS,
        )
        .unwrap();
    assert_eq!(applied.skipped, vec![]);
    assert_eq!(row(&desk, "c-form").operator_id, OperatorId::new(42));
    assert_eq!(
        row(&desk, "c-form").operator_id,
        row(&desk, "c-json").operator_id,
        "the form and JSON shapes of one push are one operator"
    );

    // A transfer by form (`operatorIds` alone, one item) moves it to the new operator.
    let transfer = json!({"eventId": "e3", "eventType": "v2.conversation.pushed",
        "conversationId": "c-form", "visitorId": "v-c-form", "channel": "CHAT",
        "operatorIds": ["7"]});
    desk.apply(&[webhook(3, transfer, EntryRouting::default())], T0_MS)
        .unwrap();
    assert_eq!(row(&desk, "c-form").operator_id, OperatorId::new(7));
}

#[test]
fn the_routing_fields_the_gateway_sent_are_preferred() {
    let dir = tempfile::tempdir().unwrap();
    let mut desk = open(&dir);
    let sent = EntryRouting {
        conversation_id: Some("c-sent".into()),
        visitor_id: Some("v-sent".into()),
        operator_ids: Some(vec![9]),
    };
    desk.apply(&[webhook(1, form_push(1, "c-payload", "8"), sent)], T0_MS)
        .unwrap();
    let r = row(&desk, "c-sent");
    assert_eq!(
        (r.visitor_id.as_str(), r.operator_id),
        ("v-sent", OperatorId::new(9))
    );
    assert_eq!(desk.stats().unwrap().conversations, 1);

    // Several operator ids from the gateway: the payload's `operatorId` says which one.
    let sent = EntryRouting {
        conversation_id: Some("c-two".into()),
        visitor_id: Some("v-two".into()),
        operator_ids: Some(vec![3, 5]),
    };
    let mut payload = form_push(2, "c-two", "5");
    payload["operatorIds"] = json!(["3"]);
    desk.apply(&[webhook(2, payload, sent)], T0_MS).unwrap();
    assert_eq!(row(&desk, "c-two").operator_id, OperatorId::new(5));
}

#[test]
fn ids_breaking_the_shared_rules_are_skipped_naming_the_field_not_the_value() {
    let dir = tempfile::tempdir().unwrap();
    let mut desk = open(&dir);
    let too_long = "S".repeat(300);
    let entries = [
        webhook(1, form_push(1, "c1", "SECRET42"), EntryRouting::default()),
        webhook(2, form_push(2, "c2", "-42"), EntryRouting::default()),
        // Beyond i64::MAX as a digit string (a JSON number that large is a bounds error).
        webhook(
            3,
            form_push(3, "c3", "9223372036854775808"),
            EntryRouting::default(),
        ),
        webhook(4, form_push(4, &too_long, "1"), EntryRouting::default()),
        evidence(
            5,
            T0_MS,
            json!({"visitorId": "SECRET\u{7}", "token": "a.b.c"}),
        ),
    ];
    let applied = desk.apply(&entries, T0_MS).unwrap();
    let errors: Vec<(u64, &str)> = applied
        .skipped
        .iter()
        .map(|s| (s.seq, s.error.as_str()))
        .collect();
    let operator_rule = "v2.conversation.pushed: operatorId must hold operator ids: integers in \
                         0..=9223372036854775807, as numbers or decimal strings";
    assert_eq!(
        errors,
        vec![
            (1, operator_rule),
            (2, operator_rule),
            (3, operator_rule),
            (
                4,
                "v2.conversation.pushed: conversationId must be 1 to 256 bytes without control characters"
            ),
            (
                5,
                "evidence: visitorId must be 1 to 256 bytes without control characters"
            ),
        ]
    );
    assert_eq!(desk.stats().unwrap().conversations, 0);
}
