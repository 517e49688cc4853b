//! The supervisor's screen (issue 7): every conversation with filters and aggregates, the audit
//! log's integrity state and head hash, and an export of the log written into the data folder.
//!
//! The bodies of the three commands live here (no Tauri): [`overview`] aggregates the desk's
//! conversation rows, [`audit_status`] runs [`lockdesk_audit::verify`] over the desk's SQLite
//! file, [`export_audit`] streams [`lockdesk_audit::export::export`] into `<dir>/exports/`.
//!
//! Must not: present anything that is not in the store (no sample data; an empty desk gives empty
//! aggregates); write to the store (the audit connection is read-only); leave a half-written
//! export under its final name (it is written as `.part` and renamed once synced).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::Write;
use std::path::Path;

use lockdesk_audit::export::{self as audit_export, ExportOptions, Format, RedactKey};
use lockdesk_audit::VerifyError;
use lockdesk_desk as dc;
use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::{AuthStateName, IpcError, IpcErrorCode, OperatorId, ReasonCode};

/// The supervisor table shows at most this many rows (the aggregates cover every match).
pub const ROW_LIMIT: usize = 2_000;

/// The folder of the data directory that UI exports go to.
pub const EXPORTS_DIR: &str = "exports";

/// What the supervisor narrows the conversations to. Every field is optional.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase", default)]
pub struct SupervisorFilters {
    /// The conversation's state; a closed conversation also matches the state it kept.
    pub state: Option<AuthStateName>,
    /// The conversation's reason (e.g. `expired`; `unknown` matches every code this build does
    /// not know).
    pub reason: Option<ReasonCode>,
    /// The advisor (iAdvize operator id).
    pub operator_id: Option<OperatorId>,
    /// iAdvize's channel (`CHAT`, `CALL`, `WHATSAPP`, ...).
    pub channel: Option<String>,
    /// Opened at or after this instant (ms since the epoch).
    #[ts(type = "number | null")]
    pub from_ms: Option<i64>,
    /// Opened at or before this instant (ms since the epoch).
    #[ts(type = "number | null")]
    pub to_ms: Option<i64>,
    /// The viewer's offset from UTC in minutes (east positive): days are the viewer's days.
    pub tz_offset_minutes: i32,
}

/// One line of the supervisor's table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct SupervisorRow {
    pub id: String,
    pub state: AuthStateName,
    /// For a closed conversation, the state it kept.
    pub closed_from: Option<AuthStateName>,
    pub reason_code: Option<ReasonCode>,
    pub operator_id: Option<OperatorId>,
    pub channel: String,
    pub user_id: Option<String>,
    #[ts(type = "number | null")]
    pub opened_at_ms: Option<i64>,
    #[ts(type = "number | null")]
    pub closed_at_ms: Option<i64>,
    /// The first valid token in the conversation (`null`: never secured).
    #[ts(type = "number | null")]
    pub secured_at_ms: Option<i64>,
    /// Back-filled from the platform and never seen by this desk with a token: what it was is
    /// unknown (not "anonymous"), the same rule as the overview's `no_data` count.
    pub no_data: bool,
}

/// Conversations opened on one day, and how many of them were secured at least once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct DayShare {
    /// `YYYY-MM-DD` in the viewer's time zone.
    pub day: String,
    pub conversations: u32,
    pub secured: u32,
    /// Of `conversations`, those without verification data (known only from the backfill):
    /// the day's share is `secured / (conversations - no_data)`, and a day with nothing else
    /// has no share at all ("no data", never 0%).
    pub no_data: u32,
}

/// Conversations whose (kept) state is `failed`, with this reason.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct ReasonCount {
    /// `null`: failed without a recorded reason code.
    pub reason: Option<ReasonCode>,
    pub conversations: u32,
}

/// One advisor's conversations.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct AdvisorCount {
    /// `null`: not (yet) assigned to an advisor (only in [`SupervisorOverview::no_advisor`]).
    pub operator_id: Option<OperatorId>,
    pub conversations: u32,
    pub secured: u32,
    pub failed: u32,
    /// Of `conversations`, those without verification data (known only from the backfill).
    pub no_data: u32,
}

/// The values each filter can take (from every conversation, not only the matching ones).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct FilterChoices {
    pub states: Vec<AuthStateName>,
    pub reasons: Vec<ReasonCode>,
    pub operator_ids: Vec<OperatorId>,
    pub channels: Vec<String>,
}

/// What the supervisor's screen shows.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct SupervisorOverview {
    /// Conversations in the store.
    pub total: u32,
    /// Conversations matching the filters (the aggregates cover all of them).
    pub matched: u32,
    /// Matching conversations secured at least once.
    pub secured: u32,
    /// Matching conversations whose (kept) state is `failed`.
    pub failed: u32,
    /// Matching conversations without verification data: known to the desk only from the
    /// backfill (no advisor, no token presented, never secured). Days and rates leave them out.
    pub no_data: u32,
    /// The matching rows, most recently opened first, at most [`ROW_LIMIT`].
    pub rows: Vec<SupervisorRow>,
    /// Oldest day first.
    pub per_day: Vec<DayShare>,
    /// Most conversations first.
    pub failures_by_reason: Vec<ReasonCount>,
    /// The advisors (never `operator_id: null`), most conversations first.
    pub per_advisor: Vec<AdvisorCount>,
    /// Matching conversations not assigned to any advisor: their own bucket, not an advisor's
    /// rate (`null` when there are none).
    pub no_advisor: Option<AdvisorCount>,
    pub choices: FilterChoices,
}

/// The audit log's integrity, as `audit verify` sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct AuditStatus {
    /// The whole chain verified.
    pub ok: bool,
    /// Entries checked (0 when broken: the count stops at the bad entry).
    #[ts(type = "number")]
    pub entries: u64,
    #[ts(type = "number | null")]
    pub head_seq: Option<u64>,
    /// The head hash (64 hex digits), to be written down elsewhere.
    pub head_hash: Option<String>,
    /// The first bad entry's seq.
    #[ts(type = "number | null")]
    pub broken_at: Option<u64>,
    /// What is wrong with it.
    pub problem: Option<String>,
    /// The SQLite file checked.
    pub file: String,
    /// Places where the desk's tables disagree with the (intact) chain: a row edited offline
    /// shows what the audit log does not say. Counted in full; `store_problems` holds the
    /// first sentences.
    #[ts(type = "number")]
    pub store_problem_count: u64,
    pub store_problems: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum ExportFormat {
    Csv,
    Jsonl,
}

/// Where an export was written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct ExportResult {
    pub path: String,
    #[ts(type = "number")]
    pub entries: u64,
    pub redacted: bool,
    #[ts(type = "number | null")]
    pub head_seq: Option<u64>,
    pub head_hash: Option<String>,
    /// The chain was broken at this entry when the export was taken (the user confirmed; the
    /// file itself says so). `null`: the whole chain verified.
    #[ts(type = "number | null")]
    pub broken_at: Option<u64>,
}

fn row_matches(r: &dc::ConversationRow, f: &SupervisorFilters) -> bool {
    if let Some(s) = f.state {
        if r.state != s && r.auth_state != s {
            return false;
        }
    }
    if f.reason.is_some() && r.reason != f.reason {
        return false;
    }
    if f.operator_id.is_some() && r.operator_id != f.operator_id {
        return false;
    }
    if let Some(c) = &f.channel {
        if &r.channel != c {
            return false;
        }
    }
    let at = r.opened_ms.or(r.closed_ms);
    if let Some(from) = f.from_ms {
        if at.is_none_or(|t| t < from) {
            return false;
        }
    }
    if let Some(to) = f.to_ms {
        if at.is_none_or(|t| t > to) {
            return false;
        }
    }
    true
}

/// The civil date (proleptic Gregorian) of a day count since 1970-01-01 (H. Hinnant's algorithm).
pub fn civil_date(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The viewer's day of an instant.
pub fn day_of(ms: i64, tz_offset_minutes: i32) -> String {
    let local = ms.saturating_add(i64::from(tz_offset_minutes) * 60_000);
    civil_date(local.div_euclid(86_400_000))
}

fn is_failed(r: &dc::ConversationRow) -> bool {
    r.auth_state == AuthStateName::Failed || r.state == AuthStateName::Failed
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The supervisor's view of `rows` (the desk's conversations, any order) under `filters`.
/// `no_data`: the ids of the conversations without verification data
/// ([`conversations_without_verification_data`]).
pub fn overview(
    rows: &[dc::ConversationRow],
    no_data: &HashSet<String>,
    filters: &SupervisorFilters,
) -> SupervisorOverview {
    let mut choices_states = BTreeSet::new();
    let mut reasons = BTreeSet::new();
    let mut operators = BTreeSet::new();
    let mut channels = BTreeSet::new();
    for r in rows {
        choices_states.insert(r.state.code());
        choices_states.insert(r.auth_state.code());
        if let Some(x) = r.reason {
            reasons.insert(x);
        }
        if let Some(o) = r.operator_id {
            operators.insert(o);
        }
        channels.insert(r.channel.clone());
    }
    let mut matching: Vec<&dc::ConversationRow> =
        rows.iter().filter(|r| row_matches(r, filters)).collect();
    matching.sort_by(|a, b| {
        b.opened_ms
            .or(b.closed_ms)
            .cmp(&a.opened_ms.or(a.closed_ms))
            .then_with(|| b.conversation_id.cmp(&a.conversation_id))
    });

    let mut days: BTreeMap<String, (u32, u32, u32)> = BTreeMap::new();
    let mut reasons_n: BTreeMap<Option<ReasonCode>, u32> = BTreeMap::new();
    let mut advisors: BTreeMap<Option<OperatorId>, (u32, u32, u32, u32)> = BTreeMap::new();
    let (mut secured, mut failed, mut without_data) = (0u32, 0u32, 0u32);
    for r in &matching {
        let was_secured = r.first_verified_ms.is_some();
        let fail = is_failed(r);
        let blind = !was_secured && no_data.contains(&r.conversation_id);
        secured += u32::from(was_secured);
        failed += u32::from(fail);
        without_data += u32::from(blind);
        if let Some(at) = r.opened_ms.or(r.closed_ms) {
            let d = days
                .entry(day_of(at, filters.tz_offset_minutes))
                .or_default();
            d.0 += 1;
            d.1 += u32::from(was_secured);
            d.2 += u32::from(blind);
        }
        if fail {
            *reasons_n.entry(r.reason).or_default() += 1;
        }
        let a = advisors.entry(r.operator_id).or_default();
        a.0 += 1;
        a.1 += u32::from(was_secured);
        a.2 += u32::from(fail);
        a.3 += u32::from(blind);
    }
    let mut failures_by_reason: Vec<ReasonCount> = reasons_n
        .into_iter()
        .map(|(reason, conversations)| ReasonCount {
            reason,
            conversations,
        })
        .collect();
    failures_by_reason.sort_by_key(|r| std::cmp::Reverse(r.conversations));
    let mut per_advisor: Vec<AdvisorCount> = advisors
        .into_iter()
        .map(
            |(operator_id, (conversations, secured, failed, no_data))| AdvisorCount {
                operator_id,
                conversations,
                secured,
                failed,
                no_data,
            },
        )
        .collect();
    per_advisor.sort_by_key(|a| std::cmp::Reverse(a.conversations));
    let no_advisor = per_advisor
        .iter()
        .position(|a| a.operator_id.is_none())
        .map(|i| per_advisor.remove(i));

    SupervisorOverview {
        total: count(rows.len()),
        matched: count(matching.len()),
        secured,
        failed,
        no_data: without_data,
        rows: matching
            .iter()
            .take(ROW_LIMIT)
            .map(|r| SupervisorRow {
                id: r.conversation_id.clone(),
                state: r.state,
                closed_from: (r.state == AuthStateName::Closed).then_some(r.auth_state),
                reason_code: r.reason,
                operator_id: r.operator_id,
                channel: r.channel.clone(),
                user_id: r.user_id.clone(),
                opened_at_ms: r.opened_ms,
                closed_at_ms: r.closed_ms,
                secured_at_ms: r.first_verified_ms,
                no_data: r.first_verified_ms.is_none() && no_data.contains(&r.conversation_id),
            })
            .collect(),
        per_day: days
            .into_iter()
            .map(|(day, (conversations, secured, no_data))| DayShare {
                day,
                conversations,
                secured,
                no_data,
            })
            .collect(),
        failures_by_reason,
        per_advisor,
        no_advisor,
        choices: FilterChoices {
            states: AuthStateName::ALL
                .into_iter()
                .filter(|s| choices_states.contains(s.code()))
                .collect(),
            reasons: reasons.into_iter().collect(),
            operator_ids: operators.into_iter().collect(),
            channels: channels.into_iter().collect(),
        },
    }
}

fn internal(msg: String) -> IpcError {
    IpcError::new(IpcErrorCode::Internal, msg)
}

/// The desk's store in `dir`, read-only through the desk crate's reader (it must exist).
fn open_store(dir: &Path) -> Result<dc::DeskReader, IpcError> {
    dc::DeskReader::open_in(dir).map_err(|e| internal(e.to_string()))
}

/// The conversations of `dir`'s desk store without verification data
/// ([`dc::DeskReader::without_verification_data`]: created by the backfill, never assigned,
/// never presented a token, never secured). The charts show them as "no data" rather than as 0%
/// secured. Read incrementally: an overview does not scan the whole audit log each time.
pub fn conversations_without_verification_data(dir: &Path) -> Result<HashSet<String>, IpcError> {
    let reader = open_store(dir)?;
    reader
        .without_verification_data()
        .map_err(|e| internal(format!("reading {}: {e}", reader.path().display())))
}

/// Verifies the whole audit chain in `dir`'s desk store and checks the desk's tables against
/// it (what `lockdesk-cli audit verify` does). A broken chain or a disagreeing store is a
/// status (`ok: false`, the first bad entry or the rows named), not an error; an unreadable
/// file is an error. `lifetime_secs`: the configured session lifetime (0: each conversation's
/// own).
pub fn audit_status(dir: &Path) -> Result<AuditStatus, IpcError> {
    audit_check(dir, 0, 0).map(|(status, _)| status)
}

/// [`audit_status`], with the [`crate::StoreIntegrity`] the list shows (checked at `now_ms`).
pub fn audit_check(
    dir: &Path,
    lifetime_secs: i64,
    now_ms: i64,
) -> Result<(AuditStatus, crate::StoreIntegrity), IpcError> {
    let reader = open_store(dir)?;
    let file = reader.path().display().to_string();
    let check = reader.check_against_audit(lifetime_secs, &mut |_| {});
    let integrity = crate::StoreIntegrity::of(&check, now_ms);
    let status = match check {
        Ok(c) => {
            let report = &c.chain;
            AuditStatus {
                ok: c.agrees(),
                entries: report.entries,
                head_seq: report.head.as_ref().map(|h| h.seq),
                head_hash: report.head.as_ref().map(|h| h.hash_hex.clone()),
                broken_at: None,
                problem: None,
                file,
                store_problem_count: c.disagreement_count,
                store_problems: integrity.problems.clone(),
            }
        }
        Err(lockdesk_desk::CheckError::Chain(VerifyError::Broken(b))) => {
            // The stored head, for the record (it is what the file claims, not a verified one).
            let head = reader.audit_head().ok().flatten();
            AuditStatus {
                ok: false,
                entries: 0,
                head_seq: head.as_ref().map(|h| h.seq),
                head_hash: head.map(|h| h.hash_hex),
                broken_at: Some(b.seq),
                problem: Some(b.problem),
                file,
                store_problem_count: 0,
                store_problems: Vec::new(),
            }
        }
        Err(e) => return Err(internal(format!("audit log in {file}: {e}"))),
    };
    Ok((status, integrity))
}

/// `audit-2026-03-01T10-20-30Z[-redacted].csv` for an export taken at `now_ms`.
pub fn export_file_name(now_ms: i64, format: ExportFormat, redact: bool) -> String {
    let stamp = audit_export::rfc3339(now_ms);
    // "2026-03-01T10:20:30.123Z" -> "2026-03-01T10-20-30Z"
    let stamp: String = match stamp.split_once('.') {
        Some((whole, _)) => format!("{whole}Z"),
        None => stamp,
    }
    .replace(':', "-");
    let ext = match format {
        ExportFormat::Csv => "csv",
        ExportFormat::Jsonl => "jsonl",
    };
    let red = if redact { "-redacted" } else { "" };
    format!("audit-{stamp}{red}.{ext}")
}

/// The first line of a CSV export of a broken chain (before the column names): a `#` comment,
/// which spreadsheets show as the first row and `csv` readers can skip (`comment(Some(b'#'))`).
fn csv_verdict(b: &lockdesk_audit::Broken) -> String {
    format!(
        "# AUDIT CHAIN BROKEN at entry {seq}: {problem}. Entries from {seq} on are not proven \
         by the chain; exported on the user's confirmation.\n",
        seq = b.seq,
        problem = audit_export::csv_cell(&b.problem).trim_start_matches('\''),
    )
}

/// The `chain` member added to a JSON Lines export's header when the chain is broken
/// (`audit verify --export` ignores members it does not know, and reports the break itself).
fn jsonl_verdict(b: &lockdesk_audit::Broken) -> String {
    serde_json::json!({"verdict": "broken", "broken_at": b.seq, "problem": b.problem}).to_string()
}

/// Passes bytes through, except that the first line (the JSON Lines header object) gets
/// `"chain": <verdict>` as its last member.
struct HeaderVerdict<W: Write> {
    inner: W,
    verdict: String,
    /// The header so far; `None` once written.
    header: Option<Vec<u8>>,
}

impl<W: Write> Write for HeaderVerdict<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let Some(head) = self.header.as_mut() else {
            return self.inner.write(buf);
        };
        let Some(nl) = buf.iter().position(|&b| b == b'\n') else {
            head.extend_from_slice(buf);
            return Ok(buf.len());
        };
        head.extend_from_slice(&buf[..nl]);
        let mut line = self.header.take().unwrap_or_default();
        if line.last() != Some(&b'}') {
            return Err(std::io::Error::other(
                "the export header is not a JSON object",
            ));
        }
        line.pop();
        line.extend_from_slice(b",\"chain\":");
        line.extend_from_slice(self.verdict.as_bytes());
        line.extend_from_slice(b"}\n");
        self.inner.write_all(&line)?;
        // The rest of this buffer is passed on by the caller's next `write`.
        Ok(nl + 1)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Writes the whole audit log of `dir`'s store to a new file in `dir/exports/` (redacted with
/// the key `lockdesk-cli audit export --redact` uses: `dir/audit-redaction.key`, created if
/// missing). The chain is verified first, in the same read transaction as the export: an intact
/// chain gives the same bytes `lockdesk-cli audit export --data dir` writes. A broken chain is
/// refused ([`IpcErrorCode::AuditBroken`], nothing written) unless `confirm_broken`; then the
/// file states the verdict (CSV: a `# AUDIT CHAIN BROKEN at entry N: ...` first line; JSON
/// Lines: a `chain` member in the header) and the result carries `broken_at`.
pub fn export_audit(
    dir: &Path,
    format: ExportFormat,
    redact: bool,
    confirm_broken: bool,
    now_ms: i64,
) -> Result<ExportResult, IpcError> {
    let reader = open_store(dir)?;
    let store = reader.path().display().to_string();
    // One snapshot for the verification and the export (the desk may append meanwhile).
    let _snapshot = reader
        .snapshot()
        .map_err(|e| internal(format!("reading {store}: {e}")))?;
    let broken = match reader.verify_audit() {
        Ok(_) => None,
        Err(VerifyError::Broken(b)) => Some(b),
        Err(e) => return Err(internal(format!("audit log in {store}: {e}"))),
    };
    if let (Some(b), false) = (&broken, confirm_broken) {
        return Err(IpcError::new(
            IpcErrorCode::AuditBroken,
            format!(
                "the audit log is broken at entry {}: {}; nothing was exported",
                b.seq, b.problem
            ),
        ));
    }
    let redact_key = if redact {
        let key_path = dir.join(audit_export::REDACTION_KEY_FILE);
        Some(RedactKey::load_or_create(&key_path).map_err(|e| internal(e.to_string()))?)
    } else {
        None
    };
    let out_dir = dir.join(EXPORTS_DIR);
    // Exports hold personal data: the folder is owner-only (0700), each file 0600.
    lockdesk_config::create_private_dir(&out_dir)
        .map_err(|e| internal(format!("cannot create {}: {e}", out_dir.display())))?;
    let base = export_file_name(now_ms, format, redact);
    let mut path = out_dir.join(&base);
    let mut n = 1;
    while path.exists() {
        n += 1;
        let (stem, ext) = base.rsplit_once('.').unwrap_or((&base, ""));
        path = out_dir.join(format!("{stem}-{n}.{ext}"));
    }
    let opts = ExportOptions {
        redact: redact_key,
        ..ExportOptions::default()
    };
    let fmt = match format {
        ExportFormat::Csv => Format::Csv,
        ExportFormat::Jsonl => Format::Jsonl,
    };
    // The one export-to-file rule (`lockdesk_audit::file`, also the CLI's): a temporary file
    // beside the target, synced, then renamed; never a partial file.
    let written = lockdesk_audit::file::write_file(&path, |w| {
        let mut spliced;
        let sink: &mut dyn Write = match (&broken, format) {
            (None, _) => w,
            (Some(b), ExportFormat::Csv) => {
                w.write_all(csv_verdict(b).as_bytes())?;
                w
            }
            (Some(b), ExportFormat::Jsonl) => {
                spliced = HeaderVerdict {
                    inner: w,
                    verdict: jsonl_verdict(b),
                    header: Some(Vec::new()),
                };
                &mut spliced
            }
        };
        reader.export_audit(sink, fmt, &opts, &mut |_| {})
    })
    .map_err(|e| internal(format!("{}: {e}", path.display())));
    let summary = written?;
    Ok(ExportResult {
        path: path.display().to_string(),
        entries: summary.entries,
        redacted: redact,
        head_seq: summary.head.as_ref().map(|h| h.seq),
        head_hash: summary.head.map(|h| h.hash_hex),
        broken_at: broken.map(|b| b.seq),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::VisitorSource;
    use rusqlite::Connection;
    use std::path::PathBuf;

    fn op(n: u64) -> Option<OperatorId> {
        OperatorId::new(n)
    }

    #[test]
    fn the_advisor_is_an_operator_id_on_the_wire() {
        let f: SupervisorFilters =
            serde_json::from_value(serde_json::json!({"operatorId": 9})).unwrap();
        assert_eq!(f.operator_id, op(9));
        // From the window (hostile like any input): only an id the store can hold.
        for bad in [
            serde_json::json!(-1),
            serde_json::json!(1.5),
            serde_json::json!("9"),
            serde_json::json!(u64::MAX),
        ] {
            let got = serde_json::from_value::<SupervisorFilters>(
                serde_json::json!({"operatorId": bad.clone()}),
            );
            assert!(got.is_err(), "{bad} accepted as an operator id");
        }
        // Out: a JSON number, as the bindings say.
        let o = overview(
            &[conv(
                "a",
                AuthStateName::Secured,
                AuthStateName::Secured,
                T0,
            )],
            &HashSet::new(),
            &SupervisorFilters::default(),
        );
        let v = serde_json::to_value(&o).unwrap();
        assert_eq!(v["rows"][0]["operatorId"], serde_json::json!(7));
        assert_eq!(v["choices"]["operatorIds"], serde_json::json!([7]));
        assert_eq!(v["perAdvisor"][0]["operatorId"], serde_json::json!(7));
    }

    fn conv(
        id: &str,
        state: AuthStateName,
        kept: AuthStateName,
        opened: i64,
    ) -> dc::ConversationRow {
        dc::ConversationRow {
            conversation_id: id.into(),
            visitor_id: format!("v-{id}"),
            channel: "CHAT".into(),
            operator_id: op(7),
            state,
            auth_state: kept,
            reason: None,
            user_id: None,
            other_user_id: None,
            name: None,
            source: Some(VisitorSource::Web),
            domain: None,
            device: None,
            app: None,
            opened_ms: Some(opened),
            closed_ms: None,
            since_ms: None,
            until_ms: None,
            last_verified_ms: None,
            first_verified_ms: None,
            platform_user_id: None,
            look_alike: None,
        }
    }

    const DAY: i64 = 86_400_000;
    // 2026-03-01T00:00:00Z
    const T0: i64 = 1_772_323_200_000;

    fn sample() -> Vec<dc::ConversationRow> {
        let mut a = conv(
            "a",
            AuthStateName::Secured,
            AuthStateName::Secured,
            T0 + 1000,
        );
        a.first_verified_ms = Some(T0 + 2000);
        a.user_id = Some("u-1".into());
        let mut b = conv("b", AuthStateName::Failed, AuthStateName::Failed, T0 + 3000);
        b.reason = Some(ReasonCode::Expired);
        let mut c = conv(
            "c",
            AuthStateName::Closed,
            AuthStateName::Failed,
            T0 + DAY + 10,
        );
        c.reason = Some(ReasonCode::BadSignature);
        c.operator_id = op(9);
        c.closed_ms = Some(T0 + DAY + 500);
        let mut d = conv(
            "d",
            AuthStateName::Unsupported,
            AuthStateName::Unsupported,
            T0 + DAY + 20,
        );
        d.channel = "WHATSAPP".into();
        d.operator_id = None;
        let mut e = conv(
            "e",
            AuthStateName::Closed,
            AuthStateName::Secured,
            T0 + DAY + 30,
        );
        e.first_verified_ms = Some(T0 + DAY + 40);
        e.closed_ms = Some(T0 + DAY + 900);
        vec![a, b, c, d, e]
    }

    #[test]
    fn civil_dates_match_known_days() {
        assert_eq!(civil_date(0), "1970-01-01");
        assert_eq!(civil_date(-1), "1969-12-31");
        assert_eq!(civil_date(T0 / DAY), "2026-03-01");
        assert_eq!(civil_date(T0 / DAY - 1), "2026-02-28");
        // 2024 is a leap year.
        assert_eq!(day_of(1_709_164_800_000, 0), "2024-02-29");
        // One minute before midnight UTC is already the next day two hours east.
        assert_eq!(day_of(T0 - 60_000, 0), "2026-02-28");
        assert_eq!(day_of(T0 - 60_000, 120), "2026-03-01");
        assert_eq!(day_of(T0 + 60_000, -60), "2026-02-28");
    }

    #[test]
    fn no_filter_aggregates_every_conversation() {
        let o = overview(&sample(), &HashSet::new(), &SupervisorFilters::default());
        assert_eq!((o.total, o.matched, o.secured, o.failed), (5, 5, 2, 2));
        // Newest first.
        let ids: Vec<_> = o.rows.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["e", "d", "c", "b", "a"]);
        assert_eq!(o.rows[2].closed_from, Some(AuthStateName::Failed));
        assert_eq!(o.rows[4].secured_at_ms, Some(T0 + 2000));
        assert_eq!(
            o.per_day,
            vec![
                DayShare {
                    day: "2026-03-01".into(),
                    conversations: 2,
                    secured: 1,
                    no_data: 0
                },
                DayShare {
                    day: "2026-03-02".into(),
                    conversations: 3,
                    secured: 1,
                    no_data: 0
                },
            ]
        );
        let mut reasons: Vec<_> = o
            .failures_by_reason
            .iter()
            .map(|r| (r.reason, r.conversations))
            .collect();
        reasons.sort();
        assert_eq!(
            reasons,
            [
                (Some(ReasonCode::BadSignature), 1),
                (Some(ReasonCode::Expired), 1)
            ]
        );
        assert_eq!(
            o.per_advisor[0],
            AdvisorCount {
                operator_id: op(7),
                conversations: 3,
                secured: 2,
                failed: 1,
                no_data: 0
            }
        );
        // #7 and #9; the conversation without advisor is its own bucket, not an advisor.
        assert_eq!(o.per_advisor.len(), 2);
        assert!(o.per_advisor.iter().all(|a| a.operator_id.is_some()));
        assert_eq!(
            o.no_advisor,
            Some(AdvisorCount {
                operator_id: None,
                conversations: 1,
                secured: 0,
                failed: 0,
                no_data: 0
            })
        );
        assert_eq!(o.choices.channels, ["CHAT", "WHATSAPP"]);
        assert_eq!(o.choices.operator_ids, [op(7).unwrap(), op(9).unwrap()]);
        assert_eq!(
            o.choices.reasons,
            [ReasonCode::BadSignature, ReasonCode::Expired]
        );
        assert_eq!(
            o.choices.states,
            [
                AuthStateName::Secured,
                AuthStateName::Failed,
                AuthStateName::Unsupported,
                AuthStateName::Closed
            ]
        );
    }

    #[test]
    fn each_filter_narrows_and_choices_stay_complete() {
        let rows = sample();
        let ids = |f: SupervisorFilters| -> Vec<String> {
            let o = overview(&rows, &HashSet::new(), &f);
            assert_eq!(o.choices.channels.len(), 2, "choices come from every row");
            o.rows.into_iter().map(|r| r.id).collect()
        };
        // A closed conversation matches the state it kept.
        assert_eq!(
            ids(SupervisorFilters {
                state: Some(AuthStateName::Failed),
                ..Default::default()
            }),
            ["c", "b"]
        );
        assert_eq!(
            ids(SupervisorFilters {
                reason: Some(ReasonCode::Expired),
                ..Default::default()
            }),
            ["b"]
        );
        assert_eq!(
            ids(SupervisorFilters {
                operator_id: op(9),
                ..Default::default()
            }),
            ["c"]
        );
        assert_eq!(
            ids(SupervisorFilters {
                channel: Some("WHATSAPP".into()),
                ..Default::default()
            }),
            ["d"]
        );
        assert_eq!(
            ids(SupervisorFilters {
                from_ms: Some(T0 + DAY),
                to_ms: Some(T0 + DAY + 25),
                ..Default::default()
            }),
            ["d", "c"]
        );
        let o = overview(
            &rows,
            &HashSet::new(),
            &SupervisorFilters {
                state: Some(AuthStateName::Secured),
                ..Default::default()
            },
        );
        assert_eq!((o.matched, o.secured, o.failed), (2, 2, 0));
        assert!(o.failures_by_reason.is_empty());
    }

    #[test]
    fn an_empty_desk_gives_empty_aggregates() {
        let o = overview(&[], &HashSet::new(), &SupervisorFilters::default());
        assert_eq!(o, SupervisorOverview::default());
    }

    #[test]
    fn export_names_are_stamped_and_safe_for_any_file_system() {
        assert_eq!(
            export_file_name(T0 + 3_723_456, ExportFormat::Csv, true),
            "audit-2026-03-01T01-02-03Z-redacted.csv"
        );
        assert_eq!(
            export_file_name(T0, ExportFormat::Jsonl, false),
            "audit-2026-03-01T00-00-00Z.jsonl"
        );
    }

    fn store_with_entries(dir: &Path, n: i64) {
        let mut conn = Connection::open(dir.join(lockdesk_audit::DEFAULT_FILE_NAME)).unwrap();
        lockdesk_audit::migrate(&conn).unwrap();
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .unwrap();
        for i in 0..n {
            lockdesk_audit::append(
                &tx,
                &lockdesk_audit::Record {
                    at_ms: T0 + i,
                    kind: lockdesk_audit::Kind::Verdict,
                    conversation_id: Some(format!("conv-{i}")),
                    visitor_id: Some("visitor-9".into()),
                    user_id: Some("user-42".into()),
                    operator_id: Some(7),
                    data: serde_json::json!({
                        "verdict": "verified", "reason": null,
                        "visitorData": {"email": "secret@b.example"}
                    }),
                },
            )
            .unwrap();
        }
        tx.commit().unwrap();
    }

    #[test]
    fn audit_status_is_ok_then_names_the_edited_entry() {
        let dir = tempfile::tempdir().unwrap();
        assert!(audit_status(dir.path())
            .unwrap_err()
            .message
            .contains("no desk store"));
        store_with_entries(dir.path(), 5);
        let st = audit_status(dir.path()).unwrap();
        assert!(st.ok);
        assert_eq!(st.entries, 5);
        assert_eq!(st.head_seq, Some(5));
        assert_eq!(st.head_hash.as_deref().map(str::len), Some(64));
        assert_eq!((st.broken_at, st.problem), (None, None));

        // Edit entry 3 by hand, as a tamperer would.
        let conn = Connection::open(dir.path().join(lockdesk_audit::DEFAULT_FILE_NAME)).unwrap();
        let changed = conn
            .execute(
                "UPDATE audit_log SET conversation_id = 'conv-x' WHERE seq = 3",
                [],
            )
            .unwrap();
        assert_eq!(changed, 1);
        let st = audit_status(dir.path()).unwrap();
        assert!(!st.ok);
        assert_eq!(st.broken_at, Some(3));
        assert!(st.problem.is_some());
        assert_eq!(st.head_seq, Some(5));
    }

    #[test]
    fn export_writes_a_redacted_file_in_exports_that_reverifies() {
        let dir = tempfile::tempdir().unwrap();
        store_with_entries(dir.path(), 3);
        let r = export_audit(dir.path(), ExportFormat::Jsonl, true, false, T0).unwrap();
        assert_eq!(r.entries, 3);
        assert!(r.redacted);
        let path = PathBuf::from(&r.path);
        assert_eq!(path.parent(), Some(dir.path().join(EXPORTS_DIR).as_path()));
        // Personal data: owner-only, whatever the umask.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&path), 0o600);
            assert_eq!(mode(&dir.path().join(EXPORTS_DIR)), 0o700);
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("user-42") && !text.contains("secret@b.example"));
        assert!(dir.path().join(audit_export::REDACTION_KEY_FILE).is_file());
        let report =
            audit_export::verify_export(&mut std::io::BufReader::new(text.as_bytes())).unwrap();
        assert_eq!(report.entries, 3);
        assert!(report.redacted);

        // Same second again: a new file, never an overwrite; not redacted keeps the data.
        let r2 = export_audit(dir.path(), ExportFormat::Jsonl, false, false, T0).unwrap();
        assert_ne!(r2.path, r.path);
        assert!(std::fs::read_to_string(&r2.path)
            .unwrap()
            .contains("user-42"));
        let csv = export_audit(dir.path(), ExportFormat::Csv, true, false, T0).unwrap();
        assert!(csv.path.ends_with(".csv"));
        // No leftover part files.
        let names: Vec<_> = std::fs::read_dir(dir.path().join(EXPORTS_DIR))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 3);
        assert!(names.iter().all(|n| !n.ends_with(".part")));
    }

    /// The window's CSV export is the same routine as `lockdesk-cli audit export`: a userId a
    /// spreadsheet would run as a formula gets a leading `'`, a bidi control shows as a marker.
    #[test]
    fn the_windows_csv_export_neutralises_formulas_and_shows_hazards() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn =
            Connection::open(dir.path().join(lockdesk_audit::DEFAULT_FILE_NAME)).unwrap();
        lockdesk_audit::migrate(&conn).unwrap();
        let tx = conn.transaction().unwrap();
        let users = ["=cmd|' /C calc'!A0", "+1", "-1", "@SUM(1+1)", "u\u{202e}1"];
        for (i, u) in users.iter().enumerate() {
            lockdesk_audit::append(
                &tx,
                &lockdesk_audit::Record {
                    at_ms: T0 + i as i64,
                    kind: lockdesk_audit::Kind::Verdict,
                    conversation_id: Some("c-1".into()),
                    visitor_id: Some("v-1".into()),
                    user_id: Some((*u).into()),
                    operator_id: Some(7),
                    data: serde_json::json!({"verdict": "verified"}),
                },
            )
            .unwrap();
        }
        tx.commit().unwrap();
        drop(conn);
        let r = export_audit(dir.path(), ExportFormat::Csv, false, false, T0).unwrap();
        let mut rd = csv::Reader::from_path(&r.path).unwrap();
        let col = rd
            .headers()
            .unwrap()
            .iter()
            .position(|h| h == "user_id")
            .unwrap();
        let cells: Vec<String> = rd.records().map(|r| r.unwrap()[col].to_owned()).collect();
        assert_eq!(
            cells,
            [
                "'=cmd|' /C calc'!A0",
                "'+1",
                "'-1",
                "'@SUM(1+1)",
                "u⟨U+202E⟩1"
            ]
        );
    }

    /// Back-filled conversations the desk never watched are "no data", not 0% secured: a day
    /// holding only them has no share, a mixed day counts only the others, and the unassigned
    /// bucket is apart from the advisors.
    #[test]
    fn back_filled_conversations_are_no_data_and_unassigned_ones_are_their_own_bucket() {
        let mut rows = sample();
        // Two days before the desk's history: the backfill's 3 anonymous closed conversations.
        let mut no_data = HashSet::new();
        for (i, id) in ["old-1", "old-2", "old-3"].into_iter().enumerate() {
            let mut r = conv(
                id,
                AuthStateName::Closed,
                AuthStateName::Anonymous,
                T0 - 2 * DAY + i as i64,
            );
            r.operator_id = None;
            r.closed_ms = Some(T0 - 2 * DAY + 100);
            rows.push(r);
            no_data.insert(id.to_owned());
        }
        // And one on the first live day.
        let mut mixed = conv(
            "old-4",
            AuthStateName::Closed,
            AuthStateName::Anonymous,
            T0 + 5,
        );
        mixed.operator_id = None;
        rows.push(mixed);
        no_data.insert("old-4".into());
        let o = overview(&rows, &no_data, &SupervisorFilters::default());
        assert_eq!((o.matched, o.secured, o.no_data), (9, 2, 4));
        // Each such row says so itself (the table words it "no verification data", not
        // "was anonymous"); the others do not.
        let blind: Vec<_> = o
            .rows
            .iter()
            .filter(|r| r.no_data)
            .map(|r| r.id.as_str())
            .collect();
        assert_eq!(blind.len(), 4);
        assert!(["old-1", "old-2", "old-3", "old-4"]
            .iter()
            .all(|id| blind.contains(id)));
        assert_eq!(
            o.per_day[0],
            DayShare {
                day: "2026-02-27".into(),
                conversations: 3,
                secured: 0,
                no_data: 3
            }
        );
        // 2026-03-01: a (secured), b, and the back-filled one: 1 secured of 2 with data.
        assert_eq!(
            o.per_day[1],
            DayShare {
                day: "2026-03-01".into(),
                conversations: 3,
                secured: 1,
                no_data: 1
            }
        );
        assert!(o.per_advisor.iter().all(|a| a.operator_id.is_some()));
        assert_eq!(
            o.no_advisor,
            Some(AdvisorCount {
                operator_id: None,
                conversations: 5,
                secured: 0,
                failed: 0,
                no_data: 4
            })
        );
        // A secured conversation is never "no data", whatever the set says.
        let o = overview(
            &rows,
            &HashSet::from(["a".to_owned()]),
            &SupervisorFilters::default(),
        );
        assert_eq!(o.no_data, 0);
        assert!(o.rows.iter().all(|r| !r.no_data));
    }

    /// The query on a real desk store: a conversation created by the backfill is without data;
    /// one the desk watched live (pushed to an advisor) and then closed by the backfill is not.
    #[test]
    fn the_store_names_the_conversations_known_only_from_the_backfill() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(lockdesk_audit::DEFAULT_FILE_NAME);
        let mut desk = dc::Desk::open(
            &path,
            std::sync::Arc::new(
                lockdesk_keys::Engine::load(&lockdesk_keys::Setup::default()).unwrap(),
            ),
            dc::DeskConfig::default(),
        )
        .unwrap();
        // The entry as the feed sends it.
        let pushed: lockdesk_feed::Entry = serde_json::from_value(serde_json::json!({
            "seq": 1, "kind": "webhook", "receivedAtMs": T0,
            "eventType": "v2.conversation.pushed",
            "payload": {"eventType": "v2.conversation.pushed", "conversationId": "live",
                "visitorId": "v-live", "channel": "CHAT", "operatorId": 7},
        }))
        .unwrap();
        desk.apply(&[pushed], T0).unwrap();
        let closed = |id: &str, at: i64| dc::ClosedConversation {
            conversation_id: id.into(),
            visitor_id: format!("v-{id}"),
            channel: "CHAT".into(),
            created_at_ms: at,
            closed_at_ms: at + 1000,
            external_user_id: None,
        };
        desk.backfill(&[closed("old", T0 - 3 * DAY), closed("live", T0)], T0 + DAY)
            .unwrap();
        drop(desk);
        let ids = conversations_without_verification_data(dir.path()).unwrap();
        assert_eq!(ids, HashSet::from(["old".to_owned()]));
    }

    /// A broken chain: no file without confirmation; with it, the file states the verdict in
    /// both formats, and a JSON Lines export still re-verifies up to the same broken entry.
    #[test]
    fn a_broken_chain_is_exported_only_on_confirmation_and_the_file_says_so() {
        let dir = tempfile::tempdir().unwrap();
        store_with_entries(dir.path(), 5);
        let conn = Connection::open(dir.path().join(lockdesk_audit::DEFAULT_FILE_NAME)).unwrap();
        conn.execute(
            "UPDATE audit_log SET conversation_id = 'conv-x' WHERE seq = 3",
            [],
        )
        .unwrap();
        drop(conn);

        let err = export_audit(dir.path(), ExportFormat::Csv, true, false, T0).unwrap_err();
        assert_eq!(err.code, IpcErrorCode::AuditBroken);
        assert!(
            err.message
                .starts_with("the audit log is broken at entry 3: "),
            "{}",
            err.message
        );
        let exports = dir.path().join(EXPORTS_DIR);
        let files = || -> usize { std::fs::read_dir(&exports).map(|d| d.count()).unwrap_or(0) };
        assert_eq!(files(), 0, "nothing written without confirmation");

        let r = export_audit(dir.path(), ExportFormat::Csv, true, true, T0).unwrap();
        assert_eq!((r.broken_at, r.entries), (Some(3), 5));
        let text = std::fs::read_to_string(&r.path).unwrap();
        let first = text.lines().next().unwrap();
        assert!(
            first.starts_with("# AUDIT CHAIN BROKEN at entry 3: "),
            "{first}"
        );
        assert!(text.lines().nth(1).unwrap().starts_with("seq,"));
        // A CSV reader told about comments reads the entries as usual.
        let mut rd = csv::ReaderBuilder::new()
            .comment(Some(b'#'))
            .from_reader(text.as_bytes());
        assert_eq!(rd.records().count(), 5);

        let r = export_audit(dir.path(), ExportFormat::Jsonl, false, true, T0).unwrap();
        assert_eq!(r.broken_at, Some(3));
        let text = std::fs::read_to_string(&r.path).unwrap();
        let header: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(header["type"], "header");
        assert_eq!(header["chain"]["verdict"], "broken");
        assert_eq!(header["chain"]["broken_at"], 3);
        assert!(header["chain"]["problem"].as_str().unwrap().len() > 5);
        match audit_export::verify_export(&mut std::io::BufReader::new(text.as_bytes())) {
            Err(audit_export::ExportCheckError::Broken(b)) => assert_eq!(b.seq, 3),
            other => panic!("expected the break at entry 3, got {other:?}"),
        }

        // An intact chain: no verdict line, no `chain` member, `broken_at: null`.
        let fresh = tempfile::tempdir().unwrap();
        store_with_entries(fresh.path(), 2);
        let r = export_audit(fresh.path(), ExportFormat::Jsonl, false, false, T0).unwrap();
        assert_eq!(r.broken_at, None);
        let text = std::fs::read_to_string(&r.path).unwrap();
        assert!(!text.contains("\"chain\""));
        let r = export_audit(fresh.path(), ExportFormat::Csv, false, false, T0).unwrap();
        assert!(std::fs::read_to_string(&r.path)
            .unwrap()
            .starts_with("seq,"));
    }
}
