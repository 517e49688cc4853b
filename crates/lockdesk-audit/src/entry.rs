//! One stored entry, read back from the file without trusting it.

use rusqlite::types::ValueRef;
use rusqlite::Row;

use crate::chain::{self, Chained};

/// The columns [`read`] expects, in order.
pub(crate) const COLUMNS: &str = "seq, at_ms, kind, conversation_id, operator_id, data, user_id, \
     visitor_id, visitor_data, salt, commitment, prev_hash, hash, erased_by";

/// One entry as stored. Personal fields are `None` on a tombstone (`salt` is `None` too).
#[derive(Clone, PartialEq, Eq)]
pub struct Entry {
    pub seq: u64,
    pub at_ms: i64,
    pub kind: String,
    pub conversation_id: Option<String>,
    pub operator_id: Option<u64>,
    /// Public details, canonical JSON (without `visitorData`).
    pub data: String,
    pub user_id: Option<String>,
    pub visitor_id: Option<String>,
    /// `visitorData`, canonical JSON.
    pub visitor_data: Option<String>,
    pub salt: Option<Vec<u8>>,
    pub commitment: [u8; 32],
    pub prev_hash: [u8; 32],
    pub hash: [u8; 32],
    /// The erasure entry that made this a tombstone.
    pub erased_by: Option<u64>,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("seq", &self.seq)
            .field("at_ms", &self.at_ms)
            .field("kind", &self.kind)
            .field("conversation_id", &self.conversation_id)
            .field("operator_id", &self.operator_id)
            .field("tombstone", &self.is_tombstone())
            .field("hash", &hex::encode(self.hash))
            .finish_non_exhaustive()
    }
}

impl Entry {
    pub fn is_tombstone(&self) -> bool {
        self.salt.is_none()
    }

    /// The hash recomputed from the stored fields.
    pub fn computed_hash(&self) -> [u8; 32] {
        chain::entry_hash(&Chained {
            seq: self.seq,
            prev_hash: &self.prev_hash,
            at_ms: self.at_ms,
            kind: &self.kind,
            conversation_id: self.conversation_id.as_deref(),
            operator_id: self.operator_id,
            data: &self.data,
            commitment: &self.commitment,
        })
    }

    /// The commitment recomputed from the personal fields, or `None` on a tombstone.
    pub fn computed_commitment(&self) -> Option<[u8; 32]> {
        self.salt.as_ref().map(|salt| {
            chain::commitment(
                salt,
                self.user_id.as_deref(),
                self.visitor_id.as_deref(),
                self.visitor_data.as_deref(),
            )
        })
    }
}

/// Why a row could not be read as an entry (a hand-edited file): the row's seq if it had one.
pub(crate) struct Unreadable {
    pub seq: Option<u64>,
    pub what: String,
}

fn text(row: &Row<'_>, i: usize, name: &str) -> Result<Option<String>, String> {
    match row.get_ref(i).map_err(|e| e.to_string())? {
        ValueRef::Null => Ok(None),
        ValueRef::Text(t) => std::str::from_utf8(t)
            .map(|s| Some(s.to_owned()))
            .map_err(|_| format!("{name} is not UTF-8")),
        other => Err(format!("{name} is {:?}, not text", other.data_type())),
    }
}

fn int(row: &Row<'_>, i: usize, name: &str) -> Result<Option<i64>, String> {
    match row.get_ref(i).map_err(|e| e.to_string())? {
        ValueRef::Null => Ok(None),
        ValueRef::Integer(n) => Ok(Some(n)),
        other => Err(format!("{name} is {:?}, not an integer", other.data_type())),
    }
}

fn blob(row: &Row<'_>, i: usize, name: &str) -> Result<Option<Vec<u8>>, String> {
    match row.get_ref(i).map_err(|e| e.to_string())? {
        ValueRef::Null => Ok(None),
        ValueRef::Blob(b) => Ok(Some(b.to_vec())),
        other => Err(format!("{name} is {:?}, not a blob", other.data_type())),
    }
}

fn hash32(row: &Row<'_>, i: usize, name: &str) -> Result<[u8; 32], String> {
    blob(row, i, name)?
        .ok_or_else(|| format!("{name} is missing"))?
        .try_into()
        .map_err(|_| format!("{name} is not 32 bytes"))
}

fn unsigned(v: Option<i64>, name: &str) -> Result<Option<u64>, String> {
    v.map(|n| u64::try_from(n).map_err(|_| format!("{name} is negative")))
        .transpose()
}

/// Read a row selected with [`COLUMNS`].
pub(crate) fn read(row: &Row<'_>) -> Result<Entry, Unreadable> {
    let seq = match int(row, 0, "seq").and_then(|s| unsigned(s, "seq")) {
        Ok(Some(s)) => s,
        Ok(None) => {
            return Err(Unreadable {
                seq: None,
                what: "seq is missing".into(),
            })
        }
        Err(what) => return Err(Unreadable { seq: None, what }),
    };
    let fields = || -> Result<Entry, String> {
        Ok(Entry {
            seq,
            at_ms: int(row, 1, "at_ms")?.ok_or("at_ms is missing")?,
            kind: text(row, 2, "kind")?.ok_or("kind is missing")?,
            conversation_id: text(row, 3, "conversation_id")?,
            operator_id: unsigned(int(row, 4, "operator_id")?, "operator_id")?,
            data: text(row, 5, "data")?.ok_or("data is missing")?,
            user_id: text(row, 6, "user_id")?,
            visitor_id: text(row, 7, "visitor_id")?,
            visitor_data: text(row, 8, "visitor_data")?,
            salt: blob(row, 9, "salt")?,
            commitment: hash32(row, 10, "commitment")?,
            prev_hash: hash32(row, 11, "prev_hash")?,
            hash: hash32(row, 12, "hash")?,
            erased_by: unsigned(int(row, 13, "erased_by")?, "erased_by")?,
        })
    };
    fields().map_err(|what| Unreadable {
        seq: Some(seq),
        what,
    })
}
