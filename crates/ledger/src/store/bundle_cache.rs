//! A bounded, in-memory cache of *verified* full entry bundles.
//!
//! Every entry the engine serves is re-hashed against its leaf hash in the level-0 tile first
//! (see [`Ledger::entry_bundle`](crate::Ledger::entry_bundle)). For a full bundle of 256
//! entries of 512 bytes that is ~128 KiB of SHA-256 per read, several times the cost of the
//! read itself. A full bundle never changes once written, so the bytes of one that passed the
//! check can be kept in memory and served again without touching the disk or hashing: an edit
//! of the files made after the check cannot reach bytes that are already in memory. Partial
//! bundles (the right edge of the log) are never cached.
//!
//! The cache holds at most a byte budget
//! ([`BUNDLE_CACHE_BUDGET`](crate::engine::BUNDLE_CACHE_BUDGET), 32 MiB, by default; set with
//! [`Ledger::set_bundle_cache_budget`](crate::Ledger::set_bundle_cache_budget)) and evicts the
//! least recently used bundle first. A bundle larger than an eighth of the budget is not kept,
//! so a few huge bundles cannot flush everything else.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// The least recently used map of verified full bundles, by bundle index.
#[derive(Debug)]
pub(crate) struct BundleCache {
    budget: usize,
    used: usize,
    /// The bundle's bytes and the tick of its last use.
    bundles: HashMap<u64, (Arc<Vec<u8>>, u64)>,
    /// Bundle index by tick of last use: the first is the one to evict.
    by_use: BTreeMap<u64, u64>,
    tick: u64,
}

impl BundleCache {
    /// An empty cache holding at most `budget` bytes (0 keeps nothing).
    pub(crate) fn new(budget: usize) -> Self {
        BundleCache {
            budget,
            used: 0,
            bundles: HashMap::new(),
            by_use: BTreeMap::new(),
            tick: 0,
        }
    }

    /// Forgets every bundle.
    pub(crate) fn clear(&mut self) {
        self.bundles.clear();
        self.by_use.clear();
        self.used = 0;
    }

    /// The bytes of bundle `index`, if cached; marks it as just used.
    pub(crate) fn get(&mut self, index: u64) -> Option<Arc<Vec<u8>>> {
        self.tick += 1;
        let tick = self.tick;
        let (bytes, used) = self.bundles.get_mut(&index)?;
        self.by_use.remove(used);
        *used = tick;
        self.by_use.insert(tick, index);
        Some(bytes.clone())
    }

    /// Keeps the verified bytes of full bundle `index`, evicting the least recently used
    /// bundles to stay within the budget. Too large a bundle is not kept.
    pub(crate) fn insert(&mut self, index: u64, bytes: Arc<Vec<u8>>) {
        if bytes.len() > self.budget / 8 || self.bundles.contains_key(&index) {
            return;
        }
        self.tick += 1;
        self.used += bytes.len();
        self.bundles.insert(index, (bytes, self.tick));
        self.by_use.insert(self.tick, index);
        self.shrink();
    }

    /// Changes the budget, evicting what no longer fits.
    pub(crate) fn set_budget(&mut self, budget: usize) {
        self.budget = budget;
        self.shrink();
    }

    /// Bytes held.
    #[cfg(test)]
    pub(crate) fn used(&self) -> usize {
        self.used
    }

    fn shrink(&mut self) {
        while self.used > self.budget {
            let Some((_, index)) = self.by_use.pop_first() else {
                break;
            };
            if let Some((bytes, _)) = self.bundles.remove(&index) {
                self.used -= bytes.len();
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn bytes(fill: u8, len: usize) -> Arc<Vec<u8>> {
        Arc::new(vec![fill; len])
    }

    #[test]
    fn evicts_the_least_recently_used_within_the_budget() {
        let mut cache = BundleCache::new(800);
        cache.insert(1, bytes(1, 100));
        cache.insert(2, bytes(2, 100));
        assert_eq!(cache.get(1).unwrap()[0], 1);
        // Too large for an eighth of the budget: not kept.
        cache.insert(3, bytes(3, 101));
        assert!(cache.get(3).is_none());
        for index in 4..10 {
            cache.insert(index, bytes(index as u8, 100));
        }
        assert_eq!(cache.used(), 800, "8 bundles fill the budget");
        // The ninth evicts the least recently used: 2 (1 was used after it).
        cache.insert(10, bytes(10, 100));
        assert_eq!(cache.used(), 800);
        assert!(cache.get(2).is_none());
        assert_eq!(cache.get(1).unwrap()[0], 1);
        assert_eq!(cache.get(9).unwrap()[0], 9);
        cache.insert(11, bytes(11, 100));
        assert!(cache.get(4).is_none(), "4 is now the oldest");
        assert_eq!(cache.get(1).unwrap()[0], 1);
        assert_eq!(cache.used(), 800);
    }

    #[test]
    fn a_zero_budget_keeps_nothing_and_shrinking_evicts() {
        let mut cache = BundleCache::new(0);
        cache.insert(1, bytes(1, 1));
        assert!(cache.get(1).is_none());
        assert_eq!(cache.used(), 0);
        cache.set_budget(1 << 20);
        for index in 0..4 {
            cache.insert(index, bytes(0, 1000));
        }
        assert_eq!(cache.used(), 4000);
        cache.set_budget(2500);
        assert_eq!(cache.used(), 2000);
        assert!(cache.get(0).is_none() && cache.get(1).is_none());
        assert!(cache.get(2).is_some() && cache.get(3).is_some());
        // Inserting a bundle twice counts it once.
        cache.set_budget(1 << 20);
        cache.insert(3, bytes(0, 1000));
        assert_eq!(cache.used(), 2000);
    }
}
