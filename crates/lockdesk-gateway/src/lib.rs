//! Lockdesk's gateway: the small server a brand runs between iAdvize and the desks.
//!
//! It takes iAdvize's signed webhook deliveries (`POST /webhooks/iadvize`) and the token evidence
//! of the brand's token provider (`POST /v1/evidence`), and stores every accepted item durably in
//! one ordered log (one global sequence number). It serves that log to the desks over a
//! WebSocket (`GET /v1/feed`, docs/feed-protocol.md): resumable by sequence number, filtered by
//! role (an advisor sees the conversations pushed to their operator ids and those visitors'
//! evidence; a supervisor sees everything), with a bounded queue per connection.
//!
//! Architecture invariants:
//! - a 2xx answer is only ever sent after the item is durably stored (SQLite `synchronous=FULL`,
//!   committed); a webhook with a missing or wrong signature stores nothing;
//! - the gateway never decrypts or verifies tokens and holds no key that could: it relays them;
//! - secrets (webhook secrets, provider and subscriber credentials) and tokens never reach logs or
//!   `Debug` output; a token is logged at most as a 12-hex-digit SHA-256 prefix;
//! - nothing here panics on input: every malformed request gets its 4xx and the server keeps going;
//! - SQLite work never runs on the async executor (a dedicated writer thread, `spawn_blocking`);
//! - what a desk receives depends only on the log and its `after`, never on when it connected
//!   (each entry's audience is computed once, in `seq` order, and stored with it);
//! - a slow desk never delays another: the router never awaits a socket; a full queue means
//!   `resume` + close 4001, never a silently skipped entry.

mod access;
pub mod config;
mod feed;
mod metrics;
pub mod routing;
mod server;
pub mod store;
// What a request carries, checked and parsed (lockdesk-intake: the fuzz targets call it directly).
use lockdesk_intake::{auth, evidence, webhook};

pub use config::{ConfigError, FieldError, GatewayConfig, Role, Secret};
pub use feed::{FeedOptions, MAX_CLIENT_FRAME};
pub use server::{
    default_max_connections, open_files_limit, start, start_with, start_with_store, Gateway,
    ServerOptions, DATABASE_FILE, MAX_BODY_BYTES,
};
pub use store::{EventStore, PgConnect, PgSettings, PostgresStore, SqliteStore, StoreError};
pub use webhook::SIGNATURE_HEADER;

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
