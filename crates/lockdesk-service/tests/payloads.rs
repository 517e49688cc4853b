//! Issue 14's visible defect, end to end: a form-encoded `v2.conversation.pushed` (its
//! `operatorId` a digit string) goes through a real gateway (signature, store, feed routing) to
//! an advisor's desk (real WebSocket, real SQLite store), and the desk files the conversation
//! under that operator. Before the payload model was shared, the gateway routed it to the
//! advisor (it read digit strings) and the desk stored it without an operator (it read only JSON
//! numbers).

use std::time::Duration;

use lockdesk_desk::{ConversationQuery, OperatorId};
use lockdesk_feed_client::Credential;
use lockdesk_gateway::{FeedOptions, GatewayConfig, ServerOptions};
use lockdesk_service::DeskService;

use crate::support::*;

const ADVISOR: &str = "payloads-advisor-credential-0123";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_encoded_push_reaches_the_advisors_desk_with_its_operator() {
    let root = tempfile::tempdir().unwrap();
    let Keys { private, jwks, .. } = keys(root.path());

    let config = GatewayConfig::from_toml(&format!(
        "[[webhook]]\nname = \"sim\"\nsecret = \"{WEBHOOK_SECRET}\"\n\n\
         [[subscriber]]\nname = \"ada\"\ncredential = \"{ADVISOR}\"\nrole = \"advisor\"\n\
         operator_ids = [42]\n"
    ))
    .unwrap();
    let options = ServerOptions {
        feed: FeedOptions {
            heartbeat: Duration::from_secs(2),
            ..Default::default()
        },
        ..Default::default()
    };
    let gateway = lockdesk_gateway::start_with(
        config,
        &root.path().join("gateway"),
        "127.0.0.1:0".parse().unwrap(),
        options,
    )
    .await
    .unwrap();
    let addr = gateway.local_addr();

    // Another operator's conversation (JSON): never this advisor's.
    deliver_signed(
        addr,
        "application/json",
        r#"{"eventId":"e-other","eventType":"v2.conversation.pushed","conversationId":"c-other",
            "visitorId":"v-other","channel":"CHAT","operatorId":7}"#,
    )
    .await;
    let form = deliver_signed(
        addr,
        "application/x-www-form-urlencoded",
        "eventId=e-form&eventType=v2.conversation.pushed&platform=ha&clientId=1\
         &conversationId=c-form&visitorId=v-form&channel=CHAT&operatorId=42",
    )
    .await;

    let mut desk_options = options_for(
        &root.path().join("desk"),
        &[&format!("ws://{addr}/v1/feed")],
        &private,
        &jwks,
    );
    desk_options.credential = Credential::new(ADVISOR);
    let service = DeskService::start(desk_options).await.unwrap();
    wait_cursor(&service, form, "the form-encoded push").await;

    let rows = service.read(|d| d.conversations(&ConversationQuery::default()).unwrap());
    let found: Vec<(&str, Option<OperatorId>)> = rows
        .iter()
        .map(|r| (r.conversation_id.as_str(), r.operator_id))
        .collect();
    assert_eq!(found, vec![("c-form", OperatorId::new(42))]);

    service.shutdown().await;
    gateway.shutdown().await.unwrap();
}
