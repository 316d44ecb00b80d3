//! API keys over HTTP, rotation: the twin, the overlap and its cap, no revival.
//!
//! The key format itself is covered in crier-core; the helpers are in `common/keys.rs`.

mod common;

use std::time::Duration;

use common::keys::{
    HOUR, MINUTE, assert_message_mentions, assert_param, assert_status, at, created, stored, ts,
};
use common::{KeySpec, TestApp, both};
use crier_core::{Clock, Scope};
use serde_json::{Value, json};

// ---- Rotate ----

async fn rotation_issues_a_twin_and_lets_the_old_key_overlap() {
    let app = TestApp::new().await;
    let admin = app.admin_key().await;
    let r = app
        .post("/v1/keys")
        .key(&admin)
        .json(json!({
            "name": "ci",
            "description": "deploys",
            "scopes": ["keys:read", "posts:read"],
            "rate_limit": {"per_minute": 30, "per_day": 5000},
            "allowed_ips": ["10.0.0.0/8"],
            "allowed_origins": ["https://app.example.com"],
            "expires_at": at(&app, 30 * 24 * 3600).to_string(),
        }))
        .send()
        .await;
    let (old_id, old_secret) = created(&r);
    let old = r.body.clone();
    assert_status(
        &app.get("/v1/keys")
            .key(&old_secret)
            .from_ip("10.1.2.3")
            .send()
            .await,
        200,
    );
    app.clock.advance(MINUTE);
    let rotated_at = app.clock.now();

    let r = app
        .post(&format!("/v1/keys/{old_id}/rotate"))
        .key(&admin)
        .json(json!({"overlap_seconds": 3600}))
        .send()
        .await;
    let (new_id, new_secret) = created(&r);
    let new = &r.body;
    assert_ne!(new_id, old_id);
    assert_ne!(new_secret, old_secret);
    assert!(new_secret.starts_with("sk_live_") && new_secret.len() == 44);
    assert_eq!(new["prefix"], &new_secret[..12]);
    for field in [
        "name",
        "description",
        "mode",
        "scopes",
        "rate_limit",
        "allowed_ips",
        "allowed_origins",
        "expires_at",
    ] {
        assert_eq!(new[field], old[field], "`{field}` carried over");
    }
    assert_eq!(ts(&new["created_at"]), rotated_at);
    assert_eq!(new["revoked_at"], Value::Null);
    assert_eq!(new["last_used_at"], Value::Null);

    let r = app
        .get(&format!("/v1/keys/{old_id}"))
        .key(&admin)
        .send()
        .await;
    assert_eq!(r.body["replaced_by"], new_id.as_str());
    assert_eq!(
        ts(&r.body["expires_at"]),
        at(&app, 3600),
        "the old key expires after the overlap"
    );
    assert_eq!(r.body["revoked_at"], Value::Null);

    // Both work during the overlap; the new one under the same restrictions.
    for secret in [&old_secret, &new_secret] {
        assert_status(
            &app.get("/v1/keys")
                .key(secret)
                .from_ip("10.1.2.3")
                .send()
                .await,
            200,
        );
    }
    app.get("/v1/keys")
        .key(&new_secret)
        .from_ip("192.0.2.1")
        .send()
        .await
        .assert_error(403, "ip_not_allowed");
    app.clock.advance(HOUR - Duration::from_secs(1));
    assert_status(
        &app.get("/v1/keys")
            .key(&old_secret)
            .from_ip("10.1.2.3")
            .send()
            .await,
        200,
    );
    app.clock.advance(Duration::from_secs(2));
    let r = app
        .get("/v1/keys")
        .key(&old_secret)
        .from_ip("10.1.2.3")
        .send()
        .await;
    r.assert_error(401, "unauthorized");
    assert_message_mentions(&r, "expired");
    assert_status(
        &app.get("/v1/keys")
            .key(&new_secret)
            .from_ip("10.1.2.3")
            .send()
            .await,
        200,
    );

    // A key is rotated once; its replacement is what rotates next.
    let before = app.snapshot().await;
    app.post(&format!("/v1/keys/{old_id}/rotate"))
        .key(&admin)
        .json(json!({"overlap_seconds": 60}))
        .send()
        .await
        .assert_error(409, "conflict");
    assert_eq!(app.snapshot().await, before);
    let r = app
        .post(&format!("/v1/keys/{new_id}/rotate"))
        .key(&admin)
        .send()
        .await;
    created(&r);
}

/// A rotated-out key ends when its overlap does: it cannot be given a new life (or any other
/// change) by PATCH, only revoked sooner.
async fn a_rotated_out_key_cannot_be_revived_but_can_be_revoked() {
    let app = TestApp::new().await;
    let admin = app.admin_key().await;
    let (old, row) = app
        .key(KeySpec {
            scopes: vec![Scope::KeysRead],
            ..KeySpec::default()
        })
        .await;
    let r = app
        .post(&format!("/v1/keys/{}/rotate", row.id))
        .key(&admin)
        .json(json!({"overlap_seconds": 60}))
        .send()
        .await;
    let (new_id, new) = created(&r);
    let path = format!("/v1/keys/{}", row.id);

    let before = app.snapshot().await;
    for change in [
        json!({"expires_at": null}),
        json!({"expires_at": at(&app, 86_400).to_string()}),
        json!({"name": "still here"}),
    ] {
        let r = app
            .patch(&path)
            .key(&admin)
            .json(change.clone())
            .send()
            .await;
        r.assert_error(409, "conflict");
        assert_message_mentions(&r, "replaced");
        assert_eq!(app.snapshot().await, before, "{change}");
    }
    // The overlap ends as rotation set it.
    app.clock.advance(2 * MINUTE);
    app.get("/v1/keys")
        .key(&old)
        .send()
        .await
        .assert_error(401, "unauthorized");
    assert_status(&app.get("/v1/keys").key(&new).send().await, 200);
    // The replacement is a key like any other.
    assert_status(
        &app.patch(&format!("/v1/keys/{new_id}"))
            .key(&admin)
            .json(json!({"name": "renamed"}))
            .send()
            .await,
        200,
    );

    // Revoking a replaced key is still allowed.
    let (old2, row2) = app
        .key(KeySpec {
            scopes: vec![Scope::KeysRead],
            ..KeySpec::default()
        })
        .await;
    created(
        &app.post(&format!("/v1/keys/{}/rotate", row2.id))
            .key(&admin)
            .json(json!({"overlap_seconds": 3600}))
            .send()
            .await,
    );
    assert_status(&app.get("/v1/keys").key(&old2).send().await, 200);
    let r = app
        .delete(&format!("/v1/keys/{}", row2.id))
        .key(&admin)
        .send()
        .await;
    assert_status(&r, 200);
    assert!(r.body["revoked_at"].is_string(), "{}", r.text);
    app.get("/v1/keys")
        .key(&old2)
        .send()
        .await
        .assert_error(401, "unauthorized");
}

async fn rotation_without_overlap_ends_the_old_key_at_once_and_caps_the_overlap() {
    let app = TestApp::new().await;
    let admin = app.admin_key().await;
    let (old, row) = app
        .key(KeySpec {
            scopes: vec![Scope::KeysRead],
            ..KeySpec::default()
        })
        .await;
    let path = format!("/v1/keys/{}/rotate", row.id);
    assert_status(&app.get("/v1/keys").key(&old).send().await, 200);

    let before = app.snapshot().await;
    let r = app
        .post(&path)
        .key(&admin)
        .json(json!({"overlap_seconds": 604_801}))
        .send()
        .await;
    assert_param(&r, "overlap_seconds");
    let r = app
        .post(&path)
        .key(&admin)
        .json(json!({"overlap_seconds": -1}))
        .send()
        .await;
    assert_param(&r, "overlap_seconds");
    // A body of whitespace is not a JSON text: invalid JSON, not an empty body (schemathesis
    // sent `\x0c` and got a rotation, later ` ` to PATCH /v1/keys/{id} and got a 200). Form
    // feed is not even JSON's whitespace.
    for raw in ["\x0c", " \x0c\n", " ", "\r\n"] {
        let r = app
            .post(&path)
            .key(&admin)
            .header("content-type", "application/json")
            .raw(raw)
            .send()
            .await;
        r.assert_error(400, "invalid_request");
    }
    assert_eq!(app.snapshot().await, before);
    assert_status(&app.get("/v1/keys").key(&old).send().await, 200);

    // No body: the default overlap is 0.
    let r = app.post(&path).key(&admin).send().await;
    let (_, new) = created(&r);
    let r = app.get("/v1/keys").key(&old).send().await;
    r.assert_error(401, "unauthorized");
    assert_message_mentions(&r, "expired");
    assert_status(&app.get("/v1/keys").key(&new).send().await, 200);

    // Seven days is the most.
    let (_, row) = app
        .key(KeySpec {
            scopes: vec![Scope::KeysRead],
            ..KeySpec::default()
        })
        .await;
    let r = app
        .post(&format!("/v1/keys/{}/rotate", row.id))
        .key(&admin)
        .json(json!({"overlap_seconds": 604_800}))
        .send()
        .await;
    created(&r);
    assert_eq!(
        stored(&app, &row.id).await.expires_at,
        Some(at(&app, 604_800).as_millisecond())
    );
}

both!(
    tests: rotation_issues_a_twin_and_lets_the_old_key_overlap,
    rotation_without_overlap_ends_the_old_key_at_once_and_caps_the_overlap,
    a_rotated_out_key_cannot_be_revived_but_can_be_revoked,
);
