//! Test mode is a parallel world, as in Stripe: whatever a test-mode key (`sk_test_…`) does,
//! the live world stays as it was. Each test lets a test key act next to a live one and checks,
//! over HTTP and in storage, that the live side did not move:
//! - connected accounts: each mode has the plan's room to itself;
//! - workspace settings are live data: a test key reads them but cannot change them.
mod common;

use common::{KeySpec, TestApp, both};
use crier_api::ApiConfig;
use crier_core::{KeyMode, Scope};
use serde_json::json;

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
        .filter(|a| a.status == "connected")
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

both!(
    tests: test_mode_accounts_do_not_use_up_the_live_connected_accounts_quota,
    a_test_key_cannot_change_live_workspace_settings,
);
