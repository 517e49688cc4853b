//! `lockdesk-cli verify`: one verdict per token, in input order; `--batch` uses every core.
//!
//! Tokens are bearer credentials: they are never printed or logged (a SHA-256 prefix at most).

use std::io::{BufRead, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use lockdesk_keys::{Engine, Setup, Source};
use lockdesk_verify::{Verdict, Verified};
use rayon::prelude::*;

use crate::out::Shown;

#[derive(clap::Args)]
pub struct Args {
    /// Lockdesk's configuration file: trusted issuers, decryption keys and policy.
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// The desk's private key (PEM PKCS#8 or PKCS#1) that opens encrypted tokens; repeatable.
    #[arg(long = "decrypt-key", value_name = "PATH")]
    decrypt_key: Vec<PathBuf>,
    /// A trusted issuer and its public key: a file (PEM, bare base64 DER, JWK, JWKS) or an
    /// https:// JWKS address; repeatable.
    #[arg(long, value_name = "ISSUER=KEYFILE_OR_URL")]
    trust: Vec<String>,
    /// Evaluate time claims at this Unix time instead of the system clock.
    #[arg(long, value_name = "UNIX_SECONDS", allow_negative_numbers = true)]
    now: Option<i64>,
    /// Clock-skew leeway in seconds (default 60).
    #[arg(long, value_name = "SECS")]
    leeway: Option<u32>,
    /// Longest accepted `exp - now` in seconds (default 3600).
    #[arg(long = "max-lifetime", value_name = "SECS")]
    max_lifetime: Option<u32>,
    /// Refuse bare (unencrypted) JWS tokens.
    #[arg(long = "require-encryption")]
    require_encryption: bool,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
    /// Verify one token per line of FILE (or stdin with -), on all cores; blank lines are skipped.
    #[arg(long, value_name = "FILE|-", conflicts_with = "token")]
    batch: Option<String>,
    /// The token, or - to read it from stdin.
    #[arg(value_name = "TOKEN|-")]
    token: Option<String>,
}

/// The largest batch input read at once, and the largest single-token stdin read.
const MAX_BATCH_BYTES: u64 = 1 << 30;
const MAX_STDIN_TOKEN_BYTES: u64 = 1 << 20;

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let engine = build_engine(&args)?;
    let now = match args.now {
        Some(n) => n,
        None => unix_now()?,
    };
    let tokens: Vec<String> = match (&args.batch, &args.token) {
        (Some(src), _) => read_batch(src)?,
        (None, Some(t)) if t == "-" => {
            let mut s = String::new();
            std::io::stdin()
                .take(MAX_STDIN_TOKEN_BYTES)
                .read_to_string(&mut s)
                .context("cannot read the token from stdin")?;
            vec![s.trim().to_owned()]
        }
        (None, Some(t)) => vec![t.trim().to_owned()],
        (None, None) => bail!("give a TOKEN argument, - to read one from stdin, or --batch FILE"),
    };
    let verdicts = verify_all(&engine, &tokens, now);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut all_ok = true;
    for (token, verdict) in tokens.iter().zip(&verdicts) {
        all_ok &= verdict.is_verified();
        tracing::debug!(token = %lockdesk_verify::token_label(token.as_bytes()), reason = ?verdict.reason(), "verdict");
        if args.json {
            writeln!(out, "{}", crate::out::json(&verdict.to_json()))?;
        } else {
            write_human(&mut out, verdict, now)?;
        }
    }
    out.flush()?;
    Ok(if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Verifies every token on all cores; the answers keep the input order.
pub fn verify_all(engine: &Engine, tokens: &[String], now: i64) -> Vec<Verdict> {
    tokens
        .par_iter()
        .with_min_len(4)
        .map(|t| engine.verify(t.as_bytes(), now))
        .collect()
}

fn build_engine(args: &Args) -> anyhow::Result<Engine> {
    let mut setup = Setup::default();
    if let Some(path) = &args.config {
        if !path.is_file() {
            bail!("--config {}: no such file", path.display());
        }
        let config =
            lockdesk_config::load(path).with_context(|| format!("--config {}", path.display()))?;
        let problems: Vec<String> =
            lockdesk_config::validate(&config, &lockdesk_keys::KeyContentCheck)
                .into_iter()
                .filter(|e| {
                    ["trust.", "decryption.", "verification."]
                        .iter()
                        .any(|p| e.field.starts_with(p))
                })
                .map(|e| format!("{}: {}", e.field, e.message))
                .collect();
        if !problems.is_empty() {
            bail!("--config {}: {}", path.display(), problems.join("; "));
        }
        setup = Setup::from_config(&config);
    }
    for t in &args.trust {
        let Some((issuer, key)) = t.split_once('=') else {
            bail!("--trust {t:?}: expected ISSUER=KEYFILE_OR_URL");
        };
        if issuer.is_empty() || key.is_empty() {
            bail!("--trust {t:?}: expected ISSUER=KEYFILE_OR_URL with both parts non-empty");
        }
        setup.trust.push((issuer.to_owned(), Source::parse(key)));
    }
    setup.decryption.extend(args.decrypt_key.iter().cloned());
    if let Some(l) = args.leeway {
        if l > 300 {
            bail!("--leeway {l}: expected at most 300 seconds");
        }
        setup.policy.leeway_secs = l;
    }
    if let Some(m) = args.max_lifetime {
        if m == 0 {
            bail!("--max-lifetime 0: expected at least 1 second");
        }
        setup.policy.max_lifetime_secs = m;
    }
    if args.require_encryption {
        setup.policy.require_encryption = true;
    }
    if setup.trust.is_empty() {
        bail!("no trusted issuer: pass --trust ISSUER=KEYFILE_OR_URL or --config PATH");
    }
    let flag = |s: &str| -> &'static str {
        if args
            .decrypt_key
            .iter()
            .any(|p| p.display().to_string() == s)
        {
            "--decrypt-key "
        } else if args.trust.iter().any(|t| t.ends_with(s)) {
            "--trust "
        } else {
            ""
        }
    };
    Engine::load(&setup).map_err(|e| {
        let origin = match &e {
            lockdesk_keys::SourceError::Read { origin, .. }
            | lockdesk_keys::SourceError::Key { origin, .. }
            | lockdesk_keys::SourceError::Insecure { origin } => origin.clone(),
        };
        anyhow::anyhow!("{}{e}", flag(&origin))
    })
}

fn read_batch(src: &str) -> anyhow::Result<Vec<String>> {
    let reader: Box<dyn BufRead> = if src == "-" {
        Box::new(std::io::BufReader::new(
            std::io::stdin().take(MAX_BATCH_BYTES),
        ))
    } else {
        let f = std::fs::File::open(src).with_context(|| format!("--batch {src}"))?;
        Box::new(std::io::BufReader::new(f.take(MAX_BATCH_BYTES)))
    };
    let mut tokens = Vec::new();
    for line in reader.lines() {
        let line = line.with_context(|| format!("--batch {src}: cannot read it as text"))?;
        let t = line.trim();
        if !t.is_empty() {
            tokens.push(t.to_owned());
        }
    }
    Ok(tokens)
}

pub fn unix_now() -> anyhow::Result<i64> {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .context("the system clock is before 1970")?;
    Ok(d.as_secs() as i64)
}

fn write_human(out: &mut impl Write, verdict: &Verdict, now: i64) -> std::io::Result<()> {
    match verdict {
        Verdict::Rejected(r) => writeln!(out, "rejected: {}: {}", r.reason, Shown(&r.detail)),
        Verdict::Verified(v) => write_verified(out, v, now),
    }
}

/// Every string from the token is printed through [`Shown`] (`{:?}` quotes it): a claim cannot
/// drive the terminal (C0, DEL, C1) or reorder the line (bidi controls); the characters show as
/// `⟨U+XXXX⟩` markers.
fn write_verified(out: &mut impl Write, v: &Verified, now: i64) -> std::io::Result<()> {
    writeln!(
        out,
        "verified ({}): userId {:?}, issuer {:?}, expires at {} (in {}s)",
        v.format.code(),
        Shown(&v.user_id),
        Shown(&v.issuer),
        v.expires_at,
        v.expires_at - now
    )?;
    if let Some(vd) = &v.visitor_data {
        for (k, val) in &vd.fields {
            writeln!(out, "  visitorData.{k}: {:?}", Shown(val))?;
        }
        for (k, val) in &vd.extras {
            write!(out, "  visitorData.{:?} (unverified extra): ", Shown(k))?;
            match val {
                serde_json::Value::String(s) => writeln!(out, "{:?}", Shown(s))?,
                // Any other type as JSON (C0 controls in it already JSON-escaped), the rest of
                // its strings' hazards made visible.
                other => writeln!(out, "{}", Shown(&other.to_string()))?,
            }
        }
    }
    if let Some(iat) = v.issued_at {
        writeln!(out, "  issued at: {iat}")?;
    }
    writeln!(out, "  signing key: {}", Shown(&v.signing_key))?;
    if let Some(d) = &v.decryption_key {
        writeln!(out, "  decryption key: {}", Shown(d))?;
    }
    for w in &v.warnings {
        writeln!(out, "  warning: {}", Shown(w))?;
    }
    Ok(())
}
