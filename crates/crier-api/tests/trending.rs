//! `GET /v1/trending` over HTTP, on SQLite and PostgreSQL: a workspace's Mastodon account on an
//! instance whose trending tags the refresher cached (a local instance serving
//! `/api/v1/trends/tags` as documented, and mastodon-mock when `CRIER_TEST_MASTODON_URL` is
//! set), merged with the hashtags rising in the workspace's own posts; normalised, listed once,
//! paginated; kept when the instance fails; gone with the account; another workspace and a
//! test-mode key see none of it; bad pagination is `400` with its `param` and changes nothing.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::response::IntoResponse;
use common::mastodon::{REDIRECT, browser, mock_url};
use common::{KeySpec, NowMs, TestApp, both};
use crier_api::ApiConfig;
use crier_core::{KeyMode, Scope};
use crier_worker::trending::{RefreshConfig, refresh_once};
use serde_json::{Value, json};

const DAY_MS: i64 = 24 * 3600 * 1000;

/// A Mastodon instance's public trending tags (docs.joinmastodon.org/methods/trends): what it
/// answers is set by the test (a status and a body).
#[derive(Clone)]
struct Instance(Arc<Mutex<(u16, Value)>>);

impl Instance {
    async fn start(tags: Value) -> (Self, String) {
        let me = Self(Arc::new(Mutex::new((200, tags))));
        let app = axum::Router::new()
            .route(
                "/api/v1/trends/tags",
                axum::routing::get(|State(i): State<Instance>| async move {
                    let (status, body) = i.0.lock().unwrap().clone();
                    (
                        axum::http::StatusCode::from_u16(status).unwrap(),
                        axum::Json(body),
                    )
                        .into_response()
                }),
            )
            .with_state(me.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (me, format!("http://{addr}"))
    }

    fn answer(&self, status: u16, body: Value) {
        *self.0.lock().unwrap() = (status, body);
    }
}

/// A Tag entity whose newest two days had `today` and `yesterday` uses.
fn tag(name: &str, today: u64, yesterday: u64) -> Value {
    let day = 1_795_651_200u64;
    json!({"name": name, "url": format!("https://m.example/tags/{name}"), "history": [
        {"day": day.to_string(), "uses": today.to_string(), "accounts": "1"},
        {"day": (day - 86_400).to_string(), "uses": yesterday.to_string(), "accounts": "1"},
        {"day": (day - 2 * 86_400).to_string(), "uses": "90", "accounts": "9"},
    ]})
}

/// An app whose networks are the sandbox and Mastodon (private addresses allowed: the
/// instances here are on 127.0.0.1).
async fn app() -> TestApp {
    TestApp::composed(
        ApiConfig::default(),
        "self-hosted",
        |store, clock, config| {
            common::mastodon::compose(store, clock, config, Duration::from_secs(5))
        },
    )
    .await
}

/// A live Mastodon account of the app's workspace on `instance` (connected as the OAuth flow
/// would leave it; the flow itself is tested in `connect.rs` and `networks_mastodon.rs`).
async fn mastodon_account(app: &TestApp, instance: &str) -> String {
    let mut a = crier_store::Account::new(
        &app.workspace.id,
        true,
        "mastodon",
        "hopper@m.example",
        "109",
        app.clock.now_ms_value(),
    );
    a.service = Some(instance.to_owned());
    app.store.connect_account(&a).await.unwrap().id.to_string()
}

/// Runs the refresher once, as `crier serve` does every few minutes.
async fn refresh(app: &TestApp) -> crier_worker::trending::Refreshed {
    refresh_once(app.state.app(), &RefreshConfig::default())
        .await
        .expect("a refresh without storage errors")
}

/// Sets the app's clock `days_ago` days before `start`. Each key's requests must go forward in
/// time (its rate limit is a GCRA over the clock), so the tests walk the clock forward only.
fn at(app: &TestApp, start: i64, days_ago: i64) {
    app.clock
        .set(crier_core::clock::from_ms(start - days_ago * DAY_MS));
}

/// A draft with `text` to `account`, created now (the app's clock).
async fn post(app: &TestApp, key: &str, account: &str, text: &str) {
    common::posts::draft(app, key, &[account], text).await;
}

async fn trending(app: &TestApp, key: &str, query: &str) -> (Vec<(String, String, f64)>, bool) {
    let r = app
        .get(&format!("/v1/trending{query}"))
        .key(key)
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let data = r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["topic"].as_str().unwrap().to_owned(),
                t["source"].as_str().unwrap().to_owned(),
                t["score"].as_f64().unwrap(),
            )
        })
        .collect();
    (data, r.body["has_more"].as_bool().unwrap())
}

fn row(topic: &str, source: &str, score: f64) -> (String, String, f64) {
    (topic.to_owned(), source.to_owned(), score)
}

/// Every cached trend and source, as text, to show that a request changed nothing.
async fn cache_snapshot(app: &TestApp) -> Vec<Option<String>> {
    let mut out = app
        .raw_texts(
            "SELECT source || '|' || position || '|' || topic || '|' || fetched_at
             FROM trend_topics ORDER BY source, position",
        )
        .await;
    out.extend(
        app.raw_texts(
            "SELECT source || '|' || used_at || '|' || next_fetch_at || '|'
                || COALESCE(fetched_at, -1) || '|' || COALESCE(last_error, '')
             FROM trend_sources ORDER BY source",
        )
        .await,
    );
    out
}

async fn the_instances_trends_and_the_workspaces_rising_tags() {
    let (instance, base) = Instance::start(json!([
        tag("rust", 8, 0),
        tag("Launch", 2, 1),
        tag("quiet", 0, 0)
    ]))
    .await;
    let app = app().await;
    let start = app.clock.now_ms_value();
    let key = app.admin_key().await;
    let mastodon = mastodon_account(&app, &base).await;
    // Outside both windows: not counted.
    at(&app, start, 40);
    let sandbox = app.sandbox_account(&key, "brand").await;
    post(&app, &key, &sandbox, "#ancient #ancient2").await;
    // The 28 days before the last 7: #old and #rust; the last 7: #launch three times.
    at(&app, start, 20);
    post(&app, &key, &sandbox, "#old news").await;
    at(&app, start, 12);
    post(&app, &key, &sandbox, "#old and #rust").await;
    at(&app, start, 3);
    post(&app, &key, &sandbox, "#Launch again").await;
    at(&app, start, 2);
    post(&app, &key, &sandbox, "#launch with #rust").await;
    at(&app, start, 1);
    post(&app, &key, &sandbox, "#launch day").await;
    at(&app, start, 0);

    // Before the refresher ran: only the workspace's own.
    let (data, more) = trending(&app, &key, "").await;
    assert_eq!(data, [row("#launch", "workspace", 1.0)]);
    assert!(!more);

    let done = refresh(&app).await;
    assert_eq!((done.fetched, done.failed), (1, 0));
    // #launch rises in the workspace (lift 24/7, its list's best: 1) and trends on the
    // instance (3 uses of the best 8: 0.375): listed once, with its best. #rust leads the
    // instance (8 uses in the newest two days: 1); #quiet had none (0).
    let (data, more) = trending(&app, &key, "").await;
    assert_eq!(
        data,
        [
            row("#launch", "workspace", 1.0),
            row("#rust", "mastodon", 1.0),
            row("#quiet", "mastodon", 0.0),
        ]
    );
    assert!(!more);
    // Pages.
    assert_eq!(
        trending(&app, &key, "?limit=1").await,
        (vec![row("#launch", "workspace", 1.0)], true)
    );
    assert_eq!(
        trending(&app, &key, "?limit=2&offset=1").await,
        (
            vec![
                row("#rust", "mastodon", 1.0),
                row("#quiet", "mastodon", 0.0)
            ],
            false
        )
    );
    assert_eq!(trending(&app, &key, "?offset=3").await, (vec![], false));
    // analytics:read is what it takes.
    let reader = app.key_with(&[Scope::AnalyticsRead]).await;
    assert_eq!(trending(&app, &reader, "").await.0.len(), 3);
    // A key limited to one account sees the networks' lists, not the workspace's rising
    // tags (they come from every account's posts).
    let limited = app
        .post("/v1/keys")
        .key(&key)
        .json(json!({"name": "limited", "scopes": ["analytics:read"],
                     "allowed_account_ids": [mastodon]}))
        .send()
        .await;
    assert_eq!(limited.status, 201, "{}", limited.text);
    let limited = limited.body["key"].as_str().unwrap().to_owned();
    assert_eq!(
        trending(&app, &limited, "").await.0,
        [
            row("#rust", "mastodon", 1.0),
            row("#Launch", "mastodon", 0.375),
            row("#quiet", "mastodon", 0.0)
        ]
    );
    let other_scope = app.key_with(&[Scope::PostsRead]).await;
    app.get("/v1/trending")
        .key(&other_scope)
        .send()
        .await
        .assert_error(403, "forbidden_scope");

    // The instance fails: its topics stay until it answers again.
    instance.answer(503, json!({"error": "down"}));
    app.clock
        .set(crier_core::clock::from_ms(start + 31 * 60 * 1000));
    let done = refresh(&app).await;
    assert_eq!((done.fetched, done.failed), (0, 1));
    assert_eq!(trending(&app, &key, "").await.0.len(), 3);
    instance.answer(200, json!([tag("art", 5, 5)]));
    app.clock
        .set(crier_core::clock::from_ms(start + 62 * 60 * 1000));
    assert_eq!(refresh(&app).await.fetched, 1);
    assert_eq!(
        trending(&app, &key, "").await.0,
        [
            row("#art", "mastodon", 1.0),
            row("#launch", "workspace", 1.0)
        ]
    );

    // Disconnected: its instance's topics are no longer the workspace's.
    let r = app
        .delete(&format!("/v1/accounts/{mastodon}"))
        .key(&key)
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        trending(&app, &key, "").await.0,
        [row("#launch", "workspace", 1.0)]
    );
}

async fn another_workspace_and_test_mode_see_none_of_it() {
    let (_instance, base) = Instance::start(json!([tag("rust", 8, 0)])).await;
    let app = app().await;
    let start = app.clock.now_ms_value();
    let key = app.admin_key().await;
    let (test_key, _) = app
        .key(KeySpec {
            scopes: Scope::ALL.to_vec(),
            mode: Some(KeyMode::Test),
            ..KeySpec::default()
        })
        .await;
    mastodon_account(&app, &base).await;
    // Test mode has nothing yet.
    at(&app, start, 3);
    assert_eq!(trending(&app, &test_key, "").await, (vec![], false));
    at(&app, start, 2);
    let sandbox = app.sandbox_account(&key, "brand").await;
    post(&app, &key, &sandbox, "#launch").await;
    let test_sandbox = app.sandbox_account(&test_key, "brand").await;
    post(&app, &test_key, &test_sandbox, "#sandbox").await;
    at(&app, start, 1);
    post(&app, &key, &sandbox, "#launch #live").await;
    post(&app, &test_key, &test_sandbox, "#sandbox #a").await;
    at(&app, start, 0);
    refresh(&app).await;
    let (live, _) = trending(&app, &key, "").await;
    assert_eq!(
        live,
        [
            row("#launch", "workspace", 1.0),
            row("#rust", "mastodon", 1.0)
        ]
    );

    // Another workspace (no account on the instance, no posts): nothing.
    let other = app.other_workspace("globex").await;
    let (other_key, _) = app
        .key_in(
            &other,
            KeySpec {
                scopes: vec![Scope::AnalyticsRead],
                ..KeySpec::default()
            },
        )
        .await;
    assert_eq!(trending(&app, &other_key, "").await, (vec![], false));
    // With an account on the same instance it shares the instance's list (one public list per
    // instance), never the first workspace's own topics.
    let mut theirs =
        crier_store::Account::new(&other.id, true, "mastodon", "x@m.example", "7", start);
    theirs.service = Some(base.clone());
    app.store.connect_account(&theirs).await.unwrap();
    assert_eq!(
        trending(&app, &other_key, "").await.0,
        [row("#rust", "mastodon", 1.0)]
    );

    // A test-mode key: the rising tags of test-mode posts only, never a network's.
    assert_eq!(
        trending(&app, &test_key, "").await.0,
        [row("#sandbox", "workspace", 1.0)]
    );
    // And the live side did not change.
    assert_eq!(trending(&app, &key, "").await.0, live);
}

async fn bad_pagination_is_refused_and_changes_nothing() {
    let (_instance, base) = Instance::start(json!([tag("rust", 8, 0)])).await;
    let app = app().await;
    let key = app.admin_key().await;
    mastodon_account(&app, &base).await;
    refresh(&app).await;
    let before = cache_snapshot(&app).await;
    assert!(!before.is_empty());
    let posts_before = common::posts::post_count(&app).await;
    for (query, param) in [
        ("limit=0", "limit"),
        ("limit=51", "limit"),
        ("limit=ten", "limit"),
        ("limit=-1", "limit"),
        ("offset=-1", "offset"),
        ("offset=1000001", "offset"),
        ("limit=5&offset=x", "offset"),
    ] {
        let r = app
            .get(&format!("/v1/trending?{query}"))
            .key(&key)
            .send()
            .await;
        common::posts::assert_param(&r, param);
    }
    assert_eq!(cache_snapshot(&app).await, before);
    assert_eq!(common::posts::post_count(&app).await, posts_before);
}

both!(tests:
    the_instances_trends_and_the_workspaces_rising_tags,
    another_workspace_and_test_mode_see_none_of_it,
    bad_pagination_is_refused_and_changes_nothing,
);

// ---- against mastodon-mock ----

/// Connects the instance's demo user `user` through the API's OAuth flow (approving in the
/// mock's form); returns the account id.
async fn connect(app: &TestApp, key: &str, base: &str, user: &str) -> String {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let r = app
        .get(&format!(
            "/v1/connect/mastodon?redirect_uri={}&instance={}",
            enc(REDIRECT),
            enc(base)
        ))
        .key(key)
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let state = r.body["state"].as_str().unwrap().to_owned();
    let url = url::Url::parse(r.body["url"].as_str().unwrap()).unwrap();
    let q: HashMap<String, String> = url.query_pairs().into_owned().collect();
    let approved = browser()
        .post(format!("{base}/oauth/authorize"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            url::form_urlencoded::Serializer::new(String::new())
                .append_pair("username", user)
                .append_pair("redirect_uri", REDIRECT)
                .append_pair("client_id", &q["client_id"])
                .append_pair("scope", &q["scope"])
                .append_pair("state", &state)
                .finish(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(approved.status(), 302);
    let back = url::Url::parse(approved.headers()["location"].to_str().unwrap()).unwrap();
    let back: HashMap<String, String> = back.query_pairs().into_owned().collect();
    let r = app
        .post("/v1/connect/mastodon")
        .key(key)
        .json(json!({"code": back["code"], "state": state}))
        .send()
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body["id"].as_str().unwrap().to_owned()
}

async fn mock_instance_trends_reach_the_workspace() {
    let Some(base) = mock_url() else { return };
    let app = app().await;
    let key = app.admin_key().await;
    let id = connect(&app, &key, &base, "katherine").await;
    // Statuses on the instance with a tag no other test uses (the mock's trends count them).
    let account = app
        .store
        .get_account(
            &app.workspace.id,
            &crier_core::ids::AccountId::parse(&id).unwrap(),
        )
        .await
        .unwrap()
        .unwrap();
    let token = app
        .state
        .app()
        .tokens()
        .open(&account)
        .unwrap()
        .unwrap()
        .access_token;
    let unique = format!(
        "crier{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    for i in 0..15 {
        let r = browser()
            .post(format!("{base}/api/v1/statuses"))
            .bearer_auth(&token)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(
                url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("status", &format!("Number {i} #{unique}"))
                    .finish(),
            )
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.status());
    }
    let done = refresh(&app).await;
    assert_eq!((done.fetched, done.failed), (1, 0));
    let (data, _) = trending(&app, &key, "?limit=50").await;
    let mine = data
        .iter()
        .find(|(t, _, _)| *t == format!("#{unique}"))
        .unwrap_or_else(|| panic!("#{unique} in {data:?}"));
    assert_eq!(mine.1, "mastodon");
    assert!(mine.2 > 0.0 && mine.2 <= 1.0, "{mine:?}");
    assert!(
        data.iter()
            .all(|(_, s, score)| s == "mastodon" && (0.0..=1.0).contains(score))
    );
    // Another workspace has no account there: none of it.
    let other = app.other_workspace("globex").await;
    let (other_key, _) = app
        .key_in(
            &other,
            KeySpec {
                scopes: vec![Scope::AnalyticsRead],
                ..KeySpec::default()
            },
        )
        .await;
    assert_eq!(trending(&app, &other_key, "").await, (vec![], false));
}

both!(tests: mock_instance_trends_reach_the_workspace);
