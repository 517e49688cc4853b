//! Issue 14's visible defect, end to end: a form-encoded `v2.conversation.pushed` (its
//! `operatorId` a digit string) goes through a real gateway (signature, store, feed routing) to
//! an advisor's desk (real WebSocket, real SQLite store), and the desk files the conversation
//! under that operator. Before the payload model was shared, the gateway routed it to the
//! advisor (it read digit strings) and the desk stored it without an operator (it read only JSON
//! numbers).

use std::net::SocketAddr;
use std::time::Duration;

use lockdesk_desk::{ConversationQuery, OperatorId};
use lockdesk_feed_client::Credential;
use lockdesk_gateway::{FeedOptions, GatewayConfig, ServerOptions};
use lockdesk_service::DeskService;
use lockdesk_sim::SimKeys;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

const ADVISOR: &str = "payloads-advisor-credential-0123";

/// Posts a signed delivery with this content type; returns its seq.
async fn deliver(addr: SocketAddr, content_type: &str, body: &str) -> u64 {
    let sig = lockdesk_sim::webhook_signature(WEBHOOK_SECRET.as_bytes(), body.as_bytes());
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "POST /webhooks/iadvize HTTP/1.1\r\nHost: gw\r\nContent-Type: {content_type}\r\n\
         x-iadvize-signature: {sig}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(request.as_bytes()).await.unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).await.unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    let json = &reply[reply.find("\r\n\r\n").unwrap() + 4..];
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    v["seq"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_encoded_push_reaches_the_advisors_desk_with_its_operator() {
    let root = tempfile::tempdir().unwrap();
    let (private, public) = desk_keys(root.path());
    let sim_keys = SimKeys::generate(&lockdesk_sim::read_desk_public(&public).unwrap()).unwrap();
    let jwks = root.path().join("brand.jwks.json");
    std::fs::write(&jwks, &sim_keys.brand_public_jwks).unwrap();

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
    deliver(
        addr,
        "application/json",
        r#"{"eventId":"e-other","eventType":"v2.conversation.pushed","conversationId":"c-other",
            "visitorId":"v-other","channel":"CHAT","operatorId":7}"#,
    )
    .await;
    let form = deliver(
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
