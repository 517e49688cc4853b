//! lockdesk-service's integration tests, as one test binary (issue 14): each file below is a
//! module. Run one file's tests with `cargo test -p lockdesk-service --test service -- backfill::`.
//!
//! backfill.rs installs the process's tracing subscriber (its log capture): every test's log
//! lines land in it, so its check that no secret is logged covers them all.

mod support;

mod backfill;
mod catch_up;
mod log_identity;
mod payloads;
mod reliability;
