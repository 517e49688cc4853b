//! The gateway's counters and their Prometheus text rendering (`GET /metrics`).
//!
//! Must not: take a label value from a request (labels are a fixed set of `&'static str`, or a
//! subscriber name from the configuration, so a client cannot grow the metrics without bound).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::feed::FeedSnapshot;
use crate::store::{Counts, WriterStats};

#[derive(Default)]
pub struct Metrics {
    ingested_webhooks: AtomicU64,
    ingested_evidence: AtomicU64,
    duplicate_webhooks: AtomicU64,
    rejected: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    feed_connections: AtomicU64,
    feed_resumed: AtomicU64,
    feed_overflows: AtomicU64,
    feed_sent: AtomicU64,
    feed_tail_read: AtomicU64,
}

/// A label value from the configuration (a subscriber name), escaped for the text format.
fn label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

impl Metrics {
    pub fn webhook_stored(&self, inserted: bool) {
        if inserted {
            self.ingested_webhooks.fetch_add(1, Ordering::Relaxed);
        } else {
            self.duplicate_webhooks.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn evidence_stored(&self) {
        self.ingested_evidence.fetch_add(1, Ordering::Relaxed);
    }

    /// A feed connection was accepted (`resumed`: with `after > 0`).
    pub fn feed_connected(&self, resumed: bool) {
        self.feed_connections.fetch_add(1, Ordering::Relaxed);
        if resumed {
            self.feed_resumed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A connection's queue overflowed: it was told to resume (close 4001).
    pub fn feed_overflow(&self) {
        self.feed_overflows.fetch_add(1, Ordering::Relaxed);
    }

    /// `n` entries read from the store by the hub's live tail.
    pub fn feed_tail_read(&self, n: u64) {
        self.feed_tail_read.fetch_add(n, Ordering::Relaxed);
    }

    /// `n` entries handed to connections (queued live, or sent while catching up).
    pub fn feed_dispatched(&self, n: u64) {
        self.feed_sent.fetch_add(n, Ordering::Relaxed);
    }

    pub fn rejected(&self, endpoint: &'static str, reason: &'static str) {
        let mut map = self.rejected.lock().unwrap_or_else(|p| p.into_inner());
        *map.entry((endpoint, reason)).or_default() += 1;
    }

    /// Prometheus text exposition format 0.0.4. `counts` is `None` when the store could not be
    /// read (then `lockdesk_gateway_store_up` is 0); `writer`, the PostgreSQL writer's groups
    /// (`None` with SQLite: no such lines).
    pub fn render(
        &self,
        counts: Option<Counts>,
        writer: Option<WriterStats>,
        feed: &FeedSnapshot,
    ) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP lockdesk_gateway_ingested_total Items durably stored since start, by kind.\n\
             # TYPE lockdesk_gateway_ingested_total counter"
        );
        for (kind, v) in [
            ("webhook", &self.ingested_webhooks),
            ("evidence", &self.ingested_evidence),
        ] {
            let _ = writeln!(
                out,
                "lockdesk_gateway_ingested_total{{kind=\"{kind}\"}} {}",
                v.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP lockdesk_gateway_duplicate_webhooks_total Deliveries of an already stored event (acknowledged, not stored again).\n\
             # TYPE lockdesk_gateway_duplicate_webhooks_total counter\n\
             lockdesk_gateway_duplicate_webhooks_total {}",
            self.duplicate_webhooks.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP lockdesk_gateway_rejected_total Requests refused, by endpoint and reason.\n\
             # TYPE lockdesk_gateway_rejected_total counter"
        );
        let rejected = self
            .rejected
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for ((endpoint, reason), v) in rejected {
            let _ = writeln!(
                out,
                "lockdesk_gateway_rejected_total{{endpoint=\"{endpoint}\",reason=\"{reason}\"}} {v}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP lockdesk_gateway_store_up Whether the event store answered.\n\
             # TYPE lockdesk_gateway_store_up gauge\n\
             lockdesk_gateway_store_up {}",
            u8::from(counts.is_some())
        );
        if let Some(c) = counts {
            let _ = writeln!(
                out,
                "# HELP lockdesk_gateway_stored_entries Entries in the log, by kind.\n\
                 # TYPE lockdesk_gateway_stored_entries gauge\n\
                 lockdesk_gateway_stored_entries{{kind=\"webhook\"}} {}\n\
                 lockdesk_gateway_stored_entries{{kind=\"evidence\"}} {}\n\
                 # HELP lockdesk_gateway_last_seq The highest sequence number handed out.\n\
                 # TYPE lockdesk_gateway_last_seq gauge\n\
                 lockdesk_gateway_last_seq {}",
                c.webhook_events, c.evidence, c.last_seq
            );
        }
        let _ = writeln!(
            out,
            "# HELP lockdesk_gateway_feed_subscribers Open feed connections, by role.\n\
             # TYPE lockdesk_gateway_feed_subscribers gauge\n\
             lockdesk_gateway_feed_subscribers{{role=\"advisor\"}} {}\n\
             lockdesk_gateway_feed_subscribers{{role=\"supervisor\"}} {}\n\
             # HELP lockdesk_gateway_feed_routed_seq The last seq handed to the live connections.\n\
             # TYPE lockdesk_gateway_feed_routed_seq gauge\n\
             lockdesk_gateway_feed_routed_seq {}\n\
             # HELP lockdesk_gateway_feed_queue_max The largest number of messages waiting in one connection's queue.\n\
             # TYPE lockdesk_gateway_feed_queue_max gauge\n\
             lockdesk_gateway_feed_queue_max {}\n\
             # HELP lockdesk_gateway_feed_connections_total Feed connections accepted since start.\n\
             # TYPE lockdesk_gateway_feed_connections_total counter\n\
             lockdesk_gateway_feed_connections_total {}\n\
             # HELP lockdesk_gateway_feed_resumed_total Feed connections that resumed (after > 0).\n\
             # TYPE lockdesk_gateway_feed_resumed_total counter\n\
             lockdesk_gateway_feed_resumed_total {}\n\
             # HELP lockdesk_gateway_feed_overflows_total Connections told to resume because their queue was full (close 4001).\n\
             # TYPE lockdesk_gateway_feed_overflows_total counter\n\
             lockdesk_gateway_feed_overflows_total {}\n\
             # HELP lockdesk_gateway_feed_entries_sent_total Entries handed to feed connections.\n\
             # TYPE lockdesk_gateway_feed_entries_sent_total counter\n\
             lockdesk_gateway_feed_entries_sent_total {}\n\
             # HELP lockdesk_gateway_feed_tail_entries_read_total Entries the live tail read from the store (none while no connection is open).\n\
             # TYPE lockdesk_gateway_feed_tail_entries_read_total counter\n\
             lockdesk_gateway_feed_tail_entries_read_total {}\n\
             # HELP lockdesk_gateway_feed_ack_lag Entries between the log's routed end and a subscriber's last ack (subscribers that ack).\n\
             # TYPE lockdesk_gateway_feed_ack_lag gauge",
            feed.advisors,
            feed.supervisors,
            feed.routed,
            feed.max_queue,
            self.feed_connections.load(Ordering::Relaxed),
            self.feed_resumed.load(Ordering::Relaxed),
            self.feed_overflows.load(Ordering::Relaxed),
            self.feed_sent.load(Ordering::Relaxed),
            self.feed_tail_read.load(Ordering::Relaxed),
        );
        for (name, lag) in &feed.ack_lag {
            let _ = writeln!(
                out,
                "lockdesk_gateway_feed_ack_lag{{subscriber=\"{}\"}} {lag}",
                label(name)
            );
        }
        if let Some(w) = writer {
            let _ = writeln!(
                out,
                "# HELP lockdesk_gateway_pg_groups_total Append groups this instance committed on PostgreSQL, by the round trips they took under the append lock.\n\
                 # TYPE lockdesk_gateway_pg_groups_total counter\n\
                 lockdesk_gateway_pg_groups_total{{round_trips=\"1\"}} {}\n\
                 lockdesk_gateway_pg_groups_total{{round_trips=\"2\"}} {}\n\
                 # HELP lockdesk_gateway_pg_groups_redone_total One-round-trip groups rolled back and redone in two: another instance had changed a conversation or visitor the group read, or an eventId was already stored.\n\
                 # TYPE lockdesk_gateway_pg_groups_redone_total counter\n\
                 lockdesk_gateway_pg_groups_redone_total{{reason=\"conflict\"}} {}\n\
                 lockdesk_gateway_pg_groups_redone_total{{reason=\"duplicate\"}} {}\n\
                 # HELP lockdesk_gateway_pg_groups_one_trip_skipped_total Groups sent in two round trips without trying one, because too many recent attempts were refused.\n\
                 # TYPE lockdesk_gateway_pg_groups_one_trip_skipped_total counter\n\
                 lockdesk_gateway_pg_groups_one_trip_skipped_total {}",
                w.one_trip,
                w.two_trips,
                w.redone_conflict,
                w.redone_duplicate,
                w.one_trip_skipped,
            );
        }
        out
    }
}
