//! `lockdesk-cli gateway migrate --from DIR --to postgres://...`: moves a stopped SQLite gateway's
//! log into an empty PostgreSQL database (docs/gateway.md, "Moving to PostgreSQL"). The work and
//! its verification are `lockdesk_gateway::store::migrate_sqlite_to_postgres`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::out::Shown;

#[derive(clap::Args)]
pub struct Args {
    /// The SQLite gateway's data folder (its gateway stopped): DIR/gateway.sqlite3 is read.
    #[arg(long, value_name = "DIR")]
    from: PathBuf,
    /// The PostgreSQL database: postgres://user@host:port/database, holding no log yet. No
    /// password in the URL: LOCKDESK_PG_PASSWORD or --password-file.
    #[arg(long, value_name = "URL")]
    to: String,
    /// A file whose first line is the PostgreSQL password (instead of LOCKDESK_PG_PASSWORD).
    #[arg(long, value_name = "PATH")]
    password_file: Option<PathBuf>,
    /// The PEM file of the CA that issued the server's certificate (or `sslrootcert=` in the
    /// URL), as the gateway's `[store] ca_file`: docs/deploy-postgres.md, "TLS".
    #[arg(long, value_name = "PATH")]
    ca_file: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let settings = super::gateway::pg_settings(
        args.to,
        args.password_file.as_deref(),
        "--password-file",
        args.ca_file,
    )?;
    let db = args.from.join(lockdesk_gateway::DATABASE_FILE);
    let report = lockdesk_gateway::store::migrate_sqlite_to_postgres(&db, &settings)
        .map_err(|e| anyhow::anyhow!("{}", Shown(&e.to_string())))
        .context("the migration did not happen (the PostgreSQL database is unchanged)")?;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "migrated log {}: {} webhook events and {} evidence up to seq {}, {} audience rows, \
         {} open conversations; verified (sha256 {})",
        report.log_id,
        report.webhook_events,
        report.evidence,
        report.last_seq,
        report.audience_rows,
        report.open_conversations,
        report.digest
    );
    let _ = out.flush();
    Ok(ExitCode::SUCCESS)
}
