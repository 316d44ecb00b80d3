//! Feeds over HTTP: the feed object through its lifecycle, strict validation with `param`,
//! the SSRF guard on feed URLs, tenancy and test mode, the `posts:publish` rule for feeds that
//! publish, the per-workspace limit, and a poll's outcome as the API shows it. (The scope
//! checks of every feed route come from the authorization matrix.)
mod common;

use common::{KeySpec, NowMs, Response, START, TestApp, both};
use crier_api::ApiConfig;
use crier_core::{KeyMode, Scope};
use crier_store::FeedMode;
use crier_worker::feeds::{FeedConfig, FeedPoller, Polled};
use serde_json::{Value, json};

const URL: &str = "https://blog.example.com/feed.xml";

/// An app on the default plan, a key with every scope and one live sandbox account.
async fn world() -> (TestApp, String, String) {
    let app = TestApp::new().await;
    let key = app.admin_key().await;
    let acct = app.sandbox_account(&key, "brand").await;
    (app, key, acct)
}

#[track_caller]
fn assert_param(r: &Response, param: &str) {
    r.assert_error(400, "invalid_request");
    assert_eq!(r.body["error"]["param"], param, "param; body: {}", r.text);
}

async fn create(app: &TestApp, key: &str, body: Value) -> Response {
    app.post("/v1/feeds").key(key).json(body).send().await
}

async fn create_ok(app: &TestApp, key: &str, body: Value) -> Value {
    let r = create(app, key, body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body
}

async fn list_ids(app: &TestApp, key: &str) -> Vec<String> {
    let r = app.get("/v1/feeds?limit=50").key(key).send().await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["has_more"], false);
    r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn a_feed_from_creation_to_deletion() {
    let (app, key, acct) = world().await;
    let feed = create_ok(&app, &key, json!({"url": URL, "account_ids": [acct]})).await;
    let id = feed["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("feed_"), "{id}");
    assert_eq!(
        feed,
        json!({
            "id": id,
            "object": "feed",
            "url": URL,
            "account_ids": [acct],
            "template": "{title} {link}",
            "mode": "draft",
            "poll_interval_seconds": 900,
            "backfill": 0,
            "enabled": true,
            "last_polled_at": null,
            "next_poll_at": START,
            "last_error": null,
            "consecutive_failures": 0,
            "livemode": true,
            "created_at": START,
            "updated_at": START,
        })
    );
    let r = app.get(&format!("/v1/feeds/{id}")).key(&key).send().await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body, feed);
    assert_eq!(list_ids(&app, &key).await, vec![id.clone()]);

    // Every setting given, and an edit of each.
    let second = create_ok(
        &app,
        &key,
        json!({"url": "http://news.example.org/atom", "account_ids": [acct],
               "template": "{title}: {summary} {link}", "mode": "queue",
               "poll_interval_seconds": 60, "backfill": 50, "enabled": false}),
    )
    .await;
    assert_eq!(second["mode"], "queue");
    assert_eq!(second["poll_interval_seconds"], 60);
    assert_eq!(second["backfill"], 50);
    assert_eq!(second["enabled"], false);
    assert_eq!(
        second["next_poll_at"],
        Value::Null,
        "a disabled feed is not due"
    );
    let second_id = second["id"].as_str().unwrap();
    assert_eq!(
        list_ids(&app, &key).await,
        vec![second_id.to_owned(), id.clone()],
        "newest first"
    );

    app.clock.advance(std::time::Duration::from_secs(60));
    let r = app
        .patch(&format!("/v1/feeds/{id}"))
        .key(&key)
        .json(
            json!({"template": "New: {title}\n{link}", "mode": "publish",
                     "poll_interval_seconds": 86400, "backfill": 3, "enabled": false}),
        )
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["template"], "New: {title}\n{link}");
    assert_eq!(r.body["mode"], "publish");
    assert_eq!(r.body["poll_interval_seconds"], 86400);
    assert_eq!(r.body["backfill"], 3);
    assert_eq!(r.body["enabled"], false);
    assert_eq!(r.body["next_poll_at"], Value::Null);
    assert_eq!(r.body["url"], URL);
    assert_eq!(r.body["created_at"], START);
    assert_eq!(r.body["updated_at"], "2026-11-22T10:01:00Z");
    // Turned on again, it is due at once.
    let r = app
        .patch(&format!("/v1/feeds/{id}"))
        .key(&key)
        .json(json!({"enabled": true}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["next_poll_at"], "2026-11-22T10:01:00Z");
    // An empty PATCH changes nothing but `updated_at`.
    let r = app
        .patch(&format!("/v1/feeds/{id}"))
        .key(&key)
        .json(json!({}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["template"], "New: {title}\n{link}");

    let r = app
        .delete(&format!("/v1/feeds/{id}"))
        .key(&key)
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body, json!({"id": id, "object": "feed", "deleted": true}));
    for r in [
        app.get(&format!("/v1/feeds/{id}")).key(&key).send().await,
        app.delete(&format!("/v1/feeds/{id}"))
            .key(&key)
            .send()
            .await,
        app.patch(&format!("/v1/feeds/{id}"))
            .key(&key)
            .json(json!({}))
            .send()
            .await,
    ] {
        r.assert_error(404, "not_found");
    }
    assert_eq!(list_ids(&app, &key).await, vec![second_id.to_owned()]);
    for bad in ["nope", "feed_short", "post_0Q2X3hS8dK7vT1bLmN4pRz"] {
        app.get(&format!("/v1/feeds/{bad}"))
            .key(&key)
            .send()
            .await
            .assert_error(404, "not_found");
    }
}

async fn bad_input_names_the_field_and_stores_nothing() {
    let (app, key, acct) = world().await;
    let other = app.sandbox_account(&key, "other").await;
    let disconnected = app.sandbox_account(&key, "gone").await;
    let r = app
        .delete(&format!("/v1/accounts/{disconnected}"))
        .key(&key)
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let ok = json!({"url": URL, "account_ids": [acct]});
    let with = |field: &str, value: Value| {
        let mut body = ok.clone();
        body[field] = value;
        body
    };
    let cases = [
        (json!({"account_ids": [acct]}), "url"),
        (json!({"url": URL}), "account_ids"),
        (with("url", json!("ftp://blog.example.com/feed")), "url"),
        (with("url", json!("not a url")), "url"),
        (
            with("url", json!("https://user:pw@blog.example.com/")),
            "url",
        ),
        (
            with("url", json!(format!("https://e.com/{}", "a".repeat(2048)))),
            "url",
        ),
        (with("url", json!(42)), "url"),
        (with("account_ids", json!([])), "account_ids"),
        (with("account_ids", json!(["acct_nope"])), "account_ids"),
        (with("account_ids", json!([acct, acct])), "account_ids"),
        (with("account_ids", json!([disconnected])), "account_ids"),
        (
            with("account_ids", json!(vec![other.clone(); 21])),
            "account_ids",
        ),
        (with("template", json!("")), "template"),
        (with("template", json!("plain words")), "template"),
        (with("template", json!("{title} by {author}")), "template"),
        (
            with("template", json!(format!("{{link}}{}", "x".repeat(1000)))),
            "template",
        ),
        (with("mode", json!("sometimes")), "mode"),
        (with("mode", json!(1)), "mode"),
        (
            with("poll_interval_seconds", json!(59)),
            "poll_interval_seconds",
        ),
        (
            with("poll_interval_seconds", json!(86401)),
            "poll_interval_seconds",
        ),
        (
            with("poll_interval_seconds", json!(-900)),
            "poll_interval_seconds",
        ),
        (
            with("poll_interval_seconds", json!("900")),
            "poll_interval_seconds",
        ),
        (with("backfill", json!(-1)), "backfill"),
        (with("backfill", json!(51)), "backfill"),
        (with("backfill", json!(1.5)), "backfill"),
        (with("enabled", json!("yes")), "enabled"),
        (with("etag", json!("\"x\"")), "etag"),
        (with("last_error", json!(null)), "last_error"),
    ];
    for (body, param) in cases {
        let r = create(&app, &key, body).await;
        assert_param(&r, param);
    }
    assert!(list_ids(&app, &key).await.is_empty(), "nothing was stored");
    // The edges are accepted.
    for (field, value) in [
        ("poll_interval_seconds", json!(60)),
        ("poll_interval_seconds", json!(86400)),
        ("backfill", json!(0)),
        ("backfill", json!(50)),
        ("template", json!(format!("{{link}}{}", "é".repeat(994)))),
    ] {
        let r = create(&app, &key, with(field, value)).await;
        assert_eq!(r.status, 201, "{field}: {}", r.text);
    }

    // PATCH validates what it changes, and a refused PATCH changes nothing.
    let id = list_ids(&app, &key).await.remove(0);
    let before = app
        .get(&format!("/v1/feeds/{id}"))
        .key(&key)
        .send()
        .await
        .body;
    for (body, param) in [
        (json!({"url": "gopher://x"}), "url"),
        (json!({"account_ids": []}), "account_ids"),
        (json!({"template": "{nothing}"}), "template"),
        (json!({"mode": "later"}), "mode"),
        (json!({"poll_interval_seconds": 0}), "poll_interval_seconds"),
        (json!({"backfill": 100}), "backfill"),
        (json!({"enabled": 1}), "enabled"),
        (json!({"id": "feed_x"}), "id"),
    ] {
        let r = app
            .patch(&format!("/v1/feeds/{id}"))
            .key(&key)
            .json(body)
            .send()
            .await;
        assert_param(&r, param);
    }
    let after = app
        .get(&format!("/v1/feeds/{id}"))
        .key(&key)
        .send()
        .await
        .body;
    assert_eq!(after, before);
}

async fn private_network_urls_are_refused_unless_the_operator_allows_them() {
    let (app, key, acct) = world().await;
    for url in [
        "http://10.0.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://127.0.0.1:8080/feed",
        "http://localhost/feed",
        "http://[::1]/feed",
        "http://192.168.1.10/rss",
        "http://[::ffff:10.0.0.1]/",
    ] {
        let r = create(&app, &key, json!({"url": url, "account_ids": [acct]})).await;
        assert_param(&r, "url");
        assert!(
            r.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("private"),
            "{url}: {}",
            r.text
        );
    }
    assert!(list_ids(&app, &key).await.is_empty());
    // Nor may an existing feed be moved there.
    let feed = create_ok(&app, &key, json!({"url": URL, "account_ids": [acct]})).await;
    let r = app
        .patch(&format!("/v1/feeds/{}", feed["id"].as_str().unwrap()))
        .key(&key)
        .json(json!({"url": "http://169.254.169.254/"}))
        .send()
        .await;
    assert_param(&r, "url");

    // With private networks allowed (self-hosted setups), they are fine.
    let open = TestApp::with_config(
        ApiConfig {
            allow_private_networks: true,
            ..ApiConfig::default()
        },
        "self-hosted",
    )
    .await;
    let key = open.admin_key().await;
    let acct = open.sandbox_account(&key, "brand").await;
    let url = "http://10.0.0.1/";
    let feed = create_ok(&open, &key, json!({"url": url, "account_ids": [acct]})).await;
    assert_eq!(feed["url"], url);
    // Cloud metadata stays refused all the same.
    let r = create(
        &open,
        &key,
        json!({"url": "http://169.254.169.254/", "account_ids": [acct]}),
    )
    .await;
    assert_param(&r, "url");
}

async fn another_workspaces_and_the_other_modes_feeds_do_not_exist() {
    let (app, key, acct) = world().await;
    let mine = create_ok(&app, &key, json!({"url": URL, "account_ids": [acct]})).await;
    let ws_b = app.other_workspace("b").await;
    let (key_b, _) = app
        .key_in(
            &ws_b,
            KeySpec {
                scopes: Scope::ALL.to_vec(),
                ..KeySpec::default()
            },
        )
        .await;
    let acct_b = app.sandbox_account(&key_b, "b-brand").await;
    let theirs = create_ok(&app, &key_b, json!({"url": URL, "account_ids": [acct_b]})).await;
    let theirs_id = theirs["id"].as_str().unwrap();
    // A's key cannot use B's account either.
    let r = create(&app, &key, json!({"url": URL, "account_ids": [acct_b]})).await;
    assert_param(&r, "account_ids");

    let path = format!("/v1/feeds/{theirs_id}");
    app.get(&path)
        .key(&key)
        .send()
        .await
        .assert_error(404, "not_found");
    app.patch(&path)
        .key(&key)
        .json(json!({"enabled": false}))
        .send()
        .await
        .assert_error(404, "not_found");
    app.delete(&path)
        .key(&key)
        .send()
        .await
        .assert_error(404, "not_found");
    let r = app.get(&path).key(&key_b).send().await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, theirs, "B's feed is untouched");
    assert_eq!(
        list_ids(&app, &key).await,
        vec![mine["id"].as_str().unwrap().to_owned()]
    );

    // A test-mode key sees only test-mode feeds, which go to test-mode sandbox accounts.
    let (test_key, _) = app
        .key(KeySpec {
            scopes: Scope::ALL.to_vec(),
            mode: Some(KeyMode::Test),
            ..KeySpec::default()
        })
        .await;
    let live_path = format!("/v1/feeds/{}", mine["id"].as_str().unwrap());
    app.get(&live_path)
        .key(&test_key)
        .send()
        .await
        .assert_error(404, "not_found");
    assert!(list_ids(&app, &test_key).await.is_empty());
    let r = create(&app, &test_key, json!({"url": URL, "account_ids": [acct]})).await;
    assert_param(&r, "account_ids");
    let test_acct = app.sandbox_account(&test_key, "test-brand").await;
    let test_feed = create_ok(
        &app,
        &test_key,
        json!({"url": URL, "account_ids": [test_acct]}),
    )
    .await;
    assert_eq!(test_feed["livemode"], false);
    assert_eq!(
        list_ids(&app, &test_key).await,
        vec![test_feed["id"].as_str().unwrap().to_owned()]
    );
    assert_eq!(
        list_ids(&app, &key).await.len(),
        1,
        "the live list is unchanged"
    );
}

async fn feeds_that_schedule_or_publish_need_posts_publish() {
    let (app, admin, acct) = world().await;
    let feeds_only = app.key_with(&[Scope::FeedsWrite, Scope::FeedsRead]).await;
    for mode in ["queue", "publish"] {
        let r = create(
            &app,
            &feeds_only,
            json!({"url": URL, "account_ids": [acct], "mode": mode}),
        )
        .await;
        r.assert_error(403, "forbidden_scope");
        assert!(r.text.contains("posts:publish"), "{}", r.text);
    }
    let draft = create_ok(
        &app,
        &feeds_only,
        json!({"url": URL, "account_ids": [acct]}),
    )
    .await;
    let path = format!("/v1/feeds/{}", draft["id"].as_str().unwrap());
    let r = app
        .patch(&path)
        .key(&feeds_only)
        .json(json!({"mode": "publish"}))
        .send()
        .await;
    r.assert_error(403, "forbidden_scope");
    // A publishing feed made by a key that may publish cannot be re-pointed by one that may not.
    let r = app
        .patch(&path)
        .key(&admin)
        .json(json!({"mode": "publish"}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app
        .patch(&path)
        .key(&feeds_only)
        .json(json!({"url": "https://elsewhere.example.com/feed"}))
        .send()
        .await;
    r.assert_error(403, "forbidden_scope");
    let r = app.get(&path).key(&feeds_only).send().await;
    assert_eq!(r.body["url"], URL);
    assert_eq!(r.body["mode"], "publish");

    // On a plan without publishing, it is a paid feature.
    let free = TestApp::with_plan("free").await;
    let key = free
        .key_with(&[Scope::FeedsWrite, Scope::PostsPublish, Scope::AccountsWrite])
        .await;
    let acct = free.sandbox_account(&key, "brand").await;
    let r = create(
        &free,
        &key,
        json!({"url": URL, "account_ids": [acct], "mode": "publish"}),
    )
    .await;
    r.assert_error(402, "payment_required");
    let r = create(&free, &key, json!({"url": URL, "account_ids": [acct]})).await;
    assert_eq!(r.status, 201, "{}", r.text);
}

async fn a_workspace_has_at_most_100_feeds() {
    let (app, key, acct) = world().await;
    for n in 0..100 {
        // Within the key's 60 requests a minute.
        app.clock.advance(std::time::Duration::from_secs(1));
        let r = create(
            &app,
            &key,
            // IP literals: nothing to resolve.
            json!({"url": format!("https://93.184.216.34/feed/{n}"), "account_ids": [acct]}),
        )
        .await;
        assert_eq!(r.status, 201, "feed {n}: {}", r.text);
    }
    let r = create(&app, &key, json!({"url": URL, "account_ids": [acct]})).await;
    r.assert_error(409, "conflict");
    let r = app
        .get("/v1/feeds?limit=50&offset=50")
        .key(&key)
        .send()
        .await;
    assert_eq!(r.body["data"].as_array().unwrap().len(), 50);
    assert_eq!(r.body["has_more"], false);
}

async fn a_polls_outcome_shows_on_the_feed() {
    let app = TestApp::with_config(
        ApiConfig {
            allow_private_networks: true,
            ..ApiConfig::default()
        },
        "self-hosted",
    )
    .await;
    let key = app.admin_key().await;
    let acct = app.sandbox_account(&key, "brand").await;
    // A port nobody listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let feed = create_ok(
        &app,
        &key,
        json!({"url": format!("http://127.0.0.1:{port}/feed"), "account_ids": [acct]}),
    )
    .await;
    let poller = FeedPoller::new(
        app.state.app().clone(),
        FeedConfig {
            allow_private_networks: true,
            ..FeedConfig::default()
        },
    );
    let reports = poller.poll_due().await;
    assert_eq!(reports.len(), 1);
    assert!(
        matches!(reports[0].polled, Polled::Failed { .. }),
        "{reports:?}"
    );
    let r = app
        .get(&format!("/v1/feeds/{}", feed["id"].as_str().unwrap()))
        .key(&key)
        .send()
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["last_polled_at"], START);
    assert_eq!(r.body["consecutive_failures"], 1);
    assert_eq!(
        r.body["next_poll_at"], "2026-11-22T10:30:00Z",
        "twice the interval"
    );
    let error = r.body["last_error"].as_str().unwrap();
    assert!(error.starts_with("Could not fetch the feed"), "{error}");

    // Storage and the API agree on the feed (the store is what the poller reads).
    let stored = app
        .store
        .list_feeds(&app.workspace.id, None, 50, 0)
        .await
        .unwrap()
        .items;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].mode, FeedMode::Draft);
    assert_eq!(app.clock.now_ms_value(), stored[0].created_at);
}

both!(
    tests: a_feed_from_creation_to_deletion,
    bad_input_names_the_field_and_stores_nothing,
    private_network_urls_are_refused_unless_the_operator_allows_them,
    another_workspaces_and_the_other_modes_feeds_do_not_exist,
    feeds_that_schedule_or_publish_need_posts_publish,
    a_workspace_has_at_most_100_feeds,
    a_polls_outcome_shows_on_the_feed,
);
