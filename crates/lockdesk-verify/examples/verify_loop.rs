//! A small full-verification loop for profiling (not shipped, not a test): mints 16 nested
//! RSA-2048 tokens with the committed test keys, then verifies them `N` times round-robin, cache
//! off.
//!
//! ```sh
//! cargo build --release -p lockdesk-verify --example verify_loop   # with strip = false
//! valgrind --tool=callgrind --toggle-collect='lockdesk_verify::engine::Verifier::verify' \
//!     target/release/examples/verify_loop 200
//! valgrind --tool=callgrind --toggle-collect='verify_loop::floor_op' \
//!     target/release/examples/verify_loop floor 200
//! target/release/examples/verify_loop time 7 0.5
//! ```
//! Only the inside of `Verifier::verify` is counted, so the minting is left out; divide the
//! totals by `N` for instructions per token.
//!
//! `floor N` runs instead what `bench verify` calls the RSA floor (the same code,
//! `lockdesk_verify::floor`), with the same keys: one private operation (a PKCS#1 v1.5 signature
//! of a SHA-256 digest, as `openssl speed` signs) and one public operation (its verification), on
//! contexts prepared once. The two totals' ratio is the instruction-count counterpart of the
//! bench's percentage. `time ROUNDS SECONDS` measures both by the thread's CPU time in alternated
//! slices of one process and prints each round's ratio.

use std::path::PathBuf;
use std::time::Duration;

use lockdesk_verify::floor::RsaFloor;
use lockdesk_verify::mint::{self, Claims, Recipient, SigningKey};
use lockdesk_verify::{parse_decryption_keys, parse_public_keys, Policy, TrustStore, Verifier};

const ISSUER: &str = "https://bench.example";
const NOW: i64 = 1_800_000_000;

fn data(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The verifier (cache off) and 16 tokens it accepts.
fn fixture() -> (Verifier, Vec<String>) {
    let brand = SigningKey::from_pem(&data("brand.key.pem")).expect("brand key");
    let desk_pub = parse_public_keys(&data("desk.pub.pem")).expect("desk public key");
    let to = Recipient::new(&desk_pub[0]).expect("recipient");
    let tokens: Vec<String> = (0..16)
        .map(|i| {
            let claims = Claims {
                issuer: ISSUER.into(),
                user_id: format!("bench-user-{i}"),
                visitor_data: serde_json::json!({"firstName": "Ada", "email": "ada@example.com"})
                    .as_object()
                    .cloned(),
                expires_at: NOW + 60,
                ..Claims::default()
            };
            mint::mint(&claims, &brand, Some(&to)).expect("mint")
        })
        .collect();
    let mut trust = TrustStore::new();
    trust
        .add(
            ISSUER,
            parse_public_keys(&data("brand.pub.pem")).expect("brand public key"),
        )
        .expect("trust");
    let verifier = Verifier::new(
        trust,
        parse_decryption_keys(&data("desk.key.pkcs1.pem")).expect("desk key"),
        Policy::default(),
    )
    .without_cache();
    (verifier, tokens)
}

/// The floor with the desk's key (the tokens' size).
fn desk_floor() -> RsaFloor {
    RsaFloor::new(&data("desk.key.pkcs1.pem")).expect("desk key")
}

/// One private and one public RSA operation: the floor of one token.
#[inline(never)]
fn floor_op(f: &mut RsaFloor) -> bool {
    f.op()
}

/// This thread's CPU time: on a shared machine, time spent waiting for a core is not counted.
fn cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn time(rounds: usize, secs: f64) {
    let mut floor = desk_floor();
    let (verifier, tokens) = fixture();
    let slice = Duration::from_secs_f64(secs);
    let mut ratios = Vec::new();
    for _ in 0..rounds {
        let start = cpu_time();
        let mut n = 0usize;
        while cpu_time() - start < slice {
            assert!(floor_op(&mut floor));
            n += 1;
        }
        let floor_rate = n as f64 / (cpu_time() - start).as_secs_f64();
        let start = cpu_time();
        let mut n = 0usize;
        while cpu_time() - start < slice {
            let t = &tokens[n % tokens.len()];
            assert!(verifier.verify(t.as_bytes(), NOW).is_verified());
            n += 1;
        }
        let ours = n as f64 / (cpu_time() - start).as_secs_f64();
        ratios.push(ours / floor_rate);
        println!(
            "floor {floor_rate:.1}/s, full verification {ours:.1}/s: {:.1}%",
            100.0 * ours / floor_rate
        );
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "median {:.1}% (min {:.1}%, max {:.1}%)",
        100.0 * ratios[ratios.len() / 2],
        100.0 * ratios[0],
        100.0 * ratios[ratios.len() - 1]
    );
}

/// CPU time per call of `f`, in microseconds, over `n` calls.
fn per_call(n: usize, mut f: impl FnMut() -> bool) -> f64 {
    let start = cpu_time();
    for _ in 0..n {
        assert!(f());
    }
    (cpu_time() - start).as_secs_f64() * 1e6 / n as f64
}

/// `parts N`: CPU time of each operation of a token on its own, and of the floor's two.
fn parts(n: usize) {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use lockdesk_verify::primitives;
    let mut floor = desk_floor();
    let (verifier, tokens) = fixture();
    let desk = &verifier.decryption_keys()[0];
    let brand = &verifier.trust().keys(ISSUER).expect("brand keys")[0];
    let outer: Vec<Vec<u8>> = tokens[0]
        .split('.')
        .map(|p| URL_SAFE_NO_PAD.decode(p).expect("base64url"))
        .collect();
    let aad = tokens[0].split('.').next().expect("header").as_bytes();
    let cek = primitives::rsa_oaep256_decrypt(desk, &outer[1]).expect("cek");
    let inner = primitives::a256gcm_open(&cek, &outer[2], aad, &outer[3], &outer[4]).expect("jws");
    let dot = inner.iter().rposition(|&b| b == b'.').expect("dot");
    let sig = URL_SAFE_NO_PAD.decode(&inner[dot + 1..]).expect("sig");
    assert!(floor.private_op(), "sign");
    let names = [
        "floor: private (PKCS#1 sign)",
        "floor: public (verify)",
        "RSA-OAEP-256 decrypt",
        "A256GCM open",
        "RS256 verify (SHA-256 + public)",
        "full verification",
    ];
    const BATCH: usize = 32;
    // Interleaved in batches of BATCH calls so that the machine's drift falls on every row alike.
    let mut total = [0.0f64; 6];
    for _ in 0..n.div_ceil(BATCH) {
        total[0] += per_call(BATCH, || floor.private_op());
        total[1] += per_call(BATCH, || floor.public_op());
        total[2] += per_call(BATCH, || {
            primitives::rsa_oaep256_decrypt(desk, &outer[1]).is_some()
        });
        total[3] += per_call(BATCH, || {
            primitives::a256gcm_open(&cek, &outer[2], aad, &outer[3], &outer[4]).is_some()
        });
        total[4] += per_call(BATCH, || {
            primitives::rs256_verify(brand, &inner[..dot], &sig)
        });
        total[5] += per_call(BATCH, || {
            verifier.verify(tokens[0].as_bytes(), NOW).is_verified()
        });
    }
    let rounds = n.div_ceil(BATCH) as f64;
    let rows: Vec<(&str, f64)> = names
        .iter()
        .zip(total)
        .map(|(name, t)| (*name, t / rounds))
        .collect();
    for &(what, us) in &rows {
        println!("{what:34} {us:8.2} us");
    }
    let floor_us = rows[0].1 + rows[1].1;
    let full = rows[5].1;
    let crypto = rows[2].1 + rows[3].1 + rows[4].1;
    println!(
        "floor {floor_us:.2} us; full {full:.2} us = {:.1}% of the floor's rate; outside the three \
         primitives {:.2} us; the primitives beyond the floor {:.2} us",
        100.0 * floor_us / full,
        full - crypto,
        crypto - floor_us
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize, default: f64| -> f64 {
        args.get(i)
            .map_or(default, |a| a.parse().expect("a number"))
    };
    match args.first().map(String::as_str) {
        Some("time") => time(num(1, 7.0) as usize, num(2, 0.5)),
        Some("parts") => parts(num(1, 2000.0) as usize),
        Some("floor") => {
            let n = num(1, 200.0) as usize;
            let mut floor = desk_floor();
            let ok = (0..n).filter(|_| floor_op(&mut floor)).count();
            assert_eq!(ok, n, "every signature verifies");
            println!("{n} private+public RSA operations");
        }
        _ => {
            let n = num(0, 200.0) as usize;
            let (verifier, tokens) = fixture();
            let ok = tokens
                .iter()
                .cycle()
                .take(n)
                .filter(|t| verifier.verify(t.as_bytes(), NOW).is_verified())
                .count();
            assert_eq!(ok, n, "every token verifies");
            println!("{n} tokens verified");
        }
    }
}
