//! `lockdesk-pg-sandbox`: a throw-away PostgreSQL server for trying the gateway's PostgreSQL
//! store (the README's walk-through), the one the tests start ([`lockdesk_testkit::pg`]): a
//! fresh cluster in a temporary folder, on 127.0.0.1 only, run as `nobody` when started as
//! root, with one empty database owned by the role `lockdesk`, whose random password is written
//! to a file (owner-only). It runs until SIGINT (Ctrl-C), SIGTERM or SIGHUP, then stops the
//! server and removes its folder and the password file.
//!
//! Not for data you want to keep: the cluster runs without fsync and is deleted at the end.
//!
//! Usage: lockdesk-pg-sandbox --password-file PATH [--port N] [--database NAME]

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use lockdesk_testkit::pg::{PgOptions, PgServer};

const USAGE: &str = "usage: lockdesk-pg-sandbox --password-file PATH [--port N] [--database NAME]
  A throw-away PostgreSQL (a temporary cluster on 127.0.0.1, deleted when it stops) until
  Ctrl-C, SIGTERM or SIGHUP. Prints its URL once the database accepts connections.
  --password-file PATH  where to write the password of the role 'lockdesk' (removed at the end)
  --port N              the TCP port (default: a free one)
  --database NAME       the database to create, owned by 'lockdesk' (default: lockdesk)";

struct Args {
    password_file: PathBuf,
    options: PgOptions,
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut options = PgOptions {
        database: Some("lockdesk".into()),
        ..PgOptions::default()
    };
    while let Some(arg) = args.next() {
        let mut value = |flag: &str| args.next().ok_or(format!("{flag} needs a value"));
        match arg.as_str() {
            "--password-file" => options.password_file = Some(PathBuf::from(value(&arg)?)),
            "--port" => {
                let v = value(&arg)?;
                let port = v
                    .parse::<u16>()
                    .ok()
                    .filter(|&p| p > 0)
                    .ok_or(format!("--port {v:?}: expected 1 to 65535"))?;
                options.port = Some(port);
            }
            "--database" => options.database = Some(value(&arg)?),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let password_file = options
        .password_file
        .clone()
        .ok_or("--password-file PATH is required")?;
    Ok(Args {
        password_file,
        options,
    })
}

/// Blocks SIGINT, SIGTERM and SIGHUP in this (single-threaded) process and returns their set,
/// for `sigwait`: a signal that arrives while the server starts is then not lost, and never
/// kills the process before it has stopped the server.
fn block_stop_signals() -> libc::sigset_t {
    // SAFETY: a zeroed sigset_t is a valid argument for sigemptyset, which initialises it; the
    // other calls take that initialised set; no other thread exists yet.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut set, s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

fn wait_for_stop(set: &libc::sigset_t) -> i32 {
    let mut sig = 0;
    // SAFETY: `set` was initialised by block_stop_signals; `sig` is a valid out pointer.
    unsafe {
        libc::sigwait(set, &mut sig);
    }
    sig
}

fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("lockdesk-pg-sandbox: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let signals = block_stop_signals();
    let server = match PgServer::start_with(&args.options) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("lockdesk-pg-sandbox: {e}");
            return ExitCode::FAILURE;
        }
    };
    let database = args.options.database.as_deref().unwrap_or("postgres");
    println!(
        "lockdesk-pg-sandbox: PostgreSQL ready at {} (password in {}); Ctrl-C or SIGTERM stops \
         and deletes it",
        server.url(database),
        args.password_file.display()
    );
    let _ = std::io::stdout().flush();
    let sig = wait_for_stop(&signals);
    drop(server);
    let _ = std::fs::remove_file(&args.password_file);
    eprintln!("lockdesk-pg-sandbox: stopped (signal {sig}); the cluster is deleted");
    ExitCode::SUCCESS
}
