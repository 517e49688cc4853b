//! What the configuration authorizes, in the form the request path needs (keyed HMAC states,
//! credential digests), replaced as a whole when the configuration is reloaded
//! ([`crate::Gateway::reload`]). Requests read the current value once; feed connections watch it
//! and end when their credential is removed (close 4003) or its subscriber changes (resume, close
//! 4001, so the desk reconnects under the new role or operator ids).
//!
//! Must not: keep a credential in clear once digested (see `auth`); let a revoked credential keep
//! a connection that outlives the reload.

use std::sync::Arc;

use tokio::sync::watch;

use crate::auth::{Bearers, Digest, WebhookKeys};
use crate::config::{GatewayConfig, Role, Subscriber};
use crate::feed::SubscriberInfo;
use lockdesk_feed::Role as FeedRole;

pub(crate) struct Access {
    pub config: GatewayConfig,
    pub webhook_keys: WebhookKeys,
    pub providers: Bearers<String>,
    pub subscribers: Bearers<Arc<SubscriberInfo>>,
}

impl Access {
    /// Computes the keys and digests once, from a validated configuration.
    pub fn new(config: GatewayConfig) -> Access {
        Access {
            webhook_keys: WebhookKeys::new(config.webhook.iter().map(|w| &w.secret)),
            providers: Bearers::new(
                config
                    .provider
                    .iter()
                    .map(|p| (&p.credential, p.name.clone())),
            ),
            subscribers: Bearers::new(
                config
                    .subscriber
                    .iter()
                    .map(|s| (&s.credential, Arc::new(subscriber_info(s)))),
            ),
            config,
        }
    }
}

/// A configured subscriber as the feed serves it.
pub fn subscriber_info(s: &Subscriber) -> SubscriberInfo {
    SubscriberInfo {
        name: s.name.clone(),
        role: match s.role {
            Role::Advisor => FeedRole::Advisor,
            Role::Supervisor => FeedRole::Supervisor,
        },
        operator_ids: s.operator_ids.clone(),
    }
}

/// What a reload means for one feed connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Standing {
    /// Same credential, same subscriber: nothing to do.
    Unchanged,
    /// The credential still exists but names a different subscriber (name, role or operator
    /// ids): the desk must reconnect to be served under the new one.
    Changed,
    /// The credential is gone.
    Revoked,
}

/// A feed connection's view of the configuration: the credential it authenticated with (as its
/// digest) and the subscriber it was then.
pub(crate) struct Watch {
    rx: watch::Receiver<Arc<Access>>,
    digest: Digest,
    subscriber: Arc<SubscriberInfo>,
}

impl Watch {
    pub fn new(
        rx: watch::Receiver<Arc<Access>>,
        digest: Digest,
        subscriber: Arc<SubscriberInfo>,
    ) -> Watch {
        Watch {
            rx,
            digest,
            subscriber,
        }
    }

    /// Waits for the next reload that concerns this connection and says how; `None` when the
    /// gateway is going away (the sender is gone).
    pub async fn next_change(&mut self) -> Option<Standing> {
        loop {
            self.rx.changed().await.ok()?;
            if let Some(standing) = self.standing() {
                return Some(standing);
            }
        }
    }

    /// Without waiting: a reload since the last look that concerns this connection.
    pub fn pending(&mut self) -> Option<Standing> {
        if self.rx.has_changed().unwrap_or(false) {
            self.standing()
        } else {
            None
        }
    }

    /// The current configuration's view of this connection (`None`: unchanged).
    fn standing(&mut self) -> Option<Standing> {
        let current = self.rx.borrow_and_update().clone();
        let standing = match current.subscribers.by_digest(&self.digest) {
            None => Standing::Revoked,
            Some(now) if **now == *self.subscriber => Standing::Unchanged,
            Some(_) => Standing::Changed,
        };
        (standing != Standing::Unchanged).then_some(standing)
    }
}
