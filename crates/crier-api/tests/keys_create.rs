//! API keys over HTTP, creating one: the key object and its secret shown once, aliases,
//! invalid requests.
//!
//! The key format itself is covered in crier-core; the helpers are in `common/keys.rs`.

mod common;

use std::collections::BTreeSet;

use common::keys::{
    assert_message_mentions, assert_param, assert_status, at, created, key_id, scope_set, set,
    stored, ts,
};
use common::{TestApp, both};
use crier_core::{Clock, KeyDigest, SecretKey};
use serde_json::{Value, json};

// ---- Create ----

async fn create_returns_the_key_object_with_its_secret_shown_once() {
    let app = TestApp::new().await;
    let admin = app.admin_key().await;
    let r = app
        .post("/v1/keys")
        .key(&admin)
        .json(json!({
            "name": "ci deploy",
            "description": "used by CI",
            "scopes": ["keys:read", "posts:read"],
        }))
        .send()
        .await;
    let (id, secret) = created(&r);
    let b = &r.body;
    for field in [
        "id",
        "object",
        "name",
        "description",
        "prefix",
        "mode",
        "scopes",
        "rate_limit",
        "allowed_ips",
        "allowed_origins",
        "expires_at",
        "last_used_at",
        "created_at",
        "revoked_at",
        "key",
    ] {
        assert!(b.get(field).is_some(), "missing `{field}`: {}", r.text);
    }
    assert!(id.starts_with("key_"), "{id}");
    assert_eq!(b["object"], "api_key");
    assert_eq!(b["name"], "ci deploy");
    assert_eq!(b["description"], "used by CI");
    assert_eq!(b["mode"], "live");
    assert_eq!(scope_set(&b["scopes"]), set(&["keys:read", "posts:read"]));
    assert_eq!(b["rate_limit"], json!({"per_minute": 60, "per_day": 10000}));
    assert_eq!(b["allowed_ips"], json!([]));
    assert_eq!(b["allowed_origins"], json!([]));
    assert_eq!(b["expires_at"], Value::Null);
    assert_eq!(b["last_used_at"], Value::Null);
    assert_eq!(b["revoked_at"], Value::Null);
    assert_eq!(ts(&b["created_at"]), app.clock.now());

    assert!(secret.starts_with("sk_live_"), "{secret}");
    assert_eq!(secret.len(), 44);
    assert!(SecretKey::parse(&secret).is_ok(), "checksum must be valid");
    assert_eq!(b["prefix"], &secret[..12]);

    // Only the digest is stored.
    let row = stored(&app, &key_id(&r)).await;
    assert_eq!(row.digest, KeyDigest::of(&secret));
    assert_eq!(row.prefix, &secret[..12]);

    // The new key works at once.
    let own = app.get("/v1/keys").key(&secret).send().await;
    assert_status(&own, 200);

    // Never shown again: not by GET, not by the list.
    let hidden = &secret[12..];
    let one = app.get(&format!("/v1/keys/{id}")).key(&admin).send().await;
    assert_status(&one, 200);
    assert!(one.body.get("key").is_none(), "{}", one.text);
    assert!(!one.text.contains(hidden));
    assert_eq!(one.body["prefix"], &secret[..12]);
    let list = app.get("/v1/keys").key(&admin).send().await;
    assert_status(&list, 200);
    let data = list.body["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert!(data.iter().all(|k| k.get("key").is_none()), "{}", list.text);
    assert!(!list.text.contains(hidden));
}

/// Answers that show a secret (a new key, a rotated one, an endpoint's signing secret, and
/// their idempotent replays) tell caches not to keep them; a read does not need to.
async fn answers_with_a_secret_are_not_stored_by_caches() {
    let app = TestApp::new().await;
    let admin = app.admin_key().await;
    let body = json!({"name": "ci", "scopes": ["posts:read"]});
    for _ in 0..2 {
        let r = app
            .post("/v1/keys")
            .key(&admin)
            .header("idempotency-key", "once")
            .json(body.clone())
            .send()
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        assert_eq!(r.header("cache-control"), Some("no-store"));
    }
    let (id, _) = created(
        &app.post("/v1/keys")
            .key(&admin)
            .json(body.clone())
            .send()
            .await,
    );
    let r = app
        .post(&format!("/v1/keys/{id}/rotate"))
        .key(&admin)
        .send()
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let r = app
        .post("/v1/webhooks")
        .key(&admin)
        .json(json!({"url": "https://hooks.example.com/crier", "events": ["post.published"]}))
        .send()
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let r = app.get(&format!("/v1/keys/{id}")).key(&admin).send().await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("cache-control"), None);
}

async fn aliases_are_stored_as_what_they_expand_to() {
    let app = TestApp::new().await;
    let admin = app.admin_key().await;
    let r = app
        .post("/v1/keys")
        .key(&admin)
        .json(json!({"scopes": ["insights:read", "media:upload"]}))
        .send()
        .await;
    let (id, secret) = created(&r);
    let expanded = set(&["analytics:read", "accounts:read", "media:write"]);
    assert_eq!(scope_set(&r.body["scopes"]), expanded);
    let row = stored(&app, &key_id(&r)).await;
    assert_eq!(
        row.scopes.names().into_iter().collect::<BTreeSet<_>>(),
        expanded.iter().map(String::as_str).collect()
    );
    let again = app.get(&format!("/v1/keys/{id}")).key(&admin).send().await;
    assert_eq!(scope_set(&again.body["scopes"]), expanded);

    // The key authenticates at once (its scopes do not include keys:read, so a key route is a
    // 403 naming the scope, not a 401).
    assert_status(&app.get("/v1/workspace").key(&secret).send().await, 200);
    let r = app.get("/v1/keys").key(&secret).send().await;
    r.assert_error(403, "forbidden_scope");
    assert_message_mentions(&r, "keys:read");
}

async fn invalid_create_requests_name_the_param_and_store_nothing() {
    // The free plan's ceilings are 60/min and 10,000/day.
    let app = TestApp::with_plan("free").await;
    let admin = app.admin_key().await;
    let before = app.snapshot().await;
    let past = at(&app, -3600).to_string();
    let cases = [
        (
            json!({"name": "x".repeat(101), "scopes": ["posts:read"]}),
            "name",
        ),
        (json!({"name": "   ", "scopes": ["posts:read"]}), "name"),
        (
            json!({"scopes": ["posts:read"], "description": "d".repeat(501)}),
            "description",
        ),
        // The bound is on what was sent: padding that trimming would drop still counts
        // (schemathesis sent " \u{2003}" and 500 more).
        (
            json!({"scopes": ["posts:read"], "description": format!(" \u{2003}{}", "d".repeat(499))}),
            "description",
        ),
        (
            json!({"scopes": ["posts:read"], "expires_at": past}),
            "expires_at",
        ),
        (
            json!({"scopes": ["posts:read"], "rate_limit": {"per_minute": 0}}),
            "rate_limit.per_minute",
        ),
        (
            json!({"scopes": ["posts:read"], "rate_limit": {"per_minute": 61}}),
            "rate_limit.per_minute",
        ),
        (
            json!({"scopes": ["posts:read"], "rate_limit": {"per_day": 0}}),
            "rate_limit.per_day",
        ),
        (
            json!({"scopes": ["posts:read"], "rate_limit": {"per_day": 10001}}),
            "rate_limit.per_day",
        ),
        (
            json!({"scopes": ["posts:read"], "allowed_ips": ["10.0.0.0/33"]}),
            "allowed_ips",
        ),
        (
            json!({"scopes": ["posts:read"], "allowed_ips": ["10.0.0.0/8", "example.com"]}),
            "allowed_ips",
        ),
        (
            json!({"scopes": ["posts:read"], "allowed_origins": ["ftp://example.com"]}),
            "allowed_origins",
        ),
        (
            json!({"scopes": ["posts:read"], "allowed_origins": ["https://example.com/app"]}),
            "allowed_origins",
        ),
        (json!({"scopes": ["posts:frobnicate"]}), "scopes"),
        (json!({"scopes": []}), "scopes"),
    ];
    for (body, param) in cases {
        let r = app
            .post("/v1/keys")
            .key(&admin)
            .json(body.clone())
            .send()
            .await;
        assert_eq!(r.status, 400, "{body} -> {}", r.text);
        assert_param(&r, param);
    }
    assert_eq!(
        app.snapshot().await,
        before,
        "a refused create stores nothing"
    );

    // At the ceilings exactly, the same request passes.
    let r = app
        .post("/v1/keys")
        .key(&admin)
        .json(json!({
            "scopes": ["posts:read"],
            "rate_limit": {"per_minute": 60, "per_day": 10000},
            "allowed_ips": ["10.0.0.0/8", "2001:db8::/32"],
            "allowed_origins": ["https://*.example.com"],
            "expires_at": at(&app, 3600).to_string(),
        }))
        .send()
        .await;
    created(&r);
    assert_eq!(
        r.body["rate_limit"],
        json!({"per_minute": 60, "per_day": 10000})
    );
}

both!(
    tests: create_returns_the_key_object_with_its_secret_shown_once,
    answers_with_a_secret_are_not_stored_by_caches,
    aliases_are_stored_as_what_they_expand_to,
    invalid_create_requests_name_the_param_and_store_nothing,
);
