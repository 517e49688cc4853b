//! Playing a plan against a gateway over HTTP, as iAdvize and the brand's token provider would.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::plan::{Action, Step};
use crate::sign::sign_webhook;
use crate::tokens::{KeysError, SimKeys};

/// Where to send and with which secrets.
pub struct Target {
    /// The gateway's base URL, e.g. `http://127.0.0.1:8080`.
    pub gateway: String,
    /// The webhook secret of the simulated iAdvize app.
    pub webhook_secret: Vec<u8>,
    /// The bearer credential of the simulated token provider.
    pub provider_token: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    #[error("{url}: {message}")]
    Http { url: String, message: String },
    #[error("{url} answered {status}: {body}")]
    Refused {
        url: String,
        status: u16,
        body: String,
    },
    #[error(transparent)]
    Keys(#[from] KeysError),
}

impl SendError {
    /// A refusal that retrying cannot fix (wrong secret or credential): stop the run.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            SendError::Refused {
                status: 401 | 403,
                ..
            }
        )
    }
}

/// What a run did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub webhooks: u64,
    pub evidence: u64,
    pub failed: u64,
}

/// Sends steps to one gateway.
pub struct Sender {
    client: reqwest::blocking::Client,
    target: Target,
    keys: SimKeys,
    attempt: u32,
}

fn rfc3339(t: SystemTime) -> String {
    lockdesk_text::time::format_ms(lockdesk_text::time::ms_since_epoch(t))
}

impl Sender {
    pub fn new(target: Target, keys: SimKeys) -> Result<Sender, SendError> {
        // For an https:// gateway; a no-op when a provider is already installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(1))
            .build()
            .map_err(|e| SendError::Client(e.to_string()))?;
        Ok(Sender {
            client,
            target,
            keys,
            attempt: 0,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.target.gateway.trim_end_matches('/'), path)
    }

    /// Sends one step now. Returns the JSON the gateway answered.
    pub fn send(&mut self, step: &Step) -> Result<Value, SendError> {
        let now = SystemTime::now();
        let (url, request) = match &step.action {
            Action::Webhook {
                correlation_id,
                body,
            } => {
                let mut body = body.clone();
                let stamp = rfc3339(now);
                body.insert("createdAt".into(), stamp.clone().into());
                body.insert("sentAt".into(), stamp.into());
                let bytes = serde_json::to_vec(&body).unwrap_or_default();
                self.attempt += 1;
                let url = self.url("/webhooks/iadvize");
                let mut req = self
                    .client
                    .post(&url)
                    .header("content-type", "application/json");
                for (name, value) in sign_webhook(
                    &self.target.webhook_secret,
                    &bytes,
                    correlation_id,
                    self.attempt,
                ) {
                    req = req.header(name, value);
                }
                (url, req.body(bytes))
            }
            Action::Evidence(e) => {
                let unix = now
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs() as i64)
                    .unwrap_or(0);
                let token = self.keys.mint(&e.token, unix)?;
                let mut source = serde_json::Map::new();
                if let Some(d) = &e.source.domain {
                    source.insert("domain".into(), d.clone().into());
                }
                source.insert("device".into(), e.source.device.clone().into());
                if let Some(a) = &e.source.app {
                    source.insert("app".into(), a.clone().into());
                }
                let mut body = json!({
                    "visitorId": e.visitor_id,
                    "token": token,
                    "presentedAt": rfc3339(now),
                    "source": source,
                });
                if let Some(c) = &e.conversation_id {
                    body["conversationId"] = c.clone().into();
                }
                let url = self.url("/v1/evidence");
                let req = self
                    .client
                    .post(&url)
                    .bearer_auth(&self.target.provider_token)
                    .header("content-type", "application/json")
                    .body(body.to_string());
                (url, req)
            }
        };
        let response = request.send().map_err(|e| SendError::Http {
            url: url.clone(),
            message: e.to_string(),
        })?;
        let status = response.status().as_u16();
        let text = response.text().unwrap_or_default();
        if !(200..300).contains(&status) {
            return Err(SendError::Refused {
                url,
                status,
                body: text.chars().take(300).collect(),
            });
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Plays `steps` on their own timeline (`at_ms` after `start`), or at `rate` steps per second
    /// when given. Stops at `deadline`, or at the first fatal refusal. `report` sees every result.
    pub fn play(
        &mut self,
        steps: &[Step],
        start: Instant,
        rate: Option<f64>,
        deadline: Option<Instant>,
        mut report: impl FnMut(&Step, &Result<Value, SendError>),
    ) -> Result<Tally, SendError> {
        let mut tally = Tally::default();
        for (i, step) in steps.iter().enumerate() {
            let due = match rate {
                Some(r) if r > 0.0 => start + Duration::from_secs_f64(i as f64 / r),
                _ => start + Duration::from_millis(step.at_ms),
            };
            if deadline.is_some_and(|d| due > d) {
                break;
            }
            let wait = due.saturating_duration_since(Instant::now());
            if !wait.is_zero() {
                std::thread::sleep(wait);
            }
            let result = self.send(step);
            report(step, &result);
            match result {
                Ok(_) => match step.action {
                    Action::Webhook { .. } => tally.webhooks += 1,
                    Action::Evidence(_) => tally.evidence += 1,
                },
                Err(e) if e.is_fatal() => return Err(e),
                Err(_) => tally.failed += 1,
            }
        }
        Ok(tally)
    }
}
