//! `lockdesk-cli`: Lockdesk without a window, for servers, CI and brand engineers.
//!
//! Architecture invariant: this binary never links GTK, WebKit or tauri. Each subcommand lives in
//! `cmd/<name>.rs` and owns its flags; `main` only parses and dispatches.
//!
//! Exit status: 0 success, 1 a checked thing failed (e.g. a token was rejected), 2 usage or
//! configuration error (the message names the flag or file).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;
mod out;

#[derive(Parser)]
#[command(
    name = "lockdesk-cli",
    version,
    about = "Lockdesk without a window: verify iAdvize authentication tokens, manage keys and configuration",
    long_about = None,
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show or check Lockdesk's configuration file.
    #[command(subcommand)]
    Config(cmd::config::Action),
    /// Verify iAdvize authentication tokens (exit 0 all verified, 1 any rejected, 2 usage error).
    Verify(cmd::verify::Args),
    /// Generate and inspect RSA keys.
    #[command(subcommand)]
    Keys(cmd::keys::Action),
    /// Produce tokens in iAdvize's format (for testing a brand's set-up).
    #[command(subcommand)]
    Token(cmd::token::Action),
    /// Measure verification speed against `openssl speed`.
    Bench(cmd::bench::Args),
    /// Run the gateway: iAdvize webhooks and token evidence in, stored durably.
    Gateway(cmd::gateway::Args),
    /// Play iAdvize and a brand's token provider against a gateway (signed webhooks, evidence).
    ///
    /// Tokens are signed by the brand with issuer (`iss`) https://brand.example: a desk trusts
    /// them with `--trust https://brand.example=<the brand's JWKS>` (see --write-brand-jwks).
    /// Without --brand-key the brand key is kept in <data>/simulator/brand-private.pem (created
    /// on the first run, owner-only, reused after), so every run signs with the same key.
    Simulate(cmd::simulate::Args),
    /// Check, export, purge and erase the supervisor audit log (exit 1 on a broken chain).
    Audit(cmd::audit::Args),
    /// Subscribe to a gateway's feed, verify every conversation, print each state change or alert.
    Watch(cmd::desk::WatchArgs),
    /// A verified person's cross-device history, from the local store.
    History(cmd::desk::HistoryArgs),
    /// The embedded demo: gateway + simulator + desk core in this process (what the app runs
    /// when no feed is configured).
    Demo(cmd::desk::DemoArgs),
}

fn main() -> ExitCode {
    restore_sigpipe();
    init_logging();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let result = match cli.command {
        Command::Config(action) => cmd::config::run(action),
        Command::Verify(args) => cmd::verify::run(args),
        Command::Keys(action) => cmd::keys::run(action),
        Command::Token(action) => cmd::token::run(action),
        Command::Bench(args) => cmd::bench::run(args),
        Command::Gateway(args) => cmd::gateway::run(args),
        Command::Simulate(args) => cmd::simulate::run(args),
        Command::Audit(args) => cmd::audit::run(args),
        Command::Watch(args) => cmd::desk::watch(args),
        Command::History(args) => cmd::desk::history(args),
        Command::Demo(args) => cmd::desk::demo(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            // The chain of causes can quote what came from outside (a file, a server).
            eprintln!("lockdesk-cli: {}", out::Shown(&format!("{e:#}")));
            ExitCode::from(2)
        }
    }
}

/// `lockdesk-cli verify --batch ... | head` must end quietly when `head` has read enough, like
/// any Unix tool: Rust ignores SIGPIPE, which turns every later `println!` into a panic, so the
/// default action (terminate) is restored before anything is printed.
fn restore_sigpipe() {
    #[cfg(unix)]
    // SAFETY: called first thing in `main`, before any other thread exists; setting a signal's
    // disposition to SIG_DFL has no other effect on the process's state.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Logs go to stderr only, so stdout stays machine-readable; the level comes from `RUST_LOG`
/// (default: warnings); ANSI colours only when stderr is a terminal.
fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colours only for a person at a terminal: a redirected log (a file, journald, a pipe)
        // gets plain text, not escape sequences.
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(|| lockdesk_service::log_sink::LogSink)
        .try_init();
}
