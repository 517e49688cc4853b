//! The real `lockdesk-cli gateway` in a hostile environment: stderr a closed pipe, a disk that
//! refuses writes, a low open-files limit, more connections than it can hold.
#![cfg(target_os = "linux")]

use crate::support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lockdesk_sim::webhook_signature as signature_header;

const SECRET: &str = "hostile-env-test-secret";
/// A bound on a hang, not a timing claim.
const PATIENCE: Duration = Duration::from_secs(30);

struct Gateway {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the gateway with `stderr`, after `before_exec` ran in the child (limits, signals).
fn spawn(
    dir: &Path,
    stderr: Stdio,
    extra: &[&str],
    before_exec: impl FnMut() -> std::io::Result<()> + Send + Sync + 'static,
) -> Gateway {
    let config = dir.join("gateway.toml");
    std::fs::write(
        &config,
        format!("[[webhook]]\nname = \"main\"\nsecret = \"{SECRET}\"\n"),
    )
    .unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_lockdesk-cli"));
    command
        .args(["gateway", "--listen", "127.0.0.1:0", "--data"])
        .arg(dir.join("data"))
        .arg("--config")
        .arg(&config)
        .args(extra)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(stderr);
    // SAFETY: `before_exec` only calls async-signal-safe functions (setrlimit, signal).
    unsafe { command.pre_exec(before_exec) };
    let mut child = command.spawn().unwrap();
    let addr = support::listening_on(&mut child);
    Gateway { child, addr }
}

/// One request; its status, or 0 when the connection was closed without an answer (a refused
/// connection may be closed before the request is written: the answer may still be readable).
fn request(stream: &mut TcpStream, head: &str, body: &str) -> u16 {
    let _ = write!(
        stream,
        "{head}\r\nHost: lockdesk\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    read_status(stream)
}

/// Reads one response (headers + Content-Length body); its status, or 0 when the connection
/// ended or timed out without one.
fn read_status(stream: &mut TcpStream) -> u16 {
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return 0,
        }
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().unwrap());
    let mut body = vec![0u8; len];
    if stream.read_exact(&mut body).is_err() {
        return 0;
    }
    head[9..12].parse().unwrap_or(0)
}

fn webhook(id: &str) -> (String, String) {
    let body = format!(
        r#"{{"eventId":"{id}","eventType":"visitor.updated","visitorId":"v-{id}","operatorId":7}}"#
    );
    let sig = signature_header(SECRET.as_bytes(), body.as_bytes());
    (
        format!(
            "POST /webhooks/iadvize HTTP/1.1\r\nContent-Type: application/json\r\nx-iadvize-signature: {sig}"
        ),
        body,
    )
}

fn deliver_on(stream: &mut TcpStream, id: &str) -> u16 {
    let (head, body) = webhook(id);
    request(stream, &head, &body)
}

/// One delivery on its own connection.
fn deliver(addr: SocketAddr, id: &str) -> u16 {
    let mut s = TcpStream::connect(addr).unwrap();
    deliver_on(&mut s, id)
}

fn healthz(addr: SocketAddr) -> u16 {
    let mut s = TcpStream::connect(addr).unwrap();
    request(&mut s, "GET /healthz HTTP/1.1", "")
}

fn set_limit(resource: libc::__rlimit_resource_t, soft: u64, hard: u64) -> std::io::Result<()> {
    let limit = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: a plain system call on a valid struct.
    if unsafe { libc::setrlimit(resource, &limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Changes another process's limit (as `prlimit --pid` does).
fn set_limit_of(pid: u32, resource: libc::__rlimit_resource_t, value: u64) {
    let limit = libc::rlimit {
        rlim_cur: value,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: a plain system call on valid structs.
    let rc = unsafe { libc::prlimit(pid as libc::pid_t, resource, &limit, std::ptr::null_mut()) };
    assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
}

/// stderr a pipe nobody reads (its read end closed: every write fails with EPIPE), and a disk
/// that refuses to grow the log (RLIMIT_FSIZE, as a full disk would): every request is
/// answered, appends refused while the disk is full get 503 and succeed again once it is not,
/// and `/healthz` says what is true meanwhile.
#[test]
fn a_closed_stderr_and_a_full_disk_never_take_requests_or_the_writer_down() {
    let dir = tempfile::tempdir().unwrap();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let gateway = spawn(dir.path(), Stdio::from(writer), &[], || {
        // A write past RLIMIT_FSIZE then fails with EFBIG instead of killing the process.
        // SAFETY: ignoring a signal in the child before exec.
        unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
        set_limit(libc::RLIMIT_FSIZE, libc::RLIM_INFINITY, libc::RLIM_INFINITY)
    });
    let addr = gateway.addr;
    // Each of these logs at info level (to the closed pipe).
    for i in 0..20 {
        assert_eq!(deliver(addr, &format!("a{i}")), 200, "delivery a{i}");
    }
    assert_eq!(healthz(addr), 200);

    // The disk is full: a commit fails (and logs an error, to the closed pipe).
    set_limit_of(gateway.child.id(), libc::RLIMIT_FSIZE, 1);
    assert_eq!(deliver(addr, "full-1"), 503);
    assert_eq!(
        healthz(addr),
        503,
        "/healthz must say the store cannot store"
    );
    assert_eq!(deliver(addr, "full-2"), 503);

    // Room again: the writer is still there and stores.
    set_limit_of(gateway.child.id(), libc::RLIMIT_FSIZE, libc::RLIM_INFINITY);
    let start = Instant::now();
    while deliver(addr, "full-1") != 200 {
        assert!(start.elapsed() < PATIENCE, "the store never recovered");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(deliver(addr, "after"), 200);
    assert_eq!(healthz(addr), 200);
}

/// The test process itself holds hundreds of connections: its soft limit up to its hard one.
fn raise_own_fd_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain system calls on a valid struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = limit.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
}

/// `Max open files` (soft, hard) of a running process, from /proc.
fn open_files_limit_of(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let mut words = line["Max open files".len()..].split_whitespace();
    (
        words.next().unwrap().to_owned(),
        words.next().unwrap().to_owned(),
    )
}

/// Idle connections: connected, never sending a byte.
fn idle_connections(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    (0..n).map(|_| TcpStream::connect(addr).unwrap()).collect()
}

#[test]
fn the_open_files_limit_is_raised_to_the_hard_limit() {
    raise_own_fd_limit();
    let dir = tempfile::tempdir().unwrap();
    let gateway = spawn(dir.path(), Stdio::null(), &[], || {
        set_limit(libc::RLIMIT_NOFILE, 256, 2048)
    });
    assert_eq!(
        open_files_limit_of(gateway.child.id()),
        ("2048".to_owned(), "2048".to_owned())
    );
    // More idle connections than the original soft limit: a client is still served.
    let idle = idle_connections(gateway.addr, 600);
    assert_eq!(deliver(gateway.addr, "served"), 200);
    assert_eq!(healthz(gateway.addr), 200);
    drop(idle);
}

/// With a low open-files limit it cannot raise (soft = hard = 256), the gateway caps its
/// connections below it: a client already connected keeps being served, a new connection over
/// the cap is refused at once (503, or closed) instead of waiting in the backlog, and new
/// connections are served again once the idle ones are gone.
#[test]
fn over_the_connection_cap_new_connections_are_refused_and_those_under_it_served() {
    raise_own_fd_limit();
    let dir = tempfile::tempdir().unwrap();
    let gateway = spawn(dir.path(), Stdio::null(), &[], || {
        set_limit(libc::RLIMIT_NOFILE, 256, 256)
    });
    let addr = gateway.addr;
    let mut client = TcpStream::connect(addr).unwrap();
    assert_eq!(deliver_on(&mut client, "k0"), 200);

    let idle = idle_connections(addr, 400);
    for i in 1..=5 {
        assert_eq!(deliver_on(&mut client, &format!("k{i}")), 200, "k{i}");
    }
    // Accepted after the 400 idle ones (the backlog is in order), so over the cap.
    let mut late = TcpStream::connect(addr).unwrap();
    let status = deliver_on(&mut late, "late");
    assert!(
        matches!(status, 503 | 0),
        "a connection over the cap got {status} instead of being refused"
    );
    drop(idle);
    let start = Instant::now();
    loop {
        let mut s = TcpStream::connect(addr).unwrap();
        if deliver_on(&mut s, "late") == 200 {
            break;
        }
        assert!(start.elapsed() < PATIENCE, "never served again");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(deliver_on(&mut client, "k6"), 200);
    assert_eq!(healthz(addr), 200);
}
