//! A child process whose stdout and stderr lines are collected by threads while it runs, and
//! `wait_until`, the tests' one way of waiting for something another process does.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Upper bound for any wait (a safety net against hangs, not a timing assertion).
pub const PATIENCE: Duration = Duration::from_secs(120);

/// Polls `done` until it holds; panics naming `what` after `PATIENCE`. For state another process
/// writes (a SQLite file, a count of printed lines) that no event announces to the test.
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < PATIENCE, "waited too long for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A child whose stdout and stderr lines are collected by threads; killed when dropped.
pub struct Collected {
    child: Child,
    out: Arc<Mutex<Vec<String>>>,
    err: Arc<Mutex<Vec<String>>>,
    readers: Vec<JoinHandle<()>>,
}

fn collect(
    stream: impl std::io::Read + Send + 'static,
) -> (Arc<Mutex<Vec<String>>>, JoinHandle<()>) {
    let lines: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = lines.clone();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            match line {
                Ok(l) => sink.lock().unwrap().push(l),
                Err(_) => break,
            }
        }
    });
    (lines, reader)
}

impl Collected {
    pub fn spawn(mut cmd: Command) -> Collected {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (out, r1) = collect(child.stdout.take().unwrap());
        let (err, r2) = collect(child.stderr.take().unwrap());
        Collected {
            child,
            out,
            err,
            readers: vec![r1, r2],
        }
    }

    /// How many stdout lines it has printed so far.
    pub fn stdout_count(&self) -> usize {
        self.out.lock().unwrap().len()
    }

    /// Its stderr lines so far.
    pub fn stderr(&self) -> Vec<String> {
        self.err.lock().unwrap().clone()
    }

    /// Waits for the process to end; returns its status, stdout and stderr lines.
    pub fn finish(mut self) -> (ExitStatus, Vec<String>, Vec<String>) {
        let status = self.child.wait().unwrap();
        for r in self.readers.drain(..) {
            r.join().unwrap();
        }
        let out = std::mem::take(&mut *self.out.lock().unwrap());
        let err = std::mem::take(&mut *self.err.lock().unwrap());
        (status, out, err)
    }

    /// SIGKILL (`Child::kill` on Unix), then what it printed.
    pub fn kill(mut self) -> (ExitStatus, Vec<String>, Vec<String>) {
        self.child.kill().unwrap();
        self.finish()
    }

    /// SIGINT: a watch stops gracefully.
    pub fn interrupt(self) -> (ExitStatus, Vec<String>, Vec<String>) {
        let ok = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        self.finish()
    }
}

impl Drop for Collected {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
