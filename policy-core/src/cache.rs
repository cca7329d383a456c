//! The cross-request verified-token cache.
//!
//! Keyed by the exact token string (so a hit is a token whose signature was
//! already verified, byte for byte), bounded, and tied to a key-set generation:
//! when the keys change the cache is emptied and inserts computed against the
//! old keys are dropped. Time claims are *not* trusted from the cache: the
//! caller re-checks them on every hit.
//!
//! Two bounds, a number of tokens and a number of bytes, since a token's size
//! is the issuer's choice: an 8 KiB token of tiny extra claims (`{"a":0,...}`)
//! holds about 100 KiB once parsed, and 10 000 of them took about 1 GB.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::claims::Claims;

/// A verified token whose cache entry (token text, claims and their heap,
/// bookkeeping) would take more than this is not cached: it is verified again
/// on every request. Airflow's tokens take well under 1 KiB.
pub const MAX_CACHED_ENTRY_BYTES: usize = 16 * 1024;

/// What one entry costs besides the token text and the claims' heap: the
/// `HashMap` slot (boxed key, entry), the `Arc`'s counters and the claims
/// struct itself, and a control byte.
const ENTRY_OVERHEAD: usize =
    size_of::<(Box<str>, Entry)>() + 2 * size_of::<usize>() + size_of::<Claims>() + 1;

/// The bytes an entry for `token` with `claims` is charged.
pub(crate) fn entry_cost(token: &str, claims: &Claims) -> usize {
    ENTRY_OVERHEAD + token.len() + claims.heap_bytes()
}

#[derive(Debug)]
pub(crate) struct VerifiedCache {
    capacity: usize,
    budget: usize,
    inner: RwLock<Inner>,
}

#[derive(Debug)]
struct Entry {
    claims: Arc<Claims>,
    cost: usize,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<Box<str>, Entry>,
    /// Sum of the entries' costs.
    bytes: usize,
    generation: u64,
}

impl Inner {
    fn remove(&mut self, token: &str) {
        if let Some(entry) = self.entries.remove(token) {
            self.bytes -= entry.cost;
        }
    }
}

impl VerifiedCache {
    /// A cache of at most `capacity` tokens and `budget` bytes; 0 for either
    /// turns it off.
    pub(crate) fn new(capacity: usize, budget: usize) -> VerifiedCache {
        VerifiedCache {
            capacity,
            budget,
            inner: RwLock::new(Inner::default()),
        }
    }

    pub(crate) fn is_enabled(&self) -> bool {
        self.capacity > 0 && self.budget > 0
    }

    pub(crate) fn get(&self, token: &str) -> Option<Arc<Claims>> {
        if !self.is_enabled() {
            return None;
        }
        let inner = self.inner.read().unwrap_or_else(|p| p.into_inner());
        inner.entries.get(token).map(|e| Arc::clone(&e.claims))
    }

    /// Stores a verified token. `generation` is the key-set generation the
    /// token was verified against; a stale one is ignored, and so is an entry
    /// above [`MAX_CACHED_ENTRY_BYTES`] or the whole budget.
    ///
    /// When the count or the byte bound would be passed, expired entries go
    /// first, then arbitrary ones (a `HashMap`'s order is random) until 1/16
    /// of the bound is free: evicting in batches keeps the full-table scan to
    /// one in `capacity / 16` inserts when every token is new.
    pub(crate) fn insert(&self, token: &str, claims: Arc<Claims>, generation: u64, now: i64) {
        if !self.is_enabled() {
            return;
        }
        let cost = entry_cost(token, &claims);
        if cost > MAX_CACHED_ENTRY_BYTES || cost > self.budget {
            return;
        }
        let mut inner = self.inner.write().unwrap_or_else(|p| p.into_inner());
        if inner.generation != generation {
            return;
        }
        inner.remove(token);
        let full = |inner: &Inner| {
            inner.entries.len() >= self.capacity || inner.bytes + cost > self.budget
        };
        if full(&inner) {
            let before = inner.entries.len();
            inner.entries.retain(|_, e| e.claims.exp > now);
            if inner.entries.len() != before {
                inner.bytes = inner.entries.values().map(|e| e.cost).sum();
            }
        }
        if full(&inner) {
            // Room for this entry plus 1/16 of the bound (or bounds) reached.
            let (mut len, mut bytes) = (inner.entries.len(), inner.bytes);
            let max_len = if len >= self.capacity {
                self.capacity - (self.capacity / 16).max(1)
            } else {
                usize::MAX
            };
            let max_bytes = if bytes + cost > self.budget {
                (self.budget - self.budget / 16).saturating_sub(cost)
            } else {
                usize::MAX
            };
            let mut victims = Vec::new();
            for (token, entry) in &inner.entries {
                if len <= max_len && bytes <= max_bytes {
                    break;
                }
                victims.push(token.clone());
                len -= 1;
                bytes -= entry.cost;
            }
            for victim in &victims {
                inner.remove(victim);
            }
        }
        inner.bytes += cost;
        inner.entries.insert(token.into(), Entry { claims, cost });
    }

    /// Drops a token (it expired).
    pub(crate) fn remove(&self, token: &str) {
        if !self.is_enabled() {
            return;
        }
        self.inner
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(token);
    }

    /// Empties the cache and moves it to a new key-set generation.
    pub(crate) fn flush(&self, generation: u64) {
        let mut inner = self.inner.write().unwrap_or_else(|p| p.into_inner());
        inner.entries.clear();
        inner.bytes = 0;
        inner.generation = generation;
    }

    pub(crate) fn len(&self) -> usize {
        self.inner
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .entries
            .len()
    }

    /// The bytes the entries are charged, in total.
    pub(crate) fn bytes(&self) -> usize {
        self.inner.read().unwrap_or_else(|p| p.into_inner()).bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scope::TokenType;

    fn claims(exp: i64) -> Arc<Claims> {
        Arc::new(Claims {
            sub: uuid::Uuid::nil(),
            scope: TokenType::Execution,
            exp,
            iat: 0,
            nbf: 0,
            jti: None,
            aud: None,
            iss: None,
            extra: Default::default(),
        })
    }

    #[test]
    fn bounded_with_expired_entries_evicted_first() {
        let cache = VerifiedCache::new(2, usize::MAX);
        cache.insert("a", claims(10), 0, 0);
        cache.insert("b", claims(100), 0, 0);
        // At t=50 "a" is dead: it goes, "b" stays.
        cache.insert("c", claims(100), 0, 50);
        assert_eq!(cache.len(), 2);
        assert!(cache.get("a").is_none());
        assert!(cache.get("b").is_some() && cache.get("c").is_some());
        cache.insert("d", claims(100), 0, 50);
        assert_eq!(cache.len(), 2);
        assert!(cache.get("d").is_some());
    }

    #[test]
    fn many_distinct_live_tokens_stay_within_the_bound() {
        let cache = VerifiedCache::new(32, usize::MAX);
        for i in 0..1000 {
            let token = format!("t{i}");
            cache.insert(&token, claims(1_000), 0, 0);
            assert!(cache.len() <= 32, "{} entries after {i}", cache.len());
            assert!(cache.get(&token).is_some(), "the newest token is kept");
        }
        // Full: one insert evicts a batch of capacity / 16 = 2 entries.
        let full = (0..)
            .map(|i| format!("u{i}"))
            .find(|t| {
                cache.insert(t, claims(1_000), 0, 0);
                cache.len() == 32
            })
            .unwrap();
        assert!(cache.get(&full).is_some());
        cache.insert("next", claims(1_000), 0, 0);
        assert_eq!(cache.len(), 31);
    }

    #[test]
    fn stale_generation_is_ignored_and_flush_empties() {
        let cache = VerifiedCache::new(10, usize::MAX);
        cache.insert("a", claims(10), 0, 0);
        cache.flush(1);
        assert_eq!(cache.len(), 0);
        cache.insert("b", claims(10), 0, 0);
        assert!(cache.get("b").is_none());
        cache.insert("b", claims(10), 1, 0);
        assert!(cache.get("b").is_some());
        cache.remove("b");
        assert!(cache.get("b").is_none());
    }

    #[test]
    fn zero_capacity_or_budget_is_off() {
        for cache in [VerifiedCache::new(0, usize::MAX), VerifiedCache::new(10, 0)] {
            cache.insert("a", claims(10), 0, 0);
            assert!(cache.get("a").is_none());
            assert_eq!((cache.len(), cache.bytes()), (0, 0));
        }
    }

    /// Claims holding about `n` bytes of extra claims, as an issuer adding
    /// large custom claims would send them.
    fn big_claims(exp: i64, n: usize) -> Arc<Claims> {
        let mut c = (*claims(exp)).clone();
        for i in 0..n / 16 {
            c.extra.insert(format!("c{i}"), serde_json::Value::from(i));
        }
        Arc::new(c)
    }

    #[test]
    fn the_byte_total_stays_under_the_budget() {
        const BUDGET: usize = 256 * 1024;
        let cache = VerifiedCache::new(10_000, BUDGET);
        let token = |i: usize| format!("{i:08}{}", "t".repeat(8 * 1024 - 8));
        let claims = big_claims(1_000, 100);
        let cost = entry_cost(&token(0), &claims);
        assert!(cost > 8 * 1024 && cost <= MAX_CACHED_ENTRY_BYTES, "{cost}");
        for i in 0..500 {
            cache.insert(&token(i), Arc::clone(&claims), 0, 0);
            assert!(cache.bytes() <= BUDGET, "{} bytes after {i}", cache.bytes());
            assert!(cache.get(&token(i)).is_some(), "the newest token is kept");
        }
        // The byte bound, not the count, limits the cache; its accounting is exact.
        assert!(cache.len() <= BUDGET / cost && cache.len() >= BUDGET / cost / 2);
        assert_eq!(cache.bytes(), cache.len() * cost);
        // Removing, re-inserting and flushing keep the total right.
        cache.remove(&token(499));
        assert_eq!(cache.bytes(), cache.len() * cost);
        cache.insert(&token(498), Arc::clone(&claims), 0, 0);
        cache.insert(&token(498), Arc::clone(&claims), 0, 0);
        assert_eq!(cache.bytes(), cache.len() * cost);
        cache.flush(1);
        assert_eq!((cache.len(), cache.bytes()), (0, 0));
    }

    #[test]
    fn an_entry_above_the_per_entry_cap_is_not_cached() {
        let cache = VerifiedCache::new(10, usize::MAX);
        // A few KiB of token text, but claims that parse into far more.
        let huge = big_claims(1_000, 4 * 1024);
        assert!(entry_cost("t", &huge) > MAX_CACHED_ENTRY_BYTES);
        cache.insert("t", huge, 0, 0);
        assert!(cache.get("t").is_none());
        assert_eq!(cache.bytes(), 0);
        // Nor one above the whole budget, however small the cap allows.
        let cache = VerifiedCache::new(10, 100);
        cache.insert("t", claims(1_000), 0, 0);
        assert!(cache.get("t").is_none());
    }

    #[test]
    fn expired_entries_free_bytes_before_live_ones_go() {
        let one = entry_cost("a", &claims(10));
        let cache = VerifiedCache::new(100, 2 * one);
        cache.insert("a", claims(10), 0, 0);
        cache.insert("b", claims(100), 0, 0);
        cache.insert("c", claims(100), 0, 50);
        assert!(cache.get("a").is_none());
        assert!(cache.get("b").is_some() && cache.get("c").is_some());
        assert_eq!(cache.bytes(), 2 * one);
    }
}
