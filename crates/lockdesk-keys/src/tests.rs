use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lockdesk_config::KeyFileCheck;
use lockdesk_verify::mint::{self, Claims, Recipient, SigningKey};
use lockdesk_verify::{Reason, Verdict};

use super::*;

const NOW: i64 = 1_800_000_000;

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../lockdesk-verify/tests/data")
        .join(name)
}

fn signing(name: &str, kid: Option<&str>) -> SigningKey {
    let k = SigningKey::from_pem(&std::fs::read(data(name)).unwrap()).unwrap();
    match kid {
        Some(kid) => k.with_kid(kid),
        None => k,
    }
}

fn jwks(entries: &[(&str, &str)]) -> Vec<u8> {
    let keys: Vec<serde_json::Value> = entries
        .iter()
        .map(|(file, kid)| {
            let k = load_public_file(&data(file)).unwrap().remove(0);
            k.with_kid(*kid).to_jwk()
        })
        .collect();
    serde_json::json!({ "keys": keys }).to_string().into_bytes()
}

fn token(key: &SigningKey, issuer: &str) -> String {
    let desk = load_public_file(&data("desk.pub.pem")).unwrap().remove(0);
    let claims = Claims {
        issuer: issuer.into(),
        user_id: "user-1".into(),
        expires_at: NOW + 60,
        ..Claims::default()
    };
    mint::mint(&claims, key, Some(&Recipient::new(&desk).unwrap())).unwrap()
}

/// Serves whatever body is set, counting requests.
struct FakeFetch {
    body: Mutex<Result<Vec<u8>, String>>,
    calls: AtomicUsize,
}

impl Fetch for FakeFetch {
    fn fetch(&self, _url: &str) -> Result<Vec<u8>, String> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.body.lock().unwrap().clone()
    }
}

struct FakeClock(Mutex<Instant>);

/// `token` is refused for an unknown key.
#[track_caller]
fn assert_unknown_key(engine: &Engine, token: &str) {
    assert_eq!(
        engine.verify(token.as_bytes(), NOW).reason(),
        Some(Reason::UnknownKey)
    );
}

fn remote_engine(initial: Vec<u8>) -> (Engine, Arc<FakeFetch>, Arc<FakeClock>) {
    let fetch = Arc::new(FakeFetch {
        body: Mutex::new(Ok(initial)),
        calls: AtomicUsize::new(0),
    });
    let clock = Arc::new(FakeClock(Mutex::new(Instant::now())));
    let c = clock.clone();
    let setup = Setup {
        trust: vec![(
            "https://brand.example".into(),
            Source::Url("https://brand.example/jwks.json".into()),
        )],
        decryption: vec![data("desk.key.pkcs1.pem")],
        policy: Policy::default(),
        no_cache: false,
    };
    let engine = Engine::load_with(
        &setup,
        fetch.clone(),
        Arc::new(move || *c.0.lock().unwrap()),
    )
    .unwrap();
    (engine, fetch, clock)
}

fn advance(clock: &FakeClock, secs: u64) {
    *clock.0.lock().unwrap() += Duration::from_secs(secs);
}

#[test]
fn file_sources_verify() {
    let setup = Setup {
        trust: vec![(
            "https://brand.example".into(),
            Source::parse(&data("brand.pub.pem").display().to_string()),
        )],
        decryption: vec![data("desk.key.pkcs1.pem")],
        policy: Policy::default(),
        no_cache: false,
    };
    let engine = Engine::load(&setup).unwrap();
    let t = token(&signing("brand.key.pem", None), "https://brand.example");
    assert!(engine.verify(t.as_bytes(), NOW).is_verified());
}

#[test]
fn unknown_kid_refetches_at_most_once_a_minute() {
    let (engine, fetch, clock) = remote_engine(jwks(&[("brand.pub.pem", "a")]));
    assert_eq!(fetch.calls.load(Ordering::SeqCst), 1);
    let old = token(
        &signing("brand.key.pem", Some("a")),
        "https://brand.example",
    );
    let rotated = token(
        &signing("brand2.key.pem", Some("b")),
        "https://brand.example",
    );
    assert!(engine.verify(old.as_bytes(), NOW).is_verified());

    // The brand publishes key b; within the minute after the load we do not refetch.
    *fetch.body.lock().unwrap() = Ok(jwks(&[("brand.pub.pem", "a"), ("brand2.pub.pem", "b")]));
    advance(&clock, 30);
    assert_unknown_key(&engine, &rotated);
    assert_eq!(fetch.calls.load(Ordering::SeqCst), 1);

    // A minute after the last attempt, an unknown kid triggers one refetch, and the token passes.
    advance(&clock, 30);
    assert!(engine.verify(rotated.as_bytes(), NOW).is_verified());
    assert_eq!(fetch.calls.load(Ordering::SeqCst), 2);

    // A flood of unknown kids right after does not hammer the brand.
    let junk = token(
        &signing("brand2.key.pem", Some("zzz")),
        "https://brand.example",
    );
    for _ in 0..100 {
        assert_unknown_key(&engine, &junk);
    }
    assert_eq!(fetch.calls.load(Ordering::SeqCst), 2);
    // Known kids never cause a fetch.
    advance(&clock, 3600);
    assert!(engine.verify(old.as_bytes(), NOW).is_verified());
    assert_eq!(fetch.calls.load(Ordering::SeqCst), 2);
}

#[test]
fn failed_refetch_keeps_previous_keys() {
    let (engine, fetch, clock) = remote_engine(jwks(&[("brand.pub.pem", "a")]));
    *fetch.body.lock().unwrap() = Err("connection refused".into());
    advance(&clock, 120);
    let unknown = token(
        &signing("brand2.key.pem", Some("b")),
        "https://brand.example",
    );
    assert_unknown_key(&engine, &unknown);
    assert_eq!(fetch.calls.load(Ordering::SeqCst), 2);
    let old = token(
        &signing("brand.key.pem", Some("a")),
        "https://brand.example",
    );
    assert!(engine.verify(old.as_bytes(), NOW).is_verified());

    // A set that turns invalid (here: empty) is refused and the old keys stay.
    *fetch.body.lock().unwrap() = Ok(br#"{"keys":[]}"#.to_vec());
    advance(&clock, 120);
    assert!(!engine.refresh());
    assert!(engine.verify(old.as_bytes(), NOW).is_verified());
}

#[test]
fn plain_http_and_bad_sources_are_refused_with_their_name() {
    let setup = Setup {
        trust: vec![("i".into(), Source::parse("http://brand.example/jwks"))],
        ..Setup::default()
    };
    let err = Engine::load(&setup).err().unwrap().to_string();
    assert!(
        err.contains("http://brand.example/jwks") && err.contains("https"),
        "{err}"
    );

    let setup = Setup {
        trust: vec![("i".into(), Source::File(data("weak1024.pub.pem")))],
        ..Setup::default()
    };
    let err = Engine::load(&setup).err().unwrap().to_string();
    assert!(
        err.contains("weak1024.pub.pem") && err.contains("under 2048 bits"),
        "{err}"
    );
}

#[test]
fn key_content_check_reports_what_is_wrong() {
    let check = KeyContentCheck;
    let cases: &[(&str, bool, Result<(), &str>)] = &[
        ("brand.pub.pem", true, Ok(())),
        ("brand.key.pem", true, Err("not a public key")),
        (
            "weak1024.pub.pem",
            true,
            Err("key under 2048 bits (1024 bits)"),
        ),
        (
            "e3.pub.pem",
            true,
            Err("public exponent must be 65537, found 3"),
        ),
        ("ec.pub.pem", true, Err("not an RSA key")),
        ("no-such-file.pem", true, Err("no such file")),
        ("desk.key.pkcs1.pem", false, Ok(())),
        ("desk2.key.pem", false, Ok(())),
        ("desk.pub.pem", false, Err("not a private key")),
        (
            "weak1024.key.pem",
            false,
            Err("key under 2048 bits (1024 bits)"),
        ),
    ];
    for (file, public, expect) in cases {
        let got = if *public {
            check.check_public(&data(file))
        } else {
            check.check_private(&data(file))
        };
        match (expect, &got) {
            (Ok(()), Ok(())) => {}
            (Err(want), Err(msg)) if msg.contains(want) => {}
            _ => panic!("{file}: expected {expect:?}, got {got:?}"),
        }
    }
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        check.check_public(dir.path()),
        Err("expected a file, found a folder".into())
    );
}

#[test]
fn config_validation_uses_the_real_parser() {
    let mut config = lockdesk_config::Config::default();
    config.trust.push(lockdesk_config::TrustedIssuer {
        issuer: "https://brand.example".into(),
        key: data("brand.key.pem").display().to_string(),
    });
    let errors = lockdesk_config::validate(&config, &KeyContentCheck);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].field, "trust.0.key");
    assert!(errors[0].message.contains("not a public key"), "{errors:?}");
}

#[test]
fn verdicts_are_shared_across_threads() {
    let (engine, _, _) = remote_engine(jwks(&[("brand.pub.pem", "a")]));
    let t = token(
        &signing("brand.key.pem", Some("a")),
        "https://brand.example",
    );
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                assert!(matches!(
                    engine.verify(t.as_bytes(), NOW),
                    Verdict::Verified(_)
                ))
            });
        }
    });
}
