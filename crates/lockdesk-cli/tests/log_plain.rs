//! Logs redirected to a file (or a pipe, journald) are plain text: ANSI colours only when
//! stderr is a terminal.

use crate::support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

#[test]
fn redirected_logs_have_no_ansi_escapes() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        "[[webhook]]\nname = \"main\"\nsecret = \"0123456789abcdef0123456789abcdef\"\n",
    )
    .unwrap();
    let log = dir.path().join("stderr.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_lockdesk-cli"))
        .args(["gateway", "--listen", "127.0.0.1:0", "--data"])
        .arg(dir.path().join("data"))
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "trace")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let addr = support::listening_on(&mut child);
    // One request, so the HTTP stack logs something too.
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: lockdesk\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    child.kill().unwrap();
    child.wait().unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("TRACE") || text.contains("DEBUG") || text.contains("INFO"),
        "{text}"
    );
    assert!(
        !text.contains('\u{1b}'),
        "ANSI escapes in a redirected log: {text:?}"
    );
}
