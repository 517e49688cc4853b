//! The transition table, case by case, then every sequence of up to six events checked against
//! the invariants in the crate's header.

use super::*;

const LIFE: i64 = 1_500;

fn verified(user: &str, at: i64) -> Event {
    Event::Verified {
        user_id: user.into(),
        at,
    }
}
fn rejected(at: i64) -> Event {
    Event::Rejected {
        reason: Reason::BadSignature,
        at,
    }
}
fn platform(user: &str, at: i64) -> Event {
    Event::PlatformUserId {
        user_id: user.into(),
        at,
    }
}

/// Runs `events` on a fresh CHAT conversation and returns the final state's name and the alerts.
fn run(events: &[Event]) -> (String, Vec<Alert>) {
    let mut c = Conversation::new("CHAT", LIFE);
    let alerts = events.iter().filter_map(|e| c.apply(e).alert).collect();
    (c.state().name().to_owned(), alerts)
}

fn check(events: &[Event], expected_state: &str, expected_alerts: usize) {
    let (state, alerts) = run(events);
    assert_eq!(state, expected_state, "after {events:?}");
    assert_eq!(
        alerts.len(),
        expected_alerts,
        "after {events:?}: {alerts:?}"
    );
}

#[test]
fn the_transition_table() {
    // anonymous
    check(&[], "anonymous", 0);
    check(&[verified("a", 0)], "secured", 0);
    check(&[rejected(0)], "failed", 1);
    check(&[platform("a", 0)], "anonymous", 0);
    check(&[Event::Tick { now: 10 * LIFE }], "anonymous", 0);
    check(&[Event::Closed { at: 0 }], "closed", 0);
    // secured
    check(&[verified("a", 0), verified("a", 10)], "secured", 0);
    check(&[verified("a", 0), verified("b", 10)], "mismatch", 1);
    check(&[verified("a", 0), rejected(10)], "failed", 1);
    check(&[verified("a", 0), platform("a", 10)], "secured", 0);
    check(&[verified("a", 0), platform("b", 10)], "mismatch", 1);
    check(
        &[verified("a", 0), Event::Tick { now: LIFE - 1 }],
        "secured",
        0,
    );
    check(&[verified("a", 0), Event::Tick { now: LIFE }], "lapsed", 1);
    // lapsed
    let lapsed = [verified("a", 0), Event::Tick { now: LIFE }];
    check(
        &[&lapsed[..], &[verified("a", LIFE + 1)]].concat(),
        "secured",
        1,
    );
    check(
        &[&lapsed[..], &[verified("b", LIFE + 1)]].concat(),
        "mismatch",
        2,
    );
    check(&[&lapsed[..], &[rejected(LIFE + 1)]].concat(), "failed", 2);
    check(
        &[&lapsed[..], &[Event::Tick { now: 9 * LIFE }]].concat(),
        "lapsed",
        1,
    );
    // failed
    check(&[rejected(0), verified("a", 1)], "secured", 1);
    check(
        &[verified("a", 0), rejected(1), verified("b", 2)],
        "mismatch",
        2,
    );
    check(&[rejected(0), rejected(1)], "failed", 2);
    // mismatch is sticky until the close
    let mismatch = [verified("a", 0), verified("b", 1)];
    check(
        &[&mismatch[..], &[verified("a", 2)]].concat(),
        "mismatch",
        1,
    );
    check(&[&mismatch[..], &[rejected(2)]].concat(), "mismatch", 2);
    check(
        &[&mismatch[..], &[Event::Tick { now: 9 * LIFE }]].concat(),
        "mismatch",
        1,
    );
    check(
        &[&mismatch[..], &[Event::Closed { at: 3 }]].concat(),
        "closed",
        1,
    );
    // closed freezes
    check(
        &[verified("a", 0), Event::Closed { at: 1 }, rejected(2)],
        "closed",
        0,
    );
    check(
        &[verified("a", 0), Event::Closed { at: 1 }, verified("b", 2)],
        "closed",
        0,
    );
    check(
        &[verified("a", 0), Event::Closed { at: 1 }, platform("a", 2)],
        "closed",
        0,
    );
    // ... except for the platform's report, known only after the close (backfill)
    check(
        &[verified("a", 0), Event::Closed { at: 1 }, platform("b", 2)],
        "closed",
        1,
    );
    check(
        &[
            verified("a", 0),
            Event::Closed { at: 1 },
            platform("b", 2),
            platform("c", 3),
        ],
        "closed",
        1,
    );
    check(&[Event::Closed { at: 1 }, platform("b", 2)], "closed", 0);
    check(
        &[&mismatch[..], &[Event::Closed { at: 3 }, platform("c", 4)]].concat(),
        "closed",
        1,
    );
    check(
        &[
            verified("a", 0),
            Event::Closed { at: 1 },
            Event::Tick { now: 9 * LIFE },
        ],
        "closed",
        0,
    );
}

#[test]
fn third_party_channels_are_unsupported_whatever_arrives() {
    for channel in [
        "WHATSAPP",
        "FACEBOOK",
        "SMS",
        "INSTAGRAM",
        "APPLE_BUSINESS_CHAT",
        "TWITTER",
    ] {
        let mut c = Conversation::new(channel, LIFE);
        assert_eq!(c.state(), &AuthState::Unsupported);
        assert_eq!(c.apply(&verified("a", 0)), Outcome::default());
        assert_eq!(c.apply(&rejected(1)), Outcome::default());
        assert_eq!(c.state(), &AuthState::Unsupported);
        assert!(c.apply(&Event::Closed { at: 2 }).changed);
        assert_eq!(
            c.state(),
            &AuthState::Closed {
                last: Box::new(AuthState::Unsupported),
                at: 2
            }
        );
    }
    for channel in ["CHAT", "CALL", "VIDEO", "MOBILE_APP"] {
        assert_eq!(
            Conversation::new(channel, LIFE).state(),
            &AuthState::Anonymous
        );
    }
}

#[test]
fn a_platform_report_after_the_close_keeps_the_close_and_records_the_mismatch() {
    let mut c = Conversation::new("CHAT", LIFE);
    c.apply(&verified("a", 0));
    c.apply(&Event::Closed { at: 10 });
    let out = c.apply(&platform("b", 20));
    assert!(out.changed);
    assert_eq!(
        c.state(),
        &AuthState::Closed {
            last: Box::new(AuthState::Mismatch {
                verified_user_id: "a".into(),
                other_user_id: "b".into(),
                source: MismatchSource::Platform,
                at: 20
            }),
            at: 10
        }
    );
    let mut unsupported = Conversation::new("WHATSAPP", LIFE);
    unsupported.apply(&Event::Closed { at: 10 });
    assert_eq!(unsupported.apply(&platform("b", 20)), Outcome::default());
}

#[test]
fn every_state_round_trips_through_serde() {
    let mut states = vec![];
    for events in [
        vec![],
        vec![verified("a", 0)],
        vec![verified("a", 0), Event::Tick { now: LIFE }],
        vec![rejected(3)],
        vec![verified("a", 0), verified("b", 1)],
        vec![verified("a", 0), Event::Closed { at: 1 }],
    ] {
        let mut c = Conversation::new("CHAT", LIFE);
        for e in &events {
            c.apply(e);
        }
        states.push(c);
    }
    states.push(Conversation::new("WHATSAPP", LIFE));
    for c in states {
        let json = serde_json::to_string(&c).unwrap();
        let back: Conversation = serde_json::from_str(&json).unwrap();
        assert_eq!(back, c, "{json}");
    }
    let bad = r#"{"state":{"state":"failed","reason":"nope","at":1},"verified_user_id":null,"session_lifetime":5}"#;
    assert!(serde_json::from_str::<Conversation>(bad).is_err());
}

#[test]
fn a_session_is_extended_by_newer_tokens_only() {
    let mut c = Conversation::new("CHAT", LIFE);
    c.apply(&verified("a", 100));
    c.apply(&verified("a", 50)); // a late-arriving older presentation
    assert_eq!(
        c.state(),
        &AuthState::Secured {
            user_id: "a".into(),
            since: 100,
            until: 100 + LIFE
        }
    );
    c.apply(&verified("a", 400));
    c.apply(&Event::Tick { now: 100 + LIFE });
    assert_eq!(c.state().name(), "secured", "the newer token moved the end");
}

#[test]
fn states_serialize_with_stable_names_and_reason_codes() {
    let mut c = Conversation::new("CHAT", LIFE);
    c.apply(&Event::Rejected {
        reason: Reason::Expired,
        at: 7,
    });
    let json = serde_json::to_value(c.state()).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"state": "failed", "reason": "expired", "at": 7})
    );
}

/// Every sequence of up to six events from a small alphabet, with the invariants checked after
/// each step. Time moves forward by 1000 s a step; the session lasts 1500 s.
#[test]
fn every_sequence_keeps_the_invariants() {
    #[derive(Clone, Copy, Debug)]
    enum E {
        VA,
        VB,
        Rej,
        PA,
        PB,
        Tick,
        Close,
    }
    const ALPHABET: [E; 7] = [E::VA, E::VB, E::Rej, E::PA, E::PB, E::Tick, E::Close];
    let mut sequences = 0u64;
    let mut stack: Vec<Vec<E>> = vec![vec![]];
    while let Some(seq) = stack.pop() {
        sequences += 1;
        replay(&seq);
        if seq.len() < 6 {
            for e in ALPHABET {
                let mut next = seq.clone();
                next.push(e);
                stack.push(next);
            }
        }
    }
    assert_eq!(sequences, (0..=6).map(|n| 7u64.pow(n)).sum::<u64>());

    fn replay(seq: &[E]) {
        let mut c = Conversation::new("CHAT", LIFE);
        let mut seen_evidence = false;
        let mut mismatched = false;
        let mut closed_with: Option<AuthState> = None;
        for (i, e) in seq.iter().enumerate() {
            let at = 1000 * i as i64;
            let event = match e {
                E::VA => verified("a", at),
                E::VB => verified("b", at),
                E::Rej => rejected(at),
                E::PA => platform("a", at),
                E::PB => platform("b", at),
                E::Tick => Event::Tick { now: at },
                E::Close => Event::Closed { at },
            };
            let before = c.state().clone();
            let out = c.apply(&event);
            let state = c.state().clone();
            let ctx = format!("{seq:?} at step {i}: {before:?} -> {state:?}");

            assert_eq!(out.changed, before != state, "{ctx}");
            if let Some(frozen) = closed_with.clone() {
                // Closed is final, except that the platform's report (only known after the
                // close) can turn the kept state into a mismatch, once, with its alert.
                let reported = match e {
                    E::PA => Some("a"),
                    E::PB => Some("b"),
                    _ => None,
                };
                let reveals = reported.is_some()
                    && c.verified_user_id().is_some()
                    && c.verified_user_id() != reported
                    && !matches!(
                        &frozen,
                        AuthState::Closed { last, .. } if matches!(**last, AuthState::Mismatch { .. })
                    );
                if reveals {
                    let AuthState::Closed {
                        last,
                        at: closed_at,
                    } = &state
                    else {
                        panic!("still closed: {ctx}");
                    };
                    let AuthState::Closed { at: frozen_at, .. } = &frozen else {
                        panic!("{ctx}");
                    };
                    assert_eq!(closed_at, frozen_at, "{ctx}");
                    assert!(
                        matches!(
                            **last,
                            AuthState::Mismatch {
                                source: MismatchSource::Platform,
                                ..
                            }
                        ),
                        "{ctx}"
                    );
                    assert!(
                        matches!(out.alert, Some(Alert::IdentitySwitched { .. })),
                        "{ctx}"
                    );
                    closed_with = Some(state.clone());
                } else {
                    assert_eq!(state, frozen, "closed is final: {ctx}");
                    assert_eq!(out.alert, None, "{ctx}");
                }
                continue;
            }
            if matches!(e, E::VA | E::VB | E::Rej) {
                seen_evidence = true;
            }
            if seen_evidence {
                assert_ne!(
                    state.name(),
                    "anonymous",
                    "evidence never looks anonymous: {ctx}"
                );
            }
            match &state {
                AuthState::Secured { user_id, until, .. } => {
                    assert_eq!(Some(user_id.as_str()), c.verified_user_id(), "{ctx}");
                    if matches!(e, E::Tick) {
                        assert!(*until > at, "a tick lapses what has ended: {ctx}");
                    }
                    assert!(!mismatched, "{ctx}");
                }
                AuthState::Failed { .. } => {
                    assert!(
                        before == state || matches!(e, E::Rej),
                        "only a rejection fails: {ctx}"
                    );
                }
                AuthState::Lapsed { .. } => {
                    assert!(
                        matches!(before, AuthState::Lapsed { .. })
                            || (matches!(e, E::Tick)
                                && matches!(before, AuthState::Secured { .. })),
                        "{ctx}"
                    );
                }
                AuthState::Mismatch {
                    verified_user_id,
                    other_user_id,
                    ..
                } => {
                    assert_ne!(verified_user_id, other_user_id, "{ctx}");
                    assert_eq!(
                        Some(verified_user_id.as_str()),
                        c.verified_user_id(),
                        "{ctx}"
                    );
                }
                AuthState::Closed { last, .. } => {
                    assert!(matches!(e, E::Close), "{ctx}");
                    assert_eq!(**last, before, "closed keeps the last state: {ctx}");
                    closed_with = Some(state.clone());
                }
                AuthState::Anonymous => assert!(!seen_evidence, "{ctx}"),
                AuthState::Unsupported => panic!("a CHAT conversation is never unsupported: {ctx}"),
            }
            if mismatched {
                assert!(
                    matches!(state, AuthState::Mismatch { .. } | AuthState::Closed { .. }),
                    "mismatch is sticky: {ctx}"
                );
            }
            let entered_mismatch = matches!(state, AuthState::Mismatch { .. })
                && !matches!(before, AuthState::Mismatch { .. });
            assert_eq!(
                entered_mismatch,
                matches!(out.alert, Some(Alert::IdentitySwitched { .. })),
                "an identity switch alerts exactly when it happens: {ctx}"
            );
            if matches!(e, E::Rej) {
                assert!(
                    matches!(out.alert, Some(Alert::VerificationFailed { .. })),
                    "{ctx}"
                );
            }
            if matches!(e, E::PA | E::PB) {
                // What the platform says can raise a mismatch, never secure anything.
                assert!(before == state || state.name() == "mismatch", "{ctx}");
            }
            mismatched |= matches!(state, AuthState::Mismatch { .. });
        }
    }
}
