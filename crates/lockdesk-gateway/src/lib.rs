//! Lockdesk's gateway: the small server a brand runs between iAdvize and the desks.
//!
//! It takes iAdvize's signed webhook deliveries (`POST /webhooks/iadvize`) and the token evidence
//! of the brand's token provider (`POST /v1/evidence`), and stores every accepted item durably in
//! one ordered log (one global sequence number), which the desks' feed is served from.
//!
//! Architecture invariants:
//! - a 2xx answer is only ever sent after the item is durably stored (SQLite `synchronous=FULL`,
//!   committed); a webhook with a missing or wrong signature stores nothing;
//! - the gateway never decrypts or verifies tokens and holds no key that could: it relays them;
//! - secrets (webhook secrets, provider and subscriber credentials) and tokens never reach logs or
//!   `Debug` output; a token is logged at most as a 12-hex-digit SHA-256 prefix;
//! - nothing here panics on input: every malformed request gets its 4xx and the server keeps going;
//! - SQLite work never runs on the async executor (a dedicated writer thread, `spawn_blocking`).

pub mod config;
mod evidence;
mod metrics;
mod server;
pub mod store;
mod webhook;

pub use config::{ConfigError, FieldError, GatewayConfig, Role, Secret};
pub use server::{
    start, start_with, start_with_store, Gateway, ServerOptions, DATABASE_FILE, MAX_BODY_BYTES,
};
pub use store::{EventStore, SqliteStore, StoreError};
pub use webhook::{signature_header, SIGNATURE_HEADER};

/// Why the gateway could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("cannot open the event store")]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("the server stopped: {0}")]
    Serve(std::io::Error),
}
