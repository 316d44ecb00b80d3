//! A webhook receiver for the delivery benchmark (`bench/webhooks.sh`), fast enough not to be
//! what is measured, and a load generator to show that it is not.
//!
//! `webhook_sink serve ADDR` (one thread) answers every POST `200 ok` at once and counts it: requests,
//! distinct `webhook-id`s, requests carrying a `v1,` signature, and the times of the first and
//! the last (Unix ms). `GET /stats` reports them as JSON, `POST /reset` starts over. It prints
//! `listening on ADDR` once bound.
//!
//! `webhook_sink load URL N CONCURRENCY` POSTs N delivery-shaped requests (a 300-byte body and
//! the three Standard Webhooks headers) over keep-alive connections and prints requests/s.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use serde_json::json;

#[derive(Default)]
struct Stats {
    count: u64,
    signed: u64,
    ids: HashSet<String>,
    first_ms: Option<u128>,
    last_ms: Option<u128>,
}

type Shared = Arc<Mutex<Stats>>;

fn unix_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_millis()
}

async fn receive(
    State(s): State<Shared>,
    headers: HeaderMap,
    _body: axum::body::Bytes,
) -> &'static str {
    let now = unix_ms();
    let mut s = s.lock().unwrap();
    s.count += 1;
    if let Some(id) = headers.get("webhook-id").and_then(|v| v.to_str().ok()) {
        s.ids.insert(id.to_owned());
    }
    if headers
        .get("webhook-signature")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("v1,"))
    {
        s.signed += 1;
    }
    s.first_ms.get_or_insert(now);
    s.last_ms = Some(now);
    "ok"
}

async fn stats(State(s): State<Shared>) -> axum::Json<serde_json::Value> {
    let s = s.lock().unwrap();
    axum::Json(json!({
        "count": s.count,
        "unique": s.ids.len(),
        "signed": s.signed,
        "first_ms": s.first_ms.map(|v| v as u64),
        "last_ms": s.last_ms.map(|v| v as u64),
    }))
}

async fn reset(State(s): State<Shared>) -> &'static str {
    *s.lock().unwrap() = Stats::default();
    "reset"
}

async fn serve(addr: &str) {
    let state: Shared = Default::default();
    let app = Router::new()
        .route("/stats", get(stats))
        .route("/reset", post(reset))
        .fallback(receive)
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
    println!("listening on {}", listener.local_addr().unwrap());
    axum::serve(listener, app).await.expect("serve");
}

async fn load(url: String, n: usize, concurrency: usize) {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .expect("a client");
    let body = format!(
        r#"{{"id":"evt_x","type":"webhook.test","created_at":"2027-01-15T08:00:00Z","data":{{"pad":"{}"}}}}"#,
        "x".repeat(200)
    );
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (client, url, body, next) = (client.clone(), url.clone(), body.clone(), next.clone());
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    return;
                }
                let resp = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("webhook-id", format!("evt_load{i}"))
                    .header("webhook-timestamp", "1800000000")
                    .header("webhook-signature", "v1,AAAA")
                    .body(body.clone())
                    .send()
                    .await
                    .expect("a request");
                assert!(resp.status().is_success());
                resp.bytes().await.expect("a body");
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{n} requests, concurrency {concurrency}, in {secs:.2} s: {:.0} requests/s",
        n as f64 / secs
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        // One thread: the receiver takes as little CPU from crier as it can.
        ["serve", addr] => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(serve(addr)),
        ["load", url, n, c] => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(load(
                url.to_string(),
                n.parse().expect("N"),
                c.parse().expect("CONCURRENCY"),
            )),
        _ => {
            eprintln!("usage: webhook_sink serve ADDR | webhook_sink load URL N CONCURRENCY");
            std::process::exit(2);
        }
    }
}
