//! Test-only support shared by the test binaries of several crates: real servers that a test
//! starts itself in a temporary folder and that go away with it, and a desk store's snapshot
//! (desk_store.rs) two stores are compared by; the test gateway's configuration text and its
//! signed delivery (gateway_config.rs); the capture of a test binary's log lines (logs.rs).
//! The throw-away CAs of the servers that speak TLS are tls.rs's.
//! Never a dependency of a shipped crate (dev-dependencies only). Its one binary,
//! `lockdesk-pg-sandbox`, starts the same throw-away PostgreSQL for a person (the README's
//! multi-instance walk-through).

pub mod desk_store;
pub mod gateway_config;
pub mod logs;
pub mod nginx;
pub mod pg;
pub mod tls;
