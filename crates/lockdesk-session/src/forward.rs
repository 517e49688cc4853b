//! The running service's tasks: its status to the window and the tray ([`forward_status`]), the
//! store checked against the audit chain at start ([`check_store`]), and its committed changes
//! to the window and the notifier ([`forward_changes`]). Each stops when its cancellation token
//! is cancelled (the owner task then joins it) or when the service's channels close.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use lockdesk_api::desk_map;
use lockdesk_api::{ConversationRow, DeskEvent, DeskStatus, StoreIntegrity};
use lockdesk_config::Config;
use lockdesk_desk::{AlertRecord, AuthStateName, DeskReader};
use lockdesk_service::{DeskService, ServiceEvent, ServiceStatus};
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

use crate::notice::{is_live, notice_for_change, BacklogGate};
use crate::{Notification, Shared};

/// Where the forwarder reads the rows and alerts a batch of changes touched (the service's
/// reader connection; in tests, a store of their own).
pub(crate) trait Store: Send + Sync + 'static {
    /// Blocking (SQLite): called on the blocking pool.
    fn changed(
        &self,
        ids: &[String],
        alert_ids: &[i64],
    ) -> (Vec<ConversationRow>, Vec<AlertRecord>);
}

impl Store for DeskService {
    fn changed(
        &self,
        ids: &[String],
        alert_ids: &[i64],
    ) -> (Vec<ConversationRow>, Vec<AlertRecord>) {
        self.read(|desk| read_changed(desk, ids, alert_ids))
    }
}

/// The rows (as the window lists them) and alert records of a batch, as committed.
pub(crate) fn read_changed(
    desk: &DeskReader,
    ids: &[String],
    alert_ids: &[i64],
) -> (Vec<ConversationRow>, Vec<AlertRecord>) {
    let mut rows = Vec::new();
    for id in ids {
        if let Ok(Some(d)) = desk.conversation(id) {
            rows.push(desk_map::detail(&d).row);
        }
    }
    let records = alert_ids
        .iter()
        .filter_map(|a| desk.alert(*a).ok().flatten())
        .collect();
    (rows, records)
}

/// What [`forward_changes`] listens to.
pub(crate) struct Inputs {
    pub events: broadcast::Receiver<ServiceEvent>,
    pub status: watch::Receiver<ServiceStatus>,
    pub store: Arc<dyn Store>,
}

/// The header's status from the service's; `ended`: the service's status channel is closed (its
/// status task is gone), so its last value says nothing about now.
pub(crate) fn status_of(s: &ServiceStatus, ended: bool) -> DeskStatus {
    let progress = desk_map::Progress {
        cursor: s.cursor,
        head: s.head,
        behind_too_long: s.behind_too_long,
    };
    if ended {
        let stopped = lockdesk_service::State::Stopped {
            reason: lockdesk_service::StopReason::Failed("the desk has stopped".into()),
        };
        return desk_map::status(&stopped, s.demo, progress);
    }
    desk_map::status(&s.feed, s.demo, progress)
}

/// The service's status to the window and the tray, each time it changes; once its channel
/// closes (the service is gone without a restart), that it stopped.
pub(crate) async fn forward_status(
    shared: Arc<Shared>,
    mut status: watch::Receiver<ServiceStatus>,
    cancel: CancellationToken,
) {
    loop {
        let s = status.borrow_and_update().clone();
        let dto = status_of(&s, false);
        shared.host.set_tray(&dto);
        shared.host.emit(DeskEvent::Status { status: dto });
        tokio::select! {
            biased;
            _ = cancel.cancelled() => return,
            changed = status.changed() => {
                if changed.is_err() {
                    // The service's status ended: its last value ("Connected"...) is no longer
                    // true.
                    let dto = status_of(&s, true);
                    shared.host.set_tray(&dto);
                    shared.host.emit(DeskEvent::Status { status: dto });
                    return;
                }
            }
        }
    }
}

/// At desk start: the store checked against the audit chain (linear in the log: about 2 s per
/// million entries on the development machine), off the executor. Until it ends the list
/// shows no verdict on it; then the window lists again with the result, so a row edited
/// offline is shown as unverifiable and a banner says what disagrees. Cancelled: the check's
/// blocking thread finishes on its own and its result is dropped.
pub(crate) async fn check_store(
    shared: Arc<Shared>,
    dir: PathBuf,
    lifetime: i64,
    cancel: CancellationToken,
) {
    let started = tokio::time::Instant::now();
    let check = tokio::task::spawn_blocking(move || {
        lockdesk_api::supervisor::audit_check(&dir, lifetime, lockdesk_service::now_ms())
    });
    let result = tokio::select! {
        biased;
        _ = cancel.cancelled() => return,
        r = check => r,
    };
    let integrity = match result {
        Ok(Ok((status, integrity))) => {
            if integrity.ok {
                tracing::info!(
                    entries = status.entries,
                    ms = started.elapsed().as_millis() as u64,
                    "the store agrees with the audit log"
                );
            } else {
                tracing::error!(
                    problems = integrity.problem_count,
                    first = integrity.problems.first().map(String::as_str).unwrap_or(""),
                    "the store disagrees with the audit log"
                );
            }
            integrity
        }
        failed => {
            let why = match failed {
                Ok(Err(e)) => e.message,
                Err(e) => format!("background task failed: {e}"),
                Ok(Ok(_)) => unreachable!("matched above"),
            };
            tracing::error!("the store could not be checked against the audit log: {why}");
            StoreIntegrity {
                ok: false,
                problem_count: 1,
                problems: vec![format!(
                    "the store could not be checked against the audit log: {why}"
                )],
                conversation_ids: Vec::new(),
                chain_broken: false,
                checked_at_ms: lockdesk_service::now_ms(),
            }
        }
    };
    *crate::lock(&shared.integrity) = Some(integrity);
    shared.announce_reset();
}

/// The service's committed changes to the window (rows and alerts, each with a new revision) and
/// to the notifier: a live change's notice at once, an old one's counted into the backlog's
/// summary ([`BacklogGate`]); a stop for good said once. Cancelled: the pending summary is shown
/// and the task ends.
pub(crate) async fn forward_changes(
    shared: Arc<Shared>,
    inputs: Inputs,
    mut prefs: watch::Receiver<Config>,
    cancel: CancellationToken,
) {
    let Inputs {
        mut events,
        mut status,
        store,
    } = inputs;
    let host = shared.host.clone();
    let mut last_state: HashMap<String, AuthStateName> = HashMap::new();
    let mut mutes = prefs.borrow_and_update().notifications;
    let mut prefs_open = true;
    // Notices of a backlog, shown as one summary once the desk is live again (or quiet).
    let mut backlog = BacklogGate::default();
    let summary = |backlog: &mut BacklogGate| {
        let b = backlog.take();
        if !b.is_empty() {
            host.notify(Notification::Summary(b));
        }
    };
    // A desk that stops receiving for good (credential revoked, ...) says so once, beside the
    // banner: the advisor may be looking at another window. A shutdown is not news.
    let mut status_open = true;
    let mut stop_told = false;
    let mut tell_stop = |feed: &lockdesk_service::State| {
        if let (lockdesk_service::State::Stopped { reason }, false) = (feed, stop_told) {
            if *reason == lockdesk_service::StopReason::Shutdown {
                return;
            }
            stop_told = true;
            host.notify(Notification::Stopped(reason.clone()));
        }
    };
    tell_stop(&status.borrow_and_update().feed);
    loop {
        let until = backlog.wait_until(tokio::time::Instant::now());
        let next = tokio::select! {
            biased;
            _ = cancel.cancelled() => {
                summary(&mut backlog);
                return;
            }
            changed = status.changed(), if status_open => {
                match changed {
                    Ok(()) => {
                        let feed = status.borrow_and_update().feed.clone();
                        if !cancel.is_cancelled() {
                            tell_stop(&feed);
                        }
                    }
                    Err(_) => status_open = false,
                }
                continue;
            }
            changed = prefs.changed(), if prefs_open => {
                // Settings saved new mutes: applied from the next notice (the host got the
                // language and mutes for its own notices).
                match changed {
                    Ok(()) => mutes = prefs.borrow_and_update().notifications,
                    Err(_) => prefs_open = false,
                }
                continue;
            }
            next = async {
                match until {
                    None => Some(events.recv().await),
                    Some(until) => tokio::time::timeout_at(until, events.recv()).await.ok(),
                }
            } => next,
        };
        let Some(next) = next else {
            summary(&mut backlog);
            continue;
        };
        let changes = match next {
            Ok(ServiceEvent::Changes(c)) => c,
            Ok(ServiceEvent::Skipped(_)) => continue,
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!("{n} desk changes were not forwarded: asking the UI to reload");
                shared.announce_reset();
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => {
                summary(&mut backlog);
                return;
            }
        };
        // The rows and alerts as stored (a look-alike's notice names the identity its alert's
        // evidence says it imitates), then the notifications, then the window's events.
        let mut ids: Vec<String> = Vec::new();
        let mut alert_ids: Vec<i64> = Vec::new();
        for c in changes.iter() {
            if let Some(id) = &c.conversation_id {
                if !ids.contains(id) {
                    ids.push(id.clone());
                }
            }
            if let Some(a) = c.alert_id {
                alert_ids.push(a);
            }
        }
        let read = store.clone();
        let fetched = tokio::task::spawn_blocking(move || read.changed(&ids, &alert_ids)).await;
        let (rows, records) = match fetched {
            Ok((rows, records)) => (Some(rows), records),
            Err(e) => {
                tracing::warn!("cannot read the changed rows: {e}");
                (None, Vec::new())
            }
        };
        if cancel.is_cancelled() {
            // Restarting or quitting: this service's news is no longer the window's.
            summary(&mut backlog);
            return;
        }
        let now = lockdesk_service::now_ms();
        let mut behind = false;
        for c in changes.iter() {
            let live = is_live(c, now);
            behind |= !live;
            let previous = c
                .conversation_id
                .as_ref()
                .and_then(|id| last_state.get(id))
                .copied();
            let record = c.alert_id.and_then(|a| records.iter().find(|r| r.id == a));
            if let Some(notice) = notice_for_change(c, previous, record) {
                if live {
                    host.notify(Notification::Notice(notice));
                } else {
                    backlog.add(&notice, &mutes, tokio::time::Instant::now());
                }
            }
            if let (Some(id), Some(st)) = (&c.conversation_id, c.state) {
                last_state.insert(id.clone(), st);
            }
        }
        if !behind {
            summary(&mut backlog);
        }
        let Some(rows) = rows else {
            continue;
        };
        for alert in records.iter().filter_map(desk_map::alert) {
            let revision = shared.next_revision();
            host.emit(DeskEvent::Alert { revision, alert });
        }
        for row in rows {
            let revision = shared.next_revision();
            host.emit(DeskEvent::Row { revision, row });
        }
    }
}
