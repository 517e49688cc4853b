//! The gateway's counters and their Prometheus text rendering (`GET /metrics`).
//!
//! Must not: take a label value from a request (labels are a fixed set of `&'static str`, so a
//! client cannot grow the metrics without bound).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::store::Counts;

#[derive(Default)]
pub struct Metrics {
    ingested_webhooks: AtomicU64,
    ingested_evidence: AtomicU64,
    duplicate_webhooks: AtomicU64,
    rejected: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
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

    pub fn rejected(&self, endpoint: &'static str, reason: &'static str) {
        let mut map = self.rejected.lock().unwrap_or_else(|p| p.into_inner());
        *map.entry((endpoint, reason)).or_default() += 1;
    }

    /// Prometheus text exposition format 0.0.4. `counts` is `None` when the store could not be
    /// read (then `lockdesk_gateway_store_up` is 0).
    pub fn render(&self, counts: Option<Counts>) -> String {
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
        out
    }
}
