//! The desk core: applies the feed to a local SQLite store, verifies evidence, keeps conversation states, identities, cross-device history and alerts
