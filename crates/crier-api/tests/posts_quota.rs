//! Posts over HTTP, plans, quotas and test mode: the free plan, the monthly posts quota,
//! connecting accounts, faults and slots, and what test-mode keys see.
//!
//! The publishing worker never runs on its own here: `run_due` drives it, with the manual
//! clock, so every step is deterministic; the helpers are in `common/posts.rs`.

mod common;

use common::posts::{
    act, act_ok, assert_param, create, draft, drain, faults, get_post, item, run, status_of,
    timeline, world,
};
use common::{KeySpec, NowMs, TestApp, both};
use crier_api::ApiConfig;
use crier_core::{KeyMode, Scope};
use crier_worker::Processed;
use serde_json::{Value, json};

// ---- plans, quotas and test mode ----

async fn the_free_plan_cannot_schedule_or_publish() {
    let app = TestApp::with_plan("free").await;
    let key = app.admin_key().await;
    let acct = app.sandbox_account(&key, "brand").await;
    let id = draft(&app, &key, &[&acct], "Free.").await;
    let before = app.posts_snapshot().await;
    for (verb, body) in [
        ("publish", None),
        (
            "schedule",
            Some(json!({"scheduled_at": "2026-11-23T10:00:00Z"})),
        ),
    ] {
        let r = act(&app, &key, &id, verb, body).await;
        r.assert_error(402, "payment_required");
        assert!(r.text.contains("paid plan"), "{}", r.text);
    }
    let r = app
        .post("/v1/batches")
        .key(&key)
        .json(json!({"posts": [{"body": "x", "account_ids": [acct],
                                 "scheduled_at": "2026-11-23T10:00:00Z"}]}))
        .send()
        .await;
    r.assert_error(402, "payment_required");
    assert_eq!(app.posts_snapshot().await, before);
    assert_eq!(status_of(&app, &key, &id).await, "draft");
}

async fn a_used_up_posts_quota_is_402_and_test_mode_does_not_count() {
    let mut config = ApiConfig::default();
    config.plans.get_mut("pro").unwrap().posts_per_month = Some(1);
    let app = TestApp::with_config(config, "pro").await;
    let key = app.admin_key().await;
    let acct = app.sandbox_account(&key, "brand").await;
    let (test_key, _) = app
        .key(KeySpec {
            scopes: Scope::ALL.to_vec(),
            mode: Some(KeyMode::Test),
            ..KeySpec::default()
        })
        .await;
    let test_acct = app.sandbox_account(&test_key, "brand-test").await;

    // Test-mode publishing, before and after the quota is used up, never counts.
    let t1 = draft(&app, &test_key, &[&test_acct], "test one").await;
    act_ok(&app, &test_key, &t1, "publish", None, "publishing").await;
    assert_eq!(run(&app).await, [Processed::Published]);
    let period = crier_api::AppState::period_of(app.clock.now_ms_value());
    let used = |u: std::collections::HashMap<String, i64>| {
        u.get(crier_store::METRIC_POSTS_PUBLISHED)
            .copied()
            .unwrap_or(0)
    };
    let usage = app
        .store
        .workspace_usage(&app.workspace.id, &period)
        .await
        .unwrap();
    assert_eq!(used(usage.into_iter().collect()), 0);

    // A live post that fails for good uses nothing up.
    let p0 = draft(&app, &key, &[&acct], "live, failing").await;
    faults(
        &app,
        &key,
        &acct,
        json!({"fail_next": 100, "kind": "error"}),
    )
    .await;
    act_ok(&app, &key, &p0, "publish", None, "publishing").await;
    assert_eq!(drain(&app).await.last(), Some(&Processed::Failed));
    faults(&app, &key, &acct, json!({"fail_next": 0, "kind": "error"})).await;

    let p1 = draft(&app, &key, &[&acct], "live one").await;
    let p2 = draft(&app, &key, &[&acct], "live two").await;
    act_ok(&app, &key, &p1, "publish", None, "publishing").await;
    assert_eq!(run(&app).await, [Processed::Published]);
    // Now the quota is used up: a retry of the failed post would go past it.
    let before = app.posts_snapshot().await;
    act(&app, &key, &p0, "retry", None)
        .await
        .assert_error(402, "quota_exceeded");
    assert_eq!(app.posts_snapshot().await, before);

    let before = app.posts_snapshot().await;
    let r = act(&app, &key, &p2, "publish", None).await;
    r.assert_error(402, "quota_exceeded");
    let r = act(
        &app,
        &key,
        &p2,
        "schedule",
        Some(json!({"scheduled_at": "2026-11-23T10:00:00Z"})),
    )
    .await;
    r.assert_error(402, "quota_exceeded");
    // A batch cannot schedule past the quota either, and is refused whole.
    let r = app
        .post("/v1/batches")
        .key(&key)
        .json(json!({"posts": [
            item(&acct, "a draft is fine"),
            {"body": "scheduled", "account_ids": [acct], "scheduled_at": "2026-11-23T10:00:00Z"},
        ]}))
        .send()
        .await;
    r.assert_error(402, "quota_exceeded");
    assert_eq!(app.posts_snapshot().await, before);
    assert_eq!(status_of(&app, &key, &p2).await, "draft");
    // Drafts spend nothing.
    let r = app
        .post("/v1/batches")
        .key(&key)
        .json(json!({"posts": [item(&acct, "a draft is fine")]}))
        .send()
        .await;
    assert_eq!(r.status, 201, "{}", r.text);

    let t2 = draft(&app, &test_key, &[&test_acct], "test two").await;
    act_ok(&app, &test_key, &t2, "publish", None, "publishing").await;
    assert_eq!(run(&app).await, [Processed::Published]);

    let ws = app.get("/v1/workspace").key(&key).send().await;
    assert_eq!(ws.status, 200, "{}", ws.text);
    assert_eq!(ws.body["usage"]["posts_published"], 1, "{}", ws.text);
    assert_eq!(ws.body["plan"]["posts_per_month"], 1);
}

async fn scheduled_posts_hold_their_place_in_the_quota() {
    let mut config = ApiConfig::default();
    config.plans.get_mut("pro").unwrap().posts_per_month = Some(3);
    let app = TestApp::with_config(config, "pro").await;
    let key = app.admin_key().await;
    let a = app.sandbox_account(&key, "a").await;
    let b = app.sandbox_account(&key, "b").await;
    let at = |when: &str| Some(json!({ "scheduled_at": when }));
    // Now is 2026-11-22T10:00Z: the quota counts per UTC month.
    let nov = "2026-11-25T10:00:00Z";
    let dec = "2026-12-02T10:00:00Z";

    let p1 = draft(&app, &key, &[&a, &b], "two targets").await;
    act_ok(&app, &key, &p1, "schedule", at(nov), "scheduled").await;
    let p2 = draft(&app, &key, &[&a, &b], "two more").await;
    let before = app.posts_snapshot().await;
    let r = act(&app, &key, &p2, "schedule", at(nov)).await;
    r.assert_error(402, "quota_exceeded");
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("2026-11: 0 are published and 2 scheduled"),
        "{}",
        r.text
    );
    let r = act(&app, &key, &p2, "publish", None).await;
    r.assert_error(402, "quota_exceeded");
    assert_eq!(app.posts_snapshot().await, before, "nothing changed");

    // The third place is free; rescheduling p1 within the month does not count it twice.
    let p3 = draft(&app, &key, &[&a], "one target").await;
    act_ok(&app, &key, &p3, "schedule", at(nov), "scheduled").await;
    act_ok(
        &app,
        &key,
        &p1,
        "schedule",
        at("2026-11-28T10:00:00Z"),
        "scheduled",
    )
    .await;
    // Editing a scheduled post to more accounts needs their places too.
    let edit = |id: &str, accounts: Value| {
        app.patch(&format!("/v1/posts/{id}"))
            .key(&key)
            .json(json!({ "account_ids": accounts }))
            .send()
    };
    let before = app.posts_snapshot().await;
    edit(&p3, json!([a, b]))
        .await
        .assert_error(402, "quota_exceeded");
    assert_eq!(app.posts_snapshot().await, before, "nothing changed");
    let r = edit(&p1, json!([a])).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = edit(&p3, json!([a, b])).await;
    assert_eq!(r.status, 200, "{}", r.text);
    // December has room of its own.
    act_ok(&app, &key, &p2, "schedule", at(dec), "scheduled").await;
    let r = app
        .post("/v1/batches")
        .key(&key)
        .json(json!({"posts": [
            {"body": "dec one", "account_ids": [a], "scheduled_at": dec},
            {"body": "dec two", "account_ids": [b], "scheduled_at": dec},
        ]}))
        .send()
        .await;
    r.assert_error(402, "quota_exceeded");
    let r = app
        .post("/v1/batches")
        .key(&key)
        .json(json!({"posts": [{"body": "dec one", "account_ids": [a], "scheduled_at": dec}]}))
        .send()
        .await;
    assert_eq!(r.status, 201, "{}", r.text);

    // Cancelling gives the place back; publishing keeps it (published instead of scheduled).
    act_ok(&app, &key, &p3, "cancel", None, "draft").await;
    let p4 = draft(&app, &key, &[&a], "the freed place").await;
    act_ok(&app, &key, &p4, "publish", None, "publishing").await;
    assert_eq!(run(&app).await, [Processed::Published]);
    let r = act(&app, &key, &p3, "schedule", at(nov)).await;
    r.assert_error(402, "quota_exceeded");
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("1 are published and 1 scheduled, so 2 more"),
        "{}",
        r.text
    );
}

async fn connecting_checks_the_handle_the_platform_and_the_plan() {
    let mut config = ApiConfig::default();
    config.plans.get_mut("pro").unwrap().connected_accounts = Some(2);
    let app = TestApp::with_config(config, "pro").await;
    let key = app.admin_key().await;
    let connect = |platform: &str, body: Value| {
        app.post(&format!("/v1/connect/{platform}"))
            .key(&key)
            .json(body)
            .send()
    };
    let accounts = || async {
        app.store
            .list_accounts(&app.workspace.id, None, 50, 0)
            .await
            .unwrap()
            .items
    };
    for handle in [
        json!(""),
        json!("   "),
        json!("x".repeat(51)),
        json!("a b"),
        json!("é"),
    ] {
        let r = connect("sandbox", json!({ "handle": handle })).await;
        r.assert_error(400, "invalid_request");
        assert_eq!(r.body["error"]["param"], "handle", "{}", r.text);
    }
    let r = connect("sandbox", json!({ "handle": 7 })).await;
    r.assert_error(400, "invalid_request");
    connect("myspace", json!({ "handle": "brand" }))
        .await
        .assert_error(404, "not_found");
    assert!(accounts().await.is_empty(), "nothing was connected");

    let first = app.sandbox_account(&key, "one").await;
    app.sandbox_account(&key, "two").await;
    let r = connect("sandbox", json!({ "handle": "three" })).await;
    r.assert_error(402, "quota_exceeded");
    assert_eq!(accounts().await.len(), 2);
    // A disconnected account frees its place.
    let r = app
        .delete(&format!("/v1/accounts/{first}"))
        .key(&key)
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    app.sandbox_account(&key, "three").await;
}

async fn bad_faults_slots_and_filters_are_refused_and_change_nothing() {
    let (app, key, acct) = world().await;
    let faults_at = format!("/v1/accounts/{acct}/faults");
    let stored_faults = || app.raw_texts("SELECT account_id FROM sandbox_faults");
    for (body, param) in [
        (json!({"fail_next": 1001, "kind": "error"}), "fail_next"),
        (json!({"fail_next": -1, "kind": "error"}), "fail_next"),
        (json!({"fail_next": "3", "kind": "error"}), "fail_next"),
        (json!({"fail_next": 1, "kind": "bogus"}), "kind"),
        (
            json!({"fail_next": 1, "kind": "error", "retry_after_seconds": 86_401}),
            "retry_after_seconds",
        ),
        (
            json!({"fail_next": 1, "kind": "error", "colour": "red"}),
            "colour",
        ),
        (json!({"latency_ms": 10_001}), "latency_ms"),
        (json!({"latency_ms": -5}), "latency_ms"),
        (json!({"latency_ms": 300, "kind": "slow"}), "kind"),
    ] {
        let r = app.post(&faults_at).key(&key).json(body).send().await;
        r.assert_error(400, "invalid_request");
        assert_eq!(r.body["error"]["param"], param, "{}", r.text);
    }
    let r = app
        .post(&faults_at)
        .key(&key)
        .raw("{not json")
        .header("content-type", "application/json")
        .send()
        .await;
    r.assert_error(400, "invalid_request");
    assert!(stored_faults().await.is_empty(), "no fault was set");

    let put_slots = |body: Value| {
        app.call(axum::http::Method::PUT, "/v1/queue/slots")
            .key(&key)
            .json(body)
            .send()
    };
    let many: Vec<Value> = (0..101)
        .map(|_| json!({"day": "monday", "time": "09:00"}))
        .collect();
    for (body, param) in [
        (
            json!({"slots": [{"day": "funday", "time": "09:00"}]}),
            "slots[0]",
        ),
        (
            json!({"slots": [{"day": "monday", "time": "09:00"}, {"day": "monday", "time": "25:00"}]}),
            "slots[1]",
        ),
        (
            json!({"slots": [{"day": "monday", "time": "9am"}]}),
            "slots[0]",
        ),
        (json!({ "slots": many }), "slots"),
        (json!({"slots": {}}), "slots"),
    ] {
        let r = put_slots(body).await;
        r.assert_error(400, "invalid_request");
        assert_eq!(r.body["error"]["param"], param, "{}", r.text);
    }
    let r = app.get("/v1/queue/slots").key(&key).send().await;
    assert_eq!(r.body["slots"], json!([]), "no slot was stored: {}", r.text);

    for (query, param) in [
        ("status=bogus", "status"),
        ("account_id=x", "account_id"),
        ("from=yesterday", "from"),
        ("to=2026-13-01T00:00:00Z", "to"),
        ("limit=0", "limit"),
    ] {
        let r = app
            .get(&format!("/v1/posts?{query}"))
            .key(&key)
            .send()
            .await;
        r.assert_error(400, "invalid_request");
        assert_eq!(r.body["error"]["param"], param, "{query}: {}", r.text);
    }
    for (query, param) in [
        ("from=2026-11-22T10:00:00Z&to=2026-11-01T00:00:00Z", "from"),
        ("to=soon", "to"),
    ] {
        let r = app
            .get(&format!("/v1/accounts/analytics?{query}"))
            .key(&key)
            .send()
            .await;
        r.assert_error(400, "invalid_request");
        assert_eq!(r.body["error"]["param"], param, "{query}: {}", r.text);
    }
}

async fn test_mode_keys_see_only_test_mode_posts_and_accounts() {
    let (app, live, live_acct) = world().await;
    let (test, _) = app
        .key(KeySpec {
            scopes: Scope::ALL.to_vec(),
            mode: Some(KeyMode::Test),
            ..KeySpec::default()
        })
        .await;
    let test_acct = app.sandbox_account(&test, "brand-test").await;

    let accounts = app.get("/v1/accounts").key(&test).send().await;
    assert_eq!(accounts.status, 200, "{}", accounts.text);
    assert_eq!(accounts.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(accounts.body["data"][0]["id"], test_acct.as_str());
    assert_eq!(accounts.body["data"][0]["livemode"], false);
    let accounts = app.get("/v1/accounts").key(&live).send().await;
    assert_eq!(accounts.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(accounts.body["data"][0]["id"], live_acct.as_str());
    assert_eq!(accounts.body["data"][0]["livemode"], true);

    let test_post = create(
        &app,
        &test,
        json!({"body": "test", "account_ids": [test_acct]}),
    )
    .await;
    assert_eq!(test_post["livemode"], false);
    let test_id = test_post["id"].as_str().unwrap();
    let live_id = draft(&app, &live, &[&live_acct], "live").await;

    // Each mode's accounts are unknown to the other's posts.
    let before = app.posts_snapshot().await;
    let r = app
        .post("/v1/posts")
        .key(&test)
        .json(json!({"body": "x", "account_ids": [live_acct]}))
        .send()
        .await;
    assert_param(&r, "account_ids");
    let r = app
        .post("/v1/posts")
        .key(&live)
        .json(json!({"body": "x", "account_ids": [test_acct]}))
        .send()
        .await;
    assert_param(&r, "account_ids");

    // Each mode's posts and accounts do not exist for the other.
    for (key, post, acct) in [
        (&test, live_id.as_str(), live_acct.as_str()),
        (&live, test_id, test_acct.as_str()),
    ] {
        for r in [
            app.get(&format!("/v1/posts/{post}")).key(key).send().await,
            app.patch(&format!("/v1/posts/{post}"))
                .key(key)
                .json(json!({"body": "y"}))
                .send()
                .await,
            app.delete(&format!("/v1/posts/{post}"))
                .key(key)
                .send()
                .await,
            act(&app, key, post, "publish", None).await,
            app.get(&format!("/v1/accounts/{acct}/timeline"))
                .key(key)
                .send()
                .await,
            app.delete(&format!("/v1/accounts/{acct}"))
                .key(key)
                .send()
                .await,
        ] {
            r.assert_error(404, "not_found");
        }
    }
    assert_eq!(app.posts_snapshot().await, before);
    let listed = app.get("/v1/posts").key(&test).send().await;
    let ids: Vec<&Value> = listed.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["id"])
        .collect();
    assert_eq!(ids, [&json!(test_id)]);

    // Publishing in test mode reaches the sandbox but spends no quota.
    act_ok(&app, &test, test_id, "publish", None, "publishing").await;
    assert_eq!(run(&app).await, [Processed::Published]);
    assert_eq!(get_post(&app, &test, test_id).await["status"], "published");
    assert_eq!(timeline(&app, &test, &test_acct).await.len(), 1);
    let ws = app.get("/v1/workspace").key(&live).send().await;
    assert_eq!(ws.body["usage"]["posts_published"], 0, "{}", ws.text);
}

both!(
    tests: the_free_plan_cannot_schedule_or_publish,
    a_used_up_posts_quota_is_402_and_test_mode_does_not_count,
    scheduled_posts_hold_their_place_in_the_quota,
    connecting_checks_the_handle_the_platform_and_the_plan,
    bad_faults_slots_and_filters_are_refused_and_change_nothing,
    test_mode_keys_see_only_test_mode_posts_and_accounts,
);
