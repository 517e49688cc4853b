//! lockdesk-audit's integration tests, as one test binary (issue 14): each file below is a
//! module. Run one file's tests with `cargo test -p lockdesk-audit --test audit -- chain::`.

mod chain;
mod export;
