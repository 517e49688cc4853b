//! `lockdesk-cli simulate`: plays iAdvize (signed webhooks) and the brand's token provider
//! (evidence with tokens minted in iAdvize's format) against a gateway.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use lockdesk_sim::plan::{plan, Action, Scenario};
use lockdesk_sim::tokens::read_desk_public;
use lockdesk_sim::{SimKeys, Target};

use crate::out::Shown;

#[derive(clap::Args)]
pub struct Args {
    /// The gateway's base URL, e.g. http://127.0.0.1:8080.
    #[arg(long, value_name = "URL")]
    gateway: String,
    /// The desk's public key: every token is encrypted to it.
    #[arg(long, value_name = "PATH")]
    desk_key: PathBuf,
    /// The brand's private key (PEM) to sign with; default: a key generated for this run.
    #[arg(long, value_name = "PATH")]
    brand_key: Option<PathBuf>,
    /// Write the brand's public key set (JWKS, with its kid) here, for the desk to trust.
    #[arg(long, value_name = "PATH")]
    write_brand_jwks: Option<PathBuf>,
    /// The webhook secret of the simulated iAdvize app.
    #[arg(long, env = "LOCKDESK_WEBHOOK_SECRET", hide_env_values = true)]
    webhook_secret: String,
    /// The bearer credential of the simulated token provider.
    #[arg(long, env = "LOCKDESK_PROVIDER_TOKEN", hide_env_values = true)]
    provider_token: String,
    /// iAdvize operator ids the conversations are pushed to (repeatable).
    #[arg(long = "operator", value_name = "ID", default_values_t = [1001i64])]
    operators: Vec<i64>,
    /// Same seed, same scenarios, people, devices and ids.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Steps per second, ignoring the scenarios' own timing (load); default: their timing.
    #[arg(long)]
    rate: Option<f64>,
    /// Keep playing passes (seed, seed+1, ...) for this many seconds; default: one pass.
    #[arg(long, value_name = "SECONDS")]
    duration: Option<f64>,
    /// Only these scenarios (repeatable); default: all of them.
    #[arg(long = "scenario", value_name = "NAME")]
    scenarios: Vec<String>,
    /// One JSON line per step sent.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let scenarios: Vec<Scenario> = if args.scenarios.is_empty() {
        Scenario::ALL.to_vec()
    } else {
        args.scenarios
            .iter()
            .map(|n| {
                Scenario::from_name(n).with_context(|| {
                    let names: Vec<_> = Scenario::ALL.iter().map(|s| s.name()).collect();
                    format!(
                        "--scenario {n}: unknown (expected one of {})",
                        names.join(", ")
                    )
                })
            })
            .collect::<anyhow::Result<_>>()?
    };
    if args.rate.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
        bail!("--rate: expected a positive number of steps per second");
    }
    if args.duration.is_some_and(|d| !(d > 0.0 && d.is_finite())) {
        bail!("--duration: expected a positive number of seconds");
    }
    if !(args.gateway.starts_with("http://") || args.gateway.starts_with("https://")) {
        bail!(
            "--gateway: expected an http:// or https:// address, got {}",
            args.gateway
        );
    }
    let desk = read_desk_public(&args.desk_key).context("--desk-key")?;
    let keys = match &args.brand_key {
        Some(p) => SimKeys::with_brand_key(p, &desk).context("--brand-key")?,
        None => SimKeys::generate(&desk)?,
    };
    if let Some(path) = &args.write_brand_jwks {
        std::fs::write(path, &keys.brand_public_jwks)
            .with_context(|| format!("--write-brand-jwks {}", path.display()))?;
    }
    let mut sender = lockdesk_sim::Sender::new(
        Target {
            gateway: args.gateway.clone(),
            webhook_secret: args.webhook_secret.into_bytes(),
            provider_token: args.provider_token,
        },
        keys,
    )?;

    let started = Instant::now();
    let deadline = args.duration.map(|d| started + Duration::from_secs_f64(d));
    let mut total = lockdesk_sim::Tally::default();
    let mut pass = 0u64;
    loop {
        let steps = plan(
            args.seed.wrapping_add(pass),
            &scenarios,
            &args.operators,
            500,
        );
        let pass_start = Instant::now();
        let json = args.json;
        let tally = sender
            .play(&steps, pass_start, args.rate, deadline, |step, result| {
                let at = started.elapsed().as_secs_f64();
                let (kind, what) = match &step.action {
                    Action::Webhook { body, .. } => (
                        "webhook",
                        body.get("eventType")
                            .and_then(|v| v.as_str())
                            .unwrap_or("?")
                            .to_owned(),
                    ),
                    Action::Evidence(e) => ("evidence", format!("visitor {}", e.visitor_id)),
                };
                let outcome = match result {
                    Ok(v) => format!(
                        "ok {}",
                        v.get("seq").map(|s| format!("seq {s}")).unwrap_or_default()
                    ),
                    // A refusal quotes the gateway's answer: text from outside.
                    Err(e) => format!("error: {e}"),
                };
                if json {
                    println!(
                        "{}",
                        crate::out::json(&serde_json::json!({"at": at,
                            "scenario": step.scenario.name(), "kind": kind, "what": what,
                            "ok": result.is_ok(), "outcome": outcome}))
                    );
                } else {
                    println!(
                        "{at:8.2}s  {:<22} {kind:<8} {}  {}",
                        step.scenario.name(),
                        Shown(&what),
                        Shown(&outcome)
                    );
                }
            })
            .map_err(|e| anyhow::anyhow!("stopping: {e}"))?;
        total.webhooks += tally.webhooks;
        total.evidence += tally.evidence;
        total.failed += tally.failed;
        pass += 1;
        match deadline {
            Some(d) if Instant::now() < d => continue,
            _ => break,
        }
    }
    eprintln!(
        "simulate: {} webhooks and {} evidence accepted, {} failed, in {:.1} s",
        total.webhooks,
        total.evidence,
        total.failed,
        started.elapsed().as_secs_f64()
    );
    Ok(if total.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
