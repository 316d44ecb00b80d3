//! `GET /v1/me`: who is calling, for the CLI's `whoami` and the MCP server's tool list. A key
//! sees itself (never its secret) and its workspace; a session sees its user and role; nobody
//! sees anyone else.

mod common;

use common::keys::scope_set;
use common::users::{session, user_in};
use common::{KeySpec, TestApp, both};
use crier_core::{KeyMode, Role, Scope};
use serde_json::json;

async fn a_key_sees_itself_and_its_workspace_but_not_its_secret() {
    let app = TestApp::new().await;
    let (key, row) = app
        .key(KeySpec {
            scopes: vec![Scope::PostsRead, Scope::PostsWrite],
            per_minute: Some(30),
            allowed_ips: Some(vec!["127.0.0.0/8".into()]),
            ..Default::default()
        })
        .await;
    let r = app.get("/v1/me").key(&key).send().await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["object"], "me");
    assert_eq!(r.body["auth"], "api_key");
    assert_eq!(r.body["mode"], "live");
    assert_eq!(r.body["livemode"], true);
    assert_eq!(
        scope_set(&r.body["scopes"]),
        scope_set(&json!(["posts:read", "posts:write"]))
    );
    assert_eq!(r.body["key"]["id"], row.id.as_str());
    assert_eq!(r.body["key"]["prefix"], &key[..12]);
    assert_eq!(r.body["key"]["rate_limit"]["per_minute"], 30);
    assert_eq!(r.body["key"]["allowed_ips"], json!(["127.0.0.0/8"]));
    assert!(r.body["user"].is_null());
    assert_eq!(r.body["workspace"]["id"], app.workspace.id.as_str());
    assert_eq!(r.body["workspace"]["name"], app.workspace.name.as_str());
    assert!(r.body["workspace"]["plan"].is_string());
    assert!(r.body["key"].get("key").is_none(), "{}", r.text);
    assert!(!r.text.contains(&key[12..]), "never the secret: {}", r.text);

    // A test-mode key says so.
    let (test, _) = app
        .key(KeySpec {
            scopes: vec![Scope::PostsRead],
            mode: Some(KeyMode::Test),
            ..Default::default()
        })
        .await;
    let r = app.get("/v1/me").key(&test).send().await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["mode"], "test");
    assert_eq!(r.body["livemode"], false);
}

async fn a_session_sees_its_user_and_role_in_the_workspace_it_names() {
    let app = TestApp::new().await;
    let ada = user_in(&app, &app.workspace, "ada@example.com", Role::Member).await;
    app.clock.advance(std::time::Duration::from_secs(1));
    let other = app
        .state
        .app()
        .users()
        .create_workspace(&ada.id, "Ada's own")
        .await
        .unwrap();
    let token = session(&app, &ada).await;

    let r = app.get("/v1/me").key(&token).send().await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["auth"], "session");
    assert!(r.body["key"].is_null());
    assert_eq!(
        r.body["user"],
        json!({"id": ada.id.as_str(), "email": "ada@example.com", "name": "Ada Lovelace",
               "role": "member"})
    );
    assert_eq!(r.body["workspace"]["id"], app.workspace.id.as_str());
    assert_eq!(
        scope_set(&r.body["scopes"]),
        scope_set(&json!(Role::Member.scopes().names()))
    );

    let r = app
        .get("/v1/me")
        .key(&token)
        .header("crier-workspace", other.id.as_str())
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["user"]["role"], "owner");
    assert_eq!(r.body["workspace"]["id"], other.id.as_str());
}

async fn no_key_a_revoked_key_and_garbage_are_401() {
    let app = TestApp::new().await;
    app.get("/v1/me")
        .send()
        .await
        .assert_error(401, "unauthorized");
    app.get("/v1/me")
        .key("sk_live_000000000000000000000000000000000000")
        .send()
        .await
        .assert_error(401, "unauthorized");
    let admin = app.admin_key().await;
    let (key, row) = app
        .key(KeySpec {
            scopes: vec![Scope::PostsRead],
            ..Default::default()
        })
        .await;
    let r = app
        .delete(&format!("/v1/keys/{}", row.id))
        .key(&admin)
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    app.get("/v1/me")
        .key(&key)
        .send()
        .await
        .assert_error(401, "unauthorized");
}

/// A key's answer is kept between requests (`MeViews`): a change of the key or of its
/// workspace shows at once all the same, and each key gets its own answer.
async fn a_change_of_the_key_or_its_workspace_shows_at_once() {
    let app = TestApp::new().await;
    let admin = app.admin_key().await;
    let (key, row) = app
        .key(KeySpec {
            scopes: vec![Scope::PostsRead],
            ..Default::default()
        })
        .await;
    let me = |k: String| {
        let app = &app;
        async move {
            let r = app.get("/v1/me").key(&k).send().await;
            assert_eq!(r.status, 200, "{}", r.text);
            r.body
        }
    };
    let first = me(key.clone()).await;
    assert_eq!(me(key.clone()).await, first, "the same answer twice");
    assert_ne!(me(admin.clone()).await["key"]["id"], first["key"]["id"]);

    let r = app
        .patch(&format!("/v1/keys/{}", row.id))
        .key(&admin)
        .json(json!({"name": "renamed"}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(me(key.clone()).await["key"]["name"], "renamed");

    let r = app
        .patch("/v1/workspace")
        .key(&admin)
        .json(json!({"timezone": "Europe/Berlin"}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let now = me(key.clone()).await;
    assert_eq!(now["workspace"]["timezone"], "Europe/Berlin");
    assert_eq!(now["key"]["name"], "renamed");
}

both!(
    tests: a_key_sees_itself_and_its_workspace_but_not_its_secret,
    a_change_of_the_key_or_its_workspace_shows_at_once,
    a_session_sees_its_user_and_role_in_the_workspace_it_names,
    no_key_a_revoked_key_and_garbage_are_401,
);
