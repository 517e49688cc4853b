//! Every simulator scenario ends in the right states and alerts, whether the desk gets every
//! entry in order (supervisor) or the visitor's earlier evidence bundled with the push (advisor).

use lockdesk_desk::{ConversationDetail, ConversationQuery, Desk};
use lockdesk_sim::Scenario;

use crate::*;

fn detail(desk: &Desk, id: &str) -> ConversationDetail {
    desk.conversation(id)
        .unwrap()
        .unwrap_or_else(|| panic!("no conversation {id}"))
}

fn alert_codes(d: &ConversationDetail) -> Vec<&str> {
    d.alerts
        .iter()
        .map(|a| a.code.expect("a kind this build knows").code())
        .collect()
}

/// (auth state kept at the close, reason, alert codes) per conversation of a scenario.
type Expected<'a> = &'a [(&'a str, Option<&'a str>, &'a [&'a str])];

fn check(desk: &Desk, steps: &[Step], s: Scenario, expected: Expected<'_>) {
    let convs = conversations_of(steps, s);
    assert_eq!(convs.len(), expected.len(), "{}", s.name());
    for (id, (auth, reason, alerts)) in convs.iter().zip(expected) {
        let d = detail(desk, id);
        let ctx = format!("{}: {:?}", s.name(), d.row);
        assert_eq!(d.row.state, AuthStateName::Closed, "{ctx}");
        assert_eq!(d.row.auth_state.code(), *auth, "{ctx}");
        assert_eq!(d.row.reason.map(ReasonCode::code), *reason, "{ctx}");
        assert_eq!(alert_codes(&d), *alerts, "{ctx}");
    }
}

fn run(role: Role) -> (tempfile::TempDir, Desk, Vec<Step>) {
    let dir = tempfile::tempdir().unwrap();
    let world = World::new(dir.path());
    let steps = all_scenarios(7);
    let feed = entries(&world, &steps, role);
    let mut desk = world.desk(&dir.path().join("desk.sqlite3"));
    for chunk in feed.chunks(7) {
        let applied = desk
            .apply(chunk, chunk[chunk.len() - 1].received_at_ms)
            .unwrap();
        assert!(applied.skipped.is_empty(), "{:?}", applied.skipped);
    }
    assert_eq!(desk.cursor(), steps.len() as u64);
    (dir, desk, steps)
}

fn check_all(desk: &Desk, steps: &[Step]) {
    use Scenario as S;
    // Per scenario, its conversations' (auth state, reason, alert codes), as `check` takes them.
    let expected: [(S, Expected); 12] = [
        (S::Anonymous, &[("anonymous", None, &[])]),
        (S::LoginMidConversation, &[("secured", None, &[])]),
        (S::TokenEveryPage, &[("secured", None, &[])]),
        (
            S::MultiDevice,
            &[
                ("secured", None, &[]),
                ("secured", None, &[]),
                ("secured", None, &[]),
            ],
        ),
        (S::SessionLapse, &[("lapsed", None, &["session_lapsed"])]),
        (
            S::Forged,
            &[("failed", Some("bad_signature"), &["verification_failed"])],
        ),
        (
            S::Expired,
            &[("failed", Some("expired"), &["verification_failed"])],
        ),
        (
            S::UnknownKey,
            &[("failed", Some("unknown_key"), &["verification_failed"])],
        ),
        (S::ThirdPartyChannel, &[("unsupported", None, &[])]),
        (
            S::SharedDevice,
            &[
                ("secured", None, &[]),
                ("secured", None, &["shared_device"]),
            ],
        ),
        (
            S::ReusedUserId,
            &[
                ("secured", None, &[]),
                ("secured", None, &["reused_user_id"]),
            ],
        ),
        (
            S::LookAlike,
            &[
                ("secured", None, &[]),
                ("secured", None, &["lookalike_user_id"]),
            ],
        ),
    ];
    for (s, conversations) in expected {
        check(desk, steps, s, conversations);
    }
    let lookalike = conversations_of(steps, S::LookAlike);
    let people = users_of(steps, S::LookAlike);
    let fake = detail(desk, &lookalike[1]);
    assert_eq!(fake.row.user_id.as_deref(), Some(&*people[1]));
    assert_eq!(fake.alerts[0].evidence["imitates"], people[0].as_str());
    let marker = fake.row.look_alike.as_ref().unwrap();
    assert_eq!(marker.imitates.as_deref(), Some(&*people[0]));
    assert!(marker.mixed_script);

    // The right people in the right conversations.
    let shared = conversations_of(steps, S::SharedDevice);
    let people = users_of(steps, S::SharedDevice);
    assert_ne!(people[0], people[1]);
    assert_eq!(
        detail(desk, &shared[0]).row.user_id.as_deref(),
        Some(&*people[0])
    );
    assert_eq!(
        detail(desk, &shared[1]).row.user_id.as_deref(),
        Some(&*people[1])
    );
    let ev = &detail(desk, &shared[1]).alerts[0].evidence;
    assert_eq!(ev["previousUserId"], people[0].as_str());
    assert_eq!(ev["userId"], people[1].as_str());

    let reused = detail(desk, &conversations_of(steps, S::ReusedUserId)[1]);
    let ev = &reused.alerts[0].evidence;
    assert!(
        ev["differs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "email"),
        "{ev}"
    );
    assert_ne!(ev["previous"]["email"], ev["current"]["email"]);

    let every_page = detail(desk, &conversations_of(steps, S::TokenEveryPage)[0]);
    assert_eq!(
        every_page.presentations.len(),
        5,
        "the token before the push counts too"
    );
    assert!(every_page
        .presentations
        .iter()
        .all(|p| p.verdict == PresentationVerdict::Verified));

    // What the store shows is what the audit log says (evidence before its push, bundled or
    // not, included): no false alarm.
    let agreed = desk.check_against_audit(&mut |_| {}).unwrap();
    assert!(agreed.agrees(), "{:#?}", agreed.disagreements);
    assert!(agreed.conversations > 0 && agreed.alerts > 0);
}

#[test]
fn scenarios_end_in_the_right_states_and_alerts_as_a_supervisor() {
    let (_dir, desk, steps) = run(Role::Supervisor);
    check_all(&desk, &steps);
}

#[test]
fn scenarios_end_in_the_right_states_and_alerts_as_an_advisor() {
    let (_dir, desk, steps) = run(Role::Advisor);
    check_all(&desk, &steps);
}

#[test]
fn cross_device_history_and_the_identity_card() {
    let (_dir, desk, steps) = run(Role::Advisor);
    let user = &users_of(&steps, Scenario::MultiDevice)[0];
    let h = desk.history(user).unwrap();
    assert!(h.known);
    assert_eq!(h.visitors.len(), 3, "laptop, phone browser, app");
    assert_eq!(h.conversations.len(), 3);
    let sources: Vec<_> = h
        .conversations
        .iter()
        .map(|c| {
            (
                c.row.channel.as_str(),
                c.row.source.map(VisitorSource::code),
                c.row.device.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        sources,
        [
            ("CHAT", Some("web"), Some("laptop")),
            ("CHAT", Some("web"), Some("phone")),
            ("MOBILE_APP", Some("app"), Some("phone")),
        ]
    );
    let domains: Vec<_> = h
        .conversations
        .iter()
        .map(|c| c.row.domain.clone())
        .collect();
    assert_eq!(domains[0].as_deref(), Some("www.brand.example"));
    assert_eq!(domains[1].as_deref(), Some("shop.brand.example"));
    assert!(h
        .conversations
        .iter()
        .all(|c| c.row.auth_state == AuthStateName::Secured));
    assert!(
        h.conversations.iter().all(|c| !c.anonymous_before_login),
        "the token came before the push"
    );
    assert!(h.visitor_data.as_ref().unwrap()["email"].is_string());

    // Login mid-conversation: the part before the login is marked.
    let login_user = &users_of(&steps, Scenario::LoginMidConversation)[0];
    let h = desk.history(login_user).unwrap();
    assert_eq!(h.conversations.len(), 1);
    assert!(h.conversations[0].anonymous_before_login);
    let d = desk
        .conversation(&h.conversations[0].row.conversation_id)
        .unwrap()
        .unwrap();
    let states: Vec<(&str, bool)> = d
        .transitions
        .iter()
        .map(|t| (t.state.code(), t.before_login))
        .collect();
    assert_eq!(
        states,
        [("anonymous", true), ("secured", false), ("closed", false)]
    );
    let card = d.identity.unwrap();
    assert_eq!(&card.user_id, login_user);
    assert_eq!(card.issuer, lockdesk_sim::plan::ISSUER);
    assert!(!card.signing_key.is_empty() && card.decryption_key.is_some());
    assert_eq!(card.session_until_ms, d.row.until_ms);
    assert!(card.visitor_data.unwrap()["firstName"].is_string());
    assert!(d.row.name.is_some());
    assert_eq!(d.presentations[0].token_sha256.len(), 64);

    // A userId nobody proved.
    let h = desk.history("nobody").unwrap();
    assert!(!h.known && h.conversations.is_empty());

    // The list shows every conversation, most recent first.
    let rows = desk.conversations(&ConversationQuery::default()).unwrap();
    assert_eq!(
        rows.len(),
        17,
        "two per two-person scenario (shared device, reused id, look-alike)"
    );
    assert!(rows.windows(2).all(|w| w[0].opened_ms >= w[1].opened_ms));
}

#[test]
fn a_supervisor_and_an_advisor_reach_the_same_store() {
    let (_a, sup, _) = run(Role::Supervisor);
    let (_b, adv, _) = run(Role::Advisor);
    let strip = |desk: &Desk| {
        let mut rows = desk.conversations(&ConversationQuery::default()).unwrap();
        rows.sort_by(|a, b| a.conversation_id.cmp(&b.conversation_id));
        rows.into_iter()
            .map(|r| {
                (
                    r.conversation_id,
                    r.auth_state,
                    r.reason,
                    r.user_id,
                    r.since_ms,
                    r.until_ms,
                )
            })
            .collect::<Vec<_>>()
    };
    // The two runs minted their own brand keys and plans with the same seed: same ids, states.
    assert_eq!(strip(&sup), strip(&adv));
    let codes = |desk: &Desk| {
        let mut c: Vec<Option<AlertKind>> = desk
            .alerts(None, 0)
            .unwrap()
            .into_iter()
            .map(|a| a.code)
            .collect();
        c.sort();
        c
    };
    assert_eq!(codes(&sup), codes(&adv));
    // The list's per-conversation counts agree with the alerts themselves.
    let all = sup.alerts(None, 10_000).unwrap();
    let mut by_conversation = std::collections::HashMap::new();
    for a in &all {
        if let Some(c) = &a.conversation_id {
            *by_conversation.entry(c.clone()).or_insert(0u32) += 1;
        }
    }
    assert!(by_conversation.values().any(|&n| n > 1) || by_conversation.len() > 1);
    assert_eq!(sup.alert_counts().unwrap(), by_conversation);
}
