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

#[derive(clap::Args)]
pub struct Args {
    /// Address to listen on, e.g. 0.0.0.0:8080 (port 0 picks a free port).
    #[arg(long, value_name = "ADDR")]
    listen: SocketAddr,
    /// Folder for the gateway's database (created if missing).
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
    /// The gateway's configuration file (default: DIR/gateway.toml).
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config_path = args
        .config
        .clone()
        .unwrap_or_else(|| args.data.join("gateway.toml"));
    let config = lockdesk_gateway::GatewayConfig::load(&config_path).context("--config")?;
    warn_if_readable_by_others(&config_path);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("gateway")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let gateway = lockdesk_gateway::start(config, &args.data, args.listen)
            .await
            .context("--listen/--data")?;
        println!("listening on {}", gateway.local_addr());
        let _ = std::io::stdout().flush();
        serve_until_stopped(&gateway, &config_path).await?;
        tracing::info!("shutting down: finishing in-flight requests");
        gateway.shutdown().await.context("gateway shutdown")?;
        Ok(ExitCode::SUCCESS)
    })
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
                    "the configuration holds secrets but group/others may read it; chmod 600 it"
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
            gateway.reload(config);
        }
        Err(e) => tracing::error!(
            "SIGHUP: the configuration was not reloaded (the running one stays in force): {:#}",
            anyhow::Error::new(e)
        ),
    }
}

#[cfg(unix)]
async fn serve_until_stopped(
    gateway: &lockdesk_gateway::Gateway,
    config_path: &Path,
) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut hup = signal(SignalKind::hangup()).context("cannot listen for SIGHUP")?;
    loop {
        tokio::select! {
            r = tokio::signal::ctrl_c() => return r.context("cannot listen for SIGINT"),
            _ = term.recv() => return Ok(()),
            _ = hup.recv() => reload(gateway, config_path),
        }
    }
}

/// Without SIGHUP (Windows), a configuration change needs a restart.
#[cfg(not(unix))]
async fn serve_until_stopped(
    _gateway: &lockdesk_gateway::Gateway,
    _config_path: &Path,
) -> anyhow::Result<()> {
    tokio::signal::ctrl_c()
        .await
        .context("cannot listen for Ctrl-C")
}
