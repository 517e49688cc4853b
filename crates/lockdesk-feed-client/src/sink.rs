//! The sink's own thread: the caller's [`Sink`] lives there and is called one request at a time,
//! in the order the actor sends them, never on the async executor.
//!
//! Must not: be blocked by the actor (the actor awaits replies; this thread blocks on its queue).

use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};

use crate::{Entry, Sink};

/// What the actor asks of the sink.
pub(crate) enum Request {
    Cursor(oneshot::Sender<Result<u64, String>>),
    Log(String, oneshot::Sender<Result<crate::LogCheck, String>>),
    /// Apply `entries` (if any), then, if that succeeded, report `seen`.
    Apply {
        entries: Vec<Entry>,
        seen: Option<u64>,
        reply: oneshot::Sender<Result<(), String>>,
    },
}

/// The sink could not answer.
pub(crate) enum SinkError {
    /// It returned an error (its `Display`).
    Failed(String),
    /// Its thread is gone (it panicked: [`SinkThread::panic_message`] says why once it ended).
    Gone,
}

pub(crate) struct SinkThread {
    requests: Option<mpsc::Sender<Request>>,
    finished: Option<oneshot::Receiver<()>>,
    /// The message of the panic that ended the thread, if one did.
    panicked: Arc<Mutex<Option<String>>>,
}

impl SinkThread {
    pub(crate) fn start<S: Sink>(mut sink: S) -> std::io::Result<SinkThread> {
        let (requests, mut rx) = mpsc::channel::<Request>(1);
        let (done, finished) = oneshot::channel();
        let panicked: Arc<Mutex<Option<String>>> = Arc::default();
        let panic_slot = panicked.clone();
        std::thread::Builder::new()
            .name("feed-sink".into())
            .spawn(move || {
                while let Some(request) = rx.blocking_recv() {
                    // A panicking sink is a bug in the caller's store: its state is unknown, so
                    // it is called no more; the panic's message reaches the client's state. The
                    // request's reply is dropped while unwinding, which the actor sees first.
                    let call = std::panic::AssertUnwindSafe(|| handle(&mut sink, request));
                    if let Err(panic) = std::panic::catch_unwind(call) {
                        let message = crate::panic_message(&*panic);
                        tracing::error!(%message, "the feed client's sink panicked");
                        *panic_slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(message);
                        break;
                    }
                }
                drop(rx);
                // Dropping a sink that panicked may panic again: contain it too.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(sink)));
                let _ = done.send(());
            })?;
        Ok(SinkThread {
            requests: Some(requests),
            finished: Some(finished),
            panicked,
        })
    }

    /// The message of the panic that ended the sink's thread (known once [`SinkThread::stop`]
    /// returned).
    pub(crate) fn panic_message(&self) -> Option<String> {
        self.panicked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) async fn cursor(&self) -> Result<u64, SinkError> {
        let (reply, rx) = oneshot::channel();
        self.send(Request::Cursor(reply)).await?;
        match rx.await {
            Ok(Ok(cursor)) => Ok(cursor),
            Ok(Err(e)) => Err(SinkError::Failed(e)),
            Err(_) => Err(SinkError::Gone),
        }
    }

    /// Asks the sink whether `log_id` is the log its cursor belongs to ([`crate::Sink::log`]).
    pub(crate) async fn log(&self, log_id: String) -> Result<crate::LogCheck, SinkError> {
        let (reply, rx) = oneshot::channel();
        self.send(Request::Log(log_id, reply)).await?;
        match rx.await {
            Ok(Ok(check)) => Ok(check),
            Ok(Err(e)) => Err(SinkError::Failed(e)),
            Err(_) => Err(SinkError::Gone),
        }
    }

    /// Queues an apply; the returned receiver answers when it is done.
    pub(crate) async fn apply(
        &self,
        entries: Vec<Entry>,
        seen: Option<u64>,
    ) -> Result<oneshot::Receiver<Result<(), String>>, SinkError> {
        let (reply, rx) = oneshot::channel();
        self.send(Request::Apply {
            entries,
            seen,
            reply,
        })
        .await?;
        Ok(rx)
    }

    async fn send(&self, request: Request) -> Result<(), SinkError> {
        match &self.requests {
            Some(tx) => tx.send(request).await.map_err(|_| SinkError::Gone),
            None => Err(SinkError::Gone),
        }
    }

    /// Closes the queue and waits until the thread has dropped the sink.
    pub(crate) async fn stop(&mut self) {
        self.requests = None;
        if let Some(finished) = self.finished.take() {
            let _ = finished.await;
        }
    }
}

fn handle<S: Sink>(sink: &mut S, request: Request) {
    match request {
        Request::Cursor(reply) => {
            let _ = reply.send(sink.cursor().map_err(|e| e.to_string()));
        }
        Request::Log(log_id, reply) => {
            let _ = reply.send(sink.log(&log_id).map_err(|e| e.to_string()));
        }
        Request::Apply {
            entries,
            seen,
            reply,
        } => {
            let result = if entries.is_empty() {
                Ok(())
            } else {
                sink.apply(entries).map_err(|e| e.to_string())
            };
            if let (Ok(()), Some(seq)) = (&result, seen) {
                sink.seen(seq);
            }
            let _ = reply.send(result);
        }
    }
}
