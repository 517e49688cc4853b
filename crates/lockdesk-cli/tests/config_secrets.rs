//! A syntax or type error on the secret lines of config.toml (`credential`, `[iadvize]
//! password`): `config check` and `watch --config` name line, column, section and field, and the
//! secret appears nowhere in what they print (toml's own message quoted the line).

use std::process::{Command, Stdio};

use crate::support::all_text as all;

const SECRET: &str = "sk-live-7e6d5c4b3a29";
const PASSWORD: &str = "Tr0ub4dor-and-3";

fn cli(dir: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_lockdesk-cli"));
    // Never the real folders.
    c.env("LOCKDESK_CONFIG_DIR", dir.join("config"))
        .env("LOCKDESK_DATA_DIR", dir.join("data"))
        .stdin(Stdio::null());
    c
}

#[test]
fn config_check_and_watch_never_print_a_secret_from_a_broken_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    let cases = [
        (
            format!("[feed]\nurl = \"wss://gw.example/v1/feed\"\ncredential = \"{SECRET}\n"),
            "line 3",
            "[feed] credential",
        ),
        (
            format!("[feed]\ncredential = {SECRET}\n"),
            "line 2, column 14",
            "[feed] credential",
        ),
        (
            format!("[iadvize]\nusername = \"ops\"\npassword = \"{PASSWORD}\n"),
            "line 3",
            "[iadvize] password",
        ),
        (
            format!("[verification]\nrequire_encryption = \"{SECRET}\"\n"),
            "line 2",
            "[verification] require_encryption",
        ),
    ];
    for (text, line, field) in &cases {
        std::fs::write(&path, text).unwrap();
        let check = cli(dir.path())
            .args(["config", "check", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        let out = all(&check);
        assert_eq!(check.status.code(), Some(2), "{out}");
        assert!(out.contains(line) && out.contains(field), "{out}");
        assert!(!out.contains(SECRET) && !out.contains(PASSWORD), "{out}");
        assert!(
            !out.contains("sk-live") && !out.contains("Tr0ub4dor"),
            "{out}"
        );

        let watch = cli(dir.path())
            .args(["watch", "--config"])
            .arg(&path)
            .args(["--feed", "ws://127.0.0.1:9/v1/feed"])
            .output()
            .unwrap();
        let out = all(&watch);
        assert!(!watch.status.success(), "{out}");
        assert!(out.contains(line), "{out}");
        assert!(!out.contains(SECRET) && !out.contains(PASSWORD), "{out}");
    }
}
