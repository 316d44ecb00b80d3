//! Tokens a node takes ahead from the shared limiter for a busy key, so that a key sending
//! thousands of requests a second costs Redis one call per batch rather than one per request.
//!
//! Every token still comes from Redis's script, so across all nodes no more requests pass
//! than the limits allow. What a node holds ahead is kept small and short-lived:
//!
//! - A call asks for the key's current size: 1 at first, doubled each time the tokens ran
//!   out (or ran low) within [`LEASE_TTL_MS`] of the last call, at most [`MAX_LEASE`], and 1
//!   again after a pause of that long. A key sending fewer than about ten requests a second
//!   stays at 1: one call per request, as without leases.
//! - The script grants more than one token only while every window has at least
//!   [`ROOM_SHARE`] times that much room left. Near a limit every request is one call again,
//!   so refusals are as exact as without leases, and a node never holds more than 1/64 of
//!   what a window has left (a key allowed fewer than 128 requests a window never leases).
//! - Tokens not used within [`LEASE_TTL_MS`] of the key's last call are given back with its
//!   next call: the script moves the arrival times back, but only by what is still owed
//!   ([`GiveBack`]), so a give-back never adds room. A node uses tokens only within
//!   [`LEASE_TTL_MS`] of its last call for the key, timed on its monotonic clock.
//! - While one call for more is under way, other requests of the key ask for one token each
//!   rather than piling up more tokens.
//!
//! A request decided with a token in hand shows the `RateLimit` headers of the call that
//! granted it, advanced by the tokens used since: the same figures one call per request would
//! show, to within the time elapsed (at most [`LEASE_TTL_MS`]).

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasherDefault;
use std::sync::Mutex;

use super::ratelimit::{Bucket, Decision, IdentityHasher};

/// At most this many tokens per call.
pub const MAX_LEASE: u32 = 64;
/// A call takes more than one token only while every window keeps this many times as much.
pub const ROOM_SHARE: i64 = 64;
/// Tokens are used within this long (ms, the node's clock) of the call that took them; the
/// rest go back on the key's next call.
pub const LEASE_TTL_MS: i64 = 100;
/// A call for more that has not come back within this long (its request was dropped) no
/// longer stops another.
const REFILL_STALE_MS: i64 = 1_000;
/// Leases idle this long go at the next prune.
const IDLE_MS: i64 = 10_000;
/// Keys with a lease on a node at once (each about 300 bytes); others get one call per
/// request until [`Leases::prune`] (on a timer) makes room.
pub const MAX_LEASES: usize = 16_384;

const SHARDS: usize = 16;
/// Grants remembered per lease for give-backs (tokens in hand rarely span more than two).
const RECENT: usize = 3;

struct Lease {
    buckets: Vec<Bucket>,
    /// Tokens in hand.
    left: u32,
    /// The decision after all the tokens of the last call were taken: what this node's
    /// requests show, advanced by the tokens still in hand.
    base: Option<Decision>,
    /// When (ms) the last call granted tokens.
    at_ms: i64,
    /// The last few calls' grants, newest last: how many tokens, and the arrival times they
    /// left (Redis's µs, per bucket). Unused tokens are counted as the newest taken.
    recent: VecDeque<(u32, Vec<[i64; 2]>)>,
    /// Tokens the next call asks for.
    size: u32,
    /// When (ms) the call for more under way started.
    refilling_since: Option<i64>,
}

/// Unused tokens to give back with a call, counted as the newest taken (which any unused
/// tokens may be), and per window the arrival time (`after`, Redis's µs) that the oldest of
/// the calls they come from left: the give-back credits at most what that still holds ahead
/// of now. Arrival times only grow with requests, so every moment since then owed at least
/// that much; time restores a bucket whatever was taken, so crediting more could add room
/// that no longer exists, while crediting less only leaves some unused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GiveBack {
    pub tokens: u32,
    pub after: Vec<[i64; 2]>,
}

/// What a call granted: `tokens`, the decision after all of them were taken, and the arrival
/// times they left (Redis's µs, per bucket).
pub struct Grant {
    pub tokens: u32,
    pub base: Decision,
    pub after: Vec<[i64; 2]>,
}

/// What a request does, decided under the lease's lock.
#[derive(Debug, PartialEq, Eq)]
pub enum Plan {
    /// Decided with a token in hand; `refill`: then ask for this many more (the lease is
    /// running low and no other call for more is under way).
    Local {
        decision: Decision,
        refill: Option<u32>,
    },
    /// Ask the shared limiter for `want` tokens (one is this request's) and give back `back`
    /// unused ones; `refill`: whether the spare tokens go in hand.
    Ask {
        want: u32,
        back: Option<GiveBack>,
        refill: bool,
    },
}

type Shard = HashMap<u64, Lease, BuildHasherDefault<IdentityHasher>>;

pub struct Leases {
    shards: Box<[Mutex<Shard>]>,
}

impl Default for Leases {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
        }
    }
}

impl Leases {
    fn shard(&self, key: u64) -> std::sync::MutexGuard<'_, Shard> {
        self.shards[(key >> 60) as usize % SHARDS]
            .lock()
            .expect("lease shard")
    }

    /// What the next request against `buckets` does at `now_ms`.
    pub fn take(&self, buckets: &[Bucket], now_ms: i64) -> Plan {
        let mut shard = self.shard(buckets[0].key);
        let Some(l) = shard.get_mut(&buckets[0].key) else {
            return Plan::Ask {
                want: 1,
                back: None,
                refill: true,
            };
        };
        if l.buckets != buckets {
            // The key's limits changed: what it holds was taken against the old ones.
            shard.remove(&buckets[0].key);
            return Plan::Ask {
                want: 1,
                back: None,
                refill: true,
            };
        }
        let fresh = (0..LEASE_TTL_MS).contains(&(now_ms - l.at_ms));
        let refilling = l
            .refilling_since
            .is_some_and(|since| now_ms - since < REFILL_STALE_MS);
        if fresh
            && l.left > 0
            && let Some(base) = &l.base
        {
            l.left -= 1;
            let decision = shown(base, l.left, now_ms - l.at_ms);
            let refill = (!refilling && l.size > 1 && l.left < l.size / 2).then(|| {
                l.size = (l.size * 2).min(MAX_LEASE);
                l.refilling_since = Some(now_ms);
                l.size
            });
            return Plan::Local { decision, refill };
        }
        if refilling {
            return Plan::Ask {
                want: 1,
                back: None,
                refill: false,
            };
        }
        // Out of tokens within the lease's life: ask for twice as many. After a pause: give
        // back what is left and start again from one.
        let left = if fresh {
            0
        } else {
            std::mem::take(&mut l.left)
        };
        let back = give_back(&mut l.recent, left);
        l.size = if fresh {
            (l.size * 2).min(MAX_LEASE)
        } else {
            1
        };
        l.refilling_since = Some(now_ms);
        Plan::Ask {
            want: l.size,
            back,
            refill: true,
        }
    }

    /// The outcome of a call planned by [`Leases::take`] with `refill`: what it granted
    /// (`spare` of the tokens not used by the calling request), or `None` when it granted
    /// nothing (refused, or Redis did not answer).
    pub fn settle(&self, buckets: &[Bucket], now_ms: i64, spare: u32, granted: Option<Grant>) {
        let key = buckets[0].key;
        let mut shard = self.shard(key);
        if !shard.contains_key(&key) {
            if granted.is_none() {
                return;
            }
            // Full: this key gets one call per request until the timer's prune makes room.
            if shard.len() >= MAX_LEASES / SHARDS {
                return;
            }
            shard.insert(
                key,
                Lease {
                    buckets: buckets.to_vec(),
                    left: 0,
                    base: None,
                    at_ms: now_ms,
                    recent: VecDeque::new(),
                    size: 1,
                    refilling_since: None,
                },
            );
        }
        let l = shard.get_mut(&key).expect("inserted above");
        if l.buckets != buckets {
            return;
        }
        l.refilling_since = None;
        match granted {
            Some(g) => {
                if l.recent.len() == RECENT {
                    l.recent.pop_front();
                }
                l.recent.push_back((g.tokens, g.after));
                l.left = l.left.saturating_add(spare);
                l.base = Some(g.base);
                l.at_ms = now_ms;
            }
            // Refused: the key is at a limit, so one call per request from here.
            None => l.size = 1,
        }
    }

    /// Drops leases idle for a while (what they held is given back by nobody: at most
    /// [`MAX_LEASE`] tokens each, taken long ago).
    pub fn prune(&self, now_ms: i64) {
        for shard in self.shards.iter() {
            shard.lock().expect("lease shard").retain(|_, l| {
                now_ms - l.at_ms < IDLE_MS
                    || l.refilling_since
                        .is_some_and(|since| now_ms - since < REFILL_STALE_MS)
            });
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap().len()).sum()
    }

    /// Tokens in hand for `key`.
    #[cfg(test)]
    fn in_hand(&self, key: u64) -> u32 {
        self.shard(key).get(&key).map_or(0, |l| l.left)
    }
}

/// The give-back of `left` unused tokens, counted as the newest of `recent` grants (which it
/// empties): those the last [`RECENT`] grants cover, bounded by the oldest of them used.
fn give_back(recent: &mut VecDeque<(u32, Vec<[i64; 2]>)>, left: u32) -> Option<GiveBack> {
    let mut back: Option<GiveBack> = None;
    while let Some((tokens, after)) = recent.pop_back() {
        let covered = back.as_ref().map_or(0, |b| b.tokens);
        if covered >= left {
            break;
        }
        back = Some(GiveBack {
            tokens: (covered + tokens).min(left),
            after,
        });
    }
    recent.clear();
    back.filter(|b| b.tokens > 0)
}

/// `d` (after one token) advanced by `n` more tokens taken.
pub fn advanced(d: &Decision, n: u32) -> Decision {
    let mut d = d.clone();
    for w in &mut d.windows {
        w.remaining = w.remaining.saturating_sub(n);
        w.reset_ms += i64::from(n) * w.window.interval_us() / 1000;
    }
    d
}

/// What a request shows with `left` tokens still in hand after it, `elapsed_ms` after the call
/// whose decision (all its tokens taken) is `base`.
fn shown(base: &Decision, left: u32, elapsed_ms: i64) -> Decision {
    let mut d = base.clone();
    for w in &mut d.windows {
        w.remaining = w.remaining.saturating_add(left).min(w.window.limit);
        w.reset_ms =
            (w.reset_ms - i64::from(left) * w.window.interval_us() / 1000 - elapsed_ms).max(0);
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::ratelimit::{step, windows};

    fn bucket() -> Vec<Bucket> {
        vec![Bucket {
            key: 7 << 60,
            windows: windows(60_000, 1_000_000),
        }]
    }

    /// An allowed decision on [`bucket`] showing `remaining` in both windows.
    fn base(remaining: u32) -> Decision {
        let mut d = step(&bucket(), &[None], 0).0;
        for w in &mut d.windows {
            w.remaining = remaining;
        }
        d
    }

    fn grant(tokens: u32, remaining: u32) -> Grant {
        Grant {
            tokens,
            base: base(remaining),
            after: vec![[9, 9]],
        }
    }

    /// Runs `take` and, for a call, settles it as Redis granting everything asked.
    fn request(leases: &Leases, b: &[Bucket], now_ms: i64, remaining: &mut u32) -> Plan {
        let plan = leases.take(b, now_ms);
        match &plan {
            Plan::Ask {
                want, refill: true, ..
            } => {
                *remaining -= want;
                leases.settle(b, now_ms, want - 1, Some(grant(*want, *remaining)));
            }
            Plan::Ask { want, .. } => *remaining -= want,
            Plan::Local {
                refill: Some(want), ..
            } => {
                *remaining -= want;
                leases.settle(b, now_ms, *want, Some(grant(*want, *remaining)));
            }
            Plan::Local { .. } => {}
        }
        plan
    }

    #[test]
    fn a_busy_key_asks_for_more_each_time_and_shows_one_less_per_request() {
        let leases = Leases::default();
        let b = bucket();
        let mut remaining = 60_000;
        let mut calls = 0;
        let mut shown_remaining = Vec::new();
        for _ in 0..500 {
            match request(&leases, &b, 1_000, &mut remaining) {
                Plan::Ask { .. } => calls += 1,
                Plan::Local { decision, refill } => {
                    calls += usize::from(refill.is_some());
                    shown_remaining.push(decision.windows[0].remaining);
                }
            }
        }
        assert!(calls < 20, "{calls} calls for 500 requests");
        // Each request decided in hand shows one less than the one before it (a call in
        // between takes from the same count).
        assert!(shown_remaining.windows(2).all(|w| w[1] < w[0]));
        // Nothing was taken that is not in hand or used.
        assert_eq!(60_000 - remaining, 500 + leases.in_hand(b[0].key));
    }

    #[test]
    fn a_slow_key_makes_one_call_per_request_and_unused_tokens_go_back() {
        let leases = Leases::default();
        let b = bucket();
        let mut remaining = 60_000;
        for i in 0..20 {
            let plan = request(&leases, &b, i * 200, &mut remaining);
            assert_eq!(
                plan,
                Plan::Ask {
                    want: 1,
                    back: None,
                    refill: true
                }
            );
        }
        // A burst, then a pause: what is left in hand goes back with the next call.
        for _ in 0..40 {
            request(&leases, &b, 10_000, &mut remaining);
        }
        let held = leases.in_hand(b[0].key);
        assert!(held > 0);
        // All of them (the last grants cover them), with the arrival times the oldest of
        // those calls left.
        match leases.take(&b, 10_000 + LEASE_TTL_MS) {
            Plan::Ask {
                back: Some(back),
                want: 1,
                ..
            } => {
                assert_eq!(back.tokens, held);
                assert_eq!(back.after, vec![[9, 9]]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(leases.in_hand(b[0].key), 0);
    }

    #[test]
    fn while_a_call_for_more_is_under_way_others_ask_for_one() {
        let leases = Leases::default();
        let b = bucket();
        let mut remaining = 60_000;
        request(&leases, &b, 0, &mut remaining);
        // The second request within the lease's life asks for two; it has not come back.
        assert!(matches!(
            leases.take(&b, 1),
            Plan::Ask {
                want: 2,
                refill: true,
                ..
            }
        ));
        assert_eq!(
            leases.take(&b, 2),
            Plan::Ask {
                want: 1,
                back: None,
                refill: false
            }
        );
        // A call that never came back (its request was dropped) stops nobody for long.
        assert!(matches!(
            leases.take(&b, 2 + REFILL_STALE_MS),
            Plan::Ask { refill: true, .. }
        ));
    }

    #[test]
    fn the_table_is_bounded_and_idle_leases_go() {
        let leases = Leases::default();
        let w = windows(60_000, 1_000_000);
        // Keys spread over every shard, twice as many as the table holds.
        for i in 0..2 * MAX_LEASES as u64 {
            let b = [Bucket {
                key: i.wrapping_mul(0x9E37_79B9_7F4A_7C15),
                windows: w,
            }];
            assert!(matches!(leases.take(&b, 0), Plan::Ask { want: 1, .. }));
            leases.settle(&b, 0, 0, Some(grant(1, 100)));
        }
        assert!(leases.len() <= MAX_LEASES, "{}", leases.len());
        assert!(leases.len() > MAX_LEASES / 2);
        leases.prune(IDLE_MS - 1);
        assert!(leases.len() > MAX_LEASES / 2);
        leases.prune(IDLE_MS);
        assert_eq!(leases.len(), 0);
    }

    #[test]
    fn a_refusal_or_new_limits_start_again_from_one() {
        let leases = Leases::default();
        let b = bucket();
        let mut remaining = 60_000;
        for _ in 0..100 {
            request(&leases, &b, 0, &mut remaining);
        }
        // Spend what is in hand, then a call is refused.
        while let Plan::Local { .. } = leases.take(&b, 0) {}
        leases.settle(&b, 0, 0, None);
        assert!(matches!(
            leases.take(&b, 1),
            Plan::Ask {
                want: 2,
                refill: true,
                ..
            }
        ));
        let other = vec![Bucket {
            key: b[0].key,
            windows: windows(100, 1_000),
        }];
        assert_eq!(
            leases.take(&other, 2),
            Plan::Ask {
                want: 1,
                back: None,
                refill: true
            }
        );
    }
}
