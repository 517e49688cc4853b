//! `lockdesk-cli bench verify`: the speed figures of issue 3, measured in one run.
//!
//! - full verification of fresh nested tokens on one core (cache off), for 2048 and 4096 bits,
//!   against `openssl speed`'s private+public rate for the same size, measured right before;
//! - `verify --batch`'s code path on every core, against the one-core rate;
//! - malformed and oversized tokens rejected before any RSA;
//! - cache hits for a byte-identical token.
//!
//! Never run by the test command (it takes about a minute and its numbers depend on the machine).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use lockdesk_keys::{Engine, Setup};
use lockdesk_verify::mint::{self, Claims, Recipient, SigningKey};
use lockdesk_verify::{parse_decryption_keys, parse_public_keys, Policy, TrustStore, Verifier};
use openssl::pkey::PKey;
use openssl::rsa::Rsa;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(clap::Subcommand)]
enum What {
    /// The gateway's ingest rate, feed delivery delay and memory per idle subscriber.
    Gateway(super::bench_gateway::Args),
    /// The audit log: append rate, verify time and export peak memory for 1,000,000 entries.
    Audit(super::bench_audit::Args),
    /// Verification rates against `openssl speed`.
    Verify {
        /// Seconds per measurement slice.
        #[arg(long, default_value_t = 1.0)]
        seconds: f64,
        /// Alternated (openssl speed, lockdesk) rounds per key size.
        #[arg(long, default_value_t = 7)]
        rounds: usize,
        /// RSA sizes to measure.
        #[arg(long, value_delimiter = ',', default_value = "2048,4096")]
        bits: Vec<u32>,
    },
}

const ISSUER: &str = "https://bench.example";
const NOW: i64 = 1_800_000_000;

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (seconds, rounds, bits) = match args.what {
        What::Verify {
            seconds,
            rounds,
            bits,
        } => (seconds, rounds, bits),
        What::Gateway(args) => return super::bench_gateway::run(args),
        What::Audit(args) => return super::bench_audit::run(args),
    };
    if !(1..=100).contains(&rounds) {
        bail!("--rounds {rounds}: expected 1 to 100");
    }
    if !(0.1..=600.0).contains(&seconds) {
        bail!("--seconds {seconds}: expected 0.1 to 600");
    }
    let dur = Duration::from_secs_f64(seconds);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "lockdesk-cli bench verify: {rounds} rounds of {seconds}s slices, each lockdesk slice right after an `openssl speed` run, {cores} core(s)"
    );
    let mut ok = true;
    for &b in &bits {
        if ![2048, 3072, 4096].contains(&b) {
            bail!("--bits {b}: expected 2048, 3072 or 4096");
        }
        let fx = Fixture::new(b)?;
        let verifier = fx.verifier().without_cache();
        // The machine may be shared and its clock speed drifts: compare each lockdesk slice with
        // the openssl run just before it, and judge on the median of those ratios.
        let mut ratios = Vec::with_capacity(rounds);
        let (mut sign, mut verify, mut one) = (0.0f64, 0.0f64, 0.0f64);
        for _ in 0..rounds {
            let (s, v) = openssl_speed(b, seconds)?;
            let ours = rate(dur, &fx.tokens, |t| {
                verifier.verify(t.as_bytes(), NOW).is_verified()
            })?;
            ratios.push(ours / (1.0 / (1.0 / s + 1.0 / v)));
            sign = sign.max(s);
            verify = verify.max(v);
            one = one.max(ours);
        }
        ratios.sort_by(f64::total_cmp);
        let pct = 100.0 * ratios[ratios.len() / 2];
        let floor = 1.0 / (1.0 / sign + 1.0 / verify);
        println!(
            "rsa{b}: openssl speed (best) sign {sign:.1}/s verify {verify:.1}/s -> private+public {floor:.1}/s; \
             lockdesk full verification, 1 core (best) {one:.1}/s; per-round ratio median {pct:.1}% \
             (min {:.1}%, max {:.1}%) {}",
            100.0 * ratios[0],
            100.0 * ratios[ratios.len() - 1],
            verdict(pct >= 95.0)
        );
        ok &= pct >= 95.0;

        let engine = fx.engine_without_cache()?;
        let chunk: Vec<String> = fx
            .tokens
            .iter()
            .cycle()
            .take(fx.tokens.len() * 4)
            .cloned()
            .collect();
        let mut batch = 0.0f64;
        for _ in 0..3 {
            let start = Instant::now();
            let mut n = 0usize;
            while start.elapsed() < dur {
                let verdicts = super::verify::verify_all(&engine, &chunk, NOW);
                if !verdicts.iter().all(|v| v.is_verified()) {
                    bail!("a bench token was rejected in batch mode");
                }
                n += verdicts.len();
            }
            batch = batch.max(n as f64 / start.elapsed().as_secs_f64());
        }
        let ratio = batch / one;
        println!(
            "rsa{b}: --batch on {cores} core(s) {batch:.1}/s = {ratio:.2}x one core {}",
            verdict(ratio >= 1.8 || cores < 2)
        );
        ok &= ratio >= 1.8 || cores < 2;
    }

    // Rejections before RSA, and cache hits, on 2048-bit keys.
    let fx = Fixture::new(2048)?;
    let verifier = fx.verifier().without_cache();
    let junk = junk_tokens(&fx.tokens[0]);
    for (label, t) in &junk {
        if verifier.verify(t.as_bytes(), NOW).is_verified() {
            bail!("junk token {label} verified");
        }
    }
    let junk_only: Vec<String> = junk.iter().map(|(_, t)| t.clone()).collect();
    let rejected = rate(dur, &junk_only, |t| {
        !verifier.verify(t.as_bytes(), NOW).is_verified()
    })?;
    println!(
        "malformed/oversized rejection (mix of {} kinds, no RSA): {rejected:.0}/s {}",
        junk.len(),
        verdict(rejected >= 200_000.0)
    );
    ok &= rejected >= 200_000.0;

    let cached = fx.verifier();
    let hit = [fx.tokens[0].clone()];
    if !cached.verify(hit[0].as_bytes(), NOW).is_verified() {
        bail!("the bench token was rejected");
    }
    let hits = rate(dur, &hit, |t| {
        cached.verify(t.as_bytes(), NOW).is_verified()
    })?;
    println!(
        "cache hits (byte-identical {}-byte token): {hits:.0}/s {}",
        hit[0].len(),
        verdict(hits >= 1_000_000.0)
    );
    ok &= hits >= 1_000_000.0;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "(target met)"
    } else {
        "(BELOW TARGET)"
    }
}

/// Calls `f` on the tokens in turn for `dur`; every call must return true.
fn rate(
    dur: Duration,
    tokens: &[String],
    mut f: impl FnMut(&String) -> bool,
) -> anyhow::Result<f64> {
    let start = Instant::now();
    let mut n = 0usize;
    loop {
        for t in tokens {
            if !f(t) {
                bail!("unexpected verdict during the measurement");
            }
        }
        n += tokens.len();
        let e = start.elapsed();
        if e >= dur {
            return Ok(n as f64 / e.as_secs_f64());
        }
    }
}

struct Fixture {
    trust_pem: Vec<u8>,
    desk_pem: Vec<u8>,
    tokens: Vec<String>,
    dir: std::path::PathBuf,
}

impl Fixture {
    fn new(bits: u32) -> anyhow::Result<Fixture> {
        let brand = PKey::from_rsa(Rsa::generate(bits)?)?;
        let desk = PKey::from_rsa(Rsa::generate(bits)?)?;
        let brand_pem = brand.private_key_to_pem_pkcs8()?;
        let trust_pem = brand.public_key_to_pem()?;
        let desk_pem = desk.private_key_to_pem_pkcs8()?;
        let key = SigningKey::from_pem(&brand_pem)?;
        let to = Recipient::new(&parse_public_keys(&desk.public_key_to_pem()?)?[0])?;
        let tokens = (0..64)
            .map(|i| {
                let claims = Claims {
                    issuer: ISSUER.into(),
                    user_id: format!("bench-user-{i}"),
                    visitor_data:
                        serde_json::json!({"firstName": "Ada", "email": "ada@example.com"})
                            .as_object()
                            .cloned(),
                    expires_at: NOW + 60,
                    ..Claims::default()
                };
                mint::mint(&claims, &key, Some(&to))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let dir =
            std::env::temp_dir().join(format!("lockdesk-bench-{}-{bits}", std::process::id()));
        Ok(Fixture {
            trust_pem,
            desk_pem,
            tokens,
            dir,
        })
    }

    fn verifier(&self) -> Verifier {
        let mut trust = TrustStore::new();
        trust
            .add(
                ISSUER,
                parse_public_keys(&self.trust_pem).unwrap_or_default(),
            )
            .ok();
        Verifier::new(
            trust,
            parse_decryption_keys(&self.desk_pem).unwrap_or_default(),
            Policy::default(),
        )
    }

    /// The engine `verify --batch` uses, loaded from files like the CLI does, cache off so every
    /// token costs its RSA.
    fn engine_without_cache(&self) -> anyhow::Result<Engine> {
        std::fs::create_dir_all(&self.dir)?;
        let trust = self.dir.join("brand.pub.pem");
        let desk = self.dir.join("desk.key.pem");
        std::fs::write(&trust, &self.trust_pem)?;
        std::fs::write(&desk, &self.desk_pem)?;
        let setup = Setup {
            trust: vec![(ISSUER.into(), lockdesk_keys::Source::File(trust))],
            decryption: vec![desk],
            policy: Policy::default(),
            no_cache: true,
        };
        let engine = Engine::load(&setup)?;
        let _ = std::fs::remove_dir_all(&self.dir);
        Ok(engine)
    }
}

/// Tokens rejected before any RSA: a spread of the cheap checks.
fn junk_tokens(good: &str) -> Vec<(&'static str, String)> {
    let parts: Vec<&str> = good.split('.').collect();
    let b64 = |s: &str| {
        use std::fmt::Write;
        let enc = openssl::base64::encode_block(s.as_bytes());
        let mut out = String::new();
        for c in enc.trim_end_matches('=').chars() {
            let _ = out.write_char(match c {
                '+' => '-',
                '/' => '_',
                c => c,
            });
        }
        out
    };
    let with_header = |h: &str| {
        let mut p = parts.clone();
        let enc = b64(h);
        p[0] = &enc;
        p.join(".")
    };
    vec![
        ("oversized", "a".repeat(17 * 1024)),
        ("bad character", format!("{good}!")),
        ("two parts", "abc.def".into()),
        (
            "bad base64 header",
            format!("@{}", &good[1..]).replace('@', "*"),
        ),
        ("alg none", with_header(r#"{"alg":"none"}"#)),
        ("HS256", with_header(r#"{"alg":"HS256"}"#)),
        (
            "enc A128GCM",
            with_header(r#"{"alg":"RSA-OAEP-256","enc":"A128GCM"}"#),
        ),
        (
            "jku",
            with_header(r#"{"alg":"RSA-OAEP-256","enc":"A256GCM","jku":"https://evil"}"#),
        ),
        (
            "zip",
            with_header(r#"{"alg":"RSA-OAEP-256","enc":"A256GCM","zip":"DEF"}"#),
        ),
        (
            "duplicate alg",
            with_header(r#"{"alg":"RSA-OAEP-256","alg":"RSA-OAEP-256","enc":"A256GCM"}"#),
        ),
        ("short IV", {
            let mut p = parts.clone();
            p[2] = "AAAAAAAAAAA";
            p.join(".")
        }),
        ("short tag", {
            let mut p = parts.clone();
            p[4] = "AA";
            p.join(".")
        }),
        (
            "JSON serialization",
            r#"{"protected":"x","ciphertext":"y"}"#.into(),
        ),
    ]
}

/// `openssl speed -elapsed -seconds S rsaN`: (sign/s, verify/s) for the same key size.
fn openssl_speed(bits: u32, seconds: f64) -> anyhow::Result<(f64, f64)> {
    let secs = seconds.ceil().max(1.0) as u32;
    let out = std::process::Command::new("openssl")
        .args([
            "speed",
            "-elapsed",
            "-seconds",
            &secs.to_string(),
            &format!("rsa{bits}"),
        ])
        .output()
        .context("cannot run `openssl speed` (is the openssl command installed?)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let prefix = format!("rsa {bits} bits");
    let line = text
        .lines()
        .find(|l| l.starts_with(&prefix))
        .with_context(|| format!("`openssl speed rsa{bits}` printed no result line"))?;
    let nums: Vec<f64> = line[prefix.len()..]
        .split_whitespace()
        .filter(|w| !w.ends_with('s'))
        .filter_map(|w| w.parse().ok())
        .collect();
    match nums.as_slice() {
        [sign, verify, ..] => Ok((*sign, *verify)),
        _ => bail!("cannot read `openssl speed` output: {line}"),
    }
}
