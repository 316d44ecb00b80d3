//! Every error code reachable over HTTP today, each in the one envelope with the request id of
//! the `X-Request-Id` header, and refused writes leave storage as it was.
mod common;

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use axum::middleware::from_fn_with_state;
use axum::routing::get;
use common::{KeySpec, TestApp, both};
use crier_core::{KeyMode, Scope, SecretKey};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

/// Asserts the error envelope plus the field at fault.
#[track_caller]
fn assert_param(r: &common::Response, param: &str) {
    r.assert_error(400, "invalid_request");
    assert_eq!(r.body["error"]["param"], param, "param; body: {}", r.text);
}

async fn unknown_routes_are_404_in_the_envelope() {
    let app = TestApp::new().await;
    let key = app.admin_key().await;
    // `/` is the dashboard (it sends a visitor to sign in).
    for path in ["/v1/nope", "/nope", "/v1/keys/key_x/nope"] {
        let r = app.get(path).send().await;
        r.assert_error(404, "not_found");
        let r = app.get(path).key(&key).send().await;
        r.assert_error(404, "not_found");
    }
    let before = app.snapshot().await;
    let r = app.post("/v1/nope").key(&key).json(json!({})).send().await;
    r.assert_error(404, "not_found");
    assert_eq!(app.snapshot().await, before);
}

async fn a_known_route_with_another_method_is_405() {
    let app = TestApp::new().await;
    let key = app.admin_key().await;
    let before = app.snapshot().await;
    for (method, path) in [
        ("PUT", "/v1/keys"),
        ("DELETE", "/v1/keys"),
        ("PUT", "/v1/workspace"),
        ("POST", "/v1/workspace"),
        ("POST", "/healthz"),
    ] {
        let method: axum::http::Method = method.parse().unwrap();
        let r = app
            .call(method.clone(), path)
            .key(&key)
            .json(json!({"scopes": ["keys:read"]}))
            .send()
            .await;
        r.assert_error(405, "method_not_allowed");
        // RFC 9110: a 405 lists the methods the route does accept.
        let allow = r.header("allow").unwrap_or_else(|| {
            panic!(
                "{method} {path}: 405 without an Allow header: {:?}",
                r.headers
            )
        });
        assert!(!allow.is_empty(), "{method} {path}");
        // Without a key it is still a 405 (the route exists), not a 401.
        let r = app.call(method.clone(), path).send().await;
        r.assert_error(405, "method_not_allowed");
    }
    assert_eq!(app.snapshot().await, before);
}

async fn a_body_over_one_mebibyte_is_413() {
    let app = TestApp::new().await;
    let key = app.admin_key().await;
    let before = app.snapshot().await;

    // A real body just over the limit, valid JSON otherwise.
    let big = format!(
        "{{\"scopes\":[\"keys:read\"],\"name\":\"{}\"}}",
        "a".repeat(1024 * 1024)
    );
    assert!(big.len() > 1024 * 1024);
    let r = app
        .post("/v1/keys")
        .key(&key)
        .header("content-type", "application/json")
        .raw(big.clone())
        .send()
        .await;
    r.assert_error(413, "payload_too_large");

    // The same through the idempotency layer, which reads the body first.
    let r = app
        .post("/v1/keys")
        .key(&key)
        .header("content-type", "application/json")
        .header("idempotency-key", "big-body")
        .raw(big.clone())
        .send()
        .await;
    r.assert_error(413, "payload_too_large");

    let r = app
        .patch("/v1/workspace")
        .key(&key)
        .header("content-type", "application/json")
        .raw(big)
        .send()
        .await;
    r.assert_error(413, "payload_too_large");

    // Only a declaration: refused on the header, before reading anything.
    let small = serde_json::to_vec(&json!({"scopes": ["keys:read"]})).unwrap();
    for idem in [None, Some("declared")] {
        let mut call = app
            .post("/v1/keys")
            .key(&key)
            .header("content-type", "application/json")
            .header("content-length", "2000000")
            .raw(small.clone());
        if let Some(k) = idem {
            call = call.header("idempotency-key", k);
        }
        call.send().await.assert_error(413, "payload_too_large");
    }
    assert_eq!(app.snapshot().await, before);

    // Exactly at the limit is not too large (it fails later, on content, not size).
    let name_len = 1024 * 1024 - "{\"scopes\":[\"keys:read\"],\"name\":\"\"}".len();
    let exact = format!(
        "{{\"scopes\":[\"keys:read\"],\"name\":\"{}\"}}",
        "a".repeat(name_len)
    );
    assert_eq!(exact.len(), 1024 * 1024);
    let r = app
        .post("/v1/keys")
        .key(&key)
        .header("content-type", "application/json")
        .raw(exact)
        .send()
        .await;
    assert_param(&r, "name");
    assert_eq!(app.snapshot().await, before);
}

async fn a_body_that_is_not_json_is_415() {
    let app = TestApp::new().await;
    let key = app.admin_key().await;
    let before = app.snapshot().await;
    let body = serde_json::to_vec(&json!({"scopes": ["keys:read"]})).unwrap();
    for ct in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("application/jsonx"),
        None,
    ] {
        let mut call = app.post("/v1/keys").key(&key).raw(body.clone());
        if let Some(ct) = ct {
            call = call.header("content-type", ct);
        }
        call.send()
            .await
            .assert_error(415, "unsupported_media_type");
    }
    // The essence of the media type counts, parameters and case do not.
    let r = app
        .post("/v1/keys")
        .key(&key)
        .header("content-type", "Application/JSON; charset=utf-8")
        .raw(body)
        .send()
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let after = app.snapshot().await;
    assert_eq!(after.0.len(), before.0.len() + 1);
}

async fn bad_json_is_400_and_names_the_field() {
    let app = TestApp::new().await;
    let key = app.admin_key().await;
    let before = app.snapshot().await;

    for raw in [
        &b"{\"scopes\":"[..],
        b"{scopes: 1}",
        b"not json",
        b"\xff\xfe",
    ] {
        let r = app
            .post("/v1/keys")
            .key(&key)
            .header("content-type", "application/json")
            .raw(raw.to_vec())
            .send()
            .await;
        r.assert_error(400, "invalid_request");
        assert!(r.body["error"].get("param").is_none(), "{}", r.text);
    }
    // A JSON array is not the object the endpoint takes; no field of it is at fault.
    let r = app
        .post("/v1/keys")
        .key(&key)
        .json(json!([1, 2]))
        .send()
        .await;
    r.assert_error(400, "invalid_request");
    assert!(r.body["error"].get("param").is_none(), "{}", r.text);

    for (body, param) in [
        (json!({"scopes": "x"}), "scopes"),
        (json!({"scopes": [1]}), "scopes[0]"),
        (
            json!({"scopes": ["keys:read"], "rate_limit": {"per_minute": "a"}}),
            "rate_limit.per_minute",
        ),
        (
            json!({"scopes": ["keys:read"], "rate_limit": {"per_minute": -1}}),
            "rate_limit.per_minute",
        ),
        (json!({"scopes": ["keys:read"], "bogus": 1}), "bogus"),
        (
            json!({"scopes": ["keys:read"], "rate_limit": {"per_hour": 5}}),
            "rate_limit.per_hour",
        ),
        (json!({"name": "no scopes"}), "scopes"),
        (json!({"scopes": ["keys:nope"]}), "scopes"),
        (json!({"scopes": []}), "scopes"),
        (json!({"scopes": ["keys:read"], "mode": "sandbox"}), "mode"),
        (
            json!({"scopes": ["keys:read"], "allowed_ips": ["300.1.1.1"]}),
            "allowed_ips",
        ),
        (
            json!({"scopes": ["keys:read"], "expires_at": "2020-01-01T00:00:00Z"}),
            "expires_at",
        ),
    ] {
        let r = app
            .post("/v1/keys")
            .key(&key)
            .json(body.clone())
            .send()
            .await;
        assert_param(&r, param);
        let message = r.body["error"]["message"].as_str().unwrap();
        assert!(!message.contains(" at line "), "{body}: {message}");
    }
    let (_, target) = app
        .key(KeySpec {
            scopes: vec![Scope::PostsRead],
            ..KeySpec::default()
        })
        .await;
    let before_patch = app.snapshot().await;
    let r = app
        .patch(&format!("/v1/keys/{}", target.id))
        .key(&key)
        .json(json!({"scopes": "posts:read"}))
        .send()
        .await;
    assert_param(&r, "scopes");
    let r = app
        .patch("/v1/workspace")
        .key(&key)
        .json(json!({"timezone": "Mars/Olympus"}))
        .send()
        .await;
    assert_param(&r, "timezone");
    let r = app
        .patch("/v1/workspace")
        .key(&key)
        .json(json!({"require_approval": "yes"}))
        .send()
        .await;
    assert_param(&r, "require_approval");
    assert_eq!(app.snapshot().await, before_patch);
    assert_eq!(before_patch.0.len(), before.0.len() + 1);
}

async fn missing_malformed_and_unknown_keys_are_401() {
    let app = TestApp::new().await;
    let real = app.admin_key().await;
    let before = app.snapshot().await;
    let unknown = SecretKey::generate(KeyMode::Live);
    let unknown_test = SecretKey::generate(KeyMode::Test);
    // Well-formed, valid checksum, never issued.
    assert!(crier_core::keys::check_format(unknown.expose()).is_ok());
    let mut bad_checksum = real.clone();
    let last = bad_checksum.pop().unwrap();
    bad_checksum.push(if last == 'a' { 'b' } else { 'a' });

    let cases: Vec<(&str, Option<(&str, String)>)> = vec![
        ("missing", None),
        ("empty bearer", Some(("authorization", "Bearer ".into()))),
        (
            "malformed",
            Some(("authorization", "Bearer sk_live_abc".into())),
        ),
        (
            "wrong prefix",
            Some(("authorization", format!("Bearer pk_{}", &real[3..]))),
        ),
        (
            "bad checksum",
            Some(("authorization", format!("Bearer {bad_checksum}"))),
        ),
        (
            "unknown",
            Some(("authorization", format!("Bearer {}", unknown.expose()))),
        ),
        (
            "unknown test key",
            Some(("authorization", format!("Bearer {}", unknown_test.expose()))),
        ),
        (
            "unknown in X-API-Key",
            Some(("x-api-key", unknown.expose().into())),
        ),
        ("malformed X-API-Key", Some(("x-api-key", "hunter2".into()))),
        (
            "basic scheme",
            Some(("authorization", "Basic dXNlcjpwYXNzd29yZA==".into())),
        ),
        ("no scheme", Some(("authorization", real.clone()))),
    ];
    for (what, header) in &cases {
        for (method, path) in [("GET", "/v1/keys"), ("POST", "/v1/keys")] {
            let mut call = app
                .call(method.parse().unwrap(), path)
                .from_ip("192.0.2.10")
                .json(json!({"scopes": ["keys:read"]}));
            if let Some((name, value)) = header {
                call = call.header(name, value);
            }
            let r = call.send().await;
            r.assert_error(401, "unauthorized");
            assert!(
                r.header("x-ratelimit-limit").is_none(),
                "{what}: a refused key gets no rate-limit headers"
            );
            // The refusal never tells whether some other key exists.
            let message = r.body["error"]["message"].as_str().unwrap();
            assert!(!message.contains(&real[..12]), "{what}: {message}");
        }
    }
    assert_eq!(app.snapshot().await, before);

    let metrics = app.get("/metrics").send().await;
    assert_eq!(metrics.status, 200);
    // Two requests per case: "unknown", "unknown test key" and "unknown in X-API-Key".
    assert!(
        metrics
            .text
            .contains("crier_auth_failures_total{reason=\"unknown\"} 6"),
        "{}",
        metrics.text
    );
    assert!(
        metrics
            .text
            .contains("crier_auth_failures_total{reason=\"missing\"} 2"),
        "{}",
        metrics.text
    );
    assert!(
        metrics.text.contains(
            "crier_http_requests_total{method=\"GET\",route=\"/v1/keys\",status=\"401\"}"
        ),
        "{}",
        metrics.text
    );
}

async fn two_different_keys_in_two_headers_are_400() {
    let app = TestApp::new().await;
    let a = app.admin_key().await;
    let b = app.admin_key().await;
    let before = app.snapshot().await;
    let r = app
        .post("/v1/keys")
        .key(&a)
        .header("x-api-key", &b)
        .json(json!({"scopes": ["keys:read"]}))
        .send()
        .await;
    r.assert_error(400, "invalid_request");
    assert_eq!(r.body["error"]["param"], "X-API-Key");
    assert_eq!(app.snapshot().await, before);
    // The same key in both is fine, as is either alone.
    let r = app
        .get("/v1/keys")
        .key(&a)
        .header("x-api-key", &a)
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app.get("/v1/keys").header("x-api-key", &b).send().await;
    assert_eq!(r.status, 200, "{}", r.text);
}

async fn bad_pagination_is_400_with_param() {
    let app = TestApp::new().await;
    let key = app.admin_key().await;
    for (query, param) in [
        ("limit=51", "limit"),
        ("limit=0", "limit"),
        ("limit=-1", "limit"),
        ("limit=abc", "limit"),
        ("limit=", "limit"),
        ("offset=-1", "offset"),
        ("offset=x", "offset"),
        ("limit=10&offset=99999999999", "offset"),
    ] {
        let r = app.get(&format!("/v1/keys?{query}")).key(&key).send().await;
        assert_param(&r, param);
    }
    let r = app.get("/v1/keys?limit=50&offset=0").key(&key).send().await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(r.body["has_more"], false);
}

async fn unknown_query_parameters_are_400_with_param() {
    let app = TestApp::new().await;
    let key = app.admin_key().await;
    // A misspelt or invented parameter is named, with what the operation takes.
    let r = app.get("/v1/keys?limt=5").key(&key).send().await;
    assert_param(&r, "limt");
    let message = r.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("`limit`, `offset`"), "{message}");
    let r = app.get("/v1/me?verbose=1").key(&key).send().await;
    assert_param(&r, "verbose");
    assert!(r.text.contains("takes none"), "{}", r.text);
    // What a fuzzer sent: a nameless parameter and names that are not text.
    let r = app
        .get("/v1/kb/search?=null&%C3%82%C3%BAr%06=2176193")
        .key(&key)
        .send()
        .await;
    assert_param(&r, "");
    let r = app.get("/v1/kb/search?q=a&%FF%FE=1").key(&key).send().await;
    assert_param(&r, "\u{fffd}\u{fffd}");
    // A long name is cut in the answer.
    let long = "n".repeat(5000);
    let r = app
        .get(&format!("/v1/keys?{long}=1"))
        .key(&key)
        .send()
        .await;
    assert_param(&r, &long[..100]);
    // A refused write writes nothing.
    let account = app.sandbox_account(&key, "query").await;
    let before = app.snapshot().await;
    let r = app
        .post("/v1/posts?dry_run=true")
        .key(&key)
        .json(json!({"text": "hello", "account_ids": [account]}))
        .send()
        .await;
    assert_param(&r, "dry_run");
    assert_eq!(app.snapshot().await, before);
    let r = app.get("/v1/posts").key(&key).send().await;
    assert_eq!(r.body["data"].as_array().unwrap().len(), 0, "{}", r.text);
    // Without a key the answer is still 401, and the API's routes that take no key check too;
    // the probes and OAuth's endpoints ignore what they do not know (monitors' cache-busting
    // parameters; RFC 6749 §3.2).
    let r = app.get("/v1/keys?limt=5").send().await;
    r.assert_error(401, "unauthorized");
    let r = app
        .post("/v1/auth/device?dry=1")
        .json(json!({"client_name": "cli", "scopes": ["posts:read"]}))
        .send()
        .await;
    assert_param(&r, "dry");
    for path in [
        "/healthz?_=1",
        "/.well-known/oauth-authorization-server?x=1",
    ] {
        let r = app.get(path).send().await;
        assert_eq!(r.status, 200, "{path}: {}", r.text);
    }
    // At most 100 parameters, however long the query string.
    let many = vec!["limit=5"; 101].join("&");
    let r = app.get(&format!("/v1/keys?{many}")).key(&key).send().await;
    r.assert_error(400, "invalid_request");
    assert!(r.text.contains("at most 100"), "{}", r.text);
    let r = app
        .get(&format!("/v1/keys?{}", vec!["limit=5"; 100].join("&")))
        .key(&key)
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // Documented names pass, percent-encoded or not, repeated or empty.
    for query in [
        "q=a&limit=5",
        "%71=a&%6Cimit=5",
        "q=a&q=b",
        "q",
        "",
        "&&q=a",
    ] {
        let r = app
            .get(&format!("/v1/kb/search?{query}"))
            .key(&key)
            .send()
            .await;
        assert_eq!(r.status, 200, "{query}: {}", r.text);
    }
}

async fn unknown_ids_are_404() {
    let app = TestApp::new().await;
    let key = app.admin_key().await;
    let well_formed = format!("key_{}", "0123456789abcdefABCDEF");
    assert!(crier_core::ids::KeyId::parse(&well_formed).is_some());
    let before = app.snapshot().await;
    for id in [
        "nope",
        "key_",
        "key_short",
        "ws_0123456789abcdefABCDEF",
        well_formed.as_str(),
    ] {
        let path = format!("/v1/keys/{id}");
        app.get(&path)
            .key(&key)
            .send()
            .await
            .assert_error(404, "not_found");
        app.patch(&path)
            .key(&key)
            .json(json!({"name": "x"}))
            .send()
            .await
            .assert_error(404, "not_found");
        app.delete(&path)
            .key(&key)
            .send()
            .await
            .assert_error(404, "not_found");
        app.post(&format!("{path}/rotate"))
            .key(&key)
            .json(json!({}))
            .send()
            .await
            .assert_error(404, "not_found");
    }
    assert_eq!(app.snapshot().await, before);
}

async fn ip_and_origin_restrictions_are_403() {
    let app = TestApp::new().await;
    let (ip_key, _) = app
        .key(KeySpec {
            scopes: vec![Scope::KeysRead, Scope::KeysWrite],
            allowed_ips: Some(vec!["10.0.0.0/8".into()]),
            ..KeySpec::default()
        })
        .await;
    let (origin_key, _) = app
        .key(KeySpec {
            scopes: vec![Scope::KeysRead, Scope::KeysWrite],
            allowed_origins: Some(vec!["https://app.example.com".into()]),
            ..KeySpec::default()
        })
        .await;
    let before = app.snapshot().await;
    let r = app
        .post("/v1/keys")
        .key(&ip_key)
        .from_ip("192.0.2.1")
        .json(json!({"scopes": ["keys:read"]}))
        .send()
        .await;
    r.assert_error(403, "ip_not_allowed");
    let r = app
        .post("/v1/keys")
        .key(&origin_key)
        .header("origin", "https://evil.example.com")
        .json(json!({"scopes": ["keys:read"]}))
        .send()
        .await;
    r.assert_error(403, "origin_not_allowed");
    assert_eq!(app.snapshot().await, before);
    // Where they are allowed, they work; no Origin header is server-side code.
    let r = app
        .get("/v1/keys")
        .key(&ip_key)
        .from_ip("10.1.2.3")
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app.get("/v1/keys").key(&origin_key).send().await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app
        .get("/v1/keys")
        .key(&origin_key)
        .header("origin", "https://app.example.com")
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

async fn changing_a_revoked_key_is_409() {
    let app = TestApp::new().await;
    let key = app.admin_key().await;
    let (_, target) = app
        .key(KeySpec {
            scopes: vec![Scope::PostsRead],
            ..KeySpec::default()
        })
        .await;
    let path = format!("/v1/keys/{}", target.id);
    let r = app.delete(&path).key(&key).send().await;
    assert_eq!(r.status, 200, "{}", r.text);
    let before = app.snapshot().await;
    app.patch(&path)
        .key(&key)
        .json(json!({"name": "again"}))
        .send()
        .await
        .assert_error(409, "conflict");
    app.post(&format!("{path}/rotate"))
        .key(&key)
        .json(json!({}))
        .send()
        .await
        .assert_error(409, "conflict");
    assert_eq!(app.snapshot().await, before);
}

async fn too_many_requests_are_429_with_retry_after() {
    let app = TestApp::new().await;
    let (key, _) = app
        .key(KeySpec {
            scopes: vec![Scope::KeysRead, Scope::KeysWrite],
            per_minute: Some(2),
            ..KeySpec::default()
        })
        .await;
    for _ in 0..2 {
        let r = app.get("/v1/keys").key(&key).send().await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let before = app.snapshot().await;
    let r = app
        .post("/v1/keys")
        .key(&key)
        .json(json!({"scopes": ["keys:read"]}))
        .send()
        .await;
    r.assert_error(429, "rate_limited");
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(r.header("x-ratelimit-remaining"), Some("0"));
    assert_eq!(app.snapshot().await, before);
    app.clock.advance(Duration::from_secs(retry));
    let r = app.get("/v1/keys").key(&key).send().await;
    assert_eq!(r.status, 200, "{}", r.text);
}

async fn repeated_failed_authentications_are_throttled_per_address() {
    let app = TestApp::new().await;
    let mut throttled_after = None;
    for i in 0..60 {
        let fake = SecretKey::generate(KeyMode::Live);
        let r = app
            .get("/v1/keys")
            .key(fake.expose())
            .from_ip("198.51.100.7")
            .send()
            .await;
        if r.status == 429 {
            r.assert_error(429, "rate_limited");
            assert!(r.header("retry-after").is_some());
            throttled_after = Some(i);
            break;
        }
        r.assert_error(401, "unauthorized");
    }
    let n = throttled_after.expect("failed authentications were never throttled");
    assert!((20..=40).contains(&n), "throttled after {n} failures");
    // Another address is not affected.
    let fake = SecretKey::generate(KeyMode::Live);
    app.get("/v1/keys")
        .key(fake.expose())
        .from_ip("198.51.100.8")
        .send()
        .await
        .assert_error(401, "unauthorized");
}

async fn readiness_fails_with_503_when_storage_is_gone() {
    let app = TestApp::new().await;
    let r = app.get("/readyz").send().await;
    assert_eq!(r.status, 200, "{}", r.text);
    app.store.close().await;
    let r = app.get("/readyz").send().await;
    r.assert_error(503, "upstream_unavailable");
}

/// A node whose clock is off the database's claims no work (`crier serve`'s clock watch holds
/// its store's claims), and says so to whatever routes traffic by readiness.
async fn readiness_fails_while_claims_are_held() {
    let app = TestApp::new().await;
    app.store.hold_claims(true);
    let r = app.get("/readyz").send().await;
    r.assert_error(503, "upstream_unavailable");
    assert!(r.text.contains("clock"), "{}", r.text);
    app.store.hold_claims(false);
    let r = app.get("/readyz").send().await;
    assert_eq!(r.status, 200, "{}", r.text);
}

async fn every_response_carries_a_request_id() {
    let app = TestApp::new().await;
    let key = app.admin_key().await;
    let mut seen = std::collections::HashSet::new();
    let responses = vec![
        app.get("/healthz").send().await,
        app.get("/readyz").send().await,
        app.get("/metrics").send().await,
        app.get("/v1/openapi.json").send().await,
        app.get("/v1/workspace").key(&key).send().await,
        app.get("/v1/keys").key(&key).send().await,
        app.get("/v1/nope").send().await,
        app.get("/v1/keys/nope").key(&key).send().await,
        app.get("/v1/keys").send().await,
    ];
    for r in responses {
        let id = r
            .header("x-request-id")
            .unwrap_or_else(|| panic!("no X-Request-Id: {} {}", r.status, r.text))
            .to_owned();
        assert!(crier_core::ids::has_shape(&id, "req"), "{id}");
        assert!(seen.insert(id), "request ids are unique");
        if r.status.is_client_error() {
            assert_eq!(
                r.body["error"]["request_id"],
                r.header("x-request-id").unwrap()
            );
        }
    }
    let r = app.get("/healthz").send().await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["status"], "ok");
    let r = app.get("/readyz").send().await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["status"], "ready");
}

async fn cors_preflights_are_answered_for_any_origin_without_a_key() {
    let app = TestApp::new().await;
    for (path, method) in [
        ("/v1/keys", "POST"),
        ("/v1/keys/key_0123456789abcdefABCDEF", "PATCH"),
        ("/v1/workspace", "GET"),
    ] {
        let origin = "https://somewhere.example.org";
        let r = app
            .call(axum::http::Method::OPTIONS, path)
            .header("origin", origin)
            .header("access-control-request-method", method)
            .header(
                "access-control-request-headers",
                "authorization, content-type, idempotency-key",
            )
            .send()
            .await;
        assert!(r.status.is_success(), "{path}: {} {}", r.status, r.text);
        assert_eq!(r.header("access-control-allow-origin"), Some(origin));
        let methods = r.header("access-control-allow-methods").unwrap();
        assert!(methods.contains(method), "{methods}");
        let headers = r
            .header("access-control-allow-headers")
            .unwrap()
            .to_ascii_lowercase();
        assert!(headers.contains("authorization"), "{headers}");
        assert!(headers.contains("idempotency-key"), "{headers}");
        assert!(
            r.header("x-request-id")
                .is_some_and(|id| id.starts_with("req_")),
            "preflight without X-Request-Id"
        );
    }
    // The real request is what is checked, and it exposes the request id to the browser.
    let key = app.admin_key().await;
    let r = app
        .get("/v1/workspace")
        .key(&key)
        .header("origin", "https://somewhere.example.org")
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://somewhere.example.org")
    );
    let exposed = r
        .header("access-control-expose-headers")
        .unwrap()
        .to_ascii_lowercase();
    assert!(exposed.contains("x-request-id"), "{exposed}");
}

async fn boom() -> &'static str {
    panic!("a handler bug")
}

async fn a_panic_is_a_500_in_the_envelope() {
    let app = TestApp::new().await;
    let router = Router::new()
        .route("/boom", get(boom))
        .route("/fine", get(|| async { "fine" }))
        .layer(from_fn_with_state(
            app.state.clone(),
            crier_api::context::request_context,
        ))
        .with_state(app.state.clone());
    let resp = router
        .clone()
        .oneshot(Request::get("/boom").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), 500);
    let id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(id.starts_with("req_"));
    let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("application/json"), "{ct}");
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(body["error"]["code"], "internal_error");
    assert_eq!(body["error"]["request_id"], id.as_str());
    let text = String::from_utf8_lossy(&bytes);
    assert!(!text.contains("a handler bug"), "the panic leaked: {text}");
    // The layer keeps serving after a panic.
    let resp = router
        .oneshot(Request::get("/fine").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let metrics = app.state.metrics().render();
    assert!(
        metrics.contains("status=\"500\"} 1"),
        "the 500 is counted: {metrics}"
    );
}

async fn metrics_count_requests_and_auth_failures() {
    let app = TestApp::new().await;
    let key = app.admin_key().await;
    let r = app.get("/v1/keys").key(&key).send().await;
    assert_eq!(r.status, 200);
    let fake = SecretKey::generate(KeyMode::Live);
    app.get("/v1/keys")
        .key(fake.expose())
        .send()
        .await
        .assert_error(401, "unauthorized");
    app.get("/v1/keys/nope")
        .key(&key)
        .send()
        .await
        .assert_error(404, "not_found");
    app.get("/v1/nowhere/at/all")
        .send()
        .await
        .assert_error(404, "not_found");
    let r = app.get("/metrics").send().await;
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    let m = &r.text;
    for line in [
        "crier_http_requests_total{method=\"GET\",route=\"/v1/keys\",status=\"200\"} 1",
        "crier_http_requests_total{method=\"GET\",route=\"/v1/keys\",status=\"401\"} 1",
        "crier_http_requests_total{method=\"GET\",route=\"/v1/keys/{id}\",status=\"404\"} 1",
        // Unmatched paths share one label, so random URLs cannot blow up the series count.
        "crier_http_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"} 1",
        "crier_auth_failures_total{reason=\"unknown\"} 1",
    ] {
        assert!(m.contains(line), "missing `{line}` in:\n{m}");
    }
    assert!(!m.contains("/v1/nowhere"), "raw paths leaked into labels");
    assert!(!m.contains(&key[..12]), "a key prefix in the metrics");
}

async fn metric_labels_come_from_closed_sets() {
    let app = TestApp::new().await;
    // Made-up methods, some long: each would have been a series of its own.
    for i in 0..50 {
        let name = format!("X{i}{}", "M".repeat(i * 100));
        let method = axum::http::Method::from_bytes(name.as_bytes()).unwrap();
        let r = app.call(method, "/v1/keys").send().await;
        assert!(r.status.is_client_error(), "{}", r.text);
        let r = app
            .call(
                axum::http::Method::from_bytes(name.as_bytes()).unwrap(),
                &format!("/random/{i}"),
            )
            .send()
            .await;
        r.assert_error(404, "not_found");
    }
    let m = app.get("/metrics").send().await.text;
    assert!(!m.contains("X1"), "a made-up method became a label:\n{m}");
    assert!(!m.contains("/random/"), "a raw path became a label");
    assert!(
        m.contains(
            "crier_http_requests_total{method=\"OTHER\",route=\"unmatched\",status=\"404\"} 50"
        ),
        "{m}"
    );
    let series = m
        .lines()
        .filter(|l| l.starts_with("crier_http_requests_total{"))
        .count();
    assert!(series <= 3, "{series} series:\n{m}");
    assert!(m.len() < 8 * 1024, "{} bytes of metrics", m.len());
}

async fn path_parameters_that_are_not_utf8_are_400_in_the_envelope() {
    let app = TestApp::new().await;
    let key = app.admin_key().await;
    let before = app.snapshot().await;
    let posts_before = app.posts_snapshot().await;
    for (method, path, param) in [
        ("GET", "/v1/posts/%FF", "id"),
        ("PATCH", "/v1/posts/%FF", "id"),
        ("DELETE", "/v1/posts/%FF", "id"),
        ("POST", "/v1/posts/%FF/schedule", "id"),
        ("GET", "/v1/keys/%C3%28", "id"),
        ("DELETE", "/v1/keys/%FF", "id"),
        ("POST", "/v1/keys/%FF/rotate", "id"),
        ("GET", "/v1/feeds/%FF", "id"),
        ("GET", "/v1/accounts/%FF/timeline", "id"),
        ("POST", "/v1/connect/%FF", "platform"),
        ("GET", "/v1/webhooks/%FF", "id"),
        (
            "POST",
            "/v1/webhooks/we_x/deliveries/%FF/redeliver",
            "delivery_id",
        ),
    ] {
        let r = app
            .call(method.parse().unwrap(), path)
            .key(&key)
            .json(json!({}))
            .send()
            .await;
        assert_eq!(r.status, 400, "{method} {path}: {}", r.text);
        assert_param(&r, param);
    }
    assert_eq!(app.snapshot().await, before);
    assert_eq!(app.posts_snapshot().await, posts_before);
}

async fn analytics_periods_at_the_edge_of_time_are_400_not_500() {
    let app = TestApp::new().await;
    let key = app.key_with(&[Scope::AnalyticsRead]).await;
    // The earliest time is -009999-01-02T01:59:59Z; thirty days before these is earlier.
    for to in [
        "-009999-01-03T00:00:00Z",
        "-009999-01-29T23:59:59Z",
        "-009999-01-31T00:00:00%2B01:00",
    ] {
        let r = app
            .get(&format!("/v1/accounts/analytics?to={to}"))
            .key(&key)
            .send()
            .await;
        assert_param(&r, "to");
    }
    // The same `to` with an explicit `from` before it is a period like any other.
    let r = app
        .get("/v1/accounts/analytics?from=-009999-01-03T00:00:00Z&to=-009999-01-04T00:00:00Z")
        .key(&key)
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // The far end works without `from`.
    let r = app
        .get("/v1/accounts/analytics?to=9999-12-30T00:00:00Z")
        .key(&key)
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // Out of range altogether is not a time.
    let r = app
        .get("/v1/accounts/analytics?to=-010000-01-01T00:00:00Z")
        .key(&key)
        .send()
        .await;
    assert_param(&r, "to");
}

/// JSON has one number type: `30.0` is the integer 30 (as the OpenAPI description's JSON
/// Schema says), `30.5` is not. A body that is not an object is refused whole.
async fn whole_number_floats_are_integers_and_bodies_are_objects() {
    let app = TestApp::new().await;
    let key = app.admin_key().await;
    let r = app
        .post("/v1/keys")
        .key(&key)
        .json(json!({"name": "floats", "scopes": ["posts:read"],
            "rate_limit": {"per_minute": 30.0, "per_day": 1e3}}))
        .send()
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["rate_limit"]["per_minute"], 30);
    assert_eq!(r.body["rate_limit"]["per_day"], 1000);

    let before = app.snapshot().await;
    let r = app
        .post("/v1/keys")
        .key(&key)
        .json(json!({"name": "fraction", "scopes": ["posts:read"],
            "rate_limit": {"per_minute": 30.5}}))
        .send()
        .await;
    r.assert_error(400, "invalid_request");
    assert_eq!(
        r.body["error"]["param"], "rate_limit.per_minute",
        "{}",
        r.text
    );
    // Arrays and other non-objects at the top: serde would read a struct from `[null, null]`.
    for body in [
        json!([null, null]),
        json!([]),
        json!(7),
        json!("x"),
        json!(null),
    ] {
        let r = app
            .patch("/v1/workspace")
            .key(&key)
            .json(body.clone())
            .send()
            .await;
        r.assert_error(400, "invalid_request");
        assert!(r.text.contains("JSON object"), "{body}: {}", r.text);
    }
    assert_eq!(app.snapshot().await, before, "nothing changed");

    // A key given twice is refused, not read as its last copy.
    let r = app
        .post("/v1/keys")
        .key(&key)
        .header("content-type", "application/json")
        .raw(r#"{"name":"a","name":"b","scopes":["posts:read"]}"#)
        .send()
        .await;
    r.assert_error(400, "invalid_request");
    assert!(r.text.contains("duplicate"), "{}", r.text);
    // Numbers inside strings are text: a name "30.0" stays "30.0".
    let r = app
        .post("/v1/keys")
        .key(&key)
        .json(json!({"name": "30.0 -1e3", "scopes": ["posts:read"]}))
        .send()
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["name"], "30.0 -1e3");
}

both!(
    tests: unknown_routes_are_404_in_the_envelope,
    a_known_route_with_another_method_is_405,
    a_body_over_one_mebibyte_is_413,
    a_body_that_is_not_json_is_415,
    bad_json_is_400_and_names_the_field,
    missing_malformed_and_unknown_keys_are_401,
    two_different_keys_in_two_headers_are_400,
    bad_pagination_is_400_with_param,
    unknown_query_parameters_are_400_with_param,
    unknown_ids_are_404,
    ip_and_origin_restrictions_are_403,
    changing_a_revoked_key_is_409,
    too_many_requests_are_429_with_retry_after,
    repeated_failed_authentications_are_throttled_per_address,
    readiness_fails_with_503_when_storage_is_gone,
    readiness_fails_while_claims_are_held,
    every_response_carries_a_request_id,
    cors_preflights_are_answered_for_any_origin_without_a_key,
    a_panic_is_a_500_in_the_envelope,
    metrics_count_requests_and_auth_failures,
    metric_labels_come_from_closed_sets,
    path_parameters_that_are_not_utf8_are_400_in_the_envelope,
    analytics_periods_at_the_edge_of_time_are_400_not_500,
    whole_number_floats_are_integers_and_bodies_are_objects,
);
