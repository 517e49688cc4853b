//! Shared by the integration tests that run the real `lockdesk-cli gateway` binary.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A gateway process; killed when dropped.
pub struct RunningGateway {
    pub child: Child,
    pub addr: SocketAddr,
}

// Each test binary compiles this module and uses only part of it.
#[allow(dead_code)]
impl RunningGateway {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for RunningGateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes `config` to `dir/gateway.toml` and starts the gateway on a free port of 127.0.0.1 with
/// its data in `dir/data` and its log in `dir/gateway.err`; returns once it printed
/// `listening on ADDR`.
// Each test binary compiles this module and uses only part of it.
#[allow(dead_code)]
pub fn start_gateway(dir: &Path, config: &str) -> RunningGateway {
    let config_path = dir.join("gateway.toml");
    std::fs::write(&config_path, config).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_lockdesk-cli"))
        .args(["gateway", "--listen", "127.0.0.1:0", "--data"])
        .arg(dir.join("data"))
        .arg("--config")
        .arg(&config_path)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.join("gateway.err")).unwrap())
        .spawn()
        .unwrap();
    let addr = listening_on(&mut child);
    RunningGateway { child, addr }
}

/// The address a `lockdesk-cli gateway` child prints on its first stdout line
/// (`listening on ADDR`), read from its piped stdout.
pub fn listening_on(child: &mut Child) -> SocketAddr {
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout piped"))
        .read_line(&mut line)
        .unwrap();
    line.trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("the gateway did not start: first line {line:?}"))
        .parse()
        .unwrap()
}
