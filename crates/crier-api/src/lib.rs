//! The crier HTTP API: the router, its layers, the auth principal and the handlers by
//! resource. See ARCHITECTURE.md for how a request flows through it.

pub mod auth;
pub mod context;
pub mod dashboard;
pub mod error;
pub mod extract;
pub mod idempotency;
pub mod keys;
pub mod mcp;
pub mod metrics;
pub mod openapi;
pub mod routes;
pub mod server;
pub mod ttl_cache;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crier_app::App;
use crier_core::{Clock, Plan};
use crier_store::{KeyChange, Store};
use tokio_util::sync::CancellationToken;

pub use crate::auth::AuthConfig;
use crate::auth::Authenticator;
use crate::metrics::Metrics;

/// Settings of the API layer, from the binary's configuration.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub auth: AuthConfig,
    pub plans: BTreeMap<String, Plan>,
    /// How often usage counters are written to storage.
    pub usage_flush_interval: Duration,
    /// Whether webhook and feed URLs may point at private, loopback or link-local addresses
    /// (`CRIER_WEBHOOK_ALLOW_PRIVATE_NETWORKS`; self-hosted setups and tests on one machine).
    pub allow_private_networks: bool,
    /// Webhook endpoints a workspace may have per mode (`webhook_max_endpoints`, 1 to
    /// [`routes::webhooks::MAX_ENDPOINTS_CEILING`]). It bounds the deliveries every event
    /// writes inside the transaction that emits it.
    pub max_webhook_endpoints: u32,
    /// The address people reach this server at (`public_url`): device-login and invitation
    /// links point here, and an `https` one makes the dashboard's cookie `Secure`.
    pub public_url: String,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            auth: AuthConfig {
                trusted_proxies: Vec::new(),
                failures_per_minute: 30,
                cache_ttl: Duration::from_secs(300),
                unknown_key_ttl: Duration::from_secs(30),
                shared_limits: None,
            },
            plans: Plan::defaults(),
            usage_flush_interval: Duration::from_secs(5),
            allow_private_networks: false,
            max_webhook_endpoints: routes::webhooks::DEFAULT_MAX_ENDPOINTS,
            public_url: "http://127.0.0.1:8080".into(),
        }
    }
}

/// Purge statements each retention purge makes per minute at most (see
/// [`AppState::purge_activity`]).
pub const PURGE_BATCHES: usize = 20;

/// Shared state of the API: cheap to clone, one per process (or per test app).
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    /// The application layer: storage, clock, networks, plans and the rules over them.
    app: App,
    auth: Authenticator,
    metrics: Metrics,
    workspace_views: routes::workspace::WorkspaceViews,
    me_views: routes::me::MeViews,
    config: ApiConfig,
    /// Series `/metrics` adds from outside the API (see [`AppState::add_metrics`]).
    sources: std::sync::Mutex<Vec<Arc<dyn metrics::MetricsSource>>>,
    /// Media whose bytes a signed `PUT` is receiving now (one at a time each; at most one
    /// entry per open connection).
    uploads: std::sync::Mutex<std::collections::HashSet<crier_core::ids::MediaId>>,
}

impl AppState {
    /// The API over `app` (composed by the binary, or by a test). The plans are the app's;
    /// `config.plans` is what the binary built the app from.
    pub fn new(app: App, config: ApiConfig) -> Self {
        let state = Self(Arc::new(Inner {
            app,
            auth: Authenticator::new(config.auth.clone()),
            metrics: Metrics::default(),
            workspace_views: routes::workspace::views(),
            me_views: routes::me::views(),
            config,
            sources: std::sync::Mutex::default(),
            uploads: std::sync::Mutex::default(),
        }));
        // A key this process changes is forgotten by its cache at once, whichever layer
        // changed it (other nodes learn of it through the key-change notification).
        let weak = Arc::downgrade(&state.0);
        state.store().on_key_change(move |digest| {
            if let Some(inner) = weak.upgrade() {
                inner.auth.cache.invalidate(digest);
            }
        });
        state
    }

    /// Adds series to `/metrics` (the node's publisher, when it runs one).
    pub fn add_metrics(&self, source: Arc<dyn metrics::MetricsSource>) {
        self.0.sources.lock().expect("sources lock").push(source);
    }

    /// The series of every added source.
    pub async fn extra_metrics(&self) -> String {
        let sources = self.0.sources.lock().expect("sources lock").clone();
        let mut out = String::new();
        for s in sources {
            out.push_str(&s.render().await);
        }
        out
    }

    /// The application layer every handler calls.
    pub fn app(&self) -> &App {
        &self.0.app
    }

    pub fn store(&self) -> &Store {
        self.0.app.store()
    }

    pub fn clock(&self) -> &dyn Clock {
        self.0.app.clock()
    }

    pub fn auth(&self) -> &Authenticator {
        &self.0.auth
    }

    pub fn metrics(&self) -> &Metrics {
        &self.0.metrics
    }

    pub fn networks(&self) -> &crier_networks::Networks {
        self.0.app.networks()
    }

    pub fn publish_wake(&self) -> &Arc<tokio::sync::Notify> {
        self.0.app.publish_wake()
    }

    pub fn workspace_views(&self) -> &routes::workspace::WorkspaceViews {
        &self.0.workspace_views
    }

    pub fn me_views(&self) -> &routes::me::MeViews {
        &self.0.me_views
    }

    pub fn config(&self) -> &ApiConfig {
        &self.0.config
    }

    /// Marks `media` as receiving its bytes until the guard drops; `None` when another
    /// request already is.
    pub fn receiving(&self, media: &crier_core::ids::MediaId) -> Option<Receiving> {
        let mut uploads = self.0.uploads.lock().expect("uploads lock");
        uploads.insert(media.clone()).then(|| Receiving {
            state: self.clone(),
            media: media.clone(),
        })
    }

    pub fn plan(&self, name: &str) -> Option<Arc<Plan>> {
        self.0.app.plan(name)
    }

    /// The usage period (calendar month, UTC) a time falls in, e.g. `2026-11`.
    pub fn period_of(ms: i64) -> String {
        crier_core::clock::Month::of(ms).period
    }

    /// Writes pending usage counters now.
    /// Writes pending usage counters, daily counts and request log entries now.
    pub async fn flush_usage(&self) {
        let period = Self::period_of(self.clock().now_ms());
        let (written, dropped) = self.auth().usage.flush(self.store(), &period).await;
        self.metrics().request_log_dropped(dropped);
        if let Err(e) = written {
            tracing::warn!(error = %e, "could not write usage counters; will retry");
        }
    }

    /// Deletes request log entries older than 7 days and daily counts older than 90 days, in
    /// batches of [`crier_store::PURGE_BATCH`], at most [`PURGE_BATCHES`] of each per call (the
    /// minute timer's), so a backlog is worked off over several minutes rather than in one
    /// long write. Returns how many rows went.
    pub async fn purge_activity(&self) -> crier_store::Result<u64> {
        let now = self.clock().now_ms();
        let log_before = now - crier_store::REQUEST_LOG_RETENTION_MS;
        let day_before = crier_core::clock::utc_day(
            now - (crier_store::DAILY_USAGE_RETENTION_DAYS - 1) * 86_400_000,
        );
        let mut purged = 0;
        for _ in 0..PURGE_BATCHES {
            let n = self.store().purge_request_log(log_before).await?;
            purged += n;
            if n < crier_store::PURGE_BATCH as u64 {
                break;
            }
        }
        for _ in 0..PURGE_BATCHES {
            let n = self.store().purge_daily_usage(&day_before).await?;
            purged += n;
            if n < crier_store::PURGE_BATCH as u64 {
                break;
            }
        }
        Ok(purged)
    }

    /// Starts the API's background work: the usage flusher, rate-limit pruning, the
    /// idempotency purge and the key-change listener. They stop when `cancel` fires; the
    /// flusher writes what it holds before it stops.
    pub fn spawn_background(&self, cancel: CancellationToken) -> tokio::task::JoinSet<()> {
        let mut tasks = tokio::task::JoinSet::new();
        let state = self.clone();
        let stop = cancel.clone();
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(state.config().usage_flush_interval);
            loop {
                tokio::select! {
                    _ = tick.tick() => state.flush_usage().await,
                    _ = stop.cancelled() => {
                        state.flush_usage().await;
                        break;
                    }
                }
            }
        });
        let state = self.clone();
        let stop = cancel.clone();
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        let now = state.clock().now_ms();
                        state.auth().prune(now);
                        state.workspace_views().prune();
                        state.me_views().prune();
                        if let Err(e) = state.store().purge_idempotency(now).await {
                            tracing::warn!(error = %e, "idempotency purge failed");
                        }
                        if let Err(e) = state.app().users().purge().await {
                            tracing::warn!(error = %e.message, "session and device-login purge failed");
                        }
                        if let Err(e) = state.purge_activity().await {
                            tracing::warn!(error = %e, "request log purge failed");
                        }
                    }
                    _ = stop.cancelled() => break,
                }
            }
        });
        // The database's feed; on PostgreSQL also the counter, should a notification be lost.
        let feeds: &[bool] = match self.store().backend() {
            crier_store::Backend::Postgres => &[false, true],
            crier_store::Backend::Sqlite => &[false],
        };
        for &polled in feeds {
            let (state, cancel) = (self.clone(), cancel.clone());
            tasks.spawn(async move {
                tokio::select! {
                    _ = state.follow_key_changes(polled) => {}
                    _ = cancel.cancelled() => {}
                }
            });
        }
        tasks
    }

    /// Drops cached keys as other processes change them; reconnects after errors. `polled`:
    /// from the counter every second, besides PostgreSQL's notifications (what a lost
    /// notification missed: `crier_store::notify`).
    async fn follow_key_changes(&self, polled: bool) {
        loop {
            let feed = if polled {
                let every = crier_store::SAFETY_POLL_INTERVAL;
                self.store().key_changes_polled(every).await
            } else {
                self.store().key_changes().await
            };
            match feed {
                Ok(mut changes) => {
                    // A subscription reports only changes after it began. Anything cached before
                    // it (at start-up, or refilled during the pause after a broken feed) may
                    // predate a change it will never report, so start from an empty cache.
                    self.auth().cache.invalidate_all();
                    loop {
                        match changes.next().await {
                            Ok(KeyChange::Key(d)) => self.auth().cache.invalidate(&d),
                            Ok(KeyChange::All) => self.auth().cache.invalidate_all(),
                            Err(e) => {
                                tracing::warn!(error = %e, "key change feed broke; reconnecting");
                                self.auth().cache.invalidate_all();
                                break;
                            }
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot subscribe to key changes"),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// A media object receiving its bytes (see [`AppState::receiving`]).
pub struct Receiving {
    state: AppState,
    media: crier_core::ids::MediaId,
}

impl Drop for Receiving {
    fn drop(&mut self) {
        let mut uploads = self.state.0.uploads.lock().expect("uploads lock");
        uploads.remove(&self.media);
    }
}

pub use routes::router;
