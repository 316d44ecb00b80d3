mod common;

// The API key lifecycle over HTTP: create, read and list, update, revoke, rotate and expire;
// the no-escalation rule; usage written in batches off the request path; cache invalidation
// within this process and across processes; IP, origin and rate-limit enforcement; the per-IP
// throttle on failed authentications. The key format itself is covered in crier-core.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{KeySpec, NowMs, Response, TestApp, both};
use crier_api::ApiConfig;
use crier_api::keys::{self, CreateKey};
use crier_core::ids::KeyId;
use crier_core::{Clock, KeyDigest, KeyMode, Scope, SecretKey};
use crier_store::{Actor, AuditEntry, KeyRow};
use jiff::Timestamp;
use serde_json::{Value, json};
use sqlx::ConnectOptions;
use tokio_util::sync::CancellationToken;

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

/// The clock's time plus `secs` seconds.
fn at(app: &TestApp, secs: i64) -> Timestamp {
    Timestamp::from_millisecond(app.clock.now_ms_value() + secs * 1000).unwrap()
}

fn ts(v: &Value) -> Timestamp {
    v.as_str()
        .unwrap_or_else(|| panic!("not a time: {v}"))
        .parse()
        .unwrap()
}

fn scope_set(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn key_id(r: &Response) -> KeyId {
    KeyId::parse(r.body["id"].as_str().unwrap()).unwrap()
}

/// `(id, secret)` of a `201` create or rotate response.
#[track_caller]
fn created(r: &Response) -> (String, String) {
    assert_eq!(r.status, 201, "{}", r.text);
    (
        r.body["id"].as_str().unwrap().to_owned(),
        r.body["key"].as_str().unwrap().to_owned(),
    )
}

#[track_caller]
fn assert_status(r: &Response, status: u16) {
    assert_eq!(r.status.as_u16(), status, "{}", r.text);
}

#[track_caller]
fn assert_message_mentions(r: &Response, needle: &str) {
    let m = r.body["error"]["message"].as_str().unwrap();
    assert!(
        m.contains(needle),
        "message {m:?} should mention {needle:?}"
    );
}

#[track_caller]
fn assert_param(r: &Response, param: &str) {
    r.assert_error(400, "invalid_request");
    assert_eq!(r.body["error"]["param"], param, "{}", r.text);
}

/// A stored key of this app's workspace, read directly from storage.
async fn stored(app: &TestApp, id: &KeyId) -> KeyRow {
    app.store
        .get_key(&app.workspace.id, id)
        .await
        .unwrap()
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// Create
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// No privilege escalation
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Read, list, usage
// ---------------------------------------------------------------------------------------------

async fn the_list_is_newest_first_and_pages_with_limit_and_offset() {
    let app = TestApp::new().await;
    let admin = app.admin_key().await; // named "test key", the oldest
    for i in 0..7 {
        app.clock.advance(Duration::from_secs(1));
        let r = app
            .post("/v1/keys")
            .key(&admin)
            .json(json!({"name": format!("k{i}"), "scopes": ["posts:read"]}))
            .send()
            .await;
        created(&r);
    }
    let mut seen = Vec::new();
    for (offset, names, more) in [
        (0, vec!["k6", "k5", "k4"], true),
        (3, vec!["k3", "k2", "k1"], true),
        (6, vec!["k0", "test key"], false),
    ] {
        let r = app
            .get(&format!("/v1/keys?limit=3&offset={offset}"))
            .key(&admin)
            .send()
            .await;
        assert_status(&r, 200);
        let data = r.body["data"].as_array().unwrap();
        let got: Vec<&str> = data.iter().map(|k| k["name"].as_str().unwrap()).collect();
        assert_eq!(got, names, "offset {offset}");
        assert_eq!(r.body["has_more"], more, "offset {offset}");
        seen.extend(data.iter().map(|k| ts(&k["created_at"])));
    }
    assert!(seen.windows(2).all(|w| w[0] > w[1]), "{seen:?}");

    let all = app.get("/v1/keys").key(&admin).send().await;
    assert_eq!(all.body["data"].as_array().unwrap().len(), 8);
    assert_eq!(all.body["has_more"], false);
    assert_param(
        &app.get("/v1/keys?limit=51").key(&admin).send().await,
        "limit",
    );
    assert_param(
        &app.get("/v1/keys?limit=0").key(&admin).send().await,
        "limit",
    );
}

async fn another_workspaces_key_does_not_exist() {
    let app = TestApp::new().await;
    let admin = app.admin_key().await;
    let other = app.other_workspace("globex").await;
    let (_, theirs) = app
        .key_in(
            &other,
            KeySpec {
                scopes: vec![Scope::PostsRead],
                ..KeySpec::default()
            },
        )
        .await;
    let path = format!("/v1/keys/{}", theirs.id);
    app.get(&path)
        .key(&admin)
        .send()
        .await
        .assert_error(404, "not_found");
    app.patch(&path)
        .key(&admin)
        .json(json!({"name": "stolen"}))
        .send()
        .await
        .assert_error(404, "not_found");
    app.delete(&path)
        .key(&admin)
        .send()
        .await
        .assert_error(404, "not_found");
    app.post(&format!("{path}/rotate"))
        .key(&admin)
        .send()
        .await
        .assert_error(404, "not_found");
    let row = app
        .store
        .get_key(&other.id, &theirs.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row, theirs, "untouched");
    app.get("/v1/keys/key_nonsense")
        .key(&admin)
        .send()
        .await
        .assert_error(404, "not_found");
}

async fn last_used_at_and_usage_are_written_in_batches() {
    let app = TestApp::new().await;
    let admin = app.admin_key().await;
    let (user, user_row) = app
        .key(KeySpec {
            scopes: vec![Scope::KeysRead],
            ..KeySpec::default()
        })
        .await;
    let path = format!("/v1/keys/{}", user_row.id);
    for _ in 0..3 {
        app.clock.advance(Duration::from_secs(10));
        assert_status(&app.get("/v1/keys").key(&user).send().await, 200);
    }
    let last_request = app.clock.now();
    app.clock.advance(Duration::from_secs(10));

    // Nothing written yet: the requests were counted in memory only.
    let r = app.get(&path).key(&admin).send().await;
    assert_eq!(r.body["last_used_at"], Value::Null, "{}", r.text);
    let row = stored(&app, &user_row.id).await;
    assert_eq!((row.last_used_at, row.request_count), (None, 0));

    app.state.flush_usage().await;
    let r = app.get(&path).key(&admin).send().await;
    assert_eq!(ts(&r.body["last_used_at"]), last_request);
    let row = stored(&app, &user_row.id).await;
    assert_eq!(row.request_count, 3);

    // The workspace view is cached for 2 s of real time (the manual clock does not move it),
    // so a view read before the flush could be served stale. This test reads the workspace
    // for the first time only after the flush: the cache is empty, the view comes from
    // storage, and it must hold exactly what was flushed: the user's 3 requests and the
    // admin's one GET before the flush. The admin's later requests (including this one) are
    // still only in memory.
    let r = app.get("/v1/workspace").key(&admin).send().await;
    assert_status(&r, 200);
    assert_eq!(r.body["usage"]["requests"], 4, "{}", r.text);
    assert_eq!(r.body["usage"]["period"], "2026-11");
}

async fn data_version(conn: &mut sqlx::SqliteConnection) -> i64 {
    sqlx::query_scalar("PRAGMA data_version")
        .fetch_one(conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn an_authenticated_read_writes_nothing_to_the_database() {
    let app = TestApp::new().await;
    let (key, row) = app
        .key(KeySpec {
            scopes: vec![Scope::KeysRead],
            ..KeySpec::default()
        })
        .await;
    // `data_version` changes when another connection commits to the file, so a separate
    // connection sees every write the app's pools make.
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(app.db_path())
        .read_only(true)
        .connect()
        .await
        .unwrap();
    let before = data_version(&mut conn).await;
    for i in 0..50 {
        let path = match i % 3 {
            0 => "/v1/keys".to_owned(),
            1 => "/v1/workspace".to_owned(),
            _ => format!("/v1/keys/{}", row.id),
        };
        assert_status(&app.get(&path).key(&key).send().await, 200);
    }
    let after_reads = data_version(&mut conn).await;
    assert_eq!(
        before, after_reads,
        "50 authenticated reads wrote to the database"
    );

    // The check can fail: the batched usage write is seen by the same connection.
    app.state.flush_usage().await;
    let after_flush = data_version(&mut conn).await;
    assert_ne!(after_reads, after_flush, "the flush should have written");
    assert_eq!(stored(&app, &row.id).await.request_count, 50);
}

// ---------------------------------------------------------------------------------------------
// Update
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Revoke, expire
// ---------------------------------------------------------------------------------------------

async fn a_revoked_key_fails_on_its_next_request() {
    let app = TestApp::new().await;
    let admin = app.admin_key().await;
    let (key, row) = app
        .key(KeySpec {
            scopes: vec![Scope::KeysRead],
            ..KeySpec::default()
        })
        .await;
    let path = format!("/v1/keys/{}", row.id);
    assert_status(&app.get("/v1/keys").key(&key).send().await, 200);
    app.clock.advance(MINUTE);
    let revoked_at = app.clock.now();

    let r = app.delete(&path).key(&admin).send().await;
    assert_status(&r, 200);
    assert_eq!(r.body["id"], row.id.as_str());
    assert_eq!(ts(&r.body["revoked_at"]), revoked_at);
    assert!(r.body.get("key").is_none());

    let r = app.get("/v1/keys").key(&key).send().await;
    r.assert_error(401, "unauthorized");
    assert_message_mentions(&r, "revoked");

    // Revoking again is a no-op that returns the key as it is.
    app.clock.advance(MINUTE);
    let audit_before = app
        .store
        .list_audit(&app.workspace.id, None)
        .await
        .unwrap()
        .len();
    let r = app.delete(&path).key(&admin).send().await;
    assert_status(&r, 200);
    assert_eq!(ts(&r.body["revoked_at"]), revoked_at);
    let audit_after = app
        .store
        .list_audit(&app.workspace.id, None)
        .await
        .unwrap()
        .len();
    assert_eq!(
        audit_before, audit_after,
        "a repeated revoke is not a new event"
    );

    // A revoked key can no longer change or be rotated.
    app.patch(&path)
        .key(&admin)
        .json(json!({"name": "back from the dead"}))
        .send()
        .await
        .assert_error(409, "conflict");
    app.post(&format!("{path}/rotate"))
        .key(&admin)
        .send()
        .await
        .assert_error(409, "conflict");
    let s = stored(&app, &row.id).await;
    assert_eq!(s.revoked_at, Some(revoked_at.as_millisecond()));
    assert_eq!(s.name, row.name);
}

async fn a_key_may_revoke_itself() {
    let app = TestApp::new().await;
    let (key, row) = app
        .key(KeySpec {
            scopes: vec![Scope::KeysWrite],
            ..KeySpec::default()
        })
        .await;
    let r = app
        .delete(&format!("/v1/keys/{}", row.id))
        .key(&key)
        .send()
        .await;
    assert_status(&r, 200);
    let r = app.get("/v1/workspace").key(&key).send().await;
    r.assert_error(401, "unauthorized");
    assert_message_mentions(&r, "revoked");
}

async fn revoke_directly(app: &TestApp, row: &KeyRow) {
    let now = app.clock.now_ms_value();
    let audit = AuditEntry::new(
        &app.workspace.id,
        Actor::Cli,
        "key.revoked",
        row.id.as_str(),
        None,
        json!({}),
        now,
    );
    let revoked = app
        .store
        .revoke_key(&app.workspace.id, &row.id, now, &audit)
        .await
        .unwrap()
        .unwrap();
    assert!(revoked.revoked_at.is_some());
}

/// Polls until the key gets 401 (revoked), failing after `within` of real time.
async fn until_refused(app: &TestApp, key: &str, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let r = app.get("/v1/workspace").key(key).send().await;
        if r.status == 401 {
            r.assert_error(401, "unauthorized");
            assert_message_mentions(&r, "revoked");
            return started.elapsed();
        }
        assert_status(&r, 200);
        assert!(
            started.elapsed() < within,
            "the key still works {within:?} after it was revoked in storage"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn a_key_revoked_by_another_process_stops_working_within_a_second() {
    let app = TestApp::new().await;
    let (key, row) = app
        .key(KeySpec {
            scopes: vec![Scope::KeysRead],
            ..KeySpec::default()
        })
        .await;
    let cancel = CancellationToken::new();
    let mut tasks = app.state.spawn_background(cancel.clone());
    // Let the change feed subscribe first, so what follows exercises the feed itself (a
    // subscription also clears the cache when it starts; see the next test).
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_status(&app.get("/v1/workspace").key(&key).send().await, 200);

    // As `crier admin` would: straight to storage, bypassing this process's cache. Only the
    // cross-process feed (a polled counter on SQLite) can tell the cache; the cache's own TTL
    // is five minutes.
    revoke_directly(&app, &row).await;
    let took = until_refused(&app, &key, Duration::from_millis(1500)).await;
    assert!(took < Duration::from_millis(1500), "{took:?}");

    cancel.cancel();
    while tasks.join_next().await.is_some() {}
}

async fn a_change_to_one_key_leaves_the_other_keys_cached() {
    let app = TestApp::new().await;
    let spec = || KeySpec {
        scopes: vec![Scope::KeysRead],
        ..KeySpec::default()
    };
    let (changed, row) = app.key(spec()).await;
    let (same_workspace, _) = app.key(spec()).await;
    let other_ws = app.other_workspace("globex").await;
    let (other_workspace, _) = app.key_in(&other_ws, spec()).await;
    let cancel = CancellationToken::new();
    let mut tasks = app.state.spawn_background(cancel.clone());
    tokio::time::sleep(Duration::from_millis(500)).await;
    for key in [&changed, &same_workspace, &other_workspace] {
        assert_status(&app.get("/v1/workspace").key(key).send().await, 200);
    }
    let cached = |key: &str| {
        matches!(
            app.state.auth().cache.get(&KeyDigest::of(key)),
            crier_api::auth::cache::Lookup::Found(_)
        )
    };
    assert!(cached(&same_workspace) && cached(&other_workspace));

    revoke_directly(&app, &row).await;
    until_refused(&app, &changed, Duration::from_millis(1500)).await;
    // Another poll or two, in case the feed reported the change in more than one step.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        cached(&same_workspace),
        "a key of the same workspace was dropped"
    );
    assert!(
        cached(&other_workspace),
        "a key of another workspace was dropped"
    );

    cancel.cancel();
    while tasks.join_next().await.is_some() {}
}

async fn keys_changed_before_the_feed_subscribed_are_not_served_from_cache() {
    let app = TestApp::new().await;
    let (key, row) = app
        .key(KeySpec {
            scopes: vec![Scope::KeysRead],
            ..KeySpec::default()
        })
        .await;
    assert_status(&app.get("/v1/workspace").key(&key).send().await, 200);
    revoke_directly(&app, &row).await;
    // Without a feed nothing tells this process: the cached record still answers. (This is
    // the window the feed exists to close, and the control for the assertion below.)
    assert_status(&app.get("/v1/workspace").key(&key).send().await, 200);

    // The feed starts after the change: it will never report it, so subscribing must not
    // leave older cache entries behind.
    let cancel = CancellationToken::new();
    let mut tasks = app.state.spawn_background(cancel.clone());
    until_refused(&app, &key, Duration::from_millis(1500)).await;
    cancel.cancel();
    while tasks.join_next().await.is_some() {}
}

async fn a_key_stops_working_when_it_expires() {
    let app = TestApp::new().await;
    let admin = app.admin_key().await;
    let r = app
        .post("/v1/keys")
        .key(&admin)
        .json(json!({"scopes": ["keys:read"], "expires_at": at(&app, 3600).to_string()}))
        .send()
        .await;
    let (_, key) = created(&r);
    assert_status(&app.get("/v1/keys").key(&key).send().await, 200);
    app.clock.advance(HOUR - Duration::from_secs(1));
    assert_status(&app.get("/v1/keys").key(&key).send().await, 200);
    app.clock.advance(HOUR);
    let r = app.get("/v1/keys").key(&key).send().await;
    r.assert_error(401, "unauthorized");
    assert_message_mentions(&r, "expired");
}

// ---------------------------------------------------------------------------------------------
// Rotate
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Audit
// ---------------------------------------------------------------------------------------------

async fn every_change_is_audited_with_its_actor_and_request_id() {
    let app = TestApp::new().await;
    let (admin, admin_row) = app
        .key(KeySpec {
            scopes: Scope::ALL.to_vec(),
            ..KeySpec::default()
        })
        .await;
    let (other_admin, other_row) = app
        .key(KeySpec {
            scopes: Scope::ALL.to_vec(),
            ..KeySpec::default()
        })
        .await;
    let request_id = |r: &Response| r.header("x-request-id").unwrap().to_owned();

    let r = app
        .post("/v1/keys")
        .key(&admin)
        .json(json!({"name": "audited", "scopes": ["posts:read"]}))
        .send()
        .await;
    let (id, _) = created(&r);
    let created_req = request_id(&r);
    let r = app
        .patch(&format!("/v1/keys/{id}"))
        .key(&admin)
        .json(json!({"name": "audited twice", "allowed_ips": ["10.0.0.0/8"]}))
        .send()
        .await;
    assert_status(&r, 200);
    let updated_req = request_id(&r);
    let r = app
        .post(&format!("/v1/keys/{id}/rotate"))
        .key(&admin)
        .json(json!({"overlap_seconds": 60}))
        .send()
        .await;
    let (new_id, _) = created(&r);
    let rotated_req = request_id(&r);
    // Someone else revokes the old key: the actor is whoever acted.
    let r = app
        .delete(&format!("/v1/keys/{id}"))
        .key(&other_admin)
        .send()
        .await;
    assert_status(&r, 200);
    let revoked_req = request_id(&r);

    let log = app
        .store
        .list_audit(&app.workspace.id, Some(&id))
        .await
        .unwrap();
    let got: Vec<(&str, &Actor, Option<&str>)> = log
        .iter()
        .map(|e| (e.action.as_str(), &e.actor, e.request_id.as_deref()))
        .collect();
    let by_admin = Actor::Key(admin_row.id.clone());
    let by_other = Actor::Key(other_row.id.clone());
    assert_eq!(
        got,
        vec![
            ("key.revoked", &by_other, Some(revoked_req.as_str())),
            ("key.rotated", &by_admin, Some(rotated_req.as_str())),
            ("key.updated", &by_admin, Some(updated_req.as_str())),
            ("key.created", &by_admin, Some(created_req.as_str())),
        ],
        "newest first"
    );
    assert!(log.iter().all(|e| e.target_id == id));
    assert!(log.iter().all(|e| e.workspace_id == app.workspace.id));
    let rotated = &log[1];
    assert_eq!(rotated.details["replaced_by"], new_id.as_str());
    assert_eq!(rotated.details["overlap_seconds"], 60);
    let updated = &log[2];
    assert_eq!(
        updated.details["changed"],
        json!(["name", "allowed_ips"]),
        "{:?}",
        updated.details
    );
}

// ---------------------------------------------------------------------------------------------
// IP and origin restrictions
// ---------------------------------------------------------------------------------------------

async fn ip_restrictions_match_ipv4_ipv6_and_mapped_addresses() {
    let app = TestApp::new().await;
    let (v4, _) = app
        .key(KeySpec {
            scopes: vec![Scope::KeysRead],
            allowed_ips: Some(vec!["10.0.0.0/8".into(), "192.0.2.7".into()]),
            ..KeySpec::default()
        })
        .await;
    let (v6, _) = app
        .key(KeySpec {
            scopes: vec![Scope::KeysRead],
            allowed_ips: Some(vec!["2001:db8::/32".into()]),
            ..KeySpec::default()
        })
        .await;
    for (key, ip, allowed) in [
        (&v4, "10.1.2.3", true),
        (&v4, "10.255.255.255", true),
        (&v4, "192.0.2.7", true),
        (&v4, "::ffff:10.1.2.3", true),
        (&v4, "11.0.0.1", false),
        (&v4, "192.0.2.8", false),
        (&v4, "::ffff:11.0.0.1", false),
        (&v4, "2001:db8::1", false),
        (&v6, "2001:db8::1", true),
        (&v6, "2001:db8:ffff:1::9", true),
        (&v6, "2001:db9::1", false),
        (&v6, "::1", false),
        (&v6, "10.1.2.3", false),
    ] {
        let r = app.get("/v1/keys").key(key).from_ip(ip).send().await;
        if allowed {
            assert_eq!(r.status, 200, "{ip}: {}", r.text);
        } else {
            assert_eq!(r.status, 403, "{ip}: {}", r.text);
            r.assert_error(403, "ip_not_allowed");
        }
    }
}

async fn trusted_proxies_forward_the_client_address_and_nobody_else_can() {
    let mut cfg = ApiConfig::default();
    cfg.auth.trusted_proxies = vec!["10.0.0.0/8".parse().unwrap()];
    let app = TestApp::with_config(cfg, "self-hosted").await;
    let (key, _) = app
        .key(KeySpec {
            scopes: vec![Scope::KeysRead],
            allowed_ips: Some(vec!["203.0.113.0/24".into()]),
            ..KeySpec::default()
        })
        .await;
    let call = |peer: &str, xff: Option<&str>| {
        let mut c = app.get("/v1/keys").key(&key).from_ip(peer);
        if let Some(v) = xff {
            c = c.header("x-forwarded-for", v);
        }
        c.send()
    };
    // Read from the right: the proxy appended the real client; the left part is the client's
    // own claim and is ignored.
    assert_status(&call("10.0.0.2", Some("6.6.6.6, 203.0.113.9")).await, 200);
    // Past several trusted hops.
    assert_status(
        &call("10.0.0.2", Some("203.0.113.9, 10.0.0.7, 10.0.0.5")).await,
        200,
    );
    for (peer, xff, seen_as) in [
        // The client claims an allowed address on the left; the proxy saw 6.6.6.6.
        ("10.0.0.2", Some("203.0.113.9, 6.6.6.6"), "6.6.6.6"),
        // No header: the proxy itself is the client.
        ("10.0.0.2", None, "10.0.0.2"),
        // An untrusted peer's header is never read.
        ("6.6.6.6", Some("203.0.113.9"), "6.6.6.6"),
        ("203.0.114.1", Some("203.0.113.9"), "203.0.114.1"),
    ] {
        let r = call(peer, xff).await;
        assert_eq!(r.status, 403, "{peer} {xff:?}: {}", r.text);
        r.assert_error(403, "ip_not_allowed");
        assert_message_mentions(&r, seen_as);
    }
}

async fn forwarded_for_over_several_lines_is_one_list() {
    let mut cfg = ApiConfig::default();
    cfg.auth.trusted_proxies = vec!["10.0.0.0/8".parse().unwrap()];
    let app = TestApp::with_config(cfg, "self-hosted").await;
    let (key, _) = app
        .key(KeySpec {
            scopes: vec![Scope::KeysRead],
            allowed_ips: Some(vec!["203.0.113.0/24".into()]),
            ..KeySpec::default()
        })
        .await;
    // The client sent its own line claiming an allowed address; the proxy added a second line
    // with the address it saw. The last line is the proxy's, so the client is 6.6.6.6.
    let r = app
        .get("/v1/keys")
        .key(&key)
        .from_ip("10.0.0.2")
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-forwarded-for", "6.6.6.6")
        .send()
        .await;
    r.assert_error(403, "ip_not_allowed");
    assert_message_mentions(&r, "6.6.6.6");
    // Lines are read in order and walked from the right past trusted hops.
    let r = app
        .get("/v1/keys")
        .key(&key)
        .from_ip("10.0.0.2")
        .header("x-forwarded-for", "6.6.6.6, 203.0.113.9")
        .header("x-forwarded-for", "10.0.0.7")
        .send()
        .await;
    assert_status(&r, 200);
    // A line that is not text stops the walk at the hop before it (the trusted proxy).
    let r = app
        .get("/v1/keys")
        .key(&key)
        .from_ip("10.0.0.2")
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-forwarded-for", "10.0.0.7, \u{e9}")
        .send()
        .await;
    r.assert_error(403, "ip_not_allowed");
    assert_message_mentions(&r, "10.0.0.2");
}

async fn without_trusted_proxies_forwarded_for_is_ignored() {
    let app = TestApp::new().await;
    let (key, _) = app
        .key(KeySpec {
            scopes: vec![Scope::KeysRead],
            allowed_ips: Some(vec!["203.0.113.0/24".into()]),
            ..KeySpec::default()
        })
        .await;
    let r = app
        .get("/v1/keys")
        .key(&key)
        .from_ip("10.0.0.2")
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await;
    r.assert_error(403, "ip_not_allowed");
    assert_status(
        &app.get("/v1/keys")
            .key(&key)
            .from_ip("203.0.113.9")
            .send()
            .await,
        200,
    );
}

async fn origin_restrictions_apply_only_to_requests_with_an_origin() {
    let app = TestApp::new().await;
    let (exact, _) = app
        .key(KeySpec {
            scopes: vec![Scope::KeysRead],
            allowed_origins: Some(vec!["https://app.example.com".into()]),
            ..KeySpec::default()
        })
        .await;
    let (wildcard, _) = app
        .key(KeySpec {
            scopes: vec![Scope::KeysRead],
            allowed_origins: Some(vec!["https://*.example.com".into()]),
            ..KeySpec::default()
        })
        .await;
    let (open, _) = app
        .key(KeySpec {
            scopes: vec![Scope::KeysRead],
            ..KeySpec::default()
        })
        .await;
    for (key, origin, allowed) in [
        (&exact, None, true),
        (&exact, Some("https://app.example.com"), true),
        (&exact, Some("https://APP.example.com:443"), true),
        (&exact, Some("https://evil.example.com"), false),
        (&exact, Some("http://app.example.com"), false),
        (&exact, Some("https://app.example.com:8443"), false),
        (&exact, Some("null"), false),
        (&wildcard, None, true),
        (&wildcard, Some("https://app.example.com"), true),
        (&wildcard, Some("https://a.b.example.com"), true),
        (&wildcard, Some("https://example.com"), false),
        (&wildcard, Some("https://evilexample.com"), false),
        (&wildcard, Some("https://app.example.org"), false),
        (&open, Some("https://anything.test"), true),
    ] {
        let mut call = app.get("/v1/keys").key(key);
        if let Some(o) = origin {
            call = call.header("origin", o);
        }
        let r = call.send().await;
        if allowed {
            assert_eq!(r.status, 200, "{origin:?}: {}", r.text);
        } else {
            assert_eq!(r.status, 403, "{origin:?}: {}", r.text);
            r.assert_error(403, "origin_not_allowed");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Rate limits
// ---------------------------------------------------------------------------------------------

#[track_caller]
fn retry_after(r: &Response) -> u64 {
    let v = r.header("retry-after").expect("Retry-After on a 429");
    let n: u64 = v.parse().unwrap_or_else(|_| panic!("Retry-After {v:?}"));
    assert!(n >= 1, "Retry-After {n}");
    n
}

async fn the_per_minute_limit_refuses_with_headers_and_retry_after() {
    let app = TestApp::new().await;
    let (key, _) = app
        .key(KeySpec {
            scopes: vec![Scope::KeysRead],
            per_minute: Some(3),
            ..KeySpec::default()
        })
        .await;
    let now_s = app.clock.now_ms_value() / 1000;
    for remaining in ["2", "1", "0"] {
        let r = app.get("/v1/keys").key(&key).send().await;
        assert_status(&r, 200);
        assert_eq!(r.header("x-ratelimit-limit"), Some("3"));
        assert_eq!(r.header("x-ratelimit-remaining"), Some(remaining));
        let reset: i64 = r.header("x-ratelimit-reset").unwrap().parse().unwrap();
        assert!(
            reset > now_s && reset <= now_s + 60,
            "X-RateLimit-Reset {reset} is Unix seconds within the minute"
        );
        let policy = r.header("ratelimit-policy").unwrap();
        assert!(policy.contains(r#""minute";q=3;w=60"#), "{policy}");
        assert!(policy.contains(r#""day";q=10000;w=86400"#), "{policy}");
        let current = r.header("ratelimit").unwrap();
        assert!(
            current.contains(&format!(r#""minute";r={remaining}"#)),
            "{current}"
        );
        assert!(current.contains(r#""day";r="#), "{current}");
    }
    let r = app.get("/v1/keys").key(&key).send().await;
    r.assert_error(429, "rate_limited");
    let wait = retry_after(&r);
    assert!(wait <= 60, "{wait}");
    assert_eq!(r.header("x-ratelimit-limit"), Some("3"));
    assert_eq!(r.header("x-ratelimit-remaining"), Some("0"));
    assert!(r.header("x-ratelimit-reset").is_some());
    assert!(
        r.header("ratelimit-policy")
            .unwrap()
            .contains(r#""minute";q=3;w=60"#)
    );
    assert!(r.header("ratelimit").is_some());

    // Retry-After is honest: a second earlier is still refused (and the refusal costs
    // nothing), at it exactly one more passes.
    app.clock.advance(Duration::from_secs(wait - 1));
    app.get("/v1/keys")
        .key(&key)
        .send()
        .await
        .assert_error(429, "rate_limited");
    app.clock.advance(Duration::from_secs(1));
    assert_status(&app.get("/v1/keys").key(&key).send().await, 200);
    app.get("/v1/keys")
        .key(&key)
        .send()
        .await
        .assert_error(429, "rate_limited");

    // One request every 20 s is the sustained rate of 3/min.
    app.clock.advance(Duration::from_secs(20));
    assert_status(&app.get("/v1/keys").key(&key).send().await, 200);
}

async fn the_per_day_limit_refuses_with_a_long_retry_after() {
    let app = TestApp::new().await;
    let (key, _) = app
        .key(KeySpec {
            scopes: vec![Scope::KeysRead],
            per_day: Some(2),
            ..KeySpec::default()
        })
        .await;
    for remaining in ["1", "0"] {
        let r = app.get("/v1/keys").key(&key).send().await;
        assert_status(&r, 200);
        // The day window is the one closest to running out.
        assert_eq!(r.header("x-ratelimit-limit"), Some("2"));
        assert_eq!(r.header("x-ratelimit-remaining"), Some(remaining));
    }
    let r = app.get("/v1/keys").key(&key).send().await;
    r.assert_error(429, "rate_limited");
    assert_message_mentions(&r, "day");
    let wait = retry_after(&r);
    assert!((3600..=86_400).contains(&wait), "Retry-After {wait}");
    assert_eq!(r.header("x-ratelimit-limit"), Some("2"));
    assert!(
        r.header("ratelimit-policy")
            .unwrap()
            .contains(r#""day";q=2;w=86400"#)
    );
    // The minute window is nowhere near its limit: only the day refuses.
    app.clock.advance(Duration::from_secs(120));
    app.get("/v1/keys")
        .key(&key)
        .send()
        .await
        .assert_error(429, "rate_limited");
    app.clock
        .advance(Duration::from_secs(wait).saturating_sub(Duration::from_secs(120)));
    assert_status(&app.get("/v1/keys").key(&key).send().await, 200);
}

async fn keys_are_rate_limited_independently() {
    let app = TestApp::new().await;
    let spec = || KeySpec {
        scopes: vec![Scope::KeysRead],
        per_minute: Some(1),
        ..KeySpec::default()
    };
    let (a, _) = app.key(spec()).await;
    let (b, _) = app.key(spec()).await;
    assert_status(&app.get("/v1/keys").key(&a).send().await, 200);
    app.get("/v1/keys")
        .key(&a)
        .send()
        .await
        .assert_error(429, "rate_limited");
    let r = app.get("/v1/keys").key(&b).send().await;
    assert_status(&r, 200);
    assert_eq!(r.header("x-ratelimit-remaining"), Some("0"));
    app.get("/v1/keys")
        .key(&b)
        .send()
        .await
        .assert_error(429, "rate_limited");
}

async fn the_plan_ceiling_caps_a_key_with_a_higher_limit() {
    let app = TestApp::with_plan("free").await;
    // The API refuses to create such a key on this plan (see the validation test), but one
    // can exist: made before a downgrade, or by hand. Store it directly.
    let plan = app.state.plan("free").unwrap();
    let req = CreateKey {
        scopes: vec!["keys:read".into()],
        ..CreateKey::default()
    };
    let now = app.clock.now_ms_value();
    let (mut row, secret) = keys::new_key(&app.workspace.id, req, &plan, None, now).unwrap();
    row.per_minute = 100;
    let audit = AuditEntry::new(
        &app.workspace.id,
        Actor::Cli,
        "key.created",
        row.id.as_str(),
        None,
        json!({}),
        now,
    );
    app.store.insert_key(&row, &audit).await.unwrap();
    let key = secret.expose();

    for i in 0..60 {
        let r = app.get("/v1/keys").key(key).send().await;
        assert_eq!(r.status, 200, "request {i}: {}", r.text);
        assert_eq!(r.header("x-ratelimit-limit"), Some("60"));
        assert_eq!(
            r.header("x-ratelimit-remaining").unwrap(),
            (59 - i).to_string()
        );
        assert!(
            r.header("ratelimit-policy")
                .unwrap()
                .contains(r#""minute";q=60;w=60"#)
        );
    }
    let r = app.get("/v1/keys").key(key).send().await;
    r.assert_error(429, "rate_limited");
    assert_eq!(r.header("x-ratelimit-limit"), Some("60"));
}

// ---------------------------------------------------------------------------------------------
// Failed authentications
// ---------------------------------------------------------------------------------------------

async fn failed_authentications_are_throttled_per_client_address() {
    let mut cfg = ApiConfig::default();
    cfg.auth.failures_per_minute = 5;
    let app = TestApp::with_config(cfg, "self-hosted").await;
    let (cached, _) = app
        .key(KeySpec {
            scopes: vec![Scope::KeysRead],
            ..KeySpec::default()
        })
        .await;
    let (uncached, _) = app
        .key(KeySpec {
            scopes: vec![Scope::KeysRead],
            ..KeySpec::default()
        })
        .await;
    let attacker = "198.51.100.7";
    assert_status(
        &app.get("/v1/keys")
            .key(&cached)
            .from_ip(attacker)
            .send()
            .await,
        200,
    );
    // Well-formed (valid checksum) but unknown keys: each costs a storage look-up.
    let fake = || SecretKey::generate(KeyMode::Live).expose().to_owned();
    for i in 0..5 {
        let r = app
            .get("/v1/keys")
            .key(&fake())
            .from_ip(attacker)
            .send()
            .await;
        assert_eq!(r.status, 401, "attempt {i}: {}", r.text);
        r.assert_error(401, "unauthorized");
    }
    for i in 5..7 {
        let r = app
            .get("/v1/keys")
            .key(&fake())
            .from_ip(attacker)
            .send()
            .await;
        assert_eq!(r.status, 429, "attempt {i}: {}", r.text);
        r.assert_error(429, "rate_limited");
        retry_after(&r);
    }
    // Another address is not affected.
    app.get("/v1/keys")
        .key(&fake())
        .from_ip("198.51.100.8")
        .send()
        .await
        .assert_error(401, "unauthorized");
    // A key already verified and cached still works from the throttled address, and so does
    // one that needs a storage look-up: the throttle refuses failures, never valid keys.
    assert_status(
        &app.get("/v1/keys")
            .key(&cached)
            .from_ip(attacker)
            .send()
            .await,
        200,
    );
    assert_status(
        &app.get("/v1/keys")
            .key(&uncached)
            .from_ip(attacker)
            .send()
            .await,
        200,
    );

    // The throttle is a rate, not a ban.
    app.clock.advance(MINUTE + Duration::from_secs(1));
    app.get("/v1/keys")
        .key(&fake())
        .from_ip(attacker)
        .send()
        .await
        .assert_error(401, "unauthorized");
    assert_status(
        &app.get("/v1/keys")
            .key(&uncached)
            .from_ip(attacker)
            .send()
            .await,
        200,
    );
}

async fn a_valid_key_never_seen_passes_from_an_address_over_its_failure_limit() {
    let app = TestApp::new().await;
    let (key, _) = app
        .key(KeySpec {
            scopes: vec![Scope::KeysRead],
            ..KeySpec::default()
        })
        .await;
    let (revoked, revoked_row) = app
        .key(KeySpec {
            scopes: vec![Scope::KeysRead],
            ..KeySpec::default()
        })
        .await;
    let attacker = "198.51.100.7";
    let fakes: Vec<String> = (0..31)
        .map(|_| SecretKey::generate(KeyMode::Live).expose().to_owned())
        .collect();
    for (i, fake) in fakes.iter().enumerate() {
        let r = app.get("/v1/keys").key(fake).from_ip(attacker).send().await;
        if i < 30 {
            r.assert_error(401, "unauthorized");
        } else {
            r.assert_error(429, "rate_limited");
            retry_after(&r);
        }
    }
    // Never seen by this node: it needs a storage look-up, and gets it.
    let r = app.get("/v1/keys").key(&key).from_ip(attacker).send().await;
    assert_status(&r, 200);
    // Failures from the address are still refused: new fakes, repeated fakes (answered from the
    // cache of unknown digests) and a key that storage knows but that no longer works.
    app.store
        .revoke_key(
            &app.workspace.id,
            &revoked_row.id,
            app.clock.now_ms_value(),
            &AuditEntry::new(
                &app.workspace.id,
                Actor::Cli,
                "key.revoked",
                revoked_row.id.as_str(),
                None,
                serde_json::json!({}),
                app.clock.now_ms_value(),
            ),
        )
        .await
        .unwrap();
    for k in [
        SecretKey::generate(KeyMode::Live).expose().to_owned(),
        fakes[0].clone(),
        revoked,
    ] {
        app.get("/v1/keys")
            .key(&k)
            .from_ip(attacker)
            .send()
            .await
            .assert_error(429, "rate_limited");
    }
    assert_status(
        &app.get("/v1/keys").key(&key).from_ip(attacker).send().await,
        200,
    );
}

both!(
    tests: create_returns_the_key_object_with_its_secret_shown_once,
    aliases_are_stored_as_what_they_expand_to,
    invalid_create_requests_name_the_param_and_store_nothing,
    a_key_cannot_create_a_key_wider_than_itself,
    a_child_inherits_the_restrictions_its_creator_omits,
    a_key_with_a_wildcard_origin_can_pass_it_on_and_rotate_itself,
    a_test_mode_key_cannot_create_a_live_key,
    updates_cannot_widen_a_key_beyond_the_caller,
    an_expiring_key_cannot_give_a_key_a_longer_life,
    the_list_is_newest_first_and_pages_with_limit_and_offset,
    another_workspaces_key_does_not_exist,
    last_used_at_and_usage_are_written_in_batches,
    patch_changes_every_mutable_field_and_clears_expiry_with_null,
    an_update_takes_effect_on_the_very_next_request,
    a_revoked_key_fails_on_its_next_request,
    a_key_may_revoke_itself,
    a_key_revoked_by_another_process_stops_working_within_a_second,
    keys_changed_before_the_feed_subscribed_are_not_served_from_cache,
    a_change_to_one_key_leaves_the_other_keys_cached,
    a_key_stops_working_when_it_expires,
    rotation_issues_a_twin_and_lets_the_old_key_overlap,
    rotation_without_overlap_ends_the_old_key_at_once_and_caps_the_overlap,
    a_rotated_out_key_cannot_be_revived_but_can_be_revoked,
    every_change_is_audited_with_its_actor_and_request_id,
    ip_restrictions_match_ipv4_ipv6_and_mapped_addresses,
    trusted_proxies_forward_the_client_address_and_nobody_else_can,
    without_trusted_proxies_forwarded_for_is_ignored,
    forwarded_for_over_several_lines_is_one_list,
    origin_restrictions_apply_only_to_requests_with_an_origin,
    the_per_minute_limit_refuses_with_headers_and_retry_after,
    the_per_day_limit_refuses_with_a_long_retry_after,
    keys_are_rate_limited_independently,
    the_plan_ceiling_caps_a_key_with_a_higher_limit,
    failed_authentications_are_throttled_per_client_address,
    a_valid_key_never_seen_passes_from_an_address_over_its_failure_limit,
);
