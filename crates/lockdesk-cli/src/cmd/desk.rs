//! `lockdesk-cli watch`, `history` and `demo`: the desk core headless.
//!
//! - `watch` subscribes to a gateway's feed, verifies every presentation and prints one line per
//!   state change or alert (`--json`: the documented JSON line);
//! - `history USERID` prints a verified person's cross-device history from the local store;
//! - `demo` runs the embedded demo (gateway + simulator + desk core in this process), what the
//!   desktop app runs when no feed is configured.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use lockdesk_demo::DemoSettings;
use lockdesk_desk::{AuthStateName, Change, DeskReader, History, LookAlike, VisitorSource};
use lockdesk_feed_client::{Credential, State, StopReason};
use lockdesk_keys::Source;
use lockdesk_service::{DeskService, Options, ServiceEvent, DESK_FILE};

use crate::out::{visible, Shown};

#[derive(clap::Args)]
pub struct WatchArgs {
    /// The gateway's feed, e.g. wss://gateway.example.com/v1/feed (ws:// only to this machine).
    /// Repeat it for several instances of one gateway: they are tried in the given order and
    /// the desk fails over to the next when one cannot be reached (replaces `[feed] url`).
    #[arg(long, value_name = "URL")]
    feed: Vec<String>,
    /// This desk's subscriber credential (prefer the environment variable: command lines are
    /// visible to other users of the machine).
    #[arg(long, env = "LOCKDESK_FEED_CREDENTIAL", hide_env_values = true)]
    credential: Option<String>,
    /// Also trust the CA certificates in this PEM file for wss:// (a load balancer's private
    /// CA; replaces `[feed] ca_file`). Verification stays on.
    #[arg(long, value_name = "PATH")]
    ca_file: Option<PathBuf>,
    /// Lockdesk's configuration file (feed, trusted issuers, decryption keys, session lifetime).
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Trust ISSUER's key: a key file (PEM, JWK, JWKS) or an https:// JWKS URL (repeatable).
    #[arg(long, value_name = "ISSUER=KEY")]
    trust: Vec<String>,
    /// The desk's private key that opens the encrypted layer (repeatable).
    #[arg(long, value_name = "PATH")]
    decrypt_key: Vec<PathBuf>,
    /// Minutes a conversation stays secured after a valid token (default: the configuration's,
    /// or 60).
    #[arg(long, value_name = "MINUTES")]
    session_lifetime: Option<u32>,
    /// The folder of the local store (default: Lockdesk's data folder).
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// One JSON line per state change or alert.
    #[arg(long)]
    json: bool,
    /// Stop after this many seconds (default: until interrupted).
    #[arg(long, value_name = "SECONDS")]
    duration: Option<f64>,
    /// After the desk stopped with "the gateway serves another log": follow the gateway's
    /// current log. The local store is moved aside (kept, with its history and audit log, as
    /// desk.log-<its log id>.sqlite3 in the data folder) and a new one starts from the
    /// beginning of the new log. Stop the app and any other desk on this folder first.
    #[arg(long)]
    accept_new_log: bool,
}

#[derive(clap::Args)]
pub struct HistoryArgs {
    /// The verified userId.
    user_id: String,
    /// The folder of the local store (default: Lockdesk's data folder).
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct DemoArgs {
    /// The demo's folder (default: `demo` in Lockdesk's data folder). Kept between runs; one demo at
    /// a time (locked: a second one on the folder is refused).
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// One JSON line per state change or alert.
    #[arg(long)]
    json: bool,
    /// The first pass's seed (same seed, same people, devices and ids).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Stop the simulator after this many passes over every scenario (default: endless).
    #[arg(long)]
    passes: Option<u64>,
    /// Stop after this many seconds (default: until interrupted).
    #[arg(long, value_name = "SECONDS")]
    duration: Option<f64>,
    /// The demo's session lifetime in seconds (short, so a session visibly lapses).
    #[arg(long, default_value_t = 45)]
    session_lifetime_secs: i64,
    /// Subscribe as the supervisor (every conversation) instead of the advisor.
    #[arg(long)]
    supervisor: bool,
}

fn data_dir(data: &Option<PathBuf>) -> anyhow::Result<PathBuf> {
    match data {
        Some(d) => Ok(d.clone()),
        None => lockdesk_config::data_dir().context("--data"),
    }
}

fn duration(secs: Option<f64>, flag: &str) -> anyhow::Result<Option<Duration>> {
    match secs {
        None => Ok(None),
        Some(s) if s > 0.0 && s.is_finite() && s < 1e9 => Ok(Some(Duration::from_secs_f64(s))),
        Some(_) => bail!("{flag}: expected a positive number of seconds"),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// One change as a line. Every string in it came from the feed (a webhook's channel, a token's
/// userId, ids): each is printed through [`Shown`], so none can drive the terminal or reorder
/// the line.
fn human_line(c: &Change, look_alike: Option<&LookAlike>) -> String {
    let mut line = format!(
        "{} seq {:>6}  {:<36}  {:<12}",
        lockdesk_desk::format_rfc3339(c.at_ms),
        c.seq,
        Shown(c.conversation_id.as_deref().unwrap_or("-")),
        Shown(c.state.map_or("-", |s| s.code())),
    );
    if let Some(ch) = &c.channel {
        line.push_str(&format!("  {}", Shown(ch)));
    }
    if let Some(u) = &c.user_id {
        line.push_str(&format!("  user {:?}", Shown(u)));
        if let Some(l) = look_alike {
            line.push_str(&format!("  {}", look_alike_marker(l)));
        }
    }
    if let Some(r) = c.reason {
        line.push_str(&format!("  reason {}", r.code()));
    }
    if let Some(a) = c.alert {
        line.push_str(&format!("  ALERT {}", a.code()));
    }
    line
}

/// The feed client's state for stderr, through [`Shown`]: the URL, and a gateway's close reason
/// inside `reason`, are text from outside.
fn state_line(status: &State) -> String {
    let line = match status {
        State::Connecting { url } => format!("connecting to {url}"),
        State::Connected {
            url,
            after,
            last_seq,
        } => format!("connected to {url} (resuming after {after}; the log ends at {last_seq})"),
        State::Disconnected { reason, retry_in } => {
            format!(
                "disconnected: {reason}; retrying in {:.1} s",
                retry_in.as_secs_f64()
            )
        }
        State::Stopped { reason } => format!("stopped: {reason}"),
    };
    visible(&line).into_owned()
}

/// `[look-alike of cust-48151623]` (the imitated userId through [`Shown`]), `[mixes scripts]`,
/// or both: the desk's look-alike marker of a verified userId (issue 12).
fn look_alike_marker(l: &LookAlike) -> String {
    match (&l.imitates, l.mixed_script) {
        (Some(of), true) => format!("[look-alike of {}, mixes scripts]", Shown(of)),
        (Some(of), false) => format!("[look-alike of {}]", Shown(of)),
        (None, _) => "[mixes scripts]".into(),
    }
}

/// The look-alike marker of the userId a change names, from the store (the change itself does
/// not carry it): the conversation's identity card, or its row, for that userId.
fn look_alike_of(service: &DeskService, c: &Change) -> Option<LookAlike> {
    let (cid, user) = (c.conversation_id.as_deref()?, c.user_id.as_deref()?);
    let detail = service.read(|d| d.conversation(cid)).ok().flatten()?;
    match detail.identity {
        Some(card) if card.user_id == user => card.look_alike,
        _ if detail.row.user_id.as_deref() == Some(user) => detail.row.look_alike,
        _ => None,
    }
}

fn print_event(ev: &ServiceEvent, json: bool, service: &DeskService) -> std::io::Result<()> {
    use std::io::Write;
    match ev {
        ServiceEvent::Changes(changes) => {
            let mut out = std::io::stdout().lock();
            for c in changes.iter() {
                let line = if json {
                    // The documented JSON line, hazards as \u escapes (crate::out::json).
                    crate::out::json(c)
                } else {
                    human_line(c, look_alike_of(service, c).as_ref())
                };
                writeln!(out, "{line}")?;
            }
            out.flush()
        }
        ServiceEvent::Skipped(skipped) => {
            for s in skipped.iter() {
                eprintln!("lockdesk-cli: entry {} skipped: {}", s.seq, Shown(&s.error));
            }
            Ok(())
        }
    }
}

/// SIGINT (Ctrl-C), listened for from before the desk starts and for the whole run: a `ctrl_c()`
/// future made afresh at each turn of the printing loop misses a signal that arrives while an
/// event is being printed (the watch then never stopped).
struct Interrupt {
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
    #[cfg(not(unix))]
    ctrl_c: std::pin::Pin<Box<dyn std::future::Future<Output = std::io::Result<()>> + Send>>,
}

impl Interrupt {
    fn install() -> anyhow::Result<Interrupt> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Interrupt {
                int: signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(Interrupt {
                ctrl_c: Box::pin(tokio::signal::ctrl_c()),
            })
        }
    }

    async fn recv(&mut self) {
        #[cfg(unix)]
        self.int.recv().await;
        #[cfg(not(unix))]
        let _ = (&mut self.ctrl_c).await;
    }
}

/// Prints changes until interrupted, the duration ends, or the feed client stops for good.
async fn follow(
    service: DeskService,
    json: bool,
    limit: Option<Duration>,
    mut interrupt: Interrupt,
) -> anyhow::Result<ExitCode> {
    let mut events = service.events();
    let mut status = service.status();
    let deadline = limit.map(|d| tokio::time::Instant::now() + d);
    let sleep_until = async move {
        match deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(sleep_until);
    let mut stopped = None;
    // The feed's state as last printed: the status also changes for other news (how far behind
    // the desk is), which is not a new line. The state at start is printed too ("connecting to").
    let mut said = None;
    match status.borrow_and_update().clone().feed {
        State::Stopped { reason } => stopped = Some(reason),
        feed => {
            let line = state_line(&feed);
            eprintln!("lockdesk-cli: {line}");
            said = Some(line);
        }
    }
    while stopped.is_none() {
        tokio::select! {
            _ = interrupt.recv() => break,
            _ = &mut sleep_until => break,
            ev = events.recv() => match ev {
                Ok(ev) => print_event(&ev, json, &service)?,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    eprintln!("lockdesk-cli: {n} changes were not printed (output too slow); they are in the store");
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            },
            changed = status.changed() => {
                if changed.is_err() {
                    // The service's status task is gone: never a quiet success.
                    stopped = Some(StopReason::Failed("the desk's status task ended".into()));
                    break;
                }
                let s = status.borrow_and_update().clone();
                if let State::Stopped { reason } = s.feed {
                    // Said once, after the loop ("the feed client stopped: ...").
                    stopped = Some(reason);
                    break;
                }
                let line = state_line(&s.feed);
                if said.as_ref() != Some(&line) {
                    eprintln!("lockdesk-cli: {line}");
                    said = Some(line);
                }
            }
        }
    }
    let counters = service.counters();
    service.shutdown().await;
    // What was committed before the stop but not printed yet (an interrupt or the end of
    // --duration can win the race against the last batch's event): print it now, so a graceful
    // stop never leaves a committed change unprinted.
    while let Ok(ev) = events.try_recv() {
        print_event(&ev, json, &service)?;
    }
    if counters.malformed_frames > 0 {
        eprintln!(
            "lockdesk-cli: {} malformed frames were skipped",
            counters.malformed_frames
        );
    }
    match stopped {
        Some(reason) => {
            eprintln!(
                "lockdesk-cli: the feed client stopped: {}",
                Shown(&reason.to_string())
            );
            Ok(ExitCode::from(1))
        }
        None => Ok(ExitCode::SUCCESS),
    }
}

pub fn watch(args: WatchArgs) -> anyhow::Result<ExitCode> {
    let limit = duration(args.duration, "--duration")?;
    let config = match &args.config {
        Some(path) => {
            if !path.is_file() {
                bail!("--config {}: no such file", path.display());
            }
            lockdesk_config::load(path).with_context(|| format!("--config {}", path.display()))?
        }
        None => lockdesk_config::Config::default(),
    };
    let data = data_dir(&args.data)?;
    if args.accept_new_log {
        match lockdesk_desk::archive_store(&data.join(DESK_FILE)).context("--accept-new-log")? {
            Some(moved) => eprintln!(
                "lockdesk-cli: the desk store was moved to {}; a new one follows the gateway's current log",
                moved.display()
            ),
            None => eprintln!(
                "lockdesk-cli: --accept-new-log: no desk store in {} yet",
                data.display()
            ),
        }
    }
    let mut options = Options::from_config(&config, &data);
    if !args.feed.is_empty() {
        options.feed_urls = args.feed;
    }
    if options.feed_urls.is_empty() {
        bail!("no feed: pass --feed URL or --config PATH with [feed] url");
    }
    if args.ca_file.is_some() {
        options.ca_file = args.ca_file;
    }
    match args.credential {
        Some(c) => options.credential = Credential::new(c),
        None if config.feed.credential.is_none() => {
            bail!("no credential: pass --credential, set LOCKDESK_FEED_CREDENTIAL, or use --config")
        }
        None => {}
    }
    for t in &args.trust {
        let Some((issuer, key)) = t.split_once('=') else {
            bail!("--trust {t:?}: expected ISSUER=KEYFILE_OR_URL");
        };
        if issuer.is_empty() || key.is_empty() {
            bail!("--trust {t:?}: expected ISSUER=KEYFILE_OR_URL with both parts non-empty");
        }
        options
            .keys
            .trust
            .push((issuer.to_owned(), Source::parse(key)));
    }
    options
        .keys
        .decryption
        .extend(args.decrypt_key.iter().cloned());
    if options.keys.trust.is_empty() {
        bail!("no trusted issuer: pass --trust ISSUER=KEYFILE_OR_URL or --config PATH");
    }
    if let Some(m) = args.session_lifetime {
        if m == 0 {
            bail!("--session-lifetime 0: expected at least 1 minute");
        }
        options.desk.session_lifetime_secs = i64::from(m) * 60;
    }
    let rt = runtime()?;
    rt.block_on(async move {
        let interrupt = Interrupt::install()?;
        let service = DeskService::start(options).await?;
        follow(service, args.json, limit, interrupt).await
    })
}

pub fn history(args: HistoryArgs) -> anyhow::Result<ExitCode> {
    let path = data_dir(&args.data)?.join(DESK_FILE);
    if !path.is_file() {
        bail!(
            "no desk store at {}: run `lockdesk-cli watch` (or the app) first, or pass --data",
            path.display()
        );
    }
    // Read-only: never creates, migrates or writes the store.
    let desk = DeskReader::open(&path).with_context(|| path.display().to_string())?;
    let history = desk.history(&args.user_id)?;
    if args.json {
        println!("{}", crate::out::json(&history));
        return Ok(ExitCode::SUCCESS);
    }
    print_history(&args.user_id, &history);
    Ok(ExitCode::SUCCESS)
}

/// A readable rendering of a history. Every value is text from outside (ids, channels,
/// domains, devices, userIds): `text` passes each through [`visible`]; an absent value is `-`.
fn print_history(user_id: &str, h: &History) {
    let text = |v: Option<&str>| v.map_or_else(|| "-".into(), |v| visible(v).into_owned());
    // A time in ms as RFC 3339 UTC; an absent value is `-`.
    let date = |ms: Option<i64>| ms.map_or_else(|| "-".into(), lockdesk_desk::format_rfc3339);
    println!("History of {:?}", Shown(user_id));
    if h.visitors.is_empty() {
        println!("No device is linked to this userId by a valid token.");
    } else {
        println!("Devices (visitor ids linked by a valid token):");
        for vis in &h.visitors {
            println!(
                "  visitor {}  first seen {}  last seen {}",
                text(Some(&vis.visitor_id)),
                date(Some(vis.first_seen_ms)),
                date(Some(vis.last_seen_ms))
            );
        }
    }
    println!("Conversations ({}):", h.conversations.len());
    for c in &h.conversations {
        let r = &c.row;
        // Every column is labelled; the dates are the conversation's own (opened, closed),
        // RFC 3339 UTC like the device lines.
        let mut fields: Vec<String> = vec![
            format!("conversation {}", text(Some(&r.conversation_id))),
            format!("opened {}", date(r.opened_ms)),
            format!("closed {}", date(r.closed_ms)),
            format!("channel {}", text(Some(&r.channel))),
            format!("source {}", text(r.source.map(VisitorSource::code))),
            format!("domain {}", text(r.domain.as_deref())),
            format!("device {}", text(r.device.as_deref())),
        ];
        // A closed conversation keeps the state it ended in (secured, failed, mismatch...).
        fields.push(
            if r.state == AuthStateName::Closed && r.auth_state != AuthStateName::Closed {
                format!("state closed (was {})", r.auth_state)
            } else {
                format!("state {}", r.state)
            },
        );
        if let Some(l) = &r.look_alike {
            fields.push(format!(
                "user {:?} {}",
                Shown(&text(r.user_id.as_deref())),
                look_alike_marker(l)
            ));
        }
        if let Some(u) = &r.platform_user_id {
            fields.push(format!("platform says {:?}", Shown(u)));
        }
        println!(
            "  {}{}",
            fields.join("  "),
            if c.anonymous_before_login {
                "  (anonymous before login)"
            } else {
                ""
            }
        );
    }
}

pub fn demo(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let limit = duration(args.duration, "--duration")?;
    if args.session_lifetime_secs < 1 {
        bail!("--session-lifetime-secs: expected at least 1");
    }
    let dir = match args.data {
        Some(d) => d,
        None => lockdesk_config::data_dir().context("--data")?.join("demo"),
    };
    let settings = DemoSettings {
        seed: args.seed,
        session_lifetime_secs: args.session_lifetime_secs,
        passes: args.passes,
        supervisor: args.supervisor,
        ..DemoSettings::default()
    };
    let rt = runtime()?;
    rt.block_on(async move {
        let interrupt = Interrupt::install()?;
        let service = lockdesk_demo::start(&dir, settings).await?;
        if let Some(d) = service.demo() {
            eprintln!(
                "lockdesk-cli: demo: gateway on {}, data in {} (kept between runs; locked while this runs)",
                d.gateway.map(|a| a.to_string()).unwrap_or_default(),
                d.dir.display()
            );
            if let Some(kept) = &d.archived {
                eprintln!(
                    "lockdesk-cli: demo: its gateway log was gone or another one: the previous \
                     desk store was set aside as {} and a new one started",
                    kept.display()
                );
            }
        }
        follow(service, args.json, limit, interrupt).await
    })
}
