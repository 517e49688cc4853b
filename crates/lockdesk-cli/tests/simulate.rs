//! The simulator against the real gateway: both real binaries, real HTTP on 127.0.0.1, a real
//! SQLite file.

use crate::support::{cli, generate_keys, start_gateway, GatewayConfig};

const WEBHOOK_SECRET: &str = "sim-webhook-secret-0123456789";
const PROVIDER_TOKEN: &str = "sim-provider-credential-0123456789";

/// GET /metrics with a plain HTTP/1.1 request (no client library needed for one GET).
fn metric(url: &str, name: &str) -> f64 {
    use std::io::{Read, Write};
    let addr = url.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn every_scenario_is_accepted_by_the_gateway_and_replays_are_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    generate_keys(&dir.path().join("desk"));
    let gw = start_gateway(
        dir.path(),
        &GatewayConfig::default()
            .webhook("sim", WEBHOOK_SECRET)
            .provider("sim", PROVIDER_TOKEN)
            .toml(),
    );
    let url = gw.url();

    let simulate = || {
        cli()
            .args([
                "simulate",
                "--gateway",
                &url,
                "--rate",
                "200",
                "--seed",
                "42",
                "--json",
            ])
            .arg("--desk-key")
            .arg(dir.path().join("desk/public.pem"))
            .arg("--write-brand-jwks")
            .arg(dir.path().join("brand.jwks"))
            // The brand key is kept in the data folder: this test's own.
            .env("LOCKDESK_DATA_DIR", dir.path().join("data"))
            .env("LOCKDESK_WEBHOOK_SECRET", WEBHOOK_SECRET)
            .env("LOCKDESK_PROVIDER_TOKEN", PROVIDER_TOKEN)
            .output()
            .unwrap()
    };
    let first = simulate();
    let stdout = String::from_utf8(first.stdout).unwrap();
    assert!(
        first.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.iter().all(|l| l["ok"] == true), "{stdout}");
    let webhooks = lines.iter().filter(|l| l["kind"] == "webhook").count();
    let evidence = lines.iter().filter(|l| l["kind"] == "evidence").count();
    assert!(
        webhooks > 20 && evidence > 10,
        "{webhooks} webhooks, {evidence} evidence"
    );
    let scenarios: std::collections::HashSet<_> = lines
        .iter()
        .map(|l| l["scenario"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(scenarios.len(), 12);
    assert!(scenarios.contains("look-alike"), "{scenarios:?}");
    // The brand's key set the desk should trust was written.
    let jwks: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("brand.jwks")).unwrap()).unwrap();
    assert_eq!(jwks["keys"][0]["kid"], "brand-2025");
    // The brand key the first run made is kept, owner-only, and said where.
    let key = dir.path().join("data/simulator/brand-private.pem");
    let first_err = String::from_utf8_lossy(&first.stderr);
    assert!(
        first_err.contains(&format!("brand key {} (created)", key.display())),
        "{first_err}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    // The same seed replays the same deliveries (same eventIds and correlation ids): the
    // gateway answers them all and stores each once; evidence is new every time.
    let second = simulate();
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    // Without --brand-key the second run signs with the first run's key: a desk that trusted
    // the first key set verifies the second run's tokens (before: a new key, all unknown_key).
    let second_err = String::from_utf8_lossy(&second.stderr);
    assert!(second_err.contains("(reused)"), "{second_err}");
    let again: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("brand.jwks")).unwrap()).unwrap();
    assert_eq!(again, jwks, "the same brand public key both runs");
    let stored = metric(&url, "lockdesk_gateway_ingested_total");
    assert_eq!(
        stored as usize,
        webhooks + 2 * evidence,
        "stored after two identical runs"
    );
    let duplicates = metric(&url, "lockdesk_gateway_duplicate_webhooks_total");
    assert_eq!(
        duplicates as usize, webhooks,
        "every replayed delivery recognised"
    );
}
