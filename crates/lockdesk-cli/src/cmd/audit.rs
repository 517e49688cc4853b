//! `lockdesk-cli audit`: check, export, purge and erase the supervisor audit log (the hash chain
//! in the desk's store, `<data dir>/desk.sqlite3`). docs/audit.md is the user reference.
//!
//! Exit status: 0 the chain holds / done; 1 the chain (or an exported file) is broken, the bad
//! entry's seq is printed; 2 usage, missing store or I/O error.

use std::fs::File;
use std::io::{BufReader, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use lockdesk_audit::export::{
    self, ExportCheckError, ExportError, ExportOptions, Format, RedactKey,
};
use lockdesk_audit::{RetentionError, VerifyError};
use lockdesk_desk::{CheckError, Desk, DeskConfig, DeskError, DeskReader};

// Problems name entries, ids and lines of a file that may have been tampered with: printed
// through the terminal escaping routine.
use crate::out::Shown;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(clap::Args)]
struct DataArg {
    /// The data folder holding the desk's store (default: LOCKDESK_DATA_DIR, else the OS's).
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum FormatArg {
    Csv,
    Jsonl,
}

#[derive(clap::Subcommand)]
enum What {
    /// Check the whole chain and the desk's tables against it (exit 1 naming the first bad
    /// entry, or each conversation or alert the store shows otherwise), or re-check an export.
    Verify {
        #[command(flatten)]
        data: DataArg,
        /// Re-check this JSON Lines export instead, and compare its head with the live log
        /// when there is one.
        #[arg(long, value_name = "FILE")]
        export: Option<PathBuf>,
    },
    /// Print the head: `SEQ HASH` (nothing for an empty log). Write it down elsewhere.
    Head {
        #[command(flatten)]
        data: DataArg,
    },
    /// Export entries (streamed, bounded memory; a progress bar on a terminal).
    Export {
        #[command(flatten)]
        data: DataArg,
        /// From this date (YYYY-MM-DD, UTC, inclusive) or RFC 3339 instant.
        #[arg(long, value_name = "DATE")]
        from: Option<String>,
        /// To this date (YYYY-MM-DD, UTC, the whole day included) or RFC 3339 instant.
        #[arg(long, value_name = "DATE")]
        to: Option<String>,
        #[arg(long, value_enum)]
        format: FormatArg,
        /// Mask visitorData and replace user/visitor ids with keyed pseudonyms.
        #[arg(long)]
        redact: bool,
        /// The pseudonyms' key file (default: DIR/audit-redaction.key, created if missing).
        #[arg(long, value_name = "FILE", requires = "redact")]
        redact_key: Option<PathBuf>,
        /// Write here (default: standard output).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Print the process's peak memory (VmHWM) to stderr at the end (tests, benchmarks).
        #[arg(long, hide = true)]
        print_peak_memory: bool,
    },
    /// Remove the desk's conversations closed more than DAYS days ago (with their rows) and the
    /// audit entries older than that, keeping the chain verifiable.
    Purge {
        #[command(flatten)]
        data: DataArg,
        #[arg(long, value_name = "DAYS")]
        older_than: u32,
    },
    /// Erase one user's personal data (GDPR) from the desk's tables and the audit log (its
    /// entries become tombstones), then scrub the file.
    Erase {
        #[command(flatten)]
        data: DataArg,
        #[arg(long, value_name = "ID")]
        user_id: String,
    },
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.what {
        What::Verify { data, export: None } => verify(&data),
        What::Verify {
            data,
            export: Some(file),
        } => verify_export(&data, &file),
        What::Head { data } => {
            let reader = open(&data)?.1;
            if let Some(h) = reader.audit_head()? {
                println!("{} {}", h.seq, h.hash_hex);
            }
            Ok(ExitCode::SUCCESS)
        }
        What::Export {
            data,
            from,
            to,
            format,
            redact,
            redact_key,
            out,
            print_peak_memory,
        } => {
            let from_ms = from
                .map(|d| export::parse_date(&d, false))
                .transpose()
                .map_err(|e| anyhow::anyhow!("--from {e}"))?;
            let to_ms = to
                .map(|d| export::parse_date(&d, true))
                .transpose()
                .map_err(|e| anyhow::anyhow!("--to {e}"))?;
            if let (Some(f), Some(t)) = (from_ms, to_ms) {
                if f > t {
                    bail!("--from is after --to");
                }
            }
            let (dir, reader) = open(&data)?;
            let redact = if redact {
                let path = redact_key.unwrap_or_else(|| dir.join(export::REDACTION_KEY_FILE));
                Some(RedactKey::load_or_create(&path)?)
            } else {
                None
            };
            let opts = ExportOptions {
                from_ms,
                to_ms,
                redact,
            };
            let format = match format {
                FormatArg::Csv => Format::Csv,
                FormatArg::Jsonl => Format::Jsonl,
            };
            let code = run_export(&reader, format, &opts, out.as_deref())?;
            if print_peak_memory {
                eprintln!("peak_memory_kib {}", peak_memory_kib().unwrap_or(0));
            }
            Ok(code)
        }
        What::Purge { data, older_than } => {
            let mut desk = open_desk(&data)?;
            let now = now_ms();
            let cutoff = now.saturating_sub(i64::from(older_than).saturating_mul(86_400_000));
            removed(desk.purge_before(cutoff, now), |r| {
                println!(
                    "desk: removed {} closed conversations ({} presentations, {} alerts), \
                     {} devices, {} identities",
                    r.desk.conversations,
                    r.desk.presentations,
                    r.desk.alerts,
                    r.desk.visitors,
                    r.desk.identities
                );
                match &r.audit.head {
                    Some(h) => println!(
                        "purged {} entries (1 to {}); purge entry {} {}",
                        r.audit.purged_entries, r.audit.purged_through, h.seq, h.hash_hex
                    ),
                    None => println!("audit log: nothing older than {older_than} days"),
                }
                r.file_scrubbed
            })
        }
        What::Erase { data, user_id } => {
            if user_id.is_empty() {
                bail!("--user-id: empty");
            }
            let mut desk = open_desk(&data)?;
            removed(desk.erase_user(&user_id, now_ms()), |r| {
                println!(
                    "desk: {} identity, {} device links, {} devices renamed; tombstoned in \
                     {} conversations, {} presentations, {} transitions, {} alerts",
                    r.desk.identities,
                    r.desk.identity_links,
                    r.desk.visitors,
                    r.desk.conversations,
                    r.desk.presentations,
                    r.desk.transitions,
                    r.desk.alerts
                );
                match &r.audit.head {
                    Some(h) => println!(
                        "erased {} entries; erasure entry {} {}",
                        r.audit.erased_entries, h.seq, h.hash_hex
                    ),
                    None => println!("audit log: no entries for that user id"),
                }
                r.file_scrubbed
            })
        }
    }
}

fn now_ms() -> i64 {
    lockdesk_text::time::now_ms()
}

fn data_dir(data: &DataArg) -> anyhow::Result<PathBuf> {
    match &data.data {
        Some(d) => Ok(d.clone()),
        None => Ok(lockdesk_config::data_dir().context("--data")?),
    }
}

/// The desk over the store, which must exist, for erasure and purge (they cover the desk's
/// tables and the audit log). Nothing is verified here: an empty key engine.
fn open_desk(data: &DataArg) -> anyhow::Result<Desk> {
    let path = data_dir(data)?.join(lockdesk_audit::DEFAULT_FILE_NAME);
    if !path.is_file() {
        bail!(
            "no desk store at {} (--data or {})",
            path.display(),
            lockdesk_config::DATA_DIR_ENV
        );
    }
    let engine = lockdesk_keys::Engine::load(&lockdesk_keys::Setup::default())?;
    Desk::open(&path, std::sync::Arc::new(engine), DeskConfig::default())
        .with_context(|| path.display().to_string())
}

/// The store, which must exist, read-only through the desk crate's reader (the audit command
/// never creates, migrates or writes one; purge and erase go through [`open_desk`]).
fn open(data: &DataArg) -> anyhow::Result<(PathBuf, DeskReader)> {
    let dir = data_dir(data)?;
    let path = dir.join(lockdesk_audit::DEFAULT_FILE_NAME);
    let reader = open_file(&path)?;
    Ok((dir, reader))
}

fn open_file(path: &Path) -> anyhow::Result<DeskReader> {
    if !path.is_file() {
        bail!(
            "no desk store at {} (--data or {})",
            path.display(),
            lockdesk_config::DATA_DIR_ENV
        );
    }
    DeskReader::open(path).with_context(|| format!("cannot open {}", path.display()))
}

fn bar(len: u64, what: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(len);
    if let Ok(style) =
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} entries ({per_sec}, {eta} left)")
    {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_message(what.to_owned());
    pb
}

fn verify(data: &DataArg) -> anyhow::Result<ExitCode> {
    let reader = open(data)?.1;
    let total = reader.count_audit(&ExportOptions::default()).unwrap_or(0);
    let pb = bar(total, "verifying");
    // The chain, and the desk's tables against it (what the window shows must be what the
    // log says), in one pass and one read transaction.
    // Lifetime 0: each conversation's session is bounded by its own stored lifetime (the
    // configuration's when it was created; at most 24 hours). The desktop app also applies the
    // configured one.
    let result = reader.check_against_audit(0, &mut |n| pb.set_position(n));
    pb.finish_and_clear();
    let check = match result {
        Ok(c) => c,
        Err(CheckError::Chain(VerifyError::Broken(b))) => {
            println!("BROKEN at entry {}: {}", b.seq, Shown(&b.problem));
            return Ok(ExitCode::from(1));
        }
        Err(CheckError::Chain(VerifyError::Store(e))) => return Err(e.into()),
        Err(CheckError::Store(e)) => return Err(e.into()),
    };
    let r = &check.chain;
    let chain = match &r.head {
        Some(h) => format!(
            "{} entries (seq {} to {}), {} tombstones{}; head {} {}",
            r.entries,
            r.first_seq,
            h.seq,
            r.tombstones,
            if r.purged_through > 0 {
                format!(", entries 1 to {} purged", r.purged_through)
            } else {
                String::new()
            },
            h.seq,
            h.hash_hex
        ),
        None => "the audit log is empty".into(),
    };
    if check.agrees() {
        println!("ok: {chain}");
        println!(
            "the store agrees with the audit log: {} conversations, {} alerts",
            check.conversations, check.alerts
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "BROKEN: the store disagrees with the audit log ({} problem{}; the chain itself is intact: {chain})",
        check.disagreement_count,
        if check.disagreement_count == 1 { "" } else { "s" }
    );
    const SHOWN: usize = 50;
    for d in check.disagreements.iter().take(SHOWN) {
        println!("  {}", Shown(&d.message));
    }
    if check.disagreement_count > SHOWN as u64 {
        println!("  ... and {} more", check.disagreement_count - SHOWN as u64);
    }
    Ok(ExitCode::from(1))
}

fn verify_export(data: &DataArg, file: &Path) -> anyhow::Result<ExitCode> {
    let f = File::open(file).with_context(|| format!("--export {}", file.display()))?;
    let report = match export::verify_export(&mut BufReader::with_capacity(1 << 16, f)) {
        Ok(r) => r,
        Err(ExportCheckError::Broken(b)) => {
            println!("BROKEN export at entry {}: {}", b.seq, Shown(&b.problem));
            return Ok(ExitCode::from(1));
        }
        Err(ExportCheckError::Format { line, what }) => {
            println!("BROKEN export at line {line}: {}", Shown(&what));
            return Ok(ExitCode::from(1));
        }
        Err(ExportCheckError::Io(e)) => {
            return Err(anyhow::Error::new(e).context(format!("--export {}", file.display())))
        }
    };
    println!(
        "export ok: {} entries in {} run(s){}{}; taken at head {}",
        report.entries,
        report.segments,
        if report.filtered {
            ", date-filtered"
        } else {
            ""
        },
        if report.redacted {
            ", redacted (personal data not checkable)"
        } else {
            ", personal data checked"
        },
        // The header's head is the file's text (a tampered file can put anything there).
        report
            .head_at_export
            .as_ref()
            .map_or("(empty log)".into(), |h| format!(
                "{} {}",
                h.seq,
                Shown(&h.hash_hex)
            )),
    );
    // Against the live log: explicitly named (--data), or the default one if it exists.
    let path = match data_dir(data) {
        Ok(d) => d.join(lockdesk_audit::DEFAULT_FILE_NAME),
        Err(_) if data.data.is_none() => {
            println!("not compared with a live log (no data folder)");
            return Ok(ExitCode::SUCCESS);
        }
        Err(e) => return Err(e),
    };
    if data.data.is_none() && !path.is_file() {
        println!("not compared with a live log (none at {})", path.display());
        return Ok(ExitCode::SUCCESS);
    }
    let reader = open_file(&path)?;
    let Some(head) = report.head_at_export else {
        return Ok(ExitCode::SUCCESS);
    };
    match reader.check_export_head(&head) {
        Ok(true) => println!("live log agrees: entry {} has the same hash", head.seq),
        Ok(false) => println!("live log: entry {} has been purged since", head.seq),
        Err(ExportError::Broken(b)) => {
            println!("BROKEN at entry {}: {}", b.seq, Shown(&b.problem));
            return Ok(ExitCode::from(1));
        }
        Err(e) => return Err(e.into()),
    }
    Ok(ExitCode::SUCCESS)
}

fn run_export(
    reader: &DeskReader,
    format: Format,
    opts: &ExportOptions,
    out: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let total = reader.count_audit(opts)?;
    let pb = bar(total, "exporting");
    let mut progress = |n| pb.set_position(n);
    let result = match out {
        // The one export-to-file rule (`lockdesk_audit::file`, also the window's): a temporary
        // file beside the target (owner-only: an export holds personal data), synced, then
        // renamed; never a partial file under the target's name. `/dev/null` or a pipe is
        // written in place.
        Some(path) => match lockdesk_audit::file::write_file(path, |w| {
            reader.export_audit(w, format, opts, &mut progress)
        }) {
            Err(ExportError::Io(e)) => {
                return Err(anyhow::Error::new(e).context(format!("--out {}", path.display())))
            }
            r => r,
        },
        None => {
            let stdout = std::io::stdout();
            let mut w = BufWriter::with_capacity(1 << 16, stdout.lock());
            let r = reader.export_audit(&mut w, format, opts, &mut progress);
            r.and_then(|s| w.flush().map(|_| s).map_err(ExportError::Io))
        }
    };
    pb.finish_and_clear();
    match result {
        Ok(s) => {
            eprintln!(
                "exported {} entries; head {}",
                s.entries,
                s.head.map_or("(empty log)".into(), |h| format!(
                    "{} {}",
                    h.seq, h.hash_hex
                ))
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(ExportError::Broken(b)) => {
            println!("BROKEN at entry {}: {}", b.seq, Shown(&b.problem));
            Ok(ExitCode::from(1))
        }
        Err(ExportError::Unreadable { seq, what }) => {
            eprintln!("BROKEN at entry {seq}: {}", Shown(&what));
            Ok(ExitCode::from(1))
        }
        Err(e) => Err(e.into()),
    }
}

/// How a purge or an erasure ends: `report` prints what it removed and tells whether the file
/// was scrubbed; a retention refusal (a broken chain) exits 1, having changed nothing.
fn removed<R>(
    outcome: Result<R, DeskError>,
    report: impl FnOnce(&R) -> bool,
) -> anyhow::Result<ExitCode> {
    match outcome {
        Ok(r) => {
            warn_unscrubbed(report(&r));
            Ok(ExitCode::SUCCESS)
        }
        Err(DeskError::Retention(e)) => retention_failed(e),
        Err(e) => Err(e.into()),
    }
}

fn retention_failed(e: RetentionError) -> anyhow::Result<ExitCode> {
    match e {
        RetentionError::Broken(b) => {
            println!(
                "BROKEN at entry {}: {} (nothing changed: fix or keep the evidence first)",
                b.seq,
                Shown(&b.problem)
            );
            Ok(ExitCode::from(1))
        }
        other => Err(other.into()),
    }
}

fn warn_unscrubbed(scrubbed: bool) {
    if !scrubbed {
        eprintln!(
            "warning: another program (the desk?) kept the write-ahead log open; removed bytes \
             leave it at its next checkpoint"
        );
    }
}

/// The process's peak resident memory, from /proc (Linux).
fn peak_memory_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
