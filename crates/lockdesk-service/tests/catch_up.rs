//! A desk restarted after downtime lapses a session only where an uninterrupted desk would: the
//! backlog it catches up on holds a newer token that extended the session before it ended, so no
//! lapse may be recorded before the extended end (the desk's clock must not run ahead of the
//! backlog). Real gateway, real tokens (the simulator's brand key, encrypted to the desk's key),
//! real SQLite store, real clock.

use std::time::{Duration, Instant};

use lockdesk_desk::{AuthStateName, DeskConfig, PresentationVerdict};
use lockdesk_service::DeskService;
use lockdesk_sim::{plan, Action, Scenario, Step};

use crate::support::*;

/// The desk's session lifetime in this test.
const LIFETIME: Duration = Duration::from_secs(10);

/// A new folder with the test keys, and the test gateway in its folder `gateway`, at
/// 127.0.0.1:0.
async fn keys_and_gateway() -> (tempfile::TempDir, Keys, lockdesk_gateway::Gateway) {
    let root = tempfile::tempdir().unwrap();
    let keys = keys(root.path());
    let gateway_dir = root.path().join("gateway");
    std::fs::create_dir_all(&gateway_dir).unwrap();
    let gateway = start_gateway(&gateway_dir, "127.0.0.1:0".parse().unwrap()).await;
    (root, keys, gateway)
}

fn send(sender: &mut lockdesk_sim::Sender, step: &Step) -> u64 {
    let answer = sender.send(step).unwrap();
    answer["seq"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_desk_does_not_lapse_a_session_its_backlog_extended() {
    let (root, keys, gateway) = keys_and_gateway().await;
    let addr = gateway.local_addr();
    let desk_dir = root.path().join("desk");
    let start_desk = || async {
        let mut o = options(
            &desk_dir,
            &format!("ws://{addr}/v1/feed"),
            &keys.private,
            &keys.jwks,
        );
        o.desk = DeskConfig {
            session_lifetime_secs: LIFETIME.as_secs() as i64,
        };
        o.tick_every = Duration::from_millis(100);
        DeskService::start(o).await.unwrap()
    };

    // Logged-in visitors presenting a token at every page: the push, then their presentations.
    // The first person presents again while the desk is down; the other does not.
    let (push, tokens, conversation) = person(11);
    let (other_push, other_tokens, other) = person(12);
    let mut sender = tokio::task::block_in_place(|| sender(addr, keys.sim));

    // Secured, live.
    let desk = start_desk().await;
    let t0 = Instant::now();
    tokio::task::block_in_place(|| send(&mut sender, &push));
    tokio::task::block_in_place(|| send(&mut sender, &other_push));
    tokio::task::block_in_place(|| send(&mut sender, &other_tokens[0]));
    let first = tokio::task::block_in_place(|| send(&mut sender, &tokens[0]));
    wait_cursor(&desk, first, "the first token").await;
    let state = |d: &DeskService, c: &str| d.read(|k| k.conversation(c).unwrap().unwrap());
    assert_eq!(
        state(&desk, &conversation).row.state,
        AuthStateName::Secured
    );
    assert_eq!(state(&desk, &other).row.state, AuthStateName::Secured);
    desk.shutdown().await;

    // Down: the first visitor presents a newer token well before the session ends (extending it).
    tokio::time::sleep_until((t0 + LIFETIME * 2 / 5).into()).await;
    let second = tokio::task::block_in_place(|| send(&mut sender, &tokens[1]));

    // Back up after the first session's end, before the extended one's.
    tokio::time::sleep_until((t0 + LIFETIME + Duration::from_secs(2)).into()).await;
    let desk = start_desk().await;
    wait_cursor(&desk, second, "the backlog").await;
    // The restarted desk's clock lapses the other session, which the backlog did not extend:
    // once it has, a tick has run after the catch-up (and would have lapsed the first session
    // too, had the backlog not extended it).
    wait_until("the restarted desk to lapse the other session", || {
        !lapse_times(&state(&desk, &other)).is_empty()
    })
    .await;
    let detail = state(&desk, &conversation);
    let extended_until = detail
        .presentations
        .iter()
        .filter(|p| p.verdict == PresentationVerdict::Verified)
        .map(|p| session_end(p.received_ms))
        .max()
        .unwrap_or_else(|| panic!("no verified token: {:#?}", detail.presentations));
    let lapses = lapse_times(&detail);
    assert_eq!(
        detail.presentations.len(),
        2,
        "both tokens applied: {:#?}",
        detail.presentations
    );
    assert!(
        lapses.iter().all(|&at| at >= extended_until),
        "lapsed at {lapses:?} although a token extended the session to {extended_until}: {:#?}",
        detail.transitions
    );
    // The other session, untouched by the backlog, lapsed: recorded when it ended, not when
    // the restarted desk noticed.
    let detail = state(&desk, &other);
    let ended = session_end(detail.presentations[0].received_ms);
    let lapses = lapse_times(&detail);
    assert_eq!(lapses, vec![ended], "{:#?}", detail.transitions);
    desk.shutdown().await;
    gateway.shutdown().await.unwrap();
}

/// When a session verified at `received_ms` ends (sessions are kept to the second).
fn session_end(received_ms: i64) -> i64 {
    (received_ms / 1000) * 1000 + LIFETIME.as_millis() as i64
}

/// When the conversation's sessions lapsed.
fn lapse_times(detail: &lockdesk_desk::ConversationDetail) -> Vec<i64> {
    detail
        .transitions
        .iter()
        .filter(|t| t.state == AuthStateName::Lapsed)
        .map(|t| t.at_ms)
        .collect()
}

/// A TokenEveryPage person of the simulator's plan: the push, the presentations naming the
/// conversation (at least two), and the conversation id.
fn person(seed: u64) -> (Step, Vec<Step>, String) {
    let steps = plan(seed, &[Scenario::TokenEveryPage], &[1001], 0);
    let push = steps
        .iter()
        .find(|s| matches!(&s.action, Action::Webhook { body, .. } if body["eventType"] == "v2.conversation.pushed"))
        .unwrap()
        .clone();
    let tokens: Vec<Step> = steps
        .iter()
        .filter(|s| matches!(&s.action, Action::Evidence(e) if e.conversation_id.is_some()))
        .take(2)
        .cloned()
        .collect();
    assert_eq!(tokens.len(), 2, "the scenario presents at least two tokens");
    let Action::Webhook { body, .. } = &push.action else {
        unreachable!()
    };
    let conversation = body["conversationId"].as_str().unwrap().to_owned();
    (push, tokens, conversation)
}

/// Issue 13: while a desk catches up on a backlog, its status carries the gateway's log end
/// (from `hello`) and its own cursor as it moves, so the window can say how far behind it is;
/// once caught up, a status says so (no "to go" left). Before, the status had no log end, and
/// its cursor moved only when the connection's state changed: it stayed where the catch-up
/// began.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_says_how_far_behind_the_desk_is_while_it_catches_up() {
    let (root, keys, gateway) = keys_and_gateway().await;
    let addr = gateway.local_addr();

    // A backlog written before the desk starts.
    let steps: Vec<Step> = (0..40)
        .flat_map(|seed| plan(seed, &[Scenario::Anonymous; 4], &[1001], 0))
        .take(300)
        .collect();
    let last = tokio::task::block_in_place(|| {
        let mut sender = sender(addr, keys.sim);
        steps.iter().map(|s| send(&mut sender, s)).max().unwrap()
    });
    assert!(last >= 250, "the backlog is long: {last}");

    let mut o = options(
        &root.path().join("desk"),
        &format!("ws://{addr}/v1/feed"),
        &keys.private,
        &keys.jwks,
    );
    o.tick_every = Duration::from_millis(50);
    // One entry per transaction: a catch-up the status can be seen in.
    let desk = DeskService::start_with_feed(o, |c| c.max_batch = 1)
        .await
        .unwrap();
    let mut status = desk.status();
    let mut seen = Vec::new();
    let caught_up = tokio::time::timeout(PATIENCE, async {
        loop {
            let s = status.borrow_and_update().clone();
            seen.push(s.clone());
            if s.cursor == last && s.to_go().is_none() {
                return s;
            }
            status.changed().await.unwrap();
        }
    })
    .await
    .unwrap_or_else(|_| panic!("never caught up: {seen:#?}"));
    assert!(matches!(
        caught_up.feed,
        lockdesk_service::State::Connected { .. }
    ));
    assert_eq!(caught_up.head, last);
    assert!(!caught_up.behind_too_long);
    // Connected, the log's end is known from hello on, and what is to go adds up.
    let connected: Vec<_> = seen
        .iter()
        .filter(|s| matches!(s.feed, lockdesk_service::State::Connected { .. }))
        .collect();
    assert!(!connected.is_empty());
    for s in &connected {
        assert_eq!(s.head, last, "{s:?}");
        if let Some(n) = s.to_go() {
            assert_eq!(s.cursor + n, last, "{s:?}");
        }
    }
    // The catch-up was seen under way (the first connected status comes with hello, before
    // 300 single-entry transactions).
    assert!(
        connected.iter().any(|s| s.to_go().is_some()),
        "no status while behind: {connected:#?}"
    );
    desk.shutdown().await;
    gateway.shutdown().await.unwrap();
}
