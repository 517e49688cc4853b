//! The desk's tables checked against the audit chain.
//!
//! The audit chain proves that nobody edited the log; what the window shows comes from the desk's
//! own tables (`conversations`, `alerts`), which anyone who can write the file can edit offline
//! (a failed conversation flipped to `secured` with someone else's userId). This module replays
//! what the chained record says about each conversation and compares:
//!
//! - the row's state, kept state, reason and userId with the conversation's latest `transition`
//!   entry (every change of those is one), and with the stored state machine the next event
//!   would continue from;
//! - a secured row's session: it started at a valid token the log records for the conversation
//!   or its device, and ends at most one session lifetime after it;
//! - the row's display name: it comes from the signed visitorData of a valid token the log
//!   records for the conversation or its device;
//! - alerts: every `alert` entry's row (by `alertId`) exists with the same code, conversation
//!   and userId (unless erased), and every alert row has its entry;
//! - rows the log never recorded (a conversation inserted by hand), and conversations the log
//!   records that are missing from the table.
//!
//! Legitimate retention raises nothing: a purge records its cutoff in a chained purge entry
//! (`lockdesk_audit::purge_recording`), and rows or entries gone before the latest cutoff are
//! expected; an erasure tombstones entries (their userIds and names can no longer be compared;
//! the public fields still are).
//!
//! Cost: one pass over the log, inside `lockdesk_audit::verify_visiting` (the chain is checked
//! in the same pass and the same read transaction), then one pass over each table. Memory: a
//! few dozen bytes per conversation, device and alert, never per entry.

use std::collections::{HashMap, HashSet};

use lockdesk_audit::{Entry, Kind, VerifyError};
use lockdesk_conversation::{AuthState, Conversation, PresentationVerdict};
use rusqlite::Connection;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::apply::display_name;
use crate::{DeskError, TOMBSTONE};

/// At most this many disagreements are kept with their text (all are counted).
pub const MAX_REPORTED: usize = 1000;

/// One place where the store disagrees with the audit log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Disagreement {
    /// The conversation concerned, when there is one.
    pub conversation_id: Option<String>,
    /// The alert concerned, when it is about an alert row.
    pub alert_id: Option<i64>,
    /// The audit entry that says otherwise, when there is one.
    pub entry_seq: Option<u64>,
    /// A sentence: "conversation X shows secured/cust-1 but the audit log says failed (entry
    /// #N)". May name userIds (the advisor's screen shows them too); never tokens.
    pub message: String,
}

/// The result of [`crate::Desk::check_against_audit`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoreCheck {
    /// The chain's own verification.
    pub chain: lockdesk_audit::Report,
    /// Conversation rows compared.
    pub conversations: u64,
    /// Alert rows compared.
    pub alerts: u64,
    /// Every disagreement found (the first [`MAX_REPORTED`] are in `disagreements`).
    pub disagreement_count: u64,
    /// In table order (conversations, then alerts).
    pub disagreements: Vec<Disagreement>,
}

impl StoreCheck {
    pub fn agrees(&self) -> bool {
        self.disagreement_count == 0
    }

    /// The conversations whose rows (or alerts) disagree with the log.
    pub fn conversations_in_doubt(&self) -> HashSet<String> {
        self.disagreements
            .iter()
            .filter_map(|d| d.conversation_id.clone())
            .collect()
    }
}

/// Why the check could not conclude.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The chain itself is broken (or unreadable): nothing can be checked against it.
    #[error(transparent)]
    Chain(#[from] VerifyError),
    #[error(transparent)]
    Store(#[from] DeskError),
}

impl From<rusqlite::Error> for CheckError {
    fn from(e: rusqlite::Error) -> Self {
        CheckError::Store(DeskError::Sqlite(e))
    }
}

/// What a transition entry says.
struct LoggedState {
    seq: u64,
    state: Box<str>,
    auth_state: Option<Box<str>>,
    reason: Option<Box<str>>,
    /// `None` on a tombstone (the userId was erased: not comparable).
    user_id: Option<Option<Box<str>>>,
}

#[derive(Default)]
struct ConvLog {
    last: Option<LoggedState>,
    /// When its `closed` transition happened.
    closed_at_ms: Option<i64>,
    /// The latest valid token the log records for it (verdicts naming it, `secured`
    /// transitions).
    last_valid_ms: Option<i64>,
    /// Display names of the valid tokens the log records for it.
    names: Vec<Box<str>>,
}

#[derive(Default)]
struct DeviceLog {
    last_valid_ms: Option<i64>,
    names: Vec<Box<str>>,
}

/// An alert entry: (its seq, the code, the conversation, the entry's time, its userId: `None`
/// on a tombstone, whose userId was erased and cannot be compared).
type LoggedAlert = (
    u64,
    Box<str>,
    Option<Box<str>>,
    i64,
    Option<Option<Box<str>>>,
);

#[derive(Default)]
struct Replay {
    conversations: HashMap<Box<str>, ConvLog>,
    devices: HashMap<Box<str>, DeviceLog>,
    /// alertId -> (entry seq, code, conversation, entry time, userId).
    alerts: HashMap<i64, LoggedAlert>,
    /// The latest cutoff of a purge the log records (rows gone before it are expected).
    purge_cutoff_ms: Option<i64>,
    /// The log starts after a purge.
    purged: bool,
    /// Conversations some of whose verdict or transition entries are tombstones (an erasure):
    /// their names and session ends cannot all be traced back to a device any more. Tombstones
    /// keep `conversation_id`, so only these conversations skip those two comparisons.
    erased_verdicts: HashSet<Box<str>>,
}

#[derive(Deserialize)]
struct TransitionData<'a> {
    #[serde(borrow)]
    state: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, rename = "authState")]
    auth_state: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    reason: Option<std::borrow::Cow<'a, str>>,
}

#[derive(Deserialize)]
struct VerdictData<'a> {
    #[serde(borrow)]
    verdict: Option<std::borrow::Cow<'a, str>>,
}

#[derive(Deserialize)]
struct AlertData<'a> {
    #[serde(borrow)]
    code: Option<std::borrow::Cow<'a, str>>,
    #[serde(rename = "alertId")]
    alert_id: Option<i64>,
}

#[derive(Deserialize)]
struct PurgeData {
    cutoff_ms: Option<i64>,
}

fn push_name(names: &mut Vec<Box<str>>, name: Option<String>) {
    if let Some(n) = name {
        if !names.iter().any(|x| **x == *n) && names.len() < 16 {
            names.push(n.into());
        }
    }
}

impl Replay {
    fn visit(&mut self, e: &Entry) {
        let Some(kind) = Kind::parse(&e.kind) else {
            return;
        };
        match kind {
            Kind::Transition => {
                let Some(cid) = e.conversation_id.as_deref() else {
                    return;
                };
                let Ok(d) = serde_json::from_str::<TransitionData>(&e.data) else {
                    return;
                };
                let Some(state) = d.state else { return };
                if e.is_tombstone() {
                    self.erased_verdicts.insert(cid.into());
                }
                let c = self.conversations.entry(cid.into()).or_default();
                if state == "closed" {
                    c.closed_at_ms = Some(e.at_ms);
                }
                if state == "secured" {
                    c.last_valid_ms = Some(c.last_valid_ms.map_or(e.at_ms, |t| t.max(e.at_ms)));
                }
                c.last = Some(LoggedState {
                    seq: e.seq,
                    state: state.into(),
                    auth_state: d.auth_state.map(Into::into),
                    reason: d.reason.map(Into::into),
                    user_id: (!e.is_tombstone()).then(|| e.user_id.as_deref().map(Into::into)),
                });
            }
            Kind::Verdict => {
                let Ok(d) = serde_json::from_str::<VerdictData>(&e.data) else {
                    return;
                };
                if d.verdict.as_deref() != Some(PresentationVerdict::Verified.code()) {
                    return;
                }
                if e.is_tombstone() {
                    if let Some(cid) = e.conversation_id.as_deref() {
                        self.erased_verdicts.insert(cid.into());
                    }
                }
                let name = e
                    .visitor_data
                    .as_deref()
                    .and_then(|v| serde_json::from_str::<Value>(v).ok())
                    .as_ref()
                    .and_then(display_name);
                if let Some(cid) = e.conversation_id.as_deref() {
                    let c = self.conversations.entry(cid.into()).or_default();
                    c.last_valid_ms = Some(c.last_valid_ms.map_or(e.at_ms, |t| t.max(e.at_ms)));
                    push_name(&mut c.names, name.clone());
                }
                if let Some(v) = e.visitor_id.as_deref() {
                    let d = self.devices.entry(v.into()).or_default();
                    d.last_valid_ms = Some(d.last_valid_ms.map_or(e.at_ms, |t| t.max(e.at_ms)));
                    push_name(&mut d.names, name);
                }
            }
            Kind::Alert => {
                let Ok(d) = serde_json::from_str::<AlertData>(&e.data) else {
                    return;
                };
                if let (Some(id), Some(code)) = (d.alert_id, d.code) {
                    self.alerts.insert(
                        id,
                        (
                            e.seq,
                            code.into(),
                            e.conversation_id.as_deref().map(Into::into),
                            e.at_ms,
                            (!e.is_tombstone()).then(|| e.user_id.as_deref().map(Into::into)),
                        ),
                    );
                }
            }
            Kind::Purge => {
                if let Ok(d) = serde_json::from_str::<PurgeData>(&e.data) {
                    if let Some(c) = d.cutoff_ms {
                        self.purge_cutoff_ms = Some(self.purge_cutoff_ms.map_or(c, |x| x.max(c)));
                    }
                }
            }
            Kind::Presentation | Kind::Identity | Kind::Backfill | Kind::Erasure => {}
        }
    }

    fn before_cutoff(&self, at_ms: Option<i64>) -> bool {
        match (self.purge_cutoff_ms, at_ms) {
            (Some(cutoff), Some(at)) => at < cutoff,
            (Some(_), None) => true,
            (None, _) => false,
        }
    }
}

/// "secured/cust-1", "failed (invalid_signature)", "closed, secured/cust-1".
fn describe(
    state: &str,
    kept: Option<&str>,
    reason: Option<&str>,
    user_id: Option<&str>,
) -> String {
    let mut s = match kept {
        Some(k) if k != state => format!("{state}, {k}"),
        _ => state.to_owned(),
    };
    if let Some(u) = user_id {
        s.push('/');
        s.push_str(u);
    }
    if let Some(r) = reason {
        s.push_str(&format!(" ({r})"));
    }
    s
}

/// What the stored state machine says: (state, kept state, userId shown).
fn machine_view(m: &Conversation) -> (&'static str, &'static str, Option<&str>) {
    let st = m.state();
    let kept = match st {
        AuthState::Closed { last, .. } => &**last,
        s => s,
    };
    let user = match kept {
        AuthState::Secured { user_id, .. } | AuthState::Lapsed { user_id, .. } => {
            Some(user_id.as_str())
        }
        _ => m.verified_user_id(),
    };
    (st.name(), kept.name(), user)
}

struct Findings {
    count: u64,
    list: Vec<Disagreement>,
}

impl Findings {
    fn add(
        &mut self,
        conversation_id: Option<&str>,
        alert_id: Option<i64>,
        entry_seq: Option<u64>,
        message: impl FnOnce() -> String,
    ) {
        self.count += 1;
        // Past the first MAX_REPORTED, only counted (no sentence is built).
        if self.list.len() < MAX_REPORTED {
            self.list.push(Disagreement {
                conversation_id: conversation_id.map(str::to_owned),
                alert_id,
                entry_seq,
                message: message(),
            });
        }
    }
}

/// Runs the whole check on a connection to a desk store (read only; `lockdesk-cli audit
/// verify` uses it without opening a [`crate::Desk`]), in one read transaction: the chain
/// (streaming), then the tables. `lifetime_secs` is the desk's configured session lifetime (a
/// stored session may also use its own, up to the configuration's maximum of 24 hours, so
/// changing the setting raises nothing). `progress` gets the number of log entries checked
/// every 65,536. See [`crate::Desk::check_against_audit`].
pub fn check_store(
    conn: &Connection,
    lifetime_secs: i64,
    progress: &mut dyn FnMut(u64),
) -> Result<StoreCheck, CheckError> {
    let _tx = if conn.is_autocommit() {
        Some(conn.unchecked_transaction().map_err(DeskError::from)?)
    } else {
        None
    };
    let mut replay = Replay::default();
    let chain = lockdesk_audit::verify_visiting(conn, progress, &mut |e| replay.visit(e))?;
    replay.purged = chain.purged_through > 0;
    let mut found = Findings {
        count: 0,
        list: Vec::new(),
    };
    let mut seen: HashSet<Box<str>> = HashSet::new();
    let mut conversations = 0u64;
    // A file with the audit tables only (no desk tables) has no rows to compare; what the log
    // records about conversations is then reported missing below.
    let desk_tables = has_table(conn, "conversations")? && has_table(conn, "alerts")?;
    if desk_tables {
        let mut stmt = conn.prepare(
            "SELECT c.conversation_id, c.state, c.auth_state, c.reason, c.user_id, c.opened_ms,
                    c.since_ms, c.until_ms, c.name, c.machine, v.visitor_id
             FROM conversations c LEFT JOIN visitors v ON v.id = c.visitor",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            conversations += 1;
            let cid: String = r.get(0)?;
            let state: String = r.get(1)?;
            let auth_state: String = r.get(2)?;
            let reason: Option<String> = r.get(3)?;
            let user_id: Option<String> = r.get(4)?;
            let opened_ms: Option<i64> = r.get(5)?;
            let since_ms: Option<i64> = r.get(6)?;
            let until_ms: Option<i64> = r.get(7)?;
            let name: Option<String> = r.get(8)?;
            let machine: String = r.get(9)?;
            let visitor_id: Option<String> = r.get(10)?;
            let shows = describe(
                &state,
                Some(&auth_state),
                reason.as_deref(),
                user_id.as_deref(),
            );
            let log = replay.conversations.get(cid.as_str());
            seen.insert(cid.as_str().into());
            let cid_ref = Some(cid.as_str());

            let last = log.and_then(|l| l.last.as_ref());
            if last.is_none() {
                // Every conversation the desk creates has a transition entry; after a purge
                // its entries may all be gone, and an open conversation (kept by the purge, a
                // padlock included) then has no record to compare: such a row is excused when
                // it opened before the cutoff. Known limit: `opened_ms` is the row's own column,
                // so after a purge a row forged with an old opening is excused too (the fix is
                // for the purge entry to commit to the rows it leaves without a record).
                let excused = (replay.purged || replay.purge_cutoff_ms.is_some())
                    && replay.before_cutoff(opened_ms);
                if !excused {
                    found.add(cid_ref, None, None, || {
                        format!(
                            "conversation {cid} shows {shows} but the audit log has no record of it"
                        )
                    });
                }
                continue;
            }
            if let Some(last) = last {
                let user_agrees = match &last.user_id {
                    // Erased: the userId cannot be compared (the row holds "erased", or another
                    // person's userId on a shared device).
                    None => true,
                    Some(logged) => logged.as_deref() == user_id.as_deref(),
                };
                let auth_agrees = last
                    .auth_state
                    .as_deref()
                    .is_none_or(|a| a == auth_state.as_str());
                if *last.state != *state
                    || !auth_agrees
                    || last.reason.as_deref() != reason.as_deref()
                    || !user_agrees
                {
                    let says = describe(
                        &last.state,
                        last.auth_state.as_deref(),
                        last.reason.as_deref(),
                        last.user_id.as_ref().and_then(|u| u.as_deref()),
                    );
                    found.add(
                    cid_ref,
                    None,
                    Some(last.seq),
                    || format!(
                        "conversation {cid} shows {shows} but the audit log says {says} (entry #{})",
                        last.seq
                    ),
                );
                    continue;
                }
            }

            // The stored state machine: the next event continues from it.
            let machine_lifetime = match serde_json::from_str::<Conversation>(&machine) {
                Ok(m) => {
                    let (m_state, m_kept, m_user) = machine_view(&m);
                    let user_differs = m_user != user_id.as_deref()
                        && !(m_user.is_none() && user_id.as_deref() == Some(TOMBSTONE));
                    if m_state != state || m_kept != auth_state || user_differs {
                        found.add(
                            cid_ref,
                            None,
                            None,
                            || format!(
                                "conversation {cid} shows {shows} but its stored state machine says {}",
                                describe(m_state, Some(m_kept), None, m_user)
                            ),
                        );
                        continue;
                    }
                    m.session_lifetime()
                }
                Err(_) => {
                    found.add(cid_ref, None, None, || {
                        format!("conversation {cid}: its stored state machine is unreadable")
                    });
                    continue;
                }
            };

            let device = visitor_id.as_deref().and_then(|v| replay.devices.get(v));
            let last_valid = match (
                log.and_then(|l| l.last_valid_ms),
                device.and_then(|d| d.last_valid_ms),
            ) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
            if state == "secured" {
                let lifetime_ms = lifetime_secs
                    .max(machine_lifetime.min(MAX_LIFETIME_SECS))
                    .saturating_mul(1000);
                let bad_session = match (since_ms, until_ms, last_valid) {
                    (Some(since), Some(until), Some(valid)) => {
                        since > valid + 999 || until > valid.saturating_add(lifetime_ms) + 999
                    }
                    _ => true,
                };
                // Erased verdicts no longer say which device they were on: a session they
                // extended cannot be bounded.
                if bad_session && !replay.erased_verdicts.contains(cid.as_str()) {
                    found.add(
                        cid_ref,
                        None,
                        last.map(|l| l.seq),
                        || format!(
                            "conversation {cid} shows a session secured until {} but the audit log's latest valid token for it allows {}",
                            until_ms.map_or("(none)".into(), crate::model::format_rfc3339),
                            last_valid.map_or("none".into(), |v| crate::model::format_rfc3339(
                                v.saturating_add(lifetime_ms)
                            ))
                        ),
                    );
                    continue;
                }
            }
            if let Some(n) = name.as_deref() {
                // After an erasure, the erased tokens' names are gone from the log.
                let comparable = !replay.erased_verdicts.contains(cid.as_str());
                let log_names: &[Box<str>] = log.map_or(&[], |l| &l.names);
                let known = log_names.iter().any(|x| **x == *n)
                    || device.is_some_and(|d| d.names.iter().any(|x| **x == *n));
                if comparable && !known && (device.is_some() || !log_names.is_empty()) {
                    found.add(
                        cid_ref,
                        None,
                        None,
                        || format!(
                            "conversation {cid} shows the name \"{n}\" but no valid token in the audit log carries it"
                        ),
                    );
                    continue;
                }
            }
        }
    }

    // Conversations the log records that the table lacks.
    let mut missing: Vec<(&str, &ConvLog)> = replay
        .conversations
        .iter()
        .filter(|(cid, _)| !seen.contains(*cid))
        .filter(|(_, l)| l.last.is_some())
        .map(|(cid, l)| (&**cid, l))
        .collect();
    missing.sort_by_key(|(_, l)| l.last.as_ref().map_or(0, |s| s.seq));
    let mut purged_away: HashSet<&str> = HashSet::new();
    for (cid, l) in missing {
        if l.closed_at_ms.is_some() && replay.before_cutoff(l.closed_at_ms) {
            purged_away.insert(cid);
            continue;
        }
        let last = l.last.as_ref().expect("filtered");
        found.add(
            Some(cid),
            None,
            Some(last.seq),
            || format!(
                "conversation {cid} is missing from the store but the audit log says {} (entry #{})",
                describe(
                    &last.state,
                    last.auth_state.as_deref(),
                    last.reason.as_deref(),
                    last.user_id.as_ref().and_then(|u| u.as_deref())
                ),
                last.seq
            ),
        );
    }

    // Alerts.
    let mut alerts = 0u64;
    let mut seen_alerts: HashSet<i64> = HashSet::new();
    if desk_tables {
        let mut stmt = conn.prepare(
            "SELECT a.id, a.code, a.at_ms, c.conversation_id, a.user_id
             FROM alerts a LEFT JOIN conversations c ON c.id = a.conversation ORDER BY a.id",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            alerts += 1;
            let id: i64 = r.get(0)?;
            let code: String = r.get(1)?;
            let at_ms: i64 = r.get(2)?;
            let cid: Option<String> = r.get(3)?;
            let user_id: Option<String> = r.get(4)?;
            seen_alerts.insert(id);
            match replay.alerts.get(&id) {
                Some((seq, logged_code, logged_cid, _, logged_user)) => {
                    let user_agrees = logged_user
                        .as_ref()
                        .is_none_or(|u| u.as_deref() == user_id.as_deref());
                    if **logged_code != *code
                        || logged_cid.as_deref() != cid.as_deref()
                        || !user_agrees
                    {
                        let for_user =
                            |u: Option<&str>| u.map_or(String::new(), |u| format!(" for {u}"));
                        let shows_user = for_user(user_id.as_deref());
                        let says_user = for_user(logged_user.as_ref().and_then(|u| u.as_deref()));
                        found.add(
                            logged_cid.as_deref().or(cid.as_deref()),
                            Some(id),
                            Some(*seq),
                            || format!(
                                "alert {id} shows {code}{}{shows_user} but the audit log says {logged_code}{}{says_user} (entry #{seq})",
                                cid.as_deref().map_or(String::new(), |c| format!(" on conversation {c}")),
                                logged_cid.as_deref().map_or(String::new(), |c| format!(" on conversation {c}")),
                            ),
                        );
                    }
                }
                None if replay.before_cutoff(Some(at_ms)) => {}
                None => found.add(cid.as_deref(), Some(id), None, || {
                    format!(
                        "alert {id} ({code}{}) has no record in the audit log",
                        cid.as_deref()
                            .map_or(String::new(), |c| format!(" on conversation {c}"))
                    )
                }),
            }
        }
    }
    let mut gone: Vec<(&i64, &LoggedAlert)> = replay
        .alerts
        .iter()
        .filter(|(id, _)| !seen_alerts.contains(*id))
        .collect();
    gone.sort_by_key(|(_, (seq, _, _, _, _))| *seq);
    for (id, (seq, code, cid, at_ms, _)) in gone {
        let expected_gone = match cid.as_deref() {
            Some(c) => purged_away.contains(c),
            // A conversation-less alert: the purge deletes it only when it is older than the
            // cutoff (its entry's time: the row's own is editable).
            None => replay.before_cutoff(Some(*at_ms)),
        };
        if expected_gone {
            continue;
        }
        found.add(
            cid.as_deref(),
            Some(*id),
            Some(*seq),
            || format!(
                "alert {id} ({code}{}) was removed from the store but the audit log records it (entry #{seq})",
                cid.as_deref()
                    .map_or(String::new(), |c| format!(" on conversation {c}"))
            ),
        );
    }

    Ok(StoreCheck {
        chain,
        conversations,
        alerts,
        disagreement_count: found.count,
        disagreements: found.list,
    })
}

fn has_table(conn: &Connection, name: &str) -> Result<bool, rusqlite::Error> {
    conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [name],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n > 0)
}

/// The configuration's longest session lifetime (1,440 minutes).
const MAX_LIFETIME_SECS: i64 = 24 * 3600;
