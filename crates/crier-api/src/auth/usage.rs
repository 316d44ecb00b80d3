//! `last_used_at` and request counts, gathered in memory on the request path and written to
//! storage in one batch every few seconds (and at shutdown), so an authenticated read does no
//! database write.

use std::collections::HashMap;
use std::sync::Mutex;

use crier_core::ids::{KeyId, WorkspaceId};
use crier_store::{KeyUsage, Store};

#[derive(Default)]
pub struct UsageRecorder {
    pending: Mutex<HashMap<KeyId, KeyUsage>>,
}

impl UsageRecorder {
    pub fn record(&self, key: &KeyId, workspace: &WorkspaceId, now_ms: i64) {
        let mut pending = self.pending.lock().expect("usage lock");
        match pending.get_mut(key) {
            Some(u) => {
                u.requests += 1;
                u.last_used_at = u.last_used_at.max(now_ms);
            }
            None => {
                pending.insert(
                    key.clone(),
                    KeyUsage {
                        key_id: key.clone(),
                        workspace_id: workspace.clone(),
                        last_used_at: now_ms,
                        requests: 1,
                    },
                );
            }
        }
    }

    /// Writes what was gathered. On failure the batch goes back into the pending counts, so a
    /// database hiccup loses nothing.
    pub async fn flush(&self, store: &Store, period: &str) -> crier_store::Result<usize> {
        let batch: Vec<KeyUsage> = {
            let mut pending = self.pending.lock().expect("usage lock");
            std::mem::take(&mut *pending).into_values().collect()
        };
        if batch.is_empty() {
            return Ok(0);
        }
        if let Err(e) = store.record_usage(&batch, period).await {
            let mut pending = self.pending.lock().expect("usage lock");
            for u in batch {
                let entry = pending.entry(u.key_id.clone()).or_insert(KeyUsage {
                    requests: 0,
                    ..u.clone()
                });
                entry.requests += u.requests;
                entry.last_used_at = entry.last_used_at.max(u.last_used_at);
            }
            return Err(e);
        }
        Ok(batch.len())
    }
}
