//! API keys over HTTP, updates: every mutable field, taking effect on the next request.
//!
//! The key format itself is covered in crier-core; the helpers are in `common/keys.rs`.

mod common;

use std::time::Duration;

use common::keys::{
    assert_message_mentions, assert_param, assert_status, at, scope_set, set, stored, ts,
};
use common::{KeySpec, NowMs, TestApp, both};
use crier_core::Scope;
use serde_json::{Value, json};

// ---- Update ----

async fn patch_changes_every_mutable_field_and_clears_expiry_with_null() {
    let app = TestApp::new().await;
    let admin = app.admin_key().await;
    let (key, row) = app
        .key(KeySpec {
            scopes: vec![Scope::KeysRead, Scope::PostsRead],
            ..KeySpec::default()
        })
        .await;
    let path = format!("/v1/keys/{}", row.id);
    let expires = at(&app, 24 * 3600);
    app.clock.advance(Duration::from_secs(5));
    let r = app
        .patch(&path)
        .key(&admin)
        .json(json!({
            "name": "renamed",
            "description": "now described",
            "scopes": ["keys:read", "insights:read"],
            "rate_limit": {"per_minute": 5, "per_day": 500},
            "allowed_ips": ["10.0.0.0/8", "2001:db8::/32"],
            "allowed_origins": ["https://app.example.com"],
            "expires_at": expires.to_string(),
        }))
        .send()
        .await;
    assert_status(&r, 200);
    let b = &r.body;
    assert_eq!(b["id"], row.id.as_str());
    assert_eq!(b["name"], "renamed");
    assert_eq!(b["description"], "now described");
    assert_eq!(
        scope_set(&b["scopes"]),
        set(&["keys:read", "analytics:read", "accounts:read"])
    );
    assert_eq!(b["rate_limit"], json!({"per_minute": 5, "per_day": 500}));
    assert_eq!(b["allowed_ips"], json!(["10.0.0.0/8", "2001:db8::/32"]));
    assert_eq!(b["allowed_origins"], json!(["https://app.example.com"]));
    assert_eq!(ts(&b["expires_at"]), expires);
    assert_eq!(b["prefix"], row.prefix.as_str(), "the secret is unchanged");
    assert!(b.get("key").is_none());

    let s = stored(&app, &row.id).await;
    assert_eq!(s.name, "renamed");
    assert_eq!(s.description, "now described");
    assert_eq!((s.per_minute, s.per_day), (5, 500));
    assert_eq!(s.allowed_ips, ["10.0.0.0/8", "2001:db8::/32"]);
    assert_eq!(s.allowed_origins, ["https://app.example.com"]);
    assert_eq!(s.expires_at, Some(expires.as_millisecond()));
    assert_eq!(s.updated_at, app.clock.now_ms_value());
    assert_eq!(s.digest, row.digest);

    // The next request already runs under the new limits and restrictions.
    let r = app
        .get("/v1/keys")
        .key(&key)
        .from_ip("10.1.2.3")
        .send()
        .await;
    assert_status(&r, 200);
    assert_eq!(r.header("x-ratelimit-limit"), Some("5"));

    // `null` clears the expiry; fields not sent stay as they are.
    let r = app
        .patch(&path)
        .key(&admin)
        .json(json!({"expires_at": null}))
        .send()
        .await;
    assert_status(&r, 200);
    assert_eq!(r.body["expires_at"], Value::Null);
    assert_eq!(r.body["name"], "renamed");
    assert_eq!(
        r.body["rate_limit"],
        json!({"per_minute": 5, "per_day": 500})
    );
    assert_eq!(stored(&app, &row.id).await.expires_at, None);

    // Invalid updates name the field and change nothing.
    let before = app.snapshot().await;
    for (body, param) in [
        (
            json!({"expires_at": at(&app, -1).to_string()}),
            "expires_at",
        ),
        (json!({"name": ""}), "name"),
        (json!({"scopes": []}), "scopes"),
        (
            json!({"rate_limit": {"per_minute": 0}}),
            "rate_limit.per_minute",
        ),
        (json!({"allowed_ips": ["300.1.1.1"]}), "allowed_ips"),
        (
            json!({"allowed_origins": ["app.example.com"]}),
            "allowed_origins",
        ),
        (json!({"mode": "test"}), "mode"),
    ] {
        let r = app.patch(&path).key(&admin).json(body.clone()).send().await;
        assert_eq!(r.status, 400, "{body} -> {}", r.text);
        assert_param(&r, param);
    }
    assert_eq!(app.snapshot().await, before);
}

async fn an_update_takes_effect_on_the_very_next_request() {
    let app = TestApp::new().await;
    let admin = app.admin_key().await;

    // Scopes: the key's record is cached by its first request; removing keys:read must reach
    // the cache, not wait for its expiry.
    let (key, row) = app
        .key(KeySpec {
            scopes: vec![Scope::KeysRead, Scope::PostsRead],
            ..KeySpec::default()
        })
        .await;
    assert_status(&app.get("/v1/keys").key(&key).send().await, 200);
    let r = app
        .patch(&format!("/v1/keys/{}", row.id))
        .key(&admin)
        .json(json!({"scopes": ["posts:read"]}))
        .send()
        .await;
    assert_status(&r, 200);
    let r = app.get("/v1/keys").key(&key).send().await;
    r.assert_error(403, "forbidden_scope");
    assert_message_mentions(&r, "keys:read");
    assert_status(&app.get("/v1/workspace").key(&key).send().await, 200);

    // Addresses: narrowing allowed_ips refuses the old address on the next request.
    let (key, row) = app
        .key(KeySpec {
            scopes: vec![Scope::KeysRead],
            allowed_ips: Some(vec!["10.0.0.0/8".into()]),
            ..KeySpec::default()
        })
        .await;
    assert_status(
        &app.get("/v1/keys")
            .key(&key)
            .from_ip("10.1.2.3")
            .send()
            .await,
        200,
    );
    let r = app
        .patch(&format!("/v1/keys/{}", row.id))
        .key(&admin)
        .json(json!({"allowed_ips": ["192.168.0.0/16"]}))
        .send()
        .await;
    assert_status(&r, 200);
    let r = app
        .get("/v1/keys")
        .key(&key)
        .from_ip("10.1.2.3")
        .send()
        .await;
    r.assert_error(403, "ip_not_allowed");
    assert_message_mentions(&r, "10.1.2.3");
    assert_status(
        &app.get("/v1/keys")
            .key(&key)
            .from_ip("192.168.4.5")
            .send()
            .await,
        200,
    );
}

/// The request is checked before the key's state: a malformed update is `400` on a revoked
/// key and on one a rotation replaced (as it is on a live one), and only a well-formed one
/// meets the `409` of the state. Neither changes anything.
async fn a_malformed_update_is_refused_before_the_state_of_the_key() {
    let app = TestApp::new().await;
    let admin = app.admin_key().await;
    let spec = || KeySpec {
        scopes: vec![Scope::PostsRead],
        ..KeySpec::default()
    };
    let (_, revoked) = app.key(spec()).await;
    let (_, rotated) = app.key(spec()).await;
    assert_status(
        &app.delete(&format!("/v1/keys/{}", revoked.id))
            .key(&admin)
            .send()
            .await,
        200,
    );
    assert_status(
        &app.post(&format!("/v1/keys/{}/rotate", rotated.id))
            .key(&admin)
            .json(json!({"overlap_seconds": 3600}))
            .send()
            .await,
        201,
    );
    let before = app.snapshot().await;
    for row in [&revoked, &rotated] {
        let path = format!("/v1/keys/{}", row.id);
        for (body, param) in [
            (json!({"name": ""}), "name"),
            (json!({"scopes": []}), "scopes"),
            (
                json!({"rate_limit": {"per_minute": 0}}),
                "rate_limit.per_minute",
            ),
            (json!({"allowed_ips": ["300.1.1.1"]}), "allowed_ips"),
            (
                json!({"allowed_brand_ids": ["not-a-brand"]}),
                "allowed_brand_ids",
            ),
            (
                json!({"expires_at": at(&app, -1).to_string()}),
                "expires_at",
            ),
        ] {
            let r = app.patch(&path).key(&admin).json(body.clone()).send().await;
            assert_eq!(r.status, 400, "{path} {body} -> {}", r.text);
            assert_param(&r, param);
        }
        app.patch(&path)
            .key(&admin)
            .json(json!({"name": "back from the dead"}))
            .send()
            .await
            .assert_error(409, "conflict");
    }
    assert_eq!(app.snapshot().await, before);
}

both!(
    tests: patch_changes_every_mutable_field_and_clears_expiry_with_null,
    an_update_takes_effect_on_the_very_next_request,
    a_malformed_update_is_refused_before_the_state_of_the_key,
);
