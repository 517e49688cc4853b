//! lockdesk-cli's integration tests, as one test binary (issue 14): each file below is a module,
//! so the crate links tokio, OpenSSL and SQLite into one executable rather than twenty. Run one
//! file's tests with `cargo test -p lockdesk-cli --test cli -- <module>::`, e.g. `watch_kill::`.
//!
//! They share one process: no test may set environment variables, the current directory or a
//! global tracing subscriber for the process (the binaries under test are child processes with
//! their own environment), and each test binds port 0.

mod support;

mod audit;
mod audit_erase;
mod audit_tamper;
mod bench_gateway_pg;
mod cli;
mod config_secrets;
mod desk_cli;
mod gateway_hostile_env;
mod gateway_kill;
mod gateway_migrate;
mod gateway_pg;
mod gateway_reload;
mod lb_failover;
mod log_plain;
mod simulate;
mod untrusted_text;
mod verify_cli;
mod watch_bounds;
mod watch_failover;
mod watch_kill;
