//! The client against the stand-in over real HTTP on 127.0.0.1:0.

use std::collections::BTreeSet;
use std::time::Duration;

use lockdesk_iadvize::standin::{Conversation, Dataset, Malformed, StandIn};
use lockdesk_iadvize::{
    Client, ClosedConversation, Credentials, Error, Interval, Operator, Options,
};

const USER: &str = "backfill@brand.example";
const PASSWORD: &str = "correct horse battery staple 42";
const DAY: Duration = Duration::from_secs(86_400);

fn conversation(n: usize, visitor: &str, closed_at: &str) -> Conversation {
    Conversation {
        id: format!("00000000-0000-4000-8000-{n:012}"),
        visitor_id: visitor.to_string(),
        external_user_id: (!n.is_multiple_of(3)).then(|| format!("user-{}", n % 5)),
        channel: if n.is_multiple_of(4) {
            "MOBILE_APP"
        } else {
            "CHAT"
        }
        .to_string(),
        created_at: "2026-01-10T09:00:00Z".to_string(),
        closed_at: closed_at.to_string(),
        operator_id: n.is_multiple_of(2).then_some(100 + n as u64),
        operator_email: n.is_multiple_of(2).then(|| format!("op{n}@brand.example")),
    }
}

/// 250 conversations of v1/v2 closed in January, plus some of v3 and some outside the interval.
fn dataset() -> Dataset {
    let mut conversations = Vec::new();
    for n in 0..250usize {
        let visitor = if n.is_multiple_of(2) { "v1" } else { "v2" };
        conversations.push(conversation(n, visitor, "2026-01-15T10:00:00Z"));
    }
    for n in 250..270 {
        conversations.push(conversation(n, "v3", "2026-01-15T10:00:00Z"));
    }
    for n in 270..280 {
        conversations.push(conversation(n, "v1", "2026-03-01T10:00:00Z"));
    }
    Dataset {
        users: vec![(USER.to_string(), PASSWORD.to_string())],
        conversations,
    }
}

fn january() -> Interval {
    Interval {
        from: "2026-01-01T00:00:00Z".into(),
        to: "2026-01-31T23:59:59Z".into(),
    }
}

fn visitors(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

async fn standin(lifetime: Duration) -> StandIn {
    StandIn::start(dataset(), lifetime, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

fn client(s: &StandIn, options: Options) -> Client {
    Client::new(s.endpoints(), Credentials::new(USER, PASSWORD), options).unwrap()
}

/// The closed conversations of `v` in January.
async fn closed(c: &Client, v: &[&str]) -> Result<Vec<ClosedConversation>, Error> {
    c.closed_conversations(&visitors(v), &january()).await
}

fn fast() -> Options {
    Options {
        first_retry_wait: Duration::from_millis(10),
        max_retry_wait: Duration::from_secs(2),
        ..Options::default()
    }
}

#[tokio::test]
async fn pages_are_followed_to_the_end_and_the_token_is_asked_once() {
    let s = standin(DAY).await;
    let c = client(&s, fast());
    for round in 0..3 {
        let got = closed(&c, &["v1", "v2"]).await.unwrap();
        assert_eq!(got.len(), 250, "round {round}");
        let ids: BTreeSet<_> = got.iter().map(|c| c.conversation_id.clone()).collect();
        assert_eq!(ids.len(), 250, "a conversation came twice");
        // The visitor id is the one each query asked for: v1 has the even n, v2 the odd ones.
        for conv in &got {
            let n: usize = conv.conversation_id[24..].parse().unwrap();
            let want = if n.is_multiple_of(2) { "v1" } else { "v2" };
            assert_eq!(
                conv.visitor_id.as_deref(),
                Some(want),
                "{}",
                conv.conversation_id
            );
        }
    }
    // One query per visitor (the visitor id is inferred from the filter), 125 each at 100 per
    // page: 2 pages per visitor, 4 per round.
    assert_eq!(c.graphql_requests(), 12);
    assert_eq!(s.graphql_requests(), 12);
    assert_eq!(c.token_requests(), 1);
    assert_eq!(s.token_requests(), 1);
}

#[tokio::test]
async fn small_pages_are_complete_and_filters_apply() {
    let s = standin(DAY).await;
    let c = client(
        &s,
        Options {
            page_size: 7,
            ..fast()
        },
    );
    let got = closed(&c, &["v1"]).await.unwrap();
    // v1: the 125 even n below 250 (the March ones and v3's are filtered out).
    assert_eq!(got.len(), 125);
    assert!(got.iter().all(|c| c.visitor_id.as_deref() == Some("v1")));
    assert!(got
        .iter()
        .all(|c| c.closed_at.as_deref() == Some("2026-01-15T10:00:00Z")));
    assert_eq!(c.graphql_requests(), 125usize.div_ceil(7) as u64);
    // Page size above iAdvize's maximum is capped (100), not refused.
    let big = client(
        &s,
        Options {
            page_size: 1000,
            ..fast()
        },
    );
    assert_eq!(closed(&big, &["v1", "v2", "v3"]).await.unwrap().len(), 270);
    // v1 and v2: 125 each (2 pages of 100), v3: 20 (1 page).
    assert_eq!(big.graphql_requests(), 5);
}

#[tokio::test]
async fn results_are_typed_with_the_visitors_external_user_id_and_the_operator() {
    let s = standin(DAY).await;
    let c = client(&s, fast());
    let got = closed(&c, &["v1"]).await.unwrap();
    let n4 = got
        .iter()
        .find(|c| c.conversation_id == "00000000-0000-4000-8000-000000000004")
        .unwrap();
    assert_eq!(n4.channel, "MOBILE_APP");
    assert_eq!(n4.created_at, "2026-01-10T09:00:00Z");
    assert_eq!(n4.external_user_id.as_deref(), Some("user-4"));
    assert_eq!(
        n4.operator,
        Some(Operator {
            id: "104".into(),
            email: Some("op4@brand.example".into()),
            name: None
        })
    );
    let n0 = got
        .iter()
        .find(|c| c.conversation_id == "00000000-0000-4000-8000-000000000000")
        .unwrap();
    assert_eq!(n0.external_user_id, None, "an anonymous visitor has none");
}

#[tokio::test]
async fn an_expired_token_is_renewed_once_and_the_query_goes_through() {
    let s = standin(DAY).await;
    let c = client(&s, fast());
    closed(&c, &["v3"]).await.unwrap();
    s.expire_tokens();
    let got = closed(&c, &["v3"]).await.unwrap();
    assert_eq!(got.len(), 20);
    assert_eq!(c.token_requests(), 2);
    assert_eq!(s.token_requests(), 2);
}

#[tokio::test]
async fn a_token_near_its_expiry_is_renewed_before_use() {
    // Tokens that live 60 s, renewed 300 s before expiry: every query needs a new one...
    let s = standin(Duration::from_secs(60)).await;
    let c = client(&s, fast());
    for _ in 0..3 {
        closed(&c, &["v3"]).await.unwrap();
    }
    assert_eq!(c.token_requests(), 3);
    // ...while with a margin below the lifetime one token serves them all.
    let c = client(
        &s,
        Options {
            refresh_margin: Duration::from_secs(10),
            ..fast()
        },
    );
    for _ in 0..3 {
        closed(&c, &["v3"]).await.unwrap();
    }
    assert_eq!(c.token_requests(), 1);
}

#[tokio::test]
async fn http_429_is_waited_out_and_retried() {
    let s = standin(DAY).await;
    let c = client(&s, fast());
    // With Retry-After: 0 and without (the client's own backoff).
    s.answer_429(2, Some(0));
    assert_eq!(closed(&c, &["v3"]).await.unwrap().len(), 20);
    s.answer_429(2, None);
    assert_eq!(closed(&c, &["v3"]).await.unwrap().len(), 20);
    // Token request (throttled twice, then granted) + 1 page, then 2 throttled + 1 page.
    assert_eq!(s.token_requests(), 3);
    assert_eq!(s.graphql_requests(), 4);
}

#[tokio::test]
async fn retries_are_bounded() {
    let s = standin(DAY).await;
    let c = client(
        &s,
        Options {
            max_retries: 3,
            ..fast()
        },
    );
    s.answer_429(100, Some(0));
    let e = closed(&c, &["v3"]).await.unwrap_err();
    assert!(
        matches!(e, Error::RateLimited { retry_after: Some(d) } if d.is_zero()),
        "{e:?}"
    );
    assert_eq!(s.token_requests(), 4, "1 try + 3 retries");

    // A Retry-After longer than we accept to wait: give up at once, saying how long.
    s.answer_429(1, Some(3600));
    let e = closed(&c, &["v3"]).await.unwrap_err();
    assert!(
        matches!(e, Error::RateLimited { retry_after: Some(d) } if d.as_secs() == 3600),
        "{e:?}"
    );
    assert!(e.to_string().contains("3600s"));
}

#[tokio::test]
async fn the_login_rate_limit_is_enforced_and_reported() {
    let s = standin(DAY).await;
    let c = client(
        &s,
        Options {
            max_retry_wait: Duration::from_secs(1),
            ..fast()
        },
    );
    for _ in 0..10 {
        closed(&c, &["v3"]).await.unwrap();
        s.expire_tokens();
    }
    let e = closed(&c, &["v3"]).await.unwrap_err();
    assert!(
        matches!(e, Error::RateLimited { retry_after: Some(d) } if d.as_secs() == 60),
        "{e:?}"
    );
}

#[tokio::test]
async fn bad_credentials_are_a_specific_error_that_never_shows_the_password() {
    let s = standin(DAY).await;
    let c = Client::new(
        s.endpoints(),
        Credentials::new(USER, "wrong password 1234"),
        fast(),
    )
    .unwrap();
    let e = closed(&c, &["v1"]).await.unwrap_err();
    assert!(matches!(e, Error::BadCredentials), "{e:?}");
    for text in [format!("{e}"), format!("{e:?}"), format!("{c:?}")] {
        assert!(!text.contains("wrong password"), "{text}");
    }
    let ok = client(&s, fast());
    assert!(!format!("{ok:?}").contains(PASSWORD));
    assert!(!format!("{:?}", Credentials::new(USER, PASSWORD)).contains(PASSWORD));
}

#[tokio::test]
async fn malformed_answers_are_specific_errors_and_the_client_keeps_working() {
    let s = standin(DAY).await;
    let c = client(&s, fast());
    let cases = [
        (Malformed::TokenNotJson, "token", None),
        (Malformed::TokenMissingFields, "token", None),
        (Malformed::GraphQlNotJson, "GraphQL", None),
        (
            Malformed::GraphQlWrongShape,
            "closedConversations",
            Some("unexpected content"),
        ),
        (
            Malformed::GraphQlNodeWithoutId,
            "closedConversations",
            Some("id"),
        ),
        (
            Malformed::GraphQlNextPageWithoutCursor,
            "closedConversations",
            Some("endCursor"),
        ),
    ];
    for (kind, expected_what, mentions) in cases {
        if matches!(
            kind,
            Malformed::TokenNotJson | Malformed::TokenMissingFields
        ) {
            s.expire_tokens();
            // Force a new token request on this client too.
            let fresh = client(&s, fast());
            s.malformed(kind);
            let e = closed(&fresh, &["v3"]).await.unwrap_err();
            assert!(
                matches!(&e, Error::Malformed { what, .. } if *what == expected_what),
                "{kind:?}: {e:?}"
            );
            continue;
        }
        s.malformed(kind);
        let e = closed(&c, &["v3"]).await.unwrap_err();
        match &e {
            Error::Malformed { what, detail } => {
                assert_eq!(*what, expected_what, "{kind:?}: {e}");
                if let Some(m) = mentions {
                    assert!(detail.contains(m), "{kind:?}: {detail}");
                }
            }
            other => panic!("{kind:?}: expected Malformed, got {other:?}"),
        }
        // The next, well-formed answer is read normally.
        assert_eq!(closed(&c, &["v3"]).await.unwrap().len(), 20);
    }
}

#[tokio::test]
async fn an_unreachable_api_is_a_transport_error() {
    let s = standin(DAY).await;
    let endpoints = s.endpoints();
    drop(s);
    // Give the aborted server task a moment to release the port? Not needed: connection refused
    // or reset are both transport errors.
    let c = Client::new(endpoints, Credentials::new(USER, PASSWORD), fast()).unwrap();
    let e = closed(&c, &["v1"]).await.unwrap_err();
    assert!(matches!(e, Error::Transport(_)), "{e:?}");
}

/// A GraphQL request as the client sends it, with a fresh token.
async fn post_query(s: &StandIn, query: &str, variables: serde_json::Value) -> serde_json::Value {
    // reqwest is built without a default crypto provider (as in the client).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    let token: serde_json::Value = http
        .post(s.endpoints().token)
        .form(&[
            ("username", USER),
            ("password", PASSWORD),
            ("grant_type", "password"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    http.post(s.endpoints().graphql)
        .bearer_auth(token["access_token"].as_str().unwrap())
        .json(&serde_json::json!({"query": query, "variables": variables}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The query this client sent until iAdvize retired `Visitor.visitorId` (2025-04-07).
const OLD_QUERY: &str = "query Backfill($from: DateTime!, $to: DateTime!, $visitorIds: [UUID!], $first: Int, $after: String) {
  closedConversations(filters: {interval: {from: $from, to: $to}, conversationVisitorIds: $visitorIds}, first: $first, after: $after) {
    pageInfo { hasNextPage endCursor }
    edges { node {
      id channel createdAt closedAt
      visitor { visitorId externalUserId }
      users { __typename ... on Professional { id email firstName lastName } }
    } }
  }
}";

#[tokio::test]
async fn the_standin_refuses_retired_fields_as_iadvize_does() {
    let s = standin(DAY).await;
    let vars = serde_json::json!({"from": "2026-01-01T00:00:00Z", "to": "2026-01-31T23:59:59Z",
                                  "visitorIds": ["v1"], "first": 10});
    let answer = post_query(&s, OLD_QUERY, vars).await;
    assert!(answer.get("data").is_none(), "{answer}");
    let errors = answer["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{answer}");
    assert_eq!(
        errors[0]["message"],
        "Cannot query field \"visitorId\" on type \"Visitor\"."
    );
    assert_eq!(errors[0]["locations"][0]["line"], 6, "{answer}");
    assert_eq!(errors[0]["extensions"]["code"], "GRAPHQL_VALIDATION_FAILED");

    // Every field iAdvize retired, through an alias and a fragment too.
    for (query, field) in [
        ("{ closedConversations(filters: {interval: {from: \"a\", to: \"b\"}}) { edges { node { v: visitor { legacyVisitorId } } } } }", "legacyVisitorId"),
        ("{ closedConversations(filters: {interval: {from: \"a\", to: \"b\"}}) { edges { node { visitor { ...V } } } } } fragment V on Visitor { externalId }", "externalId"),
        ("{ closedConversations(filters: {interval: {from: \"a\", to: \"b\"}}) { edges { node { conversationVisitors { visitorId } } } } }", "conversationVisitors"),
        ("{ closedConversations(filters: {interval: {from: \"a\", to: \"b\"}}) { edges { node { visitors { edges { node { visitorId } } } } } } }", "visitors"),
    ] {
        let answer = post_query(&s, query, serde_json::json!({})).await;
        let messages: Vec<&str> = answer["errors"]
            .as_array()
            .unwrap_or_else(|| panic!("{field}: {answer}"))
            .iter()
            .map(|e| e["message"].as_str().unwrap())
            .collect();
        let on = if field.starts_with("conversation") || field == "visitors" {
            "Conversation"
        } else {
            "Visitor"
        };
        // Once, also when reached through a fragment.
        assert_eq!(
            messages,
            [format!("Cannot query field \"{field}\" on type \"{on}\".")],
            "{field}: {answer}"
        );
        assert!(answer.get("data").is_none(), "{answer}");
    }
}

#[tokio::test]
async fn the_standin_refuses_what_the_schema_does_not_have_and_bad_syntax() {
    let s = standin(DAY).await;
    for (query, expect) in [
        ("{ closedConversations(filters: {interval: {from: \"a\", to: \"b\"}}) { edges { node { colour } } } }", "colour"),
        ("{ closedConversations(filters: {interval: {from: \"a\", to: \"b\"}}, sort: ASC) { edges { node { id } } } }", "sort"),
        ("{ closedConversations(filters: {}) { edges { node { id } } } }", "interval"),
        ("{ closedConversations(filters: {interval: {from: \"a\", to: \"b\"}}) { edges { node { id } } }", "syntax"),
        ("{ closedConversations(filters: {interval: {from: \"a\", to: \"b\"}}) { edges { node { visitor } } } }", "visitor"),
    ] {
        let answer = post_query(&s, query, serde_json::json!({})).await;
        let errors = answer["errors"].as_array().unwrap_or_else(|| panic!("{expect}: {answer}"));
        assert!(!errors.is_empty(), "{expect}: {answer}");
        assert!(answer.get("data").is_none(), "{expect}: {answer}");
    }
    // The schema excerpt itself is valid GraphQL (the stand-in would not start otherwise).
    lockdesk_iadvize::standin::schema().unwrap();
}

#[tokio::test]
async fn the_standin_answers_the_clients_query_with_exactly_the_selected_fields() {
    let s = standin(DAY).await;
    let vars = serde_json::json!({"from": "2026-01-01T00:00:00Z", "to": "2026-01-31T23:59:59Z",
                                  "visitorId": "v3", "first": 1});
    let answer = post_query(&s, lockdesk_iadvize::QUERY, vars).await;
    assert!(answer.get("errors").is_none(), "{answer}");
    let page = &answer["data"]["closedConversations"];
    assert_eq!(
        page["pageInfo"],
        serde_json::json!({"hasNextPage": true, "endCursor": "cursor:1"})
    );
    let node = &page["edges"][0]["node"];
    let keys: BTreeSet<&str> = node
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let asked = BTreeSet::from(["id", "channel", "createdAt", "closedAt", "visitor", "users"]);
    assert_eq!(keys, asked);
    assert_eq!(
        node["visitor"],
        serde_json::json!({"externalUserId": "user-0"})
    );
    assert_eq!(
        node["users"][0],
        serde_json::json!({"__typename": "Professional", "id": 350, "email": "op250@brand.example",
                           "firstName": null, "lastName": null})
    );
    // Aliases are answered under their name.
    let answer = post_query(
        &s,
        "query($v: UUID!) { a: closedConversations(filters: {interval: {from: \"2026-01-01T00:00:00Z\", to: \"2026-02-01T00:00:00Z\"}, conversationVisitorIds: [$v]}, first: 2) { edges { cursor } } }",
        serde_json::json!({"v": "v3"}),
    )
    .await;
    assert_eq!(
        answer["data"]["a"]["edges"],
        serde_json::json!([{"cursor": "cursor:1"}, {"cursor": "cursor:2"}])
    );
}
