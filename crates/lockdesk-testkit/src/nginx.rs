//! A real nginx for one test: Debian's `nginx` binary as a TLS-terminating load balancer, with
//! a throw-away certificate authority made by the test (tls.rs; its certificate is what the
//! client is told to trust: verification is never turned off), everything in a temporary folder
//! (its own `nginx.conf` with `daemon off;`, pid, logs and temp paths), on a free port of
//! 127.0.0.1, killed when the [`Nginx`] is dropped.
//!
//! The site itself is the caller's text, typically a file shipped in `deploy/` (so what the
//! documentation shows is what the test runs): its lines ending in `# test: NAME` get their
//! directive's first argument replaced. The kit fills `listen` (`127.0.0.1:PORT`), `cert` and
//! `key` itself; the caller gives the others ([`Nginx::start`]). A marker nobody fills, or a
//! value for a marker the site lacks, panics: the site and the test cannot drift apart.
//!
//! When the tests run as root, nginx's workers run as `nobody:nogroup` (the folder is made
//! traversable for them; the private key stays readable by root only: the master reads it).

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::tls::ThrowAwayCa;

/// The name in the server certificate besides 127.0.0.1.
pub const HOST: &str = "localhost";

/// A running nginx owned by one test.
pub struct Nginx {
    dir: tempfile::TempDir,
    child: Child,
    port: u16,
}

/// Where the nginx binary is (`/usr/sbin` is not always on a test's PATH).
pub fn binary() -> Option<PathBuf> {
    ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// `site` with each `# test: NAME` line's first directive argument replaced by `values`' value
/// for NAME. Panics on a marker without a value, or a value without its marker.
pub fn fill(site: &str, values: &[(&str, String)]) -> String {
    let mut used = vec![false; values.len()];
    let mut out = String::with_capacity(site.len());
    for line in site.lines() {
        let Some((code, marker)) = line.split_once("# test: ") else {
            out.push_str(line);
            out.push('\n');
            continue;
        };
        let name = marker.trim();
        let i = values
            .iter()
            .position(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("no value for the site's `# test: {name}` line"));
        used[i] = true;
        // `<indent><directive> <arg1>[ <rest>];`
        let indent = &code[..code.len() - code.trim_start().len()];
        let mut words = code.trim().trim_end_matches(';').split_whitespace();
        let directive = words.next().expect("a directive before the marker");
        let _old = words.next().expect("an argument to replace");
        let rest: Vec<&str> = words.collect();
        out.push_str(indent);
        out.push_str(directive);
        out.push(' ');
        out.push_str(&values[i].1);
        for w in rest {
            out.push(' ');
            out.push_str(w);
        }
        out.push_str(";\n");
    }
    for (i, (name, _)) in values.iter().enumerate() {
        assert!(used[i], "the site has no `# test: {name}` line");
    }
    out
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn traversable_by_others(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.ancestors()
        .all(|p| std::fs::metadata(p).is_ok_and(|m| m.permissions().mode() & 0o001 != 0))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port on 127.0.0.1")
}

impl Nginx {
    /// Starts nginx serving `site` (an http-level include: `upstream`, `map`, `server`), its
    /// `# test: NAME` lines filled from `values` plus the kit's `listen`, `cert` and `key`.
    /// Returns once the port accepts connections; panics with nginx's error log when it cannot
    /// start (a test helper: the test cannot run without it). Needs Debian's `nginx`.
    pub fn start(site: &str, values: &[(&str, String)]) -> Nginx {
        let binary = binary().expect(
            "nginx was not found: install Debian's nginx (scripts/test.sh and .ci/run install \
             it with the test packages)",
        );
        let as_root = is_root();
        // As root the workers run as nobody: the folder must be reachable by them (a 0700
        // TMPDIR on the way would keep them from the temp paths), else it goes under /tmp.
        let parent = std::env::temp_dir();
        let parent = if as_root && !traversable_by_others(&parent) {
            PathBuf::from("/tmp")
        } else {
            parent
        };
        let dir = tempfile::Builder::new()
            .prefix("lockdesk-nginx-")
            .tempdir_in(parent)
            .expect("temporary folder");
        let root = dir.path();
        // A throw-away CA and a server certificate it signed for `localhost` and `127.0.0.1`.
        let ca = ThrowAwayCa::new();
        let server = ca.server(&[HOST, "127.0.0.1"]);
        std::fs::write(root.join("ca.pem"), ca.cert_pem()).unwrap();
        std::fs::write(root.join("server.pem"), server.chain_pem).unwrap();
        std::fs::write(root.join("server.key"), server.key_pem).unwrap();
        std::fs::create_dir(root.join("temp")).unwrap();
        if as_root {
            use std::os::unix::fs::PermissionsExt;
            // The workers (nobody) reach the temp paths; the key stays root's (0600).
            std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).unwrap();
            std::fs::set_permissions(
                root.join("server.key"),
                std::fs::Permissions::from_mode(0o600),
            )
            .unwrap();
        }
        let mut last_error = String::new();
        // The port is free when chosen but another process may take it before nginx binds it.
        for _ in 0..5 {
            let port = free_port();
            let mut all: Vec<(&str, String)> = values.to_vec();
            all.push(("listen", format!("127.0.0.1:{port}")));
            all.push(("cert", root.join("server.pem").display().to_string()));
            all.push(("key", root.join("server.key").display().to_string()));
            let filled = fill(site, &all);
            std::fs::write(root.join("site.conf"), filled).unwrap();
            let temp = root.join("temp");
            let t = |name: &str| temp.join(name).display().to_string();
            let conf = format!(
                "{user}daemon off;\nworker_processes 1;\npid {pid};\nerror_log {err} info;\n\
                 events {{ worker_connections 1024; }}\n\
                 http {{\n  access_log {access};\n  client_body_temp_path {cb};\n  \
                 proxy_temp_path {pt};\n  fastcgi_temp_path {ft};\n  uwsgi_temp_path {ut};\n  \
                 scgi_temp_path {st};\n  include {site};\n}}\n",
                user = if as_root {
                    "user nobody nogroup;\n"
                } else {
                    ""
                },
                pid = root.join("nginx.pid").display(),
                err = root.join("error.log").display(),
                access = root.join("access.log").display(),
                cb = t("client_body"),
                pt = t("proxy"),
                ft = t("fastcgi"),
                ut = t("uwsgi"),
                st = t("scgi"),
                site = root.join("site.conf").display(),
            );
            std::fs::write(root.join("nginx.conf"), conf).unwrap();
            let mut child = Command::new(&binary)
                .arg("-p")
                .arg(root)
                .arg("-e")
                .arg(root.join("error.log"))
                .arg("-c")
                .arg(root.join("nginx.conf"))
                .env_clear()
                .env("PATH", "/usr/sbin:/usr/bin:/bin")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()));
            let start = Instant::now();
            loop {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Nginx { dir, child, port };
                }
                if let Some(status) = child.try_wait().unwrap() {
                    let mut stderr = String::new();
                    if let Some(mut s) = child.stderr.take() {
                        let _ = s.read_to_string(&mut stderr);
                    }
                    last_error = format!("nginx exited with {status}: {stderr}");
                    break;
                }
                if start.elapsed() > Duration::from_secs(30) {
                    let _ = child.kill();
                    let _ = child.wait();
                    last_error = "nginx did not listen within 30 s".to_owned();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!(
            "nginx did not start: {last_error}\n{}",
            std::fs::read_to_string(root.join("error.log")).unwrap_or_default()
        );
    }

    /// The TLS port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The throw-away CA's certificate (PEM): what a client must trust to reach nginx.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The folder holding nginx.conf, site.conf and the logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// nginx's error log (for failure messages).
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM: the master stops its workers and exits (a SIGKILL would leave the
        // workers running); SIGKILL only if it has not exited after a while.
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_replaces_the_first_argument_of_marked_lines_only() {
        let site = "upstream u {\n    server 10.0.0.1:80 max_fails=1;  # test: a\n}\n\
                    listen 443 ssl;  # test: listen\nlisten 80;\n";
        let out = fill(
            site,
            &[
                ("a", "127.0.0.1:9".to_owned()),
                ("listen", "127.0.0.1:1".to_owned()),
            ],
        );
        assert_eq!(
            out,
            "upstream u {\n    server 127.0.0.1:9 max_fails=1;\n}\nlisten 127.0.0.1:1 ssl;\nlisten 80;\n"
        );
    }

    #[test]
    #[should_panic(expected = "no value for the site's `# test: b` line")]
    fn fill_refuses_a_marker_without_a_value() {
        fill("server x;  # test: b\n", &[]);
    }

    #[test]
    #[should_panic(expected = "the site has no `# test: c` line")]
    fn fill_refuses_a_value_without_its_marker() {
        fill("server x;\n", &[("c", "y".to_owned())]);
    }

    #[test]
    fn terminates_tls_with_the_throw_away_ca() {
        // A site that answers by itself: nginx up, TLS served with a chain to ca.pem.
        let nginx = Nginx::start(
            "server {\n  listen 1 ssl;  # test: listen\n  ssl_certificate x;  # test: cert\n  \
             ssl_certificate_key x;  # test: key\n  location / { return 200 \"ok\\n\"; }\n}\n",
            &[],
        );
        let out = Command::new("openssl")
            .args(["s_client", "-brief", "-verify_return_error", "-CAfile"])
            .arg(nginx.ca_file())
            .args(["-verify_ip", "127.0.0.1", "-connect"])
            .arg(nginx.addr().to_string())
            .stdin(Stdio::null())
            .output()
            .expect("openssl");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{text}\n{}", nginx.error_log());
        assert!(text.contains("Verification: OK"), "{text}");
    }
}
