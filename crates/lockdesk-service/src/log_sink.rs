//! stderr for logs, whose writes never fail.
//!
//! tracing-subscriber reports a failed write with `eprintln!`, which panics when stderr is a
//! closed pipe (EPIPE) or a file on a full disk (ENOSPC): a log line would then take down the
//! request, the gateway's writer thread or the desk task that logged it. Both binaries (the
//! CLI and the desktop app, whose embedded demo runs a gateway) log to stderr through
//! [`LogSink`]: a line that cannot be written is lost, and only that.

/// An `io::Write` (and, as `|| LogSink`, a tracing `MakeWriter`) over stderr that swallows
/// write errors.
#[derive(Clone, Copy, Debug, Default)]
pub struct LogSink;

impl std::io::Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::Write::write_all(&mut std::io::stderr(), buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = std::io::Write::flush(&mut std::io::stderr());
        Ok(())
    }
}
