//! What a request costs inside the server, without the network: the whole router (every layer,
//! the handler, the answer's body collected) driven in process, in one run:
//!
//! - `healthz`: `GET /healthz`, the floor (the request context, CORS, routing);
//! - `me`: `GET /v1/me` with a cached key (plus authentication, rate limits, usage counting,
//!   the request log entry and the cached answer);
//! - `workspace`: `GET /v1/workspace`, the same for the workspace view.
//!
//! `healthz ÷ me` here is the share of a request's server-side work that is not the key's;
//! `bench/load.sh` measures the same ratio over real sockets, where the kernel's and hyper's
//! work is added to both. This bench is the steady one: on a shared machine requests per
//! second drift by a third within a minute, while a function's cost in process does not.
//!
//! Run with `cargo bench -p crier-api --bench requests`; medians are in
//! `target/criterion/requests/*/new/estimates.json`.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use crier_core::ManualClock;
use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::BodyExt;
use tempfile::TempDir;
use tokio::runtime::Runtime;
use tower::ServiceExt;

struct Fixture {
    router: Router,
    /// Moves one millisecond per request (see `get`).
    clock: ManualClock,
    /// One key per authenticated scenario, so none of them runs out of its minute's limit.
    keys: Vec<String>,
    rt: Runtime,
    _dir: TempDir,
}

impl Fixture {
    fn new(nkeys: usize) -> Self {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let dir = tempfile::tempdir().expect("temp dir");
        let clock = ManualClock::new(jiff::Timestamp::now());
        let (state, keys) = common::app_with_keys(&rt, &dir, Arc::new(clock.clone()), nkeys);
        let router = crier_api::router(state);
        Self {
            router,
            clock,
            keys,
            rt,
            _dir: dir,
        }
    }

    /// One request through the router; its status (the body read to its end).
    /// The clock moves one millisecond per request: a key asked millions of times a second would
    /// otherwise spend its minute's limit (and its workspace's) within a second of real time.
    /// The limiter does the same work either way.
    fn get(&self, path: &str, key: Option<&str>) -> StatusCode {
        self.clock.advance(std::time::Duration::from_millis(1));
        let mut req = Request::get(path);
        if let Some(key) = key {
            req = req.header("authorization", format!("Bearer {key}"));
        }
        let mut req = req.body(Body::empty()).expect("request");
        req.extensions_mut()
            .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
        self.rt.block_on(async {
            let resp = self.router.clone().oneshot(req).await.expect("infallible");
            let status = resp.status();
            let body = resp.into_body().collect().await.expect("body");
            std::hint::black_box(body);
            status
        })
    }
}

fn requests(c: &mut Criterion) {
    let f = Fixture::new(2);
    let cases: [(&str, &str, Option<&str>); 3] = [
        ("healthz", "/healthz", None),
        ("me", "/v1/me", Some(&f.keys[0])),
        ("workspace", "/v1/workspace", Some(&f.keys[1])),
    ];
    let mut group = c.benchmark_group("requests");
    for (name, path, key) in cases {
        // Each answer must be the real one: a refusal would be cheaper and measure nothing.
        assert_eq!(f.get(path, key), StatusCode::OK, "{name}");
        group.bench_function(name, |b| {
            b.iter(|| assert_eq!(f.get(path, key), StatusCode::OK, "{name}"))
        });
    }
    group.finish();
    interleaved(&f, &cases);
}

/// The ratios, measured steadily: the scenarios take turns in short batches (so a drift in the
/// machine's speed falls on all of them alike), and each one's figure is the median of its
/// batches. Printed as `healthz ÷ scenario`, the in-process counterpart of `bench/load.sh`'s.
fn interleaved(f: &Fixture, cases: &[(&str, &str, Option<&str>)]) {
    const ROUNDS: usize = 300;
    const BATCH: u32 = 200;
    let mut times: Vec<Vec<f64>> = vec![Vec::with_capacity(ROUNDS); cases.len()];
    for _ in 0..ROUNDS {
        for (i, (name, path, key)) in cases.iter().enumerate() {
            let start = std::time::Instant::now();
            for _ in 0..BATCH {
                assert_eq!(f.get(path, *key), StatusCode::OK, "{name}");
            }
            times[i].push(start.elapsed().as_secs_f64() * 1e6 / f64::from(BATCH));
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let medians: Vec<f64> = times.iter_mut().map(median).collect();
    for ((name, ..), m) in cases.iter().zip(&medians) {
        println!(
            "interleaved {name}: {m:.2} µs a request; healthz ÷ {name} = {:.3}",
            medians[0] / m
        );
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(std::time::Duration::from_secs(4));
    targets = requests
}
criterion_main!(benches);
