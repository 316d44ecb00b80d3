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

/// AI credits spent by live keys, per workspace and month: what `ai_credits_per_month` counts.
pub const METRIC_AI_CREDITS: &str = "ai_credits";
/// AI credits spent by test-mode keys: metered apart, so test keys never spend the plan's quota
/// (and are still bounded by the same allowance).
pub const METRIC_AI_CREDITS_TEST: &str = "ai_credits_test";

impl Store {
    /// Adds `n` to a workspace's counter for `period` only if the total stays within `limit`
    /// (`None`: no limit), in one conditional statement, so concurrent spenders never pass the
    /// limit together. The new total, or `None` when it would not fit.
    pub async fn spend_counter(
        &self,
        ws: &WorkspaceId,
        period: &str,
        metric: &str,
        n: i64,
        limit: Option<i64>,
    ) -> Result<Option<i64>> {
        let limit = limit.unwrap_or(i64::MAX);
        if n > limit {
            return Ok(None);
        }
        let row = sqlx::query(
            "INSERT INTO usage_counters (workspace_id, period, metric, value) VALUES ($1, $2, $3, $4)
             ON CONFLICT (workspace_id, period, metric)
             DO UPDATE SET value = usage_counters.value + excluded.value
             WHERE usage_counters.value <= $5 - excluded.value
             RETURNING value",
        )
        .bind(ws.as_str())
        .bind(period)
        .bind(metric)
        .bind(n)
        .bind(limit)
        .fetch_optional(&self.write)
        .await?;
        row.map(|r| r.try_get::<i64, _>("value"))
            .transpose()
            .map_err(Into::into)
    }

    /// Gives back `n` of what [`Store::spend_counter`] took (never below zero).
    pub async fn refund_counter(
        &self,
        ws: &WorkspaceId,
        period: &str,
        metric: &str,
        n: i64,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE usage_counters SET value = CASE WHEN value < $4 THEN 0 ELSE value - $4 END
             WHERE workspace_id = $1 AND period = $2 AND metric = $3",
        )
        .bind(ws.as_str())
        .bind(period)
        .bind(metric)
        .bind(n)
        .execute(&self.write)
        .await?;
        Ok(())
    }
}
