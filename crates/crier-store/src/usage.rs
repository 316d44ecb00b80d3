//! Usage counters, written in batches off the request path: the API gathers `last_used_at` and
//! request counts in memory and flushes them here every few seconds in one transaction.

use std::collections::BTreeMap;

use crier_core::ids::WorkspaceId;
use sqlx::Row;

use crate::model::KeyUsage;
use crate::{Result, Store};

pub const METRIC_REQUESTS: &str = "requests";
/// Live targets published, per workspace and month: what `posts_per_month` counts.
pub const METRIC_POSTS_PUBLISHED: &str = "posts_published";

impl Store {
    /// Applies a batch of per-key usage, and adds each workspace's requests to its counter for
    /// `period` (e.g. `2026-11`).
    pub async fn record_usage(&self, batch: &[KeyUsage], period: &str) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut per_workspace: BTreeMap<&str, i64> = BTreeMap::new();
        let mut tx = self.begin().await?;
        for u in batch {
            sqlx::query(
                "UPDATE api_keys SET
                    last_used_at = CASE WHEN last_used_at IS NULL OR last_used_at < $2
                                        THEN $2 ELSE last_used_at END,
                    request_count = request_count + $3
                 WHERE workspace_id = $4 AND id = $1",
            )
            .bind(u.key_id.as_str())
            .bind(u.last_used_at)
            .bind(u.requests)
            .bind(u.workspace_id.as_str())
            .execute(&mut *tx)
            .await?;
            *per_workspace.entry(u.workspace_id.as_str()).or_default() += u.requests;
        }
        for (ws, n) in per_workspace {
            add_counter(&mut tx, ws, period, METRIC_REQUESTS, n).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// This period's counters of a workspace, by metric name.
    pub async fn workspace_usage(
        &self,
        ws: &WorkspaceId,
        period: &str,
    ) -> Result<BTreeMap<String, i64>> {
        let rows = sqlx::query(
            "SELECT metric, value FROM usage_counters WHERE workspace_id = $1 AND period = $2",
        )
        .bind(ws.as_str())
        .bind(period)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("metric")?, r.try_get("value")?)))
            .collect()
    }
}

pub(crate) async fn add_counter(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    ws: &str,
    period: &str,
    metric: &str,
    n: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO usage_counters (workspace_id, period, metric, value) VALUES ($1, $2, $3, $4)
         ON CONFLICT (workspace_id, period, metric)
         DO UPDATE SET value = usage_counters.value + excluded.value",
    )
    .bind(ws)
    .bind(period)
    .bind(metric)
    .bind(n)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
