use super::*;

fn key_file(dir: &Path) -> String {
    let p = dir.join("brand.pem");
    std::fs::write(
        &p,
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
    )
    .unwrap();
    p.to_string_lossy().into_owned()
}

fn valid(dir: &Path) -> Config {
    let key = key_file(dir);
    Config {
        feed: Feed {
            url: Some("wss://gateway.example.com/v1/feed".into()),
            credential: Some("s3cret-credential".into()),
            ..Feed::default()
        },
        trust: vec![TrustedIssuer {
            issuer: "https://brand.example".into(),
            key: key.clone(),
        }],
        decryption: Decryption { keys: vec![key] },
        ..Config::default()
    }
}

/// One case: a change to a valid configuration and the fields that must then be reported.
fn check(change: impl FnOnce(&mut Config), expected: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = valid(dir.path());
    change(&mut config);
    let errors = validate(&config, &FilePresence);
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, expected, "errors: {errors:?}");
    for e in &errors {
        assert!(!e.message.is_empty() && !e.message.ends_with('.'), "{e:?}");
    }
}

#[test]
fn a_valid_configuration_has_no_errors() {
    check(|_| {}, &[]);
}

#[test]
fn nothing_configured_is_valid() {
    assert!(validate(&Config::default(), &FilePresence).is_empty());
}

#[test]
fn feed_url_rules() {
    check(
        |c| c.feed.url = Some("http://gw.example/v1/feed".into()),
        &["feed.url"],
    );
    check(|c| c.feed.url = Some("not a url".into()), &["feed.url"]);
    check(
        |c| c.feed.url = Some("ws://gw.example.com/v1/feed".into()),
        &["feed.url"],
    );
    check(
        |c| c.feed.url = Some("ws://127.0.0.1:8080/v1/feed".into()),
        &[],
    );
    check(
        |c| c.feed.url = Some("ws://localhost:8080/v1/feed".into()),
        &[],
    );
    check(|c| c.feed.url = Some("ws://[::1]:8080/v1/feed".into()), &[]);
    check(|c| c.feed.url = None, &["feed.url"]);
    check(
        |c| c.feed.url = Some("wss://desk:pw@gw.example.com/v1/feed".into()),
        &["feed.url"],
    );
}

fn urls(list: &[&str]) -> Option<FeedUrls> {
    Some(FeedUrls(list.iter().map(|u| (*u).to_owned()).collect()))
}

#[test]
fn several_feed_addresses_are_each_checked_and_named_by_index() {
    let a = "wss://gw-a.example.com/v1/feed";
    let b = "wss://gw-b.example.com/v1/feed";
    check(|c| c.feed.url = urls(&[a, b]), &[]);
    check(
        |c| c.feed.url = urls(&[a, "ws://127.0.0.1:8080/v1/feed"]),
        &[],
    );
    // The wrong one is named by its position (0-based, as trust.N), the others pass.
    check(
        |c| c.feed.url = urls(&[a, "ws://gw-b.example.com/v1/feed", b]),
        &["feed.url.1"],
    );
    check(
        |c| c.feed.url = urls(&["http://gw-a.example.com", "not a url"]),
        &["feed.url.0", "feed.url.1"],
    );
    check(|c| c.feed.url = urls(&[a, " "]), &["feed.url.1"]);
    check(|c| c.feed.url = urls(&[a, b, a]), &["feed.url.2"]);
    check(
        |c| c.feed.url = urls(&[a, "wss://desk:pw@gw-b.example.com"]),
        &["feed.url.1"],
    );
    let many: Vec<String> = (0..=MAX_FEED_URLS)
        .map(|i| format!("wss://gw-{i}.example.com/v1/feed"))
        .collect();
    check(|c| c.feed.url = Some(FeedUrls(many)), &["feed.url"]);
    // An empty list is no feed: the credential then needs an address.
    check(|c| c.feed.url = urls(&[]), &["feed.url"]);
    let dir = tempfile::tempdir().unwrap();
    let mut c = valid(dir.path());
    c.feed.url = urls(&[a, "  ", b]);
    assert_eq!(c.feed_urls(), vec![a.to_owned(), b.to_owned()]);
    c.feed.url = urls(&[" "]);
    assert!(!c.has_feed());
}

#[test]
fn feed_url_is_a_string_or_an_array_and_one_address_stays_a_string() {
    // A file written before several addresses were allowed.
    let old =
        "[feed]\nurl = \"wss://gw.example.com/v1/feed\"\ncredential = \"s3cret-credential\"\n";
    let config = parse(old).unwrap();
    assert_eq!(config.feed.url, urls(&["wss://gw.example.com/v1/feed"]));
    assert!(to_toml(&config).contains("url = \"wss://gw.example.com/v1/feed\"\n"));
    assert_eq!(parse(&to_toml(&config)).unwrap(), config);

    let list = "[feed]\nurl = [\"wss://a.example.com/v1/feed\", \"wss://b.example.com/v1/feed\"]\n";
    let config = parse(list).unwrap();
    assert_eq!(
        config.feed_urls(),
        vec!["wss://a.example.com/v1/feed", "wss://b.example.com/v1/feed"]
    );
    let written = to_toml(&config);
    assert!(written.contains("url = ["), "{written}");
    assert_eq!(parse(&written).unwrap(), config);

    // Saved and loaded through the file.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    save(&path, &config).unwrap();
    assert_eq!(load(&path).unwrap(), config);

    // Not an address: said by line and field, without quoting the file.
    let err = parse("[feed]\nurl = [\"wss://a.example.com\", 3]\n").unwrap_err();
    assert!(
        err.starts_with("line 2") && err.contains("[feed] url"),
        "{err}"
    );
    assert!(!err.contains("a.example.com"), "{err}");
    let err = parse("[feed]\nurl = { a = 1 }\n").unwrap_err();
    assert!(err.contains("[feed] url"), "{err}");
    assert!(err.contains("gateway address"), "{err}");
}

#[test]
fn feed_ca_file_rules() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(
        &ca,
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let ca = ca.to_string_lossy().into_owned();
    check(|c| c.feed.ca_file = Some(ca.clone()), &[]);
    check(|c| c.feed.ca_file = Some(" ".into()), &["feed.ca_file"]);
    check(
        |c| c.feed.ca_file = Some(dir.path().join("none.pem").to_string_lossy().into()),
        &["feed.ca_file"],
    );
    // A key where the CA certificate should be.
    let key = key_file(dir.path());
    check(|c| c.feed.ca_file = Some(key.clone()), &["feed.ca_file"]);
    let mut config = Config::default();
    config.feed.ca_file = Some(key);
    let errors = validate(&config, &FilePresence);
    assert!(
        errors[0].message.starts_with("expected PEM certificates"),
        "{errors:?}"
    );
    // The TOML key round-trips, and an unknown neighbour is still refused.
    let parsed: Config = toml::from_str(&format!("[feed]\nca_file = {ca:?}\n")).unwrap();
    assert_eq!(parsed.feed.ca_file.as_deref(), Some(ca.as_str()));
    assert!(toml::from_str::<Config>("[feed]\nca_files = \"x\"\n").is_err());
}

#[test]
fn credential_rules() {
    // The gateway's rule: at least 16 characters, printable ASCII.
    let cases: [(Option<String>, &[&str]); 8] = [
        (None, &["feed.credential"]),
        (Some("short".into()), &["feed.credential"]),
        (Some("0123456789abcde".into()), &["feed.credential"]),
        (Some("0123456789abcdef".into()), &[]),
        (Some("crédential-0123456789".into()), &["feed.credential"]),
        (Some("has a space".into()), &["feed.credential"]),
        (Some("line\nbreak!!".into()), &["feed.credential"]),
        (Some("x".repeat(513)), &["feed.credential"]),
    ];
    for (credential, expected) in cases {
        eprintln!("case: credential {credential:?}");
        check(|c| c.feed.credential = credential, expected);
    }
}

#[test]
fn trust_rules() {
    let issuers: [(String, &[&str]); 4] = [
        (String::new(), &["trust.0.issuer"]),
        (" https://brand.example".into(), &["trust.0.issuer"]),
        ("a\u{7}b".into(), &["trust.0.issuer"]),
        ("x".repeat(256), &["trust.0.issuer"]),
    ];
    for (issuer, expected) in issuers {
        eprintln!("case: issuer {issuer:?}");
        check(|c| c.trust[0].issuer = issuer, expected);
    }
    let keys: [(&str, &[&str]); 4] = [
        ("/nonexistent/brand.pem", &["trust.0.key"]),
        ("http://brand.example/jwks.json", &["trust.0.key"]),
        ("https://brand.example/jwks.json", &[]),
        ("", &["trust.0.key"]),
    ];
    for (key, expected) in keys {
        eprintln!("case: key {key:?}");
        check(|c| c.trust[0].key = key.into(), expected);
    }
    check(|c| c.trust.push(c.trust[0].clone()), &["trust.1.issuer"]);
}

#[test]
fn decryption_key_rules() {
    check(
        |c| c.decryption.keys.push("/nonexistent.pem".into()),
        &["decryption.keys.1"],
    );
    check(
        |c| c.decryption.keys[0] = " ".into(),
        &["decryption.keys.0"],
    );
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let empty = empty.to_string_lossy().into_owned();
    check(
        move |c| c.decryption.keys[0] = empty,
        &["decryption.keys.0"],
    );
    let folder = dir.path().to_string_lossy().into_owned();
    check(
        move |c| c.decryption.keys[0] = folder,
        &["decryption.keys.0"],
    );
}

#[test]
fn number_ranges() {
    check(
        |c| c.verification.leeway_secs = 301,
        &["verification.leeway_secs"],
    );
    check(|c| c.verification.leeway_secs = 0, &[]);
    check(
        |c| c.verification.session_lifetime_mins = 0,
        &["verification.session_lifetime_mins"],
    );
    check(
        |c| c.verification.session_lifetime_mins = 1441,
        &["verification.session_lifetime_mins"],
    );
    check(
        |c| c.verification.max_token_lifetime_secs = 0,
        &["verification.max_token_lifetime_secs"],
    );
}

#[test]
fn save_then_load_round_trips_with_private_permissions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/config.toml");
    let mut config = valid(dir.path());
    config.ui.language = Language::Fr;
    config.verification.leeway_secs = 30;
    assert_eq!(save(&path, &config).unwrap(), None);
    assert_eq!(load(&path).unwrap(), config);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let mode = std::fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o700);
    }
    // Only config.toml is left: no temp file survives a save.
    let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("config.toml")]);
}

#[test]
fn a_missing_file_is_the_default() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        load(&dir.path().join("config.toml")).unwrap(),
        Config::default()
    );
}

#[test]
fn unreadable_files_say_where_and_are_kept_on_save() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, "[feed]\nurl = 3\n").unwrap();
    let err = load(&path).unwrap_err().to_string();
    assert!(
        err.contains("config.toml") && err.contains("line 2"),
        "{err}"
    );

    std::fs::write(&path, "[feeed]\nurl = \"wss://x\"\n").unwrap();
    let err = load(&path).unwrap_err().to_string();
    assert!(err.contains("unknown field `feeed`"), "{err}");

    let kept = save(&path, &Config::default())
        .unwrap()
        .expect("a copy is kept");
    assert_eq!(
        std::fs::read_to_string(kept).unwrap(),
        "[feeed]\nurl = \"wss://x\"\n"
    );
    assert_eq!(load(&path).unwrap(), Config::default());
}

#[test]
fn oversized_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, "#".repeat(MAX_CONFIG_BYTES as usize + 1)).unwrap();
    assert!(matches!(load(&path), Err(ConfigError::Read { .. })));
}

#[test]
fn the_credential_never_shows_in_debug_output() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!("{:?}", valid(dir.path()));
    assert!(!text.contains("s3cret-credential"), "{text}");
    assert!(text.contains("<redacted>"));
}

#[test]
fn env_overrides_must_be_absolute() {
    // Reads only: the variables are set by the test command for the whole run, so this test
    // checks the same rule through the pure helper instead of mutating the process environment.
    let err = DirError::NotAbsolute {
        var: CONFIG_DIR_ENV,
        value: "relative".into(),
    };
    assert!(err
        .to_string()
        .contains("LOCKDESK_CONFIG_DIR must be an absolute path"));
}

#[test]
fn iadvize_api_rules() {
    check(|_| {}, &[]);
    check(
        |c| c.iadvize.base_url = Some("http://api.example.com".into()),
        &["iadvize.base_url", "iadvize.username", "iadvize.password"],
    );
    // A complete account: base URL and platform as given, a username and a password.
    let cases: [(&str, &str, &[&str]); 2] = [
        ("http://127.0.0.1:9999", "xx", &["iadvize.platform"]),
        ("https://api.iadvize.com", "sd", &[]),
    ];
    for (base_url, platform, expected) in cases {
        eprintln!("case: base_url {base_url:?}, platform {platform:?}");
        check(
            |c| {
                c.iadvize = crate::IAdvizeApi {
                    base_url: Some(base_url.into()),
                    platform: Some(platform.into()),
                    username: Some("api@brand.example".into()),
                    password: Some("pw".into()),
                }
            },
            expected,
        );
    }
}

#[test]
fn notifications_default_on_and_round_trip_muted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    assert!(crate::Notifications::default().verification_failed);
    // Secured is off by default (docs/notifications.md: the list shows it).
    assert!(!crate::Notifications::default().secured);
    let mut c = Config::default();
    c.notifications.secured = true;
    c.notifications.session_lapsed = false;
    c.iadvize.password = Some("hunter2-secret".into());
    crate::save(&path, &c).unwrap();
    let back = crate::load(&path).unwrap();
    assert!(back.notifications.secured);
    assert!(!back.notifications.session_lapsed);
    assert!(back.notifications.verification_failed);
    assert!(!format!("{back:?}").contains("hunter2"));
    // An older file without the section reads as the defaults.
    std::fs::write(&path, "[ui]\nlanguage = \"fr\"\n").unwrap();
    assert_eq!(
        crate::load(&path).unwrap().notifications,
        crate::Notifications::default()
    );
}

/// Syntax and type errors on the secret lines: the error names line, column, section and field,
/// and the secret appears nowhere in it (toml's own message quotes the line).
#[test]
fn parse_errors_on_secret_lines_never_quote_them() {
    const SECRET: &str = "sk-live-9f8e7d6c5b4a";
    const PASSWORD: &str = "hunter2-Pa55w0rd!";
    let cases: &[(String, &str)] = &[
        (
            format!("[feed]\nurl = \"wss://gw.example/v1/feed\"\ncredential = \"{SECRET}\n"),
            "line 3, column",
        ),
        (
            format!("[feed]\ncredential = {SECRET}\n"),
            "line 2, column 14, [feed] credential",
        ),
        (
            format!("[feed]\ncredential = '{SECRET}\n"),
            "[feed] credential",
        ),
        (
            format!("[feed]\ncredential = \"{SECRET}\" trailing\n"),
            "[feed] credential",
        ),
        (
            format!("[feed]\ncredential = [\"{SECRET}\"]\n"),
            "[feed] credential",
        ),
        (
            format!("[iadvize]\nusername = \"ops\"\npassword = \"{PASSWORD}\n"),
            "line 3",
        ),
        (
            format!("[iadvize]\npassword = {PASSWORD}\n"),
            "[iadvize] password",
        ),
        // A secret pasted where another type is expected: serde quotes the value.
        (
            format!("[verification]\nrequire_encryption = \"{SECRET}\"\n"),
            "[verification] require_encryption",
        ),
        (format!("[ui]\nlanguage = \"{SECRET}\"\n"), "[ui] language"),
        // A secret pasted alone on a line.
        (format!("[feed]\n{SECRET}\n"), "line 2"),
    ];
    for (text, place) in cases {
        let err = parse(text).unwrap_err();
        assert!(!err.contains(SECRET) && !err.contains(PASSWORD), "{err}");
        assert!(
            !err.contains("sk-live") && !err.contains("hunter2"),
            "{err}"
        );
        assert!(err.contains(place), "{place:?} in {err}");
        // Through the file and the error type as well.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, text).unwrap();
        let e = load(&path).unwrap_err();
        assert!(matches!(e, ConfigError::Parse { .. }));
        for shown in [e.to_string(), format!("{e:?}")] {
            assert!(
                !shown.contains(SECRET) && !shown.contains(PASSWORD),
                "{shown}"
            );
        }
    }
    // Names from the schema and the file's own keys are still named.
    let err = parse("[feed]\ncredenial = \"x\"\n").unwrap_err();
    assert!(
        err.contains("unknown field `credenial`, expected one of `url`, `credential`, `ca_file`"),
        "{err}"
    );
}

#[test]
fn the_lookalike_notification_can_be_muted_and_defaults_on_in_older_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    assert!(crate::Notifications::default().lookalike_user_id);
    let mut c = Config::default();
    c.notifications.lookalike_user_id = false;
    crate::save(&path, &c).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("lookalike_user_id = false"), "{text}");
    let back = crate::load(&path).unwrap();
    assert!(!back.notifications.lookalike_user_id);
    assert!(back.notifications.reused_user_id);
    // A [notifications] section written before the toggle existed keeps it on.
    std::fs::write(&path, "[notifications]\nreused_user_id = false\n").unwrap();
    let old = crate::load(&path).unwrap().notifications;
    assert!(!old.reused_user_id);
    assert!(old.lookalike_user_id);
    // A mistyped value: the error names the field (a schema name), never the value.
    let err = parse("[notifications]\nlookalike_user_id = \"sure\"\n").unwrap_err();
    assert!(err.contains("lookalike_user_id"), "{err}");
    assert!(!err.contains("sure"), "{err}");
}
