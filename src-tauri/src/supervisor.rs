//! The supervisor screen's commands (issue 7): each runs one function of
//! `lockdesk_api::supervisor` on the blocking pool, over the running desk's store.
//!
//! Must not: touch SQLite on the async executor; read any store but the running desk's (its data
//! folder: `<data>` for a configured gateway, `<data>/demo` for the demo).

use std::path::PathBuf;
use std::sync::Arc;

use lockdesk_api::supervisor;
use lockdesk_api::{
    AuditStatus, ExportFormat, ExportResult, IpcError, IpcErrorCode, SupervisorFilters,
    SupervisorOverview,
};
use lockdesk_desk::ConversationQuery;

use crate::commands::blocking;
use crate::desk::DeskHolder;

/// The aggregates cover at most this many conversations (most recently opened first).
const ROWS_READ: u32 = 100_000;

fn store_dir(holder: &DeskHolder) -> Result<PathBuf, IpcError> {
    Ok(holder.running()?.data_dir().to_owned())
}

pub async fn overview(
    holder: Arc<DeskHolder>,
    filters: SupervisorFilters,
) -> Result<SupervisorOverview, IpcError> {
    let service = holder.running()?;
    let dir = service.data_dir().to_owned();
    blocking(move || {
        let no_data = supervisor::conversations_without_verification_data(&dir)?;
        let rows = service
            .read(|desk| {
                desk.conversations(&ConversationQuery {
                    open_only: false,
                    limit: ROWS_READ,
                })
            })
            .map_err(|e| IpcError::new(IpcErrorCode::Internal, e.to_string()))?;
        Ok(supervisor::overview(&rows, &no_data, &filters))
    })
    .await
}

/// The chain and the store checked against it ("Verify again"); the list's verdict on the
/// store (rows shown as unverifiable, the banner) follows this latest check.
pub async fn audit_status<R: tauri::Runtime>(
    app: tauri::AppHandle<R>,
    holder: Arc<DeskHolder>,
) -> Result<AuditStatus, IpcError> {
    let dir = store_dir(&holder)?;
    let lifetime = holder.lifetime_secs();
    let (status, integrity) =
        blocking(move || supervisor::audit_check(&dir, lifetime, lockdesk_service::now_ms()))
            .await?;
    let changed = holder.integrity().as_ref().map(|i| (i.ok, &i.problems))
        != Some((integrity.ok, &integrity.problems));
    holder.set_integrity(integrity);
    if changed {
        holder.announce_reset(&app);
    }
    Ok(status)
}

pub async fn export(
    holder: Arc<DeskHolder>,
    format: ExportFormat,
    redact: bool,
    confirm_broken: bool,
) -> Result<ExportResult, IpcError> {
    let dir = store_dir(&holder)?;
    let now_ms = lockdesk_service::now_ms();
    let result =
        blocking(move || supervisor::export_audit(&dir, format, redact, confirm_broken, now_ms))
            .await?;
    tracing::info!(
        entries = result.entries,
        redacted = result.redacted,
        broken_at = result.broken_at,
        path = %result.path,
        "audit log exported from the supervisor screen"
    );
    Ok(result)
}

#[cfg(test)]
mod tests {
    //! The three commands through Tauri's real IPC layer (mock runtime, real capability file),
    //! over the embedded demo's real desk and SQLite store.
    use std::time::{Duration, Instant};

    use serde_json::{json, Value};
    use tauri::Manager;

    use crate::tests::{harness, invoke, Harness};

    /// Shuts down the desk that `crate::desk::start` started on `h`.
    fn stop_desk(h: &Harness) {
        let service = h
            .app
            .state::<std::sync::Arc<crate::desk::DeskHolder>>()
            .running()
            .unwrap();
        tauri::async_runtime::block_on(service.shutdown());
    }

    fn no_filters() -> Value {
        json!({"filters": {"state": null, "reason": null, "operatorId": null, "channel": null,
            "fromMs": null, "toMs": null, "tzOffsetMinutes": 0}})
    }

    #[test]
    fn before_the_desk_runs_the_commands_are_granted_and_say_why_they_cannot_answer() {
        let h = harness();
        for (cmd, args) in [
            ("supervisor_overview", no_filters()),
            ("audit_status", json!({})),
            ("export_audit", json!({"format": "csv", "redact": true})),
        ] {
            let err = invoke(&h, cmd, args).unwrap_err();
            // Not a permission error: the capability grants it; the desk is simply not started.
            assert_eq!(err["code"], json!("internal"), "{cmd}: {err}");
            assert_eq!(
                err["message"],
                json!("the desk is starting"),
                "{cmd}: {err}"
            );
        }
        let err = invoke(&h, "export_audit", json!({"format": "xml", "redact": true})).unwrap_err();
        assert!(err.to_string().contains("xml"), "{err}");
    }

    #[test]
    fn on_the_demo_the_screen_reads_the_store_verifies_the_log_and_exports_it() {
        let h = harness();
        tauri::async_runtime::block_on(crate::desk::start(h.app.handle().clone()));
        assert!(h
            .app
            .state::<std::sync::Arc<crate::desk::DeskHolder>>()
            .started());

        // Wait (bounded) for the demo's first conversations to be stored.
        let deadline = Instant::now() + Duration::from_secs(120);
        let overview = loop {
            let o = invoke(&h, "supervisor_overview", no_filters()).unwrap();
            if o["total"].as_u64().unwrap_or(0) >= 2 {
                break o;
            }
            assert!(
                Instant::now() < deadline,
                "no demo conversation arrived: {o}"
            );
            std::thread::sleep(Duration::from_millis(200));
        };
        let rows = overview["rows"].as_array().unwrap();
        assert_eq!(rows.len() as u64, overview["matched"].as_u64().unwrap());
        let day_total: u64 = overview["perDay"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["conversations"].as_u64().unwrap())
            .sum();
        assert_eq!(day_total, overview["matched"].as_u64().unwrap());
        // The demo desk is the advisor of the simulated operators.
        let ops = overview["choices"]["operatorIds"].as_array().unwrap();
        assert!(!ops.is_empty(), "{overview}");

        // Filtering by the first row's channel keeps only that channel.
        let channel = rows[0]["channel"].as_str().unwrap().to_owned();
        let mut f = no_filters();
        f["filters"]["channel"] = json!(channel);
        let narrowed = invoke(&h, "supervisor_overview", f).unwrap();
        assert!(narrowed["rows"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["channel"] == json!(channel)));
        assert!(narrowed["matched"].as_u64().unwrap() >= 1);

        let status = invoke(&h, "audit_status", json!({})).unwrap();
        assert_eq!(status["ok"], json!(true), "{status}");
        assert!(status["entries"].as_u64().unwrap() >= 1, "{status}");
        assert_eq!(status["headHash"].as_str().unwrap().len(), 64);
        let demo_dir = h.dir.path().join("data/demo");
        assert_eq!(
            status["file"],
            json!(demo_dir.join("desk.sqlite3").display().to_string())
        );

        let exported =
            invoke(&h, "export_audit", json!({"format": "csv", "redact": true})).unwrap();
        let path = std::path::PathBuf::from(exported["path"].as_str().unwrap());
        assert_eq!(path.parent(), Some(demo_dir.join("exports").as_path()));
        assert!(exported["entries"].as_u64().unwrap() >= 1);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("seq,"), "a CSV header first");
        assert!(text.lines().count() as u64 > exported["entries"].as_u64().unwrap());
        assert!(!path.with_extension("csv.part").exists());
        assert_eq!(exported["brokenAt"], json!(null));
        assert!(overview["noData"].is_u64(), "{overview}");

        // Entry 1 edited on disk: the command refuses without the user's confirmation (nothing
        // written), and with it writes a file that says so.
        let exports = || std::fs::read_dir(demo_dir.join("exports")).unwrap().count();
        let before = exports();
        let conn = rusqlite::Connection::open(demo_dir.join("desk.sqlite3")).unwrap();
        conn.busy_timeout(Duration::from_secs(10)).unwrap();
        conn.execute(
            "UPDATE audit_log SET conversation_id = 'tampered' WHERE seq = 1",
            [],
        )
        .unwrap();
        drop(conn);
        let err = invoke(&h, "export_audit", json!({"format": "csv", "redact": true})).unwrap_err();
        assert_eq!(err["code"], json!("audit_broken"), "{err}");
        assert_eq!(exports(), before);
        let exported = invoke(
            &h,
            "export_audit",
            json!({"format": "csv", "redact": true, "confirmBroken": true}),
        )
        .unwrap();
        assert_eq!(exported["brokenAt"], json!(1), "{exported}");
        let text = std::fs::read_to_string(exported["path"].as_str().unwrap()).unwrap();
        assert!(
            text.starts_with("# AUDIT CHAIN BROKEN at entry 1: "),
            "{}",
            text.lines().next().unwrap_or("")
        );

        stop_desk(&h);
    }

    /// The store edited offline while the desk runs (a failed conversation flipped to secured
    /// with someone else's userId): "Verify again" names it, and the list then carries it as
    /// unverifiable. Before the edit, the check at desk start found the live demo's store in
    /// agreement.
    #[test]
    fn a_row_edited_behind_the_desks_back_is_named_and_shown_unverifiable() {
        let h = harness();
        tauri::async_runtime::block_on(crate::desk::start(h.app.handle().clone()));
        let db = h.dir.path().join("data/demo/desk.sqlite3");
        let deadline = Instant::now() + Duration::from_secs(180);
        // A closed failed conversation (nothing changes it any more) and a verified person.
        let (failed, victim) = loop {
            // Read through the desk's own read-only reader (nothing here opens its file to
            // read it; the edit below is the deliberate exception: a change behind its back).
            let found = (|| {
                let reader = lockdesk_desk::DeskReader::open(&db).ok()?;
                let rows = reader
                    .conversations(&lockdesk_desk::ConversationQuery {
                        open_only: false,
                        limit: 10_000,
                    })
                    .ok()?;
                let failed = rows
                    .iter()
                    .find(|r| {
                        r.state == lockdesk_desk::AuthStateName::Closed
                            && r.auth_state == lockdesk_desk::AuthStateName::Failed
                    })?
                    .conversation_id
                    .clone();
                let victim = rows.iter().find_map(|r| r.user_id.clone())?;
                Some((failed, victim))
            })();
            if let Some(f) = found {
                break f;
            }
            assert!(Instant::now() < deadline, "no failed demo conversation");
            std::thread::sleep(Duration::from_millis(300));
        };
        // The check at start has run and found nothing wrong.
        let snapshot = loop {
            let s = invoke(&h, "list_conversations", json!({})).unwrap();
            if !s["integrity"].is_null() {
                break s;
            }
            assert!(Instant::now() < deadline, "no check at desk start: {s}");
            std::thread::sleep(Duration::from_millis(200));
        };
        assert_eq!(
            snapshot["integrity"]["ok"],
            json!(true),
            "{}",
            snapshot["integrity"]
        );

        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.busy_timeout(Duration::from_secs(10)).unwrap();
        conn.execute(
            "UPDATE conversations SET auth_state = 'secured', reason = NULL, user_id = ?1
             WHERE conversation_id = ?2",
            [&victim, &failed],
        )
        .unwrap();
        drop(conn);

        let status = invoke(&h, "audit_status", json!({})).unwrap();
        assert_eq!(status["ok"], json!(false), "{status}");
        assert_eq!(
            status["brokenAt"],
            json!(null),
            "the chain itself is intact"
        );
        assert!(
            status["storeProblemCount"].as_u64().unwrap() >= 1,
            "{status}"
        );
        let problems = status["storeProblems"].to_string();
        assert!(
            problems.contains(&format!(
                "conversation {failed} shows closed, secured/{victim}"
            )) && problems.contains("but the audit log says closed, failed"),
            "{problems}"
        );
        let s = invoke(&h, "list_conversations", json!({})).unwrap();
        assert_eq!(s["integrity"]["ok"], json!(false));
        assert!(
            s["integrity"]["conversationIds"]
                .as_array()
                .unwrap()
                .contains(&json!(failed)),
            "{}",
            s["integrity"]
        );

        stop_desk(&h);
    }
}
