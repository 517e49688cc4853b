//! `lockdesk-cli verify`, `keys` and `token` as users run them: exit codes, output shapes,
//! messages that name the flag or file.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const NOW: i64 = 1_800_000_000;
const ISS: &str = "https://test.iadvize.com";

fn data(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../lockdesk-verify/tests/data")
        .join(name)
        .display()
        .to_string()
}

fn cli(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_lockdesk-cli"));
    c.env("LOCKDESK_CONFIG_DIR", dir.join("config"))
        .env("LOCKDESK_DATA_DIR", dir.join("data"))
        .env_remove("RUST_LOG");
    c
}

fn run(dir: &Path, args: &[&str]) -> Output {
    cli(dir).args(args).output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn mint(dir: &Path, extra: &[&str]) -> String {
    mint_for(dir, "user-7", extra)
}

/// `token mint` for `user`, signed by the test brand's key, encrypted to the test desk's.
fn mint_for(dir: &Path, user: &str, extra: &[&str]) -> String {
    let desk_pub = data("desk.pub.pem");
    let brand_key = data("brand.key.pem");
    let now = NOW.to_string();
    let mut args = vec![
        "token",
        "mint",
        "--signing-key",
        &brand_key,
        "--encrypt-to",
        &desk_pub,
        "--issuer",
        ISS,
        "--user-id",
        user,
        "--now",
        &now,
    ];
    args.extend_from_slice(extra);
    let out = run(dir, &args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout).trim().to_owned()
}

fn verify_args(extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = vec![
        "verify".into(),
        "--trust".into(),
        format!("{ISS}={}", data("brand.pub.pem")),
        "--decrypt-key".into(),
        data("desk.key.pkcs1.pem"),
    ];
    if !extra.contains(&"--now") {
        v.extend(["--now".into(), NOW.to_string()]);
    }
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

fn verify(dir: &Path, extra: &[&str]) -> Output {
    cli(dir).args(verify_args(extra)).output().unwrap()
}

#[test]
fn mint_then_verify_human_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let token = mint(
        dir.path(),
        &[
            "--visitor-data",
            r#"{"firstName":"Ada","tier":"gold"}"#,
            "--iat",
        ],
    );
    assert_eq!(token.split('.').count(), 5);

    let out = verify(dir.path(), &[&token]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let human = text(&out.stdout);
    assert!(
        human.starts_with("verified (jwe): userId \"user-7\""),
        "{human}"
    );
    assert!(human.contains("visitorData.firstName: \"Ada\""), "{human}");
    assert!(human.contains("unverified extra"), "{human}");
    assert!(!human.contains(&token), "the token must never be echoed");

    let out = verify(dir.path(), &["--json", &token]);
    assert_eq!(out.status.code(), Some(0));
    let j: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    let keys: Vec<&str> = j.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "verdict",
            "format",
            "userId",
            "visitorData",
            "issuer",
            "expiresAt",
            "issuedAt",
            "signingKey",
            "decryptionKey",
            "warnings"
        ]
    );
    assert_eq!(j["verdict"], "verified");
    assert_eq!(j["format"], "jwe");
    assert_eq!(j["expiresAt"], NOW + 60);
    assert_eq!(j["issuedAt"], NOW);
    assert_eq!(j["visitorData"]["tier"], "gold");

    // The token from stdin.
    let mut child = cli(dir.path())
        .args(verify_args(&["--json", "-"]))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    writeln!(child.stdin.take().unwrap(), "{token}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn rejections_exit_1_with_code_and_detail() {
    let dir = tempfile::tempdir().unwrap();
    let token = mint(dir.path(), &[]);
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["--json".into(), "garbage".into()], "malformed"),
        (
            vec![
                "--json".into(),
                "--now".into(),
                (NOW + 120).to_string(),
                token.clone(),
            ],
            "expired",
        ),
        (
            vec![
                "--json".into(),
                "--now".into(),
                (NOW + 59).to_string(),
                "--leeway".into(),
                "0".into(),
                token.clone(),
            ],
            "verified",
        ),
        (
            vec![
                "--json".into(),
                "--max-lifetime".into(),
                "30".into(),
                token.clone(),
            ],
            "lifetime_too_long",
        ),
    ];
    for (extra, expect) in cases {
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let out = verify(dir.path(), &extra);
        let j: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
        if expect == "verified" {
            assert_eq!(out.status.code(), Some(0));
            assert_eq!(j["verdict"], "verified");
        } else {
            assert_eq!(out.status.code(), Some(1), "{expect}");
            assert_eq!(j["verdict"], "rejected");
            assert_eq!(j["reason"], expect);
            assert!(!j["detail"].as_str().unwrap().is_empty());
        }
    }
    let out = verify(dir.path(), &["garbage"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).starts_with("rejected: malformed: "));
}

#[test]
fn batch_keeps_input_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut lines = Vec::new();
    let mut expect = Vec::new();
    for i in 0..24 {
        if i % 5 == 3 {
            lines.push(format!("junk-{i}"));
            expect.push(None);
        } else {
            let uid = format!("u{i}");
            lines.push(mint_for(dir.path(), &uid, &[]));
            expect.push(Some(uid));
        }
        if i == 10 {
            lines.push(String::new()); // blank lines are skipped
        }
    }
    let file = dir.path().join("tokens.txt");
    std::fs::write(&file, lines.join("\n")).unwrap();
    let out = verify(dir.path(), &["--json", "--batch", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let got: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(got.len(), expect.len());
    for (g, e) in got.iter().zip(&expect) {
        match e {
            Some(uid) => assert_eq!(g["userId"], uid.as_str(), "{g}"),
            None => assert_eq!(g["reason"], "malformed"),
        }
    }
    // All good: exit 0.
    let good: Vec<&String> = lines.iter().filter(|l| l.contains('.')).collect();
    std::fs::write(
        &file,
        good.iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n"),
    )
    .unwrap();
    assert_eq!(
        verify(dir.path(), &["--batch", file.to_str().unwrap()])
            .status
            .code(),
        Some(0)
    );
}

#[test]
fn usage_and_configuration_errors_exit_2_naming_the_culprit() {
    let dir = tempfile::tempdir().unwrap();
    let brand_priv = format!("{ISS}={}", data("brand.key.pem"));
    let weak = format!("{ISS}={}", data("weak1024.pub.pem"));
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["verify".into(), "x".into()], "no trusted issuer"),
        (
            vec![
                "verify".into(),
                "--trust".into(),
                "nokey".into(),
                "x".into(),
            ],
            "--trust \"nokey\"",
        ),
        (
            vec!["verify".into(), "--trust".into(), brand_priv, "x".into()],
            "not a public key",
        ),
        (
            vec!["verify".into(), "--trust".into(), weak, "x".into()],
            "key under 2048 bits",
        ),
        (
            vec![
                "verify".into(),
                "--trust".into(),
                format!("{ISS}=/no/such/key.pem"),
                "x".into(),
            ],
            "/no/such/key.pem: no such file",
        ),
        (
            vec![
                "verify".into(),
                "--trust".into(),
                format!("{ISS}=http://brand.example/jwks"),
                "x".into(),
            ],
            "https",
        ),
        (
            verify_args(&["--decrypt-key", &data("desk.pub.pem"), "x"]),
            "--decrypt-key",
        ),
        (
            verify_args(&["--config", "/no/such/config.toml", "x"]),
            "--config /no/such/config.toml",
        ),
        (verify_args(&["--leeway", "301", "x"]), "--leeway 301"),
        (verify_args(&[]), "give a TOKEN"),
        (
            vec!["verify".into(), "--no-such-flag".into()],
            "unexpected argument",
        ),
        (
            vec![
                "keys".into(),
                "generate".into(),
                "--out".into(),
                "x".into(),
                "--bits".into(),
                "1024".into(),
            ],
            "2048, 3072 or 4096",
        ),
    ];
    for (args, needle) in cases {
        let out = cli(dir.path()).args(&args).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
        let err = text(&out.stderr);
        assert!(
            err.contains(needle),
            "{args:?}: expected {needle:?} in {err}"
        );
    }
}

#[test]
fn config_file_supplies_keys_and_policy() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[[trust]]\nissuer = \"{ISS}\"\nkey = \"{}\"\n\n[decryption]\nkeys = [\"{}\"]\n\n[verification]\nleeway_secs = 60\nsession_lifetime_mins = 60\nmax_token_lifetime_secs = 600\nrequire_encryption = true\n",
            data("brand.pub.pem"),
            data("desk.key.pkcs1.pem")
        ),
    )
    .unwrap();
    let cfg = config.to_str().unwrap();
    let now = NOW.to_string();
    let token = mint(dir.path(), &[]);
    let out = run(
        dir.path(),
        &["verify", "--config", cfg, "--now", &now, "--json", &token],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let bare = {
        let out = run(
            dir.path(),
            &[
                "token",
                "mint",
                "--signing-key",
                &data("brand.key.pem"),
                "--no-encrypt",
                "--issuer",
                ISS,
                "--user-id",
                "u",
                "--now",
                &now,
            ],
        );
        text(&out.stdout).trim().to_owned()
    };
    let out = run(
        dir.path(),
        &["verify", "--config", cfg, "--now", &now, "--json", &bare],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("\"encryption_required\""));
    let long = mint(dir.path(), &["--lifetime", "900"]);
    let out = run(
        dir.path(),
        &["verify", "--config", cfg, "--now", &now, "--json", &long],
    );
    assert!(text(&out.stdout).contains("\"lifetime_too_long\""));
    // A bad key in the configuration names the field.
    std::fs::write(
        &config,
        format!(
            "[[trust]]\nissuer = \"{ISS}\"\nkey = \"{}\"\n",
            data("brand.key.pem")
        ),
    )
    .unwrap();
    let out = run(dir.path(), &["verify", "--config", cfg, &token]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("trust.0.key"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn keys_generate_and_inspect() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("brand");
    let od = out_dir.to_str().unwrap();
    let out = run(dir.path(), &["keys", "generate", "--out", od]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let printed = text(&out.stdout);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(out_dir.join("private.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let jwk: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("public.jwk")).unwrap()).unwrap();
    assert!(printed.contains(jwk["kid"].as_str().unwrap()), "{printed}");
    assert!(jwk.get("d").is_none());
    // Never overwrites.
    let again = run(dir.path(), &["keys", "generate", "--out", od]);
    assert_eq!(again.status.code(), Some(2));
    assert!(text(&again.stderr).contains("already exists"));

    // Inspect: PEM file, the bare base64 argument, a weak key.
    let out = run(
        dir.path(),
        &[
            "keys",
            "inspect",
            out_dir.join("public.pem").to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains(jwk["kid"].as_str().unwrap()));
    let iadvize = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA1KdAzuUa5rOXgLHavoDRYoNXzwWz/pFhgGypYFbvV8DNjB93XK2AzKTwW+vxT7RYl4f+sKLdEi3dJYgPt2hquhTNmFxAzRvTuolUOKr1XNx7QbDj+7cfLVDYjmds/ydNtyHi8TUHSvfzs8SGXO5E5H13llmayPEslHKShG0cLIDcLNr6hJcfv9fvOZqQlLQ4Bx7to/66IHke9zY+1oidrUdFGzxXG+RGK81mIMuXj6N2EGJ7YYcQqXJfBJnWFlSGCQNttw5Rfj00eZbkMRO3XohhNqGIiBG2tejSjfB53UpiHdbzni+tyB72R5aaq4d+gkkgaOVYn/Or2fArOH2FUQIDAQAB";
    let out = run(dir.path(), &["keys", "inspect", "--json", iadvize]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let j: serde_json::Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(j["kind"], "bare base64 DER public key");
    assert_eq!(j["bits"], 2048);
    assert_eq!(j["exponent"], "65537");
    let out = run(dir.path(), &["keys", "inspect", &data("weak1024.pub.pem")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("under 2048 bits"));
    let out = run(dir.path(), &["keys", "inspect", "nope"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn verify_against_a_bare_base64_trust_file() {
    // The brand's key written the way iAdvize publishes its own: bare base64 DER.
    let dir = tempfile::tempdir().unwrap();
    let pem = std::fs::read_to_string(data("brand.pub.pem")).unwrap();
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let file = dir.path().join("brand.b64");
    std::fs::write(&file, &b64).unwrap();
    let token = mint(dir.path(), &[]);
    let now = NOW.to_string();
    let trust = format!("{ISS}={}", file.display());
    let out = run(
        dir.path(),
        &[
            "verify",
            "--trust",
            &trust,
            "--decrypt-key",
            &data("desk.key.pkcs1.pem"),
            "--now",
            &now,
            &token,
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}
