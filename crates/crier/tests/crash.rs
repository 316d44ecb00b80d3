//! The crash test: a real `crier serve` gets 1,000 posts due within seconds across 20 sandbox
//! accounts, is killed with SIGKILL while publishing, and is started again on the same data.
//! Afterwards every post is published exactly once (the sandbox timelines prove it: one entry
//! per post, no idempotency key twice) and none is lost.
//!
//! It runs on SQLite (a data dir) and on PostgreSQL (a fresh schema of the database named by
//! `CRIER_TEST_DATABASE_URL`, skipped without it outside CI; see crier-testdb), one after the
//! other. The server is the binary Cargo built for this test, or `CRIER_BIN`.

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::posts::{any_with, count_published, sandbox_accounts, schedule, timeline_keys};
use common::server::{Data, Server, admin, free_port, http, start};
use serde_json::{Value, json};

const POSTS: usize = 1000;
const ACCOUNTS: usize = 20;

/// One server at a time: two at once on a small machine would only test its scheduler.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

#[test]
fn sqlite_a_killed_server_publishes_every_post_exactly_once_after_restart() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    crash_and_restart(&Data {
        dir: dir.path(),
        database_url: None,
        config: None,
    });
}

#[test]
fn postgres_a_killed_server_publishes_every_post_exactly_once_after_restart() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Some(schema) = rt.block_on(crier_testdb::PgSchema::create()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    crash_and_restart(&Data {
        dir: dir.path(),
        database_url: Some(&schema.url),
        config: None,
    });
    rt.block_on(schema.drop());
}

fn crash_and_restart(data: &Data) {
    let started = Instant::now();
    let key = crash_key(data);
    let port = free_port();
    let server = start(data, port);

    let accounts = sandbox_accounts(&[port], &key, ACCOUNTS);

    // 1,000 posts, one account each, due over the next few seconds.
    schedule(port, &key, POSTS, "post", |n| &accounts[n % ACCOUNTS]);
    let mut server = kill_and_restart(data, port, &key, server, POSTS, Duration::from_secs(45));
    let keys = timeline_keys(port, &key, &accounts);
    let distinct: HashSet<&String> = keys.iter().collect();
    assert_eq!(
        distinct.len(),
        keys.len(),
        "a post reached its network twice"
    );
    assert_eq!(keys.len(), POSTS, "every post reached its network once");
    server.kill();
    let backend = if data.database_url.is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    eprintln!("crash test on {backend} took {:?}", started.elapsed());
}

// ---------------------------------------------------------------------------------------------
// The same through real connectors: networks' fakes
// ---------------------------------------------------------------------------------------------

/// Posts per network in the networks crash test.
const NETWORK_POSTS: usize = 100;
const REDIRECT: &str = "https://app.example/connected";

/// The networks that take text alone, each behind its fake (crier-fakes) on this process's
/// runtime, on the system clock (the server's).
fn network_fakes(rt: &tokio::runtime::Runtime) -> Vec<Box<dyn crier_fakes::FakeNetwork>> {
    let clock: std::sync::Arc<dyn crier_core::Clock> = std::sync::Arc::new(crier_core::SystemClock);
    rt.block_on(async {
        vec![
            Box::new(crier_fakes::x::XFake::start(clock.clone()).await)
                as Box<dyn crier_fakes::FakeNetwork>,
            Box::new(crier_fakes::linkedin::LinkedInFake::start(clock.clone()).await),
            Box::new(crier_fakes::facebook::FacebookFake::start(clock.clone()).await),
            Box::new(crier_fakes::threads::ThreadsFake::start(clock.clone()).await),
        ]
    })
}

/// A `crier.toml` pointing each network at its fake, with the fake's OAuth client.
fn networks_config(dir: &Path, fakes: &[Box<dyn crier_fakes::FakeNetwork>]) -> PathBuf {
    let mut toml = format!(
        "connect_redirect_uris = [\"{REDIRECT}\"]\nallow_private_networks = true\n\
         network_settle_seconds = 5\n\n[network_base_urls]\n"
    );
    for f in fakes {
        toml.push_str(&format!("{} = \"{}\"\n", f.platform(), f.base()));
    }
    for f in fakes {
        let c = f.client();
        toml.push_str(&format!(
            "\n[oauth_clients.{}]\nclient_id = \"{}\"\nclient_secret = \"{}\"\n",
            f.platform(),
            c.client_id,
            c.client_secret.unwrap_or_default()
        ));
    }
    let path = dir.join("crier-networks.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

/// Connects an account of `platform` through the API and the fake's approval; its id and its
/// network id.
fn connect_through(
    rt: &tokio::runtime::Runtime,
    port: u16,
    key: &str,
    platform: &str,
) -> (String, String) {
    let redirect: String = url::form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect();
    let (status, started) = http(
        port,
        "GET",
        &format!("/v1/connect/{platform}?redirect_uri={redirect}"),
        key,
        None,
    );
    assert_eq!(status, 200, "{started}");
    let url = url::Url::parse(started["url"].as_str().unwrap()).unwrap();
    let (code, state) = rt.block_on(crier_fakes::kit::approve(&url));
    let (status, account) = http(
        port,
        "POST",
        &format!("/v1/connect/{platform}"),
        key,
        Some(&json!({ "code": code, "state": state })),
    );
    assert_eq!(status, 201, "{account}");
    (
        account["id"].as_str().unwrap().to_owned(),
        account["external_id"].as_str().unwrap().to_owned(),
    )
}

#[test]
fn sqlite_a_killed_server_publishes_to_every_network_exactly_once() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let fakes = network_fakes(&rt);
    let dir = tempfile::tempdir().unwrap();
    let config = networks_config(dir.path(), &fakes);
    crash_networks(
        &rt,
        &fakes,
        &Data {
            dir: dir.path(),
            database_url: None,
            config: Some(config),
        },
    );
}

#[test]
fn postgres_a_killed_server_publishes_to_every_network_exactly_once() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Some(schema) = rt.block_on(crier_testdb::PgSchema::create()) else {
        return;
    };
    let fakes = network_fakes(&rt);
    let dir = tempfile::tempdir().unwrap();
    let config = networks_config(dir.path(), &fakes);
    crash_networks(
        &rt,
        &fakes,
        &Data {
            dir: dir.path(),
            database_url: Some(&schema.url),
            config: Some(config),
        },
    );
    rt.block_on(schema.drop());
}

/// SIGKILLs `server` in the middle of publishing (some posts published, others still
/// waiting), starts it again on the same data, and waits (at most `within`) until all `total`
/// posts are published; the new server. A post that never gets there is shown.
fn kill_and_restart(
    data: &Data,
    port: u16,
    key: &str,
    mut server: Server,
    total: usize,
    within: Duration,
) -> Server {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        // Cheap requests, not a count of every page: on a slow machine counting takes longer
        // than publishing the rest. The first post published, with posts due over four
        // seconds, leaves most of them waiting or in flight.
        if any_with(port, key, "published") {
            assert!(
                any_with(port, key, "scheduled") || any_with(port, key, "publishing"),
                "published everything before the kill; make it harder"
            );
            break;
        }
        assert!(Instant::now() < deadline, "nothing was published");
        std::thread::sleep(Duration::from_millis(20));
    }
    server.kill(); // SIGKILL

    let server = start(data, port);
    let deadline = Instant::now() + within;
    while count_published(port, key) < total {
        if Instant::now() >= deadline {
            let stuck: Vec<Value> = ["scheduled", "publishing", "failed", "partially_published"]
                .iter()
                .flat_map(|status| {
                    let (_, page) = http(
                        port,
                        "GET",
                        &format!("/v1/posts?status={status}&limit=5"),
                        key,
                        None,
                    );
                    page["data"].as_array().cloned().unwrap_or_default()
                })
                .collect();
            panic!(
                "not every post was published after the restart ({} of {total}): {}",
                count_published(port, key),
                serde_json::to_string_pretty(&stuck).unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    server
}

/// A key of a new workspace `crash`, with limits no test reaches.
fn crash_key(data: &Data) -> String {
    admin(data, &["workspace", "create", "crash"]);
    admin(
        data,
        &[
            "key",
            "create",
            "--workspace",
            "crash",
            "--scope",
            "all",
            "--per-minute",
            "100000",
            "--per-day",
            "10000000",
        ],
    )["key"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// 100 posts to each network, the server killed mid-publishing and started again: each post
/// is on its network exactly once (the fakes hold what they were given).
fn crash_networks(
    rt: &tokio::runtime::Runtime,
    fakes: &[Box<dyn crier_fakes::FakeNetwork>],
    data: &Data,
) {
    let started = Instant::now();
    let key = crash_key(data);
    let port = free_port();
    let server = start(data, port);
    let accounts: Vec<(String, String)> = fakes
        .iter()
        .map(|f| connect_through(rt, port, &key, f.platform()))
        .collect();

    let total = NETWORK_POSTS * fakes.len();
    schedule(port, &key, total, "network post", |n| {
        &accounts[n % fakes.len()].0
    });
    let mut server = kill_and_restart(data, port, &key, server, total, Duration::from_secs(120));
    for (i, f) in fakes.iter().enumerate() {
        let author = &accounts[i].1;
        let texts: Vec<String> = f
            .posts()
            .into_iter()
            .filter(|p| &p.author == author)
            .map(|p| p.text)
            .collect();
        let distinct: HashSet<&String> = texts.iter().collect();
        assert_eq!(
            distinct.len(),
            texts.len(),
            "{}: a post reached it twice",
            f.platform()
        );
        assert_eq!(
            texts.len(),
            NETWORK_POSTS,
            "{}: every post reached it once",
            f.platform()
        );
    }
    server.kill();
    eprintln!("networks crash test took {:?}", started.elapsed());
}
