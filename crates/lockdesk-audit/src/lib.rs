//! The supervisor audit log: a tamper-evident hash chain in SQLite, verification, export, retention and erasure
