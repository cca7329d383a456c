//! The cross-request verified-token cache.
//!
//! Keyed by the exact token string (so a hit is a token whose signature was
//! already verified, byte for byte), bounded, and tied to a key-set generation:
//! when the keys change the cache is emptied and inserts computed against the
//! old keys are dropped. Time claims are *not* trusted from the cache: the
//! caller re-checks them on every hit.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::claims::Claims;

#[derive(Debug)]
pub(crate) struct VerifiedCache {
    capacity: usize,
    inner: RwLock<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<Box<str>, Arc<Claims>>,
    generation: u64,
}

impl VerifiedCache {
    /// A cache of at most `capacity` tokens; 0 turns it off.
    pub(crate) fn new(capacity: usize) -> VerifiedCache {
        VerifiedCache {
            capacity,
            inner: RwLock::new(Inner::default()),
        }
    }

    pub(crate) fn is_enabled(&self) -> bool {
        self.capacity > 0
    }

    pub(crate) fn get(&self, token: &str) -> Option<Arc<Claims>> {
        if !self.is_enabled() {
            return None;
        }
        let inner = self.inner.read().unwrap_or_else(|p| p.into_inner());
        inner.entries.get(token).cloned()
    }

    /// Stores a verified token. `generation` is the key-set generation the
    /// token was verified against; a stale one is ignored. When full, expired
    /// entries go first, then a batch of arbitrary ones (a `HashMap`'s order is
    /// random): evicting 1/16 of the capacity at once keeps the full-table scan
    /// to one in `capacity / 16` inserts when every token is new.
    pub(crate) fn insert(&self, token: &str, claims: Arc<Claims>, generation: u64, now: i64) {
        if !self.is_enabled() {
            return;
        }
        let mut inner = self.inner.write().unwrap_or_else(|p| p.into_inner());
        if inner.generation != generation {
            return;
        }
        if inner.entries.len() >= self.capacity {
            inner.entries.retain(|_, c| c.exp > now);
            if inner.entries.len() >= self.capacity {
                let batch = (self.capacity / 16).max(1) + inner.entries.len() - self.capacity;
                let victims: Vec<Box<str>> = inner.entries.keys().take(batch).cloned().collect();
                for victim in &victims {
                    inner.entries.remove(victim);
                }
            }
        }
        inner.entries.insert(token.into(), claims);
    }

    /// Drops a token (it expired).
    pub(crate) fn remove(&self, token: &str) {
        if !self.is_enabled() {
            return;
        }
        self.inner
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entries
            .remove(token);
    }

    /// Empties the cache and moves it to a new key-set generation.
    pub(crate) fn flush(&self, generation: u64) {
        let mut inner = self.inner.write().unwrap_or_else(|p| p.into_inner());
        inner.entries.clear();
        inner.generation = generation;
    }

    pub(crate) fn len(&self) -> usize {
        self.inner
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .entries
            .len()
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
        let cache = VerifiedCache::new(2);
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
        let cache = VerifiedCache::new(32);
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
        let cache = VerifiedCache::new(10);
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
    fn zero_capacity_is_off() {
        let cache = VerifiedCache::new(0);
        cache.insert("a", claims(10), 0, 0);
        assert!(cache.get("a").is_none());
        assert_eq!(cache.len(), 0);
    }
}
