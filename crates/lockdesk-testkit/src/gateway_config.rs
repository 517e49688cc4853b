//! The test gateway's configuration, one text for the gateway's own tests and the feed client's
//! tests against a real gateway: the main webhook secret, the brand's provider credential and
//! the subscribers a test picks (sam the supervisor; alice and bob, advisors). Text only: the
//! tests parse it with the gateway they link (no gateway type here, so no second copy of one).
//! And the signed delivery those tests post to it.

use std::net::SocketAddr;

/// The main webhook's signing secret.
pub const SECRET: &str = "whsec-test-main";
/// The brand's provider credential (evidence).
pub const PROVIDER: &str = "provider-credential-0123456789";
/// sam's credential: the supervisor.
pub const SAM: &str = "sam-credential-0123456789ab";
/// alice's credential: an advisor.
pub const ALICE: &str = "alice-credential-0123456789";
/// bob's credential: an advisor.
pub const BOB: &str = "bob-credential-0123456789ab";

/// The main webhook (`SECRET`) and the brand's provider (`PROVIDER`), then `rest` (more
/// webhooks, subscribers: TOML appends to each array of tables in order).
pub fn config(rest: &str) -> String {
    format!(
        "\n[[webhook]]\nname = \"main\"\nsecret = \"{SECRET}\"\n\n\
         [[provider]]\nname = \"brand\"\ncredential = \"{PROVIDER}\"\n{rest}"
    )
}

/// sam's `[[subscriber]]` table: the supervisor.
pub fn sam() -> String {
    format!("\n[[subscriber]]\nname = \"sam\"\ncredential = \"{SAM}\"\nrole = \"supervisor\"\n")
}

/// An advisor's `[[subscriber]]` table.
pub fn advisor(name: &str, credential: &str, operator_ids: &[u64]) -> String {
    let ids: Vec<String> = operator_ids.iter().map(u64::to_string).collect();
    format!(
        "\n[[subscriber]]\nname = \"{name}\"\ncredential = \"{credential}\"\nrole = \"advisor\"\n\
         operator_ids = [{}]\n",
        ids.join(", ")
    )
}

/// Posts the JSON webhook delivery `body` to the gateway at `addr`, signed with `secret` as
/// iAdvize signs (`lockdesk_sim::webhook_signature`); the gateway's response.
pub async fn post_webhook(
    http: &reqwest::Client,
    addr: SocketAddr,
    secret: &str,
    body: String,
) -> reqwest::Response {
    let signature = lockdesk_sim::webhook_signature(secret.as_bytes(), body.as_bytes());
    http.post(format!("http://{addr}/webhooks/iadvize"))
        .header("content-type", "application/json")
        .header("x-iadvize-signature", signature)
        .body(body)
        .send()
        .await
        .unwrap()
}

/// Posts the evidence `body` (JSON) to the gateway at `addr` with the brand's provider
/// credential (`PROVIDER`); the gateway's response.
pub async fn post_evidence(
    http: &reqwest::Client,
    addr: SocketAddr,
    body: String,
) -> reqwest::Response {
    http.post(format!("http://{addr}/v1/evidence"))
        .header("authorization", format!("Bearer {PROVIDER}"))
        .body(body)
        .send()
        .await
        .unwrap()
}

/// The seq the gateway answered with; the response must have this status.
pub async fn seq_of(r: reqwest::Response, status: u16) -> u64 {
    assert_eq!(r.status(), status);
    let text = r.text().await.unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["seq"].as_u64().unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tables_are_the_ones_the_tests_wrote_by_hand() {
        let text = config(&(sam() + &advisor("alice", ALICE, &[101, 102])));
        assert_eq!(
            text,
            r#"
[[webhook]]
name = "main"
secret = "whsec-test-main"

[[provider]]
name = "brand"
credential = "provider-credential-0123456789"

[[subscriber]]
name = "sam"
credential = "sam-credential-0123456789ab"
role = "supervisor"

[[subscriber]]
name = "alice"
credential = "alice-credential-0123456789"
role = "advisor"
operator_ids = [101, 102]
"#
        );
    }
}
