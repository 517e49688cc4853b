//! `lockdesk-cli bench audit`: the audit log's figures of issue 7, measured in one run on a
//! fresh store in a temporary folder (WAL, synchronous=NORMAL: the desk's settings).
//!
//! - append rate, in transactions of `--batch` entries as the desk commits them;
//! - time to verify the whole chain (`--entries`, default 1,000,000);
//! - peak memory (VmHWM) of `lockdesk-cli audit export` child processes over that log, for JSON
//!   Lines, CSV and a redacted JSON Lines export, with their durations.
//!
//! Never run by the test command (about a minute in release; the figures depend on the machine).

use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use anyhow::{bail, Context};
use lockdesk_audit::{append, migrate, Kind, Record};
use rusqlite::Connection;
use serde_json::json;

#[derive(clap::Args)]
pub struct Args {
    /// Entries in the log.
    #[arg(long, default_value_t = 1_000_000)]
    entries: u64,
    /// Entries per transaction while appending.
    #[arg(long, default_value_t = 100)]
    batch: u64,
}

fn record(i: u64) -> Record {
    Record {
        at_ms: 1_800_000_000_000 + i as i64 * 1_000,
        kind: match i % 4 {
            0 => Kind::Presentation,
            1 => Kind::Verdict,
            2 => Kind::Transition,
            _ => Kind::Alert,
        },
        conversation_id: Some(format!("conv-{}", i / 4)),
        visitor_id: Some(format!("visitor-{}", i % 5_000)),
        user_id: Some(format!("user-{}", i % 5_000)),
        operator_id: Some(i % 40),
        // Each kind carries what the store check reads from it (a transition's state, an
        // alert's id), so the replay does its real work.
        data: json!({
            "state": "secured", "authState": "secured", "code": "shared_device", "alertId": i,
            "verdict": "verified",
            "reason": null,
            "kid": "brand-2026",
            "thumbprint": "Hk0b1SjfRrXlQ3lCeNt8b_w1wQ2mYc4aQ2mYc4a",
            "issuer": "https://brand.example",
            "from": "pending", "to": "verified",
            "visitorData": {"email": format!("person-{}@mail.example", i % 5_000), "firstName": "Ada", "plan": "gold"}
        }),
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if !(1_000..=100_000_000).contains(&args.entries) {
        bail!("--entries {}: expected 1000 to 100000000", args.entries);
    }
    if !(1..=1_000_000).contains(&args.batch) {
        bail!("--batch {}: expected 1 to 1000000", args.batch);
    }
    let dir = tempfile::tempdir().context("temporary folder")?;
    let path = dir.path().join(lockdesk_audit::DEFAULT_FILE_NAME);
    println!(
        "audit log benchmark: {} entries, {} per transaction, in {}",
        args.entries,
        args.batch,
        dir.path().display()
    );

    let mut conn = Connection::open(&path)?;
    let _: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    migrate(&conn)?;
    let records: Vec<Record> = (0..1_000).map(record).collect();
    let started = Instant::now();
    let cpu_before = cpu_secs();
    let mut i = 0u64;
    while i < args.entries {
        let tx = conn.transaction()?;
        let end = (i + args.batch).min(args.entries);
        while i < end {
            // Fresh visitor and user ids for every entry would measure format!; the chain work
            // is the same. Conversation and alert ids are fresh (250,000 conversations and
            // alerts per million entries), so the store check replays a realistic number.
            let mut r = records[(i % 1_000) as usize].clone();
            r.at_ms += i as i64;
            r.conversation_id = Some(format!("conv-{}", i / 4));
            r.data["alertId"] = json!(i);
            append(&tx, &r)?;
            i += 1;
        }
        tx.commit()?;
    }
    let secs = started.elapsed().as_secs_f64();
    let cpu = cpu_secs() - cpu_before;
    let size = std::fs::metadata(&path).map_or(0, |m| m.len())
        + std::fs::metadata(path.with_extension("sqlite3-wal")).map_or(0, |m| m.len());
    println!(
        "append: {} entries in {:.2} s = {:.0} entries/s (target >= 20,000/s); {:.2} s of CPU \
         (user+sys) = {:.0} entries per CPU second; file {:.0} MiB",
        args.entries,
        secs,
        args.entries as f64 / secs,
        cpu,
        args.entries as f64 / cpu,
        size as f64 / 1_048_576.0
    );
    let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));

    for round in 1..=2 {
        let started = Instant::now();
        let cpu_before = cpu_secs();
        let report = lockdesk_audit::verify(&conn).context("verify")?;
        let secs = started.elapsed().as_secs_f64();
        println!(
            "verify (run {round}): {} entries in {:.2} s ({:.2} s of CPU) = {:.0} entries/s \
             (target: 1,000,000 in < 10 s)",
            report.entries,
            secs,
            cpu_secs() - cpu_before,
            report.entries as f64 / secs
        );
    }
    // What the desk pays at start and `audit verify` now: the chain plus the replay of every
    // entry into per-conversation, per-device and per-alert state (here with no desk tables:
    // every conversation and alert the log records is then reported missing, the most work).
    for round in 1..=2 {
        let started = Instant::now();
        let cpu_before = cpu_secs();
        let check = lockdesk_desk::check_store(&conn, 3600, &mut |_| {}).context("store check")?;
        let secs = started.elapsed().as_secs_f64();
        println!(
            "verify + store check (run {round}): {} entries in {:.2} s ({:.2} s of CPU), {} rows reported missing",
            check.chain.entries,
            secs,
            cpu_secs() - cpu_before,
            check.disagreement_count
        );
    }
    drop(conn);

    let exe = std::env::current_exe().context("cannot find this program's path")?;
    for (label, extra) in [
        ("jsonl", &["--format", "jsonl"][..]),
        ("csv", &["--format", "csv"][..]),
        ("jsonl --redact", &["--format", "jsonl", "--redact"][..]),
    ] {
        let started = Instant::now();
        let out = Command::new(&exe)
            .args(["audit", "export", "--data"])
            .arg(dir.path())
            .args(extra)
            .args(["--out", "/dev/null", "--print-peak-memory"])
            .stdin(Stdio::null())
            .output()
            .context("cannot run the export")?;
        let secs = started.elapsed().as_secs_f64();
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            bail!("export {label} failed: {stderr}");
        }
        let kib = stderr
            .lines()
            .find_map(|l| l.strip_prefix("peak_memory_kib "))
            .unwrap_or("?");
        println!(
            "export {label}: {} entries in {:.2} s, peak memory {kib} KiB (process VmHWM)",
            args.entries, secs
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// This process's CPU time so far (user + system), in seconds: unlike wall time, it does not
/// count waiting for a core on a busy machine.
fn cpu_secs() -> f64 {
    // SAFETY: getrusage only writes the struct we pass; an all-zero rusage is a valid value.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid pointer to a rusage.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return f64::NAN;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}
