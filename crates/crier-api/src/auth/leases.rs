//! Tokens a node takes ahead from the shared limiter for a busy key, so that a key sending
//! thousands of requests a second costs Redis one call per batch rather than one per request.
//!
//! Every token comes from Redis's script and none is ever given back, so across all nodes no
//! more requests pass than the limits allow. What a node holds ahead is kept small and
//! short-lived:
//!
//! - A call asks for the key's current size: 1 at first, doubled each time the tokens ran
//!   out (or ran low) within [`LEASE_TTL_MS`] of the last call, at most [`MAX_LEASE`], and 1
//!   again after a pause of that long. It is also never more than the requests the key sent
//!   this node in the last [`PERIOD_MS`] (half of [`LEASE_TTL_MS`], counted in two periods),
//!   so what a node holds is used well before it goes stale while the key keeps its pace: a
//!   key sending one request a second stays at 1 (one call per request, as without leases),
//!   one sending four a second asks for about four at a time.
//! - The script grants more than one token only while every window keeps [`ROOM_SHARE`] times
//!   that much room. Near a limit every request is one call again, so refusals are as exact
//!   as without leases, and a node never holds more than 1/64 of what a window has left (a
//!   key allowed fewer than 128 requests a window never takes any ahead).
//! - Tokens are used only within [`LEASE_TTL_MS`] of the key's last call (on this node's
//!   monotonic clock); after a pause the rest are dropped, not used late. A dropped token
//!   is room the key gets back as time passes (a token of a window allowing `L` requests a
//!   minute weighs on it for `60 / L` seconds), so the cost of a pause is at most about one
//!   and a half times what the key sent the node in the last [`PERIOD_MS`], and never more
//!   than [`MAX_LEASE`] + [`MAX_LEASE`] / 2 requests' worth of time on one node.
//! - One call for more per key and node at a time. A request that finds nothing in hand
//!   while one for several tokens is under way waits for it (in all at most the call's
//!   timeout), then takes a token or asks Redis alone. Near a limit nobody waits: while
//!   Redis grants one token at a time, or refused the last call, each request asks alone
//!   and a refusal comes at once.
//!
//! A request decided with a token in hand shows the `RateLimit` headers of the call that
//! granted it, advanced by the tokens used since: the same figures one call per request would
//! show, to within the time elapsed (at most [`LEASE_TTL_MS`]).

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use tokio::sync::futures::OwnedNotified;

use super::ratelimit::{Bucket, Decision, IdentityHasher};

/// At most this many tokens per call.
pub const MAX_LEASE: u32 = 64;
/// A call takes more than one token only while every window keeps this many times as much.
pub const ROOM_SHARE: i64 = 64;
/// Tokens are used within this long (ms, the node's monotonic clock) of the key's last call.
pub const LEASE_TTL_MS: i64 = 2_000;
/// A call asks for at most what the key sent the node in this long: half the tokens' life, so
/// a key at a steady pace uses what it holds before it goes stale.
pub const PERIOD_MS: i64 = LEASE_TTL_MS / 2;
/// A call for more that has not come back within this long (its request was dropped) no
/// longer stops another.
const REFILL_STALE_MS: i64 = 1_000;
/// Leases idle this long go at the next prune.
const IDLE_MS: i64 = 10_000;
/// Keys with a lease on a node at once (each about 300 bytes); others get one call per
/// request until [`Leases::prune`] (on a timer) makes room.
pub const MAX_LEASES: usize = 16_384;

const SHARDS: usize = 16;

struct Lease {
    buckets: Vec<Bucket>,
    /// Tokens in hand.
    left: u32,
    /// The decision after all the tokens of the last call were taken: what this node's
    /// requests show, advanced by the tokens still in hand.
    base: Option<Decision>,
    /// When (ms) the last call granted tokens.
    at_ms: i64,
    /// Tokens the next call asks for.
    size: u32,
    /// The call for more under way: when it started, and its number.
    refill: Option<(i64, u64)>,
    /// The last call was refused: the key is at a limit.
    refused: bool,
    /// Tokens the last call granted (Redis grants one at a time near a limit).
    granted: u32,
    /// Wakes the requests waiting for that call.
    ready: Arc<Notify>,
    /// The key's requests on this node: how many in the period that began at `since_ms` (one
    /// [`PERIOD_MS`] long), and in the period before it.
    sent: Sent,
}

/// A key's requests on a node, counted in two periods of [`PERIOD_MS`].
#[derive(Clone, Copy)]
struct Sent {
    since_ms: i64,
    now: u32,
    before: u32,
}

impl Sent {
    fn new(now_ms: i64) -> Self {
        Self {
            since_ms: now_ms,
            now: 0,
            before: 0,
        }
    }

    /// Counts a request at `now_ms`.
    fn count(&mut self, now_ms: i64) {
        // A request that read the clock just before another one counted counts with it.
        let periods = (now_ms - self.since_ms).max(0).div_euclid(PERIOD_MS);
        if periods != 0 {
            self.before = if periods == 1 { self.now } else { 0 };
            self.now = 0;
            self.since_ms += periods * PERIOD_MS;
        }
        self.now = self.now.saturating_add(1);
    }

    /// About how many requests the key sends in a [`PERIOD_MS`]: the more of the two periods.
    fn per_period(&self) -> u32 {
        self.now.max(self.before).max(1)
    }
}

impl Lease {
    /// The size of the next call for more: twice the last, within [`MAX_LEASE`] and what the
    /// key sends in a [`PERIOD_MS`].
    fn grown(&self) -> u32 {
        (self.size * 2).min(MAX_LEASE).min(self.sent.per_period())
    }
}

/// What a request does, decided under the lease's lock.
pub enum Plan {
    /// Decided with a token in hand; `refill`: then ask for more (the lease is running low),
    /// as call number `id`.
    Local {
        decision: Decision,
        refill: Option<Refill>,
    },
    /// Ask the shared limiter for `want` tokens, one of them this request's; `refill`: the
    /// call's number when the spare tokens go in hand.
    Ask { want: u32, refill: Option<u64> },
    /// Wait for the call for more under way, then plan again.
    Wait(Pin<Box<OwnedNotified>>),
}

/// A call for more tokens: how many, and its number for [`Leases::settle`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refill {
    pub want: u32,
    pub id: u64,
}

/// What a call granted: `tokens`, and the decision after all of them were taken.
pub struct Grant {
    pub tokens: u32,
    pub base: Decision,
}

type Shard = HashMap<u64, Lease, BuildHasherDefault<IdentityHasher>>;

pub struct Leases {
    shards: Box<[Mutex<Shard>]>,
    next_id: AtomicU64,
}

impl Default for Leases {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            next_id: AtomicU64::new(1),
        }
    }
}

impl Leases {
    fn shard(&self, key: u64) -> std::sync::MutexGuard<'_, Shard> {
        self.shards[(key >> 60) as usize % SHARDS]
            .lock()
            .expect("lease shard")
    }

    /// What the next request against `buckets` does at `now_ms`; `may_wait`: whether it may
    /// still wait for a call under way (the caller bounds its waiting).
    pub fn take(&self, buckets: &[Bucket], now_ms: i64, may_wait: bool) -> Plan {
        // A call's number, taken only when a call starts.
        let id = || self.next_id.fetch_add(1, Ordering::Relaxed);
        let key = buckets[0].key;
        let mut shard = self.shard(key);
        let full = shard.len() >= MAX_LEASES / SHARDS;
        match shard.get(&key).map(|l| l.buckets == buckets) {
            Some(true) => {}
            found => {
                // None yet, or the key's limits changed (what it held was taken against the
                // old ones and is dropped). Full: one call per request, as without leases.
                if found.is_none() && full {
                    return Plan::Ask {
                        want: 1,
                        refill: None,
                    };
                }
                if let Some(old) = shard.get(&key) {
                    // Its call's outcome will not reach the new lease: wake its waiters now.
                    old.ready.notify_waiters();
                }
                let id = id();
                shard.insert(
                    key,
                    Lease {
                        buckets: buckets.to_vec(),
                        left: 0,
                        base: None,
                        at_ms: now_ms,
                        size: 1,
                        refill: Some((now_ms, id)),
                        refused: false,
                        granted: 0,
                        ready: Arc::new(Notify::new()),
                        sent: {
                            let mut sent = Sent::new(now_ms);
                            sent.count(now_ms);
                            sent
                        },
                    },
                );
                return Plan::Ask {
                    want: 1,
                    refill: Some(id),
                };
            }
        }
        let l = shard.get_mut(&key).expect("found above");
        // The clock is read before the lock: a request that read it just before a call for
        // more settled is as late as that call, not before it (its tokens are not stale).
        let now_ms = now_ms.max(l.at_ms);
        let fresh = (0..LEASE_TTL_MS).contains(&(now_ms - l.at_ms));
        let in_flight = l
            .refill
            .is_some_and(|(since, _)| now_ms - since < REFILL_STALE_MS);
        if fresh
            && l.left > 0
            && let Some(base) = &l.base
        {
            l.sent.count(now_ms);
            l.left -= 1;
            let decision = shown(base, l.left, now_ms - l.at_ms);
            let refill = (!in_flight && l.size > 1 && l.left < l.size / 2).then(|| {
                let id = id();
                l.size = l.grown();
                l.refill = Some((now_ms, id));
                Refill { want: l.size, id }
            });
            return Plan::Local { decision, refill };
        }
        if in_flight {
            // Waiting is worth it only for a call that asks for more than its own token while
            // Redis grants more than one, and not at a limit (refusals come at once, as
            // without leases).
            if may_wait && l.size > 1 && l.granted > 1 && !l.refused {
                let mut wait = Box::pin(l.ready.clone().notified_owned());
                // Registered before the lock is released, so the call's wake-up cannot be
                // missed.
                wait.as_mut().enable();
                // Counted when it plans again.
                return Plan::Wait(wait);
            }
            l.sent.count(now_ms);
            return Plan::Ask {
                want: 1,
                refill: None,
            };
        }
        // Out of tokens within the lease's life: ask for twice as many. After a pause: drop
        // what is left and start again from one.
        l.sent.count(now_ms);
        if fresh {
            l.size = l.grown();
        } else {
            l.left = 0;
            l.size = 1;
        }
        let id = id();
        l.refill = Some((now_ms, id));
        Plan::Ask {
            want: l.size,
            refill: Some(id),
        }
    }

    /// The outcome of call number `id` planned by [`Leases::take`]: what it granted (`spare`
    /// of the tokens not used by the calling request), or `None` when it granted nothing
    /// (refused, or Redis did not answer). Wakes the requests waiting for it.
    pub fn settle(
        &self,
        buckets: &[Bucket],
        now_ms: i64,
        id: u64,
        spare: u32,
        granted: Option<Grant>,
    ) {
        let mut shard = self.shard(buckets[0].key);
        let Some(l) = shard.get_mut(&buckets[0].key) else {
            return;
        };
        if l.buckets != buckets {
            return;
        }
        match granted {
            Some(g) => {
                if now_ms - l.at_ms >= LEASE_TTL_MS {
                    // What was in hand is past its time: dropped, not used late.
                    l.left = 0;
                }
                l.left = l.left.saturating_add(spare);
                l.base = Some(g.base);
                l.at_ms = l.at_ms.max(now_ms);
                l.refused = false;
                // Fewer than asked: Redis is near a limit; ask for what it gives.
                l.granted = g.tokens;
                l.size = l.size.min(g.tokens.max(1));
            }
            // Refused (or no answer): the key is at a limit, so one token per call from here.
            None => {
                l.size = 1;
                l.refused = true;
            }
        }
        if l.refill.is_some_and(|(_, current)| current == id) {
            l.refill = None;
        }
        l.ready.notify_waiters();
    }

    /// Call number `id` will not come back (its request was dropped): others need not wait.
    pub fn abandon(&self, buckets: &[Bucket], id: u64) {
        let mut shard = self.shard(buckets[0].key);
        if let Some(l) = shard.get_mut(&buckets[0].key)
            && l.refill.is_some_and(|(_, current)| current == id)
        {
            l.refill = None;
            l.ready.notify_waiters();
        }
    }

    /// Drops leases idle for a while (with the tokens they held, taken long ago).
    pub fn prune(&self, now_ms: i64) {
        for shard in self.shards.iter() {
            shard.lock().expect("lease shard").retain(|_, l| {
                now_ms - l.at_ms < IDLE_MS
                    || l.refill
                        .is_some_and(|(since, _)| now_ms - since < REFILL_STALE_MS)
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
        }
    }

    /// What a plan asks of Redis: (tokens wanted, call number when it refills).
    fn asked(plan: &Plan) -> Option<(u32, Option<u64>)> {
        match plan {
            Plan::Ask { want, refill } => Some((*want, *refill)),
            Plan::Local {
                refill: Some(r), ..
            } => Some((r.want, Some(r.id))),
            _ => None,
        }
    }

    /// Runs `take` and, for a call, settles it as Redis granting everything asked.
    fn request(leases: &Leases, b: &[Bucket], now_ms: i64, remaining: &mut u32) -> Plan {
        let plan = leases.take(b, now_ms, false);
        if let Some((want, refill)) = asked(&plan) {
            *remaining -= want;
            if let Some(id) = refill {
                let spare = if matches!(plan, Plan::Local { .. }) {
                    want
                } else {
                    want - 1
                };
                leases.settle(b, now_ms, id, spare, Some(grant(want, *remaining)));
            }
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
            let plan = request(&leases, &b, 1_000, &mut remaining);
            calls += usize::from(asked(&plan).is_some());
            if let Plan::Local { decision, .. } = plan {
                shown_remaining.push(decision.windows[0].remaining);
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
    fn a_slow_key_makes_one_call_per_request_and_a_pause_drops_what_is_in_hand() {
        let leases = Leases::default();
        let b = bucket();
        let mut remaining = 60_000;
        // Fewer than one request in a lease's life.
        for i in 0..20 {
            let plan = request(&leases, &b, i * (LEASE_TTL_MS + 1), &mut remaining);
            assert!(matches!(plan, Plan::Ask { want: 1, .. }));
        }
        // (The last of those came at 19 * 2,001 ms.)
        for _ in 0..40 {
            request(&leases, &b, 50_000, &mut remaining);
        }
        assert!(leases.in_hand(b[0].key) > 0);
        // After a pause what is in hand is not used: the next request asks Redis for one.
        let plan = request(&leases, &b, 50_000 + LEASE_TTL_MS, &mut remaining);
        assert!(matches!(plan, Plan::Ask { want: 1, .. }));
        assert_eq!(leases.in_hand(b[0].key), 0);
    }

    #[test]
    fn a_key_at_a_steady_pace_holds_about_a_periods_worth_and_uses_it_all() {
        let leases = Leases::default();
        let b = bucket();
        let mut remaining = 60_000;
        // Four requests a period, two periods a lease's life.
        let per_period = 4;
        let step = PERIOD_MS / per_period;
        let (mut calls, mut requests) = (0, 0);
        for i in 0..200 {
            let plan = request(&leases, &b, i * step, &mut remaining);
            requests += 1;
            if let Some((want, _)) = asked(&plan) {
                calls += 1;
                assert!(want <= per_period as u32 + 1, "asked for {want}");
            }
            assert!(leases.in_hand(b[0].key) <= per_period as u32 + 1);
        }
        // About one call for every three requests, rather than one each; and at a steady pace
        // nothing goes stale: every token taken was used or is in hand.
        assert!(
            calls * 2 < requests,
            "{calls} calls for {requests} requests"
        );
        assert_eq!(60_000 - remaining, requests + leases.in_hand(b[0].key));
    }

    #[test]
    fn a_request_that_read_the_clock_before_a_call_settled_still_uses_its_tokens() {
        let leases = Leases::default();
        let b = bucket();
        let mut remaining = 60_000;
        for _ in 0..10 {
            request(&leases, &b, 1_000, &mut remaining);
        }
        let held = leases.in_hand(b[0].key);
        assert!(held > 0);
        // Read 999 before the lock; the call for more settled at 1,000 meanwhile.
        assert!(matches!(leases.take(&b, 999, false), Plan::Local { .. }));
        assert_eq!(leases.in_hand(b[0].key), held - 1, "nothing dropped");
    }

    #[tokio::test]
    async fn while_a_call_for_several_is_under_way_others_wait_for_it() {
        let leases = Leases::default();
        let b = bucket();
        // A call for one token serves only its own request: nobody waits for it.
        let Plan::Ask {
            want: 1,
            refill: Some(first),
        } = leases.take(&b, 0, true)
        else {
            panic!("the first request asks for one");
        };
        assert!(matches!(
            leases.take(&b, 0, true),
            Plan::Ask {
                want: 1,
                refill: None
            }
        ));
        leases.settle(&b, 0, first, 0, Some(grant(1, 59_999)));
        // The next asks for two and gets them; the one to spare is taken by the next
        // request, which asks for four.
        let Plan::Ask {
            want: 2,
            refill: Some(second),
        } = leases.take(&b, 1, true)
        else {
            panic!("the second call asks for two");
        };
        leases.settle(&b, 1, second, 1, Some(grant(2, 59_997)));
        let Plan::Local {
            refill: Some(third),
            ..
        } = leases.take(&b, 1, true)
        else {
            panic!("decided in hand, and asks for more");
        };
        assert_eq!(third.want, 4);
        // Nothing in hand while it is under way: wait for it, or, no longer allowed to
        // wait, ask Redis alone with nothing for the lease.
        let Plan::Wait(wait) = leases.take(&b, 2, true) else {
            panic!("waits");
        };
        assert!(matches!(
            leases.take(&b, 2, false),
            Plan::Ask {
                want: 1,
                refill: None
            }
        ));
        // The call comes back: the waiter wakes and takes a token.
        leases.settle(&b, 3, third.id, 4, Some(grant(4, 59_992)));
        tokio::time::timeout(std::time::Duration::from_secs(5), wait)
            .await
            .expect("woken by the call");
        assert!(matches!(leases.take(&b, 3, true), Plan::Local { .. }));
        // Spend the rest; the last one asks for more. That call is abandoned (its request
        // dropped): the next one starts at once. One that never came back at all stops
        // nobody for long.
        let fourth = loop {
            match leases.take(&b, 4, true) {
                Plan::Local {
                    refill: Some(r), ..
                } => break r,
                Plan::Local { refill: None, .. } => {}
                _ => panic!("tokens in hand"),
            }
        };
        leases.abandon(&b, fourth.id);
        while let Plan::Local { refill: None, .. } = leases.take(&b, 5, true) {}
        assert!(matches!(leases.take(&b, 5, true), Plan::Wait(_)));
        assert!(matches!(
            leases.take(&b, 5 + REFILL_STALE_MS, true),
            Plan::Ask {
                refill: Some(_),
                ..
            }
        ));
    }

    #[test]
    fn near_a_limit_where_redis_grants_one_at_a_time_nobody_waits() {
        let leases = Leases::default();
        let b = bucket();
        let Plan::Ask {
            refill: Some(first),
            ..
        } = leases.take(&b, 0, true)
        else {
            panic!()
        };
        leases.settle(&b, 0, first, 0, Some(grant(1, 100)));
        // Asks for two, Redis grants one.
        let Plan::Ask {
            want: 2,
            refill: Some(second),
        } = leases.take(&b, 1, true)
        else {
            panic!()
        };
        leases.settle(&b, 1, second, 0, Some(grant(1, 99)));
        // The next call asks for two again, and nobody waits for it.
        assert!(matches!(
            leases.take(&b, 2, true),
            Plan::Ask {
                want: 2,
                refill: Some(_)
            }
        ));
        assert!(matches!(
            leases.take(&b, 2, true),
            Plan::Ask {
                want: 1,
                refill: None
            }
        ));
    }

    #[test]
    fn at_a_limit_nobody_waits() {
        let leases = Leases::default();
        let b = bucket();
        // A call is refused; the next asks for more again, but while it is under way others
        // ask alone rather than wait.
        let Plan::Ask {
            refill: Some(id), ..
        } = leases.take(&b, 0, false)
        else {
            panic!()
        };
        leases.settle(&b, 0, id, 0, None);
        assert!(matches!(
            leases.take(&b, 0, true),
            Plan::Ask {
                refill: Some(_),
                ..
            }
        ));
        assert!(matches!(
            leases.take(&b, 0, true),
            Plan::Ask {
                want: 1,
                refill: None
            }
        ));
    }

    #[test]
    fn only_the_call_under_way_ends_it() {
        let leases = Leases::default();
        let b = bucket();
        let Plan::Ask {
            refill: Some(first),
            ..
        } = leases.take(&b, 0, false)
        else {
            panic!()
        };
        // A stale call is replaced by a new one; the stale one coming back late adds its
        // tokens (they were granted) but does not end the new one.
        let Plan::Ask {
            refill: Some(second),
            ..
        } = leases.take(&b, REFILL_STALE_MS, false)
        else {
            panic!()
        };
        leases.settle(&b, REFILL_STALE_MS, first, 0, Some(grant(1, 59_999)));
        assert!(matches!(
            leases.take(&b, REFILL_STALE_MS + 1, false),
            Plan::Ask {
                want: 1,
                refill: None
            }
        ));
        leases.settle(&b, REFILL_STALE_MS + 1, second, 1, Some(grant(2, 59_997)));
        assert!(matches!(
            leases.take(&b, REFILL_STALE_MS + 2, false),
            Plan::Local { .. }
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
            if let Plan::Ask {
                refill: Some(id), ..
            } = leases.take(&b, 0, false)
            {
                leases.settle(&b, 0, id, 0, Some(grant(1, 100)));
            }
        }
        assert!(leases.len() <= MAX_LEASES, "{}", leases.len());
        assert!(leases.len() > MAX_LEASES / 2);
        leases.prune(IDLE_MS - 1);
        assert!(leases.len() > MAX_LEASES / 2);
        leases.prune(IDLE_MS);
        assert_eq!(leases.len(), 0);
    }

    #[test]
    fn a_refusal_or_new_limits_start_again_from_the_bottom() {
        let leases = Leases::default();
        let b = bucket();
        let mut remaining = 60_000;
        for _ in 0..100 {
            request(&leases, &b, 0, &mut remaining);
        }
        // Spend what is in hand; the next call is refused.
        let id = loop {
            match leases.take(&b, 0, false) {
                Plan::Local { refill: None, .. } => {}
                Plan::Local {
                    refill: Some(r), ..
                } => leases.settle(&b, 0, r.id, 0, None),
                Plan::Ask {
                    refill: Some(id), ..
                } => break id,
                _ => panic!(),
            }
        };
        leases.settle(&b, 0, id, 0, None);
        assert!(matches!(
            leases.take(&b, 1, false),
            Plan::Ask {
                want: 2,
                refill: Some(_)
            }
        ));
        let other = vec![Bucket {
            key: b[0].key,
            windows: windows(100, 1_000),
        }];
        assert!(matches!(
            leases.take(&other, 2, false),
            Plan::Ask {
                want: 1,
                refill: Some(_)
            }
        ));
        assert_eq!(leases.in_hand(b[0].key), 0);
    }
}
