//! Rate limiting with GCRA (the generic cell rate algorithm): per key, one theoretical arrival
//! time per window, so a decision is a few integer operations under a sharded lock.
//!
//! A limit of N per window W lets a burst of N through at once and then one request every W/N;
//! the state is "when the bucket will be empty again" (the TAT). A request is decided against
//! several [`Bucket`]s at once (the key's minute and day, and its workspace's ceiling across all
//! its keys): it passes only if every window has room, and then takes one from each; a refusal
//! takes nothing. The arithmetic is [`step`], one function for both places it runs:
//!
//! - [`RateLimiter::Local`]: in this process ([`Gcra`]), for one node.
//! - [`RateLimiter::Redis`]: shared by every node, a Lua script ([`REDIS_SCRIPT`]) that
//!   reads the time inside Redis (no clock skew between nodes), applies the same step to
//!   every bucket and takes from them only when all have room: atomic, one round trip. A
//!   decision is for one request, or takes a few tokens ahead for a busy key's next requests
//!   on this node ([`super::leases`]: never more than the limits allow across nodes); the
//!   decisions a node asks while a call is under way go together in its next call
//!   ([`Caller`]), each made as if alone. When Redis
//!   cannot answer (within [`REDIS_TIMEOUT`]), the decision follows the operator's
//!   [`OnRedisError`]: this node's own limits, or a refusal (`503`); either way it is logged
//!   and counted (`crier_rate_limit_backend_errors_total`), and Redis is not asked again for
//!   [`REDIS_RETRY_AFTER`], so an outage does not add its timeout to every request.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;

use super::leases::{self, Grant, Leases, Plan};

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

impl Window {
    fn period_us(&self) -> i64 {
        i64::from(self.seconds) * 1_000_000
    }

    pub(crate) fn interval_us(&self) -> i64 {
        self.period_us() / i64::from(self.limit.max(1))
    }
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
    /// Whether the refusing window is the workspace's ceiling rather than the key's own.
    pub by_workspace: bool,
    /// Refused because the shared limiter could not be asked and the operator chose to fail
    /// closed (`503`), not because of a limit.
    pub unavailable: bool,
    /// The key's windows (what the `RateLimit` headers show).
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

/// One thing limited: a key (or the workspace's ceiling) and its minute and day windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    pub key: u64,
    pub windows: [Window; 2],
}

/// A per-minute and a per-day window.
pub fn windows(per_minute: u32, per_day: u32) -> [Window; 2] {
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

/// At most this many buckets per decision (a key and its workspace).
pub const MAX_BUCKETS: usize = 2;

/// One GCRA step: given each bucket's stored arrival times (`None`: never seen) at `now_us`,
/// whether one more request fits every window, the arrival times to store when it does, and
/// the decision (the first bucket's windows are the ones reported).
pub fn step(
    buckets: &[Bucket],
    stored: &[Option<[i64; 2]>],
    now_us: i64,
) -> (Decision, Option<Vec<[i64; 2]>>) {
    debug_assert_eq!(buckets.len(), stored.len());
    let current: Vec<[i64; 2]> = stored
        .iter()
        .map(|s| {
            let s = s.unwrap_or([now_us, now_us]);
            [s[0].max(now_us), s[1].max(now_us)]
        })
        .collect();
    let next: Vec<[i64; 2]> = buckets
        .iter()
        .zip(&current)
        .map(|(b, c)| {
            [
                c[0] + b.windows[0].interval_us(),
                c[1] + b.windows[1].interval_us(),
            ]
        })
        .collect();
    // The window that refuses, waiting longest if several do.
    let refused = buckets
        .iter()
        .enumerate()
        .flat_map(|(b, bucket)| (0..2).map(move |w| (b, w, bucket.windows[w])))
        .filter(|(b, w, win)| next[*b][*w] - now_us > win.period_us())
        .map(|(b, w, win)| (b, w, next[b][w] - win.period_us() - now_us))
        .max_by_key(|(_, _, wait)| *wait);
    // The state of the first bucket's window `i` if its arrival time were `tat`.
    let first = &buckets[0];
    let state = |i: usize, tat: i64| {
        let w = &first.windows[i];
        WindowState {
            window: *w,
            // Rounding the interval down can leave room for a few more than the limit over
            // a long window; never announce more than the limit.
            remaining: (((w.period_us() - (tat - now_us)).max(0) / w.interval_us()) as u32)
                .min(w.limit),
            reset_ms: ceil_div_1000(tat - now_us),
        }
    };
    match refused {
        None => (
            Decision {
                allowed: true,
                retry_after_ms: 0,
                refused_by: None,
                by_workspace: false,
                unavailable: false,
                windows: [state(0, next[0][0]), state(1, next[0][1])],
            },
            Some(next),
        ),
        // Nothing is consumed from any window: the request did not happen.
        Some((b, w, wait)) => (
            Decision {
                allowed: false,
                retry_after_ms: ceil_div_1000(wait).max(1),
                refused_by: Some(buckets[b].windows[w].name),
                by_workspace: b > 0,
                unavailable: false,
                windows: [state(0, current[0][0]), state(1, current[0][1])],
            },
            None,
        ),
    }
}

/// What a node does when Redis cannot answer a rate-limit decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnRedisError {
    /// Decide with this node's own limits (each node then allows up to the limit).
    #[default]
    Local,
    /// Refuse the request with `503 upstream_unavailable`.
    Closed,
}

/// How long one Redis decision may take before the fallback decides.
pub const REDIS_TIMEOUT: Duration = Duration::from_millis(250);
/// After a failure, how long decisions skip Redis.
pub const REDIS_RETRY_AFTER: Duration = Duration::from_secs(1);

/// The shared limiter: a Redis connection (reconnecting by itself) and the fallback.
pub struct RedisLimiter {
    caller: Arc<Caller>,
    on_error: OnRedisError,
    fallback: Gcra,
    errors: AtomicU64,
    /// Until when (ms since the epoch, wall clock) decisions skip Redis.
    skip_until_ms: AtomicI64,
    /// Tokens taken ahead for busy keys, and the clock they age on.
    leases: Leases,
    epoch: std::time::Instant,
}

/// The Lua script of shared decisions, one call for every decision asked at once (see
/// [`Caller`]). KEYS: the buckets' keys, each once. ARGV: the room share; the distinct window
/// pairs, each four little-endian doubles (the minute's interval and period, the day's, in
/// µs, computed by the caller: integers below 2^53, exact in Lua's doubles); and per decision
/// six little-endian `u16`: the tokens wanted (at least 1; see [`super::leases`]), its number
/// of buckets (1 or 2, [`MAX_BUCKETS`]), and per bucket its index in KEYS and its windows'
/// index. Binary arguments cost the script one `struct.unpack` a decision instead of a dozen
/// `tonumber`s.
///
/// A bucket is a string of two little-endian doubles, the minute's and the day's arrival
/// times, expiring when both are past. All buckets are read in one `MGET`, and each changed
/// bucket is written once, in one `SET … PX`, only when something was granted from it.
///
/// The decisions are made in order, each exactly as if it were alone: it grants one token if
/// every window of its buckets has room, and more (up to the tokens wanted) only while every
/// window keeps [`super::leases::ROOM_SHARE`] times as much room; a later decision sees what an
/// earlier one took. The script returns one string of little-endian doubles: the time it read,
/// then per decision the tokens granted and the arrival times it found (`-1`: none stored),
/// which costs the node one bulk string to read instead of an integer per figure. The caller
/// applies [`step`] to them, which decides the first token exactly as the script did.
pub const REDIS_SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local share = tonumber(ARGV[1])
local unpack_, floor, min, max = struct.unpack, math.floor, math.min, math.max
local wins, decs = ARGV[2], ARGV[3]
local im, pm, id, pd = {}, {}, {}, {}
for j = 1, #wins / 32 do
  im[j], pm[j], id[j], pd[j] = unpack_('<dddd', wins, 32 * j - 31)
end
local stored = redis.call('MGET', unpack(KEYS))
local tm, td = {}, {}
for i = 1, #KEYS do
  local v = stored[i]
  if v and #v == 16 then tm[i], td[i] = unpack_('<dd', v) else tm[i], td[i] = -1, -1 end
end
local function room(k, tat, interval, period)
  if tat < now then tat = now end
  if tat + interval - now > period then return 0 end
  if k > 1 then return min(k, max(1, floor((period - (tat - now)) / (interval * share)))) end
  return k
end
local pack = struct.pack
local out, o = {pack('<d', now)}, 1
local seen, dirty, nd = {}, {}, 0
local function take(i, w, k)
  tm[i] = max(tm[i], now) + k * im[w]
  td[i] = max(td[i], now) + k * id[w]
  if not seen[i] then seen[i] = true; nd = nd + 1; dirty[nd] = i end
end
for r = 0, #decs / 12 - 1 do
  local k, nb, k1, w1, k2, w2 = unpack_('<HHHHHH', decs, 12 * r + 1)
  local a, b = tm[k1], td[k1]
  k = room(room(k, a, im[w1], pm[w1]), b, id[w1], pd[w1])
  o = o + 1
  if nb == 2 then
    local c, d = tm[k2], td[k2]
    k = room(room(k, c, im[w2], pm[w2]), d, id[w2], pd[w2])
    out[o] = pack('<ddddd', k, a, b, c, d)
  else
    out[o] = pack('<ddd', k, a, b)
  end
  if k > 0 then
    take(k1, w1, k)
    if nb == 2 then take(k2, w2, k) end
  end
end
for j = 1, nd do
  local i = dirty[j]
  local m, d = tm[i], td[i]
  redis.call('SET', KEYS[i], pack('<dd', m, d), 'PX', floor((max(m, d) - now) / 1000) + 1000)
end
return table.concat(out)
"#;

/// The Redis key of a bucket. (`rl2`: a string of two doubles; `rl` held a hash of decimal
/// strings, which the script no longer reads.)
fn redis_key(key: u64) -> String {
    format!("crier:rl2:{key:016x}")
}

/// At most this many decisions go in one script call.
pub const MAX_BATCH: usize = 64;
/// At most this many script calls under way at once on a node.
const MAX_CALLS: usize = 4;
/// At most this many decisions wait for a call on a node; past that a decision is made as
/// when Redis does not answer, without leaving Redis alone (Redis did nothing wrong).
const MAX_WAITING: usize = 4_096;
/// How long a decision waits for its answer: the call under way, then its own call
/// ([`REDIS_TIMEOUT`] each).
const ASK_TIMEOUT: Duration = Duration::from_millis(2 * REDIS_TIMEOUT.as_millis() as u64);

/// Script calls shared by the decisions asked together: while a call is under way the
/// decisions asked meanwhile wait, and the next call takes them all (at most [`MAX_BATCH`]).
/// Another call (up to [`MAX_CALLS`] at once) starts for each further whole batch waiting. At one request
/// at a time nothing waits; under load Redis and the node spend one round trip, one read of
/// the time and one read and write of a shared bucket (the workspace's) on many decisions
/// instead of one each.
struct Caller {
    conn: redis::aio::ConnectionManager,
    script: redis::Script,
    queue: Mutex<Queue>,
    /// Decisions sent to Redis.
    decisions: AtomicU64,
    /// Script calls made.
    scripts: AtomicU64,
}

#[derive(Default)]
struct Queue {
    waiting: VecDeque<Asked>,
    /// Tasks making calls; each takes what waits until nothing does.
    drivers: usize,
}

/// A task making calls, counted in [`Queue::drivers`] from before it is spawned until it ends.
/// Should it end other than by finding nothing waiting (a panic; the runtime shutting down,
/// even before it first ran), it no longer counts, and when no other driver is left the
/// decisions waiting get their answer at once ("the call was dropped"), so the next decision
/// starts another.
struct Driving {
    caller: Arc<Caller>,
    counted: bool,
}

impl Drop for Driving {
    fn drop(&mut self) {
        if !self.counted {
            return;
        }
        let orphans: Vec<Asked> = match self.caller.queue.lock() {
            Ok(mut q) => {
                q.drivers -= 1;
                if q.drivers == 0 {
                    q.waiting.drain(..).collect()
                } else {
                    Vec::new()
                }
            }
            Err(_) => Vec::new(),
        };
        drop(orphans);
    }
}

/// Why a decision was not made in Redis.
enum AskError {
    /// Redis did not answer, or answered nonsense.
    Redis(String),
    /// [`MAX_WAITING`] decisions already wait on this node.
    Busy,
    /// Not a decision the script makes: no bucket, more than [`MAX_BUCKETS`], or one bucket
    /// twice (two keys' hashes alike).
    Unfit,
}

/// A decision waiting for a call.
struct Asked {
    buckets: Vec<Bucket>,
    want: u32,
    answer: oneshot::Sender<Result<Answer, String>>,
}

impl Caller {
    /// Makes calls until nothing waits (see [`Queue::drivers`]).
    async fn drive(mut driving: Driving) {
        let this = driving.caller.clone();
        loop {
            let mut batch: Vec<Asked> = {
                let mut q = this.queue.lock().expect("rate limit queue");
                if q.waiting.is_empty() {
                    // Under the same lock as the look: a decision asked from now on finds one
                    // driver fewer and starts one if none is left.
                    q.drivers -= 1;
                    driving.counted = false;
                    return;
                }
                let n = q.waiting.len().min(MAX_BATCH);
                q.waiting.drain(..n).collect()
            };
            // Decisions nobody waits for any more (their request timed out or was dropped)
            // are not asked: Redis would take tokens nobody uses.
            batch.retain(|a| !a.answer.is_closed());
            if batch.is_empty() {
                continue;
            }
            this.decisions
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
            let answers = tokio::time::timeout(REDIS_TIMEOUT, this.invoke(&batch))
                .await
                .map_err(|_| "timed out".to_owned())
                .and_then(|r| r.map_err(|e| e.to_string()));
            match answers {
                Ok(answers) => {
                    for (asked, answer) in batch.into_iter().zip(answers) {
                        let _ = asked.answer.send(Ok(answer));
                    }
                }
                Err(e) => {
                    // What waits meanwhile would go to a Redis that just failed: it gets the
                    // same answer now (each is decided as when Redis does not answer, and the
                    // node leaves Redis alone for a while).
                    let waiting: Vec<Asked> = {
                        let mut q = this.queue.lock().expect("rate limit queue");
                        q.waiting.drain(..).collect()
                    };
                    for asked in batch.into_iter().chain(waiting) {
                        let _ = asked.answer.send(Err(e.clone()));
                    }
                }
            }
        }
    }

    /// One script call deciding `batch` in order.
    async fn invoke(&self, batch: &[Asked]) -> redis::RedisResult<Vec<Answer>> {
        self.scripts.fetch_add(1, Ordering::Relaxed);
        let mut call = self.script.prepare_invoke();
        // Each bucket once in KEYS and each pair of windows once, in order of first appearance.
        let mut keys: Vec<u64> = Vec::with_capacity(batch.len() + 1);
        let mut windows: Vec<[Window; 2]> = Vec::with_capacity(2);
        let mut wins: Vec<u8> = Vec::with_capacity(64);
        let mut decisions: Vec<u8> = Vec::with_capacity(batch.len() * 12);
        for asked in batch {
            let mut row = [0u16; 2 + 2 * MAX_BUCKETS];
            // Leases ask for at most MAX_LEASE; the script grants at most what is asked.
            row[0] = u16::try_from(asked.want).unwrap_or(u16::MAX);
            row[1] = asked.buckets.len() as u16;
            // One or two buckets, not the same twice (`ask` sends no other).
            for (i, b) in asked.buckets.iter().take(MAX_BUCKETS).enumerate() {
                let k = keys.iter().position(|k| *k == b.key).unwrap_or_else(|| {
                    keys.push(b.key);
                    call.key(redis_key(b.key));
                    keys.len() - 1
                });
                let w = windows
                    .iter()
                    .position(|w| *w == b.windows)
                    .unwrap_or_else(|| {
                        windows.push(b.windows);
                        for w in &b.windows {
                            wins.extend_from_slice(&(w.interval_us() as f64).to_le_bytes());
                            wins.extend_from_slice(&(w.period_us() as f64).to_le_bytes());
                        }
                        windows.len() - 1
                    });
                // At most 2 * MAX_BATCH of each: far below u16::MAX.
                row[2 + 2 * i] = (k + 1) as u16;
                row[3 + 2 * i] = (w + 1) as u16;
            }
            for v in row {
                decisions.extend_from_slice(&v.to_le_bytes());
            }
        }
        call.arg(leases::ROOM_SHARE).arg(wins).arg(decisions);
        let mut conn = self.conn.clone();
        let out: Vec<u8> = call.invoke_async(&mut conn).await?;
        let shapes = batch.iter().map(|a| (a.want, a.buckets.len()));
        read_answers(&out, shapes).ok_or_else(|| {
            redis::RedisError::from((
                redis::ErrorKind::Parse,
                "unexpected answer from the rate-limit script",
            ))
        })
    }
}

/// The script's answer (see [`REDIS_SCRIPT`]) to decisions of these shapes (tokens wanted,
/// buckets), in order; `None` when it is not one: a wrong length, a figure that is not a
/// finite number far below 2^53 (times in µs, or -1), or more tokens granted than wanted.
fn read_answers(
    out: &[u8],
    shapes: impl ExactSizeIterator<Item = (u32, usize)> + Clone,
) -> Option<Vec<Answer>> {
    let expected = 1 + shapes.clone().map(|(_, n)| 1 + 2 * n).sum::<usize>();
    if out.len() != 8 * expected {
        return None;
    }
    let mut figures = Vec::with_capacity(expected);
    for c in out.chunks_exact(8) {
        let v = f64::from_le_bytes(c.try_into().expect("chunks of 8 bytes"));
        if !(v.is_finite() && v.abs() < 9.0e15) {
            return None;
        }
        figures.push(v as i64);
    }
    let now_us = figures[0];
    let mut rest = &figures[1..];
    let mut answers = Vec::with_capacity(shapes.len());
    for (want, buckets) in shapes {
        let (row, tail) = rest.split_at(1 + 2 * buckets);
        rest = tail;
        if !(0..=i64::from(want)).contains(&row[0]) {
            return None;
        }
        let stored = row[1..]
            .chunks(2)
            .map(|c| (c[0] >= 0 && c[1] >= 0).then_some([c[0], c[1]]))
            .collect();
        answers.push(Answer {
            now_us,
            granted: row[0] as u32,
            stored,
        });
    }
    Some(answers)
}

impl RedisLimiter {
    /// A limiter on the Redis at `url` (connected lazily, reconnecting by itself).
    pub fn new(url: &str, on_error: OnRedisError) -> Result<Self, String> {
        let client = redis::Client::open(url).map_err(|e| format!("redis_url: {e}"))?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT))
            .set_number_of_retries(1);
        let conn = redis::aio::ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| format!("redis_url: {e}"))?;
        Ok(Self {
            caller: Arc::new(Caller {
                conn,
                script: redis::Script::new(REDIS_SCRIPT),
                queue: Mutex::new(Queue::default()),
                decisions: AtomicU64::new(0),
                scripts: AtomicU64::new(0),
            }),
            on_error,
            fallback: Gcra::default(),
            errors: AtomicU64::new(0),
            skip_until_ms: AtomicI64::new(0),
            leases: Leases::default(),
            epoch: std::time::Instant::now(),
        })
    }

    /// Redis's clock, the tokens granted (0: refused) and the arrival times of `buckets` as
    /// the script found them (see [`REDIS_SCRIPT`]), decided in the next call ([`Caller`])
    /// within [`ASK_TIMEOUT`] of asking.
    async fn ask(&self, buckets: &[Bucket], want: u32) -> Result<Answer, AskError> {
        let fit = match buckets {
            [_] => true,
            [a, b] => a.key != b.key,
            _ => false,
        };
        if !fit {
            return Err(AskError::Unfit);
        }
        let (answer, answered) = oneshot::channel();
        let asked = Asked {
            buckets: buckets.to_vec(),
            want,
            answer,
        };
        let start = {
            let mut q = self.caller.queue.lock().expect("rate limit queue");
            if q.waiting.len() >= MAX_WAITING {
                return Err(AskError::Busy);
            }
            q.waiting.push_back(asked);
            // One more driver for each whole batch waiting beyond what those under way take.
            let start = q.waiting.len() >= MAX_BATCH * q.drivers && q.drivers < MAX_CALLS;
            q.drivers += usize::from(start);
            start
        };
        if start {
            tokio::spawn(Caller::drive(Driving {
                caller: self.caller.clone(),
                counted: true,
            }));
        }
        match tokio::time::timeout(ASK_TIMEOUT, answered).await {
            Ok(Ok(answer)) => answer.map_err(AskError::Redis),
            Ok(Err(_)) => Err(AskError::Redis("the call was dropped".into())),
            Err(_) => Err(AskError::Redis("timed out".into())),
        }
    }

    /// Whether decisions are leaving Redis alone after a failure.
    fn skipping(&self, wall_ms: i64) -> bool {
        self.skip_until_ms.load(Ordering::Relaxed) > wall_ms
    }

    /// Asks Redis for `want` tokens: the decision on the first token and what was granted
    /// (`None`: nothing), or `Err` when Redis did not answer (recorded, and Redis is left
    /// alone for [`REDIS_RETRY_AFTER`]).
    async fn call(
        &self,
        buckets: &[Bucket],
        want: u32,
        wall_ms: i64,
    ) -> Result<(Decision, Option<Grant>), ()> {
        if self.skipping(wall_ms) {
            self.errors.fetch_add(1, Ordering::Relaxed);
            return Err(());
        }
        match self.ask(buckets, want).await {
            Ok(a) => {
                let decision = step(buckets, &a.stored, a.now_us).0;
                debug_assert_eq!(decision.allowed, a.granted > 0);
                let grant = (a.granted > 0).then(|| Grant {
                    tokens: a.granted,
                    base: leases::advanced(&decision, a.granted - 1),
                });
                Ok((decision, grant))
            }
            Err(AskError::Busy | AskError::Unfit) => {
                // Too many decisions wait on this node (or this one is not the script's): it
                // is made without Redis, and counted, but Redis is not left alone for it (nor
                // is a line logged for each).
                self.errors.fetch_add(1, Ordering::Relaxed);
                Err(())
            }
            Err(AskError::Redis(e)) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                let until = wall_ms + REDIS_RETRY_AFTER.as_millis() as i64;
                // One line per failure, not one per decision that waited for the failed call.
                if self.skip_until_ms.swap(until, Ordering::Relaxed) <= wall_ms {
                    tracing::warn!(error = %e, on_error = ?self.on_error,
                        "rate limiter: Redis did not answer; deciding without it for a second");
                }
                Err(())
            }
        }
    }

    async fn check(&self, buckets: &[Bucket], now_ms: i64) -> Decision {
        let wall_ms = wall_clock_ms();
        // Leases age on this node's monotonic clock, whatever the application's clock does.
        let lease_ms = || self.epoch.elapsed().as_millis() as i64;
        // Waiting for calls under way takes at most one call's timeout in all.
        let deadline = tokio::time::Instant::now() + REDIS_TIMEOUT;
        let plan = loop {
            let may_wait = tokio::time::Instant::now() < deadline;
            match self.leases.take(buckets, lease_ms(), may_wait) {
                Plan::Wait(wait) => {
                    let _ = tokio::time::timeout_at(deadline, wait).await;
                }
                plan => break plan,
            }
        };
        // A request decided with a token in hand may also fetch the next ones; any other asks
        // Redis for its own (and, as the lease's call, for the next ones too).
        let (in_hand, want, refill) = match plan {
            Plan::Local {
                decision,
                refill: None,
            } => return decision,
            Plan::Local {
                decision,
                refill: Some(r),
            } => (Some(decision), r.want, Some(r.id)),
            Plan::Ask { want, refill } => (None, want, refill),
            Plan::Wait(_) => unreachable!("waited above"),
        };
        let pending = refill.map(|id| Pending::new(&self.leases, buckets, id));
        // Decided already, and Redis is being left alone: nothing to fetch, no error to count.
        let answer = if in_hand.is_some() && self.skipping(wall_ms) {
            Err(())
        } else {
            self.call(buckets, want, wall_ms).await
        };
        if let Some(pending) = pending {
            pending.done();
        }
        let (answered, grant) = match answer {
            Ok((decision, grant)) => (Some(decision), grant),
            Err(()) => (None, None),
        };
        if let Some(id) = refill {
            // The request's own token is not spare, unless it was decided in hand.
            let own = u32::from(in_hand.is_none());
            let spare = grant.as_ref().map_or(0, |g| g.tokens - own);
            self.leases.settle(buckets, lease_ms(), id, spare, grant);
        }
        if let Some(decision) = in_hand.or(answered) {
            return decision;
        }
        match self.on_error {
            OnRedisError::Local => self.fallback.check_buckets(buckets, now_ms * 1000),
            OnRedisError::Closed => {
                let mut d = step(buckets, &vec![None; buckets.len()], now_ms * 1000).0;
                d.allowed = false;
                d.unavailable = true;
                d.retry_after_ms = REDIS_RETRY_AFTER.as_millis() as i64;
                d
            }
        }
    }
}

/// A call for more tokens under way: abandoned if its request is dropped before it comes back,
/// so the key's other requests do not wait for it.
struct Pending<'a> {
    leases: &'a Leases,
    buckets: &'a [Bucket],
    id: u64,
    done: bool,
}

impl<'a> Pending<'a> {
    fn new(leases: &'a Leases, buckets: &'a [Bucket], id: u64) -> Self {
        Self {
            leases,
            buckets,
            id,
            done: false,
        }
    }

    fn done(mut self) {
        self.done = true;
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.leases.abandon(self.buckets, self.id);
        }
    }
}

/// What the rate-limit script answered.
struct Answer {
    now_us: i64,
    granted: u32,
    stored: Vec<Option<[i64; 2]>>,
}

fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub enum RateLimiter {
    Local(Gcra),
    Redis(Box<RedisLimiter>),
}

impl RateLimiter {
    pub fn local() -> Self {
        Self::Local(Gcra::default())
    }

    /// Decides one request against every bucket (the key's first; see the module).
    pub async fn check(&self, buckets: &[Bucket], now_ms: i64) -> Decision {
        match self {
            Self::Local(g) => g.check_buckets(buckets, now_ms * 1000),
            Self::Redis(r) => r.check(buckets, now_ms).await,
        }
    }

    /// Decisions the shared limiter could not make (Redis down or slow); 0 for a local one.
    pub fn backend_errors(&self) -> u64 {
        match self {
            Self::Local(_) => 0,
            Self::Redis(r) => r.errors.load(Ordering::Relaxed),
        }
    }

    /// Decisions asked of the shared limiter (each for one request, or a few of a busy key's:
    /// see [`super::leases`]); 0 for a local one.
    pub fn redis_decisions(&self) -> u64 {
        match self {
            Self::Local(_) => 0,
            Self::Redis(r) => r.caller.decisions.load(Ordering::Relaxed),
        }
    }

    /// Calls of the shared limiter's script (round trips to Redis: decisions asked while one
    /// is under way share the next); 0 for a local one.
    pub fn redis_scripts(&self) -> u64 {
        match self {
            Self::Local(_) => 0,
            Self::Redis(r) => r.caller.scripts.load(Ordering::Relaxed),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Self::Local(_) => "local",
            Self::Redis(_) => "redis",
        }
    }

    /// Drops state that no longer limits anyone; call on a timer.
    pub fn prune(&self, now_ms: i64) {
        match self {
            Self::Local(g) => g.prune(now_ms * 1000),
            Self::Redis(r) => {
                r.fallback.prune(now_ms * 1000);
                r.leases.prune(r.epoch.elapsed().as_millis() as i64);
            }
        }
    }
}

/// Keys are already well-mixed hashes (digest bytes), so the map need not hash them again.
#[derive(Default)]
pub(crate) struct IdentityHasher(u64);

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
///
/// An evicting table ([`Gcra::evicting`]) makes room instead by dropping the live key that
/// would go idle soonest: the one that spent least of its budget. It is for keys anyone can
/// name (accounts by email), where refusing new keys would let a flood of made-up ones refuse
/// everyone. Erasing a key's state then takes filling its shard with keys that each spent more
/// than it did: a flood of single attempts evicts only other single attempts.
pub struct Gcra {
    shards: Box<[Mutex<Tats>]>,
    per_shard: usize,
    evicts: bool,
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
            evicts: false,
        }
    }

    /// A table of at most about `max_keys` keys that, when full, evicts the key that spent
    /// least (see [`Gcra`]).
    pub fn evicting(max_keys: usize) -> Self {
        Self {
            evicts: true,
            ..Self::bounded(max_keys)
        }
    }

    fn shard_of(&self, key: u64) -> usize {
        (key >> 58) as usize % SHARDS
    }

    fn shard(&self, key: u64) -> &Mutex<Tats> {
        &self.shards[self.shard_of(key)]
    }

    /// Whether `key` has no room in its (locked) shard, after dropping idle keys and, in an
    /// evicting table when `make_room`, the key that would go idle soonest.
    fn no_room(&self, shard: &mut Tats, key: u64, now_us: i64, make_room: bool) -> bool {
        if shard.len() < self.per_shard || shard.contains_key(&key) {
            return false;
        }
        shard.retain(|_, tats| tats.iter().any(|t| *t > now_us));
        if shard.len() < self.per_shard {
            return false;
        }
        if !self.evicts {
            return true;
        }
        if make_room {
            let soonest_idle = shard
                .iter()
                .min_by_key(|(_, tats)| tats[0].max(tats[1]))
                .map(|(k, _)| *k);
            if let Some(k) = soonest_idle {
                shard.remove(&k);
            }
        }
        false
    }

    pub fn check(&self, key: u64, windows: [Window; 2], now_us: i64) -> Decision {
        self.check_buckets(&[Bucket { key, windows }], now_us)
    }

    /// Decides one request against every bucket at once: the shards they live in are locked
    /// together (in shard order, so two decisions never wait on each other in a cycle).
    pub fn check_buckets(&self, buckets: &[Bucket], now_us: i64) -> Decision {
        assert!(!buckets.is_empty() && buckets.len() <= MAX_BUCKETS);
        let mut order: Vec<usize> = buckets.iter().map(|b| self.shard_of(b.key)).collect();
        order.sort_unstable();
        order.dedup();
        let mut guards: Vec<(usize, std::sync::MutexGuard<'_, Tats>)> = order
            .iter()
            .map(|i| (*i, self.shards[*i].lock().expect("rate limit shard")))
            .collect();
        fn locked<'a>(
            guards: &'a mut [(usize, std::sync::MutexGuard<'_, Tats>)],
            i: usize,
        ) -> &'a mut Tats {
            &mut guards
                .iter_mut()
                .find(|(j, _)| *j == i)
                .expect("locked above")
                .1
        }
        let mut stored = Vec::with_capacity(buckets.len());
        for b in buckets {
            let shard = locked(&mut guards, self.shard_of(b.key));
            if self.no_room(shard, b.key, now_us, true) {
                let full = |w: &Window| WindowState {
                    window: *w,
                    remaining: 0,
                    reset_ms: i64::from(w.seconds) * 1000,
                };
                let first = &buckets[0].windows;
                return Decision {
                    allowed: false,
                    retry_after_ms: i64::from(b.windows[0].seconds) * 1000,
                    refused_by: Some(b.windows[0].name),
                    by_workspace: b.key != buckets[0].key,
                    unavailable: false,
                    windows: [full(&first[0]), full(&first[1])],
                };
            }
            stored.push(shard.get(&b.key).copied());
        }
        let (decision, next) = step(buckets, &stored, now_us);
        if let Some(next) = next {
            for (b, tats) in buckets.iter().zip(next) {
                locked(&mut guards, self.shard_of(b.key)).insert(b.key, tats);
            }
        }
        decision
    }

    /// Whether the next request for `key` would be refused, without counting it.
    pub fn would_refuse(&self, key: u64, windows: [Window; 2], now_us: i64) -> bool {
        let mut shard = self.shard(key).lock().expect("rate limit shard");
        if self.no_room(&mut shard, key, now_us, false) {
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

    /// The script's answer as it writes it: little-endian doubles.
    fn doubles(v: &[f64]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn the_script_answer_is_read_as_doubles_and_nonsense_is_refused() {
        let now = 1_796_000_000_000_000.0;
        // Two decisions: one of two buckets (nothing stored in the first), one of one.
        let shapes = [(4, 2), (1, 1)];
        let good = [
            now,
            3.0,
            -1.0,
            -1.0,
            now + 5.0,
            now + 9.0,
            0.0,
            now,
            now + 1.0,
        ];
        let a = read_answers(&doubles(&good), shapes.into_iter()).expect("an answer");
        assert_eq!(a.len(), 2);
        assert_eq!((a[0].now_us, a[0].granted), (now as i64, 3));
        assert_eq!(
            a[0].stored,
            vec![None, Some([now as i64 + 5, now as i64 + 9])]
        );
        assert_eq!(a[1].granted, 0);
        assert_eq!(a[1].stored, vec![Some([now as i64, now as i64 + 1])]);
        let refused = |v: &[u8]| read_answers(v, shapes.into_iter()).is_none();
        // A figure short, one too many, a stray byte, nothing.
        assert!(refused(&doubles(&good[..8])));
        assert!(refused(&doubles(&[&good[..], &[0.0]].concat())));
        assert!(refused(&[doubles(&good), vec![0]].concat()));
        assert!(refused(&[]));
        // Not a number, infinite, past 2^53.
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1e16] {
            let mut v = good;
            v[4] = bad;
            assert!(refused(&doubles(&v)), "{bad}");
        }
        // More tokens than wanted, or fewer than none.
        for granted in [5.0, -1.0] {
            let mut v = good;
            v[1] = granted;
            assert!(refused(&doubles(&v)), "{granted}");
        }
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
    fn an_evicting_table_makes_room_by_dropping_the_key_that_spent_least() {
        let g = Gcra::evicting(SHARDS * 2);
        let key = |i: u64| i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        // The victim spends its minute; then a flood of new keys, one attempt each.
        let victim = key(1);
        for _ in 0..5 {
            assert!(g.check(victim, windows(5, 50), 0).allowed);
        }
        for i in 2..10_000 {
            assert!(g.check(key(i), windows(5, 50), i as i64).allowed, "{i}");
        }
        assert!(g.len() <= SHARDS * 2, "{} keys", g.len());
        // The victim is still counted: its next attempt is refused.
        assert!(g.would_refuse(victim, windows(5, 50), 10_000));
        assert!(!g.check(victim, windows(5, 50), 10_000).allowed);
        // A new key gets in, and asking whether it would evicts nothing.
        let before = g.len();
        assert!(!g.would_refuse(key(20_000), windows(5, 50), 10_000));
        assert_eq!(g.len(), before);
        assert!(g.check(key(20_000), windows(5, 50), 10_000).allowed);
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
