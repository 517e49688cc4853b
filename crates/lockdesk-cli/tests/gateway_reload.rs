//! The real `lockdesk-cli gateway` reloads its configuration file on SIGHUP: a rotated webhook
//! secret takes effect without a restart, and an invalid file is refused while the running
//! configuration stays in force. (The feed's side of a reload, 4003 and resume, is tested in
//! lockdesk-gateway's feed tests.)
#![cfg(unix)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use lockdesk_sim::webhook_signature as signature_header;

use crate::support::start_gateway;

const OLD: &str = "reload-test-secret-old";
const NEW: &str = "reload-test-secret-new";
/// A bound on a hang, not a timing claim.
const PATIENCE: Duration = Duration::from_secs(20);

fn config(secret: &str) -> String {
    format!("[[webhook]]\nname = \"main\"\nsecret = \"{secret}\"\n")
}

/// One signed delivery; the HTTP status.
fn deliver(addr: SocketAddr, secret: &str, id: &str) -> u16 {
    let body = format!(
        r#"{{"eventId":"{id}","eventType":"v2.conversation.pushed","platform":"ha","clientId":1,"createdAt":"2026-01-01T00:00:00Z","sentAt":"2026-01-01T00:00:00Z","projectId":1,"conversationId":"c-{id}","operatorId":7,"channel":"CHAT","visitorId":"v-{id}"}}"#
    );
    let sig = signature_header(secret.as_bytes(), body.as_bytes());
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST /webhooks/iadvize HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         x-iadvize-signature: {sig}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    reply[9..12].parse().unwrap()
}

fn hangup(pid: u32) {
    let status = Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn sighup_reloads_the_configuration_and_an_invalid_file_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut gateway = start_gateway(dir.path(), &config(OLD));
    let (addr, pid) = (gateway.addr, gateway.child.id());
    assert_eq!(deliver(addr, OLD, "a1"), 200);
    assert_eq!(deliver(addr, NEW, "a2"), 401);

    // An invalid file (a webhook app without its secret): refused, the old secret still works.
    std::fs::write(
        dir.path().join("gateway.toml"),
        "[[webhook]]\nname = \"main\"\n",
    )
    .unwrap();
    hangup(pid);
    wait_for_log(dir.path(), "was not reloaded");
    assert_eq!(deliver(addr, OLD, "b1"), 200);
    assert_eq!(deliver(addr, NEW, "b2"), 401);

    // The rotated secret: in force once the signal is handled, the old one refused.
    std::fs::write(dir.path().join("gateway.toml"), config(NEW)).unwrap();
    hangup(pid);
    let start = Instant::now();
    let mut n = 0;
    while deliver(addr, NEW, &format!("c{n}")) != 200 {
        assert!(
            start.elapsed() < PATIENCE,
            "the new secret was never accepted"
        );
        std::thread::sleep(Duration::from_millis(50));
        n += 1;
    }
    assert_eq!(deliver(addr, OLD, "d1"), 401);
    // Still the same process: reloaded, not restarted.
    assert!(
        gateway.child.try_wait().unwrap().is_none(),
        "the gateway exited"
    );
}

/// Waits (bounded) until the gateway's log holds `text`.
fn wait_for_log(dir: &std::path::Path, text: &str) {
    let start = Instant::now();
    loop {
        let log = std::fs::read_to_string(dir.join("gateway.err")).unwrap_or_default();
        if log.contains(text) {
            return;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "the gateway never logged {text:?}: {log}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
