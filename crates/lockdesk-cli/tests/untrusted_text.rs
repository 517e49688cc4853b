//! Text from outside, printed by the real `lockdesk-cli`: a token's visitorData, a webhook's
//! channel relayed by a real gateway, a token provider's domain and device, a gateway's close
//! reason, and userIds in the audit log's CSV export. None may reach the terminal as it is (no
//! ESC, C1, DEL or bidi control in the output bytes: each shows as a visible `⟨U+XXXX⟩` marker);
//! `--json` stays exact JSON; CSV cells cannot start a spreadsheet formula.

use crate::support;
use crate::support::generate_keys;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use lockdesk_sim::{Action, Evidence, Scenario, SimKeys, Source, Step, Target, TokenSpec};
use serde_json::{json, Map, Value};

fn cli() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_lockdesk-cli"));
    c.env_remove("RUST_LOG").stdin(Stdio::null());
    c
}

fn text(b: &[u8]) -> String {
    String::from_utf8(b.to_vec()).expect("the CLI writes UTF-8")
}

/// No character a terminal would act on, or that reorders a line, in `out` (line feeds are the
/// CLI's own).
fn assert_clean(out: &[u8], what: &str) {
    let s = text(out);
    for c in s.chars() {
        if c == '\n' {
            continue;
        }
        assert!(
            lockdesk_text::hazard_of(c).is_none(),
            "{what}: raw {c:?} (U+{:04X}) in {s:?}",
            c as u32
        );
    }
}

const ISSUER: &str = "https://brand.example";
const USER: &str = "cust-48151623";
/// A title change (OSC 0), a screen clear (CSI 2J), the 8-bit CSI, DEL and a right-to-left
/// override: what a hostile webhook can put in `channel`.
/// `cust-48151623` with a Cyrillic `с`, on another device.
const LOOK_ALIKE: &str = "\u{441}ust-48151623";
const OTHER_VISITOR: &str = "4f0c2a1e-0000-4000-8000-000000000002";
const CHANNEL: &str = "CHAT\u{1b}]0;pwned\u{7}\u{1b}[2J\u{9b}2J\u{7f}\u{202e}tahc";
const CHANNEL_SHOWN: &str = "CHAT⟨U+001B⟩]0;pwned⟨U+0007⟩⟨U+001B⟩[2J⟨U+009B⟩2J⟨U+007F⟩⟨U+202E⟩tahc";
/// Bidi controls pass the gateway's evidence checks (they are not control characters).
const DOMAIN: &str = "shop.brand.example\u{202e}moc.live";
const DOMAIN_SHOWN: &str = "shop.brand.example⟨U+202E⟩moc.live";
const DEVICE: &str = "phone\u{2066}\u{200f}x";
const DEVICE_SHOWN: &str = "phone⟨U+2066⟩⟨U+200F⟩x";

#[test]
fn verify_shows_hostile_visitor_data_as_markers_and_json_stays_exact() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    generate_keys(&keys);
    let brand = dir.path().join("brand");
    generate_keys(&brand);
    let hostile = "x\u{1b}]0;pwned\u{7}\u{1b}[2J\u{85}\u{9b}31m\u{7f}\u{202e}\u{2067}\u{200b}y";
    let visitor_data = json!({
        "firstName": "Ada\u{202e}",
        "note\u{1b}[2J": hostile,
        "nested": {"k": hostile},
    })
    .to_string();
    let out = cli()
        .args(["token", "mint", "--signing-key"])
        .arg(brand.join("private.pem"))
        .arg("--encrypt-to")
        .arg(keys.join("public.pem"))
        .args([
            "--issuer",
            ISSUER,
            "--user-id",
            "user-7",
            "--now",
            "1800000000",
        ])
        .args(["--visitor-data", &visitor_data])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let token = text(&out.stdout).trim().to_owned();
    let verify = |json: bool| {
        let mut c = cli();
        c.args(["verify", "--now", "1800000000", "--trust"])
            .arg(format!("{ISSUER}={}", brand.join("public.pem").display()))
            .arg("--decrypt-key")
            .arg(keys.join("private.pem"));
        if json {
            c.arg("--json");
        }
        c.arg(&token).output().unwrap()
    };

    let human = verify(false);
    assert_eq!(human.status.code(), Some(0), "{}", text(&human.stderr));
    assert_clean(&human.stdout, "verify");
    let shown = text(&human.stdout);
    let marked =
        "x⟨U+001B⟩]0;pwned⟨U+0007⟩⟨U+001B⟩[2J⟨U+0085⟩⟨U+009B⟩31m⟨U+007F⟩⟨U+202E⟩⟨U+2067⟩⟨U+200B⟩y";
    assert!(
        shown.contains(&format!("(unverified extra): \"{marked}\"")),
        "{shown}"
    );
    // Inside a JSON value: JSON's escape for C0, markers for the rest.
    assert!(
        shown.contains("{\"k\":\"x\\u001b]0;pwned\\u0007\\u001b[2J⟨U+0085⟩⟨U+009B⟩31m"),
        "{shown}"
    );
    assert!(
        shown.contains("visitorData.\"note⟨U+001B⟩[2J\" (unverified extra)"),
        "{shown}"
    );
    assert!(
        shown.contains("visitorData.firstName: \"Ada⟨U+202E⟩\""),
        "{shown}"
    );

    let machine = verify(true);
    assert_eq!(machine.status.code(), Some(0));
    assert_clean(&machine.stdout, "verify --json");
    let j: Value = serde_json::from_slice(&machine.stdout).unwrap();
    assert_eq!(
        j["visitorData"]["note\u{1b}[2J"], hostile,
        "exact once decoded"
    );
    assert_eq!(j["visitorData"]["nested"]["k"], hostile);
    assert_eq!(j["visitorData"]["firstName"], "Ada\u{202e}");
}

/// Signs and sends `body` as an iAdvize webhook, or `evidence` as the token provider, through
/// the simulator's own sender.
fn send(sender: &mut lockdesk_sim::Sender, action: Action) {
    sender
        .send(&Step {
            at_ms: 0,
            scenario: Scenario::Anonymous,
            action,
        })
        .unwrap();
}

fn webhook(event_type: &str, fields: Value) -> Action {
    let mut body = Map::new();
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    body.insert("eventId".into(), format!("event-{n}").into());
    body.insert("eventType".into(), event_type.into());
    if let Value::Object(f) = fields {
        body.extend(f);
    }
    Action::Webhook {
        correlation_id: "corr-1".into(),
        body,
    }
}

#[test]
fn watch_and_history_show_a_relayed_channel_domain_and_device_as_markers() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    generate_keys(&keys);
    let gw = support::start_gateway(dir.path(), &support::desk_world_config());

    let desk_public = lockdesk_sim::read_desk_public(&keys.join("public.pem")).unwrap();
    let sim_keys = SimKeys::generate(&desk_public).unwrap();
    let jwks = dir.path().join("brand.jwks");
    std::fs::write(&jwks, &sim_keys.brand_public_jwks).unwrap();
    let mut sender = lockdesk_sim::Sender::new(
        Target {
            gateway: gw.url(),
            webhook_secret: b"webhook-secret-0123456789".to_vec(),
            provider_token: "provider-credential-0123".into(),
        },
        sim_keys,
    )
    .unwrap();
    let visitor = "4f0c2a1e-0000-4000-8000-000000000001";
    // A conversation secured from a hostile domain and device...
    send(
        &mut sender,
        webhook(
            "v2.conversation.pushed",
            json!({"conversationId": "conv-a", "operatorId": 7, "channel": "CHAT",
                   "visitorId": visitor}),
        ),
    );
    let mut vd = Map::new();
    vd.insert("firstName".into(), "Ada".into());
    send(
        &mut sender,
        Action::Evidence(Evidence {
            visitor_id: visitor.into(),
            conversation_id: Some("conv-a".into()),
            token: TokenSpec {
                signer: lockdesk_sim::Signer::Brand,
                user_id: USER.into(),
                visitor_data: Some(vd),
                expires_in: 60,
            },
            source: Source {
                domain: Some(DOMAIN.into()),
                device: DEVICE.into(),
                app: None,
            },
        }),
    );
    // ...and another on the same device whose channel drives terminals.
    send(
        &mut sender,
        webhook(
            "v2.conversation.pushed",
            json!({"conversationId": "conv-b", "operatorId": 7, "channel": CHANNEL,
                   "visitorId": visitor}),
        ),
    );

    // A look-alike of the same person on another device: a Cyrillic с.
    send(
        &mut sender,
        webhook(
            "v2.conversation.pushed",
            json!({"conversationId": "conv-c", "operatorId": 7, "channel": "CHAT",
                   "visitorId": OTHER_VISITOR}),
        ),
    );
    send(
        &mut sender,
        Action::Evidence(Evidence {
            visitor_id: OTHER_VISITOR.into(),
            conversation_id: Some("conv-c".into()),
            token: TokenSpec {
                signer: lockdesk_sim::Signer::Brand,
                user_id: LOOK_ALIKE.into(),
                visitor_data: None,
                expires_in: 60,
            },
            source: Source {
                domain: Some("shop.brand.example".into()),
                device: "laptop".into(),
                app: None,
            },
        }),
    );

    let feed = format!("ws://{}/v1/feed", gw.addr);
    let watch = |data: &Path, json: bool| -> Output {
        let mut c = cli();
        c.args([
            "watch",
            "--feed",
            &feed,
            "--credential",
            "desk-credential-0123456",
        ])
        .arg("--trust")
        .arg(format!("{ISSUER}={}", jwks.display()))
        .arg("--decrypt-key")
        .arg(keys.join("private.pem"))
        .args(["--duration", "4", "--data"])
        .arg(data);
        if json {
            c.arg("--json");
        }
        c.output().unwrap()
    };

    let data = dir.path().join("desk");
    let out = watch(&data, false);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_clean(&out.stdout, "watch");
    assert_clean(&out.stderr, "watch (stderr)");
    let shown = text(&out.stdout);
    assert!(shown.contains(CHANNEL_SHOWN), "{shown}");
    assert!(shown.contains("secured"), "{shown}");
    // The desk's look-alike marker on the look-alike's line.
    assert!(
        shown.contains(&format!(
            "user \"{LOOK_ALIKE}\"  [look-alike of cust-48151623, mixes scripts]"
        )),
        "{shown}"
    );

    let json_data = dir.path().join("desk-json");
    let out = watch(&json_data, true);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_clean(&out.stdout, "watch --json");
    let lines: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        lines.iter().any(|l| l["channel"] == CHANNEL),
        "the JSON line decodes to the exact channel: {lines:#?}"
    );

    let history = |json: bool| -> Output {
        let mut c = cli();
        c.args(["history", USER, "--data"]).arg(&data);
        if json {
            c.arg("--json");
        }
        c.output().unwrap()
    };
    let out = history(false);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_clean(&out.stdout, "history");
    let shown = text(&out.stdout);
    assert!(shown.contains(DOMAIN_SHOWN), "{shown}");
    assert!(shown.contains(DEVICE_SHOWN), "{shown}");
    assert!(shown.contains(CHANNEL_SHOWN), "{shown}");

    let out = cli()
        .args(["history", LOOK_ALIKE, "--data"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(
        shown.contains("[look-alike of cust-48151623, mixes scripts]"),
        "{shown}"
    );

    let out = history(true);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_clean(&out.stdout, "history --json");
    let h: Value = serde_json::from_slice(&out.stdout).unwrap();
    let convs = h["conversations"].as_array().unwrap();
    assert!(
        convs
            .iter()
            .any(|c| c["domain"] == DOMAIN && c["device"] == DEVICE),
        "{h:#}"
    );
}

/// A feed endpoint of our own that accepts the upgrade and closes at once with `reason`.
fn closing_server(reason: &'static str) -> std::net::SocketAddr {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
    use tokio_tungstenite::tungstenite::http::HeaderValue;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        rt.block_on(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    // Select the feed's subprotocol, as the gateway does (tungstenite's
                    // callback type returns its large error response by value).
                    #[allow(clippy::result_large_err)]
                    let select = |_: &Request, mut response: Response| {
                        response.headers_mut().insert(
                            "sec-websocket-protocol",
                            HeaderValue::from_static(lockdesk_feed::SUBPROTOCOL),
                        );
                        Ok(response)
                    };
                    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, select).await
                    else {
                        return;
                    };
                    let frame = CloseFrame {
                        code: CloseCode::from(4000),
                        reason: reason.into(),
                    };
                    let _ = ws.close(Some(frame)).await;
                    while let Some(Ok(_)) = ws.next().await {}
                });
            }
        })
    });
    addr
}

#[test]
fn a_gateways_close_reason_reaches_stderr_as_markers() {
    const REASON: &str = "bye\u{1b}]0;pwned\u{7}\u{1b}[2J\u{9b}\u{202e}olleh";
    let addr = closing_server(REASON);
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    generate_keys(&keys);
    let out = cli()
        .args(["watch", "--feed", &format!("ws://{addr}/v1/feed")])
        .args(["--credential", "desk-credential-0123456", "--trust"])
        .arg(format!("{ISSUER}={}", keys.join("public.jwk").display()))
        .args(["--duration", "2", "--data"])
        .arg(dir.path().join("desk"))
        // The feed client's own log line of the disconnection too (without colours).
        .env("RUST_LOG", "lockdesk_feed_client=info")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_clean(&out.stderr, "watch (stderr)");
    let err = text(&out.stderr);
    assert!(
        err.contains("code 4000: bye⟨U+001B⟩]0;pwned⟨U+0007⟩⟨U+001B⟩[2J⟨U+009B⟩⟨U+202E⟩olleh"),
        "{err}"
    );
    assert!(err.contains("feed disconnected"), "the log line too: {err}");
}

fn csv_store(dir: &Path, users: &[&str]) {
    let mut conn = rusqlite::Connection::open(dir.join(lockdesk_audit::DEFAULT_FILE_NAME)).unwrap();
    lockdesk_audit::migrate(&conn).unwrap();
    let tx = conn.transaction().unwrap();
    for (i, u) in users.iter().enumerate() {
        lockdesk_audit::append(
            &tx,
            &lockdesk_audit::Record {
                at_ms: 1_767_261_600_000 + i as i64,
                kind: lockdesk_audit::Kind::Verdict,
                conversation_id: Some(format!("=HYPERLINK(\"http://x.example\";\"{i}\")")),
                visitor_id: Some("-2+3".into()),
                user_id: Some((*u).into()),
                operator_id: Some(7),
                data: json!({"verdict": "verified", "visitorData": {"firstName": "@Ada"}}),
            },
        )
        .unwrap();
    }
    tx.commit().unwrap();
}

#[test]
fn csv_export_neutralises_formulas_and_jsonl_stays_exact_and_reverifies() {
    let users = [
        "=cmd|' /C calc'!A0",
        "+1",
        "-1",
        "@SUM(1+1)",
        " =1+1",
        "\t=1",
        "cust\u{202e}1\u{1b}[2J",
        "cust-48151623",
    ];
    let dir = tempfile::tempdir().unwrap();
    csv_store(dir.path(), &users);
    let export = |format: &str| {
        let out = cli()
            .args(["audit", "export", "--format", format, "--data"])
            .arg(dir.path())
            .env("LOCKDESK_CONFIG_DIR", dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        out.stdout
    };

    let csv_bytes = export("csv");
    assert_clean(&csv_bytes, "CSV export");
    let mut rd = csv::Reader::from_reader(csv_bytes.as_slice());
    let header = rd.headers().unwrap().clone();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let rows: Vec<csv::StringRecord> = rd.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), users.len());
    let cells: Vec<&str> = rows.iter().map(|r| &r[col("user_id")]).collect();
    assert_eq!(
        cells,
        [
            "'=cmd|' /C calc'!A0",
            "'+1",
            "'-1",
            "'@SUM(1+1)",
            "' =1+1",
            // The tab is shown as its marker first: the cell no longer starts a formula.
            "⟨U+0009⟩=1",
            "cust⟨U+202E⟩1⟨U+001B⟩[2J",
            "cust-48151623",
        ]
    );
    for r in &rows {
        assert!(
            r[col("conversation_id")].starts_with("'=HYPERLINK"),
            "{r:?}"
        );
        assert_eq!(&r[col("visitor_id")], "'-2+3");
        // Our own cells are as they were.
        assert!(r[col("seq")].parse::<u64>().is_ok());
        assert_eq!(r[col("hash")].len(), 64);
    }

    // JSON Lines: the values exactly as logged, and the file re-verifies.
    let jsonl = export("jsonl");
    let logged: Vec<String> = text(&jsonl)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["type"] == "entry")
        .map(|v| v["user_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(logged, users);
    let file = dir.path().join("export.jsonl");
    std::fs::write(&file, &jsonl).unwrap();
    let out = cli()
        .args(["audit", "verify", "--data"])
        .arg(dir.path())
        .arg("--export")
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("personal data checked"));
}
