//! Checking the whole chain, streaming (one entry in memory at a time, plus one counter per
//! erasure whose tombstones have been seen but not yet the erasure entry itself).

use std::collections::{BTreeMap, HashMap};

use rusqlite::{Connection, OptionalExtension};
use serde::Serialize;
use serde_json::Value;

use crate::entry::{self, Entry};
use crate::store::{check_initialised, snapshot};
use crate::{AuditError, Head, Kind};

/// A chain that verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Entries checked.
    pub entries: u64,
    /// The first entry kept (1 unless purged).
    pub first_seq: u64,
    /// `None` for an empty log.
    pub head: Option<Head>,
    /// Entries whose personal data was erased.
    pub tombstones: u64,
    /// Seqs below `first_seq` were purged (0: none).
    pub purged_through: u64,
}

/// The first entry at which the chain does not hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("entry {seq}: {problem}")]
pub struct Broken {
    /// The first bad entry's seq.
    pub seq: u64,
    pub problem: String,
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The chain does not hold (tampering, or a damaged file).
    #[error("the audit log is broken at {0}")]
    Broken(#[from] Broken),
    /// The file could not be read at all.
    #[error(transparent)]
    Store(#[from] AuditError),
}

impl From<rusqlite::Error> for VerifyError {
    fn from(e: rusqlite::Error) -> Self {
        VerifyError::Store(AuditError::Sqlite(e))
    }
}

fn broken(seq: u64, problem: impl Into<String>) -> VerifyError {
    VerifyError::Broken(Broken {
        seq,
        problem: problem.into(),
    })
}

/// Where the chain starts (after purges).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Anchor {
    pub start_seq: u64,
    pub prev_hash: [u8; 32],
    /// Erasure seq -> tombstones of that erasure purged since.
    pub purged_tombstones: BTreeMap<u64, u64>,
}

pub(crate) fn read_anchor(conn: &Connection) -> Result<Anchor, VerifyError> {
    let row: Option<(i64, Vec<u8>, String)> = conn
        .query_row(
            "SELECT start_seq, prev_hash, purged_tombstones FROM audit_anchor WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let Some((start, prev, purged)) = row else {
        return Err(broken(1, "the chain's anchor row is missing"));
    };
    let start_seq = u64::try_from(start)
        .ok()
        .filter(|s| *s >= 1)
        .ok_or_else(|| broken(1, format!("the anchor's start seq {start} is not positive")))?;
    let prev_hash: [u8; 32] = prev
        .try_into()
        .map_err(|_| broken(start_seq, "the anchor's hash is not 32 bytes"))?;
    let purged_tombstones = parse_counts(&purged).ok_or_else(|| {
        broken(
            start_seq,
            "the anchor's purged tombstone counts are not valid",
        )
    })?;
    Ok(Anchor {
        start_seq,
        prev_hash,
        purged_tombstones,
    })
}

/// `{"12": 3, ...}` as a map; `None` if it is anything else.
pub(crate) fn parse_counts(text: &str) -> Option<BTreeMap<u64, u64>> {
    let v: Value = serde_json::from_str(text).ok()?;
    counts_from_value(&v)
}

pub(crate) fn counts_from_value(v: &Value) -> Option<BTreeMap<u64, u64>> {
    let mut out = BTreeMap::new();
    for (k, n) in v.as_object()? {
        out.insert(k.parse().ok()?, n.as_u64()?);
    }
    Some(out)
}

pub(crate) fn counts_to_value(m: &BTreeMap<u64, u64>) -> Value {
    Value::Object(
        m.iter()
            .map(|(k, n)| (k.to_string(), Value::from(*n)))
            .collect(),
    )
}

/// Check the whole chain. See [`verify_with_progress`].
pub fn verify(conn: &Connection) -> Result<Report, VerifyError> {
    verify_with_progress(conn, &mut |_| {})
}

/// Check the whole chain, in one read transaction, calling `progress` with the number of
/// entries checked every 65,536 entries. Names the first bad entry on:
/// - a gap or an unexpected seq (an entry deleted or inserted);
/// - an entry whose stored hash does not match its fields (edited, or moved to another seq);
/// - an entry that does not chain to the one before (its predecessor's hash was rewritten, or
///   entries replaced);
/// - personal data that does not match its commitment;
/// - a tombstone that no erasure entry accounts for (personal data removed by hand), or an
///   erasure entry whose tombstone count does not match;
/// - an anchor (start after purges) that the latest purge entry does not vouch for.
pub fn verify_with_progress(
    conn: &Connection,
    progress: &mut dyn FnMut(u64),
) -> Result<Report, VerifyError> {
    verify_visiting(conn, progress, &mut |_| {})
}

/// [`verify_with_progress`], handing each entry to `visit` once it has passed every check on
/// it (in seq order, one at a time), so a caller can derive its own state from the chained
/// record in the same pass and the same read transaction (the desk checks its tables against
/// it: `lockdesk_desk::Desk::check_against_audit`). The chain's end checks (tombstone counts,
/// the anchor) run after the last entry: act on what `visit` saw only when this returns `Ok`.
pub fn verify_visiting(
    conn: &Connection,
    progress: &mut dyn FnMut(u64),
    visit: &mut dyn FnMut(&Entry),
) -> Result<Report, VerifyError> {
    check_initialised(conn)?;
    let _tx = snapshot(conn)?;
    let anchor = read_anchor(conn)?;
    let mut checker = Checker::new(&anchor);
    let mut stmt = conn.prepare(&format!(
        "SELECT {} FROM audit_log ORDER BY seq",
        entry::COLUMNS
    ))?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let e = entry::read(row).map_err(|u| {
            broken(
                u.seq.unwrap_or(checker.expected_seq),
                format!("unreadable: {}", u.what),
            )
        })?;
        checker.check(&e)?;
        visit(&e);
        if checker.entries & 0xFFFF == 0 {
            progress(checker.entries);
        }
    }
    progress(checker.entries);
    checker.finish(&anchor)
}

/// The streaming checks, shared with the export verifier's unfiltered case.
pub(crate) struct Checker {
    pub expected_seq: u64,
    prev_seq: u64,
    prev_hash: [u8; 32],
    pub entries: u64,
    tombstones: u64,
    /// Erasure seq -> (tombstones seen, first tombstone seq).
    pending: HashMap<u64, (u64, u64)>,
    purged_tombstones: BTreeMap<u64, u64>,
    last_purge: Option<(u64, Value)>,
    last_hash: Option<[u8; 32]>,
}

impl Checker {
    pub(crate) fn new(anchor: &Anchor) -> Checker {
        Checker {
            expected_seq: anchor.start_seq,
            prev_seq: anchor.start_seq - 1,
            prev_hash: anchor.prev_hash,
            entries: 0,
            tombstones: 0,
            pending: HashMap::new(),
            purged_tombstones: anchor.purged_tombstones.clone(),
            last_purge: None,
            last_hash: None,
        }
    }

    pub(crate) fn check(&mut self, e: &Entry) -> Result<(), VerifyError> {
        if e.seq != self.expected_seq {
            return Err(if e.seq > self.expected_seq {
                let missing = if e.seq - self.expected_seq == 1 {
                    format!("entry {} is missing", self.expected_seq)
                } else {
                    format!("entries {} to {} are missing", self.expected_seq, e.seq - 1)
                };
                broken(e.seq, format!("{missing} (deleted)"))
            } else {
                broken(
                    e.seq,
                    format!("unexpected seq (expected {})", self.expected_seq),
                )
            });
        }
        if e.computed_hash() != e.hash {
            return Err(broken(
                e.seq,
                "its stored hash does not match its fields (edited, inserted or moved)",
            ));
        }
        if e.prev_hash != self.prev_hash {
            return Err(if self.entries == 0 {
                broken(
                    e.seq,
                    "does not chain to the start of the log (entries before it replaced)",
                )
            } else {
                broken(
                    self.prev_seq,
                    format!(
                        "entry {} does not chain to it: its hash was rewritten (edited) or an entry was replaced",
                        e.seq
                    ),
                )
            });
        }
        match e.computed_commitment() {
            Some(c) if c != e.commitment => {
                return Err(broken(
                    e.seq,
                    "its personal data (userId, visitorId, visitorData) was edited",
                ))
            }
            Some(_) if e.erased_by.is_some() => {
                return Err(broken(e.seq, "marked erased but still salted"));
            }
            Some(_) => {}
            None => {
                if e.user_id.is_some() || e.visitor_id.is_some() || e.visitor_data.is_some() {
                    return Err(broken(
                        e.seq,
                        "a tombstone holds personal data that no commitment covers",
                    ));
                }
                let by = e
                    .erased_by
                    .filter(|by| *by > e.seq)
                    .ok_or_else(|| broken(e.seq, "personal data removed without an erasure"))?;
                let slot = self.pending.entry(by).or_insert((0, e.seq));
                slot.0 += 1;
                self.tombstones += 1;
            }
        }
        if e.kind == Kind::Erasure.as_str() {
            let data: Value = serde_json::from_str(&e.data)
                .map_err(|_| broken(e.seq, "erasure details are not JSON"))?;
            let claimed = data
                .get("erased_entries")
                .and_then(Value::as_u64)
                .ok_or_else(|| broken(e.seq, "erasure without an entry count"))?;
            let seen = self.pending.remove(&e.seq).map_or(0, |(n, _)| n);
            let purged = self.purged_tombstones.get(&e.seq).copied().unwrap_or(0);
            if seen + purged != claimed {
                return Err(broken(
                    e.seq,
                    format!(
                        "this erasure made {claimed} tombstones but {} are in the log{}",
                        seen + purged,
                        if purged > 0 {
                            format!(" ({purged} of them purged)")
                        } else {
                            String::new()
                        }
                    ),
                ));
            }
        } else if let Some((n, first)) = self.pending.remove(&e.seq) {
            return Err(broken(
                first,
                format!(
                    "tombstone claims erasure entry {} ({n} tombstones), which is a {:?} entry",
                    e.seq, e.kind
                ),
            ));
        }
        if e.kind == Kind::Purge.as_str() {
            let data: Value = serde_json::from_str(&e.data)
                .map_err(|_| broken(e.seq, "purge details are not JSON"))?;
            self.last_purge = Some((e.seq, data));
        }
        self.prev_seq = e.seq;
        self.prev_hash = e.hash;
        self.last_hash = Some(e.hash);
        self.expected_seq = e.seq + 1;
        self.entries += 1;
        Ok(())
    }

    pub(crate) fn finish(self, anchor: &Anchor) -> Result<Report, VerifyError> {
        if let Some((n, first)) = self.pending.values().min_by_key(|(_, first)| *first) {
            return Err(broken(
                *first,
                format!(
                    "personal data removed ({n} tombstones) but no erasure entry accounts for it"
                ),
            ));
        }
        let purged_through = anchor.start_seq - 1;
        match &self.last_purge {
            None if purged_through > 0 => {
                return Err(broken(
                    anchor.start_seq,
                    format!("entries 1 to {purged_through} are gone but no purge entry records it"),
                ));
            }
            None => {}
            Some((seq, data)) => {
                let through = data.get("purged_through").and_then(Value::as_u64);
                let hash = data.get("last_purged_hash").and_then(Value::as_str);
                let tombs = data.get("purged_tombstones").and_then(counts_from_value);
                if through != Some(purged_through)
                    || hash != Some(hex::encode(anchor.prev_hash).as_str())
                    || tombs.as_ref() != Some(&anchor.purged_tombstones)
                {
                    return Err(broken(
                        if through.is_some_and(|t| t < purged_through) {
                            through.map_or(*seq, |t| t + 1)
                        } else {
                            *seq
                        },
                        format!(
                            "the log starts after entry {purged_through} but the latest purge (entry {seq}) recorded {}",
                            through.map_or("no start".into(), |t| format!("entries 1 to {t} with other hashes or counts"))
                        ),
                    ));
                }
            }
        }
        Ok(Report {
            entries: self.entries,
            first_seq: anchor.start_seq,
            head: self.last_hash.map(|h| Head {
                seq: self.prev_seq,
                hash_hex: hex::encode(h),
            }),
            tombstones: self.tombstones,
            purged_through,
        })
    }
}
