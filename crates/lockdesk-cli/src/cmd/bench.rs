//! `lockdesk-cli bench verify`: the speed figures of issue 3, measured in one run.
//!
//! - full verification of fresh nested tokens on one core (cache off), for 2048 and 4096 bits,
//!   against the RSA floor: one private and one public operation with a key of the same size
//!   (what `openssl speed`'s private+public rate measures), in the same thread, in batches that
//!   alternate with the tokens' so that a shared machine's drift falls on both alike; timed by
//!   the thread's CPU time (another process on the other core, or waiting for a core, does not
//!   count), wall time reported beside it;
//! - `verify --batch`'s code path on every core, against the one-core rate;
//! - malformed and oversized tokens rejected before any RSA;
//! - cache hits for a byte-identical token.
//!
//! Never run by the test command (it takes about a minute and its numbers depend on the machine).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use lockdesk_keys::{Engine, Setup};
use lockdesk_verify::floor::RsaFloor;
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
        /// Seconds of thread CPU time per side (floor, full verification) and round.
        #[arg(long, default_value_t = 1.0)]
        seconds: f64,
        /// Rounds per key size, each alternating floor and full-verification batches.
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
        "lockdesk-cli bench verify: {rounds} rounds of {seconds}s (thread CPU time) per side, {cores} core(s); \
         each round alternates batches of the RSA floor and of full verification"
    );
    let mut ok = true;
    for &b in &bits {
        if ![2048, 3072, 4096].contains(&b) {
            bail!("--bits {b}: expected 2048, 3072 or 4096");
        }
        let fx = Fixture::new(b)?;
        let verifier = fx.verifier().without_cache();
        let mut floor = RsaFloor::new(&fx.desk_pem)?;
        // `openssl speed` (its own CPU-time figures) once, as a cross-check of the in-process floor.
        let (s, v) = openssl_speed(b, seconds)?;
        println!(
            "rsa{b}: openssl speed sign {s:.1}/s verify {v:.1}/s -> private+public {:.1}/s (CPU time; reference only)",
            1.0 / (1.0 / s + 1.0 / v)
        );
        let mut next = 0usize;
        let mut rounds_out = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            let round = alternate(dur, &mut || floor.op(), &mut || {
                let t = &fx.tokens[next % fx.tokens.len()];
                next += 1;
                verifier.verify(t.as_bytes(), NOW).is_verified()
            })?;
            rounds_out.push(round);
        }
        let cpu = spread(rounds_out.iter().map(Round::cpu_ratio));
        let wall = spread(rounds_out.iter().map(Round::wall_ratio));
        let best = |f: fn(&Round) -> f64| rounds_out.iter().map(f).fold(0.0f64, f64::max);
        let one = best(|r| r.full.wall_rate());
        println!(
            "rsa{b}: floor (one PKCS#1 sign + one verify, same key size, in this thread; best round) \
             {:.1}/s CPU, {:.1}/s wall; full verification, 1 core (best round) {:.1}/s CPU, {one:.1}/s wall",
            best(|r| r.floor.cpu_rate()),
            best(|r| r.floor.wall_rate()),
            best(|r| r.full.cpu_rate()),
        );
        println!(
            "rsa{b}: per-round ratio to the floor by CPU time: median {:.1}% (min {:.1}%, max {:.1}%) {}; \
             by wall time: median {:.1}% (min {:.1}%, max {:.1}%)",
            100.0 * cpu.1,
            100.0 * cpu.0,
            100.0 * cpu.2,
            verdict(cpu.1 >= 0.95),
            100.0 * wall.1,
            100.0 * wall.0,
            100.0 * wall.2,
        );
        ok &= cpu.1 >= 0.95;

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
    let (rejected, rejected_wall) = rate(dur, &junk_only, |t| {
        !verifier.verify(t.as_bytes(), NOW).is_verified()
    })?;
    println!(
        "malformed/oversized rejection (mix of {} kinds, no RSA): {rejected:.0}/s CPU ({rejected_wall:.0}/s wall) {}",
        junk.len(),
        verdict(rejected >= 200_000.0)
    );
    ok &= rejected >= 200_000.0;

    let cached = fx.verifier();
    let hit = [fx.tokens[0].clone()];
    if !cached.verify(hit[0].as_bytes(), NOW).is_verified() {
        bail!("the bench token was rejected");
    }
    let (hits, hits_wall) = rate(dur, &hit, |t| {
        cached.verify(t.as_bytes(), NOW).is_verified()
    })?;
    println!(
        "cache hits (byte-identical {}-byte token): {hits:.0}/s CPU ({hits_wall:.0}/s wall) {}",
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

/// This thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`): time spent waiting for a core, or in
/// other processes, is not counted.
fn cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec).unwrap_or(0),
    )
}

/// Operations done and the CPU and wall time they took.
#[derive(Default, Clone, Copy)]
struct Side {
    ops: u64,
    cpu: Duration,
    wall: Duration,
}

impl Side {
    /// Runs `op` `n` times, every call must return true.
    fn run(&mut self, n: u64, op: &mut dyn FnMut() -> bool) -> anyhow::Result<()> {
        let (c0, w0) = (cpu_time(), Instant::now());
        for _ in 0..n {
            if !op() {
                bail!("unexpected verdict during the measurement");
            }
        }
        self.cpu += cpu_time().saturating_sub(c0);
        self.wall += w0.elapsed();
        self.ops += n;
        Ok(())
    }

    fn cpu_rate(&self) -> f64 {
        self.ops as f64 / self.cpu.as_secs_f64().max(1e-9)
    }

    fn wall_rate(&self) -> f64 {
        self.ops as f64 / self.wall.as_secs_f64().max(1e-9)
    }
}

/// One round: the floor and full verification, in alternated batches.
struct Round {
    floor: Side,
    full: Side,
}

impl Round {
    fn cpu_ratio(&self) -> f64 {
        self.full.cpu_rate() / self.floor.cpu_rate()
    }

    fn wall_ratio(&self) -> f64 {
        self.full.wall_rate() / self.floor.wall_rate()
    }
}

/// Operations per batch: a few milliseconds of RSA, so that a batch of one side and the next
/// batch of the other see the same machine.
const BATCH: u64 = 8;

/// Runs `floor` and `full` in batches ordered floor, full, full, floor (so a steady drift
/// within the four falls on both alike) until each side has had `dur` of CPU time.
fn alternate(
    dur: Duration,
    floor: &mut dyn FnMut() -> bool,
    full: &mut dyn FnMut() -> bool,
) -> anyhow::Result<Round> {
    let mut r = Round {
        floor: Side::default(),
        full: Side::default(),
    };
    while r.floor.cpu < dur || r.full.cpu < dur {
        r.floor.run(BATCH, floor)?;
        r.full.run(BATCH, full)?;
        r.full.run(BATCH, full)?;
        r.floor.run(BATCH, floor)?;
    }
    Ok(r)
}

/// (min, median, max); the median of an even count is the upper middle value.
fn spread(values: impl Iterator<Item = f64>) -> (f64, f64, f64) {
    let mut v: Vec<f64> = values.collect();
    v.sort_by(f64::total_cmp);
    match (v.first(), v.get(v.len() / 2), v.last()) {
        (Some(&a), Some(&m), Some(&b)) => (a, m, b),
        _ => (0.0, 0.0, 0.0),
    }
}

/// Calls `f` on the tokens in turn until `dur` of this thread's CPU time has passed; every call
/// must return true. (calls per CPU second, calls per wall second)
fn rate(
    dur: Duration,
    tokens: &[String],
    mut f: impl FnMut(&String) -> bool,
) -> anyhow::Result<(f64, f64)> {
    // Reading the thread's CPU clock is a system call (about a microsecond): once per 1,024
    // calls or more, so that it costs the cheap calls measured here well under 1%.
    let per_check = tokens.len().max(1).next_multiple_of(1024);
    let (c0, w0) = (cpu_time(), Instant::now());
    let mut n = 0usize;
    loop {
        for t in tokens.iter().cycle().take(per_check) {
            if !f(t) {
                bail!("unexpected verdict during the measurement");
            }
        }
        n += per_check;
        let cpu = cpu_time().saturating_sub(c0);
        if cpu >= dur {
            return Ok((
                n as f64 / cpu.as_secs_f64(),
                n as f64 / w0.elapsed().as_secs_f64(),
            ));
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

/// `openssl speed -seconds S rsaN`: (sign/s, verify/s) for the same key size, by the process's
/// CPU time (its default without `-elapsed`).
fn openssl_speed(bits: u32, seconds: f64) -> anyhow::Result<(f64, f64)> {
    let secs = seconds.ceil().max(1.0) as u32;
    let out = std::process::Command::new("openssl")
        .args([
            "speed",
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
