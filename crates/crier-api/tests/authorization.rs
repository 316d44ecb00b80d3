//! The authorization matrix, read from the OpenAPI description: every `/v1` operation that
//! declares a scope refuses a key lacking exactly that scope with `403 forbidden_scope`, and
//! lets a key holding only that scope past the scope check. Plus tenant isolation (another
//! workspace's ids do not exist), test-mode isolation, and the paid-scope check (402).
mod common;

use std::marker::PhantomData;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request};
use axum::middleware::from_fn_with_state;
use axum::routing::get;
use common::{KeySpec, NowMs, TestApp, both};
use crier_api::auth::{Auth, Principal, RequiredScope};
use crier_core::{ErrorCode, KeyMode, Scope};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

/// One operation of the OpenAPI description that needs a key.
#[derive(Debug, Clone)]
struct Operation {
    method: Method,
    path: String,
    /// `None`: any valid key.
    scope: Option<Scope>,
}

impl Operation {
    fn label(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    fn has_id(&self) -> bool {
        self.path.contains("{id}")
    }

    fn with_id(&self, id: &str) -> String {
        self.path.replace("{id}", id)
    }
}

fn scope_named(name: &str) -> Scope {
    *Scope::ALL
        .iter()
        .find(|s| s.as_str() == name)
        .unwrap_or_else(|| panic!("the OpenAPI description names an unknown scope `{name}`"))
}

/// Every `/v1/…` operation with a `security` requirement, from the served description.
async fn operations(app: &TestApp) -> Vec<Operation> {
    let r = app.get("/v1/openapi.json").send().await;
    assert_eq!(r.status, 200, "{}", r.text);
    // The served document is the one the code builds.
    assert_eq!(
        r.body,
        serde_json::to_value(crier_api::routes::openapi()).unwrap()
    );
    let mut ops = Vec::new();
    for (path, item) in r.body["paths"].as_object().expect("paths") {
        if !path.starts_with("/v1/") {
            continue;
        }
        for (method, op) in item.as_object().expect("path item") {
            let Ok(method) = method.to_uppercase().parse::<Method>() else {
                continue;
            };
            let Some(security) = op.get("security").and_then(Value::as_array) else {
                continue;
            };
            // Public operations (sign-in, device login) declare an empty requirement.
            if security
                .iter()
                .any(|req| req.as_object().is_some_and(|o| o.is_empty()))
            {
                continue;
            }
            let bearer: Vec<&str> = security
                .iter()
                .find_map(|req| req.get("bearer"))
                .unwrap_or_else(|| panic!("{method} {path}: security without `bearer`"))
                .as_array()
                .expect("scope list")
                .iter()
                .map(|s| s.as_str().expect("scope name"))
                .collect();
            // `X-API-Key` must demand the same as `Authorization: Bearer`.
            let api_key: Option<Vec<&str>> =
                security.iter().find_map(|req| req.get("api_key")).map(|l| {
                    l.as_array()
                        .unwrap()
                        .iter()
                        .map(|s| s.as_str().unwrap())
                        .collect()
                });
            assert_eq!(
                api_key.as_ref(),
                Some(&bearer),
                "{method} {path}: api_key and bearer requirements differ"
            );
            assert!(
                bearer.len() <= 1,
                "{method} {path}: an operation declares at most one scope, got {bearer:?}"
            );
            ops.push(Operation {
                method,
                path: path.clone(),
                scope: bearer.first().map(|s| scope_named(s)),
            });
        }
    }
    ops
}

fn all_but(scope: Scope) -> Vec<Scope> {
    Scope::ALL.iter().copied().filter(|s| *s != scope).collect()
}

/// A body that is valid for the operation when the key holds `scope`, so that the only thing
/// a refusal can be about is the scope. Unknown operations get `{}`.
fn minimal_body(op: &Operation, scope: Option<Scope>) -> Value {
    match (op.method.as_str(), op.path.as_str()) {
        ("POST", "/v1/keys") => json!({
            "name": "matrix",
            "scopes": [scope.unwrap_or(Scope::KeysRead).as_str()],
        }),
        ("PATCH", "/v1/keys/{id}") => json!({"name": "renamed by the matrix"}),
        ("PATCH", "/v1/workspace") => json!({"require_approval": false}),
        _ => json!({}),
    }
}

async fn send(
    app: &TestApp,
    op: &Operation,
    key: &str,
    id: &str,
    body: Option<Value>,
) -> common::Response {
    let call = app.call(op.method.clone(), &op.with_id(id)).key(key);
    match body {
        Some(b) => call.json(b).send().await,
        None => call.send().await,
    }
}

fn sends_body(method: &Method) -> bool {
    *method == Method::POST || *method == Method::PATCH || *method == Method::PUT
}

async fn every_operation_refuses_a_key_without_its_scope() {
    let app = TestApp::new().await;
    let ops = operations(&app).await;
    let mut checked = Vec::new();
    for op in ops.iter() {
        let Some(scope) = op.scope else { continue };
        let key = app.key_with(&all_but(scope)).await;
        // A target the caller could otherwise act on: narrower than the caller.
        let (_, target) = app
            .key(KeySpec {
                scopes: vec![Scope::PostsRead],
                ..KeySpec::default()
            })
            .await;
        let before = app.snapshot().await;
        let body = sends_body(&op.method).then(|| minimal_body(op, Some(scope)));
        let r = send(&app, op, &key, target.id.as_str(), body).await;
        r.assert_error(403, "forbidden_scope");
        let message = r.body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(scope.as_str()),
            "{}: the message must name `{scope}`: {message}",
            op.label()
        );
        assert_eq!(
            app.snapshot().await,
            before,
            "{}: a refused call changed storage",
            op.label()
        );
        checked.push(op.label());
    }
    // The matrix must not pass by walking nothing: today's routes with a scope.
    for expected in [
        "GET /v1/keys",
        "POST /v1/keys",
        "GET /v1/keys/{id}",
        "PATCH /v1/keys/{id}",
        "DELETE /v1/keys/{id}",
        "POST /v1/keys/{id}/rotate",
        "PATCH /v1/workspace",
    ] {
        assert!(
            checked.iter().any(|c| c == expected),
            "{expected} was not in the matrix: {checked:?}"
        );
    }
}

async fn every_operation_lets_a_key_with_only_its_scope_through() {
    let app = TestApp::new().await;
    let ops = operations(&app).await;
    assert!(
        ops.len() >= 8,
        "expected at least the 8 current operations, found {}: {ops:?}",
        ops.len()
    );
    let mut covered = 0;
    for op in &ops {
        // Logout ends a session: with an API key it is `403` whatever the key's scopes (a key
        // is revoked instead; tests/auth_sessions.rs).
        if op.label().ends_with("/v1/auth/logout") {
            continue;
        }
        // An operation open to any valid key must be open to a key with any single scope.
        let candidates: Vec<Scope> = match op.scope {
            Some(s) => vec![s],
            None => Scope::ALL.to_vec(),
        };
        for scope in candidates {
            let (key, _) = app
                .key(KeySpec {
                    scopes: vec![scope],
                    ..KeySpec::default()
                })
                .await;
            // A key no wider than the caller, so no-escalation rules do not answer 403 either.
            let (_, target) = app
                .key(KeySpec {
                    scopes: vec![scope],
                    ..KeySpec::default()
                })
                .await;
            let body = sends_body(&op.method).then(|| minimal_body(op, Some(scope)));
            let r = send(&app, op, &key, target.id.as_str(), body).await;
            assert_ne!(
                r.status,
                403,
                "{} with only `{scope}` was refused: {}",
                op.label(),
                r.text
            );
            assert_ne!(r.status, 401, "{}: {}", op.label(), r.text);
            // For today's operations the body and target are valid, so they must succeed; an
            // operation added later only has to get past the scope check.
            if op.path.starts_with("/v1/keys") || op.path == "/v1/workspace" {
                assert!(
                    r.status.is_success(),
                    "{} with only `{scope}` and a valid body should succeed: {}",
                    op.label(),
                    r.text
                );
            }
        }
        covered += 1;
    }
    assert!(covered >= 8, "covered only {covered} operations");
}

async fn another_workspaces_keys_do_not_exist() {
    let app = TestApp::new().await;
    let ops = operations(&app).await;
    let admin = app.admin_key().await;
    let ws_b = app.other_workspace("b").await;
    let mut covered = Vec::new();
    for op in ops.iter().filter(|op| op.has_id()) {
        let (_, theirs) = app
            .key_in(
                &ws_b,
                KeySpec {
                    scopes: vec![Scope::PostsRead],
                    ..KeySpec::default()
                },
            )
            .await;
        let body = sends_body(&op.method).then(|| minimal_body(op, op.scope));
        let r = send(&app, op, &admin, theirs.id.as_str(), body).await;
        r.assert_error(404, "not_found");
        let after = app
            .store
            .get_key(&ws_b.id, &theirs.id)
            .await
            .unwrap()
            .expect("workspace b's key is still there");
        assert_eq!(after, theirs, "{} changed workspace b's key", op.label());
        covered.push(op.label());
    }
    // Nor does it show up in A's list.
    let r = app.get("/v1/keys").key(&admin).send().await;
    assert_eq!(r.status, 200, "{}", r.text);
    let b_keys = app.store.list_keys(&ws_b.id, None, 500, 0).await.unwrap();
    assert_eq!(b_keys.items.len(), covered.len());
    for k in &b_keys.items {
        assert!(!r.text.contains(k.id.as_str()), "A's list shows B's key");
    }
    assert!(
        covered.len() >= 4,
        "expected the 4 key operations with an id, got {covered:?}"
    );
}

async fn a_test_mode_key_cannot_see_or_touch_live_keys() {
    let app = TestApp::new().await;
    let ops = operations(&app).await;
    let (test_admin, test_row) = app
        .key(KeySpec {
            scopes: Scope::ALL.to_vec(),
            mode: Some(KeyMode::Test),
            ..KeySpec::default()
        })
        .await;
    let (_, other_test) = app
        .key(KeySpec {
            scopes: vec![Scope::PostsRead],
            mode: Some(KeyMode::Test),
            ..KeySpec::default()
        })
        .await;
    let mut live_ids = Vec::new();
    let mut covered = 0;
    for op in ops.iter().filter(|op| op.has_id()) {
        let (_, live) = app
            .key(KeySpec {
                scopes: vec![Scope::PostsRead],
                ..KeySpec::default()
            })
            .await;
        let body = sends_body(&op.method).then(|| minimal_body(op, op.scope));
        let r = send(&app, op, &test_admin, live.id.as_str(), body).await;
        r.assert_error(404, "not_found");
        let after = app
            .store
            .get_key(&app.workspace.id, &live.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(after, live, "{} changed a live key", op.label());
        live_ids.push(live.id);
        covered += 1;
    }
    assert!(covered >= 4, "covered {covered} operations with an id");

    let r = app.get("/v1/keys").key(&test_admin).send().await;
    assert_eq!(r.status, 200, "{}", r.text);
    let data = r.body["data"].as_array().unwrap();
    let ids: Vec<&str> = data.iter().map(|k| k["id"].as_str().unwrap()).collect();
    assert!(
        data.iter()
            .all(|k| k["mode"] == "test" && k["livemode"] == false),
        "a test key listed a live key: {}",
        r.text
    );
    assert!(ids.contains(&test_row.id.as_str()));
    assert!(ids.contains(&other_test.id.as_str()));
    assert_eq!(ids.len(), 2, "{}", r.text);
    for live in &live_ids {
        assert!(!ids.contains(&live.as_str()));
    }

    // A live key does see both kinds, so the list above was filtered, not empty by accident.
    // (Every page: one key was made per operation, more than a page.)
    let live_admin = app.admin_key().await;
    let mut all = String::new();
    for offset in (0..).step_by(50) {
        let r = app
            .get(&format!("/v1/keys?limit=50&offset={offset}"))
            .key(&live_admin)
            .send()
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        all.push_str(&r.text);
        if r.body["has_more"] != true {
            break;
        }
    }
    assert!(all.contains(test_row.id.as_str()));
    assert!(all.contains(live_ids[0].as_str()));
}

/// A route needing `posts:publish`, for the paid-scope check over HTTP: there is no posts route
/// yet, so the test mounts one behind the real auth and request-context layers.
struct NeedsPublish;
impl RequiredScope for NeedsPublish {
    const SCOPE: Option<Scope> = Some(Scope::PostsPublish);
}

async fn publish_probe(Auth(p, PhantomData): Auth<NeedsPublish>) -> String {
    p.key_id().to_string()
}

fn publish_router(app: &TestApp) -> Router {
    Router::new()
        .route("/v1/probe", get(publish_probe))
        .route_layer(from_fn_with_state(
            app.state.clone(),
            crier_api::auth::authenticate,
        ))
        .layer(from_fn_with_state(
            app.state.clone(),
            crier_api::context::request_context,
        ))
        .with_state(app.state.clone())
}

async fn probe(router: &Router, key: &str) -> (u16, Value, Option<String>) {
    let mut req = Request::get("/v1/probe")
        .header("authorization", format!("Bearer {key}"))
        .body(Body::empty())
        .unwrap();
    req.extensions_mut()
        .insert(ConnectInfo(std::net::SocketAddr::from((
            [127, 0, 0, 1],
            40000,
        ))));
    let resp = router.clone().oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let id = resp
        .headers()
        .get("x-request-id")
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        id,
    )
}

/// The principal a real verification of `key` yields (as the auth layer would build it).
async fn principal(app: &TestApp, key: &str) -> Principal {
    let plans = |name: &str| app.state.plan(name);
    let now = app.clock.now_ms_value();
    match app
        .state
        .auth()
        .verify(app.state.store(), &plans, key, None, None, now)
        .await
    {
        Ok(v) => v.principal,
        Err((e, _)) => panic!("a stored key must verify, got {:?}", e.code),
    }
}

// No route needs a paid scope yet, so this checks `Principal::require` two ways: directly, on
// principals from a real verification of stored keys, and over HTTP through a probe route that
// this test mounts behind the real `authenticate` and `request_context` layers.
async fn a_paid_scope_on_the_free_plan_is_payment_required() {
    let app = TestApp::with_plan("free").await;
    let (with_publish, _) = app
        .key(KeySpec {
            scopes: vec![Scope::PostsPublish, Scope::PostsRead],
            ..KeySpec::default()
        })
        .await;
    let without_publish = app.key_with(&[Scope::PostsRead]).await;

    let paid = principal(&app, &with_publish).await;
    assert_eq!(paid.plan().name, "free");
    let err = paid.require(Scope::PostsPublish).unwrap_err();
    assert_eq!(err.code, ErrorCode::PaymentRequired);
    assert_eq!(err.code.http_status(), 402);
    assert!(err.message.contains("free"), "{}", err.message);
    // An unpaid scope the key holds is fine on the free plan.
    assert!(paid.require(Scope::PostsRead).is_ok());
    // Lacking the scope is a 403 first, whatever the plan.
    let unpaid = principal(&app, &without_publish).await;
    assert_eq!(
        unpaid.require(Scope::PostsPublish).unwrap_err().code,
        ErrorCode::ForbiddenScope
    );

    let router = publish_router(&app);
    let (status, body, id) = probe(&router, &with_publish).await;
    assert_eq!(status, 402, "{body}");
    assert_eq!(body["error"]["code"], "payment_required");
    assert_eq!(body["error"]["request_id"].as_str(), id.as_deref());
    let (status, body, _) = probe(&router, &without_publish).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "forbidden_scope");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("posts:publish")
    );

    // On a plan that includes it, the same scope passes.
    let pro = TestApp::with_plan("pro").await;
    let key = pro.key_with(&[Scope::PostsPublish]).await;
    let (status, body, _) = probe(&publish_router(&pro), &key).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        principal(&pro, &key)
            .await
            .require(Scope::PostsPublish)
            .is_ok()
    );
}

both!(
    tests: every_operation_refuses_a_key_without_its_scope,
    every_operation_lets_a_key_with_only_its_scope_through,
    another_workspaces_keys_do_not_exist,
    a_test_mode_key_cannot_see_or_touch_live_keys,
    a_paid_scope_on_the_free_plan_is_payment_required,
);
