use super::*;
use serde_json::json;

#[test]
fn messages_round_trip_in_the_documented_shapes() {
    let hello = r#"{"type":"hello","protocol":1,"subscriber":"alice","role":"advisor","operatorIds":[101],"after":41,"lastSeq":57,"heartbeatSecs":15}"#;
    let m = ServerMessage::parse(hello).unwrap();
    assert_eq!(
        m,
        ServerMessage::Hello(Hello {
            protocol: 1,
            subscriber: "alice".into(),
            role: Role::Advisor,
            operator_ids: vec![101],
            after: 41,
            last_seq: 57,
            heartbeat_secs: 15,
            log_id: None,
        })
    );
    assert_eq!(ServerMessage::parse(&m.to_text()).unwrap(), m);
    // `logId` (added within v1): carried when present, absent from older gateways.
    let with_log = hello.replace("}", r#","logId":"5f0c2b7e9a1d4c3b8e6f0a9b1c2d3e4f"}"#);
    let ServerMessage::Hello(h) = ServerMessage::parse(&with_log).unwrap() else {
        panic!("not a hello")
    };
    assert_eq!(
        h.log_id.as_deref(),
        Some("5f0c2b7e9a1d4c3b8e6f0a9b1c2d3e4f")
    );
    assert!(ServerMessage::Hello(h)
        .to_text()
        .contains(r#""logId":"5f0c2b7e"#));
    assert!(!m.to_text().contains("logId"));

    let entry = json!({"type":"entry","seq":42,"kind":"webhook","receivedAtMs":1767261600000i64,
        "eventType":"v2.conversation.pushed","payload":{"conversationId":"c1"},
        "related":[{"seq":40,"receivedAtMs":1767261500000i64,"payload":{"visitorId":"v","token":"a.b.c"}}]});
    let ServerMessage::Entry(e) = ServerMessage::parse(&entry.to_string()).unwrap() else {
        panic!("not an entry")
    };
    assert_eq!(e.seq, 42);
    assert_eq!(e.kind, EntryKind::Webhook);
    assert_eq!(e.event_type.as_deref(), Some("v2.conversation.pushed"));
    assert_eq!(e.related.len(), 1);
    let ev = Evidence::from_payload(&e.related[0].payload).unwrap();
    assert_eq!(ev.visitor_id, "v");
    assert_eq!(
        serde_json::to_value(ServerMessage::Entry(e)).unwrap(),
        entry
    );

    assert_eq!(
        ServerMessage::parse(r#"{"type":"heartbeat","seq":57}"#).unwrap(),
        ServerMessage::Heartbeat { seq: 57 }
    );
    assert_eq!(
        ClientMessage::parse(r#"{"type":"ack","seq":3}"#).unwrap(),
        ClientMessage::Ack { seq: 3 }
    );
}

#[test]
fn unknown_types_and_fields_are_ignored() {
    assert_eq!(
        ServerMessage::parse(r#"{"type":"gossip","x":1}"#).unwrap(),
        ServerMessage::Unknown
    );
    assert_eq!(
        ServerMessage::parse(r#"{"type":"heartbeat","seq":5,"extra":true}"#).unwrap(),
        ServerMessage::Heartbeat { seq: 5 }
    );
    assert_eq!(
        ClientMessage::parse(r#"{"type":"nack"}"#).unwrap(),
        ClientMessage::Unknown
    );
}

#[test]
fn malformed_frames_are_specific_errors_that_never_echo_the_frame() {
    for bad in [
        "",
        "not json",
        "[1,2]",
        r#"{"seq":1}"#,
        r#"{"type":"entry","seq":"x"}"#,
        r#"{"type":"heartbeat","seq":-1}"#,
        r#"{"type":"entry","seq":1,"kind":"webhook","receivedAtMs":1,"payload":{"token":"SECRET.TOKEN"#,
    ] {
        let err = ServerMessage::parse(bad).unwrap_err();
        assert!(!err.to_string().contains("SECRET"), "{err}");
        assert!(matches!(err, FrameError::Malformed(_)), "{bad}: {err}");
    }
    let huge = format!(
        r#"{{"type":"heartbeat","seq":1,"pad":"{}"}}"#,
        "x".repeat(MAX_FRAME_BYTES)
    );
    assert!(matches!(
        ServerMessage::parse(&huge),
        Err(FrameError::TooLarge { .. })
    ));
    let deep = "[".repeat(10_000);
    assert!(ServerMessage::parse(&deep).is_err());
}

#[test]
fn debug_output_never_holds_a_token() {
    let payload = json!({"visitorId":"v1","token":"eyJTOKEN.a.b.c.d"});
    let e = Entry {
        seq: 1,
        kind: EntryKind::Evidence,
        received_at_ms: 0,
        event_type: None,
        payload: payload.clone(),
        related: vec![Related {
            seq: 0,
            received_at_ms: 0,
            payload: payload.clone(),
        }],
        routing: Default::default(),
    };
    let ev = Evidence::from_payload(&payload).unwrap();
    for s in [
        format!("{e:?}"),
        format!("{:?}", ServerMessage::Entry(e.clone())),
        format!("{ev:?}"),
    ] {
        assert!(!s.contains("eyJTOKEN"), "{s}");
    }
}

#[test]
fn raw_entries_keep_the_stored_payload_text_and_read_back_with_their_routing() {
    // Key order, inner whitespace and escapes that re-serialising would change.
    let stored = "{ \"visitorId\" : \"v\\u00e9\",\n  \"eventType\":\"v2.conversation.pushed\", \"operatorId\": \"7\",\"conversationId\":\"c\" }";
    let evidence = r#"{"token":"a.b.c",   "visitorId":"v"}"#;
    let mut raw = RawEntry::new(
        9,
        EntryKind::Webhook,
        1_767_261_600_000,
        Some("v2.conversation.pushed".into()),
        raw_payload(format!("  {stored}\n")).unwrap(),
    );
    raw.related.push(RawRelated {
        seq: 8,
        received_at_ms: 1_767_261_500_000,
        payload: raw_payload(evidence.into()).unwrap(),
    });
    raw.routing = EntryRouting {
        conversation_id: Some("c".into()),
        visitor_id: Some("vé".into()),
        operator_ids: Some(vec![7]),
    };
    let text = raw.to_text();
    assert!(text.contains(&format!(r#""payload":{stored}"#)), "{text}");
    assert!(text.contains(&format!(r#""payload":{evidence}"#)), "{text}");
    assert!(text.starts_with(r#"{"type":"entry","seq":9,"#), "{text}");
    let ServerMessage::Entry(e) = ServerMessage::parse(&text).unwrap() else {
        panic!("not an entry")
    };
    assert_eq!(e.routing, raw.routing);
    assert_eq!(e.payload, serde_json::from_str::<Value>(stored).unwrap());
    assert_eq!(e.related[0].seq, 8);
    assert!(text.contains(r#""operatorIds":[7]"#));
    // Without routing fields (an older gateway): none are written, and none read back.
    raw.routing = EntryRouting::default();
    let text = raw.to_text();
    assert!(!text.contains("operatorIds"), "{text}");
    let ServerMessage::Entry(e) = ServerMessage::parse(&text).unwrap() else {
        panic!("not an entry")
    };
    assert_eq!(e.routing, EntryRouting::default());
    assert!(raw_payload("{\"a\":".into()).is_err());
    assert!(raw_payload("{} {}".into()).is_err());
}
