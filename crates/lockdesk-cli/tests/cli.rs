//! The `lockdesk-cli` binary as users run it.

use std::process::Command;

use crate::support::generate_keys;

fn cli() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_lockdesk-cli"));
    // Never the real folders.
    let dir = std::env::temp_dir().join("lockdesk-cli-tests-unused");
    c.env("LOCKDESK_CONFIG_DIR", dir.join("config"))
        .env("LOCKDESK_DATA_DIR", dir.join("data"));
    c
}

#[test]
fn help_and_version() {
    let out = cli().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("Usage: lockdesk-cli"), "{text}");
    let out = cli().arg("--version").output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        format!("lockdesk-cli {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn usage_errors_exit_2() {
    let out = cli().arg("--no-such-flag").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn config_check_names_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    let check = |text: &str| {
        std::fs::write(&path, text).unwrap();
        cli()
            .args(["config", "check", "--config"])
            .arg(&path)
            .output()
            .unwrap()
    };
    let out = check("[verification]\nleeway_secs = 900\n");
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("verification.leeway_secs: expected a clock-skew leeway"),
        "{text}"
    );

    let out = check("[verification]\nleeway_secs = 30\n");
    assert_eq!(out.status.code(), Some(0));

    let out = check("[verification\n");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("--config") && err.contains("config.toml"),
        "{err}"
    );
}

/// Brand engineers run the CLI on servers without a desktop: it must not link GTK or WebKit.
#[cfg(target_os = "linux")]
#[test]
fn the_cli_does_not_link_gtk_or_webkit() {
    let out = Command::new("ldd")
        .arg(env!("CARGO_BIN_EXE_lockdesk-cli"))
        .output()
        .expect("ldd runs");
    let libs = String::from_utf8_lossy(&out.stdout);
    assert!(libs.contains("libc.so"), "ldd output looks wrong: {libs}");
    for banned in ["gtk", "webkit", "gdk", "javascriptcore", "soup"] {
        assert!(
            !libs.to_lowercase().contains(banned),
            "lockdesk-cli links {banned}: {libs}"
        );
    }
}

#[test]
fn simulate_names_the_flag_that_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("desk-public.pem");
    // Nothing listens on port 9; these runs stop at their flags before any request.
    let simulate = |extra: &[&str]| {
        cli()
            .args(["simulate", "--gateway", "http://127.0.0.1:9"])
            .args(["--webhook-secret", "s", "--provider-token", "t"])
            .args(extra)
            .arg("--desk-key")
            .arg(&missing)
            .output()
            .unwrap()
    };
    let out = simulate(&["--scenario", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("--scenario nope: unknown (expected one of anonymous,"),
        "{err}"
    );

    let out = simulate(&[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("--desk-key") && err.contains("desk-public.pem"),
        "{err}"
    );
}

/// A reader that stops early (`| head`) ends the CLI quietly, never with a panic.
#[cfg(unix)]
#[test]
fn a_closed_pipe_is_not_a_panic() {
    use std::io::Read;
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    generate_keys(&dir.path().join("k"));
    // Nothing listens on port 9: every step fails at once and is reported on stdout.
    let mut child = cli()
        .args([
            "simulate",
            "--gateway",
            "http://127.0.0.1:9",
            "--rate",
            "10000",
        ])
        .args([
            "--webhook-secret",
            "s",
            "--provider-token",
            "t",
            "--desk-key",
        ])
        .arg(dir.path().join("k/public.pem"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Close our end before the CLI writes.
    drop(child.stdout.take());
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    child.wait().unwrap();
    assert!(!err.contains("panicked"), "{err}");
}
