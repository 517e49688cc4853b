//! `lockdesk-cli demo`, `watch` and `history`, as processes: the simulator's scenarios end in the
//! right states and alerts, and the multi-device person's history lists all three devices.

use crate::support;
use crate::support::{cli, generate_keys, history};

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Stdio;

use serde_json::Value;

fn json_lines(out: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn s<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str)
}

/// The string `field` of every element of the array `list` in `v` (those without it left out).
fn field_values<'a>(v: &'a Value, list: &str, field: &str) -> BTreeSet<&'a str> {
    v[list]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| s(e, field))
        .collect()
}

/// The lines of the conversations whose changes include `pred`.
fn conversations_where(lines: &[Value], pred: impl Fn(&Value) -> bool) -> BTreeSet<String> {
    lines
        .iter()
        .filter(|l| pred(l))
        .filter_map(|l| s(l, "conversationId").map(str::to_owned))
        .collect()
}

#[test]
fn the_demo_ends_every_scenario_in_its_state_and_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo");
    let out = cli()
        .args(["demo", "--json", "--passes", "1", "--duration", "42"])
        .args(["--session-lifetime-secs", "8", "--data"])
        .arg(&data)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("demo: gateway on 127.0.0.1:"), "{stderr}");
    let lines = json_lines(&out.stdout);

    // Every line has the documented shape.
    for l in &lines {
        for key in [
            "seq",
            "at",
            "conversationId",
            "visitorId",
            "channel",
            "state",
            "userId",
            "reason",
            "alert",
        ] {
            assert!(l.get(key).is_some(), "{key} missing in {l}");
        }
        assert!(l["seq"].as_u64().is_some_and(|n| n > 0), "{l}");
    }

    // Forged, expired and unknown-key tokens: failed with their reasons, each alerted.
    for reason in ["bad_signature", "expired", "unknown_key"] {
        let failed = conversations_where(&lines, |l| {
            s(l, "state") == Some("failed")
                && s(l, "reason") == Some(reason)
                && s(l, "alert") == Some("verification_failed")
        });
        assert_eq!(failed.len(), 1, "{reason}: {failed:?}");
    }
    // WhatsApp: authentication does not exist there.
    let unsupported = conversations_where(&lines, |l| s(l, "state") == Some("unsupported"));
    assert_eq!(unsupported.len(), 1);
    assert!(lines
        .iter()
        .filter(|l| s(l, "state") == Some("unsupported"))
        .all(|l| s(l, "channel") == Some("WHATSAPP")));
    // The alerts of the shared device, the reused userId and the lapsed session.
    for alert in ["shared_device", "reused_user_id", "session_lapsed"] {
        assert!(
            lines.iter().any(|l| s(l, "alert") == Some(alert)),
            "no {alert} in {lines:#?}"
        );
    }
    let lapsed = conversations_where(&lines, |l| s(l, "state") == Some("lapsed"));
    assert!(!lapsed.is_empty());
    // Anonymous conversations stay anonymous; nothing failed is ever shown as anonymous later.
    let failed: BTreeSet<String> = conversations_where(&lines, |l| s(l, "state") == Some("failed"));
    let mut last: BTreeMap<String, String> = BTreeMap::new();
    for l in &lines {
        if let (Some(c), Some(st)) = (s(l, "conversationId"), s(l, "state")) {
            last.insert(c.to_owned(), st.to_owned());
        }
    }
    for c in &failed {
        assert_ne!(last.get(c).map(String::as_str), Some("anonymous"), "{c}");
    }

    // The person on a laptop browser, a phone browser and the mobile app: one userId secured
    // on three visitors, and its history lists the three devices.
    let mut visitors_of: BTreeMap<String, BTreeSet<(String, String)>> = BTreeMap::new();
    for l in lines.iter().filter(|l| s(l, "state") == Some("secured")) {
        if let (Some(u), Some(v), Some(ch)) = (s(l, "userId"), s(l, "visitorId"), s(l, "channel")) {
            visitors_of
                .entry(u.to_owned())
                .or_default()
                .insert((v.to_owned(), ch.to_owned()));
        }
    }
    let (person, devices) = visitors_of
        .iter()
        .find(|(_, v)| v.len() == 3 && v.iter().any(|(_, ch)| ch == "MOBILE_APP"))
        .unwrap_or_else(|| panic!("no multi-device person in {visitors_of:#?}"));
    let h = history(&data, person);
    assert_eq!(h["userId"], Value::String(person.clone()));
    assert_eq!(h["known"], Value::Bool(true));
    let linked: BTreeSet<&str> = field_values(&h, "visitors", "visitorId");
    let expected: BTreeSet<&str> = devices.iter().map(|(v, _)| v.as_str()).collect();
    assert_eq!(linked, expected);
    let devices_seen: BTreeSet<&str> = field_values(&h, "conversations", "device");
    assert!(
        devices_seen.contains("laptop") && devices_seen.contains("phone"),
        "{h}"
    );

    // The human form names the devices too.
    let out = cli()
        .args(["history", person, "--data"])
        .arg(&data)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("MOBILE_APP") && text.contains("laptop"),
        "{text}"
    );
    // Every column is labelled and each conversation shows its dates: no bare `-  -`.
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.trim_start().starts_with("conversation "))
        .collect();
    assert!(!lines.is_empty(), "{text}");
    for l in &lines {
        for label in [
            "  opened 20",
            "  channel ",
            "  source ",
            "  domain ",
            "  device ",
            "  state ",
        ] {
            assert!(l.contains(label), "{label:?} in {l}");
        }
    }
    assert!(text.contains("device laptop"), "{text}");
    assert!(!text.contains("  -  -"), "{text}");
    assert!(text.contains("  visitor "), "{text}");

    // Someone nobody verified has no history (and that is said, not an error).
    let nobody = history(&data, "nobody-at-all");
    assert_eq!(nobody["known"], Value::Bool(false));
}

#[test]
fn history_and_watch_refuse_what_they_cannot_do_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let out = cli()
        .args(["history", "u1", "--data"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no desk store at"));

    let out = cli()
        .args(["watch", "--data"])
        .arg(dir.path())
        .env_remove("LOCKDESK_FEED_CREDENTIAL")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no feed"));

    let out = cli()
        .args([
            "watch",
            "--feed",
            "ws://127.0.0.1:9/v1/feed",
            "--credential",
            "desk-credential-1",
        ])
        .args(["--data"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no trusted issuer"));
}

/// `watch` against a real gateway process fed by `simulate`: the same states as the demo's
/// engine, and a wrong credential stops it with exit 1 and the reason.
#[test]
fn watch_follows_a_real_gateway_and_stops_on_a_refused_credential() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    generate_keys(&keys);
    let gw = support::start_gateway(dir.path(), &support::desk_world_config());
    let jwks = dir.path().join("brand.jwks");
    let sim = cli()
        .args(["simulate", "--gateway", &gw.url(), "--desk-key"])
        .arg(keys.join("public.pem"))
        // The simulator keeps its brand key in the data folder: this test's own.
        .env("LOCKDESK_DATA_DIR", dir.path().join("sim-data"))
        .arg("--write-brand-jwks")
        .arg(&jwks)
        .args(["--webhook-secret", "webhook-secret-0123456789"])
        .args([
            "--provider-token",
            "provider-credential-0123",
            "--rate",
            "200",
        ])
        .args([
            "--scenario",
            "forged",
            "--scenario",
            "login-mid-conversation",
        ])
        .output()
        .unwrap();
    assert!(
        sim.status.success(),
        "{}",
        String::from_utf8_lossy(&sim.stderr)
    );

    let feed = format!("ws://{}/v1/feed", gw.addr);
    let watch = |credential: &str, data: &Path| {
        cli()
            .args([
                "watch",
                "--json",
                "--feed",
                &feed,
                "--credential",
                credential,
            ])
            .arg("--trust")
            .arg(format!("https://brand.example={}", jwks.display()))
            .arg("--decrypt-key")
            .arg(keys.join("private.pem"))
            .args(["--duration", "4", "--data"])
            .arg(data)
            .output()
            .unwrap()
    };
    let data = dir.path().join("desk");
    let out = watch("desk-credential-0123456", &data);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = json_lines(&out.stdout);
    assert!(
        lines
            .iter()
            .any(|l| s(l, "state") == Some("failed") && s(l, "reason") == Some("bad_signature")),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| s(l, "state") == Some("secured")),
        "{lines:#?}"
    );

    // A second run resumes after what was applied: nothing is printed twice.
    let again = watch("desk-credential-0123456", &data);
    assert!(again.status.success());
    assert!(
        json_lines(&again.stdout).is_empty(),
        "{}",
        String::from_utf8_lossy(&again.stdout)
    );

    let refused = watch("not-the-credential-000", &dir.path().join("other"));
    assert_eq!(refused.status.code(), Some(1));
    let err = String::from_utf8_lossy(&refused.stderr);
    // "HTTP 401", not "401": the gateway's random port can hold those digits (40123 in the
    // "connecting to" line failed this test once).
    assert!(err.contains("HTTP 401"), "{err}");
    assert!(!err.contains("not-the-credential-000"), "{err}");
    // Said once: the stop is the last line, not also a state line before it.
    assert_eq!(err.matches("HTTP 401").count(), 1, "{err}");
}

/// Issue 13: `lockdesk-cli demo` while another Lockdesk runs the demo on the same folder reset
/// it under the other. Now the second one is refused, naming the holder, and the first goes on.
#[test]
fn a_second_demo_on_a_folder_in_use_is_refused_with_the_holders_pid() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo");
    let mut first = cli()
        .args(["demo", "--passes", "1", "--duration", "120", "--data"])
        .arg(&data)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Started (the folder is locked before the gateway starts) once it names its gateway.
    let mut first_err = BufReader::new(first.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("demo: gateway on") {
        line.clear();
        assert!(
            first_err.read_line(&mut line).unwrap() > 0,
            "first demo ended"
        );
    }

    let second = cli()
        .args(["demo", "--passes", "1", "--duration", "5", "--data"])
        .arg(&data)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "the demo folder {} is in use by another Lockdesk (pid {})",
            data.display(),
            first.id()
        )),
        "{stderr}"
    );
    // The first one is still running on its store.
    assert!(
        first.try_wait().unwrap().is_none(),
        "the first demo stopped"
    );
    assert!(data.join(lockdesk_service::DESK_FILE).exists());
    first.kill().unwrap();
    first.wait().unwrap();
}
