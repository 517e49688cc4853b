//! Benchmarks the CLI can run (`lockdesk_desk::bench::{apply_throughput, history_latency}`):
//! they build their own throw-away keys and data in a folder the caller gives, run the shipped
//! code paths, and return figures (they never assert times).

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use lockdesk_feed::{Entry, EntryKind};
use lockdesk_verify::mint::{self, Claims, Recipient, SigningKey};
use lockdesk_verify::{parse_decryption_keys, parse_public_keys, Policy, TrustStore, Verifier};
use rayon::prelude::*;
use rusqlite::params;
use serde::Serialize;
use serde_json::json;

use crate::{ConversationQuery, Desk, DeskConfig, DeskError};

const ISSUER: &str = "https://bench.brand.example";
/// 2026-01-01T10:00:00Z: the benchmarks' feed starts here (tokens are verified at reception).
const T0_MS: i64 = 1_767_261_600_000;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Desk(#[from] DeskError),
    #[error("benchmark set-up: {0}")]
    Setup(String),
}

impl From<rusqlite::Error> for BenchError {
    fn from(e: rusqlite::Error) -> Self {
        BenchError::Desk(DeskError::Sqlite(e))
    }
}

fn setup<E: std::fmt::Display>(e: E) -> BenchError {
    BenchError::Setup(e.to_string())
}

/// What [`apply_throughput`] measured.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplyFigures {
    pub events: usize,
    pub batch: usize,
    /// Evidence entries whose token the desk had not seen (each costs RSA work).
    pub new_tokens: usize,
    pub seconds: f64,
    pub events_per_sec: f64,
    /// CPU time of the process while applying (user + system, all threads; Linux only, else
    /// 0): less sensitive than wall time to other load on the machine.
    pub cpu_seconds: f64,
    pub events_per_cpu_sec: f64,
    pub changes: usize,
    pub conversations: u64,
    /// Store size (database + WAL after a checkpoint, audit chain included) per conversation.
    pub bytes_per_conversation: f64,
    pub threads: usize,
}

/// What [`history_latency`] measured.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryFigures {
    pub conversations: u64,
    pub identities: u64,
    pub visitors: u64,
    pub build_seconds: f64,
    pub queries: usize,
    /// Conversations returned per history, on average.
    pub mean_conversations: f64,
    pub p50_micros: f64,
    pub p99_micros: f64,
    pub max_micros: f64,
    /// The same queries' CPU time (the thread's CPU clock) and wall minus CPU (waiting for a
    /// CPU or the disk): on a machine shared with other work, a slow wall-clock percentile
    /// with a fast CPU one is time spent waiting to be scheduled.
    pub p99_on_cpu_micros: f64,
    pub p99_off_cpu_micros: f64,
    /// Store size per conversation (conversation rows, visitors, identities, links, indexes).
    pub bytes_per_conversation: f64,
    /// One conversation-list page (500 rows), for comparison.
    pub list_page_micros: f64,
}

struct Keys {
    verifier: Verifier,
    brand: SigningKey,
    desk: Recipient,
}

fn keys() -> Result<Keys, BenchError> {
    let brand = openssl::rsa::Rsa::generate(2048).map_err(setup)?;
    let desk = openssl::rsa::Rsa::generate(2048).map_err(setup)?;
    let brand_pub = parse_public_keys(&brand.public_key_to_pem().map_err(setup)?).map_err(setup)?;
    let desk_priv =
        parse_decryption_keys(&desk.private_key_to_pem().map_err(setup)?).map_err(setup)?;
    let desk_pub = parse_public_keys(&desk.public_key_to_pem().map_err(setup)?).map_err(setup)?;
    let mut trust = TrustStore::new();
    trust.add(ISSUER, brand_pub).map_err(setup)?;
    Ok(Keys {
        verifier: Verifier::new(trust, desk_priv, Policy::default()),
        brand: SigningKey::from_pem(&brand.private_key_to_pem().map_err(setup)?).map_err(setup)?,
        desk: Recipient::new(desk_pub.first().ok_or_else(|| setup("no desk key"))?)
            .map_err(setup)?,
    })
}

/// This thread's CPU time, in ns (`CLOCK_THREAD_CPUTIME_ID`: exact, unlike /proc's
/// tick-updated figures).
fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0;
    }
    (ts.tv_sec as u64).saturating_mul(1_000_000_000) + ts.tv_nsec as u64
}

/// User + system CPU time of this process, from /proc/self/stat (clock ticks of 1/100 s).
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

fn file_bytes(db: &Path) -> u64 {
    let wal = db.with_extension("sqlite3-wal");
    [db.to_path_buf(), wal]
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

/// Applies `events` feed entries (groups of 10 per conversation: push, one evidence with a new
/// token, three re-presentations of that token, four `visitor.updated`, close: 10% of the
/// events carry a new token) in batches of `batch`, into a new store in `dir`, with the real
/// verifier (RSA-2048 JWE + RS256, verdict cache on). Tokens are minted before timing starts.
pub fn apply_throughput(
    dir: &Path,
    events: usize,
    batch: usize,
) -> Result<ApplyFigures, BenchError> {
    let k = keys()?;
    let groups = events.div_ceil(10).max(1);
    let tokens: Vec<String> = (0..groups)
        .into_par_iter()
        .map(|g| {
            let received = T0_MS + (g as i64) * 100;
            let claims = Claims {
                issuer: ISSUER.into(),
                user_id: format!("bench-user-{g:07}"),
                visitor_data: json!({"firstName": "Bench", "lastName": format!("User{g}"),
                                     "email": format!("user{g}@bench.example")})
                .as_object()
                .cloned(),
                expires_at: received / 1000 + 60,
                ..Claims::default()
            };
            mint::mint(&claims, &k.brand, Some(&k.desk))
        })
        .collect::<Result<_, _>>()
        .map_err(setup)?;
    let mut entries = Vec::with_capacity(groups * 10);
    for (g, token) in tokens.iter().enumerate() {
        let conv = format!("bench-conv-{g:07}");
        let visitor = format!("bench-visitor-{g:07}");
        let base = T0_MS + (g as i64) * 100;
        let mut push = |kind: EntryKind, event_type: Option<&str>, payload: serde_json::Value| {
            let seq = entries.len() as u64 + 1;
            entries.push(Entry {
                seq,
                kind,
                received_at_ms: base + (seq as i64 % 10) * 10,
                event_type: event_type.map(str::to_owned),
                payload,
                related: vec![],
                routing: Default::default(),
            });
        };
        push(
            EntryKind::Webhook,
            Some("v2.conversation.pushed"),
            json!({"eventType": "v2.conversation.pushed", "conversationId": conv,
                   "visitorId": visitor, "channel": "CHAT", "operatorId": 7}),
        );
        for _ in 0..4 {
            push(
                EntryKind::Evidence,
                None,
                json!({"visitorId": visitor, "conversationId": conv, "token": token,
                       "source": {"domain": "www.brand.example", "device": "laptop"}}),
            );
        }
        for _ in 0..4 {
            push(
                EntryKind::Webhook,
                Some("visitor.updated"),
                json!({"eventType": "visitor.updated", "visitorId": visitor, "operatorId": 7}),
            );
        }
        push(
            EntryKind::Webhook,
            Some("v2.conversation.closed"),
            json!({"eventType": "v2.conversation.closed", "conversationId": conv,
                   "visitorId": visitor, "channel": "CHAT", "operatorIds": [7]}),
        );
    }
    entries.truncate(events.max(1));
    let db = dir.join("bench-apply.sqlite3");
    let _ = std::fs::remove_file(&db);
    let mut desk = Desk::open(&db, Arc::new(k.verifier), DeskConfig::default())?;
    let start = Instant::now();
    let cpu_start = cpu_seconds();
    let mut changes = 0;
    for chunk in entries.chunks(batch.max(1)) {
        let now = chunk.last().map(|e| e.received_at_ms).unwrap_or(T0_MS);
        changes += desk.apply(chunk, now)?.changes.len();
    }
    let seconds = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_start;
    let stats = desk.stats()?;
    desk.conn
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    let bytes = file_bytes(&db);
    drop(desk);
    Ok(ApplyFigures {
        events: entries.len(),
        batch,
        new_tokens: groups.min(entries.len().div_ceil(10)),
        seconds,
        events_per_sec: entries.len() as f64 / seconds,
        cpu_seconds: cpu,
        events_per_cpu_sec: if cpu > 0.0 {
            entries.len() as f64 / cpu
        } else {
            0.0
        },
        changes,
        conversations: stats.conversations,
        bytes_per_conversation: bytes as f64 / stats.conversations.max(1) as f64,
        threads: rayon::current_num_threads(),
    })
}

/// Builds a store in `dir` with `conversations` conversations and `identities` identities by
/// direct batched inserts (each identity linked to two devices, plus as many anonymous devices
/// as identities; conversations spread evenly over devices), then times `queries`
/// [`Desk::history`] calls for random userIds.
pub fn history_latency(
    dir: &Path,
    conversations: u64,
    identities: u64,
    queries: usize,
) -> Result<HistoryFigures, BenchError> {
    let db = dir.join("bench-history.sqlite3");
    let _ = std::fs::remove_file(&db);
    let k = keys()?;
    let verifier: Arc<dyn crate::TokenVerifier> = Arc::new(k.verifier);
    drop(Desk::open(&db, verifier.clone(), DeskConfig::default())?);
    let identities = identities.max(1);
    let visitors = identities * 3;
    let build = Instant::now();
    {
        let mut conn = rusqlite::Connection::open(&db)?;
        conn.pragma_update(None, "synchronous", "OFF")?;
        let tx = conn.transaction()?;
        {
            let mut v = tx.prepare(
                "INSERT INTO visitors (id, visitor_id, first_seen_ms, last_seen_ms, last_user_id)
                 VALUES (?1, ?2, ?3, ?3, ?4)",
            )?;
            for i in 1..=visitors {
                let user = (i <= identities * 2).then(|| format!("user-{:07}", (i - 1) / 2));
                v.execute(params![i as i64, format!("visitor-{i:08}"), T0_MS, user])?;
            }
            let mut id = tx.prepare(
                "INSERT INTO identities (id, user_id, visitor_data, first_seen_ms, last_seen_ms)
                 VALUES (?1, ?2, ?3, ?4, ?4)",
            )?;
            let mut link = tx.prepare(
                "INSERT INTO identity_visitors (identity, visitor, first_seen_ms, last_seen_ms)
                 VALUES (?1, ?2, ?3, ?3)",
            )?;
            for i in 0..identities {
                let vd = json!({"firstName": "Jane", "lastName": format!("Doe{i}"),
                                "email": format!("jane.doe{i}@mail.example")});
                id.execute(params![
                    (i + 1) as i64,
                    format!("user-{i:07}"),
                    vd.to_string(),
                    T0_MS
                ])?;
                link.execute(params![(i + 1) as i64, (2 * i + 1) as i64, T0_MS])?;
                link.execute(params![(i + 1) as i64, (2 * i + 2) as i64, T0_MS])?;
            }
            let mut c = tx.prepare(
                "INSERT INTO conversations (conversation_id, visitor, channel, operator_id, source,
                   domain, device, opened_ms, closed_ms, state, auth_state, user_id, name,
                   since_ms, until_ms, first_verified_ms, last_verified_ms, machine)
                 VALUES (?1, ?2, 'CHAT', 7, 'web', 'www.brand.example', 'laptop', ?3, ?4,
                   'closed', ?5, ?6, ?7, ?8, ?9, ?8, ?8, ?10)",
            )?;
            for j in 0..conversations {
                let visitor = (j % visitors) + 1;
                let opened = T0_MS + j as i64 * 1000;
                let linked = visitor <= identities * 2;
                let user = linked.then(|| format!("user-{:07}", (visitor - 1) / 2));
                let (auth, machine) = match &user {
                    Some(u) => (
                        "secured",
                        json!({"state": {"state": "closed", "last": {"state": "secured",
                               "user_id": u, "since": opened / 1000 + 5,
                               "until": opened / 1000 + 3605}, "at": opened / 1000 + 600},
                               "verified_user_id": u, "session_lifetime": 3600}),
                    ),
                    None => (
                        "anonymous",
                        json!({"state": {"state": "closed", "last": {"state": "anonymous"},
                               "at": opened / 1000 + 600}, "verified_user_id": null,
                               "session_lifetime": 3600}),
                    ),
                };
                c.execute(params![
                    format!("conv-{j:09}"),
                    visitor as i64,
                    opened,
                    opened + 600_000,
                    auth,
                    user,
                    user.as_ref().map(|_| "Jane Doe"),
                    user.as_ref().map(|_| opened + 5000),
                    user.as_ref().map(|_| opened + 3_605_000),
                    machine.to_string()
                ])?;
            }
        }
        tx.commit()?;
        conn.execute_batch("ANALYZE")?;
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    }
    let build_seconds = build.elapsed().as_secs_f64();
    let bytes = file_bytes(&db);
    let desk = Desk::open(&db, verifier, DeskConfig::default())?;
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut times = Vec::with_capacity(queries);
    let mut on_cpu = Vec::with_capacity(queries);
    let mut waiting = Vec::with_capacity(queries);
    let mut returned = 0usize;
    for _ in 0..queries {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let user = format!("user-{:07}", rng % identities);
        let cpu = thread_cpu_ns();
        let t = Instant::now();
        let h = desk.history(&user)?;
        let wall = t.elapsed().as_secs_f64() * 1e6;
        let cpu = thread_cpu_ns().saturating_sub(cpu) as f64 / 1e3;
        times.push(wall);
        on_cpu.push(cpu);
        waiting.push((wall - cpu).max(0.0));
        returned += h.conversations.len();
    }
    times.sort_by(f64::total_cmp);
    on_cpu.sort_by(f64::total_cmp);
    waiting.sort_by(f64::total_cmp);
    let pct_of = |v: &[f64], p: f64| {
        v.get(((v.len() as f64 * p) as usize).min(v.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0.0)
    };
    let pct = |p: f64| pct_of(&times, p);
    let t = Instant::now();
    desk.conversations(&ConversationQuery {
        open_only: false,
        limit: 500,
    })?;
    let list_page_micros = t.elapsed().as_secs_f64() * 1e6;
    Ok(HistoryFigures {
        conversations,
        identities,
        visitors,
        build_seconds,
        queries,
        mean_conversations: returned as f64 / queries.max(1) as f64,
        p50_micros: pct(0.50),
        p99_micros: pct(0.99),
        max_micros: times.last().copied().unwrap_or(0.0),
        p99_on_cpu_micros: pct_of(&on_cpu, 0.99),
        p99_off_cpu_micros: pct_of(&waiting, 0.99),
        bytes_per_conversation: bytes as f64 / conversations.max(1) as f64,
        list_page_micros,
    })
}
