//! The verdict cache: a byte-identical token seen again while still valid is answered from
//! memory, without RSA. Only verified verdicts are kept (a rejection is cheap to recompute or
//! time-dependent); the time rules are re-applied on every hit with the caller's `now`.
//!
//! Keyed by the token bytes themselves (compared in full on a hit) under a randomly seeded fast
//! hash, so colliding entries cannot be forced and a hit never trusts a hash alone.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::claims::check_time;
use crate::verdict::Verified;
use crate::Policy;

/// Bound on entries; at the limit expired entries are dropped, then everything if still full.
const MAX_ENTRIES: usize = 65_536;

pub struct Cache {
    map: Mutex<HashMap<Box<[u8]>, Verified, foldhash::fast::RandomState>>,
}

impl Cache {
    pub fn new() -> Self {
        Cache {
            map: Mutex::new(HashMap::with_hasher(foldhash::fast::RandomState::default())),
        }
    }

    pub fn get(&self, token: &[u8], now: i64, policy: &Policy) -> Option<Verified> {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let v = map.get(token)?;
        // Expired or not yet valid at `now`: fall through to full verification, which gives the
        // precise rejection.
        check_time(v.expires_at, v.not_before, v.issued_at, now, policy).ok()?;
        Some(v.clone())
    }

    pub fn insert(&self, token: &[u8], verified: &Verified, now: i64) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_ENTRIES {
            map.retain(|_, v| v.expires_at > now);
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
        }
        map.insert(token.into(), verified.clone());
    }
}
