//! `TestApp`: the real router on a fresh database, with a manual clock, keys issued with
//! chosen scopes, and requests driven through `tower::ServiceExt::oneshot` from a chosen client
//! address. The database is a SQLite file, or, inside a test written as
//! `both!(async fn name() { … })`, one of each backend (`name::sqlite`, `name::postgres`; see
//! crier-testdb).
#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use crier_api::keys::{CreateKey, RateLimitInput};
use crier_api::{ApiConfig, AppState};
use crier_core::{KeyMode, ManualClock, Scope};
use crier_store::{Actor, AuditEntry, KeyRow, Store, Workspace};
use crier_testdb::TestDb;
#[allow(unused_imports)] // not every suite runs on both backends
pub use crier_testdb::both;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

pub mod brands;
pub mod browser;
pub mod keys;
pub mod mastodon;
pub mod media;
pub mod posts;
pub mod users;

pub const START: &str = "2026-11-22T10:00:00Z";

pub struct TestApp {
    pub state: AppState,
    pub router: Router,
    pub store: Store,
    pub clock: ManualClock,
    pub workspace: Workspace,
    db: TestDb,
}

pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
    /// The body as sent (for images and documents).
    pub bytes: Vec<u8>,
}

impl Response {
    pub fn raw_body(&self) -> Vec<u8> {
        self.bytes.clone()
    }

    /// Asserts the error envelope: status, code, and `request_id` equal to `X-Request-Id`.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "status; body: {}", self.text);
        assert_eq!(
            self.body["error"]["code"], code,
            "code; body: {}",
            self.text
        );
        let header = self.headers["x-request-id"].to_str().unwrap();
        assert!(header.starts_with("req_"));
        assert_eq!(
            self.body["error"]["request_id"], header,
            "envelope id = header id"
        );
        assert!(
            self.body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

/// A request being built.
pub struct Call<'a> {
    app: &'a TestApp,
    method: Method,
    path: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    peer: IpAddr,
}

impl<'a> Call<'a> {
    pub fn key(self, key: &str) -> Self {
        self.header("authorization", &format!("Bearer {key}"))
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn json(mut self, body: Value) -> Self {
        self.body = Some(serde_json::to_vec(&body).unwrap());
        self.header("content-type", "application/json")
    }

    pub fn raw(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
        self
    }

    // A builder step ("send it from this address"), not a conversion; the name is the API.
    #[allow(clippy::wrong_self_convention)]
    pub fn from_ip(mut self, ip: &str) -> Self {
        self.peer = ip.parse().unwrap();
        self
    }

    pub async fn send(self) -> Response {
        let mut req = Request::builder().method(self.method).uri(&self.path);
        for (n, v) in &self.headers {
            req = req.header(n, v);
        }
        let mut req = req
            .body(self.body.map(Body::from).unwrap_or_else(Body::empty))
            .unwrap();
        req.extensions_mut()
            .insert(ConnectInfo(SocketAddr::new(self.peer, 40000)));
        let resp = self.app.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Response {
            status,
            headers,
            body,
            text,
            bytes: bytes.to_vec(),
        }
    }
}

/// Options for a key issued directly in storage (as the operator's CLI does).
#[derive(Default)]
pub struct KeySpec {
    pub scopes: Vec<Scope>,
    pub mode: Option<KeyMode>,
    pub per_minute: Option<u32>,
    pub per_day: Option<u32>,
    pub allowed_ips: Option<Vec<String>>,
    pub allowed_origins: Option<Vec<String>>,
    pub expires_at: Option<jiff::Timestamp>,
    pub allowed_brand_ids: Option<Vec<String>>,
    pub allowed_account_ids: Option<Vec<String>>,
}

/// The application layer as the binary composes it: the sandbox network, the configured
/// plans, one wake signal shared by the API and the test's publisher.
pub fn compose(store: &Store, clock: &ManualClock, config: &ApiConfig) -> crier_app::App {
    compose_with(store, clock, config, Vec::new())
}

/// As [`compose`], with more networks than the sandbox.
pub fn compose_with(
    store: &Store,
    clock: &ManualClock,
    config: &ApiConfig,
    extra: Vec<Arc<dyn crier_networks::Network>>,
) -> crier_app::App {
    let clock: Arc<dyn crier_core::Clock> = Arc::new(clock.clone());
    let mut networks = crier_networks::Networks::default().with(Arc::new(
        crier_networks::sandbox::Sandbox::new(store.clone(), clock.clone()),
    ));
    for n in extra {
        networks = networks.with(n);
    }
    crier_app::App::new(
        store.clone(),
        clock,
        networks,
        &config.plans,
        Arc::new(tokio::sync::Notify::new()),
    )
}

impl TestApp {
    pub async fn new() -> Self {
        Self::with_config(ApiConfig::default(), "self-hosted").await
    }

    pub async fn with_plan(plan: &str) -> Self {
        Self::with_config(ApiConfig::default(), plan).await
    }

    pub async fn with_config(config: ApiConfig, plan: &str) -> Self {
        Self::composed(config, plan, |store, clock, config| {
            compose(store, clock, config)
        })
        .await
    }

    /// A test app whose application layer `make` composes (more networks, connection
    /// settings).
    pub async fn composed(
        config: ApiConfig,
        plan: &str,
        make: impl FnOnce(&Store, &ManualClock, &ApiConfig) -> crier_app::App,
    ) -> Self {
        let db = TestDb::fresh()
            .await
            .expect("a database of the variant's backend");
        let store = db.store.clone();
        let clock = ManualClock::new(START.parse().unwrap());
        let workspace = store
            .create_workspace("acme", plan, clock.now_ms_value())
            .await
            .unwrap();
        let state = AppState::new(make(&store, &clock, &config), config);
        let router = crier_api::router(state.clone());
        Self {
            state,
            router,
            store,
            clock,
            workspace,
            db,
        }
    }

    pub fn call(&self, method: Method, path: &str) -> Call<'_> {
        Call {
            app: self,
            method,
            path: path.to_owned(),
            headers: Vec::new(),
            body: None,
            peer: "127.0.0.1".parse().unwrap(),
        }
    }

    pub fn get(&self, path: &str) -> Call<'_> {
        self.call(Method::GET, path)
    }

    pub fn post(&self, path: &str) -> Call<'_> {
        self.call(Method::POST, path)
    }

    pub fn patch(&self, path: &str) -> Call<'_> {
        self.call(Method::PATCH, path)
    }

    pub fn delete(&self, path: &str) -> Call<'_> {
        self.call(Method::DELETE, path)
    }

    /// Issues a key in this app's workspace; returns its secret and stored row.
    pub async fn key(&self, spec: KeySpec) -> (String, KeyRow) {
        self.key_in(&self.workspace.clone(), spec).await
    }

    /// A key with exactly these scopes.
    pub async fn key_with(&self, scopes: &[Scope]) -> String {
        self.key(KeySpec {
            scopes: scopes.to_vec(),
            ..KeySpec::default()
        })
        .await
        .0
    }

    /// A key with every scope.
    pub async fn admin_key(&self) -> String {
        self.key_with(Scope::ALL).await
    }

    pub async fn key_in(&self, ws: &Workspace, spec: KeySpec) -> (String, KeyRow) {
        let plan = self.state.plan(&ws.plan).unwrap();
        let req = CreateKey {
            name: Some("test key".into()),
            scopes: spec.scopes.iter().map(|s| s.as_str().to_owned()).collect(),
            mode: spec.mode,
            rate_limit: Some(RateLimitInput {
                per_minute: spec.per_minute,
                per_day: spec.per_day,
            }),
            allowed_ips: spec.allowed_ips,
            allowed_origins: spec.allowed_origins,
            expires_at: spec.expires_at.map(Some),
            allowed_brand_ids: spec.allowed_brand_ids,
            allowed_account_ids: spec.allowed_account_ids,
            ..CreateKey::default()
        };
        let now = self.clock.now_ms_value();
        let (row, secret) = crier_api::keys::new_key(&ws.id, req, &plan, None, now).unwrap();
        let audit = AuditEntry::new(
            &ws.id,
            Actor::Cli,
            "key.created",
            row.id.as_str(),
            None,
            serde_json::json!({}),
            now,
        );
        self.store.insert_key(&row, &audit).await.unwrap();
        (secret.expose().to_owned(), row)
    }

    /// Another workspace in the same store, for cross-tenant tests.
    pub async fn other_workspace(&self, name: &str) -> Workspace {
        self.store
            .create_workspace(name, "self-hosted", self.clock.now_ms_value())
            .await
            .unwrap()
    }

    /// Keys that must not reach this workspace's live objects, each with every scope: one of
    /// another workspace, and a test-mode key of this one.
    pub async fn outsider_keys(&self) -> [String; 2] {
        let other = self.other_workspace("outsider").await;
        let every = || KeySpec {
            scopes: Scope::ALL.to_vec(),
            ..KeySpec::default()
        };
        let (other_key, _) = self.key_in(&other, every()).await;
        let (test_key, _) = self
            .key(KeySpec {
                mode: Some(KeyMode::Test),
                ..every()
            })
            .await;
        [other_key, test_key]
    }

    /// A snapshot of every key row and audit entry, to assert that a refused write changed
    /// nothing.
    pub async fn snapshot(&self) -> (Vec<KeyRow>, usize, String) {
        let keys = self
            .store
            .list_keys(&self.workspace.id, None, 50, 0)
            .await
            .unwrap()
            .items;
        let audit = self
            .store
            .list_audit(&self.workspace.id, None)
            .await
            .unwrap()
            .len();
        let ws = self
            .store
            .get_workspace(&self.workspace.id)
            .await
            .unwrap()
            .unwrap();
        (keys, audit, format!("{ws:?}"))
    }
}

impl TestApp {
    /// The SQLite file behind this app's store, for tests that inspect what is at rest (they
    /// run on SQLite only).
    /// The same database through a store of its own, as another process (`crier admin`, another
    /// node) sees it: its writes reach this app's cache only through the key-change feed.
    pub async fn other_process(&self) -> Store {
        Store::connect(&self.db.url).await.unwrap()
    }

    pub fn db_path(&self) -> std::path::PathBuf {
        self.db.sqlite_path().expect("a test on SQLite")
    }

    /// Runs a read-only query on a connection of its own and returns the first column of every
    /// row as text (NULL as `None`), bypassing the store entirely.
    pub async fn raw_texts(&self, sql: &'static str) -> Vec<Option<String>> {
        self.db.query_texts(sql).await
    }

    /// Runs statements on a connection of its own (to inject a storage fault, say).
    pub async fn raw_execute(&self, sql: &'static str) {
        self.db.execute(sql).await
    }

    pub fn backend(&self) -> crier_store::Backend {
        self.db.backend()
    }
}

/// `ManualClock::now_ms` through the trait, spelled once.
pub trait NowMs {
    fn now_ms_value(&self) -> i64;
}

impl NowMs for ManualClock {
    fn now_ms_value(&self) -> i64 {
        crier_core::Clock::now_ms(self)
    }
}

impl TestApp {
    /// A publisher over this app's store, networks and clock, driven by the test with
    /// [`crier_worker::Publisher::run_due`]. Retries start at 10 s and double.
    pub fn publisher(&self) -> crier_worker::Publisher {
        crier_worker::Publisher::new(
            self.state.app().clone(),
            crier_worker::WorkerConfig {
                backoff: std::time::Duration::from_secs(10),
                ..crier_worker::WorkerConfig::default()
            },
        )
    }

    /// Connects a sandbox account with this key; returns its id.
    pub async fn sandbox_account(&self, key: &str, handle: &str) -> String {
        let r = self
            .post("/v1/connect/sandbox")
            .key(key)
            .json(serde_json::json!({ "handle": handle }))
            .send()
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        r.body["id"].as_str().unwrap().to_owned()
    }
}

/// What publishing keeps for a workspace: every post with its targets, every job and every
/// post the sandbox network received, to assert that a refused request changed nothing.
#[derive(Debug, PartialEq)]
pub struct PostsSnapshot {
    pub posts: Vec<crier_store::Post>,
    /// `id|post|account|run_at|locked_until` of every job in the store, by id.
    pub jobs: Vec<Option<String>>,
    /// `external_id|account|idem_key` of every sandbox post in the store, by id.
    pub sandbox: Vec<Option<String>>,
}

impl TestApp {
    /// Every post of workspace `ws` (both modes), newest first, with its targets.
    pub async fn posts_in(&self, ws: &crier_core::ids::WorkspaceId) -> Vec<crier_store::Post> {
        let mut out = Vec::new();
        loop {
            let page = self
                .store
                .list_posts(
                    ws,
                    &crier_store::PostFilter::default(),
                    50,
                    out.len() as u32,
                )
                .await
                .unwrap();
            out.extend(page.items);
            if !page.has_more {
                return out;
            }
        }
    }

    /// Every job in the store, as `id|post|account|run_at|locked_until`.
    pub async fn jobs(&self) -> Vec<Option<String>> {
        self.raw_texts(
            "SELECT id || '|' || COALESCE(post_id, '') || '|' || COALESCE(account_id, '') || '|'
                || run_at || '|' || locked_until FROM jobs ORDER BY id",
        )
        .await
    }

    /// A snapshot of this workspace's posts, and of every job and sandbox post in the store.
    pub async fn posts_snapshot(&self) -> PostsSnapshot {
        PostsSnapshot {
            posts: self.posts_in(&self.workspace.id).await,
            jobs: self.jobs().await,
            sandbox: self
                .raw_texts(
                    "SELECT external_id || '|' || account_id || '|' || idem_key
                     FROM sandbox_posts ORDER BY external_id",
                )
                .await,
        }
    }
}
