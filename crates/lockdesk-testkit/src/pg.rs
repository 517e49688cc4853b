//! A real PostgreSQL server for one test: Debian's `postgresql-15` binaries, a fresh cluster in a
//! temporary folder (`initdb`), on a free port of 127.0.0.1 and a unix socket inside the folder,
//! stopped (`pg_ctl stop -m immediate`) and removed when the [`PgServer`] is dropped.
//!
//! PostgreSQL refuses to run as root: when the tests run as root (CI, the shared machine) the
//! folder is handed to `nobody` (uid/gid 65534) and every server command runs through
//! `setpriv --reuid=65534 --regid=65534 --clear-groups` (util-linux); no system user is created.
//!
//! Authentication: `trust` on the unix socket (for the test's own administration, through
//! `psql`), `scram-sha-256` with a password on 127.0.0.1, so clients exercise the password path
//! exactly as in production.
//!
//! With [`PgOptions::tls`] the server has `ssl = on` and a certificate (for `localhost`,
//! `127.0.0.1` and [`TLS_HOST`]) issued by a throw-away CA (tls.rs) whose certificate is
//! [`PgServer::ca_file`]; its private key is the server user's, mode 0600 (PostgreSQL refuses
//! it otherwise). Plain connections are still accepted: the client decides.
//!
//! Must not: leave a server running after the test (Drop stops it even when the test panicked);
//! depend on anything outside its folder (no ~/.pgpass, no PG* environment: they are cleared).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::tls::ThrowAwayCa;

/// The role the tests connect as (the cluster's superuser).
pub const USER: &str = "lockdesk";
/// The unprivileged uid/gid PostgreSQL runs as when the tests run as root (`nobody:nogroup`).
const NOBODY: u32 = 65534;
/// A host name in a TLS server's certificate that is not a local name: reached with
/// `hostaddr=127.0.0.1` ([`PgServer::tls_url`]), it stands for a server on another machine.
pub const TLS_HOST: &str = "pg.lockdesk.test";

/// A running PostgreSQL cluster owned by one test.
pub struct PgServer {
    dir: tempfile::TempDir,
    bindir: PathBuf,
    port: u16,
    password: String,
    as_nobody: bool,
    /// The CA of the server's certificate, with [`PgOptions::tls`].
    ca: Option<ThrowAwayCa>,
}

/// Where the PostgreSQL server binaries are: `pg_config --bindir` when it names a folder with
/// `initdb`, else the newest `/usr/lib/postgresql/*/bin` (Debian installs them there, off PATH).
pub fn bindir() -> Option<PathBuf> {
    let mut candidates = Vec::new();
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        if out.status.success() {
            candidates.push(PathBuf::from(
                String::from_utf8_lossy(&out.stdout).trim().to_owned(),
            ));
        }
    }
    if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
        let mut versions: Vec<(u32, PathBuf)> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let v = e.file_name().to_str()?.parse::<u32>().ok()?;
                Some((v, e.path().join("bin")))
            })
            .collect();
        versions.sort();
        candidates.extend(versions.into_iter().rev().map(|(_, p)| p));
    }
    candidates
        .into_iter()
        .find(|d| d.join("initdb").is_file() && d.join("pg_ctl").is_file())
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port on 127.0.0.1")
}

/// Whether every folder from `/` down to `path` lets others through (the `x` bit for others).
fn traversable_by_others(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.ancestors()
        .all(|p| std::fs::metadata(p).is_ok_and(|m| m.permissions().mode() & 0o001 != 0))
}

fn chown_tree(path: &Path) -> std::io::Result<()> {
    std::os::unix::fs::chown(path, Some(NOBODY), Some(NOBODY))?;
    if path.is_dir() {
        for entry in std::fs::read_dir(path)? {
            chown_tree(&entry?.path())?;
        }
    }
    Ok(())
}

/// Writes `text` to `path`, readable by its owner only (an existing file is replaced and made
/// owner-only first).
fn write_owner_only(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    // An existing file keeps its mode on open.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(text.as_bytes())
}

/// A database name that needs no quoting.
fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// How to start a server; [`PgServer::start`] takes the defaults.
#[derive(Clone, Debug, Default)]
pub struct PgOptions {
    /// This TCP port on 127.0.0.1 instead of a free one (the start fails when it is taken).
    pub port: Option<u16>,
    /// A database (owned by [`USER`]) created before the server listens on TCP, so a client
    /// that finds the port open finds the database too. Plain names only: `[a-z0-9_]+`.
    pub database: Option<String>,
    /// A file to write the password of [`USER`] to (owner-only, replaced if it exists) before
    /// the server listens on TCP. It is the caller's: [`PgServer`] never removes it.
    pub password_file: Option<PathBuf>,
    /// `ssl = on` with a certificate from a throw-away CA ([`PgServer::ca_file`]).
    pub tls: bool,
}

impl PgServer {
    /// Creates and starts a cluster. Panics with the server's log when it cannot (a test
    /// helper: the test cannot run without it). Needs `postgresql-15` (scripts/lib.sh installs
    /// it with the other test packages).
    pub fn start() -> PgServer {
        PgServer::start_with(&PgOptions::default()).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Creates and starts a cluster as `options` say; the error says why it could not (with
    /// the server's log when it did not start).
    pub fn start_with(options: &PgOptions) -> Result<PgServer, String> {
        let bindir = bindir().ok_or(
            "PostgreSQL's server binaries (initdb, pg_ctl) were not found: install Debian's \
             postgresql-15 (scripts/test.sh and .ci/run install it with the test packages)",
        )?;
        if let Some(name) = &options.database {
            if !plain_name(name) {
                return Err(format!(
                    "database name {name:?}: plain names only (a-z, 0-9, _)"
                ));
            }
        }
        let as_nobody = is_root();
        // As nobody, the server must be able to reach its folder: a TMPDIR inside a private
        // folder (root's home, 0700) would not do; /tmp always does.
        let parent = std::env::temp_dir();
        let parent = if as_nobody && !traversable_by_others(&parent) {
            PathBuf::from("/tmp")
        } else {
            parent
        };
        let dir = tempfile::Builder::new()
            .prefix("lockdesk-pg-")
            .tempdir_in(&parent)
            .map_err(|e| format!("cannot make a folder in {}: {e}", parent.display()))?;
        // A random password: nothing outside the test knows it.
        let password = format!("pw-{:016x}-{:016x}", seed(), seed().rotate_left(17));
        let io = |what: &str, e: std::io::Error| format!("{what} in {}: {e}", dir.path().display());
        std::fs::create_dir(dir.path().join("sock")).map_err(|e| io("socket folder", e))?;
        std::fs::write(dir.path().join("pwfile"), format!("{password}\n"))
            .map_err(|e| io("password file", e))?;
        if as_nobody {
            chown_tree(dir.path()).map_err(|e| io("chown to nobody", e))?;
        }
        let server = PgServer {
            dir,
            bindir,
            port: 0,
            password,
            as_nobody,
            ca: options.tls.then(ThrowAwayCa::new),
        };
        let out = server.try_run(
            "initdb",
            &[
                "-D",
                &server.data().display().to_string(),
                "-U",
                USER,
                "--pwfile",
                &server.dir.path().join("pwfile").display().to_string(),
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C",
                // The tests kill processes, never the machine: no fsync needed, much faster.
                "--no-sync",
                "--no-instructions",
            ],
        )?;
        if !out.status.success() {
            return Err(format!(
                "initdb failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        if let Some(name) = &options.database {
            server.create_database_offline(name)?;
        }
        if let Some(ca) = &server.ca {
            server
                .write_certificates(ca)
                .map_err(|e| format!("certificates in {}: {e}", server.dir.path().display()))?;
        }
        if let Some(path) = &options.password_file {
            write_owner_only(path, &format!("{}\n", server.password))
                .map_err(|e| format!("cannot write the password to {}: {e}", path.display()))?;
        }
        let mut server = server;
        if let Some(port) = options.port {
            server.port = port;
            if server.try_start() {
                return Ok(server);
            }
            return Err(format!(
                "PostgreSQL did not start on port {port} (taken?): {}",
                server.log_tail()
            ));
        }
        // The port is free when chosen but another process may take it before the server
        // binds it: try a few.
        for _ in 0..5 {
            server.port = free_port();
            if server.try_start() {
                return Ok(server);
            }
        }
        Err(format!(
            "PostgreSQL did not start (port {}): {}",
            server.port,
            server.log_tail()
        ))
    }

    /// Creates database `name` in the stopped cluster (single-user mode: no connection, no
    /// port), owned by [`USER`].
    fn create_database_offline(&self, name: &str) -> Result<(), String> {
        use std::io::Write;
        let mut child = self
            .command("postgres")
            .args(["--single", "-D"])
            .arg(self.data())
            .arg("template1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run postgres --single: {e}"))?;
        let sent = child
            .stdin
            .take()
            .map(|mut stdin| writeln!(stdin, "CREATE DATABASE {name} OWNER {USER};"));
        let out = child
            .wait_with_output()
            .map_err(|e| format!("postgres --single: {e}"))?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        // Single-user mode exits 0 even when the statement failed: its error is on stderr.
        if !matches!(sent, Some(Ok(()))) || !out.status.success() || stderr.contains("ERROR") {
            return Err(format!("CREATE DATABASE {name} failed: {stderr}"));
        }
        Ok(())
    }

    /// The CA's certificate (the server's own CA's only), and the server's certificate and key
    /// `ca` signed (the key owner-only, and the server user's).
    fn write_certificates(&self, ca: &ThrowAwayCa) -> std::io::Result<()> {
        let server = ca.server(&["localhost", "127.0.0.1", TLS_HOST]);
        let dir = self.dir.path();
        if !dir.join("ca.pem").exists() {
            std::fs::write(dir.join("ca.pem"), ca.cert_pem())?;
        }
        std::fs::write(dir.join("server.crt"), server.chain_pem)?;
        write_owner_only(&dir.join("server.key"), &server.key_pem)?;
        if self.as_nobody {
            for name in ["ca.pem", "server.crt", "server.key"] {
                std::os::unix::fs::chown(dir.join(name), Some(NOBODY), Some(NOBODY))?;
            }
        }
        Ok(())
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The PEM certificate of the CA that issued the server's certificate (with
    /// [`PgOptions::tls`]; `None` without).
    pub fn ca_file(&self) -> Option<PathBuf> {
        self.ca.as_ref().map(|_| self.dir.path().join("ca.pem"))
    }

    /// The CA that issued the server's first certificate (with [`PgOptions::tls`]).
    pub fn ca(&self) -> Option<&ThrowAwayCa> {
        self.ca.as_ref()
    }

    /// Serves a new certificate signed by `ca` (another CA: the server's certificate is no
    /// longer [`PgServer::ca_file`]'s; the server's own: it is again) from the next connection
    /// on: rewrites it, reloads the configuration, and returns once a new session sees the
    /// reload (sessions already open keep their TLS). Panics without [`PgOptions::tls`].
    pub fn serve_certificate_from(&self, ca: &ThrowAwayCa) {
        assert!(self.ca.is_some(), "a server started without tls");
        let before = self.psql("postgres", "SELECT pg_conf_load_time()");
        self.write_certificates(ca)
            .unwrap_or_else(|e| panic!("cannot write the new certificate: {e}"));
        assert_eq!(self.psql("postgres", "SELECT pg_reload_conf()"), "t");
        // A new session's pg_conf_load_time is the postmaster's, set as it reloads (and its
        // TLS context with it): no signal to wait on, a bounded poll.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while self.psql(
            "postgres",
            &format!("SELECT pg_conf_load_time() > '{before}'::timestamptz"),
        ) != "t"
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the server did not reload: {}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The folder of the server's unix socket (`trust` authentication there).
    pub fn socket_dir(&self) -> PathBuf {
        self.dir.path().join("sock")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// The end of the server's log (for failure messages).
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let start = text.len().saturating_sub(4000);
        let start = (start..text.len())
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(text.len());
        text[start..].to_owned()
    }

    /// Runs one of the server's binaries, as `nobody` when we are root, with a clean
    /// environment (no PG* variable or ~/.pgpass of the caller's reaches it).
    fn command(&self, program: &str) -> Command {
        let path = self.bindir.join(program);
        let mut cmd = if self.as_nobody {
            let mut c = Command::new("setpriv");
            c.args([
                format!("--reuid={NOBODY}"),
                format!("--regid={NOBODY}"),
                "--clear-groups".to_owned(),
            ])
            .arg(&path);
            c
        } else {
            Command::new(&path)
        };
        cmd.env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("LC_ALL", "C")
            .env("HOME", self.dir.path())
            .current_dir(self.dir.path())
            .stdin(Stdio::null());
        cmd
    }

    fn try_run(&self, program: &str, args: &[&str]) -> Result<Output, String> {
        self.command(program)
            .args(args)
            .output()
            .map_err(|e| format!("cannot run {program}: {e}"))
    }

    fn run(&self, program: &str, args: &[&str]) -> Output {
        self.try_run(program, args)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn try_start(&self) -> bool {
        let mut options = format!(
            "-c port={} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} \
             -c fsync=off -c full_page_writes=off -c max_connections=200 \
             -c log_min_messages=warning",
            self.port,
            self.socket_dir().display()
        );
        if self.ca.is_some() {
            options.push_str(&format!(
                " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
                self.dir.path().join("server.crt").display(),
                self.dir.path().join("server.key").display()
            ));
        }
        let Ok(out) = self.try_run(
            "pg_ctl",
            &[
                "start",
                "-w",
                "-t",
                "60",
                "-D",
                &self.data().display().to_string(),
                "-l",
                &self.log_path().display().to_string(),
                "-o",
                &options,
            ],
        ) else {
            return false;
        };
        out.status.success()
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The password of [`USER`] (scram-sha-256 over TCP).
    pub fn password(&self) -> &str {
        &self.password
    }

    /// A URL for `database` over TCP, without the password (as the gateway takes it).
    pub fn url(&self, database: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{database}", self.port)
    }

    /// A URL for `database` over TCP by the name [`TLS_HOST`] (in the TLS certificate, not a
    /// local name), reaching 127.0.0.1 through `hostaddr`, without the password.
    pub fn tls_url(&self, database: &str) -> String {
        format!(
            "postgres://{USER}@{TLS_HOST}:{}/{database}?hostaddr=127.0.0.1",
            self.port
        )
    }

    /// Runs SQL as the superuser over the unix socket (trust); panics with psql's message when
    /// it fails.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        let out = self.run(
            "psql",
            &[
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                &self.socket_dir().display().to_string(),
                "-p",
                &self.port.to_string(),
                "-U",
                USER,
                "-d",
                database,
                "-c",
                sql,
            ],
        );
        assert!(
            out.status.success(),
            "psql {sql:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Creates a new, empty database and returns its URL.
    pub fn create_database(&self, name: &str) -> String {
        assert!(plain_name(name), "plain database names only: {name}");
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        self.url(name)
    }

    /// Stops the server at once, as a crash would (`pg_ctl stop -m immediate`): clients see
    /// their connections drop; the next [`PgServer::restart`] recovers from the WAL.
    pub fn kill(&self) {
        let out = self.run(
            "pg_ctl",
            &[
                "stop",
                "-w",
                "-m",
                "immediate",
                "-D",
                &self.data().display().to_string(),
            ],
        );
        assert!(
            out.status.success(),
            "pg_ctl stop failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts the server again on the same port after [`PgServer::kill`].
    pub fn restart(&self) {
        for _ in 0..20 {
            if self.try_start() {
                return;
            }
            // The port may linger a moment after an immediate stop.
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!("PostgreSQL did not start again: {}", self.log_tail());
    }

    /// Whether the server answers (`pg_isready` on the TCP port).
    pub fn is_ready(&self) -> bool {
        self.run(
            "pg_isready",
            &["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()],
        )
        .status
        .success()
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let stopped = self
            .command("pg_ctl")
            .args(["stop", "-w", "-m", "immediate", "-D"])
            .arg(self.data())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !stopped {
            // Already stopped (kill() without restart), or pg_ctl failed: signal the
            // postmaster named in its pid file, if any.
            if let Ok(text) = std::fs::read_to_string(self.data().join("postmaster.pid")) {
                if let Some(pid) = text
                    .lines()
                    .next()
                    .and_then(|l| l.trim().parse::<i32>().ok())
                {
                    // SAFETY: kill(2) with a pid read from the server's own pid file.
                    unsafe {
                        libc::kill(pid, libc::SIGQUIT);
                    }
                }
            }
        }
    }
}

/// 64 bits that differ between calls and processes (a password nobody else knows; not a key).
fn seed() -> u64 {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_tls_it_serves_a_certificate_its_ca_verifies_for_its_names() {
        let pg = PgServer::start_with(&PgOptions {
            tls: true,
            ..PgOptions::default()
        })
        .unwrap();
        let ca = pg.ca_file().expect("a CA file with tls");
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let key = std::fs::metadata(pg.dir.path().join("server.key")).unwrap();
        assert_eq!(key.permissions().mode() & 0o777, 0o600);
        // libpq itself, verifying the chain and the name, over TCP.
        let conninfo = format!(
            "host={TLS_HOST} hostaddr=127.0.0.1 port={} user={USER} dbname=postgres \
             password={} sslmode=verify-full sslrootcert={}",
            pg.port(),
            pg.password(),
            ca.display()
        );
        let out = pg.run(
            "psql",
            &[
                "-X",
                "-A",
                "-t",
                "-d",
                &conninfo,
                "-c",
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            ],
        );
        let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        assert!(
            out.status.success() && text == "t",
            "{text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if pg.as_nobody {
            assert_eq!(key.uid(), NOBODY, "the key is not the server user's");
        }
        // Without the option: no CA, and no TLS.
        let plain = PgServer::start();
        assert!(plain.ca_file().is_none());
        assert_eq!(
            plain.psql("postgres", "SELECT count(*) FROM pg_stat_ssl WHERE ssl"),
            "0"
        );
    }

    #[test]
    fn starts_answers_stops_and_restarts() {
        let pg = PgServer::start();
        assert!(pg.is_ready());
        let url = pg.create_database("kit");
        assert!(url.ends_with("/kit"), "{url}");
        assert_eq!(pg.psql("kit", "SELECT 40 + 2"), "42");
        pg.psql("kit", "CREATE TABLE t (x int); INSERT INTO t VALUES (7)");
        pg.kill();
        assert!(!pg.is_ready());
        pg.restart();
        assert_eq!(pg.psql("kit", "SELECT x FROM t"), "7");
        let data = pg.data();
        drop(pg);
        assert!(!data.exists(), "the cluster's folder outlived the server");
    }

    #[test]
    fn start_with_a_port_and_a_database_has_the_database_before_the_port_opens() {
        use std::os::unix::fs::PermissionsExt;
        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        let pass = dir.path().join("pass");
        std::fs::write(&pass, "stale, readable by all\n").unwrap();
        std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o644)).unwrap();
        let pg = PgServer::start_with(&PgOptions {
            port: Some(port),
            database: Some("demo_db".into()),
            password_file: Some(pass.clone()),
            tls: false,
        })
        .unwrap();
        assert_eq!(pg.port(), port);
        assert_eq!(
            std::fs::read_to_string(&pass).unwrap(),
            format!("{}\n", pg.password())
        );
        let mode = std::fs::metadata(&pass).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o777,
            0o600,
            "the password file is readable by others"
        );
        assert_eq!(
            pg.url("demo_db"),
            format!("postgres://{USER}@127.0.0.1:{port}/demo_db")
        );
        assert_eq!(
            pg.psql(
                "demo_db",
                "SELECT current_database() || ' ' || pg_get_userbyid(datdba) \
                 FROM pg_database WHERE datname = current_database()"
            ),
            format!("demo_db {USER}")
        );
    }

    #[test]
    fn start_with_a_taken_port_or_a_bad_name_is_an_error_not_a_panic() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let err = PgServer::start_with(&PgOptions {
            port: Some(port),
            ..PgOptions::default()
        })
        .err()
        .expect("started on a taken port");
        assert!(err.contains(&format!("port {port}")), "{err}");
        let err = PgServer::start_with(&PgOptions {
            database: Some("x; DROP".into()),
            ..PgOptions::default()
        })
        .err()
        .expect("a name that needs quoting was accepted");
        assert!(err.contains("plain names only"), "{err}");
    }
}
