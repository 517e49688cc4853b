//! A feed that runs inside this process: the embedded demo (crate `lockdesk-demo`, which owns
//! the gateway server, the simulator and the iAdvize stand-in). This crate knows it only through
//! [`Embedded`], so a desk built without the demo links none of them.
//!
//! The service starts on the embedded feed's [`Embedded::options`], keeps its store only when it
//! belongs to [`Embedded::log_id`] (another log's store is set aside), stops with
//! [`crate::StopReason::Failed`] when [`Embedded::engine_failure`] resolves, and shuts it down
//! after the feed client ([`crate::DeskService::shutdown`]).

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

use crate::Options;

/// What the rest of the app may know about a running demo.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DemoFacts {
    pub dir: PathBuf,
    pub gateway: Option<std::net::SocketAddr>,
    /// The iAdvize API stand-in's address, when the demo backfills.
    pub iadvize: Option<std::net::SocketAddr>,
    /// The demo's gateway log was gone or another one than the desk store's: the previous
    /// store was set aside here (with its history and audit chain) and a new one started.
    pub archived: Option<PathBuf>,
}

/// A running feed inside this process, handed to [`crate::DeskService::start_embedded`], which
/// owns it from then on.
pub trait Embedded: Send + 'static {
    /// The desk options that subscribe to it (its folder, feed address, keys; `demo` set).
    fn options(&self) -> Options;
    /// The identity of its gateway log: the desk store must belong to it.
    fn log_id(&self) -> &str;
    /// Its folder and addresses (`archived` is filled in by the service).
    fn facts(&self) -> DemoFacts;
    /// Resolves with why its engine stopped (it could not start, or panicked); never resolves
    /// otherwise. Taken once.
    fn engine_failure(&mut self) -> Option<tokio::sync::oneshot::Receiver<String>>;
    /// Stops it (called once, after the feed client stopped).
    fn shutdown(self: Box<Self>) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}
