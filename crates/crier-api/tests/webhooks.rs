//! `/v1/webhooks` over HTTP: endpoints (the secret shown once, at creation and at rotation,
//! never in reads), URL and event validation with the SSRF rules at creation, updates,
//! deletion, secret rotation with its overlap, test events and the delivery log, redelivery,
//! and tenancy (another workspace's or the other mode's endpoint is not found). Refused writes
//! leave storage as it was. Deliveries are made by a `Deliverer` driven by the test, on the
//! app's manual clock, to a receiver on 127.0.0.1.
mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::HeaderMap;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::{KeySpec, NowMs, Response, TestApp, both};
use crier_api::ApiConfig;
use crier_app::webhook_secrets;
use crier_core::ids::WebhookId;
use crier_core::{KeyMode, Scope};
use crier_store::{AttemptOutcome, event_types};
use crier_worker::webhooks::{Deliverer, WebhookConfig, new_secret, sign};
use serde_json::{Value, json};

/// A public address (an IP literal, so no name is looked up).
const PUBLIC_URL: &str = "https://93.184.216.34/hooks/crier";

/// Private, loopback, link-local and metadata destinations.
const PRIVATE_URLS: &[&str] = &[
    "http://10.0.0.1/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::1]:8080/hook",
    "http://localhost:3000/hook",
    "http://127.0.0.1:9000/hook",
    "http://192.168.1.10/hook",
];

fn private_allowed() -> ApiConfig {
    ApiConfig {
        allow_private_networks: true,
        ..ApiConfig::default()
    }
}

/// A key with both webhook scopes in `mode`.
async fn webhooks_key(app: &TestApp, mode: KeyMode) -> String {
    app.key(KeySpec {
        scopes: vec![Scope::WebhooksRead, Scope::WebhooksWrite],
        mode: Some(mode),
        ..KeySpec::default()
    })
    .await
    .0
}

#[track_caller]
fn assert_param(r: &Response, param: &str) {
    r.assert_error(400, "invalid_request");
    assert_eq!(r.body["error"]["param"], param, "param; body: {}", r.text);
}

/// `POST /v1/webhooks`, asserting `201`; returns the body (with its `secret`).
async fn create(app: &TestApp, key: &str, body: Value) -> Value {
    let r = app.post("/v1/webhooks").key(key).json(body).send().await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

/// Everything webhooks keep, as text: endpoints (every column that matters), events,
/// deliveries, attempts and jobs. Equal snapshots mean a request changed nothing.
async fn storage(app: &TestApp) -> Vec<Vec<Option<String>>> {
    vec![
        app.raw_texts(
            "SELECT id || '|' || workspace_id || '|' || livemode || '|' || url || '|'
                || description || '|' || events || '|' || enabled || '|'
                || COALESCE(disabled_reason, '') || '|' || secret || '|'
                || COALESCE(previous_secret, '') || '|' || COALESCE(CAST(previous_secret_until AS TEXT), '')
                || '|' || COALESCE(CAST(failing_since AS TEXT), '') || '|' || updated_at
             FROM webhook_endpoints ORDER BY id",
        )
        .await,
        app.raw_texts("SELECT id || '|' || type FROM events ORDER BY id")
            .await,
        app.raw_texts(
            "SELECT id || '|' || endpoint_id || '|' || status || '|' || attempts
             FROM webhook_deliveries ORDER BY id",
        )
        .await,
        app.raw_texts("SELECT id FROM webhook_attempts ORDER BY id")
            .await,
        app.raw_texts("SELECT id || '|' || run_at || '|' || locked_until FROM jobs ORDER BY id")
            .await,
    ]
}

async fn stored(app: &TestApp, id: &str) -> crier_store::Endpoint {
    app.store
        .get_endpoint(&app.workspace.id, &WebhookId::parse(id).unwrap())
        .await
        .unwrap()
        .expect("the endpoint is stored")
}

/// A stored secret opened with the server's keys (it is stored sealed, never as shown).
fn opened(app: &TestApp, e: &crier_store::Endpoint, stored: &str) -> String {
    assert!(stored.starts_with("v1.test."), "sealed: {stored}");
    webhook_secrets::open(app.state.app().keyring(), &e.id, stored).expect("opens")
}

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> &str {
        self.headers[name].to_str().unwrap()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    fn signatures(&self) -> Vec<String> {
        self.header("webhook-signature")
            .split(' ')
            .map(str::to_owned)
            .collect()
    }

    #[track_caller]
    fn signed_with(&self, secret: &str) -> bool {
        let ts: i64 = self.header("webhook-timestamp").parse().unwrap();
        let expected = sign(secret, self.header("webhook-id"), ts, &self.body).unwrap();
        self.signatures().contains(&expected)
    }
}

/// An HTTP server on 127.0.0.1 that answers `200 ok` and records every request.
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    async fn start() -> Self {
        let got: Arc<Mutex<Vec<Received>>> = Default::default();
        let seen = got.clone();
        let app =
            axum::Router::new().fallback(move |headers: HeaderMap, body: axum::body::Bytes| {
                let seen = seen.clone();
                async move {
                    seen.lock().unwrap().push(Received {
                        headers,
                        body: body.to_vec(),
                    });
                    "ok"
                }
            });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, got }
    }

    fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }
}

/// A deliverer over the app's store and clock, private networks allowed (the receiver is on
/// 127.0.0.1).
fn deliverer(app: &TestApp) -> Deliverer {
    Deliverer::new(
        app.store.clone(),
        Arc::new(app.clock.clone()),
        app.state.app().keyring().clone(),
        WebhookConfig {
            allow_private_networks: true,
            timeout: Duration::from_secs(5),
            ..WebhookConfig::default()
        },
    )
}

async fn deliveries(app: &TestApp, key: &str, id: &str) -> Vec<Value> {
    let r = app
        .get(&format!("/v1/webhooks/{id}/deliveries"))
        .key(key)
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["has_more"], false);
    r.body["data"].as_array().unwrap().clone()
}

// ---------------------------------------------------------------------------------------------
// Create, read, list
// ---------------------------------------------------------------------------------------------

async fn create_shows_the_secret_once() {
    let app = TestApp::new().await;
    let key = webhooks_key(&app, KeyMode::Test).await;
    let r = app
        .post("/v1/webhooks")
        .key(&key)
        .json(json!({
            "url": PUBLIC_URL,
            "events": ["post.published", "key.created", "post.published"],
            "description": "  production  ",
        }))
        .send()
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let e = &r.body;
    let id = id_of(e);
    assert!(id.starts_with("whep_"), "{id}");
    assert_eq!(e["object"], "webhook_endpoint");
    assert_eq!(e["url"], PUBLIC_URL);
    assert_eq!(e["events"], json!(["key.created", "post.published"]));
    assert_eq!(e["description"], "production");
    assert_eq!(e["enabled"], true);
    assert_eq!(e["disabled_reason"], Value::Null);
    assert_eq!(e["livemode"], false, "a test key makes test endpoints");
    assert_eq!(e["failing_since"], Value::Null);
    let secret = e["secret"].as_str().unwrap().to_owned();
    let raw = STANDARD
        .decode(secret.strip_prefix("whsec_").expect("whsec_"))
        .unwrap();
    assert_eq!(raw.len(), 32);
    let s = stored(&app, &id).await;
    assert_eq!(
        opened(&app, &s, &s.secret),
        secret,
        "the secret signed with"
    );
    assert!(
        app.raw_texts("SELECT secret FROM webhook_endpoints")
            .await
            .iter()
            .all(|t| !t.as_deref().unwrap().contains(&secret)),
        "never stored as shown"
    );

    // Never again: not in a read, not in the list.
    let got = app
        .get(&format!("/v1/webhooks/{id}"))
        .key(&key)
        .send()
        .await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body.get("secret"), None);
    assert!(!got.text.contains(&secret));
    let mut without = e.clone();
    without.as_object_mut().unwrap().remove("secret");
    assert_eq!(got.body, without, "the same endpoint, less its secret");
    let list = app.get("/v1/webhooks").key(&key).send().await;
    assert_eq!(list.status, 200);
    assert_eq!(list.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(list.body["data"][0], without);
    assert!(!list.text.contains(&secret));

    // A second endpoint gets its own secret; the list is newest first.
    let second = create(&app, &key, json!({"url": PUBLIC_URL, "events": ["*"]})).await;
    assert_ne!(second["secret"], e["secret"]);
    let list = app.get("/v1/webhooks").key(&key).send().await;
    let ids: Vec<&str> = list.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![second["id"].as_str().unwrap(), id.as_str()]);
}

async fn scopes_are_required() {
    let app = TestApp::new().await;
    let read = app.key_with(&[Scope::WebhooksRead]).await;
    let none = app.key_with(&[Scope::PostsRead]).await;
    let before = storage(&app).await;
    let r = app
        .post("/v1/webhooks")
        .key(&read)
        .json(json!({"url": PUBLIC_URL, "events": ["*"]}))
        .send()
        .await;
    r.assert_error(403, "forbidden_scope");
    app.get("/v1/webhooks")
        .key(&none)
        .send()
        .await
        .assert_error(403, "forbidden_scope");
    assert_eq!(app.get("/v1/webhooks").key(&read).send().await.status, 200);
    assert_eq!(storage(&app).await, before);
}

// ---------------------------------------------------------------------------------------------
// Validation and the SSRF rules
// ---------------------------------------------------------------------------------------------

async fn bad_endpoints_are_refused_and_change_nothing() {
    let app = TestApp::new().await;
    let key = webhooks_key(&app, KeyMode::Live).await;
    let before = storage(&app).await;
    let post = |body: Value| {
        let app = &app;
        let key = key.clone();
        async move { app.post("/v1/webhooks").key(&key).json(body).send().await }
    };

    for url in [
        "ftp://example.com/hook",
        "file:///etc/passwd",
        "gopher://93.184.216.34/",
    ] {
        let r = post(json!({"url": url, "events": ["*"]})).await;
        assert_param(&r, "url");
        assert!(
            r.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("http"),
            "{url}: {}",
            r.text
        );
    }
    for url in ["not a url", "https://user:pw@93.184.216.34/", ""] {
        assert_param(&post(json!({"url": url, "events": ["*"]})).await, "url");
    }
    for url in PRIVATE_URLS {
        let r = post(json!({"url": url, "events": ["*"]})).await;
        assert_param(&r, "url");
        assert!(r.text.contains("private"), "{url}: {}", r.text);
    }
    // This machine's name, if it resolves to loopback only: refused by resolving it.
    if let Some(host) = loopback_hostname().await {
        let r = post(json!({"url": format!("http://{host}:8080/"), "events": ["*"]})).await;
        assert_param(&r, "url");
        assert!(r.text.contains("resolves to a private"), "{}", r.text);
    }

    assert_param(
        &post(json!({"url": PUBLIC_URL, "events": ["post.exploded"]})).await,
        "events",
    );
    assert_param(
        &post(json!({"url": PUBLIC_URL, "events": ["post.published", "*.*"]})).await,
        "events",
    );
    assert_param(
        &post(json!({"url": PUBLIC_URL, "events": []})).await,
        "events",
    );
    let twenty_one: Vec<&str> = event_types::ALL.iter().cycle().take(21).copied().collect();
    let r = post(json!({"url": PUBLIC_URL, "events": twenty_one})).await;
    assert_param(&r, "events");
    assert!(r.text.contains("20"), "{}", r.text);
    assert_param(
        &post(json!({"url": PUBLIC_URL, "events": ["*"], "description": "x".repeat(501)})).await,
        "description",
    );
    // Malformed bodies.
    let r = post(json!({"url": PUBLIC_URL, "events": ["*"], "secret": "whsec_mine"})).await;
    r.assert_error(400, "invalid_request");
    let r = post(json!({"events": ["*"]})).await;
    r.assert_error(400, "invalid_request");

    assert_eq!(storage(&app).await, before, "nothing stored");

    // Exactly 20 (duplicates collapse) and every known type are fine.
    let twenty: Vec<&str> = event_types::ALL.iter().cycle().take(20).copied().collect();
    let e = create(&app, &key, json!({"url": PUBLIC_URL, "events": twenty})).await;
    let mut all: Vec<&str> = event_types::ALL.to_vec();
    all.sort();
    assert_eq!(e["events"], json!(all));
}

/// This machine's host name, if it resolves to loopback addresses only.
async fn loopback_hostname() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()?
        .trim()
        .to_owned();
    if name.is_empty() || name.eq_ignore_ascii_case("localhost") {
        return None;
    }
    let addrs: Vec<_> = tokio::net::lookup_host((name.as_str(), 80))
        .await
        .ok()?
        .collect();
    (!addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback())).then_some(name)
}

async fn private_urls_are_accepted_when_the_operator_allows_them() {
    let app = TestApp::with_config(private_allowed(), "self-hosted").await;
    let key = webhooks_key(&app, KeyMode::Live).await;
    // Cloud metadata stays refused all the same.
    for url in PRIVATE_URLS.iter().filter(|u| u.contains("169.254.")) {
        let r = app
            .post("/v1/webhooks")
            .key(&key)
            .json(json!({"url": url, "events": ["*"]}))
            .send()
            .await;
        assert_param(&r, "url");
    }
    for url in PRIVATE_URLS.iter().filter(|u| !u.contains("169.254.")) {
        let e = create(&app, &key, json!({"url": url, "events": ["*"]})).await;
        assert_eq!(e["livemode"], true);
        let id = id_of(&e);
        assert_eq!(stored(&app, &id).await.url, e["url"].as_str().unwrap());
    }
    // The scheme rule holds all the same.
    let r = app
        .post("/v1/webhooks")
        .key(&key)
        .json(json!({"url": "ftp://10.0.0.1/", "events": ["*"]}))
        .send()
        .await;
    assert_param(&r, "url");
}

// ---------------------------------------------------------------------------------------------
// Update, delete, rotate
// ---------------------------------------------------------------------------------------------

async fn update_changes_what_it_names() {
    let app = TestApp::new().await;
    let key = webhooks_key(&app, KeyMode::Test).await;
    let e = create(
        &app,
        &key,
        json!({"url": PUBLIC_URL, "events": ["*"], "description": "one"}),
    )
    .await;
    let id = id_of(&e);
    let secret = e["secret"].as_str().unwrap().to_owned();
    let path = format!("/v1/webhooks/{id}");

    app.clock.advance(Duration::from_secs(60));
    let r = app
        .patch(&path)
        .key(&key)
        .json(json!({"url": "https://93.184.216.35/v2", "events": ["key.revoked", "key.created"]}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["url"], "https://93.184.216.35/v2");
    assert_eq!(r.body["events"], json!(["key.created", "key.revoked"]));
    assert_eq!(r.body["description"], "one", "untouched");
    assert_eq!(r.body.get("secret"), None);
    assert_ne!(r.body["updated_at"], e["updated_at"]);
    assert_eq!(r.body["created_at"], e["created_at"]);
    let s = stored(&app, &id).await;
    assert_eq!(
        opened(&app, &s, &s.secret),
        secret,
        "an update keeps the secret"
    );

    // Pause, then resume: the reason comes and goes, and so does the failing state.
    let r = app
        .patch(&path)
        .key(&key)
        .json(json!({"enabled": false}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["enabled"], false);
    assert_eq!(r.body["disabled_reason"], "disabled through the API");
    assert!(!stored(&app, &id).await.enabled);
    let mut failing = stored(&app, &id).await;
    failing.failing_since = Some(app.clock.now_ms_value() - 1000);
    assert!(app.store.update_endpoint(&failing).await.unwrap());
    let r = app
        .patch(&path)
        .key(&key)
        .json(json!({"enabled": true, "description": "two"}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["enabled"], true);
    assert_eq!(r.body["disabled_reason"], Value::Null);
    assert_eq!(r.body["failing_since"], Value::Null);
    assert_eq!(r.body["description"], "two");
    let now = stored(&app, &id).await;
    assert!(now.enabled && now.failing_since.is_none());

    // Refused updates change nothing.
    let before = storage(&app).await;
    for (body, param) in [
        (json!({"url": "http://10.0.0.1/"}), "url"),
        (json!({"url": "http://[::1]:80/"}), "url"),
        (json!({"url": "http://localhost/"}), "url"),
        (json!({"url": "ftp://93.184.216.34/"}), "url"),
        (json!({"events": ["nope"]}), "events"),
        (json!({"events": []}), "events"),
        (json!({"description": "y".repeat(501)}), "description"),
        // A bad field after a good one: nothing of it is applied.
        (
            json!({"description": "three", "events": ["post.published", "bogus"]}),
            "events",
        ),
    ] {
        let r = app.patch(&path).key(&key).json(body.clone()).send().await;
        assert_param(&r, param);
    }
    let r = app
        .patch(&path)
        .key(&key)
        .json(json!({"secret": "whsec_AAAA"}))
        .send()
        .await;
    r.assert_error(400, "invalid_request");
    assert_eq!(storage(&app).await, before);
}

async fn delete_removes_the_endpoint_and_its_log() {
    let app = TestApp::with_config(private_allowed(), "self-hosted").await;
    let key = webhooks_key(&app, KeyMode::Test).await;
    let rx = Receiver::start().await;
    let e = create(&app, &key, json!({"url": rx.url, "events": ["*"]})).await;
    let keep = create(&app, &key, json!({"url": rx.url, "events": ["*"]})).await;
    let id = id_of(&e);
    // Two test events wait in the queue for the endpoint.
    for _ in 0..2 {
        let r = app
            .post(&format!("/v1/webhooks/{id}/test"))
            .key(&key)
            .send()
            .await;
        assert_eq!(r.status, 202, "{}", r.text);
    }
    assert_eq!(deliveries(&app, &key, &id).await.len(), 2);

    let r = app
        .delete(&format!("/v1/webhooks/{id}"))
        .key(&key)
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.body,
        json!({"id": id, "object": "webhook_endpoint", "deleted": true})
    );
    for r in [
        app.get(&format!("/v1/webhooks/{id}"))
            .key(&key)
            .send()
            .await,
        app.delete(&format!("/v1/webhooks/{id}"))
            .key(&key)
            .send()
            .await,
        app.get(&format!("/v1/webhooks/{id}/deliveries"))
            .key(&key)
            .send()
            .await,
    ] {
        r.assert_error(404, "not_found");
    }
    assert_eq!(
        app.raw_texts("SELECT id FROM jobs").await,
        Vec::<Option<String>>::new(),
        "its pending deliveries went with it"
    );
    assert!(deliverer(&app).run_due().await.is_empty());
    assert!(rx.received().is_empty());
    let list = app.get("/v1/webhooks").key(&key).send().await;
    assert_eq!(list.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(list.body["data"][0]["id"], keep["id"]);
}

async fn rotate_shows_the_new_secret_once_and_bounds_the_overlap() {
    let app = TestApp::with_config(private_allowed(), "self-hosted").await;
    let key = webhooks_key(&app, KeyMode::Test).await;
    let rx = Receiver::start().await;
    let e = create(&app, &key, json!({"url": rx.url, "events": ["*"]})).await;
    let id = id_of(&e);
    let old = e["secret"].as_str().unwrap().to_owned();
    let path = format!("/v1/webhooks/{id}/rotate");

    // Out of bounds: refused, nothing changes.
    let before = storage(&app).await;
    for body in [
        json!({"overlap_seconds": 604_801}),
        json!({"overlap_seconds": -1}),
        json!({"overlap_seconds": "1h"}),
        json!({"overlap": 60}),
    ] {
        let r = app.post(&path).key(&key).json(body.clone()).send().await;
        r.assert_error(400, "invalid_request");
        if body.get("overlap_seconds").is_some_and(Value::is_u64) {
            assert_eq!(r.body["error"]["param"], "overlap_seconds", "{}", r.text);
        }
    }
    assert_eq!(storage(&app).await, before);

    // An edit that read the endpoint before the rotation and writes after it.
    let edited_before = stored(&app, &id).await;
    let now = app.clock.now_ms_value();
    let r = app
        .post(&path)
        .key(&key)
        .json(json!({"overlap_seconds": 3600}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let new = r.body["secret"].as_str().unwrap().to_owned();
    assert!(new.starts_with("whsec_"));
    assert_ne!(new, old);
    let s = stored(&app, &id).await;
    assert_eq!(opened(&app, &s, &s.secret), new);
    assert_eq!(opened(&app, &s, s.previous_secret.as_deref().unwrap()), old);
    assert_eq!(s.previous_secret_until, Some(now + 3_600_000));
    assert!(app.store.update_endpoint(&edited_before).await.unwrap());
    assert_eq!(
        stored(&app, &id).await.secret,
        s.secret,
        "an edit cannot put the old secret back"
    );
    let got = app
        .get(&format!("/v1/webhooks/{id}"))
        .key(&key)
        .send()
        .await;
    assert!(!got.text.contains(&new) && !got.text.contains(&old));

    // During the overlap a delivery carries both signatures; after it, the new one only.
    let d = deliverer(&app);
    let test = format!("/v1/webhooks/{id}/test");
    assert_eq!(app.post(&test).key(&key).send().await.status, 202);
    assert_eq!(d.run_due().await, vec![AttemptOutcome::Succeeded]);
    app.clock.advance(Duration::from_secs(3600));
    assert_eq!(app.post(&test).key(&key).send().await.status, 202);
    assert_eq!(d.run_due().await, vec![AttemptOutcome::Succeeded]);
    let got = rx.received();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].signatures().len(), 2);
    assert!(got[0].signed_with(&new) && got[0].signed_with(&old));
    assert_eq!(got[1].signatures().len(), 1);
    assert!(got[1].signed_with(&new) && !got[1].signed_with(&old));

    // No overlap (the default): the old secret stops at once; the longest overlap is 7 days.
    let r = app.post(&path).key(&key).json(json!({})).send().await;
    assert_eq!(r.status, 200, "{}", r.text);
    let third = r.body["secret"].as_str().unwrap().to_owned();
    let s = stored(&app, &id).await;
    assert_eq!(opened(&app, &s, s.previous_secret.as_deref().unwrap()), new);
    assert_eq!(
        webhook_secrets::signing_secrets(app.state.app().keyring(), &s, app.clock.now_ms_value())
            .unwrap(),
        vec![third]
    );
    let r = app
        .post(&path)
        .key(&key)
        .json(json!({"overlap_seconds": 604_800}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        stored(&app, &id).await.previous_secret_until,
        Some(app.clock.now_ms_value() + 604_800_000)
    );
}

// ---------------------------------------------------------------------------------------------
// Test events, the delivery log, redelivery
// ---------------------------------------------------------------------------------------------

async fn a_test_event_is_delivered_and_logged() {
    let app = TestApp::with_config(private_allowed(), "self-hosted").await;
    let key = webhooks_key(&app, KeyMode::Test).await;
    let rx = Receiver::start().await;
    let e = create(
        &app,
        &key,
        json!({"url": rx.url, "events": ["post.published"]}),
    )
    .await;
    let bystander = create(&app, &key, json!({"url": rx.url, "events": ["*"]})).await;
    let id = id_of(&e);
    let secret = e["secret"].as_str().unwrap().to_owned();

    let r = app
        .post(&format!("/v1/webhooks/{id}/test"))
        .key(&key)
        .send()
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.body["id"], id.as_str());
    assert_eq!(r.body.get("secret"), None);
    let log = deliveries(&app, &key, &id).await;
    assert_eq!(log.len(), 1);
    assert_eq!(log[0]["object"], "webhook_delivery");
    assert_eq!(log[0]["status"], "pending");
    assert_eq!(log[0]["event_type"], "webhook.test");
    assert_eq!(log[0]["attempts"], json!([]));
    assert!(log[0]["id"].as_str().unwrap().starts_with("dlv_"));
    assert!(
        deliveries(&app, &key, &id_of(&bystander)).await.is_empty(),
        "a test event goes to its endpoint only"
    );

    assert_eq!(
        deliverer(&app).run_due().await,
        vec![AttemptOutcome::Succeeded]
    );
    let got = rx.received();
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert!(r.signed_with(&secret));
    assert_eq!(r.header("webhook-id"), log[0]["event_id"].as_str().unwrap());
    assert_eq!(
        r.header("webhook-timestamp"),
        (app.clock.now_ms_value() / 1000).to_string()
    );
    let body = r.json();
    assert_eq!(body["type"], "webhook.test");
    assert_eq!(body["id"], log[0]["event_id"]);
    assert_eq!(body["data"]["endpoint_id"], id.as_str());
    let keys: BTreeSet<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, BTreeSet::from(["id", "type", "created_at", "data"]));

    let log = deliveries(&app, &key, &id).await;
    assert_eq!(log[0]["status"], "succeeded");
    let attempts = log[0]["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0]["attempt"], 1);
    assert_eq!(attempts[0]["status"], 200);
    assert_eq!(attempts[0]["error"], Value::Null);
    assert_eq!(attempts[0]["response_excerpt"], "ok");
    assert!(attempts[0]["latency_ms"].as_i64().unwrap() >= 0);

    // A paused endpoint takes no test event.
    let r = app
        .patch(&format!("/v1/webhooks/{id}"))
        .key(&key)
        .json(json!({"enabled": false}))
        .send()
        .await;
    assert_eq!(r.status, 200);
    let before = storage(&app).await;
    app.post(&format!("/v1/webhooks/{id}/test"))
        .key(&key)
        .send()
        .await
        .assert_error(409, "conflict");
    assert_eq!(storage(&app).await, before);
}

/// `url` is bounded in characters, as the OpenAPI description's `maxLength` counts: a URL of
/// 700 `é` (1400 bytes) or one of 2048 characters (twice as many bytes) is taken, and
/// delivered to, although stored as the parser writes it (percent-encoded) it is 6 times as
/// long. One character more is refused.
async fn a_url_is_bounded_in_characters_and_delivered_to_however_long_it_is_stored() {
    let app = TestApp::with_config(private_allowed(), "self-hosted").await;
    let key = webhooks_key(&app, KeyMode::Test).await;
    let rx = Receiver::start().await;
    let most = 2048 - rx.url.len() - 1;
    for n in [700, most] {
        let url = format!("{}/{}", rx.url, "é".repeat(n));
        assert!(url.chars().count() <= 2048 && url.len() > 2 * n);
        let e = create(&app, &key, json!({"url": url, "events": ["*"]})).await;
        let id = id_of(&e);
        assert_eq!(
            e["url"],
            format!("{}/{}", rx.url, "%C3%A9".repeat(n)),
            "stored as the parser writes it"
        );
        let test = format!("/v1/webhooks/{id}/test");
        assert_eq!(app.post(&test).key(&key).send().await.status, 202);
        assert_eq!(
            deliverer(&app).run_due().await,
            vec![AttemptOutcome::Succeeded],
            "{n} é"
        );
    }
    assert_eq!(rx.received().len(), 2);
    let before = storage(&app).await;
    let url = format!("{}/{}", rx.url, "é".repeat(most + 1));
    let r = app
        .post("/v1/webhooks")
        .key(&key)
        .json(json!({"url": url, "events": ["*"]}))
        .send()
        .await;
    assert_param(&r, "url");
    assert_eq!(storage(&app).await, before);
}

async fn redelivery_sends_the_same_event_again() {
    let app = TestApp::with_config(private_allowed(), "self-hosted").await;
    let key = webhooks_key(&app, KeyMode::Test).await;
    let rx = Receiver::start().await;
    let e = create(&app, &key, json!({"url": rx.url, "events": ["*"]})).await;
    let other = create(&app, &key, json!({"url": rx.url, "events": ["*"]})).await;
    let id = id_of(&e);
    let secret = e["secret"].as_str().unwrap().to_owned();
    let test = format!("/v1/webhooks/{id}/test");
    assert_eq!(app.post(&test).key(&key).send().await.status, 202);
    let dlv = deliveries(&app, &key, &id).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let redeliver = format!("/v1/webhooks/{id}/deliveries/{dlv}/redeliver");

    // Still pending: nothing to redeliver yet.
    let before = storage(&app).await;
    app.post(&redeliver)
        .key(&key)
        .send()
        .await
        .assert_error(409, "conflict");
    assert_eq!(storage(&app).await, before);

    let d = deliverer(&app);
    assert_eq!(d.run_due().await, vec![AttemptOutcome::Succeeded]);
    app.clock.advance(Duration::from_secs(90));
    let r = app.post(&redeliver).key(&key).send().await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(deliveries(&app, &key, &id).await[0]["status"], "pending");
    assert_eq!(d.run_due().await, vec![AttemptOutcome::Succeeded]);

    let got = rx.received();
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].header("webhook-id"), got[0].header("webhook-id"));
    assert_eq!(got[1].body, got[0].body);
    assert_ne!(
        got[1].header("webhook-timestamp"),
        got[0].header("webhook-timestamp")
    );
    assert!(got[1].signed_with(&secret));
    let log = deliveries(&app, &key, &id).await;
    assert_eq!(log.len(), 1, "the same delivery, attempted again");
    assert_eq!(log[0]["status"], "succeeded");
    assert_eq!(log[0]["attempts"].as_array().unwrap().len(), 2);

    // Redelivered again and again, a delivery keeps its latest 25 attempts, in storage and
    // in its listing.
    for _ in 0..30 {
        app.clock.advance(Duration::from_secs(90));
        assert_eq!(app.post(&redeliver).key(&key).send().await.status, 202);
        assert_eq!(d.run_due().await, vec![AttemptOutcome::Succeeded]);
    }
    let log = deliveries(&app, &key, &id).await;
    let numbers: Vec<i64> = log[0]["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["attempt"].as_i64().unwrap())
        .collect();
    assert_eq!(
        numbers,
        (8..=32).collect::<Vec<_>>(),
        "the latest 25, oldest first"
    );
    assert_eq!(
        app.raw_texts("SELECT id FROM webhook_attempts").await.len(),
        25
    );

    // A delivery that is not this endpoint's, or none at all, is not found.
    let before = storage(&app).await;
    for path in [
        format!("/v1/webhooks/{}/deliveries/{dlv}/redeliver", id_of(&other)),
        format!("/v1/webhooks/{id}/deliveries/dlv_0000000000000000000000/redeliver"),
        format!("/v1/webhooks/{id}/deliveries/nonsense/redeliver"),
    ] {
        let r = app.post(&path).key(&key).send().await;
        r.assert_error(404, "not_found");
    }
    assert_eq!(storage(&app).await, before);
}

// ---------------------------------------------------------------------------------------------
// Tenancy and modes
// ---------------------------------------------------------------------------------------------

async fn other_workspaces_and_modes_see_nothing() {
    let app = TestApp::with_config(private_allowed(), "self-hosted").await;
    let test_key = webhooks_key(&app, KeyMode::Test).await;
    let live_key = webhooks_key(&app, KeyMode::Live).await;
    let globex = app.other_workspace("globex").await;
    let (theirs, _) = app
        .key_in(
            &globex,
            KeySpec {
                scopes: vec![Scope::WebhooksRead, Scope::WebhooksWrite],
                mode: Some(KeyMode::Test),
                ..KeySpec::default()
            },
        )
        .await;
    let rx = Receiver::start().await;
    let e = create(&app, &test_key, json!({"url": rx.url, "events": ["*"]})).await;
    let id = id_of(&e);
    assert_eq!(
        app.post(&format!("/v1/webhooks/{id}/test"))
            .key(&test_key)
            .send()
            .await
            .status,
        202
    );
    deliverer(&app).run_due().await;
    let dlv = deliveries(&app, &test_key, &id).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let before = storage(&app).await;
    for key in [&theirs, &live_key] {
        let calls = [
            app.get(&format!("/v1/webhooks/{id}")).key(key).send().await,
            app.patch(&format!("/v1/webhooks/{id}"))
                .key(key)
                .json(json!({"enabled": false}))
                .send()
                .await,
            app.post(&format!("/v1/webhooks/{id}/rotate"))
                .key(key)
                .json(json!({"overlap_seconds": 60}))
                .send()
                .await,
            app.post(&format!("/v1/webhooks/{id}/test"))
                .key(key)
                .send()
                .await,
            app.get(&format!("/v1/webhooks/{id}/deliveries"))
                .key(key)
                .send()
                .await,
            app.post(&format!("/v1/webhooks/{id}/deliveries/{dlv}/redeliver"))
                .key(key)
                .send()
                .await,
            app.delete(&format!("/v1/webhooks/{id}"))
                .key(key)
                .send()
                .await,
        ];
        for r in calls {
            r.assert_error(404, "not_found");
            assert!(!r.text.contains("whsec_"));
        }
        let list = app.get("/v1/webhooks").key(key).send().await;
        assert_eq!(list.status, 200);
        assert_eq!(list.body["data"], json!([]), "{}", list.text);
    }
    assert_eq!(storage(&app).await, before, "nothing changed");
    assert_eq!(rx.received().len(), 1);
}

// ---------------------------------------------------------------------------------------------
// The endpoint cap
// ---------------------------------------------------------------------------------------------

/// A workspace has at most 16 endpoints per mode by default (the fan-out of every event is
/// bounded by it); one more is `400 invalid_request` and stores nothing, also when requests
/// race for the last places.
async fn endpoints_are_capped_per_workspace_and_mode() {
    let app = TestApp::new().await;
    let live = webhooks_key(&app, KeyMode::Live).await;
    let test = webhooks_key(&app, KeyMode::Test).await;
    let body = json!({"url": PUBLIC_URL, "events": ["*"]});
    let mut ids = Vec::new();
    for _ in 0..12 {
        ids.push(id_of(&create(&app, &live, body.clone()).await));
    }
    // Ten at once for the last four places: exactly four get one.
    let results = futures::future::join_all((0..10).map(|_| {
        app.post("/v1/webhooks")
            .key(&live)
            .json(body.clone())
            .send()
    }))
    .await;
    let mut created = 0;
    for r in &results {
        if r.status == 201 {
            created += 1;
        } else {
            r.assert_error(409, "conflict");
        }
    }
    assert_eq!(created, 4, "16 endpoints and no more");
    assert_eq!(
        app.raw_texts("SELECT id FROM webhook_endpoints")
            .await
            .len(),
        16
    );

    let before = storage(&app).await;
    let r = app
        .post("/v1/webhooks")
        .key(&live)
        .json(body.clone())
        .send()
        .await;
    r.assert_error(409, "conflict");
    let message = r.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("16"), "{message}");
    assert_eq!(
        storage(&app).await,
        before,
        "a refused create stores nothing"
    );

    // Test mode has its own 16.
    create(&app, &test, body.clone()).await;
    // Deleting one frees its place.
    let r = app
        .delete(&format!("/v1/webhooks/{}", ids[0]))
        .key(&live)
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    create(&app, &live, body.clone()).await;
    app.post("/v1/webhooks")
        .key(&live)
        .json(body)
        .send()
        .await
        .assert_error(409, "conflict");
}

/// The operator's `webhook_max_endpoints` replaces the default.
async fn the_operator_sets_the_endpoint_cap() {
    let config = ApiConfig {
        max_webhook_endpoints: 2,
        ..ApiConfig::default()
    };
    let app = TestApp::with_config(config, "self-hosted").await;
    let live = webhooks_key(&app, KeyMode::Live).await;
    let body = json!({"url": PUBLIC_URL, "events": ["post.published"]});
    create(&app, &live, body.clone()).await;
    create(&app, &live, body.clone()).await;
    let before = storage(&app).await;
    let r = app.post("/v1/webhooks").key(&live).json(body).send().await;
    r.assert_error(409, "conflict");
    let message = r.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("already has 2 live-mode"), "{message}");
    assert_eq!(storage(&app).await, before);
}

async fn a_key_rotation_seals_every_secret_again_and_ended_overlaps_are_forgotten() {
    let app = TestApp::with_config(private_allowed(), "self-hosted").await;
    let key = webhooks_key(&app, KeyMode::Test).await;
    let rx = Receiver::start().await;
    // One made through the API (sealed with the first key); one kept before secrets were
    // sealed, whose previous secret's overlap has ended; one sealed with a key this server
    // never had.
    let made = create(&app, &key, json!({"url": rx.url, "events": ["*"]})).await;
    let made_secret = made["secret"].as_str().unwrap().to_owned();
    let made = stored(&app, &id_of(&made)).await;
    let now = app.clock.now_ms_value();
    let endpoint = |secret: String, previous: Option<String>| crier_store::Endpoint {
        id: WebhookId::generate(),
        secret,
        previous_secret_until: previous.as_ref().map(|_| now - 1),
        previous_secret: previous,
        ..made.clone()
    };
    let (plain, plain_previous) = (new_secret(), new_secret());
    let legacy = endpoint(plain.clone(), Some(plain_previous));
    let mut foreign = endpoint(String::new(), None);
    foreign.secret =
        webhook_secrets::seal(&crier_app::Keyring::ephemeral(), &foreign.id, &new_secret());
    for e in [&legacy, &foreign] {
        assert!(app.store.insert_endpoint(e, 100).await.unwrap());
    }

    // The operator puts a new key first and keeps the old one after it.
    let old = app.state.app().keyring().clone();
    let k2 = crier_app::Keyring::generate_spec("k2");
    let rotated = crier_app::Keyring::parse(&k2).unwrap().with_older(&old);
    let node = common::compose_with(&app.store, &app.clock, &ApiConfig::default(), vec![])
        .with_keyring(rotated.clone());
    // A worker node's round seals what was kept as shown and forgets the ended overlap, and
    // moves nothing from one key to another.
    crier_worker::tokens::refresh_once(&node).await;
    let s = stored(&app, legacy.id.as_str()).await;
    assert!(s.secret.starts_with("v1.k2."), "{}", s.secret);
    assert_eq!(s.previous_secret, None);
    assert_eq!(stored(&app, made.id.as_str()).await.secret, made.secret);
    // The operator's step moves the rest, once.
    let pass = crier_app::reseal::reseal_all(&node).await.unwrap();
    assert_eq!(pass.webhook_endpoints.sealed_again, 1, "{pass:?}");
    assert_eq!(pass.webhook_endpoints.unopened, 1);
    let pass = crier_app::reseal::reseal_all(&node).await.unwrap();
    assert_eq!(pass.webhook_endpoints.sealed_again, 0, "done once");
    for (e, secret) in [(&made, &made_secret), (&legacy, &plain)] {
        let s = stored(&app, e.id.as_str()).await;
        assert!(s.secret.starts_with("v1.k2."), "{}", s.secret);
        assert_eq!(
            webhook_secrets::open(&rotated, &s.id, &s.secret).unwrap(),
            *secret
        );
        assert_eq!(s.previous_secret, None, "an ended overlap is forgotten");
        assert_eq!(s.previous_secret_until, None);
    }
    assert_eq!(
        stored(&app, foreign.id.as_str()).await.secret,
        foreign.secret,
        "what does not open is left as it is"
    );
    // The old key can go: the new one alone opens what was sealed again.
    let alone = crier_app::Keyring::parse(&k2).unwrap();
    assert!(webhook_secrets::open(&alone, &made.id, &made.secret).is_err());
    let s = stored(&app, made.id.as_str()).await;
    assert_eq!(
        webhook_secrets::open(&alone, &s.id, &s.secret).unwrap(),
        made_secret
    );
}

both!(
    tests: create_shows_the_secret_once,
    scopes_are_required,
    bad_endpoints_are_refused_and_change_nothing,
    private_urls_are_accepted_when_the_operator_allows_them,
    update_changes_what_it_names,
    delete_removes_the_endpoint_and_its_log,
    rotate_shows_the_new_secret_once_and_bounds_the_overlap,
    a_test_event_is_delivered_and_logged,
    a_url_is_bounded_in_characters_and_delivered_to_however_long_it_is_stored,
    redelivery_sends_the_same_event_again,
    other_workspaces_and_modes_see_nothing,
    endpoints_are_capped_per_workspace_and_mode,
    the_operator_sets_the_endpoint_cap,
    a_key_rotation_seals_every_secret_again_and_ended_overlaps_are_forgotten,
);
