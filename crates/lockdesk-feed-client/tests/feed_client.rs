//! The feed client over real sockets on 127.0.0.1:0.
//!
//! Two kinds of peers: the real gateway (`lockdesk-gateway`, real SQLite file in a temp dir) for
//! resume across connection cuts and restarts, and a small in-test WebSocket server speaking
//! docs/feed-protocol.md where the test needs a *broken* peer (goes silent, sends garbage, closes
//! with a chosen code). Sinks are an in-memory test double of the caller and, in one test, a real
//! SQLite file committing entries and cursor in one transaction.
//!
//! One integration-test binary for the crate; logs of every test are captured (a global tracing
//! subscriber) so tests can assert what never reaches them.

mod support;

#[path = "cases/in_test_server.rs"]
mod in_test_server;

#[path = "cases/gateway.rs"]
mod gateway;

#[path = "cases/bounds.rs"]
mod bounds;

#[path = "cases/failover.rs"]
mod failover;
