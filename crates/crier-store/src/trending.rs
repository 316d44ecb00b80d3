//! The trending-topics cache: the lists networks publish, one per source, refreshed by a
//! worker, and the recent posts a workspace's own rising topics are computed from.
//!
//! A source's key is derived from the accounts that need it, in SQL, by the network's
//! [`TrendScope`]: `Server` (`{platform}:{service}`, one list for every account of a server,
//! such as a Mastodon instance's public trending tags) or `Account` (`{platform}:{external id}`,
//! a list the network ranks for its viewer, such as Bluesky's, which is never shared with
//! another account). The worker and the readers use the same expression ([`key_sql`]), so they
//! cannot disagree on a key.
//!
//! Invariants:
//! - A source holds at most [`MAX_TOPICS_PER_SOURCE`] topics of at most [`MAX_TOPIC_CHARS`]
//!   characters; [`Store::store_trends`] refuses more (the caller bounds what a network sent).
//! - A refresh replaces a source's topics as a whole, in one transaction, and only while the
//!   source still exists (a purge that won the race is not undone). A failed refresh keeps the
//!   previous topics and records the error.
//! - Claiming a source is conditional on it being due (`next_fetch_at <= now`), so two nodes
//!   never fetch one source at once; the claim's `next_fetch_at` is its lease.
//! - Only live connected accounts make a source needed; sources no account claimed for a while
//!   are purged with their topics ([`Store::purge_trend_sources`]).

use crier_core::Tenant;
use crier_core::ids::{AccountId, WorkspaceId};
use sqlx::Row;

use crate::{Result, Store, StoreError};

/// The most topics kept per source (Mastodon answers at most 20 tags; Bluesky is asked for 20).
pub const MAX_TOPICS_PER_SOURCE: usize = 20;
/// The longest topic kept, in characters.
pub const MAX_TOPIC_CHARS: usize = 100;

/// Which accounts share one trend list of a network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrendScope {
    /// Every account of one server sees the same list (a Mastodon instance's trending tags):
    /// one fetch serves them all.
    Server,
    /// The list is the account's own (ranked for the viewer): one fetch per network account.
    Account,
}

/// The SQL expression of a source's key over the `accounts` row `a`, and the condition an
/// account must meet to have one.
fn key_sql(scope: TrendScope) -> (&'static str, &'static str) {
    match scope {
        TrendScope::Server => ("a.platform || ':' || a.service", "a.service <> ''"),
        TrendScope::Account => ("a.platform || ':' || a.external_id", "a.external_id <> ''"),
    }
}

/// A source that is due, and the account whose session reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueTrendSource {
    pub source: String,
    pub workspace_id: WorkspaceId,
    pub account_id: AccountId,
    /// Since when it has been due; `None`: never fetched.
    pub due_since: Option<i64>,
}

/// One topic to store, as a network ranked it.
#[derive(Debug, Clone, PartialEq)]
pub struct TrendTopic {
    pub topic: String,
    /// Higher is hotter; comparable within the source only.
    pub score: f64,
}

/// One cached topic.
#[derive(Debug, Clone, PartialEq)]
pub struct CachedTopic {
    pub source: String,
    /// 0 for the hottest.
    pub position: i64,
    pub topic: String,
    pub score: f64,
    pub fetched_at: i64,
}

/// What the cache knows of a source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrendSource {
    pub source: String,
    pub platform: String,
    pub used_at: i64,
    pub next_fetch_at: i64,
    pub fetched_at: Option<i64>,
    pub last_error: Option<String>,
    pub failed_at: Option<i64>,
}

/// A post's text, for the workspace's own rising topics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostText {
    pub created_at: i64,
    pub body: String,
    pub thread: Vec<String>,
}

impl Store {
    /// Up to `limit` sources of `platform` that live connected accounts need and that are due
    /// at `now` (never fetched first, then the longest waiting), each with one account to read
    /// it as (the oldest connected one). Across workspaces: this is the worker's view.
    pub async fn due_trend_sources(
        &self,
        platform: &str,
        scope: TrendScope,
        now: i64,
        limit: u32,
    ) -> Result<Vec<DueTrendSource>> {
        let (key, has_key) = key_sql(scope);
        let sql = format!(
            "SELECT c.source, a.workspace_id, a.id, s.next_fetch_at FROM (
                SELECT {key} AS source, MIN(a.id) AS account_id FROM accounts a
                WHERE a.platform = $1 AND a.livemode = 1 AND a.status = 'connected' AND {has_key}
                GROUP BY {key}
             ) c
             JOIN accounts a ON a.id = c.account_id
             LEFT JOIN trend_sources s ON s.source = c.source
             WHERE s.source IS NULL OR s.next_fetch_at <= $2
             ORDER BY COALESCE(s.next_fetch_at, 0), c.source
             LIMIT $3"
        );
        let rows = // Safe: `key` and `has_key` are constants of `key_sql`.
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(platform)
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(&self.read)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(DueTrendSource {
                    source: r.try_get(0)?,
                    workspace_id: WorkspaceId::from_trusted(r.try_get(1)?),
                    account_id: AccountId::from_trusted(r.try_get(2)?),
                    due_since: r.try_get(3)?,
                })
            })
            .collect()
    }

    /// Claims `source` for a fetch until `lease_until`, if it is new or due at `now`; marks it
    /// used at `now`. `false`: another node holds it, or fetched it since it was listed.
    pub async fn claim_trend_source(
        &self,
        source: &str,
        platform: &str,
        now: i64,
        lease_until: i64,
    ) -> Result<bool> {
        if self.claims_held() {
            return Ok(false);
        }
        let row = sqlx::query(
            "INSERT INTO trend_sources (source, platform, used_at, next_fetch_at)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (source) DO UPDATE SET used_at = excluded.used_at,
                next_fetch_at = excluded.next_fetch_at
             WHERE trend_sources.next_fetch_at <= excluded.used_at
             RETURNING source",
        )
        .bind(source)
        .bind(platform)
        .bind(now)
        .bind(lease_until)
        .fetch_optional(&self.write)
        .await?;
        Ok(row.is_some())
    }

    /// Replaces `source`'s topics with `topics` (hottest first), records the fetch at `now`
    /// and makes the source due again at `next_fetch_at`; in one transaction. `false` (and
    /// nothing written): the source is gone (purged since it was claimed).
    pub async fn store_trends(
        &self,
        source: &str,
        topics: &[TrendTopic],
        now: i64,
        next_fetch_at: i64,
    ) -> Result<bool> {
        if topics.len() > MAX_TOPICS_PER_SOURCE {
            return Err(StoreError::Config(format!(
                "{} topics for {source}; a source keeps at most {MAX_TOPICS_PER_SOURCE}",
                topics.len()
            )));
        }
        if let Some(t) = topics
            .iter()
            .find(|t| t.topic.is_empty() || t.topic.chars().count() > MAX_TOPIC_CHARS)
        {
            return Err(StoreError::Config(format!(
                "topic `{}` of {source} is empty or over {MAX_TOPIC_CHARS} characters",
                t.topic
            )));
        }
        if let Some(t) = topics.iter().find(|t| !t.score.is_finite()) {
            return Err(StoreError::Config(format!(
                "topic `{}` of {source} has a score that is not a number",
                t.topic
            )));
        }
        let mut tx = self.begin().await?;
        // First: locks the source's row, so a purge waits for us or we see it gone.
        let updated = sqlx::query(
            "UPDATE trend_sources SET fetched_at = $2, next_fetch_at = $3, last_error = NULL,
                failed_at = NULL
             WHERE source = $1",
        )
        .bind(source)
        .bind(now)
        .bind(next_fetch_at)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        sqlx::query("DELETE FROM trend_topics WHERE source = $1")
            .bind(source)
            .execute(&mut *tx)
            .await?;
        for (position, t) in topics.iter().enumerate() {
            sqlx::query(
                "INSERT INTO trend_topics (source, position, topic, score, fetched_at)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(source)
            .bind(position as i64)
            .bind(&t.topic)
            .bind(t.score)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Records a failed fetch of `source` (its topics stay as they were) and makes it due
    /// again at `next_fetch_at`. The error is kept to 500 characters.
    pub async fn trend_fetch_failed(
        &self,
        source: &str,
        error: &str,
        now: i64,
        next_fetch_at: i64,
    ) -> Result<()> {
        let error: String = error.chars().take(500).collect();
        sqlx::query(
            "UPDATE trend_sources SET last_error = $2, failed_at = $3, next_fetch_at = $4
             WHERE source = $1",
        )
        .bind(source)
        .bind(error)
        .bind(now)
        .bind(next_fetch_at)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// Deletes sources no account claimed since `unused_since`, with their topics; returns how
    /// many sources went.
    pub async fn purge_trend_sources(&self, unused_since: i64) -> Result<u64> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "DELETE FROM trend_topics WHERE source IN
               (SELECT source FROM trend_sources WHERE used_at < $1)",
        )
        .bind(unused_since)
        .execute(&mut *tx)
        .await?;
        let gone = sqlx::query("DELETE FROM trend_sources WHERE used_at < $1")
            .bind(unused_since)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(gone.rows_affected())
    }

    /// What the cache knows of `source`.
    pub async fn trend_source(&self, source: &str) -> Result<Option<TrendSource>> {
        let row = sqlx::query(
            "SELECT source, platform, used_at, next_fetch_at, fetched_at, last_error, failed_at
             FROM trend_sources WHERE source = $1",
        )
        .bind(source)
        .fetch_optional(&self.read)
        .await?;
        row.map(|r| {
            Ok(TrendSource {
                source: r.try_get("source")?,
                platform: r.try_get("platform")?,
                used_at: r.try_get("used_at")?,
                next_fetch_at: r.try_get("next_fetch_at")?,
                fetched_at: r.try_get("fetched_at")?,
                last_error: r.try_get("last_error")?,
                failed_at: r.try_get("failed_at")?,
            })
        })
        .transpose()
    }

    /// The cached topics of `source`, hottest first.
    pub async fn cached_trends(&self, source: &str) -> Result<Vec<CachedTopic>> {
        let rows = sqlx::query(
            "SELECT source, position, topic, score, fetched_at FROM trend_topics
             WHERE source = $1 ORDER BY position",
        )
        .bind(source)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(cached_from_row).collect()
    }

    /// The cached topics of the `platform` sources that the workspace's live connected
    /// accounts use, by source and position; at most `max_sources` sources' worth.
    pub async fn workspace_trends(
        &self,
        ws: &WorkspaceId,
        platform: &str,
        scope: TrendScope,
        max_sources: u32,
    ) -> Result<Vec<CachedTopic>> {
        let (key, has_key) = key_sql(scope);
        let sql = format!(
            "SELECT t.source, t.position, t.topic, t.score, t.fetched_at FROM trend_topics t
             WHERE t.source IN (
                SELECT {key} FROM accounts a
                WHERE a.workspace_id = $1 AND a.platform = $2 AND a.livemode = 1
                  AND a.status = 'connected' AND {has_key})
             ORDER BY t.source, t.position
             LIMIT $3"
        );
        let rows = // Safe: `key` and `has_key` are constants of `key_sql`.
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(ws.as_str())
            .bind(platform)
            .bind(i64::from(max_sources) * MAX_TOPICS_PER_SOURCE as i64)
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(cached_from_row).collect()
    }

    /// The texts of the tenant's newest posts created at or after `since` (any status), newest
    /// first, at most `limit`.
    pub async fn recent_post_texts(
        &self,
        tenant: &Tenant,
        since: i64,
        limit: u32,
    ) -> Result<Vec<PostText>> {
        let rows = sqlx::query(
            "SELECT created_at, body, thread FROM posts
             WHERE workspace_id = $1 AND livemode = $2 AND created_at >= $3
             ORDER BY created_at DESC, id DESC LIMIT $4",
        )
        .bind(tenant.workspace.as_str())
        .bind(tenant.livemode as i64)
        .bind(since)
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                let thread: String = r.try_get("thread")?;
                Ok(PostText {
                    created_at: r.try_get("created_at")?,
                    body: r.try_get("body")?,
                    thread: serde_json::from_str(&thread)
                        .map_err(|e| StoreError::Corrupt(format!("posts.thread: {e}")))?,
                })
            })
            .collect()
    }
}

fn cached_from_row(r: &sqlx::any::AnyRow) -> Result<CachedTopic> {
    Ok(CachedTopic {
        source: r.try_get("source")?,
        position: r.try_get("position")?,
        topic: r.try_get("topic")?,
        score: r.try_get("score")?,
        fetched_at: r.try_get("fetched_at")?,
    })
}
