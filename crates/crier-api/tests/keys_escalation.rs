//! API keys over HTTP, no privilege escalation: a key cannot create or update a key wider,
//! longer-lived or more open than itself, nor a test-mode key a live one.
//!
//! The key format itself is covered in crier-core; the helpers are in `common/keys.rs`.

mod common;

use common::keys::{HOUR, assert_message_mentions, assert_status, at, created, scope_set, set, ts};
use common::{KeySpec, TestApp, both};
use crier_core::{KeyMode, Scope};
use crier_store::KeyRow;
use serde_json::{Value, json};

// ---- No privilege escalation ----

/// A creator restricted in every dimension: three scopes, 50/min and 1,000/day, 10.0.0.0/8,
/// the given origins, expiring in a day. Its requests come from 10.1.2.3.
async fn restricted_creator(app: &TestApp, origins: &[&str]) -> (String, KeyRow) {
    app.key(KeySpec {
        scopes: vec![Scope::KeysRead, Scope::KeysWrite, Scope::PostsRead],
        per_minute: Some(50),
        per_day: Some(1000),
        allowed_ips: Some(vec!["10.0.0.0/8".into()]),
        allowed_origins: Some(origins.iter().map(|o| (*o).to_owned()).collect()),
        expires_at: Some(at(app, 24 * 3600)),
        ..KeySpec::default()
    })
    .await
}

/// `base` with `field` replaced by `value`.
fn with(base: &Value, field: &str, value: Value) -> Value {
    let mut v = base.clone();
    v[field] = value;
    v
}

async fn a_key_cannot_create_a_key_wider_than_itself() {
    let app = TestApp::new().await;
    let (creator, _) = restricted_creator(&app, &["https://*.example.com"]).await;
    // Narrower than the creator in every dimension, so each case below is wider in exactly
    // the one it changes, and the message must name that one.
    let base = json!({
        "scopes": ["posts:read"],
        "rate_limit": {"per_minute": 50, "per_day": 1000},
        "allowed_ips": ["10.1.0.0/16"],
        "allowed_origins": ["https://app.example.com", "https://*.eu.example.com"],
        "expires_at": at(&app, 3600).to_string(),
    });
    let later = at(&app, 2 * 24 * 3600).to_string();
    let cases = [
        (
            with(&base, "scopes", json!(["posts:read", "posts:write"])),
            "posts:write",
        ),
        (
            with(&base, "scopes", json!(["workspace:write"])),
            "workspace:write",
        ),
        (
            with(
                &base,
                "rate_limit",
                json!({"per_minute": 51, "per_day": 1000}),
            ),
            "rate limits",
        ),
        (
            with(
                &base,
                "rate_limit",
                json!({"per_minute": 50, "per_day": 1001}),
            ),
            "rate limits",
        ),
        (with(&base, "expires_at", json!(later)), "outlives"),
        (
            with(&base, "allowed_ips", json!(["0.0.0.0/0"])),
            "addresses",
        ),
        (
            with(&base, "allowed_ips", json!(["10.0.0.0/7"])),
            "addresses",
        ),
        (
            with(&base, "allowed_ips", json!(["10.1.0.0/16", "192.168.0.1"])),
            "addresses",
        ),
        // An explicit empty list means "anywhere", which is wider than 10.0.0.0/8.
        (with(&base, "allowed_ips", json!([])), "addresses"),
        (with(&base, "allowed_origins", json!([])), "origins"),
        (
            with(&base, "allowed_origins", json!(["https://evil.test"])),
            "origins",
        ),
        // `*.example.com` does not cover the apex, nor another scheme.
        (
            with(&base, "allowed_origins", json!(["https://example.com"])),
            "origins",
        ),
        (
            with(&base, "allowed_origins", json!(["http://app.example.com"])),
            "origins",
        ),
    ];
    let before = app.snapshot().await;
    for (body, reason) in cases {
        let r = app
            .post("/v1/keys")
            .key(&creator)
            .from_ip("10.1.2.3")
            .json(body.clone())
            .send()
            .await;
        assert_eq!(r.status, 403, "{body} -> {}", r.text);
        r.assert_error(403, "forbidden_scope");
        assert_message_mentions(&r, reason);
    }
    assert_eq!(
        app.snapshot().await,
        before,
        "a refused create stores nothing"
    );

    // The base itself is fine.
    let r = app
        .post("/v1/keys")
        .key(&creator)
        .from_ip("10.1.2.3")
        .json(base)
        .send()
        .await;
    created(&r);
}

async fn a_child_inherits_the_restrictions_its_creator_omits() {
    let app = TestApp::new().await;
    let (creator, creator_row) = restricted_creator(&app, &["https://app.example.com"]).await;
    let r = app
        .post("/v1/keys")
        .key(&creator)
        .from_ip("10.1.2.3")
        .json(json!({"scopes": ["keys:read"]}))
        .send()
        .await;
    let (_, child) = created(&r);
    assert_eq!(r.body["allowed_ips"], json!(["10.0.0.0/8"]));
    assert_eq!(
        r.body["allowed_origins"],
        json!(["https://app.example.com"])
    );
    assert_eq!(
        ts(&r.body["expires_at"]).as_millisecond(),
        creator_row.expires_at.unwrap()
    );
    assert_eq!(
        r.body["rate_limit"],
        json!({"per_minute": 50, "per_day": 1000})
    );
    assert_eq!(r.body["mode"], "live");

    // An explicit `null` asks for a key that never expires: wider than its creator, refused.
    let before = app.snapshot().await;
    let r = app
        .post("/v1/keys")
        .key(&creator)
        .from_ip("10.1.2.3")
        .json(json!({"scopes": ["keys:read"], "expires_at": null}))
        .send()
        .await;
    r.assert_error(403, "forbidden_scope");
    assert_eq!(app.snapshot().await, before);

    // The inherited restrictions are enforced, not just shown.
    assert_status(
        &app.get("/v1/keys")
            .key(&child)
            .from_ip("10.9.9.9")
            .send()
            .await,
        200,
    );
    app.get("/v1/keys")
        .key(&child)
        .from_ip("192.0.2.1")
        .send()
        .await
        .assert_error(403, "ip_not_allowed");
    app.get("/v1/keys")
        .key(&child)
        .from_ip("10.9.9.9")
        .header("origin", "https://evil.test")
        .send()
        .await
        .assert_error(403, "origin_not_allowed");
    app.clock.advance(25 * HOUR);
    let r = app
        .get("/v1/keys")
        .key(&child)
        .from_ip("10.9.9.9")
        .send()
        .await;
    r.assert_error(401, "unauthorized");
    assert_message_mentions(&r, "expired");
}

/// A wildcard origin rule must cover itself, or a creator with one can neither give a child
/// its own restrictions (the documented default) nor update or rotate any key carrying them,
/// itself included. Fails today: `crier_core::net::OriginRule::covers` requires the other
/// host to be strictly longer, so `https://*.example.com` does not cover itself.
async fn a_key_with_a_wildcard_origin_can_pass_it_on_and_rotate_itself() {
    let app = TestApp::new().await;
    let (creator, row) = restricted_creator(&app, &["https://*.example.com"]).await;
    let r = app
        .post("/v1/keys")
        .key(&creator)
        .from_ip("10.1.2.3")
        .json(json!({"scopes": ["posts:read"]}))
        .send()
        .await;
    created(&r);
    assert_eq!(r.body["allowed_origins"], json!(["https://*.example.com"]));
    let r = app
        .post(&format!("/v1/keys/{}/rotate", row.id))
        .key(&creator)
        .from_ip("10.1.2.3")
        .send()
        .await;
    created(&r);
}

async fn a_test_mode_key_cannot_create_a_live_key() {
    let app = TestApp::new().await;
    let (test_key, _) = app
        .key(KeySpec {
            scopes: vec![Scope::KeysRead, Scope::KeysWrite],
            mode: Some(KeyMode::Test),
            ..KeySpec::default()
        })
        .await;
    assert!(test_key.starts_with("sk_test_"));
    let before = app.snapshot().await;
    let r = app
        .post("/v1/keys")
        .key(&test_key)
        .json(json!({"scopes": ["keys:read"], "mode": "live"}))
        .send()
        .await;
    r.assert_error(403, "forbidden_scope");
    assert_message_mentions(&r, "test-mode");
    assert_eq!(app.snapshot().await, before);

    // Without a mode the child is a test key like its creator.
    let r = app
        .post("/v1/keys")
        .key(&test_key)
        .json(json!({"scopes": ["keys:read"]}))
        .send()
        .await;
    let (_, secret) = created(&r);
    assert!(secret.starts_with("sk_test_"), "{secret}");
    assert_eq!(r.body["mode"], "test");
}

async fn updates_cannot_widen_a_key_beyond_the_caller() {
    let app = TestApp::new().await;
    let admin = app.admin_key().await;
    let (narrow, _) = app
        .key(KeySpec {
            scopes: vec![Scope::KeysRead, Scope::KeysWrite, Scope::PostsRead],
            per_minute: Some(50),
            ..KeySpec::default()
        })
        .await;
    let (_, child) = app
        .key(KeySpec {
            scopes: vec![Scope::PostsRead],
            per_minute: Some(10),
            ..KeySpec::default()
        })
        .await;
    let (_, wide) = app
        .key(KeySpec {
            scopes: Scope::ALL.to_vec(),
            ..KeySpec::default()
        })
        .await;
    let child_path = format!("/v1/keys/{}", child.id);
    let wide_path = format!("/v1/keys/{}", wide.id);
    let before = app.snapshot().await;

    // Adding a scope the caller lacks, or a limit above its own.
    for (body, reason) in [
        (
            json!({"scopes": ["posts:read", "posts:write"]}),
            "posts:write",
        ),
        (json!({"rate_limit": {"per_minute": 51}}), "rate limits"),
    ] {
        let r = app
            .patch(&child_path)
            .key(&narrow)
            .json(body.clone())
            .send()
            .await;
        assert_eq!(r.status, 403, "{body} -> {}", r.text);
        r.assert_error(403, "forbidden_scope");
        assert_message_mentions(&r, reason);
    }
    // Touching a key wider than the caller at all: update, rotate, revoke.
    app.patch(&wide_path)
        .key(&narrow)
        .json(json!({"name": "mine now"}))
        .send()
        .await
        .assert_error(403, "forbidden_scope");
    app.post(&format!("{wide_path}/rotate"))
        .key(&narrow)
        .json(json!({"overlap_seconds": 60}))
        .send()
        .await
        .assert_error(403, "forbidden_scope");
    app.delete(&wide_path)
        .key(&narrow)
        .send()
        .await
        .assert_error(403, "forbidden_scope");
    assert_eq!(
        app.snapshot().await,
        before,
        "refused changes store nothing"
    );
    assert_status(&app.get("/v1/keys").key(&admin).send().await, 200);

    // Within its own bounds the narrow key may manage the child.
    let r = app
        .patch(&child_path)
        .key(&narrow)
        .json(json!({"name": "renamed", "scopes": ["posts:read", "keys:read"]}))
        .send()
        .await;
    assert_status(&r, 200);
    assert_eq!(
        scope_set(&r.body["scopes"]),
        set(&["posts:read", "keys:read"])
    );
}

async fn an_expiring_key_cannot_give_a_key_a_longer_life() {
    let app = TestApp::new().await;
    let (creator, creator_row) = app
        .key(KeySpec {
            scopes: vec![Scope::KeysRead, Scope::KeysWrite],
            expires_at: Some(at(&app, 24 * 3600)),
            ..KeySpec::default()
        })
        .await;
    let r = app
        .post("/v1/keys")
        .key(&creator)
        .json(json!({"scopes": ["keys:read"], "expires_at": at(&app, 3600).to_string()}))
        .send()
        .await;
    let (id, _) = created(&r);
    let path = format!("/v1/keys/{id}");
    let before = app.snapshot().await;
    for body in [
        json!({"expires_at": null}),
        json!({"expires_at": at(&app, 2 * 24 * 3600).to_string()}),
    ] {
        let r = app
            .patch(&path)
            .key(&creator)
            .json(body.clone())
            .send()
            .await;
        assert_eq!(r.status, 403, "{body} -> {}", r.text);
        r.assert_error(403, "forbidden_scope");
        assert_message_mentions(&r, "outlives");
    }
    assert_eq!(app.snapshot().await, before);

    // Up to the creator's own expiry is fine.
    let r = app
        .patch(&path)
        .key(&creator)
        .json(json!({"expires_at": at(&app, 24 * 3600).to_string()}))
        .send()
        .await;
    assert_status(&r, 200);
    assert_eq!(
        ts(&r.body["expires_at"]).as_millisecond(),
        creator_row.expires_at.unwrap()
    );
}

both!(
    tests: a_key_cannot_create_a_key_wider_than_itself,
    a_child_inherits_the_restrictions_its_creator_omits,
    a_key_with_a_wildcard_origin_can_pass_it_on_and_rotate_itself,
    a_test_mode_key_cannot_create_a_live_key,
    updates_cannot_widen_a_key_beyond_the_caller,
    an_expiring_key_cannot_give_a_key_a_longer_life,
);
