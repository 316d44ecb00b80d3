//! Engagement metrics of published targets, collected from each network.
//!
//! One row per (post, account), overwritten at each collection. Results come back in account
//! id order on both backends.

use crier_core::ids::{AccountId, PostId, WorkspaceId};
use sqlx::Row;

use crate::model::*;
use crate::{Result, Store};

/// The step of [`Store::published_by_quarter_hour`].
pub const QUARTER_HOUR_MS: i64 = 15 * 60 * 1000;

impl Store {
    pub async fn upsert_metrics(
        &self,
        ws: &WorkspaceId,
        post: &PostId,
        account: &AccountId,
        m: &Metrics,
        now: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO post_metrics (post_id, account_id, workspace_id, likes, reposts, replies,
                impressions, collected_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (post_id, account_id) DO UPDATE SET likes = excluded.likes,
                reposts = excluded.reposts, replies = excluded.replies,
                impressions = excluded.impressions, collected_at = excluded.collected_at",
        )
        .bind(post.as_str())
        .bind(account.as_str())
        .bind(ws.as_str())
        .bind(m.likes)
        .bind(m.reposts)
        .bind(m.replies)
        .bind(m.impressions)
        .bind(now)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// Collected metrics of a post, by account.
    pub async fn post_metrics(
        &self,
        ws: &WorkspaceId,
        post: &PostId,
    ) -> Result<Vec<(AccountId, Metrics, i64)>> {
        let rows = sqlx::query(
            "SELECT account_id, likes, reposts, replies, impressions, collected_at
             FROM post_metrics WHERE workspace_id = $1 AND post_id = $2",
        )
        .bind(ws.as_str())
        .bind(post.as_str())
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    AccountId::from_trusted(r.try_get(0)?),
                    Metrics {
                        likes: r.try_get(1)?,
                        reposts: r.try_get(2)?,
                        replies: r.try_get(3)?,
                        impressions: r.try_get(4)?,
                    },
                    r.try_get(5)?,
                ))
            })
            .collect::<Result<Vec<_>>>()
            .map(by_account)
    }

    /// Metrics summed per account over targets published in `[from, to)`, with the number of
    /// posts.
    pub async fn account_metrics(
        &self,
        ws: &WorkspaceId,
        from: i64,
        to: i64,
    ) -> Result<Vec<(AccountId, i64, Metrics)>> {
        let rows = sqlx::query(
            "SELECT t.account_id, CAST(COUNT(*) AS BIGINT),
                CAST(COALESCE(SUM(m.likes), 0) AS BIGINT), CAST(COALESCE(SUM(m.reposts), 0) AS BIGINT),
                CAST(COALESCE(SUM(m.replies), 0) AS BIGINT),
                CAST(COALESCE(SUM(m.impressions), 0) AS BIGINT)
             FROM post_targets t
             LEFT JOIN post_metrics m ON m.post_id = t.post_id AND m.account_id = t.account_id
             WHERE t.workspace_id = $1 AND t.status = 'published'
               AND t.published_at >= $2 AND t.published_at < $3
             GROUP BY t.account_id",
        )
        .bind(ws.as_str())
        .bind(from)
        .bind(to)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    AccountId::from_trusted(r.try_get(0)?),
                    r.try_get(1)?,
                    Metrics {
                        likes: r.try_get(2)?,
                        reposts: r.try_get(3)?,
                        replies: r.try_get(4)?,
                        impressions: r.try_get(5)?,
                    },
                ))
            })
            .collect::<Result<Vec<_>>>()
            .map(by_account)
    }

    /// Targets of the tenant's mode published in `[from, to)`, counted and their metrics summed
    /// per quarter hour (`published_at / QUARTER_HOUR_MS`, in no particular order), only on the
    /// accounts `within` when given. A quarter hour is the finest step any time zone's offset
    /// takes, so the caller can fold the buckets into local days. At most one row per quarter
    /// hour of the range, whatever the number of targets.
    pub async fn published_by_quarter_hour(
        &self,
        tenant: &crier_core::Tenant,
        from: i64,
        to: i64,
        within: Option<&[AccountId]>,
    ) -> Result<Vec<(i64, i64, Metrics)>> {
        let only = match within {
            Some(_) => format!("AND t.account_id IN {}", self.json_values("$5")),
            None => String::new(),
        };
        let sql = format!(
            "SELECT CAST(t.published_at / {QUARTER_HOUR_MS} AS BIGINT), CAST(COUNT(*) AS BIGINT),
                CAST(COALESCE(SUM(m.likes), 0) AS BIGINT),
                CAST(COALESCE(SUM(m.reposts), 0) AS BIGINT),
                CAST(COALESCE(SUM(m.replies), 0) AS BIGINT),
                CAST(COALESCE(SUM(m.impressions), 0) AS BIGINT)
             FROM post_targets t
             JOIN posts p ON p.id = t.post_id AND p.workspace_id = t.workspace_id
             LEFT JOIN post_metrics m ON m.post_id = t.post_id AND m.account_id = t.account_id
             WHERE t.workspace_id = $1 AND p.livemode = $2 AND t.status = 'published'
               AND t.published_at >= $3 AND t.published_at < $4 {only}
             GROUP BY t.published_at / {QUARTER_HOUR_MS}"
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(tenant.workspace.as_str())
            .bind(tenant.livemode as i64)
            .bind(from)
            .bind(to);
        if let Some(within) = within {
            q = q.bind(crate::json(&within));
        }
        let rows = q.fetch_all(&self.read).await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get::<i64, _>(0)? * QUARTER_HOUR_MS,
                    r.try_get(1)?,
                    Metrics {
                        likes: r.try_get(2)?,
                        reposts: r.try_get(3)?,
                        replies: r.try_get(4)?,
                        impressions: r.try_get(5)?,
                    },
                ))
            })
            .collect()
    }

    /// Published targets whose metrics are older than `stale_before` (or never collected).
    pub async fn targets_needing_metrics(
        &self,
        stale_before: i64,
        limit: u32,
    ) -> Result<Vec<(WorkspaceId, PostId, AccountId, String)>> {
        let rows = sqlx::query(
            "SELECT t.workspace_id, t.post_id, t.account_id, t.external_id FROM post_targets t
             LEFT JOIN post_metrics m ON m.post_id = t.post_id AND m.account_id = t.account_id
             WHERE t.status = 'published' AND t.external_id IS NOT NULL
               AND (m.collected_at IS NULL OR m.collected_at < $1)
             LIMIT $2",
        )
        .bind(stale_before)
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    WorkspaceId::from_trusted(r.try_get(0)?),
                    PostId::from_trusted(r.try_get(1)?),
                    AccountId::from_trusted(r.try_get(2)?),
                    r.try_get(3)?,
                ))
            })
            .collect()
    }
}

/// Rows in account id order, the same on both backends (`ORDER BY` on PostgreSQL follows the
/// database's collation, which does not sort mixed-case ids byte by byte).
fn by_account<T, U>(mut rows: Vec<(AccountId, T, U)>) -> Vec<(AccountId, T, U)> {
    rows.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
    rows
}

/// Follower counts, one reading per account and UTC day (`account_followers`).
impl Store {
    /// Keeps `followers` as the account's reading of `day` (`YYYY-MM-DD`, UTC); `None` (the
    /// network did not say) marks the account visited and keeps the day's earlier reading.
    pub async fn upsert_followers(
        &self,
        ws: &WorkspaceId,
        account: &AccountId,
        day: &str,
        followers: Option<i64>,
        now: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO account_followers (account_id, workspace_id, day, followers, collected_at)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (account_id, day) DO UPDATE SET
                followers = COALESCE(excluded.followers, account_followers.followers),
                collected_at = excluded.collected_at",
        )
        .bind(account.as_str())
        .bind(ws.as_str())
        .bind(day)
        .bind(followers)
        .bind(now)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// Connected accounts not visited for followers since `stale_before` (whose UTC day is
    /// `stale_day`), at most `limit`. Each visit writes the day's row, so an account comes
    /// back only once its last visit is stale; the look-up reads the primary key's range of the
    /// account's recent days, never its whole history.
    pub async fn accounts_needing_followers(
        &self,
        stale_before: i64,
        stale_day: &str,
        limit: u32,
    ) -> Result<Vec<(WorkspaceId, AccountId)>> {
        let rows = sqlx::query(
            "SELECT a.workspace_id, a.id FROM accounts a
             WHERE a.status = 'connected' AND NOT EXISTS (
                SELECT 1 FROM account_followers f
                WHERE f.account_id = a.id AND f.day >= $2 AND f.collected_at >= $1)
             ORDER BY a.id LIMIT $3",
        )
        .bind(stale_before)
        .bind(stale_day)
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    WorkspaceId::from_trusted(r.try_get(0)?),
                    AccountId::from_trusted(r.try_get(1)?),
                ))
            })
            .collect()
    }

    /// An account's first and last follower readings of the days `from_day..=to_day`
    /// (`YYYY-MM-DD`): `(first, last)`, or `None` without a reading.
    pub async fn followers_between(
        &self,
        ws: &WorkspaceId,
        account: &AccountId,
        from_day: &str,
        to_day: &str,
    ) -> Result<Option<(i64, i64)>> {
        let rows = sqlx::query(
            "SELECT followers FROM account_followers
             WHERE workspace_id = $1 AND account_id = $2 AND day >= $3 AND day <= $4
               AND followers IS NOT NULL
             ORDER BY day",
        )
        .bind(ws.as_str())
        .bind(account.as_str())
        .bind(from_day)
        .bind(to_day)
        .fetch_all(&self.read)
        .await?;
        let first = rows.first().map(|r| r.try_get::<i64, _>(0)).transpose()?;
        let last = rows.last().map(|r| r.try_get::<i64, _>(0)).transpose()?;
        Ok(first.zip(last))
    }
}
