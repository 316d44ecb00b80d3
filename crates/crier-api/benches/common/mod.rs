//! What the benches share: an app on a fresh SQLite store in a temporary folder, with one
//! workspace on the `self-hosted` plan and keys made as `crier admin key create` makes them
//! (every scope, the largest limits the plan allows).

use std::sync::Arc;

use crier_api::keys::{self, CreateKey, RateLimitInput};
use crier_api::{ApiConfig, AppState};
use crier_core::plans::{MAX_PER_DAY, MAX_PER_MINUTE};
use crier_core::{Clock, KeyMode, Scope};
use crier_store::{Actor, AuditEntry, Store};
use tempfile::TempDir;
use tokio::runtime::Runtime;

/// The app (on `clock`) and the secrets of its `n` keys; the store lives in `dir`.
pub fn app_with_keys(
    rt: &Runtime,
    dir: &TempDir,
    clock: Arc<dyn Clock>,
    n: usize,
) -> (AppState, Vec<String>) {
    let url = format!("sqlite://{}", dir.path().join("crier.db").display());
    let now = clock.now_ms();
    rt.block_on(async {
        let store = Store::connect(&url).await.expect("store");
        store.migrate().await.expect("migrations");
        let ws = store
            .create_workspace("bench", "self-hosted", now)
            .await
            .expect("workspace");
        let config = ApiConfig::default();
        let app = crier_app::App::new(
            store.clone(),
            clock,
            crier_networks::Networks::default(),
            &config.plans,
            Arc::new(tokio::sync::Notify::new()),
        );
        let state = AppState::new(app, config);
        let plan = state.plan(&ws.plan).expect("self-hosted plan");
        let mut keys = Vec::with_capacity(n);
        for _ in 0..n {
            let req = CreateKey {
                name: Some("bench".into()),
                scopes: Scope::ALL.iter().map(|s| s.as_str().to_owned()).collect(),
                mode: Some(KeyMode::Live),
                rate_limit: Some(RateLimitInput {
                    per_minute: Some(MAX_PER_MINUTE),
                    per_day: Some(MAX_PER_DAY),
                }),
                ..CreateKey::default()
            };
            let (row, secret) = keys::new_key(&ws.id, req, &plan, None, now).expect("new key");
            let audit = AuditEntry::new(
                &ws.id,
                Actor::Cli,
                "key.created",
                row.id.as_str(),
                None,
                serde_json::json!({}),
                now,
            );
            store.insert_key(&row, &audit).await.expect("insert key");
            keys.push(secret.expose().to_owned());
        }
        (state, keys)
    })
}
