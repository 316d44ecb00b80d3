//! What one authenticated request pays for its key, measured in one run:
//!
//! - `sha256_44_bytes`: the SHA-256 of a 44-byte key alone, the floor of any verification;
//! - `cached_key`: `Authenticator::verify` of a key already in the cache (shape and CRC32,
//!   the failure throttle, SHA-256, the cache look-up, revoked/expiry/IP/origin, the rate-limit
//!   decision and the usage count), then the handler's scope check `Principal::require`;
//! - `cached_keys_10k`: the same with 10,000 distinct cached keys taken in turn.
//!
//! The keys live in a real SQLite store in a temporary folder, inserted as `crier admin key
//! create` does; the first verification of each one fills the cache from storage, so the
//! measured calls are all cache hits, whose future is ready at once (`block_on` is enough).
//!
//! Time: the keys get the largest limits the `self-hosted` plan allows (1,000,000 a minute,
//! 1,000,000,000 a day), but one key verified a million times a second would still spend its
//! per-minute burst within about a second of real time. So each verification is stamped with a
//! clock that moves one millisecond per call (starting at the real time): the limiter does the
//! same work and every decision is "allowed", which the bench asserts.
//!
//! Run with `cargo bench -p crier-api --bench verify`; medians are in
//! `target/criterion/verify/*/new/estimates.json`.

mod common;

use std::cell::Cell;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use crier_api::AppState;
use crier_api::auth::Verified;
use crier_core::plans::{MAX_PER_DAY, MAX_PER_MINUTE};
use crier_core::{Clock, KeyDigest, Plan, Scope, SystemClock};
use criterion::{Criterion, criterion_group, criterion_main};
use futures::executor::block_on;
use tempfile::TempDir;
use tokio::runtime::Runtime;

const MANY: usize = 10_000;

/// A store with one workspace and `n` keys, and an app whose cache holds them all.
struct Fixture {
    state: AppState,
    keys: Vec<String>,
    ip: Option<IpAddr>,
    /// Virtual time in ms; see the module comment.
    now_ms: Cell<i64>,
    refused: Cell<u64>,
    _rt: Runtime,
    _dir: TempDir,
}

impl Fixture {
    fn new(n: usize) -> Self {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let dir = tempfile::tempdir().expect("temp dir");
        let now = SystemClock.now_ms();
        let (state, keys) = common::app_with_keys(&rt, &dir, Arc::new(SystemClock), n);
        let fixture = Self {
            state,
            keys,
            ip: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            now_ms: Cell::new(now),
            refused: Cell::new(0),
            _rt: rt,
            _dir: dir,
        };
        // The first verification of each key reads storage (in the runtime: sqlx needs it) and
        // fills the cache; it must pass, with its limits as configured.
        for key in &fixture.keys {
            let v = fixture._rt.block_on(fixture.verify_async(key));
            assert!(v.decision.allowed, "warm-up refused by the rate limiter");
            assert_eq!(
                v.principal.key.limits(),
                (MAX_PER_MINUTE, MAX_PER_DAY),
                "the key's effective limits"
            );
            v.principal.require(Scope::KeysRead).expect("scope check");
        }
        fixture
    }

    fn tick(&self) -> i64 {
        let t = self.now_ms.get() + 1;
        self.now_ms.set(t);
        t
    }

    async fn verify_async(&self, key: &str) -> Verified {
        let state = &self.state;
        let plans = |name: &str| -> Option<Arc<Plan>> { state.plan(name) };
        let now = self.tick();
        match state
            .auth()
            .verify(state.store(), &plans, key, self.ip, None, now)
            .await
        {
            Ok(v) => v,
            Err((e, reason)) => panic!("verification failed: {reason:?} {}", e.message),
        }
    }

    /// One cached verification and the scope check, as the request path does them.
    fn verify_cached(&self, key: &str) {
        let v = block_on(self.verify_async(black_box(key)));
        let allowed = v.decision.allowed;
        let scope = v.principal.require(black_box(Scope::KeysRead));
        if !allowed || scope.is_err() {
            self.refused.set(self.refused.get() + 1);
        }
        let _ = black_box((v, scope));
    }
}

fn verify(c: &mut Criterion) {
    let one = Fixture::new(1);
    let many = Fixture::new(MANY);
    let key = one.keys[0].clone();
    assert_eq!(key.len(), 44);

    let mut group = c.benchmark_group("verify");
    group.bench_function("sha256_44_bytes", |b| {
        b.iter(|| KeyDigest::of(black_box(&key)))
    });
    group.bench_function("cached_key", |b| b.iter(|| one.verify_cached(&key)));
    let next = Cell::new(0usize);
    group.bench_function("cached_keys_10k", |b| {
        b.iter(|| {
            let i = next.get();
            next.set(if i + 1 == MANY { 0 } else { i + 1 });
            many.verify_cached(&many.keys[i])
        })
    });
    group.finish();

    assert_eq!(
        one.refused.get(),
        0,
        "a cached_key verification was refused"
    );
    assert_eq!(
        many.refused.get(),
        0,
        "a cached_keys_10k verification was refused"
    );
}

criterion_group!(benches, verify);
criterion_main!(benches);
