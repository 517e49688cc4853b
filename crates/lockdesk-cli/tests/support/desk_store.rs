//! A desk store (`DATA/desk.sqlite3`) read from outside the process that writes it, by its data
//! folder: lockdesk-testkit's desk_store (the one snapshot lockdesk-service's reliability test
//! compares by too).

use std::path::Path;

use lockdesk_testkit::desk_store;

/// The committed cursor of the desk store in `data` (0 before it exists).
pub fn cursor(data: &Path) -> u64 {
    desk_store::cursor(&data.join("desk.sqlite3"))
}

/// Panics unless the stores in `data` (the desk under test, `what`) and `reference` (an
/// uninterrupted desk's) hold the same rows, naming the first table and row that differ.
pub fn assert_same(data: &Path, what: &str, reference: &Path) {
    desk_store::assert_same(
        &data.join("desk.sqlite3"),
        what,
        &reference.join("desk.sqlite3"),
        "the uninterrupted desk",
    );
}
