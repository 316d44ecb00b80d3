//! Things under way, counted per key: a server's connections per client address, a node's
//! media imports or feed polls per workspace. Each is counted until its [`Turn`] is dropped,
//! and a key with none under way is not kept, so the table never holds more keys than there
//! are things under way, whatever keys clients name.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

/// Counts per key; cheap to clone (the clones share the counts).
pub struct Tally<K>(Arc<Mutex<HashMap<K, usize>>>);

impl<K> Clone for Tally<K> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<K> std::fmt::Debug for Tally<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys = self.0.lock().map_or(0, |c| c.len());
        f.debug_struct("Tally").field("keys", &keys).finish()
    }
}

impl<K> Default for Tally<K> {
    fn default() -> Self {
        Self(Arc::default())
    }
}

/// One thing under way, counted against its key until dropped.
pub struct Turn<K: Eq + Hash> {
    tally: Tally<K>,
    key: K,
}

impl<K: Eq + Hash + Clone> Tally<K> {
    fn counts(&self) -> std::sync::MutexGuard<'_, HashMap<K, usize>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts one more under `key`, or `None` when `cap` are under way there already.
    pub fn take(&self, key: K, cap: usize) -> Option<Turn<K>> {
        let mut counts = self.counts();
        let n = counts.entry(key.clone()).or_insert(0);
        if *n >= cap {
            if *n == 0 {
                counts.remove(&key);
            }
            return None;
        }
        *n += 1;
        Some(Turn {
            tally: self.clone(),
            key,
        })
    }

    /// The keys with at least `n` under way.
    pub fn at_least(&self, n: usize) -> Vec<K> {
        self.counts()
            .iter()
            .filter(|(_, c)| **c >= n)
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Keys with something under way.
    pub fn len(&self) -> usize {
        self.counts().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<K: Eq + Hash> Drop for Turn<K> {
    fn drop(&mut self) {
        let mut counts = self.tally.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = counts.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turns_are_counted_until_dropped_and_idle_keys_are_not_kept() {
        let t = Tally::default();
        let a1 = t.take("a", 2).unwrap();
        let a2 = t.take("a", 2).unwrap();
        assert!(t.take("a", 2).is_none(), "at the cap");
        let b = t.take("b", 2).unwrap();
        assert_eq!(t.at_least(2), vec!["a"]);
        drop(a1);
        let a3 = t.take("a", 2).unwrap();
        drop((a2, a3, b));
        assert!(t.is_empty(), "keys with nothing under way are not kept");
        assert!(t.take("c", 0).is_none());
        assert!(t.is_empty(), "a refusal keeps no key either");
    }
}
