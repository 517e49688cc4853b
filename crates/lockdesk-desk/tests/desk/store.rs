//! The store: idempotence, time-based lapse, malformed entries, migrations, backfill, the
//! change line, and a child process SIGKILLed mid-apply.
