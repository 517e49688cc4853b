//! `lockdesk-cli gateway`: run the gateway server until SIGINT/SIGTERM; SIGHUP reloads the
//! configuration file (an invalid file is refused and the running configuration stays).
//!
//! Owns the tokio runtime (the rest of the CLI is synchronous). Prints `listening on ADDR` on
//! stdout once the socket is bound, so scripts and tests can use `--listen 127.0.0.1:0`.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

// Names and errors can quote the configuration file's text: printed and logged through the
// terminal escaping routine (tracing's own sanitising leaves bidi controls and line breaks).
use crate::out::Shown;

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// Address to listen on, e.g. 0.0.0.0:8080 (port 0 picks a free port).
    #[arg(long, value_name = "ADDR", required = true)]
    listen: Option<SocketAddr>,
    /// Folder for the gateway's SQLite database (created if missing): the default store.
    #[arg(long, value_name = "DIR", conflicts_with = "store")]
    data: Option<PathBuf>,
    /// The log on PostgreSQL instead, shared by several gateway instances:
    /// postgres://user@host:port/database (also `[store] url` in the configuration file). No
    /// password in the URL: LOCKDESK_PG_PASSWORD or `[store] password_file`. TLS:
    /// `?sslmode=verify-full&sslrootcert=CA.pem` (or `[store] ca_file`), docs/deploy-postgres.md.
    #[arg(long, value_name = "URL")]
    store: Option<String>,
    /// The gateway's configuration file (default: DIR/gateway.toml; required without --data).
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Open connections at most (HTTP and feed); more get 503 and are closed at once. Default:
    /// the open-files limit (raised to its hard limit at start) less a reserve, at most 50,000.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: Option<u32>,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Move a stopped SQLite gateway's log to an empty PostgreSQL database (sequence numbers,
    /// audiences, log identity and open conversations kept: desks resume without noticing).
    Migrate(super::gateway_migrate::Args),
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if let Some(Command::Migrate(m)) = args.command {
        return super::gateway_migrate::run(m);
    }
    let listen = args
        .listen
        .context("give --listen ADDR (or a subcommand: migrate)")?;
    ignore_sigpipe();
    raise_open_files_limit();
    let config_path = match (&args.config, &args.data) {
        (Some(path), _) => path.clone(),
        (None, Some(data)) => data.join("gateway.toml"),
        (None, None) => anyhow::bail!(
            "give --data DIR (the SQLite store) or --config FILE (with --store URL or [store] url)"
        ),
    };
    let config = lockdesk_gateway::GatewayConfig::load(&config_path).context("--config")?;
    warn_if_readable_by_others(&config_path);
    let store = StoreChoice::from_args(&args, &config, &config_path)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("gateway")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        // Before `listening on`: a signal sent once that line is out is never the default
        // action (SIGHUP would kill the process).
        let signals = Signals::install()?;
        let mut options = lockdesk_gateway::ServerOptions::default();
        if let Some(n) = args.max_connections {
            options.max_connections = n as usize;
        }
        let gateway = match store {
            StoreChoice::Sqlite(data) => {
                lockdesk_gateway::start_with(config, &data, listen, options)
                    .await
                    .context("--listen/--data")?
            }
            StoreChoice::Postgres(settings) => {
                let store = tokio::task::spawn_blocking(move || {
                    lockdesk_gateway::PostgresStore::open(&settings)
                })
                .await
                .context("opening the PostgreSQL store")?
                .context("--store: cannot open the PostgreSQL store")?;
                lockdesk_gateway::start_with_store(
                    config,
                    std::sync::Arc::new(store),
                    listen,
                    options,
                )
                .await
                .context("--listen")?
            }
        };
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "listening on {}", gateway.local_addr());
        let _ = out.flush();
        drop(out);
        signals.serve_until_stopped(&gateway, &config_path).await?;
        tracing::info!("shutting down: finishing in-flight requests");
        gateway.shutdown().await.context("gateway shutdown")?;
        Ok(ExitCode::SUCCESS)
    })
}

/// The environment variable holding the PostgreSQL password (or `[store] password_file`).
pub const PASSWORD_ENV: &str = "LOCKDESK_PG_PASSWORD";
/// A password file larger than this is not a password file.
const MAX_PASSWORD_FILE: u64 = 4096;

/// Where the log is: the SQLite file in a folder (the default) or a PostgreSQL database.
enum StoreChoice {
    Sqlite(PathBuf),
    Postgres(lockdesk_gateway::PgSettings),
}

impl StoreChoice {
    /// `--store` wins over `[store] url`; `--data` with a `[store] url` is refused (which log
    /// did the operator mean?). The password comes from the environment or the file, never
    /// both, never the URL.
    fn from_args(
        args: &Args,
        config: &lockdesk_gateway::GatewayConfig,
        config_path: &Path,
    ) -> anyhow::Result<StoreChoice> {
        let section = config.store.clone().unwrap_or_default();
        let url = match (&args.store, &section.url, &args.data) {
            (Some(url), _, _) => url.clone(),
            (None, Some(_), Some(_)) => anyhow::bail!(
                "{} names a PostgreSQL store ([store] url) but --data names a SQLite folder: \
                 use one (drop --data to run on PostgreSQL)",
                Shown(&config_path.display().to_string())
            ),
            (None, Some(url), None) => url.clone(),
            (None, None, Some(data)) => return Ok(StoreChoice::Sqlite(data.clone())),
            (None, None, None) => anyhow::bail!(
                "no store: give --data DIR (SQLite), or --store postgres://user@host:port/db \
                 (or [store] url in the configuration file)"
            ),
        };
        let beside_config = |file: &PathBuf| match config_path.parent() {
            Some(dir) if file.is_relative() => dir.join(file),
            _ => file.clone(),
        };
        let password_file = section.password_file.as_ref().map(beside_config);
        let ca_file = section.ca_file.as_ref().map(beside_config);
        let settings = pg_settings(
            url,
            password_file.as_deref(),
            "[store] password_file",
            ca_file,
        )?;
        Ok(StoreChoice::Postgres(settings))
    }
}

/// The PostgreSQL settings for `url`, the password from [`PASSWORD_ENV`] or `password_file`
/// (never both, never the URL; `file_option` names the file's option in errors), the server
/// verified with `ca_file` (or the URL's sslrootcert).
pub(crate) fn pg_settings(
    url: String,
    password_file: Option<&Path>,
    file_option: &str,
    ca_file: Option<PathBuf>,
) -> anyhow::Result<lockdesk_gateway::PgSettings> {
    let from_env = std::env::var_os(PASSWORD_ENV);
    let password = match (from_env, password_file) {
        (Some(_), Some(_)) => anyhow::bail!(
            "the PostgreSQL password is given twice ({PASSWORD_ENV} and {file_option}): \
                 keep one"
        ),
        (Some(value), None) => Some(
            value
                .into_string()
                .map_err(|_| anyhow::anyhow!("{PASSWORD_ENV} is not valid UTF-8"))?,
        ),
        (None, Some(path)) => Some(read_password_file(path)?),
        (None, None) => None,
    };
    let settings = lockdesk_gateway::PgSettings {
        url,
        password,
        ca_file,
    };
    // Refuse a bad URL (or one holding a password), TLS settings that contradict each other
    // or an unreadable CA file now, with the store's own message.
    settings
        .connector()
        .map_err(|e| anyhow::anyhow!("{}", Shown(&e.to_string())))
        .context("--store / [store] url")?;
    Ok(settings)
}

/// The first line of `path`, without its line ending.
fn read_password_file(path: &Path) -> anyhow::Result<String> {
    use std::io::Read;
    let shown = || Shown(&path.display().to_string()).to_string();
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_PASSWORD_FILE + 1).read_to_string(&mut text))
        .with_context(|| format!("cannot read the password file {}", shown()))?;
    if text.len() as u64 > MAX_PASSWORD_FILE {
        anyhow::bail!("the password file {} is too large to be one", shown());
    }
    let password = text.lines().next().unwrap_or("").to_owned();
    if password.is_empty() {
        anyhow::bail!("the password file {} is empty", shown());
    }
    warn_if_readable_by_others(path);
    Ok(password)
}

/// A server must outlive whoever reads its stdout (`listening on`, reload confirmations): the
/// CLI restores SIGPIPE's default action for pipelines (main.rs), which would let a closed
/// stdout kill the gateway. Writes then fail with EPIPE instead, and are ignored.
fn ignore_sigpipe() {
    #[cfg(unix)]
    // SAFETY: called before the runtime starts, while this is the only thread; ignoring a
    // signal has no other effect on the process's state.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}

/// Raises the open-files soft limit to the hard limit: every connection is a file descriptor,
/// and the common soft limit of 1,024 would cap the gateway at about a thousand desks and
/// webhook deliveries in flight. The figure is logged; the connection cap follows it.
fn raise_open_files_limit() {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit/setrlimit read and write the struct they are given.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
            tracing::warn!(error = %std::io::Error::last_os_error(), "cannot read the open-files limit");
            return;
        }
        let before = limit.rlim_cur;
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            // SAFETY: as above.
            if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
                tracing::warn!(
                    error = %std::io::Error::last_os_error(),
                    soft = before,
                    hard = limit.rlim_max,
                    "cannot raise the open-files limit to its hard limit"
                );
                return;
            }
        }
        tracing::info!(
            open_files_limit = lockdesk_gateway::open_files_limit(),
            raised_from = before,
            "open-files limit"
        );
    }
}

/// The file holds secrets: say so when others may read it (not fatal: the operator may rely on
/// the folder's permissions).
fn warn_if_readable_by_others(path: &std::path::Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!(
                    path = %path.display(),
                    "the file holds secrets but group/others may read it; chmod 600 it"
                );
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

/// Reads the configuration file again and hands it to the gateway; an unreadable or invalid
/// file changes nothing (the error is logged with its fields).
#[cfg(unix)]
fn reload(gateway: &lockdesk_gateway::Gateway, path: &Path) {
    match lockdesk_gateway::GatewayConfig::load(path) {
        Ok(config) => {
            warn_if_readable_by_others(path);
            match gateway.reload(config) {
                Ok(r) => {
                    // On stdout, like `listening on`: the operator's confirmation (names only).
                    // Written, not `println!`: nobody may be reading stdout any more, and a
                    // closed pipe must not take the gateway down.
                    let mut out = std::io::stdout().lock();
                    let _ = writeln!(
                        out,
                        "configuration reloaded: {} subscribers; revoked: [{}]; reconfigured: [{}]",
                        r.subscribers,
                        Shown(&r.revoked.join(", ")),
                        Shown(&r.changed.join(", "))
                    );
                    let _ = out.flush();
                }
                Err(errors) => {
                    let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
                    tracing::error!(
                        "SIGHUP: the configuration was not reloaded (the running one stays in force): {}",
                        Shown(&errors.join("; "))
                    );
                }
            }
        }
        Err(e) => tracing::error!(
            "SIGHUP: the configuration was not reloaded (the running one stays in force): {}",
            Shown(&format!("{:#}", anyhow::Error::new(e)))
        ),
    }
}

/// SIGINT and SIGTERM stop the gateway; SIGHUP reloads its configuration.
#[cfg(unix)]
struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl Signals {
    fn install() -> anyhow::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            int: signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?,
            term: signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?,
            hup: signal(SignalKind::hangup()).context("cannot listen for SIGHUP")?,
        })
    }

    async fn serve_until_stopped(
        mut self,
        gateway: &lockdesk_gateway::Gateway,
        config_path: &Path,
    ) -> anyhow::Result<()> {
        loop {
            tokio::select! {
                _ = self.int.recv() => return Ok(()),
                _ = self.term.recv() => return Ok(()),
                _ = self.hup.recv() => reload(gateway, config_path),
            }
        }
    }
}

/// Ctrl-C stops the gateway; without SIGHUP (Windows), a configuration change needs a restart.
#[cfg(not(unix))]
struct Signals;

#[cfg(not(unix))]
impl Signals {
    fn install() -> anyhow::Result<Signals> {
        Ok(Signals)
    }

    async fn serve_until_stopped(
        self,
        _gateway: &lockdesk_gateway::Gateway,
        _config_path: &Path,
    ) -> anyhow::Result<()> {
        tokio::signal::ctrl_c()
            .await
            .context("cannot listen for Ctrl-C")
    }
}
