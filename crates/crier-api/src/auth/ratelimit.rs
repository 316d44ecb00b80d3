//! Rate limiting with GCRA (the generic cell rate algorithm): per key, one theoretical arrival
//! time per window, so a decision is a few integer operations under a sharded lock.
//!
//! A limit of N per window W lets a burst of N through at once and then one request every W/N;
//! the state is "when the bucket will be empty again" (the TAT). [`RateLimiter`] is the interface
//! the auth layer calls; it is in-process today, and a shared Redis implementation (the same
//! algorithm in a Lua script) plugs in beside [`RateLimiter::Local`] for several nodes.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Mutex;

/// Divides by 1000 rounding up (µs to ms, ms to s); negative values count as 0.
pub fn ceil_div_1000(v: i64) -> i64 {
    (v.max(0) + 999) / 1000
}

/// A window of a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub name: &'static str,
    pub limit: u32,
    pub seconds: u32,
}

/// The state of one window after a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowState {
    pub window: Window,
    pub remaining: u32,
    /// Milliseconds until the window is whole again.
    pub reset_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// When refused: milliseconds until a request would pass.
    pub retry_after_ms: i64,
    /// The window that refused, when refused.
    pub refused_by: Option<&'static str>,
    pub windows: [WindowState; 2],
}

impl Decision {
    /// The window closest to running out (fewest requests left; the shorter on a tie).
    pub fn tightest(&self) -> &WindowState {
        if self.windows[1].remaining < self.windows[0].remaining {
            &self.windows[1]
        } else {
            &self.windows[0]
        }
    }
}

pub enum RateLimiter {
    Local(Gcra),
}

impl RateLimiter {
    pub fn local() -> Self {
        Self::Local(Gcra::default())
    }

    /// Decides one request for `key` against a per-minute and a per-day window.
    pub async fn check(&self, key: u64, per_minute: u32, per_day: u32, now_ms: i64) -> Decision {
        let windows = [
            Window {
                name: "minute",
                limit: per_minute,
                seconds: 60,
            },
            Window {
                name: "day",
                limit: per_day,
                seconds: 86_400,
            },
        ];
        match self {
            Self::Local(g) => g.check(key, windows, now_ms * 1000),
        }
    }

    /// Drops state that no longer limits anyone; call on a timer.
    pub fn prune(&self, now_ms: i64) {
        match self {
            Self::Local(g) => g.prune(now_ms * 1000),
        }
    }
}

/// Keys are already well-mixed hashes (digest bytes), so the map need not hash them again.
#[derive(Default)]
struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type Tats = HashMap<u64, [i64; 2], BuildHasherDefault<IdentityHasher>>;

const SHARDS: usize = 64;

/// In-process GCRA over a sharded map of theoretical arrival times (microseconds).
///
/// A bounded table ([`Gcra::bounded`]) holds at most about `max_keys` keys. A new key that
/// finds its shard full first makes room by dropping the shard's idle keys; if the shard is
/// still full, the new key is treated as over its limit and nothing is stored. Evicting live
/// keys instead would let whoever can present many new keys (many client addresses) wipe the
/// state of the keys being limited.
pub struct Gcra {
    shards: Box<[Mutex<Tats>]>,
    per_shard: usize,
}

impl Default for Gcra {
    /// Unbounded: for keys whose number is bounded elsewhere (API keys in storage).
    fn default() -> Self {
        Self::bounded(usize::MAX)
    }
}

impl Gcra {
    pub fn bounded(max_keys: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Tats::default())).collect(),
            per_shard: (max_keys / SHARDS).max(1),
        }
    }

    fn shard(&self, key: u64) -> &Mutex<Tats> {
        &self.shards[(key >> 58) as usize % SHARDS]
    }

    /// Whether `key` has no room in its (locked) shard, after dropping idle keys.
    fn no_room(&self, shard: &mut Tats, key: u64, now_us: i64) -> bool {
        if shard.len() < self.per_shard || shard.contains_key(&key) {
            return false;
        }
        shard.retain(|_, tats| tats.iter().any(|t| *t > now_us));
        shard.len() >= self.per_shard
    }

    pub fn check(&self, key: u64, windows: [Window; 2], now_us: i64) -> Decision {
        let mut shard = self.shard(key).lock().expect("rate limit shard");
        if self.no_room(&mut shard, key, now_us) {
            let full = |w: &Window| WindowState {
                window: *w,
                remaining: 0,
                reset_ms: i64::from(w.seconds) * 1000,
            };
            return Decision {
                allowed: false,
                retry_after_ms: i64::from(windows[0].seconds) * 1000,
                refused_by: Some(windows[0].name),
                windows: [full(&windows[0]), full(&windows[1])],
            };
        }
        let tats = shard.entry(key).or_insert([now_us, now_us]);
        let period = |w: &Window| i64::from(w.seconds) * 1_000_000;
        let interval = |w: &Window| period(w) / i64::from(w.limit.max(1));
        // The state of window `i` if its arrival time were `tat`.
        let state = |i: usize, tat: i64| {
            let w = &windows[i];
            WindowState {
                window: *w,
                // Rounding the interval down can leave room for a few more than the limit over
                // a long window; never announce more than the limit.
                remaining: (((period(w) - (tat - now_us)).max(0) / interval(w)) as u32)
                    .min(w.limit),
                reset_ms: ceil_div_1000(tat - now_us),
            }
        };
        let current = [tats[0].max(now_us), tats[1].max(now_us)];
        let next = [
            current[0] + interval(&windows[0]),
            current[1] + interval(&windows[1]),
        ];
        // The window that refuses, waiting longest if both do.
        let refused = (0..2)
            .filter(|i| next[*i] - now_us > period(&windows[*i]))
            .map(|i| (i, next[i] - period(&windows[i]) - now_us))
            .max_by_key(|(_, wait)| *wait);
        match refused {
            None => {
                *tats = next;
                Decision {
                    allowed: true,
                    retry_after_ms: 0,
                    refused_by: None,
                    windows: [state(0, next[0]), state(1, next[1])],
                }
            }
            // Nothing is consumed from either window: the request did not happen.
            Some((i, wait)) => Decision {
                allowed: false,
                retry_after_ms: ceil_div_1000(wait).max(1),
                refused_by: Some(windows[i].name),
                windows: [state(0, current[0]), state(1, current[1])],
            },
        }
    }

    /// Whether the next request for `key` would be refused, without counting it.
    pub fn would_refuse(&self, key: u64, windows: [Window; 2], now_us: i64) -> bool {
        let mut shard = self.shard(key).lock().expect("rate limit shard");
        if self.no_room(&mut shard, key, now_us) {
            return true;
        }
        let Some(tats) = shard.get(&key) else {
            return false;
        };
        windows.iter().zip(tats).any(|(w, tat)| {
            let period = i64::from(w.seconds) * 1_000_000;
            tat.max(&now_us) + period / i64::from(w.limit.max(1)) - now_us > period
        })
    }

    pub fn prune(&self, now_us: i64) {
        for shard in self.shards.iter() {
            shard
                .lock()
                .expect("rate limit shard")
                .retain(|_, tats| tats.iter().any(|t| *t > now_us));
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap().len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn windows(per_minute: u32, per_day: u32) -> [Window; 2] {
        [
            Window {
                name: "minute",
                limit: per_minute,
                seconds: 60,
            },
            Window {
                name: "day",
                limit: per_day,
                seconds: 86_400,
            },
        ]
    }

    const S: i64 = 1_000_000;

    #[test]
    fn a_full_burst_passes_then_one_per_interval() {
        let g = Gcra::default();
        let t0 = 1_000 * S;
        for i in 0..60 {
            let d = g.check(7, windows(60, 10_000), t0);
            assert!(d.allowed, "request {i}");
            assert_eq!(d.windows[0].remaining, 59 - i);
        }
        let d = g.check(7, windows(60, 10_000), t0);
        assert!(!d.allowed);
        assert_eq!(d.refused_by, Some("minute"));
        assert_eq!(d.retry_after_ms, 1000);
        assert_eq!(
            d.windows[1].remaining,
            10_000 - 60,
            "a refusal consumes nothing"
        );
        // One interval later exactly one more passes.
        assert!(g.check(7, windows(60, 10_000), t0 + S).allowed);
        assert!(!g.check(7, windows(60, 10_000), t0 + S).allowed);
        // A full minute later the bucket is whole.
        let d = g.check(7, windows(60, 10_000), t0 + 61 * S);
        assert!(d.allowed);
        assert_eq!(d.windows[0].remaining, 59);
    }

    #[test]
    fn the_day_window_refuses_with_its_own_retry_after() {
        let g = Gcra::default();
        let t0 = 5 * S;
        for _ in 0..3 {
            assert!(g.check(1, windows(60, 3), t0).allowed);
        }
        let d = g.check(1, windows(60, 3), t0);
        assert!(!d.allowed);
        assert_eq!(d.refused_by, Some("day"));
        assert_eq!(d.retry_after_ms, 28_800_000, "a third of a day");
        assert_eq!(d.tightest().window.name, "day");
    }

    #[test]
    fn a_bounded_table_refuses_new_keys_when_full_and_makes_room_as_keys_go_idle() {
        let g = Gcra::bounded(SHARDS * 2);
        let key = |i: u64| i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        for i in 0..10_000 {
            g.check(key(i), windows(5, 100), 0);
        }
        assert!(g.len() <= SHARDS * 2, "{} keys", g.len());
        // A key that is in keeps being counted; a new one is treated as over its limit.
        let inside = (0..10_000)
            .map(key)
            .find(|k| !g.would_refuse(*k, windows(5, 100), 0))
            .unwrap();
        assert!(g.check(inside, windows(5, 100), 0).allowed);
        let outside = (10_000..20_000)
            .map(key)
            .find(|k| g.would_refuse(*k, windows(5, 100), 0))
            .expect("a new key finds its shard full");
        assert!(!g.check(outside, windows(5, 100), 0).allowed);
        // Once the stored keys are idle, a new key takes the room of one of them.
        assert!(!g.would_refuse(outside, windows(5, 100), 2_000 * S));
        assert!(g.check(outside, windows(5, 100), 2_000 * S).allowed);
        assert!(g.len() <= SHARDS * 2);
    }

    #[test]
    fn keys_are_independent_and_pruned_when_idle() {
        let g = Gcra::default();
        assert!(g.check(1, windows(1, 100), 0).allowed);
        assert!(!g.check(1, windows(1, 100), 0).allowed);
        assert!(g.check(2, windows(1, 100), 0).allowed);
        g.prune(30 * S);
        assert_eq!(g.len(), 2, "still limiting");
        g.prune(2_000 * S);
        assert_eq!(g.len(), 0);
    }
}
