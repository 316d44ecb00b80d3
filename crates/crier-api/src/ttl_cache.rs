//! A bounded map whose entries live a fixed time: the caches on the request path (verified
//! keys, unknown digests, workspace and `/v1/me` views).
//!
//! A look-up is a hash, a shared lock on one of [`SHARDS`] shards and a map look-up; nothing
//! is recorded on a read. (A general-purpose cache keeps an admission and eviction policy up to
//! date on every read, which cost more than the rest of the key check together with 10,000
//! keys in rotation.) What is cached here is cheap to read again, so eviction can be plain:
//! an insert into a full shard first drops its expired entries and then, down to three
//! quarters of the shard, its oldest. The map never holds more than its capacity, rounded up
//! to a multiple of [`SHARDS`].

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

/// Shards, each with its own lock: requests on different keys rarely wait for each other.
pub const SHARDS: usize = 16;

/// One shard: each value with the time it expires.
type Shard<K, V> = HashMap<K, (V, Instant)>;

pub struct TtlCache<K, V> {
    shards: Box<[RwLock<Shard<K, V>>]>,
    hasher: RandomState,
    per_shard: usize,
    ttl: Duration,
}

impl<K: Hash + Eq, V: Clone> TtlCache<K, V> {
    /// A cache of at most `capacity` entries (rounded up to a multiple of [`SHARDS`]), each
    /// kept `ttl` after its insert.
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
            hasher: RandomState::new(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
            ttl,
        }
    }

    fn shard<Q: Hash + ?Sized>(&self, key: &Q) -> &RwLock<Shard<K, V>> {
        // The high bits: the shard map's own hasher is seeded differently anyway.
        let h = self.hasher.hash_one(key);
        &self.shards[(h >> 32) as usize % SHARDS]
    }

    fn read<Q: Hash + ?Sized>(&self, key: &Q) -> RwLockReadGuard<'_, Shard<K, V>> {
        // Nothing panics while a shard is locked; should something, the map is still whole.
        self.shard(key).read().unwrap_or_else(|e| e.into_inner())
    }

    fn write<Q: Hash + ?Sized>(&self, key: &Q) -> RwLockWriteGuard<'_, Shard<K, V>> {
        self.shard(key).write().unwrap_or_else(|e| e.into_inner())
    }

    /// The live entry for `key`.
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.get_at(key, Instant::now())
    }

    fn get_at<Q>(&self, key: &Q, now: Instant) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        match self.read(key).get(key) {
            Some((v, expires)) if *expires > now => Some(v.clone()),
            _ => None,
        }
    }

    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let now = Instant::now();
        self.read(key).get(key).is_some_and(|(_, e)| *e > now)
    }

    /// Keeps `value` for `key` from now for the cache's time to live.
    pub fn insert(&self, key: K, value: V) {
        self.insert_at(key, value, Instant::now());
    }

    fn insert_at(&self, key: K, value: V, now: Instant) {
        let mut shard = self.write(&key);
        if shard.len() >= self.per_shard && !shard.contains_key(&key) {
            shard.retain(|_, (_, expires)| *expires > now);
            // Down to three quarters, the oldest first (every entry lives the same time, so
            // the soonest to expire is the oldest): each pass over the shard pays for a
            // quarter of a shard of inserts.
            let keep = self.per_shard - self.per_shard.div_ceil(4);
            if shard.len() > keep {
                let mut ages: Vec<Instant> = shard.values().map(|(_, e)| *e).collect();
                let drop = ages.len() - keep;
                let (_, cut, _) = ages.select_nth_unstable(drop - 1);
                let cut = *cut;
                shard.retain(|_, (_, expires)| *expires > cut);
            }
        }
        shard.insert(key, (value, now + self.ttl));
    }

    pub fn invalidate<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.write(key).remove(key);
    }

    pub fn invalidate_all(&self) {
        for shard in &self.shards {
            shard.write().unwrap_or_else(|e| e.into_inner()).clear();
        }
    }

    /// Drops expired entries (they are never returned, but hold memory until then); call on a
    /// timer.
    pub fn prune(&self) {
        self.prune_at(Instant::now());
    }

    fn prune_at(&self, now: Instant) {
        for shard in &self.shards {
            shard
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|_, (_, expires)| *expires > now);
        }
    }

    /// Entries held, expired ones not yet dropped included.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.read().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_lives_its_time_and_no_longer() {
        let c = TtlCache::new(100, Duration::from_secs(2));
        let t0 = Instant::now();
        c.insert_at("a".to_string(), 1, t0);
        assert_eq!(c.get_at("a", t0), Some(1));
        assert_eq!(c.get_at("a", t0 + Duration::from_millis(1_999)), Some(1));
        assert_eq!(c.get_at("a", t0 + Duration::from_secs(2)), None);
        // A new insert starts a new life.
        c.insert_at("a".to_string(), 2, t0 + Duration::from_secs(3));
        assert_eq!(c.get_at("a", t0 + Duration::from_secs(4)), Some(2));
        assert_eq!(c.get_at("b", t0), None);
    }

    #[test]
    fn invalidation_is_seen_at_once() {
        // Room for far more than 50 in every shard: which shard a key falls in depends on the
        // process's hash seed, and with 100 (7 a shard) one could evict what the test reads.
        let c = TtlCache::new(10_000, Duration::from_secs(60));
        for i in 0..50 {
            c.insert(i, i * 10);
        }
        c.invalidate(&7);
        assert_eq!(c.get(&7), None);
        assert!(!c.contains_key(&7));
        assert_eq!(c.get(&8), Some(80));
        assert!(c.contains_key(&8));
        c.invalidate_all();
        assert!((0..50).all(|i| c.get(&i).is_none()));
        assert!(c.is_empty());
    }

    #[test]
    fn the_map_never_holds_more_than_its_capacity() {
        let cap = 1_000;
        let c = TtlCache::new(cap, Duration::from_secs(60));
        let bound = cap.div_ceil(SHARDS) * SHARDS;
        for i in 0..200_000u64 {
            c.insert(i, i);
            assert!(c.len() <= bound, "{} entries after {i} inserts", c.len());
        }
        // Most of what it holds is recent: the crude eviction still keeps a working set.
        let recent = (199_000..200_000u64).filter(|i| c.get(i).is_some()).count();
        assert!(
            recent > 500,
            "only {recent} of the last 1,000 inserts are held"
        );
        // An insert of a key already held never evicts.
        let held: Vec<u64> = (0..200_000u64).filter(|i| c.get(i).is_some()).collect();
        for &i in &held {
            c.insert(i, i + 1);
        }
        assert!(held.iter().all(|i| c.get(i) == Some(i + 1)));
    }

    #[test]
    fn a_full_shard_drops_expired_entries_before_live_ones() {
        let c = TtlCache::new(SHARDS * 4, Duration::from_secs(1));
        let t0 = Instant::now();
        for i in 0..10_000u64 {
            c.insert_at(i, i, t0);
        }
        // Later, every shard is full of expired entries: four new ones (at most a shard's
        // capacity, wherever they fall) replace them, and none of the new is evicted.
        let later = t0 + Duration::from_secs(5);
        for i in 10_000..10_004u64 {
            c.insert_at(i, i, later);
        }
        assert!((10_000..10_004u64).all(|i| c.get_at(&i, later) == Some(i)));
        c.prune_at(later);
        assert_eq!(c.len(), 4);
    }
}
