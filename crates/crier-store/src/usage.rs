//! Usage counters, written in batches off the request path: the API gathers `last_used_at`,
//! request counts, per-key daily counts and the recent request log in memory and flushes them
//! here every few seconds in one transaction.
//!
//! Invariants: the daily counts only grow (an upsert adds to them); a request log entry is
//! written at most once (a batch retried after a commit whose answer was lost inserts nothing
//! twice); the log keeps [`REQUEST_LOG_RETENTION_MS`] and the daily counts
//! [`DAILY_USAGE_RETENTION_DAYS`], purged in bounded batches.

use std::collections::BTreeMap;

use crier_core::ids::{KeyId, WorkspaceId};
use sqlx::Row;

use crate::model::{DailyUsage, KeyUsage, RequestLogEntry};
use crate::{Backend, Result, Store, json};

/// How long the request log keeps an entry: 7 days.
pub const REQUEST_LOG_RETENTION_MS: i64 = 7 * 86_400_000;
/// How many days of per-key daily counts are kept (what `GET /v1/keys/{id}/usage` may ask).
pub const DAILY_USAGE_RETENTION_DAYS: i64 = 90;
/// Rows one purge statement deletes at most, so it never holds the writer for long.
pub const PURGE_BATCH: i64 = 5_000;

/// What one flush writes: per-key use, per-key daily counts and request log entries.
#[derive(Debug, Clone, Copy, Default)]
pub struct UsageBatch<'a> {
    pub keys: &'a [KeyUsage],
    pub daily: &'a [DailyUsage],
    pub log: &'a [RequestLogEntry],
}

impl UsageBatch<'_> {
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.daily.is_empty() && self.log.is_empty()
    }
}

pub const METRIC_REQUESTS: &str = "requests";
/// Live targets published, per workspace and month: what `posts_per_month` counts.
pub const METRIC_POSTS_PUBLISHED: &str = "posts_published";

/// Parameters one multi-row statement of a usage flush binds at most. Far fewer than the
/// backends allow: SQLite finds each `$N` by name in a list (`sqlite3_bind_parameter_name`), so
/// binding costs grow with the square of a statement's parameters.
const PARAMS_PER_STATEMENT: usize = 400;

/// `($1, $2), ($3, $4), …`: `rows` tuples of `width` numbered placeholders.
fn placeholders(rows: usize, width: usize) -> String {
    let mut out = String::with_capacity(rows * width * 5);
    for r in 0..rows {
        out.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..width {
            if c > 0 {
                out.push_str(", ");
            }
            out.push('$');
            out.push_str(&(r * width + c + 1).to_string());
        }
        out.push(')');
    }
    out
}

impl Store {
    /// Applies a batch of per-key usage, and adds each workspace's requests to its counter for
    /// `period` (e.g. `2026-11`).
    pub async fn record_usage(&self, batch: &[KeyUsage], period: &str) -> Result<()> {
        self.record_activity(
            UsageBatch {
                keys: batch,
                ..UsageBatch::default()
            },
            period,
        )
        .await
    }

    /// Writes one flush in one transaction: [`Store::record_usage`]'s part, then the daily
    /// counts (added to what is stored) and the request log entries (an id already stored is
    /// skipped).
    pub async fn record_activity(&self, batch: UsageBatch<'_>, period: &str) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut per_workspace: BTreeMap<&str, i64> = BTreeMap::new();
        let mut tx = self.begin().await?;
        // Every node locks the rows it counts in one order (keys by id, then the workspaces'
        // counters, then daily rows by key and day), so two nodes flushing the same busy keys
        // wait for each other instead of deadlocking. On SQLite writers are serialised anyway.
        // A key (or a key's day) twice in a batch is merged first: an UPDATE … FROM or a
        // multi-row upsert applies one row per target row.
        let mut keys: Vec<KeyUsage> = batch.keys.to_vec();
        keys.sort_unstable_by(|a, b| a.key_id.as_str().cmp(b.key_id.as_str()));
        keys.dedup_by(|later, kept| {
            let same = later.key_id == kept.key_id;
            if same {
                kept.requests += later.requests;
                kept.last_used_at = kept.last_used_at.max(later.last_used_at);
            }
            same
        });
        let mut daily: Vec<DailyUsage> = batch.daily.to_vec();
        daily
            .sort_unstable_by(|a, b| (a.key_id.as_str(), &a.day).cmp(&(b.key_id.as_str(), &b.day)));
        daily.dedup_by(|later, kept| {
            let same = later.key_id == kept.key_id && later.day == kept.day;
            if same {
                kept.requests += later.requests;
                kept.errors += later.errors;
                kept.rate_limited += later.rate_limited;
            }
            same
        });
        if self.backend == Backend::Postgres && !keys.is_empty() {
            let ids = json(&keys.iter().map(|u| u.key_id.as_str()).collect::<Vec<_>>());
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT id FROM api_keys WHERE id IN {} ORDER BY id FOR UPDATE",
                self.json_values("$1")
            )))
            .bind(ids)
            .fetch_all(&mut *tx)
            .await?;
        }
        // Many rows to a statement: a flush after traffic from 10,000 keys is a few dozen
        // statements, not 20,000 (on SQLite every statement is a round trip to the writer).
        for chunk in keys.chunks(PARAMS_PER_STATEMENT / 4) {
            let sql = format!(
                "UPDATE api_keys SET
                    last_used_at = CASE WHEN last_used_at IS NULL OR last_used_at < v.column2
                                        THEN v.column2 ELSE last_used_at END,
                    request_count = request_count + v.column3
                 FROM (VALUES {}) AS v
                 WHERE api_keys.workspace_id = v.column4 AND api_keys.id = v.column1",
                placeholders(chunk.len(), 4)
            );
            // Only placeholders are formatted in; every value is bound.
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for u in chunk {
                q = q
                    .bind(u.key_id.as_str())
                    .bind(u.last_used_at)
                    .bind(u.requests)
                    .bind(u.workspace_id.as_str());
                *per_workspace.entry(u.workspace_id.as_str()).or_default() += u.requests;
            }
            q.execute(&mut *tx).await?;
        }
        for (ws, n) in per_workspace {
            add_counter(&mut tx, ws, period, METRIC_REQUESTS, 0, n).await?;
        }
        // One row per key and day in a batch (the recorder merges them), as a multi-row
        // upsert needs on PostgreSQL.
        for chunk in daily.chunks(PARAMS_PER_STATEMENT / 6) {
            let sql = format!(
                "INSERT INTO key_usage_daily
                    (workspace_id, key_id, day, requests, errors, rate_limited)
                 VALUES {}
                 ON CONFLICT (key_id, day) DO UPDATE SET
                    requests = key_usage_daily.requests + excluded.requests,
                    errors = key_usage_daily.errors + excluded.errors,
                    rate_limited = key_usage_daily.rate_limited + excluded.rate_limited",
                placeholders(chunk.len(), 6)
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for d in chunk {
                q = q
                    .bind(d.workspace_id.as_str())
                    .bind(d.key_id.as_str())
                    .bind(&d.day)
                    .bind(d.requests)
                    .bind(d.errors)
                    .bind(d.rate_limited);
            }
            q.execute(&mut *tx).await?;
        }
        for chunk in batch.log.chunks(PARAMS_PER_STATEMENT / 9) {
            let mut sql = String::from(
                "INSERT INTO request_log (request_id, workspace_id, key_id, method, path, status,
                    error_code, duration_ms, at) VALUES ",
            );
            sql.push_str(&placeholders(chunk.len(), 9));
            sql.push_str(" ON CONFLICT (request_id) DO NOTHING");
            // Only placeholders are formatted in; every value is bound.
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for e in chunk {
                q = q
                    .bind(&e.request_id)
                    .bind(e.workspace_id.as_str())
                    .bind(e.key_id.as_str())
                    .bind(&e.method)
                    .bind(&e.path)
                    .bind(e.status)
                    .bind(e.error_code.as_deref())
                    .bind(e.duration_ms)
                    .bind(e.at);
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// A key's daily counts for the days `from..=to` (`YYYY-MM-DD`) that have any, oldest
    /// first.
    pub async fn key_usage_days(
        &self,
        ws: &WorkspaceId,
        key: &KeyId,
        from: &str,
        to: &str,
    ) -> Result<Vec<DailyUsage>> {
        let rows = sqlx::query(
            "SELECT day, requests, errors, rate_limited FROM key_usage_daily
             WHERE workspace_id = $1 AND key_id = $2 AND day >= $3 AND day <= $4
             ORDER BY day",
        )
        .bind(ws.as_str())
        .bind(key.as_str())
        .bind(from)
        .bind(to)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DailyUsage {
                    key_id: key.clone(),
                    workspace_id: ws.clone(),
                    day: r.try_get("day")?,
                    requests: r.try_get("requests")?,
                    errors: r.try_get("errors")?,
                    rate_limited: r.try_get("rate_limited")?,
                })
            })
            .collect()
    }

    /// One entry of a workspace's request log.
    pub async fn request_log_entry(
        &self,
        ws: &WorkspaceId,
        request_id: &str,
    ) -> Result<Option<RequestLogEntry>> {
        let row = sqlx::query(
            "SELECT request_id, workspace_id, key_id, method, path, status, error_code,
                    duration_ms, at
             FROM request_log WHERE workspace_id = $1 AND request_id = $2",
        )
        .bind(ws.as_str())
        .bind(request_id)
        .fetch_optional(&self.read)
        .await?;
        row.map(|r| {
            Ok(RequestLogEntry {
                request_id: r.try_get("request_id")?,
                workspace_id: WorkspaceId::from_trusted(r.try_get::<String, _>("workspace_id")?),
                key_id: KeyId::from_trusted(r.try_get::<String, _>("key_id")?),
                method: r.try_get("method")?,
                path: r.try_get("path")?,
                status: r.try_get("status")?,
                error_code: r.try_get("error_code")?,
                duration_ms: r.try_get("duration_ms")?,
                at: r.try_get("at")?,
            })
        })
        .transpose()
    }

    /// Deletes up to [`PURGE_BATCH`] request log entries older than `before` (epoch ms),
    /// oldest first; how many it deleted. Callers repeat while it returns a full batch.
    pub async fn purge_request_log(&self, before: i64) -> Result<u64> {
        let done = sqlx::query(
            "DELETE FROM request_log WHERE request_id IN
                (SELECT request_id FROM request_log WHERE at < $1 ORDER BY at LIMIT $2)",
        )
        .bind(before)
        .bind(PURGE_BATCH)
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected())
    }

    /// Deletes up to [`PURGE_BATCH`] daily counts of days before `day` (`YYYY-MM-DD`).
    pub async fn purge_daily_usage(&self, day: &str) -> Result<u64> {
        let done = sqlx::query(
            "DELETE FROM key_usage_daily WHERE (key_id, day) IN
                (SELECT key_id, day FROM key_usage_daily WHERE day < $1 LIMIT $2)",
        )
        .bind(day)
        .bind(PURGE_BATCH)
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected())
    }

    /// This period's counters of a workspace, by metric name.
    pub async fn workspace_usage(
        &self,
        ws: &WorkspaceId,
        period: &str,
    ) -> Result<BTreeMap<String, i64>> {
        let rows = sqlx::query(
            "SELECT metric, CAST(SUM(value) AS BIGINT) AS value FROM usage_counters
             WHERE workspace_id = $1 AND period = $2 GROUP BY metric",
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

/// Rows a counter that many transactions add to at once is spread over (see [`shard_of`]).
pub(crate) const COUNTER_SHARDS: u64 = 16;

/// The shard of a counter that `id` (a post's, say) adds to: the same id always lands on the
/// same row, and different ids spread over [`COUNTER_SHARDS`] rows, so concurrent transactions
/// adding to one workspace's counter seldom wait for each other's row lock.
pub(crate) fn shard_of(id: &str) -> i64 {
    // FNV-1a: stable across processes and releases, unlike the std hasher.
    let h = id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    (h % COUNTER_SHARDS) as i64
}

/// Adds `n` to shard `shard` of a workspace's counter (readers add the shards up).
pub(crate) async fn add_counter(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    ws: &str,
    period: &str,
    metric: &str,
    shard: i64,
    n: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO usage_counters (workspace_id, period, metric, shard, value)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (workspace_id, period, metric, shard)
         DO UPDATE SET value = usage_counters.value + excluded.value",
    )
    .bind(ws)
    .bind(period)
    .bind(metric)
    .bind(shard)
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
    /// limit together. The new total, or `None` when it would not fit. Such a counter lives in
    /// shard 0 alone: only this and [`Store::refund_counter`] write it.
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
            "INSERT INTO usage_counters (workspace_id, period, metric, shard, value)
             VALUES ($1, $2, $3, 0, $4)
             ON CONFLICT (workspace_id, period, metric, shard)
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
             WHERE workspace_id = $1 AND period = $2 AND metric = $3 AND shard = 0",
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
