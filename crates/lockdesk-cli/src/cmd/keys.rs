//! `lockdesk-cli keys`: generate a key pair safely (step 1 of iAdvize's set-up) and inspect
//! any key Lockdesk reads.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use openssl::pkey::PKey;
use openssl::rsa::Rsa;

use crate::out::Shown;

#[derive(clap::Subcommand)]
pub enum Action {
    /// Generate an RSA key pair: private.pem (PKCS#8, owner-only), public.pem, public.jwk.
    Generate {
        /// Folder to write into (created if missing; existing key files are never overwritten).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Modulus size.
        #[arg(long, default_value_t = 2048, value_parser = parse_bits)]
        bits: u32,
    },
    /// Show a key's kind, size, exponent, RFC 7638 thumbprint and problems (exit 1 if any).
    Inspect {
        /// A key file, or the key itself (e.g. iAdvize's bare base64 public key).
        #[arg(value_name = "FILE_OR_BASE64")]
        key: String,
        /// One JSON object per key.
        #[arg(long)]
        json: bool,
    },
}

fn parse_bits(s: &str) -> Result<u32, String> {
    match s {
        "2048" | "3072" | "4096" => Ok(s.parse().unwrap_or(2048)),
        _ => Err("expected 2048, 3072 or 4096".into()),
    }
}

pub fn run(action: Action) -> anyhow::Result<ExitCode> {
    match action {
        Action::Generate { out, bits } => generate(&out, bits),
        Action::Inspect { key, json } => inspect(&key, json),
    }
}

fn generate(dir: &Path, bits: u32) -> anyhow::Result<ExitCode> {
    lockdesk_config::create_private_dir(dir).with_context(|| format!("--out {}", dir.display()))?;
    let private_path = dir.join("private.pem");
    let public_path = dir.join("public.pem");
    let jwk_path = dir.join("public.jwk");
    for p in [&private_path, &public_path, &jwk_path] {
        if p.exists() {
            bail!(
                "--out {}: {} already exists; refusing to overwrite a key",
                dir.display(),
                p.display()
            );
        }
    }
    let rsa = Rsa::generate(bits).context("RSA key generation failed")?;
    let pkey = PKey::from_rsa(rsa).context("RSA key generation failed")?;
    let private_pem = pkey.private_key_to_pem_pkcs8()?;
    let public_pem = pkey.public_key_to_pem()?;
    let public = lockdesk_verify::parse_public_keys(&public_pem)
        .context("the generated key did not pass Lockdesk's own checks")?
        .remove(0);
    let thumbprint = public.thumbprint().to_owned();
    let jwk = public.with_kid(thumbprint.clone()).to_jwk();

    write_new(&private_path, &private_pem, true)?;
    write_new(&public_path, &public_pem, false)?;
    write_new(&jwk_path, format!("{jwk}\n").as_bytes(), false)?;
    println!(
        "private key: {} (owner-only; keep it secret, never send it)",
        private_path.display()
    );
    println!(
        "public key:  {} (PEM) and {} (JWK)",
        public_path.display(),
        jwk_path.display()
    );
    println!("thumbprint:  {thumbprint}");
    Ok(ExitCode::SUCCESS)
}

/// Creates `path` (never replaces one); owner-only from the start when `secret`, so the private
/// key is never readable by others, not even for an instant.
fn write_new(path: &Path, bytes: &[u8], secret: bool) -> anyhow::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(if secret { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut f = opts
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

fn inspect(arg: &str, json: bool) -> anyhow::Result<ExitCode> {
    let path = Path::new(arg);
    let bytes = if path.is_file() {
        lockdesk_keys::read_key_file(path)?
    } else if arg.len() > 64 || arg.contains("-----BEGIN") || arg.trim_start().starts_with('{') {
        arg.as_bytes().to_vec()
    } else {
        bail!("{arg}: no such file, and too short to be a key");
    };
    let infos = match lockdesk_verify::inspect_key(&bytes) {
        Ok(i) => i,
        Err(e) => bail!("{}: {e}", if path.is_file() { arg } else { "the key" }),
    };
    let mut any_warning = false;
    for info in &infos {
        any_warning |= !info.warnings.is_empty();
        if json {
            // Exact JSON, hazards escaped (a JWKS's kid and alg are the publisher's text).
            println!(
                "{}",
                crate::out::json(&serde_json::json!({
                    "kind": info.form.describe(),
                    "private": info.private,
                    "bits": info.bits,
                    "exponent": info.exponent,
                    "thumbprint": info.thumbprint,
                    "kid": info.kid,
                    "alg": info.alg,
                    "warnings": info.warnings,
                }))
            );
        } else {
            println!("kind:       {}", info.form.describe());
            println!(
                "key:        RSA {} bits{}",
                info.bits,
                if info.private {
                    ", private"
                } else {
                    ", public"
                }
            );
            println!("exponent:   {}", info.exponent);
            println!("thumbprint: {}", info.thumbprint);
            if let Some(kid) = &info.kid {
                println!("kid:        {:?}", Shown(kid));
            }
            if let Some(alg) = &info.alg {
                println!("alg:        {:?}", Shown(alg));
            }
            for w in &info.warnings {
                println!("warning:    {}", Shown(w));
            }
            if infos.len() > 1 {
                println!();
            }
        }
    }
    Ok(if any_warning {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
