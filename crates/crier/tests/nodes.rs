//! Several nodes of the real binary on one PostgreSQL database and one Redis, as a scaled-out
//! install runs them: three API nodes (`--role api`) and two workers (`--role worker`), each
//! with its own data dir, none migrating on start (`crier migrate` runs once).
//!
//! - A node refuses a schema it was not told to migrate, and one newer than it knows.
//! - A worker node serves health and metrics only; API nodes never claim jobs.
//! - A per-key rate limit holds across the three API nodes (allowed = the limit exactly).
//! - A key revoked through one node is refused by the others within moments (PostgreSQL
//!   `NOTIFY`; the key cache's 5-minute TTL is not what ends it). The times are printed.
//! - 5,000 posts due at once are published exactly once by the two workers while one of them
//!   is killed with SIGKILL mid-run.
//!
//! Needs `CRIER_TEST_DATABASE_URL` and `CRIER_TEST_REDIS_URL` (skipped without them on a
//! laptop; a failure in CI).

mod common;

use std::collections::HashSet;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::posts::{any_with, count_published, sandbox_accounts, schedule, timeline_keys};
use common::server::{Data, Server, admin, free_port, http, request, start_with};
use serde_json::Value;

const POSTS: usize = 5000;
const ACCOUNTS: usize = 50;
/// The same keyring on every node: a token sealed by one must open on the others.
const SECRET_KEYS: &str = "k1=BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc";

fn node_env<'a>(role: &'a str, redis: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("CRIER_ROLE", role),
        ("CRIER_REDIS_URL", redis),
        ("CRIER_MIGRATE_ON_START", "false"),
        ("CRIER_SECRET_KEYS", SECRET_KEYS),
    ]
}

/// `crier serve` that must refuse to start; its standard error.
fn refused_start(data: &Data, redis: &str) -> String {
    let out = data
        .command()
        .args(["serve", "--bind", &format!("127.0.0.1:{}", free_port())])
        .envs(node_env("api", redis))
        .stdout(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success(), "the node started");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn migrate(data: &Data) {
    let out = data.command().arg("migrate").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn key(data: &Data, per_minute: &str) -> Value {
    admin(
        data,
        &[
            "key",
            "create",
            "--workspace",
            "nodes",
            "--scope",
            "all",
            "--per-minute",
            per_minute,
            "--per-day",
            "10000000",
        ],
    )
}

#[test]
fn nodes_share_the_schema_limits_revocations_and_the_queue() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Some(schema) = rt.block_on(crier_testdb::PgSchema::create()) else {
        return;
    };
    let Some(redis) = crier_testdb::redis_url() else {
        return;
    };
    let dirs: Vec<tempfile::TempDir> = (0..6).map(|_| tempfile::tempdir().unwrap()).collect();
    let data = |i: usize| Data {
        dir: dirs[i].path(),
        database_url: Some(&schema.url),
        config: None,
    };

    // ---- the schema ----
    let stderr = refused_start(&data(0), &redis);
    assert!(stderr.contains("crier migrate"), "{stderr}");
    migrate(&data(0));
    rt.block_on(async {
        let store = crier_store::Store::connect(&schema.url).await.unwrap();
        assert!(store.schema_status().await.unwrap().pending.is_empty());
        store.close().await;
    });

    admin(&data(0), &["workspace", "create", "nodes"]);
    let admin_key = key(&data(0), "100000")["key"].as_str().unwrap().to_owned();
    let api_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let _api: Vec<Server> = api_ports
        .iter()
        .enumerate()
        .map(|(i, port)| start_with(&data(i), *port, &node_env("api", &redis)))
        .collect();

    // ---- a worker node serves health and metrics, nothing of the API ----
    let worker_ports = [free_port(), free_port()];
    let mut first_worker = start_with(&data(3), worker_ports[0], &node_env("worker", &redis));
    assert_eq!(
        request(worker_ports[0], "GET", "/healthz", &[], b"").status,
        200
    );
    assert_eq!(
        request(worker_ports[0], "GET", "/readyz", &[], b"").status,
        200
    );
    assert!(
        request(worker_ports[0], "GET", "/metrics", &[], b"")
            .body
            .contains("crier_rate_limit_backend")
    );
    let (status, _) = http(worker_ports[0], "GET", "/v1/workspace", &admin_key, None);
    assert_eq!(status, 404, "a worker serves no API");
    first_worker.kill();

    // ---- a key's limit holds across the API nodes ----
    let limited = key(&data(0), "30")["key"].as_str().unwrap().to_owned();
    let allowed: usize = std::thread::scope(|s| {
        let handles: Vec<_> = api_ports
            .iter()
            .map(|port| {
                let limited = &limited;
                s.spawn(move || {
                    (0..30)
                        .filter(|_| http(*port, "GET", "/v1/me", limited, None).0 == 200)
                        .count()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(allowed, 30, "90 requests over three nodes, 30 allowed");

    // ---- revocation on one node reaches the others ----
    let doomed = key(&data(0), "100000");
    let doomed_key = doomed["key"].as_str().unwrap();
    for port in &api_ports {
        // Cached on every node.
        assert_eq!(http(*port, "GET", "/v1/me", doomed_key, None).0, 200);
    }
    let (status, body) = http(
        api_ports[0],
        "DELETE",
        &format!("/v1/keys/{}", doomed["id"].as_str().unwrap()),
        &admin_key,
        None,
    );
    assert_eq!(status, 200, "{body}");
    let revoked_at = Instant::now();
    let mut propagation = Vec::new();
    for port in &api_ports[1..] {
        loop {
            if http(*port, "GET", "/v1/me", doomed_key, None).0 == 401 {
                propagation.push(revoked_at.elapsed());
                break;
            }
            assert!(
                revoked_at.elapsed() < Duration::from_secs(2),
                "node {port} still accepts a revoked key"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    eprintln!("revocation reached the other nodes after {propagation:?}");
    assert!(
        propagation.iter().all(|d| *d <= Duration::from_millis(100)),
        "{propagation:?}"
    );

    // ---- the queue: API nodes never claim jobs; workers publish each post once ----
    let accounts = sandbox_accounts(&api_ports, &admin_key, ACCOUNTS);
    schedule(api_ports[0], &admin_key, POSTS, "node post", |n| {
        &accounts[n % ACCOUNTS]
    });
    // Every post is due within seconds; with no worker running, none is published.
    std::thread::sleep(Duration::from_secs(8));
    assert!(
        !any_with(api_ports[0], &admin_key, "published")
            && !any_with(api_ports[0], &admin_key, "publishing"),
        "an API node claimed a job"
    );
    let started = Instant::now();
    let mut workers: Vec<Server> = worker_ports
        .iter()
        .enumerate()
        .map(|(i, port)| start_with(&data(4 + i), *port, &node_env("worker", &redis)))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !any_with(api_ports[1], &admin_key, "published") {
        assert!(Instant::now() < deadline, "nothing was published");
        std::thread::sleep(Duration::from_millis(20));
    }
    workers[0].kill(); // SIGKILL, mid-run
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let published = count_published(api_ports[2], &admin_key);
        if published == POSTS {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{published} of {POSTS} published after the kill"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let elapsed = started.elapsed();
    let keys = timeline_keys(api_ports[1], &admin_key, &accounts);
    let distinct: HashSet<&String> = keys.iter().collect();
    assert_eq!(
        distinct.len(),
        keys.len(),
        "a post reached its network twice"
    );
    assert_eq!(keys.len(), POSTS, "every post reached its network once");
    eprintln!("{POSTS} posts published exactly once by two workers (one killed) in {elapsed:?}");
    // The surviving worker reports its calls, their lateness and the queue (no publish job
    // left in it, so no publish series there).
    let metrics = request(worker_ports[1], "GET", "/metrics", &[], b"").body;
    for series in [
        "crier_publish_calls_total{platform=\"sandbox\",outcome=\"published\"}",
        "crier_publish_lateness_seconds_count",
        "crier_publish_in_flight 0",
        "# TYPE crier_jobs_due gauge",
    ] {
        assert!(metrics.contains(series), "{series} in {metrics}");
    }
    assert!(
        !metrics.contains("crier_jobs_due{kind=\"publish\"}"),
        "{metrics}"
    );
    drop(workers);

    // ---- a schema newer than the binary is refused ----
    rt.block_on(crier_testdb::execute(
        &schema.url,
        "INSERT INTO crier_migrations (version, name, applied_at) \
         VALUES (999999, 'from_the_future', 0)",
    ));
    let stderr = refused_start(&data(5), &redis);
    assert!(stderr.contains("newer release"), "{stderr}");
    rt.block_on(schema.drop());
}
