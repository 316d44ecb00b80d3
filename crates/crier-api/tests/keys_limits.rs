//! API keys over HTTP, limits: per-minute and per-day rate limits, the plan ceiling, and the
//! per-address throttle on failed authentications.
//!
//! The key format itself is covered in crier-core; the helpers are in `common/keys.rs`.

mod common;

use std::time::Duration;

use common::keys::{MINUTE, assert_message_mentions, assert_status};
use common::{KeySpec, NowMs, Response, TestApp, both};
use crier_api::ApiConfig;
use crier_api::keys::{self, CreateKey};
use crier_core::{KeyMode, Scope, SecretKey};
use crier_store::{Actor, AuditEntry};
use serde_json::json;

// ---- Rate limits ----

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

async fn many_keys_cannot_multiply_the_plans_limit() {
    let app = TestApp::with_plan("free").await;
    let spec = |mode| KeySpec {
        scopes: vec![Scope::KeysRead],
        mode: Some(mode),
        ..KeySpec::default()
    };
    let mut keys = Vec::new();
    for _ in 0..3 {
        keys.push(app.key(spec(KeyMode::Live)).await.0);
    }
    // The free plan allows 60 a minute: 20 from each of three keys fill the workspace's
    // ceiling though each key has 40 of its own left.
    for i in 0..60 {
        let r = app.get("/v1/keys").key(&keys[i % 3]).send().await;
        assert_eq!(r.status, 200, "request {i}: {}", r.text);
    }
    let fresh = app.key(spec(KeyMode::Live)).await.0;
    for key in keys.iter().chain([&fresh]) {
        let r = app.get("/v1/keys").key(key).send().await;
        r.assert_error(429, "rate_limited");
        assert_message_mentions(&r, "workspace");
        assert!(retry_after(&r) <= 1, "one interval of the ceiling");
    }
    // A refusal took nothing from the key's own window.
    app.clock.advance(Duration::from_secs(1));
    let r = app.get("/v1/keys").key(&fresh).send().await;
    assert_status(&r, 200);
    assert_eq!(r.header("x-ratelimit-remaining"), Some("59"));
    // Test mode has its own ceiling: live traffic does not use it up.
    let test_key = app.key(spec(KeyMode::Test)).await.0;
    assert_status(&app.get("/v1/keys").key(&test_key).send().await, 200);
    // Another workspace is not touched.
    let ws = app.other_workspace("other").await;
    let other = app
        .key_in(
            &ws,
            KeySpec {
                scopes: vec![Scope::KeysRead],
                ..KeySpec::default()
            },
        )
        .await
        .0;
    assert_status(&app.get("/v1/keys").key(&other).send().await, 200);
}

// ---- Failed authentications ----

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
    tests: the_per_minute_limit_refuses_with_headers_and_retry_after,
    the_per_day_limit_refuses_with_a_long_retry_after,
    keys_are_rate_limited_independently,
    the_plan_ceiling_caps_a_key_with_a_higher_limit,
    many_keys_cannot_multiply_the_plans_limit,
    failed_authentications_are_throttled_per_client_address,
    a_valid_key_never_seen_passes_from_an_address_over_its_failure_limit,
);
