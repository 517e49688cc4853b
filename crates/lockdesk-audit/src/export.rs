//! Exports (CSV for spreadsheets, JSON Lines for re-verification), redaction, and re-checking
//! an exported JSON Lines file.
//!
//! CSV is for people and spreadsheets: every cell holding text from outside (ids, userIds, the
//! `data` and `visitorData` JSON, the kind) goes through [`csv_cell`]: its hazardous characters
//! (controls, bidi, invisibles...) become visible `⟨U+XXXX⟩` markers and a cell a spreadsheet
//! would read as a formula (`=`, `+`, `-`, `@`, tab, CR...) gets a leading `'` (OWASP's CSV
//! injection rule); the csv writer then quotes as needed. So a CSV cell is not always the logged
//! value byte for byte, and a CSV export cannot be re-verified. JSON Lines is the exact, machine
//! format (values as logged, JSON's own escaping only) that [`verify_export`] re-checks.
//!
//! Both formats stream: one entry in memory at a time, whatever the log's size.
//!
//! JSON Lines layout: a `header` line (format, redaction, date filter, the anchor and the head
//! of the live chain the export was taken at), one `entry` line per entry (its chained fields,
//! commitment, prev_hash and hash, and the salt unless redacted), and an `end` line with the
//! count (a truncated file is detected). [`verify_export`] recomputes every entry's hash and the
//! links between consecutive entries; an unredacted, unfiltered export gets every check the live
//! verifier makes, and its last hash must be the header's head.
//!
//! Redaction: `visitorData` keeps its keys, every value becomes `"[redacted]"`; `user_id` and
//! `visitor_id` become `u-`/`v-` + 32 hex digits of HMAC-SHA256(key, "user\0" + id) (resp.
//! "visitor\0"), so one person maps to one pseudonym in every report made with the same key; the
//! salt is left out (with it, a guess of all personal fields could be confirmed against the
//! commitment). A redacted export's chain still re-verifies: hashes cover the commitment, not the
//! personal fields.

use std::borrow::Cow;
use std::io::{BufRead, Write};
use std::path::Path;

use hmac::{Hmac, Mac};
use rusqlite::Connection;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;
use sha2::Sha256;

use crate::chain::{self, Chained};
use crate::entry::{self, Entry};
use crate::store::{check_initialised, snapshot};
use crate::verify::{
    counts_from_value, counts_to_value, read_anchor, Anchor, Broken, Checker, VerifyError,
};
use crate::{AuditError, Head};

/// The `format` of an export's header line.
pub const EXPORT_FORMAT: &str = "lockdesk-audit-export";
pub const EXPORT_VERSION: u64 = 1;
/// What redacted values become.
pub const REDACTED: &str = "[redacted]";
/// The redaction key's file name in the data folder.
pub const REDACTION_KEY_FILE: &str = "audit-redaction.key";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Jsonl,
}

/// The key of the redaction pseudonyms (32 bytes). Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct RedactKey([u8; 32]);

impl std::fmt::Debug for RedactKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedactKey(..)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("redaction key file {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("redaction key file {path}: expected 64 hex digits (32 bytes)")]
    Malformed { path: String },
    #[error(transparent)]
    Random(#[from] AuditError),
}

impl RedactKey {
    pub fn from_bytes(b: [u8; 32]) -> RedactKey {
        RedactKey(b)
    }

    /// Read a key file (64 hex digits, surrounding whitespace ignored).
    pub fn load(path: &Path) -> Result<RedactKey, KeyError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let bytes = hex::decode(text.trim())
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok());
        bytes.map(RedactKey).ok_or_else(|| KeyError::Malformed {
            path: path.display().to_string(),
        })
    }

    /// Read the key file, or create it with a fresh random key (owner-only permissions).
    pub fn load_or_create(path: &Path) -> Result<RedactKey, KeyError> {
        if path.exists() {
            return RedactKey::load(path);
        }
        let key: [u8; 32] = crate::store::random_bytes()?;
        let io = |source| KeyError::Io {
            path: path.display().to_string(),
            source,
        };
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        match opts.open(path) {
            Ok(mut f) => {
                f.write_all(format!("{}\n", hex::encode(key)).as_bytes())
                    .and_then(|_| f.sync_all())
                    .map_err(io)?;
                Ok(RedactKey(key))
            }
            // Created by someone else meanwhile: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => RedactKey::load(path),
            Err(e) => Err(io(e)),
        }
    }

    /// `prefix` + 32 hex digits of HMAC-SHA256(key, domain || 0x00 || id).
    pub fn pseudonym(&self, prefix: &str, domain: &str, id: &str) -> String {
        // HMAC accepts keys of any length: this cannot fail.
        let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(&self.0) {
            Ok(m) => m,
            Err(_) => return format!("{prefix}{}", "0".repeat(32)),
        };
        mac.update(domain.as_bytes());
        mac.update(&[0]);
        mac.update(id.as_bytes());
        let tag = mac.finalize().into_bytes();
        format!("{prefix}{}", hex::encode(&tag[..16]))
    }

    pub fn user(&self, id: &str) -> String {
        self.pseudonym("u-", "user", id)
    }

    pub fn visitor(&self, id: &str) -> String {
        self.pseudonym("v-", "visitor", id)
    }
}

/// Every value of `visitorData` masked, keys kept (nested objects and arrays too).
pub fn mask(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), mask(v))).collect()),
        Value::Array(a) => Value::Array(a.iter().map(mask).collect()),
        Value::Null => Value::Null,
        _ => Value::String(REDACTED.into()),
    }
}

#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    /// Only entries with `at_ms >= from_ms`.
    pub from_ms: Option<i64>,
    /// Only entries with `at_ms <= to_ms`.
    pub to_ms: Option<i64>,
    /// Pseudonymise ids and mask visitorData with this key.
    pub redact: Option<RedactKey>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExportSummary {
    pub entries: u64,
    /// The live chain's head when the export was taken.
    pub head: Option<Head>,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] AuditError),
    #[error("writing the export: {0}")]
    Io(std::io::Error),
    #[error("writing the export: {0}")]
    Csv(csv::Error),
    #[error("entry {seq}: {what} (run `lockdesk-cli audit verify`)")]
    Unreadable { seq: u64, what: String },
    #[error("audit log: {0}")]
    Broken(#[from] Broken),
}

// Not `#[from]`: the message already includes the cause, so it is not also a `source` (anyhow
// would print it twice).
impl From<std::io::Error> for ExportError {
    fn from(e: std::io::Error) -> Self {
        ExportError::Io(e)
    }
}

impl From<csv::Error> for ExportError {
    fn from(e: csv::Error) -> Self {
        ExportError::Csv(e)
    }
}

impl From<rusqlite::Error> for ExportError {
    fn from(e: rusqlite::Error) -> Self {
        ExportError::Store(AuditError::Sqlite(e))
    }
}

impl From<VerifyError> for ExportError {
    fn from(e: VerifyError) -> Self {
        match e {
            VerifyError::Broken(b) => ExportError::Broken(b),
            VerifyError::Store(s) => ExportError::Store(s),
        }
    }
}

/// RFC 3339 (UTC, always three fraction digits) for `at_ms`: [`lockdesk_text::time::format_ms`]
/// (a time outside the years 1970 to 9999, which the desk never records, prints as the bound).
pub fn rfc3339(at_ms: i64) -> String {
    lockdesk_text::time::format_ms(at_ms)
}

/// An entry's personal fields as exported (borrowed, or pseudonymised/masked).
type Personal<'a> = (
    Option<Cow<'a, str>>,
    Option<Cow<'a, str>>,
    Option<Cow<'a, RawValue>>,
);

const FILTER: &str = "(?1 IS NULL OR +at_ms >= ?1) AND (?2 IS NULL OR +at_ms <= ?2)";

/// How many entries an export with these dates would hold (for a progress bar's length).
pub fn count(conn: &Connection, opts: &ExportOptions) -> Result<u64, ExportError> {
    check_initialised(conn)?;
    let n: i64 = conn.query_row(
        &format!("SELECT count(*) FROM audit_log WHERE {FILTER}"),
        rusqlite::params![opts.from_ms, opts.to_ms],
        |r| r.get(0),
    )?;
    Ok(u64::try_from(n).unwrap_or(0))
}

#[derive(Serialize)]
struct HeaderLine<'a> {
    #[serde(rename = "type")]
    ty: &'static str,
    format: &'static str,
    version: u64,
    redacted: bool,
    from_ms: Option<i64>,
    to_ms: Option<i64>,
    anchor: AnchorOut,
    head: &'a Option<Head>,
}

#[derive(Serialize, Deserialize)]
struct AnchorOut {
    start_seq: u64,
    prev_hash: String,
    purged_tombstones: Value,
}

#[derive(Serialize)]
struct EntryLine<'a> {
    #[serde(rename = "type")]
    ty: &'static str,
    seq: u64,
    at: String,
    at_ms: i64,
    kind: &'a str,
    conversation_id: Option<&'a str>,
    operator_id: Option<u64>,
    user_id: Option<Cow<'a, str>>,
    visitor_id: Option<Cow<'a, str>>,
    data: &'a RawValue,
    #[serde(rename = "visitorData")]
    visitor_data: Option<Cow<'a, RawValue>>,
    erased_by: Option<u64>,
    salt: Option<String>,
    commitment: String,
    prev_hash: String,
    hash: String,
}

#[derive(Serialize, Deserialize)]
struct EndLine {
    #[serde(rename = "type")]
    ty: String,
    entries: u64,
}

fn raw<'a>(seq: u64, name: &str, text: &'a str) -> Result<&'a RawValue, ExportError> {
    serde_json::from_str::<&RawValue>(text).map_err(|_| ExportError::Unreadable {
        seq,
        what: format!("{name} is not JSON"),
    })
}

/// A CSV cell for untrusted text: [`lockdesk_text::visible`], then [`lockdesk_text::csv_field`]
/// (see the module header). Cells we write ourselves (numbers, hashes, dates) need neither.
pub fn csv_cell(s: &str) -> Cow<'_, str> {
    match lockdesk_text::visible(s) {
        Cow::Borrowed(b) => lockdesk_text::csv_field(b),
        Cow::Owned(o) => Cow::Owned(lockdesk_text::csv_field(&o).into_owned()),
    }
}

/// Stream the entries selected by `opts` to `out`, in one read transaction; `progress` gets the
/// number of entries written every 4,096 entries and at the end.
pub fn export(
    conn: &Connection,
    out: &mut dyn Write,
    format: Format,
    opts: &ExportOptions,
    progress: &mut dyn FnMut(u64),
) -> Result<ExportSummary, ExportError> {
    check_initialised(conn)?;
    let _tx = snapshot(conn)?;
    let anchor = read_anchor(conn)?;
    let head = crate::store::head(conn)?;
    enum Sink<'w> {
        Csv(Box<csv::Writer<&'w mut dyn Write>>),
        Jsonl(&'w mut dyn Write),
    }
    let mut sink = match format {
        Format::Csv => {
            let mut w = csv::Writer::from_writer(out);
            w.write_record([
                "seq",
                "at",
                "at_ms",
                "kind",
                "conversation_id",
                "operator_id",
                "user_id",
                "visitor_id",
                "data",
                "visitorData",
                "erased_by",
                "commitment",
                "prev_hash",
                "hash",
            ])?;
            Sink::Csv(Box::new(w))
        }
        Format::Jsonl => {
            let header = HeaderLine {
                ty: "header",
                format: EXPORT_FORMAT,
                version: EXPORT_VERSION,
                redacted: opts.redact.is_some(),
                from_ms: opts.from_ms,
                to_ms: opts.to_ms,
                anchor: AnchorOut {
                    start_seq: anchor.start_seq,
                    prev_hash: hex::encode(anchor.prev_hash),
                    purged_tombstones: counts_to_value(&anchor.purged_tombstones),
                },
                head: &head,
            };
            serde_json::to_writer(&mut *out, &header).map_err(std::io::Error::from)?;
            out.write_all(b"\n")?;
            Sink::Jsonl(out)
        }
    };
    let mut stmt = conn.prepare(&format!(
        "SELECT {} FROM audit_log WHERE {FILTER} ORDER BY seq",
        entry::COLUMNS
    ))?;
    let mut rows = stmt.query(rusqlite::params![opts.from_ms, opts.to_ms])?;
    let mut n: u64 = 0;
    while let Some(row) = rows.next()? {
        let e = entry::read(row).map_err(|u| ExportError::Unreadable {
            seq: u.seq.unwrap_or(0),
            what: u.what,
        })?;
        let (user_id, visitor_id, visitor_data): Personal<'_> = match &opts.redact {
            None => (
                e.user_id.as_deref().map(Cow::Borrowed),
                e.visitor_id.as_deref().map(Cow::Borrowed),
                match &e.visitor_data {
                    Some(t) => Some(Cow::Borrowed(raw(e.seq, "visitorData", t)?)),
                    None => None,
                },
            ),
            Some(key) => (
                e.user_id.as_deref().map(|u| Cow::Owned(key.user(u))),
                e.visitor_id.as_deref().map(|v| Cow::Owned(key.visitor(v))),
                match &e.visitor_data {
                    Some(t) => {
                        let v: Value =
                            serde_json::from_str(t).map_err(|_| ExportError::Unreadable {
                                seq: e.seq,
                                what: "visitorData is not JSON".into(),
                            })?;
                        let masked = serde_json::value::to_raw_value(&mask(&v))
                            .map_err(std::io::Error::from)?;
                        Some(Cow::Owned(masked))
                    }
                    None => None,
                },
            ),
        };
        let data = raw(e.seq, "data", &e.data)?;
        match &mut sink {
            Sink::Csv(w) => {
                w.write_record([
                    e.seq.to_string().as_str(),
                    &rfc3339(e.at_ms),
                    &e.at_ms.to_string(),
                    &csv_cell(&e.kind),
                    &csv_cell(e.conversation_id.as_deref().unwrap_or("")),
                    &e.operator_id.map(|o| o.to_string()).unwrap_or_default(),
                    &csv_cell(user_id.as_deref().unwrap_or("")),
                    &csv_cell(visitor_id.as_deref().unwrap_or("")),
                    &csv_cell(data.get()),
                    &csv_cell(visitor_data.as_ref().map_or("", |v| v.get())),
                    &e.erased_by.map(|o| o.to_string()).unwrap_or_default(),
                    &hex::encode(e.commitment),
                    &hex::encode(e.prev_hash),
                    &hex::encode(e.hash),
                ])?;
            }
            Sink::Jsonl(out) => {
                let line = EntryLine {
                    ty: "entry",
                    seq: e.seq,
                    at: rfc3339(e.at_ms),
                    at_ms: e.at_ms,
                    kind: &e.kind,
                    conversation_id: e.conversation_id.as_deref(),
                    operator_id: e.operator_id,
                    user_id,
                    visitor_id,
                    data,
                    visitor_data,
                    erased_by: e.erased_by,
                    salt: if opts.redact.is_some() {
                        None
                    } else {
                        e.salt.as_ref().map(hex::encode)
                    },
                    commitment: hex::encode(e.commitment),
                    prev_hash: hex::encode(e.prev_hash),
                    hash: hex::encode(e.hash),
                };
                serde_json::to_writer(&mut *out, &line).map_err(std::io::Error::from)?;
                out.write_all(b"\n")?;
            }
        }
        n += 1;
        if n & 0xFFF == 0 {
            progress(n);
        }
    }
    match sink {
        Sink::Csv(mut w) => w.flush()?,
        Sink::Jsonl(out) => {
            serde_json::to_writer(
                &mut *out,
                &EndLine {
                    ty: "end".into(),
                    entries: n,
                },
            )
            .map_err(std::io::Error::from)?;
            out.write_all(b"\n")?;
            out.flush()?;
        }
    }
    progress(n);
    Ok(ExportSummary { entries: n, head })
}

// ---------------------------------------------------------------------------------------------
// Re-checking an export.

#[derive(Deserialize)]
struct HeaderIn {
    #[serde(rename = "type")]
    ty: String,
    format: String,
    version: u64,
    redacted: bool,
    from_ms: Option<i64>,
    to_ms: Option<i64>,
    anchor: AnchorOut,
    head: Option<Head>,
}

#[derive(Deserialize)]
struct EntryIn {
    #[serde(rename = "type")]
    ty: String,
    seq: u64,
    at_ms: i64,
    kind: String,
    conversation_id: Option<String>,
    operator_id: Option<u64>,
    user_id: Option<String>,
    visitor_id: Option<String>,
    data: Value,
    #[serde(rename = "visitorData")]
    visitor_data: Option<Value>,
    erased_by: Option<u64>,
    salt: Option<String>,
    commitment: String,
    prev_hash: String,
    hash: String,
}

/// What an exported file holds, once re-checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExportReport {
    pub entries: u64,
    pub redacted: bool,
    /// A date filter was applied (then only consecutive entries can be linked).
    pub filtered: bool,
    /// Runs of consecutive seqs (1 for an unfiltered export).
    pub segments: u64,
    /// The live chain's head when the export was taken.
    pub head_at_export: Option<Head>,
    /// The last exported entry.
    pub last: Option<Head>,
    /// Personal data checked against the commitments (unredacted exports).
    pub personal_data_checked: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportCheckError {
    #[error("the export is broken at {0}")]
    Broken(#[from] Broken),
    #[error("line {line}: {what}")]
    Format { line: u64, what: String },
    #[error("reading the export: {0}")]
    Io(#[from] std::io::Error),
}

fn hex32(s: &str) -> Option<[u8; 32]> {
    hex::decode(s).ok().and_then(|b| b.try_into().ok())
}

fn brk(seq: u64, problem: impl Into<String>) -> ExportCheckError {
    ExportCheckError::Broken(Broken {
        seq,
        problem: problem.into(),
    })
}

/// Re-check an exported JSON Lines file, streaming. See the module header.
pub fn verify_export(input: &mut dyn BufRead) -> Result<ExportReport, ExportCheckError> {
    let mut line = String::new();
    let mut line_no: u64 = 0;
    let fmt_err = |line: u64, what: String| ExportCheckError::Format { line, what };

    line_no += 1;
    if input.read_line(&mut line)? == 0 {
        return Err(fmt_err(1, "empty file".into()));
    }
    let header: HeaderIn = serde_json::from_str(&line)
        .map_err(|e| fmt_err(1, format!("not an export header: {e}")))?;
    if header.ty != "header" || header.format != EXPORT_FORMAT {
        return Err(fmt_err(1, format!("not a {EXPORT_FORMAT} file")));
    }
    if header.version != EXPORT_VERSION {
        return Err(fmt_err(
            1,
            format!("export version {} is not supported", header.version),
        ));
    }
    let anchor = Anchor {
        start_seq: header.anchor.start_seq,
        prev_hash: hex32(&header.anchor.prev_hash)
            .ok_or_else(|| fmt_err(1, "anchor prev_hash is not 32 hex bytes".into()))?,
        purged_tombstones: counts_from_value(&header.anchor.purged_tombstones)
            .ok_or_else(|| fmt_err(1, "anchor purged_tombstones is not a count map".into()))?,
    };
    if anchor.start_seq == 0 {
        return Err(fmt_err(1, "anchor start_seq is 0".into()));
    }
    let filtered = header.from_ms.is_some() || header.to_ms.is_some();
    let full = !filtered && !header.redacted;
    let mut checker = full.then(|| Checker::new(&anchor));
    let mut prev: Option<(u64, [u8; 32])> = None;
    let mut entries: u64 = 0;
    let mut segments: u64 = 0;
    let mut end: Option<u64> = None;
    loop {
        line.clear();
        if input.read_line(&mut line)? == 0 {
            break;
        }
        line_no += 1;
        if end.is_some() {
            return Err(fmt_err(line_no, "content after the end line".into()));
        }
        if line.trim().is_empty() {
            continue;
        }
        let v: Value =
            serde_json::from_str(&line).map_err(|e| fmt_err(line_no, format!("not JSON: {e}")))?;
        match v.get("type").and_then(Value::as_str) {
            Some("end") => {
                let e: EndLine = serde_json::from_value(v)
                    .map_err(|e| fmt_err(line_no, format!("bad end line: {e}")))?;
                end = Some(e.entries);
                continue;
            }
            Some("entry") => {}
            _ => return Err(fmt_err(line_no, "neither an entry nor the end line".into())),
        }
        let e: EntryIn =
            serde_json::from_value(v).map_err(|e| fmt_err(line_no, format!("bad entry: {e}")))?;
        debug_assert_eq!(e.ty, "entry");
        let bad = |what: &str| {
            fmt_err(
                line_no,
                format!("entry {}: {what} is not 32 hex bytes", e.seq),
            )
        };
        let entry =
            Entry {
                seq: e.seq,
                at_ms: e.at_ms,
                kind: e.kind.clone(),
                conversation_id: e.conversation_id.clone(),
                operator_id: e.operator_id,
                data: chain::canonical_json(&e.data),
                user_id: e.user_id.clone(),
                visitor_id: e.visitor_id.clone(),
                visitor_data: e.visitor_data.as_ref().map(chain::canonical_json),
                salt: match &e.salt {
                    Some(s) => Some(hex::decode(s).map_err(|_| {
                        fmt_err(line_no, format!("entry {}: salt is not hex", e.seq))
                    })?),
                    None => None,
                },
                commitment: hex32(&e.commitment).ok_or_else(|| bad("commitment"))?,
                prev_hash: hex32(&e.prev_hash).ok_or_else(|| bad("prev_hash"))?,
                hash: hex32(&e.hash).ok_or_else(|| bad("hash"))?,
                erased_by: e.erased_by,
            };
        match &mut checker {
            Some(c) => c.check(&entry).map_err(|err| match err {
                VerifyError::Broken(b) => ExportCheckError::Broken(b),
                VerifyError::Store(s) => fmt_err(line_no, s.to_string()),
            })?,
            None => light_check(&entry, header.redacted, prev, filtered)?,
        }
        match prev {
            Some((p, _)) if entry.seq == p + 1 => {}
            _ => segments += 1,
        }
        prev = Some((entry.seq, entry.hash));
        entries += 1;
    }
    let Some(claimed) = end else {
        return Err(fmt_err(
            line_no,
            "no end line: the export is truncated".into(),
        ));
    };
    if claimed != entries {
        return Err(fmt_err(
            line_no,
            format!("the end line counts {claimed} entries, the file holds {entries}"),
        ));
    }
    if let Some(c) = checker {
        c.finish(&anchor).map_err(|err| match err {
            VerifyError::Broken(b) => ExportCheckError::Broken(b),
            VerifyError::Store(s) => fmt_err(line_no, s.to_string()),
        })?;
    }
    let last = prev.map(|(seq, h)| Head {
        seq,
        hash_hex: hex::encode(h),
    });
    if !filtered && last != header.head {
        return Err(brk(
            last.as_ref().map_or(anchor.start_seq, |l| l.seq),
            format!(
                "the export ends at {} but its header names the head {}",
                last.as_ref()
                    .map_or("nothing".into(), |l| format!("{} {}", l.seq, l.hash_hex)),
                header
                    .head
                    .as_ref()
                    .map_or("none".into(), |h| format!("{} {}", h.seq, h.hash_hex)),
            ),
        ));
    }
    Ok(ExportReport {
        entries,
        redacted: header.redacted,
        filtered,
        segments,
        head_at_export: header.head,
        last,
        personal_data_checked: !header.redacted,
    })
}

/// Checks for redacted or date-filtered exports: each entry's own hash, its commitment when the
/// salt is there, and the link to the previous exported entry when their seqs are consecutive.
fn light_check(
    e: &Entry,
    redacted: bool,
    prev: Option<(u64, [u8; 32])>,
    filtered: bool,
) -> Result<(), ExportCheckError> {
    match prev {
        Some((p, _)) if e.seq <= p => return Err(brk(e.seq, format!("out of order after entry {p}"))),
        Some((p, h)) if e.seq == p + 1 && e.prev_hash != h => {
            return Err(brk(
                p,
                format!("entry {} does not chain to it: its hash was rewritten (edited) or an entry was replaced", e.seq),
            ))
        }
        Some((p, _)) if e.seq > p + 1 && !filtered => {
            return Err(brk(e.seq, format!("entries {} to {} are missing (deleted)", p + 1, e.seq - 1)))
        }
        _ => {}
    }
    let computed = chain::entry_hash(&Chained {
        seq: e.seq,
        prev_hash: &e.prev_hash,
        at_ms: e.at_ms,
        kind: &e.kind,
        conversation_id: e.conversation_id.as_deref(),
        operator_id: e.operator_id,
        data: &e.data,
        commitment: &e.commitment,
    });
    if computed != e.hash {
        return Err(brk(
            e.seq,
            "its hash does not match its fields (edited, inserted or moved)",
        ));
    }
    if !redacted {
        if let Some(c) = e.computed_commitment() {
            if c != e.commitment {
                return Err(brk(
                    e.seq,
                    "its personal data (userId, visitorId, visitorData) was edited",
                ));
            }
        }
    }
    Ok(())
}

/// Whether the live log agrees with an export's head: the entry at the export's head seq still
/// has that hash (`Ok(true)`), or was purged since (`Ok(false)`). A different hash means the
/// export or the live log was altered.
pub fn check_head_against_live(conn: &Connection, head: &Head) -> Result<bool, ExportError> {
    check_initialised(conn)?;
    let anchor = read_anchor(conn)?;
    if head.seq < anchor.start_seq {
        return Ok(false);
    }
    let seq = i64::try_from(head.seq).unwrap_or(i64::MAX);
    let hash: Option<Vec<u8>> = rusqlite::OptionalExtension::optional(conn.query_row(
        "SELECT hash FROM audit_log WHERE seq = ?1",
        [seq],
        |r| r.get(0),
    ))?;
    match hash {
        Some(h) if hex::encode(&h) == head.hash_hex => Ok(true),
        Some(h) => Err(ExportError::Broken(Broken {
            seq: head.seq,
            problem: format!(
                "the live log's hash {} differs from the export's {}: one of them was altered",
                hex::encode(h),
                head.hash_hex
            ),
        })),
        None => Err(ExportError::Broken(Broken {
            seq: head.seq,
            problem: "the export's head is not in the live log (entries deleted)".into(),
        })),
    }
}

/// A `--from`/`--to` date as Unix milliseconds: `YYYY-MM-DD` (UTC; the start of that day, or its
/// last millisecond when `end_of_day`) or an RFC 3339 timestamp (exactly that instant).
/// Within the years 1970 to 9999 ([`lockdesk_text::time::parse_date`]).
pub fn parse_date(s: &str, end_of_day: bool) -> Result<i64, String> {
    lockdesk_text::time::parse_date(s, end_of_day)
        .map_err(|e| format!("{:?}: {e}", lockdesk_text::visible(s.trim())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_parse_as_whole_days_or_instants() {
        assert_eq!(parse_date("1970-01-02", false), Ok(86_400_000));
        assert_eq!(parse_date("1970-01-02", true), Ok(2 * 86_400_000 - 1));
        assert_eq!(parse_date("1970-01-01T00:00:01.5Z", false), Ok(1_500));
        assert_eq!(parse_date("1970-01-01T02:00:00+02:00", true), Ok(0));
        assert!(parse_date("2026-13-01", false)
            .unwrap_err()
            .contains("YYYY-MM-DD"));
        assert!(parse_date("yesterday", false).is_err());
    }

    #[test]
    fn masking_keeps_keys_and_nulls() {
        let v = serde_json::json!({"a": 1, "b": {"c": "x", "d": null}, "e": [true]});
        assert_eq!(
            mask(&v),
            serde_json::json!({"a": REDACTED, "b": {"c": REDACTED, "d": null}, "e": [REDACTED]})
        );
    }
}
