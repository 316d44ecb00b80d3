//! Test mode is a parallel world, as in Stripe: whatever a test-mode key (`sk_test_…`) does,
//! the live world stays as it was. Each test lets a test key act next to a live one and checks,
//! over HTTP and in storage, that the live side did not move:
//! - connected accounts: each mode has the plan's room to itself;
//! - workspace settings are live data: a test key reads them but cannot change them;
//! - queue slots and the queue: each mode has its own slots, and a free slot is one that the
//!   key's own mode's posts leave free.
mod common;

use common::{KeySpec, TestApp, both};
use crier_api::ApiConfig;
use crier_core::{KeyMode, Scope};
use serde_json::{Value, json};

/// A live and a test-mode key, each with every scope.
async fn keys(app: &TestApp) -> (String, String) {
    let live = app.admin_key().await;
    let (test, _) = app
        .key(KeySpec {
            scopes: Scope::ALL.to_vec(),
            mode: Some(KeyMode::Test),
            ..KeySpec::default()
        })
        .await;
    (live, test)
}

/// Connected account ids of one mode, from storage.
async fn stored_accounts(app: &TestApp, livemode: bool) -> Vec<String> {
    app.store
        .list_accounts(&app.workspace.id, Some(livemode), 50, 0)
        .await
        .unwrap()
        .items
        .iter()
        .filter(|a| a.status.as_str() == "connected")
        .map(|a| a.id.to_string())
        .collect()
}

async fn connect(app: &TestApp, key: &str, handle: &str) -> common::Response {
    app.post("/v1/connect/sandbox")
        .key(key)
        .json(json!({ "handle": handle }))
        .send()
        .await
}

// ---- connected accounts ----

async fn test_mode_accounts_do_not_use_up_the_live_connected_accounts_quota() {
    let mut config = ApiConfig::default();
    config.plans.get_mut("pro").unwrap().connected_accounts = Some(2);
    let app = TestApp::with_config(config, "pro").await;
    let (live, test) = keys(&app).await;

    // Test mode fills the plan's limit with accounts of its own.
    app.sandbox_account(&test, "test-one").await;
    app.sandbox_account(&test, "test-two").await;
    assert_eq!(stored_accounts(&app, false).await.len(), 2);

    // The live room is untouched: a live key still connects up to the plan's limit.
    assert!(stored_accounts(&app, true).await.is_empty());
    let one = app.sandbox_account(&live, "live-one").await;
    let two = app.sandbox_account(&live, "live-two").await;

    // Each room is bounded: test mode cannot grow rows without limit either.
    let r = connect(&app, &test, "test-three").await;
    r.assert_error(402, "quota_exceeded");
    let message = r.body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("2 connected test-mode accounts"),
        "{message}"
    );
    assert_eq!(stored_accounts(&app, false).await.len(), 2);
    let r = connect(&app, &live, "live-three").await;
    r.assert_error(402, "quota_exceeded");
    let message = r.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("allows 2 connected accounts"), "{message}");
    let mut want = vec![one, two];
    want.sort();
    let mut got = stored_accounts(&app, true).await;
    got.sort();
    assert_eq!(got, want);
    assert_eq!(stored_accounts(&app, false).await.len(), 2);

    // A disconnected test account frees a test place, not a live one.
    let test_acct = stored_accounts(&app, false).await.pop().unwrap();
    let r = app
        .delete(&format!("/v1/accounts/{test_acct}"))
        .key(&test)
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    connect(&app, &live, "live-three")
        .await
        .assert_error(402, "quota_exceeded");
    assert_eq!(stored_accounts(&app, true).await.len(), 2);
    app.sandbox_account(&test, "test-three").await;
    assert_eq!(stored_accounts(&app, false).await.len(), 2);
}

// ---- workspace settings ----

async fn a_test_key_cannot_change_live_workspace_settings() {
    let app = TestApp::new().await;
    let (live, test) = keys(&app).await;
    let r = app
        .patch("/v1/workspace")
        .key(&live)
        .json(json!({"timezone": "Europe/Berlin"}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let before = app.snapshot().await;

    for body in [
        json!({"require_approval": true}),
        json!({"timezone": "America/New_York"}),
        json!({"timezone": "America/New_York", "require_approval": true}),
        json!({}),
        // Refused for what the key is before what it sent.
        json!({"timezone": "Mars/Olympus_Mons"}),
    ] {
        let r = app
            .patch("/v1/workspace")
            .key(&test)
            .json(body.clone())
            .send()
            .await;
        r.assert_error(403, "forbidden_scope");
        let message = r.body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("Test-mode keys cannot change live workspace settings"),
            "{body}: {message}"
        );
        assert_eq!(app.snapshot().await, before, "{body} changed storage");
    }

    // A test key still reads the settings, and both modes see them unchanged.
    for key in [&test, &live] {
        let r = app.get("/v1/workspace").key(key).send().await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.body["timezone"], "Europe/Berlin");
        assert_eq!(r.body["require_approval"], false);
    }
}

// ---- queue slots ----

async fn put_slots(app: &TestApp, key: &str, slots: Value) -> Value {
    let r = app
        .call(axum::http::Method::PUT, "/v1/queue/slots")
        .key(key)
        .json(json!({ "slots": slots }))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body
}

async fn get_slots(app: &TestApp, key: &str) -> Value {
    let r = app.get("/v1/queue/slots").key(key).send().await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body
}

/// Every stored slot of the workspace, both modes, as `weekday:minute`, sorted.
async fn stored_slots(app: &TestApp) -> Vec<Option<String>> {
    app.raw_texts(
        "SELECT weekday || ':' || minute_of_day FROM queue_slots
         ORDER BY weekday, minute_of_day",
    )
    .await
}

/// A draft to `acct`, scheduled into the next free queue slot; returns its id and the time it
/// got.
async fn schedule_next(app: &TestApp, key: &str, acct: &str, text: &str) -> (String, Value) {
    let r = app
        .post("/v1/posts")
        .key(key)
        .json(json!({"body": text, "account_ids": [acct]}))
        .send()
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_owned();
    let r = app
        .post(&format!("/v1/posts/{id}/schedule"))
        .key(key)
        .json(json!({"slot": "next"}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{text}: {}", r.text);
    assert_eq!(r.body["status"], "scheduled", "{}", r.text);
    (id, r.body["scheduled_at"].clone())
}

async fn queue_ids(app: &TestApp, key: &str) -> Vec<String> {
    let r = app.get("/v1/queue").key(key).send().await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn a_test_keys_slots_leave_the_live_slots_alone() {
    let app = TestApp::new().await;
    let (live, test) = keys(&app).await;
    let monday = json!([{"day": "monday", "time": "09:00"}]);
    let body = put_slots(&app, &live, monday.clone()).await;
    assert_eq!(body["slots"], monday);
    assert_eq!(stored_slots(&app).await, [Some("1:540".to_owned())]);

    // Test mode starts with no slots of its own and sets its own.
    assert_eq!(get_slots(&app, &test).await["slots"], json!([]));
    let test_slots = json!([
        {"day": "tuesday", "time": "10:00"},
        {"day": "friday", "time": "15:30"},
    ]);
    let body = put_slots(&app, &test, test_slots.clone()).await;
    assert_eq!(body["slots"], test_slots);
    assert_eq!(get_slots(&app, &test).await["slots"], test_slots);

    // The live slots are as the live key left them.
    let body = get_slots(&app, &live).await;
    assert_eq!(body["slots"], monday);
    assert_eq!(body["next_free"], "2026-11-23T09:00:00Z");
    assert_eq!(
        stored_slots(&app).await,
        [
            Some("1:540".to_owned()),
            Some("2:600".to_owned()),
            Some("5:930".to_owned())
        ]
    );

    // Clearing the test slots clears only them, and live changes leave test's alone.
    put_slots(&app, &test, json!([])).await;
    assert_eq!(get_slots(&app, &live).await["slots"], monday);
    assert_eq!(stored_slots(&app).await, [Some("1:540".to_owned())]);
    put_slots(&app, &test, test_slots.clone()).await;
    put_slots(&app, &live, json!([])).await;
    assert_eq!(get_slots(&app, &live).await["slots"], json!([]));
    assert_eq!(get_slots(&app, &test).await["slots"], test_slots);
}

async fn a_test_post_scheduled_next_does_not_take_a_live_slot() {
    let app = TestApp::new().await;
    let (live, test) = keys(&app).await;
    let live_acct = app.sandbox_account(&live, "brand").await;
    let test_acct = app.sandbox_account(&test, "brand-test").await;
    // Now is Sunday 2026-11-22 10:00 UTC; both modes queue on Mondays and Wednesdays.
    let slots = json!([
        {"day": "monday", "time": "09:00"},
        {"day": "wednesday", "time": "18:30"},
    ]);
    put_slots(&app, &live, slots.clone()).await;
    put_slots(&app, &test, slots.clone()).await;

    let (test_first, at) = schedule_next(&app, &test, &test_acct, "test, first").await;
    assert_eq!(at, "2026-11-23T09:00:00Z");
    // The live queue still has its first slot free, and takes it.
    assert_eq!(
        get_slots(&app, &live).await["next_free"],
        "2026-11-23T09:00:00Z"
    );
    let (live_first, at) = schedule_next(&app, &live, &live_acct, "live, first").await;
    assert_eq!(
        at, "2026-11-23T09:00:00Z",
        "the live post gets the first slot"
    );
    // Each mode fills its own queue in turn.
    let (test_second, at) = schedule_next(&app, &test, &test_acct, "test, second").await;
    assert_eq!(at, "2026-11-25T18:30:00Z");
    let (live_second, at) = schedule_next(&app, &live, &live_acct, "live, second").await;
    assert_eq!(at, "2026-11-25T18:30:00Z");
    for key in [&live, &test] {
        assert_eq!(
            get_slots(&app, key).await["next_free"],
            "2026-11-30T09:00:00Z"
        );
    }

    // Each mode's queue lists its own posts only.
    assert_eq!(queue_ids(&app, &live).await, [live_first, live_second]);
    assert_eq!(queue_ids(&app, &test).await, [test_first, test_second]);
}

both!(
    tests: test_mode_accounts_do_not_use_up_the_live_connected_accounts_quota,
    a_test_key_cannot_change_live_workspace_settings,
    a_test_keys_slots_leave_the_live_slots_alone,
    a_test_post_scheduled_next_does_not_take_a_live_slot,
);
