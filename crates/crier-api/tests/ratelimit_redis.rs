//! Rate limits shared by several nodes through Redis (`redis_url`): the Lua script decides as
//! the in-process limiter does, a limit holds across nodes deciding at once, the workspace's
//! ceiling holds across its keys on every node, and a Redis that cannot answer is decided by
//! the configured fallback (this node's limits, or `503`), counted in the metrics.
//!
//! Needs `CRIER_TEST_REDIS_URL` (skipped without it on a laptop; a failure in CI).

mod common;

use std::sync::Arc;

use common::{KeySpec, TestApp};
use crier_api::ApiConfig;
use crier_api::auth::ratelimit::{Bucket, Gcra, RateLimiter, RedisLimiter, windows};
use crier_api::auth::{OnRedisError, SharedLimits};
use crier_core::Scope;

fn redis() -> Option<String> {
    crier_testdb::redis_url()
}

/// A bucket key no other test (or earlier run) uses.
fn fresh_key() -> u64 {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).unwrap();
    u64::from_le_bytes(b)
}

fn limiter(url: &str, on_error: OnRedisError) -> RateLimiter {
    RateLimiter::Redis(Box::new(RedisLimiter::new(url, on_error).unwrap()))
}

#[tokio::test]
async fn the_script_decides_as_the_local_limiter_does() {
    let Some(url) = redis() else { return };
    let shared = limiter(&url, OnRedisError::Closed);
    let local = RateLimiter::Local(Gcra::default());
    let buckets = [
        Bucket {
            key: fresh_key(),
            windows: windows(5, 8),
        },
        Bucket {
            key: fresh_key(),
            windows: windows(7, 100),
        },
    ];
    // Within one second both see a burst: 5 pass (the key's minute), then refusals by the
    // key's minute window, nothing taken from the workspace's.
    for i in 0..8 {
        let a = shared.check(&buckets, 0).await;
        let b = local.check(&buckets, 0).await;
        assert_eq!(a.allowed, b.allowed, "request {i}");
        assert_eq!(a.refused_by, b.refused_by, "request {i}");
        assert_eq!(a.by_workspace, b.by_workspace);
        assert_eq!(
            a.windows[0].remaining, b.windows[0].remaining,
            "request {i}"
        );
        assert!(!a.unavailable);
    }
    assert_eq!(shared.backend_errors(), 0);
    // Another key of the same workspace: the workspace has 2 of its 7 left.
    let other = [
        Bucket {
            key: fresh_key(),
            windows: windows(5, 8),
        },
        buckets[1],
    ];
    let passed = {
        let mut n = 0;
        for _ in 0..5 {
            let d = shared.check(&other, 0).await;
            if d.allowed {
                n += 1;
            } else {
                assert!(d.by_workspace, "{d:?}");
            }
        }
        n
    };
    assert_eq!(passed, 2);
}

#[tokio::test]
async fn a_limit_holds_across_nodes_deciding_at_once() {
    let Some(url) = redis() else { return };
    // Three nodes, each with its own connection, 600 requests at once for one key allowed 50
    // a minute: exactly 50 pass.
    let nodes: Vec<Arc<RateLimiter>> = (0..3)
        .map(|_| Arc::new(limiter(&url, OnRedisError::Closed)))
        .collect();
    let bucket = [Bucket {
        key: fresh_key(),
        windows: windows(50, 10_000),
    }];
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..600 {
        let node = nodes[i % 3].clone();
        tasks.spawn(async move { node.check(&bucket, 0).await });
    }
    let mut allowed = 0;
    while let Some(d) = tasks.join_next().await {
        let d = d.unwrap();
        assert!(!d.unavailable, "Redis answered every decision");
        allowed += usize::from(d.allowed);
    }
    assert_eq!(allowed, 50);
}

#[tokio::test]
async fn decisions_asked_at_once_share_calls_and_each_is_decided_as_if_alone() {
    let Some(url) = redis() else { return };
    let node = Arc::new(limiter(&url, OnRedisError::Closed));
    // 40 keys of one workspace allowed 100 a minute across them, each key 5 a minute; 10
    // requests of each key at once.
    let workspace = Bucket {
        key: fresh_key(),
        windows: windows(100, 100_000),
    };
    let keys: Vec<[Bucket; 2]> = (0..40)
        .map(|_| {
            [
                Bucket {
                    key: fresh_key(),
                    windows: windows(5, 1_000),
                },
                workspace,
            ]
        })
        .collect();
    let mut tasks = tokio::task::JoinSet::new();
    for round in 0..10 {
        for (k, buckets) in keys.iter().enumerate() {
            let (node, buckets) = (node.clone(), *buckets);
            tasks.spawn(async move { (k, round, node.check(&buckets, 0).await) });
        }
    }
    let mut shown: Vec<Vec<u32>> = vec![Vec::new(); keys.len()];
    let mut allowed = 0;
    while let Some(r) = tasks.join_next().await {
        let (k, _, d) = r.unwrap();
        assert!(!d.unavailable, "Redis answered every decision");
        if d.allowed {
            allowed += 1;
            shown[k].push(d.windows[0].remaining);
        } else {
            assert_eq!(d.refused_by, Some("minute"), "{d:?}");
        }
    }
    // The workspace's ceiling holds exactly, and no key passed its own limit.
    assert_eq!(allowed, 100);
    for (k, s) in shown.iter_mut().enumerate() {
        assert!(s.len() <= 5, "key {k}: {s:?}");
        // Each allowed request shows what was left after it alone: 4, 3, 2, ... once each,
        // as if every request had had a call of its own.
        s.sort_unstable();
        s.reverse();
        assert_eq!(
            *s,
            (5 - s.len() as u32..5).rev().collect::<Vec<_>>(),
            "key {k}"
        );
    }
    // 400 decisions, asked while calls were under way: they shared few calls.
    assert_eq!(node.redis_decisions(), 400);
    assert!(
        node.redis_scripts() <= 400 / 8,
        "{} script calls for 400 decisions",
        node.redis_scripts()
    );
}

#[tokio::test]
async fn a_flood_past_what_may_wait_is_decided_without_redis_and_leaves_redis_in_use() {
    let Some(url) = redis() else { return };
    let node = Arc::new(limiter(&url, OnRedisError::Closed));
    let bucket = [Bucket {
        key: fresh_key(),
        windows: windows(1_000_000, 1_000_000),
    }];
    // 5,000 decisions asked before any call is made (one thread: every task asks before the
    // first call starts): 4,096 wait, the rest are decided as the fallback says (here 503).
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..5_000 {
        let node = node.clone();
        tasks.spawn(async move { node.check(&bucket, 0).await });
    }
    let (mut allowed, mut unavailable) = (0, 0);
    while let Some(d) = tasks.join_next().await {
        let d = d.unwrap();
        allowed += usize::from(d.allowed);
        unavailable += usize::from(d.unavailable);
    }
    // (On a machine slow enough that a call took over 250 ms some of the 4,096 would be
    // decided without Redis too, and Redis left alone: the last check below would say so.)
    assert_eq!(allowed + unavailable, 5_000);
    assert!(unavailable >= 904, "{unavailable} decided without Redis");
    assert_eq!(node.backend_errors(), unavailable as u64);
    // Redis did nothing wrong: the next request is decided by it at once.
    let d = node.check(&bucket, 0).await;
    assert!(d.allowed && !d.unavailable, "{d:?}");
    assert_eq!(node.redis_decisions(), allowed as u64 + 1);
}

#[tokio::test]
async fn bucket_lists_the_script_does_not_take_are_decided_without_it_and_leave_redis_in_use() {
    let Some(url) = redis() else { return };
    let node = limiter(&url, OnRedisError::Closed);
    let bucket = || Bucket {
        key: fresh_key(),
        windows: windows(10, 100),
    };
    let one = bucket();
    // The same bucket twice (a key's and its workspace's hashes alike) and three buckets:
    // each decided as the fallback says (here 503) and counted, without a call to Redis.
    for buckets in [vec![one, one], vec![one, bucket(), bucket()]] {
        let d = node.check(&buckets, 0).await;
        assert!(
            !d.allowed && d.unavailable,
            "{} buckets: {d:?}",
            buckets.len()
        );
    }
    assert_eq!(node.backend_errors(), 2);
    assert_eq!(node.redis_decisions(), 0);
    // Redis is still used for the next decision.
    let d = node.check(&[one], 0).await;
    assert!(d.allowed && !d.unavailable, "{d:?}");
    assert_eq!((node.redis_decisions(), node.backend_errors()), (1, 2));
}

/// A key allowed 12,800 a day (and a million a minute), so the day decides and hardly refills
/// during a test; room enough that busy nodes take tokens ahead.
fn busy_bucket() -> [Bucket; 1] {
    [Bucket {
        key: fresh_key(),
        windows: windows(1_000_000, 12_800),
    }]
}

#[tokio::test]
async fn a_busy_key_shares_calls_between_requests_and_its_limit_still_holds_across_nodes() {
    let Some(url) = redis() else { return };
    let nodes: Vec<Arc<RateLimiter>> = (0..3)
        .map(|_| Arc::new(limiter(&url, OnRedisError::Closed)))
        .collect();
    let bucket = busy_bucket();
    // 18,000 requests, 6,000 a node, 64 at a time on each: more than the limit on every node.
    let mut tasks = tokio::task::JoinSet::new();
    for node in &nodes {
        for _ in 0..64 {
            let node = node.clone();
            tasks.spawn(async move {
                let mut allowed = 0;
                for _ in 0..6_000 / 64 + 1 {
                    let d = node.check(&bucket, 0).await;
                    assert!(!d.unavailable, "Redis answered every decision");
                    allowed += u64::from(d.allowed);
                }
                allowed
            });
        }
    }
    let mut allowed = 0;
    while let Some(n) = tasks.join_next().await {
        allowed += n.unwrap();
    }
    let calls: u64 = nodes.iter().map(|n| n.redis_decisions()).sum();
    assert!(allowed <= 12_800, "{allowed} allowed");
    // Tokens taken ahead are used by the node's next requests, which keep coming (a stall of
    // of over 2 s on a loaded machine drops what a node holds: at most 96 each time).
    assert!(allowed >= 12_800 * 9 / 10, "{allowed} allowed");
    // Every refusal is a call of its own (nothing in hand); the allowed requests shared theirs.
    let refused = 3 * 64 * (6_000 / 64 + 1) - allowed;
    assert!(
        calls - refused < allowed / 4,
        "{} script calls for {allowed} allowed requests",
        calls - refused
    );
}

#[tokio::test]
async fn after_a_pause_a_node_asks_redis_again_rather_than_use_old_tokens() {
    let Some(url) = redis() else { return };
    let busy = limiter(&url, OnRedisError::Closed);
    let bucket = busy_bucket();
    for _ in 0..500 {
        assert!(busy.check(&bucket, 0).await.allowed);
    }
    assert!(busy.redis_decisions() < 100, "{}", busy.redis_decisions());
    // After a pause the tokens still in hand are dropped: the next request is a call, and
    // what it shows is what another node sees in Redis.
    tokio::time::sleep(std::time::Duration::from_millis(
        crier_api::auth::leases::LEASE_TTL_MS as u64 + 50,
    ))
    .await;
    let calls = busy.redis_decisions();
    let d = busy.check(&bucket, 0).await;
    assert!(d.allowed);
    assert_eq!(busy.redis_decisions(), calls + 1);
    let other = limiter(&url, OnRedisError::Closed);
    let seen = other.check(&bucket, 0).await;
    // (The day window gains one request every 6.75 s, maybe between the two.)
    assert!(
        (seen.windows[1].remaining + 1).abs_diff(d.windows[1].remaining) <= 1,
        "{d:?} {seen:?}"
    );
    // Nothing was taken beyond the requests and what was in hand: at most a lease's worth.
    assert!(seen.windows[1].remaining >= 12_800 - 502 - 96, "{seen:?}");
}

#[tokio::test]
async fn an_unreachable_redis_falls_back_as_configured() {
    // Nothing listens on port 1 of loopback.
    let bucket = [Bucket {
        key: fresh_key(),
        windows: windows(2, 100),
    }];
    let local = limiter("redis://127.0.0.1:1", OnRedisError::Local);
    let allowed: Vec<bool> = {
        let mut v = Vec::new();
        for _ in 0..3 {
            v.push(local.check(&bucket, 1_000).await.allowed);
        }
        v
    };
    assert_eq!(
        allowed,
        [true, true, false],
        "this node's own limit decides"
    );
    assert!(local.backend_errors() >= 3);
    let closed = limiter("redis://127.0.0.1:1", OnRedisError::Closed);
    let d = closed.check(&bucket, 1_000).await;
    assert!(!d.allowed && d.unavailable, "{d:?}");
}

/// An app whose limits are shared through `url`.
async fn shared_app(plan: &str, url: &str, on_error: OnRedisError) -> TestApp {
    let mut config = ApiConfig::default();
    config.auth.shared_limits = Some(SharedLimits {
        redis_url: url.to_owned(),
        on_error,
    });
    TestApp::composed(config, plan, common::compose).await
}

async fn over_http_the_shared_limits_answer_429_and_503() {
    let Some(url) = redis() else { return };
    let app = shared_app("free", &url, OnRedisError::Local).await;
    let (key, _) = app
        .key(KeySpec {
            scopes: vec![Scope::KeysRead],
            per_minute: Some(3),
            ..KeySpec::default()
        })
        .await;
    for _ in 0..3 {
        assert_eq!(app.get("/v1/keys").key(&key).send().await.status, 200);
    }
    let r = app.get("/v1/keys").key(&key).send().await;
    r.assert_error(429, "rate_limited");
    assert!(r.header("retry-after").is_some());
    let metrics = app.get("/metrics").send().await.text;
    assert!(
        metrics.contains("crier_rate_limit_backend{kind=\"redis\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("crier_rate_limit_backend_errors_total 0"),
        "{metrics}"
    );

    // Redis gone, failing closed: 503 in the envelope, counted.
    let app = shared_app("free", "redis://127.0.0.1:1", OnRedisError::Closed).await;
    let key = app.key_with(&[Scope::KeysRead]).await;
    let r = app.get("/v1/keys").key(&key).send().await;
    r.assert_error(503, "upstream_unavailable");
    let metrics = app.get("/metrics").send().await.text;
    assert!(
        !metrics.contains("crier_rate_limit_backend_errors_total 0"),
        "{metrics}"
    );
}

common::both!(tests: over_http_the_shared_limits_answer_429_and_503);
