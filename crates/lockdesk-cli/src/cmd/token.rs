//! `lockdesk-cli token mint`: a token in exactly iAdvize's format, from the brand's private key
//! and the recipient's public key. For brand engineers testing their set-up, the simulator and
//! tests; the token goes to stdout and nowhere else.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use lockdesk_verify::mint::{self, Claims, Recipient, SigningKey};
use serde_json::{Map, Value};

#[derive(clap::Subcommand)]
pub enum Action {
    /// Sign (RS256) and encrypt (RSA-OAEP-256 + A256GCM) a token.
    Mint(MintArgs),
}

#[derive(clap::Args)]
pub struct MintArgs {
    /// The brand's RSA private key (PEM PKCS#8 or PKCS#1).
    #[arg(long = "signing-key", value_name = "PEM")]
    signing_key: PathBuf,
    /// The recipient's public key (file: PEM, bare base64 DER, JWK; or the bare base64 itself).
    #[arg(
        long = "encrypt-to",
        value_name = "FILE_OR_BASE64",
        required_unless_present = "no_encrypt"
    )]
    encrypt_to: Option<String>,
    /// Produce a bare signed JWS instead (Lockdesk accepts it unless encryption is required).
    #[arg(long = "no-encrypt", conflicts_with = "encrypt_to")]
    no_encrypt: bool,
    /// `iss`.
    #[arg(long, value_name = "ISSUER")]
    issuer: String,
    /// `https://iadvize.com/userId`.
    #[arg(long = "user-id", value_name = "ID")]
    user_id: String,
    /// `https://iadvize.com/visitorData` as a JSON object, e.g. '{"firstName":"Ada"}'.
    #[arg(long = "visitor-data", value_name = "JSON")]
    visitor_data: Option<String>,
    /// Seconds until `exp` (iAdvize recommends about 60).
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 60,
        allow_negative_numbers = true
    )]
    lifetime: i64,
    /// Mint as if at this Unix time (default: now).
    #[arg(long, value_name = "UNIX_SECONDS", allow_negative_numbers = true)]
    now: Option<i64>,
    /// Add `iat` (iAdvize's documented example has none).
    #[arg(long)]
    iat: bool,
    /// `kid` in the JWS header.
    #[arg(long, value_name = "KID")]
    kid: Option<String>,
    /// `kid` in the JWE header.
    #[arg(long = "encryption-kid", value_name = "KID")]
    encryption_kid: Option<String>,
    /// Any other claim, NAME=JSON (repeatable), e.g. --claim nbf=1700000000.
    #[arg(long, value_name = "NAME=JSON")]
    claim: Vec<String>,
}

pub fn run(action: Action) -> anyhow::Result<ExitCode> {
    match action {
        Action::Mint(m) => mint_token(m),
    }
}

fn mint_token(a: MintArgs) -> anyhow::Result<ExitCode> {
    let pem = lockdesk_keys::read_key_file(&a.signing_key)
        .map_err(|e| anyhow::anyhow!("--signing-key {e}"))?;
    let mut key = SigningKey::from_pem(&pem)
        .map_err(|e| anyhow::anyhow!("--signing-key {}: {e}", a.signing_key.display()))?;
    if let Some(kid) = &a.kid {
        key = key.with_kid(kid.clone());
    }
    let recipient = match &a.encrypt_to {
        None => None,
        Some(src) => {
            let path = std::path::Path::new(src);
            let bytes = if path.is_file() {
                lockdesk_keys::read_key_file(path)
                    .map_err(|e| anyhow::anyhow!("--encrypt-to {e}"))?
            } else {
                src.as_bytes().to_vec()
            };
            let public = lockdesk_verify::parse_public_keys(&bytes)
                .map_err(|e| anyhow::anyhow!("--encrypt-to {src:.60}: {e}"))?;
            if public.len() != 1 {
                bail!(
                    "--encrypt-to {src:.60}: expected one key, found {}",
                    public.len()
                );
            }
            let mut r = Recipient::new(&public[0]).context("--encrypt-to")?;
            if let Some(kid) = &a.encryption_kid {
                r = r.with_kid(kid.clone());
            }
            Some(r)
        }
    };
    let visitor_data = match &a.visitor_data {
        None => None,
        Some(text) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(m)) => Some(m),
            Ok(_) => bail!("--visitor-data: expected a JSON object"),
            Err(e) => bail!("--visitor-data: not JSON: {e}"),
        },
    };
    let mut extra = Map::new();
    for c in &a.claim {
        let Some((name, json)) = c.split_once('=') else {
            bail!("--claim {c:?}: expected NAME=JSON");
        };
        let v: Value = serde_json::from_str(json)
            .with_context(|| format!("--claim {name}: the value is not JSON"))?;
        extra.insert(name.to_owned(), v);
    }
    let now = match a.now {
        Some(n) => n,
        None => super::verify::unix_now()?,
    };
    let claims = Claims {
        issuer: a.issuer,
        user_id: a.user_id,
        visitor_data,
        expires_at: now.saturating_add(a.lifetime),
        issued_at: a.iat.then_some(now),
        not_before: None,
        extra,
    };
    let token = mint::mint(&claims, &key, recipient.as_ref()).context("minting failed")?;
    println!("{token}");
    Ok(ExitCode::SUCCESS)
}
